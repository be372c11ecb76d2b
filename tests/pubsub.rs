//! Pub/sub in the `resp_server` example, against the running binary: the
//! exact RESP2 replies (compared byte for byte with a real redis-server when
//! one is installed), the subscribed-mode rules, a burst of PUBLISHes that
//! must reach every subscriber that keeps up, every message in order, and
//! the slow-subscriber policy: a subscriber that does not read is
//! disconnected at the pub/sub hard limit, or after the soft limit's time,
//! while the others get everything, pattern subscribers (PSUBSCRIBE)
//! included.
mod common;

use std::net::SocketAddr;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::resp::{encode, spawn, Client, RedisServer};
use common::tools::have;
use common::{join_within, wait_until};

/// The frame a subscriber of `channel` receives for `payload`.
fn message(channel: &[u8], payload: &[u8]) -> Vec<u8> {
    encode::<&[u8]>(&[b"message", channel, payload])
}

/// Payload `i` of a burst, `len` bytes: its number, then filler.
fn payload(i: usize, len: usize) -> Vec<u8> {
    let mut bytes = format!("{i:08}:").into_bytes();
    bytes.resize(len, b'a' + (i % 26) as u8);
    bytes
}

/// Connects, subscribes to `channel` and reads the confirmation.
fn subscriber(addr: SocketAddr, channel: &str) -> Client {
    let mut c = Client::connect(addr);
    let confirmation = c.call_raw(&["SUBSCRIBE", channel]);
    assert_eq!(
        confirmation,
        format!(
            "*3\r\n$9\r\nsubscribe\r\n${}\r\n{channel}\r\n:1\r\n",
            channel.len()
        )
        .into_bytes()
    );
    c
}

/// A subscriber on its own thread that reads `count` messages of
/// `channel` and checks each against `payload(i, len)`, in order; returns
/// the connection, still open.
fn keep_up(mut c: Client, channel: &'static str, count: usize, len: usize) -> JoinHandle<Client> {
    std::thread::spawn(move || {
        for i in 0..count {
            let got = c.read_raw();
            assert!(
                got == message(channel.as_bytes(), &payload(i, len)),
                "message {i}: {:?}",
                String::from_utf8_lossy(&got[..got.len().min(80)])
            );
        }
        c
    })
}

/// Publishes `count` messages of `len` bytes to `channel` in one pipelined
/// burst (written from another thread while the replies are read); returns
/// each PUBLISH's receiver count.
fn burst(addr: SocketAddr, channel: &str, count: usize, len: usize) -> Vec<i64> {
    let mut publisher = Client::connect(addr);
    let batch: Vec<u8> = (0..count)
        .flat_map(|i| encode::<&[u8]>(&[b"PUBLISH", channel.as_bytes(), &payload(i, len)]))
        .collect();
    let sending = publisher.send_in_background(batch);
    let counts = (0..count).map(|_| publisher.read_int()).collect();
    join_within(sending, Duration::from_secs(30));
    counts
}

/// Reads what a dropped subscriber still had in its socket until EOF: a
/// prefix of the burst in order, the last message possibly cut short.
/// Returns how many whole messages arrived.
fn messages_until_eof(c: &mut Client, channel: &str, len: usize) -> usize {
    let mut received = 0;
    while let Some(got) = c.try_read_raw() {
        assert!(
            got == message(channel.as_bytes(), &payload(received, len)),
            "message {received} out of order"
        );
        received += 1;
    }
    received
}

/// Bytes shown with CR and LF escaped, for readable assertion failures.
fn shown(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes)
        .replace('\r', "\\r")
        .replace('\n', "\\n")
}

