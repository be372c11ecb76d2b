//! One turn of the loop, phase by phase: [`Reactor::run_once`].
//!
//! The order is the one Redis's `aeProcessEvents` and libuv's `uv_run` use:
//! work left from the last turn decides how long to sleep; events are
//! served as they come; then the work they queued for the next turn waits
//! behind a zero-timeout poll, so a busy connection cannot starve the
//! others. Each phase is one function below, with its why.
//!
//! A rhythm runs through the phases: each ends by telling the handler about
//! the connections it closed (`report_closed`), so the next phase and its
//! callbacks see a consistent world (a chat forgets a member before the next
//! broadcast; a proxy closes the partner of a closed end). Slots are freed
//! only at the very end of the turn.

use std::io;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use log::{debug, trace};
use mio::event::Event;

use crate::callbacks::Loop;
use crate::handle::Command;
use crate::handler::Handler;
use crate::loop_state::{Ready, SourceSlot};
use crate::reactor::Reactor;
use crate::stats::nanos;
use crate::step::note_readiness;
use crate::token::{self, SourceId, Target};

impl<H: Handler> Reactor<H> {
    /// One turn of the loop. Waits at most `max_wait` (`None`: until an
    /// event or the next timer).
    pub fn run_once(&mut self, max_wait: Option<Duration>) -> io::Result<()> {
        let timeout = self.sleep_limit(max_wait);
        self.wait_for_events(timeout)?;
        let carried_over = self.core.ready.len();
        self.dispatch_events();
        self.resume_ready(carried_over);
        self.fire_due_timers();
        self.prepare_to_sleep();
        self.measure_turn();
        self.end_turn();
        Ok(())
    }

