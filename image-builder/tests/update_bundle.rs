//! `keel-build keygen`, `bundle` and `image --update-key` end to end: a bundle reads back through the verifying
//! reader with exactly the kernel, initramfs and root filesystem an image of the same recipe holds, and the keys
//! land in the root filesystem; two builds give the same bytes; a tampered or foreign bundle is refused; a secret
//! key is never installed as a public one.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::fs::File;
use std::io::{BufReader, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

use common::{build_env, extract, keygen, mtools, partitions, run_ok, same_bytes};
use keel_os_image::bundle::keys::parse_public_key;
use keel_os_image::bundle::{BundleError, BundleReader, PayloadName, TrustPolicy};
use keel_os_image::os_release;

const COMPATIBLE: &str = "keel-x86_64-qemu";

fn policy(keys: &[ed25519_dalek::VerifyingKey]) -> TrustPolicy<'_> {
    TrustPolicy { keys, compatible: COMPATIBLE, running_version: "0.0.1", allow_downgrade: false }
}

fn public_key(path: &Path) -> ed25519_dalek::VerifyingKey {
    parse_public_key(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Reads every payload of the bundle at `path` into `dir/<name>`; the first error.
fn unpack(path: &Path, keys: &[ed25519_dalek::VerifyingKey], dir: &Path) -> Result<(), BundleError> {
    let mut reader = BundleReader::open(BufReader::new(File::open(path).unwrap()), &policy(keys))?;
    while let Some(mut payload) = reader.next_payload()? {
        let mut out = File::create(dir.join(payload.entry().name.as_str())).unwrap();
        std::io::copy(&mut payload, &mut out).map_err(|error| BundleError::from_io(error).unwrap())?;
    }
    reader.finish().map(drop)
}

#[test]
fn keygen_keeps_the_secret_private_and_never_replaces_it() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(dir.path());
    assert_eq!(std::fs::metadata(&secret).unwrap().permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&secret).unwrap().starts_with("ed25519-secret "));
    public_key(&public);
    let before = std::fs::read(&secret).unwrap();

    let again = Command::new(env!("CARGO_BIN_EXE_keel-build")).arg("keygen").arg("--out").arg(dir.path()).output();
    let again = again.unwrap();
    assert_eq!(again.status.code(), Some(100));
    let stderr = String::from_utf8_lossy(&again.stderr);
    assert!(stderr.contains("update.key exists: keygen never replaces a key"), "{stderr}");
    assert_eq!(std::fs::read(&secret).unwrap(), before);
}

#[test]
fn a_secret_key_is_never_installed_as_a_public_one() {
    let env = build_env();
    let dir = tempfile::tempdir().unwrap();
    let (secret, _) = keygen(dir.path());
    let output =
        env.command(&dir.path().join("keel.img"), &["--update-key", secret.to_str().unwrap()]).output().unwrap();
    assert_eq!(output.status.code(), Some(100));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains(&format!("the key file {} is not usable", secret.display())), "{stderr}");
    assert!(stderr.contains("this is a secret key"), "{stderr}");
    assert!(!dir.path().join("keel.img").exists());
}

