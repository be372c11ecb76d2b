//! Why a connection ended: the reasons handed to `Handler::closed` and
//! counted in `Stats::closed_by_reason`, and which limit a connection passed.
//!
//! A reason is recorded once, when closing is decided (`close.rs`); the
//! state machine (`state.rs`) says where a connection is, this says why it
//! ends.

use std::fmt;
use std::io;

/// Which per-connection limit was exceeded.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Limit {
    /// Unconsumed input passed the connection's input cap
    /// ([`Limits::max_input`](crate::Limits::max_input)).
    Input,
    /// Queued output passed the connection's hard output cap
    /// ([`Limits::max_output`](crate::Limits::max_output)), or stayed above
    /// its soft limit for the soft limit's duration.
    Output,
}

/// Why a connection ended; handed to `Handler::closed` and counted in
/// [`Stats::closed_by_reason`](crate::Stats::closed_by_reason).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CloseReason {
    /// The peer closed its side and everything owed to it was written.
    PeerClosed,
    /// The peer reset the connection (`ECONNRESET`, `EPIPE`).
    Reset,
    /// Another socket error, by kind.
    Error(io::ErrorKind),
    /// No traffic for longer than the connection's idle timeout.
    IdleTimeout,
    /// A per-connection memory limit was exceeded.
    LimitExceeded(Limit),
    /// The handler closed it (`close` or `close_after_flush`).
    ClosedLocally,
    /// A graceful shutdown closed it, or its deadline force-closed it.
    Shutdown,
    /// An outbound connect failed (refused, unreachable, ...).
    ConnectFailed(io::ErrorKind),
    /// An outbound connect did not complete within its timeout.
    ConnectTimeout,
    /// A handler callback for this connection panicked.
    HandlerPanic,
    /// The handler aborted it (`Context::abort`): closed with a reset
    /// (`SO_LINGER` 0), queued output dropped.
    Aborted,
    /// TLS: the peer broke the protocol (a handshake it could not complete,
    /// garbage instead of records, a downgrade or a renegotiation refused,
    /// a record that failed to decrypt) or sent a fatal alert. rustls told
    /// the peer why with an alert; the log says it at debug level.
    TlsError,
    /// TLS: the peer ended the TCP connection without a `close_notify`.
    /// Data it sent may have been cut short by an attacker or a crash, so
    /// it is not a clean close (`PeerClosed`).
    TlsTruncated,
    /// TLS: the handshake took longer than `Config::tls_handshake_timeout`.
    TlsHandshakeTimeout,
    /// A listener asking for the PROXY protocol got no header, or a
    /// malformed one (the log says which): never guessed around.
    BadProxyHeader,
    /// The PROXY protocol header did not arrive within
    /// `Config::proxy_header_timeout`.
    ProxyHeaderTimeout,
}

impl CloseReason {
    /// Number of distinct reasons, ignoring payloads.
    pub const COUNT: usize = 16;

    /// A dense index for counters, ignoring payloads.
    pub fn index(self) -> usize {
        match self {
            CloseReason::PeerClosed => 0,
            CloseReason::Reset => 1,
            CloseReason::Error(_) => 2,
            CloseReason::IdleTimeout => 3,
            CloseReason::LimitExceeded(_) => 4,
            CloseReason::ClosedLocally => 5,
            CloseReason::Shutdown => 6,
            CloseReason::ConnectFailed(_) => 7,
            CloseReason::ConnectTimeout => 8,
            CloseReason::HandlerPanic => 9,
            CloseReason::Aborted => 10,
            CloseReason::TlsError => 11,
            CloseReason::TlsTruncated => 12,
            CloseReason::TlsHandshakeTimeout => 13,
            CloseReason::BadProxyHeader => 14,
            CloseReason::ProxyHeaderTimeout => 15,
        }
    }

    /// Classifies an I/O error from a read or write on an open connection.
    pub(crate) fn from_io(error: &io::Error) -> CloseReason {
        match error.kind() {
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionAborted => CloseReason::Reset,
            kind => CloseReason::Error(kind),
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::PeerClosed => write!(f, "peer closed"),
            CloseReason::Reset => write!(f, "reset by peer"),
            CloseReason::Error(kind) => write!(f, "socket error: {kind}"),
            CloseReason::IdleTimeout => write!(f, "idle timeout"),
            CloseReason::LimitExceeded(Limit::Input) => write!(f, "input limit exceeded"),
            CloseReason::LimitExceeded(Limit::Output) => write!(f, "output limit exceeded"),
            CloseReason::ClosedLocally => write!(f, "closed locally"),
            CloseReason::Shutdown => write!(f, "shutdown"),
            CloseReason::ConnectFailed(kind) => write!(f, "connect failed: {kind}"),
            CloseReason::ConnectTimeout => write!(f, "connect timed out"),
            CloseReason::HandlerPanic => write!(f, "handler panicked"),
            CloseReason::Aborted => write!(f, "aborted with a reset"),
            CloseReason::TlsError => write!(f, "TLS protocol error"),
            CloseReason::TlsTruncated => write!(f, "TLS truncated (no close_notify)"),
            CloseReason::TlsHandshakeTimeout => write!(f, "TLS handshake timed out"),
            CloseReason::BadProxyHeader => write!(f, "no valid PROXY protocol header"),
            CloseReason::ProxyHeaderTimeout => write!(f, "PROXY protocol header timed out"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn close_reason_indices_are_dense_and_distinct() {
        let reasons = [
            CloseReason::PeerClosed,
            CloseReason::Reset,
            CloseReason::Error(io::ErrorKind::Other),
            CloseReason::IdleTimeout,
            CloseReason::LimitExceeded(Limit::Input),
            CloseReason::ClosedLocally,
            CloseReason::Shutdown,
            CloseReason::ConnectFailed(io::ErrorKind::ConnectionRefused),
            CloseReason::ConnectTimeout,
            CloseReason::HandlerPanic,
            CloseReason::Aborted,
            CloseReason::TlsError,
            CloseReason::TlsTruncated,
            CloseReason::TlsHandshakeTimeout,
            CloseReason::BadProxyHeader,
            CloseReason::ProxyHeaderTimeout,
        ];
        let mut seen: Vec<usize> = reasons.iter().map(|r| r.index()).collect();
        seen.sort();
        assert_eq!(seen, (0..CloseReason::COUNT).collect::<Vec<_>>());
    }
}
