//! The connection state machine: every state a connection can be in, what
//! each state remembers, every transition allowed between them, and every
//! reason a connection ends.
//!
//! memcached's `drive_machine` is the model: one enum, one table. The loop
//! keeps a [`State`] per connection: the public [`ConnState`] a handler sees,
//! plus the little each state must remember (whether the peer's FIN was
//! seen, what to do once a connect completes). A state changes only through
//! `Connection::set_state`, which checks [`State::allows`] and logs the step
//! at trace level, so this file and the table in `docs/architecture.md`
//! (checked against each other by a test) describe every life a connection
//! can have.
//!
//! ```text
//!  Connecting ──connected (TLS)──▶ Handshaking ──handshake done──▶ Open
//!  accepted (TLS) ──▶ Handshaking
//!  accepted (PROXY protocol) ──▶ AwaitingProxyHeader ──header──▶ Open, or Handshaking (TLS)
//!  Connecting ──connected──▶ Open ──peer FIN──▶ ReadClosed ──close_after_flush,──▶ Closing
//!                             │ │                              shutdown_write        ▲
//!                             │ └──────────────── close_after_flush ─────────────────┤
//!                             │                                                      │
//!                             └─shutdown_write─▶ HalfClosing ──close_after_flush, ───┘
//!                                                    │          peer FIN + read_closed
//!                                     flushed, FIN sent
//!                                                    ▼
//!                                               HalfClosed ──peer FIN + read_closed──▶ Closed
//!                                                    │
//!                                      close_after_flush
//!                                                    ▼
//!  Closing ──flushed, FIN sent──▶ Lingering ──peer FIN or linger timeout──▶ Closed
//!  Closing { fin_seen } ──flushed──▶ Closed
//!  any state but Closed ──error, reset, timeout, limit, close, abort──▶ Closed
//! ```
//!
//! Beside the state, flow control can hold a connection that takes input:
//! its handler paused reading, its queued output is above the high-water
//! mark, or its fan-out is held until the readers it filled drain. None of
//! these changes the state; they only stop reads and the offering of input
//! (see `flow.rs` and `fanout.rs`), and they are kept in
//! `Connection::flow`.

use crate::close_reason::CloseReason;

/// Where a connection is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ConnState {
    /// Outbound: `connect` was started and has not completed.
    Connecting,
    /// Accepted on a listener that asks for the PROXY protocol: waiting
    /// for the header that says who the client is. Nothing else is read
    /// or written, and the handler has not been told.
    AwaitingProxyHeader,
    /// TLS only: the TCP connection is up and the TLS handshake is in
    /// progress. Handshake records are read and written; the handler has
    /// not been told yet (`opened` for an accepted connection, `connected`
    /// for an outbound one run when the handshake completes).
    Handshaking,
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
                | (AwaitingProxyHeader, Open)
                | (AwaitingProxyHeader, Handshaking)
                | (Connecting, Handshaking)
                | (Handshaking, Open)
                | (Open, ReadClosed)
                | (Open, Closing)
                | (Open, HalfClosing)
                | (ReadClosed, Closing)
                | (HalfClosing, HalfClosed)
                | (HalfClosing, Closing)
                | (HalfClosed, Lingering)
                | (Closing, Lingering)
                | (
                    Connecting
                        | AwaitingProxyHeader
                        | Handshaking
                        | Open
                        | ReadClosed
                        | HalfClosing
                        | HalfClosed
                        | Closing
                        | Lingering,
                    Closed
                )
        )
    }
}

/// What an outbound connection does once its connect completes: the handler
/// may half-close or close it while it is still connecting, with output
/// queued that is owed to the peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum WhenConnected {
    /// Nothing was asked: open normally.
    Open,
    /// `shutdown_write` was called: send what is queued, then FIN.
    ShutdownWrite,
    /// `close_after_flush` was called: send what is queued, then close.
    /// `write_shut`: `shutdown_write` came first, so no more output is taken.
    CloseAfterFlush {
        /// Why the connection is to close.
        reason: CloseReason,
        /// No more output is taken.
        write_shut: bool,
    },
}

/// The loop's record of where a connection is in its life: the public
/// [`ConnState`] plus what that state must remember. Nothing outside this
/// enum (no flag, no close reason) says which state a connection is in.
//
// `repr(u8)` puts the variant in a byte of its own: asking which state a
// connection is in (several times per message) is then one byte compare,
// where the compiler's own layout hid it in a niche of `CloseReason` and
// paid a decode each time (measured: scripts/measure_echo.sh).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum State {
    /// Outbound, not yet connected.
    Connecting {
        /// What the handler asked for meanwhile.
        when_connected: WhenConnected,
    },
    /// Waiting for the PROXY protocol header; the handler has not been told.
    AwaitingProxyHeader,
    /// TLS: the handshake is in progress; the handler has not been told.
    Handshaking {
        /// What the handler of an outbound connection asked for meanwhile
        /// (always `Open` for an accepted one, whose handler does not know
        /// it yet).
        when_connected: WhenConnected,
    },
    /// Both directions open.
    Open,
    /// The peer sent FIN; we may still write.
    ReadClosed {
        /// `Handler::read_closed` has not run yet: the input the peer sent
        /// before its FIN is still being offered (flow control may hold it).
        read_closed_owed: bool,
    },
    /// Our write side shuts once the queue is written; input is read.
    HalfClosing {
        /// The peer's FIN was read too; `read_closed` has not run yet (it
        /// ends the half-close).
        fin_read: bool,
    },
    /// Our FIN is sent; input is read until the peer's FIN.
    HalfClosed {
        /// The peer's FIN was read; `read_closed` has not run yet (it ends
        /// the connection).
        fin_read: bool,
    },
    /// Writing what is queued, then closing.
    Closing {
        /// The peer's FIN was already read: once written, the connection
        /// ends at once (no lingering for a FIN that came).
        fin_seen: bool,
        /// The handler shut the write side: no more output is taken.
        write_shut: bool,
    },
    /// Our FIN is sent; discarding input until the peer's FIN (bounded).
    Lingering,
    /// Finished; the slot is freed at the end of the turn.
    Closed,
}

