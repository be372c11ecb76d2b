//! A RESP client for the tests of the `resp_server` example (tests/resp.rs,
//! tests/resp_memory.rs, tests/pubsub.rs, tests/resp3.rs, tests/resp_multi.rs,
//! tests/resp_redis_py.rs, tests/resp_status.rs; tests/resp_parse.rs encodes with it): starting
//! the server (and a real redis-server to compare with), encoding commands,
//! and reading replies either
//! as raw bytes (to compare with Redis byte for byte) or decoded (to compare
//! by meaning). Also the memory-phase helper those tests measure the server
//! with.
//!
//! Raw reading is the one reader: a decoded reply is parsed from the bytes
//! of one raw reply, so both views always agree on where a reply ends.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread::JoinHandle;
use std::time::Duration;

use super::ChildServer;

/// Starts the `resp_server` example on a free loopback port with `extra`
/// flags.
pub fn spawn(extra: &[&str]) -> ChildServer {
    super::spawn_on_loopback("resp_server", extra)
}

/// A redis-server on a free loopback port, stopped (by its own pid) when
/// dropped.
pub struct RedisServer {
    /// The process.
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl RedisServer {
    pub fn start() -> RedisServer {
        // The kernel picks a free port; it is released for redis-server to
        // bind (another process taking it in between would fail the wait).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start redis-server");
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let server = RedisServer { child, addr };
        super::wait_until("redis-server to listen", Duration::from_secs(10), || {
            TcpStream::connect(addr).is_ok()
        });
        server
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A RESP2 reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Reply {
    /// `+text`
    Simple(String),
    /// `-text`
    Error(String),
    /// `:n`
    Int(i64),
    /// `$n` and its bytes; `None` for the null bulk `$-1`.
    Bulk(Option<Vec<u8>>),
    /// `*n` and its elements.
    Array(Vec<Reply>),
}

/// A bulk string reply holding `s`.
pub fn bulk(s: &str) -> Reply {
    Reply::Bulk(Some(s.as_bytes().to_vec()))
}

/// A simple string reply.
pub fn simple(s: &str) -> Reply {
    Reply::Simple(s.into())
}

/// An error reply.
pub fn err(s: &str) -> Reply {
    Reply::Error(s.into())
}

/// A command as a multibulk frame (also the shape of an array of bulk
/// strings, such as a pub/sub message).
pub fn encode<A: AsRef<[u8]>>(args: &[A]) -> Vec<u8> {
    let mut frame = format!("*{}\r\n", args.len()).into_bytes();
    for arg in args {
        let arg = arg.as_ref();
        frame.extend_from_slice(format!("${}\r\n", arg.len()).as_bytes());
        frame.extend_from_slice(arg);
        frame.extend_from_slice(b"\r\n");
    }
    frame
}

/// A client connection with a reply reader.
pub struct Client {
    /// The socket, for writing (and for shutting down its write side).
    pub stream: TcpStream,
    /// A clone of the socket, buffered for reading replies. Invariant: it
    /// holds no partial reply between calls, unless a test read a part
    /// itself (a huge array's header, say).
    pub reader: BufReader<TcpStream>,
}

impl Client {
    /// Connects to `addr` with the bounded waits of [`super::client`].
    pub fn connect(addr: SocketAddr) -> Client {
        let stream = super::client(addr);
        let reader = BufReader::new(stream.try_clone().unwrap());
        Client { stream, reader }
    }

    pub fn send_raw(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).unwrap();
    }

    pub fn send(&mut self, args: &[&str]) {
        self.send_raw(&encode(args));
    }

    /// Sends `bytes` from another thread, so that the caller can read the
    /// replies meanwhile, as a client that reads normally does.
    pub fn send_in_background(&self, bytes: Vec<u8>) -> JoinHandle<()> {
        let mut writer = self.stream.try_clone().unwrap();
        std::thread::spawn(move || writer.write_all(&bytes).unwrap())
    }

    pub fn call(&mut self, args: &[&str]) -> Reply {
        self.send(args);
        self.read()
    }

    /// Sends a command and returns the bytes of its reply.
    pub fn call_raw(&mut self, args: &[&str]) -> Vec<u8> {
        self.send(args);
        self.read_raw()
    }

    /// One reply, decoded.
    pub fn read(&mut self) -> Reply {
        let raw = self.read_raw();
        let (reply, used) = decode(&raw);
        assert_eq!(used, raw.len(), "one reply");
        reply
    }

    /// An integer reply's value.
    pub fn read_int(&mut self) -> i64 {
        match self.read() {
            Reply::Int(n) => n,
            other => panic!("not an integer: {other:?}"),
        }
    }

    /// Reads the `*N` line of an array reply and returns N, so that a test
    /// can check a huge array element by element without holding it all.
    pub fn read_array_len(&mut self) -> usize {
        let mut line = String::new();
        self.reader.read_line(&mut line).expect("array header");
        line.strip_prefix('*')
            .and_then(|n| n.trim_end().parse().ok())
            .unwrap_or_else(|| panic!("expected an array, got {line:?}"))
    }

    /// The bytes of one reply.
    pub fn read_raw(&mut self) -> Vec<u8> {
        self.try_read_raw().expect("a reply, not EOF")
    }

    /// The bytes of one reply, or `None` at EOF (or a reset) before its
    /// end: a connection the server dropped may stop mid-reply.
    pub fn try_read_raw(&mut self) -> Option<Vec<u8>> {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(_) if !line.ends_with(b"\r\n") => return None,
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return None,
            Err(e) => panic!("read: {e}"),
        }
        match line[0] {
            b'+' | b'-' | b':' | b'_' | b',' | b'#' => {}
            // A bulk string, or RESP3's verbatim string (the same framing).
            b'$' | b'=' => {
                let len = count(&line);
                if len >= 0 {
                    let start = line.len();
                    line.resize(start + len as usize + 2, 0);
                    match self.reader.read_exact(&mut line[start..]) {
                        Ok(()) => {}
                        Err(e)
                            if matches!(
                                e.kind(),
                                std::io::ErrorKind::UnexpectedEof
                                    | std::io::ErrorKind::ConnectionReset
                            ) =>
                        {
                            return None
                        }
                        Err(e) => panic!("read: {e}"),
                    }
                }
            }
            // RESP3's aggregates: a map holds twice as many replies.
            kind @ (b'*' | b'>' | b'~' | b'%') => {
                let n = count(&line) * if kind == b'%' { 2 } else { 1 };
                for _ in 0..n {
                    line.extend_from_slice(&self.try_read_raw()?);
                }
            }
            other => panic!("bad reply type {other}"),
        }
        Some(line)
    }

    /// The server closed the connection: EOF (or a reset), not a timeout.
    pub fn assert_closed(&mut self) {
        let mut rest = Vec::new();
        match self.reader.read_to_end(&mut rest) {
            Ok(_) => assert!(rest.is_empty(), "unexpected {rest:?}"),
            Err(e) => assert_eq!(e.kind(), std::io::ErrorKind::ConnectionReset, "{e}"),
        }
    }
}

/// The number on a `$N` or `*N` line (its line end included).
fn count(line: &[u8]) -> i64 {
    std::str::from_utf8(&line[1..line.len() - 2])
        .ok()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("bad length line {:?}", String::from_utf8_lossy(line)))
}

