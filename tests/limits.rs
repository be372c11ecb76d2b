//! Limits that bound a connection's memory and life: backpressure on a slow
//! reader, the hard output and input caps, the connection cap, and idle
//! timeouts (from `Config` and per connection from the handler).
//!
//! Each limit exists so that one misbehaving peer cannot grow the server
//! without bound; each test drives a peer that misbehaves in exactly that way
//! and checks both the bound (`Stats::queued_output_bytes` never above
//! `Config::max_output`, as seen from inside the loop every turn) and the
//! consequence (reading paused, or the connection closed with its reason),
//! while well-behaved connections keep working.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{close_reason_of, echo_once, Prng};
use reactor::{CloseReason, Config, ConnId, Context, Fired, Handler, Limit, WriteError};

/// What the `Lab` handler does with input.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// Echo, and obey the commands `flood`, `idle-short`, `idle-none`.
    Echo,
    /// Consume nothing: every byte stays in the connection's input buffer.
    Hoard,
}

/// A handler instrumented for limits: records `(peer, reason)` for each
/// close and the largest `queued_output_bytes` seen inside the loop.
struct Lab {
    mode: Mode,
    closes: common::PeerCloses,
    max_queued: Arc<AtomicU64>,
    output_limit_errors: Arc<AtomicU64>,
}

impl Lab {
    fn new(mode: Mode) -> Lab {
        Lab {
            mode,
            closes: Arc::default(),
            max_queued: Arc::default(),
            output_limit_errors: Arc::default(),
        }
    }

    fn note_queue(&self, ctx: &Context<'_, Self>) {
        self.max_queued
            .fetch_max(ctx.stats().queued_output_bytes, Ordering::SeqCst);
    }
}

/// Bytes the flood timer writes each time it fires.
const FLOOD_CHUNK: usize = 64 * 1024;

impl Handler for Lab {
    type State = SocketAddr;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, peer: SocketAddr) -> SocketAddr {
        peer
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut SocketAddr,
        input: &[u8],
    ) -> usize {
        if self.mode == Mode::Hoard {
            return 0;
        }
        match input {
            b"flood" => {
                ctx.start_conn_timer(conn, Duration::from_millis(1), 0);
            }
            b"idle-short" => ctx.set_idle_timeout(conn, Some(Duration::from_millis(200))),
            b"idle-none" => ctx.set_idle_timeout(conn, None),
            _ => {}
        }
        let _ = ctx.write(conn, input);
        self.note_queue(ctx);
        input.len()
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        // The flood: write a chunk every tick whether or not the peer reads.
        let conn = fired.conn.expect("flood timers are bound");
        match ctx.write_vec(conn, vec![0xAB; FLOOD_CHUNK]) {
            Ok(()) => {
                ctx.start_conn_timer(conn, Duration::from_millis(1), 0);
            }
            Err(WriteError::OutputLimit) => {
                self.output_limit_errors.fetch_add(1, Ordering::SeqCst);
            }
            Err(WriteError::Gone) => {}
        }
        self.note_queue(ctx);
    }

    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        self.note_queue(ctx);
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

fn small_buffers() -> Config {
    Config {
        output_high_water: Some(64 * 1024),
        output_low_water: Some(16 * 1024),
        max_output: 1024 * 1024,
        ..Config::default()
    }
}

