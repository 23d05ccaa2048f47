//! Reads the label of a FAT or ISO 9660 filesystem straight from its first sectors, the way blkid does, so PID 1
//! can find a config drive without mounting every device.

use std::fs::File;
use std::io::Read;
use std::path::Path;

/// A filesystem a config drive can have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabeledFs {
    Vfat,
    Iso9660,
}

impl LabeledFs {
    /// The name `mount(2)` knows it by.
    pub fn mount_type(self) -> &'static str {
        match self {
            LabeledFs::Vfat => "vfat",
            LabeledFs::Iso9660 => "iso9660",
        }
    }
}

/// ISO 9660's primary volume descriptor sits in sector 16 (of 2048 bytes); the label is 32 bytes at offset 40.
const ISO_DESCRIPTOR: usize = 16 * 2048;
/// Enough of the device to hold both the FAT boot sector and the ISO primary volume descriptor.
const PROBE_LEN: usize = ISO_DESCRIPTOR + 2048;

/// The filesystem type and label of a block device, if it is FAT or ISO 9660 with a label.
pub fn probe(device: &Path) -> Option<(LabeledFs, String)> {
    let mut start = vec![0u8; PROBE_LEN];
    let mut file = File::open(device).ok()?;
    let mut filled = 0;
    while filled < start.len() {
        match file.read(&mut start[filled..]) {
            Ok(0) => break,
            Ok(read) => filled += read,
            Err(_) => return None,
        }
    }
    start.truncate(filled);
    parse(&start)
}

/// Finds the label in the first sectors of a device.
pub fn parse(start: &[u8]) -> Option<(LabeledFs, String)> {
    if let Some(descriptor) = start.get(ISO_DESCRIPTOR..ISO_DESCRIPTOR + 72) {
        if descriptor[0] == 1 && &descriptor[1..6] == b"CD001" {
            return label(&descriptor[40..72]).map(|label| (LabeledFs::Iso9660, label));
        }
    }
    let boot = start.get(..512)?;
    if boot[510..512] != [0x55, 0xaa] {
        return None;
    }
    // FAT32 keeps its extended boot record at 0x40, FAT12/16 at 0x24; signature 0x29 means the label is there.
    let fat32 = &boot[0x52..0x5a] == b"FAT32   ";
    let (signature, label_at) = if fat32 { (0x42, 0x47) } else { (0x26, 0x2b) };
    if boot[signature] != 0x29 {
        return None;
    }
    label(&boot[label_at..label_at + 11]).filter(|label| label != "NO NAME").map(|label| (LabeledFs::Vfat, label))
}

fn label(bytes: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(bytes).trim_end_matches([' ', '\0']).to_owned();
    (!text.is_empty()).then_some(text)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fat_boot_sector(fat32: bool, label: &[u8; 11]) -> Vec<u8> {
        let mut sector = vec![0u8; 512];
        sector[510] = 0x55;
        sector[511] = 0xaa;
        if fat32 {
            sector[0x52..0x5a].copy_from_slice(b"FAT32   ");
            sector[0x42] = 0x29;
            sector[0x47..0x52].copy_from_slice(label);
        } else {
            sector[0x36..0x3e].copy_from_slice(b"FAT12   ");
            sector[0x26] = 0x29;
            sector[0x2b..0x36].copy_from_slice(label);
        }
        sector
    }

    #[test]
    fn reads_fat12_and_fat32_labels() {
        assert_eq!(parse(&fat_boot_sector(false, b"CIDATA     ")), Some((LabeledFs::Vfat, "CIDATA".to_owned())));
        assert_eq!(parse(&fat_boot_sector(true, b"CONFIG-2   ")), Some((LabeledFs::Vfat, "CONFIG-2".to_owned())));
        assert_eq!(parse(&fat_boot_sector(false, b"NO NAME    ")), None);
    }

    #[test]
    fn reads_iso9660_volume_ids() {
        let mut image = vec![0u8; PROBE_LEN];
        image[ISO_DESCRIPTOR] = 1;
        image[ISO_DESCRIPTOR + 1..ISO_DESCRIPTOR + 6].copy_from_slice(b"CD001");
        image[ISO_DESCRIPTOR + 40..ISO_DESCRIPTOR + 72].copy_from_slice(b"cidata                          ");
        assert_eq!(parse(&image), Some((LabeledFs::Iso9660, "cidata".to_owned())));
    }

    #[test]
    fn other_data_has_no_label() {
        assert_eq!(parse(&[0u8; 512]), None);
        assert_eq!(parse(&[]), None);
    }
}
