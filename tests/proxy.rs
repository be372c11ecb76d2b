//! End-to-end tests of `examples/proxy.rs`, run as a child process between
//! real clients and real backends (std sockets driven by the test, or the
//! `echo_server` example):
//!
//! * 100 MB each way past a slow reader, every byte checked against a PRNG
//!   stream and the proxy's peak memory (`VmHWM`) under 16 MB; the same
//!   after a half-close, and while the backend is still connecting;
//! * half-close passed on in each direction, also before the backend is
//!   connected;
//! * resets passed on as resets, also from a side the proxy is not reading;
//! * refused and timed-out backend connects reset the client;
//! * SIGTERM lets an open pair finish; 500 clients at once; OpenBSD netcat.
//!
//! Every wait is bounded: sockets have read/write timeouts, accepts and
//! joins a limit. The proxy's memory is read from /proc, never its speed.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::tools::{have, run_bounded};
use common::{read_to_eof, reset, ChildServer, Prng};
use socket2::{Domain, Socket, Type};

/// Bytes relayed each way in the large transfers.
const TOTAL: u64 = 100 << 20;
/// Piece of the PRNG stream written at a time (a multiple of 8, so that the
/// stream does not depend on how it is cut).
const PIECE: usize = 64 * 1024;
/// The proxy's peak resident memory must stay under this, in KiB.
const PEAK_LIMIT_KIB: u64 = 16 * 1024;

/// The proxy in front of `backend`, listening on a port the kernel picks.
fn proxy(backend: SocketAddr, extra: &[&str]) -> ChildServer {
    let backend = backend.to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--backend", &backend];
    args.extend_from_slice(extra);
    common::spawn_example("proxy", &args, None)
}

/// A backend for one test, on 127.0.0.1 at a port the kernel picks.
fn backend() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind backend")
}

/// Accepts the proxy's connection to `listener`, waiting at most `limit`;
/// the stream gets the same 10 s timeouts as [`common::client`].
fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < limit, "no connection within {limit:?}");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    common::with_timeouts(stream)
}

/// A client through `proxy` and the backend side of its pair.
fn pair(proxy: &ChildServer, listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = common::client(proxy.addr);
    let server = accept_within(listener, Duration::from_secs(10));
    (client, server)
}

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

/// Stops the proxy and returns its exit report, after the pairs ended;
/// prints both with the proxy's peak memory.
fn stop(mut proxy: ChildServer) -> String {
    let peak = common::peak_rss_kib(proxy.child.id());
    let report = proxy.stop_with_report();
    eprintln!("{report}; peak VmHWM {peak} KiB");
    report
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

/// A listener whose accept queue is full: connects to it hang (Linux drops
/// a SYN while the queue is full) until the test accepts the connection
/// that fills it. Returns the listener and that connection.
fn full_listener() -> (TcpListener, TcpStream) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    // Backlog 0 holds one connection.
    socket.listen(0).unwrap();
    let listener: TcpListener = socket.into();
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
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
fn a_request_and_fin_sent_while_the_backend_is_connecting_arrive_once_connected() {
    let (listener, filler) = full_listener();
    let proxy = proxy(listener.local_addr().unwrap(), &["--connect-timeout", "30"]);
    let mut client = common::client(proxy.addr);
    client.write_all(b"early request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    thread::sleep(Duration::from_millis(200));
    drop(accept_within(&listener, Duration::from_secs(1)));
    drop(filler);
    let mut server = accept_within(&listener, Duration::from_secs(15));
    assert_eq!(read_to_eof(&mut server, 1 << 20).unwrap(), b"early request");
    server.write_all(b"late reply").unwrap();
    drop(server);
    assert_eq!(read_to_eof(&mut client, 1 << 20).unwrap(), b"late reply");
    stop(proxy);
}

#[test]
fn a_client_half_close_reaches_the_backend_which_still_replies() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, mut server) = pair(&proxy, &listener);
    client.write_all(b"request").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    // The backend sees the request, then EOF...
    assert_eq!(read_to_eof(&mut server, 1 << 20).unwrap(), b"request");
    // ... and its reply, large enough to need flow control, still arrives.
    let reply = Prng(3).bytes(4 << 20);
    server.write_all(&reply).unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut client, 8 << 20).unwrap() == reply);
    drop((client, server));
    stop(proxy);
}

#[test]
fn a_backend_half_close_reaches_the_client_which_still_sends() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, mut server) = pair(&proxy, &listener);
    server.write_all(b"greeting").unwrap();
    server.shutdown(Shutdown::Write).unwrap();
    assert_eq!(read_to_eof(&mut client, 1 << 20).unwrap(), b"greeting");
    let upload = Prng(4).bytes(4 << 20);
    let sending = common::write_then_fin(&client, upload.clone());
    assert!(read_to_eof(&mut server, 8 << 20).unwrap() == upload);
    common::join_within(sending, Duration::from_secs(10));
    drop(server);
    // Both directions are done: the pair is closed, the client sees EOF.
    assert_eq!(read_to_eof(&mut client, 0).unwrap(), b"");
    stop(proxy);
}

/// Waits for `stream`'s next read to fail with a reset; returns how long.
fn expect_reset(stream: &mut TcpStream) -> Duration {
    let start = Instant::now();
    let mut buf = [0; 64];
    loop {
        match stream.read(&mut buf) {
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return start.elapsed(),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            other => panic!("expected a reset, got {other:?}"),
        }
    }
}

