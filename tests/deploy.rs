//! `http_server` as a load balancer sees it: `/healthz` and `/ip` (plain,
//! behind a PROXY header, through curl's `--haproxy-protocol`), the drain a
//! SIGTERM starts with `--drain-delay`, a `--reuse-port` takeover that
//! loses no connection, and a listening socket handed over by systemd's
//! socket activation. HAProxy in front of two instances is in
//! tests/deploy_haproxy.rs.
mod common;

use std::io::{BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::deploy::{free_addr, get, get_with, http_server_on, socket_activated_http_server};
use common::http::{assert_eof, exchange, read_response, server};
use common::tools::{have, run_bounded};
use common::{wait_until, ChildServer};

/// A keep-alive request on `reader`'s connection; returns the response.
fn again(reader: &mut BufReader<TcpStream>, path: &str) -> common::http::Response {
    let request = format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n");
    reader.get_mut().write_all(request.as_bytes()).unwrap();
    read_response(reader, false)
}

#[test]
fn healthz_and_ip() {
    let server = server(&[]);
    let health = get(server.addr, "/healthz");
    assert_eq!((health.status, &health.body[..]), (200, &b"ok\n"[..]));
    // /ip names this connection's own end.
    let (ip, reader) = exchange(&server, b"GET /ip HTTP/1.1\r\nHost: test\r\n\r\n");
    let me = reader.get_ref().local_addr().unwrap();
    assert_eq!(ip.status, 200);
    assert_eq!(String::from_utf8(ip.body).unwrap(), format!("{me}\n"));
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"HEAD /healthz HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_response(&mut BufReader::new(stream), true);
    assert_eq!(
        (head.status, head.header("content-length")),
        (200, Some("3"))
    );
    let (post, _) = exchange(&server, b"POST /ip HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(post.status, 405);
}

#[test]
fn ip_behind_proxy_protocol() {
    let server = server(&["--proxy-protocol"]);
    let v1 = b"PROXY TCP4 203.0.113.7 127.0.0.1 4711 80\r\n";
    let ip = get_with(server.addr, v1, "/ip").unwrap();
    assert_eq!(String::from_utf8(ip.body).unwrap(), "203.0.113.7:4711\n");
    // Without the header the connection is refused service.
    assert!(get_with(server.addr, b"", "/ip").is_err());
    if !have("curl") {
        return;
    }
    // curl sends a v1 header naming its own end: /ip must say the same.
    let url = format!("http://{}/ip", server.addr);
    let out = run_bounded(
        10,
        "curl",
        &[
            "-sS",
            "--haproxy-protocol",
            "-w",
            "port=%{local_port}",
            &url,
        ],
    );
    let (body, port) = out.split_once("port=").expect("curl output");
    assert_eq!(body, format!("127.0.0.1:{}\n", port.trim()));
}

#[test]
fn sigterm_with_drain_delay_fails_health_then_closes() {
    let mut server = server(&["--drain-delay", "1"]);
    // A keep-alive connection that goes on asking, one that stays idle.
    let (first, mut busy) = exchange(&server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(first.header("connection"), None);
    let (_, mut idle) = exchange(&server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    let signalled = Instant::now();
    server.signal("TERM");
    wait_until("/healthz says 503", Duration::from_millis(500), || {
        get(server.addr, "/healthz").status == 503
    });
    let health = get(server.addr, "/healthz");
    assert_eq!(&health.body[..], b"draining\n");
    // During the delay: still accepting and serving, and every response
    // says `Connection: close` and closes, so keep-alive clients move.
    let fresh = get(server.addr, "/");
    assert_eq!(fresh.status, 200);
    let during = again(&mut busy, "/");
    assert_eq!(during.status, 200);
    assert_eq!(during.header("connection"), Some("close"));
    assert_eof(&mut busy);
    assert!(
        signalled.elapsed() < Duration::from_millis(900),
        "the checks above took the whole delay"
    );
    // Then the listener closes, the idle connection is closed, and the
    // process exits 0.
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(signalled.elapsed() >= Duration::from_millis(950));
    assert!(TcpStream::connect(server.addr).is_err());
    assert_eof(&mut idle);
}

#[test]
fn second_signal_ends_the_drain_delay() {
    let mut server = server(&["--drain-delay", "60"]);
    server.signal("TERM");
    wait_until("/healthz says 503", Duration::from_secs(2), || {
        get(server.addr, "/healthz").status == 503
    });
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

/// Runs GETs one connection each on `addr` until `stop`; returns (successes,
/// failures with their errors).
fn request_loop(addr: SocketAddr, stop: Arc<AtomicBool>) -> (u64, Vec<String>) {
    let mut ok = 0;
    let mut failed = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !stop.load(Ordering::Relaxed) && Instant::now() < deadline {
        match get_with(addr, b"", "/") {
            Ok(r) if r.status == 200 => ok += 1,
            Ok(r) => failed.push(format!("status {}", r.status)),
            Err(e) => failed.push(e.to_string()),
        }
    }
    (ok, failed)
}

/// Whether Linux moves the connections queued on a closing `SO_REUSEPORT`
/// listener to another listener of the group (`net.ipv4.tcp_migrate_req`,
/// 5.14 on). Without it, those the old instance had not yet accepted when
/// its listener closed are reset, whatever the server does: the test would
/// fail now and then, so it needs the setting (.ci/run sets it; the
/// deployment needs it too, docs/deploy.md).
fn migrates_queued_connections() -> bool {
    let on = std::fs::read_to_string("/proc/sys/net/ipv4/tcp_migrate_req")
        .is_ok_and(|v| v.trim() == "1");
    if !on {
        assert!(
            std::env::var_os("CI").is_none(),
            "net.ipv4.tcp_migrate_req is not 1 (.ci/run sets it)"
        );
        let _ = writeln!(
            std::io::stderr().lock(),
            "SKIPPED: the --reuse-port takeover needs `sysctl -w net.ipv4.tcp_migrate_req=1`"
        );
    }
    on
}

#[test]
fn reuse_port_takeover_loses_no_connection() {
    if !migrates_queued_connections() {
        return;
    }
    let mut old = server(&["--reuse-port"]);
    let stop = Arc::new(AtomicBool::new(false));
    let clients: Vec<_> = (0..2)
        .map(|_| {
            let stop = Arc::clone(&stop);
            let addr = old.addr;
            std::thread::spawn(move || request_loop(addr, stop))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    // The new instance binds the same address beside the old one.
    let mut new = http_server_on(old.addr, &["--reuse-port"]);
    std::thread::sleep(Duration::from_millis(300));
    let report = old.stop_with_report();
    std::thread::sleep(Duration::from_millis(300));
    stop.store(true, Ordering::Relaxed);
    let mut ok = 0;
    let mut failed = Vec::new();
    for client in clients {
        let (n, errors) = common::join_within(client, Duration::from_secs(40));
        ok += n;
        failed.extend(errors);
    }
    let new_report = new.stop_with_report();
    assert!(
        failed.is_empty(),
        "{} failed of {}: {failed:?}",
        failed.len(),
        ok + failed.len() as u64
    );
    // Both served: the old one before it left, the new one after.
    let accepted = |r: &str| -> u64 {
        r.split(" accepted")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    assert!(
        accepted(&report) > 0 && accepted(&new_report) > 0,
        "{report} / {new_report}"
    );
}

#[test]
fn socket_activation_serves_on_the_handed_over_socket() {
    if !have("systemd-socket-activate") {
        return;
    }
    let addr = free_addr();
    let (child, lines) = socket_activated_http_server(addr);
    // The activator execs the server at the first connection, which waits
    // in the socket's queue meanwhile.
    let mut bound = false;
    let mut first = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut server = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines.recv_timeout(left).expect("a 'listening on' line");
        if !bound && line.contains("Listening on") {
            bound = true;
            first = Some(std::thread::spawn(move || get(addr, "/ip")));
        }
        if line.contains("http_server listening on") {
            assert!(line.contains(&format!("listening on {addr} ")), "{line}");
            assert!(line.contains("(socket activation)"), "{line}");
            break ChildServer {
                child,
                addr,
                stderr: lines,
            };
        }
    };
    let first = common::join_within(first.expect("activator bound"), Duration::from_secs(10));
    assert_eq!(first.status, 200);
    assert_eq!(get(addr, "/healthz").status, 200);
    server.stop_with_report();
}
