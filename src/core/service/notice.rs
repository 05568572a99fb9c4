//! Every operator message the daemon writes, as data.
//!
//! Log lines are an interface: scripts and log watchers match them. Each
//! message here renders to exactly one line (without the `[date]` stamp),
//! knockd 0.8's text where knockd has the message, ours in the same style
//! where it does not (knockd(8) LOG MESSAGES lists them, checked by the
//! catalogue tests). The shell never formats a
//! message of its own; it picks a variant.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::caps::Limit;
use crate::core::config::{ConfigError, Warning};
use crate::core::engine::{CommandKind, Event};
use crate::core::ring::{Bytes, Resize, Why};

/// What a failed journal write left unrecorded, so a door did not open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unjournaled {
    /// The stop command that would close it (after a crash too).
    Stop,
    /// A rotating door's used period (a replay after a restart would open).
    UsedPeriod,
}

/// One operator message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Notice {
    /// What the knock engine reported (`IP: door: Stage N`, ...).
    Event(Event),
    /// The daemon cannot start; the journaled stops that were due ran, the
    /// rest stay journaled.
    NotStarting { reason: String, left: usize },
    /// `starting up, listening on IF`
    StartingUp { interfaces: String },
    /// `shutting down`
    ShuttingDown,
    /// `re-reading config file: PATH`
    Rereading { path: PathBuf },
    /// A config or one-time-file warning (`warning: FILE:LINE: ...`).
    Warning(Warning),
    /// `config error: FILE:LINE: ...` (a reload that is not taken).
    ConfigError(ConfigError),
    /// `PATH: N error(s); keeping the running configuration`
    KeepingConfig { path: PathBuf, errors: usize },
    /// A reload changed `StateFile`, which only a restart can move.
    StateFileChanged { state: PathBuf, path: PathBuf },
    /// A reload changed `Interface`, which only a restart can change.
    InterfaceChanged {
        wanted: Vec<String>,
        path: PathBuf,
        current: Vec<String>,
    },
    /// The log file could not be reopened or moved; the old one is kept.
    LogFileKept { error: String },
    /// `door: running command: CMD` (knockd's text).
    RunningCommand { door: Arc<str>, command: String },
    /// `--dry-run`: `door: would run start|stop command: CMD`.
    WouldRun {
        door: Arc<str>,
        kind: CommandKind,
        command: String,
    },
    /// `--dry-run`: the knocker would be added to an nftables set.
    WouldAddToSet {
        door: Arc<str>,
        src: IpAddr,
        set: String,
        timeout: Duration,
    },
    /// The knocker is in the door's nftables set, for `timeout`.
    AddedToSet {
        door: Arc<str>,
        src: IpAddr,
        set: String,
        timeout: Duration,
        refreshed: bool,
    },
    /// The knocker is in the door's set without a timeout (an admin put
    /// it there): left as it is, so a knock never makes it expire.
    LeftInSet {
        door: Arc<str>,
        src: IpAddr,
        set: String,
    },
    /// The kernel refused the element: the door did not open.
    NotAddedToSet {
        src: IpAddr,
        door: Arc<str>,
        error: String,
    },
    /// The system refused to start a command (no memory, no pids).
    CannotRun { door: Arc<str>, reason: String },
    /// `door: command returned non-zero status code (N)` (knockd's text).
    NonZeroStatus { door: Arc<str>, code: i32 },
    /// `door: command killed by signal N`
    KilledBySignal { door: Arc<str>, signal: i32 },
    /// Waiting for a command failed (it is counted as failed).
    CannotWait { door: Arc<str>, reason: String },
    /// A command has been running for `after`; reported once, not killed.
    StillRunning {
        door: Arc<str>,
        after: Duration,
        command: String,
    },
    /// Shutdown gave up waiting for a command.
    LeftRunning { door: Arc<str>, command: String },
    /// Shutdown could not run a stop whose start is still running; it stays
    /// journaled.
    StopKept { door: Arc<str>, command: String },
    /// A start still running when its stop is due is killed; the stop runs
    /// once it is gone.
    KillingStart { door: Arc<str>, command: String },
    /// A start queued for a free slot (more than `MaxCommands` running)
    /// was still waiting when its stop came due: neither runs.
    StartNeverRan { src: IpAddr, door: Arc<str> },
    /// A door over its bound refused an opening (first of its minute).
    Refused {
        src: IpAddr,
        door: Arc<str>,
        limit: Limit,
    },
    /// More openings refused in the minute after the first.
    RefusedMore { door: Arc<str>, count: u64 },
    /// Ours: a proposed opening no honest engine could have made was
    /// dropped (the first of a minute; the rest are summed up).
    ProposalDropped {
        src: IpAddr,
        /// The door's name, if the proposal named a door we have.
        door: Option<Arc<str>>,
        reason: super::Forged,
    },
    /// Ours: how many more were dropped in the minute after the first.
    ProposalsDroppedMore { count: u64 },
    /// The stop could not be journaled, so the door did not open.
    NotOpened {
        src: IpAddr,
        door: Arc<str>,
        what: Unjournaled,
        error: String,
    },
    /// A stop the system refused to start is scheduled again.
    StopRetry {
        door: Arc<str>,
        src: IpAddr,
        after: Duration,
    },
    /// `LogRate`: how many noisy lines of a door were counted, not written.
    Suppressed {
        door: Arc<str>,
        count: u64,
        rate: u32,
    },
    /// `MaxLogLines`: noisy lines of all doors counted, not written.
    SuppressedAll { count: u64, rate: u32 },
    /// Openings of doors with only an nftables set (no command: a flood
    /// of them is admitted, bounded by the set) whose lines were counted,
    /// not written: `LogRate` per door, `MaxLogLines` for all (`None`).
    OpeningsNotLogged {
        door: Option<Arc<str>>,
        count: u64,
        rate: u32,
    },
    /// A journal line that could not be read back at start.
    StateFileProblem { path: String, problem: String },
    /// Stops journaled by an earlier run, taken over at start.
    Restored {
        count: usize,
        path: String,
        overdue: usize,
    },
    /// The journal could not be written (`state file PATH: reason`).
    JournalFailed { error: String },
    /// The state file's file system is full: records go to the `reserve`
    /// bytes of zeros written ahead of them, and compaction waits for room
    /// (logged once, when the journal first cannot be rewritten whole).
    StateFileFull { path: String, reserve: u64 },
    /// `--dry-run`: a used one-time sequence is not marked in its file.
    OneTimeDryRun { door: Arc<str>, path: PathBuf },
    /// No unused line left (knockd's text).
    OneTimeExhausted { door: Arc<str> },
    /// The used line could not be marked; the door is disabled so it can
    /// never open twice.
    OneTimeMarkFailed {
        door: Arc<str>,
        path: PathBuf,
        reason: String,
    },
    /// After a reload, the live line is one this process already used but
    /// could not mark.
    OneTimeBurned { path: PathBuf, line: usize },
    /// An interface to capture on is missing or down at start.
    InterfaceWaiting { name: String, missing: bool },
    /// A captured interface disappeared or was re-created.
    InterfaceGone { name: String },
    /// `listening on IF` (an interface that came (back)).
    Listening { name: String },
    /// At start: nothing named an interface and there is no `eth0`, so the
    /// default route's is captured on ([`crate::core::iface`]).
    DefaultInterface { name: String, v6: bool },
    /// At start: nothing named an interface, and there is neither `eth0`
    /// nor a default route; both are waited for.
    NoDefaultInterface,
    /// The default route moved (`from`), or appeared while none was there
    /// (`None`): the capture moves to `to`.
    DefaultRouteMoved { from: Option<String>, to: String },
    /// Opening a capture failed; it is tried again.
    CaptureRetry { error: String, after: Duration },
    /// A capture failed while running; its interface is waited for.
    CaptureLost { error: String, name: String },
    /// The interfaces' addresses changed.
    Addresses {
        interfaces: String,
        addrs: Vec<IpAddr>,
    },
    /// A capture moved to a ring of another size (no packet lost or seen
    /// twice in the move).
    CaptureResized { iface: String, resize: Resize },
    /// A capture could not move to another ring; it keeps the one it has.
    CaptureNotResized {
        iface: String,
        bytes: usize,
        error: String,
        retry: Duration,
    },
    /// Packets whose source cannot be a host (forged: unspecified,
    /// multicast, broadcast, 240/4), skipped by the decoder; at shutdown and
    /// at the end of `--read`, when there were any.
    NotAHost { count: u64 },
    /// Kernel counters of a capture, at shutdown.
    CaptureStats {
        iface: String,
        received: u64,
        dropped: u64,
        if_dropped: u64,
    },
}

