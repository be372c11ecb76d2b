//! Installed programs (curl, wrk, redis-cli, ...) run against an example:
//! a test checks for its tool first and passes with a note when it is
//! missing, because what it checks is the server, not the machine.

use std::process::Command;

/// Whether `tool` is on the PATH; prints a note when it is not.
pub fn have(tool: &str) -> bool {
    let found = Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        eprintln!("note: {tool} is not installed; skipping its check");
    }
    found
}

/// Runs a command with a time limit (coreutils `timeout`), so a tool that
/// hangs fails the test; returns its stdout and stderr together.
pub fn run_bounded(limit_secs: u32, program: &str, args: &[&str]) -> String {
    let output = Command::new("timeout")
        .arg(limit_secs.to_string())
        .arg(program)
        .args(args)
        .output()
        .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{program} failed: {text}");
    text
}