impl State {
    /// The public face of the state.
    pub(crate) fn kind(self) -> ConnState {
        match self {
            State::Connecting { .. } => ConnState::Connecting,
            State::AwaitingProxyHeader => ConnState::AwaitingProxyHeader,
            State::Handshaking { .. } => ConnState::Handshaking,
            State::Open => ConnState::Open,
            State::ReadClosed { .. } => ConnState::ReadClosed,
            State::HalfClosing { .. } => ConnState::HalfClosing,
            State::HalfClosed { .. } => ConnState::HalfClosed,
            State::Closing { .. } => ConnState::Closing,
            State::Lingering => ConnState::Lingering,
            State::Closed => ConnState::Closed,
        }
    }

    /// Whether the machine allows going from `self` to `to`: a transition
    /// of the public table, or one of the updates of a state's own data
    /// that only go forward (the peer's FIN is read; `read_closed` ran; a
    /// connecting connection is told to half-close or close).
    pub(crate) fn allows(self, to: State) -> bool {
        use State::*;
        if self.kind() != to.kind() {
            return self.kind().check_transition(to.kind());
        }
        match (self, to) {
            (
                ReadClosed {
                    read_closed_owed: true,
                },
                ReadClosed {
                    read_closed_owed: false,
                },
            ) => true,
            (HalfClosing { fin_read: false }, HalfClosing { fin_read: true }) => true,
            (HalfClosed { fin_read: false }, HalfClosed { fin_read: true }) => true,
            (Connecting { when_connected: a }, Connecting { when_connected: b })
            | (Handshaking { when_connected: a }, Handshaking { when_connected: b }) => matches!(
                (a, b),
                (
                    WhenConnected::Open,
                    WhenConnected::ShutdownWrite
                        | WhenConnected::CloseAfterFlush {
                            write_shut: false,
                            ..
                        }
                ) | (
                    WhenConnected::ShutdownWrite
                        | WhenConnected::CloseAfterFlush {
                            write_shut: false,
                            ..
                        },
                    WhenConnected::CloseAfterFlush {
                        write_shut: true,
                        ..
                    }
                )
            ),
            _ => false,
        }
    }

    /// The same connecting or handshaking state with `when_connected`
    /// replaced (any other state is returned as is).
    pub(crate) fn with_when_connected(self, when_connected: WhenConnected) -> State {
        match self {
            State::Connecting { .. } => State::Connecting { when_connected },
            State::Handshaking { .. } => State::Handshaking { when_connected },
            other => other,
        }
    }

    /// Whether the socket is read: for input handed to the handler, or
    /// (`Handshaking`) for the handshake's records.
    /// (Each of these asks the state itself rather than going through
    /// `kind()`: they run on every read and write.)
    #[inline]
    pub(crate) fn reads_input(self) -> bool {
        matches!(
            self,
            State::Open
                | State::HalfClosing { .. }
                | State::HalfClosed { .. }
                | State::Handshaking { .. }
                | State::AwaitingProxyHeader
        )
    }

    /// Whether unconsumed input may still be offered to `data`: while
    /// reading, and after the peer's FIN until `read_closed`.
    #[inline]
    pub(crate) fn takes_input(self) -> bool {
        matches!(
            self,
            State::Open
                | State::ReadClosed { .. }
                | State::HalfClosing { .. }
                | State::HalfClosed { .. }
        )
    }

    /// Whether queued output may be written to the socket (while
    /// handshaking: the handshake's records).
    #[inline]
    pub(crate) fn writes_output(self) -> bool {
        matches!(
            self,
            State::Handshaking { .. }
                | State::Open
                | State::ReadClosed { .. }
                | State::HalfClosing { .. }
                | State::Closing { .. }
        )
    }

    /// Whether an empty output queue is a step in this state's life (a
    /// close or half-close goes on once everything is written).
    #[inline]
    pub(crate) fn waits_for_output(self) -> bool {
        matches!(self, State::Closing { .. } | State::HalfClosing { .. })
    }

    /// Whether the handler may still queue output.
    #[inline]
    pub(crate) fn accepts_output(self) -> bool {
        match self {
            State::Connecting { when_connected } | State::Handshaking { when_connected } => {
                matches!(
                    when_connected,
                    WhenConnected::Open
                        | WhenConnected::CloseAfterFlush {
                            write_shut: false,
                            ..
                        }
                )
            }
            State::Open | State::ReadClosed { .. } => true,
            State::Closing { write_shut, .. } => !write_shut,
            State::HalfClosing { .. }
            | State::HalfClosed { .. }
            | State::AwaitingProxyHeader
            | State::Lingering
            | State::Closed => false,
        }
    }

    /// `Handler::read_closed` is owed: the peer's FIN was read, and the
    /// input it sent before is still being offered.
    pub(crate) fn read_closed_owed(self) -> bool {
        matches!(
            self,
            State::ReadClosed {
                read_closed_owed: true
            } | State::HalfClosing { fin_read: true }
                | State::HalfClosed { fin_read: true }
        )
    }
}

// The machine walked, and checked against docs/architecture.md's table.
#[cfg(test)]
mod tests;
