//! Clients that do TLS wrong, each closed on its own without costing anyone
//! else anything: a healthy TLS client keeps round-tripping through every
//! case. Half a ClientHello then silence (the handshake timeout), plain
//! text instead of a ClientHello, a version downgrade, and a TLS 1.2
//! renegotiation.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{round_trip, start_tls, tls_client, Pki, TlsClient};
use common::tls_tools::s_client;
use common::tools::have;
use common::Echo;
use reactor::tls::rustls::pki_types::pem::PemObject;
use reactor::tls::rustls::{self, version};
use reactor::tls::{CertResolver, ServerName};
use reactor::{CloseReason, Config};

const LIMIT: Duration = Duration::from_secs(10);

fn healthy(client: &mut TlsClient, n: usize) {
    let line = format!("healthy {n}\n");
    assert_eq!(round_trip(client, line.as_bytes()), line.as_bytes());
}

/// A real ClientHello for `localhost`, as rustls would send it.
fn client_hello(pki: &Pki) -> Vec<u8> {
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(pki.client(&[]), name).unwrap();
    let mut hello = Vec::new();
    conn.write_tls(&mut hello).unwrap();
    assert_eq!(hello[0], 0x16, "a handshake record");
    hello
}

/// Reads what the server sends until it closes: (bytes, how it ended).
fn read_until_closed(stream: &mut std::net::TcpStream) -> (Vec<u8>, std::io::Result<()>) {
    let mut got = Vec::new();
    let mut buf = [0; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return (got, Ok(())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) => return (got, Err(e)),
        }
    }
}

#[test]
fn half_a_client_hello_is_closed_after_the_handshake_timeout() {
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let config = Config {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let server = start_tls(echo, config, pki.server(&[]));
    let mut good = tls_client(server.addr, pki.client(&[]));
    healthy(&mut good, 0);

    let hello = client_hello(&pki);
    let mut slow = common::client(server.addr);
    let start = Instant::now();
    slow.write_all(&hello[..hello.len() / 2]).unwrap();
    // Meanwhile the healthy client is served at once, several times.
    for n in 1..4 {
        healthy(&mut good, n);
    }
    let (got, end) = read_until_closed(&mut slow);
    let waited = start.elapsed();
    assert!(got.is_empty() || got[0] == 0x15, "not an alert: {got:?}");
    assert!(
        end.is_ok() || end.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "{end:?}"
    );
    assert!(
        waited >= Duration::from_millis(250) && waited < Duration::from_secs(3),
        "closed after {waited:?}, the timeout is 300 ms"
    );
    // The handler never heard of it (`opened` runs after the handshake),
    // so the loop's counters tell how it ended.
    let stats = server.wait_for("the timeout counted", LIMIT, |s| {
        s.closed(CloseReason::TlsHandshakeTimeout) == 1
    });
    healthy(&mut good, 4);
    assert_eq!(stats.tls_handshake_failures, 1);
    assert_eq!(stats.tls_handshakes_in_progress, 0);
    assert_eq!(stats.closed_total(), 1);
    assert!(closes.lock().unwrap().is_empty());
    // A well-behaved client still gets in (the slot was given back).
    let mut later = tls_client(server.addr, pki.client(&[]));
    healthy(&mut later, 5);
}

#[test]
fn plain_text_instead_of_a_client_hello_is_a_tls_error() {
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), pki.server(&[]));
    let mut good = tls_client(server.addr, pki.client(&[]));
    healthy(&mut good, 0);

    let mut plain = common::client(server.addr);
    let start = Instant::now();
    plain
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .unwrap();
    let (got, end) = read_until_closed(&mut plain);
    assert!(
        start.elapsed() < Duration::from_secs(2),
        "not closed promptly"
    );
    // rustls's alert (a TLS alert record), or nothing, then the end.
    assert!(
        got.is_empty() || got.starts_with(&[0x15, 0x03]),
        "not an alert: {got:?}"
    );
    assert!(
        end.is_ok() || end.as_ref().unwrap_err().kind() == std::io::ErrorKind::ConnectionReset,
        "{end:?}"
    );
    let stats = server.wait_for("the error counted", LIMIT, |s| {
        s.closed(CloseReason::TlsError) == 1
    });
    assert_eq!(stats.closed_total(), 1);
    assert!(closes.lock().unwrap().is_empty(), "the handler heard of it");
    healthy(&mut good, 1);
    assert_eq!(stats.tls_handshake_failures, 1);
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.tls_handshakes_in_progress, 0);
}

