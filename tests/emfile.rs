//! Running out of descriptors (EMFILE) while clients wait in the backlog.
//!
//! With edge-triggered polling, closing connections frees descriptors but
//! produces no new event for connections already queued on the listener: a
//! loop that merely waits for the next listener event would leave them there
//! forever, and one that retries at once would spin. The reactor pauses
//! accepting and retries from a timer. This test runs the echo_server example
//! in a child process under `ulimit -n 64`, queues more clients than it can
//! hold, checks that it does not burn CPU while paused, then frees
//! descriptors without any new connection arriving and checks that every
//! waiting client is served.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::process::Command;
use std::thread;
use std::time::{Duration, Instant};

const CLIENTS: usize = 100;

/// utime + stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces) start at 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn message(i: usize) -> Vec<u8> {
    format!("client {i:03} says hello\n").into_bytes()
}

/// Reads whatever has arrived on non-blocking `stream` into `got`.
fn poll_read(stream: &mut TcpStream, got: &mut Vec<u8>) {
    let mut buf = [0; 256];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("server closed a client"),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::WouldBlock => return,
            Err(e) => panic!("client read failed: {e}"),
        }
    }
}

/// Polls all unfinished clients until each has its echo or, if `all` is
/// false, until the number of finished clients stops changing for 500 ms.
fn collect_echoes(clients: &mut [(usize, TcpStream, Vec<u8>)], all: bool) {
    let start = Instant::now();
    let mut last_change = Instant::now();
    let mut done = 0;
    loop {
        let mut now_done = 0;
        for (i, stream, got) in clients.iter_mut() {
            if got.len() < message(*i).len() {
                poll_read(stream, got);
            }
            if got.len() >= message(*i).len() {
                assert_eq!(*got, message(*i), "client {i} got the wrong bytes");
                now_done += 1;
            }
        }
        if now_done != done {
            done = now_done;
            last_change = Instant::now();
        }
        if all && done == clients.len() {
            return;
        }
        if !all && done > 0 && last_change.elapsed() > Duration::from_millis(500) {
            return;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "echoes stalled: {done} of {} clients served",
            clients.len()
        );
        thread::sleep(Duration::from_millis(10));
    }
}

#[test]
fn accepting_resumes_after_emfile_without_spinning() {
    let mut server = common::spawn_example(
        "echo_server",
        &["--addr", "127.0.0.1:0", "--max-connections", "1000"],
        Some("ulimit -n 64"),
    );
    let pid = server.child.id();

    // More clients than descriptors: the kernel completes every handshake
    // (backlog 1024), the server can accept only some.
    let mut clients: Vec<(usize, TcpStream, Vec<u8>)> = (0..CLIENTS)
        .map(|i| {
            let mut stream = TcpStream::connect(server.addr).expect("connect");
            stream.write_all(&message(i)).unwrap();
            stream.set_nonblocking(true).unwrap();
            (i, stream, Vec::new())
        })
        .collect();
    collect_echoes(&mut clients, false);
    let (served, mut waiting): (Vec<_>, Vec<_>) = clients
        .into_iter()
        .partition(|(i, _, got)| got.len() == message(*i).len());
    assert!(
        !waiting.is_empty(),
        "all {CLIENTS} clients were served: the descriptor limit was not reached"
    );
    let paused_lines: Vec<String> = server.stderr.try_iter().collect();
    assert!(
        paused_lines.iter().any(|l| l.contains("accept paused")),
        "the server did not report EMFILE: {paused_lines:?}"
    );

    // Paused: the retry timer fires every 100 ms, but the process must not
    // spin. Less than half a CPU is a loose bound (idle is close to zero).
    let ticks_before = cpu_ticks(pid);
    let wall = Instant::now();
    thread::sleep(Duration::from_secs(1));
    let cpu_seconds = (cpu_ticks(pid) - ticks_before) as f64 / clock_ticks_per_second();
    let wall_seconds = wall.elapsed().as_secs_f64();
    assert!(
        cpu_seconds < 0.5 * wall_seconds,
        "server spins while accept is paused: {cpu_seconds:.2} s CPU in {wall_seconds:.2} s"
    );

    // Free descriptors: close all but five served clients. No new connection
    // arrives, so only the retry timer can resume accepting.
    let (mut kept, closed): (Vec<_>, Vec<_>) = served.into_iter().partition(|(i, _, _)| *i < 5);
    let freed = closed.len();
    drop(closed);
    assert!(
        freed >= waiting.len(),
        "test setup: freeing {freed} cannot admit {} waiting clients",
        waiting.len()
    );
    collect_echoes(&mut waiting, true);

    // Everyone still connected keeps echoing, and newcomers are served.
    for (i, stream, got) in kept.iter_mut().chain(waiting.iter_mut()) {
        got.clear();
        stream.write_all(&message(*i)).unwrap();
    }
    let mut all: Vec<_> = kept.into_iter().chain(waiting).collect();
    collect_echoes(&mut all, true);
    drop(all);
    let mut newcomer = common::client(server.addr);
    newcomer.write_all(b"newcomer").unwrap();
    let mut echo = [0; 8];
    newcomer.read_exact(&mut echo).unwrap();
    assert_eq!(&echo, b"newcomer");
    assert!(server.child.try_wait().unwrap().is_none(), "server exited");
}
