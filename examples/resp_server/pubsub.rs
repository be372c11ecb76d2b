//! Pub/sub for the `resp_server` example: the channels and patterns and
//! their subscribers, SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH and RESET, and the limits a connection gets while it is
//! subscribed.
//!
//! Messages are queued to subscribers at once, not produced as they read:
//! a subscriber that does not read is disconnected by Redis's `pubsub`
//! class limits, which a connection gets on its first subscription and
//! gives back when it has none left. Its replies are written directly too
//! (see `Replies::direct`), so that a message never lands in the middle of
//! a deferred reply. Confirmations and messages are pushes (`>`) to a RESP3
//! connection and arrays to a RESP2 one, each subscriber in its own.

use std::collections::HashMap;

use reactor::{ConnId, Context, Limits};

use crate::conn::{Names, Session};
use crate::keys::glob_match;
use crate::replies::{Replies, RETAINED};
use crate::reply::{bulk, integer, null, push, simple};
use crate::RespServer;

/// Which kind of subscription a command handles.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// SUBSCRIBE / UNSUBSCRIBE: channels by name.
    Channel,
    /// PSUBSCRIBE / PUNSUBSCRIBE: glob patterns.
    Pattern,
}

/// Subscribers by channel name or by pattern. Invariant: no empty list.
type Subscribers = HashMap<Vec<u8>, Vec<ConnId>>;

/// Channels and patterns with their subscribers, and the limits of the two
/// classes of connection.
#[derive(Debug)]
pub struct PubSub {
    /// Channel name to its subscribers. Invariant: a connection is listed
    /// under a channel exactly when the channel is in its
    /// `Session::channels`.
    channels: Subscribers,
    /// Pattern to its subscribers; the same invariant with
    /// `Session::patterns`.
    patterns: Subscribers,
    /// The message frames being fanned out (RESP2, RESP3), reused between
    /// PUBLISHes. Invariant: empty between callbacks.
    frames: [Vec<u8>; 2],
    /// The limits of a connection that is not subscribed: the `Config`'s.
    normal_limits: Limits,
    /// The limits a subscribed connection gets (Redis's `pubsub` class).
    subscriber_limits: Limits,
}

impl PubSub {
    /// No channels yet; connections move between `normal_limits` and
    /// `subscriber_limits` (both validated) as they (un)subscribe.
    pub fn new(normal_limits: Limits, subscriber_limits: Limits) -> PubSub {
        PubSub {
            channels: HashMap::new(),
            patterns: HashMap::new(),
            frames: [Vec::new(), Vec::new()],
            normal_limits,
            subscriber_limits,
        }
    }

    /// Channels and patterns with at least one subscriber (INFO's
    /// `pubsub_channels`, `pubsub_patterns`).
    pub fn counts(&self) -> (usize, usize) {
        (self.channels.len(), self.patterns.len())
    }

