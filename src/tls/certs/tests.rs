//! Tests for loading, resolving and the configurations, with certificates
//! made at run time (nothing secret is committed) and handshakes run in
//! memory, so what is checked is what a real client would see.

use super::*;
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair};
use rustls::{ClientConnection, Connection, ServerConnection};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory of its own under the system's temp directory, removed on
/// drop; pid and counter keep parallel tests and runs apart.
struct TempDir(PathBuf);

impl TempDir {
    fn new() -> TempDir {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("reactor-certs-{}-{n}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    fn write(&self, name: &str, contents: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, contents).unwrap();
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn new_ca() -> CertifiedIssuer<'static, KeyPair> {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params
        .distinguished_name
        .push(DnType::CommonName, "reactor test CA");
    CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
}

/// A P-256 leaf for `names` signed by `ca`, written as `<stem>.crt` and
/// `<stem>.key` (PKCS#8); returns the two paths and the certificate's DER.
fn leaf(
    dir: &TempDir,
    ca: &CertifiedIssuer<'static, KeyPair>,
    stem: &str,
    names: &[&str],
) -> (PathBuf, PathBuf, Vec<u8>) {
    let key = KeyPair::generate().unwrap();
    let names: Vec<String> = names.iter().map(|name| name.to_string()).collect();
    let cert = CertificateParams::new(names)
        .unwrap()
        .signed_by(&key, ca)
        .unwrap();
    let cert_path = dir.write(&format!("{stem}.crt"), &cert.pem());
    let key_path = dir.write(&format!("{stem}.key"), &key.serialize_pem());
    (cert_path, key_path, cert.der().to_vec())
}

/// Runs `openssl` with `args`; false if it is not installed (then the
/// caller skips, except under CI, where a missing openssl is a failure).
fn openssl(args: &[&str]) -> bool {
    match Command::new("openssl").args(args).output() {
        Ok(out) => {
            assert!(
                out.status.success(),
                "openssl {args:?}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            true
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            eprintln!("SKIPPED: openssl is not installed");
            assert!(
                std::env::var_os("CI").is_none(),
                "openssl is required under CI"
            );
            false
        }
        Err(e) => panic!("openssl: {e}"),
    }
}

/// Runs a whole handshake in memory and returns the client's side.
fn handshake(
    server: Arc<rustls::ServerConfig>,
    client: Arc<rustls::ClientConfig>,
    name: &str,
) -> Result<Connection, rustls::Error> {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let mut client = Connection::Client(ClientConnection::new(client, name)?);
    let mut server = Connection::Server(ServerConnection::new(server)?);
    // A full handshake takes two round trips; the bound turns a stall
    // into a failure instead of a hung test.
    for _ in 0..10 {
        if !client.is_handshaking() && !server.is_handshaking() {
            return Ok(client);
        }
        transfer(&mut client, &mut server)?;
        transfer(&mut server, &mut client)?;
    }
    panic!("handshake did not finish");
}

fn transfer(from: &mut Connection, to: &mut Connection) -> Result<(), rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut rest = &bytes[..];
    while !rest.is_empty() {
        to.read_tls(&mut rest).unwrap();
        to.process_new_packets()?;
    }
    Ok(())
}

fn served_cert(client: &Connection) -> Vec<u8> {
    client.peer_certificates().unwrap()[0].to_vec()
}

fn server_with(keys: Vec<Arc<CertifiedKey>>) -> (Arc<CertResolver>, Arc<rustls::ServerConfig>) {
    let resolver = Arc::new(CertResolver::new(keys).unwrap());
    let config = server_config(Arc::clone(&resolver), &[]).unwrap();
    (resolver, config)
}

#[test]
fn loads_pkcs8_p256_key() {
    let dir = TempDir::new();
    let (cert, key, der) = leaf(&dir, &new_ca(), "a", &["a.test"]);
    let loaded = load_certified_key(&cert, &key).unwrap();
    assert_eq!(loaded.cert[0].as_ref(), &der[..]);
}

#[test]
fn loads_sec1_ec_key() {
    let dir = TempDir::new();
    let (cert, key, _) = leaf(&dir, &new_ca(), "a", &["a.test"]);
    let sec1 = dir.path("sec1.key");
    if !openssl(&[
        "ec",
        "-in",
        key.to_str().unwrap(),
        "-out",
        sec1.to_str().unwrap(),
    ]) {
        return;
    }
    assert!(std::fs::read_to_string(&sec1)
        .unwrap()
        .contains("BEGIN EC PRIVATE KEY"));
    load_certified_key(&cert, &sec1).unwrap();
}

#[test]
fn loads_pkcs1_rsa_key_and_signs_with_it() {
    let dir = TempDir::new();
    let (cert, key) = (dir.path("rsa.crt"), dir.path("rsa.key"));
    let (cert_s, key_s) = (cert.to_str().unwrap(), key.to_str().unwrap());
    if !openssl(&["genrsa", "-traditional", "-out", key_s, "2048"]) {
        return;
    }
    let subject_alt_name = "subjectAltName=DNS:rsa.test";
    openssl(
        &[
            "req",
            "-x509",
            "-new",
            "-key",
            key_s,
            "-subj",
            "/CN=rsa.test",
        ]
        .into_iter()
        .chain(["-addext", subject_alt_name, "-days", "2", "-out", cert_s])
        .collect::<Vec<_>>(),
    );
    assert!(std::fs::read_to_string(&key)
        .unwrap()
        .contains("BEGIN RSA PRIVATE KEY"));
    let (_, server) = server_with(vec![load_certified_key(&cert, &key).unwrap()]);
    handshake(server, insecure_client_config(&[]), "rsa.test").unwrap();
}

#[test]
fn missing_file_error_names_the_file() {
    let dir = TempDir::new();
    let (cert, _, _) = leaf(&dir, &new_ca(), "a", &["a.test"]);
    let missing = dir.path("missing.key");
    let error = load_certified_key(&cert, &missing).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::NotFound);
    assert!(
        error.to_string().contains(missing.to_str().unwrap()),
        "{error}"
    );
}

#[test]
fn file_without_key_or_certificate_error_names_the_file() {
    let dir = TempDir::new();
    let (cert, key, _) = leaf(&dir, &new_ca(), "a", &["a.test"]);
    let error = load_certified_key(&cert, &cert).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    let message = error.to_string();
    assert!(message.contains(cert.to_str().unwrap()) && message.contains("no private key"));
    let error = load_certified_key(&key, &key).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(key.to_str().unwrap()) && message.contains("no certificate"));
}

