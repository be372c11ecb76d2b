//! The [`Echo`] handler most in-process tests run, and the record of how
//! its connections closed: every close reason in order and by peer address,
//! so a test can ask how one of its clients ended while the loop still runs.
//!
//! Kept apart from the loop runner ([`super::start`]) because other
//! handlers (the tests' own) share the close record ([`PeerCloses`]) too.

use std::net::{SocketAddr, TcpStream};
use std::sync::{Arc, Mutex};

use reactor::{CloseReason, ConnId, Context, Handler};

/// What an [`Echo`] does with each input it reads.
pub type OnInput = fn(&mut Context<'_, Echo>, ConnId, &[u8]);

/// Echoes every byte and records every close reason, in order and by peer.
///
/// [`Echo::with`] replaces the echo with another reaction, so that a test
/// needing one command on top of the echo (or a canned reply instead of
/// it) writes that reaction and not a whole `Handler`.
pub struct Echo {
    /// Close reasons seen, in order.
    pub closes: Vec<CloseReason>,
    /// The same closes by peer address, for a test that asks about one of
    /// its clients while the loop still runs.
    pub peer_closes: PeerCloses,
    /// Called with each input, which is then consumed whole.
    pub on_input: OnInput,
}

impl Default for Echo {
    fn default() -> Self {
        Echo::with(echo)
    }
}

impl Echo {
    /// An `Echo` that calls `on_input` with each input instead of echoing it.
    pub fn with(on_input: OnInput) -> Echo {
        Echo {
            closes: Vec::new(),
            peer_closes: PeerCloses::default(),
            on_input,
        }
    }
}

/// Writes `input` back to `conn`: [`Echo`]'s default reaction, and the last
/// step of reactions that echo as well. A failed write (a closed
/// connection, a full queue) is ignored, as a plain echo server would.
pub fn echo(ctx: &mut Context<'_, Echo>, conn: ConnId, input: &[u8]) {
    let _ = ctx.write(conn, input);
}

impl Handler for Echo {
    /// The peer's address, to file the close under.
    type State = SocketAddr;
    type Message = ();

    fn opened(&mut self, _: &mut Context<'_, Self>, _: ConnId, peer: SocketAddr) -> SocketAddr {
        peer
    }

    fn data(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut SocketAddr,
        input: &[u8],
    ) -> usize {
        (self.on_input)(ctx, conn, input);
        input.len()
    }

    fn closed(
        &mut self,
        _: &mut Context<'_, Self>,
        _: ConnId,
        peer: SocketAddr,
        reason: CloseReason,
    ) {
        self.closes.push(reason);
        self.peer_closes.lock().unwrap().push((peer, reason));
    }
}

/// Close reasons by peer address, shared between a handler (which keeps
/// the peer as its connection state and records it in `closed`) and the
/// test thread, which asks how one of its clients ended while the loop
/// still runs.
pub type PeerCloses = Arc<Mutex<Vec<(SocketAddr, CloseReason)>>>;

/// How the server closed the connection from client address `peer`, if it
/// has. It takes the address, not the socket, so that it also answers for
/// a client already gone (after [`reset`], say).
pub fn close_reason_at(
    closes: &Mutex<Vec<(SocketAddr, CloseReason)>>,
    peer: SocketAddr,
) -> Option<CloseReason> {
    closes
        .lock()
        .unwrap()
        .iter()
        .find(|(p, _)| *p == peer)
        .map(|&(_, reason)| reason)
}

/// How the server closed `client`'s connection, if it has.
pub fn close_reason_of(
    closes: &Mutex<Vec<(SocketAddr, CloseReason)>>,
    client: &TcpStream,
) -> Option<CloseReason> {
    close_reason_at(closes, client.local_addr().unwrap())
}
