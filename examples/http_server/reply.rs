//! Responses of the `http_server` example: the fixed answers (status,
//! body, extra headers) and the encoder that writes any response's head
//! and body into the server's output buffer.
//!
//! Apart from the request handling (`http_server.rs`) so that file keeps
//! to the order a request meets the server, and because every response,
//! fixed or echoed, goes through the one encoder here: `Date`, `Server`,
//! `Content-Length` and the `Connection` decision are written in one place.

use super::decimal::push_decimal;

/// A fixed answer: status line text and body.
#[derive(Debug)]
pub struct Reply {
    /// Code and reason phrase, e.g. `200 OK`.
    pub status: &'static str,
    /// The body (also sized for `HEAD`, which sends none).
    pub body: &'static [u8],
    /// Extra header lines, each ending in CRLF.
    pub extra: &'static str,
}

pub const HELLO: Reply = Reply {
    status: "200 OK",
    body: b"Hello, World!",
    extra: "",
};
/// `/healthz` while serving.
pub const HEALTHY: Reply = Reply {
    status: "200 OK",
    body: b"ok\n",
    extra: "",
};
/// `/healthz` once a drain has begun: the balancer takes the instance out.
pub const DRAINING: Reply = Reply {
    status: "503 Service Unavailable",
    body: b"draining\n",
    extra: "",
};
pub const NOT_FOUND: Reply = Reply {
    status: "404 Not Found",
    body: b"Not Found\n",
    extra: "",
};
pub const METHOD_NOT_ALLOWED: Reply = Reply {
    status: "405 Method Not Allowed",
    body: b"Method Not Allowed\n",
    extra: "Allow: GET, HEAD\r\n",
};
pub const BAD_REQUEST: Reply = Reply {
    status: "400 Bad Request",
    body: b"Bad Request\n",
    extra: "",
};
pub const HEAD_TOO_LARGE: Reply = Reply {
    status: "431 Request Header Fields Too Large",
    body: b"Request Header Fields Too Large\n",
    extra: "",
};
pub const BODY_TOO_LARGE: Reply = Reply {
    status: "413 Content Too Large",
    body: b"Content Too Large\n",
    extra: "",
};
pub const EXPECTATION_FAILED: Reply = Reply {
    status: "417 Expectation Failed",
    body: b"Only 100-continue is supported\n",
    extra: "",
};
pub const NOT_IMPLEMENTED: Reply = Reply {
    status: "501 Not Implemented",
    body: b"Only the chunked transfer coding is supported\n",
    extra: "",
};
pub const BAD_VERSION: Reply = Reply {
    status: "505 HTTP Version Not Supported",
    body: b"HTTP Version Not Supported\n",
    extra: "",
};

/// The interim response sent before reading a body the client holds back
/// with `Expect: 100-continue` (RFC 9110 §10.1.1).
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// One response to encode.
#[derive(Debug, Clone, Copy)]
pub struct Response<'a> {
    /// Code and reason phrase.
    pub status: &'a str,
    /// The `Content-Type` value.
    pub content_type: &'a [u8],
    /// Extra header lines, each ending in CRLF.
    pub extra: &'a str,
    /// The body, whose length `Content-Length` gives even when it is not
    /// sent (`HEAD`).
    pub body: &'a [u8],
    /// Whether the body follows the head (not for `HEAD`).
    pub send_body: bool,
}

impl Response<'_> {
    /// A fixed answer as a response.
    pub fn fixed(reply: &'static Reply, send_body: bool) -> Response<'static> {
        Response {
            status: reply.status,
            content_type: b"text/plain",
            extra: reply.extra,
            body: reply.body,
            send_body,
        }
    }

    /// Appends the response to `out`. `keep_alive: false` adds
    /// `Connection: close`; an HTTP/1.0 client (`minor` 0) that keeps the
    /// connection is told it does.
    pub fn encode(&self, out: &mut Vec<u8>, date: &[u8], keep_alive: bool, minor: u8) {
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(self.status.as_bytes());
        out.extend_from_slice(b"\r\nServer: reactor\r\nDate: ");
        out.extend_from_slice(date);
        out.extend_from_slice(b"\r\nContent-Type: ");
        out.extend_from_slice(self.content_type);
        out.extend_from_slice(b"\r\n");
        out.extend_from_slice(self.extra.as_bytes());
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, self.body.len() as u64);
        out.extend_from_slice(b"\r\n");
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if self.send_body {
            out.extend_from_slice(self.body);
        }
    }
}
