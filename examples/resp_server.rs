//! A small in-memory key-value server speaking RESP2 and RESP3, the Redis
//! protocols,
//! on the reactor. It exists to show that the library's public API carries a
//! real, pipelined, binary-safe protocol with bounded memory, and to be
//! pointed at real clients:
//!
//! ```text
//! cargo run --release --example resp_server -- --addr 127.0.0.1:6380
//! redis-cli -p 6380 set greeting hello
//! redis-benchmark -p 6380 -t ping,set,get -n 100000 -q -P 16
//! ```
//!
//! Commands: PING, ECHO, GET, SET (with NX, XX, GET, EX, PX, EXAT, PXAT,
//! KEEPTTL), SETNX, GETSET, GETDEL, MGET, MSET, APPEND, STRLEN, INCR, DECR,
//! INCRBY, DECRBY, DEL, EXISTS, EXPIRE, PEXPIRE, TTL, PTTL, PERSIST, TYPE,
//! KEYS, DBSIZE, FLUSHDB, INFO, HELLO, CLIENT (ID, GETNAME, SETNAME,
//! SETINFO, LIST, INFO, KILL), MULTI, EXEC, DISCARD, WATCH, UNWATCH, QUIT, SUBSCRIBE,
//! UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE, PUBLISH, RESET, and the parts of
//! CONFIG GET and COMMAND that `redis-cli` and `redis-benchmark` ask for at
//! start-up, and the SLOWLOG and LATENCY reads monitoring tools make
//! (empty: nothing is timed here). Replies and error texts follow Redis 7, in RESP2 or, after
//! `HELLO 3`, RESP3 (nulls, maps and pub/sub pushes in their RESP3 types).
//! Keys expire lazily, when next touched.
//!
//! Behind a load balancer, `--proxy-protocol` reads a PROXY header first
//! on every connection, `--reuse-port` lets a second instance share the address, and a socket
//! handed over by systemd (`LISTEN_FDS`) replaces `--addr`.
//!
//! Every command in one `data` call is executed in order and its reply
//! appended to one buffer that leaves in one write, so a pipeline of 16
//! commands costs one `sendmsg`. A protocol error is answered like Redis
//! answers it, after the replies to the commands before it, and closes the
//! connection. The query buffer is the reactor's input buffer, capped by
//! `--max-query` (`Config::max_input`).
//!
//! Memory per connection is bounded whatever the client asks for:
//!
//! * Input is processed only while the connection's output is below its
//!   high-water mark: once `Context::is_backpressured` says so, `data` stops
//!   after the command it ran and returns what it consumed; the reactor stops
//!   reading the socket and offers the rest again when the client has read
//!   enough. A client that pipelines thousands of large GETs and reads
//!   slowly (or never) is simply not read further; it is not disconnected.
//! * A large reply is produced piece by piece as the socket drains (see
//!   `pending.rs`): stored values are shared (`Rc`), so a reply holds a
//!   reference to the value, not a copy, and `Handler::drained` hands the
//!   next pieces over. The queued output of a normal client therefore stays
//!   near the high-water mark (`--max-output` / 4, at most 256 KiB) plus one
//!   piece, whether the reply is 100 bytes or `MGET big big ...` of 500 MB.
//! * Subscribers are the exception, as in Redis: messages published to them
//!   are queued at once, so a subscriber that does not read is disconnected
//!   by Redis's `pubsub` class limits (`--pubsub-hard-limit`, and
//!   `--pubsub-soft-limit` for `--pubsub-soft-seconds`), which SUBSCRIBE
//!   gives the connection with `Context::set_limits`.
//! * Buffers keep a bounded capacity once a large reply or command is done.
//!
//! What a deferred reply itself holds is proportional to the command, which
//! `--max-query` caps: a reference and a few header bytes per MGET key, and
//! for ECHO the unsent rest of the argument, copied out of the input. A
//! transaction's queued commands (MULTI ... EXEC) count against
//! `--max-query` too.
//!
//! This file is the entry: the flags, the per-connection state and the
//! `Handler` that drives it. The rest lives in `resp_server/`, one job a
//! module:
//!
//! * `parse.rs`: requests, multibulk and inline, parsed incrementally;
//! * `cmd.rs`: the command table and the checks before a command runs;
//! * `commands.rs`: the dispatch, and the small commands;
//! * `strings.rs`: SET and the commands that change values;
//! * `keys.rs`: expiry, KEYS (glob matching) and the other key-space
//!   commands;
//! * `info.rs`: INFO's sections, formatted;
//! * `status.rs`: what INFO reports, gathered from the loop and the key
//!   space, and CLIENT LIST, INFO and KILL;
//! * `metrics.rs`: the server's counters and sampled rates (INFO's
//!   `instantaneous_*`);
//! * `multi.rs`: MULTI/EXEC/DISCARD, queuing commands between them, and
//!   WATCH;
//! * `conn.rs`: a connection's session (protocol, id, name,
//!   subscriptions), HELLO and CLIENT;
//! * `store.rs`: the key space, with lazy expiry and shared values;
//! * `pubsub.rs`: channels, patterns, subscribers and the subscribed
//!   mode's limits;
//! * `reply.rs`: RESP2 and RESP3 reply encoders and shared error texts;
//! * `replies.rs`: where one `data` call's replies go (copied, streamed or
//!   deferred);
//! * `pending.rs`: the deferred rest of a reply, handed over as the socket
//!   drains.

