//! Harness that boots keel images under QEMU (TCG) and checks them from the serial console and QMP.
//!
//! # Background
//!
//! keel's PID 1, boot chain and A/B logic can only be tested in a VM: the guest kernel, its modules and the
//! firmware are part of what is under test. KVM is unavailable on the build machine, so every VM runs under TCG;
//! a PVH direct boot takes ~4–5 s to `keel: ready`, the OVMF + systemd-boot chain ~15 s.
//!
//! # Design
//!
//! * [`artifacts`] finds `keel.img` and `boot/{vmlinux,initrd.img,cmdline}` in `$KEEL_BUILD_DIR` (default
//!   `<workspace>/build`) and runs `make image` once per process so a clean tree builds first.
//! * [`vm`] starts one QEMU per test from a [`vm::VmConfig`]: each disk is a qcow2 overlay in the VM's temp dir,
//!   so the shared image is never written. Reader threads collect the serial console ([`console`]) into memory
//!   and `<build>/test-logs/<name>.log`; tests wait on console lines (condition variable, expect-style cursor).
//!   Dropping the [`vm::Vm`] SIGKILLs and reaps QEMU, also when the test panics.
//! * [`qmp`] is a small synchronous QMP client (power button, status queries).
//! * [`timeline`] parses PID 1's `keel: <ms>ms <stage>` lines; `keel-bench` reports them.
//!
//! # Current limitations
//!
//! * Only complete console lines are matched; a prompt without a newline cannot be waited for yet.
//! * Disk overlays assume a raw base image.
//! * One vCPU per VM, and the caller limits concurrency (`--test-threads=2` on a 2-core machine).
//!
//! # Example
//!
//! ```no_run
//! use keel_qemu_tests::{artifacts, timeouts, vm::{Vm, VmConfig}};
//!
//! let artifacts = artifacts::ensure_built()?;
//! let vm = Vm::start(VmConfig::pvh("example", &artifacts).kernel_arg("keel.rootwait=5"))?;
//! vm.wait_for_ready(timeouts::PVH_READY)?;
//! vm.power_down()?;
//! vm.wait_for_exit(timeouts::SHUTDOWN)?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod artifacts;
pub mod bench;
pub mod config_drive;
pub mod console;
pub mod disk;
pub mod esp;
pub mod qmp;
pub mod tcp_collector;
pub mod timeline;
pub mod timeouts;
pub mod update_kit;
pub mod update_server;
pub mod vm;
