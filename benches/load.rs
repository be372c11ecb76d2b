//! The load comparison: the project's `echo_server` against peer echo
//! servers, each a child process, driven by `examples/loadgen.rs`.
//!
//! ```text
//! cargo bench --bench load                    # full matrix (about 25 minutes)
//! cargo bench --bench load -- --quick         # reduced matrix (about 2 minutes)
//! cargo bench --bench load -- --filter c1000  # scenarios whose name contains c1000
//! ```
//!
//! It owns everything a comparison needs, with no set-up: it builds the
//! examples (`cargo build --release --examples`), compiles the C peers with
//! `cc -O2`, pins the server to CPU 0 and the load client to CPU 1 with
//! `taskset` (when there are two CPUs and taskset exists), interleaves the
//! servers round by round, and writes `load/report.md`, `load/report.json`
//! and SVG charts under the cargo target directory.
//!
//! Why it measures what it does (see docs in `/work/shared/DESIGN.md`,
//! "Measuring on these machines"): on a shared two-core machine messages per
//! second wander from run to run, while the server's CPU time per message
//! (utime + stime from `/proc/PID/stat` across the measured window) is far
//! steadier; both are reported, as medians with min–max over the rounds,
//! and the project's ratio to each peer is the median of per-round ratios. A
//! run where the server used under 90% of a CPU is flagged: the client (or
//! the round trip) bounded it, not the server. So is a run where the client
//! (loadgen, wrk or redis-benchmark, its CPU read the same way) used 90% or
//! more of its CPU, and one where the hypervisor stole 5% or more of the
//! host's CPU during the window (`/proc/stat`), which slows both ends by an
//! amount nothing here corrects for. For HTTP, `c-http`
//! (`benches/c/http_canned.c`: a canned response per request head) shows
//! the most the client can drive on the machine at all. Where it drives
//! every server close to that (wrk `-t1` at 50 connections on two vCPUs),
//! `http-c50-cap50` repeats the run with each server's processes held to
//! half of one CPU by a cgroup quota ([`CpuCap`], root only; skipped with a
//! note otherwise, and not in `--quick`), so that the servers, not the
//! client, set the pace. The depth-1 RESP runs get the same treatment
//! (`resp-*-c50-p1-cap50`): single-threaded redis-benchmark saturates its
//! CPU there before either server does.
//!
//! Extension point: a comparison is a [`Peer`] (how to start a server, which
//! [`Protocol`] it speaks) crossed with [`Scenario`]s of that protocol, run
//! by that protocol's load tool ([`run_load`]). To add the HTTP comparison
//! (`examples/http_server.rs` against nginx with one worker, via `wrk`) or
//! RESP (`examples/resp_server.rs` against `redis-server`, via
//! `redis-benchmark`): add a `Protocol` variant, the peers to [`peers`] (a
//! `Launch::Command` runs any program; configs belong in `benches/`, e.g.
//! `benches/nginx.conf`), scenarios to [`scenarios`], and a branch in
//! `run_load` that runs the tool and fills a [`Measured`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use plotters::prelude::*;

/// What a server speaks, and so which load tool and scenarios apply.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Protocol {
    /// Raw byte echo over TCP, driven by `loadgen`.
    Echo,
    /// HTTP/1.1 `GET /` with keep-alive, driven by `wrk`.
    Http,
    /// Redis protocol `PING`, `SET` and `GET`, driven by `redis-benchmark`.
    Resp,
}

/// How to start a server. Every server takes `--addr 127.0.0.1:0` and
/// prints "... listening on ADDR" on stderr.
#[derive(Clone, Debug)]
enum Launch {
    /// An example of this crate, built with `--release`.
    Example(&'static str),
    /// A program compiled by this bench (the C peer): path once built.
    Command(PathBuf),
    /// nginx with `benches/nginx.conf` (one worker) on a port picked here.
    Nginx,
    /// `redis-server` without persistence on a port picked here.
    Redis,
}

/// One server under comparison.
#[derive(Clone, Debug)]
struct Peer {
    /// Short name used in tables, charts and `--peers`.
    name: &'static str,
    /// What it speaks.
    protocol: Protocol,
    /// How to start it.
    launch: Launch,
    /// The project's own server for its protocol: ratios are computed
    /// against it. One per protocol.
    is_project: bool,
    /// A client-ceiling peer (c-http): the least work a server can do per
    /// request, not a server compared on its merits. Other peers of its
    /// protocol are also given as a share of its throughput. At most one
    /// per protocol, never the project.
    ceiling: bool,
    /// Remark shown in the report (threads, buffering model).
    note: &'static str,
}

/// What one scenario asks of the servers.
#[derive(Clone, Debug)]
enum Workload {
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
    /// Open loop at `fraction` of the slowest server's best throughput with
    /// `size`-byte messages; latency from the intended send times.
    FixedRate {
        /// Connections.
        conns: usize,
        /// Message bytes.
        size: usize,
        /// Most messages in flight per connection (room for a backlog).
        depth: usize,
        /// Share of the slowest server's measured maximum.
        fraction: f64,
    },
    /// `wrk -c conns`: keep-alive HTTP requests; above 1, `pipeline`
    /// requests go out in one write through `scripts/pipeline.lua`.
    Http {
        /// Connections.
        conns: usize,
        /// Requests per write (1: plain wrk, one in flight per connection).
        pipeline: usize,
        /// Share of one CPU, in percent (1 to 100), that every process of
        /// the server is held to by a cgroup CPU quota ([`CpuCap`]) from
        /// before the load starts until the server stops; `None`: no cap.
        server_cpu_percent: Option<u32>,
    },
    /// `redis-benchmark -t test -c conns -P pipeline`.
    Resp {
        /// redis-benchmark's test name (`-t`): `ping_mbulk`, `set`, `get`.
        test: &'static str,
        /// Connections.
        conns: usize,
        /// Requests in flight per connection.
        pipeline: usize,
        /// Share of one CPU, in percent (1 to 100), that every process of
        /// the server is held to by a cgroup CPU quota ([`CpuCap`]) from
        /// before the load starts until the server stops; `None`: no cap.
        /// The request count is sized from the server's rate at that share
        /// ([`run_redis_benchmark`]), so a capped run lasts about as long as
        /// an uncapped one.
        server_cpu_percent: Option<u32>,
    },
}

impl Workload {
    /// The cgroup CPU cap on the server, in percent of one CPU, if the
    /// workload has one (only HTTP and RESP workloads carry the field).
    /// [`run_one`] applies it whatever the protocol.
    fn server_cpu_percent(&self) -> Option<u32> {
        match self {
            Workload::Http {
                server_cpu_percent, ..
            }
            | Workload::Resp {
                server_cpu_percent, ..
            } => *server_cpu_percent,
            _ => None,
        }
    }
}

/// A named workload for one protocol.
#[derive(Clone, Debug)]
struct Scenario {
    /// Unique name, what `--filter` matches: `c100-s64-d1`, `idle-c10000`.
    name: String,
    /// Which peers it applies to.
    protocol: Protocol,
    /// What it does.
    workload: Workload,
}

/// Settings of one bench invocation.
#[derive(Clone, Debug)]
struct Options {
    /// Reduced matrix and shorter runs.
    quick: bool,
    /// Only scenarios whose name contains one of these words (empty: all).
    filters: Vec<String>,
    /// Only these peers (empty: all).
    peers: Vec<String>,
    /// Rounds per scenario (each round runs every server once).
    rounds: usize,
    /// Seconds measured per run.
    duration: f64,
    /// Seconds of load before measuring.
    warmup: f64,
}

/// Figures of one run, as measured by the load tool and from `/proc`.
#[derive(Clone, Debug, Default)]
struct Measured {
    /// Verified messages per second.
    msgs_per_sec: f64,
    /// Payload MiB per second.
    mib_per_sec: f64,
    /// Latency percentiles in µs: p50, p90, p99, p99.9, max.
    latency_us: [f64; 5],
    /// Server CPU seconds during the measured window.
    server_cpu_s: f64,
    /// Length of that window as the bench saw it, seconds.
    window_s: f64,
    /// Server CPU µs per message (0 when no message was measured).
    server_us_per_msg: f64,
    /// Load client CPU seconds (utime + stime): loadgen's own count over
    /// its measured window, or the whole wrk / redis-benchmark process over
    /// its run (which is then `window_s`); 0 when not measured.
    client_cpu_s: f64,
    /// Host steal time over the measured window as a share of the host's
    /// CPU capacity in it (online CPUs × `window_s`), from the `cpu` line of
    /// `/proc/stat`: 0 none, 1 every CPU taken by the hypervisor for the
    /// whole window. Machine-wide, not the server's alone. `None` when not
    /// measured.
    steal: Option<f64>,
    /// Errors the load tool counted (mismatch, lost, refused, timeout).
    errors: u64,
    /// Mismatched bytes among them.
    mismatched_bytes: u64,
    /// Connections that came up.
    established: u64,
    /// Connections asked for.
    requested: u64,
    /// Idle scenario: server resident memory growth per connection, bytes.
    rss_per_conn: Option<f64>,
    /// Why the run failed, if it did; figures are then not used.
    failure: Option<String>,
}

impl Measured {
    /// Server CPU share of the window: below 0.9 the server was not the
    /// bottleneck.
    fn server_util(&self) -> f64 {
        if self.window_s > 0.0 {
            self.server_cpu_s / self.window_s
        } else {
            0.0
        }
    }

    /// Client CPU share of the window: from 0.9 up the client, not the
    /// server, bounded the run. `None` when the client's CPU was not measured.
    fn client_util(&self) -> Option<f64> {
        (self.window_s > 0.0 && self.client_cpu_s > 0.0).then(|| self.client_cpu_s / self.window_s)
    }
}

/// One run in the record.
#[derive(Clone, Debug)]
struct Run {
    /// Scenario name.
    scenario: String,
    /// Peer name.
    peer: &'static str,
    /// Round number, from 0.
    round: usize,
    /// The figures.
    m: Measured,
}

/// Where the bench finds and puts things.
struct Paths {
    /// `target/release/examples`.
    examples: PathBuf,
    /// `target/load`: reports, charts, the compiled C peer.
    out: PathBuf,
}

fn main() -> ExitCode {
    let options = match parse_options() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("load: {e}");
            return ExitCode::from(2);
        }
    };
    match run(&options) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("load: {e}");
            ExitCode::FAILURE
        }
    }
}

