//! A verifying load generator for echo servers, itself a reactor client.
//!
//! It owns the client side of the load benchmark (`benches/load/` drives
//! it): open many outbound connections with [`Context::connect`], keep
//! `--depth` messages in flight on each, check every echoed byte, and report
//! throughput, latency percentiles, errors and its own CPU use.
//!
//! ```text
//! cargo run --release --example loadgen -- --addr 127.0.0.1:65432 \
//!     --connections 100 --size 64 --depth 1 --warmup 1 --duration 5
//! cargo run --release --example loadgen -- --rate 20000 --depth 16 --json
//! ```
//!
//! Why it is built this way:
//!
//! * **Checking needs no stored copy.** Connection `c`'s byte stream is a
//!   window onto one pseudo-random pattern, starting at an offset chosen by
//!   `c`: stream byte `p` is `pattern[(p + c * 7919) % PERIOD]`. A batch of
//!   messages is one contiguous slice of the pattern (one `write`), and the
//!   echo is compared in place against the same slice (a `memcmp`). A lost,
//!   duplicated, reordered or foreign byte shifts the stream and is caught.
//! * **It must not be the bottleneck.** No allocation per message: the
//!   pattern is built once, send times sit in a fixed ring per connection,
//!   latencies go into a preallocated HdrHistogram. One reactor per thread
//!   (`--threads`), each with its own share of the connections.
//! * **Open loop measures honestly.** With `--rate`, message `k` of a thread
//!   is due at `t0 + k / rate`; its latency counts from that intended time,
//!   so a stalled server is charged for the messages it delayed (wrk2's
//!   answer to coordinated omission). Sleeping in `epoll_wait` has only
//!   millisecond resolution, so the loop spins when the next message is due
//!   sooner than that: loadgen CPU is then not meaningful.
//! * **Errors are counted, never hidden.** A mismatch, a refused or lost
//!   connection, a timeout, a lost or truncated datagram each count; any of
//!   them makes the exit status 1.
//!
//! Output: one progress line per second on stderr, `loadgen: measuring` and
//! `loadgen: measured` marker lines at the edges of the measured window (the
//! bench samples the server's CPU there), and a summary on stdout (JSON with
//! `--json`, written by hand: serde is not a dependency).

use std::collections::HashMap;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use clap::Parser;
use hdrhistogram::Histogram;
use reactor::{CloseReason, Config, ConnId, Context, Event, Handler, Interest, Reactor, SourceId};

/// Command-line flags.
#[derive(Parser, Debug, Clone)]
#[command(about = "Verifying load generator for echo servers")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:65432")]
    addr: SocketAddr,
    /// Connections (UDP: sockets) in total, over all threads.
    #[arg(long, default_value_t = 100)]
    connections: usize,
    /// Message size in bytes (UDP: at least 16).
    #[arg(long, default_value_t = 64)]
    size: usize,
    /// Messages in flight per connection (pipelining); 0 opens the
    /// connections and sends nothing (idle-memory measurements).
    #[arg(long, default_value_t = 1)]
    depth: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    warmup: f64,
    /// Open loop: total messages per second over all connections; latency
    /// counts from each message's intended send time.
    #[arg(long)]
    rate: Option<f64>,
    /// Datagram mode against a UDP echo server: one socket per connection.
    #[arg(long)]
    udp: bool,
    /// Reactor threads, each with its share of the connections.
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// Seconds a message may stay unanswered (and a connect may take)
    /// before it counts as a timeout.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Outbound connects in progress at once, per thread: more would only
    /// overflow the server's accept backlog and wait for SYN retransmits.
    #[arg(long, default_value_t = 256)]
    connect_burst: usize,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    json: bool,
}

/// Length of the pattern's period. A prime, so no message size divides it
/// and consecutive messages never repeat the same bytes.
const PERIOD: usize = 65_521;
/// Connection `c` starts its stream at offset `c * CONN_STRIDE` in the
/// pattern; coprime with `PERIOD`, so up to `PERIOD` connections all differ.
const CONN_STRIDE: u64 = 7_919;
/// Connections per local source address before moving to the next one:
/// under the ~28 000 ephemeral ports Linux offers per destination.
const CONNS_PER_SOURCE: usize = 25_000;
/// Above this many connections, spread them over 127.0.0.x source addresses.
const SPREAD_ABOVE: usize = 28_000;
/// How often in-flight messages are checked against `--timeout`.
const SWEEP_EVERY: Duration = Duration::from_millis(100);
/// Largest datagram read; bigger than any `--size` we accept, so a datagram
/// longer than sent is seen whole rather than silently cut.
const MAX_DATAGRAM: usize = 65_536;

/// The byte stream every connection is a window onto.
struct Pattern {
    /// `PERIOD + window` pseudo-random bytes, where bytes `PERIOD..` repeat
    /// the first ones: any run of at most `window` bytes starting below
    /// `PERIOD` is one contiguous slice.
    bytes: Vec<u8>,
    /// Longest slice ever asked for (one batch: `depth * size`).
    window: usize,
}

