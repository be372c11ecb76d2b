//! The `Handler` trait: the one object through which a protocol plugs into
//! the loop.
//!
//! A reactor owns one handler. Per-connection protocol state (`State`) lives
//! in the slab beside the connection's buffers and is lent to each callback,
//! so a handler holds no map of its own from connection to state. Every
//! callback gets a [`Context`] to act on the loop: write to any connection,
//! close, arm timers, connect out, stop.
//!
//! Callbacks run on the loop thread and must not block: a blocked callback
//! stalls every connection. A panic in a callback is caught, counted, logged,
//! and closes only the connection it was about.

use std::fmt;
use std::net::SocketAddr;

use mio::event::Event;

use crate::close_reason::CloseReason;
use crate::context::Context;
use crate::timer_wheel::TimerId;
use crate::token::{ConnId, SourceId};

/// The protocol side of a reactor.
///
/// Only [`opened`](Handler::opened) is required: the loop needs a
/// `State` for every connection it accepts, and only the handler can make
/// one (requiring `State: Default` instead would rule out states such as a
/// `SocketAddr`). Every other callback has a default: [`data`](Handler::data)
/// discards input, [`read_closed`](Handler::read_closed) closes after flush,
/// the rest do nothing.
///
/// ```no_run
/// use reactor::{ConnId, Context, Handler, Reactor, Config};
/// use std::net::SocketAddr;
///
/// /// Echoes every byte back.
/// struct Echo;
///
/// impl Handler for Echo {
///     type State = ();
///     type Message = ();
///     fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: SocketAddr) {}
///     fn data(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: &mut (), input: &[u8]) -> usize {
///         // A failed write has closed the connection; `closed` says why.
///         ctx.write(conn, input).map_or(0, |()| input.len())
///     }
/// }
///
/// let mut reactor = Reactor::new(Echo, Config::default())?;
/// reactor.listen("127.0.0.1:65432".parse().unwrap())?;
/// reactor.run()?;
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Handler: Sized {
    /// Protocol state kept per connection (a parser, a nickname, ...).
    type State;
    /// Messages other threads send in through [`Handle::send`](crate::Handle::send).
    type Message: Send + 'static;

    /// A listener accepted `conn` from `peer`; returns its initial state.
    fn opened(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        peer: SocketAddr,
    ) -> Self::State;

    /// Input arrived. `input` holds every byte not yet consumed: what earlier
    /// calls left plus what was just read. Returns how many leading bytes were
    /// consumed; the rest is kept and offered again:
    ///
    /// * with more bytes, when more arrive;
    /// * without new bytes, when the connection's output drains below its
    ///   low-water mark after reaching high water (so a handler that stops
    ///   consuming once [`Context::is_backpressured`] says so resumes where
    ///   it stopped), after [`Context::resume_reading`], and on the turn
    ///   after [`Context::wake`] (then `input` may be empty);
    /// * once more when the peer's FIN arrives, before
    ///   [`read_closed`](Handler::read_closed).
    ///
    /// Output written here leaves in one system call after this returns, or
    /// at once when it reaches the high-water mark.
    ///
    /// The default discards every byte (a handler that only writes, or
    /// serves no TCP input at all).
    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        state: &mut Self::State,
        input: &[u8],
    ) -> usize {
        let _ = (ctx, conn, state);
        input.len()
    }

    /// `conn`'s queued output fell below its low-water mark after having
    /// reached its high-water mark: it is taking output again. Runs in the
    /// connection's next step (the next turn, or at once when the drain
    /// came in its own step), before its unconsumed input is offered again
    /// and before it is read again; also while it is closing after flush
    /// (a reply produced piece by piece still finishes), never once closed. A proxy resumes
    /// reading the other side here; a handler that produces a large reply
    /// piece by piece writes the next piece.
    fn drained(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, state: &mut Self::State) {
        let _ = (ctx, conn, state);
    }

    /// An outbound connection started by [`Context::connect`] is established.
    fn connected(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, state: &mut Self::State) {
        let _ = (ctx, conn, state);
    }

    /// The peer shut down its write side (`read() == 0`); we may still write.
    /// Called after the input left unconsumed was offered once more. The
    /// default closes once everything queued is written; a proxy passes the
    /// half-close on with [`Context::shutdown_write`] instead. On a
    /// connection whose own write side is already shut down, the connection
    /// ends after this returns. Not called if the handler starts closing the
    /// connection (`close_after_flush`, `shutdown_write` on it) while flow
    /// control still holds back input the peer sent before its FIN: the
    /// close is then the handler's answer to the end of input.
    fn read_closed(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, state: &mut Self::State) {
        let _ = state;
        ctx.close_after_flush(conn);
    }

    /// The connection ended; `state` is handed back for the last time. Not
    /// called for a connection whose `opened` panicked (it has no state).
    fn closed(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        state: Self::State,
        reason: CloseReason,
    ) {
        let _ = (ctx, conn, state, reason);
    }

    /// A timer started with [`Context::start_timer`] or
    /// [`Context::start_conn_timer`] fired.
    fn timer(&mut self, ctx: &mut Context<'_, Self>, fired: Fired) {
        let _ = (ctx, fired);
    }

    /// Another thread sent a message through a [`Handle`](crate::Handle).
    fn message(&mut self, ctx: &mut Context<'_, Self>, message: Self::Message) {
        let _ = (ctx, message);
    }

    /// A source registered with [`Context::register_source`] is ready.
    /// Edge-triggered: drain it until `WouldBlock`.
    fn source_ready(&mut self, ctx: &mut Context<'_, Self>, source: SourceId, event: &Event) {
        let _ = (ctx, source, event);
    }

    /// A graceful shutdown began: listeners are closed; idle connections
    /// will be closed; busy ones finish what is queued.
    fn shutdown_started(&mut self, ctx: &mut Context<'_, Self>) {
        let _ = ctx;
    }

    /// Whether the protocol is between messages on a connection, so that a
    /// graceful shutdown may close it once nothing is queued in either
    /// direction. The default, `true`, suits byte streams. A protocol that
    /// consumes a message as it arrives (an HTTP body read and discarded
    /// piece by piece) has nothing buffered mid-message, so the loop cannot
    /// see the message is unfinished: return `false` while one is, and the
    /// shutdown waits for it (up to the grace period).
    ///
    /// Asked only during a shutdown, whenever the connection's buffers have
    /// just emptied (after a flush, after a read found the socket drained).
    /// Keep it a cheap look at `state`. Like every callback it runs behind
    /// the panic guard: a panic closes the connection.
    fn is_idle(&self, state: &Self::State) -> bool {
        let _ = state;
        true
    }

    /// Runs once per turn, before the loop sleeps in `poll` (Redis's
    /// `beforeSleep`): after the turn's events, ready queue and timers were
    /// served and the output they queued was handed to the sockets (what a
    /// socket refused stays queued for its next writable event). What it
    /// writes or closes is carried out before the loop sleeps.
    fn before_sleep(&mut self, ctx: &mut Context<'_, Self>) {
        let _ = ctx;
    }
}

/// A timer that fired.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Fired {
    /// The id [`Context::start_timer`] returned.
    pub timer: TimerId,
    /// The connection the timer was bound to, if any. Such a timer never
    /// fires after its connection closed.
    pub conn: Option<ConnId>,
    /// The caller's tag, returned untouched.
    pub tag: u64,
}

/// Why output could not be queued.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WriteError {
    /// The connection is closed (or the id is stale) or no longer sends.
    Gone,
    /// The write would pass the connection's hard output cap
    /// ([`Limits::max_output`](crate::Limits::max_output)); the connection
    /// was closed.
    OutputLimit,
}

impl fmt::Display for WriteError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WriteError::Gone => write!(f, "connection is closed"),
            WriteError::OutputLimit => {
                write!(f, "output limit exceeded; the connection was closed")
            }
        }
    }
}

impl std::error::Error for WriteError {}
