//! The TCP echo, verified: what each connection has sent and received,
//! the check of every echoed byte, and the timeouts of unanswered messages.
//!
//! A connection sends a batch of messages as one contiguous slice of its
//! stream (one `write`), so checking the echo is comparing bytes in place
//! (`pattern.rs`). Send times sit in a fixed ring per connection, sized at
//! connect: nothing allocates per message.

use std::time::Instant;

use reactor::{CloseReason, ConnId, Context};

use crate::generator::Generator;

/// Connections lost that are reported one by one on stderr; the rest are
/// only counted.
const LOSSES_TOLD: u64 = 3;

/// One TCP connection's progress: the reactor's per-connection state.
pub struct TcpConn {
    /// Global connection number: picks the pattern offset and source address.
    pub number: u64,
    /// Index of this connection among its thread's (its open-loop lane).
    pub local: usize,
    /// Messages written so far (`sent * size` stream bytes).
    sent: u64,
    /// Stream bytes echoed and verified; `received <= sent * size`.
    received: u64,
    /// Messages the open-loop schedule has made due; `sent <= due` in rate
    /// mode (unused in closed loop).
    pub due: u64,
    /// Send time of in-flight message `m` at `sent_at[m % len]`;
    /// `len == max(depth, 1)`, allocated once, at connect. At most `depth`
    /// messages are in flight, so no live entry is overwritten.
    sent_at: Box<[Instant]>,
    /// `connected` ran: the connect (and with TLS, the handshake) is done.
    pub established: bool,
    /// Already counted as an error (mismatch, timeout): its close is not
    /// counted again.
    failed: bool,
    /// On the pacer's list of connections to refill this pass; cleared by
    /// the refill.
    pub queued_for_refill: bool,
}

impl TcpConn {
    /// Connection `number`, lane `local`, with room for `depth` messages in
    /// flight.
    pub fn new(number: u64, local: usize, depth: usize) -> Self {
        TcpConn {
            number,
            local,
            sent: 0,
            received: 0,
            due: 0,
            sent_at: vec![Instant::now(); depth.max(1)].into_boxed_slice(),
            established: false,
            failed: false,
            queued_for_refill: false,
        }
    }

    /// Where message `m`'s send time is kept.
    fn ring_slot(&self, m: u64) -> usize {
        (m % self.sent_at.len() as u64) as usize
    }

    /// Takes the next `n` messages for sending at `now`; returns the stream
    /// position and length of the bytes to write.
    fn claim(&mut self, n: u64, size: u64, now: Instant) -> (u64, usize) {
        for m in self.sent..self.sent + n {
            let slot = self.ring_slot(m);
            self.sent_at[slot] = now;
        }
        let pos = self.sent * size;
        self.sent += n;
        (pos, (n * size) as usize)
    }

    /// Messages written and not yet fully echoed.
    fn in_flight(&self, size: u64) -> u64 {
        self.sent - self.received / size
    }
}

impl Generator {
    /// Checks echoed bytes against what connection `conn` sent, records the
    /// messages they complete, and sends what the schedule now allows.
    /// Returns the bytes consumed: always all of them.
    pub fn echo_arrived(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        st: &mut TcpConn,
        input: &[u8],
    ) -> usize {
        let now = Instant::now();
        let size = self.args.size_u64();
        let owed = st.sent * size - st.received;
        let (expected, extra) = if input.len() as u64 > owed {
            (&input[..owed as usize], input.len() as u64 - owed)
        } else {
            (input, 0)
        };
        let wrong = self.pattern.mismatches(st.number, st.received, expected) + extra;
        if wrong > 0 {
            // After one wrong byte the stream is out of step for good:
            // count this chunk and give the connection up.
            self.counters.mismatches += 1;
            self.counters.mismatched_bytes += wrong;
            st.failed = true;
            ctx.close(conn);
            return input.len();
        }
        let before = st.received / size;
        st.received += input.len() as u64;
        let after = st.received / size;
        for m in before..after {
            let at = st.sent_at[st.ring_slot(m)];
            self.complete(now, st.local, m, at);
        }
        self.refill_tcp(ctx, conn, st, now);
        input.len()
    }

    /// Sends what connection `id` may send now, as one write; `st` is its
    /// state, lent to the running callback.
    pub fn refill_tcp(
        &mut self,
        ctx: &mut Context<'_, Self>,
        id: ConnId,
        st: &mut TcpConn,
        now: Instant,
    ) {
        let size = self.args.size_u64();
        let n = self.allowance(st.sent, st.received / size, st.due);
        if n == 0 {
            return;
        }
        let (pos, len) = st.claim(n, size, now);
        if let Err(e) = ctx.write(id, self.pattern.slice(st.number, pos, len)) {
            // The connection is closed; `closed` counts it.
            log::debug!("{id}: messages not sent: {e}");
        }
    }

    /// `refill_tcp` for a connection whose callback is not running (from a
    /// timer, the pacer, or before the loop runs).
    pub fn refill_from_outside(&mut self, ctx: &mut Context<'_, Self>, id: ConnId, now: Instant) {
        let size = self.args.size_u64();
        let Some(st) = ctx.state_mut(id) else {
            return;
        };
        st.queued_for_refill = false;
        let n = self.allowance(st.sent, st.received / size, st.due);
        if n == 0 {
            return;
        }
        let (pos, len) = st.claim(n, size, now);
        let number = st.number;
        if let Err(e) = ctx.write(id, self.pattern.slice(number, pos, len)) {
            // The connection is closed; `closed` counts it.
            log::debug!("{id}: messages not sent: {e}");
        }
    }

    /// An established connection ended: a loss, unless we closed it at the
    /// end or after counting its failure.
    pub fn tcp_closed(&mut self, conn: ConnId, st: &TcpConn, reason: CloseReason) {
        self.connections.ids[st.local] = None;
        self.progress.connection_down();
        let ours =
            st.failed || (self.schedule.draining() && matches!(reason, CloseReason::ClosedLocally));
        if !ours {
            self.counters.connections_lost += 1;
            if self.counters.connections_lost <= LOSSES_TOLD {
                eprintln!("loadgen: connection {} ({conn}) lost: {reason}", st.number);
            }
        }
    }

    /// Counts and closes connections whose oldest unanswered message is
    /// older than `--timeout`, or, on the `final_drain`, any with a message
    /// unanswered.
    pub fn sweep_tcp(&mut self, ctx: &mut Context<'_, Self>, now: Instant, final_drain: bool) {
        let timeout = self.args.timeout();
        let size = self.args.size_u64();
        for local in 0..self.connections.ids.len() {
            let Some(id) = self.connections.ids[local] else {
                continue;
            };
            let Some(st) = ctx.state_mut(id) else {
                continue;
            };
            let completed = st.received / size;
            if completed >= st.sent {
                continue;
            }
            let oldest = st.sent_at[st.ring_slot(completed)];
            if final_drain || now.duration_since(oldest) >= timeout {
                st.failed = true;
                self.counters.timeouts += 1;
                ctx.close(id);
            }
        }
    }

    /// Messages still awaiting their echo, all TCP connections of this thread.
    pub fn tcp_in_flight(&self, ctx: &Context<'_, Self>) -> u64 {
        let size = self.args.size_u64();
        self.connections
            .ids
            .iter()
            .flatten()
            .filter_map(|id| ctx.state(*id))
            .map(|st| st.in_flight(size))
            .sum()
    }

    /// Closes every TCP connection still open: the run is over.
    pub fn close_all_tcp(&mut self, ctx: &mut Context<'_, Self>) {
        for id in self.connections.ids.iter().flatten() {
            ctx.close(*id);
        }
    }
}
