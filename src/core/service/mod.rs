//! The daemon's decisions around the knock engine, sans-IO.
//!
//! The engine decides what a packet means for a door; the service decides
//! everything else the daemon does about it: which lines are written (and
//! which a flood only counts), when the journal of pending stops must be
//! written and that it is written before the start command it covers runs,
//! how a one-time door moves to its next line and never revives a used
//! one, when a stop waits for its start, what a failed start or a stop the
//! system refused means, what a reload keeps, and how shutdown leaves no
//! door open. It reads no clock and touches no file, process or socket.
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

mod commands;
mod effect;
mod notice;
mod onetime;

use std::collections::VecDeque;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

pub use effect::{CommandEnd, CommandId, Effect, JournalEntry, Readiness};
pub use notice::Notice;

use crate::core::config::{Config, Diagnostics, Parsed};
use crate::core::engine::{
    Action, Command, CommandKind, DoorId, Engine, Event, LocalAddrs, PendingStop, Stats,
};
use crate::core::filter::build_filter;
use crate::core::knock::{Knock, Timestamp};
use crate::core::ratelimit::LineLimiter;
use commands::{Commands, Running};
use onetime::OneTimeDoors;

/// How long shutdown waits for the stop commands it started.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// When a stop command the system refused to start is tried again.
pub const STOP_RETRY: Duration = Duration::from_secs(5);

/// After this long a command still running is reported (not killed: it may
/// be a slow firewall reload that must finish).
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
    /// The journal in use (only a restart can move it).
    pub state_file: PathBuf,
}

/// A stop command an earlier run journaled, in engine time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoredStop {
    pub due: Timestamp,
    pub src: IpAddr,
    pub door: String,
    pub command: String,
}

/// An effect as queued. The journal and the filter are snapshots of state
/// that later inputs may change again, so they are taken when polled: a
/// write queued before a change still writes the state after it, and a
/// snapshot already handed out is not handed out twice.
enum Queued {
    Now(Effect),
    Journal,
    Filter,
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

/// The daemon's decisions. See the module docs for the contract.
pub struct Service {
    settings: Settings,
    engine: Engine,
    /// The interfaces' addresses (for the filter); `None` in a replay that
    /// counts every destination as ours.
    local: Option<Vec<IpAddr>>,
    limiter: LineLimiter,
    onetime: OneTimeDoors,
    commands: Commands,
    effects: VecDeque<Queued>,
    now: Timestamp,
    /// The filter for the doors and addresses as they are now.
    filter: String,
    /// The filter handed out last.
    installed: String,
    filter_stale: bool,
    journal_stale: bool,
    /// Bumped at each change of the journal's content; the version handed
    /// out last.
    journal_version: u64,
    journal_written: u64,
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
        let mut service = Service {
            engine: Engine::new(config, local.clone()),
            local: match local {
                LocalAddrs::Any => None,
                LocalAddrs::List(addrs) => Some(addrs),
            },
            limiter: LineLimiter::new(config.options.log_rate),
            onetime: OneTimeDoors::new(config),
            commands: Commands::default(),
            effects: VecDeque::new(),
            now,
            filter: String::new(),
            installed: String::new(),
            filter_stale: false,
            journal_stale: false,
            journal_version: 0,
            journal_written: 0,
            first_start: None,
            reloading: false,
            phase: Phase::Serving,
            settings,
        };
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

    /// True once shutdown is complete: every stop ran or is journaled.
    pub fn is_finished(&self) -> bool {
        self.phase == Phase::Finished
    }

