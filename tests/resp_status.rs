//! The `resp_server` example reporting on itself as Redis does, read by
//! the tools that read Redis: INFO's sections and counters (by our client
//! and by `redis-cli INFO`), CLIENT LIST / CLIENT INFO lines for several
//! clients, CLIENT SETNAME / KILL, `redis-cli --stat`, and prometheus's
//! redis_exporter scraping the server.
//!
//! External programs are checked for first (`common::tools::have`): a
//! missing one skips its check with a `SKIPPED` line, and fails in CI.
mod common;

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::resp::{bulk, err, simple, spawn, Client, RedisServer, Reply};
use common::tools::have;
use common::wait_until;

/// A bulk reply's text.
fn text(reply: Reply) -> String {
    match reply {
        Reply::Bulk(Some(bytes)) => String::from_utf8(bytes).unwrap(),
        other => panic!("not a bulk string: {other:?}"),
    }
}

/// INFO's text as sections: title to its `field:value` pairs in order.
/// Checks the framing on the way: CRLF lines, a `# Title` opening each
/// section, one empty line between sections.
fn sections(info: &str) -> Vec<(String, Vec<(String, String)>)> {
    assert!(info.ends_with("\r\n"), "{info:?}");
    let mut out: Vec<(String, Vec<(String, String)>)> = Vec::new();
    for (i, block) in info.trim_end_matches("\r\n").split("\r\n\r\n").enumerate() {
        let mut lines = block.split("\r\n");
        let title = lines.next().unwrap();
        let title = title
            .strip_prefix("# ")
            .unwrap_or_else(|| panic!("section {i} opens with {title:?}"));
        let fields = lines
            .map(|l| {
                assert!(!l.contains('\n'), "bare LF in {l:?}");
                let (k, v) = l.split_once(':').unwrap_or_else(|| panic!("{l:?}"));
                (k.to_string(), v.to_string())
            })
            .collect();
        out.push((title.to_string(), fields));
    }
    out
}

/// Every field of an INFO text, by name.
fn fields(info: &str) -> HashMap<String, String> {
    sections(info).into_iter().flat_map(|(_, f)| f).collect()
}

/// A numeric INFO field.
fn num(info: &HashMap<String, String>, field: &str) -> f64 {
    info.get(field)
        .unwrap_or_else(|| panic!("no {field}"))
        .parse()
        .unwrap_or_else(|_| panic!("{field} is not a number"))
}

fn info(c: &mut Client, section: &[&str]) -> HashMap<String, String> {
    let mut args = vec!["INFO"];
    args.extend_from_slice(section);
    fields(&text(c.call(&args)))
}