impl Pattern {
    fn new(window: usize) -> Pattern {
        let mut bytes = Vec::with_capacity(PERIOD + window);
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        for _ in 0..PERIOD {
            // xorshift64*: cheap, and no byte value is favoured.
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            bytes.push((x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8);
        }
        for i in 0..window {
            bytes.push(bytes[i % PERIOD]);
        }
        Pattern { bytes, window }
    }

    /// Where connection `conn`'s stream byte `pos` sits in `bytes`.
    fn offset(conn: u64, pos: u64) -> usize {
        ((pos + conn * CONN_STRIDE) % PERIOD as u64) as usize
    }

    /// `len <= window` bytes of `conn`'s stream from `pos`.
    fn slice(&self, conn: u64, pos: u64, len: usize) -> &[u8] {
        debug_assert!(len <= self.window);
        let start = Self::offset(conn, pos);
        &self.bytes[start..start + len]
    }

    /// Compares `input` with `conn`'s stream from `pos`; returns how many
    /// bytes differ. The fast path is one `memcmp` per `window` bytes.
    fn mismatches(&self, conn: u64, mut pos: u64, mut input: &[u8]) -> u64 {
        let mut wrong = 0;
        while !input.is_empty() {
            let start = Self::offset(conn, pos);
            let len = input.len().min(self.bytes.len() - start);
            let (head, rest) = input.split_at(len);
            let expected = &self.bytes[start..start + len];
            if head != expected {
                wrong += head.iter().zip(expected).filter(|(a, b)| a != b).count() as u64;
            }
            pos += len as u64;
            input = rest;
        }
        wrong
    }
}

/// Counters one thread keeps; summed over threads at the end.
#[derive(Default, Clone, Copy, Debug)]
struct Counters {
    /// Messages echoed and verified inside the measured window.
    messages: u64,
    /// Connections (sockets) that came up.
    established: u64,
    /// Connects refused, failed or timed out.
    connect_failures: u64,
    /// Connections closed by anything but us before the run ended.
    connections_lost: u64,
    /// Chunks of echo that differed from what was sent (the connection is
    /// closed at the first one: after a shift every later byte differs).
    mismatches: u64,
    /// Bytes that differed, or arrived beyond what was sent.
    mismatched_bytes: u64,
    /// Connections closed because a message went unanswered for `--timeout`,
    /// plus messages still unanswered when the final drain gave up.
    timeouts: u64,
    /// Datagrams not echoed within `--timeout`.
    udp_lost: u64,
    /// Datagrams echoed shorter than sent.
    udp_truncated: u64,
    /// Datagrams echoed after being declared lost (not an error: the loss
    /// was counted).
    udp_late: u64,
}

impl Counters {
    fn add(&mut self, o: &Counters) {
        self.messages += o.messages;
        self.established += o.established;
        self.connect_failures += o.connect_failures;
        self.connections_lost += o.connections_lost;
        self.mismatches += o.mismatches;
        self.mismatched_bytes += o.mismatched_bytes;
        self.timeouts += o.timeouts;
        self.udp_lost += o.udp_lost;
        self.udp_truncated += o.udp_truncated;
        self.udp_late += o.udp_late;
    }

