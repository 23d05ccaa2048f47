//! Importing `docker save` and OCI archives (made by skopeo), preloaded-dir skipping, and garbage collection.

// Fixture helpers outside #[test] functions unwrap too: a failed setup should stop the test loudly.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use keel_fixtures::images::Layout;
use keel_fixtures::{run, tree};
use keel_images::{ImageReference, ImageStore};

struct Fixture {
    _temp: tempfile::TempDir,
    dir: PathBuf,
    layout: Layout,
}

/// A layout with `base` (one layer) and `app` (base's layer plus one more).
fn fixture() -> Fixture {
    let temp = tempfile::tempdir().unwrap();
    let dir = temp.path().to_path_buf();
    let layout = Layout::create(&dir.join("build"));
    layout.new_image("base");
    layout.add_layer("base", |rootfs| {
        std::fs::create_dir_all(rootfs.join("etc")).unwrap();
        std::fs::write(rootfs.join("etc/base"), "base").unwrap();
    });
    run("umoci", &["tag", "--image", &layout.image("base"), "app"]);
    layout.add_layer("app", |rootfs| std::fs::write(rootfs.join("etc/app"), "app").unwrap());
    Fixture { _temp: temp, dir, layout }
}

fn open_store(dir: &Path) -> ImageStore {
    ImageStore::open(&dir.join("images"), &dir.join("layers")).unwrap()
}

fn archive(fixture: &Fixture, tag: &str, kind: &str, file: &str, name: &str) -> PathBuf {
    let path = fixture.dir.join("archives").join(file);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let destination = format!("{kind}:{}:{name}", path.display());
    run("skopeo", &["copy", "--quiet", &format!("oci:{}", fixture.layout.image(tag)), &destination]);
    path
}

#[test]
fn docker_archive_import() {
    let fixture = fixture();
    let path = archive(&fixture, "app", "docker-archive", "app.tar", "keel/app:v1");
    let store = open_store(&fixture.dir);
    let imported = store.import_archive(&path).unwrap();
    let reference: ImageReference = "keel/app:v1".parse().unwrap();
    assert_eq!(imported, vec![reference.clone()]);
    let image = store.image(&reference).unwrap();
    assert_eq!(image.layer_dirs.len(), 2);
    assert_eq!(std::fs::read_to_string(image.layer_dirs[0].join("etc/base")).unwrap(), "base");
    assert_eq!(std::fs::read_to_string(image.layer_dirs[1].join("etc/app")).unwrap(), "app");
    // What keel wrote is a valid OCI layout entry.
    run("skopeo", &["inspect", &format!("oci:{}:{reference}", store.layout().root().display())]);
}

#[test]
fn oci_archive_import_and_preloaded_dir() {
    let fixture = fixture();
    archive(&fixture, "app", "oci-archive", "myapp.tar", "v2");
    archive(&fixture, "base", "docker-archive", "base.tar", "keel/base:1");
    let store = open_store(&fixture.dir);
    let preloaded = fixture.dir.join("archives");
    let mut imported: Vec<String> =
        store.import_preloaded_dir(&preloaded).unwrap().iter().map(ToString::to_string).collect();
    imported.sort();
    assert_eq!(imported, ["docker.io/keel/base:1", "docker.io/library/myapp:v2"]);
    let image = store.image(&"myapp:v2".parse().unwrap()).unwrap();
    assert_eq!(std::fs::read_to_string(image.layer_dirs[1].join("etc/app")).unwrap(), "app");
    // Both images share the base layer: it is unpacked once.
    assert_eq!(tree(store.layers_root()).iter().filter(|path| !path.contains('/')).count(), 2);

    // At the next boot everything is present: nothing is imported again.
    let index_before = std::fs::read(store.layout().index_path()).unwrap();
    assert!(store.import_preloaded_dir(&preloaded).unwrap().is_empty());
    assert_eq!(std::fs::read(store.layout().index_path()).unwrap(), index_before);
}

