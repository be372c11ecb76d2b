//! The fan-out hold: a connection whose input is amplified to others (a
//! broadcast, a publish) is not read again until the readers it pushed past
//! their high-water mark have drained, so a burst never outruns a reader
//! that keeps up, and no more memory is queued than the readers can take.
//!
//! The hold is bounded so that one reader cannot stall the others:
//!
//! * a reader that took no bytes for `Config::fanout_stall` has stalled (it
//!   stopped reading) and holds nobody; its hard and soft limits deal with it;
//! * a hold lasts at most `Config::fanout_hold`: a reader that reads, but
//!   more slowly than one read's amplification per hold, falls behind and
//!   meets its limits rather than pacing everyone.
//!
//! The readers that hold ("targets") are counted while they are above high
//! water; the held connections are released together when the last target
//! falls below it or closes, or when the hold's timer fires.

use log::trace;

use crate::connection::{live, record_mut};
use crate::handler::Handler;
use crate::loop_state::{LoopState, Ready};
use crate::timer_wheel::TimerId;
use crate::timers::TimerKind;
use crate::token::ConnId;

/// The loop's side of the fan-out hold.
#[derive(Debug, Default)]
pub(crate) struct Fanout {
    /// Set while a `data` callback runs, when one of its writes left
    /// another connection, still taking bytes, above high water: the
    /// reading connection is then held. Cleared before each callback.
    pub(crate) blocked: bool,
    /// Connections held. Invariant: exactly those whose `fanout_held` flag is
    /// set (closed ones are dropped lazily, when released).
    held: Vec<ConnId>,
    /// Readers that held someone since the last release: every connection
    /// whose `fanout_target` flag is set is here (with ones that drained or
    /// closed since, and repeats), so that the timer can clear the flags.
    targets: Vec<ConnId>,
    /// How many live targets are still at or above high water. The held
    /// connections are released when it reaches zero.
    targets_high: usize,
    /// The `TimerKind::FanoutHold` bounding the current hold. Invariant:
    /// `Some` while `held` is not empty; cancelled when they are released
    /// early, so the next hold gets its whole `fanout_hold`.
    timer: Option<TimerId>,
}

impl<H: Handler> LoopState<H> {
    /// A write from the running `data` callback left `target` above high
    /// water. If it is still taking bytes, it holds the reading connection.
    pub(crate) fn note_fanout_target(&mut self, target: ConnId, high_water: usize) {
        if self.current.map_or(true, |current| current == target) {
            return;
        }
        let stall = self.config.fanout_stall;
        let (now, staged) = (self.now, self.staged_len(target));
        let Some(conn) = live(&mut self.conns, target) else {
            return;
        };
        if conn.output.len() + staged < high_water {
            return;
        }
        if now.saturating_duration_since(conn.last_sent) >= stall {
            trace!("conn {target}: took no bytes for {stall:?}, holds nobody");
            return;
        }
        self.fanout.blocked = true;
        if !conn.flow.fanout_target {
            conn.flow.fanout_target = true;
            self.fanout.targets.push(target);
            self.fanout.targets_high += 1;
        }
    }

    /// `target`'s queue fell below high water, or it closed: one target
    /// fewer; the last one releases everybody held.
    pub(crate) fn fanout_target_done(&mut self, target: ConnId) {
        let Some(conn) = record_mut(&mut self.conns, target) else {
            return;
        };
        if !conn.flow.fanout_target {
            return;
        }
        conn.flow.fanout_target = false;
        self.fanout.targets_high -= 1;
        if self.fanout.targets_high == 0 {
            self.release_fanout_held();
        }
    }

    /// Holds `id`'s reading until its targets drain (or the hold times out).
    /// Returns whether it is held: no target may be left above high water
    /// by the end of the callback (one drained or was closed meanwhile).
    pub(crate) fn hold_for_fanout(&mut self, id: ConnId) -> bool {
        if self.fanout.targets_high == 0 {
            return false;
        }
        let deadline = self.now + self.config.fanout_hold;
        let Some(conn) = self.conn_mut(id) else {
            return false;
        };
        if !conn.flow.fanout_held {
            conn.flow.fanout_held = true;
            self.fanout.held.push(id);
        }
        if self.fanout.timer.is_none() {
            self.fanout.timer = Some(self.timers.insert(deadline, TimerKind::FanoutHold));
        }
        true
    }

    /// The hold's time is up: release everybody and forget the targets (a
    /// target that stalled meanwhile would otherwise hold for ever).
    pub(crate) fn fanout_hold_expired(&mut self) {
        self.fanout.timer = None;
        trace!("fan-out hold timed out");
        for target in std::mem::take(&mut self.fanout.targets) {
            if let Some(conn) = record_mut(&mut self.conns, target) {
                conn.flow.fanout_target = false;
            }
        }
        self.fanout.targets_high = 0;
        self.release_fanout_held();
    }

    /// Lets every held connection read again, from the next turn. Called
    /// with no target left above high water.
    fn release_fanout_held(&mut self) {
        self.fanout.targets.clear();
        if let Some(timer) = self.fanout.timer.take() {
            self.timers.cancel(timer);
        }
        for id in std::mem::take(&mut self.fanout.held) {
            if let Some(conn) = self.conn_mut(id) {
                conn.flow.fanout_held = false;
                conn.owed.offer |= !conn.input.is_empty();
                self.push_ready(Ready::Conn(id));
            }
        }
    }
}
