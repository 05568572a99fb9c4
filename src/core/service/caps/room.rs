//! Room in a full nftables set: which of the elements the daemon added
//! go first when the kernel says a set is full.
//!
//! A flood of spoofed sources fills a set of the default size (65 536) in
//! under a second; refusing the owner then would lock them out as surely
//! as a used-up cap. So every addition names the daemon's own element
//! nearest expiry, and when the kernel says the set is full the shell
//! removes that one and adds the new one in the same batch. Only elements
//! the daemon created are ever named: an element an admin added (with a
//! timeout or without) is never removed.
//!
//! Memory stays bounded by the set: an element is recorded only when the
//! kernel created it, and forgotten when it expires or is evicted, so the
//! record of a set holds at most its `size` (plus elements an admin
//! deleted early, until they would have expired), and never more than
//! [`MAX_RECORDED`].

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use crate::core::knock::Timestamp;

/// Elements recorded per set, whatever its size (the default `size` of a
/// set; about 5 MiB of record): past it, new elements are not recorded
/// (they are not candidates for eviction until the record has room
/// again), so a set larger than this can be full with nothing to name.
pub const MAX_RECORDED: usize = 1 << 16;

/// What the kernel did with an [`super::super::Effect::NftAdd`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NftAdded {
    /// The knocker's address is in the set, new.
    New,
    /// It was there already: its timeout starts over.
    Refreshed,
    /// The set was full: the element named to make room was removed (or
    /// was gone already) and the knocker's address added.
    MadeRoom,
    /// It was there without a timeout (an admin put it there): left as it
    /// is, so it never starts to expire because of a knock.
    Permanent,
}

/// The daemon's elements of one set.
#[derive(Default)]
struct Ours {
    expiry: HashMap<IpAddr, Timestamp>,
    by_expiry: BTreeSet<(Timestamp, IpAddr)>,
}

impl Ours {
    fn insert(&mut self, addr: IpAddr, at: Timestamp) {
        if let Some(old) = self.expiry.insert(addr, at) {
            self.by_expiry.remove(&(old, addr));
        } else if self.expiry.len() > MAX_RECORDED {
            self.expiry.remove(&addr);
            return;
        }
        self.by_expiry.insert((at, addr));
    }

    fn expire(&mut self, now: Timestamp) {
        while let Some(&(at, addr)) = self.by_expiry.first() {
            if at > now {
                break;
            }
            self.by_expiry.pop_first();
            self.expiry.remove(&addr);
        }
    }
}

/// An element taken out of the record while an addition that may evict
/// it is in flight.
struct Claim {
    set: String,
    victim: IpAddr,
    at: Timestamp,
}

/// The daemon's elements of every set, and the additions in flight.
#[derive(Default)]
pub struct Room {
    sets: HashMap<String, Ours>,
    /// The element each addition in flight may evict, by request.
    pending: HashMap<u64, Claim>,
}

impl Room {
    /// An addition of `addr` to `set` goes out at `now`: the daemon's
    /// element to remove if the set is full, if any. None when `addr` is
    /// ours already (a refresh needs no room). Each addition in flight
    /// names a different element.
    pub fn claim(
        &mut self,
        request: u64,
        set: &str,
        addr: IpAddr,
        now: Timestamp,
    ) -> Option<IpAddr> {
        let ours = self.sets.entry(set.to_string()).or_default();
        ours.expire(now);
        let victim = if ours.expiry.contains_key(&addr) {
            None
        } else {
            ours.by_expiry.pop_first().map(|(at, victim)| {
                ours.expiry.remove(&victim);
                Claim {
                    set: set.to_string(),
                    victim,
                    at,
                }
            })
        };
        let named = victim.as_ref().map(|c| c.victim);
        if let Some(c) = victim {
            self.pending.insert(request, c);
        }
        named
    }

    /// Addition `request` will never be made (its opening was taken
    /// back): the element it named is still ours.
    pub fn release(&mut self, request: u64, now: Timestamp) {
        if let Some(c) = self.pending.remove(&request) {
            if c.at > now {
                self.sets.entry(c.set).or_default().insert(c.victim, c.at);
            }
        }
    }

