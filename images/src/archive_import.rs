//! Imports `docker save` archives and OCI archives (tar files) into the store, e.g. the preloaded images under
//! `/usr/share/keel/images/` at boot.
//!
//! Naming: a docker archive names its images in `RepoTags`. An OCI archive names them in `index.json` with
//! `io.containerd.image.name` or `org.opencontainers.image.ref.name`; a ref name that is only a tag (what
//! `skopeo copy … oci-archive:nginx.tar:1.27` writes) is taken as a tag of the archive's file stem (`nginx:1.27`).

use std::collections::HashMap;
use std::fs::{self, File};
use std::io::{self, BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::digest::{Digest, HashingReader};
use super::extract::budget::MAX_ENTRY_HEADERS;
use super::extract::ExtractOptions;
use super::reference::{ImageReference, ReferenceError};
use super::registry::manifest::{
    parse_manifest, Descriptor, ImageConfig, ImageIndex, ImageManifest, ManifestKind, Platform, OCI_CONFIG,
    OCI_LAYER_GZIP, OCI_LAYER_TAR, OCI_LAYER_ZSTD, OCI_MANIFEST, REF_NAME_ANNOTATION,
};
use super::store::{ImageStore, StoreError};
use super::unpack::{store_layer, UnpackError};

const CONTAINERD_NAME_ANNOTATION: &str = "io.containerd.image.name";

/// The most of a member read into memory (`manifest.json`, `index.json`, configs, manifests), as for a pull's
/// config.
const MAX_MEMBER_BYTES: u64 = 16 << 20;

/// The longest member name indexed.
const MAX_MEMBER_NAME: usize = 4096;

/// What failed while importing an archive; each variant names the archive and the entry or digest.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("archive {path}: reading it")]
    Read {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("archive {path}: neither manifest.json (docker save) nor index.json (OCI) found")]
    UnknownFormat { path: PathBuf },
    #[error("archive {path}: entry {entry} is missing")]
    MissingEntry { path: PathBuf, entry: String },
    #[error("archive {path}: entry {entry} has {size} bytes, over the limit of {limit}")]
    MemberTooLarge { path: PathBuf, entry: String, size: u64, limit: u64 },
    #[error("archive {path}: parsing {entry}")]
    Parse {
        path: PathBuf,
        entry: String,
        #[source]
        source: serde_json::Error,
    },
    #[error("archive {path}: image name {name:?}")]
    Reference {
        path: PathBuf,
        name: String,
        #[source]
        source: ReferenceError,
    },
    #[error("archive {path}: image {name} has {layers} layers but {diff_ids} diff_ids")]
    LayerCountMismatch { path: PathBuf, name: String, layers: usize, diff_ids: usize },
    #[error("archive {path}: no manifest for this platform in index {digest}")]
    NoMatchingPlatform { path: PathBuf, digest: Digest },
    #[error("archive {path}: storing {digest}")]
    Store {
        path: PathBuf,
        digest: Digest,
        #[source]
        source: StoreError,
    },
    #[error("archive {path}")]
    Layer {
        path: PathBuf,
        #[source]
        source: UnpackError,
    },
    #[error("listing preloaded images in {dir}")]
    ReadDir {
        dir: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// The archive's member files by name (without `./`), as offsets into the tar file: read in place, never
/// extracted, so archive paths cannot point anywhere.
struct ArchiveIndex {
    path: PathBuf,
    members: HashMap<String, (u64, u64)>,
}

impl ArchiveIndex {
    fn scan(path: &Path) -> Result<ArchiveIndex, ImportError> {
        let read_error = |source| ImportError::Read { path: path.to_path_buf(), source };
        let file = File::open(path).map_err(read_error)?;
        let mut archive = tar::Archive::new(HeaderBoundedFile { file, read_since_seek: 0 });
        let mut members = HashMap::new();
        for entry in archive.entries_with_seek().map_err(read_error)? {
            let entry = entry.map_err(read_error)?;
            if !matches!(entry.header().entry_type(), tar::EntryType::Regular | tar::EntryType::Continuous) {
                continue;
            }
            // Members keel looks up have short names (`blobs/sha256/<hex>`); a longer one is nobody's, and keeping
            // names of up to 1 MiB would let the index grow with the archive.
            if entry.path_bytes().len() > MAX_MEMBER_NAME {
                continue;
            }
            let name = String::from_utf8_lossy(&entry.path_bytes()).trim_start_matches("./").to_string();
            members.insert(name, (entry.raw_file_position(), entry.size()));
        }
        Ok(ArchiveIndex { path: path.to_path_buf(), members })
    }

    fn has(&self, name: &str) -> bool {
        self.members.contains_key(name)
    }

    fn open(&self, name: &str) -> Result<io::Take<File>, ImportError> {
        let missing = || ImportError::MissingEntry { path: self.path.clone(), entry: name.to_string() };
        let (offset, size) = *self.members.get(name.trim_start_matches("./")).ok_or_else(missing)?;
        let read_error = |source| ImportError::Read { path: self.path.clone(), source };
        let mut file = File::open(&self.path).map_err(read_error)?;
        file.seek(SeekFrom::Start(offset)).map_err(read_error)?;
        Ok(file.take(size))
    }

    fn read(&self, name: &str) -> Result<Vec<u8>, ImportError> {
        if let Some(&(_, size)) = self.members.get(name.trim_start_matches("./")) {
            if size > MAX_MEMBER_BYTES {
                return Err(ImportError::MemberTooLarge {
                    path: self.path.clone(),
                    entry: name.to_string(),
                    size,
                    limit: MAX_MEMBER_BYTES,
                });
            }
        }
        let mut bytes = Vec::new();
        self.open(name)?
            .read_to_end(&mut bytes)
            .map_err(|source| ImportError::Read { path: self.path.clone(), source })?;
        Ok(bytes)
    }

    fn parse<T: for<'de> Deserialize<'de>>(&self, name: &str) -> Result<T, ImportError> {
        serde_json::from_slice(&self.read(name)?).map_err(|source| ImportError::Parse {
            path: self.path.clone(),
            entry: name.to_string(),
            source,
        })
    }
}

/// The archive file as the `tar` crate reads it for the index. It seeks over every member's data, so what it
/// reads between two seeks is one member's headers, which it would read whole into memory with the size they
/// claim (a PAX record, a GNU long name): more than [`MAX_ENTRY_HEADERS`] of them is refused.
struct HeaderBoundedFile {
    file: File,
    read_since_seek: u64,
}

impl Read for HeaderBoundedFile {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Room for the member's own header and those of its extension records.
        let allowance = MAX_ENTRY_HEADERS + 8 * 512;
        let left = allowance.saturating_sub(self.read_since_seek);
        if left == 0 {
            return Err(io::Error::other(format!("a member's tar headers take more than {MAX_ENTRY_HEADERS} bytes")));
        }
        let limit = usize::try_from(left).map_or(buf.len(), |left| left.min(buf.len()));
        let count = self.file.read(&mut buf[..limit])?;
        self.read_since_seek += count as u64;
        Ok(count)
    }
}

impl Seek for HeaderBoundedFile {
    fn seek(&mut self, position: SeekFrom) -> io::Result<u64> {
        self.read_since_seek = 0;
        self.file.seek(position)
    }
}

/// One image of a `docker save` archive's `manifest.json`.
#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct DockerArchiveImage {
    config: String,
    #[serde(default)]
    repo_tags: Vec<String>,
    layers: Vec<String>,
}

