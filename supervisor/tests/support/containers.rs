//! Container fixtures: a busybox image built with umoci (cached as an archive), a temp state dir with it
//! imported, and the one reaper a test process may have.
//!
//! Every `waitpid(-1)` takes any child of the process, so a test binary gets exactly one [`reaper`], polled by one
//! thread, and must run its external commands (umoci, skopeo) before the first reaper exists: [`busybox_archive`]
//! is built under a lock that callers take before they ask for the reaper.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use keel_supervisor::image::{ImageReference, ImageStore};
use keel_supervisor::runtime::RuntimeDirs;
use keel_supervisor::Reaper;

use super::images::Layout;
use super::run;

/// The reference the busybox test image is imported as.
pub const BUSYBOX: &str = "keel-test/busybox:1";

const PASSWD: &str = "root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n\
                      app:x:1000:1000:app:/home/app:/bin/sh\n";
const GROUP: &str = "root:x:0:\nnogroup:x:65534:\nwheel:x:10:app\napp:x:1000:\n";

/// Builds (once per `cache_dir`) a docker-archive of a busybox-static image: every applet in /bin, /etc/passwd
/// and /etc/group with nobody, `Env` with `PATH` and `FROM_IMAGE=yes`, `WorkingDir` /srv/app, `Cmd` sh, and a
/// file at /data/seed for named-volume population.
pub fn build_busybox_archive(cache_dir: &Path) -> PathBuf {
    let archive = cache_dir.join("busybox-test-image-v3.tar");
    if archive.exists() {
        return archive;
    }
    let work = ScratchDir::new("busybox-build");
    let layout = Layout::create(work.path());
    layout.new_image("busybox");
    layout.add_layer("busybox", |rootfs| {
        for dir in ["bin", "etc", "tmp", "root", "home/app", "srv", "data"] {
            std::fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        std::fs::copy("/bin/busybox", rootfs.join("bin/busybox")).unwrap();
        let applets = run("/bin/busybox", &["--list"]);
        for applet in applets.lines().filter(|name| !name.is_empty() && *name != "busybox") {
            std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(applet)).unwrap();
        }
        std::fs::write(rootfs.join("etc/passwd"), PASSWD).unwrap();
        std::fs::write(rootfs.join("etc/group"), GROUP).unwrap();
        std::fs::write(rootfs.join("data/seed"), "from the image\n").unwrap();
    });
    let image = layout.image("busybox");
    run(
        "umoci",
        &[
            "config",
            "--image",
            &image,
            "--config.env",
            "PATH=/bin",
            "--config.env",
            "FROM_IMAGE=yes",
            "--config.workingdir",
            "/srv/app",
            "--config.cmd",
            "sh",
        ],
    );
    let partial = cache_dir.join(format!("busybox-{}.tar.partial", std::process::id()));
    let _ = std::fs::remove_file(&partial);
    let destination = format!("docker-archive:{}:{BUSYBOX}", partial.display());
    run("skopeo", &["copy", "--quiet", &format!("oci:{image}"), &destination]);
    std::fs::rename(&partial, &archive).unwrap();
    archive
}

static ARCHIVE: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The cached busybox archive for this test binary's target dir.
pub fn busybox_archive(cache_dir: &Path) -> PathBuf {
    let mut archive = ARCHIVE.lock().unwrap_or_else(|poison| poison.into_inner());
    archive.get_or_insert_with(|| build_busybox_archive(cache_dir)).clone()
}

/// The test process's one reaper, polled every few milliseconds (tests have no SIGCHLD loop). Makes the process a
/// subreaper so orphans come back to it.
pub fn reaper() -> Arc<Reaper> {
    static REAPER: OnceLock<Arc<Reaper>> = OnceLock::new();
    REAPER
        .get_or_init(|| {
            keel_supervisor::runtime::become_subreaper().unwrap();
            let reaper = Arc::new(Reaper::new());
            let polled = Arc::clone(&reaper);
            std::thread::spawn(move || loop {
                polled.reap_all();
                std::thread::sleep(Duration::from_millis(5));
            });
            reaper
        })
        .clone()
}

/// A state dir in a temp dir with the busybox image imported; everything is removed on drop.
pub struct TestHost {
    pub temp: ScratchDir,
    pub state_dir: PathBuf,
    pub store: Arc<ImageStore>,
}

impl TestHost {
    pub fn new(cache_dir: &Path) -> TestHost {
        let archive = busybox_archive(cache_dir);
        let temp = ScratchDir::new("host");
        let state_dir = temp.path().join("state");
        let store = ImageStore::open(&state_dir.join("images"), &state_dir.join("layers")).unwrap();
        store.import_archive(&archive).unwrap();
        TestHost { temp, state_dir, store: Arc::new(store) }
    }

    pub fn runtime_dirs(&self) -> RuntimeDirs {
        RuntimeDirs {
            layers_root: self.state_dir.join("layers"),
            containers_dir: self.state_dir.join("containers"),
            volumes_dir: self.state_dir.join("volumes"),
            cgroup_root: cgroup_root(),
        }
    }

    pub fn busybox(&self) -> ImageReference {
        BUSYBOX.parse().unwrap()
    }
}

/// A directory under the system temp dir, removed with everything in it on drop (std only: the bench binary
/// includes these fixtures and has no dev-dependencies).
pub struct ScratchDir {
    path: PathBuf,
}

impl ScratchDir {
    pub fn new(label: &str) -> ScratchDir {
        static COUNTER: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("keel-{label}-{}-{count}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        ScratchDir { path }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for ScratchDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Where this host has cgroup2: the unified mount of a hybrid host, or /sys/fs/cgroup.
pub fn cgroup_root() -> Option<PathBuf> {
    ["/sys/fs/cgroup/unified", "/sys/fs/cgroup"]
        .into_iter()
        .map(PathBuf::from)
        .find(|path| path.join("cgroup.procs").exists())
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes; panics with `what` on timeout.
pub fn wait_for<T>(what: &str, timeout: Duration, mut condition: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = condition() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out after {timeout:?} waiting for {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// Parses a user-data text, with `{image}` replaced by the busybox test image.
pub fn user_data(text: &str) -> keel_config::UserData {
    keel_config::UserData::parse("test", &text.replace("{image}", BUSYBOX)).unwrap()
}

/// Starts a supervisor on `host`'s state dir (and the host's cgroup2, if any).
pub fn supervise(host: &TestHost, text: &str) -> keel_supervisor::supervise::SupervisorHandle {
    let mut options = keel_supervisor::supervise::SupervisorOptions::new(&host.state_dir);
    options.cgroup_root = cgroup_root();
    keel_supervisor::supervise::Supervisor::start(options, reaper(), &user_data(text)).unwrap()
}

/// Waits until `name`'s status satisfies `condition`; returns that status.
pub fn wait_status(
    handle: &keel_supervisor::supervise::SupervisorHandle,
    name: &str,
    what: &str,
    condition: impl Fn(&keel_supervisor::supervise::ContainerStatus) -> bool,
) -> keel_supervisor::supervise::ContainerStatus {
    wait_for(&format!("{name}: {what}"), Duration::from_secs(60), || {
        handle.container(name).filter(|status| condition(status))
    })
}
