//! The exact bytes of the `resp_server` example's replies to HELLO, CLIENT,
//! the string and key-space commands and pattern pub/sub, in RESP2 and in
//! RESP3 (after `HELLO 3`), compared with redis-server's byte for byte when
//! one is installed, and with Redis 7.0's bytes written out here for the
//! replies whose shape is the point (nulls, maps, pushes). Also inline
//! commands' separators, the unknown-command error's raw bytes, and
//! INFO. Transactions are in tests/resp_multi.rs.
mod common;

use std::net::SocketAddr;

use common::resp::{spawn, Client, RedisServer};
use common::tools::have;

/// `bytes` with CR and LF written out, so a difference is readable.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// A reply with the digits of a client id replaced by `N`: ids differ
/// between servers.
fn masked(reply: &str) -> String {
    const ID: &str = "$2\\r\\nid\\r\\n:";
    let id_at = reply.find(ID).map(|at| at + ID.len());
    match id_at {
        Some(at) => {
            let end = reply[at..].find('\\').map_or(reply.len(), |e| at + e);
            format!("{}N{}", &reply[..at], &reply[end..])
        }
        None => reply.to_owned(),
    }
}

/// The commands of the transcript, each with how many replies it gets.
/// Every key is fresh (the servers are flushed first), so the replies are
/// the same on every run.
const STEPS: &[(&[&str], usize)] = &[
    (&["FLUSHDB"], 1),
    (&["HELLO", "4"], 1),
    (&["HELLO", "x"], 1),
    (&["HELLO", "3", "AUTH", "nobody", "pw"], 1),
    (&["HELLO", "3", "SETNAME", "a b"], 1),
    (&["HELLO", "3", "FOO"], 1),
    (&["GET", "nope"], 1),
    (&["SET", "k", "v", "NX"], 1),
    (&["SET", "k", "w", "NX"], 1),
    (&["SET", "k", "w", "NX", "GET"], 1),
    (&["SET", "k", "v", "EX", "9223372036854775807"], 1),
    (&["SET", "k", "v", "EX", "9223372036854775"], 1),
    (&["SET", "k", "v", "PX", "9223372036854775807"], 1),
    (&["SET", "k", "v", "EXAT", "0"], 1),
    (&["SET", "k", "v", "PX", "-1"], 1),
    (&["SET", "k", "v", "EX", "10", "PX", "10"], 1),
    (&["SET", "k", "v", "KEEPTTL", "EX", "10"], 1),
    (&["MGET", "k", "nope"], 1),
    (&["INCRBY", "n", "10"], 1),
    (&["INCRBY", "n", "x"], 1),
    (&["DECRBY", "n", "-9223372036854775808"], 1),
    (&["DECR", "n"], 1),
    (&["INCRBY", "n", "9223372036854775807"], 1),
    (&["INCRBY", "k", "1"], 1),
    (&["DECR"], 1),
    (&["APPEND", "s", "ab"], 1),
    (&["APPEND", "s", "cd"], 1),
    (&["STRLEN", "s"], 1),
    (&["MSET", "a", "1", "b"], 1),
    (&["MSET", "a", "1", "b", "2"], 1),
    (&["SETNX", "a", "x"], 1),
    (&["GETSET", "a", "2"], 1),
    (&["GETSET", "nope2", "2"], 1),
    (&["GETDEL", "nope2"], 1),
    (&["GETDEL", "nope2"], 1),
    (&["EXPIRE", "a", "100"], 1),
    (&["TTL", "a"], 1),
    (&["EXPIRE", "a", "100", "NX"], 1),
    (&["EXPIRE", "a", "100", "NX", "XX"], 1),
    (&["EXPIRE", "a", "100", "GT", "LT"], 1),
    (&["EXPIRE", "a", "100", "FOO"], 1),
    (&["EXPIRE", "a", "9223372036854775807"], 1),
    (&["PEXPIRE", "a", "9223372036854775807"], 1),
    (&["EXPIRE", "a"], 1),
    (&["PERSIST", "a"], 1),
    (&["TTL", "a"], 1),
    (&["PTTL", "nope"], 1),
    (&["TYPE", "a"], 1),
    (&["TYPE", "nope"], 1),
    (&["KEYS", "[a]"], 1),
    (&["KEYS", "zz*"], 1),
    (&["DBSIZE"], 1),
    (&["PEXPIRE", "b", "-1"], 1),
    (&["EXISTS", "b"], 1),
    (&["CLIENT", "SETNAME", "me"], 1),
    (&["CLIENT", "GETNAME"], 1),
    (&["CLIENT", "SETNAME", "a b"], 1),
    (&["CLIENT", "SETNAME"], 1),
    (&["CLIENT", "NOPE"], 1),
    (&["CONFIG", "GET", "save"], 1),
    (&["PUNSUBSCRIBE"], 1),
    // Patterns leave in the order they came (Redis keeps a list).
    (&["PSUBSCRIBE", "x?", "n*"], 2),
    (&["SUBSCRIBE", "news"], 1),
    (&["PING"], 1),
    (&["PUNSUBSCRIBE", "zz"], 1),
    (&["UNSUBSCRIBE"], 1),
    (&["PUNSUBSCRIBE"], 2),
    (&["FLUSHDB", "x"], 1),
    (&["FLUSHDB", "ASYNC"], 1),
    (&["DBSIZE"], 1),
];

