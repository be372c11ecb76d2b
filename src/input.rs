//! Reading: from the socket into the handler's `data` callback, until the
//! peer's FIN.
//!
//! **The rule.** Under edge-triggered polling an event says "something
//! arrived" once; the loop must read until `read` returns `WouldBlock`, or
//! no event will come for what is left. So a connection's `readable` flag,
//! set by an event, is cleared only by `WouldBlock`. Two things bound the
//! loop so one busy peer cannot starve the others: a per-turn budget of
//! reads and bytes, after which the connection goes on the ready queue with
//! its flag still set (no new edge will come, so the loop must remember),
//! and flow control (the handler paused reading, its output is
//! backpressured, or its fan-out is held), which stops reading with the flag
//! kept, to be resumed by whoever lets go.
//!
//! **The optimisation**, clearly marked in [`LoopState::read_socket`]: a
//! read that returns fewer bytes than asked for drained the socket, and
//! Linux signals a new edge for anything that arrives later, so the read
//! that would only say `WouldBlock` is skipped. Measured on the echo
//! benchmark (64-byte messages, 100 connections): 1.0 `read` per echo
//! instead of 1.6, and about 105 instructions fewer (docs/benchmarks.md,
//! "The two optimisations").
//!
//! Every read lands in one shared 64 KiB buffer (`LoopState::scratch`);
//! only what the handler leaves unconsumed is copied into the connection's
//! own input buffer.

use std::io::{self, Read};

use log::{debug, trace};

use crate::callbacks::Loop;
use crate::close_reason::{CloseReason, Limit};
use crate::connection::{live, Connection};
use crate::handler::Handler;
use crate::loop_state::{LoopState, Ready};
use crate::state::State;
use crate::token::ConnId;

/// What one `read` system call on a connection found.
pub(crate) enum SocketRead {
    /// This many bytes, now at the start of the buffer.
    Bytes(usize),
    /// `read() == 0`: the peer sent FIN.
    Eof,
    /// `WouldBlock`: the socket is drained; `readable` is cleared.
    Drained,
    /// A signal interrupted the call before anything was read: try again.
    Interrupted,
    /// The read failed (reset, ...): the connection must close.
    Failed(io::Error),
    /// The connection is closed, or not to be read now (see
    /// [`Purpose`]): nothing was read.
    NotRead,
}

/// Why a connection's socket is read, which decides whether it is read now.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// Input for the handler: only while the state reads input, an event
    /// said readable, and flow control holds nothing back (`drained` owed
    /// means backpressure ended inside this step: `drained` runs first,
    /// from the ready queue).
    Input,
    /// A lingering close discarding what the peer still sends: whenever an
    /// event said readable.
    Discard,
}

