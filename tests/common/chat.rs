//! A member of the `chat_server` example's room, for the chat tests
//! (tests/chat.rs, tests/chat_garbage.rs, tests/chat_burst.rs): starting the
//! server, joining (the welcome line tells the member its name), sending
//! lines and reading them back, and reading to the server's close.
//!
//! Every read has a timeout ([`LINE_WAIT`]): a hang is a failure.

use std::io::{BufRead, BufReader, ErrorKind, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::ChildServer;

/// How long any single expected line may take.
pub const LINE_WAIT: Duration = Duration::from_secs(5);

/// One chat client: a line reader and a writer on the same socket.
pub struct Client {
    /// Reads the server's lines.
    pub reader: BufReader<TcpStream>,
    /// Sends our lines (a clone of the reader's socket).
    pub writer: TcpStream,
    /// The name the server gave us in its welcome line.
    pub name: String,
}

impl Client {
    /// Connects and reads the welcome line.
    pub fn join(addr: SocketAddr) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(LINE_WAIT)).unwrap();
        let writer = stream.try_clone().unwrap();
        let mut client = Client {
            reader: BufReader::new(stream),
            writer,
            name: String::new(),
        };
        let welcome = client.line();
        let name = welcome
            .strip_prefix("* welcome ")
            .and_then(|rest| rest.split(';').next())
            .unwrap_or_else(|| panic!("not a welcome line: {welcome:?}"));
        client.name = name.to_owned();
        client
    }

    pub fn send(&mut self, line: &str) {
        self.writer.write_all(line.as_bytes()).unwrap();
        self.writer.write_all(b"\n").unwrap();
    }

    /// The next line, without its newline; panics on timeout or EOF.
    /// Lossy: the server relays what members send as bytes.
    pub fn line(&mut self) -> String {
        let mut line = Vec::new();
        match self.reader.read_until(b'\n', &mut line) {
            Ok(0) => panic!("{}: connection closed, expected a line", self.name),
            Ok(_) => {
                assert!(line.ends_with(b"\n"), "partial line {line:?}");
                line.pop();
                String::from_utf8_lossy(&line).into_owned()
            }
            Err(e) => panic!("{}: no line within {LINE_WAIT:?}: {e}", self.name),
        }
    }

    pub fn expect(&mut self, want: &str) {
        assert_eq!(self.line(), want, "{} got the wrong line", self.name);
    }

    /// Reads lines until `want`, letting only server notices (`* ...`) come
    /// before it; returns the line.
    pub fn skip_notices_to(&mut self, want: impl Fn(&str) -> bool) -> String {
        for _ in 0..100 {
            let line = self.line();
            if want(&line) {
                return line;
            }
            assert!(line.starts_with("* "), "{}: unexpected {line:?}", self.name);
        }
        panic!("{}: 100 notices and not the line wanted", self.name);
    }

    /// Reads until the server closes the connection; returns the lines seen.
    pub fn until_eof(&mut self) -> Vec<String> {
        let deadline = Instant::now() + LINE_WAIT;
        let mut lines = Vec::new();
        loop {
            assert!(Instant::now() < deadline, "{}: no EOF", self.name);
            let mut line = Vec::new();
            match self.reader.read_until(b'\n', &mut line) {
                Ok(0) => return lines,
                Ok(_) => lines.push(String::from_utf8_lossy(line.trim_ascii_end()).into_owned()),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => return lines,
                Err(e) => panic!("{}: waiting for EOF: {e}", self.name),
            }
        }
    }
}

/// Starts the `chat_server` example on a free loopback port, default flags.
pub fn start() -> ChildServer {
    super::spawn_on_loopback("chat_server", &[])
}
