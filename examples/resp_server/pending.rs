//! Replies produced as the socket drains: the part of a reply the client has
//! not taken yet, and handing bytes to the reactor only while the
//! connection is below its high-water mark.
//!
//! This is the answer to "what if a reply is larger than the output cap?":
//! rather than refusing such a reply, or building it whole in memory, the
//! server hands it over in pieces while the connection takes output and
//! keeps the rest here, as references to the stored values plus the few
//! protocol bytes between them; `Handler::drained` continues it. A reply of
//! any size then costs the connection about the high-water mark plus a
//! piece, and the client gets what Redis would have sent it. (Refusing
//! replies over the cap was the alternative; it is simpler but answers a
//! valid `MGET` with an error that Redis would not send.)

use std::collections::VecDeque;

use reactor::{ConnId, Context, WriteError};

use crate::store::Value;
use crate::RespServer;

/// Most bytes handed to the reactor in one write while streaming.
const PIECE: usize = 64 * 1024;

/// A reply deferred until the client reads: what is left of it, in order.
#[derive(Debug, Default)]
pub struct Pending {
    /// Parts not yet handed to the reactor, oldest first.
    parts: VecDeque<Part>,
    /// Bytes of the front part already handed over. Invariant: less than
    /// its length; 0 when `parts` is empty.
    sent: usize,
}

/// A piece of a deferred reply.
#[derive(Debug)]
pub enum Part {
    /// Protocol bytes and small values, copied.
    Bytes(Vec<u8>),
    /// A stored value, referenced.
    Value(Value),
}

impl Part {
    fn bytes(&self) -> &[u8] {
        match self {
            Part::Bytes(bytes) => bytes,
            Part::Value(value) => value,
        }
    }
}

impl Pending {
    pub fn is_empty(&self) -> bool {
        self.parts.is_empty()
    }

    /// The buffer small bytes are appended to: the last part if it is
    /// copied bytes, else a new one.
    pub fn tail(&mut self) -> &mut Vec<u8> {
        if !matches!(self.parts.back(), Some(Part::Bytes(_))) {
            self.parts.push_back(Part::Bytes(Vec::new()));
        }
        match self.parts.back_mut() {
            Some(Part::Bytes(bytes)) => bytes,
            _ => unreachable!("a Bytes part was just pushed"),
        }
    }

    /// Defers `part`, of which the first `handed` bytes already went to the
    /// reactor; only the first part can have been started.
    pub fn push(&mut self, part: Part, handed: usize) {
        debug_assert!(handed == 0 || self.is_empty());
        if self.is_empty() {
            self.sent = handed;
        }
        self.parts.push_back(part);
    }

    /// Forgets everything (the connection is gone), freeing the memory.
    pub fn clear(&mut self) {
        *self = Pending::default();
    }

    /// Hands parts to the reactor while `conn` takes output; returns
    /// whether everything was handed over. A failed write means the
    /// connection is closed, so the rest is forgotten then.
    pub fn pump(
        &mut self,
        ctx: &mut Context<'_, RespServer>,
        conn: ConnId,
    ) -> Result<bool, WriteError> {
        while let Some(front) = self.parts.front() {
            let rest = &front.bytes()[self.sent..];
            let len = rest.len();
            let handed = match hand_over(ctx, conn, rest) {
                Ok(handed) => handed,
                Err(e) => {
                    self.clear();
                    return Err(e);
                }
            };
            if handed < len {
                self.sent += handed;
                return Ok(false);
            }
            self.parts.pop_front();
            self.sent = 0;
        }
        // Done: a long reply's part list gives its memory back.
        self.clear();
        Ok(true)
    }
}

/// Writes `bytes` to `conn` in pieces while it is below its high-water mark
/// and the pieces fit under its hard cap; returns how many bytes it wrote.
///
/// The reactor sends a piece at once when the queue reaches high water, so
/// while the client reads, a large value passes through a queue of about
/// the high-water mark; once it does not, the connection is backpressured
/// and the caller keeps the rest for `drained`.
pub fn hand_over(
    ctx: &mut Context<'_, RespServer>,
    conn: ConnId,
    bytes: &[u8],
) -> Result<usize, WriteError> {
    let max_output = ctx.limits(conn).ok_or(WriteError::Gone)?.max_output;
    let mut at = 0;
    while at < bytes.len() && !ctx.is_backpressured(conn) {
        let queued = ctx.queued_output(conn).ok_or(WriteError::Gone)?;
        let room = max_output.saturating_sub(queued);
        // A queue at the cap is above high water, so backpressured (the
        // reactor marks it so even when `set_limits` lowers the cap under a
        // full queue): the loop has already stopped. Guarded all the same,
        // since a piece of 0 bytes would never end it.
        debug_assert!(room > 0, "a full queue that is not backpressured");
        if room == 0 {
            break;
        }
        let n = (bytes.len() - at).min(PIECE).min(room);
        ctx.write(conn, &bytes[at..at + n])?;
        at += n;
    }
    Ok(at)
}
