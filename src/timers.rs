//! Timers: what the loop arms, and what each does when it fires.
//!
//! Every timer, the loop's own and the handler's, lives in one hashed timing
//! wheel (`timer_wheel.rs`) with a [`TimerKind`] saying why it was armed.
//! They fire in the timer phase of the turn, one by one from
//! `LoopState::firing`, where a callback cancelling a timer due in this same
//! turn can still reach it. Reads only stamp `last_active`; an idle timer
//! re-arms itself for the remainder when it fires, so traffic costs no timer
//! work at all.

use std::time::{Duration, Instant};

use log::{debug, trace};

use crate::callbacks::Loop;
use crate::close_reason::{CloseReason, Limit};
use crate::handler::{Fired, Handler};
use crate::loop_state::LoopState;
use crate::state::State;
use crate::timer_wheel::TimerId;
use crate::token::ConnId;

/// Why a timer was armed; what to do when it fires.
#[derive(Clone, Copy, Debug)]
pub(crate) enum TimerKind {
    /// Check the connection's idle time; close it or re-arm for the rest.
    Idle(ConnId),
    /// An outbound connect took too long.
    ConnectTimeout(ConnId),
    /// The PROXY protocol header took too long.
    ProxyHeader(ConnId),
    /// A TLS handshake took too long.
    TlsHandshake(ConnId),
    /// A lingering close waited long enough for the peer's FIN.
    Linger(ConnId),
    /// Queued output stayed above the soft limit for its duration.
    SoftLimit(ConnId),
    /// Connections held by their fan-out have waited long enough.
    FanoutHold,
    /// Accepting paused after `EMFILE`; try again.
    AcceptRetry,
    /// The graceful shutdown's deadline: force-close what remains.
    ShutdownDeadline,
    /// A handler timer, possibly bound to a connection.
    Handler {
        /// Connection the timer is bound to.
        conn: Option<ConnId>,
        /// Caller's tag.
        tag: u64,
    },
}

impl<H: Handler> LoopState<H> {
    /// Arms (or re-arms) the idle timer of `id` for `deadline`.
    fn arm_idle_timer(&mut self, id: ConnId, deadline: Instant) {
        let timer = self.timers.insert(deadline, TimerKind::Idle(id));
        if let Some(conn) = self.conn_mut(id) {
            conn.idle_timer = Some(timer);
        }
    }

    /// Sets the idle limit of `id`, replacing the old timer.
    pub(crate) fn set_idle_timeout(&mut self, id: ConnId, timeout: Option<Duration>) {
        let now = self.now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.idle_timeout = timeout;
        conn.last_active = now;
        let old = conn.idle_timer.take();
        if let Some(old) = old {
            self.timers.cancel(old);
        }
        if let Some(timeout) = timeout {
            self.arm_idle_timer(id, now + timeout);
        }
    }

    /// Arms the connection's state timer (connect timeout or linger).
    pub(crate) fn arm_state_timer(&mut self, id: ConnId, after: Duration, kind: TimerKind) {
        let timer = self.timers.insert(self.now + after, kind);
        if let Some(conn) = self.conn_mut(id) {
            if let Some(old) = conn.state_timer.replace(timer) {
                self.timers.cancel(old);
            }
        }
    }

    /// Starts a handler timer, bound to `conn` if given.
    pub(crate) fn start_handler_timer(
        &mut self,
        after: Duration,
        conn: Option<ConnId>,
        tag: u64,
    ) -> TimerId {
        self.timers
            .insert(self.now + after, TimerKind::Handler { conn, tag })
    }

    /// Cancels a handler timer, even one already expired this turn whose
    /// callback has not run yet (it then never runs).
    pub(crate) fn cancel_timer(&mut self, timer: TimerId) -> bool {
        if self.timers.cancel(timer).is_some() {
            return true;
        }
        match self.firing.iter().position(|&(id, _, _)| id == timer) {
            Some(index) => {
                self.firing.remove(index);
                true
            }
            None => false,
        }
    }

    /// The idle timer of `id` fired: close it if it was idle for its whole
    /// limit, or re-arm for the remainder.
    fn idle_timer_fired(&mut self, id: ConnId) {
        let now = self.now;
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        conn.idle_timer = None;
        let Some(limit) = conn.idle_timeout else {
            return;
        };
        let deadline = conn.last_active + limit;
        if deadline <= now {
            debug!("conn {id}: idle for {limit:?}");
            self.close_now(id, CloseReason::IdleTimeout);
        } else {
            self.arm_idle_timer(id, deadline);
        }
    }

    /// The soft-limit timer of `id` fired. It is cancelled when the queue
    /// falls back under the soft limit, so firing means it stayed above for
    /// the whole duration.
    fn soft_limit_timer_fired(&mut self, id: ConnId) {
        let Some(conn) = crate::connection::live(&mut self.conns, id) else {
            return;
        };
        conn.soft_limit_timer = None;
        let queued = conn.output.len();
        if conn
            .limits_in_force(&self.limits)
            .soft_output
            .is_some_and(|soft| queued > soft.bytes)
        {
            debug!("conn {id}: {queued} bytes queued, above the soft limit for too long");
            self.close_now(id, CloseReason::LimitExceeded(Limit::Output));
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Does what `kind` was armed for.
    pub(crate) fn fire_timer(&mut self, timer: TimerId, kind: TimerKind) {
        match kind {
            TimerKind::Idle(id) => self.core.idle_timer_fired(id),
            TimerKind::ConnectTimeout(id) => {
                if let Some(State::Connecting { .. }) = self.core.conn(id).map(|c| c.state) {
                    self.core.close_now(id, CloseReason::ConnectTimeout);
                }
            }
            TimerKind::ProxyHeader(id) => {
                if let Some(State::AwaitingProxyHeader) = self.core.conn(id).map(|c| c.state) {
                    debug!("conn {id}: no PROXY header in time");
                    self.core.close_now(id, CloseReason::ProxyHeaderTimeout);
                }
            }
            TimerKind::TlsHandshake(id) => {
                if let Some(State::Handshaking { .. }) = self.core.conn(id).map(|c| c.state) {
                    debug!("conn {id}: TLS handshake timed out");
                    self.core.close_now(id, CloseReason::TlsHandshakeTimeout);
                }
            }
            TimerKind::Linger(id) => {
                if let Some(conn) = self.core.conn(id) {
                    let reason = conn.close_reason.unwrap_or(CloseReason::ClosedLocally);
                    trace!("conn {id}: linger timeout");
                    self.core.close_now(id, reason);
                }
            }
            TimerKind::SoftLimit(id) => self.core.soft_limit_timer_fired(id),
            TimerKind::FanoutHold => self.core.fanout_hold_expired(),
            TimerKind::AcceptRetry => self.core.resume_accepting(),
            TimerKind::ShutdownDeadline => self.core.shutdown_deadline_passed(),
            TimerKind::Handler { conn, tag } => {
                if conn.is_some_and(|id| self.core.conn(id).is_none()) {
                    return;
                }
                self.core.stats.timers_fired += 1;
                let fired = Fired { timer, conn, tag };
                let outcome = self.call("timer", |handler, ctx| handler.timer(ctx, fired));
                if let (None, Some(id)) = (outcome, conn) {
                    self.core.close_now(id, CloseReason::HandlerPanic);
                }
            }
        }
    }
}
