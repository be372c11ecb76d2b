//! A small HTTP/1.1 server on the reactor: `GET /` answers `Hello, World!`,
//! with keep-alive, pipelining, request limits and a slowloris cut-off. It
//! exists to show that the library's public API carries a real protocol, and
//! to be pointed at real clients (curl, wrk).
//!
//! ```text
//! cargo run --release --example http_server -- --addr 127.0.0.1:8080
//! wrk -t1 -c50 -d5s http://127.0.0.1:8080/
//! wrk -t1 -c50 -d5s -s scripts/pipeline.lua http://127.0.0.1:8080/   # 16 per write
//! ```
//!
//! Behaviour, in the order a request meets it:
//!
//! * heads are parsed straight from the input slice (`http_server/parse.rs`);
//!   every complete request in one `data` call is answered, in order, into one
//!   buffer that leaves in one write;
//! * a head over 8 KiB gets `431`, a malformed one `400`, a version other
//!   than 1.0/1.1 `505`, a transfer coding other than `chunked` `501`, a
//!   body over 1 MiB `413`; each of those closes the connection after the
//!   response is flushed;
//! * a body within the limit, `Content-Length` or chunked
//!   (`http_server/chunked.rs`), is read and discarded as it arrives (never
//!   buffered), so the next pipelined request is found after it. A chunked
//!   request is answered when its body ends, since only then is its size
//!   known;
//! * HTTP/1.1 keeps the connection open unless `Connection: close`; HTTP/1.0
//!   closes unless `Connection: keep-alive`;
//! * a head not complete within `--header-timeout` seconds of the wait for
//!   it beginning (connection open, or previous request done) closes the
//!   connection: slowloris protection that doubles as a keep-alive timeout.
//!   A body that stalls for as long (no bytes for `--header-timeout`) is cut
//!   off the same way;
//! * SIGINT/SIGTERM drain: listeners close, responses from then on carry
//!   `Connection: close`, idle keep-alive connections are closed by the
//!   reactor, a request whose body is still arriving is let finish
//!   (`Handler::is_idle`), and the process exits 0. A second signal stops
//!   at once.

#[path = "http_server/chunked.rs"]
mod chunked;
#[path = "http_server/parse.rs"]
mod parse;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use reactor::{Config, ConnId, Context, Event, Fired, Handler, Reactor, SourceId, TimerId};

#[path = "support/decimal.rs"]
mod decimal;
#[path = "support/server.rs"]
mod server;
use decimal::push_decimal;
use server::ShutdownSignals;

use chunked::ChunkError;
use parse::{HeadError, TransferCoding, HTTP_DATE_LEN};

/// Largest request body read (and discarded); larger ones get `413`.
const MAX_BODY: u64 = 1024 * 1024;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "HTTP/1.1 hello-world server on the reactor")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8080")]
    addr: SocketAddr,
    /// Seconds a client has to complete a request head (slowloris cut-off;
    /// also the keep-alive idle limit and the longest pause inside a body).
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    header_timeout: Duration,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    grace: Duration,
    /// Most concurrent connections (default: from the descriptor limit).
    #[arg(long)]
    max_connections: Option<usize>,
}

/// What the bytes after the current head are.
#[derive(Debug)]
enum Body {
    /// No body in progress: the next bytes start a request head.
    None,
    /// A `Content-Length` body: this many bytes are still to come and are
    /// discarded as they arrive. Invariant: non-zero. Its response was
    /// already written when the head was read (the length was checked then).
    Length(u64),
    /// A chunked body being discarded, and the response to write when it
    /// ends. The response waits because only the end can tell a body over
    /// the limit (`413`) from one within it; order is kept because no later
    /// request is parsed before the body ends.
    Chunked(chunked::Chunked, Pending),
}

/// A request's response as decided from its head: written at once for a
/// `Content-Length` request, or when its body ends for a chunked one.
#[derive(Debug, Clone, Copy)]
struct Pending {
    /// What to answer.
    reply: &'static Reply,
    /// Not a HEAD request.
    send_body: bool,
    /// The client asked to keep the connection (before any drain began).
    keep_alive: bool,
    /// The request's minor version.
    minor: u8,
}

/// One connection's place in the request stream.
#[derive(Debug)]
struct HttpConn {
    /// Whether body bytes are expected before the next head.
    body: Body,
    /// The instant the request timeout counts from. While a head is awaited:
    /// when the wait for it began (connection opened or previous request
    /// done), so trickling header bytes does not extend it. While a body is
    /// read: when body bytes last arrived, so a body must keep flowing.
    waiting_since: Instant,
    /// The armed request timer. Invariant: `Some` while the connection is
    /// open, with a deadline no later than `waiting_since + header_timeout`.
    /// It re-arms itself for the remainder when it fires early instead of
    /// being reset per request, so a busy keep-alive connection costs no
    /// timer work.
    timer: Option<TimerId>,
}

