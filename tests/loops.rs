//! Several loops on one address (`Loops`): the kernel spreading connections
//! over `SO_REUSEPORT` listeners, the hand-off acceptor choosing by load and
//! skipping a stalled loop, messages between loops, and stopping them all.
//!
//! Each loop runs [`Probe`]: an echo that answers `?` with its own index,
//! so a client learns which loop it reached, and a message that blocks the
//! loop, to stall it.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reactor::{
    CloseReason, Config, ConnId, Context, Distribution, Handler, Loops, LoopsConfig, Peers,
};

/// What a test sends a loop.
enum Probe {
    /// Block the loop's thread this long (a handler that stalls).
    Sleep(Duration),
    /// Record this number under the loop's index.
    Ping(u32),
}

/// Messages received, as (loop index, number), shared by every loop.
type Received = Arc<Mutex<Vec<(usize, u32)>>>;

/// An echo that tells which loop it is.
struct Prober {
    /// This loop's index.
    index: usize,
    /// Where `Ping`s are recorded.
    received: Received,
}

impl Handler for Prober {
    type State = ();
    type Message = Probe;

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        if input == b"?" {
            let _ = ctx.write(conn, &[b'0' + self.index as u8]);
        } else {
            let _ = ctx.write(conn, input);
        }
        input.len()
    }

    fn message(&mut self, _: &mut Context<'_, Self>, message: Probe) {
        match message {
            Probe::Sleep(how_long) => std::thread::sleep(how_long),
            Probe::Ping(n) => self.received.lock().unwrap().push((self.index, n)),
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), _: CloseReason) {}
}

/// Starts `loops` probers on 127.0.0.1:0.
fn start(loops: usize, distribution: Distribution) -> (Loops<Probe>, Received) {
    let received = Received::default();
    let shared = Arc::clone(&received);
    let settings = LoopsConfig {
        loops,
        listen: Some("127.0.0.1:0".parse().unwrap()),
        distribution,
        config: Config::default(),
        ..LoopsConfig::default()
    };
    let loops = Loops::start(settings, move |index, _: &Peers<Probe>| Prober {
        index,
        received: Arc::clone(&shared),
    })
    .expect("loops start");
    (loops, received)
}

/// Connects and asks which loop answers.
fn which_loop(addr: SocketAddr) -> (TcpStream, usize) {
    let mut stream = common::client(addr);
    stream.write_all(b"?").unwrap();
    let mut answer = [0u8; 1];
    stream.read_exact(&mut answer).unwrap();
    (stream, usize::from(answer[0] - b'0'))
}

/// Stops every loop and checks each ended well.
fn stop(loops: Loops<Probe>) {
    loops.handle().stop_all();
    for result in loops.join() {
        result.expect("loop ended with an error");
    }
}

#[test]
fn reuseport_spreads_connections_over_every_loop_and_each_echoes() {
    let (loops, _) = start(2, Distribution::ReusePort);
    let addr = loops.local_addr().unwrap();
    let mut on = [0usize; 2];
    let mut clients = Vec::new();
    for _ in 0..200 {
        let (mut stream, index) = which_loop(addr);
        on[index] += 1;
        stream.write_all(b"hello").unwrap();
        clients.push(stream);
    }
    for stream in &mut clients {
        let mut echo = [0u8; 5];
        stream.read_exact(&mut echo).unwrap();
        assert_eq!(&echo, b"hello");
    }
    let handle = loops.handle();
    for (index, &count) in on.iter().enumerate() {
        assert!(
            (40..=160).contains(&count),
            "loop {index} got {count} of 200: {on:?}"
        );
        let stats = handle.stats(index).unwrap();
        assert_eq!(stats.accepted, count as u64);
    }
    stop(loops);
}

#[test]
fn hand_off_gives_each_connection_to_the_least_loaded_loop() {
    let (loops, _) = start(2, Distribution::HandOff);
    let addr = loops.local_addr().unwrap();
    // Equal loads alternate.
    let mut clients: Vec<(TcpStream, usize)> = (0..6).map(|_| which_loop(addr)).collect();
    let order: Vec<usize> = clients.iter().map(|&(_, i)| i).collect();
    assert_eq!(order, [0, 1, 0, 1, 0, 1]);
    // Two fewer on loop 1: the next two go there.
    let mut kept = Vec::new();
    let mut dropped = 0;
    for (stream, index) in clients.drain(..) {
        if index == 1 && dropped < 2 {
            dropped += 1;
        } else {
            kept.push(stream);
        }
    }
    let handle = loops.handle();
    common::wait_for_stats(
        handle.handle(1).unwrap(),
        "two closes on loop 1",
        Duration::from_secs(5),
        |s| s.open_connections == 1,
    );
    let (_first, first) = which_loop(addr);
    let (_second, second) = which_loop(addr);
    assert_eq!((first, second), (1, 1));
    let stats = handle.all_stats();
    assert_eq!((stats[0].adopted, stats[1].adopted), (3, 5));
    assert_eq!((stats[0].accepted, stats[1].accepted), (0, 0));
    stop(loops);
}