impl Notice {
    /// The knocker's address, if the message is about one: `-l` adds its
    /// host name after it.
    pub fn src(&self) -> Option<IpAddr> {
        match self {
            Notice::Event(e) => e.src(),
            other => other.knocker(),
        }
    }

    /// The knocker a service line is about, which it starts with
    /// (`IP: door: ...`, as the engine's lines do): written in one place,
    /// so `-l` names the host on every such line.
    fn knocker(&self) -> Option<IpAddr> {
        match self {
            Notice::NotAddedToSet { src, .. }
            | Notice::StartNeverRan { src, .. }
            | Notice::Refused { src, .. }
            | Notice::NotOpened { src, .. }
            | Notice::ProposalDropped { src, .. } => Some(*src),
            _ => None,
        }
    }

    /// The message with `IP (HOST)` in place of `IP` when a host name is
    /// known, as knockd writes it with `-l`.
    pub fn with_host<'a>(&'a self, host: Option<&'a str>) -> impl fmt::Display + 'a {
        WithHost { notice: self, host }
    }
}

impl From<Event> for Notice {
    fn from(e: Event) -> Self {
        Notice::Event(e)
    }
}

struct WithHost<'a> {
    notice: &'a Notice,
    host: Option<&'a str>,
}

impl fmt::Display for WithHost<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.notice {
            Notice::Event(e) => e.with_host(self.host).fmt(f),
            other => match other.knocker() {
                Some(src) => {
                    write!(f, "{src}")?;
                    if let Some(host) = self.host {
                        write!(f, " ({host})")?;
                    }
                    f.write_str(": ")?;
                    other.body(f)
                }
                None => other.body(f),
            },
        }
    }
}