    fn errors(&self) -> u64 {
        self.connect_failures
            + self.connections_lost
            + self.mismatches
            + self.timeouts
            + self.udp_lost
            + self.udp_truncated
    }
}

/// Figures the workers publish for the once-a-second progress line.
struct Progress {
    /// Messages echoed since the start, all threads.
    messages: AtomicU64,
    /// Connections up now, all threads.
    up: AtomicU64,
    /// Each thread's p99 of its last full second, in nanoseconds; one entry
    /// per thread, so no thread's figure wipes another's.
    p99_ns: Vec<AtomicU64>,
}

/// Phases of a run, all computed from `t0` (when every thread finished
/// connecting), so every thread agrees without talking.
#[derive(Clone, Copy)]
struct Plan {
    /// Load starts; the open-loop schedule counts from here.
    t0: Instant,
    /// Measuring starts (`t0 + warmup`).
    measure_start: Instant,
    /// Measuring ends and no new message is sent (`measure_start + duration`).
    measure_end: Instant,
}

/// One TCP connection's progress.
struct Conn {
    /// Global connection number: picks the pattern offset and source address.
    number: u64,
    /// Index of this connection in its thread's `conns` (open-loop schedule).
    local: usize,
    /// Messages written so far (`sent * size` stream bytes).
    sent: u64,
    /// Stream bytes echoed and verified; `received <= sent * size`.
    received: u64,
    /// Messages the open-loop schedule has made due; `sent <= due` in rate
    /// mode (unused in closed loop).
    due: u64,
    /// Send time of in-flight message `m` at `sent_at[m % depth]`;
    /// `len == depth` (allocated once, at connect).
    sent_at: Box<[Instant]>,
    /// Already counted as an error (mismatch, timeout): its close is not
    /// counted again.
    failed: bool,
    /// On the thread's `dirty` list this pump.
    dirty: bool,
}

/// One UDP "connection": a connected socket registered with the loop.
struct UdpConn {
    /// The socket, connected to the server.
    socket: mio::net::UdpSocket,
    /// Global connection number, as for TCP.
    number: u64,
    /// Datagrams sent so far; datagram `m` carries `m` in its first 8 bytes.
    sent: u64,
    /// Datagrams the open-loop schedule has made due (rate mode).
    due: u64,
    /// Datagram `m` in flight sits at `slots[m % depth]`; a slot is reused
    /// only once free, so at most `depth` datagrams are in flight.
    slots: Box<[Slot]>,
    /// On the thread's `dirty` list this pump.
    dirty: bool,
}

/// One in-flight datagram.
#[derive(Clone, Copy)]
struct Slot {
    /// Datagram number; meaningful only while `live`.
    msg: u64,
    /// When it was sent.
    at: Instant,
    /// Waiting for its echo.
    live: bool,
}

/// One thread's generator: the reactor's handler.
struct Gen {
    /// Shared read-only settings.
    args: Arc<Args>,
    /// The stream pattern (one per thread, to stay in this core's cache).
    pattern: Pattern,
    /// Connections this thread opens, by global number.
    numbers: Vec<u64>,
    /// `numbers[..next_connect]` have been asked to connect.
    next_connect: usize,
    /// Connects in progress (neither connected nor failed yet).
    connecting: usize,
    /// TCP connection ids by local index; `None` before connect and after close.
    conns: Vec<Option<ConnId>>,
    /// UDP sockets by local index (UDP mode only).
    udp: Vec<UdpConn>,
    /// UDP socket index by its source id.
    udp_index: HashMap<SourceId, usize>,
    /// Set once connecting is over; `None` during the connect phase.
    plan: Option<Plan>,
    /// No more sending: the measured window has ended.
    stopping: bool,
    /// Open-loop: nanoseconds between two messages of this thread.
    interval_ns: Option<f64>,
    /// Open-loop: messages `0..next_due` of this thread are scheduled.
    next_due: u64,
    /// Local indexes with new work this pump; reused, never shrunk.
    dirty: Vec<usize>,
    /// Latencies (ns) of messages completed in the measured window.
    hist: Histogram<u64>,
    /// Latencies of the current second, for the progress line.
    second: Histogram<u64>,
    /// Results so far.
    counters: Counters,
    /// Where the progress line reads from.
    progress: Arc<Progress>,
    /// Connections up in this thread now.
    up: u64,
    /// Receive buffer for datagrams (`MAX_DATAGRAM` bytes).
    datagram: Vec<u8>,
    /// Send buffer for one datagram (`size` bytes), reused for every send.
    send_buf: Vec<u8>,
}

fn histogram() -> Histogram<u64> {
    // 1 ns .. 100 s at 3 significant digits: allocated once.
    Histogram::new_with_bounds(1, 100_000_000_000, 3).expect("histogram bounds")
}

impl Gen {
    fn size(&self) -> u64 {
        self.args.size as u64
    }

    fn depth(&self) -> u64 {
        self.args.depth as u64
    }

    /// Intended send time of message `m` of local connection `local`.
    fn intended(&self, local: usize, m: u64) -> Option<Instant> {
        let interval = self.interval_ns?;
        let plan = self.plan?;
        let k = m * self.numbers.len() as u64 + local as u64;
        Some(plan.t0 + Duration::from_nanos((k as f64 * interval) as u64))
    }

    /// Records one completed message sent at `sent_at` (closed loop) or due
    /// at its intended time (open loop).
    fn complete(&mut self, now: Instant, local: usize, m: u64, sent_at: Instant) {
        self.progress.messages.fetch_add(1, Ordering::Relaxed);
        let from = self.intended(local, m).unwrap_or(sent_at);
        let ns = now.saturating_duration_since(from).as_nanos().max(1) as u64;
        let _ = self.second.record(ns);
        if let Some(plan) = self.plan {
            if now >= plan.measure_start && now < plan.measure_end {
                self.counters.messages += 1;
                let _ = self.hist.record(ns);
            }
        }
    }

    /// Starts connects until `connect_burst` are in progress.
    fn connect_more(&mut self, ctx: &mut Context<'_, Self>) {
        let timeout = Duration::from_secs_f64(self.args.timeout);
        while self.connecting < self.args.connect_burst && self.next_connect < self.numbers.len() {
            let local = self.next_connect;
            let number = self.numbers[local];
            self.next_connect += 1;
            let source = source_addr(&self.args, number);
            let conn = Conn {
                number,
                local,
                sent: 0,
                received: 0,
                due: 0,
                sent_at: vec![Instant::now(); self.args.depth.max(1)].into_boxed_slice(),
                failed: false,
                dirty: false,
            };
            match ctx.connect_from(source, self.args.addr, Some(timeout), conn) {
                Ok(id) => {
                    self.conns[local] = Some(id);
                    self.connecting += 1;
                }
                Err(e) => {
                    eprintln!("loadgen: connect {number}: {e}");
                    self.counters.connect_failures += 1;
                }
            }
        }
    }

    /// Whether the connect phase is over for this thread.
    fn connect_phase_done(&self) -> bool {
        self.next_connect >= self.numbers.len() && self.connecting == 0
    }

