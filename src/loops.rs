//! One loop per core: several single-threaded reactors, one per thread,
//! each with its own handler, started, reached and stopped together.
//!
//! A [`Reactor`] is not `Send` (its handler and connection states need not
//! be), so each loop is built on its own thread by a factory given the
//! loop's index, and only its [`Handle`] comes back. Loops reach each other
//! through those handles ([`Peers`]): a message to loop `i` is a command on
//! its channel, FIFO like every channel, so what one loop sends another
//! arrives in the order sent.
//!
//! Connections reach the loops in one of two ways ([`Distribution`]):
//!
//! * **`ReusePort`** (the default): every loop binds its own listener on the
//!   same address with `SO_REUSEPORT`, and the kernel spreads connections by
//!   a hash of their addresses. Nothing is shared and nothing is handed
//!   over, so it costs nothing per connection; but the hash ignores load: a
//!   loop stuck in a slow callback keeps receiving its share, which waits
//!   in its listener's backlog. And closing one loop's listener resets the
//!   connections queued on it, unless `net.ipv4.tcp_migrate_req = 1`
//!   (Linux 5.14) moves them to the others.
//! * **`HandOff`** (memcached's model): one acceptor thread accepts and hands
//!   each connection to the least-loaded loop (`hand_off.rs`). It costs a
//!   channel send and a wake per connection, and one thread accepts for
//!   all; in return a stalled loop receives no new connections. Plain TCP
//!   only: a handed-over connection has no TLS or PROXY header step.
//!
//! Reuseport suits short, uniform work (an echo, a cache); hand-off suits
//! handlers whose callbacks may stall, and long-lived connections, where a
//! bad placement lasts.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::accept::ListenerOptions;
use crate::config::Config;
use crate::hand_off::{Acceptor, AcceptorControl};
use crate::handle::Handle;
use crate::handler::Handler;
use crate::reactor::Reactor;
use crate::stats::Stats;

/// How connections reach the loops (see the module's documentation).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Distribution {
    /// Each loop listens on the same address with `SO_REUSEPORT`; the
    /// kernel picks a loop per connection by a hash of its addresses.
    #[default]
    ReusePort,
    /// One acceptor thread hands each connection to the least-loaded loop
    /// that is not stalled.
    HandOff,
}

/// Settings for [`Loops::start`].
#[derive(Clone, Debug)]
pub struct LoopsConfig {
    /// Number of loops (threads), at least 1.
    pub loops: usize,
    /// Where to listen; port 0 picks a free port, the same for every loop.
    /// `None`: no listener (loops that only connect out).
    pub listen: Option<SocketAddr>,
    /// How connections reach the loops.
    pub distribution: Distribution,
    /// Every loop's configuration (`reuse_port` is set for
    /// [`Distribution::ReusePort`]).
    pub config: Config,
    /// The listeners' options (PROXY protocol, TLS); `ReusePort` only.
    pub listener_options: ListenerOptions,
    /// Hand-off: a loop whose current turn has run longer than this is
    /// stalled and gets no new connection until it comes back.
    pub stall_after: Duration,
}

impl Default for LoopsConfig {
    fn default() -> Self {
        LoopsConfig {
            loops: 1,
            listen: None,
            distribution: Distribution::ReusePort,
            config: Config::default(),
            listener_options: ListenerOptions::default(),
            // A busy loop's turn takes a few milliseconds at most (its read
            // budgets bound it); 20 ms is a callback that blocks.
            stall_after: Duration::from_millis(20),
        }
    }
}

/// What every [`LoopsHandle`] shares.
#[derive(Debug)]
struct Shared<M> {
    /// Number of loops. Invariant: `handles`, once set, has this many.
    count: usize,
    /// Each loop's handle, by index; set once every loop is built, before
    /// any of them runs, so no callback sees it unset.
    handles: OnceLock<Vec<Handle<M>>>,
    /// The hand-off acceptor's remote control; set (to `None` for
    /// reuseport) before any loop runs.
    acceptor: OnceLock<Option<AcceptorControl>>,
}

