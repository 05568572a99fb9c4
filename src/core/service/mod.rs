//! The daemon's decisions around the knock engine, sans-IO.
//!
//! The engine decides what a packet means for a door; the service decides
//! everything else the daemon does about it: which lines are written (and
//! which a flood only counts), what is journaled and that a stop is durably
//! journaled before the start command it undoes runs (and the door does not
//! open when it cannot be), how many commands run at once and how often a
//! door may open, how a one-time door moves to its next line and never
//! revives a used one, what happens to a start still running when its stop
//! is due, what a failed start or a stop the system refused means, what a
//! reload keeps, and how shutdown leaves no door open. It reads no clock
//! and touches no file, process or socket.
//!
//! # Run-loop contract (as quinn-proto and str0m)
//!
//! Feed one input with its time (`handle_knocks`, `handle_timeout`,
//! `handle_command_ended`, `handle_reload`, `handle_local_addrs`,
//! `handle_restore`, `handle_shutdown`), then drain [`Service::poll_effect`]
//! until it returns `None`, carrying each effect out in order, then wait
//! for the next input or [`Service::poll_timeout`]. Two effects need an
//! answer before the next effect is polled: [`Effect::Journal`]
//! ([`Service::handle_journal_result`]) and [`Effect::UseOneTime`]
//! ([`Service::handle_one_time_file`]); so does an [`Effect::Run`] the
//! system refuses to start ([`Service::handle_command_ended`] with
//! [`CommandEnd::SpawnFailed`]). What an answer causes comes out next,
//! before the effects that were already queued. A `handle_timeout` that
//! finds nothing due does nothing. Time never goes backwards inside: an
//! input older than one already seen counts as happening at the latest.

mod caps;
#[cfg(test)]
mod catalogue;
mod commands;
mod durable;
mod effect;
mod fields;
mod journal;
mod notice;
mod onetime;
mod opening;
mod record;
mod reload;
mod rotation;
mod running;
mod validate;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use caps::room::NftAdded;
pub use caps::Limit;
pub use effect::{
    CommandEnd, CommandId, Effect, JournalEntry, JournalRecord, JournalWrite, Readiness, UsedMark,
};
pub use fields::{Field, Value};
pub use notice::{Notice, Unjournaled};
pub use record::{journal_entry, journal_key, json_line, push_json_str};
pub use rotation::STEP_BACK;
pub use validate::Forged;

use crate::core::config::{Config, LogFormat};
use crate::core::config::{Door, SequenceSource};
use crate::core::engine::{
    Action, Command, CommandKind, Committed, DoorId, Engine, Event, LocalAddrs, OpenId, Opening,
    Prefetch, Stats,
};
use crate::core::filter::{build_filter_with_ranges, PortRange};
use crate::core::knock::Proto;
use crate::core::knock::{Knock, Timestamp};
use crate::core::ratelimit::LineLimiter;
use caps::Caps;
use commands::Commands;
use journal::JournalBook;
use onetime::OneTimeDoors;
use opening::NftPending;
use rotation::RotatingDoors;

/// Ports of one door the capture filter lists one by one at most; past
/// this (a door of many users) it takes the door's port range.
pub const MAX_FILTER_PORTS: usize = 256;

/// How long shutdown waits for the stop commands it started.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// When a stop command the system refused to start is tried again.
pub const STOP_RETRY: Duration = Duration::from_secs(5);

/// When a journal that could not be written is tried again.
pub const JOURNAL_RETRY: Duration = Duration::from_secs(5);

/// After this long a command still running is reported (not killed: it may
/// be a slow firewall reload that must finish; only a start whose stop is
/// due is killed).
pub const SLOW_COMMAND: Duration = Duration::from_secs(60);

/// Where the inputs come from, which decides what may be trusted to real
/// time and what is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Live capture: pending stops are journaled and running commands are
    /// watched (their durations are in the same time as the inputs).
    Live,
    /// Replaying a capture file: time is the capture's, so nothing is
    /// journaled and command durations (real time) are not watched.
    Replay,
}

