//! A chat room over a line protocol, for `nc` and `telnet`: every line one
//! client sends goes to all the others as `name: text`. It shows the parts of
//! the reactor a broadcast server needs: writing to connections other than
//! the one being served, per-connection state (the nickname) kept by the
//! reactor, `reactor::codec` framing, and a slow reader that is cut off
//! instead of slowing the room down.
//!
//! ```text
//! cargo run --example chat_server -- --addr 127.0.0.1:7000
//! nc 127.0.0.1 7000          # or: telnet 127.0.0.1 7000
//! ```
//!
//! Commands (`chat_server/commands.rs`): `/nick NAME` (1 to 32 bytes of
//! UTF-8, no spaces, no `:`, no control, format or other invisible
//! characters, unique regardless of case), `/who`, `/quit`, `/help`. Server
//! notices start with `* `, errors with `error: `. Control and format
//! characters (bidi overrides, zero-width spaces, ...) in a line are relayed
//! as `?` (`chat_server/text.rs`).
//! A line longer than 1024 bytes is answered with an error line and the
//! connection is closed.
//!
//! Join and leave notices are held for a moment (1 ms in a small room, up
//! to 100 ms in a room of thousands) and reach the room together, in order
//! with everything else each member gets: with one write per member for
//! many joins, a join costs the server the same however large the room is
//! (`chat_server/notices.rs`).
//!
//! # Slow readers
//!
//! Relaying a line never blocks on a member: each member's copy is queued
//! for it and sent as fast as its socket takes it. A member that reads
//! slower than the room talks builds a backlog, which is bounded the way
//! Redis bounds a client's output buffer (`client-output-buffer-limit`), by
//! the reactor's output limits:
//!
//! * a hard limit, `--max-queue` (default 4 MiB): a line that would take the
//!   backlog past it disconnects the member at once;
//! * a soft limit, `--soft-queue` (default 256 KiB) for `--soft-seconds`
//!   (default 10): a backlog that stays above it that long without a break
//!   disconnects the member.
//!
//! Either way the room is told `* NAME left (not reading)`. Until then the
//! member receives every line, in order. A member that never reads thus
//! costs the server at most `--max-queue` bytes (plus its socket buffers in
//! the kernel), and is gone `--soft-seconds` after its backlog passes
//! `--soft-queue`, or at once when it passes `--max-queue`. `--soft-queue`
//! equal to `--max-queue` leaves only the hard limit.
//!
//! The reactor meanwhile keeps a burst from outrunning the members that
//! read as fast as they can: once a member's backlog reaches the high-water
//! mark (a quarter of `--max-queue`, at most 256 KiB), what is queued for it
//! is sent at once rather than at the end of the turn, and the sender whose
//! lines left it there is not read again until those backlogs drain below
//! high water, or for 50 ms at most (the reactor's fan-out hold,
//! `Config::fanout_hold`). A member whose socket took no byte for 250 ms
//! (`Config::fanout_stall`) counts as stopped and holds nobody: a member
//! that stops reading slows the room once, by a quarter of a second at
//! most, and is then left to its limits, which is why it is disconnected
//! rather than waited for. Nor does the room slow down for long to a member
//! that reads, but more slowly than one read of lines per 50 ms (about
//! 1.3 MB/s of 1 000-byte lines): it falls behind and meets the soft limit
//! or the hard one.
//!
//! Why the hard limit is as large as 4 MiB: the hold comes between reads,
//! never inside one. One read from a sender is up to 64 KiB (the reactor's
//! read buffer) and is relayed whole by one `data` call, and 64 KiB of
//! two-byte lines (`x` and a newline) becomes 32 768 lines of up to 36 bytes
//! (`NICK: x` with a 32-byte name, and a newline): about 18 times as much,
//! 1.1 MiB for every member, queued before its socket can take any of it, on
//! top of up to a high-water mark already queued. A member that keeps up
//! can thus have about 1.4 MiB queued for a moment; a hard limit below that
//! would cut it off for one read of short lines. 4 MiB covers that almost
//! three times, which also leaves a reader that goes unscheduled for a
//! while on a busy host some time to catch up. The soft limit is the one
//! that catches a member that falls behind and stays there: no member that
//! keeps up holds 256 KiB of backlog, about 250 of the longest lines, for
//! 10 s.
//!
//! # Why `ctx.write` (a copy per member) and not `write_vec` (a clone each)
//!
//! A broadcast encodes its line once into a reused buffer and queues a copy
//! for each member with [`Context::write`]. The copy lands in the tail chunk
//! of the member's output queue (small writes coalesce), so a member that is
//! a little behind still gets its backlog in one `sendmsg` with one iovec, and
//! in the steady state a broadcast allocates nothing. `write_vec(line.clone())`
//! would allocate one `Vec` per member per line and queue one chunk per line,
//! which for chat-sized lines costs more than the copy it saves. (Sharing one
//! buffer between all queues would need reference-counted chunks, which the
//! output queue does not have.)
//!
//! # Several loops
//!
//! `--threads N` runs N loops on the address (`SO_REUSEPORT`, or
//! `--hand-off`), each with its own room of the members it serves. A line
//! (and a `/nick` notice) is delivered to the sender's own room, then
//! framed once and sent as a message to every other loop, which delivers
//! it to its room: every member on every loop sees every line, and in the
//! order each sender sent them, because each loop's message channel is
//! FIFO and one sender's lines all leave from one loop. Lines of different
//! senders on different loops may interleave differently for different
//! members, as they would through any relay. Nicknames are unique across
//! all loops (a shared registry, `chat_server/nicks.rs`); join and leave
//! notices and `/who` stay with the loop's own room.
//!
//! SIGINT or SIGTERM tells everyone the server is shutting down, flushes and
//! closes every connection, and exits 0. A second signal stops at once.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser;
use reactor::codec::{Decoder, LineCodec};
use reactor::{
    CloseReason, Config, ConnId, Context, Event, Fired, Handler, Limit, Peers, Reactor, SoftLimit,
    SourceId, WriteError,
};
use slab::Slab;

