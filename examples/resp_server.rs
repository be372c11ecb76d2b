//! A small in-memory key-value server speaking RESP2, the Redis protocol,
//! on the reactor. It exists to show that the library's public API carries a
//! real, pipelined, binary-safe protocol, and to be pointed at real clients:
//!
//! ```text
//! cargo run --release --example resp_server -- --addr 127.0.0.1:6380
//! redis-cli -p 6380 set greeting hello
//! redis-benchmark -p 6380 -t ping,set,get -n 100000 -q -P 16
//! ```
//!
//! Commands: PING, ECHO, SET (with EX, PX, NX, XX, KEEPTTL), GET, DEL,
//! EXISTS, INCR, MGET, QUIT, and the parts of CONFIG GET and COMMAND that
//! `redis-cli` and `redis-benchmark` ask for at start-up. Replies and error
//! texts follow Redis 7. Keys expire lazily, when next touched.
//!
//! Every command in one `data` call is executed in order and its reply
//! appended to one buffer that leaves in one write, so a pipeline of 16
//! commands costs one `sendmsg`. A protocol error is answered like Redis
//! answers it, after the replies to the commands before it, and closes the
//! connection. The query buffer is the reactor's input buffer, capped by
//! `--max-query` (`Config::max_input`); replies are capped by `--max-output`
//! (`Config::max_output`).

#[path = "resp_server/parse.rs"]
mod parse;

use std::collections::HashMap;
use std::io::Write as _;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use reactor::{Config, ConnId, Context, Event, Handler, Reactor, SourceId};

#[path = "support/decimal.rs"]
mod decimal;
#[path = "support/server.rs"]
mod server;
use decimal::push_decimal;
use server::ShutdownSignals;

use parse::{parse_int, Parsed, Parser};

/// Replies buffered past this size are handed to the reactor before the
/// next command runs, so a long pipeline of large replies meets the output
/// cap (and is closed) instead of growing this buffer without bound.
const HANDOFF_AT: usize = 64 * 1024;

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
    /// Most bytes of unsent replies per client before it is disconnected.
    #[arg(long, default_value_t = 64 * 1024 * 1024)]
    max_output: usize,
    /// Seconds a graceful shutdown waits before force-closing connections.
    #[arg(long, default_value_t = 10.0)]
    grace: f64,
    /// Most concurrent connections (default: from the descriptor limit).
    #[arg(long)]
    max_connections: Option<usize>,
}

/// One stored value.
#[derive(Debug)]
struct Entry {
    /// The value's bytes (binary-safe).
    value: Vec<u8>,
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

    /// Sets `key`, reusing the old value's allocation when there is one.
    fn set(&mut self, key: &[u8], value: &[u8], expires_at: Option<Instant>) {
        match self.map.get_mut(key) {
            Some(entry) => {
                entry.value.clear();
                entry.value.extend_from_slice(value);
                entry.expires_at = expires_at;
            }
            None => {
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value: value.to_vec(),
                        expires_at,
                    },
                );
            }
        }
    }
}

/// The server: the key space, a reply buffer and the signal pipe.
struct RespServer {
    /// All keys, shared by every connection (the loop has one thread).
    store: Store,
    /// Replies produced by one `data` call. Invariant: empty between
    /// callbacks; its capacity is reused.
    out: Vec<u8>,
    /// SIGINT/SIGTERM: the first starts a graceful shutdown, a second stops.
    shutdown: ShutdownSignals,
}

