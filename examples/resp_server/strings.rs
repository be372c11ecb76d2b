//! The string commands of the `resp_server` example that change values:
//! SET with its options, SETNX, GETSET, GETDEL, MSET, APPEND, STRLEN and
//! the INCR family, with Redis 7's replies, errors and order of checks.
//!
//! Kept apart from the dispatch (`commands.rs`) because SET's options and
//! the counters' overflow rules are most of what a client can get wrong
//! here, and each follows one function of Redis's `t_string.c`.

use std::io::Write as _;
use std::rc::Rc;

use crate::parse::parse_int;
use crate::replies::Replies;
use crate::reply::{error, integer, simple, NOT_AN_INTEGER};
use crate::store::Store;

/// Redis's error for an expire time that is not positive or overflows.
pub fn invalid_expire(command: &str) -> String {
    format!("ERR invalid expire time in '{command}' command")
}

/// How SET's expire argument counts.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Unit {
    /// EX: seconds from now.
    Ex,
    /// PX: milliseconds from now.
    Px,
    /// EXAT: a Unix time in seconds.
    ExAt,
    /// PXAT: a Unix time in milliseconds.
    PxAt,
}

/// `SET key value [NX|XX] [GET] [EX s|PX ms|EXAT s|PXAT ms|KEEPTTL]`:
/// options first (any misuse is a syntax error), then the expire time,
/// then GET's reply, then NX/XX (Redis's `setCommand`).
pub fn set(r: &mut Replies<'_, '_>, store: &mut Store, args: &[&[u8]], now: i64) {
    let (key, value, options) = (args[0], args[1], &args[2..]);
    let (mut nx, mut xx, mut get, mut keep_ttl) = (false, false, false, false);
    let mut expire: Option<(Unit, &[u8])> = None;
    let mut i = 0;
    while i < options.len() {
        let option = options[i].to_ascii_lowercase();
        let next = options.get(i + 1);
        let unit = match option.as_slice() {
            b"ex" => Some(Unit::Ex),
            b"px" => Some(Unit::Px),
            b"exat" => Some(Unit::ExAt),
            b"pxat" => Some(Unit::PxAt),
            _ => None,
        };
        match (option.as_slice(), unit, next) {
            (b"nx", ..) if !xx => nx = true,
            (b"xx", ..) if !nx => xx = true,
            (b"get", ..) => get = true,
            (b"keepttl", ..) if expire.is_none() => keep_ttl = true,
            // One unit only (repeating the same one is allowed, the last
            // time counting), and not with KEEPTTL.
            (_, Some(unit), Some(time)) if !keep_ttl && expire.map_or(true, |(u, _)| u == unit) => {
                expire = Some((unit, time));
                i += 1;
            }
            _ => return error(r.buf(), "ERR syntax error"),
        }
        i += 1;
    }
    let expires_at = match expire {
        None => None,
        Some((unit, time)) => match expire_at(unit, time, now) {
            Ok(at) => Some(at),
            Err(e) => return error(r.buf(), &e),
        },
    };
    // A plain SET (the common case) never looks at the old value: one
    // lookup, in `set`, is enough.
    if !(nx || xx || get || keep_ttl) {
        store.set(key, value, expires_at);
        simple(r.buf(), "OK");
        return;
    }
    let existing = store.get(key, now);
    let exists = existing.is_some();
    let old_ttl = existing.as_ref().and_then(|e| e.expires_at);
    if get {
        let old = existing.map(|e| Rc::clone(&e.value));
        r.value(old.as_ref());
    }
    if (nx && exists) || (xx && !exists) {
        if !get {
            r.null();
        }
        return;
    }
    let expires_at = if keep_ttl { old_ttl } else { expires_at };
    store.set(key, value, expires_at);
    if !get {
        simple(r.buf(), "OK");
    }
}

