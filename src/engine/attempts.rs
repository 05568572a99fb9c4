//! The table of knock attempts in progress: one entry per (source, door).
//!
//! Costs do not depend on how many sources are tracked: lookup is one hash
//! probe, timeouts are found at the heads of per-door lists kept in deadline
//! order, and eviction takes the head of a list. Memory is a fixed-size slab
//! (at most `cap` entries, about 48 bytes each) plus the hash index.
//!
//! Eviction policy: when the table is full, a new attempt displaces the
//! oldest attempt that has matched only its first step. When every tracked
//! attempt has matched two or more steps, the new one is refused instead.
//! A flood of spoofed sources hitting a door's first port therefore only
//! ever displaces its own kind, and never a knocker with progress; filling
//! the table with progress takes knowing the secret, and each such attempt
//! still ends at its timeout.

use std::net::IpAddr;

use foldhash::fast::RandomState;
use hashbrown::HashTable;
use std::hash::BuildHasher;

use crate::knock::Timestamp;

/// Index of a slab slot.
pub(crate) type SlotId = u32;

const NIL: SlotId = u32::MAX;

/// One attempt.
#[derive(Debug, Clone)]
pub(crate) struct Attempt {
    pub src: IpAddr,
    pub door: u16,
    /// Steps matched so far (1 ..= len-1 while live).
    pub stage: u8,
    /// When the first step was matched; the deadline is this plus the
    /// door's `Seq_Timeout`.
    pub start: Timestamp,
    // Per-door list in start order (so in deadline order).
    dl_prev: SlotId,
    dl_next: SlotId,
    // The young list: attempts at stage 1, oldest first, across doors.
    y_prev: SlotId,
    y_next: SlotId,
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: SlotId,
    tail: SlotId,
}

impl List {
    const EMPTY: List = List {
        head: NIL,
        tail: NIL,
    };
}

/// The attempt table. See the module docs for the costs and the policy.
pub(crate) struct Attempts {
    slots: Vec<Attempt>,
    /// Free slots, linked through `dl_next`.
    free: SlotId,
    index: HashTable<SlotId>,
    hasher: RandomState,
    by_door: Vec<List>,
    young: List,
    len: usize,
    cap: usize,
}

/// What [`Attempts::insert`] did.
pub(crate) enum Insert {
    Added,
    /// Added, after dropping this stage-1 attempt to make room.
    Evicted {
        src: IpAddr,
        door: u16,
    },
    /// Not added: the table is full of attempts with progress.
    Refused,
}

