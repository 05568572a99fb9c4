//! Bounds on what spoofed knocks can make the daemon do to the firewall:
//! openings per door per minute, and stop commands pending per door.
//!
//! A door anyone can open (a one-port door, or a sequence sniffed once)
//! would otherwise run a root shell per spoofed source. Past either bound
//! a completed knock is refused: the first refusal of a minute is logged
//! with its source, the rest are counted and summed up once the minute is
//! over. Doors are counted separately, so a flood at one door never keeps
//! another door from opening.
//!
//! A door with only an nftables set runs no shell: an opening is one
//! netlink message, and the set's `size` bounds what it holds (a full set
//! makes room, see [`room`]). Such a door is not held to the per-minute
//! bound, which a spoofer could use up to lock its owner out, but to a
//! netlink budget ([`NFT_ADDS_PER_SECOND`]) that bounds the daemon's work.
//! A flood of spoofed sources above the budget could still win every
//! token; a source refused once is remembered (a fixed table, so memory
//! stays bounded) and its next completion is let in from a reserve of its
//! own ([`NFT_REPEATS_PER_SECOND`]). A person knocks again; a random
//! spoofed source almost never comes back.

pub(super) mod room;

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::net::IpAddr;
use std::time::Duration;

use crate::core::engine::DoorId;
use crate::core::knock::Timestamp;

/// The window openings are counted over, and refusals summed up over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Netlink additions per second a door with only an nftables set may
/// make. A person knocks a few times a minute; one addition costs the
/// daemon about 4 us (measured, tests/nft_flood.rs), 9 us when a full set
/// must make room, so the budget costs at most about 1% of a CPU, and at
/// this rate a flood takes over a minute to cycle a set of the default
/// size (65 536): an owner let in stays in long enough to connect.
pub const NFT_ADDS_PER_SECOND: u32 = 1_000;

/// Completions per second let in past the budget because their source was
/// refused a moment before (a person knocking again).
pub const NFT_REPEATS_PER_SECOND: u32 = 100;

/// Refused sources remembered, over all doors: 2^18 hashes (2 MiB, only
/// once a door is over its budget). At the fastest flood measured here
/// (300 000 completions a second) a refused source is still remembered
/// after a tenth of a second with a chance of 9 in 10.
const RECENT_SLOTS: usize = 1 << 18;

/// Which bound refused an opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `MaxOpensPerMinute`: this many openings in the last minute.
    OpensPerMinute(u32),
    /// `MaxPendingStops`: this many stop commands pending.
    PendingStops(usize),
    /// The netlink budget of a door with only an nftables set: this many
    /// additions in the last second.
    NftAddsPerSecond(u32),
}

#[derive(Default)]
struct DoorWindow {
    /// When each opening of the last minute happened (at most the bound).
    opens: VecDeque<Timestamp>,
    /// When the refusals counted since the first one are summed up.
    report_at: Option<Timestamp>,
    refused: u64,
    /// The netlink budget and its reserve for repeat knockers, as the
    /// time each is paid up to (a token bucket, GCRA).
    nft_paid: Timestamp,
    repeats_paid: Timestamp,
}

/// Takes one token from a bucket of `rate` a second (holding a second's
/// worth) that is paid up to `*paid`: false if it is empty.
fn take(paid: &mut Timestamp, rate: u32, now: Timestamp) -> bool {
    let cost = 1_000_000_000 / u64::from(rate.max(1));
    let from = paid.as_nanos().max(now.as_nanos());
    if from - now.as_nanos() + cost > 1_000_000_000 {
        return false;
    }
    *paid = Timestamp::from_nanos(from + cost);
    true
}

/// The bounds, and each door's count.
pub(super) struct Caps {
    per_minute: u32,
    max_pending: usize,
    doors: HashMap<DoorId, DoorWindow>,
    /// Hashes of sources refused by a netlink budget, by slot (0: none);
    /// allocated at the first such refusal.
    recent: Vec<u64>,
    /// What the daemon put in each nftables set.
    pub room: room::Room,
}

/// What to do about a refusal.
pub(super) enum Refusal {
    /// The first of its minute: log it with its source.
    Report(Limit),
    /// Counted for the summary.
    Counted,
}

impl Caps {
    pub fn new(per_minute: u32, max_pending: usize) -> Self {
        Caps {
            per_minute,
            max_pending,
            doors: HashMap::new(),
            recent: Vec::new(),
            room: room::Room::default(),
        }
    }

    /// Whether a door with only an nftables set may add `src` at `now`:
    /// within its netlink budget, or a source refused a moment ago within
    /// the reserve. An addition allowed is counted.
    pub fn check_nft(&mut self, door: DoorId, src: IpAddr, now: Timestamp) -> Result<(), Refusal> {
        let w = self.doors.entry(door).or_default();
        if take(&mut w.nft_paid, NFT_ADDS_PER_SECOND, now) {
            return Ok(());
        }
        if self.recent.is_empty() {
            self.recent = vec![0; RECENT_SLOTS];
        }
        let hash = foldhash::fast::FixedState::default().hash_one((door, src)) | 1;
        let slot = (hash >> 40) as usize % RECENT_SLOTS;
        if let Some(seen) = self.recent.get_mut(slot) {
            if *seen == hash && take(&mut w.repeats_paid, NFT_REPEATS_PER_SECOND, now) {
                *seen = 0;
                return Ok(());
            }
            *seen = hash;
        }
        Err(Self::refuse(
            w,
            Limit::NftAddsPerSecond(NFT_ADDS_PER_SECOND),
            now,
        ))
    }

