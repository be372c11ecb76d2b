//! The `http_server` example, end to end and in parts: responses, keep-alive,
//! HTTP/1.0, pipelining, chunked bodies, the 400/413/431/501/505 limits, the slowloris
//! cut-off and the SIGTERM drain against the running binary; the head parser
//! and the `Date` formatter on their own, on generated and hostile input;
//! and curl and wrk when they are installed.
mod common;

#[allow(dead_code)]
#[path = "../examples/http_server/parse.rs"]
mod parse;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::tools::{have, run_bounded};
use common::{writes_in_report, ChildServer, XorShift};
use parse::{parse_head, ChunkError, Chunked, HeadError, MAX_CHUNK_LINE, MAX_HEAD};
use proptest::prelude::*;

fn server(extra: &[&str]) -> ChildServer {
    common::spawn_on_loopback("http_server", extra)
}

/// One parsed response.
#[derive(Debug)]
struct Response {
    /// Status code.
    status: u16,
    /// Header lines as (lower-case name, value).
    headers: Vec<(String, String)>,
    /// Body, `Content-Length` bytes.
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (the server always sends `Content-Length`). `head`:
/// the request was HEAD, so no body follows.
fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> Response {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    let status = line
        .strip_prefix("HTTP/1.1 ")
        .unwrap_or_else(|| panic!("bad status line {line:?}"))[..3]
        .parse()
        .unwrap();
    let mut headers = Vec::new();
    loop {
        line.clear();
        reader.read_line(&mut line).expect("header line");
        let trimmed = line.trim_end();
        if trimmed.is_empty() {
            break;
        }
        let (name, value) = trimmed.split_once(": ").expect("header");
        headers.push((name.to_ascii_lowercase(), value.to_string()));
    }
    let length: usize = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .expect("Content-Length")
        .1
        .parse()
        .unwrap();
    let mut body = vec![0; if head { 0 } else { length }];
    reader.read_exact(&mut body).expect("body");
    Response {
        status,
        headers,
        body,
    }
}

/// Asserts the server closes the connection: EOF, not a timeout.
fn assert_eof(reader: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

fn exchange(server: &ChildServer, request: &[u8]) -> (Response, BufReader<TcpStream>) {
    let mut stream = common::client(server.addr);
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, false);
    (response, reader)
}

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

#[test]
fn http_date_matches_known_instants() {
    let as_str = |secs| String::from_utf8(parse::http_date(secs).to_vec()).unwrap();
    assert_eq!(as_str(0), "Thu, 01 Jan 1970 00:00:00 GMT");
    assert_eq!(as_str(784_111_777), "Sun, 06 Nov 1994 08:49:37 GMT");
    assert_eq!(as_str(951_782_400), "Tue, 29 Feb 2000 00:00:00 GMT");
    assert_eq!(as_str(1_709_164_800), "Thu, 29 Feb 2024 00:00:00 GMT");
    assert_eq!(as_str(4_102_444_799), "Thu, 31 Dec 2099 23:59:59 GMT");
}

#[test]
fn head_parser_reads_fields() {
    let input: &[u8] =
        b"\r\nPOST /x?y HTTP/1.0\r\nHost: h\r\nconnection:  Keep-Alive \r\nContent-Length: 12\r\n\r\nrest";
    let head = parse_head(input).unwrap().unwrap();
    assert_eq!(head.method, b"POST");
    assert_eq!(head.target, b"/x?y");
    assert_eq!(head.minor, 0);
    assert!(head.keep_alive);
    assert_eq!(head.content_length, 12);
    assert_eq!(head.len, input.len() - b"rest".len());
    // Bare LF line ends are accepted.
    let head = parse_head(b"GET / HTTP/1.1\nHost: h\n\n").unwrap().unwrap();
    assert!(head.keep_alive);
    assert_eq!(parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n"), Ok(None));
    assert_eq!(
        parse_head(b"GET / HTTP/1.1\r\nHost: h\r\n x\r\n\r\n"),
        Err(HeadError::Malformed("obsolete line folding"))
    );
}

/// A valid request head with random target, header names and values.
fn valid_head() -> impl Strategy<Value = (Vec<u8>, u64)> {
    (
        "/[a-z0-9/]{0,20}",
        proptest::collection::vec(("[A-Za-z][A-Za-z0-9-]{0,15}", "[ -~]{0,40}"), 0..8),
        0u64..2_000_000,
    )
        .prop_map(|(target, headers, length)| {
            let mut head = format!("GET {target} HTTP/1.1\r\nHost: h\r\n");
            for (name, value) in headers {
                let lower = name.to_ascii_lowercase();
                if ["host", "content-length", "transfer-encoding"].contains(&lower.as_str()) {
                    continue;
                }
                head.push_str(&format!("X-{name}: {value}\r\n"));
            }
            head.push_str(&format!("Content-Length: {length}\r\n\r\n"));
            (head.into_bytes(), length)
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics_and_stays_in_bounds(input in proptest::collection::vec(any::<u8>(), 0..2048)) {
        match parse_head(&input) {
            Ok(Some(head)) => {
                prop_assert!(head.len <= input.len() && head.len <= MAX_HEAD);
                prop_assert!(head.minor <= 1);
            }
            Ok(None) => prop_assert!(input.len() < MAX_HEAD),
            Err(_) => {}
        }
    }

    #[test]
    fn valid_heads_parse_and_every_prefix_is_incomplete((head, length) in valid_head(), tail in proptest::collection::vec(any::<u8>(), 0..64)) {
        let mut input = head.clone();
        input.extend_from_slice(&tail);
        let parsed = parse_head(&input).unwrap().unwrap();
        prop_assert_eq!(parsed.len, head.len());
        prop_assert_eq!(parsed.content_length, length);
        prop_assert!(parsed.keep_alive);
        for cut in 0..head.len() {
            prop_assert_eq!(parse_head(&head[..cut]), Ok(None));
        }
    }

    #[test]
    fn endless_lines_are_refused_at_the_cap(byte in 0x20u8..0x7f, extra in 0usize..4096) {
        let line = vec![byte; MAX_HEAD + extra];
        if byte.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&byte) {
            // Could still become a method: waited for up to the cap.
            prop_assert_eq!(parse_head(&line), Err(HeadError::TooLarge));
            prop_assert_eq!(parse_head(&line[..MAX_HEAD - 1]), Ok(None));
        } else {
            // Cannot start a request line: refused at its first byte.
            prop_assert!(matches!(parse_head(&line[..1]), Err(HeadError::Malformed(_))));
        }
    }

    #[test]
    fn huge_declared_lengths_are_just_numbers(digits in "[0-9]{1,40}") {
        let input = format!("POST / HTTP/1.1\r\nHost: h\r\nContent-Length: {digits}\r\n\r\n");
        match parse_head(input.as_bytes()) {
            Ok(Some(head)) => prop_assert_eq!(head.content_length.to_string().parse::<u128>().unwrap(), digits.parse::<u128>().unwrap()),
            Err(HeadError::Malformed(_)) => prop_assert!(digits.parse::<u64>().is_err()),
            other => prop_assert!(false, "{:?}", other),
        }
    }
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
fn structured_garbage_from_http_fragments_never_panics() {
    const FRAGMENTS: [&[u8]; 18] = [
        b"GET",
        b"POST",
        b" ",
        b"/",
        b"HTTP/1.1",
        b"HTTP/1.0",
        b"HTTP/9.9",
        b"\r\n",
        b"\n",
        b"\r",
        b"Host: h",
        b"Content-Length: ",
        b"99999999999999999999999",
        b"12",
        b"Transfer-Encoding: chunked",
        b"Connection: close",
        b":",
        b"\t",
    ];
    let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
    for _ in 0..5000 {
        let input = rng.garbage(&FRAGMENTS, 30);
        match parse_head(&input) {
            Ok(Some(head)) => assert!(head.len <= input.len()),
            Ok(None) => assert!(input.len() < MAX_HEAD),
            Err(_) => {}
        }
    }
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

/// Chunked encoding of `pieces`, with a trailer when `trailer` is set.
fn encode_chunked(pieces: &[Vec<u8>], trailer: bool) -> Vec<u8> {
    let mut out = Vec::new();
    for piece in pieces.iter().filter(|p| !p.is_empty()) {
        out.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        out.extend_from_slice(piece);
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"0\r\n");
    if trailer {
        out.extend_from_slice(b"X-Sum: 1\r\n");
    }
    out.extend_from_slice(b"\r\n");
    out
}

/// Feeds `input` to a decoder the way the server does: each call sees what
/// earlier calls left plus the next `step` bytes. Returns (bytes consumed,
/// ended) or the error; checks nothing unconsumed grows past a line.
fn feed_chunked(input: &[u8], step: usize, limit: u64) -> Result<(usize, bool), ChunkError> {
    let mut decoder = Chunked::default();
    let (mut consumed, mut available) = (0, 0);
    while available < input.len() {
        available = (available + step.max(1)).min(input.len());
        let (used, done) = decoder.feed(&input[consumed..available], limit)?;
        consumed += used;
        assert!(consumed <= available);
        if done {
            return Ok((consumed, true));
        }
        assert!(available - consumed <= MAX_CHUNK_LINE + 2, "holds too much");
    }
    Ok((consumed, false))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn chunked_bodies_end_exactly_at_their_end(
        pieces in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 0..6),
        trailer in any::<bool>(),
        step in 1usize..200,
        tail in proptest::collection::vec(any::<u8>(), 0..20),
    ) {
        let body = encode_chunked(&pieces, trailer);
        let mut input = body.clone();
        input.extend_from_slice(&tail);
        prop_assert_eq!(feed_chunked(&input, step, 1 << 20), Ok((body.len(), true)));
        let total: usize = pieces.iter().map(Vec::len).sum();
        if total > 0 {
            prop_assert_eq!(feed_chunked(&input, step, total as u64 - 1), Err(ChunkError::TooLarge));
        }
    }

    #[test]
    fn chunked_garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..600), step in 1usize..64) {
        let _ = feed_chunked(&input, step, 1 << 20);
    }

    #[test]
    fn huge_chunk_sizes_are_just_numbers(digits in "[0-9a-fA-F]{1,30}") {
        let input = format!("{digits}\r\n");
        let mut decoder = Chunked::default();
        match decoder.feed(input.as_bytes(), u64::MAX) {
            Ok((used, false)) => prop_assert_eq!(used, input.len()),
            Err(ChunkError::Malformed(_)) => prop_assert!(digits.len() > 15),
            other => prop_assert!(false, "{:?}", other),
        }
    }
}

#[test]
fn endless_chunk_lines_are_refused() {
    let line = vec![b'1'; MAX_CHUNK_LINE + 10];
    assert!(matches!(
        Chunked::default().feed(&line, u64::MAX),
        Err(ChunkError::Malformed(_))
    ));
}
