//! One connection's TLS session: rustls's state machine, fed from the
//! loop's own reads and drained into the loop's own output queue.
//!
//! rustls's own I/O helpers read about 4 KiB per system call and write
//! through whatever `io::Write` they are given; a register-once,
//! edge-triggered loop wants neither. So the session never touches the
//! socket: [`TlsSession::feed`] takes the ciphertext of one 64 KiB read
//! (already made by `input.rs`, under the same rule and budget as plain
//! reads) and returns the plaintext it decrypted; [`TlsSession::encrypt`]
//! and [`TlsSession::take_records`] hand back the records rustls wants
//! sent, which `output.rs` queues like any other bytes.
//!
//! Three traps this avoids, each a known bug of some TLS-on-epoll server:
//!
//! * rustls may have records to send after *any* `process_new_packets`
//!   (the handshake's last flight, session tickets, a key update, an
//!   alert): the caller always drains [`TlsSession::take_records`] after
//!   [`TlsSession::feed`], not only when the handshake is in progress.
//! * rustls refuses more ciphertext while 16 KiB of decrypted plaintext
//!   wait to be read ("received plaintext buffer full"). `feed` reads the
//!   plaintext out after every record batch, so a 64 KiB read is consumed
//!   whole and no edge is needed to come back for the rest: the bytes are
//!   already out of the socket.
//! * rustls caps its unsent buffers (64 KiB) and a `write` past the cap
//!   silently takes less. The session lifts rustls's cap because the
//!   connection's own limits (`max_output`, high and low water) bound the
//!   same bytes, checked before any byte reaches rustls; records leave
//!   rustls as soon as they are made.

use std::io::{Read, Write};

use std::sync::Arc;

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, Connection, ServerConnection};

/// What a TLS listener holds: the configuration each accepted connection's
/// session is made from.
pub(crate) type ServerSetup = Arc<rustls::ServerConfig>;

/// This build has TLS (see `no_tls.rs` for the other).
pub(crate) const ENABLED: bool = true;

/// A protocol error from the peer, as rustls reports it.
pub(crate) type FeedError = rustls::Error;

/// What one [`TlsSession::feed`] found besides plaintext.
#[derive(Debug, Default)]
pub(crate) struct Fed {
    /// The peer's `close_notify` arrived: its side of the conversation is
    /// over, cleanly. The loop treats it as the peer's FIN.
    pub(crate) peer_closed: bool,
}

/// A connection's TLS state. Boxed in the connection record, so a plain
/// connection pays one pointer for it.
pub(crate) struct TlsSession {
    /// rustls's state machine for this connection (server or client).
    conn: Connection,
    /// Plaintext the handler wrote before the handshake finished, which
    /// rustls holds until it has keys. Invariant: 0 once the handshake is
    /// done (rustls then encrypts it into records, which the loop queues).
    plaintext_waiting: usize,
    /// Our `close_notify` has been queued; nothing is encrypted after it.
    close_notify_queued: bool,
    /// The peer's `close_notify` has arrived: an EOF after it is clean,
    /// an EOF without it a truncation.
    peer_sent_close_notify: bool,
    /// Counted among the loop's inbound handshakes in progress
    /// (`Stats::tls_handshakes_in_progress`), which the cap on
    /// handshakes limits. Invariant: true exactly while an accepted
    /// connection's handshake is unfinished and the connection open.
    counted_in_progress: bool,
}

impl std::fmt::Debug for TlsSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsSession")
            .field("handshaking", &self.conn.is_handshaking())
            .field("plaintext_waiting", &self.plaintext_waiting)
            .field("close_notify_queued", &self.close_notify_queued)
            .finish()
    }
}

impl TlsSession {
    /// A session around `conn`, with rustls's own buffer cap lifted (the
    /// connection's limits bound the same bytes; see the module comment).
    pub(crate) fn new(mut conn: Connection) -> Box<TlsSession> {
        conn.set_buffer_limit(None);
        Box::new(TlsSession {
            conn,
            plaintext_waiting: 0,
            close_notify_queued: false,
            peer_sent_close_notify: false,
            counted_in_progress: false,
        })
    }

    /// A server session for a connection accepted on a TLS listener.
    pub(crate) fn accept(setup: &ServerSetup) -> Result<Box<TlsSession>, FeedError> {
        Ok(TlsSession::new(Connection::Server(ServerConnection::new(
            setup.clone(),
        )?)))
    }

    /// A client session for an outbound connection to `name`; its
    /// ClientHello is ready at once.
    pub(crate) fn connect(
        config: Arc<rustls::ClientConfig>,
        name: ServerName<'static>,
    ) -> Result<Box<TlsSession>, FeedError> {
        Ok(TlsSession::new(Connection::Client(ClientConnection::new(
            config, name,
        )?)))
    }

