//! One worker thread's life: build its reactor, connect its share, wait
//! for the other threads, run the load, hand back what it measured.
//!
//! The loop runs twice, with the reactor's own `run()` each time: once
//! until every connect has settled, once for the load until the schedule
//! stops it. Between the two, outside the loop, is the one thing that
//! cannot be a callback: waiting at a barrier for the other threads, which
//! blocks. Callbacks must never block, and the wait is needed: every thread
//! takes `t0` when all have connected, so their windows agree.

use std::io;
use std::sync::{Arc, Barrier};
use std::time::Instant;

use hdrhistogram::Histogram;
use reactor::{Config, Reactor};

use crate::cli::Args;
use crate::generator::Generator;
use crate::progress::{Narrator, Progress};
use crate::report::Counters;
use crate::tls::ClientTls;

/// Descriptors a worker's reactor keeps room for beyond its connections.
const SPARE_DESCRIPTORS: usize = 16;

/// What one thread hands back.
pub struct Outcome {
    /// Latencies of the measured window.
    pub hist: Histogram<u64>,
    /// Counters of the whole run.
    pub counters: Counters,
    /// The lead thread only: this process's CPU seconds over the window.
    pub window_cpu: Option<f64>,
}

/// Thread `thread`: opens connections `numbers` (over TLS with `tls`),
/// meets the other threads at `barrier`, loads, drains, reports.
pub fn worker(
    thread: usize,
    args: Arc<Args>,
    tls: Option<ClientTls>,
    numbers: Vec<u64>,
    progress: Arc<Progress>,
    barrier: Arc<Barrier>,
) -> io::Result<Outcome> {
    let config = Config {
        max_connections: numbers.len() + SPARE_DESCRIPTORS,
        // A handshake is part of the connect, and `--timeout` bounds both.
        tls_handshake_timeout: args.timeout(),
        ..Config::default()
    };
    let generator = Generator::new(thread, args, tls, numbers, progress);
    // Whatever happens, pass the barrier: the other threads wait there.
    let connected = connect(generator, config);
    barrier.wait();
    let mut reactor = connected?;

    let t0 = Instant::now();
    reactor.with_context(|generator, ctx| generator.begin_load(ctx, t0));
    reactor.run()?;

    let (handshakes, handshake_failures) = {
        let stats = reactor.stats();
        (stats.tls_handshakes, stats.tls_handshake_failures)
    };
    let generator = reactor.handler_mut();
    generator.counters.tls_handshakes = handshakes;
    generator.counters.tls_handshake_failures = handshake_failures;
    Ok(Outcome {
        hist: generator.latency.take_measured(),
        counters: generator.counters,
        window_cpu: generator.narrator.as_ref().map(Narrator::window_cpu),
    })
}

/// Builds the thread's reactor and opens its connections (or sockets);
/// the connect phase ends when every connect has settled or at its
/// deadline (`schedule.rs`).
fn connect(generator: Generator, config: Config) -> io::Result<Reactor<Generator>> {
    let mut reactor = Reactor::new(generator, config)?;
    let own_loop = reactor.handle();
    reactor.handler_mut().pacer.set_own_loop(own_loop);
    if reactor.handler().args.udp {
        reactor.with_context(|generator, ctx| generator.open_udp(ctx))?;
    } else if reactor.with_context(|generator, ctx| generator.begin_connecting(ctx)) {
        reactor.run()?;
    }
    Ok(reactor)
}
