//! An opening, whole: the door's bounds, its start command and stop, and
//! the knocker's address added to the door's nftables set, with the
//! set's answer.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::caps::Refusal;
use super::{Effect, NftAdded, Notice, Queued, Service};
use crate::core::engine::{Action, CommandKind, DoorId, OpenId};
use crate::core::knock::Timestamp;

impl Service {
    /// Door `id` opens for `src`: the engine's `OPEN SESAME`, and what
    /// the opening runs (its start command and stop, or an extension of
    /// its stop), taken together. Unless the door is over its bounds
    /// (openings per minute, stops pending): then the opening is refused,
    /// its start never runs and its stop is cancelled. An accepted opening
    /// of a door with an nftables set also adds the knocker to it.
    pub(super) fn opening(
        &mut self,
        id: DoorId,
        src: IpAddr,
        ahead: &mut super::Ahead,
        now: Timestamp,
    ) {
        let Some(Action::Log(open_sesame)) = self.engine.poll_action() else {
            return;
        };
        let (start, own_stop) = {
            let mut next = self.engine.peek_actions();
            let start = match next.next() {
                Some(Action::Run(c)) if c.kind == CommandKind::Start => Some(c.open),
                _ => None,
            };
            // The engine has already scheduled this opening's stop, if any.
            let own_stop = match (start, next.next()) {
                (Some(open), Some(Action::StopScheduled(s))) => s.open == open,
                _ => false,
            };
            (start, own_stop)
        };
        let nft = self.engine.door(id).and_then(|d| {
            d.nft_set_for(src.is_ipv6())
                .map(|set| (set.clone(), d.cmd_timeout))
        });
        // What a flood could make this opening cost: a root shell, a
        // firewall rule, a netlink call. An extension runs nothing; a
        // one-time door only the holder of its secret file can open, and a
        // refusal would waste its line.
        let costly = (start.is_some() || nft.is_some()) && !self.onetime.is_one_time(id);
        if costly && start.is_none() {
            // Only a set: one netlink message, bounded by the set's size
            // and a netlink budget, not by the openings a minute meant for
            // commands (a flood would use those up and lock the owner out).
            if let Err(refusal) = self.caps.check_nft(id, src, now) {
                if let Refusal::Report(limit) = refusal {
                    let door = self.door_name(id);
                    self.log(Notice::Refused { src, door, limit });
                }
                return;
            }
        } else if costly {
            // Stops pending before this opening: the engine's count, less
            // the openings of the same input not decided yet (this one
            // included).
            let undecided = ahead.get(&id).copied().unwrap_or(0);
            let before = self.engine.pending_stops_of(id).saturating_sub(undecided);
            if own_stop {
                if let Some(n) = ahead.get_mut(&id) {
                    *n = n.saturating_sub(1);
                }
            }
            if let Err(refusal) = self.caps.check(id, before, now) {
                // Take the opening back: its start never runs.
                if let Some(open) = start {
                    self.engine.poll_action();
                    if own_stop {
                        self.engine.poll_action();
                    }
                    self.engine.cancel_open(open);
                }
                if let Refusal::Report(limit) = refusal {
                    let door = self.door_name(id);
                    self.log(Notice::Refused { src, door, limit });
                }
                return;
            }
        }
        self.log(Notice::Event(open_sesame));
        if let Some((set, timeout)) = nft {
            let door = self.door_name(id);
            if self.settings.dry_run {
                self.log(Notice::WouldAddToSet {
                    door,
                    src,
                    set: set.to_string(),
                    timeout,
                });
            } else {
                let name = set.to_string();
                let evict = self.caps.room.claim(&name, src, now);
                self.nft_pending.push_back((id, src, start, name));
                self.push(Effect::NftAdd {
                    set,
                    addr: src,
                    timeout,
                    evict,
                });
            }
        }
    }

    /// The shell carried out an [`Effect::NftAdd`]: what the kernel did,
    /// or why not. When the kernel refused, the door does not count as
    /// open: the opening's start command, if it has one and it has not run
    /// yet, never runs, and its stop is cancelled.
    pub fn handle_nft_result(&mut self, result: Result<NftAdded, String>, now: Timestamp) {
        self.advance(now);
        let Some((id, src, open, set)) = self.nft_pending.pop_front() else {
            return;
        };
        let door = self.door_name(id);
        let timeout = self
            .engine
            .door(id)
            .map(|d| d.cmd_timeout)
            .unwrap_or_default();
        let outcome = result.as_ref().ok().copied();
        self.caps
            .room
            .answered(&set, src, outcome, now + timeout, now);
        match result {
            Ok(NftAdded::Permanent) => self.next(|s| s.log(Notice::LeftInSet { door, src, set })),
            Ok(added) => self.next(|s| {
                s.log(Notice::AddedToSet {
                    door,
                    src,
                    set,
                    timeout,
                    refreshed: added == NftAdded::Refreshed,
                })
            }),
            Err(error) => {
                if let Some(open) = open {
                    self.drop_queued_start(open);
                }
                self.next(|s| s.log(Notice::NotAddedToSet { src, door, error }));
            }
        }
    }

    /// The start command of opening `open`, not run yet, never runs: it
    /// leaves the effect queue (with its `running command` line) or the
    /// queue of commands waiting for a slot, and its stop is cancelled.
    fn drop_queued_start(&mut self, open: OpenId) {
        let queued = std::mem::take(&mut self.effects);
        let mut kept = VecDeque::with_capacity(queued.len());
        for q in queued {
            if let Queued::Now(Effect::Run { id, .. }) = &q {
                let is_it = self
                    .commands
                    .get(*id)
                    .is_some_and(|r| r.cmd.kind == CommandKind::Start && r.cmd.open == open);
                if is_it {
                    self.commands.finish(*id);
                    if matches!(
                        kept.back(),
                        Some(Queued::Now(Effect::Log(Notice::RunningCommand { .. })))
                    ) {
                        kept.pop_back();
                    }
                    continue;
                }
            }
            kept.push_back(q);
        }
        self.effects = kept;
        self.commands.dequeue_starts(|o| o == open);
        self.engine.cancel_open(open);
        self.journal.remove(open);
    }
}
