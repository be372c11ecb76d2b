//! The reactor: one thread, one `mio::Poll`, and the public entry points
//! that build and run it.
//!
//! [`Reactor::run_once`], the turn of the loop, is in `turn.rs`; read it
//! first. Everything else in the crate is a detail of one of its phases.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::AtomicUsize;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use log::info;
use mio::{Events, Poll, Waker};

use crate::accept::ListenerOptions;
use crate::config::Config;
use crate::context::Context;
use crate::handle::{Commands, Handle, TurnClock};
use crate::handler::Handler;
use crate::loop_state::LoopState;
use crate::stats::Stats;
use crate::token::{self, ListenerId};

/// A single-threaded event loop serving many connections with one handler.
pub struct Reactor<H: Handler> {
    /// The readiness poller (epoll on Linux).
    pub(crate) poll: Poll,
    /// Event buffer reused by every `poll`.
    pub(crate) events: Events,
    /// Connections, timers, queues, counters.
    pub(crate) core: LoopState<H>,
    /// The protocol.
    pub(crate) handler: H,
    /// Commands from [`Handle`]s, drained when the waker fires.
    pub(crate) commands: Commands<H::Message>,
    /// A handle kept to clone for callers.
    handle: Handle<H::Message>,
    /// Where the per-turn stats snapshot goes.
    shared_stats: Arc<Mutex<Stats>>,
    /// Commands sent by handles and not yet taken by the loop.
    pub(crate) pending_commands: Arc<AtomicUsize>,
    /// When the last turn's work ended: the wait in `poll` starts here.
    pub(crate) turn_ended_at: Instant,
    /// When the turn in progress began, for [`Handle::turn_running_for`]:
    /// set when `poll` returns, cleared before the next `poll`.
    pub(crate) turn_clock: Arc<TurnClock>,
}

impl<H: Handler> Reactor<H> {
    /// Creates a reactor with no listeners. Fails if `config` is
    /// contradictory or the poll instance cannot be created.
    pub fn new(handler: H, config: Config) -> io::Result<Self> {
        config
            .validate()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), token::WAKER)?);
        let registry = poll.registry().try_clone()?;
        let (sender, commands) = mpsc::channel();
        let shared_stats = Arc::new(Mutex::new(Stats::default()));
        let pending_commands = Arc::new(AtomicUsize::new(0));
        let turn_clock = Arc::new(TurnClock::new());
        let handle = Handle {
            commands: sender,
            waker,
            stats: Arc::clone(&shared_stats),
            pending: Arc::clone(&pending_commands),
            turn: Arc::clone(&turn_clock),
        };
        Ok(Reactor {
            events: Events::with_capacity(config.events_capacity),
            core: LoopState::new(config, registry),
            poll,
            handler,
            commands,
            handle,
            shared_stats,
            pending_commands,
            turn_ended_at: Instant::now(),
            turn_clock,
        })
    }

    /// Listens on `addr` (port 0 picks a free port; see [`Reactor::local_addr`]).
    /// The error names the address when binding fails.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<ListenerId> {
        self.core.add_listener(addr, None, false)
    }

    /// Adopts a socket that is already bound and listening (handed over by
    /// systemd's socket activation, say, or by the instance this one
    /// replaces), with `options`; it is made non-blocking. Its backlog and
    /// socket options are whatever its creator gave it.
    pub fn listen_from(
        &mut self,
        listener: std::net::TcpListener,
        options: ListenerOptions,
    ) -> io::Result<ListenerId> {
        listener.set_nonblocking(true)?;
        let socket = mio::net::TcpListener::from_std(listener);
        #[cfg(feature = "tls")]
        let tls = options.tls;
        #[cfg(not(feature = "tls"))]
        let tls = None;
        self.core
            .register_listener(socket, tls, options.proxy_protocol)
    }

    /// Listens on `addr` with `options`: the PROXY protocol (behind a load
    /// balancer) and, with the `tls` feature, TLS.
    pub fn listen_with(
        &mut self,
        addr: SocketAddr,
        options: ListenerOptions,
    ) -> io::Result<ListenerId> {
        #[cfg(feature = "tls")]
        let tls = options.tls;
        #[cfg(not(feature = "tls"))]
        let tls = None;
        self.core.add_listener(addr, tls, options.proxy_protocol)
    }

    /// Listens on `addr` for TLS (the `tls` feature): every connection it
    /// accepts first completes a handshake with `config`, then reaches the
    /// handler as plaintext exactly like a plain one (`opened` runs when
    /// the handshake completes). [`crate::tls::server_config`] builds a
    /// configuration with SNI, resumption and reloadable certificates.
    #[cfg(feature = "tls")]
    pub fn listen_tls(
        &mut self,
        addr: SocketAddr,
        config: std::sync::Arc<rustls::ServerConfig>,
    ) -> io::Result<ListenerId> {
        self.core.add_listener(addr, Some(config), false)
    }

    /// The address a listener is bound to.
    pub fn local_addr(&self, listener: ListenerId) -> io::Result<SocketAddr> {
        match self.core.listeners.get(listener.0) {
            Some(Some(l)) => l.socket.local_addr(),
            _ => Err(io::Error::new(
                io::ErrorKind::NotFound,
                "listener is closed",
            )),
        }
    }

    /// A handle for other threads: stop, shut down, send messages, read stats.
    pub fn handle(&self) -> Handle<H::Message> {
        self.handle.clone()
    }

    /// Runs `f` with the handler and a [`Context`], outside any turn: to open
    /// outbound connections, register sources or arm timers before `run`. What `f` writes or
    /// closes is carried out before this returns.
    ///
    /// `f` is the caller's own code, run on the caller's stack, not a
    /// callback of the loop: a panic in it is not caught and reaches the
    /// caller (the reactor stays usable; the bookkeeping it skipped is done
    /// by the next turn).
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut H, &mut Context<'_, H>) -> R) -> R {
        self.core.now = Instant::now();
        let mut ctx = Context {
            core: &mut self.core,
        };
        let result = f(&mut self.handler, &mut ctx);
        self.after_callbacks();
        result
    }

    /// The handler.
    pub fn handler(&self) -> &H {
        &self.handler
    }

    /// The handler, mutably.
    pub fn handler_mut(&mut self) -> &mut H {
        &mut self.handler
    }

    /// The loop's counters.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// Connections held (any state but closed).
    pub fn connection_count(&self) -> usize {
        self.core.stats.open_connections as usize
    }

    /// Whether `run` would return: stopped, or shut down with nothing left.
    pub fn is_finished(&self) -> bool {
        self.core.stop_requested || (self.core.is_shutting_down() && self.core.conns.is_empty())
    }

    /// Turns the loop until [`Handle::stop`] or [`Context::stop`], or until a
    /// graceful shutdown has closed every connection. Only a failing `poll`
    /// returns an error.
    ///
    /// A stop asked for before `run` (from [`Reactor::with_context`]) makes
    /// it return at once; the request is used up when `run` returns, so a
    /// later `run` turns the loop again.
    pub fn run(&mut self) -> io::Result<()> {
        let result = self.run_until_finished();
        self.core.stop_requested = false;
        result
    }

    fn run_until_finished(&mut self) -> io::Result<()> {
        while !self.is_finished() {
            self.run_once(None)?;
        }
        info!("loop finished after {} turns", self.core.stats.turns);
        Ok(())
    }

    /// Publishes the counters for [`Handle::stats`].
    pub(crate) fn publish_stats(&mut self) {
        if let Ok(mut shared) = self.shared_stats.lock() {
            shared.clone_from(&self.core.stats);
        }
    }
}
