//! An opening, whole: proposed by the engine as one value, decided here
//! (a rotating period's used mark, the door's bounds) before anything is
//! committed, then its start command and stop, the used mark journaled,
//! and the knocker's address added to the door's nftables set, with the
//! set's answer (which names its request).

use super::caps::Refusal;
use super::{Effect, Mode, NftAdded, Notice, Service};
use crate::core::engine::{Action, Event, OpenId, Opening};
use crate::core::knock::Timestamp;
use std::sync::Arc;

/// An [`Effect::NftAdd`] awaiting its answer.
pub(super) struct NftPending {
    opening: Opening,
    /// Whose sequence it was (a door of users).
    user: Option<Arc<str>>,
    /// The opening as committed.
    pub(super) open: OpenId,
    set: String,
    /// Its lines are over the budget: the answer is not logged either.
    quiet: bool,
}

impl Service {
    /// `o` was proposed by the engine: decided here, whole, before
    /// anything of it is committed. A rotating door's period must be one
    /// it accepts now and not used (the marks here are the durable ones);
    /// a costly opening must be within its door's bounds (openings per
    /// minute, stops pending). A refused opening commits nothing: no used
    /// mark, no cool-down, no count. An accepted one is committed in the
    /// engine (its `OPEN SESAME`, start command and stop follow), its
    /// period marked used and journaled (before its start command or set
    /// element: fail closed), and the knocker added to the door's set.
    pub(super) fn opening(&mut self, o: Opening) {
        let id = o.door;
        if let Err(reason) = self.validate(&o, self.now) {
            tracing::debug!(door = id.0, src = %o.src, reason = reason.as_str(), "proposal dropped");
            if self.dropped.note(self.now) {
                let door = self.engine.door_name(id).cloned();
                self.log(Notice::ProposalDropped {
                    src: o.src,
                    door,
                    reason,
                });
            }
            return;
        }
        let Some(door) = self.engine.door(id) else {
            return;
        };
        let name = self.door_name(id);
        let user = self.engine.user_of(&o);
        if let Some(period) = o.period {
            if self.rotating.is_used(&name, user.as_ref(), period) {
                self.log(Notice::Event(Event::Replayed {
                    src: o.src,
                    door: name,
                }));
                return;
            }
        }
        let nft = door
            .nft_set_for(o.src.is_ipv6())
            .map(|set| (set.clone(), door.cmd_timeout));
        // What a flood could make this opening cost: a root shell, a
        // firewall rule, a netlink call. An extension runs nothing; a
        // one-time door only the holder of its secret file can open, and a
        // refusal would waste its line.
        let start = self.engine.would_run_start(&o);
        let costly = (start || nft.is_some()) && !self.onetime.is_one_time(id);
        let set_only = costly && !start;
        // Only a set: one netlink message, bounded by the set's size and a
        // netlink budget, not by the openings a minute meant for commands
        // (a flood would use those up and lock the owner out).
        let bounds = if set_only {
            self.caps.check_nft(id, o.src, o.at)
        } else if costly {
            let before = self.engine.pending_stops_of(id);
            self.caps.check(id, before, o.at)
        } else {
            Ok(())
        };
        if let Err(refusal) = bounds {
            if let Refusal::Report(limit) = refusal {
                self.log(Notice::Refused {
                    src: o.src,
                    door: name,
                    limit,
                });
            }
            return;
        }
        let Some(committed) = self.engine.commit(&o) else {
            return;
        };
        let open = committed.open;
        // A flood admitted into a set would write thousands of lines a
        // second: its openings' lines share the noisy lines' budgets.
        let quiet = set_only && !self.set_lines.allow(&name, self.now);
        // Its `OPEN SESAME` comes first, then the set, then its commands.
        if let Some(Action::Log(open_sesame)) = self.engine.poll_action() {
            if !quiet {
                self.log(Notice::Event(open_sesame));
            }
        }
        // Then who opened it (a door of users), in a line of its own: the
        // line above stays knockd's.
        if let Some(user) = &user {
            if !quiet {
                self.log(Notice::Event(Event::OpenedBy {
                    src: o.src,
                    door: name.clone(),
                    user: user.clone(),
                }));
            }
        }
        let live = self.settings.mode == Mode::Live;
        let mut durable = false;
        if let Some(period) = o.period {
            if let Some(mark) = self.rotating.mark_used(id, user.clone(), period) {
                if live {
                    self.journal.mark_used(open, mark);
                    durable = true;
                }
            }
        }
        // Until the journal holds what it needs, the opening is taken
        // back whole if the write fails.
        let journaled = live && (durable || (committed.stop && !committed.extended));
        if journaled {
            self.unconfirmed.insert(open, (o, committed, user.clone()));
        }
        if let Some((set, timeout)) = nft {
            if self.settings.dry_run {
                self.log(Notice::WouldAddToSet {
                    door: name,
                    src: o.src,
                    set: set.to_string(),
                    timeout,
                });
            } else {
                // The opening's stop and used mark are on disk before the
                // kernel admits anyone (journal first, then act).
                if journaled && self.first_start.is_none() {
                    self.first_start = Some(self.effects.len());
                }
                self.nft_requests += 1;
                let request = self.nft_requests;
                let name = set.to_string();
                let evict = self.caps.room.claim(request, &name, o.src, self.now);
                self.nft_pending.insert(
                    request,
                    NftPending {
                        opening: o,
                        user,
                        open,
                        set: name,
                        quiet,
                    },
                );
                self.push(Effect::NftAdd {
                    id: request,
                    set,
                    addr: o.src,
                    timeout,
                    evict,
                });
            }
        }
    }

