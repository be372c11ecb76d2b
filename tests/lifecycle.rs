//! A connection's life: every state transition, observed from handler
//! callbacks. Stale events and ids are in tests/lifecycle_stale.rs, how a
//! connection ends early (panics, a close from `opened`, lingering) in
//! tests/lifecycle_close.rs, the loop's own timers and stop in
//! tests/lifecycle_loop.rs.
//!
//! The state machine is the reactor's contract with handlers
//! (`ConnState::check_transition`), so the transition test records what
//! `Context::conn_state` reports at every callback and before every sleep,
//! and compares the whole sequence per connection.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, ConnState, Context, Handler};

/// What the tracer saw, shared with the test thread.
#[derive(Default)]
struct Trace {
    /// Every observation, in order: `None` means closed.
    seen: Vec<(ConnId, Option<ConnState>)>,
    /// A name per connection: the peer address for accepted connections,
    /// `out:ADDR` for outbound ones.
    names: Vec<(ConnId, String)>,
    closes: Vec<(ConnId, CloseReason)>,
}

impl Trace {
    fn id_of(&self, name: &str) -> Option<ConnId> {
        self.names
            .iter()
            .find(|(_, n)| n == name)
            .map(|&(id, _)| id)
    }

    /// The states `id` went through, consecutive repeats folded.
    fn states(&self, id: ConnId) -> Vec<Option<ConnState>> {
        let mut states: Vec<Option<ConnState>> = Vec::new();
        for &(conn, state) in &self.seen {
            if conn == id && states.last() != Some(&state) {
                states.push(state);
            }
        }
        states
    }

    fn reason(&self, id: ConnId) -> Option<CloseReason> {
        self.closes.iter().find(|(c, _)| *c == id).map(|&(_, r)| r)
    }
}

/// Records `conn_state` in every callback and for every connection before
/// each sleep. Commands: `bye` replies `ok` and closes after flush; a peer
/// FIN closes after flush (as the default does).
struct Tracer {
    trace: Arc<Mutex<Trace>>,
    live: Vec<ConnId>,
}

impl Tracer {
    fn record(&self, ctx: &Context<'_, Self>, conn: ConnId) {
        self.trace
            .lock()
            .unwrap()
            .seen
            .push((conn, ctx.conn_state(conn)));
    }
}

impl Handler for Tracer {
    type State = ();
    /// Connect to this address (from a callback).
    type Message = SocketAddr;

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, peer: SocketAddr) {
        self.live.push(conn);
        self.trace
            .lock()
            .unwrap()
            .names
            .push((conn, peer.to_string()));
        self.record(ctx, conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        self.record(ctx, conn);
        if input == b"bye" {
            ctx.write(conn, b"ok").unwrap();
            ctx.close_after_flush(conn);
            self.record(ctx, conn);
        } else {
            let _ = ctx.write(conn, input);
        }
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.record(ctx, conn);
        ctx.close_after_flush(conn);
        self.record(ctx, conn);
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.record(ctx, conn);
        // Close our side at once: Open -> Closing -> Lingering, and the
        // accepted end of this same connection sees our FIN.
        ctx.close_after_flush(conn);
        self.record(ctx, conn);
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, addr: SocketAddr) {
        let conn = ctx
            .connect(addr, Some(Duration::from_secs(5)), ())
            .expect("connect");
        self.live.push(conn);
        self.trace
            .lock()
            .unwrap()
            .names
            .push((conn, format!("out:{addr}")));
        self.record(ctx, conn);
    }

    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        for &conn in &self.live {
            self.record(ctx, conn);
        }
        self.live.retain(|&conn| ctx.conn_state(conn).is_some());
    }

    fn closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        self.record(ctx, conn);
        self.trace.lock().unwrap().closes.push((conn, reason));
    }
}

