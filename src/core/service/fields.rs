//! The stable name and the structured fields of every operator message:
//! what a JSON line and a journald entry carry besides the text line
//! ([`super::record`] writes them). One exhaustive match per table, so a
//! message cannot be added without its name and fields.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use super::caps::Limit;
use super::notice::{kind_word, Notice, Unjournaled};
use crate::core::engine::Event;
use crate::core::ring::Why;

/// A value a log field carries: typed, so the JSON line writes numbers
/// and booleans as such (the journal writes every value as text).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Str(String),
    Int(i64),
    /// A duration, in seconds (fractions where the text line has them).
    Secs(f64),
    Bool(bool),
    List(Vec<String>),
}

/// One field of a structured log line: a stable snake_case key and its
/// value.
pub type Field = (&'static str, Value);

fn s(v: impl ToString) -> Value {
    Value::Str(v.to_string())
}

fn n(v: impl TryInto<i64>) -> Value {
    Value::Int(v.try_into().unwrap_or(i64::MAX))
}

fn secs(d: Duration) -> Value {
    Value::Secs(d.as_secs_f64())
}

fn path(p: &std::path::Path) -> Value {
    Value::Str(p.display().to_string())
}

fn ip(a: IpAddr) -> Field {
    ("ip", s(a))
}

fn door(d: &Arc<str>) -> Field {
    ("door", Value::Str(d.to_string()))
}

impl Notice {
    /// The stable snake_case name of this kind of message (`event` in a
    /// JSON line, `KNOCKD_EVENT=` in the journal). Log watchers match on
    /// it, so a name never changes once released; every variant has one
    /// (the match is exhaustive: a new message cannot be added without).
    pub fn event(&self) -> &'static str {
        match self {
            Notice::Event(e) => match e {
                Event::Stage { .. } => "stage",
                Event::OpenSesame { .. } => "open_sesame",
                Event::OpenedBy { .. } => "opened_by",
                Event::SequenceTimeout { .. } => "sequence_timeout",
                Event::CommandTimeout { .. } => "command_timeout",
                Event::Extended { .. } => "extended",
                Event::Evicted { .. } => "attempts_dropped",
                Event::Replayed { .. } => "replayed",
                Event::CoolingDown { .. } => "cooling_down",
            },
            Notice::NotStarting { .. } => "not_starting",
            Notice::StartingUp { .. } => "starting_up",
            Notice::ShuttingDown => "shutting_down",
            Notice::Rereading { .. } => "rereading_config",
            Notice::Warning(_) => "config_warning",
            Notice::ConfigError(_) => "config_error",
            Notice::KeepingConfig { .. } => "keeping_config",
            Notice::StateFileChanged { .. } => "state_file_changed",
            Notice::InterfaceChanged { .. } => "interface_changed",
            Notice::LogFileKept { .. } => "log_file_kept",
            Notice::RunningCommand { .. } => "running_command",
            Notice::WouldRun { .. } => "would_run",
            Notice::WouldAddToSet { .. } => "would_add_to_set",
            Notice::AddedToSet { .. } => "added_to_set",
            Notice::LeftInSet { .. } => "left_in_set",
            Notice::NotAddedToSet { .. } => "not_added_to_set",
            Notice::CannotRun { .. } => "cannot_run",
            Notice::NonZeroStatus { .. } => "command_failed",
            Notice::KilledBySignal { .. } => "command_killed",
            Notice::CannotWait { .. } => "cannot_wait",
            Notice::StillRunning { .. } => "still_running",
            Notice::LeftRunning { .. } => "left_running",
            Notice::StopKept { .. } => "stop_kept",
            Notice::KillingStart { .. } => "killing_start",
            Notice::StartNeverRan { .. } => "start_never_ran",
            Notice::Refused { .. } => "opening_refused",
            Notice::RefusedMore { .. } => "openings_refused",
            Notice::NotOpened { .. } => "not_opened",
            Notice::ProposalDropped { .. } => "proposal_dropped",
            Notice::ProposalsDroppedMore { .. } => "proposals_dropped",
            Notice::StopRetry { .. } => "stop_retry",
            Notice::Suppressed { .. } => "lines_suppressed",
            Notice::SuppressedAll { .. } => "lines_suppressed_all",
            Notice::OpeningsNotLogged { .. } => "openings_not_logged",
            Notice::StateFileProblem { .. } => "state_file_problem",
            Notice::Restored { .. } => "stops_restored",
            Notice::JournalFailed { .. } => "state_file_failed",
            Notice::StateFileFull { .. } => "state_file_full",
            Notice::OneTimeDryRun { .. } => "one_time_dry_run",
            Notice::OneTimeExhausted { .. } => "one_time_exhausted",
            Notice::OneTimeMarkFailed { .. } => "one_time_mark_failed",
            Notice::OneTimeBurned { .. } => "one_time_burned",
            Notice::InterfaceWaiting { .. } => "interface_waiting",
            Notice::InterfaceGone { .. } => "interface_gone",
            Notice::Listening { .. } => "listening",
            Notice::DefaultInterface { .. } => "default_interface",
            Notice::NoDefaultInterface => "no_default_interface",
            Notice::DefaultRouteMoved { .. } => "default_route_moved",
            Notice::CaptureRetry { .. } => "capture_retry",
            Notice::CaptureLost { .. } => "capture_lost",
            Notice::Addresses { .. } => "addresses",
            Notice::CaptureResized { .. } => "capture_resized",
            Notice::CaptureNotResized { .. } => "capture_not_resized",
            Notice::NotAHost { .. } => "not_a_host",
            Notice::CaptureStats { .. } => "capture_stats",
        }
    }

    /// The message's facts as fields: `ip` and `door` first where it has
    /// them, then what this kind of message carries. The text line says
    /// the same in words; these are for log shippers, which should not
    /// need a pattern per line shape.
    pub fn fields(&self) -> Vec<Field> {
        match self {
            Notice::Event(e) => match e {
                Event::Stage {
                    src,
                    door: d,
                    stage,
                }
                | Event::SequenceTimeout {
                    src,
                    door: d,
                    stage,
                } => vec![ip(*src), door(d), ("stage", n(*stage))],
                Event::OpenSesame { src, door: d }
                | Event::CommandTimeout { src, door: d }
                | Event::Extended { src, door: d }
                | Event::Replayed { src, door: d } => vec![ip(*src), door(d)],
                Event::OpenedBy { src, door: d, user } => {
                    vec![ip(*src), door(d), ("user", s(user))]
                }
                Event::Evicted { count, cap } => vec![("count", n(*count)), ("cap", n(*cap))],
                Event::CoolingDown { src, door: d, left } => vec![
                    ip(*src),
                    door(d),
                    ("left", Value::Secs(left.as_secs_f64().ceil())),
                ],
            },
            Notice::NotStarting { reason, left } => {
                vec![("reason", s(reason)), ("count", n(*left))]
            }
            Notice::StartingUp { interfaces } => vec![("interfaces", s(interfaces))],
            Notice::ShuttingDown => vec![],
            Notice::Rereading { path: p } => vec![("path", path(p))],
            Notice::Warning(w) => {
                let mut v = vec![("path", path(&w.file))];
                v.extend(w.line.map(|l| ("line", n(l))));
                v.push(("reason", s(&w.message)));
                v
            }
            Notice::ConfigError(e) => {
                let mut v = vec![("path", path(&e.file))];
                v.extend(e.line.map(|l| ("line", n(l))));
                v.extend(e.key.as_ref().map(|k| ("key", s(k))));
                v.push(("error", s(&e.message)));
                v
            }
            Notice::KeepingConfig { path: p, errors } => {
                vec![("path", path(p)), ("count", n(*errors))]
            }
            Notice::StateFileChanged { state, path: p } => {
                vec![("state_file", path(state)), ("path", path(p))]
            }
            Notice::InterfaceChanged {
                wanted,
                path: p,
                current,
            } => vec![
                ("wanted", Value::List(wanted.clone())),
                ("path", path(p)),
                ("interfaces", Value::List(current.clone())),
            ],
            Notice::LogFileKept { error } => vec![("error", s(error))],
            Notice::RunningCommand { door: d, command } => {
                vec![door(d), ("command", s(command))]
            }
            Notice::WouldRun {
                door: d,
                kind,
                command,
            } => vec![
                door(d),
                ("kind", s(kind_word(*kind))),
                ("command", s(command)),
            ],
            Notice::WouldAddToSet {
                door: d,
                src,
                set,
                timeout,
            } => vec![
                ip(*src),
                door(d),
                ("set", s(set)),
                ("timeout", secs(*timeout)),
            ],
            Notice::AddedToSet {
                door: d,
                src,
                set,
                timeout,
                refreshed,
            } => vec![
                ip(*src),
                door(d),
                ("set", s(set)),
                ("timeout", secs(*timeout)),
                ("refreshed", Value::Bool(*refreshed)),
            ],
            Notice::LeftInSet { door: d, src, set } => vec![ip(*src), door(d), ("set", s(set))],
            Notice::NotAddedToSet {
                src,
                door: d,
                error,
            } => vec![ip(*src), door(d), ("error", s(error))],
            Notice::NotOpened {
                src,
                door: d,
                what,
                error,
            } => vec![
                ip(*src),
                door(d),
                (
                    "unjournaled",
                    s(match what {
                        Unjournaled::Stop => "stop",
                        Unjournaled::UsedPeriod => "used_period",
                    }),
                ),
                ("error", s(error)),
            ],
            Notice::ProposalDropped {
                src,
                door: d,
                reason,
            } => {
                let mut v = vec![ip(*src)];
                v.extend(d.as_ref().map(door));
                v.push(("reason", s(reason.as_str())));
                v
            }
            Notice::ProposalsDroppedMore { count } => vec![("count", n(*count))],
            Notice::CannotRun { door: d, reason } | Notice::CannotWait { door: d, reason } => {
                vec![door(d), ("error", s(reason))]
            }
            Notice::NonZeroStatus { door: d, code } => vec![door(d), ("status", n(*code))],
            Notice::KilledBySignal { door: d, signal } => vec![door(d), ("signal", n(*signal))],
            Notice::StillRunning {
                door: d,
                after,
                command,
            } => vec![
                door(d),
                ("after", Value::Secs(after.as_secs() as f64)),
                ("command", s(command)),
            ],
            Notice::LeftRunning { door: d, command }
            | Notice::StopKept { door: d, command }
            | Notice::KillingStart { door: d, command } => {
                vec![door(d), ("command", s(command))]
            }
            Notice::StartNeverRan { src, door: d } => vec![ip(*src), door(d)],
            Notice::Refused {
                src,
                door: d,
                limit,
            } => {
                let (name, count) = match limit {
                    Limit::OpensPerMinute(c) => ("MaxOpensPerMinute", n(*c)),
                    Limit::PendingStops(c) => ("MaxPendingStops", n(*c)),
                    Limit::NftAddsPerSecond(c) => ("netlink budget", n(*c)),
                };
                vec![ip(*src), door(d), ("limit", s(name)), ("count", count)]
            }
            Notice::RefusedMore { door: d, count } => vec![door(d), ("count", n(*count))],
            Notice::StopRetry {
                door: d,
                src,
                after,
            } => vec![
                ip(*src),
                door(d),
                ("after", Value::Secs(after.as_secs() as f64)),
            ],
            Notice::Suppressed {
                door: d,
                count,
                rate,
            } => vec![door(d), ("count", n(*count)), ("rate", n(*rate))],
            Notice::SuppressedAll { count, rate } => {
                vec![("count", n(*count)), ("rate", n(*rate))]
            }
            Notice::OpeningsNotLogged {
                door: Some(d),
                count,
                rate,
            } => vec![door(d), ("count", n(*count)), ("rate", n(*rate))],
            Notice::OpeningsNotLogged {
                door: None,
                count,
                rate,
            } => vec![("count", n(*count)), ("rate", n(*rate))],
            Notice::StateFileProblem { path: p, problem } => {
                vec![("path", s(p)), ("reason", s(problem))]
            }
            Notice::Restored {
                count,
                path: p,
                overdue,
            } => vec![
                ("path", s(p)),
                ("count", n(*count)),
                ("overdue", n(*overdue)),
            ],
            Notice::JournalFailed { error } => vec![("error", s(error))],
            Notice::StateFileFull { path: p, reserve } => {
                vec![("path", s(p)), ("reserve", n(*reserve))]
            }
            Notice::OneTimeDryRun { door: d, path: p } => vec![door(d), ("path", path(p))],
            Notice::OneTimeExhausted { door: d } => vec![door(d)],
            Notice::OneTimeMarkFailed {
                door: d,
                path: p,
                reason,
            } => vec![door(d), ("path", path(p)), ("error", s(reason))],
            Notice::OneTimeBurned { path: p, line } => vec![("path", path(p)), ("line", n(*line))],
            Notice::InterfaceWaiting { name, missing } => vec![
                ("interface", s(name)),
                ("reason", s(if *missing { "missing" } else { "down" })),
            ],
            Notice::InterfaceGone { name } | Notice::Listening { name } => {
                vec![("interface", s(name))]
            }
            Notice::DefaultInterface { name, v6 } => vec![
                ("interface", s(name)),
                ("family", n(if *v6 { 6 } else { 4 })),
            ],
            Notice::NoDefaultInterface => vec![],
            Notice::DefaultRouteMoved { from, to } => {
                let mut v: Vec<Field> = from.iter().map(|f| ("from", s(f))).collect();
                v.push(("interface", s(to)));
                v
            }
            Notice::CaptureRetry { error, after } => vec![
                ("error", s(error)),
                ("after", Value::Secs(after.as_secs() as f64)),
            ],
            Notice::CaptureLost { error, name } => {
                vec![("interface", s(name)), ("error", s(error))]
            }
            Notice::Addresses { interfaces, addrs } => vec![
                ("interfaces", s(interfaces)),
                (
                    "addresses",
                    Value::List(addrs.iter().map(ToString::to_string).collect()),
                ),
            ],
            Notice::CaptureResized { iface, resize } => {
                let mut v = vec![("interface", s(iface)), ("bytes", n(resize.bytes))];
                match resize.why {
                    Why::Rate(c, within) => {
                        v.push(("reason", s("rate")));
                        v.push(("count", n(c)));
                        v.push(("within", Value::Secs(within.as_millis() as f64 / 1000.0)));
                    }
                    Why::Backlog(c) => {
                        v.push(("reason", s("backlog")));
                        v.push(("count", n(c)));
                    }
                    Why::Dropped(c) => {
                        v.push(("reason", s("dropped")));
                        v.push(("count", n(c)));
                    }
                    Why::Calm(d) => {
                        v.push(("reason", s("calm")));
                        v.push(("after", Value::Secs(d.as_secs() as f64)));
                    }
                }
                v
            }
            Notice::CaptureNotResized {
                iface,
                bytes,
                error,
                retry,
            } => vec![
                ("interface", s(iface)),
                ("bytes", n(*bytes)),
                ("error", s(error)),
                ("after", Value::Secs(retry.as_secs() as f64)),
            ],
            Notice::NotAHost { count } => vec![("count", n(*count))],
            Notice::CaptureStats {
                iface,
                received,
                dropped,
                if_dropped,
            } => vec![
                ("interface", s(iface)),
                ("received", n(*received)),
                ("dropped", n(*dropped)),
                ("if_dropped", n(*if_dropped)),
            ],
        }
    }
}
