//! Keeps the Debian kernel package extracted and `depmod`-ed in the cache directory, once.
//!
//! Cache layout, for package `P` at Debian version `V`:
//!
//! | Path | What | Written |
//! |---|---|---|
//! | `<cache>/P_V_amd64.deb` | the package, its sha256 checked on every build | by [`crate::kernel_package`], renamed into place |
//! | `<cache>/P-V/` | `dpkg-deb -x` of it, plus `depmod` output | once, into `.P-V.partial-<pid>/`, then renamed |
//! | `<cache>/P-V.vmlinux` | the kernel as an uncompressed ELF | once, by [`crate::vmlinux`], when asked for |
//!
//! A populated cache is only read, so an unprivileged user can build from a cache that root filled. Older
//! packages stay in the cache until someone deletes them; builds only look at the one the lock names.

use std::path::{Path, PathBuf};

use crate::command::{CommandError, Tool};

#[derive(Debug, thiserror::Error)]
pub enum KernelCacheError {
    #[error("cannot list the cache directory {path}")]
    ListCache {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("extracting {deb} into {dir} failed")]
    Extract {
        deb: PathBuf,
        dir: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot prepare the extraction directory {path}")]
    PrepareExtraction {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{dir} must hold exactly one kernel version under lib/modules, found {found:?}")]
    KernelVersion { dir: PathBuf, found: Vec<String> },
    #[error("depmod in {dir} failed")]
    Depmod {
        dir: PathBuf,
        #[source]
        source: CommandError,
    },
    #[error("cannot move the extracted kernel {from} to {to}")]
    Publish {
        from: PathBuf,
        to: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is missing: the cached extraction is incomplete, delete {dir}")]
    Incomplete { path: PathBuf, dir: PathBuf },
}

/// An extracted kernel package in the cache.
#[derive(Debug, Clone)]
pub struct KernelTree {
    pub package: String,
    pub deb_version: String,
    /// The extracted package root.
    pub root: PathBuf,
    /// The kernel release, e.g. `6.1.0-56-amd64`.
    pub release: String,
    cache: PathBuf,
}

impl KernelTree {
    /// `lib/modules/<release>`, with `modules.dep` and friends.
    pub fn modules_dir(&self) -> PathBuf {
        self.root.join("lib/modules").join(&self.release)
    }

    /// The Debian bzImage.
    pub fn vmlinuz(&self) -> PathBuf {
        self.root.join("boot").join(format!("vmlinuz-{}", self.release))
    }

    /// `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`: package, Debian version and kernel release, as
    /// the builder's summary, `/etc/os-release` and the boot directory show it.
    pub fn description(&self) -> String {
        format!("{} {} ({})", self.package, self.deb_version, self.release)
    }

    /// Where the uncompressed kernel is cached.
    pub fn vmlinux_cache_path(&self) -> PathBuf {
        self.cache.join(format!("{}-{}.vmlinux", self.package, self.deb_version))
    }
}

/// Returns the extracted kernel package `package` `deb_version`, extracting `deb` (from
/// [`crate::kernel_package::fetch`], hash checked) first if the cache lacks it.
pub fn prepare(cache: &Path, package: &str, deb_version: &str, deb: &Path) -> Result<KernelTree, KernelCacheError> {
    let root = cache.join(format!("{package}-{deb_version}"));
    if !root.is_dir() {
        extract(deb, cache, &root)?;
    }
    let release = kernel_release(&root)?;
    let tree = KernelTree {
        package: package.into(),
        deb_version: deb_version.into(),
        root: root.clone(),
        release,
        cache: cache.into(),
    };
    for needed in [tree.modules_dir().join("modules.dep"), tree.vmlinuz()] {
        if !needed.is_file() {
            return Err(KernelCacheError::Incomplete { path: needed, dir: root });
        }
    }
    Ok(tree)
}

/// Extracts into a private directory and renames it into place, so an interrupted extraction is never used.
fn extract(deb: &Path, cache: &Path, root: &Path) -> Result<(), KernelCacheError> {
    let name = root.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    let partial = cache.join(format!(".{name}.partial-{}", std::process::id()));
    let prepare_error = |source| KernelCacheError::PrepareExtraction { path: partial.clone(), source };
    if partial.exists() {
        std::fs::remove_dir_all(&partial).map_err(prepare_error)?;
    }
    std::fs::create_dir(&partial).map_err(prepare_error)?;
    eprintln!("keel-build: extracting {} (once, ~400 MB)", deb.display());
    Tool::new("dpkg-deb").arg("-x").arg(deb).arg(&partial).run().map_err(|source| KernelCacheError::Extract {
        deb: deb.into(),
        dir: partial.clone(),
        source,
    })?;
    let release = kernel_release(&partial)?;
    Tool::new("depmod")
        .arg("-b")
        .arg(&partial)
        .arg(&release)
        .run()
        .map_err(|source| KernelCacheError::Depmod { dir: partial.clone(), source })?;
    if let Err(source) = std::fs::rename(&partial, root) {
        // A concurrent build may have published the same extraction first; then use that one.
        let _ = std::fs::remove_dir_all(&partial);
        if !root.is_dir() {
            return Err(KernelCacheError::Publish { from: partial, to: root.into(), source });
        }
    }
    Ok(())
}

fn kernel_release(root: &Path) -> Result<String, KernelCacheError> {
    let modules = root.join("lib/modules");
    let mut found: Vec<String> = std::fs::read_dir(&modules)
        .map_err(|source| KernelCacheError::ListCache { path: modules.clone(), source })?
        .filter_map(|entry| entry.ok())
        .filter(|entry| entry.path().is_dir())
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .collect();
    found.sort();
    match found.as_slice() {
        [release] => Ok(release.clone()),
        _ => Err(KernelCacheError::KernelVersion { dir: root.into(), found }),
    }
}
