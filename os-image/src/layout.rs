//! Partition names, partition types and the paths on the EFI system partition of a keel disk.

use crate::Slot;

/// GPT name of the EFI system partition.
pub const ESP_PARTITION: &str = "esp";
/// GPT name of the data partition, mounted at `/var`.
pub const DATA_PARTITION: &str = "keel-data";
/// Where PID 1 mounts the data partition.
pub const DATA_MOUNT_POINT: &str = "/var";

/// Where PID 1 generates the files of `/etc` that change at run time; the read-only root links them there.
pub const GENERATED_ETC: &str = "/run/keel/etc";
/// The files of `/etc` that are links into [`GENERATED_ETC`].
pub const GENERATED_ETC_FILES: [&str; 3] = ["hostname", "hosts", "resolv.conf"];

/// GPT partition type of an EFI system partition.
pub const ESP_TYPE_GUID: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
/// GPT partition type "Linux root (x86-64)" from the Discoverable Partitions Specification.
pub const ROOT_TYPE_GUID: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
/// GPT partition type "Linux variable data" (`/var`) from the Discoverable Partitions Specification.
pub const DATA_TYPE_GUID: &str = "4D21B016-B534-45C2-A9FB-5C16E091FD2D";

/// Path, on the ESP, of the boot loader the firmware starts by default.
pub const ESP_BOOT_LOADER: &str = "EFI/BOOT/BOOTX64.EFI";
/// Path, on the ESP, of systemd-boot's configuration.
pub const ESP_LOADER_CONF: &str = "loader/loader.conf";
/// Directory, on the ESP, of the Type #1 boot entries.
pub const ESP_ENTRIES_DIR: &str = "loader/entries";

/// GPT name of a root slot's partition, e.g. `keel-root-a`.
pub fn root_partition_name(slot: Slot) -> String {
    format!("keel-root-{slot}")
}

/// Directory, on the ESP, that holds a slot's kernel and initramfs.
pub fn esp_slot_dir(slot: Slot) -> String {
    format!("keel/{slot}")
}

/// Path, on the ESP, of a slot's kernel.
pub fn esp_kernel_path(slot: Slot) -> String {
    format!("{}/vmlinuz", esp_slot_dir(slot))
}

/// Path, on the ESP, of a slot's initramfs.
pub fn esp_initramfs_path(slot: Slot) -> String {
    format!("{}/initrd.img", esp_slot_dir(slot))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slot_paths() {
        assert_eq!(root_partition_name(Slot::A), "keel-root-a");
        assert_eq!(esp_kernel_path(Slot::B), "keel/b/vmlinuz");
        assert_eq!(esp_initramfs_path(Slot::A), "keel/a/initrd.img");
    }
}
