//! Review tests for TLS: flow control (pause, backpressure), fan-out and
//! staging, the close sequence, handshake bookkeeping. Three of them
//! (pause in `opened`, pause before an outbound handshake, `drained` before
//! `connected`) were written as failing tests of bugs the review found,
//! now fixed.
#![cfg(feature = "tls")]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::{mpsc, Arc, Mutex};
use std::time::{Duration, Instant};

use common::tls::{start_tls, tls_client, Pki, TlsClient};
use common::{wait_for_stats, wait_until, Echo};
use reactor::tls::rustls::{self, ClientConfig};
use reactor::tls::ServerName;
use reactor::{CloseReason, Config, ConnId, Context, Fired, Handle, Handler, Stats};

const LIMIT: Duration = Duration::from_secs(10);

type Log = Arc<Mutex<Vec<String>>>;

fn push(log: &Log, event: impl Into<String>) {
    log.lock().unwrap().push(event.into());
}

fn snapshot(log: &Log) -> Vec<String> {
    log.lock().unwrap().clone()
}

/// Waits for every connection to be gone, then checks the accounting.
fn assert_all_gone<M>(handle: &Handle<M>) -> Stats {
    let stats = wait_for_stats(handle, "every connection gone", LIMIT, |s| {
        s.open_connections == 0
    });
    assert_eq!(stats.tls_handshakes_in_progress, 0, "{stats:?}");
    assert_eq!(stats.queued_output_bytes, 0, "{stats:?}");
    stats
}

/// A rustls client session that has written `early` before its handshake
/// ended: rustls sends it in the same write as its Finished.
fn client_with_early_write(addr: SocketAddr, config: Arc<ClientConfig>, early: &[u8]) -> TcpStream {
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.set_read_timeout(Some(LIMIT)).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = rustls::ClientConnection::new(config, name).unwrap();
    conn.writer().write_all(early).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).unwrap();
    }
    while conn.wants_write() {
        conn.write_tls(&mut sock).unwrap();
    }
    // Keep the session alive: the socket is returned, the session leaks
    // nothing a test needs.
    std::mem::forget(conn);
    sock
}

// ---------------------------------------------------------------------
// 1. pause_reading in `opened`: plaintext that came with the client's
//    Finished must wait for resume_reading, as on plain TCP.

struct PauseInOpened {
    log: Log,
}

impl Handler for PauseInOpened {
    type State = ();
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        ctx.pause_reading(conn);
        ctx.start_conn_timer(conn, Duration::from_millis(300), 1);
        push(&self.log, "opened");
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        input: &[u8],
    ) -> usize {
        let paused = ctx.is_reading_paused(conn) == Some(true);
        push(
            &self.log,
            format!("data paused={paused} {}", String::from_utf8_lossy(input)),
        );
        input.len()
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if let Some(conn) = fired.conn {
            push(&self.log, "resume");
            ctx.resume_reading(conn);
        }
    }
}

#[test]
fn pause_in_opened_holds_data_that_came_with_the_handshake() {
    let pki = Pki::new();
    let log = Log::default();
    let server = start_tls(
        PauseInOpened { log: log.clone() },
        Config::default(),
        pki.server(&[]),
    );
    let _sock = client_with_early_write(server.addr, pki.client(&[]), b"hello");
    wait_until("data delivered", LIMIT, || {
        snapshot(&log).iter().any(|e| e.starts_with("data"))
    });
    assert_eq!(
        snapshot(&log),
        vec!["opened", "resume", "data paused=false hello"],
        "data reached the handler while its reading was paused"
    );
}

// ---------------------------------------------------------------------
// 2. Outbound TLS: flow control set before the handshake completed.

#[derive(Clone, Copy)]
enum Early {
    /// `pause_reading` right after `connect_tls`; `connected` resumes.
    Pause,
    /// A write above high water right after `connect_tls`.
    Big,
}

struct Go(SocketAddr, Arc<ClientConfig>, Early);

#[derive(Default)]
struct Outbound {
    log: Log,
    received: Arc<Mutex<usize>>,
}

