//! A Bearer-token front for a real registry: answers `/v2/…` without a valid token with 401 and a
//! `WWW-Authenticate: Bearer realm=…,service=…,scope=…` challenge, issues tokens at `/token` (after checking Basic
//! credentials), and forwards authorised requests to the registry behind it. From the client's side this is the
//! real token flow; the registry behind it stays open.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;

pub const SERVICE: &str = "keel-test-registry";

pub struct TokenProxy {
    pub port: u16,
    pub tokens_issued: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

struct Settings {
    registry_port: u16,
    proxy_port: u16,
    credentials: (String, String),
    token: String,
}

impl TokenProxy {
    /// Fronts the registry on `registry_port`; tokens go only to `user`/`password`.
    pub fn start(registry_port: u16, user: &str, password: &str) -> TokenProxy {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let settings = Arc::new(Settings {
            registry_port,
            proxy_port: port,
            credentials: (user.to_string(), password.to_string()),
            token: format!("token-{}", std::process::id()),
        });
        let stop = Arc::new(AtomicBool::new(false));
        let tokens_issued = Arc::new(AtomicUsize::new(0));
        let (stop_flag, issued) = (stop.clone(), tokens_issued.clone());
        let thread = std::thread::spawn(move || {
            for connection in listener.incoming() {
                if stop_flag.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(connection) = connection else { continue };
                let (settings, issued) = (settings.clone(), issued.clone());
                std::thread::spawn(move || {
                    let _ = handle(connection, &settings, &issued);
                });
            }
        });
        TokenProxy { port, tokens_issued, stop, thread: Some(thread) }
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }
}

impl Drop for TokenProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn handle(mut client: TcpStream, settings: &Settings, issued: &AtomicUsize) -> std::io::Result<()> {
    let mut reader = BufReader::new(client.try_clone()?);
    let mut request_line = String::new();
    reader.read_line(&mut request_line)?;
    let mut headers = Vec::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 || line == "\r\n" {
            break;
        }
        if let Some((name, value)) = line.trim_end().split_once(':') {
            headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
        }
    }
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let authorization = headers.iter().find(|(name, _)| name == "authorization").map(|(_, value)| value.clone());

    if target.starts_with("/token") {
        let expected = basic(&settings.credentials.0, &settings.credentials.1);
        if authorization.as_deref() != Some(expected.as_str()) {
            return respond(&mut client, "401 Unauthorized", &[], b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}");
        }
        issued.fetch_add(1, Ordering::SeqCst);
        let body = format!("{{\"access_token\":\"{}\",\"expires_in\":300}}", settings.token);
        return respond(&mut client, "200 OK", &[("Content-Type", "application/json")], body.as_bytes());
    }

    if authorization.as_deref() != Some(format!("Bearer {}", settings.token).as_str()) {
        let repository = target
            .strip_prefix("/v2/")
            .and_then(|rest| rest.split("/manifests/").next())
            .and_then(|rest| rest.split("/blobs/").next())
            .unwrap_or("");
        let challenge = format!(
            "Bearer realm=\"http://127.0.0.1:{}/token\",service=\"{SERVICE}\",scope=\"repository:{repository}:pull\"",
            settings.proxy_port
        );
        return respond(
            &mut client,
            "401 Unauthorized",
            &[("WWW-Authenticate", &challenge), ("Content-Type", "application/json")],
            b"{\"errors\":[{\"code\":\"UNAUTHORIZED\"}]}",
        );
    }

    let mut upstream = TcpStream::connect(("127.0.0.1", settings.registry_port))?;
    write!(
        upstream,
        "{method} {target} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n",
        settings.registry_port
    )?;
    for (name, value) in &headers {
        if name == "accept" {
            write!(upstream, "Accept: {value}\r\n")?;
        }
    }
    write!(upstream, "\r\n")?;
    // The registry closes after one response (Connection: close), so copying to EOF relays exactly it.
    std::io::copy(&mut upstream, &mut client)?;
    let _ = client.shutdown(std::net::Shutdown::Both);
    let mut rest = Vec::new();
    let _ = reader.read_to_end(&mut rest);
    Ok(())
}

fn respond(client: &mut TcpStream, status: &str, headers: &[(&str, &str)], body: &[u8]) -> std::io::Result<()> {
    write!(client, "HTTP/1.1 {status}\r\nContent-Length: {}\r\nConnection: close\r\n", body.len())?;
    for (name, value) in headers {
        write!(client, "{name}: {value}\r\n")?;
    }
    write!(client, "\r\n")?;
    client.write_all(body)?;
    client.flush()
}

fn basic(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}").into_bytes();
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let group = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(ALPHABET[((group >> (18 - 6 * position)) & 0x3f) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    format!("Basic {out}")
}
