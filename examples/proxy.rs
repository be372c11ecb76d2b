//! A TCP proxy: each client that connects is relayed to one backend, byte for
//! byte, both ways, with memory bounded whatever the speeds of the two peers.
//! It shows the flow-control side of the reactor, on its public API only:
//! outbound connects, backpressure between two connections, half-close, and
//! resets passed on as resets.
//!
//! ```text
//! cargo run --release --example proxy -- --listen 127.0.0.1:8000 --backend 127.0.0.1:8080
//! RUST_LOG=proxy=info cargo run --example proxy -- --backend 127.0.0.1:8080
//! ```
//!
//! # Design
//!
//! Every accepted client starts its own connection to the backend with
//! [`Context::connect`]; the two connections are a pair, and each one's
//! state names its partner. Both are in the reactor's slab, so the proxy
//! keeps no map of its own. Each direction is handled the same way:
//!
//! * **Bytes**: `data` writes all its input to the partner and consumes it.
//!   Output written while the backend is still connecting is queued and sent
//!   once it is connected.
//! * **Backpressure**: a write that leaves the partner at its high-water
//!   mark (it takes bytes slower than this side sends them, or it is still
//!   connecting) pauses reading this side. The kernel's receive buffer then
//!   fills, and TCP's own flow control slows the sender. When the partner's
//!   queue falls below low water, `drained` runs for it and resumes reading
//!   its partner. So each direction holds at most the high-water mark plus
//!   one read (256 + 64 KiB with the default `Config`).
//! * **Half-close**: a peer's FIN (`read_closed`) becomes a FIN to the other
//!   peer with [`Context::shutdown_write`], after what is queued for it, and
//!   the other direction goes on: a client may send a request, shut down its
//!   write side, and still read the reply. A pair ends when both directions
//!   have.
//! * **Ends**: a connection that ends normally (both FINs exchanged) closes
//!   its partner after flush. One that ends any other way (reset by its
//!   peer, a socket error, a failed or timed-out connect, a limit) aborts its
//!   partner with a reset ([`Context::abort`]), so that a peer never takes a
//!   cut-short stream for a complete one.
//!
//! SIGINT or SIGTERM starts a graceful shutdown: the listener closes, and the
//! pairs open may finish for `--grace` seconds. The proxy cannot see where
//! one message ends in the bytes it relays, so it never calls a pair idle
//! (`is_idle`); what is left at the deadline is closed. The process prints
//! what it relayed and exits 0. A second signal stops at once.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::{CloseReason, Config, ConnId, Context, Event, Handler, Reactor, SourceId};

#[path = "support/server.rs"]
mod server;
use server::ShutdownSignals;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "TCP proxy on the reactor")]
struct Args {
    /// Address to listen on for clients.
    #[arg(long, default_value = "127.0.0.1:8000")]
    listen: SocketAddr,
    /// Address every client is relayed to.
    #[arg(long)]
    backend: SocketAddr,
    /// Seconds a backend connect may take before its client is reset.
    #[arg(long, default_value = "5", value_parser = server::seconds)]
    connect_timeout: Duration,
    /// Seconds a graceful shutdown waits before closing the pairs left.
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    grace: Duration,
}

/// Which peer a connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// Accepted from the listener.
    Client,
    /// Started by the proxy towards `--backend`.
    Backend,
}

/// Per-connection state: one end of a pair.
struct End {
    /// Which peer this connection talks to.
    side: Side,
    /// The other connection of the pair, to which this one's input goes.
    /// `None` only for a client whose backend connect could not even start
    /// (that client is reset at once).
    partner: Option<ConnId>,
}

/// What the proxy did, printed on exit.
#[derive(Debug, Default)]
struct Counts {
    /// Bytes from clients queued for backends.
    to_backends: u64,
    /// Bytes from backends queued for clients.
    to_clients: u64,
    /// Backend connects that failed (refused, unreachable, ...).
    connects_failed: u64,
    /// Backend connects that did not finish within `--connect-timeout`.
    connects_timed_out: u64,
    /// Connections reset because their partner ended abnormally.
    resets_passed_on: u64,
}

