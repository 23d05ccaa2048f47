//! Reads and checks a recipe (`os-image/keel.toml`): the OS version, kernel, partition sizes and extra files.

use std::path::{Component, Path, PathBuf};

use serde::Deserialize;

#[derive(Debug, thiserror::Error)]
pub enum RecipeError {
    #[error("cannot read recipe {path}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("recipe {path} is not valid")]
    Parse {
        path: PathBuf,
        #[source]
        source: Box<toml::de::Error>,
    },
    #[error("recipe {path}: `{key}` {reason}")]
    Invalid { path: PathBuf, key: String, reason: String },
}

/// The recipe as written in TOML.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Recipe {
    /// The OS version: in boot entry names and `/etc/os-release`.
    pub version: String,
    /// Which update bundles the OS installs: a bundle's `compatible` must equal the running OS's. Default
    /// [`keel_os_image::bundle::DEFAULT_COMPATIBLE`].
    #[serde(default)]
    pub compatible: Option<String>,
    pub kernel: KernelSpec,
    pub partitions: PartitionSizes,
    #[serde(default)]
    pub files: Vec<FileSpec>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KernelSpec {
    /// The Debian kernel package as Debian users name it, e.g. `linux-image-amd64` or `linux-image-cloud-amd64`;
    /// the builder resolves it to the current ABI package and pins that in the lock file (see `kernel_package`).
    /// An ABI package (`linux-image-6.1.0-57-amd64`) works too, but cannot move on when it leaves the mirror.
    pub package: String,
    /// Kernel command line; the builder appends `keel.slot=<slot>`.
    pub cmdline: String,
    /// Modules to load in the initramfs; the builder adds their dependencies.
    pub modules: Vec<String>,
    /// Modules PID 1 loads from the root filesystem after `ready` (network, containers); the builder adds their
    /// dependencies that `modules` does not already bring.
    #[serde(default)]
    pub late_modules: Vec<String>,
    /// Ship the modules without their signatures: faster loads, a tainted kernel, no Secure Boot lockdown
    /// (see `module_signature`).
    #[serde(default)]
    pub strip_module_signatures: bool,
}

/// Partition sizes in MiB.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartitionSizes {
    pub esp: u64,
    /// Size of each of the two root slots.
    pub root: u64,
    pub data: u64,
}

/// An extra file copied into the root tree.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileSpec {
    /// Relative to the recipe's directory.
    pub source: PathBuf,
    /// Absolute path in the root tree.
    pub path: String,
    pub mode: u32,
}

/// A checked recipe with its sources resolved against the recipe's directory.
#[derive(Debug, Clone)]
pub struct LoadedRecipe {
    pub path: PathBuf,
    pub recipe: Recipe,
    /// `files[i].source`, resolved.
    pub file_sources: Vec<PathBuf>,
}

/// Paths in the root tree that the builder writes itself and a recipe may not replace.
pub const GENERATED_ROOT_PATHS: [&str; 5] =
    [keel_os_image::initramfs::ROOT_INIT, "/etc/os-release", "/etc/hostname", "/etc/hosts", "/etc/resolv.conf"];

impl LoadedRecipe {
    pub fn load(path: &Path) -> Result<Self, RecipeError> {
        let text = std::fs::read_to_string(path).map_err(|source| RecipeError::Read { path: path.into(), source })?;
        let recipe: Recipe = toml::from_str(&text)
            .map_err(|source| RecipeError::Parse { path: path.into(), source: Box::new(source) })?;
        let dir = path.parent().unwrap_or(Path::new("."));
        check(path, &recipe)?;
        let file_sources = recipe.files.iter().map(|file| dir.join(&file.source)).collect();
        Ok(LoadedRecipe { path: path.to_owned(), recipe, file_sources })
    }

    /// The `compatible` string: the recipe's, or [`keel_os_image::bundle::DEFAULT_COMPATIBLE`].
    pub fn compatible(&self) -> &str {
        self.recipe.compatible.as_deref().unwrap_or(keel_os_image::bundle::DEFAULT_COMPATIBLE)
    }

    /// The kernel command line of a slot's boot entry: the recipe's line plus the slot parameter.
    pub fn cmdline(&self, slot: keel_os_image::Slot) -> String {
        format!("{} {}={slot}", self.recipe.kernel.cmdline.trim(), keel_os_image::slot::SLOT_PARAMETER)
    }
}

