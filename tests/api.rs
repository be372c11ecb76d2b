//! Public items no other test exercised, each checked through real sockets
//! on 127.0.0.1 (ephemeral ports, no mocks): `Context::is_reading_paused`,
//! `peer_addr`, `stats`, `socket` (the `SockRef` re-export) and
//! `deregister_source`; `ConnId::to_u64`/`from_u64` and stale ids;
//! `Reactor::connection_count`; `Config::reuse_port`; and the codecs'
//! `max_line`, `max_frame` and `HEADER_LEN`.
//!
//! Why: an item nothing calls can break (or never have worked) unnoticed.
//! Most tests talk to [`probe`], an echo server that also answers text
//! commands by asking its `Context`, so each answer is what the loop saw
//! while the connection was live, and the client compares it with what its
//! own socket says. Every wait is bounded (socket timeouts, `wait_until`).
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket as StdUdp};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{client, wait_until, Echo};
use mio::net::UdpSocket;
use reactor::codec::{Decoder, LengthCodec, LineCodec};
use reactor::{Config, ConnId, Context, Handler, Interest, Reactor, SockRef, SourceId};

const LIMIT: Duration = Duration::from_secs(10);

/// Answers one line per command line; `N` is a connection id from `id`
/// (the asking connection when absent), and anything else is echoed.
fn probe(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    for line in String::from_utf8_lossy(input).lines() {
        let (command, arg) = line.split_once(' ').unwrap_or((line, ""));
        let target = arg.parse().map(ConnId::from_u64).unwrap_or(conn);
        let socket: Option<SockRef<'_>> = ctx.socket(target);
        let reply = match command {
            "id" => format!("{} {conn}", conn.to_u64()),
            "is" => (target == conn).to_string(),
            "paused" => format!("{:?}", ctx.is_reading_paused(target)),
            "keepalive" => format!("{:?}", socket.map(|s| s.keepalive().ok())),
            "keepalive-on" => format!(
                "{:?}",
                socket.map(|s| s.set_keepalive(true).and_then(|()| s.keepalive()).ok())
            ),
            "sockpeer" => format!("{:?}", socket.map(|s| s.peer_addr().unwrap().as_socket())),
            "pause" => {
                let before = ctx.is_reading_paused(target);
                ctx.pause_reading(target);
                format!("{before:?} {:?}", ctx.is_reading_paused(target))
            }
            "resume" => {
                ctx.resume_reading(target);
                format!("{:?}", ctx.is_reading_paused(target))
            }
            "close" => {
                ctx.close(target);
                let (paused, peer) = (ctx.is_reading_paused(target), ctx.peer_addr(target));
                format!("{paused:?} {peer:?}")
            }
            "write" => format!("{:?}", ctx.write(target, b"hello\n")),
            "peer" => format!("{:?} {:?}", ctx.peer_addr(target), ctx.local_addr(target)),
            "stats" => {
                let s = ctx.stats();
                let [a, o, c] = [s.accepted, s.open_connections, s.closed_total()];
                format!("accepted={a} open={o} closed={c}")
            }
            _ => format!("echo {line}"),
        };
        let _ = ctx.write(conn, format!("{reply}\n").as_bytes());
    }
}

/// Reads one reply line, without its `\n` (bounded by the read timeout).
fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while !line.ends_with(b"\n") {
        assert!(line.len() < 200, "no line end in {line:?}");
        let n = stream.read(&mut byte).expect("reply");
        assert_eq!(n, 1, "EOF after {line:?}");
        line.push(byte[0]);
    }
    line.pop();
    String::from_utf8(line).unwrap()
}

/// Sends `command` and returns the reply line.
fn ask(stream: &mut TcpStream, command: &str) -> String {
    stream.write_all(format!("{command}\n").as_bytes()).unwrap();
    read_line(stream)
}

/// The packed id of `stream`'s connection, checked against its `Display`.
fn id_of(stream: &mut TcpStream) -> u64 {
    let reply = ask(stream, "id");
    let (packed, shown) = reply.split_once(' ').unwrap();
    let packed = packed.parse().unwrap();
    assert_eq!(ConnId::from_u64(packed).to_string(), shown, "{reply}");
    packed
}