#[path = "resp_server/cmd.rs"]
mod cmd;
#[path = "resp_server/commands.rs"]
mod commands;
#[path = "resp_server/conn.rs"]
mod conn;
#[path = "resp_server/info.rs"]
mod info;
#[path = "resp_server/keys.rs"]
mod keys;
#[path = "resp_server/metrics.rs"]
mod metrics;
#[path = "resp_server/multi.rs"]
mod multi;
#[path = "resp_server/parse.rs"]
mod parse;
#[path = "resp_server/pending.rs"]
mod pending;
#[path = "resp_server/pubsub.rs"]
mod pubsub;
#[path = "resp_server/replies.rs"]
mod replies;
#[path = "resp_server/reply.rs"]
mod reply;
#[path = "resp_server/status.rs"]
mod status;
#[path = "resp_server/store.rs"]
mod store;
#[path = "resp_server/strings.rs"]
mod strings;

#[path = "support/decimal.rs"]
mod decimal;
// Named apart from `metrics` (INFO's counters) above.
#[path = "support/listen.rs"]
mod listen;
#[path = "support/metrics.rs"]
mod prometheus_endpoint;
#[path = "support/server.rs"]
mod server;

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use reactor::{
    CloseReason, Config, ConnId, Context, Event, Fired, Handler, Limits, Reactor, SoftLimit,
    SourceId,
};

use commands::After;
use conn::Session;
use listen::ListenFlags;
use metrics::{Metrics, SAMPLE_EVERY};
use parse::{Parsed, Parser};
use pending::Pending;
use prometheus_endpoint::MetricsEndpoint;
use pubsub::PubSub;
use replies::{Replies, RETAINED};
use server::ShutdownSignals;
use store::{unix_ms, Store};

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(about = "In-memory RESP2/RESP3 key-value server on the reactor")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:6380")]
    addr: SocketAddr,
    /// Most bytes of unparsed input per client (the query buffer limit).
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_query: usize,
    /// Most bytes of replies queued per client. Replies are produced as the
    /// client reads, so this only sets the water marks (a quarter of it, at
    /// most 256 KiB, is where input processing pauses); no reply is too
    /// large for it.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_output: usize,
    /// Subscribers: queued messages past this many bytes disconnect at once
    /// (Redis's `client-output-buffer-limit pubsub` hard limit; 0: none).
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pubsub_hard_limit: usize,
    /// Subscribers: queued messages above this many bytes for
    /// `--pubsub-soft-seconds` disconnect (0: no soft limit).
    #[arg(long, default_value_t = 8 * 1024 * 1024)]
    pubsub_soft_limit: usize,
    /// How long a subscriber may stay above the soft limit.
    #[arg(long, default_value = "60", value_parser = server::seconds)]
    pubsub_soft_seconds: Duration,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    grace: Duration,
    /// Most concurrent connections (default: from the descriptor limit).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Serve Prometheus metrics (`GET /metrics`) on this address too.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    /// `--proxy-protocol`, `--reuse-port` (and socket activation):
    /// `support/listen.rs`.
    #[command(flatten)]
    listen: ListenFlags,
}

/// The server: the key space, channels, a reply buffer and the signal pipe.
struct RespServer {
    /// All keys, shared by every connection (the loop has one thread).
    store: Store,
    /// Channels and subscribers, and the limits of each class of
    /// connection.
    pubsub: PubSub,
    /// Small replies produced by one `data` call. Invariant: empty between
    /// callbacks, capacity at most `RETAINED` between them.
    out: Vec<u8>,
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
    /// `--metrics`: the Prometheus endpoint (inert without the flag).
    endpoint: MetricsEndpoint,
    /// The last CLIENT ID given out.
    last_id: u64,
    /// `--max-query`, which also caps a transaction's queued commands.
    max_query: usize,
    /// When the server started (INFO's uptime).
    started: std::time::Instant,
    /// Commands run, keyspace hits and misses, and the sampled rates.
    metrics: Metrics,
    /// The highest `used_memory` INFO has reported.
    peak: usize,
    /// INFO's `run_id`, `tcp_port` and `maxclients`.
    run_id: String,
    port: u16,
    max_clients: usize,
}

