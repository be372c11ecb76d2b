//! Flow control on real sockets, input side: deep pipelines of large
//! replies served with a bounded queue, and input offered again (at the
//! peer's FIN, on drain, on `wake`, on `resume_reading`, once an outbound
//! connection is up), plus what `opened` can learn about its socket.
//! Half-close and abort are in tests/flow_close.rs, limits and fan-out in
//! tests/flow_limits.rs.
//!
//! One handler, `Lab` (tests/common/flow.rs), speaks a line protocol whose
//! commands exercise one primitive each; a `Mode` changes how much input it
//! takes per call.

mod common;

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::sync::mpsc;
use std::thread;
use std::time::{Duration, Instant};

use common::flow::{big_reply, closes, connect, read_line, start, Lab, Mode};
use reactor::{CloseReason, Config, ConnId, Context, Handler, Reactor};

/// 2 000 pipelined requests of 64 KiB replies each (125 MiB) in one go,
/// from a client that reads normally: every byte arrives, nobody is cut off,
/// and the queue never holds more than the high-water mark plus one reply.
#[test]
fn a_deep_pipeline_of_large_replies_is_served_with_a_bounded_queue() {
    const REQUESTS: usize = 2000;
    let config = Config {
        max_output: 1024 * 1024,
        ..Config::default()
    };
    let high_water = config.limits().output_high_water;
    let (server, log) = start(Mode::AllLines, config);
    let (stream, mut reader) = connect(server.addr);
    let request = "big 64\n".repeat(REQUESTS);
    let mut writing = stream.try_clone().unwrap();
    let writer = thread::spawn(move || writing.write_all(request.as_bytes()).unwrap());
    let want = big_reply(64);
    let mut reply = vec![0; want.len()];
    for i in 0..REQUESTS {
        reader.read_exact(&mut reply).unwrap();
        assert!(reply == want, "reply {i} differs");
    }
    writer.join().unwrap();
    let max_queued = log.lock().unwrap().max_queued;
    assert!(
        max_queued <= high_water + want.len(),
        "queue reached {max_queued} bytes (high water {high_water})"
    );
    common::wait_until("drained", Duration::from_secs(5), || {
        !log.lock().unwrap().drained.is_empty()
    });
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(reader.read(&mut reply).unwrap(), 0, "EOF after the replies");
    let stats = server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert!(stats.backpressure_events > 0, "{stats:?}");
    assert_eq!(closes(&log), vec![CloseReason::PeerClosed]);
}

/// Lines the handler left unconsumed are offered again when the peer's FIN
/// arrives, before `read_closed` closes the connection: nothing is dropped.
#[test]
fn leftovers_are_offered_again_at_the_peers_fin() {
    let (server, log) = start(Mode::OneLine, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"l1\nl2\nl3\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    reader.read_to_string(&mut all).unwrap();
    assert_eq!(all, "l1\nl2\nl3\n");
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::PeerClosed]);
}

/// A reply produced piece by piece in `data` and `drained` that is still
/// going when the peer's FIN arrives: the commands behind it are answered
/// after it, then the connection closes. (An offer at FIN that consumes
/// nothing because flow control stopped it is not a message cut short.)
#[test]
fn commands_behind_a_reply_in_progress_survive_the_peers_fin() {
    let (server, log) = start(Mode::Incremental, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"big 32768\nping\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    // Not reading yet: the server fills the socket and is backpressured
    // with the reply half written when it reads the FIN.
    thread::sleep(Duration::from_millis(200));
    let piece = big_reply(64);
    let mut got = vec![0; piece.len()];
    for i in 0..32768 / 64 {
        reader.read_exact(&mut got).unwrap();
        assert!(got == piece, "piece {i} differs");
    }
    let mut rest = String::new();
    reader.read_to_string(&mut rest).unwrap();
    assert_eq!(rest, "ping\n");
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::PeerClosed]);
}

/// `wake` calls `data` again on the next turn with the input left, though
/// no byte arrives and no timer is armed.
#[test]
fn wake_offers_the_rest_without_new_bytes() {
    let (server, _log) = start(Mode::OneLineThenWake, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"w1\nw2\nw3\nw4\n").unwrap();
    for want in ["w1\n", "w2\n", "w3\n", "w4\n"] {
        assert_eq!(read_line(&mut reader), want);
    }
}

/// While paused, the connection is not read at all (its bytes wait in the
/// kernel); `resume_reading` offers what was already read and reads on.
#[test]
fn paused_reading_reads_nothing_and_resume_continues() {
    let (server, _log) = start(Mode::AllLines, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    let sent = Instant::now();
    stream.write_all(b"pause 400\nheld\n").unwrap();
    server.wait_for("the first read", Duration::from_secs(5), |s| {
        s.bytes_in >= 15
    });
    thread::sleep(Duration::from_millis(50));
    stream.write_all(b"later\n").unwrap();
    thread::sleep(Duration::from_millis(150));
    assert_eq!(server.handle.stats().bytes_in, 15, "read while paused");
    assert_eq!(read_line(&mut reader), "held\n");
    assert!(
        sent.elapsed() >= Duration::from_millis(390),
        "resumed early"
    );
    assert_eq!(read_line(&mut reader), "later\n");
}

/// Writes queued while connecting, `wake` while connecting: `data` runs
/// once connected, without the peer sending anything.
#[test]
fn wake_while_connecting_is_kept_for_the_connection() {
    struct Dialer {
        woken: mpsc::Sender<usize>,
    }
    impl Handler for Dialer {
        type State = ();
        type Message = ();
        fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
        fn data(
            &mut self,
            _: &mut Context<'_, Self>,
            _: ConnId,
            _: &mut (),
            input: &[u8],
        ) -> usize {
            let _ = self.woken.send(input.len());
            input.len()
        }
    }
    let backend = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let target = backend.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    let mut reactor = Reactor::new(Dialer { woken: tx }, Config::default()).unwrap();
    reactor.with_context(|_, ctx| {
        let conn = ctx.connect(target, None, ()).unwrap();
        ctx.wake(conn);
    });
    let handle = reactor.handle();
    let thread = thread::spawn(move || reactor.run().unwrap());
    let (_peer, _) = backend.accept().unwrap();
    let offered = rx.recv_timeout(Duration::from_secs(5));
    handle.stop();
    thread.join().unwrap();
    assert_eq!(offered, Ok(0), "data was not called after the connect");
}

/// `opened` can ask which listener accepted and which local address the
/// peer reached, and set socket options.
#[test]
fn opened_knows_its_listener_local_address_and_socket() {
    let (lab, log) = Lab::new(Mode::AllLines);
    let mut reactor = Reactor::new(lab, Config::default()).unwrap();
    let first = reactor.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let second = reactor.listen("127.0.0.1:0".parse().unwrap()).unwrap();
    let addrs = [
        reactor.local_addr(first).unwrap(),
        reactor.local_addr(second).unwrap(),
    ];
    let handle = reactor.handle();
    let thread = thread::spawn(move || reactor.run().unwrap());
    let _a = common::client(addrs[1]);
    let _b = common::client(addrs[0]);
    common::wait_until("two opens", Duration::from_secs(5), || {
        log.lock().unwrap().opened.len() == 2
    });
    handle.stop();
    thread.join().unwrap();
    let opened = &log.lock().unwrap().opened;
    assert_eq!(opened[0], (Some(second), Some(addrs[1]), true));
    assert_eq!(opened[1], (Some(first), Some(addrs[0]), true));
}
