//! The key space of the `resp_server` example: keys to shared values, with
//! lazy expiry, and memory given back as values and keys go.
//!
//! Times are Unix milliseconds (`i64`), as Redis keeps them: EXPIREAT and
//! SET's EXAT/PXAT name absolute times, and TTLs up to `i64::MAX` ms must
//! be representable (an `Instant` overflows far earlier).
//!
//! Values are reference-counted so that a reply sent piece by piece as the
//! client reads (see `pending.rs`) holds the value it started with instead
//! of a copy; the store only ever replaces its own reference.

use std::collections::HashMap;
use std::rc::Rc;
use std::time::{SystemTime, UNIX_EPOCH};

/// A stored value. Shared so that a reply being sent piece by piece keeps
/// the value it started with (MGET stays a snapshot) without a copy, while
/// a SET or DEL meanwhile replaces or drops the key's own reference.
pub type Value = Rc<Vec<u8>>;

/// One stored value.
#[derive(Debug)]
pub struct Entry {
    /// The value's bytes (binary-safe).
    pub value: Value,
    /// When the key stops existing; `None`: never.
    pub expires_at: Option<i64>,
}

/// The key space, with lazy expiry.
#[derive(Debug, Default)]
pub struct Store {
    /// Keys to entries. Invariant: an entry past `expires_at` is treated as
    /// absent and removed when next looked up.
    map: HashMap<Vec<u8>, Entry>,
    /// Keys some connection WATCHes: how many connections, and how many
    /// writes the key has had since it was first watched. Empty unless a
    /// client uses WATCH, so writes cost one emptiness check.
    watched: HashMap<Vec<u8>, (usize, u64)>,
    /// Keys removed because their time had come (INFO's `expired_keys`).
    expired: u64,
}

impl Store {
    /// How many keys are held, expired ones not yet looked up included.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// The live entry for `key`, removing it first if it has expired.
    pub fn get(&mut self, key: &[u8], now: i64) -> Option<&mut Entry> {
        if self
            .map
            .get(key)
            .is_some_and(|e| e.expires_at.is_some_and(|at| at <= now))
        {
            self.map.remove(key);
            self.expired += 1;
            // Expiring is a write, as Redis signals it to WATCH.
            self.modified(key);
        }
        self.map.get_mut(key)
    }

    /// Sets `key`. The old value's allocation is reused when no reply holds
    /// it and it is not much larger than the new value (reusing a 10 MB
    /// buffer for a 10-byte value would pin the 10 MB).
    pub fn set(&mut self, key: &[u8], value: &[u8], expires_at: Option<i64>) {
        self.modified(key);
        match self.map.get_mut(key) {
            Some(entry) => {
                match Rc::get_mut(&mut entry.value) {
                    Some(old) if old.capacity() <= value.len().saturating_mul(2).max(64) => {
                        old.clear();
                        old.extend_from_slice(value);
                    }
                    _ => entry.value = Rc::new(value.to_vec()),
                }
                entry.expires_at = expires_at;
            }
            None => {
                self.map.insert(
                    key.to_vec(),
                    Entry {
                        value: Rc::new(value.to_vec()),
                        expires_at,
                    },
                );
            }
        }
    }

    /// Removes `key`; returns whether it was there (and live).
    pub fn remove(&mut self, key: &[u8], now: i64) -> bool {
        let live = self.get(key, now).is_some();
        if live {
            self.map.remove(key);
            self.modified(key);
            // A table that held many more keys than it does now gives the
            // difference back, as Redis resizes its dictionaries.
            if self.map.capacity() > 1024 && self.map.len() < self.map.capacity() / 8 {
                self.map.shrink_to(self.map.len() * 2);
            }
        }
        live
    }

    /// The live keys, expired ones dropped first (KEYS, DBSIZE).
    pub fn live_keys(&mut self, now: i64) -> impl Iterator<Item = &Vec<u8>> {
        let before = self.map.len();
        self.map
            .retain(|_, e| e.expires_at.map_or(true, |at| at > now));
        self.expired += (before - self.map.len()) as u64;
        self.map.keys()
    }

    /// Live keys, and of those with a TTL (INFO's keyspace line).
    pub fn counts(&mut self, now: i64) -> (usize, usize) {
        let keys = self.live_keys(now).count();
        let expires = self.map.values().filter(|e| e.expires_at.is_some()).count();
        (keys, expires)
    }

    /// Keys removed on expiry so far.
    pub fn expired(&self) -> u64 {
        self.expired
    }

    /// An estimate of the bytes the key space holds (INFO's
    /// `used_memory_dataset`): each key's and value's allocation, the
    /// value's shared header, and the table's slots (its capacity, used or
    /// not, plus hashbrown's control byte each). Allocator overhead is not
    /// known here and not guessed. It walks the keys, so INFO costs O(keys)
    /// where Redis's costs O(1): acceptable for a monitoring read, and
    /// exact where a running tally would drift with in-place edits (APPEND,
    /// INCR).
    pub fn memory(&self) -> usize {
        let slot = std::mem::size_of::<(Vec<u8>, Entry)>() + 1;
        // An `Rc`'s allocation: two counts and the `Vec` header.
        let rc = 2 * std::mem::size_of::<usize>() + std::mem::size_of::<Vec<u8>>();
        let entries: usize = self
            .map
            .iter()
            .map(|(key, entry)| key.capacity() + rc + entry.value.capacity())
            .sum();
        self.map.capacity() * slot + entries
    }

    /// Forgets every key (FLUSHDB), giving the table's memory back; a
    /// watched key that existed counts as written, as in Redis.
    pub fn clear(&mut self) {
        for (key, (_, writes)) in &mut self.watched {
            if self.map.contains_key(key) {
                *writes += 1;
            }
        }
        self.map = HashMap::new();
    }

    /// Records a write to `key` for WATCH (the store's own writes do this;
    /// commands that change an entry in place call it).
    pub fn modified(&mut self, key: &[u8]) {
        if !self.watched.is_empty() {
            if let Some((_, writes)) = self.watched.get_mut(key) {
                *writes += 1;
            }
        }
    }

    /// One more connection watches `key`; returns the key's write count,
    /// which [`Store::writes`] must still return at EXEC. A key already
    /// expired is dropped first: its expiry is not a write after WATCH.
    pub fn watch(&mut self, key: &[u8], now: i64) -> u64 {
        self.get(key, now);
        let (watchers, writes) = self.watched.entry(key.to_vec()).or_insert((0, 0));
        *watchers += 1;
        *writes
    }

    /// One connection fewer watches `key`.
    pub fn unwatch(&mut self, key: &[u8]) {
        if let Some((watchers, _)) = self.watched.get_mut(key) {
            *watchers -= 1;
            if *watchers == 0 {
                self.watched.remove(key);
            }
        }
    }

    /// The write count of watched `key`, expiring it first if its time
    /// has come (EXEC fails then, as in Redis).
    pub fn writes(&mut self, key: &[u8], now: i64) -> u64 {
        self.get(key, now);
        self.watched.get(key).map_or(0, |&(_, writes)| writes)
    }
}

/// The wall clock in Unix milliseconds: the time base of expiry.
pub fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
