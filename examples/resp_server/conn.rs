//! A connection's session in the `resp_server` example: the protocol it
//! chose (HELLO), its id and name (CLIENT), and its subscriptions; and the
//! commands that set them, HELLO and CLIENT, answered as Redis 7 answers.
//!
//! Clients such as redis-py 8 open every connection with `HELLO 3` and
//! `CLIENT SETINFO`, and give up on a server that does not know them, so
//! these are what lets a stock client connect with its defaults.

use std::collections::{BTreeSet, VecDeque};

use crate::multi::Multi;
use crate::parse::parse_int;
use crate::replies::Replies;
use crate::reply::{array, bulk, c_string, error, error_bytes, integer, map, simple, wrong_arity};

/// The version HELLO reports: the Redis whose replies this server follows
/// (and which its tests compare it with). Clients gate features on it.
pub const VERSION: &str = "7.0.15";

/// What the server knows of one connection beyond its parser and replies.
#[derive(Debug, Default)]
pub struct Session {
    /// CLIENT ID: unique among the server's connections, from 1.
    pub id: u64,
    /// Replies in RESP3 (after `HELLO 3`); RESP2 otherwise.
    pub resp3: bool,
    /// CLIENT SETNAME's name; `None` when unnamed.
    pub name: Option<Vec<u8>>,
    /// Channels subscribed to (sorted, so UNSUBSCRIBE without arguments
    /// answers in a stable order).
    pub channels: BTreeSet<Vec<u8>>,
    /// Patterns subscribed to (PSUBSCRIBE), in the order they were, as
    /// Redis keeps them and PUNSUBSCRIBE without arguments answers. A list,
    /// searched linearly as Redis searches its own: a client has few.
    pub patterns: VecDeque<Vec<u8>>,
    /// The transaction being queued, between MULTI and EXEC.
    pub multi: Option<Multi>,
    /// WATCHed keys, each with its write count at WATCH (see
    /// `Store::watch`); EXEC fails if any has changed.
    pub watching: Vec<(Vec<u8>, u64)>,
    /// The last command it ran, by Redis's full name (`client|list`);
    /// empty before the first (CLIENT LIST's `cmd=`).
    pub last_cmd: &'static str,
}

impl Session {
    /// Channels and patterns: the count subscribe replies carry.
    pub fn subscriptions(&self) -> usize {
        self.channels.len() + self.patterns.len()
    }

    /// Whether the connection is in subscribed mode (Redis's
    /// `CLIENT_PUBSUB`): at least one channel or pattern.
    pub fn subscribed(&self) -> bool {
        self.subscriptions() > 0
    }
}

/// A connection's channels or patterns: the operations (un)subscribing
/// needs of either.
pub trait Names {
    /// Adds `name`; whether it was new.
    fn add(&mut self, name: &[u8]) -> bool;
    /// Removes `name`; whether it was there.
    fn take(&mut self, name: &[u8]) -> bool;
    /// Removes and returns the first name (in the set's order).
    fn take_first(&mut self) -> Option<Vec<u8>>;
    fn is_empty(&self) -> bool;
}

impl Names for BTreeSet<Vec<u8>> {
    fn add(&mut self, name: &[u8]) -> bool {
        self.insert(name.to_vec())
    }
    fn take(&mut self, name: &[u8]) -> bool {
        self.remove(name)
    }
    fn take_first(&mut self) -> Option<Vec<u8>> {
        self.pop_first()
    }
    fn is_empty(&self) -> bool {
        BTreeSet::is_empty(self)
    }
}

impl Names for VecDeque<Vec<u8>> {
    fn add(&mut self, name: &[u8]) -> bool {
        let new = !self.iter().any(|n| n == name);
        if new {
            self.push_back(name.to_vec());
        }
        new
    }
    fn take(&mut self, name: &[u8]) -> bool {
        let at = self.iter().position(|n| n == name);
        at.and_then(|at| self.remove(at)).is_some()
    }
    fn take_first(&mut self) -> Option<Vec<u8>> {
        self.pop_front()
    }
    fn is_empty(&self) -> bool {
        VecDeque::is_empty(self)
    }
}

