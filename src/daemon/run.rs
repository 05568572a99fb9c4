//! The daemon's run loop and the replay loop around one shared pipeline.
//!
//! Run-loop contract (str0m's): wait for one input (a batch of frames, a
//! signal, or the next deadline), feed it to the engine, drain every action
//! the engine has, then compute the next deadline and wait again. Nothing
//! wakes the loop while idle. Replay feeds a capture file through the same
//! [`Pipeline`] with the file's timestamps as time, so it makes the
//! decisions the live daemon would have made.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use crate::core::config::{self, Config, Door, OneTimeLine, Sequence, SequenceSource};
use crate::core::engine::{Action, CommandKind, DoorId, Engine, Event, LocalAddrs, PendingStop};
use crate::core::filter::build_filter;
use crate::core::knock::{Knock, Timestamp};
use crate::core::ratelimit::LineLimiter;
use crate::core::wire::{self, LinkType};
use crate::daemon::capture::{CaptureError, FileCapture, LiveCapture, Stats};
use crate::daemon::clock::{debug_stamp, monotonic_now, TimeBase};
use crate::daemon::journal::{self, Journal, JournalError};
use crate::daemon::lookup::{Line, Tagger};
use crate::daemon::netif;
use crate::daemon::netwatch::NetWatch;
use crate::daemon::onetime_file;
use crate::daemon::oplog::{LogOpenError, OperatorLog};
use crate::daemon::runner::{Outcome, Runner};
use crate::daemon::signals::Signals;

/// How long shutdown waits for the stop commands it started.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

/// When a stop command the system refused to start is tried again.
pub const STOP_RETRY: Duration = Duration::from_secs(5);

/// What the command line and config decided for this run.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    pub interfaces: Vec<String>,
    /// Whether `-i` chose the interfaces (a reloaded `Interface` then does
    /// not matter).
    pub interfaces_from_cli: bool,
    /// `-g`, else the config's `LogFile`.
    pub log_file: Option<PathBuf>,
    /// Whether `-g` chose the log file (a reload then keeps it).
    pub log_file_from_cli: bool,
    pub only_v4: bool,
    pub debug: bool,
    pub verbose: bool,
    /// Print would-be commands instead of running them.
    pub dry_run: bool,
    /// `-l`: add knockers' host names to log lines.
    pub lookup: bool,
    /// Replay: destination addresses that count as ours (empty: any).
    pub local_addrs: Vec<IpAddr>,
}

