//! Pending stop commands: plain data with deadlines, not a sleeping process
//! per open door (knockd 0.8's children die with the daemon and leave the
//! hole open).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::Arc;

use super::action::{DoorId, OpenId};
use crate::core::knock::Timestamp;

/// A stop command waiting for its time; what the shell journals so a
/// restarted daemon still closes the door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PendingStop {
    /// The door it closes in the running config; `None` when that door is
    /// gone (a reload removed it) or unknown (restored from the journal):
    /// the stop still runs, but nothing can extend it.
    pub door: Option<DoorId>,
    /// The door's name, for log lines and the journal.
    pub name: Arc<str>,
    pub src: IpAddr,
    /// The command with `%IP%` already substituted, exactly as it will run.
    pub command: String,
    pub due: Timestamp,
    /// The opening whose start command this stop undoes, so it never runs
    /// while that start is still running; `None` for a restored stop.
    pub open: Option<OpenId>,
}

/// The schedule, in deadline order, with an index by (door, source) for
/// extending an open door instead of stacking another rule.
#[derive(Default)]
pub(crate) struct Stops {
    queue: BTreeMap<(Timestamp, u64), PendingStop>,
    latest: HashMap<(DoorId, IpAddr), (Timestamp, u64)>,
    seq: u64,
}

impl Stops {
    pub fn add(&mut self, stop: PendingStop) {
        self.seq += 1;
        let key = (stop.due, self.seq);
        if let Some(door) = stop.door {
            self.latest.insert((door, stop.src), key);
        }
        self.queue.insert(key, stop);
    }

    /// Pushes the latest pending stop of `door` for `src` to `due`; false
    /// when there is none (the door is not open for that source).
    pub fn extend(&mut self, door: DoorId, src: IpAddr, due: Timestamp) -> bool {
        let Some(key) = self.latest.get(&(door, src)).copied() else {
            return false;
        };
        let Some(mut stop) = self.queue.remove(&key) else {
            return false;
        };
        stop.due = stop.due.max(due);
        self.add(stop);
        true
    }

    /// Forgets that `door` is open for `src` when the start command of
    /// opening `open` failed, so the next knock runs the start command again
    /// instead of only extending. A later opening of the same door (its own
    /// start may have worked) is left alone. The stop stays scheduled: it
    /// may still have something to undo.
    pub fn forget_open(&mut self, door: DoorId, src: IpAddr, open: OpenId) {
        let index_key = (door, src);
        let Some(key) = self.latest.get(&index_key) else {
            return;
        };
        if self.queue.get(key).is_some_and(|s| s.open == Some(open)) {
            self.latest.remove(&index_key);
        }
    }

    /// Re-keys every stop after a reload: `map[old]` is the door's new id,
    /// or `None` when it no longer exists.
    pub fn remap(&mut self, map: &[Option<DoorId>]) {
        self.latest.clear();
        let mut latest = HashMap::new();
        for (key, stop) in self.queue.iter_mut() {
            stop.door = stop
                .door
                .and_then(|d| map.get(d.0 as usize).copied().flatten());
            if let Some(door) = stop.door {
                // Queue order is deadline order; the index points at the
                // stop extended last, which is the latest-due one.
                let entry = latest.entry((door, stop.src)).or_insert(*key);
                if key.1 > entry.1 {
                    *entry = *key;
                }
            }
        }
        self.latest = latest;
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
        if let Some(door) = stop.door {
            let index_key = (door, stop.src);
            if self.latest.get(&index_key) == Some(&key) {
                self.latest.remove(&index_key);
            }
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
