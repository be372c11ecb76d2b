//! End-to-end tests of the `proxy` example, how a pair ends:
//!
//! * a request and FIN sent while the backend is still connecting arrive
//!   once it is connected;
//! * half-close passed on in each direction, the other still flowing;
//! * resets passed on as resets, also from a side the proxy is not reading;
//! * refused and timed-out backend connects reset the client;
//! * SIGTERM closes the listener and lets an open pair finish.
//!
//! Bytes through the proxy (large transfers, memory, many clients) are in
//! tests/proxy.rs; the helpers both use are in tests/common/proxy.rs.
//!
//! Every wait is bounded: sockets have read/write timeouts, accepts and
//! joins a limit.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use common::proxy::{accept_within, backend, full_listener, pair, proxy, stop, PIECE};
use common::{read_to_eof, reset, ChildServer, Prng};
use socket2::{Domain, Socket, Type};

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
