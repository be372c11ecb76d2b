//! The examples' TLS flags, end to end: echo_server and http_server with
//! `--tls-cert`/`--tls-key` (one pair, several chosen by SNI, reloaded on
//! SIGHUP), the usage errors, and loadgen's `--tls` against echo_server.
//! Real clients (openssl, curl) where the point is that they work; the
//! rustls client of `common::tls` where the test must see the certificate.
#![cfg(feature = "tls")]

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{mpsc, Arc};
use std::time::{Duration, Instant};

use common::tls::{round_trip, tls_client, Pki, TlsClient};
use common::tools::{have, run_bounded};
use common::{example_bin, spawn_example, ChildServer};
use reactor::tls::rustls::pki_types::pem::PemObject;
use reactor::tls::rustls::pki_types::CertificateDer;
use reactor::tls::rustls::{self, ClientConfig};
use reactor::tls::ServerName;

/// Bound on every wait for a server's log line or a reload to show.
const WAIT: Duration = Duration::from_secs(10);

/// `name` started on 127.0.0.1:0 with one `--tls-cert`/`--tls-key` per
/// pair, logging at info (so reloads can be waited for), plus `extra`.
fn spawn_tls(name: &str, pairs: &[&(PathBuf, PathBuf)], extra: &[&str]) -> ChildServer {
    let mut args = vec!["--addr".to_string(), "127.0.0.1:0".to_string()];
    for (cert, key) in pairs {
        args.push("--tls-cert".into());
        args.push(cert.display().to_string());
        args.push("--tls-key".into());
        args.push(key.display().to_string());
    }
    args.extend(extra.iter().map(|arg| arg.to_string()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    spawn_example(name, &args, Some("export RUST_LOG=info"))
}

/// A rustls client that completes its handshake for `name` (sent as SNI
/// and verified), with a read timeout.
fn client_for(addr: SocketAddr, config: Arc<ClientConfig>, name: &str) -> TlsClient {
    let socket = TcpStream::connect(addr).expect("connect");
    socket.set_read_timeout(Some(WAIT)).unwrap();
    socket.set_write_timeout(Some(WAIT)).unwrap();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let conn = rustls::ClientConnection::new(config, name).expect("client session");
    let mut stream = rustls::StreamOwned::new(conn, socket);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake");
    }
    stream
}

/// The certificate the server presented to `client` (its leaf).
fn presented(client: &TlsClient) -> CertificateDer<'static> {
    client.conn.peer_certificates().expect("server certificate")[0].clone()
}

/// The first certificate in a PEM file.
fn cert_in(path: &Path) -> CertificateDer<'static> {
    CertificateDer::from_pem_file(path).expect("certificate file")
}

/// Waits for a stderr line of `server` containing `text`; panics after
/// `WAIT`. Returns the line.
fn wait_for_line(server: &ChildServer, text: &str) -> String {
    let deadline = Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match server.stderr.recv_timeout(left) {
            Ok(line) if line.contains(text) => return line,
            Ok(_) => {}
            Err(_) => panic!("no stderr line with {text:?} within {WAIT:?}"),
        }
    }
}

/// Sends `data` through `openssl s_client -quiet` (which verifies the
/// server against `ca` for `name`) and returns the first line it prints:
/// the echo. Bounded by `WAIT`; the client is killed afterwards.
fn openssl_echo_line(addr: SocketAddr, ca: &Path, name: &str, data: &str) -> String {
    let mut child = Command::new("openssl")
        .args(["s_client", "-connect", &addr.to_string(), "-CAfile"])
        .arg(ca)
        .args(["-servername", name, "-verify_return_error", "-quiet"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("openssl");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(data.as_bytes())
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut line = String::new();
        let _ = BufReader::new(stdout).read_line(&mut line);
        let _ = tx.send(line);
    });
    let line = rx.recv_timeout(WAIT);
    let _ = child.kill();
    let _ = child.wait();
    line.expect("openssl printed no echo")
}

/// What `openssl s_client` says about the handshake for SNI `name` (no
/// data sent: stdin is closed, so it ends after the handshake).
fn openssl_handshake(addr: SocketAddr, ca: &Path, name: &str) -> String {
    let ca = ca.display().to_string();
    run_bounded(
        10,
        "openssl",
        &[
            "s_client",
            "-connect",
            &addr.to_string(),
            "-CAfile",
            &ca,
            "-servername",
            name,
            "-verify_return_error",
        ],
    )
}

#[test]
fn echo_server_serves_tls_with_one_pair() {
    let pki = Pki::new();
    let pair = pki.leaf("localhost", &["localhost", "127.0.0.1"]);
    let mut server = spawn_tls("echo_server", &[&pair], &["--handshake-timeout", "5"]);
    let mut client = tls_client(server.addr, pki.client(&[]));
    assert_eq!(round_trip(&mut client, b"over TLS\n"), b"over TLS\n");
    let big: Vec<u8> = (0..300_000u32).map(|i| (i % 253) as u8).collect();
    assert_eq!(round_trip(&mut client, &big), big);
    assert_eq!(presented(&client), cert_in(&pair.0));
    assert!(
        client.conn.alpn_protocol().is_none(),
        "echo_server has no ALPN"
    );
    if have("openssl") {
        let echoed = openssl_echo_line(server.addr, &pki.ca_pem, "localhost", "hello openssl\n");
        assert_eq!(echoed, "hello openssl\n");
    }
    drop(client);
    let report = server.stop_with_report();
    assert!(report.contains("TLS handshakes, 0 failed"), "{report}");
}

