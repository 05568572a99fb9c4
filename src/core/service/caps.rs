//! Bounds on what spoofed knocks can make the daemon do to the firewall:
//! openings per door per minute, and stop commands pending per door.
//!
//! A door anyone can open (a one-port door, or a sequence sniffed once)
//! would otherwise run a root shell per spoofed source. Past either bound
//! a completed knock is refused: the first refusal of a minute is logged
//! with its source, the rest are counted and summed up once the minute is
//! over. Doors are counted separately, so a flood at one door never keeps
//! another door from opening.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use crate::core::engine::DoorId;
use crate::core::knock::Timestamp;

/// The window openings are counted over, and refusals summed up over.
pub const WINDOW: Duration = Duration::from_secs(60);

/// Which bound refused an opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Limit {
    /// `MaxOpensPerMinute`: this many openings in the last minute.
    OpensPerMinute(u32),
    /// `MaxPendingStops`: this many stop commands pending.
    PendingStops(usize),
}

#[derive(Default)]
struct DoorWindow {
    /// When each opening of the last minute happened (at most the bound).
    opens: VecDeque<Timestamp>,
    /// When the refusals counted since the first one are summed up.
    report_at: Option<Timestamp>,
    refused: u64,
}

/// The bounds, and each door's count.
pub(super) struct Caps {
    per_minute: u32,
    max_pending: usize,
    doors: HashMap<DoorId, DoorWindow>,
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
        }
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
        if w.report_at.is_none() {
            w.report_at = Some(now + WINDOW);
            return Err(Refusal::Report(limit));
        }
        w.refused += 1;
        Err(Refusal::Counted)
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
}
