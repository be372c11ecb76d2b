//! A worker's timetable, kept by the reactor's own timers: the connect
//! deadline, warm-up, the measured window, the sweep for timeouts, the
//! once-a-second progress, the drain, and the stop.
//!
//! Every phase is computed from `t0`, taken by each thread right after all
//! threads finished connecting, so the threads agree without talking. Each
//! edge is a timer armed with `Context::start_timer` and handled in
//! `Handler::timer`; the run ends with `Context::stop`. Timers fire up to a
//! wheel tick (1 ms) late; whether a message counts is decided by comparing
//! its completion time with the window's instants, not by when the timers
//! fire, so that lateness does not leak into the figures.

use std::time::{Duration, Instant};

use reactor::{Context, Fired, TimerId};

use crate::cli::Args;
use crate::generator::Generator;

/// How often in-flight messages are checked against `--timeout`.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// How often the drain looks whether every echo is back.
const DRAIN_CHECK_EVERY: Duration = Duration::from_millis(10);
/// Longest drain, if `--timeout` is longer: what is still out by then is
/// counted as timed out rather than waited for.
const DRAIN_AT_MOST: Duration = Duration::from_secs(2);
/// Connecting may take `--timeout` per connect plus this, in all, before
/// the load starts without the stragglers.
const CONNECT_GRACE: Duration = Duration::from_secs(1);
/// Interval of the progress line.
const SECOND: Duration = Duration::from_secs(1);

/// The instants of a run, all from `t0`.
#[derive(Clone, Copy)]
pub struct Plan {
    /// Load starts; the open-loop schedule counts from here.
    pub t0: Instant,
    /// Measuring starts (`t0 + warmup`).
    pub measure_start: Instant,
    /// Measuring ends and no new message is sent (`measure_start + duration`).
    pub measure_end: Instant,
}

impl Plan {
    /// The plan of a load starting at `t0`.
    fn new(t0: Instant, args: &Args) -> Self {
        let measure_start = t0 + Duration::from_secs_f64(args.warmup);
        Plan {
            t0,
            measure_start,
            measure_end: measure_start + Duration::from_secs_f64(args.duration),
        }
    }
}

/// Where a worker is in its run.
#[derive(Clone, Copy)]
pub enum Phase {
    /// Opening connections; nothing is sent.
    Connecting,
    /// Sending: warm-up, then the measured window.
    Loading(Plan),
    /// The window has ended: nothing new is sent; the echoes in flight are
    /// collected until none is left or `give_up_at`.
    Draining {
        /// The run's instants (completions still need the window's edges).
        plan: Plan,
        /// When what is still in flight is counted as timed out.
        give_up_at: Instant,
    },
}

/// What a timer means, carried in its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Alarm {
    /// Connecting has taken too long: load with what is up.
    ConnectDeadline,
    /// Warm-up over: the measured window opens.
    MeasureStart,
    /// The measured window closes; the drain begins.
    MeasureEnd,
    /// Look for messages unanswered for `--timeout`.
    Sweep,
    /// A second passed: publish this second's p99 (the lead prints a line).
    Second,
    /// Look whether the drain is done.
    DrainCheck,
    /// The pacer's wake-up for a due message (`pacing.rs`).
    Pace,
}

impl Alarm {
    /// Every alarm.
    const ALL: [Alarm; 7] = [
        Alarm::ConnectDeadline,
        Alarm::MeasureStart,
        Alarm::MeasureEnd,
        Alarm::Sweep,
        Alarm::Second,
        Alarm::DrainCheck,
        Alarm::Pace,
    ];

    /// The timer tag for this alarm.
    pub fn tag(self) -> u64 {
        self as u64
    }

    /// The alarm a timer tag stands for.
    fn from_tag(tag: u64) -> Option<Alarm> {
        Self::ALL.into_iter().find(|alarm| alarm.tag() == tag)
    }
}

/// A worker's phase and the timers that move it on.
pub struct Schedule {
    /// Where the run is. Moves forward only: connecting, loading, draining.
    pub phase: Phase,
    /// The connect-phase deadline while armed; cancelled when every connect
    /// settles first, so it never fires into the load.
    connect_deadline: Option<TimerId>,
    /// Progress seconds elapsed: the next `Second` alarm is due at
    /// `t0 + (seconds + 1) s`, anchored so the lines do not drift.
    seconds: u32,
}

impl Schedule {
    /// Before anything: connecting.
    pub fn new() -> Self {
        Schedule {
            phase: Phase::Connecting,
            connect_deadline: None,
            seconds: 0,
        }
    }

    /// Whether new messages may be sent.
    pub fn sending(&self) -> bool {
        matches!(self.phase, Phase::Loading(_))
    }

    /// Whether the window has ended (our own closes are expected now).
    pub fn draining(&self) -> bool {
        matches!(self.phase, Phase::Draining { .. })
    }

    /// Whether a message completed at `now` counts in the measured window.
    pub fn in_window(&self, now: Instant) -> bool {
        match self.phase {
            Phase::Loading(plan) | Phase::Draining { plan, .. } => {
                now >= plan.measure_start && now < plan.measure_end
            }
            Phase::Connecting => false,
        }
    }
}

impl Generator {
    /// Before the loop first runs: starts the first burst of connects and
    /// arms the connect deadline. Returns whether any connect is still in
    /// progress, that is, whether the loop must run to finish connecting.
    pub fn begin_connecting(&mut self, ctx: &mut Context<'_, Self>) -> bool {
        self.connect_more(ctx);
        if self.connections.all_settled() {
            return false;
        }
        let limit = self.args.timeout() + CONNECT_GRACE;
        self.schedule.connect_deadline = Some(ctx.start_timer(limit, Alarm::ConnectDeadline.tag()));
        true
    }

