//! The scenario matrix: what each run asks of the servers, which runs a
//! quick or a full bench makes, and the rate the open-loop scenario is
//! driven at.
//!
//! Kept in one place so the matrix can be read and extended without the
//! load tools; they only turn a [`Workload`] into their own arguments.

use std::fmt::Write as _;

use crate::peers::{Peer, Protocol};
use crate::stats::{median, values, Run};
use crate::Options;

/// What one scenario asks of the servers.
#[derive(Clone, Debug)]
pub(crate) enum Workload {
    /// Closed loop: `depth` messages of `size` bytes in flight on each of
    /// `conns` connections, as fast as the server answers.
    Throughput {
        /// Connections.
        conns: usize,
        /// Message bytes.
        size: usize,
        /// Messages in flight per connection.
        depth: usize,
    },
    /// `conns` idle connections: the server's resident memory per connection.
    Idle {
        /// Connections.
        conns: usize,
    },
    /// Open loop at `fraction` of the rate [`fixed_rate`] finds (the
    /// slowest server's closed-loop median at these `conns` and `size`,
    /// depth 1) with `size`-byte messages; latency from the intended send
    /// times.
    FixedRate {
        /// Connections.
        conns: usize,
        /// Message bytes.
        size: usize,
        /// Most messages in flight per connection (room for a backlog).
        depth: usize,
        /// Share of that base rate.
        fraction: f64,
    },
    /// `wrk -c conns`: keep-alive HTTP requests; above 1, `pipeline`
    /// requests go out in one write through `scripts/pipeline.lua`.
    Http {
        /// Connections.
        conns: usize,
        /// Requests per write (1: plain wrk, one in flight per connection).
        pipeline: usize,
    },
    /// `ab -c conns` over `https://` without keep-alive (and with
    /// `Connection: close`): every request on a new connection with a full
    /// TLS handshake. ab never resumes a session (it sets none on its
    /// connections), unlike wrk and h2load, which resume after the first
    /// connection (seen in nginx's `$ssl_session_reused`).
    Handshakes {
        /// Connections at a time.
        conns: usize,
    },
    /// `redis-benchmark -t test -c conns -P pipeline`.
    Resp {
        /// redis-benchmark's test name (`-t`): `ping_mbulk`, `set`, `get`.
        test: &'static str,
        /// Connections.
        conns: usize,
        /// Requests in flight per connection.
        pipeline: usize,
    },
}

/// A named workload for one protocol.
#[derive(Clone, Debug)]
pub(crate) struct Scenario {
    /// Unique name, what `--filter` matches: `c100-s64-d1`, `idle-c10000`.
    pub(crate) name: String,
    /// Which peers it applies to.
    pub(crate) protocol: Protocol,
    /// What it does.
    pub(crate) workload: Workload,
    /// Share of one CPU, in percent (1 to 100), that every process of the
    /// server is held to by a cgroup CPU quota ([`CpuCap`]) from before the
    /// load starts until the server stops ([`run_one`], whatever the
    /// protocol); `None`: no cap. When set, the name ends in `-capN`. A
    /// RESP run's request count is sized from the server's rate at that
    /// share ([`run_redis_benchmark`]), so a capped run lasts about as long
    /// as an uncapped one.
    pub(crate) server_cpu_percent: Option<u32>,
}

/// Most bytes the generator may keep in flight in one scenario: beyond it
/// (10 000 connections × 16 × 16 KiB = 2.5 GiB) the kernel's TCP memory
/// limits, not the servers, would be measured.
const MAX_IN_FLIGHT: usize = 512 << 20;

