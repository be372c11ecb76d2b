//! Certificates and rustls configurations: everything between PEM files on
//! disk and the `Arc<ServerConfig>` / `Arc<ClientConfig>` a TLS connection
//! is built from.
//!
//! It lives apart from the session code because none of it runs on the
//! loop's hot path except [`CertResolver::resolve`], once per handshake,
//! and because it is what an embedder touches directly: which files, which
//! ALPN protocols, and reloading certificates without a restart. Every
//! configuration names ring explicitly instead of the process-default
//! provider, so nothing depends on what another crate installed first.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{ring, CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::{ClientHello, ResolvesServerCert, ResolvesServerCertUsingSni};
use rustls::sign::CertifiedKey;
use rustls::{DigitallySignedStruct, SignatureScheme};

/// How many SNI names a certificate set remembers. Names come from clients,
/// so without a bound anyone could grow the cache by sending random names;
/// 1024 is far more distinct names than a server has certificates for.
const MAX_CACHED_NAMES: usize = 1024;

/// Loads a certificate chain and its private key from PEM files: the key
/// may be PKCS#8, SEC1 (EC) or PKCS#1 (RSA).
///
/// Errors are `io::Error`s of kind `NotFound` (or whatever opening the file
/// gave) or `InvalidData`, whose message names the file and what is wrong
/// with it: no certificate in it, no private key in it, a key type ring
/// cannot sign with, or a key that does not match the certificate.
pub fn load_certified_key(cert_path: &Path, key_path: &Path) -> io::Result<Arc<CertifiedKey>> {
    let chain = load_certificates(cert_path)?;
    let key = PrivateKeyDer::from_pem_file(key_path)
        .map_err(|e| pem_error(key_path, "private key", e))?;
    let signing_key = ring::default_provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| invalid(key_path, &format!("unsupported key type ({e})")))?;
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        // ring's keys always expose their public half, so `Unknown` cannot
        // happen here; it is accepted as rustls's own `from_der` does.
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(invalid(
            key_path,
            &format!(
                "key does not match the certificate in {}",
                cert_path.display()
            ),
        )),
        Err(e) => Err(invalid(cert_path, &format!("unusable certificate ({e})"))),
    }
}

/// Every certificate in a PEM file, in file order (leaf first, as TLS sends
/// them). Other sections, such as a key kept in the same file, are skipped.
fn load_certificates(path: &Path) -> io::Result<Vec<CertificateDer<'static>>> {
    let chain = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| pem_error(path, "certificate", e))?;
    if chain.is_empty() {
        return Err(invalid(path, "no certificate in file"));
    }
    Ok(chain)
}

/// An error naming `path`; an I/O error keeps its kind so that a caller
/// can still tell a missing file from a malformed one.
fn pem_error(path: &Path, what: &str, error: pem::Error) -> io::Error {
    match error {
        pem::Error::Io(e) => io::Error::new(e.kind(), format!("{}: {e}", path.display())),
        pem::Error::NoItemsFound => invalid(path, &format!("no {what} in file")),
        other => invalid(path, &format!("malformed PEM ({other})")),
    }
}

fn invalid(path: &Path, what: &str) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{}: {what}", path.display()),
    )
}

/// Chooses the server certificate for each handshake: the one valid for the
/// SNI name the client sent, else the first (the default).
///
/// Reloadable: [`replace`](Self::replace) swaps the whole set atomically;
/// handshakes after it get the new certificates, established sessions are
/// untouched (they hold their own reference to the key they started with).
///
/// Names are compared as rustls hands them over, which is already
/// lowercased, so matching is case-insensitive.
#[derive(Debug)]
pub struct CertResolver {
    /// The set in force. Swapped whole, never edited in place, so that a
    /// handshake sees either the old set or the new one and never a mix.
    current: RwLock<Arc<CertSet>>,
}

/// One generation of certificates together with what was learnt about it.
/// The cache lives inside the set so that replacing the set drops it too:
/// a handshake still finishing against the old set can only write into the
/// old cache, never leave a stale index in the new one.
#[derive(Debug)]
struct CertSet {
    /// Never empty; the first is the default for clients that send no SNI
    /// name or one no certificate is valid for.
    keys: Vec<Arc<CertifiedKey>>,
    /// SNI name -> index into `keys` of the first certificate valid for it,
    /// or `None` when none is (so unknown names are not checked again).
    /// Holds at most `MAX_CACHED_NAMES` entries.
    by_name: Mutex<HashMap<String, Option<usize>>>,
}

impl CertSet {
    fn new(keys: Vec<Arc<CertifiedKey>>) -> io::Result<CertSet> {
        if keys.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "a certificate resolver needs at least one certificate",
            ));
        }
        Ok(CertSet {
            keys,
            by_name: Mutex::new(HashMap::new()),
        })
    }

    fn choose(&self, name: Option<&str>) -> Arc<CertifiedKey> {
        let index = name.and_then(|name| self.index_for(name)).unwrap_or(0);
        Arc::clone(&self.keys[index])
    }

    fn index_for(&self, name: &str) -> Option<usize> {
        // A panic elsewhere while holding the lock cannot leave the map
        // inconsistent (every change is one insert or clear), so a
        // poisoned lock is used as it is rather than failing handshakes.
        let mut cache = self.by_name.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(&index) = cache.get(name) {
            return index;
        }
        let index = self.keys.iter().position(|key| valid_for(key, name));
        if cache.len() >= MAX_CACHED_NAMES {
            cache.clear();
        }
        cache.insert(name.to_owned(), index);
        index
    }
}

