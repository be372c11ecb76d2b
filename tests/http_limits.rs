//! The `http_server` example end to end, requests that are refused or cut
//! off: the 400/413/431/501/505 answers and the close after them (chunked
//! bodies included), the slowloris cut-off of a stalled head or body, and
//! the SIGTERM drain that still lets a request in flight finish.
mod common;

#[allow(dead_code)]
#[path = "../examples/http_server/parse.rs"]
mod parse;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::http::{assert_eof, exchange, read_response, server};
use parse::MAX_HEAD;

#[test]
fn bad_requests_get_their_status_and_a_close() {
    let server = server(&[]);
    let big_header = format!(
        "GET / HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(MAX_HEAD)
    );
    let cases: [(&[u8], u16); 8] = [
        (b"GARBAGE\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\nHost: t\r\nBad Header: x\r\n\r\n", 400),
        (b"GET / HTTP/1.1\r\n\r\n", 400),
        (big_header.as_bytes(), 431),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
            413,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nContent-Length: 6\r\n\r\n",
            400,
        ),
        (
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
            501,
        ),
        (b"GET / HTTP/2.0\r\n\r\n", 505),
    ];
    for (request, status) in cases {
        let (r, mut reader) = exchange(&server, request);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eof(&mut reader);
    }
    // An endless head with no line end at all.
    let mut stream = common::client(server.addr);
    let _ = stream.write_all(&vec![b'A'; MAX_HEAD + 100]);
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).status, 431);
    assert_eof(&mut reader);
}

#[test]
fn chunked_bodies_over_the_limit_or_malformed_are_refused() {
    let server = server(&[]);
    for (chunks, status) in [
        (&b"100001\r\n"[..], 413),
        (b"zz\r\n", 400),
        (b"3\r\nabcX", 400),
    ] {
        let mut request =
            b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(chunks);
        let (r, mut reader) = exchange(&server, &request);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(chunks));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eof(&mut reader);
    }
}

#[test]
fn slowloris_is_cut_off_after_the_header_timeout() {
    let server = server(&["--header-timeout", "1"]);
    let start = Instant::now();
    let mut slow = common::client(server.addr);
    slow.write_all(b"GET / HTTP/1.1\r\nHost: t\r\n").unwrap();
    // Trickling more header bytes does not extend the deadline.
    let mut trickle = slow.try_clone().unwrap();
    std::thread::spawn(move || {
        for _ in 0..20 {
            std::thread::sleep(Duration::from_millis(100));
            if trickle.write_all(b"X-A: b\r\n").is_err() {
                break;
            }
        }
    });
    let mut reader = BufReader::new(slow);
    assert_eof(&mut reader);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
    // A prompt client on the same server is unaffected.
    let (r, _) = exchange(&server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn a_stalled_body_is_cut_off_too() {
    let server = server(&["--header-timeout", "1"]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\nabc")
        .unwrap();
    let start = Instant::now();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).status, 405);
    assert_eof(&mut reader);
    let waited = start.elapsed();
    assert!(
        waited >= Duration::from_millis(900) && waited < Duration::from_secs(3),
        "closed after {waited:?}"
    );
}

#[test]
fn sigterm_drains_and_exits_zero() {
    let mut server = server(&[]);
    // An idle keep-alive connection, and one with half a request.
    let (r, mut idle) = exchange(&server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    let mut busy = common::client(server.addr);
    busy.write_all(b"GET / HTTP/1.1\r\nHo").unwrap();
    std::thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    assert_eof(&mut idle);
    busy.write_all(b"st: t\r\n\r\n").unwrap();
    let mut busy = BufReader::new(busy);
    let r = read_response(&mut busy, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eof(&mut busy);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    assert!(TcpStream::connect(server.addr).is_err(), "listener closed");
}

#[test]
fn sigterm_lets_a_body_in_flight_finish() {
    let mut server = server(&[]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nsome\r\n")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    // Nothing of it is buffered, yet the drain waits for the rest.
    stream.write_all(b"4\r\nmore\r\n0\r\n\r\n").unwrap();
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eof(&mut reader);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}
