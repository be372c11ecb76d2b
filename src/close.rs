//! Closing, every way a connection can end: now, after its output is
//! written, half-way (our FIN, keep reading), with a reset; lingering for
//! the peer's FIN; telling the handler; freeing the slot.
//!
//! An orderly close is `Closing` (write what is queued), then our FIN
//! (`shutdown(SHUT_WR)`), then `Lingering`: reading and discarding until
//! the peer's FIN, bounded by `Config::linger_timeout`. Closing a socket
//! with unread input makes the kernel send a reset that can destroy the
//! reply still in flight; lingering is how the loop avoids it (nginx's
//! `lingering_close`). If the peer's FIN came first (`fin_seen`), the
//! connection ends as soon as its output is written.
//!
//! [`LoopState::close_now`] is the one place a connection becomes `Closed`:
//! the socket is dropped (which also removes it from the epoll set: no
//! `epoll_ctl`), its timers cancelled, its buffers freed. The handler hears
//! of it ([`Loop::report_closed`]) before the turn ends, and the slot is
//! freed only at the very end of the turn, so no event of this turn's batch
//! can reach a newcomer in the same slot.

use std::time::Duration;

use log::{debug, trace};
use socket2::SockRef;

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::connection::live;
use crate::handler::Handler;
use crate::input::{Purpose, SocketRead};
use crate::loop_state::{LoopState, Ready};
use crate::state::{State, WhenConnected};
use crate::timers::TimerKind;
use crate::tls_steps::{farewell, handler_output_waiting};
use crate::token::ConnId;

impl<H: Handler> LoopState<H> {
    /// Stops reading `id` and closes it once its output is written. If the
    /// peer's FIN was already seen, the reason is `PeerClosed`: the peer
    /// ended the conversation and everything owed to it is sent.
    pub(crate) fn close_after_flush(&mut self, id: ConnId, reason: CloseReason) {
        let linger = self.config.linger_timeout;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        let (fin_seen, write_shut) = match conn.state {
            State::Open => (false, false),
            State::ReadClosed { .. } => (true, false),
            State::HalfClosing { fin_read } => (fin_read, true),
            State::HalfClosed { fin_read: true } => {
                // Both FINs are out (the default `read_closed` lands here).
                self.close_now(id, CloseReason::PeerClosed);
                return;
            }
            State::HalfClosed { fin_read: false } => {
                // Our FIN is out already: only the peer's is awaited.
                conn.close_reason = Some(reason);
                conn.set_state(State::Lingering, "close after FIN sent");
                let readable = conn.ready.readable;
                self.arm_state_timer(id, linger, TimerKind::Linger(id));
                if readable {
                    self.push_ready(Ready::Conn(id));
                }
                return;
            }
            State::Connecting {
                when_connected: WhenConnected::CloseAfterFlush { .. },
            }
            | State::Handshaking {
                when_connected: WhenConnected::CloseAfterFlush { .. },
            } => return,
            State::Connecting { when_connected } | State::Handshaking { when_connected }
                if handler_output_waiting(conn) =>
            {
                // Output queued while connecting is owed to the peer: the
                // connect's (or TLS handshake's) completion closes after
                // flushing (a failed connect still closes at once).
                let write_shut = when_connected == WhenConnected::ShutdownWrite;
                let when_connected = WhenConnected::CloseAfterFlush { reason, write_shut };
                let state = conn.state.with_when_connected(when_connected);
                conn.set_state(state, "close once connected");
                return;
            }
            State::Connecting { .. } | State::Handshaking { .. } | State::AwaitingProxyHeader => {
                self.close_now(id, reason);
                return;
            }
            State::Closing { .. } | State::Lingering | State::Closed => return,
        };
        conn.close_reason = Some(if fin_seen {
            CloseReason::PeerClosed
        } else {
            reason
        });
        conn.set_state(
            State::Closing {
                fin_seen,
                write_shut,
            },
            "close after flush",
        );
        // The flush before sleeping finishes the close even with nothing queued.
        self.mark_dirty(id);
    }

