//! Keeps a flood of spoofed knocks from filling the disk with `Stage 1` and
//! `sequence timeout` lines: above a per-door rate, those lines are counted
//! instead of written, and one summary line per second says how many.
//! `OPEN SESAME` and command lines never pass through here.
//!
//! Pure and driven by explicit time, like the engine, so it is tested
//! without sleeping.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crate::core::knock::Timestamp;

const WINDOW: Duration = Duration::from_secs(1);

#[derive(Debug, Clone, Copy)]
struct Window {
    start: Timestamp,
    written: u32,
    suppressed: u64,
}

/// Per-door one-second windows of noisy log lines.
#[derive(Debug, Default)]
pub struct LineLimiter {
    /// Lines per second per door; 0 means no limit.
    rate: u32,
    doors: HashMap<Arc<str>, Window>,
}

impl LineLimiter {
    pub fn new(rate: u32) -> Self {
        LineLimiter {
            rate,
            doors: HashMap::new(),
        }
    }

    /// Changes the rate (config reload); counts so far are kept.
    pub fn set_rate(&mut self, rate: u32) {
        self.rate = rate;
    }

    /// Whether a noisy line about `door` at `now` may be written; if not it
    /// is counted for the summary. Call [`LineLimiter::summaries`] first so
    /// a finished window is reported before a new one starts.
    pub fn allow(&mut self, door: &Arc<str>, now: Timestamp) -> bool {
        if self.rate == 0 {
            return true;
        }
        // A lookup first: the clone and insert happen once per door, not
        // once per line of a flood.
        if !self.doors.contains_key(door) {
            self.doors.insert(
                door.clone(),
                Window {
                    start: now,
                    written: 0,
                    suppressed: 0,
                },
            );
        }
        let Some(w) = self.doors.get_mut(door) else {
            return true;
        };
        if now >= w.start + WINDOW && w.suppressed == 0 {
            *w = Window {
                start: now,
                written: 0,
                suppressed: 0,
            };
        }
        if w.written < self.rate {
            w.written += 1;
            true
        } else {
            w.suppressed += 1;
            false
        }
    }

    /// When the next summary is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.doors
            .values()
            .filter(|w| w.suppressed > 0)
            .map(|w| w.start + WINDOW)
            .min()
    }

    /// The lines per second allowed per door (0: no limit).
    pub fn rate(&self) -> u32 {
        self.rate
    }

    /// For every window that ended by `now` with lines held back: the door
    /// and how many, sorted by door; those windows start over.
    pub fn summaries(&mut self, now: Timestamp) -> Vec<(Arc<str>, u64)> {
        let mut out = Vec::new();
        for (door, w) in self.doors.iter_mut() {
            if w.suppressed > 0 && now >= w.start + WINDOW {
                out.push((door.clone(), w.suppressed));
                *w = Window {
                    start: now,
                    written: 0,
                    suppressed: 0,
                };
            }
        }
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_nanos(n * 1_000_000)
    }

    #[test]
    fn floods_are_counted_and_summarised_once_per_second() {
        let door: Arc<str> = Arc::from("ssh");
        let other: Arc<str> = Arc::from("web");
        let mut l = LineLimiter::new(3);
        let allowed: Vec<bool> = (0..5).map(|i| l.allow(&door, ms(i))).collect();
        assert_eq!(allowed, vec![true, true, true, false, false]);
        // Another door has its own budget.
        assert!(l.allow(&other, ms(5)));
        assert_eq!(l.next_due(), Some(ms(1000)));
        assert!(l.summaries(ms(999)).is_empty());
        assert_eq!(l.summaries(ms(1000)), vec![(door.clone(), 2)]);
        assert_eq!(l.next_due(), None);
        assert!(l.allow(&door, ms(1001)));
    }

    #[test]
    fn quiet_doors_are_never_limited_and_zero_means_unlimited() {
        let door: Arc<str> = Arc::from("ssh");
        let mut l = LineLimiter::new(2);
        for i in 0..10 {
            assert!(l.allow(&door, ms(i * 600)));
        }
        let mut unlimited = LineLimiter::new(0);
        assert!((0..1000).all(|i| unlimited.allow(&door, ms(i))));
        assert_eq!(unlimited.next_due(), None);
    }
}
