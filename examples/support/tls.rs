//! The TLS side of the example servers, kept in one place (included with
//! `#[path = "support/tls.rs"] mod tls;` next to `support/server.rs`, whose
//! `seconds` parser it uses as `crate::server::seconds`):
//!
//! * [`TlsFlags`]: `--tls-cert PATH --tls-key PATH` (repeatable, in pairs)
//!   and `--handshake-timeout SECONDS`, flattened into a server's flags;
//! * [`ServerTls`]: the certificates those flags name, loaded into a
//!   [`CertResolver`](reactor::tls::CertResolver) (the first pair is the
//!   default, the others are chosen by SNI), the server configuration made
//!   from it, and the reload a SIGHUP asks for;
//! * [`apply`]: the certificates, if any, into a listener's options
//!   (`support/listen.rs` opens the listener).
//!
//! The flags exist in every build, so `--help` is the same and a script
//! gets a clear answer: a build without the `tls` feature refuses them
//! with a usage error (exit 2) saying to rebuild with `--features tls`.

use std::io;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use reactor::{Config, ListenerOptions};

use crate::server::ShutdownSignals;

/// What a build without the `tls` feature says to a TLS flag.
// Read only by the build without the feature.
#[allow(dead_code)]
pub const NO_TLS: &str = "this build has no TLS: rebuild with --features tls";

/// The TLS flags of a server (`#[command(flatten)]`).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TlsFlags {
    /// Serve TLS with this certificate chain (PEM, leaf first). Repeatable,
    /// each with its --tls-key: the first pair is the default, the others
    /// are chosen by the name a client asks for (SNI). SIGHUP re-reads the
    /// files.
    #[arg(long = "tls-cert", value_name = "PATH", action = clap::ArgAction::Append)]
    pub certs: Vec<PathBuf>,
    /// Private key (PEM: PKCS#8, SEC1 or PKCS#1) of the --tls-cert in the
    /// same position.
    #[arg(long = "tls-key", value_name = "PATH", action = clap::ArgAction::Append)]
    pub keys: Vec<PathBuf>,
    /// Seconds a TLS handshake may take before the connection is closed
    /// (default 10).
    #[arg(long, value_name = "SECONDS", value_parser = positive_seconds)]
    pub handshake_timeout: Option<Duration>,
}

/// `crate::server::seconds`, refusing zero: a handshake must be allowed
/// some time (the reactor's `Config` refuses a zero timeout too, but as a
/// failure to start rather than a usage error).
fn positive_seconds(text: &str) -> Result<Duration, String> {
    let seconds = crate::server::seconds(text)?;
    if seconds.is_zero() {
        return Err("a handshake needs more than 0 seconds".into());
    }
    Ok(seconds)
}

impl TlsFlags {
    /// Whether any TLS flag was given.
    fn any(&self) -> bool {
        !self.certs.is_empty() || !self.keys.is_empty() || self.handshake_timeout.is_some()
    }

    /// What is wrong with the flags as given, if anything.
    fn problem(&self) -> Option<String> {
        if !cfg!(feature = "tls") {
            return self.any().then(|| NO_TLS.to_string());
        }
        if self.certs.len() != self.keys.len() {
            return Some(format!(
                "--tls-cert and --tls-key come in pairs: {} certificates, {} keys",
                self.certs.len(),
                self.keys.len()
            ));
        }
        if self.certs.is_empty() && self.handshake_timeout.is_some() {
            return Some("--handshake-timeout needs --tls-cert and --tls-key".into());
        }
        None
    }

    /// Exits with a usage error (status 2, with `A`'s usage text) if the
    /// flags cannot be honoured: unpaired certificates and keys, a
    /// handshake timeout without TLS, or any of them in a build without
    /// the `tls` feature. Call before anything is opened.
    pub fn check<A: clap::CommandFactory>(&self) {
        if let Some(problem) = self.problem() {
            // Named as `parse` names it in its own errors: by the program.
            let program = std::env::args_os()
                .next()
                .map(PathBuf::from)
                .and_then(|path| Some(path.file_name()?.to_string_lossy().into_owned()));
            let mut command = A::command();
            if let Some(program) = program {
                command = command.bin_name(program);
            }
            command.error(ErrorKind::ArgumentConflict, problem).exit();
        }
    }

    /// Applies `--handshake-timeout` to `config`.
    pub fn configure(&self, config: &mut Config) {
        if let Some(timeout) = self.handshake_timeout {
            config.tls_handshake_timeout = timeout;
        }
    }

