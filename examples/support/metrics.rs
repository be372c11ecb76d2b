//! `--metrics ADDR`: the example servers' Prometheus endpoint, served by the
//! loop itself (included with `#[path = "support/metrics.rs"] mod metrics;`).
//!
//! A [`MetricsEndpoint`] owns its own listener and its scrape connections,
//! registered with the loop as handler sources
//! ([`Context::register_source`]), the way `server.rs` registers the signal
//! pipe. So no thread, and nothing on the server's data path: a wrapper
//! `Handler` delegating to the protocol's handler cannot be written, since
//! every callback's `Context<'_, H>` is typed by the handler it belongs to
//! (an inner handler cannot be given the wrapper's context). Scrape
//! connections are not the reactor's connections either, so they do not
//! show in the figures they report (`reactor_accepted_total` counts
//! clients only). Routing costs one comparison per `source_ready` call and
//! nothing per connection callback; with `--metrics` absent, nothing.
//!
//! The exposition is the Prometheus text format 0.0.4, written by the
//! `prometheus` crate's `TextEncoder` from metric families built from
//! [`Stats`] at scrape time (the scrape does not walk connections).
//! Not prometheus-client: it writes OpenMetrics only, whose counter family
//! `x` with sample `x_total` Debian's `promtool check metrics` (2.42)
//! rejects as a metric without help text.
//!
//! With several loops (a `--threads` flag, not there yet) each loop's
//! figures would carry a `loop` label; today there is one loop, so none.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use reactor::mio::net::{TcpListener, TcpStream};
use reactor::{Context, DurationHistogram, Handler, Interest, SourceId, Stats};

/// A request head longer than this is answered 431 and closed.
const MAX_HEAD: usize = 8 * 1024;

/// Scrape connections held at once; a newcomer beyond it closes the oldest
/// (no timers here, so this is what bounds a client that never sends).
const MAX_SCRAPES: usize = 16;

/// The `reason` label of `reactor_closed_total`, by `CloseReason::index`.
/// Payloads (an `io::ErrorKind`, which limit) are not counted apart, so
/// they are not labels either.
pub const CLOSE_REASONS: [&str; reactor::CloseReason::COUNT] = [
    "peer_closed",
    "reset",
    "error",
    "idle_timeout",
    "limit_exceeded",
    "closed_locally",
    "shutdown",
    "connect_failed",
    "connect_timeout",
    "handler_panic",
    "aborted",
    "tls_error",
    "tls_truncated",
    "tls_handshake_timeout",
    "bad_proxy_header",
    "proxy_header_timeout",
];

/// The metrics listener and the scrapes it accepted.
pub struct MetricsEndpoint {
    /// The listening socket; `None` without `--metrics`.
    listener: Option<TcpListener>,
    /// The listener's id in the loop, once registered.
    source: Option<SourceId>,
    /// Open scrape connections, oldest first.
    scrapes: Vec<Scrape>,
}

/// One HTTP exchange on a scrape connection.
struct Scrape {
    /// The socket, non-blocking, registered for both directions.
    stream: TcpStream,
    /// Its id in the loop.
    source: SourceId,
    /// The request head read so far (until the answer is built).
    head: Vec<u8>,
    /// The response; empty until the head is complete.
    response: Vec<u8>,
    /// How much of `response` the socket took.
    written: usize,
}

/// What to do with a scrape after it was served an event.
enum Next {
    /// Wait for its next event.
    Keep,
    /// Close it: answered in full, or broken.
    Close,
}

impl MetricsEndpoint {
    /// Binds `addr`, or makes an endpoint that does nothing for `None`.
    pub fn bind(addr: Option<SocketAddr>) -> io::Result<Self> {
        let listener = match addr {
            Some(addr) => Some(TcpListener::bind(addr).map_err(|e| {
                io::Error::new(e.kind(), format!("metrics: cannot listen on {addr}: {e}"))
            })?),
            None => None,
        };
        Ok(MetricsEndpoint {
            listener,
            source: None,
            scrapes: Vec::new(),
        })
    }

