//! What every example server shares, kept in one place (included with
//! `#[path = "support/server.rs"] mod server;`; a folder without `main.rs` is
//! not an example of its own):
//!
//! * [`run`]: the process entry: logging, flags, and an exit status that says
//!   whether serving failed;
//! * [`ShutdownSignals`]: SIGINT and SIGTERM as ordinary events in the loop.
//!   signal-hook-mio turns a signal into a byte on a pipe registered with the
//!   reactor like any socket, so no global flag is polled and the loop sleeps
//!   until something happens. The first signal starts a graceful shutdown; a
//!   second one stops the loop at once, for an operator who will not wait.
//!   A server with something to reload (TLS certificates: `support/tls.rs`)
//!   also catches SIGHUP, the same way; the others leave it at its default.
//!   A server behind a load balancer may ask for a drain delay first
//!   ([`ShutdownSignals::with_drain_delay`]): the first signal then only
//!   marks it draining (its health check fails, so the balancer takes it
//!   out) while it goes on serving and accepting, and the graceful shutdown
//!   begins when the delay ends, or at a second signal; a third stops.

use std::io;
use std::process::ExitCode;
use std::time::Duration;

use reactor::{Context, Fired, Handler, Interest, SourceId, TimerId};
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use signal_hook_mio::v1_0::Signals;

