//! `docker events` against `keel supervise`: after a `docker restart`, `--since`/`--until` replays the restart's
//! events in order (kill, die, stop, start, restart) with Docker's attributes; a follower started before a
//! restart sees them as they happen; filters by container, event and label narrow the stream; a health check's
//! change shows as `health_status: healthy`.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::BufRead;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::KeelSupervise;

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

struct Docker {
    socket: PathBuf,
    config_dir: PathBuf,
}

impl Docker {
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new("docker");
        command.args(args).env("DOCKER_HOST", format!("unix://{}", self.socket.display()));
        command.env("DOCKER_CONFIG", &self.config_dir);
        command
    }

    fn run(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("the docker CLI runs")
    }

    fn ok(&self, args: &[&str]) -> String {
        let output = self.run(args);
        let text = |bytes: &[u8]| String::from_utf8_lossy(bytes).into_owned();
        assert!(output.status.success(), "docker {args:?}: {}", text(&output.stderr));
        text(&output.stdout)
    }
}

/// Unix seconds with nanoseconds, as the CLI sends them.
fn stamp(time: SystemTime) -> String {
    let since = time.duration_since(UNIX_EPOCH).unwrap();
    format!("{}.{:09}", since.as_secs(), since.subsec_nanos())
}

const FORMAT: &str = "{{.Type}} {{.Action}} {{.Actor.Attributes.name}} {{.Actor.Attributes.role}}";

#[test]
fn docker_events_replays_and_follows_a_restart() {
    let host = TestHost::new(Path::new(CACHE));
    // The shell is the container's PID 1 and exits on SIGTERM by its trap: one kill per stop.
    let config = format!(
        "[containers.ticker]\nimage = \"{BUSYBOX}\"\nlabels = {{ role = \"clock\" }}\n\
         command = [\"sh\", \"-c\", \"trap 'exit 0' TERM; while true; do sleep 0.1; done\"]\n\
         [containers.ticker.healthcheck]\ntest = [\"CMD\", \"true\"]\ninterval = \"300ms\"\n\
         [containers.other]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\n"
    );
    let began = SystemTime::now() - Duration::from_secs(1);
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let config_dir = host.temp.path().join("docker-config");
    std::fs::create_dir_all(&config_dir).unwrap();
    let docker = Docker { socket: supervise.socket.clone(), config_dir };
    wait_for("ticker healthy", Duration::from_secs(60), || {
        docker
            .ok(&["ps", "--format", "{{.Names}} {{.Status}}"])
            .contains("ticker Up")
            .then_some(())
            .filter(|_| docker.ok(&["inspect", "ticker", "--format", "{{.State.Health.Status}}"]).trim() == "healthy")
    });

    // The boot so far: created, started, healthy, each once, for both containers; `other` has no health check.
    let now = stamp(SystemTime::now());
    let boot = docker.ok(&["events", "--since", &stamp(began), "--until", &now, "--format", FORMAT]);
    let boot: Vec<&str> = boot.lines().map(str::trim_end).collect();
    for expected in
        ["container create ticker clock", "container start ticker clock", "container start other <no value>"]
    {
        assert_eq!(boot.iter().filter(|line| **line == expected).count(), 1, "{expected:?} in {boot:#?}");
    }
    assert!(boot.contains(&"container health_status: healthy ticker clock"), "{boot:#?}");
    let start_index = boot.iter().position(|line| *line == "container start ticker clock").unwrap();
    let create_index = boot.iter().position(|line| *line == "container create ticker clock").unwrap();
    assert!(create_index < start_index, "{boot:#?}");

    // A follower, filtered to ticker, sees the restart as it happens.
    let mut follower = docker
        .command(&["events", "--filter", "container=ticker", "--filter", "type=container", "--format", FORMAT])
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut followed = std::io::BufReader::new(follower.stdout.take().unwrap());
    std::thread::sleep(Duration::from_secs(1));

    let before_restart = SystemTime::now();
    docker.ok(&["restart", "-t", "5", "ticker"]);
    std::thread::sleep(Duration::from_millis(200));
    let after_restart = SystemTime::now();

    let restart_sequence = [
        "container kill ticker clock",
        "container die ticker clock",
        "container stop ticker clock",
        "container start ticker clock",
        "container restart ticker clock",
    ];
    let replayed = docker.ok(&[
        "events",
        "--since",
        &stamp(before_restart),
        "--until",
        &stamp(after_restart),
        "--filter",
        "container=ticker",
        "--format",
        FORMAT,
    ]);
    let replayed: Vec<&str> =
        replayed.lines().map(str::trim_end).filter(|line| !line.contains("health_status")).collect();
    assert_eq!(replayed, restart_sequence);

    let mut seen = Vec::new();
    while seen.len() < restart_sequence.len() {
        let mut line = String::new();
        assert!(followed.read_line(&mut line).unwrap() > 0, "the follower ended early: {seen:?}");
        let line = line.trim_end().to_owned();
        if !line.contains("health_status") {
            seen.push(line);
        }
    }
    assert_eq!(seen, restart_sequence);
    follower.kill().unwrap();
    follower.wait().unwrap();

    // The attributes Docker gives: the exit code on die, the signal on kill; the event filter narrows.
    let detail = docker.ok(&[
        "events",
        "--since",
        &stamp(before_restart),
        "--until",
        &stamp(after_restart),
        "--filter",
        "event=die",
        "--filter",
        "event=kill",
        "--format",
        "{{.Action}} {{or .Actor.Attributes.exitCode .Actor.Attributes.signal}} {{.Actor.ID}}",
    ]);
    let id = docker.ok(&["inspect", "ticker", "--format", "{{.Id}}"]);
    assert_eq!(detail.lines().collect::<Vec<_>>(), [format!("kill 15 {}", id.trim()), format!("die 0 {}", id.trim())]);
    // A label filter that matches nothing, and one that matches ticker only.
    let by_label = |label: &str| {
        docker.ok(&[
            "events",
            "--since",
            &stamp(began),
            "--until",
            &stamp(after_restart),
            "--filter",
            label,
            "--format",
            "{{.Actor.Attributes.name}}",
        ])
    };
    assert!(by_label("label=role=none").is_empty());
    assert!(by_label("label=role=clock").lines().all(|line| line == "ticker"));
    let bad = docker.run(&["events", "--filter", "colour=red", "--until", &stamp(after_restart)]);
    assert!(!bad.status.success() && String::from_utf8_lossy(&bad.stderr).contains("invalid filter 'colour'"));
}

