//! Config drive and network tests: DHCP on QEMU's user network, a static address on a second NIC, drives as vfat
//! and ISO 9660 in both layouts, a drive on a partition of a partitioned disk, the host name from meta-data, and invalid user-data falling back to the last
//! accepted generation, also after a reboot; a 1 GiB user-data is refused unread and falls back the same way.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::path::{Path, PathBuf};

use anyhow::{ensure, Result};
use keel_qemu_tests::artifacts::{self, Artifacts};
use keel_qemu_tests::config_drive::{self, DriveSpec};
use keel_qemu_tests::disk::DiskFormat;
use keel_qemu_tests::tcp_collector::TcpCollector;
use keel_qemu_tests::timeouts;
use keel_qemu_tests::vm::{Vm, VmConfig};

fn artifacts() -> Artifacts {
    artifacts::ensure_built().expect("keel artifacts (make image)")
}

/// Boots with `drive` as the second disk and returns the VM at `ready`.
fn boot_with_drive(name: &str, drive: &std::path::Path, configure: impl FnOnce(VmConfig) -> VmConfig) -> Result<Vm> {
    let config = VmConfig::pvh(name, &artifacts()).disk_file(drive, DiskFormat::Raw);
    let vm = Vm::start(configure(config))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;
    Ok(vm)
}

#[test]
fn dhcp_on_the_user_network_reaches_a_tcp_server_on_the_host() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let server = TcpCollector::start()?;
    // No [network] section: DHCP on every ethernet link. The syslog relay is the guest's TCP client.
    let user_data = format!("[syslog]\ntarget = \"tcp://10.0.2.2:{}\"\n", server.port());
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), "dhcp", &spec)?;
    let vm = boot_with_drive("dhcp_on_the_user_network", &drive, VmConfig::network)?;
    let line = vm.wait_for("network eth0", timeouts::PVH_READY)?;
    ensure!(line.contains("network eth0 10.0.2.15/24 dhcp"), "unexpected network line: {line}");
    let lease = vm.wait_for("dhcp eth0: lease", timeouts::PVH_READY)?;
    ensure!(lease.contains("router 10.0.2.2"), "no router in the lease: {lease}");
    ensure!(
        server.wait_for("network eth0 10.0.2.15/24 dhcp", timeouts::PVH_READY),
        "the host's TCP server got no syslog line from the guest; it got: {:?}",
        server.text()
    );
    Ok(())
}

#[test]
fn static_address_on_a_second_nic_by_mac() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let user_data = r#"
[[network.interface]]
name = "eth0"
dhcp = true

[[network.interface]]
mac = "52:54:00:00:77:02"
addresses = ["192.168.77.9/24", "fd77::9/64"]
routes = [{ to = "10.77.0.0/16", via = "192.168.77.2" }]
dns = ["192.168.77.3"]

# Reports the host's routes and name servers as PID 1 configured them: host network, the generated /etc read-only.
[containers.probe]
image = "keel/busybox"
network = "host"
volumes = ["/run/keel/etc:/hostetc:ro"]
command = ["sh", "-c", "while true; do echo route: $(ip route | grep 10.77.0.0); echo dns: $(grep nameserver /hostetc/resolv.conf); sleep 2; done"]
"#;
    // Through the second NIC only: 192.168.77.2 is that user network's gateway, which is the host.
    let server = TcpCollector::start()?;
    let user_data = format!("{user_data}\n[syslog]\ntarget = \"tcp://192.168.77.2:{}\"\n", server.port());
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), "static", &spec)?;
    let vm = boot_with_drive("static_address_on_a_second_nic_by_mac", &drive, |config| {
        config
            .network()
            .arg("-netdev")
            .arg("user,id=n1,net=192.168.77.0/24")
            .arg("-device")
            .arg("virtio-net-pci,netdev=n1,mac=52:54:00:00:77:02")
    })?;
    let line = vm.wait_for("network eth1", timeouts::PVH_READY)?;
    ensure!(line.contains("network eth1 192.168.77.9/24,fd77::9/64 static"), "unexpected: {line}");
    vm.wait_for("network eth0 10.0.2.15/24 dhcp", timeouts::PVH_READY)?;
    ensure!(!vm.console().contains("keel: error"), "errors on the console:\n{}", vm.console());
    // The first report after both links are configured.
    let route = vm.wait_for("probe | route:", timeouts::CONTAINER)?;
    ensure!(route.contains("route: 10.77.0.0/16 via 192.168.77.2 dev eth1"), "static route missing: {route}");
    let dns = vm.wait_for("probe | dns:", timeouts::CONTAINER)?;
    ensure!(dns.contains("nameserver 192.168.77.3"), "static name server missing from resolv.conf: {dns}");
    ensure!(
        server.wait_for("network eth1 192.168.77.9/24", timeouts::PVH_READY),
        "nothing reached the host through the static address; it got: {:?}",
        server.text()
    );
    Ok(())
}

