//! Where operator messages go: the operator log (file, syslog, `-v`), by way
//! of `-l`'s host-name lookups when they are on, stamped with the wall-clock
//! time of the moment they describe.

use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::clock::{monotonic_now, TimeBase};
use super::lookup::{Tagger, LOOKUP_WAIT};
use super::oplog::OperatorLog;
use crate::core::knock::Timestamp;
use crate::core::service::Notice;

/// The operator log, and the lines waiting for host names.
pub struct Output {
    pub log: OperatorLog,
    time: TimeBase,
    /// `-l`: host-name lookups, and the log lines waiting for them.
    tagger: Option<Tagger>,
}

impl Output {
    /// With `lookup` (`-l`), starts the lookup thread; if it cannot start,
    /// says so and goes on without names.
    pub fn new(log: OperatorLog, time: TimeBase, lookup: bool) -> Self {
        let tagger = if lookup {
            match Tagger::start() {
                Ok(t) => Some(t),
                Err(e) => {
                    tracing::warn!(%e, "cannot start host-name lookups; -l ignored");
                    None
                }
            }
        } else {
            None
        };
        Output { log, time, tagger }
    }

    /// How engine time maps to the wall clock.
    pub fn time(&self) -> TimeBase {
        self.time
    }

    /// Writes `notice`, stamped with engine time `at`, now, or (with `-l`)
    /// queues it in order until its knocker's host name is known or the
    /// lookup deadline passes.
    pub fn log(&mut self, at: Timestamp, notice: Notice) {
        let wall = self.time.wall(at);
        match &mut self.tagger {
            None => self.log.notice(wall, &notice, None),
            Some(tagger) => {
                tagger.push(lookup_clock(self.time, at), wall, notice);
                self.write_ready(at);
            }
        }
    }

    /// Writes the lines whose host-name lookup finished or timed out.
    pub fn write_ready(&mut self, now: Timestamp) {
        let now = lookup_clock(self.time, now);
        if let Some(tagger) = &mut self.tagger {
            for l in tagger.ready(now) {
                self.log.notice(l.wall, &l.notice, l.host.as_deref());
            }
        }
    }

    /// When the oldest line waiting for a name stops waiting, in engine
    /// time (live only: a replay's engine time is the capture's).
    pub fn next_deadline(&self) -> Option<Timestamp> {
        match self.time {
            TimeBase::Live => self.tagger.as_ref().and_then(Tagger::next_deadline),
            TimeBase::Capture => None,
        }
    }

    /// The fd that turns readable when a host-name lookup finishes.
    pub fn lookup_fd(&self) -> Option<BorrowedFd<'_>> {
        self.tagger.as_ref().map(|t| t.as_fd())
    }

    /// Gives the lookups still running up to [`LOOKUP_WAIT`] of real time
    /// (end of a replay, whose clock raced ahead of them), then writes
    /// everything.
    pub fn finish_lookups(&mut self) {
        let until = monotonic_now() + LOOKUP_WAIT;
        while self
            .tagger
            .as_ref()
            .is_some_and(|t| t.next_deadline().is_some())
        {
            let now = monotonic_now();
            if now >= until {
                break;
            }
            self.write_ready(now);
            std::thread::sleep(Duration::from_millis(5));
        }
        self.flush_lookups();
    }

    /// Writes every line still waiting for a host name (shutdown).
    pub fn flush_lookups(&mut self) {
        if let Some(tagger) = &mut self.tagger {
            for l in tagger.flush() {
                self.log.notice(l.wall, &l.notice, l.host.as_deref());
            }
        }
    }
}

/// The clock host-name lookups wait on: engine time live (it is the
/// monotonic clock), the real monotonic clock in a replay, where engine
/// time is the capture's and races ahead of lookups done now.
fn lookup_clock(time: TimeBase, at: Timestamp) -> Timestamp {
    match time {
        TimeBase::Live => at,
        TimeBase::Capture => monotonic_now(),
    }
}