    /// `SUBSCRIBE channel...` or `PSUBSCRIBE pattern...`.
    pub fn subscribe<'x>(
        &mut self,
        r: &mut Replies<'_, '_>,
        session: &mut Session,
        kind: Kind,
        names: impl Iterator<Item = &'x [u8]>,
    ) {
        let was_subscribed = session.subscribed();
        let what = if kind == Kind::Channel {
            "subscribe"
        } else {
            "psubscribe"
        };
        for name in names {
            let (mine, all) = self.sets(session, kind);
            if mine.add(name) {
                all.entry(name.to_vec()).or_default().push(r.conn);
            }
            confirm(r, what, Some(name), session.subscriptions());
        }
        if !was_subscribed {
            self.set_class(r, true);
        }
    }

    /// `UNSUBSCRIBE [channel...]` or `PUNSUBSCRIBE [pattern...]`; without
    /// names, from every one of that kind (channels sorted, patterns in
    /// the order they were subscribed, as Redis answers).
    pub fn unsubscribe<'x>(
        &mut self,
        r: &mut Replies<'_, '_>,
        session: &mut Session,
        kind: Kind,
        names: impl ExactSizeIterator<Item = &'x [u8]>,
    ) {
        let was_subscribed = session.subscribed();
        let what = if kind == Kind::Channel {
            "unsubscribe"
        } else {
            "punsubscribe"
        };
        if names.len() == 0 {
            if self.sets(session, kind).0.is_empty() {
                confirm(r, what, None, session.subscriptions());
            }
            while let Some(name) = self.sets(session, kind).0.take_first() {
                remove(self.sets(session, kind).1, &name, r.conn);
                confirm(r, what, Some(&name), session.subscriptions());
            }
        } else {
            for name in names {
                let (mine, all) = self.sets(session, kind);
                if mine.take(name) {
                    remove(all, name, r.conn);
                }
                confirm(r, what, Some(name), session.subscriptions());
            }
        }
        if was_subscribed && !session.subscribed() {
            self.set_class(r, false);
        }
    }

    /// The connection's set of `kind` and the server's map of it.
    fn sets<'s>(
        &'s mut self,
        session: &'s mut Session,
        kind: Kind,
    ) -> (&'s mut dyn Names, &'s mut Subscribers) {
        match kind {
            Kind::Channel => (&mut session.channels, &mut self.channels),
            Kind::Pattern => (&mut session.patterns, &mut self.patterns),
        }
    }

    /// `RESET`: leaves every channel and pattern, and subscribed mode with
    /// them; back to RESP2 and unnamed, as Redis's RESET does.
    pub fn reset(&mut self, r: &mut Replies<'_, '_>, session: &mut Session) {
        if session.subscribed() {
            self.leave_all(session, r.conn);
            self.set_class(r, false);
        }
        session.resp3 = false;
        r.resp3 = false;
        session.name = None;
        simple(r.buf(), "RESET");
    }

    /// Forgets `conn`'s subscriptions (it reset, or is gone).
    pub fn leave_all(&mut self, session: &mut Session, conn: ConnId) {
        for channel in std::mem::take(&mut session.channels) {
            remove(&mut self.channels, &channel, conn);
        }
        for pattern in std::mem::take(&mut session.patterns) {
            remove(&mut self.patterns, &pattern, conn);
        }
    }

    /// `PUBLISH channel message`: queues `message` for every subscriber of
    /// `channel`, then for every pattern subscription that matches it, and
    /// replies how many it was queued for. A subscriber this pushes past
    /// its hard limit is closed by the reactor (and forgotten in `closed`);
    /// one that stays above its soft limit too long is closed by the
    /// reactor's timer. Subscribers write their replies directly (see
    /// `Replies::direct`), so the message cannot land in the middle of one.
    pub fn publish(&mut self, r: &mut Replies<'_, '_>, channel: &[u8], message: &[u8]) {
        // A RESP3 subscriber may publish to itself: the replies before this
        // command go out before the message does.
        if r.direct {
            r.flush();
        }
        let mut receivers = 0;
        if let Some(subscribers) = self.channels.get(channel) {
            receivers += fan_out(&mut self.frames, r, subscribers, None, channel, message);
        }
        for (pattern, subscribers) in &self.patterns {
            if glob_match(pattern, channel) {
                let frames = &mut self.frames;
                receivers += fan_out(frames, r, subscribers, Some(pattern), channel, message);
            }
        }
        integer(r.buf(), receivers);
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

/// Queues the `message` (or, for a pattern, `pmessage`) frame for every
/// one of `subscribers`, each in its protocol; returns how many it was
/// queued for.
fn fan_out(
    frames: &mut [Vec<u8>; 2],
    r: &mut Replies<'_, '_>,
    subscribers: &[ConnId],
    pattern: Option<&[u8]>,
    channel: &[u8],
    message: &[u8],
) -> i64 {
    for (frame, resp3) in frames.iter_mut().zip([false, true]) {
        match pattern {
            None => {
                push(frame, 3, resp3);
                bulk(frame, b"message");
            }
            Some(pattern) => {
                push(frame, 4, resp3);
                bulk(frame, b"pmessage");
                bulk(frame, pattern);
            }
        }
        bulk(frame, channel);
        bulk(frame, message);
    }
    let mut receivers = 0;
    for &subscriber in subscribers {
        if subscriber == r.conn {
            // The publisher itself (a RESP3 subscriber): its replies so far
            // were flushed, so the message goes in order with them, and
            // behind a deferred reply should EXEC have left one.
            let frame = &frames[usize::from(r.resp3)];
            r.buf().extend_from_slice(frame);
            receivers += 1;
            continue;
        }
        let ctx: &mut Context<'_, RespServer> = r.ctx;
        let Some(st) = ctx.state_mut(subscriber) else {
            continue;
        };
        let frame = &frames[usize::from(st.session.resp3)];
        // A subscriber has no deferred reply, except when an EXEC both
        // sent a large value and subscribed: the message waits behind it.
        if !st.pending.is_empty() {
            st.pending.tail().extend_from_slice(frame);
            receivers += 1;
        } else if ctx.write(subscriber, frame).is_ok() {
            receivers += 1;
        }
    }
    for frame in frames {
        frame.clear();
        frame.shrink_to(RETAINED);
    }
    receivers
}

/// Takes `conn` off the subscribers of `name`.
fn remove(all: &mut Subscribers, name: &[u8], conn: ConnId) {
    if let Some(subscribers) = all.get_mut(name) {
        // Linear: a channel's subscribers are few next to the messages
        // sent to them, and a list keeps the fan-out a plain loop.
        if let Some(at) = subscribers.iter().position(|&c| c == conn) {
            subscribers.swap_remove(at);
        }
        if subscribers.is_empty() {
            all.remove(name);
        }
    }
}

/// A (un)subscribe confirmation: `[kind, name or null, count]`, a push in
/// RESP3.
fn confirm(r: &mut Replies<'_, '_>, kind: &str, name: Option<&[u8]>, count: usize) {
    let resp3 = r.resp3;
    let out = r.buf();
    push(out, 3, resp3);
    bulk(out, kind.as_bytes());
    match name {
        Some(name) => bulk(out, name),
        None => null(out, resp3),
    }
    integer(out, count as i64);
}
