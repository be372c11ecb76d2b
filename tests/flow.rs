//! Flow control and the embedder's primitives, on real sockets: deep
//! pipelines of large replies served with a bounded queue, input offered
//! again (on drain, on `wake`, on `resume_reading`, at the peer's FIN),
//! half-close, abort, `drained`, per-connection and soft limits, fan-out to
//! readers that keep up, and what `opened` can learn about its socket.
//!
//! One handler, [`Lab`], speaks a line protocol whose commands exercise one
//! primitive each; a [`Mode`] changes how much input it takes per call.

mod common;

use std::io::{BufRead, BufReader, ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
use std::time::{Duration, Instant};

use reactor::{
    CloseReason, Config, ConnId, Context, Fired, Handler, Limit, Limits, ListenerId, Reactor,
    SoftLimit,
};

/// How much input `Lab::data` takes per call.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// Every complete line, stopping early only when backpressured.
    AllLines,
    /// One line per call: the rest waits to be offered again.
    OneLine,
    /// One line per call, and `wake` to be called again for the rest.
    OneLineThenWake,
    /// Raw bytes, each input written `fanout` times to every other connection.
    Broadcast { fanout: usize },
    /// `big` replies produced piece by piece as the socket drains: a reply
    /// in progress is continued first, and nothing more is consumed until
    /// it is done (a streaming server's shape).
    Incremental,
}

/// What the handler saw, shared with the test thread.
#[derive(Default)]
struct Log {
    /// `drained` calls, by connection.
    drained: Vec<ConnId>,
    /// Close reasons, by connection.
    closes: Vec<(ConnId, CloseReason)>,
    /// Lines received after our FIN was sent.
    after_fin: Vec<String>,
    /// Listener and local address seen in `opened`.
    opened: Vec<(Option<ListenerId>, Option<SocketAddr>, bool)>,
    /// Largest queue seen right after a write, in bytes.
    max_queued: usize,
    /// What writes after `shutdown_write` returned.
    late_writes: Vec<Result<(), reactor::WriteError>>,
}

struct Lab {
    mode: Mode,
    log: Arc<Mutex<Log>>,
    /// Open connections, for broadcasts.
    conns: Vec<ConnId>,
    /// `Mode::Incremental`: bytes of `big` reply still to write, by connection.
    owed: std::collections::HashMap<ConnId, usize>,
}

/// A reply of `kib` KiB whose bytes say where they are: byte `i` of the
/// stream of all `big` replies is `i % 251`, so a lost or repeated chunk shows.
fn big_reply(kib: usize) -> Vec<u8> {
    let cycle: Vec<u8> = (0..251).collect();
    let mut reply = cycle.repeat(kib * 1024 / 251 + 1);
    reply.truncate(kib * 1024);
    reply
}

impl Lab {
    fn new(mode: Mode) -> (Lab, Arc<Mutex<Log>>) {
        let log = Arc::new(Mutex::new(Log::default()));
        let lab = Lab {
            mode,
            log: Arc::clone(&log),
            conns: Vec::new(),
            owed: std::collections::HashMap::new(),
        };
        (lab, log)
    }

    fn note_queue(&self, ctx: &Context<'_, Self>, conn: ConnId) {
        let queued = ctx.queued_output(conn).unwrap_or(0);
        let mut log = self.log.lock().unwrap();
        log.max_queued = log.max_queued.max(queued);
    }

    /// Writes the 64 KiB pieces still owed of `conn`'s `big` reply until
    /// the queue is backpressured; whether the reply is complete.
    fn continue_reply(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) -> bool {
        let piece = big_reply(64);
        while let Some(owed) = self.owed.get_mut(&conn) {
            if *owed == 0 {
                self.owed.remove(&conn);
                break;
            }
            if ctx.is_backpressured(conn) {
                return false;
            }
            *owed -= 1;
            let _ = ctx.write(conn, &piece);
        }
        true
    }