#[test]
fn tls12_client_against_a_tls13_only_server_fails_cleanly() {
    let pki = Pki::new();
    let pair = pki.leaf("localhost", &["localhost"]);
    let resolver = Arc::new(CertResolver::from_pem_files(&[pair]).unwrap());
    let ring = Arc::new(rustls::crypto::ring::default_provider());
    let server_config = rustls::ServerConfig::builder_with_provider(ring.clone())
        .with_protocol_versions(&[&version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), Arc::new(server_config));
    let mut good = tls_client(server.addr, pki.client(&[]));
    healthy(&mut good, 0);

    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&pki.ca_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let old = rustls::ClientConfig::builder_with_provider(ring)
        .with_protocol_versions(&[&version::TLS12])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let socket = common::client(server.addr);
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(Arc::new(old), name).unwrap();
    let mut downgraded = rustls::StreamOwned::new(conn, socket);
    let err = loop {
        match downgraded.conn.complete_io(&mut downgraded.sock) {
            Ok(_) if downgraded.conn.is_handshaking() => continue,
            Ok(_) => panic!("a TLS 1.2 handshake completed against a TLS 1.3-only server"),
            Err(e) => break e,
        }
    };
    // The server told the client why.
    assert!(
        err.to_string().contains("ProtocolVersion"),
        "expected a protocol_version alert, got: {err}"
    );
    let stats = server.wait_for("the error counted", LIMIT, |s| {
        s.closed(CloseReason::TlsError) == 1
    });
    assert_eq!(stats.closed_total(), 1);
    assert!(closes.lock().unwrap().is_empty(), "the handler heard of it");
    healthy(&mut good, 1);
    assert_eq!(stats.tls_handshake_failures, 1);
    assert_eq!(stats.tls_handshakes_in_progress, 0);
}

#[test]
fn openssl_tls11_is_refused() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    let mut good = tls_client(server.addr, pki.client(&[]));
    healthy(&mut good, 0);
    // OpenSSL 3 offers TLS 1.1 only at security level 0.
    let mut old = s_client(
        server.addr,
        &pki.ca_pem,
        &[
            "-servername",
            "localhost",
            "-tls1_1",
            "-cipher",
            "DEFAULT@SECLEVEL=0",
        ],
    );
    old.close_stdin();
    let (status, output) = old.wait_exit(LIMIT);
    assert!(!status.success(), "TLS 1.1 handshake succeeded:\n{output}");
    // The server's alert ended it, not a local refusal or a dropped line.
    assert!(output.contains("SSL alert number"), "{output}");
    assert!(output.contains("Cipher is (NONE)"), "{output}");
    let stats = server.wait_for("the failure counted", LIMIT, |s| {
        s.tls_handshake_failures == 1
    });
    assert_eq!(stats.closed(CloseReason::TlsError), 1);
    assert_eq!(stats.tls_handshakes, 1);
    healthy(&mut good, 1);
}

#[test]
fn openssl_tls12_renegotiation_is_refused_and_others_are_served() {
    if !have("openssl") {
        return;
    }
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), pki.server(&[]));
    let mut good = tls_client(server.addr, pki.client(&[]));
    healthy(&mut good, 0);
    // Interactive mode (no -quiet, no -ign_eof): a line `R` renegotiates.
    let mut reneg = s_client(
        server.addr,
        &pki.ca_pem,
        &[
            "-servername",
            "localhost",
            "-verify_return_error",
            "-tls1_2",
        ],
    );
    reneg.send(b"before\n");
    reneg.wait_output("before\n", LIMIT);
    reneg.send(b"R\n");
    reneg.wait_output("RENEGOTIATING", LIMIT);
    // rustls answers the new ClientHello with a no_renegotiation warning,
    // which OpenSSL takes as fatal: it gives up and tells the server so.
    let (status, output) = reneg.wait_exit(LIMIT);
    assert!(!status.success(), "{output}");
    assert!(output.contains("no renegotiation"), "{output}");
    let stats = server.wait_for("the refused connection closed", LIMIT, |s| {
        s.closed_total() == 1
    });
    let recorded: Vec<CloseReason> = closes.lock().unwrap().iter().map(|c| c.1).collect();
    assert_eq!(recorded, [CloseReason::TlsError]);
    assert_eq!(stats.closed(CloseReason::TlsError), 1);
    assert_eq!(stats.tls_handshakes, 2);
    healthy(&mut good, 1);
    let mut later = tls_client(server.addr, pki.client(&[]));
    healthy(&mut later, 2);
}
