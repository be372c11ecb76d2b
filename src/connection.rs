//! One connection as the slab stores it, and the one function that creates
//! a connection, for accept and connect alike.
//!
//! The record is plain data: its [`State`], the readiness its events
//! reported, what flow control holds and owes it, its buffers and timers,
//! and the handler's per-connection state. The modules of the loop decide
//! what to do with it; the only behaviour here is [`Connection::set_state`],
//! the single place a state changes, and the lookups every module shares.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::trace;
use mio::net::TcpStream;
use mio::{Interest, Token};
use slab::Slab;

use crate::buffer::{InputBuffer, OutputQueue};
use crate::close_reason::CloseReason;
use crate::config::Config;
use crate::handler::Handler;
use crate::limits::Limits;
use crate::loop_state::LoopState;
use crate::state::State;
use crate::timer_wheel::TimerId;
use crate::tls_session::TlsSession;
use crate::token::{ConnId, ListenerId};

/// What the socket's events reported, as edge-triggered polling needs it
/// remembered: an edge comes once, so the flag stays set until the socket
/// is drained.
#[derive(Debug, Default)]
pub(crate) struct Readiness {
    /// Set by a readable event; cleared only when a read returns
    /// `WouldBlock` (or, as an optimisation, a short read): while set, a
    /// read may find data, and no new edge is promised.
    pub(crate) readable: bool,
    /// Set by a writable event; cleared only by `WouldBlock` or a short write.
    pub(crate) writable: bool,
    /// The last event announced the peer's FIN (`EPOLLRDHUP`): a short read
    /// then keeps `readable`, so the `read() == 0` that follows is not missed.
    pub(crate) read_closed_hint: bool,
    /// The last event reported a socket error (`EPOLLERR`). A connection that
    /// no longer reads collects it with `take_error`.
    pub(crate) error_hint: bool,
}

/// What holds a connection's input back. None of it changes the state; a
/// connection is read and offered input only while all of it is clear.
#[derive(Debug, Default)]
pub(crate) struct Flow {
    /// The handler paused reading (`Context::pause_reading`).
    pub(crate) read_paused: bool,
    /// Queued output reached the high-water mark and has not yet fallen
    /// below the low-water mark.
    pub(crate) backpressured: bool,
    /// Held because this connection's fan-out left a reader that is still
    /// taking bytes above high water. Invariant: set exactly while the id is
    /// among the fan-out's held connections (`fanout.rs`).
    pub(crate) fanout_held: bool,
    /// This connection is above high water and holds the connections whose
    /// fan-out put it there. Invariant: counted in the fan-out's
    /// `targets_high`.
    pub(crate) fanout_target: bool,
}

/// Steps flow control owes the connection once it lets go of it, run in
/// the connection's own next step (`flow.rs`).
#[derive(Debug, Default)]
pub(crate) struct Owed {
    /// Backpressure ended and `Handler::drained` has not run yet.
    /// Invariant: when set, the connection is on the ready queue (or closing,
    /// when `drained` no longer runs).
    pub(crate) drained: bool,
    /// Unconsumed input is to be offered to `data` again although no new
    /// byte arrived (after a drain, `resume_reading` or `wake`). Invariant:
    /// when set, the connection is on the ready queue, or held by flow
    /// control whose release puts it there.
    pub(crate) offer: bool,
}

