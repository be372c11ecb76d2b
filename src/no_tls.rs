//! Without the `tls` feature: a session type with no values, so the loop
//! names TLS the same way whether or not it is built, with no `cfg` in its
//! modules, and the compiler removes every TLS branch (a connection's
//! `Option<Box<TlsSession>>` is always `None`).

use std::fmt;

/// This build has no TLS: every check for a session is false at compile
/// time, so the plain path pays nothing for it.
pub(crate) const ENABLED: bool = false;

/// What a feed found besides plaintext (see `tls/session.rs`).
#[derive(Debug, Default)]
pub(crate) struct Fed {
    /// The peer's `close_notify` arrived.
    pub(crate) peer_closed: bool,
}

/// No TLS session can exist in this build.
#[derive(Debug)]
pub(crate) enum TlsSession {}

/// No TLS listener can exist in this build.
#[derive(Clone, Debug)]
pub(crate) enum ServerSetup {}

/// No TLS error can happen in this build.
#[derive(Debug)]
pub(crate) enum FeedError {}

impl fmt::Display for FeedError {
    fn fmt(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {}
    }
}

impl TlsSession {
    pub(crate) fn accept(setup: &ServerSetup) -> Result<Box<TlsSession>, FeedError> {
        match *setup {}
    }
    pub(crate) fn is_handshaking(&self) -> bool {
        match *self {}
    }
    pub(crate) fn plaintext_waiting(&self) -> usize {
        match *self {}
    }
    pub(crate) fn close_notify_queued(&self) -> bool {
        match *self {}
    }
    pub(crate) fn peer_sent_close_notify(&self) -> bool {
        match *self {}
    }
    pub(crate) fn counted_in_progress(&self) -> bool {
        match *self {}
    }
    pub(crate) fn set_counted_in_progress(&mut self, _: bool) {
        match *self {}
    }
    pub(crate) fn feed(&mut self, _: &[u8], _: &mut Vec<u8>) -> Result<Fed, FeedError> {
        match *self {}
    }
    pub(crate) fn encrypt(&mut self, _: &[u8]) {
        match *self {}
    }
    pub(crate) fn take_records(&mut self, _: &mut Vec<u8>) -> usize {
        match *self {}
    }
    pub(crate) fn summary(&self) -> String {
        match *self {}
    }
    pub(crate) fn close_notify(&mut self) -> bool {
        match *self {}
    }
}
