//! The external load tools, `wrk` (HTTP) and `redis-benchmark` (RESP):
//! their arguments, and their output parsed into a [`Measured`].
//!
//! Neither marks a measured window the way loadgen does, so both go through
//! [`run_tool`], which takes the tool's whole run as the window.

use std::process::Stdio;
use std::time::Duration;

use crate::peers::find_program;
use crate::procfs::{final_cpu_seconds, servers_cpu_seconds, steal_share, Mark};
use crate::scenarios::{Scenario, Workload};
use crate::servers::{pinned_command, read_stdout_within, Guard};
use crate::stats::Measured;
use crate::{workspace_root, Options};

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
    pids: &[u32],
    cpu: Option<&str>,
    limit: Duration,
) -> Result<ToolRun, String> {
    let start = Mark::now(servers_cpu_seconds(pids).unwrap_or(0.0));
    let program = find_program(tool).unwrap_or_else(|| tool.into());
    let mut child = pinned_command(&program, args, cpu)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cannot start {tool}: {e}"))?;
    // `pinned_command` execs all the way down: this is the tool's own PID.
    let tool_pid = child.id();
    let stdout = child.stdout.take().expect("piped");
    let guard = Guard { child };
    let out = read_stdout_within(stdout, limit, tool)?;
    let end = Mark::now(servers_cpu_seconds(pids).unwrap_or(0.0));
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
///
/// With `tls`, the URL is `https://`: wrk (OpenSSL) does one handshake per
/// connection, at the start, and then keep-alive requests over it.
pub(crate) fn run_wrk(
    o: &Options,
    pids: &[u32],
    addr: &str,
    cpu: Option<&str>,
    conns: usize,
    pipeline: usize,
    tls: bool,
) -> Result<Measured, String> {
    let seconds = (o.duration + o.warmup).ceil().max(1.0) as u64;
    let mut args: Vec<String> = vec!["-t1".into(), format!("-c{conns}"), format!("-d{seconds}s")];
    if pipeline > 1 {
        // Absolute, so the bench works from whatever directory cargo runs
        // it in; the depth is the script's first argument after `--`.
        let script = workspace_root().join("scripts/pipeline.lua");
        args.extend(["-s".into(), script.display().to_string()]);
    }
    let scheme = if tls { "https" } else { "http" };
    args.extend(["--latency".into(), format!("{scheme}://{addr}/")]);
    if pipeline > 1 {
        args.extend(["--".into(), pipeline.to_string()]);
    }
    let limit = Duration::from_secs(seconds + 30);
    let run = run_tool("wrk", &args, pids, cpu, limit)?;
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

/// New TLS connections: `ab -q -c N -t S -n BIG -H 'Connection: close'
/// https://ADDR/`, a request per connection (no `-k`), for `--warmup` +
/// `--duration` seconds. ab sets no session on its connections, so every
/// one is a full handshake (checked with nginx's `$ssl_session_reused`:
/// never `r` under ab; wrk and h2load resume from the second connection
/// on). `Connection: close` makes the server close first, as a server
/// does when a client asks it to; ab's HTTP/1.0 alone would do for nginx.
/// ab has no warm-up, so the whole run is the window, and requests/s is
/// handshakes/s.
pub(crate) fn run_ab(
    o: &Options,
    pids: &[u32],
    addr: &str,
    cpu: Option<&str>,
    conns: usize,
) -> Result<Measured, String> {
    let seconds = (o.duration + o.warmup).ceil().max(1.0) as u64;
    // -t before -n: -t sets -n to 50 000, a later -n lifts that, so the
    // time limit ends the run.
    let args: Vec<String> = vec![
        "-q".into(),
        "-c".into(),
        conns.to_string(),
        "-t".into(),
        seconds.to_string(),
        "-n".into(),
        "100000000".into(),
        "-H".into(),
        "Connection: close".into(),
        format!("https://{addr}/"),
    ];
    let limit = Duration::from_secs(seconds + 30);
    let run = run_tool("ab", &args, pids, cpu, limit)?;
    let out = &run.out;
    // "Complete requests:      3000", "Failed requests:        0",
    // "Non-2xx responses:      5", "Requests per second:    945.90 [#/sec]
    // (mean)", and after "Percentage of the requests served within a
    // certain time (ms)": "  50%      9" ... " 100%     40 (longest request)".
    let field = |name: &str| {
        out.lines()
            .find_map(|l| l.trim().strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rate = field("Requests per second:")
        .ok_or_else(|| format!("ab printed no Requests per second: {out}"))?;
    let complete = field("Complete requests:").unwrap_or(0.0);
    let errors = (field("Failed requests:").unwrap_or(0.0)
        + field("Non-2xx responses:").unwrap_or(0.0)) as u64;
    let ms = |p: &str| field(p).map_or(0.0, |v| v * 1e3);
    let mut m = Measured {
        msgs_per_sec: rate,
        latency_us: [ms("50%"), ms("90%"), ms("99%"), 0.0, ms("100%")],
        server_cpu_s: run.server_cpu_s,
        window_s: run.window_s,
        client_cpu_s: run.client_cpu_s,
        steal: run.steal,
        errors,
        established: conns as u64,
        requested: conns as u64,
        ..Measured::default()
    };
    if complete > 0.0 {
        m.server_us_per_msg = run.server_cpu_s * 1e6 / complete;
    }
    if errors > 0 {
        m.failure = Some(format!("{errors} ab errors (failed or non-2xx)"));
    } else if complete == 0.0 {
        m.failure = Some("no request completed".into());
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
/// scenario whose workload is [`Workload::Resp`]. It runs a request count,
/// not a duration, so the count is sized for about `--duration` +
/// `--warmup` seconds at the rate the slower server reaches here: the
/// lesser of what the client can send and what the server does with the
/// CPU it is given (all of one, or the scenario's cap's share).
pub(crate) fn run_redis_benchmark(
    o: &Options,
    pids: &[u32],
    addr: &str,
    cpu: Option<&str>,
    scenario: &Scenario,
) -> Result<Measured, String> {
    let Workload::Resp {
        test,
        conns,
        pipeline,
    } = scenario.workload
    else {
        return Err(format!("not a RESP workload: {:?}", scenario.workload));
    };
    let server_cpu_percent = scenario.server_cpu_percent;
    let (host, port) = addr.rsplit_once(':').ok_or("bad address")?;
    // Measured on two vCPUs, req/s: (the client's most, the slower
    // server's per CPU-second). At depth 1 redis-benchmark tops out at
    // 120-140k with neither server saturated, and the servers spend 5-6.4
    // µs per request (160-200k per CPU-second), so uncapped runs are
    // client-bound and capped ones server-bound: at 50% they do 80-100k,
    // 70% of uncapped, not half. Sizing from the low ends makes a run
    // about --duration + --warmup (a server that is faster finishes a bit
    // sooner). Pipelined they do 1.4-1.9M, so runs are sized at 1.4M: a
    // machine ten times slower (--quick runs these in CI) still finishes
    // in a quarter of the 60 s the time limit allows beyond the run.
    let (client_max, server_per_cpu) = if pipeline > 1 {
        (1_400_000.0, 1_400_000.0)
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
    let run = run_tool("redis-benchmark", &args, pids, cpu, limit)?;
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
