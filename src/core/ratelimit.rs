//! Keeps a flood of spoofed knocks from filling the disk with `Stage 1` and
//! `sequence timeout` lines: above a per-door rate (`LogRate`), and above a
//! rate for all doors together (`MaxLogLines`), those lines are counted
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

/// One second of lines against one budget.
#[derive(Debug, Clone, Copy, Default)]
struct Window {
    start: Timestamp,
    written: u32,
    suppressed: u64,
}

impl Window {
    /// Whether one more line fits `rate` (0: no limit) at `now`; if not it
    /// is counted. A window with nothing held back simply starts over.
    fn allow(&mut self, rate: u32, now: Timestamp) -> bool {
        if rate == 0 {
            return true;
        }
        if now >= self.start + WINDOW && self.suppressed == 0 {
            *self = Window {
                start: now,
                ..Window::default()
            };
        }
        if self.written < rate {
            self.written += 1;
            true
        } else {
            self.suppressed += 1;
            false
        }
    }

    fn due(&self) -> Option<Timestamp> {
        (self.suppressed > 0).then_some(self.start + WINDOW)
    }

    /// The count held back, once the window is over; it starts over.
    fn take(&mut self, now: Timestamp) -> Option<u64> {
        if self.suppressed == 0 || now < self.start + WINDOW {
            return None;
        }
        let n = self.suppressed;
        *self = Window {
            start: now,
            ..Window::default()
        };
        Some(n)
    }
}

/// Lines held back in a second that is over.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Summary {
    /// The door, or `None` for the budget of all doors together.
    pub door: Option<Arc<str>>,
    pub count: u64,
    /// The budget that held them back, per second.
    pub rate: u32,
}

/// Per-door and overall one-second windows of noisy log lines.
#[derive(Debug, Default)]
pub struct LineLimiter {
    /// Lines per second per door; 0 means no limit.
    rate: u32,
    /// Lines per second for all doors together; 0 means no limit.
    total_rate: u32,
    /// One window per door name, in the order they first had a line.
    doors: Vec<(Arc<str>, Window)>,
    by_name: HashMap<Arc<str>, usize, foldhash::fast::RandomState>,
    /// The door of the last line and its window: a flood's lines are about
    /// one door, whose name is one shared string, so comparing pointers
    /// finds its window without hashing the name (two doors sharing a name
    /// still share a window: they meet in `by_name`).
    last: Option<(Arc<str>, usize)>,
    total: Window,
    /// The earliest end of a window holding lines back, kept as lines are
    /// held back: asked for after every packet, it must not cost a walk
    /// over the doors.
    due: Option<Timestamp>,
}

impl LineLimiter {
    pub fn new(rate: u32, total_rate: u32) -> Self {
        LineLimiter {
            rate,
            total_rate,
            ..LineLimiter::default()
        }
    }

    /// Changes the rates (config reload); counts so far are kept.
    pub fn set_rates(&mut self, rate: u32, total_rate: u32) {
        self.rate = rate;
        self.total_rate = total_rate;
    }

    /// Whether a noisy line about `door` at `now` may be written; if not it
    /// is counted for the summary. Call [`LineLimiter::summaries`] first so
    /// a finished window is reported before a new one starts.
    pub fn allow(&mut self, door: &Arc<str>, now: Timestamp) -> bool {
        if self.rate > 0 {
            // The clone and insert happen once per door, not once per line
            // of a flood.
            let i = match &self.last {
                Some((last, i)) if Arc::ptr_eq(last, door) => *i,
                _ => {
                    let i = self.window_of(door, now);
                    self.last = Some((door.clone(), i));
                    i
                }
            };
            let Some((_, w)) = self.doors.get_mut(i) else {
                return true;
            };
            let allowed = w.allow(self.rate, now);
            let due = w.due();
            if !allowed {
                self.due = Timestamp::earliest(self.due, due);
                return false;
            }
        }
        let allowed = self.total.allow(self.total_rate, now);
        self.due = Timestamp::earliest(self.due, self.total.due());
        allowed
    }