impl Attempts {
    /// A table for `doors` doors holding at most `cap` attempts.
    pub fn new(doors: usize, cap: usize) -> Self {
        Attempts {
            slots: Vec::new(),
            free: NIL,
            index: HashTable::new(),
            hasher: RandomState::default(),
            by_door: vec![List::EMPTY; doors],
            young: List::EMPTY,
            len: 0,
            cap: cap.max(1),
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    fn hash(&self, src: IpAddr, door: u16) -> u64 {
        self.hasher.hash_one((src, door))
    }

    /// The live attempt of `src` at `door`.
    #[inline]
    pub fn find(&self, src: IpAddr, door: u16) -> Option<SlotId> {
        let hash = self.hash(src, door);
        let slots = &self.slots;
        self.index
            .find(hash, |&id| {
                let a = &slots[id as usize];
                a.door == door && a.src == src
            })
            .copied()
    }

    pub fn get(&self, id: SlotId) -> &Attempt {
        &self.slots[id as usize]
    }

    /// The oldest attempt at `door`: the first to time out.
    pub fn oldest(&self, door: u16) -> Option<SlotId> {
        let head = self.by_door[door as usize].head;
        (head != NIL).then_some(head)
    }

    /// Starts a stage-1 attempt (caller checked there is none), making room
    /// by the policy in the module docs when the table is full.
    pub fn insert(&mut self, src: IpAddr, door: u16, start: Timestamp) -> Insert {
        let mut outcome = Insert::Added;
        if self.len >= self.cap {
            let victim = self.young.head;
            if victim == NIL {
                return Insert::Refused;
            }
            let a = &self.slots[victim as usize];
            outcome = Insert::Evicted {
                src: a.src,
                door: a.door,
            };
            self.remove(victim);
        }
        let attempt = Attempt {
            src,
            door,
            stage: 1,
            start,
            dl_prev: NIL,
            dl_next: NIL,
            y_prev: NIL,
            y_next: NIL,
        };
        let id = if self.free != NIL {
            let id = self.free;
            self.free = self.slots[id as usize].dl_next;
            self.slots[id as usize] = attempt;
            id
        } else {
            self.slots.push(attempt);
            (self.slots.len() - 1) as SlotId
        };
        let hash = self.hash(src, door);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert_unique(hash, id, |&other| {
            let a = &slots[other as usize];
            hasher.hash_one((a.src, a.door))
        });
        self.push_door(id);
        self.push_young(id);
        self.len += 1;
        outcome
    }

    /// Moves an attempt one step on. Leaving stage 1 takes it off the young
    /// list, which is what protects it from eviction by a flood.
    pub fn advance(&mut self, id: SlotId) {
        let a = &mut self.slots[id as usize];
        a.stage += 1;
        if a.stage == 2 {
            self.unlink_young(id);
        }
    }

    /// Starts the attempt over at stage 1 from `now` (its first step came
    /// again): it moves to the back of both lists.
    pub fn restart(&mut self, id: SlotId, now: Timestamp) {
        if self.slots[id as usize].stage == 1 {
            self.unlink_young(id);
        }
        self.unlink_door(id);
        let a = &mut self.slots[id as usize];
        a.stage = 1;
        a.start = now;
        self.push_door(id);
        self.push_young(id);
    }

    pub fn remove(&mut self, id: SlotId) {
        let a = &self.slots[id as usize];
        let (src, door, stage) = (a.src, a.door, a.stage);
        let hash = self.hash(src, door);
        if let Ok(entry) = self.index.find_entry(hash, |&other| other == id) {
            entry.remove();
        }
        if stage == 1 {
            self.unlink_young(id);
        }
        self.unlink_door(id);
        let a = &mut self.slots[id as usize];
        a.dl_next = self.free;
        a.stage = 0;
        self.free = id;
        self.len -= 1;
    }

    /// Removes every attempt at `door` (its sequence changed).
    pub fn clear_door(&mut self, door: u16) {
        while let Some(id) = self.oldest(door) {
            self.remove(id);
        }
    }

    fn push_door(&mut self, id: SlotId) {
        let door = self.slots[id as usize].door as usize;
        let tail = self.by_door[door].tail;
        {
            let a = &mut self.slots[id as usize];
            a.dl_prev = tail;
            a.dl_next = NIL;
        }
        if tail == NIL {
            self.by_door[door].head = id;
        } else {
            self.slots[tail as usize].dl_next = id;
        }
        self.by_door[door].tail = id;
    }

    fn unlink_door(&mut self, id: SlotId) {
        let (door, prev, next) = {
            let a = &self.slots[id as usize];
            (a.door as usize, a.dl_prev, a.dl_next)
        };
        if prev == NIL {
            self.by_door[door].head = next;
        } else {
            self.slots[prev as usize].dl_next = next;
        }
        if next == NIL {
            self.by_door[door].tail = prev;
        } else {
            self.slots[next as usize].dl_prev = prev;
        }
    }

    fn push_young(&mut self, id: SlotId) {
        let tail = self.young.tail;
        {
            let a = &mut self.slots[id as usize];
            a.y_prev = tail;
            a.y_next = NIL;
        }
        if tail == NIL {
            self.young.head = id;
        } else {
            self.slots[tail as usize].y_next = id;
        }
        self.young.tail = id;
    }

    fn unlink_young(&mut self, id: SlotId) {
        let (prev, next) = {
            let a = &self.slots[id as usize];
            (a.y_prev, a.y_next)
        };
        if prev == NIL {
            self.young.head = next;
        } else {
            self.slots[prev as usize].y_next = next;
        }
        if next == NIL {
            self.young.tail = prev;
        } else {
            self.slots[next as usize].y_prev = prev;
        }
    }

    /// Bytes held by the table, for `--status`-style reporting and the
    /// memory-bound test.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * std::mem::size_of::<Attempt>()
            + self.index.capacity() * (std::mem::size_of::<SlotId>() + 1)
            + self.by_door.capacity() * std::mem::size_of::<List>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n)) // 198.51.100.0 + n
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    #[test]
    fn insert_find_remove_reuses_slots() {
        let mut a = Attempts::new(2, 10);
        assert!(matches!(a.insert(ip(1), 0, t(0)), Insert::Added));
        assert!(matches!(a.insert(ip(1), 1, t(1)), Insert::Added));
        let id = a.find(ip(1), 0).unwrap();
        assert_eq!(a.get(id).door, 0);
        assert_eq!(a.find(ip(2), 0), None);
        a.remove(id);
        assert_eq!(a.find(ip(1), 0), None);
        assert_eq!(a.len(), 1);
        a.insert(ip(3), 0, t(2));
        assert_eq!(a.find(ip(3), 0), Some(id), "freed slot is reused");
    }

    #[test]
    fn door_list_is_in_start_order_and_restart_moves_to_back() {
        let mut a = Attempts::new(1, 10);
        for n in 0..3 {
            a.insert(ip(n), 0, t(n as u64));
        }
        assert_eq!(a.get(a.oldest(0).unwrap()).src, ip(0));
        let first = a.find(ip(0), 0).unwrap();
        a.restart(first, t(10));
        assert_eq!(a.get(a.oldest(0).unwrap()).src, ip(1));
        a.clear_door(0);
        assert_eq!(a.len(), 0);
        assert_eq!(a.oldest(0), None);
    }

    #[test]
    fn a_flood_of_first_steps_never_evicts_progress() {
        let mut a = Attempts::new(1, 4);
        a.insert(ip(0), 0, t(0));
        let keep = a.find(ip(0), 0).unwrap();
        a.advance(keep); // stage 2: protected
        for n in 1..1000 {
            match a.insert(ip(n), 0, t(n as u64)) {
                Insert::Evicted { src, .. } => assert_ne!(src, ip(0)),
                Insert::Added => assert!(n < 4),
                Insert::Refused => panic!("young attempts were there to evict"),
            }
            assert!(a.len() <= 4);
        }
        assert_eq!(a.find(ip(0), 0), Some(keep));
        assert_eq!(a.get(keep).stage, 2);
    }

    #[test]
    fn refuses_new_attempts_when_all_have_progress() {
        let mut a = Attempts::new(2, 2);
        a.insert(ip(0), 0, t(5));
        a.insert(ip(1), 1, t(3));
        for n in 0..2 {
            let id = a.find(ip(n), n as u16).unwrap();
            a.advance(id);
        }
        assert!(matches!(a.insert(ip(9), 0, t(9)), Insert::Refused));
        assert_eq!(a.len(), 2);
        assert_eq!(a.find(ip(9), 0), None);
        // Once one finishes, there is room again.
        a.remove(a.find(ip(0), 0).unwrap());
        assert!(matches!(a.insert(ip(9), 0, t(9)), Insert::Added));
    }
}