    /// Addition `request`, of `addr` to `set` until `until`, was answered
    /// (`None`: it failed). An element the kernel created is ours; one we
    /// refreshed stays ours; an admin's is never recorded.
    pub fn answered(
        &mut self,
        request: u64,
        set: &str,
        addr: IpAddr,
        outcome: Option<NftAdded>,
        until: Timestamp,
        now: Timestamp,
    ) {
        let claim = self.pending.remove(&request);
        let ours = self.sets.entry(set.to_string()).or_default();
        match outcome {
            Some(NftAdded::New | NftAdded::MadeRoom) => ours.insert(addr, until),
            Some(NftAdded::Refreshed) if ours.expiry.contains_key(&addr) => {
                ours.insert(addr, until)
            }
            _ => {}
        }
        // The element named was not removed: it is still ours.
        if let Some(c) = claim {
            if outcome != Some(NftAdded::MadeRoom) && c.at > now {
                self.sets.entry(c.set).or_default().insert(c.victim, c.at);
            }
        }
    }

    /// How many elements of `set` are recorded as the daemon's (tests).
    #[cfg(test)]
    pub fn recorded(&self, set: &str) -> usize {
        self.sets.get(set).map_or(0, |o| o.expiry.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Timestamp {
        Timestamp::from_nanos(secs * 1_000_000_000)
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn the_element_nearest_expiry_goes_and_admins_never_do() {
        let mut r = Room::default();
        let set = "inet filter s";
        // Nothing of ours yet: nothing to name.
        assert_eq!(r.claim(1, set, ip("192.0.2.1"), s(0)), None);
        r.answered(1, set, ip("192.0.2.1"), Some(NftAdded::New), s(30), s(0));
        assert_eq!(
            r.claim(2, set, ip("192.0.2.2"), s(1)),
            Some(ip("192.0.2.1"))
        );
        r.answered(2, set, ip("192.0.2.2"), Some(NftAdded::New), s(31), s(1));
        // An admin's permanent element is not recorded.
        assert_eq!(
            r.claim(3, set, ip("192.0.2.9"), s(2)),
            Some(ip("192.0.2.1"))
        );
        r.answered(
            3,
            set,
            ip("192.0.2.9"),
            Some(NftAdded::Permanent),
            s(32),
            s(2),
        );
        assert_eq!(r.recorded(set), 2);
        // A refresh of ours moves it last; it needs no room.
        assert_eq!(r.claim(4, set, ip("192.0.2.1"), s(3)), None);
        r.answered(
            4,
            set,
            ip("192.0.2.1"),
            Some(NftAdded::Refreshed),
            s(33),
            s(3),
        );
        // Two additions in flight name different elements.
        assert_eq!(
            r.claim(5, set, ip("192.0.2.3"), s(4)),
            Some(ip("192.0.2.2"))
        );
        assert_eq!(
            r.claim(6, set, ip("192.0.2.4"), s(4)),
            Some(ip("192.0.2.1"))
        );
        r.answered(
            5,
            set,
            ip("192.0.2.3"),
            Some(NftAdded::MadeRoom),
            s(34),
            s(4),
        );
        r.answered(6, set, ip("192.0.2.4"), None, s(34), s(4));
        // .2 went, .1 is back, .3 is ours.
        assert_eq!(r.recorded(set), 2);
        assert_eq!(
            r.claim(7, set, ip("192.0.2.5"), s(5)),
            Some(ip("192.0.2.1"))
        );
        r.answered(7, set, ip("192.0.2.5"), None, s(35), s(5));
        // Expired elements are forgotten.
        assert_eq!(r.claim(8, set, ip("192.0.2.6"), s(40)), None);
        assert_eq!(r.recorded(set), 0);
    }

    #[test]
    fn an_addition_never_made_gives_its_element_back() {
        let mut r = Room::default();
        let set = "inet filter s";
        r.claim(1, set, ip("192.0.2.1"), s(0));
        r.answered(1, set, ip("192.0.2.1"), Some(NftAdded::New), s(30), s(0));
        assert_eq!(
            r.claim(2, set, ip("192.0.2.2"), s(1)),
            Some(ip("192.0.2.1"))
        );
        // Taken back before it went out (its journal write failed).
        r.release(2, s(1));
        assert_eq!(r.recorded(set), 1);
        // A later answer to another request is not matched to it.
        assert_eq!(
            r.claim(3, set, ip("192.0.2.3"), s(2)),
            Some(ip("192.0.2.1"))
        );
        r.answered(
            3,
            set,
            ip("192.0.2.3"),
            Some(NftAdded::MadeRoom),
            s(32),
            s(2),
        );
        assert_eq!(
            r.claim(4, set, ip("192.0.2.4"), s(3)),
            Some(ip("192.0.2.3"))
        );
    }
}
