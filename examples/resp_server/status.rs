//! What the `resp_server` example says about itself and its clients: the
//! facts INFO reports, gathered from the loop (`Context::stats`,
//! `Context::connections`), the key space and the server's counters; and
//! the CLIENT subcommands that look at other connections, LIST, INFO and
//! KILL, in Redis 7.0's formats. CLIENT's per-connection subcommands (ID,
//! GETNAME, SETNAME, SETINFO) stay with the session in `conn.rs`.
//!
//! Kept apart from `info.rs` (which formats) because this is the one place
//! that reads the loop's per-connection listing and the other
//! connections' states, which only the handler, through its `Context`, can.

use std::fmt::Write as _;
use std::hash::{BuildHasher, Hasher};
use std::net::SocketAddr;
use std::os::fd::AsRawFd;

use reactor::{ConnId, ConnInfo, ConnState, Context};

use crate::commands::After;
use crate::conn::{self, Session};
use crate::info::{Facts, RATES};
use crate::metrics::rss_bytes;
use crate::parse::parse_int;
use crate::replies::Replies;
use crate::reply::{error, error_bytes, integer, simple, verbatim, wrong_arity, NOT_AN_INTEGER};
use crate::{Ending, RespConn, RespServer};

/// Redis's syntax error.
const SYNTAX: &str = "ERR syntax error";

impl RespServer {
    /// INFO's facts as of now (`now`: Unix ms, for expiry). Walks the key
    /// space and the connections: a monitoring read, not a hot path.
    pub fn facts(&mut self, ctx: &Context<'_, RespServer>, now: i64) -> Facts {
        let conns = listed(ctx);
        let max_in = conns.iter().map(|c| c.queued_input).max().unwrap_or(0);
        let max_out = conns.iter().map(|c| c.queued_output).max().unwrap_or(0);
        // A client's memory: its buffers and its state here.
        let clients: usize = conns
            .iter()
            .map(|c| c.queued_input + c.queued_output + std::mem::size_of::<RespConn>())
            .sum();
        let memory = (self.store.memory(), clients);
        self.peak = self.peak.max(memory.0 + memory.1);
        let stats = ctx.stats().clone();
        Facts {
            started: self.started,
            run_id: self.run_id.clone(),
            port: self.port,
            clients: (conns.len(), self.max_clients),
            max_buffers: (max_in, max_out),
            stats,
            commands: self.metrics.commands,
            hits: self.metrics.hits,
            misses: self.metrics.misses,
            rates: RATES.map(|rate| self.metrics.rate(rate)),
            expired: self.store.expired(),
            pubsub: self.pubsub.counts(),
            memory,
            peak: self.peak,
            rss: rss_bytes(),
            keys: self.store.counts(now),
        }
    }

    /// `CLIENT subcommand ...`: LIST, INFO and KILL here; the rest, which
    /// concern only the caller's session, in `conn.rs`. `argv` is the whole
    /// command, name first (CLIENT INFO reports its size).
    pub fn client(
        &mut self,
        r: &mut Replies<'_, '_>,
        session: &mut Session,
        argv: &[&[u8]],
    ) -> After {
        let args = &argv[1..];
        let sub = args[0].to_ascii_lowercase();
        let argv_mem = argv.iter().map(|a| a.len()).sum();
        match sub.as_slice() {
            b"list" => client_list(r, session, &args[1..], argv_mem),
            b"info" if args.len() == 1 => {
                let mut text = String::new();
                let caller = Caller { session, argv_mem };
                if let Some(info) = r.ctx.connection_info(r.conn) {
                    if let Some(row) = row(r.ctx, r.conn, &info, &caller) {
                        client_line(&mut text, r.ctx, &info, &row);
                    }
                }
                let resp3 = r.resp3;
                verbatim(r.buf(), text.as_bytes(), resp3);
            }
            b"info" => wrong_arity(r.buf(), "client|info"),
            b"kill" => return client_kill(r, session, &args[1..]),
            _ => conn::client(r, session, args),
        }
        After::Continue
    }
}

/// The connections Redis would list: all the loop holds but those whose
/// close is done and which only wait (bounded) for the peer's FIN, which a
/// Redis client no longer exists for.
fn listed(ctx: &Context<'_, RespServer>) -> Vec<ConnInfo> {
    let mut conns = ctx.connections();
    conns.retain(|c| !matches!(c.state, ConnState::Lingering | ConnState::Closed));
    conns
}

/// What CLIENT LIST reports of the connection running it, whose state is
/// the callback's own (the `Context` lends only the others').
struct Caller<'s> {
    session: &'s Session,
    /// The bytes of the running command's arguments (Redis's `argv-mem`).
    argv_mem: usize,
}

/// Redis's client types (`getClientTypeByName`); only normal and pubsub
/// clients exist here, replicas and masters never do.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Type {
    Normal,
    Pubsub,
    Replica,
    Master,
}