    /// Registers the listener with the loop, and says where it listens on
    /// stderr ("metrics on ADDR", the line tests read the port from).
    pub fn register<H: Handler>(&mut self, ctx: &mut Context<'_, H>) -> io::Result<()> {
        if let Some(listener) = self.listener.as_mut() {
            self.source = Some(ctx.register_source(listener, Interest::READABLE)?);
            eprintln!("metrics on {}", listener.local_addr()?);
        }
        Ok(())
    }

    /// Handles the event if `source` is the listener or a scrape; returns
    /// whether it was.
    pub fn on_ready<H: Handler>(&mut self, ctx: &mut Context<'_, H>, source: SourceId) -> bool {
        if self.source == Some(source) {
            self.accept(ctx);
            return true;
        }
        let Some(at) = self.scrapes.iter().position(|s| s.source == source) else {
            return false;
        };
        if let Next::Close = self.scrapes[at].serve(ctx.stats()) {
            let scrape = self.scrapes.remove(at);
            scrape.close(ctx);
        }
        true
    }

    /// Accepts every pending scrape connection (edge-triggered: until
    /// `WouldBlock`).
    fn accept<H: Handler>(&mut self, ctx: &mut Context<'_, H>) {
        let Some(listener) = self.listener.as_ref() else {
            return;
        };
        loop {
            let mut stream = match listener.accept() {
                Ok((stream, _)) => stream,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and the like: the next connection retries.
                    log::warn!("metrics: accept failed: {e}");
                    return;
                }
            };
            if self.scrapes.len() == MAX_SCRAPES {
                self.scrapes.remove(0).close(ctx);
            }
            match ctx.register_source(&mut stream, Interest::READABLE | Interest::WRITABLE) {
                Ok(source) => self.scrapes.push(Scrape {
                    stream,
                    source,
                    head: Vec::new(),
                    response: Vec::new(),
                    written: 0,
                }),
                Err(e) => log::warn!("metrics: cannot register a scrape: {e}"),
            }
        }
    }
}

impl Scrape {
    /// Reads the request head, once complete builds the answer, and writes
    /// what the socket takes.
    fn serve(&mut self, stats: &Stats) -> Next {
        if self.response.is_empty() {
            let mut chunk = [0u8; 4096];
            let mut discarded = 0;
            loop {
                match self.stream.read(&mut chunk) {
                    // The peer left before asking anything.
                    Ok(0) => return Next::Close,
                    // Past the limit, read on and drop (up to a bound): the
                    // 431 then closes a drained socket, with a FIN, not a
                    // reset that could destroy the answer.
                    Ok(n) if self.head.len() <= MAX_HEAD => {
                        self.head.extend_from_slice(&chunk[..n]);
                    }
                    Ok(n) => discarded += n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return Next::Close,
                }
                if discarded > 8 * MAX_HEAD {
                    break;
                }
            }
            match head_end(&self.head) {
                Some(end) if end <= MAX_HEAD => self.response = answer(&self.head[..end], stats),
                _ if self.head.len() > MAX_HEAD => {
                    self.response = reply("431 Request Header Fields Too Large", "", b"");
                }
                _ => return Next::Keep,
            }
            self.head = Vec::new();
        }
        while self.written < self.response.len() {
            match self.stream.write(&self.response[self.written..]) {
                Ok(n) => self.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Next::Keep,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => return Next::Close,
            }
        }
        // Answered (`Connection: close`): the FIN follows the response.
        let _ = self.stream.shutdown(std::net::Shutdown::Write);
        Next::Close
    }

    /// Takes the socket out of the loop and closes it.
    fn close<H: Handler>(mut self, ctx: &mut Context<'_, H>) {
        if let Err(e) = ctx.deregister_source(&mut self.stream, self.source) {
            log::warn!("metrics: cannot deregister a scrape: {e}");
        }
    }
}

/// Where the request head ends (after its blank line), if it has.
fn head_end(bytes: &[u8]) -> Option<usize> {
    bytes
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|i| i + 4)
}

/// The response to a complete request head.
fn answer(head: &[u8], stats: &Stats) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    if path != Some(b"/metrics".as_slice()) {
        return reply("404 Not Found", "", b"");
    }
    match method {
        b"GET" => reply("200 OK", "", &exposition(stats)),
        b"HEAD" => {
            // The length a GET would have, and no body.
            let mut response = reply("200 OK", "", &exposition(stats));
            let end = head_end(&response).unwrap_or(response.len());
            response.truncate(end);
            response
        }
        _ => reply("405 Method Not Allowed", "Allow: GET, HEAD\r\n", b""),
    }
}

