//! The connection state machine: every state a connection can be in, every
//! transition allowed between them, and every reason a connection ends.
//!
//! memcached's `drive_machine` is the model: one enum, one table. The reactor
//! changes a connection's state only through [`ConnState::check_transition`]
//! (called by `Connection::set_state`, which also logs it at trace level), so
//! this file and the diagram in `docs/architecture.md` describe every life a
//! connection can have.
//!
//! ```text
//!  Connecting ──connected──▶ Open ──peer FIN──▶ ReadClosed ──close_after_flush,──▶ Closing
//!                             │ │                              shutdown_write        ▲
//!                             │ └──────────────── close_after_flush ─────────────────┤
//!                             │                                                      │
//!                             └─shutdown_write─▶ HalfClosing ──peer FIN, ────────────┘
//!                                                    │          close_after_flush
//!                                     flushed, FIN sent
//!                                                    ▼
//!                                               HalfClosed ──peer FIN──▶ Closed
//!                                                    │
//!                                      close_after_flush
//!                                                    ▼
//!  Closing ──flushed, shutdown(Write)──▶ Lingering ──peer FIN or linger timeout──▶ Closed
//!  Closing ──flushed, peer FIN already seen──▶ Closed
//!  any state but Closed ──error, reset, timeout, limit, close, abort──▶ Closed
//! ```
//!
//! Beside the state, flow control can hold a connection that reads input
//! (`Open`, `HalfClosing`, `HalfClosed`): its handler paused reading, its
//! queued output is above the high-water mark, or its fan-out is held until
//! the readers it filled drain. None of these changes the state; they only
//! stop reads and the offering of input (see `io.rs` and `fanout.rs`).

use std::fmt;
use std::io;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Outbound: `connect` was started and has not completed.
    Connecting,
    /// Both directions open: input is read and handed to the handler.
    Open,
    /// The peer sent FIN (`read() == 0`); we may still write.
    ReadClosed,
    /// The handler shut down our write side (`Context::shutdown_write`):
    /// queued output is written, then FIN is sent. Input is still read.
    HalfClosing,
    /// Our FIN is sent; input is still read and handed to the handler
    /// until the peer's FIN, which ends the connection.
    HalfClosed,
    /// Closing after flush: no more input is read; queued output is written,
    /// then the write side is shut down.
    Closing,
    /// Our FIN is sent; waiting (bounded) for the peer's FIN, discarding input,
    /// so that closing never turns into a reset that destroys data in flight.
    Lingering,
    /// Finished. The socket is closed; the slot is freed at the end of the turn.
    Closed,
}

impl ConnState {
    /// Whether the machine allows going from `self` to `to`.
    ///
    /// ```
    /// use reactor::ConnState::*;
    /// assert!(Open.check_transition(ReadClosed));
    /// assert!(!Closed.check_transition(Open));
    /// ```
    pub fn check_transition(self, to: ConnState) -> bool {
        use ConnState::*;
        matches!(
            (self, to),
            (Connecting, Open)
                | (Open, ReadClosed)
                | (Open, Closing)
                | (Open, HalfClosing)
                | (ReadClosed, Closing)
                | (HalfClosing, HalfClosed)
                | (HalfClosing, Closing)
                | (HalfClosed, Lingering)
                | (Closing, Lingering)
                | (
                    Connecting | Open | ReadClosed | HalfClosing | HalfClosed | Closing | Lingering,
                    Closed
                )
        )
    }

    /// Whether input from the socket is read and handed to the handler.
    pub fn reads_input(self) -> bool {
        matches!(
            self,
            ConnState::Open | ConnState::HalfClosing | ConnState::HalfClosed
        )
    }

    /// Whether queued output may be written to the socket.
    pub fn writes_output(self) -> bool {
        matches!(
            self,
            ConnState::Open | ConnState::ReadClosed | ConnState::HalfClosing | ConnState::Closing
        )
    }

    /// Whether the handler may still queue output (queued while connecting,
    /// it is written once connected). Not after `shutdown_write`.
    pub fn accepts_output(self) -> bool {
        matches!(
            self,
            ConnState::Connecting | ConnState::Open | ConnState::ReadClosed | ConnState::Closing
        )
    }
}

/// Which per-connection limit was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Unconsumed input passed the connection's input cap
    /// ([`Limits::max_input`](crate::Limits::max_input)).
    Input,
    /// Queued output passed the connection's hard output cap
    /// ([`Limits::max_output`](crate::Limits::max_output)), or stayed above
    /// its soft limit for the soft limit's duration.
    Output,
}