/// What the command line and config decided for the service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub mode: Mode,
    /// Print would-be commands instead of running them, and leave one-time
    /// files unmarked.
    pub dry_run: bool,
    /// `-4`: IPv6 knocks are ignored.
    pub only_v4: bool,
    /// The config file, for reload messages.
    pub config_path: PathBuf,
    /// The interfaces captured on.
    pub interfaces: Vec<String>,
    /// Whether `-i` chose them (a reloaded `Interface` then does not matter).
    pub interfaces_from_cli: bool,
    /// `-g`, else the config's `LogFile`.
    pub log_file: Option<PathBuf>,
    /// Whether `-g` chose the log file (a reload then keeps it).
    pub log_file_from_cli: bool,
    /// `--log-format`, else the config's `LogFormat`: the format in use.
    pub log_format: LogFormat,
    /// Whether `--log-format` chose it (a reload then keeps it).
    pub log_format_from_cli: bool,
    /// The journal in use (only a restart can move it).
    pub state_file: PathBuf,
    /// Engine time plus this is Unix time, in nanoseconds, at start: what
    /// rotating doors count periods in (0 in a replay, whose time is the
    /// capture's Unix time). [`Service::handle_wall_clock`] follows changes.
    pub wall_offset: i128,
}

/// A stop command an earlier run journaled, in engine time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredStop {
    pub due: Timestamp,
    pub src: IpAddr,
    pub door: String,
    pub command: String,
}

/// What shutdown does with the stop commands not yet due.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Close {
    /// Run them all now: a clean exit leaves no door open.
    All,
    /// Leave them journaled for the next start (a start that cannot go on,
    /// such as a config error, after the overdue ones ran).
    Due,
}

/// Where shutdown is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Serving,
    /// Waiting (until the deadline) for the commands shutdown started.
    Stopping {
        deadline: Timestamp,
    },
    Finished,
}

/// An effect as queued. The journal and the filter are written as they are
/// when polled: a write queued before a change still writes the state
/// after it, and nothing already written is written twice.
enum Queued {
    Now(Effect),
    /// A command's `running command` line and its [`Effect::Run`], kept
    /// together so a start that must not run leaves with its line.
    Spawn {
        line: Notice,
        id: CommandId,
        command: String,
    },
    Journal,
    Filter,
}

/// The daemon's decisions. See the module docs for the contract.
pub struct Service {
    settings: Settings,
    engine: Engine,
    /// The interfaces' addresses (for the filter); `None` in a replay that
    /// counts every destination as ours.
    local: Option<Vec<IpAddr>>,
    limiter: LineLimiter,
    /// The same budgets for the lines of set-only openings (`OPEN SESAME`
    /// and the set's answer), which a flood can make by the thousand.
    set_lines: LineLimiter,
    caps: Caps,
    onetime: OneTimeDoors,
    rotating: RotatingDoors,
    commands: Commands,
    journal: JournalBook,
    /// The openings whose [`Effect::NftAdd`] awaits its answer, by request.
    nft_pending: HashMap<u64, NftPending>,
    /// The last [`Effect::NftAdd`] request number.
    nft_requests: u64,
    /// Committed openings whose used mark is not known to be on disk yet:
    /// a failed journal write takes them back.
    unconfirmed: HashMap<OpenId, (Opening, Committed, Option<Arc<str>>)>,
    /// Proposals dropped as forged.
    dropped: validate::DroppedLog,
    /// When a journal that could not be written is tried again.
    journal_retry: Option<Timestamp>,
    effects: VecDeque<Queued>,
    now: Timestamp,
    /// The filter for the doors and addresses as they are now.
    filter: String,
    /// The filter handed out last.
    installed: String,
    filter_stale: bool,
    /// Where in `effects` the first start command queued by the current
    /// input is: the journal write goes before it.
    first_start: Option<usize>,
    /// A reload is being handled: tell the service manager when done.
    reloading: bool,
    phase: Phase,
}

