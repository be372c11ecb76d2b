//! The load comparison: the project's servers (`examples/echo_server.rs`,
//! `http_server.rs`, `resp_server.rs`) against peer servers of the same
//! protocol, each a child process, driven by that protocol's load tool
//! (`examples/loadgen/`, `wrk`, `redis-benchmark`). It is the `load` bench
//! of the workspace member `bench/` (package `reactor-bench`), which also
//! holds the Rust peers (`bench/examples/`) and their dependencies, so that
//! building the reactor's examples does not build tokio or plotters.
//!
//! ```text
//! cargo bench --bench load                    # full matrix (about 25 minutes)
//! cargo bench --bench load -- --quick         # reduced matrix (about 2 minutes)
//! cargo bench --bench load -- --filter c1000  # scenarios whose name contains c1000
//! cargo bench --bench load -- --tls           # the TLS rows only (`--filter tls-`)
//! cargo bench --bench load -- --threads       # the many-loops rows only (`threads-*`)
//! cargo bench --bench load -- --threads --loops 1,2,4,8
//! ```
//!
//! It owns everything a comparison needs, with no set-up: it builds the
//! examples it runs (`cargo build --release -p reactor -p reactor-bench
//! --example ...`: the reactor's servers and loadgen, and the Rust peers),
//! compiles the C peers with
//! `cc -O2`, pins the server to CPU 0 and the load client to CPU 1 with
//! `taskset` (when there are two CPUs and taskset exists), interleaves the
//! servers round by round, and writes `load/report.md`, `load/report.json`
//! and SVG charts under the workspace's target directory.
//!
//! Why it measures what it does (`docs/benchmarks.md`, "Method, and why"):
//! on a shared two-core machine messages per
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
//! (`bench/c/http_canned.c`: a canned response per request head) shows
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
//! by that protocol's load tool ([`run_load`]). To add a protocol, as HTTP
//! (nginx, `wrk`) and RESP (`redis-server`, `redis-benchmark`) were added:
//! add a `Protocol` variant, the peers to [`peers`] (a `Launch::Command`
//! runs any program; configs belong in `bench/`, e.g.
//! `bench/nginx.conf`), scenarios to [`scenarios`], and a branch in
//! `run_load` that runs the tool and fills a [`Measured`] (see `tools`).
//!
//! Layout: this file holds the options and the run loop; the rest is one
//! job a module. `peers` and `scenarios` hold the two tables named above;
//! `servers` starts servers (and C peers, nginx, redis) pinned and guarded,
//! `cpu_cap` the cgroup quota; `procfs` reads CPU, steal, memory and
//! descriptors; `loadgen` and `tools` run the load tools and parse what
//! they print; `stats` holds a run's figures and the medians over rounds;
//! `report` builds the rows, ratios and notes that `tables` (stdout,
//! `report.md`), `json` (`report.json`) and `charts` (SVG) render.

mod charts;
mod cpu_cap;
mod json;
mod loadgen;
mod peers;
mod procfs;
mod report;
mod scenarios;
mod servers;
mod stats;
mod tables;
mod tools;

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

use cpu_cap::CpuCap;
use loadgen::run_load;
use peers::{loops_peers, peers, Launch, Peer, Protocol};
use procfs::{hard_fd_limit, machine};
use report::Report;
use scenarios::{fixed_rate, scenarios, Scenario, Workload};
use servers::{
    build_examples, build_tls_examples, compile_c, cpu_count, loop_bytes, placement, start_server,
    Placement, TlsFiles,
};
use stats::{Measured, Run};

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
    /// `--threads`: the many-loops rows (`threads-*`) were asked for, so
    /// they run even with `--quick` (which otherwise leaves them out).
    threads: bool,
    /// Loop counts of the many-loops rows (`--loops 1,2,4,8`; default:
    /// those of 1, 2, 4, 8 that fit the machine, see [`default_loops`]).
    loops: Vec<usize>,
}