/// Why the daemon could not start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Capture(#[from] CaptureError),
    #[error(transparent)]
    Log(#[from] LogOpenError),
    #[error("cannot read the addresses of {ifaces}: {source}")]
    Addresses {
        ifaces: String,
        source: std::io::Error,
    },
    #[error("cannot install signal handlers: {0}")]
    Signals(std::io::Error),
    #[error("waiting for packets failed: {0}")]
    Poll(nix::Error),
    #[error(transparent)]
    Journal(#[from] JournalError),
}

/// Engine plus effects: what every packet and timer goes through, live or
/// replayed.
pub struct Pipeline {
    engine: Engine,
    log: OperatorLog,
    runner: Runner,
    time: TimeBase,
    debug: bool,
    only_v4: bool,
    dry_run: bool,
    /// The live line of each one-time door, to mark when it is used.
    onetime: HashMap<DoorId, (PathBuf, OneTimeLine)>,
    /// One-time sequences used by this process that the file may not show
    /// as used (marking failed, or a dry run): a reload must not bring them
    /// back.
    burned: HashSet<(PathBuf, Sequence)>,
    /// Doors or sequences changed: the capture filter must be rebuilt.
    filter_stale: bool,
    /// Where pending stop commands are journaled (not in a replay).
    journal: Option<Journal>,
    /// Keeps floods from writing a line per spoofed knock.
    limiter: LineLimiter,
    /// `-l`: host-name lookups, and the log lines waiting for them.
    tagger: Option<Tagger>,
}

impl Pipeline {
    pub fn new(
        config: &Config,
        local: LocalAddrs,
        log: OperatorLog,
        time: TimeBase,
        s: &Settings,
    ) -> Self {
        Pipeline {
            engine: Engine::new(config, local),
            log,
            runner: Runner::default(),
            time,
            debug: s.debug,
            only_v4: s.only_v4,
            dry_run: s.dry_run,
            onetime: onetime_doors(config),
            burned: HashSet::new(),
            filter_stale: true,
            journal: None,
            limiter: LineLimiter::new(config.options.log_rate),
            tagger: if s.lookup {
                match Tagger::start() {
                    Ok(t) => Some(t),
                    Err(e) => {
                        tracing::warn!(%e, "cannot start host-name lookups; -l ignored");
                        None
                    }
                }
            } else {
                None
            },
        }
    }

    /// Takes over the journal and puts back the stop commands an earlier
    /// run left pending; overdue ones run at the next [`Pipeline::timers`].
    pub fn restore(
        &mut self,
        journal: Journal,
        entries: Vec<journal::Entry>,
        problems: Vec<String>,
        now: Timestamp,
    ) {
        let path = journal.path().display().to_string();
        for p in problems {
            self.log(now, &format!("state file {path}: {p}"));
        }
        let wall_now = self.time.wall(now);
        let overdue = entries.iter().filter(|e| e.due <= wall_now).count();
        if !entries.is_empty() {
            self.log(
                now,
                &format!(
                    "restored {} pending stop command(s) from {path}, {overdue} overdue",
                    entries.len()
                ),
            );
        }
        for e in entries {
            self.engine.restore_stop(PendingStop {
                door: Arc::from(e.door.as_str()),
                src: e.src,
                command: e.command,
                due: self.time.engine_time(e.due),
            });
        }
        self.journal = Some(journal);
    }

    /// Writes an operator message stamped with engine time `at`.
    pub fn log(&mut self, at: Timestamp, msg: &str) {
        self.emit(at, Line::Text(msg.to_string()));
    }

    /// Writes a message now, or (with `-l`) queues it in order until its
    /// knocker's host name is known or the lookup deadline passes.
    fn emit(&mut self, at: Timestamp, line: Line) {
        let wall = self.time.wall(at);
        match &mut self.tagger {
            None => match line {
                Line::Text(t) => self.log.line(wall, &t),
                Line::Event(e) => self.log.line(wall, &e.to_string()),
            },
            Some(tagger) => {
                tagger.push(lookup_clock(self.time, at), wall, line);
                self.write_ready(at);
            }
        }
    }

    /// Writes the lines whose host-name lookup finished or timed out.
    pub fn write_ready(&mut self, now: Timestamp) {
        let now = lookup_clock(self.time, now);
        if let Some(tagger) = &mut self.tagger {
            for (wall, text) in tagger.ready(now) {
                self.log.line(wall, &text);
            }
        }
    }

    /// The fd that turns readable when a host-name lookup finishes.
    pub fn lookup_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        self.tagger.as_ref().map(|t| t.as_fd())
    }

    /// Parses one captured frame seen at `at` into a knock (`None`: not
    /// one), printing the `-D` packet line.
    pub fn parse(
        &self,
        link: LinkType,
        data: &[u8],
        wire_len: u32,
        at: Timestamp,
    ) -> Option<Knock> {
        match wire::parse(link, data, wire_len, at) {
            Ok(packet) => {
                if self.debug {
                    println!("{} {packet}", debug_stamp(self.time.wall(at)));
                }
                if self.only_v4 && packet.knock.src.is_ipv6() {
                    return None;
                }
                Some(packet.knock)
            }
            Err(skip) => {
                tracing::debug!(%skip, len = data.len(), "frame skipped");
                None
            }
        }
    }

    /// Feeds knocks (in arrival order) to the engine, then carries out what
    /// they caused; log lines are stamped `now`.
    pub fn knocks(&mut self, knocks: &[Knock], now: Timestamp) {
        if knocks.is_empty() {
            return;
        }
        self.engine.handle_knocks(knocks);
        self.drain(now);
    }

    /// Fires the engine's timers due at `now` and reaps commands.
    pub fn timers(&mut self, now: Timestamp) {
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
        }
        self.drain(now);
        self.reap(now);
        self.write_ready(now);
    }

    /// Collects finished commands. Commands run in real time even in a
    /// replay, so the runner keeps its own (monotonic) clock; `at` only
    /// stamps the log lines.
    pub fn reap(&mut self, at: Timestamp) {
        let outcome = self.runner.reap(monotonic_now());
        self.apply(outcome, at);
    }

    /// Acts on what running or reaping commands produced: log lines, a
    /// failed start (the door is not open after all), a stop the system
    /// would not start (scheduled again, never dropped), a finished stop
    /// (the journal forgets it).
    fn apply(&mut self, outcome: Outcome, at: Timestamp) {
        for line in &outcome.lines {
            self.log(at, line);
        }
        for (door, src) in &outcome.failed_starts {
            self.engine.start_failed(door, *src);
        }
        let retry = !outcome.unstarted_stops.is_empty();
        for cmd in outcome.unstarted_stops {
            let msg = format!(
                "{}: stop command for {} will be tried again in {}s",
                cmd.door,
                cmd.src,
                STOP_RETRY.as_secs()
            );
            self.log(at, &msg);
            self.engine.restore_stop(PendingStop {
                door: cmd.door,
                src: cmd.src,
                command: cmd.command,
                due: at + STOP_RETRY,
            });
        }
        if outcome.stops_finished || retry {
            self.write_journal(at);
        }
    }

    /// The next time [`Pipeline::timers`] has work.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        let runner = match self.time {
            TimeBase::Live => self.runner.next_deadline(),
            TimeBase::Capture => None,
        };
        // Lookup deadlines are engine time only live (see `lookup_clock`).
        let lookup = match self.time {
            TimeBase::Live => self.tagger.as_ref().and_then(Tagger::next_deadline),
            TimeBase::Capture => None,
        };
        [
            self.engine.poll_timeout(),
            runner,
            self.limiter.next_due(),
            lookup,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Carries out everything the engine asked for.
    fn drain(&mut self, now: Timestamp) {
        for line in self.limiter.summaries(now) {
            self.log(now, &line);
        }
        let mut stops_changed = false;
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
                    self.emit(now, Line::Event(event));
                }
                Action::Run(cmd) => {
                    if self.dry_run {
                        let kind = match cmd.kind {
                            CommandKind::Start => "start",
                            CommandKind::Stop => "stop",
                        };
                        let msg =
                            format!("{}: would run {kind} command: {}", cmd.door, cmd.command);
                        self.log(now, &msg);
                    } else {
                        let outcome = self.runner.run(cmd, monotonic_now());
                        self.apply(outcome, now);
                    }
                }
                Action::OneTimeUsed { door, name } => self.next_one_time(door, &name, now),
                Action::StopsChanged => stops_changed = true,
            }
        }
        if stops_changed {
            self.write_journal(now);
        }
    }

    /// Rewrites the journal: the engine's pending stops, and the stop
    /// commands started but not yet finished (due now, so a daemon killed
    /// meanwhile runs them again at its next start). A failure is logged,
    /// not fatal: knocks keep being served, and the stops still run on time
    /// and at shutdown.
    fn write_journal(&mut self, now: Timestamp) {
        let Some(journal) = &self.journal else { return };
        let wall_now = self.time.wall(now);
        let entries: Vec<journal::Entry> = self
            .engine
            .pending_stops()
            .map(|p| journal::Entry {
                due: self.time.wall(p.due),
                src: p.src,
                door: p.door.to_string(),
                command: p.command.clone(),
            })
            .chain(self.runner.unfinished_stops().map(|c| journal::Entry {
                due: wall_now,
                src: c.src,
                door: c.door.to_string(),
                command: c.command.clone(),
            }))
            .collect();
        if let Err(e) = journal.write(&entries) {
            self.log(now, &e.to_string());
        }
    }

    fn next_one_time(&mut self, door: DoorId, name: &Arc<str>, now: Timestamp) {
        self.filter_stale = true;
        let Some((path, used)) = self.onetime.get(&door).cloned() else {
            return;
        };
        let mut warnings = Vec::new();
        let next = if self.dry_run {
            // A dry run must not use up the admin's sequences: it moves on
            // to the next line as if the used one had been marked.
            self.burned.insert((path.clone(), used.sequence.clone()));
            let msg = format!(
                "{name}: dry run: used one time sequence not marked in {}",
                path.display()
            );
            self.log(now, &msg);
            onetime_file::peek_after(&path, &used)
        } else {
            onetime_file::consume(&path, &used, &mut warnings)
        };
        for w in warnings {
            let msg = w.to_string();
            self.log(now, &msg);
        }
        match next {
            Ok(Some(line)) => {
                self.engine.set_sequence(door, Some(line.sequence.clone()));
                self.onetime.insert(door, (path, line));
            }
            Ok(None) => {
                self.log(
                    now,
                    &format!(
                        "no more sequences left in the one time sequences file for door {name} --> disabling the door"
                    ),
                );
                self.engine.set_sequence(door, None);
                self.onetime.remove(&door);
            }
            Err(e) => {
                self.burned.insert((path.clone(), used.sequence.clone()));
                self.log(
                    now,
                    &format!(
                        "error while disabling used one time sequence for door {name} ({}: {}) --> disabling the door",
                        path.display(),
                        config::io_reason(&e)
                    ),
                );
                self.engine.set_sequence(door, None);
                self.onetime.remove(&door);
            }
        }
    }

    /// The capture filter for the doors as they are now.
    pub fn filter(&self, local: &[IpAddr]) -> String {
        let doors: Vec<Door> = self
            .engine
            .doors()
            .filter_map(|(_, door, live)| {
                live.map(|seq| Door {
                    sequence: SequenceSource::Fixed(seq.clone()),
                    ..door.clone()
                })
            })
            .collect();
        build_filter(&doors, local, self.only_v4)
    }

    /// Swaps in a reloaded config; pending stop commands are kept.
    pub fn reload(&mut self, config: &Config, now: Timestamp) {
        self.engine.reload(config);
        self.limiter.set_rate(config.options.log_rate);
        self.log.set_syslog(config.options.use_syslog);
        self.onetime = onetime_doors(config);
        self.filter_stale = true;
        // A sequence used before the reload but not marked in its file
        // (the write failed) must not open the door a second time.
        let burned: Vec<(DoorId, PathBuf, usize)> = self
            .onetime
            .iter()
            .filter(|(_, (path, line))| {
                self.burned.contains(&(path.clone(), line.sequence.clone()))
            })
            .map(|(door, (path, line))| (*door, path.clone(), line.line))
            .collect();
        for (door, path, line) in burned {
            self.engine.set_sequence(door, None);
            self.onetime.remove(&door);
            let msg = format!(
                "{}:{line}: this one time sequence was already used but could not be marked --> disabling the door",
                path.display()
            );
            self.log(now, &msg);
        }
    }

    /// Runs every pending stop command now and waits (boundedly) for the
    /// commands in flight: a clean exit leaves no door open.
    pub fn close_all(&mut self, now: Timestamp) {
        self.engine.close_all(now);
        self.drain(now);
        let (outcome, _) = self.runner.wait_all(SHUTDOWN_GRACE, monotonic_now);
        // Stops the system would not start go back into the journal (via
        // the engine), for the next start to run.
        self.apply(outcome, now);
        self.write_journal(now);
        self.flush_lookups();
    }

    /// Gives the lookups still running up to [`crate::daemon::lookup::LOOKUP_WAIT`]
    /// of real time (end of a replay, whose clock raced ahead of them).
    pub fn finish_lookups(&mut self) {
        let until = monotonic_now() + crate::daemon::lookup::LOOKUP_WAIT;
        while self
            .tagger
            .as_ref()
            .is_some_and(|t| t.next_deadline().is_some())
        {
            let now = monotonic_now();
            if now >= until {
                break;
            }
            self.write_ready(now);
            std::thread::sleep(Duration::from_millis(5));
        }
        self.flush_lookups();
    }

    /// Writes every line still waiting for a host name (shutdown).
    pub fn flush_lookups(&mut self) {
        if let Some(tagger) = &mut self.tagger {
            for (wall, text) in tagger.flush() {
                self.log.line(wall, &text);
            }
        }
    }
}

