//! Device fixtures for the device-cgroup tests: a loop device over a small file (the stand-in for a host disk)
//! and an image whose top layer ships a world-readable block node.
//!
//! Both are made with syscalls and in-process tar writing, never by running `losetup` or umoci: a test binary's
//! reaper takes every child with `waitpid(-1)`, so external commands cannot run once containers have started.

use std::fs::{File, OpenOptions};
use std::io::Read;
use std::os::fd::AsRawFd;
use std::path::{Path, PathBuf};

use keel_supervisor::image::digest::Digest;

const LOOP_SET_FD: libc::c_ulong = 0x4C00;
const LOOP_CLR_FD: libc::c_ulong = 0x4C01;
const LOOP_CTL_GET_FREE: libc::c_ulong = 0x4C82;

/// A loop device backed by a file with known contents; detached on drop, also when the test fails.
pub struct LoopDevice {
    pub path: PathBuf,
    pub major: u32,
    pub minor: u32,
    pub backing: PathBuf,
    device: File,
}

impl LoopDevice {
    /// Binds a free loop device to a new file `dir/name` holding `contents`, padded to 64 KiB.
    pub fn new(dir: &Path, name: &str, contents: &[u8]) -> LoopDevice {
        let backing = dir.join(name);
        let mut data = contents.to_vec();
        data.resize(64 * 1024, 0);
        std::fs::write(&backing, &data).unwrap();
        let backing_file = OpenOptions::new().read(true).write(true).open(&backing).unwrap();
        let control = File::open("/dev/loop-control").unwrap();
        // Tests run in parallel: another one may take the free device between GET_FREE and SET_FD.
        for _ in 0..50 {
            // SAFETY: LOOP_CTL_GET_FREE takes no argument and returns a device number or -1.
            let number = unsafe { libc::ioctl(control.as_raw_fd(), LOOP_CTL_GET_FREE as _) };
            assert!(number >= 0, "LOOP_CTL_GET_FREE: {}", std::io::Error::last_os_error());
            let path = PathBuf::from(format!("/dev/loop{number}"));
            let Ok(device) = OpenOptions::new().read(true).write(true).open(&path) else {
                std::thread::sleep(std::time::Duration::from_millis(20));
                continue;
            };
            // SAFETY: LOOP_SET_FD reads its argument as an fd number; the backing file stays open for the call.
            let ret = unsafe { libc::ioctl(device.as_raw_fd(), LOOP_SET_FD as _, backing_file.as_raw_fd()) };
            if ret == 0 {
                let metadata = std::fs::metadata(&path).unwrap();
                let rdev = std::os::unix::fs::MetadataExt::rdev(&metadata);
                let (major, minor) = (libc::major(rdev), libc::minor(rdev));
                return LoopDevice { path, major, minor, backing, device };
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        panic!("no free loop device");
    }

    /// The first `length` bytes of the backing file.
    pub fn backing_prefix(&self, length: usize) -> Vec<u8> {
        let mut bytes = vec![0u8; length];
        File::open(&self.backing).unwrap().read_exact(&mut bytes).unwrap();
        bytes
    }
}

impl Drop for LoopDevice {
    fn drop(&mut self) {
        // SAFETY: LOOP_CLR_FD takes no argument; the fd is our open loop device.
        unsafe { libc::ioctl(self.device.as_raw_fd(), LOOP_CLR_FD as _, 0) };
    }
}

fn sha256_hex(bytes: &[u8]) -> String {
    Digest::of_bytes(bytes).hex().to_owned()
}

fn append(builder: &mut tar::Builder<Vec<u8>>, name: &str, data: &[u8]) {
    let mut header = tar::Header::new_ustar();
    header.set_size(data.len() as u64);
    header.set_mode(0o644);
    header.set_mtime(1_700_000_000);
    header.set_entry_type(tar::EntryType::Regular);
    builder.append_data(&mut header, name, data).unwrap();
}

/// A docker-save archive of `busybox_archive`'s image plus one layer holding a 0666 block node `/srv/disk` for
/// `major:minor`, tagged `reference`; written to `dir`.
pub fn image_with_block_node(busybox_archive: &Path, dir: &Path, reference: &str, major: u32, minor: u32) -> PathBuf {
    let mut archive = tar::Archive::new(File::open(busybox_archive).unwrap());
    let mut members = std::collections::HashMap::new();
    for entry in archive.entries().unwrap() {
        let mut entry = entry.unwrap();
        if entry.header().entry_type() != tar::EntryType::Regular {
            continue;
        }
        let name = entry.path().unwrap().display().to_string();
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes).unwrap();
        members.insert(name, bytes);
    }
    let manifest: serde_json::Value = serde_json::from_slice(&members["manifest.json"]).unwrap();
    let base_config_name = manifest[0]["Config"].as_str().unwrap();
    let base_layer_name = manifest[0]["Layers"][0].as_str().unwrap();

    let mut layer = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_ustar();
    header.set_entry_type(tar::EntryType::Block);
    header.set_size(0);
    header.set_mode(0o666);
    header.set_uid(0);
    header.set_gid(0);
    header.set_mtime(1_700_000_000);
    header.set_device_major(major).unwrap();
    header.set_device_minor(minor).unwrap();
    layer.append_data(&mut header, "srv/disk", std::io::empty()).unwrap();
    let layer = layer.into_inner().unwrap();
    let layer_id = sha256_hex(&layer);

    let mut config: serde_json::Value = serde_json::from_slice(&members[base_config_name]).unwrap();
    config["rootfs"]["diff_ids"].as_array_mut().unwrap().push(format!("sha256:{layer_id}").into());
    let config = serde_json::to_vec(&config).unwrap();
    let config_name = format!("{}.json", sha256_hex(&config));
    let layer_name = format!("{layer_id}.tar");
    let manifest = serde_json::json!([{
        "Config": config_name,
        "RepoTags": [reference],
        "Layers": [base_layer_name, layer_name],
    }]);

    let mut out = tar::Builder::new(Vec::new());
    append(&mut out, base_layer_name, &members[base_layer_name]);
    append(&mut out, &layer_name, &layer);
    append(&mut out, &config_name, &config);
    append(&mut out, "manifest.json", &serde_json::to_vec(&manifest).unwrap());
    let path = dir.join("block-node-image.tar");
    std::fs::write(&path, out.into_inner().unwrap()).unwrap();
    path
}
