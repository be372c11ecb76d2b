//! The echo server under a client this project did not write: 1000 OpenBSD
//! netcat processes connected at the same time, each sending its own random
//! 64 KiB, every echoed byte compared with `cmp` (scripts/nc_thousand.sh).
//!
//! CI installs netcat-openbsd; on a machine without `nc` the test says so and
//! passes, because what it checks is the server, not the machine's packages.
mod common;

use std::process::Command;

use common::tools::have;

#[test]
fn a_thousand_netcat_clients_at_once_get_every_byte_back() {
    if !have("nc") {
        return;
    }
    let server = common::spawn_on_loopback("echo_server", &[]);
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/nc_thousand.sh");
    let output = Command::new("bash")
        .arg(script)
        .args([
            &server.addr.ip().to_string(),
            &server.addr.port().to_string(),
            "1000",
            "65536",
            "120",
        ])
        .output()
        .expect("run nc_thousand.sh");
    let report = String::from_utf8_lossy(&output.stdout);
    eprintln!("{report}{}", String::from_utf8_lossy(&output.stderr));
    assert!(output.status.success(), "netcat clients failed: {report}");
    assert!(report.contains("peak_established=1000"), "{report}");
    assert!(report.contains("bad=0"), "{report}");
}
