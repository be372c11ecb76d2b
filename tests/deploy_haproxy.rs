//! The deployment kept in deploy/, run for real: HAProxy on the committed
//! deploy/haproxy.cfg (health checks on `/healthz`, `send-proxy-v2`,
//! retries) in front of two `http_server` instances with
//! `--proxy-protocol --drain-delay 1`, under wrk. During the run each
//! instance in turn is drained with SIGTERM (it must exit 0) and started
//! again on its port, the next one only once HAProxy has the restarted one
//! back up: wrk must see no socket error and no non-2xx response.
mod common;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use common::deploy::{free_addr, get, http_server_on, parse_wrk, Haproxy};
use common::tools::have;
use common::ChildServer;

/// An instance as the deployment runs it.
fn instance(addr: SocketAddr) -> ChildServer {
    http_server_on(addr, &["--proxy-protocol", "--drain-delay", "1"])
}

/// SIGTERMs `old` (which must drain and exit 0), starts a new instance on
/// its address, and waits until HAProxy has server `name` up again.
fn restart(old: &mut ChildServer, name: &str, haproxy: &Haproxy) -> ChildServer {
    old.signal("TERM");
    haproxy.wait_status(name, "DOWN");
    // The drain delay (1 s) and the requests in flight, then exit 0.
    assert_eq!(old.wait_exit(Duration::from_secs(8)), Some(0));
    let new = instance(old.addr);
    haproxy.wait_status(name, "UP");
    new
}

#[test]
fn rolling_restart_behind_haproxy_drops_nothing() {
    if !have("haproxy") || !have("wrk") {
        return;
    }
    let (a_addr, b_addr) = (free_addr(), free_addr());
    let mut a = instance(a_addr);
    let mut b = instance(b_addr);
    let haproxy = Haproxy::start(a_addr, b_addr);
    haproxy.wait_status("a", "UP");
    haproxy.wait_status("b", "UP");
    // The balancer passes the client's address on (PROXY v2): ours.
    let ip = get(haproxy.front, "/ip");
    assert!(
        String::from_utf8_lossy(&ip.body).starts_with("127.0.0.1:"),
        "{ip:?}"
    );

    let url = format!("http://{}/", haproxy.front);
    let wrk = std::thread::spawn(move || {
        Command::new("timeout")
            .args(["30", "wrk", "-t2", "-c10", "-d8s", &url])
            .output()
            .expect("run wrk")
    });
    std::thread::sleep(Duration::from_millis(500));
    let mut a2 = restart(&mut a, "a", &haproxy);
    let mut b2 = restart(&mut b, "b", &haproxy);
    let output = common::join_within(wrk, Duration::from_secs(40));
    let text = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(output.status.success(), "wrk failed: {text}");
    let summary = parse_wrk(&text);
    assert_eq!(
        (summary.socket_errors, summary.non_2xx),
        (0, 0),
        "wrk saw failures:\n{text}\nhaproxy: {:?}",
        haproxy.log()
    );
    assert!(summary.requests > 1000, "{text}");
    // The restarted instances served (HAProxy sent them traffic again).
    let served = |r: &str| -> u64 {
        r.split(" accepted")
            .next()
            .and_then(|s| s.rsplit(' ').next())
            .unwrap()
            .parse()
            .unwrap()
    };
    drop(haproxy);
    assert!(served(&a2.stop_with_report()) > 0);
    assert!(served(&b2.stop_with_report()) > 0);
}