impl Handler for Outbound {
    type State = ();
    type Message = Go;

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn message(&mut self, ctx: &mut Context<'_, Self>, Go(addr, config, early): Go) {
        let name = ServerName::try_from("localhost").unwrap();
        let conn = ctx
            .connect_tls(addr, Some(LIMIT), name, config, ())
            .expect("connect_tls");
        match early {
            Early::Pause => ctx.pause_reading(conn),
            Early::Big => ctx.write_vec(conn, vec![b'x'; 256 * 1024]).unwrap(),
        }
    }

    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        push(&self.log, "connected");
        ctx.resume_reading(conn);
    }

    fn drained(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        push(
            &self.log,
            format!("drained state={:?}", ctx.conn_state(conn).unwrap()),
        );
    }

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        *self.received.lock().unwrap() += input.len();
        input.len()
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: (), reason: CloseReason) {
        push(&self.log, format!("closed {reason:?}"));
    }
}

fn outbound_run(early: Early, config: Config) -> (Vec<String>, usize) {
    let pki = Pki::new();
    let server = start_tls(Echo::default(), Config::default(), pki.server(&[]));
    let handler = Outbound::default();
    let (log, received) = (handler.log.clone(), handler.received.clone());
    let client = common::start(handler, config);
    client
        .handle
        .send(Go(server.addr, pki.client(&[]), early))
        .ok()
        .unwrap();
    wait_until("connected or closed", LIMIT, || {
        snapshot(&log)
            .iter()
            .any(|e| e == "connected" || e.starts_with("closed"))
    });
    std::thread::sleep(Duration::from_millis(300));
    let events = snapshot(&log);
    let got = *received.lock().unwrap();
    (events, got)
}

#[test]
fn outbound_paused_before_the_handshake_still_connects() {
    let config = Config {
        tls_handshake_timeout: Duration::from_secs(1),
        ..Config::default()
    };
    let (events, _) = outbound_run(Early::Pause, config);
    assert_eq!(
        events.first().map(String::as_str),
        Some("connected"),
        "events: {events:?}"
    );
}

#[test]
fn outbound_big_early_write_gets_connected_before_drained() {
    let config = Config {
        output_high_water: Some(64 * 1024),
        output_low_water: Some(16 * 1024),
        ..Config::default()
    };
    let (events, _) = outbound_run(Early::Big, config);
    let connected = events.iter().position(|e| e == "connected");
    let drained = events.iter().position(|e| e.starts_with("drained"));
    assert!(connected.is_some(), "events: {events:?}");
    if let Some(drained) = drained {
        assert!(
            drained > connected.unwrap(),
            "drained before connected: {events:?}"
        );
    }
}

/// The plain-TCP reference for the test above: `connected` comes first.
struct PlainGo(SocketAddr);

#[derive(Default)]
struct PlainOutbound {
    log: Log,
}

impl Handler for PlainOutbound {
    type State = ();
    type Message = PlainGo;

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}

    fn message(&mut self, ctx: &mut Context<'_, Self>, PlainGo(addr): PlainGo) {
        let conn = ctx.connect(addr, Some(LIMIT), ()).unwrap();
        ctx.write_vec(conn, vec![b'x'; 256 * 1024]).unwrap();
    }

    fn connected(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut ()) {
        push(&self.log, "connected");
    }

    fn drained(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut ()) {
        push(&self.log, "drained");
    }
}

#[test]
fn plain_outbound_big_early_write_gets_connected_before_drained() {
    let server = common::start_echo(Config::default());
    let handler = PlainOutbound::default();
    let log = handler.log.clone();
    let config = Config {
        output_high_water: Some(64 * 1024),
        output_low_water: Some(16 * 1024),
        ..Config::default()
    };
    let client = common::start(handler, config);
    client.handle.send(PlainGo(server.addr)).ok().unwrap();
    wait_until("connected", LIMIT, || {
        snapshot(&log).iter().any(|e| e == "connected")
    });
    std::thread::sleep(Duration::from_millis(300));
    let events = snapshot(&log);
    assert_eq!(events.first().map(String::as_str), Some("connected"));
}

// ---------------------------------------------------------------------
// 3. Pausing mid-stream, resuming from a timer: nothing lost or doubled.

const CHUNK: usize = 7_919;

#[derive(Default)]
struct SlowReader {
    total: usize,
}

#[derive(Default)]
struct Digest {
    count: usize,
    hash: u64,
}