/// A client that sends but does not read: the loop stops reading it once its
/// queued output reaches the high-water mark (no unbounded growth, no close),
/// and resumes when the client drains; every byte still echoes exactly.
#[test]
fn slow_reader_pauses_reading_and_resumes_after_draining() {
    const LIMIT: usize = 64 * 1024 * 1024;
    let config = small_buffers();
    let (high_water, max_output) = (config.limits().output_high_water, config.max_output);
    let lab = Lab::new(Mode::Echo);
    let (closes, max_queued) = (Arc::clone(&lab.closes), Arc::clone(&lab.max_queued));
    let server = common::start(lab, config);
    let data = Prng(99).bytes(LIMIT);

    // Phase 1: write without reading until the loop stops reading us. The
    // writes stall only once every buffer on the path is full, including the
    // server's queue; without backpressure the loop would keep reading and
    // hit `max_output`, closing the connection.
    let mut client = common::client(server.addr);
    client.set_nonblocking(true).unwrap();
    let mut sent = 0;
    let mut last_bytes_in = u64::MAX;
    let deadline = Instant::now() + Duration::from_secs(20);
    let paused_at = loop {
        assert!(Instant::now() < deadline, "reading never paused");
        loop {
            assert!(sent < LIMIT, "server read {LIMIT} bytes without pausing");
            match client.write(&data[sent..(sent + 64 * 1024).min(LIMIT)]) {
                Ok(n) => sent += n,
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("write failed: {e}"),
            }
        }
        thread::sleep(Duration::from_millis(200));
        let stats = server.handle.stats();
        // Nothing read for 200 ms while we could not write any more, with
        // the queue at the high-water mark: paused by backpressure (not
        // merely a loop thread that was slow to run).
        if stats.bytes_in == last_bytes_in && stats.queued_output_bytes >= high_water as u64 {
            break stats;
        }
        last_bytes_in = stats.bytes_in;
    };
    assert!(
        paused_at.queued_output_bytes >= high_water as u64,
        "reading stopped without backpressure: {paused_at:?}"
    );
    assert!(paused_at.bytes_in < sent as u64, "nothing left unread");
    assert_eq!(
        paused_at.closed_total(),
        0,
        "connection closed: {paused_at:?}"
    );
    // Still paused a while later: the loop is not reading us at all.
    thread::sleep(Duration::from_millis(300));
    assert_eq!(server.handle.stats().bytes_in, paused_at.bytes_in);

    // Phase 2: drain. Reading resumes; send 1 MiB more, then FIN.
    client.set_nonblocking(false).unwrap();
    let total = sent + 1024 * 1024;
    let mut reader = client.try_clone().unwrap();
    let reader_thread = thread::spawn(move || common::read_to_eof(&mut reader, LIMIT).unwrap());
    client.write_all(&data[sent..total]).unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    let echoed = reader_thread.join().unwrap();
    assert_eq!(echoed.len(), total);
    assert!(echoed[..] == data[..total], "echo differs after resuming");

    let stats = server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(stats.bytes_in, total as u64);
    assert_eq!(
        close_reason_of(&closes, &client),
        Some(CloseReason::PeerClosed)
    );
    assert!(max_queued.load(Ordering::SeqCst) <= max_output as u64);
}

/// A handler that keeps writing to a client that never reads: the queue
/// grows to `max_output` and no further; the connection is closed with
/// `LimitExceeded(Output)`. Another client is unaffected.
#[test]
fn output_cap_closes_a_connection_that_never_reads() {
    let config = Config {
        output_high_water: Some(64 * 1024),
        output_low_water: Some(16 * 1024),
        max_output: 256 * 1024,
        ..Config::default()
    };
    let max_output = config.max_output as u64;
    let lab = Lab::new(Mode::Echo);
    let (closes, max_queued, limit_errors) = (
        Arc::clone(&lab.closes),
        Arc::clone(&lab.max_queued),
        Arc::clone(&lab.output_limit_errors),
    );
    let server = common::start(lab, config);
    let mut bystander = common::client(server.addr);
    let mut victim = common::client(server.addr);
    victim.write_all(b"flood").unwrap();

    let start = Instant::now();
    while close_reason_of(&closes, &victim).is_none() {
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the flooded connection was never closed"
        );
        let stats = server.handle.stats();
        assert!(stats.queued_output_bytes <= max_output, "{stats:?}");
        thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(
        close_reason_of(&closes, &victim),
        Some(CloseReason::LimitExceeded(Limit::Output))
    );
    assert_eq!(limit_errors.load(Ordering::SeqCst), 1);
    assert!(max_queued.load(Ordering::SeqCst) <= max_output);
    assert!(max_queued.load(Ordering::SeqCst) > 0);

    echo_once(&mut bystander, b"still here");
    let stats = server.handle.stats();
    assert_eq!(stats.closed(CloseReason::LimitExceeded(Limit::Output)), 1);
    assert_eq!(stats.open_connections, 1);
}

/// A handler that consumes nothing: unconsumed input passes `max_input` and
/// the connection is closed with `LimitExceeded(Input)`.
#[test]
fn input_cap_closes_a_connection_whose_input_is_never_consumed() {
    let config = Config {
        max_input: 64 * 1024,
        ..Config::default()
    };
    let lab = Lab::new(Mode::Hoard);
    let closes = Arc::clone(&lab.closes);
    let server = common::start(lab, config);
    let mut client = common::client(server.addr);
    // The server may reset us mid-write once it closes: ignore write errors.
    let chunk = vec![7u8; 16 * 1024];
    for _ in 0..64 {
        if client.write_all(&chunk).is_err() {
            break;
        }
    }
    server.wait_for("the input-cap close", Duration::from_secs(10), |s| {
        s.closed_total() == 1
    });
    assert_eq!(
        close_reason_of(&closes, &client),
        Some(CloseReason::LimitExceeded(Limit::Input))
    );
    // The client sees the connection end (EOF or reset), not a hang.
    let mut buf = [0; 16];
    match client.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("unexpected {n} bytes"),
        Err(e) => assert_ne!(e.kind(), ErrorKind::WouldBlock, "no close seen"),
    }
}

