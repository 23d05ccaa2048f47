//! The install, step by step: verify the bundle's head, take the kernel and initramfs into memory while their
//! hashes are checked, remove the inactive slot's entries, stream the root image into `keel-root-<other>`, write
//! the kernel and initramfs to `/keel/<other>/` on the ESP (temporary name, sync, rename), and only then the entry
//! `keel-<version>-<other>+3.conf`. The running slot and its entry are never written.
//!
//! A power cut or an error at any step leaves no entry for the inactive slot until the last one, so the machine
//! boots the running version; the bundle's head (signature, `compatible`, version) and the kernel and initramfs
//! are checked before anything is written at all.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use keel_api::update::InstallState;
use keel_logs::error_chain;
use keel_os_image::boot_entry::{entry_file_text, options_for_slot, BootEntryName};
use keel_os_image::bundle::{BundleError, BundleReader, PayloadName, TrustPolicy};
use keel_os_image::layout::{esp_initramfs_path, esp_kernel_path, root_partition_name, ESP_ENTRIES_DIR};
use keel_os_image::Slot;

use super::esp::{self, EspWriteError, MountedEsp};
use super::halt::{halt_if_asked, HaltPoint};
use super::progress::Progress;
use super::record::{self, InstallRecord, LAST_INSTALL};
use super::running::{RunningHost, RunningHostError};
use super::source::{SourceError, UpdateSource};
use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::boot_disk;

/// Boot attempts a new entry gets before systemd-boot falls back to the other slot.
pub const TRIES: u32 = 3;
/// The kernel and the initramfs are held in memory until every hash before the root matched; the ESP they go to
/// is 64 MiB.
const MAX_BOOT_FILE: u64 = 64 << 20;
/// The partition is on the boot disk, which is long there.
const PARTITION_WAIT: Duration = Duration::from_secs(2);
/// Bytes copied at a time.
const CHUNK: usize = 1 << 20;

/// Set while an install runs: one at a time.
static INSTALLING: AtomicBool = AtomicBool::new(false);

/// What an install may do beyond the defaults.
#[derive(Debug, Clone, Copy, Default)]
pub struct InstallPolicy {
    /// `[update] allow_downgrade`: an older version may replace the running one.
    pub allow_downgrade: bool,
}

/// A finished install.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Installed {
    pub version: String,
    pub slot: Slot,
    /// The new entry's file name, with its counter.
    pub entry: String,
}

