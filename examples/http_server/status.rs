//! `GET /basic_status` for the `http_server` example: nginx's `stub_status`
//! page, byte for byte in shape, so tools written for nginx
//! (prometheus-nginx-exporter, monitoring plugins) read this server too.
//!
//! It owns the per-connection phase (reading a head, busy with a request,
//! idle) and the per-phase counts, kept up to date as connections move
//! between phases, so the page costs no walk over the connections and the
//! other routes pay only a compare per `data` call. The reactor's own
//! counters give the rest: accepted, rejected, open.

use reactor::Stats;

use super::decimal::push_decimal;

/// Where a connection is in its request stream, as nginx's counters see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Nothing of the next request has arrived: an idle keep-alive (or new)
    /// connection.
    Waiting = 0,
    /// Part of a request head has arrived, not all of it.
    Reading = 1,
    /// A request is in progress: its body is being read, or its response
    /// is held back by a client that reads slowly (or the final one is
    /// being flushed before a close).
    Writing = 2,
}

/// The counts behind the page.
#[derive(Debug, Default)]
pub struct StatusCounts {
    /// Connections in each phase, indexed by `Phase as usize`. Invariant:
    /// the sum of `phase` over the connections the handler holds.
    in_phase: [u64; 3],
    /// Requests answered, refusals included (nginx counts every request it
    /// reads a head for).
    pub requests: u64,
}

impl StatusCounts {
    /// A connection was opened: it waits for its first request.
    pub fn opened(&mut self) -> Phase {
        self.in_phase[Phase::Waiting as usize] += 1;
        Phase::Waiting
    }

    /// Moves a connection from `*phase` to `to`.
    pub fn enter(&mut self, phase: &mut Phase, to: Phase) {
        if *phase != to {
            self.in_phase[*phase as usize] -= 1;
            self.in_phase[to as usize] += 1;
            *phase = to;
        }
    }

    /// A connection in `phase` closed.
    pub fn closed(&mut self, phase: Phase) {
        self.in_phase[phase as usize] -= 1;
    }

    /// Appends the page to `out`, as asked by a connection whose recorded
    /// phase is `asking`. That connection is counted as writing, as nginx
    /// counts the request that reads its own status: its phase is only
    /// brought up to date when its `data` call ends, so it is moved here.
    pub fn render(&self, out: &mut Vec<u8>, stats: &Stats, asking: Phase) {
        let mut in_phase = self.in_phase;
        in_phase[asking as usize] -= 1;
        in_phase[Phase::Writing as usize] += 1;
        let reading = in_phase[Phase::Reading as usize];
        let writing = in_phase[Phase::Writing as usize];
        // The reactor's gauge, not the handler's sum: like nginx's, it
        // includes connections the handler does not hold yet (a TLS
        // handshake in progress), which show as waiting, as in nginx.
        let active = stats.open_connections.max(reading + writing);
        // nginx's exact text, trailing spaces included (its
        // ngx_http_stub_status_module.c): parsers split on them.
        out.extend_from_slice(b"Active connections: ");
        push_decimal(out, active);
        out.extend_from_slice(b" \nserver accepts handled requests\n ");
        push_decimal(out, stats.accepted);
        out.push(b' ');
        push_decimal(out, stats.accepted - stats.rejected);
        out.push(b' ');
        push_decimal(out, self.requests);
        out.extend_from_slice(b" \nReading: ");
        push_decimal(out, reading);
        out.extend_from_slice(b" Writing: ");
        push_decimal(out, writing);
        out.extend_from_slice(b" Waiting: ");
        push_decimal(out, active - (reading + writing));
        out.extend_from_slice(b" \n");
    }
}
