//! A UDP echo server on the reactor: every datagram comes back to its sender
//! intact (up to 65 507 bytes, the most IPv4 UDP can carry). It shows how a
//! socket that is not a TCP connection joins the loop: the handler owns a
//! `mio::net::UdpSocket`, registers it with [`Context::register_source`], and
//! does its own I/O in [`Handler::source_ready`].
//!
//! ```text
//! cargo run --example udp_echo -- --addr 127.0.0.1:9999
//! nc -u 127.0.0.1 9999        # each line typed is one datagram, echoed back
//! ```
//!
//! SIGINT or SIGTERM stops it and prints what happened to every datagram:
//! `received = sent + dropped + unsent + errors`. Nothing is lost silently
//! inside the server; loss in the kernel's buffers before a datagram reaches
//! us, or after it left, is visible to a client that compares what it sent
//! with what came back.
//!
//! # Edge-triggered readiness, by hand
//!
//! The reactor drives TCP connections itself; a source is the handler's job,
//! with the same rules (see `docs/architecture.md`, "Readiness: edge-triggered, registered once"):
//!
//! * An event means "something changed". `recv_from` is called until it
//!   returns `WouldBlock`: stopping earlier with datagrams waiting would get no
//!   new event, and they would sit there until the next datagram arrived.
//! * A reply the socket refuses (`WouldBlock`) is queued, and the queue is
//!   retried on the next event (the socket is registered READABLE | WRITABLE,
//!   so a freed send buffer produces one). The queue is bounded; a datagram
//!   that finds it full is dropped and counted. Later replies wait behind the
//!   queue so that echoes leave in the order datagrams arrived. Reading goes
//!   on meanwhile, so that loss happens here, counted, rather than silently
//!   in the kernel's receive buffer.
//! * A flood must not starve the other sources and connections, so one call
//!   handles at most `--budget` datagrams. Stopping before `WouldBlock` loses
//!   the edge, so the handler then arms a zero-delay timer: the loop polls
//!   everything else, and the timer (phase 5 of the next turn, `fire_due_timers`) resumes the
//!   drain. No library support beyond timers is needed; the cost is that a
//!   resumed drain waits for the timer wheel's next tick (1 ms) if the turn in
//!   between was quicker than that.

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use reactor::mio::net::UdpSocket;
use reactor::{Config, Context, Event, Fired, Handler, Interest, Reactor, SourceId, TimerId};

#[path = "support/server.rs"]
mod server;
use server::ShutdownSignals;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "UDP echo server on the reactor (try nc -u)")]
struct Args {
    /// Address to bind.
    #[arg(long, default_value = "127.0.0.1:9999")]
    addr: SocketAddr,
    /// Most datagrams handled per turn before yielding to the rest of the loop.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u64).range(1..))]
    budget: u64,
    /// Most replies queued while the socket refuses to send; more are dropped.
    #[arg(long, default_value_t = 1024)]
    max_queued: usize,
    /// Kernel receive buffer (SO_RCVBUF) asked for, in bytes; absorbs bursts.
    #[arg(long, default_value_t = 1 << 20)]
    recv_buffer: usize,
}

/// What happened to every datagram. Invariant, at every moment:
/// `received == sent + dropped + errors + queued`.
#[derive(Debug, Default)]
struct Counts {
    /// Datagrams read from the socket.
    received: u64,
    /// Echoes the socket accepted.
    sent: u64,
    /// Echoes discarded because the send queue was full.
    dropped: u64,
    /// Echoes whose `send_to` failed with an error other than `WouldBlock`.
    errors: u64,
    /// Times the per-turn budget ran out and a resume timer was armed.
    yields: u64,
}

/// The echo server.
struct UdpEcho {
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
    /// The echo socket, non-blocking, registered READABLE | WRITABLE.
    socket: UdpSocket,
    /// The socket's id as a source, to tell its events from the signals'.
    socket_id: Option<SourceId>,
    /// Receive buffer, 64 KiB: more than the largest datagram, so none is
    /// ever truncated.
    buf: Vec<u8>,
    /// Echoes the socket refused, oldest first. Invariant: at most
    /// `max_queued` entries; while not empty, new echoes queue behind it.
    queue: VecDeque<(Vec<u8>, SocketAddr)>,
    /// Bound on `queue`.
    max_queued: usize,
    /// Datagrams handled per call before yielding.
    budget: u64,
    /// The zero-delay timer that resumes a drain cut short by the budget.
    /// Invariant: `Some` exactly while such a drain is pending; while it is,
    /// socket events are left to it.
    resume: Option<TimerId>,
    /// Outcome counters.
    counts: Counts,
}