#[test]
fn mismatched_key_is_refused() {
    let dir = TempDir::new();
    let ca = new_ca();
    let (cert_a, _, _) = leaf(&dir, &ca, "a", &["a.test"]);
    let (_, key_b, _) = leaf(&dir, &ca, "b", &["b.test"]);
    let error = load_certified_key(&cert_a, &key_b).unwrap_err();
    assert_eq!(error.kind(), io::ErrorKind::InvalidData);
    assert!(error.to_string().contains("does not match"), "{error}");
}

#[test]
fn resolver_chooses_by_sni_else_the_default() {
    let dir = TempDir::new();
    let ca = new_ca();
    let (cert_a, key_a, der_a) = leaf(&dir, &ca, "a", &["a.test"]);
    let (cert_b, key_b, der_b) = leaf(&dir, &ca, "b", &["b.test", "*.wild.test"]);
    let resolver = CertResolver::from_pem_files(&[(cert_a, key_a), (cert_b, key_b)]).unwrap();
    assert_eq!(resolver.len(), 2);
    let server = server_config(Arc::new(resolver), &[]).unwrap();
    let client = client_config(&dir.write("ca.crt", &ca.pem()), &[]).unwrap();
    // The unknown name's client is told to trust it anyway: the point is
    // which certificate comes back, so use the insecure verifier for it.
    let insecure = insecure_client_config(&[]);
    for (name, client, expected) in [
        ("a.test", &client, &der_a),
        ("b.test", &client, &der_b),
        ("B.Test", &client, &der_b),
        ("x.wild.test", &client, &der_b),
        ("unknown.test", &insecure, &der_a),
    ] {
        let connection = handshake(Arc::clone(&server), Arc::clone(client), name).unwrap();
        assert_eq!(&served_cert(&connection), expected, "for {name}");
    }
}

