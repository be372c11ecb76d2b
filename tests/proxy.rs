//! End-to-end tests of the `proxy` example, bytes through it, run as a
//! child process between real clients and real backends (std sockets
//! driven by the test, or the `echo_server` example):
//!
//! * 100 MB each way past a slow reader, every byte checked against a PRNG
//!   stream and the proxy's peak memory (`VmHWM`) under 16 MB; the same
//!   after a half-close, and while the backend is still connecting;
//! * 500 clients at once, and OpenBSD netcat, through it to `echo_server`.
//!
//! How a pair ends (half-close, resets, failed connects, SIGTERM) is in
//! tests/proxy_ends.rs; the helpers both use are in tests/common/proxy.rs.
//!
//! Every wait is bounded: sockets have read/write timeouts, accepts and
//! joins a limit. The proxy's memory is read from /proc, never its speed.
mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, TcpStream};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{accept_within, backend, full_listener, pair, proxy, stop, PIECE};
use common::tools::{have, run_bounded};
use common::{read_to_eof, ChildServer, Prng};

/// Bytes relayed each way in the large transfers.
const TOTAL: u64 = 100 << 20;

/// The proxy's peak resident memory must stay under this, in KiB.
const PEAK_LIMIT_KIB: u64 = 16 * 1024;

/// Writes `total` bytes of the PRNG stream `seed`, then a FIN, counting
/// what was written in `sent` (so a test can see the writer stall).
fn send_stream(mut stream: TcpStream, seed: u64, total: u64, sent: Arc<AtomicU64>) {
    let mut prng = Prng(seed);
    while sent.load(Ordering::Relaxed) < total {
        stream.write_all(&prng.bytes(PIECE)).expect("send");
        sent.fetch_add(PIECE as u64, Ordering::Relaxed);
    }
    stream.shutdown(Shutdown::Write).unwrap();
}

/// Reads until EOF, checking every byte against the PRNG stream `seed`;
/// with `pause`, reads at most `PIECE / 2` bytes at a time and sleeps
/// `pause` after each read (a slow peer). Returns the bytes read.
fn receive_stream(stream: &mut TcpStream, seed: u64, pause: Option<Duration>) -> u64 {
    let mut prng = Prng(seed);
    let mut expected = Vec::new();
    let mut buf = vec![0; if pause.is_some() { PIECE / 2 } else { PIECE }];
    let mut received = 0u64;
    loop {
        let n = stream.read(&mut buf).expect("receive");
        if n == 0 {
            return received;
        }
        while expected.len() < n {
            expected.extend_from_slice(&prng.bytes(PIECE));
        }
        assert!(
            buf[..n] == expected[..n],
            "stream {seed}: wrong bytes within {n} bytes after offset {received}"
        );
        expected.drain(..n);
        received += n as u64;
        if let Some(pause) = pause {
            thread::sleep(pause);
        }
    }
}

/// Sends `total` bytes from `from` to a slow reader at `to`, checks them
/// all, and returns the proxy's peak memory in KiB.
fn relay_to_slow_reader(
    proxy: &ChildServer,
    total: u64,
    from: TcpStream,
    mut to: TcpStream,
) -> u64 {
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let sent = Arc::clone(&sent);
        thread::spawn(move || send_stream(from, 7, total, sent))
    };
    let received = receive_stream(&mut to, 7, Some(Duration::from_millis(1)));
    assert_eq!(received, total, "the FIN came after {received} bytes");
    common::join_within(writer, Duration::from_secs(10));
    common::peak_rss_kib(proxy.child.id())
}

#[test]
fn a_hundred_megabytes_to_a_slow_backend_arrive_intact_in_bounded_memory() {
    let start = Instant::now();
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, server) = pair(&proxy, &listener);
    let peak = relay_to_slow_reader(
        &proxy,
        TOTAL,
        client.try_clone().unwrap(),
        server.try_clone().unwrap(),
    );
    eprintln!(
        "client -> slow backend: peak VmHWM {peak} KiB, {:?}",
        start.elapsed()
    );
    assert!(peak < PEAK_LIMIT_KIB, "proxy peak memory {peak} KiB");
    // The backend's FIN ends the pair: the client reads EOF.
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut client, 0).unwrap(), b"");
    drop((client, server));
    assert!(stop(proxy).contains(&format!(" {TOTAL} bytes to backends")));
}

#[test]
fn a_hundred_megabytes_to_a_slow_client_arrive_intact_in_bounded_memory() {
    let start = Instant::now();
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (client, server) = pair(&proxy, &listener);
    let peak = relay_to_slow_reader(&proxy, TOTAL, server, client.try_clone().unwrap());
    eprintln!(
        "backend -> slow client: peak VmHWM {peak} KiB, {:?}",
        start.elapsed()
    );
    assert!(peak < PEAK_LIMIT_KIB, "proxy peak memory {peak} KiB");
    client.shutdown(Shutdown::Write).unwrap();
    drop(client);
    assert!(stop(proxy).contains(&format!(" {TOTAL} bytes to clients")));
}

