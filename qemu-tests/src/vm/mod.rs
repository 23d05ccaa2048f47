//! Runs one QEMU VM for a test: spawns it, watches its serial console, talks QMP, and kills it on drop.

mod config;

pub use config::{Boot, Disk, VmConfig, DEFAULT_MEMORY_MIB, OVMF_CODE, OVMF_VARS};

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::console::{Console, ConsoleError, Stream};
use crate::disk::{self, DiskError, DiskFormat};
use crate::qmp::{QmpClient, QmpError};
use crate::timeline;

/// The QEMU binary.
pub const QEMU: &str = "qemu-system-x86_64";
/// Set to `1` to echo every VM's console to stderr as it arrives.
pub const ECHO_ENV: &str = "KEEL_TEST_ECHO";
/// Bound on waiting for QEMU's QMP socket to appear.
const QMP_CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Why starting, driving or stopping a VM failed.
#[derive(Debug, thiserror::Error)]
pub enum VmError {
    #[error("creating the temp dir for VM {name}")]
    TempDir {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("preparing disk {index} of VM {name}")]
    PrepareDisk {
        name: String,
        index: usize,
        #[source]
        source: DiskError,
    },
    #[error("copying the OVMF NVRAM template {OVMF_VARS} for VM {name}")]
    CopyOvmfVars {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("creating the console log {}", path.display())]
    CreateLog {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("spawning {QEMU} for VM {name}")]
    Spawn {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("VM {name}: waiting on the console")]
    Console {
        name: String,
        #[source]
        source: ConsoleError,
    },
    #[error("VM {name}: QEMU did not exit within {timeout:?}; last console lines:\n{tail}")]
    ExitTimeout { name: String, timeout: Duration, tail: String },
    #[error("VM {name}: collecting QEMU's exit status")]
    Reap {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("VM {name}: writing to the serial console")]
    SendConsole {
        name: String,
        #[source]
        source: io::Error,
    },
    #[error("VM {name}: QMP")]
    Qmp {
        name: String,
        #[source]
        source: QmpError,
    },
}

/// A running QEMU VM. Dropping it kills QEMU (SIGKILL) and reaps it, also when the test panics.
pub struct Vm {
    name: String,
    child: Mutex<Child>,
    stdin: Mutex<Option<ChildStdin>>,
    console: Arc<Console>,
    readers: Vec<JoinHandle<()>>,
    qmp: Mutex<Option<QmpClient>>,
    // Removed on drop, after QEMU is gone: holds the QMP socket, overlays and the NVRAM copy.
    run_dir: TempDir,
}

impl Vm {
    /// Prepares the disks and firmware files in a fresh temp dir, spawns QEMU and starts collecting its console.
    pub fn start(config: VmConfig) -> Result<Self, VmError> {
        let name = config.name.clone();
        let run_dir = tempfile::Builder::new()
            .prefix("keel-vm-")
            .tempdir()
            .map_err(|source| VmError::TempDir { name: name.clone(), source })?;
        let disks = prepare_disks(&config, run_dir.path())?;
        if matches!(config.boot, Boot::Ovmf) {
            std::fs::copy(OVMF_VARS, run_dir.path().join("OVMF_VARS.fd"))
                .map_err(|source| VmError::CopyOvmfVars { name: name.clone(), source })?;
        }
        let args = config.qemu_args(run_dir.path(), &disks);
        let log = open_log(&config, &args)?;
        let mut command = Command::new(QEMU);
        command.args(&args);
        Self::spawn(name, command, run_dir, log)
    }

    /// Runs a script that ends by exec'ing QEMU (as `make run` does), with `KEEL_RUN_DIR` set to the VM's temp dir,
    /// where the script must put the QMP socket as `qmp.sock`. The script's output is the console.
    pub fn start_script(name: &str, mut command: Command, log_dir: Option<&Path>) -> Result<Self, VmError> {
        let name = name.to_owned();
        let run_dir = tempfile::Builder::new()
            .prefix("keel-vm-")
            .tempdir()
            .map_err(|source| VmError::TempDir { name: name.clone(), source })?;
        command.env("KEEL_RUN_DIR", run_dir.path());
        let log = match log_dir {
            Some(dir) => {
                let path = dir.join(format!("{name}.log"));
                let create = std::fs::create_dir_all(dir).and_then(|()| File::create(&path));
                Some(create.map_err(|source| VmError::CreateLog { path, source })?)
            }
            None => None,
        };
        Self::spawn(name, command, run_dir, log)
    }

