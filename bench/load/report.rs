//! The report's content: a row per peer and scenario summarised over
//! rounds, the project's ratios to each peer, and the notes that flag rows
//! whose figures do not measure the server.
//!
//! The renderings (`tables.rs`, `json.rs`, `charts.rs`) are other modules
//! reading the same [`Report`], so stdout, `report.md`, `report.json` and
//! the charts are made from one record.

use std::collections::BTreeMap;

use crate::peers::Peer;
use crate::scenarios::{Scenario, Workload};
use crate::servers::Placement;
use crate::stats::{median, spread, values, Measured, Run, Spread};
use crate::Options;

/// Everything the report needs.
pub(crate) struct Report<'a> {
    /// How the bench was invoked.
    pub(crate) options: &'a Options,
    /// Peers that ran.
    pub(crate) peers: &'a [Peer],
    /// Scenarios that ran, in order.
    pub(crate) scenarios: &'a [Scenario],
    /// Scenarios selected but not run, each with a one-line reason; none
    /// of them is in `scenarios`.
    pub(crate) skipped: &'a [(Scenario, String)],
    /// Every run.
    pub(crate) runs: &'a [Run],
    /// Open-loop rate per fixed-rate scenario.
    pub(crate) rates: &'a BTreeMap<String, f64>,
    /// Machine summary.
    pub(crate) machine: String,
    /// Whether server and client were pinned to separate CPUs.
    pub(crate) pinned: bool,
    /// Seconds the whole bench took.
    pub(crate) elapsed: f64,
}

