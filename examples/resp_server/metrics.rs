//! The `resp_server` example's own counters for INFO's `stats` section, and
//! the rates Redis reports as `instantaneous_*`: the commands run, keyspace
//! hits and misses, and a sampler that turns the loop's byte counters and
//! the command count into per-second rates.
//!
//! Rates are measured the way Redis measures them (`trackInstantaneousMetric`
//! in its `serverCron`): a timer samples each counter every 100 ms, and the
//! rate is the mean of the last 16 samples' per-second deltas, so a client
//! sees about the last 1.6 s, not the average since start.
//!
//! Also the process-level facts INFO's `memory` section needs that only the
//! kernel knows (the resident set size).

use std::time::{Duration, Instant};

/// How often the sampler runs (Redis's default `hz` of 10).
pub const SAMPLE_EVERY: Duration = Duration::from_millis(100);

/// Samples averaged into one rate (Redis's `STATS_METRIC_SAMPLES`).
const SAMPLES: usize = 16;

/// The counters INFO's rates come from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Rate {
    /// Commands processed.
    #[default]
    Commands,
    /// Bytes read from clients.
    NetInput,
    /// Bytes written to clients.
    NetOutput,
}

/// One counter's recent per-second deltas.
#[derive(Debug, Default)]
struct Track {
    /// The counter and the time at the last sample.
    last: Option<(u64, Instant)>,
    /// Per-second rates of the last `SAMPLES` intervals (a ring).
    samples: [u64; SAMPLES],
    /// Where the next sample goes.
    at: usize,
}

impl Track {
    fn sample(&mut self, value: u64, now: Instant) {
        if let Some((before, then)) = self.last {
            let ms = now.saturating_duration_since(then).as_millis() as u64;
            // Two samples in the same millisecond make no interval.
            if let Some(rate) = (value.saturating_sub(before) * 1000).checked_div(ms) {
                self.samples[self.at] = rate;
                self.at = (self.at + 1) % SAMPLES;
            }
        }
        self.last = Some((value, now));
    }

    /// The mean of the samples (intervals not yet sampled count as 0, as
    /// in Redis: a server that just started reports a ramping rate).
    fn rate(&self) -> u64 {
        self.samples.iter().sum::<u64>() / SAMPLES as u64
    }
}

/// The server's command-level counters and the sampled rates.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Commands run (`total_commands_processed`): every command a client
    /// sent that the server answered, refused ones included, as Redis
    /// counts `call()`s plus rejected commands.
    pub commands: u64,
    /// Reads that found their key (`keyspace_hits`).
    pub hits: u64,
    /// Reads that did not (`keyspace_misses`).
    pub misses: u64,
    /// The rates, indexed by `Rate`.
    tracks: [Track; 3],
}

impl Metrics {
    /// Records one interval's samples: the command count and the loop's
    /// byte counters as of `now`.
    pub fn sample(&mut self, now: Instant, bytes_in: u64, bytes_out: u64) {
        let commands = self.commands;
        for (track, value) in self.tracks.iter_mut().zip([commands, bytes_in, bytes_out]) {
            track.sample(value, now);
        }
    }

    /// The per-second rate of `rate` over the last samples.
    pub fn rate(&self, rate: Rate) -> u64 {
        self.tracks[rate as usize].rate()
    }

    /// A read of a key: found or not.
    pub fn lookup(&mut self, found: bool) {
        if found {
            self.hits += 1;
        } else {
            self.misses += 1;
        }
    }
}

/// The process's resident set size in bytes (`VmRSS` of
/// /proc/self/status), or 0 where the kernel does not say.
pub fn rss_bytes() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| {
            rest.trim()
                .trim_end_matches("kB")
                .trim()
                .parse::<u64>()
                .ok()
        })
        .map_or(0, |kib| kib * 1024)
}

/// Bytes as Redis's `bytesToHuman` prints them: `512B`, `1.50K`, `3.00M`.
pub fn human(bytes: u64) -> String {
    const UNITS: [(u64, &str); 5] = [
        (1 << 50, "P"),
        (1 << 40, "T"),
        (1 << 30, "G"),
        (1 << 20, "M"),
        (1 << 10, "K"),
    ];
    for (size, unit) in UNITS {
        if bytes >= size {
            return format!("{:.2}{unit}", bytes as f64 / size as f64);
        }
    }
    format!("{bytes}B")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn human_matches_redis() {
        assert_eq!(human(512), "512B");
        assert_eq!(human(1536), "1.50K");
        assert_eq!(human(3 << 20), "3.00M");
    }

    #[test]
    fn rate_is_the_mean_of_recent_samples() {
        let mut track = Track::default();
        let start = Instant::now();
        for i in 0..=SAMPLES as u64 {
            // 10 more every 100 ms: 100 per second.
            track.sample(i * 10, start + SAMPLE_EVERY * i as u32);
        }
        assert_eq!(track.rate(), 100);
    }
}
