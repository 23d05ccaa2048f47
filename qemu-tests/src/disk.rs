//! Prepares disk files for VMs with `qemu-img`, `cp` and `sfdisk`: overlays, sparse copies, GPT relabels, sizes.

use std::io;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Why preparing or inspecting a disk file failed.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    #[error("could not run `{command}`")]
    Spawn {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("`{command}` failed ({status}): {stderr}")]
    Failed { command: String, status: std::process::ExitStatus, stderr: String },
    #[error("resolving the absolute path of {}", path.display())]
    Absolute {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("writing {}", path.display())]
    Write {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("reading the size of {}", path.display())]
    Stat {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("no GPT partition named `{label}` in {}", image.display())]
    NoSuchPartition { image: PathBuf, label: String },
    #[error("`sfdisk --json` output for {} is not what was expected", image.display())]
    PartitionTable { image: PathBuf },
}

/// On-disk format of an image file, as QEMU's `format=` names it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DiskFormat {
    Raw,
    Qcow2,
}

impl DiskFormat {
    /// The name QEMU and qemu-img use.
    pub fn as_str(self) -> &'static str {
        match self {
            DiskFormat::Raw => "raw",
            DiskFormat::Qcow2 => "qcow2",
        }
    }
}

/// Creates a qcow2 `overlay` backed by `base`, so the VM's writes never reach the shared image.
pub fn create_overlay(base: &Path, base_format: DiskFormat, overlay: &Path) -> Result<(), DiskError> {
    // qemu-img resolves a relative backing path against the overlay's directory, so pass an absolute one.
    let base =
        std::fs::canonicalize(base).map_err(|source| DiskError::Absolute { path: base.to_path_buf(), source })?;
    run(Command::new("qemu-img")
        .args(["create", "-q", "-f", "qcow2", "-b"])
        .arg(base)
        .args(["-F", base_format.as_str()])
        .arg(overlay))
}

/// Copies `src` to `dst` keeping holes (`cp --sparse=always`), so a copy of the image costs only its used blocks.
pub fn sparse_copy(src: &Path, dst: &Path) -> Result<(), DiskError> {
    run(Command::new("cp").arg("--sparse=always").arg(src).arg(dst))
}

/// Converts `src` (any format qemu-img detects) to a compact qcow2 at `dst`.
pub fn convert_to_qcow2(src: &Path, dst: &Path) -> Result<(), DiskError> {
    run(Command::new("qemu-img").args(["convert", "-O", "qcow2"]).arg(src).arg(dst))
}

/// Number (1-based) of the GPT partition named `label` in `image`.
pub fn partition_number(image: &Path, label: &str) -> Result<u32, DiskError> {
    let output = output(Command::new("sfdisk").arg("--json").arg(image))?;
    let table: Value =
        serde_json::from_slice(&output).map_err(|_| DiskError::PartitionTable { image: image.to_path_buf() })?;
    let partitions = table
        .pointer("/partitiontable/partitions")
        .and_then(Value::as_array)
        .ok_or_else(|| DiskError::PartitionTable { image: image.to_path_buf() })?;
    let index = partitions
        .iter()
        .position(|p| p.get("name").and_then(Value::as_str) == Some(label))
        .ok_or_else(|| DiskError::NoSuchPartition { image: image.to_path_buf(), label: label.to_owned() })?;
    u32::try_from(index + 1).map_err(|_| DiskError::PartitionTable { image: image.to_path_buf() })
}

/// Byte offset, in `image`, of the GPT partition named `label`: where a filesystem tool such as mtools
/// (`image@@offset`) finds its filesystem.
pub fn partition_offset(image: &Path, label: &str) -> Result<u64, DiskError> {
    let output = output(Command::new("sfdisk").arg("--json").arg(image))?;
    let bad_table = || DiskError::PartitionTable { image: image.to_path_buf() };
    let table: Value = serde_json::from_slice(&output).map_err(|_| bad_table())?;
    let sector_size = table.pointer("/partitiontable/sectorsize").and_then(Value::as_u64).unwrap_or(512);
    let partitions = table.pointer("/partitiontable/partitions").and_then(Value::as_array).ok_or_else(bad_table)?;
    let partition = partitions
        .iter()
        .find(|p| p.get("name").and_then(Value::as_str) == Some(label))
        .ok_or_else(|| DiskError::NoSuchPartition { image: image.to_path_buf(), label: label.to_owned() })?;
    let start = partition.get("start").and_then(Value::as_u64).ok_or_else(bad_table)?;
    Ok(start * sector_size)
}

/// Renames GPT partition `number` of the image file (no kernel involvement: the file is not a block device).
pub fn set_partition_label(image: &Path, number: u32, label: &str) -> Result<(), DiskError> {
    run(Command::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel", "--part-label"])
        .arg(image)
        .arg(number.to_string())
        .arg(label))
}

/// Writes a GPT disk to `out` with an empty 1 MiB partition named `spare` first and then one partition holding
/// `filesystem`'s bytes, named `name`: a config drive on the second partition of a data disk, as some clouds and
/// installers attach it.
pub fn partitioned_disk(filesystem: &Path, name: &str, out: &Path) -> Result<(), DiskError> {
    const MIB: u64 = 1 << 20;
    let len = std::fs::metadata(filesystem)
        .map_err(|source| DiskError::Stat { path: filesystem.to_path_buf(), source })?
        .len();
    let fs_mib = len.div_ceil(MIB);
    // 1 MiB for the GPT and alignment, 1 MiB spare partition, the filesystem, 1 MiB for the backup GPT.
    let disk_len = (3 + fs_mib) * MIB;
    let write_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| DiskError::Write { path, source }
    };
    let file = std::fs::File::create(out).map_err(write_error(out))?;
    file.set_len(disk_len).map_err(write_error(out))?;
    drop(file);
    let script =
        format!("label: gpt\nstart=2048, size=2048, name=spare\nstart=4096, size={}, name={name}\n", fs_mib * 2048);
    let script_path = out.with_extension("sfdisk");
    std::fs::write(&script_path, script).map_err(write_error(&script_path))?;
    let script_file = std::fs::File::open(&script_path).map_err(write_error(&script_path))?;
    run(Command::new("sfdisk").args(["--quiet", "--no-reread", "--no-tell-kernel"]).arg(out).stdin(script_file))?;
    run(Command::new("dd").arg(format!("if={}", filesystem.display())).arg(format!("of={}", out.display())).args([
        "bs=1M",
        "seek=2",
        "conv=notrunc,sparse",
        "status=none",
    ]))
}

/// Bytes a file really occupies on the host (allocated blocks × 512), which for sparse images is less than its
/// length.
pub fn allocated_bytes(path: &Path) -> Result<u64, DiskError> {
    let meta = std::fs::metadata(path).map_err(|source| DiskError::Stat { path: path.to_path_buf(), source })?;
    Ok(meta.blocks() * 512)
}

fn run(command: &mut Command) -> Result<(), DiskError> {
    output(command).map(drop)
}

fn output(command: &mut Command) -> Result<Vec<u8>, DiskError> {
    let shown = format!("{command:?}").replace('"', "");
    let out = command.output().map_err(|source| DiskError::Spawn { command: shown.clone(), source })?;
    if !out.status.success() {
        let stderr = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(DiskError::Failed { command: shown, status: out.status, stderr });
    }
    Ok(out.stdout)
}
