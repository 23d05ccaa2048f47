//! The install, step by step: verify the bundle's head, take the kernel and initramfs into memory and the root
//! image into a staging file while their hashes are checked, then remove the inactive slot's entries, copy the
//! root image into `keel-root-<other>`, write the kernel and initramfs to `/keel/<other>/` on the ESP (temporary
//! name, sync, rename), and only then the entry `keel-<version>-<other>+3.conf`. The running slot and its entry
//! are never written.
//!
//! Every byte of the bundle is verified (signature, `compatible`, version, each payload's hash, nothing after the
//! last) before anything on the disk changes. A power cut or an error at a later step leaves no entry for the
//! inactive slot until the last one, so the machine boots the running version.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use keel_api::update::InstallState;
use keel_logs::error_chain;
use keel_os_image::boot_entry::{entry_file_text, options_for_slot, BootEntryName};
use keel_os_image::bundle::{BundleError, BundleReader, PayloadName, TrustPolicy};
use keel_os_image::layout::{esp_initramfs_path, esp_kernel_path, root_partition_name, ESP_ENTRIES_DIR};
use keel_os_image::Slot;

use super::direct_io::{self, read_direct, AlignedChunk, DirectWriter, CHUNK};
use super::esp::{self, EspWriteError, MountedEsp, PartialFiles};
use super::halt::{halt_if_asked, HaltPoint};
use super::progress::Progress;
use super::record::{self, InstallRecord, LAST_INSTALL};
use super::running::{RunningHost, RunningHostError};
use super::source::{SourceError, UpdateSource};
use super::staging::{self, StagingError, StagingPlace};
use crate::block::{wait_for_partition, PartitionError, Scope};
use crate::boot_disk;

