//! Accepting: listening sockets, the accept loop, admitting a connection,
//! and the pause when the process runs out of descriptors.
//!
//! A listener is built step by step with socket2 (socket, options, bind,
//! listen) because mio's `TcpListener::bind` hard-codes a backlog of 128 and
//! offers no `SO_REUSEPORT`; a bind failure names the address it could not
//! take. It is registered once, readable, edge-triggered: one event may
//! stand for many waiting connections, so the loop accepts until
//! `WouldBlock` (or its per-turn budget, then the ready queue).
//!
//! Errors from `accept` come in three kinds:
//!
//! * about the one connection being accepted (it was reset in the backlog,
//!   or a network error accept(2) says to treat like `EAGAIN`): skip it and
//!   keep accepting;
//! * out of descriptors or kernel memory (`EMFILE`, `ENFILE`, `ENOBUFS`,
//!   `ENOMEM`): accepting pauses and resumes from a timer, because with edge
//!   triggering no new event will come for connections already waiting,
//!   and retrying at once would spin;
//! * anything else means the listener itself is broken: it pauses the same
//!   way, logged as an error, so a broken listener cannot spin the loop.

use std::io;
use std::net::SocketAddr;

use log::{debug, error, info, trace, warn};
use mio::net::{TcpListener, TcpStream};
use mio::Interest;
use socket2::{Domain, Protocol, Socket, Type};

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::config::Config;
use crate::connection::set_socket_options;
use crate::handler::Handler;
use crate::loop_state::{LoopState, Ready};
use crate::state::{State, WhenConnected};
use crate::timers::TimerKind;
use crate::tls_session::ServerSetup;
use crate::token::{self, ConnId, ListenerId};

/// `EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM` on Linux: out of descriptors or
/// kernel memory.
const RESOURCE_ERRORS: [i32; 4] = [24, 23, 105, 12];

/// Errors about the one connection being accepted, which accept(2) on
/// Linux says to retry like `EAGAIN`: `EPROTO`, `ENOPROTOOPT`, `ENETDOWN`,
/// `ENONET`, `EHOSTDOWN`, `EHOSTUNREACH`, `EOPNOTSUPP`, `ENETUNREACH`, and
/// `EPERM` (a firewall rule refused it).
const PER_CONNECTION_ERRORS: [i32; 9] = [71, 92, 100, 64, 112, 113, 95, 101, 1];

/// A listening socket.
#[derive(Debug)]
pub(crate) struct Listener {
    /// The socket, registered READABLE with its listener token.
    pub(crate) socket: TcpListener,
    /// Invariant: the listener is on the ready queue at most once.
    pub(crate) in_ready_queue: bool,
    /// TLS: the configuration every accepted connection's session is made
    /// from; `None` for a plain listener.
    pub(crate) tls: Option<ServerSetup>,
    /// Every connection starts with a PROXY protocol header.
    pub(crate) proxy_protocol: bool,
}

/// How a listener treats the connections it accepts (see
/// [`Reactor::listen_with`](crate::Reactor::listen_with)).
#[derive(Clone, Debug, Default)]
pub struct ListenerOptions {
    /// Each connection starts with a PROXY protocol header (v1 or v2, from a
    /// load balancer such as HAProxy with `send-proxy(-v2)`): the handler
    /// sees the client's address as the peer. A connection without a valid
    /// header is closed (`CloseReason::BadProxyHeader`), one whose header
    /// takes longer than `Config::proxy_header_timeout` too.
    pub proxy_protocol: bool,
    /// TLS (the `tls` feature): each connection (after its PROXY header, if
    /// any) first completes a handshake with this configuration.
    #[cfg(feature = "tls")]
    pub tls: Option<std::sync::Arc<rustls::ServerConfig>>,
}

impl ListenerOptions {
    /// These options with the PROXY protocol on or off; the same whether or
    /// not the build has TLS (a struct literal would have to name `tls`).
    #[must_use]
    pub fn with_proxy_protocol(mut self, on: bool) -> ListenerOptions {
        self.proxy_protocol = on;
        self
    }

    /// These options with TLS (the `tls` feature).
    #[cfg(feature = "tls")]
    #[must_use]
    pub fn with_tls(mut self, config: std::sync::Arc<rustls::ServerConfig>) -> ListenerOptions {
        self.tls = Some(config);
        self
    }
}