#[test]
fn is_reading_paused_follows_pause_resume_and_close() {
    let server = common::start(Echo::with(probe), Config::default());
    let (mut a, mut b) = (client(server.addr), client(server.addr));
    assert_eq!(ask(&mut a, "paused"), "Some(false)");
    let a_id = id_of(&mut a);
    assert_eq!(ask(&mut a, "pause"), "Some(false) Some(true)");
    assert_eq!(ask(&mut b, &format!("paused {a_id}")), "Some(true)");
    // Paused for real: a's next command is not answered...
    a.write_all(b"ping\n").unwrap();
    a.set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    match a.read(&mut [0; 16]) {
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        other => panic!("read while paused: {other:?}"),
    }
    a.set_read_timeout(Some(LIMIT)).unwrap();
    // ...until another connection resumes it.
    assert_eq!(ask(&mut b, &format!("resume {a_id}")), "Some(false)");
    assert_eq!(read_line(&mut a), "echo ping");
    assert_eq!(ask(&mut a, "paused"), "Some(false)");
    // Closed: None at once, from the same callback and from a later one.
    assert_eq!(ask(&mut b, &format!("close {a_id}")), "None None");
    assert_eq!(ask(&mut b, &format!("paused {a_id}")), "None");
    assert_eq!(a.read(&mut [0; 16]).unwrap(), 0, "a not closed");
}

#[test]
fn peer_addr_is_the_clients_local_addr() {
    let server = common::start(Echo::with(probe), Config::default());
    let (mut a, mut b) = (client(server.addr), client(server.addr));
    let (a_addr, b_addr) = (a.local_addr().unwrap(), b.local_addr().unwrap());
    assert_ne!(a_addr, b_addr);
    let own = |addr: SocketAddr| format!("Some({addr}) Some({})", server.addr);
    assert_eq!(ask(&mut a, "peer"), own(a_addr));
    assert_eq!(ask(&mut b, "peer"), own(b_addr));
    // Asked about another connection, it answers for that one.
    let a_id = id_of(&mut a);
    assert_eq!(ask(&mut b, &format!("peer {a_id}")), own(a_addr));
}

#[test]
fn conn_id_round_trips_and_a_stale_id_is_refused() {
    let server = common::start(Echo::with(probe), Config::default());
    let mut b = client(server.addr);
    let mut a = client(server.addr);
    let a_id = id_of(&mut a);
    assert_eq!(ask(&mut a, &format!("is {a_id}")), "true");
    assert_eq!(ask(&mut b, &format!("is {a_id}")), "false");
    assert_eq!(ask(&mut b, &format!("write {a_id}")), "Ok(())");
    assert_eq!(read_line(&mut a), "hello");
    drop(a);
    server.wait_for("a to close", LIMIT, |s| s.closed_total() == 1);
    let mut c = client(server.addr);
    let c_id = id_of(&mut c);
    let (stale, fresh) = (ConnId::from_u64(a_id), ConnId::from_u64(c_id));
    assert_eq!(stale.slot(), fresh.slot(), "c did not reuse a's slot");
    assert_ne!(stale, fresh);
    assert_eq!(ask(&mut b, &format!("write {a_id}")), "Err(Gone)");
    // The stale write reached nobody: c's first bytes are its own echo.
    assert_eq!(ask(&mut c, "ping"), "echo ping");
    assert_eq!(ask(&mut b, &format!("write {c_id}")), "Ok(())");
    assert_eq!(read_line(&mut c), "hello");
}

#[test]
fn stats_in_a_callback_and_connection_count() {
    let server = common::start(Echo::with(probe), Config::default());
    let mut a = client(server.addr);
    assert_eq!(ask(&mut a, "stats"), "accepted=1 open=1 closed=0");
    let mut b = client(server.addr);
    assert_eq!(ask(&mut b, "stats"), "accepted=2 open=2 closed=0");
    drop(a);
    server.wait_for("a to close", LIMIT, |s| s.closed_total() == 1);
    let mut c = client(server.addr);
    assert_eq!(ask(&mut c, "stats"), "accepted=3 open=2 closed=1");
    // `stop` leaves connections open: b and c are still counted.
    let reactor = server.stop();
    assert_eq!(reactor.connection_count(), 2);
    let fresh = Reactor::new(Echo::default(), Config::default()).unwrap();
    assert_eq!(fresh.connection_count(), 0);
}

