//! Helpers shared by the integration tests: an in-process echo reactor on an
//! ephemeral port, client sockets and what tests do with them, and a way to
//! run the examples (and, in [`tools`], installed programs) as child
//! processes.
//!
//! Every helper bounds its waits; a test that hangs is a failing test.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reactor::{CloseReason, Config, ConnId, Context, Handle, Handler, Reactor, Stats};
use socket2::SockRef;

pub mod resp;
pub mod tools;

/// What an [`Echo`] does with each input it reads.
pub type OnInput = fn(&mut Context<'_, Echo>, ConnId, &[u8]);

/// Echoes every byte and records every close reason, in order and by peer.
///
/// [`Echo::with`] replaces the echo with another reaction, so that a test
/// needing one command on top of the echo (or a canned reply instead of
/// it) writes that reaction and not a whole `Handler`.
pub struct Echo {
    /// Close reasons seen, in order.
    pub closes: Vec<CloseReason>,
    /// The same closes by peer address, for a test that asks about one of
    /// its clients while the loop still runs.
    pub peer_closes: PeerCloses,
    /// Called with each input, which is then consumed whole.
    pub on_input: OnInput,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::with(echo)
    }
}

impl Echo {
    /// An `Echo` that calls `on_input` with each input instead of echoing it.
    pub fn with(on_input: OnInput) -> Echo {
        Echo {
            closes: Vec::new(),
            peer_closes: PeerCloses::default(),
            on_input,
        }
    }
}

/// Writes `input` back to `conn`: [`Echo`]'s default reaction, and the last
/// step of reactions that echo as well. A failed write (a closed
/// connection, a full queue) is ignored, as a plain echo server would.
pub fn echo(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    let _ = ctx.write(conn, input);
}

impl Handler for Echo {
    /// The peer's address, to file the close under.
    type State = SocketAddr;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, peer: SocketAddr) -> SocketAddr {
        peer
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut SocketAddr,
        input: &[u8],
    ) -> usize {
        (self.on_input)(ctx, conn, input);
        input.len()
    }

    fn closed(
        &mut self,
        _: &mut Context<'_, Self>,
        _: ConnId,
        peer: SocketAddr,
        reason: CloseReason,
    ) {
        self.closes.push(reason);
        self.peer_closes.lock().unwrap().push((peer, reason));
    }
}

/// A reactor running on its own thread, listening on 127.0.0.1:0.
pub struct Running<H: Handler> {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Remote control.
    pub handle: Handle<H::Message>,
    /// The loop thread; returns the reactor when `run` ends.
    pub thread: Option<JoinHandle<Reactor<H>>>,
}

impl<H: Handler> Running<H> {
    /// Stops the loop and returns the reactor (for its handler and stats).
    pub fn stop(mut self) -> Reactor<H> {
        self.handle.stop();
        self.thread
            .take()
            .unwrap()
            .join()
            .expect("loop thread panicked")
    }

    /// Waits until `check` holds for the loop's stats, or panics after `limit`.
    pub fn wait_for(&self, what: &str, limit: Duration, check: impl Fn(&Stats) -> bool) -> Stats {
        wait_for_stats(&self.handle, what, limit, check)
    }
}

impl<H: Handler> Drop for Running<H> {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            self.handle.stop();
            let _ = thread.join();
        }
    }
}

