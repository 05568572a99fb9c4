//! The table of knock attempts in progress: one entry per (source, door).
//!
//! Costs do not depend on how many sources are tracked: lookup is one hash
//! probe, timeouts are found at the heads of per-door lists kept in deadline
//! order, and eviction takes the head of a list.
//!
//! Eviction policy: when the table is full, a new attempt displaces the
//! oldest attempt that has matched only its first step. When every tracked
//! attempt has matched two or more steps, the new one is refused instead.
//! A flood of spoofed sources hitting a door's first port therefore only
//! ever displaces its own kind, and never a knocker with progress; filling
//! the table with progress takes knowing the secret, and each such attempt
//! still ends at its timeout.
//!
//! # Layout: built around cache misses
//!
//! With a million spoofed sources the table (~54 MiB) is far larger than the
//! L2 cache, so what a knock costs is the number of cache lines it touches
//! that are not there yet, and whether their addresses can be known early
//! enough to prefetch them (see [`super::Engine::handle_knocks`]). Hence
//! three arrays, each entry a fixed fraction of one 64-byte line:
//! - the index: groups of 16 entries in one line each (16 control bytes with
//!   an 8-bit tag from the hash, then 16 three-byte slot numbers), probed
//!   group by group from a home group chosen by the hash. A hit costs one
//!   index line, and a key whose tag does not match never touches the slab,
//!   so a miss (a flood of new sources) usually costs that one line alone.
//!   Its address follows from the hash, so it can be prefetched before the
//!   knock is handled. Deletion leaves a tombstone only in a group that has
//!   been full (no probe ever passed a group with an empty entry, the rule
//!   hashbrown uses), and tombstones are swept by rebuilding the index from
//!   the slab when they reach an eighth of it;
//! - the slab: 32-byte attempts (the address as 16 bytes, never straddling a
//!   line), reached from the index;
//! - the links: 16 bytes per slot for the per-door and young lists, touched
//!   only when an attempt moves between lists, so a retransmitted step (a
//!   lookup) never loads them.
//!
//! The hash is foldhash seeded at random per table, so spoofed sources
//! cannot be chosen to collide. Memory is at most `cap` slots and links
//! (48 bytes each) plus an index sized for a load of at most one half (8
//! bytes per slot of `cap`); all three grow with use up to those bounds.

mod hint;
mod index;
#[cfg(test)]
mod tests;

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::fast::RandomState;

use crate::core::knock::Timestamp;
use hint::{advise_huge_pages, prefetch};
use index::Index;

/// Index of a slab slot.
pub(crate) type SlotId = u32;

const NIL: SlotId = u32::MAX;

/// The largest table: the index stores slot numbers in three bytes.
pub(crate) const MAX_CAP: usize = 1 << 24;

/// An attempt's identity, as stored: the address as 128 bits plus whether
/// it is IPv6 (so 192.0.2.1 and ::ffff:192.0.2.1 stay different sources).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    addr: u128,
    door: u16,
    v6: bool,
}

/// One attempt: 32 bytes, aligned so it never straddles a cache line.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(32))]
pub(crate) struct Attempt {
    addr: u128,
    /// When the first step was matched; the deadline is this plus the
    /// door's `Seq_Timeout`.
    pub start: Timestamp,
    pub door: u16,
    /// Steps matched so far (1 ..= len-1 while live); 0 marks a free slot.
    pub stage: u8,
    v6: bool,
    /// Which of the door's sequences it follows (a rotating door accepts
    /// several at once); 0 for every other door.
    pub variant: u16,
}

impl Attempt {
    /// The knocker's address.
    pub fn src(&self) -> IpAddr {
        if self.v6 {
            IpAddr::V6(Ipv6Addr::from(self.addr))
        } else {
            // Stored from a u32, so the truncation is exact.
            IpAddr::V4(Ipv4Addr::from(self.addr as u32))
        }
    }

    #[inline]
    fn key(&self) -> Key {
        Key {
            addr: self.addr,
            door: self.door,
            v6: self.v6,
        }
    }
}

/// List links of one slot, kept apart from the attempt so lookups do not
/// load them.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(16))]
struct Links {
    // Per-door list in start order (so in deadline order). `dl_next` also
    // links the free list.
    dl_prev: SlotId,
    dl_next: SlotId,
    // The young list: attempts at stage 1, oldest first, across doors.
    y_prev: SlotId,
    y_next: SlotId,
}

