//! A tokio echo server on one current-thread runtime: the peer the load
//! benchmark (`bench/load/`) compares the reactor's `echo_server` with.
//!
//! Written the way a tokio user would: one task per connection, a 64 KiB
//! buffer per task, read then write everything, TCP_NODELAY on every socket. A
//! current-thread runtime keeps the comparison one thread against one thread.
//!
//! ```text
//! cargo run --release --example tokio_echo -- --addr 127.0.0.1:0
//! ```

use std::net::SocketAddr;

use clap::Parser;
use tokio::net::{TcpSocket, TcpStream};

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "tokio current-thread echo server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:65432")]
    addr: SocketAddr,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let socket = if args.addr.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    socket.bind(args.addr)?;
    // Same backlog as the reactor's default, so bursts of connects compare.
    let listener = socket.listen(1024)?;
    eprintln!("tokio_echo listening on {}", listener.local_addr()?);
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                tokio::spawn(echo(stream));
            }
            // EMFILE and friends: back off instead of spinning.
            Err(e) => {
                eprintln!("tokio_echo: accept: {e}");
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn echo(stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    // The buffer is allocated on the first readable event, not at accept:
    // an idle connection then costs a task, not 64 KiB (what a tokio user
    // tuning for many idle clients would do).
    let mut buf: Vec<u8> = Vec::new();
    loop {
        if stream.readable().await.is_err() {
            return;
        }
        // The first readiness of a fresh socket can be spurious; keep the
        // buffer only once a read has returned data.
        let fresh = buf.is_empty();
        if fresh {
            buf = vec![0u8; 64 * 1024];
        }
        match stream.try_read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                if write_all(&stream, &buf[..n]).await.is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if fresh {
                    buf = Vec::new();
                }
            }
            Err(_) => return,
        }
    }
}

/// `write_all` on a shared reference, so reading and writing need no split.
async fn write_all(stream: &TcpStream, mut data: &[u8]) -> std::io::Result<()> {
    while !data.is_empty() {
        stream.writable().await?;
        match stream.try_write(data) {
            Ok(n) => data = &data[n..],
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}
