//! One step of one connection: what it does when its events (or the ready
//! queue) give it a turn.
//!
//! An event only sets flags ([`note_readiness`]); [`Loop::step`] then acts
//! on the connection's state and flags, in the same order every time:
//!
//! 1. `Connecting`: a writable flag means the connect ended (`connect.rs`);
//! 2. output first: a writable socket with a queue is flushed (`output.rs`),
//!    which may lift backpressure;
//! 3. what flow control owes: `drained`, an offer of kept input, the end of
//!    a FIN (`flow.rs`);
//! 4. input: read and hand to the handler (`input.rs`);
//! 5. a socket error the reads did not see (`collect_error`);
//! 6. `Lingering` instead reads and discards until the peer's FIN (`close.rs`).
//!
//! Output before input keeps a client that pipelines from growing our queue
//! while the socket could have taken it; the owed steps come before the
//! read so that `drained` runs before anything new is read.

use log::debug;

use crate::callbacks::Loop;
use crate::close_reason::CloseReason;
use crate::connection::Connection;
use crate::handler::Handler;
use crate::state::State;
use crate::token::ConnId;

impl<H: Handler> Loop<'_, H> {
    /// One step of a connection's life, driven by its readiness flags and
    /// by what flow control owes it.
    #[inline]
    pub(crate) fn step(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        match conn.state {
            State::Connecting { .. } => {
                if conn.ready.writable {
                    self.finish_connect(id);
                }
            }
            State::Handshaking { .. }
            | State::Open
            | State::ReadClosed { .. }
            | State::HalfClosing { .. }
            | State::HalfClosed { .. }
            | State::Closing { .. } => {
                let mut owed = conn.owes_resume();
                if conn.ready.writable && !conn.output.is_empty() {
                    self.flush(id);
                    // The flush may have let go of backpressure: `drained`
                    // is owed before anything more is read.
                    owed = self.core.conn(id).is_some_and(Connection::owes_resume);
                }
                if owed {
                    self.resume_input(id);
                }
                self.read_input(id);
                self.collect_error(id);
            }
            State::AwaitingProxyHeader => self.read_proxy_header(id),
            State::Lingering => self.discard_input(id),
            State::Closed => {}
        }
    }

    /// A connection that does not read (the peer sent FIN, or flow control
    /// holds it) never makes the system call that would report a reset: the
    /// peer's RST after its FIN (`EPIPE` in CLOSE_WAIT) would go unnoticed
    /// and the connection stay open for good. When an event reported an
    /// error, fetch it with `SO_ERROR` and close.
    #[inline]
    fn collect_error(&mut self, id: ConnId) {
        let Some(conn) = self.core.conn_mut(id) else {
            return;
        };
        if !conn.ready.error_hint || (conn.state.reads_input() && conn.may_offer()) {
            return;
        }
        conn.ready.error_hint = false;
        let socket = conn.socket.as_ref().expect("open connection has a socket");
        if let Ok(Some(e)) | Err(e) = socket.take_error() {
            debug!("conn {id}: socket error while not reading: {e}");
            self.core.close_now(id, CloseReason::from_io(&e));
        }
    }
}

/// The readiness an event reports, folded into the connection's flags. An
/// error or a hang-up counts as readable and writable: the next read or
/// write reports it.
pub(crate) fn note_readiness<S>(conn: &mut Connection<S>, event: &mio::event::Event) {
    let ready = &mut conn.ready;
    if event.is_readable() || event.is_read_closed() || event.is_error() {
        ready.readable = true;
    }
    if event.is_read_closed() || event.is_error() {
        ready.read_closed_hint = true;
    }
    if event.is_error() {
        ready.error_hint = true;
    }
    if event.is_writable() || event.is_write_closed() || event.is_error() {
        ready.writable = true;
    }
}