#[test]
fn sock_ref_reads_and_sets_the_connections_own_socket() {
    let server = common::start(Echo::with(probe), Config::default());
    let (mut a, mut b) = (client(server.addr), client(server.addr));
    let mine = |s: &TcpStream| format!("Some(Some({}))", s.local_addr().unwrap());
    assert_eq!(ask(&mut a, "sockpeer"), mine(&a));
    assert_eq!(ask(&mut b, "sockpeer"), mine(&b));
    assert_eq!(ask(&mut a, "keepalive"), "Some(Some(false))");
    assert_eq!(ask(&mut a, "keepalive-on"), "Some(Some(true))");
    // Set on the socket itself: a later callback reads it back, and only a has it.
    assert_eq!(ask(&mut a, "keepalive"), "Some(Some(true))");
    assert_eq!(ask(&mut b, "keepalive"), "Some(Some(false))");
}

/// What [`Datagrams`] saw, in order.
#[derive(Debug, PartialEq)]
enum Seen {
    /// `register_source` gave this id to a socket bound here.
    Registered(SourceId, SocketAddr),
    /// `source_ready` for the socket at this index, and what it drained.
    Ready(usize, Vec<Vec<u8>>),
    /// `source_ready` for an id no socket is registered under.
    Stray(SourceId),
    /// `deregister_source` of socket 0 succeeded.
    Deregistered(bool),
}

/// Registers a UDP socket per message; deregisters socket 0 on its first event.
struct Datagrams {
    sockets: Vec<(UdpSocket, Option<SourceId>)>,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Handler for Datagrams {
    type State = ();
    type Message = ();
    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        input.len()
    }
    fn message(&mut self, ctx: &mut Context<'_, Self>, (): ()) {
        let mut socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let id = ctx
            .register_source(&mut socket, Interest::READABLE)
            .unwrap();
        let seen = Seen::Registered(id, socket.local_addr().unwrap());
        self.seen.lock().unwrap().push(seen);
        self.sockets.push((socket, Some(id)));
    }
    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, id: SourceId, _: &reactor::Event) {
        let Some(index) = self.sockets.iter().position(|s| s.1 == Some(id)) else {
            return self.seen.lock().unwrap().push(Seen::Stray(id));
        };
        let (socket, registered) = &mut self.sockets[index];
        let (mut got, mut buf) = (Vec::new(), [0; 64]);
        for _ in 0..100 {
            match socket.recv(&mut buf) {
                Ok(n) => got.push(buf[..n].to_vec()),
                Err(e) if e.kind() == ErrorKind::WouldBlock => break,
                Err(e) => panic!("recv: {e}"),
            }
        }
        let mut seen = self.seen.lock().unwrap();
        seen.push(Seen::Ready(index, got));
        if index == 0 {
            let done = ctx.deregister_source(socket, registered.take().unwrap());
            seen.push(Seen::Deregistered(done.is_ok()));
        }
    }
}

#[test]
fn a_deregistered_source_is_silent_and_its_id_is_reused() {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let handler = Datagrams {
        sockets: Vec::new(),
        seen: Arc::clone(&seen),
    };
    let server = common::start(handler, Config::default());
    let wait_seen = |n: usize| {
        wait_until("source events", LIMIT, || seen.lock().unwrap().len() >= n);
    };
    let sender = StdUdp::bind("127.0.0.1:0").unwrap();
    server.handle.send(()).unwrap();
    wait_seen(1);
    let Seen::Registered(first_id, first) = seen.lock().unwrap()[0] else {
        panic!("{seen:?}")
    };
    sender.send_to(b"one", first).unwrap();
    wait_seen(3);
    // Deregistered but still open: a datagram arrives, no event does.
    sender.send_to(b"two", first).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(seen.lock().unwrap().len(), 3, "{seen:?}");
    server.handle.send(()).unwrap();
    wait_seen(4);
    let Seen::Registered(second_id, second) = seen.lock().unwrap()[3] else {
        panic!("{seen:?}")
    };
    assert_eq!(second_id, first_id, "the freed id was not reused");
    sender.send_to(b"three", second).unwrap();
    wait_seen(5);
    std::thread::sleep(Duration::from_millis(50));
    let reactor = server.stop();
    let expected = [
        Seen::Registered(first_id, first),
        Seen::Ready(0, vec![b"one".to_vec()]),
        Seen::Deregistered(true),
        Seen::Registered(second_id, second),
        Seen::Ready(1, vec![b"three".to_vec()]),
    ];
    assert_eq!(*seen.lock().unwrap(), expected);
    // "two" did reach the first socket; only its event was gone.
    let mut buf = [0; 64];
    let n = reactor.handler().sockets[0].0.recv(&mut buf).unwrap();
    assert_eq!(&buf[..n], b"two");
}

