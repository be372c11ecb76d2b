//! Data integrity through the echo path: many concurrent clients with
//! distinct data, 64 MiB in random chunk sizes, a client that half-closes,
//! and the counters that describe all of it.
//!
//! These are the tests that catch lost, duplicated or reordered bytes: a
//! missed edge (a flag cleared before `WouldBlock`), a budget that drops
//! readiness instead of re-queueing it, or a vectored write that advances the
//! queue wrongly all show up as a byte-exact mismatch or a hang (bounded by
//! socket timeouts, so a hang fails).
mod common;

use std::io::{Read, Write};
use std::net::Shutdown;
use std::sync::Arc;
use std::thread;
use std::time::Duration;

use common::Prng;
use reactor::{CloseReason, Config};

/// 200 clients connected at once, each sending several messages of its own
/// (seeded by its index) and reading back exactly those bytes.
#[test]
fn many_concurrent_clients_each_get_their_own_bytes_back() {
    const CLIENTS: usize = 200;
    const ROUNDS: usize = 4;
    let server = common::start_echo(Config::default());
    let addr = server.addr;
    let totals = common::on_threads_together(CLIENTS, move |i, barrier| {
        let mut stream = common::client(addr);
        // Everyone connected before anyone sends: the loop serves 200 live
        // connections at once.
        barrier.wait();
        let mut rng = Prng(0x9E37_79B9_7F4A_7C15 ^ (i as u64 + 1));
        let mut total = 0;
        for _ in 0..ROUNDS {
            let len = rng.range(1, 8 * 1024);
            let mut message = rng.bytes(len);
            message[0] = i as u8; // distinct even if two seeds collided
            stream.write_all(&message).unwrap();
            let mut echo = vec![0; len];
            stream.read_exact(&mut echo).unwrap();
            assert_eq!(echo, message, "client {i} got someone else's bytes");
            total += len;
        }
        stream.shutdown(Shutdown::Write).unwrap();
        let rest = common::read_to_eof(&mut stream, 0).unwrap();
        assert!(rest.is_empty());
        total as u64
    });
    let sent: u64 = totals.into_iter().sum();
    let stats = server.wait_for("every close", Duration::from_secs(10), |s| {
        s.closed_total() == CLIENTS as u64
    });
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.closed(CloseReason::PeerClosed), CLIENTS as u64);
    assert_eq!(stats.bytes_in, sent);
    assert_eq!(stats.bytes_out, sent);
    assert_eq!(stats.open_connections, 0);
    assert_eq!(stats.queued_output_bytes, 0);
}

/// 64 MiB of seeded random bytes, written in random chunk sizes while another
/// thread reads the echo, must come back identical. The amount is far beyond
/// every socket buffer, so backpressure, short writes, budgets and the ready
/// queue all take part.
#[test]
fn sixty_four_mib_in_random_chunks_echo_byte_exact() {
    const TOTAL: usize = 64 * 1024 * 1024;
    let server = common::start_echo(Config::default());
    let mut writer = common::client(server.addr);
    let mut reader = writer.try_clone().unwrap();
    let data = Arc::new(Prng(0xDEC0_DED0_1234_5678).bytes(TOTAL));

    let expected = Arc::clone(&data);
    let read_thread = thread::spawn(move || {
        let mut got = vec![0u8; TOTAL];
        let mut filled = 0;
        while filled < TOTAL {
            let n = reader.read(&mut got[filled..]).expect("read echo");
            assert!(n > 0, "EOF after {filled} of {TOTAL} bytes");
            filled += n;
        }
        // Compare in the reader so the first bad offset is reported.
        if let Some(at) = got.iter().zip(expected.iter()).position(|(a, b)| a != b) {
            panic!("echo differs from what was sent at byte {at}");
        }
        // The server closes after our FIN: nothing extra may follow.
        let extra = common::read_to_eof(&mut reader, 0).unwrap();
        assert!(extra.is_empty());
    });

    let mut rng = Prng(42);
    let mut sent = 0;
    while sent < TOTAL {
        let len = rng.range(1, 256 * 1024).min(TOTAL - sent);
        writer.write_all(&data[sent..sent + len]).unwrap();
        sent += len;
    }
    writer.shutdown(Shutdown::Write).unwrap();
    read_thread.join().expect("reader");

    let stats = server.wait_for("the close", Duration::from_secs(10), |s| {
        s.closed_total() == 1
    });
    assert_eq!(stats.bytes_in, TOTAL as u64);
    assert_eq!(stats.bytes_out, TOTAL as u64);
    assert_eq!(stats.closed(CloseReason::PeerClosed), 1);
}