/// The tag of the timer that samples INFO's rates.
const SAMPLE_TIMER: u64 = 1;

/// Per-connection state.
#[derive(Debug, Default)]
struct RespConn {
    /// Incremental parser; holds offsets into this connection's input.
    parser: Parser,
    /// The rest of a reply the socket has not taken yet. Invariant: while it
    /// is not empty no further command is executed, and the connection is
    /// not subscribed.
    pending: Pending,
    /// Protocol, id, name and subscriptions (any subscription: the
    /// connection is in subscribed mode).
    session: Session,
    /// What ends the connection; `Ending::No` while it is served.
    ending: Ending,
}

/// How a connection is ending, when a reply may still be in progress.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
enum Ending {
    /// Serving.
    #[default]
    No,
    /// QUIT or a protocol error: close once `pending` is sent; the input
    /// after it is ignored.
    Close,
    /// The peer sent FIN: answer the complete commands it sent before, then
    /// close.
    PeerDone,
}

impl Handler for RespServer {
    type State = RespConn;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> RespConn {
        self.last_id += 1;
        let mut conn = RespConn::default();
        conn.session.id = self.last_id;
        conn
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut RespConn,
        input: &[u8],
    ) -> usize {
        // A reply in progress goes first; the input waits behind it. Only
        // a guard: the pump stops only at backpressure, the reactor offers
        // no input while a connection is backpressured, and it runs
        // `drained` (which pumps) before offering input again.
        if !st.pending.is_empty() {
            match st.pending.pump(ctx, conn) {
                Ok(true) => {}
                Ok(false) => return 0,
                // The connection is closed; `pump` forgot the rest.
                Err(_) => return input.len(),
            }
        }
        if st.ending == Ending::Close {
            ctx.close_after_flush(conn);
            return input.len();
        }
        if ctx.is_backpressured(conn) {
            return 0;
        }
        let now = unix_ms();
        let mut out = std::mem::take(&mut self.out);
        let modes = (st.session.subscribed(), st.session.resp3);
        let mut r = Replies::new(&mut *ctx, conn, &mut out, &mut st.pending, modes);
        let mut consumed = 0;
        let mut close = false;
        loop {
            let rest = &input[consumed..];
            match st.parser.parse(rest) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty(len)) => consumed += len,
                Ok(Parsed::Command(len)) => {
                    let frame = &rest[..len];
                    // The arguments as slices: on the stack for the usual
                    // few, so a command costs no allocation.
                    let argc = st.parser.argc();
                    let mut few: [&[u8]; 8] = [&[]; 8];
                    let many: Vec<&[u8]>;
                    let argv = if argc <= few.len() {
                        for (i, slot) in few.iter_mut().enumerate().take(argc) {
                            *slot = st.parser.arg(frame, i);
                        }
                        &few[..argc]
                    } else {
                        many = (0..argc).map(|i| st.parser.arg(frame, i)).collect();
                        &many[..]
                    };
                    self.metrics.commands += 1;
                    let after = self.run(&mut r, argv, &mut st.session, now);
                    // A huge command's argument table is not kept while
                    // the connection idles.
                    st.parser.finish();
                    consumed += len;
                    if after == After::Close {
                        close = true;
                        break;
                    }
                    r.reply_done();
                    // The client is not taking replies as fast as it sends
                    // commands: leave the rest of the input unconsumed; the
                    // reactor stops reading and offers it again after the
                    // drain (and `drained` has sent what is pending).
                    if r.blocked() {
                        break;
                    }
                }
                Err(e) => {
                    log::debug!("{conn}: {e}");
                    r.buf().extend_from_slice(e.reply().as_bytes());
                    close = true;
                    break;
                }
            }
        }
        r.flush();
        let gone = r.gone();
        out.clear();
        out.shrink_to(RETAINED);
        self.out = out;
        if gone {
            // Closed by a failed write (over the hard cap, or the peer went
            // away): nothing left to do for it.
            st.pending.clear();
            return input.len();
        }
        if close {
            if st.pending.is_empty() {
                ctx.close_after_flush(conn);
            } else {
                // The reply before the close is still being produced:
                // close once it is out, and read nothing more meanwhile.
                st.ending = Ending::Close;
                ctx.pause_reading(conn);
            }
            return input.len();
        }
        if st.ending == Ending::PeerDone && st.pending.is_empty() && !ctx.is_backpressured(conn) {
            // Every complete command the peer sent before its FIN is
            // answered (a command the FIN cut short never will be).
            ctx.close_after_flush(conn);
            return input.len();
        }
        consumed
    }

    /// The client read enough: continue the reply in progress. The input
    /// behind it is offered again after this returns.
    fn drained(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: &mut RespConn) {
        if st.pending.is_empty() {
            return;
        }
        // Not done yet waits for the next drain; a failed write closed the
        // connection, and `pump` forgot the rest.
        if let Ok(true) = st.pending.pump(ctx, conn) {
            match st.ending {
                Ending::No => {}
                Ending::Close => ctx.close_after_flush(conn),
                // `data` answers what is left of the input, then closes.
                Ending::PeerDone => ctx.wake(conn),
            }
        }
    }

    /// The client sent FIN: close once everything owed is written, which
    /// may include a reply still being produced and commands behind it.
    ///
    /// The reactor calls this once the input left was offered again with
    /// nothing holding it back (it waits for a drain first). `data` still
    /// declines input while a reply is in progress, so should one be
    /// unfinished here, the input may hold commands: `drained` wakes the
    /// connection once the reply is out, and `data` answers them before
    /// closing. This keeps the order whatever the reactor's timing.
    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: &mut RespConn) {
        if st.pending.is_empty() {
            ctx.close_after_flush(conn);
        } else {
            st.ending = Ending::PeerDone;
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, st: RespConn, _: CloseReason) {
        let mut session = st.session;
        self.unwatch_all(&mut session);
        self.pubsub.leave_all(&mut session, conn);
    }

    /// A graceful shutdown waits for a reply still being produced.
    fn is_idle(&self, st: &RespConn) -> bool {
        st.pending.is_empty()
    }

    /// INFO's rates: one sample every `SAMPLE_EVERY`, as Redis's cron
    /// takes them.
    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if fired.tag == SAMPLE_TIMER {
            let stats = ctx.stats();
            let (bytes_in, bytes_out) = (stats.bytes_in, stats.bytes_out);
            self.metrics.sample(ctx.now(), bytes_in, bytes_out);
            ctx.start_timer(SAMPLE_EVERY, SAMPLE_TIMER);
        }
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        if !self.endpoint.on_ready(ctx, source) {
            self.shutdown.on_ready(ctx, source);
        }
    }
}

