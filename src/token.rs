//! Names for the things the loop polls: how a `mio::Token` maps back to a
//! connection, a listener, a user source or the waker, and the `ConnId`
//! handlers use to name a connection safely across slot reuse.
//!
//! Connection tokens are plain slab keys, so the hot path turns an event into
//! a connection with one slab lookup. Everything else lives in a reserved band
//! at the top of the token space that the slab can never reach.

use std::fmt;

use mio::Token;

/// Tokens at or above this value are reserved; slab keys stay below it.
const RESERVED_BASE: usize = usize::MAX - (1 << 20);
/// Upper bound on connections a reactor may hold (slab keys below this).
pub const MAX_CONNECTIONS: usize = 1 << 31;
/// The waker wakes the loop from other threads ([`Handle`](crate::Handle)).
pub(crate) const WAKER: Token = Token(usize::MAX);
/// Listener `i` uses `LISTENER_BASE + i`.
const LISTENER_BASE: usize = RESERVED_BASE;
/// User source `i` uses `SOURCE_BASE + i`.
const SOURCE_BASE: usize = RESERVED_BASE + (1 << 19);

/// What a token received from `poll` refers to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Target {
    /// Slab key of a connection.
    Connection(usize),
    /// Index of a listener.
    Listener(usize),
    /// Index of a handler-registered source.
    Source(usize),
    /// The cross-thread waker.
    Waker,
}

/// What `token` refers to: a slab key, a listener, a source or the waker.
pub(crate) fn classify(token: Token) -> Target {
    match token.0 {
        usize::MAX => Target::Waker,
        t if t >= SOURCE_BASE => Target::Source(t - SOURCE_BASE),
        t if t >= LISTENER_BASE => Target::Listener(t - LISTENER_BASE),
        t => Target::Connection(t),
    }
}

/// The token listener `index` is registered under.
pub(crate) fn listener_token(index: usize) -> Token {
    Token(LISTENER_BASE + index)
}

/// The token handler source `index` is registered under.
pub(crate) fn source_token(index: usize) -> Token {
    Token(SOURCE_BASE + index)
}

/// Identifies one connection for its whole life, and never another one.
///
/// The `index` is the slab slot (and the `mio::Token`); slots are reused, so
/// the `generation`, unique per connection, lets the reactor refuse a stale
/// id kept by a handler after its connection closed.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    /// Slab slot, equal to the connection's `mio::Token`.
    pub(crate) index: u32,
    /// Distinguishes successive connections in the same slot.
    pub(crate) generation: u32,
}

impl ConnId {
    /// Packs the id into a `u64` (for timer tags, maps, logs).
    pub fn to_u64(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }

    /// Rebuilds an id packed by [`ConnId::to_u64`].
    pub fn from_u64(packed: u64) -> ConnId {
        ConnId {
            index: packed as u32,
            generation: (packed >> 32) as u32,
        }
    }

    /// The slab slot, which is also the connection's `mio::Token`.
    pub fn slot(self) -> usize {
        self.index as usize
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self, f)
    }
}

/// Identifies a listener added with [`Reactor::listen`](crate::Reactor::listen).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ListenerId(pub(crate) usize);

/// Identifies a source registered with
/// [`Context::register_source`](crate::Context::register_source).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(pub(crate) usize);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip_through_classify() {
        assert_eq!(classify(Token(0)), Target::Connection(0));
        assert_eq!(classify(Token(12345)), Target::Connection(12345));
        assert_eq!(classify(listener_token(3)), Target::Listener(3));
        assert_eq!(classify(source_token(7)), Target::Source(7));
        assert_eq!(classify(WAKER), Target::Waker);
        const { assert!(MAX_CONNECTIONS < RESERVED_BASE) };
    }

    #[test]
    fn conn_id_packs_into_u64() {
        let id = ConnId {
            index: 17,
            generation: 99,
        };
        assert_eq!(ConnId::from_u64(id.to_u64()), id);
        assert_eq!(format!("{id}"), "#17.99");
    }
}
