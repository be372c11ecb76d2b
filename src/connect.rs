//! Connecting out: a non-blocking `connect`, and what happens when it
//! completes.
//!
//! `connect` on a non-blocking socket returns `EINPROGRESS` at once; the
//! socket is registered like an accepted one (readable and writable, once)
//! and its first writable event says the handshake ended. Whether it
//! succeeded is read with `SO_ERROR` (`take_error`), and a `peer_addr` that
//! fails with `ENOTCONN` means the wake-up was spurious. A connect that
//! takes too long is closed by its timer (`ConnectTimeout`).
//!
//! While connecting, the handler may already write (sent once connected),
//! half-close or close; the state remembers which (`WhenConnected`), and
//! the connect's completion carries it out.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use log::debug;
use socket2::{Domain, Protocol, Socket, Type};

use crate::accept::with_address;
use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::config::Config;
use crate::connection::set_socket_options;
use crate::handler::Handler;
use crate::loop_state::LoopState;
use crate::state::{State, WhenConnected};
use crate::timers::TimerKind;
use crate::tls_session::TlsSession;
use crate::token::ConnId;

/// `EINPROGRESS` on Linux: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

/// A non-blocking outbound connect; completes later with a writable event.
///
/// `local`, if given, is bound before connecting. One source address offers
/// only the ephemeral port range (about 28 000 ports on Linux) towards one
/// destination, so a client opening more connections than that spreads them
/// over several local addresses (127.0.0.x on loopback); port 0 lets the
/// kernel pick the port.
fn start_connect(
    local: Option<SocketAddr>,
    addr: SocketAddr,
    config: &Config,
) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // As for accepted connections: an option the system refuses (no
    // `TCP_NOTSENT_LOWAT` outside Linux) costs the option, not the connect.
    if let Err(e) = set_socket_options(&socket, config) {
        debug!("socket options for the connect to {addr}: {e}");
    }
    if let Some(local) = local {
        socket
            .bind(&local.into())
            .map_err(|e| with_address(e, "cannot bind the outbound socket to", local))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(with_address(e, "cannot connect to", addr)),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

impl<H: Handler> LoopState<H> {
    /// Starts a connect to `addr` (from `local` if given) for a connection
    /// whose handler state is `state`; see `Context::connect_from`.
    pub(crate) fn connect(
        &mut self,
        local: Option<SocketAddr>,
        addr: SocketAddr,
        timeout: Option<Duration>,
        state: H::State,
        tls: Option<Box<TlsSession>>,
    ) -> io::Result<ConnId> {
        if self.stats.open_connections as usize >= self.config.max_connections {
            return Err(io::Error::other(format!(
                "cannot connect to {addr}: max_connections ({}) reached",
                self.config.max_connections
            )));
        }
        let socket = start_connect(local, addr, &self.config)?;
        let connecting = State::Connecting {
            when_connected: WhenConnected::Open,
        };
        let id = self.add_connection(socket, addr, connecting, None)?;
        if let Some(conn) = self.conn_mut(id) {
            conn.user = Some(state);
            conn.tls = tls;
        }
        // TLS: the ClientHello waits in the queue for the connect.
        self.queue_tls_records(id);
        self.stats.connects_started += 1;
        debug!("conn {id}: connecting to {addr}");
        if let Some(timeout) = timeout {
            self.arm_state_timer(id, timeout, TimerKind::ConnectTimeout(id));
        }
        Ok(id)
    }
}

impl<H: Handler> Loop<'_, H> {
    /// A writable event on a connecting socket: did the connect succeed?
    pub(crate) fn finish_connect(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        let State::Connecting { when_connected } = conn.state else {
            return;
        };
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        let failure = match socket.take_error() {
            Ok(Some(e)) | Err(e) => Some(e),
            Ok(None) => match socket.peer_addr() {
                Ok(_) => None,
                // Spurious wake-up: still connecting.
                Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                    conn.ready.writable = false;
                    return;
                }
                Err(e) => Some(e),
            },
        };
        if let Some(e) = failure {
            debug!("conn {id}: connect to {} failed: {e}", conn.peer);
            self.core
                .close_now(id, CloseReason::ConnectFailed(e.kind()));
            return;
        }
        let tls = conn.tls.is_some();
        if tls {
            conn.set_state(
                State::Handshaking { when_connected },
                "connected, TLS handshake",
            );
        } else {
            conn.set_state(State::Open, "connected");
        }
        if let Some(timer) = conn.state_timer.take() {
            self.core.timers.cancel(timer);
        }
        if tls {
            // The handler hears `connected` when the handshake completes.
            let timeout = self.core.config.tls_handshake_timeout;
            self.core
                .arm_state_timer(id, timeout, TimerKind::TlsHandshake(id));
            self.flush(id);
        } else {
            self.open_outbound(id, when_connected);
        }
        self.read_input(id);
    }

    /// An outbound connection is open (connected, and for TLS past its
    /// handshake): carry out what was asked meanwhile, tell the handler.
    pub(crate) fn open_outbound(&mut self, id: ConnId, when_connected: WhenConnected) {
        // A half-close or close asked for while connecting, with output
        // queued, was deferred until now. A write side shut while connecting
        // is shut before `connected` runs, so that a write there fails as
        // `shutdown_write` promised (the state then shows `HalfClosing`); a
        // close after flush waits for what `connected` writes.
        let (write_shut, close) = match when_connected {
            WhenConnected::Open => (false, None),
            WhenConnected::ShutdownWrite => (true, None),
            WhenConnected::CloseAfterFlush { reason, write_shut } => (write_shut, Some(reason)),
        };
        if write_shut {
            self.core.shutdown_write(id);
        }
        self.call_with_state(id, "connected", |handler, ctx, state| {
            handler.connected(ctx, id, state)
        });
        if let Some(reason) = close {
            self.core.close_after_flush(id, reason);
        }
        self.flush(id);
        // A `wake` or a drain while connecting is owed now.
        if self.core.conn(id).is_some_and(|c| c.owes_resume()) {
            self.resume_input(id);
        }
    }
}
