//! The `resp_server` example, end to end and in parts: every command, inline
//! commands, pipelining, each protocol error and the close that follows, the
//! `$500000000` stall that must cost only the bytes sent, and the query
//! buffer cap against the running binary; the incremental parser on its own,
//! on generated and hostile input; and redis-cli and redis-benchmark when
//! they are installed.
mod common;

#[allow(dead_code)]
#[path = "../examples/resp_server/parse.rs"]
mod parse;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::tools::{have, run_bounded};
use common::{rss_kib, writes_in_report, ChildServer, XorShift};
use parse::{Parsed, Parser, ProtocolError, ARGV_PREALLOC, MAX_INLINE};
use proptest::prelude::*;

fn server(extra: &[&str]) -> ChildServer {
    common::spawn_on_loopback("resp_server", extra)
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Reply {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` and its bytes; `None` for the null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` and its elements.
    Array(Vec<Reply>),
}

fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

fn simple(s: &str) -> Reply {
    Reply::Simple(s.into())
}

fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

/// A client connection with a reply reader.
struct Client {
    /// The socket, for writing (and for the non-blocking probe).
    stream: TcpStream,
    /// A clone of the socket, buffered for reading replies.
    reader: BufReader<TcpStream>,
}

impl Client {
    fn new(server: &ChildServer) -> Client {
        let stream = common::client(server.addr);
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    fn send(&mut self, args: &[&str]) {
        let frame = encode(
            &args
                .iter()
                .map(|a| a.as_bytes().to_vec())
                .collect::<Vec<_>>(),
        );
        self.send_raw(&frame);
    }

    fn call(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read()
    }

    fn read(&mut self) -> Reply {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("reply line");
        assert!(line.ends_with("\r\n"), "truncated reply {line:?}");
        let body = line[1..line.len() - 2].to_string();
        match line.as_bytes()[0] {
            b'+' => Reply::Simple(body),
            b'-' => Reply::Error(body),
            b':' => Reply::Int(body.parse().unwrap()),
            b'$' => {
                let len: i64 = body.parse().unwrap();
                if len < 0 {
                    return Reply::Bulk(None);
                }
                let mut data = vec![0; len as usize + 2];
                self.reader.read_exact(&mut data).unwrap();
                data.truncate(len as usize);
                Reply::Bulk(Some(data))
            }
            b'*' => {
                let len: usize = body.parse().unwrap();
                Reply::Array((0..len).map(|_| self.read()).collect())
            }
            other => panic!("bad reply type {other}"),
        }
    }

    /// The server closed the connection: EOF (or a reset), not a timeout.
    fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

/// A command as a multibulk frame.
fn encode(args: &[Vec<u8>]) -> Vec<u8> {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
    frame
}

#[test]
fn every_command_answers_like_redis() {
    let server = server(&[]);
    let mut c = Client::new(&server);
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
    assert_eq!(
        c.call(&["CONFIG", "GET", "maxmemory"]),
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
    let server = server(&[]);
    let mut c = Client::new(&server);
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
    let server = server(&[]);
    let mut c = Client::new(&server);
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
    let server = server(&[]);
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
        let mut c = Client::new(&server);
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
        let mut c = Client::new(&server);
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
    let server = server(&[]);
    let pid = server.child.id();
    let mut probe = Client::new(&server);
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
    let before = rss_kib(pid);
    let mut stallers = Vec::new();
    for _ in 0..10 {
        let mut c = Client::new(&server);
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
    let server = server(&["--max-query", "1048576"]);
    let mut c = Client::new(&server);
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
    let mut probe = Client::new(&server);
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
}

#[test]
fn big_values_cross_many_reads() {
    let server = server(&[]);
    let mut c = Client::new(&server);
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
    let mut server = server(&[]);
    let mut c = Client::new(&server);
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
    let server = server(&[]);
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
    let server = server(&[]);
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

/// Feeds `input` to a fresh parser in chunks the way the reactor does:
/// each call sees everything not yet consumed; returns the commands'
/// arguments, or the error.
fn feed(input: &[u8], chunks: &[usize]) -> Result<Vec<Vec<Vec<u8>>>, ProtocolError> {
    let mut parser = Parser::default();
    let mut commands = Vec::new();
    let (mut consumed, mut available) = (0, 0);
    let mut sizes = chunks.iter().copied().chain(std::iter::repeat(input.len()));
    while available < input.len() {
        available = (available + sizes.next().unwrap().max(1)).min(input.len());
        loop {
            let offered = &input[consumed..available];
            match parser.parse(offered)? {
                Parsed::Incomplete => break,
                Parsed::Empty(n) => consumed += n,
                Parsed::Command(n) => {
                    assert!(n <= offered.len());
                    commands.push(
                        (0..parser.argc())
                            .map(|i| parser.arg(offered, i).to_vec())
                            .collect(),
                    );
                    consumed += n;
                }
            }
            assert!(parser.args_capacity() <= ARGV_PREALLOC.max(offered.len()));
        }
    }
    Ok(commands)
}

fn command() -> impl Strategy<Value = Vec<Vec<u8>>> {
    proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..6)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn garbage_never_panics(input in proptest::collection::vec(any::<u8>(), 0..1024), chunks in proptest::collection::vec(1usize..128, 0..8)) {
        let _ = feed(&input, &chunks);
    }

    #[test]
    fn starred_garbage_never_panics(body in proptest::collection::vec(prop_oneof![Just(b'\r'), Just(b'\n'), Just(b'$'), Just(b'*'), Just(b'-'), b'0'..=b'9', any::<u8>()], 0..200)) {
        let mut input = b"*".to_vec();
        input.extend(body);
        let _ = feed(&input, &[7]);
    }

    #[test]
    fn commands_survive_any_split(commands in proptest::collection::vec(command(), 1..8), chunks in proptest::collection::vec(1usize..64, 0..64)) {
        let input: Vec<u8> = commands.iter().flat_map(|c| encode(c)).collect();
        prop_assert_eq!(feed(&input, &chunks), Ok(commands.clone()));
        // Every strict prefix of one command is incomplete.
        let one = encode(&commands[0]);
        for cut in 0..one.len() {
            let mut parser = Parser::default();
            prop_assert_eq!(parser.parse(&one[..cut]), Ok(Parsed::Incomplete));
        }
    }

    #[test]
    fn huge_declared_lengths_allocate_nothing(count in 1i64..=i64::from(i32::MAX), len in 0usize..=parse::MAX_BULK, sent in 0usize..2048) {
        let mut input = format!("*{count}\r\n${len}\r\n").into_bytes();
        input.extend(std::iter::repeat_n(b'x', sent.min(len)));
        let mut parser = Parser::default();
        prop_assert_eq!(parser.parse(&input), Ok(Parsed::Incomplete));
        prop_assert!(parser.args_capacity() <= ARGV_PREALLOC);
    }

    #[test]
    fn declared_lengths_out_of_range_are_errors(n in prop_oneof![i64::MIN..-1, (parse::MAX_BULK as i64 + 1)..i64::MAX]) {
        let input = format!("*1\r\n${n}\r\n");
        prop_assert_eq!(Parser::default().parse(input.as_bytes()), Err(ProtocolError::InvalidBulkLength));
        let input = format!("*{}\r\n", i128::from(i32::MAX) + 1 + i128::from(n.unsigned_abs() % 1000));
        prop_assert_eq!(Parser::default().parse(input.as_bytes()), Err(ProtocolError::InvalidMultibulkLength));
    }

    #[test]
    fn endless_lines_are_errors_not_memory(byte in 0x21u8..0x7f, extra in 1usize..1000) {
        prop_assume!(byte != b'*');
        let line = vec![byte; MAX_INLINE + extra];
        prop_assert_eq!(Parser::default().parse(&line), Err(ProtocolError::TooBigInline));
        prop_assert_eq!(Parser::default().parse(&line[..MAX_INLINE]), Ok(Parsed::Incomplete));
    }
}

#[test]
fn structured_garbage_from_resp_fragments_never_panics() {
    const FRAGMENTS: [&[u8]; 16] = [
        b"*",
        b"$",
        b"\r\n",
        b"\r",
        b"\n",
        b"-1",
        b"0",
        b"3",
        b"500000000",
        b"2147483648",
        b"PING",
        b" ",
        b"\"",
        b"'",
        b"\\x4",
        b"99999999999999999999",
    ];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    for _ in 0..3000 {
        let input = rng.garbage(&FRAGMENTS, 40);
        let chunks: Vec<usize> = (0..rng.below(6)).map(|_| 1 + rng.below(16)).collect();
        let _ = feed(&input, &chunks);
    }
}

#[test]
fn a_pipelined_batch_is_answered_in_one_write() {
    let mut server = server(&[]);
    let mut c = Client::new(&server);
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

#[test]
fn a_client_that_does_not_read_is_cut_off_at_max_output() {
    let server = server(&["--max-output", "1048576"]);
    let mut c = Client::new(&server);
    let value = "v".repeat(100_000);
    assert_eq!(c.call(&["SET", "big", &value]), simple("OK"));
    // 100 GETs of 100 KB each in one batch, never read: 10 MB of replies
    // against a 1 MiB cap.
    let batch: Vec<u8> = (0..100)
        .flat_map(|_| encode(&[b"GET".to_vec(), b"big".to_vec()]))
        .collect();
    c.send_raw(&batch);
    let mut probe = Client::new(&server);
    assert_eq!(probe.call(&["PING"]), simple("PONG"));
    // Draining what did get queued ends in EOF or a reset, well short of
    // 10 MB.
    let mut received = 0;
    let mut buf = vec![0; 64 * 1024];
    loop {
        match c.reader.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => received += n,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(received < 2 * 1024 * 1024, "{received} bytes arrived");
}