/// A client that sends, shuts down its write side and only then reads must
/// still receive every byte, then EOF; the server records `PeerClosed`.
#[test]
fn half_closed_client_still_receives_everything_then_eof() {
    const LEN: usize = 1024 * 1024;
    let server = common::start_echo(Config::default());
    let mut stream = common::client(server.addr);
    let data = Prng(7).bytes(LEN);
    // Write from a thread: 1 MiB may exceed what the buffers hold while we
    // are not reading yet.
    let write_thread = common::write_then_fin(&stream, data.clone());
    let echoed = common::read_to_eof(&mut stream, LEN).unwrap();
    write_thread.join().unwrap();
    assert_eq!(echoed.len(), LEN);
    assert!(echoed == data, "echo differs from what was sent");

    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    let reactor = server.stop();
    assert_eq!(reactor.handler().closes, [CloseReason::PeerClosed]);
}

/// The counters agree with what the clients did: bytes in equal bytes out
/// for an echo, and the syscall and poll counters moved.
#[test]
fn stats_counters_are_consistent_for_echo() {
    let server = common::start_echo(Config::default());
    let mut sent = 0u64;
    for i in 0..5u8 {
        let mut stream = common::client(server.addr);
        let message = vec![i; 1000 + i as usize * 1000];
        stream.write_all(&message).unwrap();
        let mut echo = vec![0; message.len()];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(echo, message);
        sent += message.len() as u64;
    }
    server.wait_for("five closes", Duration::from_secs(5), |s| {
        s.closed_total() == 5
    });
    let reactor = server.stop();
    let stats = reactor.stats().clone();
    assert_eq!(stats.accepted, 5);
    assert_eq!(stats.rejected, 0);
    assert_eq!(stats.bytes_in, sent);
    assert_eq!(stats.bytes_out, sent);
    assert!(stats.read_syscalls >= 5, "{stats:?}");
    assert!(stats.write_syscalls >= 5, "{stats:?}");
    assert!(stats.poll_calls > 0 && stats.events > 0, "{stats:?}");
    // Every echo needs at least one turn; each turn is one poll.
    assert!(stats.poll_calls >= 5, "{stats:?}");
    assert_eq!(stats.closed_total(), 5);
    assert_eq!(stats.handler_panics, 0);
    assert_eq!(stats.stale_events, 0);
    assert_eq!(stats.open_connections, 0);
    assert_eq!(stats.queued_output_bytes, 0);
}

/// Replies to each complete line with its own `write_vec` chunk and leaves a
/// partial line unconsumed, so the loop keeps leftovers between reads and
/// sends hundreds of chunks per vectored write.
struct Lines;

impl reactor::Handler for Lines {
    type State = ();
    type Message = ();

    fn opened(
        &mut self,
        _: &mut reactor::Context<'_, Self>,
        _: reactor::ConnId,
        _: std::net::SocketAddr,
    ) {
    }

    fn data(
        &mut self,
        ctx: &mut reactor::Context<'_, Self>,
        conn: reactor::ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let Some(end) = input.iter().rposition(|&b| b == b'\n') else {
            return 0;
        };
        for line in input[..=end].split_inclusive(|&b| b == b'\n') {
            let _ = ctx.write_vec(conn, line.to_vec());
        }
        end + 1
    }
}