/// Runs the steps on one connection, after `HELLO 3` when `resp3`, and a
/// pattern publish seen by a second connection; returns each reply, shown.
fn transcript(addr: SocketAddr, resp3: bool) -> Vec<String> {
    let mut c = Client::connect(addr);
    let mut log = Vec::new();
    if resp3 {
        log.push(masked(&shown(&c.call_raw(&["HELLO", "3"]))));
    }
    for (args, replies) in STEPS {
        c.send(args);
        for _ in 0..*replies {
            log.push(masked(&shown(&c.read_raw())));
        }
    }
    // A pattern subscriber in the same protocol, and a publisher.
    if resp3 {
        c.call_raw(&["HELLO", "3"]);
    }
    c.send(&["PSUBSCRIBE", "n*"]);
    log.push(shown(&c.read_raw()));
    let mut publisher = Client::connect(addr);
    log.push(shown(&publisher.call_raw(&["PUBLISH", "news", "hi"])));
    log.push(shown(&c.read_raw()));
    log
}

/// Redis 7.0's replies that differ between the protocols, as they appear
/// in the transcripts (index into the transcript, bytes).
const RESP3_SHAPES: &[(usize, &str)] = &[
    (
        0,
        "%7\\r\\n$6\\r\\nserver\\r\\n$5\\r\\nredis\\r\\n$7\\r\\nversion\\r\\n$6\\r\\n7.0.15\\r\\n\
         $5\\r\\nproto\\r\\n:3\\r\\n$2\\r\\nid\\r\\n:N\\r\\n$4\\r\\nmode\\r\\n$10\\r\\nstandalone\\r\\n\
         $4\\r\\nrole\\r\\n$6\\r\\nmaster\\r\\n$7\\r\\nmodules\\r\\n*0\\r\\n",
    ),
    (2, "-NOPROTO unsupported protocol version\\r\\n"),
    (7, "_\\r\\n"),
    (9, "_\\r\\n"),
    (18, "*2\\r\\n$1\\r\\nv\\r\\n_\\r\\n"),
    (60, "%1\\r\\n$4\\r\\nsave\\r\\n$0\\r\\n\\r\\n"),
    (61, ">3\\r\\n$12\\r\\npunsubscribe\\r\\n_\\r\\n:0\\r\\n"),
    (62, ">3\\r\\n$10\\r\\npsubscribe\\r\\n$2\\r\\nx?\\r\\n:1\\r\\n"),
    (68, ">3\\r\\n$12\\r\\npunsubscribe\\r\\n$2\\r\\nx?\\r\\n:1\\r\\n"),
    (65, "+PONG\\r\\n"),
    (
        75,
        ">4\\r\\n$8\\r\\npmessage\\r\\n$2\\r\\nn*\\r\\n$4\\r\\nnews\\r\\n$2\\r\\nhi\\r\\n",
    ),
];

#[test]
fn resp3_replies_have_redis_types() {
    let server = spawn(&[]);
    let ours = transcript(server.addr, true);
    for (at, want) in RESP3_SHAPES {
        assert_eq!(ours[*at], *want, "reply {at}");
    }
}

#[test]
fn replies_are_byte_for_byte_those_of_redis_in_both_protocols() {
    if !have("redis-server") {
        return;
    }
    let server = spawn(&[]);
    let redis = RedisServer::start();
    for resp3 in [false, true] {
        let ours = transcript(server.addr, resp3);
        let theirs = transcript(redis.addr, resp3);
        for (i, (got, want)) in ours.iter().zip(&theirs).enumerate() {
            assert_eq!(got, want, "reply {i}, resp3 {resp3}");
        }
        assert_eq!(ours.len(), theirs.len());
    }
}