/// With `max_connections: 3` the fourth connection is accepted and closed at
/// once, counted in `Stats::rejected`; the first three keep working, and a
/// slot freed by a close admits a new client.
#[test]
fn max_connections_rejects_the_extra_connection_at_once() {
    let config = Config {
        max_connections: 3,
        ..Config::default()
    };
    let server = common::start_echo(config);
    let mut first: Vec<TcpStream> = (0..3).map(|_| common::client(server.addr)).collect();
    server.wait_for("three accepted", Duration::from_secs(5), |s| {
        s.accepted == 3 && s.open_connections == 3
    });

    let mut extra = common::client(server.addr);
    server.wait_for("the rejection", Duration::from_secs(5), |s| s.rejected == 1);
    let mut buf = [0; 8];
    match extra.read(&mut buf) {
        Ok(0) => {}
        Ok(n) => panic!("rejected connection got {n} bytes"),
        Err(e) => assert_eq!(e.kind(), ErrorKind::ConnectionReset),
    }

    for (i, stream) in first.iter_mut().enumerate() {
        echo_once(stream, format!("client {i}").as_bytes());
    }

    // Free a place; a newcomer is served.
    drop(first.pop());
    server.wait_for("a close", Duration::from_secs(5), |s| {
        s.open_connections == 2
    });
    let mut newcomer = common::client(server.addr);
    echo_once(&mut newcomer, b"welcome");
    let stats = server.handle.stats();
    assert_eq!(stats.rejected, 1);
    assert_eq!(stats.accepted, 5);
    assert_eq!(stats.open_connections, 3);
}

/// `Config::idle_timeout` closes a silent client with `IdleTimeout` but not
/// one that keeps sending; `Context::set_idle_timeout` shortens or removes
/// the limit for one connection.
#[test]
fn idle_timeout_closes_only_idle_connections() {
    let idle = Duration::from_millis(1000);
    let config = Config {
        idle_timeout: Some(idle),
        ..Config::default()
    };
    let lab = Lab::new(Mode::Echo);
    let closes = Arc::clone(&lab.closes);
    let server = common::start(lab, config);

    let mut silent = common::client(server.addr);
    let mut short = common::client(server.addr);
    let mut exempt = common::client(server.addr);
    for (stream, command) in [
        (&mut short, &b"idle-short"[..]),
        (&mut exempt, b"idle-none"),
    ] {
        stream.write_all(command).unwrap();
        let mut echo = vec![0; command.len()];
        stream.read_exact(&mut echo).unwrap();
    }
    let mut active = common::client(server.addr);

    // The active client talks every 50 ms until the silent one is closed and
    // then for more than one further idle period.
    let start = Instant::now();
    let mut silent_closed_at = None;
    let mut round = 0u32;
    loop {
        echo_once(&mut active, &round.to_le_bytes());
        round += 1;
        if silent_closed_at.is_none() && close_reason_of(&closes, &silent).is_some() {
            silent_closed_at = Some(Instant::now());
        }
        if silent_closed_at.is_some_and(|at| at.elapsed() > idle + Duration::from_millis(100)) {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "the silent client was never closed"
        );
        thread::sleep(Duration::from_millis(50));
    }

    assert_eq!(
        close_reason_of(&closes, &silent),
        Some(CloseReason::IdleTimeout)
    );
    assert_eq!(
        close_reason_of(&closes, &short),
        Some(CloseReason::IdleTimeout)
    );
    assert_eq!(close_reason_of(&closes, &active), None);
    assert_eq!(close_reason_of(&closes, &exempt), None);
    // The closed ones see EOF; the others still echo.
    assert!(common::read_to_eof(&mut silent, 0).unwrap().is_empty());
    assert!(common::read_to_eof(&mut short, 0).unwrap().is_empty());
    for stream in [&mut active, &mut exempt] {
        echo_once(stream, b"ok");
    }
    assert_eq!(server.handle.stats().closed(CloseReason::IdleTimeout), 2);
}
