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
            (Connecting { when_connected: a }, Connecting { when_connected: b }) => matches!(
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

    /// Whether input from the socket is read and handed to the handler.
    /// (Each of these asks the state itself rather than going through
    /// `kind()`: they run on every read and write.)
    #[inline]
    pub(crate) fn reads_input(self) -> bool {
        matches!(
            self,
            State::Open | State::HalfClosing { .. } | State::HalfClosed { .. }
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

    /// Whether queued output may be written to the socket.
    #[inline]
    pub(crate) fn writes_output(self) -> bool {
        matches!(
            self,
            State::Open
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
            State::Connecting { when_connected } => matches!(
                when_connected,
                WhenConnected::Open
                    | WhenConnected::CloseAfterFlush {
                        write_shut: false,
                        ..
                    }
            ),
            State::Open | State::ReadClosed { .. } => true,
            State::Closing { write_shut, .. } => !write_shut,
            State::HalfClosing { .. }
            | State::HalfClosed { .. }
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

    /// Every value the loop's `State` can take.
    fn every_state() -> Vec<State> {
        let mut states = Vec::new();
        let reason = CloseReason::ClosedLocally;
        for when_connected in [
            WhenConnected::Open,
            WhenConnected::ShutdownWrite,
            WhenConnected::CloseAfterFlush {
                reason,
                write_shut: false,
            },
            WhenConnected::CloseAfterFlush {
                reason,
                write_shut: true,
            },
        ] {
            states.push(State::Connecting { when_connected });
        }
        states.push(State::Open);
        for flag in [false, true] {
            states.push(State::ReadClosed {
                read_closed_owed: flag,
            });
            states.push(State::HalfClosing { fin_read: flag });
            states.push(State::HalfClosed { fin_read: flag });
            for write_shut in [false, true] {
                states.push(State::Closing {
                    fin_seen: flag,
                    write_shut,
                });
            }
        }
        states.push(State::Lingering);
        states.push(State::Closed);
        states
    }

    #[test]
    fn the_machine_walked_from_its_two_births_reaches_every_state_and_always_ends() {
        let all = every_state();
        let edges = |from: State| -> Vec<State> {
            all.iter().copied().filter(|&to| from.allows(to)).collect()
        };
        // Born accepted (`Open`) or outbound (`Connecting`, nothing asked).
        let mut reached = vec![
            State::Open,
            State::Connecting {
                when_connected: WhenConnected::Open,
            },
        ];
        let mut next = 0;
        while next < reached.len() {
            for to in edges(reached[next]) {
                if !reached.contains(&to) {
                    reached.push(to);
                }
            }
            next += 1;
        }
        for state in &all {
            assert!(reached.contains(state), "{state:?} is unreachable");
            // Every state but Closed can end, and Closed is the end.
            assert_eq!(
                state.allows(State::Closed),
                *state != State::Closed,
                "{state:?}"
            );
        }
        // Every edge of the data-carrying machine is an edge of the public
        // table or an update of one state's own data, which only goes forward.
        for &from in &all {
            for to in edges(from) {
                if from.kind() != to.kind() {
                    assert!(from.kind().check_transition(to.kind()));
                } else {
                    assert!(!to.allows(from), "{from:?} <-> {to:?} goes both ways");
                }
            }
        }
        // And every edge of the public table exists between some pair.
        for a in ALL {
            for b in ALL {
                if a.check_transition(b) {
                    assert!(
                        all.iter()
                            .any(|&x| x.kind() == a
                                && all.iter().any(|&y| y.kind() == b && x.allows(y))),
                        "{a:?} -> {b:?}"
                    );
                }
            }
        }
    }

    #[test]
    fn what_each_state_does_follows_from_the_state_alone() {
        for state in every_state() {
            let kind = state.kind();
            let reads = matches!(kind, Open | HalfClosing | HalfClosed);
            assert_eq!(state.reads_input(), reads, "{state:?}");
            let writes = matches!(kind, Open | ReadClosed | HalfClosing | Closing);
            assert_eq!(state.writes_output(), writes, "{state:?}");
            // Input is offered while it is read, and after the FIN until
            // `read_closed` (ReadClosed).
            assert_eq!(
                state.takes_input(),
                reads || kind == ReadClosed,
                "{state:?}"
            );
            assert_eq!(
                state.waits_for_output(),
                matches!(kind, Closing | HalfClosing),
                "{state:?}"
            );
            // `read_closed` is owed only where the FIN was read and not yet told.
            if state.read_closed_owed() {
                assert!(matches!(kind, ReadClosed | HalfClosing | HalfClosed));
            }
        }
        // Once the write side is shut, no output is taken, whatever follows.
        assert!(!State::Closing {
            fin_seen: false,
            write_shut: true
        }
        .accepts_output());
        assert!(State::Closing {
            fin_seen: true,
            write_shut: false
        }
        .accepts_output());
        assert!(!State::Connecting {
            when_connected: WhenConnected::ShutdownWrite
        }
        .accepts_output());
    }

    #[test]
    fn the_architecture_doc_lists_exactly_the_transition_table() {
        // docs/architecture.md has one row per allowed transition, in a table
        // whose rows read `| From | To | ... |`.
        let doc = include_str!("../docs/architecture.md");
        let name = |s: &str| {
            ALL.iter()
                .copied()
                .find(|st| format!("{st:?}") == s.trim_matches('`'))
        };
        let mut documented: Vec<(ConnState, ConnState)> = doc
            .lines()
            .filter_map(|line| {
                let cells: Vec<&str> = line.split('|').map(str::trim).collect();
                (cells.len() > 3).then(|| Some((name(cells[1])?, name(cells[2])?)))?
            })
            .collect();
        documented.sort_by_key(|&(a, b)| (a as u8, b as u8));
        documented.dedup();
        let mut table: Vec<(ConnState, ConnState)> = ALL
            .iter()
            .flat_map(|&a| ALL.iter().map(move |&b| (a, b)))
            .filter(|&(a, b)| a.check_transition(b))
            .collect();
        table.sort_by_key(|&(a, b)| (a as u8, b as u8));
        assert_eq!(documented, table);
    }
}
