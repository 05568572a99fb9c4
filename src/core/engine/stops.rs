//! Pending stop commands: plain data with deadlines, not a sleeping process
//! per open door (knockd 0.8's children die with the daemon and leave the
//! hole open).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use crate::core::knock::Timestamp;

/// A stop command waiting for its time; what the shell journals so a
/// restarted daemon still closes the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStop {
    pub door: Arc<str>,
    pub src: IpAddr,
    /// The command with `%IP%` already substituted, exactly as it will run.
    pub command: String,
    pub due: Timestamp,
}

/// The schedule, in deadline order, with an index by (door, source) for
/// extending an open door instead of stacking another rule.
#[derive(Default)]
pub(crate) struct Stops {
    queue: BTreeMap<(Timestamp, u64), PendingStop>,
    latest: HashMap<(Arc<str>, IpAddr), (Timestamp, u64)>,
    seq: u64,
}

impl Stops {
    pub fn add(&mut self, stop: PendingStop) {
        self.seq += 1;
        let key = (stop.due, self.seq);
        self.latest.insert((stop.door.clone(), stop.src), key);
        self.queue.insert(key, stop);
    }

    /// Pushes the latest pending stop of `door` for `src` to `due`; false
    /// when there is none (the door is not open for that source).
    pub fn extend(&mut self, door: &Arc<str>, src: IpAddr, due: Timestamp) -> bool {
        let Some(key) = self.latest.get(&(door.clone(), src)).copied() else {
            return false;
        };
        let Some(mut stop) = self.queue.remove(&key) else {
            return false;
        };
        stop.due = stop.due.max(due);
        self.add(stop);
        true
    }

    /// Forgets that `door` is open for `src` (its start command failed),
    /// so the next knock runs the start command again instead of only
    /// extending. The stop stays scheduled: it may still have something to
    /// undo.
    pub fn forget_open(&mut self, door: &Arc<str>, src: IpAddr) {
        self.latest.remove(&(door.clone(), src));
    }

    pub fn next_due(&self) -> Option<Timestamp> {
        self.queue.keys().next().map(|(due, _)| *due)
    }

    /// Takes the earliest stop if it is due at `now`.
    pub fn pop_due(&mut self, now: Timestamp) -> Option<PendingStop> {
        let entry = self.queue.first_entry()?;
        if entry.key().0 > now {
            return None;
        }
        let key = *entry.key();
        let stop = entry.remove();
        let index_key = (stop.door.clone(), stop.src);
        if self.latest.get(&index_key) == Some(&key) {
            self.latest.remove(&index_key);
        }
        Some(stop)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PendingStop> {
        self.queue.values()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }
}
