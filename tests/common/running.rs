//! A reactor run in-process on its own thread, listening on 127.0.0.1:0:
//! starting one, waiting on its stats, stopping it and getting it back.
//!
//! The loop thread is stopped when a [`Running`] is dropped, so a failing
//! test never leaves a loop behind.

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use reactor::{Config, Handle, Handler, ListenerId, Reactor, Stats};

use super::Echo;

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
    start_listening(handler, config, |reactor, addr| reactor.listen(addr))
}

/// [`start`] with the listener made by `listen` (a TLS one, say) on
/// 127.0.0.1:0.
pub fn start_listening<H, L>(handler: H, config: Config, listen: L) -> Running<H>
where
    H: Handler + Send + 'static,
    H::State: Send,
    L: FnOnce(&mut Reactor<H>, SocketAddr) -> std::io::Result<ListenerId> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut reactor = Reactor::new(handler, config).expect("reactor");
        let listener = listen(&mut reactor, "127.0.0.1:0".parse().unwrap()).expect("listen");
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
