//! Installed programs (curl, wrk, redis-cli, ...) run against an example:
//! a test checks for its tool first. On a developer's machine a missing tool
//! skips the check with a `SKIPPED` line written straight to the terminal
//! (not through `eprintln!`, whose output the test harness hides for a test
//! that passes); in CI (`CI` set, as `.ci/run` runs) it fails the test,
//! because there a skip would look like a pass.

use std::io::Write;
use std::process::Command;

/// Whether `tool` is on the PATH; says loudly that the check is skipped
/// when it is not (and fails the test in CI).
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
        // Straight to the process's stderr, past the harness's capture, so
        // the skip shows in `cargo test`'s output even when the test passes.
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: {tool} is not installed, so a check that needs it did not run \
             (install it, or run with CI=true to make this a failure)"
        );
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