impl Type {
    fn named(name: &[u8]) -> Option<Type> {
        Some(match name.to_ascii_lowercase().as_slice() {
            b"normal" => Type::Normal,
            b"pubsub" => Type::Pubsub,
            b"slave" | b"replica" => Type::Replica,
            b"master" => Type::Master,
            _ => return None,
        })
    }

    fn of(session: &Session) -> Type {
        if session.subscribed() {
            Type::Pubsub
        } else {
            Type::Normal
        }
    }
}

/// Redis's error for an unknown client type.
fn unknown_type(r: &mut Replies<'_, '_>, name: &[u8]) {
    let mut text = b"ERR Unknown client type '".to_vec();
    text.extend_from_slice(name);
    text.push(b'\'');
    error_bytes(r.buf(), &text);
}

/// `CLIENT LIST [TYPE type | ID id ...]`, one line per client, by id (the
/// order Redis keeps its clients in: creation).
fn client_list(r: &mut Replies<'_, '_>, session: &Session, args: &[&[u8]], argv_mem: usize) {
    let mut only_type = None;
    let mut ids = Vec::new();
    match args {
        [] => {}
        [word, name] if word.eq_ignore_ascii_case(b"type") => match Type::named(name) {
            Some(t) => only_type = Some(t),
            None => return unknown_type(r, name),
        },
        [word, wanted @ ..] if word.eq_ignore_ascii_case(b"id") && !wanted.is_empty() => {
            for id in wanted {
                match parse_int(id) {
                    Some(id) if id > 0 => ids.push(id as u64),
                    Some(_) => return error(r.buf(), "ERR Invalid client ID"),
                    None => return error(r.buf(), NOT_AN_INTEGER),
                }
            }
        }
        _ => return error(r.buf(), SYNTAX),
    }
    let caller = Caller { session, argv_mem };
    let mut rows: Vec<(u64, ConnInfo)> = listed(r.ctx)
        .into_iter()
        .filter_map(|info| {
            let s = row(r.ctx, r.conn, &info, &caller)?.session;
            let keep = only_type.map_or(true, |t| Type::of(s) == t)
                && (ids.is_empty() || ids.contains(&s.id));
            keep.then_some((s.id, info))
        })
        .collect();
    rows.sort_by_key(|(id, _)| *id);
    let mut text = String::new();
    for (_, info) in &rows {
        if let Some(row) = row(r.ctx, r.conn, info, &caller) {
            client_line(&mut text, r.ctx, info, &row);
        }
    }
    let resp3 = r.resp3;
    verbatim(r.buf(), text.as_bytes(), resp3);
}

/// What CLIENT LIST shows of one connection beyond the loop's listing.
struct Row<'s> {
    session: &'s Session,
    /// Bytes of the command being run (Redis's `argv-mem`): the caller's;
    /// 0 for the others, which are between commands.
    argv_mem: usize,
    /// QUIT or a protocol error: it closes once its reply is out.
    closing: bool,
}

/// The listed connection `info` as CLIENT LIST shows it: the caller's own
/// session, or another's from the `Context`; `None` for a connection
/// with no state (its `opened` failed).
fn row<'a>(
    ctx: &'a Context<'_, RespServer>,
    me: ConnId,
    info: &ConnInfo,
    caller: &'a Caller<'_>,
) -> Option<Row<'a>> {
    if info.id == me {
        return Some(Row {
            session: caller.session,
            argv_mem: caller.argv_mem,
            closing: false,
        });
    }
    ctx.state(info.id).map(|st| Row {
        session: &st.session,
        argv_mem: 0,
        closing: st.ending == Ending::Close || info.state == ConnState::Closing,
    })
}

