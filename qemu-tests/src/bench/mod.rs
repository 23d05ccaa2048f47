//! `make bench`'s measurements: keel and a Debian 12 + systemd + Docker peer, booted under the same kernel and
//! QEMU settings in the same run, each read from its own console; `keel-bench` prints the table.

pub mod api_latency;
pub mod flood;
pub mod keel;
pub mod memory;
pub mod peer;
pub mod root_files;
pub mod workload;

/// Where the host-side benches keep what they build and their scratch directories: `<build dir>/bench`, made if
/// missing.
pub fn bench_dir() -> std::io::Result<std::path::PathBuf> {
    let dir = crate::artifacts::build_dir().join("bench");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

/// The `keel` binary a host-side bench runs: `KEEL_BIN`, else the musl release build `make` ships, else the host
/// release build.
pub fn keel_binary() -> Result<std::path::PathBuf, Box<dyn std::error::Error>> {
    if let Some(path) = std::env::var_os("KEEL_BIN") {
        return Ok(std::path::PathBuf::from(path));
    }
    let target = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target");
    [target.join("x86_64-unknown-linux-musl/release/keel"), target.join("release/keel")]
        .into_iter()
        .find(|path| path.is_file())
        .ok_or_else(|| {
            "no keel binary: `make init` (or `cargo build --release -p keel-init`) builds one; KEEL_BIN names one"
                .into()
        })
}