/// SET's expire argument as a Unix time in ms, or Redis's error: not an
/// integer, not positive, or past `i64::MAX` ms once made absolute.
fn expire_at(unit: Unit, time: &[u8], now: i64) -> Result<i64, String> {
    let n = parse_int(time).ok_or_else(|| NOT_AN_INTEGER.to_string())?;
    let seconds = matches!(unit, Unit::Ex | Unit::ExAt);
    let relative = matches!(unit, Unit::Ex | Unit::Px);
    let ms = if seconds {
        n.checked_mul(1000)
    } else {
        Some(n)
    };
    let at = ms.filter(|&ms| n > 0 && ms > 0).and_then(|ms| {
        if relative {
            ms.checked_add(now)
        } else {
            Some(ms)
        }
    });
    at.ok_or_else(|| invalid_expire("set"))
}

/// `SETNX key value`: 1 when it set the key, 0 when the key existed.
pub fn setnx(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], value: &[u8], now: i64) {
    let created = store.get(key, now).is_none();
    if created {
        store.set(key, value, None);
    }
    integer(r.buf(), i64::from(created));
}

/// `GETSET key value`: the old value (or null); the new one has no TTL.
pub fn getset(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], value: &[u8], now: i64) {
    let old = store.get(key, now).map(|e| Rc::clone(&e.value));
    r.value(old.as_ref());
    // The reply may still hold the old value: `set` then does not reuse
    // its buffer.
    store.set(key, value, None);
}

/// `GETDEL key`: the value (or null), and the key is gone.
pub fn getdel(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], now: i64) {
    let old = store.get(key, now).map(|e| Rc::clone(&e.value));
    if old.is_some() {
        store.remove(key, now);
    }
    r.value(old.as_ref());
}

/// `MSET key value [key value ...]`: every key set, their TTLs dropped.
/// An odd count is a wrong arity, as Redis reports it.
pub fn mset(r: &mut Replies<'_, '_>, store: &mut Store, pairs: &[&[u8]]) {
    if pairs.len() % 2 != 0 {
        return crate::reply::wrong_arity(r.buf(), "mset");
    }
    for pair in pairs.chunks_exact(2) {
        store.set(pair[0], pair[1], None);
    }
    simple(r.buf(), "OK");
}

/// `APPEND key value`: the new length; the TTL is kept.
pub fn append(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], value: &[u8], now: i64) {
    let len = match store.get(key, now) {
        Some(entry) => {
            // Copied on write only if a reply still holds the value.
            let bytes = Rc::make_mut(&mut entry.value);
            bytes.extend_from_slice(value);
            let len = bytes.len();
            store.modified(key);
            len
        }
        None => {
            store.set(key, value, None);
            value.len()
        }
    };
    integer(r.buf(), len as i64);
}

/// `STRLEN key`: the value's length, 0 for no key.
pub fn strlen(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], now: i64) {
    let len = store.get(key, now).map_or(0, |e| e.value.len());
    integer(r.buf(), len as i64);
}

/// The increment of INCRBY (`decrement` false) or DECRBY, or Redis's
/// error: not an integer, or DECRBY's `i64::MIN`, which has no negation.
pub fn delta(arg: &[u8], decrement: bool) -> Result<i64, &'static str> {
    let n = parse_int(arg).ok_or(NOT_AN_INTEGER)?;
    match decrement {
        false => Ok(n),
        true => n.checked_neg().ok_or("ERR decrement would overflow"),
    }
}

/// INCR, DECR, INCRBY, DECRBY: the value must be a decimal `i64`; the TTL
/// is kept.
pub fn incr_by(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], by: i64, now: i64) {
    let (current, expires_at) = match store.get(key, now) {
        Some(entry) => match parse_int(&entry.value) {
            Some(n) => (n, entry.expires_at),
            None => return error(r.buf(), NOT_AN_INTEGER),
        },
        None => (0, None),
    };
    let Some(next) = current.checked_add(by) else {
        return error(r.buf(), "ERR increment or decrement would overflow");
    };
    // Formatted on the stack: an i64 needs at most 20 bytes.
    let mut digits = [0u8; 20];
    let mut rest = &mut digits[..];
    let _ = write!(rest, "{next}");
    let len = 20 - rest.len();
    store.set(key, &digits[..len], expires_at);
    integer(r.buf(), next);
}