/// An HTTP/1.1 response with `body`, closing the connection.
fn reply(status: &str, extra_headers: &str, body: &[u8]) -> Vec<u8> {
    let content_type = if status.starts_with("200") {
        prometheus::TEXT_FORMAT.to_owned() + "; charset=utf-8"
    } else {
        "text/plain; charset=utf-8".to_owned()
    };
    let mut response = format!(
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         {extra_headers}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    response.extend_from_slice(body);
    response
}

/// The text exposition of `stats`.
pub fn exposition(stats: &Stats) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    // Only an I/O error of the writer fails this, and a Vec has none.
    if let Err(e) = TextEncoder::new().encode(&families(stats), &mut out) {
        log::error!("metrics: encoding failed: {e}");
    }
    out
}

/// A metric read straight off `Stats`: name, help, value.
type Plain = (&'static str, &'static str, fn(&Stats) -> f64);

/// Counters; nanoseconds become seconds, the base unit.
const COUNTERS: [Plain; 26] = [
    ("reactor_accepted_total", "Connections accepted from listeners, rejected ones included.", |s| s.accepted as f64),
    ("reactor_rejected_total", "Accepted connections closed at once because max_connections was reached.", |s| s.rejected as f64),
    ("reactor_connects_started_total", "Outbound connections started.", |s| s.connects_started as f64),
    ("reactor_bytes_read_total", "Bytes read from connections (for TLS, the records).", |s| s.bytes_in as f64),
    ("reactor_bytes_written_total", "Bytes written to connections (for TLS, the records).", |s| s.bytes_out as f64),
    ("reactor_loop_busy_seconds_total", "Time the loop spent working, from poll's return to the end of the turn.", |s| s.loop_busy_ns as f64 / 1e9),
    ("reactor_loop_wait_seconds_total", "Time the loop spent in poll, waiting for events.", |s| s.loop_wait_ns as f64 / 1e9),
    ("reactor_turns_total", "Turns of the loop (one poll each).", |s| s.turns as f64),
    ("reactor_poll_calls_total", "Calls to poll (turns plus retries after EINTR).", |s| s.poll_calls as f64),
    ("reactor_events_total", "Events returned by poll.", |s| s.events as f64),
    ("reactor_read_syscalls_total", "read/recv system calls on connections.", |s| s.read_syscalls as f64),
    ("reactor_write_syscalls_total", "send/sendmsg system calls on connections.", |s| s.write_syscalls as f64),
    ("reactor_would_blocks_total", "Reads or writes that returned WouldBlock.", |s| s.would_blocks as f64),
    ("reactor_budget_yields_total", "Times a connection or listener used up its per-turn budget.", |s| s.budget_yields as f64),
    ("reactor_backpressure_events_total", "Times a connection's queued output reached its high-water mark.", |s| s.backpressure_events as f64),
    ("reactor_write_throughs_total", "Sends made at once because a write reached the high-water mark.", |s| s.write_throughs as f64),
    ("reactor_fanout_yields_total", "Times a connection stopped reading because input it fanned out left a receiver above high water.", |s| s.fanout_yields as f64),
    ("reactor_stale_events_total", "Events dropped because their connection closed earlier in the batch.", |s| s.stale_events as f64),
    ("reactor_handler_panics_total", "Handler callbacks that panicked.", |s| s.handler_panics as f64),
    ("reactor_accept_pauses_total", "Times accepting paused because the process ran out of descriptors.", |s| s.accept_pauses as f64),
    ("reactor_timers_fired_total", "Timers fired.", |s| s.timers_fired as f64),
    ("reactor_data_calls_total", "Handler data calls (messages in).", |s| s.data_calls as f64),
    ("reactor_writes_total", "Handler writes (messages out).", |s| s.writes as f64),
    ("reactor_tls_handshakes_total", "TLS handshakes completed.", |s| s.tls_handshakes as f64),
    ("reactor_tls_handshake_failures_total", "TLS handshakes that ended without completing.", |s| s.tls_handshake_failures as f64),
    ("reactor_tls_truncations_total", "TLS connections whose peer ended TCP without a close_notify.", |s| s.tls_truncations as f64),
];

