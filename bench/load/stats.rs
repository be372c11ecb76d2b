//! What a run measured ([`Measured`], [`Run`]) and how rounds are summed up:
//! medians, and medians with min–max ([`Spread`]).
//!
//! Medians because on a shared machine single runs wander; the min–max
//! shows by how much.

use crate::servers::Placement;

/// Figures of one run, as measured by the load tool and from `/proc`.
#[derive(Clone, Debug, Default)]
pub(crate) struct Measured {
    /// Verified messages per second.
    pub(crate) msgs_per_sec: f64,
    /// Payload MiB per second.
    pub(crate) mib_per_sec: f64,
    /// Latency percentiles in µs: p50, p90, p99, p99.9, max.
    pub(crate) latency_us: [f64; 5],
    /// Server CPU seconds during the measured window.
    pub(crate) server_cpu_s: f64,
    /// Length of that window as the bench saw it, seconds.
    pub(crate) window_s: f64,
    /// Server CPU µs per message (0 when no message was measured).
    pub(crate) server_us_per_msg: f64,
    /// Load client CPU seconds (utime + stime): loadgen's own count over
    /// its measured window, or the whole wrk / redis-benchmark process over
    /// its run (which is then `window_s`); 0 when not measured.
    pub(crate) client_cpu_s: f64,
    /// Host steal time over the measured window as a share of the host's
    /// CPU capacity in it (online CPUs × `window_s`), from the `cpu` line of
    /// `/proc/stat`: 0 none, 1 every CPU taken by the hypervisor for the
    /// whole window. Machine-wide, not the server's alone. `None` when not
    /// measured.
    pub(crate) steal: Option<f64>,
    /// Errors the load tool counted (mismatch, lost, refused, timeout).
    pub(crate) errors: u64,
    /// Mismatched bytes among them.
    pub(crate) mismatched_bytes: u64,
    /// Connections that came up.
    pub(crate) established: u64,
    /// Connections asked for.
    pub(crate) requested: u64,
    /// Idle scenario: server resident memory growth per connection, bytes.
    pub(crate) rss_per_conn: Option<f64>,
    /// Why the run failed, if it did; figures are then not used.
    pub(crate) failure: Option<String>,
    /// Where server and client ran, for rows whose placement is their
    /// own (the many-loops rows); `None`: the bench's usual one.
    pub(crate) placement: Option<Placement>,
    /// Bytes each of the server's loops read over its whole run (warm-up
    /// included), from its exit lines; empty for one-loop servers.
    pub(crate) loop_bytes: Vec<u64>,
}

impl Measured {
    /// Server CPU share of the window: below 0.9 the server was not the
    /// bottleneck.
    pub(crate) fn server_util(&self) -> f64 {
        if self.window_s > 0.0 {
            self.server_cpu_s / self.window_s
        } else {
            0.0
        }
    }

    /// Client CPU share of the window: from 0.9 up the client, not the
    /// server, bounded the run. `None` when the client's CPU was not measured.
    pub(crate) fn client_util(&self) -> Option<f64> {
        (self.window_s > 0.0 && self.client_cpu_s > 0.0).then(|| self.client_cpu_s / self.window_s)
    }
}

/// One run in the record.
#[derive(Clone, Debug)]
pub(crate) struct Run {
    /// Scenario name.
    pub(crate) scenario: String,
    /// Peer name.
    pub(crate) peer: &'static str,
    /// Round number, from 0.
    pub(crate) round: usize,
    /// The figures.
    pub(crate) m: Measured,
}

/// Figures `f` of the successful runs of `peer` in `scenario`.
pub(crate) fn values(
    runs: &[Run],
    scenario: &str,
    peer: &str,
    f: impl Fn(&Measured) -> Option<f64>,
) -> Vec<f64> {
    runs.iter()
        .filter(|r| r.scenario == scenario && r.peer == peer && r.m.failure.is_none())
        .filter_map(|r| f(&r.m))
        .collect()
}

/// The median of `v` (mean of the middle two when even); `None` if empty.
pub(crate) fn median(v: &[f64]) -> Option<f64> {
    if v.is_empty() {
        return None;
    }
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    let n = s.len();
    Some(if n % 2 == 1 {
        s[n / 2]
    } else {
        (s[n / 2 - 1] + s[n / 2]) / 2.0
    })
}

/// Median with min–max, for the tables.
pub(crate) struct Spread {
    /// Median.
    pub(crate) median: f64,
    /// Smallest.
    pub(crate) min: f64,
    /// Largest.
    pub(crate) max: f64,
}

/// Median, min and max of `v`; `None` if empty.
pub(crate) fn spread(v: &[f64]) -> Option<Spread> {
    Some(Spread {
        median: median(v)?,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}
