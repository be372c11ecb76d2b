//! Hostile input to the `chat_server` example: lines that never end and
//! random garbage (bytes, commands, terminators, overlong runs) must cost
//! the server no memory, be answered only with whole protocol lines, and
//! leave the room serving.
//!
//! Every read has a timeout and every loop a bound: a hang is a failure.
mod common;

use std::cell::RefCell;
use std::io::{ErrorKind, Read, Write};

use proptest::prelude::*;
use proptest::test_runner::{Config as ProptestConfig, TestRunner};

use common::chat::{start, Client};
use common::rss_kib;

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