#[path = "chat_server/commands.rs"]
mod commands;
#[path = "support/loops.rs"]
mod loops;
#[path = "support/metrics.rs"]
mod metrics;
#[path = "chat_server/nicks.rs"]
mod nicks;
#[path = "chat_server/notices.rs"]
mod notices;
#[path = "support/server.rs"]
mod server;
#[path = "chat_server/text.rs"]
mod text;
use commands::HELP;
use metrics::MetricsEndpoint;
use nicks::Nicks;
use notices::{Notices, Seat, NOTICE_TIMER};
use server::ShutdownSignals;

/// Longest line a client may send, terminator excluded.
const MAX_LINE: usize = 1024;
/// Longest nickname, in bytes.
const MAX_NICK: usize = 32;
/// Longest line the server sends: a nickname, ": ", and a client's line.
const MAX_OUT_LINE: usize = MAX_NICK + 2 + MAX_LINE;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Line-based chat server on the reactor (use nc or telnet)")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:7000")]
    addr: SocketAddr,
    /// Hard limit: a member whose undelivered output would pass this many
    /// bytes is disconnected at once as not reading. Large enough by
    /// default for what one read of short lines becomes (see the module
    /// docs).
    #[arg(long, default_value_t = 4 * 1024 * 1024, value_parser = clap::value_parser!(u64).range(4096..))]
    max_queue: u64,
    /// Soft limit: a member whose undelivered output stays above this many
    /// bytes for `--soft-seconds` is disconnected as not reading. At most
    /// `--max-queue`.
    #[arg(long, default_value_t = 256 * 1024)]
    soft_queue: u64,
    /// How long a member's undelivered output may stay above `--soft-queue`
    /// (fractions allowed).
    #[arg(long, default_value = "10", value_parser = server::seconds)]
    soft_seconds: Duration,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value = "5", value_parser = server::seconds)]
    grace: Duration,
    /// Serve Prometheus metrics (`GET /metrics`) on this address too.
    #[arg(long, value_name = "ADDR")]
    metrics: Option<SocketAddr>,
    #[command(flatten)]
    loops: loops::LoopFlags,
}

/// A framed line from another loop's member, for this loop's room.
type Relay = Arc<[u8]>;

