//! A small in-memory key-value server speaking RESP2, the Redis protocol,
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
//! Commands: PING, ECHO, SET (with EX, PX, NX, XX, KEEPTTL), GET, DEL,
//! EXISTS, INCR, MGET, QUIT, SUBSCRIBE, UNSUBSCRIBE, PUBLISH, RESET, and the
//! parts of CONFIG GET and COMMAND that `redis-cli` and `redis-benchmark` ask
//! for at start-up. Replies and error texts follow Redis 7 (RESP2). Keys
//! expire lazily, when next touched. PSUBSCRIBE and PUNSUBSCRIBE (patterns)
//! are not implemented yet: they get the unknown-command error.
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
//!   [`Pending`]): stored values are shared (`Rc`), so a reply holds a
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
//! for ECHO the unsent rest of the argument, copied out of the input.

#[path = "resp_server/parse.rs"]
mod parse;

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::rc::Rc;
use std::time::{Duration, Instant};

use reactor::{
    CloseReason, Config, ConnId, Context, Event, Handler, Limits, Reactor, SoftLimit, SourceId,
    WriteError,
};

#[path = "support/decimal.rs"]
mod decimal;
#[path = "support/server.rs"]
mod server;
use decimal::push_decimal;
use server::ShutdownSignals;

use parse::{parse_int, Parsed, Parser};

/// Small replies collect in the shared reply buffer; past this size it is
/// handed to the reactor before the next reply is added, so a long
/// pipeline's replies reach the reactor's flow control as they are made.
const HANDOFF_AT: usize = 64 * 1024;
/// Capacity the shared reply buffer and the message buffer keep between
/// callbacks. A larger reply grows them for the moment only.
const RETAINED: usize = 2 * HANDOFF_AT;
/// Bulk strings this long or longer are not copied into the reply buffer:
/// they are handed to the reactor in pieces straight from where they are
/// (the stored value, or the input for ECHO).
const STREAM_AT: usize = 16 * 1024;
/// Most bytes handed to the reactor in one write while streaming.
const PIECE: usize = 64 * 1024;
/// Stored values shorter than this are copied into a deferred reply rather
/// than referenced: a copy costs less than a part of its own.
const SHARE_AT: usize = 64;

/// Command-line flags.
#[derive(clap::Parser, Debug)]
#[command(about = "In-memory RESP2 key-value server on the reactor")]
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
    #[arg(long, default_value_t = 60.0)]
    pubsub_soft_seconds: f64,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Most concurrent connections (default: from the descriptor limit).
    #[arg(long)]
    max_connections: Option<usize>,
}

/// A stored value. Shared so that a reply being sent piece by piece keeps
/// the value it started with (MGET stays a snapshot) without a copy, while
/// a SET or DEL meanwhile replaces or drops the key's own reference.
type Value = Rc<Vec<u8>>;

/// One stored value.
#[derive(Debug)]
struct Entry {
    /// The value's bytes (binary-safe).
    value: Value,
    /// When the key stops existing; `None`: never.
    expires_at: Option<Instant>,
}

/// The key space, with lazy expiry.
#[derive(Debug, Default)]
struct Store {
    /// Keys to entries. Invariant: an entry past `expires_at` is treated as
    /// absent and removed when next looked up.
    map: HashMap<Vec<u8>, Entry>,
}

impl Store {
    /// The live entry for `key`, removing it first if it has expired.
    fn get(&mut self, key: &[u8], now: Instant) -> Option<&mut Entry> {
        if self
            .map
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|at| at <= now))
        {
            self.map.remove(key);
        }
        self.map.get_mut(key)
    }

    /// Sets `key`. The old value's allocation is reused when no reply holds
    /// it and it is not much larger than the new value (reusing a 10 MB
    /// buffer for a 10-byte value would pin the 10 MB).
    fn set(&mut self, key: &[u8], value: &[u8], expires_at: Option<Instant>) {
        match self.map.get_mut(key) {
            Some(entry) => {
                match Rc::get_mut(&mut entry.value) {
                    Some(old) if old.capacity() <= value.len().saturating_mul(2).max(64) => {
                        old.clear();
                        old.extend_from_slice(value);
                    }
                    _ => entry.value = Rc::new(value.to_vec()),
                }
                entry.expires_at = expires_at;
            }
            None => {
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value: Rc::new(value.to_vec()),
                        expires_at,
                    },
                );
            }
        }
    }

    /// Removes `key`; returns whether it was there (and live).
    fn remove(&mut self, key: &[u8], now: Instant) -> bool {
        let live = self.get(key, now).is_some();
        if live {
            self.map.remove(key);
            // A table that held many more keys than it does now gives the
            // difference back, as Redis resizes its dictionaries.
            if self.map.capacity() > 1024 && self.map.len() < self.map.capacity() / 8 {
                self.map.shrink_to(self.map.len() * 2);
            }
        }
        live
    }
}

