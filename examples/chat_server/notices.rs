//! Join and leave notices, held for a moment and sent to the room together.
//!
//! Apart from `chat_server.rs`, which owns the room, because this is the one
//! place where the room trades a little latency for making a join cost the
//! same however large the room is. Queuing a line for every member is cheap
//! (a copy into each member's output queue); what is not is that the
//! reactor then hands each member's queue to its socket at the end of the
//! turn: one `sendmsg` per member. When members join one at a time, each
//! join is a turn of its own, and each cost the server a system call per
//! member already in the room: 6 000 joins, 18 million calls, 98 s of CPU
//! of which 91 s in the kernel (tests/chat_joins.rs with
//! `CHAT_JOINS_BATCH=1`). The walk over the room for a free nickname, the
//! other cost of a join that grew with the room, was too small a part of
//! that to show on its own.
//!
//! So a notice is appended to a pending log (O(1)), and the log goes to
//! every member as one write when a timer fires, `hold_for` after the
//! first notice: the joins and leaves in that time cost one write per
//! member between them. The hold grows with the room, so that these
//! flushes take at most about 50 000 member writes a second whatever its
//! size, and stays at 1 ms for a small room.
//!
//! Nor does one flush take a turn of its own however large the room: the
//! log may be tens of KiB by then, and copying it to 6 000 queues and
//! handing them to their sockets took 100 ms in one go, while `/help` and
//! every line waited. A flush is a round over the room in steps of at most
//! `STEP_MEMBERS` members or `STEP_BYTES` bytes, one step a turn, so that
//! the loop serves everything else between steps.
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

/// The tag of the timer that starts or continues a flush.
pub(crate) const NOTICE_TIMER: u64 = 1;
/// Most members one step of a flush sends the log to.
const STEP_MEMBERS: usize = 256;
/// Most bytes one step of a flush copies (past the first member's share).
const STEP_BYTES: usize = 1 << 20;

/// How long the first pending notice waits for others to go with it, for a
/// room of `members`: 20 µs a member, from 1 ms up to 100 ms.
fn hold_for(members: usize) -> Duration {
    let micros = u64::try_from(members)
        .unwrap_or(u64::MAX)
        .saturating_mul(20);
    Duration::from_micros(micros.clamp(1_000, 100_000))
}

/// Notices not yet sent to every member: the tail of a log of every notice
/// since the server started, of which members remember how far they had.
#[derive(Default)]
pub(crate) struct Notices {
    /// Framed notice lines, in order: the log from `base` on.
    pending: Vec<u8>,
    /// Position in the log of `pending[0]`. Invariant: no member's
    /// `Seat::heard` is below it.
    base: u64,
    /// The flush under way, if one is.
    round: Option<Round>,
    /// The timer that starts a flush (after the hold) or takes its next
    /// step. Invariant: `Some` while `pending` has a notice some member has
    /// not had, or a round is under way.
    timer: Option<TimerId>,
}

/// A flush under way: a walk over the room's slots.
struct Round {
    /// The next slot (key in `ChatServer::members`) to catch up.
    next: usize,
    /// The end of the log when the round began: every member has had it
    /// once the round ends, members who joined during it included (they
    /// had no need of what came before them).
    end: u64,
}

impl Notices {
    /// The position in the log after its last notice.
    fn end(&self) -> u64 {
        self.base + self.pending.len() as u64
    }
}

/// A member's place in the room: its connection, and how much of the
/// notice log it has had.
pub(crate) struct Seat {
    pub(crate) conn: ConnId,
    /// The log before this position has been sent to the member or, having
    /// joined after it, is not for the member.
    heard: u64,
}

impl Seat {
    /// A seat for `conn`, joining now: what is pending is not for it.
    pub(crate) fn new(conn: ConnId, notices: &Notices) -> Seat {
        Seat {
            conn,
            heard: notices.end(),
        }
    }

    /// Sends the member the part of the log it has not had; returns the
    /// bytes sent.
    fn catch_up(&mut self, ctx: &mut Context<'_, ChatServer>, notices: &Notices) -> usize {
        // `heard >= base` (the invariant), and `heard <= end`.
        let from = usize::try_from(self.heard - notices.base).unwrap_or(usize::MAX);
        let unheard = notices.pending.get(from..).unwrap_or_default();
        if !unheard.is_empty() {
            // A member cut off here closes at once; its `closed` callback
            // runs later, so the room does not change under a flush.
            deliver(ctx, self.conn, unheard);
        }
        self.heard = notices.end();
        unheard.len()
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

    /// Sends every member the notices it has not had, all at once. Called
    /// before anything else goes to the room.
    pub(crate) fn flush_notices(&mut self, ctx: &mut Context<'_, Self>) {
        let notices = &mut self.notices;
        if notices.round.is_none() && notices.pending.is_empty() {
            return;
        }
        if let Some(timer) = notices.timer.take() {
            ctx.cancel_timer(timer);
        }
        for (_, seat) in self.members.iter_mut() {
            seat.catch_up(ctx, notices);
        }
        notices.round = None;
        notices.base = notices.end();
        notices.pending.clear();
    }

    /// The timer fired: start a flush, or take its next step.
    pub(crate) fn notice_timer(&mut self, ctx: &mut Context<'_, Self>) {
        let notices = &mut self.notices;
        notices.timer = None;
        let end = notices.end();
        let mut round = notices.round.take().unwrap_or(Round { next: 0, end });
        let (mut members, mut bytes) = (0, 0);
        let slots = self.members.capacity();
        while round.next < slots && members < STEP_MEMBERS && bytes < STEP_BYTES {
            if let Some(seat) = self.members.get_mut(round.next) {
                bytes += seat.catch_up(ctx, notices);
                members += 1;
            }
            round.next += 1;
        }
        if round.next < slots {
            // More of the room next turn, after whatever else is waiting.
            notices.round = Some(round);
            notices.timer = Some(ctx.start_timer(Duration::ZERO, NOTICE_TIMER));
            return;
        }
        // Every member has had the log up to where the round began.
        let had = usize::try_from(round.end - notices.base).unwrap_or(usize::MAX);
        notices.pending.drain(..had.min(notices.pending.len()));
        notices.base = round.end;
        if !notices.pending.is_empty() {
            // Notices that came during the round go in the next one.
            let hold = hold_for(self.members.len());
            notices.timer = Some(ctx.start_timer(hold, NOTICE_TIMER));
        }
    }

    /// Sends `me` (on `conn`) the notices it has not had, so that a reply
    /// to it comes after them, as it would have without the hold.
    pub(crate) fn catch_up(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &Member) {
        if let Some(seat) = me.slot.and_then(|slot| self.members.get_mut(slot)) {
            debug_assert_eq!(seat.conn, conn);
            seat.catch_up(ctx, &self.notices);
        }
    }
}