/// The scenario matrix, before filtering.
pub(crate) fn scenarios(o: &Options, fd_limit: usize) -> Vec<Scenario> {
    // Both ends hold one descriptor per connection, plus a few of their own.
    let cap = fd_limit.saturating_sub(64);
    let mut list = Vec::new();
    let mut throughput = |conns: usize, size: usize, depth: usize| {
        if conns > cap || conns * size * depth > MAX_IN_FLIGHT {
            return;
        }
        list.push(Scenario {
            name: format!("c{conns}-s{size}-d{depth}"),
            protocol: Protocol::Echo,
            workload: Workload::Throughput { conns, size, depth },
            server_cpu_percent: None,
        });
    };
    if o.quick {
        throughput(100, 64, 1);
        throughput(1000, 64, 16);
        throughput(100, 16384, 1);
    } else {
        for conns in [1, 100, 1000, 10_000] {
            for size in [64, 1024, 16384] {
                for depth in [1, 16] {
                    throughput(conns, size, depth);
                }
            }
        }
    }
    let idle = if o.quick { 5000 } else { 10_000 }.min(cap);
    list.push(Scenario {
        name: format!("idle-c{idle}"),
        protocol: Protocol::Echo,
        workload: Workload::Idle { conns: idle },
        server_cpu_percent: None,
    });
    // (connections, requests per write, server CPU cap in percent). A quick
    // run keeps only the pipelined one: it goes through the same parser as
    // the plain runs and also through "all responses of one read leave in
    // one write", so it catches more of http_server's defects in one
    // scenario. The capped variant of c50 exists because on two vCPUs wrk
    // -t1 cannot outrun these servers at 50 connections, so plain c50
    // measures the client; with every server held to the same half core the
    // client has headroom and req/s compares the servers. It needs cgroups
    // (root), so CI's --quick leaves it out.
    let http: &[(usize, usize, Option<u32>)] = if o.quick {
        &[(256, 16, None)]
    } else {
        &[
            (50, 1, None),
            (50, 1, Some(50)),
            (1000, 1, None),
            (256, 16, None),
        ]
    };
    for &(conns, pipeline, server_cpu_percent) in http {
        let mut name = format!("http-c{conns}");
        if pipeline > 1 {
            let _ = write!(name, "-p{pipeline}");
        }
        list.push(Scenario {
            name: with_cap(name, server_cpu_percent),
            protocol: Protocol::Http,
            workload: Workload::Http { conns, pipeline },
            server_cpu_percent,
        });
    }
    // (scenario word, redis-benchmark test, pipeline, server CPU cap in
    // percent). `-t ping` would run both PING_INLINE and PING_MBULK;
    // resp_server speaks only the array (multi-bulk) form, which is also
    // what clients send, so ping_mbulk. A quick run keeps SET and GET
    // pipelined: the two commands that touch the keyspace, at the depth
    // where batching matters. The capped variants of the depth-1 runs exist
    // for the reason http-c50's does: redis-benchmark is single-threaded,
    // and on two vCPUs it runs at 98-99% of its CPU against both servers
    // with neither saturated, so plain p1 measures the client; held to the
    // same half core, the servers set the pace. Also root only, so not in
    // --quick.
    let resp: &[(&str, &'static str, usize, Option<u32>)] = if o.quick {
        &[("set", "set", 16, None), ("get", "get", 16, None)]
    } else {
        &[
            ("ping", "ping_mbulk", 1, None),
            ("ping", "ping_mbulk", 1, Some(50)),
            ("ping", "ping_mbulk", 16, None),
            ("set", "set", 1, None),
            ("set", "set", 1, Some(50)),
            ("set", "set", 16, None),
            ("get", "get", 1, None),
            ("get", "get", 1, Some(50)),
            ("get", "get", 16, None),
        ]
    };
    for &(word, test, pipeline, server_cpu_percent) in resp {
        list.push(Scenario {
            name: with_cap(format!("resp-{word}-c50-p{pipeline}"), server_cpu_percent),
            protocol: Protocol::Resp,
            workload: Workload::Resp {
                test,
                conns: 50,
                pipeline,
            },
            server_cpu_percent,
        });
    }
    tls_scenarios(o, &mut list);
    // The many-loops rows (issue 13): echo_server at each of `--loops`
    // (peers `loops-N`, `loops-N-hand-off`), 1 000 connections × 64 B at
    // depth 1, each server on CPUs 0..N-1 and loadgen on the rest
    // (`Placement::for_loops`). Nine runs of a second each and 1 000
    // connections set up and torn down per run cost more than --quick may
    // spend, so a quick run has them only when `--threads` asks.
    if !o.quick || o.threads {
        list.push(Scenario {
            name: "threads-c1000-s64".into(),
            protocol: Protocol::Loops,
            workload: Workload::Throughput {
                conns: 1000.min(cap),
                size: 64,
                depth: 1,
            },
            server_cpu_percent: None,
        });
    }
    list.push(Scenario {
        name: "rate-c100-s64-d16".into(),
        protocol: Protocol::Echo,
        workload: Workload::FixedRate {
            conns: 100,
            size: 64,
            depth: 16,
            fraction: 0.5,
        },
        server_cpu_percent: None,
    });
    list
}

/// The TLS rows (issue 11), all named `tls-*` (`--tls` selects them):
/// echo over TLS (`tls-echo-c100-s64-d1`, loadgen `--tls`), HTTPS
/// keep-alive (`tls-https-c50`, wrk `-t1` on `https://`, and its
/// `-cap50` variant for the reason `http-c50-cap50` exists), and new
/// handshakes (`tls-handshakes-c50`, ab, and its `-cap25` variant). A quick run keeps only the echo:
/// it is the one whose every byte the client checks, so CI catches a
/// corrupting TLS path, and it needs neither wrk, ab nor cgroups.
fn tls_scenarios(o: &Options, list: &mut Vec<Scenario>) {
    list.push(Scenario {
        name: "tls-echo-c100-s64-d1".into(),
        protocol: Protocol::TlsEcho,
        workload: Workload::Throughput {
            conns: 100,
            size: 64,
            depth: 1,
        },
        server_cpu_percent: None,
    });
    if o.quick {
        return;
    }
    for server_cpu_percent in [None, Some(50)] {
        list.push(Scenario {
            name: with_cap("tls-https-c50".into(), server_cpu_percent),
            protocol: Protocol::Https,
            workload: Workload::Http {
                conns: 50,
                pipeline: 1,
            },
            server_cpu_percent,
        });
    }
    // ab, one thread, runs out of CPU at about 2 600 handshakes/s here
    // (both servers well under a core, at 37% and 57%), so the uncapped
    // row compares CPU per handshake only; held to a quarter core, both
    // servers stay below that ceiling and handshakes/s compares them.
    for server_cpu_percent in [None, Some(25)] {
        list.push(Scenario {
            name: with_cap("tls-handshakes-c50".into(), server_cpu_percent),
            protocol: Protocol::Https,
            workload: Workload::Handshakes { conns: 50 },
            server_cpu_percent,
        });
    }
}

/// `name` with `-capN` appended when the scenario caps the server at N% of
/// one CPU, so capped and uncapped runs of a workload have distinct names.
fn with_cap(mut name: String, server_cpu_percent: Option<u32>) -> String {
    if let Some(percent) = server_cpu_percent {
        let _ = write!(name, "-cap{percent}");
    }
    name
}

/// The open-loop rate's base: the slowest server's median in the closed-loop
/// scenario with the same connections and size at depth 1.
///
/// Why depth 1 and not the pipelined maximum: the open loop sends each
/// message as it falls due, one write per message unless several fall due
/// together, so a server cannot batch the way it does at depth 16; half the
/// pipelined maximum would overload every server and measure the queue. When
/// that scenario did not run (filtered out), the best of any same-size
/// scenario is used, and failing that 10 000 msg/s.
pub(crate) fn fixed_rate(
    runs: &[Run],
    scenarios: &[Scenario],
    peers: &[Peer],
    conns: usize,
    size: usize,
) -> f64 {
    let slowest = |s: &Scenario| {
        let v = peers
            .iter()
            .filter_map(|p| median(&values(runs, &s.name, p.name, |m| Some(m.msgs_per_sec))))
            .fold(f64::INFINITY, f64::min);
        v.is_finite().then_some(v)
    };
    let mut exact = None;
    let mut best: f64 = 0.0;
    for s in scenarios {
        let Workload::Throughput {
            conns: c,
            size: sz,
            depth,
        } = s.workload
        else {
            continue;
        };
        // The plain echo servers' rate, not TLS echo's.
        if s.protocol != Protocol::Echo {
            continue;
        }
        if sz != size {
            continue;
        }
        if let Some(v) = slowest(s) {
            if c == conns && depth == 1 {
                exact = Some(v);
            }
            best = best.max(v);
        }
    }
    match exact {
        Some(v) => v,
        None if best > 0.0 => best,
        None => 10_000.0,
    }
}
