//! Opening one thread's share of the connections: which ones, from which
//! local address, and how many at once.
//!
//! * **Local addresses.** Towards one destination a source address has only
//!   the ~28 000 ephemeral ports Linux offers, so above that many
//!   connections they are spread over 127.0.0.x, 25 000 per address. UDP
//!   sockets always bind explicitly (they need a local address to
//!   `connect`).
//! * **A bounded burst.** At most `--connect-burst` connects are in progress
//!   at once; more would only overflow the server's accept backlog and wait
//!   for SYN retransmits. The burst is paced by completions, not by a clock:
//!   each connect that finishes, either way, starts the next.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Instant;

use reactor::{CloseReason, ConnId, Context, Interest};

use crate::cli::Args;
use crate::generator::Generator;
use crate::tcp::TcpConn;
use crate::udp::UdpConn;

/// Connections per local source address before moving to the next one:
/// under the ~28 000 ephemeral ports Linux offers per destination.
const CONNS_PER_SOURCE: usize = 25_000;
/// Above this many connections, spread them over 127.0.0.x source addresses.
const SPREAD_ABOVE: usize = 28_000;
/// Connect failures reported one by one on stderr; the rest are only counted.
const FAILURES_TOLD: u64 = 3;

/// This thread's connections and how far opening them got.
pub struct Connections {
    /// Global numbers of this thread's connections, by local index. The
    /// number picks the pattern offset and the source address; the local
    /// index is the connection's lane in the open-loop schedule.
    pub numbers: Vec<u64>,
    /// `numbers[..next_connect]` have been asked to connect.
    next_connect: usize,
    /// Connects in progress (neither connected nor failed yet);
    /// at most `--connect-burst`.
    connecting: usize,
    /// TCP connection ids by local index; `None` before connect and after
    /// close. Unused in UDP mode.
    pub ids: Vec<Option<ConnId>>,
}

impl Connections {
    /// Nothing opened yet of the connections `numbers`.
    pub fn new(numbers: Vec<u64>) -> Self {
        let count = numbers.len();
        Connections {
            numbers,
            next_connect: 0,
            connecting: 0,
            ids: vec![None; count],
        }
    }

    /// Connections this thread is responsible for.
    pub fn len(&self) -> usize {
        self.numbers.len()
    }

    /// Whether every connect was asked for and has finished, either way.
    pub fn all_settled(&self) -> bool {
        self.next_connect >= self.numbers.len() && self.connecting == 0
    }
}

impl Generator {
    /// Starts connects until `--connect-burst` are in progress.
    pub fn connect_more(&mut self, ctx: &mut Context<'_, Self>) {
        let timeout = self.args.timeout();
        let set = &mut self.connections;
        while set.connecting < self.args.connect_burst && set.next_connect < set.numbers.len() {
            let local = set.next_connect;
            let number = set.numbers[local];
            set.next_connect += 1;
            let source = source_addr(&self.args, number);
            let state = TcpConn::new(number, local, self.args.depth);
            let opened = match &self.tls {
                Some(tls) => tls.connect(ctx, source, self.args.addr, Some(timeout), state),
                None => ctx.connect_from(source, self.args.addr, Some(timeout), state),
            };
            match opened {
                Ok(id) => {
                    set.ids[local] = Some(id);
                    set.connecting += 1;
                }
                Err(e) => {
                    eprintln!("loadgen: connect {number}: {e}");
                    self.counters.connect_failures += 1;
                }
            }
        }
    }

    /// A connect succeeded: count it and let the next one start.
    pub fn connect_succeeded(&mut self, ctx: &mut Context<'_, Self>) {
        self.connections.connecting -= 1;
        self.counters.established += 1;
        self.progress.connection_up();
        self.connect_more(ctx);
        self.connect_settled(ctx);
    }

    /// A connect failed or timed out: count it, tell the first few, and let
    /// the next one start.
    pub fn connect_failed(
        &mut self,
        ctx: &mut Context<'_, Self>,
        st: &TcpConn,
        reason: CloseReason,
    ) {
        self.connections.ids[st.local] = None;
        self.connections.connecting -= 1;
        self.counters.connect_failures += 1;
        if self.counters.connect_failures <= FAILURES_TOLD {
            eprintln!("loadgen: connection {}: {reason}", st.number);
        }
        self.connect_more(ctx);
        self.connect_settled(ctx);
    }

    /// Opens this thread's UDP sockets, connected to the server and
    /// registered with the loop for reading. A socket that cannot be bound
    /// counts as a connect failure; any other error ends the run.
    pub fn open_udp(&mut self, ctx: &mut Context<'_, Self>) -> io::Result<()> {
        let depth = self.args.depth;
        for local in 0..self.connections.len() {
            let number = self.connections.numbers[local];
            let source = source_addr(&self.args, number).expect("UDP always binds");
            let socket = match mio::net::UdpSocket::bind(source) {
                Ok(s) => s,
                Err(e) => {
                    eprintln!("loadgen: udp socket {number}: {e}");
                    self.counters.connect_failures += 1;
                    continue;
                }
            };
            socket.connect(self.args.addr)?;
            let mut conn = UdpConn::new(socket, number, depth, Instant::now());
            let id = ctx.register_source(&mut conn.socket, Interest::READABLE)?;
            self.udp.add(id, conn);
            self.counters.established += 1;
            self.progress.connection_up();
        }
        // The open-loop schedule needs local index == position among the
        // sockets: those that failed to open shrink the list, so renumber.
        self.connections.numbers = self.udp.numbers();
        Ok(())
    }
}

/// The local address connection `number` connects from: `None` (the
/// kernel's choice) unless there are too many connections for one address.
fn source_addr(args: &Args, number: u64) -> Option<SocketAddr> {
    if args.connections <= SPREAD_ABOVE && !args.udp {
        return None;
    }
    let block = (number as usize / CONNS_PER_SOURCE) as u8;
    Some(SocketAddr::new(
        IpAddr::V4(Ipv4Addr::new(127, 0, 0, 1 + block)),
        0,
    ))
}
