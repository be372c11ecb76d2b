//! # reactor
//!
//! A single-threaded event-loop reactor on mio: one thread, one `poll`, every
//! connection in a `slab` with its own buffers and an explicit state machine.
//! It is written to be read; start with [`Reactor::run_once`], the whole loop
//! in eight phases, then follow one connection through `io.rs`.
//!
//! A protocol plugs in as a [`Handler`]; callbacks act on the loop through a
//! [`Context`]; other threads reach the loop through a [`Handle`].
//!
//! ```no_run
//! use reactor::{Config, ConnId, Context, Handler, Reactor};
//! use std::net::SocketAddr;
//!
//! struct Echo;
//!
//! impl Handler for Echo {
//!     type State = ();
//!     type Message = ();
//!     fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
//!     fn data(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut (), input: &[u8]) -> usize {
//!         let _ = ctx.write(conn, input);
//!         input.len()
//!     }
//! }
//!
//! let mut reactor = Reactor::new(Echo, Config::default())?;
//! reactor.listen("127.0.0.1:65432".parse().unwrap())?;
//! reactor.run()?;
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Set `RUST_LOG=reactor=trace` (with a logger such as `env_logger`) to watch
//! every turn, every event and every state transition.
//!
//! ## Map
//!
//! | module | owns |
//! |---|---|
//! | `reactor` | the loop: `run_once`, its phases, timers' effects, shutdown |
//! | `io` | one connection's step: connect, read, deliver, flush, linger, accept |
//! | `core` | the loop's shared state and close/timer bookkeeping |
//! | `output` | the write path: queue, stage, write-through, send; backpressure and the soft limit |
//! | `fanout` | the fan-out hold: a broadcast waits for the readers that keep up |
//! | `context` | what a handler callback may do |
//! | `handler` | the `Handler` trait |
//! | `state` | the state machine and close reasons |
//! | `connection` | one connection's record in the slab |
//! | `buffer` | input leftovers and the vectored output queue |
//! | `limits` | per-connection limits: input cap, output water marks, hard and soft output caps |
//! | [`codec`] | framing for handlers: lines and length-prefixed frames, no allocation from declared lengths |
//! | `timer` | the hashed timing wheel |
//! | `listener` | socket2 listeners and outbound connects |
//! | `handle` | the cross-thread handle |
//! | `config`, `stats`, `token` | settings, counters, token layout |
//!
//! ## Caveats
//!
//! * Linux is the target: error numbers for `EMFILE` and `EINPROGRESS` are
//!   Linux's, and the short-read rule relies on Linux's edge semantics.
//! * Callbacks must not block; the loop has one thread.
//! * Panics are caught only with `panic = "unwind"` (the default).

#![forbid(unsafe_code)]
#![deny(missing_docs)]

mod accept;
mod buffer;
mod callbacks;
mod close;
pub mod codec;
mod config;
mod connect;
mod connection;
mod context;
mod fanout;
mod flow;
mod handle;
mod handler;
mod input;
mod limits;
mod loop_state;
mod output;
mod reactor;
mod shutdown;
mod state;
mod stats;
mod step;
mod timer_wheel;
mod timers;
mod token;
mod turn;

pub use crate::config::{descriptor_limit, Config, ConfigError, RESERVED_DESCRIPTORS};
pub use crate::context::Context;
pub use crate::handle::Handle;
pub use crate::handler::{Fired, Handler, WriteError};
pub use crate::limits::{Limits, LimitsError, SoftLimit};
pub use crate::reactor::Reactor;
pub use crate::state::{CloseReason, ConnState, Limit};
pub use crate::stats::Stats;
pub use crate::timer_wheel::TimerId;
pub use crate::token::{ConnId, ListenerId, SourceId, MAX_CONNECTIONS};
pub use mio::{event::Event, Interest};
pub use socket2::SockRef;