/// Channels and their subscribers (SUBSCRIBE / PUBLISH).
#[derive(Debug, Default)]
struct PubSub {
    /// Channel name to its subscribers. Invariant: no empty list; a
    /// connection is listed under a channel exactly when the channel is in
    /// that connection's `RespConn::channels`.
    channels: HashMap<Vec<u8>, Vec<ConnId>>,
    /// The `message` frame being fanned out, reused between PUBLISHes.
    /// Invariant: empty between callbacks.
    frame: Vec<u8>,
}

impl PubSub {
    fn add(&mut self, channel: &[u8], conn: ConnId) {
        self.channels
            .entry(channel.to_vec())
            .or_default()
            .push(conn);
    }

    fn remove(&mut self, channel: &[u8], conn: ConnId) {
        if let Some(subscribers) = self.channels.get_mut(channel) {
            // Linear: a channel's subscribers are few next to the messages
            // sent to them, and a list keeps the fan-out a plain loop.
            if let Some(at) = subscribers.iter().position(|&c| c == conn) {
                subscribers.swap_remove(at);
            }
            if subscribers.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Queues `message` for every subscriber of `channel`; returns how many
    /// it was queued for. A subscriber this pushes past its hard limit is
    /// closed by the reactor (and forgotten in `closed`); one that stays
    /// above its soft limit too long is closed by the reactor's timer.
    /// Subscribers never have a deferred reply (see `Replies::direct`), so
    /// the message cannot land in the middle of one.
    fn publish(
        &mut self,
        ctx: &mut Context<'_, RespServer>,
        channel: &[u8],
        message: &[u8],
    ) -> i64 {
        let Some(subscribers) = self.channels.get(channel) else {
            return 0;
        };
        let frame = &mut self.frame;
        array(frame, 3);
        bulk(frame, b"message");
        bulk(frame, channel);
        bulk(frame, message);
        let mut receivers = 0;
        for &subscriber in subscribers {
            debug_assert!(ctx.state(subscriber).map_or(true, |s| s.pending.is_empty()));
            if ctx.write(subscriber, frame).is_ok() {
                receivers += 1;
            }
        }
        frame.clear();
        frame.shrink_to(RETAINED);
        receivers
    }
}

/// The server: the key space, channels, a reply buffer and the signal pipe.
struct RespServer {
    /// All keys, shared by every connection (the loop has one thread).
    store: Store,
    /// Channels and subscribers.
    pubsub: PubSub,
    /// Small replies produced by one `data` call. Invariant: empty between
    /// callbacks, capacity at most `RETAINED` between them.
    out: Vec<u8>,
    /// The limits of a connection that is not subscribed: the `Config`'s.
    normal_limits: Limits,
    /// The limits SUBSCRIBE gives a connection (Redis's `pubsub` class).
    pubsub_limits: Limits,
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
}

/// Per-connection state.
#[derive(Debug, Default)]
struct RespConn {
    /// Incremental parser; holds offsets into this connection's input.
    parser: Parser,
    /// The rest of a reply the socket has not taken yet. Invariant: while it
    /// is not empty no further command is executed, and the connection is
    /// not subscribed.
    pending: Pending,
    /// Channels this connection is subscribed to (sorted, so UNSUBSCRIBE
    /// without arguments answers in a stable order). Not empty: the
    /// connection is in subscribed mode.
    channels: BTreeSet<Vec<u8>>,
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

/// A reply deferred until the client reads: what is left of it, in order.
///
/// This is the answer to "what if a reply is larger than the output cap?":
/// rather than refusing such a reply, or building it whole in memory, the
/// server hands it over in pieces while the connection is below its
/// high-water mark and keeps the rest here, as references to the stored
/// values plus the few protocol bytes between them; `Handler::drained`
/// continues it. A reply of any size then costs the connection about the
/// high-water mark plus a piece, and the client gets what Redis would have
/// sent it. (Refusing replies over the cap was the alternative; it is simpler
/// but answers a valid `MGET` with an error that Redis would not send.)
#[derive(Debug, Default)]
struct Pending {
    /// Parts not yet handed to the reactor, oldest first.
    parts: VecDeque<Part>,
    /// Bytes of the front part already handed over. Invariant: less than
    /// its length; 0 when `parts` is empty.
    sent: usize,
}

/// A piece of a deferred reply.
#[derive(Debug)]
enum Part {
    /// Protocol bytes and small values, copied.
    Bytes(Vec<u8>),
    /// A stored value, referenced.
    Value(Value),
}

impl Part {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Bytes(bytes) => bytes,
            Part::Value(value) => value,
        }
    }
}

impl Pending {
    fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The buffer small bytes are appended to: the last part if it is
    /// copied bytes, else a new one.
    fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.parts.back(), Some(Part::Bytes(_))) {
            self.parts.push_back(Part::Bytes(Vec::new()));
        }
        match self.parts.back_mut() {
            Some(Part::Bytes(bytes)) => bytes,
            _ => unreachable!("a Bytes part was just pushed"),
        }
    }

    /// Forgets everything (the connection is gone), freeing the memory.
    fn clear(&mut self) {
        *self = Pending::default();
    }

    /// Hands parts to the reactor while `conn` takes output; returns
    /// whether everything was handed over.
    fn pump(
        &mut self,
        ctx: &mut Context<'_, RespServer>,
        conn: ConnId,
    ) -> Result<bool, WriteError> {
        while let Some(front) = self.parts.front() {
            let rest = &front.bytes()[self.sent..];
            let len = rest.len();
            let handed = hand_over(ctx, conn, rest)?;
            if handed < len {
                self.sent += handed;
                return Ok(false);
            }
            self.parts.pop_front();
            self.sent = 0;
        }
        // Done: a long reply's part list gives its memory back.
        self.clear();
        Ok(true)
    }
}

