//! Calling the handler: the one place a callback runs, behind a panic guard.
//!
//! [`Loop`] is the loop's state and its handler borrowed together, which is
//! what running a callback needs. It is not an object with jobs of its own:
//! each concept adds its steps to it in its own module (`accept.rs`,
//! `input.rs`, `close.rs`...). Every callback, including
//! [`Handler::is_idle`], runs through [`Loop::call`], which catches a panic
//! so that one failing connection never takes the loop down: the panic is
//! counted, logged, and closes only the connection it was about.

use std::panic::{catch_unwind, AssertUnwindSafe};

use log::error;

use crate::close_reason::CloseReason;
use crate::context::Context;
use crate::handler::Handler;
use crate::loop_state::LoopState;
use crate::token::ConnId;

/// The loop's state and its handler, borrowed together for one step.
pub(crate) struct Loop<'a, H: Handler> {
    /// The loop's state.
    pub(crate) core: &'a mut LoopState<H>,
    /// The protocol.
    pub(crate) handler: &'a mut H,
}

impl<H: Handler> Loop<'_, H> {
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
        result.map_err(|payload| self.panicked(what, payload)).ok()
    }

    /// Runs a connection callback with the connection's state lent to it.
    /// A panic closes the connection.
    pub(crate) fn call_with_state<R>(
        &mut self,
        id: ConnId,
        what: &str,
        callback: impl FnOnce(&mut H, &mut Context<'_, H>, &mut H::State) -> R,
    ) -> Option<R> {
        let mut user = self.core.conn_mut(id)?.user.take()?;
        let result = self.call(what, |handler, ctx| callback(handler, ctx, &mut user));
        // The slot still holds this connection, closed or not: slots are
        // freed only at the end of the turn, never during a callback.
        if let Some(conn) = self.core.conns.get_mut(id.slot()) {
            conn.user = Some(user);
        }
        if result.is_none() {
            self.core.close_now(id, CloseReason::HandlerPanic);
        }
        result
    }

    /// [`Handler::is_idle`] for `id`, guarded like every callback: a panic
    /// closes the connection and counts as "not idle". With the state lent
    /// out (never the case where the loop asks), the transport decides alone.
    pub(crate) fn protocol_is_idle(&mut self, id: ConnId) -> bool {
        let Some(conn) = self.core.conn(id) else {
            return false;
        };
        let Some(state) = conn.user.as_ref() else {
            return true;
        };
        let handler = &*self.handler;
        match catch_unwind(AssertUnwindSafe(|| handler.is_idle(state))) {
            Ok(idle) => idle,
            Err(payload) => {
                self.panicked("is_idle", payload);
                self.core.close_now(id, CloseReason::HandlerPanic);
                false
            }
        }
    }

    fn panicked(&mut self, what: &str, payload: Box<dyn std::any::Any + Send>) {
        let message = payload
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "non-string panic payload".into());
        error!("handler panicked in {what}: {message}");
        self.core.stats.handler_panics += 1;
    }
}