fn parse_options() -> Result<Options, String> {
    let mut o = Options {
        quick: false,
        filters: Vec::new(),
        peers: Vec::new(),
        rounds: 3,
        duration: 3.0,
        warmup: 1.0,
    };
    let mut explicit = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => o.quick = true,
            "--filter" => o.filters.push(value("--filter")?),
            "--peers" => o.peers = value("--peers")?.split(',').map(String::from).collect(),
            "--rounds" => {
                o.rounds = value("--rounds")?
                    .parse()
                    .map_err(|e| format!("--rounds: {e}"))?
            }
            "--duration" => {
                o.duration = value("--duration")?
                    .parse()
                    .map_err(|e| format!("--duration: {e}"))?;
                explicit.0 = true;
            }
            "--warmup" => {
                o.warmup = value("--warmup")?
                    .parse()
                    .map_err(|e| format!("--warmup: {e}"))?;
                explicit.1 = true;
            }
            // cargo bench passes --bench to every bench target.
            "--bench" => {}
            "--help" | "-h" => {
                println!(
                    "cargo bench --bench load -- [--quick] [--filter WORD]... \
                     [--peers a,b] [--rounds N] [--duration S] [--warmup S]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if o.quick {
        if !explicit.0 {
            o.duration = 1.0;
        }
        if !explicit.1 {
            o.warmup = 0.5;
        }
    }
    if o.rounds == 0 {
        return Err("--rounds must be at least 1".into());
    }
    Ok(o)
}

/// The servers compared. The first is the project; the C peers' paths are
/// filled in once they are compiled (`None`: left out).
fn peers(c_echo: Option<PathBuf>, c_http: Option<PathBuf>) -> Vec<Peer> {
    let mut peers = vec![
        Peer {
            name: "reactor",
            protocol: Protocol::Echo,
            launch: Launch::Example("echo_server"),
            is_project: true,
            ceiling: false,
            note: "examples/echo_server.rs: this crate, one thread",
        },
        Peer {
            name: "tokio",
            protocol: Protocol::Echo,
            launch: Launch::Example("tokio_echo"),
            is_project: false,
            ceiling: false,
            note: "examples/tokio_echo.rs: current-thread runtime, task per connection",
        },
        Peer {
            name: "threaded",
            protocol: Protocol::Echo,
            launch: Launch::Example("threaded_echo"),
            is_project: false,
            ceiling: false,
            note: "examples/threaded_echo.rs: std, one blocking thread per connection",
        },
    ];
    if let Some(path) = c_echo {
        peers.push(Peer {
            name: "c-epoll",
            protocol: Protocol::Echo,
            launch: Launch::Command(path),
            is_project: false,
            ceiling: false,
            note: "benches/c/epoll_echo.c: cc -O2, one thread, edge-triggered",
        });
    }
    // HTTP and RESP compare only when the tools are installed; without them
    // the peers are left out with a note, never a failure.
    if has_program("wrk") {
        peers.push(Peer {
            name: "reactor-http",
            protocol: Protocol::Http,
            launch: Launch::Example("http_server"),
            is_project: true,
            ceiling: false,
            note: "examples/http_server.rs: this crate, one thread",
        });
        if has_program("nginx") {
            peers.push(Peer {
                name: "nginx",
                protocol: Protocol::Http,
                launch: Launch::Nginx,
                is_project: false,
                ceiling: false,
                note: "nginx, benches/nginx.conf: one worker, access log off, `return 200`",
            });
        } else {
            eprintln!("load: nginx not installed; HTTP has no peer");
        }
        if let Some(path) = c_http {
            peers.push(Peer {
                name: "c-http",
                protocol: Protocol::Http,
                launch: Launch::Command(path),
                is_project: false,
                ceiling: true,
                note: "benches/c/http_canned.c: canned response per request head; the client's ceiling, not an HTTP server",
            });
        }
    } else {
        eprintln!("load: wrk not installed; skipping HTTP");
    }
    if has_program("redis-benchmark") {
        peers.push(Peer {
            name: "reactor-resp",
            protocol: Protocol::Resp,
            launch: Launch::Example("resp_server"),
            is_project: true,
            ceiling: false,
            note: "examples/resp_server.rs: this crate, one thread",
        });
        if has_program("redis-server") {
            peers.push(Peer {
                name: "redis",
                protocol: Protocol::Resp,
                launch: Launch::Redis,
                is_project: false,
                ceiling: false,
                note: "redis-server: no persistence, io-threads 1",
            });
        } else {
            eprintln!("load: redis-server not installed; RESP has no peer");
        }
    } else {
        eprintln!("load: redis-benchmark not installed; skipping RESP");
    }
    peers
}

/// Where `program` is: on the PATH, or in an sbin directory (nginx lives
/// in /usr/sbin, which a non-root PATH may lack).
fn find_program(program: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/local/sbin"].map(PathBuf::from))
        .map(|dir| dir.join(program))
        .find(|candidate| candidate.is_file())
}

fn has_program(program: &str) -> bool {
    find_program(program).is_some()
}

/// Most bytes the generator may keep in flight in one scenario: beyond it
/// (10 000 connections × 16 × 16 KiB = 2.5 GiB) the kernel's TCP memory
/// limits, not the servers, would be measured.
const MAX_IN_FLIGHT: usize = 512 << 20;

/// The scenario matrix, before filtering.
fn scenarios(o: &Options, fd_limit: usize) -> Vec<Scenario> {
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
        if let Some(percent) = server_cpu_percent {
            let _ = write!(name, "-cap{percent}");
        }
        list.push(Scenario {
            name,
            protocol: Protocol::Http,
            workload: Workload::Http {
                conns,
                pipeline,
                server_cpu_percent,
            },
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
        let mut name = format!("resp-{word}-c50-p{pipeline}");
        if let Some(percent) = server_cpu_percent {
            let _ = write!(name, "-cap{percent}");
        }
        list.push(Scenario {
            name,
            protocol: Protocol::Resp,
            workload: Workload::Resp {
                test,
                conns: 50,
                pipeline,
                server_cpu_percent,
            },
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
    });
    list
}

fn run(o: &Options) -> Result<(), String> {
    let paths = locate()?;
    std::fs::create_dir_all(&paths.out).map_err(|e| format!("{}: {e}", paths.out.display()))?;
    build_examples(&["echo_server", "tokio_echo", "threaded_echo", "loadgen"])?;
    let c_echo = compile_c(&paths, "epoll_echo");
    let c_http = compile_c(&paths, "http_canned");
    let mut all_peers = peers(c_echo, c_http);
    // The HTTP and RESP servers are other protocols' projects: if one does
    // not build, its comparison is skipped, not the whole bench.
    for (example, protocol) in [
        ("http_server", Protocol::Http),
        ("resp_server", Protocol::Resp),
    ] {
        if all_peers.iter().any(|p| p.protocol == protocol) {
            if let Err(e) = build_examples(&[example]) {
                eprintln!("load: {e}; skipping {protocol:?}");
                all_peers.retain(|p| p.protocol != protocol);
            }
        }
    }
    let peers: Vec<Peer> = all_peers
        .into_iter()
        .filter(|p| o.peers.is_empty() || o.peers.iter().any(|n| n == p.name))
        .collect();
    if peers.is_empty() {
        return Err("no peer selected".into());
    }
    let pin = placement();
    let fd_limit = hard_fd_limit();
    let mut scenarios: Vec<Scenario> = scenarios(o, fd_limit)
        .into_iter()
        .filter(|s| o.filters.is_empty() || o.filters.iter().any(|f| s.name.contains(f)))
        .collect();
    // CPU-capped scenarios need a cgroup this process may make; if one
    // cannot be (not root, read-only, no cpu controller) they are skipped
    // with a note, never a failure.
    let mut skipped: Vec<(Scenario, String)> = Vec::new();
    if let Some(percent) = scenarios
        .iter()
        .find_map(|s| s.workload.server_cpu_percent())
    {
        if let Err(e) = CpuCap::create(percent) {
            scenarios.retain(|s| {
                if s.workload.server_cpu_percent().is_none() {
                    return true;
                }
                eprintln!("load: skipping {}: cannot cap server CPU ({e})", s.name);
                skipped.push((s.clone(), format!("cannot cap server CPU ({e})")));
                false
            });
        }
    }
    let machine = machine();
    eprintln!(
        "load: {} scenarios x {} peers x {} rounds, {}s + {}s warm-up; {}",
        scenarios.len(),
        peers.len(),
        o.rounds,
        o.duration,
        o.warmup,
        match &pin {
            Some((s, c)) => format!("server on CPU {s}, client on CPU {c}"),
            None => "not pinned (fewer than 2 CPUs or no taskset)".into(),
        }
    );
    let started = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    let mut rates: BTreeMap<String, f64> = BTreeMap::new();
    for scenario in &scenarios {
        // Open-loop rates come from what the throughput scenarios measured.
        if let Workload::FixedRate {
            conns,
            size,
            fraction,
            ..
        } = scenario.workload
        {
            let rate = fixed_rate(&runs, &scenarios, &peers, conns, size) * fraction;
            eprintln!("load: {}: {rate:.0} msg/s", scenario.name);
            rates.insert(scenario.name.clone(), rate);
        }
        let mine: Vec<&Peer> = peers
            .iter()
            .filter(|p| p.protocol == scenario.protocol)
            .collect();
        // Resident memory barely moves between rounds; in a quick run one
        // round of the idle scenario is enough.
        let rounds = match scenario.workload {
            Workload::Idle { .. } if o.quick => 1,
            _ => o.rounds,
        };
        for round in 0..rounds {
            // Interleave: each round starts with a different server, so
            // drift in the machine's load spreads over all of them.
            for i in 0..mine.len() {
                let peer = mine[(i + round) % mine.len()];
                let m = run_one(o, &paths, peer, scenario, &pin, rates.get(&scenario.name));
                eprintln!(
                    "load: {:<22} {:<9} round {round}: {}",
                    scenario.name,
                    peer.name,
                    brief(&m)
                );
                runs.push(Run {
                    scenario: scenario.name.clone(),
                    peer: peer.name,
                    round,
                    m,
                });
            }
        }
    }
    let elapsed = started.elapsed().as_secs_f64();
    let report = Report {
        options: o,
        peers: &peers,
        scenarios: &scenarios,
        skipped: &skipped,
        runs: &runs,
        rates: &rates,
        machine,
        pinned: pin.is_some(),
        elapsed,
    };
    let table = report.text_table();
    println!("{table}");
    write_file(&paths.out.join("report.md"), &report.markdown())?;
    write_file(&paths.out.join("report.json"), &report.json())?;
    for chart in report.charts(&paths.out) {
        if let Err(e) = chart {
            eprintln!("load: chart: {e}");
        }
    }
    eprintln!(
        "load: done in {elapsed:.0}s; report in {}",
        paths.out.join("report.md").display()
    );
    // A peer that fails is a note in the report. The project's own servers
    // corrupting data is a defect on any machine, and fails the run (CI runs
    // `--quick`). Timeouts and lost connections are flagged in the report
    // but do not fail it: on a shared host they can be the host's doing
    // (seen here: every server, nginx included, stalling on 200 ms
    // retransmits). Slowness never fails it: speed is reported, not asserted.
    let ours: Vec<&'static str> = peers
        .iter()
        .filter(|p| p.is_project)
        .map(|p| p.name)
        .collect();
    let broken: Vec<String> = runs
        .iter()
        .filter(|r| ours.contains(&r.peer) && r.m.mismatched_bytes > 0)
        .map(|r| {
            format!(
                "{} {} round {}: {} errors, {} mismatched bytes",
                r.scenario, r.peer, r.round, r.m.errors, r.m.mismatched_bytes
            )
        })
        .collect();
    if !broken.is_empty() {
        return Err(format!(
            "the project's servers failed:\n  {}",
            broken.join("\n  ")
        ));
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

fn locate() -> Result<Paths, String> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_relative() {
                manifest.join(dir)
            } else {
                dir
            }
        }
        None => manifest.join("target"),
    };
    Ok(Paths {
        examples: target.join("release").join("examples"),
        out: target.join("load"),
    })
}

/// Builds `examples` in release mode. Cargo has released its lock on the
/// target directory by the time a bench runs, so this does not wait on the
/// `cargo bench` that started us; it is a no-op when up to date. Examples
/// are named one by one so a broken example elsewhere in the tree cannot
/// stop the comparison.
fn build_examples(examples: &[&str]) -> Result<(), String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut args = vec!["build", "--release"];
    for example in examples {
        args.extend(["--example", example]);
    }
    eprintln!("load: cargo {}", args.join(" "));
    let status = Command::new(&cargo)
        .args(&args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .status()
        .map_err(|e| format!("cannot run {cargo}: {e}"))?;
    if !status.success() {
        return Err(format!("building {examples:?} failed: {status}"));
    }
    Ok(())
}

/// Compiles the C peer `benches/c/NAME.c` to `load/NAME`; `None` (the peer
/// is skipped, with a note) if it does not compile or there is no compiler.
fn compile_c(paths: &Paths, name: &str) -> Option<PathBuf> {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("benches/c/{name}.c"));
    let binary = paths.out.join(name);
    let result = Command::new("cc")
        .args(["-O2", "-Wall", "-o"])
        .arg(&binary)
        .arg(&source)
        .status();
    match result {
        Ok(status) if status.success() => Some(binary),
        Ok(status) => {
            eprintln!("load: cc {name}.c failed ({status}); skipping its peer");
            None
        }
        Err(e) => {
            eprintln!("load: no C compiler ({e}); skipping {name}");
            None
        }
    }
}

/// CPUs for (server, client), when pinning is possible.
fn placement() -> Option<(usize, usize)> {
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let taskset = Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    (cpus >= 2 && taskset).then_some((0, 1))
}

/// The hard descriptor limit, which children may raise their soft limit to.
fn hard_fd_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// A one-line summary of the machine for the report.
fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPUs, {model}, Linux {}, load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// A child process killed (and reaped) when dropped.
struct Guard {
    /// The process, if it still needs killing.
    child: Option<Child>,
}

impl Drop for Guard {
    /// SIGTERM first, SIGKILL after two seconds: nginx's master stops its
    /// worker only when asked politely; killed outright, it leaves the
    /// worker running (and holding the port and a CPU).
    fn drop(&mut self) {
        let Some(child) = &mut self.child else {
            return;
        };
        if let Ok(None) = child.try_wait() {
            let _ = Command::new("kill")
                .args(["-TERM", &child.id().to_string()])
                .stderr(Stdio::null())
                .status();
            let deadline = Instant::now() + Duration::from_secs(2);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        let _ = child.kill();
        let _ = child.wait();
    }
}

/// `sh -c 'ulimit -n HARD; exec [taskset -c CPU] PROGRAM ARGS'`: raise the
/// soft descriptor limit to the hard one and pin, keeping one PID (every
/// step execs), so `/proc/PID` is the program's own.
fn pinned_command(program: &Path, args: &[String], cpu: Option<usize>) -> Command {
    let mut c = Command::new("sh");
    let pin = cpu.map_or(String::new(), |cpu| format!("taskset -c {cpu} "));
    c.arg("-c")
        .arg(format!(
            "ulimit -n $(ulimit -Hn) 2>/dev/null; exec {pin}\"$0\" \"$@\""
        ))
        .arg(program)
        .args(args);
    c
}

/// Starts `peer`'s server and waits for its address.
fn start_server(
    paths: &Paths,
    peer: &Peer,
    cpu: Option<usize>,
) -> Result<(Guard, u32, String, mpsc::Receiver<String>), String> {
    let (program, args, fixed) = match &peer.launch {
        Launch::Example(name) => (paths.examples.join(name), vec![], None),
        Launch::Command(path) => (path.clone(), vec![], None),
        Launch::Nginx => {
            let port = free_port()?;
            let prefix = paths.out.join("nginx");
            std::fs::create_dir_all(&prefix).map_err(|e| format!("{}: {e}", prefix.display()))?;
            let template = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/nginx.conf");
            let conf = std::fs::read_to_string(&template)
                .map_err(|e| format!("{}: {e}", template.display()))?
                .replace("@PORT@", &port.to_string())
                .replace("@PREFIX@", &prefix.display().to_string());
            write_file(&prefix.join("nginx.conf"), &conf)?;
            let args = vec![
                "-p".to_string(),
                prefix.display().to_string(),
                "-c".to_string(),
                prefix.join("nginx.conf").display().to_string(),
            ];
            let nginx = find_program("nginx").unwrap_or_else(|| "nginx".into());
            (nginx, args, Some(port))
        }
        Launch::Redis => {
            let port = free_port()?;
            let args = [
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--protected-mode",
                "no",
                "--maxclients",
                "10000",
                "--logfile",
                "",
            ]
            .iter()
            .map(|s| s.to_string())
            .collect();
            let redis = find_program("redis-server").unwrap_or_else(|| "redis-server".into());
            (redis, args, Some(port))
        }
    };
    let args = if fixed.is_some() {
        args
    } else {
        vec!["--addr".to_string(), "127.0.0.1:0".to_string()]
    };
    let mut child = pinned_command(&program, &args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start {}: {e}", program.display()))?;
    let pid = child.id();
    let stderr = child.stderr.take().expect("piped");
    let guard = Guard { child: Some(child) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    if let Some(port) = fixed {
        // Peers that print no address: wait until the port accepts.
        let addr = format!("127.0.0.1:{port}");
        while std::net::TcpStream::connect(&addr).is_err() {
            if Instant::now() > deadline {
                return Err(format!("{} did not listen on {addr}", peer.name));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        return Ok((guard, pid, addr, rx));
    }
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx
            .recv_timeout(left)
            .map_err(|_| format!("{} printed no 'listening on' line", peer.name))?;
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest.split_whitespace().next().unwrap_or("").to_string();
            return Ok((guard, pid, addr, rx));
        }
    }
}

/// Clock ticks per second of `/proc` times (USER_HZ, what `getconf
/// CLK_TCK` prints): asked once, 100 (Linux's value everywhere) if getconf
/// cannot say.
fn clk_tck() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid` in seconds (ticks of 1/`clk_tck()` s). A zombie
/// (exited, not yet reaped) still has its stat, with every thread's time.
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// `cpu_seconds` of a child that is finishing (its stdout reached EOF): once
/// it is a zombie, so its count is final, or at `limit` as it stands. The
/// caller must not have reaped it (its `/proc` entry would be gone).
fn final_cpu_seconds(pid: u32, limit: Duration) -> Option<f64> {
    let deadline = Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 3 of proc(5), the first after the command name, is the state.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if matches!(state, "Z" | "X") || Instant::now() >= deadline {
            return cpu_seconds(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The host's steal counter, from the aggregate `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug)]
struct StealSample {
    /// Steal ticks (USER_HZ) since boot, summed over every CPU: the 8th
    /// value of the line, time the hypervisor ran something else while a
    /// CPU of this guest had work.
    ticks: f64,
    /// Online CPUs: the `cpuN` lines of the same read.
    cpus: usize,
}

fn steal_sample() -> Option<StealSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let total = lines.next()?.strip_prefix("cpu ")?;
    let ticks = total.split_whitespace().nth(7)?.parse().ok()?;
    let cpus = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Some(StealSample {
        ticks,
        cpus: cpus.max(1),
    })
}

/// Steal between two samples as a share of the host's CPU capacity over
/// `window_s` seconds (online CPUs × window); `None` without both samples.
fn steal_share(start: Option<StealSample>, end: Option<StealSample>, window_s: f64) -> Option<f64> {
    let (a, b) = (start?, end?);
    let capacity = b.cpus as f64 * window_s * clk_tck();
    (capacity > 0.0).then(|| (b.ticks - a.ticks).max(0.0) / capacity)
}

/// The live children of `pid` (processes whose parent it is), from `/proc`.
fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Field 4 of proc(5), the first after the command name, is the parent.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// `cpu_seconds` of `pid` and its children: nginx's worker does the work
/// while its master sleeps, and a child's time reaches the parent's stat
/// only once the child exits.
fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let total = cpu_seconds(pid)?;
    Some(
        children(pid)
            .into_iter()
            .map(|child| cpu_seconds(child).unwrap_or(0.0))
            .sum::<f64>()
            + total,
    )
}

