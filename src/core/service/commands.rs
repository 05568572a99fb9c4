//! The commands in flight: started and not yet reported ended, and stop
//! commands waiting for the start they undo.

use std::collections::BTreeMap;
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
#[derive(Default)]
pub(super) struct Commands {
    running: BTreeMap<CommandId, Running>,
    /// Stop commands whose start (same opening) is still running.
    waiting: Vec<Command>,
    last_id: u64,
}

impl Commands {
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

    /// Whether the start command of opening `open` is still running.
    pub fn start_running(&self, open: OpenId) -> bool {
        self.running
            .values()
            .any(|r| r.cmd.kind == CommandKind::Start && r.cmd.open == Some(open))
    }

    /// Holds a stop until its start has ended.
    pub fn wait(&mut self, stop: Command) {
        self.waiting.push(stop);
    }

    /// The stops that were waiting for the start of opening `open`.
    pub fn release(&mut self, open: OpenId) -> Vec<Command> {
        let (ready, still): (Vec<Command>, Vec<Command>) = std::mem::take(&mut self.waiting)
            .into_iter()
            .partition(|c| c.open == Some(open));
        self.waiting = still;
        ready
    }

    pub fn running_count(&self) -> usize {
        self.running.len()
    }

    /// Nothing running and nothing waiting.
    pub fn is_idle(&self) -> bool {
        self.running.is_empty() && self.waiting.is_empty()
    }

    /// Stop commands not yet run to completion: running, or waiting for
    /// their start. The journal keeps them.
    pub fn unfinished_stops(&self) -> impl Iterator<Item = &Command> {
        self.running
            .values()
            .map(|r| &r.cmd)
            .filter(|c| c.kind == CommandKind::Stop)
            .chain(self.waiting.iter())
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

    /// (door, command) of every stop still waiting for its start.
    pub fn waiting_commands(&self) -> Vec<(Arc<str>, String)> {
        self.waiting
            .iter()
            .map(|c| (c.name.clone(), c.command.clone()))
            .collect()
    }

    /// Re-keys door ids after a reload (`map[old]` is the new id).
    pub fn remap(&mut self, map: &[Option<DoorId>]) {
        let fix = |door: &mut Option<DoorId>| {
            *door = door.and_then(|d| map.get(d.0 as usize).copied().flatten());
        };
        for r in self.running.values_mut() {
            fix(&mut r.cmd.door);
        }
        for c in &mut self.waiting {
            fix(&mut c.door);
        }
    }
}
