//! One connection as the slab stores it: socket, readiness flags, buffers,
//! timers, state, and the handler's per-connection protocol state.
//!
//! Everything here is plain data; the loop (`reactor.rs`) and the I/O paths
//! (`io.rs`) decide what to do with it. The only behaviour is
//! [`Connection::set_state`], the single place a state changes.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use log::trace;
use mio::net::TcpStream;

use crate::buffer::{InputBuffer, OutputQueue};
use crate::limits::Limits;
use crate::state::{CloseReason, ConnState};
use crate::timer::TimerId;
use crate::token::{ConnId, ListenerId};

/// What a connection still connecting is to do once connected: the handler
/// may half-close or close it before the connect completes, with output
/// queued that is owed to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum AfterConnect {
    /// Nothing was asked: open normally.
    Open,
    /// `shutdown_write` was called: send what is queued, then FIN.
    ShutdownWrite,
    /// `close_after_flush` was called: send what is queued, then close.
    CloseAfterFlush(CloseReason),
}

/// A connection in the slab. `S` is the handler's per-connection state.
#[derive(Debug)]
pub(crate) struct Connection<S> {
    /// This connection's id. Invariant: `id.index` is its slab key.
    pub(crate) id: ConnId,
    /// The socket; `None` once closed (dropping it closes the descriptor and
    /// removes it from the poll set).
    pub(crate) socket: Option<TcpStream>,
    /// Address of the peer, for the handler and for logs.
    pub(crate) peer: SocketAddr,
    /// Where the connection is in its life; change only via `set_state`.
    pub(crate) state: ConnState,
    /// Set by a readable event, cleared only by `WouldBlock` or a short read:
    /// while set, a read may find data, and no new edge is promised.
    pub(crate) readable: bool,
    /// Set by a writable event, cleared only by `WouldBlock` or a short write.
    pub(crate) writable: bool,
    /// The last event hinted at the peer's FIN; a short read then does not
    /// clear `readable`, so the `read() == 0` that follows is not missed.
    pub(crate) read_closed_hint: bool,
    /// The last event reported a socket error (`EPOLLERR`). States that no
    /// longer read (after the peer's FIN) collect it with `take_error`.
    pub(crate) error_hint: bool,
    /// Queued on the ready queue (budget ran out with readiness left).
    /// Invariant: the connection appears on the queue at most once.
    pub(crate) in_ready_queue: bool,
    /// Queued on the dirty list (output queued, not yet tried this turn).
    pub(crate) in_dirty_list: bool,
    /// Queued output reached the high-water mark and has not yet fallen
    /// below the low-water mark: no reads, no input offered to `data`.
    pub(crate) backpressured: bool,
    /// The handler paused reading (`Context::pause_reading`): no reads, no
    /// input offered, until `resume_reading`.
    pub(crate) read_paused: bool,
    /// Backpressure ended and `Handler::drained` has not run yet.
    /// Invariant: when set, the connection is on the ready queue (or
    /// closing, when `drained` no longer runs).
    pub(crate) drained_pending: bool,
    /// Unconsumed input is to be offered to `data` again although no new
    /// byte arrived (after a drain, `resume_reading` or `wake`).
    /// Invariant: when set, the connection is on the ready queue, or held
    /// by flow control whose release puts it there.
    pub(crate) offer_pending: bool,
    /// The peer's FIN was read, but `read_closed` waits until the input left
    /// before it has been offered (flow control held it back).
    pub(crate) read_closed_pending: bool,
    /// What to do once an outbound connect completes. Invariant:
    /// `AfterConnect::Open` unless the state is `Connecting`.
    pub(crate) after_connect: AfterConnect,
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
    /// Turn clock at the last read or write progress.
    pub(crate) last_active: Instant,
    /// Turn clock when the socket last took output bytes (or when the
    /// connection opened): a target that took nothing for `fanout_stall`
    /// is stalled and holds no fan-out.
    pub(crate) last_sent: Instant,
    /// Reading is held because this connection's fan-out left a reader
    /// that is still taking bytes above high water. Invariant: set exactly
    /// while the id is among `Fanout::held`.
    pub(crate) fanout_held: bool,
    /// This connection is above high water and holds the connections whose
    /// fan-out put it there. Invariant: counted in `Fanout::targets_high`.
    pub(crate) fanout_target: bool,
    /// The handler shut our write side (`shutdown_write`): no more output
    /// is taken, whatever the state becomes.
    pub(crate) write_shut: bool,
    /// Idle limit; `None`: none.
    pub(crate) idle_timeout: Option<Duration>,
    /// The armed idle timer. Invariant: `Some` only if `idle_timeout` is.
    pub(crate) idle_timer: Option<TimerId>,
    /// The armed connect-timeout or linger timer, whichever the state needs.
    pub(crate) state_timer: Option<TimerId>,
    /// Why the connection is ending, once decided (closing or closed); also
    /// `PeerClosed` from the moment the peer's FIN is read.
    pub(crate) close_reason: Option<CloseReason>,
    /// The handler's state; `None` only while lent to a callback, or after
    /// the closed callback took it.
    pub(crate) user: Option<S>,
}

impl<S> Connection<S> {
    pub(crate) fn new(
        id: ConnId,
        socket: TcpStream,
        peer: SocketAddr,
        state: ConnState,
        now: Instant,
        user: Option<S>,
    ) -> Self {
        Connection {
            id,
            socket: Some(socket),
            peer,
            state,
            readable: false,
            writable: false,
            read_closed_hint: false,
            error_hint: false,
            in_ready_queue: false,
            in_dirty_list: false,
            backpressured: false,
            read_paused: false,
            drained_pending: false,
            offer_pending: false,
            read_closed_pending: false,
            after_connect: AfterConnect::Open,
            limits: None,
            soft_limit_timer: None,
            listener: None,
            input: InputBuffer::default(),
            output: OutputQueue::default(),
            last_active: now,
            last_sent: now,
            fanout_held: false,
            fanout_target: false,
            write_shut: false,
            idle_timeout: None,
            idle_timer: None,
            state_timer: None,
            close_reason: None,
            user,
        }
    }

    /// Moves to `to`, which the state machine must allow; logs the step.
    pub(crate) fn set_state(&mut self, to: ConnState, why: &str) {
        debug_assert!(
            self.state.check_transition(to),
            "illegal transition {:?} -> {:?} for {}",
            self.state,
            to,
            self.id
        );
        trace!("conn {}: {:?} -> {:?} ({})", self.id, self.state, to, why);
        self.state = to;
    }

    /// Whether the connection is finished and only waits for its slot to be freed.
    pub(crate) fn is_closed(&self) -> bool {
        self.state == ConnState::Closed
    }

    /// Nothing queued in either direction and no readiness left unserved.
    pub(crate) fn is_idle(&self) -> bool {
        self.output.is_empty() && self.input.is_empty() && !self.readable
    }

    /// Whether flow control owes the connection a step of its own:
    /// `drained`, an offer of its input, or the end of a FIN.
    pub(crate) fn owes_resume(&self) -> bool {
        self.drained_pending || self.offer_pending || self.read_closed_pending
    }

    /// Whether unconsumed input may be offered to `data` now: the
    /// connection still takes input (it reads, or the peer's FIN was just
    /// read) and neither the handler, backpressure nor a fan-out hold
    /// holds it back.
    pub(crate) fn may_offer(&self) -> bool {
        (self.state.reads_input() || self.state == ConnState::ReadClosed)
            && !self.read_paused
            && !self.backpressured
            && !self.fanout_held
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
