//! The `http_server` example's `/echo` over raw sockets: bodies by
//! `Content-Length` and chunked, arriving in pieces across reads, echoed with
//! their `Content-Type`; `HEAD` answered with the headers `GET` would get;
//! `Expect: 100-continue` answered with `100 Continue` before the body, or
//! with the final refusal (413, 417, 404) and a close instead; a SIGTERM
//! drain that waits for an echo body in flight. Real clients
//! on the same paths are in tests/http_clients.rs.
mod common;

use std::io::{BufReader, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::http::{assert_eof, exchange, read_continue, read_response, server};
use common::Prng;

/// `len` bytes of every value, so a byte lost or reordered shows.
fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

/// `body` in chunked encoding, in chunks of up to `piece` bytes.
fn chunked(body: &[u8], piece: usize) -> Vec<u8> {
    let mut out = Vec::new();
    for part in body.chunks(piece) {
        out.extend_from_slice(format!("{:x}\r\n", part.len()).as_bytes());
        out.extend_from_slice(part);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n\r\n");
    out
}

/// Writes `bytes` in random pieces with short pauses, so the server meets
/// the body across many reads.
fn write_in_pieces(stream: &mut TcpStream, bytes: &[u8], seed: u64) {
    let mut rng = Prng(seed * 0x9e37_79b9 + 1);
    let mut rest = bytes;
    while !rest.is_empty() {
        let n = rng.range(1, 20_000).min(rest.len());
        stream.write_all(&rest[..n]).unwrap();
        stream.flush().unwrap();
        rest = &rest[n..];
        if rng.range(0, 3) == 0 {
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

#[test]
fn echo_returns_content_length_bodies_with_their_content_type() {
    let server = server(&[]);
    let (r, _) = exchange(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Type: text/x-mine; a=b\r\nContent-Length: 5\r\n\r\nhello",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"hello");
    assert_eq!(r.header("content-type"), Some("text/x-mine; a=b"));

    let (r, _) = exchange(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
    );
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"");
    assert_eq!(r.header("content-type"), Some("application/octet-stream"));
    // The query does not change the path.
    let (r, _) = exchange(
        &server,
        b"PUT /echo?x=1 HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nok",
    );
    assert_eq!(r.body, b"ok");
}

#[test]
fn echo_bodies_arrive_in_pieces_and_keep_the_connection() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    // Up to the limit exactly, by both framings, then a GET behind them.
    for (round, len) in [1usize, 70_000, 1024 * 1024].into_iter().enumerate() {
        let body = pattern(len);
        let mut request =
            format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {len}\r\n\r\n").into_bytes();
        request.extend_from_slice(&body);
        write_in_pieces(&mut stream, &request, round as u64 + 1);
        let r = read_response(&mut reader, false);
        assert_eq!((r.status, r.body.len()), (200, len));
        assert!(r.body == body, "echoed body differs at length {len}");

        let mut request =
            b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n".to_vec();
        request.extend_from_slice(&chunked(&body, 3000));
        write_in_pieces(&mut stream, &request, round as u64 + 10);
        let r = read_response(&mut reader, false);
        assert_eq!((r.status, r.body.len()), (200, len));
        assert!(
            r.body == body,
            "echoed chunked body differs at length {len}"
        );
    }
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).body, b"Hello, World!");
}

#[test]
fn pipelined_echoes_are_answered_in_order() {
    let server = server(&[]);
    let mut batch = Vec::new();
    for i in 0..20 {
        let body = format!("body number {i}");
        if i % 2 == 0 {
            batch.extend_from_slice(
                format!(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                )
                .as_bytes(),
            );
        } else {
            batch.extend_from_slice(
                b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            );
            batch.extend_from_slice(&chunked(body.as_bytes(), 4));
        }
        batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
    }
    let mut stream = common::client(server.addr);
    stream.write_all(&batch).unwrap();
    let mut reader = BufReader::new(stream);
    for i in 0..20 {
        let r = read_response(&mut reader, false);
        assert_eq!(r.body, format!("body number {i}").as_bytes());
        let r = read_response(&mut reader, true);
        assert_eq!(r.header("content-length"), Some("13"));
    }
}

#[test]
fn bodies_over_the_limit_get_413_and_a_close() {
    let server = server(&[]);
    let too_big = 1024 * 1024 + 1;
    let head = format!("POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: {too_big}\r\n\r\n");
    let (r, mut reader) = exchange(&server, head.as_bytes());
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    assert_eof(&mut reader);

    // Chunked: refused when the sizes pass the limit, mid-body.
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let body = pattern(too_big);
    let _ = stream.write_all(&chunked(&body, 64 * 1024));
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, false);
    assert_eq!((r.status, r.header("connection")), (413, Some("close")));
    assert_eof(&mut reader);
}

#[test]
fn head_gets_the_headers_get_would_get() {
    let server = server(&[]);
    for path in ["/", "/missing", "/echo"] {
        let get = format!("GET {path} HTTP/1.1\r\nHost: t\r\n\r\n");
        let (g, _) = exchange(&server, get.as_bytes());
        let mut stream = common::client(server.addr);
        stream
            .write_all(format!("HEAD {path} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes())
            .unwrap();
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let mut reader = BufReader::new(stream);
        let h = read_response(&mut reader, true);
        assert_eq!(h.status, g.status, "{path}");
        for name in ["content-length", "content-type"] {
            assert_eq!(h.header(name), g.header(name), "{path} {name}");
        }
        // No body followed the HEAD answer: the next response is next.
        assert_eq!(read_response(&mut reader, false).body, b"Hello, World!");
    }
    // HEAD /echo with a body: its length, none of its bytes.
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"HEAD /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\n\r\nabcdGET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    let h = read_response(&mut reader, true);
    assert_eq!((h.status, h.header("content-length")), (200, Some("4")));
    assert_eq!(read_response(&mut reader, false).body, b"Hello, World!");
}

#[test]
fn expect_100_continue_comes_before_the_body_is_sent() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for framing in ["Content-Length: 300000", "Transfer-Encoding: chunked"] {
        stream
            .write_all(
                format!(
                    "POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n{framing}\r\n\r\n"
                )
                .as_bytes(),
            )
            .unwrap();
        // Nothing of the body is sent until the server says so.
        read_continue(&mut reader);
        let body = pattern(300_000);
        if framing.starts_with("Content") {
            write_in_pieces(&mut stream, &body, 3);
        } else {
            write_in_pieces(&mut stream, &chunked(&body, 10_000), 4);
        }
        let r = read_response(&mut reader, false);
        assert_eq!(r.status, 200);
        assert!(r.body == body);
    }
    // No body, no 100.
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n\r\n")
        .unwrap();
    assert_eq!(read_response(&mut reader, false).status, 200);
}

#[test]
fn a_refused_expectation_gets_the_final_answer_and_a_close() {
    let server = server(&[]);
    let cases: [(&[u8], u16); 4] = [
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2000000\r\n\r\n", 413),
        (b"POST /echo HTTP/1.1\r\nHost: t\r\nExpect: something-else\r\nContent-Length: 3\r\n\r\n", 417),
        (b"POST /nowhere HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n", 404),
        (b"POST / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nTransfer-Encoding: chunked\r\n\r\n", 405),
    ];
    for (request, status) in cases {
        // `read_response` would fail on a 100: none may come.
        let (r, mut reader) = exchange(&server, request);
        assert_eq!(r.status, status, "{}", String::from_utf8_lossy(request));
        assert_eq!(r.header("connection"), Some("close"));
        assert_eof(&mut reader);
    }
}

#[test]
fn http_1_0_ignores_expect() {
    let server = server(&[]);
    let (r, _) = exchange(
        &server,
        b"POST /echo HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"abc"[..]));
    let (r, _) = exchange(
        &server,
        b"POST /echo HTTP/1.0\r\nExpect: odd\r\nContent-Length: 1\r\n\r\nz",
    );
    assert_eq!(r.status, 200);
}

#[test]
fn sigterm_lets_an_echo_body_in_flight_finish() {
    let mut server = server(&[]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"POST /echo HTTP/1.1\r\nHost: t\r\nContent-Length: 8\r\n\r\nhalf")
        .unwrap();
    std::thread::sleep(Duration::from_millis(100));
    server.signal("TERM");
    std::thread::sleep(Duration::from_millis(200));
    // Kept in the echo buffer, not the reactor's: the drain still waits.
    stream.write_all(b"more").unwrap();
    let mut reader = BufReader::new(stream);
    let r = read_response(&mut reader, false);
    assert_eq!((r.status, r.body.as_slice()), (200, &b"halfmore"[..]));
    assert_eq!(r.header("connection"), Some("close"));
    assert_eof(&mut reader);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}