#[test]
fn second_pair_is_chosen_by_sni() {
    let pki = Pki::new();
    let first = pki.leaf("first", &["localhost", "127.0.0.1"]);
    let second = pki.leaf("second", &["b.test"]);
    let server = spawn_tls("echo_server", &[&first, &second], &[]);
    let config = pki.client(&[]);

    let mut b = client_for(server.addr, Arc::clone(&config), "b.test");
    assert_eq!(presented(&b), cert_in(&second.0));
    assert_eq!(round_trip(&mut b, b"to b\n"), b"to b\n");
    let default = client_for(server.addr, Arc::clone(&config), "localhost");
    assert_eq!(presented(&default), cert_in(&first.0));

    if have("openssl") {
        let said = openssl_handshake(server.addr, &pki.ca_pem, "b.test");
        assert!(said.contains("CN = second"), "{said}");
        assert!(said.contains("Verify return code: 0 (ok)"), "{said}");
        // A name no certificate has gets the first pair, the default.
        let said = openssl_handshake(server.addr, &pki.ca_pem, "localhost");
        assert!(said.contains("CN = first"), "{said}");
    }
}

#[test]
fn sighup_reloads_certificates_and_keeps_sessions() {
    let pki = Pki::new();
    let site = pki.leaf("site", &["localhost", "127.0.0.1"]);
    let mut server = spawn_tls("echo_server", &[&site], &[]);
    // A configuration per client: one shared would resume the first
    // session (tickets), and a resumed session shows the certificate it
    // began with, whatever the server holds now.
    let config = || pki.client(&[]);
    let mut before = client_for(server.addr, config(), "localhost");
    let old = presented(&before);
    assert_eq!(old, cert_in(&site.0));

    // New files in place of the old (each replaced by a rename, as a
    // certificate manager would), then SIGHUP.
    let renewed = pki.leaf("renewed", &["localhost", "127.0.0.1"]);
    for (from, to) in [(&renewed.0, &site.0), (&renewed.1, &site.1)] {
        let staged = to.with_extension("new");
        std::fs::copy(from, &staged).unwrap();
        std::fs::rename(&staged, to).unwrap();
    }
    server.signal("HUP");
    wait_for_line(&server, "reloaded 1 certificates");
    let after = client_for(server.addr, config(), "localhost");
    assert_eq!(presented(&after), cert_in(&renewed.0));
    assert_ne!(presented(&after), old);
    // The session from before goes on with its certificate.
    assert_eq!(round_trip(&mut before, b"still here\n"), b"still here\n");

    // A broken file: the reload fails, says why, and the renewed
    // certificate stays in force.
    std::fs::write(&site.0, "not a certificate\n").unwrap();
    server.signal("HUP");
    let error = wait_for_line(&server, "not reloaded");
    assert!(error.contains("ERROR"), "{error}");
    let later = client_for(server.addr, config(), "localhost");
    assert_eq!(presented(&later), cert_in(&renewed.0));

    // SIGTERM still means a graceful shutdown.
    drop((before, after, later));
    let report = server.stop_with_report();
    assert!(report.contains("3 TLS handshakes, 0 failed"), "{report}");
}

