//! `make bench` for the syslog relay: a container printing 1,000,000 lines (`seq 1 1000000`) relayed by `keel
//! supervise` to a real rsyslogd over TCP on loopback, against the same number of lines, framed the same way
//! (RFC 5424, octet counting), written by this bench straight into the same rsyslogd's socket. Both are timed from
//! the request (the API's `start` of the printer, which already ran once at boot; the connect of the direct
//! writer) to the last line rsyslogd wrote: lines/s, and lines lost. Then the receiver
//! stops (SIGSTOP, a receiver that takes nothing) while the container prints another 1,000,000 lines: the extra
//! memory of the relaying process (VmHWM growth) and the drops it counted. Targets: ≥ 300,000 lines/s with none
//! lost while the receiver keeps up, ≤ 16 MiB extra while it does not.
//!
//! `keel supervise` runs the same LogRouter, queue and relay thread as PID 1. Run as root. `KEEL_BIN` names the
//! `keel` binary (default: the musl release build, else the host release build). Exit codes: 0 done, 111 a step
//! failed (the message says which).

use std::fs::File;
use std::io::{BufWriter, Read, Seek, SeekFrom, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context, Result};
use keel_fixtures::containers::{TestHost, BUSYBOX};
use keel_fixtures::rsyslog::Rsyslog;
use keel_fixtures::supervise::{api_request, KeelSupervise};

const LINES: u64 = 1_000_000;
/// A side is done when its count stops growing for this long.
const QUIET: Duration = Duration::from_secs(5);
const DEADLINE: Duration = Duration::from_secs(600);
const TARGET_LINES_PER_S: f64 = 300_000.0;
const TARGET_EXTRA_MIB: f64 = 16.0;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("keel-relay-bench: {error:#}");
            ExitCode::from(111)
        }
    }
}

/// Counts rsyslogd's output lines of one APP-NAME as the file grows, reading only what is new.
struct ReceivedLines {
    file: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    needle: Vec<u8>,
    count: u64,
    started: Instant,
    last: Option<Instant>,
}

impl ReceivedLines {
    fn new(file: &Path, app: &str) -> ReceivedLines {
        let offset = std::fs::metadata(file).map(|meta| meta.len()).unwrap_or(0);
        ReceivedLines {
            file: file.to_owned(),
            offset,
            partial: Vec::new(),
            needle: format!(" {app} ").into_bytes(),
            count: 0,
            started: Instant::now(),
            last: None,
        }
    }

    fn poll(&mut self) -> Result<()> {
        let Ok(mut file) = File::open(&self.file) else { return Ok(()) };
        file.seek(SeekFrom::Start(self.offset))?;
        let mut chunk = Vec::new();
        file.read_to_end(&mut chunk)?;
        if chunk.is_empty() {
            return Ok(());
        }
        self.offset += chunk.len() as u64;
        let now = Instant::now();
        self.partial.extend_from_slice(&chunk);
        let complete = self.partial.iter().rposition(|&byte| byte == b'\n').map_or(0, |end| end + 1);
        let new = self.partial[..complete]
            .split(|&byte| byte == b'\n')
            .filter(|line| line.windows(self.needle.len()).take(40).any(|window| window == self.needle.as_slice()))
            .count() as u64;
        self.partial.drain(..complete);
        if new > 0 {
            self.last = Some(now);
            self.count += new;
        }
        Ok(())
    }

    /// Polls until `expected` lines came, or the count stood still for `QUIET`.
    fn wait(&mut self, expected: u64) -> Result<()> {
        let deadline = Instant::now() + DEADLINE;
        let mut last_change = (self.count, Instant::now());
        while self.count < expected {
            ensure!(Instant::now() < deadline, "{} of {expected} lines after {DEADLINE:?}", self.count);
            std::thread::sleep(Duration::from_millis(5));
            self.poll()?;
            if self.count != last_change.0 {
                last_change = (self.count, Instant::now());
            } else if last_change.1.elapsed() > QUIET && self.last.is_some() {
                break;
            }
        }
        Ok(())
    }

    /// Lines per second from `started` (the request) to the last line.
    fn lines_per_second(&self) -> f64 {
        self.last.map_or(0.0, |last| self.count as f64 / (last - self.started).as_secs_f64())
    }
}

/// The user-data: the relay to rsyslogd and the printer.
fn user_data(port: u16) -> String {
    format!(
        "[syslog]\ntarget = \"tcp://127.0.0.1:{port}\"\n\n[containers.printer]\nimage = \"{BUSYBOX}\"\n\
         command = [\"seq\", \"1\", \"{LINES}\"]\nrestart = \"no\"\n"
    )
}

/// What keel's relay would send for line `n`, written straight into the receiver's socket.
fn write_directly(port: u16) -> Result<()> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to rsyslogd")?;
    let mut writer = BufWriter::with_capacity(64 << 10, stream);
    for n in 1..=LINES {
        let line = format!("<30>1 2026-11-29T12:00:00.000Z keel-bench direct - - - {n}");
        write!(writer, "{} {line}", line.len())?;
    }
    writer.flush()?;
    Ok(())
}

