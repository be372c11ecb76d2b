//! A small HTTP/1.1 server on the reactor: `GET /` answers `Hello, World!`,
//! `/echo` answers with the request's body, `/basic_status` with nginx's
//! `stub_status` page (`http_server/status.rs`), with keep-alive, pipelining,
//! `Expect: 100-continue`, request limits and a slowloris cut-off. It exists
//! to show that the library's public API carries a real protocol, and to be
//! pointed at real clients (curl, wrk, h2load, ab).
//!
//! ```text
//! cargo run --release --example http_server -- --addr 127.0.0.1:8080
//! wrk -t1 -c50 -d5s http://127.0.0.1:8080/
//! wrk -t1 -c50 -d5s -s scripts/pipeline.lua http://127.0.0.1:8080/   # 16 per write
//! curl --data-binary @file http://127.0.0.1:8080/echo
//! ```
//!
//! Behaviour, in the order a request meets it:
//!
//! * heads are parsed straight from the input slice (`http_server/parse.rs`);
//!   every complete request in one `data` call is answered, in order, one
//!   `ctx.write` per response, which the reactor sends together in one
//!   system call (until the connection's output is backpressured: the rest
//!   waits until it drains);
//! * the target may be origin-form or absolute-form (`http://host/p`, whose
//!   path is routed on); any `HTTP/1.x` from 1.1 up is served as 1.1;
//! * a head over 8 KiB gets `431`, a malformed one `400` (among them
//!   `Transfer-Encoding` in HTTP/1.0, together with `Content-Length`, or
//!   without `chunked` last: framings another server might read otherwise),
//!   another major version `505`, codings before `chunked` `501`, an
//!   `Expect` other than `100-continue` `417`, a body over 1 MiB `413`; each
//!   of those closes the connection after the response is flushed;
//! * a body within the limit, `Content-Length` or chunked
//!   (`http_server/chunked.rs`), is consumed as it arrives, across reads:
//!   kept for `/echo` (at most the 1 MiB limit), else discarded, so the next
//!   pipelined request is found after it. An echo or chunked request is
//!   answered when its body ends, since only then is its content (or size)
//!   known; a body the client holds back with `Expect: 100-continue` gets
//!   `100 Continue` first, or, if the request is refused anyway, the final
//!   answer and a close;
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
//!   (`Handler::is_idle`), as is a connection that has sent nothing yet,
//!   and the process exits 0. A second signal stops at once. With
//!   `--drain-delay`, the drain comes first: `/healthz` answers 503 and
//!   responses carry `Connection: close`, while the listener stays open,
//!   for that many seconds (or until a second signal).
//!
//! Behind a load balancer (docs/deploy.md): `GET /healthz` (200 `ok`, 503
//! `draining`), `GET /ip` (the client address believed, from the PROXY
//! header with `--proxy-protocol`), `--reuse-port`, and systemd socket
//! activation (`LISTEN_FDS`) instead of `--addr` (`support/listen.rs`).
//!
//! HTTPS (built with `--features tls`): `--tls-cert` and `--tls-key` make it
//! listen for TLS instead, on the same `--addr`, offering ALPN `http/1.1`.
//! The pair may be repeated (the first is the default certificate, the
//! others are chosen by SNI), and SIGHUP re-reads the files.
//!
//! ```text
//! cargo run --release --features tls --example http_server -- \
//!     --tls-cert site.crt --tls-key site.key
//! curl --cacert ca.crt https://localhost:8080/ --resolve localhost:8080:127.0.0.1
//! ```

#[path = "http_server/chunked.rs"]
mod chunked;
#[path = "http_server/conn.rs"]
mod conn;
#[path = "http_server/date.rs"]
mod date;
#[path = "http_server/parse.rs"]
mod parse;
#[path = "http_server/reply.rs"]
mod reply;
#[path = "http_server/request.rs"]
mod request;
#[path = "http_server/status.rs"]
mod status;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use clap::Parser;
use reactor::{CloseReason, Config, ConnId, Context, Event, Fired, Handler, Reactor, SourceId};

#[path = "support/decimal.rs"]
mod decimal;
#[path = "support/listen.rs"]
mod listen;
#[path = "support/loops.rs"]
mod loops;
#[path = "support/metrics.rs"]
mod metrics;
#[path = "support/server.rs"]
mod server;
#[path = "support/tls.rs"]
mod tls;
use listen::ListenFlags;
use metrics::MetricsEndpoint;
use server::ShutdownSignals;
use tls::TlsFlags;