    /// Phase 1: how long may the loop sleep? Not at all if work is queued
    /// (the ready queue, unflushed output, a requested shutdown); otherwise
    /// until the next timer, or the caller's limit.
    fn sleep_limit(&mut self, max_wait: Option<Duration>) -> Option<Duration> {
        if !self.core.ready.is_empty()
            || !self.core.dirty.is_empty()
            || self.core.shutdown_requested.is_some()
        {
            return Some(Duration::ZERO);
        }
        // Read the clock only when a timer is armed: most turns have none.
        let timer_wait = self
            .core
            .timers
            .next_deadline()
            .map(|deadline| deadline.saturating_duration_since(Instant::now()));
        match (timer_wait, max_wait) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    /// Phase 2: wait for readiness. A signal interrupting `epoll_wait` is
    /// not an error: poll again (in a loop, never by recursion). One clock
    /// reading then serves the whole turn.
    fn wait_for_events(&mut self, timeout: Option<Duration>) -> io::Result<()> {
        // Two relaxed stores a turn let other threads tell a loop waiting
        // for work from one stuck in a callback (`Handle::turn_running_for`).
        self.turn_clock.waiting();
        loop {
            self.core.stats.poll_calls += 1;
            match self.poll.poll(&mut self.events, timeout) {
                Ok(()) => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        }
        self.core.now = Instant::now();
        self.turn_clock.began(self.core.now);
        let stats = &mut self.core.stats;
        stats.loop_wait_ns += nanos(self.core.now.saturating_duration_since(self.turn_ended_at));
        stats.turns += 1;
        let event_count = self.events.iter().count();
        stats.events += event_count as u64;
        trace!(
            "turn {}: {} events (timeout {:?}), {} connections, {} ready",
            stats.turns,
            event_count,
            timeout,
            stats.open_connections,
            self.core.ready.len()
        );
        Ok(())
    }

    /// Phase 3: serve each event: a connection takes its step, a listener
    /// accepts, a handler's source is handed to the handler, the waker
    /// drains the commands of other threads. Work queued from here on
    /// (budgets, flow control) waits for the next turn.
    fn dispatch_events(&mut self) {
        let mut lp = Loop {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        let mut woken = false;
        for event in self.events.iter() {
            match token::classify(event.token()) {
                Target::Connection(slot) => connection_event(&mut lp, slot, event),
                Target::Listener(index) => lp.accept(index),
                Target::Source(index) => {
                    if lp.core.sources.get(index) != Some(&SourceSlot::Registered) {
                        // Deregistered earlier in this batch: stale.
                        lp.core.stats.stale_events += 1;
                        continue;
                    }
                    trace!("source {index}: {}", describe(event));
                    lp.call("source_ready", |handler, ctx| {
                        handler.source_ready(ctx, SourceId(index), event)
                    });
                }
                Target::Waker => woken = true,
            }
        }
        if woken {
            while let Ok(command) = self.commands.try_recv() {
                self.pending_commands.fetch_sub(1, Ordering::Relaxed);
                match command {
                    Command::Stop => {
                        debug!("stop requested");
                        lp.core.stop_requested = true;
                    }
                    Command::Shutdown(grace) => lp.core.shutdown_requested = Some(grace),
                    Command::Message(message) => {
                        lp.call("message", |handler, ctx| handler.message(ctx, message));
                    }
                    Command::Adopt(socket, peer) => lp.adopt(socket, peer),
                }
            }
        }
        lp.report_closed();
    }

    /// Phase 4: resume what earlier turns left on the ready queue
    /// (connections and listeners that used their budget with readiness
    /// left, connections flow control let go of). Only the first
    /// `carried_over` entries: whatever re-queues itself now waits for the
    /// next turn, after a zero-timeout poll has served everyone else.
    fn resume_ready(&mut self, carried_over: usize) {
        let mut lp = Loop {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        for _ in 0..carried_over {
            match lp.core.ready.pop_front() {
                Some(Ready::Conn(id)) => {
                    if let Some(conn) = lp.core.conn_mut(id) {
                        conn.in_ready_queue = false;
                        lp.step(id);
                    }
                }
                Some(Ready::Listener(index)) => {
                    if let Some(Some(listener)) = lp.core.listeners.get_mut(index) {
                        listener.in_ready_queue = false;
                        lp.accept(index);
                    }
                }
                None => break,
            }
        }
        lp.report_closed();
    }

    /// Phase 5: fire the timers that are due.
    fn fire_due_timers(&mut self) {
        let mut lp = Loop {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        let core = &mut *lp.core;
        core.timers.expire(core.now, &mut core.firing);
        while let Some((timer, kind, deadline)) = lp.core.firing.pop_front() {
            let lag = lp.core.now.saturating_duration_since(deadline);
            lp.core.stats.timer_lag.observe(lag);
            lp.fire_timer(timer, kind);
        }
        lp.report_closed();
    }

    /// Phase 6: before sleeping. Begin a requested shutdown; flush output
    /// queued for connections other than the one being served; run the
    /// handler's `before_sleep`; then settle.
    fn prepare_to_sleep(&mut self) {
        let mut lp = Loop {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        if let Some(grace) = lp.core.shutdown_requested.take() {
            lp.begin_shutdown(grace);
        }
        lp.flush_dirty();
        lp.call("before_sleep", |handler, ctx| handler.before_sleep(ctx));
        settle(&mut lp);
    }

    /// The turn's health, for operators: how long its work took (busy
    /// time, and the turn-duration histogram) and what it leaves queued.
    /// One clock reading; the wait in the next `poll` is measured from it.
    fn measure_turn(&mut self) {
        let ended = Instant::now();
        let busy = ended.saturating_duration_since(self.core.now);
        let stats = &mut self.core.stats;
        stats.loop_busy_ns += nanos(busy);
        stats.turn_duration.observe(busy);
        stats.ready_queue_depth = self.core.ready.len() as u64;
        stats.handle_queue_depth = self.pending_commands.load(Ordering::Relaxed) as u64;
        self.turn_ended_at = ended;
    }

    /// Phase 7: free the slots of connections closed this turn and the
    /// indices of sources deregistered this turn (only now may a newcomer
    /// reuse one, so no event of this turn's batch could reach the wrong
    /// one) and publish the counters for `Handle`s.
    fn end_turn(&mut self) {
        self.core.free_closed_slots();
        self.core.free_retired_sources();
        self.publish_stats();
    }

    /// Bookkeeping after callbacks ran outside a turn (`with_context`): the
    /// same as the end of a turn, so what they wrote or closed is not left
    /// for the next one.
    pub(crate) fn after_callbacks(&mut self) {
        let mut lp = Loop {
            core: &mut self.core,
            handler: &mut self.handler,
        };
        if let Some(grace) = lp.core.shutdown_requested.take() {
            lp.begin_shutdown(grace);
        }
        settle(&mut lp);
        self.end_turn();
    }
}

/// Flushes and reports until neither leaves work: a `closed` callback may
/// write (a chat announces a departure) or close another connection (a proxy
/// closes the partner), and a flush may close a connection (a write error).
/// The loop must not sleep with output unsent or a close untold.
fn settle<H: Handler>(lp: &mut Loop<'_, H>) {
    loop {
        lp.flush_dirty();
        lp.report_closed();
        if lp.core.dirty.is_empty() && lp.core.unreported.is_empty() {
            break;
        }
    }
}

/// An event for a connection slot: fold it into the connection's flags and
/// let it take its step, unless it closed earlier in this batch (a stale
/// event: its slot is not freed before the turn ends, so it cannot belong
/// to anyone else).
#[inline]
fn connection_event<H: Handler>(lp: &mut Loop<'_, H>, slot: usize, event: &Event) {
    let Some(conn) = lp.core.conns.get_mut(slot) else {
        lp.core.stats.stale_events += 1;
        return;
    };
    if conn.is_closed() {
        trace!(
            "conn {}: stale event skipped ({})",
            conn.id,
            describe(event)
        );
        lp.core.stats.stale_events += 1;
        return;
    }
    trace!("conn {}: {} in {:?}", conn.id, describe(event), conn.state);
    note_readiness(conn, event);
    let id = conn.id;
    lp.step(id);
}

/// An event's flags for the trace log, e.g. `event [R W RC]`.
fn describe(event: &Event) -> String {
    let flags = [
        (event.is_readable(), "R"),
        (event.is_writable(), "W"),
        (event.is_read_closed(), "RC"),
        (event.is_write_closed(), "WC"),
        (event.is_error(), "ERR"),
    ];
    let set: Vec<&str> = flags.iter().filter(|f| f.0).map(|f| f.1).collect();
    format!("event [{}]", set.join(" "))
}
