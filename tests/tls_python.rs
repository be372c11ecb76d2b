//! Python's `ssl` module as a client: a round trip with a default (verifying)
//! context, and the two ways a client can leave: `unwrap()` sends
//! `close_notify` (the server sees an orderly `PeerClosed`), a plain close
//! does not (the server records `TlsTruncated` and counts a truncation).
#![cfg(feature = "tls")]

mod common;

use std::net::SocketAddr;
use std::time::Duration;

use common::tls::{start_tls, Pki};
use common::tls_tools::Proc;
use common::tools::have;
use common::{close_reason_at, Echo};
use reactor::{CloseReason, Config};

const LIMIT: Duration = Duration::from_secs(10);

/// Connects with `ssl.create_default_context(cafile=...)`, prints its local
/// port, round-trips a line, then leaves by `unwrap()` (close_notify, and
/// the server's close_notify awaited) or by a plain `close()`.
const CLIENT: &str = r#"
import socket, ssl, sys
ca, port, leave = sys.argv[1], int(sys.argv[2]), sys.argv[3]
ctx = ssl.create_default_context(cafile=ca)
raw = socket.create_connection(("127.0.0.1", port), timeout=10)
s = ctx.wrap_socket(raw, server_hostname="localhost")
print("local", s.getsockname()[1], s.version(), flush=True)
msg = b"hello from python ssl\n"
s.sendall(msg)
got = b""
while len(got) < len(msg):
    chunk = s.recv(1024)
    if not chunk:
        break
    got += chunk
print("echo", got.decode().strip(), flush=True)
if leave == "unwrap":
    plain = s.unwrap()
    # After both close_notify, the server's FIN follows.
    rest = plain.recv(1024)
    print("after unwrap", len(rest), flush=True)
    plain.close()
else:
    s.close()
print("done", flush=True)
"#;

/// Runs [`CLIENT`] against `server`, returns the client's local address.
fn python_client(pki: &Pki, server: SocketAddr, leave: &str) -> (SocketAddr, String) {
    let port = server.port().to_string();
    let mut client = Proc::spawn(
        "python3",
        &["-c", CLIENT, pki.ca_pem.to_str().unwrap(), &port, leave],
    );
    let (status, output) = client.wait_exit(LIMIT);
    assert!(status.success(), "python client failed:\n{output}");
    assert!(output.contains("echo hello from python ssl\n"), "{output}");
    assert!(output.contains("done\n"), "{output}");
    let local: u16 = output
        .lines()
        .find_map(|l| l.strip_prefix("local "))
        .and_then(|l| l.split(' ').next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("no local port in:\n{output}"));
    (SocketAddr::from(([127, 0, 0, 1], local)), output)
}

#[test]
fn python_unwrap_sends_close_notify_and_the_server_closes_cleanly() {
    if !have("python3") {
        return;
    }
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), pki.server(&[]));
    let (peer, output) = python_client(&pki, server.addr, "unwrap");
    assert!(output.contains("TLSv1.3"), "{output}");
    // The server answered close_notify with its own and then FIN.
    assert!(output.contains("after unwrap 0\n"), "{output}");
    common::wait_until("the close recorded", LIMIT, || {
        close_reason_at(&closes, peer).is_some()
    });
    assert_eq!(
        close_reason_at(&closes, peer),
        Some(CloseReason::PeerClosed)
    );
    let stats = server.wait_for("no connection left", LIMIT, |s| s.open_connections == 0);
    assert_eq!(stats.tls_truncations, 0);
    assert_eq!(stats.tls_handshakes, 1);
}

#[test]
fn python_plain_close_without_close_notify_is_a_truncation() {
    if !have("python3") {
        return;
    }
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), pki.server(&[]));
    let (peer, _) = python_client(&pki, server.addr, "close");
    common::wait_until("the close recorded", LIMIT, || {
        close_reason_at(&closes, peer).is_some()
    });
    assert_eq!(
        close_reason_at(&closes, peer),
        Some(CloseReason::TlsTruncated)
    );
    let stats = server.wait_for("no connection left", LIMIT, |s| s.open_connections == 0);
    assert_eq!(stats.tls_truncations, 1);
    assert_eq!(stats.closed(CloseReason::TlsTruncated), 1);

    // The orderly client after it is not counted as one.
    let (peer, _) = python_client(&pki, server.addr, "unwrap");
    common::wait_until("the close recorded", LIMIT, || {
        close_reason_at(&closes, peer).is_some()
    });
    assert_eq!(
        close_reason_at(&closes, peer),
        Some(CloseReason::PeerClosed)
    );
    let stats = server.wait_for("no connection left", LIMIT, |s| s.open_connections == 0);
    assert_eq!(stats.tls_truncations, 1);
}
