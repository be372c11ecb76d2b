//! A run's load: picks the tool for the scenario's protocol, and drives the
//! echo protocol's own tool, `examples/loadgen/`.
//!
//! loadgen marks its measured window on stderr ("measuring", "measured"),
//! so the server's CPU and the host's steal are read at exactly those
//! moments, not across connection set-up and warm-up.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::peers::Protocol;
use crate::procfs::{open_fds, rss_bytes, servers_cpu_seconds, steal_share, Mark};
use crate::scenarios::{Scenario, Workload};
use crate::servers::{pinned_command, read_stdout_within, Guard, Placement};
use crate::stats::Measured;
use crate::tools::{run_ab, run_redis_benchmark, run_wrk};
use crate::{Options, Paths};

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

/// Runs the protocol's load tool against a started server: HTTP and RESP
/// workloads go to `wrk` and `redis-benchmark` (`tools`), echo ones to
/// loadgen, here. The server's CPU is that of every process in `pids`
/// with their children (a TLS terminator and the echo server behind it).
/// The client runs where `placement` says (loadgen with its
/// `client_threads`).
pub(crate) fn run_load(
    o: &Options,
    paths: &Paths,
    scenario: &Scenario,
    pids: &[u32],
    addr: &str,
    placement: &Placement,
    rate: Option<f64>,
) -> Result<Measured, String> {
    let tls = scenario.protocol.is_tls();
    let cpu = placement.client.as_deref();
    match scenario.workload {
        Workload::Http { conns, pipeline } => {
            return run_wrk(o, pids, addr, cpu, conns, pipeline, tls)
        }
        Workload::Handshakes { conns } => return run_ab(o, pids, addr, cpu, conns),
        Workload::Resp { .. } => return run_redis_benchmark(o, pids, addr, cpu, scenario),
        _ => {}
    }
    let pid = pids[0];
    let (conns, size, depth, idle) = match scenario.workload {
        Workload::Throughput { conns, size, depth } => (conns, size, depth, false),
        Workload::FixedRate {
            conns, size, depth, ..
        } => (conns, size, depth, false),
        Workload::Idle { conns } => (conns, 64, 0, true),
        Workload::Http { .. } | Workload::Handshakes { .. } | Workload::Resp { .. } => {
            unreachable!("handled above")
        }
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
    if placement.client_threads > 1 {
        args.push("--threads".into());
        args.push(placement.client_threads.to_string());
    }
    if let Some(rate) = rate {
        args.push("--rate".into());
        args.push(format!("{rate:.0}"));
    }
    // TLS echo: loadgen built with the feature, not verifying the run's
    // self-signed certificate (its verification costs the client only).
    let loadgen = if scenario.protocol == Protocol::TlsEcho {
        args.extend(["--tls".into(), "--tls-insecure".into()]);
        paths.tls_examples.join("loadgen")
    } else {
        paths.examples.join("loadgen")
    };
    let server_pids = pids.to_vec();
    let rss_before = rss_bytes(pid);
    let mut child = pinned_command(&loadgen, &args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("cannot start loadgen: {e}"))?;
    let stdout = child.stdout.take().expect("piped");
    let stderr = child.stderr.take().expect("piped");
    let guard = Guard { child };
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
                let cpu = servers_cpu_seconds(&server_pids).unwrap_or(0.0);
                marks.lock().unwrap().start = Some(Mark::now(cpu));
            } else if line == "loadgen: measured" {
                let cpu = servers_cpu_seconds(&server_pids).unwrap_or(0.0);
                marks.lock().unwrap().end = Some(Mark::now(cpu));
            } else {
                log_writer.lock().unwrap().push(line);
            }
        }
    });
    // Every run is bounded: connects, warm-up, window, drain, and slack.
    let limit = Duration::from_secs_f64(o.warmup + o.duration + 30.0);
    let out = read_stdout_within(stdout, limit, "loadgen")?;
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
