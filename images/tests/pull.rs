//! Pulls from a real `docker-registry` on loopback: whiteouts and opaque dirs through overlayfs, multi-arch
//! indexes, basic and token auth, a corrupted blob, and skopeo reading what keel stored; and from a hostile
//! server, a manifest no real registry stores (a layer size of `u64::MAX`).

// Fixture helpers outside #[test] functions unwrap too: a failed setup should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::ffi::CString;
use std::net::Ipv4Addr;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;

use keel_fixtures::images::{raw_tar, Layout, RawEntry};
use keel_fixtures::registry::Registry;
use keel_fixtures::token_proxy::TokenProxy;
use keel_fixtures::{run, tree};
use keel_images::{
    pull_image, ImageReference, ImageStore, NoProgress, ProgressSink, PullEvent, PullOptions, RegistryClient,
    RegistrySettings,
};
use keel_logs::error_chain;

struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
}

impl Fixture {
    fn new() -> Fixture {
        let temp = tempfile::tempdir().unwrap();
        let dir = temp.path().to_path_buf();
        Fixture { _temp: temp, dir }
    }

    fn store(&self) -> ImageStore {
        ImageStore::open(&self.dir.join("images"), &self.dir.join("layers")).unwrap()
    }
}

fn insecure(host: &str, credentials: Option<(&str, &str)>) -> RegistryClient {
    let settings = RegistrySettings {
        insecure: true,
        username: credentials.map(|(user, _)| user.to_string()),
        password: credentials.map(|(_, password)| password.to_string()),
    };
    RegistryClient::new(HashMap::from([(host.to_string(), settings)]))
}

fn write(root: &Path, path: &str, content: &str) {
    let path = root.join(path);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
}

/// A one-layer image with a little content, tagged `tag` in `layout`.
fn small_image(layout: &Layout, tag: &str, marker: &str) {
    layout.new_image(tag);
    layout.add_layer(tag, |rootfs| {
        write(rootfs, "etc/marker", marker);
        // Some incompressible bytes so the gzip stream is more than a header.
        let noise: Vec<u8> = (0..200_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
        std::fs::write(rootfs.join("noise.bin"), noise).unwrap();
    });
}

fn getxattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let path = CString::new(path.to_str().unwrap()).unwrap();
    let name = CString::new(name).unwrap();
    let mut buffer = vec![0u8; 256];
    // SAFETY: both strings are NUL-terminated and `buffer` is writable for its full length; all outlive the call.
    let size = unsafe { libc::lgetxattr(path.as_ptr(), name.as_ptr(), buffer.as_mut_ptr().cast(), buffer.len()) };
    if size < 0 {
        return None;
    }
    buffer.truncate(size as usize);
    Some(buffer)
}

#[test]
fn whiteouts_and_opaque_dirs_merge_like_docker() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    let layout = Layout::create(&fixture.dir.join("build"));
    layout.new_image("v1");
    layout.add_layer("v1", |rootfs| {
        write(rootfs, "etc/keep.txt", "keep");
        write(rootfs, "etc/gone.txt", "gone");
        write(rootfs, "data/old1", "old1");
        write(rootfs, "data/sub/old2", "old2");
        std::os::unix::fs::symlink("etc/keep.txt", rootfs.join("link")).unwrap();
    });
    layout.add_layer("v1", |rootfs| {
        std::fs::remove_file(rootfs.join("etc/gone.txt")).unwrap();
        write(rootfs, "etc/new.txt", "new");
    });
    layout.add_raw_layer(
        "v1",
        &raw_tar(&[
            RawEntry::Dir("data/"),
            RawEntry::File("data/.wh..wh..opq", b""),
            RawEntry::File("data/new1", b"new1"),
        ]),
    );
    layout.push("v1", &registry.host(), "keel/whiteouts:v1", None);

    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/whiteouts:v1", registry.host()).parse().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let client = insecure(&registry.host(), None);
    pull_image(&client, &store, &reference, &PullOptions::default(), &sender as &dyn ProgressSink).unwrap();
    let events: Vec<PullEvent> = receiver.try_iter().collect();
    assert!(matches!(events.first(), Some(PullEvent::Resolved { layers: 3, .. })), "{events:?}");
    assert!(matches!(events.last(), Some(PullEvent::Done { .. })));
    assert_eq!(events.iter().filter(|event| matches!(event, PullEvent::LayerDone { reused: false, .. })).count(), 3);

    let image = store.image(&reference).unwrap();
    let [lower, middle, upper] = &image.layer_dirs[..] else { panic!("expected 3 layers: {:?}", image.layer_dirs) };
    let whiteout = std::fs::symlink_metadata(middle.join("etc/gone.txt")).unwrap();
    assert!(whiteout.file_type().is_char_device() && whiteout.rdev() == 0, "whiteout must be char 0/0");
    assert_eq!(getxattr(&upper.join("data"), "trusted.overlay.opaque").as_deref(), Some(&b"y"[..]));
    assert_eq!(std::fs::read_link(lower.join("link")).unwrap(), Path::new("etc/keep.txt"));
    assert!(upper.join("data/new1").is_file() && !upper.join("data/.wh..wh..opq").exists());

    // The merged view, as a container would see it: overlay of the layers in a private mount namespace.
    let merged = fixture.dir.join("merged");
    std::fs::create_dir(&merged).unwrap();
    let lowerdir = format!("{}:{}:{}", upper.display(), middle.display(), lower.display());
    let script = format!(
        "mount -t overlay overlay -o ro,lowerdir={lowerdir} {m} && cd {m} && find . -mindepth 1 | sort && cat etc/keep.txt",
        m = merged.display()
    );
    let listing = run("unshare", &["--mount", "--propagation", "private", "sh", "-c", &script]);
    let expected = "./data\n./data/new1\n./etc\n./etc/keep.txt\n./etc/new.txt\n./link\n./noise.bin\n";
    let expected = expected.replace("./noise.bin\n", "");
    assert_eq!(listing, format!("{expected}keep"), "merged root differs from what Docker shows");
}