    /// After each connect outcome: once every connect has settled, the
    /// connect phase's run ends.
    pub fn connect_settled(&mut self, ctx: &mut Context<'_, Self>) {
        if matches!(self.schedule.phase, Phase::Connecting) && self.connections.all_settled() {
            if let Some(deadline) = self.schedule.connect_deadline.take() {
                ctx.cancel_timer(deadline);
            }
            ctx.stop();
        }
    }

    /// Before the load phase's run: fixes the plan from `t0`, arms its
    /// timers, and fills every connection's window.
    pub fn begin_load(&mut self, ctx: &mut Context<'_, Self>, t0: Instant) {
        let plan = Plan::new(t0, &self.args);
        self.schedule.phase = Phase::Loading(plan);
        if let Some(narrator) = &mut self.narrator {
            narrator.load_begins(&self.progress);
        }
        let at = |instant: Instant| instant.saturating_duration_since(ctx.now());
        let (start, end, second) = (
            at(plan.measure_start),
            at(plan.measure_end),
            at(t0 + SECOND),
        );
        ctx.start_timer(start, Alarm::MeasureStart.tag());
        ctx.start_timer(end, Alarm::MeasureEnd.tag());
        ctx.start_timer(second, Alarm::Second.tag());
        ctx.start_timer(SWEEP_EVERY, Alarm::Sweep.tag());

        self.pacer.start(t0, self.connections.len());
        let now = Instant::now();
        if self.args.udp {
            for index in 0..self.udp.all.len() {
                self.refill_udp(index, now);
            }
        } else {
            for local in 0..self.connections.ids.len() {
                if let Some(id) = self.connections.ids[local] {
                    self.refill_from_outside(ctx, id, now);
                }
            }
        }
        self.pace(ctx);
    }

    /// A timer fired: moves the run on.
    pub fn alarm(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        let Some(alarm) = Alarm::from_tag(fired.tag) else {
            return;
        };
        match alarm {
            Alarm::ConnectDeadline => {
                self.schedule.connect_deadline = None;
                if matches!(self.schedule.phase, Phase::Connecting) {
                    ctx.stop();
                }
            }
            Alarm::MeasureStart => {
                if let Some(narrator) = &mut self.narrator {
                    narrator.measuring();
                }
            }
            Alarm::MeasureEnd => self.end_window(ctx),
            Alarm::Sweep => {
                // The drain ends with a sweep of its own.
                if self.schedule.sending() {
                    self.sweep(ctx, Instant::now(), false);
                    ctx.start_timer(SWEEP_EVERY, Alarm::Sweep.tag());
                }
            }
            Alarm::Second => self.end_second(ctx),
            Alarm::DrainCheck => self.check_drain(ctx),
            // The pacer runs every turn (`before_sleep`); this wake-up only
            // had to end the sleep.
            Alarm::Pace => self.pacer.timer_fired(),
        }
    }

    /// Publishes this thread's p99 of the second just ended; the lead
    /// prints the progress line. Re-arms for the next second.
    fn end_second(&mut self, ctx: &mut Context<'_, Self>) {
        let p99 = self.latency.end_second();
        self.progress.p99_ns[self.thread].store(p99, std::sync::atomic::Ordering::Relaxed);
        if let Some(narrator) = &mut self.narrator {
            narrator.second(&self.progress);
        }
        let plan = match self.schedule.phase {
            Phase::Loading(plan) | Phase::Draining { plan, .. } => plan,
            Phase::Connecting => return,
        };
        self.schedule.seconds += 1;
        let next = plan.t0 + SECOND * (self.schedule.seconds + 1);
        ctx.start_timer(
            next.saturating_duration_since(ctx.now()),
            Alarm::Second.tag(),
        );
    }

    /// The measured window closed: stop sending and start the drain.
    fn end_window(&mut self, ctx: &mut Context<'_, Self>) {
        let Phase::Loading(plan) = self.schedule.phase else {
            return;
        };
        let give_up_at = Instant::now() + self.args.timeout().min(DRAIN_AT_MOST);
        self.schedule.phase = Phase::Draining { plan, give_up_at };
        if let Some(narrator) = &mut self.narrator {
            narrator.measured();
        }
        self.check_drain(ctx);
    }

    /// Ends the run once every echo is back or the drain gave up; otherwise
    /// looks again shortly.
    fn check_drain(&mut self, ctx: &mut Context<'_, Self>) {
        let Phase::Draining { give_up_at, .. } = self.schedule.phase else {
            return;
        };
        if self.in_flight(ctx) == 0 || Instant::now() >= give_up_at {
            self.finish(ctx);
        } else {
            ctx.start_timer(DRAIN_CHECK_EVERY, Alarm::DrainCheck.tag());
        }
    }

    /// The end: what never came back counts as timed out, every connection
    /// closes, and the loop stops.
    fn finish(&mut self, ctx: &mut Context<'_, Self>) {
        self.sweep(ctx, Instant::now(), true);
        self.close_all_tcp(ctx);
        ctx.stop();
    }

    /// Counts what went unanswered too long (all of it on the `final_drain`).
    fn sweep(&mut self, ctx: &mut Context<'_, Self>, now: Instant, final_drain: bool) {
        if self.args.udp {
            self.sweep_udp(now, final_drain);
        } else {
            self.sweep_tcp(ctx, now, final_drain);
        }
    }

    /// Messages still awaiting their echo on this thread.
    fn in_flight(&self, ctx: &Context<'_, Self>) -> u64 {
        if self.args.udp {
            self.udp.in_flight()
        } else {
            self.tcp_in_flight(ctx)
        }
    }
}