/// A bound, listening, non-blocking socket ready to register with mio.
pub(crate) fn bind(addr: SocketAddr, config: &Config) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| with_address(e, "cannot create a socket for", addr))?;
    // SO_REUSEADDR lets a restarted server bind while old connections sit in
    // TIME_WAIT; it does not let two live servers share the port.
    socket.set_reuse_address(true)?;
    if config.reuse_port {
        socket.set_reuse_port(true)?;
    }
    if addr.is_ipv6() {
        // An IPv6 listener accepts IPv6 only, so an IPv4 listener on the same
        // port can coexist, the same on every system.
        socket.set_only_v6(true)?;
    }
    socket.set_nonblocking(true)?;
    socket
        .bind(&addr.into())
        .map_err(|e| with_address(e, "cannot bind", addr))?;
    let backlog = i32::try_from(config.backlog).unwrap_or(i32::MAX);
    socket
        .listen(backlog)
        .map_err(|e| with_address(e, "cannot listen on", addr))?;
    Ok(TcpListener::from_std(socket.into()))
}

/// Whether an `accept` error is about the one connection being accepted
/// (skip it, accept on) rather than the listener or the process.
pub(crate) fn is_per_connection(error: &io::Error) -> bool {
    error.kind() == io::ErrorKind::ConnectionAborted
        || PER_CONNECTION_ERRORS.contains(&error.raw_os_error().unwrap_or(0))
}

/// `error`, with what was being done to which address.
pub(crate) fn with_address(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {addr}: {error}"))
}

impl<H: Handler> LoopState<H> {
    /// Binds `addr` and registers the listener; with `tls`, every
    /// connection it accepts starts with a TLS handshake.
    pub(crate) fn add_listener(
        &mut self,
        addr: SocketAddr,
        tls: Option<ServerSetup>,
        proxy_protocol: bool,
    ) -> io::Result<ListenerId> {
        let socket = bind(addr, &self.config)?;
        self.register_listener(socket, tls, proxy_protocol)
    }

    /// Registers a listening socket (bound here, or handed over by systemd
    /// or a previous instance) and keeps it.
    pub(crate) fn register_listener(
        &mut self,
        mut socket: TcpListener,
        tls: Option<ServerSetup>,
        proxy_protocol: bool,
    ) -> io::Result<ListenerId> {
        let index = self.listeners.len();
        self.registry.register(
            &mut socket,
            token::listener_token(index),
            Interest::READABLE,
        )?;
        let kind = if tls.is_some() { "TLS" } else { "TCP" };
        let proxied = if proxy_protocol {
            ", PROXY protocol"
        } else {
            ""
        };
        info!("listening on {} ({kind}{proxied})", socket.local_addr()?);
        self.listeners.push(Some(Listener {
            socket,
            in_ready_queue: false,
            tls,
            proxy_protocol,
        }));
        Ok(ListenerId(index))
    }

    /// Closes every listener (a graceful shutdown): new connects are refused.
    pub(crate) fn close_listeners(&mut self) {
        for listener in self.listeners.iter_mut() {
            if let Some(mut l) = listener.take() {
                // Dropping the socket closes it; deregistering first keeps
                // the registry's view exact.
                let _ = self.registry.deregister(&mut l.socket);
            }
        }
    }

    /// Pauses accepting until the retry timer fires.
    fn pause_accepting(&mut self) {
        self.accept_paused = true;
        self.stats.accept_pauses += 1;
        let retry = self.now + self.config.accept_retry_delay;
        self.timers.insert(retry, TimerKind::AcceptRetry);
    }

    /// The retry timer fired: try every listener again (no new edge will
    /// come for the connections that waited).
    pub(crate) fn resume_accepting(&mut self) {
        debug!("retrying accept");
        self.accept_paused = false;
        for index in 0..self.listeners.len() {
            self.push_ready(Ready::Listener(index));
        }
    }
}