    /// The next effect to carry out.
    pub fn poll_effect(&mut self) -> Option<Effect> {
        loop {
            match self.effects.pop_front()? {
                Queued::Now(effect) => return Some(effect),
                Queued::Journal if self.journal_written != self.journal_version => {
                    self.journal_written = self.journal_version;
                    return Some(Effect::Journal(self.journal_entries()));
                }
                Queued::Filter if self.installed != self.filter => {
                    self.installed = self.filter.clone();
                    return Some(Effect::InstallFilter(self.filter.clone()));
                }
                Queued::Journal | Queued::Filter => {}
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
            self.engine.poll_timeout(),
            self.limiter.next_due(),
            watchdog,
            deadline,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Takes over the stop commands an earlier run journaled; overdue ones
    /// run at the next [`Service::handle_timeout`]. `problems` are journal
    /// lines that could not be read back; `path` names the journal.
    pub fn handle_restore(
        &mut self,
        path: &str,
        stops: Vec<RestoredStop>,
        problems: Vec<String>,
        now: Timestamp,
    ) {
        let now = self.advance(now);
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
            let door = self
                .engine
                .doors()
                .find(|(_, d, _)| d.name == s.door)
                .map(|(id, _, _)| id);
            self.engine.restore_stop(PendingStop {
                door,
                name: Arc::from(s.door.as_str()),
                src: s.src,
                command: s.command,
                due: s.due,
                open: None,
            });
        }
        self.flush();
    }

    /// Captured packets, in arrival order, read at `now`.
    pub fn handle_knocks(&mut self, knocks: &[Knock], now: Timestamp) {
        if knocks.is_empty() || self.phase != Phase::Serving {
            return;
        }
        let now = self.advance(now);
        if self.settings.only_v4 && knocks.iter().any(|k| k.src.is_ipv6()) {
            let v4: Vec<Knock> = knocks
                .iter()
                .filter(|k| !k.src.is_ipv6())
                .copied()
                .collect();
            self.engine.handle_knocks(&v4);
        } else {
            self.engine.handle_knocks(knocks);
        }
        self.drain_engine(now);
        self.flush();
    }

    /// Fires everything due at `now`.
    pub fn handle_timeout(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain_engine(now);
        if self.settings.mode == Mode::Live {
            for (door, command) in self.commands.slow(now, SLOW_COMMAND) {
                self.log(Notice::StillRunning {
                    door,
                    after: SLOW_COMMAND,
                    command,
                });
            }
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

    /// The shell carried out an [`Effect::Journal`]: `Err` holds why the
    /// journal could not be written.
    pub fn handle_journal_result(&mut self, result: Result<(), String>, now: Timestamp) {
        self.advance(now);
        if let Err(error) = result {
            // The stops still run on time and at shutdown; knocks keep being
            // served.
            self.next(|s| s.log(Notice::JournalFailed { error }));
        }
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

    /// SIGHUP: the config as read again (its one-time files resolved), or
    /// what is wrong with it. A broken config is reported and the running
    /// one kept (knockd 0.8 exits, locking admins out over a typo); the log
    /// file is reopened either way (logrotate).
    pub fn handle_reload(&mut self, result: Result<Parsed, Diagnostics>, now: Timestamp) {
        self.advance(now);
        if self.phase != Phase::Serving {
            return;
        }
        self.push(Effect::Readiness(Readiness::Reloading));
        self.log(Notice::Rereading {
            path: self.settings.config_path.clone(),
        });
        self.reloading = true;
        match result {
            Ok((config, warnings)) => self.reload(&config, warnings),
            Err(diag) => {
                let errors = diag.errors.len();
                for e in diag.errors {
                    self.log(Notice::ConfigError(e));
                }
                self.log(Notice::KeepingConfig {
                    path: self.settings.config_path.clone(),
                    errors,
                });
                self.push(Effect::ReopenLog);
            }
        }
        self.flush();
    }

    /// SIGTERM/SIGINT: every pending stop command runs now, and the service
    /// waits (at most [`SHUTDOWN_GRACE`]) for the commands in flight, so a
    /// clean exit leaves no door open. Knocks are ignored from here on.
    pub fn handle_shutdown(&mut self, now: Timestamp) {
        let now = self.advance(now);
        if self.phase != Phase::Serving {
            return;
        }
        self.push(Effect::Readiness(Readiness::Stopping));
        self.phase = Phase::Stopping {
            deadline: now + SHUTDOWN_GRACE,
        };
        self.engine.close_all(now);
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

    /// Rate-limit summaries due, then everything the engine asked for.
    fn drain_engine(&mut self, now: Timestamp) {
        for (door, count) in self.limiter.summaries(now) {
            let rate = self.limiter.rate();
            self.log(Notice::Suppressed { door, count, rate });
        }
        while let Some(action) = self.engine.poll_action() {
            match action {
                Action::Log(event) => {
                    let noisy = match &event {
                        Event::Stage { door, .. } | Event::SequenceTimeout { door, .. } => {
                            Some(door)
                        }
                        _ => None,
                    };
                    if noisy.is_some_and(|door| !self.limiter.allow(door, now)) {
                        continue;
                    }
                    self.log(Notice::Event(event));
                }
                Action::Run(cmd) => self.run(cmd),
                Action::OneTimeUsed { door } => self.one_time_used(door),
                Action::StopsChanged => self.journal_stale = true,
            }
        }
    }

    /// Ends an input: the journal write (before the first start command the
    /// input queued), the new filter, readiness after a reload.
    fn flush(&mut self) {
        if self.journal_stale && self.settings.mode == Mode::Live {
            self.journal_version += 1;
            let at = self.first_start.unwrap_or(self.effects.len());
            self.effects.insert(at, Queued::Journal);
        }
        self.journal_stale = false;
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

    /// The journal's content: the engine's pending stops, and the stop
    /// commands started but not finished (due now, so a daemon killed
    /// meanwhile runs them again at its next start).
    fn journal_entries(&self) -> Vec<JournalEntry> {
        let now = self.now;
        self.engine
            .pending_stops()
            .map(|p| JournalEntry {
                due: p.due,
                src: p.src,
                door: p.name.clone(),
                command: p.command.clone(),
            })
            .chain(self.commands.unfinished_stops().map(|c| JournalEntry {
                due: now,
                src: c.src,
                door: c.name.clone(),
                command: c.command.clone(),
            }))
            .collect()
    }

    fn build_filter(&self) -> String {
        let doors = self
            .engine
            .doors()
            .filter_map(|(_, door, live)| live.map(|seq| (door, seq)));
        let local: &[IpAddr] = self.local.as_deref().unwrap_or(&[]);
        build_filter(doors, local, self.settings.only_v4)
    }

    /// A start or stop command the engine asked for.
    fn run(&mut self, cmd: Command) {
        if self.settings.dry_run {
            self.log(Notice::WouldRun {
                door: cmd.name,
                kind: cmd.kind,
                command: cmd.command,
            });
            return;
        }
        // A stop never overtakes its start: a slow `iptables -A` finishing
        // after its `-D` would leave the rule in for good. knockd 0.8's one
        // child per door kept that order implicitly.
        if cmd.kind == CommandKind::Stop
            && cmd
                .open
                .is_some_and(|open| self.commands.start_running(open))
        {
            self.commands.wait(cmd);
            return;
        }
        self.spawn(cmd);
    }

    fn spawn(&mut self, cmd: Command) {
        if cmd.kind == CommandKind::Start && self.first_start.is_none() {
            self.first_start = Some(self.effects.len());
        }
        self.log(Notice::RunningCommand {
            door: cmd.name.clone(),
            command: cmd.command.clone(),
        });
        let id = self.commands.start(cmd, self.now);
        let command = self.commands.get(id).map(|r| r.cmd.command.clone());
        if let Some(command) = command {
            self.push(Effect::Run { id, command });
        }
    }

    fn command_ended(&mut self, id: CommandId, end: CommandEnd, now: Timestamp) {
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
                if let (false, Some(door), Some(open)) = (ok, cmd.door, cmd.open) {
                    self.engine.start_failed(door, cmd.src, open);
                }
                if let Some(open) = cmd.open {
                    for stop in self.commands.release(open) {
                        self.spawn(stop);
                    }
                }
            }
            CommandKind::Stop => {
                if matches!(end, CommandEnd::SpawnFailed(_)) {
                    // Never dropped: scheduled again, and journaled.
                    self.log(Notice::StopRetry {
                        door: cmd.name.clone(),
                        src: cmd.src,
                        after: STOP_RETRY,
                    });
                    self.engine.restore_stop(PendingStop {
                        door: cmd.door,
                        name: cmd.name,
                        src: cmd.src,
                        command: cmd.command,
                        due: now + STOP_RETRY,
                        open: cmd.open,
                    });
                }
                // Finished or rescheduled: the journal changes either way.
                self.journal_stale = true;
            }
        }
        self.check_finished();
    }

    fn reload(&mut self, config: &Config, warnings: Vec<crate::core::config::Warning>) {
        for w in warnings {
            self.log(Notice::Warning(w));
        }
        let s = &self.settings;
        let log_file = if s.log_file_from_cli {
            s.log_file.clone()
        } else {
            config.options.log_file.clone()
        };
        // Only a restart can move the journal or the captures: say so.
        let state = config.options.state_file_path();
        let state_moved =
            (s.mode == Mode::Live && state != s.state_file).then(|| Notice::StateFileChanged {
                state,
                path: s.config_path.clone(),
            });
        let wanted = &config.options.interfaces;
        let moved = !s.interfaces_from_cli && !wanted.is_empty() && *wanted != s.interfaces;
        let interfaces_moved = moved.then(|| Notice::InterfaceChanged {
            wanted: wanted.clone(),
            path: s.config_path.clone(),
            current: s.interfaces.clone(),
        });
        self.push(Effect::SetLogFile(log_file));
        for notice in state_moved.into_iter().chain(interfaces_moved) {
            self.log(notice);
        }
        let map = self.engine.reload(config);
        self.commands.remap(&map);
        self.limiter.set_rate(config.options.log_rate);
        self.push(Effect::SetSyslog(config.options.use_syslog));
        self.onetime = self.onetime.reloaded(config);
        // A sequence used before the reload but not marked in its file (the
        // write failed, or a dry run) must not open the door a second time.
        for (door, path, line) in self.onetime.take_burned() {
            self.engine.set_sequence(door, None);
            self.log(Notice::OneTimeBurned { path, line });
        }
        self.filter_stale = true;
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

    /// Shutdown is complete once no command is running or waiting.
    fn check_finished(&mut self) {
        if matches!(self.phase, Phase::Stopping { .. }) && self.commands.is_idle() {
            self.phase = Phase::Finished;
            self.journal_stale = true;
        }
    }

    /// The shutdown deadline passed: what still runs is left running, what
    /// still waits stays journaled for the next start.
    fn give_up_waiting(&mut self) {
        for (door, command) in self.commands.running_commands() {
            self.log(Notice::LeftRunning { door, command });
        }
        for (door, command) in self.commands.waiting_commands() {
            self.log(Notice::StopKept { door, command });
        }
        self.phase = Phase::Finished;
        self.journal_stale = true;
    }
}