impl<H: Handler> LoopState<H> {
    /// One `read` of `id`'s socket into `buffer`, counted, if `purpose`
    /// wants one now. The one place a connection's socket is read, for
    /// input and for a lingering close.
    // Inlined by force: it runs twice per message (the read, and the check
    // that ends the loop), and a call costs more than the check (measured
    // with scripts/measure_echo.sh).
    #[inline(always)]
    pub(crate) fn read_socket(
        &mut self,
        id: ConnId,
        buffer: &mut [u8],
        purpose: Purpose,
    ) -> SocketRead {
        let Some(conn) = live(&mut self.conns, id) else {
            return SocketRead::NotRead;
        };
        let wanted = match purpose {
            Purpose::Input => conn.wants_input_read(),
            Purpose::Discard => conn.ready.readable,
        };
        if !wanted {
            return SocketRead::NotRead;
        }
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        self.stats.read_syscalls += 1;
        match (&*socket).read(buffer) {
            Ok(0) => SocketRead::Eof,
            Ok(n) => {
                self.stats.bytes_in += n as u64;
                conn.bytes_in += n as u64;
                conn.last_active = self.now;
                // OPTIMISATION (the short-read shortcut; the rule alone is
                // correct without it): a read of fewer bytes than asked for
                // drained the socket at that moment, and Linux signals a new
                // edge for anything that arrives later, so `readable` is
                // cleared now instead of by the `WouldBlock` of one more
                // `read`. Saves 0.6 `read` calls and about 105 instructions
                // per echo (docs/benchmarks.md, "The two optimisations").
                // Not when the event also announced the FIN: then reading
                // goes on to see `read() == 0`, for which no edge would come.
                if n < buffer.len() && !conn.ready.read_closed_hint {
                    conn.ready.readable = false;
                }
                SocketRead::Bytes(n)
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                conn.ready.readable = false;
                self.stats.would_blocks += 1;
                SocketRead::Drained
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => SocketRead::Interrupted,
            Err(e) => SocketRead::Failed(e),
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Reads until `WouldBlock`, the peer's FIN, flow control or the budget,
    /// handing each read to the handler and flushing what it wrote.
    pub(crate) fn read_input(&mut self, id: ConnId) {
        let mut scratch = std::mem::take(&mut self.core.scratch);
        let config = &self.core.config;
        let (budget_reads, budget_bytes) = (config.read_budget_reads, config.read_budget_bytes);
        let (mut reads, mut bytes) = (0, 0);
        // TLS: what is read is ciphertext, for the session (`tls_steps.rs`).
        let tls =
            crate::tls_session::ENABLED && self.core.conn(id).is_some_and(|c| c.tls.is_some());
        loop {
            if reads >= budget_reads || bytes >= budget_bytes {
                if self.core.conn(id).is_some_and(Connection::wants_input_read) {
                    trace!("conn {id}: read budget used ({reads} reads, {bytes} bytes), yielding");
                    self.core.stats.budget_yields += 1;
                    self.core.push_ready(Ready::Conn(id));
                }
                break;
            }
            match self.core.read_socket(id, &mut scratch, Purpose::Input) {
                SocketRead::Bytes(n) => {
                    reads += 1;
                    bytes += n;
                    if tls {
                        self.tls_input(id, &scratch[..n]);
                    } else {
                        self.deliver(id, &scratch[..n]);
                        self.flush(id);
                    }
                    if self.held_by_fanout(id) {
                        break;
                    }
                }
                SocketRead::Eof if tls => {
                    self.tls_eof(id);
                    break;
                }
                SocketRead::Eof => {
                    self.peer_closed(id);
                    break;
                }
                SocketRead::Drained | SocketRead::NotRead => break,
                SocketRead::Interrupted => {}
                SocketRead::Failed(e) => {
                    debug!("conn {id}: read failed: {e}");
                    self.core.close_now(id, CloseReason::from_io(&e));
                    break;
                }
            }
        }
        self.core.scratch = scratch;
        // A full read leaves `readable` set, so the flush after it cannot
        // call the connection idle; if the next read then finds the socket
        // drained, this is the moment it becomes idle, and no later flush
        // (there is nothing left to write) would notice.
        self.close_if_idle_in_shutdown(id);
    }

    /// Hands `fresh` bytes (plus any leftovers) to the handler and keeps what
    /// it did not consume. With `fresh` empty, offers the leftovers again.
    #[inline]
    pub(crate) fn deliver(&mut self, id: ConnId, fresh: &[u8]) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let mut input = std::mem::take(&mut conn.input);
        let had_leftovers = !input.is_empty();
        if had_leftovers {
            input.extend(fresh);
        }
        let offered: &[u8] = if had_leftovers {
            input.unconsumed()
        } else {
            fresh
        };
        self.core.current = Some(id);
        self.core.fanout.blocked = false;
        self.core.stats.data_calls += 1;
        let consumed = self.call_with_state(id, "data", |handler, ctx, state| {
            handler.data(ctx, id, state, offered)
        });
        self.core.unstage(id);
        self.core.current = None;
        let Some(consumed) = consumed else {
            return;
        };
        let consumed = consumed.min(offered.len());
        if had_leftovers {
            input.consume(consumed);
        } else if consumed < fresh.len() {
            input.extend(&fresh[consumed..]);
        }
        let core = &mut *self.core;
        let Some(conn) = live(&mut core.conns, id) else {
            return;
        };
        conn.input = input;
        let over_cap = !conn.input.is_empty()
            && conn.input.len() > conn.limits_in_force(&core.limits).max_input;
        if over_cap {
            debug!(
                "conn {id}: {} unconsumed input bytes pass the input cap",
                conn.input.len()
            );
            self.core
                .close_now(id, CloseReason::LimitExceeded(Limit::Input));
        }
    }

    /// Hands `bytes` (read before the handler was told of the connection:
    /// decrypted with a TLS handshake's last flight, or following a PROXY
    /// header) to `data`, unless flow control holds the connection: then
    /// they wait with the unconsumed input, offered when flow control lets
    /// go, as bytes still in the socket would. (`opened` or `connected`
    /// may have paused reading.)
    pub(crate) fn deliver_or_keep(&mut self, id: ConnId, bytes: &[u8]) {
        let core = &mut *self.core;
        let Some(conn) = live(&mut core.conns, id) else {
            return;
        };
        if conn.may_offer() {
            self.deliver(id, bytes);
            return;
        }
        if !conn.state.takes_input() {
            return;
        }
        conn.input.extend(bytes);
        conn.owed.offer = true;
        if conn.input.len() > conn.limits_in_force(&core.limits).max_input {
            debug!("conn {id}: held input passes the input cap");
            self.core
                .close_now(id, CloseReason::LimitExceeded(Limit::Input));
        }
    }

    /// The peer sent FIN: no more reads. What it sent before is offered
    /// once more, then the handler hears of the FIN (`finish_input`).
    pub(crate) fn peer_closed(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        conn.ready.readable = false;
        let fin_read = match conn.state {
            State::Open => State::ReadClosed {
                read_closed_owed: true,
            },
            State::HalfClosing { .. } => State::HalfClosing { fin_read: true },
            State::HalfClosed { .. } => State::HalfClosed { fin_read: true },
            _ => return,
        };
        conn.set_state(fin_read, "peer sent FIN");
        self.finish_input(id);
    }

    /// After the peer's FIN: offers the unconsumed input until the handler
    /// takes all of it or makes no progress (a message the FIN cut short),
    /// then calls `read_closed`. Flow control may hold the offer back; the
    /// drain or `resume_reading` that lets go of it calls this again.
    pub(crate) fn finish_input(&mut self, id: ConnId) {
        loop {
            let Some(conn) = self.core.conn(id) else {
                return;
            };
            if conn.input.is_empty() || !conn.state.takes_input() {
                break;
            }
            if !conn.may_offer() {
                return;
            }
            let before = conn.input.len();
            self.deliver(id, &[]);
            self.flush(id);
            match self.core.conn(id) {
                None => return,
                // Stopped by flow control, not by a message the FIN cut
                // short: the drain (or resume) comes back here.
                Some(c) if !c.may_offer() || c.owed.drained => return,
                Some(c) if c.input.len() == before => break,
                Some(_) => {}
            }
        }
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if let State::ReadClosed { .. } = conn.state {
            conn.set_state(
                State::ReadClosed {
                    read_closed_owed: false,
                },
                "read_closed runs",
            );
        }
        self.call_with_state(id, "read_closed", |handler, ctx, state| {
            handler.read_closed(ctx, id, state)
        });
        // A half-closed connection has now ended in both directions.
        match self.core.conn(id).map(|c| c.state) {
            Some(State::HalfClosed { .. }) => self.core.close_now(id, CloseReason::PeerClosed),
            Some(State::HalfClosing { .. }) => {
                self.core.close_after_flush(id, CloseReason::PeerClosed)
            }
            _ => {}
        }
        self.flush(id);
    }
}
