//! The best-effort `close_notify` of a TLS connection closed at once
//! (`farewell`) must not raise SIGPIPE either: a peer that sent its
//! close_notify and FIN and then reset (CLOSE_WAIT) makes the next send
//! fail with `EPIPE`. Its own binary: the signal disposition is
//! process-wide (see tests/sigpipe.rs). (Passes: std's `TcpStream::write`,
//! which mio's uses, sends with `MSG_NOSIGNAL` on Linux.)
#![cfg(feature = "tls")]

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::{start_tls, tls_client, Pki};
use reactor::{Config, ConnId, Context, Handler};

/// Keeps connections open after the peer's close_notify; on `kill` from
/// any connection, sleeps (the reset arrives meanwhile) then closes the
/// first connection with `Context::close`.
#[derive(Default)]
struct Killer {
    conns: Arc<Mutex<Vec<ConnId>>>,
}

impl Handler for Killer {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.conns.lock().unwrap().push(conn);
    }

    fn data(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        if input == b"kill" {
            std::thread::sleep(Duration::from_millis(400));
            let first = self.conns.lock().unwrap()[0];
            ctx.close(first);
        }
        input.len()
    }

    fn read_closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut ()) {}
}

#[test]
fn farewell_to_a_reset_peer_raises_no_sigpipe() {
    let sigpipe = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGPIPE, Arc::clone(&sigpipe))
        .expect("install SIGPIPE handler");
    let pki = Pki::new();
    let server = start_tls(Killer::default(), Config::default(), pki.server(&[]));
    // B: close_notify and FIN, the server stays in ReadClosed.
    let mut b = tls_client(server.addr, pki.client(&[]));
    b.conn.send_close_notify();
    b.flush().unwrap();
    b.sock.shutdown(std::net::Shutdown::Write).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    // A: makes the loop busy, then close B.
    let mut a = tls_client(server.addr, pki.client(&[]));
    a.write_all(b"kill").unwrap();
    a.flush().unwrap();
    std::thread::sleep(Duration::from_millis(100));
    // B resets while the loop sleeps: CLOSE_WAIT + RST, the next send is EPIPE.
    let sock: TcpStream = b.sock;
    socket2::SockRef::from(&sock)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(sock);
    std::thread::sleep(Duration::from_millis(700));
    assert!(
        !sigpipe.load(Ordering::SeqCst),
        "SIGPIPE raised by the farewell close_notify"
    );
    drop(a);
}