    fn spawn(name: String, mut command: Command, run_dir: TempDir, log: Option<File>) -> Result<Self, VmError> {
        let echo = std::env::var(ECHO_ENV).is_ok_and(|v| v == "1");
        let console = Arc::new(Console::new(log, echo));
        let mut child = command
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|source| VmError::Spawn { name: name.clone(), source })?;
        let mut readers = Vec::new();
        if let Some(stdout) = child.stdout.take() {
            let console = Arc::clone(&console);
            readers.push(std::thread::spawn(move || console.pump(stdout, Stream::Serial)));
        }
        if let Some(stderr) = child.stderr.take() {
            let console = Arc::clone(&console);
            readers.push(std::thread::spawn(move || console.pump(stderr, Stream::QemuStderr)));
        }
        let stdin = child.stdin.take();
        Ok(Self {
            name,
            child: Mutex::new(child),
            stdin: Mutex::new(stdin),
            console,
            readers,
            qmp: Mutex::new(None),
            run_dir,
        })
    }

    /// Waits for the next console line containing `marker` and returns it (expect-style: see `Console::wait_line`).
    pub fn wait_for(&self, marker: &str, timeout: Duration) -> Result<String, VmError> {
        self.wait_for_line(&format!("`{marker}`"), timeout, |line| line.contains(marker))
    }

    /// Waits until some console line since boot contains `marker`, also one printed before the lines waited for
    /// so far; the cursor of [`Vm::wait_for`] stays where it is.
    pub fn wait_for_anywhere(&self, marker: &str, timeout: Duration) -> Result<String, VmError> {
        self.console
            .wait_line_anywhere(&format!("`{marker}`"), timeout, |line| line.contains(marker))
            .map_err(|source| VmError::Console { name: self.name.clone(), source })
    }

    /// Waits for the next console line satisfying `matches`; `what` describes it in the error.
    pub fn wait_for_line(
        &self,
        what: &str,
        timeout: Duration,
        matches: impl Fn(&str) -> bool,
    ) -> Result<String, VmError> {
        self.console
            .wait_line(what, timeout, matches)
            .map_err(|source| VmError::Console { name: self.name.clone(), source })
    }

    /// Waits for PID 1's ready line (`keel: ready …` or the timeline stage `ready`).
    pub fn wait_for_ready(&self, timeout: Duration) -> Result<String, VmError> {
        self.wait_for_line("the `keel: ready` line", timeout, timeline::is_ready_line)
    }

    /// Waits until QEMU exits by itself (guest power-off, or reboot with `-no-reboot`) and returns its status.
    pub fn wait_for_exit(&self, timeout: Duration) -> Result<ExitStatus, VmError> {
        // QEMU's stdout closes when it exits; the console notices that without polling the process.
        if !self.console.wait_closed(timeout) {
            return Err(VmError::ExitTimeout { name: self.name.clone(), timeout, tail: self.console.tail() });
        }
        self.lock_child().wait().map_err(|source| VmError::Reap { name: self.name.clone(), source })
    }

    /// Everything the guest printed on the serial console so far.
    pub fn console(&self) -> String {
        self.console.text()
    }

    /// Writes `text` to the guest's serial console (its stdin), as typed; include `\n` to end a line.
    pub fn send_console(&self, text: &str) -> Result<(), VmError> {
        let mut stdin = self.stdin.lock().unwrap_or_else(|e| e.into_inner());
        let result = match stdin.as_mut() {
            Some(pipe) => pipe.write_all(text.as_bytes()).and_then(|()| pipe.flush()),
            None => Err(io::Error::new(io::ErrorKind::BrokenPipe, "QEMU's stdin is closed")),
        };
        result.map_err(|source| VmError::SendConsole { name: self.name.clone(), source })
    }

    /// Presses the ACPI power button (QMP `system_powerdown`).
    pub fn power_down(&self) -> Result<(), VmError> {
        self.qmp(json!({ "execute": "system_powerdown" })).map(drop)
    }

    /// Presses Ctrl-Alt-Del on the PS/2 keyboard (QMP `send-key`): the kernel hands it to PID 1, which reboots
    /// (keel, and systemd's `ctrl-alt-del.target`); with `-no-reboot` QEMU then exits.
    pub fn ctrl_alt_del(&self) -> Result<(), VmError> {
        let keys = ["ctrl", "alt", "delete"].map(|key| json!({"type": "qcode", "data": key}));
        self.qmp(json!({"execute": "send-key", "arguments": {"keys": keys}})).map(drop)
    }

    /// Runs a QMP command such as `{"execute": "query-status"}` and returns its `return` value.
    /// The QMP session is opened on first use.
    pub fn qmp(&self, command: Value) -> Result<Value, VmError> {
        let qmp_err = |source| VmError::Qmp { name: self.name.clone(), source };
        let mut session = self.qmp.lock().unwrap_or_else(|e| e.into_inner());
        let mut client = match session.take() {
            Some(client) => client,
            None => QmpClient::connect(&self.run_dir.path().join("qmp.sock"), QMP_CONNECT_TIMEOUT).map_err(qmp_err)?,
        };
        let result = client.execute(&command).map_err(qmp_err);
        *session = Some(client);
        result
    }

    /// The VM's name (and log file stem).
    pub fn name(&self) -> &str {
        &self.name
    }

    /// QEMU's process id.
    pub fn pid(&self) -> u32 {
        self.lock_child().id()
    }

    /// The VM's private temp dir (QMP socket, overlays, NVRAM copy); removed when the VM is dropped.
    pub fn run_dir(&self) -> &Path {
        self.run_dir.path()
    }

    fn lock_child(&self) -> MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap_or_else(|e| e.into_inner());
        // try_wait reaps an exited QEMU; only a still-unreaped pid is signalled, so the pid cannot be reused yet.
        if let Ok(None) = child.try_wait() {
            if let Ok(pid) = i32::try_from(child.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
            }
            let _ = child.wait();
        }
        // QEMU is gone, so its pipes are at EOF and the readers finish (flushing the log).
        for reader in self.readers.drain(..) {
            let _ = reader.join();
        }
    }
}

