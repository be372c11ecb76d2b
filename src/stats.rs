//! Counters that show what the loop did, readable from the handler and from
//! other threads.
//!
//! The loop owns a plain `Stats` and bumps fields with ordinary additions (no
//! atomics on the hot path). Once per turn it copies the struct into a
//! mutex-guarded snapshot that [`Handle::stats`](crate::Handle::stats) reads,
//! so another thread sees figures at most one turn old.

use std::time::Duration;

use crate::close_reason::CloseReason;

/// Upper bounds, in nanoseconds, of the buckets of a [`DurationHistogram`]
/// (1 µs to 10 s, 1-2.5-5 steps); one more bucket holds the rest (+Inf).
/// Fixed, so recording never allocates and every loop's histograms can be
/// added up bucket by bucket.
pub const DURATION_BUCKETS_NS: [u64; 22] = [
    1_000,
    2_500,
    5_000,
    10_000,
    25_000,
    50_000,
    100_000,
    250_000,
    500_000,
    1_000_000,
    2_500_000,
    5_000_000,
    10_000_000,
    25_000_000,
    50_000_000,
    100_000_000,
    250_000_000,
    500_000_000,
    1_000_000_000,
    2_500_000_000,
    5_000_000_000,
    10_000_000_000,
];

/// A histogram of durations in fixed buckets ([`DURATION_BUCKETS_NS`]):
/// how many observations fell in each (not cumulative), their sum and
/// their count. Prometheus's cumulative buckets come from
/// [`DurationHistogram::cumulative`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DurationHistogram {
    /// Observations per bucket: `counts[i]` for those at most
    /// `DURATION_BUCKETS_NS[i]` (and above the bucket before); the last
    /// for those above every bound.
    pub counts: [u64; DURATION_BUCKETS_NS.len() + 1],
    /// Sum of every observation, in nanoseconds.
    pub sum_ns: u64,
    /// Number of observations. Invariant: the sum of `counts`.
    pub count: u64,
}

impl DurationHistogram {
    /// Records one duration.
    #[inline]
    pub fn observe(&mut self, duration: Duration) {
        let ns = nanos(duration);
        let bucket = DURATION_BUCKETS_NS
            .iter()
            .position(|&bound| ns <= bound)
            .unwrap_or(DURATION_BUCKETS_NS.len());
        self.counts[bucket] += 1;
        self.sum_ns = self.sum_ns.saturating_add(ns);
        self.count += 1;
    }

    /// The buckets as Prometheus wants them: each upper bound (`None` for
    /// +Inf) with the number of observations at most that bound.
    pub fn cumulative(&self) -> impl Iterator<Item = (Option<Duration>, u64)> + '_ {
        let bounds = DURATION_BUCKETS_NS
            .iter()
            .map(|&ns| Some(Duration::from_nanos(ns)))
            .chain([None]);
        bounds.zip(self.counts.iter().scan(0, |total, &n| {
            *total += n;
            Some(*total)
        }))
    }

    /// Adds `other`'s observations to these (several loops' figures summed).
    pub fn add(&mut self, other: &DurationHistogram) {
        for (mine, theirs) in self.counts.iter_mut().zip(other.counts) {
            *mine += theirs;
        }
        self.sum_ns = self.sum_ns.saturating_add(other.sum_ns);
        self.count += other.count;
    }
}