#[test]
fn info_sections_are_redis_shaped_and_counters_move() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    let all = text(c.call(&["INFO"]));
    let titles: Vec<String> = sections(&all).into_iter().map(|(t, _)| t).collect();
    assert_eq!(
        titles,
        [
            "Server",
            "Clients",
            "Memory",
            "Persistence",
            "Stats",
            "Replication",
            "Cluster",
            "Keyspace"
        ]
    );
    for alias in ["all", "everything", "default"] {
        let again: Vec<String> = sections(&text(c.call(&["INFO", alias])))
            .into_iter()
            .map(|(t, _)| t)
            .collect();
        assert_eq!(again, titles, "INFO {alias}");
    }
    let only: Vec<String> = sections(&text(c.call(&["INFO", "stats", "CLIENTS"])))
        .into_iter()
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        only,
        ["Clients", "Stats"],
        "Redis's order, not the asked one"
    );

    let before = info(&mut c, &[]);
    assert_eq!(before["redis_mode"], "standalone");
    assert_eq!(num(&before, "tcp_port") as u16, server.addr.port());
    assert_eq!(num(&before, "process_id") as u32, server.child.id());
    assert_eq!(num(&before, "connected_clients"), 1.0);
    assert_eq!(num(&before, "blocked_clients"), 0.0);
    assert!(num(&before, "used_memory_rss") > 1e5);
    assert!(
        !before.contains_key("db0"),
        "an empty key space has no line"
    );

    // 3 keys, one with a TTL; 2 hits, 3 misses; one 100 KB value.
    let big = "v".repeat(100_000);
    assert_eq!(c.call(&["SET", "big", &big]), simple("OK"));
    assert_eq!(c.call(&["SET", "k", "1", "EX", "100"]), simple("OK"));
    assert_eq!(c.call(&["SET", "gone", "1", "PX", "1"]), simple("OK"));
    std::thread::sleep(Duration::from_millis(5));
    assert_eq!(c.call(&["GET", "k"]), bulk("1"));
    assert_eq!(c.call(&["GET", "gone"]), Reply::Bulk(None));
    assert_eq!(c.call(&["EXISTS", "big", "nope"]), Reply::Int(1));
    assert_eq!(c.call(&["GET", "nope"]), Reply::Bulk(None));
    assert_eq!(c.call(&["SET", "x", "1"]), simple("OK"));
    let after = info(&mut c, &[]);
    // 8 commands since the INFO before, and this INFO.
    let commands =
        num(&after, "total_commands_processed") - num(&before, "total_commands_processed");
    assert_eq!(commands, 9.0);
    assert_eq!(num(&after, "keyspace_hits"), 2.0);
    assert_eq!(num(&after, "keyspace_misses"), 3.0);
    assert_eq!(num(&after, "expired_keys"), 1.0);
    assert_eq!(after["db0"], "keys=3,expires=1,avg_ttl=0");
    let grown = num(&after, "used_memory") - num(&before, "used_memory");
    assert!(
        (100_000.0..200_000.0).contains(&grown),
        "used_memory grew {grown}"
    );
    assert!(num(&after, "total_net_input_bytes") > num(&before, "total_net_input_bytes") + 1e5);
    assert!(num(&after, "total_net_output_bytes") > num(&before, "total_net_output_bytes"));
    assert_eq!(num(&after, "total_connections_received"), 1.0);

    // A burst of 20,000 pipelined PINGs shows as a rate within ~2 s.
    let mut pings = Vec::new();
    for _ in 0..20_000 {
        pings.extend_from_slice(b"PING\r\n");
    }
    let writer = c.send_in_background(pings);
    for _ in 0..20_000 {
        assert_eq!(c.read(), simple("PONG"));
    }
    common::join_within(writer, Duration::from_secs(10));
    // The next 100 ms sample sees it, as in Redis.
    wait_until(
        "the burst to show as a rate",
        Duration::from_secs(3),
        || {
            let stats = info(&mut c, &["stats"]);
            num(&stats, "instantaneous_ops_per_sec") > 1000.0
                && num(&stats, "instantaneous_input_kbps") > 1.0
        },
    );
    // ...and decays to nothing once the burst is over (16 samples of 100 ms).
    // Polled slowly: each poll is a command too.
    wait_until("the rate to decay", Duration::from_secs(5), || {
        std::thread::sleep(Duration::from_millis(100));
        num(&info(&mut c, &["stats"]), "instantaneous_ops_per_sec") < 50.0
    });

    // redis-cli reads the same text.
    if have("redis-cli") {
        let port = server.addr.port().to_string();
        let out = Command::new("timeout")
            .args(["5", "redis-cli", "-p", &port, "INFO", "keyspace"])
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&out.stdout);
        assert!(out.contains("db0:keys=3,expires=1,avg_ttl=0"), "{out}");
    }
}

/// One CLIENT LIST line's fields, in order.
fn line_fields(line: &str) -> Vec<(String, String)> {
    line.split(' ')
        .map(|f| {
            let (k, v) = f
                .split_once('=')
                .unwrap_or_else(|| panic!("{f:?} in {line:?}"));
            (k.to_string(), v.to_string())
        })
        .collect()
}

