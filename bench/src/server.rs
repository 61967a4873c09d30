//! Child processes: lanyard itself (release build, from this workspace) and, for Redis mode,
//! a `redis-server` on a free loopback port. Plus the `/proc` readings: CPU time of a process
//! (all its threads, living and exited) and of the whole machine.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A child killed on drop.
pub struct Proc {
    /// The child.
    pub child: Child,
}

impl Proc {
    /// Its process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Where the `lanyard` binary is: `--lanyard`, else the release build in this program's
/// target directory. When run through `cargo run`, it is (re)built first so that it is never
/// stale.
pub fn lanyard_binary(explicit: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(p) = explicit {
        return Ok(p);
    }
    let me = std::env::current_exe().map_err(|e| e.to_string())?;
    let dir = me.parent().ok_or("no directory of the bench binary")?;
    let release = if dir.ends_with("release") {
        dir.to_path_buf()
    } else {
        dir.parent().ok_or("no target directory")?.join("release")
    };
    if let Ok(cargo) = std::env::var("CARGO") {
        // CARGO is set by `cargo run`: build the server of the same workspace.
        let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml");
        eprintln!("building lanyard (release) …");
        let mut build = Command::new(cargo);
        // `cargo run` gives this program its package's variables; passed on, they would make
        // build scripts that watch them (ring's) look changed and rebuild everything.
        for (k, _) in std::env::vars_os() {
            if let Some(k) = k.to_str()
                && (k.starts_with("CARGO_PKG_")
                    || matches!(
                        k,
                        "CARGO_MANIFEST_DIR"
                            | "CARGO_MANIFEST_PATH"
                            | "CARGO_CRATE_NAME"
                            | "CARGO_BIN_NAME"
                            | "CARGO_PRIMARY_PACKAGE"
                    ))
            {
                build.env_remove(k);
            }
        }
        let status = build
            .args([
                "build",
                "--release",
                "--quiet",
                // Both packages, so that features resolve as for `cargo run -p lanyard-bench`
                // and nothing already built is rebuilt.
                "-p",
                "lanyard",
                "-p",
                "lanyard-bench",
                "--bin",
                "lanyard",
                "--manifest-path",
            ])
            .arg(&manifest)
            .status()
            .map_err(|e| format!("cargo build: {e}"))?;
        if !status.success() {
            return Err("cargo build --release --bin lanyard failed".into());
        }
    }
    let bin = release.join("lanyard");
    if bin.exists() {
        Ok(bin)
    } else {
        Err(format!(
            "no lanyard binary at {}: run `cargo build --release` or pass --lanyard",
            bin.display()
        ))
    }
}

/// `lanyard keys generate` for the site's config.
pub fn generate_keys(lanyard: &Path, config: &Path) -> Result<(), String> {
    let out = Command::new(lanyard)
        .args(["keys", "generate", "--config"])
        .arg(config)
        .output()
        .map_err(|e| format!("{}: {e}", lanyard.display()))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "lanyard keys generate: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// A started lanyard.
pub struct Lanyard {
    /// The process.
    pub proc: Proc,
}

/// Why lanyard did not start.
pub enum StartFailure {
    /// It exited at startup (e.g. a configuration this build does not know), with its output.
    Refused(String),
    /// Anything else.
    Other(String),
}

/// Start `lanyard serve --config <config>` (which listens on `addr`) and wait until it
/// accepts connections. Its log (one JSON line per event at the configured level) is read and
/// discarded by a thread, as a log shipper would, so the pipe never blocks it; the first lines
/// are kept to explain a refusal.
pub fn start_lanyard(
    lanyard: &Path,
    config: &Path,
    addr: std::net::SocketAddr,
) -> Result<Lanyard, StartFailure> {
    let mut child = Command::new(lanyard)
        .args(["serve", "--config"])
        .arg(config)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| StartFailure::Other(format!("{}: {e}", lanyard.display())))?;
    let Some(mut stderr) = child.stderr.take() else {
        return Err(StartFailure::Other("no stderr pipe".into()));
    };
    let head = std::sync::Arc::new(std::sync::Mutex::new(Vec::<u8>::new()));
    let h2 = head.clone();
    std::thread::spawn(move || {
        let mut buf = vec![0u8; 1 << 16];
        while let Ok(n) = stderr.read(&mut buf) {
            if n == 0 {
                break;
            }
            if let Ok(mut h) = h2.lock()
                && h.len() < 16 * 1024
            {
                h.extend_from_slice(&buf[..n]);
            }
        }
    });
    let mut proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = |head: &std::sync::Mutex<Vec<u8>>| {
        head.lock()
            .map(|h| String::from_utf8_lossy(&h).into_owned())
            .unwrap_or_default()
    };
    while Instant::now() < deadline {
        if let Ok(Some(_)) = proc.child.try_wait() {
            // Let the reader take the last lines.
            std::thread::sleep(Duration::from_millis(100));
            return Err(StartFailure::Refused(text(&head)));
        }
        if std::net::TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(Lanyard { proc });
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(StartFailure::Other(format!(
        "lanyard did not listen on {addr} within 30 s:\n{}",
        text(&head)
    )))
}

/// A free loopback port (bound and released; Redis binds it a moment later).
pub fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(l.local_addr().map_err(|e| e.to_string())?.port())
}

/// Start `redis-server` on a free loopback port with its data in `dir`; wait until it
/// answers PING. `appendfsync`: `always` (as durable as the embedded store), `everysec`, `no`.
pub fn start_redis(binary: &str, dir: &Path, appendfsync: &str) -> Result<(Proc, u16), String> {
    let port = free_port()?;
    let child = Command::new(binary)
        .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
        .args([
            "--save",
            "",
            "--appendonly",
            "yes",
            "--appendfsync",
            appendfsync,
        ])
        .args(["--protected-mode", "yes", "--daemonize", "no", "--dir"])
        .arg(dir)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("{binary}: {e}"))?;
    let proc = Proc { child };
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if ping_redis(port) {
            return Ok((proc, port));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("redis-server on port {port} did not answer PING"))
}