#[test]
fn multi_arch_index_resolves_to_amd64() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    let layout = Layout::create(&fixture.dir.join("build"));
    for architecture in ["amd64", "arm64"] {
        small_image(&layout, architecture, architecture);
        layout.set_architecture(architecture, architecture);
    }
    let entries: Vec<serde_json::Value> = ["arm64", "amd64"]
        .iter()
        .map(|architecture| {
            let (media_type, digest, size) = layout.manifest_of(architecture);
            serde_json::json!({"mediaType": media_type, "digest": digest, "size": size,
                "platform": {"architecture": architecture, "os": "linux"}})
        })
        .collect();
    let index = serde_json::to_vec(
        &serde_json::json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries}),
    )
    .unwrap();
    let index_digest = keel_images::Digest::of_bytes(&index);
    std::fs::write(layout.path.join("blobs/sha256").join(index_digest.hex()), &index).unwrap();
    let index_json_path = layout.path.join("index.json");
    let mut index_json: serde_json::Value = serde_json::from_slice(&std::fs::read(&index_json_path).unwrap()).unwrap();
    index_json["manifests"].as_array_mut().unwrap().push(serde_json::json!({
        "mediaType": "application/vnd.oci.image.index.v1+json", "digest": index_digest.to_string(), "size": index.len(),
        "annotations": {"org.opencontainers.image.ref.name": "multi"}}));
    std::fs::write(&index_json_path, serde_json::to_vec(&index_json).unwrap()).unwrap();
    let destination = format!("docker://{}/keel/multi:latest", registry.host());
    run(
        "skopeo",
        &[
            "copy",
            "--quiet",
            "--all",
            "--dest-tls-verify=false",
            &format!("oci:{}", layout.image("multi")),
            &destination,
        ],
    );

    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/multi", registry.host()).parse().unwrap();
    let pulled =
        pull_image(&insecure(&registry.host(), None), &store, &reference, &PullOptions::default(), &NoProgress)
            .unwrap();
    let image = store.image(&reference).unwrap();
    assert_eq!(image.config.architecture, "amd64");
    assert_eq!(std::fs::read_to_string(image.layer_dirs[0].join("etc/marker")).unwrap(), "amd64");
    // skopeo may convert the manifest on push, so compare with what the registry serves for the amd64 entry.
    assert_ne!(pulled.manifest_digest.to_string(), index_digest.to_string());
}

#[test]
fn basic_auth_registry() {
    let fixture = Fixture::new();
    let registry = Registry::start_with_basic_auth(&fixture.dir.join("registry"), "keel", "s3cret");
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "basic");
    layout.push("v1", &registry.host(), "keel/basic:v1", Some(("keel", "s3cret")));
    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/basic:v1", registry.host()).parse().unwrap();

    let anonymous =
        pull_image(&insecure(&registry.host(), None), &store, &reference, &PullOptions::default(), &NoProgress);
    let error = anonymous.expect_err("pull without credentials must fail");
    assert!(error_chain(&error).contains("401"), "{}", error_chain(&error));
    let wrong = insecure(&registry.host(), Some(("keel", "wrong")));
    let error = pull_image(&wrong, &store, &reference, &PullOptions::default(), &NoProgress)
        .expect_err("pull with a wrong password must fail");
    let message = error_chain(&error);
    // The registry refused the credentials: not a network error, not a missing image.
    assert!(message.contains("HTTP 401: the registry refused the credentials of user \"keel\""), "{message}");
    assert!(!store.is_complete(&reference));

    let client = insecure(&registry.host(), Some(("keel", "s3cret")));
    pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress).unwrap();
    assert!(store.is_complete(&reference));
}

