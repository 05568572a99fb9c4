//! The commands in flight: running (at most a bound at once), queued for a
//! free slot (stops before starts), and stops waiting for the start they
//! undo to end.

use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use super::effect::CommandId;
use crate::core::engine::{Command, CommandKind, DoorId, OpenId};
use crate::core::knock::Timestamp;

/// A command handed to the shell to run.
pub(super) struct Running {
    pub cmd: Command,
    pub started: Timestamp,
    /// Reported once as slow, never again.
    pub slow_reported: bool,
}

/// Commands by id, in the order they started.
pub(super) struct Commands {
    running: BTreeMap<CommandId, Running>,
    /// Stop commands whose start (same opening) is still running.
    waiting: Vec<Command>,
    /// Waiting for a free slot; stops go first.
    queued_stops: VecDeque<Command>,
    queued_starts: VecDeque<Command>,
    /// Commands running at once at most.
    max: usize,
    last_id: u64,
}

impl Commands {
    pub fn new(max: usize) -> Self {
        Commands {
            running: BTreeMap::new(),
            waiting: Vec::new(),
            queued_stops: VecDeque::new(),
            queued_starts: VecDeque::new(),
            max: max.max(1),
            last_id: 0,
        }
    }

    /// A reload may change the bound; what runs keeps running.
    pub fn set_max(&mut self, max: usize) {
        self.max = max.max(1);
    }

    /// Whether another command may start now.
    pub fn has_slot(&self) -> bool {
        self.running.len() < self.max
    }

    /// Holds `cmd` until a slot frees up.
    pub fn enqueue(&mut self, cmd: Command) {
        match cmd.kind {
            CommandKind::Stop => self.queued_stops.push_back(cmd),
            CommandKind::Start => self.queued_starts.push_back(cmd),
        }
    }

    /// The next queued command, if a slot is free: stops first, so doors
    /// close on time whatever a flood of openings queued; then the oldest
    /// start of the door with the fewest commands running, so a flood at
    /// one door never keeps another door's start waiting behind it.
    pub fn next_queued(&mut self) -> Option<Command> {
        if !self.has_slot() {
            return None;
        }
        if let Some(stop) = self.queued_stops.pop_front() {
            return Some(stop);
        }
        let running_of = |door: Option<DoorId>| {
            self.running
                .values()
                .filter(|r| r.cmd.door == door && r.cmd.kind == CommandKind::Start)
                .count()
        };
        let i = (0..self.queued_starts.len())
            .min_by_key(|&i| running_of(self.queued_starts[i].door))?;
        self.queued_starts.remove(i)
    }

    /// Takes the queued (not yet started) start of opening `open`.
    pub fn dequeue_start(&mut self, open: OpenId) -> Option<Command> {
        let i = self.queued_starts.iter().position(|c| c.open == open)?;
        self.queued_starts.remove(i)
    }

    /// Takes every queued start whose opening `drop` says to drop.
    pub fn dequeue_starts(&mut self, mut drop: impl FnMut(OpenId) -> bool) -> Vec<Command> {
        let (out, keep): (Vec<Command>, Vec<Command>) = std::mem::take(&mut self.queued_starts)
            .into_iter()
            .partition(|c| drop(c.open));
        self.queued_starts = keep.into();
        out
    }

    /// Records `cmd` as started at `now` and names it.
    pub fn start(&mut self, cmd: Command, now: Timestamp) -> CommandId {
        self.last_id += 1;
        let id = CommandId(self.last_id);
        self.running.insert(
            id,
            Running {
                cmd,
                started: now,
                slow_reported: false,
            },
        );
        id
    }

    pub fn get(&self, id: CommandId) -> Option<&Running> {
        self.running.get(&id)
    }

    /// Forgets command `id` (it ended); `None` for an id not running.
    pub fn finish(&mut self, id: CommandId) -> Option<Running> {
        self.running.remove(&id)
    }

    /// The running start command of opening `open`.
    pub fn running_start(&self, open: OpenId) -> Option<CommandId> {
        self.running
            .iter()
            .find(|(_, r)| r.cmd.kind == CommandKind::Start && r.cmd.open == open)
            .map(|(id, _)| *id)
    }

    /// Holds a stop until its start has ended.
    pub fn wait(&mut self, stop: Command) {
        self.waiting.push(stop);
    }

    /// The stops that were waiting for the start of opening `open`.
    pub fn release(&mut self, open: OpenId) -> Vec<Command> {
        let (ready, still): (Vec<Command>, Vec<Command>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|c| c.open == open);
        self.waiting = still;
        ready
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Nothing running, queued or waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty()
            && self.waiting.is_empty()
            && self.queued_stops.is_empty()
            && self.queued_starts.is_empty()
    }

    /// When a running command next deserves a "still running" report.
    pub fn next_slow_report(&self, after: Duration) -> Option<Timestamp> {
        self.running
            .values()
            .filter(|r| !r.slow_reported)
            .map(|r| r.started + after)
            .min()
    }

    /// The commands running for `after` by `now` and not yet reported:
    /// (door, command), each returned once.
    pub fn slow(&mut self, now: Timestamp, after: Duration) -> Vec<(Arc<str>, String)> {
        let mut out = Vec::new();
        for r in self.running.values_mut() {
            if !r.slow_reported && now.saturating_since(r.started) >= after {
                r.slow_reported = true;
                out.push((r.cmd.name.clone(), r.cmd.command.clone()));
            }
        }
        out
    }

    /// (door, command) of everything still running.
    pub fn running_commands(&self) -> Vec<(Arc<str>, String)> {
        self.running
            .values()
            .map(|r| (r.cmd.name.clone(), r.cmd.command.clone()))
            .collect()
    }

    /// Every stop not run: waiting for its start, or queued for a slot.
    pub fn unstarted_stops(&self) -> impl Iterator<Item = &Command> {
        self.waiting.iter().chain(self.queued_stops.iter())
    }

    /// Re-keys door ids after a reload (`map[old]` is the new id).
    pub fn remap(&mut self, map: &[Option<DoorId>]) {
        let fix = |door: &mut Option<DoorId>| {
            *door = door.and_then(|d| map.get(d.0 as usize).copied().flatten());
        };
        for r in self.running.values_mut() {
            fix(&mut r.cmd.door);
        }
        let queued = self
            .waiting
            .iter_mut()
            .chain(self.queued_stops.iter_mut())
            .chain(self.queued_starts.iter_mut());
        for c in queued {
            fix(&mut c.door);
        }
    }
}