    /// Shuts down the write side of `id` once its queued output is written
    /// (FIN), and keeps reading: a half-close.
    pub(crate) fn shutdown_write(&mut self, id: ConnId) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        match conn.state {
            State::Open => {
                conn.set_state(
                    State::HalfClosing { fin_read: false },
                    "shutdown write after flush",
                );
                self.mark_dirty(id);
            }
            // The peer is done too: nothing is left but to flush and close.
            State::ReadClosed { .. } => {
                conn.close_reason = Some(CloseReason::PeerClosed);
                let closing = State::Closing {
                    fin_seen: true,
                    write_shut: true,
                };
                conn.set_state(closing, "shutdown write after the peer's FIN");
                self.mark_dirty(id);
            }
            State::Connecting { when_connected } | State::Handshaking { when_connected } => {
                let when_connected = match when_connected {
                    WhenConnected::Open => WhenConnected::ShutdownWrite,
                    WhenConnected::CloseAfterFlush {
                        reason,
                        write_shut: false,
                    } => WhenConnected::CloseAfterFlush {
                        reason,
                        write_shut: true,
                    },
                    // Shut already: a repeat is a no-op.
                    WhenConnected::ShutdownWrite
                    | WhenConnected::CloseAfterFlush {
                        write_shut: true, ..
                    } => return,
                };
                let state = conn.state.with_when_connected(when_connected);
                conn.set_state(state, "half-close once connected");
            }
            State::HalfClosing { .. }
            | State::HalfClosed { .. }
            | State::Closing { .. }
            | State::AwaitingProxyHeader
            | State::Lingering
            | State::Closed => {}
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

    /// Closes `id` at once: the socket is closed, timers cancelled, buffers
    /// freed. The handler hears of it before the turn ends.
    pub(crate) fn close_now(&mut self, id: ConnId, reason: CloseReason) {
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        if let State::Handshaking { .. } = conn.state {
            self.stats.tls_handshake_failures += 1;
        }
        if crate::tls_session::ENABLED {
            let nothing_staged = self.current != Some(id) || self.staging.is_empty();
            farewell(conn, reason, nothing_staged);
        }
        conn.set_state(State::Closed, "close");
        conn.close_reason = Some(reason);
        // Dropping the socket closes the descriptor, which also removes it
        // from the epoll set: no `epoll_ctl` needed.
        conn.socket = None;
        // Bytes staged by its running `data` callback leave with it too.
        let staged = if self.current == Some(id) {
            let staged = self.staging.len();
            self.staging.clear();
            staged
        } else {
            0
        };
        let queued = (conn.output.len() + staged) as u64;
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
        self.handshake_ended(id);
    }

    /// Frees the slots of connections closed and reported this turn.
    pub(crate) fn free_closed_slots(&mut self) {
        for slot in self.to_free.drain(..) {
            let conn = self.conns.remove(slot);
            trace!("conn {}: slot {slot} freed", conn.id);
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// `id`'s queue is empty: the next step of a close or half-close, or
    /// of a graceful shutdown, may now be taken.
    pub(crate) fn output_written(&mut self, id: ConnId) {
        match self.core.conn(id).map(|c| c.state) {
            // TLS: our close_notify goes before the FIN; once it has left,
            // the flush comes back here and the close goes on.
            Some(State::Closing { .. } | State::HalfClosing { .. })
                if self.core.send_close_notify(id) => {}
            Some(State::Closing { fin_seen, .. }) => self.finish_closing(id, fin_seen),
            Some(State::HalfClosing { fin_read }) => self.send_fin(id, fin_read),
            Some(_) => self.close_if_idle_in_shutdown(id),
            None => {}
        }
    }

    /// A half-close's output is written: send FIN, keep reading.
    fn send_fin(&mut self, id: ConnId, fin_read: bool) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        match socket.shutdown(std::net::Shutdown::Write) {
            Ok(()) => conn.set_state(State::HalfClosed { fin_read }, "output flushed, FIN sent"),
            Err(e) => {
                debug!("conn {id}: shutdown(Write) failed: {e}");
                self.core.close_now(id, CloseReason::from_io(&e));
            }
        }
    }

    /// A close's output is written: if the peer's FIN was seen, the
    /// connection is done; otherwise send our FIN and linger for theirs.
    fn finish_closing(&mut self, id: ConnId, fin_seen: bool) {
        let linger = self.core.config.linger_timeout;
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let reason = conn.close_reason.unwrap_or(CloseReason::ClosedLocally);
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        if fin_seen || socket.shutdown(std::net::Shutdown::Write).is_err() {
            self.core.close_now(id, reason);
            return;
        }
        conn.set_state(State::Lingering, "output flushed, FIN sent");
        self.core.arm_state_timer(id, linger, TimerKind::Linger(id));
        self.discard_input(id);
    }

    /// Lingering: read and drop input until the peer's FIN, so unread bytes
    /// in our receive buffer do not turn our close into a reset. Reads under
    /// the same rule and budget as input (`input.rs`).
    pub(crate) fn discard_input(&mut self, id: ConnId) {
        let mut scratch = std::mem::take(&mut self.core.scratch);
        if scratch.is_empty() {
            // The scratch buffer is lent to `read_input`: this close began in
            // a `data` callback. Reading into an empty buffer would return 0,
            // mistaken for the peer's FIN, and closing with input unread
            // sends a reset that can destroy our reply in flight. Drain on
            // the next turn instead (readiness is kept, so it is queued).
            self.core.scratch = scratch;
            if self.core.conn(id).is_some_and(|c| c.ready.readable) {
                self.core.push_ready(Ready::Conn(id));
            }
            return;
        }
        for _ in 0..self.core.config.read_budget_reads {
            match self.core.read_socket(id, &mut scratch, Purpose::Discard) {
                SocketRead::Bytes(n) => trace!("conn {id}: lingering, discarded {n} bytes"),
                SocketRead::Eof | SocketRead::Failed(_) => {
                    let reason = self.core.conn(id).and_then(|c| c.close_reason);
                    self.core
                        .close_now(id, reason.unwrap_or(CloseReason::ClosedLocally));
                    break;
                }
                SocketRead::Drained | SocketRead::NotRead => break,
                SocketRead::Interrupted => {}
            }
        }
        if self.core.conn(id).is_some_and(|c| c.ready.readable) {
            self.core.push_ready(Ready::Conn(id));
        }
        self.core.scratch = scratch;
    }

    /// Tells the handler about every connection closed since the last call,
    /// handing back its state; queues the slots to be freed.
    pub(crate) fn report_closed(&mut self) {
        while let Some(id) = self.core.unreported.pop_front() {
            let conn = &mut self.core.conns[id.slot()];
            let reason = conn.close_reason.expect("closed connections have a reason");
            let user = conn.user.take();
            self.core.to_free.push(id.slot());
            if let Some(state) = user {
                self.call("closed", |handler, ctx| {
                    handler.closed(ctx, id, state, reason)
                });
            }
        }
    }
}
