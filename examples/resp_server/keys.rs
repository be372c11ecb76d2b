//! The key-space commands of the `resp_server` example: expiry (EXPIRE,
//! PEXPIRE, TTL, PTTL, PERSIST), TYPE, KEYS, DBSIZE and FLUSHDB; and
//! Redis's glob matching, which KEYS and PSUBSCRIBE share.
//!
//! Expiry follows Redis 7's `expireGenericCommand` to the error: options
//! first, then the time, whose overflow once made absolute is an error
//! rather than a key that never expires.

use crate::replies::Replies;
use crate::reply::{array, bulk, error, integer, simple};
use crate::store::Store;
use crate::strings::invalid_expire;

/// `EXPIRE key seconds [NX|XX|GT|LT]` (`unit_ms` 1000) or `PEXPIRE key ms
/// [...]` (`unit_ms` 1): 1 when the TTL was set (or the key deleted, for a
/// time already past), 0 when there is no key or a condition failed.
pub fn expire(
    r: &mut Replies<'_, '_>,
    store: &mut Store,
    (name, unit_ms): (&str, i64),
    args: &[&[u8]],
    now: i64,
) {
    let (key, time, options) = (args[0], args[1], &args[2..]);
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for option in options {
        match option.to_ascii_lowercase().as_slice() {
            b"nx" => nx = true,
            b"xx" => xx = true,
            b"gt" => gt = true,
            b"lt" => lt = true,
            _ => {
                let mut text = b"ERR Unsupported option ".to_vec();
                text.extend_from_slice(option);
                return crate::reply::error_bytes(r.buf(), &text);
            }
        }
    }
    if nx && (xx || gt || lt) {
        let text = "ERR NX and XX, GT or LT options at the same time are not compatible";
        return error(r.buf(), text);
    }
    if gt && lt {
        return error(
            r.buf(),
            "ERR GT and LT options at the same time are not compatible",
        );
    }
    let Some(n) = crate::parse::parse_int(time) else {
        return error(r.buf(), crate::reply::NOT_AN_INTEGER);
    };
    let Some(at) = n.checked_mul(unit_ms).and_then(|ms| ms.checked_add(now)) else {
        return error(r.buf(), &invalid_expire(name));
    };
    let Some(entry) = store.get(key, now) else {
        return integer(r.buf(), 0);
    };
    let current = entry.expires_at;
    let refused = (nx && current.is_some())
        || (xx && current.is_none())
        || (gt && current.map_or(true, |c| at <= c))
        || (lt && current.is_some_and(|c| at >= c));
    if refused {
        return integer(r.buf(), 0);
    }
    if at <= now {
        store.remove(key, now);
    } else {
        entry.expires_at = Some(at);
        store.modified(key);
    }
    integer(r.buf(), 1);
}

/// `TTL key` (`unit_ms` 1000, rounded) or `PTTL key`: -2 for no key, -1
/// for no TTL.
pub fn ttl(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], unit_ms: i64, now: i64) {
    let reply = match store.get(key, now) {
        None => -2,
        Some(entry) => match entry.expires_at {
            None => -1,
            Some(at) => ((at - now).max(0) + unit_ms / 2) / unit_ms,
        },
    };
    integer(r.buf(), reply);
}

/// `PERSIST key`: 1 when a TTL was removed.
pub fn persist(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], now: i64) {
    let removed = store
        .get(key, now)
        .is_some_and(|e| e.expires_at.take().is_some());
    if removed {
        store.modified(key);
    }
    integer(r.buf(), i64::from(removed));
}

/// `TYPE key`: every value here is a string.
pub fn key_type(r: &mut Replies<'_, '_>, store: &mut Store, key: &[u8], now: i64) {
    let kind = if store.get(key, now).is_some() {
        "string"
    } else {
        "none"
    };
    simple(r.buf(), kind);
}

/// `KEYS pattern`: the live keys `pattern` matches, in no set order.
pub fn keys(r: &mut Replies<'_, '_>, store: &mut Store, pattern: &[u8], now: i64) {
    let found: Vec<&Vec<u8>> = store
        .live_keys(now)
        .filter(|k| glob_match(pattern, k))
        .collect();
    let out = r.buf();
    array(out, found.len());
    for key in found {
        bulk(out, key);
    }
}

/// `DBSIZE`: how many live keys there are.
pub fn dbsize(r: &mut Replies<'_, '_>, store: &mut Store, now: i64) {
    let n = store.live_keys(now).count();
    integer(r.buf(), n as i64);
}

/// `FLUSHDB [ASYNC|SYNC]`: every key gone (at once either way).
pub fn flushdb(r: &mut Replies<'_, '_>, store: &mut Store, args: &[&[u8]]) {
    match args {
        [] => {}
        [mode] if mode.eq_ignore_ascii_case(b"async") || mode.eq_ignore_ascii_case(b"sync") => {}
        _ => return error(r.buf(), "ERR syntax error"),
    }
    store.clear();
    simple(r.buf(), "OK");
}

/// Redis's `stringmatchlen`: `*`, `?`, `[abc]`, `[^a-z]`, and `\` quoting
/// the next byte, case-sensitive, with its edge cases (a `[` class left
/// open runs to the end of the pattern; a range may be written backwards).
pub fn glob_match(pattern: &[u8], string: &[u8]) -> bool {
    let mut give_up = false;
    glob(pattern, string, &mut give_up)
}

/// One level of [`glob_match`]. `give_up` is Redis's `skipLongerMatches`:
/// once the rest after a `*` failed to match the whole tail, no later
/// start can succeed, which keeps `a*a*a*...b` linear rather than
/// exponential.
fn glob(pat: &[u8], s: &[u8], give_up: &mut bool) -> bool {
    // Past the end reads as C's terminating NUL does in Redis.
    let at = |i: usize| pat.get(i).copied().unwrap_or(0);
    let (mut p, mut i) = (0, 0);
    while p < pat.len() && i < s.len() {
        match pat[p] {
            b'*' => {
                while at(p + 1) == b'*' {
                    p += 1;
                }
                if p + 1 == pat.len() {
                    return true;
                }
                while i < s.len() {
                    if glob(&pat[p + 1..], &s[i..], give_up) {
                        return true;
                    }
                    if *give_up {
                        return false;
                    }
                    i += 1;
                }
                *give_up = true;
                return false;
            }
            b'?' => i += 1,
            b'[' => {
                p += 1;
                let negate = at(p) == b'^';
                if negate {
                    p += 1;
                }
                let c = s[i];
                let mut matched = false;
                loop {
                    let left = pat.len().saturating_sub(p);
                    if at(p) == b'\\' && left >= 2 {
                        p += 1;
                        matched |= pat[p] == c;
                    } else if at(p) == b']' {
                        break;
                    } else if left == 0 {
                        p -= 1;
                        break;
                    } else if left >= 3 && pat[p + 1] == b'-' {
                        let (lo, hi) = (pat[p].min(pat[p + 2]), pat[p].max(pat[p + 2]));
                        p += 2;
                        matched |= (lo..=hi).contains(&c);
                    } else {
                        matched |= pat[p] == c;
                    }
                    p += 1;
                }
                if matched == negate {
                    return false;
                }
                i += 1;
            }
            b => {
                let literal = if b == b'\\' && pat.len() - p >= 2 {
                    p += 1;
                    pat[p]
                } else {
                    b
                };
                if literal != s[i] {
                    return false;
                }
                i += 1;
            }
        }
        p += 1;
        if i == s.len() {
            while at(p) == b'*' {
                p += 1;
            }
            break;
        }
    }
    p >= pat.len() && i == s.len()
}
