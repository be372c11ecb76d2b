//! The load generator against the real echo server: it must verify every
//! byte, report in JSON, and fail loudly (non-zero exit) when connections are
//! refused. Runs are short and bounded; the bench (`bench/load/`) relies
//! on exactly this behaviour.

mod common;

use std::process::Command;

use common::{example_bin, spawn_on_loopback};

/// Runs loadgen with `args`; returns (exit success, stdout).
fn loadgen(args: &[&str]) -> (bool, String) {
    let output = Command::new(example_bin("loadgen"))
        .args(args)
        .output()
        .expect("run loadgen");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
    )
}

/// The number after `"key":` in loadgen's one-line JSON.
fn field(json: &str, key: &str) -> f64 {
    let at = json.find(&format!("\"{key}\":")).expect(key) + key.len() + 3;
    let rest = &json[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(rest.len());
    rest[..end].parse().expect("number")
}

#[test]
fn echoes_are_verified_and_reported() {
    let server = spawn_on_loopback("echo_server", &[]);
    let addr = server.addr.to_string();
    for (size, depth) in [("64", "1"), ("3000", "8")] {
        let (ok, json) = loadgen(&[
            "--addr",
            &addr,
            "--connections",
            "20",
            "--size",
            size,
            "--depth",
            depth,
            "--warmup",
            "0.2",
            "--duration",
            "0.5",
            "--json",
        ]);
        assert!(ok, "loadgen failed: {json}");
        assert!(field(&json, "messages") > 0.0, "{json}");
        assert_eq!(field(&json, "errors"), 0.0, "{json}");
        assert_eq!(field(&json, "mismatched_bytes"), 0.0, "{json}");
        assert_eq!(field(&json, "established"), 20.0, "{json}");
    }
}

#[test]
fn refused_connections_fail_the_run() {
    // Bind and drop a listener to get a port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    let (ok, json) = loadgen(&[
        "--addr",
        &addr,
        "--connections",
        "3",
        "--warmup",
        "0",
        "--duration",
        "0.2",
        "--json",
    ]);
    assert!(!ok, "loadgen should fail: {json}");
    assert_eq!(field(&json, "connect_failures"), 3.0, "{json}");
    assert_eq!(field(&json, "established"), 0.0, "{json}");
}

/// A duration no deadline can hold is a usage error naming the flag, not a
/// panic in a worker thread.
#[test]
fn durations_past_a_year_are_usage_errors() {
    for (flag, value) in [
        ("--duration", "1e20"),
        ("--timeout", "inf"),
        ("--warmup", "1e20"),
    ] {
        let output = Command::new(example_bin("loadgen"))
            .args(["--addr", "127.0.0.1:1", flag, value])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert_eq!(output.status.code(), Some(2), "{flag} {value}: {stderr}");
        assert!(stderr.contains(flag), "{flag} {value}: {stderr}");
    }
}
