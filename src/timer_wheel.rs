//! A hashed timing wheel: O(1) insert and cancel whatever the number of timers.
//!
//! Idle timeouts for ten thousand connections would make a heap pay
//! `log n` per re-arm; the wheel (Varghese & Lauck, as in Netty's
//! `HashedWheelTimer`) files each timer in the slot of its deadline tick and
//! only looks at a slot when the clock passes it. Timers more than one turn of
//! the wheel away simply stay in their slot until their round comes.
//!
//! Cancelling removes the entry from the entry slab at once but leaves its
//! slot record behind; the generation in the record lets expiry recognise and
//! drop it. The next deadline (for the poll timeout) is cached and recomputed
//! only after the wheel advances, so the loop does not rescan slots every turn.

use std::time::{Duration, Instant};

use slab::Slab;

/// Number of slots; a power of two so the slot of a tick is a mask.
const SLOTS: usize = 1024;

/// Names one armed timer; stale after it fires or is cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct TimerId {
    /// Key in the entry slab.
    key: u32,
    /// Distinguishes successive timers stored under the same key.
    generation: u32,
}

/// One armed timer.
#[derive(Debug)]
struct Entry<T> {
    /// Tick at or after which the timer fires.
    deadline: u64,
    /// Matches the `TimerId` handed out; a slot record with another
    /// generation belongs to a timer that was cancelled.
    generation: u32,
    /// What the owner wants back when the timer fires.
    payload: T,
}

/// The wheel. `T` is the payload returned when a timer fires.
#[derive(Debug)]
pub(crate) struct TimerWheel<T> {
    /// Armed timers. Invariant: every entry has a record in
    /// `slots[deadline % SLOTS]`.
    entries: Slab<Entry<T>>,
    /// Records `(key, generation)` per slot; may hold stale records.
    slots: Vec<Vec<(u32, u32)>>,
    /// Lowest deadline of the records in each slot (`u64::MAX`: none known).
    /// A lower bound: a cancelled record may have set it.
    slot_min: Vec<u64>,
    /// All ticks before this one have been expired.
    next_tick: u64,
    /// Cached earliest deadline over all slots; `None` means recompute.
    earliest: Option<u64>,
    /// Instant of tick zero.
    origin: Instant,
    /// Length of one tick. Invariant: non-zero.
    tick: Duration,
    /// Source of generations for new entries.
    next_generation: u32,
}

impl<T> TimerWheel<T> {
    pub(crate) fn new(origin: Instant, tick: Duration) -> Self {
        TimerWheel {
            entries: Slab::new(),
            slots: (0..SLOTS).map(|_| Vec::new()).collect(),
            slot_min: vec![u64::MAX; SLOTS],
            next_tick: 0,
            earliest: Some(u64::MAX),
            origin,
            tick,
            next_generation: 0,
        }
    }

    /// Number of armed timers.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.entries.len()
    }

    fn tick_of(&self, at: Instant) -> u64 {
        let since = at.saturating_duration_since(self.origin);
        (since.as_nanos() / self.tick.as_nanos()) as u64
    }

    /// Arms a timer that fires at the first tick at or after `deadline`.
    pub(crate) fn insert(&mut self, deadline: Instant, payload: T) -> TimerId {
        // Round up so a timer never fires early; never file into a tick
        // that has already been expired.
        let mut tick = self.tick_of(deadline);
        if self.instant_of(tick) < deadline {
            tick += 1;
        }
        let tick = tick.max(self.next_tick);
        self.next_generation = self.next_generation.wrapping_add(1);
        let generation = self.next_generation;
        let key = self.entries.insert(Entry {
            deadline: tick,
            generation,
            payload,
        }) as u32;
        let slot = (tick as usize) & (SLOTS - 1);
        self.slots[slot].push((key, generation));
        self.slot_min[slot] = self.slot_min[slot].min(tick);
        if let Some(earliest) = self.earliest {
            self.earliest = Some(earliest.min(tick));
        }
        TimerId { key, generation }
    }

    /// Disarms a timer; returns its payload if it had not fired yet.
    pub(crate) fn cancel(&mut self, id: TimerId) -> Option<T> {
        match self.entries.get(id.key as usize) {
            Some(entry) if entry.generation == id.generation => {
                Some(self.entries.remove(id.key as usize).payload)
            }
            _ => None,
        }
    }

    /// Appends the id, payload and deadline (rounded up to its tick) of
    /// every timer due by `now` to `fired`.
    pub(crate) fn expire(&mut self, now: Instant, fired: &mut impl Extend<(TimerId, T, Instant)>) {
        // Most turns of a busy server arm no timer: skip the clock division.
        if self.entries.is_empty() {
            return;
        }
        let now_tick = self.tick_of(now);
        if now_tick < self.next_tick {
            return;
        }
        // After a long pause one pass over every slot is enough.
        let last = now_tick.min(self.next_tick + SLOTS as u64 - 1);
        let (origin, tick_length) = (self.origin, self.tick);
        for tick in self.next_tick..=last {
            let slot = (tick as usize) & (SLOTS - 1);
            if self.slot_min[slot] > now_tick {
                continue;
            }
            let mut min = u64::MAX;
            let entries = &mut self.entries;
            self.slots[slot].retain(|&(key, generation)| {
                let live =
                    matches!(entries.get(key as usize), Some(e) if e.generation == generation);
                if !live {
                    return false;
                }
                let deadline = entries[key as usize].deadline;
                if deadline <= now_tick {
                    let payload = entries.remove(key as usize).payload;
                    let due = instant_at(origin, tick_length, deadline);
                    fired.extend([(TimerId { key, generation }, payload, due)]);
                    false
                } else {
                    min = min.min(deadline);
                    true
                }
            });
            self.slot_min[slot] = min;
        }
        self.next_tick = now_tick + 1;
        self.earliest = None;
    }

    /// The instant the next timer may be due, if any timer is armed.
    pub(crate) fn next_deadline(&mut self) -> Option<Instant> {
        if self.entries.is_empty() {
            return None;
        }
        let earliest = match self.earliest {
            Some(tick) => tick,
            None => {
                let tick = self.slot_min.iter().copied().min().unwrap_or(u64::MAX);
                self.earliest = Some(tick);
                tick
            }
        };
        if earliest == u64::MAX {
            return None;
        }
        let tick = earliest.max(self.next_tick);
        Some(self.instant_of(tick))
    }

    fn instant_of(&self, tick: u64) -> Instant {
        instant_at(self.origin, self.tick, tick)
    }
}

