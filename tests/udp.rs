//! End-to-end tests of `examples/udp_echo.rs`, run as a child process: sizes
//! from 0 to 65 507 bytes come back intact, a paced stream loses nothing, and
//! in a flood every datagram the server saw is accounted for in its exit
//! report while the client counts what it got back. Loss is measured and
//! reported, never hidden by waiting "long enough".
mod common;

use std::collections::HashSet;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

/// Largest UDP payload over IPv4.
const MAX_DATAGRAM: usize = 65_507;

fn start(extra: &[&str]) -> common::ChildServer {
    common::spawn_on_loopback("udp_echo", extra)
}

/// A client socket on loopback with a read timeout and a roomy receive buffer.
fn client(timeout: Duration) -> UdpSocket {
    let socket = socket2::Socket::new(
        socket2::Domain::IPV4,
        socket2::Type::DGRAM,
        Some(socket2::Protocol::UDP),
    )
    .unwrap();
    // The kernel caps this at net.core.rmem_max; best effort.
    let _ = socket.set_recv_buffer_size(4 << 20);
    let local: SocketAddr = "127.0.0.1:0".parse().unwrap();
    socket.bind(&local.into()).unwrap();
    let socket: UdpSocket = socket.into();
    socket.set_read_timeout(Some(timeout)).unwrap();
    socket
}

/// A payload of `len` bytes that starts with `seq` and is unlikely to
/// survive corruption unnoticed.
fn payload(seq: u32, len: usize) -> Vec<u8> {
    let mut bytes: Vec<u8> = (0..len)
        .map(|i| (i as u32).wrapping_mul(2_654_435_761).wrapping_add(seq) as u8)
        .collect();
    let header = seq.to_be_bytes();
    let n = header.len().min(len);
    bytes[..n].copy_from_slice(&header[..n]);
    bytes
}

/// The sequence number a payload of at least 4 bytes carries.
fn seq_of(bytes: &[u8]) -> u32 {
    u32::from_be_bytes(bytes[..4].try_into().unwrap())
}

/// The counters of the server's exit line, after SIGTERM.
#[derive(Debug)]
struct Report {
    /// Datagrams the server read.
    received: u64,
    /// Echoes its socket accepted.
    sent: u64,
    /// Echoes dropped because its send queue was full.
    dropped: u64,
    /// Echoes still queued at exit.
    unsent: u64,
    /// Echoes `send_to` failed on.
    errors: u64,
    /// Times its per-turn budget ran out.
    yields: u64,
}

fn stop(mut server: common::ChildServer) -> Report {
    server.signal("TERM");
    assert_eq!(server.wait_exit(Duration::from_secs(5)), Some(0));
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = server.stderr.recv_timeout(left).expect("an exit report");
        let Some(rest) = line.strip_prefix("udp_echo stopped: ") else {
            continue;
        };
        let field = |name: &str| -> u64 {
            rest.split(", ")
                .find_map(|f| f.strip_prefix(name)?.trim().parse().ok())
                .unwrap_or_else(|| panic!("no {name} in {line:?}"))
        };
        return Report {
            received: field("received "),
            sent: field("sent "),
            dropped: field("dropped "),
            unsent: field("unsent "),
            errors: field("errors "),
            yields: field("yields "),
        };
    }
}

#[test]
fn datagrams_from_0_to_65507_bytes_come_back_intact() {
    let server = start(&[]);
    let socket = client(Duration::from_secs(5));
    let mut buf = vec![0; 65_536];
    let sizes = [0, 1, 1000, 9000, MAX_DATAGRAM];
    for (seq, &size) in sizes.iter().enumerate() {
        let sent = payload(seq as u32, size);
        socket.send_to(&sent, server.addr).unwrap();
        let (n, from) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("no echo of {size} bytes: {e}"));
        assert_eq!(from, server.addr);
        assert_eq!(n, size, "echo of {size} bytes has {n}");
        assert!(buf[..n] == sent[..], "echo of {size} bytes differs");
    }
    let report = stop(server);
    assert_eq!(report.received, sizes.len() as u64);
    assert_eq!(report.sent, sizes.len() as u64);
}

#[test]
fn a_paced_stream_of_many_datagrams_loses_nothing() {
    let server = start(&[]);
    let socket = client(Duration::from_millis(500));
    let total: u32 = 5000;
    let window = 32;
    let mut buf = vec![0; 65_536];
    let (mut next, mut back) = (0u32, 0u32);
    let mut seen = HashSet::new();
    // At most `window` in flight: far below any buffer, so on loopback a
    // missing echo is a bug, not congestion.
    while back < total {
        while next < total && next - back < window {
            socket.send_to(&payload(next, 200), server.addr).unwrap();
            next += 1;
        }
        let (n, _) = socket
            .recv_from(&mut buf)
            .unwrap_or_else(|e| panic!("echo {back} of {total} missing: {e}"));
        assert_eq!(n, 200);
        let seq = seq_of(&buf[..n]);
        assert!(buf[..n] == payload(seq, 200)[..], "echo {seq} corrupted");
        assert!(seen.insert(seq), "echo {seq} duplicated");
        back += 1;
    }
    let report = stop(server);
    assert_eq!((report.received, report.sent), (total.into(), total.into()));
    assert_eq!(report.dropped + report.unsent + report.errors, 0);
}

#[test]
fn a_flood_is_accounted_for_and_yields_to_the_loop() {
    // A small budget makes the server yield (and resume from its timer)
    // many times during the flood.
    let server = start(&["--budget", "8", "--recv-buffer", "262144"]);
    let socket = client(Duration::from_millis(300));
    let total: u32 = 20_000;
    let size = 1000;
    for seq in 0..total {
        socket.send_to(&payload(seq, size), server.addr).unwrap();
    }
    // Collect echoes until the line has been quiet for 300 ms (bounded).
    let mut buf = vec![0; 65_536];
    let mut seen = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        match socket.recv_from(&mut buf) {
            Ok((n, _)) => {
                assert_eq!(n, size);
                let seq = seq_of(&buf[..n]);
                assert!(seq < total && buf[..n] == payload(seq, size)[..]);
                assert!(seen.insert(seq), "echo {seq} duplicated");
            }
            Err(_) => break,
        }
    }
    let got = seen.len() as u64;
    let report = stop(server);
    eprintln!(
        "flood: client sent {total}, server received {}, echoed {}, dropped {}, \
         unsent {}, errors {}; client got {got} back; yields {}",
        report.received, report.sent, report.dropped, report.unsent, report.errors, report.yields
    );
    // Every datagram the server read is accounted for...
    assert_eq!(
        report.received,
        report.sent + report.dropped + report.unsent + report.errors
    );
    // ...it cannot have read more than was sent nor echoed more than it
    // read, and the client cannot get back more than was echoed.
    assert!(report.received <= total.into());
    assert!(got <= report.sent);
    // Loss on loopback happens only in full buffers; most must get through.
    assert!(got > 0, "nothing came back");
    assert!(report.yields > 0, "the budget never ran out");
}