/// One row of the summary: a peer in a scenario, medians over rounds.
pub(crate) struct Row {
    /// Scenario name.
    pub(crate) scenario: String,
    /// Peer name.
    pub(crate) peer: &'static str,
    /// Messages per second.
    pub(crate) rate: Option<Spread>,
    /// Server CPU µs per message.
    pub(crate) cpu: Option<Spread>,
    /// Latency percentiles in µs (medians).
    pub(crate) latency: [Option<f64>; 5],
    /// Median server CPU share of the window.
    pub(crate) util: Option<f64>,
    /// Median client CPU share of the window (loadgen, wrk or
    /// redis-benchmark); `None` when no run measured it.
    pub(crate) client_util: Option<f64>,
    /// Median host steal share of the window (see [`Measured::steal`]).
    pub(crate) steal: Option<f64>,
    /// This peer's median throughput ÷ the client-ceiling peer's in the
    /// same scenario; `None` for the ceiling itself and where there is none.
    of_ceiling: Option<(&'static str, f64)>,
    /// Idle: RSS bytes per connection.
    pub(crate) rss: Option<Spread>,
    /// Failed runs out of all runs.
    failed: usize,
    /// Runs.
    total: usize,
    /// First failure message, if any.
    failure: Option<String>,
    /// A fixed-rate scenario: the server is meant to be partly idle.
    open_loop: bool,
    /// The scenario's cgroup CPU cap on the server, percent of one CPU
    /// (see [`Scenario::server_cpu_percent`]); `None`: uncapped, saturated
    /// is 100%.
    cap: Option<u32>,
    /// Where server and client ran, for the many-loops rows (their own
    /// placement per loop count); `None`: the bench's usual one.
    placement: Option<Placement>,
    /// Each loop's share of the bytes read, summed over the row's runs
    /// (many-loops rows from 2 loops up; empty otherwise).
    pub(crate) loop_share: Vec<f64>,
}

/// Each loop's share of the bytes read over `runs` (successful ones),
/// from the servers' per-loop exit lines; empty when none printed them.
fn loop_share(runs: &[&Run]) -> Vec<f64> {
    let mut sums: Vec<u64> = Vec::new();
    for r in runs.iter().filter(|r| r.m.failure.is_none()) {
        if sums.len() < r.m.loop_bytes.len() {
            sums.resize(r.m.loop_bytes.len(), 0);
        }
        for (sum, bytes) in sums.iter_mut().zip(&r.m.loop_bytes) {
            *sum += bytes;
        }
    }
    let total: u64 = sums.iter().sum();
    if total == 0 {
        return Vec::new();
    }
    sums.iter().map(|&b| b as f64 / total as f64).collect()
}

/// The project against one peer in one scenario: medians of per-round
/// ratios, project ÷ peer.
pub(crate) struct Ratio {
    /// Scenario name.
    pub(crate) scenario: String,
    /// The peer.
    pub(crate) peer: &'static str,
    /// Messages per second (above 1: the project is faster). `None` for
    /// fixed-rate scenarios, where every server is given the same rate.
    pub(crate) throughput: Option<f64>,
    /// Server CPU per message (below 1: the project is cheaper).
    pub(crate) cpu: Option<f64>,
    /// p99 latency (below 1: the project answers sooner).
    pub(crate) p99: Option<f64>,
}

impl Report<'_> {
    /// One [`Row`] per scenario and peer of its protocol, in run order.
    pub(crate) fn rows(&self) -> Vec<Row> {
        let mut rows = Vec::new();
        for s in self.scenarios {
            for p in self.peers.iter().filter(|p| p.protocol == s.protocol) {
                let v =
                    |f: &dyn Fn(&Measured) -> Option<f64>| values(self.runs, &s.name, p.name, f);
                let mine: Vec<&Run> = self
                    .runs
                    .iter()
                    .filter(|r| r.scenario == s.name && r.peer == p.name)
                    .collect();
                let idle = matches!(s.workload, Workload::Idle { .. });
                // A latency of 0 is one the tool did not give (wrk has no
                // p99.9, nor percentiles when pipelined): blank, not 0.
                let mut latency = [None; 5];
                for (i, slot) in latency.iter_mut().enumerate() {
                    *slot = median(&v(&|m| (m.latency_us[i] > 0.0).then_some(m.latency_us[i])));
                }
                rows.push(Row {
                    scenario: s.name.clone(),
                    peer: p.name,
                    rate: if idle {
                        None
                    } else {
                        spread(&v(&|m| Some(m.msgs_per_sec)))
                    },
                    cpu: if idle {
                        None
                    } else {
                        spread(&v(&|m| {
                            (m.server_us_per_msg > 0.0).then_some(m.server_us_per_msg)
                        }))
                    },
                    latency: if idle { [None; 5] } else { latency },
                    util: median(&v(&|m| Some(m.server_util()))),
                    client_util: median(&v(&|m| m.client_util())),
                    steal: median(&v(&|m| m.steal)),
                    of_ceiling: if idle {
                        None
                    } else {
                        self.peers
                            .iter()
                            .find(|c| c.ceiling && c.protocol == s.protocol && c.name != p.name)
                            .and_then(|c| {
                                let mine = median(&v(&|m| Some(m.msgs_per_sec)))?;
                                let top = median(&values(self.runs, &s.name, c.name, |m| {
                                    Some(m.msgs_per_sec)
                                }))?;
                                (top > 0.0).then(|| (c.name, mine / top))
                            })
                    },
                    rss: spread(&v(&|m| m.rss_per_conn)),
                    failed: mine.iter().filter(|r| r.m.failure.is_some()).count(),
                    total: mine.len(),
                    failure: mine.iter().find_map(|r| r.m.failure.clone()),
                    open_loop: matches!(s.workload, Workload::FixedRate { .. }),
                    cap: s.server_cpu_percent,
                    placement: mine.iter().find_map(|r| r.m.placement.clone()),
                    loop_share: loop_share(&mine),
                });
            }
        }
        rows
    }

