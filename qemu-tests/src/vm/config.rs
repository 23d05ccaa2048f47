//! Describes one VM (boot path, disks, memory, network, extra arguments) and turns it into QEMU arguments.

use std::ffi::OsString;
use std::path::{Path, PathBuf};

use crate::artifacts::Artifacts;
use crate::disk::DiskFormat;

/// Default guest memory.
pub const DEFAULT_MEMORY_MIB: u32 = 512;
/// Debian's OVMF firmware (read-only code) and its NVRAM template (copied per VM).
pub const OVMF_CODE: &str = "/usr/share/OVMF/OVMF_CODE.fd";
pub const OVMF_VARS: &str = "/usr/share/OVMF/OVMF_VARS.fd";

/// How the guest kernel is started.
#[derive(Debug, Clone)]
pub enum Boot {
    /// Direct PVH boot of the uncompressed kernel ELF (`-kernel vmlinux -initrd … -append …`): ~4 s under TCG.
    Pvh { kernel: PathBuf, initrd: PathBuf, cmdline: String },
    /// The full chain from disk: OVMF, then systemd-boot on the ESP, then the kernel of the chosen entry: ~15 s.
    Ovmf,
}

/// Where a virtio disk's data comes from.
#[derive(Debug, Clone)]
pub enum Disk {
    /// A fresh qcow2 overlay over `base` in the VM's temp dir: the base file is never written.
    Overlay { base: PathBuf, format: DiskFormat },
    /// The file itself, written in place (e.g. a per-test copy the test inspects afterwards).
    File { path: PathBuf, format: DiskFormat },
}

/// Builder for a VM; `Vm::start` consumes it.
#[derive(Debug, Clone)]
pub struct VmConfig {
    pub(crate) name: String,
    pub(crate) boot: Boot,
    pub(crate) disks: Vec<Disk>,
    pub(crate) memory_mib: u32,
    pub(crate) no_reboot: bool,
    pub(crate) kernel_args: Vec<String>,
    pub(crate) network: bool,
    pub(crate) host_forwards: Vec<(u16, u16)>,
    pub(crate) extra_args: Vec<OsString>,
    pub(crate) log_dir: Option<PathBuf>,
}

impl VmConfig {
    /// A VM named `name` (used for the log file `<log_dir>/<name>.log`) with no disks.
    pub fn new(name: impl Into<String>, boot: Boot) -> Self {
        Self {
            name: name.into(),
            boot,
            disks: Vec::new(),
            memory_mib: DEFAULT_MEMORY_MIB,
            no_reboot: true,
            kernel_args: Vec::new(),
            network: false,
            host_forwards: Vec::new(),
            extra_args: Vec::new(),
            log_dir: None,
        }
    }

    /// PVH direct boot of slot a's kernel, initrd and command line, with an overlay over `keel.img`.
    pub fn pvh(name: impl Into<String>, artifacts: &Artifacts) -> Self {
        let boot = Boot::Pvh {
            kernel: artifacts.vmlinux.clone(),
            initrd: artifacts.initrd.clone(),
            cmdline: artifacts.cmdline.clone(),
        };
        Self::new(name, boot).disk_overlay(&artifacts.image).log_dir(artifacts.log_dir())
    }

    /// OVMF + systemd-boot from an overlay over `keel.img`.
    pub fn ovmf(name: impl Into<String>, artifacts: &Artifacts) -> Self {
        Self::new(name, Boot::Ovmf).disk_overlay(&artifacts.image).log_dir(artifacts.log_dir())
    }

    /// Drops all disks configured so far (e.g. to replace the default overlay with a test's own file).
    pub fn no_disks(mut self) -> Self {
        self.disks.clear();
        self
    }

    /// Adds a virtio disk that is a qcow2 overlay over the raw image `base`.
    pub fn disk_overlay(mut self, base: impl Into<PathBuf>) -> Self {
        self.disks.push(Disk::Overlay { base: base.into(), format: DiskFormat::Raw });
        self
    }

    /// Adds a virtio disk backed by `path` itself; the guest writes to it.
    pub fn disk_file(mut self, path: impl Into<PathBuf>, format: DiskFormat) -> Self {
        self.disks.push(Disk::File { path: path.into(), format });
        self
    }

    pub fn memory_mib(mut self, mib: u32) -> Self {
        self.memory_mib = mib;
        self
    }

    /// With `true` (the default) a guest reboot makes QEMU exit instead of resetting the machine.
    pub fn no_reboot(mut self, no_reboot: bool) -> Self {
        self.no_reboot = no_reboot;
        self
    }

    /// Appends `arg` to the kernel command line (PVH only; under OVMF the boot entry decides).
    pub fn kernel_arg(mut self, arg: impl Into<String>) -> Self {
        self.kernel_args.push(arg.into());
        self
    }

    /// Adds a virtio-net NIC on QEMU user-mode networking (DHCP, NAT to the host).
    pub fn network(mut self) -> Self {
        self.network = true;
        self
    }

    /// Forwards `127.0.0.1:host_port` to the guest's `guest_port` over TCP (implies `network`).
    pub fn forward_tcp(mut self, host_port: u16, guest_port: u16) -> Self {
        self.network = true;
        self.host_forwards.push((host_port, guest_port));
        self
    }