/// A session on two connections exercising every pub/sub reply shape;
/// returns each reply, escaped, in order. `a` subscribes, `b` publishes.
fn transcript(addr: SocketAddr) -> Vec<String> {
    let mut a = Client::connect(addr);
    let mut b = Client::connect(addr);
    let mut log = Vec::new();
    let mut step = |c: &mut Client, args: &[&str], replies: usize| {
        if !args.is_empty() {
            c.send(args);
        }
        for _ in 0..replies {
            log.push(shown(&c.read_raw()));
        }
    };
    step(&mut a, &["UNSUBSCRIBE"], 1);
    step(&mut a, &["UNSUBSCRIBE", "x", "y"], 2);
    step(&mut a, &["SUBSCRIBE"], 1);
    step(&mut b, &["PUBLISH", "ch"], 1);
    step(&mut b, &["PUBLISH", "ch", "nobody"], 1);
    step(&mut a, &["SUBSCRIBE", "ch", "ch2", "ch"], 3);
    step(&mut a, &["PING"], 1);
    step(&mut a, &["ping", "hello"], 1);
    step(&mut a, &["PING", "a", "b"], 1);
    step(&mut a, &["GET", "x"], 1);
    step(&mut a, &["GET"], 1);
    step(&mut a, &["SET", "k", "v"], 1);
    step(&mut a, &["FOO", "bar"], 1);
    step(&mut a, &["CONFIG", "GET", "save"], 1);
    step(&mut a, &["ECHO", "x"], 1);
    step(&mut a, &["PUBLISH", "ch", "x"], 1);
    step(&mut b, &["PUBLISH", "ch", "hello"], 1);
    step(&mut a, &[], 1);
    step(&mut b, &["PUBLISH", "ch2", ""], 1);
    step(&mut a, &[], 1);
    step(&mut a, &["UNSUBSCRIBE", "ch", "nope"], 2);
    step(&mut a, &["UNSUBSCRIBE"], 1);
    step(&mut a, &["GET", "x"], 1);
    step(&mut a, &["SUBSCRIBE", "q"], 1);
    step(&mut a, &["RESET", "x"], 1);
    step(&mut a, &["RESET"], 1);
    step(&mut a, &["GET", "x"], 1);
    step(&mut b, &["PUBLISH", "q", "x"], 1);
    step(&mut a, &["SUBSCRIBE", "q"], 1);
    step(&mut a, &["QUIT"], 1);
    // QUIT closes.
    a.assert_closed();
    log
}

/// Redis 7.0's replies to `transcript`, checked against redis-server
/// 7.0.15.
const EXPECTED: [&str; 34] = [
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$-1\\r\\n:0\\r\\n",
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$1\\r\\nx\\r\\n:0\\r\\n",
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$1\\r\\ny\\r\\n:0\\r\\n",
    "-ERR wrong number of arguments for 'subscribe' command\\r\\n",
    "-ERR wrong number of arguments for 'publish' command\\r\\n",
    ":0\\r\\n",
    "*3\\r\\n$9\\r\\nsubscribe\\r\\n$2\\r\\nch\\r\\n:1\\r\\n",
    "*3\\r\\n$9\\r\\nsubscribe\\r\\n$3\\r\\nch2\\r\\n:2\\r\\n",
    "*3\\r\\n$9\\r\\nsubscribe\\r\\n$2\\r\\nch\\r\\n:2\\r\\n",
    "*2\\r\\n$4\\r\\npong\\r\\n$0\\r\\n\\r\\n",
    "*2\\r\\n$4\\r\\npong\\r\\n$5\\r\\nhello\\r\\n",
    "-ERR wrong number of arguments for 'ping' command\\r\\n",
    "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\\r\\n",
    "-ERR wrong number of arguments for 'get' command\\r\\n",
    "-ERR Can't execute 'set': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\\r\\n",
    "-ERR unknown command 'FOO', with args beginning with: 'bar' \\r\\n",
    "-ERR Can't execute 'config|get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\\r\\n",
    "-ERR Can't execute 'echo': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\\r\\n",
    "-ERR Can't execute 'publish': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\\r\\n",
    ":1\\r\\n",
    "*3\\r\\n$7\\r\\nmessage\\r\\n$2\\r\\nch\\r\\n$5\\r\\nhello\\r\\n",
    ":1\\r\\n",
    "*3\\r\\n$7\\r\\nmessage\\r\\n$3\\r\\nch2\\r\\n$0\\r\\n\\r\\n",
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$2\\r\\nch\\r\\n:1\\r\\n",
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$4\\r\\nnope\\r\\n:1\\r\\n",
    "*3\\r\\n$11\\r\\nunsubscribe\\r\\n$3\\r\\nch2\\r\\n:0\\r\\n",
    "$-1\\r\\n",
    "*3\\r\\n$9\\r\\nsubscribe\\r\\n$1\\r\\nq\\r\\n:1\\r\\n",
    "-ERR wrong number of arguments for 'reset' command\\r\\n",
    "+RESET\\r\\n",
    "$-1\\r\\n",
    ":0\\r\\n",
    "*3\\r\\n$9\\r\\nsubscribe\\r\\n$1\\r\\nq\\r\\n:1\\r\\n",
    "+OK\\r\\n",
];