/// Polls `handle.stats()` until `check` holds; panics with `what` after `limit`.
pub fn wait_for_stats<M>(
    handle: &Handle<M>,
    what: &str,
    limit: Duration,
    check: impl Fn(&Stats) -> bool,
) -> Stats {
    let start = Instant::now();
    loop {
        let stats = handle.stats();
        if check(&stats) {
            return stats;
        }
        assert!(
            start.elapsed() < limit,
            "timed out waiting for {what}: {stats:?}"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Starts `handler` on a new thread with `config`, listening on 127.0.0.1:0.
pub fn start<H>(handler: H, config: Config) -> Running<H>
where
    H: Handler + Send + 'static,
    H::State: Send,
{
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut reactor = Reactor::new(handler, config).expect("reactor");
        let listener = reactor
            .listen("127.0.0.1:0".parse().unwrap())
            .expect("listen");
        tx.send((reactor.local_addr(listener).unwrap(), reactor.handle()))
            .unwrap();
        reactor.run().expect("loop failed");
        reactor
    });
    let (addr, handle) = rx
        .recv_timeout(Duration::from_secs(10))
        .expect("reactor start");
    Running {
        addr,
        handle,
        thread: Some(thread),
    }
}

/// Starts an [`Echo`] reactor.
pub fn start_echo(config: Config) -> Running<Echo> {
    start(Echo::default(), config)
}

/// Path of an example binary next to this test binary, built (or rebuilt)
/// first if this test process has not yet done so.
///
/// Plain `cargo test` builds every example before running the tests, but
/// `cargo test --test proxy` builds none: the test would fail, or worse run
/// a stale binary left from an older build. So each example is built once
/// per test process with the same cargo, target directory and profile
/// (a no-op when it is up to date).
pub fn example_bin(name: &str) -> PathBuf {
    static BUILT: Mutex<Vec<String>> = Mutex::new(Vec::new());
    let exe = std::env::current_exe().expect("test binary path");
    // target/<profile>/deps/<test> -> target/<profile>/examples/<name>
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target dir");
    let path = dir.join("examples").join(name);
    let mut built = BUILT.lock().unwrap_or_else(|e| e.into_inner());
    if !built.iter().any(|b| b == name) {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--example", name, "--manifest-path"])
            .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml"))
            .arg("--target-dir")
            .arg(dir.parent().expect("target dir"));
        if dir.file_name().is_some_and(|profile| profile == "release") {
            build.arg("--release");
        }
        let status = build.status().expect("run cargo build");
        assert!(status.success(), "cargo build --example {name} failed");
        built.push(name.to_owned());
    }
    assert!(path.exists(), "{} was not built", path.display());
    path
}

/// An example server running as a child process; killed when dropped.
pub struct ChildServer {
    /// The process.
    pub child: Child,
    /// The address it printed as "... listening on ADDR".
    pub addr: SocketAddr,
    /// Its stderr lines after the listening line, as they arrive.
    pub stderr: mpsc::Receiver<String>,
}

impl ChildServer {
    /// Sends `signal` (e.g. "TERM") with kill(1).
    pub fn signal(&self, signal: &str) {
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(self.child.id().to_string())
            .status()
            .expect("kill");
        assert!(status.success());
    }

    /// Stops the server with SIGTERM, checks that it exits with status 0
    /// within 5 s, and returns its exit report (the stderr line with
    /// `stopped:`), whose counters tell what the whole run cost.
    pub fn stop_with_report(&mut self) -> String {
        self.signal("TERM");
        assert_eq!(self.wait_exit(Duration::from_secs(5)), Some(0));
        self.stderr
            .iter()
            .find(|l| l.contains("stopped:"))
            .expect("exit report")
    }

    /// Waits for the process to exit, at most `limit`; returns its exit code.
    pub fn wait_exit(&mut self, limit: Duration) -> Option<i32> {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(
                start.elapsed() < limit,
                "server did not exit within {limit:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Peak resident memory (`VmHWM` in `/proc/PID/status`) of process `pid`, in KiB.
pub fn peak_rss_kib(pid: u32) -> u64 {
    status_field_kib(pid, "VmHWM:")
}

/// One `kB` field of `/proc/PID/status`, in KiB.
fn status_field_kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with(field))
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"));
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// Runs example `name` with `args` (which should pick port 0) and waits for
/// the line "listening on ADDR" on its stderr. `shell_prefix`, if given, is
/// a shell command run before exec (e.g. `ulimit -n 64`).
// The child is reaped by `ChildServer`'s `Drop`, or killed and reaped
// before the panic when it never says where it listens.
#[allow(clippy::zombie_processes)]
pub fn spawn_example(name: &str, args: &[&str], shell_prefix: Option<&str>) -> ChildServer {
    let bin = example_bin(name);
    let mut command = match shell_prefix {
        Some(prefix) => {
            let mut c = Command::new("sh");
            c.arg("-c")
                .arg(format!("{prefix} && exec \"$0\" \"$@\""))
                .arg(&bin)
                .args(args);
            c
        }
        None => {
            let mut c = Command::new(&bin);
            c.args(args);
            c
        }
    };
    let mut child = command
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", bin.display()));
    let stderr = child.stderr.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Ok(line) = rx.recv_timeout(left) else {
            // Stop it by its own pid before failing: a panicking test would
            // otherwise leave the server running.
            let _ = child.kill();
            let _ = child.wait();
            panic!("{name} printed no 'listening on' line");
        };
        if let Some(rest) = line.split("listening on ").nth(1) {
            let addr = rest
                .split_whitespace()
                .next()
                .unwrap()
                .parse()
                .expect("address");
            return ChildServer {
                child,
                addr,
                stderr: rx,
            };
        }
    }
}

/// The write count in an example's exit report (`... N writes ...`).
pub fn writes_in_report(report: &str) -> u64 {
    report
        .split(" writes")
        .next()
        .and_then(|s| s.rsplit(' ').next())
        .and_then(|n| n.parse().ok())
        .expect("write count")
}

/// Runs example `name` listening on 127.0.0.1 at a port the kernel picks,
/// with `extra` arguments after `--addr`.
pub fn spawn_on_loopback(name: &str, extra: &[&str]) -> ChildServer {
    let mut args = vec!["--addr", "127.0.0.1:0"];
    args.extend_from_slice(extra);
    spawn_example(name, &args, None)
}

/// Resident memory of process `pid`, in KiB (`VmRSS` in /proc/PID/status):
/// what a test reads before and after sending a server hostile input, to
/// check that the server did not allocate what the input only declared.
pub fn rss_kib(pid: u32) -> u64 {
    status_field_kib(pid, "VmRSS:")
}

/// Descriptors open in this process right now.
pub fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// A client socket connected to `addr` with 10 s read/write timeouts, so a
/// test that waits for bytes that never come fails instead of hanging.
pub fn client(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect(addr).expect("connect"))
}

/// `stream` with the 10 s read and write timeouts [`client`] gives, for a
/// socket a test got another way (accepted from a listener of its own).
pub fn with_timeouts(stream: TcpStream) -> TcpStream {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `message` and checks that exactly it comes back: a quick proof
/// that an echoing connection (and the loop serving it) still works.
pub fn echo_once(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).unwrap();
    let mut echo = vec![0; message.len()];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(echo, message);
}

/// Writes `data` and then a FIN to `stream` from a new thread, so that the
/// caller can read the echo meanwhile (a large write would otherwise stall
/// once the buffers on the path are full of echo nobody reads).
pub fn write_then_fin(stream: &TcpStream, data: Vec<u8>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    })
}

