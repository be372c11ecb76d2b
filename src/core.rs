//! The loop's shared state, and the few operations on it that both the driver
//! (`io.rs`, `reactor.rs`) and the handler's [`Context`](crate::Context) need:
//! start closing, half-close, abort, pause, close now, arm timers. The write
//! path is in `output.rs`, the fan-out hold in `fanout.rs`, both `impl Core`.
//!
//! `Core` is everything but the handler and the poll instance. Keeping the
//! handler outside lets a callback hold `&mut Handler` and a `Context` over
//! `&mut Core` at the same time, without `RefCell` or unsafe code.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use log::{debug, trace};
use mio::net::TcpListener;
use mio::Registry;
use slab::Slab;
use socket2::SockRef;

use crate::config::Config;
use crate::connection::{AfterConnect, Connection};
use crate::fanout::Fanout;
use crate::handler::Handler;
use crate::limits::Limits;
use crate::state::{CloseReason, ConnState};
use crate::stats::Stats;
use crate::timer::{TimerId, TimerWheel};
use crate::token::ConnId;

/// The live connection named by `id` in `conns`. A free function so callers
/// can borrow one connection and other `Core` fields (stats) at once.
pub(crate) fn live<S>(conns: &mut Slab<Connection<S>>, id: ConnId) -> Option<&mut Connection<S>> {
    conns
        .get_mut(id.slot())
        .filter(|c| c.id == id && !c.is_closed())
}

/// The limits in force for `conn`: its own, or else `default` (the
/// `Config`'s). A free function so callers can hold one connection and
/// `Core::limits` at once.
pub(crate) fn limits_of<'a, S>(conn: &'a Connection<S>, default: &'a Limits) -> &'a Limits {
    conn.limits.as_deref().unwrap_or(default)
}

/// Why a timer was armed; what to do when it fires.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimerKind {
    /// Check the connection's idle time; close it or re-arm for the rest.
    Idle(ConnId),
    /// An outbound connect took too long.
    ConnectTimeout(ConnId),
    /// A lingering close waited long enough for the peer's FIN.
    Linger(ConnId),
    /// Queued output stayed above the soft limit for its duration.
    SoftLimit(ConnId),
    /// Connections held by their fan-out have waited long enough.
    FanoutHold,
    /// Accepting paused after `EMFILE`; try again.
    AcceptRetry,
    /// The graceful shutdown's deadline: force-close what remains.
    ShutdownDeadline,
    /// A handler timer, possibly bound to a connection.
    Handler {
        /// Connection the timer is bound to.
        conn: Option<ConnId>,
        /// Caller's tag.
        tag: u64,
    },
}

/// Work postponed to the next turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A connection that used its read budget with readiness left.
    Conn(ConnId),
    /// A listener that used its accept budget, or must retry after `EMFILE`.
    Listener(usize),
}

/// A listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The socket, registered READABLE with its listener token.
    pub(crate) socket: TcpListener,
    /// Invariant: the listener is on the ready queue at most once.
    pub(crate) in_ready_queue: bool,
}

/// Everything the loop owns except the handler and the poll instance.
pub(crate) struct Core<H: Handler> {
    /// Settings. Invariant: validated.
    pub(crate) config: Config,
    /// `config.limits()`, resolved once: the limits of every connection
    /// that has no limits of its own.
    pub(crate) limits: Limits,
    /// The fan-out hold's bookkeeping (see `fanout.rs`).
    pub(crate) fanout: Fanout,
    /// Registers sockets with the poll instance.
    pub(crate) registry: Registry,
    /// Connections, keyed by token. Closed ones stay until the turn's end so
    /// a stale event in the same batch finds a `Closed` entry, never a newcomer.
    pub(crate) conns: Slab<Connection<H::State>>,
    /// Listeners by index; `None` once closed (shutdown).
    pub(crate) listeners: Vec<Option<Listener>>,
    /// Which source indices are taken.
    pub(crate) sources: Vec<bool>,
    /// Every timer: idle, connect, linger, accept retry, handler.
    pub(crate) timers: TimerWheel<TimerKind>,
    /// Timers the wheel handed over this turn that have not fired yet.
    /// Cancelling one of these (from an earlier timer's callback in the same
    /// turn) removes it here, so it never fires.
    pub(crate) firing: VecDeque<(TimerId, TimerKind)>,
    /// Work to resume next turn. Entries may be stale (closed connections).
    pub(crate) ready: VecDeque<Ready>,
    /// Connections with output queued outside their own callback, to flush
    /// before sleeping. Entries may be stale.
    pub(crate) dirty: Vec<ConnId>,
    /// Connections closed whose handler has not yet heard about it.
    pub(crate) unreported: VecDeque<ConnId>,
    /// Slots to free at the end of the turn (closed and reported).
    pub(crate) to_free: Vec<usize>,
    /// The connection whose `data` callback is running: its output is
    /// flushed right after the callback, so it skips the dirty list.
    pub(crate) current: Option<ConnId>,
    /// Counters.
    pub(crate) stats: Stats,
    /// The turn's clock, read once after `poll` returns.
    pub(crate) now: Instant,
    /// Source of connection generations.
    pub(crate) next_generation: u32,
    /// The one buffer every read lands in. Empty only while lent out.
    pub(crate) scratch: Vec<u8>,
    /// Output of the running `data` callback for its own connection, while
    /// that connection's queue is empty. Invariant: empty outside `deliver`.
    pub(crate) staging: Vec<u8>,
    /// `run` returns after this turn.
    pub(crate) stop_requested: bool,
    /// A shutdown asked for from a callback, begun by the loop after it.
    pub(crate) shutdown_requested: Option<Duration>,
    /// Set once a graceful shutdown began: its deadline.
    pub(crate) shutdown_deadline: Option<Instant>,
    /// Accepting is paused after running out of descriptors.
    pub(crate) accept_paused: bool,
}

