//! Transactions in the `resp_server` example: MULTI, EXEC and DISCARD
//! (queued replies, errors, EXECABORT, the replies as one array), WATCH and
//! UNWATCH, compared with redis-server byte for byte when one is installed
//! and with Redis 7.0's bytes written out here; and the cap a transaction's
//! queue has (`--max-query`).
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
