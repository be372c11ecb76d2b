//! A connection's life: every state transition, observed from handler
//! callbacks; stale events after a connection is closed by another one's
//! callback in the same batch; and panic isolation in `data`, `opened` and
//! `timer`.
//!
//! The state machine is the reactor's contract with handlers
//! (`ConnState::check_transition`), so the transition test records what
//! `Context::conn_state` reports at every callback and before every sleep,
//! and compares the whole sequence per connection. The stale-event test
//! builds, deterministically, the batch in which a slot reused too early
//! would hand a closed connection's events to a newcomer. The panic tests
//! check that a failing callback costs one connection, never the loop.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use common::{echo_once, Echo};
use reactor::{CloseReason, Config, ConnId, ConnState, Context, Fired, Handler};

// ---------------------------------------------------------------------------
// State transitions

/// What the tracer saw, shared with the test thread.
#[derive(Default)]
struct Trace {
    /// Every observation, in order: `None` means closed.
    seen: Vec<(ConnId, Option<ConnState>)>,
    /// A name per connection: the peer address for accepted connections,
    /// `out:ADDR` for outbound ones.
    names: Vec<(ConnId, String)>,
    closes: Vec<(ConnId, CloseReason)>,
}

impl Trace {
    fn id_of(&self, name: &str) -> Option<ConnId> {
        self.names
            .iter()
            .find(|(_, n)| n == name)
            .map(|&(id, _)| id)
    }

    /// The states `id` went through, consecutive repeats folded.
    fn states(&self, id: ConnId) -> Vec<Option<ConnState>> {
        let mut states: Vec<Option<ConnState>> = Vec::new();
        for &(conn, state) in &self.seen {
            if conn == id && states.last() != Some(&state) {
                states.push(state);
            }
        }
        states
    }

    fn reason(&self, id: ConnId) -> Option<CloseReason> {
        self.closes.iter().find(|(c, _)| *c == id).map(|&(_, r)| r)
    }
}

/// Records `conn_state` in every callback and for every connection before
/// each sleep. Commands: `bye` replies `ok` and closes after flush; a peer
/// FIN closes after flush (as the default does).
struct Tracer {
    trace: Arc<Mutex<Trace>>,
    live: Vec<ConnId>,
}

impl Tracer {
    fn record(&self, ctx: &Context<'_, Self>, conn: ConnId) {
        self.trace
            .lock()
            .unwrap()
            .seen
            .push((conn, ctx.conn_state(conn)));
    }
}

impl Handler for Tracer {
    type State = ();
    /// Connect to this address (from a callback).
    type Message = SocketAddr;

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, peer: SocketAddr) {
        self.live.push(conn);
        self.trace
            .lock()
            .unwrap()
            .names
            .push((conn, peer.to_string()));
        self.record(ctx, conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        self.record(ctx, conn);
        if input == b"bye" {
            ctx.write(conn, b"ok").unwrap();
            ctx.close_after_flush(conn);
            self.record(ctx, conn);
        } else {
            let _ = ctx.write(conn, input);
        }
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.record(ctx, conn);
        ctx.close_after_flush(conn);
        self.record(ctx, conn);
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.record(ctx, conn);
        // Close our side at once: Open -> Closing -> Lingering, and the
        // accepted end of this same connection sees our FIN.
        ctx.close_after_flush(conn);
        self.record(ctx, conn);
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, addr: SocketAddr) {
        let conn = ctx
            .connect(addr, Some(Duration::from_secs(5)), ())
            .expect("connect");
        self.live.push(conn);
        self.trace
            .lock()
            .unwrap()
            .names
            .push((conn, format!("out:{addr}")));
        self.record(ctx, conn);
    }

    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        for &conn in &self.live {
            self.record(ctx, conn);
        }
        self.live.retain(|&conn| ctx.conn_state(conn).is_some());
    }

    fn closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        self.record(ctx, conn);
        self.trace.lock().unwrap().closes.push((conn, reason));
    }
}

