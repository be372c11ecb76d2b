//! Helpers shared by the integration tests: an in-process echo reactor on an
//! ephemeral port, client sockets and what tests do with them, and a way to
//! run the examples (and, in [`tools`], installed programs) as child
//! processes.
//!
//! Each concept has a file of its own; the general helpers are re-exported
//! here, so tests name them `common::client`, `common::start` and so on
//! whatever file they live in. The helpers of one test topic (a client for
//! one example, a handler several test files share) are public modules
//! named after the topic: `common::resp`, `common::chat`, ...
//!
//! Every helper bounds its waits; a test that hangs is a failing test.
#![allow(dead_code)]

mod child;
mod echo_handler;
mod procfs;
mod rng;
mod running;
mod sockets;
mod waits;

pub mod chat;
pub mod deploy;
pub mod flow;
pub mod http;
pub mod nginx;
pub mod proxy;
pub mod resp;
#[cfg(feature = "tls")]
pub mod tls;
#[cfg(feature = "tls")]
pub mod tls_tools;
pub mod tools;

// Each test crate uses some of these; the rest would warn as unused
// imports, the re-export's form of the dead code allowed above.
#[allow(unused_imports)]
pub use child::{example_bin, spawn_example, spawn_on_loopback, writes_in_report, ChildServer};
#[allow(unused_imports)]
pub use echo_handler::{close_reason_at, close_reason_of, echo, Echo, OnInput, PeerCloses};
#[allow(unused_imports)]
pub use procfs::{open_fds, peak_rss_kib, rss_kib};
#[allow(unused_imports)]
pub use rng::{Prng, XorShift};
#[allow(unused_imports)]
pub use running::{start, start_echo, start_listening, wait_for_stats, Running};
#[allow(unused_imports)]
pub use sockets::{client, echo_once, read_to_eof, reset, with_timeouts, write_then_fin};
#[allow(unused_imports)]
pub use waits::{join_within, on_threads_together, wait_until};