#[test]
fn hand_off_gives_a_stalled_loop_no_new_connections() {
    let (loops, _) = start(2, Distribution::HandOff);
    let addr = loops.local_addr().unwrap();
    let handle = loops.handle();
    let before = handle.stats(1).unwrap().adopted;
    handle
        .send(1, Probe::Sleep(Duration::from_millis(200)))
        .unwrap_or_else(|_| panic!("loop 1 gone"));
    // Wait until loop 1 is inside its sleep, past the stall threshold.
    let start = Instant::now();
    let loop1 = handle.handle(1).unwrap();
    while !matches!(loop1.turn_running_for(), Some(busy) if busy >= Duration::from_millis(30)) {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "loop 1 never slept"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    let mut clients = Vec::new();
    for _ in 0..10 {
        let (stream, index) = which_loop(addr);
        assert_eq!(index, 0, "a connection went to the stalled loop");
        clients.push(stream);
    }
    assert!(
        start.elapsed() < Duration::from_millis(150),
        "too slow to tell"
    );
    // Back from its sleep, loop 1 is the least loaded: it gets the next.
    while loop1.turn_running_for().is_some() {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(handle.stats(1).unwrap().adopted, before);
    assert_eq!(which_loop(addr).1, 1);
    stop(loops);
}

#[test]
fn a_message_to_loop_i_reaches_loop_i() {
    let (loops, received) = start(3, Distribution::ReusePort);
    let handle = loops.handle();
    for index in 0..3 {
        assert!(handle.send(index, Probe::Ping(index as u32 * 10)).is_ok());
    }
    assert!(handle.send(3, Probe::Ping(0)).is_err(), "no loop 3");
    common::wait_until("three pings", Duration::from_secs(5), || {
        received.lock().unwrap().len() == 3
    });
    let mut got = received.lock().unwrap().clone();
    got.sort_unstable();
    assert_eq!(got, [(0, 0), (1, 10), (2, 20)]);
    stop(loops);
}

#[test]
fn shutdown_all_drains_every_loop_and_the_summed_stats_add_up() {
    for distribution in [Distribution::ReusePort, Distribution::HandOff] {
        let (loops, _) = start(2, distribution);
        let addr = loops.local_addr().unwrap();
        let mut clients: Vec<TcpStream> = (0..20).map(|_| which_loop(addr).0).collect();
        let handle = loops.handle();
        handle.shutdown_all(Duration::from_secs(2));
        // Idle connections are closed: every client sees its EOF.
        for stream in &mut clients {
            stream
                .set_read_timeout(Some(Duration::from_secs(5)))
                .unwrap();
            let mut rest = Vec::new();
            stream.read_to_end(&mut rest).unwrap();
        }
        // Our FIN ends the loops' lingering close.
        drop(clients);
        let started = Instant::now();
        let results: Vec<_> = loops
            .join()
            .into_iter()
            .map(|r| r.expect("loop ended with an error"))
            .collect();
        assert!(started.elapsed() < Duration::from_secs(2));
        // Nothing listens any more.
        assert!(TcpStream::connect(addr).is_err(), "{distribution:?}");
        let mut sum = reactor::Stats::default();
        for stats in &results {
            sum.add(stats);
        }
        assert_eq!(handle.stats_sum(), sum);
        assert_eq!(sum.accepted + sum.adopted, 20);
        assert_eq!(sum.closed_total(), 20);
        assert_eq!(sum.open_connections, 0);
    }
}

#[test]
fn a_bind_failure_stops_the_loops_already_built() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let settings = LoopsConfig {
        loops: 2,
        listen: Some(taken.local_addr().unwrap()),
        ..LoopsConfig::default()
    };
    let result = Loops::start(settings, |index, _: &Peers<Probe>| Prober {
        index,
        received: Received::default(),
    });
    let error = result.err().expect("the address is taken");
    assert!(error.to_string().contains("cannot bind"), "{error}");
}

/// The measurement behind docs/benchmarks.md ("Many loops"): while loop 1
/// blocks for 200 ms, 100 clients connect and ask which loop serves them.
/// Run with `cargo test --release --test loops -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement: prints each mode's share for the stalled loop"]
fn share_of_a_stalled_loop_in_each_mode() {
    for distribution in [Distribution::ReusePort, Distribution::HandOff] {
        let (loops, _) = start(2, distribution);
        let addr = loops.local_addr().unwrap();
        let handle = loops.handle();
        handle
            .send(1, Probe::Sleep(Duration::from_millis(200)))
            .unwrap_or_else(|_| panic!("loop 1 gone"));
        let loop1 = handle.handle(1).unwrap();
        while !matches!(loop1.turn_running_for(), Some(busy) if busy >= Duration::from_millis(25)) {
            std::thread::sleep(Duration::from_millis(1));
        }
        let started = Instant::now();
        let mut clients: Vec<TcpStream> = (0..100)
            .map(|_| {
                let mut stream = common::client(addr);
                stream.write_all(b"?").unwrap();
                stream
            })
            .collect();
        let connected_in = started.elapsed();
        let mut on = [0usize; 2];
        let mut slowest = Duration::ZERO;
        for stream in &mut clients {
            let mut answer = [0u8; 1];
            stream.read_exact(&mut answer).unwrap();
            on[usize::from(answer[0] - b'0')] += 1;
            slowest = slowest.max(started.elapsed());
        }
        println!(
            "{distribution:?}: 100 connections in {connected_in:?} during the stall: \
             loop 0 {}, stalled loop 1 {}; last answer after {slowest:?}",
            on[0], on[1]
        );
        stop(loops);
    }
}
