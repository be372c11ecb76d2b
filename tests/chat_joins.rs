//! Many joins to the `chat_server` example: 6 000 members join, in batches
//! of connections made together, while another member keeps asking
//! `/help`. Every joiner must be welcomed with a head count of its own,
//! every member must hear of exactly the members who joined after it, and
//! `/help` must keep being answered.
//!
//! The test also prints what the joins cost the server (its utime + stime
//! from `/proc/PID/stat` across them) and the `/help` round trips seen
//! meanwhile, because a join used to cost more the larger the room was.
//! Those figures are measured, never asserted: a shared machine's timings
//! vary too much to fail a test on. For figures worth quoting, run it on the
//! release build; `CHAT_JOINS_BATCH` sets how many clients connect before
//! their welcomes are read (default 100; 1 makes each wait for the one
//! before it, so that every join is a turn of the server's loop of its own):
//!
//! ```text
//! cargo test --release --test chat_joins -- --nocapture
//! CHAT_JOINS_BATCH=1 cargo test --release --test chat_joins -- --nocapture
//! ```
//!
//! Measured so on a 2-CPU VM (release build; 2–3 runs each, the 98 s one
//! once; docs/benchmarks.md has the table): when every
//! join notice went out at once, one `sendmsg` per member per join, 6 000
//! joins one at a time cost the server 98 s of CPU and in batches of 100
//! about 2.0 s, with `/help` round trips up to 132 ms and 125 ms. With the
//! notices held and sent in steps (chat_server/notices.rs): 0.34 to 0.40 s
//! and 0.23 to 0.30 s, `/help` at most 9 ms and 5.4 ms.
//!
//! Every read has a timeout and every loop a bound: a hang is a failure.
mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::chat::{start, Client, LINE_WAIT};

/// Members who join after the prober. The test process and the server
/// each hold a descriptor per member: `raise_fd_limit` lifts the soft limit
/// on descriptors (often 1 024) to the hard one, which must allow about
/// 6 100.
const JOINS: usize = 6_000;
/// Joins between two sweeps that read what the members were sent, so that
/// no member's backlog grows large enough to meet the server's limits.
const SWEEP_EVERY: usize = 250;
/// Clients connected together before their welcomes are read, unless
/// `CHAT_JOINS_BATCH` says otherwise. Divides `SWEEP_EVERY`.
const BATCH: usize = 100;
/// What `/help` answers (`chat_server/commands.rs`).
const HELP: &str = "* commands: /nick NAME, /who, /quit, /help; anything else is said to the room";

/// utime and stime of `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> (u64, u64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("stat");
    // Fields after the command name (which may contain spaces) start at 3.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    (fields[11].parse().unwrap(), fields[12].parse().unwrap())
}