/// The relay, plus the signals that stop it.
struct Proxy {
    /// Where clients are relayed to.
    backend: SocketAddr,
    /// Time allowed to each backend connect.
    connect_timeout: Duration,
    /// Counters for the exit line.
    counts: Counts,
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
}

impl Handler for Proxy {
    type State = End;
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, client: ConnId, peer: SocketAddr) -> End {
        let backend_end = End {
            side: Side::Backend,
            partner: Some(client),
        };
        let timeout = Some(self.connect_timeout);
        match ctx.connect(self.backend, timeout, backend_end) {
            Ok(backend) => {
                log::info!("{client} from {peer}: relayed by {backend}");
                End {
                    side: Side::Client,
                    partner: Some(backend),
                }
            }
            Err(e) => {
                log::warn!("{client} from {peer}: cannot connect to the backend: {e}");
                self.counts.connects_failed += 1;
                ctx.abort(client);
                End {
                    side: Side::Client,
                    partner: None,
                }
            }
        }
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        end: &mut End,
        input: &[u8],
    ) -> usize {
        let Some(partner) = end.partner else {
            return input.len();
        };
        // A failed write means the partner is gone or was just closed over
        // its output cap; its `closed` ends this side too.
        if ctx.write(partner, input).is_ok() {
            match end.side {
                Side::Client => self.counts.to_backends += input.len() as u64,
                Side::Backend => self.counts.to_clients += input.len() as u64,
            }
        }
        // Read no more than the partner takes; its `drained` resumes us.
        if ctx.is_backpressured(partner) {
            ctx.pause_reading(conn);
        }
        input.len()
    }

    fn drained(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, end: &mut End) {
        if let Some(partner) = end.partner {
            ctx.resume_reading(partner);
        }
    }

    fn connected(&mut self, _: &mut Context<'_, Self>, backend: ConnId, _: &mut End) {
        log::debug!("{backend}: connected to the backend");
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, end: &mut End) {
        // Pass the FIN on and keep this side open for the other direction.
        match end.partner {
            Some(partner) => ctx.shutdown_write(partner),
            None => ctx.close(conn),
        }
    }

    fn closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, end: End, why: CloseReason) {
        log::info!("{conn} ({:?}) closed: {why}", end.side);
        match why {
            CloseReason::ConnectFailed(_) => self.counts.connects_failed += 1,
            CloseReason::ConnectTimeout => self.counts.connects_timed_out += 1,
            _ => {}
        }
        let Some(partner) = end.partner.filter(|&p| ctx.conn_state(p).is_some()) else {
            return; // the partner ended first and already ended this side
        };
        match why {
            CloseReason::PeerClosed | CloseReason::ClosedLocally => ctx.close_after_flush(partner),
            _ => {
                self.counts.resets_passed_on += 1;
                ctx.abort(partner);
            }
        }
    }

    fn is_idle(&self, _: &End) -> bool {
        false // see the module doc: a byte stream has no boundaries to stop at
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        self.shutdown.on_ready(ctx, source);
    }
}

fn main() -> ExitCode {
    server::run("proxy", serve)
}

fn serve(args: &Args) -> io::Result<()> {
    let handler = Proxy {
        backend: args.backend,
        connect_timeout: args.connect_timeout,
        counts: Counts::default(),
        shutdown: ShutdownSignals::new(args.grace)?,
    };
    let mut reactor = Reactor::new(handler, Config::default())?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let listener = reactor.listen(args.listen)?;
    eprintln!(
        "proxy listening on {} relaying to {}",
        reactor.local_addr(listener)?,
        args.backend
    );
    reactor.run()?;
    let (stats, counts) = (reactor.stats(), &reactor.handler().counts);
    eprintln!(
        "proxy stopped: {} clients, {} bytes to backends, {} bytes to clients, \
         {} connects failed, {} timed out, {} resets passed on",
        stats.accepted,
        counts.to_backends,
        counts.to_clients,
        counts.connects_failed,
        counts.connects_timed_out,
        counts.resets_passed_on
    );
    Ok(())
}
