//! A registry that stalls in the middle of a layer (headers and 1 KiB, then nothing on an open socket): `stop` and
//! `shutdown` return at once, and the abandoned pull still ends within its deadlines, naming the registry and the
//! blob. A test binary of its own: the registry, umoci and skopeo run before the reaper exists.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{reaper, user_data, wait_for, wait_status, TestHost};
use keel_fixtures::images::Layout;
use keel_fixtures::registry::Registry;
use keel_fixtures::stalling_proxy::{Misbehaviour, StallingProxy};
use keel_images::RegistryTimeouts;
use keel_supervision::machine::State;
use keel_supervision::{Supervisor, SupervisorOptions};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");

/// The bound on `stop` and `shutdown` while a pull stalls. The pull itself takes 2 tries of 10 s without a byte,
/// so a stop that waited for it would take more than twice this.
const PROMPT: Duration = Duration::from_secs(5);

#[test]
fn stop_and_shutdown_return_while_a_pull_stalls() {
    let host = TestHost::new(Path::new(CACHE));
    let registry = Registry::start(&host.temp.path().join("registry"));
    let layout = Layout::create(&host.temp.path().join("build"));
    layout.new_image("v1");
    // Incompressible, so that the layer blob is far longer than the KiB the proxy sends before it stalls.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let noise: Vec<u8> = (0..64 << 10)
        .map(|_| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state as u8
        })
        .collect();
    layout.add_layer("v1", |rootfs| std::fs::write(rootfs.join("noise"), noise).unwrap());
    layout.push("v1", &registry.host(), "keel/stall:v1", None);
    let layer = layout.layer_digests("v1").pop().unwrap();
    let proxy = StallingProxy::start(registry.port, &layer, Misbehaviour::Stall, usize::MAX);

    let text = format!(
        "[registries.\"{host}\"]\ninsecure = true\n\n[containers.stalled]\nimage = \"{host}/keel/stall:v1\"\n\
         restart = \"always\"\nstop_timeout = 1\ncommand = [\"sleep\", \"1000\"]\n",
        host = proxy.host()
    );
    let mut options = SupervisorOptions::new(&host.state_dir);
    options.cgroup_root = host.cgroup_root();
    options.registry_timeouts = RegistryTimeouts {
        idle: Duration::from_secs(10),
        attempts: 2,
        first_backoff: Duration::from_millis(100),
        ..RegistryTimeouts::default()
    };
    let handle = Supervisor::start(options, reaper(), &user_data(&text)).unwrap();
    let blob_requests = |count: usize| {
        wait_for("the stalled blob requested", Duration::from_secs(60), || {
            (proxy.blob_ranges().len() >= count).then_some(())
        })
    };
    blob_requests(1);
    let stalled_at = Instant::now();
    assert_eq!(handle.container("stalled").unwrap().state, State::Pulling);

    let asked = Instant::now();
    handle.stop("stalled", None).unwrap();
    let stop_took = asked.elapsed();
    println!("stop during the stalled pull took {stop_took:?}");
    assert!(stop_took < PROMPT, "stop waited on the stalled pull for {stop_took:?}");
    assert_eq!(handle.container("stalled").unwrap().state, State::Created);

    // The abandoned pull ends by itself: 2 tries of 10 s idle and a 100 ms backoff (bound 60 s).
    let failed = wait_status(&handle, "stalled", "the stalled pull's error", |status| !status.error.is_empty());
    let pull_took = stalled_at.elapsed();
    println!("the stalled pull failed {pull_took:?} after its first blob request: {}", failed.error);
    let expected = format!("blob {layer} from {}: no data for 10s", proxy.host());
    assert!(failed.error.contains(&expected), "{}", failed.error);
    assert!(pull_took < Duration::from_secs(60), "the stalled pull took {pull_took:?}");

    // A start pulls again; it stalls again; shutdown does not wait for it either.
    handle.start("stalled").unwrap();
    blob_requests(3);
    let asked = Instant::now();
    handle.shutdown();
    let shutdown_took = asked.elapsed();
    println!("shutdown during the stalled pull took {shutdown_took:?}");
    assert!(shutdown_took < PROMPT, "shutdown waited on the stalled pull for {shutdown_took:?}");
    assert!(handle.status().is_empty());
}
