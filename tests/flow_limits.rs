//! Output limits on real sockets: a connection's own limits override the
//! config's, setting only the cap is valid, the soft limit closes only
//! after its time, and fan-out reaches every reader that keeps up while one
//! that never reads is cut off.
//!
//! The handler is `Lab` (tests/common/flow.rs), shared with tests/flow.rs
//! and tests/flow_close.rs.

mod common;

use std::io::{BufReader, Read, Write};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use common::flow::{big_reply, closes, connect, read_line, start, Mode};
use reactor::{CloseReason, Config, Limit, Limits, SoftLimit};

/// A connection given a 64 KiB cap of its own is closed by a reply its
/// neighbour on the default limits receives whole.
#[test]
fn limits_of_one_connection_override_the_config() {
    let (server, log) = start(Mode::AllLines, Config::default());
    let (mut small, mut small_reader) = connect(server.addr);
    let (mut normal, mut normal_reader) = connect(server.addr);
    small.write_all(b"limit 65536\n").unwrap();
    assert_eq!(read_line(&mut small_reader), "ok\n");
    small.write_all(b"big 128\n").unwrap();
    normal.write_all(b"big 128\n").unwrap();
    let mut reply = vec![0; 128 * 1024];
    normal_reader.read_exact(&mut reply).unwrap();
    assert!(reply == big_reply(128));
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(
        closes(&log),
        vec![CloseReason::LimitExceeded(Limit::Output)]
    );
    let bad = Limits {
        output_low_water: 1 << 20,
        ..Limits::from_max_output(1 << 20)
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("low_water"));
}

/// Only `max_output` set: the water marks follow it, no validation error.
#[test]
fn setting_only_the_output_cap_is_a_valid_config() {
    let config = Config {
        max_output: 32 * 1024,
        ..Config::default()
    };
    assert!(config.validate().is_ok());
    let limits = config.limits();
    assert!(limits.output_low_water < limits.output_high_water);
    assert!(limits.output_high_water <= 32 * 1024);
}

/// Above the soft limit for longer than its duration: closed. A client
/// that reads its reply in time is never closed.
#[test]
fn the_soft_limit_closes_only_after_its_time() {
    let config = Config {
        soft_output: Some(SoftLimit {
            bytes: 64 * 1024,
            duration: Duration::from_millis(1000),
        }),
        max_output: 64 * 1024 * 1024,
        ..Config::default()
    };
    let (server, log) = start(Mode::AllLines, config);
    let (mut stuck, _stuck_reader) = connect(server.addr);
    let (mut reader_conn, mut reader) = connect(server.addr);
    // 32 MiB: more than the loopback socket buffers take, so most of it
    // stays queued for the client that does not read.
    let started = Instant::now();
    stuck.write_all(b"big 32768\n").unwrap();
    reader_conn.write_all(b"big 32768\n").unwrap();
    let mut reply = vec![0; 32768 * 1024];
    reader.read_exact(&mut reply).unwrap();
    server.wait_for("the soft close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert!(started.elapsed() >= Duration::from_millis(990));
    assert_eq!(
        closes(&log),
        vec![CloseReason::LimitExceeded(Limit::Output)]
    );
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(closes(&log).len(), 1, "the reader was closed too");
}

/// Every input is written 8 times to each of four other connections (one
/// 64 KiB read becomes 512 KiB per reader, twice high water in one
/// callback) with a hard cap of 2 MiB: readers that keep up get every byte
/// in order, however slow their thread is next to the loop (the fan-out
/// hold waits for them); one that never reads is cut off and holds nobody
/// for long.
#[test]
fn fan_out_reaches_every_reader_that_keeps_up() {
    const TOTAL: usize = 8 * 1024 * 1024;
    const FANOUT: usize = 8;
    let config = Config {
        max_output: 2 * 1024 * 1024,
        ..Config::default()
    };
    let (server, log) = start(Mode::Broadcast { fanout: FANOUT }, config);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (stream, _) = connect(server.addr);
            stream
        })
        .collect();
    let (stuck, _) = connect(server.addr);
    let (sender, _) = connect(server.addr);
    server.wait_for("5 connections", Duration::from_secs(5), |s| {
        s.open_connections == 5
    });
    let data = common::Prng(7).bytes(TOTAL);
    let data = Arc::new(data);
    let (done_tx, done_rx) = mpsc::channel();
    for stream in readers {
        let data = Arc::clone(&data);
        let done = done_tx.clone();
        thread::spawn(move || {
            // Frames: length (4 bytes), copy number, then that many bytes
            // of the data; each input comes FANOUT times, then the next.
            let mut stream = BufReader::new(stream);
            let mut at = 0;
            let mut header = [0; 5];
            let mut payload = Vec::new();
            while at < TOTAL {
                let mut len = 0;
                for copy in 0..FANOUT {
                    stream.read_exact(&mut header).unwrap();
                    len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
                    assert_eq!(header[4] as usize, copy, "copy out of order at {at}");
                    payload.resize(len, 0);
                    stream.read_exact(&mut payload).unwrap();
                    assert!(payload == data[at..at + len], "bytes differ at {at}");
                }
                at += len;
            }
            done.send(at).unwrap();
        });
    }
    let writer = common::write_then_fin(&sender, data.to_vec());
    for _ in 0..3 {
        let got = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(got, TOTAL);
    }
    writer.join().unwrap();
    drop(stuck);
    let log = log.lock().unwrap();
    let output_closes = log
        .closes
        .iter()
        .filter(|c| c.1 == CloseReason::LimitExceeded(Limit::Output))
        .count();
    assert_eq!(output_closes, 1, "only the stuck reader is cut off");
}
