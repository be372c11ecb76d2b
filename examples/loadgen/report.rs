//! The verdict of a run: what each thread counted, and the summary printed
//! on stdout as text or as one JSON object.
//!
//! The output is parsed by other programs (`bench/load/loadgen.rs` reads
//! the JSON keys, `tests/loadgen.rs` and `measure_echo.sh` too): keys,
//! order and number formats stay exactly as they are; a new key goes at
//! the end (as the `tls` ones did). The JSON is written
//! by hand because serde is not a dependency.

use hdrhistogram::Histogram;

use crate::cli::Args;

/// Counters one thread keeps; summed over threads at the end.
#[derive(Default, Clone, Copy, Debug)]
pub struct Counters {
    /// Messages echoed and verified inside the measured window.
    pub messages: u64,
    /// Connections (sockets) that came up.
    pub established: u64,
    /// Connects refused, failed or timed out.
    pub connect_failures: u64,
    /// Connections closed by anything but us before the run ended.
    pub connections_lost: u64,
    /// Chunks of echo that differed from what was sent (the connection is
    /// closed at the first one: after a shift every later byte differs).
    pub mismatches: u64,
    /// Bytes that differed, or arrived beyond what was sent.
    pub mismatched_bytes: u64,
    /// Connections closed because a message went unanswered for `--timeout`,
    /// plus messages still unanswered when the final drain gave up.
    pub timeouts: u64,
    /// Datagrams not echoed within `--timeout`.
    pub udp_lost: u64,
    /// Datagrams echoed shorter than sent.
    pub udp_truncated: u64,
    /// Datagrams echoed after being declared lost (not an error: the loss
    /// was counted).
    pub udp_late: u64,
    /// `--tls`: handshakes completed (the reactor's count).
    pub tls_handshakes: u64,
    /// `--tls`: handshakes that failed (not errors of their own: each is
    /// also a connect failure).
    pub tls_handshake_failures: u64,
}

impl Counters {
    /// Adds another thread's counters to these.
    pub fn add(&mut self, o: &Counters) {
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
        self.tls_handshakes += o.tls_handshakes;
        self.tls_handshake_failures += o.tls_handshake_failures;
    }

    /// Everything that makes the run fail (late datagrams do not: their
    /// loss was already counted).
    pub fn errors(&self) -> u64 {
        self.connect_failures
            + self.connections_lost
            + self.mismatches
            + self.timeouts
            + self.udp_lost
            + self.udp_truncated
    }
}

/// The figures of a run, all threads merged.
pub struct Summary {
    /// Verified messages per second of the measured window.
    pub messages_per_sec: f64,
    /// Verified echo payload, MiB per second.
    pub mib_per_sec: f64,
    /// utime + stime of this process during the measured window.
    pub cpu_seconds: f64,
    /// Latencies in nanoseconds.
    pub hist: Histogram<u64>,
    /// Summed counters.
    pub counters: Counters,
}

impl Summary {
    /// Merges the threads' results; rates are over `--duration`, the
    /// window every thread counted in.
    pub fn new(args: &Args, hist: Histogram<u64>, counters: Counters, cpu_seconds: f64) -> Self {
        let seconds = args.duration;
        Summary {
            messages_per_sec: counters.messages as f64 / seconds,
            mib_per_sec: (counters.messages * args.size_u64()) as f64 / seconds / (1 << 20) as f64,
            cpu_seconds,
            hist,
            counters,
        }
    }

    /// Latency quantile `q` in microseconds (0 when nothing was measured).
    fn us(&self, q: f64) -> f64 {
        if self.hist.is_empty() {
            return 0.0;
        }
        self.hist.value_at_quantile(q) as f64 / 1000.0
    }

    /// The four-line text summary.
    pub fn print(&self, args: &Args) {
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
        if args.tls {
            println!(
                "tls: {} handshakes, {} failed (server name {}, {})",
                c.tls_handshakes,
                c.tls_handshake_failures,
                args.server_name(),
                if args.tls_insecure {
                    "any certificate accepted"
                } else {
                    "certificate verified against --tls-ca"
                }
            );
        }
        println!("loadgen cpu {:.2}s", self.cpu_seconds);
    }

    /// The summary as one line of JSON.
    pub fn json(&self, args: &Args) -> String {
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
                "\"threads\":{},\"udp\":{},\"rate\":{},",
                "\"tls\":{},\"tls_handshakes\":{},\"tls_handshake_failures\":{}}}"
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
            args.tls,
            c.tls_handshakes,
            c.tls_handshake_failures,
        )
    }
}