/// CLIENT LIST's reply as one map per line.
fn client_list(c: &mut Client, args: &[&str]) -> Vec<HashMap<String, String>> {
    let mut argv = vec!["CLIENT", "LIST"];
    argv.extend_from_slice(args);
    let list = text(c.call(&argv));
    assert!(list.is_empty() || list.ends_with('\n'), "{list:?}");
    list.lines()
        .map(|l| line_fields(l).into_iter().collect())
        .collect()
}

#[test]
fn client_list_and_info_describe_each_client() {
    let server = spawn(&[]);
    let mut a = Client::connect(server.addr);
    let mut b = Client::connect(server.addr);
    let mut c = Client::connect(server.addr);
    assert_eq!(a.call(&["CLIENT", "SETNAME", "alpha"]), simple("OK"));
    assert_eq!(
        a.call(&["CLIENT", "SETNAME", "has space"]),
        err("ERR Client names cannot contain spaces, newlines or special characters.")
    );
    assert_eq!(a.call(&["CLIENT", "GETNAME"]), bulk("alpha"));
    assert_eq!(a.call(&["GET", "x"]), Reply::Bulk(None));
    assert_eq!(b.call(&["CLIENT", "SETNAME", "beta"]), simple("OK"));
    b.send(&["SUBSCRIBE", "news"]);
    b.read();
    // C leaves half a command in its query buffer.
    let partial = b"*2\r\n$3\r\nGET\r\n$5\r\nab";
    c.send_raw(partial);
    let mut d = Client::connect(server.addr);
    std::thread::sleep(Duration::from_millis(1100));

    let rows = client_list(&mut d, &[]);
    assert_eq!(rows.len(), 4, "{rows:?}");
    let by_addr = |s: &Client| {
        let addr = s.stream.local_addr().unwrap().to_string();
        rows.iter()
            .find(|r| r["addr"] == addr)
            .unwrap_or_else(|| panic!("no line for {addr}"))
            .clone()
    };
    let (ra, rb, rc, rd) = (by_addr(&a), by_addr(&b), by_addr(&c), by_addr(&d));
    for r in [&ra, &rb, &rc, &rd] {
        assert_eq!(r["laddr"], server.addr.to_string());
        assert_eq!(r["user"], "default");
        assert!(r["fd"].parse::<i32>().unwrap() > 2);
        assert!(r["age"].parse::<u64>().unwrap() <= 5);
    }
    let ids: Vec<u64> = rows.iter().map(|r| r["id"].parse().unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "by id: {ids:?}");
    assert_eq!((ra["name"].as_str(), ra["cmd"].as_str()), ("alpha", "get"));
    assert_eq!(
        (rb["name"].as_str(), rb["cmd"].as_str()),
        ("beta", "subscribe")
    );
    assert_eq!((rb["flags"].as_str(), rb["sub"].as_str()), ("P", "1"));
    assert_eq!((rc["name"].as_str(), rc["cmd"].as_str()), ("", "NULL"));
    assert_eq!(rd["cmd"], "client|list");
    assert_eq!(ra["flags"], "N");
    assert_eq!(
        rc["qbuf"],
        partial.len().to_string(),
        "the unparsed half command"
    );
    assert_eq!(ra["qbuf"], "0");
    assert!(ra["idle"].parse::<u64>().unwrap() >= 1, "{ra:?}");
    assert_eq!(rd["idle"], "0");
    assert_eq!(rd["argv-mem"], "10", "CLIENT LIST's own arguments");
    assert_eq!(ra["omem"], "0");

    // Filters.
    let pubsub = client_list(&mut d, &["TYPE", "pubsub"]);
    assert_eq!(pubsub.len(), 1);
    assert_eq!(pubsub[0]["name"], "beta");
    assert_eq!(client_list(&mut d, &["TYPE", "normal"]).len(), 3);
    let only_a = client_list(&mut d, &["ID", &ra["id"], "999"]);
    assert_eq!(only_a.len(), 1);
    assert_eq!(only_a[0]["name"], "alpha");
    assert_eq!(
        d.call(&["CLIENT", "LIST", "TYPE", "bogus"]),
        err("ERR Unknown client type 'bogus'")
    );

    // CLIENT INFO is the caller's own line.
    let own = text(a.call(&["CLIENT", "INFO"]));
    assert!(own.ends_with('\n') && own.lines().count() == 1, "{own:?}");
    let own: HashMap<String, String> = line_fields(own.trim_end()).into_iter().collect();
    for field in ["id", "addr", "laddr", "fd", "name"] {
        assert_eq!(own[field], ra[field], "{field}");
    }
    assert_eq!(own["cmd"], "client|info");
    assert_eq!(own["idle"], "0");

    // Fields and their order are Redis 7.0's.
    if have("redis-server") {
        let redis = RedisServer::start();
        let mut r = Client::connect(redis.addr);
        let theirs = text(r.call(&["CLIENT", "INFO"]));
        let names = |l: &str| -> Vec<String> {
            line_fields(l.trim_end())
                .into_iter()
                .map(|(k, _)| k)
                .collect()
        };
        let ours = text(a.call(&["CLIENT", "INFO"]));
        assert_eq!(names(&ours), names(&theirs));
    }

    // A subscriber that does not read: its queued output shows as omem.
    let message = "m".repeat(1 << 20);
    for _ in 0..16 {
        assert_eq!(a.call(&["PUBLISH", "news", &message]), Reply::Int(1));
    }
    let queued = client_list(&mut d, &["TYPE", "pubsub"]);
    let omem: u64 = queued[0]["omem"].parse().unwrap();
    assert!(omem > 1 << 20, "omem {omem}");
    assert!(queued[0]["events"].contains('w'), "{:?}", queued[0]);

    // CLIENT KILL: by id (new form: a count), by address (old form: OK).
    assert_eq!(d.call(&["CLIENT", "KILL", "ID", &rb["id"]]), Reply::Int(1));
    // Closed now, its queued messages dropped: EOF (or a reset) after at
    // most what the kernel had taken.
    let _ = std::io::copy(&mut b.reader, &mut std::io::sink());
    assert_eq!(d.call(&["CLIENT", "KILL", &rc["addr"]]), simple("OK"));
    c.assert_closed();
    assert_eq!(
        d.call(&["CLIENT", "KILL", "127.0.0.1:1"]),
        err("ERR No such client")
    );
    // The caller is skipped unless SKIPME no.
    assert_eq!(d.call(&["CLIENT", "KILL", "ID", &rd["id"]]), Reply::Int(0));
    assert_eq!(client_list(&mut d, &[]).len(), 2);
    assert_eq!(
        d.call(&["CLIENT", "KILL", "ID", &rd["id"], "SKIPME", "no"]),
        Reply::Int(1)
    );
    d.assert_closed();
    drop(d);
    let left = client_list(&mut a, &[]);
    assert_eq!(
        left.len(),
        1,
        "{:?}",
        left.iter()
            .map(|r| (&r["name"], &r["cmd"], &r["flags"], &r["age"]))
            .collect::<Vec<_>>()
    );
}