/// Writes `bytes` to `conn` in pieces while it is below its high-water mark
/// and the pieces fit under its hard cap; returns how many bytes it wrote.
///
/// The reactor sends a piece at once when the queue reaches high water, so
/// while the client reads, a large value passes through a queue of about
/// the high-water mark; once it does not, the connection is backpressured
/// and the caller keeps the rest for `drained`.
fn hand_over(
    ctx: &mut Context<'_, RespServer>,
    conn: ConnId,
    bytes: &[u8],
) -> Result<usize, WriteError> {
    let max_output = ctx.limits(conn).ok_or(WriteError::Gone)?.max_output;
    let mut at = 0;
    while at < bytes.len() && !ctx.is_backpressured(conn) {
        let queued = ctx.queued_output(conn).ok_or(WriteError::Gone)?;
        let room = max_output.saturating_sub(queued);
        if room == 0 {
            // Not backpressured yet full: only limits lowered under a full
            // queue do this. No drain will call `drained`, so ask to be
            // called again next turn instead.
            ctx.wake(conn);
            break;
        }
        let n = (bytes.len() - at).min(PIECE).min(room);
        ctx.write(conn, &bytes[at..at + n])?;
        at += n;
    }
    Ok(at)
}

/// Where the replies of one `data` call go, in order: small ones into the
/// shared buffer `out`, handed to the reactor every `HANDOFF_AT` bytes;
/// large bulk strings straight to the reactor in pieces; and, once the
/// connection stops taking output, everything else into its [`Pending`].
struct Replies<'a, 'c> {
    /// The loop.
    ctx: &'a mut Context<'c, RespServer>,
    /// The connection replied to.
    conn: ConnId,
    /// Small replies not yet handed over (the server's reused buffer).
    /// Invariant: empty while `pending` is not (bytes then go there).
    out: &'a mut Vec<u8>,
    /// The connection's deferred reply.
    pending: &'a mut Pending,
    /// Write everything at once, never defer: set while the connection is
    /// subscribed, because messages published to it are written to the
    /// reactor directly and must not overtake a deferred reply. Its replies
    /// are small (confirmations, PING), and its queue is bounded by the
    /// pub/sub limits instead.
    direct: bool,
    /// A write failed: the connection is closed; everything else is moot.
    gone: bool,
}

impl Replies<'_, '_> {
    /// The buffer small replies are appended to now.
    fn buf(&mut self) -> &mut Vec<u8> {
        if self.pending.is_empty() {
            self.out
        } else {
            self.pending.tail()
        }
    }

    /// Hands the small replies over once enough have collected.
    fn reply_done(&mut self) {
        if self.out.len() >= HANDOFF_AT {
            self.flush();
        }
    }

    /// Whether the connection stopped taking output: execute no more.
    fn blocked(&self) -> bool {
        self.gone || !self.pending.is_empty() || self.ctx.is_backpressured(self.conn)
    }