    /// How many messages connection may send now, given what it has
    /// completed: the window (`depth`), the schedule, and the phase.
    fn allowance(&self, sent: u64, completed: u64, due: u64) -> u64 {
        if self.stopping || self.plan.is_none() {
            return 0;
        }
        let mut target = completed + self.depth();
        if self.interval_ns.is_some() {
            target = target.min(due);
        }
        target.saturating_sub(sent)
    }

    /// Sends what TCP connection `id` may send now, as one write.
    fn refill_tcp(&mut self, ctx: &mut Context<'_, Self>, id: ConnId, st: &mut Conn, now: Instant) {
        let completed = st.received / self.size();
        let n = self.allowance(st.sent, completed, st.due);
        if n == 0 {
            return;
        }
        let depth = self.depth();
        for m in st.sent..st.sent + n {
            st.sent_at[(m % depth) as usize] = now;
        }
        let pos = st.sent * self.size();
        st.sent += n;
        let bytes = self
            .pattern
            .slice(st.number, pos, (n * self.size()) as usize);
        // An error closed the connection; `closed` will count it.
        let _ = ctx.write(id, bytes);
    }

    /// Sends what UDP socket `index` may send now: one datagram each.
    fn refill_udp(&mut self, index: usize, now: Instant) {
        let size = self.args.size;
        let depth = self.depth();
        if depth == 0 {
            return;
        }
        loop {
            let u = &self.udp[index];
            let slot = (u.sent % depth) as usize;
            if u.slots[slot].live || self.allowance(u.sent, u.sent, u.due) == 0 {
                return;
            }
            let (m, number) = (u.sent, u.number);
            let datagram = &mut self.send_buf[..size];
            datagram[..8].copy_from_slice(&m.to_le_bytes());
            datagram[8..].copy_from_slice(self.pattern.slice(number, m * size as u64, size - 8));
            let u = &mut self.udp[index];
            match u.socket.send(datagram) {
                Ok(_) => {
                    u.slots[slot] = Slot {
                        msg: m,
                        at: now,
                        live: true,
                    };
                    u.sent += 1;
                }
                // The socket buffer is full: try again on the next pump.
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                // ECONNREFUSED left by an earlier ICMP error, and the like:
                // the datagram is lost; count it as such.
                Err(_) => {
                    self.counters.udp_lost += 1;
                    u.sent += 1;
                }
            }
        }
    }

    /// Drains UDP socket `index`, verifying each datagram.
    fn receive_udp(&mut self, index: usize) {
        let size = self.args.size;
        let depth = self.depth().max(1);
        let mut buf = std::mem::take(&mut self.datagram);
        loop {
            let result = self.udp[index].socket.recv(&mut buf);
            let now = Instant::now();
            let len = match result {
                Ok(len) => len,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // An ICMP error for an earlier send; the sweep counts the loss.
                Err(_) => continue,
            };
            if len < size {
                self.counters.udp_truncated += 1;
                continue;
            }
            let m = u64::from_le_bytes(buf[..8].try_into().expect("8 bytes"));
            let u = &self.udp[index];
            let slot = (m % depth) as usize;
            if m >= u.sent || !u.slots[slot].live || u.slots[slot].msg != m {
                if m < u.sent {
                    self.counters.udp_late += 1;
                } else {
                    self.counters.mismatches += 1;
                    self.counters.mismatched_bytes += len as u64;
                }
                continue;
            }
            let mut wrong = self
                .pattern
                .mismatches(u.number, m * size as u64, &buf[8..size]);
            wrong += (len - size) as u64;
            let at = u.slots[slot].at;
            self.udp[index].slots[slot].live = false;
            if wrong > 0 {
                self.counters.mismatches += 1;
                self.counters.mismatched_bytes += wrong;
                continue;
            }
            self.complete(now, index, m, at);
        }
        self.datagram = buf;
        let now = Instant::now();
        self.refill_udp(index, now);
    }

