//! A TLS listener behind a load balancer: the PROXY header comes first, in
//! the clear, then the TLS handshake; the handler sees the client's address
//! from the header and plaintext as usual.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use common::tls::Pki;
use reactor::tls::rustls;
use reactor::tls::ServerName;
use reactor::{Config, ConnId, Context, Handler, ListenerOptions};

/// Answers each read with the peer address the loop believes, then the bytes.
struct Peer;

impl Handler for Peer {
    type State = ();
    type Message = ();
    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let reply = format!(
            "{} {}",
            ctx.peer_addr(conn).unwrap(),
            String::from_utf8_lossy(input)
        );
        let _ = ctx.write(conn, reply.as_bytes());
        input.len()
    }
}

#[test]
fn proxy_header_then_tls_handshake() {
    let pki = Pki::new();
    let server_config = pki.server(&[]);
    let server = common::start_listening(Peer, Config::default(), move |reactor, addr| {
        let options = ListenerOptions {
            proxy_protocol: true,
            tls: Some(server_config),
        };
        reactor.listen_with(addr, options)
    });
    let mut socket = TcpStream::connect(server.addr).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    socket
        .write_all(b"PROXY TCP4 198.51.100.20 127.0.0.1 6000 443\r\n")
        .unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let session = rustls::ClientConnection::new(pki.client(&[]), name).unwrap();
    let mut tls = rustls::StreamOwned::new(session, socket);
    tls.write_all(b"hi").unwrap();
    tls.flush().unwrap();
    let mut reply = vec![0u8; "198.51.100.20:6000 hi".len()];
    tls.read_exact(&mut reply).unwrap();
    assert_eq!(reply, b"198.51.100.20:6000 hi");
    let stats = server.wait_for("the handshake", Duration::from_secs(5), |s| {
        s.tls_handshakes == 1
    });
    assert_eq!(stats.tls_handshake_failures, 0);
}
