//! End-to-end tests of `examples/chat_server.rs`, run as a child process and
//! driven over real sockets the way `nc` would: nicknames, `/who`, broadcast
//! order, `/quit`, a member that stops reading (cut off while a fast one
//! misses nothing), overlong and endless lines, and random garbage.
//!
//! Every read has a timeout and every loop a bound: a hang is a failure.
mod common;

use std::cell::RefCell;
use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use common::rss_kib;

/// How long any single expected line may take.
const LINE_WAIT: Duration = Duration::from_secs(5);

/// One chat client: a line reader and a writer on the same socket.
struct Client {
    /// Reads the server's lines.
    reader: BufReader<TcpStream>,
    /// Sends our lines (a clone of the reader's socket).
    writer: TcpStream,
    /// The name the server gave us in its welcome line.
    name: String,
}

impl Client {
    /// Connects and reads the welcome line.
    fn join(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(LINE_WAIT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            name: String::new(),
        };
        let welcome = client.line();
        let name = welcome
            .strip_prefix("* welcome ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("not a welcome line: {welcome:?}"));
        client.name = name.to_owned();
        client
    }

    fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    /// The next line, without its newline; panics on timeout or EOF.
    /// Lossy: the server relays what members send as bytes.
    fn line(&mut self) -> String {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => panic!("{}: connection closed, expected a line", self.name),
            Ok(_) => {
                assert!(line.ends_with(b"\n"), "partial line {line:?}");
                line.pop();
                String::from_utf8_lossy(&line).into_owned()
            }
            Err(e) => panic!("{}: no line within {LINE_WAIT:?}: {e}", self.name),
        }
    }

    fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want, "{} got the wrong line", self.name);
    }

    /// Reads until the server closes the connection; returns the lines seen.
    fn until_eof(&mut self) -> Vec<String> {
        let deadline = Instant::now() + LINE_WAIT;
        let mut lines = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "{}: no EOF", self.name);
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => return lines,
                Ok(_) => lines.push(String::from_utf8_lossy(line.trim_ascii_end()).into_owned()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return lines,
                Err(e) => panic!("{}: waiting for EOF: {e}", self.name),
            }
        }
    }
}

fn start() -> common::ChildServer {
    common::spawn_on_loopback("chat_server", &[])
}

#[test]
fn nick_who_broadcast_in_order_and_quit() {
    let server = start();
    let mut a = Client::join(server.addr);
    let mut b = Client::join(server.addr);
    a.expect(&format!("* {} joined", b.name));
    let mut c = Client::join(server.addr);
    a.expect(&format!("* {} joined", c.name));
    b.expect(&format!("* {} joined", c.name));

    a.send("/nick alice");
    let renamed = format!("* {} is now alice", a.name);
    for client in [&mut a, &mut b, &mut c] {
        client.expect(&renamed);
    }
    // Invalid nicknames get an error line, to the asker only.
    b.send("/nick alice");
    b.expect("error: nickname alice is taken");
    b.send("/nick two words");
    b.expect("error: a nickname cannot contain spaces");
    b.send("/nick");
    b.expect("error: usage: /nick NAME");
    b.send(&format!("/nick {}", "n".repeat(33)));
    b.expect("error: a nickname is at most 32 bytes");
    b.send("/nick a:b");
    b.expect("error: a nickname cannot contain ':' or control characters");
    b.send("/bogus");
    b.expect("error: unknown command (try /help)");
    b.send("/nick bob");
    let renamed = format!("* {} is now bob", b.name);
    for client in [&mut a, &mut b, &mut c] {
        client.expect(&renamed);
    }
    // telnet ends its lines with "\r\n".
    c.writer.write_all(b"/who\r\n").unwrap();
    c.expect(&format!("* 3 online: alice, bob, {}", c.name));

    // Every line reaches every other member, in order, prefixed with the
    // sender's name; the sender gets no copy (its next line is /who's reply).
    for i in 0..200 {
        a.send(&format!("line {i} \x1b[2J"));
    }
    a.send("/who");
    for i in 0..200 {
        let want = format!("alice: line {i} ?[2J");
        b.expect(&want);
        c.expect(&want);
    }
    a.expect(&format!("* 3 online: alice, bob, {}", c.name));

    // /quit: goodbye, then the server closes; the others are told.
    c.send("/quit");
    c.expect("* bye");
    assert!(c.until_eof().is_empty());
    let left = format!("* {} left", c.name);
    a.expect(&left);
    b.expect(&left);
    // A peer that half-closes (`nc` at the end of its input) leaves at once
    // and is announced the same way.
    b.writer.shutdown(Shutdown::Write).unwrap();
    assert!(b.until_eof().is_empty());
    a.expect("* bob left");
    a.send("/who");
    a.expect("* 1 online: alice");
}

