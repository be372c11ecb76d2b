//! The hand-off acceptor: one thread accepts for every loop and hands each
//! connection to the least-loaded loop that is not stalled (memcached's
//! model; see `loops.rs` for when to prefer it to `SO_REUSEPORT`).
//!
//! A thread of its own, not loop 0, so accepting never waits behind a
//! loop's callbacks and a stalled loop 0 does not stop the whole server
//! from taking connections. It runs its own small `mio::Poll` (the
//! listener and a waker) rather than a blocking `accept`, so a stop is
//! one wake away instead of needing a connection to unblock it.
//!
//! Load is the loop's open connections (its stats snapshot, at most one
//! turn old) plus the connections handed to it that the snapshot does not
//! show yet (handed minus its `adopted` counter), so a burst of accepts
//! between two of its turns still spreads. A loop is stalled, and skipped,
//! when its current turn has run longer than `stall_after` (a callback
//! that blocks; [`Handle::turn_running_for`]); if every loop is, the
//! least-loaded gets it anyway, since refusing would only move the wait to
//! the client.
//!
//! Why not the number of commands waiting for a loop (`Handle::pending`)
//! as the sign of a stall: the acceptor itself fills a healthy loop's
//! queue faster than the loop is scheduled in a burst of connects (65
//! waiting for loop 0 on two cores, measured), so a threshold on it
//! skipped healthy loops and sent connections to the stalled one. Those
//! connections count as load instead (handed minus adopted).

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use log::{debug, error, info};
use mio::net::TcpListener;
use mio::{Events, Interest, Poll, Token, Waker};

use crate::accept::bind;
use crate::handle::Handle;
use crate::loops::LoopsConfig;

/// The listener's token in the acceptor's poll.
const LISTENER: Token = Token(0);
/// The waker's token: a stop request.
const WAKER: Token = Token(1);

/// The acceptor's remote control, kept by every `LoopsHandle`.
#[derive(Debug)]
pub(crate) struct AcceptorControl {
    /// Wakes the acceptor out of `poll`.
    waker: Arc<Waker>,
    /// Set once to make the acceptor end (and close its listener).
    stop: Arc<AtomicBool>,
}

impl AcceptorControl {
    /// Makes the acceptor thread end at its next wake, which this causes.
    pub(crate) fn stop(&self) {
        self.stop.store(true, Ordering::Release);
        let _ = self.waker.wake();
    }
}

/// The acceptor, bound and registered, not yet running.
pub(crate) struct Acceptor<M> {
    /// Its own poll: the listener and the waker.
    poll: Poll,
    /// The listening socket; dropped (new connects refused) when it ends.
    listener: TcpListener,
    /// Each loop's handle, by index.
    handles: Vec<Handle<M>>,
    /// Connections handed to each loop so far. Invariant: at least that
    /// loop's `Stats::adopted` (which counts the ones it took).
    handed: Vec<u64>,
    /// Loops whose `adopt` failed: they have ended.
    gone: Vec<bool>,
    /// Where the next search for the least-loaded loop starts, so ties
    /// rotate instead of all going to loop 0.
    next: usize,
    /// See `LoopsConfig::stall_after`.
    stall_after: Duration,
    /// How long to wait before accepting again after a resource error.
    retry_delay: Duration,
    /// Set by `AcceptorControl::stop`.
    stop: Arc<AtomicBool>,
}

impl<M: Send + 'static> Acceptor<M> {
    /// Binds `settings.listen` with the loops' configuration (backlog,
    /// `reuse_port` as the caller set it) and registers it.
    pub(crate) fn bind(
        settings: &LoopsConfig,
        handles: Vec<Handle<M>>,
    ) -> io::Result<(Self, AcceptorControl, SocketAddr)> {
        let addr = settings
            .listen
            .ok_or_else(|| io::Error::other("hand-off needs an address"))?;
        let mut listener = bind(addr, &settings.config)?;
        let local = listener.local_addr()?;
        let poll = Poll::new()?;
        poll.registry()
            .register(&mut listener, LISTENER, Interest::READABLE)?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let stop = Arc::new(AtomicBool::new(false));
        let count = handles.len();
        let acceptor = Acceptor {
            poll,
            listener,
            handles,
            handed: vec![0; count],
            gone: vec![false; count],
            next: 0,
            stall_after: settings.stall_after,
            retry_delay: settings.config.accept_retry_delay,
            stop: Arc::clone(&stop),
        };
        Ok((acceptor, AcceptorControl { waker, stop }, local))
    }

    /// Runs the acceptor on its own thread until stopped.
    pub(crate) fn spawn(self) -> io::Result<JoinHandle<io::Result<()>>> {
        std::thread::Builder::new()
            .name("acceptor".into())
            .spawn(move || self.run())
    }

    fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(16);
        // After a resource error nothing new may be signalled for the
        // connections already waiting (edge triggering): retry on a timer.
        let mut retry = None;
        loop {
            match self.poll.poll(&mut events, retry) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            if self.stop.load(Ordering::Acquire) || self.gone.iter().all(|&g| g) {
                info!("acceptor stopped");
                return Ok(());
            }
            retry = self.accept_all();
        }
    }

    /// Accepts until `WouldBlock`; returns a retry delay after an error
    /// that is not about one connection.
    fn accept_all(&mut self) -> Option<Duration> {
        loop {
            match self.listener.accept() {
                Ok((socket, peer)) => self.hand(socket.into(), peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return None,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if crate::accept::is_per_connection(&e) => {
                    debug!("accept: {e} (skipped)");
                }
                Err(e) => {
                    error!("accept: {e}; retrying in {:?}", self.retry_delay);
                    return Some(self.retry_delay);
                }
            }
        }
    }

    /// Hands `socket` to the least-loaded loop that takes it.
    fn hand(&mut self, mut socket: std::net::TcpStream, peer: SocketAddr) {
        while let Some(target) = self.choose() {
            match self.handles[target].adopt(socket, peer) {
                Ok(()) => {
                    self.handed[target] += 1;
                    self.next = (target + 1) % self.handles.len();
                    return;
                }
                Err(back) => {
                    self.gone[target] = true;
                    socket = back;
                }
            }
        }
        debug!("no loop left for {peer}");
    }

    /// The least-loaded loop, preferring those not stalled; ties go to the
    /// first from `next` on.
    fn choose(&self) -> Option<usize> {
        let count = self.handles.len();
        let mut best: Option<((bool, u64), usize)> = None;
        for index in (0..count).map(|k| (self.next + k) % count) {
            if self.gone[index] {
                continue;
            }
            let handle = &self.handles[index];
            let stalled = handle
                .turn_running_for()
                .is_some_and(|busy| busy > self.stall_after);
            let (open, adopted) = handle.load();
            let in_flight = self.handed[index].saturating_sub(adopted);
            let key = (stalled, open + in_flight);
            if !matches!(best, Some((best_key, _)) if best_key <= key) {
                best = Some((key, index));
            }
        }
        best.map(|(_, index)| index)
    }
}
