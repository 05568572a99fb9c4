//! What the engine asks the shell to do: operator messages, commands, and
//! notices about state the shell persists.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

use super::stops::PendingStop;

/// Index of a door in the config the engine runs now. Doors are told
/// apart by it, never by name: two doors may share a name, and each still
/// runs its own start and stop commands. A reload renumbers doors
/// ([`super::Engine::reload`] says how old ids map to new ones).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DoorId(pub u16);

/// One opening of a door (its start command and the stop that undoes it),
/// numbered by the engine, so a stop can wait for exactly its own start.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OpenId(pub u64);

/// One thing to do, drained with [`super::Engine::poll_action`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// An operator message for the log file, syslog and `-v`.
    Log(Event),
    /// `src` completed a sequence of a door: an opening is proposed, and
    /// nothing of it is committed yet (no used mark, cool-down, count,
    /// line or command). The service decides on the whole value, then
    /// [`super::Engine::commit`]s it (its `OPEN SESAME`, start command and
    /// stop come out next) or drops it, which leaves no trace.
    Propose(Opening),
    /// Run a door's start or stop command.
    Run(Command),
    /// A one-time sequence was used: mark its line in the file and hand the
    /// engine the next one ([`super::Engine::set_sequence`]). Until then the
    /// door accepts no sequence at all, so a used one can never open twice.
    OneTimeUsed { door: DoorId },
    /// A stop command was scheduled, or moved to a new time (an extended
    /// door): the journal must know it before the start it undoes runs.
    /// A stop leaves the schedule by running ([`Action::Run`]).
    StopScheduled(PendingStop),
}

/// One proposed opening, whole: everything a decision about it needs, and
/// what crosses a process boundary (a sensor proposes, a warden decides).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opening {
    /// Numbers the proposal, so an answer names what it answers.
    pub id: u64,
    pub door: DoorId,
    pub src: IpAddr,
    /// The address knocked on (`%DST%`).
    pub dst: IpAddr,
    /// The protocol of the last step (`%PROTO%`).
    pub proto: crate::core::knock::Proto,
    /// Which of the door's live sequences was completed (a door of users
    /// has one per user and accepted period).
    pub variant: u16,
    /// That sequence's period counter, for a rotating door: the (door,
    /// period) that opens at most once.
    pub period: Option<u64>,
    /// When the last knock was seen.
    pub at: crate::core::knock::Timestamp,
}

/// What [`super::Engine::commit`] made of an opening.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Committed {
    /// Numbers the opening (its start, stop and journal records).
    pub open: OpenId,
    /// A start command runs.
    pub start: bool,
    /// A stop was scheduled or moved: the journal must know it before the
    /// opening takes effect.
    pub stop: bool,
    /// The door was open for the source already: its stop (of an earlier
    /// opening) was moved, nothing runs.
    pub extended: bool,
}

/// Whether a command opens or closes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommandKind {
    Start,
    Stop,
}

/// A command to run with `/bin/sh -c`, `%IP%` already substituted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// The door in the running config (`None`: a restored stop, or one of a
    /// door a reload removed).
    pub door: Option<DoorId>,
    /// The door's name, for log lines.
    pub name: Arc<str>,
    pub src: IpAddr,
    pub kind: CommandKind,
    pub command: String,
    /// The opening this command starts or undoes.
    pub open: OpenId,
}

/// An operator message. Its `Display` is the exact knockd 0.8 text (without
/// the timestamp), because scripts that tail the log match on it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// `IP: door: Stage N`
    Stage {
        src: IpAddr,
        door: Arc<str>,
        stage: u8,
    },
    /// `IP: door: OPEN SESAME`
    OpenSesame { src: IpAddr, door: Arc<str> },
    /// Ours: `IP: door: opened by USER`, right after `OPEN SESAME` at a
    /// door of users (`Sequence_Secret_Dir`): whose key opened it.
    OpenedBy {
        src: IpAddr,
        door: Arc<str>,
        user: Arc<str>,
    },
    /// `IP: door: sequence timeout (stage N)`
    SequenceTimeout {
        src: IpAddr,
        door: Arc<str>,
        stage: u8,
    },
    /// `IP: door: command timeout` (just before the stop command runs).
    CommandTimeout { src: IpAddr, door: Arc<str> },
    /// Ours: the door was knocked open again while open; its stop command
    /// was pushed back instead of stacking another firewall rule.
    Extended { src: IpAddr, door: Arc<str> },
    /// Ours: the attempt table was full and attempts were dropped.
    Evicted { count: u64, cap: usize },
    /// Ours: a rotating door's sequence of a period that already opened
    /// was completed again (a replay, by anyone): nothing runs.
    Replayed { src: IpAddr, door: Arc<str> },
    /// Ours: the door opened for this source less than `Cooldown` ago; its
    /// completions are ignored until then (said once per cool-down).
    CoolingDown {
        src: IpAddr,
        door: Arc<str>,
        left: std::time::Duration,
    },
}

impl Event {
    /// The knocker's address, if the message is about one: `-l` adds its
    /// host name after it.
    pub fn src(&self) -> Option<IpAddr> {
        match self {
            Event::Stage { src, .. }
            | Event::OpenSesame { src, .. }
            | Event::OpenedBy { src, .. }
            | Event::SequenceTimeout { src, .. }
            | Event::CommandTimeout { src, .. }
            | Event::Extended { src, .. }
            | Event::Replayed { src, .. }
            | Event::CoolingDown { src, .. } => Some(*src),
            Event::Evicted { .. } => None,
        }
    }

