//! Writes to a peer that reset must never raise SIGPIPE.
//!
//! Rust ignores SIGPIPE before `main`, which hides the bug in ordinary tests:
//! a program that restores the signal (a C host embedding the library) dies on
//! the first `send`/`sendmsg` without `MSG_NOSIGNAL` to a dead peer. This test
//! installs a handler that records the signal (through signal-hook), so a
//! missing `MSG_NOSIGNAL` shows up as a raised flag instead of being ignored.
//!
//! The kernel raises SIGPIPE only when a send fails with `EPIPE`. A reset of
//! an open connection first reports `ECONNRESET`; a reset after the peer's
//! FIN (the socket is in CLOSE_WAIT) reports `EPIPE` on the very next send.
//! Both orders are driven here, through the single-buffer `send` path and
//! the vectored multi-chunk `sendmsg` path. It lives in its own test binary
//! because the signal disposition is process-wide.
mod common;

use std::io::Write;
use std::net::{Shutdown, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, Context, Handler};

/// On a request byte, queues 16 MiB: `v`/`V` as 16 chunks of 1 MiB (vectored
/// writes), `s`/`S` as one 16 MiB chunk (plain send). Lower case floods at
/// once; upper case waits for the peer's FIN and floods from `read_closed`.
#[derive(Default)]
struct Flood {
    /// First request byte per connection, for `read_closed`.
    pending: Vec<(ConnId, u8)>,
    closes: Vec<CloseReason>,
}

const MIB: usize = 1024 * 1024;

fn flood(ctx: &mut Context<'_, Flood>, conn: ConnId, kind: u8) {
    if kind.eq_ignore_ascii_case(&b'v') {
        for i in 0..16u8 {
            let _ = ctx.write_vec(conn, vec![i; MIB]);
        }
    } else {
        let _ = ctx.write_vec(conn, vec![b's'; 16 * MIB]);
    }
}

impl Handler for Flood {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let kind = input[0];
        if kind.is_ascii_lowercase() {
            flood(ctx, conn, kind);
        } else {
            self.pending.push((conn, kind));
        }
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        if let Some(&(_, kind)) = self.pending.iter().find(|(c, _)| *c == conn) {
            flood(ctx, conn, kind);
        }
        ctx.close_after_flush(conn);
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.closes.push(reason);
    }
}

#[test]
fn writes_to_reset_peers_never_raise_sigpipe() {
    let sigpipe = Arc::new(AtomicBool::new(false));
    signal_hook::flag::register(signal_hook::consts::SIGPIPE, Arc::clone(&sigpipe))
        .expect("install SIGPIPE handler");

    let config = Config {
        max_output: 64 * MIB,
        ..Config::default()
    };
    let server = common::start(Flood::default(), config);
    let requests: [(&[u8], bool); 4] = [
        (b"V", true),  // FIN, then reset during a vectored write: EPIPE
        (b"S", true),  // FIN, then reset during a single-buffer send: EPIPE
        (b"v", false), // reset of an open connection, vectored: ECONNRESET
        (b"s", false), // reset of an open connection, send: ECONNRESET
    ];
    for (round, (request, half_close)) in requests.into_iter().enumerate() {
        let mut client = common::client(server.addr);
        client.write_all(request).unwrap();
        if half_close {
            client.shutdown(Shutdown::Write).unwrap();
        }
        // Wait until the loop holds output it could not write: the client is
        // not reading, so the socket buffers are full and more is queued.
        server.wait_for("output stuck in the queue", Duration::from_secs(10), |s| {
            s.queued_output_bytes > 0
        });
        common::reset(client);
        server.wait_for("the reset close", Duration::from_secs(10), |s| {
            s.closed_total() == round as u64 + 1
        });
        assert!(
            !sigpipe.load(Ordering::SeqCst),
            "SIGPIPE raised writing to a reset peer (request {:?})",
            request[0] as char
        );
    }
    let reactor = server.stop();
    for reason in &reactor.handler().closes {
        assert!(
            matches!(reason, CloseReason::Reset | CloseReason::Error(_)),
            "unexpected close reason {reason:?}"
        );
    }
    assert_eq!(reactor.stats().queued_output_bytes, 0);
    assert!(!sigpipe.load(Ordering::SeqCst));
}