    /// Runs one line; `false` stops processing this call's input.
    fn line(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, line: &str) -> bool {
        let mut words = line.split(' ');
        match (words.next(), words.next()) {
            (Some("big"), Some(kib)) if self.mode == Mode::Incremental => {
                let kib: usize = kib.parse().unwrap();
                self.owed.insert(conn, kib / 64);
                self.continue_reply(ctx, conn);
            }
            (Some("big"), Some(kib)) => {
                let _ = ctx.write(conn, &big_reply(kib.parse().unwrap()));
                self.note_queue(ctx, conn);
            }
            (Some("half"), None) => {
                let _ = ctx.write(conn, b"bye\n");
                ctx.shutdown_write(conn);
                let late = ctx.write(conn, b"late\n");
                self.log.lock().unwrap().late_writes.push(late);
            }
            (Some("abort"), None) => ctx.abort(conn),
            (Some("pause"), Some(ms)) => {
                ctx.pause_reading(conn);
                ctx.start_conn_timer(conn, Duration::from_millis(ms.parse().unwrap()), 0);
                return false;
            }
            (Some("limit"), Some(max)) => {
                let limits = Limits::from_max_output(max.parse().unwrap());
                ctx.set_limits(conn, limits).unwrap();
                let _ = ctx.write(conn, b"ok\n");
            }
            _ if ctx.conn_state(conn) == Some(reactor::ConnState::HalfClosed) => {
                self.log.lock().unwrap().after_fin.push(line.to_owned());
            }
            _ => {
                let _ = ctx.write(conn, format!("{line}\n").as_bytes());
            }
        }
        !ctx.is_backpressured(conn)
    }
}

impl Handler for Lab {
    type State = ();
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        let socket = ctx.socket(conn).unwrap();
        socket.set_keepalive(true).unwrap();
        let keepalive = socket.keepalive().unwrap();
        let seen = (ctx.listener(conn), ctx.local_addr(conn), keepalive);
        self.log.lock().unwrap().opened.push(seen);
        self.conns.push(conn);
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        if let Mode::Broadcast { fanout } = self.mode {
            for &other in self.conns.iter().filter(|&&c| c != conn) {
                for copy in 0..fanout {
                    // A frame header lets the reader check every copy.
                    let mut header = (input.len() as u32).to_be_bytes().to_vec();
                    header.push(copy as u8);
                    let _ = ctx.write(other, &header);
                    let _ = ctx.write(other, input);
                }
            }
            return input.len();
        }
        if self.mode == Mode::Incremental && !self.continue_reply(ctx, conn) {
            // A reply in progress goes first: consume nothing yet.
            return 0;
        }
        let mut consumed = 0;
        while let Some(end) = input[consumed..].iter().position(|&b| b == b'\n') {
            let line = std::str::from_utf8(&input[consumed..consumed + end]).unwrap();
            consumed += end + 1;
            let go_on = self.line(ctx, conn, line);
            if !go_on || ctx.conn_state(conn).is_none() || self.owed.contains_key(&conn) {
                break;
            }
            match self.mode {
                Mode::OneLine => break,
                Mode::OneLineThenWake => {
                    ctx.wake(conn);
                    break;
                }
                _ => {}
            }
        }
        consumed
    }

    fn drained(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        self.log.lock().unwrap().drained.push(conn);
        self.continue_reply(ctx, conn);
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if let Some(conn) = fired.conn {
            ctx.resume_reading(conn);
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: CloseReason) {
        self.conns.retain(|&c| c != conn);
        self.log.lock().unwrap().closes.push((conn, reason));
    }
}

fn start(mode: Mode, config: Config) -> (common::Running<Lab>, Arc<Mutex<Log>>) {
    let (lab, log) = Lab::new(mode);
    (common::start(lab, config), log)
}

fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = common::client(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

fn closes(log: &Arc<Mutex<Log>>) -> Vec<CloseReason> {
    log.lock().unwrap().closes.iter().map(|c| c.1).collect()
}

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

/// `shutdown_write` sends FIN once the reply is written and keeps reading:
/// the client sees EOF, can still send, and the connection ends with its FIN.
#[test]
fn shutdown_write_half_closes_and_keeps_reading() {
    // A linger far longer than the wait below: once both FINs are out the
    // connection must end at once, not linger.
    let config = Config {
        linger_timeout: Duration::from_secs(30),
        ..Config::default()
    };
    let (server, log) = start(Mode::AllLines, config);
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"half\n").unwrap();
    assert_eq!(read_line(&mut reader), "bye\n");
    assert_eq!(read_line(&mut reader), "", "EOF after our FIN");
    stream.write_all(b"still talking\nand more\n").unwrap();
    common::wait_until("lines after FIN", Duration::from_secs(5), || {
        log.lock().unwrap().after_fin.len() == 2
    });
    assert!(closes(&log).is_empty(), "closed before the client's FIN");
    stream.shutdown(Shutdown::Write).unwrap();
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::PeerClosed]);
    let seen = log.lock().unwrap();
    assert_eq!(seen.after_fin, ["still talking", "and more"]);
    assert_eq!(seen.late_writes, [Err(reactor::WriteError::Gone)]);
}

