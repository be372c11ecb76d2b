//! How a connection's sending side ends, on real sockets: `shutdown_write`
//! half-closes and keeps reading, takes no output after it, a graceful
//! shutdown closes an idle half-closed connection, and `abort` resets.
//!
//! The handler is `Lab` (tests/common/flow.rs), shared with tests/flow.rs
//! and tests/flow_limits.rs.

mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::Shutdown;
use std::time::Duration;

use common::flow::{closes, connect, read_line, start, Mode};
use reactor::{CloseReason, Config};

/// `shutdown_write` sends FIN once the reply is written and keeps reading:
/// the client sees EOF, can still send, and the connection ends with its FIN.
#[test]
fn shutdown_write_half_closes_and_keeps_reading() {
    // A linger far longer than the wait below: once both FINs are out the
    // connection must end at once, not linger.
    let config = Config {
        linger_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let (server, log) = start(Mode::AllLines, config);
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"half\n").unwrap();
    assert_eq!(read_line(&mut reader), "bye\n");
    assert_eq!(read_line(&mut reader), "", "EOF after our FIN");
    stream.write_all(b"still talking\nand more\n").unwrap();
    common::wait_until("lines after FIN", Duration::from_secs(5), || {
        log.lock().unwrap().after_fin.len() == 2
    });
    assert!(closes(&log).is_empty(), "closed before the client's FIN");
    stream.shutdown(Shutdown::Write).unwrap();
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::PeerClosed]);
    let seen = log.lock().unwrap();
    assert_eq!(seen.after_fin, ["still talking", "and more"]);
    assert_eq!(seen.late_writes, [Err(reactor::WriteError::Gone)]);
}

/// After `shutdown_write` nothing more is taken, even once the state moves
/// on: here the peer's FIN came first, so the half-close closes the
/// connection after the flush, a state that otherwise still takes output.
#[test]
fn no_output_is_taken_after_shutdown_write() {
    let (server, log) = start(Mode::OneLine, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    // One line per call: `half` is left over and runs at the FIN.
    stream.write_all(b"x\nhalf\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    reader.read_to_string(&mut all).unwrap();
    assert_eq!(all, "x\nbye\n");
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(
        log.lock().unwrap().late_writes,
        [Err(reactor::WriteError::Gone)]
    );
}

/// A graceful shutdown closes an idle half-closed connection like any idle
/// one (its FIN is out: it lingers for the peer's), long before the grace
/// period ends.
#[test]
fn a_graceful_shutdown_closes_an_idle_half_closed_connection() {
    let config = Config {
        linger_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let (mut server, log) = start(Mode::AllLines, config);
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"half\n").unwrap();
    assert_eq!(read_line(&mut reader), "bye\n");
    assert_eq!(read_line(&mut reader), "", "EOF after our FIN");
    server.handle.shutdown(Duration::from_secs(60));
    let thread = server.thread.take().unwrap();
    common::join_within(thread, Duration::from_secs(10));
    assert_eq!(closes(&log), vec![CloseReason::Shutdown]);
}

/// `abort` closes with a reset the peer can tell from a clean end.
#[test]
fn abort_resets_the_connection() {
    let (server, log) = start(Mode::AllLines, Config::default());
    let (mut stream, _reader) = connect(server.addr);
    stream.write_all(b"abort\n").unwrap();
    let mut buf = [0; 16];
    let error = loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("clean EOF instead of a reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::Aborted]);
}
