//! A half-close asked for while an outbound connection is still connecting:
//! it takes effect once connected, before `connected` runs, so a write made
//! there fails as `Context::shutdown_write` promises, and asking again (or
//! after `close_after_flush`) changes nothing. Only the output queued before
//! the half-close reaches the peer, followed by our FIN. (A close after
//! flush alone still sends what `connected` writes.)
mod common;

use std::io::Read;
use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;
use std::thread;
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, Context, Handler, Reactor, WriteError};

/// What a connection is told while connecting, in order.
#[derive(Clone, Copy, Debug)]
enum Ask {
    ShutdownWrite,
    CloseAfterFlush,
}

/// Records what a write in `connected` returned and why the connection
/// ended; stops the loop then.
#[derive(Default)]
struct HalfCloser {
    write_in_connected: Option<Result<(), WriteError>>,
    reason: Option<CloseReason>,
}

impl Handler for HalfCloser {
    type State = ();
    type Message = ();
    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.write_in_connected = Some(ctx.write(conn, b"EXTRA"));
    }
    fn closed(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.reason = Some(reason);
        ctx.stop();
    }
}

/// Connects to a peer that reads to EOF and then closes; queues `hello`,
/// then asks `asks` while connecting. Returns what the peer received and
/// what the handler saw.
fn half_close_while_connecting(asks: &[Ask]) -> (Vec<u8>, HalfCloser, u64) {
    let peer = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = peer.local_addr().unwrap();
    let (received, got) = mpsc::channel();
    thread::spawn(move || {
        let (mut stream, _) = peer.accept().unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut bytes = Vec::new();
        stream.read_to_end(&mut bytes).unwrap();
        received.send(bytes).unwrap();
        // Dropping the stream sends our FIN: the half-closed side ends.
    });
    let asks = asks.to_vec();
    let (done, finished) = mpsc::channel();
    thread::spawn(move || {
        let mut reactor = Reactor::new(HalfCloser::default(), Config::default()).unwrap();
        reactor.with_context(|_, ctx| {
            let id = ctx.connect(addr, Some(Duration::from_secs(5)), ()).unwrap();
            ctx.write(id, b"hello").unwrap();
            for ask in &asks {
                match ask {
                    Ask::ShutdownWrite => ctx.shutdown_write(id),
                    Ask::CloseAfterFlush => ctx.close_after_flush(id),
                }
            }
        });
        reactor.run().unwrap();
        let panics = reactor.stats().handler_panics;
        let handler = std::mem::take(reactor.handler_mut());
        done.send((handler, panics)).unwrap();
    });
    let (handler, panics) = finished
        .recv_timeout(Duration::from_secs(10))
        .expect("the connection never ended");
    let bytes = got.recv_timeout(Duration::from_secs(5)).unwrap();
    (bytes, handler, panics)
}

#[test]
fn a_write_in_connected_after_a_half_close_while_connecting_is_refused() {
    let (bytes, handler, panics) = half_close_while_connecting(&[Ask::ShutdownWrite]);
    assert_eq!(
        bytes, b"hello",
        "the peer got more than was queued before the half-close"
    );
    assert_eq!(handler.write_in_connected, Some(Err(WriteError::Gone)));
    assert_eq!(handler.reason, Some(CloseReason::PeerClosed));
    assert_eq!(panics, 0);
}

#[test]
fn asking_again_while_connecting_changes_nothing() {
    // A close after flush alone still takes what `connected` writes; once
    // the write side is shut, nothing more.
    let shut: &[u8] = b"hello";
    let open: &[u8] = b"helloEXTRA";
    for (asks, expected) in [
        (&[Ask::ShutdownWrite, Ask::ShutdownWrite][..], shut),
        (
            &[Ask::CloseAfterFlush, Ask::ShutdownWrite, Ask::ShutdownWrite],
            shut,
        ),
        (
            &[Ask::ShutdownWrite, Ask::CloseAfterFlush, Ask::ShutdownWrite],
            shut,
        ),
        (&[Ask::CloseAfterFlush, Ask::CloseAfterFlush], open),
    ] {
        let (bytes, handler, panics) = half_close_while_connecting(asks);
        assert_eq!(bytes, expected, "{asks:?}");
        assert_eq!(panics, 0, "{asks:?}");
        assert!(handler.reason.is_some(), "{asks:?}");
    }
}
