//! Finds the kernel `.deb` a build uses and keeps it in the cache: the package the recipe's lock names, checked
//! against the lock's sha256; or, when there is no lock for the recipe's kernel or the locked package has left
//! Debian's mirror, the current package behind the recipe's name (`linux-image-amd64` → `linux-image-6.1.0-57-amd64`),
//! and then the lock is rewritten.
//!
//! * A locked package already in the cache needs neither apt nor the network: an unprivileged user builds from a
//!   cache that root filled.
//! * "Current" is what the apt index says the recipe's package depends on (`apt-cache show`: the meta package's own
//!   `Depends`, `linux-image-6.1.0-57-amd64 (= 6.1.192-3)`); a recipe naming an ABI package directly is its own
//!   current package. The index also gives the `.deb`'s sha256, which a cached copy is checked against.
//! * The index can be stale or missing (a fresh CI machine): when an apt step fails and we are root, `apt-get update`
//!   runs once per build and the step is retried. A lock never moves to an older version: a stale index that
//!   offers one is an error that says to update it.
//! * Downloads go into a private directory in the cache and are renamed into place once their hash is checked, so a
//!   concurrent build never sees half a `.deb`.

use std::io::Read;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use crate::command::{CommandError, Tool};
use crate::kernel_lock::{self, KernelLockError, LockedKernel};

/// keel images are x86-64 only.
pub const ARCH: &str = "amd64";

/// How long apt waits for another apt's lock (a concurrent build's `apt-get update`) before failing.
const APT_LOCK_TIMEOUT_S: u32 = 300;

#[derive(Debug, thiserror::Error)]
pub enum KernelPackageError {
    #[error("cannot create the cache directory {path}")]
    CreateCache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    Lock(#[from] KernelLockError),
    #[error("cannot read {path} to hash it")]
    Hash {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} has sha256 {found}, but {source_of_truth} says {expected}; delete the file if it is damaged")]
    HashMismatch { path: PathBuf, expected: String, found: String, source_of_truth: String },
    #[error(
        "the mirror's {spec} has sha256 {found}, but {source_of_truth} says {expected}; it was not put in the cache \
         (was the lock edited by hand?)"
    )]
    DownloadHashMismatch { spec: String, expected: String, found: String, source_of_truth: String },
    #[error("asking apt's index about {package} failed")]
    Index {
        package: String,
        #[source]
        source: CommandError,
    },
    #[error("apt's index has no {package}{}; is it a Debian kernel package (`apt-cache search linux-image`)?",
        version.as_ref().map(|version| format!(" {version}")).unwrap_or_default())]
    NotInIndex { package: String, version: Option<String> },
    #[error("the description of {package} (apt's index or the .deb's control) lacks a valid `{field}` field")]
    IndexField { package: String, field: &'static str },
    #[error("`apt-get update` failed")]
    Update(#[source] CommandError),
    #[error("cannot use the download directory {path}")]
    DownloadDir {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("downloading {spec} into {cache} failed")]
    Download {
        spec: String,
        cache: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("`apt-get download {spec}` left {found} .deb files in {dir}, expected one")]
    DebCount { spec: String, dir: PathBuf, found: usize },
    #[error("reading the control fields of {deb} failed")]
    Control {
        deb: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("{deb} is {found}, not the {expected} that was asked for")]
    WrongPackage { deb: PathBuf, expected: String, found: String },
    #[error("cannot move the downloaded {from} to {to}")]
    Publish {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("comparing the Debian versions {a} and {b} failed")]
    CompareVersions {
        a: String,
        b: String,
        #[source]
        source: CommandError,
    },
    #[error(
        "apt's index offers {package} {version} for {name}, older than the locked {locked_package} {locked_version}; \
         the index is stale: run `apt-get update` as root"
    )]
    Older { name: String, package: String, version: String, locked_package: String, locked_version: String },
}

/// What a build does with the lock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Use the locked package; move only when it has left the mirror.
    Locked,
    /// Move to the current package (`keel-build kernel --update`).
    Update,
}

/// How the lock file changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockChange {
    Unchanged,
    /// There was no lock for the recipe's kernel (no file, or one resolved from another `kernel.package`).
    Created,
    /// The locked package has left the mirror.
    Moved {
        previous: LockedKernel,
    },
    /// `--update` found a newer package.
    Updated {
        previous: LockedKernel,
    },
}

