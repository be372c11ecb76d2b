//! `openssl s_client` against in-process TLS servers: a round trip, ALPN
//! as the handler sees it, SNI choosing between two certificates, and
//! session resumption (TLS 1.3 tickets and TLS 1.2) seen from both ends.
#![cfg(feature = "tls")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::tls::{path_in, start_tls, Pki};
use common::tls_tools::{probe, s_client};
use common::tools::have;
use common::Echo;
use reactor::tls::{server_config, CertResolver};
use reactor::Config;

const LIMIT: Duration = Duration::from_secs(10);

#[test]
fn s_client_round_trip_through_echo() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    let mut client = s_client(
        server.addr,
        &pki.ca_pem,
        &["-servername", "localhost", "-verify_return_error", "-quiet"],
    );
    client.send(b"hello from s_client\n");
    client.wait_output("hello from s_client\n", LIMIT);
    client.send(b"second line\n");
    client.wait_output("second line\n", LIMIT);
    client.kill();
    let stats = server.wait_for("the connection closed", LIMIT, |s| {
        s.tls_handshakes == 1 && s.open_connections == 0
    });
    assert_eq!(stats.tls_handshake_failures, 0);
}

#[test]
fn alpn_offered_by_the_server_is_negotiated_and_seen_by_the_handler() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let server = start_tls(
        probe(),
        Config::default(),
        pki.server(&[b"h2", b"http/1.1"]),
    );
    let mut client = s_client(
        server.addr,
        &pki.ca_pem,
        &[
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
            "-alpn",
            "http/1.1",
        ],
    );
    client.send(b"?\n");
    let output = client.wait_output("alpn=http/1.1 ", LIMIT);
    assert!(output.contains("ALPN protocol: http/1.1"), "{output}");
    client.kill();

    // A client offering no ALPN gets none, and the handler sees none.
    let mut client = s_client(
        server.addr,
        &pki.ca_pem,
        &[
            "-servername",
            "localhost",
            "-verify_return_error",
            "-ign_eof",
        ],
    );
    client.send(b"?\n");
    let output = client.wait_output("alpn=- ", LIMIT);
    assert!(output.contains("No ALPN negotiated"), "{output}");
    client.kill();
}

#[test]
fn servername_chooses_between_two_certificates() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let alpha = pki.leaf("alpha", &["alpha.test"]);
    let beta = pki.leaf("beta", &["beta.test"]);
    let resolver = CertResolver::from_pem_files(&[alpha, beta]).unwrap();
    let config = server_config(Arc::new(resolver), &[]).unwrap();
    let server = start_tls(probe(), Config::default(), config);
    for name in ["beta.test", "alpha.test"] {
        let mut client = s_client(
            server.addr,
            &pki.ca_pem,
            &[
                "-servername",
                name,
                "-verify_hostname",
                name,
                "-verify_return_error",
                "-ign_eof",
            ],
        );
        client.send(b"?\n");
        let output = client.wait_output(&format!("sni={name} "), LIMIT);
        let cn = name.trim_end_matches(".test");
        assert!(
            output.contains(&format!("subject=CN = {cn}\n")),
            "expected the {cn} certificate for {name}:\n{output}"
        );
        client.kill();
    }
    // No SNI at all: the first certificate is the default.
    let mut client = s_client(server.addr, &pki.ca_pem, &["-noservername", "-ign_eof"]);
    client.send(b"?\n");
    let output = client.wait_output("sni=- ", LIMIT);
    assert!(output.contains("subject=CN = alpha\n"), "{output}");
    client.kill();
}

/// One s_client run that saves its session (`-sess_out`) and a second that
/// offers it (`-sess_in`): the second is `Reused` for s_client and
/// `Resumed` for the handler (`Context::tls(..).handshake_kind()`).
fn resumes(version_flag: &str, version_name: &str) {
    let pki = Pki::new();
    let server = start_tls(probe(), Config::default(), pki.server(&[]));
    let session = path_in(&pki, &format!("session{version_flag}.pem"));
    let session = session.to_str().unwrap();
    let base = [
        "-servername",
        "localhost",
        "-verify_return_error",
        "-ign_eof",
        version_flag,
    ];

    let mut first = s_client(
        server.addr,
        &pki.ca_pem,
        &[&base[..], &["-sess_out", session]].concat(),
    );
    // The reply comes after any TLS 1.3 ticket the server sent right after
    // the handshake, so s_client has read (and saved) the ticket by then.
    first.send(b"?\n");
    let output = first.wait_output("kind=Full ", LIMIT);
    assert!(output.contains(&format!("New, {version_name}")), "{output}");
    common::wait_until("the session file", LIMIT, || {
        std::fs::metadata(session).is_ok_and(|m| m.len() > 0)
    });
    first.kill();

    let mut second = s_client(
        server.addr,
        &pki.ca_pem,
        &[&base[..], &["-sess_in", session]].concat(),
    );
    second.send(b"?\n");
    let output = second.wait_output("kind=Resumed ", LIMIT);
    assert!(
        output.contains(&format!("Reused, {version_name}")),
        "s_client did not report a resumption:\n{output}"
    );
    second.kill();
    server.wait_for("both handshakes", LIMIT, |s| s.tls_handshakes == 2);
}

#[test]
fn session_resumes_with_tls13_ticket() {
    if have("openssl") {
        resumes("-tls1_3", "TLSv1.3");
    }
}

#[test]
fn session_resumes_with_tls12() {
    if have("openssl") {
        resumes("-tls1_2", "TLSv1.2");
    }
}