/// An image found in an archive, ready to import.
struct ArchiveImage {
    names: Vec<ImageReference>,
    config_bytes: Vec<u8>,
    config_digest: Digest,
    /// Manifest layer descriptor and the archive member holding that layer.
    layers: Vec<(Descriptor, String)>,
    /// The manifest as stored in the archive (OCI) or as keel writes it (docker archives).
    manifest_bytes: Vec<u8>,
}

impl ImageStore {
    /// Imports every image of a docker-save or OCI archive; returns the references now tagged.
    pub fn import_archive(&self, path: &Path) -> Result<Vec<ImageReference>, ImportError> {
        let _writing = self.writer_guard();
        let archive = ArchiveIndex::scan(path)?;
        let images = find_images(&archive)?;
        let options = ExtractOptions::default();
        let mut imported = Vec::new();
        for image in images {
            imported.extend(self.import_image(&archive, image, &options)?);
        }
        Ok(imported)
    }

    /// Imports each `*.tar` in `dir` (sorted by name) unless all its images are already complete in the store.
    pub fn import_preloaded_dir(&self, dir: &Path) -> Result<Vec<ImageReference>, ImportError> {
        let read_dir_error = |source| ImportError::ReadDir { dir: dir.to_path_buf(), source };
        let mut archives: Vec<PathBuf> = fs::read_dir(dir)
            .map_err(read_dir_error)?
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|path| path.extension().is_some_and(|extension| extension == "tar"))
            .collect();
        archives.sort();
        let mut imported = Vec::new();
        for path in archives {
            let archive = ArchiveIndex::scan(&path)?;
            let images = find_images(&archive)?;
            let all_present = images.iter().all(|image| image.names.iter().all(|name| self.is_complete(name)));
            if all_present {
                log::info!("preloaded images in {}: already present", path.display());
                continue;
            }
            let options = ExtractOptions::default();
            let _writing = self.writer_guard();
            for image in images {
                imported.extend(self.import_image(&archive, image, &options)?);
            }
        }
        Ok(imported)
    }

    fn import_image(
        &self,
        archive: &ArchiveIndex,
        image: ArchiveImage,
        options: &ExtractOptions,
    ) -> Result<Vec<ImageReference>, ImportError> {
        let path = archive.path.clone();
        let config: ImageConfig = serde_json::from_slice(&image.config_bytes).map_err(|source| ImportError::Parse {
            path: path.clone(),
            entry: image.config_digest.to_string(),
            source,
        })?;
        if config.rootfs.diff_ids.len() != image.layers.len() {
            return Err(ImportError::LayerCountMismatch {
                path,
                name: image.names.first().map(ToString::to_string).unwrap_or_default(),
                layers: image.layers.len(),
                diff_ids: config.rootfs.diff_ids.len(),
            });
        }
        for ((descriptor, member), diff_id) in image.layers.iter().zip(&config.rootfs.diff_ids) {
            let reader = archive.open(member)?;
            store_layer(self, reader, descriptor, diff_id, options)
                .map_err(|source| ImportError::Layer { path: path.clone(), source })?;
        }
        let store_error = |digest: &Digest| {
            let (path, digest) = (path.clone(), digest.clone());
            move |source| ImportError::Store { path, digest, source }
        };
        self.write_blob_bytes(&image.config_bytes, &image.config_digest).map_err(store_error(&image.config_digest))?;
        let manifest_digest = Digest::of_bytes(&image.manifest_bytes);
        self.write_blob_bytes(&image.manifest_bytes, &manifest_digest).map_err(store_error(&manifest_digest))?;
        let descriptor = Descriptor {
            media_type: OCI_MANIFEST.to_string(),
            digest: manifest_digest.clone(),
            size: image.manifest_bytes.len() as u64,
            platform: None,
            annotations: Default::default(),
        };
        for name in &image.names {
            self.tag(&name.to_string(), &descriptor).map_err(store_error(&manifest_digest))?;
        }
        Ok(image.names)
    }
}

