//! Commands the engine asked for, carried through the service's rules: a
//! dry run only says what would run; a stop never overtakes its start (a
//! start still running when its stop is due is killed first); at most the
//! bound run at once, the rest queue; and what a command's end means (a
//! failed start reopens its door, a stop the system refused is retried and
//! stays journaled). Part of [`Service`]; split out of `mod.rs`.

use super::commands::Running;
use super::{CommandEnd, CommandId, Effect, Notice, Service, STOP_RETRY};
use crate::core::engine::{Command, CommandKind, PendingStop};
use crate::core::knock::Timestamp;

impl Service {
    /// A start or stop command the engine asked for.
    pub(super) fn run(&mut self, cmd: Command) {
        if self.settings.dry_run {
            self.log(Notice::WouldRun {
                door: cmd.name,
                kind: cmd.kind,
                command: cmd.command,
            });
            return;
        }
        if cmd.kind == CommandKind::Stop {
            // A stop never overtakes its start: a slow `iptables -A`
            // finishing after its `-D` would leave the rule in for good. A
            // start still running when its stop is due is hung, or slower
            // than the door is meant to stay open: it is killed, and the
            // stop runs the moment it is gone.
            if let Some(start) = self.commands.running_start(cmd.open) {
                let killed = self.commands.get(start).map(|r| r.cmd.command.clone());
                self.log(Notice::KillingStart {
                    door: cmd.name.clone(),
                    command: killed.unwrap_or_default(),
                });
                self.push(Effect::Kill { id: start });
                self.commands.wait(cmd);
                return;
            }
            // Its start never got a slot: there is nothing to undo.
            if let Some(start) = self.commands.dequeue_start(cmd.open) {
                self.journal.remove(cmd.open);
                self.log(Notice::StartNeverRan {
                    src: start.src,
                    door: start.name,
                });
                return;
            }
        }
        if self.commands.has_slot() {
            self.spawn(cmd);
        } else {
            self.commands.enqueue(cmd);
        }
    }

    pub(super) fn spawn(&mut self, cmd: Command) {
        if cmd.kind == CommandKind::Start && self.first_start.is_none() {
            self.first_start = Some(self.effects.len());
        }
        let line = Notice::RunningCommand {
            door: cmd.name.clone(),
            command: cmd.command.clone(),
        };
        let command = cmd.command.clone();
        let id = self.commands.start(cmd, self.now);
        self.effects
            .push_back(super::Queued::Spawn { line, id, command });
    }

    /// Gives free slots to queued commands, stops first.
    pub(super) fn fill_slots(&mut self) {
        while let Some(cmd) = self.commands.next_queued() {
            self.spawn(cmd);
        }
    }

    pub(super) fn command_ended(&mut self, id: CommandId, end: CommandEnd, now: Timestamp) {
        let Some(Running { cmd, .. }) = self.commands.finish(id) else {
            return;
        };
        let door = cmd.name.clone();
        let ok = match &end {
            CommandEnd::Exited(0) => true,
            CommandEnd::Exited(code) => {
                self.log(Notice::NonZeroStatus { door, code: *code });
                false
            }
            CommandEnd::Signaled(signal) => {
                self.log(Notice::KilledBySignal {
                    door,
                    signal: *signal,
                });
                false
            }
            CommandEnd::SpawnFailed(reason) => {
                self.log(Notice::CannotRun {
                    door,
                    reason: reason.clone(),
                });
                false
            }
            CommandEnd::WaitFailed(reason) => {
                self.log(Notice::CannotWait {
                    door,
                    reason: reason.clone(),
                });
                false
            }
        };
        match cmd.kind {
            CommandKind::Start => {
                if let (false, Some(door)) = (ok, cmd.door) {
                    self.engine.start_failed(door, cmd.src, cmd.open);
                }
                for stop in self.commands.release(cmd.open) {
                    self.run(stop);
                }
            }
            CommandKind::Stop if matches!(end, CommandEnd::SpawnFailed(_)) => {
                // Never dropped: scheduled again, and journaled so.
                self.log(Notice::StopRetry {
                    door: cmd.name.clone(),
                    src: cmd.src,
                    after: STOP_RETRY,
                });
                let due = now + STOP_RETRY;
                self.journal_add(
                    cmd.open,
                    cmd.name.clone(),
                    cmd.src,
                    cmd.command.clone(),
                    due,
                );
                self.engine.reschedule_stop(PendingStop {
                    door: cmd.door,
                    name: cmd.name,
                    src: cmd.src,
                    command: cmd.command,
                    due,
                    open: cmd.open,
                });
            }
            CommandKind::Stop => self.journal.remove(cmd.open),
        }
        self.fill_slots();
        self.check_finished();
    }
}