fn vm_hwm_kib(pid: u32) -> Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))?;
    let line = status.lines().find(|line| line.starts_with("VmHWM:")).context("no VmHWM")?;
    Ok(line.split_whitespace().nth(1).context("VmHWM without a number")?.parse()?)
}

fn start_printer(socket: &Path) -> Result<()> {
    let (status, body) = api_request(socket, "POST", "/containers/printer/start", b"");
    ensure!(status == 204, "starting the printer: {status} {body}");
    Ok(())
}

/// Waits until the printer has exited.
fn wait_for_exit(socket: &Path) -> Result<()> {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let (_, body) = api_request(socket, "GET", "/containers/printer/json", b"");
        let inspect: serde_json::Value = serde_json::from_str(&body)?;
        if inspect["State"]["Status"] == "exited" {
            return Ok(());
        }
        ensure!(Instant::now() < deadline, "the printer did not end within {DEADLINE:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// The relay's counters from the API's status.
fn relay_counters(socket: &Path) -> Result<serde_json::Value> {
    let (status, body) = api_request(socket, "GET", "/keel/v1/status", b"");
    ensure!(status == 200, "GET /keel/v1/status answered {status}: {body}");
    let status: serde_json::Value = serde_json::from_str(&body)?;
    Ok(status["syslog"].clone())
}

fn run() -> Result<()> {
    let keel = keel_qemu_tests::bench::keel_binary().map_err(|error| anyhow::anyhow!("{error}"))?;
    let cache = keel_qemu_tests::bench::bench_dir()?;
    let scratch = tempfile::tempdir_in(&cache)?;
    let rsyslog = Rsyslog::start(scratch.path());
    let out = scratch.path().join("out.log");

    // The peer first: what rsyslogd takes from one socket written as fast as it goes.
    let mut direct = ReceivedLines::new(&out, "direct");
    write_directly(rsyslog.port)?;
    direct.wait(LINES)?;

    // keel: the printer's run at boot warms up (and is waited out); the measured run is started through the API.
    let host = TestHost::new(&cache);
    let mut warm_up = ReceivedLines::new(&out, "printer");
    let supervise = KeelSupervise::start(&keel, &host, &user_data(rsyslog.port));
    let started_kib = vm_hwm_kib(supervise.child.id())?;
    warm_up.wait(LINES)?;
    wait_for_exit(&supervise.socket)?;
    let mut relayed = ReceivedLines::new(&out, "printer");
    start_printer(&supervise.socket)?;
    relayed.wait(LINES)?;
    wait_for_exit(&supervise.socket)?;
    let counters = relay_counters(&supervise.socket)?;

    // The receiver stops taking anything; the printer runs again.
    let before_kib = vm_hwm_kib(supervise.child.id())?;
    let receiver = rsyslog.pid();
    ensure!(receiver > 0, "rsyslogd is not running");
    // SAFETY: kill(2) of the rsyslogd child this bench started and has not reaped.
    unsafe { libc::kill(receiver as libc::pid_t, libc::SIGSTOP) };
    start_printer(&supervise.socket)?;
    wait_for_exit(&supervise.socket)?;
    let after_kib = vm_hwm_kib(supervise.child.id())?;
    let stalled = relay_counters(&supervise.socket)?;
    // SAFETY: as above.
    unsafe { libc::kill(receiver as libc::pid_t, libc::SIGCONT) };
    drop(supervise);

    let keel_rate = relayed.lines_per_second();
    let peer_rate = direct.lines_per_second();
    let extra_mib = after_kib.saturating_sub(started_kib) as f64 / 1024.0;
    println!("syslog relay, {LINES} lines to rsyslogd over TCP on loopback, timed from the request to the last line rsyslogd wrote");
    println!("                              lines/s     received     lost    target");
    println!(
        "keel supervise (container)  {keel_rate:>10.0}  {:>11}  {:>7}    >= {TARGET_LINES_PER_S:.0}/s, none lost",
        relayed.count,
        LINES.saturating_sub(relayed.count)
    );
    println!(
        "direct socket writes        {peer_rate:>10.0}  {:>11}  {:>7}",
        direct.count,
        LINES.saturating_sub(direct.count)
    );
    println!("ratio keel/direct               {:.2}", keel_rate / peer_rate.max(1.0));
    println!(
        "receiver stopped: {LINES} more lines; relaying process VmHWM {started_kib} KiB at start, {before_kib} KiB \
         before the stop, {after_kib} KiB after (+{extra_mib:.1} MiB over all three runs, target <= \
         {TARGET_EXTRA_MIB} MiB); relay counters {stalled}"
    );
    println!("relay counters after the first run: {counters}");
    println!(
        "keel: `keel supervise` (the static build PID 1 is) with one container `seq 1 {LINES}`, its stdout read, cut \
         into lines, queued and relayed (RFC 5424, octet counting) by the relay thread; direct: this bench writes \
         the same framing for {LINES} lines through one buffered socket"
    );
    Ok(())
}
