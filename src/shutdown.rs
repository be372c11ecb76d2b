//! Graceful shutdown: stop accepting, let every connection finish what it
//! is doing, close each one as it becomes idle, and force-close what is left
//! at the deadline.
//!
//! It begins in the turn after it was asked for (`Handle::shutdown` or
//! `Context::shutdown`), between phases, never inside a callback. From then
//! on a connection is closed (after flush, so with a FIN) at the moment it
//! becomes idle: nothing queued either way, no readiness left, and the
//! handler's `is_idle` agrees. Those moments are two: a flush empties its
//! queue (`close.rs`, `output_written`), or a read finds its socket drained
//! (`input.rs`, the end of `read_input`). `run` returns once no connection
//! is left.

use std::time::Duration;

use log::info;

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::handler::Handler;
use crate::loop_state::LoopState;
use crate::state::State;
use crate::timers::TimerKind;
use crate::token::ConnId;

impl<H: Handler> LoopState<H> {
    /// The ids of every connection not yet closed.
    fn open_ids(&self) -> Vec<ConnId> {
        self.conns
            .iter()
            .filter(|(_, c)| !c.is_closed())
            .map(|(_, c)| c.id)
            .collect()
    }

    /// The shutdown's deadline passed: force-close what remains.
    pub(crate) fn shutdown_deadline_passed(&mut self) {
        let remaining = self.open_ids();
        info!(
            "shutdown deadline: force-closing {} connections",
            remaining.len()
        );
        for id in remaining {
            self.close_now(id, CloseReason::Shutdown);
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Begins a graceful shutdown: stop accepting, tell the handler, close
    /// what is idle now. Busy connections close as they become idle.
    pub(crate) fn begin_shutdown(&mut self, grace: Duration) {
        if self.core.is_shutting_down() {
            return;
        }
        info!(
            "graceful shutdown: {} connections, {grace:?} grace",
            self.core.stats.open_connections
        );
        let deadline = self.core.now + grace;
        self.core.shutdown_deadline = Some(deadline);
        self.core
            .timers
            .insert(deadline, TimerKind::ShutdownDeadline);
        self.core.close_listeners();
        self.call("shutdown_started", |handler, ctx| {
            handler.shutdown_started(ctx)
        });
        for id in self.core.open_ids() {
            match self.core.conn(id).map(|c| c.state) {
                Some(
                    State::Connecting { .. }
                    | State::AwaitingProxyHeader
                    | State::Handshaking { .. },
                ) => self.core.close_now(id, CloseReason::Shutdown),
                Some(
                    State::Open
                    | State::ReadClosed { .. }
                    | State::HalfClosing { .. }
                    | State::HalfClosed { .. },
                ) => self.flush(id),
                _ => {}
            }
        }
    }

    /// During a graceful shutdown, closes `id` (after flush, so with a FIN)
    /// if it is idle now: nothing queued either way, no readiness left, and
    /// the handler's [`Handler::is_idle`] agrees.
    pub(crate) fn close_if_idle_in_shutdown(&mut self, id: ConnId) {
        if !self.core.is_shutting_down() {
            return;
        }
        let Some(conn) = self.core.conn(id) else {
            return;
        };
        let takes_part = matches!(
            conn.state,
            State::Open
                | State::ReadClosed { .. }
                | State::HalfClosing { .. }
                | State::HalfClosed { .. }
        );
        // Only with the transport idle is the protocol asked.
        if takes_part && conn.is_idle() && self.protocol_is_idle(id) {
            // Its queue is empty: the close proceeds at once.
            self.core.close_after_flush(id, CloseReason::Shutdown);
            self.output_written(id);
        }
    }
}