use chunked::ChunkError;
use conn::{route, Answer, Body, HttpConn, Pending, KEEP_ECHO_CAPACITY};
use date::HTTP_DATE_LEN;
use parse::{Expect, HeadError, TransferCoding};
use reply::{
    Reply, Response, BAD_REQUEST, BAD_VERSION, BODY_TOO_LARGE, CONTINUE, DRAINING,
    EXPECTATION_FAILED, HEAD_TOO_LARGE, HEALTHY, NOT_IMPLEMENTED,
};
use status::{Phase, StatusCounts};

/// Largest request body read (echoed or discarded); larger ones get `413`.
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
    /// Serve Prometheus metrics (`GET /metrics`) on this address too.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// Seconds between the first SIGTERM/SIGINT and the graceful shutdown:
    /// meanwhile `/healthz` answers 503 (so a load balancer takes this
    /// instance out) while requests are still served and the listener
    /// stays open. A second signal ends the delay early.
    #[arg(long, default_value = "0", value_name = "SECONDS", value_parser = server::seconds)]
    drain_delay: Duration,
    #[command(flatten)]
    listen: ListenFlags,
    #[command(flatten)]
    tls: TlsFlags,
    /// `--threads N`, `--hand-off`.
    #[command(flatten)]
    loops: loops::LoopFlags,
}

/// Answers requests and turns signals into a graceful shutdown.
struct HttpServer {
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    /// SIGHUP, with TLS: reload the certificates.
    shutdown: ShutdownSignals,
    /// `--metrics`: the Prometheus endpoint (inert without the flag).
    metrics: MetricsEndpoint,
    /// How long a request head may take.
    header_timeout: Duration,
    /// Set when a signal starts the drain (its delay, if any, or the
    /// graceful shutdown): `/healthz` answers 503, and every response from
    /// then on says `Connection: close` and closes its connection. During
    /// the delay that moves keep-alive clients (and a balancer's pooled
    /// connections) to reconnect, through the balancer, to an instance
    /// that stays, rather than holding on to this one until it closes.
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
    /// Connections per phase and requests answered, for `/basic_status`.
    status: StatusCounts,
    /// The `/basic_status` page being answered; kept for its capacity.
    /// Invariant: empty between responses.
    status_page: Vec<u8>,
}

impl HttpServer {
    /// Re-formats `Date` if the wall clock has passed into a new second.
    fn refresh_date(&mut self, now: Instant) {
        if now < self.date_valid_until {
            return;
        }
        let since_epoch = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default();
        self.date = date::http_date(since_epoch.as_secs());
        let to_next_second =
            Duration::from_nanos(1_000_000_000 - u64::from(since_epoch.subsec_nanos()));
        self.date_valid_until = now + to_next_second;
    }

    /// Writes the response to a request that was read whole (for `/echo`,
    /// the body in `st.echo`, which is then emptied); returns whether the
    /// connection stays open (the client asked for keep-alive and no drain
    /// has begun).
    fn answer(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut HttpConn,
        pending: Pending,
    ) -> bool {
        let keep_alive = pending.keep_alive && !self.draining;
        self.status.requests += 1;
        // The page's buffer, taken out of `self` for the time `respond`
        // borrows it (other routes leave it: `Vec::new` costs nothing).
        let mut page = Vec::new();
        let response = match pending.answer {
            Answer::Fixed(reply) => Response::fixed(reply, pending.send_body),
            Answer::Health if self.draining => Response::fixed(&DRAINING, pending.send_body),
            Answer::Health => Response::fixed(&HEALTHY, pending.send_body),
            Answer::Ip => {
                use std::io::Write as _;
                page = std::mem::take(&mut self.status_page);
                // Behind `--proxy-protocol`, the address the header named.
                match ctx.peer_addr(conn) {
                    Some(peer) => writeln!(page, "{peer}").expect("a Vec takes any write"),
                    None => page.extend_from_slice(b"unknown\n"),
                }
                Response {
                    status: "200 OK",
                    content_type: b"text/plain",
                    extra: "",
                    body: &page,
                    send_body: pending.send_body,
                }
            }
            Answer::Echo => Response {
                status: "200 OK",
                content_type: &st.echo_type,
                extra: "",
                body: &st.echo,
                send_body: pending.send_body,
            },
            Answer::Status => {
                page = std::mem::take(&mut self.status_page);
                self.status.render(&mut page, ctx.stats(), st.phase);
                Response {
                    status: "200 OK",
                    content_type: b"text/plain",
                    extra: "",
                    body: &page,
                    send_body: pending.send_body,
                }
            }
        };
        let written = self.respond(ctx, conn, response, keep_alive, pending.minor);
        if let Answer::Status | Answer::Ip = pending.answer {
            page.clear();
            self.status_page = page;
        }
        st.echo.clear();
        if st.echo.capacity() > KEEP_ECHO_CAPACITY {
            st.echo = Vec::new();
        }
        written && keep_alive
    }

