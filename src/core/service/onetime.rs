//! One-time doors: which line is live, which used lines this process could
//! not mark (they must never open again, not even after a reload), and
//! what the file says after a use.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use crate::core::config::onetime::first_live;
use crate::core::config::{Config, OneTimeLine, Sequence, SequenceSource, Warning};
use crate::core::engine::DoorId;

/// Where a one-time door goes after its live line was used.
pub(super) enum Next {
    /// This sequence is live now.
    Line(Sequence),
    /// No unused line is left: the door is disabled.
    Exhausted,
    /// The used line could not be marked: the door is disabled, so the
    /// sequence can never open twice.
    MarkFailed { path: PathBuf, reason: String },
    /// Not a one-time door waiting for its file (nothing to do).
    Unknown,
}

/// The one-time doors of the running config.
#[derive(Default)]
pub(super) struct OneTimeDoors {
    /// Every one-time door, whether it has a line left or not.
    doors: HashSet<DoorId>,
    /// The live line of each one-time door.
    live: HashMap<DoorId, (PathBuf, OneTimeLine)>,
    /// The used line of each door waiting for its file to be read.
    used: HashMap<DoorId, (PathBuf, OneTimeLine)>,
    /// Sequences used by this process that their file may not show as used
    /// (marking failed, or a dry run), by file.
    burned: HashMap<PathBuf, HashSet<Sequence>>,
}

impl OneTimeDoors {
    pub fn new(config: &Config) -> Self {
        OneTimeDoors {
            doors: one_time_doors(config),
            live: live_lines(config),
            ..OneTimeDoors::default()
        }
    }

    /// The doors of a reloaded config; what was burned stays burned.
    pub fn reloaded(&mut self, config: &Config) -> Self {
        OneTimeDoors {
            doors: one_time_doors(config),
            live: live_lines(config),
            used: HashMap::new(),
            burned: std::mem::take(&mut self.burned),
        }
    }

    /// Whether `door` takes its sequences from a one-time file.
    pub fn is_one_time(&self, door: DoorId) -> bool {
        self.doors.contains(&door)
    }

    /// Doors whose live line is one this process already used: they are
    /// disabled, and reported as (door, file, line).
    pub fn take_burned(&mut self) -> Vec<(DoorId, PathBuf, usize)> {
        let mut out: Vec<(DoorId, PathBuf, usize)> = self
            .live
            .iter()
            .filter(|(_, (path, line))| self.is_burned(path, &line.sequence))
            .map(|(door, (path, line))| (*door, path.clone(), line.line))
            .collect();
        out.sort();
        for (door, _, _) in &out {
            self.live.remove(door);
        }
        out
    }

    /// The live line of `door` was used: it is no longer live, and the
    /// door waits for its file. Returns the file and the used line.
    pub fn used(&mut self, door: DoorId) -> Option<(PathBuf, OneTimeLine)> {
        let (path, line) = self.live.remove(&door)?;
        self.used.insert(door, (path.clone(), line.clone()));
        Some((path, line))
    }

    /// Remembers that `sequence` of `path` was used, whatever the file says.
    pub fn burn(&mut self, path: &Path, sequence: &Sequence) {
        self.burned
            .entry(path.to_path_buf())
            .or_default()
            .insert(sequence.clone());
    }

    fn is_burned(&self, path: &Path, sequence: &Sequence) -> bool {
        self.burned.get(path).is_some_and(|s| s.contains(sequence))
    }

    /// The file of `door` after its use: its bytes (the used line marked),
    /// or why it could not be marked. Warnings about invalid lines are only
    /// about lines after the used one: those before were reported when the
    /// file was first read.
    pub fn file_read(
        &mut self,
        door: DoorId,
        result: Result<Vec<u8>, String>,
        warnings: &mut Vec<Warning>,
    ) -> Next {
        let Some((path, used)) = self.used.remove(&door) else {
            return Next::Unknown;
        };
        let text = match result {
            Ok(text) => text,
            Err(reason) => {
                self.burn(&path, &used.sequence);
                return Next::MarkFailed { path, reason };
            }
        };
        let mut found = Vec::new();
        let next = first_live(&text, &path, |s| self.is_burned(&path, s), &mut found);
        warnings.extend(
            found
                .into_iter()
                .filter(|w| w.line.is_none_or(|l| l > used.line)),
        );
        match next {
            Some(line) => {
                let sequence = line.sequence.clone();
                self.live.insert(door, (path, line));
                Next::Line(sequence)
            }
            None => Next::Exhausted,
        }
    }
}

fn one_time_doors(config: &Config) -> HashSet<DoorId> {
    config
        .doors
        .iter()
        .enumerate()
        .filter(|(_, d)| matches!(d.sequence, SequenceSource::OneTime { .. }))
        .map(|(i, _)| DoorId(i as u16))
        .collect()
}

fn live_lines(config: &Config) -> HashMap<DoorId, (PathBuf, OneTimeLine)> {
    config
        .doors
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match &d.sequence {
            SequenceSource::OneTime {
                path,
                current: Some(current),
                ..
            } => Some((DoorId(i as u16), (path.clone(), current.clone()))),
            _ => None,
        })
        .collect()
}
