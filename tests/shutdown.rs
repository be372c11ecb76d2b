//! Graceful shutdown, in process through `Handle::shutdown(grace)` and in the
//! echo_server example through SIGTERM.
//!
//! A shutdown must stop accepting at once (new connects are refused), close
//! idle connections, let busy ones finish writing what is queued, and
//! force-close at the deadline whatever a client will never take, so that
//! `run()` returns in bounded time. Each of those is a separate client here.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::{Echo, Prng};
use reactor::{CloseReason, Config, ConnId, Context, Handler};

/// Size of the reply to `big`.
const BIG: usize = 4 * 1024 * 1024;

fn big_reply() -> Vec<u8> {
    Prng(3).bytes(BIG)
}

/// Echoes; `big` queues a 4 MiB reply. Records closes and the start of
/// the shutdown.
struct Drainer {
    closes: common::PeerCloses,
    bigs: Arc<AtomicUsize>,
    shutting_down: Arc<AtomicBool>,
}

impl Handler for Drainer {
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
        if input == b"big" {
            ctx.write_vec(conn, big_reply()).unwrap();
            self.bigs.fetch_add(1, Ordering::SeqCst);
        } else {
            let _ = ctx.write(conn, input);
        }
        input.len()
    }

    fn shutdown_started(&mut self, _: &mut Context<'_, Self>) {
        self.shutting_down.store(true, Ordering::SeqCst);
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

#[test]
fn graceful_shutdown_flushes_refuses_closes_idle_and_force_closes_at_the_deadline() {
    let grace = Duration::from_secs(3);
    let handler = Drainer {
        closes: Arc::default(),
        bigs: Arc::default(),
        shutting_down: Arc::default(),
    };
    let (closes, bigs, shutting_down) = (
        Arc::clone(&handler.closes),
        Arc::clone(&handler.bigs),
        Arc::clone(&handler.shutting_down),
    );
    let config = Config {
        max_output: 16 * 1024 * 1024,
        ..Config::default()
    };
    let mut server = common::start(handler, config);

    let mut idle = common::client(server.addr);
    idle.write_all(b"hi").unwrap();
    let mut echo = [0; 2];
    idle.read_exact(&mut echo).unwrap();
    let slow = common::client(server.addr);
    let mut stuck = common::client(server.addr);
    (&slow).write_all(b"big").unwrap();
    stuck.write_all(b"big").unwrap();
    common::wait_until("both big replies queued", Duration::from_secs(5), || {
        bigs.load(Ordering::SeqCst) == 2
    });
    server.wait_for("output queued", Duration::from_secs(5), |s| {
        s.queued_output_bytes > 0
    });

    // The slow client reads 16 KiB at a time with pauses, until EOF.
    let mut slow_reader = slow.try_clone().unwrap();
    let slow_thread = thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0; 16 * 1024];
        loop {
            let n = slow_reader.read(&mut buf).expect("slow read");
            if n == 0 {
                return got;
            }
            got.extend_from_slice(&buf[..n]);
            assert!(got.len() <= BIG, "more than the reply");
            if got.len() % (64 * 1024) < n {
                thread::sleep(Duration::from_millis(1));
            }
        }
    });

    let started = Instant::now();
    assert!(server.handle.shutdown(grace));
    common::wait_until("shutdown_started", Duration::from_secs(5), || {
        shutting_down.load(Ordering::SeqCst)
    });
    // The listener is closed: new connections are refused.
    let refused = TcpStream::connect(server.addr).expect_err("connect after shutdown");
    assert_eq!(refused.kind(), ErrorKind::ConnectionRefused);

    // The idle client is closed (EOF); it then closes its own side.
    assert!(common::read_to_eof(&mut idle, 0).unwrap().is_empty());
    drop(idle);

    // The slow reader gets its whole reply, then EOF.
    let got = slow_thread.join().unwrap();
    assert_eq!(got.len(), BIG);
    assert!(got == big_reply(), "the slow reader's reply was corrupted");
    slow.shutdown(Shutdown::Write).unwrap();

    // The stuck client never reads: only the deadline ends it, and then
    // `run()` returns.
    let reactor = common::join_within(
        server.thread.take().unwrap(),
        grace + Duration::from_secs(10),
    );
    assert!(
        started.elapsed() >= grace,
        "the stuck client was not given its grace"
    );

    let stats = reactor.stats();
    assert_eq!(stats.open_connections, 0);
    assert_eq!(stats.queued_output_bytes, 0);
    assert_eq!(stats.closed(CloseReason::Shutdown), 3, "{stats:?}");
    let closes = closes.lock().unwrap();
    for client in [&slow, &stuck] {
        let me = client.local_addr().unwrap();
        assert!(
            closes.contains(&(me, CloseReason::Shutdown)),
            "{me} not closed by the shutdown: {closes:?}"
        );
    }
    // The stuck client got part of its reply at most, then the close.
    stuck
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut total = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        match stuck.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => total += n,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) => panic!("stuck client: {e}"),
        }
    }
    assert!(total < BIG, "the stuck client was never force-closed");
}

