//! An HTTP/1.1 client for the tests of the `http_server` example
//! (tests/http*.rs): starting the server, sending a request, reading a
//! response (the server always sends `Content-Length`) or a `100 Continue`,
//! checking that the server closed the connection, and probing any server
//! (nginx too) for its status codes and whether it closed.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use super::ChildServer;

/// Starts the `http_server` example on a free loopback port with `extra`
/// flags.
pub fn server(extra: &[&str]) -> ChildServer {
    super::spawn_on_loopback("http_server", extra)
}

/// One parsed response.
#[derive(Debug)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// Header lines as (lower-case name, value).
    pub headers: Vec<(String, String)>,
    /// Body, `Content-Length` bytes.
    pub body: Vec<u8>,
}

impl Response {
    /// The value of header `name` (lower case), if sent.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// Reads one response (the server always sends `Content-Length`). `head`:
/// the request was HEAD, so no body follows.
pub fn read_response(reader: &mut BufReader<TcpStream>, head: bool) -> Response {
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
pub fn assert_eof(reader: &mut BufReader<TcpStream>) {
    let mut rest = Vec::new();
    match reader.read_to_end(&mut rest) {
        Ok(_) => assert!(rest.is_empty(), "unexpected bytes {rest:?}"),
        Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
    }
}

/// Sends `request` on a new connection and reads one response; returns
/// it and the connection's reader.
pub fn exchange(server: &ChildServer, request: &[u8]) -> (Response, BufReader<TcpStream>) {
    let mut stream = super::client(server.addr);
    stream.write_all(request).unwrap();
    let mut reader = BufReader::new(stream);
    let response = read_response(&mut reader, false);
    (response, reader)
}

/// Reads the interim `HTTP/1.1 100 Continue` and its blank line.
pub fn read_continue(reader: &mut BufReader<TcpStream>) {
    let mut line = String::new();
    reader.read_line(&mut line).expect("status line");
    assert_eq!(line, "HTTP/1.1 100 Continue\r\n");
    line.clear();
    reader.read_line(&mut line).expect("blank line");
    assert_eq!(line, "\r\n", "a 100 response has no headers here");
}

/// What a server answered to one raw request: its status codes in order
/// (interim ones included) and whether it closed the connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// The status code of every response, e.g. `[100, 200]`.
    pub statuses: Vec<u16>,
    /// The server closed (EOF or reset) within `quiet` of its last byte.
    pub closed: bool,
}

/// Sends `request` to `addr`, then reads until the server closes or, once
/// it has answered, sends nothing for `quiet`. Status lines are found by their `HTTP/1.1 ` start
/// wherever it is (a body without a line end runs into the next status
/// line), so response bodies must not contain it (true of the short texts
/// both servers send).
pub fn probe(addr: SocketAddr, request: &[u8], quiet: Duration) -> Probe {
    // The first answer may be slow on a loaded machine: only the wait
    // after bytes have come is cut short.
    let mut stream = super::client(addr);
    // The server may close before taking it all: what it said still counts.
    let _ = stream.write_all(request);
    let mut got = Vec::new();
    let mut buf = [0; 16 * 1024];
    let closed = loop {
        match stream.read(&mut buf) {
            Ok(0) => break true,
            Ok(n) => {
                got.extend_from_slice(&buf[..n]);
                stream.set_read_timeout(Some(quiet)).unwrap();
            }
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                break false
            }
            Err(_) => break true,
        }
    };
    let text = String::from_utf8_lossy(&got);
    let statuses = text
        .split("HTTP/1.1 ")
        .skip(1)
        .filter_map(|rest| rest.get(..3)?.parse().ok())
        .collect();
    Probe { statuses, closed }
}
