//! Registries that stall or trickle in the middle of a blob, in front of a real `docker-registry` on loopback: the
//! pull fails within its deadlines naming the registry and the blob, or resumes from the byte it stopped at.

// Fixture helpers outside #[test] functions unwrap too: a failed setup should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use keel_fixtures::images::Layout;
use keel_fixtures::registry::Registry;
use keel_fixtures::stalling_proxy::{Misbehaviour, StallingProxy, SENT_BEFORE_STALL};
use keel_fixtures::tree;
use keel_images::{
    pull_image, ImageReference, ImageStore, NoProgress, PullError, PullOptions, PulledImage, RegistryClient,
    RegistrySettings, RegistryTimeouts,
};
use keel_logs::error_chain;

/// A registry with a one-layer image (about 200 KB of incompressible noise) pushed as `keel/stall:v1`.
struct Pushed {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    registry: Registry,
    layer: String,
}

impl Pushed {
    fn new() -> Pushed {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        let registry = Registry::start(&dir.join("registry"));
        let layout = Layout::create(&dir.join("build"));
        layout.new_image("v1");
        layout.add_layer("v1", |rootfs| {
            std::fs::create_dir_all(rootfs.join("etc")).unwrap();
            std::fs::write(rootfs.join("etc/marker"), "resumed").unwrap();
            let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
            std::fs::write(rootfs.join("noise.bin"), noise).unwrap();
        });
        layout.push("v1", &registry.host(), "keel/stall:v1", None);
        let layer = layout.layer_digests("v1").pop().unwrap();
        Pushed { _temp: temp, dir, registry, layer }
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(&self.dir.join("images"), &self.dir.join("layers")).unwrap()
    }
}

/// Pulls `keel/stall:v1` through `proxy` on a thread with `timeouts`; gives up (fails the test) after 120 s, so
/// that a pull without deadlines fails here instead of hanging the test run. Returns the result and its duration.
fn pull_through(
    proxy: &StallingProxy,
    store: ImageStore,
    timeouts: RegistryTimeouts,
) -> (Result<PulledImage, PullError>, Duration, ImageStore) {
    let host = proxy.host();
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        let settings = RegistrySettings { insecure: true, ..RegistrySettings::default() };
        let client = RegistryClient::with_timeouts(HashMap::from([(host.clone(), settings)]), timeouts);
        let reference: ImageReference = format!("{host}/keel/stall:v1").parse().unwrap();
        let started = Instant::now();
        let result = pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress);
        let _ = sender.send((result, started.elapsed(), store));
    });
    receiver.recv_timeout(Duration::from_secs(120)).expect("the pull was still waiting on the registry after 120 s")
}

fn short_timeouts() -> RegistryTimeouts {
    RegistryTimeouts {
        connect: Duration::from_secs(5),
        idle: Duration::from_secs(1),
        request_floor: Duration::from_secs(60),
        min_bytes_per_second: 1 << 20,
        attempts: 3,
        first_backoff: Duration::from_millis(100),
    }
}

fn assert_nothing_stored(store: &ImageStore) {
    assert_eq!(tree(&store.layout().temp_dir()), Vec::<String>::new(), "no temp file");
    assert_eq!(tree(store.layers_root()), Vec::<String>::new(), "no layer dir");
    assert_eq!(tree(&store.layout().blobs_dir()), Vec::<String>::new(), "no blob");
}

/// Headers and 1 KiB, then nothing on an open socket, every time: 3 tries of 1 s without a byte, then the pull
/// fails (about 3.3 s with the backoffs; bound 30 s), naming the registry and the blob.
#[test]
fn a_blob_that_stalls_after_a_kib_fails_the_pull_within_the_deadline() {
    let pushed = Pushed::new();
    let proxy = StallingProxy::start(pushed.registry.port, &pushed.layer, Misbehaviour::Stall, usize::MAX);
    let timeouts = short_timeouts();
    let (result, elapsed, store) = pull_through(&proxy, pushed.store(), timeouts);

    let message = error_chain(&result.expect_err("a stalled blob must fail the pull"));
    println!("failed after {elapsed:?}: {message}");
    let expected =
        format!("blob {} from {}: no data for 1s at byte {SENT_BEFORE_STALL} of ", pushed.layer, proxy.host());
    assert!(message.contains(&expected), "{message}");
    assert!(message.contains("(3 tries)"), "{message}");
    // Three idle deadlines must have passed; far fewer than 30 s with the backoffs on a loaded machine.
    assert!(elapsed >= Duration::from_secs(3), "failed before three idle deadlines: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "the stalled pull took {elapsed:?}");
    // Each try after the first asked for the rest only.
    let resumed = Some(format!("bytes={SENT_BEFORE_STALL}-"));
    assert_eq!(proxy.blob_ranges(), [None, resumed.clone(), resumed]);
    assert_nothing_stored(&store);
}

/// One stall, then the registry answers: the second request asks for the rest with `Range`, the real registry
/// sends a 206, and the layer verifies and unpacks.
#[test]
fn a_blob_that_stalls_once_resumes_from_the_byte_it_stopped_at() {
    let pushed = Pushed::new();
    let proxy = StallingProxy::start(pushed.registry.port, &pushed.layer, Misbehaviour::Stall, 1);
    let (result, elapsed, store) = pull_through(&proxy, pushed.store(), short_timeouts());

    let pulled = result.unwrap_or_else(|error| panic!("{}", error_chain(&error)));
    println!("pulled after {elapsed:?}");
    assert_eq!(proxy.blob_ranges(), [None, Some(format!("bytes={SENT_BEFORE_STALL}-"))]);
    let reference: ImageReference = pulled.reference.parse().unwrap();
    assert!(store.is_complete(&reference));
    let image = store.image(&reference).unwrap();
    let marker = std::fs::read_to_string(Path::new(&image.layer_dirs[0]).join("etc/marker")).unwrap();
    assert_eq!(marker, "resumed");
}

/// One byte every 200 ms never trips the 1 s idle deadline; the request deadline (floor 2 s for this small blob)
/// ends each try: 2 tries, about 4.1 s with the backoff (bound 30 s).
#[test]
fn a_trickling_blob_fails_on_the_request_deadline() {
    let pushed = Pushed::new();
    let trickle = Misbehaviour::Trickle(Duration::from_millis(200));
    let proxy = StallingProxy::start(pushed.registry.port, &pushed.layer, trickle, usize::MAX);
    let timeouts = RegistryTimeouts { request_floor: Duration::from_secs(2), attempts: 2, ..short_timeouts() };
    let (result, elapsed, store) = pull_through(&proxy, pushed.store(), timeouts);

    let message = error_chain(&result.expect_err("a trickling blob must fail the pull"));
    println!("failed after {elapsed:?}: {message}");
    let expected =
        format!("blob {} from {}: not complete within the request's deadline of 2s", pushed.layer, proxy.host());
    assert!(message.contains(&expected), "{message}");
    assert!(message.contains("(2 tries)"), "{message}");
    assert!(elapsed >= Duration::from_secs(4), "failed before two request deadlines: {elapsed:?}");
    assert!(elapsed < Duration::from_secs(30), "the trickling pull took {elapsed:?}");
    assert_eq!(proxy.blob_ranges().len(), 2);
    assert_nothing_stored(&store);
}
