//! What happens when a source completes a door's sequence: cool-down,
//! replay refusal for rotating doors, the start command, its stop, and a
//! one-time door moving on. Part of [`Engine`]; split out of `mod.rs` to
//! keep the knock path and the opening path apart.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::{
    substitute, Action, Command, CommandKind, Committed, DoorId, Engine, Event, OpenId, Opening,
    PendingStop, Tokens, MAX_COOLDOWNS,
};
use crate::core::config::{Reopen, SequenceSource};
use crate::core::knock::{Knock, Timestamp};

impl Engine {
    /// `src` completed sequence `variant` of door `d`: an opening is
    /// proposed, unless what the engine knows already refuses it (a
    /// cool-down, or that sequence of a rotating door already opened: a
    /// replay). Nothing is committed until [`Engine::commit`].
    pub(super) fn complete(&mut self, d: u16, variant: u16, k: &Knock, now: Timestamp) {
        let Some(period) = self.refusal_check(d, variant, k.src, now) else {
            return;
        };
        self.proposals += 1;
        self.proposed = true;
        self.actions.push_back(Action::Propose(Opening {
            id: self.proposals,
            door: DoorId(d),
            src: k.src,
            dst: k.dst,
            proto: k.proto,
            variant,
            period,
            at: now,
        }));
    }

    /// What the engine itself refuses of a completion of `variant` of door
    /// `d` by `src` (said as a line): `None`. Otherwise the variant's
    /// period, if the door rotates.
    fn refusal_check(
        &mut self,
        d: u16,
        variant: u16,
        src: IpAddr,
        now: Timestamp,
    ) -> Option<Option<u64>> {
        if let Some(left) = self.cooling(d, src, now) {
            self.cooling_notice(d, src, left);
            return None;
        }
        let door = &self.doors[d as usize];
        if !door.once {
            return Some(None);
        }
        let v = door.live.variants.get(variant as usize)?;
        if v.used {
            let door = door.name.clone();
            self.actions
                .push_back(Action::Log(Event::Replayed { src, door }));
            return None;
        }
        Some(Some(v.label))
    }

    /// Whose key made the sequence `o` completed (a door of users), while
    /// its door's sequences are the ones it was proposed with.
    pub fn user_of(&self, o: &Opening) -> Option<Arc<str>> {
        let door = self.doors.get(o.door.0 as usize)?;
        let v = door.live.variants.get(o.variant as usize)?;
        o.period
            .is_none_or(|p| p == v.label)
            .then(|| v.user.clone())?
    }

    /// Whether committing `o` would run its door's start command (not an
    /// extension of an open door's stop, not a door without one): what a
    /// flood could make it cost.
    pub fn would_run_start(&self, o: &Opening) -> bool {
        let Some(door) = self.doors.get(o.door.0 as usize) else {
            return false;
        };
        let v6 = o.src.is_ipv6();
        if door.config.start_command_for(v6).is_none() {
            return false;
        }
        let extend =
            door.config.stop_command_for(v6).is_some() && door.config.reopen == Reopen::Extend;
        !(extend && self.stops.has_open(o.door, o.src))
    }

    /// The service accepted opening `o`: it is committed (the sequence
    /// marked used, the cool-down started, the opening counted) and what
    /// it runs comes out of [`Engine::poll_action`] next, before anything
    /// queued: its `OPEN SESAME` line, start command and stop, or the
    /// extension of its stop. Returns what was committed, or `None` when
    /// it can no longer open (an earlier proposal of the same input used
    /// its period or started its cool-down; said as a line).
    pub fn commit(&mut self, o: &Opening) -> Option<Committed> {
        let now = o.at;
        let d = o.door.0;
        if d as usize >= self.doors.len() {
            return None;
        }
        let queued = std::mem::take(&mut self.actions);
        let checked = self.refusal_check(d, o.variant, o.src, now);
        let opened = match checked {
            Some(period) if period == o.period => {
                let door = &mut self.doors[d as usize];
                if door.once {
                    if let Some(v) = door.live.variants.get_mut(o.variant as usize) {
                        v.used = true;
                    }
                }
                Some(self.open(o, now))
            }
            // The door's sequences changed since the proposal.
            Some(_) => None,
            None => None,
        };
        self.actions.extend(queued);
        opened
    }

