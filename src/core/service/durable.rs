//! What the journal's contents and answers mean for the service: the
//! stops and used marks an earlier run left (taken over at start), and a
//! write that failed (its openings taken back whole: fail closed). Part of
//! [`Service`]; split out of `mod.rs`.

use std::collections::HashSet;
use std::sync::Arc;

use super::{
    Command, CommandKind, Effect, Notice, OpenId, Queued, RestoredStop, Service, Unjournaled,
    UsedMark, JOURNAL_RETRY,
};
use crate::core::knock::Timestamp;
use crate::core::service::Mode;

impl Service {
    /// Takes over the stop commands an earlier run journaled; overdue ones
    /// run at the next [`Service::handle_timeout`]. They belong to no door
    /// (after a reboot the firewall has forgotten the rule, so a knock must
    /// run the start command again), and run whatever the config says now.
    /// `used` are the rotating periods that opened (they stay used: a
    /// replay after a restart is refused). `problems` are journal lines
    /// that could not be read back; `path` names the journal. The journal
    /// is written afresh under the new numbers.
    pub fn handle_restore(
        &mut self,
        path: &str,
        stops: Vec<RestoredStop>,
        used: Vec<UsedMark>,
        problems: Vec<String>,
        now: Timestamp,
    ) {
        let now = self.advance(now);
        if !used.is_empty() {
            let unix = self.rotating.unix_at(now);
            for mark in used.into_iter().filter(|m| m.keep_until > unix) {
                self.rotating.keep(mark);
            }
            // The engine's sequences are made again, marked from them.
            self.rotating.reset_current();
            self.rotate(now);
        }
        for problem in problems {
            self.log(Notice::StateFileProblem {
                path: path.to_string(),
                problem,
            });
        }
        if !stops.is_empty() {
            let overdue = stops.iter().filter(|s| s.due <= now).count();
            self.log(Notice::Restored {
                count: stops.len(),
                path: path.to_string(),
                overdue,
            });
        }
        for s in stops {
            let name: Arc<str> = Arc::from(s.door.as_str());
            let open = self
                .engine
                .restore_stop(name.clone(), s.src, s.command.clone(), s.due);
            self.journal_add(open, name, s.src, s.command, s.due);
        }
        if self.settings.mode == Mode::Live {
            self.journal.rewrite();
        }
        self.flush();
    }

    /// The shell carried out an [`Effect::Journal`]: `Err` holds why the
    /// journal could not be written. Then no stop it was to add is known
    /// to be on disk, so none of their doors opens (fail closed): the
    /// start commands it covered, queued after it, are dropped. The journal
    /// is written whole again at the next input or within
    /// [`JOURNAL_RETRY`].
    pub fn handle_journal_result(&mut self, result: Result<(), String>, now: Timestamp) {
        let now = self.advance(now);
        let Err(error) = result else {
            for open in self.journal.written() {
                self.unconfirmed.remove(&open);
            }
            return;
        };
        let uncovered = self.journal.failed();
        self.journal_retry = Some(now + JOURNAL_RETRY);
        let mut notices = Vec::new();
        // The start commands of openings the write was to cover, not run
        // yet (queued after it, or waiting for a slot), never run.
        let starts = self.take_queued_starts(|open| uncovered.contains(&open));
        let mut said = HashSet::new();
        for cmd in starts {
            said.insert(cmd.open);
            let what = match self.unconfirmed.get(&cmd.open) {
                Some((_, c, _)) if !c.stop => Unjournaled::UsedPeriod,
                _ => Unjournaled::Stop,
            };
            notices.push(self.not_opened(cmd, what, &error));
        }
        // Every opening it was to cover is taken back whole (its used
        // mark, cool-down, count), and its set element is not added.
        for open in &uncovered {
            let Some((o, c, user)) = self.unconfirmed.get(open).cloned() else {
                continue;
            };
            self.uncommit(&o, *open, user.as_deref());
            let dropped: Vec<u64> = self
                .nft_pending
                .iter()
                .filter(|(_, p)| p.open == *open)
                .map(|(id, _)| *id)
                .collect();
            for id in &dropped {
                self.nft_pending.remove(id);
                // The element it named to make room stays ours.
                self.caps.room.release(*id, now);
            }
            if !dropped.is_empty() && !said.contains(open) {
                notices.push(Notice::NotOpened {
                    src: o.src,
                    door: self.door_name(o.door),
                    what: if c.stop {
                        Unjournaled::Stop
                    } else {
                        Unjournaled::UsedPeriod
                    },
                    error: error.clone(),
                });
            }
        }
        let pending = &self.nft_pending;
        self.effects.retain(|q| match q {
            Queued::Now(Effect::NftAdd { id, .. }) => pending.contains_key(id),
            _ => true,
        });
        if notices.is_empty() {
            notices.push(Notice::JournalFailed { error });
        }
        for notice in notices.into_iter().rev() {
            self.effects.push_front(Queued::Now(Effect::Log(notice)));
        }
        // Freed slots go to what is queued.
        self.next(Self::fill_slots);
    }

    /// The start commands not run yet (queued as effects, or waiting for a
    /// slot) of the openings `which` picks: taken out, with their `running
    /// command` lines, and returned.
    pub(super) fn take_queued_starts(&mut self, which: impl Fn(OpenId) -> bool) -> Vec<Command> {
        let mut taken = Vec::new();
        let commands = &mut self.commands;
        self.effects.retain(|q| {
            let Queued::Spawn { id, .. } = q else {
                return true;
            };
            let is_it = commands
                .get(*id)
                .is_some_and(|r| r.cmd.kind == CommandKind::Start && which(r.cmd.open));
            if is_it {
                taken.extend(commands.finish(*id).map(|r| r.cmd));
            }
            !is_it
        });
        taken.extend(self.commands.dequeue_starts(which));
        taken
    }

    /// The opening of `cmd` is undone before its start ran: its stop is
    /// cancelled and its door does not count as open.
    fn not_opened(&mut self, cmd: Command, what: Unjournaled, error: &str) -> Notice {
        self.engine.cancel_open(cmd.open);
        self.journal.remove(cmd.open);
        Notice::NotOpened {
            src: cmd.src,
            door: cmd.name,
            what,
            error: error.to_string(),
        }
    }
}
