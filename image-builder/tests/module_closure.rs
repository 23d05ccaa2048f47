//! Module load order on a small hand-written depmod fixture (`tests/data/modules/`): dependencies, `softdep`
//! aliases, `-`/`_` names, built-ins and cycles.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::Path;

use keel_image_builder::module_closure::{load_order, ModuleClosureError};
use keel_image_builder::module_index::ModuleIndex;

fn fixture() -> ModuleIndex {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/modules");
    ModuleIndex::load(&dir).expect("fixture loads")
}

fn order(wanted: &[&str]) -> Result<Vec<String>, ModuleClosureError> {
    let wanted: Vec<String> = wanted.iter().map(|name| name.to_string()).collect();
    Ok(load_order(&fixture(), &wanted)?.into_iter().map(|module| module.name).collect())
}

#[test]
fn erofs_gets_a_crc32c_provider_generic_first() {
    assert_eq!(order(&["erofs"]).unwrap(), ["crc32c_generic", "crc32c_intel", "libcrc32c", "erofs"]);
}

#[test]
fn shared_dependencies_load_once_and_early() {
    let order = order(&["virtio_blk", "erofs", "ext4"]).unwrap();
    assert_eq!(
        order,
        [
            "virtio_ring",
            "virtio",
            "virtio_blk",
            "crc32c_generic",
            "crc32c_intel",
            "libcrc32c",
            "erofs",
            "jbd2",
            "mbcache",
            "crc16",
            "ext4"
        ]
    );
}

#[test]
fn dashed_file_names_are_found_and_kept_in_paths() {
    let wanted = vec!["dm-verity".to_owned()];
    let modules = load_order(&fixture(), &wanted).unwrap();
    let names: Vec<&str> = modules.iter().map(|module| module.name.as_str()).collect();
    assert_eq!(names, ["dm_mod", "dm_bufio", "dm_verity"]);
    assert_eq!(modules[0].path, "kernel/drivers/md/dm-mod.ko");
    assert_eq!(modules[2].path, "kernel/drivers/md/dm-verity.ko");
}

#[test]
fn post_softdeps_load_after() {
    assert_eq!(order(&["post_a"]).unwrap(), ["post_a", "post_b"]);
}

#[test]
fn aliases_resolve_like_names() {
    assert_eq!(order(&["crc32c"]).unwrap(), ["crc32c_generic", "crc32c_intel"]);
}

#[test]
fn builtins_are_skipped_and_unknown_names_fail() {
    assert_eq!(order(&["crc32", "ext2", "libcrc32c"]).unwrap(), ["crc32c_generic", "crc32c_intel", "libcrc32c"]);
    assert_eq!(order(&["nonexistent"]), Err(ModuleClosureError::UnknownModule { name: "nonexistent".to_owned() }));
}

#[test]
fn dependency_cycles_are_named() {
    let index = ModuleIndex::parse("a.ko: b.ko\nb.ko: c.ko\nc.ko: a.ko\n", "", "", "").unwrap();
    let error = load_order(&index, &["a".to_owned()]).unwrap_err();
    assert_eq!(
        error,
        ModuleClosureError::DependencyCycle { chain: vec!["a".into(), "b".into(), "c".into(), "a".into()] }
    );
}

#[test]
fn soft_cycles_are_ignored() {
    let index = ModuleIndex::parse("a.ko:\nb.ko:\n", "softdep a pre: b\nsoftdep b pre: a\n", "", "").unwrap();
    assert_eq!(load_order(&index, &["a".to_owned()]).unwrap().len(), 2);
}