/// Where CPU-capping cgroups are made: which cgroup version, and the
/// directory new cgroups go under.
#[derive(Clone, Debug)]
enum CgroupRoot {
    /// cgroup v2: the unified hierarchy's root, `/sys/fs/cgroup`, whose
    /// `cgroup.controllers` lists `cpu`; quotas go in `cpu.max`.
    V2(PathBuf),
    /// cgroup v1: the `cpu` controller's hierarchy, `/sys/fs/cgroup/cpu`;
    /// quotas go in `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    V1(PathBuf),
}

/// Period of the CPU quota, µs. Short, so a capped server is throttled in
/// small slices (at most 5 ms off per 10 ms at 50%) rather than seconds.
const CAP_PERIOD_US: u32 = 10_000;

/// A fresh cgroup that holds the processes put in it to a share of one
/// CPU (a CFS bandwidth quota), removed when dropped. Create it before the
/// server starts so that it is dropped after the server's [`Guard`]: an
/// occupied cgroup cannot be removed.
struct CpuCap {
    /// The cgroup's directory: made by [`CpuCap::create`], removed (rmdir)
    /// by `drop`; unique to this bench process and this cap.
    dir: PathBuf,
    /// The `cgroup.procs` of the parent cgroup: where `drop` moves any
    /// process still left in `dir` so that `dir` can be removed.
    parent_procs: PathBuf,
}

