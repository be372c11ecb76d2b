//! What `/proc` says about a process: a server's resident and peak memory,
//! and this test process's open descriptors. Tests read these to check that
//! hostile input or a slow peer cost a server only what it should, and that
//! nothing leaks a descriptor.

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