/// Closes `stream` with a reset instead of a FIN: with SO_LINGER 0 the
/// kernel sends RST, the way a crashed or impatient peer goes away.
pub fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Close reasons by peer address, shared between a handler (which keeps
/// the peer as its connection state and records it in `closed`) and the
/// test thread, which asks how one of its clients ended while the loop
/// still runs.
pub type PeerCloses = Arc<Mutex<Vec<(SocketAddr, CloseReason)>>>;

/// How the server closed the connection from client address `peer`, if it
/// has. It takes the address, not the socket, so that it also answers for
/// a client already gone (after [`reset`], say).
pub fn close_reason_at(
    closes: &Mutex<Vec<(SocketAddr, CloseReason)>>,
    peer: SocketAddr,
) -> Option<CloseReason> {
    closes
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == peer)
        .map(|&(_, reason)| reason)
}

/// How the server closed `client`'s connection, if it has.
pub fn close_reason_of(
    closes: &Mutex<Vec<(SocketAddr, CloseReason)>>,
    client: &TcpStream,
) -> Option<CloseReason> {
    close_reason_at(closes, client.local_addr().unwrap())
}

/// Runs `body(i, barrier)` on `n` threads at once and returns what each
/// returned, in order. The barrier is shared by all `n`, so a body can line
/// every thread up at the step whose concurrency the test is about (all
/// connected before any sends, or all connecting together).
pub fn on_threads_together<T, F>(n: usize, body: F) -> Vec<T>
where
    T: Send + 'static,
    F: Fn(usize, &Barrier) -> T + Send + Sync + 'static,
{
    let barrier = Arc::new(Barrier::new(n));
    let body = Arc::new(body);
    let threads: Vec<_> = (0..n)
        .map(|i| {
            let (barrier, body) = (Arc::clone(&barrier), Arc::clone(&body));
            std::thread::spawn(move || body(i, &barrier))
        })
        .collect();
    threads.into_iter().map(|t| t.join().unwrap()).collect()
}

/// A tiny seeded PRNG (xorshift64*): reproducible random sizes and bytes
/// without a dependency.
pub struct Prng(pub u64);

impl Prng {
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A number in `lo..=hi`.
    pub fn range(&mut self, lo: usize, hi: usize) -> usize {
        lo + (self.next_u64() % (hi - lo + 1) as u64) as usize
    }

    /// `len` random bytes.
    pub fn bytes(&mut self, len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + 8);
        while out.len() < len {
            out.extend_from_slice(&self.next_u64().to_le_bytes());
        }
        out.truncate(len);
        out
    }
}

/// A tiny xorshift64 generator (13/7/17) for the parsers' garbage tests:
/// proptest's per-byte value trees are slow in debug builds, and those
/// tests want volume more than shrinking. (Not [`Prng`], so that the
/// inputs those tests were written against stay the same.)
pub struct XorShift(
    /// The state. Invariant: never zero (zero is a fixed point).
    pub u64,
);

impl XorShift {
    /// The next 64 random bits.
    pub fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    /// A number in `0..n`.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    /// Fewer than `max_pieces` pieces run together, each one of
    /// `fragments` or, one time in eight, a random byte: input shaped
    /// enough like a protocol to get deep into a parser, and broken enough
    /// to find where it trusts what it read.
    pub fn garbage(&mut self, fragments: &[&[u8]], max_pieces: usize) -> Vec<u8> {
        let mut input = Vec::new();
        for _ in 0..self.below(max_pieces) {
            if self.below(8) == 0 {
                input.push(self.next() as u8);
            } else {
                input.extend_from_slice(fragments[self.below(fragments.len())]);
            }
        }
        input
    }
}

/// Polls `check` every 5 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Reads until EOF (bounded by the socket's read timeout and `limit` bytes).
pub fn read_to_eof(stream: &mut TcpStream, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A signal delivered to the test process is not the peer's doing.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        assert!(out.len() <= limit, "read more than {limit} bytes");
    }
}

/// Joins `thread`, panicking if it has not finished within `limit` (a loop
/// that never returns from `run` fails the test instead of hanging it).
pub fn join_within<T: Send + 'static>(thread: JoinHandle<T>, limit: Duration) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(thread.join());
    });
    rx.recv_timeout(limit)
        .unwrap_or_else(|_| panic!("thread still running after {limit:?}"))
        .expect("thread panicked")
}
