//! Client sockets and what tests do with them: connecting with timeouts,
//! a quick echo check, writing then half-closing from another thread,
//! resetting instead of closing, and reading to EOF.
//!
//! Every socket here has read and write timeouts, so a test that waits for
//! bytes that never come fails instead of hanging.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use socket2::SockRef;

/// A client socket connected to `addr` with 10 s read/write timeouts, so a
/// test that waits for bytes that never come fails instead of hanging.
pub fn client(addr: SocketAddr) -> TcpStream {
    with_timeouts(TcpStream::connect(addr).expect("connect"))
}

/// `stream` with the 10 s read and write timeouts [`client`] gives, for a
/// socket a test got another way (accepted from a listener of its own).
pub fn with_timeouts(stream: TcpStream) -> TcpStream {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .set_write_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Sends `message` and checks that exactly it comes back: a quick proof
/// that an echoing connection (and the loop serving it) still works.
pub fn echo_once(stream: &mut TcpStream, message: &[u8]) {
    stream.write_all(message).unwrap();
    let mut echo = vec![0; message.len()];
    stream.read_exact(&mut echo).unwrap();
    assert_eq!(echo, message);
}

/// Writes `data` and then a FIN to `stream` from a new thread, so that the
/// caller can read the echo meanwhile (a large write would otherwise stall
/// once the buffers on the path are full of echo nobody reads).
pub fn write_then_fin(stream: &TcpStream, data: Vec<u8>) -> JoinHandle<()> {
    let mut writer = stream.try_clone().unwrap();
    std::thread::spawn(move || {
        writer.write_all(&data).unwrap();
        writer.shutdown(std::net::Shutdown::Write).unwrap();
    })
}

/// Closes `stream` with a reset instead of a FIN: with SO_LINGER 0 the
/// kernel sends RST, the way a crashed or impatient peer goes away.
pub fn reset(stream: TcpStream) {
    SockRef::from(&stream)
        .set_linger(Some(Duration::ZERO))
        .unwrap();
    drop(stream);
}

/// Reads until EOF (bounded by the socket's read timeout and `limit` bytes).
pub fn read_to_eof(stream: &mut TcpStream, limit: usize) -> std::io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let mut buf = vec![0; 64 * 1024];
    loop {
        let n = match stream.read(&mut buf) {
            Ok(n) => n,
            // A signal delivered to the test process is not the peer's doing.
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if n == 0 {
            return Ok(out);
        }
        out.extend_from_slice(&buf[..n]);
        assert!(out.len() <= limit, "read more than {limit} bytes");
    }
}
