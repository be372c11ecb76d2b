//! Pub/sub for the `resp_server` example: the channels and their
//! subscribers, SUBSCRIBE, UNSUBSCRIBE, PUBLISH and RESET, and the limits a
//! connection gets while it is subscribed.
//!
//! Messages are queued to subscribers at once, not produced as they read:
//! a subscriber that does not read is disconnected by Redis's `pubsub`
//! class limits, which a connection gets on its first SUBSCRIBE and gives
//! back when it has no channel left. Its replies are written directly too
//! (see `Replies::direct`), so that a message never lands in the middle of
//! a deferred reply.

use std::collections::{BTreeSet, HashMap};

use reactor::{ConnId, Context, Limits};

use crate::replies::{Replies, RETAINED};
use crate::reply::{array, bulk, integer, null, simple};
use crate::RespServer;

/// Channels and their subscribers, and the limits of the two classes of
/// connection.
#[derive(Debug)]
pub struct PubSub {
    /// Channel name to its subscribers. Invariant: no empty list; a
    /// connection is listed under a channel exactly when the channel is in
    /// that connection's `RespConn::channels`.
    channels: HashMap<Vec<u8>, Vec<ConnId>>,
    /// The `message` frame being fanned out, reused between PUBLISHes.
    /// Invariant: empty between callbacks.
    frame: Vec<u8>,
    /// The limits of a connection that is not subscribed: the `Config`'s.
    normal_limits: Limits,
    /// The limits SUBSCRIBE gives a connection (Redis's `pubsub` class).
    subscriber_limits: Limits,
}

impl PubSub {
    /// No channels yet; connections move between `normal_limits` and
    /// `subscriber_limits` (both validated) as they (un)subscribe.
    pub fn new(normal_limits: Limits, subscriber_limits: Limits) -> PubSub {
        PubSub {
            channels: HashMap::new(),
            frame: Vec::new(),
            normal_limits,
            subscriber_limits,
        }
    }

    /// `SUBSCRIBE channel...` for a connection subscribed to `subscribed`.
    pub fn subscribe<'x>(
        &mut self,
        r: &mut Replies<'_, '_>,
        subscribed: &mut BTreeSet<Vec<u8>>,
        channels: impl Iterator<Item = &'x [u8]>,
    ) {
        let was_subscribed = !subscribed.is_empty();
        for channel in channels {
            if subscribed.insert(channel.to_vec()) {
                self.add(channel, r.conn);
            }
            confirm(r.buf(), "subscribe", Some(channel), subscribed.len());
        }
        if !was_subscribed {
            self.set_class(r, true);
        }
    }

    /// `UNSUBSCRIBE [channel...]`; without channels, from every channel
    /// (in order, so the confirmations come in a stable order).
    pub fn unsubscribe<'x>(
        &mut self,
        r: &mut Replies<'_, '_>,
        subscribed: &mut BTreeSet<Vec<u8>>,
        channels: impl ExactSizeIterator<Item = &'x [u8]>,
    ) {
        let was_subscribed = !subscribed.is_empty();
        if channels.len() == 0 {
            if subscribed.is_empty() {
                confirm(r.buf(), "unsubscribe", None, 0);
            }
            while let Some(channel) = subscribed.pop_first() {
                self.remove(&channel, r.conn);
                confirm(r.buf(), "unsubscribe", Some(&channel), subscribed.len());
            }
        } else {
            for channel in channels {
                if subscribed.remove(channel) {
                    self.remove(channel, r.conn);
                }
                confirm(r.buf(), "unsubscribe", Some(channel), subscribed.len());
            }
        }
        if was_subscribed && subscribed.is_empty() {
            self.set_class(r, false);
        }
    }

    /// `RESET`: leaves every channel, and subscribed mode with them.
    pub fn reset(&mut self, r: &mut Replies<'_, '_>, subscribed: &mut BTreeSet<Vec<u8>>) {
        if !subscribed.is_empty() {
            self.leave_all(std::mem::take(subscribed), r.conn);
            self.set_class(r, false);
        }
        simple(r.buf(), "RESET");
    }

    /// Forgets `conn`'s subscriptions to `channels` (it reset, or is gone).
    pub fn leave_all(&mut self, channels: BTreeSet<Vec<u8>>, conn: ConnId) {
        for channel in channels {
            self.remove(&channel, conn);
        }
    }

    /// `PUBLISH channel message`: queues `message` for every subscriber of
    /// `channel` and replies how many it was queued for. A subscriber this
    /// pushes past its hard limit is closed by the reactor (and forgotten
    /// in `closed`); one that stays above its soft limit too long is closed
    /// by the reactor's timer. Subscribers never have a deferred reply (see
    /// `Replies::direct`), so the message cannot land in the middle of one.
    pub fn publish(&mut self, r: &mut Replies<'_, '_>, channel: &[u8], message: &[u8]) {
        let receivers = self.fan_out(r.ctx, channel, message);
        integer(r.buf(), receivers);
    }

    /// Queues the `message` frame for every subscriber of `channel`;
    /// returns how many it was queued for.
    fn fan_out(
        &mut self,
        ctx: &mut Context<'_, RespServer>,
        channel: &[u8],
        message: &[u8],
    ) -> i64 {
        let Some(subscribers) = self.channels.get(channel) else {
            return 0;
        };
        let frame = &mut self.frame;
        array(frame, 3);
        bulk(frame, b"message");
        bulk(frame, channel);
        bulk(frame, message);
        let mut receivers = 0;
        for &subscriber in subscribers {
            debug_assert!(ctx.state(subscriber).map_or(true, |s| s.pending.is_empty()));
            if ctx.write(subscriber, frame).is_ok() {
                receivers += 1;
            }
        }
        frame.clear();
        frame.shrink_to(RETAINED);
        receivers
    }

    fn add(&mut self, channel: &[u8], conn: ConnId) {
        self.channels
            .entry(channel.to_vec())
            .or_default()
            .push(conn);
    }

    fn remove(&mut self, channel: &[u8], conn: ConnId) {
        if let Some(subscribers) = self.channels.get_mut(channel) {
            // Linear: a channel's subscribers are few next to the messages
            // sent to them, and a list keeps the fan-out a plain loop.
            if let Some(at) = subscribers.iter().position(|&c| c == conn) {
                subscribers.swap_remove(at);
            }
            if subscribers.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// Gives the connection the pub/sub class's limits (or back the normal
    /// ones) as it enters (or leaves) subscribed mode, as Redis classifies a
    /// client by whether it is subscribed.
    fn set_class(&self, r: &mut Replies<'_, '_>, subscribed: bool) {
        let limits = if subscribed {
            self.subscriber_limits
        } else {
            self.normal_limits
        };
        r.direct = subscribed;
        if let Err(e) = r.ctx.set_limits(r.conn, limits) {
            // Both were validated at start-up.
            log::error!("{}: {e}", r.conn);
        }
    }
}

/// A (un)subscribe confirmation: `[kind, channel or null, count]`.
fn confirm(out: &mut Vec<u8>, kind: &str, channel: Option<&[u8]>, count: usize) {
    array(out, 3);
    bulk(out, kind.as_bytes());
    match channel {
        Some(channel) => bulk(out, channel),
        None => null(out),
    }
    integer(out, count as i64);
}