/// Whether `key`'s certificate names `name`, asked of rustls (which checks
/// with webpki, wildcards included) so that no X.509 is parsed here.
fn valid_for(key: &CertifiedKey, name: &str) -> bool {
    ResolvesServerCertUsingSni::new()
        .add(name, key.clone())
        .is_ok()
}

impl CertResolver {
    /// A resolver over `certs`, the first being the default. Fails with
    /// `InvalidInput` if `certs` is empty: a handshake needs a certificate.
    pub fn new(certs: Vec<Arc<CertifiedKey>>) -> io::Result<CertResolver> {
        Ok(CertResolver {
            current: RwLock::new(Arc::new(CertSet::new(certs)?)),
        })
    }

    /// A resolver over `(certificate, key)` PEM file pairs, loaded with
    /// [`load_certified_key`]; the first pair is the default.
    pub fn from_pem_files(pairs: &[(PathBuf, PathBuf)]) -> io::Result<CertResolver> {
        CertResolver::new(load_pairs(pairs)?)
    }

    /// Makes `certs` the set for handshakes from now on. On error (an empty
    /// `certs`) the old set stays in force.
    pub fn replace(&self, certs: Vec<Arc<CertifiedKey>>) -> io::Result<()> {
        let set = Arc::new(CertSet::new(certs)?);
        *self.current.write().unwrap_or_else(PoisonError::into_inner) = set;
        Ok(())
    }

    /// Loads every pair before replacing anything, so that one bad file
    /// leaves the old set in force rather than a partial new one.
    pub fn reload_pem_files(&self, pairs: &[(PathBuf, PathBuf)]) -> io::Result<()> {
        self.replace(load_pairs(pairs)?)
    }

    /// How many certificates the set in force holds.
    pub fn len(&self) -> usize {
        self.current().keys.len()
    }

    /// Always false, since a resolver is never without a certificate;
    /// present because a `len` without it would puzzle readers and clippy.
    pub fn is_empty(&self) -> bool {
        self.current().keys.is_empty()
    }

    /// The set in force. The read lock is held only to clone the `Arc`, so
    /// a handshake never blocks a `replace` for longer than that.
    fn current(&self) -> Arc<CertSet> {
        Arc::clone(&self.current.read().unwrap_or_else(PoisonError::into_inner))
    }
}

fn load_pairs(pairs: &[(PathBuf, PathBuf)]) -> io::Result<Vec<Arc<CertifiedKey>>> {
    pairs
        .iter()
        .map(|(cert, key)| load_certified_key(cert, key))
        .collect()
}

impl ResolvesServerCert for CertResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current().choose(hello.server_name()))
    }
}

/// A server configuration with the loop's choices: ring, TLS 1.2 and 1.3,
/// certificates from `resolver`, `alpn` protocols in preference order, and
/// resumption both by tickets and by rustls's default in-memory session
/// cache. No client authentication.
pub fn server_config(
    resolver: Arc<CertResolver>,
    alpn: &[&[u8]],
) -> io::Result<Arc<rustls::ServerConfig>> {
    let mut config = rustls::ServerConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    // Tickets let a client resume on any process holding the same
    // ticketer; the builder's default `session_storage` (a bounded
    // in-memory cache) serves clients that do not take tickets.
    config.ticketer = ring::Ticketer::new().map_err(io::Error::other)?;
    config.alpn_protocols = alpn_list(alpn);
    Ok(Arc::new(config))
}

/// A client configuration trusting only the CA certificates in the PEM
/// file `ca_pem` (not the system's roots: this crate's clients talk to
/// servers whose CA they were given), with ring, `alpn` as given and
/// rustls's default resumption cache.
pub fn client_config(ca_pem: &Path, alpn: &[&[u8]]) -> io::Result<Arc<rustls::ClientConfig>> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certificates(ca_pem)? {
        roots
            .add(cert)
            .map_err(|e| invalid(ca_pem, &format!("unusable CA certificate ({e})")))?;
    }
    let mut config = rustls::ClientConfig::builder_with_provider(ring_provider())
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    Ok(Arc::new(config))
}

/// A client configuration that accepts ANY server certificate: only for
/// load tests against self-signed test certificates, never for traffic
/// that matters. The handshake's signatures are still verified, so the
/// server must hold the key of the certificate it sent.
pub fn insecure_client_config(alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let provider = ring_provider();
    let verifier = AcceptAnyServerCert {
        algorithms: provider.signature_verification_algorithms,
    };
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(rustls::ALL_VERSIONS)
        .expect("ring's default provider supports both TLS versions")
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = alpn_list(alpn);
    Arc::new(config)
}

fn ring_provider() -> Arc<CryptoProvider> {
    Arc::new(ring::default_provider())
}

fn alpn_list(alpn: &[&[u8]]) -> Vec<Vec<u8>> {
    alpn.iter().map(|protocol| protocol.to_vec()).collect()
}

/// The verifier behind [`insecure_client_config`]: trusts every chain but
/// checks handshake signatures with `algorithms` (the provider's own).
struct AcceptAnyServerCert {
    /// ring's signature verification algorithms.
    algorithms: WebPkiSupportedAlgorithms,
}

impl fmt::Debug for AcceptAnyServerCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("AcceptAnyServerCert")
    }
}

impl ServerCertVerifier for AcceptAnyServerCert {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
