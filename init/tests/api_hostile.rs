//! Hostile clients of `keel supervise`'s API socket, written as the attack: a 1 MiB header, a request line that is
//! not HTTP, malformed JSON, a body over its bound, unknown endpoints and ids, a keep-alive connection left idle,
//! 10,000 idle connections at once, and followers (`logs -f`, `events`, `stats`) that go away mid-stream. Each
//! gets a proper error or is dropped; the supervisor's memory and file descriptors stay bounded, and a fresh client
//! is answered meanwhile.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use keel_fixtures::containers::{wait_for, TestHost, BUSYBOX};
use keel_fixtures::supervise::{api_request, KeelSupervise};

const CACHE: &str = env!("CARGO_TARGET_TMPDIR");
const KEEL: &str = env!("CARGO_BIN_EXE_keel");

/// Sends `request` and returns what the server answered before closing (or within 10 s).
fn exchange(socket: &Path, request: &[u8]) -> String {
    let mut stream = UnixStream::connect(socket).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    // The server may close before taking all of a huge request: what it answered still counts.
    let _ = stream.write_all(request);
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

fn get(socket: &Path, path: &str) -> String {
    exchange(socket, format!("GET {path} HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n").as_bytes())
}

/// VmRSS of `pid` in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|line| line.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Open file descriptors of `pid`.
fn fd_count(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).unwrap().count()
}

/// Lets this process (and the `keel supervise` it starts) hold `count` descriptors.
fn raise_fd_limit(count: u64) {
    let limit = libc::rlimit { rlim_cur: count, rlim_max: count };
    // SAFETY: setrlimit reads the struct we pass, which lives across the call.
    let result = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    assert_eq!(result, 0, "raising RLIMIT_NOFILE to {count}: {}", std::io::Error::last_os_error());
}

/// The server's keep-alive idle timeout (keel_api::server::IDLE_TIMEOUT).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);

