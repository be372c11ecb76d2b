//! TLS test kit: a certificate authority and leaf certificates made at run
//! time with rcgen (nothing secret is committed), written as PEM files for
//! the examples and for real clients (`openssl`, `curl`, Python), a reactor
//! listening for TLS, and a blocking rustls client for in-process checks.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use reactor::tls::rustls::{self, ClientConfig, ServerConfig};
use reactor::tls::{client_config, server_config, CertResolver, ServerName};
use reactor::{Config, Handler};

use super::running::{start_listening, Running};

/// A CA and its leaf certificates in a directory of their own, removed on drop.
pub struct Pki {
    /// The directory (pid and a counter keep parallel tests apart).
    pub dir: PathBuf,
    /// The CA certificate, PEM: what clients trust.
    pub ca_pem: PathBuf,
    /// The CA, to sign more leaves.
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl Pki {
    /// A new CA in a new directory.
    pub fn new() -> Pki {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reactor-tls-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "reactor test CA");
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let ca_pem = dir.join("ca.crt");
        std::fs::write(&ca_pem, ca.pem()).unwrap();
        Pki { dir, ca_pem, ca }
    }

    /// A P-256 leaf for `names` signed by the CA, written as `<stem>.crt`
    /// and `<stem>.key` (PKCS#8): (certificate path, key path).
    pub fn leaf(&self, stem: &str, names: &[&str]) -> (PathBuf, PathBuf) {
        let key = KeyPair::generate().unwrap();
        let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, stem);
        let cert = params.signed_by(&key, &self.ca).unwrap();
        let cert_path = self.dir.join(format!("{stem}.crt"));
        let key_path = self.dir.join(format!("{stem}.key"));
        std::fs::write(&cert_path, cert.pem()).unwrap();
        std::fs::write(&key_path, key.serialize_pem()).unwrap();
        (cert_path, key_path)
    }

    /// A server configuration for one leaf valid for `localhost` and
    /// 127.0.0.1, with ALPN `alpn`.
    pub fn server(&self, alpn: &[&[u8]]) -> Arc<ServerConfig> {
        let pair = self.leaf("localhost", &["localhost", "127.0.0.1"]);
        let resolver = CertResolver::from_pem_files(&[pair]).expect("load test certificate");
        server_config(Arc::new(resolver), alpn).expect("server config")
    }

    /// A client configuration trusting this CA.
    pub fn client(&self, alpn: &[&[u8]]) -> Arc<ClientConfig> {
        client_config(&self.ca_pem, alpn).expect("client config")
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Starts `handler` on a new thread listening for TLS on 127.0.0.1:0.
pub fn start_tls<H>(handler: H, config: Config, tls: Arc<ServerConfig>) -> Running<H>
where
    H: Handler + Send + 'static,
    H::State: Send,
{
    start_listening(handler, config, move |reactor, addr| {
        reactor.listen_tls(addr, tls)
    })
}

/// A blocking rustls client over a std socket with a read timeout.
pub type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

/// Connects to `addr` and completes the handshake for `localhost`.
pub fn tls_client(addr: SocketAddr, config: Arc<ClientConfig>) -> TlsClient {
    let socket = TcpStream::connect(addr).expect("connect");
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let conn = rustls::ClientConnection::new(config, name).expect("client session");
    let mut stream = rustls::StreamOwned::new(conn, socket);
    while stream.conn.is_handshaking() {
        stream
            .conn
            .complete_io(&mut stream.sock)
            .expect("TLS handshake");
    }
    stream
}

/// Writes `data` and reads exactly as many bytes back.
pub fn round_trip(client: &mut TlsClient, data: &[u8]) -> Vec<u8> {
    client.write_all(data).expect("write");
    client.flush().expect("flush");
    let mut back = vec![0; data.len()];
    client.read_exact(&mut back).expect("read echo");
    back
}

/// Path of a file in `pki`'s directory.
pub fn path_in(pki: &Pki, name: &str) -> PathBuf {
    Path::new(&pki.dir).join(name)
}
