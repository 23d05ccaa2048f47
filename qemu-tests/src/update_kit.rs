//! What update tests build on the host: a signing key pair of their own, images and bundles of the repository's
//! recipe at the versions a test names (a copy of `os-image/` with its `version` changed), signed channel files,
//! and a bundle with a broken initramfs signed with the same key. All through the real `keel-build`.

use std::fs::File;
use std::io::{BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, ensure, Context, Result};
use keel_os_image::bundle::keys::{parse_public_key, parse_secret_key};
use keel_os_image::bundle::{
    signed_head, BundleReader, Manifest, PayloadEntry, PayloadName, Sha256Digest, TrustPolicy,
};
use sha2::{Digest, Sha256};

use crate::artifacts::{workspace_dir, Artifacts};

/// The musl build of PID 1 and the container init that `make image` leaves in the target directory.
const MUSL_RELEASE: &str = "target/x86_64-unknown-linux-musl/release";

/// A scratch directory holding a key pair, and the means to build with it.
pub struct UpdateKit {
    dir: PathBuf,
    build_dir: PathBuf,
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    compatible: String,
}

impl UpdateKit {
    /// Makes a key pair in `dir/keys` with `keel-build keygen`.
    pub fn new(dir: &Path, artifacts: &Artifacts) -> Result<UpdateKit> {
        let keys = dir.join("keys");
        run(keel_build().arg("keygen").arg("--out").arg(&keys))?;
        let recipe = std::fs::read_to_string(workspace_dir().join("os-image/keel.toml"))?;
        let compatible = recipe
            .lines()
            .find_map(|line| line.strip_prefix("compatible = \"").and_then(|rest| rest.split('"').next()))
            .unwrap_or(keel_os_image::bundle::DEFAULT_COMPATIBLE)
            .to_owned();
        Ok(UpdateKit {
            dir: dir.to_owned(),
            build_dir: artifacts.build_dir.clone(),
            secret_key: keys.join("update.key"),
            public_key: keys.join("update.pub"),
            compatible,
        })
    }

    /// The recipe's `compatible`.
    pub fn compatible(&self) -> &str {
        &self.compatible
    }

    /// A raw disk image of the recipe at `version`, trusting the kit's key; slot a holds `version`.
    pub fn image(&self, version: &str) -> Result<PathBuf> {
        let out = self.dir.join(format!("keel-{version}.img"));
        let mut command = keel_build();
        command.arg("image").arg("--recipe").arg(self.recipe(version)?).arg("--out").arg(&out);
        self.slot_args(&mut command).arg("--update-key").arg(&self.public_key);
        run(&mut command)?;
        Ok(out)
    }

    /// A bundle of the recipe at `version`, signed with the kit's key.
    pub fn bundle(&self, version: &str) -> Result<PathBuf> {
        let out = self.dir.join(format!("keel-{version}.bundle"));
        let mut command = keel_build();
        command.arg("bundle").arg("--recipe").arg(self.recipe(version)?).arg("--out").arg(&out);
        self.slot_args(&mut command).arg("--key").arg(&self.secret_key);
        run(&mut command)?;
        Ok(out)
    }

    /// A signed channel file naming `version` and its bundle at `bundle` (absolute or relative URL).
    pub fn channel(&self, version: &str, bundle: &str) -> Result<Vec<u8>> {
        let out = self.dir.join(format!("channel-{version}.json"));
        let mut command = keel_build();
        command.arg("channel").arg("--key").arg(&self.secret_key).args(["--version", version]);
        command.args(["--compatible", &self.compatible, "--bundle", bundle]).arg("--out").arg(&out);
        run(&mut command)?;
        Ok(std::fs::read(out)?)
    }

