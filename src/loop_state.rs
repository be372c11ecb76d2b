//! `LoopState`: everything the loop owns except the handler and the poll
//! instance, and the two work lists that carry work from one phase or turn
//! to the next.
//!
//! Keeping the handler outside lets a callback hold `&mut Handler` and a
//! `Context` over `&mut LoopState` at the same time, without `RefCell` or
//! unsafe code. [`Loop`](crate::callbacks::Loop) borrows the two together
//! for the steps that call the handler.
//!
//! The two lists:
//!
//! * the **ready queue**: connections and listeners that still have
//!   readiness after using their per-turn budget (or that flow control let
//!   go of). Edge-triggered polling will not report them again, so the
//!   next turn resumes them without waiting in `poll`;
//! * the **dirty list**: connections written to outside their own step (a
//!   broadcast, a timer, a message). They are flushed before the loop
//!   sleeps, so a fan-out to many connections costs one system call each.

use std::collections::VecDeque;
use std::io;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::{Interest, Registry};
use slab::Slab;

use crate::accept::Listener;
use crate::config::Config;
use crate::connection::{live, record_mut, Connection};
use crate::fanout::Fanout;
use crate::handler::Handler;
use crate::limits::Limits;
use crate::stats::Stats;
use crate::timer_wheel::{TimerId, TimerWheel};
use crate::timers::TimerKind;
use crate::token::{self, ConnId, SourceId};

/// Work postponed to the next turn.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Ready {
    /// A connection with readiness or owed work left.
    Conn(ConnId),
    /// A listener that used its accept budget, or must retry after `EMFILE`.
    Listener(usize),
}

/// A handler source's index, like a connection's slot, is reused only after
/// the turn in which it was given up, so an event of that turn's batch
/// never reaches a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum SourceSlot {
    /// Free to give to a new source.
    Free,
    /// A registered source: its events go to `Handler::source_ready`.
    Registered,
    /// Deregistered this turn: its events are stale; free at the turn's end.
    Retired,
}

/// Everything the loop owns except the handler and the poll instance.
pub(crate) struct LoopState<H: Handler> {
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
    /// The handler's sources by index (`SourceId`).
    pub(crate) sources: Vec<SourceSlot>,
    /// Every timer: idle, connect, linger, accept retry, handler.
    pub(crate) timers: TimerWheel<TimerKind>,
    /// Timers the wheel handed over this turn that have not fired yet.
    /// Cancelling one of these (from an earlier timer's callback in the same
    /// turn) removes it here, so it never fires.
    pub(crate) firing: VecDeque<(TimerId, TimerKind, Instant)>,
    /// Work to resume next turn. Entries may be stale (closed connections).
    pub(crate) ready: VecDeque<Ready>,
    /// Connections with output queued outside their own step, to flush
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
    /// TLS listeners stopped accepting because `max_tls_handshakes`
    /// handshakes are in progress; the first handshake to end puts them
    /// back on the ready queue (the connections wait in the backlog).
    pub(crate) tls_accept_held: bool,
    /// Plaintext decrypted from one read, before it is handed to `data`.
    /// Empty between reads; its capacity is kept.
    pub(crate) plaintext: Vec<u8>,
}

impl<H: Handler> LoopState<H> {
    /// An empty loop: no connections, listeners or timers; the clock read now.
    pub(crate) fn new(config: Config, registry: Registry) -> Self {
        let now = Instant::now();
        LoopState {
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
            tls_accept_held: false,
            plaintext: Vec::new(),
        }
    }

    /// The live connection named by `id` (see [`live`]).
    pub(crate) fn conn(&self, id: ConnId) -> Option<&Connection<H::State>> {
        self.conns
            .get(id.slot())
            .filter(|c| c.id == id && !c.is_closed())
    }

    /// Mutable form of [`LoopState::conn`].
    pub(crate) fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection<H::State>> {
        live(&mut self.conns, id)
    }

    /// Whether a graceful shutdown has begun (not merely been asked for).
    pub(crate) fn is_shutting_down(&self) -> bool {
        self.shutdown_deadline.is_some()
    }

    /// Remembers that `id` has output to try before the loop sleeps.
    pub(crate) fn mark_dirty(&mut self, id: ConnId) {
        if self.current == Some(id) {
            return;
        }
        if let Some(conn) = record_mut(&mut self.conns, id) {
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

    /// Registers a handler's source under a free index.
    pub(crate) fn register_source(
        &mut self,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<SourceId> {
        let index = match self.sources.iter().position(|&s| s == SourceSlot::Free) {
            Some(free) => free,
            None => {
                self.sources.push(SourceSlot::Free);
                self.sources.len() - 1
            }
        };
        self.registry
            .register(source, token::source_token(index), interest)?;
        self.sources[index] = SourceSlot::Registered;
        Ok(SourceId(index))
    }

    /// Deregisters a handler's source; its index is reused from the next turn.
    pub(crate) fn deregister_source(
        &mut self,
        source: &mut impl Source,
        id: SourceId,
    ) -> io::Result<()> {
        if self.sources.get(id.0) != Some(&SourceSlot::Registered) {
            return Err(io::Error::new(
                io::ErrorKind::NotFound,
                format!("source {} is not registered", id.0),
            ));
        }
        self.registry.deregister(source)?;
        self.sources[id.0] = SourceSlot::Retired;
        Ok(())
    }

    /// Frees the indices of sources deregistered this turn.
    pub(crate) fn free_retired_sources(&mut self) {
        for slot in &mut self.sources {
            if *slot == SourceSlot::Retired {
                *slot = SourceSlot::Free;
            }
        }
    }
}