    /// Open loop: makes due every message whose time has come, then sends
    /// on every connection that gained work (one write each).
    fn schedule(&mut self, ctx: &mut Context<'_, Self>, now: Instant) {
        let (Some(interval), Some(plan)) = (self.interval_ns, self.plan) else {
            return;
        };
        let until = now.min(plan.measure_end);
        if until < plan.t0 {
            return;
        }
        let elapsed = until.duration_since(plan.t0).as_nanos() as f64;
        let due_total = (elapsed / interval) as u64 + 1;
        let n = self.numbers.len() as u64;
        while self.next_due < due_total {
            let local = (self.next_due % n) as usize;
            self.next_due += 1;
            if self.args.udp {
                let u = &mut self.udp[local];
                u.due += 1;
                if !u.dirty {
                    u.dirty = true;
                    self.dirty.push(local);
                }
            } else if let Some(id) = self.conns[local] {
                if let Some(st) = ctx.state_mut(id) {
                    st.due += 1;
                    if !st.dirty {
                        st.dirty = true;
                        self.dirty.push(local);
                    }
                }
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        for &local in &dirty {
            if self.args.udp {
                self.udp[local].dirty = false;
                self.refill_udp(local, now);
            } else if let Some(id) = self.conns[local] {
                self.refill_from_outside(ctx, id, now);
            }
        }
        dirty.clear();
        self.dirty = dirty;
    }

    /// `refill_tcp` for a connection whose callback is not running.
    fn refill_from_outside(&mut self, ctx: &mut Context<'_, Self>, id: ConnId, now: Instant) {
        let Some(st) = ctx.state_mut(id) else {
            return;
        };
        st.dirty = false;
        let completed = st.received / self.size();
        let n = self.allowance(st.sent, completed, st.due);
        if n == 0 {
            return;
        }
        let depth = self.depth();
        for m in st.sent..st.sent + n {
            st.sent_at[(m % depth) as usize] = now;
        }
        let (number, pos) = (st.number, st.sent * self.size());
        st.sent += n;
        let bytes = self.pattern.slice(number, pos, (n * self.size()) as usize);
        let _ = ctx.write(id, bytes);
    }

    /// Counts and closes connections whose oldest message waited too long;
    /// for UDP, declares such datagrams lost and frees their slots.
    fn sweep(&mut self, ctx: &mut Context<'_, Self>, now: Instant, final_drain: bool) {
        let timeout = Duration::from_secs_f64(self.args.timeout);
        let depth = self.depth().max(1);
        if self.args.udp {
            for index in 0..self.udp.len() {
                for slot in self.udp[index].slots.iter_mut() {
                    if slot.live && (final_drain || now.duration_since(slot.at) >= timeout) {
                        slot.live = false;
                        self.counters.udp_lost += 1;
                    }
                }
                self.refill_udp(index, now);
            }
            return;
        }
        for local in 0..self.conns.len() {
            let Some(id) = self.conns[local] else {
                continue;
            };
            let Some(st) = ctx.state_mut(id) else {
                continue;
            };
            let completed = st.received / self.args.size as u64;
            if completed >= st.sent {
                continue;
            }
            let oldest = st.sent_at[(completed % depth) as usize];
            if final_drain || now.duration_since(oldest) >= timeout {
                st.failed = true;
                self.counters.timeouts += 1;
                ctx.close(id);
            }
        }
    }

    /// Messages still awaiting their echo, all connections of this thread.
    fn in_flight(&self, ctx: &Context<'_, Self>) -> u64 {
        if self.args.udp {
            return self
                .udp
                .iter()
                .map(|u| u.slots.iter().filter(|s| s.live).count() as u64)
                .sum();
        }
        let size = self.args.size as u64;
        self.conns
            .iter()
            .flatten()
            .filter_map(|id| ctx.state(*id))
            .map(|st| st.sent - st.received / size)
            .sum()
    }
}

impl Handler for Gen {
    type State = Conn;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> Conn {
        unreachable!("loadgen listens on nothing")
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: &mut Conn) {
        self.connecting -= 1;
        self.up += 1;
        self.counters.established += 1;
        self.progress.up.fetch_add(1, Ordering::Relaxed);
        self.refill_tcp(ctx, conn, st, Instant::now());
        self.connect_more(ctx);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut Conn,
        input: &[u8],
    ) -> usize {
        let now = Instant::now();
        let size = self.size();
        let owed = st.sent * size - st.received;
        let (expected, extra) = if input.len() as u64 > owed {
            (&input[..owed as usize], input.len() as u64 - owed)
        } else {
            (input, 0)
        };
        let wrong = self.pattern.mismatches(st.number, st.received, expected) + extra;
        if wrong > 0 {
            // After one wrong byte the stream is out of step for good:
            // count this chunk and give the connection up.
            self.counters.mismatches += 1;
            self.counters.mismatched_bytes += wrong;
            st.failed = true;
            ctx.close(conn);
            return input.len();
        }
        let before = st.received / size;
        st.received += input.len() as u64;
        let after = st.received / size;
        let depth = self.depth();
        for m in before..after {
            let at = st.sent_at[(m % depth) as usize];
            self.complete(now, st.local, m, at);
        }
        self.refill_tcp(ctx, conn, st, now);
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut Conn) {
        ctx.close(conn);
    }

    fn closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: Conn, reason: CloseReason) {
        self.conns[st.local] = None;
        match reason {
            CloseReason::ConnectFailed(_) | CloseReason::ConnectTimeout => {
                self.connecting -= 1;
                self.counters.connect_failures += 1;
                if self.counters.connect_failures <= 3 {
                    eprintln!("loadgen: connection {}: {reason}", st.number);
                }
                self.connect_more(ctx);
            }
            _ => {
                self.up -= 1;
                self.progress.up.fetch_sub(1, Ordering::Relaxed);
                // Closes we made at the end, or after counting a failure,
                // are not losses.
                let expected =
                    st.failed || (self.stopping && matches!(reason, CloseReason::ClosedLocally));
                if !expected {
                    self.counters.connections_lost += 1;
                    if self.counters.connections_lost <= 3 {
                        eprintln!("loadgen: connection {} ({conn}) lost: {reason}", st.number);
                    }
                }
            }
        }
    }

    fn source_ready(&mut self, _: &mut Context<'_, Self>, source: SourceId, event: &Event) {
        if let Some(&index) = self.udp_index.get(&source) {
            if event.is_readable() || event.is_error() {
                self.receive_udp(index);
            }
        }
    }
}

/// The local address connection `number` connects from: `None` (the
/// kernel's choice) unless there are too many connections for one address.
fn source_addr(args: &Args, number: u64) -> Option<SocketAddr> {
    if args.connections <= SPREAD_ABOVE && !args.udp {
        return None;
    }
    let block = (number as usize / CONNS_PER_SOURCE) as u8;
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + block)),
        0,
    ))
}