    /// Project ÷ peer per scenario: median of per-round ratios of
    /// throughput and of server CPU per message.
    pub(crate) fn ratios(&self) -> Vec<Ratio> {
        let mut out = Vec::new();
        for s in self.scenarios {
            if matches!(s.workload, Workload::Idle { .. }) {
                continue;
            }
            let Some(project) = self
                .peers
                .iter()
                .find(|p| p.is_project && p.protocol == s.protocol)
            else {
                continue;
            };
            for p in self
                .peers
                .iter()
                .filter(|p| !p.is_project && p.protocol == s.protocol)
            {
                let per_round = |f: &dyn Fn(&Measured) -> f64| {
                    let mut ratios = Vec::new();
                    for round in 0..self.options.rounds {
                        let find = |name: &str| {
                            self.runs.iter().find(|r| {
                                r.scenario == s.name
                                    && r.peer == name
                                    && r.round == round
                                    && r.m.failure.is_none()
                            })
                        };
                        if let (Some(a), Some(b)) = (find(project.name), find(p.name)) {
                            let (x, y) = (f(&a.m), f(&b.m));
                            if x > 0.0 && y > 0.0 {
                                ratios.push(x / y);
                            }
                        }
                    }
                    median(&ratios)
                };
                let open_loop = matches!(s.workload, Workload::FixedRate { .. });
                out.push(Ratio {
                    scenario: s.name.clone(),
                    peer: p.name,
                    throughput: if open_loop {
                        None
                    } else {
                        per_round(&|m| m.msgs_per_sec)
                    },
                    cpu: per_round(&|m| m.server_us_per_msg),
                    p99: per_round(&|m| m.latency_us[2]),
                });
            }
        }
        out
    }

    /// The row's notes: failed runs, and why its figures may measure the
    /// client, the cap or the host rather than the server; "" when none.
    pub(crate) fn warnings(row: &Row) -> String {
        let mut w = Vec::new();
        if let Some(p) = &row.placement {
            w.push(p.note());
        }
        if !row.loop_share.is_empty() {
            let shares: Vec<String> = row
                .loop_share
                .iter()
                .map(|s| format!("{:.0}", s * 100.0))
                .collect();
            w.push(format!("per-loop share of bytes {}%", shares.join("/")));
        }
        if row.failed > 0 {
            w.push(format!(
                "{}/{} runs failed: {}",
                row.failed,
                row.total,
                row.failure.as_deref().unwrap_or("")
            ));
        }
        // A fixed-rate run is meant to leave the server partly idle.
        if row.rss.is_none() && !row.open_loop {
            if let Some(percent) = row.cap {
                w.push(format!(
                    "server held to {percent}% of one CPU (cgroup): server-bound by design"
                ));
            }
            // Saturated is the whole CPU, or the cap where there is one,
            // or every CPU a many-loops server may use.
            let cpus = row.placement.as_ref().map_or(1, |p| p.server_cpus);
            let full = row.cap.map_or(cpus as f64, |p| f64::from(p) / 100.0);
            if let Some(u) = row.util {
                if u < 0.9 * full {
                    w.push(format!(
                        "server at {:.0}% CPU{}: not saturated (client, round trip, or other load on the machine)",
                        u * 100.0,
                        row.cap
                            .map_or(String::new(), |p| format!(", under its {p}% cap"))
                    ));
                }
            }
            // A client of several threads (many-loops rows) has as many CPUs.
            let client_cpus = row.placement.as_ref().map_or(1, |p| p.client_threads) as f64;
            if let Some(u) = row.client_util.filter(|u| *u >= 0.9 * client_cpus) {
                w.push(format!(
                    "client saturated ({:.0}% CPU): client-bound",
                    u * 100.0
                ));
            }
            // Capped, the ceiling peer is held to the same cap: it is no
            // longer what the client can drive, so a share of it says
            // nothing about the client. Whether a capped row is
            // client-bound is read from its CPU against the cap, above.
            if let Some((ceiling, share)) =
                row.of_ceiling.filter(|c| c.1 >= 0.9 && row.cap.is_none())
            {
                w.push(format!(
                    "at {:.0}% of {ceiling}'s throughput (the client's ceiling): client-bound",
                    share * 100.0
                ));
            }
        }
        // Resident memory does not depend on CPU time; everything else does.
        if let Some(steal) = row.steal.filter(|s| *s >= 0.05 && row.rss.is_none()) {
            w.push(format!(
                "host steal {:.0}%: figures unreliable",
                steal * 100.0
            ));
        }
        w.join("; ")
    }
}
