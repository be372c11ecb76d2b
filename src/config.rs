//! Configuration: every limit that bounds a reactor's memory and work.
//!
//! One plain struct with public fields and a `Default`, so a caller writes
//! `Config { max_connections: 100, ..Config::default() }` and reads every knob
//! in one place. [`Config::validate`] turns contradictory settings into a
//! clear error before the loop starts instead of odd behaviour later.

use std::fmt;
use std::time::Duration;

use crate::limits::{derived_high_water, derived_low_water, Limits, SoftLimit};

/// Settings for a [`Reactor`](crate::Reactor).
///
/// The defaults suit a busy server on one core: 64 KiB reads, fair budgets,
/// backpressure at 256 KiB of queued output and a hard cap at 4 MiB.
/// The limits of each connection can be changed while it is open with
/// [`Context::set_limits`](crate::Context::set_limits).
#[derive(Clone, Debug)]
pub struct Config {
    /// Length of the accept queue asked of `listen(2)`. Default 1024 (mio's own
    /// `bind` uses 128, which overflows under a burst of connects). The kernel
    /// silently caps it at `net.core.somaxconn`.
    pub backlog: u32,
    /// Set `SO_REUSEPORT` on listeners so several processes can share a port.
    pub reuse_port: bool,
    /// Set `TCP_NODELAY` on every connection: replies go out at once instead
    /// of waiting for Nagle's algorithm to coalesce them.
    pub nodelay: bool,
    /// `TCP_NOTSENT_LOWAT` on every connection (Linux): the kernel keeps at
    /// most about this many bytes that the peer's window has not yet let it
    /// send, and reports the socket writable again once below half of it.
    /// Bytes a slow reader has not taken then wait in the connection's own
    /// queue, where its limits and the fan-out hold see them, instead of
    /// hiding in a send buffer the kernel grows to 4 MiB; and a reader that
    /// is slow but reading shows progress at this granularity. A fast
    /// reader is unaffected (its bytes leave at once). `None`: the kernel's
    /// default (no limit).
    pub notsent_lowat: Option<u32>,
    /// Most connections open at once (accepted plus outbound). An accepted
    /// connection over this limit is closed at once and counted as rejected.
    /// Default: the soft descriptor limit minus [`RESERVED_DESCRIPTORS`].
    pub max_connections: usize,
    /// Size of the one scratch buffer every read lands in. Always > 0.
    pub read_buffer_size: usize,
    /// Reads one connection may make in one turn before yielding. Always > 0.
    pub read_budget_reads: usize,
    /// Bytes one connection may read in one turn before yielding. Always > 0.
    pub read_budget_bytes: usize,
    /// Connections accepted per listener per turn before yielding to the
    /// connections already open. Always > 0.
    pub accepts_per_turn: usize,
    /// Most unconsumed input kept for one connection: a peer that sends a
    /// message larger than this is closed with [`Limit::Input`](crate::Limit).
    pub max_input: usize,
    /// Queued output at or above which a connection is backpressured: it is
    /// not read, its unconsumed input is not offered again, and each write
    /// to it is sent at once (write-through). `None`: a quarter of
    /// `max_output`, at most 256 KiB. Invariant: `<= max_output`.
    pub output_high_water: Option<usize>,
    /// Queued output below which a backpressured connection resumes (and
    /// `Handler::drained` runs). `None`: a quarter of the high-water mark.
    /// Invariant: below the high-water mark.
    pub output_low_water: Option<usize>,
    /// Hard cap on queued output: a write past it closes the connection with
    /// [`Limit::Output`](crate::Limit) at once.
    pub max_output: usize,
    /// Soft cap on queued output, enforced over time (Redis's
    /// `client-output-buffer-limit` soft limit). `None`: none.
    pub soft_output: Option<SoftLimit>,
    /// Fan-out hold: a connection whose input, fanned out, left other
    /// connections above their high-water marks is not read again until
    /// every connection holding someone has drained below it (the hold is
    /// one for the whole loop), or for at most this long. Readers that keep up
    /// are never outrun by a burst; one that reads more slowly than one
    /// read's amplification per hold falls behind and meets its limits
    /// instead of pacing everyone. Always > 0.
    pub fanout_hold: Duration,
    /// A reader whose socket took no bytes for this long has stalled (it
    /// stopped reading) and holds no fan-out: its limits deal with it, and
    /// it slows the others only this long, once. By default longer than
    /// `fanout_hold`, because a reader's progress shows only when its kernel
    /// opens the TCP window again, which on Linux waits until a sixteenth of
    /// its receive buffer (up to 6 MiB) is free. Always > 0.
    pub fanout_stall: Duration,
    /// Idle timeout given to every new connection (`None`: never).
    pub idle_timeout: Option<Duration>,
    /// How long a connection closed after flushing waits for the peer's FIN
    /// before the socket is closed (see `docs/architecture.md`, lingering).
    pub linger_timeout: Duration,
    /// Delay before accepting again after the process ran out of descriptors.
    pub accept_retry_delay: Duration,
    /// TLS (the `tls` feature): how long a handshake may take, from the
    /// accept (or the completed connect) to the handshake's end. A client
    /// that sends half a ClientHello and waits holds a slot and a session
    /// only this long. Default 10 s. Always > 0.
    pub tls_handshake_timeout: Duration,
    /// How long a connection on a listener asking for the PROXY protocol
    /// may take to send its header (the specification suggests 3 s, the
    /// default). Always > 0.
    pub proxy_header_timeout: Duration,
    /// TLS: most handshakes of accepted connections in progress at once.
    /// A handshake costs far more CPU than a message, so a burst of new
    /// clients is taken in at this pace: at the cap, TLS listeners stop
    /// accepting and the kernel's backlog holds the rest until a handshake
    /// ends (HAProxy's `maxsslconn` idea). Default 256. Always > 0.
    pub max_tls_handshakes: usize,
    /// Resolution of the timing wheel. Timers fire up to one tick late.
    pub timer_tick: Duration,
    /// Capacity of the event buffer handed to each `poll`.
    pub events_capacity: usize,
}