/// The example under SIGTERM: a request already received is echoed in full
/// before the process exits with status 0.
#[test]
fn echo_server_example_drains_in_flight_data_on_sigterm() {
    const LEN: usize = 256 * 1024;
    let mut server = common::spawn_on_loopback("echo_server", &[]);
    let mut client = common::client(server.addr);
    let data = Prng(11).bytes(LEN);
    // 256 KiB fit in the socket buffers plus the server's queue below its
    // high-water mark, so the whole request is written (and read by the
    // server) before we read any of the echo.
    common::write_then_fin(&client, data.clone())
        .join()
        .unwrap();
    thread::sleep(Duration::from_millis(100));

    server.signal("TERM");
    let echoed = common::read_to_eof(&mut client, LEN).unwrap();
    assert_eq!(echoed.len(), LEN);
    assert!(echoed == data, "echo corrupted across the shutdown");
    assert_eq!(server.wait_exit(Duration::from_secs(10)), Some(0));
    // A new connection is refused once the process is gone.
    assert!(TcpStream::connect(server.addr).is_err());
}

/// Echoes; the first byte `S` it sees starts a graceful shutdown from inside
/// the callback (so it begins in the very turn that read it).
fn echo_and_shut_down_on_s(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    if input.first() == Some(&b'S') && !ctx.is_shutting_down() {
        ctx.shutdown(Duration::from_secs(60));
    }
    common::echo(ctx, conn, input);
}

/// A connection that still had unread input when the shutdown began, and
/// whose last read filled the buffer, becomes idle only when a later read
/// returns `WouldBlock` with nothing left to write: it must be closed then,
/// not left open until the (here 60 s) deadline.
#[test]
fn a_connection_that_goes_idle_on_a_drained_read_during_shutdown_is_closed() {
    let config = Config {
        read_buffer_size: 4096,
        read_budget_reads: 1,
        read_budget_bytes: 4096,
        ..Config::default()
    };
    let server = common::start(Echo::with(echo_and_shut_down_on_s), config);
    let mut client = common::client(server.addr);
    // Exactly two full reads: each leaves `readable` set (a full read does
    // not prove the socket drained), and the budget of one read per turn
    // spreads them over two turns, the first of which starts the shutdown.
    let mut data = vec![b'x'; 8192];
    data[0] = b'S';
    client.write_all(&data).unwrap();
    // The echo, then EOF: within the read timeout (10 s), far below the
    // 60 s grace period that would otherwise close it.
    let echoed = common::read_to_eof(&mut client, data.len()).expect("EOF after the echo");
    assert!(echoed == data);
    drop(client);
    let thread = {
        let mut server = server;
        server.thread.take().unwrap()
    };
    let reactor = common::join_within(thread, Duration::from_secs(10));
    assert_eq!(reactor.stats().closed(CloseReason::Shutdown), 1);
}
