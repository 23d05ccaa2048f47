//! Whether PID 1's API answers, as the health gate asks before it blesses a trial: `GET /_ping` over the API's
//! unix socket, answered `200` with `OK` (what the `docker` CLI asks first). A version whose API does not answer
//! cannot be updated or rolled back from afar, so it must not be kept.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// An answer to `_ping` is a status line, a few headers and `OK`.
const MAX_ANSWER: u64 = 4096;

/// Asks the API on `socket` for `_ping`, each read and write bounded by `timeout`; the error says what went wrong.
pub fn ping(socket: &Path, timeout: Duration) -> Result<(), String> {
    let mut stream = UnixStream::connect(socket).map_err(|error| format!("cannot connect: {error}"))?;
    stream.set_read_timeout(Some(timeout)).map_err(|error| error.to_string())?;
    stream.set_write_timeout(Some(timeout)).map_err(|error| error.to_string())?;
    stream
        .write_all(b"GET /_ping HTTP/1.1\r\nHost: keel\r\nConnection: close\r\n\r\n")
        .map_err(|error| format!("cannot send the request: {error}"))?;
    let mut answer = Vec::new();
    stream
        .take(MAX_ANSWER)
        .read_to_end(&mut answer)
        .map_err(|error| format!("no whole answer within {timeout:?}: {error}"))?;
    let answer = String::from_utf8_lossy(&answer);
    let status_line = answer.lines().next().unwrap_or_default();
    if !status_line.starts_with("HTTP/1.1 200 ") {
        return Err(format!("answered {status_line:?}"));
    }
    let body = answer.split_once("\r\n\r\n").map(|(_, body)| body).unwrap_or_default();
    if body != "OK" {
        return Err(format!("answered 200 with {body:?} rather than \"OK\""));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::net::UnixListener;

    /// A server on a fresh socket that reads the request and answers `reply` (or nothing), once.
    fn server(reply: Option<&'static [u8]>) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let socket = dir.path().join("api.sock");
        let listener = UnixListener::bind(&socket).unwrap();
        std::thread::spawn(move || {
            let (mut stream, _) = listener.accept().unwrap();
            let mut request = [0u8; 1024];
            let _ = stream.read(&mut request);
            match reply {
                Some(reply) => {
                    let _ = stream.write_all(reply);
                }
                None => std::thread::sleep(Duration::from_secs(5)),
            }
        });
        (dir, socket)
    }

    #[test]
    fn an_api_that_answers_ok_passes() {
        let (_dir, socket) = server(Some(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nApi-Version: 1.43\r\n\r\nOK"));
        assert_eq!(ping(&socket, Duration::from_secs(5)), Ok(()));
    }

    #[test]
    fn no_socket_an_error_status_another_body_or_silence_fail_and_say_why() {
        let dir = tempfile::tempdir().unwrap();
        let missing = ping(&dir.path().join("none.sock"), Duration::from_secs(1)).unwrap_err();
        assert!(missing.starts_with("cannot connect: "), "{missing}");
        let (_dir, socket) = server(Some(b"HTTP/1.1 500 Internal Server Error\r\n\r\n"));
        assert_eq!(
            ping(&socket, Duration::from_secs(5)).unwrap_err(),
            "answered \"HTTP/1.1 500 Internal Server Error\""
        );
        let (_dir, socket) = server(Some(b"HTTP/1.1 200 OK\r\n\r\nnot docker"));
        assert!(ping(&socket, Duration::from_secs(5)).unwrap_err().contains("\"not docker\""));
        let (_dir, socket) = server(None);
        let silent = ping(&socket, Duration::from_millis(200)).unwrap_err();
        assert!(silent.starts_with("no whole answer within 200ms"), "{silent}");
    }
}