#[test]
fn redis_cli_stat_reads_the_server() {
    if !have("redis-cli") || !have("stdbuf") {
        return;
    }
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    for i in 0..7 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), simple("OK"));
    }
    // --stat runs until stopped: `timeout` ends it (exit 124), and stdbuf
    // keeps its lines from dying in a full stdout buffer.
    let port = server.addr.port().to_string();
    let out = Command::new("timeout")
        .args([
            "3",
            "stdbuf",
            "-oL",
            "redis-cli",
            "-p",
            &port,
            "--stat",
            "-i",
            "0.5",
        ])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(124), "{stdout}{stderr}");
    assert!(
        !stdout.contains("ERR") && stderr.is_empty(),
        "{stdout}{stderr}"
    );
    let mut lines = stdout.lines();
    lines.next(); // ------- data ------ ...
    let header: Vec<&str> = lines.next().unwrap().split_whitespace().collect();
    assert_eq!(
        &header[..6],
        [
            "keys",
            "mem",
            "clients",
            "blocked",
            "requests",
            "connections"
        ]
    );
    let rows: Vec<Vec<&str>> = lines.map(|l| l.split_whitespace().collect()).collect();
    assert!(rows.len() >= 3, "{stdout}");
    for row in rows {
        assert_eq!(row[0], "7", "keys: {stdout}");
        assert!(row[1].ends_with(['B', 'K', 'M']), "mem: {stdout}");
        assert_eq!(row[2], "2", "clients (ours and redis-cli's): {stdout}");
        assert_eq!(row[3], "0", "blocked: {stdout}");
        assert!(row[4].parse::<u64>().unwrap() >= 7, "requests: {stdout}");
    }
}