#[test]
fn bearer_token_flow() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    let proxy = TokenProxy::start(registry.port, "keel", "t0ken-pass");
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "token");
    layout.push("v1", &registry.host(), "keel/token:v1", None);
    let store = fixture.store();
    // The client only ever talks to the proxy, which demands a token from its own realm.
    let reference: ImageReference = format!("{}/keel/token:v1", proxy.host()).parse().unwrap();

    let without_credentials =
        pull_image(&insecure(&proxy.host(), None), &store, &reference, &PullOptions::default(), &NoProgress);
    let error = without_credentials.expect_err("the token endpoint must refuse anonymous requests");
    let message = error_chain(&error);
    assert!(message.contains("/token") && message.contains("needs credentials and none are configured"), "{message}");
    assert!(!store.is_complete(&reference));

    let wrong = insecure(&proxy.host(), Some(("keel", "wrong")));
    let error = pull_image(&wrong, &store, &reference, &PullOptions::default(), &NoProgress)
        .expect_err("the token endpoint must refuse a wrong password");
    let message = error_chain(&error);
    assert!(message.contains("HTTP 401: the registry refused the credentials of user \"keel\""), "{message}");

    let client = insecure(&proxy.host(), Some(("keel", "t0ken-pass")));
    pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress).unwrap();
    assert!(store.is_complete(&reference));
    assert!(proxy.tokens_issued.load(std::sync::atomic::Ordering::SeqCst) >= 1);
    // The realm is the registry's own host and port, so plain HTTP may carry the credentials there.
    let sent = proxy.token_authorizations();
    assert!(sent.contains(&Some("Basic a2VlbDp0MGtlbi1wYXNz".to_string())), "{sent:?}");
}

#[test]
fn credentials_are_withheld_from_a_plain_http_realm_on_another_host() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    // The registry (the proxy's front) is on 127.0.0.1, the realm its 401 names on 127.0.0.2: another host.
    let proxy = TokenProxy::start_with_realm_on(registry.port, "keel", "t0ken-pass", Ipv4Addr::new(127, 0, 0, 2));
    assert!(proxy.realm.starts_with("http://127.0.0.2:"), "{}", proxy.realm);
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "token");
    layout.push("v1", &registry.host(), "keel/token:v1", None);
    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/token:v1", proxy.host()).parse().unwrap();

    let client = insecure(&proxy.host(), Some(("keel", "t0ken-pass")));
    let error = pull_image(&client, &store, &reference, &PullOptions::default(), &NoProgress)
        .expect_err("the realm refuses anonymous requests and must not get the credentials");
    let message = error_chain(&error);
    let expected = format!(
        "the credentials for {} were withheld from the token realm {} (plain HTTP to a host other than the \
         registry's own) and the anonymous request was refused",
        proxy.host(),
        proxy.realm
    );
    assert!(message.contains(&expected), "{message}");
    let sent = proxy.token_authorizations();
    assert!(!sent.is_empty() && sent.iter().all(Option::is_none), "the realm got an Authorization: {sent:?}");
    assert_eq!(proxy.tokens_issued.load(std::sync::atomic::Ordering::SeqCst), 0);
    assert!(!store.is_complete(&reference));
}

#[test]
fn corrupted_blob_fails_and_leaves_nothing() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "corrupt");
    layout.push("v1", &registry.host(), "keel/corrupt:v1", None);
    let layer = layout.layer_digests("v1").pop().unwrap();
    let hex = layer.trim_start_matches("sha256:");
    let data_path = registry.blob_data_path(hex);
    let mut bytes = std::fs::read(&data_path).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0xff;
    std::fs::write(&data_path, &bytes).unwrap();

    let store = fixture.store();
    let index_before = std::fs::read(store.layout().index_path()).unwrap();
    let reference: ImageReference = format!("{}/keel/corrupt:v1", registry.host()).parse().unwrap();
    let error = pull_image(&insecure(&registry.host(), None), &store, &reference, &PullOptions::default(), &NoProgress)
        .expect_err("a corrupted blob must fail the pull");
    let message = error_chain(&error);
    assert!(message.contains(&layer), "error must name the digest {layer}: {message}");
    assert!(!store.blob_path(&layer.parse().unwrap()).exists(), "no blob file");
    assert_eq!(tree(&store.layout().temp_dir()), Vec::<String>::new(), "no temp file");
    assert_eq!(tree(store.layers_root()), Vec::<String>::new(), "no layer dir");
    assert_eq!(tree(&store.layout().blobs_dir()), Vec::<String>::new(), "no manifest or config either");
    assert_eq!(std::fs::read(store.layout().index_path()).unwrap(), index_before, "index.json unchanged");
}

