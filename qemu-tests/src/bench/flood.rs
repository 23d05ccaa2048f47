//! The log-flood boot (issue 11): a container writes `/dev/zero` to stdout for [`FLOOD_SECONDS`] while another
//! ticks once a second; a `meter` container reads PID 1's VmHWM through the host's /proc, and every line is relayed
//! to a syslog receiver on the host that counts what arrives. Used by the QEMU test and by `keel-bench`.

use std::collections::HashMap;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};

use super::keel::container_output;
use crate::artifacts::Artifacts;
use crate::config_drive::{self, DriveSpec};
use crate::disk::DiskFormat;
use crate::timeouts;
use crate::vm::{Vm, VmConfig};

/// How long the flood container writes.
pub const FLOOD_SECONDS: u64 = 60;
pub const FLOOD: &str = "flood";
pub const TICK: &str = "tick";
const METER: &str = "meter";

/// The user-data: the flood, the ticker, the meter, and the relay to `syslog_port` on the host (10.0.2.2).
pub fn user_data(syslog_port: u16) -> String {
    format!(
        r#"[syslog]
target = "tcp://10.0.2.2:{syslog_port}"

[containers.{FLOOD}]
image = "keel/busybox"
command = ["sh", "-c", "timeout {FLOOD_SECONDS} cat /dev/zero; echo flood done"]

[containers.{TICK}]
image = "keel/busybox"
command = ["sh", "-c", "i=0; while true; do i=$((i+1)); echo tick $i; sleep 1; done"]
init = true

[containers.{METER}]
image = "keel/busybox"
command = ["sh", "-c", "while true; do while read -r k v _; do [ \"$k\" = VmHWM: ] && echo \"pid1 hwm $v\"; done < /hostproc/1/status; sleep 5; done"]
volumes = ["/proc:/hostproc:ro"]
init = true
"#
    )
}

/// What one flood boot measured.
#[derive(Debug)]
pub struct FloodRun {
    /// PID 1's VmHWM after the flood ended, in KiB (the meter's last report).
    pub pid1_hwm_kib: u64,
    /// Host wall time from the flood's start to its exit, as PID 1 logged them.
    pub flood_wall: Duration,
    /// Tick numbers shown on the console while the flood ran.
    pub ticks_on_console: Vec<u64>,
    /// Flood lines shown on the console (cut at 2 KiB each).
    pub flood_lines_on_console: usize,
    /// Sum of PID 1's `console dropped N lines` reports.
    pub console_dropped: u64,
    /// Syslog frames and bytes from the flood that reached the host while it ran.
    pub relayed_flood_frames: u64,
    pub relayed_flood_bytes: u64,
    /// Tick lines that reached the host's syslog receiver while the flood ran.
    pub relayed_ticks: u64,
    /// The whole console, for messages.
    pub console: String,
}

/// Boots the flood, waits for it to end and the meter's next report, powers off and checks a clean shutdown.
pub fn run(artifacts: &Artifacts, scratch: &Path, name: &str) -> Result<FloodRun> {
    let receiver = CountingSyslog::start().context("the host's syslog receiver")?;
    let user_data = user_data(receiver.port);
    let spec = DriveSpec { user_data: &user_data, meta_data: None, format: "vfat", layout: "nocloud" };
    let drive = config_drive::build(scratch, name, &spec)?;
    let vm = Vm::start(VmConfig::pvh(name, artifacts).network().disk_file(&drive, DiskFormat::Raw))?;
    vm.wait_for_ready(timeouts::PVH_READY)?;

    vm.wait_for(&format!("keel: {FLOOD}: started"), timeouts::CONTAINER)?;
    let started = Instant::now();
    let before = receiver.counts();
    let flood_end = Duration::from_secs(FLOOD_SECONDS) + timeouts::CONTAINER;
    vm.wait_for(&format!("keel: {FLOOD}: exited with"), flood_end)?;
    let flood_wall = started.elapsed();
    let during = receiver.counts().since(&before);
    // The meter reports every 5 s: its next line comes after the flood.
    let report = vm.wait_for_line("the meter's report after the flood", timeouts::CONTAINER, |line| {
        container_output(line, METER).is_some_and(|text| text.starts_with("pid1 hwm "))
    })?;
    let pid1_hwm_kib = container_output(&report, METER)
        .and_then(|text| text.strip_prefix("pid1 hwm "))
        .and_then(|kib| kib.trim().parse().ok())
        .with_context(|| format!("bad meter line {report:?}"))?;

    vm.power_down()?;
    vm.wait_for_exit(timeouts::SHUTDOWN)?;
    let console = vm.console();
    ensure!(console.contains("keel: unmounted /var"), "no clean shutdown:\n{}", tail(&console));
    ensure!(!console.contains("Kernel panic"), "kernel panic:\n{}", tail(&console));

    let start_marker = format!("keel: {FLOOD}: started");
    let end_marker = format!("keel: {FLOOD}: exited with");
    let during_flood =
        console.lines().skip_while(|line| !line.contains(&start_marker)).take_while(|line| !line.contains(&end_marker));
    let mut ticks_on_console = Vec::new();
    let mut flood_lines_on_console = 0;
    for line in during_flood {
        if let Some(number) = container_output(line, TICK).and_then(|text| text.strip_prefix("tick ")) {
            ticks_on_console.extend(number.trim().parse::<u64>().ok());
        } else if container_output(line, FLOOD).is_some() {
            flood_lines_on_console += 1;
        }
    }
    let console_dropped = console
        .lines()
        .filter_map(|line| {
            line.split("keel: console dropped ").nth(1)?.strip_suffix(" lines")?.trim().parse::<u64>().ok()
        })
        .sum();
    Ok(FloodRun {
        pid1_hwm_kib,
        flood_wall,
        ticks_on_console,
        flood_lines_on_console,
        console_dropped,
        relayed_flood_frames: during.frames(FLOOD),
        relayed_flood_bytes: during.bytes(FLOOD),
        relayed_ticks: during.frames(TICK),
        console,
    })
}

