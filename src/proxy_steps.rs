//! The loop's side of the PROXY protocol: reading a connection's header
//! before anything else, and going on once it is complete.
//!
//! An accepted connection on a listener that asks for the protocol is born
//! `AwaitingProxyHeader`: the socket is read (same rule, same budget) into
//! the connection's input buffer until [`proxy_header::parse`] says the
//! header is complete, malformed or absent. Complete: the connection's peer
//! (and local address) become the ones the header names, the timer is
//! cancelled, and the connection goes on as if just accepted: a TLS
//! handshake on a TLS listener (the bytes after the header are its first
//! records), else `Open`, `opened`, and the bytes after the header as its
//! first input. Anything else closes it (`BadProxyHeader`), and so does
//! the timer (`ProxyHeaderTimeout`). The header is bounded by the format
//! itself (107 bytes for v1, 16 + 65 535 for v2).

use log::debug;

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::handler::Handler;
use crate::input::{Purpose, SocketRead};
use crate::loop_state::Ready;
use crate::proxy_header::{self, Parsed};
use crate::state::{State, WhenConnected};
use crate::token::ConnId;

impl<H: Handler> Loop<'_, H> {
    /// Reads what has arrived of `id`'s PROXY header; goes on once it is
    /// complete, closes if it is not a valid one.
    pub(crate) fn read_proxy_header(&mut self, id: ConnId) {
        let mut scratch = std::mem::take(&mut self.core.scratch);
        if scratch.is_empty() {
            // Lent out (a callback is running): try on the next turn.
            self.core.scratch = scratch;
            self.core.push_ready(Ready::Conn(id));
            return;
        }
        let outcome = self.read_header_bytes(id, &mut scratch);
        self.core.scratch = scratch;
        match outcome {
            Some(Parsed::Complete { length, addresses }) => self.header_done(id, length, addresses),
            Some(Parsed::Invalid(why)) => {
                debug!("conn {id}: bad PROXY protocol header: {why}");
                self.core.close_now(id, CloseReason::BadProxyHeader);
            }
            Some(Parsed::Incomplete) | None => {}
        }
    }

    /// Reads until the header is decided, the socket is drained or the
    /// budget is used; `None` if the connection closed meanwhile.
    fn read_header_bytes(&mut self, id: ConnId, scratch: &mut [u8]) -> Option<Parsed> {
        for _ in 0..self.core.config.read_budget_reads {
            match self.core.read_socket(id, scratch, Purpose::Input) {
                SocketRead::Bytes(n) => {
                    let conn = self.core.conn_mut(id)?;
                    conn.input.extend(&scratch[..n]);
                    match proxy_header::parse(conn.input.unconsumed()) {
                        Parsed::Incomplete => {}
                        decided => return Some(decided),
                    }
                }
                SocketRead::Eof => {
                    // A balancer's TCP health check connects and leaves.
                    debug!("conn {id}: closed before its PROXY header");
                    self.core.close_now(id, CloseReason::BadProxyHeader);
                    return None;
                }
                SocketRead::Drained | SocketRead::NotRead => return Some(Parsed::Incomplete),
                SocketRead::Interrupted => {}
                SocketRead::Failed(e) => {
                    debug!("conn {id}: read failed before its PROXY header: {e}");
                    self.core.close_now(id, CloseReason::from_io(&e));
                    return None;
                }
            }
        }
        // Budget used with bytes left: the next turn reads on.
        if self.core.conn(id).is_some_and(|c| c.ready.readable) {
            self.core.push_ready(Ready::Conn(id));
        }
        Some(Parsed::Incomplete)
    }

    /// The header is complete: take its addresses, then go on as a newly
    /// accepted connection would, with the bytes after the header.
    fn header_done(
        &mut self,
        id: ConnId,
        length: usize,
        addresses: Option<(std::net::SocketAddr, std::net::SocketAddr)>,
    ) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let mut input = std::mem::take(&mut conn.input);
        input.consume(length);
        let rest = input.unconsumed().to_vec();
        if let Some((client, reached)) = addresses {
            debug!("conn {id}: PROXY header: client {client}, reached {reached}");
            conn.peer = client;
            conn.proxied_local = Some(reached);
        }
        let (peer, listener) = (conn.peer, conn.listener);
        if let Some(timer) = conn.state_timer.take() {
            self.core.timers.cancel(timer);
        }
        let tls = listener
            .and_then(|l| self.core.listeners.get(l.0))
            .and_then(|l| l.as_ref())
            .and_then(|l| l.tls.clone());
        match tls {
            Some(setup) => {
                let Some(conn) = self.core.conn_mut(id) else {
                    return;
                };
                let handshaking = State::Handshaking {
                    when_connected: WhenConnected::Open,
                };
                conn.set_state(handshaking, "PROXY header read, TLS handshake");
                if self.core.start_server_session(id, &setup) && !rest.is_empty() {
                    self.tls_input(id, &rest);
                }
            }
            None => {
                let Some(conn) = self.core.conn_mut(id) else {
                    return;
                };
                conn.set_state(State::Open, "PROXY header read");
                self.call_opened(id, peer);
                if !rest.is_empty() {
                    self.deliver_or_keep(id, &rest);
                }
            }
        }
        // The read that completed the header stopped there, not at
        // `WouldBlock`: what followed it (a request, or the peer's FIN) may
        // still wait in the socket, and edge-triggered readiness will not
        // announce it again. Without this a balancer that connected, sent
        // the header and closed left the connection open until a timeout.
        if self.core.conn(id).is_some_and(|c| c.ready.readable) {
            self.core.push_ready(Ready::Conn(id));
        }
        self.flush(id);
    }
}
