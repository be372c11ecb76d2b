//! Running one parsed command of the `resp_server` example: the dispatch
//! to each command's body, the small commands themselves (PING, ECHO, GET,
//! DEL, EXISTS, MGET, QUIT), and the start-up queries of `redis-cli` and
//! `redis-benchmark` (CONFIG GET, COMMAND). String commands live in
//! `strings.rs`, key-space ones in `keys.rs`, HELLO and CLIENT in
//! `conn.rs`, INFO in `info.rs`, pub/sub in `pubsub.rs`.
//!
//! A command only says what to answer, through [`Replies`]; whether the
//! answer is copied, streamed or deferred until the client reads is decided
//! there, so no command here knows about flow control.

use crate::cmd::Cmd;
use crate::conn::{self, Session};
use crate::info;
use crate::keys;
use crate::pubsub::Kind;
use crate::replies::Replies;
use crate::reply::{array, bulk, error, integer, map, simple, unknown_subcommand, wrong_arity};
use crate::strings;
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
    /// Runs `cmd`, admitted with its arguments `argv` (name first; see
    /// `Cmd::admit`), replying through `r`, for the connection whose
    /// session is `session`; `now` is the Unix time in ms. Transactions are
    /// `multi.rs`'s: MULTI, EXEC and DISCARD never get here.
    pub fn execute(
        &mut self,
        r: &mut Replies<'_, '_>,
        cmd: Cmd,
        argv: &[&[u8]],
        session: &mut Session,
        now: i64,
    ) -> After {
        let restricted = session.subscribed() && !session.resp3;
        let argc = argv.len();
        let arg = |i: usize| argv[i];
        let args = &argv[1..];
        let store = &mut self.store;
        let metrics = &mut self.metrics;
        match cmd {
            Cmd::Ping => match (argc, restricted) {
                (1, false) => simple(r.buf(), "PONG"),
                (2, false) => r.bulk(arg(1)),
                // Subscribed in RESP2, PING answers in the shape of a
                // message.
                (1 | 2, true) => {
                    r.buf().extend_from_slice(b"*2\r\n$4\r\npong\r\n");
                    r.bulk(if argc == 2 { arg(1) } else { b"" });
                }
                _ => wrong_arity(r.buf(), "ping"),
            },
            Cmd::Echo => r.bulk(arg(1)),
            Cmd::Get => {
                let found = store.get(arg(1), now);
                metrics.lookup(found.is_some());
                r.value(found.map(|e| &e.value));
            }
            Cmd::Set => strings::set(r, store, args, now),
            Cmd::Setnx => strings::setnx(r, store, arg(1), arg(2), now),
            Cmd::Getset => strings::getset(r, store, arg(1), arg(2), now),
            Cmd::Getdel => strings::getdel(r, store, arg(1), now),
            Cmd::Mset => strings::mset(r, store, args),
            Cmd::Append => strings::append(r, store, arg(1), arg(2), now),
            Cmd::Strlen => strings::strlen(r, store, arg(1), now),
            Cmd::Incr | Cmd::Decr | Cmd::Incrby | Cmd::Decrby => {
                let by = match cmd {
                    Cmd::Incr => Ok(1),
                    Cmd::Decr => Ok(-1),
                    _ => strings::delta(arg(2), cmd == Cmd::Decrby),
                };
                match by {
                    Ok(by) => strings::incr_by(r, store, arg(1), by, now),
                    Err(e) => error(r.buf(), e),
                }
            }
            Cmd::Del => {
                let removed = args.iter().filter(|k| store.remove(k, now)).count();
                integer(r.buf(), removed as i64);
            }
            Cmd::Exists => {
                let live = args.iter().filter(|k| store.get(k, now).is_some()).count();
                metrics.hits += live as u64;
                metrics.misses += (args.len() - live) as u64;
                integer(r.buf(), live as i64);
            }
            Cmd::Mget => {
                array(r.buf(), argc - 1);
                for key in args {
                    let found = store.get(key, now);
                    metrics.lookup(found.is_some());
                    r.value(found.map(|e| &e.value));
                    r.reply_done();
                }
            }
            Cmd::Expire => keys::expire(r, store, ("expire", 1000), args, now),
            Cmd::Pexpire => keys::expire(r, store, ("pexpire", 1), args, now),
            Cmd::Ttl => keys::ttl(r, store, arg(1), 1000, now),
            Cmd::Pttl => keys::ttl(r, store, arg(1), 1, now),
            Cmd::Persist => keys::persist(r, store, arg(1), now),
            Cmd::Type => keys::key_type(r, store, arg(1), now),
            Cmd::Keys => keys::keys(r, store, arg(1), now),
            Cmd::Dbsize => keys::dbsize(r, store, now),
            Cmd::Flushdb => keys::flushdb(r, store, args),
            Cmd::Info => {
                let facts = self.facts(r.ctx, now);
                info::info(r, args, &facts);
            }
            Cmd::Quit => {
                simple(r.buf(), "OK");
                return After::Close;
            }
            Cmd::Hello => conn::hello(r, session, args),
            Cmd::Client => return self.client(r, session, argv),
            Cmd::Config => config(r, args, self.max_clients),
            Cmd::Command => command(r, args),
            Cmd::Slowlog => slowlog(r, args),
            Cmd::Latency => latency(r, args),
            Cmd::Subscribe => {
                self.pubsub
                    .subscribe(r, session, Kind::Channel, args.iter().copied())
            }
            Cmd::Psubscribe => {
                self.pubsub
                    .subscribe(r, session, Kind::Pattern, args.iter().copied())
            }
            Cmd::Unsubscribe => {
                self.pubsub
                    .unsubscribe(r, session, Kind::Channel, args.iter().copied())
            }
            Cmd::Punsubscribe => {
                self.pubsub
                    .unsubscribe(r, session, Kind::Pattern, args.iter().copied())
            }
            Cmd::Publish => self.pubsub.publish(r, arg(1), arg(2)),
            Cmd::Unwatch => {
                self.unwatch_all(session);
                simple(r.buf(), "OK");
            }
            Cmd::Reset => {
                session.multi = None;
                self.unwatch_all(session);
                self.pubsub.reset(r, session);
            }
            Cmd::Multi | Cmd::Exec | Cmd::Discard | Cmd::Watch => {
                unreachable!("transactions are run by RespServer::run")
            }
        }
        After::Continue
    }
}