fn prepare_disks(config: &VmConfig, run_dir: &Path) -> Result<Vec<(PathBuf, DiskFormat)>, VmError> {
    let mut disks = Vec::new();
    for (index, disk) in config.disks.iter().enumerate() {
        match disk {
            Disk::Overlay { base, format } => {
                let overlay = run_dir.join(format!("disk{index}.qcow2"));
                disk::create_overlay(base, *format, &overlay).map_err(|source| VmError::PrepareDisk {
                    name: config.name.clone(),
                    index,
                    source,
                })?;
                disks.push((overlay, DiskFormat::Qcow2));
            }
            Disk::File { path, format } => disks.push((path.clone(), *format)),
        }
    }
    Ok(disks)
}

/// Creates `<log_dir>/<name>.log` (truncated), headed by the QEMU command line.
fn open_log(config: &VmConfig, args: &[std::ffi::OsString]) -> Result<Option<File>, VmError> {
    let Some(dir) = &config.log_dir else { return Ok(None) };
    let path = dir.join(format!("{}.log", config.name));
    let create = || -> io::Result<File> {
        std::fs::create_dir_all(dir)?;
        let mut file = File::create(&path)?;
        let shown: Vec<_> = args.iter().map(|a| a.to_string_lossy()).collect();
        writeln!(file, "# {QEMU} {}", shown.join(" "))?;
        Ok(file)
    };
    create().map(Some).map_err(|source| VmError::CreateLog { path: path.clone(), source })
}
