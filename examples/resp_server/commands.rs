//! Running one parsed command of the `resp_server` example: the key-space
//! commands (GET, SET, DEL, EXISTS, INCR, MGET), the connection ones (PING,
//! ECHO, QUIT), the start-up queries of `redis-cli` and `redis-benchmark`
//! (CONFIG GET, COMMAND), and the dispatch of pub/sub to `pubsub.rs`.
//!
//! A command only says what to answer, through [`Replies`]; whether the
//! answer is copied, streamed or deferred until the client reads is decided
//! there, so no command here knows about flow control.

use std::collections::BTreeSet;
use std::io::Write as _;
use std::time::{Duration, Instant};

use crate::cmd::Cmd;
use crate::parse::{parse_int, Parser};
use crate::replies::Replies;
use crate::reply::{
    array, bulk, error, integer, null, simple, unknown_subcommand, wrong_arity, NOT_AN_INTEGER,
};
use crate::store::Store;
use crate::RespServer;

/// Whether a command asked for the connection to close (QUIT).
#[derive(PartialEq, Eq)]
pub enum After {
    /// Keep serving.
    Continue,
    /// Close once the replies are written.
    Close,
}

impl RespServer {
    /// Runs one parsed command, replying through `r`. `channels` are the
    /// connection's subscriptions.
    pub fn execute(
        &mut self,
        r: &mut Replies<'_, '_>,
        parser: &Parser,
        channels: &mut BTreeSet<Vec<u8>>,
        frame: &[u8],
        now: Instant,
    ) -> After {
        let Some(cmd) = Cmd::admit(r, parser, frame, !channels.is_empty()) else {
            return After::Continue;
        };
        let argc = parser.argc();
        let arg = |i: usize| parser.arg(frame, i);
        let args_from = |first: usize| (first..argc).map(arg).collect::<Vec<_>>();
        match cmd {
            Cmd::Ping => match (argc, channels.is_empty()) {
                (1, true) => simple(r.buf(), "PONG"),
                (2, true) => r.bulk(arg(1)),
                // Subscribed, PING answers in the shape of a message.
                (1 | 2, false) => {
                    r.buf().extend_from_slice(b"*2\r\n$4\r\npong\r\n");
                    r.bulk(if argc == 2 { arg(1) } else { b"" });
                }
                _ => wrong_arity(r.buf(), "ping"),
            },
            Cmd::Echo => r.bulk(arg(1)),
            Cmd::Get => r.value(self.store.get(arg(1), now).map(|e| &e.value)),
            Cmd::Set => set(&mut self.store, r.buf(), arg(1), arg(2), &args_from(3), now),
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
                    r.value(self.store.get(arg(i), now).map(|e| &e.value));
                    r.reply_done();
                }
            }
            Cmd::Quit => {
                simple(r.buf(), "OK");
                return After::Close;
            }
            Cmd::Config => config(r.buf(), &args_from(1)),
            Cmd::Command => command(r.buf(), &args_from(1)),
            Cmd::Subscribe => self.pubsub.subscribe(r, channels, (1..argc).map(arg)),
            Cmd::Unsubscribe => self.pubsub.unsubscribe(r, channels, (1..argc).map(arg)),
            Cmd::Publish => self.pubsub.publish(r, arg(1), arg(2)),
            Cmd::Reset => self.pubsub.reset(r, channels),
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
        Some((sub, _)) => unknown_subcommand(out, "CONFIG", sub),
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
        Some(sub) => unknown_subcommand(out, "COMMAND", sub),
    }
}