impl<H: Handler> Core<H> {
    pub(crate) fn new(config: Config, registry: Registry) -> Self {
        let now = Instant::now();
        Core {
            limits: config.limits(),
            fanout: Fanout::default(),
            scratch: vec![0; config.read_buffer_size],
            staging: Vec::new(),
            timers: TimerWheel::new(now, config.timer_tick),
            config,
            registry,
            conns: Slab::new(),
            listeners: Vec::new(),
            sources: Vec::new(),
            firing: VecDeque::new(),
            ready: VecDeque::new(),
            dirty: Vec::new(),
            unreported: VecDeque::new(),
            to_free: Vec::new(),
            current: None,
            stats: Stats::default(),
            now,
            next_generation: 0,
            stop_requested: false,
            shutdown_requested: None,
            shutdown_deadline: None,
            accept_paused: false,
        }
    }

    /// The live connection named by `id`, if it is still that connection.
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection<H::State>> {
        self.conns
            .get(id.slot())
            .filter(|c| c.id == id && !c.is_closed())
    }

    /// Mutable form of [`Core::conn`].
    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection<H::State>> {
        live(&mut self.conns, id)
    }

    pub(crate) fn new_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    /// Remembers that `id` has output to try before the loop sleeps.
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if self.current == Some(id) {
            return;
        }
        if let Some(conn) = self.conns.get_mut(id.slot()) {
            if !conn.in_dirty_list {
                conn.in_dirty_list = true;
                self.dirty.push(id);
            }
        }
    }

    /// Puts `item` on the ready queue for the next turn, once.
    pub(crate) fn push_ready(&mut self, item: Ready) {
        let flag = match item {
            Ready::Conn(id) => match self.conn_mut(id) {
                Some(conn) => &mut conn.in_ready_queue,
                None => return,
            },
            Ready::Listener(index) => match self.listeners.get_mut(index) {
                Some(Some(listener)) => &mut listener.in_ready_queue,
                _ => return,
            },
        };
        if !*flag {
            *flag = true;
            self.ready.push_back(item);
        }
    }

    /// Stops reading `id` and closes it once its output is written.
    /// Keeps an earlier reason (the peer's FIN) if one was recorded.
    pub(crate) fn close_after_flush(&mut self, id: ConnId, reason: CloseReason) {
        let linger = self.config.linger_timeout;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Open | ConnState::ReadClosed | ConnState::HalfClosing => {
                conn.close_reason.get_or_insert(reason);
                conn.set_state(ConnState::Closing, "close after flush");
                // The flush phase finishes the close even with nothing queued.
                self.mark_dirty(id);
            }
            ConnState::HalfClosed if conn.close_reason == Some(CloseReason::PeerClosed) => {
                // Both FINs are out (the default `read_closed` lands here).
                self.close_now(id, CloseReason::PeerClosed);
            }
            ConnState::HalfClosed => {
                // Our FIN is out already: only the peer's is awaited.
                conn.close_reason.get_or_insert(reason);
                conn.set_state(ConnState::Lingering, "close after FIN sent");
                let readable = conn.readable;
                self.arm_state_timer(id, linger, TimerKind::Linger(id));
                if readable {
                    self.push_ready(Ready::Conn(id));
                }
            }
            ConnState::Connecting if !conn.output.is_empty() => {
                // Output queued while connecting is owed to the peer: record
                // the decision and let `finish_connect` close after flushing
                // once connected (a failed connect still closes at once).
                conn.after_connect = AfterConnect::CloseAfterFlush(reason);
            }
            ConnState::Connecting => self.close_now(id, reason),
            ConnState::Closing | ConnState::Lingering | ConnState::Closed => {}
        }
    }

    /// Shuts down the write side of `id` once its queued output is written
    /// (FIN), and keeps reading: a half-close.
    pub(crate) fn shutdown_write(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Open => {
                conn.write_shut = true;
                conn.set_state(ConnState::HalfClosing, "shutdown write after flush");
                self.mark_dirty(id);
            }
            // The peer is done too: nothing is left but to flush and close.
            ConnState::ReadClosed => {
                conn.write_shut = true;
                self.close_after_flush(id, CloseReason::ClosedLocally);
            }
            ConnState::Connecting => {
                conn.write_shut = true;
                if conn.after_connect == AfterConnect::Open {
                    conn.after_connect = AfterConnect::ShutdownWrite;
                }
            }
            ConnState::HalfClosing
            | ConnState::HalfClosed
            | ConnState::Closing
            | ConnState::Lingering
            | ConnState::Closed => {}
        }
    }

    /// Closes `id` with a reset: `SO_LINGER` 0 makes `close` send RST and
    /// drop whatever is unsent, so the peer sees an abort, not a clean end.
    pub(crate) fn abort(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        if let Err(e) = SockRef::from(socket).set_linger(Some(Duration::ZERO)) {
            debug!("conn {id}: cannot set SO_LINGER 0 for an abort: {e}");
        }
        self.close_now(id, CloseReason::Aborted);
    }

    /// Pauses (`true`) or resumes reading `id`. Resuming offers unconsumed
    /// input again next turn, and reads on if the socket is readable.
    pub(crate) fn set_read_paused(&mut self, id: ConnId, paused: bool) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.read_paused == paused {
            return;
        }
        trace!(
            "conn {id}: reading {}",
            if paused { "paused" } else { "resumed" }
        );
        conn.read_paused = paused;
        if !paused {
            conn.offer_pending |= !conn.input.is_empty();
            self.push_ready(Ready::Conn(id));
        }
    }

    /// Offers `id`'s unconsumed input to `data` again next turn, even if no
    /// new byte arrives.
    pub(crate) fn wake(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            conn.offer_pending = true;
            self.push_ready(Ready::Conn(id));
        }
    }

    /// Closes `id` at once: the socket is closed, timers cancelled, buffers
    /// freed. The handler hears of it before the turn ends.
    pub(crate) fn close_now(&mut self, id: ConnId, reason: CloseReason) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.set_state(ConnState::Closed, "close");
        conn.close_reason = Some(reason);
        // Dropping the socket closes the descriptor, which also removes it
        // from the epoll set: no `epoll_ctl` needed.
        conn.socket = None;
        let queued = conn.output.len() as u64;
        conn.output = Default::default();
        conn.input = Default::default();
        let timers = [
            conn.idle_timer.take(),
            conn.state_timer.take(),
            conn.soft_limit_timer.take(),
        ];
        debug!("conn {id} ({}) closed: {reason}", conn.peer);
        for timer in timers.into_iter().flatten() {
            self.timers.cancel(timer);
        }
        self.stats.queued_output_bytes -= queued;
        self.stats.open_connections -= 1;
        self.stats.closed_by_reason[reason.index()] += 1;
        self.unreported.push_back(id);
        self.fanout_target_done(id);
    }

    /// Arms (or re-arms) the idle timer of `id` for `deadline`.
    pub(crate) fn arm_idle_timer(&mut self, id: ConnId, deadline: Instant) {
        let timer = self.timers.insert(deadline, TimerKind::Idle(id));
        if let Some(conn) = self.conn_mut(id) {
            conn.idle_timer = Some(timer);
        }
    }

    /// Sets the idle limit of `id`, replacing the old timer.
    pub(crate) fn set_idle_timeout(&mut self, id: ConnId, timeout: Option<Duration>) {
        let now = self.now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.idle_timeout = timeout;
        conn.last_active = now;
        let old = conn.idle_timer.take();
        if let Some(old) = old {
            self.timers.cancel(old);
        }
        if let Some(timeout) = timeout {
            self.arm_idle_timer(id, now + timeout);
        }
    }

    /// Arms the connection's state timer (connect timeout or linger).
    pub(crate) fn arm_state_timer(&mut self, id: ConnId, after: Duration, kind: TimerKind) {
        let timer = self.timers.insert(self.now + after, kind);
        if let Some(conn) = self.conn_mut(id) {
            if let Some(old) = conn.state_timer.replace(timer) {
                self.timers.cancel(old);
            }
        }
    }

    /// Cancels a handler timer, even one already expired this turn whose
    /// callback has not run yet (it then never runs).
    pub(crate) fn cancel_timer(&mut self, timer: TimerId) -> bool {
        if self.timers.cancel(timer).is_some() {
            return true;
        }
        match self.firing.iter().position(|&(id, _)| id == timer) {
            Some(index) => {
                self.firing.remove(index);
                true
            }
            None => false,
        }
    }

    /// Frees the slots of connections closed and reported this turn.
    pub(crate) fn free_closed_slots(&mut self) {
        for slot in self.to_free.drain(..) {
            let conn = self.conns.remove(slot);
            trace!("conn {}: slot {slot} freed", conn.id);
        }
    }
}