impl Service {
    /// A service for `config`'s doors, whose one-time files the shell has
    /// already resolved. `local` is what counts as our address.
    pub fn new(config: &Config, settings: Settings, local: LocalAddrs, now: Timestamp) -> Self {
        let o = &config.options;
        let mut service = Service {
            engine: Engine::new(config, local.clone()),
            local: match local {
                LocalAddrs::Any => None,
                LocalAddrs::List(addrs) => Some(addrs),
            },
            limiter: LineLimiter::new(o.log_rate, o.max_log_lines),
            set_lines: LineLimiter::new(o.log_rate, o.max_log_lines),
            caps: Caps::new(o.max_opens_per_minute, o.max_pending_stops),
            onetime: OneTimeDoors::new(config),
            rotating: RotatingDoors::default(),
            commands: Commands::new(o.max_commands),
            journal: JournalBook::default(),
            nft_pending: HashMap::new(),
            nft_requests: 0,
            unconfirmed: HashMap::new(),
            dropped: validate::DroppedLog::default(),
            journal_retry: None,
            effects: VecDeque::new(),
            now,
            filter: String::new(),
            installed: String::new(),
            filter_stale: false,
            first_start: None,
            reloading: false,
            phase: Phase::Serving,
            settings,
        };
        service.rotating.configure(config);
        service.rotating.set_offset(service.settings.wall_offset);
        service.rotate(now);
        service.filter = service.build_filter();
        // The shell installs it at start, from `filter()`.
        service.installed = service.filter.clone();
        service
    }

    /// The capture filter for the doors and addresses as they are now: what
    /// a capture that (re)opens must install.
    pub fn filter(&self) -> &str {
        &self.filter
    }

    /// What the engine decided so far (a replay prints it).
    pub fn stats(&self) -> Stats {
        self.engine.stats()
    }

    /// Commands started and not yet reported ended.
    pub fn commands_running(&self) -> usize {
        self.commands.running_count()
    }

    /// Stop commands journaled (pending, queued, waiting or running).
    pub fn journaled(&self) -> usize {
        self.journal.len()
    }

