//! Flow control's hold on input, and what it owes a connection when it lets
//! go.
//!
//! Three things hold a connection's input back without changing its state
//! (`Connection::flow`): the handler paused reading, its queued output is
//! above the high-water mark (backpressure, set and lifted by the write path
//! in `output.rs`), or its fan-out is held until the readers it filled
//! drain (`fanout.rs`). While held, the connection is neither read nor
//! offered input; its `readable` flag is kept, since no new edge will come.
//!
//! Letting go puts the connection on the ready queue with what it is owed
//! (`Connection::owed`): `Handler::drained` after backpressure, an offer of
//! the input it kept (without new bytes), and the end of a FIN that waited
//! for that input. [`Loop::resume_input`] pays those in the connection's
//! next step, before it reads again.

use log::trace;

use crate::callbacks::Loop;
use crate::handler::Handler;
use crate::loop_state::{LoopState, Ready};
use crate::token::ConnId;

impl<H: Handler> LoopState<H> {
    /// Pauses (`true`) or resumes reading `id`. Resuming offers unconsumed
    /// input again next turn, and reads on if the socket is readable.
    pub(crate) fn set_read_paused(&mut self, id: ConnId, paused: bool) {
        let Some(conn) = self.conn_mut(id) else {
            return;
        };
        if conn.flow.read_paused == paused {
            return;
        }
        trace!(
            "conn {id}: reading {}",
            if paused { "paused" } else { "resumed" }
        );
        conn.flow.read_paused = paused;
        if !paused {
            conn.owed.offer |= !conn.input.is_empty();
            self.push_ready(Ready::Conn(id));
        }
    }

    /// Offers `id`'s unconsumed input to `data` again next turn, even if no
    /// new byte arrives.
    pub(crate) fn wake(&mut self, id: ConnId) {
        if let Some(conn) = self.conn_mut(id) {
            conn.owed.offer = true;
            self.push_ready(Ready::Conn(id));
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Flow control let go of `id` (its output drained, or the handler
    /// resumed or woke it): run `drained`, offer the unconsumed input again,
    /// and finish a FIN that waited for that input.
    pub(crate) fn resume_input(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if std::mem::take(&mut conn.owed.drained) {
            self.call_with_state(id, "drained", |handler, ctx, state| {
                handler.drained(ctx, id, state)
            });
            self.flush(id);
        }
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if conn.state.read_closed_owed() {
            conn.owed.offer = false;
            self.finish_input(id);
        } else if conn.may_offer() && std::mem::take(&mut conn.owed.offer) {
            self.deliver(id, &[]);
            self.flush(id);
            // An offer fans out like a read: held the same way.
            self.held_by_fanout(id);
        }
    }

    /// After `id`'s input was delivered: if what it fanned out left a
    /// connection still taking bytes above high water, hold `id`'s reading
    /// until that reader drains, so a reader that keeps up is never outrun
    /// (at most `Config::fanout_hold`; see `fanout.rs`). Returns whether
    /// `id` is held.
    pub(crate) fn held_by_fanout(&mut self, id: ConnId) -> bool {
        if std::mem::take(&mut self.core.fanout.blocked) && self.core.hold_for_fanout(id) {
            trace!("conn {id}: fan-out above high water, holding");
            self.core.stats.fanout_yields += 1;
            return true;
        }
        false
    }
}
