//! Loop health and the connection listing (issue 12), through real sockets
//! on 127.0.0.1: busy and wait time add up to the time the loop ran, every
//! turn lands in the turn-duration histogram, a handler that blocks shows
//! as timer lag, the handle's queue drains to zero, and
//! `Context::connections` / `connection_info` list what each socket did.
mod common;

use std::io::{Read, Write};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::client;
use reactor::{Config, ConnId, ConnInfo, ConnState, Context, Fired, Handler, Reactor};

const LIMIT: Duration = Duration::from_secs(10);

/// Echoes; `sleep` blocks the loop 60 ms (a handler that should not);
/// `list` answers with the listing, one line per connection; `me` with
/// the caller's own `connection_info`.
#[derive(Default)]
struct Probe {
    /// Every listing asked for, for the test to inspect in full.
    listings: Arc<Mutex<Vec<Vec<ConnInfo>>>>,
}

impl Handler for Probe {
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
        let text = String::from_utf8_lossy(input);
        let reply = match text.trim() {
            "sleep" => {
                // Arm a timer due in 5 ms, then block past it.
                ctx.start_timer(Duration::from_millis(5), 7);
                std::thread::sleep(Duration::from_millis(60));
                "slept\n".to_string()
            }
            "list" => {
                let listing = ctx.connections();
                let lines: Vec<String> = listing
                    .iter()
                    .map(|c| format!("{} {} {:?}", c.id, c.peer, c.state))
                    .collect();
                self.listings.lock().unwrap().push(listing);
                lines.join(";") + "\n"
            }
            "me" => {
                let me = ctx
                    .connection_info(conn)
                    .expect("asking connection is open");
                format!("{} {} {}\n", me.bytes_in, me.bytes_out, me.peer)
            }
            _ => text.into_owned(),
        };
        let _ = ctx.write(conn, reply.as_bytes());
        input.len()
    }

    fn timer(&mut self, _: &mut Context<'_, Self>, _: Fired) {}
}