/// The kernel package a build uses.
#[derive(Debug, Clone)]
pub struct KernelDeb {
    pub kernel: LockedKernel,
    /// The `.deb` in the cache, its sha256 checked.
    pub path: PathBuf,
    pub change: LockChange,
}

impl KernelDeb {
    /// One line for the build's log saying how the lock changed, if it did.
    pub fn change_message(&self, lock: &Path) -> Option<String> {
        let now = format!("{} {}", self.kernel.package, self.kernel.version);
        let lock = lock.display();
        match &self.change {
            LockChange::Unchanged => None,
            LockChange::Created => {
                Some(format!("kernel {} is {now} (lock written: {lock})", self.kernel.resolved_from))
            }
            LockChange::Moved { previous } => Some(format!(
                "kernel {} {} is no longer available; moving to {now} (lock rewritten: {lock})",
                previous.package, previous.version
            )),
            LockChange::Updated { previous } => Some(format!(
                "kernel moved from {} {} to {now} (lock rewritten: {lock})",
                previous.package, previous.version
            )),
        }
    }
}

/// Returns the kernel `.deb` for the recipe's `kernel.package` (`name`), in `cache`, as the lock at `lock_path` says
/// or moved as `mode` and the mirror require; a moved lock is rewritten.
pub fn fetch(name: &str, lock_path: &Path, cache: &Path, mode: Mode) -> Result<KernelDeb, KernelPackageError> {
    if !cache.is_dir() {
        std::fs::create_dir_all(cache)
            .map_err(|source| KernelPackageError::CreateCache { path: cache.into(), source })?;
    }
    let mut apt = Apt::new();
    // A lock resolved from another kernel.package (the recipe switched flavour) says nothing about this one.
    let locked = kernel_lock::read(lock_path)?.filter(|locked| locked.resolved_from == name);
    let deb = match (locked, mode) {
        (Some(locked), Mode::Locked) => match fetch_locked(&mut apt, cache, &locked, lock_path)? {
            Some(path) => KernelDeb { kernel: locked, path, change: LockChange::Unchanged },
            None => {
                let (kernel, path) = fetch_current(&mut apt, cache, name)?;
                refuse_older(name, &kernel, &locked)?;
                KernelDeb { kernel, path, change: LockChange::Moved { previous: locked } }
            }
        },
        (Some(locked), Mode::Update) => {
            // Moving on purpose wants the mirror's newest, not what a stale index remembers.
            apt.refresh("to find the current kernel")?;
            let (kernel, path) = fetch_current(&mut apt, cache, name)?;
            if kernel.package == locked.package && kernel.version == locked.version {
                if kernel.sha256 != locked.sha256 {
                    return Err(KernelPackageError::HashMismatch {
                        path,
                        expected: locked.sha256,
                        found: kernel.sha256,
                        source_of_truth: format!("the lock {}", lock_path.display()),
                    });
                }
                KernelDeb { kernel: locked, path, change: LockChange::Unchanged }
            } else {
                refuse_older(name, &kernel, &locked)?;
                KernelDeb { kernel, path, change: LockChange::Updated { previous: locked } }
            }
        }
        (None, _) => {
            let (kernel, path) = fetch_current(&mut apt, cache, name)?;
            KernelDeb { kernel, path, change: LockChange::Created }
        }
    };
    if deb.change != LockChange::Unchanged {
        kernel_lock::write(lock_path, &deb.kernel)?;
    }
    Ok(deb)
}

/// The cache's file name of a package's `.deb` (apt's own naming: an epoch's `:` is `%3a`).
pub fn deb_file_name(package: &str, version: &str) -> String {
    format!("{package}_{}_{ARCH}.deb", version.replace(':', "%3a"))
}

/// The locked `.deb`, from the cache or downloaded; `None` when the mirror no longer has it.
fn fetch_locked(
    apt: &mut Apt,
    cache: &Path,
    locked: &LockedKernel,
    lock_path: &Path,
) -> Result<Option<PathBuf>, KernelPackageError> {
    let source_of_truth = format!("the lock {}", lock_path.display());
    let cached = cache.join(deb_file_name(&locked.package, &locked.version));
    if cached.is_file() {
        check_hash(&cached, &locked.sha256, &source_of_truth)?;
        return Ok(Some(cached));
    }
    loop {
        match download(cache, locked, &source_of_truth) {
            Ok(path) => return Ok(Some(path)),
            Err(KernelPackageError::Download { source, .. }) if is_gone(apt, locked, &source)? => {
                // A stale index may not know a package the mirror has: look again once, with a fresh one.
                let why = format!("{} {} is not in the index or on the mirror", locked.package, locked.version);
                if apt.refresh(&why)? {
                    continue;
                }
                return Ok(None);
            }
            Err(error) => return Err(error),
        }
    }
}

