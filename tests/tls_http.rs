//! HTTP clients over TLS against a tiny in-process HTTP handler: curl,
//! verifying the certificate for `localhost`, gets the body; wrk (which
//! does not verify) runs keep-alive load over four connections without a
//! socket error. No speed is asserted.
#![cfg(feature = "tls")]

mod common;

use std::time::Duration;

use common::tls::{start_tls, Pki};
use common::tls_tools::{HttpOk, HTTP_BODY};
use common::tools::{have, run_bounded};
use reactor::{CloseReason, Config};

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn curl_verifies_the_certificate_and_gets_the_body() {
    if !have("curl") {
        return;
    }
    let pki = Pki::new();
    let server = start_tls(HttpOk, Config::default(), pki.server(&[b"http/1.1"]));
    let port = server.addr.port();
    let url = format!("https://localhost:{port}/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = pki.ca_pem.to_str().unwrap();
    // Two requests on one connection: keep-alive through the TLS session.
    let output = run_bounded(
        10,
        "curl",
        &[
            "--silent",
            "--show-error",
            "--fail",
            "--verbose",
            "--http1.1",
            "--cacert",
            ca,
            "--resolve",
            &resolve,
            &url,
            &url,
        ],
    );
    assert_eq!(output.matches(HTTP_BODY).count(), 2, "{output}");
    assert!(
        output.contains("ALPN: server accepted http/1.1"),
        "{output}"
    );
    assert!(output.contains("Re-using existing connection"), "{output}");
    let stats = server.wait_for("curl's connection closed", LIMIT, |s| {
        s.open_connections == 0
    });
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.tls_handshake_failures, 0);

    // Without the CA, curl refuses our certificate.
    let refused = std::process::Command::new("timeout")
        .args(["10", "curl", "--silent", "--resolve", &resolve, &url])
        .status()
        .unwrap();
    assert_eq!(refused.code(), Some(60), "curl accepted an unknown CA");
}

#[test]
fn wrk_runs_over_tls_without_socket_errors() {
    if !have("wrk") {
        return;
    }
    let pki = Pki::new();
    let server = start_tls(HttpOk, Config::default(), pki.server(&[]));
    let url = format!("https://127.0.0.1:{}/", server.addr.port());
    let output = run_bounded(20, "wrk", &["-t1", "-c4", "-d1s", &url]);
    let requests: u64 = output
        .lines()
        .find_map(|l| l.trim().split_once(" requests in "))
        .and_then(|(n, _)| n.parse().ok())
        .unwrap_or_else(|| panic!("no request count in:\n{output}"));
    assert!(requests > 0, "{output}");
    assert!(!output.contains("Socket errors"), "{output}");
    assert!(!output.contains("Non-2xx"), "{output}");
    let stats = server.wait_for("wrk's connections closed", LIMIT, |s| {
        s.open_connections == 0
    });
    assert!(stats.tls_handshakes >= 4, "{stats:?}");
    // wrk closes without close_notify (truncations, one of them possibly
    // still handshaking when the run ends), but never sends bad records.
    assert_eq!(stats.closed(CloseReason::TlsError), 0, "{stats:?}");
}
