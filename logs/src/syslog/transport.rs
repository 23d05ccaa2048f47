//! Opens a socket to a syslog target and writes one line to it: UDP and unix datagrams, or octet-counted TCP,
//! in the clear or in TLS (RFC 5425).

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs, UdpSocket};
use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use keel_config::SyslogTarget;
use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use super::tls::TlsTrust;
use crate::append::{push_bytes, push_digits};

/// Bounds every blocking step, so the relay thread notices a flush deadline and a wedged receiver.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const WRITE_TIMEOUT: Duration = Duration::from_secs(2);

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("resolving {target}")]
    Resolve {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target} resolves to no address")]
    NoAddress { target: String },
    #[error("opening a socket for {target}")]
    Socket {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("connecting to {target}")]
    Connect {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target} closed the connection")]
    Closed { target: String },
    #[error("sending to {target}")]
    Send {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target}: {host:?} is not a name a TLS certificate can carry")]
    TlsName { target: String, host: String },
    #[error("{target}: TLS")]
    Tls {
        target: String,
        #[source]
        source: rustls::Error,
    },
    #[error("{target}: the TLS trust settings")]
    TlsConfig {
        target: String,
        #[source]
        source: super::tls::TlsConfigError,
    },
}

/// An open socket to the receiver.
#[derive(Debug)]
pub(crate) struct Transport {
    socket: Socket,
    target: String,
}

#[derive(Debug)]
enum Socket {
    Udp(UdpSocket),
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
    Unix(UnixDatagram),
}

impl Transport {
    /// Connects (TCP; TLS with `tls`, which a `tls://` target needs), or binds and connects (datagrams, so that a
    /// gone receiver shows up as a send error). The TLS handshake happens with the first line.
    pub(crate) fn connect(target: &SyslogTarget, trust: &mut TlsTrust) -> Result<Transport, TransportError> {
        let name = describe(target);
        let socket = match target {
            SyslogTarget::Udp { host, port } => Socket::Udp(connect_udp(&name, host, *port)?),
            SyslogTarget::Tcp { host, port } => Socket::Tcp(connect_tcp(&name, host, *port)?),
            SyslogTarget::Tls { host, port } => {
                let server = ServerName::try_from(host.clone())
                    .map_err(|_| TransportError::TlsName { target: name.clone(), host: host.clone() })?;
                let config = trust
                    .client_config()
                    .map_err(|source| TransportError::TlsConfig { target: name.clone(), source })?;
                let connection = ClientConnection::new(config, server)
                    .map_err(|source| TransportError::Tls { target: name.clone(), source })?;
                let stream = connect_tcp(&name, host, *port)?;
                // The handshake reads: bound it like the writes.
                stream.set_read_timeout(Some(WRITE_TIMEOUT)).map_err(|source| socket_error(&name, source))?;
                Socket::Tls(Box::new(StreamOwned::new(connection, stream)))
            }
            SyslogTarget::Unix(path) => {
                let socket = UnixDatagram::unbound().map_err(|source| socket_error(&name, source))?;
                socket.connect(path).map_err(|source| TransportError::Connect { target: name.clone(), source })?;
                // A full receive queue on the other side would block forever otherwise.
                socket.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(|source| socket_error(&name, source))?;
                Socket::Unix(socket)
            }
        };
        Ok(Transport { socket, target: name })
    }

    /// Sends `frames`: each line a datagram of its own, or on a stream all of them with one write.
    pub(crate) fn send_all(&mut self, frames: &Frames) -> Result<(), TransportError> {
        let result = match &mut self.socket {
            Socket::Udp(socket) => frames.lines().try_for_each(|line| socket.send(line).map(drop)),
            Socket::Unix(socket) => frames.lines().try_for_each(|line| socket.send(line).map(drop)),
            Socket::Tcp(stream) => {
                if peer_closed(stream) {
                    return Err(TransportError::Closed { target: self.target.clone() });
                }
                stream.write_all(&frames.bytes)
            }
            Socket::Tls(stream) => {
                if tls_peer_closed(stream) {
                    return Err(TransportError::Closed { target: self.target.clone() });
                }
                stream.write_all(&frames.bytes).and_then(|()| stream.flush())
            }
        };
        result.map_err(|source| TransportError::Send { target: self.target.clone(), source })
    }
}

/// Lines ready to send to one target, in one buffer that the relay thread reuses: on a stream each framed as
/// `LEN SP LINE` (RFC 6587 octet counting, which RFC 5425 uses over TLS too), for datagrams as they are.
#[derive(Debug)]
pub(crate) struct Frames {
    counted: bool,
    bytes: Vec<u8>,
    /// Where each line ends in `bytes` (datagrams only).
    ends: Vec<usize>,
    /// The line being added, before its length is known.
    line: Vec<u8>,
}

