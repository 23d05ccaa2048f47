//! Builds test images in an OCI layout with umoci and pushes them to a registry with skopeo.

use std::path::{Path, PathBuf};

use super::run;

pub struct Layout {
    pub path: PathBuf,
    work: PathBuf,
}

impl Layout {
    /// A new, empty OCI layout at `dir/layout` (`dir` also holds bundles and layer tars while building).
    pub fn create(dir: &Path) -> Layout {
        std::fs::create_dir_all(dir).unwrap();
        let path = dir.join("layout");
        run("umoci", &["init", "--layout", path.to_str().unwrap()]);
        Layout { path, work: dir.to_path_buf() }
    }

    /// An existing layout made by [`Layout::create`] in `dir`.
    pub fn open(dir: &Path) -> Layout {
        Layout { path: dir.join("layout"), work: dir.to_path_buf() }
    }

    pub fn image(&self, tag: &str) -> String {
        format!("{}:{tag}", self.path.display())
    }

    /// A new image with no layers.
    pub fn new_image(&self, tag: &str) {
        run("umoci", &["new", "--image", &self.image(tag)]);
    }

    /// Adds a layer the realistic way: unpack, let `change` edit the rootfs, repack (umoci writes the diff,
    /// whiteouts for deleted files included).
    pub fn add_layer(&self, tag: &str, change: impl FnOnce(&Path)) {
        let bundle = self.work.join(format!("bundle-{tag}"));
        let _ = std::fs::remove_dir_all(&bundle);
        run("umoci", &["unpack", "--image", &self.image(tag), bundle.to_str().unwrap()]);
        change(&bundle.join("rootfs"));
        run("umoci", &["repack", "--image", &self.image(tag), bundle.to_str().unwrap()]);
        std::fs::remove_dir_all(&bundle).unwrap();
    }

    /// Appends a hand-made (uncompressed) layer tar verbatim.
    pub fn add_raw_layer(&self, tag: &str, tar: &[u8]) {
        let file = self.work.join(format!("raw-{tag}.tar"));
        std::fs::write(&file, tar).unwrap();
        run("umoci", &["raw", "add-layer", "--image", &self.image(tag), file.to_str().unwrap()]);
        std::fs::remove_file(&file).unwrap();
    }

    pub fn set_architecture(&self, tag: &str, architecture: &str) {
        run("umoci", &["config", "--image", &self.image(tag), "--architecture", architecture]);
    }

    /// `index.json`'s entry for `tag`: (media type, digest, size).
    pub fn manifest_of(&self, tag: &str) -> (String, String, u64) {
        let index: serde_json::Value =
            serde_json::from_slice(&std::fs::read(self.path.join("index.json")).unwrap()).unwrap();
        let entry = index["manifests"]
            .as_array()
            .unwrap()
            .iter()
            .find(|entry| entry["annotations"]["org.opencontainers.image.ref.name"] == tag)
            .unwrap_or_else(|| panic!("no tag {tag} in layout"))
            .clone();
        (
            entry["mediaType"].as_str().unwrap().to_string(),
            entry["digest"].as_str().unwrap().to_string(),
            entry["size"].as_u64().unwrap(),
        )
    }

    pub fn read_blob(&self, digest: &str) -> Vec<u8> {
        std::fs::read(self.path.join("blobs/sha256").join(digest.trim_start_matches("sha256:"))).unwrap()
    }

    /// The digests of `tag`'s layer blobs, lowest first.
    pub fn layer_digests(&self, tag: &str) -> Vec<String> {
        let (_, digest, _) = self.manifest_of(tag);
        let manifest: serde_json::Value = serde_json::from_slice(&self.read_blob(&digest)).unwrap();
        manifest["layers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|layer| layer["digest"].as_str().unwrap().to_string())
            .collect()
    }

    /// Pushes `tag` to `registry_host/name:remote_tag` (plain HTTP), with basic credentials if given.
    pub fn push(&self, tag: &str, registry_host: &str, name: &str, credentials: Option<(&str, &str)>) {
        let destination = format!("docker://{registry_host}/{name}");
        let creds = credentials.map(|(user, password)| format!("{user}:{password}"));
        let mut args = vec!["copy", "--quiet", "--dest-tls-verify=false"];
        if let Some(creds) = &creds {
            args.extend(["--dest-creds", creds]);
        }
        let source = format!("oci:{}", self.image(tag));
        args.extend([source.as_str(), destination.as_str()]);
        run("skopeo", &args);
    }
}

/// One entry of a hand-made tar.
pub enum RawEntry<'a> {
    File(&'a str, &'a [u8]),
    Dir(&'a str),
    Symlink(&'a str, &'a str),
    Hardlink(&'a str, &'a str),
}

/// Builds a tar byte by byte: header fields are written raw, so names the `tar` crate's builder would refuse
/// (`..`, absolute paths) go in as they are.
pub fn raw_tar(entries: &[RawEntry<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for entry in entries {
        let (name, kind, link, data): (&str, tar::EntryType, &str, &[u8]) = match entry {
            RawEntry::File(name, data) => (name, tar::EntryType::Regular, "", data),
            RawEntry::Dir(name) => (name, tar::EntryType::Directory, "", b""),
            RawEntry::Symlink(name, target) => (name, tar::EntryType::Symlink, target, b""),
            RawEntry::Hardlink(name, target) => (name, tar::EntryType::Link, target, b""),
        };
        let mut header = tar::Header::new_ustar();
        header.set_entry_type(kind);
        header.set_size(data.len() as u64);
        header.set_mode(if matches!(kind, tar::EntryType::Directory) { 0o755 } else { 0o644 });
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        let old = header.as_old_mut();
        old.name[..name.len()].copy_from_slice(name.as_bytes());
        old.linkname[..link.len()].copy_from_slice(link.as_bytes());
        header.set_cksum();
        out.extend_from_slice(header.as_bytes());
        out.extend_from_slice(data);
        out.resize(out.len().div_ceil(512) * 512, 0);
    }
    out.resize(out.len() + 1024, 0);
    out
}
