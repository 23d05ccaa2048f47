//! Two builds from the same inputs and SOURCE_DATE_EPOCH, in different directories, give identical raw and qcow2
//! images.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use common::{build_env, run_ok, same_bytes};

#[test]
fn two_builds_are_byte_identical() {
    let env = build_env();
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [&first, &second] {
        run_ok(&mut env.command(&dir.path().join("keel.qcow2"), &["--format", "qcow2"]));
    }
    for name in ["keel.raw", "keel.qcow2"] {
        assert!(same_bytes(&first.path().join(name), &second.path().join(name)), "{name} differs between builds");
    }
    let leftovers: Vec<_> = std::fs::read_dir(first.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 2, "the work directory must be removed: {leftovers:?}");
}
