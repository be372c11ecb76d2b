//! `Context`: what a handler callback may do to the loop.
//!
//! Every action takes a [`ConnId`], so a handler can write to, close or time
//! out any connection, not just the one it was called about (a chat server
//! broadcasts this way). Stale ids are harmless: actions on a connection that
//! has closed do nothing or return [`WriteError::Gone`].
//!
//! Effects are immediate on the loop's bookkeeping but I/O waits for the
//! callback to return: writes are queued and leave in one system call per
//! connection, right after the callback or, for other connections, before
//! the loop next sleeps.

use std::io;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mio::event::Source;
use mio::Interest;
use socket2::SockRef;

use crate::close_reason::CloseReason;
use crate::handler::{Handler, WriteError};
use crate::limits::{Limits, LimitsError};
use crate::loop_state::LoopState;
use crate::output::Payload;
use crate::state::ConnState;
use crate::stats::Stats;
use crate::timer_wheel::TimerId;
use crate::token::{ConnId, ListenerId, SourceId};

/// The loop as a handler callback sees it.
pub struct Context<'a, H: Handler> {
    /// The loop's state, borrowed for the length of one callback.
    pub(crate) core: &'a mut LoopState<H>,
}

impl<H: Handler> Context<'_, H> {
    /// Queues a copy of `data` for `conn`.
    ///
    /// Fails with [`WriteError::Gone`] if the connection is closed or no
    /// longer sends, and with [`WriteError::OutputLimit`] (closing it) if the
    /// queue would pass its hard cap ([`Limits::max_output`]). Reaching the
    /// high-water mark sends at once what the socket takes and marks the
    /// connection backpressured ([`Context::is_backpressured`]).
    pub fn write(&mut self, conn: ConnId, data: &[u8]) -> Result<(), WriteError> {
        self.core.queue_output(conn, Payload::Slice(data))
    }

    /// Queues an owned buffer for `conn` without copying it.
    pub fn write_vec(&mut self, conn: ConnId, data: Vec<u8>) -> Result<(), WriteError> {
        self.core.queue_output(conn, Payload::Owned(data))
    }

    /// Closes `conn` now; queued output is dropped. Reason: `ClosedLocally`.
    pub fn close(&mut self, conn: ConnId) {
        self.core.close_now(conn, CloseReason::ClosedLocally);
    }

    /// Stops reading `conn`, writes what is queued, shuts down the write side
    /// and waits briefly for the peer's FIN before closing (so the peer gets
    /// every byte rather than a reset).
    pub fn close_after_flush(&mut self, conn: ConnId) {
        self.core
            .close_after_flush(conn, CloseReason::ClosedLocally);
    }

    /// Shuts down our write side of `conn` once what is queued is written
    /// (`shutdown(SHUT_WR)`: the peer reads EOF) and keeps reading: a
    /// half-close. Later writes fail with [`WriteError::Gone`]. The
    /// connection ends when the peer's FIN arrives too
    /// ([`Handler::read_closed`] runs first). Called on a connection whose
    /// peer already sent FIN, it is [`Context::close_after_flush`]; called
    /// while connecting, it takes effect once connected, before
    /// [`Handler::connected`] runs (a write there fails).
    pub fn shutdown_write(&mut self, conn: ConnId) {
        self.core.shutdown_write(conn);
    }

    /// Closes `conn` now with a reset (`SO_LINGER` 0, then close): the peer
    /// sees `ECONNRESET`, not a clean end, and queued output is dropped. A
    /// proxy passes a reset on this way. Reason: [`CloseReason::Aborted`].
    pub fn abort(&mut self, conn: ConnId) {
        self.core.abort(conn);
    }

    /// Stops reading `conn` and offering its unconsumed input to `data`,
    /// until [`Context::resume_reading`]. The kernel's receive buffer then
    /// fills and TCP flow control slows the peer. Output still flows.
    pub fn pause_reading(&mut self, conn: ConnId) {
        self.core.set_read_paused(conn, true);
    }

    /// Undoes [`Context::pause_reading`]: on the next turn the unconsumed
    /// input is offered again and reading continues, whether or not new
    /// bytes arrived meanwhile.
    pub fn resume_reading(&mut self, conn: ConnId) {
        self.core.set_read_paused(conn, false);
    }

    /// Whether the handler paused reading `conn` (`None` once it is closed).
    pub fn is_reading_paused(&self, conn: ConnId) -> Option<bool> {
        self.core.conn(conn).map(|c| c.flow.read_paused)
    }

    /// Whether `conn`'s queued output reached its high-water mark and has not
    /// yet fallen below its low-water mark. While it is, the loop neither
    /// reads `conn` nor offers it input; a handler producing output in a
    /// loop (pipelined commands, a large reply, a fan-out) stops here and
    /// returns what it consumed: the rest is offered again, and
    /// [`Handler::drained`] runs, once the queue drains. `false` for a
    /// closed connection.
    pub fn is_backpressured(&self, conn: ConnId) -> bool {
        self.core.conn(conn).is_some_and(|c| c.flow.backpressured)
    }

    /// Calls `data` for `conn` on the next turn with its unconsumed input
    /// (possibly empty), even if no new byte arrives and without a timer. A
    /// handler that stops early to let other connections run (fairness)
    /// continues this way. Held back, like any offer, while reading is
    /// paused or the output is backpressured.
    pub fn wake(&mut self, conn: ConnId) {
        self.core.wake(conn);
    }

    /// The limits in force for `conn`: its own if set, else the `Config`'s.
    pub fn limits(&self, conn: ConnId) -> Option<Limits> {
        self.core
            .conn(conn)
            .map(|c| *c.limits_in_force(&self.core.limits))
    }

    /// Gives `conn` limits of its own, replacing the `Config`'s for it
    /// alone (a subscriber gets a pub/sub class, a proxy's backend a larger
    /// buffer). Contradictory limits are refused with the reason. They apply
    /// at once (backpressure, the soft-limit clock); a queue already above a
    /// lowered hard cap is not cut, but the next write closes it.
    pub fn set_limits(&mut self, conn: ConnId, limits: Limits) -> Result<(), LimitsError> {
        limits.validate()?;
        self.core.set_limits(conn, limits);
        Ok(())
    }

    /// The local address of `conn`'s socket (which of the host's addresses
    /// and ports the peer reached, or the source of an outbound connect);
    /// behind a PROXY protocol header, the address the client reached at
    /// the balancer, as the header says.
    pub fn local_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        let conn = self.core.conn(conn)?;
        match conn.proxied_local {
            Some(local) => Some(local),
            None => conn.socket.as_ref()?.local_addr().ok(),
        }
    }

    /// The listener that accepted `conn`; `None` for outbound connections
    /// and closed ones.
    pub fn listener(&self, conn: ConnId) -> Option<ListenerId> {
        self.core.conn(conn)?.listener
    }

    /// `conn`'s socket, for socket options the loop does not set itself:
    /// keepalive, linger, buffer sizes, `TCP_NODELAY` per connection, ...
    /// Reading, writing or shutting it down through this reference bypasses
    /// the loop's buffers and state machine; use the `Context` for those.
    pub fn socket(&self, conn: ConnId) -> Option<SockRef<'_>> {
        self.core.conn(conn)?.socket.as_ref().map(SockRef::from)
    }

    /// Sets (or with `None` removes) the idle timeout of `conn`, counting from now.
    pub fn set_idle_timeout(&mut self, conn: ConnId, timeout: Option<Duration>) {
        self.core.set_idle_timeout(conn, timeout);
    }

    /// Starts a timer that calls [`Handler::timer`] after `after`.
    pub fn start_timer(&mut self, after: Duration, tag: u64) -> TimerId {
        self.core.start_handler_timer(after, None, tag)
    }

    /// Starts a timer bound to `conn`: it does not fire if `conn` has closed.
    pub fn start_conn_timer(&mut self, conn: ConnId, after: Duration, tag: u64) -> TimerId {
        self.core.start_handler_timer(after, Some(conn), tag)
    }

    /// Cancels a timer; `false` if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.core.cancel_timer(timer)
    }

    /// Starts a non-blocking connect to `addr`. The result arrives later:
    /// [`Handler::connected`], or [`Handler::closed`] with
    /// `ConnectFailed` / `ConnectTimeout`. Output written before the connect
    /// completes is sent once it does.
    pub fn connect(
        &mut self,
        addr: SocketAddr,
        timeout: Option<Duration>,
        state: H::State,
    ) -> io::Result<ConnId> {
        self.connect_from(None, addr, timeout, state)
    }

    /// [`Context::connect`] from a chosen local address: the socket is bound
    /// to `local` (port 0: any free port) before connecting; `None` behaves
    /// exactly like `connect`.
    ///
    /// Why: towards one destination a source address has only the ephemeral
    /// port range (about 28 000 ports on Linux), so a load generator opening
    /// more connections spreads them over 127.0.0.2, 127.0.0.3, ...
    pub fn connect_from(
        &mut self,
        local: Option<SocketAddr>,
        addr: SocketAddr,
        timeout: Option<Duration>,
        state: H::State,
    ) -> io::Result<ConnId> {
        self.core.connect(local, addr, timeout, state, None)
    }

    /// Starts a TLS connection to `addr` (the `tls` feature): a
    /// non-blocking connect, then a handshake with `config` for
    /// `server_name` (the name the certificate must be valid for, sent as
    /// SNI). [`Handler::connected`] runs once the handshake completes;
    /// failures reach [`Handler::closed`] (`ConnectFailed`,
    /// `ConnectTimeout`, `TlsError`, `TlsHandshakeTimeout`). Output written
    /// meanwhile is encrypted and sent once the handshake allows.
    /// [`crate::tls::client_config`] builds a configuration.
    #[cfg(feature = "tls")]
    pub fn connect_tls(
        &mut self,
        addr: SocketAddr,
        timeout: Option<Duration>,
        server_name: rustls::pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
        state: H::State,
    ) -> io::Result<ConnId> {
        self.connect_tls_from(None, addr, timeout, server_name, config, state)
    }

    /// [`Context::connect_tls`] from a chosen local address (see
    /// [`Context::connect_from`]).
    #[cfg(feature = "tls")]
    pub fn connect_tls_from(
        &mut self,
        local: Option<SocketAddr>,
        addr: SocketAddr,
        timeout: Option<Duration>,
        server_name: rustls::pki_types::ServerName<'static>,
        config: std::sync::Arc<rustls::ClientConfig>,
        state: H::State,
    ) -> io::Result<ConnId> {
        let session = crate::tls::session::TlsSession::connect(config, server_name)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        self.core
            .connect(local, addr, timeout, state, Some(session))
    }

    /// The TLS session of `conn` (the `tls` feature), once its handshake
    /// has completed: what was negotiated (`alpn_protocol`,
    /// `protocol_version`, `negotiated_cipher_suite`, `handshake_kind` to
    /// see a resumption, `peer_certificates`), and for an accepted
    /// connection the SNI name through `rustls::Connection::Server`.
    /// `None` for plain TCP, a closed connection or during the handshake.
    #[cfg(feature = "tls")]
    pub fn tls(&self, conn: ConnId) -> Option<&rustls::Connection> {
        self.core
            .conn(conn)
            .and_then(|c| c.tls.as_ref())
            .filter(|tls| !tls.is_handshaking())
            .map(|tls| tls.rustls())
    }

    /// The application protocol ALPN agreed on for `conn` (the `tls`
    /// feature), such as `b"http/1.1"`; `None` if none was, or not TLS.
    #[cfg(feature = "tls")]
    pub fn alpn_protocol(&self, conn: ConnId) -> Option<&[u8]> {
        self.tls(conn).and_then(|session| session.alpn_protocol())
    }

    /// The server name the client of accepted TLS connection `conn` asked
    /// for (SNI), which chose its certificate; `None` if it sent none.
    #[cfg(feature = "tls")]
    pub fn server_name(&self, conn: ConnId) -> Option<&str> {
        match self.tls(conn)? {
            rustls::Connection::Server(server) => server.server_name(),
            rustls::Connection::Client(_) => None,
        }
    }

    /// Makes `run` return after this turn. Connections stay open.
    pub fn stop(&mut self) {
        self.core.stop_requested = true;
    }

    /// Starts a graceful shutdown with `grace` until remaining connections
    /// are force-closed (see [`Handle::shutdown`](crate::Handle::shutdown)).
    pub fn shutdown(&mut self, grace: Duration) {
        self.core.shutdown_requested = Some(grace);
    }

    /// Whether a graceful shutdown is under way.
    pub fn is_shutting_down(&self) -> bool {
        self.core.is_shutting_down() || self.core.shutdown_requested.is_some()
    }

    /// The loop's counters as of now.
    pub fn stats(&self) -> &Stats {
        &self.core.stats
    }

    /// The turn's clock: the instant `poll` last returned.
    pub fn now(&self) -> Instant {
        self.core.now
    }

    /// The protocol state of another connection. `None` for the connection
    /// whose callback is running (its state is the callback's argument) and
    /// for closed ones.
    pub fn state(&self, conn: ConnId) -> Option<&H::State> {
        self.core.conn(conn)?.user.as_ref()
    }

    /// Mutable form of [`Context::state`].
    pub fn state_mut(&mut self, conn: ConnId) -> Option<&mut H::State> {
        self.core.conn_mut(conn)?.user.as_mut()
    }

    /// Where `conn` is in its life, or `None` once it is closed.
    pub fn conn_state(&self, conn: ConnId) -> Option<ConnState> {
        self.core.conn(conn).map(|c| c.state.kind())
    }

    /// The peer's address.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.core.conn(conn).map(|c| c.peer)
    }

    /// Bytes queued for `conn` and not yet accepted by its socket.
    pub fn queued_output(&self, conn: ConnId) -> Option<usize> {
        let staged = self.core.staged_len(conn);
        self.core.conn(conn).map(|c| c.output.len() + staged)
    }

    /// Registers any mio source (a UDP socket, a signal pipe, ...) with the
    /// loop; its events call [`Handler::source_ready`]. The handler keeps
    /// ownership of the source.
    pub fn register_source(
        &mut self,
        source: &mut impl Source,
        interest: Interest,
    ) -> io::Result<SourceId> {
        self.core.register_source(source, interest)
    }

    /// Removes a source registered with [`Context::register_source`]; pass
    /// the same source and the id its registration returned. An event for
    /// it already polled in this turn is dropped, not delivered, and its id
    /// is given to a new source only from the next turn. Fails if `id` is
    /// not registered.
    pub fn deregister_source(&mut self, source: &mut impl Source, id: SourceId) -> io::Result<()> {
        self.core.deregister_source(source, id)
    }
}