/// The instant tick number `tick` starts, for a wheel started at `origin`
/// with ticks of `tick_length`.
fn instant_at(origin: Instant, tick_length: Duration, tick: u64) -> Instant {
    let nanos = u128::from(tick) * tick_length.as_nanos();
    origin + Duration::from_nanos(nanos.min(u128::from(u64::MAX)) as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn payloads<T: Copy>(fired: &[(TimerId, T, Instant)]) -> Vec<T> {
        fired.iter().map(|&(_, p, _)| p).collect()
    }

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    #[test]
    fn fires_in_deadline_order_never_early() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0, ms(1));
        wheel.insert(t0 + ms(30), "c");
        wheel.insert(t0 + ms(10), "a");
        wheel.insert(t0 + ms(20), "b");
        let mut fired = Vec::new();
        wheel.expire(t0 + ms(9), &mut fired);
        assert!(fired.is_empty());
        wheel.expire(t0 + ms(10), &mut fired);
        assert_eq!(payloads(&fired), ["a"]);
        wheel.expire(t0 + ms(35), &mut fired);
        assert_eq!(payloads(&fired), ["a", "b", "c"]);
        assert_eq!(wheel.len(), 0);
        assert_eq!(wheel.next_deadline(), None);
    }

    #[test]
    fn timers_beyond_one_rotation_wait_for_their_round() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0, ms(1));
        wheel.insert(t0 + ms(SLOTS as u64 + 5), 1);
        wheel.insert(t0 + ms(5), 2);
        let mut fired = Vec::new();
        wheel.expire(t0 + ms(6), &mut fired);
        assert_eq!(payloads(&fired), [2]);
        wheel.expire(t0 + ms(SLOTS as u64), &mut fired);
        assert_eq!(payloads(&fired), [2]);
        wheel.expire(t0 + ms(SLOTS as u64 + 5), &mut fired);
        assert_eq!(payloads(&fired), [2, 1]);
    }

    #[test]
    fn cancelled_timers_do_not_fire_and_slots_are_reused() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0, ms(1));
        let a = wheel.insert(t0 + ms(5), "a");
        assert_eq!(wheel.cancel(a), Some("a"));
        assert_eq!(wheel.cancel(a), None);
        let b = wheel.insert(t0 + ms(5), "b");
        // The old id must not cancel the new timer that reuses its key.
        assert_eq!(wheel.cancel(a), None);
        let mut fired = Vec::new();
        wheel.expire(t0 + ms(5), &mut fired);
        assert_eq!(payloads(&fired), ["b"]);
        assert_eq!(wheel.cancel(b), None);
    }

    #[test]
    fn next_deadline_tracks_earliest_and_a_long_pause_fires_everything() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0, ms(1));
        wheel.insert(t0 + ms(50), 1);
        wheel.insert(t0 + ms(7), 2);
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(7)));
        let mut fired = Vec::new();
        wheel.expire(t0 + ms(8), &mut fired);
        assert_eq!(wheel.next_deadline(), Some(t0 + ms(50)));
        wheel.insert(t0 + ms(20_000), 3);
        wheel.expire(t0 + ms(60_000), &mut fired);
        assert_eq!(payloads(&fired), [2, 1, 3]);
    }

    #[test]
    fn a_deadline_in_the_past_fires_on_the_next_expiry() {
        let t0 = Instant::now();
        let mut wheel = TimerWheel::new(t0, ms(1));
        let mut fired = Vec::new();
        wheel.expire(t0 + ms(100), &mut fired);
        wheel.insert(t0 + ms(3), "late");
        wheel.expire(t0 + ms(101), &mut fired);
        assert_eq!(payloads(&fired), ["late"]);
    }
}
