//! A thread-per-connection echo server with blocking std sockets: the
//! model of the texts this project grew from, kept as the baseline the load
//! benchmark (`bench/load/`)
//! measures the reactor against.
//!
//! Each connection gets a thread with a small stack and a 64 KiB heap
//! buffer; `read` then `write_all` until EOF. TCP_NODELAY on every socket.
//! Simple and fast at a few connections; at thousands the cost is one
//! stack, one kernel task and a context switch per message.
//!
//! ```text
//! cargo run --release --example threaded_echo -- --addr 127.0.0.1:0
//! ```

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};

use clap::Parser;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Thread-per-connection echo server")]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:65432")]
    addr: SocketAddr,
    /// Stack size of each connection thread, in KiB. The buffer lives on
    /// the heap, so a small stack suffices; 10 000 threads of 2 MiB would
    /// reserve 20 GiB of address space.
    #[arg(long, default_value_t = 64)]
    stack_kib: usize,
}

fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let listener = listen(args.addr)?;
    eprintln!("threaded_echo listening on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let stream = match stream {
            Ok(s) => s,
            Err(e) => {
                eprintln!("threaded_echo: accept: {e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
                continue;
            }
        };
        let spawned = std::thread::Builder::new()
            .stack_size(args.stack_kib * 1024)
            .spawn(move || echo(stream));
        if let Err(e) = spawned {
            // Out of threads: the stream was moved into the failed closure
            // and is closed with it.
            eprintln!("threaded_echo: cannot spawn a thread: {e}");
        }
    }
    Ok(())
}

/// A listener with the reactor's backlog of 1024: std's `bind` uses 128,
/// and a burst of thousands of connects would then wait for SYN retransmits,
/// which would measure the backlog rather than the threads.
fn listen(addr: SocketAddr) -> std::io::Result<TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, None)?;
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

fn echo(mut stream: TcpStream) {
    let _ = stream.set_nodelay(true);
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match stream.read(&mut buf) {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if stream.write_all(&buf[..n]).is_err() {
                    return;
                }
            }
        }
    }
}
