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
    /// gone (a reload removed it) or unknown (restored from the journal: the
    /// firewall may have forgotten the rule, so the door does not count as
    /// open). The stop still runs, but nothing can extend it.
    pub door: Option<DoorId>,
    /// The door's name, for log lines and the journal.
    pub name: Arc<str>,
    pub src: IpAddr,
    /// The command with `%IP%` already substituted, exactly as it will run.
    pub command: String,
    pub due: Timestamp,
    /// The opening whose start command this stop undoes (a restored stop
    /// gets a number of its own): a stop never runs while that start is
    /// still running, and the journal knows the stop by it.
    pub open: OpenId,
}

/// Where a stop sits in the queue: its deadline, then the order stops were
/// scheduled in.
type Key = (Timestamp, u64);

/// The schedule, in deadline order, with an index by (door, source) for
/// extending an open door instead of stacking another rule, an index by
/// opening, and a count per door.
#[derive(Default)]
pub(crate) struct Stops {
    queue: BTreeMap<Key, PendingStop>,
    by_open: HashMap<OpenId, Key>,
    /// The opening (door, source) was last opened or extended by.
    latest: HashMap<(DoorId, IpAddr), OpenId>,
    per_door: HashMap<DoorId, usize>,
    seq: u64,
}

impl Stops {
    /// Schedules `stop`; an opening already scheduled is moved to the new
    /// time. The door now counts as open for the stop's source.
    pub fn add(&mut self, stop: PendingStop) {
        self.remove(stop.open);
        self.seq += 1;
        let key = (stop.due, self.seq);
        if let Some(door) = stop.door {
            self.latest.insert((door, stop.src), stop.open);
            *self.per_door.entry(door).or_default() += 1;
        }
        self.by_open.insert(stop.open, key);
        self.queue.insert(key, stop);
    }

    /// Pushes the latest pending stop of `door` for `src` to `due` and
    /// returns it; `None` when there is none (the door is not open for that
    /// source).
    pub fn extend(&mut self, door: DoorId, src: IpAddr, due: Timestamp) -> Option<PendingStop> {
        let open = *self.latest.get(&(door, src))?;
        let mut stop = self.remove(open)?;
        stop.due = stop.due.max(due);
        self.add(stop.clone());
        Some(stop)
    }

    /// Whether `door` is open for `src` (a knock would extend its stop).
    pub fn has_open(&self, door: DoorId, src: IpAddr) -> bool {
        self.latest.contains_key(&(door, src))
    }

    /// Takes the stop of opening `open` off the schedule.
    pub fn remove(&mut self, open: OpenId) -> Option<PendingStop> {
        let key = self.by_open.remove(&open)?;
        let stop = self.queue.remove(&key)?;
        self.forget(&stop);
        Some(stop)
    }

    fn forget(&mut self, stop: &PendingStop) {
        if let Some(door) = stop.door {
            if self.latest.get(&(door, stop.src)) == Some(&stop.open) {
                self.latest.remove(&(door, stop.src));
            }
            if let Some(n) = self.per_door.get_mut(&door) {
                *n -= 1;
                if *n == 0 {
                    self.per_door.remove(&door);
                }
            }
        }
    }

    /// Forgets that `door` is open for `src` when the start command of
    /// opening `open` failed, so the next knock runs the start command again
    /// instead of only extending. A later opening of the same door (its own
    /// start may have worked) is left alone. The stop stays scheduled: it
    /// may still have something to undo.
    pub fn forget_open(&mut self, door: DoorId, src: IpAddr, open: OpenId) {
        if self.latest.get(&(door, src)) == Some(&open) {
            self.latest.remove(&(door, src));
        }
    }

    /// Re-keys every stop after a reload: `map[old]` is the door's new id,
    /// or `None` when it no longer exists.
    pub fn remap(&mut self, map: &[Option<DoorId>]) {
        let mut latest: HashMap<(DoorId, IpAddr), (u64, OpenId)> = HashMap::new();
        self.per_door.clear();
        for (key, stop) in self.queue.iter_mut() {
            stop.door = stop
                .door
                .and_then(|d| map.get(d.0 as usize).copied().flatten());
            if let Some(door) = stop.door {
                *self.per_door.entry(door).or_default() += 1;
                // The stop scheduled last for (door, source) is the one a
                // knock extends.
                let entry = latest.entry((door, stop.src)).or_insert((key.1, stop.open));
                if key.1 > entry.0 {
                    *entry = (key.1, stop.open);
                }
            }
        }
        self.latest = latest.into_iter().map(|(k, (_, open))| (k, open)).collect();
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
        let stop = entry.remove();
        self.by_open.remove(&stop.open);
        self.forget(&stop);
        Some(stop)
    }

    pub fn iter(&self) -> impl Iterator<Item = &PendingStop> {
        self.queue.values()
    }

    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Stops pending for `door`.
    pub fn count(&self, door: DoorId) -> usize {
        self.per_door.get(&door).copied().unwrap_or(0)
    }
}