    /// Hands `out` to the reactor; what it does not take is deferred.
    fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.gone {
            self.out.clear();
            return;
        }
        if self.direct {
            self.gone = self.ctx.write(self.conn, self.out).is_err();
        } else {
            match hand_over(self.ctx, self.conn, self.out) {
                Ok(n) if n < self.out.len() => {
                    self.pending
                        .parts
                        .push_back(Part::Bytes(self.out[n..].to_vec()));
                }
                Ok(_) => {}
                Err(_) => self.gone = true,
            }
        }
        self.out.clear();
    }

    /// A bulk string of bytes from the request (ECHO, PING).
    fn bulk(&mut self, bytes: &[u8]) {
        if bytes.len() < STREAM_AT || self.direct {
            bulk(self.buf(), bytes);
        } else {
            self.large(bytes, None);
        }
    }

    /// A stored value as a bulk string.
    fn value(&mut self, value: &Value) {
        let copy = self.direct
            || value.len() < SHARE_AT
            || value.len() < STREAM_AT && self.pending.is_empty();
        if copy {
            bulk(self.buf(), value);
        } else {
            self.large(value, Some(value));
        }
    }

    /// A bulk string that is not copied into `out`: its header goes there,
    /// then it is handed over in pieces; the rest, if the connection stops
    /// taking output, is deferred (by reference when it is a stored value).
    fn large(&mut self, bytes: &[u8], shared: Option<&Value>) {
        let header = self.buf();
        header.push(b'$');
        push_decimal(header, bytes.len() as u64);
        header.extend_from_slice(b"\r\n");
        let mut handed = 0;
        if self.pending.is_empty() {
            self.flush();
            if self.pending.is_empty() && !self.gone {
                match hand_over(self.ctx, self.conn, bytes) {
                    Ok(n) => handed = n,
                    Err(_) => self.gone = true,
                }
            }
        }
        if self.gone {
            return;
        }
        if handed < bytes.len() {
            match shared {
                Some(value) => {
                    let front = self.pending.is_empty();
                    self.pending.parts.push_back(Part::Value(Rc::clone(value)));
                    if front {
                        self.pending.sent = handed;
                    }
                }
                // Bytes from the input must be copied to outlive it; they
                // were at most the input cap, which they now leave.
                None => self.pending.tail().extend_from_slice(&bytes[handed..]),
            }
        }
        self.buf().extend_from_slice(b"\r\n");
    }
}

/// Whether a command asked for the connection to close (QUIT).
#[derive(PartialEq, Eq)]
enum After {
    /// Keep serving.
    Continue,
    /// Close once the replies are written.
    Close,
}

// Reply encoders. They append to a Vec; lengths and integers go through
// `push_decimal` rather than `write!`, since nearly every reply carries one.

fn simple(out: &mut Vec<u8>, text: &str) {
    out.push(b'+');
    out.extend_from_slice(text.as_bytes());
    out.extend_from_slice(b"\r\n");
}

/// `-<text>`; CR and LF become spaces so the reply stays one line.
fn error(out: &mut Vec<u8>, text: &str) {
    out.push(b'-');
    out.extend(
        text.bytes()
            .map(|b| if b == b'\r' || b == b'\n' { b' ' } else { b }),
    );
    out.extend_from_slice(b"\r\n");
}

fn bulk(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'$');
    push_decimal(out, bytes.len() as u64);
    out.extend_from_slice(b"\r\n");
    out.extend_from_slice(bytes);
    out.extend_from_slice(b"\r\n");
}

fn null(out: &mut Vec<u8>) {
    out.extend_from_slice(b"$-1\r\n");
}

fn integer(out: &mut Vec<u8>, n: i64) {
    out.push(b':');
    if n < 0 {
        out.push(b'-');
    }
    push_decimal(out, n.unsigned_abs());
    out.extend_from_slice(b"\r\n");
}

fn array(out: &mut Vec<u8>, len: usize) {
    out.push(b'*');
    push_decimal(out, len as u64);
    out.extend_from_slice(b"\r\n");
}

fn wrong_arity(out: &mut Vec<u8>, name: &str) {
    error(
        out,
        &format!("ERR wrong number of arguments for '{name}' command"),
    );
}

const NOT_AN_INTEGER: &str = "ERR value is not an integer or out of range";

/// Redis's reply to an unknown command: the name and the start of the
/// arguments, each cut to fit 128 bytes.
fn unknown_command(out: &mut Vec<u8>, name: &[u8], args: impl Iterator<Item = Vec<u8>>) {
    let mut shown = String::new();
    for arg in args {
        if shown.len() >= 128 {
            break;
        }
        let room = 128 - shown.len();
        let arg = String::from_utf8_lossy(&arg[..arg.len().min(room)]).into_owned();
        shown.push_str(&format!("'{arg}' "));
    }
    let name = String::from_utf8_lossy(&name[..name.len().min(128)]).into_owned();
    error(
        out,
        &format!("ERR unknown command '{name}', with args beginning with: {shown}"),
    );
}

/// The commands `RespServer::execute` knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cmd {
    Ping,
    Echo,
    Get,
    Set,
    Del,
    Exists,
    Incr,
    Mget,
    Quit,
    Config,
    Command,
    Subscribe,
    Unsubscribe,
    Publish,
    Reset,
}