/// A rogue DHCP server (QEMU's own, told to) sends option 15 `corp\nnameserver 203.0.113.53` and an option 12
/// with a newline on eth0, a link with a static `dns`; eth1's server sends a proper `corp.example`. The generated
/// resolv.conf has exactly the intended lines: eth1's search domain and name server, eth0's static name server.
#[test]
fn a_rogue_dhcp_domain_name_adds_no_line_to_resolv_conf() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let user_data = r#"
[[network.interface]]
name = "eth0"
dhcp = true
dns = ["192.0.2.53"]

[[network.interface]]
mac = "52:54:00:00:77:02"
dhcp = true

# Reports the generated resolv.conf, one line per report, its lines joined with '|'.
[containers.probe]
image = "keel/busybox"
network = "host"
volumes = ["/run/keel/etc:/hostetc:ro"]
command = ["sh", "-c", "while true; do echo resolv: $(grep -v '^#' /hostetc/resolv.conf | tr '\\n' '|'); sleep 1; done"]
"#;
    let spec = DriveSpec { user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch.path(), "rogue-dhcp", &spec)?;
    let vm = boot_with_drive("a_rogue_dhcp_domain_name", &drive, |config| {
        // QEMU's DHCP server puts `domainname` and `hostname` into options 15 and 12 byte for byte.
        config
            .arg("-netdev")
            .arg("user,id=n0,domainname=corp\nnameserver 203.0.113.53,hostname=evil\n127.0.0.1 registry")
            .arg("-device")
            .arg("virtio-net-pci,netdev=n0")
            .arg("-netdev")
            .arg("user,id=n1,net=192.168.77.0/24,domainname=corp.example")
            .arg("-device")
            .arg("virtio-net-pci,netdev=n1,mac=52:54:00:00:77:02")
    })?;
    vm.wait_for_anywhere("dhcp eth0: lease", timeouts::PVH_READY)?;
    vm.wait_for_anywhere("dhcp eth1: lease", timeouts::PVH_READY)?;
    let dropped = vm.wait_for_anywhere("dropping option 15 (domain name) from server 10.0.2.2", timeouts::PVH_READY)?;
    ensure!(dropped.contains("corp\\nnameserver 203.0.113.53"), "the warning does not show the name: {dropped}");
    vm.wait_for_anywhere("dropping option 12 (host name) from server 10.0.2.2", timeouts::PVH_READY)?;
    // A report printed a full round after both leases were in.
    let reports = |console: &str| console.lines().filter(|line| line.contains("probe | resolv:")).count();
    let seen = reports(&vm.console());
    let deadline = std::time::Instant::now() + timeouts::CONTAINER;
    while reports(&vm.console()) < seen + 2 {
        ensure!(std::time::Instant::now() < deadline, "no probe report:\n{}", vm.console());
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let console = vm.console();
    let report = console.lines().rfind(|line| line.contains("probe | resolv:")).unwrap_or_default();
    let written = report.split("resolv: ").nth(1).unwrap_or_default().trim();
    println!("{dropped}\nresolv.conf: {written}");
    ensure!(
        written == "search corp.example|nameserver 192.168.77.3|nameserver 192.0.2.53|",
        "resolv.conf is not exactly the intended lines: {written:?}\n{console}"
    );
    Ok(())
}

