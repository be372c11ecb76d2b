//! Bounded waits and threads: polling a condition, joining a thread within
//! a limit, and running one body on many threads lined up at a barrier.
//!
//! Each wait has a limit and panics past it: a hang is a failure.

use std::sync::{mpsc, Arc, Barrier};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

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

/// Polls `check` every 5 ms until it holds; panics with `what` after `limit`.
pub fn wait_until(what: &str, limit: Duration, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < limit, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
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
