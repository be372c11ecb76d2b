//! End-to-end tests of the `chat_server` example's room, run as a child
//! process and driven over real sockets the way `nc` would: nicknames,
//! `/who`, broadcast order, `/quit`, a member that stops reading (cut off
//! while a fast one misses nothing), an overlong line, SIGTERM, and flags
//! that contradict each other. Hostile input is in tests/chat_garbage.rs,
//! bursts of lines in tests/chat_burst.rs; the member client they share is
//! in tests/common/chat.rs.
//!
//! Every read has a timeout and every loop a bound: a hang is a failure.
mod common;

use std::io::Write;
use std::net::Shutdown;
use std::time::{Duration, Instant};

use common::chat::{start, Client, LINE_WAIT};

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
    // Only the hard limit, and a small one: a soft limit equal to it can
    // never be passed first.
    let server = common::spawn_on_loopback(
        "chat_server",
        &["--max-queue", "262144", "--soft-queue", "262144"],
    );
    let mut sender = Client::join(server.addr);
    let mut fast = Client::join(server.addr);
    sender.expect(&format!("* {} joined", fast.name));
    let mut slow = Client::join(server.addr);
    sender.expect(&format!("* {} joined", slow.name));
    fast.expect(&format!("* {} joined", slow.name));

    // The slow member never reads. The socket buffers between (a few MiB
    // on loopback) and its queue fill; the line that would take the queue
    // past 256 KiB cuts it off. The fast member reads each batch before the
    // next is sent, so its own queue stays small.
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

#[test]
fn contradictory_limits_are_refused_with_a_reason() {
    for (args, reason) in [
        (
            &["--max-queue", "65536", "--soft-queue", "65537"][..],
            "--soft-queue (65537) must not be larger than --max-queue (65536)",
        ),
        (
            &["--soft-seconds", "0"][..],
            "--soft-seconds must be more than 0",
        ),
        (
            &["--soft-seconds", "inf"][..],
            "inf is not a number of seconds from 0 up",
        ),
        (
            &["--grace=-1"][..],
            "-1 is not a number of seconds from 0 up",
        ),
    ] {
        let mut child = std::process::Command::new(common::example_bin("chat_server"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while child.try_wait().unwrap().is_none() {
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!("chat_server started with {args:?}");
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?}: {stderr}");
        assert!(stderr.contains(reason), "{args:?}: {stderr}");
    }
}
