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
//! With several loops (`--threads N`, `support/loops.rs`) loop 0's handler
//! owns the endpoint ([`MetricsEndpoint::for_loops`]; the others get an
//! inert one) and a scrape reports every loop, each series with a
//! `loop="i"` label: loop 0's own counters from its context, the others'
//! from their [`Handle::stats`](reactor::Handle::stats) snapshots, at most
//! one turn old. Loop 0 registers the endpoint in its first `before_sleep`
//! ([`MetricsEndpoint::register_late`]), woken by a message sent after the
//! "listening on" line. With one loop, no `loop` label.

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::Mutex;

use prometheus::proto::{
    Bucket, Counter, Gauge, Histogram, LabelPair, Metric, MetricFamily, MetricType,
};
use prometheus::{Encoder, TextEncoder};
use reactor::mio::net::{TcpListener, TcpStream};
use reactor::{Context, DurationHistogram, Handler, Interest, Peers, SourceId, Stats};

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
    /// With several loops: which one this is and the others' counters.
    loops: Option<LoopStats>,
}

/// Where a scrape on loop `index` finds every loop's counters.
struct LoopStats {
    /// This loop's index (its own counters come from its context).
    index: usize,
    /// Number of loops.
    count: usize,
    /// Loop `i`'s published counters (`LoopsHandle::stats`).
    read: Box<dyn Fn(usize) -> Option<Stats> + Send>,
}