fn find_images(archive: &ArchiveIndex) -> Result<Vec<ArchiveImage>, ImportError> {
    if archive.has("manifest.json") {
        docker_archive_images(archive)
    } else if archive.has("index.json") {
        oci_archive_images(archive)
    } else {
        Err(ImportError::UnknownFormat { path: archive.path.clone() })
    }
}

fn parse_name(archive: &ArchiveIndex, name: &str) -> Result<ImageReference, ImportError> {
    name.parse().map_err(|source| ImportError::Reference { path: archive.path.clone(), name: name.to_string(), source })
}

/// `docker save`: layers are tar files (usually uncompressed) named in `manifest.json`; keel writes an OCI
/// manifest for them.
fn docker_archive_images(archive: &ArchiveIndex) -> Result<Vec<ArchiveImage>, ImportError> {
    let entries: Vec<DockerArchiveImage> = archive.parse("manifest.json")?;
    let mut images = Vec::new();
    for entry in entries {
        let names = entry.repo_tags.iter().map(|tag| parse_name(archive, tag)).collect::<Result<Vec<_>, _>>()?;
        let config_bytes = archive.read(&entry.config)?;
        let config_digest = Digest::of_bytes(&config_bytes);
        let config: ImageConfig = serde_json::from_slice(&config_bytes).map_err(|source| ImportError::Parse {
            path: archive.path.clone(),
            entry: entry.config.clone(),
            source,
        })?;
        let mut layers = Vec::new();
        for (member, diff_id) in entry.layers.iter().zip(&config.rootfs.diff_ids) {
            let descriptor = describe_layer(archive, member, diff_id)?;
            layers.push((descriptor, member.clone()));
        }
        let manifest = ImageManifest {
            schema_version: 2,
            media_type: Some(OCI_MANIFEST.to_string()),
            config: Descriptor {
                media_type: OCI_CONFIG.to_string(),
                digest: config_digest.clone(),
                size: config_bytes.len() as u64,
                platform: None,
                annotations: Default::default(),
            },
            layers: layers.iter().map(|(descriptor, _)| descriptor.clone()).collect(),
        };
        let manifest_bytes = serde_json::to_vec(&manifest).map_err(|source| ImportError::Parse {
            path: archive.path.clone(),
            entry: "manifest".into(),
            source,
        })?;
        images.push(ArchiveImage { names, config_bytes, config_digest, layers, manifest_bytes });
    }
    Ok(images)
}

