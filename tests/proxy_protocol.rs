//! The PROXY protocol on a listener that asks for it, through real sockets
//! on 127.0.0.1: v1 and v2 headers give the handler the client's address
//! (and the address it reached), v2 LOCAL keeps the real ones, the bytes
//! after the header are the connection's first input even when the header
//! arrives a byte at a time, and a connection without a header, with a
//! malformed one or too slow is closed without the handler ever hearing of
//! it, while a well-behaved client beside it is served.
mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::mpsc;
use std::time::Duration;

use reactor::proxy_header::V2_SIGNATURE;
use reactor::{CloseReason, Config, ConnId, Context, Handler, ListenerOptions, Reactor, Stats};

const LIMIT: Duration = Duration::from_secs(10);

/// Answers each line with `peer local line`, as the loop sees them.
struct WhoAmI;

impl Handler for WhoAmI {
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
        let Some(end) = input.iter().position(|&b| b == b'\n') else {
            return 0;
        };
        let reply = format!(
            "{} {} {}\n",
            ctx.peer_addr(conn).unwrap(),
            ctx.local_addr(conn).unwrap(),
            String::from_utf8_lossy(&input[..end])
        );
        let _ = ctx.write(conn, reply.as_bytes());
        // curl's request: one answer, then the end of it.
        if input.starts_with(b"GET ") {
            ctx.close_after_flush(conn);
        }
        end + 1
    }
}

struct Server {
    addr: SocketAddr,
    handle: reactor::Handle<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn start(config: Config) -> Server {
    let (tx, rx) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let mut reactor = Reactor::new(WhoAmI, config).unwrap();
        // The update fills `tls` in a build with the `tls` feature.
        #[allow(clippy::needless_update)]
        let options = ListenerOptions {
            proxy_protocol: true,
            ..Default::default()
        };
        let listener = reactor
            .listen_with("127.0.0.1:0".parse().unwrap(), options)
            .unwrap();
        tx.send((reactor.local_addr(listener).unwrap(), reactor.handle()))
            .unwrap();
        reactor.run().unwrap();
    });
    let (addr, handle) = rx.recv_timeout(LIMIT).unwrap();
    Server {
        addr,
        handle,
        thread: Some(thread),
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream.set_read_timeout(Some(LIMIT)).unwrap();
    stream
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut out = Vec::new();
    let mut byte = [0u8];
    while let Ok(1) = stream.read(&mut byte) {
        if byte[0] == b'\n' {
            break;
        }
        out.push(byte[0]);
    }
    String::from_utf8(out).unwrap()
}

/// Whether the server closed `stream` (EOF or reset) without a byte.
fn closed_silently(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 16];
    matches!(stream.read(&mut buf), Ok(0) | Err(_))
}

fn v2(command: u8, family: u8, body: &[u8]) -> Vec<u8> {
    let mut header = V2_SIGNATURE.to_vec();
    header.push(0x20 | command);
    header.push(family);
    header.extend((body.len() as u16).to_be_bytes());
    header.extend(body);
    header
}

fn wait_closed(server: &Server, reason: CloseReason, count: u64) -> Stats {
    common::wait_for_stats(&server.handle, "the close", LIMIT, |s| {
        s.closed(reason) >= count
    })
}

#[test]
fn v1_header_gives_the_client_and_what_it_reached() {
    let server = start(Config::default());
    let mut client = connect(server.addr);
    client
        .write_all(b"PROXY TCP4 192.0.2.7 198.51.100.9 40000 443\r\nhello\n")
        .unwrap();
    assert_eq!(
        read_line(&mut client),
        "192.0.2.7:40000 198.51.100.9:443 hello"
    );
    // TCP6, and the header arriving one byte at a time.
    let mut six = connect(server.addr);
    for byte in b"PROXY TCP6 2001:db8::5 2001:db8::1 1234 80\r\nbye\n" {
        six.write_all(&[*byte]).unwrap();
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(
        read_line(&mut six),
        "[2001:db8::5]:1234 [2001:db8::1]:80 bye"
    );
}

#[test]
fn v2_proxy_and_local_with_tlvs() {
    let server = start(Config::default());
    let mut body = vec![203, 0, 113, 5, 127, 0, 0, 1];
    body.extend(5555u16.to_be_bytes());
    body.extend(8443u16.to_be_bytes());
    body.extend([0x04, 0x00, 0x02, 0xaa, 0xbb]); // a NOOP TLV, skipped
    let mut client = connect(server.addr);
    let mut bytes = v2(0x1, 0x11, &body);
    bytes.extend(b"v2\n");
    client.write_all(&bytes).unwrap();
    assert_eq!(read_line(&mut client), "203.0.113.5:5555 127.0.0.1:8443 v2");
    // LOCAL: a balancer's own health check keeps the real endpoints.
    let mut local = connect(server.addr);
    let mut bytes = v2(0x0, 0x11, &body);
    bytes.extend(b"check\n");
    local.write_all(&bytes).unwrap();
    let real = format!("{} {}", local.local_addr().unwrap(), server.addr);
    assert_eq!(read_line(&mut local), format!("{real} check"));
}

#[test]
fn no_header_or_a_malformed_one_is_closed_and_costs_nobody_anything() {
    let server = start(Config::default());
    let mut good = connect(server.addr);
    good.write_all(b"PROXY TCP4 192.0.2.1 192.0.2.2 1 2\r\n")
        .unwrap();
    for bad in [
        &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        b"PROXY TCP4 192.0.2.1 192.0.2.2 1\r\n",
        b"PROXY TCP4 999.0.2.1 192.0.2.2 1 2\r\n",
        b"\r\n\r\n\x00\r\nQUIT\n\x31\x11\x00\x0c",
    ] {
        let mut client = connect(server.addr);
        client.write_all(bad).unwrap();
        assert!(
            closed_silently(&mut client),
            "{:?}",
            String::from_utf8_lossy(bad)
        );
    }
    // A peer that connects and leaves (a TCP health check).
    drop(connect(server.addr));
    let stats = wait_closed(&server, CloseReason::BadProxyHeader, 5);
    assert_eq!(stats.closed(CloseReason::BadProxyHeader), 5);
    good.write_all(b"still here\n").unwrap();
    assert_eq!(read_line(&mut good), "192.0.2.1:1 192.0.2.2:2 still here");
}

#[test]
fn a_header_that_does_not_arrive_in_time_is_a_timeout() {
    let config = Config {
        proxy_header_timeout: Duration::from_millis(200),
        ..Default::default()
    };
    let server = start(config);
    let mut slow = connect(server.addr);
    slow.write_all(b"PROXY TCP4 192.0.2.1").unwrap();
    let started = std::time::Instant::now();
    assert!(closed_silently(&mut slow));
    assert!(
        started.elapsed() >= Duration::from_millis(150),
        "{:?}",
        started.elapsed()
    );
    wait_closed(&server, CloseReason::ProxyHeaderTimeout, 1);
}

#[test]
fn curl_sends_a_v1_header_the_server_reads() {
    if !common::tools::have("curl") {
        return;
    }
    let server = start(Config::default());
    // curl speaks HTTP: the handler answers its request line, which shows
    // the peer the header gave (curl's own address, as curl sees it).
    let out = std::process::Command::new("curl")
        .args(["-s", "--max-time", "5", "--haproxy-protocol", "--http0.9"])
        .arg(format!("http://{}/", server.addr))
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(" GET / HTTP/1.1"), "{text}");
    assert!(text.starts_with("127.0.0.1:"), "{text}");
    // The address reached, from the header, is the server's.
    assert!(text.contains(&format!(" {} GET", server.addr)), "{text}");
}