/// Whether a failed download of the locked package means it has left the mirror (rather than, say, no network):
/// the index no longer lists that version, or the mirror answered 404.
fn is_gone(apt: &Apt, locked: &LockedKernel, failure: &CommandError) -> Result<bool, KernelPackageError> {
    if let CommandError::Failed { stderr, .. } = failure {
        if stderr.contains("404") {
            return Ok(true);
        }
    }
    Ok(apt.entry(&locked.package, Some(&locked.version))?.is_none())
}

/// Resolves `name` to the current kernel package and returns it with its `.deb` in the cache; when that fails and
/// the index may be stale, updates it once and tries again.
fn fetch_current(apt: &mut Apt, cache: &Path, name: &str) -> Result<(LockedKernel, PathBuf), KernelPackageError> {
    match try_fetch_current(apt, cache, name) {
        Err(error) if apt.refresh(&error.to_string())? => try_fetch_current(apt, cache, name),
        result => result,
    }
}

fn try_fetch_current(apt: &Apt, cache: &Path, name: &str) -> Result<(LockedKernel, PathBuf), KernelPackageError> {
    let named =
        apt.entry(name, None)?.ok_or_else(|| KernelPackageError::NotInIndex { package: name.into(), version: None })?;
    let entry = match named.kernel_dependency()? {
        Some((package, version)) => {
            apt.entry(&package, version.as_deref())?.ok_or(KernelPackageError::NotInIndex { package, version })?
        }
        None => named,
    };
    let (package, version) = (entry.field("Package")?, entry.field("Version")?);
    let sha256 = entry.field("SHA256")?;
    if !kernel_lock::is_package_name(&package) || !kernel_lock::is_version(&version) {
        return Err(KernelPackageError::IndexField { package, field: "Package or Version" });
    }
    let kernel = LockedKernel { resolved_from: name.into(), package, version, sha256 };
    let source_of_truth = "apt's index".to_owned();
    let cached = cache.join(deb_file_name(&kernel.package, &kernel.version));
    if cached.is_file() {
        check_hash(&cached, &kernel.sha256, &source_of_truth)?;
        return Ok((kernel, cached));
    }
    let path = download(cache, &kernel, &source_of_truth)?;
    Ok((kernel, path))
}

fn refuse_older(name: &str, current: &LockedKernel, locked: &LockedKernel) -> Result<(), KernelPackageError> {
    if version_less(&current.version, &locked.version)? {
        return Err(KernelPackageError::Older {
            name: name.into(),
            package: current.package.clone(),
            version: current.version.clone(),
            locked_package: locked.package.clone(),
            locked_version: locked.version.clone(),
        });
    }
    Ok(())
}

/// Debian's version order, from `dpkg --compare-versions`.
fn version_less(a: &str, b: &str) -> Result<bool, KernelPackageError> {
    match Tool::new("dpkg").args(["--compare-versions", a, "lt", b]).run() {
        Ok(_) => Ok(true),
        Err(CommandError::Failed { status, .. }) if status.code() == Some(1) => Ok(false),
        Err(source) => Err(KernelPackageError::CompareVersions { a: a.into(), b: b.into(), source }),
    }
}