fn tail(console: &str) -> String {
    let lines: Vec<&str> = console.lines().collect();
    lines[lines.len().saturating_sub(40)..].join("\n")
}

/// Frames and bytes per APP-NAME.
#[derive(Debug, Clone, Default)]
pub struct Counts(HashMap<String, (u64, u64)>);

impl Counts {
    fn since(&self, before: &Counts) -> Counts {
        let mut counts = self.clone();
        for (app, (frames, bytes)) in &before.0 {
            if let Some(entry) = counts.0.get_mut(app) {
                entry.0 -= frames;
                entry.1 -= bytes;
            }
        }
        counts
    }

    pub fn frames(&self, app: &str) -> u64 {
        self.0.get(app).map_or(0, |entry| entry.0)
    }

    pub fn bytes(&self, app: &str) -> u64 {
        self.0.get(app).map_or(0, |entry| entry.1)
    }
}

/// A syslog receiver for RFC 5424 over TCP with octet-counting framing that counts frames and bytes per
/// APP-NAME instead of keeping them: a flood relays hundreds of MiB.
struct CountingSyslog {
    port: u16,
    counts: Arc<Mutex<Counts>>,
}

impl CountingSyslog {
    fn start() -> std::io::Result<CountingSyslog> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let counts = Arc::new(Mutex::new(Counts::default()));
        let shared = Arc::clone(&counts);
        // The acceptor and its readers end with the process (the bench and the test are short-lived).
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || count_frames(stream, &shared));
            }
        });
        Ok(CountingSyslog { port, counts })
    }

    fn counts(&self) -> Counts {
        self.counts.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }
}

/// Reads `LEN SP MSG` frames; keeps the first bytes of each to find its APP-NAME (the 4th field after the PRI and
/// version: `<PRI>1 TIMESTAMP HOSTNAME APP-NAME …`).
fn count_frames(mut stream: TcpStream, counts: &Mutex<Counts>) {
    let mut buffer = vec![0u8; 64 << 10];
    let mut length: Option<usize> = None;
    let mut digits = 0usize;
    let mut remaining = 0usize;
    let mut head = Vec::new();
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            return;
        }
        let mut at = 0;
        while at < read {
            match length {
                None => {
                    let byte = buffer[at];
                    at += 1;
                    if byte.is_ascii_digit() {
                        digits = digits.saturating_mul(10).saturating_add(usize::from(byte - b'0'));
                    } else if byte == b' ' {
                        length = Some(digits);
                        remaining = digits;
                        digits = 0;
                        head.clear();
                    }
                }
                Some(total) => {
                    let take = remaining.min(read - at);
                    let room = 128usize.saturating_sub(head.len()).min(take);
                    head.extend_from_slice(&buffer[at..at + room]);
                    at += take;
                    remaining -= take;
                    if remaining == 0 {
                        let text = String::from_utf8_lossy(&head);
                        let app = text.split(' ').nth(3).unwrap_or("-").to_owned();
                        let mut counts = counts.lock().unwrap_or_else(PoisonError::into_inner);
                        let entry = counts.0.entry(app).or_default();
                        entry.0 += 1;
                        entry.1 += total as u64;
                        length = None;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    #[test]
    fn counts_octet_counted_frames_per_app_name() {
        let receiver = CountingSyslog::start().unwrap();
        let mut stream = TcpStream::connect(("127.0.0.1", receiver.port)).unwrap();
        let frame = |app: &str, message: &str| {
            let body = format!("<14>1 2026-01-01T00:00:00Z host {app} - - - {message}");
            format!("{} {body}", body.len())
        };
        let big = "x".repeat(100_000);
        let text = format!("{}{}{}", frame("tick", "tick 1"), frame("flood", &big), frame("tick", "tick 2"));
        // In small writes, so that frames straddle reads.
        for chunk in text.as_bytes().chunks(333) {
            stream.write_all(chunk).unwrap();
        }
        drop(stream);
        let deadline = Instant::now() + Duration::from_secs(10);
        while receiver.counts().frames("tick") < 2 {
            assert!(Instant::now() < deadline, "{:?}", receiver.counts());
            std::thread::sleep(Duration::from_millis(10));
        }
        let counts = receiver.counts();
        assert_eq!(counts.frames("flood"), 1);
        assert!(counts.bytes("flood") > 100_000);
    }

    #[test]
    fn the_flood_user_data_is_valid() {
        let user_data = keel_config::UserData::parse("flood", &user_data(514)).unwrap();
        assert_eq!(user_data.containers.len(), 3);
    }
}
