//! Join and leave notices, held for a moment and sent to the room together.
//!
//! Apart from `chat_server.rs`, which owns the room, because this is the one
//! place where the room trades a little latency for making a join cost the
//! same however large the room is. Queuing a line for every member is cheap
//! (a copy into each member's output queue); what is not is that the
//! reactor then hands each member's queue to its socket at the end of the
//! turn: one `sendmsg` per member. When members join one at a time, each
//! join is a turn of its own, and each cost the server a system call per
//! member already in the room: 6 000 joins, 18 million calls (about 90 s of
//! CPU, almost all of it in the kernel), while the nickname checks, once a
//! walk over the room too, were a few hundred milliseconds of it.
//!
//! So a notice is appended to a pending buffer (O(1)), and the buffer goes
//! to every member as one write when a timer fires, `hold_for` after the
//! first notice: the joins and leaves in that time cost one write per
//! member between them. The hold grows with the room, so that these
//! flushes take at most about 50 000 member writes a second whatever its
//! size, and stays at 1 ms for a small room.
//!
//! Order is kept: before anything else goes to the room (a line, a rename,
//! the shutdown notice) the pending notices go first, and before a reply to
//! one member (`/who`, `/help`, an error) that member gets the notices it
//! has not had. Each member thus sees the same lines in the same order as
//! if every notice had been sent at once, only up to `hold_for` later. A
//! member that joins while notices are pending does not get those, which
//! are about the room before it (its welcome counted their members).

use std::time::Duration;

use reactor::{ConnId, Context, TimerId};

use crate::{deliver, ChatServer, Member};

/// The tag of the timer that sends the pending notices.
pub(crate) const NOTICE_TIMER: u64 = 1;

/// How long the first pending notice waits for others to go with it, for a
/// room of `members`: 20 µs a member, from 1 ms up to 100 ms.
fn hold_for(members: usize) -> Duration {
    let micros = u64::try_from(members)
        .unwrap_or(u64::MAX)
        .saturating_mul(20);
    Duration::from_micros(micros.clamp(1_000, 100_000))
}

/// Notices not yet sent to the room.
#[derive(Default)]
pub(crate) struct Notices {
    /// Framed notice lines, in order.
    pending: Vec<u8>,
    /// Counts the flushes. A seat last set in an earlier epoch has had
    /// everything sent before `pending` was last emptied, and none of it.
    epoch: u64,
    /// The timer that flushes `pending`. Invariant: `Some` exactly while
    /// `pending` is not empty.
    timer: Option<TimerId>,
}

/// A member's place in the room: its connection, and how much of the
/// pending notices it has had.
pub(crate) struct Seat {
    pub(crate) conn: ConnId,
    /// The `Notices::epoch` when `heard` was set. In an earlier epoch the
    /// member has had everything pending now from its start.
    epoch: u64,
    /// Bytes of `Notices::pending` the member has had (or, having joined
    /// after them, is not to get), if `epoch` is the current one.
    heard: usize,
}

impl Seat {
    /// A seat for `conn`, joining now: what is pending is not for it.
    pub(crate) fn new(conn: ConnId, notices: &Notices) -> Seat {
        Seat {
            conn,
            epoch: notices.epoch,
            heard: notices.pending.len(),
        }
    }

    /// Where in the pending notices this member's unheard part starts.
    fn unheard_from(&self, notices: &Notices) -> usize {
        if self.epoch == notices.epoch {
            self.heard
        } else {
            0
        }
    }
}

impl ChatServer {
    /// Queues `line` as a notice to every member in the room now, to be
    /// sent within `hold_for` with the others pending.
    pub(crate) fn queue_notice(&mut self, ctx: &mut Context<'_, Self>, line: &str) {
        self.text.clear();
        self.text.extend_from_slice(line.as_bytes());
        self.frame();
        self.notices.pending.extend_from_slice(&self.wire);
        if self.notices.timer.is_none() {
            let hold = hold_for(self.members.len());
            self.notices.timer = Some(ctx.start_timer(hold, NOTICE_TIMER));
        }
    }

    /// Sends every member the pending notices it has not had. Called when
    /// the timer fires and before anything else goes to the room.
    pub(crate) fn flush_notices(&mut self, ctx: &mut Context<'_, Self>) {
        if self.notices.pending.is_empty() {
            return;
        }
        if let Some(timer) = self.notices.timer.take() {
            ctx.cancel_timer(timer);
        }
        let notices = &self.notices;
        for (_, seat) in self.members.iter() {
            let from = seat.unheard_from(notices);
            if from < notices.pending.len() {
                // A member cut off here closes at once; its `closed`
                // callback runs after this loop.
                deliver(ctx, seat.conn, &notices.pending[from..]);
            }
        }
        self.notices.pending.clear();
        self.notices.epoch += 1;
    }

    /// The timer fired: the notices have waited long enough.
    pub(crate) fn notice_timer(&mut self, ctx: &mut Context<'_, Self>) {
        self.notices.timer = None;
        self.flush_notices(ctx);
    }

    /// Sends `me` (on `conn`) the pending notices it has not had, so that a
    /// reply to it comes after them, as it would have without the hold.
    pub(crate) fn catch_up(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &Member) {
        let Some(seat) = me.slot.and_then(|slot| self.members.get_mut(slot)) else {
            return;
        };
        let from = seat.unheard_from(&self.notices);
        let pending = &self.notices.pending;
        if from < pending.len() {
            deliver(ctx, conn, &pending[from..]);
        }
        seat.epoch = self.notices.epoch;
        seat.heard = pending.len();
    }
}
