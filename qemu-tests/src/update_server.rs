//! A loopback HTTP/1.1 file server for update tests: serves bundles and channel files from memory to a guest on
//! QEMU user networking (the host is `10.0.2.2` there), counts requests, and can stall a response after a given
//! number of bytes until the test releases it, so a test stops an install at a byte it chose.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::Path;
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

/// The host as a guest on QEMU user networking sees it.
pub const GUEST_HOST: &str = "10.0.2.2";
/// Bytes written per `write` call: small enough that a stall lands close to its byte.
const CHUNK: usize = 64 * 1024;
/// A request line and headers; a guest's are a few hundred bytes.
const MAX_HEADER_LINES: usize = 64;

#[derive(Default)]
struct State {
    files: HashMap<String, Arc<Vec<u8>>>,
    /// path → the byte after which a response waits for [`UpdateServer::release`].
    stalls: HashMap<String, u64>,
    /// path → how many responses reached their stall.
    stalled: HashMap<String, usize>,
    requests: HashMap<String, usize>,
    /// Bytes sent of completed and running responses, by path.
    sent: HashMap<String, u64>,
    shutting_down: bool,
}

struct Shared {
    state: Mutex<State>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// The running server; dropping it stops it and releases every stalled response.
pub struct UpdateServer {
    port: u16,
    shared: Arc<Shared>,
    accept: Option<JoinHandle<()>>,
}

impl UpdateServer {
    pub fn start() -> std::io::Result<UpdateServer> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let shared = Arc::new(Shared { state: Mutex::new(State::default()), changed: Condvar::new() });
        let accept_shared = Arc::clone(&shared);
        let accept = thread::Builder::new().name("update-server".into()).spawn(move || {
            for stream in listener.incoming() {
                if accept_shared.lock().shutting_down {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&accept_shared);
                let _ = thread::Builder::new().name("update-server-conn".into()).spawn(move || serve(stream, &shared));
            }
        })?;
        Ok(UpdateServer { port, shared, accept: Some(accept) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// `http://10.0.2.2:PORT/path`: the URL of `path` for a guest.
    pub fn guest_url(&self, path: &str) -> String {
        format!("http://{GUEST_HOST}:{}{path}", self.port)
    }

    /// `http://127.0.0.1:PORT/path`: the URL of `path` for the host.
    pub fn host_url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Serves `bytes` at `path` (replacing what was there).
    pub fn put(&self, path: &str, bytes: Vec<u8>) {
        self.shared.lock().files.insert(path.to_owned(), Arc::new(bytes));
    }

    /// Serves the file at `file` at `path`.
    pub fn put_file(&self, path: &str, file: &Path) -> std::io::Result<()> {
        self.put(path, std::fs::read(file)?);
        Ok(())
    }

    /// From now on, responses for `path` send `after` bytes of the body and then wait for [`Self::release`].
    pub fn stall(&self, path: &str, after: u64) {
        self.shared.lock().stalls.insert(path.to_owned(), after);
    }

    /// Lets stalled and future responses run to their end.
    pub fn release(&self) {
        self.shared.lock().stalls.clear();
        self.shared.changed.notify_all();
    }

    /// Waits until a response for `path` sits at its stall; false after `timeout`.
    pub fn wait_stalled(&self, path: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.stalled.get(path).copied().unwrap_or(0) == 0 {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// Waits until `path` was requested at least `count` times; false after `timeout`.
    pub fn wait_requests(&self, path: &str, count: usize, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut state = self.shared.lock();
        while state.requests.get(path).copied().unwrap_or(0) < count {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else { return false };
            state = self.shared.changed.wait_timeout(state, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }

    /// How many requests for `path` arrived.
    pub fn requests(&self, path: &str) -> usize {
        self.shared.lock().requests.get(path).copied().unwrap_or(0)
    }

    /// Body bytes sent for `path`, over all responses.
    pub fn sent(&self, path: &str) -> u64 {
        self.shared.lock().sent.get(path).copied().unwrap_or(0)
    }
}

impl Drop for UpdateServer {
    fn drop(&mut self) {
        self.shared.lock().shutting_down = true;
        self.release();
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
    }
}

/// One connection: one GET, answered and closed.
fn serve(stream: TcpStream, shared: &Shared) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let Ok(reader_stream) = stream.try_clone() else { return };
    let mut reader = BufReader::new(reader_stream);
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    for _ in 0..MAX_HEADER_LINES {
        let mut line = String::new();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => break,
            Ok(_) if line == "\r\n" || line == "\n" => break,
            Ok(_) => {}
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let file = {
        let mut state = shared.lock();
        *state.requests.entry(path.to_owned()).or_default() += 1;
        shared.changed.notify_all();
        state.files.get(path).cloned()
    };
    let mut stream = stream;
    let Some(file) = file.filter(|_| method == "GET") else {
        let _ = stream.write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n");
        return;
    };
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        file.len()
    );
    if stream.write_all(head.as_bytes()).is_err() {
        return;
    }
    let mut offset = 0usize;
    let mut reported_stall = false;
    while offset < file.len() {
        let limit = wait_for_room(shared, path, offset as u64, &mut reported_stall);
        let Some(limit) = limit else { return };
        let end = file.len().min(offset + CHUNK).min(usize::try_from(limit).unwrap_or(usize::MAX));
        if stream.write_all(&file[offset..end]).is_err() {
            return;
        }
        *shared.lock().sent.entry(path.to_owned()).or_default() += (end - offset) as u64;
        offset = end;
    }
    let _ = stream.flush();
    let _ = stream.shutdown(Shutdown::Write);
}

/// The byte up to which the response may send now: the stall if it is ahead of `offset`, or without a stall
/// everything. At the stall it waits (once reporting it) until released; `None` when the server shuts down.
fn wait_for_room(shared: &Shared, path: &str, offset: u64, reported: &mut bool) -> Option<u64> {
    let mut state = shared.lock();
    loop {
        if state.shutting_down {
            return None;
        }
        match state.stalls.get(path).copied() {
            Some(stall) if stall <= offset => {
                if !*reported {
                    *reported = true;
                    *state.stalled.entry(path.to_owned()).or_default() += 1;
                    shared.changed.notify_all();
                }
                state = shared.changed.wait(state).unwrap_or_else(PoisonError::into_inner);
            }
            Some(stall) => return Some(stall),
            None => return Some(u64::MAX),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;

    use super::*;

    fn get(port: u16, path: &str) -> std::io::Result<Vec<u8>> {
        let mut stream = TcpStream::connect(("127.0.0.1", port))?;
        stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())?;
        let mut response = Vec::new();
        stream.read_to_end(&mut response)?;
        Ok(response)
    }

    #[test]
    fn serves_counts_and_stalls_where_told() {
        let server = UpdateServer::start().unwrap();
        let body: Vec<u8> = (0..200_000u32).map(|index| index as u8).collect();
        server.put("/b", body.clone());
        let response = get(server.port(), "/b").unwrap();
        assert!(response.starts_with(b"HTTP/1.1 200 OK\r\n"));
        assert!(response.ends_with(&body));
        assert!(get(server.port(), "/missing").unwrap().starts_with(b"HTTP/1.1 404"));
        assert_eq!(server.requests("/b"), 1);

        server.stall("/b", 100_000);
        let port = server.port();
        let client = thread::spawn(move || get(port, "/b").unwrap());
        assert!(server.wait_stalled("/b", Duration::from_secs(10)));
        assert_eq!(server.sent("/b"), 200_000 + 100_000, "exactly the bytes before the stall");
        server.release();
        assert!(client.join().unwrap().ends_with(&body));
        assert!(server.wait_requests("/b", 2, Duration::from_secs(1)));
    }
}