impl CpuCap {
    /// The cgroup root of this machine, or why CPU cannot be capped here.
    fn root() -> Result<CgroupRoot, String> {
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers"));
        if let Ok(list) = &controllers {
            if list.split_whitespace().any(|c| c == "cpu") {
                return Ok(CgroupRoot::V2(v2.to_path_buf()));
            }
        }
        let v1 = v2.join("cpu");
        if v1.join("cpu.cfs_quota_us").is_file() {
            return Ok(CgroupRoot::V1(v1));
        }
        Err(if controllers.is_ok() {
            "cgroup v2 without the cpu controller".into()
        } else {
            "no cgroup cpu controller (/sys/fs/cgroup/cgroup.controllers lacks cpu, no /sys/fs/cgroup/cpu)".into()
        })
    }

    /// Makes a cgroup `reactor-bench-<bench pid>-<n>` limited to `percent`
    /// of one CPU. Fails, leaving no cgroup behind, when cgroups cannot be
    /// made or limited: not root, read-only, no cpu controller. (On v2 the
    /// `+cpu` it may have enabled in the root's `cgroup.subtree_control`
    /// stays enabled.)
    fn create(percent: u32) -> Result<CpuCap, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let root = Self::root()?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("reactor-bench-{}-{n}", std::process::id());
        let set = |path: &Path, value: &str| {
            std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
        };
        let base = match &root {
            CgroupRoot::V2(base) | CgroupRoot::V1(base) => base.clone(),
        };
        if let CgroupRoot::V2(base) = &root {
            // A child's cpu.max exists only with cpu enabled for the
            // children of its parent.
            let control = base.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                set(&control, "+cpu")?;
            }
        }
        let dir = base.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        // From here `drop` removes the directory, whatever fails next.
        let cap = CpuCap {
            dir,
            parent_procs: base.join("cgroup.procs"),
        };
        let quota = CAP_PERIOD_US * percent.clamp(1, 100) / 100;
        match root {
            CgroupRoot::V2(_) => set(
                &cap.dir.join("cpu.max"),
                &format!("{quota} {CAP_PERIOD_US}"),
            )?,
            CgroupRoot::V1(_) => {
                set(
                    &cap.dir.join("cpu.cfs_period_us"),
                    &CAP_PERIOD_US.to_string(),
                )?;
                set(&cap.dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(cap)
    }

    /// Moves `pid` and its children (nginx: master, then worker) into the
    /// cgroup, with all their threads. The parent goes first, so a child it
    /// forks meanwhile is born inside; then every one is checked to be in.
    fn confine(&self, pid: u32) -> Result<(), String> {
        let procs = self.dir.join("cgroup.procs");
        let add = |p: u32| {
            std::fs::write(&procs, p.to_string())
                .map_err(|e| format!("{} < {p}: {e}", procs.display()))
        };
        add(pid)?;
        let mut all = vec![pid];
        for child in children(pid) {
            add(child)?;
            all.push(child);
        }
        let inside =
            std::fs::read_to_string(&procs).map_err(|e| format!("{}: {e}", procs.display()))?;
        let inside: Vec<u32> = inside.lines().filter_map(|l| l.parse().ok()).collect();
        match all.iter().find(|p| !inside.contains(p)) {
            Some(p) => Err(format!("process {p} is not in {}", self.dir.display())),
            None => Ok(()),
        }
    }
}

impl Drop for CpuCap {
    /// rmdir, retried for up to two seconds while the server's processes
    /// finish exiting; then any still inside are moved to the parent
    /// cgroup (not killed) and it is tried once more. A cgroup that still
    /// cannot go is reported on stderr, never a failure.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break,
            }
        }
        let left = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in left.lines() {
            let _ = std::fs::write(&self.parent_procs, pid);
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "load: cannot remove cgroup {} ({e}); processes left: {:?}",
                self.dir.display(),
                left.lines().collect::<Vec<_>>()
            );
        }
    }
}

/// A port free right now on 127.0.0.1, for servers that cannot take port 0
/// and report it. (Below the ephemeral range it would be safer, but any
/// fixed choice could be taken; asking the kernel is the reliable way.)
fn free_port() -> Result<u16, String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Resident memory of `pid` in bytes (VmRSS).
fn rss_bytes(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Descriptors `pid` holds.
fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// Runs one server through one scenario; failures are recorded, not fatal.
/// With a CPU cap, every process of the server is moved into a fresh
/// cgroup once it listens and before the load starts; the cgroup is
/// removed after the server has stopped, on every path.
fn run_one(
    o: &Options,
    paths: &Paths,
    peer: &Peer,
    scenario: &Scenario,
    pin: &Option<(usize, usize)>,
    rate: Option<&f64>,
) -> Measured {
    let result = (|| {
        // Made before the server so that it is dropped after the server's
        // guard: the cgroup can only be removed once it is empty.
        let cap = scenario
            .workload
            .server_cpu_percent()
            .map(CpuCap::create)
            .transpose()
            .map_err(|e| format!("cannot cap server CPU: {e}"))?;
        let (guard, pid, addr, _log) = start_server(paths, peer, pin.map(|p| p.0))?;
        if let Some(cap) = &cap {
            cap.confine(pid)
                .map_err(|e| format!("cannot cap server CPU: {e}"))?;
        }
        let m = run_load(
            o,
            paths,
            scenario,
            pid,
            &addr,
            pin.map(|p| p.1),
            rate.copied(),
        );
        drop(guard);
        drop(cap);
        m
    })();
    result.unwrap_or_else(|e| Measured {
        failure: Some(e),
        ..Measured::default()
    })
}

/// One end of a measured window.
#[derive(Clone, Copy)]
struct Mark {
    /// Server CPU seconds.
    cpu: f64,
    /// When.
    at: Instant,
    /// The host's steal counter, if `/proc/stat` could be read.
    steal: Option<StealSample>,
}

impl Mark {
    /// Now, with the server's CPU seconds `cpu` just read.
    fn now(cpu: f64) -> Mark {
        Mark {
            cpu,
            at: Instant::now(),
            steal: steal_sample(),
        }
    }
}

/// Samples the server at the load generator's window markers.
#[derive(Default)]
struct Window {
    /// At "loadgen: measuring".
    start: Option<Mark>,
    /// At "loadgen: measured".
    end: Option<Mark>,
    /// Idle scenario: server RSS once every connection was accepted.
    rss_loaded: Option<f64>,
}

/// Runs the protocol's load tool against a started server. This is where
/// another protocol's tool (wrk, redis-benchmark) would plug in.
fn run_load(
    o: &Options,
    paths: &Paths,
    scenario: &Scenario,
    pid: u32,
    addr: &str,
    cpu: Option<usize>,
    rate: Option<f64>,
) -> Result<Measured, String> {
    match scenario.workload {
        Workload::Http {
            conns, pipeline, ..
        } => return run_wrk(o, pid, addr, cpu, conns, pipeline),
        Workload::Resp { .. } => return run_redis_benchmark(o, pid, addr, cpu, &scenario.workload),
        _ => {}
    }
    let (conns, size, depth, idle) = match scenario.workload {
        Workload::Throughput { conns, size, depth } => (conns, size, depth, false),
        Workload::FixedRate {
            conns, size, depth, ..
        } => (conns, size, depth, false),
        Workload::Idle { conns } => (conns, 64, 0, true),
        Workload::Http { .. } | Workload::Resp { .. } => unreachable!("handled above"),
    };
    let mut args: Vec<String> = vec![
        "--addr".into(),
        addr.into(),
        "--connections".into(),
        conns.to_string(),
        "--size".into(),
        size.to_string(),
        "--depth".into(),
        depth.to_string(),
        "--warmup".into(),
        o.warmup.to_string(),
        "--duration".into(),
        // Idle: long enough for the server to accept every connection and
        // for the bench to sample its memory before loadgen closes them.
        if idle {
            "2".into()
        } else {
            o.duration.to_string()
        },
        "--json".into(),
    ];
    if let Some(rate) = rate {
        args.push("--rate".into());
        args.push(format!("{rate:.0}"));
    }
    let rss_before = rss_bytes(pid);
    let mut child = pinned_command(&paths.examples.join("loadgen"), &args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start loadgen: {e}"))?;
    let mut stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let guard = Guard { child: Some(child) };
    let window = Arc::new(Mutex::new(Window::default()));
    let marks = Arc::clone(&window);
    let log = Arc::new(Mutex::new(Vec::<String>::new()));
    let log_writer = Arc::clone(&log);
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if line == "loadgen: measuring" {
                if idle {
                    // Connected is not accepted: wait (bounded) until the
                    // server holds a descriptor per connection.
                    let until = Instant::now() + Duration::from_secs(5);
                    while open_fds(pid) < conns && Instant::now() < until {
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    std::thread::sleep(Duration::from_millis(200));
                    marks.lock().unwrap().rss_loaded = rss_bytes(pid);
                }
                let cpu = cpu_seconds(pid).unwrap_or(0.0);
                marks.lock().unwrap().start = Some(Mark::now(cpu));
            } else if line == "loadgen: measured" {
                let cpu = cpu_seconds(pid).unwrap_or(0.0);
                marks.lock().unwrap().end = Some(Mark::now(cpu));
            } else {
                log_writer.lock().unwrap().push(line);
            }
        }
    });
    // Every run is bounded: connects, warm-up, window, drain, and slack.
    let limit = Duration::from_secs_f64(o.warmup + o.duration + 30.0);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(limit)
        .map_err(|_| format!("loadgen did not finish within {limit:?}"))?;
    drop(guard);
    let _ = reader.join();
    let json = out.lines().find(|l| l.starts_with('{')).ok_or_else(|| {
        let log = log.lock().unwrap();
        let tail: Vec<&String> = log.iter().rev().take(3).collect();
        format!("loadgen printed no result ({tail:?})")
    })?;
    let num = |key: &str| json_number(json, key).unwrap_or(0.0);
    let w = window.lock().unwrap();
    let mut m = Measured {
        msgs_per_sec: num("messages_per_sec"),
        mib_per_sec: num("mib_per_sec"),
        latency_us: [num("p50"), num("p90"), num("p99"), num("p999"), num("max")],
        client_cpu_s: num("cpu_seconds"),
        errors: num("errors") as u64,
        mismatched_bytes: num("mismatched_bytes") as u64,
        established: num("established") as u64,
        requested: num("requested") as u64,
        ..Measured::default()
    };
    if let (Some(start), Some(end)) = (w.start, w.end) {
        m.server_cpu_s = end.cpu - start.cpu;
        m.window_s = end.at.duration_since(start.at).as_secs_f64();
        m.steal = steal_share(start.steal, end.steal, m.window_s);
        let messages = m.msgs_per_sec * num("duration_s");
        if messages > 0.0 {
            m.server_us_per_msg = m.server_cpu_s * 1e6 / messages;
        }
    }
    if idle {
        if let (Some(before), Some(after)) = (rss_before, w.rss_loaded) {
            m.rss_per_conn = Some((after - before) / m.established.max(1) as f64);
        }
    }
    if m.established < m.requested {
        m.failure = Some(format!(
            "{} of {} connections established",
            m.established, m.requested
        ));
    } else if m.errors > 0 {
        m.failure = Some(format!("{} errors", m.errors));
    } else if !idle && m.msgs_per_sec == 0.0 {
        // Seen when the machine's other load starved the server for the
        // whole window: every echo came back in the drain. Not a figure.
        m.failure = Some("no message completed in the measured window".into());
    }
    Ok(m)
}

