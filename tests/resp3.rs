//! The exact bytes of the `resp_server` example's replies to HELLO, CLIENT,
//! the string and key-space commands and pattern pub/sub, in RESP2 and in
//! RESP3 (after `HELLO 3`), compared with redis-server's byte for byte when
//! one is installed, and with Redis 7.0's bytes written out here for the
//! replies whose shape is the point (nulls, maps, pushes). Also inline
//! commands' separators, the unknown-command error's raw bytes, and
//! transactions (MULTI/EXEC/DISCARD), and INFO.
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

/// MULTI, EXEC and DISCARD: queued replies, the errors, EXECABORT, and the
/// replies of a transaction as one array (redis-py's `pipeline()` sends
/// one).
const TRANSACTION: &[u8] = b"EXEC\r\nDISCARD\r\nMULTI\r\nMULTI\r\nSET a 1\r\nGET\r\n\
    FOO\r\nEXEC\r\nMULTI\r\nSET a 1\r\nINCR a\r\nINCR nope\r\nGET a\r\nMGET a x\r\n\
    EXEC\r\nMULTI\r\nSET a 2\r\nDISCARD\r\nGET a\r\nMULTI\r\nEXEC\r\nMULTI\r\n\
    RESET\r\nEXEC\r\nMULTI\r\nGET a\r\nQUIT\r\n";

/// Redis 7.0's replies to `TRANSACTION`.
const TRANSACTION_REPLIES: &str = "-ERR EXEC without MULTI\r\n\
    -ERR DISCARD without MULTI\r\n+OK\r\n-ERR MULTI calls can not be nested\r\n\
    +QUEUED\r\n-ERR wrong number of arguments for 'get' command\r\n\
    -ERR unknown command 'FOO', with args beginning with: \r\n\
    -EXECABORT Transaction discarded because of previous errors.\r\n\
    +OK\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n+QUEUED\r\n\
    *5\r\n+OK\r\n:2\r\n:1\r\n$1\r\n2\r\n*2\r\n$1\r\n2\r\n$-1\r\n\
    +OK\r\n+QUEUED\r\n+OK\r\n$1\r\n2\r\n+OK\r\n*0\r\n+OK\r\n+RESET\r\n\
    -ERR EXEC without MULTI\r\n+OK\r\n+QUEUED\r\n+OK\r\n";

/// Everything the server answers to `TRANSACTION` until it closes.
fn transaction_replies(addr: SocketAddr) -> String {
    let mut c = Client::connect(addr);
    c.call_raw(&["FLUSHDB"]);
    c.send_raw(TRANSACTION);
    let mut all = Vec::new();
    std::io::Read::read_to_end(&mut c.reader, &mut all).unwrap();
    String::from_utf8_lossy(&all).into_owned()
}

#[test]
fn transactions_answer_like_redis() {
    let server = spawn(&[]);
    let ours = transaction_replies(server.addr);
    assert_eq!(
        shown(ours.as_bytes()),
        shown(TRANSACTION_REPLIES.as_bytes())
    );
    if have("redis-server") {
        let redis = RedisServer::start();
        assert_eq!(
            ours,
            transaction_replies(redis.addr),
            "resp_server vs redis-server"
        );
    }
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

/// A transaction's queue counts against `--max-query`: MULTI followed by
/// commands without end is disconnected, not held in memory without bound.
#[test]
fn a_transaction_is_capped_by_max_query() {
    let server = spawn(&["--max-query", "1048576"]);
    let mut c = Client::connect(server.addr);
    assert_eq!(c.call_raw(&["MULTI"]), b"+OK\r\n");
    let value = "x".repeat(64 * 1024);
    let mut queued = 0;
    // 2 MiB of SETs: past 1 MiB queued the server closes.
    for _ in 0..32 {
        c.send(&["SET", "k", &value]);
        match c.try_read_raw() {
            Some(reply) => {
                assert_eq!(reply, b"+QUEUED\r\n");
                queued += 1;
            }
            None => break,
        }
    }
    assert!((10..20).contains(&queued), "queued {queued} of 64 KiB");
    c.assert_closed();
    let mut probe = Client::connect(server.addr);
    assert_eq!(probe.call_raw(&["PING"]), b"+PONG\r\n");
}

/// WATCH: EXEC fails (a null array) when a watched key was written since,
/// by this client or another, even if it was deleted again; EXPIRE,
/// PERSIST, APPEND and FLUSHDB count as writes; UNWATCH, EXEC and
/// DISCARD forget the watches; WATCH inside MULTI is refused.
const WATCHING: &[u8] = b"SET w 1\r\nWATCH w\r\nSET w 2\r\nMULTI\r\nGET w\r\nEXEC\r\n\
    WATCH w x\r\nMULTI\r\nGET w\r\nEXEC\r\nWATCH w\r\nUNWATCH\r\nSET w 3\r\nMULTI\r\nEXEC\r\n\
    WATCH\r\nUNWATCH x\r\nWATCH nokey\r\nSET nokey 1\r\nDEL nokey\r\nMULTI\r\nEXEC\r\n\
    WATCH w\r\nEXPIRE w 100\r\nMULTI\r\nEXEC\r\nWATCH w\r\nPERSIST w\r\nMULTI\r\nUNWATCH\r\n\
    EXEC\r\nWATCH w\r\nAPPEND w x\r\nMULTI\r\nEXEC\r\nWATCH w\r\nGET w\r\nMULTI\r\nWATCH w\r\n\
    EXEC\r\nWATCH w\r\nFLUSHDB\r\nMULTI\r\nEXEC\r\nWATCH nope\r\nFLUSHDB\r\nMULTI\r\nEXEC\r\n\
    WATCH w\r\nDISCARD\r\nSET w 9\r\nMULTI\r\nEXEC\r\nSET w 1\r\nWATCH w\r\nMULTI\r\n\
    FOO\r\nEXEC\r\nWATCH w\r\nMULTI\r\nSET w 2\r\n";

/// The replies to `WATCHING`, then whether another client's write to a
/// watched key made this client's EXEC fail.
fn watch_replies(addr: SocketAddr) -> (String, Vec<u8>) {
    let mut c = Client::connect(addr);
    c.call_raw(&["FLUSHDB"]);
    c.send_raw(WATCHING);
    let count = WATCHING.split(|&b| b == b'\n').count() - 1;
    let replies: Vec<String> = (0..count).map(|_| shown(&c.read_raw())).collect();
    // Another client writes `w` while the transaction is open.
    let mut other = Client::connect(addr);
    other.call_raw(&["SET", "w", "3"]);
    let exec = c.call_raw(&["EXEC"]);
    (replies.concat(), exec)
}

#[test]
fn watch_makes_exec_fail_like_redis() {
    let server = spawn(&[]);
    let ours = watch_replies(server.addr);
    assert_eq!(ours.1, b"*-1\r\n", "another client's write fails EXEC");
    if have("redis-server") {
        let redis = RedisServer::start();
        let theirs = watch_replies(redis.addr);
        assert_eq!(ours, theirs, "resp_server vs redis-server");
    }
}