    /// Appends raw QEMU arguments after all generated ones.
    pub fn arg(mut self, arg: impl Into<OsString>) -> Self {
        self.extra_args.push(arg.into());
        self
    }

    /// Directory for the console log `<name>.log`; without one, the console is kept in memory only.
    pub fn log_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.log_dir = Some(dir.into());
        self
    }

    /// The VM's name, as used for its log file.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The QEMU arguments for this VM, given its runtime dir and the resolved disk files (path, format).
    pub(crate) fn qemu_args(&self, run_dir: &Path, disks: &[(PathBuf, DiskFormat)]) -> Vec<OsString> {
        let mut args: Vec<OsString> = Vec::new();
        let mut push = |parts: &[&str]| args.extend(parts.iter().map(OsString::from));
        push(&["-accel", "tcg", "-machine", "q35", "-nodefaults", "-display", "none", "-serial", "stdio"]);
        push(&["-m", &format!("{}M", self.memory_mib)]);
        push(&["-qmp", &format!("unix:{},server=on,wait=off", escape(&run_dir.join("qmp.sock")))]);
        if self.no_reboot {
            push(&["-no-reboot"]);
        }
        match &self.boot {
            Boot::Pvh { kernel, initrd, cmdline } => {
                let mut line = cmdline.clone();
                for arg in &self.kernel_args {
                    line.push(' ');
                    line.push_str(arg);
                }
                args.extend(["-kernel".into(), kernel.into(), "-initrd".into(), initrd.into()]);
                args.extend(["-append".into(), line.into()]);
            }
            Boot::Ovmf => {
                let vars = escape(&run_dir.join("OVMF_VARS.fd"));
                args.extend([
                    "-drive".into(),
                    format!("if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on").into(),
                ]);
                args.extend(["-drive".into(), format!("if=pflash,format=raw,unit=1,file={vars}").into()]);
            }
        }
        for (index, (path, format)) in disks.iter().enumerate() {
            let drive = format!("file={},format={},if=none,id=disk{index}", escape(path), format.as_str());
            // OVMF's NVRAM may hold stale boot entries; bootindex makes the first disk win regardless.
            let boot_index = if index == 0 && matches!(self.boot, Boot::Ovmf) { ",bootindex=0" } else { "" };
            let device = format!("virtio-blk-pci,drive=disk{index}{boot_index}");
            args.extend(["-drive".into(), drive.into(), "-device".into(), device.into()]);
        }
        if self.network {
            let mut netdev = String::from("user,id=n0");
            for (host, guest) in &self.host_forwards {
                netdev.push_str(&format!(",hostfwd=tcp:127.0.0.1:{host}-:{guest}"));
            }
            args.extend(["-netdev".into(), netdev.into(), "-device".into(), "virtio-net-pci,netdev=n0".into()]);
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// QEMU's option syntax splits on commas; a literal comma in a value is written twice.
fn escape(path: &Path) -> String {
    path.display().to_string().replace(',', ",,")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn joined(args: &[OsString]) -> String {
        args.iter().map(|a| a.to_string_lossy().into_owned()).collect::<Vec<_>>().join(" ")
    }

    #[test]
    fn pvh_arguments() {
        let boot =
            Boot::Pvh { kernel: "/b/vmlinux".into(), initrd: "/b/initrd.img".into(), cmdline: "console=ttyS0".into() };
        let config = VmConfig::new("t", boot).kernel_arg("keel.rootwait=5").forward_tcp(8080, 80).arg("-smp").arg("2");
        let args = config.qemu_args(Path::new("/run/vm"), &[("/run/vm/disk0.qcow2".into(), DiskFormat::Qcow2)]);
        let line = joined(&args);
        assert!(line.starts_with("-accel tcg -machine q35 -nodefaults -display none -serial stdio -m 512M"));
        assert!(line.contains("-qmp unix:/run/vm/qmp.sock,server=on,wait=off -no-reboot"));
        assert!(line.contains("-kernel /b/vmlinux -initrd /b/initrd.img"));
        let append = args.iter().position(|a| a == "-append").map(|i| args[i + 1].clone());
        assert_eq!(append, Some("console=ttyS0 keel.rootwait=5".into()));
        assert!(line.contains(
            "-drive file=/run/vm/disk0.qcow2,format=qcow2,if=none,id=disk0 -device virtio-blk-pci,drive=disk0 "
        ));
        assert!(line.contains("-netdev user,id=n0,hostfwd=tcp:127.0.0.1:8080-:80 -device virtio-net-pci,netdev=n0"));
        assert!(line.ends_with("-smp 2"));
    }

    #[test]
    fn ovmf_arguments() {
        let config = VmConfig::new("t", Boot::Ovmf).no_reboot(false).memory_mib(1024);
        let line = joined(&config.qemu_args(Path::new("/r,x"), &[("/r,x/d.img".into(), DiskFormat::Raw)]));
        assert!(!line.contains("-no-reboot") && !line.contains("-kernel"));
        assert!(line.contains("-m 1024M"));
        assert!(line.contains(&format!("if=pflash,format=raw,unit=0,file={OVMF_CODE},readonly=on")));
        assert!(line.contains("if=pflash,format=raw,unit=1,file=/r,,x/OVMF_VARS.fd"));
        assert!(line.contains("-device virtio-blk-pci,drive=disk0,bootindex=0"));
    }
}