/// A child process killed (by its own pid) when dropped.
struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// `GET path` over HTTP/1.0; the body, or `None` if nothing listens.
fn http_get(addr: SocketAddr, path: &str) -> Option<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").ok()?;
    let mut response = String::new();
    s.read_to_string(&mut response).ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let status = head.split(' ').nth(1)?;
    (status == "200").then(|| body.to_string())
}

/// A metric's value in a Prometheus text exposition.
fn metric(body: &str, name: &str) -> f64 {
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("no {name} in the scrape"))
        .parse()
        .unwrap()
}

#[test]
fn prometheus_redis_exporter_scrapes_the_server() {
    const EXPORTER: &str = "prometheus-redis-exporter";
    if !have(EXPORTER) {
        return;
    }
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    for i in 0..5 {
        assert_eq!(c.call(&["SET", &format!("k{i}"), "v"]), simple("OK"));
    }
    assert_eq!(c.call(&["SET", "t", "v", "EX", "100"]), simple("OK"));
    let web = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let log = std::env::temp_dir().join(format!("resp_status_exporter_{}.log", std::process::id()));
    let exporter = Killed(
        Command::new(EXPORTER)
            .arg(format!("--redis.addr=redis://{}", server.addr))
            .arg(format!("--web.listen-address={web}"))
            .arg("--export-client-list")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap(),
    );
    let start = Instant::now();
    let mut body = None;
    wait_until(
        "the exporter to serve /metrics",
        Duration::from_secs(15),
        || {
            body = http_get(web, "/metrics");
            body.is_some()
        },
    );
    let body = body.unwrap();
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    let _ = std::fs::remove_file(&log);
    drop(exporter);
    assert!(
        !log_text.contains("level=error") && !log_text.contains("level=warn"),
        "the exporter complained:\n{log_text}"
    );
    assert_eq!(metric(&body, "redis_up"), 1.0, "{body}");
    assert_eq!(metric(&body, "redis_db_keys{db=\"db0\"}"), 6.0);
    assert_eq!(metric(&body, "redis_db_keys_expiring{db=\"db0\"}"), 1.0);
    // Ours and the exporter's.
    assert_eq!(metric(&body, "redis_connected_clients"), 2.0);
    assert!(metric(&body, "redis_commands_processed_total") >= 6.0);
    assert!(metric(&body, "redis_memory_used_bytes") > 0.0);
    assert!(metric(&body, "redis_memory_max_bytes") == 0.0);
    let uptime = metric(&body, "redis_uptime_in_seconds");
    assert!(uptime <= start.elapsed().as_secs_f64() + 30.0);
    assert!(
        body.contains("name=\"redis_exporter\""),
        "the exporter's own CLIENT LIST line, by its CLIENT SETNAME"
    );
}
