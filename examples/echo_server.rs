//! The echo server of the texts this project grew from, rebuilt on the reactor: every byte a client sends
//! comes back, for thousands of clients at once on one thread.
//!
//! ```text
//! cargo run --release --example echo_server -- --addr 127.0.0.1:65432
//! RUST_LOG=reactor=trace cargo run --example echo_server   # watch the loop
//! ```
//!
//! SIGINT or SIGTERM starts a graceful shutdown: the listener closes (new
//! connections are refused), data already received is echoed in full, idle
//! connections close, and the process exits 0. A second signal stops at once.
//!
//! Behind a load balancer: `--proxy-protocol` reads a PROXY header (v1 or
//! v2) first on every connection, `--reuse-port` lets a second instance
//! share the address, and a listening socket handed over by systemd
//! (`LISTEN_FDS`) is used instead of `--addr` (docs/deploy.md).
//! `--threads N` runs N loops, one thread each, each listening on the
//! address with `SO_REUSEPORT` (`--hand-off`: one thread accepts and hands
//! each connection to the least-loaded loop); see `reactor::Loops`.
//!
//! ```text
//! cargo run --release --example echo_server -- --threads 4
//! ```
//!
//! TLS (built with `--features tls`): `--tls-cert` and `--tls-key` make it
//! listen for TLS instead, on the same `--addr`, with no ALPN. The pair may
//! be repeated: the first is the default certificate, the others are chosen
//! by the name the client asks for (SNI). SIGHUP re-reads the files; if any
//! of them cannot be used, the certificates in force stay.
//!
//! ```text
//! cargo run --release --features tls --example echo_server -- \
//!     --tls-cert site.crt --tls-key site.key
//! openssl s_client -connect 127.0.0.1:65432 -CAfile ca.crt -servername localhost -quiet
//! ```

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::{CloseReason, Config, ConnId, Context, Event, Handler, Reactor, SourceId};

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

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Echo server on the reactor")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:65432")]
    addr: SocketAddr,
    /// Most concurrent connections (default: from the descriptor limit).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Close connections idle for this many seconds.
    #[arg(long, value_parser = server::seconds)]
    idle_timeout: Option<Duration>,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    grace: Duration,
    /// Serve Prometheus metrics (`GET /metrics`) on this address too.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    listen: ListenFlags,
    #[command(flatten)]
    tls: TlsFlags,
    #[command(flatten)]
    loops: loops::LoopFlags,
}

/// Echoes input and turns signals into a graceful shutdown.
struct EchoServer {
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    /// SIGHUP, with TLS: reload the certificates.
    shutdown: ShutdownSignals,
    /// `--metrics`: the Prometheus endpoint (inert without the flag).
    metrics: MetricsEndpoint,
}

impl Handler for EchoServer {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, conn: ConnId, peer: SocketAddr) {
        log::info!("connected by {peer} ({conn})");
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        // Echo everything. A failed write has closed the connection (its
        // output cap, or it was gone); `closed` logs why.
        ctx.write(conn, input).map_or(0, |()| input.len())
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        log::info!("{conn} closed: {reason}");
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        if !self.metrics.on_ready(ctx, source) {
            self.shutdown.on_ready(ctx, source);
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
    server::run("echo_server", serve)
}

fn serve(args: &Args) -> std::io::Result<()> {
    args.tls.check::<Args>();
    let tls = args.tls.load(&[])?;
    let mut config = Config::default();
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    config.idle_timeout = args.idle_timeout;
    args.tls.configure(&mut config);
    args.listen.configure(&mut config);
    if args.loops.many() {
        return serve_loops(args, config, tls.is_some());
    }
    let handler = EchoServer {
        shutdown: tls::signals(args.grace, tls.as_ref())?,
        metrics: MetricsEndpoint::bind(args.metrics)?,
    };
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let mut options = args.listen.options();
    let tls_note = tls::apply(&mut options, tls.as_ref());
    let (listener, note) = listen::listen(&mut reactor, args.addr, options)?;
    eprintln!(
        "echo_server listening on {}{note}{tls_note}",
        reactor.local_addr(listener)?
    );
    // After the "listening on" line, which tests wait for first.
    reactor.with_context(|handler, ctx| handler.metrics.register(ctx))?;
    reactor.run()?;
    let stats = reactor.stats();
    // With TLS, bytes are counted on the socket: records, not plaintext.
    let tls_note = tls.as_ref().map_or(String::new(), |_| {
        format!(
            ", {} TLS handshakes, {} failed",
            stats.tls_handshakes, stats.tls_handshake_failures
        )
    });
    eprintln!(
        "echo_server stopped: {} accepted, {} rejected, {} bytes echoed{tls_note}",
        stats.accepted, stats.rejected, stats.bytes_out
    );
    Ok(())
}

/// `--threads N`: N loops, signals taken by a thread of their own. With
/// `--metrics`, loop 0 serves every loop's figures, labelled by loop
/// (`support/metrics.rs`).
fn serve_loops(args: &Args, config: Config, tls: bool) -> std::io::Result<()> {
    loops::refuse_one_loop_only(tls, &[(args.listen.proxy_protocol, "--proxy-protocol")])?;
    // Bound here, so a bad address fails before any loop starts; loop 0's
    // factory takes it.
    let endpoint = std::sync::Mutex::new(Some(MetricsEndpoint::bind(args.metrics)?));
    let factory = move |_, peers: &_| EchoServer {
        shutdown: ShutdownSignals::none(),
        metrics: metrics::for_loop(&endpoint, peers),
    };
    let stats = loops::serve_with(
        "echo_server",
        &args.loops,
        args.addr,
        config,
        args.grace,
        factory,
        // A turn for loop 0, whose `before_sleep` registers the endpoint.
        |all| {
            let _ = all.send(0, ());
        },
    )?;
    eprintln!(
        "echo_server stopped: {} accepted, {} rejected, {} bytes echoed",
        stats.accepted + stats.adopted,
        stats.rejected,
        stats.bytes_out
    );
    Ok(())
}