    /// Counts a refusal of `w`'s door: the first of its minute is reported.
    fn refuse(w: &mut DoorWindow, limit: Limit, now: Timestamp) -> Refusal {
        if w.report_at.is_none() {
            w.report_at = Some(now + WINDOW);
            return Refusal::Report(limit);
        }
        w.refused += 1;
        Refusal::Counted
    }

    /// Whether `door` may open at `now` with `pending` stops already
    /// pending (not counting the new one); an opening allowed is counted.
    pub fn check(&mut self, door: DoorId, pending: usize, now: Timestamp) -> Result<(), Refusal> {
        let w = self.doors.entry(door).or_default();
        while w.opens.front().is_some_and(|t| *t + WINDOW <= now) {
            w.opens.pop_front();
        }
        let limit = if w.opens.len() >= self.per_minute as usize {
            Limit::OpensPerMinute(self.per_minute)
        } else if pending >= self.max_pending {
            Limit::PendingStops(self.max_pending)
        } else {
            w.opens.push_back(now);
            return Ok(());
        };
        Err(Self::refuse(w, limit, now))
    }

    /// The opening of `door` allowed at `at` did not happen after all (its
    /// journal write or its set failed): it no longer counts.
    pub fn forget(&mut self, door: DoorId, at: Timestamp) {
        if let Some(w) = self.doors.get_mut(&door) {
            if let Some(i) = w.opens.iter().rposition(|t| *t == at) {
                w.opens.remove(i);
            }
        }
    }

    /// When the next summary is due.
    pub fn next_report(&self) -> Option<Timestamp> {
        self.doors.values().filter_map(|w| w.report_at).min()
    }

    /// The doors whose minute of refusals ended by `now`, with how many
    /// more were refused after the first (zero: nothing to say).
    pub fn reports(&mut self, now: Timestamp) -> Vec<(DoorId, u64)> {
        let mut out = Vec::new();
        for (door, w) in &mut self.doors {
            if w.report_at.is_some_and(|t| t <= now) {
                w.report_at = None;
                out.push((*door, std::mem::take(&mut w.refused)));
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(secs: u64) -> Timestamp {
        Timestamp::from_nanos(secs * 1_000_000_000)
    }

    #[test]
    fn openings_per_minute_slide_and_pending_stops_bound() {
        let mut c = Caps::new(2, 3);
        let d = DoorId(0);
        assert!(c.check(d, 0, s(0)).is_ok());
        assert!(c.check(d, 1, s(10)).is_ok());
        assert!(matches!(
            c.check(d, 2, s(20)),
            Err(Refusal::Report(Limit::OpensPerMinute(2)))
        ));
        assert!(matches!(c.check(d, 2, s(30)), Err(Refusal::Counted)));
        // Another door has its own count.
        assert!(c.check(DoorId(1), 0, s(30)).is_ok());
        // The first opening left the window at 60 s.
        assert!(c.check(d, 2, s(60)).is_ok());
        assert_eq!(c.next_report(), Some(s(80)));
        assert_eq!(c.reports(s(80)), vec![(d, 1)]);
        assert_eq!(c.next_report(), None);
        // Pending stops: three already, refused.
        assert!(matches!(
            c.check(DoorId(2), 3, s(90)),
            Err(Refusal::Report(Limit::PendingStops(3)))
        ));
    }

    #[test]
    fn nft_doors_have_a_netlink_budget_not_a_cap_and_a_reserve_for_repeats() {
        let mut c = Caps::new(2, 3);
        let d = DoorId(0);
        let ip = |n: u32| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + n));
        let ms = |n: u64| Timestamp::from_nanos(n * 1_000_000);
        let mut next = 0;
        // A flood of fresh spoofed sources at `t`: how many got in before
        // the budget ran out.
        let mut flood = |c: &mut Caps, t| {
            let mut n = 0;
            loop {
                next += 1;
                if c.check_nft(d, ip(next), t).is_err() {
                    return n;
                }
                n += 1;
            }
        };
        // Far past MaxOpensPerMinute: the budget holds a second's worth.
        assert_eq!(flood(&mut c, ms(0)), NFT_ADDS_PER_SECOND);
        let owner: IpAddr = "203.0.113.9".parse().unwrap();
        assert!(c.check_nft(d, owner, ms(0)).is_err());
        // More spoofed sources, each refused once: the budget refills at
        // its rate (one a millisecond) and the flood takes it all.
        assert_eq!(flood(&mut c, ms(100)), 100);
        // The owner knocking again gets in from the reserve...
        assert!(c.check_nft(d, owner, ms(100)).is_ok());
        // ...once: the next time it is a new refusal.
        assert!(c.check_nft(d, owner, ms(100)).is_err());
        // The reserve is bounded too: spoofed sources sent twice.
        let twice: Vec<IpAddr> = (0..NFT_REPEATS_PER_SECOND + 50)
            .map(|n| ip(5_000_000 + n))
            .collect();
        for a in &twice {
            assert!(c.check_nft(d, *a, ms(100)).is_err());
        }
        let again = twice
            .iter()
            .filter(|a| c.check_nft(d, **a, ms(100)).is_ok())
            .count();
        assert_eq!(again, NFT_REPEATS_PER_SECOND as usize - 1);
        // Another door has its own budget; command doors keep their cap.
        assert!(c.check_nft(DoorId(1), owner, ms(100)).is_ok());
        assert!(c.check(DoorId(2), 0, ms(100)).is_ok());
    }
}
