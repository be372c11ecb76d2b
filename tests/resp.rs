//! The `resp_server` example end to end: every command, inline commands,
//! pipelining (in order, and a batch in one write), each protocol error and
//! the close that follows, the `$500000000` stall that must cost only the
//! bytes sent, the query buffer cap, big values, SIGTERM, and redis-cli and
//! redis-benchmark when they are installed.
//!
//! The parser on its own is in tests/resp_parse.rs, flow control and
//! memory (issue 8) in tests/resp_memory.rs, pub/sub in tests/pubsub.rs,
//! RESP3 and the byte-exact replies of HELLO, CLIENT and the string and
//! key-space commands in tests/resp3.rs, transactions in
//! tests/resp_multi.rs, redis-py in tests/resp_redis_py.rs;
//! the client they share is tests/common/resp.rs.
mod common;

#[allow(dead_code)]
#[path = "../examples/resp_server/parse.rs"]
mod parse;

use std::io::{Read, Write};
use std::time::Duration;

use common::resp::{bulk, encode, err, simple, spawn, Client, Reply};
use common::tools::{have, run_bounded};
use common::{rss_kib, writes_in_report};
use parse::MAX_INLINE;

#[test]
fn every_command_answers_like_redis() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    assert_eq!(c.call(&["PING"]), simple("PONG"));
    assert_eq!(c.call(&["ping", "hi there"]), bulk("hi there"));
    assert_eq!(c.call(&["ECHO", "x\r\ny"]), bulk("x\r\ny"));
    assert_eq!(c.call(&["GET", "k"]), Reply::Bulk(None));
    assert_eq!(c.call(&["SET", "k", "v"]), simple("OK"));
    assert_eq!(c.call(&["GET", "k"]), bulk("v"));
    assert_eq!(c.call(&["SET", "k", "w", "NX"]), Reply::Bulk(None));
    assert_eq!(c.call(&["SET", "k", "w", "XX"]), simple("OK"));
    assert_eq!(c.call(&["SET", "other", "w", "XX"]), Reply::Bulk(None));
    assert_eq!(
        c.call(&["SET", "k", "w", "NX", "XX"]),
        err("ERR syntax error")
    );
    assert_eq!(
        c.call(&["SET", "k", "w", "EX", "0"]),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(c.call(&["SET", "t", "1", "PX", "100"]), simple("OK"));
    assert_eq!(c.call(&["EXISTS", "t"]), Reply::Int(1));
    std::thread::sleep(Duration::from_millis(150));
    assert_eq!(c.call(&["GET", "t"]), Reply::Bulk(None), "expired");
    assert_eq!(c.call(&["SET", "a", "1"]), simple("OK"));
    assert_eq!(c.call(&["EXISTS", "a", "k", "nope", "a"]), Reply::Int(3));
    assert_eq!(c.call(&["INCR", "a"]), Reply::Int(2));
    assert_eq!(c.call(&["INCR", "fresh"]), Reply::Int(1));
    assert_eq!(
        c.call(&["INCR", "k"]),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(c.call(&["SET", "max", &i64::MAX.to_string()]), simple("OK"));
    assert_eq!(
        c.call(&["INCR", "max"]),
        err("ERR increment or decrement would overflow")
    );
    assert_eq!(
        c.call(&["MGET", "a", "nope", "k"]),
        Reply::Array(vec![bulk("2"), Reply::Bulk(None), bulk("w")])
    );
    assert_eq!(c.call(&["DEL", "a", "k", "nope"]), Reply::Int(2));
    assert_eq!(c.call(&["EXISTS", "a", "k"]), Reply::Int(0));
    assert_eq!(
        c.call(&["GET"]),
        err("ERR wrong number of arguments for 'get' command")
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "save"]),
        Reply::Array(vec![bulk("save"), bulk("")])
    );
    assert_eq!(
        c.call(&["config", "get", "appendonly"]),
        Reply::Array(vec![bulk("appendonly"), bulk("no")])
    );
    // Settings monitoring reads have their true values; others none.
    assert_eq!(
        c.call(&["CONFIG", "GET", "maxmemory"]),
        Reply::Array(vec![bulk("maxmemory"), bulk("0")])
    );
    assert_eq!(
        c.call(&["CONFIG", "GET", "no-such-setting"]),
        Reply::Array(vec![])
    );
    assert_eq!(c.call(&["COMMAND", "DOCS"]), Reply::Array(vec![]));
    assert_eq!(c.call(&["COMMAND"]), Reply::Array(vec![]));
    assert_eq!(
        c.call(&["FLUSHALL", "ASYNC", "x"]),
        err("ERR unknown command 'FLUSHALL', with args beginning with: 'ASYNC' 'x' ")
    );
    assert_eq!(c.call(&["QUIT"]), simple("OK"));
    c.assert_closed();
}

