//! TLS on the reactor (the `tls` feature): rustls between the socket and
//! the connection's buffers.
//!
//! A TLS listener ([`Reactor::listen_tls`](crate::Reactor::listen_tls)) or
//! outbound connection ([`Context::connect_tls`](crate::Context::connect_tls))
//! is the same connection in the same slab, registered once like any other;
//! it carries a rustls session that sits between its socket and its buffers.
//! Ciphertext is read with the loop's own 64 KiB read and fed to rustls;
//! plaintext reaches the handler's `data` exactly as on plain TCP; what the
//! handler writes is encrypted at once and the records join the same
//! vectored output queue. So a handler written for plain TCP works over
//! TLS unchanged. `docs/architecture.md` ("TLS") draws where the session
//! sits and how the handshake fits a connection's life.
//!
//! This module holds what an embedder needs to build the rustls
//! configurations: loading PEM files ([`load_certified_key`]), a
//! certificate resolver that picks by SNI and reloads without a restart
//! ([`CertResolver`]), and configurations with the loop's choices made
//! ([`server_config`], [`client_config`], [`insecure_client_config`]).
//! The crypto provider is ring (see `Cargo.toml` for why).

pub use rustls;
pub use rustls::pki_types::ServerName;

mod certs;
pub(crate) mod session;

pub use certs::{
    client_config, insecure_client_config, load_certified_key, server_config, CertResolver,
};