    /// Takes back opening `open` of `o`, committed but refused after (its
    /// journal write or its set failed) before its start ran: its period
    /// is not used, its cool-down not started, it does not count, and its
    /// stop is cancelled. `user` is whose sequence it was (a door of
    /// users), as [`Engine::user_of`] said before the commit.
    pub fn uncommit(&mut self, o: &Opening, open: OpenId, user: Option<&str>) {
        self.stops.remove(open);
        self.stats.opened = self.stats.opened.saturating_sub(1);
        self.cooldowns.remove(&(o.door, o.src));
        if let (Some(period), Some(door)) = (o.period, self.doors.get_mut(o.door.0 as usize)) {
            let of_user = |v: &&mut super::Variant| v.label == period && v.user.as_deref() == user;
            for v in door.live.variants.iter_mut().filter(of_user) {
                v.used = false;
            }
        }
    }

    /// How long `src` must still wait at door `d` (its `Cooldown`), if at
    /// all; a cool-down over is forgotten.
    fn cooling(&mut self, d: u16, src: IpAddr, now: Timestamp) -> Option<Duration> {
        let key = (DoorId(d), src);
        let until = self.cooldowns.get(&key)?.0;
        if now >= until {
            self.cooldowns.remove(&key);
            return None;
        }
        Some(until - now)
    }

    /// Says once per cool-down that `src`'s completion at `d` is ignored.
    fn cooling_notice(&mut self, d: u16, src: IpAddr, left: Duration) {
        let Some(entry) = self.cooldowns.get_mut(&(DoorId(d), src)) else {
            return;
        };
        if !entry.1 {
            entry.1 = true;
            let door = self.doors[d as usize].name.clone();
            self.actions
                .push_back(Action::Log(Event::CoolingDown { src, door, left }));
        }
    }

    /// Starts `src`'s cool-down at door `d`. The table is bounded: when
    /// full, cool-downs that ended are dropped, and if none has, the new
    /// one is not kept (a cool-down only spares the firewall repeats).
    fn start_cooldown(&mut self, d: u16, src: IpAddr, now: Timestamp) {
        let Some(cooldown) = self.doors[d as usize].config.cooldown else {
            return;
        };
        if self.cooldowns.len() >= MAX_COOLDOWNS {
            self.cooldowns.retain(|_, (until, _)| *until > now);
            if self.cooldowns.len() >= MAX_COOLDOWNS {
                return;
            }
        }
        self.cooldowns
            .insert((DoorId(d), src), (now + cooldown, false));
    }

    fn open(&mut self, o: &Opening, now: Timestamp) -> Committed {
        let (d, src) = (o.door.0, o.src);
        self.stats.opened += 1;
        self.start_cooldown(d, src, now);
        let id = o.door;
        let door = &self.doors[d as usize];
        let name = door.name.clone();
        self.actions.push_back(Action::Log(Event::OpenSesame {
            src,
            door: name.clone(),
        }));
        let open = OpenId(self.opens + 1);
        self.opens += 1;
        let mut committed = Committed {
            open,
            start: false,
            stop: false,
            extended: false,
        };
        let v6 = src.is_ipv6();
        // knockd runs nothing, not even the stop command, without a start
        // command.
        if let Some(start) = door.config.start_command_for(v6) {
            let stop = door.config.stop_command_for(v6);
            let due = now + door.config.cmd_timeout;
            let extend = stop.is_some() && door.config.reopen == Reopen::Extend;
            let extended = if extend {
                self.stops.extend(id, src, due)
            } else {
                None
            };
            if let Some(stop) = extended {
                self.actions.push_back(Action::Log(Event::Extended {
                    src,
                    door: name.clone(),
                }));
                self.actions.push_back(Action::StopScheduled(stop));
                committed.stop = true;
                committed.extended = true;
            } else {
                let tokens = Tokens {
                    ip: src,
                    door: &name,
                    dst: o.dst,
                    proto: o.proto,
                    timeout: door.config.cmd_timeout,
                    user: door
                        .live
                        .variants
                        .get(o.variant as usize)
                        .and_then(|v| v.user.as_deref()),
                };
                let start = substitute(start, &tokens);
                let stop = stop.map(|s| substitute(s, &tokens));
                self.actions.push_back(Action::Run(Command {
                    door: Some(id),
                    name: name.clone(),
                    src,
                    kind: CommandKind::Start,
                    command: start,
                    open,
                }));
                committed.start = true;
                if let Some(command) = stop {
                    let stop = PendingStop {
                        door: Some(id),
                        name: name.clone(),
                        src,
                        command,
                        due,
                        open,
                    };
                    self.stops.add(stop.clone());
                    self.actions.push_back(Action::StopScheduled(stop));
                    committed.stop = true;
                }
            }
        }
        if matches!(door.config.sequence, SequenceSource::OneTime { .. }) {
            self.doors[d as usize].live = super::Live::default();
            self.attempts.clear_door(d);
            self.rebuild_ports();
            self.actions.push_back(Action::OneTimeUsed { door: id });
        }
        committed
    }
}
