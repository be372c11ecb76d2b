//! TLS mode (`--tls`, a build with `--features tls`): the client
//! configuration every connection shares, and opening a connection with it.
//!
//! Nothing else in loadgen knows about TLS: the reactor hands `data` the
//! plaintext, so the echo is verified exactly as in plain mode, and
//! `connected` runs once the handshake is done, so a connection counts as
//! established only then. A handshake that fails closes the connection
//! before `connected` (`TlsError`, `TlsHandshakeTimeout`, ...), and
//! `generator.rs` counts that as a connect failure.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use reactor::{ConnId, Context};

use crate::cli::Args;
use crate::generator::Generator;
use crate::tcp::TcpConn;

/// What every TLS connection of the run is opened with; shared by the
/// threads (the configuration's session cache included, so connections
/// after the first may resume).
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct ClientTls {
    /// Trust (`--tls-ca`, or anything with `--tls-insecure`), no ALPN.
    config: std::sync::Arc<reactor::tls::rustls::ClientConfig>,
    /// `--tls-server-name`: sent as SNI, checked against the certificate.
    name: reactor::tls::ServerName<'static>,
}

/// Without the feature there is no TLS mode (`--tls` is refused by
/// `Args::validate`): no value of this type exists.
#[cfg(not(feature = "tls"))]
#[derive(Clone)]
pub enum ClientTls {}

impl ClientTls {
    /// The configuration `--tls` asks for; `None` without `--tls`. Fails
    /// if the `--tls-ca` file cannot be used (the error names it).
    #[cfg(feature = "tls")]
    pub fn from_args(args: &Args) -> io::Result<Option<ClientTls>> {
        if !args.tls {
            return Ok(None);
        }
        let config = match &args.tls_ca {
            Some(ca) => reactor::tls::client_config(ca, &[])?,
            None => reactor::tls::insecure_client_config(&[]),
        };
        let name = reactor::tls::ServerName::try_from(args.server_name().to_owned())
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        Ok(Some(ClientTls { config, name }))
    }

    /// Always `None`: `validate` refused `--tls` already.
    #[cfg(not(feature = "tls"))]
    pub fn from_args(_: &Args) -> io::Result<Option<ClientTls>> {
        Ok(None)
    }

    /// Starts a TLS connection from `source` to `addr`, as
    /// `Context::connect_from` starts a plain one.
    pub fn connect(
        &self,
        ctx: &mut Context<'_, Generator>,
        source: Option<SocketAddr>,
        addr: SocketAddr,
        timeout: Option<Duration>,
        state: TcpConn,
    ) -> io::Result<ConnId> {
        #[cfg(feature = "tls")]
        {
            ctx.connect_tls_from(
                source,
                addr,
                timeout,
                self.name.clone(),
                std::sync::Arc::clone(&self.config),
                state,
            )
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = (ctx, source, addr, timeout, state);
            match *self {}
        }
    }
}
