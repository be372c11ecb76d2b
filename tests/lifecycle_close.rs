//! How a connection ends outside the usual paths: a panicking callback
//! (`data`, `opened`, a timer) costs one connection, never the loop; a
//! connection closed from `opened` still gets its `closed`; and
//! `close_after_flush` with input still unread lingers instead of
//! resetting.
mod common;

use std::io::{ErrorKind, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{echo_once, Echo};
use reactor::{CloseReason, Config, ConnId, Context, Fired, Handler};

// ---------------------------------------------------------------------------
// Panics

/// Panics on command: `panic` in `data`; the next `opened` when the flag is
/// set; `timer` arms a connection timer whose callback panics; `global` arms
/// an unbound timer whose callback panics. Anything else echoes.
struct Fragile {
    panic_next_open: Arc<AtomicBool>,
    closes: common::PeerCloses,
}

impl Handler for Fragile {
    type State = SocketAddr;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, peer: SocketAddr) -> SocketAddr {
        if self.panic_next_open.swap(false, Ordering::SeqCst) {
            panic!("test panic in opened");
        }
        peer
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut SocketAddr,
        input: &[u8],
    ) -> usize {
        match input {
            b"panic" => panic!("test panic in data"),
            b"timer" => {
                ctx.start_conn_timer(conn, Duration::from_millis(10), 1);
            }
            b"global" => {
                ctx.start_timer(Duration::from_millis(10), 2);
            }
            _ => {}
        }
        let _ = ctx.write(conn, input);
        input.len()
    }

    fn timer(&mut self, _: &mut Context<'_, Self>, fired: Fired) {
        panic!("test panic in timer {}", fired.tag);
    }

    fn closed(
        &mut self,
        _: &mut Context<'_, Self>,
        _: ConnId,
        peer: SocketAddr,
        reason: CloseReason,
    ) {
        self.closes.lock().unwrap().push((peer, reason));
    }
}

/// The connection ends (EOF or reset) after at most `limit` bytes.
fn expect_closed(stream: &mut TcpStream, limit: usize) -> Vec<u8> {
    match common::read_to_eof(stream, limit) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == ErrorKind::ConnectionReset => Vec::new(),
        Err(e) => panic!("connection not closed: {e}"),
    }
}

#[test]
fn a_panicking_callback_closes_only_its_connection() {
    let panic_next_open = Arc::new(AtomicBool::new(false));
    let closes = Arc::new(Mutex::new(Vec::new()));
    let server = common::start(
        Fragile {
            panic_next_open: Arc::clone(&panic_next_open),
            closes: Arc::clone(&closes),
        },
        Config::default(),
    );
    let reason_of = |stream: &TcpStream| common::close_reason_of(&closes, stream);
    let mut good = common::client(server.addr);
    echo_once(&mut good, b"before");

    // Panic in `data`.
    let mut victim = common::client(server.addr);
    victim.write_all(b"panic").unwrap();
    assert!(expect_closed(&mut victim, 0).is_empty());
    server.wait_for("the data panic", Duration::from_secs(5), |s| {
        s.handler_panics == 1 && s.closed(CloseReason::HandlerPanic) == 1
    });
    assert_eq!(reason_of(&victim), Some(CloseReason::HandlerPanic));
    echo_once(&mut good, b"after data panic");

    // Panic in `opened`: no state, so no `closed` callback either.
    panic_next_open.store(true, Ordering::SeqCst);
    let mut unborn = common::client(server.addr);
    assert!(expect_closed(&mut unborn, 0).is_empty());
    server.wait_for("the opened panic", Duration::from_secs(5), |s| {
        s.handler_panics == 2 && s.closed(CloseReason::HandlerPanic) == 2
    });
    assert_eq!(reason_of(&unborn), None);
    echo_once(&mut good, b"after opened panic");

    // Panic in a connection timer: that connection closes.
    let mut timed = common::client(server.addr);
    timed.write_all(b"timer").unwrap();
    assert_eq!(expect_closed(&mut timed, 5), b"timer");
    server.wait_for("the timer panic", Duration::from_secs(5), |s| {
        s.handler_panics == 3 && s.closed(CloseReason::HandlerPanic) == 3
    });
    assert_eq!(reason_of(&timed), Some(CloseReason::HandlerPanic));

    // Panic in an unbound timer: no connection to close; the loop goes on.
    echo_once(&mut good, b"global");
    server.wait_for("the global timer panic", Duration::from_secs(5), |s| {
        s.handler_panics == 4
    });
    echo_once(&mut good, b"after timer panics");
    let stats = server.handle.stats();
    assert_eq!(stats.closed(CloseReason::HandlerPanic), 3);
    assert_eq!(stats.open_connections, 1);
    assert_eq!(reason_of(&good), None);
    // The loop thread is alive and stops normally.
    let reactor = server.stop();
    assert_eq!(reactor.stats().handler_panics, 4);
}