#[test]
fn config_drives_in_every_format_and_layout() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    for (format, layout) in [("vfat", "nocloud"), ("iso9660", "nocloud"), ("vfat", "config-2"), ("iso9660", "config-2")]
    {
        let hostname = format!("{}-{}", format.replace("9660", ""), layout.replace('-', ""));
        let user_data = format!("[host]\nhostname = \"{hostname}\"\n");
        let spec = DriveSpec { user_data: &user_data, meta_data: None, format, layout };
        let drive = config_drive::build(scratch.path(), &hostname, &spec)?;
        let vm = boot_with_drive(&format!("config_drive_{format}_{layout}"), &drive, |config| config)?;
        let console = vm.console();
        ensure!(console.contains(&format!("host {hostname}")), "{format}/{layout}: host name not applied:\n{console}");
        ensure!(console.contains("config generation 1 ("), "{format}/{layout}: no generation line:\n{console}");
    }
    Ok(())
}

#[test]
fn config_drive_on_a_partition_of_a_second_disk() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let spec = DriveSpec {
        user_data: "[host]\nhostname = \"on-a-partition\"\n",
        meta_data: None,
        format: "vfat",
        layout: "nocloud",
    };
    let filesystem = config_drive::build(scratch.path(), "partition", &spec)?;
    let disk = scratch.path().join("partitioned.img");
    keel_qemu_tests::disk::partitioned_disk(&filesystem, "cidata", &disk)?;
    let vm = boot_with_drive("config_drive_on_a_partition", &disk, |config| config)?;
    let console = vm.console();
    ensure!(console.contains("host on-a-partition"), "the drive on vdb2 was not found:\n{console}");
    ensure!(console.contains("from /dev/vdb2"), "the config did not come from the second partition:\n{console}");
    Ok(())
}

#[test]
fn host_name_from_meta_data() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let spec = DriveSpec {
        user_data: "",
        meta_data: Some("instance-id: iid-42\nlocal-hostname: from-meta\n"),
        format: "iso9660",
        layout: "nocloud",
    };
    let drive = config_drive::build(scratch.path(), "meta", &spec)?;
    let vm = boot_with_drive("host_name_from_meta_data", &drive, |config| config)?;
    let console = vm.console();
    ensure!(console.contains("host from-meta"), "meta-data host name not applied:\n{console}");
    Ok(())
}

/// A disk (qcow2 over keel.img, in `scratch`) whose data partition holds config generation 1, host name
/// `good-one`: booted once, as `name`, with a good config drive, and powered off.
fn disk_with_a_good_generation(scratch: &Path, artifacts: &Artifacts, name: &str) -> Result<PathBuf> {
    let disk = scratch.join("disk.qcow2");
    keel_qemu_tests::disk::create_overlay(&artifacts.image, DiskFormat::Raw, &disk)?;
    let good = DriveSpec {
        user_data: "[host]\nhostname = \"good-one\"\n",
        meta_data: None,
        format: "vfat",
        layout: "nocloud",
    };
    let good_drive = config_drive::build(scratch, "good", &good)?;
    let first = Vm::start(
        VmConfig::pvh(name, artifacts)
            .no_disks()
            .disk_file(&disk, DiskFormat::Qcow2)
            .disk_file(&good_drive, DiskFormat::Raw),
    )?;
    first.wait_for_ready(timeouts::PVH_READY)?;
    ensure!(first.console().contains("host good-one"), "first boot:\n{}", first.console());
    first.power_down()?;
    first.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(disk)
}