fn fnv(mut hash: u64, bytes: &[u8]) -> u64 {
    if hash == 0 {
        hash = 0xcbf2_9ce4_8422_2325;
    }
    for &b in bytes {
        hash ^= b as u64;
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl Handler for SlowReader {
    type State = Digest;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> Digest {
        Digest::default()
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        d: &mut Digest,
        input: &[u8],
    ) -> usize {
        assert_eq!(
            ctx.is_reading_paused(conn),
            Some(false),
            "data while paused"
        );
        let take = input.len().min(CHUNK);
        d.hash = fnv(d.hash, &input[..take]);
        d.count += take;
        if d.count == self.total {
            let reply = format!("ok {} {:x}\n", d.count, d.hash);
            ctx.write(conn, reply.as_bytes()).unwrap();
        }
        ctx.pause_reading(conn);
        ctx.start_conn_timer(conn, Duration::from_millis(1), 0);
        take
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        if let Some(conn) = fired.conn {
            ctx.resume_reading(conn);
        }
    }
}

fn pattern(n: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn read_line(client: &mut TlsClient) -> String {
    let mut line = Vec::new();
    let mut byte = [0];
    while !line.ends_with(b"\n") {
        match client.read(&mut byte) {
            Ok(1) => line.push(byte[0]),
            other => panic!(
                "read a line: {other:?} after {:?}",
                String::from_utf8_lossy(&line)
            ),
        }
    }
    String::from_utf8(line).unwrap()
}

#[test]
fn pausing_mid_stream_over_tls_loses_and_duplicates_nothing() {
    const TOTAL: usize = 1 << 20;
    let pki = Pki::new();
    let config = Config {
        max_input: 4 << 20,
        ..Config::default()
    };
    let server = start_tls(SlowReader { total: TOTAL }, config, pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    let data = pattern(TOTAL, 7);
    // Odd-sized writes: records of every size, several per read, one cut
    // across reads.
    for piece in data.chunks(12_345) {
        client.write_all(piece).unwrap();
    }
    client.flush().unwrap();
    let line = read_line(&mut client);
    assert_eq!(line, format!("ok {TOTAL} {:x}\n", fnv(0, &data)));
    drop(client);
    assert_all_gone(&server.handle);
}

// ---------------------------------------------------------------------
// 4. Backpressure over TLS: the client sends everything without reading,
//    then reads; the server must still echo every byte.

#[test]
fn backpressure_over_tls_echoes_everything_after_the_client_reads() {
    const TOTAL: usize = 384 * 1024;
    let pki = Pki::new();
    let config = Config {
        output_high_water: Some(32 * 1024),
        output_low_water: Some(8 * 1024),
        ..Config::default()
    };
    let server = start_tls(Echo::default(), config, pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    client
        .sock
        .set_write_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let data = pattern(TOTAL, 3);
    client
        .write_all(&data)
        .expect("the pipeline took everything");
    client.flush().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut back = vec![0; TOTAL];
    client.read_exact(&mut back).expect("every byte echoed");
    assert!(back == data, "echo corrupted");
    let stats = server.handle.stats();
    assert!(stats.backpressure_events > 0, "not exercised: {stats:?}");
    drop(client);
    assert_all_gone(&server.handle);
}

// ---------------------------------------------------------------------
// 5. Fan-out over TLS: every line goes to every connection (write and
//    write_vec alternating), plus broadcasts from messages and timers.

#[derive(Default)]
struct Chat {
    members: Vec<ConnId>,
    flip: bool,
}

impl Chat {
    fn broadcast(&mut self, ctx: &mut Context<'_, Self>, line: &[u8]) {
        for &m in &self.members.clone() {
            self.flip = !self.flip;
            let _ = if self.flip {
                ctx.write(m, line)
            } else {
                ctx.write_vec(m, line.to_vec())
            };
        }
    }
}

impl Handler for Chat {
    type State = ();
    type Message = ();

    fn opened(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: SocketAddr) {
        self.members.push(conn);
        // A welcome written in `opened`.
        ctx.write(conn, b"welcome\n").unwrap();
        if self.members.len() == 1 {
            ctx.start_timer(Duration::from_millis(3), 0);
        }
    }

    fn data(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, _: &mut (), input: &[u8]) -> usize {
        let mut used = 0;
        while let Some(end) = input[used..].iter().position(|&b| b == b'\n') {
            let line = &input[used..used + end + 1];
            self.broadcast(ctx, line);
            used += end + 1;
        }
        used
    }

    fn message(&mut self, ctx: &mut Context<'_, Self>, _: ()) {
        self.broadcast(ctx, b"message\n");
    }

    fn timer(&mut self, ctx: &mut Context<'_, Self>, _: Fired) {
        self.broadcast(ctx, b"tick\n");
        if !self.members.is_empty() {
            ctx.start_timer(Duration::from_millis(3), 0);
        }
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), _: CloseReason) {
        self.members.retain(|&m| m != conn);
    }
}

#[test]
fn tls_fanout_from_data_messages_and_timers_stays_decryptable_and_in_order() {
    const CLIENTS: usize = 4;
    const LINES: usize = 300;
    let pki = Pki::new();
    let config = Config {
        output_high_water: Some(4 * 1024),
        output_low_water: Some(1024),
        ..Config::default()
    };
    let server = start_tls(Chat::default(), config, pki.server(&[]));
    let mut clients: Vec<TlsClient> = (0..CLIENTS)
        .map(|_| tls_client(server.addr, pki.client(&[])))
        .collect();
    // Everyone is a member before anything is said.
    wait_for_stats(&server.handle, "all open", LIMIT, |s| {
        s.tls_handshakes as usize == CLIENTS
    });
    let pad = "p".repeat(90);
    for j in 0..LINES {
        for (i, client) in clients.iter_mut().enumerate() {
            writeln!(client, "c{i} l{j} {pad}").unwrap();
        }
        if j % 50 == 0 {
            for client in clients.iter_mut() {
                client.flush().unwrap();
            }
            server.handle.send(()).ok().unwrap();
        }
    }
    for client in clients.iter_mut() {
        client.flush().unwrap();
    }
    let (tx, rx) = mpsc::channel();
    let mut threads = Vec::new();
    for (i, mut client) in clients.into_iter().enumerate() {
        let tx = tx.clone();
        let pad = pad.clone();
        threads.push(std::thread::spawn(move || {
            let mut next = [0usize; CLIENTS];
            let mut seen = 0;
            let deadline = Instant::now() + LIMIT;
            while seen < CLIENTS * LINES {
                assert!(Instant::now() < deadline, "client {i}: only {seen} lines");
                let line = read_line(&mut client);
                if line == "tick\n" || line == "message\n" || line == "welcome\n" {
                    continue;
                }
                let mut parts = line.trim_end().splitn(3, ' ');
                let who: usize = parts.next().unwrap()[1..].parse().unwrap();
                let n: usize = parts.next().unwrap()[1..].parse().unwrap();
                assert_eq!(parts.next().unwrap(), pad, "client {i}: bad line {line:?}");
                assert_eq!(n, next[who], "client {i}: out of order from {who}");
                next[who] += 1;
                seen += 1;
            }
            tx.send(i).unwrap();
            client
        }));
    }
    drop(tx);
    let mut clients = Vec::new();
    for thread in threads {
        clients.push(common::join_within(thread, LIMIT));
    }
    assert_eq!(rx.iter().count(), CLIENTS);
    drop(clients);
    assert_all_gone(&server.handle);
}

// ---------------------------------------------------------------------
// 6. Handshake bookkeeping: every kind of end brings the count back to 0
//    and the held listener back.

#[test]
fn every_kind_of_handshake_end_returns_the_count_to_zero() {
    let pki = Pki::new();
    let config = Config {
        tls_handshake_timeout: Duration::from_millis(400),
        max_tls_handshakes: 2,
        ..Config::default()
    };
    let server = start_tls(Echo::default(), config, pki.server(&[]));
    let addr = server.addr;
    // Silent (handshake timeout), garbage (TLS error), half a hello then
    // FIN (truncation), connect-and-close, reset.
    let silent = TcpStream::connect(addr).unwrap();
    let mut garbage = TcpStream::connect(addr).unwrap();
    garbage.write_all(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let mut half = TcpStream::connect(addr).unwrap();
    half.write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01])
        .unwrap();
    half.shutdown(std::net::Shutdown::Write).unwrap();
    drop(TcpStream::connect(addr).unwrap());
    let reset = TcpStream::connect(addr).unwrap();
    socket2::SockRef::from(&reset)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(reset);
    // A real client behind them all: the cap must have let it in.
    let mut good = tls_client(addr, pki.client(&[]));
    assert_eq!(common::tls::round_trip(&mut good, b"hi\n"), b"hi\n");
    drop((silent, garbage, half, good));
    let stats = assert_all_gone(&server.handle);
    assert!(stats.tls_handshake_failures >= 4, "{stats:?}");
}

#[test]
fn shutdown_deadline_and_idle_timeout_end_handshakes_too() {
    let pki = Pki::new();
    let config = Config {
        idle_timeout: Some(Duration::from_millis(200)),
        ..Config::default()
    };
    let server = start_tls(Echo::default(), config, pki.server(&[]));
    let _silent = TcpStream::connect(server.addr).unwrap();
    wait_for_stats(&server.handle, "handshake counted", LIMIT, |s| {
        s.tls_handshakes_in_progress == 1
    });
    let stats = assert_all_gone(&server.handle);
    assert_eq!(stats.closed_by_reason[CloseReason::IdleTimeout.index()], 1);

    // At a shutdown, a handshake in progress is closed.
    let _silent2 = TcpStream::connect(server.addr).unwrap();
    let _silent3 = TcpStream::connect(server.addr).unwrap();
    wait_for_stats(&server.handle, "handshakes counted", LIMIT, |s| {
        s.tls_handshakes_in_progress == 2
    });
    let mut server = server;
    server.handle.shutdown(Duration::from_millis(100));
    let reactor = common::join_within(server.thread.take().unwrap(), LIMIT);
    let stats = reactor.stats();
    assert_eq!(stats.tls_handshakes_in_progress, 0, "{stats:?}");
    assert_eq!(stats.queued_output_bytes, 0, "{stats:?}");
    assert_eq!(stats.open_connections, 0, "{stats:?}");
}

// ---------------------------------------------------------------------
// 7. The peer's close_notify while a large reply is still queued: every
//    byte, then our close_notify, then FIN.

fn megabyte_reply(ctx: &mut Context<'_, Echo>, conn: ConnId, _: &[u8]) {
    let _ = ctx.write_vec(conn, pattern(1 << 20, 5));
}

#[test]
fn peer_close_notify_with_output_queued_still_gets_everything_cleanly() {
    let pki = Pki::new();
    let server = start_tls(
        Echo::with(megabyte_reply),
        Config::default(),
        pki.server(&[]),
    );
    let mut client = tls_client(server.addr, pki.client(&[]));
    client.write_all(b"go\n").unwrap();
    client.flush().unwrap();
    // Let the reply start queueing, then say goodbye while reading nothing.
    std::thread::sleep(Duration::from_millis(100));
    client.conn.send_close_notify();
    client.flush().unwrap();
    while client.conn.wants_write() {
        client.conn.write_tls(&mut client.sock).unwrap();
    }
    let mut got = Vec::new();
    client
        .read_to_end(&mut got)
        .expect("a clean end after every byte");
    assert!(got == pattern(1 << 20, 5), "reply corrupted or cut");
    drop(client);
    assert_all_gone(&server.handle);
}

// ---------------------------------------------------------------------
// 8. Context::close with nothing queued: a best-effort close_notify
//    (farewell), so a strict client sees a clean end, not a truncation.

fn close_at_once(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    // Reply goes through the staging buffer, and is flushed after the
    // callback... but `close` drops it: only what was sent before counts.
    let _ = input;
    ctx.close(conn);
}

#[test]
fn close_now_with_nothing_queued_says_close_notify() {
    let pki = Pki::new();
    let server = start_tls(
        Echo::with(close_at_once),
        Config::default(),
        pki.server(&[]),
    );
    let mut client = tls_client(server.addr, pki.client(&[]));
    client.write_all(b"x\n").unwrap();
    client.flush().unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("clean end");
    assert!(got.is_empty());
    drop(client);
    assert_all_gone(&server.handle);
}

// ---------------------------------------------------------------------
// 9. A reply written after the peer's close_notify (in `read_closed`)
//    still reaches the peer, then our close_notify.

#[derive(Default)]
struct ReplyOnClose;

impl Handler for ReplyOnClose {
    type State = usize;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> usize {
        0
    }

    fn data(&mut self, _: &mut Context<'_, Self>, _: ConnId, n: &mut usize, input: &[u8]) -> usize {
        *n += input.len();
        input.len()
    }

    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, n: &mut usize) {
        let reply = format!("got {n}\n");
        ctx.write(conn, reply.as_bytes()).unwrap();
        ctx.close_after_flush(conn);
    }
}

#[test]
fn reply_after_peer_close_notify_is_delivered() {
    let pki = Pki::new();
    let server = start_tls(ReplyOnClose, Config::default(), pki.server(&[]));
    let mut client = tls_client(server.addr, pki.client(&[]));
    client.write_all(b"hello").unwrap();
    client.conn.send_close_notify();
    client.flush().unwrap();
    let mut got = Vec::new();
    client.read_to_end(&mut got).expect("clean end");
    assert_eq!(got, b"got 5\n");
    drop(client);
    assert_all_gone(&server.handle);
}
