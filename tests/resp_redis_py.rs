//! The `resp_server` example driven by redis-py, the most used Python
//! client, with its defaults and with each protocol forced: the everyday
//! calls of tests/redis_py_calls.py (strings, counters, expiry, KEYS,
//! a pipeline of 1000 commands, a 5 MB value, pub/sub with a subscriber
//! thread and patterns) run against resp_server and against a real
//! redis-server, and the two outputs must agree call by call.
//!
//! redis-py comes from PyPI into a virtualenv kept under the target
//! directory (`target/pyenv`), made on the first run and reused after. With
//! `CI` set a missing python3 or redis-server, or a virtualenv that cannot
//! be made, fails the test; elsewhere it is skipped with a `SKIPPED` line
//! (see tests/common/tools.rs).
mod common;

use std::io::Write;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;

use common::resp::{spawn, RedisServer};
use common::tools::have;

/// The script of calls, next to this file.
const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/redis_py_calls.py");

/// The tests of this file share one virtualenv; the first makes it.
static PYENV: Mutex<Option<PathBuf>> = Mutex::new(None);

/// The virtualenv's python with redis-py importable, made if missing;
/// `None` (after a `SKIPPED` line) where it cannot be made outside CI.
fn python() -> Option<PathBuf> {
    if !have("python3") {
        return None;
    }
    let mut made = PYENV.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(python) = made.as_ref() {
        return Some(python.clone());
    }
    // CARGO_TARGET_TMPDIR is `<target>/tmp`: the env sits beside it.
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("target dir")
        .join("pyenv");
    let python = dir.join("bin/python");
    let importable = |python: &Path| {
        Command::new(python)
            .args(["-c", "import redis"])
            .output()
            .is_ok_and(|o| o.status.success())
    };
    if !importable(&python) {
        // Bounded by coreutils' `timeout`: a stalled index fails the
        // set-up instead of hanging the test.
        let pip = dir.join("bin/pip");
        let made_env = run(Command::new("timeout")
            .arg("120")
            .args(["python3", "-m", "venv"])
            .arg(&dir))
        .and_then(|()| {
            run(Command::new("timeout")
                .arg("300")
                .arg(&pip)
                .args(["install", "-q", "redis>=5"]))
        });
        if let Err(e) = made_env {
            assert!(
                std::env::var_os("CI").is_none(),
                "cannot make the redis-py virtualenv in {}: {e} (.ci/run needs python3-venv \
                 and network access to PyPI)",
                dir.display()
            );
            let _ = writeln!(
                std::io::stderr().lock(),
                "SKIPPED: cannot make the redis-py virtualenv in {} ({e}), so the redis-py \
                 checks did not run (run with CI=true to make this a failure)",
                dir.display()
            );
            return None;
        }
    }
    *made = Some(python.clone());
    Some(python)
}

/// Runs a set-up command; its output is the error when it fails.
fn run(command: &mut Command) -> Result<(), String> {
    let output = command.output().map_err(|e| e.to_string())?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// The script's output against the server at `addr` with `protocol`
/// ("2", "3" or "default").
fn calls(python: &Path, addr: SocketAddr, protocol: &str) -> Vec<String> {
    let output = Command::new("timeout")
        .arg("120")
        .arg(python)
        .arg(SCRIPT)
        .arg(addr.port().to_string())
        .arg(protocol)
        .output()
        .expect("run the redis-py script");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "redis-py script failed: {stderr}");
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .map(str::to_owned)
        .collect()
}

/// Runs the calls against both servers and compares them line by line.
fn matches_redis_server(protocol: &str) {
    let Some(python) = python() else { return };
    if !have("redis-server") {
        return;
    }
    let server = spawn(&[]);
    let ours = calls(&python, server.addr, protocol);
    let redis = RedisServer::start();
    let theirs = calls(&python, redis.addr, protocol);
    for (i, (got, want)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(got, want, "call {i} (protocol {protocol})");
    }
    assert_eq!(ours.len(), theirs.len(), "calls answered");
    // Every call ran: the script prints one line a call, this one last.
    let last = ours.last().map(String::as_str);
    assert_eq!(
        last,
        Some("dbsize after flush: 0"),
        "the script ran to its end"
    );
}

#[test]
fn redis_py_with_its_default_protocol_gets_what_redis_server_answers() {
    matches_redis_server("default");
}

#[test]
fn redis_py_over_resp2_gets_what_redis_server_answers() {
    matches_redis_server("2");
}

#[test]
fn redis_py_over_resp3_gets_what_redis_server_answers() {
    matches_redis_server("3");
}