/// A docker-archive layer's descriptor: an uncompressed layer's blob digest is its diff_id; a compressed one is
/// hashed first.
fn describe_layer(archive: &ArchiveIndex, member: &str, diff_id: &Digest) -> Result<Descriptor, ImportError> {
    let read_error = |source| ImportError::Read { path: archive.path.clone(), source };
    let mut reader = BufReader::new(archive.open(member)?);
    let magic = reader.fill_buf().map_err(read_error)?.get(..4).map(<[u8]>::to_vec).unwrap_or_default();
    let media_type = if magic.starts_with(&[0x1f, 0x8b]) {
        OCI_LAYER_GZIP
    } else if magic == [0x28, 0xb5, 0x2f, 0xfd] {
        OCI_LAYER_ZSTD
    } else {
        OCI_LAYER_TAR
    };
    let (digest, size) = if media_type == OCI_LAYER_TAR {
        let size = archive.members.get(member.trim_start_matches("./")).map_or(0, |(_, size)| *size);
        (diff_id.clone(), size)
    } else {
        let (digest, size, _) = HashingReader::new(reader).finish().map_err(read_error)?;
        (digest, size)
    };
    Ok(Descriptor { media_type: media_type.to_string(), digest, size, platform: None, annotations: Default::default() })
}

fn blob_member(digest: &Digest) -> String {
    format!("blobs/sha256/{}", digest.hex())
}

/// An OCI archive: an OCI layout in a tar; names come from `index.json` annotations.
fn oci_archive_images(archive: &ArchiveIndex) -> Result<Vec<ArchiveImage>, ImportError> {
    let index: ImageIndex = archive.parse("index.json")?;
    let stem = archive.path.file_stem().map(|stem| stem.to_string_lossy().into_owned()).unwrap_or_default();
    let mut images = Vec::new();
    for entry in &index.manifests {
        let name = match (entry.annotations.get(CONTAINERD_NAME_ANNOTATION), entry.annotations.get(REF_NAME_ANNOTATION))
        {
            (Some(full), _) => full.clone(),
            (None, Some(ref_name)) if ref_name.contains(':') || ref_name.contains('/') => ref_name.clone(),
            (None, Some(tag)) => format!("{stem}:{tag}"),
            (None, None) => continue,
        };
        let names = vec![parse_name(archive, &name)?];
        let mut manifest_digest = entry.digest.clone();
        let mut manifest_bytes = verified_member(archive, &manifest_digest)?;
        let parse_error = |digest: &Digest, source| ImportError::Parse {
            path: archive.path.clone(),
            entry: blob_member(digest),
            source,
        };
        if let ManifestKind::Index(nested) = parse_manifest(&manifest_bytes, Some(&entry.media_type))
            .map_err(|source| parse_error(&manifest_digest, source))?
        {
            let chosen = nested.select(&Platform::host()).ok_or_else(|| ImportError::NoMatchingPlatform {
                path: archive.path.clone(),
                digest: manifest_digest.clone(),
            })?;
            manifest_digest = chosen.digest.clone();
            manifest_bytes = verified_member(archive, &manifest_digest)?;
        }
        let manifest: ImageManifest =
            serde_json::from_slice(&manifest_bytes).map_err(|source| parse_error(&manifest_digest, source))?;
        let config_bytes = verified_member(archive, &manifest.config.digest)?;
        let layers = manifest.layers.iter().map(|layer| (layer.clone(), blob_member(&layer.digest))).collect();
        images.push(ArchiveImage {
            names,
            config_bytes,
            config_digest: manifest.config.digest.clone(),
            layers,
            manifest_bytes,
        });
    }
    Ok(images)
}

/// Reads a small blob from the archive and checks it against its digest.
fn verified_member(archive: &ArchiveIndex, digest: &Digest) -> Result<Vec<u8>, ImportError> {
    let bytes = archive.read(&blob_member(digest))?;
    let actual = Digest::of_bytes(&bytes);
    super::store::verify(digest, &actual, None, 0).map_err(|source| ImportError::Store {
        path: archive.path.clone(),
        digest: digest.clone(),
        source,
    })?;
    Ok(bytes)
}
