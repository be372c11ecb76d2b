//! `Handler::is_idle`: a graceful shutdown waits for a connection whose
//! handler is mid-message even though nothing is buffered, and closes it as
//! soon as the message ends. The HTTP example needs this for request bodies
//! it discards as they arrive.
mod common;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use reactor::{CloseReason, Config, ConnId, Context, Handler};

/// Line protocol: `BEGIN\n` opens a message, `END\n` closes it; both are
/// consumed at once and acknowledged with `ok\n`.
#[derive(Default)]
struct Messages {
    /// Close reasons seen, in order.
    closes: Vec<CloseReason>,
}

impl Handler for Messages {
    /// Whether a message is open on the connection.
    type State = bool;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) -> bool {
        false
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        open: &mut bool,
        input: &[u8],
    ) -> usize {
        let mut consumed = 0;
        for line in input.split_inclusive(|&b| b == b'\n') {
            if !line.ends_with(b"\n") {
                break;
            }
            match line {
                b"BEGIN\n" => *open = true,
                b"END\n" => *open = false,
                _ => {}
            }
            let _ = ctx.write(conn, b"ok\n");
            consumed += line.len();
        }
        consumed
    }

    fn closed(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: bool, reason: CloseReason) {
        self.closes.push(reason);
    }

    fn is_idle(&self, open: &bool) -> bool {
        !*open
    }
}

fn send_and_ack(stream: &mut TcpStream, line: &[u8]) {
    stream.write_all(line).unwrap();
    let mut ack = [0; 3];
    stream.read_exact(&mut ack).unwrap();
    assert_eq!(&ack, b"ok\n");
}

#[test]
fn shutdown_waits_for_an_open_message_then_closes() {
    let mut server = common::start(Messages::default(), Config::default());
    let mut busy = common::client(server.addr);
    let mut idle = common::client(server.addr);
    send_and_ack(&mut busy, b"BEGIN\n");
    send_and_ack(&mut idle, b"hello\n");

    server.handle.shutdown(Duration::from_secs(10));
    // The idle connection closes at once.
    let mut rest = Vec::new();
    idle.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    // The busy one, with nothing buffered, stays open.
    busy.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut byte = [0; 1];
    let early = busy.read(&mut byte);
    assert!(
        matches!(&early, Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut)),
        "closed mid-message: {early:?}"
    );
    // Ending the message lets the shutdown close it.
    busy.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    send_and_ack(&mut busy, b"END\n");
    busy.read_to_end(&mut rest).unwrap();
    assert!(rest.is_empty());
    drop((busy, idle));

    server.wait_for("both closes", Duration::from_secs(5), |s| {
        s.closed_total() == 2
    });
    // The shutdown is complete, so the loop has returned by itself.
    let thread = server.thread.take().unwrap();
    let reactor = common::join_within(thread, Duration::from_secs(5));
    assert_eq!(reactor.handler().closes, [CloseReason::Shutdown; 2]);
}