/// Why a connection ended; handed to `Handler::closed` and counted in
/// [`Stats::closed_by_reason`](crate::Stats::closed_by_reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side and everything owed to it was written.
    PeerClosed,
    /// The peer reset the connection (`ECONNRESET`, `EPIPE`).
    Reset,
    /// Another socket error, by kind.
    Error(io::ErrorKind),
    /// No traffic for longer than the connection's idle timeout.
    IdleTimeout,
    /// A per-connection memory limit was exceeded.
    LimitExceeded(Limit),
    /// The handler closed it (`close` or `close_after_flush`).
    ClosedLocally,
    /// A graceful shutdown closed it, or its deadline force-closed it.
    Shutdown,
    /// An outbound connect failed (refused, unreachable, ...).
    ConnectFailed(io::ErrorKind),
    /// An outbound connect did not complete within its timeout.
    ConnectTimeout,
    /// A handler callback for this connection panicked.
    HandlerPanic,
    /// The handler aborted it (`Context::abort`): closed with a reset
    /// (`SO_LINGER` 0), queued output dropped.
    Aborted,
}

impl CloseReason {
    /// Number of distinct reasons, ignoring payloads.
    pub const COUNT: usize = 11;

    /// A dense index for counters, ignoring payloads.
    pub fn index(self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::Reset => 1,
            CloseReason::Error(_) => 2,
            CloseReason::IdleTimeout => 3,
            CloseReason::LimitExceeded(_) => 4,
            CloseReason::ClosedLocally => 5,
            CloseReason::Shutdown => 6,
            CloseReason::ConnectFailed(_) => 7,
            CloseReason::ConnectTimeout => 8,
            CloseReason::HandlerPanic => 9,
            CloseReason::Aborted => 10,
        }
    }

    /// Classifies an I/O error from a read or write on an open connection.
    pub(crate) fn from_io(error: &io::Error) -> CloseReason {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            kind => CloseReason::Error(kind),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => write!(f, "peer closed"),
            CloseReason::Reset => write!(f, "reset by peer"),
            CloseReason::Error(kind) => write!(f, "socket error: {kind}"),
            CloseReason::IdleTimeout => write!(f, "idle timeout"),
            CloseReason::LimitExceeded(Limit::Input) => write!(f, "input limit exceeded"),
            CloseReason::LimitExceeded(Limit::Output) => write!(f, "output limit exceeded"),
            CloseReason::ClosedLocally => write!(f, "closed locally"),
            CloseReason::Shutdown => write!(f, "shutdown"),
            CloseReason::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            CloseReason::ConnectTimeout => write!(f, "connect timed out"),
            CloseReason::HandlerPanic => write!(f, "handler panicked"),
            CloseReason::Aborted => write!(f, "aborted with a reset"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::ConnState::*;
    use super::*;

    const ALL: [ConnState; 8] = [
        Connecting,
        Open,
        ReadClosed,
        HalfClosing,
        HalfClosed,
        Closing,
        Lingering,
        Closed,
    ];

    #[test]
    fn transition_table_is_exactly_the_documented_one() {
        let allowed: Vec<(ConnState, ConnState)> = ALL
            .iter()
            .flat_map(|&a| ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a.check_transition(b))
            .collect();
        assert_eq!(
            allowed,
            vec![
                (Connecting, Open),
                (Connecting, Closed),
                (Open, ReadClosed),
                (Open, HalfClosing),
                (Open, Closing),
                (Open, Closed),
                (ReadClosed, Closing),
                (ReadClosed, Closed),
                (HalfClosing, HalfClosed),
                (HalfClosing, Closing),
                (HalfClosing, Closed),
                (HalfClosed, Lingering),
                (HalfClosed, Closed),
                (Closing, Lingering),
                (Closing, Closed),
                (Lingering, Closed),
            ]
        );
    }

    #[test]
    fn close_reason_indices_are_dense_and_distinct() {
        let reasons = [
            CloseReason::PeerClosed,
            CloseReason::Reset,
            CloseReason::Error(io::ErrorKind::Other),
            CloseReason::IdleTimeout,
            CloseReason::LimitExceeded(Limit::Input),
            CloseReason::ClosedLocally,
            CloseReason::Shutdown,
            CloseReason::ConnectFailed(io::ErrorKind::ConnectionRefused),
            CloseReason::ConnectTimeout,
            CloseReason::HandlerPanic,
            CloseReason::Aborted,
        ];
        let mut seen: Vec<usize> = reasons.iter().map(|r| r.index()).collect();
        seen.sort();
        assert_eq!(seen, (0..CloseReason::COUNT).collect::<Vec<_>>());
    }
}