/// The clock host-name lookups wait on: engine time live (it is the
/// monotonic clock), the real monotonic clock in a replay, where engine
/// time is the capture's and races ahead of lookups done now.
fn lookup_clock(time: TimeBase, at: Timestamp) -> Timestamp {
    match time {
        TimeBase::Live => at,
        TimeBase::Capture => monotonic_now(),
    }
}

fn onetime_doors(config: &Config) -> HashMap<DoorId, (PathBuf, OneTimeLine)> {
    config
        .doors
        .iter()
        .enumerate()
        .filter_map(|(i, d)| match &d.sequence {
            SequenceSource::OneTime { path, current } => {
                Some((DoorId(i as u16), (path.clone(), current.clone())))
            }
            SequenceSource::Fixed(_) => None,
        })
        .collect()
}

/// First retry delay for an interface that is missing or failed; doubles
/// up to [`MAX_RETRY`]. Link changes (netlink) retry at once anyway.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// One interface the daemon wants to capture on, open or waiting for it.
struct Slot {
    name: String,
    cap: Option<LiveCapture>,
    /// The interface index the capture is bound to (0 for `any`): a new
    /// index under the same name means the interface was re-created.
    ifindex: u32,
    retry_at: Option<Timestamp>,
    backoff: Duration,
}

