//! The examples as child processes: building an example once per test
//! process, starting it, learning where it listens from its stderr,
//! signalling it and reading its exit report.
//!
//! A [`ChildServer`] kills and reaps its process when dropped, so a failing
//! test leaves no server running.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Mutex};
use std::time::{Duration, Instant};

/// Path of an example binary next to this test binary, built (or rebuilt)
/// first if this test process has not yet done so.
///
/// Plain `cargo test` builds every example before running the tests, but
/// `cargo test --test proxy` builds none: the test would fail, or worse run
/// a stale binary left from an older build. So each example is built once
/// per test process with the same cargo, target directory and profile
/// (a no-op when it is up to date).
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--example", name, "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.parent().expect("target dir"));
        if dir.file_name().is_some_and(|profile| profile == "release") {
            build.arg("--release");
        }
        // The same features as this test build, or cargo would rebuild the
        // library without them (and the example would lack TLS).
        if cfg!(feature = "tls") {
            build.args(["--features", "tls"]);
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// An example server running as a child process; killed when dropped.
pub struct ChildServer {
    /// The process.
    pub child: Child,
    /// The address it printed as "... listening on ADDR".
    pub addr: SocketAddr,
    /// Its stderr lines after the listening line, as they arrive.
    pub stderr: mpsc::Receiver<String>,
}

impl ChildServer {
    /// Sends `signal` (e.g. "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Stops the server with SIGTERM, checks that it exits with status 0
    /// within 5 s, and returns its exit report (the stderr line with
    /// `stopped:`), whose counters tell what the whole run cost.
    pub fn stop_with_report(&mut self) -> String {
        self.signal("TERM");
        assert_eq!(self.wait_exit(Duration::from_secs(5)), Some(0));
        self.stderr
            .iter()
            .find(|l| l.contains("stopped:"))
            .expect("exit report")
    }

    /// Waits for the process to exit, at most `limit`; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Runs example `name` with `args` (which should pick port 0) and waits for
/// the line "listening on ADDR" on its stderr. `shell_prefix`, if given, is
/// a shell command run before exec (e.g. `ulimit -n 64`).
// The child is reaped by `ChildServer`'s `Drop`, or killed and reaped
// before the panic when it never says where it listens.
#[allow(clippy::zombie_processes)]
pub fn spawn_example(name: &str, args: &[&str], shell_prefix: Option<&str>) -> ChildServer {
    let bin = example_bin(name);
    let mut command = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                .arg(&bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(&bin);
            c.args(args);
            c
        }
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            // Stop it by its own pid before failing: a panicking test would
            // otherwise leave the server running.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} printed no 'listening on' line");
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("address");
            return ChildServer {
                child,
                addr,
                stderr: rx,
            };
        }
    }
}

/// The write count in an example's exit report (`... N writes ...`).
pub fn writes_in_report(report: &str) -> u64 {
    report
        .split(" writes")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("write count")
}

/// Runs example `name` listening on 127.0.0.1 at a port the kernel picks,
/// with `extra` arguments after `--addr`.
pub fn spawn_on_loopback(name: &str, extra: &[&str]) -> ChildServer {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    spawn_example(name, &args, None)
}