impl<H: Handler> Loop<'_, H> {
    /// Accepts from listener `index` until `WouldBlock` or the budget.
    pub(crate) fn accept(&mut self, index: usize) {
        if self.core.accept_paused {
            return;
        }
        for _ in 0..self.core.config.accepts_per_turn {
            let Some(Some(listener)) = self.core.listeners.get(index) else {
                return;
            };
            // TLS: at the cap on handshakes, connections wait in the
            // backlog; the end of a handshake brings the listener back.
            if listener.tls.is_some() && self.core.tls_accept_must_wait() {
                return;
            }
            let Some(Some(listener)) = self.core.listeners.get(index) else {
                return;
            };
            match listener.socket.accept() {
                Ok((socket, peer)) => self.admit(index, socket, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if is_per_connection(&e) => {
                    debug!("listener {index}: accept skipped a connection: {e}");
                }
                Err(e) => {
                    if RESOURCE_ERRORS.contains(&e.raw_os_error().unwrap_or(0)) {
                        warn!("accept paused: {e}");
                    } else {
                        error!("accept failed, pausing: {e}");
                    }
                    self.core.pause_accepting();
                    return;
                }
            }
        }
        trace!("listener {index}: accept budget used, yielding");
        self.core.stats.budget_yields += 1;
        self.core.push_ready(Ready::Listener(index));
    }

    /// Takes in one accepted socket, or turns it away over the limit, and
    /// asks the handler for its state.
    fn admit(&mut self, listener: usize, socket: TcpStream, peer: SocketAddr) {
        let core = &mut *self.core;
        core.stats.accepted += 1;
        if core.stats.open_connections as usize >= core.config.max_connections {
            core.stats.rejected += 1;
            debug!(
                "rejected {peer}: max_connections ({}) reached",
                core.config.max_connections
            );
            return; // dropping the socket closes it
        }
        if let Err(e) = set_socket_options(&socket, &core.config) {
            debug!("socket options for {peer}: {e}");
        }
        let (tls, proxy_protocol) = match &core.listeners[listener] {
            Some(l) => (l.tls.clone(), l.proxy_protocol),
            None => (None, false),
        };
        let state = match (proxy_protocol, &tls) {
            (true, _) => State::AwaitingProxyHeader,
            (false, Some(_)) => State::Handshaking {
                when_connected: WhenConnected::Open,
            },
            (false, None) => State::Open,
        };
        let id = match core.add_connection(socket, peer, state, Some(ListenerId(listener))) {
            Ok(id) => id,
            Err(e) => {
                // Turned away like a connection over the limit: every
                // accepted socket is counted as open, rejected or closed.
                warn!("cannot register connection from {peer}: {e}");
                self.core.stats.rejected += 1;
                return;
            }
        };
        if proxy_protocol {
            // The header comes first (`proxy_steps.rs`); then TLS, then the
            // handler.
            let timeout = self.core.config.proxy_header_timeout;
            self.core
                .arm_state_timer(id, timeout, TimerKind::ProxyHeader(id));
            return;
        }
        if let Some(setup) = tls {
            // The handler hears of it when the handshake completes.
            if self.core.start_server_session(id, &setup) {
                self.flush(id);
            }
            return;
        }
        self.call_opened(id, peer);
        self.flush(id);
    }

    /// Takes in a connection another loop accepted and handed over
    /// (`Handle::adopt`): as a plain accepted one, without a listener.
    pub(crate) fn adopt(&mut self, socket: std::net::TcpStream, peer: SocketAddr) {
        self.core.stats.adopted += 1;
        if self.core.stats.open_connections as usize >= self.core.config.max_connections {
            self.core.stats.rejected += 1;
            debug!("rejected handed-over {peer}: max_connections reached");
            return;
        }
        if let Err(e) = socket.set_nonblocking(true) {
            warn!("cannot take in {peer}: {e}");
            return;
        }
        let socket = TcpStream::from_std(socket);
        if let Err(e) = set_socket_options(&socket, &self.core.config) {
            debug!("socket options for {peer}: {e}");
        }
        match self.core.add_connection(socket, peer, State::Open, None) {
            Ok(id) => {
                self.call_opened(id, peer);
                self.flush(id);
            }
            Err(e) => {
                warn!("cannot register handed-over connection from {peer}: {e}");
                self.core.stats.rejected += 1;
            }
        }
    }

    /// Asks the handler for the state of accepted connection `id` (now
    /// open: at accept, or for TLS once the handshake completed).
    pub(crate) fn call_opened(&mut self, id: ConnId, peer: SocketAddr) {
        match self.call("opened", |handler, ctx| handler.opened(ctx, id, peer)) {
            Some(state) => {
                // Store the state even if `opened` closed the connection
                // itself: its slot lives until the end of the turn, and
                // `report_closed` hands the state to `closed`, so every
                // `opened` is matched by one `closed`.
                if let Some(conn) = crate::connection::record_mut(&mut self.core.conns, id) {
                    conn.user = Some(state);
                }
            }
            None => self.core.close_now(id, CloseReason::HandlerPanic),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bind_failure_names_the_address() {
        let config = Config::default();
        let first = bind("127.0.0.1:0".parse().unwrap(), &config).unwrap();
        let taken = first.local_addr().unwrap();
        let error = bind(taken, &config).unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::AddrInUse);
        assert!(error.to_string().contains(&taken.to_string()), "{error}");
    }

    #[test]
    fn listens_on_ipv6_loopback_when_available() {
        let config = Config::default();
        match bind("[::1]:0".parse().unwrap(), &config) {
            Ok(listener) => assert!(listener.local_addr().unwrap().is_ipv6()),
            // Some sandboxes have no IPv6 at all; that is not our failure.
            Err(e) => assert!(e.to_string().contains("[::1]"), "{e}"),
        }
    }
}
