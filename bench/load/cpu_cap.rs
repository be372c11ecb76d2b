//! The cgroup CPU cap ([`CpuCap`]) that holds a server to a share of one
//! CPU in the `-cap50` scenarios.
//!
//! Apart from server start-up because it has its own lifetime rule (made
//! before the server, removed after it has stopped) and its own failure
//! mode: it needs root, and without it the capped scenarios are skipped,
//! not failed.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::procfs::children;

/// Where CPU-capping cgroups are made: which cgroup version, and the
/// directory new cgroups go under.
#[derive(Clone, Debug)]
enum CgroupRoot {
    /// cgroup v2: the unified hierarchy's root, `/sys/fs/cgroup`, whose
    /// `cgroup.controllers` lists `cpu`; quotas go in `cpu.max`.
    V2(PathBuf),
    /// cgroup v1: the `cpu` controller's hierarchy, `/sys/fs/cgroup/cpu`;
    /// quotas go in `cpu.cfs_period_us` and `cpu.cfs_quota_us`.
    V1(PathBuf),
}

/// Period of the CPU quota, µs. Short, so a capped server is throttled in
/// small slices (at most 5 ms off per 10 ms at 50%) rather than seconds.
pub(crate) const CAP_PERIOD_US: u32 = 10_000;

/// A fresh cgroup that holds the processes put in it to a share of one
/// CPU (a CFS bandwidth quota), removed when dropped. Create it before the
/// server starts so that it is dropped after the server's [`Guard`]: an
/// occupied cgroup cannot be removed.
pub(crate) struct CpuCap {
    /// The cgroup's directory: made by [`CpuCap::create`], removed (rmdir)
    /// by `drop`; unique to this bench process and this cap.
    dir: PathBuf,
    /// The `cgroup.procs` of the parent cgroup: where `drop` moves any
    /// process still left in `dir` so that `dir` can be removed.
    parent_procs: PathBuf,
}

impl CpuCap {
    /// The cgroup root of this machine, or why CPU cannot be capped here.
    fn root() -> Result<CgroupRoot, String> {
        let v2 = Path::new("/sys/fs/cgroup");
        let controllers = std::fs::read_to_string(v2.join("cgroup.controllers"));
        if let Ok(list) = &controllers {
            if list.split_whitespace().any(|c| c == "cpu") {
                return Ok(CgroupRoot::V2(v2.to_path_buf()));
            }
        }
        let v1 = v2.join("cpu");
        if v1.join("cpu.cfs_quota_us").is_file() {
            return Ok(CgroupRoot::V1(v1));
        }
        Err(if controllers.is_ok() {
            "cgroup v2 without the cpu controller".into()
        } else {
            "no cgroup cpu controller (/sys/fs/cgroup/cgroup.controllers lacks cpu, no /sys/fs/cgroup/cpu)".into()
        })
    }

    /// Makes a cgroup `reactor-bench-<bench pid>-<n>` limited to `percent`
    /// of one CPU. Fails, leaving no cgroup behind, when cgroups cannot be
    /// made or limited: not root, read-only, no cpu controller. (On v2 the
    /// `+cpu` it may have enabled in the root's `cgroup.subtree_control`
    /// stays enabled.)
    pub(crate) fn create(percent: u32) -> Result<CpuCap, String> {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let root = Self::root()?;
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let name = format!("reactor-bench-{}-{n}", std::process::id());
        let set = |path: &Path, value: &str| {
            std::fs::write(path, value).map_err(|e| format!("{}: {e}", path.display()))
        };
        let base = match &root {
            CgroupRoot::V2(base) | CgroupRoot::V1(base) => base.clone(),
        };
        if let CgroupRoot::V2(base) = &root {
            // A child's cpu.max exists only with cpu enabled for the
            // children of its parent.
            let control = base.join("cgroup.subtree_control");
            let enabled = std::fs::read_to_string(&control).unwrap_or_default();
            if !enabled.split_whitespace().any(|c| c == "cpu") {
                set(&control, "+cpu")?;
            }
        }
        let dir = base.join(name);
        std::fs::create_dir(&dir).map_err(|e| format!("mkdir {}: {e}", dir.display()))?;
        // From here `drop` removes the directory, whatever fails next.
        let cap = CpuCap {
            dir,
            parent_procs: base.join("cgroup.procs"),
        };
        let quota = CAP_PERIOD_US * percent.clamp(1, 100) / 100;
        match root {
            CgroupRoot::V2(_) => set(
                &cap.dir.join("cpu.max"),
                &format!("{quota} {CAP_PERIOD_US}"),
            )?,
            CgroupRoot::V1(_) => {
                set(
                    &cap.dir.join("cpu.cfs_period_us"),
                    &CAP_PERIOD_US.to_string(),
                )?;
                set(&cap.dir.join("cpu.cfs_quota_us"), &quota.to_string())?;
            }
        }
        Ok(cap)
    }

    /// Moves `pid` and its children (nginx: master, then worker) into the
    /// cgroup, with all their threads. The parent goes first, so a child it
    /// forks meanwhile is born inside; then every one is checked to be in.
    pub(crate) fn confine(&self, pid: u32) -> Result<(), String> {
        let procs = self.dir.join("cgroup.procs");
        let add = |p: u32| {
            std::fs::write(&procs, p.to_string())
                .map_err(|e| format!("{} < {p}: {e}", procs.display()))
        };
        add(pid)?;
        let mut all = vec![pid];
        for child in children(pid) {
            add(child)?;
            all.push(child);
        }
        let inside =
            std::fs::read_to_string(&procs).map_err(|e| format!("{}: {e}", procs.display()))?;
        let inside: Vec<u32> = inside.lines().filter_map(|l| l.parse().ok()).collect();
        match all.iter().find(|p| !inside.contains(p)) {
            Some(p) => Err(format!("process {p} is not in {}", self.dir.display())),
            None => Ok(()),
        }
    }
}

impl Drop for CpuCap {
    /// rmdir, retried for up to two seconds while the server's processes
    /// finish exiting; then any still inside are moved to the parent
    /// cgroup (not killed) and it is tried once more. A cgroup that still
    /// cannot go is reported on stderr, never a failure.
    fn drop(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(2);
        loop {
            match std::fs::remove_dir(&self.dir) {
                Ok(()) => return,
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
                Err(_) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                Err(_) => break,
            }
        }
        let left = std::fs::read_to_string(self.dir.join("cgroup.procs")).unwrap_or_default();
        for pid in left.lines() {
            let _ = std::fs::write(&self.parent_procs, pid);
        }
        if let Err(e) = std::fs::remove_dir(&self.dir) {
            eprintln!(
                "load: cannot remove cgroup {} ({e}); processes left: {:?}",
                self.dir.display(),
                left.lines().collect::<Vec<_>>()
            );
        }
    }
}
