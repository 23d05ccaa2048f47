//! Config drives for VM tests, made by the real `keel-build config-drive` that users run.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::artifacts::workspace_dir;

/// A config drive that could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot run {program}: {source}")]
    Spawn { program: PathBuf, source: std::io::Error },
    #[error("keel-build config-drive failed ({status}): {stderr}")]
    Build { status: std::process::ExitStatus, stderr: String },
}

/// What goes on the drive and how it is laid out.
pub struct DriveSpec<'a> {
    pub user_data: &'a str,
    pub meta_data: Option<&'a str>,
    /// `vfat` or `iso9660`.
    pub format: &'a str,
    /// `nocloud` or `config-2`.
    pub layout: &'a str,
}

/// Writes the drive into `dir` and returns its path. Invalid user-data is refused by keel-build, so tests of
/// invalid configs use [`write_unchecked_vfat`].
pub fn build(dir: &Path, name: &str, spec: &DriveSpec) -> Result<PathBuf, ConfigDriveError> {
    let user_data = write(dir, &format!("{name}.user-data"), spec.user_data)?;
    let out = dir.join(format!("{name}.img"));
    let program = workspace_dir().join("target/release/keel-build");
    let mut command = Command::new(&program);
    command.args(["config-drive", "--format", spec.format, "--layout", spec.layout, "--user-data"]);
    command.arg(&user_data).arg("--out").arg(&out);
    if let Some(meta_data) = spec.meta_data {
        command.arg("--meta-data").arg(write(dir, &format!("{name}.meta-data"), meta_data)?);
    }
    let output = command.output().map_err(|source| ConfigDriveError::Spawn { program: program.clone(), source })?;
    if !output.status.success() {
        return Err(ConfigDriveError::Build {
            status: output.status,
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        });
    }
    Ok(out)
}

/// A NoCloud vfat drive holding `user_data` as it is, valid or not: what a user with a typo attaches.
pub fn write_unchecked_vfat(dir: &Path, name: &str, user_data: &str) -> Result<PathBuf, ConfigDriveError> {
    let user_data_file = write(dir, &format!("{name}.user-data"), user_data)?;
    vfat_with_user_data_file(dir, name, &user_data_file, 2048)
}

/// A NoCloud vfat drive of `size_kib` KiB holding the file `user_data_file` as its user-data, whatever its size.
pub fn vfat_with_user_data_file(
    dir: &Path,
    name: &str,
    user_data_file: &Path,
    size_kib: u64,
) -> Result<PathBuf, ConfigDriveError> {
    let meta_data_file = write(dir, &format!("{name}.meta-data"), "instance-id: unchecked\n")?;
    let out = dir.join(format!("{name}.img"));
    let size = size_kib.to_string();
    let steps: [(&str, Vec<&std::ffi::OsStr>); 3] = [
        ("mkfs.fat", vec!["-C".as_ref(), out.as_os_str(), size.as_ref(), "-n".as_ref(), "CIDATA".as_ref()]),
        ("mcopy", vec!["-i".as_ref(), out.as_os_str(), user_data_file.as_os_str(), "::user-data".as_ref()]),
        ("mcopy", vec!["-i".as_ref(), out.as_os_str(), meta_data_file.as_os_str(), "::meta-data".as_ref()]),
    ];
    for (program, args) in steps {
        let output = Command::new(program)
            .args(args)
            .output()
            .map_err(|source| ConfigDriveError::Spawn { program: program.into(), source })?;
        if !output.status.success() {
            return Err(ConfigDriveError::Build {
                status: output.status,
                stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
            });
        }
    }
    Ok(out)
}

fn write(dir: &Path, name: &str, text: &str) -> Result<PathBuf, ConfigDriveError> {
    let path = dir.join(name);
    std::fs::write(&path, text).map_err(|source| ConfigDriveError::Write { path: path.clone(), source })?;
    Ok(path)
}
