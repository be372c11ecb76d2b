//! The `http_server` example end to end, requests that are answered:
//! responses, keep-alive, HTTP/1.0, pipelining (in order, and a batch in
//! one write), bodies across reads, chunked bodies, a half-closed client,
//! the `Date` moving on, and curl and wrk when they are installed.
//! Refusals, timeouts and SIGTERM are in tests/http_limits.rs, the parser
//! on its own in tests/http_parse.rs; the client is tests/common/http.rs.
mod common;

use std::io::{BufReader, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::http::{assert_eof, exchange, read_response, server};
use common::tools::{have, run_bounded};
use common::writes_in_report;

#[test]
fn get_root_says_hello_with_date_and_server() {
    let server = server(&[]);
    let (r, _) = exchange(&server, b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
    assert_eq!(r.header("content-length"), Some("13"));
    assert_eq!(r.header("server"), Some("reactor"));
    let date = r.header("date").expect("Date");
    assert_eq!(date.len(), 29, "{date}");
    assert!(
        date.ends_with(" GMT") && date.as_bytes()[3] == b',',
        "{date}"
    );
    assert_eq!(r.header("connection"), None, "1.1 keeps alive silently");

    let (r, _) = exchange(&server, b"GET /missing HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 404);
    let (r, _) = exchange(&server, b"DELETE / HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 405);
    let (r, _) = exchange(&server, b"GET /?q=1 HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(r.status, 200);
}

#[test]
fn keep_alive_by_default_and_connection_close_honoured() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..3 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        assert_eq!(read_response(&mut reader, false).status, 200);
    }
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: keep-alive, Close\r\n\r\n")
        .unwrap();
    let r = read_response(&mut reader, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eof(&mut reader);
}

#[test]
fn http_1_0_closes_unless_keep_alive_is_asked_for() {
    let server = server(&[]);
    let (r, mut reader) = exchange(&server, b"GET / HTTP/1.0\r\n\r\n");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), Some("close"));
    assert_eof(&mut reader);

    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
            .unwrap();
        let r = read_response(&mut reader, false);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("connection"), Some("keep-alive"));
    }
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let server = server(&[]);
    let mut batch = Vec::new();
    let mut expected = Vec::new();
    for i in 0..16 {
        match i % 4 {
            0 => {
                batch.extend_from_slice(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n");
                expected.push((200, false));
            }
            1 => {
                batch.extend_from_slice(format!("GET /{i} HTTP/1.1\r\nHost: t\r\n\r\n").as_bytes());
                expected.push((404, false));
            }
            2 => {
                // A body inside the batch must be skipped, not parsed.
                batch.extend_from_slice(
                    b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 27\r\n\r\nGET /evil HTTP/1.1\r\nX: y\r\n\r\n",
                );
                expected.push((405, false));
            }
            _ => {
                batch.extend_from_slice(b"HEAD / HTTP/1.1\r\nHost: t\r\n\r\n");
                expected.push((200, true));
            }
        }
    }
    let mut stream = common::client(server.addr);
    stream.write_all(&batch).unwrap();
    let mut reader = BufReader::new(stream);
    for (status, head) in expected {
        let r = read_response(&mut reader, head);
        assert_eq!(r.status, status);
        if head {
            assert_eq!(r.header("content-length"), Some("13"));
        }
    }
}

#[test]
fn bodies_within_the_limit_are_consumed_across_reads() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let body_len = 300_000;
    stream
        .write_all(
            format!("POST / HTTP/1.1\r\nHost: t\r\nContent-Length: {body_len}\r\n\r\n").as_bytes(),
        )
        .unwrap();
    let chunk = vec![b'G'; 10_000];
    for _ in 0..body_len / chunk.len() {
        stream.write_all(&chunk).unwrap();
    }
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let mut reader = BufReader::new(stream);
    assert_eq!(read_response(&mut reader, false).status, 405);
    let r = read_response(&mut reader, false);
    assert_eq!(r.status, 200);
    assert_eq!(r.body, b"Hello, World!");
}

#[test]
fn a_half_closed_client_still_gets_its_answer() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut reader = BufReader::new(stream);
    // The peer's FIN after a complete request: the answer still arrives.
    assert_eq!(read_response(&mut reader, false).status, 200);
    assert_eof(&mut reader);
}

#[test]
fn a_pipelined_batch_is_answered_in_one_write() {
    let mut server = server(&[]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(&b"GET / HTTP/1.1\r\nHost: t\r\n\r\n".repeat(16))
        .unwrap();
    let mut reader = BufReader::new(stream);
    for _ in 0..16 {
        assert_eq!(read_response(&mut reader, false).status, 200);
    }
    // Closing first spares the server's linger wait for our FIN.
    drop(reader);
    // 16 requests arrived in one read; their responses left in one send.
    assert_eq!(writes_in_report(&server.stop_with_report()), 1);
}

#[test]
fn the_date_moves_on() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut dates = Vec::new();
    for _ in 0..2 {
        stream
            .write_all(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
            .unwrap();
        let r = read_response(&mut reader, false);
        dates.push(r.header("date").unwrap().to_string());
        std::thread::sleep(Duration::from_millis(1100));
    }
    assert_ne!(dates[0], dates[1], "the cached Date was refreshed");
}

#[test]
fn chunked_bodies_are_consumed_and_answered_at_their_end() {
    let server = server(&[]);
    let mut stream = common::client(server.addr);
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
              5\r\nhello\r\n3;name=value\r\nabc\r\n0\r\nX-Trailer: 1\r\n\r\n\
              GET /next HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    assert_eq!(read_response(&mut reader, false).status, 200);
    assert_eq!(read_response(&mut reader, false).status, 404);

    // A large chunk across many reads; no answer until the last chunk.
    stream
        .write_all(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n80000\r\n")
        .unwrap();
    let piece = vec![b'x'; 64 * 1024];
    for _ in 0..8 {
        stream.write_all(&piece).unwrap();
    }
    stream.write_all(b"\r\n0\r\n\r\n").unwrap();
    assert_eq!(read_response(&mut reader, false).status, 405);
}

#[test]
fn curl_gets_hello() {
    if !have("curl") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/", server.addr);
    let body = run_bounded(10, "curl", &["-sS", "--max-time", "5", &url]);
    assert_eq!(body, "Hello, World!");
}

/// Checks a wrk report: requests made, no socket errors, no non-2xx.
fn check_wrk(report: &str) {
    eprintln!("{report}");
    assert!(!report.contains("Socket errors"), "{report}");
    assert!(!report.contains("Non-2xx"), "{report}");
    assert!(report.contains("Requests/sec"), "{report}");
}

#[test]
fn wrk_plain_and_pipelined_run_clean() {
    if !have("wrk") {
        return;
    }
    let server = server(&[]);
    let url = format!("http://{}/", server.addr);
    check_wrk(&run_bounded(15, "wrk", &["-t1", "-c50", "-d2s", &url]));
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/pipeline.lua");
    check_wrk(&run_bounded(
        15,
        "wrk",
        &["-t1", "-c50", "-d2s", "-s", script, &url],
    ));
}
