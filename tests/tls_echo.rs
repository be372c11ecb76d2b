//! TLS echo through the reactor: a handler written for plain TCP (the
//! tests' `Echo`) works unchanged over TLS, for small and large messages.
#![cfg(feature = "tls")]

mod common;

use std::time::Duration;

use common::tls::{round_trip, start_tls, tls_client, Pki};
use common::Echo;
use reactor::Config;

#[test]
fn plain_echo_handler_works_over_tls() {
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    assert_eq!(
        round_trip(&mut client, b"hello over TLS\n"),
        b"hello over TLS\n"
    );
    let big: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    assert_eq!(round_trip(&mut client, &big), big);
    drop(client);
    let stats = server.wait_for("handshake counted", Duration::from_secs(5), |s| {
        s.tls_handshakes == 1 && s.open_connections == 0
    });
    assert_eq!(stats.tls_handshake_failures, 0);
}
