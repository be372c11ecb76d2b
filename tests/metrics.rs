//! The examples' `--metrics` endpoint (examples/support/metrics.rs): what a
//! scrape returns after known traffic, that `promtool check metrics` accepts
//! it, that a real Prometheus scrapes it, and that the alerting rules of
//! docs/operations.md load.

mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::tools::have;
use common::ChildServer;

/// The alerting rules docs/operations.md shows.
const RULES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/docs/prometheus/rules.yml");

/// Starts example `name` with `--metrics 127.0.0.1:0` and returns it with
/// the metrics address it printed ("metrics on ADDR", after the
/// "listening on" line).
fn spawn_with_metrics(name: &str, extra: &[&str]) -> (ChildServer, SocketAddr) {
    let mut args = vec!["--metrics", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    let server = common::spawn_on_loopback(name, &args);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server
            .stderr
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("{name} printed no 'metrics on' line"));
        if let Some(addr) = line.strip_prefix("metrics on ") {
            return (server, addr.trim().parse().expect("metrics address"));
        }
    }
}

/// Sends `request` on a new connection and reads until the server closes
/// (every answer says `Connection: close`); returns head and body.
fn http(addr: SocketAddr, request: &[u8]) -> (String, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    stream
        .read_to_end(&mut response)
        .expect("a complete answer");
    let text = String::from_utf8(response).expect("UTF-8");
    let (head, body) = text.split_once("\r\n\r\n").expect("a head");
    (head.to_owned(), body.to_owned())
}

/// `GET /metrics`: the exposition's text (status checked).
fn scrape(addr: SocketAddr) -> String {
    let (head, body) = http(addr, b"GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    assert!(
        head.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8"),
        "{head}"
    );
    body
}

/// The samples of an exposition: series (name and labels as written) to value.
fn samples(text: &str) -> HashMap<String, f64> {
    text.lines()
        .filter(|line| !line.starts_with('#') && !line.is_empty())
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("series and value");
            (series.to_owned(), value.parse().expect("a number"))
        })
        .collect()
}