/// Per-connection state: where the parser is in the command being received.
#[derive(Debug, Default)]
struct RespConn {
    /// Incremental parser; holds offsets into this connection's input.
    parser: Parser,
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

impl RespServer {
    /// Runs one parsed command, appending its reply to `self.out`.
    fn execute(&mut self, parser: &Parser, frame: &[u8], now: Instant) -> After {
        let argc = parser.argc();
        let arg = |i: usize| parser.arg(frame, i);
        // Command names are matched case-insensitively through a small
        // stack buffer: no allocation per command.
        let mut lower = [0u8; 16];
        let name = arg(0);
        let key: &[u8] = if name.len() <= lower.len() {
            lower[..name.len()].copy_from_slice(name);
            lower[..name.len()].make_ascii_lowercase();
            &lower[..name.len()]
        } else {
            b""
        };
        let out = &mut self.out;
        match key {
            b"ping" => match argc {
                1 => simple(out, "PONG"),
                2 => bulk(out, arg(1)),
                _ => wrong_arity(out, "ping"),
            },
            b"echo" => match argc {
                2 => bulk(out, arg(1)),
                _ => wrong_arity(out, "echo"),
            },
            b"get" => match argc {
                2 => match self.store.get(arg(1), now) {
                    Some(entry) => bulk(out, &entry.value),
                    None => null(out),
                },
                _ => wrong_arity(out, "get"),
            },
            b"set" => {
                if argc < 3 {
                    wrong_arity(out, "set");
                } else {
                    let options: Vec<&[u8]> = (3..argc).map(arg).collect();
                    set(&mut self.store, out, arg(1), arg(2), &options, now);
                }
            }
            b"del" | b"exists" => {
                if argc < 2 {
                    wrong_arity(out, if key == b"del" { "del" } else { "exists" });
                } else {
                    let mut count = 0;
                    for i in 1..argc {
                        let live = self.store.get(arg(i), now).is_some();
                        if live && key == b"del" {
                            self.store.map.remove(arg(i));
                        }
                        count += i64::from(live);
                    }
                    integer(out, count);
                }
            }
            b"incr" => match argc {
                2 => incr(&mut self.store, out, arg(1), now),
                _ => wrong_arity(out, "incr"),
            },
            b"mget" => {
                if argc < 2 {
                    wrong_arity(out, "mget");
                } else {
                    array(out, argc - 1);
                    for i in 1..argc {
                        match self.store.get(arg(i), now) {
                            Some(entry) => bulk(out, &entry.value),
                            None => null(out),
                        }
                    }
                }
            }
            b"quit" => {
                simple(out, "OK");
                return After::Close;
            }
            b"config" => config(out, &(1..argc).map(arg).collect::<Vec<_>>()),
            b"command" => command(out, &(1..argc).map(arg).collect::<Vec<_>>()),
            _ => unknown_command(out, name, (1..argc).map(|i| arg(i).to_vec())),
        }
        After::Continue
    }
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
/// counts the eleven commands `RespServer::execute` knows.
fn command(out: &mut Vec<u8>, args: &[&[u8]]) {
    match args.first() {
        None => array(out, 0),
        Some(sub) if sub.eq_ignore_ascii_case(b"docs") || sub.eq_ignore_ascii_case(b"info") => {
            array(out, 0)
        }
        Some(sub) if sub.eq_ignore_ascii_case(b"count") => integer(out, 11),
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
        let now = ctx.now();
        let mut consumed = 0;
        let mut close = false;
        loop {
            let rest = &input[consumed..];
            match st.parser.parse(rest) {
                Ok(Parsed::Incomplete) => break,
                Ok(Parsed::Empty(len)) => consumed += len,
                Ok(Parsed::Command(len)) => {
                    let after = self.execute(&st.parser, &rest[..len], now);
                    consumed += len;
                    if after == After::Close {
                        close = true;
                        break;
                    }
                    if self.out.len() >= HANDOFF_AT {
                        let handed = ctx.write(conn, &self.out);
                        self.out.clear();
                        if handed.is_err() {
                            // Over the output cap: already closed.
                            return input.len();
                        }
                    }
                }
                Err(e) => {
                    log::debug!("{conn}: {e}");
                    self.out.extend_from_slice(e.reply().as_bytes());
                    close = true;
                    break;
                }
            }
        }
        if !self.out.is_empty() {
            let _ = ctx.write(conn, &self.out);
            self.out.clear();
        }
        if close {
            ctx.close_after_flush(conn);
            return input.len();
        }
        consumed
    }

    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, _: &Event) {
        self.shutdown.on_ready(ctx, source);
    }
}

fn main() -> ExitCode {
    server::run("resp_server", serve)
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
    let handler = RespServer {
        store: Store::default(),
        out: Vec::with_capacity(HANDOFF_AT),
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