impl Frames {
    /// Frames for `target`'s kind of socket.
    pub(crate) fn for_target(target: &SyslogTarget) -> Frames {
        let counted = matches!(target, SyslogTarget::Tcp { .. } | SyslogTarget::Tls { .. });
        Frames { counted, bytes: Vec::new(), ends: Vec::new(), line: Vec::new() }
    }

    /// Adds the line `write` appends to the buffer it is given.
    pub(crate) fn push(&mut self, write: impl FnOnce(&mut Vec<u8>)) {
        if self.counted {
            self.line.clear();
            write(&mut self.line);
            push_digits(&mut self.bytes, self.line.len() as u64, 1);
            self.bytes.push(b' ');
            push_bytes(&mut self.bytes, &self.line);
        } else {
            write(&mut self.bytes);
            self.ends.push(self.bytes.len());
        }
    }

    /// Empties it, keeping at most `keep` bytes of buffer for the next batch.
    pub(crate) fn clear(&mut self, keep: usize) {
        self.bytes.clear();
        self.ends.clear();
        if self.bytes.capacity() > keep {
            self.bytes.shrink_to(keep);
        }
        if self.line.capacity() > keep {
            self.line.shrink_to(keep);
        }
    }

    fn lines(&self) -> impl Iterator<Item = &[u8]> + '_ {
        self.ends.iter().scan(0, |start, &end| {
            let line = self.bytes.get(*start..end).unwrap_or_default();
            *start = end;
            Some(line)
        })
    }
}

/// `udp://host:514`, as the config spells it.
pub(crate) fn describe(target: &SyslogTarget) -> String {
    match target {
        SyslogTarget::Udp { host, port } => format!("udp://{}:{port}", bracketed(host)),
        SyslogTarget::Tcp { host, port } => format!("tcp://{}:{port}", bracketed(host)),
        SyslogTarget::Tls { host, port } => format!("tls://{}:{port}", bracketed(host)),
        SyslogTarget::Unix(path) => format!("unix://{}", path.display()),
    }
}

fn bracketed(host: &str) -> String {
    if host.contains(':') {
        format!("[{host}]")
    } else {
        host.to_owned()
    }
}

fn resolve(name: &str, host: &str, port: u16) -> Result<Vec<SocketAddr>, TransportError> {
    let addresses: Vec<SocketAddr> = (host, port)
        .to_socket_addrs()
        .map_err(|source| TransportError::Resolve { target: name.to_owned(), source })?
        .collect();
    if addresses.is_empty() {
        return Err(TransportError::NoAddress { target: name.to_owned() });
    }
    Ok(addresses)
}

fn connect_tcp(name: &str, host: &str, port: u16) -> Result<TcpStream, TransportError> {
    let mut last = None;
    for address in resolve(name, host, port)? {
        match TcpStream::connect_timeout(&address, CONNECT_TIMEOUT) {
            Ok(stream) => {
                stream.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(|source| socket_error(name, source))?;
                // Lines go out one by one as they come; Nagle would only hold them back.
                stream.set_nodelay(true).map_err(|source| socket_error(name, source))?;
                return Ok(stream);
            }
            Err(error) => last = Some(error),
        }
    }
    let source = last.unwrap_or_else(|| io::Error::from(io::ErrorKind::AddrNotAvailable));
    Err(TransportError::Connect { target: name.to_owned(), source })
}

fn connect_udp(name: &str, host: &str, port: u16) -> Result<UdpSocket, TransportError> {
    let address = resolve(name, host, port)?
        .into_iter()
        .next()
        .ok_or_else(|| TransportError::NoAddress { target: name.to_owned() })?;
    let local: SocketAddr = if address.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let socket = UdpSocket::bind(local).map_err(|source| socket_error(name, source))?;
    // Connected, so that an ICMP "port unreachable" comes back as ECONNREFUSED on a later send.
    socket.connect(address).map_err(|source| TransportError::Connect { target: name.to_owned(), source })?;
    socket.set_write_timeout(Some(WRITE_TIMEOUT)).map_err(|source| socket_error(name, source))?;
    Ok(socket)
}

fn socket_error(name: &str, source: io::Error) -> TransportError {
    TransportError::Socket { target: name.to_owned(), source }
}

