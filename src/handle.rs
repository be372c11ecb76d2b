//! `Handle`: how other threads reach a running loop.
//!
//! The loop thread owns every socket and never shares them. Another thread
//! puts a command on a channel and pokes the loop's `mio::Waker` (an eventfd
//! registered under the reserved waker token); the loop drains the channel
//! during that turn's dispatch. Statistics travel the other way through a
//! snapshot the loop refreshes once per turn.

use std::fmt;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use mio::Waker;

use crate::stats::Stats;

/// What another thread asks of the loop.
pub(crate) enum Command<M> {
    /// Make `run` return after this turn.
    Stop,
    /// Begin a graceful shutdown with this grace period.
    Shutdown(Duration),
    /// Deliver to `Handler::message`.
    Message(M),
    /// Take in a connection accepted by another loop (hand-off).
    Adopt(std::net::TcpStream, std::net::SocketAddr),
}

/// A `Send + Clone` remote control for a [`Reactor`](crate::Reactor).
///
/// Every method is non-blocking: it queues a command and wakes the loop.
/// Methods return `false` (or the message back) once the reactor is gone.
pub struct Handle<M> {
    /// Commands to the loop, drained when the waker fires.
    pub(crate) commands: Sender<Command<M>>,
    /// Wakes the loop out of `poll`.
    pub(crate) waker: Arc<Waker>,
    /// Snapshot of the loop's counters, at most one turn old.
    pub(crate) stats: Arc<Mutex<Stats>>,
    /// Commands sent and not yet taken by the loop (`Stats::handle_queue_depth`).
    pub(crate) pending: Arc<AtomicUsize>,
    /// When the loop's current turn began, for [`Handle::turn_running_for`].
    pub(crate) turn: Arc<TurnClock>,
}

/// When the loop's current turn began, written by the loop and read by
/// other threads: the one sign of a loop stuck in a callback that does not
/// wait for the loop itself (its stats snapshot is published only at the
/// end of a turn, so a stuck loop's looks merely quiet).
#[derive(Debug)]
pub(crate) struct TurnClock {
    /// The instant `began_ns` counts from (the reactor's creation).
    pub(crate) base: Instant,
    /// Nanoseconds from `base` to the moment `poll` returned for the turn
    /// in progress; 0 while the loop waits in `poll` (a turn that began
    /// exactly at `base` is stored as 1).
    pub(crate) began_ns: AtomicU64,
}

impl TurnClock {
    /// A clock for a loop that has not turned yet.
    pub(crate) fn new() -> Self {
        TurnClock {
            base: Instant::now(),
            began_ns: AtomicU64::new(0),
        }
    }

    /// The loop is about to wait in `poll`.
    pub(crate) fn waiting(&self) {
        self.began_ns.store(0, Ordering::Relaxed);
    }

    /// `poll` returned at `now`: a turn's work begins.
    pub(crate) fn began(&self, now: Instant) {
        let nanos =
            u64::try_from(now.saturating_duration_since(self.base).as_nanos()).unwrap_or(u64::MAX);
        self.began_ns.store(nanos.max(1), Ordering::Relaxed);
    }
}

impl<M> Clone for Handle<M> {
    fn clone(&self) -> Self {
        Handle {
            commands: self.commands.clone(),
            waker: Arc::clone(&self.waker),
            stats: Arc::clone(&self.stats),
            pending: Arc::clone(&self.pending),
            turn: Arc::clone(&self.turn),
        }
    }
}

impl<M> fmt::Debug for Handle<M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Handle").finish_non_exhaustive()
    }
}

impl<M> Handle<M> {
    fn command(&self, command: Command<M>) -> Result<(), Command<M>> {
        // Counted before it can be taken, so the loop's decrement never
        // comes first.
        self.pending.fetch_add(1, Ordering::Relaxed);
        if let Err(e) = self.commands.send(command) {
            self.pending.fetch_sub(1, Ordering::Relaxed);
            return Err(e.0);
        }
        // A failed wake means the poll instance is gone: so is the loop.
        let _ = self.waker.wake();
        Ok(())
    }

    /// Makes `run` return after its current turn; connections stay open.
    pub fn stop(&self) -> bool {
        self.command(Command::Stop).is_ok()
    }

    /// Starts a graceful shutdown: listeners close at once (new connections
    /// are refused), idle connections close, busy ones finish writing what is
    /// queued and then close. After `grace`, whatever remains is closed with
    /// [`CloseReason::Shutdown`](crate::CloseReason::Shutdown). `run` returns
    /// once no connection is left.
    pub fn shutdown(&self, grace: Duration) -> bool {
        self.command(Command::Shutdown(grace)).is_ok()
    }

    /// Sends `message` to [`Handler::message`](crate::Handler::message).
    /// Gives the message back if the reactor is gone.
    pub fn send(&self, message: M) -> Result<(), M> {
        self.command(Command::Message(message))
            .map_err(|command| match command {
                Command::Message(message) => message,
                _ => unreachable!("a message command comes back as itself"),
            })
    }

    /// Hands the loop a connection another thread accepted (one loop
    /// accepting for several, memcached's model): the loop takes it in as
    /// if it had accepted it on a plain listener (`Handler::opened`, with
    /// `Context::listener` `None`), or turns it away over
    /// `max_connections`. Gives the socket back if the reactor is gone.
    pub fn adopt(
        &self,
        socket: std::net::TcpStream,
        peer: std::net::SocketAddr,
    ) -> Result<(), std::net::TcpStream> {
        self.command(Command::Adopt(socket, peer))
            .map_err(|command| match command {
                Command::Adopt(socket, _) => socket,
                _ => unreachable!("an adopt command comes back as itself"),
            })
    }

    /// Commands and messages sent to the loop and not yet taken: a loop
    /// that stopped taking them (a handler that blocks) shows here at once,
    /// before its stats snapshot is a turn old.
    pub fn pending(&self) -> usize {
        self.pending.load(Ordering::Relaxed)
    }

    /// How long the loop has been working on its current turn; `None`
    /// while it waits in `poll`. A healthy loop's turns take microseconds
    /// to a few milliseconds; one that stays busy far longer is stuck in a
    /// callback (a handler that blocks), which its stats cannot show: they
    /// are published at the end of a turn. `Loops` in hand-off mode gives
    /// such a loop no new connections.
    pub fn turn_running_for(&self) -> Option<Duration> {
        let began = self.turn.began_ns.load(Ordering::Relaxed);
        if began == 0 {
            return None;
        }
        let since_base = self.turn.base.elapsed();
        Some(since_base.saturating_sub(Duration::from_nanos(began)))
    }

    /// The loop's counters as of the end of its last turn.
    pub fn stats(&self) -> Stats {
        self.stats.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// The two counters the hand-off acceptor weighs a loop by
    /// (`open_connections`, `adopted`), as [`Handle::stats`] would give
    /// them, without copying every counter and histogram per accept.
    pub(crate) fn load(&self) -> (u64, u64) {
        self.stats
            .lock()
            .map(|s| (s.open_connections, s.adopted))
            .unwrap_or_default()
    }
}

/// The loop's end of the command channel.
pub(crate) type Commands<M> = Receiver<Command<M>>;
