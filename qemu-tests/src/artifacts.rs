//! Locates the build directory and the boot artifacts, building them once per process with `make image`.

use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Environment variable naming the build directory (relative paths are taken from the workspace root).
pub const BUILD_DIR_ENV: &str = "KEEL_BUILD_DIR";
/// Set to `1` to use the artifacts as they are, without running `make image` first.
pub const SKIP_BUILD_ENV: &str = "KEEL_SKIP_BUILD";

/// Lines of `make` output kept in a build error.
const BUILD_OUTPUT_TAIL: usize = 40;

/// Why the artifacts could not be built or found.
#[derive(Debug, thiserror::Error)]
pub enum ArtifactsError {
    #[error("`make -C {} image BUILD={}` failed: {message}", workspace.display(), build_dir.display())]
    Build { workspace: PathBuf, build_dir: PathBuf, message: String },
    #[error("{what} is missing at {} (run `make image` in the workspace)", path.display())]
    Missing { what: &'static str, path: PathBuf },
    #[error("reading the kernel description from {} (built before keel-build wrote it? run `make image`)", path.display())]
    ReadKernel {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the kernel command line from {}", path.display())]
    ReadCmdline {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The files `make image` produces, as absolute paths.
#[derive(Debug, Clone)]
pub struct Artifacts {
    /// The build directory itself; test logs go to `test-logs/` below it.
    pub build_dir: PathBuf,
    /// Raw GPT disk image: ESP, `keel-root-a`, `keel-root-b`, `keel-data`.
    pub image: PathBuf,
    /// Uncompressed kernel ELF for PVH direct boot.
    pub vmlinux: PathBuf,
    /// Initramfs of slot a.
    pub initrd: PathBuf,
    /// Kernel command line of slot a (contents of `boot/cmdline`, trimmed).
    pub cmdline: String,
}

impl Artifacts {
    /// Finds the artifacts in `build_dir` without building anything.
    pub fn locate(build_dir: &Path) -> Result<Self, ArtifactsError> {
        let boot = build_dir.join("boot");
        let image = existing("the disk image", build_dir.join("keel.img"))?;
        let vmlinux = existing("the PVH kernel", boot.join("vmlinux"))?;
        let initrd = existing("the initramfs", boot.join("initrd.img"))?;
        let cmdline_path = existing("the kernel command line", boot.join("cmdline"))?;
        let cmdline = std::fs::read_to_string(&cmdline_path)
            .map_err(|source| ArtifactsError::ReadCmdline { path: cmdline_path, source })?
            .trim()
            .to_owned();
        Ok(Self { build_dir: build_dir.to_path_buf(), image, vmlinux, initrd, cmdline })
    }

    /// The kernel in the image, as `keel-build` wrote it to `boot/kernel`: package, Debian version and release,
    /// e.g. `linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)`. Read on demand, so artifacts built before
    /// the file existed still locate.
    pub fn kernel_description(&self) -> Result<String, ArtifactsError> {
        let path = self.build_dir.join("boot/kernel");
        let text = std::fs::read_to_string(&path).map_err(|source| ArtifactsError::ReadKernel { path, source })?;
        Ok(text.trim().to_owned())
    }

    /// Directory for per-test console logs.
    pub fn log_dir(&self) -> PathBuf {
        self.build_dir.join("test-logs")
    }
}

/// The Cargo workspace root (parent of this crate).
pub fn workspace_dir() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// The build directory: `$KEEL_BUILD_DIR`, or `<workspace>/build`.
pub fn build_dir() -> PathBuf {
    match std::env::var_os(BUILD_DIR_ENV) {
        Some(dir) if !dir.is_empty() => workspace_dir().join(dir),
        _ => workspace_dir().join("build"),
    }
}

/// Runs `make image` once per process (unless `KEEL_SKIP_BUILD=1`), then locates the artifacts.
///
/// Concurrent callers block until the first build finishes; make is incremental, so a built tree costs little.
pub fn ensure_built() -> Result<Artifacts, ArtifactsError> {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let build_dir = build_dir();
    let skip = std::env::var(SKIP_BUILD_ENV).is_ok_and(|v| v == "1");
    if !skip {
        BUILT.get_or_init(|| run_make(&build_dir)).clone().map_err(|message| ArtifactsError::Build {
            workspace: workspace_dir(),
            build_dir: build_dir.clone(),
            message,
        })?;
    }
    Artifacts::locate(&build_dir)
}

fn run_make(build_dir: &Path) -> Result<(), String> {
    let mut build_var = std::ffi::OsString::from("BUILD=");
    build_var.push(build_dir);
    let mut make = Command::new("make");
    make.arg("-C").arg(workspace_dir()).arg("image").arg(build_var);
    // cargo test hands its test binaries the package's CARGO_* variables; leaking them into the inner cargo
    // changes build fingerprints, and the image would be rebuilt (minutes) between `make image` and every test.
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            make.env_remove(key.as_ref());
        }
    }
    let output = make.output().map_err(|e| format!("could not run make: {e}"))?;
    if output.status.success() {
        return Ok(());
    }
    let text = format!("{}{}", String::from_utf8_lossy(&output.stdout), String::from_utf8_lossy(&output.stderr));
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(BUILD_OUTPUT_TAIL)..].join("\n");
    Err(format!("{}; last lines of output:\n{tail}", output.status))
}

fn existing(what: &'static str, path: PathBuf) -> Result<PathBuf, ArtifactsError> {
    if path.exists() {
        Ok(path)
    } else {
        Err(ArtifactsError::Missing { what, path })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kernel_description_is_the_boot_dir_line() {
        let dir = tempfile::tempdir().unwrap();
        let artifacts = Artifacts {
            build_dir: dir.path().to_owned(),
            image: dir.path().join("keel.img"),
            vmlinux: dir.path().join("boot/vmlinux"),
            initrd: dir.path().join("boot/initrd.img"),
            cmdline: String::new(),
        };
        assert!(matches!(artifacts.kernel_description(), Err(ArtifactsError::ReadKernel { .. })));
        std::fs::create_dir(dir.path().join("boot")).unwrap();
        let line = "linux-image-6.1.0-57-amd64 6.1.192-3 (6.1.0-57-amd64)";
        std::fs::write(dir.path().join("boot/kernel"), format!("{line}\n")).unwrap();
        assert_eq!(artifacts.kernel_description().unwrap(), line);
    }
}
