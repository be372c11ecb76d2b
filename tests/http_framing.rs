//! The `http_server` example on the edges of HTTP/1.1 framing and request
//! lines (RFC 9112), over raw sockets: `Transfer-Encoding` where it must be
//! refused (HTTP/1.0, with `Content-Length`, `chunked` not last), chunk
//! lines (a bare CR, leading zeros, overflow), absolute-form targets and
//! minor versions above 1. Every case is also sent to nginx, the reference,
//! and its answer (status codes and whether it closed) must be ours, or
//! the one recorded here with the reason ours differs.
mod common;

use std::time::Duration;

use common::http::{exchange, probe, server, Probe};
use common::tools::have;

/// One raw request and the answers to it.
struct Case {
    /// What it checks.
    name: &'static str,
    request: &'static [u8],
    /// Our status codes, in order, and whether we close.
    ours: (&'static [u16], bool),
    /// nginx's answer where it differs from ours, and why ours is what it
    /// is; `None`: nginx answers the same.
    nginx: Option<((&'static [u16], bool), &'static str)>,
}

/// `GET` with a chunked body: both servers answer `GET /` with 200.
macro_rules! chunked_get {
    ($body:literal) => {
        concat!(
            "GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n",
            $body
        )
        .as_bytes()
    };
}

const CASES: &[Case] = &[
    Case {
        name: "Transfer-Encoding in HTTP/1.0, a body that hides a request",
        request: b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nConnection: keep-alive\r\n\r\n0\r\n\r\nGET / HTTP/1.0\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "Transfer-Encoding and Content-Length in HTTP/1.0",
        request: b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\nabc",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "Transfer-Encoding and Content-Length",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "chunked not the final coding",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked, gzip\r\n\r\n",
        ours: (&[400], true),
        nginx: Some(((&[501], true), "RFC 9112 §6.3: a request whose final coding is not chunked MUST get 400")),
    },
    Case {
        name: "no chunked at all",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip\r\n\r\n",
        ours: (&[400], true),
        nginx: Some(((&[501], true), "RFC 9112 §6.3, as above")),
    },
    Case {
        name: "a coding before chunked: framed, but not decodable here",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n",
        ours: (&[501], true),
        nginx: None,
    },
    Case {
        name: "chunked twice, over two headers",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "chunked in any case",
        request: b"GET / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: CHUNKED\r\n\r\n0\r\n\r\n",
        ours: (&[200], false),
        nginx: None,
    },
    Case {
        name: "a bare CR inside a chunk extension",
        request: chunked_get!("1;a=b\rc\r\nx\r\n0\r\n\r\n"),
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "a chunk extension",
        request: chunked_get!("1;a=b\r\nx\r\n0\r\n\r\n"),
        ours: (&[200], false),
        nginx: None,
    },
    Case {
        name: "a bare CR inside a trailer",
        request: chunked_get!("0\r\nX: a\rb\r\n\r\n"),
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "chunk sizes with leading zeros, then a pipelined request",
        request: chunked_get!("000a\r\n0123456789\r\n0000000000000000000001\r\nx\r\n00\r\n\r\nGET / HTTP/1.1\r\nHost: t\r\n\r\n"),
        ours: (&[200, 200], false),
        nginx: None,
    },
    Case {
        name: "a chunk size that overflows 64 bits",
        request: chunked_get!("1ffffffffffffffff\r\n"),
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "a chunk size past any limit",
        request: chunked_get!("7fffffffffffffff\r\n"),
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "absolute-form: the Host header is ignored",
        request: b"GET http://example.com/ HTTP/1.1\r\nHost: other\r\n\r\n",
        ours: (&[200], false),
        nginx: None,
    },
    Case {
        name: "absolute-form with a port and a query, no path",
        request: b"GET http://example.com:8080?x=1 HTTP/1.1\r\nHost: t\r\n\r\n",
        ours: (&[200], false),
        nginx: None,
    },
    Case {
        name: "absolute-form still needs Host in HTTP/1.1",
        request: b"GET http://example.com/ HTTP/1.1\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "absolute-form without a host",
        request: b"GET http:///x HTTP/1.1\r\nHost: t\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "HTTP/1.2 is served as 1.1 (keep-alive)",
        request: b"GET / HTTP/1.2\r\nHost: t\r\n\r\nGET / HTTP/1.9\r\nHost: t\r\n\r\n",
        ours: (&[200, 200], false),
        nginx: None,
    },
    Case {
        name: "HTTP/1.2 needs Host, as 1.1 does",
        request: b"GET / HTTP/1.2\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "HTTP/2.0 over HTTP/1 framing",
        request: b"GET / HTTP/2.0\r\nHost: t\r\n\r\n",
        ours: (&[505], true),
        nginx: None,
    },
    Case {
        name: "HTTP/3.0",
        request: b"GET / HTTP/3.0\r\nHost: t\r\n\r\n",
        ours: (&[505], true),
        nginx: None,
    },
    Case {
        name: "a garbage version",
        request: b"GET / HTTX/1.1\r\nHost: t\r\n\r\n",
        ours: (&[400], true),
        nginx: None,
    },
    Case {
        name: "a two-digit minor version",
        request: b"GET / HTTP/1.10\r\nHost: t\r\n\r\n",
        ours: (&[400], true),
        nginx: Some(((&[200], false), "RFC 9112 §2.3: HTTP-version is one digit, a dot, one digit")),
    },
    Case {
        name: "major version 0",
        request: b"GET / HTTP/0.9\r\nHost: t\r\n\r\n",
        ours: (&[505], true),
        nginx: Some(((&[400], true), "RFC 9110 §15.6.6: a well-formed version of another major gets 505")),
    },
    Case {
        name: "100-continue with the body already sent",
        request: b"GET / HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\nabc",
        ours: (&[100, 200], false),
        nginx: None,
    },
    Case {
        name: "an expectation other than 100-continue",
        request: b"GET / HTTP/1.1\r\nHost: t\r\nExpect: teapot\r\n\r\n",
        ours: (&[417], true),
        nginx: Some(((&[200], false), "RFC 9110 §10.1.1 allows 417; the issue asks for it; nginx ignores Expect")),
    },
    Case {
        name: "a declared body over the limit",
        request: b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 2000000\r\n\r\n",
        ours: (&[413], true),
        nginx: Some(((&[413], false), "we do not read a body we refused; nginx reads it to discard it")),
    },
];

/// Sends every case to `addr` at once (threads: an open connection waits
/// out `quiet`), returning the answers in case order.
fn probe_all(addr: std::net::SocketAddr) -> Vec<Probe> {
    let quiet = Duration::from_millis(700);
    std::thread::scope(|s| {
        let handles: Vec<_> = CASES
            .iter()
            .map(|case| s.spawn(move || probe(addr, case.request, quiet)))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    })
}

#[test]
fn framing_edges_get_their_status_and_close() {
    let server = server(&[]);
    let mut wrong = Vec::new();
    for (case, got) in CASES.iter().zip(probe_all(server.addr)) {
        let want = (case.ours.0.to_vec(), case.ours.1);
        if (got.statuses.clone(), got.closed) != want {
            wrong.push(format!("{}: got {got:?}, want {want:?}", case.name));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn nginx_answers_the_same_or_as_recorded() {
    if !have("nginx") {
        return;
    }
    let nginx = common::nginx::start();
    let mut wrong = Vec::new();
    for (case, got) in CASES.iter().zip(probe_all(nginx.addr)) {
        let ((statuses, closed), why) = case.nginx.unwrap_or((case.ours, "the same as ours"));
        if (got.statuses.as_slice(), got.closed) != (statuses, closed) {
            wrong.push(format!(
                "{}: nginx says {got:?}, recorded {:?} ({why})",
                case.name,
                (statuses, closed)
            ));
        }
    }
    assert!(wrong.is_empty(), "{wrong:#?}");
}

#[test]
fn absolute_form_targets_route_on_their_path() {
    let server = server(&[]);
    let (r, _) = exchange(
        &server,
        b"POST http://example.com:8080/echo?x HTTP/1.1\r\nHost: elsewhere\r\nContent-Length: 2\r\n\r\nhi",
    );
    assert_eq!((r.status, r.body.as_slice()), (200, &b"hi"[..]));
    let (r, _) = exchange(
        &server,
        b"GET http://example.com:8080/echo?x HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!((r.status, r.header("content-length")), (200, Some("0")));
    let (r, _) = exchange(
        &server,
        b"GET HTTPS://example.com/missing HTTP/1.1\r\nHost: t\r\n\r\n",
    );
    assert_eq!(r.status, 404);
    // HTTP/1.0 needs no Host, in either form.
    let (r, _) = exchange(&server, b"GET http://example.com/ HTTP/1.0\r\n\r\n");
    assert_eq!(r.body, b"Hello, World!");
}

#[test]
fn later_minor_versions_are_answered_as_1_1() {
    let server = server(&[]);
    let (r, _) = exchange(&server, b"GET / HTTP/1.7\r\nHost: t\r\n\r\n");
    // read_response checks the status line says HTTP/1.1.
    assert_eq!(r.status, 200);
    assert_eq!(r.header("connection"), None, "kept alive, as 1.1 is");
}