#[test]
fn hostile_requests_get_errors_and_the_server_keeps_serving() {
    raise_fd_limit(20_000);
    let host = TestHost::new(Path::new(CACHE));
    let config = format!(
        "[containers.chatty]\nimage = \"{BUSYBOX}\"\n\
         command = [\"sh\", \"-c\", \"while true; do echo chatter; sleep 0.05; done\"]\n"
    );
    let supervise = KeelSupervise::start(Path::new(KEEL), &host, &config);
    let socket = supervise.socket.clone();
    let pid = supervise.child.id();
    wait_for("chatty running", Duration::from_secs(60), || {
        get(&socket, "/containers/json").contains("\"/chatty\"").then_some(())
    });

    // A keep-alive connection that goes quiet after one request is closed once idle for the timeout.
    let mut quiet = UnixStream::connect(&socket).unwrap();
    quiet.write_all(b"GET /_ping HTTP/1.1\r\nHost: keel\r\n\r\n").unwrap();
    let mut answer = [0u8; 512];
    let read = quiet.read(&mut answer).unwrap();
    assert!(String::from_utf8_lossy(&answer[..read]).ends_with("OK"));
    let went_quiet = Instant::now();
    // And one that never says a word.
    let mute = UnixStream::connect(&socket).unwrap();
    let closed_after = std::thread::spawn(move || {
        [quiet, mute]
            .into_iter()
            .map(|mut stream| {
                stream.set_read_timeout(Some(IDLE_TIMEOUT * 3)).unwrap();
                let closed = matches!(stream.read(&mut answer), Ok(0));
                (closed, went_quiet.elapsed())
            })
            .collect::<Vec<_>>()
    });
    let rss_before = rss_kib(pid);
    let fds_before = fd_count(pid);

    // 1 MiB of header: refused (431) without being read whole.
    let huge = format!("GET /_ping HTTP/1.1\r\nHost: keel\r\nX-Junk: {}\r\n\r\n", "a".repeat(1 << 20));
    let answer = exchange(&socket, huge.as_bytes());
    assert!(answer.starts_with("HTTP/1.1 431"), "a 1 MiB header got: {:?}", &answer[..answer.len().min(200)]);

    // Not HTTP at all: 400.
    let answer = exchange(&socket, b"\x16\x03\x01 hello, this is not http\r\n\r\n");
    assert!(answer.starts_with("HTTP/1.1 400"), "garbage got: {answer:?}");

    // Malformed JSON: 400 naming where; well-formed: refused, as keel runs only declared containers.
    let (status, reply) = api_request(&socket, "POST", "/v1.44/containers/create", br#"{"Image": "busybox", "Cmd": ["#);
    assert_eq!(status, 400, "{reply}");
    assert!(reply.contains("invalid JSON body") && reply.contains("column"), "{reply}");
    let (status, reply) = api_request(&socket, "POST", "/containers/create?name=x", br#"{"Image": "busybox"}"#);
    assert!(status == 403 && reply.contains("declared in the host's config"), "{status} {reply}");

    // A body over its bound is refused on its declared length, before a byte of it is sent.
    let answer = exchange(
        &socket,
        b"PUT /keel/v1/config HTTP/1.1\r\nHost: keel\r\nContent-Length: 2097152\r\nConnection: close\r\n\r\n",
    );
    assert!(answer.starts_with("HTTP/1.1 413") && answer.contains("at most 1048576 bytes"), "{answer}");
    // Chunked, with no length declared: cut off at the bound.
    let mut chunked =
        b"PUT /keel/v1/config HTTP/1.1\r\nHost: keel\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
            .to_vec();
    for _ in 0..40 {
        chunked.extend_from_slice(format!("{:x}\r\n{}\r\n", 64 << 10, "#".repeat(64 << 10)).as_bytes());
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let answer = exchange(&socket, &chunked);
    assert!(answer.starts_with("HTTP/1.1 413"), "{}", &answer[..answer.len().min(300)]);

    // Unknown endpoints and ids: Docker's JSON errors.
    let answer = get(&socket, "/v1.44/no/such/endpoint");
    assert!(answer.starts_with("HTTP/1.1 404") && answer.contains("{\"message\":\"page not found"), "{answer}");
    let answer = get(&socket, "/containers/nosuch/json");
    assert!(answer.starts_with("HTTP/1.1 404") && answer.contains("No such container: nosuch"), "{answer}");
    let answer = get(&socket, "/containers/json?filters=%7Bnot%20json");
    assert!(answer.starts_with("HTTP/1.1 400") && answer.contains("invalid filter"), "{answer}");

    // Followers that go away mid-stream cost nothing once gone: logs -f, events (replaying from the start) and
    // a stats stream, 20 of each.
    for path in ["/containers/chatty/logs?follow=1&stdout=1", "/events?since=1", "/containers/chatty/stats"] {
        for _ in 0..20 {
            let mut stream = UnixStream::connect(&socket).unwrap();
            stream.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
            stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: keel\r\n\r\n").as_bytes()).unwrap();
            let mut first = [0u8; 64];
            stream.read_exact(&mut first).unwrap();
            assert!(first.starts_with(b"HTTP/1.1 200"), "{path}: {:?}", String::from_utf8_lossy(&first));
        }
    }

    // Each follower's connection and stream task are gone with it.
    let fds = wait_for("the followers' descriptors closed", Duration::from_secs(10), || {
        let fds = fd_count(pid);
        (fds <= fds_before).then_some(fds)
    });
    eprintln!("descriptors of keel supervise: {fds_before} before the followers, {fds} after they left");

    for (closed, after) in closed_after.join().unwrap() {
        assert!(closed, "an idle connection stayed open for {after:?}");
        let expected = IDLE_TIMEOUT - Duration::from_secs(1)..IDLE_TIMEOUT + Duration::from_secs(15);
        assert!(expected.contains(&after), "an idle connection closed after {after:?}");
    }

    // 10,000 idle connections at once: the server holds at most its bound (each newcomer takes the place of the
    // longest idle one), and a fresh client is answered while they are all open.
    let flood: Vec<UnixStream> = (0..10_000).map(|_| UnixStream::connect(&socket).unwrap()).collect();
    std::thread::sleep(Duration::from_secs(2));
    let fds_during = fd_count(pid);
    let rss_during = rss_kib(pid);
    let asked = Instant::now();
    let answer = get(&socket, "/containers/json");
    let answered_in = asked.elapsed();
    assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"/chatty\""), "{answer}");
    assert!(answered_in < Duration::from_secs(5), "a fresh client waited {answered_in:?}");
    let mut closed_by_server = 0;
    for stream in &flood {
        stream.set_nonblocking(true).unwrap();
        if matches!((&*stream).read(&mut [0u8; 1]), Ok(0)) {
            closed_by_server += 1;
        }
    }
    eprintln!(
        "10,000 idle connections: {closed_by_server} closed by the server, fds {fds_before} -> {fds_during}, \
         VmRSS {rss_before} -> {rss_during} KiB, a fresh client answered in {answered_in:?}"
    );
    assert!(closed_by_server >= 10_000 - 256 - 5, "the server held {} connections", 10_000 - closed_by_server);
    assert!(fds_during < fds_before + 300, "the server's descriptors went from {fds_before} to {fds_during}");
    drop(flood);

    std::thread::sleep(Duration::from_secs(2));
    let rss_after = rss_kib(pid);
    eprintln!("keel supervise VmRSS: {rss_before} KiB before, {rss_during} during, {rss_after} KiB after");
    assert!(rss_during < rss_before + 16 * 1024, "RSS grew from {rss_before} to {rss_during} KiB");
    assert!(rss_after < rss_before + 16 * 1024, "RSS grew from {rss_before} to {rss_after} KiB");
    let started = Instant::now();
    assert!(get(&socket, "/containers/json").contains("\"/chatty\""));
    assert!(started.elapsed() < Duration::from_secs(5));
}