/// What [`run_tool`] saw.
struct ToolRun {
    /// The tool's stdout.
    out: String,
    /// Server CPU seconds (process tree) from just before the tool started
    /// to its stdout's end.
    server_cpu_s: f64,
    /// That window, seconds.
    window_s: f64,
    /// The tool's own CPU seconds over its whole run, read before it was
    /// reaped; 0 if `/proc` could not say.
    client_cpu_s: f64,
    /// Host steal share over the window (see [`Measured::steal`]).
    steal: Option<f64>,
}

/// Runs `tool` pinned to `cpu` for at most `limit`, sampling the server's
/// CPU (process tree) and the host's steal as it starts and ends, and the
/// tool's own CPU once it has exited but is not yet reaped.
fn run_tool(
    tool: &str,
    args: &[String],
    pid: u32,
    cpu: Option<usize>,
    limit: Duration,
) -> Result<ToolRun, String> {
    let start = Mark::now(tree_cpu_seconds(pid).unwrap_or(0.0));
    let program = find_program(tool).unwrap_or_else(|| tool.into());
    let mut child = pinned_command(&program, args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {tool}: {e}"))?;
    // `pinned_command` execs all the way down: this is the tool's own PID.
    let tool_pid = child.id();
    let mut stdout = child.stdout.take().expect("piped");
    let guard = Guard { child: Some(child) };
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        let _ = tx.send(out);
    });
    let out = rx
        .recv_timeout(limit)
        .map_err(|_| format!("{tool} did not finish within {limit:?}"))?;
    let end = Mark::now(tree_cpu_seconds(pid).unwrap_or(0.0));
    let window_s = end.at.duration_since(start.at).as_secs_f64();
    // Stdout's end is the tool exiting; its stat is final once it is a
    // zombie, and gone once the guard reaps it.
    let client_cpu_s = final_cpu_seconds(tool_pid, Duration::from_secs(2)).unwrap_or(0.0);
    drop(guard);
    Ok(ToolRun {
        out,
        server_cpu_s: end.cpu - start.cpu,
        window_s,
        client_cpu_s,
        steal: steal_share(start.steal, end.steal, window_s),
    })
}

