//! keel's root file tree, measured as the peer's userland is (`du`, apparent and allocated), from keel.img itself:
//! slot a's erofs partition is copied out and extracted with `fsck.erofs --extract`.

use std::io::{Read, Seek, SeekFrom};
use std::path::Path;
use std::process::Command;

use anyhow::{ensure, Context, Result};
use serde_json::Value;

/// The root slot the PVH boots use.
const ROOT_PARTITION: &str = "keel-root-a";

/// Apparent and allocated bytes of the files in `image`'s root slot a.
pub fn keel_root_files(image: &Path, scratch: &Path) -> Result<(u64, u64)> {
    let (start, length) = partition_extent(image, ROOT_PARTITION)?;
    let erofs = scratch.join("root-a.erofs");
    let mut source = std::fs::File::open(image).with_context(|| format!("opening {}", image.display()))?;
    source.seek(SeekFrom::Start(start))?;
    let mut target = std::fs::File::create(&erofs)?;
    std::io::copy(&mut source.take(length), &mut target).context("copying the root partition")?;
    let tree = scratch.join("root-a");
    let status = Command::new("fsck.erofs")
        .arg(format!("--extract={}", tree.display()))
        .arg(&erofs)
        .stdout(std::process::Stdio::null())
        .status()
        .context("running fsck.erofs")?;
    ensure!(status.success(), "fsck.erofs --extract failed ({status})");
    Ok((du(&tree, true)?, du(&tree, false)?))
}

/// `du -s -B1 [--apparent-size]`, as scripts/make-peer-image.sh measures the peer.
fn du(path: &Path, apparent: bool) -> Result<u64> {
    let mut command = Command::new("du");
    command.args(["-s", "-B1"]);
    if apparent {
        command.arg("--apparent-size");
    }
    let output = command.arg(path).output().context("running du")?;
    ensure!(output.status.success(), "du {} failed", path.display());
    let text = String::from_utf8_lossy(&output.stdout);
    text.split_whitespace().next().and_then(|n| n.parse().ok()).with_context(|| format!("du printed {text:?}"))
}

/// Byte offset and length of the GPT partition named `name`.
fn partition_extent(image: &Path, name: &str) -> Result<(u64, u64)> {
    let output = Command::new("sfdisk").arg("--json").arg(image).output().context("running sfdisk")?;
    ensure!(output.status.success(), "sfdisk --json {} failed", image.display());
    let table: Value = serde_json::from_slice(&output.stdout).context("parsing sfdisk's JSON")?;
    let sector = table.pointer("/partitiontable/sectorsize").and_then(Value::as_u64).unwrap_or(512);
    let partitions = table.pointer("/partitiontable/partitions").and_then(Value::as_array);
    let partition = partitions
        .and_then(|parts| parts.iter().find(|p| p.get("name").and_then(Value::as_str) == Some(name)))
        .with_context(|| format!("no partition {name} in {}", image.display()))?;
    let field = |key: &str| partition.get(key).and_then(Value::as_u64).with_context(|| format!("{name}: no {key}"));
    Ok((field("start")? * sector, field("size")? * sector))
}