#[test]
fn tls_flag_mistakes_are_usage_errors() {
    let pki = Pki::new();
    let (cert, key) = pki.leaf("localhost", &["localhost"]);
    let (cert, key) = (cert.display().to_string(), key.display().to_string());
    let cases: [(&[&str], &str); 4] = [
        (&["--tls-cert", &cert], "pairs"),
        (
            &["--tls-cert", &cert, "--tls-key", &key, "--tls-key", &key],
            "pairs",
        ),
        (&["--handshake-timeout", "3"], "--handshake-timeout needs"),
        (
            &[
                "--tls-cert",
                &cert,
                "--tls-key",
                &key,
                "--handshake-timeout",
                "0",
            ],
            "more than 0 seconds",
        ),
    ];
    for example in ["echo_server", "http_server"] {
        for (flags, says) in cases {
            let output = Command::new("timeout")
                .arg("20")
                .arg(example_bin(example))
                .args(["--addr", "127.0.0.1:0"])
                .args(flags)
                .stdin(Stdio::null())
                .output()
                .unwrap();
            let stderr = String::from_utf8_lossy(&output.stderr);
            assert_eq!(
                output.status.code(),
                Some(2),
                "{example} {flags:?}: {stderr}"
            );
            assert!(stderr.contains(says), "{example} {flags:?}: {stderr}");
            assert!(stderr.contains("error:"), "{example} {flags:?}: {stderr}");
        }
    }
    // A file that is not what it should be: a failure to start, naming it.
    let output = Command::new("timeout")
        .arg("20")
        .arg(example_bin("echo_server"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--tls-cert",
            &key,
            "--tls-key",
            &key,
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(&key), "{stderr}");
}

#[test]
fn http_server_answers_https_with_alpn_http11() {
    if !have("curl") {
        return;
    }
    let pki = Pki::new();
    let pair = pki.leaf("localhost", &["localhost", "127.0.0.1"]);
    let server = spawn_tls("http_server", &[&pair], &[]);
    let port = server.addr.port();
    let url = format!("https://localhost:{port}/");
    let resolve = format!("localhost:{port}:127.0.0.1");
    let ca = pki.ca_pem.display().to_string();
    let said = run_bounded(
        10,
        "curl",
        &[
            "-sS",
            "-v",
            "--cacert",
            &ca,
            "--resolve",
            &resolve,
            "-w",
            "\nstatus %{http_code}\n",
            &url,
        ],
    );
    assert!(said.contains("status 200"), "{said}");
    assert!(said.contains("Hello, World!"), "{said}");
    let alpn = said
        .lines()
        .find(|line| line.contains("ALPN") && line.contains("accepted"))
        .unwrap_or_else(|| panic!("no ALPN line: {said}"));
    assert!(alpn.contains("http/1.1"), "{alpn}");

    // Also through the rustls client: ALPN as the server chose it.
    let config = pki.client(&[b"h2", b"http/1.1"]);
    let client = tls_client(server.addr, config);
    assert_eq!(client.conn.alpn_protocol(), Some(&b"http/1.1"[..]));
}

/// Runs loadgen with `args`, bounded by coreutils `timeout`; returns
/// (exit code, stdout, stderr).
fn loadgen(args: &[&str]) -> (Option<i32>, String, String) {
    let output = Command::new("timeout")
        .arg("60")
        .arg(example_bin("loadgen"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("run loadgen");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
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
fn loadgen_over_tls_verifies_every_byte() {
    let pki = Pki::new();
    let pair = pki.leaf("localhost", &["localhost", "127.0.0.1"]);
    let server = spawn_tls("echo_server", &[&pair], &[]);
    let addr = server.addr.to_string();
    let ca = pki.ca_pem.display().to_string();
    let common = [
        "--addr",
        &addr,
        "--connections",
        "12",
        "--threads",
        "2",
        "--warmup",
        "0.2",
        "--duration",
        "0.5",
        "--json",
        "--tls",
    ];
    for (size, depth, trust) in [
        ("64", "1", &["--tls-ca", &ca][..]),
        ("3000", "8", &["--tls-ca", &ca][..]),
        ("100", "4", &["--tls-insecure"][..]),
    ] {
        let mut args = common.to_vec();
        args.extend_from_slice(&["--size", size, "--depth", depth]);
        args.extend_from_slice(trust);
        let (code, json, stderr) = loadgen(&args);
        assert_eq!(code, Some(0), "{args:?}: {json} {stderr}");
        assert!(field(&json, "messages") > 0.0, "{json}");
        assert_eq!(field(&json, "errors"), 0.0, "{json}");
        assert_eq!(field(&json, "mismatched_bytes"), 0.0, "{json}");
        assert_eq!(field(&json, "established"), 12.0, "{json}");
        assert_eq!(field(&json, "tls_handshakes"), 12.0, "{json}");
        assert_eq!(field(&json, "tls_handshake_failures"), 0.0, "{json}");
        assert!(json.contains("\"tls\":true"), "{json}");
    }

    // A name the certificate is not valid for: every handshake fails, each
    // a connect failure, and the run fails.
    let (code, json, _) = loadgen(&[
        "--addr",
        &addr,
        "--connections",
        "3",
        "--warmup",
        "0",
        "--duration",
        "0.2",
        "--json",
        "--tls",
        "--tls-ca",
        &ca,
        "--tls-server-name",
        "elsewhere.test",
    ]);
    assert_eq!(code, Some(1), "{json}");
    assert_eq!(field(&json, "connect_failures"), 3.0, "{json}");
    assert_eq!(field(&json, "tls_handshake_failures"), 3.0, "{json}");
    assert_eq!(field(&json, "established"), 0.0, "{json}");
}

#[test]
fn loadgen_tls_flag_mistakes_are_usage_errors() {
    for (flags, says) in [
        (&["--tls"][..], "exactly one of"),
        (
            &["--tls", "--tls-ca", "x", "--tls-insecure"][..],
            "exactly one of",
        ),
        (&["--tls-insecure"][..], "need --tls"),
        (&["--tls", "--tls-insecure", "--udp"][..], "--udp"),
        (
            &["--tls", "--tls-insecure", "--tls-server-name", "a b"][..],
            "--tls-server-name",
        ),
    ] {
        let mut args = vec!["--addr", "127.0.0.1:1"];
        args.extend_from_slice(flags);
        let (code, _, stderr) = loadgen(&args);
        assert_eq!(code, Some(2), "{flags:?}: {stderr}");
        assert!(stderr.contains(says), "{flags:?}: {stderr}");
    }
}