/// A reactor with `config` listening on `addr`, or the bind error.
fn listen(config: &Config, addr: SocketAddr) -> std::io::Result<common::Running<Echo>> {
    let mut reactor = Reactor::new(Echo::default(), config.clone())?;
    let listener = reactor.listen(addr)?;
    let addr = reactor.local_addr(listener)?;
    let handle = reactor.handle();
    let thread = std::thread::spawn(move || {
        reactor.run().expect("loop failed");
        reactor
    });
    Ok(common::Running {
        addr,
        handle,
        thread: Some(thread),
    })
}

#[test]
fn reuse_port_lets_two_reactors_share_a_port() {
    let shared = Config {
        reuse_port: true,
        ..Config::default()
    };
    let first = listen(&shared, "127.0.0.1:0".parse().unwrap()).unwrap();
    let second = listen(&shared, first.addr).expect("second listener on a reused port");
    assert_eq!(second.addr, first.addr);
    // Both accept: the kernel spreads connections by their 4-tuple hash
    // (all 64 on one listener has probability 2^-63).
    for _ in 0..64 {
        common::echo_once(&mut client(first.addr), b"x");
    }
    let accepted = || [&first, &second].map(|r| r.handle.stats().accepted);
    wait_until("64 accepts", LIMIT, || accepted().iter().sum::<u64>() == 64);
    let [one, two] = accepted();
    assert!(one > 0 && two > 0, "accepted {one} and {two}");
}

#[test]
fn without_reuse_port_the_second_bind_fails_naming_the_address() {
    let plain = Config::default();
    let reuse = Config {
        reuse_port: true,
        ..Config::default()
    };
    // Both sides must ask for SO_REUSEPORT.
    for (one, two) in [(&plain, &plain), (&plain, &reuse), (&reuse, &plain)] {
        let first = listen(one, "127.0.0.1:0".parse().unwrap()).unwrap();
        let Err(error) = listen(two, first.addr) else {
            panic!("{} bound twice", first.addr)
        };
        assert_eq!(error.kind(), ErrorKind::AddrInUse, "{error}");
        let named = error.to_string().contains(&first.addr.to_string());
        assert!(named, "{error}");
    }
}

/// Replies "frame LEN CONSUMED" per length-prefixed frame, or the decode
/// error, as lines; closes after an error.
struct Frames(LengthCodec, LineCodec);

impl Handler for Frames {
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
        let (mut consumed, mut out) = (0, Vec::new());
        let error = loop {
            match self.0.decode(&input[consumed..]) {
                Ok(Some(d)) => {
                    let line = format!("frame {} {}", d.frame.len(), d.consumed);
                    self.1.encode(line.as_bytes(), &mut out).unwrap();
                    consumed += d.consumed;
                }
                Ok(None) => break None,
                Err(e) => break Some(e.to_string()),
            }
        };
        if let Some(e) = &error {
            self.1.encode(e.as_bytes(), &mut out).unwrap();
        }
        let _ = ctx.write_vec(conn, out);
        if error.is_some() {
            ctx.close_after_flush(conn);
        }
        consumed
    }
}

#[test]
fn codec_limits_are_as_constructed_and_enforced_on_the_wire() {
    let (lines, frames) = (LineCodec::new(60), LengthCodec::new(16));
    assert_eq!((lines.max_line(), frames.max_frame()), (60, 16));
    assert_eq!(LengthCodec::new(usize::MAX).max_frame(), u32::MAX as usize);
    let mut wire = Vec::new();
    frames.encode(b"", &mut wire).unwrap();
    assert_eq!(wire.len(), LengthCodec::HEADER_LEN);
    assert_eq!(LengthCodec::HEADER_LEN, 4);
    wire.clear();
    frames.encode(&[7; 16], &mut wire).unwrap();
    assert_eq!(wire.len(), LengthCodec::HEADER_LEN + 16);

    let server = common::start(Frames(frames, lines), Config::default());
    let mut stream = client(server.addr);
    // A frame of exactly max_frame bytes, split mid-body, is accepted whole.
    stream.write_all(&wire[..10]).unwrap();
    std::thread::sleep(Duration::from_millis(50));
    stream.write_all(&wire[10..]).unwrap();
    assert_eq!(read_line(&mut stream), "frame 16 20");
    // One byte more is refused on the header alone.
    stream.write_all(&17u32.to_be_bytes()).unwrap();
    let error = read_line(&mut stream);
    assert_eq!(error, "frame of 17 bytes is over the 16-byte limit");
    assert!(error.len() <= lines.max_line());
    assert_eq!(
        stream.read(&mut [0; 16]).unwrap(),
        0,
        "open after the error"
    );
}

