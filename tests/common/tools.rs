//! Installed programs (curl, wrk, redis-cli, ...) run against an example:
//! a test checks for its tool first. On a developer's machine a missing tool
//! skips the check with a note; in CI (`CI` set, as `.ci/run` runs) it fails
//! the test, because there a skip would look like a pass.

use std::process::Command;

/// Whether `tool` is on the PATH; prints a note when it is not.
pub fn have(tool: &str) -> bool {
    let found = Command::new("which")
        .arg(tool)
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var_os("CI").is_none(),
            "{tool} is not installed, and CI must run every check (.ci/run installs it)"
        );
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