/// One CLIENT LIST line, Redis 7.0's fields in its order (its
/// `clientInfoString`), ended by `\n`. Sizes Redis takes from its own
/// allocator that have no counterpart here (the query buffer's spare room,
/// the static reply buffer) are 0.
fn client_line(text: &mut String, ctx: &Context<'_, RespServer>, info: &ConnInfo, row: &Row<'_>) {
    let Row {
        session,
        argv_mem,
        closing,
    } = *row;
    let laddr = ctx.local_addr(info.id).map_or("".into(), |a| a.to_string());
    let fd = ctx.socket(info.id).map_or(-1, |s| s.as_raw_fd());
    let mut flags = String::new();
    if session.subscribed() {
        flags.push('P');
    }
    if session.multi.is_some() {
        flags.push('x');
    }
    if closing {
        flags.push('c');
    }
    if flags.is_empty() {
        flags.push('N');
    }
    let mut events = String::new();
    if ctx.is_reading_paused(info.id) != Some(true) {
        events.push('r');
    }
    if info.queued_output > 0 {
        events.push('w');
    }
    let (multi, multi_mem) = match &session.multi {
        Some(m) => (m.count() as i64, m.bytes()),
        None => (-1, 0),
    };
    let tot_mem = info.queued_input
        + info.queued_output
        + argv_mem
        + multi_mem
        + std::mem::size_of::<RespConn>();
    let name = session
        .name
        .as_deref()
        .map_or("".into(), String::from_utf8_lossy);
    let cmd = if session.last_cmd.is_empty() {
        "NULL"
    } else {
        session.last_cmd
    };
    let _ = writeln!(
        text,
        "id={} addr={} laddr={laddr} fd={fd} name={name} age={} idle={} flags={flags} db=0 \
         sub={} psub={} ssub=0 multi={multi} qbuf={} qbuf-free=0 argv-mem={argv_mem} \
         multi-mem={multi_mem} rbs=0 rbp=0 obl=0 oll=0 omem={} tot-mem={tot_mem} \
         events={events} cmd={cmd} user=default redir=-1 resp={}",
        session.id,
        info.peer,
        info.age.as_secs(),
        info.idle.as_secs(),
        session.channels.len(),
        session.patterns.len(),
        info.queued_input,
        info.queued_output,
        if session.resp3 { 3 } else { 2 },
    );
}

/// `CLIENT KILL addr` (the old form: `+OK`, or an error if no client has
/// that address) or `CLIENT KILL filter value ...` with ID, ADDR, LADDR,
/// TYPE, USER and SKIPME (the new form: how many were killed; the caller is
/// skipped unless `SKIPME no`). The caller, if killed, gets its reply
/// first, as in Redis.
fn client_kill(r: &mut Replies<'_, '_>, session: &Session, args: &[&[u8]]) -> After {
    let mut id = None;
    let (mut addr, mut laddr, mut only_type, mut user) = (None, None, None, None);
    let mut skip_me = true;
    let old_form = args.len() == 1;
    if old_form {
        addr = Some(args[0]);
        skip_me = false;
    } else if args.is_empty() || args.len() % 2 != 0 {
        if args.is_empty() {
            wrong_arity(r.buf(), "client|kill");
        } else {
            error(r.buf(), SYNTAX);
        }
        return After::Continue;
    } else {
        for pair in args.chunks(2) {
            let (filter, value) = (pair[0].to_ascii_lowercase(), pair[1]);
            match filter.as_slice() {
                b"id" => match parse_int(value) {
                    Some(n) if n > 0 => id = Some(n as u64),
                    _ => {
                        error(r.buf(), "ERR client-id should be greater than 0");
                        return After::Continue;
                    }
                },
                b"addr" => addr = Some(value),
                b"laddr" => laddr = Some(value),
                b"user" => user = Some(value),
                b"type" => match Type::named(value) {
                    Some(t) => only_type = Some(t),
                    None => {
                        unknown_type(r, value);
                        return After::Continue;
                    }
                },
                b"skipme" if value.eq_ignore_ascii_case(b"yes") => skip_me = true,
                b"skipme" if value.eq_ignore_ascii_case(b"no") => skip_me = false,
                _ => {
                    error(r.buf(), SYNTAX);
                    return After::Continue;
                }
            }
        }
    }
    let shown = |a: Option<SocketAddr>| a.map(|a| a.to_string()).unwrap_or_default();
    let mut victims = Vec::new();
    let mut kill_me = false;
    for info in listed(r.ctx) {
        let mine = info.id == r.conn;
        let (their_id, kind) = match r.ctx.state(info.id) {
            Some(st) => (st.session.id, Type::of(&st.session)),
            None if mine => (session.id, Type::of(session)),
            None => continue,
        };
        let matches = id.map_or(true, |id| their_id == id)
            && addr.map_or(true, |a| shown(Some(info.peer)).as_bytes() == a)
            && laddr.map_or(true, |a| shown(r.ctx.local_addr(info.id)).as_bytes() == a)
            && user.map_or(true, |u| u == b"default")
            && only_type.map_or(true, |t| kind == t);
        if !matches || (mine && skip_me) {
            continue;
        }
        if mine {
            kill_me = true;
        } else {
            victims.push(info.id);
        }
    }
    let killed = victims.len() + usize::from(kill_me);
    for conn in victims {
        r.ctx.close(conn);
    }
    if old_form {
        if killed == 0 {
            error(r.buf(), "ERR No such client");
        } else {
            simple(r.buf(), "OK");
        }
    } else {
        integer(r.buf(), killed as i64);
    }
    if kill_me {
        After::Close
    } else {
        After::Continue
    }
}

/// A random `run_id`: 40 hex digits, from the standard library's
/// per-process random hash keys (no RNG crate needed for an id).
pub fn run_id() -> String {
    let mut id = String::new();
    for i in 0..3u64 {
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(i);
        let _ = write!(id, "{:016x}", h.finish());
    }
    id.truncate(40);
    id
}