#[test]
fn a_backend_reset_reaches_the_client_as_a_reset() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, mut server) = pair(&proxy, &listener);
    client.write_all(b"ping").unwrap();
    let mut ping = [0; 4];
    server.read_exact(&mut ping).unwrap();
    reset(server);
    expect_reset(&mut client);
    assert!(stop(proxy).contains(" 1 resets passed on"));
}

#[test]
fn a_client_reset_reaches_the_backend_as_a_reset() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, mut server) = pair(&proxy, &listener);
    server.write_all(b"hello").unwrap();
    let mut hello = [0; 5];
    client.read_exact(&mut hello).unwrap();
    reset(client);
    expect_reset(&mut server);
    assert!(stop(proxy).contains(" 1 resets passed on"));
}

/// `writer` sends until every buffer on the way is full, for `reader`
/// reads nothing, and the proxy stops reading `writer`'s side; then
/// `writer` resets. `reader` must see the reset, not an EOF.
fn reset_while_paused(proxy: ChildServer, writer: TcpStream, mut reader: TcpStream) {
    let (sent, stop_writing) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicBool::new(false)),
    );
    let writer = {
        let (sent, stop_writing) = (Arc::clone(&sent), Arc::clone(&stop_writing));
        thread::spawn(move || {
            // The only descriptor of its socket, so that dropping it resets.
            let mut stream = writer;
            stream
                .set_write_timeout(Some(Duration::from_millis(50)))
                .unwrap();
            let piece = Prng(5).bytes(PIECE);
            while !stop_writing.load(Ordering::Relaxed) {
                match stream.write(&piece) {
                    Ok(n) => drop(sent.fetch_add(n as u64, Ordering::Relaxed)),
                    Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                    Err(e) => panic!("write: {e}"),
                }
            }
            reset(stream);
        })
    };
    let mut last = u64::MAX;
    common::wait_until("the writer to stall", Duration::from_secs(10), || {
        thread::sleep(Duration::from_millis(200));
        let now = sent.load(Ordering::Relaxed);
        std::mem::replace(&mut last, now) == now
    });
    stop_writing.store(true, Ordering::Relaxed);
    common::join_within(writer, Duration::from_secs(10));
    // What was relayed before the reset may be read first; then the reset.
    let mut buf = vec![0; PIECE];
    let start = Instant::now();
    let error = loop {
        match reader.read(&mut buf) {
            Ok(0) => panic!("EOF instead of a reset"),
            Ok(_) => assert!(start.elapsed() < Duration::from_secs(10), "no reset"),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset, "{error}");
    assert!(stop(proxy).contains(" 1 resets passed on"));
}

#[test]
fn a_client_reset_is_passed_on_while_the_client_is_paused() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (client, server) = pair(&proxy, &listener);
    reset_while_paused(proxy, client, server);
}

#[test]
fn a_backend_reset_is_passed_on_while_the_backend_is_paused() {
    let listener = backend();
    let proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (client, server) = pair(&proxy, &listener);
    reset_while_paused(proxy, server, client);
}

#[test]
fn a_refused_backend_connect_resets_the_client_at_once() {
    // A port bound but not listening: connects to it are refused, and no
    // other test's listener can take it meanwhile.
    let bound = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    bound
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    let refused = bound.local_addr().unwrap().as_socket().unwrap();
    let proxy = proxy(refused, &[]);
    let mut client = common::client(proxy.addr);
    let waited = expect_reset(&mut client);
    eprintln!("refused backend: client reset after {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "reset only after {waited:?}"
    );
    assert!(stop(proxy).contains(" 1 connects failed"));
}

#[test]
fn a_backend_connect_timeout_resets_the_client() {
    let (listener, _filler) = full_listener();
    let proxy = proxy(
        listener.local_addr().unwrap(),
        &["--connect-timeout", "0.5"],
    );
    let mut client = common::client(proxy.addr);
    client.write_all(b"waiting for the backend").unwrap();
    let waited = expect_reset(&mut client);
    eprintln!("connect timeout 0.5 s: client reset after {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "reset only after {waited:?}"
    );
    assert!(stop(proxy).contains(" 1 timed out"));
}

#[test]
fn sigterm_lets_an_open_pair_finish_then_exits() {
    let listener = backend();
    let mut proxy = proxy(listener.local_addr().unwrap(), &[]);
    let (mut client, mut server) = pair(&proxy, &listener);
    client.write_all(b"x").unwrap();
    server.read_exact(&mut [0; 1]).unwrap();
    proxy.signal("TERM");
    thread::sleep(Duration::from_millis(200));
    assert!(
        TcpStream::connect(proxy.addr).is_err(),
        "the listener is closed"
    );
    // The pair open before the signal still relays both ways.
    let reply = Prng(6).bytes(1 << 20);
    let sending = common::write_then_fin(&server, reply.clone());
    client.write_all(b"last words").unwrap();
    client.shutdown(Shutdown::Write).unwrap();
    assert!(read_to_eof(&mut client, 2 << 20).unwrap() == reply);
    assert_eq!(read_to_eof(&mut server, 1 << 20).unwrap(), b"last words");
    common::join_within(sending, Duration::from_secs(10));
    drop((client, server));
    assert_eq!(proxy.wait_exit(Duration::from_secs(5)), Some(0));
    let report = proxy.stderr.iter().find(|l| l.contains("stopped:"));
    assert!(report
        .is_some_and(|r| r.contains(" 1 clients, 11 bytes to backends, 1048576 bytes to clients")));
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