/// Boot attempts a new entry gets before systemd-boot falls back to the other slot.
pub const TRIES: u32 = 3;
/// The kernel and the initramfs are held in memory until every byte of the bundle verified; a Debian kernel is about
/// 8 MiB, keel's initramfs less.
const MAX_BOOT_FILE: u64 = 64 << 20;
/// The partition is on the boot disk, which is long there.
const PARTITION_WAIT: Duration = Duration::from_secs(2);

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
    #[error("cannot install the bundle's {name}")]
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
    #[error("cannot hold the root image until it verified")]
    Staging(#[source] StagingError),
    #[error("cannot write or read the staged root image")]
    Stage(#[source] io::Error),
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

    /// Shows the install as started in `progress`: a client that saw the API accept it never reads the last
    /// install's outcome as this one's.
    pub fn announce(&self, progress: &Progress) {
        progress.start(self.version(), self.reader.bundle_len());
    }

    /// Announces the install and writes the inactive slot and its entry; records the outcome in [`LAST_INSTALL`].
    pub fn write(self, progress: &Progress) -> Result<Installed, InstallError> {
        self.announce(progress);
        self.write_announced(progress)
    }

    /// [`OpenedBundle::write`] after [`OpenedBundle::announce`].
    pub fn write_announced(self, progress: &Progress) -> Result<Installed, InstallError> {
        let source_text = self.source_text.clone();
        let version = self.version().to_owned();
        let slot = self.host.slot.other();
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

    fn write_steps(self, progress: &Progress) -> Result<Installed, InstallError> {
        let running = self.host.slot;
        write_slot(self.reader, running, |root_size| SlotTargets::on_boot_disk(running.other(), root_size), progress)
    }
}

/// Where the inactive slot is written: the ESP's root (mounted while this lives) and the root partition.
struct SlotTargets {
    esp_root: PathBuf,
    partition: File,
    device: PathBuf,
    /// Where the root image waits until it verified.
    staging: Vec<StagingPlace>,
    _esp: Option<MountedEsp>,
}

impl SlotTargets {
    /// `keel-root-<slot>` and the ESP of the boot disk; the root image of `root_size` bytes must fit.
    fn on_boot_disk(slot: Slot, root_size: u64) -> Result<SlotTargets, InstallError> {
        let disk = boot_disk::root_filesystem_disk().ok_or(InstallError::NoBootDisk)?;
        let device = wait_for_partition(&root_partition_name(slot), Scope::Disk(&disk), PARTITION_WAIT)
            .map_err(InstallError::Partition)?;
        let mut partition = OpenOptions::new()
            .write(true)
            .open(&device)
            .map_err(|source| InstallError::WriteRoot { device: device.clone(), source })?;
        let capacity = partition
            .seek(SeekFrom::End(0))
            .and_then(|end| partition.seek(SeekFrom::Start(0)).map(|_| end))
            .map_err(|source| InstallError::WriteRoot { device: device.clone(), source })?;
        if root_size > capacity {
            return Err(InstallError::RootTooLarge { size: root_size, capacity, device });
        }
        let esp = MountedEsp::mount(&disk).map_err(InstallError::Esp)?;
        Ok(SlotTargets {
            esp_root: esp.root().to_path_buf(),
            partition,
            device,
            staging: StagingPlace::on_host(),
            _esp: Some(esp),
        })
    }
}

/// The install's steps, in their order, with the bundle's head verified already: every payload is read and
/// verified (the root into a staging file) before the first write to the ESP or the inactive partition. `targets`
/// finds (and mounts) where the writes go.
fn write_slot<R: Read>(
    mut reader: BundleReader<R>,
    running: Slot,
    targets: impl FnOnce(u64) -> Result<SlotTargets, InstallError>,
    progress: &Progress,
) -> Result<Installed, InstallError> {
    let started = Instant::now();
    let other = running.other();
    let version = reader.manifest().version.clone();
    progress.advance(reader.offset());
    // 1. The kernel and initramfs into memory, each verified.
    let kernel = read_boot_file(&mut reader, progress)?;
    let initramfs = read_boot_file(&mut reader, progress)?;

    // 2. Where the root goes, whether it fits, and the root itself into a staging file, verified; then that
    //    nothing follows it. Nothing on the disk changed yet.
    let root_size = reader.manifest().payload(PayloadName::Root).map_or(0, |entry| entry.size);
    let mut targets = targets(root_size)?;
    let mut staged = staging::create(&targets.staging, root_size).map_err(InstallError::Staging)?;
    stage_root(&mut reader, &mut staged, progress)?;
    let hashing = reader.hashing_time();
    reader.finish().map_err(|source| InstallError::Payload { name: PayloadName::Root, source })?;
    progress.set_state(InstallState::Writing);
    let verified = started.elapsed();
    let esp_root = targets.esp_root.clone();

    // 3. No entry of the inactive slot from here on until the new one: nothing boots a half-written slot.
    let running_entry = esp::running_entry(&esp_root, running).map_err(InstallError::Esp)?;
    for removed in esp::remove_slot_entries(&esp_root, other).map_err(InstallError::Esp)? {
        log::info!("update: removed the entry {removed} of slot {other}");
    }

    // 4. The root image into the partition, synced.
    write_root(&mut staged, root_size, &mut targets.partition, &targets.device)?;
    drop(staged);
    let root_written = started.elapsed();

    // 5. Kernel, initramfs and the new entry under temporary names, synced together; the kernel and initramfs
    //    renamed and synced.
    let entry = BootEntryName::new(&version, other).with_tries(TRIES);
    let options = options_for_slot(&running_entry.options, other);
    let text = entry_file_text(&version, other, &options, running_entry.generation.saturating_add(1));
    let (kernel_path, initramfs_path) = (esp_kernel_path(other), esp_initramfs_path(other));
    let entry_path = format!("{ESP_ENTRIES_DIR}/{entry}");
    let files: [(&str, &[u8]); 3] =
        [(&kernel_path, &kernel), (&initramfs_path, &initramfs), (&entry_path, text.as_bytes())];
    let mut written = PartialFiles::write(&esp_root, &files).map_err(InstallError::Esp)?;
    written.rename(&kernel_path).map_err(InstallError::Esp)?;
    halt_if_asked(HaltPoint::AfterKernel);
    written.rename(&initramfs_path).map_err(InstallError::Esp)?;
    written.sync().map_err(InstallError::Esp)?;
    halt_if_asked(HaltPoint::BeforeEntry);

    // 6. The entry, last: from here on the next boot is a trial of the new version.
    written.rename(&entry_path).map_err(InstallError::Esp)?;
    written.sync().map_err(InstallError::Esp)?;
    drop(targets);
    log::info!(
        "update: read and verified in {:.2} s ({:.2} s of it hashing), root written in {:.2} s, ESP in {:.2} s",
        verified.as_secs_f64(),
        hashing.as_secs_f64(),
        (root_written - verified).as_secs_f64(),
        (started.elapsed() - root_written).as_secs_f64()
    );
    Ok(Installed { version, slot: other, entry: entry.to_string() })
}

/// The next payload (kernel or initramfs) whole, verified.
fn read_boot_file<R: Read>(reader: &mut BundleReader<R>, progress: &Progress) -> Result<Vec<u8>, InstallError> {
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
    // At most MAX_BOOT_FILE, checked just above; read straight into place.
    let mut bytes = vec![0u8; size as usize];
    let filled = fill_from_payload(&mut payload, name, &mut bytes, progress, start)?;
    // The payload ends at its manifest size, or its read failed: `filled` is `size` here.
    bytes.truncate(filled);
    Ok(bytes)
}

/// Reads `payload` into `buffer` until it is full or the payload ends, the progress following each read (`done`:
/// the bundle's bytes before `buffer`'s first); the count read.
fn fill_from_payload(
    payload: &mut impl Read,
    name: PayloadName,
    buffer: &mut [u8],
    progress: &Progress,
    done: u64,
) -> Result<usize, InstallError> {
    let mut filled = 0;
    while filled < buffer.len() {
        let count = payload.read(&mut buffer[filled..]).map_err(|error| payload_error(name, error))?;
        if count == 0 {
            break;
        }
        filled += count;
        progress.advance(done + filled as u64);
    }
    Ok(filled)
}

/// Reads the root payload into `staged`, hashing it; the read that completes it fails if the hash does not match.
fn stage_root<R: Read>(
    reader: &mut BundleReader<R>,
    staged: &mut File,
    progress: &Progress,
) -> Result<(), InstallError> {
    let start = reader.offset();
    let Some(mut payload) =
        reader.next_payload().map_err(|source| InstallError::Payload { name: PayloadName::Root, source })?
    else {
        return Ok(());
    };
    let name = payload.entry().name;
    let mut chunk = AlignedChunk::new();
    let mut staging = DirectWriter::new(staged);
    let mut staged_bytes = 0u64;
    loop {
        // Whole chunks, however the download cuts its reads: only the last write may be short.
        let filled = fill_from_payload(&mut payload, name, chunk.bytes_mut(), progress, start + staged_bytes)?;
        if filled == 0 {
            break;
        }
        staging.write(&chunk.bytes()[..filled]).map_err(InstallError::Stage)?;
        staged_bytes += filled as u64;
        if filled < CHUNK {
            break;
        }
    }
    Ok(())
}

/// Copies the verified root image of `size` bytes from `staged` into `partition` from its start, then syncs the
/// device.
fn write_root(staged: &mut File, size: u64, partition: &mut File, device: &Path) -> Result<(), InstallError> {
    let write_error = |source| InstallError::WriteRoot { device: device.to_path_buf(), source };
    staged.seek(SeekFrom::Start(0)).map_err(InstallError::Stage)?;
    let mut chunk = AlignedChunk::new();
    let mut target = DirectWriter::new(partition);
    let mut copied = 0u64;
    let mut halted_half_way = false;
    while copied < size {
        // A read of whole blocks; past the end of the image it comes back short.
        let want = (size - copied).min(CHUNK as u64) as usize;
        let whole_blocks = want.next_multiple_of(direct_io::ALIGN).min(CHUNK);
        let count = read_direct(staged, &mut chunk.bytes_mut()[..whole_blocks]).map_err(InstallError::Stage)?.min(want);
        if count == 0 {
            return Err(write_error(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("the staged root image gave {copied} of its {size} bytes"),
            )));
        }
        target.write(&chunk.bytes()[..count]).map_err(write_error)?;
        copied += count as u64;
        if !halted_half_way && copied >= size / 2 {
            // For the power cut the tests make with the partition half written.
            halted_half_way = true;
            halt_if_asked(HaltPoint::RootHalfWritten);
        }
    }
    drop(target);
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
    use crate::update::test_support::names;

    use std::fs;

    use ed25519_dalek::SigningKey;
    use keel_os_image::bundle::{signed_head, Manifest, PayloadEntry, Sha256Digest};
    use sha2::{Digest, Sha256};

    const RUNNING: &str = "keel-1.0.0-a.conf";
    const KERNEL: &[u8] = b"new kernel";
    const INITRAMFS: &[u8] = b"new initramfs";
    const ROOT: &[u8] = b"new root image";

    /// A bundle of version 1.1.0 signed with a test key, and the key's public half.
    fn bundle() -> (Vec<u8>, ed25519_dalek::VerifyingKey) {
        let key = SigningKey::from_bytes(&[9; 32]);
        let entry = |name, bytes: &[u8]| PayloadEntry {
            name,
            size: bytes.len() as u64,
            sha256: Sha256Digest(Sha256::digest(bytes).into()),
        };
        let payloads = vec![
            entry(PayloadName::Kernel, KERNEL),
            entry(PayloadName::Initramfs, INITRAMFS),
            entry(PayloadName::Root, ROOT),
        ];
        let mut bytes = signed_head(&Manifest::new("1.1.0", "keel-test", payloads), &key).unwrap();
        for payload in [KERNEL, INITRAMFS, ROOT] {
            bytes.extend_from_slice(payload);
        }
        (bytes, key.verifying_key())
    }

    /// An ESP with the running entry of slot a and an old, bad entry of slot b, and a slot-b "partition" file.
    fn disk(dir: &Path) -> PathBuf {
        let entries = dir.join("esp").join(ESP_ENTRIES_DIR);
        fs::create_dir_all(&entries).unwrap();
        fs::write(entries.join(RUNNING), "options console=ttyS0 keel.slot=a\n").unwrap();
        fs::write(entries.join("keel-0.9.0-b+0-3.conf"), "options keel.slot=b\n").unwrap();
        fs::create_dir_all(dir.join("esp/keel/a")).unwrap();
        fs::write(dir.join("esp/keel/a/vmlinuz"), "running kernel").unwrap();
        let partition = dir.join("root-b");
        fs::write(&partition, vec![0u8; 64]).unwrap();
        partition
    }

    /// The ESP's entries and files and the slot-b "partition" of [`disk`] are as they were.
    fn assert_nothing_changed(dir: &Path, partition: &Path) {
        assert_eq!(names(&dir.join("esp").join(ESP_ENTRIES_DIR)), ["keel-0.9.0-b+0-3.conf", RUNNING]);
        assert!(!dir.join("esp/keel/b").exists());
        assert_eq!(fs::read(partition).unwrap(), vec![0u8; 64]);
    }

    fn install_from(bytes: &[u8], key: ed25519_dalek::VerifyingKey, dir: &Path) -> Result<Installed, InstallError> {
        install_staging_in(bytes, key, dir, dir.join("staging"))
    }

    /// [`install_from`] with the root staged in `staging`.
    fn install_staging_in(
        bytes: &[u8],
        key: ed25519_dalek::VerifyingKey,
        dir: &Path,
        staging: PathBuf,
    ) -> Result<Installed, InstallError> {
        let keys = [key];
        let policy =
            TrustPolicy { keys: &keys, compatible: "keel-test", running_version: "1.0.0", allow_downgrade: false };
        let reader = BundleReader::open(bytes, &policy).unwrap();
        let partition = dir.join("root-b");
        let targets = |_| {
            let file = OpenOptions::new().write(true).open(&partition).unwrap();
            Ok(SlotTargets {
                esp_root: dir.join("esp"),
                partition: file,
                device: partition.clone(),
                staging: vec![StagingPlace::Disk(staging.clone())],
                _esp: None,
            })
        };
        write_slot(reader, Slot::A, targets, &Progress::default())
    }

    #[test]
    fn writes_the_inactive_slot_and_its_entry_last_and_never_the_running_one() {
        let dir = tempfile::tempdir().unwrap();
        let partition = disk(dir.path());
        let (bytes, key) = bundle();
        let installed = install_from(&bytes, key, dir.path()).unwrap();
        assert_eq!(
            installed,
            Installed { version: "1.1.0".into(), slot: Slot::B, entry: "keel-1.1.0-b+3.conf".into() }
        );
        let esp = dir.path().join("esp");
        assert_eq!(names(&esp.join(ESP_ENTRIES_DIR)), [RUNNING, "keel-1.1.0-b+3.conf"]);
        assert_eq!(
            fs::read_to_string(esp.join(ESP_ENTRIES_DIR).join("keel-1.1.0-b+3.conf")).unwrap(),
            entry_file_text("1.1.0", Slot::B, "console=ttyS0 keel.slot=b", 1)
        );
        assert_eq!(
            fs::read_to_string(esp.join(ESP_ENTRIES_DIR).join(RUNNING)).unwrap(),
            "options console=ttyS0 keel.slot=a\n"
        );
        assert_eq!(fs::read(esp.join("keel/b/vmlinuz")).unwrap(), KERNEL);
        assert_eq!(fs::read(esp.join("keel/b/initrd.img")).unwrap(), INITRAMFS);
        assert_eq!(names(&esp.join("keel/b")), ["initrd.img", "vmlinuz"]);
        assert_eq!(fs::read(esp.join("keel/a/vmlinuz")).unwrap(), b"running kernel");
        assert_eq!(&fs::read(partition).unwrap()[..ROOT.len()], ROOT);
    }

    #[test]
    fn a_root_that_does_not_match_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let partition = disk(dir.path());
        let (mut bytes, key) = bundle();
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        let error = install_from(&bytes, key, dir.path()).unwrap_err();
        assert!(matches!(error, InstallError::Payload { name: PayloadName::Root, .. }), "{error:?}");
        assert_nothing_changed(dir.path(), &partition);
        assert!(names(&dir.path().join("staging")).is_empty());
    }

    #[test]
    fn bytes_after_the_last_payload_change_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let partition = disk(dir.path());
        let (mut bytes, key) = bundle();
        bytes.push(0);
        let error = install_from(&bytes, key, dir.path()).unwrap_err();
        assert!(matches!(error, InstallError::Payload { source: BundleError::TrailingData { .. }, .. }), "{error:?}");
        assert_nothing_changed(dir.path(), &partition);
    }

    #[test]
    fn no_room_to_stage_the_root_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let partition = disk(dir.path());
        let (bytes, key) = bundle();
        let error = install_staging_in(&bytes, key, dir.path(), "/proc/no-room".into()).unwrap_err();
        assert!(matches!(error, InstallError::Staging(_)), "{error:?}");
        assert_nothing_changed(dir.path(), &partition);
    }

    #[test]
    fn a_kernel_that_does_not_match_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let partition = disk(dir.path());
        let (mut bytes, key) = bundle();
        let kernel_start = bytes.len() - ROOT.len() - INITRAMFS.len() - KERNEL.len();
        bytes[kernel_start] ^= 1;
        let error = install_from(&bytes, key, dir.path()).unwrap_err();
        assert!(matches!(error, InstallError::Payload { name: PayloadName::Kernel, .. }), "{error:?}");
        assert_nothing_changed(dir.path(), &partition);
    }

    #[test]
    fn one_install_at_a_time() {
        let first = InstallLock::take().unwrap();
        assert!(InstallLock::take().is_none());
        drop(first);
        assert!(InstallLock::take().is_some());
    }

    /// The bytes of `path` in the page cache, as `fincore` counts them.
    fn cached_bytes(path: &Path) -> u64 {
        let output = std::process::Command::new("fincore")
            .args(["--bytes", "--noheadings", "--output", "RES"])
            .arg(path)
            .output()
            .unwrap();
        assert!(output.status.success(), "fincore: {}", String::from_utf8_lossy(&output.stderr));
        String::from_utf8_lossy(&output.stdout).trim().parse().unwrap()
    }

    #[test]
    fn the_root_image_reaches_its_partition_whole_and_around_the_page_cache() {
        // On a disk: the tmpfs a test's /tmp may be takes no O_DIRECT, and the copy would go through the cache.
        let dir = tempfile::tempdir_in("/var/tmp").unwrap();
        let size = 3 * CHUNK as u64 + 100;
        let root: Vec<u8> = (0..size).map(|index| (index % 253) as u8).collect();
        let mut staged = staging::create(&[StagingPlace::Disk(dir.path().to_path_buf())], size).unwrap();
        std::io::Write::write_all(&mut staged, &root).unwrap();
        let device = dir.path().join("root-b");
        let mut partition = File::create(&device).unwrap();
        partition.set_len(4 * CHUNK as u64).unwrap();

        write_root(&mut staged, size, &mut partition, &device).unwrap();
        // Only the last piece, not a whole block, went through the cache.
        let cached = cached_bytes(&device);
        assert!(cached <= direct_io::ALIGN as u64, "{cached} bytes of the written root image are in the page cache");
        let written = fs::read(&device).unwrap();
        assert!(written[..root.len()] == root[..], "the partition does not hold the root image");
        assert!(written[root.len()..].iter().all(|&byte| byte == 0), "bytes after the root image were written");
    }
}