#[test]
fn a_bundle_reads_back_as_the_image_holds_it() {
    let env = build_env();
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&dir.path().join("keys"));
    let bundle = dir.path().join("keel.bundle");
    let summary = run_ok(&mut env.bundle_command(&bundle, &secret, &[]));
    let summary = String::from_utf8(summary.stdout).unwrap();
    assert!(summary.contains("compatible:    keel-x86_64-qemu\n"), "{summary}");

    let keys = [public_key(&public)];
    let unpacked = dir.path().join("unpacked");
    std::fs::create_dir(&unpacked).unwrap();
    unpack(&bundle, &keys, &unpacked).unwrap();

    // The same recipe as an image, trusting the same key: the same three payloads.
    let image = dir.path().join("keel.img");
    run_ok(&mut env.command(&image, &["--update-key", public.to_str().unwrap()]));
    let partitions = partitions(&image);
    let esp = partitions[0].start;
    for (name, on_esp) in [("kernel", "::/keel/a/vmlinuz"), ("initramfs", "::/keel/a/initrd.img")] {
        let copy = dir.path().join(format!("esp-{name}"));
        mtools("mcopy", &image, esp, &[on_esp, copy.to_str().unwrap()]);
        assert!(same_bytes(&copy, &unpacked.join(name)), "the bundle's {name} differs from the image's {on_esp}");
    }
    let root_slot = std::fs::read(extract(&image, &partitions[1], dir.path().join("root-a"))).unwrap();
    let root = std::fs::read(unpacked.join("root")).unwrap();
    assert_eq!(&root_slot[..root.len()], &root[..], "the bundle's root differs from slot a's");
    assert!(root_slot[root.len()..].iter().all(|&byte| byte == 0));

    // The root filesystem trusts the key and names what it is.
    let tree = dir.path().join("root-tree");
    run_ok(Command::new("fsck.erofs").arg(format!("--extract={}", tree.display())).arg(unpacked.join("root")));
    let installed = tree.join("usr/share/keel/update-keys/0.pub");
    assert_eq!(std::fs::read_to_string(installed).unwrap(), std::fs::read_to_string(&public).unwrap());
    assert!(!tree.join("usr/share/keel/update-keys/1.pub").exists());
    let release = std::fs::read_to_string(tree.join("etc/os-release")).unwrap();
    assert_eq!(os_release::field(&release, os_release::COMPATIBLE_FIELD), Some(COMPATIBLE));
    assert_eq!(os_release::field(&release, os_release::VERSION_FIELD), Some("0.1.0"));

    refuses_tampered_and_foreign_copies(&bundle, &keys, root.len() as u64, dir.path());
}

/// The real bundle signed by a key the host does not trust, with a byte changed, and cut short.
fn refuses_tampered_and_foreign_copies(bundle: &Path, keys: &[ed25519_dalek::VerifyingKey], root_len: u64, dir: &Path) {
    let (_, stranger) = keygen(&dir.join("stranger"));
    let scratch = dir.join("scratch");
    std::fs::create_dir(&scratch).unwrap();

    let error = unpack(bundle, &[public_key(&stranger)], &scratch).unwrap_err();
    assert!(matches!(error, BundleError::Signature { keys: 1, .. }), "{error:?}");

    // One byte of the root filesystem changed: found when the root payload ends, after it streamed.
    let mut bytes = std::fs::read(bundle).unwrap();
    let near_end = bytes.len() - 4096;
    bytes[near_end] ^= 0x40;
    let tampered = dir.join("tampered.bundle");
    std::fs::write(&tampered, &bytes).unwrap();
    let error = unpack(&tampered, keys, &scratch).unwrap_err();
    match &error {
        BundleError::PayloadHash { name: PayloadName::Root, end, .. } => assert_eq!(*end, bytes.len() as u64),
        other => panic!("{other:?}"),
    }
    let streamed = std::fs::metadata(scratch.join("root")).unwrap().len();
    // All but the last read's bytes: io::copy reads 8 KiB at a time.
    assert!(
        streamed < root_len && streamed >= root_len - 8192,
        "the root payload streams up to its last read: {streamed} of {root_len} bytes"
    );

    let mut prefix = Vec::new();
    File::open(bundle).unwrap().take(bytes.len() as u64 - 100).read_to_end(&mut prefix).unwrap();
    let short = dir.join("short.bundle");
    std::fs::write(&short, &prefix).unwrap();
    let error = unpack(&short, keys, &scratch).unwrap_err();
    assert!(
        error.to_string().starts_with(&format!("the bundle ends at byte {}, inside its payload root", prefix.len())),
        "{error}"
    );
}

#[test]
fn two_bundle_builds_are_byte_identical() {
    let env = build_env();
    let keys = tempfile::tempdir().unwrap();
    let (secret, _) = keygen(keys.path());
    let first = tempfile::tempdir().unwrap();
    let second = tempfile::tempdir().unwrap();
    for dir in [&first, &second] {
        run_ok(&mut env.bundle_command(&dir.path().join("keel.bundle"), &secret, &[]));
    }
    assert!(same_bytes(&first.path().join("keel.bundle"), &second.path().join("keel.bundle")));
    let leftovers: Vec<_> = std::fs::read_dir(first.path()).unwrap().map(|entry| entry.unwrap().file_name()).collect();
    assert_eq!(leftovers.len(), 1, "the work directory must be removed: {leftovers:?}");
}