/// Why an install was refused or stopped; each names what and where.
#[derive(Debug, thiserror::Error)]
pub enum InstallError {
    #[error("an install is running already")]
    Busy,
    #[error("cannot tell what the running host is")]
    RunningHost(#[source] RunningHostError),
    #[error("cannot open the update source")]
    Source(#[source] SourceError),
    #[error("the bundle from {source_text} is refused")]
    Refused {
        source_text: String,
        #[source]
        source: BundleError,
    },
    #[error("the bundle from {source_text} is {announced} bytes long, its signed manifest says {expected}: refused before writing")]
    Length { source_text: String, announced: u64, expected: u64 },
    #[error("the bundle's {name} is {size} bytes, more than the {MAX_BOOT_FILE} an ESP file may take")]
    BootFileTooLarge { name: PayloadName, size: u64 },
    #[error("the bundle's root image is {size} bytes, more than the {capacity} of {}", device.display())]
    RootTooLarge { size: u64, capacity: u64, device: PathBuf },
    #[error("the bundle's payload {name} is refused")]
    Payload {
        name: PayloadName,
        #[source]
        source: BundleError,
    },
    #[error("cannot tell the boot disk: the root filesystem is not on a partition")]
    NoBootDisk,
    #[error("cannot find the inactive slot's partition")]
    Partition(#[source] PartitionError),
    #[error("cannot write the root image to {}", device.display())]
    WriteRoot {
        device: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("cannot write the ESP")]
    Esp(#[source] EspWriteError),
}

/// Opens `source`, installs it into the inactive slot and records the outcome in [`LAST_INSTALL`]; progress in
/// `progress`. The whole install on the caller's thread.
// The channel poller's entry point; the API uses `open` and `write` to answer in between.
#[allow(dead_code)]
pub fn install(source: &UpdateSource, policy: &InstallPolicy, progress: &Progress) -> Result<Installed, InstallError> {
    match open(source, policy) {
        Ok(bundle) => bundle.write(progress),
        Err(error) => {
            if !matches!(error, InstallError::Busy) {
                record_outcome(&source.to_string(), None, None, &Err(&error));
            }
            Err(error)
        }
    }
}

/// A bundle whose head verified against the running host, ready to be written; holds the one-install lock.
pub struct OpenedBundle {
    reader: BundleReader<Box<dyn Read + Send>>,
    host: RunningHost,
    source_text: String,
    _lock: InstallLock,
}

/// Opens `source` and verifies the bundle's head (signature, `compatible`, version order) and announced length.
/// Nothing is written yet.
pub fn open(source: &UpdateSource, policy: &InstallPolicy) -> Result<OpenedBundle, InstallError> {
    let lock = InstallLock::take().ok_or(InstallError::Busy)?;
    let host = RunningHost::read().map_err(InstallError::RunningHost)?;
    let source_text = source.to_string();
    let opened = source.open().map_err(InstallError::Source)?;
    let trust = TrustPolicy {
        keys: &host.keys,
        compatible: &host.compatible,
        running_version: &host.version,
        allow_downgrade: policy.allow_downgrade,
    };
    let reader = BundleReader::open(opened.reader, &trust)
        .map_err(|source| InstallError::Refused { source_text: source_text.clone(), source })?;
    if let Some(announced) = opened.length {
        if announced != reader.bundle_len() {
            return Err(InstallError::Length { source_text, announced, expected: reader.bundle_len() });
        }
    }
    Ok(OpenedBundle { reader, host, source_text, _lock: lock })
}

impl OpenedBundle {
    /// The bundle's version, from its verified manifest.
    pub fn version(&self) -> &str {
        &self.reader.manifest().version
    }

    /// Writes the inactive slot and its entry; records the outcome in [`LAST_INSTALL`].
    pub fn write(self, progress: &Progress) -> Result<Installed, InstallError> {
        let source_text = self.source_text.clone();
        let version = self.version().to_owned();
        let slot = self.host.slot.other();
        progress.start(&version, self.reader.bundle_len());
        let result = self.write_steps(progress);
        match &result {
            Ok(installed) => {
                progress.set_state(InstallState::Installed);
                log::info!(
                    "update: keel {} installed in slot {}: entry {}; it boots next, as a trial",
                    installed.version,
                    installed.slot,
                    installed.entry
                );
            }
            Err(error) => {
                let chain = error_chain(error);
                log::error!("update: installing keel {version} into slot {slot} failed: {chain}");
                progress.fail(chain);
            }
        }
        record_outcome(&source_text, Some(&version), Some(slot), &result.as_ref());
        result
    }

    fn write_steps(mut self, progress: &Progress) -> Result<Installed, InstallError> {
        let other = self.host.slot.other();
        let version = self.version().to_owned();
        progress.advance(self.reader.offset());
        // 1. The kernel and initramfs into memory, each verified, before anything on the disk changes.
        let kernel = read_boot_file(&mut self.reader, progress)?;
        let initramfs = read_boot_file(&mut self.reader, progress)?;

        // 2. Where the root goes, and whether it fits.
        let disk = boot_disk::root_filesystem_disk().ok_or(InstallError::NoBootDisk)?;
        let device = wait_for_partition(&root_partition_name(other), Scope::Disk(&disk), PARTITION_WAIT)
            .map_err(InstallError::Partition)?;
        let mut partition = OpenOptions::new()
            .write(true)
            .open(&device)
            .map_err(|source| InstallError::WriteRoot { device: device.clone(), source })?;
        let capacity = partition
            .seek(SeekFrom::End(0))
            .and_then(|end| partition.seek(SeekFrom::Start(0)).map(|_| end))
            .map_err(|source| InstallError::WriteRoot { device: device.clone(), source })?;
        let root_size = self.reader.manifest().payload(PayloadName::Root).map_or(0, |entry| entry.size);
        if root_size > capacity {
            return Err(InstallError::RootTooLarge { size: root_size, capacity, device });
        }

        // 3. No entry of the inactive slot from here on until the new one: nothing boots a half-written slot.
        let esp = MountedEsp::mount(&disk).map_err(InstallError::Esp)?;
        let options = esp::running_options(esp.root(), self.host.slot).map_err(InstallError::Esp)?;
        for removed in esp::remove_slot_entries(esp.root(), other).map_err(InstallError::Esp)? {
            log::info!("update: removed the entry {removed} of slot {other}");
        }

        // 4. The root image, hashed while it streams into the partition.
        write_root(&mut self.reader, &mut partition, &device, progress)?;
        self.reader.finish().map_err(|source| InstallError::Payload { name: PayloadName::Root, source })?;
        progress.set_state(InstallState::Writing);

        // 5. Kernel and initramfs, each under a temporary name, synced, renamed.
        esp::write_file(esp.root(), &esp_kernel_path(other), &kernel).map_err(InstallError::Esp)?;
        halt_if_asked(HaltPoint::AfterKernel);
        esp::write_file(esp.root(), &esp_initramfs_path(other), &initramfs).map_err(InstallError::Esp)?;
        halt_if_asked(HaltPoint::BeforeEntry);

        // 6. The entry, last: from here on the next boot is a trial of the new version.
        let entry = BootEntryName::new(&version, other).with_tries(TRIES);
        let text = entry_file_text(&version, other, &options_for_slot(&options, other));
        esp::write_file(esp.root(), &format!("{ESP_ENTRIES_DIR}/{entry}"), text.as_bytes())
            .map_err(InstallError::Esp)?;
        drop(esp);
        Ok(Installed { version, slot: other, entry: entry.to_string() })
    }
}

/// The next payload (kernel or initramfs) whole, verified.
fn read_boot_file(
    reader: &mut BundleReader<Box<dyn Read + Send>>,
    progress: &Progress,
) -> Result<Vec<u8>, InstallError> {
    let start = reader.offset();
    let Some(mut payload) =
        reader.next_payload().map_err(|source| InstallError::Payload { name: PayloadName::Kernel, source })?
    else {
        return Ok(Vec::new());
    };
    let name = payload.entry().name;
    let size = payload.entry().size;
    if size > MAX_BOOT_FILE {
        return Err(InstallError::BootFileTooLarge { name, size });
    }
    // At most MAX_BOOT_FILE, checked just above.
    let mut bytes = Vec::with_capacity(size as usize);
    let mut chunk = vec![0u8; CHUNK];
    loop {
        let count = payload.read(&mut chunk).map_err(|error| payload_error(name, error))?;
        if count == 0 {
            break;
        }
        bytes.extend_from_slice(&chunk[..count]);
        progress.advance(start + bytes.len() as u64);
    }
    Ok(bytes)
}

/// Streams the root payload into `partition` from its start, then syncs the device.
fn write_root(
    reader: &mut BundleReader<Box<dyn Read + Send>>,
    partition: &mut File,
    device: &Path,
    progress: &Progress,
) -> Result<(), InstallError> {
    let start = reader.offset();
    let Some(mut payload) =
        reader.next_payload().map_err(|source| InstallError::Payload { name: PayloadName::Root, source })?
    else {
        return Ok(());
    };
    let name = payload.entry().name;
    let write_error = |source| InstallError::WriteRoot { device: device.to_path_buf(), source };
    let mut chunk = vec![0u8; CHUNK];
    let mut written = 0u64;
    loop {
        let count = payload.read(&mut chunk).map_err(|error| payload_error(name, error))?;
        if count == 0 {
            break;
        }
        partition.write_all(&chunk[..count]).map_err(write_error)?;
        written += count as u64;
        progress.advance(start + written);
    }
    partition.sync_all().map_err(write_error)
}

/// A payload read's error: the bundle's own (hash, truncation, download) when it is one.
fn payload_error(name: PayloadName, error: io::Error) -> InstallError {
    match BundleError::from_io(error) {
        Ok(source) => InstallError::Payload { name, source },
        Err(error) => InstallError::Payload {
            name,
            source: BundleError::Read {
                part: keel_os_image::bundle::BundlePart::Payload(name),
                offset: 0,
                source: error,
            },
        },
    }
}

/// Writes [`LAST_INSTALL`]; a failure to is logged, never fatal.
fn record_outcome(source: &str, version: Option<&str>, slot: Option<Slot>, result: &Result<&Installed, &InstallError>) {
    let record = InstallRecord {
        source: source.to_owned(),
        version: version.map(str::to_owned),
        slot: slot.map(|slot| slot.to_string()),
        outcome: if result.is_ok() { "installed" } else { "failed" },
        entry: result.as_ref().ok().map(|installed| installed.entry.clone()),
        error: result.as_ref().err().map(|error| error_chain(*error)),
        finished_at: record::now(),
    };
    if let Err(error) = record.write(Path::new(LAST_INSTALL)) {
        log::warn!("update: cannot write {LAST_INSTALL}: {}", error_chain(&error));
    }
}

/// The one-install-at-a-time lock, released on drop.
struct InstallLock;

impl InstallLock {
    fn take() -> Option<InstallLock> {
        INSTALLING.compare_exchange(false, true, Ordering::AcqRel, Ordering::Acquire).ok().map(|_| InstallLock)
    }
}

impl Drop for InstallLock {
    fn drop(&mut self) {
        INSTALLING.store(false, Ordering::Release);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_install_at_a_time() {
        let first = InstallLock::take().unwrap();
        assert!(InstallLock::take().is_none());
        drop(first);
        assert!(InstallLock::take().is_some());
    }
}