fn ifindex(name: &str) -> Option<u32> {
    if name == netif::ANY {
        return Some(0);
    }
    nix::net::if_::if_nametoindex(name).ok()
}

/// A started daemon: captures (or waits for) its interfaces and serves
/// knocks until SIGTERM or SIGINT.
pub struct Daemon {
    settings: Settings,
    pipe: Pipeline,
    slots: Vec<Slot>,
    signals: Signals,
    netwatch: Option<NetWatch>,
    local: Vec<IpAddr>,
}

impl Daemon {
    /// Everything that can fail because of the admin's setup happens here,
    /// before the daemon reports ready: log file, state file, signal
    /// handlers, and the captures of interfaces that exist. An interface
    /// that does not exist yet is waited for, not an error.
    pub fn start(settings: &Settings, config: Config) -> Result<Daemon, DaemonError> {
        let signals = Signals::install().map_err(DaemonError::Signals)?;
        let log = OperatorLog::open(
            settings.log_file.as_deref(),
            config.options.use_syslog,
            settings.verbose,
        )?;
        let state_file = config
            .options
            .state_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(config::DEFAULT_STATE_FILE));
        let (journal, entries, problems) = Journal::open(&state_file)?;
        let mut slots = Vec::new();
        for name in &settings.interfaces {
            let mut slot = Slot {
                name: name.clone(),
                cap: None,
                ifindex: 0,
                retry_at: None,
                backoff: FIRST_RETRY,
            };
            if let Some(index) = ifindex(name).filter(|_| netif::is_up(name)) {
                // It exists and is up: failing to capture on it is the
                // admin's to fix now (permissions, link type), not something
                // to wait for.
                slot.cap = Some(LiveCapture::open(name)?);
                slot.ifindex = index;
            }
            slots.push(slot);
        }
        let netwatch = match NetWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(%e, "no link-change notifications; retrying interfaces on a timer");
                None
            }
        };
        let local = netif::addresses(&settings.interfaces, settings.only_v4).map_err(|source| {
            DaemonError::Addresses {
                ifaces: settings.interfaces.join(","),
                source,
            }
        })?;
        let pipe = Pipeline::new(
            &config,
            LocalAddrs::List(local.clone()),
            log,
            TimeBase::Live,
            settings,
        );
        let mut daemon = Daemon {
            settings: settings.clone(),
            pipe,
            slots,
            signals,
            netwatch,
            local,
        };
        // At startup a capture that cannot take the filter is an error.
        let filter = daemon.pipe.filter(&daemon.local);
        if settings.debug {
            println!("capture filter: {filter}");
        }
        for cap in daemon.slots.iter_mut().filter_map(|s| s.cap.as_mut()) {
            cap.set_filter(&filter)?;
        }
        daemon.pipe.filter_stale = false;
        let now = monotonic_now();
        let ifaces = settings.interfaces.join(",");
        if settings.verbose {
            println!("listening on {ifaces}...");
        }
        daemon
            .pipe
            .log(now, &format!("starting up, listening on {ifaces}"));
        for i in 0..daemon.slots.len() {
            if daemon.slots[i].cap.is_none() {
                let name = daemon.slots[i].name.clone();
                let why = if ifindex(&name).is_some() {
                    "is down"
                } else {
                    "does not exist (yet)"
                };
                daemon
                    .pipe
                    .log(now, &format!("interface {name} {why}; waiting for it"));
                // Netlink says when it appears; without it, look again on a
                // backing-off timer.
                if daemon.netwatch.is_none() {
                    daemon.slots[i].retry_at = Some(now + FIRST_RETRY);
                }
            }
        }
        daemon.pipe.restore(journal, entries, problems, now);
        Ok(daemon)
    }

    /// Serves until SIGTERM/SIGINT, then runs every pending stop command,
    /// logs capture statistics and `shutting down`.
    pub fn run(mut self) -> Result<(), DaemonError> {
        let mut batch: Vec<Knock> = Vec::with_capacity(crate::daemon::capture::BATCH);
        // A failure still goes through the shutdown below: pending stops
        // run and `shutting down` is logged before the error is returned.
        let mut failure = None;
        loop {
            let now = monotonic_now();
            let deadline = self
                .slots
                .iter()
                .filter_map(|s| s.retry_at)
                .chain(self.pipe.next_deadline())
                .min();
            let timeout = match deadline {
                None => PollTimeout::NONE,
                Some(at) => {
                    // Round up so the wake-up is never before the deadline.
                    let ms = at.saturating_since(now).as_nanos().div_ceil(1_000_000);
                    PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
                }
            };
            // Which slots were polled, by position in `fds`.
            let open: Vec<usize> = (0..self.slots.len())
                .filter(|&i| self.slots[i].cap.is_some())
                .collect();
            let (ready, signal_ready, net_ready) = {
                let mut fds: Vec<PollFd> = open
                    .iter()
                    .filter_map(|&i| self.slots[i].cap.as_ref())
                    .map(|c| PollFd::new(c.as_fd(), PollFlags::POLLIN))
                    .collect();
                fds.push(PollFd::new(self.signals.as_fd(), PollFlags::POLLIN));
                if let Some(w) = &self.netwatch {
                    fds.push(PollFd::new(w.as_fd(), PollFlags::POLLIN));
                }
                if let Some(fd) = self.pipe.lookup_fd() {
                    fds.push(PollFd::new(fd, PollFlags::POLLIN));
                }
                match nix::poll::poll(&mut fds, timeout) {
                    Ok(_) | Err(nix::Error::EINTR) => {}
                    Err(e) => {
                        failure = Some(DaemonError::Poll(e));
                        break;
                    }
                }
                let ready = |f: &PollFd| f.any().unwrap_or(false);
                let caps: Vec<usize> = open
                    .iter()
                    .zip(&fds)
                    .filter(|(_, f)| ready(f))
                    .map(|(&i, _)| i)
                    .collect();
                let sig = ready(&fds[open.len()]);
                let net = self.netwatch.is_some() && ready(&fds[open.len() + 1]);
                (caps, sig, net)
            };
            if signal_ready {
                // SIGCHLD needs nothing here: it woke the loop, and
                // `timers` below reaps every finished command.
                let pending = self.signals.take();
                if pending.shutdown {
                    break;
                }
                if pending.reload {
                    crate::daemon::notify::notify("RELOADING=1");
                    reload(&self.settings, &mut self.pipe);
                    // The new doors' filter is in place before anyone is
                    // told the reload is done.
                    if self.pipe.filter_stale {
                        self.install_filter(monotonic_now());
                    }
                    crate::daemon::notify::notify("READY=1");
                }
            }
            for i in ready {
                self.read_slot(i, &mut batch);
            }
            let net_changed = net_ready && self.netwatch.as_mut().is_some_and(NetWatch::changed);
            self.follow_interfaces(net_changed, monotonic_now());
            self.pipe.timers(monotonic_now());
            if self.pipe.filter_stale {
                self.install_filter(monotonic_now());
            }
        }
        crate::daemon::notify::notify("STOPPING=1");
        let now = monotonic_now();
        self.pipe.close_all(now);
        for slot in &mut self.slots {
            if let Some(stats) = slot.cap.as_mut().and_then(LiveCapture::stats) {
                let line = stats_line(&slot.name, stats);
                self.pipe.log(now, &line);
            }
        }
        self.pipe.log(now, "shutting down");
        self.pipe.flush_lookups();
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Hands a batch of frames from slot `i` to the engine. A capture that
    /// fails (the interface went away) is closed and waited for.
    fn read_slot(&mut self, i: usize, batch: &mut Vec<Knock>) {
        let Some(cap) = self.slots[i].cap.as_mut() else {
            return;
        };
        let link = cap.link();
        batch.clear();
        let pipe = &self.pipe;
        let result = cap.read_batch(|data, len| {
            // Stamped when read: the engine's clock is the monotonic one.
            batch.extend(pipe.parse(link, data, len, monotonic_now()));
        });
        self.pipe.knocks(batch, monotonic_now());
        if let Err(e) = result {
            self.lose(i, &e.to_string(), monotonic_now());
        }
    }

    /// Opens captures on interfaces that appeared, reopens those that were
    /// re-created, and follows address changes. Runs when netlink reports
    /// a change or a retry is due.
    fn follow_interfaces(&mut self, net_changed: bool, now: Timestamp) {
        let mut opened = false;
        for i in 0..self.slots.len() {
            let slot = &mut self.slots[i];
            let due = slot.retry_at.is_some_and(|t| t <= now);
            if !net_changed && !due {
                continue;
            }
            let index = ifindex(&slot.name);
            if slot.cap.is_some() && index == Some(slot.ifindex) {
                continue;
            }
            if slot.cap.is_some() {
                // Gone, or re-created under the same name: the capture is
                // bound to an interface that no longer exists.
                slot.cap = None;
                let msg = format!(
                    "interface {} went away; waiting for it to come back",
                    slot.name
                );
                self.pipe.log(now, &msg);
            }
            let Some(index) = index.filter(|_| netif::is_up(&slot.name)) else {
                // Netlink will say when it is back; without netlink, look
                // again on a backing-off timer.
                slot.retry_at = None;
                if self.netwatch.is_none() {
                    slot.retry_at = Some(now + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_RETRY);
                }
                continue;
            };
            match LiveCapture::open(&slot.name) {
                Ok(cap) => {
                    slot.cap = Some(cap);
                    slot.ifindex = index;
                    slot.retry_at = None;
                    slot.backoff = FIRST_RETRY;
                    opened = true;
                    let msg = format!("listening on {}", slot.name);
                    self.pipe.log(now, &msg);
                }
                Err(e) => {
                    let msg = format!("{e}; retrying in {}s", slot.backoff.as_secs());
                    slot.retry_at = Some(now + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_RETRY);
                    self.pipe.log(now, &msg);
                }
            }
        }
        if net_changed || opened {
            match netif::addresses(&self.settings.interfaces, self.settings.only_v4) {
                Ok(local) if local != self.local => {
                    let shown: Vec<String> = local.iter().map(ToString::to_string).collect();
                    let msg = format!(
                        "addresses of {}: {}",
                        self.settings.interfaces.join(","),
                        if shown.is_empty() {
                            "none".to_string()
                        } else {
                            shown.join(" ")
                        }
                    );
                    self.pipe.log(now, &msg);
                    self.pipe
                        .engine
                        .set_local_addrs(LocalAddrs::List(local.clone()));
                    self.local = local;
                    self.pipe.filter_stale = true;
                }
                Ok(_) => {}
                Err(e) => tracing::warn!(%e, "cannot re-read interface addresses"),
            }
            if opened {
                self.pipe.filter_stale = true;
            }
        }
    }

    /// Installs the filter for the doors and addresses as they are now on
    /// every open capture. A capture that refuses it (its interface just
    /// went down) is closed and waited for like any lost capture.
    fn install_filter(&mut self, now: Timestamp) {
        let filter = self.pipe.filter(&self.local);
        if self.pipe.debug {
            println!("capture filter: {filter}");
        }
        for i in 0..self.slots.len() {
            let Some(cap) = self.slots[i].cap.as_mut() else {
                continue;
            };
            if let Err(e) = cap.set_filter(&filter) {
                self.lose(i, &e.to_string(), now);
            }
        }
        self.pipe.filter_stale = false;
    }

    /// Closes slot `i`'s capture after `why` and waits for the interface.
    fn lose(&mut self, i: usize, why: &str, now: Timestamp) {
        let msg = format!("{why}; waiting for {} to come back", self.slots[i].name);
        self.pipe.log(now, &msg);
        let slot = &mut self.slots[i];
        slot.cap = None;
        slot.backoff = FIRST_RETRY;
        slot.retry_at = Some(now + FIRST_RETRY);
    }
}

