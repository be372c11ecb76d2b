//! Outbound connections (`Context::connect`): success, refusal and timeout,
//! started both before `run` (`Reactor::with_context`) and from a callback.
//!
//! A connect completes asynchronously, so each outcome takes a different
//! path through the loop: a writable event with no socket error (success),
//! a writable/error event carrying `ECONNREFUSED`, or no event at all until
//! the connect timer fires. Only 127.0.0.0/8 is used: the timeout case
//! fills the accept queue of a listener with backlog 0, so the kernel drops
//! further SYNs and our connect stays in SYN_SENT.
mod common;

use std::io::ErrorKind;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::thread;
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, ConnState, Context, Handler, Reactor};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// What the dialer saw.
#[derive(Default, Debug)]
struct DialLog {
    started: Vec<(ConnId, Option<ConnState>)>,
    connected: Vec<(ConnId, Option<ConnState>)>,
    received: Vec<(ConnId, Vec<u8>)>,
    closes: Vec<(ConnId, CloseReason)>,
    connect_errors: Vec<ErrorKind>,
}

/// Sends `ping` on every outbound connection once connected and closes it
/// when the 4-byte echo is back. Messages start connects from a callback.
struct Dialer {
    log: Arc<Mutex<DialLog>>,
}

impl Dialer {
    fn dial(&self, ctx: &mut Context<'_, Self>, addr: SocketAddr, timeout: Duration) {
        match ctx.connect(addr, Some(timeout), Vec::new()) {
            Ok(id) => {
                let state = ctx.conn_state(id);
                self.log.lock().unwrap().started.push((id, state));
            }
            Err(e) => self.log.lock().unwrap().connect_errors.push(e.kind()),
        }
    }
}

impl Handler for Dialer {
    type State = Vec<u8>;
    /// Connect to this address with this timeout.
    type Message = (SocketAddr, Duration);

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> Vec<u8> {
        Vec::new()
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut Vec<u8>) {
        let state = ctx.conn_state(conn);
        self.log.lock().unwrap().connected.push((conn, state));
        ctx.write(conn, b"ping").unwrap();
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        got: &mut Vec<u8>,
        input: &[u8],
    ) -> usize {
        got.extend_from_slice(input);
        if got.len() >= 4 {
            self.log.lock().unwrap().received.push((conn, got.clone()));
            ctx.close(conn);
        }
        input.len()
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, (addr, timeout): (SocketAddr, Duration)) {
        self.dial(ctx, addr, timeout);
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: Vec<u8>, reason: CloseReason) {
        self.log.lock().unwrap().closes.push((conn, reason));
    }
}