fn main() -> ExitCode {
    server::run("resp_server", serve)
}

/// Redis's `client-output-buffer-limit pubsub` as reactor limits: a hard
/// cap and a soft limit with its time (0 turns either off, as in Redis);
/// the input cap stays the normal one.
fn pubsub_limits(args: &Args, normal: Limits) -> std::io::Result<Limits> {
    let hard = match args.pubsub_hard_limit {
        0 => usize::MAX,
        n => n,
    };
    let seconds = args.pubsub_soft_seconds;
    let limits = Limits {
        max_input: normal.max_input,
        soft_output: (args.pubsub_soft_limit > 0).then_some(SoftLimit {
            bytes: args.pubsub_soft_limit,
            duration: seconds,
        }),
        ..Limits::from_max_output(hard)
    };
    limits
        .validate()
        .map_err(|e| std::io::Error::other(format!("pub/sub limits: {e}")))?;
    Ok(limits)
}

fn serve(args: &Args) -> std::io::Result<()> {
    let mut config = Config {
        max_input: args.max_query,
        ..Config::default()
    };
    config.max_output = args.max_output;
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    args.listen.configure(&mut config);
    let normal_limits = config.limits();
    let handler = RespServer {
        store: Store::default(),
        pubsub: PubSub::new(normal_limits, pubsub_limits(args, normal_limits)?),
        out: Vec::with_capacity(RETAINED),
        shutdown: ShutdownSignals::new(args.grace)?,
        endpoint: MetricsEndpoint::bind(args.metrics)?,
        last_id: 0,
        max_query: args.max_query,
        started: std::time::Instant::now(),
        metrics: Metrics::default(),
        peak: 0,
        run_id: status::run_id(),
        port: 0,
        max_clients: config.max_connections,
    };
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| {
        // The first interval counts from now, so that commands before the
        // first tick are in a rate too.
        handler.metrics.sample(ctx.now(), 0, 0);
        ctx.start_timer(SAMPLE_EVERY, SAMPLE_TIMER);
        handler.shutdown.register(ctx)
    })?;
    let (listener, note) = listen::listen(&mut reactor, args.addr, args.listen.options())?;
    let local = reactor.local_addr(listener)?;
    reactor.handler_mut().port = local.port();
    eprintln!("resp_server listening on {local}{note}");
    // After the "listening on" line, which tests wait for first.
    reactor.with_context(|handler, ctx| handler.endpoint.register(ctx))?;
    reactor.run()?;
    let stats = reactor.stats();
    // The write count lets tests check that pipelined replies were batched.
    eprintln!(
        "resp_server stopped: {} accepted, {} keys, {} writes",
        stats.accepted,
        reactor.handler().store.len(),
        stats.write_syscalls
    );
    Ok(())
}