    /// `bundle` with its initramfs replaced by `initramfs` (a kernel that finds no init in it panics), re-signed
    /// with the kit's key: a bundle every check passes that can never boot.
    pub fn with_initramfs(&self, bundle: &Path, initramfs: &[u8]) -> Result<PathBuf> {
        let public = parse_public_key(&std::fs::read_to_string(&self.public_key)?)?;
        let secret = parse_secret_key(&std::fs::read_to_string(&self.secret_key)?)?;
        let keys = [public];
        let policy =
            TrustPolicy { keys: &keys, compatible: &self.compatible, running_version: "0", allow_downgrade: true };
        let mut reader = BundleReader::open(BufReader::new(File::open(bundle)?), &policy)
            .with_context(|| format!("reading {}", bundle.display()))?;
        let version = reader.manifest().version.clone();
        let mut payloads = Vec::new();
        while let Some(mut payload) = reader.next_payload()? {
            let name = payload.entry().name;
            let mut bytes = Vec::new();
            payload.read_to_end(&mut bytes)?;
            payloads.push((name, if name == PayloadName::Initramfs { initramfs.to_vec() } else { bytes }));
        }
        ensure!(payloads.len() == 3, "{} has {} payloads", bundle.display(), payloads.len());
        let entries = payloads
            .iter()
            .map(|(name, bytes)| PayloadEntry {
                name: *name,
                size: bytes.len() as u64,
                sha256: Sha256Digest(Sha256::digest(bytes).into()),
            })
            .collect();
        let mut out_bytes = signed_head(&Manifest::new(&version, &self.compatible, entries), &secret)?;
        for (_, bytes) in &payloads {
            out_bytes.extend_from_slice(bytes);
        }
        let out = self.dir.join(format!("keel-{version}-broken-initramfs.bundle"));
        std::fs::write(&out, out_bytes)?;
        Ok(out)
    }

    /// The length of `bundle` and the size of its root payload (the last one).
    pub fn root_span(&self, bundle: &Path) -> Result<(u64, u64)> {
        let public = parse_public_key(&std::fs::read_to_string(&self.public_key)?)?;
        let keys = [public];
        let policy =
            TrustPolicy { keys: &keys, compatible: &self.compatible, running_version: "0", allow_downgrade: true };
        let reader = BundleReader::open(BufReader::new(File::open(bundle)?), &policy)?;
        let root = reader.manifest().payload(PayloadName::Root).map_or(0, |entry| entry.size);
        Ok((reader.bundle_len(), root))
    }

    /// A copy of `os-image/`'s recipe, lock and files with `version` in place of the recipe's.
    fn recipe(&self, version: &str) -> Result<PathBuf> {
        let source = workspace_dir().join("os-image");
        let dir = self.dir.join(format!("recipe-{version}"));
        if !dir.exists() {
            run(Command::new("cp").arg("-a").arg(&source).arg(&dir))?;
        }
        let path = dir.join("keel.toml");
        let text = std::fs::read_to_string(&path)?;
        let Some(line) = text.lines().find(|line| line.starts_with("version = ")) else {
            bail!("{} has no version line", path.display());
        };
        std::fs::write(&path, text.replacen(line, &format!("version = \"{version}\""), 1))?;
        Ok(path)
    }

    /// The arguments `image` and `bundle` share: the binaries `make image` built, its kernel cache and preload.
    fn slot_args<'c>(&self, command: &'c mut Command) -> &'c mut Command {
        let workspace = workspace_dir();
        command
            .arg("--init")
            .arg(workspace.join(MUSL_RELEASE).join("keel"))
            .arg("--container-init")
            .arg(workspace.join(MUSL_RELEASE).join("keel-container-init"))
            .arg("--cache")
            .arg(self.build_dir.join("cache"))
            .arg("--preload")
            .arg(self.build_dir.join("images/busybox.tar"))
    }
}

fn keel_build() -> Command {
    Command::new(workspace_dir().join("target/release/keel-build"))
}

fn run(command: &mut Command) -> Result<()> {
    let output = command.output().with_context(|| format!("cannot run {command:?}"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}):\n{}{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}