/// `CONFIG GET name...` for the settings benchmark tools and monitoring
/// (prometheus's redis_exporter asks for `*`) look at, with this server's
/// true values; other names match nothing. Only GET exists. A map in RESP3.
fn config(r: &mut Replies<'_, '_>, args: &[&[u8]], max_clients: usize) {
    let resp3 = r.resp3;
    let out = r.buf();
    let max_clients = max_clients.to_string();
    let settings: [(&str, &str); 7] = [
        ("save", ""),
        ("appendonly", "no"),
        ("maxmemory", "0"),
        ("maxmemory-policy", "noeviction"),
        ("maxclients", &max_clients),
        // One key space: SELECT does not exist here.
        ("databases", "1"),
        ("io-threads", "1"),
    ];
    match args.split_first() {
        Some((sub, names)) if sub.eq_ignore_ascii_case(b"get") && !names.is_empty() => {
            let found: Vec<_> = settings
                .iter()
                .filter(|(setting, _)| {
                    names
                        .iter()
                        .any(|n| n.eq_ignore_ascii_case(setting.as_bytes()) || *n == b"*")
                })
                .collect();
            map(out, found.len(), resp3);
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

/// `SLOWLOG GET [n] | LEN | RESET`: nothing is logged here (no command
/// is timed), so an empty log, which monitoring tools read as "no slow
/// commands".
fn slowlog(r: &mut Replies<'_, '_>, args: &[&[u8]]) {
    let out = r.buf();
    match args[0].to_ascii_lowercase().as_slice() {
        b"get" if args.len() <= 2 => array(out, 0),
        b"len" if args.len() == 1 => integer(out, 0),
        b"reset" if args.len() == 1 => simple(out, "OK"),
        b"get" | b"len" | b"reset" => {
            let name = format!(
                "slowlog|{}",
                String::from_utf8_lossy(args[0]).to_lowercase()
            );
            wrong_arity(out, &name)
        }
        _ => unknown_subcommand(out, "SLOWLOG", args[0]),
    }
}

/// `LATENCY LATEST | RESET`: no latency monitor runs here, so no events.
fn latency(r: &mut Replies<'_, '_>, args: &[&[u8]]) {
    let out = r.buf();
    match args[0].to_ascii_lowercase().as_slice() {
        b"latest" => array(out, 0),
        b"reset" => integer(out, 0),
        _ => unknown_subcommand(out, "LATENCY", args[0]),
    }
}

/// `COMMAND`, `COMMAND DOCS`, `COMMAND INFO`: empty arrays, which clients
/// take as "no metadata" (redis-cli then skips its hints). `COMMAND COUNT`
/// counts the commands `RespServer::execute` knows. (COMMAND DOCS is a map
/// in RESP3.)
fn command(r: &mut Replies<'_, '_>, args: &[&[u8]]) {
    let resp3 = r.resp3;
    let out = r.buf();
    match args.first() {
        None => array(out, 0),
        Some(sub) if sub.eq_ignore_ascii_case(b"docs") => map(out, 0, resp3),
        Some(sub) if sub.eq_ignore_ascii_case(b"info") => array(out, 0),
        Some(sub) if sub.eq_ignore_ascii_case(b"count") => integer(out, Cmd::ALL.len() as i64),
        Some(sub) => unknown_subcommand(out, "COMMAND", sub),
    }
}