/// Downloads `kernel.package=kernel.version` into a private directory in `cache`, checks that it is that package
/// with `kernel.sha256` (which `source_of_truth` vouches for), then renames it into the cache.
fn download(cache: &Path, kernel: &LockedKernel, source_of_truth: &str) -> Result<PathBuf, KernelPackageError> {
    let spec = format!("{}={}", kernel.package, kernel.version);
    let dir_error = |path: &Path| {
        let path = path.to_owned();
        move |source| KernelPackageError::DownloadDir { path, source }
    };
    let private = tempfile::Builder::new().prefix(".download-").tempdir_in(cache).map_err(dir_error(cache))?;
    let private = private.path();
    eprintln!("keel-build: downloading {spec} into {}", cache.display());
    apt_tool("apt-get")
        .arg("download")
        .arg(&spec)
        .current_dir(private)
        .run()
        .map_err(|source| KernelPackageError::Download { spec: spec.clone(), cache: cache.into(), source })?;
    let mut debs = Vec::new();
    for entry in std::fs::read_dir(private).map_err(dir_error(private))? {
        let path = entry.map_err(dir_error(private))?.path();
        if path.extension().is_some_and(|extension| extension == "deb") {
            debs.push(path);
        }
    }
    let [deb] = debs.as_slice() else {
        return Err(KernelPackageError::DebCount { spec, dir: private.into(), found: debs.len() });
    };
    let control = Tool::new("dpkg-deb")
        .arg("-f")
        .arg(deb)
        .args(["Package", "Version"])
        .run()
        .map_err(|source| KernelPackageError::Control { deb: deb.clone(), source })?;
    let control = Paragraph(String::from_utf8_lossy(&control).into_owned());
    let (package, version) = (control.field("Package")?, control.field("Version")?);
    if package != kernel.package || version != kernel.version {
        return Err(KernelPackageError::WrongPackage {
            deb: deb.clone(),
            expected: spec,
            found: format!("{package} {version}"),
        });
    }
    let found = sha256_file(deb)?;
    if found != kernel.sha256 {
        return Err(KernelPackageError::DownloadHashMismatch {
            spec,
            expected: kernel.sha256.clone(),
            found,
            source_of_truth: source_of_truth.into(),
        });
    }
    let target = cache.join(deb_file_name(&kernel.package, &kernel.version));
    // Same filesystem, so atomic: a concurrent build sees the whole file or none; two builds renaming the same
    // checked bytes over each other is harmless.
    std::fs::rename(deb, &target).map_err(|source| KernelPackageError::Publish {
        from: deb.clone(),
        to: target.clone(),
        source,
    })?;
    Ok(target)
}

fn check_hash(path: &Path, expected: &str, source_of_truth: &str) -> Result<(), KernelPackageError> {
    let found = sha256_file(path)?;
    if found != expected {
        return Err(KernelPackageError::HashMismatch {
            path: path.into(),
            expected: expected.into(),
            found,
            source_of_truth: source_of_truth.into(),
        });
    }
    Ok(())
}

/// The lowercase hex sha256 of a file.
pub fn sha256_file(path: &Path) -> Result<String, KernelPackageError> {
    let error = |source| KernelPackageError::Hash { path: path.into(), source };
    let mut file = std::fs::File::open(path).map_err(error)?;
    let mut hasher = Sha256::new();
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        let read = file.read(&mut buffer).map_err(error)?;
        if read == 0 {
            break;
        }
        hasher.update(&buffer[..read]);
    }
    Ok(hasher.finalize().iter().map(|byte| format!("{byte:02x}")).collect())
}

/// apt and its index, updated at most once per build.
struct Apt {
    may_update: bool,
    updated: bool,
}

impl Apt {
    fn new() -> Self {
        // Only root may update the index; an unprivileged build uses the index as it is.
        Apt { may_update: nix::unistd::geteuid().is_root(), updated: false }
    }

    /// Runs `apt-get update` unless it ran already or we may not, saying `why`; returns whether it ran.
    fn refresh(&mut self, why: &str) -> Result<bool, KernelPackageError> {
        if !self.may_update || self.updated {
            return Ok(false);
        }
        self.updated = true;
        eprintln!("keel-build: apt-get update ({why})");
        apt_tool("apt-get").args(["update", "-qq"]).run().map_err(KernelPackageError::Update)?;
        Ok(true)
    }

    /// The index's candidate entry for `package` (at `version`, if given); `None` when the index has none.
    fn entry(&self, package: &str, version: Option<&str>) -> Result<Option<Paragraph>, KernelPackageError> {
        let spec = match version {
            Some(version) => format!("{package}={version}"),
            None => package.to_owned(),
        };
        match apt_tool("apt-cache").args(["show", "--no-all-versions", &spec]).run() {
            Ok(output) => {
                let text = String::from_utf8_lossy(&output);
                // The first paragraph; an unknown version of a known package gives no paragraph and exit 0.
                let first = text.split("\n\n").next().unwrap_or_default().trim();
                Ok((!first.is_empty()).then(|| Paragraph(first.to_owned())))
            }
            Err(CommandError::Failed { stderr, .. }) if stderr.contains("No packages found") => Ok(None),
            Err(source) => Err(KernelPackageError::Index { package: spec, source }),
        }
    }
}

/// apt with messages in English (they are matched) and a wait for a concurrent apt's lock.
fn apt_tool(program: &str) -> Tool {
    Tool::new(program).env("LC_ALL", "C").arg("-o").arg(format!("DPkg::Lock::Timeout={APT_LOCK_TIMEOUT_S}"))
}

