//! Makes a config drive image (NoCloud `cidata` or OpenStack `config-2`, as vfat or iso9660) from a user-data
//! file that must pass keel's validation first, byte for byte reproducibly.

use std::path::{Path, PathBuf};

use keel_config::generations::short_digest;
use keel_config::meta_data::{self, MetaData, MetaDataError};
use keel_config::{ConfigErrors, UserData};

use crate::command::{CommandError, Tool};
use crate::reproducible::{self, ReproducibleError};
use crate::staging::{self, StagingError};

/// The smallest vfat image, in KiB; bigger user-data gets a bigger image.
const MIN_VFAT_KIB: u64 = 2048;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveFormat {
    Vfat,
    Iso9660,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DriveLayout {
    /// Label `cidata`; `user-data` and `meta-data` at the root.
    NoCloud,
    /// Label `config-2`; `openstack/latest/user_data` and `openstack/latest/meta_data.json`.
    ConfigDrive2,
}

impl DriveLayout {
    pub fn label(self) -> &'static str {
        match self {
            DriveLayout::NoCloud => "cidata",
            DriveLayout::ConfigDrive2 => "config-2",
        }
    }
}

/// What to build.
pub struct ConfigDriveRequest {
    pub user_data: PathBuf,
    pub meta_data: Option<PathBuf>,
    pub format: DriveFormat,
    pub layout: DriveLayout,
    pub out: PathBuf,
}