/// A duration in whole nanoseconds (saturating: a u64 holds 584 years).
#[inline]
pub(crate) fn nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// Everything the reactor counts. All counters start at zero and only grow,
/// except the gauges (marked "Gauge").
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted from listeners (including rejected ones).
    pub accepted: u64,
    /// Accepted connections closed at once because `max_connections` was reached.
    pub rejected: u64,
    /// Connections accepted by another loop and handed to this one
    /// (`Handle::adopt`; including rejected ones).
    pub adopted: u64,
    /// Outbound connections started with `Context::connect`.
    pub connects_started: u64,
    /// Connections closed, by reason; index with [`CloseReason::index`].
    pub closed_by_reason: [u64; CloseReason::COUNT],
    /// Bytes read from connections.
    pub bytes_in: u64,
    /// Bytes written to connections.
    pub bytes_out: u64,
    /// Calls to `poll` (one per turn, plus retries after `EINTR`).
    pub poll_calls: u64,
    /// Turns of the loop (one `poll` each). `events / turns` is the mean
    /// number of events a turn serves.
    pub turns: u64,
    /// Time the loop spent working: from `poll`'s return to the end of the
    /// turn, in nanoseconds. Busy ratio = busy / (busy + wait); near 1 the
    /// loop has no slack left.
    pub loop_busy_ns: u64,
    /// Time the loop spent in `poll` (waiting, or collecting events), in
    /// nanoseconds.
    pub loop_wait_ns: u64,
    /// How long each turn's work took (the busy part of a turn).
    pub turn_duration: DurationHistogram,
    /// How late each timer fired, measured from its deadline (rounded up
    /// to the wheel's tick) to the turn that fired it. A handler that
    /// blocks shows here first: everything waits for it, timers included.
    pub timer_lag: DurationHistogram,
    /// Gauge: entries on the ready queue when the last turn ended (work
    /// carried over: budgets used up, flow control let go).
    pub ready_queue_depth: u64,
    /// Gauge: commands and messages from other threads ([`Handle`]) waiting
    /// for the loop when the last turn ended.
    ///
    /// [`Handle`]: crate::Handle
    pub handle_queue_depth: u64,
    /// `Handler::data` calls: messages in, as the handler sees them (one
    /// per read, plus offers of kept input).
    pub data_calls: u64,
    /// `Context::write`/`write_vec` calls on a connection that takes
    /// output: messages out, as the handler writes them.
    pub writes: u64,
    /// Events returned by `poll`.
    pub events: u64,
    /// `read`/`recv` system calls on connections.
    pub read_syscalls: u64,
    /// `send`/`sendmsg` system calls on connections.
    pub write_syscalls: u64,
    /// Reads or writes that returned `WouldBlock`.
    pub would_blocks: u64,
    /// Times a connection or listener used up its per-turn budget and was
    /// put on the ready queue for the next turn.
    pub budget_yields: u64,
    /// Times a connection's queued output reached its high-water mark
    /// (it was then backpressured until it fell below low water).
    pub backpressure_events: u64,
    /// Sends made at once because a write took a queue to its high-water
    /// mark, instead of waiting for the end of the callback or the turn.
    pub write_throughs: u64,
    /// Times a connection stopped reading (held until a drain, at most
    /// `Config::fanout_hold`) because its input, fanned out to others, left
    /// one still taking bytes above high water.
    pub fanout_yields: u64,
    /// Events dropped because their connection closed earlier in the batch.
    pub stale_events: u64,
    /// Handler callbacks that panicked (each closed its connection, if any).
    pub handler_panics: u64,
    /// Times accepting paused because the process ran out of descriptors.
    pub accept_pauses: u64,
    /// Handler timers fired.
    pub timers_fired: u64,
    /// TLS handshakes completed, accepted and outbound.
    pub tls_handshakes: u64,
    /// TLS handshakes that ended without completing: a protocol error, a
    /// timeout, the peer leaving, or the connection closed meanwhile.
    pub tls_handshake_failures: u64,
    /// TLS connections whose peer ended TCP without a `close_notify`
    /// (closed with [`CloseReason::TlsTruncated`]).
    pub tls_truncations: u64,
    /// Gauge: accepted TLS connections whose handshake is in progress
    /// (at most `Config::max_tls_handshakes`).
    pub tls_handshakes_in_progress: u64,
    /// Gauge: connections currently held (any state but closed).
    pub open_connections: u64,
    /// Gauge: bytes queued for writing across all connections.
    pub queued_output_bytes: u64,
}

