//! The built image has the keel layout: four named GPT partitions with the right types, the ESP files, an erofs
//! root with /sbin/init, an ext4 data partition labelled keel-data, and an initramfs whose module list is in
//! dependency order.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::io::Read;
use std::process::Command;

use common::{build_env, extract, mtools, partitions, run_ok};
use keel_image_builder::esp::{FatGeometry, FAT32_MIN_CLUSTERS};
use keel_os_image::initramfs::parse_module_load_list;
use keel_os_image::layout::{DATA_TYPE_GUID, ESP_TYPE_GUID, ROOT_TYPE_GUID};

#[test]
fn image_has_the_keel_layout() {
    let env = build_env();
    let dir = tempfile::tempdir().unwrap();
    let image = dir.path().join("keel.img");
    let boot_dir = dir.path().join("boot");
    run_ok(&mut env.command(&image, &["--boot-dir", boot_dir.to_str().unwrap()]));

    let partitions = partitions(&image);
    let layout: Vec<(&str, &str)> =
        partitions.iter().map(|partition| (partition.name.as_str(), partition.type_guid.as_str())).collect();
    assert_eq!(
        layout,
        [
            ("esp", ESP_TYPE_GUID),
            ("keel-root-a", ROOT_TYPE_GUID),
            ("keel-root-b", ROOT_TYPE_GUID),
            ("keel-data", DATA_TYPE_GUID)
        ]
    );
    assert_eq!(partitions[0].start, 1 << 20, "first LBA 2048");
    assert_eq!(partitions[1].size, partitions[2].size, "both root slots have one size");

    // ESP: FAT32 with 4 KiB clusters and enough of them to be FAT32 by the specification's count; boot loader,
    // loader.conf, the slot-a entry, kernel and initramfs.
    let esp = partitions[0].start;
    let geometry = FatGeometry::read(&image, esp).unwrap();
    assert_eq!((geometry.bytes_per_sector, geometry.cluster_bytes()), (512, 4096), "{geometry:?}");
    assert!(geometry.clusters >= FAT32_MIN_CLUSTERS, "too few clusters for FAT32: {geometry:?}");
    let listing = mtools("mdir", &image, esp, &["-/", "-b", "::"]);
    for path in ["::/EFI/BOOT/BOOTX64.EFI", "::/loader/loader.conf", "::/keel/a/vmlinuz", "::/keel/a/initrd.img"] {
        assert!(listing.lines().any(|line| line == path), "{path} missing from the ESP:\n{listing}");
    }
    let entry = mtools("mtype", &image, esp, &["::/loader/entries/keel-0.1.0-a.conf"]);
    let cmdline = std::fs::read_to_string(boot_dir.join("cmdline")).unwrap();
    assert!(entry.contains("linux /keel/a/vmlinuz\n") && entry.contains("initrd /keel/a/initrd.img\n"), "{entry}");
    assert!(cmdline.trim_end().ends_with(" keel.slot=a"), "{cmdline}");
    assert!(entry.lines().any(|line| line == format!("options {}", cmdline.trim_end())), "{entry}");
    assert!(mtools("mtype", &image, esp, &["::/loader/loader.conf"]).contains("default keel-*"));

    // Root slot a: erofs with PID 1 at /sbin/init.
    let root = extract(&image, &partitions[1], dir.path().join("root.erofs"));
    let tree = dir.path().join("root-tree");
    run_ok(Command::new("fsck.erofs").arg(format!("--extract={}", tree.display())).arg(&root));
    assert_eq!(std::fs::read(tree.join("sbin/init")).unwrap(), std::fs::read(&env.init).unwrap());
    let os_release = std::fs::read_to_string(tree.join("etc/os-release")).unwrap();
    assert!(os_release.contains("VERSION_ID=0.1.0\n"), "{os_release}");
    // The kernel's description, the same one line the boot directory holds for `make bench`.
    let kernel = std::fs::read_to_string(boot_dir.join("kernel")).unwrap();
    assert!(kernel.starts_with("linux-image-") && kernel.ends_with("-amd64)\n"), "{kernel}");
    assert!(os_release.contains(&format!("KEEL_KERNEL=\"{}\"\n", kernel.trim_end())), "{os_release}");
    for mount_point in ["proc", "sys", "dev", "run", "tmp", "var", "usr/share/keel"] {
        assert!(tree.join(mount_point).is_dir(), "/{mount_point} missing from the root");
    }

    // Data: ext4 labelled keel-data.
    let data = extract(&image, &partitions[3], dir.path().join("data.ext4"));
    let superblock = String::from_utf8(run_ok(Command::new("dumpe2fs").arg("-h").arg(&data)).stdout).unwrap();
    assert!(superblock.lines().any(|line| line.starts_with("Filesystem volume name:") && line.ends_with(" keel-data")));
    assert!(superblock.contains("Filesystem features:") && superblock.contains("extent"), "{superblock}");

    // Initramfs: the ESP copy equals the boot directory's; /init and the module list, in dependency order.
    let initrd = dir.path().join("initrd.img");
    mtools("mcopy", &image, esp, &["::/keel/a/initrd.img", initrd.to_str().unwrap()]);
    assert_eq!(std::fs::read(&initrd).unwrap(), std::fs::read(boot_dir.join("initrd.img")).unwrap());
    let mut cpio = Vec::new();
    flate2::read::GzDecoder::new(std::fs::File::open(&initrd).unwrap()).read_to_end(&mut cpio).unwrap();
    let cpio_path = dir.path().join("initrd.cpio");
    std::fs::write(&cpio_path, cpio).unwrap();
    let listing =
        String::from_utf8(run_ok(Command::new("cpio").args(["-it", "--quiet", "-F"]).arg(&cpio_path)).stdout).unwrap();
    let files: Vec<&str> = listing.lines().collect();
    for path in ["init", "etc/initrd-release", "lib/modules/keel.load", "newroot", "proc", "sys", "dev"] {
        assert!(files.contains(&path), "{path} missing from the initramfs");
    }
    let load_list = run_ok(
        Command::new("cpio").args(["-i", "--quiet", "--to-stdout", "-F"]).arg(&cpio_path).arg("lib/modules/keel.load"),
    );
    let load_list = String::from_utf8(load_list.stdout).unwrap();
    let modules = parse_module_load_list(&load_list);
    for module in &modules {
        assert!(files.contains(&format!("lib/modules/{module}").as_str()), "{module} listed but not in the initramfs");
    }
    let position = |name: &str| {
        modules
            .iter()
            .position(|path| path.ends_with(&format!("/{name}.ko")))
            .unwrap_or_else(|| panic!("{name} not in the load list:\n{load_list}"))
    };
    assert!(position("crc32c_generic") < position("libcrc32c"));
    assert!(position("libcrc32c") < position("erofs"));
    assert!(position("virtio_ring") < position("virtio_blk"));
    assert!(position("jbd2") < position("ext4") && position("crc32c_generic") < position("jbd2"));
    for wanted in ["virtio_pci", "button", "evdev"] {
        position(wanted);
    }

    // Boot directory: the uncompressed kernel.
    let mut magic = [0u8; 4];
    std::fs::File::open(boot_dir.join("vmlinux")).unwrap().read_exact(&mut magic).unwrap();
    assert_eq!(&magic, b"\x7fELF");
}
