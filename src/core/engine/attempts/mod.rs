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

use std::hash::{BuildHasher, Hasher};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use foldhash::fast::RandomState;

use crate::core::knock::Timestamp;
use hint::{advise_huge_pages, prefetch};

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
    pub fn insert(&mut self, vacant: Vacant, start: Timestamp) -> Insert {
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

    /// Removes every attempt at `door` (its sequence changed).
    pub fn clear_door(&mut self, door: u16) {
        while let Some(id) = self.oldest(door) {
            self.remove(id);
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

/// Entries per index group: one 64-byte cache line.
const GROUP: usize = 16;
/// Control byte of an entry never used since the last rebuild.
const EMPTY: u8 = 0xFF;
/// Control byte of a deleted entry in a group that has been full.
const DELETED: u8 = 0xFE;

/// Sixteen index entries in one cache line: control bytes (a tag from the
/// hash, or EMPTY / DELETED), then the slot numbers, three bytes each.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
struct Group {
    ctrl: [u8; GROUP],
    ids: [[u8; 3]; GROUP],
}

impl Group {
    const EMPTY: Group = Group {
        ctrl: [EMPTY; GROUP],
        ids: [[0; 3]; GROUP],
    };

    #[inline]
    fn ctrl_word(&self) -> u128 {
        u128::from_le_bytes(self.ctrl)
    }

    #[inline]
    fn id(&self, i: usize) -> SlotId {
        let [a, b, c] = self.ids[i];
        u32::from_le_bytes([a, b, c, 0])
    }

    #[inline]
    fn set(&mut self, i: usize, ctrl: u8, id: SlotId) {
        let [a, b, c, _] = id.to_le_bytes();
        self.ctrl[i] = ctrl;
        self.ids[i] = [a, b, c];
    }
}

/// One bit (0x80) in each byte of `word` equal to `byte`, exactly (the
/// classic SWAR zero-byte test, without its false positives).
#[inline]
fn match_byte(word: u128, byte: u8) -> u128 {
    const LO7: u128 = u128::from_le_bytes([0x7F; GROUP]);
    let x = word ^ u128::from_le_bytes([byte; GROUP]);
    !(((x & LO7) + LO7) | x | LO7)
}

/// Bits (0x80 per byte) of entries free for an insert: EMPTY or DELETED.
#[inline]
fn match_free(word: u128) -> u128 {
    const HI: u128 = u128::from_le_bytes([0x80; GROUP]);
    // Both free markers are >= 0xFE: bytes with all of the top seven bits.
    match_byte(word | u128::from_le_bytes([0x01; GROUP]), EMPTY) & HI
}

/// Position of the lowest set match bit as an entry number.
#[inline]
fn first(m: u128) -> usize {
    (m.trailing_zeros() / 8) as usize
}

/// The tag kept in the control byte: eight bits of the hash not used to
/// pick the group, folded off the two marker values.
#[inline]
fn tag(hash: u64) -> u8 {
    let t = hash as u8;
    if t >= DELETED {
        t & 0x7F
    } else {
        t
    }
}

/// The hash index: slot numbers by key hash. See the module docs.
struct Index {
    groups: Vec<Group>,
    /// Group count when the table is full: a load of at most one half.
    max_groups: usize,
    items: usize,
    tombs: usize,
}

impl Index {
    fn new(cap: usize) -> Index {
        Index {
            groups: vec![Group::EMPTY],
            max_groups: cap.div_ceil(GROUP / 2).max(1),
            items: 0,
            tombs: 0,
        }
    }

    /// The group a hash starts probing at: the high bits of the hash
    /// scaled to the group count (any count works, not just powers of two).
    #[inline]
    fn home(&self, hash: u64) -> usize {
        ((u128::from(hash) * self.groups.len() as u128) >> 64) as usize
    }

    #[inline]
    fn prefetch(&self, hash: u64) {
        if let Some(g) = self.groups.get(self.home(hash)) {
            prefetch(g);
        }
    }

    /// The first entry of the home group whose tag matches, if any.
    #[inline]
    fn first_tag_match(&self, hash: u64) -> Option<SlotId> {
        let g = self.groups.get(self.home(hash))?;
        let m = match_byte(g.ctrl_word(), tag(hash));
        (m != 0).then(|| g.id(first(m)))
    }

    /// Probes group by group from home for an entry whose tag matches and
    /// that `is` accepts. A group with an EMPTY entry ends the search: no
    /// insert ever passed it.
    #[inline]
    fn find(&self, hash: u64, mut is: impl FnMut(SlotId) -> bool) -> Option<SlotId> {
        let tag = tag(hash);
        let n = self.groups.len();
        let mut g = self.home(hash);
        for _ in 0..n {
            let group = &self.groups[g];
            let w = group.ctrl_word();
            let mut m = match_byte(w, tag);
            while m != 0 {
                let id = group.id(first(m));
                if is(id) {
                    return Some(id);
                }
                m &= m - 1;
            }
            if match_byte(w, EMPTY) != 0 {
                return None;
            }
            g = if g + 1 == n { 0 } else { g + 1 };
        }
        None
    }

    /// Adds an entry (the caller checked the key is absent and made room).
    fn insert(&mut self, hash: u64, id: SlotId) {
        let n = self.groups.len();
        let mut g = self.home(hash);
        for _ in 0..n {
            let group = &mut self.groups[g];
            let m = match_free(group.ctrl_word());
            if m != 0 {
                let i = first(m);
                if group.ctrl[i] == DELETED {
                    self.tombs -= 1;
                }
                group.set(i, tag(hash), id);
                self.items += 1;
                return;
            }
            g = if g + 1 == n { 0 } else { g + 1 };
        }
        // Unreachable: the load is kept at most one half.
        debug_assert!(false, "attempt index full");
    }

    /// Drops the entry for slot `id`, whose key hashes to `hash`.
    fn remove(&mut self, hash: u64, id: SlotId) {
        let tag = tag(hash);
        let n = self.groups.len();
        let mut g = self.home(hash);
        for _ in 0..n {
            let group = &mut self.groups[g];
            let w = group.ctrl_word();
            let mut m = match_byte(w, tag);
            while m != 0 {
                let i = first(m);
                if group.id(i) == id {
                    // A group with an empty entry was never full, so no
                    // probe continues past it: the entry can be empty too.
                    if match_byte(w, EMPTY) != 0 {
                        group.ctrl[i] = EMPTY;
                    } else {
                        group.ctrl[i] = DELETED;
                        self.tombs += 1;
                    }
                    self.items -= 1;
                    return;
                }
                m &= m - 1;
            }
            if match_byte(w, EMPTY) != 0 {
                return;
            }
            g = if g + 1 == n { 0 } else { g + 1 };
        }
    }

    /// The group count to rebuild at before one more insert: more groups
    /// while below the final size and over half full, the same count when
    /// tombstones reach an eighth of the entries.
    fn needs_rebuild(&self) -> Option<usize> {
        let n = self.groups.len();
        if (self.items + 1) * 2 > n * GROUP && n < self.max_groups {
            Some((n * 2).min(self.max_groups))
        } else if self.tombs * 8 > n * GROUP {
            Some(n)
        } else {
            None
        }
    }

    fn rebuild(&mut self, groups: usize, entries: impl Iterator<Item = (u64, SlotId)>) {
        if groups == self.groups.len() {
            self.groups.fill(Group::EMPTY);
        } else {
            // Drop the old index first so the peak is the new size only.
            self.groups = Vec::new();
            self.groups = vec![Group::EMPTY; groups];
            advise_huge_pages(&self.groups);
        }
        self.items = 0;
        self.tombs = 0;
        for (hash, id) in entries {
            self.insert(hash, id);
        }
    }

    fn memory_bytes(&self) -> usize {
        self.groups.capacity() * size_of::<Group>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;
    use std::net::Ipv4Addr;

    fn ip(n: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n)) // 198.51.100.0 + n
    }

    fn t(ms: u64) -> Timestamp {
        Timestamp::from_nanos(ms * 1_000_000)
    }

    fn find(a: &Attempts, src: IpAddr, door: u16) -> Option<SlotId> {
        a.find(&a.source(&src), door).ok()
    }

    fn insert(a: &mut Attempts, src: IpAddr, door: u16, at: Timestamp) -> Insert {
        match a.find(&a.source(&src), door) {
            Ok(_) => panic!("already there"),
            Err(v) => a.insert(v, at),
        }
    }

    #[test]
    fn layout_is_what_the_docs_promise() {
        assert_eq!(size_of::<Attempt>(), 32);
        assert_eq!(size_of::<Links>(), 16);
        assert_eq!(size_of::<Group>(), 64);
    }

    #[test]
    fn swar_matching_is_exact() {
        let mut ctrl = [0u8; GROUP];
        for (i, c) in ctrl.iter_mut().enumerate() {
            *c = [0x00, 0x01, 0x80, 0x7F, EMPTY, DELETED, 0xFD][i % 7];
        }
        let w = u128::from_le_bytes(ctrl);
        for byte in [0x00, 0x01, 0x80, 0x7F, EMPTY, DELETED, 0xFD, 0x42] {
            let m = match_byte(w, byte);
            for (i, &c) in ctrl.iter().enumerate() {
                assert_eq!(
                    m >> (i * 8 + 7) & 1 == 1,
                    c == byte,
                    "byte {byte:#x} at {i}"
                );
            }
        }
        let free = match_free(w);
        for (i, &c) in ctrl.iter().enumerate() {
            assert_eq!(free >> (i * 8 + 7) & 1 == 1, c >= DELETED, "free at {i}");
        }
    }

    #[test]
    fn v4_and_v4_mapped_v6_are_different_sources() {
        let v4: IpAddr = "192.0.2.1".parse().unwrap();
        let mapped: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        let mut a = Attempts::new(1, 10);
        insert(&mut a, v4, 0, t(0));
        assert_eq!(find(&a, mapped, 0), None);
        insert(&mut a, mapped, 0, t(1));
        assert_eq!(a.get(find(&a, v4, 0).unwrap()).src(), v4);
        assert_eq!(a.get(find(&a, mapped, 0).unwrap()).src(), mapped);
    }

    #[test]
    fn insert_find_remove_reuses_slots() {
        let mut a = Attempts::new(2, 10);
        assert!(matches!(insert(&mut a, ip(1), 0, t(0)), Insert::Added));
        assert!(matches!(insert(&mut a, ip(1), 1, t(1)), Insert::Added));
        let id = find(&a, ip(1), 0).unwrap();
        assert_eq!(a.get(id).door, 0);
        assert_eq!(find(&a, ip(2), 0), None);
        a.remove(id);
        assert_eq!(find(&a, ip(1), 0), None);
        assert_eq!(a.len(), 1);
        insert(&mut a, ip(3), 0, t(2));
        assert_eq!(find(&a, ip(3), 0), Some(id), "freed slot is reused");
    }

    #[test]
    fn door_list_is_in_start_order_and_restart_moves_to_back() {
        let mut a = Attempts::new(1, 10);
        for n in 0..3 {
            insert(&mut a, ip(n), 0, t(n as u64));
        }
        assert_eq!(a.get(a.oldest(0).unwrap()).src(), ip(0));
        let first = find(&a, ip(0), 0).unwrap();
        a.restart(first, t(10));
        assert_eq!(a.get(a.oldest(0).unwrap()).src(), ip(1));
        a.clear_door(0);
        assert_eq!(a.len(), 0);
        assert_eq!(a.oldest(0), None);
    }

    #[test]
    fn a_flood_of_first_steps_never_evicts_progress() {
        let mut a = Attempts::new(1, 4);
        insert(&mut a, ip(0), 0, t(0));
        let keep = find(&a, ip(0), 0).unwrap();
        a.advance(keep); // stage 2: protected
        for n in 1..1000 {
            match insert(&mut a, ip(n), 0, t(n as u64)) {
                Insert::Evicted { src, .. } => assert_ne!(src, ip(0)),
                Insert::Added => assert!(n < 4),
                Insert::Refused => panic!("young attempts were there to evict"),
            }
            assert!(a.len() <= 4);
        }
        assert_eq!(find(&a, ip(0), 0), Some(keep));
        assert_eq!(a.get(keep).stage, 2);
    }

    #[test]
    fn refuses_new_attempts_when_all_have_progress() {
        let mut a = Attempts::new(2, 2);
        insert(&mut a, ip(0), 0, t(5));
        insert(&mut a, ip(1), 1, t(3));
        for n in 0..2 {
            let id = find(&a, ip(n), n as u16).unwrap();
            a.advance(id);
        }
        assert!(matches!(insert(&mut a, ip(9), 0, t(9)), Insert::Refused));
        assert_eq!(a.len(), 2);
        assert_eq!(find(&a, ip(9), 0), None);
        // Once one finishes, there is room again.
        a.remove(find(&a, ip(0), 0).unwrap());
        assert!(matches!(insert(&mut a, ip(9), 0, t(9)), Insert::Added));
    }

    #[test]
    fn memory_is_bounded_by_the_cap() {
        let cap = 100_000;
        let mut a = Attempts::new(1, cap);
        for n in 0..3 * cap as u32 {
            insert(&mut a, ip(n), 0, t(u64::from(n)));
        }
        assert_eq!(a.len(), cap);
        assert_eq!(a.slots.capacity(), cap);
        // 48 bytes of slot and links, 8 of index, per attempt.
        assert!(a.memory_bytes() <= cap * 57, "{}", a.memory_bytes());
    }

    /// Churn through a small index (growth, full groups, tombstones and
    /// rebuilds) against a plain map, and check the lists stay in order.
    #[test]
    fn index_agrees_with_a_model_under_churn() {
        let cap = 300;
        let mut a = Attempts::new(3, cap);
        let mut model: HashMap<(IpAddr, u16), (u8, Timestamp)> = HashMap::new();
        let mut rng = 0x2545_F491_4F6C_DD1Du64;
        let mut next = || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut saw_tombs, mut swept) = (false, false);
        for step in 0..200_000u64 {
            let r = next();
            let src = ip((r % 700) as u32);
            let door = ((r >> 20) % 3) as u16;
            let now = t(step);
            match (find(&a, src, door), model.get(&(src, door)).copied()) {
                (Some(id), Some((stage, start))) => {
                    let at = a.get(id);
                    assert_eq!((at.stage, at.start, at.src()), (stage, start, src));
                    match (r >> 40) % 3 {
                        0 => {
                            a.remove(id);
                            model.remove(&(src, door));
                        }
                        1 => {
                            a.advance(id);
                            model.insert((src, door), (stage + 1, start));
                        }
                        _ => {
                            a.restart(id, now);
                            model.insert((src, door), (1, now));
                        }
                    }
                }
                (None, None) => match insert(&mut a, src, door, now) {
                    Insert::Added => {
                        model.insert((src, door), (1, now));
                    }
                    Insert::Evicted { src: s, door: d } => {
                        // The oldest stage-1 attempt, whatever its door.
                        let oldest = model.values().filter(|e| e.0 == 1).map(|e| e.1).min();
                        let gone = model.remove(&(s, d));
                        assert_eq!(gone.map(|e| e.0), Some(1));
                        assert_eq!(gone.map(|e| e.1), oldest);
                        model.insert((src, door), (1, now));
                    }
                    Insert::Refused => {
                        assert!(model.values().all(|e| e.0 >= 2));
                    }
                },
                (found, expected) => panic!("step {step}: {found:?} vs {expected:?}"),
            }
            assert_eq!(a.len(), model.len());
            assert_eq!(a.index.items, a.len());
            saw_tombs |= a.index.tombs > 0;
            swept |= saw_tombs && a.index.tombs == 0;
            if step % 1000 == 0 {
                for d in 0..3 {
                    let mut id = a.by_door[d as usize].head;
                    let mut last = Timestamp::ZERO;
                    let mut n = 0;
                    while id != NIL {
                        let at = a.get(id);
                        assert!(at.start >= last, "door list out of order");
                        last = at.start;
                        n += 1;
                        id = a.links[id as usize].dl_next;
                    }
                    assert_eq!(n, model.keys().filter(|k| k.1 == d).count());
                }
            }
        }
        assert!(saw_tombs && swept, "tombstones never made or swept");
        assert!(a.memory_bytes() <= cap * 57 + 64 * 8);
    }
}
