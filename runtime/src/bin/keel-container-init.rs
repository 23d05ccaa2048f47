//! `keel-container-init`: the small init `init = true` runs as a container's PID 1 (see
//! `keel_runtime::container_init`).

fn main() {
    keel_runtime::container_init::main()
}