/// Descriptors kept back from the default connection limit for listeners,
/// the poll instance, the waker, log files and the like.
pub const RESERVED_DESCRIPTORS: usize = 32;

impl Default for Config {
    fn default() -> Self {
        Config {
            backlog: 1024,
            reuse_port: false,
            nodelay: true,
            notsent_lowat: Some(16 * 1024),
            max_connections: default_max_connections(),
            read_buffer_size: 64 * 1024,
            read_budget_reads: 16,
            read_budget_bytes: 256 * 1024,
            accepts_per_turn: 256,
            max_input: 1024 * 1024,
            output_high_water: None,
            output_low_water: None,
            max_output: 4 * 1024 * 1024,
            soft_output: None,
            fanout_hold: Duration::from_millis(50),
            fanout_stall: Duration::from_millis(250),
            idle_timeout: None,
            linger_timeout: Duration::from_secs(2),
            accept_retry_delay: Duration::from_millis(100),
            tls_handshake_timeout: Duration::from_secs(10),
            proxy_header_timeout: Duration::from_secs(3),
            max_tls_handshakes: 256,
            timer_tick: Duration::from_millis(1),
            events_capacity: 1024,
        }
    }
}

impl Config {
    /// The limits every new connection starts with, water marks resolved.
    pub fn limits(&self) -> Limits {
        let high = self
            .output_high_water
            .unwrap_or_else(|| derived_high_water(self.max_output));
        Limits {
            max_input: self.max_input,
            output_high_water: high,
            output_low_water: self
                .output_low_water
                .unwrap_or_else(|| derived_low_water(high)),
            max_output: self.max_output,
            soft_output: self.soft_output,
        }
    }

    /// Checks that the settings agree with each other.
    ///
    /// ```
    /// let bad = reactor::Config { output_low_water: Some(10), output_high_water: Some(5), ..Default::default() };
    /// assert!(bad.validate().is_err());
    /// // Setting only the cap is enough: the water marks follow it.
    /// let small = reactor::Config { max_output: 64 * 1024, ..Default::default() };
    /// assert!(small.validate().is_ok());
    /// assert!(reactor::Config::default().validate().is_ok());
    /// ```
    pub fn validate(&self) -> Result<(), ConfigError> {
        let positive = [
            ("read_buffer_size", self.read_buffer_size),
            ("read_budget_reads", self.read_budget_reads),
            ("read_budget_bytes", self.read_budget_bytes),
            ("accepts_per_turn", self.accepts_per_turn),
            ("events_capacity", self.events_capacity),
            ("max_input", self.max_input),
            ("max_tls_handshakes", self.max_tls_handshakes),
        ];
        for (name, value) in positive {
            if value == 0 {
                return Err(ConfigError(format!("{name} must be greater than zero")));
            }
        }
        self.limits().validate().map_err(|e| ConfigError(e.0))?;
        if self.fanout_hold.is_zero() || self.fanout_stall.is_zero() {
            return Err(ConfigError(
                "fanout_hold and fanout_stall must be greater than zero".into(),
            ));
        }
        if self.proxy_header_timeout.is_zero() {
            return Err(ConfigError(
                "proxy_header_timeout must be greater than zero".into(),
            ));
        }
        if self.tls_handshake_timeout.is_zero() {
            return Err(ConfigError(
                "tls_handshake_timeout must be greater than zero".into(),
            ));
        }
        if self.timer_tick.is_zero() {
            return Err(ConfigError("timer_tick must be greater than zero".into()));
        }
        if self.max_connections >= crate::token::MAX_CONNECTIONS {
            return Err(ConfigError(format!(
                "max_connections ({}) must be below {}",
                self.max_connections,
                crate::token::MAX_CONNECTIONS
            )));
        }
        Ok(())
    }
}

/// A contradiction in a [`Config`], described in words.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "invalid reactor configuration: {}", self.0)
    }
}

impl std::error::Error for ConfigError {}

/// The soft `RLIMIT_NOFILE` of this process, when it can be read.
///
/// Read from `/proc/self/limits` because the library may not call `getrlimit`
/// without `unsafe` or a `libc` dependency; elsewhere this returns `None`.
pub fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    let soft = line.split_whitespace().nth(3)?;
    soft.parse().ok()
}

fn default_max_connections() -> usize {
    match descriptor_limit() {
        Some(limit) => limit.saturating_sub(RESERVED_DESCRIPTORS).max(1),
        None => 1024 - RESERVED_DESCRIPTORS,
    }
}