/// One file on the drive.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DriveFile {
    pub path: String,
    pub content: Vec<u8>,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigDriveError {
    #[error("cannot read {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not valid user-data:\n{errors}")]
    InvalidUserData { path: PathBuf, errors: ConfigErrors },
    #[error("{path} is not valid meta-data")]
    InvalidMetaData {
        path: PathBuf,
        #[source]
        source: MetaDataError,
    },
    #[error("cannot read the build epoch")]
    Epoch(#[from] ReproducibleError),
    #[error("cannot create a staging directory")]
    StagingDir(#[source] std::io::Error),
    #[error("staging the config drive files failed")]
    Stage(#[from] StagingError),
    #[error("making the config drive {image} failed")]
    Make {
        image: PathBuf,
        #[source]
        source: CommandError,
    },
}

impl ConfigDriveError {
    /// Whether the inputs are at fault (exit 100) rather than the system (exit 111).
    pub fn is_usage(&self) -> bool {
        matches!(self, ConfigDriveError::InvalidUserData { .. } | ConfigDriveError::InvalidMetaData { .. })
    }
}

/// Validates the inputs and writes the drive; returns the files written.
pub fn build(request: &ConfigDriveRequest) -> Result<Vec<DriveFile>, ConfigDriveError> {
    let read = |path: &Path| {
        std::fs::read_to_string(path).map_err(|source| ConfigDriveError::Read { path: path.to_owned(), source })
    };
    let user_data = read(&request.user_data)?;
    let name = request.user_data.display().to_string();
    let parsed = UserData::parse(&name, &user_data)
        .map_err(|errors| ConfigDriveError::InvalidUserData { path: request.user_data.clone(), errors })?;
    for warning in &parsed.warnings {
        eprintln!("keel-build: warning: {warning}");
    }
    let meta_data = match &request.meta_data {
        Some(path) => Some((path, read(path)?)),
        None => None,
    };
    let meta_data = meta_data.as_ref().map(|(path, text)| (path.as_path(), text.as_str()));
    let files = drive_files(&user_data, meta_data, request.layout)?;
    let epoch = reproducible::source_date_epoch()?;
    let staging = tempfile::tempdir().map_err(ConfigDriveError::StagingDir)?;
    for file in &files {
        staging::write_file(&staging.path().join(&file.path), &file.content, 0o644)?;
    }
    staging::set_tree_times(staging.path(), epoch)?;
    let make_error = |source| ConfigDriveError::Make { image: request.out.clone(), source };
    // A stale image would keep files mkfs/xorriso do not overwrite.
    let _ = std::fs::remove_file(&request.out);
    match request.format {
        DriveFormat::Vfat => make_vfat(&request.out, staging.path(), &files, request.layout, &user_data, epoch),
        DriveFormat::Iso9660 => make_iso(&request.out, staging.path(), request.layout, epoch),
    }
    .map_err(make_error)?;
    Ok(files)
}

/// The files of a drive: user-data as given, meta-data as given, converted to the layout's format, or made up
/// from the user-data's digest.
pub fn drive_files(
    user_data: &str,
    meta_data: Option<(&Path, &str)>,
    layout: DriveLayout,
) -> Result<Vec<DriveFile>, ConfigDriveError> {
    let parsed = match meta_data {
        Some((path, text)) => {
            let parse =
                if text.trim_start().starts_with('{') { meta_data::parse_openstack } else { meta_data::parse_nocloud };
            let parsed =
                parse(text).map_err(|source| ConfigDriveError::InvalidMetaData { path: path.to_owned(), source })?;
            Some((parsed, text.trim_start().starts_with('{'), text))
        }
        None => None,
    };
    let generated = || MetaData { instance_id: Some(short_digest(user_data)), hostname: None };
    let file = |path: &str, content: Vec<u8>| DriveFile { path: path.to_owned(), content };
    Ok(match layout {
        DriveLayout::NoCloud => {
            let meta = match parsed {
                Some((_, false, text)) => text.as_bytes().to_vec(),
                Some((meta, true, _)) => nocloud_text(&meta, user_data),
                None => nocloud_text(&generated(), user_data),
            };
            vec![file("user-data", user_data.as_bytes().to_vec()), file("meta-data", meta)]
        }
        DriveLayout::ConfigDrive2 => {
            let meta = match parsed {
                Some((_, true, text)) => text.as_bytes().to_vec(),
                Some((meta, false, _)) => openstack_json(&meta, user_data),
                None => openstack_json(&generated(), user_data),
            };
            vec![
                file("openstack/latest/user_data", user_data.as_bytes().to_vec()),
                file("openstack/latest/meta_data.json", meta),
            ]
        }
    })
}

fn nocloud_text(meta: &MetaData, user_data: &str) -> Vec<u8> {
    let instance_id = meta.instance_id.clone().unwrap_or_else(|| short_digest(user_data));
    let mut text = format!("instance-id: {instance_id}\n");
    if let Some(hostname) = &meta.hostname {
        text.push_str(&format!("local-hostname: {hostname}\n"));
    }
    text.into_bytes()
}

fn openstack_json(meta: &MetaData, user_data: &str) -> Vec<u8> {
    let mut object = serde_json::Map::new();
    let uuid = meta.instance_id.clone().unwrap_or_else(|| short_digest(user_data));
    object.insert("uuid".to_owned(), serde_json::Value::String(uuid));
    if let Some(hostname) = &meta.hostname {
        object.insert("hostname".to_owned(), serde_json::Value::String(hostname.clone()));
    }
    let mut text = serde_json::Value::Object(object).to_string();
    text.push('\n');
    text.into_bytes()
}

/// mkfs.fat, then the label with mlabel (mkfs.fat's `-n` stamps the label entry with the current time) and the
/// files with mmd/mcopy, all under SOURCE_DATE_EPOCH; the volume id comes from the user-data's digest.
fn make_vfat(
    image: &Path,
    staging: &Path,
    files: &[DriveFile],
    layout: DriveLayout,
    user_data: &str,
    epoch: u64,
) -> Result<(), CommandError> {
    let bytes: u64 = files.iter().map(|file| file.content.len() as u64).sum();
    let kib = MIN_VFAT_KIB.max(bytes / 1024 * 2 + 1024);
    Tool::new("mkfs.fat")
        .arg("-i")
        .arg(&short_digest(user_data)[..8])
        .arg("-C")
        .arg(image)
        .arg(kib.to_string())
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()?;
    Tool::new("mlabel")
        .arg("-i")
        .arg(image)
        .arg(format!("::{}", layout.label().to_ascii_uppercase()))
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()?;
    let mut dirs: Vec<String> = Vec::new();
    for file in files {
        let parts: Vec<&str> = file.path.split('/').collect();
        for depth in 1..parts.len() {
            let dir = parts[..depth].join("/");
            if !dirs.contains(&dir) {
                dirs.push(dir);
            }
        }
    }
    if !dirs.is_empty() {
        Tool::new("mmd")
            .arg("-i")
            .arg(image)
            .args(dirs.iter().map(|dir| format!("::{dir}")))
            .env("SOURCE_DATE_EPOCH", epoch)
            .run()?;
    }
    for file in files {
        Tool::new("mcopy")
            .args(["-m", "-i"])
            .arg(image)
            .arg(staging.join(&file.path))
            .arg(format!("::{}", file.path))
            .env("SOURCE_DATE_EPOCH", epoch)
            .run()?;
    }
    Ok(())
}

/// xorriso in mkisofs mode with Joliet and Rock Ridge; it takes every timestamp from SOURCE_DATE_EPOCH.
fn make_iso(image: &Path, staging: &Path, layout: DriveLayout, epoch: u64) -> Result<(), CommandError> {
    Tool::new("xorriso")
        .args(["-as", "mkisofs", "-quiet", "-V", layout.label(), "-J", "-R", "-o"])
        .arg(image)
        .arg(staging)
        .env("SOURCE_DATE_EPOCH", epoch)
        .run()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generates_meta_data_from_the_user_data_digest() {
        let files = drive_files("", None, DriveLayout::NoCloud).unwrap();
        assert_eq!(files[1].path, "meta-data");
        assert_eq!(
            String::from_utf8(files[1].content.clone()).unwrap(),
            format!("instance-id: {}\n", short_digest(""))
        );
        let files = drive_files("", None, DriveLayout::ConfigDrive2).unwrap();
        assert_eq!(files[1].content, format!("{{\"uuid\":\"{}\"}}\n", short_digest("")).into_bytes());
    }

    #[test]
    fn converts_meta_data_between_layouts() {
        let nocloud = Some((Path::new("meta-data"), "instance-id: iid-1\nlocal-hostname: web-1\n"));
        let files = drive_files("", nocloud, DriveLayout::ConfigDrive2).unwrap();
        assert_eq!(files[1].content, b"{\"hostname\":\"web-1\",\"uuid\":\"iid-1\"}\n");
        let json = Some((Path::new("meta_data.json"), r#"{"uuid": "u-1", "name": "db"}"#));
        let files = drive_files("", json, DriveLayout::NoCloud).unwrap();
        assert_eq!(files[1].content, b"instance-id: u-1\nlocal-hostname: db\n");
        let bad = Some((Path::new("meta-data"), "nonsense\n"));
        assert!(drive_files("", bad, DriveLayout::NoCloud).unwrap_err().is_usage());
    }
}
