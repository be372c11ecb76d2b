//! An HTTP/1.1 client for the tests of the `http_server` example
//! (tests/http.rs, tests/http_limits.rs): starting the server, sending a
//! request, reading a response (the server always sends `Content-Length`),
//! and checking that the server closed the connection.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;

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