/// What one thread hands back.
struct Outcome {
    /// Latencies of the measured window.
    hist: Histogram<u64>,
    /// Counters of the whole run.
    counters: Counters,
}

/// One worker thread: connect its share, wait for all threads, load,
/// drain, report.
fn worker(
    thread: usize,
    args: Arc<Args>,
    numbers: Vec<u64>,
    progress: Arc<Progress>,
    barrier: Arc<Barrier>,
) -> io::Result<Outcome> {
    let config = Config {
        // Room for every connection plus the few descriptors a process needs.
        max_connections: numbers.len() + 16,
        ..Config::default()
    };
    let window = args.depth.max(1) * args.size;
    let count = numbers.len();
    let gen = Gen {
        pattern: Pattern::new(window),
        numbers,
        next_connect: 0,
        connecting: 0,
        conns: vec![None; count],
        udp: Vec::new(),
        udp_index: HashMap::new(),
        plan: None,
        stopping: false,
        interval_ns: args
            .rate
            .map(|rate| 1e9 * args.threads as f64 / rate.max(1e-9)),
        next_due: 0,
        dirty: Vec::with_capacity(count),
        hist: histogram(),
        second: histogram(),
        counters: Counters::default(),
        progress,
        up: 0,
        datagram: vec![0; MAX_DATAGRAM],
        send_buf: vec![0; args.size],
        args: Arc::clone(&args),
    };
    // Connect phase. Whatever happens, pass the barrier: the other threads
    // and `main` wait there.
    let connected = connect_all(gen, config, &args);
    barrier.wait();
    let mut reactor = connected?;

    // Load phase: every thread counts from its own t0, taken right after the
    // barrier, so the phases agree to within microseconds.
    let t0 = Instant::now();
    let measure_start = t0 + Duration::from_secs_f64(args.warmup);
    let plan = Plan {
        t0,
        measure_start,
        measure_end: measure_start + Duration::from_secs_f64(args.duration),
    };
    reactor.with_context(|gen, ctx| {
        gen.plan = Some(plan);
        let now = Instant::now();
        if gen.args.udp {
            for index in 0..gen.udp.len() {
                gen.refill_udp(index, now);
            }
        } else {
            for local in 0..gen.conns.len() {
                if let Some(id) = gen.conns[local] {
                    gen.refill_from_outside(ctx, id, now);
                }
            }
        }
    });
    let mut next_sweep = t0 + SWEEP_EVERY;
    let mut next_second = t0 + Duration::from_secs(1);
    loop {
        let now = Instant::now();
        if now >= plan.measure_end {
            break;
        }
        // Open loop: wake for the next due message; below epoll's
        // millisecond resolution, spin instead of oversleeping.
        let mut wait = next_sweep
            .min(plan.measure_end)
            .saturating_duration_since(now);
        if let Some(interval) = reactor.handler().interval_ns {
            let next = reactor.handler().next_due;
            let due = t0 + Duration::from_nanos((next as f64 * interval) as u64);
            let until = due.saturating_duration_since(now);
            wait = if until < Duration::from_millis(1) {
                Duration::ZERO
            } else {
                wait.min(until - Duration::from_millis(1))
            };
        }
        reactor.run_once(Some(wait))?;
        let now = Instant::now();
        reactor.with_context(|gen, ctx| {
            gen.schedule(ctx, now);
            if now >= next_sweep {
                gen.sweep(ctx, now, false);
            }
        });
        if now >= next_sweep {
            next_sweep = now + SWEEP_EVERY;
        }
        if now >= next_second {
            let gen = reactor.handler_mut();
            let p99 = gen.second.value_at_quantile(0.99);
            gen.progress.p99_ns[thread].store(p99, Ordering::Relaxed);
            gen.second.reset();
            next_second += Duration::from_secs(1);
        }
    }

    // Drain: stop sending, wait for what is in flight, then count what never
    // came back as timed out.
    reactor.handler_mut().stopping = true;
    let drain_deadline = Instant::now() + Duration::from_secs_f64(args.timeout.min(2.0));
    loop {
        let left = reactor.with_context(|gen, ctx| gen.in_flight(ctx));
        if left == 0 || Instant::now() >= drain_deadline {
            break;
        }
        reactor.run_once(Some(Duration::from_millis(10)))?;
    }
    reactor.with_context(|gen, ctx| {
        gen.sweep(ctx, Instant::now(), true);
        for id in gen.conns.iter().flatten() {
            ctx.close(*id);
        }
    });
    let gen = reactor.handler_mut();
    Ok(Outcome {
        hist: std::mem::replace(&mut gen.hist, histogram()),
        counters: gen.counters,
    })
}