/// Runs a dialer on a thread. `before` runs in `with_context` before `run`.
fn start_dialer(
    before: impl FnOnce(&mut Dialer, &mut Context<'_, Dialer>) + Send + 'static,
) -> (Arc<Mutex<DialLog>>, common::Running<Dialer>) {
    let log = Arc::new(Mutex::new(DialLog::default()));
    let dialer = Dialer {
        log: Arc::clone(&log),
    };
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = thread::spawn(move || {
        let mut reactor = Reactor::new(dialer, Config::default()).expect("reactor");
        let listener = reactor.listen("127.0.0.1:0".parse().unwrap()).unwrap();
        reactor.with_context(before);
        tx.send((reactor.local_addr(listener).unwrap(), reactor.handle()))
            .unwrap();
        reactor.run().expect("loop failed");
        reactor
    });
    let (addr, handle) = rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let running = common::Running {
        addr,
        handle,
        thread: Some(thread),
    };
    (log, running)
}

fn wait_closes(log: &Mutex<DialLog>, n: usize) {
    common::wait_until("outbound closes", Duration::from_secs(10), || {
        log.lock().unwrap().closes.len() >= n
    });
}

/// A connect started before `run` completes: `connected` runs in state Open,
/// and the echo comes back through the outbound connection.
#[test]
fn connect_from_with_context_succeeds_and_echoes() {
    let echo = common::start_echo(Config::default());
    let target = echo.addr;
    let (log, dialer) = start_dialer(move |dialer, ctx| {
        dialer.dial(ctx, target, Duration::from_secs(5));
    });
    wait_closes(&log, 1);
    drop(dialer.stop());
    let log = log.lock().unwrap();
    let (id, state) = log.started[0];
    assert_eq!(state, Some(ConnState::Connecting));
    assert_eq!(log.connected, [(id, Some(ConnState::Open))]);
    assert_eq!(log.received, [(id, b"ping".to_vec())]);
    assert_eq!(log.closes, [(id, CloseReason::ClosedLocally)]);
    echo.wait_for("the echo side close", Duration::from_secs(5), |s| {
        s.closed(CloseReason::PeerClosed) == 1 && s.bytes_out == 4
    });
}

/// A connect started from a callback to a port nobody listens on is closed
/// with `ConnectFailed(ConnectionRefused)`, without `connected`.
#[test]
fn connect_to_a_closed_port_fails_with_connection_refused() {
    let port_gone = {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.local_addr().unwrap()
    };
    let (log, dialer) = start_dialer(|_, _| {});
    dialer
        .handle
        .send((port_gone, Duration::from_secs(5)))
        .unwrap();
    wait_closes(&log, 1);
    let stats = dialer.handle.stats();
    drop(dialer.stop());
    let log = log.lock().unwrap();
    assert!(log.connect_errors.is_empty(), "{log:?}");
    let (id, _) = log.started[0];
    assert!(log.connected.is_empty());
    assert_eq!(
        log.closes,
        [(id, CloseReason::ConnectFailed(ErrorKind::ConnectionRefused))]
    );
    assert_eq!(stats.connects_started, 1);
    assert_eq!(stats.open_connections, 0);
}

/// A listener with backlog 0 whose accept queue is full drops new SYNs, so
/// a connect to it stays in SYN_SENT; the connect timer closes it with
/// `ConnectTimeout`.
#[test]
fn connect_that_never_completes_times_out() {
    let listener = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP)).unwrap();
    listener
        .bind(&SockAddr::from(
            "127.0.0.1:0".parse::<SocketAddr>().unwrap(),
        ))
        .unwrap();
    listener.listen(0).unwrap();
    let addr = listener.local_addr().unwrap().as_socket().unwrap();
    // Fill the accept queue (never accepted). With backlog 0 Linux queues one
    // connection; the rest stay in SYN_SENT, which is harmless.
    let fillers: Vec<TcpStream> = (0..2)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    assert!(!fillers.is_empty(), "could not fill the accept queue");
    // The queue is full when the next connect cannot complete.
    assert!(
        TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err(),
        "the accept queue does not fill on this kernel"
    );

    let (log, dialer) = start_dialer(|_, _| {});
    dialer
        .handle
        .send((addr, Duration::from_millis(300)))
        .unwrap();
    wait_closes(&log, 1);
    drop(dialer.stop());
    let log = log.lock().unwrap();
    let (id, state) = log.started[0];
    assert_eq!(state, Some(ConnState::Connecting));
    assert!(log.connected.is_empty(), "{log:?}");
    assert_eq!(log.closes, [(id, CloseReason::ConnectTimeout)]);
    drop(fillers);
}

/// Connects, queues a request and asks to close after flush, all before the
/// connect completes (fire and forget).
#[derive(Default)]
struct FireAndForget {
    closes: Arc<Mutex<Vec<CloseReason>>>,
}

impl Handler for FireAndForget {
    type State = ();
    type Message = SocketAddr;

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, addr: SocketAddr) {
        let conn = ctx.connect(addr, Some(Duration::from_secs(5)), ()).unwrap();
        ctx.write(conn, b"hello").unwrap();
        ctx.close_after_flush(conn);
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        self.closes.lock().unwrap().push(reason);
    }
}

/// Output queued while connecting is owed to the peer even if the handler
/// already asked to close after flush: the connect completes, the bytes are
/// sent, then the connection closes cleanly.
#[test]
fn close_after_flush_while_connecting_still_sends_the_queued_output() {
    let echo = common::start_echo(Config::default());
    let handler = FireAndForget::default();
    let closes = Arc::clone(&handler.closes);
    let dialer = common::start(handler, Config::default());
    dialer.handle.send(echo.addr).unwrap();
    let stats = echo.wait_for("the request and the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(stats.bytes_in, 5, "the queued request was dropped");
    common::wait_until("the dialer's close", Duration::from_secs(5), || {
        !closes.lock().unwrap().is_empty()
    });
    assert_eq!(*closes.lock().unwrap(), [CloseReason::ClosedLocally]);
}
