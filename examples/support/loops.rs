//! `--threads N` for the example servers (included with
//! `#[path = "support/loops.rs"] mod loops;`): N loops on one address
//! through [`reactor::Loops`], one per thread, each with its own handler.
//!
//! Signals: with one loop, the loop itself takes SIGINT and SIGTERM from a
//! pipe it polls (`support/server.rs`). With several, no one loop should
//! own them (it may be the stalled one), so a thread of their own waits for
//! them and acts on every loop at once through the `LoopsHandle`: the first
//! starts a graceful shutdown of all, a second stops all. The loops'
//! handlers then get `ShutdownSignals::none()`.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use reactor::{Config, Distribution, Handler, Loops, LoopsConfig, LoopsHandle, Peers, Stats};
use signal_hook::consts::{SIGINT, SIGTERM};
use signal_hook::iterator::Signals;

/// The flags that choose how many loops and how connections reach them.
#[derive(clap::Args, Debug)]
pub struct LoopFlags {
    /// Event loops, one thread each. With more than one, each listens on
    /// the address with SO_REUSEPORT (the kernel spreads connections by a
    /// hash) unless --hand-off.
    #[arg(long, default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=1024))]
    pub threads: u16,
    /// One thread accepts and hands each connection to the least-loaded
    /// loop that is not stalled (memcached's model), instead of
    /// SO_REUSEPORT. Plain TCP only.
    #[arg(long)]
    pub hand_off: bool,
}

impl LoopFlags {
    /// Whether to run through `Loops` rather than one `Reactor` (one loop
    /// without `--hand-off` keeps the single-loop code path).
    pub fn many(&self) -> bool {
        self.threads > 1 || self.hand_off
    }
}

/// Refuses, before any loop starts, what an example serves on one loop
/// only: TLS (`tls`), and each flag of `one_loop_only` that was `given`,
/// as `(given, "--flag")`; the error names the first that was.
#[allow(dead_code)] // Not every example that includes this calls it.
pub fn refuse_one_loop_only(tls: bool, one_loop_only: &[(bool, &str)]) -> io::Result<()> {
    if tls {
        let why = "--threads above 1 or --hand-off is plain TCP only in this example";
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    if let Some((_, flag)) = one_loop_only.iter().find(|(given, _)| *given) {
        let why = format!("{flag} serves one loop: not with --threads above 1 or --hand-off");
        return Err(io::Error::new(io::ErrorKind::InvalidInput, why));
    }
    Ok(())
}

/// Runs `flags.threads` loops with handlers from `factory` on `addr` until
/// a signal shuts them down; prints "NAME listening on ADDR (...)" first
/// and one line per loop at the end; returns the loops' summed counters.
#[allow(dead_code)] // Not every example that includes this calls it.
pub fn serve<H, F>(
    name: &str,
    flags: &LoopFlags,
    addr: SocketAddr,
    config: Config,
    grace: Duration,
    factory: F,
) -> io::Result<Stats>
where
    H: Handler,
    F: Fn(usize, &Peers<H::Message>) -> H + Send + Sync + 'static,
{
    serve_with(name, flags, addr, config, grace, factory, |_| {})
}

/// [`serve`], calling `started` with the loops' handle once every loop runs
/// and the "listening on" line is out: what a handler should do only after
/// that line (print the `--metrics` address) it can do when `started`
/// wakes its loop, by a message.
pub fn serve_with<H, F>(
    name: &str,
    flags: &LoopFlags,
    addr: SocketAddr,
    config: Config,
    grace: Duration,
    factory: F,
    started: impl FnOnce(&LoopsHandle<H::Message>),
) -> io::Result<Stats>
where
    H: Handler,
    F: Fn(usize, &Peers<H::Message>) -> H + Send + Sync + 'static,
{
    let distribution = if flags.hand_off {
        Distribution::HandOff
    } else {
        Distribution::ReusePort
    };
    // Caught before any loop runs, so no signal falls between.
    let mut signals = Signals::new([SIGINT, SIGTERM])?;
    let settings = LoopsConfig {
        loops: usize::from(flags.threads),
        listen: Some(addr),
        distribution,
        config,
        ..LoopsConfig::default()
    };
    let loops = Loops::start(settings, factory)?;
    let mode = if flags.hand_off {
        "hand-off"
    } else {
        "SO_REUSEPORT"
    };
    eprintln!(
        "{name} listening on {} ({} loops, {mode})",
        loops.local_addr().expect("listening"),
        flags.threads
    );
    let all = loops.handle();
    started(&all);
    let closer = signals.handle();
    let watcher = std::thread::spawn(move || {
        let mut first = true;
        for signal in signals.forever() {
            if first {
                log::warn!("signal {signal}: graceful shutdown of every loop ({grace:?} grace)");
                all.shutdown_all(grace);
                first = false;
            } else {
                log::warn!("signal {signal} again: stopping every loop now");
                all.stop_all();
            }
        }
    });
    let mut total = Stats::default();
    let mut failure = None;
    for (index, result) in loops.join().into_iter().enumerate() {
        match result {
            Ok(stats) => {
                eprintln!(
                    "{name} loop {index}: {} connections, {} data calls, {} bytes in",
                    stats.accepted + stats.adopted,
                    stats.data_calls,
                    stats.bytes_in
                );
                total.add(&stats);
            }
            Err(e) => failure = Some(e),
        }
    }
    closer.close();
    let _ = watcher.join();
    failure.map_or(Ok(total), Err)
}
