//! Our side of a TLS close: `close_notify` leaves after the queued output
//! and before our FIN, so a strict client (rustls, which reports a TCP EOF
//! without `close_notify` as `UnexpectedEof`) reads every byte and then a
//! clean end: after `close_after_flush`, in a graceful shutdown, and on a
//! half-close (`shutdown_write`), after which the server still reads.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::{round_trip, start_tls, tls_client, Pki, TlsClient};
use common::{close_reason_at, Echo};
use reactor::{CloseReason, Config, ConnId, Context, Handler};

const LIMIT: Duration = Duration::from_secs(10);

/// Reads through rustls until its clean end (`Ok(0)` after the server's
/// `close_notify`); an `UnexpectedEof` (TCP EOF without it) fails.
fn read_to_clean_end(client: &mut TlsClient) -> Vec<u8> {
    let mut got = Vec::new();
    match client.read_to_end(&mut got) {
        Ok(_) => got,
        Err(e) => panic!(
            "no clean TLS end after {} bytes: {e} ({:?})",
            got.len(),
            e.kind()
        ),
    }
}

/// After the clean TLS end, the TCP stream itself ends too: the server's
/// FIN follows its `close_notify`.
fn assert_tcp_fin(client: &mut TlsClient) {
    let mut byte = [0];
    match client.sock.read(&mut byte) {
        Ok(0) => {}
        other => panic!("expected the server's FIN after close_notify, got {other:?}"),
    }
}

/// Replies to any input with a megabyte then `bye\n`, and closes after flush.
fn reply_then_close(ctx: &mut Context<'_, Echo>, conn: ConnId, _: &[u8]) {
    let _ = ctx.write_vec(conn, big());
    let _ = ctx.write(conn, b"bye\n");
    ctx.close_after_flush(conn);
}

fn big() -> Vec<u8> {
    (0..1_000_000u32).map(|i| (i % 251) as u8).collect()
}

#[test]
fn close_after_flush_sends_everything_then_close_notify_then_fin() {
    let pki = Pki::new();
    let echo = Echo::with(reply_then_close);
    let closes = echo.peer_closes.clone();
    let server = start_tls(echo, Config::default(), pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    client.write_all(b"go\n").unwrap();
    client.flush().unwrap();
    let got = read_to_clean_end(&mut client);
    let mut expected = big();
    expected.extend_from_slice(b"bye\n");
    assert_eq!(got.len(), expected.len());
    assert!(got == expected, "reply corrupted");
    assert_tcp_fin(&mut client);
    // The server lingers for our FIN; giving it ends the wait at once.
    let peer = client.sock.local_addr().unwrap();
    drop(client);
    common::wait_until("the close recorded", LIMIT, || {
        close_reason_at(&closes, peer).is_some()
    });
    assert_eq!(
        close_reason_at(&closes, peer),
        Some(CloseReason::ClosedLocally)
    );
    let stats = server.wait_for("no connection left", LIMIT, |s| s.open_connections == 0);
    assert_eq!(stats.tls_truncations, 0);
}

#[test]
fn graceful_shutdown_sends_close_notify_to_idle_tls_connections() {
    let pki = Pki::new();
    let echo = Echo::default();
    let closes = echo.peer_closes.clone();
    let mut server = start_tls(echo, Config::default(), pki.server(&[]));
    let mut clients: Vec<TlsClient> = (0..3)
        .map(|_| tls_client(server.addr, pki.client(&[])))
        .collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let line = format!("client {i}\n");
        assert_eq!(round_trip(client, line.as_bytes()), line.as_bytes());
    }
    assert!(server.handle.shutdown(Duration::from_secs(5)));
    for client in &mut clients {
        assert_eq!(read_to_clean_end(client), b"");
        assert_tcp_fin(client);
    }
    let peers: Vec<SocketAddr> = clients
        .iter()
        .map(|c| c.sock.local_addr().unwrap())
        .collect();
    drop(clients);
    // Every connection closed, so the loop finished well within the grace.
    let thread = server.thread.take().unwrap();
    let reactor = common::join_within(thread, LIMIT);
    assert_eq!(reactor.stats().open_connections, 0);
    assert_eq!(reactor.stats().tls_truncations, 0);
    for peer in peers {
        assert_eq!(close_reason_at(&closes, peer), Some(CloseReason::Shutdown));
    }
}

/// On `half\n` replies `reply\n` and shuts down its write side; records
/// every byte that arrives after that, and how the connection ended.
#[derive(Default)]
struct HalfClose {
    after: Arc<Mutex<Vec<u8>>>,
    closed: Arc<Mutex<Option<CloseReason>>>,
}

impl Handler for HalfClose {
    type State = bool;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> bool {
        false
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        half: &mut bool,
        input: &[u8],
    ) -> usize {
        if *half {
            self.after.lock().unwrap().extend_from_slice(input);
            // Our write side is shut: a write must be refused.
            assert!(ctx.write(conn, b"late").is_err());
        } else if input.starts_with(b"half\n") {
            ctx.write(conn, b"reply\n").unwrap();
            ctx.shutdown_write(conn);
            *half = true;
            self.after.lock().unwrap().extend_from_slice(&input[5..]);
        }
        input.len()
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: bool, reason: CloseReason) {
        *self.closed.lock().unwrap() = Some(reason);
    }
}

#[test]
fn shutdown_write_sends_close_notify_then_fin_and_keeps_reading() {
    let pki = Pki::new();
    let handler = HalfClose::default();
    let (after, closed) = (handler.after.clone(), handler.closed.clone());
    let server = start_tls(handler, Config::default(), pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    client.write_all(b"half\n").unwrap();
    client.flush().unwrap();
    assert_eq!(read_to_clean_end(&mut client), b"reply\n");
    assert_tcp_fin(&mut client);

    // Our side is still open, and the server still reads it.
    client.write_all(b"still talking\n").unwrap();
    client.flush().unwrap();
    common::wait_until("the server read after its half-close", LIMIT, || {
        after.lock().unwrap().as_slice() == b"still talking\n"
    });
    assert_eq!(*closed.lock().unwrap(), None);

    // Our close_notify ends it cleanly.
    client.conn.send_close_notify();
    client.flush().unwrap();
    common::wait_until("the close", LIMIT, || closed.lock().unwrap().is_some());
    assert_eq!(*closed.lock().unwrap(), Some(CloseReason::PeerClosed));
    let stats = server.wait_for("no connection left", LIMIT, |s| s.open_connections == 0);
    assert_eq!(stats.tls_truncations, 0);
}
