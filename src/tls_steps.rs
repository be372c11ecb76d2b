//! The TLS steps of a connection's life: what the loop does differently
//! when a session sits between the socket and the buffers.
//!
//! ```text
//!  socket ──64 KiB read──▶ session.feed ──plaintext──▶ data (input.rs)
//!  write (output.rs) ──plaintext──▶ session.encrypt ──records──▶ staging / queue ──▶ socket
//! ```
//!
//! Everything else is the plain connection's: one registration, the read
//! rule and budget, the vectored queue, flow control, the close sequence.
//! What TLS adds, all here:
//!
//! * **The handshake** is a state of its own (`Handshaking`): records are
//!   read and written, the handler is not told until it completes, a timer
//!   bounds it (`Config::tls_handshake_timeout`), and at most
//!   `Config::max_tls_handshakes` accepted ones run at once: at the cap the
//!   TLS listeners stop accepting until one ends.
//! * **Records rustls makes unasked** (the handshake's flights, session
//!   tickets, a key update, an alert) are queued after every feed.
//! * **The close**: our `close_notify` goes out after the queued output and
//!   before our FIN, on every orderly close, half-close and graceful
//!   shutdown; the peer's `close_notify` counts as its FIN; a TCP EOF
//!   without it is a truncation (`CloseReason::TlsTruncated`).
//! * **A protocol error** (garbage, a downgrade, a failed decryption, a
//!   fatal alert) sends rustls's alert, best effort, and closes with
//!   `CloseReason::TlsError`; nobody else is affected.

use log::{debug, trace, warn};

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::connection::{live, record_mut, Connection};
use crate::handler::Handler;
use crate::loop_state::{LoopState, Ready};
use crate::state::{State, WhenConnected};
use crate::timers::TimerKind;
use crate::tls_session::{ServerSetup, TlsSession};
use crate::token::{ConnId, ListenerId};

/// Whether the handler of `conn` has output waiting that is owed to the
/// peer: plaintext rustls holds until its handshake ends, or (plain TCP)
/// anything queued.
pub(crate) fn handler_output_waiting<S>(conn: &Connection<S>) -> bool {
    match &conn.tls {
        Some(tls) => tls.plaintext_waiting() > 0,
        None => !conn.output.is_empty(),
    }
}

/// Plaintext `conn`'s handler wrote during a TLS handshake, which rustls
/// holds until it has keys: counted with the queued output by the output
/// cap and flow control. 0 for plain TCP (at compile time without `tls`).
#[inline]
pub(crate) fn plaintext_waiting<S>(conn: &Connection<S>) -> usize {
    match &conn.tls {
        Some(tls) if crate::tls_session::ENABLED => tls.plaintext_waiting(),
        _ => 0,
    }
}

/// A connection closing at once (`LoopState::close_now`) for a reason of
/// our own (`close`, a timeout, a limit, a shutdown's deadline) still tells
/// a TLS peer the end is deliberate: a `close_notify` in one best-effort
/// send, if nothing else is queued (a record cut in half on the wire would
/// be corrupt) and the handshake is over. A peer that reset or broke the
/// protocol gets nothing.
pub(crate) fn farewell<S>(conn: &mut Connection<S>, reason: CloseReason, nothing_staged: bool) {
    let ours = matches!(
        reason,
        CloseReason::ClosedLocally
            | CloseReason::IdleTimeout
            | CloseReason::LimitExceeded(_)
            | CloseReason::Shutdown
            | CloseReason::HandlerPanic
    );
    let (Some(tls), Some(socket)) = (conn.tls.as_mut(), conn.socket.as_ref()) else {
        return;
    };
    if !ours || !nothing_staged || !conn.output.is_empty() || tls.is_handshaking() {
        return;
    }
    if !tls.close_notify() {
        return;
    }
    let mut records = Vec::new();
    tls.take_records(&mut records);
    // Best effort by design: the socket closes right after, whatever it took.
    let _ = std::io::Write::write(&mut &*socket, &records);
}

