//! Opening listening sockets with socket2, the way a server needs them.
//!
//! mio's `TcpListener::bind` hard-codes a backlog of 128 and offers no
//! `SO_REUSEPORT`; here the socket is built step by step (socket, options,
//! bind, listen) so the backlog and options come from [`Config`], and a bind
//! failure names the address it could not take.

use std::io;
use std::net::SocketAddr;

use mio::net::TcpListener;
use socket2::{Domain, Protocol, Socket, Type};

use crate::config::Config;

/// A bound, listening, non-blocking socket ready to register with mio.
pub(crate) fn bind(addr: SocketAddr, config: &Config) -> io::Result<TcpListener> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))
        .map_err(|e| with_context(e, "cannot create a socket for", addr))?;
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
        .map_err(|e| with_context(e, "cannot bind", addr))?;
    let backlog = i32::try_from(config.backlog).unwrap_or(i32::MAX);
    socket
        .listen(backlog)
        .map_err(|e| with_context(e, "cannot listen on", addr))?;
    Ok(TcpListener::from_std(socket.into()))
}

fn with_context(error: io::Error, what: &str, addr: SocketAddr) -> io::Error {
    io::Error::new(error.kind(), format!("{what} {addr}: {error}"))
}

/// A non-blocking outbound connect; completes later with a writable event.
///
/// `local`, if given, is bound before connecting. One source address offers
/// only the ephemeral port range (about 28 000 ports on Linux) towards one
/// destination, so a client opening more connections than that spreads them
/// over several local addresses (127.0.0.x on loopback); port 0 lets the
/// kernel pick the port.
pub(crate) fn start_connect(
    local: Option<SocketAddr>,
    addr: SocketAddr,
    config: &Config,
) -> io::Result<mio::net::TcpStream> {
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    // As for accepted connections: an option the system refuses (no
    // `TCP_NOTSENT_LOWAT` outside Linux) costs the option, not the connect.
    if let Err(e) = set_options(&socket, config) {
        log::debug!("socket options for the connect to {addr}: {e}");
    }
    if let Some(local) = local {
        socket
            .bind(&local.into())
            .map_err(|e| with_context(e, "cannot bind the outbound socket to", local))?;
    }
    match socket.connect(&addr.into()) {
        Ok(()) => {}
        Err(e) if e.raw_os_error() == Some(EINPROGRESS) => {}
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
        Err(e) => return Err(with_context(e, "cannot connect to", addr)),
    }
    Ok(mio::net::TcpStream::from_std(socket.into()))
}

/// The options `Config` asks for on every connection, accepted or
/// outbound: `TCP_NODELAY` and `TCP_NOTSENT_LOWAT`.
pub(crate) fn set_options(socket: impl std::os::fd::AsFd, config: &Config) -> io::Result<()> {
    let socket = socket2::SockRef::from(&socket);
    if config.nodelay {
        socket.set_tcp_nodelay(true)?;
    }
    if let Some(lowat) = config.notsent_lowat {
        socket.set_tcp_notsent_lowat(lowat)?;
    }
    Ok(())
}

/// `EINPROGRESS` on Linux: a non-blocking connect has started.
const EINPROGRESS: i32 = 115;

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