/// The reply at the start of `raw`, which holds at least one whole reply,
/// and how many bytes it took.
fn decode(raw: &[u8]) -> (Reply, usize) {
    let end = raw
        .windows(2)
        .position(|w| w == b"\r\n")
        .expect("a line end")
        + 2;
    let line = &raw[..end];
    let text = || String::from_utf8_lossy(&line[1..end - 2]).into_owned();
    match line[0] {
        b'+' => (Reply::Simple(text()), end),
        b'-' => (Reply::Error(text()), end),
        b':' => (Reply::Int(count(line)), end),
        // RESP3's null reads as RESP2's; its aggregates as arrays (a map
        // as its keys and values in turn).
        b'_' => (Reply::Bulk(None), end),
        b'$' | b'=' => match usize::try_from(count(line)) {
            Ok(len) => (
                Reply::Bulk(Some(raw[end..end + len].to_vec())),
                end + len + 2,
            ),
            Err(_) => (Reply::Bulk(None), end),
        },
        kind @ (b'*' | b'>' | b'~' | b'%') => {
            let mut used = end;
            let n = count(line) * if kind == b'%' { 2 } else { 1 };
            let elements = (0..n)
                .map(|_| {
                    let (element, len) = decode(&raw[used..]);
                    used += len;
                    element
                })
                .collect();
            (Reply::Array(elements), used)
        }
        other => panic!("bad reply type {other}"),
    }
}

/// Restarts `pid`'s peak (`VmHWM`) from its current RSS, so that a test
/// measures the peak of one phase, not of the set-up before it (writing 5
/// to /proc/PID/clear_refs, Linux 4.0+). Where that is refused, the peak
/// stays the one since start, which only makes the check stricter.
pub fn reset_peak(pid: u32) {
    if let Err(e) = std::fs::write(format!("/proc/{pid}/clear_refs"), "5") {
        eprintln!("note: cannot reset VmHWM of {pid} ({e}); measuring the peak since start");
    }
}
