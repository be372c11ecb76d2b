//! The [`Lab`] handler the flow-control tests share (tests/flow.rs,
//! tests/flow_close.rs, tests/flow_limits.rs): a line protocol whose
//! commands each exercise one of the embedder's primitives (`big` replies,
//! `half`, `abort`, `pause`, `limit`), a [`Mode`] that changes how much
//! input it takes per call, and the [`Log`] of what it saw, shared with
//! the test thread. Also starting it and the client side those tests use.

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, Context, Fired, Handler, Limits, ListenerId};

use super::Running;

/// How much input `Lab::data` takes per call.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Mode {
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
pub struct Log {
    /// `drained` calls, by connection.
    pub drained: Vec<ConnId>,
    /// Close reasons, by connection.
    pub closes: Vec<(ConnId, CloseReason)>,
    /// Lines received after our FIN was sent.
    pub after_fin: Vec<String>,
    /// Listener and local address seen in `opened`.
    pub opened: Vec<(Option<ListenerId>, Option<SocketAddr>, bool)>,
    /// Largest queue seen right after a write, in bytes.
    pub max_queued: usize,
    /// What writes after `shutdown_write` returned.
    pub late_writes: Vec<Result<(), reactor::WriteError>>,
}

pub struct Lab {
    mode: Mode,
    log: Arc<Mutex<Log>>,
    /// Open connections, for broadcasts.
    conns: Vec<ConnId>,
    /// `Mode::Incremental`: bytes of `big` reply still to write, by connection.
    owed: std::collections::HashMap<ConnId, usize>,
}

/// A reply of `kib` KiB whose bytes say where they are: byte `i` of the
/// stream of all `big` replies is `i % 251`, so a lost or repeated chunk shows.
pub fn big_reply(kib: usize) -> Vec<u8> {
    let cycle: Vec<u8> = (0..251).collect();
    let mut reply = cycle.repeat(kib * 1024 / 251 + 1);
    reply.truncate(kib * 1024);
    reply
}

impl Lab {
    pub fn new(mode: Mode) -> (Lab, Arc<Mutex<Log>>) {
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

/// Starts a [`Lab`] in `mode` with `config`; returns it and its log.
pub fn start(mode: Mode, config: Config) -> (Running<Lab>, Arc<Mutex<Log>>) {
    let (lab, log) = Lab::new(mode);
    (super::start(lab, config), log)
}

/// A client of `addr` and a line reader on the same socket.
pub fn connect(addr: SocketAddr) -> (TcpStream, BufReader<TcpStream>) {
    let stream = super::client(addr);
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let reader = BufReader::new(stream.try_clone().unwrap());
    (stream, reader)
}

/// The next line, with its newline (empty at EOF).
pub fn read_line(reader: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    reader.read_line(&mut line).unwrap();
    line
}

/// The close reasons logged so far, in order.
pub fn closes(log: &Arc<Mutex<Log>>) -> Vec<CloseReason> {
    log.lock().unwrap().closes.iter().map(|c| c.1).collect()
}
