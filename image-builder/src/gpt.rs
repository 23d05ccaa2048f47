//! Plans the keel GPT layout (ESP, two root slots, data) and writes the partition table with sfdisk onto a plain
//! file.

use std::path::{Path, PathBuf};

use keel_os_image::layout::{self, DATA_PARTITION, DATA_TYPE_GUID, ESP_PARTITION, ESP_TYPE_GUID, ROOT_TYPE_GUID};
use keel_os_image::Slot;

use crate::command::{CommandError, Tool};
use crate::recipe::PartitionSizes;
use crate::reproducible::DerivedIds;

pub const SECTOR: u64 = 512;
/// First usable sector: 1 MiB, the usual alignment.
pub const FIRST_LBA: u64 = 2048;
/// Room after the last partition for the backup GPT (33 sectors), kept at 1 MiB for alignment.
const TAIL_SECTORS: u64 = 2048;
const SECTORS_PER_MIB: u64 = (1 << 20) / SECTOR;

#[derive(Debug, thiserror::Error)]
pub enum GptError {
    #[error("writing the partition table of {disk} failed")]
    Sfdisk {
        disk: PathBuf,
        #[source]
        source: CommandError,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPlan {
    pub name: String,
    pub type_guid: &'static str,
    pub uuid: String,
    pub start_lba: u64,
    pub sectors: u64,
}

impl PartitionPlan {
    pub fn offset(&self) -> u64 {
        self.start_lba * SECTOR
    }

    pub fn size(&self) -> u64 {
        self.sectors * SECTOR
    }
}

#[derive(Debug, Clone)]
pub struct DiskPlan {
    pub label_id: String,
    pub partitions: Vec<PartitionPlan>,
    pub size: u64,
}

impl DiskPlan {
    pub fn partition(&self, name: &str) -> Option<&PartitionPlan> {
        self.partitions.iter().find(|partition| partition.name == name)
    }
}

/// The layout for `sizes`: `esp`, `keel-root-a`, `keel-root-b`, `keel-data`, back to back from sector 2048.
pub fn plan(sizes: &PartitionSizes, ids: &DerivedIds) -> DiskPlan {
    let wanted = [
        (ESP_PARTITION.to_owned(), ESP_TYPE_GUID, sizes.esp),
        (layout::root_partition_name(Slot::A), ROOT_TYPE_GUID, sizes.root),
        (layout::root_partition_name(Slot::B), ROOT_TYPE_GUID, sizes.root),
        (DATA_PARTITION.to_owned(), DATA_TYPE_GUID, sizes.data),
    ];
    let mut start_lba = FIRST_LBA;
    let mut partitions = Vec::new();
    for (name, type_guid, mib) in wanted {
        let sectors = mib * SECTORS_PER_MIB;
        let uuid = ids.uuid(&format!("partition:{name}"));
        partitions.push(PartitionPlan { name, type_guid, uuid, start_lba, sectors });
        start_lba += sectors;
    }
    DiskPlan { label_id: ids.uuid("disk"), partitions, size: (start_lba + TAIL_SECTORS) * SECTOR }
}

/// The sfdisk script for `plan`.
pub fn sfdisk_script(plan: &DiskPlan) -> String {
    let mut script = format!("label: gpt\nlabel-id: {}\nunit: sectors\nfirst-lba: {FIRST_LBA}\n", plan.label_id);
    for partition in &plan.partitions {
        script.push_str(&format!(
            "start={}, size={}, type={}, uuid={}, name=\"{}\"\n",
            partition.start_lba, partition.sectors, partition.type_guid, partition.uuid, partition.name
        ));
    }
    script
}

/// Writes the partition table onto `disk`, a file already `plan.size` bytes long.
pub fn write_table(disk: &Path, plan: &DiskPlan) -> Result<(), GptError> {
    Tool::new("sfdisk")
        .args(["--quiet", "--no-reread", "--no-tell-kernel"])
        .arg(disk)
        .stdin(sfdisk_script(plan))
        .run()
        .map_err(|source| GptError::Sfdisk { disk: disk.into(), source })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_follow_each_other() {
        let plan = plan(&PartitionSizes { esp: 64, root: 64, data: 128 }, &DerivedIds::new("0.1.0"));
        let names: Vec<&str> = plan.partitions.iter().map(|partition| partition.name.as_str()).collect();
        assert_eq!(names, ["esp", "keel-root-a", "keel-root-b", "keel-data"]);
        assert_eq!(plan.partitions[1].start_lba, 2048 + 64 * 2048);
        assert_eq!(plan.partition("keel-data").unwrap().size(), 128 << 20);
        assert_eq!(plan.size, (1 + 64 + 64 + 64 + 128 + 1) << 20);
        assert_ne!(plan.partitions[1].uuid, plan.partitions[2].uuid);
    }
}