/// Drives connections through every path of the state machine and checks
/// the exact sequence `Context::conn_state` reported for each.
#[test]
fn every_state_transition_is_observed_from_callbacks() {
    use ConnState::*;
    let trace = Arc::new(Mutex::new(Trace::default()));
    let config = Config {
        linger_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let tracer = Tracer {
        trace: Arc::clone(&trace),
        live: Vec::new(),
    };
    let server = common::start(tracer, config);
    let wait_named = |name: &str| -> ConnId {
        let mut id = None;
        common::wait_until(name, Duration::from_secs(5), || {
            id = trace.lock().unwrap().id_of(name);
            id.is_some()
        });
        id.unwrap()
    };
    let wait_closed = |id: ConnId| {
        common::wait_until("a close", Duration::from_secs(10), || {
            trace.lock().unwrap().reason(id).is_some()
        });
    };

    // Open -> Closing -> Lingering -> Closed by the linger timeout: the client
    // reads our FIN but never sends its own (started first; runs meanwhile).
    let mut lingerer = common::client(server.addr);
    lingerer.write_all(b"bye").unwrap();
    let lingerer_id = wait_named(&lingerer.local_addr().unwrap().to_string());
    let mut reply = [0; 2];
    lingerer.read_exact(&mut reply).unwrap();
    assert_eq!(common::read_to_eof(&mut lingerer, 0).unwrap(), b"");

    // Open -> ReadClosed -> Closing -> Closed: the client half-closes.
    let mut half = common::client(server.addr);
    half.write_all(b"hi").unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    assert_eq!(common::read_to_eof(&mut half, 16).unwrap(), b"hi");
    let half_id = wait_named(&half.local_addr().unwrap().to_string());
    wait_closed(half_id);

    // Open -> Closing -> Lingering -> Closed by the client's FIN.
    let mut polite = common::client(server.addr);
    polite.write_all(b"bye").unwrap();
    polite.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ok");
    // EOF: our FIN arrived, the server is lingering. Now send ours.
    assert_eq!(common::read_to_eof(&mut polite, 0).unwrap(), b"");
    let polite_id = wait_named(&polite.local_addr().unwrap().to_string());
    polite.shutdown(Shutdown::Write).unwrap();
    wait_closed(polite_id);

    // Connecting -> Open -> Closing -> Lingering -> Closed: an outbound
    // connection to our own listener, closed from `connected`.
    server.handle.send(server.addr).unwrap();
    let out_id = wait_named(&format!("out:{}", server.addr));
    wait_closed(out_id);

    // Connecting -> Closed: refused.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    server.handle.send(refused).unwrap();
    let refused_id = wait_named(&format!("out:{refused}"));
    wait_closed(refused_id);

    wait_closed(lingerer_id);
    drop(lingerer);
    // Wait for the accepted end of the outbound connection too.
    server.wait_for("all closed", Duration::from_secs(10), |s| {
        s.open_connections == 0
    });
    drop(server.stop());

    let trace = trace.lock().unwrap();
    let expect = |id: ConnId, states: &[Option<ConnState>], reason: CloseReason| {
        assert_eq!(trace.states(id), states, "states of {id}");
        assert_eq!(trace.reason(id), Some(reason), "close reason of {id}");
    };
    expect(
        half_id,
        &[Some(Open), Some(ReadClosed), Some(Closing), None],
        CloseReason::PeerClosed,
    );
    expect(
        polite_id,
        &[Some(Open), Some(Closing), Some(Lingering), None],
        CloseReason::ClosedLocally,
    );
    expect(
        lingerer_id,
        &[Some(Open), Some(Closing), Some(Lingering), None],
        CloseReason::ClosedLocally,
    );
    expect(
        out_id,
        &[
            Some(Connecting),
            Some(Open),
            Some(Closing),
            Some(Lingering),
            None,
        ],
        CloseReason::ClosedLocally,
    );
    expect(
        refused_id,
        &[Some(Connecting), None],
        CloseReason::ConnectFailed(ErrorKind::ConnectionRefused),
    );
    // Every connection seen (including the accepted end of the outbound
    // one) moved only along allowed edges and ended closed.
    let ids: Vec<ConnId> = trace.names.iter().map(|&(id, _)| id).collect();
    assert_eq!(ids.len(), 6);
    for id in ids {
        let states = trace.states(id);
        assert_eq!(states.last(), Some(&None), "{id} never closed: {states:?}");
        for pair in states.windows(2) {
            let from = pair[0].expect("no state after closed");
            let to = pair[1].unwrap_or(Closed);
            assert!(
                from.check_transition(to),
                "{id}: illegal {from:?} -> {to:?} in {states:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------
// Stale events

/// What the stale-event handler saw.
#[derive(Default)]
struct StaleLog {
    opened: Vec<ConnId>,
    data: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<(ConnId, CloseReason)>,
    blocking: bool,
}

/// Connection 0 (A) sending `kill` closes connection 1 (B). A message blocks
/// the loop, so the test can line up a batch of events behind it.
struct Killer {
    log: Arc<Mutex<StaleLog>>,
}

impl Handler for Killer {
    type State = ();
    /// Block the loop thread this long.
    type Message = Duration;

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.log.lock().unwrap().opened.push(conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let mut log = self.log.lock().unwrap();
        log.data.push((conn, input.to_vec()));
        if input == b"kill" {
            let victim = log.opened[1];
            ctx.close(victim);
        }
        input.len()
    }

    fn message(&mut self, _: &mut Context<'_, Self>, block: Duration) {
        self.log.lock().unwrap().blocking = true;
        thread::sleep(block);
        self.log.lock().unwrap().blocking = false;
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        self.log.lock().unwrap().closes.push((conn, reason));
    }
}

/// While the loop is blocked, A sends `kill`, C connects and B sends data,
/// so the next poll returns [A readable, listener, B readable] in that order.
/// Handling A closes B; C is accepted in the same turn; B's event must then
/// be dropped as stale: it may reach neither B's `data` nor C (whose slot
/// must not be B's, since B's slot is freed only at the end of the turn).
#[test]
fn events_of_a_connection_closed_earlier_in_the_batch_are_dropped() {
    let log = Arc::new(Mutex::new(StaleLog::default()));
    let server = common::start(
        Killer {
            log: Arc::clone(&log),
        },
        Config::default(),
    );
    let opened = |n: usize| {
        common::wait_until("an accept", Duration::from_secs(5), || {
            log.lock().unwrap().opened.len() == n
        })
    };
    let mut a = common::client(server.addr);
    opened(1);
    let mut b = common::client(server.addr);
    opened(2);

    server.handle.send(Duration::from_millis(1500)).unwrap();
    common::wait_until("the loop to block", Duration::from_secs(5), || {
        log.lock().unwrap().blocking
    });
    a.write_all(b"kill").unwrap();
    thread::sleep(Duration::from_millis(20));
    let mut c = common::client(server.addr);
    thread::sleep(Duration::from_millis(20));
    b.write_all(b"secret").unwrap();
    assert!(
        log.lock().unwrap().blocking,
        "the loop woke before the batch was lined up; the machine is too slow"
    );

    opened(3);
    let stats = server.wait_for("the stale event", Duration::from_secs(5), |s| {
        s.stale_events >= 1
    });
    assert_eq!(stats.closed(CloseReason::ClosedLocally), 1);

    // C works, and only its own bytes reach it.
    c.write_all(b"c-data").unwrap();
    common::wait_until("C's data", Duration::from_secs(5), || {
        log.lock().unwrap().data.len() == 2
    });
    // B's end sees the close (EOF, or a reset since its data was unread).
    let mut buf = [0; 8];
    match b.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("B got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }
    drop(server.stop());

    let log = log.lock().unwrap();
    let (a_id, b_id, c_id) = (log.opened[0], log.opened[1], log.opened[2]);
    assert_ne!(
        c_id.slot(),
        b_id.slot(),
        "C reused B's slot within the turn"
    );
    assert_eq!(
        log.data,
        [(a_id, b"kill".to_vec()), (c_id, b"c-data".to_vec())],
        "B's data reached a handler after B was closed"
    );
    let b_closes: Vec<_> = log.closes.iter().filter(|(id, _)| *id == b_id).collect();
    assert_eq!(b_closes, [&(b_id, CloseReason::ClosedLocally)]);
}

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
// Stale ids

/// Remembers the first connection's id; on `old`, acts on that id (which by
/// then names a closed connection whose slot was reused): write, close,
/// state queries and a bound timer must all leave the newcomer alone.
#[derive(Default)]
struct Keeper {
    ids: Arc<Mutex<Vec<ConnId>>>,
    results: Arc<Mutex<Vec<String>>>,
}

impl Handler for Keeper {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.ids.lock().unwrap().push(conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        if input == b"old" {
            let old = self.ids.lock().unwrap()[0];
            let mut results = self.results.lock().unwrap();
            results.push(format!("write: {:?}", ctx.write(old, b"ghost")));
            results.push(format!("state: {:?}", ctx.conn_state(old)));
            results.push(format!("queued: {:?}", ctx.queued_output(old)));
            ctx.start_conn_timer(old, Duration::from_millis(1), 9);
            ctx.close(old);
            ctx.close_after_flush(old);
            ctx.set_idle_timeout(old, Some(Duration::from_millis(1)));
        }
        let _ = ctx.write(conn, input);
        input.len()
    }

    fn timer(&mut self, _: &mut Context<'_, Self>, fired: Fired) {
        self.results
            .lock()
            .unwrap()
            .push(format!("timer fired for {:?}", fired.conn));
    }
}

/// A `ConnId` kept after its connection closed never reaches the
/// connection that reuses its slot (the generation tells them apart).
#[test]
fn a_stale_conn_id_never_reaches_the_slot_s_next_connection() {
    let keeper = Keeper::default();
    let (ids, results) = (Arc::clone(&keeper.ids), Arc::clone(&keeper.results));
    let server = common::start(keeper, Config::default());
    let first = common::client(server.addr);
    common::wait_until("first accept", Duration::from_secs(5), || {
        ids.lock().unwrap().len() == 1
    });
    drop(first);
    server.wait_for("first close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    let mut second = common::client(server.addr);
    second.write_all(b"old").unwrap();
    let mut echo = [0; 3];
    second.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"old");
    // Give the bound timer and the idle timeout time to (not) fire.
    thread::sleep(Duration::from_millis(50));
    second.write_all(b"again").unwrap();
    let mut echo = [0; 5];
    second.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"again", "the newcomer received the ghost write");

    let ids = ids.lock().unwrap().clone();
    assert_eq!(
        ids[0].slot(),
        ids[1].slot(),
        "precondition: the slab reuses the freed slot"
    );
    assert_ne!(ids[0], ids[1]);
    assert_eq!(
        *results.lock().unwrap(),
        ["write: Err(Gone)", "state: None", "queued: None"]
    );
    let stats = server.handle.stats();
    assert_eq!(stats.open_connections, 1);
    assert_eq!(stats.closed_total(), 1);
    assert_eq!(stats.timers_fired, 0);
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

// ---------------------------------------------------------------------------
// Timers due together

/// On a message, arms two timers for the same instant; the first to fire
/// cancels the second.
#[derive(Default)]
struct Twins {
    second: Option<reactor::TimerId>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Handler for Twins {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        ctx.start_timer(Duration::from_millis(20), 1);
        self.second = Some(ctx.start_timer(Duration::from_millis(20), 2));
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        let mut log = self.log.lock().unwrap();
        log.push(format!("fired {}", fired.tag));
        if let Some(second) = self.second.take() {
            log.push(format!("cancel: {}", ctx.cancel_timer(second)));
        }
    }
}

/// Two timers expire in the same turn and the first one's callback cancels
/// the second: the cancel succeeds and the second never fires (it had not
/// been delivered yet, even though the wheel had already handed it over).
#[test]
fn a_timer_cancelled_by_a_timer_due_in_the_same_turn_does_not_fire() {
    let twins = Twins::default();
    let log = Arc::clone(&twins.log);
    let server = common::start(twins, Config::default());
    server.handle.send(()).unwrap();
    server.wait_for("a timer", Duration::from_secs(5), |s| s.timers_fired >= 1);
    // Leave the second timer ample time to (wrongly) fire.
    thread::sleep(Duration::from_millis(100));
    let stats = server.handle.stats();
    drop(server.stop());
    assert_eq!(*log.lock().unwrap(), ["fired 1", "cancel: true"]);
    assert_eq!(stats.timers_fired, 1);
}

// ---------------------------------------------------------------------------
// Stopping and resuming the loop

/// Echoes; `stop` makes `run` return after this turn.
fn echo_and_stop_on_stop(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    if input == b"stop" {
        ctx.stop();
    }
    common::echo(ctx, conn, input);
}

/// `Context::stop` makes `run` return with connections still open (the
/// reply written in that turn still leaves); running the same reactor again
/// serves them where they left off.
#[test]
fn stop_returns_from_run_and_run_again_resumes_the_same_connections() {
    let mut server = common::start(Echo::with(echo_and_stop_on_stop), Config::default());
    let mut client = common::client(server.addr);
    echo_once(&mut client, b"before");
    echo_once(&mut client, b"stop");
    let mut reactor = common::join_within(server.thread.take().unwrap(), Duration::from_secs(10));
    assert_eq!(reactor.connection_count(), 1);
    // Sent while nobody runs the loop: waits in the socket.
    client.write_all(b"while stopped").unwrap();
    let handle = reactor.handle();
    let thread = thread::spawn(move || {
        reactor.run().unwrap();
        reactor
    });
    let mut echo = [0; 13];
    client.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"while stopped");
    echo_once(&mut client, b"after");
    drop(client);
    common::wait_for_stats(&handle, "the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    handle.stop();
    let reactor = common::join_within(thread, Duration::from_secs(10));
    assert_eq!(reactor.stats().closed(CloseReason::PeerClosed), 1);
}