/// A `Send + Clone` remote control for every loop of a [`Loops`].
#[derive(Debug)]
pub struct LoopsHandle<M> {
    /// The handles and the acceptor, shared by every clone.
    shared: Arc<Shared<M>>,
}

impl<M> Clone for LoopsHandle<M> {
    fn clone(&self) -> Self {
        LoopsHandle {
            shared: Arc::clone(&self.shared),
        }
    }
}

impl<M> LoopsHandle<M> {
    /// Number of loops.
    pub fn len(&self) -> usize {
        self.shared.count
    }

    /// Never true: there is at least one loop.
    pub fn is_empty(&self) -> bool {
        self.shared.count == 0
    }

    /// Loop `index`'s handle; `None` out of range, or while the loops are
    /// still being built (only a factory can see that).
    pub fn handle(&self, index: usize) -> Option<&Handle<M>> {
        self.shared.handles.get()?.get(index)
    }

    /// Sends `message` to loop `index`'s [`Handler::message`]; gives it
    /// back if that loop is gone or does not exist.
    pub fn send(&self, index: usize, message: M) -> Result<(), M> {
        match self.handle(index) {
            Some(handle) => handle.send(message),
            None => Err(message),
        }
    }

    /// Stops every loop after its current turn (connections stay open
    /// until the threads end), and the acceptor.
    pub fn stop_all(&self) {
        self.stop_acceptor();
        for handle in self.handles() {
            handle.stop();
        }
    }

    /// Starts a graceful shutdown of every loop (see [`Handle::shutdown`]);
    /// in hand-off mode the acceptor stops first, so no connection is
    /// handed to a loop that is shutting down.
    pub fn shutdown_all(&self, grace: Duration) {
        self.stop_acceptor();
        for handle in self.handles() {
            handle.shutdown(grace);
        }
    }

    /// Loop `index`'s counters as of the end of its last turn.
    pub fn stats(&self, index: usize) -> Option<Stats> {
        self.handle(index).map(Handle::stats)
    }

    /// Every loop's counters, by index.
    pub fn all_stats(&self) -> Vec<Stats> {
        self.handles().iter().map(Handle::stats).collect()
    }

    /// Every loop's counters added up (counters, gauges and histograms).
    pub fn stats_sum(&self) -> Stats {
        let mut total = Stats::default();
        for stats in self.all_stats() {
            total.add(&stats);
        }
        total
    }

    /// The handles, or none while the loops are being built.
    fn handles(&self) -> &[Handle<M>] {
        self.shared.handles.get().map_or(&[], Vec::as_slice)
    }

    fn stop_acceptor(&self) {
        if let Some(Some(acceptor)) = self.shared.acceptor.get() {
            acceptor.stop();
        }
    }
}

/// What a loop's handler is given to reach the others: its own index and a
/// [`LoopsHandle`] for all of them.
#[derive(Debug)]
pub struct Peers<M> {
    /// This loop's index. Invariant: below `all.len()`.
    index: usize,
    /// Every loop, this one included.
    all: LoopsHandle<M>,
}

impl<M> Clone for Peers<M> {
    fn clone(&self) -> Self {
        Peers {
            index: self.index,
            all: self.all.clone(),
        }
    }
}

impl<M> Peers<M> {
    /// This loop's index.
    pub fn index(&self) -> usize {
        self.index
    }

    /// Number of loops, this one included.
    pub fn len(&self) -> usize {
        self.all.len()
    }

    /// Never true: there is this loop at least.
    pub fn is_empty(&self) -> bool {
        self.all.is_empty()
    }

    /// Every loop.
    pub fn all(&self) -> &LoopsHandle<M> {
        &self.all
    }

