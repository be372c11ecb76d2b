//! When a connection may send: the in-flight window (`--depth`) always,
//! and in open loop (`--rate`) the schedule that makes each message due at
//! its own instant.
//!
//! Open loop, message `k` of a thread is due at `t0 + k / rate`, dealt to
//! the thread's connections in turn, and its latency counts from that
//! instant (`latency.rs`). Being late to send it would be charged to the
//! server, so the loop must wake on time. Timers alone cannot do that:
//! `epoll_wait` sleeps in whole milliseconds and the timer wheel rounds up
//! to its tick, while messages are typically due every few microseconds.
//! So the pacer sleeps on a timer while the next message is more than
//! [`SLEEP_SLACK`] away, and within that keeps the loop from sleeping at
//! all by sending its own loop a [`Nudge`] each turn (a message through the
//! reactor's `Handle`, which wakes `poll` at once). The loop then spins,
//! so loadgen's CPU figure means nothing in rate mode.

use std::time::{Duration, Instant};

use reactor::{Context, Handle, TimerId};

use crate::generator::Generator;
use crate::schedule::{Alarm, Phase};

/// How far ahead of a due message the pacer stops sleeping: one tick of
/// the timer wheel (it may fire that late) plus one millisecond of
/// `epoll_wait` rounding.
const SLEEP_SLACK: Duration = Duration::from_millis(2);

/// The pacer's note to its own loop: "a message is due too soon to sleep".
/// It carries nothing; arriving is the point.
pub struct Nudge;

/// The open-loop schedule of one thread.
pub struct Pacer {
    /// Nanoseconds between two messages of this thread; `None`: closed loop,
    /// and nothing else here is used.
    interval_ns: Option<f64>,
    /// When message 0 is due: the start of the load. `None` before it.
    t0: Option<Instant>,
    /// Connections the messages are dealt to in turn (message `k` goes to
    /// local index `k % lanes`); fixed when the load starts.
    lanes: u64,
    /// Messages `0..next_due` of this thread have been made due.
    next_due: u64,
    /// Local indexes that gained due messages this pass; reused, never
    /// shrunk, so pacing does not allocate.
    to_refill: Vec<usize>,
    /// The armed wake-up timer, if any: at most one at a time.
    timer: Option<TimerId>,
    /// A `Nudge` is on its way to this loop: at most one at a time.
    nudge_in_flight: bool,
    /// This thread's own loop, to nudge; set before the loop runs, in rate
    /// mode only.
    own_loop: Option<Handle<Nudge>>,
}

impl Pacer {
    /// A pacer for `rate` messages per second shared by `threads` threads
    /// (`None`: closed loop).
    pub fn new(rate: Option<f64>, threads: usize) -> Self {
        Pacer {
            interval_ns: rate.map(|rate| 1e9 * threads as f64 / rate.max(1e-9)),
            t0: None,
            lanes: 0,
            next_due: 0,
            to_refill: Vec::new(),
            timer: None,
            nudge_in_flight: false,
            own_loop: None,
        }
    }

    /// Whether this is an open-loop run.
    pub fn is_open_loop(&self) -> bool {
        self.interval_ns.is_some()
    }

    /// Gives an open-loop pacer the handle it nudges its loop with.
    pub fn set_own_loop(&mut self, handle: Handle<Nudge>) {
        if self.is_open_loop() {
            self.own_loop = Some(handle);
        }
    }

    /// The load starts at `t0` over `lanes` connections.
    pub fn start(&mut self, t0: Instant, lanes: usize) {
        self.t0 = Some(t0);
        self.lanes = lanes as u64;
        self.to_refill.reserve(lanes);
    }

    /// When message `k` of the thread is due.
    fn due_at(&self, t0: Instant, interval: f64, k: u64) -> Instant {
        t0 + Duration::from_nanos((k as f64 * interval) as u64)
    }

    /// Open loop: when message `m` of lane `local` was meant to be sent.
    pub fn intended(&self, local: usize, m: u64) -> Option<Instant> {
        let (interval, t0) = (self.interval_ns?, self.t0?);
        Some(self.due_at(t0, interval, m * self.lanes + local as u64))
    }