/// After `shutdown_write` nothing more is taken, even once the state moves
/// on: here the peer's FIN came first, so the half-close closes the
/// connection after the flush, a state that otherwise still takes output.
#[test]
fn no_output_is_taken_after_shutdown_write() {
    let (server, log) = start(Mode::OneLine, Config::default());
    let (mut stream, mut reader) = connect(server.addr);
    // One line per call: `half` is left over and runs at the FIN.
    stream.write_all(b"x\nhalf\n").unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    let mut all = String::new();
    reader.read_to_string(&mut all).unwrap();
    assert_eq!(all, "x\nbye\n");
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(
        log.lock().unwrap().late_writes,
        [Err(reactor::WriteError::Gone)]
    );
}

/// A graceful shutdown closes an idle half-closed connection like any idle
/// one (its FIN is out: it lingers for the peer's), long before the grace
/// period ends.
#[test]
fn a_graceful_shutdown_closes_an_idle_half_closed_connection() {
    let config = Config {
        linger_timeout: Duration::from_millis(200),
        ..Config::default()
    };
    let (mut server, log) = start(Mode::AllLines, config);
    let (mut stream, mut reader) = connect(server.addr);
    stream.write_all(b"half\n").unwrap();
    assert_eq!(read_line(&mut reader), "bye\n");
    assert_eq!(read_line(&mut reader), "", "EOF after our FIN");
    server.handle.shutdown(Duration::from_secs(60));
    let thread = server.thread.take().unwrap();
    common::join_within(thread, Duration::from_secs(10));
    assert_eq!(closes(&log), vec![CloseReason::Shutdown]);
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

/// `abort` closes with a reset the peer can tell from a clean end.
#[test]
fn abort_resets_the_connection() {
    let (server, log) = start(Mode::AllLines, Config::default());
    let (mut stream, _reader) = connect(server.addr);
    stream.write_all(b"abort\n").unwrap();
    let mut buf = [0; 16];
    let error = loop {
        match stream.read(&mut buf) {
            Ok(0) => panic!("clean EOF instead of a reset"),
            Ok(_) => {}
            Err(e) => break e,
        }
    };
    assert_eq!(error.kind(), ErrorKind::ConnectionReset);
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(closes(&log), vec![CloseReason::Aborted]);
}

/// A connection given a 64 KiB cap of its own is closed by a reply its
/// neighbour on the default limits receives whole.
#[test]
fn limits_of_one_connection_override_the_config() {
    let (server, log) = start(Mode::AllLines, Config::default());
    let (mut small, mut small_reader) = connect(server.addr);
    let (mut normal, mut normal_reader) = connect(server.addr);
    small.write_all(b"limit 65536\n").unwrap();
    assert_eq!(read_line(&mut small_reader), "ok\n");
    small.write_all(b"big 128\n").unwrap();
    normal.write_all(b"big 128\n").unwrap();
    let mut reply = vec![0; 128 * 1024];
    normal_reader.read_exact(&mut reply).unwrap();
    assert!(reply == big_reply(128));
    server.wait_for("the close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert_eq!(
        closes(&log),
        vec![CloseReason::LimitExceeded(Limit::Output)]
    );
    let bad = Limits {
        output_low_water: 1 << 20,
        ..Limits::from_max_output(1 << 20)
    };
    assert!(bad
        .validate()
        .unwrap_err()
        .to_string()
        .contains("low_water"));
}

/// Only `max_output` set: the water marks follow it, no validation error.
#[test]
fn setting_only_the_output_cap_is_a_valid_config() {
    let config = Config {
        max_output: 32 * 1024,
        ..Config::default()
    };
    assert!(config.validate().is_ok());
    let limits = config.limits();
    assert!(limits.output_low_water < limits.output_high_water);
    assert!(limits.output_high_water <= 32 * 1024);
}

/// Above the soft limit for longer than its duration: closed. A client
/// that reads its reply in time is never closed.
#[test]
fn the_soft_limit_closes_only_after_its_time() {
    let config = Config {
        soft_output: Some(SoftLimit {
            bytes: 64 * 1024,
            duration: Duration::from_millis(1000),
        }),
        max_output: 64 * 1024 * 1024,
        ..Config::default()
    };
    let (server, log) = start(Mode::AllLines, config);
    let (mut stuck, _stuck_reader) = connect(server.addr);
    let (mut reader_conn, mut reader) = connect(server.addr);
    // 32 MiB: more than the loopback socket buffers take, so most of it
    // stays queued for the client that does not read.
    let started = Instant::now();
    stuck.write_all(b"big 32768\n").unwrap();
    reader_conn.write_all(b"big 32768\n").unwrap();
    let mut reply = vec![0; 32768 * 1024];
    reader.read_exact(&mut reply).unwrap();
    server.wait_for("the soft close", Duration::from_secs(5), |s| {
        s.closed_total() == 1
    });
    assert!(started.elapsed() >= Duration::from_millis(990));
    assert_eq!(
        closes(&log),
        vec![CloseReason::LimitExceeded(Limit::Output)]
    );
    thread::sleep(Duration::from_millis(1100));
    assert_eq!(closes(&log).len(), 1, "the reader was closed too");
}

/// Every input is written 8 times to each of four other connections (one
/// 64 KiB read becomes 512 KiB per reader, twice high water in one
/// callback) with a hard cap of 2 MiB: readers that keep up get every byte
/// in order, however slow their thread is next to the loop (the fan-out
/// hold waits for them); one that never reads is cut off and holds nobody
/// for long.
#[test]
fn fan_out_reaches_every_reader_that_keeps_up() {
    const TOTAL: usize = 8 * 1024 * 1024;
    const FANOUT: usize = 8;
    let config = Config {
        max_output: 2 * 1024 * 1024,
        ..Config::default()
    };
    let (server, log) = start(Mode::Broadcast { fanout: FANOUT }, config);
    let readers: Vec<_> = (0..3)
        .map(|_| {
            let (stream, _) = connect(server.addr);
            stream
        })
        .collect();
    let (stuck, _) = connect(server.addr);
    let (sender, _) = connect(server.addr);
    server.wait_for("5 connections", Duration::from_secs(5), |s| {
        s.open_connections == 5
    });
    let data = common::Prng(7).bytes(TOTAL);
    let data = Arc::new(data);
    let (done_tx, done_rx) = mpsc::channel();
    for stream in readers {
        let data = Arc::clone(&data);
        let done = done_tx.clone();
        thread::spawn(move || {
            // Frames: length (4 bytes), copy number, then that many bytes
            // of the data; each input comes FANOUT times, then the next.
            let mut stream = BufReader::new(stream);
            let mut at = 0;
            let mut header = [0; 5];
            let mut payload = Vec::new();
            while at < TOTAL {
                let mut len = 0;
                for copy in 0..FANOUT {
                    stream.read_exact(&mut header).unwrap();
                    len = u32::from_be_bytes(header[..4].try_into().unwrap()) as usize;
                    assert_eq!(header[4] as usize, copy, "copy out of order at {at}");
                    payload.resize(len, 0);
                    stream.read_exact(&mut payload).unwrap();
                    assert!(payload == data[at..at + len], "bytes differ at {at}");
                }
                at += len;
            }
            done.send(at).unwrap();
        });
    }
    let writer = common::write_then_fin(&sender, data.to_vec());
    for _ in 0..3 {
        let got = done_rx.recv_timeout(Duration::from_secs(60)).unwrap();
        assert_eq!(got, TOTAL);
    }
    writer.join().unwrap();
    drop(stuck);
    let log = log.lock().unwrap();
    let output_closes = log
        .closes
        .iter()
        .filter(|c| c.1 == CloseReason::LimitExceeded(Limit::Output))
        .count();
    assert_eq!(output_closes, 1, "only the stuck reader is cut off");
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