/// Kill events counted in what a reader of `GET /events` received.
fn kills_in(received: &[u8]) -> usize {
    String::from_utf8_lossy(received).matches("\"Action\":\"kill\"").count()
}

#[test]
fn a_subscriber_that_stops_reading_is_dropped_and_the_supervisor_goes_on() {
    use std::io::{Read, Write};
    use std::os::unix::net::UnixStream;
    use std::time::Instant;

    let host = TestHost::new(Path::new(CACHE));
    // `sleep` as the container's PID 1 has no handler for USR1: each kill is an event and nothing more.
    let config = format!("[containers.target]\nimage = \"{BUSYBOX}\"\ncommand = [\"sleep\", \"100000\"]\n");
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let socket = supervise.socket.clone();
    wait_for("target running", Duration::from_secs(60), || {
        let (_, body) = keel_fixtures::supervise::api_request(&socket, "GET", "/containers/target/json", b"");
        body.contains("\"Running\":true").then_some(())
    });
    let subscribe = || {
        let mut stream = UnixStream::connect(&socket).unwrap();
        stream
            .write_all(b"GET /events?filters=%7B%22event%22%3A%5B%22kill%22%5D%7D HTTP/1.1\r\nHost: keel\r\n\r\n")
            .unwrap();
        stream
    };
    // One reader keeps up; the other never reads until the flood is over.
    let mut keeping_up = subscribe();
    keeping_up.set_read_timeout(Some(Duration::from_secs(120))).unwrap();
    let reader = std::thread::spawn(move || {
        let mut received = Vec::new();
        let mut buffer = [0u8; 64 << 10];
        while kills_in(&received) < KILLS {
            match keeping_up.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(count) => received.extend_from_slice(&buffer[..count]),
            }
        }
        kills_in(&received)
    });
    let mut stalled = subscribe();
    std::thread::sleep(Duration::from_millis(500));

    // Enough events to fill the stalled client's socket buffers, its stream's chunks and its subscription.
    const KILLS: usize = 3000;
    let mut slowest = Duration::ZERO;
    for _ in 0..KILLS {
        let asked = Instant::now();
        let (status, body) =
            keel_fixtures::supervise::api_request(&socket, "POST", "/containers/target/kill?signal=USR1", b"");
        assert_eq!(status, 204, "{body}");
        slowest = slowest.max(asked.elapsed());
    }
    eprintln!("{KILLS} kills, the slowest answered in {slowest:?}");
    assert!(slowest < Duration::from_secs(2), "a kill waited {slowest:?} on the stalled subscriber");
    assert_eq!(reader.join().unwrap(), KILLS, "the reader that kept up missed events");

    // The stalled one was dropped: what it gets now ends, short of the flood.
    stalled.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut received = Vec::new();
    let ended = stalled.read_to_end(&mut received).is_ok() || received.ends_with(b"0\r\n\r\n");
    let got = kills_in(&received);
    eprintln!("the stalled subscriber got {got} of {KILLS} events before it was dropped");
    assert!(ended, "the stalled subscriber's stream did not end");
    assert!(got < KILLS, "the stalled subscriber got every event: it was not dropped");
}
