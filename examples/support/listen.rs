//! Where an example server's listening socket comes from and how it treats
//! what it accepts, for a server that runs behind a load balancer (included
//! with `#[path = "support/listen.rs"] mod listen;`, like `support/server.rs`):
//!
//! * [`ListenFlags`]: `--proxy-protocol` (every connection starts with a
//!   PROXY protocol v1 or v2 header from the balancer, so the handler sees
//!   the client's address) and `--reuse-port` (`SO_REUSEPORT`, so a new
//!   instance can bind the address while the old one drains);
//! * [`listen`]: the socket systemd's socket activation handed over
//!   (`LISTEN_FDS`, `LISTEN_PID`), adopted with `Reactor::listen_from`, or
//!   else `--addr`, bound with `Reactor::listen_with`.
//!
//! Socket activation goes through the listenfd crate because turning the
//! inherited descriptor 3 into a `TcpListener` needs unsafe code, which this
//! package forbids. docs/deploy.md shows the systemd units.

use std::io;
use std::net::SocketAddr;

use reactor::{Config, Handler, ListenerId, ListenerOptions, Reactor};

/// The load-balancer flags of a server (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct ListenFlags {
    /// Expect a PROXY protocol header (v1 or v2, as HAProxy's
    /// `send-proxy-v2` or nginx's `proxy_protocol on` send) at the start of
    /// every connection: the client's address is the one it names.
    /// Connections without one are closed.
    #[arg(long)]
    pub proxy_protocol: bool,
    /// Bind with SO_REUSEPORT, so that another instance started with this
    /// flag on the same address shares it: the new one takes over while the
    /// old one drains (every instance on the address needs the flag).
    /// Ignored for a socket handed over by systemd (its unit's `ReusePort=`
    /// decides).
    #[arg(long)]
    pub reuse_port: bool,
}

impl ListenFlags {
    /// Applies `--reuse-port` to `config` (the reactor binds with it).
    pub fn configure(&self, config: &mut Config) {
        config.reuse_port = self.reuse_port;
    }

    /// The listener options these flags ask for (TLS is added by
    /// `support/tls.rs`, in the servers that have it).
    // Without the `tls` feature the update fills nothing; with it, `tls`.
    #[allow(clippy::needless_update)]
    pub fn options(&self) -> ListenerOptions {
        ListenerOptions {
            proxy_protocol: self.proxy_protocol,
            ..ListenerOptions::default()
        }
    }
}

/// Listens with `options`: on the socket systemd handed over if there is
/// one (`LISTEN_FDS` set), else on `addr`. Returns the listener and a note
/// for the "listening on" line, which tests parse up to the address, so
/// the note follows it.
///
/// With `LISTEN_FDS` set but no socket for this process (`LISTEN_PID` names
/// another one, or descriptor 3 is not a TCP listener), this is an error
/// rather than a quiet fall-back to `addr`: a unit that meant to hand a
/// socket over would otherwise get a server bound somewhere else.
pub fn listen<H: Handler>(
    reactor: &mut Reactor<H>,
    addr: SocketAddr,
    options: ListenerOptions,
) -> io::Result<(ListenerId, String)> {
    let proxy_note = if options.proxy_protocol {
        " (PROXY protocol)"
    } else {
        ""
    };
    if std::env::var_os("LISTEN_FDS").is_none() {
        let listener = reactor.listen_with(addr, options)?;
        return Ok((listener, proxy_note.to_string()));
    }
    let inherited = listenfd::ListenFd::from_env()
        .take_tcp_listener(0)
        .map_err(|e| io::Error::new(e.kind(), format!("LISTEN_FDS: descriptor 3: {e}")))?;
    let Some(socket) = inherited else {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            "LISTEN_FDS is set but no listening socket was handed to this process \
             (LISTEN_PID names another process?)",
        ));
    };
    let listener = reactor.listen_from(socket, options)?;
    Ok((listener, format!("{proxy_note} (socket activation)")))
}