#[test]
fn invalid_user_data_keeps_the_last_accepted_generation_across_reboots() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let artifacts = artifacts();
    // One disk for all three boots: the generations live on its data partition.
    let disk = disk_with_a_good_generation(scratch.path(), &artifacts, "invalid_user_data_first_boot")?;

    let bad_text = "[host]\nhostname = \"bad_name\"\nhostnme = \"x\"\n\n[containers.web]\nimage = \"nginx\"\nrestart = \"sometimes\"\n";
    let bad_drive = config_drive::write_unchecked_vfat(scratch.path(), "bad", bad_text)?;
    let vm = Vm::start(
        VmConfig::pvh("invalid_user_data_keeps_the_last_generation", &artifacts)
            .no_disks()
            .disk_file(&disk, DiskFormat::Qcow2)
            .disk_file(&bad_drive, DiskFormat::Raw)
            .no_reboot(false),
    )?;
    for boot in ["after the bad drive", "after a reboot with the bad drive"] {
        let ready = vm.wait_for_ready(timeouts::PVH_READY)?;
        let console = vm.console();
        let last_boot = &console[console.rfind("init-started").unwrap_or(0)..];
        for expected in [
            "keel: error: user-data:2:12: host.hostname: host name \"bad_name\" has an invalid label",
            "keel: error: user-data:3:1: host.hostnme: unknown key; expected one of hostname, shutdown_timeout, default_ulimits",
            "keel: error: user-data:7:11: containers.web.restart: \"sometimes\" is not one of no, on-failure[:N], always, unless-stopped",
            "config generation 1 (",
        ] {
            ensure!(last_boot.contains(expected), "{boot}: missing {expected:?} in:\n{last_boot}");
        }
        ensure!(ready.contains("host good-one"), "{boot}: the last accepted generation was not used: {ready}");
        // Ctrl-Alt-Del reboots through PID 1's shutdown (the kernel hands the keys to PID 1 as SIGINT), which
        // unmounts /var before reboot(2); QEMU without -no-reboot starts the guest again with the same disks.
        vm.ctrl_alt_del()?;
        vm.wait_for("keel: shutdown: reboot (Ctrl-Alt-Del)", timeouts::SHUTDOWN)?;
        vm.wait_for("keel: unmounted /var", timeouts::SHUTDOWN)?;
        vm.wait_for("keel: rebooting", timeouts::SHUTDOWN)?;
    }
    Ok(())
}

#[test]
fn a_1_gib_user_data_is_refused_and_the_last_accepted_generation_used() -> Result<()> {
    let scratch = tempfile::tempdir()?;
    let artifacts = artifacts();
    let disk = disk_with_a_good_generation(scratch.path(), &artifacts, "huge_user_data_first_boot")?;

    // 1 GiB of user-data: what PID 1 would have held in memory had it read the file whole.
    let huge = scratch.path().join("huge.user-data");
    std::fs::File::create(&huge)?.set_len(1 << 30)?;
    let huge_drive = config_drive::vfat_with_user_data_file(scratch.path(), "huge", &huge, (1 << 20) + (128 << 10))?;
    std::fs::remove_file(&huge)?;
    let vm = Vm::start(
        VmConfig::pvh("huge_user_data_keeps_the_last_generation", &artifacts)
            .no_disks()
            .disk_file(&disk, DiskFormat::Qcow2)
            .disk_file(&huge_drive, DiskFormat::Raw),
    )?;
    let ready = vm.wait_for_ready(timeouts::PVH_READY)?;
    let console = vm.console();
    for expected in
        ["cannot read user-data on /dev/", "user-data is larger than 1048576 bytes", "config generation 1 ("]
    {
        ensure!(console.contains(expected), "missing {expected:?} in:\n{console}");
    }
    ensure!(ready.contains("host good-one"), "the last accepted generation was not used: {ready}");
    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    Ok(())
}
