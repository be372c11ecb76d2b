//! Listing connections on demand, for operators: what `CLIENT LIST`, a
//! status page or a debugging session shows.
//!
//! Nothing here runs unless asked: the figures are fields the loop keeps
//! anyway (the state, the clocks of the last activity) plus two byte
//! counters per connection, and a listing is built only when a handler
//! calls [`Context::connections`] or [`Context::connection_info`].

use std::net::SocketAddr;
use std::time::Duration;

use crate::connection::Connection;
use crate::context::Context;
use crate::handler::Handler;
use crate::state::ConnState;
use crate::token::{ConnId, ListenerId};

/// One connection as an operator sees it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConnInfo {
    /// Its id.
    pub id: ConnId,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The listener that accepted it; `None` for an outbound connection.
    pub listener: Option<ListenerId>,
    /// Time since it was accepted (or its connect started), to the turn's clock.
    pub age: Duration,
    /// Time since it last read or wrote anything, to the turn's clock.
    pub idle: Duration,
    /// Where it is in its life.
    pub state: ConnState,
    /// Bytes read from its socket (for TLS, the records).
    pub bytes_in: u64,
    /// Bytes its socket took (for TLS, the records).
    pub bytes_out: u64,
    /// Input read and not yet consumed by the handler.
    pub queued_input: usize,
    /// Output queued and not yet taken by the socket.
    pub queued_output: usize,
    /// Whether a TLS session runs on it.
    pub tls: bool,
}

impl ConnInfo {
    fn of<S>(conn: &Connection<S>, now: std::time::Instant) -> ConnInfo {
        ConnInfo {
            id: conn.id,
            peer: conn.peer,
            listener: conn.listener,
            age: now.saturating_duration_since(conn.opened_at),
            idle: now.saturating_duration_since(conn.last_active),
            state: conn.state.kind(),
            bytes_in: conn.bytes_in,
            bytes_out: conn.bytes_out,
            queued_input: conn.input.len(),
            queued_output: conn.output.len(),
            tls: conn.tls.is_some(),
        }
    }
}

impl<H: Handler> Context<'_, H> {
    /// `conn` as an operator sees it; `None` once it has closed.
    pub fn connection_info(&self, conn: ConnId) -> Option<ConnInfo> {
        let now = self.core.now;
        self.core.conn(conn).map(|c| ConnInfo::of(c, now))
    }

    /// Every open connection (any state but closed), in slot order. Builds
    /// the list now: one walk over the slab, nothing kept.
    pub fn connections(&self) -> Vec<ConnInfo> {
        let now = self.core.now;
        self.core
            .conns
            .iter()
            .map(|(_, c)| c)
            .filter(|c| !c.is_closed())
            .map(|c| ConnInfo::of(c, now))
            .collect()
    }
}