/// A deb822 paragraph (`Field: value` lines), from apt-cache or dpkg-deb.
struct Paragraph(String);

impl Paragraph {
    fn value(&self, field: &str) -> Option<&str> {
        self.0.lines().find_map(|line| {
            let (name, value) = line.split_once(':')?;
            (name == field).then(|| value.trim())
        })
    }

    fn field(&self, field: &'static str) -> Result<String, KernelPackageError> {
        match self.value(field) {
            Some(value) if !value.is_empty() => Ok(value.to_owned()),
            _ => {
                Err(KernelPackageError::IndexField { package: self.value("Package").unwrap_or("?").to_owned(), field })
            }
        }
    }

    /// The `linux-image-*` package this one depends on, with its exact version when the dependency pins one: what
    /// a meta package such as `linux-image-amd64` stands for. `None` for a package that is a kernel itself.
    fn kernel_dependency(&self) -> Result<Option<(String, Option<String>)>, KernelPackageError> {
        let Some(depends) = self.value("Depends") else { return Ok(None) };
        for alternatives in depends.split(',') {
            // Of alternatives (`a | b`), apt takes the first.
            let first = alternatives.split('|').next().unwrap_or_default().trim();
            let (package, constraint) = match first.split_once('(') {
                Some((package, constraint)) => (package.trim(), Some(constraint.trim_end_matches(')').trim())),
                None => (first, None),
            };
            // `linux-image-…:amd64` would name an architecture; the name is what counts.
            let package = package.split(':').next().unwrap_or_default();
            if !package.starts_with("linux-image-") {
                continue;
            }
            let version = constraint.and_then(|constraint| constraint.strip_prefix('=')).map(|v| v.trim().to_owned());
            return Ok(Some((package.to_owned(), version)));
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_packages_name_their_kernel() {
        let meta = Paragraph(
            "Package: linux-image-amd64\nVersion: 6.1.192-3\nDepends: linux-image-6.1.0-57-amd64 (= 6.1.192-3)\n"
                .into(),
        );
        assert_eq!(
            meta.kernel_dependency().unwrap(),
            Some(("linux-image-6.1.0-57-amd64".to_owned(), Some("6.1.192-3".to_owned())))
        );
        let loose = Paragraph("Package: linux-image-cloud-amd64\nDepends: linux-image-6.1.0-57-cloud-amd64\n".into());
        assert_eq!(loose.kernel_dependency().unwrap(), Some(("linux-image-6.1.0-57-cloud-amd64".to_owned(), None)));
        let kernel = Paragraph(
            "Package: linux-image-6.1.0-57-amd64\nDepends: kmod, linux-base (>= 4.3~), initramfs-tools (>= 0.120+deb8u2) | linux-initramfs-tool\n".into(),
        );
        assert_eq!(kernel.kernel_dependency().unwrap(), None);
    }

    #[test]
    fn fields_are_read_and_missing_ones_named() {
        let entry = Paragraph("Package: p\nVersion: 1:2.0-1\nSHA256: ab\n".into());
        assert_eq!(entry.field("Version").unwrap(), "1:2.0-1");
        assert!(matches!(
            entry.field("Depends"),
            Err(KernelPackageError::IndexField { package, field: "Depends" }) if package == "p"
        ));
    }

    #[test]
    fn deb_names_follow_apt() {
        assert_eq!(
            deb_file_name("linux-image-6.1.0-57-amd64", "6.1.192-3"),
            "linux-image-6.1.0-57-amd64_6.1.192-3_amd64.deb"
        );
        assert_eq!(deb_file_name("p", "1:2.0"), "p_1%3a2.0_amd64.deb");
    }

    #[test]
    fn debian_versions_compare() {
        assert!(version_less("6.1.192-2", "6.1.192-3").unwrap());
        assert!(!version_less("6.1.200-1", "6.1.192-3").unwrap());
        assert!(version_less("6.1.192-3~bpo", "6.1.192-3").unwrap());
    }

    #[test]
    fn cached_files_are_hashed() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.deb");
        std::fs::write(&path, b"abc").unwrap();
        let abc = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
        assert_eq!(sha256_file(&path).unwrap(), abc);
        check_hash(&path, abc, "the lock").unwrap();
        let message = check_hash(&path, &"0".repeat(64), "the lock os-image/keel.lock").unwrap_err().to_string();
        assert!(message.contains("x.deb has sha256 ba7816bf") && message.contains(&"0".repeat(64)), "{message}");
    }
}
