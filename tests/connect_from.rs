//! `Context::connect_from`: an outbound connection leaves from the local
//! address asked for. The load generator relies on it to spread more than
//! ~28 000 connections over several 127.0.0.x source addresses.

use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use reactor::{CloseReason, Config, ConnId, Context, Handler, Reactor};

/// Records how the one outbound connection ended up.
#[derive(Default)]
struct Client {
    /// Set once `connected` ran.
    connected: bool,
    /// Set if the connection closed, with the reason.
    closed: Option<CloseReason>,
}

impl Handler for Client {
    type State = ();
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }

    fn connected(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut ()) {
        self.connected = true;
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.closed = Some(reason);
    }
}

#[test]
fn connection_leaves_from_the_requested_address() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    let local: SocketAddr = "127.0.0.2:0".parse().unwrap();
    let mut reactor = Reactor::new(Client::default(), Config::default()).unwrap();
    reactor
        .with_context(|_, ctx| {
            ctx.connect_from(Some(local), server, Some(Duration::from_secs(5)), ())
        })
        .expect("connect_from");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !reactor.handler().connected && reactor.handler().closed.is_none() {
        assert!(Instant::now() < deadline, "connect did not finish");
        reactor.run_once(Some(Duration::from_millis(50))).unwrap();
    }
    assert!(
        reactor.handler().connected,
        "{:?}",
        reactor.handler().closed
    );
    let (_stream, peer) = listener.accept().unwrap();
    assert_eq!(peer.ip(), local.ip());
}

#[test]
fn an_unusable_local_address_is_an_error_naming_it() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server = listener.local_addr().unwrap();
    // Not an address of this machine: bind fails before any connect.
    let local: SocketAddr = "192.0.2.1:0".parse().unwrap();
    let mut reactor = Reactor::new(Client::default(), Config::default()).unwrap();
    let error = reactor
        .with_context(|_, ctx| ctx.connect_from(Some(local), server, None, ()))
        .unwrap_err();
    assert!(error.to_string().contains("192.0.2.1"), "{error}");
}