#[test]
fn after_a_client_half_close_the_reply_to_a_slow_client_is_bounded_too() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (client, mut server) = pair(&proxy, &listener);
    client.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut server, 0).unwrap(), b"");
    let peak = relay_to_slow_reader(&proxy, 20 << 20, server, client);
    eprintln!("half-closed, backend -> slow client: peak VmHWM {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "proxy peak memory {peak} KiB");
    stop(proxy);
}

#[test]
fn after_a_backend_half_close_the_upload_to_a_slow_backend_is_bounded_too() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, server) = pair(&proxy, &listener);
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut client, 0).unwrap(), b"");
    let peak = relay_to_slow_reader(&proxy, 20 << 20, client, server);
    eprintln!("half-closed, client -> slow backend: peak VmHWM {peak} KiB");
    assert!(peak < PEAK_LIMIT_KIB, "proxy peak memory {peak} KiB");
    stop(proxy);
}

#[test]
fn memory_stays_bounded_while_the_backend_is_still_connecting() {
    let start = Instant::now();
    let (listener, filler) = full_listener();
    let proxy = proxy(listener.local_addr().unwrap(), &["--connect-timeout", "30"]);
    let client = common::client(proxy.addr);
    let total = 20 << 20;
    let sent = Arc::new(AtomicU64::new(0));
    let writer = {
        let (sent, client) = (Arc::clone(&sent), client.try_clone().unwrap());
        thread::spawn(move || send_stream(client, 11, total, sent))
    };
    // The client's writes stall once the proxy stops reading it: its queue
    // for the connecting backend reached high water.
    let mut last = u64::MAX;
    common::wait_until("the client to stall", Duration::from_secs(10), || {
        thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::Relaxed);
        std::mem::replace(&mut last, now) == now
    });
    let stalled_at = sent.load(Ordering::Relaxed);
    assert!(stalled_at < total, "nothing held the client back");
    let peak_connecting = common::peak_rss_kib(proxy.child.id());
    // Make room: the proxy's SYN, sent again after 1 s or 3 s, gets in.
    drop(accept_within(&listener, Duration::from_secs(1)));
    drop(filler);
    let mut server = accept_within(&listener, Duration::from_secs(15));
    assert_eq!(receive_stream(&mut server, 11, None), total);
    common::join_within(writer, Duration::from_secs(10));
    let peak = common::peak_rss_kib(proxy.child.id());
    eprintln!(
        "while connecting: client stalled after {stalled_at} bytes, peak VmHWM \
         {peak_connecting} KiB then {peak} KiB, {:?}",
        start.elapsed()
    );
    assert!(peak < PEAK_LIMIT_KIB, "proxy peak memory {peak} KiB");
    drop((client, server));
    stop(proxy);
}

#[test]
fn five_hundred_clients_at_once_through_the_proxy_to_echo_server() {
    let start = Instant::now();
    let echo = common::spawn_on_loopback("echo_server", &[]);
    let proxy = proxy(echo.addr, &[]);
    let addr = proxy.addr;
    let lengths = common::on_threads_together(500, move |i, barrier| {
        let mut stream = common::client(addr);
        let payload = Prng(1000 + i as u64).bytes(16 * 1024 + i * 97);
        barrier.wait();
        let sending = common::write_then_fin(&stream, payload.clone());
        let echoed = read_to_eof(&mut stream, 1 << 20).expect("echo");
        common::join_within(sending, Duration::from_secs(10));
        assert!(echoed == payload, "client {i}: echo differs");
        echoed.len()
    });
    let peak = common::peak_rss_kib(proxy.child.id());
    eprintln!(
        "500 clients, {} bytes each way: peak VmHWM {peak} KiB, {:?}",
        lengths.iter().sum::<usize>(),
        start.elapsed()
    );
    stop(proxy);
}

#[test]
fn netcat_through_the_proxy_gets_its_echo_and_eof() {
    if !have("nc") {
        return;
    }
    let echo = common::spawn_on_loopback("echo_server", &[]);
    let proxy = proxy(echo.addr, &[]);
    // `-N` shuts down the socket's write side at the end of stdin: the
    // proxy passes that FIN on, echo_server answers and closes, and nc
    // exits on the EOF that comes back.
    let command = format!(
        "seq 1 100000 | nc -N {} {}",
        proxy.addr.ip(),
        proxy.addr.port()
    );
    let output = run_bounded(20, "sh", &["-c", &command]);
    let expected: String = (1..=100_000).map(|n| format!("{n}\n")).collect();
    assert!(output == expected, "nc got {} bytes", output.len());
    stop(proxy);
}
