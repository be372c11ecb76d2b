//! The `proxy` example between real clients and real backends, for the
//! proxy tests (tests/proxy.rs, tests/proxy_ends.rs): starting the proxy in
//! front of a backend, a backend listener of the test's own (or one whose
//! accept queue is full, so the proxy's connect hangs), a client and the
//! backend side of its pair, and stopping the proxy for its exit report.
//!
//! Every wait is bounded: accepts have a limit, sockets 10 s timeouts.

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread;
use std::time::{Duration, Instant};

use socket2::{Domain, Socket, Type};

use super::ChildServer;

/// Piece of the PRNG stream written at a time (a multiple of 8, so that the
/// stream does not depend on how it is cut).
pub const PIECE: usize = 64 * 1024;

/// The proxy in front of `backend`, listening on a port the kernel picks.
pub fn proxy(backend: SocketAddr, extra: &[&str]) -> ChildServer {
    let backend = backend.to_string();
    let mut args = vec!["--listen", "127.0.0.1:0", "--backend", &backend];
    args.extend_from_slice(extra);
    super::spawn_example("proxy", &args, None)
}

/// A backend for one test, on 127.0.0.1 at a port the kernel picks.
pub fn backend() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").expect("bind backend")
}

/// Accepts the proxy's connection to `listener`, waiting at most `limit`;
/// the stream gets the same 10 s timeouts as [`super::client`].
pub fn accept_within(listener: &TcpListener, limit: Duration) -> TcpStream {
    listener.set_nonblocking(true).unwrap();
    let start = Instant::now();
    let stream = loop {
        match listener.accept() {
            Ok((stream, _)) => break stream,
            Err(e) if e.kind() == ErrorKind::WouldBlock => {
                assert!(start.elapsed() < limit, "no connection within {limit:?}");
                thread::sleep(Duration::from_millis(5));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    stream.set_nonblocking(false).unwrap();
    super::with_timeouts(stream)
}

/// A client through `proxy` and the backend side of its pair.
pub fn pair(proxy: &ChildServer, listener: &TcpListener) -> (TcpStream, TcpStream) {
    let client = super::client(proxy.addr);
    let server = accept_within(listener, Duration::from_secs(10));
    (client, server)
}

/// Stops the proxy and returns its exit report, after the pairs ended;
/// prints both with the proxy's peak memory.
pub fn stop(mut proxy: ChildServer) -> String {
    let peak = super::peak_rss_kib(proxy.child.id());
    let report = proxy.stop_with_report();
    eprintln!("{report}; peak VmHWM {peak} KiB");
    report
}

/// A listener whose accept queue is full: connects to it hang (Linux drops
/// a SYN while the queue is full) until the test accepts the connection
/// that fills it. Returns the listener and that connection.
pub fn full_listener() -> (TcpListener, TcpStream) {
    let socket = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    socket
        .bind(&"127.0.0.1:0".parse::<SocketAddr>().unwrap().into())
        .unwrap();
    // Backlog 0 holds one connection.
    socket.listen(0).unwrap();
    let listener: TcpListener = socket.into();
    let filler = TcpStream::connect(listener.local_addr().unwrap()).unwrap();
    (listener, filler)
}
