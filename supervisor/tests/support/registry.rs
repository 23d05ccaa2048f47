//! Starts the Debian `docker-registry` on a free loopback port with its own storage dir; killed on drop.

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Registry {
    pub port: u16,
    pub dir: PathBuf,
    child: Child,
}

impl Registry {
    /// An open registry (anonymous pulls and pushes).
    pub fn start(dir: &Path) -> Registry {
        Registry::start_with(dir, None)
    }

    /// A registry requiring HTTP basic auth for `user`/`password` (htpasswd, bcrypt).
    pub fn start_with_basic_auth(dir: &Path, user: &str, password: &str) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        let htpasswd = dir.join("htpasswd");
        super::run("htpasswd", &["-Bbc", htpasswd.to_str().unwrap(), user, password]);
        Registry::start_with(dir, Some(&htpasswd))
    }

    fn start_with(dir: &Path, htpasswd: Option<&Path>) -> Registry {
        std::fs::create_dir_all(dir).unwrap();
        // A free port can be taken between our probe and the registry's bind: retry with another one.
        for _ in 0..5 {
            let port = free_port();
            let auth = htpasswd
                .map(|path| format!("auth:\n  htpasswd:\n    realm: keel-test\n    path: {}\n", path.display()))
                .unwrap_or_default();
            let config = format!(
                "version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: 127.0.0.1:{port}\n{auth}",
                dir.join("storage").display()
            );
            let config_path = dir.join("config.yml");
            std::fs::write(&config_path, config).unwrap();
            let log = std::fs::File::create(dir.join("registry.log")).unwrap();
            let child = Command::new("/usr/bin/docker-registry")
                .arg("serve")
                .arg(&config_path)
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("starting docker-registry");
            let mut registry = Registry { port, dir: dir.to_path_buf(), child };
            if registry.wait_until_answering() {
                return registry;
            }
        }
        panic!("docker-registry did not come up; see {}/registry.log", dir.display());
    }

    /// Waits (generously) for `GET /v2/` to answer at all; false if the process died (port taken).
    fn wait_until_answering(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return false;
            }
            if http_status(self.port, "/v2/").is_some() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        false
    }

    pub fn host(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Where the registry keeps blob `hex`'s bytes.
    pub fn blob_data_path(&self, hex: &str) -> PathBuf {
        self.dir.join("storage/docker/registry/v2/blobs/sha256").join(&hex[..2]).join(hex).join("data")
    }
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// The status code of a plain HTTP GET, or None if nothing answers.
pub fn http_status(port: u16, path: &str) -> Option<u16> {
    let mut stream = TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(stream, "GET {path} HTTP/1.0\r\nHost: 127.0.0.1:{port}\r\n\r\n").ok()?;
    let mut head = [0u8; 12];
    stream.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}