fn line(stream: &mut std::net::TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8];
    while stream.read(&mut byte).expect("read") == 1 {
        if byte[0] == b'\n' {
            break;
        }
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

#[test]
fn busy_and_wait_time_cover_the_run_and_every_turn_is_in_the_histogram() {
    let mut reactor = Reactor::new(Probe::default(), Config::default()).unwrap();
    let listener = reactor.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addr = reactor.local_addr(listener).unwrap();
    let mut peer = client(addr);
    let started = Instant::now();
    let mut echoed = Vec::new();
    peer.write_all(b"hello\n").unwrap();
    while echoed.len() < 6 && started.elapsed() < LIMIT {
        reactor.run_once(Some(Duration::from_millis(10))).unwrap();
        peer.set_nonblocking(true).unwrap();
        let mut buf = [0u8; 64];
        if let Ok(n) = peer.read(&mut buf) {
            echoed.extend_from_slice(&buf[..n]);
        }
    }
    for _ in 0..5 {
        reactor.run_once(Some(Duration::from_millis(10))).unwrap();
    }
    let ran = started.elapsed();
    let stats = reactor.stats().clone();
    assert_eq!(echoed, b"hello\n");
    assert!(stats.turns >= 6, "{stats:?}");
    assert_eq!(
        stats.turn_duration.count, stats.turns,
        "one observation per turn"
    );
    assert_eq!(stats.turn_duration.counts.iter().sum::<u64>(), stats.turns);
    // Five idle turns of 10 ms each were spent waiting in poll.
    assert!(stats.loop_wait_ns >= 45_000_000, "{stats:?}");
    assert!(stats.loop_busy_ns > 0);
    // Busy and wait cover the run, give or take the test's own reads.
    let covered = Duration::from_nanos(stats.loop_busy_ns + stats.loop_wait_ns);
    assert!(
        covered <= ran + Duration::from_millis(50),
        "{covered:?} > {ran:?}"
    );
    assert!(stats.data_calls >= 1 && stats.writes >= 1, "{stats:?}");
    let cumulative: Vec<u64> = stats.turn_duration.cumulative().map(|(_, n)| n).collect();
    assert!(
        cumulative.windows(2).all(|w| w[0] <= w[1]),
        "cumulative buckets"
    );
    assert_eq!(
        *cumulative.last().unwrap(),
        stats.turns,
        "+Inf bucket = count"
    );
}

#[test]
fn a_blocking_handler_shows_as_timer_lag() {
    let server = common::start(Probe::default(), Config::default());
    let mut peer = client(server.addr);
    peer.write_all(b"sleep\n").unwrap();
    assert_eq!(line(&mut peer), "slept");
    let stats = server.wait_for("the timer fired", LIMIT, |s| s.timer_lag.count >= 1);
    // Due 5 ms after arming, fired after the 60 ms sleep: at least ~50 ms
    // late, so at least one observation above the 50 ms bound's bucket's
    // lower neighbour (25 ms).
    let late: u64 = stats
        .timer_lag
        .cumulative()
        .find(|(bound, _)| *bound == Some(Duration::from_millis(25)))
        .map(|(_, at_most)| stats.timer_lag.count - at_most)
        .unwrap();
    assert!(late >= 1, "{:?}", stats.timer_lag);
    assert!(
        stats.timer_lag.sum_ns >= 40_000_000,
        "{:?}",
        stats.timer_lag
    );
}

#[test]
fn the_handle_queue_drains_to_zero() {
    let server = common::start(Probe::default(), Config::default());
    for _ in 0..100 {
        server.handle.send(()).unwrap();
    }
    // The handle's own count reaches zero once the loop took every
    // message, and the loop's gauge says the same at the end of that turn.
    common::wait_until("the loop takes every message", LIMIT, || {
        server.handle.pending() == 0
    });
    server.wait_for("the gauge", LIMIT, |s| {
        s.handle_queue_depth == 0 && s.turns >= 1
    });
}

#[test]
fn connections_are_listed_with_what_each_did() {
    let probe = Probe::default();
    let listings = Arc::clone(&probe.listings);
    let server = common::start(probe, Config::default());
    let mut quiet = client(server.addr);
    let mut chatty = client(server.addr);
    chatty.write_all(&[b'x'; 1000]).unwrap();
    chatty.write_all(b"\n").unwrap();
    let mut echo = vec![0u8; 1001];
    chatty.read_exact(&mut echo).unwrap();
    // `me` counts what this connection read and wrote so far.
    chatty.write_all(b"me\n").unwrap();
    let me = line(&mut chatty);
    let fields: Vec<&str> = me.split(' ').collect();
    assert_eq!(fields[0], "1004", "bytes in: 1001 + `me\\n`");
    assert_eq!(fields[1], "1001", "bytes out: the echo");
    assert_eq!(fields[2], chatty.local_addr().unwrap().to_string());
    std::thread::sleep(Duration::from_millis(30));
    quiet.write_all(b"list\n").unwrap();
    let listed = line(&mut quiet);
    assert_eq!(listed.split(';').count(), 2, "{listed}");
    let listing = listings.lock().unwrap().pop().unwrap();
    assert_eq!(listing.len(), 2);
    let chatty_info = listing
        .iter()
        .find(|c| c.peer == chatty.local_addr().unwrap())
        .unwrap();
    assert_eq!(chatty_info.state, ConnState::Open);
    assert!(
        chatty_info.age >= Duration::from_millis(30),
        "{chatty_info:?}"
    );
    assert!(
        chatty_info.idle >= Duration::from_millis(25),
        "{chatty_info:?}"
    );
    assert_eq!(
        (chatty_info.bytes_in, chatty_info.bytes_out),
        (1004, 1001 + me.len() as u64 + 1)
    );
    assert_eq!(
        (chatty_info.queued_input, chatty_info.queued_output),
        (0, 0)
    );
    assert!(!chatty_info.tls);
    drop(quiet);
}