/// Runs an example server: logs at `warn` unless `RUST_LOG` says otherwise,
/// parses the flags, and exits 0 only if `serve` returned `Ok`, printing the
/// error (which names what failed, e.g. the address it could not bind)
/// under the program's `name` otherwise.
pub fn run<A: clap::Parser>(name: &str, serve: fn(&A) -> io::Result<()>) -> ExitCode {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn")).init();
    match serve(&A::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("{name}: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Parses a flag given in seconds (fractions allowed) into a `Duration`, as
/// a clap `value_parser`: a negative, infinite or absurdly large value is a
/// usage error naming the flag, not a panic in `Duration::from_secs_f64`.
// udp_echo includes this file and has no flag in seconds.
#[allow(dead_code)]
pub fn seconds(text: &str) -> Result<Duration, String> {
    let value: f64 = text
        .parse()
        .map_err(|_| format!("{text:?} is not a number of seconds"))?;
    Duration::try_from_secs_f64(value)
        .map_err(|_| format!("{text} is not a number of seconds from 0 up"))
}

/// What SIGHUP does (reload certificates); it runs on the loop's thread.
pub type Reload = Box<dyn FnMut() + Send>;

/// The signal pipe and what a signal means for this server.
pub struct ShutdownSignals {
    /// SIGINT/SIGTERM (and SIGHUP with `reload`), readable when one arrived;
    /// `None` for a loop of several, whose signals a thread of their own
    /// takes (`support/loops.rs`).
    signals: Option<Signals>,
    /// What SIGHUP does; `None`: SIGHUP is not caught.
    reload: Option<Reload>,
    /// Grace period for the graceful shutdown a first signal starts.
    grace: Duration,
    /// Id of the pipe in the loop; `None` until `register` ran.
    source: Option<SourceId>,
    /// How long the first signal's drain lasts before the graceful
    /// shutdown begins; zero: it begins at once.
    drain_delay: Duration,
    /// A signal has started the drain (delay or shutdown): health checks
    /// should now fail.
    draining: bool,
    /// The handler timer that ends the drain delay, while it runs.
    drain_timer: Option<TimerId>,
}

impl ShutdownSignals {
    /// Catches SIGINT and SIGTERM from now on (they no longer kill the process).
    pub fn new(grace: Duration) -> io::Result<Self> {
        Ok(ShutdownSignals {
            signals: Some(Signals::new([SIGINT, SIGTERM])?),
            reload: None,
            grace,
            source: None,
            drain_delay: Duration::ZERO,
            draining: false,
            drain_timer: None,
        })
    }

    /// As [`ShutdownSignals::new`], and catches SIGHUP too, which runs
    /// `reload` (on the loop's thread, between events) and changes nothing
    /// else: a reload during a graceful shutdown is done all the same.
    // Only the servers with TLS certificates reload.
    #[allow(dead_code)]
    pub fn with_reload(grace: Duration, reload: Reload) -> io::Result<Self> {
        Ok(ShutdownSignals {
            signals: Some(Signals::new([SIGINT, SIGTERM, SIGHUP])?),
            reload: Some(reload),
            grace,
            source: None,
            drain_delay: Duration::ZERO,
            draining: false,
            drain_timer: None,
        })
    }

    /// Makes the first signal a drain of `delay` before the graceful
    /// shutdown: listeners stay open and connections are served while a
    /// load balancer, seeing the health check fail ([`Self::is_draining`]),
    /// takes this instance out of rotation. The handler must pass its
    /// timers to [`Self::on_timer`].
    // Only http_server has a health check to fail.
    #[allow(dead_code)]
    pub fn with_drain_delay(mut self, delay: Duration) -> Self {
        self.drain_delay = delay;
        self
    }

    /// Whether a signal has started the drain: during the drain delay, and
    /// from the graceful shutdown on.
    // Only http_server has a health check to fail.
    #[allow(dead_code)]
    pub fn is_draining(&self) -> bool {
        self.draining
    }

    /// Handles `fired` if it is the end of the drain delay (starting the
    /// graceful shutdown); returns whether it was.
    // Only http_server has a drain delay.
    #[allow(dead_code)]
    pub fn on_timer<H: Handler>(&mut self, ctx: &mut Context<'_, H>, fired: &Fired) -> bool {
        if fired.conn.is_some() || self.drain_timer != Some(fired.timer) {
            return false;
        }
        self.drain_timer = None;
        self.begin_shutdown(ctx, "drain delay over");
        true
    }

    /// Starts the graceful shutdown (unless one has begun), ending any
    /// drain delay.
    fn begin_shutdown<H: Handler>(&mut self, ctx: &mut Context<'_, H>, why: &str) {
        self.draining = true;
        if let Some(timer) = self.drain_timer.take() {
            ctx.cancel_timer(timer);
        }
        if !ctx.is_shutting_down() {
            log::warn!("{why}: graceful shutdown ({:?} grace)", self.grace);
            ctx.shutdown(self.grace);
        }
    }

    /// Catches nothing: for each of several loops, whose signals one
    /// thread takes for them all (`support/loops.rs`).
    // Only the servers with `--threads` use it.
    #[allow(dead_code)]
    pub fn none() -> Self {
        ShutdownSignals {
            signals: None,
            reload: None,
            grace: Duration::ZERO,
            source: None,
            drain_delay: Duration::ZERO,
            draining: false,
            drain_timer: None,
        }
    }

    /// Registers the signal pipe with the loop (if it catches signals).
    pub fn register<H: Handler>(&mut self, ctx: &mut Context<'_, H>) -> io::Result<()> {
        if let Some(signals) = self.signals.as_mut() {
            self.source = Some(ctx.register_source(signals, Interest::READABLE)?);
        }
        Ok(())
    }

    /// Handles the event if `source` is the signal pipe; returns whether it
    /// was (so a handler with other sources knows to look elsewhere).
    pub fn on_ready<H: Handler>(&mut self, ctx: &mut Context<'_, H>, source: SourceId) -> bool {
        let Some(signals) = self.signals.as_mut() else {
            return false;
        };
        if self.source != Some(source) {
            return false;
        }
        for signal in signals.pending() {
            if signal == SIGHUP {
                if let Some(reload) = self.reload.as_mut() {
                    log::info!("signal {signal}: reloading");
                    reload();
                }
            } else if ctx.is_shutting_down() {
                log::warn!("signal {signal} again: stopping now");
                ctx.stop();
            } else if self.drain_timer.is_some() {
                // The operator will not wait for the balancer: cut the
                // delay short, but still let requests in flight finish.
                self.begin_shutdown(ctx, &format!("signal {signal} during the drain delay"));
            } else if !self.draining && !self.drain_delay.is_zero() {
                log::warn!(
                    "signal {signal}: draining for {:?}, then graceful shutdown",
                    self.drain_delay
                );
                self.draining = true;
                self.drain_timer = Some(ctx.start_timer(self.drain_delay, 0));
            } else {
                self.begin_shutdown(ctx, &format!("signal {signal}"));
            }
        }
        true
    }
}
