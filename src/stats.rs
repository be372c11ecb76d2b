//! Counters that show what the loop did, readable from the handler and from
//! other threads.
//!
//! The loop owns a plain `Stats` and bumps fields with ordinary additions (no
//! atomics on the hot path). Once per turn it copies the struct into a
//! mutex-guarded snapshot that [`Handle::stats`](crate::Handle::stats) reads,
//! so another thread sees figures at most one turn old.

use crate::close_reason::CloseReason;

/// Everything the reactor counts. All counters start at zero and only grow,
/// except the two gauges `open_connections` and `queued_output_bytes`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    /// Connections accepted from listeners (including rejected ones).
    pub accepted: u64,
    /// Accepted connections closed at once because `max_connections` was reached.
    pub rejected: u64,
    /// Outbound connections started with `Context::connect`.
    pub connects_started: u64,
    /// Connections closed, by reason; index with [`CloseReason::index`].
    pub closed_by_reason: [u64; CloseReason::COUNT],
    /// Bytes read from connections.
    pub bytes_in: u64,
    /// Bytes written to connections.
    pub bytes_out: u64,
    /// Calls to `poll` (one per turn, plus retries after `EINTR`).
    pub poll_calls: u64,
    /// Events returned by `poll`.
    pub events: u64,
    /// `read`/`recv` system calls on connections.
    pub read_syscalls: u64,
    /// `send`/`sendmsg` system calls on connections.
    pub write_syscalls: u64,
    /// Reads or writes that returned `WouldBlock`.
    pub would_blocks: u64,
    /// Times a connection or listener used up its per-turn budget and was
    /// put on the ready queue for the next turn.
    pub budget_yields: u64,
    /// Times a connection's queued output reached its high-water mark
    /// (it was then backpressured until it fell below low water).
    pub backpressure_events: u64,
    /// Sends made at once because a write took a queue to its high-water
    /// mark, instead of waiting for the end of the callback or the turn.
    pub write_throughs: u64,
    /// Times a connection stopped reading (held until a drain, at most
    /// `Config::fanout_hold`) because its input, fanned out to others, left
    /// one still taking bytes above high water.
    pub fanout_yields: u64,
    /// Events dropped because their connection closed earlier in the batch.
    pub stale_events: u64,
    /// Handler callbacks that panicked (each closed its connection, if any).
    pub handler_panics: u64,
    /// Times accepting paused because the process ran out of descriptors.
    pub accept_pauses: u64,
    /// Handler timers fired.
    pub timers_fired: u64,
    /// TLS handshakes completed, accepted and outbound.
    pub tls_handshakes: u64,
    /// TLS handshakes that ended without completing: a protocol error, a
    /// timeout, the peer leaving, or the connection closed meanwhile.
    pub tls_handshake_failures: u64,
    /// TLS connections whose peer ended TCP without a `close_notify`
    /// (closed with [`CloseReason::TlsTruncated`]).
    pub tls_truncations: u64,
    /// Gauge: accepted TLS connections whose handshake is in progress
    /// (at most `Config::max_tls_handshakes`).
    pub tls_handshakes_in_progress: u64,
    /// Gauge: connections currently held (any state but closed).
    pub open_connections: u64,
    /// Gauge: bytes queued for writing across all connections.
    pub queued_output_bytes: u64,
}

impl Stats {
    /// Connections closed for `reason`.
    pub fn closed(&self, reason: CloseReason) -> u64 {
        self.closed_by_reason[reason.index()]
    }

    /// Connections closed for any reason.
    pub fn closed_total(&self) -> u64 {
        self.closed_by_reason.iter().sum()
    }
}