#[test]
fn replies_are_byte_for_byte_those_of_redis() {
    let server = spawn(&[]);
    let ours = transcript(server.addr);
    for (i, (got, want)) in ours.iter().zip(EXPECTED).enumerate() {
        assert_eq!(got, want, "reply {i}");
    }
    assert_eq!(ours.len(), EXPECTED.len());
    if have("redis-server") {
        let redis = RedisServer::start();
        assert_eq!(ours, transcript(redis.addr), "resp_server vs redis-server");
    }
}

#[test]
fn a_burst_reaches_every_subscriber_that_keeps_up_in_order() {
    const COUNT: usize = 20_000;
    const LEN: usize = 100;
    let server = spawn(&[]);
    let readers: Vec<_> = (0..3)
        .map(|_| keep_up(subscriber(server.addr, "news"), "news", COUNT, LEN))
        .collect();
    let counts = burst(server.addr, "news", COUNT, LEN);
    assert!(counts.iter().all(|&n| n == 3), "receiver counts {counts:?}");
    for reader in readers {
        join_within(reader, Duration::from_secs(60));
    }
}

#[test]
fn a_stuck_subscriber_is_dropped_at_the_hard_limit_and_the_others_get_everything() {
    const COUNT: usize = 20_000;
    const LEN: usize = 1000;
    // 2 MiB hard limit, no soft limit: 20 MB published, of which the stuck
    // subscriber's socket buffers hold a few MB at most.
    let server = spawn(&["--pubsub-hard-limit", "2097152", "--pubsub-soft-limit", "0"]);
    let readers: Vec<_> = (0..3)
        .map(|_| keep_up(subscriber(server.addr, "news"), "news", COUNT, LEN))
        .collect();
    let mut stuck = subscriber(server.addr, "news");
    let counts = burst(server.addr, "news", COUNT, LEN);
    // Every message reached the three readers; the stuck one got the
    // first ones, until the server dropped it.
    assert_eq!(counts[0], 4);
    assert_eq!(
        counts[COUNT - 1],
        3,
        "the stuck subscriber was never dropped"
    );
    assert!(
        counts.windows(2).all(|w| w[0] >= w[1] && w[1] >= 3),
        "receiver counts go from 4 to 3 once"
    );
    let mut keepers: Vec<Client> = readers
        .into_iter()
        .map(|r| join_within(r, Duration::from_secs(60)))
        .collect();
    let received = messages_until_eof(&mut stuck, "news", LEN);
    let delivered = counts.iter().filter(|&&n| n == 4).count();
    eprintln!("hard limit: the stuck subscriber was sent {delivered} messages and read {received}");
    assert!(
        received <= delivered && received < COUNT,
        "stuck subscriber read {received} of {delivered} queued for it"
    );
    // The others are still subscribed and served.
    let mut publisher = Client::connect(server.addr);
    assert_eq!(publisher.call_raw(&["PUBLISH", "news", "after"]), b":3\r\n");
    for keeper in &mut keepers {
        assert_eq!(keeper.read_raw(), message(b"news", b"after"));
    }
}