/// Where the bench finds and puts things.
struct Paths {
    /// `target/release/examples`: the examples of both packages.
    examples: PathBuf,
    /// `target/load`: reports, charts, the compiled C peers, nginx's prefix.
    out: PathBuf,
    /// `target/load/tls-bin`: the reactor's examples built with
    /// `--features tls` (see [`build_tls_examples`]).
    tls_examples: PathBuf,
    /// The run's certificate, once made (only when a TLS scenario runs).
    tls: Option<TlsFiles>,
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
        threads: false,
        loops: default_loops(cpu_count()),
    };
    let mut explicit = (false, false);
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let mut value = |name: &str| args.next().ok_or(format!("{name} needs a value"));
        match arg.as_str() {
            "--quick" => o.quick = true,
            // The TLS rows (issue 11): every scenario is named tls-*.
            "--tls" => o.filters.push("tls-".into()),
            // The many-loops rows (issue 13): every one is named threads-*.
            "--threads" => {
                o.threads = true;
                o.filters.push("threads-".into());
            }
            "--loops" => {
                o.loops = value("--loops")?
                    .split(',')
                    .map(|n| match n.trim().parse::<usize>() {
                        Ok(n) if (1..=1024).contains(&n) => Ok(n),
                        _ => Err(format!("--loops: {n:?} is not a loop count (1 to 1024)")),
                    })
                    .collect::<Result<_, _>>()?;
            }
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
                    "cargo bench --bench load -- [--quick] [--tls] [--threads] [--loops 1,2,4,8] \
                     [--filter WORD]... [--peers a,b] [--rounds N] [--duration S] [--warmup S]"
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

/// The many-loops rows' default loop counts: those of 1, 2, 4 and 8 that
/// leave the client a CPU of its own on a machine of `cpus` CPUs, and 1 and
/// 2 always (on two CPUs, 2 loops share them with the client).
fn default_loops(cpus: usize) -> Vec<usize> {
    [1, 2, 4, 8]
        .into_iter()
        .filter(|&n| n <= 2 || n < cpus)
        .collect()
}

fn run(o: &Options) -> Result<(), String> {
    let mut paths = locate()?;
    std::fs::create_dir_all(&paths.out).map_err(|e| format!("{}: {e}", paths.out.display()))?;
    build_examples(&["echo_server", "tokio_echo", "threaded_echo", "loadgen"])?;
    let c_echo = compile_c(&paths, "epoll_echo");
    let c_http = compile_c(&paths, "http_canned");
    let mut all_peers = peers(c_echo, c_http);
    all_peers.extend(loops_peers(&o.loops));
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
    let pin = placement();
    let fd_limit = hard_fd_limit();
    let mut scenarios: Vec<Scenario> = scenarios(o, fd_limit)
        .into_iter()
        .filter(|s| o.filters.is_empty() || o.filters.iter().any(|f| s.name.contains(f)))
        .collect();
    let mut skipped: Vec<(Scenario, String)> = Vec::new();
    // TLS rows need the examples built with the feature and a certificate
    // made for this run; if either cannot be had they are skipped with a
    // note (and the TLS peers, with no scenario left, are left out).
    if scenarios.iter().any(|s| s.protocol.is_tls()) {
        let ready = build_tls_examples(&paths, &["echo_server", "http_server", "loadgen"])
            .and_then(|()| TlsFiles::generate());
        match ready {
            Ok(files) => paths.tls = Some(files),
            Err(e) => {
                scenarios.retain(|s| {
                    if !s.protocol.is_tls() {
                        return true;
                    }
                    eprintln!("load: skipping {}: {e}", s.name);
                    skipped.push((s.clone(), e.clone()));
                    false
                });
            }
        }
        // The plain examples again: the TLS build replaced them in place
        // (http_server only where it built plain at all).
        let mut plain = vec!["echo_server", "loadgen"];
        if all_peers.iter().any(|p| p.protocol == Protocol::Http) {
            plain.push("http_server");
        }
        build_examples(&plain)?;
    }
    // Only peers of a protocol some scenario runs: the report lists the
    // servers it compared, not every one this machine has.
    let peers: Vec<Peer> = all_peers
        .into_iter()
        .filter(|p| o.peers.is_empty() || o.peers.iter().any(|n| n == p.name))
        .filter(|p| scenarios.iter().any(|s| s.protocol == p.protocol))
        .collect();
    if peers.is_empty() {
        return Err("no peer selected".into());
    }
    let result = measure(o, &paths, &peers, scenarios, skipped, pin);
    if let Some(tls) = &paths.tls {
        tls.remove();
    }
    result
}

/// Runs `scenarios` against `peers` and writes the report: everything
/// after the set-up, so that [`run`] removes the run's certificate
/// whatever happens here.
fn measure(
    o: &Options,
    paths: &Paths,
    peers: &[Peer],
    mut scenarios: Vec<Scenario>,
    mut skipped: Vec<(Scenario, String)>,
    pin: Option<(usize, usize)>,
) -> Result<(), String> {
    // CPU-capped scenarios need a cgroup this process may make; if one
    // cannot be (not root, read-only, no cpu controller) they are skipped
    // with a note, never a failure.
    if let Some(percent) = scenarios.iter().find_map(|s| s.server_cpu_percent) {
        if let Err(e) = CpuCap::create(percent) {
            scenarios.retain(|s| {
                if s.server_cpu_percent.is_none() {
                    return true;
                }
                eprintln!("load: skipping {}: cannot cap server CPU ({e})", s.name);
                skipped.push((s.clone(), format!("cannot cap server CPU ({e})")));
                false
            });
        }
    }
    let machine = machine();
    // Resident memory barely moves between rounds; in a quick run one
    // round of the idle scenario is enough.
    let rounds_of = |s: &Scenario| match s.workload {
        Workload::Idle { .. } if o.quick => 1,
        _ => o.rounds,
    };
    // A scenario runs against its own protocol's peers only.
    let peers_of = |s: &Scenario| -> Vec<&Peer> {
        peers.iter().filter(|p| p.protocol == s.protocol).collect()
    };
    let planned: usize = scenarios
        .iter()
        .map(|s| peers_of(s).len() * rounds_of(s))
        .sum();
    eprintln!(
        "load: {} scenarios, {planned} runs (each against its protocol's peers, {} rounds), {}s + {}s warm-up; {}",
        scenarios.len(),
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
            let rate = fixed_rate(&runs, &scenarios, peers, conns, size) * fraction;
            eprintln!("load: {}: {rate:.0} msg/s", scenario.name);
            rates.insert(scenario.name.clone(), rate);
        }
        let mine = peers_of(scenario);
        for round in 0..rounds_of(scenario) {
            // Interleave: each round starts with a different server, so
            // drift in the machine's load spreads over all of them.
            for i in 0..mine.len() {
                let peer = mine[(i + round) % mine.len()];
                let m = run_one(o, paths, peer, scenario, &pin, rates.get(&scenario.name));
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
        peers,
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
        .filter(|p| p.is_project || p.protocol == Protocol::Loops)
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
            .server_cpu_percent
            .map(CpuCap::create)
            .transpose()
            .map_err(|e| format!("cannot cap server CPU: {e}"))?;
        // The many-loops rows place server and client by loop count.
        let placement = match peer.launch {
            Launch::Loops { loops, .. } => Placement::for_loops(loops),
            _ => Placement::single(*pin),
        };
        let server = start_server(paths, peer, placement.server.as_deref())?;
        if let Some(cap) = &cap {
            for pid in server.pids() {
                cap.confine(pid)
                    .map_err(|e| format!("cannot cap server CPU: {e}"))?;
            }
        }
        let m = run_load(
            o,
            paths,
            scenario,
            &server.pids(),
            &server.addr,
            &placement,
            rate.copied(),
        );
        let said = server.finish();
        drop(cap);
        let mut m = m?;
        if let Launch::Loops { .. } = peer.launch {
            m.loop_bytes = loop_bytes(&said);
            m.placement = Some(placement);
        }
        Ok(m)
    })();
    result.unwrap_or_else(|e| Measured {
        failure: Some(e),
        ..Measured::default()
    })
}

/// One run's figures on one line, for the progress log on stderr.
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

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// The workspace's root directory: the reactor package, `scripts/`, and
/// (unless `CARGO_TARGET_DIR` says otherwise) the shared `target/`.
fn workspace_root() -> PathBuf {
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest.parent().unwrap_or(manifest).to_path_buf()
}

/// A file of this package (`bench/`), e.g. `c/epoll_echo.c`.
fn bench_file(relative: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(relative)
}

/// The [`Paths`] under the workspace's target directory (`CARGO_TARGET_DIR`,
/// relative to the workspace root if relative, else `target` there; the
/// examples are built from the root, so they land where this looks).
fn locate() -> Result<Paths, String> {
    let root = workspace_root();
    let target = match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if dir.is_relative() {
                root.join(dir)
            } else {
                dir
            }
        }
        None => root.join("target"),
    };
    Ok(Paths {
        examples: target.join("release").join("examples"),
        out: target.join("load"),
        tls_examples: target.join("load").join("tls-bin"),
        tls: None,
    })
}