/// One connection's protocol state, kept by the reactor beside its buffers.
struct Member {
    /// The member's name. Invariant: passes `check_nick`, and while the
    /// member is in the room (`slot` is `Some`) `ChatServer::nicks` maps its
    /// `text::nick_key` to this connection (on this loop).
    nick: String,
    /// Key of this connection in `ChatServer::members`; `None` once it left
    /// the room (quit, or sent an overlong line) and only waits for its last
    /// output to be flushed. Its leave notice has been queued exactly when
    /// this is `None`.
    slot: Option<usize>,
}

/// The room.
struct ChatServer {
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
    /// `--metrics`: the Prometheus endpoint (inert without the flag).
    metrics: MetricsEndpoint,
    /// Connections in the room. Invariant: a connection is here exactly when
    /// its `Member::slot` is `Some(key)` with this key. A slab, so joining
    /// and leaving cost O(1) and a broadcast walks a dense list.
    members: Slab<Seat>,
    /// Join and leave notices waiting to go to the room together
    /// (`chat_server/notices.rs`).
    notices: Notices,
    /// The names taken, by `text::nick_key`, on every loop: exactly one
    /// entry per member of any loop's room. What makes a join, a `/nick`
    /// and a leave cost the same however large the room is: the uniqueness
    /// check is one lookup, not a walk over every member.
    nicks: Nicks,
    /// The other loops, with `--threads` above 1: each line said here is
    /// relayed to them. `None` with one loop.
    peers: Option<Peers<Relay>>,
    /// Cuts client input into lines of at most `MAX_LINE` bytes.
    input: LineCodec,
    /// Frames what the server sends; longer than `input` because a relayed
    /// line carries the sender's name.
    output: LineCodec,
    /// Number of the last guest name tried (`guest1`, `guest2`, ...).
    /// Invariant: congruent to this loop's index modulo `guest_step`, so
    /// loops do not try each other's numbers.
    next_guest: u64,
    /// The number of loops: how far `next_guest` moves.
    guest_step: u64,
    /// Members disconnected for not reading, on every loop, for the exit
    /// report.
    kicked_slow: Arc<AtomicU64>,
    /// Scratch: the text of the line being composed. Reused, so composing
    /// allocates only while it grows to its largest size.
    text: Vec<u8>,
    /// Scratch: `text` framed for the wire, copied into each recipient's queue.
    wire: Vec<u8>,
}

impl ChatServer {
    /// Frames `self.text` into `self.wire`.
    fn frame(&mut self) {
        self.wire.clear();
        if let Err(e) = self.output.encode(&self.text, &mut self.wire) {
            // Text is sanitised and bounded before it gets here.
            log::error!("cannot frame an outgoing line: {e}");
        }
    }

    /// Sends one line (a notice or an error) to `me`, on `conn`, only:
    /// after the pending notices it has not had.
    fn reply(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &Member, line: &str) {
        self.catch_up(ctx, conn, me);
        self.send_line(ctx, conn, line);
    }

    /// Sends one line to `conn`, whatever is pending.
    fn send_line(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, line: &str) {
        self.text.clear();
        self.text.extend_from_slice(line.as_bytes());
        self.frame();
        deliver(ctx, conn, &self.wire);
    }

    /// Sends `line` to every member except `except`.
    fn announce(&mut self, ctx: &mut Context<'_, Self>, except: Option<ConnId>, line: &str) {
        self.text.clear();
        self.text.extend_from_slice(line.as_bytes());
        self.frame();
        self.broadcast_wire(ctx, except);
    }

    /// Queues the framed line in `self.wire` for every member but `except`,
    /// after the pending notices.
    fn broadcast_wire(&mut self, ctx: &mut Context<'_, Self>, except: Option<ConnId>) {
        self.flush_notices(ctx);
        for (_, seat) in self.members.iter() {
            if Some(seat.conn) != except {
                // A member cut off here closes at once; its `closed` callback
                // runs after this loop, so `members` does not change under it.
                deliver(ctx, seat.conn, &self.wire);
            }
        }
    }

    /// Sends the framed line in `self.wire` to every other loop, whose
    /// `message` delivers it to its room.
    fn relay(&self) {
        if let Some(peers) = &self.peers {
            peers.broadcast(&Relay::from(&self.wire[..]));
        }
    }