/// Scrapes until `check` holds on the samples (at most 10 s); returns them.
fn scrape_until(
    addr: SocketAddr,
    what: &str,
    check: impl Fn(&HashMap<String, f64>) -> bool,
) -> HashMap<String, f64> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let samples = samples(&scrape(addr));
        if check(&samples) {
            return samples;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape showed {what}: {samples:?}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A histogram's buckets are cumulative (never decreasing) and its `+Inf`
/// bucket is its count.
fn check_histogram(samples: &HashMap<String, f64>, name: &str) {
    let mut buckets: Vec<(f64, f64)> = samples
        .iter()
        .filter_map(|(series, &count)| {
            let le = series.strip_prefix(&format!("{name}_bucket{{le=\""))?;
            let le = le.strip_suffix("\"}")?;
            Some((
                if le == "+Inf" {
                    f64::INFINITY
                } else {
                    le.parse().unwrap()
                },
                count,
            ))
        })
        .collect();
    buckets.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert_eq!(
        buckets.len(),
        reactor::DURATION_BUCKETS_NS.len() + 1,
        "{name}"
    );
    assert!(
        buckets.windows(2).all(|w| w[0].1 <= w[1].1),
        "{name}: {buckets:?}"
    );
    let (last_bound, last) = *buckets.last().unwrap();
    assert!(last_bound.is_infinite(), "{name} has no +Inf bucket");
    assert_eq!(Some(&last), samples.get(&format!("{name}_count")), "{name}");
    assert!(samples.contains_key(&format!("{name}_sum")), "{name}");
}

/// Runs `promtool check metrics` on `text`; fails with what it said.
fn promtool_check_metrics(text: &str) {
    let mut promtool = Command::new("timeout")
        .args(["20", "promtool", "check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success() && output.stdout.is_empty() && output.stderr.is_empty(),
        "promtool check metrics: {}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Echoes `size` bytes on each of `clients` connections, then closes them.
fn echo_traffic(addr: SocketAddr, clients: usize, size: usize) {
    for _ in 0..clients {
        let mut stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let data = vec![b'x'; size];
        stream.write_all(&data).unwrap();
        let mut back = vec![0; size];
        stream.read_exact(&mut back).unwrap();
        assert_eq!(back, data);
    }
}

#[test]
fn echo_server_exposes_its_counters_gauges_and_histograms() {
    let (mut server, metrics) = spawn_with_metrics("echo_server", &[]);
    echo_traffic(server.addr, 5, 1000);
    let s = scrape_until(metrics, "five peer closes", |s| {
        s.get("reactor_closed_total{reason=\"peer_closed\"}") == Some(&5.0)
    });
    // Scrapes are not the reactor's connections: only the five clients count.
    assert_eq!(s["reactor_accepted_total"], 5.0);
    assert_eq!(s["reactor_connections"], 0.0);
    assert_eq!(s["reactor_bytes_read_total"], 5000.0);
    assert_eq!(s["reactor_bytes_written_total"], 5000.0);
    assert!(s["reactor_loop_busy_seconds_total"] > 0.0);
    assert!(s["reactor_loop_wait_seconds_total"] > 0.0);
    assert!(s["reactor_turns_total"] > 0.0);
    assert_eq!(s["reactor_closed_total{reason=\"limit_exceeded\"}"], 0.0);
    let reasons = s
        .keys()
        .filter(|k| k.starts_with("reactor_closed_total{"))
        .count();
    assert_eq!(reasons, reactor::CloseReason::COUNT);
    check_histogram(&s, "reactor_turn_duration_seconds");
    check_histogram(&s, "reactor_timer_lag_seconds");
    assert!(s["reactor_turn_duration_seconds_count"] > 0.0);

    // Another client: the counters move on.
    echo_traffic(server.addr, 1, 10);
    let later = scrape_until(metrics, "a sixth client", |s| {
        s["reactor_accepted_total"] == 6.0
    });
    assert!(later["reactor_bytes_written_total"] >= 5010.0);
    assert!(later["reactor_turns_total"] > s["reactor_turns_total"]);

    if have("promtool") {
        promtool_check_metrics(&scrape(metrics));
    }
    let report = server.stop_with_report();
    assert!(report.contains("6 accepted"), "{report}");
}

#[test]
fn with_threads_loop_0_serves_every_loop_labelled_by_loop() {
    let (server, metrics) = spawn_with_metrics("echo_server", &["--threads", "2"]);
    echo_traffic(server.addr, 20, 100);
    // Loop 1's figures are its snapshot, at most one turn old: wait for them.
    let s = scrape_until(metrics, "twenty peer closes over both loops", |s| {
        let closed = |i: usize| {
            s.get(&format!(
                "reactor_closed_total{{loop=\"{i}\",reason=\"peer_closed\"}}"
            ))
            .copied()
        };
        closed(0).unwrap_or(0.0) + closed(1).unwrap_or(0.0) == 20.0
    });
    let accepted = |i: usize| s[&format!("reactor_accepted_total{{loop=\"{i}\"}}")];
    assert_eq!(accepted(0) + accepted(1), 20.0, "{s:?}");
    assert_eq!(
        s[r#"reactor_bytes_read_total{loop="0"}"#] + s[r#"reactor_bytes_read_total{loop="1"}"#],
        2000.0
    );
    // Every series carries the label, the histograms' too; no unlabelled one.
    for series in s.keys() {
        assert!(
            series.contains(r#"{loop="0""#) || series.contains(r#"{loop="1""#),
            "{series} has no loop label"
        );
    }
    assert!(s.contains_key(r#"reactor_turn_duration_seconds_count{loop="1"}"#));
    assert!(s.contains_key(r#"reactor_timer_lag_seconds_bucket{loop="0",le="+Inf"}"#));
    let reasons = s
        .keys()
        .filter(|k| k.starts_with("reactor_closed_total{"))
        .count();
    assert_eq!(reasons, 2 * reactor::CloseReason::COUNT);
    if have("promtool") {
        promtool_check_metrics(&scrape(metrics));
    }
}

#[test]
fn the_endpoint_answers_only_get_metrics_and_bounds_the_head() {
    let (_server, metrics) = spawn_with_metrics("echo_server", &[]);
    let (head, _) = http(metrics, b"GET / HTTP/1.1\r\n\r\n");
    assert!(head.starts_with("HTTP/1.1 404 "), "{head}");
    let (head, _) = http(
        metrics,
        b"POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 405 "), "{head}");
    let (head, body) = http(metrics, b"HEAD /metrics HTTP/1.1\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 ") && body.is_empty(),
        "{head}"
    );
    let (head, body) = http(metrics, b"GET /metrics?x=1 HTTP/1.0\r\n\r\n");
    assert!(
        head.starts_with("HTTP/1.1 200 ") && body.contains("reactor_accepted_total"),
        "{head}"
    );
    let mut huge = b"GET /metrics HTTP/1.1\r\nX-Filler: ".to_vec();
    huge.resize(9 * 1024, b'a');
    huge.extend_from_slice(b"\r\n\r\n");
    let (head, _) = http(metrics, &huge);
    assert!(head.starts_with("HTTP/1.1 431 "), "{head}");
    // A scraper that connects and never asks: more of them than the
    // endpoint holds push the oldest out, and a real scrape still works.
    let idle: Vec<TcpStream> = (0..20)
        .map(|_| TcpStream::connect(metrics).unwrap())
        .collect();
    assert!(scrape(metrics).contains("reactor_connections 0"));
    drop(idle);
}

#[test]
fn resp_server_serves_metrics() {
    let (_server, metrics) = spawn_with_metrics("resp_server", &[]);
    let mut client = TcpStream::connect(_server.addr).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    client.write_all(b"*1\r\n$4\r\nPING\r\n").unwrap();
    let mut pong = [0u8; 7];
    client.read_exact(&mut pong).unwrap();
    assert_eq!(&pong, b"+PONG\r\n");
    let text = scrape(metrics);
    let s = samples(&text);
    assert_eq!(s["reactor_accepted_total"], 1.0);
    assert_eq!(s["reactor_connections"], 1.0);
    if have("promtool") {
        promtool_check_metrics(&text);
    }
}

#[test]
fn http_server_serves_metrics() {
    let (server, metrics) = spawn_with_metrics("http_server", &[]);
    let (head, _) = http(
        server.addr,
        b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
    );
    assert!(head.starts_with("HTTP/1.1 200 "), "{head}");
    let text = scrape(metrics);
    let s = samples(&text);
    assert_eq!(s["reactor_accepted_total"], 1.0);
    assert!(s["reactor_bytes_written_total"] > 0.0);
    if have("promtool") {
        promtool_check_metrics(&text);
    }
}

#[test]
fn alerting_rules_pass_promtool() {
    if !have("promtool") {
        return;
    }
    let out = common::tools::run_bounded(20, "promtool", &["check", "rules", RULES]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// A Prometheus server, killed by its own pid and its data removed when dropped.
struct Prometheus {
    /// The process.
    child: Child,
    /// Its HTTP API and graph page.
    addr: SocketAddr,
    /// Its config file and storage.
    dir: PathBuf,
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Prometheus {
    /// Starts Prometheus scraping `target` every second (job "reactor"),
    /// with the alerting rules loaded.
    fn start(target: SocketAddr) -> Prometheus {
        let dir = std::env::temp_dir().join(format!("reactor-prometheus-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let config = dir.join("prometheus.yml");
        std::fs::write(
            &config,
            format!(
                "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
                 rule_files:\n  - {RULES}\n\
                 scrape_configs:\n  - job_name: reactor\n    static_configs:\n      \
                 - targets: ['{target}']\n"
            ),
        )
        .unwrap();
        let addr = free_port();
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("data").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("log")).unwrap())
            .spawn()
            .expect("start prometheus");
        Prometheus { child, addr, dir }
    }

    /// The value of an instant query's only sample, if it has one.
    fn query(&self, query: &str) -> Option<f64> {
        let mut encoded = String::new();
        for b in query.bytes() {
            match b {
                b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'_' => encoded.push(b as char),
                _ => encoded.push_str(&format!("%{b:02X}")),
            }
        }
        let request = format!("GET /api/v1/query?query={encoded} HTTP/1.1\r\nHost: prometheus\r\nConnection: close\r\n\r\n");
        let mut stream = TcpStream::connect(self.addr).ok()?;
        stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
        stream.write_all(request.as_bytes()).ok()?;
        let mut response = String::new();
        stream.read_to_string(&mut response).ok()?;
        // `"value":[1700000000.123,"3"]`: the number after the timestamp.
        let value = response.split("\"value\":[").nth(1)?;
        let value = value.split(",\"").nth(1)?.split('"').next()?;
        value.parse().ok()
    }

    /// Its log, for a failure message.
    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("log")).unwrap_or_default()
    }
}

/// A loopback address nobody listens on now.
fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

/// Waits (at most `limit`) until `query` on `prometheus` returns `want`.
fn wait_for_query(prometheus: &Prometheus, query: &str, want: f64, limit: Duration) {
    let deadline = Instant::now() + limit;
    loop {
        let got = prometheus.query(query);
        if got == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{query} is {got:?}, not {want}, after {limit:?}; prometheus log:\n{}",
            prometheus.log()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[test]
fn a_real_prometheus_scrapes_the_echo_server_every_second() {
    if !have("prometheus") {
        return;
    }
    let (_server, metrics) = spawn_with_metrics("echo_server", &[]);
    echo_traffic(_server.addr, 3, 100);
    let prometheus = Prometheus::start(metrics);
    let limit = Duration::from_secs(20);
    wait_for_query(&prometheus, "up{job=\"reactor\"}", 1.0, limit);
    wait_for_query(&prometheus, "reactor_accepted_total", 3.0, limit);
    wait_for_query(&prometheus, "reactor_bytes_written_total", 300.0, limit);
    // The docs' queries evaluate (a rate needs two scrapes: one second apart).
    wait_for_query(
        &prometheus,
        "count(rate(reactor_loop_busy_seconds_total[1m]) >= 0)",
        1.0,
        limit,
    );
    wait_for_query(
        &prometheus,
        "count(histogram_quantile(0.99, rate(reactor_turn_duration_seconds_bucket[1m])) >= 0)",
        1.0,
        limit,
    );
    // The rules loaded and no alert fires on a quiet server.
    wait_for_query(
        &prometheus,
        "count(ALERTS{alertstate=\"firing\"}) or vector(0)",
        0.0,
        limit,
    );
}
