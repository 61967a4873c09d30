//! A private `redis-server` for one test: a free loopback port, a temporary directory, no
//! persistence, killed on drop.
//!
//! Under `CI=true` a missing `redis-server` fails the test (CI must prove the shared-store
//! path); elsewhere the test is skipped with the reason printed (`scripts/ensure-deps`
//! installs it).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct RedisServer {
    child: Option<Child>,
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

/// Where `redis-server` is, from `PATH`.
fn find_bin() -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join("redis-server"))
        .find(|p| p.is_file())
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// One `PING` over a fresh connection.
pub fn ping(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect_timeout(
        &std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        Duration::from_millis(200),
    ) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

impl RedisServer {
    /// Start one, or `None` (with the reason printed) when `redis-server` is not installed
    /// and this is not CI.
    pub fn start() -> Option<Self> {
        let Some(bin) = find_bin() else {
            let reason = "redis-server is not installed (scripts/ensure-deps installs it)";
            if std::env::var("CI").is_ok_and(|v| v == "true") {
                panic!("{reason}; under CI=true the shared-store tests must run");
            }
            eprintln!("SKIPPED: {reason}");
            return None;
        };
        // The port is free when chosen; if another process takes it before redis binds,
        // redis exits and another port is tried.
        for _ in 0..5 {
            let mut me = Self {
                child: None,
                port: free_port(),
                dir: tempfile::tempdir().unwrap(),
                bin: bin.clone(),
            };
            if me.spawn() {
                return Some(me);
            }
        }
        panic!("redis-server did not start on any of 5 free ports");
    }

    /// Spawn on `self.port` and wait until it answers `PING`. False if it exited.
    fn spawn(&mut self) -> bool {
        let child = Command::new(&self.bin)
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(self.dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if ping(self.port) {
                return true;
            }
            if let Some(c) = self.child.as_mut()
                && c.try_wait().unwrap().is_some()
            {
                self.child = None;
                return false;
            }
            // Poll interval, not a wait for a guessed duration.
            std::thread::sleep(Duration::from_millis(5));
        }
        panic!("redis-server on port {} never answered PING", self.port);
    }

    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/", self.port)
    }

    /// SIGKILL: the server is gone at once, with everything it held (no persistence).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        assert!(!ping(self.port), "redis still answers after stop");
    }

    /// SIGSTOP (`true`) or SIGCONT (`false`): a server that accepts connections but never
    /// answers, like a hung or partitioned Redis.
    pub fn freeze(&self, frozen: bool) {
        let pid = self.child.as_ref().expect("running").id();
        let sig = if frozen { "-STOP" } else { "-CONT" };
        let ok = Command::new("kill")
            .args([sig, &pid.to_string()])
            .status()
            .unwrap();
        assert!(ok.success());
    }

    /// Start again on the same port.
    pub fn restart(&mut self) {
        assert!(self.child.is_none(), "restart after stop");
        assert!(
            self.spawn(),
            "redis-server did not restart on port {}",
            self.port
        );
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}
