//! Latency: what one message's latency is, and the histograms it goes into.
//!
//! Closed loop, a message's latency counts from when it was written. Open
//! loop (`--rate`), it counts from when the schedule meant it to be written,
//! so a stalled server is charged for the messages it delayed (wrk2's
//! answer to coordinated omission). The histograms are allocated once: the
//! generator must not be the bottleneck, so no message allocates.

use std::sync::atomic::Ordering;
use std::time::Instant;

use hdrhistogram::Histogram;

use crate::generator::Generator;

/// A histogram for latencies in nanoseconds.
pub fn histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits: allocated once.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

/// One thread's latency records.
pub struct Latency {
    /// Messages completed inside the measured window: the reported figures.
    measured: Histogram<u64>,
    /// Messages completed in the current second, any phase: for the
    /// progress line, emptied every second.
    this_second: Histogram<u64>,
}

impl Latency {
    /// Empty histograms.
    pub fn new() -> Self {
        Latency {
            measured: histogram(),
            this_second: histogram(),
        }
    }

    /// The p99 of the second just ended, in nanoseconds; starts the next.
    pub fn end_second(&mut self) -> u64 {
        let p99 = self.this_second.value_at_quantile(0.99);
        self.this_second.reset();
        p99
    }

    /// The measured window's histogram, handed over at the end.
    pub fn take_measured(&mut self) -> Histogram<u64> {
        std::mem::replace(&mut self.measured, histogram())
    }
}

impl Generator {
    /// Records message `m` of local connection `local`, echoed and verified
    /// at `now`, written at `sent_at`.
    pub fn complete(&mut self, now: Instant, local: usize, m: u64, sent_at: Instant) {
        self.progress.messages.fetch_add(1, Ordering::Relaxed);
        let from = self.pacer.intended(local, m).unwrap_or(sent_at);
        let ns = now.saturating_duration_since(from).as_nanos().max(1) as u64;
        // Beyond 100 s it is a timeout, counted elsewhere; the histogram
        // may drop it.
        let _ = self.latency.this_second.record(ns);
        if self.schedule.in_window(now) {
            self.counters.messages += 1;
            let _ = self.latency.measured.record(ns);
        }
    }
}