/// Loop `peers.index()`'s endpoint with several loops: loop 0 takes the
/// one bound in `slot` (by `bind`, before the loops start), reporting every
/// loop; the others get an inert one.
#[allow(dead_code)] // Only the examples with `--threads` and `--metrics`.
pub fn for_loop<M: Send + 'static>(
    slot: &Mutex<Option<MetricsEndpoint>>,
    peers: &Peers<M>,
) -> MetricsEndpoint {
    let taken = match peers.index() {
        0 => slot.lock().ok().and_then(|mut slot| slot.take()),
        _ => None,
    };
    match taken {
        Some(endpoint) => endpoint.for_loops(peers),
        None => MetricsEndpoint::inert(),
    }
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
            ..MetricsEndpoint::inert()
        })
    }

    /// An endpoint that does nothing (`bind(None)`, which cannot fail).
    pub fn inert() -> Self {
        MetricsEndpoint {
            listener: None,
            source: None,
            scrapes: Vec::new(),
            loops: None,
        }
    }

    /// With more than one loop in `peers`, scrapes report every loop's
    /// counters, each series labelled `loop="i"`; with one, unchanged.
    #[allow(dead_code)] // Only the examples with `--threads` and `--metrics`.
    pub fn for_loops<M: Send + 'static>(mut self, peers: &Peers<M>) -> Self {
        if peers.len() > 1 {
            let all = peers.all().clone();
            self.loops = Some(LoopStats {
                index: peers.index(),
                count: peers.len(),
                read: Box::new(move |i| all.stats(i)),
            });
        }
        self
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

    /// [`register`](Self::register) from a callback (`before_sleep`), once:
    /// does nothing when registered already or inert; a failure is logged
    /// and leaves the endpoint inert.
    #[allow(dead_code)] // Only the examples with `--threads` and `--metrics`.
    pub fn register_late<H: Handler>(&mut self, ctx: &mut Context<'_, H>) {
        if self.source.is_none() && self.listener.is_some() {
            if let Err(e) = self.register(ctx) {
                log::error!("metrics: cannot serve: {e}");
                self.listener = None;
            }
        }
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
        let (own, loops) = (ctx.stats(), self.loops.as_ref());
        if let Next::Close = self.scrapes[at].serve(|| render(own, loops)) {
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
    fn serve(&mut self, body: impl FnOnce() -> Vec<u8>) -> Next {
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
                Some(end) if end <= MAX_HEAD => self.response = answer(&self.head[..end], body),
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

/// The response to a complete request head; `body` makes the exposition.
fn answer(head: &[u8], body: impl FnOnce() -> Vec<u8>) -> Vec<u8> {
    let line = head.split(|&b| b == b'\r').next().unwrap_or_default();
    let mut words = line.split(|&b| b == b' ');
    let (method, target) = (words.next().unwrap_or_default(), words.next());
    let path = target.map(|t| t.split(|&b| b == b'?').next().unwrap_or_default());
    if path != Some(b"/metrics".as_slice()) {
        return reply("404 Not Found", "", b"");
    }
    match method {
        b"GET" => reply("200 OK", "", &body()),
        b"HEAD" => {
            // The length a GET would have, and no body.
            let mut response = reply("200 OK", "", &body());
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

/// The exposition a scrape on this loop returns: its own `stats` alone, or
/// with `loops`, every loop's, labelled.
fn render(own: &Stats, loops: Option<&LoopStats>) -> Vec<u8> {
    let Some(loops) = loops else {
        return exposition(own);
    };
    let others: Vec<(usize, Stats)> = (0..loops.count)
        .filter(|&i| i != loops.index)
        .filter_map(|i| Some((i, (loops.read)(i)?)))
        .collect();
    let mut all: Vec<(usize, &Stats)> = others.iter().map(|(i, s)| (*i, s)).collect();
    all.push((loops.index, own));
    all.sort_by_key(|&(i, _)| i);
    let labelled: Vec<(Option<String>, &Stats)> = all
        .into_iter()
        .map(|(i, s)| (Some(i.to_string()), s))
        .collect();
    encode(&families_by_loop(&labelled))
}

/// The text exposition of `stats` (one loop, no `loop` label).
pub fn exposition(stats: &Stats) -> Vec<u8> {
    encode(&families(stats))
}

/// `families` in the text format.
fn encode(families: &[MetricFamily]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 * 1024);
    // Only an I/O error of the writer fails this, and a Vec has none.
    if let Err(e) = TextEncoder::new().encode(families, &mut out) {
        log::error!("metrics: encoding failed: {e}");
    }
    out
}

/// A metric read straight off `Stats`: name, help, value.
type Plain = (&'static str, &'static str, fn(&Stats) -> f64);

/// Counters; nanoseconds become seconds, the base unit.
const COUNTERS: [Plain; 27] = [
    ("reactor_accepted_total", "Connections accepted from listeners, rejected ones included.", |s| s.accepted as f64),
    ("reactor_adopted_total", "Connections accepted by another thread and handed to this loop (--hand-off), rejected ones included.", |s| s.adopted as f64),
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

/// Every metric of one loop, unlabelled, as families for the encoder; what
/// each means and which alert it serves is in docs/operations.md.
pub fn families(s: &Stats) -> Vec<MetricFamily> {
    families_by_loop(&[(None, s)])
}

/// Every metric of every loop in `loops`: one sample per loop in each
/// family, labelled `loop="VALUE"` where the loop has a value (the label
/// comes first; `reactor_closed_total` adds `reason`).
pub fn families_by_loop(loops: &[(Option<String>, &Stats)]) -> Vec<MetricFamily> {
    let each = |make: &dyn Fn(&Stats) -> Metric| -> Vec<Metric> {
        loops
            .iter()
            .map(|(label, s)| with_labels(make(s), label.as_deref(), &[]))
            .collect()
    };
    let mut families: Vec<MetricFamily> = GAUGES
        .iter()
        .map(|&(name, help, value)| {
            family(
                name,
                help,
                MetricType::GAUGE,
                each(&|s| gauge_metric(value(s))),
            )
        })
        .collect();
    families.extend(COUNTERS.iter().map(|&(name, help, value)| {
        family(
            name,
            help,
            MetricType::COUNTER,
            each(&|s| counter_metric(value(s))),
        )
    }));
    let closed = loops
        .iter()
        .flat_map(|(label, s)| {
            CLOSE_REASONS
                .iter()
                .zip(s.closed_by_reason)
                .map(move |(reason, n)| {
                    with_labels(
                        counter_metric(n as f64),
                        label.as_deref(),
                        &[("reason", reason)],
                    )
                })
        })
        .collect();
    families.push(family(
        "reactor_closed_total",
        "Connections closed, by reason.",
        MetricType::COUNTER,
        closed,
    ));
    families.push(family(
        "reactor_turn_duration_seconds",
        "How long each turn's work took (the busy part of a turn).",
        MetricType::HISTOGRAM,
        each(&|s| histogram_metric(&s.turn_duration)),
    ));
    families.push(family(
        "reactor_timer_lag_seconds",
        "How late each timer fired after its deadline; a blocking handler shows here first.",
        MetricType::HISTOGRAM,
        each(&|s| histogram_metric(&s.timer_lag)),
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

/// A counter's sample.
fn counter_metric(value: f64) -> Metric {
    let mut counter = Counter::default();
    counter.set_value(value);
    let mut metric = Metric::default();
    metric.set_counter(counter);
    metric
}

/// A gauge's sample.
fn gauge_metric(value: f64) -> Metric {
    let mut gauge = Gauge::default();
    gauge.set_value(value);
    let mut metric = Metric::default();
    metric.set_gauge(gauge);
    metric
}

/// `metric` labelled `loop="LOOP"` (if given), then with `more`.
fn with_labels(mut metric: Metric, loop_label: Option<&str>, more: &[(&str, &str)]) -> Metric {
    let pairs = loop_label.map(|value| ("loop", value));
    let labels = pairs
        .iter()
        .chain(more)
        .map(|&(name, value)| {
            let mut label = LabelPair::default();
            label.set_name(name.to_owned());
            label.set_value(value.to_owned());
            label
        })
        .collect();
    metric.set_label(labels);
    metric
}

/// A histogram's sample from the loop's fixed buckets, in seconds.
fn histogram_metric(h: &DurationHistogram) -> Metric {
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
    metric
}