impl<H: Handler> LoopState<H> {
    /// Moves the records `id`'s session has ready into its output: into the
    /// staging buffer while its own `data` callback runs with an empty
    /// queue (as plain bytes would go), else onto its queue. Counted like
    /// any queued output.
    pub(crate) fn queue_tls_records(&mut self, id: ConnId) {
        let stage = self.current == Some(id);
        let Some(conn) = live(&mut self.conns, id) else {
            return;
        };
        let Some(tls) = conn.tls.as_mut() else {
            return;
        };
        let queued = if stage && conn.output.is_empty() {
            tls.take_records(&mut self.staging)
        } else {
            let mut records = Vec::new();
            let queued = tls.take_records(&mut records);
            if queued > 0 {
                conn.output.push_vec(records);
            }
            queued
        };
        if queued > 0 {
            self.stats.queued_output_bytes += queued as u64;
            self.mark_dirty(id);
        }
    }

    /// Starts an accepted connection's TLS session: the connection is
    /// `Handshaking`, counted against the cap, and timed. The handler hears
    /// of it only when the handshake completes.
    pub(crate) fn start_server_session(&mut self, id: ConnId, setup: &ServerSetup) -> bool {
        let mut session = match TlsSession::accept(setup) {
            Ok(session) => session,
            Err(e) => {
                debug!("conn {id}: cannot start a TLS session: {e}");
                self.close_now(id, CloseReason::TlsError);
                return false;
            }
        };
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        session.set_counted_in_progress(true);
        conn.tls = Some(session);
        self.stats.tls_handshakes_in_progress += 1;
        let timeout = self.config.tls_handshake_timeout;
        self.arm_state_timer(id, timeout, TimerKind::TlsHandshake(id));
        true
    }

    /// Whether a TLS listener must wait before accepting: the cap on
    /// handshakes in progress is reached. Remembers to wake the listeners
    /// when one ends.
    pub(crate) fn tls_accept_must_wait(&mut self) -> bool {
        let full = self.stats.tls_handshakes_in_progress >= self.config.max_tls_handshakes as u64;
        if full && !self.tls_accept_held {
            debug!(
                "TLS listeners wait: {} handshakes in progress",
                self.config.max_tls_handshakes
            );
            self.tls_accept_held = true;
        }
        full
    }

    /// Book-keeping for a handshake that ended, completed or not: it no
    /// longer counts against the cap, and listeners held by the cap resume
    /// (no new edge would come for the connections waiting in the backlog).
    pub(crate) fn handshake_ended(&mut self, id: ConnId) {
        let Some(conn) = record_mut(&mut self.conns, id) else {
            return;
        };
        let Some(tls) = conn.tls.as_mut() else {
            return;
        };
        if !tls.counted_in_progress() {
            return;
        }
        tls.set_counted_in_progress(false);
        self.stats.tls_handshakes_in_progress -= 1;
        if self.tls_accept_held {
            self.tls_accept_held = false;
            for index in 0..self.listeners.len() {
                let is_tls = matches!(&self.listeners[index], Some(l) if l.tls.is_some());
                if is_tls {
                    self.push_ready(Ready::Listener(index));
                }
            }
        }
    }

    /// Queues our `close_notify` once, ahead of the FIN, and sends what the
    /// socket takes. Returns whether the close must wait for it to leave
    /// (the next writable edge flushes it and comes back here).
    pub(crate) fn send_close_notify(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.conn_mut(id) else {
            return true;
        };
        let Some(tls) = conn.tls.as_mut() else {
            return false;
        };
        if !tls.close_notify() {
            return false;
        }
        trace!("conn {id}: close_notify queued");
        self.queue_tls_records(id);
        // Within the connection's own callback the record went to the
        // staging buffer; out of it first, in order.
        self.unstage(id);
        self.send_queued(id);
        self.conn(id).map_or(true, |c| !c.output.is_empty())
    }
}