    /// The wake-up timer fired.
    pub fn timer_fired(&mut self) {
        self.timer = None;
    }

    /// The nudge arrived.
    pub fn nudged(&mut self) {
        self.nudge_in_flight = false;
    }
}

impl Generator {
    /// How many messages a connection may send now, given what it sent,
    /// what came back and (open loop) what is due: the window (`--depth`),
    /// the schedule, and the phase.
    pub fn allowance(&self, sent: u64, completed: u64, due: u64) -> u64 {
        if !self.schedule.sending() {
            return 0;
        }
        let mut target = completed + self.args.depth_u64();
        if self.pacer.is_open_loop() {
            target = target.min(due);
        }
        target.saturating_sub(sent)
    }

    /// Open loop, once per turn: makes due every message whose time has
    /// come, sends on every connection that gained some (one write each),
    /// and sees that the loop wakes for the next one.
    pub fn pace(&mut self, ctx: &mut Context<'_, Self>) {
        let (Some(interval), Phase::Loading(plan)) = (self.pacer.interval_ns, self.schedule.phase)
        else {
            return;
        };
        // Every socket failed to open: nothing to deal messages to.
        let lanes = self.pacer.lanes;
        if lanes == 0 {
            return;
        }
        let now = Instant::now();
        // Nothing falls due after the window: the drain only collects.
        let until = now.min(plan.measure_end);
        let due_total = (until.duration_since(plan.t0).as_nanos() as f64 / interval) as u64 + 1;
        while self.pacer.next_due < due_total {
            let local = (self.pacer.next_due % lanes) as usize;
            self.pacer.next_due += 1;
            self.make_due(ctx, local);
        }
        let mut to_refill = std::mem::take(&mut self.pacer.to_refill);
        for &local in &to_refill {
            if self.args.udp {
                self.udp.all[local].queued_for_refill = false;
                self.refill_udp(local, now);
            } else if let Some(id) = self.connections.ids[local] {
                self.refill_from_outside(ctx, id, now);
            }
        }
        to_refill.clear();
        self.pacer.to_refill = to_refill;
        self.wake_for_next(ctx, plan.t0, interval);
    }

    /// One more message is due on lane `local`; queues the lane for a
    /// refill once per pass.
    fn make_due(&mut self, ctx: &mut Context<'_, Self>, local: usize) {
        let queued = if self.args.udp {
            let u = &mut self.udp.all[local];
            u.due += 1;
            std::mem::replace(&mut u.queued_for_refill, true)
        } else if let Some(st) = self.connections.ids[local].and_then(|id| ctx.state_mut(id)) {
            st.due += 1;
            std::mem::replace(&mut st.queued_for_refill, true)
        } else {
            // Closed: its messages are simply never sent.
            true
        };
        if !queued {
            self.pacer.to_refill.push(local);
        }
    }

    /// Arms the wake-up for the next due message: a timer if it is far
    /// enough off, otherwise a nudge so the loop does not sleep.
    fn wake_for_next(&mut self, ctx: &mut Context<'_, Self>, t0: Instant, interval: f64) {
        let next = self.pacer.due_at(t0, interval, self.pacer.next_due);
        if next.saturating_duration_since(Instant::now()) > SLEEP_SLACK {
            if self.pacer.timer.is_none() {
                // Timer durations count from the turn's clock, not from now.
                let wake = next.checked_sub(SLEEP_SLACK).unwrap_or(next);
                let sleep = wake.saturating_duration_since(ctx.now());
                self.pacer.timer = Some(ctx.start_timer(sleep, Alarm::Pace.tag()));
            }
        } else if !self.pacer.nudge_in_flight {
            if let Some(own_loop) = &self.pacer.own_loop {
                // Fails only once the loop is gone, when nothing is due.
                self.pacer.nudge_in_flight = own_loop.send(Nudge).is_ok();
            }
        }
    }
}