#[test]
fn replace_gives_new_handshakes_the_new_certificates() {
    let dir = TempDir::new();
    let ca = new_ca();
    let (cert_1, key_1, der_1) = leaf(&dir, &ca, "one", &["a.test"]);
    let (cert_2, key_2, der_2) = leaf(&dir, &ca, "two", &["a.test"]);
    let (resolver, server) = server_with(vec![load_certified_key(&cert_1, &key_1).unwrap()]);
    // A client per handshake: one client would resume its first session,
    // and a resumed session keeps the certificate it began with.
    let ca_path = dir.write("ca.crt", &ca.pem());
    let client = || client_config(&ca_path, &[]).unwrap();
    let before = handshake(Arc::clone(&server), client(), "a.test").unwrap();
    assert_eq!(served_cert(&before), der_1);

    assert!(resolver.replace(Vec::new()).is_err());
    let bad = [
        (cert_2.clone(), key_2.clone()),
        (cert_1.clone(), dir.path("missing.key")),
    ];
    assert!(resolver.reload_pem_files(&bad).is_err());
    let kept = handshake(Arc::clone(&server), client(), "a.test").unwrap();
    assert_eq!(
        served_cert(&kept),
        der_1,
        "a failed reload keeps the old set"
    );

    resolver.reload_pem_files(&[(cert_2, key_2)]).unwrap();
    let after = handshake(server, client(), "a.test").unwrap();
    assert_eq!(served_cert(&after), der_2);
    assert_eq!(
        served_cert(&before),
        der_1,
        "established sessions keep theirs"
    );
}

#[test]
fn name_cache_is_bounded() {
    let dir = TempDir::new();
    let (cert, key, _) = leaf(&dir, &new_ca(), "a", &["a.test"]);
    let set = CertSet::new(vec![load_certified_key(&cert, &key).unwrap()]).unwrap();
    for n in 0..MAX_CACHED_NAMES + 10 {
        assert_eq!(set.index_for(&format!("n{n}.test")), None);
        assert!(set.by_name.lock().unwrap().len() <= MAX_CACHED_NAMES);
    }
    assert_eq!(set.index_for("a.test"), Some(0));
}

#[test]
fn insecure_client_accepts_a_self_signed_certificate() {
    let dir = TempDir::new();
    let rcgen::CertifiedKey { cert, signing_key } =
        rcgen::generate_simple_self_signed(vec!["self.test".to_string()]).unwrap();
    let cert_path = dir.write("self.crt", &cert.pem());
    let key_path = dir.write("self.key", &signing_key.serialize_pem());
    let (_, server) = server_with(vec![load_certified_key(&cert_path, &key_path).unwrap()]);
    let other_ca = client_config(&dir.write("ca.crt", &new_ca().pem()), &[]).unwrap();
    assert!(handshake(Arc::clone(&server), other_ca, "self.test").is_err());
    let connection = handshake(server, insecure_client_config(&[]), "self.test").unwrap();
    assert_eq!(served_cert(&connection), cert.der().to_vec());
}

#[test]
fn alpn_negotiates_http11() {
    let dir = TempDir::new();
    let ca = new_ca();
    let (cert, key, _) = leaf(&dir, &ca, "a", &["a.test"]);
    let resolver = Arc::new(CertResolver::from_pem_files(&[(cert, key)]).unwrap());
    let server = server_config(resolver, &[b"h2", b"http/1.1"]).unwrap();
    let client = client_config(&dir.write("ca.crt", &ca.pem()), &[b"http/1.1"]).unwrap();
    let connection = handshake(server, client, "a.test").unwrap();
    assert_eq!(connection.alpn_protocol(), Some(&b"http/1.1"[..]));
}