/// Answers requests and turns signals into a graceful shutdown.
struct HttpServer {
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
    /// How long a request head may take.
    header_timeout: Duration,
    /// Set by `shutdown_started`: every response from then on says
    /// `Connection: close` and closes its connection.
    draining: bool,
    /// The current `Date` value, refreshed at most once per second.
    date: [u8; HTTP_DATE_LEN],
    /// When `date` goes stale: the next whole second of the wall clock, as
    /// a turn-clock instant (so the check costs no clock read).
    date_valid_until: Instant,
    /// The response being encoded, handed to `ctx.write` as soon as it is
    /// complete. The loop batches: the responses to one `data` call's
    /// pipelined requests leave in one system call. Invariant: empty
    /// between responses; its capacity is reused.
    out: Vec<u8>,
}

/// What to answer: status line text and body.
#[derive(Debug)]
struct Reply {
    /// Code and reason phrase, e.g. `200 OK`.
    status: &'static str,
    /// The body (also sized for `HEAD`, which sends none).
    body: &'static [u8],
    /// Extra header lines, each ending in CRLF.
    extra: &'static str,
}

const HELLO: Reply = Reply {
    status: "200 OK",
    body: b"Hello, World!",
    extra: "",
};
const NOT_FOUND: Reply = Reply {
    status: "404 Not Found",
    body: b"Not Found\n",
    extra: "",
};
const METHOD_NOT_ALLOWED: Reply = Reply {
    status: "405 Method Not Allowed",
    body: b"Method Not Allowed\n",
    extra: "Allow: GET, HEAD\r\n",
};
const BAD_REQUEST: Reply = Reply {
    status: "400 Bad Request",
    body: b"Bad Request\n",
    extra: "",
};
const HEAD_TOO_LARGE: Reply = Reply {
    status: "431 Request Header Fields Too Large",
    body: b"Request Header Fields Too Large\n",
    extra: "",
};
const BODY_TOO_LARGE: Reply = Reply {
    status: "413 Content Too Large",
    body: b"Content Too Large\n",
    extra: "",
};
const NOT_IMPLEMENTED: Reply = Reply {
    status: "501 Not Implemented",
    body: b"Only the chunked transfer coding is supported\n",
    extra: "",
};
const BAD_VERSION: Reply = Reply {
    status: "505 HTTP Version Not Supported",
    body: b"HTTP Version Not Supported\n",
    extra: "",
};

