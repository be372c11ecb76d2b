//! The smallest end-to-end check: one client, one echo.
mod common;

use std::io::{Read, Write};
use std::time::Duration;

#[test]
fn one_client_gets_its_echo() {
    let server = common::start_echo(reactor::Config::default());
    let mut client = common::client(server.addr);
    client.write_all(b"Hello, world").unwrap();
    let mut echo = [0; 12];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"Hello, world");
    drop(client);
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    let reactor = server.stop();
    assert_eq!(reactor.handler().closes, [reactor::CloseReason::PeerClosed]);
}

#[test]
fn echo_example_serves_the_echo_client() {
    let server = common::spawn_on_loopback("echo_server", &[]);
    let output = std::process::Command::new(common::example_bin("echo_client"))
        .args(["--addr", &server.addr.to_string(), "Hello, world"])
        .output()
        .unwrap();
    assert!(output.status.success());
    assert_eq!(
        String::from_utf8_lossy(&output.stdout).trim(),
        "Received: Hello, world"
    );
}