impl<H: Handler> Loop<'_, H> {
    /// The ciphertext of one read: through the session, then whatever
    /// rustls answers goes out, a completed handshake tells the handler,
    /// the plaintext goes to `data`, and a `close_notify` counts as the
    /// peer's FIN.
    pub(crate) fn tls_input(&mut self, id: ConnId, ciphertext: &[u8]) {
        let mut plaintext = std::mem::take(&mut self.core.plaintext);
        let fed = match live(&mut self.core.conns, id).and_then(|c| c.tls.as_mut()) {
            Some(tls) => tls.feed(ciphertext, &mut plaintext),
            None => {
                self.core.plaintext = plaintext;
                return;
            }
        };
        self.core.queue_tls_records(id);
        match fed {
            Err(e) => {
                // A client that cannot talk to its server is the
                // embedder's own problem and says why at warn level; a
                // server's bad client is one of many, at debug level.
                match self.core.conn(id) {
                    Some(c) if c.listener.is_none() => {
                        warn!("conn {id}: TLS with {} failed: {e}", c.peer)
                    }
                    _ => debug!("conn {id}: TLS error: {e}"),
                }
                // rustls's alert tells the peer why; best effort, as the
                // connection ends now whatever the socket takes.
                self.core.send_queued(id);
                self.core.close_now(id, CloseReason::TlsError);
            }
            Ok(fed) => {
                let handshake_done = self.core.conn(id).is_some_and(|c| {
                    matches!(c.state, State::Handshaking { .. })
                        && c.tls.as_ref().is_some_and(|t| !t.is_handshaking())
                });
                if handshake_done {
                    self.handshake_done(id);
                }
                if !plaintext.is_empty() {
                    self.deliver_or_keep(id, &plaintext);
                }
                self.flush(id);
                if fed.peer_closed {
                    trace!("conn {id}: close_notify received");
                    if self
                        .core
                        .conn(id)
                        .is_some_and(|c| matches!(c.state, State::Handshaking { .. }))
                    {
                        // The peer gave up its handshake politely.
                        self.core.close_now(id, CloseReason::PeerClosed);
                    } else {
                        self.peer_closed(id);
                    }
                }
            }
        }
        plaintext.clear();
        self.core.plaintext = plaintext;
    }

    /// The TCP stream of a TLS connection ended. After the peer's
    /// `close_notify` that is the expected end (already handled as its
    /// FIN); without one, the peer's data may have been cut short.
    pub(crate) fn tls_eof(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        conn.ready.readable = false;
        // A close_notify was handled when it arrived (`tls_input`): as the
        // peer's FIN, or mid-handshake by closing, so the connection is
        // past its handshake here.
        let clean = conn
            .tls
            .as_ref()
            .is_some_and(|t| t.peer_sent_close_notify());
        if clean {
            return;
        }
        debug!("conn {id}: TCP EOF without close_notify");
        self.core.stats.tls_truncations += 1;
        self.core.close_now(id, CloseReason::TlsTruncated);
    }

    /// The handshake completed: the connection opens, and the handler hears
    /// of it (`opened` if accepted, `connected` if outbound).
    fn handshake_done(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let State::Handshaking { when_connected } = conn.state else {
            return;
        };
        conn.set_state(State::Open, "TLS handshake done");
        let (peer, listener) = (conn.peer, conn.listener);
        if let Some(tls) = conn.tls.as_ref() {
            debug!("conn {id}: TLS handshake done: {}", tls.summary());
        }
        if let Some(timer) = conn.state_timer.take() {
            self.core.timers.cancel(timer);
        }
        self.core.stats.tls_handshakes += 1;
        self.core.handshake_ended(id);
        match listener {
            Some(ListenerId(_)) => {
                debug_assert_eq!(when_connected, WhenConnected::Open);
                self.call_opened(id, peer);
            }
            None => self.open_outbound(id, when_connected),
        }
    }
}