/// Two sources ready in one batch; the first one served deregisters the
/// other and registers a new socket. The other's event, already polled, is
/// stale: it must not reach `source_ready`, under its old id or under the
/// newcomer's (ids are reused only from the next turn).
struct TwoSources {
    sockets: Vec<Option<(UdpSocket, SourceId)>>,
    seen: Vec<SourceId>,
    retired: Option<SourceId>,
    newcomer: Option<SourceId>,
}

impl Handler for TwoSources {
    type State = ();
    type Message = ();
    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, id: SourceId, _: &reactor::Event) {
        self.seen.push(id);
        if self.retired.is_some() {
            return;
        }
        let other = self.sockets.iter_mut().flatten().find(|(_, s)| *s != id);
        let (socket, other_id) = other.expect("two sources");
        let other_id = *other_id;
        ctx.deregister_source(socket, other_id).unwrap();
        self.retired = Some(other_id);
        let mut fresh = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
        self.newcomer = Some(ctx.register_source(&mut fresh, Interest::READABLE).unwrap());
    }
}

#[test]
fn an_event_polled_before_its_source_was_deregistered_is_dropped() {
    let handler = TwoSources {
        sockets: Vec::new(),
        seen: Vec::new(),
        retired: None,
        newcomer: None,
    };
    let mut reactor = Reactor::new(handler, Config::default()).unwrap();
    let mut addrs = Vec::new();
    reactor.with_context(|h, ctx| {
        for _ in 0..2 {
            let mut socket = UdpSocket::bind("127.0.0.1:0".parse().unwrap()).unwrap();
            addrs.push(socket.local_addr().unwrap());
            let id = ctx
                .register_source(&mut socket, Interest::READABLE)
                .unwrap();
            h.sockets.push(Some((socket, id)));
        }
    });
    let sender = StdUdp::bind("127.0.0.1:0").unwrap();
    for addr in &addrs {
        sender.send_to(b"x", addr).unwrap();
    }
    // Both datagrams are in before the poll, so one batch holds both events.
    std::thread::sleep(Duration::from_millis(50));
    reactor.run_once(Some(Duration::from_secs(5))).unwrap();
    let handler = reactor.handler();
    let (retired, newcomer) = (handler.retired.unwrap(), handler.newcomer.unwrap());
    assert_ne!(retired, newcomer, "an id was reused within its turn");
    assert_eq!(
        handler.seen.len(),
        1,
        "a stale event was delivered: {:?}",
        handler.seen
    );
    assert!(reactor.stats().stale_events >= 1);
}

#[test]
fn listen_from_adopts_a_socket_bound_elsewhere() {
    // As systemd's socket activation or a previous instance would hand it
    // over: bound and listening before the reactor sees it.
    let bound = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = bound.local_addr().unwrap();
    let server = common::start_listening(Echo::default(), Config::default(), move |reactor, _| {
        reactor.listen_from(bound, reactor::ListenerOptions::default())
    });
    assert_eq!(server.addr, addr, "the adopted socket's own address");
    let mut peer = client(addr);
    peer.write_all(b"adopted").unwrap();
    let mut back = [0u8; 7];
    peer.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"adopted");
}

#[test]
fn a_connection_accepted_elsewhere_is_adopted_through_the_handle() {
    // Another thread accepts (a hand-off acceptor would) and gives the
    // socket to the loop, which serves it like one of its own.
    let server = common::start_echo(Config::default());
    let elsewhere = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let mut peer = client(elsewhere.local_addr().unwrap());
    let (socket, addr) = elsewhere.accept().unwrap();
    server.handle.adopt(socket, addr).unwrap();
    peer.write_all(b"handed over").unwrap();
    let mut back = [0u8; 11];
    peer.read_exact(&mut back).unwrap();
    assert_eq!(&back, b"handed over");
    let stats = server.wait_for("the adoption", LIMIT, |s| s.adopted == 1);
    assert_eq!((stats.accepted, stats.open_connections), (0, 1));
    assert_eq!(server.handle.pending(), 0);
}