/// `HELLO [protover [AUTH user pass] [SETNAME name]]`, in Redis 7's order of
/// checks: the version, each option, then the credentials. Only the
/// `default` user exists, without a password, as in a stock Redis.
pub fn hello(r: &mut Replies<'_, '_>, session: &mut Session, args: &[&[u8]]) {
    let mut version = None;
    if let Some(v) = args.first() {
        match parse_int(v) {
            Some(v @ 2..=3) => version = Some(v == 3),
            Some(_) => return error(r.buf(), "NOPROTO unsupported protocol version"),
            None => {
                return error(
                    r.buf(),
                    "ERR Protocol version is not an integer or out of range",
                )
            }
        }
    }
    let (mut user, mut name) = (None, None);
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let option = args[i];
        if option.eq_ignore_ascii_case(b"auth") && more >= 2 {
            user = Some(args[i + 1]);
            i += 3;
        } else if option.eq_ignore_ascii_case(b"setname") && more >= 1 {
            if !valid_name(args[i + 1]) {
                return error(r.buf(), BAD_NAME);
            }
            name = Some(args[i + 1]);
            i += 2;
        } else {
            let mut text = b"ERR Syntax error in HELLO option '".to_vec();
            text.extend_from_slice(c_string(option, usize::MAX));
            text.push(b'\'');
            return error_bytes(r.buf(), &text);
        }
    }
    if user.is_some_and(|u| u != b"default") {
        return error(
            r.buf(),
            "WRONGPASS invalid username-password pair or user is disabled.",
        );
    }
    if let Some(name) = name {
        set_name(session, name);
    }
    if let Some(resp3) = version {
        session.resp3 = resp3;
        r.resp3 = resp3;
    }
    // Redis 7's map, in its order; a flat array in RESP2.
    let (resp3, id) = (r.resp3, session.id as i64);
    let out = r.buf();
    map(out, 7, resp3);
    for (key, value) in [("server", "redis"), ("version", VERSION)] {
        bulk(out, key.as_bytes());
        bulk(out, value.as_bytes());
    }
    bulk(out, b"proto");
    integer(out, if resp3 { 3 } else { 2 });
    bulk(out, b"id");
    integer(out, id);
    for (key, value) in [("mode", "standalone"), ("role", "master")] {
        bulk(out, key.as_bytes());
        bulk(out, value.as_bytes());
    }
    bulk(out, b"modules");
    array(out, 0);
}

/// `CLIENT ID | GETNAME | SETNAME name | SETINFO attr value`: what clients
/// send on connect. SETINFO is Redis 7.2's; clients ignore its error on
/// older servers, but accepting it is what a current Redis does.
pub fn client(r: &mut Replies<'_, '_>, session: &mut Session, args: &[&[u8]]) {
    let Some((sub, rest)) = args.split_first() else {
        return wrong_arity(r.buf(), "client");
    };
    let lower = sub.to_ascii_lowercase();
    let arity = match lower.as_slice() {
        b"id" | b"getname" => 0,
        b"setname" => 1,
        b"setinfo" => 2,
        _ => return crate::reply::unknown_subcommand(r.buf(), "CLIENT", sub),
    };
    if rest.len() != arity {
        let name = format!("client|{}", String::from_utf8_lossy(&lower));
        return wrong_arity(r.buf(), &name);
    }
    match (lower.as_slice(), rest) {
        (b"id", _) => integer(r.buf(), session.id as i64),
        (b"getname", _) => match session.name.clone() {
            Some(name) => bulk(r.buf(), &name),
            None => r.null(),
        },
        (b"setname", [name]) if valid_name(name) => {
            set_name(session, name);
            simple(r.buf(), "OK");
        }
        (b"setname", _) => error(r.buf(), BAD_NAME),
        (b"setinfo", [attr, value]) => {
            let attr = attr.to_ascii_lowercase();
            if attr != b"lib-name" && attr != b"lib-ver" {
                let mut text = b"ERR Unrecognized option '".to_vec();
                text.extend_from_slice(c_string(rest[0], usize::MAX));
                text.push(b'\'');
                return error_bytes(r.buf(), &text);
            }
            if !valid_name(value) {
                // Named as the client spelled it, as Redis does.
                let mut text = b"ERR ".to_vec();
                text.extend_from_slice(c_string(rest[0], usize::MAX));
                text.extend_from_slice(b" cannot contain spaces, newlines or special characters.");
                return error_bytes(r.buf(), &text);
            }
            simple(r.buf(), "OK");
        }
        _ => unreachable!("arity checked above"),
    }
}

/// Redis's error for a client name outside `!`..`~`.
const BAD_NAME: &str = "ERR Client names cannot contain spaces, newlines or special characters.";

/// Redis's rule for client names (and SETINFO values): printable ASCII, no
/// spaces.
fn valid_name(name: &[u8]) -> bool {
    name.iter().all(|b| (b'!'..=b'~').contains(b))
}

/// Names the connection; the empty name unnames it, as in Redis.
fn set_name(session: &mut Session, name: &[u8]) {
    session.name = (!name.is_empty()).then(|| name.to_vec());
}