/// Drives connections through every path of the state machine and checks
/// the exact sequence `Context::conn_state` reported for each.
#[test]
fn every_state_transition_is_observed_from_callbacks() {
    use ConnState::*;
    let trace = Arc::new(Mutex::new(Trace::default()));
    let config = Config {
        linger_timeout: Duration::from_millis(500),
        ..Config::default()
    };
    let tracer = Tracer {
        trace: Arc::clone(&trace),
        live: Vec::new(),
    };
    let server = common::start(tracer, config);
    let wait_named = |name: &str| -> ConnId {
        let mut id = None;
        common::wait_until(name, Duration::from_secs(5), || {
            id = trace.lock().unwrap().id_of(name);
            id.is_some()
        });
        id.unwrap()
    };
    let wait_closed = |id: ConnId| {
        common::wait_until("a close", Duration::from_secs(10), || {
            trace.lock().unwrap().reason(id).is_some()
        });
    };

    // Open -> Closing -> Lingering -> Closed by the linger timeout: the client
    // reads our FIN but never sends its own (started first; runs meanwhile).
    let mut lingerer = common::client(server.addr);
    lingerer.write_all(b"bye").unwrap();
    let lingerer_id = wait_named(&lingerer.local_addr().unwrap().to_string());
    let mut reply = [0; 2];
    lingerer.read_exact(&mut reply).unwrap();
    assert_eq!(common::read_to_eof(&mut lingerer, 0).unwrap(), b"");

    // Open -> ReadClosed -> Closing -> Closed: the client half-closes.
    let mut half = common::client(server.addr);
    half.write_all(b"hi").unwrap();
    half.shutdown(Shutdown::Write).unwrap();
    assert_eq!(common::read_to_eof(&mut half, 16).unwrap(), b"hi");
    let half_id = wait_named(&half.local_addr().unwrap().to_string());
    wait_closed(half_id);

    // Open -> Closing -> Lingering -> Closed by the client's FIN.
    let mut polite = common::client(server.addr);
    polite.write_all(b"bye").unwrap();
    polite.read_exact(&mut reply).unwrap();
    assert_eq!(&reply, b"ok");
    // EOF: our FIN arrived, the server is lingering. Now send ours.
    assert_eq!(common::read_to_eof(&mut polite, 0).unwrap(), b"");
    let polite_id = wait_named(&polite.local_addr().unwrap().to_string());
    polite.shutdown(Shutdown::Write).unwrap();
    wait_closed(polite_id);

    // Connecting -> Open -> Closing -> Lingering -> Closed: an outbound
    // connection to our own listener, closed from `connected`.
    server.handle.send(server.addr).unwrap();
    let out_id = wait_named(&format!("out:{}", server.addr));
    wait_closed(out_id);

    // Connecting -> Closed: refused.
    let refused = {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap()
    };
    server.handle.send(refused).unwrap();
    let refused_id = wait_named(&format!("out:{refused}"));
    wait_closed(refused_id);

    wait_closed(lingerer_id);
    drop(lingerer);
    // Wait for the accepted end of the outbound connection too.
    server.wait_for("all closed", Duration::from_secs(10), |s| {
        s.open_connections == 0
    });
    drop(server.stop());

    let trace = trace.lock().unwrap();
    let expect = |id: ConnId, states: &[Option<ConnState>], reason: CloseReason| {
        assert_eq!(trace.states(id), states, "states of {id}");
        assert_eq!(trace.reason(id), Some(reason), "close reason of {id}");
    };
    expect(
        half_id,
        &[Some(Open), Some(ReadClosed), Some(Closing), None],
        CloseReason::PeerClosed,
    );
    expect(
        polite_id,
        &[Some(Open), Some(Closing), Some(Lingering), None],
        CloseReason::ClosedLocally,
    );
    expect(
        lingerer_id,
        &[Some(Open), Some(Closing), Some(Lingering), None],
        CloseReason::ClosedLocally,
    );
    expect(
        out_id,
        &[
            Some(Connecting),
            Some(Open),
            Some(Closing),
            Some(Lingering),
            None,
        ],
        CloseReason::ClosedLocally,
    );
    expect(
        refused_id,
        &[Some(Connecting), None],
        CloseReason::ConnectFailed(ErrorKind::ConnectionRefused),
    );
    // Every connection seen (including the accepted end of the outbound
    // one) moved only along allowed edges and ended closed.
    let ids: Vec<ConnId> = trace.names.iter().map(|&(id, _)| id).collect();
    assert_eq!(ids.len(), 6);
    for id in ids {
        let states = trace.states(id);
        assert_eq!(states.last(), Some(&None), "{id} never closed: {states:?}");
        for pair in states.windows(2) {
            let from = pair[0].expect("no state after closed");
            let to = pair[1].unwrap_or(Closed);
            assert!(
                from.check_transition(to),
                "{id}: illegal {from:?} -> {to:?} in {states:?}"
            );
        }
    }
}
