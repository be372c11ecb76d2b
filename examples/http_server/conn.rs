//! One connection's place in the request stream for the `http_server`
//! example: whether a body is being read, what answers the request it
//! belongs to, and the `/echo` body kept until it ends; plus the routing
//! that picks the answer.
//!
//! Apart from the handler (`http_server.rs`) so that file holds the order
//! in which a request is met, and this one the state that order moves
//! through.

use std::time::Instant;

use reactor::TimerId;

use super::chunked::Chunked;
use super::reply::{Reply, HELLO, METHOD_NOT_ALLOWED, NOT_FOUND};
use super::status::Phase;

/// Echo buffer capacity kept between requests; a larger one (left by a big
/// body) is freed, so an idle connection holds little.
pub const KEEP_ECHO_CAPACITY: usize = 64 * 1024;

/// What the bytes after the current head are.
#[derive(Debug)]
pub enum Body {
    /// No body in progress: the next bytes start a request head.
    None,
    /// A `Content-Length` body: this many bytes are still to come
    /// (invariant: non-zero), and the response that waits for its end
    /// (`/echo`), or `None` when it was written with the head (the body is
    /// discarded; the length was checked then).
    Length(u64, Option<Pending>),
    /// A chunked body being read, and the response to write when it ends.
    /// The response waits because only the end can tell a body over the
    /// limit (`413`) from one within it; order is kept because no later
    /// request is parsed before the body ends.
    Chunked(Chunked, Pending),
}

/// What a request is answered with.
#[derive(Debug, Clone, Copy)]
pub enum Answer {
    /// A fixed reply; any body is discarded.
    Fixed(&'static Reply),
    /// `200` with the request's body, kept in `HttpConn::echo`.
    Echo,
    /// `200` with nginx's `stub_status` page (`http_server/status.rs`).
    Status,
    /// The load balancer's health check: `200 ok`, or `503 draining` once
    /// a drain has begun (decided when answered, not when routed).
    Health,
    /// `200` with the client's address as the server believes it
    /// (`IP:PORT`, from the PROXY header behind a balancer that sends one),
    /// so an operator can check that the balancer passes it on.
    Ip,
}

/// A request's response as decided from its head: written at once for a
/// request without a body or with a discarded `Content-Length` one, else
/// when its body ends.
#[derive(Debug, Clone, Copy)]
pub struct Pending {
    /// What to answer.
    pub answer: Answer,
    /// Not a HEAD request.
    pub send_body: bool,
    /// The client asked to keep the connection (before any drain began).
    pub keep_alive: bool,
    /// The request's minor version.
    pub minor: u8,
}

/// One connection's place in the request stream.
#[derive(Debug)]
pub struct HttpConn {
    /// Whether body bytes are expected before the next head.
    pub body: Body,
    /// The `/echo` body read so far. Invariant: at most `MAX_BODY` bytes,
    /// and empty unless an `Answer::Echo` is pending.
    pub echo: Vec<u8>,
    /// The pending echo's `Content-Type` (copied: the head's bytes are
    /// gone by the time its body ends).
    pub echo_type: Vec<u8>,
    /// The instant the request timeout counts from. While a head is awaited:
    /// when the wait for it began (connection opened or previous request
    /// done), so trickling header bytes does not extend it. While a body is
    /// read: when body bytes last arrived, so a body must keep flowing.
    pub waiting_since: Instant,
    /// The armed request timer. Invariant: `Some` while the connection is
    /// open, with a deadline no later than `waiting_since + header_timeout`.
    /// It re-arms itself for the remainder when it fires early instead of
    /// being reset per request, so a busy keep-alive connection costs no
    /// timer work.
    pub timer: Option<TimerId>,
    /// Where the connection is for `/basic_status`, as of the end of its
    /// last `data` call (or `drained`). Invariant: counted in the handler's
    /// `StatusCounts` under this phase.
    pub phase: Phase,
    /// No byte has arrived yet. A drain waits for such a connection's first
    /// request (`Handler::is_idle`): its client is about to send it, and
    /// would not retry it on a fresh connection.
    pub fresh: bool,
}

/// The answer to `method` on `path`.
pub fn route(path: &[u8], method: &[u8]) -> Answer {
    match (path, method) {
        (b"/", b"GET" | b"HEAD") => Answer::Fixed(&HELLO),
        (b"/", _) => Answer::Fixed(&METHOD_NOT_ALLOWED),
        (b"/basic_status", b"GET" | b"HEAD") => Answer::Status,
        (b"/basic_status", _) => Answer::Fixed(&METHOD_NOT_ALLOWED),
        (b"/healthz", b"GET" | b"HEAD") => Answer::Health,
        (b"/ip", b"GET" | b"HEAD") => Answer::Ip,
        (b"/healthz" | b"/ip", _) => Answer::Fixed(&METHOD_NOT_ALLOWED),
        // Any method echoes, so HEAD gets the headers GET would.
        (b"/echo", _) => Answer::Echo,
        _ => Answer::Fixed(&NOT_FOUND),
    }
}