fn clock_ticks_per_second() -> f64 {
    std::process::Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// One joined member: its socket, non-blocking, how many were in the room
/// with it when it joined, and the lines it got after its welcome.
struct Joined {
    stream: TcpStream,
    online: usize,
    lines: usize,
}

impl Joined {
    /// Reads the welcome from `stream`, a new connection: the name and the
    /// head count.
    fn welcomed(stream: TcpStream) -> (Joined, String) {
        stream.set_read_timeout(Some(LINE_WAIT)).unwrap();
        let mut reader = BufReader::new(stream);
        let mut welcome = String::new();
        reader.read_line(&mut welcome).expect("a welcome line");
        let (name, online) = welcome
            .strip_prefix("* welcome ")
            .and_then(|rest| {
                let mut parts = rest.split("; ");
                let name = parts.next()?;
                let online = parts.next()?.strip_suffix(" online")?.parse().ok()?;
                Some((name.to_owned(), online))
            })
            .unwrap_or_else(|| panic!("not a welcome line: {welcome:?}"));
        // Anything after the welcome already read counts as heard.
        let lines = reader.buffer().iter().filter(|&&b| b == b'\n').count();
        let stream = reader.into_inner();
        stream.set_nonblocking(true).unwrap();
        let joined = Joined {
            stream,
            online,
            lines,
        };
        (joined, name)
    }

    /// Reads whatever has arrived and counts its lines.
    fn drain(&mut self, buf: &mut [u8]) {
        loop {
            match self.stream.read(buf) {
                Ok(0) => panic!("the server closed a member"),
                Ok(n) => self.lines += buf[..n].iter().filter(|&&b| b == b'\n').count(),
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => {}
                Err(e) => panic!("member read failed: {e}"),
            }
        }
    }
}

/// Asks `/help` until `stop`, at most every 5 ms; returns each round trip.
/// Join notices may come before the answer; anything else is a failure.
fn probe_help(mut prober: Client, stop: Arc<AtomicBool>) -> (Vec<Duration>, Client) {
    let mut trips = Vec::new();
    while !stop.load(Ordering::Relaxed) {
        let sent = Instant::now();
        // One write: `Client::send` writes the newline apart, and Nagle's
        // algorithm then holds it for the delayed ACK of the first part,
        // 40 ms on Linux loopback, which would be all this measured.
        prober.writer.write_all(b"/help\n").unwrap();
        // Each join in between sends a notice first: bounded by the joins.
        for waited in 0.. {
            let line = prober.line();
            if line == HELP {
                break;
            }
            assert!(line.ends_with(" joined") && waited <= JOINS, "{line:?}");
        }
        trips.push(sent.elapsed());
        std::thread::sleep(Duration::from_millis(5));
    }
    (trips, prober)
}

/// The soft limit on open descriptors of this process, raised to its hard
/// limit with util-linux's `prlimit` (the server started after inherits
/// it); returns the new soft limit. A program rather than a `setrlimit`
/// declaration: no unsafe code for one call.
fn raise_fd_limit() -> usize {
    assert!(
        common::tools::have("prlimit"),
        "prlimit (util-linux) is needed"
    );
    let pid = std::process::id().to_string();
    let hard = common::tools::run_bounded(
        10,
        "prlimit",
        &[
            "--pid",
            &pid,
            "--nofile",
            "--output",
            "HARD",
            "--noheadings",
        ],
    );
    let hard = hard.trim();
    common::tools::run_bounded(
        10,
        "prlimit",
        &["--pid", &pid, &format!("--nofile={hard}:{hard}")],
    );
    reactor::descriptor_limit().expect("the soft limit is readable")
}

/// Clients connected at once: `CHAT_JOINS_BATCH`, or `BATCH`.
fn batch() -> usize {
    std::env::var("CHAT_JOINS_BATCH")
        .ok()
        .and_then(|b| b.parse().ok())
        .filter(|&b| b > 0)
        .unwrap_or(BATCH)
}

/// A new connection to the room, its welcome not yet read. The kernel
/// completes the handshake while the server has yet to accept it.
fn connect(addr: SocketAddr) -> TcpStream {
    TcpStream::connect(addr).expect("connect")
}

#[test]
fn six_thousand_joins_are_all_welcomed_and_help_keeps_answering() {
    let fds = raise_fd_limit();
    assert!(
        fds > JOINS + 100,
        "{JOINS} joins need more than the {fds} descriptors `ulimit -Hn` allows"
    );
    let server = start();
    let pid = server.child.id();
    let prober = Client::join(server.addr);
    let stop = Arc::new(AtomicBool::new(false));
    let probing = {
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || probe_help(prober, stop))
    };

    let cpu_before = cpu_ticks(pid);
    let started = Instant::now();
    let mut members: Vec<Joined> = Vec::with_capacity(JOINS);
    let mut names = std::collections::HashSet::new();
    let mut buf = vec![0; 64 * 1024];
    let mut online = std::collections::HashSet::new();
    let batch = batch();
    for first in (0..JOINS).step_by(batch) {
        let streams: Vec<TcpStream> = (first..JOINS.min(first + batch))
            .map(|_| connect(server.addr))
            .collect();
        for stream in streams {
            let (joined, name) = Joined::welcomed(stream);
            assert!(names.insert(name.clone()), "{name} twice");
            // The prober, the members before it, and itself.
            assert!(
                (2..=JOINS + 1).contains(&joined.online) && online.insert(joined.online),
                "{name} joined with {} online",
                joined.online
            );
            members.push(joined);
            if members.len() % SWEEP_EVERY == 0 {
                for member in &mut members {
                    member.drain(&mut buf);
                }
            }
        }
    }
    let joined = started.elapsed();
    // A member hears of everyone who joined after it: those it did not count.
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let mut missing = 0;
        for (i, member) in members.iter_mut().enumerate() {
            member.drain(&mut buf);
            let want = JOINS + 1 - member.online;
            assert!(member.lines <= want, "member {i}: {} lines", member.lines);
            missing += want - member.lines;
        }
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} join notices never came"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let delivered = started.elapsed();
    let cpu_after = cpu_ticks(pid);
    let tick = clock_ticks_per_second();
    let user = (cpu_after.0 - cpu_before.0) as f64 / tick;
    let system = (cpu_after.1 - cpu_before.1) as f64 / tick;

    stop.store(true, Ordering::Relaxed);
    let (mut trips, mut prober) = probing.join().expect("prober");
    assert!(!trips.is_empty(), "/help was never answered");
    prober.send("/who");
    let who = (0..=JOINS)
        .map(|_| prober.line())
        .find(|line| !line.ends_with(" joined"))
        .expect("an answer to /who");
    assert!(
        who.starts_with(&format!("* {} online: ", JOINS + 1)),
        "{who:.60}"
    );

    trips.sort_unstable();
    let at = |q: f64| trips[((trips.len() - 1) as f64 * q) as usize];
    eprintln!(
        "{JOINS} joins in batches of {batch}: {:.2} s to join, {:.2} s until every notice arrived; \
         server CPU {:.2} s ({user:.2} user, {system:.2} system); /help round trip over {} probes: \
         median {:.2?}, p99 {:.2?}, max {:.2?}",
        joined.as_secs_f64(),
        delivered.as_secs_f64(),
        user + system,
        trips.len(),
        at(0.5),
        at(0.99),
        trips[trips.len() - 1],
    );
}