    /// Takes `me` out of the room and tells the others, once.
    fn leave(&mut self, ctx: &mut Context<'_, Self>, me: &mut Member, why: Option<&str>) {
        let Some(slot) = me.slot.take() else {
            return;
        };
        let seat = self.members.remove(slot);
        self.nicks.release(&text::nick_key(&me.nick), seat.conn);
        let notice = match why {
            Some(why) => format!("* {} left ({why})", me.nick),
            None => format!("* {} left", me.nick),
        };
        self.queue_notice(ctx, &notice);
    }

    /// Claims a name `guestN` no member has, for `conn`. The counter only
    /// grows, so over the server's life each number is tried once: O(1)
    /// amortised even when members took `guestN` names themselves.
    fn guest_name(&mut self, conn: ConnId) -> String {
        loop {
            self.next_guest += self.guest_step;
            let name = format!("guest{}", self.next_guest);
            if self.nicks.claim(text::nick_key(&name), conn) {
                return name;
            }
        }
    }
}

/// Queues a framed line for `member`. The reactor enforces the output
/// limits: a line past the hard limit closes the member instead, and
/// `closed` tells the room it left for not reading. The reply to a slow
/// reader is disconnection, never waiting.
fn deliver(ctx: &mut Context<'_, ChatServer>, member: ConnId, wire: &[u8]) {
    match ctx.write(member, wire) {
        Ok(()) => {}
        // It is closing (quit, overlong line) and takes no more output.
        Err(WriteError::Gone) => {}
        Err(WriteError::OutputLimit) => {
            log::info!("{member}: output passed the hard limit, disconnected");
        }
    }
}

impl Handler for ChatServer {
    type State = Member;
    type Message = Relay;

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, peer: SocketAddr) -> Member {
        let nick = self.guest_name(conn);
        log::info!("{conn} from {peer} joined as {nick}");
        // Queued, not sent: one write to each member for all the joins
        // and leaves of the next moment (notices.rs), so that a join is O(1).
        self.queue_notice(ctx, &format!("* {nick} joined"));
        let slot = self.members.insert(Seat::new(conn, &self.notices));
        let welcome = format!(
            "* welcome {nick}; {} online; {}",
            self.members.len(),
            &HELP[2..]
        );
        // Not a `reply`: what is pending is about the room before it.
        self.send_line(ctx, conn, &welcome);
        Member {
            nick,
            slot: Some(slot),
        }
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        me: &mut Member,
        input: &[u8],
    ) -> usize {
        let mut consumed = 0;
        // Stop once the member has left or was closed (its own replies can
        // pass the output cap): the rest of its input is discarded.
        while me.slot.is_some() && ctx.conn_state(conn).is_some() {
            match self.input.decode(&input[consumed..]) {
                Ok(Some(line)) => {
                    consumed += line.consumed;
                    self.on_line(ctx, conn, me, line.frame);
                }
                Ok(None) => return consumed,
                Err(e) => {
                    // No way to find the next line boundary without reading
                    // (and keeping) the rest of the overlong line: say why,
                    // then close once the error line is written.
                    self.reply(ctx, conn, me, &format!("error: {e}; closing"));
                    self.leave(ctx, me, Some("line too long"));
                    ctx.close_after_flush(conn);
                    break;
                }
            }
        }
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, me: &mut Member) {
        // The peer is done sending (`nc` at end of input): it leaves the room
        // now rather than being listed until its last output is flushed.
        self.leave(ctx, me, None);
        ctx.close_after_flush(conn);
    }

    fn closed(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        mut me: Member,
        reason: CloseReason,
    ) {
        log::info!("{conn} ({}) closed: {reason}", me.nick);
        let why = match reason {
            // The hard limit or the soft one: the reactor does not say
            // which, and to the room it is the same.
            CloseReason::LimitExceeded(Limit::Output) => Some("not reading"),
            CloseReason::PeerClosed | CloseReason::ClosedLocally => None,
            _ => Some("connection lost"),
        };
        if why == Some("not reading") {
            self.kicked_slow.fetch_add(1, Ordering::Relaxed);
        }
        self.leave(ctx, &mut me, why);
    }

    fn shutdown_started(&mut self, ctx: &mut Context<'_, Self>) {
        // The reactor then flushes and closes every idle connection.
        self.announce(ctx, None, "* server shutting down");
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if fired.tag == NOTICE_TIMER {
            self.notice_timer(ctx);
        }
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        if !self.metrics.on_ready(ctx, source) {
            self.shutdown.on_ready(ctx, source);
        }
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, line: Relay) {
        // A line said on another loop: to this loop's whole room.
        self.wire.clear();
        self.wire.extend_from_slice(&line);
        self.broadcast_wire(ctx, None);
    }
}