#[test]
fn a_stuck_subscriber_is_dropped_by_the_soft_limit_after_its_time() {
    const COUNT: usize = 20_000;
    const LEN: usize = 1000;
    const SOFT_SECS: u64 = 2;
    // No hard limit: only the soft one (256 KiB for 2 s) can drop it.
    let server = spawn(&[
        "--pubsub-hard-limit",
        "0",
        "--pubsub-soft-limit",
        "262144",
        "--pubsub-soft-seconds",
        &SOFT_SECS.to_string(),
    ]);
    let readers: Vec<_> = (0..3)
        .map(|_| keep_up(subscriber(server.addr, "news"), "news", COUNT, LEN))
        .collect();
    let mut stuck = subscriber(server.addr, "news");
    // Its queue cannot pass the soft limit before the burst starts.
    let start = Instant::now();
    let counts = burst(server.addr, "news", COUNT, LEN);
    assert_eq!(counts[0], 4);
    let mut keepers: Vec<Client> = readers
        .into_iter()
        .map(|r| join_within(r, Duration::from_secs(60)))
        .collect();
    // Publish until it reaches only the three that read.
    let mut publisher = Client::connect(server.addr);
    let mut probes = 0;
    let dropped_after = loop {
        probes += 1;
        if publisher.call_raw(&["PUBLISH", "news", "probe"]) == b":3\r\n" {
            break start.elapsed();
        }
        assert!(
            start.elapsed() < Duration::from_secs(SOFT_SECS + 20),
            "the stuck subscriber was never dropped"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    eprintln!(
        "soft limit: the stuck subscriber was dropped {dropped_after:?} after the burst began"
    );
    assert!(
        dropped_after >= Duration::from_secs(SOFT_SECS),
        "dropped after {dropped_after:?}, before the soft limit's {SOFT_SECS} s"
    );
    assert!(messages_until_eof(&mut stuck, "news", LEN) < COUNT);
    for keeper in &mut keepers {
        for _ in 0..probes {
            assert_eq!(keeper.read_raw(), message(b"news", b"probe"));
        }
    }
}

#[test]
fn subscriptions_end_with_the_connection_and_unsubscribing_restores_commands() {
    let server = spawn(&[]);
    let mut publisher = Client::connect(server.addr);
    let mut sub = subscriber(server.addr, "a");
    assert_eq!(
        sub.call_raw(&["SUBSCRIBE", "b"]),
        b"*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n"
    );
    assert_eq!(publisher.call_raw(&["PUBLISH", "b", "hi"]), b":1\r\n");
    assert_eq!(sub.read_raw(), message(b"b", b"hi"));
    // Out of subscribed mode, every command works again.
    sub.send(&["UNSUBSCRIBE"]);
    sub.read_raw();
    sub.read_raw();
    assert_eq!(sub.call_raw(&["SET", "k", "v"]), b"+OK\r\n");
    assert_eq!(sub.call_raw(&["GET", "k"]), b"$1\r\nv\r\n");
    assert_eq!(publisher.call_raw(&["PUBLISH", "b", "hi"]), b":0\r\n");
    // A subscriber that goes away is forgotten.
    let gone = subscriber(server.addr, "a");
    assert_eq!(publisher.call_raw(&["PUBLISH", "a", "x"]), b":1\r\n");
    drop(gone);
    wait_until("the subscription to end", Duration::from_secs(5), || {
        publisher.call_raw(&["PUBLISH", "a", "x"]) == b":0\r\n"
    });
}

#[test]
fn a_subscriber_can_ping_with_a_large_payload() {
    let server = spawn(&[]);
    let mut sub = subscriber(server.addr, "a");
    let big = "p".repeat(3_000_000);
    let reply = sub.call_raw(&["PING", &big]);
    let mut want = b"*2\r\n$4\r\npong\r\n$3000000\r\n".to_vec();
    want.extend_from_slice(big.as_bytes());
    want.extend_from_slice(b"\r\n");
    assert!(reply == want, "PING reply of {} bytes", reply.len());
}

/// A pattern subscriber (PSUBSCRIBE, in RESP3 here) gets the same class
/// limits: one that stops reading is dropped at the hard limit while a
/// channel subscriber that reads gets every message.
#[test]
fn a_stuck_pattern_subscriber_is_dropped_at_the_hard_limit() {
    const COUNT: usize = 20_000;
    const LEN: usize = 1000;
    let server = spawn(&["--pubsub-hard-limit", "2097152", "--pubsub-soft-limit", "0"]);
    let reader = keep_up(subscriber(server.addr, "news"), "news", COUNT, LEN);
    let mut stuck = Client::connect(server.addr);
    stuck.call_raw(&["HELLO", "3"]);
    assert_eq!(
        stuck.call_raw(&["PSUBSCRIBE", "n*"]),
        b">3\r\n$10\r\npsubscribe\r\n$2\r\nn*\r\n:1\r\n"
    );
    let counts = burst(server.addr, "news", COUNT, LEN);
    assert_eq!(counts[0], 2);
    assert_eq!(
        counts[COUNT - 1],
        1,
        "the stuck pattern subscriber was never dropped"
    );
    join_within(reader, Duration::from_secs(60));
    // What it was sent before the drop arrives in order, as pushes.
    let mut received = 0;
    while let Some(got) = stuck.try_read_raw() {
        let mut want = b">4\r\n$8\r\npmessage\r\n$2\r\nn*\r\n$4\r\nnews\r\n".to_vec();
        want.extend_from_slice(format!("${LEN}\r\n").as_bytes());
        want.extend_from_slice(&payload(received, LEN));
        want.extend_from_slice(b"\r\n");
        assert!(got == want, "pmessage {received} out of order");
        received += 1;
    }
    assert!(received < COUNT, "read {received}");
}