impl UdpEcho {
    /// Sends queued echoes, then reads and echoes datagrams until the socket
    /// is drained or the budget is used.
    fn pump(&mut self, ctx: &mut Context<'_, Self>) {
        // Read on even if the queue stays blocked: a datagram left in the
        // kernel's buffer could be lost there without anyone counting it;
        // one read here is either echoed, queued, or counted as dropped.
        self.flush_queue();
        for _ in 0..self.budget {
            match self.socket.recv_from(&mut self.buf) {
                Ok((len, peer)) => {
                    self.counts.received += 1;
                    self.echo(len, peer);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    // e.g. an ICMP error reported for an earlier send; the
                    // socket still works.
                    log::debug!("recv_from: {e}");
                }
            }
        }
        // Budget used with the socket perhaps not drained: no new edge will
        // come for what is waiting, so come back next turn.
        self.counts.yields += 1;
        self.resume = Some(ctx.start_timer(Duration::ZERO, 0));
    }

    /// Echoes the datagram in `buf[..len]` to `peer`: at once if nothing is
    /// queued and the socket takes it, else behind the queue, else dropped.
    fn echo(&mut self, len: usize, peer: SocketAddr) {
        if self.queue.is_empty() {
            match self.socket.send_to(&self.buf[..len], peer) {
                Ok(_) => {
                    self.counts.sent += 1;
                    return;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => {
                    log::debug!("send_to {peer}: {e}");
                    self.counts.errors += 1;
                    return;
                }
            }
        }
        if self.queue.len() < self.max_queued {
            self.queue.push_back((self.buf[..len].to_vec(), peer));
        } else {
            self.counts.dropped += 1;
        }
    }

    /// Sends queued echoes in order until the queue is empty or the socket
    /// refuses (a writable event will come).
    fn flush_queue(&mut self) {
        while let Some((datagram, peer)) = self.queue.front() {
            match self.socket.send_to(datagram, *peer) {
                Ok(_) => self.counts.sent += 1,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    log::debug!("send_to {peer}: {e}");
                    self.counts.errors += 1;
                }
            }
            self.queue.pop_front();
        }
    }
}

impl Handler for UdpEcho {
    type State = ();
    type Message = ();

    /// The one callback every handler names: this one opens no TCP
    /// listener, so it is never called; were it, the connection is refused.
    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: reactor::ConnId, _: SocketAddr) {
        ctx.close(conn);
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        if Some(source) == self.socket_id {
            if self.resume.is_none() {
                self.pump(ctx);
            }
            return;
        }
        self.shutdown.on_ready(ctx, source);
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if Some(fired.timer) == self.resume {
            self.resume = None;
            self.pump(ctx);
        }
    }
}

/// A non-blocking UDP socket bound to `addr`, with a receive buffer of
/// `recv_buffer` bytes (the kernel may cap it at `net.core.rmem_max`).
fn bind(addr: SocketAddr, recv_buffer: usize) -> io::Result<UdpSocket> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::DGRAM, Some(Protocol::UDP))?;
    socket.set_recv_buffer_size(recv_buffer)?;
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| io::Error::new(e.kind(), format!("cannot bind {addr}: {e}")))?;
    Ok(UdpSocket::from_std(socket.into()))
}

fn main() -> ExitCode {
    server::run("udp_echo", serve)
}

fn serve(args: &Args) -> io::Result<()> {
    let handler = UdpEcho {
        // No connections to drain: a signal ends the loop at once.
        shutdown: ShutdownSignals::new(Duration::ZERO)?,
        socket: bind(args.addr, args.recv_buffer)?,
        socket_id: None,
        buf: vec![0; 64 * 1024],
        queue: VecDeque::new(),
        max_queued: args.max_queued,
        budget: args.budget,
        resume: None,
        counts: Counts::default(),
    };
    let mut reactor = Reactor::new(handler, Config::default())?;
    reactor.with_context(|handler, ctx| -> io::Result<()> {
        handler.shutdown.register(ctx)?;
        let id =
            ctx.register_source(&mut handler.socket, Interest::READABLE | Interest::WRITABLE)?;
        handler.socket_id = Some(id);
        Ok(())
    })?;
    let local = reactor.handler().socket.local_addr()?;
    eprintln!("udp_echo listening on {local}");
    reactor.run()?;
    let echo = reactor.handler();
    let c = &echo.counts;
    eprintln!(
        "udp_echo stopped: received {}, sent {}, dropped {}, unsent {}, errors {}, yields {}",
        c.received,
        c.sent,
        c.dropped,
        echo.queue.len(),
        c.errors,
        c.yields
    );
    Ok(())
}