/// Gauges: the state when the last turn ended.
const GAUGES: [Plain; 5] = [
    (
        "reactor_connections",
        "Connections open now (any state but closed).",
        |s| s.open_connections as f64,
    ),
    (
        "reactor_queued_output_bytes",
        "Bytes queued for writing across all connections.",
        |s| s.queued_output_bytes as f64,
    ),
    (
        "reactor_ready_queue_depth",
        "Entries on the ready queue when the last turn ended (work carried over).",
        |s| s.ready_queue_depth as f64,
    ),
    (
        "reactor_handle_queue_depth",
        "Commands and messages from other threads waiting for the loop when the last turn ended.",
        |s| s.handle_queue_depth as f64,
    ),
    (
        "reactor_tls_handshakes_in_progress",
        "Accepted TLS connections whose handshake is in progress.",
        |s| s.tls_handshakes_in_progress as f64,
    ),
];

/// Every metric, as families for the encoder; what each means and which
/// alert it serves is in docs/operations.md.
pub fn families(s: &Stats) -> Vec<MetricFamily> {
    let closed = CLOSE_REASONS
        .iter()
        .zip(s.closed_by_reason)
        .map(|(reason, n)| labelled(counter_metric(n as f64), "reason", reason))
        .collect();
    let mut families: Vec<MetricFamily> = GAUGES
        .iter()
        .map(|&(name, help, value)| gauge(name, help, value(s)))
        .collect();
    families.extend(
        COUNTERS
            .iter()
            .map(|&(name, help, value)| counter(name, help, value(s))),
    );
    families.push(family(
        "reactor_closed_total",
        "Connections closed, by reason.",
        MetricType::COUNTER,
        closed,
    ));
    families.push(histogram(
        "reactor_turn_duration_seconds",
        "How long each turn's work took (the busy part of a turn).",
        &s.turn_duration,
    ));
    families.push(histogram(
        "reactor_timer_lag_seconds",
        "How late each timer fired after its deadline; a blocking handler shows here first.",
        &s.timer_lag,
    ));
    families
}

/// A family of `metrics` of one type.
fn family(name: &str, help: &str, kind: MetricType, metrics: Vec<Metric>) -> MetricFamily {
    let mut family = MetricFamily::default();
    family.set_name(name.to_owned());
    family.set_help(help.to_owned());
    family.set_field_type(kind);
    family.set_metric(metrics);
    family
}

/// An unlabelled counter's sample.
fn counter_metric(value: f64) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    metric
}

/// `metric` with one label.
fn labelled(mut metric: Metric, name: &str, value: &str) -> Metric {
    let mut label = LabelPair::default();
    label.set_name(name.to_owned());
    label.set_value(value.to_owned());
    metric.set_label(vec![label]);
    metric
}

/// A counter family with one sample.
fn counter(name: &str, help: &str, value: f64) -> MetricFamily {
    family(name, help, MetricType::COUNTER, vec![counter_metric(value)])
}

/// A gauge family with one sample.
fn gauge(name: &str, help: &str, value: f64) -> MetricFamily {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    family(name, help, MetricType::GAUGE, vec![metric])
}

/// A histogram family from the loop's fixed buckets, in seconds.
fn histogram(name: &str, help: &str, h: &DurationHistogram) -> MetricFamily {
    // The +Inf bucket is left to the encoder, which writes it as `+Inf`
    // with the count (an infinite bound of ours it would spell `inf`).
    let buckets = h
        .cumulative()
        .filter_map(|(bound, count)| {
            let mut bucket = Bucket::default();
            bucket.set_upper_bound(bound?.as_secs_f64());
            bucket.set_cumulative_count(count);
            Some(bucket)
        })
        .collect();
    let mut histogram = Histogram::default();
    histogram.set_sample_count(h.count);
    histogram.set_sample_sum(h.sum_ns as f64 / 1e9);
    histogram.set_bucket(buckets);
    let mut metric = Metric::default();
    metric.set_histogram(histogram);
    family(name, help, MetricType::HISTOGRAM, vec![metric])
}
