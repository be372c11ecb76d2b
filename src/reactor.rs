//! The reactor: one thread, one `mio::Poll`, and the turn of the loop.
//!
//! Read [`Reactor::run_once`] first: it is the whole loop in eight phases, in
//! the order Redis's `aeProcessEvents` and libuv's `uv_run` use. Everything
//! else in the crate is a detail of one phase.

use std::io;
use std::net::SocketAddr;
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use log::{debug, info, trace};
use mio::event::{Event, Source};
use mio::{Events, Interest, Poll, Waker};

use crate::config::Config;
use crate::context::{self, Context};
use crate::core::{Core, Listener, Ready, TimerKind};
use crate::handle::{Command, Commands, Handle};
use crate::handler::{Fired, Handler};
use crate::io::{note_readiness, Driver};
use crate::listener;
use crate::state::{CloseReason, ConnState};
use crate::stats::Stats;
use crate::token::{self, ListenerId, SourceId, Target};

/// A single-threaded event loop serving many connections with one handler.
pub struct Reactor<H: Handler> {
    /// The readiness poller (epoll on Linux).
    poll: Poll,
    /// Event buffer reused by every `poll`.
    events: Events,
    /// Connections, timers, queues, counters.
    core: Core<H>,
    /// The protocol.
    handler: H,
    /// Commands from [`Handle`]s, drained when the waker fires.
    commands: Commands<H::Message>,
    /// A handle kept to clone for callers.
    handle: Handle<H::Message>,
    /// Where the per-turn stats snapshot goes.
    shared_stats: Arc<Mutex<Stats>>,
    /// Turns completed, for the trace log.
    turns: u64,
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
        let handle = Handle {
            commands: sender,
            waker,
            stats: Arc::clone(&shared_stats),
        };
        Ok(Reactor {
            events: Events::with_capacity(config.events_capacity),
            core: Core::new(config, registry),
            poll,
            handler,
            commands,
            handle,
            shared_stats,
            turns: 0,
        })
    }

    /// Listens on `addr` (port 0 picks a free port; see [`Reactor::local_addr`]).
    /// The error names the address when binding fails.
    pub fn listen(&mut self, addr: SocketAddr) -> io::Result<ListenerId> {
        let mut socket = listener::bind(addr, &self.core.config)?;
        let index = self.core.listeners.len();
        self.core.registry.register(
            &mut socket,
            token::listener_token(index),
            Interest::READABLE,
        )?;
        info!("listening on {}", socket.local_addr()?);
        self.core.listeners.push(Some(Listener {
            socket,
            in_ready_queue: false,
        }));
        Ok(ListenerId(index))
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
    /// outbound connections or arm timers before `run`.
    pub fn with_context<R>(&mut self, f: impl FnOnce(&mut H, &mut Context<'_, H>) -> R) -> R {
        self.core.now = Instant::now();
        let mut ctx = Context {
            core: &mut self.core,
        };
        let result = f(&mut self.handler, &mut ctx);
        self.after_callbacks();
        result
    }

    /// Registers a mio source owned by the caller (see
    /// [`Context::register_source`]).
    pub fn register_source(
        &mut self,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<SourceId> {
        context::register_source(&mut self.core, source, interest)
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
    pub fn run(&mut self) -> io::Result<()> {
        self.core.stop_requested = false;
        while !self.is_finished() {
            self.run_once(None)?;
        }
        info!("loop finished after {} turns", self.turns);
        Ok(())
    }

    /// One turn of the loop. Waits at most `max_wait` (`None`: until an
    /// event or the next timer).
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        // 1. How long may we sleep? Not at all if work is queued; otherwise
        //    until the next timer (or the caller's limit).
        let timeout = self.poll_timeout(max_wait);

        // 2. Wait for readiness. A signal interrupting epoll_wait is not an
        //    error: poll again (in a loop, never by recursion).
        loop {
            self.core.stats.poll_calls += 1;
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }

        // 3. One clock reading serves the whole turn.
        self.core.now = Instant::now();
        self.turns += 1;
        let event_count = self.events.iter().count();
        self.core.stats.events += event_count as u64;
        trace!(
            "turn {}: {} events (timeout {:?}), {} connections, {} ready",
            self.turns,
            event_count,
            timeout,
            self.core.stats.open_connections,
            self.core.ready.len()
        );

        // 4. Dispatch: fold each event into readiness flags and act on it.
        //    Work queued from here on waits for the next turn (phase 5 only
        //    serves what earlier turns queued), after a zero-timeout poll.
        let carried_over = self.core.ready.len();
        let mut driver = Driver {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        let mut woken = false;
        for event in self.events.iter() {
            match token::classify(event.token()) {
                Target::Connection(slot) => dispatch_connection(&mut driver, slot, event),
                Target::Listener(index) => driver.accept(index),
                Target::Source(index) => {
                    trace!("source {index}: {}", describe(event));
                    driver.call("source_ready", |handler, ctx| {
                        handler.source_ready(ctx, SourceId(index), event)
                    });
                }
                Target::Waker => woken = true,
            }
        }
        if woken {
            drain_commands(&mut driver, &self.commands);
        }
        driver.report_closed();

        // 5. Resume connections and listeners that used their budget last
        //    turn. Whatever re-queues itself now waits for the next turn.
        for _ in 0..carried_over {
            match driver.core.ready.pop_front() {
                Some(Ready::Conn(id)) => {
                    if let Some(conn) = driver.core.conn_mut(id) {
                        conn.in_ready_queue = false;
                        driver.drive(id);
                    }
                }
                Some(Ready::Listener(index)) => {
                    if let Some(Some(listener)) = driver.core.listeners.get_mut(index) {
                        listener.in_ready_queue = false;
                        driver.accept(index);
                    }
                }
                None => break,
            }
        }
        driver.report_closed();

        // 6. Expire timers.
        //    They fire one by one from `Core::firing`, where a callback
        //    cancelling a timer due in this same turn can still reach it.
        let core = &mut *driver.core;
        core.timers.expire(core.now, &mut core.firing);
        while let Some((timer, kind)) = driver.core.firing.pop_front() {
            fire_timer(&mut driver, timer, kind);
        }
        driver.report_closed();

        // 7. Flush output queued for connections other than the one being
        //    served, start a requested shutdown, let the handler run its
        //    before-sleep hook, and tell it about every close.
        if let Some(grace) = driver.core.shutdown_requested.take() {
            begin_shutdown(&mut driver, grace);
        }
        driver.flush_dirty();
        driver.call("before_sleep", |handler, ctx| handler.before_sleep(ctx));
        loop {
            driver.flush_dirty();
            driver.report_closed();
            if driver.core.dirty.is_empty() && driver.core.unreported.is_empty() {
                break;
            }
        }

        // 8. Free the slots of connections closed this turn. Only now may a
        //    new connection reuse a slot, so no event of this turn's batch
        //    could have reached the wrong connection.
        driver.core.free_closed_slots();
        self.publish_stats();
        Ok(())
    }

    /// Bookkeeping after callbacks run outside a turn (`with_context`).
    fn after_callbacks(&mut self) {
        let mut driver = Driver {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        if let Some(grace) = driver.core.shutdown_requested.take() {
            begin_shutdown(&mut driver, grace);
        }
        driver.flush_dirty();
        driver.report_closed();
        driver.core.free_closed_slots();
        self.publish_stats();
    }

    fn poll_timeout(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if !self.core.ready.is_empty()
            || !self.core.dirty.is_empty()
            || self.core.shutdown_requested.is_some()
        {
            return Some(Duration::ZERO);
        }
        // Read the clock only when a timer is armed: most turns have none.
        let timer_wait = self
            .core
            .timers
            .next_deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        match (timer_wait, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn publish_stats(&mut self) {
        if let Ok(mut shared) = self.shared_stats.lock() {
            shared.clone_from(&self.core.stats);
        }
    }
}

/// An event for a connection slot: set its flags and drive it, unless it
/// closed earlier in this batch (a stale event).
fn dispatch_connection<H: Handler>(driver: &mut Driver<'_, H>, slot: usize, event: &Event) {
    let Some(conn) = driver.core.conns.get_mut(slot) else {
        driver.core.stats.stale_events += 1;
        return;
    };
    if conn.state == ConnState::Closed {
        trace!(
            "conn {}: stale event skipped ({})",
            conn.id,
            describe(event)
        );
        driver.core.stats.stale_events += 1;
        return;
    }
    trace!("conn {}: {} in {:?}", conn.id, describe(event), conn.state);
    note_readiness(conn, event);
    let id = conn.id;
    driver.drive(id);
}

fn describe(event: &Event) -> String {
    let flags = [
        (event.is_readable(), "R"),
        (event.is_writable(), "W"),
        (event.is_read_closed(), "RC"),
        (event.is_write_closed(), "WC"),
        (event.is_error(), "ERR"),
    ];
    let set: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    format!("event [{}]", set.join(" "))
}

fn drain_commands<H: Handler>(driver: &mut Driver<'_, H>, commands: &Commands<H::Message>) {
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Stop => {
                debug!("stop requested");
                driver.core.stop_requested = true;
            }
            Command::Shutdown(grace) => driver.core.shutdown_requested = Some(grace),
            Command::Message(message) => {
                driver.call("message", |handler, ctx| handler.message(ctx, message));
            }
        }
    }
}

fn fire_timer<H: Handler>(
    driver: &mut Driver<'_, H>,
    timer: crate::timer::TimerId,
    kind: TimerKind,
) {
    let now = driver.core.now;
    match kind {
        TimerKind::Idle(id) => {
            let Some(conn) = driver.core.conn_mut(id) else {
                return;
            };
            conn.idle_timer = None;
            let Some(limit) = conn.idle_timeout else {
                return;
            };
            // Reads only stamp `last_active`; the timer re-arms itself for
            // the remainder here, so traffic costs no timer work.
            let deadline = conn.last_active + limit;
            if deadline <= now {
                debug!("conn {id}: idle for {limit:?}");
                driver.core.close_now(id, CloseReason::IdleTimeout);
            } else {
                driver.core.arm_idle_timer(id, deadline);
            }
        }
        TimerKind::ConnectTimeout(id) => {
            if driver.core.conn(id).map(|c| c.state) == Some(ConnState::Connecting) {
                driver.core.close_now(id, CloseReason::ConnectTimeout);
            }
        }
        TimerKind::Linger(id) => {
            if let Some(conn) = driver.core.conn(id) {
                let reason = conn.close_reason.unwrap_or(CloseReason::ClosedLocally);
                trace!("conn {id}: linger timeout");
                driver.core.close_now(id, reason);
            }
        }
        TimerKind::SoftLimit(id) => {
            let core = &mut *driver.core;
            let Some(conn) = crate::core::live(&mut core.conns, id) else {
                return;
            };
            conn.soft_limit_timer = None;
            let queued = conn.output.len();
            // The timer is cancelled when the queue falls back under the
            // soft limit, so firing means it stayed above for the duration.
            if crate::core::limits_of(conn, &core.limits)
                .soft_output
                .is_some_and(|soft| queued > soft.bytes)
            {
                debug!("conn {id}: {queued} bytes queued, above the soft limit for too long");
                core.close_now(id, CloseReason::LimitExceeded(crate::state::Limit::Output));
            }
        }
        TimerKind::FanoutHold => driver.core.fanout_hold_expired(),
        TimerKind::AcceptRetry => {
            debug!("retrying accept");
            driver.core.accept_paused = false;
            for index in 0..driver.core.listeners.len() {
                driver.core.push_ready(Ready::Listener(index));
            }
        }
        TimerKind::ShutdownDeadline => {
            let remaining: Vec<_> = driver
                .core
                .conns
                .iter()
                .filter(|(_, c)| !c.is_closed())
                .map(|(_, c)| c.id)
                .collect();
            info!(
                "shutdown deadline: force-closing {} connections",
                remaining.len()
            );
            for id in remaining {
                driver.core.close_now(id, CloseReason::Shutdown);
            }
        }
        TimerKind::Handler { conn, tag } => {
            if conn.is_some_and(|id| driver.core.conn(id).is_none()) {
                return;
            }
            driver.core.stats.timers_fired += 1;
            let fired = Fired { timer, conn, tag };
            let outcome = driver.call("timer", |handler, ctx| handler.timer(ctx, fired));
            if let (None, Some(id)) = (outcome, conn) {
                driver.core.close_now(id, CloseReason::HandlerPanic);
            }
        }
    }
}

/// Graceful shutdown, step one: stop accepting, tell the handler, close what
/// is idle. Busy connections close as they become idle (see `Driver::flush`).
fn begin_shutdown<H: Handler>(driver: &mut Driver<'_, H>, grace: Duration) {
    if driver.core.is_shutting_down() {
        return;
    }
    info!(
        "graceful shutdown: {} connections, {grace:?} grace",
        driver.core.stats.open_connections
    );
    let deadline = driver.core.now + grace;
    driver.core.shutdown_deadline = Some(deadline);
    driver
        .core
        .timers
        .insert(deadline, TimerKind::ShutdownDeadline);
    for listener in driver.core.listeners.iter_mut() {
        if let Some(mut l) = listener.take() {
            // Closing the socket makes new connects fail with ECONNREFUSED.
            let _ = driver.core.registry.deregister(&mut l.socket);
        }
    }
    driver.call("shutdown_started", |handler, ctx| {
        handler.shutdown_started(ctx)
    });
    let ids: Vec<_> = driver
        .core
        .conns
        .iter()
        .filter(|(_, c)| !c.is_closed())
        .map(|(_, c)| c.id)
        .collect();
    for id in ids {
        match driver.core.conn(id).map(|c| c.state) {
            Some(ConnState::Connecting) => driver.core.close_now(id, CloseReason::Shutdown),
            Some(
                ConnState::Open
                | ConnState::ReadClosed
                | ConnState::HalfClosing
                | ConnState::HalfClosed,
            ) => driver.flush(id),
            _ => {}
        }
    }
}