pub(super) fn kind_word(kind: CommandKind) -> &'static str {
    match kind {
        CommandKind::Start => "start",
        CommandKind::Stop => "stop",
    }
}

impl fmt::Display for Notice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.with_host(None).fmt(f)
    }
}

impl Notice {
    /// The line after its `IP: ` (see [`Notice::knocker`]), or all of it.
    fn body(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Notice::Event(e) => fmt::Display::fmt(e, f),
            Notice::StartingUp { interfaces } => write!(f, "starting up, listening on {interfaces}"),
            Notice::ShuttingDown => f.write_str("shutting down"),
            Notice::NotStarting { reason, left } => write!(
                f,
                "not starting: {reason}; {left} pending stop command(s) kept for the next start"
            ),
            Notice::Rereading { path } => {
                write!(f, "re-reading config file: {}", path.display())
            }
            Notice::Warning(w) => fmt::Display::fmt(w, f),
            Notice::ConfigError(e) => write!(f, "config error: {e}"),
            Notice::KeepingConfig { path, errors } => write!(
                f,
                "{}: {errors} error(s); keeping the running configuration",
                path.display()
            ),
            Notice::StateFileChanged { state, path } => write!(
                f,
                "StateFile is now {} in {}; restart knockd to use it",
                state.display(),
                path.display()
            ),
            Notice::InterfaceChanged {
                wanted,
                path,
                current,
            } => write!(
                f,
                "Interface is now {} in {}; restart knockd to capture there (still listening on {})",
                wanted.join(","),
                path.display(),
                current.join(",")
            ),
            Notice::LogFileKept { error } => write!(f, "{error}; keeping the old log file"),
            Notice::RunningCommand { door, command } => {
                write!(f, "{door}: running command: {command}")
            }
            Notice::WouldRun {
                door,
                kind,
                command,
            } => write!(f, "{door}: would run {} command: {command}", kind_word(*kind)),
            Notice::WouldAddToSet {
                door,
                src,
                set,
                timeout,
            } => write!(
                f,
                "{door}: would add {src} to nft set {set} for {}s",
                timeout.as_secs_f64()
            ),
            Notice::AddedToSet {
                door,
                src,
                set,
                timeout,
                refreshed,
            } => write!(
                f,
                "{door}: {} {src} {} nft set {set} for {}s",
                if *refreshed { "refreshed" } else { "added" },
                if *refreshed { "in" } else { "to" },
                timeout.as_secs_f64()
            ),
            Notice::LeftInSet { door, src, set } => write!(
                f,
                "{door}: {src} is in nft set {set} without a timeout: left as it is"
            ),
            Notice::NotAddedToSet { door, error, .. } => {
                write!(f, "{door}: not opened: {error}")
            }
            Notice::CannotRun { door, reason } => write!(f, "{door}: cannot run command: {reason}"),
            Notice::NonZeroStatus { door, code } => {
                write!(f, "{door}: command returned non-zero status code ({code})")
            }
            Notice::KilledBySignal { door, signal } => {
                write!(f, "{door}: command killed by signal {signal}")
            }
            Notice::CannotWait { door, reason } => {
                write!(f, "{door}: cannot wait for command: {reason}")
            }
            Notice::StillRunning {
                door,
                after,
                command,
            } => write!(
                f,
                "{door}: command still running after {}s: {command}",
                after.as_secs()
            ),
            Notice::LeftRunning { door, command } => write!(
                f,
                "{door}: command still running at shutdown, left running: {command}"
            ),
            Notice::StopKept { door, command } => write!(
                f,
                "{door}: stop command not run at shutdown (its start is still running); kept for the next start: {command}"
            ),
            Notice::KillingStart { door, command } => write!(
                f,
                "{door}: start command still running when its stop is due; killing it: {command}"
            ),
            Notice::StartNeverRan { door, .. } => write!(
                f,
                "{door}: start command still waiting for a free slot when its stop was due; neither runs"
            ),
            Notice::ProposalDropped { door, reason, .. } => match door {
                Some(door) => write!(f, "{door}: proposed opening dropped: {}", reason.as_str()),
                None => write!(
                    f,
                    "proposed opening of an unknown door dropped: {}",
                    reason.as_str()
                ),
            },
            Notice::ProposalsDroppedMore { count } => write!(
                f,
                "{count} more proposed opening(s) dropped in the last minute"
            ),
            Notice::Refused { door, limit, .. } => {
                write!(f, "{door}: opening refused: ")?;
                match limit {
                    Limit::OpensPerMinute(n) => {
                        write!(f, "{n} openings in the last minute (MaxOpensPerMinute)")
                    }
                    Limit::PendingStops(n) => {
                        write!(f, "{n} stop commands pending (MaxPendingStops)")
                    }
                    Limit::NftAddsPerSecond(n) => {
                        write!(f, "{n} nft set additions in the last second (netlink budget)")
                    }
                }
            }
            Notice::RefusedMore { door, count } => write!(
                f,
                "{door}: {count} more opening(s) refused in the last minute"
            ),
            Notice::NotOpened {
                door, what, error, ..
            } => {
                let what = match what {
                    Unjournaled::Stop => "its stop command",
                    Unjournaled::UsedPeriod => "its used period",
                };
                write!(
                    f,
                    "{door}: not opened: {what} could not be journaled ({error})"
                )
            }
            Notice::StopRetry { door, src, after } => write!(
                f,
                "{door}: stop command for {src} will be tried again in {}s",
                after.as_secs()
            ),
            Notice::Suppressed { door, count, rate } => write!(
                f,
                "{door}: {count} stage and sequence timeout lines not logged in the last second (more than {rate}/s)"
            ),
            Notice::OpeningsNotLogged {
                door: Some(door),
                count,
                rate,
            } => write!(
                f,
                "{door}: {count} set-only openings not logged in the last second (more than {rate}/s)"
            ),
            Notice::OpeningsNotLogged {
                door: None,
                count,
                rate,
            } => write!(
                f,
                "{count} set-only openings of all doors not logged in the last second (more than {rate}/s)"
            ),
            Notice::SuppressedAll { count, rate } => write!(
                f,
                "{count} stage and sequence timeout lines of all doors not logged in the last second (more than {rate}/s)"
            ),
            Notice::StateFileProblem { path, problem } => {
                write!(f, "state file {path}: {problem}")
            }
            Notice::Restored {
                count,
                path,
                overdue,
            } => write!(
                f,
                "restored {count} pending stop command(s) from {path}, {overdue} overdue"
            ),
            Notice::JournalFailed { error } => f.write_str(error),
            Notice::StateFileFull { path, reserve } => write!(
                f,
                "state file {path}: file system full, using the {reserve} bytes written ahead (compaction waits)"
            ),
            Notice::OneTimeDryRun { door, path } => write!(
                f,
                "{door}: dry run: used one time sequence not marked in {}",
                path.display()
            ),
            Notice::OneTimeExhausted { door } => write!(
                f,
                "no more sequences left in the one time sequences file for door {door} --> disabling the door"
            ),
            Notice::OneTimeMarkFailed { door, path, reason } => write!(
                f,
                "error while disabling used one time sequence for door {door} ({}: {reason}) --> disabling the door",
                path.display()
            ),
            Notice::OneTimeBurned { path, line } => write!(
                f,
                "{}:{line}: this one time sequence was already used but could not be marked --> disabling the door",
                path.display()
            ),
            Notice::InterfaceWaiting { name, missing } => write!(
                f,
                "interface {name} {}; waiting for it",
                if *missing {
                    "does not exist (yet)"
                } else {
                    "is down"
                }
            ),
            Notice::InterfaceGone { name } => write!(
                f,
                "interface {name} went away; waiting for it to come back"
            ),
            Notice::Listening { name } => write!(f, "listening on {name}"),
            Notice::DefaultInterface { name, v6 } => write!(
                f,
                "no interface configured and no eth0: listening on {name} ({}default route)",
                if *v6 { "IPv6 " } else { "" }
            ),
            Notice::NoDefaultInterface => f.write_str(
                "no interface configured, no eth0 and no default route: waiting for eth0 or a default route",
            ),
            Notice::DefaultRouteMoved { from: Some(from), to } => {
                write!(f, "default route moved from {from} to {to}: following it")
            }
            Notice::DefaultRouteMoved { from: None, to } => {
                write!(f, "default route appeared on {to}: following it")
            }
            Notice::CaptureRetry { error, after } => {
                write!(f, "{error}; retrying in {}s", after.as_secs())
            }
            Notice::CaptureLost { error, name } => {
                write!(f, "{error}; waiting for {name} to come back")
            }
            Notice::Addresses { interfaces, addrs } => {
                write!(f, "addresses of {interfaces}: ")?;
                if addrs.is_empty() {
                    return f.write_str("none");
                }
                for (i, a) in addrs.iter().enumerate() {
                    if i > 0 {
                        f.write_str(" ")?;
                    }
                    write!(f, "{a}")?;
                }
                Ok(())
            }
            Notice::CaptureResized { iface, resize } => {
                let size = Bytes(resize.bytes);
                match resize.why {
                    Why::Rate(n, within) => write!(
                        f,
                        "{iface}: capture buffer grown to {size} ({n} packets in {} ms)",
                        within.as_millis()
                    ),
                    Why::Backlog(n) => write!(
                        f,
                        "{iface}: capture buffer grown to {size} ({n} packets waiting)"
                    ),
                    Why::Dropped(n) => write!(
                        f,
                        "{iface}: capture buffer grown to {size} ({n} packets dropped by the kernel)"
                    ),
                    Why::Calm(d) => write!(
                        f,
                        "{iface}: capture buffer back to {size} (calm for {}s)",
                        d.as_secs()
                    ),
                }
            }
            Notice::CaptureNotResized {
                iface,
                bytes,
                error,
                retry,
            } => write!(
                f,
                "{iface}: cannot resize the capture buffer to {}: {error}; trying again in {}s",
                Bytes(*bytes),
                retry.as_secs()
            ),
            Notice::NotAHost { count } => write!(
                f,
                "{count} packet(s) skipped: source cannot be a host (unspecified, multicast, broadcast or 240.0.0.0/4)"
            ),
            Notice::CaptureStats {
                iface,
                received,
                dropped,
                if_dropped,
            } => write!(
                f,
                "{iface}: {received} packets received, {dropped} dropped by the kernel, {if_dropped} dropped by the interface"
            ),
        }
    }
}
