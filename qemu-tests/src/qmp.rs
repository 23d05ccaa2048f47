//! Minimal QMP client over QEMU's unix socket: greeting, `qmp_capabilities`, then one command at a time.

use std::io::{self, BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// How often `connect` retries while QEMU has not yet created the socket.
const CONNECT_RETRY: Duration = Duration::from_millis(25);
/// Longest wait for a single reply; QEMU answers within milliseconds unless it is wedged.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a QMP exchange failed.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    #[error("connecting to the QMP socket {} (gave up after {timeout:?})", path.display())]
    Connect {
        path: PathBuf,
        timeout: Duration,
        #[source]
        source: io::Error,
    },
    #[error("QMP greeting on {} was not valid: {line}", path.display())]
    Greeting { path: PathBuf, line: String },
    #[error("sending QMP command `{command}`")]
    Send {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("reading the QMP reply to `{command}`")]
    Receive {
        command: String,
        #[source]
        source: io::Error,
    },
    #[error("QEMU closed the QMP socket while `{command}` was pending")]
    Closed { command: String },
    #[error("QMP reply to `{command}` is not JSON: {line}")]
    BadReply { command: String, line: String },
    #[error("QMP command `{command}` failed: {class}: {desc}")]
    CommandFailed { command: String, class: String, desc: String },
    #[error("QMP command has no string `execute` field: {command}")]
    NoExecute { command: String },
}

/// A connected QMP session in command mode.
pub struct QmpClient {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl QmpClient {
    /// Connects to `path`, retrying every 25 ms until `timeout` (QEMU creates the socket shortly after start),
    /// reads the greeting and enters command mode.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Self, QmpError> {
        let deadline = Instant::now() + timeout;
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(stream) => break stream,
                Err(source) if Instant::now() >= deadline => {
                    return Err(QmpError::Connect { path: path.to_path_buf(), timeout, source })
                }
                Err(_) => std::thread::sleep(CONNECT_RETRY),
            }
        };
        let io_err = |source| QmpError::Connect { path: path.to_path_buf(), timeout, source };
        stream.set_read_timeout(Some(REPLY_TIMEOUT)).map_err(io_err)?;
        let writer = stream.try_clone().map_err(io_err)?;
        let mut client = Self { reader: BufReader::new(stream), writer };
        let greeting = client.read_message("greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Greeting { path: path.to_path_buf(), line: greeting.to_string() });
        }
        client.execute(&json!({ "execute": "qmp_capabilities" }))?;
        Ok(client)
    }

    /// Runs one command, e.g. `{"execute": "query-status"}`, and returns its `return` value.
    /// Asynchronous events that arrive meanwhile are skipped.
    pub fn execute(&mut self, command: &Value) -> Result<Value, QmpError> {
        let name = command
            .get("execute")
            .and_then(Value::as_str)
            .ok_or_else(|| QmpError::NoExecute { command: command.to_string() })?
            .to_owned();
        let mut line = command.to_string();
        line.push('\n');
        self.writer
            .write_all(line.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|source| QmpError::Send { command: name.clone(), source })?;
        loop {
            let mut reply = self.read_message(&name)?;
            if reply.get("event").is_some() {
                continue;
            }
            if let Some(value) = reply.get_mut("return") {
                return Ok(value.take());
            }
            if let Some(error) = reply.get("error") {
                let field = |key: &str| error.get(key).and_then(Value::as_str).unwrap_or("?").to_owned();
                return Err(QmpError::CommandFailed { command: name, class: field("class"), desc: field("desc") });
            }
            return Err(QmpError::BadReply { command: name, line: reply.to_string() });
        }
    }

    fn read_message(&mut self, command: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|source| QmpError::Receive { command: command.to_owned(), source })?;
        if n == 0 {
            return Err(QmpError::Closed { command: command.to_owned() });
        }
        serde_json::from_str(&line).map_err(|_| QmpError::BadReply { command: command.to_owned(), line })
    }
}