/// A connection in the slab. `S` is the handler's per-connection state.
#[derive(Debug)]
pub(crate) struct Connection<S> {
    /// This connection's id. Invariant: `id.index` is its slab key.
    pub(crate) id: ConnId,
    /// The socket; `None` once closed (dropping it closes the descriptor and
    /// removes it from the poll set).
    pub(crate) socket: Option<TcpStream>,
    /// Address of the peer, for the handler and for logs: the client's, as
    /// a PROXY protocol header gave it, where a listener asks for one.
    pub(crate) peer: SocketAddr,
    /// The address the client connected to, as a PROXY protocol header gave
    /// it (the balancer's front end); `None`: the socket's own.
    pub(crate) proxied_local: Option<SocketAddr>,
    /// Where the connection is in its life; changed only by `set_state`.
    pub(crate) state: State,
    /// What its events reported and no system call has used up yet.
    pub(crate) ready: Readiness,
    /// What holds its input back.
    pub(crate) flow: Flow,
    /// What flow control owes it.
    pub(crate) owed: Owed,
    /// On the ready queue. Invariant: there at most once.
    pub(crate) in_ready_queue: bool,
    /// On the dirty list (output queued outside its own step). Invariant:
    /// there at most once.
    pub(crate) in_dirty_list: bool,
    /// Limits set for this connection alone; `None`: the `Config`'s.
    pub(crate) limits: Option<Box<Limits>>,
    /// Armed while queued output is above the soft limit; firing closes.
    /// Invariant: `Some` only while above a soft limit.
    pub(crate) soft_limit_timer: Option<TimerId>,
    /// The listener that accepted it; `None` for outbound connections.
    pub(crate) listener: Option<ListenerId>,
    /// Input left unconsumed by the handler.
    pub(crate) input: InputBuffer,
    /// Output not yet accepted by the socket.
    pub(crate) output: OutputQueue,
    /// Turn clock when the connection was born (accepted or connect started).
    pub(crate) opened_at: Instant,
    /// Bytes read from its socket (ciphertext, for TLS).
    pub(crate) bytes_in: u64,
    /// Bytes its socket took (ciphertext, for TLS).
    pub(crate) bytes_out: u64,
    /// Turn clock at the last read or write progress.
    pub(crate) last_active: Instant,
    /// Turn clock when the socket last took output bytes (or when the
    /// connection opened): a fan-out target that took nothing for
    /// `fanout_stall` is stalled and holds nobody.
    pub(crate) last_sent: Instant,
    /// Idle limit; `None`: none.
    pub(crate) idle_timeout: Option<Duration>,
    /// The armed idle timer. Invariant: `Some` only if `idle_timeout` is.
    pub(crate) idle_timer: Option<TimerId>,
    /// The armed connect-timeout or linger timer, whichever the state needs.
    pub(crate) state_timer: Option<TimerId>,
    /// Why the connection ends. Invariant: `Some` exactly from the moment
    /// closing was decided (`Closing`, `Lingering`, `Closed`; a connecting
    /// connection told to close keeps its reason in its state until it
    /// closes), and only records why.
    pub(crate) close_reason: Option<CloseReason>,
    /// The handler's state; `None` only while lent to a callback, after
    /// the closed callback took it, or (accepted TLS) before `opened` ran.
    pub(crate) user: Option<S>,
    /// The TLS session between the socket and the buffers; `None` for
    /// plain TCP. Invariant: `Some` from birth to close or never.
    pub(crate) tls: Option<Box<TlsSession>>,
}

impl<S> Connection<S> {
    fn new(id: ConnId, socket: TcpStream, peer: SocketAddr, state: State, now: Instant) -> Self {
        Connection {
            id,
            socket: Some(socket),
            peer,
            proxied_local: None,
            state,
            ready: Readiness::default(),
            flow: Flow::default(),
            owed: Owed::default(),
            in_ready_queue: false,
            in_dirty_list: false,
            limits: None,
            soft_limit_timer: None,
            listener: None,
            input: InputBuffer::default(),
            output: OutputQueue::default(),
            opened_at: now,
            bytes_in: 0,
            bytes_out: 0,
            last_active: now,
            last_sent: now,
            idle_timeout: None,
            idle_timer: None,
            state_timer: None,
            close_reason: None,
            user: None,
            tls: None,
        }
    }

    /// Moves to `to`, which the state machine must allow; logs the step.
    pub(crate) fn set_state(&mut self, to: State, why: &str) {
        debug_assert!(
            self.state.allows(to),
            "illegal transition {:?} -> {:?} for {}",
            self.state,
            to,
            self.id
        );
        trace!("conn {}: {:?} -> {:?} ({})", self.id, self.state, to, why);
        self.state = to;
    }

    /// Whether the connection is finished and only waits for its slot to be freed.
    #[inline]
    pub(crate) fn is_closed(&self) -> bool {
        matches!(self.state, State::Closed)
    }

    /// Nothing queued in either direction and no readiness left unserved.
    pub(crate) fn is_idle(&self) -> bool {
        self.output.is_empty() && self.input.is_empty() && !self.ready.readable
    }

    /// Whether flow control owes the connection a step of its own:
    /// `drained`, an offer of its input, or the end of a FIN.
    pub(crate) fn owes_resume(&self) -> bool {
        self.owed.drained || self.owed.offer || self.state.read_closed_owed()
    }