impl Cmd {
    /// Every command, for COMMAND COUNT.
    const ALL: [Cmd; 15] = [
        Cmd::Ping,
        Cmd::Echo,
        Cmd::Get,
        Cmd::Set,
        Cmd::Del,
        Cmd::Exists,
        Cmd::Incr,
        Cmd::Mget,
        Cmd::Quit,
        Cmd::Config,
        Cmd::Command,
        Cmd::Subscribe,
        Cmd::Unsubscribe,
        Cmd::Publish,
        Cmd::Reset,
    ];

    /// The command named `name` (lower case).
    fn lookup(name: &[u8]) -> Option<Cmd> {
        // A match on the bytes, not a search of `ALL`: this runs for every
        // command, and the compiler turns it into a few comparisons.
        Some(match name {
            b"ping" => Cmd::Ping,
            b"echo" => Cmd::Echo,
            b"get" => Cmd::Get,
            b"set" => Cmd::Set,
            b"del" => Cmd::Del,
            b"exists" => Cmd::Exists,
            b"incr" => Cmd::Incr,
            b"mget" => Cmd::Mget,
            b"quit" => Cmd::Quit,
            b"config" => Cmd::Config,
            b"command" => Cmd::Command,
            b"subscribe" => Cmd::Subscribe,
            b"unsubscribe" => Cmd::Unsubscribe,
            b"publish" => Cmd::Publish,
            b"reset" => Cmd::Reset,
            _ => return None,
        })
    }

    /// The name, as Redis's error messages spell it.
    fn name(self) -> &'static str {
        match self {
            Cmd::Ping => "ping",
            Cmd::Echo => "echo",
            Cmd::Get => "get",
            Cmd::Set => "set",
            Cmd::Del => "del",
            Cmd::Exists => "exists",
            Cmd::Incr => "incr",
            Cmd::Mget => "mget",
            Cmd::Quit => "quit",
            Cmd::Config => "config",
            Cmd::Command => "command",
            Cmd::Subscribe => "subscribe",
            Cmd::Unsubscribe => "unsubscribe",
            Cmd::Publish => "publish",
            Cmd::Reset => "reset",
        }
    }

    /// Redis's arity: `n > 0`, exactly n words (the name included);
    /// `n < 0`, at least -n.
    fn arity(self) -> i64 {
        match self {
            Cmd::Ping | Cmd::Quit | Cmd::Command | Cmd::Unsubscribe => -1,
            Cmd::Echo | Cmd::Get | Cmd::Incr => 2,
            Cmd::Set => -3,
            Cmd::Del | Cmd::Exists | Cmd::Mget | Cmd::Config | Cmd::Subscribe => -2,
            Cmd::Publish => 3,
            Cmd::Reset => 1,
        }
    }

    /// What a subscribed connection (RESP2) may run.
    fn allowed_when_subscribed(self) -> bool {
        matches!(
            self,
            Cmd::Ping | Cmd::Quit | Cmd::Subscribe | Cmd::Unsubscribe | Cmd::Reset
        )
    }
}

/// The name Redis shows for a command in the subscribed-mode error:
/// `config|get` for a subcommand. `None` when the subcommand is unknown or
/// has the wrong arity, errors Redis reports before that one (and which the
/// command itself produces here).
fn full_name(cmd: Cmd, args: &[&[u8]]) -> Option<String> {
    let sub = match (cmd, args) {
        (Cmd::Config, [sub, _, ..]) if sub.eq_ignore_ascii_case(b"get") => "get",
        (Cmd::Config, _) => return None,
        (Cmd::Command, []) => return Some("command".into()),
        (Cmd::Command, [sub, ..]) if sub.eq_ignore_ascii_case(b"docs") => "docs",
        (Cmd::Command, [sub, ..]) if sub.eq_ignore_ascii_case(b"info") => "info",
        (Cmd::Command, [sub]) if sub.eq_ignore_ascii_case(b"count") => "count",
        (Cmd::Command, _) => return None,
        _ => return Some(cmd.name().into()),
    };
    Some(format!("{}|{sub}", cmd.name()))
}