    /// Sends `message` to loop `index` (this one too, if asked).
    pub fn send(&self, index: usize, message: M) -> Result<(), M> {
        self.all.send(index, message)
    }

    /// Sends a copy of `message` to every other loop, in index order;
    /// returns how many took it (a loop that ended does not).
    pub fn broadcast(&self, message: &M) -> usize
    where
        M: Clone,
    {
        let others = (0..self.len()).filter(|&i| i != self.index);
        others
            .filter(|&i| self.all.send(i, message.clone()).is_ok())
            .count()
    }
}

/// Several loops running, one per thread.
pub struct Loops<M> {
    /// Remote control for them all.
    handle: LoopsHandle<M>,
    /// Each loop's thread, by index; returns its final counters.
    threads: Vec<JoinHandle<io::Result<Stats>>>,
    /// The hand-off acceptor's thread (`None` for reuseport or no listener).
    acceptor: Option<JoinHandle<io::Result<()>>>,
    /// The address the listeners (or the acceptor) are bound to.
    local_addr: Option<SocketAddr>,
}

/// What a loop's thread reports once its reactor is built and listening.
type Built<M> = io::Result<(Handle<M>, Option<SocketAddr>)>;

impl<M: Send + 'static> Loops<M> {
    /// Starts `settings.loops` loops, loop `i` with the handler
    /// `factory(i, &peers)`, listening as `settings` says; returns once
    /// every loop is built, listening and running. If one cannot be built
    /// (its bind fails, say), the others are stopped and the error
    /// returned.
    pub fn start<H, F>(settings: LoopsConfig, factory: F) -> io::Result<Loops<M>>
    where
        H: Handler<Message = M>,
        F: Fn(usize, &Peers<M>) -> H + Send + Sync + 'static,
    {
        if settings.loops == 0 {
            return Err(invalid("at least one loop is needed"));
        }
        let hand_off = settings.distribution == Distribution::HandOff && settings.listen.is_some();
        #[cfg(feature = "tls")]
        let wrapped = settings.listener_options.tls.is_some();
        #[cfg(not(feature = "tls"))]
        let wrapped = false;
        if hand_off && (wrapped || settings.listener_options.proxy_protocol) {
            return Err(invalid(
                "hand-off adopts plain TCP connections: no TLS or PROXY protocol",
            ));
        }
        let shared = Arc::new(Shared {
            count: settings.loops,
            handles: OnceLock::new(),
            acceptor: OnceLock::new(),
        });
        let all = LoopsHandle { shared };
        let factory = Arc::new(factory);
        let mut config = settings.config.clone();
        config.reuse_port |= settings.distribution == Distribution::ReusePort;
        let mut listen = if hand_off { None } else { settings.listen };
        let mut threads = Vec::new();
        let mut handles = Vec::new();
        let mut gates = Vec::new();
        let mut failure = None;
        // One at a time: with port 0 the first loop's bind picks the port
        // the others then bind.
        for index in 0..settings.loops {
            let (built_tx, built_rx) = mpsc::channel::<Built<M>>();
            let (gate_tx, gate_rx) = mpsc::channel::<()>();
            let peers = Peers {
                index,
                all: all.clone(),
            };
            let factory = Arc::clone(&factory);
            let (config, options) = (config.clone(), settings.listener_options.clone());
            let thread = std::thread::Builder::new()
                .name(format!("loop-{index}"))
                .spawn(move || {
                    let built = build(&*factory, peers, config, listen, options);
                    let mut reactor = match built {
                        Ok((reactor, addr)) => {
                            let _ = built_tx.send(Ok((reactor.handle(), addr)));
                            reactor
                        }
                        Err(e) => {
                            let _ = built_tx.send(Err(e));
                            return Err(io::Error::other("loop not built"));
                        }
                    };
                    // Run only once every handle is known; a dropped gate
                    // means another loop failed.
                    if gate_rx.recv().is_err() {
                        return Ok(reactor.stats().clone());
                    }
                    reactor.run()?;
                    Ok(reactor.stats().clone())
                })?;
            threads.push(thread);
            match built_rx.recv() {
                Ok(Ok((handle, addr))) => {
                    handles.push(handle);
                    gates.push(gate_tx);
                    listen = listen.and(addr);
                }
                Ok(Err(e)) => {
                    failure = Some(e);
                    break;
                }
                Err(_) => {
                    failure = Some(io::Error::other(format!("loop {index} panicked")));
                    break;
                }
            }
        }
        let mut acceptor = None;
        let mut local_addr = listen;
        if failure.is_none() && hand_off {
            match Acceptor::bind(&settings, handles.clone()) {
                Ok((a, control, addr)) => {
                    local_addr = Some(addr);
                    acceptor = Some((a, control));
                }
                Err(e) => failure = Some(e),
            }
        }
        if let Some(e) = failure {
            drop(gates);
            for thread in threads {
                let _ = thread.join();
            }
            return Err(e);
        }
        let _ = all.shared.handles.set(handles);
        let acceptor = acceptor.map(|(acceptor, control)| {
            let _ = all.shared.acceptor.set(Some(control));
            acceptor.spawn()
        });
        let _ = all.shared.acceptor.set(None);
        let acceptor = match acceptor.transpose() {
            Ok(acceptor) => acceptor,
            Err(e) => {
                // As for a loop that failed to build: the gates closing
                // ends the waiting loops, which are joined before the error.
                drop(gates);
                for thread in threads {
                    let _ = thread.join();
                }
                return Err(e);
            }
        };
        for gate in gates {
            let _ = gate.send(());
        }
        Ok(Loops {
            handle: all,
            threads,
            acceptor,
            local_addr,
        })
    }
}