/// Inline commands split on spaces and tabs only; the unknown-command
/// error shows the raw bytes (up to a NUL), quoted.
const INLINE: &[u8] = b"SET k\x0cx v\r\nSET\tk2  \t v2\r\nSET k3 \"a\"\x0cb\r\n\
    KEYS k*\r\nfoo \"a\\x00b\" \"\\xff\" c\r\nSET\x0b a b\r\n";

/// Redis 7.0's replies to `INLINE`.
const INLINE_REPLIES: &[&[u8]] = &[
    b"+OK\r\n",
    b"+OK\r\n",
    b"-ERR syntax error\r\n",
    b"*2\r\n$3\r\nk\x0cx\r\n$2\r\nk2\r\n",
    b"-ERR unknown command 'foo', with args beginning with: 'a' '\xff' 'c' \r\n",
    b"-ERR unknown command 'SET\x0b', with args beginning with: 'a' 'b' \r\n",
];

fn inline_replies(addr: SocketAddr) -> Vec<Vec<u8>> {
    let mut c = Client::connect(addr);
    c.send_raw(INLINE);
    let mut replies: Vec<_> = INLINE_REPLIES.iter().map(|_| c.read_raw()).collect();
    // KEYS has no order: sort its two keys.
    if replies[3].starts_with(b"*2\r\n$2\r\nk2") {
        replies[3] = INLINE_REPLIES[3].to_vec();
    }
    replies
}

#[test]
fn inline_commands_split_and_unknown_commands_echo_like_redis() {
    let server = spawn(&[]);
    let ours = inline_replies(server.addr);
    for (got, want) in ours.iter().zip(INLINE_REPLIES) {
        assert_eq!(shown(got), shown(want));
    }
    if have("redis-server") {
        let redis = RedisServer::start();
        assert_eq!(
            ours,
            inline_replies(redis.addr),
            "resp_server vs redis-server"
        );
    }
}

#[test]
fn client_setinfo_is_accepted_as_redis_7_2_does() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    let replies: Vec<_> = [
        &["CLIENT", "SETINFO", "LIB-NAME", "redis-py"][..],
        &["CLIENT", "SETINFO", "lib-ver", "8.1.0"],
        &["CLIENT", "SETINFO", "foo", "1"],
        &["CLIENT", "SETINFO", "lib-name"],
        &["CLIENT", "SETINFO", "Lib-Ver", "1 2"],
        &["CLIENT", "ID"],
    ]
    .iter()
    .map(|args| shown(&c.call_raw(args)))
    .collect();
    assert_eq!(
        replies[..5],
        [
            "+OK\\r\\n",
            "+OK\\r\\n",
            "-ERR Unrecognized option 'foo'\\r\\n",
            "-ERR wrong number of arguments for 'client|setinfo' command\\r\\n",
            "-ERR Lib-Ver cannot contain spaces, newlines or special characters.\\r\\n",
        ]
    );
    assert!(replies[5].starts_with(':'), "{}", replies[5]);
}

/// A RESP3 subscriber publishing to itself gets the replies before the
/// message in order, then the message, then the count.
#[test]
fn a_resp3_subscriber_publishing_to_itself_keeps_the_order() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    c.call_raw(&["HELLO", "3"]);
    c.call_raw(&["SUBSCRIBE", "me"]);
    let mut batch = common::resp::encode(&["PING"]);
    batch.extend(common::resp::encode(&["PUBLISH", "me", "x"]));
    c.send_raw(&batch);
    let replies: Vec<_> = (0..3).map(|_| shown(&c.read_raw())).collect();
    assert_eq!(
        replies,
        [
            "+PONG\\r\\n",
            ">3\\r\\n$7\\r\\nmessage\\r\\n$2\\r\\nme\\r\\n$1\\r\\nx\\r\\n",
            ":1\\r\\n",
        ]
    );
}

