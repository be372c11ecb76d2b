//! A verifying load generator for echo servers, itself a reactor client.
//!
//! It owns the client side of the load benchmark (`bench/load/` drives
//! it): open many outbound connections with `Context::connect`, keep
//! `--depth` messages in flight on each, check every echoed byte, and report
//! throughput, latency percentiles, errors and its own CPU use.
//!
//! ```text
//! cargo run --release --example loadgen -- --addr 127.0.0.1:65432 \
//!     --connections 100 --size 64 --depth 1 --warmup 1 --duration 5
//! cargo run --release --example loadgen -- --rate 20000 --depth 16 --json
//! ```
//!
//! This file is the process: it starts one worker thread per `--threads`,
//! each with its own reactor and share of the connections, merges what
//! they measured and prints the summary. The rest, one job per module:
//!
//! * `cli.rs`: the flags and their checks;
//! * `worker.rs`: one thread's life: connect, wait for the others, load;
//! * `generator.rs`: the reactor's handler, routing callbacks to the jobs;
//! * `connect.rs`: opening connections, spread over local addresses;
//! * `tcp.rs`, `udp.rs`: sending, and verifying every echoed byte;
//! * `tls.rs`: `--tls`, the client configuration and TLS connects;
//! * `pattern.rs`: the byte stream that makes checking need no copy;
//! * `schedule.rs`: warm-up, window, sweep, drain, stop, on reactor timers;
//! * `pacing.rs`: the in-flight window and the open-loop (`--rate`) schedule;
//! * `latency.rs`: what a latency is and the histograms;
//! * `progress.rs`: the stderr lines and markers, and loadgen's CPU time;
//! * `report.rs`: the error counters and the stdout summary (text or JSON).
//!
//! Errors are counted, never hidden: a mismatch, a refused or lost
//! connection, a timeout, a lost or truncated datagram each count, and any
//! of them makes the exit status 1.
//!
//! Output: one progress line per second on stderr, `loadgen: measuring` and
//! `loadgen: measured` marker lines at the edges of the measured window (the
//! bench samples the server's CPU there), and a summary on stdout (JSON with
//! `--json`).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod cli;
mod connect;
mod generator;
mod latency;
mod pacing;
mod pattern;
mod progress;
mod report;
mod schedule;
mod tcp;
mod tls;
mod udp;
mod worker;

use std::io;
use std::process::ExitCode;
use std::sync::{Arc, Barrier};

use clap::Parser;

use cli::Args;
use progress::Progress;
use report::{Counters, Summary};

fn main() -> ExitCode {
    let args = Args::parse();
    if let Err(e) = args.validate() {
        eprintln!("loadgen: {e}");
        return ExitCode::from(2);
    }
    let tls = match tls::ClientTls::from_args(&args) {
        Ok(tls) => tls,
        Err(e) => {
            eprintln!("loadgen: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run(args, tls) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("loadgen: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the whole load (over TLS with `tls`); `Ok(true)` if nothing went
/// wrong.
fn run(args: Args, tls: Option<tls::ClientTls>) -> io::Result<bool> {
    let args = Arc::new(args);
    let threads = args.thread_count();
    let progress = Arc::new(Progress::new(threads));
    let barrier = Arc::new(Barrier::new(threads));
    let mut workers = Vec::new();
    for t in 0..threads {
        // Connections are dealt round-robin, so every thread's share spans
        // the source addresses alike.
        let numbers: Vec<u64> = (t..args.connections)
            .step_by(threads)
            .map(|n| n as u64)
            .collect();
        let (args, progress, barrier, tls) = (
            Arc::clone(&args),
            Arc::clone(&progress),
            Arc::clone(&barrier),
            tls.clone(),
        );
        workers.push(
            std::thread::Builder::new()
                .name(format!("loadgen-{t}"))
                .spawn(move || worker::worker(t, args, tls, numbers, progress, barrier))?,
        );
    }

    let mut hist = latency::histogram();
    let mut counters = Counters::default();
    let mut cpu = 0.0;
    for w in workers {
        match w.join() {
            Ok(Ok(outcome)) => {
                let _ = hist.add(&outcome.hist);
                counters.add(&outcome.counters);
                cpu += outcome.window_cpu.unwrap_or(0.0);
            }
            Ok(Err(e)) => return Err(e),
            Err(_) => return Err(io::Error::other("a worker thread panicked")),
        }
    }
    let summary = Summary::new(&args, hist, counters, cpu);
    if args.json {
        println!("{}", summary.json(&args));
    } else {
        summary.print(&args);
    }
    let complete = counters.established as usize == args.connections;
    Ok(counters.errors() == 0 && complete)
}
