//! Where the replies of one `data` call go, in order: small ones into one
//! shared buffer handed to the reactor every `HANDOFF_AT` bytes, large bulk
//! strings straight to the reactor in pieces from where they are, and, once
//! the connection stops taking output, everything else into its
//! [`Pending`] reply, which `Handler::drained` continues.
//!
//! Commands write through [`Replies`] and never decide this themselves, so
//! one place keeps replies in order whichever way each one leaves.
//!
//! Why a buffer of its own, when the reactor already batches every write of
//! a callback into one system call: a reply is encoded in pieces (header,
//! payload, CRLF), so the buffer turns a deep pipeline's replies into one
//! `ctx.write` per 64 KiB instead of three per reply, and a reply deferred
//! by backpressure must own its bytes anyway. It is the encoder's buffer,
//! not a second batching layer.

use std::rc::Rc;

use reactor::{ConnId, Context};

use crate::pending::{hand_over, Part, Pending};
use crate::reply::{bulk, bulk_header, null};
use crate::store::Value;
use crate::RespServer;

/// Small replies collect in the shared reply buffer; past this size it is
/// handed to the reactor before the next reply is added, so a long
/// pipeline's replies reach the reactor's flow control as they are made.
const HANDOFF_AT: usize = 64 * 1024;
/// Capacity the shared reply buffer and the message buffer keep between
/// callbacks. A larger reply grows them for the moment only.
pub const RETAINED: usize = 2 * HANDOFF_AT;
/// Bulk strings this long or longer are not copied into the reply buffer:
/// they are handed to the reactor in pieces straight from where they are
/// (the stored value, or the input for ECHO).
const STREAM_AT: usize = 16 * 1024;
/// Stored values shorter than this are copied into a deferred reply rather
/// than referenced: a copy costs less than a part of its own.
const SHARE_AT: usize = 64;

/// The replies of one `data` call to one connection.
pub struct Replies<'a, 'c> {
    /// The loop.
    pub ctx: &'a mut Context<'c, RespServer>,
    /// The connection replied to.
    pub conn: ConnId,
    /// Small replies not yet handed over (the server's reused buffer).
    /// Invariant: empty while `pending` is not (bytes then go there).
    out: &'a mut Vec<u8>,
    /// The connection's deferred reply.
    pending: &'a mut Pending,
    /// Write everything at once, never defer: set while the connection is
    /// subscribed, because messages published to it are written to the
    /// reactor directly and must not overtake a deferred reply. Its replies
    /// are small (confirmations, PING), and its queue is bounded by the
    /// pub/sub limits instead.
    pub direct: bool,
    /// The connection speaks RESP3 (it said `HELLO 3`).
    pub resp3: bool,
    /// A write failed: the connection is closed; everything else is moot.
    gone: bool,
}

impl<'a, 'c> Replies<'a, 'c> {
    /// Replies to `conn` through the empty buffer `out`, deferring to
    /// `pending` (which must be empty) once the connection stops taking
    /// output, unless `direct`; in RESP3 if `resp3`.
    pub fn new(
        ctx: &'a mut Context<'c, RespServer>,
        conn: ConnId,
        out: &'a mut Vec<u8>,
        pending: &'a mut Pending,
        (direct, resp3): (bool, bool),
    ) -> Self {
        Replies {
            ctx,
            conn,
            out,
            pending,
            direct,
            resp3,
            gone: false,
        }
    }

    /// Whether a write failed, closing the connection.
    pub fn gone(&self) -> bool {
        self.gone
    }

    /// The buffer small replies are appended to now.
    pub fn buf(&mut self) -> &mut Vec<u8> {
        if self.pending.is_empty() {
            self.out
        } else {
            self.pending.tail()
        }
    }

    /// Hands the small replies over once enough have collected.
    pub fn reply_done(&mut self) {
        if self.out.len() >= HANDOFF_AT {
            self.flush();
        }
    }

    /// Whether the connection stopped taking output: execute no more.
    pub fn blocked(&self) -> bool {
        self.gone || !self.pending.is_empty() || self.ctx.is_backpressured(self.conn)
    }

    /// Hands `out` to the reactor; what it does not take is deferred.
    pub fn flush(&mut self) {
        if self.out.is_empty() {
            return;
        }
        if self.gone {
            self.out.clear();
            return;
        }
        if self.direct {
            self.gone = self.ctx.write(self.conn, self.out).is_err();
        } else {
            match hand_over(self.ctx, self.conn, self.out) {
                Ok(n) if n < self.out.len() => {
                    self.pending.push(Part::Bytes(self.out[n..].to_vec()), 0);
                }
                Ok(_) => {}
                Err(_) => self.gone = true,
            }
        }
        self.out.clear();
    }

    /// A bulk string of bytes from the request (ECHO, PING).
    pub fn bulk(&mut self, bytes: &[u8]) {
        if bytes.len() < STREAM_AT || self.direct {
            bulk(self.buf(), bytes);
        } else {
            self.large(bytes, None);
        }
    }

    /// A stored value as a bulk string, or the null bulk string for a key
    /// that is not there.
    pub fn value(&mut self, value: Option<&Value>) {
        let Some(value) = value else {
            return self.null();
        };
        let copy = self.direct
            || value.len() < SHARE_AT
            || value.len() < STREAM_AT && self.pending.is_empty();
        if copy {
            bulk(self.buf(), value);
        } else {
            self.large(value, Some(value));
        }
    }

    /// Null in the connection's protocol.
    pub fn null(&mut self) {
        let resp3 = self.resp3;
        null(self.buf(), resp3);
    }

    /// A bulk string that is not copied into `out`: its header goes there,
    /// then it is handed over in pieces; the rest, if the connection stops
    /// taking output, is deferred (by reference when it is a stored value).
    fn large(&mut self, bytes: &[u8], shared: Option<&Value>) {
        bulk_header(self.buf(), bytes.len());
        let mut handed = 0;
        if self.pending.is_empty() {
            self.flush();
            if self.pending.is_empty() && !self.gone {
                match hand_over(self.ctx, self.conn, bytes) {
                    Ok(n) => handed = n,
                    Err(_) => self.gone = true,
                }
            }
        }
        if self.gone {
            return;
        }
        if handed < bytes.len() {
            match shared {
                Some(value) => self.pending.push(Part::Value(Rc::clone(value)), handed),
                // Bytes from the input must be copied to outlive it; they
                // were at most the input cap, which they now leave.
                None => self.pending.tail().extend_from_slice(&bytes[handed..]),
            }
        }
        self.buf().extend_from_slice(b"\r\n");
    }
}
