//! One thread's load generator: the reactor's handler, and the one place
//! where the reactor's callbacks are routed to the modules that do the work.
//!
//! The generator's state is split by job, each part owned by a module:
//! which connections and how they open (`connect.rs`), the TCP and UDP
//! echoes (`tcp.rs`, `udp.rs`), the timetable (`schedule.rs`), open-loop
//! pacing (`pacing.rs`), latency (`latency.rs`), what is said on stderr
//! (`progress.rs`) and the counts reported at the end (`report.rs`). Each
//! module adds the methods of its job to `Generator`.

use std::net::SocketAddr;
use std::sync::Arc;

use reactor::{CloseReason, ConnId, Context, Event, Fired, Handler, SourceId};

use crate::cli::Args;
use crate::connect::Connections;
use crate::latency::Latency;
use crate::pacing::{Nudge, Pacer};
use crate::pattern::Pattern;
use crate::progress::{Narrator, Progress};
use crate::report::Counters;
use crate::schedule::Schedule;
use crate::tcp::TcpConn;
use crate::tls::ClientTls;
use crate::udp::UdpSockets;

/// One thread's generator.
pub struct Generator {
    /// The flags, shared read-only by every thread.
    pub args: Arc<Args>,
    /// `--tls`: what connections are opened with; `None` for plain TCP.
    pub tls: Option<ClientTls>,
    /// The stream pattern (one per thread, to stay in this core's cache).
    pub pattern: Pattern,
    /// This thread's share of the connections and how far opening them got.
    pub connections: Connections,
    /// The UDP sockets (UDP mode only; empty otherwise).
    pub udp: UdpSockets,
    /// The phase of the run and the timers that move it on.
    pub schedule: Schedule,
    /// When messages may be sent (window and open-loop schedule).
    pub pacer: Pacer,
    /// Latencies of completed messages.
    pub latency: Latency,
    /// Results so far.
    pub counters: Counters,
    /// Figures published to the narrator.
    pub progress: Arc<Progress>,
    /// This thread's index: its entry in `progress.p99_ns`.
    pub thread: usize,
    /// The stderr voice; `Some` on the lead thread (thread 0) only.
    pub narrator: Option<Narrator>,
}

impl Generator {
    /// Thread `thread`'s generator for connections `numbers`, over TLS
    /// with `tls`.
    pub fn new(
        thread: usize,
        args: Arc<Args>,
        tls: Option<ClientTls>,
        numbers: Vec<u64>,
        progress: Arc<Progress>,
    ) -> Self {
        Generator {
            tls,
            pattern: Pattern::new(args.depth.max(1) * args.size),
            connections: Connections::new(numbers),
            udp: UdpSockets::new(args.size),
            schedule: Schedule::new(),
            pacer: Pacer::new(args.rate, args.threads),
            latency: Latency::new(),
            counters: Counters::default(),
            progress,
            thread,
            narrator: (thread == 0).then(|| Narrator::new(args.connections)),
            args,
        }
    }
}

impl Handler for Generator {
    type State = TcpConn;
    type Message = Nudge;

    /// The one callback every handler names (it makes the state of an
    /// accepted connection). Loadgen listens on nothing, so the reactor
    /// never calls it; were a connection ever accepted, it is refused.
    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) -> TcpConn {
        ctx.close(conn);
        TcpConn::new(u64::MAX, usize::MAX, 0)
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, st: &mut TcpConn) {
        st.established = true;
        self.refill_tcp(ctx, conn, st, std::time::Instant::now());
        self.connect_succeeded(ctx);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut TcpConn,
        input: &[u8],
    ) -> usize {
        self.echo_arrived(ctx, conn, st, input)
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut TcpConn) {
        // An echo server does not half-close; whatever it meant, the close
        // is counted in `closed`.
        ctx.close(conn);
    }

    fn closed(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: TcpConn,
        reason: CloseReason,
    ) {
        match reason {
            CloseReason::ConnectFailed(_) | CloseReason::ConnectTimeout => {
                self.connect_failed(ctx, &st, reason);
            }
            // Closed before `connected`, and not by us: with TLS, the
            // handshake failed (`TlsError`, `TlsHandshakeTimeout`, the
            // server leaving mid-handshake). The connection never came up.
            _ if !st.established && !matches!(reason, CloseReason::ClosedLocally) => {
                self.connect_failed(ctx, &st, reason);
            }
            _ => self.tcp_closed(conn, &st, reason),
        }
    }

    fn source_ready(&mut self, _: &mut Context<'_, Self>, source: SourceId, event: &Event) {
        if let Some(index) = self.udp.index_of(source) {
            if event.is_readable() || event.is_error() {
                self.receive_udp(index);
            }
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        self.alarm(ctx, fired);
    }

    fn message(&mut self, _: &mut Context<'_, Self>, _: Nudge) {
        // The nudge has done its job by waking the loop; `before_sleep`
        // paces, as it does every turn.
        self.pacer.nudged();
    }

    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        self.pace(ctx);
    }
}