#[test]
fn inline_commands_work() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    c.send_raw(b"PING\r\nSET greeting \"hello world\\x21\"\r\n\r\nGET greeting\nping 'it''s'\r\n");
    assert_eq!(c.read(), simple("PONG"));
    assert_eq!(c.read(), simple("OK"));
    assert_eq!(c.read(), bulk("hello world!"));
    // `'it''s'`: a closing quote must be followed by a space.
    assert_eq!(
        c.read(),
        err("ERR Protocol error: unbalanced quotes in request")
    );
    c.assert_closed();
}

#[test]
fn pipelined_commands_are_answered_in_order() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    let mut batch = Vec::new();
    for i in 0..200 {
        let (key, value) = (format!("key{i}"), format!("value{i}"));
        batch.extend(encode(&[b"SET".to_vec(), key.clone().into(), value.into()]));
        batch.extend(encode(&[b"GET".to_vec(), key.into()]));
        batch.extend(encode(&[b"INCR".to_vec(), b"counter".to_vec()]));
    }
    c.send_raw(&batch);
    for i in 0..200 {
        assert_eq!(c.read(), simple("OK"));
        assert_eq!(c.read(), bulk(&format!("value{i}")));
        assert_eq!(c.read(), Reply::Int(i + 1));
    }
}

#[test]
fn protocol_errors_are_answered_then_closed() {
    let server = spawn(&[]);
    let cases: [(&[u8], &str); 8] = [
        (b"*x\r\n", "invalid multibulk length"),
        (b"*3000000000\r\n", "invalid multibulk length"),
        (b"*1\r\n$x\r\n", "invalid bulk length"),
        (b"*1\r\n$-1\r\n", "invalid bulk length"),
        (b"*1\r\n$600000000\r\n", "invalid bulk length"),
        (b"*1\r\nfoo\r\n", "expected '$', got 'f'"),
        (b"*2\r\n$4\r\nECHO\r\n:1\r\n", "expected '$', got ':'"),
        (b"SET \"a b\r\n", "unbalanced quotes in request"),
    ];
    for (request, message) in cases {
        let mut c = Client::connect(server.addr);
        // Commands before the error are still answered, in order.
        c.send_raw(b"PING\r\n");
        c.send_raw(request);
        assert_eq!(c.read(), simple("PONG"));
        assert_eq!(
            c.read(),
            Reply::Error(format!("ERR Protocol error: {message}")),
            "{}",
            String::from_utf8_lossy(request)
        );
        c.assert_closed();
    }
    // Lines that never end are cut off at 64 KiB.
    let long: [(&[u8], &str); 3] = [
        (b"", "too big inline request"),
        (b"*", "too big mbulk count string"),
        (b"*1\r\n", "too big bulk count string"),
    ];
    for (prefix, message) in long {
        let mut c = Client::connect(server.addr);
        let mut request = prefix.to_vec();
        request.extend(std::iter::repeat_n(b'1', MAX_INLINE + 10));
        c.send_raw(&request);
        assert_eq!(
            c.read(),
            Reply::Error(format!("ERR Protocol error: {message}"))
        );
        c.assert_closed();
    }
}

