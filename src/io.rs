//! The I/O paths of one connection: what happens when it is ready.
//!
//! [`Driver::drive`] is the connection's step function: given the readiness
//! flags its events set, it finishes a connect, flushes output, reads input
//! and hands it to the handler, or drains a lingering close. The rules that
//! keep edge-triggered readiness correct live here:
//!
//! * a flag set by an event is cleared only by `WouldBlock` or a short
//!   read/write (the socket was drained at that moment; Linux promises a new
//!   edge for anything that arrives later);
//! * a connection that runs out of its per-turn budget with the flag still
//!   set goes on the ready queue, because no new edge will come for it;
//! * output produced by a callback is written as soon as the callback returns.
//!
//! Callbacks run through [`Driver::call`], which catches panics so that one
//! failing connection never takes down the loop.

use std::io::{self, Read};
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use log::{debug, error, trace, warn};
use mio::{Interest, Token};

use crate::connection::AfterConnect;
use crate::connection::Connection;
use crate::context::Context;
use crate::core::{limits_of, live, Core, Ready, TimerKind};
use crate::handler::Handler;
use crate::listener;
use crate::state::{CloseReason, ConnState, Limit};
use crate::token::{ConnId, ListenerId};

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` on Linux: out of descriptors or
/// kernel memory. Accepting pauses and resumes from a timer.
const RESOURCE_ERRORS: [i32; 4] = [24, 23, 105, 12];

/// The loop's state and its handler, borrowed together for one step.
pub(crate) struct Driver<'a, H: Handler> {
    /// The loop's state.
    pub(crate) core: &'a mut Core<H>,
    /// The protocol.
    pub(crate) handler: &'a mut H,
}

impl<H: Handler> Driver<'_, H> {
    /// Runs a handler callback with a fresh `Context`, catching a panic.
    /// `None` means it panicked (already counted and logged).
    pub(crate) fn call<R>(
        &mut self,
        what: &str,
        callback: impl FnOnce(&mut H, &mut Context<'_, H>) -> R,
    ) -> Option<R> {
        let core = &mut *self.core;
        let handler = &mut *self.handler;
        let result = catch_unwind(AssertUnwindSafe(|| {
            let mut ctx = Context { core };
            callback(handler, &mut ctx)
        }));
        match result {
            Ok(value) => Some(value),
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".into());
                error!("handler panicked in {what}: {message}");
                self.core.stats.handler_panics += 1;
                None
            }
        }
    }

    /// Runs a connection callback with the connection's state lent to it.
    /// A panic closes the connection.
    fn call_with_state<R>(
        &mut self,
        id: ConnId,
        what: &str,
        callback: impl FnOnce(&mut H, &mut Context<'_, H>, &mut H::State) -> R,
    ) -> Option<R> {
        let mut user = self.core.conn_mut(id)?.user.take()?;
        let result = self.call(what, |handler, ctx| callback(handler, ctx, &mut user));
        if let Some(conn) = self.core.conns.get_mut(id.slot()) {
            conn.user = Some(user);
        }
        if result.is_none() {
            self.core.close_now(id, CloseReason::HandlerPanic);
        }
        result
    }

    /// One step of a connection's life, driven by its readiness flags and
    /// by what flow control owes it.
    pub(crate) fn drive(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        match conn.state {
            ConnState::Connecting => {
                if conn.writable {
                    self.finish_connect(id);
                }
            }
            ConnState::Open
            | ConnState::ReadClosed
            | ConnState::HalfClosing
            | ConnState::HalfClosed
            | ConnState::Closing => {
                let mut owed = conn.owes_resume();
                if conn.writable && !conn.output.is_empty() {
                    self.flush(id);
                    // The flush may have let go of backpressure: `drained`
                    // runs before anything more is read.
                    owed = self.core.conn(id).is_some_and(Connection::owes_resume);
                }
                if owed {
                    self.resume_input(id);
                }
                self.read_input(id);
                self.collect_error(id);
            }
            ConnState::Lingering => self.discard_input(id),
            ConnState::Closed => {}
        }
    }

    /// Flow control let go of `id` (its output drained, or the handler
    /// resumed or woke it): run `drained`, offer the unconsumed input again,
    /// and finish a FIN that waited for that input.
    fn resume_input(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if std::mem::take(&mut conn.drained_pending) {
            self.call_with_state(id, "drained", |handler, ctx, state| {
                handler.drained(ctx, id, state)
            });
            self.flush(id);
        }
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if conn.read_closed_pending {
            conn.offer_pending = false;
            self.finish_input(id);
        } else if conn.may_offer() && std::mem::take(&mut conn.offer_pending) {
            self.deliver(id, &[]);
            self.flush(id);
            // An offer fans out like a read: held the same way.
            if std::mem::take(&mut self.core.fanout.blocked) && self.core.hold_for_fanout(id) {
                self.core.stats.fanout_yields += 1;
            }
        }
    }

    /// Reads until `WouldBlock`, a short read, flow control or the budget,
    /// handing each read to the handler and flushing what it wrote.
    fn read_input(&mut self, id: ConnId) {
        let mut scratch = std::mem::take(&mut self.core.scratch);
        let (budget_reads, budget_bytes) = (
            self.core.config.read_budget_reads,
            self.core.config.read_budget_bytes,
        );
        let (mut reads, mut bytes) = (0, 0);
        loop {
            let core = &mut *self.core;
            let Some(conn) = live(&mut core.conns, id) else {
                break;
            };
            // Paused or backpressured: the connection is skipped with no
            // system call; a drain or `resume_reading` puts it on the ready
            // queue again, with its `readable` flag intact.
            // `drained_pending`: backpressure ended inside this step (a
            // write-through drained the queue); the connection is on the
            // ready queue, where `drained` runs before it reads again.
            if !conn.state.reads_input()
                || !conn.readable
                || !conn.may_offer()
                || conn.drained_pending
            {
                break;
            }
            if reads >= budget_reads || bytes >= budget_bytes {
                trace!("conn {id}: read budget used ({reads} reads, {bytes} bytes), yielding");
                core.stats.budget_yields += 1;
                core.push_ready(Ready::Conn(id));
                break;
            }
            let socket = conn.socket.as_ref().expect("open connection has a socket");
            core.stats.read_syscalls += 1;
            match (&*socket).read(&mut scratch) {
                Ok(0) => {
                    self.peer_closed(id);
                    break;
                }
                Ok(n) => {
                    reads += 1;
                    bytes += n;
                    conn.last_active = core.now;
                    // A short read drained the socket: Linux will signal a new
                    // edge for anything that arrives later, so skip the read
                    // that would only return WouldBlock. Unless the event also
                    // announced the FIN: then read on to see `read() == 0`.
                    if n < scratch.len() && !conn.read_closed_hint {
                        conn.readable = false;
                    }
                    core.stats.bytes_in += n as u64;
                    self.deliver(id, &scratch[..n]);
                    self.flush(id);
                    if std::mem::take(&mut self.core.fanout.blocked)
                        && self.core.hold_for_fanout(id)
                    {
                        // What this read fanned out left a connection that
                        // is still taking bytes above high water: read no
                        // more until it drains, so a reader that keeps up is
                        // never outrun (at most `Config::fanout_hold`; see fanout.rs).
                        trace!("conn {id}: fan-out above high water, holding");
                        self.core.stats.fanout_yields += 1;
                        break;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    core.stats.would_blocks += 1;
                    break;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    debug!("conn {id}: read failed: {e}");
                    core.close_now(id, CloseReason::from_io(&e));
                    break;
                }
            }
        }
        self.core.scratch = scratch;
        // A full read leaves `readable` set, so the flush after it cannot
        // call the connection idle; if the next read then finds the socket
        // drained, this is the moment it becomes idle, and no later flush
        // (there is nothing left to write) would notice. Without this check
        // a shutdown left such a connection open until its deadline
        // (tests/shutdown.rs, drained read during shutdown).
        if self.core.is_shutting_down() {
            self.close_if_idle_in_shutdown(id);
        }
    }

    /// A connection that does not read (the peer sent FIN, or flow control
    /// holds it) never makes the system call that would report a reset: the
    /// peer's RST after its FIN (`EPIPE` in CLOSE_WAIT) went unnoticed and the
    /// connection stayed open for good. When an event reported an error,
    /// fetch it with `SO_ERROR` and close.
    fn collect_error(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if !conn.error_hint || (conn.state.reads_input() && conn.may_offer()) {
            return;
        }
        conn.error_hint = false;
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        if let Ok(Some(e)) | Err(e) = socket.take_error() {
            debug!("conn {id}: socket error while not reading: {e}");
            self.core.close_now(id, CloseReason::from_io(&e));
        }
    }

    /// Hands `fresh` bytes (plus any leftovers) to the handler and keeps what
    /// it did not consume. With `fresh` empty, offers the leftovers again.
    #[inline]
    fn deliver(&mut self, id: ConnId, fresh: &[u8]) {
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
        let over_cap =
            !conn.input.is_empty() && conn.input.len() > limits_of(conn, &core.limits).max_input;
        if over_cap {
            debug!(
                "conn {id}: {} unconsumed input bytes pass the input cap",
                conn.input.len()
            );
            self.core
                .close_now(id, CloseReason::LimitExceeded(Limit::Input));
        }
    }

    /// The peer sent FIN: no more reads. What it sent before is offered
    /// once more, then the handler hears of the FIN (`finish_input`).
    fn peer_closed(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        conn.readable = false;
        conn.close_reason = Some(CloseReason::PeerClosed);
        conn.read_closed_pending = true;
        if conn.state == ConnState::Open {
            conn.set_state(ConnState::ReadClosed, "peer sent FIN");
        }
        self.finish_input(id);
    }

    /// After the peer's FIN: offers the unconsumed input until the handler
    /// takes all of it or makes no progress (a message the FIN cut short),
    /// then calls `read_closed`. Flow control may hold the offer back; the
    /// drain or `resume_reading` that lets go of it calls this again.
    fn finish_input(&mut self, id: ConnId) {
        loop {
            let Some(conn) = self.core.conn(id) else {
                return;
            };
            if conn.input.is_empty()
                || !conn.state.reads_input() && conn.state != ConnState::ReadClosed
            {
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
                Some(c) if !c.may_offer() || c.drained_pending => return,
                Some(c) if c.input.len() == before => break,
                Some(_) => {}
            }
        }
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        conn.read_closed_pending = false;
        self.call_with_state(id, "read_closed", |handler, ctx, state| {
            handler.read_closed(ctx, id, state)
        });
        // A half-closed connection has now ended in both directions.
        match self.core.conn(id).map(|c| c.state) {
            Some(ConnState::HalfClosed) => self.core.close_now(id, CloseReason::PeerClosed),
            Some(ConnState::HalfClosing) => {
                self.core.close_after_flush(id, CloseReason::PeerClosed)
            }
            _ => {}
        }
        self.flush(id);
    }

    /// Writes queued output (see `Core::send_queued`), then applies the
    /// consequences of an empty queue: finishing a close, sending the FIN
    /// of a half-close, closing an idle connection in a shutdown.
    pub(crate) fn flush(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn(id) else {
            return;
        };
        // Sending, or lifting backpressure or the soft-limit clock, is owed.
        let state = if (conn.writable && !conn.output.is_empty())
            || conn.backpressured
            || conn.soft_limit_timer.is_some()
        {
            self.core.send_queued(id);
            match self.core.conn(id) {
                Some(conn) if conn.output.is_empty() => conn.state,
                _ => return,
            }
        } else if conn.output.is_empty() {
            conn.state
        } else {
            return;
        };
        match state {
            ConnState::Closing => self.finish_closing(id),
            ConnState::HalfClosing => self.send_fin(id),
            _ if self.core.is_shutting_down() => self.close_if_idle_in_shutdown(id),
            _ => {}
        }
    }

    /// A half-close's output is written: send FIN, keep reading.
    fn send_fin(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        match socket.shutdown(std::net::Shutdown::Write) {
            Ok(()) => conn.set_state(ConnState::HalfClosed, "output flushed, FIN sent"),
            Err(e) => {
                debug!("conn {id}: shutdown(Write) failed: {e}");
                self.core.close_now(id, CloseReason::from_io(&e));
            }
        }
    }

    /// During a graceful shutdown, closes `id` (after flush, so with a FIN)
    /// once it is idle: nothing queued either way, no readiness left, and
    /// the handler's [`Handler::is_idle`] agrees.
    /// Called wherever a connection can become idle: after a flush empties
    /// its queue, and after a read finds its socket drained.
    fn close_if_idle_in_shutdown(&mut self, id: ConnId) {
        if !self.core.is_shutting_down() {
            return;
        }
        let Some(conn) = self.core.conn(id) else {
            return;
        };
        let takes_part = matches!(
            conn.state,
            ConnState::Open
                | ConnState::ReadClosed
                | ConnState::HalfClosing
                | ConnState::HalfClosed
        );
        if !takes_part || !conn.is_idle() {
            return;
        }
        // Only now, with the transport idle, ask the protocol. The state is
        // lent out only during a callback, never here; were it missing, the
        // transport's view alone decides.
        let handler = &*self.handler;
        if conn
            .user
            .as_ref()
            .map_or(true, |state| handler.is_idle(state))
        {
            self.core.close_after_flush(id, CloseReason::Shutdown);
            if self.core.conn(id).map(|c| c.state) == Some(ConnState::Closing) {
                self.finish_closing(id);
            }
        }
    }

    /// Everything is written: send our FIN, then wait for the peer's.
    fn finish_closing(&mut self, id: ConnId) {
        let linger = self.core.config.linger_timeout;
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let reason = conn.close_reason.unwrap_or(CloseReason::ClosedLocally);
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        let peer_done = conn.close_reason == Some(CloseReason::PeerClosed);
        if peer_done || socket.shutdown(std::net::Shutdown::Write).is_err() {
            self.core.close_now(id, reason);
            return;
        }
        conn.set_state(ConnState::Lingering, "output flushed, FIN sent");
        self.core.arm_state_timer(id, linger, TimerKind::Linger(id));
        self.discard_input(id);
    }

    /// Lingering: read and drop input until the peer's FIN, so unread bytes
    /// in our receive buffer do not turn our close into a reset.
    fn discard_input(&mut self, id: ConnId) {
        let mut scratch = std::mem::take(&mut self.core.scratch);
        if scratch.is_empty() {
            // The scratch buffer is lent to `read_input`: this close began in
            // a `data` callback. Reading into an empty buffer would return 0,
            // mistaken for the peer's FIN, and closing with input unread
            // sends a reset that can destroy our reply in flight. Drain on
            // the next turn instead (readiness is kept, so it is queued).
            self.core.scratch = scratch;
            if self.core.conn(id).is_some_and(|c| c.readable) {
                self.core.push_ready(Ready::Conn(id));
            }
            return;
        }
        for _ in 0..self.core.config.read_budget_reads {
            let core = &mut *self.core;
            let Some(conn) = live(&mut core.conns, id) else {
                break;
            };
            if !conn.readable {
                break;
            }
            let reason = conn.close_reason.unwrap_or(CloseReason::ClosedLocally);
            let socket = conn.socket.as_ref().expect("open connection has a socket");
            core.stats.read_syscalls += 1;
            match (&*socket).read(&mut scratch) {
                Ok(0) => {
                    core.close_now(id, reason);
                    break;
                }
                Ok(n) => {
                    core.stats.bytes_in += n as u64;
                    trace!("conn {id}: lingering, discarded {n} bytes");
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    conn.readable = false;
                    core.stats.would_blocks += 1;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    core.close_now(id, reason);
                    break;
                }
            }
        }
        if self.core.conn(id).is_some_and(|c| c.readable) {
            self.core.push_ready(Ready::Conn(id));
        }
        self.core.scratch = scratch;
    }

    /// A writable event on a connecting socket: did the connect succeed?
    fn finish_connect(&mut self, id: ConnId) {
        let conn = self.core.conn_mut(id).expect("caller checked");
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        let failure = match socket.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match socket.peer_addr() {
                Ok(_) => None,
                // Spurious wake-up: still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    conn.writable = false;
                    return;
                }
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failure {
            debug!("conn {id}: connect to {} failed: {e}", conn.peer);
            self.core
                .close_now(id, CloseReason::ConnectFailed(e.kind()));
            return;
        }
        conn.set_state(ConnState::Open, "connected");
        let after_connect = std::mem::replace(&mut conn.after_connect, AfterConnect::Open);
        if let Some(timer) = conn.state_timer.take() {
            self.core.timers.cancel(timer);
        }
        self.call_with_state(id, "connected", |handler, ctx, state| {
            handler.connected(ctx, id, state)
        });
        // A half-close or close asked for while connecting, with output
        // queued, was deferred until now (see `Core::close_after_flush`).
        match after_connect {
            AfterConnect::Open => {}
            AfterConnect::ShutdownWrite => self.core.shutdown_write(id),
            AfterConnect::CloseAfterFlush(reason) => self.core.close_after_flush(id, reason),
        }
        self.flush(id);
        // A `wake` or a drain while connecting is owed now.
        if self.core.conn(id).is_some_and(Connection::owes_resume) {
            self.resume_input(id);
        }
        self.read_input(id);
    }

    /// Accepts from listener `index` until `WouldBlock` or the budget.
    pub(crate) fn accept(&mut self, index: usize) {
        if self.core.accept_paused {
            return;
        }
        for _ in 0..self.core.config.accepts_per_turn {
            let Some(Some(listener)) = self.core.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((socket, peer)) => self.admit(index, socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    // Out of descriptors (or another accept failure): with
                    // edge triggering, no new event will come for connections
                    // already waiting, so retrying from a timer is the only
                    // way to resume; retrying now would spin.
                    if RESOURCE_ERRORS.contains(&e.raw_os_error().unwrap_or(0)) {
                        warn!("accept paused: {e}");
                    } else {
                        error!("accept failed, pausing: {e}");
                    }
                    self.core.accept_paused = true;
                    self.core.stats.accept_pauses += 1;
                    let retry = self.core.now + self.core.config.accept_retry_delay;
                    self.core.timers.insert(retry, TimerKind::AcceptRetry);
                    return;
                }
            }
        }
        trace!("listener {index}: accept budget used, yielding");
        self.core.stats.budget_yields += 1;
        self.core.push_ready(Ready::Listener(index));
    }

    /// Takes in one accepted socket, or turns it away over the limit.
    fn admit(&mut self, listener: usize, mut socket: mio::net::TcpStream, peer: SocketAddr) {
        let core = &mut *self.core;
        core.stats.accepted += 1;
        if core.stats.open_connections as usize >= core.config.max_connections {
            core.stats.rejected += 1;
            debug!(
                "rejected {peer}: max_connections ({}) reached",
                core.config.max_connections
            );
            return; // dropping the socket closes it
        }
        if let Err(e) = listener::set_options(&socket, &core.config) {
            debug!("socket options for {peer}: {e}");
        }
        let slot = core.conns.vacant_key();
        if let Err(e) = core.registry.register(
            &mut socket,
            Token(slot),
            Interest::READABLE | Interest::WRITABLE,
        ) {
            warn!("cannot register connection from {peer}: {e}");
            return;
        }
        let id = ConnId {
            index: slot as u32,
            generation: core.new_generation(),
        };
        let mut conn = Connection::new(id, socket, peer, ConnState::Open, core.now, None);
        conn.listener = Some(ListenerId(listener));
        core.conns.insert(conn);
        core.stats.open_connections += 1;
        trace!("conn {id}: accepted from {peer} -> Open");
        if let Some(idle) = core.config.idle_timeout {
            core.set_idle_timeout(id, Some(idle));
        }
        match self.call("opened", |handler, ctx| handler.opened(ctx, id, peer)) {
            Some(state) => {
                // Store the state even if `opened` closed the connection
                // itself: its slot lives until the end of the turn, and
                // `report_closed` hands the state to `closed`, so every
                // `opened` is matched by one `closed`.
                if let Some(conn) = self.core.conns.get_mut(id.slot()) {
                    if conn.id == id {
                        conn.user = Some(state);
                    }
                }
            }
            None => self.core.close_now(id, CloseReason::HandlerPanic),
        }
        self.flush(id);
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

    /// Flushes every connection written to outside its own callback.
    pub(crate) fn flush_dirty(&mut self) {
        while !self.core.dirty.is_empty() {
            let dirty = std::mem::take(&mut self.core.dirty);
            for &id in &dirty {
                if let Some(conn) = self.core.conns.get_mut(id.slot()) {
                    if conn.id == id {
                        conn.in_dirty_list = false;
                    }
                }
                self.flush(id);
            }
            // Reuse the allocation if nothing new was queued meanwhile.
            if self.core.dirty.is_empty() {
                self.core.dirty = dirty;
                self.core.dirty.clear();
            }
        }
    }
}

/// The readiness an event reports, folded into the connection's flags.
pub(crate) fn note_readiness<S>(conn: &mut Connection<S>, event: &mio::event::Event) {
    if event.is_readable() || event.is_read_closed() || event.is_error() {
        conn.readable = true;
    }
    if event.is_read_closed() || event.is_error() {
        conn.read_closed_hint = true;
    }
    if event.is_error() {
        conn.error_hint = true;
    }
    if event.is_writable() || event.is_write_closed() || event.is_error() {
        conn.writable = true;
    }
}