    /// Whether the handshake is still in progress.
    pub(crate) fn is_handshaking(&self) -> bool {
        self.conn.is_handshaking()
    }

    /// Plaintext written before the handshake finished, not yet encrypted.
    pub(crate) fn plaintext_waiting(&self) -> usize {
        self.plaintext_waiting
    }

    /// Whether our `close_notify` is queued: nothing may be written after it.
    pub(crate) fn close_notify_queued(&self) -> bool {
        self.close_notify_queued
    }

    /// Whether the peer's `close_notify` has arrived.
    pub(crate) fn peer_sent_close_notify(&self) -> bool {
        self.peer_sent_close_notify
    }

    /// Whether the session counts among the inbound handshakes in progress.
    pub(crate) fn counted_in_progress(&self) -> bool {
        self.counted_in_progress
    }

    /// Counts the session among the inbound handshakes in progress, or not.
    pub(crate) fn set_counted_in_progress(&mut self, counted: bool) {
        self.counted_in_progress = counted;
    }

    /// Feeds the ciphertext of one read to rustls and appends what it
    /// decrypts to `plaintext`. An error is the peer's protocol error (or a
    /// record too large to buffer); rustls has then queued the alert that
    /// tells the peer why, for [`TlsSession::take_records`].
    pub(crate) fn feed(
        &mut self,
        ciphertext: &[u8],
        plaintext: &mut Vec<u8>,
    ) -> Result<Fed, FeedError> {
        let mut rest = ciphertext;
        let mut fed = Fed::default();
        while !rest.is_empty() {
            match self.conn.read_tls(&mut rest) {
                // After a close_notify rustls reads nothing more: what
                // follows it is not part of the conversation.
                Ok(0) => break,
                Ok(_) => {}
                // Only rustls's own buffers refuse a slice: its record
                // buffer holds a partial record too large to ever complete.
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
            let state = self.conn.process_new_packets()?;
            let waiting = state.plaintext_bytes_to_read();
            if waiting > 0 {
                let start = plaintext.len();
                plaintext.resize(start + waiting, 0);
                self.conn
                    .reader()
                    .read_exact(&mut plaintext[start..])
                    .map_err(|e| rustls::Error::General(e.to_string()))?;
            }
            if state.peer_has_closed() {
                fed.peer_closed = true;
                self.peer_sent_close_notify = true;
                break;
            }
        }
        Ok(fed)
    }

    /// Hands `plaintext` to rustls to encrypt; its records are then ready
    /// for [`TlsSession::take_records`]. Before the handshake finishes
    /// rustls keeps the plaintext (counted in `plaintext_waiting`) and
    /// encrypts it once it has keys.
    pub(crate) fn encrypt(&mut self, plaintext: &[u8]) {
        if self.conn.is_handshaking() {
            self.plaintext_waiting += plaintext.len();
        }
        // With rustls's cap lifted, a write takes every byte.
        let written = self.conn.writer().write(plaintext).unwrap_or(0);
        debug_assert_eq!(written, plaintext.len(), "rustls took part of a write");
    }

    /// Appends every record rustls has ready to send to `out`; returns how
    /// many bytes that was.
    pub(crate) fn take_records(&mut self, out: &mut Vec<u8>) -> usize {
        let before = out.len();
        while self.conn.wants_write() {
            // Writing into a Vec cannot fail or stop short.
            if self.conn.write_tls(out).is_err() {
                break;
            }
        }
        if !self.conn.is_handshaking() {
            self.plaintext_waiting = 0;
        }
        out.len() - before
    }

    /// rustls's connection, for what the handler may read of it (ALPN, SNI,
    /// version, resumption).
    pub(crate) fn rustls(&self) -> &Connection {
        &self.conn
    }

    /// What was negotiated, for the log.
    pub(crate) fn summary(&self) -> String {
        let session = &self.conn;
        format!(
            "{:?} {:?}, ALPN {:?}, {:?}",
            session.protocol_version(),
            session.negotiated_cipher_suite().map(|s| s.suite()),
            session.alpn_protocol().map(String::from_utf8_lossy),
            session.handshake_kind(),
        )
    }

    /// Queues our `close_notify` (once): after it, nothing more is
    /// encrypted. Returns whether it was queued now.
    pub(crate) fn close_notify(&mut self) -> bool {
        if self.close_notify_queued {
            return false;
        }
        self.close_notify_queued = true;
        self.conn.send_close_notify();
        true
    }
}
