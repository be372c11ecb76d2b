//! The names taken, shared by every loop of a `--threads N` chat, so a
//! nickname is unique across the whole server and not only on the loop a
//! member happens to be on.
//!
//! A `Mutex<HashMap>` shared by the loops, locked only for one lookup and
//! insert or remove (a join, a `/nick`, a leave), never while writing to a
//! socket: those are rare next to lines, each holds the lock for well
//! under a microsecond, and the alternative (one loop owning the names,
//! asked by message) would make a `/nick` answer wait for another loop's
//! turn. With one loop the lock is never contended.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};

use reactor::ConnId;

/// Who holds a name: a loop's index and the connection on that loop.
type Owner = (usize, ConnId);

/// One loop's view of the shared names.
pub(crate) struct Nicks {
    /// This loop's index, which with a `ConnId` names a member server-wide.
    loop_index: usize,
    /// `text::nick_key` of every member's name, on every loop, to its owner.
    /// Invariant: one entry per member in the room of any loop.
    names: Arc<Mutex<HashMap<String, Owner>>>,
}

impl Nicks {
    /// Loop `loop_index`'s view of `names`.
    pub(crate) fn new(loop_index: usize, names: Arc<Mutex<HashMap<String, Owner>>>) -> Self {
        Nicks { loop_index, names }
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<String, Owner>> {
        // A panic while holding it left the map consistent (one insert or
        // remove), so a poisoned lock is still good.
        self.names.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Takes the name with key `key` for `conn`, unless someone else has
    /// it; returns whether `conn` has it now.
    pub(crate) fn claim(&self, key: String, conn: ConnId) -> bool {
        let me = (self.loop_index, conn);
        let mut names = self.lock();
        match names.get(&key) {
            Some(owner) if *owner != me => false,
            _ => {
                names.insert(key, me);
                true
            }
        }
    }

    /// Gives up `conn`'s name with key `key`.
    pub(crate) fn release(&self, key: &str, conn: ConnId) {
        let mut names = self.lock();
        if names.get(key) == Some(&(self.loop_index, conn)) {
            names.remove(key);
        }
    }

    /// Moves `conn` from the name with key `old` to the one with key `new`,
    /// in one step (no one can take either meanwhile), unless someone else
    /// has `new`; returns whether it moved.
    pub(crate) fn rename(&self, old: &str, new: String, conn: ConnId) -> bool {
        let me = (self.loop_index, conn);
        let mut names = self.lock();
        if names.get(&new).is_some_and(|owner| *owner != me) {
            return false;
        }
        if names.get(old) == Some(&me) {
            names.remove(old);
        }
        names.insert(new, me);
        true
    }
}