    /// Whether unconsumed input may be offered to `data` now: the state
    /// takes input and nothing in `flow` holds it back.
    #[inline]
    pub(crate) fn may_offer(&self) -> bool {
        self.state.takes_input()
            && !self.flow.read_paused
            && !self.flow.backpressured
            && !self.flow.fanout_held
    }

    /// Whether its socket is to be read for input now: the state reads
    /// input, an event said readable, flow control holds nothing back, and
    /// no `drained` is owed first.
    #[inline]
    pub(crate) fn wants_input_read(&self) -> bool {
        // `readable` first: it is what ends the read loop of every message.
        self.ready.readable
            && self.state.reads_input()
            && ((!self.flow.read_paused
                && !self.flow.backpressured
                && !self.flow.fanout_held
                && !self.owed.drained)
                // A TLS handshake's records are not the handler's input:
                // flow control does not hold them.
                || (crate::tls_session::ENABLED && matches!(self.state, State::Handshaking { .. })))
    }

    /// The limits in force: its own, or else `default` (the `Config`'s).
    pub(crate) fn limits_in_force<'a>(&'a self, default: &'a Limits) -> &'a Limits {
        self.limits.as_deref().unwrap_or(default)
    }
}

/// The live connection named by `id`: the one in its slot, not closed.
/// The one lookup every module uses (through `LoopState::conn` and
/// `conn_mut`, or directly where a caller must borrow one connection and
/// another field of the loop at once). A closed connection is found only
/// by [`record_mut`], for the bookkeeping that follows a close.
#[inline]
pub(crate) fn live<S>(conns: &mut Slab<Connection<S>>, id: ConnId) -> Option<&mut Connection<S>> {
    conns
        .get_mut(id.slot())
        .filter(|c| c.id == id && !c.is_closed())
}

/// The record named by `id`, closed or not (until its slot is freed).
#[inline]
pub(crate) fn record_mut<S>(
    conns: &mut Slab<Connection<S>>,
    id: ConnId,
) -> Option<&mut Connection<S>> {
    conns.get_mut(id.slot()).filter(|c| c.id == id)
}

/// The options `Config` asks for on every connection, accepted or
/// outbound: `TCP_NODELAY` and `TCP_NOTSENT_LOWAT`.
pub(crate) fn set_socket_options(
    socket: impl std::os::fd::AsFd,
    config: &Config,
) -> io::Result<()> {
    let socket = socket2::SockRef::from(&socket);
    if config.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(lowat) = config.notsent_lowat {
        socket.set_tcp_notsent_lowat(lowat)?;
    }
    Ok(())
}

impl<H: Handler> LoopState<H> {
    /// Registers `socket` and gives it a slot: the one way a connection is
    /// born, accepted (`Open`, from `listener`) or outbound (`Connecting`,
    /// with its state given by the caller). Registered once, for reading
    /// and writing, edge-triggered: no `epoll_ctl` ever follows.
    pub(crate) fn add_connection(
        &mut self,
        mut socket: TcpStream,
        peer: SocketAddr,
        state: State,
        listener: Option<ListenerId>,
    ) -> io::Result<ConnId> {
        let slot = self.conns.vacant_key();
        self.registry.register(
            &mut socket,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        self.next_generation = self.next_generation.wrapping_add(1);
        let id = ConnId {
            index: slot as u32,
            generation: self.next_generation,
        };
        let mut conn = Connection::new(id, socket, peer, state, self.now);
        conn.listener = listener;
        let inserted = self.conns.insert(conn);
        debug_assert_eq!(inserted, slot);
        self.stats.open_connections += 1;
        trace!("conn {id}: {peer} -> {state:?}");
        if let Some(idle) = self.config.idle_timeout {
            self.set_idle_timeout(id, Some(idle));
        }
        Ok(id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_idle_connection_record_is_small() {
        // The slab stores this struct inline; with buffers allocated lazily it
        // is all the user-space memory an idle connection costs (plus slab
        // slack), so it must stay well under the 1 KiB budget.
        let size = std::mem::size_of::<Connection<()>>();
        eprintln!("Connection<()> is {size} bytes");
        assert!(size < 512, "Connection<()> grew to {size} bytes");
    }
}