    /// Writes one response. Returns whether the connection took it (a
    /// failed write has closed the connection; `closed` says why).
    fn respond(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        response: Response<'_>,
        keep_alive: bool,
        minor: u8,
    ) -> bool {
        // A large body goes to the connection straight from where it is,
        // rather than through `out`, which would keep its capacity.
        let separate = response.send_body && response.body.len() > KEEP_ECHO_CAPACITY;
        let head_only = Response {
            send_body: response.send_body && !separate,
            ..response
        };
        head_only.encode(&mut self.out, &self.date, keep_alive, minor);
        let mut written = ctx.write(conn, &self.out).is_ok();
        self.out.clear();
        if written && separate {
            written = ctx.write(conn, response.body).is_ok();
        }
        written
    }

    /// Writes a fixed refusal with `Connection: close`; the caller closes.
    fn refuse(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        reply: &'static Reply,
        send_body: bool,
        minor: u8,
    ) {
        self.status.requests += 1;
        self.respond(ctx, conn, Response::fixed(reply, send_body), false, minor);
    }
}

impl Handler for HttpServer {
    type State = HttpConn;
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) -> HttpConn {
        HttpConn {
            body: Body::None,
            echo: Vec::new(),
            echo_type: Vec::new(),
            waiting_since: ctx.now(),
            timer: Some(ctx.start_conn_timer(conn, self.header_timeout, 0)),
            phase: self.status.opened(),
            fresh: true,
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, st: HttpConn, _: CloseReason) {
        self.status.closed(st.phase);
    }

    /// A response held back by a slow reader has left (enough of it): the
    /// connection is idle unless a body is still arriving; unconsumed input,
    /// if any, is offered next and sets the phase again.
    fn drained(&mut self, _: &mut Context<'_, Self>, _: ConnId, st: &mut HttpConn) {
        let phase = match st.body {
            Body::None => Phase::Waiting,
            _ => Phase::Writing,
        };
        self.status.enter(&mut st.phase, phase);
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
        st.fresh = false;
        let mut pos = 0;
        use request::Next;
        let close = loop {
            // The body of the request in progress, if any; then the next head.
            let (used, next) = self.feed_body(ctx, conn, st, &input[pos..], now);
            pos += used;
            match next {
                Next::Go => {}
                Next::Wait => break false,
                Next::Close => break true,
            }
            // A client that pipelines faster than it reads waits here: the
            // rest of its input is offered again once its output drains.
            if pos == input.len() || ctx.is_backpressured(conn) {
                break false;
            }
            let (used, next) = self.start_request(ctx, conn, st, &input[pos..], now);
            pos += used;
            match next {
                Next::Go => {}
                Next::Wait => break false,
                Next::Close => break true,
            }
        };
        // One compare per call, not per request, keeps /basic_status's
        // counts; it matches nginx's phases as of the end of this input.
        let phase = if close || !matches!(st.body, Body::None) || ctx.is_backpressured(conn) {
            Phase::Writing
        } else if pos < input.len() {
            Phase::Reading
        } else {
            Phase::Waiting
        };
        self.status.enter(&mut st.phase, phase);
        if close {
            ctx.close_after_flush(conn);
            return input.len();
        }
        pos
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if self.shutdown.on_timer(ctx, &fired) {
            return;
        }
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

    /// A body being read leaves nothing in the reactor's input buffer (it
    /// is discarded, or kept in `HttpConn::echo`), so only this tells the
    /// drain that a request is still arriving: let it finish. A connection
    /// that has sent nothing yet is waited for too: it was accepted just
    /// before the listener closed, its client is sending the first request
    /// now, and a client retries a request that fails only on a reused
    /// connection, not on a fresh one. The header timeout bounds the wait.
    fn is_idle(&self, st: &HttpConn) -> bool {
        matches!(st.body, Body::None) && !st.fresh
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        if !self.metrics.on_ready(ctx, source) {
            self.shutdown.on_ready(ctx, source);
            self.draining |= self.shutdown.is_draining();
        }
    }

    /// `--threads` with `--metrics`: loop 0 registers its endpoint here, on
    /// the turn `serve_loops` wakes it for after the "listening on" line
    /// (one check per turn afterwards; single-loop `serve` registered it).
    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        self.metrics.register_late(ctx);
    }
}