/// Lines split at random points (often mid-line, down to single bytes) come
/// back whole and in order: leftovers are kept and re-offered correctly, and
/// queues of many small chunks are written in order.
#[test]
fn partial_lines_are_kept_and_many_small_chunks_are_written_in_order() {
    const TOTAL: usize = 4 * 1024 * 1024;
    let server = common::start(Lines, Config::default());
    let mut rng = Prng(2024);
    let mut data = Vec::with_capacity(TOTAL + 512);
    while data.len() < TOTAL {
        let len = rng.range(0, 300);
        data.extend(rng.bytes(len).into_iter().map(|b| b'a' + b % 26));
        data.push(b'\n');
    }
    let mut writer = common::client(server.addr);
    let mut reader = writer.try_clone().unwrap();
    let len = data.len();
    let read_thread = thread::spawn(move || {
        let mut got = vec![0; len];
        reader.read_exact(&mut got).unwrap();
        got
    });
    let mut sent = 0;
    while sent < len {
        // Mostly small pieces, some single bytes, some large.
        let piece = match rng.range(0, 9) {
            0 => 1,
            1..=6 => rng.range(1, 512),
            _ => rng.range(512, 64 * 1024),
        }
        .min(len - sent);
        writer.write_all(&data[sent..sent + piece]).unwrap();
        sent += piece;
    }
    let got = read_thread.join().unwrap();
    if let Some(at) = got.iter().zip(&data).position(|(a, b)| a != b) {
        panic!("line echo differs at byte {at}");
    }
    drop(writer);
    let stats = server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(stats.bytes_in, len as u64);
    assert_eq!(stats.bytes_out, len as u64);
}

/// Tiny budgets (one 4 KiB read per connection per turn, one accept per
/// listener per turn) force every connection and the listener through the
/// ready queue over and over: a readiness flag dropped when a budget runs
/// out would stall a client forever (caught by the read timeouts).
#[test]
fn tiny_budgets_yield_without_losing_readiness() {
    const CLIENTS: usize = 40;
    const LEN: usize = 512 * 1024;
    let config = Config {
        read_buffer_size: 4096,
        read_budget_reads: 1,
        read_budget_bytes: 4096,
        accepts_per_turn: 1,
        ..Config::default()
    };
    let server = common::start_echo(config);
    let addr = server.addr;
    common::on_threads_together(CLIENTS, move |i, barrier| {
        // Connect all at once: the accept budget of 1 leaves most of them
        // waiting on the listener's ready-queue entry.
        barrier.wait();
        let mut stream = common::client(addr);
        let data = Prng(i as u64 + 1000).bytes(LEN);
        let mut reader = stream.try_clone().unwrap();
        let reader = thread::spawn(move || {
            let mut got = vec![0; LEN];
            reader.read_exact(&mut got).unwrap();
            got
        });
        stream.write_all(&data).unwrap();
        assert!(reader.join().unwrap() == data, "client {i}: echo differs");
    });
    // The snapshot behind `Handle::stats` is published at the end of a
    // turn; the last echo can reach its client before that turn ends.
    let stats = server.wait_for("the last turn's stats", Duration::from_secs(5), |s| {
        s.bytes_out == (CLIENTS * LEN) as u64
    });
    assert_eq!(stats.accepted, CLIENTS as u64);
    assert_eq!(stats.bytes_out, (CLIENTS * LEN) as u64);
    assert!(stats.budget_yields > 0, "{stats:?}");
}

/// Request/response echo costs exactly one read and one write per message:
/// a short read proves the socket drained (no read just to see
/// `WouldBlock`), and the reply leaves straight after the callback.
#[test]
fn ping_pong_costs_one_read_and_one_write_per_message() {
    const MESSAGES: u64 = 200;
    let server = common::start_echo(Config::default());
    let mut stream = common::client(server.addr);
    for i in 0..MESSAGES {
        let message = format!("ping {i:05}");
        stream.write_all(message.as_bytes()).unwrap();
        let mut echo = vec![0; message.len()];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(echo, message.as_bytes());
    }
    drop(stream);
    let stats = server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    // One read per message, plus the read that returns 0 at the end.
    assert_eq!(stats.read_syscalls, MESSAGES + 1, "{stats:?}");
    assert_eq!(stats.write_syscalls, MESSAGES, "{stats:?}");
    assert_eq!(stats.would_blocks, 0, "{stats:?}");
    assert!(stats.poll_calls >= MESSAGES, "{stats:?}");
}