    /// Takes back committed opening `open` of `o` before its start ran (its
    /// journal write or its set failed): the engine forgets it, and its
    /// period is not used.
    pub(super) fn uncommit(&mut self, o: &Opening, open: OpenId, user: Option<&str>) {
        self.engine.uncommit(o, open, user);
        self.journal.remove(open);
        self.caps.forget(o.door, o.at);
        self.unconfirmed.remove(&open);
        if let Some(period) = o.period {
            let name = self.door_name(o.door);
            self.rotating.unmark(&name, user, period);
            self.journal.unmark_used();
        }
    }

    /// The shell carried out [`Effect::NftAdd`] `id`: `Ok(refreshed)` (the
    /// knocker was in the set already: its timeout starts over), or why
    /// not. When the kernel refused, the door does not count as open: the
    /// opening's start command, if it has one and it has not run yet, never
    /// runs, its stop is cancelled and its period is not used.
    pub fn handle_nft_result(&mut self, id: u64, result: Result<NftAdded, String>, now: Timestamp) {
        self.advance(now);
        let Some(NftPending {
            opening,
            user,
            open,
            set,
            quiet,
        }) = self.nft_pending.remove(&id)
        else {
            return;
        };
        let (src, door) = (opening.src, self.door_name(opening.door));
        let timeout = self
            .engine
            .door(opening.door)
            .map(|d| d.cmd_timeout)
            .unwrap_or_default();
        let outcome = result.as_ref().ok().copied();
        self.caps
            .room
            .answered(id, &set, src, outcome, now + timeout, now);
        match result {
            // Over the budget of this door's lines (a flood into a set-only
            // door): counted in the summary instead, whatever the answer.
            Ok(_) if quiet => {}
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
                self.drop_queued_start(open);
                self.uncommit(&opening, open, user.as_deref());
                if !quiet {
                    self.next(|s| s.log(Notice::NotAddedToSet { src, door, error }));
                }
            }
        }
    }

    /// The start command of opening `open`, not run yet, never runs: it
    /// leaves the effect queue (with its `running command` line) or the
    /// queue of commands waiting for a slot, and its stop is cancelled.
    fn drop_queued_start(&mut self, open: OpenId) {
        self.take_queued_starts(|o| o == open);
        self.engine.cancel_open(open);
        self.journal.remove(open);
    }
}