    /// The window of `door`'s name, new (starting at `now`) if its first.
    fn window_of(&mut self, door: &Arc<str>, now: Timestamp) -> usize {
        if let Some(i) = self.by_name.get(door) {
            return *i;
        }
        let fresh = Window {
            start: now,
            ..Window::default()
        };
        self.doors.push((door.clone(), fresh));
        self.by_name.insert(door.clone(), self.doors.len() - 1);
        self.doors.len() - 1
    }

    /// When the next summary is due.
    pub fn next_due(&self) -> Option<Timestamp> {
        self.due
    }

    /// What every window that ended by `now` held back, doors sorted by
    /// name, then all doors together; those windows start over.
    pub fn summaries(&mut self, now: Timestamp) -> Vec<Summary> {
        let mut out = Vec::new();
        if self.due.is_none_or(|due| now < due) {
            return out;
        }
        for (door, w) in &mut self.doors {
            if let Some(count) = w.take(now) {
                out.push(Summary {
                    door: Some(door.clone()),
                    count,
                    rate: self.rate,
                });
            }
        }
        out.sort_by(|a, b| a.door.cmp(&b.door));
        if let Some(count) = self.total.take(now) {
            out.push(Summary {
                door: None,
                count,
                rate: self.total_rate,
            });
        }
        self.due = self
            .doors
            .iter()
            .map(|(_, w)| w)
            .chain(std::iter::once(&self.total))
            .filter_map(Window::due)
            .min();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Timestamp {
        Timestamp::from_nanos(n * 1_000_000)
    }

    fn door_summary(door: &Arc<str>, count: u64, rate: u32) -> Summary {
        Summary {
            door: Some(door.clone()),
            count,
            rate,
        }
    }

    #[test]
    fn floods_are_counted_and_summarised_once_per_second() {
        let door: Arc<str> = Arc::from("ssh");
        let other: Arc<str> = Arc::from("web");
        let mut l = LineLimiter::new(3, 0);
        let allowed: Vec<bool> = (0..5).map(|i| l.allow(&door, ms(i))).collect();
        assert_eq!(allowed, vec![true, true, true, false, false]);
        // Another door has its own budget.
        assert!(l.allow(&other, ms(5)));
        assert_eq!(l.next_due(), Some(ms(1000)));
        assert!(l.summaries(ms(999)).is_empty());
        assert_eq!(l.summaries(ms(1000)), vec![door_summary(&door, 2, 3)]);
        assert_eq!(l.next_due(), None);
        assert!(l.allow(&door, ms(1001)));
    }

    #[test]
    fn doors_sharing_a_name_share_a_window() {
        // Two doors of one name have two name strings.
        let (a, b): (Arc<str>, Arc<str>) = (Arc::from("ssh"), Arc::from("ssh"));
        let mut l = LineLimiter::new(2, 0);
        let allowed: Vec<bool> = [&a, &b, &a, &b]
            .iter()
            .enumerate()
            .map(|(i, d)| l.allow(d, ms(i as u64)))
            .collect();
        assert_eq!(allowed, vec![true, true, false, false]);
        assert_eq!(l.next_due(), Some(ms(1000)));
        assert_eq!(l.summaries(ms(1000)), vec![door_summary(&a, 2, 2)]);
        assert_eq!(l.next_due(), None);
    }

    #[test]
    fn quiet_doors_are_never_limited_and_zero_means_unlimited() {
        let door: Arc<str> = Arc::from("ssh");
        let mut l = LineLimiter::new(2, 0);
        for i in 0..10 {
            assert!(l.allow(&door, ms(i * 600)));
        }
        let mut unlimited = LineLimiter::new(0, 0);
        assert!((0..1000).all(|i| unlimited.allow(&door, ms(i))));
        assert_eq!(unlimited.next_due(), None);
    }

    #[test]
    fn many_doors_together_stay_within_the_total() {
        let mut l = LineLimiter::new(2, 5);
        let doors: Vec<Arc<str>> = (0..10).map(|i| Arc::from(format!("d{i}"))).collect();
        let written = doors.iter().filter(|d| l.allow(d, ms(1))).count();
        assert_eq!(
            written, 5,
            "each door under its own rate, all over the total"
        );
        assert_eq!(
            l.summaries(ms(1001)),
            vec![Summary {
                door: None,
                count: 5,
                rate: 5
            }]
        );
    }
}
