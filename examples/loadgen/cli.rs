//! The command line: loadgen's flags and the checks that reject nonsense
//! before any socket opens.
//!
//! The flags are an interface, not a detail: `bench/load/loadgen.rs`,
//! `tests/loadgen.rs` and `measure_echo.sh` pass them by name. Renaming one
//! or changing a default breaks them.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;

/// Largest datagram read; bigger than any `--size` accepted, so a datagram
/// longer than sent is seen whole rather than silently cut.
pub const MAX_DATAGRAM: usize = 65_536;

/// Command-line flags.
#[derive(Parser, Debug, Clone)]
#[command(about = "Verifying load generator for echo servers")]
pub struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:65432")]
    pub addr: SocketAddr,
    /// Connections (UDP: sockets) in total, over all threads.
    #[arg(long, default_value_t = 100)]
    pub connections: usize,
    /// Message size in bytes (UDP: at least 16).
    #[arg(long, default_value_t = 64)]
    pub size: usize,
    /// Messages in flight per connection (pipelining); 0 opens the
    /// connections and sends nothing (idle-memory measurements).
    #[arg(long, default_value_t = 1)]
    pub depth: usize,
    /// Seconds measured, after the warm-up.
    #[arg(long, default_value_t = 5.0)]
    pub duration: f64,
    /// Seconds of load before measuring starts.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Open loop: total messages per second over all connections; latency
    /// counts from each message's intended send time.
    #[arg(long)]
    pub rate: Option<f64>,
    /// Datagram mode against a UDP echo server: one socket per connection.
    #[arg(long)]
    pub udp: bool,
    /// Reactor threads, each with its share of the connections.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Seconds a message may stay unanswered (and a connect may take)
    /// before it counts as a timeout.
    #[arg(long, default_value_t = 5.0)]
    pub timeout: f64,
    /// Outbound connects in progress at once, per thread: more would only
    /// overflow the server's accept backlog and wait for SYN retransmits.
    #[arg(long, default_value_t = 256)]
    pub connect_burst: usize,
    /// Print one JSON object on stdout instead of the text summary.
    #[arg(long)]
    pub json: bool,
    /// Connect with TLS (a build with `--features tls`); needs --tls-ca or
    /// --tls-insecure. Every connection completes a handshake before it
    /// counts as established, and the echo is verified as plaintext.
    #[arg(long)]
    pub tls: bool,
    /// With --tls: trust the CA certificates in this PEM file.
    #[arg(long, value_name = "PATH")]
    pub tls_ca: Option<PathBuf>,
    /// With --tls: accept ANY server certificate (self-signed test
    /// certificates; the handshake's signatures are still checked).
    #[arg(long)]
    pub tls_insecure: bool,
    /// With --tls: the name sent as SNI and checked against the
    /// certificate [default: localhost].
    #[arg(long, value_name = "NAME")]
    pub tls_server_name: Option<String>,
}

/// The longest `--duration`, `--warmup` or `--timeout` taken: a year.
const MAX_SECONDS: f64 = 365.0 * 24.0 * 3600.0;

impl Args {
    /// Refuses flag combinations the generator cannot honour, with the
    /// message printed before exiting with status 2.
    pub fn validate(&self) -> Result<(), String> {
        if self.size == 0 || self.size > 1 << 20 {
            return Err("--size must be 1 ..= 1048576".into());
        }
        if self.udp && !(16..=MAX_DATAGRAM - 1024).contains(&self.size) {
            return Err(format!(
                "--udp needs --size in 16 ..= {}",
                MAX_DATAGRAM - 1024
            ));
        }
        self.validate_tls()?;
        if self.threads == 0 || self.connections == 0 {
            return Err("--threads and --connections must be positive".into());
        }
        if self.depth > 4096 {
            return Err("--depth at most 4096".into());
        }
        if !(self.duration > 0.0 && self.warmup >= 0.0 && self.timeout > 0.0) {
            return Err("--duration and --timeout must be positive, --warmup 0 or more".into());
        }
        // Deadlines are `Instant`s: a duration beyond a year (or infinite)
        // would panic converting or adding, so it is a usage error instead.
        for (flag, seconds) in [
            ("--duration", self.duration),
            ("--warmup", self.warmup),
            ("--timeout", self.timeout),
        ] {
            if seconds.is_nan() || seconds > MAX_SECONDS {
                return Err(format!("{flag} must be at most {MAX_SECONDS} seconds"));
            }
        }
        Ok(())
    }

    /// The TLS flags' part of `validate`.
    fn validate_tls(&self) -> Result<(), String> {
        let any = self.tls
            || self.tls_ca.is_some()
            || self.tls_insecure
            || self.tls_server_name.is_some();
        if !any {
            return Ok(());
        }
        if !cfg!(feature = "tls") {
            return Err("this build has no TLS: rebuild with --features tls".into());
        }
        if !self.tls {
            return Err("--tls-ca, --tls-insecure and --tls-server-name need --tls".into());
        }
        if self.udp {
            return Err("--tls is for TCP: not with --udp".into());
        }
        if self.tls_ca.is_some() == self.tls_insecure {
            return Err("--tls needs exactly one of --tls-ca PATH and --tls-insecure".into());
        }
        #[cfg(feature = "tls")]
        if reactor::tls::ServerName::try_from(self.server_name()).is_err() {
            return Err(format!(
                "--tls-server-name {:?} is not a DNS name or IP address",
                self.server_name()
            ));
        }
        Ok(())
    }

    /// `--tls-server-name`, or its default.
    // Read only by the build with the feature.
    #[allow(dead_code)]
    pub fn server_name(&self) -> &str {
        self.tls_server_name.as_deref().unwrap_or("localhost")
    }

    /// Threads actually started: never more than there are connections.
    pub fn thread_count(&self) -> usize {
        self.threads.min(self.connections)
    }

    /// `--timeout` as a duration.
    pub fn timeout(&self) -> Duration {
        Duration::from_secs_f64(self.timeout)
    }

    /// `--size` as the stream arithmetic's unit.
    pub fn size_u64(&self) -> u64 {
        self.size as u64
    }

    /// `--depth` as the stream arithmetic's unit.
    pub fn depth_u64(&self) -> u64 {
        self.depth as u64
    }
}