fn check(path: &Path, recipe: &Recipe) -> Result<(), RecipeError> {
    let invalid = |key: &str, reason: &str| RecipeError::Invalid {
        path: path.to_owned(),
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    if !keel_os_image::version::is_valid(&recipe.version) {
        // `+` would read as systemd-boot's boot counter in the entry name; `/` and spaces break paths.
        return Err(invalid("version", "must be 1 to 64 letters, digits, '.', '_', '~' and '-'"));
    }
    if let Some(compatible) = &recipe.compatible {
        if !keel_os_image::bundle::manifest::is_valid_compatible(compatible) {
            return Err(invalid("compatible", "must be 1 to 64 letters, digits, '.', '_' and '-'"));
        }
    }
    if !crate::kernel_lock::is_package_name(&recipe.kernel.package) {
        return Err(invalid("kernel.package", "must name a Debian kernel package, e.g. \"linux-image-amd64\""));
    }
    if recipe.kernel.cmdline.contains(&format!("{}=", keel_os_image::slot::SLOT_PARAMETER)) {
        return Err(invalid("kernel.cmdline", "must not set keel.slot: the builder appends it per slot"));
    }
    if recipe.kernel.cmdline.contains('\n') {
        return Err(invalid("kernel.cmdline", "must be one line"));
    }
    if let Some(index) = recipe.kernel.modules.iter().position(|name| name.is_empty() || name.contains(['/', ' '])) {
        return Err(invalid(&format!("kernel.modules[{index}]"), "must be a module name like \"virtio_blk\""));
    }
    let sizes = recipe.partitions;
    for (key, size) in [("partitions.esp", sizes.esp), ("partitions.root", sizes.root), ("partitions.data", sizes.data)]
    {
        if size == 0 || size > 1 << 20 {
            return Err(invalid(key, "must be a size in MiB between 1 and 1048576"));
        }
    }
    if sizes.esp < crate::esp::MIN_MIB {
        let why = format!(
            "must be at least {} MiB: FAT32 needs {} clusters",
            crate::esp::MIN_MIB,
            crate::esp::FAT32_MIN_CLUSTERS
        );
        return Err(invalid("partitions.esp", &why));
    }
    for (index, file) in recipe.files.iter().enumerate() {
        let key = |field: &str| format!("files[{index}].{field}");
        if !is_clean_absolute(&file.path) {
            return Err(invalid(&key("path"), "must be an absolute path without '.', '..' or '//'"));
        }
        if GENERATED_ROOT_PATHS.contains(&file.path.as_str()) {
            return Err(invalid(&key("path"), "is written by the builder"));
        }
        if file.mode > 0o7777 {
            return Err(invalid(&key("mode"), "must be permission bits, at most 0o7777"));
        }
        if file.source.is_absolute() || file.source.components().any(|part| part == Component::ParentDir) {
            return Err(invalid(&key("source"), "must be relative to the recipe's directory, without '..'"));
        }
    }
    Ok(())
}

fn is_clean_absolute(path: &str) -> bool {
    match path.strip_prefix('/') {
        Some(rest) => !rest.is_empty() && rest.split('/').all(|part| !matches!(part, "" | "." | "..")),
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = r#"
version = "0.1.0"
[kernel]
package = "linux-image-amd64"
cmdline = "console=ttyS0"
modules = ["erofs"]
[partitions]
esp = 64
root = 64
data = 128
[[files]]
source = "files/etc/passwd"
path = "/etc/passwd"
mode = 0o644
"#;

    fn load(text: &str) -> Result<LoadedRecipe, RecipeError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("keel.toml");
        std::fs::write(&path, text).unwrap();
        LoadedRecipe::load(&path)
    }

    #[test]
    fn loads_a_good_recipe() {
        let recipe = load(GOOD).unwrap();
        assert_eq!(recipe.recipe.files[0].mode, 0o644);
        assert!(recipe.file_sources[0].ends_with("files/etc/passwd"));
        assert_eq!(recipe.cmdline(keel_os_image::Slot::A), "console=ttyS0 keel.slot=a");
        assert_eq!(recipe.compatible(), "keel-x86_64");
        let named =
            load(&GOOD.replace("version = \"0.1.0\"", "version = \"0.1.0\"\ncompatible = \"keel-x86_64-qemu\""));
        assert_eq!(named.unwrap().compatible(), "keel-x86_64-qemu");
    }

    #[test]
    fn unknown_keys_are_named() {
        let error = load(&GOOD.replace("esp = 64", "esp = 64\nswap = 1")).unwrap_err();
        let message = format!("{error}: {}", std::error::Error::source(&error).unwrap());
        assert!(message.contains("keel.toml") && message.contains("swap"), "{message}");
    }

    #[test]
    fn bad_values_are_named() {
        let cases = [
            (GOOD.replace("\"0.1.0\"", "\"1+2\""), "version"),
            (GOOD.replace("\"0.1.0\"", "\"0.1.0\"\ncompatible = \"keel x86\""), "compatible"),
            (GOOD.replace("console=ttyS0", "keel.slot=b"), "kernel.cmdline"),
            (GOOD.replace("path = \"/etc/passwd\"", "path = \"etc/../x\""), "files[0].path"),
            (GOOD.replace("path = \"/etc/passwd\"", "path = \"/etc/hostname\""), "files[0].path"),
            (GOOD.replace("mode = 0o644", "mode = 0o10644"), "files[0].mode"),
            (GOOD.replace("root = 64", "root = 0"), "partitions.root"),
            (GOOD.replace("esp = 64", "esp = 32"), "partitions.esp"),
            (GOOD.replace("linux-image-amd64", "Linux Image"), "kernel.package"),
        ];
        for (text, key) in cases {
            match load(&text) {
                Err(RecipeError::Invalid { key: found, .. }) => assert_eq!(found, key),
                other => panic!("{key}: {other:?}"),
            }
        }
    }
}
