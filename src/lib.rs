//! # reactor
//!
//! A single-threaded event-loop reactor on mio: one thread, one `poll`, every
//! connection in a `slab` with its own buffers and an explicit state machine.
//! It is written to be read; start with [`Reactor::run_once`] (`turn.rs`),
//! the whole loop in seven named phases, then follow one connection from
//! `accept.rs` through `step.rs`, `input.rs`, `output.rs` and `close.rs`.
//! `docs/architecture.md` draws both; `docs/study.md` maps each idea of
//! socket programming to the code that implements it.
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
//!         // A failed write has closed the connection; `closed` says why.
//!         ctx.write(conn, input).map_or(0, |()| input.len())
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
//! | `reactor`, `turn` | the `Reactor`; one turn of the loop, one function per phase |
//! | `loop_state` | everything the loop owns but the handler and the poll; the ready queue and dirty list |
//! | `callbacks` | running a callback behind the panic guard |
//! | `accept`, `connect` | listeners and accepting; outbound connects |
//! | `connection` | one connection's record, the lookups, the one constructor |
//! | `step` | one connection's step when its events give it a turn |
//! | `input`, `output` | reading (the rule, then the short-read optimisation); writing (the rule, then the staging optimisation) |
//! | `flow`, `fanout`, `limits` | flow control: what holds input back and what is owed; the fan-out hold; per-connection limits |
//! | `close`, `shutdown` | every way to close; graceful shutdown |
//! | `timers`, `timer_wheel` | what each timer does; the hashed timing wheel |
//! | `state`, `close_reason` | the state machine; why a connection ended |
//! | `buffer` | input leftovers and the vectored output queue |
//! | `context`, `handler`, `handle` | the public API: what a callback may do, the callbacks, other threads |
//! | [`codec`] | framing for handlers: lines and length-prefixed frames, no allocation from declared lengths |
//! | `config`, `stats`, `token` | settings, counters (loop health: busy time, turn and timer-lag histograms), token layout |
//! | `inspect` | listing connections on demand ([`ConnInfo`]) |
//! | [`proxy_header`], `proxy_steps` | the PROXY protocol: the parser, and reading the header before anything else ([`ListenerOptions`]) |
//! | `loops`, `hand_off` | one loop per core: [`Loops`] starts N reactors on N threads, each listening with `SO_REUSEPORT` or fed by a hand-off acceptor; [`Peers`] for loops to message each other |
//! | `tls_steps`, `tls` | (the `tls` feature) a rustls session between the socket and the buffers: the handshake state, feeding reads, records through the queue, `close_notify`; the public TLS helpers |
//!
//! ## Depending on it
//!
//! The crate re-exports what its API takes, so a dependent crate needs no
//! `mio` or `socket2` of its own: [`Source`] (any mio source for
//! [`Context::register_source`]), [`Interest`], [`Event`], [`SockRef`], and
//! [`mio`] itself (for `mio::net::UdpSocket` and the like).
//!
//! ## TLS
//!
//! With the `tls` feature, `Reactor::listen_tls` and
//! `Context::connect_tls` give connections a rustls session (ring as the
//! crypto provider); handlers see plaintext through the same `data` and
//! `write`, so a handler written for plain TCP works over TLS unchanged.
//! The `tls` module builds the configurations: SNI, session resumption and
//! certificate reload without a restart.
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
mod close_reason;
pub mod codec;
mod config;
mod connect;
mod connection;
mod context;
mod fanout;
mod flow;
mod hand_off;
mod handle;
mod handler;
mod input;
mod inspect;
mod limits;
mod loop_state;
mod loops;
#[cfg(not(feature = "tls"))]
mod no_tls;
mod output;
pub mod proxy_header;
mod proxy_steps;
mod reactor;
mod shutdown;
mod state;
mod stats;
mod step;
mod timer_wheel;
mod timers;
#[cfg(feature = "tls")]
pub mod tls;
mod tls_steps;
mod token;
mod turn;

// The session type the loop names: rustls's, or one with no values.
#[cfg(not(feature = "tls"))]
use crate::no_tls as tls_session;
#[cfg(feature = "tls")]
use crate::tls::session as tls_session;

pub use crate::accept::ListenerOptions;
pub use crate::close_reason::{CloseReason, Limit};
pub use crate::config::{descriptor_limit, Config, ConfigError, RESERVED_DESCRIPTORS};
pub use crate::context::Context;
pub use crate::handle::Handle;
pub use crate::handler::{Fired, Handler, WriteError};
pub use crate::inspect::ConnInfo;
pub use crate::limits::{Limits, LimitsError, SoftLimit};
pub use crate::loops::{Distribution, Loops, LoopsConfig, LoopsHandle, Peers};
pub use crate::reactor::Reactor;
pub use crate::state::ConnState;
pub use crate::stats::{DurationHistogram, Stats, DURATION_BUCKETS_NS};
pub use crate::timer_wheel::TimerId;
pub use crate::token::{ConnId, ListenerId, SourceId, MAX_CONNECTIONS};
pub use mio;
pub use mio::event::{Event, Source};
pub use mio::Interest;
pub use socket2::SockRef;