    /// True once shutdown is complete: every stop ran or is journaled.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        loop {
            match self.effects.pop_front()? {
                Queued::Now(effect) => return Some(effect),
                Queued::Spawn { line, id, command } => {
                    self.effects
                        .push_front(Queued::Now(Effect::Run { id, command }));
                    return Some(Effect::Log(line));
                }
                Queued::Journal => {
                    let rotating = &self.rotating;
                    let write = self
                        .journal
                        .take_write(rotating.used_count(), || rotating.marks());
                    if let Some(write) = write {
                        return Some(Effect::Journal(write));
                    }
                }
                Queued::Filter if self.installed != self.filter => {
                    self.installed = self.filter.clone();
                    return Some(Effect::InstallFilter(self.filter.clone()));
                }
                Queued::Filter => {}
            }
        }
    }

    /// When [`Service::handle_timeout`] next has something to do.
    pub fn poll_timeout(&self) -> Option<Timestamp> {
        let watchdog = match self.settings.mode {
            Mode::Live => self.commands.next_slow_report(SLOW_COMMAND),
            Mode::Replay => None,
        };
        let deadline = match self.phase {
            Phase::Stopping { deadline } => Some(deadline),
            _ => None,
        };
        [
            self.limiter.next_due(),
            self.set_lines.next_due(),
            self.caps.next_report(),
            self.dropped.next_report(),
            self.rotating.next_boundary(),
            self.journal_retry,
            watchdog,
            deadline,
        ]
        .into_iter()
        .fold(self.engine.poll_timeout(), Timestamp::earliest)
    }

    /// Captured packets, in arrival order, read at `now`.
    pub fn handle_knocks(&mut self, knocks: &[Knock], now: Timestamp) {
        if knocks.is_empty() || self.phase != Phase::Serving {
            return;
        }
        let now = self.advance(now);
        // A period that started before these knocks came is theirs.
        if self.rotating.next_boundary().is_some_and(|t| t <= now) {
            self.rotate(now);
        }
        let v4: Vec<Knock>;
        let mut knocks = knocks;
        if self.settings.only_v4 && knocks.iter().any(|k| k.src.is_ipv6()) {
            v4 = knocks
                .iter()
                .filter(|k| !k.src.is_ipv6())
                .copied()
                .collect();
            knocks = &v4;
        }
        // Each proposal is decided before the next knock is seen.
        while !knocks.is_empty() {
            let handled = self.engine.handle_knocks(knocks);
            knocks = &knocks[handled..];
            self.drain_engine(now);
        }
        self.flush();
    }

    /// A proposed opening made by an engine elsewhere (a sensor process):
    /// checked as every proposal is (see `validate`), then decided.
    pub fn handle_proposal(&mut self, o: Opening, now: Timestamp) {
        if self.phase != Phase::Serving {
            return;
        }
        let now = self.advance(now);
        self.opening(o);
        self.drain_engine(now);
        self.flush();
    }

    /// Starts loading what handling `knock` will need (see
    /// [`Engine::prefetch`]): for a caller that feeds knocks one at a time
    /// but sees them coming. Only a hint; it changes nothing.
    #[inline]
    pub fn prefetch(&self, knock: &Knock, stage: Prefetch) {
        self.engine.prefetch(knock, stage);
    }

    /// Fires everything due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if self.rotating.next_boundary().is_some_and(|t| t <= now) {
            self.rotate(now);
        }
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain_engine(now);
        if let Some(count) = self.dropped.report(now).filter(|n| *n > 0) {
            self.log(Notice::ProposalsDroppedMore { count });
        }
        for (door, count) in self.caps.reports(now) {
            if count > 0 {
                let door = self.door_name(door);
                self.log(Notice::RefusedMore { door, count });
            }
        }
        if self.settings.mode == Mode::Live {
            for (door, command) in self.commands.slow(now, SLOW_COMMAND) {
                self.log(Notice::StillRunning {
                    door,
                    after: SLOW_COMMAND,
                    command,
                });
            }
        }
        if self.journal_retry.is_some_and(|t| t <= now) {
            // `flush` writes it (the failure asked for a rewrite).
            self.journal_retry = None;
        }
        if let Phase::Stopping { deadline } = self.phase {
            if now >= deadline {
                self.give_up_waiting();
            }
        }
        self.flush();
    }

    /// The shell saw command `id` end.
    pub fn handle_command_ended(&mut self, id: CommandId, end: CommandEnd, now: Timestamp) {
        let now = self.advance(now);
        self.next(|s| s.command_ended(id, end, now));
    }

    /// The shell carried out an [`Effect::UseOneTime`] for `door`: the
    /// file's bytes after marking, or why it could not be marked or read.
    pub fn handle_one_time_file(
        &mut self,
        door: DoorId,
        result: Result<Vec<u8>, String>,
        now: Timestamp,
    ) {
        self.advance(now);
        self.next(|s| s.one_time_file(door, result));
    }

    /// Proposed openings dropped as forged since start.
    pub fn dropped_proposals(&self) -> u64 {
        self.dropped.total
    }

    /// Whether any door rotates (then the shell tells the wall clock).
    pub fn has_rotating_doors(&self) -> bool {
        !self.rotating.is_empty()
    }

    /// Engine time plus `offset` is Unix time now (nanoseconds): the wall
    /// clock was set. Rotating doors move to the period it says.
    pub fn handle_wall_clock(&mut self, offset: i128, now: Timestamp) {
        let now = self.advance(now);
        if self.rotating.set_offset(offset) {
            self.rotate(now);
            self.flush();
        }
    }

    /// Hands the engine the sequences of the periods rotating doors accept
    /// at `now`, where they changed.
    fn rotate(&mut self, now: Timestamp) {
        let changes = self.rotating.refresh(now);
        for (door, variants) in changes {
            self.engine.set_variants(door, variants);
            self.filter_stale = true;
        }
    }

    /// The capture moved to the interfaces `names` (it follows the default
    /// route): log lines and reloads name them from now on.
    pub fn handle_interfaces(&mut self, names: Vec<String>, now: Timestamp) {
        self.advance(now);
        self.settings.interfaces = names;
    }

    /// The capture interfaces' addresses are now `addrs`.
    pub fn handle_local_addrs(&mut self, addrs: Vec<IpAddr>, now: Timestamp) {
        self.advance(now);
        if self.local.as_ref() == Some(&addrs) {
            return;
        }
        self.log(Notice::Addresses {
            interfaces: self.settings.interfaces.join(","),
            addrs: addrs.clone(),
        });
        self.engine.set_local_addrs(LocalAddrs::List(addrs.clone()));
        self.local = Some(addrs);
        self.filter_stale = true;
        self.flush();
    }

    /// SIGTERM/SIGINT (`Close::All`): every pending stop command runs now,
    /// and the service waits (at most [`SHUTDOWN_GRACE`]) for the commands
    /// in flight, so a clean exit leaves no door open. A start still
    /// running has its stop due now, so it is killed first. With
    /// `Close::Due` the stops not yet due stay journaled instead. Knocks
    /// are ignored from here on.
    pub fn handle_shutdown(&mut self, close: Close, now: Timestamp) {
        let now = self.advance(now);
        if self.phase != Phase::Serving {
            return;
        }
        self.push(Effect::Readiness(Readiness::Stopping));
        self.phase = Phase::Stopping {
            deadline: now + SHUTDOWN_GRACE,
        };
        if close == Close::All {
            self.engine.close_all(now);
        }
        self.drain_engine(now);
        self.check_finished();
        self.flush();
    }

    fn advance(&mut self, now: Timestamp) -> Timestamp {
        self.now = self.now.max(now);
        self.now
    }

    fn push(&mut self, effect: Effect) {
        self.effects.push_back(Queued::Now(effect));
    }

    fn log(&mut self, notice: Notice) {
        self.push(Effect::Log(notice));
    }

    /// Runs `f` so that what it queues comes out before the effects already
    /// queued: the answer to an effect is carried out right after it.
    fn next(&mut self, f: impl FnOnce(&mut Self)) {
        let queued = std::mem::take(&mut self.effects);
        f(self);
        self.flush();
        self.effects.extend(queued);
    }

    fn journal_add(
        &mut self,
        open: OpenId,
        door: Arc<str>,
        src: IpAddr,
        command: String,
        due: Timestamp,
    ) {
        if self.settings.mode == Mode::Live {
            let entry = JournalEntry {
                due,
                src,
                door,
                command,
            };
            self.journal.add(open, entry);
        }
    }

    /// Rate-limit summaries due, then everything the engine asked for.
    fn drain_engine(&mut self, now: Timestamp) {
        for s in self.limiter.summaries(now) {
            self.log(match s.door {
                Some(door) => Notice::Suppressed {
                    door,
                    count: s.count,
                    rate: s.rate,
                },
                None => Notice::SuppressedAll {
                    count: s.count,
                    rate: s.rate,
                },
            });
        }
        for s in self.set_lines.summaries(now) {
            self.log(Notice::OpeningsNotLogged {
                door: s.door,
                count: s.count,
                rate: s.rate,
            });
        }
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Propose(o) => self.opening(o),
                Action::Log(event) => {
                    let noisy = match &event {
                        Event::Stage { door, .. }
                        | Event::SequenceTimeout { door, .. }
                        | Event::Replayed { door, .. } => Some(door),
                        _ => None,
                    };
                    if noisy.is_some_and(|door| !self.limiter.allow(door, now)) {
                        continue;
                    }
                    self.log(Notice::Event(event));
                }
                Action::Run(cmd) => self.run(cmd),
                Action::OneTimeUsed { door } => self.one_time_used(door),
                Action::StopScheduled(stop) => {
                    self.journal_add(stop.open, stop.name, stop.src, stop.command, stop.due)
                }
            }
        }
    }

    /// Ends an input: the journal write (before the first start command the
    /// input queued), the new filter, readiness after a reload.
    fn flush(&mut self) {
        // A start command queued by this input needs its stop on disk
        // first, failure or not; otherwise a journal that just failed is
        // tried again when `journal_retry` is due, not at once.
        let retry_due = self.journal_retry.is_none();
        if self.journal.has_pending() && (self.first_start.is_some() || retry_due) {
            let at = self.first_start.unwrap_or(self.effects.len());
            self.effects.insert(at, Queued::Journal);
        }
        self.first_start = None;
        if self.filter_stale {
            self.filter_stale = false;
            self.filter = self.build_filter();
            self.effects.push_back(Queued::Filter);
        }
        if std::mem::take(&mut self.reloading) {
            self.push(Effect::Readiness(Readiness::Ready));
        }
    }

    /// The capture filter. A door whose live sequences (with the next
    /// period's) name more than [`MAX_FILTER_PORTS`] ports, a door of
    /// many users, is let through by its whole `Sequence_Ports` range
    /// instead: a list that long would make a filter the kernel refuses
    /// (said at `-D`); the engine still takes only live sequences.
    fn build_filter(&self) -> String {
        use std::collections::HashSet;
        // Doors by where they are written (the rotating doors' copies of
        // them are other values).
        let key = |d: &Door| (d.name.clone(), d.file.clone(), d.line);
        let mut steps: HashMap<_, HashSet<(Proto, u16)>> = HashMap::new();
        let live = || {
            self.engine
                .doors()
                .flat_map(|(_, door, live)| live.iter().map(move |v| (door, &v.sequence)))
                .chain(self.rotating.lookahead())
        };
        for (door, seq) in live() {
            let set = steps.entry(key(door)).or_default();
            if set.len() <= MAX_FILTER_PORTS {
                set.extend(seq.steps().iter().map(|s| (s.proto, s.port)));
            }
        }
        let wide = |door: &Door| {
            matches!(door.sequence, SequenceSource::Rotating { .. })
                && steps
                    .get(&key(door))
                    .is_some_and(|s| s.len() > MAX_FILTER_PORTS)
        };
        let mut ranges = Vec::new();
        let mut seen = HashSet::new();
        for (_, door, _) in self.engine.doors() {
            let SequenceSource::Rotating { rotation, .. } = &door.sequence else {
                continue;
            };
            if !wide(door) || !seen.insert(key(door)) {
                continue;
            }
            tracing::debug!(
                door = %door.name,
                first = rotation.first,
                last = rotation.last,
                "more than {MAX_FILTER_PORTS} live ports: the capture filter takes the door's whole port range"
            );
            let mut protos = rotation.protocols.clone();
            protos.sort_by_key(|p| *p as u8);
            protos.dedup();
            for proto in protos {
                ranges.push(PortRange {
                    door,
                    proto,
                    first: rotation.first,
                    last: rotation.last,
                });
            }
        }
        let doors = live().filter(|(door, _)| !wide(door));
        let local: &[IpAddr] = self.local.as_deref().unwrap_or(&[]);
        build_filter_with_ranges(doors, ranges, local, self.settings.only_v4)
    }

    fn one_time_used(&mut self, door: DoorId) {
        // The filter changes when the file has been read (the answer comes
        // before any other input): until then the door accepts nothing.
        let Some((path, used)) = self.onetime.used(door) else {
            return;
        };
        let mark = !self.settings.dry_run;
        if !mark {
            // A dry run must not use up the admin's sequences: it moves on
            // as if the used line had been marked.
            self.onetime.burn(&path, &used.sequence);
            let name = self.door_name(door);
            self.log(Notice::OneTimeDryRun {
                door: name,
                path: path.clone(),
            });
        }
        self.push(Effect::UseOneTime {
            door,
            path,
            used,
            mark,
        });
    }

    fn one_time_file(&mut self, door: DoorId, result: Result<Vec<u8>, String>) {
        self.filter_stale = true;
        let name = self.door_name(door);
        let mut warnings = Vec::new();
        let outcome = self.onetime.file_read(door, result, &mut warnings);
        for w in warnings {
            self.log(Notice::Warning(w));
        }
        match outcome {
            onetime::Next::Line(sequence) => self.engine.set_sequence(door, Some(sequence)),
            onetime::Next::Exhausted => {
                self.log(Notice::OneTimeExhausted { door: name });
                self.engine.set_sequence(door, None);
            }
            onetime::Next::MarkFailed { path, reason } => {
                self.log(Notice::OneTimeMarkFailed {
                    door: name,
                    path,
                    reason,
                });
                self.engine.set_sequence(door, None);
            }
            onetime::Next::Unknown => {}
        }
    }

    fn door_name(&self, door: DoorId) -> Arc<str> {
        self.engine
            .door_name(door)
            .cloned()
            .unwrap_or_else(|| Arc::from(""))
    }

    /// Shutdown is complete once no command is running, queued or waiting.
    fn check_finished(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. }) && self.commands.is_idle() {
            self.phase = Phase::Finished;
        }
    }

    /// The shutdown deadline passed: what still runs is left running, what
    /// has not run stays journaled for the next start.
    fn give_up_waiting(&mut self) {
        for (door, command) in self.commands.running_commands() {
            self.log(Notice::LeftRunning { door, command });
        }
        let unstarted: Vec<(Arc<str>, String)> = self
            .commands
            .unstarted_stops()
            .map(|c| (c.name.clone(), c.command.clone()))
            .collect();
        for (door, command) in unstarted {
            self.log(Notice::StopKept { door, command });
        }
        self.phase = Phase::Finished;
    }
}