#[test]
fn gc_removes_only_unreferenced_blobs_and_layers() {
    let fixture = fixture();
    let store = open_store(&fixture.dir);
    store.import_archive(&archive(&fixture, "base", "oci-archive", "base.tar", "1")).unwrap();
    store.import_archive(&archive(&fixture, "app", "oci-archive", "app.tar", "1")).unwrap();
    let base: ImageReference = "base:1".parse().unwrap();
    let app: ImageReference = "app:1".parse().unwrap();
    let app_image = store.image(&app).unwrap();
    let base_image = store.image(&base).unwrap();

    // Nothing is garbage while both are tagged (apart from temp leftovers, of which there are none).
    let report = store.collect_garbage().unwrap();
    assert!(report.removed_blobs.is_empty() && report.removed_layers.is_empty(), "{report:?}");

    // A stray blob and a stray layer dir are collected.
    let stray = keel_images::Digest::of_bytes(b"stray");
    std::fs::write(store.blob_path(&stray), b"stray").unwrap();
    std::fs::create_dir(store.layers_root().join("0123456789ab")).unwrap();
    assert!(store.untag(&app.to_string()).unwrap());
    let report = store.collect_garbage().unwrap();

    assert!(report.removed_blobs.contains(&stray));
    assert!(report.removed_blobs.contains(&app_image.manifest_digest));
    assert!(report.removed_blobs.contains(&app_image.manifest.config.digest));
    assert!(report.removed_blobs.contains(&app_image.manifest.layers[1].digest));
    assert_eq!(report.removed_blobs.len(), 4, "{report:?}");
    assert!(!app_image.layer_dirs[1].exists() && !store.layers_root().join("0123456789ab").exists());
    assert_eq!(report.removed_layers.len(), 2);
    // The base image is whole.
    assert!(store.is_complete(&base));
    for digest in
        [&base_image.manifest_digest, &base_image.manifest.config.digest, &base_image.manifest.layers[0].digest]
    {
        assert!(store.has_blob(digest), "{digest} must be kept");
    }
}

#[test]
fn layer_dirs_keel_did_not_complete_are_not_trusted() {
    let fixture = fixture();
    let store = open_store(&fixture.dir);
    let path = archive(&fixture, "base", "oci-archive", "base.tar", "1");
    // Learn the layer's diff_id from a first import, then forget the image.
    store.import_archive(&path).unwrap();
    let base: ImageReference = "base:1".parse().unwrap();
    let real = store.image(&base).unwrap().layer_dirs[0].clone();
    let name = real.file_name().unwrap().to_str().unwrap().to_string();
    assert_eq!(name.len(), 64, "keyed by the whole diff_id: {name}");
    assert!(store.untag(&base.to_string()).unwrap());
    store.collect_garbage().unwrap();
    assert!(!real.exists());

    // A 12-digit directory as older stores named layers, and a symlink at the full name to a planted tree.
    let planted = fixture.dir.join("planted");
    std::fs::create_dir_all(planted.join("etc")).unwrap();
    std::fs::write(planted.join("etc/base"), "planted").unwrap();
    let legacy = store.layers_root().join(&name[..12]);
    std::fs::create_dir_all(legacy.join("etc")).unwrap();
    std::fs::write(legacy.join("etc/base"), "legacy").unwrap();
    std::os::unix::fs::symlink(&planted, &real).unwrap();

    store.import_archive(&path).unwrap();
    let image = store.image(&base).unwrap();
    assert_eq!(image.layer_dirs[0], real);
    assert!(std::fs::symlink_metadata(&real).unwrap().is_dir(), "the symlink was replaced by the unpacked layer");
    assert_eq!(std::fs::read_to_string(real.join("etc/base")).unwrap(), "base");
    assert_eq!(std::fs::read_to_string(planted.join("etc/base")).unwrap(), "planted");
    // The old-style directory is nobody's layer now.
    let report = store.collect_garbage().unwrap();
    assert_eq!(report.removed_layers, vec![legacy.clone()]);
    assert!(!legacy.exists() && store.is_complete(&base));
}

/// A ustar header block for `name` of type `kind` claiming `size` bytes (base-256 when octal cannot hold it).
fn raw_header(name: &str, kind: tar::EntryType, size: u64) -> Vec<u8> {
    let mut header = tar::Header::new_gnu();
    header.set_entry_type(kind);
    header.set_size(size);
    header.set_mode(0o644);
    header.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    header.set_cksum();
    header.as_bytes().to_vec()
}

#[test]
fn an_archive_with_huge_headers_or_members_is_refused_without_reading_them() {
    let temp = tempfile::tempdir().unwrap();
    let store = open_store(temp.path());
    // An 8 GiB PAX record (a sparse file: the zeros cost nothing on disk, but 8 GiB of memory if read whole).
    let pax = temp.path().join("pax.tar");
    std::fs::write(&pax, raw_header("pax", tar::EntryType::XHeader, 8 << 30)).unwrap();
    std::fs::OpenOptions::new().append(true).open(&pax).unwrap().set_len(512 + (8 << 30) + 1024).unwrap();
    let error = store.import_archive(&pax).expect_err("an 8 GiB PAX record must be refused");
    let message = keel_logs::error_chain(&error);
    assert!(message.contains("tar headers take more than 1048576 bytes"), "{message}");
    // A manifest.json of 1 GiB: its size is known from the index, so it is refused before it is read.
    let member = temp.path().join("member.tar");
    std::fs::write(&member, raw_header("manifest.json", tar::EntryType::Regular, 1 << 30)).unwrap();
    std::fs::OpenOptions::new().append(true).open(&member).unwrap().set_len(512 + (1 << 30) + 1024).unwrap();
    let error = store.import_archive(&member).expect_err("a 1 GiB manifest.json must be refused");
    let message = keel_logs::error_chain(&error);
    assert!(message.contains("entry manifest.json has 1073741824 bytes, over the limit of 16777216"), "{message}");
}