/// Whether the receiver has closed or reset the connection. A write after the peer went away still succeeds once
/// (it only provokes the RST), so without this check the first line after a receiver restart would be lost.
fn peer_closed(stream: &TcpStream) -> bool {
    if stream.set_nonblocking(true).is_err() {
        return false;
    }
    let mut byte = [0u8; 1];
    let closed = match stream.peek(&mut byte) {
        Ok(0) => true,
        Ok(_) => false, // receivers don't talk back; data is odd but not a closed connection
        Err(error) => error.kind() != io::ErrorKind::WouldBlock,
    };
    // If blocking mode can't be restored, writes could fail with WouldBlock: treat that as a broken connection.
    closed || stream.set_nonblocking(false).is_err()
}

/// Whether a TLS receiver has closed, reset or sent its `close_notify`. Unlike plain TCP a peek is not enough: a
/// receiver sends session tickets after the handshake, so the records waiting are read and processed here.
fn tls_peer_closed(stream: &mut StreamOwned<ClientConnection, TcpStream>) -> bool {
    if stream.sock.set_nonblocking(true).is_err() {
        return false;
    }
    let closed = loop {
        match stream.conn.read_tls(&mut stream.sock) {
            Ok(0) => break true,
            Ok(_) => match stream.conn.process_new_packets() {
                Ok(state) if state.peer_has_closed() => break true,
                Ok(state) => {
                    // Receivers don't talk back; whatever plaintext came is read and let go.
                    let mut sink = vec![0; state.plaintext_bytes_to_read()];
                    let _ = stream.conn.reader().read(&mut sink);
                }
                Err(_) => break true,
            },
            Err(error) => break error.kind() != io::ErrorKind::WouldBlock,
        }
    };
    closed || stream.sock.set_nonblocking(false).is_err()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Read;
    use std::net::TcpListener;

    fn frames_of(target: SyslogTarget, lines: &[&str]) -> Frames {
        let mut frames = Frames::for_target(&target);
        for line in lines {
            frames.push(|out| out.extend_from_slice(line.as_bytes()));
        }
        frames
    }

    #[test]
    fn datagram_frames_keep_each_line_apart() {
        let frames = frames_of(SyslogTarget::Udp { host: "h".into(), port: 514 }, &["a", "", "bc"]);
        assert_eq!(frames.lines().collect::<Vec<_>>(), [&b"a"[..], b"", b"bc"]);
    }

    #[test]
    fn frames_tcp_lines_with_their_length() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut transport =
            Transport::connect(&SyslogTarget::Tcp { host: "127.0.0.1".into(), port }, &mut TlsTrust::new(None))
                .unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        transport.send_all(&frames_of(SyslogTarget::Tcp { host: "h".into(), port }, &["<13>1 hello"])).unwrap();
        transport.send_all(&frames_of(SyslogTarget::Tcp { host: "h".into(), port }, &["two", "", "3"])).unwrap();
        drop(transport);
        let mut received = String::new();
        accepted.read_to_string(&mut received).unwrap();
        assert_eq!(received, "11 <13>1 hello3 two0 1 3");
    }

    #[test]
    fn notices_a_closed_tcp_peer_before_writing() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut transport =
            Transport::connect(&SyslogTarget::Tcp { host: "127.0.0.1".into(), port }, &mut TlsTrust::new(None))
                .unwrap();
        let (accepted, _) = listener.accept().unwrap();
        drop(accepted);
        std::thread::sleep(Duration::from_millis(50));
        let frames = frames_of(SyslogTarget::Tcp { host: "h".into(), port }, &["lost?"]);
        assert!(matches!(transport.send_all(&frames), Err(TransportError::Closed { .. })));
    }

    #[test]
    fn describes_targets_as_the_config_spells_them() {
        assert_eq!(describe(&SyslogTarget::Tcp { host: "fd00::1".into(), port: 601 }), "tcp://[fd00::1]:601");
        assert_eq!(describe(&SyslogTarget::Udp { host: "h".into(), port: 514 }), "udp://h:514");
        assert_eq!(describe(&SyslogTarget::Tls { host: "h".into(), port: 6514 }), "tls://h:6514");
        assert_eq!(describe(&SyslogTarget::Unix("/dev/log".into())), "unix:///dev/log");
    }

    #[test]
    fn fails_to_connect_to_a_missing_unix_socket() {
        let error =
            Transport::connect(&SyslogTarget::Unix("/nonexistent/keel-log.sock".into()), &mut TlsTrust::new(None))
                .unwrap_err();
        assert!(matches!(error, TransportError::Connect { .. }), "{error:?}");
    }
}
