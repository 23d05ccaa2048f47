//! A TCP server on the host's loopback that keeps everything guests send it: the far end for tests that prove a
//! guest reaches the host (QEMU's user network maps the guest's 10.0.2.2 to the host's 127.0.0.1).

use std::io::Read;
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

#[derive(Default)]
struct Received {
    text: Mutex<String>,
    changed: Condvar,
}

/// Listens on 127.0.0.1 at a free port until dropped.
pub struct TcpCollector {
    port: u16,
    received: Arc<Received>,
    stopping: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl TcpCollector {
    pub fn start() -> std::io::Result<Self> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let port = listener.local_addr()?.port();
        let received = Arc::new(Received::default());
        let stopping = Arc::new(AtomicBool::new(false));
        let (shared, stop) = (Arc::clone(&received), Arc::clone(&stopping));
        let acceptor = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(stream) = stream else { continue };
                let shared = Arc::clone(&shared);
                std::thread::spawn(move || collect(stream, &shared));
            }
        });
        Ok(TcpCollector { port, received, stopping, acceptor: Some(acceptor) })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Everything received so far, from all connections, as text.
    pub fn text(&self) -> String {
        self.received.text.lock().unwrap_or_else(PoisonError::into_inner).clone()
    }

    /// Waits until the received text contains `needle`; returns whether it did within `timeout`.
    pub fn wait_for(&self, needle: &str, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut text = self.received.text.lock().unwrap_or_else(PoisonError::into_inner);
        while !text.contains(needle) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return false;
            }
            text = self.received.changed.wait_timeout(text, left).unwrap_or_else(PoisonError::into_inner).0;
        }
        true
    }
}

fn collect(mut stream: TcpStream, received: &Received) {
    let mut buffer = [0u8; 4096];
    while let Ok(read) = stream.read(&mut buffer) {
        if read == 0 {
            break;
        }
        received
            .text
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push_str(&String::from_utf8_lossy(&buffer[..read]));
        received.changed.notify_all();
    }
    let _ = stream.shutdown(Shutdown::Both);
}

impl Drop for TcpCollector {
    fn drop(&mut self) {
        self.stopping.store(true, Ordering::SeqCst);
        // Wakes the blocking accept so the thread sees the flag.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}
