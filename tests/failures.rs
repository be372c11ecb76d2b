//! Per-connection failures and descriptor hygiene: a client that resets
//! while the server is writing a lot to it ends only that connection (with
//! `Reset`), and every way a connection can end gives its descriptor back.
//!
//! These tests count the descriptors of the whole test process
//! (`/proc/self/fd`), so no other test may open or close sockets meanwhile:
//! every test in this file holds `SERIAL` for its whole run, and nothing that
//! opens descriptors lives in this binary outside it.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use common::{echo_once, reset, Echo};
use reactor::{CloseReason, Config, ConnId, Context, Handler};

static SERIAL: Mutex<()> = Mutex::new(());

/// Takes the file's lock, surviving a poisoned one (a failed test).
fn serial() -> MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Echoes; `flood` queues 16 MiB in 16 chunks; `close` closes at once.
fn flood_or_close(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    match input {
        b"flood" => {
            for i in 0..16u8 {
                let _ = ctx.write_vec(conn, vec![i; 1024 * 1024]);
            }
        }
        b"close" => ctx.close(conn),
        _ => common::echo(ctx, conn, input),
    }
}

fn wait_for_fds(expected: usize, what: &str) {
    let mut now = 0;
    let ok = (0..1000).any(|_| {
        now = common::open_fds();
        if now == expected {
            return true;
        }
        std::thread::sleep(Duration::from_millis(5));
        false
    });
    assert!(ok, "{what}: {now} descriptors open, expected {expected}");
}

/// The reset client is closed with `Reset` while its output is being
/// written; a second client keeps echoing throughout; descriptors return to
/// their level before the client, and to the baseline after the reactor.
#[test]
fn reset_mid_write_ends_only_that_connection_and_frees_its_descriptor() {
    let _serial = serial();
    let baseline = common::open_fds();
    let handler = Echo::with(flood_or_close);
    let closes = Arc::clone(&handler.peer_closes);
    let config = Config {
        max_output: 64 * 1024 * 1024,
        ..Config::default()
    };
    let server = common::start(handler, config);
    let mut other = common::client(server.addr);
    echo_once(&mut other, b"hello");
    let before_victim = common::open_fds();

    let mut victim = common::client(server.addr);
    let victim_addr = victim.local_addr().unwrap();
    victim.write_all(b"flood").unwrap();
    // The server is in the middle of writing 16 MiB the client does not read.
    server.wait_for("output stuck in the queue", Duration::from_secs(10), |s| {
        s.queued_output_bytes > 0
    });
    echo_once(&mut other, b"while flooding");
    reset(victim);

    server.wait_for("the reset close", Duration::from_secs(10), |s| {
        s.closed_total() == 1
    });
    let reason = common::close_reason_at(&closes, victim_addr);
    assert!(
        matches!(reason, Some(CloseReason::Reset | CloseReason::Error(_))),
        "victim closed with {reason:?}"
    );
    let stats = server.handle.stats();
    assert_eq!(stats.open_connections, 1);
    assert_eq!(stats.queued_output_bytes, 0, "the dead queue was not freed");
    echo_once(&mut other, b"after the reset");
    wait_for_fds(before_victim, "after the reset");

    drop(other);
    server.wait_for("the other close", Duration::from_secs(5), |s| {
        s.closed_total() == 2
    });
    drop(server.stop());
    wait_for_fds(baseline, "after the reactor stopped");
}

/// Rejected, reset, peer-closed and handler-closed connections all give
/// their descriptors back while the server runs.
#[test]
fn every_kind_of_close_releases_its_descriptor() {
    let _serial = serial();
    let baseline = common::open_fds();
    let config = Config {
        max_connections: 20,
        ..Config::default()
    };
    let server = common::start(Echo::with(flood_or_close), config);
    let serving = common::open_fds();

    let mut clients: Vec<TcpStream> = (0..30).map(|_| common::client(server.addr)).collect();
    let stats = server.wait_for("30 accepted", Duration::from_secs(5), |s| s.accepted == 30);
    assert_eq!(stats.rejected, 10);
    assert_eq!(stats.open_connections, 20);
    // Find the 20 served ones: they echo; the rejected ones read EOF.
    let mut served = Vec::new();
    for mut stream in clients.drain(..) {
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        if stream.write_all(b"ping").is_err() {
            continue;
        }
        let mut echo = [0; 4];
        if stream.read_exact(&mut echo).is_ok() {
            assert_eq!(&echo, b"ping");
            served.push(stream);
        }
    }
    assert_eq!(served.len(), 20);
    for (i, mut stream) in served.into_iter().enumerate() {
        match i % 3 {
            0 => reset(stream),
            1 => drop(stream),
            _ => {
                stream.write_all(b"close").unwrap();
                let mut buf = [0; 1];
                assert!(matches!(stream.read(&mut buf), Ok(0) | Err(_)));
            }
        }
    }
    server.wait_for("every close", Duration::from_secs(10), |s| {
        s.closed_total() == 20 && s.open_connections == 0
    });
    wait_for_fds(serving, "after 30 connections came and went");
    drop(server.stop());
    wait_for_fds(baseline, "after the reactor stopped");
}

/// Keeps a half-closed connection open without writing (a server that
/// answers later, from a timer or another connection).
#[derive(Default)]
struct Patient {
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for Patient {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }

    fn read_closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut ()) {
        // Stay in ReadClosed: the reply is not ready yet.
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

/// A peer that half-closes and then resets, while the server holds the
/// connection in ReadClosed with nothing to write: no read or write will
/// report the reset, yet the connection must close (with `Reset`) and give
/// its descriptor back instead of staying open forever.
#[test]
fn reset_after_fin_is_noticed_with_nothing_to_write() {
    let _serial = serial();
    let handler = Patient::default();
    let closes = Arc::clone(&handler.closes);
    let server = common::start(handler, Config::default());
    let serving = common::open_fds();
    let mut client = common::client(server.addr);
    client.write_all(b"request").unwrap();
    client.shutdown(std::net::Shutdown::Write).unwrap();
    // Wait until the server has seen the FIN (it read 0 after 7 bytes).
    server.wait_for("the request", Duration::from_secs(5), |s| {
        s.bytes_in == 7 && s.read_syscalls >= 2
    });
    reset(client);
    server.wait_for("the reset close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(*closes.lock().unwrap(), [CloseReason::Reset]);
    wait_for_fds(serving, "after the reset");
    drop(server.stop());
}