impl HttpServer {
    /// Re-formats `Date` if the wall clock has passed into a new second.
    fn refresh_date(&mut self, now: Instant) {
        if now < self.date_valid_until {
            return;
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.date = parse::http_date(since_epoch.as_secs());
        let to_next_second =
            Duration::from_nanos(1_000_000_000 - u64::from(since_epoch.subsec_nanos()));
        self.date_valid_until = now + to_next_second;
    }

    /// Appends the response to a request that was read whole; returns
    /// whether the connection stays open (the client asked for keep-alive
    /// and no drain has begun).
    fn answer(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, pending: Pending) -> bool {
        let keep_alive = pending.keep_alive && !self.draining;
        let reply = (pending.reply, pending.send_body);
        self.respond(ctx, conn, reply, keep_alive, pending.minor) && keep_alive
    }

    /// Writes one response (with its body if `reply.1`). `keep_alive: false`
    /// adds `Connection: close`; an HTTP/1.0 client that asked for
    /// keep-alive is told it got it. Returns whether the connection took it
    /// (a failed write has closed the connection; `closed` says why).
    fn respond(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        (reply, send_body): (&Reply, bool),
        keep_alive: bool,
        minor: u8,
    ) -> bool {
        let out = &mut self.out;
        out.extend_from_slice(b"HTTP/1.1 ");
        out.extend_from_slice(reply.status.as_bytes());
        out.extend_from_slice(b"\r\nServer: reactor\r\nDate: ");
        out.extend_from_slice(&self.date);
        out.extend_from_slice(b"\r\nContent-Type: text/plain\r\n");
        out.extend_from_slice(reply.extra.as_bytes());
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(out, reply.body.len() as u64);
        out.extend_from_slice(b"\r\n");
        if !keep_alive {
            out.extend_from_slice(b"Connection: close\r\n");
        } else if minor == 0 {
            out.extend_from_slice(b"Connection: keep-alive\r\n");
        }
        out.extend_from_slice(b"\r\n");
        if send_body {
            out.extend_from_slice(reply.body);
        }
        let written = ctx.write(conn, out).is_ok();
        out.clear();
        written
    }
}

impl Handler for HttpServer {
    type State = HttpConn;
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) -> HttpConn {
        HttpConn {
            body: Body::None,
            waiting_since: ctx.now(),
            timer: Some(ctx.start_conn_timer(conn, self.header_timeout, 0)),
        }
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut HttpConn,
        input: &[u8],
    ) -> usize {
        let now = ctx.now();
        self.refresh_date(now);
        let mut pos = 0;
        let mut close = false;
        loop {
            match &mut st.body {
                Body::None => {}
                Body::Length(left) => {
                    let take = (*left).min((input.len() - pos) as u64);
                    pos += take as usize;
                    *left -= take;
                    // Body progress (or its end, when the next head's wait
                    // begins) restarts the clock.
                    st.waiting_since = now;
                    if *left > 0 {
                        break;
                    }
                    st.body = Body::None;
                }
                Body::Chunked(chunks, pending) => match chunks.feed(&input[pos..], MAX_BODY) {
                    Ok((used, done)) => {
                        pos += used;
                        if used > 0 {
                            st.waiting_since = now;
                        }
                        if !done {
                            break;
                        }
                        let pending = *pending;
                        st.body = Body::None;
                        if !self.answer(ctx, conn, pending) {
                            close = true;
                            break;
                        }
                    }
                    Err(e) => {
                        let reply = match e {
                            ChunkError::TooLarge => &BODY_TOO_LARGE,
                            ChunkError::Malformed(why) => {
                                log::debug!("{conn}: 400: {why}");
                                &BAD_REQUEST
                            }
                        };
                        self.respond(ctx, conn, (reply, pending.send_body), false, pending.minor);
                        close = true;
                        break;
                    }
                },
            }
            if pos == input.len() {
                break;
            }
            let head = match parse::parse_head(&input[pos..]) {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(e) => {
                    let reply = match e {
                        HeadError::Malformed(why) => {
                            log::debug!("{conn}: 400: {why}");
                            &BAD_REQUEST
                        }
                        HeadError::TooLarge => &HEAD_TOO_LARGE,
                        HeadError::Version => &BAD_VERSION,
                    };
                    self.respond(ctx, conn, (reply, true), false, 1);
                    close = true;
                    break;
                }
            };
            pos += head.len;
            st.waiting_since = now;
            let send_body = head.method != b"HEAD";
            if head.transfer_coding == TransferCoding::Other {
                self.respond(ctx, conn, (&NOT_IMPLEMENTED, send_body), false, head.minor);
                close = true;
                break;
            }
            if head.content_length > MAX_BODY {
                self.respond(ctx, conn, (&BODY_TOO_LARGE, send_body), false, head.minor);
                close = true;
                break;
            }
            let path = head.target.split(|&b| b == b'?').next().unwrap_or_default();
            let reply = match (path, head.method) {
                (b"/", b"GET" | b"HEAD") => &HELLO,
                (b"/", _) => &METHOD_NOT_ALLOWED,
                _ => &NOT_FOUND,
            };
            let pending = Pending {
                reply,
                send_body,
                keep_alive: head.keep_alive,
                minor: head.minor,
            };
            if head.transfer_coding == TransferCoding::Chunked {
                st.body = Body::Chunked(chunked::Chunked::default(), pending);
                continue;
            }
            if !self.answer(ctx, conn, pending) {
                close = true;
                break;
            }
            if head.content_length > 0 {
                st.body = Body::Length(head.content_length);
            }
        }
        if close {
            ctx.close_after_flush(conn);
            return input.len();
        }
        pos
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        let Some(conn) = fired.conn else {
            return;
        };
        let now = ctx.now();
        let timeout = self.header_timeout;
        let queued = ctx.queued_output(conn).unwrap_or(0);
        let Some(st) = ctx.state_mut(conn) else {
            return;
        };
        if st.timer != Some(fired.timer) {
            return;
        }
        st.timer = None;
        let deadline = st.waiting_since + timeout;
        if deadline <= now {
            log::debug!("{conn}: request not received within {timeout:?}");
            if queued > 0 {
                // A client that does not read could hold a flush forever.
                ctx.close(conn);
            } else {
                ctx.close_after_flush(conn);
            }
        } else {
            let timer = ctx.start_conn_timer(conn, deadline - now, 0);
            if let Some(st) = ctx.state_mut(conn) {
                st.timer = Some(timer);
            }
        }
    }

    fn shutdown_started(&mut self, _: &mut Context<'_, Self>) {
        self.draining = true;
    }

    /// A body being discarded leaves nothing buffered, so only this tells
    /// the drain that a request is still arriving: let it finish.
    fn is_idle(&self, st: &HttpConn) -> bool {
        matches!(st.body, Body::None)
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        self.shutdown.on_ready(ctx, source);
    }
}

fn main() -> ExitCode {
    server::run("http_server", serve)
}

fn serve(args: &Args) -> std::io::Result<()> {
    let mut config = Config::default();
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    let handler = HttpServer {
        shutdown: ShutdownSignals::new(args.grace)?,
        header_timeout: args.header_timeout,
        draining: false,
        date: parse::http_date(0),
        date_valid_until: Instant::now(),
        out: Vec::with_capacity(16 * 1024),
    };
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let listener = reactor.listen(args.addr)?;
    eprintln!("http_server listening on {}", reactor.local_addr(listener)?);
    reactor.run()?;
    let stats = reactor.stats();
    // The write count lets tests check that pipelined responses were batched.
    eprintln!(
        "http_server stopped: {} accepted, {} bytes out, {} writes",
        stats.accepted, stats.bytes_out, stats.write_syscalls
    );
    Ok(())
}
