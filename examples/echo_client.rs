//! The echo client of the texts this project grew from: connect, send a message, print the echo.
//!
//! ```text
//! cargo run --example echo_client -- "Hello, world"
//! ```
//!
//! A blocking client on purpose: it is the other end of those texts' dialogue,
//! and shows that TCP is a stream: the echo may come back in several pieces,
//! so the client reads until it has as many bytes as it sent.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;

/// Command-line flags.
#[derive(Parser, Debug)]
#[command(about = "Echo client")]
struct Args {
    /// Server address.
    #[arg(long, default_value = "127.0.0.1:65432")]
    addr: SocketAddr,
    /// Seconds to wait for connecting and for the echo.
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Message to send.
    #[arg(default_value = "Hello, world")]
    message: String,
}

fn main() -> ExitCode {
    let args = Args::parse();
    match exchange(&args) {
        Ok(echo) => {
            println!("Received: {}", String::from_utf8_lossy(&echo));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("echo_client: {}: {e}", args.addr);
            ExitCode::FAILURE
        }
    }
}

fn exchange(args: &Args) -> std::io::Result<Vec<u8>> {
    let timeout = Duration::from_secs_f64(args.timeout);
    let mut stream = TcpStream::connect_timeout(&args.addr, timeout)?;
    stream.set_read_timeout(Some(timeout))?;
    stream.write_all(args.message.as_bytes())?;
    let mut echo = vec![0; args.message.len()];
    // One recv may return part of the echo: read until all of it is back.
    stream.read_exact(&mut echo)?;
    Ok(echo)
}