    /// The message with `IP (HOST)` in place of `IP` when a host name is
    /// known, as knockd writes it with `-l`.
    pub fn with_host<'a>(&'a self, host: Option<&'a str>) -> impl fmt::Display + 'a {
        WithHost { event: self, host }
    }
}

struct WithHost<'a> {
    event: &'a Event,
    host: Option<&'a str>,
}

impl fmt::Display for WithHost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(src) = self.event.src() {
            write!(f, "{src}")?;
            if let Some(host) = self.host {
                write!(f, " ({host})")?;
            }
            f.write_str(": ")?;
        }
        match self.event {
            Event::Stage { door, stage, .. } => write!(f, "{door}: Stage {stage}"),
            Event::OpenSesame { door, .. } => write!(f, "{door}: OPEN SESAME"),
            Event::OpenedBy { door, user, .. } => write!(f, "{door}: opened by {user}"),
            Event::SequenceTimeout { door, stage, .. } => {
                write!(f, "{door}: sequence timeout (stage {stage})")
            }
            Event::CommandTimeout { door, .. } => write!(f, "{door}: command timeout"),
            Event::Extended { door, .. } => {
                write!(f, "{door}: already open, command timeout extended")
            }
            Event::Replayed { door, .. } => write!(f, "{door}: replayed sequence refused"),
            Event::CoolingDown { door, left, .. } => write!(
                f,
                "{door}: opened again within its Cooldown; ignored for {}s more",
                left.as_secs_f64().ceil()
            ),
            Event::Evicted { count, cap } => write!(
                f,
                "attempt table full ({cap} attempts): {count} knock attempt(s) dropped"
            ),
        }
    }
}

impl fmt::Display for Event {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_host(None).fmt(f)
    }
}

/// Replaces every `%IP%` in a command with the knocker's address, in its
/// usual text form.
pub fn substitute_ip(command: &str, src: IpAddr) -> String {
    if command.contains("%IP%") {
        command.replace("%IP%", &src.to_string())
    } else {
        command.to_string()
    }
}

/// What a command's tokens stand for: the knock that opened the door.
#[derive(Debug, Clone, Copy)]
pub struct Tokens<'a> {
    /// `%IP%`: the knocker's address.
    pub ip: IpAddr,
    /// `%DOOR%`: the door's name.
    pub door: &'a str,
    /// `%DST%`: the address knocked on.
    pub dst: IpAddr,
    /// `%PROTO%`: `tcp` or `udp`, of the last step.
    pub proto: crate::core::knock::Proto,
    /// `%TIMEOUT%`: the door's `Cmd_Timeout`, in seconds.
    pub timeout: std::time::Duration,
    /// `%USER%`: whose key opened a door of users; empty at other doors.
    pub user: Option<&'a str>,
}

/// Replaces the tokens of [`crate::core::config::TOKENS`] in `command`
/// (`%FAMILY%` is 4 or 6). Any other `%WORD%` stays as it is, as in knockd.
pub fn substitute(command: &str, t: &Tokens<'_>) -> String {
    if !command.contains('%') {
        return command.to_string();
    }
    let timeout = {
        let ms = t.timeout.as_millis();
        if ms % 1000 == 0 {
            (ms / 1000).to_string()
        } else {
            t.timeout.as_secs_f64().to_string()
        }
    };
    let family = if t.ip.is_ipv6() { "6" } else { "4" };
    command
        .replace("%IP%", &t.ip.to_string())
        .replace("%DOOR%", t.door)
        .replace("%DST%", &t.dst.to_string())
        .replace("%PROTO%", t.proto.as_str())
        .replace("%TIMEOUT%", &timeout)
        .replace("%FAMILY%", family)
        .replace("%USER%", t.user.unwrap_or(""))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_knockd_text() {
        let src: IpAddr = "203.0.113.5".parse().unwrap();
        let door: Arc<str> = "openSSH".into();
        let ev = Event::Stage {
            src,
            door: door.clone(),
            stage: 2,
        };
        assert_eq!(ev.to_string(), "203.0.113.5: openSSH: Stage 2");
        assert_eq!(
            ev.with_host(Some("client.example")).to_string(),
            "203.0.113.5 (client.example): openSSH: Stage 2"
        );
        assert_eq!(
            Event::OpenSesame {
                src,
                door: door.clone()
            }
            .to_string(),
            "203.0.113.5: openSSH: OPEN SESAME"
        );
        assert_eq!(
            Event::SequenceTimeout {
                src,
                door: door.clone(),
                stage: 1
            }
            .to_string(),
            "203.0.113.5: openSSH: sequence timeout (stage 1)"
        );
        assert_eq!(
            Event::CommandTimeout { src, door }.to_string(),
            "203.0.113.5: openSSH: command timeout"
        );
    }

    #[test]
    fn ip_substitution() {
        let v4: IpAddr = "192.0.2.7".parse().unwrap();
        let v6: IpAddr = "2001:db8::7".parse().unwrap();
        assert_eq!(
            substitute_ip("iptables -A INPUT -s %IP% -j ACCEPT", v4),
            "iptables -A INPUT -s 192.0.2.7 -j ACCEPT"
        );
        assert_eq!(
            substitute_ip("a %IP% b %IP%%IP%", v6),
            "a 2001:db8::7 b 2001:db8::72001:db8::7"
        );
        assert_eq!(substitute_ip("no token", v4), "no token");
        assert_eq!(
            substitute_ip("%ip% is case-sensitive", v4),
            "%ip% is case-sensitive"
        );
    }
}
