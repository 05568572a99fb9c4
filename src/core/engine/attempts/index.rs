//! The attempt table's hash index: a swiss table of 16-entry groups, one
//! cache line each, mapping a key's hash to a slab slot number. It is kept
//! apart from the slab and the lists because it is the one structure every
//! knock touches, so its layout decides what a flood costs (see the parent
//! module's docs). It must not look at keys or attempts: it stores only tags
//! and slot numbers, and callers confirm a candidate slot against the slab,
//! so a tag collision can never be taken for a match.

use super::hint::{advise_huge_pages, prefetch};
use super::SlotId;

/// Entries per index group: one 64-byte cache line.
pub(super) const GROUP: usize = 16;
/// Control byte of an entry never used since the last rebuild.
pub(super) const EMPTY: u8 = 0xFF;
/// Control byte of a deleted entry in a group that has been full.
pub(super) const DELETED: u8 = 0xFE;

/// Sixteen index entries in one cache line: control bytes (a tag from the
/// hash, or EMPTY / DELETED), then the slot numbers, three bytes each.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub(super) struct Group {
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
pub(super) fn match_byte(word: u128, byte: u8) -> u128 {
    const LO7: u128 = u128::from_le_bytes([0x7F; GROUP]);
    let x = word ^ u128::from_le_bytes([byte; GROUP]);
    !(((x & LO7) + LO7) | x | LO7)
}

/// Bits (0x80 per byte) of entries free for an insert: EMPTY or DELETED.
#[inline]
pub(super) fn match_free(word: u128) -> u128 {
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
pub(super) struct Index {
    groups: Vec<Group>,
    /// Group count when the table is full: a load of at most one half.
    max_groups: usize,
    pub(super) items: usize,
    pub(super) tombs: usize,
}

impl Index {
    pub(super) fn new(cap: usize) -> Index {
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
    pub(super) fn prefetch(&self, hash: u64) {
        if let Some(g) = self.groups.get(self.home(hash)) {
            prefetch(g);
        }
    }

    /// The first entry of the home group whose tag matches, if any.
    #[inline]
    pub(super) fn first_tag_match(&self, hash: u64) -> Option<SlotId> {
        let g = self.groups.get(self.home(hash))?;
        let m = match_byte(g.ctrl_word(), tag(hash));
        (m != 0).then(|| g.id(first(m)))
    }

    /// Probes group by group from home for an entry whose tag matches and
    /// that `is` accepts. A group with an EMPTY entry ends the search: no
    /// insert ever passed it.
    #[inline]
    pub(super) fn find(&self, hash: u64, mut is: impl FnMut(SlotId) -> bool) -> Option<SlotId> {
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
    pub(super) fn insert(&mut self, hash: u64, id: SlotId) {
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
    pub(super) fn remove(&mut self, hash: u64, id: SlotId) {
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
    pub(super) fn needs_rebuild(&self) -> Option<usize> {
        let n = self.groups.len();
        if (self.items + 1) * 2 > n * GROUP && n < self.max_groups {
            Some((n * 2).min(self.max_groups))
        } else if self.tombs * 8 > n * GROUP {
            Some(n)
        } else {
            None
        }
    }

    pub(super) fn rebuild(&mut self, groups: usize, entries: impl Iterator<Item = (u64, SlotId)>) {
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
        // Each insert lands in a random group, a miss when the index is
        // large: ask for the groups a few entries ahead.
        const AHEAD: usize = 8;
        let mut ring = [(0u64, 0 as SlotId); AHEAD];
        let mut n = 0;
        for (hash, id) in entries {
            self.prefetch(hash);
            if n >= AHEAD {
                let (h, i) = ring[n % AHEAD];
                self.insert(h, i);
            }
            ring[n % AHEAD] = (hash, id);
            n += 1;
        }
        for k in n.saturating_sub(AHEAD)..n {
            let (h, i) = ring[k % AHEAD];
            self.insert(h, i);
        }
    }

    pub(super) fn memory_bytes(&self) -> usize {
        self.groups.capacity() * size_of::<Group>()
    }
}