impl<M> Loops<M> {
    /// A remote control for every loop.
    pub fn handle(&self) -> LoopsHandle<M> {
        self.handle.clone()
    }

    /// Where the loops (or the acceptor) listen.
    pub fn local_addr(&self) -> Option<SocketAddr> {
        self.local_addr
    }

    /// Waits for every loop to end (after `stop_all` or `shutdown_all`, or
    /// a failing `poll`) and for the acceptor; returns each loop's final
    /// counters, or its error, by index.
    pub fn join(self) -> Vec<io::Result<Stats>> {
        let results = self
            .threads
            .into_iter()
            .enumerate()
            .map(|(i, thread)| {
                thread
                    .join()
                    .unwrap_or_else(|_| Err(io::Error::other(format!("loop {i} panicked"))))
            })
            .collect();
        // The loops are gone, so the acceptor would hand connections to no
        // one; it has been told to stop unless a loop ended by itself.
        self.handle.stop_acceptor();
        if let Some(acceptor) = self.acceptor {
            match acceptor.join() {
                Ok(Err(e)) => log::error!("acceptor failed: {e}"),
                Err(_) => log::error!("acceptor panicked"),
                Ok(Ok(())) => {}
            }
        }
        results
    }
}

/// Builds loop `peers.index`'s reactor on its own thread and binds its
/// listener (with `SO_REUSEPORT`, set by the caller's `config`).
fn build<H: Handler, F: Fn(usize, &Peers<H::Message>) -> H>(
    factory: &F,
    peers: Peers<H::Message>,
    config: Config,
    listen: Option<SocketAddr>,
    options: ListenerOptions,
) -> io::Result<(Reactor<H>, Option<SocketAddr>)> {
    let handler = factory(peers.index, &peers);
    let mut reactor = Reactor::new(handler, config)?;
    let addr = match listen {
        Some(addr) => {
            let listener = reactor.listen_with(addr, options)?;
            Some(reactor.local_addr(listener)?)
        }
        None => None,
    };
    Ok((reactor, addr))
}

fn invalid(what: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, what)
}
