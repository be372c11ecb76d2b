//! Outbound TLS (`Context::connect_tls`) from a handler to our own TLS echo
//! server: `connected` runs only after the handshake, a write made before
//! it (right after `connect_tls`) is delivered first, and a certificate
//! that does not fit (wrong name, unknown CA, or no TLS server at all)
//! ends in `closed` with the TLS reason, never in `connected`.
#![cfg(feature = "tls")]

mod common;

use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::tls::{start_tls, Pki};
use common::Echo;
use reactor::tls::rustls::ClientConfig;
use reactor::tls::ServerName;
use reactor::{CloseReason, Config, ConnId, Context, Handler};

const LIMIT: Duration = Duration::from_secs(10);

/// Where to connect, the name to verify and the configuration to use.
struct Go(SocketAddr, &'static str, Arc<ClientConfig>);

/// Connects on each [`Go`], writes `early\n` at once and `late\n` in
/// `connected`, and records what happens as lines of text.
#[derive(Default)]
struct Outbound {
    /// Whether `Context::tls` returned a session right after `connect_tls`.
    started_with_session: Option<bool>,
    events: Arc<Mutex<Vec<String>>>,
    received: Arc<Mutex<Vec<u8>>>,
}

impl Outbound {
    fn record(&self, event: String) {
        self.events.lock().unwrap().push(event);
    }
}

impl Handler for Outbound {
    type State = ();
    type Message = Go;

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn message(&mut self, ctx: &mut Context<'_, Self>, Go(addr, name, config): Go) {
        let name = ServerName::try_from(name).unwrap();
        let conn = ctx
            .connect_tls(addr, Some(LIMIT), name, config, ())
            .expect("connect_tls");
        // Not yet connected: `tls` is documented as `None` until the
        // handshake completed (recorded, asserted by its own test).
        let session_visible = ctx.tls(conn).is_some();
        ctx.write(conn, b"early\n")
            .expect("a write before connected");
        self.started_with_session = Some(session_visible);
        self.record("started".into());
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        let session = ctx.tls(conn).expect("a session once connected");
        let event = format!(
            "connected handshaking={} version={:?} alpn={:?}",
            session.is_handshaking(),
            session.protocol_version(),
            ctx.alpn_protocol(conn).map(String::from_utf8_lossy),
        );
        self.record(event);
        ctx.write(conn, b"late\n").unwrap();
    }

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        if self.received.lock().unwrap().is_empty() {
            self.record("data".into());
        }
        self.received.lock().unwrap().extend_from_slice(input);
        input.len()
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.record(format!("closed {reason:?}"));
    }
}

/// The events and bytes an [`Outbound`] records, shared with the test.
type Events = Arc<Mutex<Vec<String>>>;
type Received = Arc<Mutex<Vec<u8>>>;

/// Starts an [`Outbound`] reactor (its plain listener is unused) with `config`.
fn outbound(config: Config) -> (common::Running<Outbound>, Events, Received) {
    let handler = Outbound::default();
    let (events, received) = (handler.events.clone(), handler.received.clone());
    (common::start(handler, config), events, received)
}

#[test]
fn connect_tls_delivers_early_writes_and_calls_connected_after_the_handshake() {
    let pki = Pki::new();
    let server = start_tls(
        Echo::default(),
        Config::default(),
        pki.server(&[b"http/1.1"]),
    );
    let (client, events, received) = outbound(Config::default());
    let config = pki.client(&[b"http/1.1"]);
    client
        .handle
        .send(Go(server.addr, "localhost", config))
        .ok()
        .unwrap();
    common::wait_until("both lines echoed", LIMIT, || {
        received.lock().unwrap().as_slice() == b"early\nlate\n"
    });
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        [
            "started",
            "connected handshaking=false version=Some(TLSv1_3) alpn=Some(\"http/1.1\")",
            "data",
        ]
    );
    let stats = client.handle.stats();
    assert_eq!(stats.tls_handshakes, 1);
    assert_eq!(stats.connects_started, 1);
    server.wait_for("the server's handshake", LIMIT, |s| s.tls_handshakes == 1);
}

/// Connects with `config` for `name` and expects `closed(reason)` without
/// `connected`.
fn fails(addr: SocketAddr, name: &'static str, config: Arc<ClientConfig>, reason: CloseReason) {
    let client_config = Config {
        tls_handshake_timeout: Duration::from_millis(300),
        ..Config::default()
    };
    let (client, events, received) = outbound(client_config);
    client.handle.send(Go(addr, name, config)).ok().unwrap();
    common::wait_until("the close", LIMIT, || events.lock().unwrap().len() == 2);
    let events = events.lock().unwrap().clone();
    assert_eq!(
        events,
        ["started".to_string(), format!("closed {reason:?}")]
    );
    assert!(received.lock().unwrap().is_empty());
    let stats = client.handle.stats();
    assert_eq!(stats.tls_handshakes, 0);
    assert_eq!(stats.tls_handshake_failures, 1);
    assert_eq!(stats.closed(reason), 1);
}

#[test]
fn connect_tls_to_a_name_not_in_the_certificate_is_a_tls_error() {
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    fails(
        server.addr,
        "wrong.example",
        pki.client(&[]),
        CloseReason::TlsError,
    );
    // The server heard the client's alert: a failed handshake, not a session.
    let stats = server.wait_for("the server's side closed", LIMIT, |s| {
        s.tls_handshake_failures == 1 && s.open_connections == 0
    });
    assert_eq!(stats.tls_handshakes, 0);
    assert_eq!(stats.closed(CloseReason::TlsError), 1);
}

#[test]
fn connect_tls_to_a_server_of_an_unknown_ca_is_a_tls_error() {
    let pki = Pki::new();
    let other = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    fails(
        server.addr,
        "localhost",
        other.client(&[]),
        CloseReason::TlsError,
    );
}

#[test]
fn connect_tls_to_a_silent_server_times_out() {
    let pki = Pki::new();
    // Accepts (in the kernel) and never answers the ClientHello.
    let silent = TcpListener::bind("127.0.0.1:0").unwrap();
    fails(
        silent.local_addr().unwrap(),
        "localhost",
        pki.client(&[]),
        CloseReason::TlsHandshakeTimeout,
    );
}

#[test]
fn tls_session_is_hidden_until_the_handshake_completed() {
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    let (client, _, received) = outbound(Config::default());
    let config = pki.client(&[]);
    client
        .handle
        .send(Go(server.addr, "localhost", config))
        .ok()
        .unwrap();
    common::wait_until("both lines echoed", LIMIT, || {
        received.lock().unwrap().as_slice() == b"early\nlate\n"
    });
    let reactor = client.stop();
    assert_eq!(reactor.handler().started_with_session, Some(false));
}