impl Links {
    const UNLINKED: Links = Links {
        dl_prev: NIL,
        dl_next: NIL,
        y_prev: NIL,
        y_next: NIL,
    };
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

/// A key known to be absent, with its hash: what [`Attempts::insert`]
/// needs, so a miss followed by an insert hashes once.
pub(crate) struct Vacant {
    key: Key,
    hash: u64,
}

/// A knock's source address in stored form, hashed once for the lookups
/// of every door (and both prefetch stages). Only meaningful for the table
/// that made it: the hash is that table's.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Source {
    addr: u128,
    v6: bool,
    hash: u64,
}

impl Source {
    /// The hash of this source's attempt at `door`. Mixing the door in
    /// after the seeded hash keeps one hash per knock, and still sends a
    /// source's attempts at different doors to unrelated groups and tags.
    #[inline]
    fn hash_at(&self, door: u16) -> u64 {
        self.hash ^ u64::from(door).wrapping_mul(0x9E37_79B9_7F4A_7C15)
    }

    #[inline]
    fn key(&self, door: u16) -> Key {
        Key {
            addr: self.addr,
            door,
            v6: self.v6,
        }
    }
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

/// The attempt table. See the module docs for the costs and the policy.
pub(crate) struct Attempts {
    slots: Vec<Attempt>,
    links: Vec<Links>,
    /// Free slots, linked through `dl_next`.
    free: SlotId,
    index: Index,
    hasher: RandomState,
    by_door: Vec<List>,
    young: List,
    len: usize,
    cap: usize,
}

impl Attempts {
    /// A table for `doors` doors holding at most `cap` attempts (clamped to
    /// 1 ..= [`MAX_CAP`]; the config parser already refuses more).
    pub fn new(doors: usize, cap: usize) -> Self {
        let cap = cap.clamp(1, MAX_CAP);
        Attempts {
            slots: Vec::new(),
            links: Vec::new(),
            free: NIL,
            index: Index::new(cap),
            hasher: RandomState::default(),
            by_door: vec![List::EMPTY; doors],
            young: List::EMPTY,
            len: 0,
            cap,
        }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// `src` in stored form with its hash, for [`Attempts::find`].
    #[inline]
    pub fn source(&self, src: &IpAddr) -> Source {
        let (addr, v6) = match src {
            IpAddr::V4(a) => (u128::from(a.to_bits()), false),
            IpAddr::V6(a) => (a.to_bits(), true),
        };
        Source {
            addr,
            v6,
            hash: self.hash_source(addr, v6),
        }
    }

    #[inline]
    fn hash_source(&self, addr: u128, v6: bool) -> u64 {
        hash_source(&self.hasher, addr, v6)
    }

    #[inline]
    fn hash(&self, key: Key) -> u64 {
        hash_key(&self.hasher, key)
    }

    /// The live attempt of `src` at `door`, or what inserting one needs.
    #[inline]
    pub fn find(&self, src: &Source, door: u16) -> Result<SlotId, Vacant> {
        let key = src.key(door);
        let hash = src.hash_at(door);
        match self.index.find(hash, |id| {
            self.slots.get(id as usize).is_some_and(|a| a.key() == key)
        }) {
            Some(id) => Ok(id),
            None => Err(Vacant { key, hash }),
        }
    }

    /// First prefetch stage: starts loading the index line where `src`'s
    /// attempt at `door` would be found. Only a hint; changes nothing.
    #[inline]
    pub fn prefetch_index(&self, src: &Source, door: u16) {
        self.index.prefetch(src.hash_at(door));
    }

    /// Second prefetch stage, once the index line has had time to arrive:
    /// starts loading the attempt and its links that the tag points at (no
    /// key check: a wrong guess costs a wasted line, nothing else).
    #[inline]
    pub fn prefetch_attempt(&self, src: &Source, door: u16) {
        let hash = src.hash_at(door);
        if let Some(id) = self.index.first_tag_match(hash) {
            if let Some(a) = self.slots.get(id as usize) {
                prefetch(a);
            }
            if let Some(l) = self.links.get(id as usize) {
                prefetch(l);
            }
        }
    }

    pub fn get(&self, id: SlotId) -> &Attempt {
        &self.slots[id as usize]
    }

    /// The oldest attempt at `door`: the first to time out.
    pub fn oldest(&self, door: u16) -> Option<SlotId> {
        let head = self.by_door.get(door as usize)?.head;
        (head != NIL).then_some(head)
    }

    /// Starts a stage-1 attempt for a key [`Attempts::find`] found absent,
    /// making room by the policy in the module docs when the table is full.
    pub fn insert(&mut self, vacant: Vacant, start: Timestamp, variant: u16) -> Insert {
        let mut outcome = Insert::Added;
        if self.len >= self.cap {
            let victim = self.young.head;
            if victim == NIL {
                return Insert::Refused;
            }
            let a = &self.slots[victim as usize];
            outcome = Insert::Evicted {
                src: a.src(),
                door: a.door,
            };
            self.remove(victim);
            // A flood evicts at every knock: the next victims' lines are
            // asked for now, so the next eviction does not wait for them.
            self.warm(self.young.head, |l| l.y_next);
        }
        // Before the new attempt is in the slab: a rebuild indexes the slab.
        self.make_index_room();
        let Vacant { key, hash } = vacant;
        let attempt = Attempt {
            addr: key.addr,
            start,
            door: key.door,
            stage: 1,
            v6: key.v6,
            variant,
        };
        let id = if self.free != NIL {
            let id = self.free;
            self.free = self.links[id as usize].dl_next;
            self.slots[id as usize] = attempt;
            self.links[id as usize] = Links::UNLINKED;
            id
        } else {
            grow_exact(&mut self.slots, self.cap);
            grow_exact(&mut self.links, self.cap);
            self.slots.push(attempt);
            self.links.push(Links::UNLINKED);
            (self.slots.len() - 1) as SlotId
        };
        self.index.insert(hash, id);
        self.push_door(id);
        self.push_young(id);
        self.len += 1;
        outcome
    }

    /// Grows the index, or sweeps its tombstones, before an insert needs it.
    fn make_index_room(&mut self) {
        if let Some(groups) = self.index.needs_rebuild() {
            let hasher = &self.hasher;
            let hashes = self
                .slots
                .iter()
                .enumerate()
                .filter(|(_, a)| a.stage != 0)
                .map(|(id, a)| (hash_key(hasher, a.key()), id as SlotId));
            self.index.rebuild(groups, hashes);
        }
    }

    /// Moves an attempt one step on. Leaving stage 1 takes it off the young
    /// list, which is what protects it from eviction by a flood.
    pub fn advance(&mut self, id: SlotId) {
        let a = &mut self.slots[id as usize];
        a.stage = a.stage.saturating_add(1);
        if a.stage == 2 {
            self.unlink_young(id);
        }
    }

    /// The attempt follows another of its door's sequences from now on,
    /// one with the same steps so far (a door of users: two users'
    /// sequences may begin alike).
    pub fn set_variant(&mut self, id: SlotId, variant: u16) {
        self.slots[id as usize].variant = variant;
    }

    /// Starts the attempt over at stage 1 from `now` (its first step came
    /// again): it moves to the back of both lists.
    pub fn restart(&mut self, id: SlotId, now: Timestamp, variant: u16) {
        if self.slots[id as usize].stage == 1 {
            self.unlink_young(id);
        }
        self.unlink_door(id);
        let a = &mut self.slots[id as usize];
        a.stage = 1;
        a.start = now;
        a.variant = variant;
        self.push_door(id);
        self.push_young(id);
    }

    pub fn remove(&mut self, id: SlotId) {
        let a = &self.slots[id as usize];
        if a.stage == 0 {
            return;
        }
        let stage = a.stage;
        let hash = self.hash(a.key());
        self.index.remove(hash, id);
        if stage == 1 {
            self.unlink_young(id);
        }
        self.unlink_door(id);
        self.slots[id as usize].stage = 0;
        self.links[id as usize].dl_next = self.free;
        self.free = id;
        self.len -= 1;
    }

    /// Asks for the lines the next removals at the head of a list will
    /// touch, after `head`'s predecessor left it (`next` follows the
    /// list). Removals at the head come in runs (a flood's evictions, a
    /// burst of timeouts), and each would otherwise wait for three or four
    /// lines from memory in turn; a list can only be walked a line at a
    /// time, so the walk runs ahead of the removals: the one after `head`
    /// gets its index line (which needs its key, asked for one removal
    /// earlier), the one after that its attempt and links. Only hints.
    #[inline]
    fn warm(&self, head: SlotId, next: impl Fn(&Links) -> SlotId) {
        let Some(l) = self.links.get(head as usize) else {
            return;
        };
        let second = next(l) as usize;
        let (Some(a), Some(l)) = (self.slots.get(second), self.links.get(second)) else {
            return;
        };
        self.index.prefetch(self.hash(a.key()));
        let third = next(l) as usize;
        if let (Some(a), Some(l)) = (self.slots.get(third), self.links.get(third)) {
            prefetch(a);
            prefetch(l);
        }
    }

    /// [`Attempts::warm`] for the head of `door`'s list, after a timeout
    /// removed the one before it.
    pub fn warm_door(&self, door: u16) {
        if let Some(list) = self.by_door.get(door as usize) {
            self.warm(list.head, |l| l.dl_next);
        }
    }

    /// Removes every attempt at `door` (its sequence changed).
    pub fn clear_door(&mut self, door: u16) {
        while let Some(id) = self.oldest(door) {
            self.remove(id);
        }
    }

    /// Renumbers the variants of `door`'s attempts with `map` (`map[old]`,
    /// `None`: that sequence is gone, and so are its attempts). O(attempts
    /// of the door), once per change of its sequences.
    pub fn remap_variants(&mut self, door: u16, map: &[Option<u16>]) {
        let mut id = self.oldest(door).unwrap_or(NIL);
        while id != NIL {
            let next = self.links[id as usize].dl_next;
            let old = self.slots[id as usize].variant as usize;
            match map.get(old).copied().flatten() {
                Some(v) => self.slots[id as usize].variant = v,
                None => self.remove(id),
            }
            id = next;
        }
    }

    fn push_door(&mut self, id: SlotId) {
        let door = self.slots[id as usize].door as usize;
        let tail = self.by_door[door].tail;
        let l = &mut self.links[id as usize];
        l.dl_prev = tail;
        l.dl_next = NIL;
        if tail == NIL {
            self.by_door[door].head = id;
        } else {
            self.links[tail as usize].dl_next = id;
        }
        self.by_door[door].tail = id;
    }

    fn unlink_door(&mut self, id: SlotId) {
        let door = self.slots[id as usize].door as usize;
        let Links {
            dl_prev: prev,
            dl_next: next,
            ..
        } = self.links[id as usize];
        if prev == NIL {
            self.by_door[door].head = next;
        } else {
            self.links[prev as usize].dl_next = next;
        }
        if next == NIL {
            self.by_door[door].tail = prev;
        } else {
            self.links[next as usize].dl_prev = prev;
        }
    }

    fn push_young(&mut self, id: SlotId) {
        let tail = self.young.tail;
        let l = &mut self.links[id as usize];
        l.y_prev = tail;
        l.y_next = NIL;
        if tail == NIL {
            self.young.head = id;
        } else {
            self.links[tail as usize].y_next = id;
        }
        self.young.tail = id;
    }

    fn unlink_young(&mut self, id: SlotId) {
        let Links {
            y_prev: prev,
            y_next: next,
            ..
        } = self.links[id as usize];
        if prev == NIL {
            self.young.head = next;
        } else {
            self.links[prev as usize].y_next = next;
        }
        if next == NIL {
            self.young.tail = prev;
        } else {
            self.links[next as usize].y_prev = prev;
        }
    }

    /// Bytes held by the table, for `--status`-style reporting and the
    /// memory-bound test: everything it allocates.
    pub fn memory_bytes(&self) -> usize {
        self.slots.capacity() * size_of::<Attempt>()
            + self.links.capacity() * size_of::<Links>()
            + self.index.memory_bytes()
            + self.by_door.capacity() * size_of::<List>()
    }
}

#[inline]
fn hash_source(hasher: &RandomState, addr: u128, v6: bool) -> u64 {
    let mut h = hasher.build_hasher();
    h.write_u128(addr);
    h.write_u8(u8::from(v6));
    h.finish()
}

/// The hash of a stored key, as [`Source::hash_at`] computes it.
#[inline]
fn hash_key(hasher: &RandomState, key: Key) -> u64 {
    let src = Source {
        addr: key.addr,
        v6: key.v6,
        hash: hash_source(hasher, key.addr, key.v6),
    };
    src.hash_at(key.door)
}

/// Makes room for one more push, growing by doubling but never past `cap`
/// elements, so a full table holds exactly `cap` slots rather than the next
/// power of two.
fn grow_exact<T>(v: &mut Vec<T>, cap: usize) {
    if v.len() == v.capacity() {
        let extra = v.capacity().max(64).min(cap.saturating_sub(v.len()).max(1));
        v.reserve_exact(extra);
        advise_huge_pages(v);
    }
}