impl Stats {
    /// Connections closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed_by_reason[reason.index()]
    }

    /// Connections closed for any reason.
    pub fn closed_total(&self) -> u64 {
        self.closed_by_reason.iter().sum()
    }

    /// Adds `other`'s figures to these: counters, gauges and histograms
    /// alike, for the total of several loops (`LoopsHandle::stats_sum`).
    /// Every field is named, so a new one cannot be forgotten here.
    pub fn add(&mut self, other: &Stats) {
        let Stats {
            accepted,
            rejected,
            adopted,
            connects_started,
            closed_by_reason,
            bytes_in,
            bytes_out,
            poll_calls,
            turns,
            loop_busy_ns,
            loop_wait_ns,
            turn_duration,
            timer_lag,
            ready_queue_depth,
            handle_queue_depth,
            data_calls,
            writes,
            events,
            read_syscalls,
            write_syscalls,
            would_blocks,
            budget_yields,
            backpressure_events,
            write_throughs,
            fanout_yields,
            stale_events,
            handler_panics,
            accept_pauses,
            timers_fired,
            tls_handshakes,
            tls_handshake_failures,
            tls_truncations,
            tls_handshakes_in_progress,
            open_connections,
            queued_output_bytes,
        } = other;
        self.accepted += accepted;
        self.rejected += rejected;
        self.adopted += adopted;
        self.connects_started += connects_started;
        for (mine, theirs) in self.closed_by_reason.iter_mut().zip(closed_by_reason) {
            *mine += theirs;
        }
        self.bytes_in += bytes_in;
        self.bytes_out += bytes_out;
        self.poll_calls += poll_calls;
        self.turns += turns;
        self.loop_busy_ns += loop_busy_ns;
        self.loop_wait_ns += loop_wait_ns;
        self.turn_duration.add(turn_duration);
        self.timer_lag.add(timer_lag);
        self.ready_queue_depth += ready_queue_depth;
        self.handle_queue_depth += handle_queue_depth;
        self.data_calls += data_calls;
        self.writes += writes;
        self.events += events;
        self.read_syscalls += read_syscalls;
        self.write_syscalls += write_syscalls;
        self.would_blocks += would_blocks;
        self.budget_yields += budget_yields;
        self.backpressure_events += backpressure_events;
        self.write_throughs += write_throughs;
        self.fanout_yields += fanout_yields;
        self.stale_events += stale_events;
        self.handler_panics += handler_panics;
        self.accept_pauses += accept_pauses;
        self.timers_fired += timers_fired;
        self.tls_handshakes += tls_handshakes;
        self.tls_handshake_failures += tls_handshake_failures;
        self.tls_truncations += tls_truncations;
        self.tls_handshakes_in_progress += tls_handshakes_in_progress;
        self.open_connections += open_connections;
        self.queued_output_bytes += queued_output_bytes;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_land_in_the_bucket_of_their_upper_bound() {
        let mut histogram = DurationHistogram::default();
        histogram.observe(Duration::from_nanos(1_000)); // exactly 1 µs: first bucket
        histogram.observe(Duration::from_nanos(1_001)); // just above: second
        histogram.observe(Duration::from_millis(3)); // 2.5 ms < 3 ms <= 5 ms
        histogram.observe(Duration::from_secs(60)); // above 10 s: +Inf
        assert_eq!(histogram.counts[0], 1);
        assert_eq!(histogram.counts[1], 1);
        let five_ms = DURATION_BUCKETS_NS
            .iter()
            .position(|&b| b == 5_000_000)
            .unwrap();
        assert_eq!(histogram.counts[five_ms], 1);
        assert_eq!(histogram.counts[DURATION_BUCKETS_NS.len()], 1);
        assert_eq!(histogram.count, 4);
        let cumulative: Vec<_> = histogram.cumulative().collect();
        assert_eq!(
            cumulative.first(),
            Some(&(Some(Duration::from_micros(1)), 1))
        );
        assert_eq!(cumulative.last(), Some(&(None, 4)));
        let mut twice = histogram.clone();
        twice.add(&histogram);
        assert_eq!(twice.count, 8);
        assert_eq!(twice.sum_ns, 2 * histogram.sum_ns);
    }
}