fn ping_redis(port: u16) -> bool {
    use std::io::Write as _;
    let Ok(mut s) = std::net::TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_millis(500)));
    if s.write_all(b"PING\r\n").is_err() {
        return false;
    }
    let mut buf = [0u8; 7];
    s.read_exact(&mut buf).is_ok() && &buf == b"+PONG\r\n"
}

/// Clock ticks per second of `/proc` CPU times.
pub fn clock_ticks() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|t| *t > 0.0)
        .unwrap_or(100.0)
}

/// User + system CPU seconds of process `pid` (`self` for this one) so far, all threads.
pub fn cpu_seconds(pid: &str, ticks: f64) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces), from field 3 (state).
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = f.get(11)?.parse().ok()?;
    let stime: f64 = f.get(12)?.parse().ok()?;
    Some((utime + stime) / ticks)
}

/// Busy and total CPU seconds of the whole machine so far (`/proc/stat`, all CPUs).
pub fn machine_seconds(ticks: f64) -> Option<(f64, f64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?;
    let v: Vec<f64> = line
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    // user nice system idle iowait irq softirq steal (guest is inside user).
    let total: f64 = v.iter().take(8).sum();
    let idle = v.get(3).copied().unwrap_or(0.0) + v.get(4).copied().unwrap_or(0.0);
    Some(((total - idle) / ticks, total / ticks))
}

/// The 1-, 5- and 15-minute load averages.
pub fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|| "?".into())
}

/// The machine: CPUs and model.
pub fn machine() -> String {
    let n = std::thread::available_parallelism().map_or(0, usize::from);
    let model = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|c| {
            c.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, m)| m.trim().to_owned())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    format!("{n} CPUs, {model}")
}