fn main() -> ExitCode {
    server::run("chat_server", serve)
}

/// The output limits the flags ask for, or why they contradict each other.
fn output_limits(args: &Args) -> Result<(usize, SoftLimit), String> {
    let max_queue = usize::try_from(args.max_queue).unwrap_or(usize::MAX);
    let soft_queue = usize::try_from(args.soft_queue).unwrap_or(usize::MAX);
    if soft_queue > max_queue {
        return Err(format!(
            "--soft-queue ({soft_queue}) must not be larger than --max-queue ({max_queue})"
        ));
    }
    let soft_seconds = args.soft_seconds;
    if soft_seconds.is_zero() {
        return Err("--soft-seconds must be more than 0".to_string());
    }
    let soft = SoftLimit {
        bytes: soft_queue,
        duration: soft_seconds,
    };
    Ok((max_queue, soft))
}

fn serve(args: &Args) -> std::io::Result<()> {
    let invalid = |e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e);
    let (max_queue, soft) = output_limits(args).map_err(invalid)?;
    let config = Config {
        // The slow-reader policy (module docs). The water marks follow
        // `max_output`: high water at a quarter of it, at most 256 KiB.
        max_output: max_queue,
        soft_output: Some(soft),
        // Far below the default 1 MiB: no line is longer than MAX_LINE, and
        // the codec rejects one as soon as it passes that.
        max_input: 4 * MAX_LINE,
        ..Config::default()
    };
    let kicked_slow = Arc::new(AtomicU64::new(0));
    let names = Arc::new(Mutex::new(HashMap::new()));
    let kicked = Arc::clone(&kicked_slow);
    let room = move |index: usize, shutdown, peers: Option<Peers<Relay>>| ChatServer {
        shutdown,
        // Loop by loop there is no endpoint; one loop gets the flag's below.
        metrics: MetricsEndpoint::bind(None).expect("an endpoint without an address binds nothing"),
        members: Slab::new(),
        notices: Notices::default(),
        nicks: Nicks::new(index, Arc::clone(&names)),
        guest_step: peers.as_ref().map_or(1, |p| p.len() as u64),
        peers,
        input: LineCodec::new(MAX_LINE),
        output: LineCodec::new(MAX_OUT_LINE),
        next_guest: index as u64,
        kicked_slow: Arc::clone(&kicked),
        text: Vec::new(),
        wire: Vec::new(),
    };
    if args.loops.many() {
        let factory = move |index, peers: &Peers<Relay>| {
            room(index, ShutdownSignals::none(), Some(peers.clone()))
        };
        let stats = loops::serve(
            "chat_server",
            &args.loops,
            args.addr,
            config,
            args.grace,
            factory,
        )?;
        eprintln!(
            "chat_server stopped: {} accepted, {} disconnected for not reading",
            stats.accepted + stats.adopted,
            kicked_slow.load(Ordering::Relaxed)
        );
        return Ok(());
    }
    let mut handler = room(0, ShutdownSignals::new(args.grace)?, None);
    handler.metrics = MetricsEndpoint::bind(args.metrics)?;
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let listener = reactor.listen(args.addr)?;
    eprintln!("chat_server listening on {}", reactor.local_addr(listener)?);
    // After the "listening on" line, which tests wait for first.
    reactor.with_context(|handler, ctx| handler.metrics.register(ctx))?;
    reactor.run()?;
    eprintln!(
        "chat_server stopped: {} accepted, {} disconnected for not reading",
        reactor.stats().accepted,
        kicked_slow.load(Ordering::Relaxed)
    );
    Ok(())
}
