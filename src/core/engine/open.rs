//! What happens when a source completes a door's sequence: cool-down,
//! replay refusal for rotating doors, the start command, its stop, and a
//! one-time door moving on. Part of [`Engine`]; split out of `mod.rs` to
//! keep the knock path and the opening path apart.

use std::net::IpAddr;
use std::time::Duration;

use super::{
    substitute, Action, Command, CommandKind, DoorId, Engine, Event, OpenId, PendingStop, Tokens,
    MAX_COOLDOWNS,
};
use crate::core::config::{Reopen, SequenceSource};
use crate::core::knock::{Knock, Timestamp};

impl Engine {
    /// `src` completed sequence `variant` of door `d`: the door opens,
    /// unless that sequence of a rotating door already opened (a replay).
    pub(super) fn complete(&mut self, d: u16, variant: u8, k: &Knock, now: Timestamp) {
        let src = k.src;
        if let Some(left) = self.cooling(d, src, now) {
            return self.cooling_notice(d, src, left);
        }
        let door = &mut self.doors[d as usize];
        if door.once {
            if let Some(v) = door.live.get_mut(variant as usize) {
                if v.used {
                    let door = door.name.clone();
                    self.actions
                        .push_back(Action::Log(Event::Replayed { src, door }));
                    return;
                }
                v.used = true;
            }
        }
        self.open(d, k, now);
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

    fn open(&mut self, d: u16, k: &Knock, now: Timestamp) {
        let src = k.src;
        self.stats.opened += 1;
        self.start_cooldown(d, src, now);
        let id = DoorId(d);
        let door = &self.doors[d as usize];
        let name = door.name.clone();
        self.actions.push_back(Action::Opened { door: id, src });
        self.actions.push_back(Action::Log(Event::OpenSesame {
            src,
            door: name.clone(),
        }));
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
            } else {
                let tokens = Tokens {
                    ip: src,
                    door: &name,
                    dst: k.dst,
                    proto: k.proto,
                    timeout: door.config.cmd_timeout,
                };
                let start = substitute(start, &tokens);
                let stop = stop.map(|s| substitute(s, &tokens));
                self.opens += 1;
                let open = OpenId(self.opens);
                self.actions.push_back(Action::Run(Command {
                    door: Some(id),
                    name: name.clone(),
                    src,
                    kind: CommandKind::Start,
                    command: start,
                    open,
                }));
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
                }
            }
        }
        if matches!(door.config.sequence, SequenceSource::OneTime { .. }) {
            self.doors[d as usize].live.clear();
            self.attempts.clear_door(d);
            self.rebuild_ports();
            self.actions.push_back(Action::OneTimeUsed { door: id });
        }
    }
}
