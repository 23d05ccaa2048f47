//! Reads and writes the lock file beside a recipe (`os-image/keel.lock` for `os-image/keel.toml`): the exact Debian
//! kernel package a build used, so that the next build uses the same bytes.
//!
//! The format (TOML, written by keel-build, meant to be committed):
//!
//! ```toml
//! # <comment lines saying what the file is>
//! [kernel]
//! resolved_from = "linux-image-amd64"          # the recipe's kernel.package when this was resolved
//! package = "linux-image-6.1.0-57-amd64"       # the package with the kernel ABI in its name
//! version = "6.1.192-3"                        # its Debian version
//! sha256 = "14d219d01e1283261817d961dbb3895cb5b4288d0de10e0ba0632a0d993e15bf"   # of the .deb
//! ```

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

#[derive(Debug, thiserror::Error)]
pub enum KernelLockError {
    #[error("cannot read the lock file {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the lock file {path} is not valid; delete it and build again to resolve the kernel anew")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("the lock file {path}: `kernel.{key}` {reason}; delete it and build again to resolve the kernel anew")]
    Invalid { path: PathBuf, key: &'static str, reason: &'static str },
    #[error("cannot write the lock file {path}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// The kernel a lock file names.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LockedKernel {
    /// The recipe's `kernel.package` this was resolved from, e.g. `linux-image-amd64`: when the recipe names another
    /// kernel, the lock no longer applies.
    pub resolved_from: String,
    /// The package with the kernel ABI in its name, e.g. `linux-image-6.1.0-57-amd64`.
    pub package: String,
    /// Its Debian version, e.g. `6.1.192-3`.
    pub version: String,
    /// sha256 of the `.deb`, lowercase hex.
    pub sha256: String,
}

#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct LockFile {
    kernel: LockedKernel,
}

/// The lock file of a recipe: the recipe's path with the extension `.lock`.
pub fn lock_path(recipe: &Path) -> PathBuf {
    recipe.with_extension("lock")
}

/// Reads a lock file; `None` when there is none.
pub fn read(path: &Path) -> Result<Option<LockedKernel>, KernelLockError> {
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(KernelLockError::Read { path: path.into(), source }),
    };
    let file: LockFile = toml::from_str(&text)
        .map_err(|source| KernelLockError::Parse { path: path.into(), source: Box::new(source) })?;
    let kernel = file.kernel;
    let invalid = |key, reason| KernelLockError::Invalid { path: path.into(), key, reason };
    if !is_package_name(&kernel.resolved_from) {
        return Err(invalid("resolved_from", "is not a Debian package name"));
    }
    if !is_package_name(&kernel.package) {
        return Err(invalid("package", "is not a Debian package name"));
    }
    if !is_version(&kernel.version) {
        return Err(invalid("version", "is not a Debian version"));
    }
    if !is_sha256(&kernel.sha256) {
        return Err(invalid("sha256", "must be 64 lowercase hex digits"));
    }
    Ok(Some(kernel))
}

/// Writes a lock file through a temporary file and a rename, so a reader never sees half of it.
pub fn write(path: &Path, kernel: &LockedKernel) -> Result<(), KernelLockError> {
    let error = |source| KernelLockError::Write { path: path.into(), source };
    let dir = match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    };
    let mut partial = tempfile::Builder::new().prefix(".keel-lock-").tempfile_in(dir).map_err(error)?;
    // tempfile makes it 0600; a committed file, and unprivileged builds read it.
    partial.as_file().set_permissions(std::fs::Permissions::from_mode(0o644)).map_err(error)?;
    std::io::Write::write_all(&mut partial, format(path, kernel).as_bytes()).map_err(error)?;
    partial.persist(path).map_err(|persist| error(persist.error))?;
    Ok(())
}

/// The text of a lock file.
pub fn format(path: &Path, kernel: &LockedKernel) -> String {
    let recipe = path.with_extension("toml");
    let recipe = recipe.file_name().map(|name| name.to_string_lossy().into_owned()).unwrap_or_default();
    // Serialising a struct of four strings cannot fail; fall back to nothing rather than panic.
    let body = toml::to_string(&LockFile { kernel: kernel.clone() }).unwrap_or_default();
    format!(
        "# Written by keel-build: the kernel package builds of {recipe} use (`kernel.package` resolved at download time).\n\
         # Commit it. A build moves it on by itself when the package leaves Debian's mirror;\n\
         # `keel-build kernel --recipe <this directory>/{recipe} --update` moves it to Debian's current kernel on purpose.\n\
         {body}"
    )
}

/// Debian policy: lowercase letters, digits, `+`, `-`, `.`; at least two characters, starting alphanumeric. Also
/// keeps the name safe in cache file names.
pub fn is_package_name(name: &str) -> bool {
    name.len() >= 2
        && name.starts_with(|first: char| first.is_ascii_lowercase() || first.is_ascii_digit())
        && name.bytes().all(|byte| byte.is_ascii_lowercase() || byte.is_ascii_digit() || b"+-.".contains(&byte))
}

/// Debian policy: alphanumerics and `.+-~:`, starting with a digit.
pub fn is_version(version: &str) -> bool {
    version.starts_with(|first: char| first.is_ascii_digit())
        && version.bytes().all(|byte| byte.is_ascii_alphanumeric() || b".+-~:".contains(&byte))
}

fn is_sha256(hex: &str) -> bool {
    hex.len() == 64 && hex.bytes().all(|byte| byte.is_ascii_digit() || (b'a'..=b'f').contains(&byte))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> LockedKernel {
        LockedKernel {
            resolved_from: "linux-image-amd64".into(),
            package: "linux-image-6.1.0-57-amd64".into(),
            version: "6.1.192-3".into(),
            sha256: "14d219d01e1283261817d961dbb3895cb5b4288d0de10e0ba0632a0d993e15bf".into(),
        }
    }

    #[test]
    fn writes_and_reads_back() {
        let dir = tempfile::tempdir().unwrap();
        let path = lock_path(&dir.path().join("keel.toml"));
        assert!(path.ends_with("keel.lock"));
        assert_eq!(read(&path).unwrap(), None);
        write(&path, &sample()).unwrap();
        assert_eq!(read(&path).unwrap(), Some(sample()));
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("# Written by keel-build: the kernel package builds of keel.toml use"), "{text}");
        assert!(text.contains("\n[kernel]\nresolved_from = \"linux-image-amd64\"\n"), "{text}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1, "no temporary file is left");
        assert_eq!(std::fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o644);
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.lock");
        let good = format(&path, &sample());
        let cases = [
            (good.replace("linux-image-6.1.0-57-amd64", "../../etc"), "package"),
            (good.replace("6.1.192-3", "6.1 192"), "version"),
            (good.replace("14d219d0", "14D219D0"), "sha256"),
            (good.replace("\"linux-image-amd64\"", "\"\""), "resolved_from"),
        ];
        for (text, key) in cases {
            std::fs::write(&path, text).unwrap();
            match read(&path) {
                Err(KernelLockError::Invalid { key: found, .. }) => assert_eq!(found, key),
                other => panic!("{key}: {other:?}"),
            }
        }
        std::fs::write(&path, good.replace("sha256", "sha1")).unwrap();
        assert!(matches!(read(&path), Err(KernelLockError::Parse { .. })));
    }
}
