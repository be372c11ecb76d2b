//! What the bench reads from `/proc`: a process's (or process tree's) CPU
//! seconds, the host's steal, resident memory, open descriptors, the
//! descriptor limit and the machine summary.
//!
//! Every figure the servers are judged by that the load tool does not
//! report itself comes from here, so the units (USER_HZ ticks, KiB) and
//! the quirks of `/proc` (`stat` fields are counted after the command name,
//! which may hold spaces) are dealt with in one module.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// The hard descriptor limit, which children may raise their soft limit to.
pub(crate) fn hard_fd_limit() -> usize {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(4))
        .and_then(|v| v.parse().ok())
        .unwrap_or(1024)
}

/// A one-line summary of the machine for the report.
pub(crate) fn machine() -> String {
    let nproc = std::thread::available_parallelism().map_or(1, |n| n.get());
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown CPU")
        .trim()
        .to_string();
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let load: Vec<&str> = load.split_whitespace().take(3).collect();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!(
        "{nproc} CPUs, {model}, Linux {}, load average at start {}",
        kernel.trim(),
        load.join(" ")
    )
}

/// Clock ticks per second of `/proc` times (USER_HZ, what `getconf
/// CLK_TCK` prints): asked once, 100 (Linux's value everywhere) if getconf
/// cannot say.
fn clk_tck() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .stderr(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .and_then(|t| t.trim().parse::<f64>().ok())
            .filter(|t| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime of `pid` in seconds (ticks of 1/`clk_tck()` s). A zombie
/// (exited, not yet reaped) still has its stat, with every thread's time.
pub(crate) fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of proc(5); `rest` starts at field 3.
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / clk_tck())
}

/// `cpu_seconds` of a child that is finishing (its stdout reached EOF): once
/// it is a zombie, so its count is final, or at `limit` as it stands. The
/// caller must not have reaped it (its `/proc` entry would be gone).
pub(crate) fn final_cpu_seconds(pid: u32, limit: Duration) -> Option<f64> {
    let deadline = Instant::now() + limit;
    loop {
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        // Field 3 of proc(5), the first after the command name, is the state.
        let state = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .unwrap_or("");
        if matches!(state, "Z" | "X") || Instant::now() >= deadline {
            return cpu_seconds(pid);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The host's steal counter, from the aggregate `cpu` line of `/proc/stat`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct StealSample {
    /// Steal ticks (USER_HZ) since boot, summed over every CPU: the 8th
    /// value of the line, time the hypervisor ran something else while a
    /// CPU of this guest had work.
    ticks: f64,
    /// Online CPUs: the `cpuN` lines of the same read.
    cpus: usize,
}

fn steal_sample() -> Option<StealSample> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let mut lines = stat.lines();
    let total = lines.next()?.strip_prefix("cpu ")?;
    let ticks = total.split_whitespace().nth(7)?.parse().ok()?;
    let cpus = lines
        .filter(|l| {
            l.strip_prefix("cpu")
                .is_some_and(|n| n.starts_with(|c: char| c.is_ascii_digit()))
        })
        .count();
    Some(StealSample {
        ticks,
        cpus: cpus.max(1),
    })
}

/// Steal between two samples as a share of the host's CPU capacity over
/// `window_s` seconds (online CPUs × window); `None` without both samples.
pub(crate) fn steal_share(
    start: Option<StealSample>,
    end: Option<StealSample>,
    window_s: f64,
) -> Option<f64> {
    let (a, b) = (start?, end?);
    let capacity = b.cpus as f64 * window_s * clk_tck();
    (capacity > 0.0).then(|| (b.ticks - a.ticks).max(0.0) / capacity)
}

/// The live children of `pid` (processes whose parent it is), from `/proc`.
pub(crate) fn children(pid: u32) -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for entry in dir.flatten() {
        let Some(child) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{child}/stat")) else {
            continue;
        };
        // Field 4 of proc(5), the first after the command name, is the parent.
        let parent = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1))
            .and_then(|p| p.parse::<u32>().ok());
        if parent == Some(pid) {
            out.push(child);
        }
    }
    out
}

/// `cpu_seconds` of `pid` and its children: nginx's worker does the work
/// while its master sleeps, and a child's time reaches the parent's stat
/// only once the child exits.
pub(crate) fn tree_cpu_seconds(pid: u32) -> Option<f64> {
    let total = cpu_seconds(pid)?;
    Some(
        children(pid)
            .into_iter()
            .map(|child| cpu_seconds(child).unwrap_or(0.0))
            .sum::<f64>()
            + total,
    )
}

/// [`tree_cpu_seconds`] summed over `pids`: a server's processes (a TLS
/// terminator and the plain server behind it). A single process without
/// children costs one scan of `/proc` more than [`cpu_seconds`], read only
/// at a window's ends.
pub(crate) fn servers_cpu_seconds(pids: &[u32]) -> Option<f64> {
    pids.iter().map(|&pid| tree_cpu_seconds(pid)).sum()
}

/// Resident memory of `pid` in bytes (VmRSS).
pub(crate) fn rss_bytes(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Descriptors `pid` holds.
pub(crate) fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd")).map_or(0, |d| d.count())
}

/// One end of a measured window.
#[derive(Clone, Copy)]
pub(crate) struct Mark {
    /// Server CPU seconds.
    pub(crate) cpu: f64,
    /// When.
    pub(crate) at: Instant,
    /// The host's steal counter, if `/proc/stat` could be read.
    pub(crate) steal: Option<StealSample>,
}

impl Mark {
    /// Now, with the server's CPU seconds `cpu` just read.
    pub(crate) fn now(cpu: f64) -> Mark {
        Mark {
            cpu,
            at: Instant::now(),
            steal: steal_sample(),
        }
    }
}