/// Builds the thread's reactor and opens its connections (or sockets),
/// waiting at most `--timeout` (plus a second) for connects to finish.
fn connect_all(gen: Gen, config: Config, args: &Args) -> io::Result<Reactor<Gen>> {
    let mut reactor = Reactor::new(gen, config)?;
    let connect_deadline = Instant::now() + Duration::from_secs_f64(args.timeout + 1.0);
    if args.udp {
        open_udp(&mut reactor, args)?;
    } else {
        reactor.with_context(|gen, ctx| gen.connect_more(ctx));
        while !reactor.handler().connect_phase_done() && Instant::now() < connect_deadline {
            reactor.run_once(Some(Duration::from_millis(50)))?;
        }
    }
    Ok(reactor)
}

/// Opens this thread's UDP sockets, connected to the server, registered
/// with the loop for reading.
fn open_udp(reactor: &mut Reactor<Gen>, args: &Args) -> io::Result<()> {
    let count = reactor.handler().numbers.len();
    for local in 0..count {
        let number = reactor.handler().numbers[local];
        let source = source_addr(args, number).expect("UDP always binds");
        let socket = match mio::net::UdpSocket::bind(source) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("loadgen: udp socket {number}: {e}");
                reactor.handler_mut().counters.connect_failures += 1;
                continue;
            }
        };
        socket.connect(args.addr)?;
        let mut u = UdpConn {
            socket,
            number,
            sent: 0,
            due: 0,
            slots: vec![
                Slot {
                    msg: 0,
                    at: Instant::now(),
                    live: false
                };
                args.depth.max(1)
            ]
            .into_boxed_slice(),
            dirty: false,
        };
        let id = reactor.register_source(&mut u.socket, Interest::READABLE)?;
        let gen = reactor.handler_mut();
        let index = gen.udp.len();
        gen.udp.push(u);
        gen.udp_index.insert(id, index);
        gen.counters.established += 1;
        gen.up += 1;
        gen.progress.up.fetch_add(1, Ordering::Relaxed);
    }
    // Local index must equal position in `udp` for the schedule: sockets
    // that failed to open shrink the list, so renumber the schedule.
    let gen = reactor.handler_mut();
    gen.numbers = gen.udp.iter().map(|u| u.number).collect();
    Ok(())
}

