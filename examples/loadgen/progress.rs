//! Everything loadgen says on stderr while it runs: the connection count,
//! a progress line per second, and the `loadgen: measuring` /
//! `loadgen: measured` markers, plus this process's CPU time between them.
//!
//! The markers are an interface: `bench/load/loadgen.rs` samples the
//! server's CPU the moment it reads each one, so they must be printed as
//! close as possible to the window's edges, by the code that times them.
//! That is why one worker (the lead, thread 0) narrates from its own
//! reactor timers, reading figures every worker publishes here.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

/// Figures the workers publish for the narrator.
pub struct Progress {
    /// Messages echoed since the start, all threads.
    pub messages: AtomicU64,
    /// Connections up now, all threads.
    pub up: AtomicU64,
    /// Each thread's p99 of its last full second, in nanoseconds; one entry
    /// per thread, so no thread's figure wipes another's.
    pub p99_ns: Vec<AtomicU64>,
}

impl Progress {
    /// Nothing counted yet, for `threads` workers.
    pub fn new(threads: usize) -> Self {
        Progress {
            messages: AtomicU64::new(0),
            up: AtomicU64::new(0),
            p99_ns: (0..threads).map(|_| AtomicU64::new(0)).collect(),
        }
    }

    /// One more connection (or socket) up.
    pub fn connection_up(&self) {
        self.up.fetch_add(1, Ordering::Relaxed);
    }

    /// One connection fewer up.
    pub fn connection_down(&self) {
        self.up.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The lead worker's voice: prints the progress lines and markers and
/// reads the process's CPU time at the markers.
pub struct Narrator {
    /// `--connections`, for the "up" figures.
    connections: usize,
    /// When the last progress line was printed (or the load began), and
    /// the message count then: the next line's rate is over this interval.
    last: (Instant, u64),
    /// Progress lines printed so far (the line's seconds column).
    tick: u64,
    /// Process CPU seconds at `loadgen: measuring`; `None` before it.
    cpu_at_start: Option<f64>,
    /// Process CPU seconds at `loadgen: measured`; `None` before it.
    cpu_at_end: Option<f64>,
}

impl Narrator {
    /// A narrator for a run of `connections` connections.
    pub fn new(connections: usize) -> Self {
        Narrator {
            connections,
            last: (Instant::now(), 0),
            tick: 0,
            cpu_at_start: None,
            cpu_at_end: None,
        }
    }

    /// Every thread finished connecting: says how many made it, and starts
    /// the first progress interval.
    pub fn load_begins(&mut self, progress: &Progress) {
        let up = progress.up.load(Ordering::Relaxed);
        eprintln!("loadgen: {up}/{} connections up", self.connections);
        self.last = (Instant::now(), progress.messages.load(Ordering::Relaxed));
    }

    /// The measured window opens.
    pub fn measuring(&mut self) {
        self.cpu_at_start = Some(cpu_seconds());
        eprintln!("loadgen: measuring");
    }

    /// The measured window closes.
    pub fn measured(&mut self) {
        self.cpu_at_end = Some(cpu_seconds());
        eprintln!("loadgen: measured");
    }

    /// The once-a-second line: the rate since the last one, the worst
    /// thread's p99 of its last second, and the connections up.
    pub fn second(&mut self, progress: &Progress) {
        let now = Instant::now();
        self.tick += 1;
        let messages = progress.messages.load(Ordering::Relaxed);
        let rate = (messages - self.last.1) as f64 / now.duration_since(self.last.0).as_secs_f64();
        let p99 = progress
            .p99_ns
            .iter()
            .map(|p| p.load(Ordering::Relaxed))
            .max()
            .unwrap_or(0) as f64
            / 1000.0;
        let up = progress.up.load(Ordering::Relaxed);
        eprintln!(
            "loadgen: {:>3}s {rate:>10.0} msg/s  p99 {p99:>8.1} us  {up}/{} up",
            self.tick, self.connections
        );
        self.last = (now, messages);
    }

    /// This process's CPU seconds over the measured window (0 if it never
    /// opened).
    pub fn window_cpu(&self) -> f64 {
        match (self.cpu_at_start, self.cpu_at_end) {
            (Some(start), Some(end)) => end - start,
            _ => 0.0,
        }
    }
}

/// utime + stime of this process (all threads), in seconds (ticks of
/// 1/100 s); 0 where `/proc` cannot tell.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
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
