//! Reads systemd-boot's loader variables from efivarfs: the one reader of EFI variables in PID 1.
//!
//! systemd-boot (the Boot Loader Interface) leaves what it did in string variables of its vendor GUID: which ESP it
//! was started from (`LoaderDevicePartUUID`), which entry it booted (`LoaderEntrySelected`) and, for a counted
//! entry, the name it renamed the entry file to (`LoaderBootCountPath`).

use std::fs;
use std::path::Path;

use keel_logs::error_chain;
use nix::mount::{umount, MsFlags};

use crate::mounts::{is_mount_point, Mount};

const EFI_DIR: &str = "/sys/firmware/efi";
const EFIVARS: &str = "/sys/firmware/efi/efivars";
/// systemd's loader interface vendor GUID, the suffix of every variable name it sets.
const LOADER_VENDOR: &str = "4a67b082-0a4c-41cf-b6c7-440b29bb8c4f";
/// The partition GUID of the ESP the loader was started from.
pub const LOADER_DEVICE_PART_UUID: &str = "LoaderDevicePartUUID";
/// The id of the boot entry the loader booted.
pub const LOADER_ENTRY_SELECTED: &str = "LoaderEntrySelected";
/// The path, on the ESP, of a counted entry after the loader renamed it for this attempt.
pub const LOADER_BOOT_COUNT_PATH: &str = "LoaderBootCountPath";
/// 4 bytes of attributes and a UTF-16 string: a 255-character file name with its NUL is 516 bytes. Anything
/// larger is none of the loader's strings.
const MAX_VARIABLE_LEN: u64 = 520;

/// The loader's string variables `names`, each `None` if unset or not a string; `None` for all without UEFI (a
/// direct kernel boot). Mounts efivarfs for the read if nothing has, and unmounts it again.
pub fn read_loader_strings<const N: usize>(names: [&str; N]) -> Option<[Option<String>; N]> {
    if !Path::new(EFI_DIR).exists() {
        return None;
    }
    let mounted_here = !is_mount_point(Path::new(EFIVARS));
    if mounted_here {
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC | MsFlags::MS_RDONLY;
        let efivarfs = Mount { source: "efivarfs", target: EFIVARS, fstype: "efivarfs", flags, data: None };
        if let Err(error) = efivarfs.ensure() {
            log::warn!("{}", error_chain(&error));
            return None;
        }
    }
    let values = names.map(|name| read_string(&Path::new(EFIVARS).join(format!("{name}-{LOADER_VENDOR}"))));
    if mounted_here {
        if let Err(error) = umount(EFIVARS) {
            log::warn!("cannot unmount {EFIVARS}: {}", error_chain(&error));
        }
    }
    Some(values)
}

fn read_string(path: &Path) -> Option<String> {
    let length = fs::metadata(path).ok()?.len();
    if length > MAX_VARIABLE_LEN {
        log::warn!("{} holds {length} bytes, more than a loader string; ignored", path.display());
        return None;
    }
    let text = parse_string_variable(&fs::read(path).ok()?);
    if text.is_none() {
        log::warn!("{} does not hold a UTF-16 string; ignored", path.display());
    }
    text
}

/// efivarfs gives 4 bytes of attributes, then the value: here a UTF-16LE string, NUL-terminated.
pub fn parse_string_variable(bytes: &[u8]) -> Option<String> {
    let value = bytes.get(4..)?;
    if value.len() % 2 != 0 {
        return None;
    }
    let units: Vec<u16> = value.chunks_exact(2).map(|pair| u16::from_le_bytes([pair[0], pair[1]])).collect();
    let text = String::from_utf16(&units).ok()?;
    Some(text.trim_end_matches('\0').to_owned())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A string variable as efivarfs shows it: attributes, UTF-16LE, NUL.
    pub(crate) fn variable(text: &str) -> Vec<u8> {
        let mut bytes = vec![0x06, 0, 0, 0];
        bytes.extend(text.encode_utf16().chain([0]).flat_map(u16::to_le_bytes));
        bytes
    }

    #[test]
    fn reads_a_loader_string() {
        let entry = parse_string_variable(&variable("keel-0.2.0-b+3.conf"));
        assert_eq!(entry.as_deref(), Some("keel-0.2.0-b+3.conf"));
        let path = parse_string_variable(&variable("\\loader\\entries\\keel-0.2.0-b+2-1.conf"));
        assert_eq!(path.as_deref(), Some("\\loader\\entries\\keel-0.2.0-b+2-1.conf"));
        assert_eq!(parse_string_variable(&variable("")).as_deref(), Some(""));
    }

    #[test]
    fn refuses_what_is_not_a_string() {
        assert_eq!(parse_string_variable(&[6, 0]), None);
        // Half a UTF-16 unit.
        assert_eq!(parse_string_variable(&[6, 0, 0, 0, b'k', 0, b'e']), None);
        // A lone surrogate.
        assert_eq!(parse_string_variable(&[6, 0, 0, 0, 0x00, 0xd8, 0, 0]), None);
    }
}
