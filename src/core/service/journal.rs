//! What the journal of pending stops holds, and what must be written to
//! keep it so: records appended per input (O(1) per open), and now and
//! then the whole content written afresh (compaction).

use std::collections::{HashMap, HashSet};

use super::effect::{JournalEntry, JournalRecord, JournalWrite};
use crate::core::engine::OpenId;

/// Appended records beyond which the next write rewrites the journal:
/// twice what it holds, plus slack so a small journal is not rewritten at
/// every other open.
const COMPACT_SLACK: usize = 64;

/// The journal as the service sees it.
#[derive(Default)]
pub(super) struct JournalBook {
    /// Every stop the journal holds (or will, once the pending records are
    /// written), by opening.
    live: HashMap<OpenId, JournalEntry>,
    pending: Vec<JournalRecord>,
    /// Records appended since the journal was last written whole.
    appended: usize,
    /// The next write rewrites the whole journal (at start, after a
    /// failure, or when compaction is due).
    rewrite: bool,
    /// Openings whose stop was first journaled by the write handed out last:
    /// what a failed write leaves uncovered.
    in_flight: HashSet<OpenId>,
}

impl JournalBook {
    /// The stop of `open` is due at `entry.due`.
    pub fn add(&mut self, open: OpenId, entry: JournalEntry) {
        self.live.insert(open, entry.clone());
        self.pending.push(JournalRecord::Add { key: open.0, entry });
    }

    /// The stop of `open` ran, or will never run.
    pub fn remove(&mut self, open: OpenId) {
        if self.live.remove(&open).is_some() {
            self.pending.push(JournalRecord::Remove { key: open.0 });
        }
    }

    /// The next write rewrites the journal whole.
    pub fn rewrite(&mut self) {
        self.rewrite = true;
    }

    /// Whether anything waits to be written.
    pub fn has_pending(&self) -> bool {
        self.rewrite || !self.pending.is_empty()
    }

    /// The write that brings the file up to date, or `None` when it is.
    pub fn take_write(&mut self) -> Option<JournalWrite> {
        if !self.has_pending() {
            return None;
        }
        let pending = std::mem::take(&mut self.pending);
        self.in_flight = pending
            .iter()
            .filter_map(|r| match r {
                JournalRecord::Add { key, .. } => Some(OpenId(*key)),
                JournalRecord::Remove { .. } | JournalRecord::Used { .. } => None,
            })
            .collect();
        let compact = self.appended + pending.len() > 2 * self.live.len() + COMPACT_SLACK;
        if self.rewrite || compact {
            self.rewrite = false;
            self.appended = 0;
            let mut all: Vec<(u64, JournalEntry)> =
                self.live.iter().map(|(o, e)| (o.0, e.clone())).collect();
            all.sort_by_key(|(key, e)| (e.due, *key));
            return Some(JournalWrite::Rewrite(all));
        }
        self.appended += pending.len();
        Some(JournalWrite::Append(pending))
    }

    /// The write handed out last failed: the stops it added are not known
    /// to be on disk, and the file itself is in doubt, so the next write
    /// rewrites it. Returns the openings whose stop it was to add.
    pub fn failed(&mut self) -> HashSet<OpenId> {
        self.rewrite = true;
        std::mem::take(&mut self.in_flight)
    }

    /// Stops journaled.
    pub fn len(&self) -> usize {
        self.live.len()
    }
}