/// utime + stime of this process, in seconds (ticks of 1/100 s).
fn cpu_seconds(pid: &str) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // The command name may hold spaces; fields resume after its ')'.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| {
        fields
            .get(i)
            .and_then(|f| f.parse::<f64>().ok())
            .unwrap_or(0.0)
    };
    // Fields 14 and 15 of stat(5); `rest` starts at field 3.
    (ticks(11) + ticks(12)) / 100.0
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = validate(&args) {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    match run(args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

fn validate(args: &Args) -> Result<(), String> {
    if args.size == 0 || args.size > 1 << 20 {
        return Err("--size must be 1 ..= 1048576".into());
    }
    if args.udp && !(16..=MAX_DATAGRAM - 1024).contains(&args.size) {
        return Err(format!(
            "--udp needs --size in 16 ..= {}",
            MAX_DATAGRAM - 1024
        ));
    }
    if args.threads == 0 || args.connections == 0 {
        return Err("--threads and --connections must be positive".into());
    }
    if args.depth > 4096 {
        return Err("--depth at most 4096".into());
    }
    if !(args.duration > 0.0 && args.warmup >= 0.0 && args.timeout > 0.0) {
        return Err("--duration and --timeout must be positive".into());
    }
    Ok(())
}

/// Runs the whole load; `Ok(true)` if nothing went wrong.
fn run(args: Args) -> io::Result<bool> {
    let args = Arc::new(args);
    let threads = args.threads.min(args.connections);
    let progress = Arc::new(Progress {
        messages: AtomicU64::new(0),
        up: AtomicU64::new(0),
        p99_ns: (0..threads).map(|_| AtomicU64::new(0)).collect(),
    });
    let barrier = Arc::new(Barrier::new(threads + 1));
    let mut workers = Vec::new();
    for t in 0..threads {
        let numbers: Vec<u64> = (t..args.connections)
            .step_by(threads)
            .map(|n| n as u64)
            .collect();
        let (args, progress, barrier) = (
            Arc::clone(&args),
            Arc::clone(&progress),
            Arc::clone(&barrier),
        );
        workers.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || worker(t, args, numbers, progress, barrier))?,
        );
    }
    barrier.wait();
    let t0 = Instant::now();
    let up = progress.up.load(Ordering::Relaxed);
    eprintln!("loadgen: {up}/{} connections up", args.connections);
    let measure_start = t0 + Duration::from_secs_f64(args.warmup);
    let measure_end = measure_start + Duration::from_secs_f64(args.duration);
    let mut cpu_start = None;
    let mut cpu_end = None;
    let mut last = (Instant::now(), 0u64);
    let mut tick = 0;
    while workers.iter().any(|w| !w.is_finished()) {
        std::thread::sleep(Duration::from_millis(10));
        let now = Instant::now();
        if cpu_start.is_none() && now >= measure_start {
            cpu_start = Some(cpu_seconds("self"));
            eprintln!("loadgen: measuring");
        }
        if cpu_end.is_none() && now >= measure_end {
            cpu_end = Some(cpu_seconds("self"));
            eprintln!("loadgen: measured");
        }
        if now.duration_since(last.0) >= Duration::from_secs(1) {
            tick += 1;
            let messages = progress.messages.load(Ordering::Relaxed);
            let rate = (messages - last.1) as f64 / now.duration_since(last.0).as_secs_f64();
            let p99 = progress
                .p99_ns
                .iter()
                .map(|p| p.load(Ordering::Relaxed))
                .max()
                .unwrap_or(0) as f64
                / 1000.0;
            let up = progress.up.load(Ordering::Relaxed);
            eprintln!(
                "loadgen: {tick:>3}s {rate:>10.0} msg/s  p99 {p99:>8.1} us  {up}/{} up",
                args.connections
            );
            last = (now, messages);
        }
    }
    // The workers time their own window from the same barrier and may end
    // it a few milliseconds before this loop next looks: close the window
    // here then, or a bench reading these markers would see it never end.
    let cpu_end = match cpu_end {
        Some(end) => end,
        None => {
            let end = cpu_seconds("self");
            if cpu_start.is_some() {
                eprintln!("loadgen: measured");
            }
            end
        }
    };
    let cpu = cpu_end - cpu_start.unwrap_or(0.0);

    let mut hist = histogram();
    let mut counters = Counters::default();
    for w in workers {
        match w.join() {
            Ok(Ok(outcome)) => {
                let _ = hist.add(&outcome.hist);
                counters.add(&outcome.counters);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a worker thread panicked")),
        }
    }
    let seconds = args.duration;
    let summary = Summary {
        messages_per_sec: counters.messages as f64 / seconds,
        mib_per_sec: (counters.messages * args.size as u64) as f64 / seconds / (1 << 20) as f64,
        cpu_seconds: cpu,
        hist,
        counters,
    };
    if args.json {
        println!("{}", summary.json(&args));
    } else {
        summary.print(&args);
    }
    let complete = counters.established as usize == args.connections;
    Ok(counters.errors() == 0 && complete)
}

/// The figures of a run, all threads merged.
struct Summary {
    /// Verified messages per second of the measured window.
    messages_per_sec: f64,
    /// Verified echo payload, MiB per second.
    mib_per_sec: f64,
    /// utime + stime of this process during the measured window.
    cpu_seconds: f64,
    /// Latencies in nanoseconds.
    hist: Histogram<u64>,
    /// Summed counters.
    counters: Counters,
}

impl Summary {
    fn us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    fn print(&self, args: &Args) {
        let c = &self.counters;
        println!(
            "{} msg/s, {:.2} MiB/s over {}s ({} messages, {} B, depth {}, {}/{} connections)",
            self.messages_per_sec.round(),
            self.mib_per_sec,
            args.duration,
            c.messages,
            args.size,
            args.depth,
            c.established,
            args.connections
        );
        println!(
            "latency us: p50 {:.1}  p90 {:.1}  p99 {:.1}  p99.9 {:.1}  max {:.1}",
            self.us(0.5),
            self.us(0.9),
            self.us(0.99),
            self.us(0.999),
            self.hist.max() as f64 / 1000.0
        );
        println!(
            "errors {}: {} connect failures, {} lost, {} mismatches ({} bytes), {} timeouts, \
             udp {} lost / {} truncated / {} late",
            c.errors(),
            c.connect_failures,
            c.connections_lost,
            c.mismatches,
            c.mismatched_bytes,
            c.timeouts,
            c.udp_lost,
            c.udp_truncated,
            c.udp_late
        );
        println!("loadgen cpu {:.2}s", self.cpu_seconds);
    }

    fn json(&self, args: &Args) -> String {
        let c = &self.counters;
        format!(
            concat!(
                "{{\"messages\":{},\"messages_per_sec\":{:.1},\"mib_per_sec\":{:.3},",
                "\"latency_us\":{{\"p50\":{:.2},\"p90\":{:.2},\"p99\":{:.2},\"p999\":{:.2},",
                "\"max\":{:.2},\"mean\":{:.2}}},",
                "\"errors\":{},\"mismatched_bytes\":{},\"mismatches\":{},",
                "\"connect_failures\":{},\"connections_lost\":{},\"timeouts\":{},",
                "\"udp_lost\":{},\"udp_truncated\":{},\"udp_late\":{},",
                "\"connections\":{{\"requested\":{},\"established\":{}}},",
                "\"cpu_seconds\":{:.3},\"duration_s\":{},\"size\":{},\"depth\":{},",
                "\"threads\":{},\"udp\":{},\"rate\":{}}}"
            ),
            c.messages,
            self.messages_per_sec,
            self.mib_per_sec,
            self.us(0.5),
            self.us(0.9),
            self.us(0.99),
            self.us(0.999),
            self.hist.max() as f64 / 1000.0,
            self.hist.mean() / 1000.0,
            c.errors(),
            c.mismatched_bytes,
            c.mismatches,
            c.connect_failures,
            c.connections_lost,
            c.timeouts,
            c.udp_lost,
            c.udp_truncated,
            c.udp_late,
            args.connections,
            c.established,
            self.cpu_seconds,
            args.duration,
            args.size,
            args.depth,
            args.threads,
            args.udp,
            args.rate.map_or("null".to_string(), |r| format!("{r}")),
        )
    }
}
