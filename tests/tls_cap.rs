//! The cap on handshakes in progress (`Config::max_tls_handshakes`): ten
//! clients that connect and never say a word hold at most two handshake
//! slots at a time; the rest wait in the kernel's backlog and get their
//! turn as the handshake timeout frees slots, so the silent ten take about
//! five timeouts to clear, not one. Established connections are untouched
//! meanwhile, and real clients, queued behind the silent ones or arriving
//! after, complete their handshakes.
#![cfg(feature = "tls")]

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::tls::{round_trip, start_tls, tls_client, Pki};
use common::{read_to_eof, Echo};
use reactor::{CloseReason, Config};

const LIMIT: Duration = Duration::from_secs(10);
const TIMEOUT: Duration = Duration::from_millis(300);
const SILENT: usize = 10;

#[test]
fn silent_clients_take_turns_within_the_handshake_cap() {
    let pki = Pki::new();
    let config = Config {
        max_tls_handshakes: 2,
        tls_handshake_timeout: TIMEOUT,
        ..Config::default()
    };
    let server = start_tls(Echo::default(), config, pki.server(&[]));
    let mut good = tls_client(server.addr, pki.client(&[]));
    assert_eq!(round_trip(&mut good, b"before\n"), b"before\n");

    // Watch the gauges for the whole flood.
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (handle, done) = (server.handle.clone(), done.clone());
        std::thread::spawn(move || {
            let (mut in_progress, mut open) = (0, 0);
            while !done.load(Ordering::Relaxed) {
                let stats = handle.stats();
                in_progress = stats.tls_handshakes_in_progress.max(in_progress);
                open = stats.open_connections.max(open);
                std::thread::sleep(Duration::from_millis(1));
            }
            (in_progress, open)
        })
    };

    let start = Instant::now();
    let mut silent: Vec<_> = (0..SILENT).map(|_| common::client(server.addr)).collect();
    // A real client queued in the backlog behind the silent ones.
    let queued = {
        let (addr, config) = (server.addr, pki.client(&[]));
        std::thread::spawn(move || {
            let mut client = tls_client(addr, config);
            round_trip(&mut client, b"queued\n")
        })
    };
    // The established connection is served at once all along.
    for n in 0..5 {
        let line = format!("during {n}\n");
        let t = Instant::now();
        assert_eq!(round_trip(&mut good, line.as_bytes()), line.as_bytes());
        assert!(t.elapsed() < TIMEOUT, "an established client waited");
        std::thread::sleep(Duration::from_millis(100));
    }
    // Every silent client is ended by the server, in its turn.
    for client in &mut silent {
        assert_eq!(read_to_eof(client, 0).expect("a clean close"), b"");
    }
    let stats = server.wait_for("every silent client timed out", LIMIT, |s| {
        s.closed(CloseReason::TlsHandshakeTimeout) == SILENT as u64
    });
    let cleared = start.elapsed();
    assert_eq!(common::join_within(queued, LIMIT), b"queued\n");
    done.store(true, Ordering::Relaxed);
    let (max_in_progress, max_open) = sampler.join().unwrap();

    assert!(max_in_progress <= 2, "{max_in_progress} handshakes at once");
    assert!(max_in_progress >= 1, "the sampler saw no handshake");
    // The good client, two handshakes, and the queued client once its turn came.
    assert!(
        max_open <= 4,
        "{max_open} connections held: the cap did not hold accepts back"
    );
    // Two at a time, each for one timeout: five rounds, not one.
    let rounds = (SILENT / 2) as u32;
    assert!(
        cleared >= TIMEOUT * (rounds - 1),
        "ten silent clients cleared in {cleared:?}: not taken two at a time"
    );
    assert_eq!(stats.tls_handshake_failures, SILENT as u64);

    // After the flood a new client completes its handshake at once.
    let t = Instant::now();
    let mut later = tls_client(server.addr, pki.client(&[]));
    assert_eq!(round_trip(&mut later, b"after\n"), b"after\n");
    assert!(t.elapsed() < TIMEOUT, "a handshake after the flood waited");
    assert_eq!(round_trip(&mut good, b"still\n"), b"still\n");
    let stats = server.handle.stats();
    assert_eq!(stats.tls_handshakes, 3);
    assert_eq!(stats.tls_handshakes_in_progress, 0);
}