    /// The (certificate, key) pairs, in the order given.
    // Read only by the build with the feature.
    #[allow(dead_code)]
    fn pairs(&self) -> Vec<(PathBuf, PathBuf)> {
        self.certs
            .iter()
            .cloned()
            .zip(self.keys.iter().cloned())
            .collect()
    }

    /// Loads the certificates into a server configuration offering `alpn`
    /// (in preference order); `None` without `--tls-cert`. The error names
    /// the file that could not be used.
    #[cfg(feature = "tls")]
    pub fn load(&self, alpn: &[&[u8]]) -> io::Result<Option<ServerTls>> {
        if self.certs.is_empty() {
            return Ok(None);
        }
        let pairs = self.pairs();
        let resolver = std::sync::Arc::new(reactor::tls::CertResolver::from_pem_files(&pairs)?);
        let config = reactor::tls::server_config(std::sync::Arc::clone(&resolver), alpn)?;
        Ok(Some(ServerTls {
            pairs,
            resolver,
            config,
        }))
    }

    /// Without the feature there is nothing to load (and `check` has
    /// already refused any TLS flag).
    #[cfg(not(feature = "tls"))]
    pub fn load(&self, _alpn: &[&[u8]]) -> io::Result<Option<ServerTls>> {
        Ok(None)
    }
}

/// A server's certificates and the configuration its TLS listener uses.
#[cfg(feature = "tls")]
pub struct ServerTls {
    /// The files, to read again on reload.
    pairs: Vec<(PathBuf, PathBuf)>,
    /// Picks a certificate per handshake; swapped whole by a reload.
    resolver: std::sync::Arc<reactor::tls::CertResolver>,
    /// The rustls configuration, whose certificates come from `resolver`.
    config: std::sync::Arc<reactor::tls::rustls::ServerConfig>,
}

/// Without the feature a server never has certificates: no value of this
/// type exists.
#[cfg(not(feature = "tls"))]
pub enum ServerTls {}

#[cfg(feature = "tls")]
impl ServerTls {
    /// How many certificates are in force.
    pub fn len(&self) -> usize {
        self.resolver.len()
    }

    /// What a SIGHUP does: re-reads every file and swaps the whole set in
    /// (handshakes from now on get the new certificates; established
    /// sessions go on with theirs). Any error leaves the old set in force.
    /// The files are small and read on the loop's thread, between events:
    /// a reload costs the loop about as much as one handshake.
    pub fn reloader(&self) -> impl FnMut() + Send + 'static {
        let pairs = self.pairs.clone();
        let resolver = std::sync::Arc::clone(&self.resolver);
        move || match resolver.reload_pem_files(&pairs) {
            Ok(()) => log::info!("reloaded {} certificates", pairs.len()),
            Err(e) => log::error!("certificates not reloaded, the old ones stay in use: {e}"),
        }
    }
}

/// The server's signal handling: SIGINT and SIGTERM shut down gracefully
/// (`grace`), and with certificates SIGHUP reloads them. Without TLS,
/// SIGHUP is left alone: it keeps its default (ending the process, as it
/// always did for these servers), since there is nothing to reload and a
/// hang-up the server silently ignored would surprise whoever sent it.
pub fn signals(grace: Duration, tls: Option<&ServerTls>) -> io::Result<ShutdownSignals> {
    match tls {
        None => ShutdownSignals::new(grace),
        #[cfg(feature = "tls")]
        Some(tls) => ShutdownSignals::with_reload(grace, Box::new(tls.reloader())),
        #[cfg(not(feature = "tls"))]
        Some(tls) => match *tls {},
    }
}

/// Adds `tls`'s certificates to a listener's `options` (none: it stays
/// plain TCP); returns a note for the "listening on" line, which tests
/// parse up to the address, so the note follows it.
pub fn apply(options: &mut ListenerOptions, tls: Option<&ServerTls>) -> String {
    match tls {
        None => {
            let _ = options;
            String::new()
        }
        #[cfg(feature = "tls")]
        Some(tls) => {
            options.tls = Some(std::sync::Arc::clone(&tls.config));
            let plural = if tls.len() == 1 { "" } else { "s" };
            format!(" (TLS, {} certificate{plural})", tls.len())
        }
        #[cfg(not(feature = "tls"))]
        Some(tls) => match *tls {},
    }
}
