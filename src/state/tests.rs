//! The state machine, walked: every state reachable from a connection's
//! three births (accepted, accepted over TLS, outbound), every state able to end, the data updates only going forward,
//! and the table in docs/architecture.md equal to the code's.

use super::ConnState::*;
use super::*;

const ALL: [ConnState; 10] = [
    Connecting,
    AwaitingProxyHeader,
    Handshaking,
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
            (Connecting, Handshaking),
            (Connecting, Open),
            (Connecting, Closed),
            (AwaitingProxyHeader, Handshaking),
            (AwaitingProxyHeader, Open),
            (AwaitingProxyHeader, Closed),
            (Handshaking, Open),
            (Handshaking, Closed),
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
        states.push(State::Handshaking { when_connected });
    }
    states.push(State::AwaitingProxyHeader);
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
fn the_machine_walked_from_its_births_reaches_every_state_and_always_ends() {
    let all = every_state();
    let edges =
        |from: State| -> Vec<State> { all.iter().copied().filter(|&to| from.allows(to)).collect() };
    // Born accepted (`Open`), behind a PROXY header, accepted over TLS (`Handshaking`, nothing
    // asked: its handler does not know it yet) or outbound (`Connecting`,
    // nothing asked).
    let mut reached = vec![
        State::Open,
        State::AwaitingProxyHeader,
        State::Handshaking {
            when_connected: WhenConnected::Open,
        },
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
                    all.iter().any(
                        |&x| x.kind() == a && all.iter().any(|&y| y.kind() == b && x.allows(y))
                    ),
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
        // A handshake reads and writes records, and a PROXY header is read,
        // but neither offers input.
        assert_eq!(
            state.reads_input(),
            reads || kind == Handshaking || kind == AwaitingProxyHeader,
            "{state:?}"
        );
        let writes = matches!(
            kind,
            Handshaking | Open | ReadClosed | HalfClosing | Closing
        );
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
    let doc = include_str!("../../docs/architecture.md");
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