/// HTTP: `wrk -t1 -cN -dS --latency`, plus `-s scripts/pipeline.lua URL
/// -- P` when `pipeline` is above 1. wrk has no warm-up, so its whole run
/// is the window (connection set-up included: small at these counts).
///
/// Pipelined, wrk still counts every response (Requests/sec is
/// responses/s, and a response it cannot parse is a read error), but it
/// times only the last response of each batch from the batch's write, and
/// its coordinated-omission correction (`stats_correct`) then spaces the
/// requests it adds by runtime ÷ (responses ÷ connections): `pipeline`
/// times too short. Those land below the histogram's minimum, where its
/// percentile walk never looks, so p90/p99 come out as 0 and p50 is
/// skewed. Only the maximum (one batch's real time) is kept then.
fn run_wrk(
    o: &Options,
    pid: u32,
    addr: &str,
    cpu: Option<usize>,
    conns: usize,
    pipeline: usize,
) -> Result<Measured, String> {
    let seconds = (o.duration + o.warmup).ceil().max(1.0) as u64;
    let mut args: Vec<String> = vec!["-t1".into(), format!("-c{conns}"), format!("-d{seconds}s")];
    if pipeline > 1 {
        // Absolute, so the bench works from whatever directory cargo runs
        // it in; the depth is the script's first argument after `--`.
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/pipeline.lua");
        args.extend(["-s".into(), script.display().to_string()]);
    }
    args.extend(["--latency".into(), format!("http://{addr}/")]);
    if pipeline > 1 {
        args.extend(["--".into(), pipeline.to_string()]);
    }
    let limit = Duration::from_secs(seconds + 30);
    let run = run_tool("wrk", &args, pid, cpu, limit)?;
    let (out, server_cpu) = (&run.out, run.server_cpu_s);
    // "Requests/sec:  12345.67"; "Latency   1.00ms  2.00ms  30.00ms  90%";
    // "50%  1.00ms" ... "99%  3.00ms"; "Non-2xx or 3xx responses: N";
    // "Socket errors: connect 0, read 0, write 0, timeout 0".
    let rate = out
        .lines()
        .find_map(|l| l.trim().strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse::<f64>().ok())
        .ok_or_else(|| format!("wrk printed no Requests/sec: {out}"))?;
    let percentile = |p: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(p))
            .and_then(|v| wrk_duration_us(v.trim()))
            .unwrap_or(0.0)
    };
    let max = out
        .lines()
        .find(|l| l.trim_start().starts_with("Latency") && !l.contains("Distribution"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(wrk_duration_us)
        .unwrap_or(0.0);
    let mut errors = 0u64;
    for line in out.lines().map(str::trim) {
        if let Some(n) = line.strip_prefix("Non-2xx or 3xx responses:") {
            errors += n.trim().parse::<u64>().unwrap_or(0);
        }
        if let Some(rest) = line.strip_prefix("Socket errors:") {
            errors += rest
                .split(',')
                .filter_map(|part| part.split_whitespace().last()?.parse::<u64>().ok())
                .sum::<u64>();
        }
    }
    // 0 is "not measured": the report leaves it blank.
    let latency_us = if pipeline > 1 {
        [0.0, 0.0, 0.0, 0.0, max]
    } else {
        [
            percentile("50%"),
            percentile("90%"),
            percentile("99%"),
            0.0,
            max,
        ]
    };
    let mut m = Measured {
        msgs_per_sec: rate,
        latency_us,
        server_cpu_s: server_cpu,
        window_s: run.window_s,
        client_cpu_s: run.client_cpu_s,
        steal: run.steal,
        errors,
        established: conns as u64,
        requested: conns as u64,
        ..Measured::default()
    };
    if rate > 0.0 {
        m.server_us_per_msg = server_cpu * 1e6 / (rate * seconds as f64);
    }
    if errors > 0 {
        m.failure = Some(format!("{errors} wrk errors"));
    }
    Ok(m)
}

/// "1.50ms", "830.00us", "1.02s" in µs.
fn wrk_duration_us(text: &str) -> Option<f64> {
    let (number, scale) = if let Some(v) = text.strip_suffix("us") {
        (v, 1.0)
    } else if let Some(v) = text.strip_suffix("ms") {
        (v, 1e3)
    } else if let Some(v) = text.strip_suffix('m') {
        (v, 60e6)
    } else if let Some(v) = text.strip_suffix('s') {
        (v, 1e6)
    } else {
        return None;
    };
    number.parse::<f64>().ok().map(|v| v * scale)
}

/// RESP: `redis-benchmark -t TEST -c N -P P -n REQUESTS --csv` for a
/// [`Workload::Resp`]. It runs a request count, not a duration, so the
/// count is sized for about `--duration` + `--warmup` seconds at the rate
/// the slower server reaches here: the lesser of what the client can send
/// and what the server does with the CPU it is given (all of one, or the
/// cap's share).
fn run_redis_benchmark(
    o: &Options,
    pid: u32,
    addr: &str,
    cpu: Option<usize>,
    workload: &Workload,
) -> Result<Measured, String> {
    let Workload::Resp {
        test,
        conns,
        pipeline,
        server_cpu_percent,
    } = *workload
    else {
        return Err(format!("not a RESP workload: {workload:?}"));
    };
    let (host, port) = addr.rsplit_once(':').ok_or("bad address")?;
    // Measured on two vCPUs, req/s: (the client's most, the slower
    // server's per CPU-second). At depth 1 redis-benchmark tops out at
    // 120-140k with neither server saturated, and the servers spend 5-6.4
    // µs per request (160-200k per CPU-second), so uncapped runs are
    // client-bound and capped ones server-bound: at 50% they do 80-100k,
    // 70% of uncapped, not half. Sizing from the low ends makes a run
    // about --duration + --warmup (a server that is faster finishes a bit
    // sooner). Pipelined they do 1.4-1.9M; sizing stays at 400k there,
    // which makes those runs a quarter of that here, because --quick runs
    // them in CI on machines of unknown speed, where a short run is the
    // safer error than one near the time limit.
    let (client_max, server_per_cpu) = if pipeline > 1 {
        (400_000.0, 1_400_000.0)
    } else {
        (120_000.0, 160_000.0)
    };
    let share = server_cpu_percent.map_or(1.0, |p| f64::from(p.clamp(1, 100)) / 100.0);
    let per_second = f64::min(client_max, server_per_cpu * share);
    let requests = ((o.duration + o.warmup) * per_second).max(1.0) as u64;
    let args: Vec<String> = vec![
        "-h".into(),
        host.into(),
        "-p".into(),
        port.into(),
        "-t".into(),
        test.into(),
        "-c".into(),
        conns.to_string(),
        "-P".into(),
        pipeline.to_string(),
        "-n".into(),
        requests.to_string(),
        "--csv".into(),
    ];
    let limit = Duration::from_secs_f64(o.duration + o.warmup + 60.0);
    let run = run_tool("redis-benchmark", &args, pid, cpu, limit)?;
    let (out, server_cpu) = (&run.out, run.server_cpu_s);
    // "test","rps","avg_latency_ms","min_latency_ms","p50_latency_ms",
    // "p95_latency_ms","p99_latency_ms","max_latency_ms"
    // The CSV row is named after the test in capitals: "GET", "SET",
    // "PING_MBULK".
    let label = format!("\"{}\"", test.to_ascii_uppercase());
    let line = out
        .lines()
        .find(|l| l.starts_with(&label))
        .ok_or_else(|| format!("redis-benchmark printed no {label} line: {out}"))?;
    let cols: Vec<f64> = line
        .split(',')
        .skip(1)
        .map(|c| c.trim_matches('"').parse::<f64>().unwrap_or(0.0))
        .collect();
    let col = |i: usize| cols.get(i).copied().unwrap_or(0.0);
    let rate = col(0);
    let mut m = Measured {
        msgs_per_sec: rate,
        latency_us: [col(3) * 1e3, col(4) * 1e3, col(5) * 1e3, 0.0, col(6) * 1e3],
        server_cpu_s: server_cpu,
        window_s: run.window_s,
        client_cpu_s: run.client_cpu_s,
        steal: run.steal,
        established: conns as u64,
        requested: conns as u64,
        ..Measured::default()
    };
    if requests > 0 {
        m.server_us_per_msg = server_cpu * 1e6 / requests as f64;
    }
    if rate <= 0.0 {
        m.failure = Some("no requests completed".into());
    }
    Ok(m)
}

/// The number after `"key":` in a flat-enough JSON text (loadgen's keys
/// are unique, so nesting needs no parser).
fn json_number(json: &str, key: &str) -> Option<f64> {
    let at = json.find(&format!("\"{key}\":"))? + key.len() + 3;
    let rest = &json[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_digit() || matches!(c, '.' | '-' | 'e' | 'E' | '+')))
        .unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn brief(m: &Measured) -> String {
    if let Some(rss) = m.rss_per_conn {
        return format!("{rss:.0} B/conn RSS");
    }
    let mut s = format!(
        "{:.0} msg/s, p99 {:.0} us, server {:.2} us/msg at {:.0}% CPU, client {}, steal {}",
        m.msgs_per_sec,
        m.latency_us[2],
        m.server_us_per_msg,
        m.server_util() * 100.0,
        m.client_util()
            .map_or("-".into(), |u| format!("{:.0}%", u * 100.0)),
        m.steal.map_or("-".into(), |v| format!("{:.1}%", v * 100.0)),
    );
    if let Some(f) = &m.failure {
        let _ = write!(s, "  FAILED: {f}");
    }
    s
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
fn fixed_rate(
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

/// Figures `f` of the successful runs of `peer` in `scenario`.
fn values(
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

fn median(v: &[f64]) -> Option<f64> {
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
struct Spread {
    /// Median.
    median: f64,
    /// Smallest.
    min: f64,
    /// Largest.
    max: f64,
}

fn spread(v: &[f64]) -> Option<Spread> {
    Some(Spread {
        median: median(v)?,
        min: v.iter().copied().fold(f64::INFINITY, f64::min),
        max: v.iter().copied().fold(f64::NEG_INFINITY, f64::max),
    })
}

/// Everything the report needs.
struct Report<'a> {
    /// How the bench was invoked.
    options: &'a Options,
    /// Peers that ran.
    peers: &'a [Peer],
    /// Scenarios that ran, in order.
    scenarios: &'a [Scenario],
    /// Scenarios selected but not run, each with a one-line reason; none
    /// of them is in `scenarios`.
    skipped: &'a [(Scenario, String)],
    /// Every run.
    runs: &'a [Run],
    /// Open-loop rate per fixed-rate scenario.
    rates: &'a BTreeMap<String, f64>,
    /// Machine summary.
    machine: String,
    /// Whether server and client were pinned to separate CPUs.
    pinned: bool,
    /// Seconds the whole bench took.
    elapsed: f64,
}

/// One row of the summary: a peer in a scenario, medians over rounds.
struct Row {
    /// Scenario name.
    scenario: String,
    /// Peer name.
    peer: &'static str,
    /// Messages per second.
    rate: Option<Spread>,
    /// Server CPU µs per message.
    cpu: Option<Spread>,
    /// Latency percentiles in µs (medians).
    latency: [Option<f64>; 5],
    /// Median server CPU share of the window.
    util: Option<f64>,
    /// Median client CPU share of the window (loadgen, wrk or
    /// redis-benchmark); `None` when no run measured it.
    client_util: Option<f64>,
    /// Median host steal share of the window (see [`Measured::steal`]).
    steal: Option<f64>,
    /// This peer's median throughput ÷ the client-ceiling peer's in the
    /// same scenario; `None` for the ceiling itself and where there is none.
    of_ceiling: Option<(&'static str, f64)>,
    /// Idle: RSS bytes per connection.
    rss: Option<Spread>,
    /// Failed runs out of all runs.
    failed: usize,
    /// Runs.
    total: usize,
    /// First failure message, if any.
    failure: Option<String>,
    /// A fixed-rate scenario: the server is meant to be partly idle.
    open_loop: bool,
    /// The scenario's cgroup CPU cap on the server, percent of one CPU
    /// (see [`Workload::server_cpu_percent`]); `None`: uncapped, saturated
    /// is 100%.
    cap: Option<u32>,
}

/// The project against one peer in one scenario: medians of per-round
/// ratios, project ÷ peer.
struct Ratio {
    /// Scenario name.
    scenario: String,
    /// The peer.
    peer: &'static str,
    /// Messages per second (above 1: the project is faster). `None` for
    /// fixed-rate scenarios, where every server is given the same rate.
    throughput: Option<f64>,
    /// Server CPU per message (below 1: the project is cheaper).
    cpu: Option<f64>,
    /// p99 latency (below 1: the project answers sooner).
    p99: Option<f64>,
}

impl Report<'_> {
    fn rows(&self) -> Vec<Row> {
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
                    cap: s.workload.server_cpu_percent(),
                });
            }
        }
        rows
    }

    /// Project ÷ peer per scenario: median of per-round ratios of
    /// throughput and of server CPU per message.
    fn ratios(&self) -> Vec<Ratio> {
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

    fn warnings(row: &Row) -> String {
        let mut w = Vec::new();
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
            // Saturated is the whole CPU, or the cap where there is one.
            let full = row.cap.map_or(1.0, |p| f64::from(p) / 100.0);
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
            if let Some(u) = row.client_util.filter(|u| *u >= 0.9) {
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

    fn text_table(&self) -> String {
        let mut t = String::new();
        let _ = writeln!(
            t,
            "\n{:<22} {:<9} {:>28} {:>24} {:>9} {:>9} {:>5} {:>5} {:>5}  notes",
            "scenario",
            "server",
            "msg/s median [min-max]",
            "srv us/msg [min-max]",
            "p50 us",
            "p99 us",
            "srv%",
            "cli%",
            "stl%"
        );
        let steal = |row: &Row| {
            row.steal
                .map_or("-".into(), |v| format!("{:.1}", v * 100.0))
        };
        for row in self.rows() {
            if let Some(rss) = &row.rss {
                let _ = writeln!(
                    t,
                    "{:<22} {:<9} {:>28} {:>24} {:>9} {:>9} {:>5} {:>5} {:>5}  {}",
                    row.scenario,
                    row.peer,
                    format!("{:.0} B/conn [{:.0}-{:.0}]", rss.median, rss.min, rss.max),
                    "",
                    "",
                    "",
                    "",
                    "",
                    steal(&row),
                    Self::warnings(&row)
                );
                continue;
            }
            let _ = writeln!(
                t,
                "{:<22} {:<9} {:>28} {:>24} {:>9} {:>9} {:>5} {:>5} {:>5}  {}",
                row.scenario,
                row.peer,
                row.rate.as_ref().map_or("-".into(), |r| format!(
                    "{:.0} [{:.0}-{:.0}]",
                    r.median, r.min, r.max
                )),
                row.cpu.as_ref().map_or("-".into(), |r| format!(
                    "{:.2} [{:.2}-{:.2}]",
                    r.median, r.min, r.max
                )),
                row.latency[0].map_or("-".into(), |v| format!("{v:.0}")),
                row.latency[2].map_or("-".into(), |v| format!("{v:.0}")),
                row.util.map_or("-".into(), |v| format!("{:.0}", v * 100.0)),
                row.client_util
                    .map_or("-".into(), |v| format!("{:.0}", v * 100.0)),
                steal(&row),
                Self::warnings(&row)
            );
        }
        for (s, why) in self.skipped {
            let _ = writeln!(t, "{:<22} skipped: {why}", s.name);
        }
        let _ = writeln!(t, "\nreactor / peer (median of per-round ratios): throughput (higher is better), server CPU per message and p99 latency (lower is better)");
        for r in self.ratios() {
            let _ = writeln!(
                t,
                "{:<22} vs {:<9} throughput x{:<6} cpu/msg x{:<6} p99 x{}",
                r.scenario,
                r.peer,
                fmt2(r.throughput),
                fmt2(r.cpu),
                fmt2(r.p99)
            );
        }
        t
    }

    fn markdown(&self) -> String {
        let o = self.options;
        let mut md = String::new();
        let _ = writeln!(md, "# Load comparison: echo, HTTP and RESP servers\n");
        let _ = writeln!(
            md,
            "Generated by `cargo bench --bench load{}` in {:.0} s.\n",
            if o.quick { " -- --quick" } else { "" },
            self.elapsed
        );
        let _ = writeln!(md, "* Machine: {}", self.machine);
        let _ = writeln!(
            md,
            "* Placement: {}",
            if self.pinned {
                "server pinned to CPU 0, the client (loadgen, wrk or redis-benchmark) to CPU 1 (taskset)"
            } else {
                "not pinned"
            }
        );
        let _ = writeln!(
            md,
            "* {} rounds per scenario (idle: 1 with --quick), servers interleaved, each round starting with the next server; {} s measured after {} s warm-up; medians with [min–max].",
            o.rounds, o.duration, o.warmup
        );
        let _ = writeln!(md, "* Server CPU per message: utime+stime of the server process across the measured window (10 ms ticks) ÷ messages echoed. Steadier than msg/s on a shared machine.");
        let _ = writeln!(md, "* `srv%` under 90 (capped rows: under 90% of the cap): the server was not saturated (client- or round-trip-bound); msg/s then measures latency, not capacity.");
        let _ = writeln!(md, "* `client%`: CPU of the load client ÷ the window: loadgen's own count over its window, or the whole wrk / redis-benchmark process (utime+stime from `/proc/PID/stat`, read before it is reaped) over its run. From 90 up the client, not the server, set the pace: the row is client-bound.");
        let _ = writeln!(md, "* `steal %`: the host's steal time (8th value of the `cpu` line of `/proc/stat`) over the window ÷ the host's capacity in it (online CPUs × window). CPU the hypervisor gave to other guests while this one had work; machine-wide, so it slows server and client alike. From 5% up the row's figures are flagged as unreliable.");
        for (name, rate) in self.rates {
            let _ = writeln!(md, "* `{name}`: open loop at {rate:.0} msg/s (half the slowest server's closed-loop depth-1 throughput at the same connections and size); latency from intended send times.");
        }
        let _ = writeln!(md, "* HTTP rows (`http-*`, wrk `-t1 --latency`): msg/s is requests/s; wrk reports p50/p75/p90/p99 and max, so p99.9 is blank; the window is wrk's whole run (it has no warm-up). `-pN` rows send N requests per write with `scripts/pipeline.lua`; wrk then times batches, not requests, and its coordinated-omission correction assumes one response per write, so only max µs (one batch) is given.");
        let capped: Vec<String> = self
            .scenarios
            .iter()
            .chain(self.skipped.iter().map(|(s, _)| s))
            .filter(|s| s.workload.server_cpu_percent().is_some())
            .map(|s| format!("`{}`", s.name))
            .collect();
        if !capped.is_empty() {
            let _ = writeln!(md, "* Capped rows ({}): HTTP at 50 connections and plain (depth-1) RESP are also run with every process of the server (nginx: master and worker) moved, once it listens and before the load starts, into a fresh cgroup whose CPU quota holds it to the given share of one CPU (`-cap50`: 50%; cgroup v2 `cpu.max`, else v1 `cpu.cfs_quota_us`, over a {} ms period); the cgroup is removed once the server has stopped. Why: both clients are single-threaded, each pinned to one of this machine's two vCPUs, and cannot outrun these servers: wrk `-t1` at 50 connections drives reactor-http and nginx to within 10% of c-http's throughput, and redis-benchmark at depth 1 runs at 98–99% of its CPU against reactor-resp and redis alike with neither server saturated. So the uncapped `http-c50` and `resp-*-c50-p1` rows measure the client; with each server held to the same half core the client has headroom and the req/s ratio measures the servers. There `srv%` is judged against the cap (50 is saturated), and c-http, capped too, is no longer the client's ceiling, so its share is not read as client-bound. A capped RESP run's request count is sized from the server's rate at the cap's share of a CPU, so it lasts about as long as an uncapped one.", capped.join(", "), CAP_PERIOD_US / 1000);
        }
        for (s, why) in self.skipped {
            let _ = writeln!(md, "* Skipped `{}`: {why}.", s.name);
        }
        let _ = writeln!(md, "* RESP rows (`resp-CMD-cN-pP`, redis-benchmark `-t CMD -c N -P P --csv`; PING is `ping_mbulk`): msg/s is requests/s; the p90 column holds redis-benchmark's p95; p99.9 is blank; the window is redis-benchmark's whole run, a fixed request count (`-n`: warm-up + measured seconds × the rate expected here, the client's most or, on capped rows, the server's at the cap's share of a CPU if lower), so server µs/msg counts connection set-up too.");
        let _ = writeln!(md, "\n## Servers\n");
        for p in self.peers {
            let _ = writeln!(md, "* **{}**: {}", p.name, p.note);
        }
        let _ = writeln!(md, "\n## Results\n");
        let _ = writeln!(md, "| scenario | server | msg/s | server µs/msg | p50 µs | p90 µs | p99 µs | p99.9 µs | max µs | srv% | client% | steal % | notes |");
        let _ = writeln!(
            md,
            "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---|"
        );
        let f0 = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.0}"));
        let steal = |row: &Row| {
            row.steal
                .map_or("–".into(), |v| format!("{:.1}", v * 100.0))
        };
        for row in self.rows() {
            if let Some(rss) = &row.rss {
                let _ = writeln!(
                    md,
                    "| {} | {} | idle: **{:.0} B/conn** RSS [{:.0}–{:.0}] | | | | | | | | | {} | {} |",
                    row.scenario,
                    row.peer,
                    rss.median,
                    rss.min,
                    rss.max,
                    steal(&row),
                    Self::warnings(&row)
                );
                continue;
            }
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                row.scenario,
                row.peer,
                row.rate.as_ref().map_or("–".into(), |r| format!(
                    "{:.0} [{:.0}–{:.0}]",
                    r.median, r.min, r.max
                )),
                row.cpu.as_ref().map_or("–".into(), |r| format!(
                    "{:.2} [{:.2}–{:.2}]",
                    r.median, r.min, r.max
                )),
                f0(row.latency[0]),
                f0(row.latency[1]),
                f0(row.latency[2]),
                f0(row.latency[3]),
                f0(row.latency[4]),
                row.util.map_or("–".into(), |v| format!("{:.0}", v * 100.0)),
                row.client_util
                    .map_or("–".into(), |v| format!("{:.0}", v * 100.0)),
                steal(&row),
                Self::warnings(&row)
            );
        }
        let _ = writeln!(md, "\n## reactor ÷ peer\n\nMedian of per-round ratios. Throughput: above 1 the reactor is faster. CPU per message and p99: below 1 the reactor is cheaper / answers sooner. Fixed-rate scenarios have no throughput ratio: every server gets the same rate.\n");
        let ratios = self.ratios();
        if let Some(ceiling) = self
            .peers
            .iter()
            .find(|p| p.ceiling && ratios.iter().any(|r| r.peer == p.name))
        {
            let _ = writeln!(md, "Against **{}**, the client's ceiling rather than a server, throughput × is the share of what the client can drive at all that the reactor reached (near 1: the row measures the client), and CPU/msg × is the reactor's cost over the least work a server can do per request.{}\n", ceiling.name, if capped.is_empty() { "" } else { " In capped scenarios it is held to the same cap as the others, so throughput × there is the reactor's rate over the least-work server's at the same CPU, not a share of the client's ceiling." });
        }
        let _ = writeln!(md, "| scenario | peer | throughput × | CPU/msg × | p99 × |");
        let _ = writeln!(md, "|---|---|---:|---:|---:|");
        for r in ratios {
            let _ = writeln!(
                md,
                "| {} | {} | {} | {} | {} |",
                r.scenario,
                r.peer,
                fmt2(r.throughput),
                fmt2(r.cpu),
                fmt2(r.p99)
            );
        }
        let _ = writeln!(md, "\n## Charts\n\n![throughput](throughput.svg)\n\n![CPU per message](cpu_per_message.svg)\n\n![latency](latency.svg)");
        md
    }

    fn json(&self) -> String {
        let mut j = String::new();
        let o = self.options;
        let _ = write!(
            j,
            "{{\"machine\":{},\"pinned\":{},\"quick\":{},\"rounds\":{},\"duration_s\":{},\"warmup_s\":{},\"elapsed_s\":{:.1},\"rates\":{{",
            json_string(&self.machine),
            self.pinned,
            o.quick,
            o.rounds,
            o.duration,
            o.warmup,
            self.elapsed
        );
        let rates: Vec<String> = self
            .rates
            .iter()
            .map(|(k, v)| format!("{}:{v:.1}", json_string(k)))
            .collect();
        let skipped: Vec<String> = self
            .skipped
            .iter()
            .map(|(s, why)| {
                format!(
                    "{{\"scenario\":{},\"reason\":{}}}",
                    json_string(&s.name),
                    json_string(why)
                )
            })
            .collect();
        let _ = write!(
            j,
            "{}}},\"skipped\":[{}],\"runs\":[",
            rates.join(","),
            skipped.join(",")
        );
        let runs: Vec<String> = self
            .runs
            .iter()
            .map(|r| {
                let m = &r.m;
                format!(
                    concat!(
                        "{{\"scenario\":{},\"server\":{},\"round\":{},\"messages_per_sec\":{:.1},",
                        "\"mib_per_sec\":{:.3},\"latency_us\":{{\"p50\":{:.2},\"p90\":{:.2},",
                        "\"p99\":{:.2},\"p999\":{:.2},\"max\":{:.2}}},\"server_cpu_s\":{:.3},",
                        "\"window_s\":{:.3},\"server_cpu_us_per_msg\":{:.4},\"server_util\":{:.3},",
                        "\"client_cpu_s\":{:.3},\"client_util\":{},\"steal\":{},",
                        "\"errors\":{},\"mismatched_bytes\":{},",
                        "\"connections\":{{\"requested\":{},\"established\":{}}},",
                        "\"rss_bytes_per_conn\":{},\"failure\":{}}}"
                    ),
                    json_string(&r.scenario),
                    json_string(r.peer),
                    r.round,
                    m.msgs_per_sec,
                    m.mib_per_sec,
                    m.latency_us[0],
                    m.latency_us[1],
                    m.latency_us[2],
                    m.latency_us[3],
                    m.latency_us[4],
                    m.server_cpu_s,
                    m.window_s,
                    m.server_us_per_msg,
                    m.server_util(),
                    m.client_cpu_s,
                    m.client_util().map_or("null".into(), |v| format!("{v:.3}")),
                    m.steal.map_or("null".into(), |v| format!("{v:.4}")),
                    m.errors,
                    m.mismatched_bytes,
                    m.requested,
                    m.established,
                    m.rss_per_conn.map_or("null".into(), |v| format!("{v:.1}")),
                    m.failure.as_deref().map_or("null".into(), json_string)
                )
            })
            .collect();
        let _ = write!(j, "{}],\"ratios\":[", runs.join(","));
        let ratios: Vec<String> = self
            .ratios()
            .into_iter()
            .map(|r| {
                let num = |v: Option<f64>| v.map_or("null".into(), |v| format!("{v:.4}"));
                format!(
                    "{{\"scenario\":{},\"peer\":{},\"throughput\":{},\"cpu_per_msg\":{},\"p99\":{}}}",
                    json_string(&r.scenario),
                    json_string(r.peer),
                    num(r.throughput),
                    num(r.cpu),
                    num(r.p99)
                )
            })
            .collect();
        let _ = writeln!(j, "{}]}}", ratios.join(","));
        j
    }

    /// Writes the three charts; one result per chart.
    fn charts(&self, out: &Path) -> Vec<Result<(), String>> {
        vec![
            self.throughput_chart(&out.join("throughput.svg")),
            self.cpu_chart(&out.join("cpu_per_message.svg")),
            self.latency_chart(&out.join("latency.svg")),
        ]
    }

    /// Median msg/s against connections, log-log: one panel per (size,
    /// depth) pair, one line per server, the same colour for a server in
    /// every panel (all 24 lines in one plot could not be read).
    fn throughput_chart(&self, path: &Path) -> Result<(), String> {
        let mut panels: BTreeMap<(usize, usize), Lines> = BTreeMap::new();
        for s in self.scenarios {
            let Workload::Throughput { conns, size, depth } = s.workload else {
                continue;
            };
            for (peer_index, p) in self.peers.iter().enumerate() {
                let v = values(self.runs, &s.name, p.name, |m| Some(m.msgs_per_sec));
                if let Some(m) = median(&v) {
                    panels
                        .entry((size, depth))
                        .or_default()
                        .entry(peer_index)
                        .or_default()
                        .push((conns as f64, m));
                }
            }
        }
        if panels.is_empty() {
            return Ok(());
        }
        let columns = panels.len().min(2);
        let rows = panels.len().div_ceil(columns);
        let root = SVGBackend::new(path, (560 * columns as u32, 380 * rows as u32 + 40))
            .into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let root = root
            .titled(
                "Echo throughput vs connections (median msg/s)",
                ("sans-serif", 24),
            )
            .map_err(|e| e.to_string())?;
        let areas = root.split_evenly((rows, columns));
        for (area, ((size, depth), lines)) in areas.iter().zip(panels) {
            let points: Vec<(f64, f64)> = lines.values().flatten().copied().collect();
            let (x0, x1) = bounds(points.iter().map(|p| p.0));
            let (y0, y1) = bounds(points.iter().map(|p| p.1));
            let mut chart = ChartBuilder::on(area)
                .caption(format!("{size} B, depth {depth}"), ("sans-serif", 18))
                .margin(10)
                .x_label_area_size(35)
                .y_label_area_size(70)
                .build_cartesian_2d(
                    (x0 / 2.0..x1 * 2.0).log_scale(),
                    (y0 / 1.5..y1 * 1.5).log_scale(),
                )
                .map_err(|e| e.to_string())?;
            chart
                .configure_mesh()
                .x_desc("connections")
                .y_desc("msg/s")
                .draw()
                .map_err(|e| e.to_string())?;
            for (peer_index, mut pts) in lines {
                pts.sort_by(|a, b| a.0.total_cmp(&b.0));
                let color = Palette99::pick(peer_index).to_rgba();
                chart
                    .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                    .map_err(|e| e.to_string())?
                    .label(self.peers[peer_index].name)
                    .legend(move |(x, y)| {
                        PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                    });
                chart
                    .draw_series(pts.iter().map(|&p| Circle::new(p, 3, color.filled())))
                    .map_err(|e| e.to_string())?;
            }
            chart
                .configure_series_labels()
                .background_style(WHITE.mix(0.8))
                .border_style(BLACK)
                .position(SeriesLabelPosition::LowerRight)
                .draw()
                .map_err(|e| e.to_string())?;
        }
        root.present().map_err(|e| e.to_string())
    }

    /// Median server CPU µs per message for every throughput scenario.
    fn cpu_chart(&self, path: &Path) -> Result<(), String> {
        let names: Vec<&Scenario> = self
            .scenarios
            .iter()
            .filter(|s| !matches!(s.workload, Workload::Idle { .. }))
            .collect();
        if names.is_empty() {
            return Ok(());
        }
        let mut top: f64 = 0.0;
        let mut lines = Vec::new();
        for p in self.peers {
            let pts: Vec<(f64, f64)> = names
                .iter()
                .enumerate()
                .filter_map(|(i, s)| {
                    let v = values(self.runs, &s.name, p.name, |m| {
                        (m.server_us_per_msg > 0.0).then_some(m.server_us_per_msg)
                    });
                    median(&v).map(|m| (i as f64, m))
                })
                .collect();
            top = pts.iter().map(|p| p.1).fold(top, f64::max);
            lines.push((p.name, pts));
        }
        let root = SVGBackend::new(path, (1200, 600)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let labels: Vec<String> = names.iter().map(|s| s.name.clone()).collect();
        let mut chart = ChartBuilder::on(&root)
            .caption(
                "Server CPU per message (median µs, lower is better)",
                ("sans-serif", 22),
            )
            .margin(12)
            .x_label_area_size(60)
            .y_label_area_size(60)
            .build_cartesian_2d(-0.5..names.len() as f64 - 0.5, 0.0..top.max(1.0) * 1.15)
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(names.len())
            .x_label_formatter(&|x: &f64| {
                let i = x.round();
                if (x - i).abs() < 0.01 && i >= 0.0 {
                    labels.get(i as usize).cloned().unwrap_or_default()
                } else {
                    String::new()
                }
            })
            .y_desc("server CPU µs per message")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in lines.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }

    /// Latency percentiles of the fixed-rate scenarios, one line per server.
    fn latency_chart(&self, path: &Path) -> Result<(), String> {
        let Some(s) = self
            .scenarios
            .iter()
            .find(|s| matches!(s.workload, Workload::FixedRate { .. }))
        else {
            return Ok(());
        };
        let mut lines = Vec::new();
        for p in self.peers {
            let pts: Vec<(f64, f64)> = (0..5)
                .filter_map(|i| {
                    median(&values(self.runs, &s.name, p.name, |m| {
                        Some(m.latency_us[i])
                    }))
                    .filter(|v| *v > 0.0)
                    .map(|v| (i as f64, v))
                })
                .collect();
            if !pts.is_empty() {
                lines.push((p.name, pts));
            }
        }
        let all: Vec<f64> = lines.iter().flat_map(|l| l.1.iter().map(|p| p.1)).collect();
        if all.is_empty() {
            return Ok(());
        }
        let (y0, y1) = bounds(all.into_iter());
        let root = SVGBackend::new(path, (900, 560)).into_drawing_area();
        root.fill(&WHITE).map_err(|e| e.to_string())?;
        let names = ["p50", "p90", "p99", "p99.9", "max"];
        let rate = self.rates.get(&s.name).copied().unwrap_or(0.0);
        let mut chart = ChartBuilder::on(&root)
            .caption(
                format!("Latency at a fixed {rate:.0} msg/s ({}), µs", s.name),
                ("sans-serif", 20),
            )
            .margin(12)
            .x_label_area_size(40)
            .y_label_area_size(70)
            .build_cartesian_2d(-0.5..4.5, (y0 / 2.0..y1 * 2.0).log_scale())
            .map_err(|e| e.to_string())?;
        chart
            .configure_mesh()
            .x_labels(5)
            .x_label_formatter(&|x: &f64| {
                let i = x.round();
                if (x - i).abs() < 0.01 && (0.0..5.0).contains(&i) {
                    names[i as usize].to_string()
                } else {
                    String::new()
                }
            })
            .y_desc("latency µs (from intended send time)")
            .draw()
            .map_err(|e| e.to_string())?;
        for (i, (name, pts)) in lines.into_iter().enumerate() {
            let color = Palette99::pick(i).to_rgba();
            chart
                .draw_series(LineSeries::new(pts.clone(), color.stroke_width(2)))
                .map_err(|e| e.to_string())?
                .label(name)
                .legend(move |(x, y)| {
                    PathElement::new(vec![(x, y), (x + 16, y)], color.stroke_width(2))
                });
            chart
                .draw_series(pts.iter().map(|&p| Circle::new(p, 4, color.filled())))
                .map_err(|e| e.to_string())?;
        }
        chart
            .configure_series_labels()
            .background_style(WHITE.mix(0.8))
            .border_style(BLACK)
            .position(SeriesLabelPosition::UpperLeft)
            .draw()
            .map_err(|e| e.to_string())?;
        root.present().map_err(|e| e.to_string())
    }
}

/// One chart panel's lines: (x, y) points by index into the peer list.
type Lines = BTreeMap<usize, Vec<(f64, f64)>>;

/// Smallest and largest positive values (for log axes).
fn bounds(values: impl Iterator<Item = f64>) -> (f64, f64) {
    let (mut lo, mut hi) = (f64::INFINITY, 0.0f64);
    for v in values.filter(|v| *v > 0.0) {
        lo = lo.min(v);
        hi = hi.max(v);
    }
    if lo.is_finite() {
        (lo, hi)
    } else {
        (1.0, 10.0)
    }
}

/// A ratio with two decimals, or a dash.
fn fmt2(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