/// Joins `count` members in batches of `BATCH`, reading each one's welcome;
/// returns them with their names, in the order they joined.
fn join_some(addr: SocketAddr, count: usize) -> Vec<(Joined, String)> {
    let mut joined = Vec::with_capacity(count);
    for first in (0..count).step_by(BATCH) {
        let streams: Vec<TcpStream> = (first..count.min(first + BATCH))
            .map(|_| connect(addr))
            .collect();
        joined.extend(streams.into_iter().map(Joined::welcomed));
    }
    joined.sort_by_key(|(member, _)| member.online);
    joined
}

#[test]
fn held_notices_come_before_the_lines_and_replies_that_follow_them() {
    // More members than one step of a flush sends to, so that notices are
    // held and sent in rounds.
    const MEMBERS: usize = 600;
    raise_fd_limit();
    let server = start();
    let mut observer = Client::join(server.addr);
    // A line said at once by the last to join reaches the observer after
    // every join notice, in the order of the joins.
    let joined = join_some(server.addr, MEMBERS);
    let mut last = Client::join(server.addr);
    last.send("hello");
    for (_, name) in &joined {
        observer.expect(&format!("* {name} joined"));
    }
    observer.expect(&format!("* {} joined", last.name));
    observer.expect(&format!("{}: hello", last.name));
    // A reply to the observer comes after the notices of joins before it.
    let more = join_some(server.addr, 50);
    observer.writer.write_all(b"/help\n").unwrap();
    for (_, name) in &more {
        observer.expect(&format!("* {name} joined"));
    }
    observer.expect(HELP);
    // Leaves are notices too, and keep their place before a rename.
    drop(joined);
    last.send("/nick last");
    let mut left = 0;
    loop {
        let line = observer.line();
        // "(connection lost)" for those closed with lines unread.
        if line.contains(" left") {
            left += 1;
            continue;
        }
        assert_eq!(line, format!("* {} is now last", last.name));
        break;
    }
    // All of them, or those whose close the server saw before the rename.
    assert!(left <= MEMBERS);
    // Closes the server saw since come before the answer to /who.
    observer.send("/who");
    let mut who = observer.line();
    while who.contains(" left") {
        left += 1;
        who = observer.line();
    }
    assert!(left <= MEMBERS);
    assert!(
        who.starts_with(&format!("* {} online: ", MEMBERS + 52 - left)),
        "{who:.40} after {left} left"
    );
}