impl RespServer {
    /// Runs one parsed command, replying through `r`. `channels` are the
    /// connection's subscriptions.
    fn execute(
        &mut self,
        r: &mut Replies<'_, '_>,
        parser: &Parser,
        channels: &mut BTreeSet<Vec<u8>>,
        frame: &[u8],
        now: Instant,
    ) -> After {
        let argc = parser.argc();
        let arg = |i: usize| parser.arg(frame, i);
        // Command names are matched case-insensitively through a small
        // stack buffer: no allocation per command.
        let mut lower = [0u8; 16];
        let name = arg(0);
        let cmd = if name.len() <= lower.len() {
            lower[..name.len()].copy_from_slice(name);
            lower[..name.len()].make_ascii_lowercase();
            Cmd::lookup(&lower[..name.len()])
        } else {
            None
        };
        // Redis's order of checks: unknown command, arity, then the
        // subscribed context.
        let Some(cmd) = cmd else {
            unknown_command(r.buf(), name, (1..argc).map(|i| arg(i).to_vec()));
            return After::Continue;
        };
        let arity = cmd.arity();
        if (arity > 0 && argc as i64 != arity) || (arity < 0 && (argc as i64) < -arity) {
            wrong_arity(r.buf(), cmd.name());
            return After::Continue;
        }
        if !channels.is_empty() && !cmd.allowed_when_subscribed() {
            let args: Vec<&[u8]> = (1..argc).map(arg).collect();
            if let Some(shown) = full_name(cmd, &args) {
                error(
                    r.buf(),
                    &format!(
                        "ERR Can't execute '{shown}': only (P|S)SUBSCRIBE / \
                         (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context"
                    ),
                );
                return After::Continue;
            }
        }
        match cmd {
            Cmd::Ping => match (argc, channels.is_empty()) {
                (1, true) => simple(r.buf(), "PONG"),
                (2, true) => r.bulk(arg(1)),
                // Subscribed, PING answers in the shape of a message.
                (1, false) => r.buf().extend_from_slice(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n"),
                (2, false) => {
                    r.buf().extend_from_slice(b"*2\r\n$4\r\npong\r\n");
                    r.bulk(arg(1));
                }
                _ => wrong_arity(r.buf(), "ping"),
            },
            Cmd::Echo => r.bulk(arg(1)),
            Cmd::Get => match self.store.get(arg(1), now) {
                Some(entry) => r.value(&entry.value),
                None => null(r.buf()),
            },
            Cmd::Set => {
                let options: Vec<&[u8]> = (3..argc).map(arg).collect();
                set(&mut self.store, r.buf(), arg(1), arg(2), &options, now);
            }
            Cmd::Del => {
                let removed = (1..argc)
                    .filter(|&i| self.store.remove(arg(i), now))
                    .count();
                integer(r.buf(), removed as i64);
            }
            Cmd::Exists => {
                let live = (1..argc)
                    .filter(|&i| self.store.get(arg(i), now).is_some())
                    .count();
                integer(r.buf(), live as i64);
            }
            Cmd::Incr => incr(&mut self.store, r.buf(), arg(1), now),
            Cmd::Mget => {
                array(r.buf(), argc - 1);
                for i in 1..argc {
                    match self.store.get(arg(i), now) {
                        Some(entry) => r.value(&entry.value),
                        None => null(r.buf()),
                    }
                    r.reply_done();
                }
            }
            Cmd::Quit => {
                simple(r.buf(), "OK");
                return After::Close;
            }
            Cmd::Config => config(r.buf(), &(1..argc).map(arg).collect::<Vec<_>>()),
            Cmd::Command => command(r.buf(), &(1..argc).map(arg).collect::<Vec<_>>()),
            Cmd::Subscribe => {
                let was_subscribed = !channels.is_empty();
                for i in 1..argc {
                    let channel = arg(i);
                    if channels.insert(channel.to_vec()) {
                        self.pubsub.add(channel, r.conn);
                    }
                    confirm(r.buf(), "subscribe", Some(channel), channels.len());
                }
                if !was_subscribed {
                    self.set_class(r, true);
                }
            }
            Cmd::Unsubscribe => {
                let was_subscribed = !channels.is_empty();
                if argc == 1 {
                    if channels.is_empty() {
                        confirm(r.buf(), "unsubscribe", None, 0);
                    }
                    while let Some(channel) = channels.pop_first() {
                        self.pubsub.remove(&channel, r.conn);
                        confirm(r.buf(), "unsubscribe", Some(&channel), channels.len());
                    }
                } else {
                    for i in 1..argc {
                        let channel = arg(i);
                        if channels.remove(channel) {
                            self.pubsub.remove(channel, r.conn);
                        }
                        confirm(r.buf(), "unsubscribe", Some(channel), channels.len());
                    }
                }
                if was_subscribed && channels.is_empty() {
                    self.set_class(r, false);
                }
            }
            Cmd::Publish => {
                let receivers = self.pubsub.publish(r.ctx, arg(1), arg(2));
                integer(r.buf(), receivers);
            }
            Cmd::Reset => {
                if !channels.is_empty() {
                    for channel in std::mem::take(channels) {
                        self.pubsub.remove(&channel, r.conn);
                    }
                    self.set_class(r, false);
                }
                simple(r.buf(), "RESET");
            }
        }
        After::Continue
    }

    /// Gives the connection the pub/sub class's limits (or back the normal
    /// ones) as it enters (or leaves) subscribed mode, as Redis classifies a
    /// client by whether it is subscribed.
    fn set_class(&self, r: &mut Replies<'_, '_>, subscribed: bool) {
        let limits = if subscribed {
            self.pubsub_limits
        } else {
            self.normal_limits
        };
        r.direct = subscribed;
        if let Err(e) = r.ctx.set_limits(r.conn, limits) {
            // Both were validated at start-up.
            log::error!("{}: {e}", r.conn);
        }
    }
}

/// A (un)subscribe confirmation: `[kind, channel or null, count]`.
fn confirm(out: &mut Vec<u8>, kind: &str, channel: Option<&[u8]>, count: usize) {
    array(out, 3);
    bulk(out, kind.as_bytes());
    match channel {
        Some(channel) => bulk(out, channel),
        None => null(out),
    }
    integer(out, count as i64);
}

/// `SET key value [NX|XX] [EX s|PX ms|KEEPTTL]`.
fn set(
    store: &mut Store,
    out: &mut Vec<u8>,
    key: &[u8],
    value: &[u8],
    options: &[&[u8]],
    now: Instant,
) {
    let (mut nx, mut xx, mut keep_ttl) = (false, false, false);
    let mut expire: Option<Duration> = None;
    let mut i = 0;
    while i < options.len() {
        let option = options[i].to_ascii_lowercase();
        match option.as_slice() {
            b"nx" if !xx => nx = true,
            b"xx" if !nx => xx = true,
            b"keepttl" if expire.is_none() => keep_ttl = true,
            b"ex" | b"px" if expire.is_none() && !keep_ttl && i + 1 < options.len() => {
                i += 1;
                let Some(n) = parse_int(options[i]) else {
                    return error(out, NOT_AN_INTEGER);
                };
                if n <= 0 {
                    return error(out, "ERR invalid expire time in 'set' command");
                }
                let n = n as u64;
                expire = Some(if option == b"ex" {
                    Duration::from_secs(n)
                } else {
                    Duration::from_millis(n)
                });
            }
            _ => return error(out, "ERR syntax error"),
        }
        i += 1;
    }
    let existing = store.get(key, now);
    let exists = existing.is_some();
    if (nx && exists) || (xx && !exists) {
        return null(out);
    }
    let expires_at = match (expire, keep_ttl, existing) {
        (Some(after), _, _) => now.checked_add(after),
        (None, true, Some(entry)) => entry.expires_at,
        _ => None,
    };
    store.set(key, value, expires_at);
    simple(out, "OK");
}

/// `INCR key`: the value must be a decimal `i64`; the TTL is kept.
fn incr(store: &mut Store, out: &mut Vec<u8>, key: &[u8], now: Instant) {
    let (current, expires_at) = match store.get(key, now) {
        Some(entry) => match parse_int(&entry.value) {
            Some(n) => (n, entry.expires_at),
            None => return error(out, NOT_AN_INTEGER),
        },
        None => (0, None),
    };
    let Some(next) = current.checked_add(1) else {
        return error(out, "ERR increment or decrement would overflow");
    };
    // Formatted on the stack: an i64 needs at most 20 bytes.
    let mut digits = [0u8; 20];
    let mut rest = &mut digits[..];
    let _ = write!(rest, "{next}");
    let len = 20 - rest.len();
    store.set(key, &digits[..len], expires_at);
    integer(out, next);
}

/// `CONFIG GET name...` for the settings benchmark tools look at; other
/// names match nothing. Only GET exists.
fn config(out: &mut Vec<u8>, args: &[&[u8]]) {
    const SETTINGS: [(&str, &str); 2] = [("save", ""), ("appendonly", "no")];
    match args.split_first() {
        Some((sub, names)) if sub.eq_ignore_ascii_case(b"get") && !names.is_empty() => {
            let found: Vec<_> = SETTINGS
                .iter()
                .filter(|(setting, _)| {
                    names
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(setting.as_bytes()) || *n == b"*")
                })
                .collect();
            array(out, found.len() * 2);
            for (setting, value) in found {
                bulk(out, setting.as_bytes());
                bulk(out, value.as_bytes());
            }
        }
        Some((sub, [])) if sub.eq_ignore_ascii_case(b"get") => wrong_arity(out, "config|get"),
        Some((sub, _)) => error(
            out,
            &format!(
                "ERR unknown subcommand '{}'. Try CONFIG HELP.",
                String::from_utf8_lossy(sub)
            ),
        ),
        None => wrong_arity(out, "config"),
    }
}