#[test]
fn a_member_that_stops_reading_is_cut_off_and_a_fast_one_misses_nothing() {
    let server = start();
    let mut sender = Client::join(server.addr);
    let mut fast = Client::join(server.addr);
    sender.expect(&format!("* {} joined", fast.name));
    let mut slow = Client::join(server.addr);
    sender.expect(&format!("* {} joined", slow.name));
    fast.expect(&format!("* {} joined", slow.name));

    // The slow member never reads. Its queue (256 KiB) and the socket
    // buffers between (a few MiB on loopback) fill; then it is cut off.
    // The fast member reads each batch before the next is sent, so its own
    // queue stays small.
    let payload = "x".repeat(1000);
    let kicked = format!("* {} left (not reading)", slow.name);
    let mut sent = 0;
    let mut cut_off = false;
    while !cut_off {
        assert!(
            sent < 40_000,
            "slow member never cut off after {sent} lines"
        );
        for _ in 0..64 {
            sender.send(&format!("{sent:06} {payload}"));
            sent += 1;
        }
        let mut received = sent - 64;
        while received < sent {
            let line = fast.line();
            if line == kicked {
                cut_off = true;
                continue;
            }
            let want = format!("{}: {received:06} {payload}", sender.name);
            assert!(line == want, "fast member: line {received} is {line:.40?}");
            received += 1;
        }
    }
    // The sender was never slowed down and also heard about it.
    let mut notices = 0;
    loop {
        let line = sender.line();
        if line == kicked {
            break;
        }
        assert!(line.starts_with("* "), "{line:?}");
        notices += 1;
        assert!(notices < 10);
    }
    // The slow member got an in-order prefix of the room, then EOF.
    slow.reader
        .get_ref()
        .set_read_timeout(Some(LINE_WAIT))
        .unwrap();
    let lines = slow.until_eof();
    assert!(lines.len() < sent, "the cut-off member got everything?");
    for (i, line) in lines.iter().enumerate() {
        if !line.is_empty() {
            let want = format!("{}: {i:06} {payload}", sender.name);
            // Its last line may be cut short when its socket closed.
            assert!(
                want.starts_with(line.as_str()),
                "slow line {i}: {line:.40?}"
            );
        }
    }
    // The room goes on.
    fast.send("still here");
    sender.expect(&format!("{}: still here", fast.name));
}

#[test]
fn an_overlong_line_gets_an_error_line_then_close() {
    let server = start();
    let mut watcher = Client::join(server.addr);
    let mut talker = Client::join(server.addr);
    watcher.expect(&format!("* {} joined", talker.name));
    // Exactly 1024 bytes is fine.
    talker.send(&"y".repeat(1024));
    watcher.expect(&format!("{}: {}", talker.name, "y".repeat(1024)));
    // 1025 is not, and the server does not wait for the newline.
    talker
        .writer
        .write_all("z".repeat(1025 + 1).as_bytes())
        .unwrap();
    talker.expect("error: line too long (more than 1024 bytes); closing");
    talker.until_eof();
    watcher.expect(&format!("* {} left (line too long)", talker.name));
}