#[test]
fn skopeo_reads_the_store() {
    let fixture = Fixture::new();
    let registry = Registry::start(&fixture.dir.join("registry"));
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "inspect");
    layout.push("v1", &registry.host(), "keel/inspect:v1", None);
    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/inspect:v1", registry.host()).parse().unwrap();
    let pulled =
        pull_image(&insecure(&registry.host(), None), &store, &reference, &PullOptions::default(), &NoProgress)
            .unwrap();
    // A second pull reuses everything.
    pull_image(&insecure(&registry.host(), None), &store, &reference, &PullOptions::default(), &NoProgress).unwrap();

    let target = format!("oci:{}:{}", store.layout().root().display(), reference);
    let output = Command::new("skopeo").args(["inspect", &target]).output().unwrap();
    assert!(output.status.success(), "skopeo inspect: {}", String::from_utf8_lossy(&output.stderr));
    let inspected: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(inspected["Digest"], pulled.manifest_digest.to_string());
    assert_eq!(inspected["Architecture"], "amd64");
    assert_eq!(inspected["Layers"].as_array().unwrap().len(), 1);
}

/// Serves `manifest` for every manifest request and the layout's blobs, over plain HTTP on loopback: a registry
/// that says what no real one stores (a Go registry keeps sizes as int64 and refuses the manifest on push).
struct HostileRegistry {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HostileRegistry {
    fn start(layout_dir: PathBuf, manifest: Vec<u8>) -> HostileRegistry {
        use std::io::{BufRead, Write};
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let stop_flag = stop.clone();
        let thread = std::thread::spawn(move || {
            for connection in listener.incoming() {
                if stop_flag.load(std::sync::atomic::Ordering::SeqCst) {
                    break;
                }
                let Ok(mut connection) = connection else { continue };
                let mut reader = std::io::BufReader::new(connection.try_clone().unwrap());
                let mut request_line = String::new();
                let _ = reader.read_line(&mut request_line);
                loop {
                    let mut line = String::new();
                    if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                        break;
                    }
                }
                let target = request_line.split_whitespace().nth(1).unwrap_or("").to_string();
                let (content_type, body) = if target.contains("/manifests/") {
                    ("application/vnd.oci.image.manifest.v1+json", manifest.clone())
                } else if let Some((_, digest)) = target.split_once("/blobs/") {
                    let path = layout_dir.join("blobs/sha256").join(digest.trim_start_matches("sha256:"));
                    ("application/octet-stream", std::fs::read(path).unwrap_or_default())
                } else {
                    ("application/json", b"{}".to_vec())
                };
                let _ = write!(
                    connection,
                    "HTTP/1.1 200 OK\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                    body.len()
                );
                let _ = connection.write_all(&body);
            }
        });
        HostileRegistry { port, stop, thread: Some(thread) }
    }

    fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for HostileRegistry {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let _ = std::net::TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn a_layer_size_of_u64_max_fails_the_pull_without_overflow() {
    let fixture = Fixture::new();
    let layout = Layout::create(&fixture.dir.join("build"));
    small_image(&layout, "v1", "huge");
    layout.add_raw_layer("v1", &raw_tar(&[RawEntry::File("second", b"2")]));
    let (_, digest, _) = layout.manifest_of("v1");
    let mut manifest: serde_json::Value = serde_json::from_slice(&layout.read_blob(&digest)).unwrap();
    // The first layer's real size stays, the second claims u64::MAX: their sum and `size + 1` both overflow.
    manifest["layers"][1]["size"] = u64::MAX.into();
    let hostile = HostileRegistry::start(layout.path.clone(), serde_json::to_vec(&manifest).unwrap());

    let store = fixture.store();
    let reference: ImageReference = format!("{}/keel/huge:v1", hostile.host()).parse().unwrap();
    let (sender, receiver) = std::sync::mpsc::channel();
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        pull_image(
            &insecure(&hostile.host(), None),
            &store,
            &reference,
            &PullOptions::default(),
            &sender as &dyn ProgressSink,
        )
        .map(|pulled| pulled.reference)
        .map_err(|error| error_chain(&error))
    }));
    let message = result.expect("the pull panicked on a size from the network").expect_err("the size cannot match");
    println!("{message}");
    assert!(message.contains(&format!("expected {} bytes", u64::MAX)), "{message}");
    let events: Vec<PullEvent> = receiver.try_iter().collect();
    assert!(
        matches!(events.first(), Some(PullEvent::Resolved { total_bytes: u64::MAX, layers: 2, .. })),
        "the total saturates: {events:?}"
    );
    assert!(!store.is_complete(&reference));
    assert_eq!(tree(store.layers_root()).iter().filter(|name| name.contains(".tmp-")).count(), 0, "no temp layer dir");
}