/// SIGHUP: re-read the config. A broken config is logged and the running
/// one kept (knockd 0.8 exits, locking admins out over a typo).
fn reload(settings: &Settings, pipe: &mut Pipeline) {
    let now = monotonic_now();
    let path = settings.config_path.display().to_string();
    pipe.log(now, &format!("re-reading config file: {path}"));
    match config::load(&settings.config_path) {
        Ok((config, warnings)) => {
            for w in warnings {
                pipe.log(now, &w.to_string());
            }
            let log_path = if settings.log_file_from_cli {
                settings.log_file.clone()
            } else {
                config.options.log_file.clone()
            };
            if let Err(e) = pipe.log.set_path(log_path.as_deref()) {
                pipe.log(now, &format!("{e}; keeping the old log file"));
            }
            let state = config
                .options
                .state_file
                .clone()
                .unwrap_or_else(|| PathBuf::from(config::DEFAULT_STATE_FILE));
            if pipe.journal.as_ref().is_some_and(|j| j.path() != state) {
                pipe.log(
                    now,
                    &format!(
                        "StateFile is now {} in {path}; restart knockd to use it",
                        state.display()
                    ),
                );
            }
            let wanted = &config.options.interfaces;
            if !settings.interfaces_from_cli && !wanted.is_empty() && *wanted != settings.interfaces
            {
                pipe.log(
                    now,
                    &format!(
                        "Interface is now {} in {path}; restart knockd to capture there (still listening on {})",
                        wanted.join(","),
                        settings.interfaces.join(",")
                    ),
                );
            }
            pipe.reload(&config, now);
        }
        Err(diag) => {
            for e in &diag.errors {
                pipe.log(now, &format!("config error: {e}"));
            }
            pipe.log(
                now,
                &format!(
                    "{path}: {} error(s); keeping the running configuration",
                    diag.errors.len()
                ),
            );
            if let Err(e) = pipe.log.reopen() {
                pipe.log(now, &format!("{e}; keeping the old log file"));
            }
        }
    }
}

