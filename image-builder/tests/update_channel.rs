//! `keel-build channel` end to end: the file it writes verifies with the public key keygen made and with no other,
//! names the bundle as given, is the same bytes on every run, and a bad version or bundle reference is a usage
//! error that leaves no file.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::{keygen, run_ok};
use keel_os_image::bundle::keys::parse_public_key;
use keel_os_image::channel::{ChannelDocument, ChannelError};

fn channel(key: &Path, version: &str, bundle: &str, out: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_keel-build"));
    command.arg("channel").arg("--key").arg(key).args(["--version", version, "--bundle", bundle]);
    command.args(["--compatible", "keel-x86_64-qemu"]).arg("--out").arg(out);
    command
}

fn stderr(output: &Output) -> String {
    String::from_utf8_lossy(&output.stderr).into_owned()
}

#[test]
fn writes_a_reproducible_signed_channel() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&dir.path().join("keys"));
    let (_, stranger) = keygen(&dir.path().join("stranger"));
    let out = dir.path().join("stable.json");
    run_ok(&mut channel(&secret, "0.2.0", "keel-0.2.0.bundle", &out));
    let file = std::fs::read(&out).unwrap();

    let key = parse_public_key(&std::fs::read_to_string(public).unwrap()).unwrap();
    let document = ChannelDocument::verify(&file, &[key]).unwrap();
    assert_eq!(document, ChannelDocument::new("keel-x86_64-qemu", "0.2.0", "keel-0.2.0.bundle"));
    assert_eq!(
        document.bundle_url("http://10.0.2.2:8080/c/stable.json").unwrap(),
        "http://10.0.2.2:8080/c/keel-0.2.0.bundle"
    );
    let stranger = parse_public_key(&std::fs::read_to_string(stranger).unwrap()).unwrap();
    assert_eq!(ChannelDocument::verify(&file, &[stranger]), Err(ChannelError::Signature { keys: 1 }));

    run_ok(&mut channel(&secret, "0.2.0", "keel-0.2.0.bundle", &out));
    assert_eq!(std::fs::read(&out).unwrap(), file, "the same inputs give the same bytes");
}

#[test]
fn refuses_what_a_host_would_refuse() {
    let dir = tempfile::tempdir().unwrap();
    let (secret, public) = keygen(&dir.path().join("keys"));
    let out = dir.path().join("stable.json");
    for (version, bundle, message) in [
        ("1+2", "k.bundle", "the channel's version \"1+2\" is not a keel version"),
        ("1.0", "../k.bundle", "the channel's bundle \"../k.bundle\" is not an http(s) URL"),
        ("1.0", "file:///k.bundle", "the channel's bundle \"file:///k.bundle\" is not an http(s) URL"),
    ] {
        let output = channel(&secret, version, bundle, &out).output().unwrap();
        assert_eq!(output.status.code(), Some(100), "{}", stderr(&output));
        assert!(stderr(&output).contains(message), "{}", stderr(&output));
        assert!(!out.exists());
    }
    let output = channel(&public, "1.0", "k.bundle", &out).output().unwrap();
    assert_eq!(output.status.code(), Some(100));
    assert!(stderr(&output).contains("the secret key (ed25519-secret) belongs here"), "{}", stderr(&output));
}