/// `COMMAND`, `COMMAND DOCS`, `COMMAND INFO`: empty arrays, which clients
/// take as "no metadata" (redis-cli then skips its hints). `COMMAND COUNT`
/// counts the commands `RespServer::execute` knows.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    match args.first() {
        None => array(out, 0),
        Some(sub) if sub.eq_ignore_ascii_case(b"docs") || sub.eq_ignore_ascii_case(b"info") => {
            array(out, 0)
        }
        Some(sub) if sub.eq_ignore_ascii_case(b"count") => integer(out, Cmd::ALL.len() as i64),
        Some(sub) => error(
            out,
            &format!(
                "ERR unknown subcommand '{}'. Try COMMAND HELP.",
                String::from_utf8_lossy(sub)
            ),
        ),
    }
}

impl Handler for RespServer {
    type State = RespConn;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> RespConn {
        RespConn::default()
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut RespConn,
        input: &[u8],
    ) -> usize {
        // A reply in progress goes first; the input waits behind it. (The
        // reactor may offer input before `drained` has run after a drain.)
        if !st.pending.is_empty() {
            match st.pending.pump(ctx, conn) {
                Ok(true) => {}
                Ok(false) => return 0,
                Err(_) => {
                    st.pending.clear();
                    return input.len();
                }
            }
        }
        if st.ending == Ending::Close {
            ctx.close_after_flush(conn);
            return input.len();
        }
        if ctx.is_backpressured(conn) {
            return 0;
        }
        let now = ctx.now();
        let mut out = std::mem::take(&mut self.out);
        let mut r = Replies {
            ctx: &mut *ctx,
            conn,
            out: &mut out,
            pending: &mut st.pending,
            direct: !st.channels.is_empty(),
            gone: false,
        };
        let mut consumed = 0;
        let mut close = false;
        loop {
            let rest = &input[consumed..];
            match st.parser.parse(rest) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty(len)) => consumed += len,
                Ok(Parsed::Command(len)) => {
                    let after =
                        self.execute(&mut r, &st.parser, &mut st.channels, &rest[..len], now);
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
        let gone = r.gone;
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
        match st.pending.pump(ctx, conn) {
            Ok(true) => match st.ending {
                Ending::No => {}
                Ending::Close => ctx.close_after_flush(conn),
                // `data` answers what is left of the input, then closes.
                Ending::PeerDone => ctx.wake(conn),
            },
            Ok(false) => {}
            Err(_) => st.pending.clear(),
        }
    }

    /// The client sent FIN: close once everything owed is written, which
    /// may include a reply still being produced and commands behind it.
    ///
    /// The reactor calls this once its last offer of the input made no
    /// progress, which includes an offer that `data` declined because a
    /// reply was still in progress and the connection was backpressured
    /// again (a reactor bug: it should wait for the drain, as it does when
    /// backpressured before the offer). So with a reply in progress, the
    /// input may still hold commands: `drained` wakes the connection once
    /// the reply is out, and `data` answers them before closing.
    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: &mut RespConn) {
        if st.pending.is_empty() {
            ctx.close_after_flush(conn);
        } else {
            st.ending = Ending::PeerDone;
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, st: RespConn, _: CloseReason) {
        for channel in &st.channels {
            self.pubsub.remove(channel, conn);
        }
    }

    /// A graceful shutdown waits for a reply still being produced.
    fn is_idle(&self, st: &RespConn) -> bool {
        st.pending.is_empty()
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        self.shutdown.on_ready(ctx, source);
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
    let seconds = Duration::try_from_secs_f64(args.pubsub_soft_seconds).map_err(|e| {
        std::io::Error::other(format!(
            "--pubsub-soft-seconds {}: {e}",
            args.pubsub_soft_seconds
        ))
    })?;
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
    let normal_limits = config.limits();
    let handler = RespServer {
        store: Store::default(),
        pubsub: PubSub::default(),
        out: Vec::with_capacity(RETAINED),
        normal_limits,
        pubsub_limits: pubsub_limits(args, normal_limits)?,
        shutdown: ShutdownSignals::new(Duration::from_secs_f64(args.grace))?,
    };
    let mut reactor = Reactor::new(handler, config)?;
    reactor.with_context(|handler, ctx| handler.shutdown.register(ctx))?;
    let listener = reactor.listen(args.addr)?;
    eprintln!("resp_server listening on {}", reactor.local_addr(listener)?);
    reactor.run()?;
    let stats = reactor.stats();
    // The write count lets tests check that pipelined replies were batched.
    eprintln!(
        "resp_server stopped: {} accepted, {} keys, {} writes",
        stats.accepted,
        reactor.handler().store.map.len(),
        stats.write_syscalls
    );
    Ok(())
}