#[test]
fn huge_declared_lengths_cost_only_the_bytes_sent() {
    let server = spawn(&[]);
    let pid = server.child.id();
    let mut probe = Client::connect(server.addr);
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
    let before = rss_kib(pid);
    let mut stallers = Vec::new();
    for _ in 0..10 {
        let mut c = Client::connect(server.addr);
        c.send_raw(b"*2147483647\r\n$3\r\nSET\r\n$500000000\r\n");
        c.send_raw(&[b'x'; 100_000]);
        stallers.push(c);
    }
    // The server is not stuck, and the stalled clients hold no reply.
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
    let after = rss_kib(pid);
    // 10 x 100 KB sent; allow for buffer doubling and allocator slack, but
    // nowhere near the 5 GB (or 2^31 slots) declared.
    assert!(
        after < before + 16 * 1024,
        "RSS grew from {before} KiB to {after} KiB"
    );
    for c in &mut stallers {
        c.stream.set_nonblocking(true).unwrap();
        let mut byte = [0; 1];
        assert!(
            matches!(c.stream.read(&mut byte), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
            "no reply to an incomplete command"
        );
    }
}

#[test]
fn the_query_buffer_is_capped_by_max_query() {
    let server = spawn(&["--max-query", "1048576"]);
    let mut c = Client::connect(server.addr);
    c.send_raw(b"*2\r\n$4\r\nECHO\r\n$100000000\r\n");
    let chunk = vec![b'x'; 64 * 1024];
    // Past 1 MiB buffered the server closes; writes then fail or the read
    // sees the close.
    for _ in 0..64 {
        if c.stream.write_all(&chunk).is_err() {
            break;
        }
    }
    c.assert_closed();
    let mut probe = Client::connect(server.addr);
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
}

#[test]
fn big_values_cross_many_reads() {
    let server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    let value: String = (0..3_000_000)
        .map(|i| char::from(b'a' + (i % 26) as u8))
        .collect();
    assert_eq!(c.call(&["SET", "big", &value]), simple("OK"));
    assert_eq!(
        c.call(&["GET", "big"]),
        Reply::Bulk(Some(value.into_bytes()))
    );
}

#[test]
fn sigterm_shuts_down_with_status_zero() {
    let mut server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    assert_eq!(c.call(&["PING"]), simple("PONG"));
    server.signal("TERM");
    c.assert_closed();
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}

#[test]
fn redis_cli_talks_to_it() {
    if !have("redis-cli") {
        return;
    }
    let server = spawn(&[]);
    let port = server.addr.port().to_string();
    let cli = |args: &[&str]| {
        let mut all = vec!["-h", "127.0.0.1", "-p", &port];
        all.extend_from_slice(args);
        run_bounded(10, "redis-cli", &all).trim().to_string()
    };
    assert_eq!(cli(&["ping"]), "PONG");
    assert_eq!(cli(&["set", "greeting", "hello"]), "OK");
    assert_eq!(cli(&["get", "greeting"]), "hello");
    assert_eq!(cli(&["incr", "n"]), "1");
}

#[test]
fn redis_benchmark_runs_without_errors() {
    if !have("redis-benchmark") {
        return;
    }
    let server = spawn(&[]);
    let port = server.addr.port().to_string();
    for pipeline in ["1", "16"] {
        let report = run_bounded(
            60,
            "redis-benchmark",
            &[
                "-h",
                "127.0.0.1",
                "-p",
                &port,
                "-t",
                "ping,set,get",
                "-n",
                "20000",
                "-q",
                "-P",
                pipeline,
            ],
        );
        // -q prints carriage-return progress lines; keep the final ones.
        let summary: Vec<&str> = report
            .split(['\r', '\n'])
            .filter(|l| l.contains("requests per second"))
            .collect();
        eprintln!("redis-benchmark -P {pipeline}: {summary:#?}");
        for test in ["PING_INLINE", "PING_MBULK", "SET", "GET"] {
            assert!(
                summary.iter().any(|l| l.trim_start().starts_with(test)),
                "{test} missing: {report}"
            );
        }
        assert!(!report.contains("WARNING"), "{report}");
        assert!(!report.contains("ERR"), "{report}");
        assert!(!report.contains("rror"), "{report}");
    }
}

#[test]
fn a_pipelined_batch_is_answered_in_one_write() {
    let mut server = spawn(&[]);
    let mut c = Client::connect(server.addr);
    let batch: Vec<u8> = (0..100)
        .flat_map(|i| encode(&[b"ECHO".to_vec(), format!("m{i}").into_bytes()]))
        .collect();
    c.send_raw(&batch);
    for i in 0..100 {
        assert_eq!(c.read(), bulk(&format!("m{i}")));
    }
    // Closing first spares the server's linger wait for our FIN.
    drop(c);
    let line = server.stop_with_report();
    let writes = writes_in_report(&line);
    // 100 commands arrived in one read; their replies left in one send.
    assert_eq!(writes, 1, "{line}");
}