fn main() -> ExitCode {
    server::run("http_server", serve)
}

fn serve(args: &Args) -> std::io::Result<()> {
    args.tls.check::<Args>();
    let tls = args.tls.load(&[b"http/1.1"])?;
    let mut config = Config::default();
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    args.tls.configure(&mut config);
    args.listen.configure(&mut config);
    if args.loops.many() {
        return serve_loops(args, config, tls.is_some());
    }
    let handler = HttpServer {
        shutdown: tls::signals(args.grace, tls.as_ref())?.with_drain_delay(args.drain_delay),
        metrics: MetricsEndpoint::bind(args.metrics)?,
        header_timeout: args.header_timeout,
        draining: false,
        date: date::http_date(0),
        date_valid_until: Instant::now(),
        out: Vec::with_capacity(16 * 1024),
        status: StatusCounts::default(),
        status_page: Vec::new(),
    };
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let mut options = args.listen.options();
    let tls_note = tls::apply(&mut options, tls.as_ref());
    let (listener, note) = listen::listen(&mut reactor, args.addr, options)?;
    eprintln!(
        "http_server listening on {}{note}{tls_note}",
        reactor.local_addr(listener)?
    );
    // After the "listening on" line, which tests wait for first.
    reactor.with_context(|handler, ctx| handler.metrics.register(ctx))?;
    reactor.run()?;
    let stats = reactor.stats();
    // The write count lets tests check that pipelined responses were batched.
    // With TLS, bytes are counted on the socket: records, not plaintext.
    let tls_note = tls.as_ref().map_or(String::new(), |_| {
        format!(
            ", {} TLS handshakes, {} failed",
            stats.tls_handshakes, stats.tls_handshake_failures
        )
    });
    eprintln!(
        "http_server stopped: {} accepted, {} bytes out, {} writes{tls_note}",
        stats.accepted, stats.bytes_out, stats.write_syscalls
    );
    Ok(())
}

/// `--threads N` (`--hand-off`): N loops, each with its own `HttpServer`,
/// signals taken by a thread of their own (`support/loops.rs`). Plain TCP
/// only; `/basic_status` counts the loop that answers it. With `--metrics`,
/// loop 0 serves every loop's figures, labelled by loop
/// (`support/metrics.rs`).
fn serve_loops(args: &Args, config: Config, tls: bool) -> std::io::Result<()> {
    // What serves one loop only, refused rather than half-served.
    loops::refuse_one_loop_only(
        tls,
        &[
            (!args.drain_delay.is_zero(), "--drain-delay"),
            (args.listen.proxy_protocol, "--proxy-protocol"),
        ],
    )?;
    let header_timeout = args.header_timeout;
    // Bound here, so a bad address fails before any loop starts; loop 0's
    // factory takes it.
    let endpoint = std::sync::Mutex::new(Some(MetricsEndpoint::bind(args.metrics)?));
    // The same handler `serve` builds, without a signal pipe.
    let factory = move |_, peers: &_| HttpServer {
        shutdown: ShutdownSignals::none(),
        metrics: metrics::for_loop(&endpoint, peers),
        header_timeout,
        draining: false,
        date: date::http_date(0),
        date_valid_until: Instant::now(),
        out: Vec::with_capacity(16 * 1024),
        status: StatusCounts::default(),
        status_page: Vec::new(),
    };
    let name = "http_server";
    // A turn for loop 0, whose `before_sleep` registers the endpoint.
    let wake = |all: &reactor::LoopsHandle<()>| {
        let _ = all.send(0, ());
    };
    let (flags, grace) = (&args.loops, args.grace);
    let stats = loops::serve_with(name, flags, args.addr, config, grace, factory, wake)?;
    eprintln!(
        "http_server stopped: {} accepted, {} bytes out, {} writes",
        stats.accepted + stats.adopted,
        stats.bytes_out,
        stats.write_syscalls
    );
    Ok(())
}