#[test]
fn an_endless_line_costs_the_server_no_memory() {
    let server = start();
    let pid = server.child.id();
    let mut watcher = Client::join(server.addr);
    let before = rss_kib(pid);
    // Several clients stream 8 MiB each without a newline; each must be
    // refused after about 1 KiB, so the server keeps none of it.
    for _ in 0..4 {
        let mut endless = Client::join(server.addr);
        watcher.expect(&format!("* {} joined", endless.name));
        let chunk = vec![b'e'; 64 * 1024];
        let mut written = 0;
        while written < 8 << 20 {
            match endless.writer.write(&chunk) {
                Ok(n) => written += n,
                Err(_) => break, // reset by the server: expected
            }
        }
        let mut got = String::new();
        let _ = endless.reader.read_to_string(&mut got);
        assert!(
            got.is_empty() || got.contains("error: line too long"),
            "{got:?}"
        );
        watcher.expect(&format!("* {} left (line too long)", endless.name));
    }
    let after = rss_kib(pid);
    assert!(
        after < before + 4 * 1024,
        "server grew from {before} KiB to {after} KiB"
    );
}

/// Bytes a chat client might plausibly mangle: text, commands, terminators,
/// and anything else.
fn garbage() -> impl Strategy<Value = Vec<u8>> {
    let byte = prop_oneof![
        8 => b' '..=b'~',
        2 => Just(b'\n'),
        1 => Just(b'\r'),
        1 => Just(b'/'),
        2 => any::<u8>(),
    ];
    let piece = prop_oneof![
        6 => proptest::collection::vec(byte, 0..300),
        1 => Just(b"/nick ".to_vec()),
        1 => Just(b"/who\n".to_vec()),
        1 => (1usize..3000).prop_map(|n| vec![b'q'; n]),
    ];
    proptest::collection::vec(piece, 1..8).prop_map(|pieces| pieces.concat())
}

#[test]
fn garbage_never_hurts_the_server_and_errors_are_lines() {
    let server = start();
    let pid = server.child.id();
    // `run` takes a `Fn`; the watcher is shared by every case.
    let watcher = RefCell::new(Client::join(server.addr));
    let before = rss_kib(pid);
    let mut runner = TestRunner::new(ProptestConfig {
        cases: 32,
        ..ProptestConfig::default()
    });
    runner
        .run(&garbage(), |bytes| {
            let mut watcher = watcher.borrow_mut();
            let mut client = Client::join(server.addr);
            watcher.expect(&format!("* {} joined", client.name));
            // Then a /quit, so that a client that survived its garbage
            // leaves in an orderly way too.
            let _ = client.writer.write_all(&bytes);
            let _ = client.writer.write_all(b"\n/quit\n");
            let mut got = Vec::new();
            match client.reader.read_to_end(&mut got) {
                Ok(_) => {}
                // Input that arrives after the server closed draws a reset.
                Err(e) if e.kind() == ErrorKind::ConnectionReset => {}
                Err(e) => return Err(TestCaseError::fail(format!("no EOF: {e}"))),
            }
            // Everything it got is whole lines of the protocol's three kinds.
            let text = String::from_utf8_lossy(&got);
            prop_assert!(got.is_empty() || got.ends_with(b"\n"), "{text:?}");
            for line in text.lines() {
                prop_assert!(
                    line.starts_with("* ") || line.starts_with("error: ") || line.contains(": "),
                    "unexpected line {line:?}"
                );
            }
            // The watcher hears what it said, then that it left.
            let mut heard = 0;
            loop {
                let line = watcher.line();
                if line.starts_with("* ") && line.contains(" left") {
                    break;
                }
                prop_assert!(line.starts_with("* ") || line.contains(": "), "{line:?}");
                heard += 1;
                prop_assert!(heard <= bytes.len(), "more lines than were sent");
            }
            // And the server is still serving.
            watcher.send("/who");
            let who = watcher.line();
            prop_assert!(who.starts_with("* 1 online: "), "{who:?}");
            Ok(())
        })
        .unwrap();
    let after = rss_kib(pid);
    assert!(
        after < before + 4 * 1024,
        "server grew from {before} KiB to {after} KiB"
    );
}

#[test]
fn sigterm_tells_the_room_and_exits_cleanly() {
    let mut server = start();
    let mut a = Client::join(server.addr);
    server.signal("TERM");
    a.expect("* server shutting down");
    a.until_eof();
    // Our FIN ends the server's linger at once.
    drop(a);
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
}