/// Keys and patterns for KEYS: Redis's glob with its edge cases (classes,
/// negation, backward ranges, escapes, a class left open).
const GLOB_KEYS: &[&str] = &[
    "hello", "hallo", "hxllo", "hllo", "h*llo", "h?llo", "h-llo", "[", "]x", "\\", "h[", "abc",
    "a\\b", "aXbYc",
];
const GLOB_PATTERNS: &[&str] = &[
    "*",
    "?",
    "h?llo",
    "h*llo",
    "h[ae]llo",
    "h[^e]llo",
    "h[a-b]llo",
    "h[b-a]llo",
    "h\\*llo",
    "h\\?llo",
    "*llo*",
    "[",
    "h[",
    "h[a",
    "\\",
    "h\\",
    "*\\",
    "[\\]]*",
    "[]",
    "[^]",
    "a*b*c",
    "**",
    "h[a-]llo",
    "h[-a]llo",
    "[\\\\]",
    "a\\\\b",
    "[[]",
    "h[^a-x]llo",
];

/// Each pattern's matches, sorted (KEYS has no order).
fn globbed(addr: SocketAddr) -> Vec<(String, Vec<Vec<u8>>)> {
    let mut c = Client::connect(addr);
    c.call_raw(&["FLUSHDB"]);
    for key in GLOB_KEYS {
        c.call_raw(&["SET", key, "1"]);
    }
    GLOB_PATTERNS
        .iter()
        .map(|pattern| match c.call(&["KEYS", pattern]) {
            common::resp::Reply::Array(keys) => {
                let mut keys: Vec<Vec<u8>> = keys
                    .into_iter()
                    .map(|k| match k {
                        common::resp::Reply::Bulk(Some(k)) => k,
                        other => panic!("not a key: {other:?}"),
                    })
                    .collect();
                keys.sort();
                (pattern.to_string(), keys)
            }
            other => panic!("KEYS {pattern}: {other:?}"),
        })
        .collect()
}

#[test]
fn keys_matches_globs_as_redis_does() {
    let server = spawn(&[]);
    let ours = globbed(server.addr);
    let find = |pattern: &str| ours.iter().find(|(p, _)| p == pattern).unwrap().1.clone();
    assert_eq!(
        find("h[^e]llo"),
        [&b"h*llo"[..], b"h-llo", b"h?llo", b"hallo", b"hxllo"]
    );
    assert_eq!(find("h\\*llo"), [b"h*llo"]);
    assert_eq!(find("h[b-a]llo"), [b"hallo"]);
    if have("redis-server") {
        let redis = RedisServer::start();
        let theirs = globbed(redis.addr);
        for (got, want) in ours.iter().zip(&theirs) {
            assert_eq!(got, want, "KEYS {}", want.0);
        }
    }
}

/// INFO's keyspace and replication sections, an unknown section, and the
/// RESP3 verbatim string (`=N\r\ntxt:...`) it becomes after `HELLO 3`.
fn info_replies(addr: SocketAddr) -> Vec<String> {
    let mut c = Client::connect(addr);
    c.call_raw(&["FLUSHDB"]);
    c.call_raw(&["SET", "a", "1"]);
    c.call_raw(&["SET", "b", "2", "EX", "100"]);
    let mut replies = vec![
        shown(&c.call_raw(&["INFO", "keyspace"])),
        shown(&c.call_raw(&["INFO", "nosuch"])),
    ];
    c.call_raw(&["HELLO", "3"]);
    replies.push(shown(&c.call_raw(&["INFO", "KEYSPACE"])));
    replies.push(shown(&c.call_raw(&["INFO", "nosuch"])));
    // Fields Redis has beyond those here vary by build: compare these.
    let everything = String::from_utf8(c.call_raw(&["INFO"])).unwrap();
    for field in [
        "redis_version:7.0.15",
        "loading:0",
        "role:master",
        "connected_clients:1",
    ] {
        assert!(everything.contains(field), "{field} in {everything}");
    }
    replies
}

#[test]
fn info_answers_like_redis() {
    let server = spawn(&[]);
    let ours = info_replies(server.addr);
    assert_eq!(
        ours,
        [
            "$44\\r\\n# Keyspace\\r\\ndb0:keys=2,expires=1,avg_ttl=0\\r\\n\\r\\n",
            "$0\\r\\n\\r\\n",
            "=48\\r\\ntxt:# Keyspace\\r\\ndb0:keys=2,expires=1,avg_ttl=0\\r\\n\\r\\n",
            "=4\\r\\ntxt:\\r\\n",
        ]
    );
    if have("redis-server") {
        let redis = RedisServer::start();
        assert_eq!(
            ours,
            info_replies(redis.addr),
            "resp_server vs redis-server"
        );
    }
}