// ---------------------------------------------------------------------------
// Lingering with input waiting

/// On input starting with `bye`: replies `ok` and closes after flush.
/// Any other input is dropped unanswered (this is not an echo).
fn bye_closes(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    if input.starts_with(b"bye") {
        let _ = ctx.write(conn, b"ok");
        ctx.close_after_flush(conn);
    }
}

/// `close_after_flush` from `data` while more input waits in the socket
/// (the read filled the buffer): the connection must linger, discarding
/// that input, so the peer sees our reply and a clean EOF, not a reset
/// caused by closing with unread data.
#[test]
fn close_after_flush_with_unread_input_lingers_instead_of_resetting() {
    let config = Config {
        read_buffer_size: 4096,
        ..Config::default()
    };
    let server = common::start(Echo::with(bye_closes), config);
    let mut client = common::client(server.addr);
    let mut request = vec![b'.'; 8192];
    request[..3].copy_from_slice(b"bye");
    client.write_all(&request).unwrap();
    let reply = common::read_to_eof(&mut client, 2).expect("the reply, then a clean EOF");
    assert_eq!(reply, b"ok");
    // The server lingers until our FIN, discarding the rest of the request.
    let stats = server.wait_for("lingering", Duration::from_secs(5), |s| {
        s.bytes_in == request.len() as u64
    });
    assert_eq!(stats.open_connections, 1, "closed before our FIN");
    client.shutdown(Shutdown::Write).unwrap();
    let stats = server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(stats.closed(CloseReason::ClosedLocally), 1);
}

// ---------------------------------------------------------------------------
// Closing from `opened`

/// Turns every connection away from `opened` (a blocklist would), counting
/// the callbacks each connection gets.
#[derive(Default)]
struct Bouncer {
    counts: Arc<Mutex<(u32, u32, Vec<CloseReason>)>>,
}

impl Handler for Bouncer {
    /// Marks the state as the one `opened` returned.
    type State = &'static str;
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) -> &'static str {
        self.counts.lock().unwrap().0 += 1;
        ctx.close(conn);
        "from opened"
    }

    fn data(
        &mut self,
        _: &mut Context<'_, Self>,
        _: ConnId,
        _: &mut &'static str,
        input: &[u8],
    ) -> usize {
        input.len()
    }

    fn closed(
        &mut self,
        _: &mut Context<'_, Self>,
        _: ConnId,
        state: &'static str,
        reason: CloseReason,
    ) {
        assert_eq!(state, "from opened");
        let mut counts = self.counts.lock().unwrap();
        counts.1 += 1;
        counts.2.push(reason);
    }
}

/// A connection the handler closes from `opened` still gets its `closed`
/// callback, with the state `opened` returned: every `opened` is matched by
/// one `closed` (a handler counting connections would otherwise leak).
#[test]
fn a_connection_closed_from_opened_still_gets_closed() {
    let bouncer = Bouncer::default();
    let counts = Arc::clone(&bouncer.counts);
    let server = common::start(bouncer, Config::default());
    for _ in 0..3 {
        let mut client = common::client(server.addr);
        assert!(expect_closed(&mut client, 0).is_empty());
    }
    server.wait_for("three closes", Duration::from_secs(5), |s| {
        s.closed_total() == 3
    });
    drop(server.stop());
    let counts = counts.lock().unwrap();
    assert_eq!(counts.0, 3);
    assert_eq!(
        counts.1, 3,
        "closed() missing for connections closed in opened()"
    );
    assert_eq!(counts.2, [CloseReason::ClosedLocally; 3]);
}
