//! keel-build runs as an unprivileged user (uid/gid 65534, no groups) from a root-owned, populated cache: no root,
//! no loop devices, no mounts, and no writes to the cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::os::unix::fs::MetadataExt;
use std::process::Command;

use common::{build_env, run_ok};

const NOBODY: u32 = 65534;

#[test]
fn builds_as_nobody() {
    let env = build_env();
    let out_dir = tempfile::tempdir().unwrap();
    std::os::unix::fs::chown(out_dir.path(), Some(NOBODY), Some(NOBODY)).unwrap();
    let image = out_dir.path().join("keel.img");
    let builder = env.command(&image, &[]);
    let mut command = Command::new("setpriv");
    command
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(builder.get_program())
        .args(builder.get_args())
        .env("SOURCE_DATE_EPOCH", common::EPOCH)
        .current_dir(out_dir.path());
    run_ok(&mut command);
    let metadata = std::fs::metadata(&image).unwrap();
    assert_eq!(metadata.uid(), NOBODY);
    assert!(metadata.len() > 0);
}
