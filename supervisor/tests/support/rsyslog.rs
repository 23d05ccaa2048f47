//! Starts a private `rsyslogd` (its own config, pid file and work dir in a temp dir) listening on loopback TCP and
//! UDP and on a unix socket, writing `facility.severity app-name msg` lines to a file; killed on drop.

use std::io::Write;
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Everything waits this long before giving up: loaded CI machines are slow.
const DEADLINE: Duration = Duration::from_secs(30);

pub struct Rsyslog {
    /// Both the TCP and the UDP port.
    pub port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl Rsyslog {
    /// Writes the config for a free port under `dir` without starting the daemon.
    pub fn configure(dir: &Path) -> Rsyslog {
        let port = free_port();
        let work = dir.join("work");
        std::fs::create_dir_all(&work).unwrap();
        let config = format!(
            r#"global(workDirectory="{work}")
module(load="imtcp")
input(type="imtcp" port="{port}" address="127.0.0.1")
module(load="imudp")
input(type="imudp" port="{port}" address="127.0.0.1")
module(load="imuxsock" SysSock.Use="off")
input(type="imuxsock" Socket="{socket}" RateLimit.Interval="0")
template(name="t" type="string" string="%syslogfacility-text%.%syslogseverity-text% %app-name% %msg%\n")
*.* action(type="omfile" file="{out}" template="t")
"#,
            work = work.display(),
            socket = dir.join("log.sock").display(),
            out = dir.join("out.log").display(),
        );
        std::fs::write(dir.join("rsyslog.conf"), config).unwrap();
        Rsyslog { port, dir: dir.to_path_buf(), child: None }
    }

    /// Configures and starts.
    pub fn start(dir: &Path) -> Rsyslog {
        let mut rsyslog = Rsyslog::configure(dir);
        rsyslog.launch();
        rsyslog
    }

    /// Starts the daemon and waits until a probe line sent over TCP shows up in the output.
    pub fn launch(&mut self) {
        assert!(self.child.is_none(), "rsyslogd is already running");
        let _ = std::fs::remove_file(self.dir.join("rsyslog.pid"));
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("rsyslogd.log")).unwrap();
        let child = Command::new("/usr/sbin/rsyslogd")
            .arg("-n")
            .arg("-f")
            .arg(self.dir.join("rsyslog.conf"))
            .arg("-i")
            .arg(self.dir.join("rsyslog.pid"))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("starting rsyslogd");
        self.child = Some(child);
        self.wait_until_ready();
    }

    /// SIGKILLs the daemon (a crash, not a clean stop) and reaps it.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    pub fn socket_path(&self) -> PathBuf {
        self.dir.join("log.sock")
    }

    /// Every output line so far.
    pub fn lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.dir.join("out.log")).unwrap_or_default().lines().map(str::to_owned).collect()
    }

    /// The lines from `app`, once there are at least `count`; panics with the whole output after the deadline.
    pub fn wait_for(&self, app: &str, count: usize) -> Vec<String> {
        let deadline = Instant::now() + DEADLINE;
        loop {
            let lines: Vec<String> = self.lines().into_iter().filter(|line| app_name(line) == Some(app)).collect();
            if lines.len() >= count {
                return lines;
            }
            if Instant::now() > deadline {
                panic!(
                    "waited for {count} lines from {app:?}, got {}; output:\n{}\nrsyslogd:\n{}",
                    lines.len(),
                    self.lines().join("\n"),
                    std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn wait_until_ready(&mut self) {
        let deadline = Instant::now() + DEADLINE;
        let pid_file = self.dir.join("rsyslog.pid");
        while !pid_file.exists() || TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            self.assert_alive();
            assert!(Instant::now() < deadline, "rsyslogd did not come up; see {}", self.dir.display());
            std::thread::sleep(Duration::from_millis(20));
        }
        // All inputs are bound before any input runs, so a line through TCP means UDP and the socket work too.
        let before = self.lines().iter().filter(|line| app_name(line) == Some("probe")).count();
        let mut probe = TcpStream::connect(("127.0.0.1", self.port)).unwrap();
        let line = "<13>1 - - probe - - - ready";
        probe.write_all(format!("{} {line}", line.len()).as_bytes()).unwrap();
        drop(probe);
        self.wait_for("probe", before + 1);
    }

    fn assert_alive(&mut self) {
        if let Some(Ok(Some(status))) = self.child.as_mut().map(Child::try_wait) {
            panic!(
                "rsyslogd exited ({status}):\n{}",
                std::fs::read_to_string(self.dir.join("rsyslogd.log")).unwrap_or_default()
            );
        }
    }
}

impl Drop for Rsyslog {
    fn drop(&mut self) {
        self.kill();
    }
}

/// `daemon.info app msg` → `app`.
fn app_name(line: &str) -> Option<&str> {
    line.split(' ').nth(1)
}

/// A port free for both TCP and UDP on loopback right now.
fn free_port() -> u16 {
    loop {
        let tcp = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = tcp.local_addr().unwrap().port();
        if UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
}