fn stats_line(iface: &str, s: Stats) -> String {
    format!(
        "{iface}: {} packets received, {} dropped by the kernel, {} dropped by the interface",
        s.received, s.dropped, s.if_dropped
    )
}

/// What a replay saw, for its closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub frames: u64,
    pub knocks: u64,
    pub opened: u64,
}

/// Feeds a capture file through the pipeline with the capture's own time,
/// then lets the remaining timers (sequence timeouts, stop commands) fire at
/// their times, so the output tells the whole story.
pub fn replay(
    settings: &Settings,
    config: &Config,
    path: &Path,
) -> Result<ReplaySummary, DaemonError> {
    let mut file = FileCapture::open(path)?;
    // The config's LogFile is the production log: a replay writes to a log
    // file only when one is named with -g.
    let log_file = settings
        .log_file
        .as_deref()
        .filter(|_| settings.log_file_from_cli);
    let log = OperatorLog::replay(log_file)?;
    let local = if settings.local_addrs.is_empty() {
        LocalAddrs::Any
    } else {
        LocalAddrs::List(settings.local_addrs.clone())
    };
    let mut pipe = Pipeline::new(config, local, log, TimeBase::Capture, settings);
    let link = file.link();
    let mut frames = 0;
    let mut last = Timestamp::ZERO;
    while let Some(frame) = file.next_frame()? {
        frames += 1;
        let at = Timestamp::from_nanos(frame.ts_nanos);
        last = last.max(at);
        // Timers due before this frame fire at their own time first.
        while let Some(t) = pipe.engine.poll_timeout().filter(|t| *t < at) {
            pipe.timers(t);
        }
        if let Some(knock) = pipe.parse(link, frame.data, frame.wire_len, at) {
            pipe.knocks(&[knock], at);
        }
    }
    while let Some(t) = pipe.engine.poll_timeout() {
        pipe.timers(t.max(last));
    }
    let (outcome, _) = pipe.runner.wait_all(SHUTDOWN_GRACE, monotonic_now);
    for line in &outcome.lines {
        pipe.log(last, line);
    }
    pipe.finish_lookups();
    let stats = pipe.engine.stats();
    Ok(ReplaySummary {
        frames,
        knocks: stats.knocks,
        opened: stats.opened,
    })
}
