//! The live daemon: start-up, the poll loop and shutdown.
//!
//! Run-loop contract (str0m's): wait for one input (frames, a signal, a
//! finished command, a link change, or the next deadline), read the clock
//! once, feed the input to the service with that time, carry out every
//! effect it has, then compute the next deadline and wait again. Nothing
//! wakes the loop while idle. `--read` ([`super::replay`]) feeds a capture
//! file through the same service and [`Executor`].

use std::os::fd::AsFd;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout};

use super::capture::{CaptureError, LiveCapture, BATCH};
use super::clock::{monotonic_now, wall_offset, TimeBase};
use super::config_file;
use super::effects::{Executor, Host};
use super::frames::{knock_of, Skipped};
use super::interfaces::Interfaces;
use super::journal::{Contents, Journal, JournalError};
use super::journald::Journald;
use super::nft_doors::NftDoors;
use super::notify;
use super::oplog::{LogOpenError, OperatorLog};
use super::output::Output;
use super::settings::Settings;
use super::signals::Signals;
use super::waiter::{Token, Waiter, Wanted};
use crate::core::config::LogFormat;
use crate::core::config::{Config, ConfigError, Diagnostics, Parsed};
use crate::core::engine::LocalAddrs;
use crate::core::knock::{Knock, Timestamp};
use crate::core::ring::{self, Resize};
use crate::core::service::{Close, Mode, Notice, Readiness, RestoredStop, Service};

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
    /// A door's nftables set is missing or unsuitable: the first problem
    /// (with its config line), and how many more there are.
    #[error(transparent)]
    DropRoot(#[from] super::privdrop::DropError),
    #[error("{first}{}", if *.more > 0 { format!(" (and {} more nft set problem(s))", .more) } else { String::new() })]
    NftSets { first: ConfigError, more: usize },
}

/// A started daemon: captures (or waits for) its interfaces and serves
/// knocks until SIGTERM or SIGINT.
pub struct Daemon {
    settings: Settings,
    service: Service,
    exec: Executor,
    ifaces: Interfaces,
    signals: Signals,
    waiter: Waiter,
    /// Frames the decoder skipped that the shutdown lines count.
    skipped: Skipped,
}

/// The live side of carrying out effects: captures and systemd.
struct Live<'a> {
    ifaces: &'a mut Interfaces,
    debug: bool,
}

impl Host for Live<'_> {
    fn install_filter(&mut self, out: &mut Output, filter: &str, now: Timestamp) {
        if self.debug {
            println!("capture filter: {filter}");
        }
        self.ifaces.install(filter, out, now);
    }

    fn readiness(&mut self, readiness: Readiness) {
        notify::notify(match readiness {
            Readiness::Reloading => "RELOADING=1",
            Readiness::Ready => "READY=1",
            Readiness::Stopping => "STOPPING=1",
        });
    }
}

impl Daemon {
    /// Everything that can fail because of the admin's setup happens here,
    /// before the daemon reports ready: log file, state file, signal
    /// handlers, and the captures of interfaces that exist. An interface
    /// that does not exist yet is waited for, not an error.
    pub fn start(settings: &Settings, config: Config) -> Result<Daemon, DaemonError> {
        let signals = Signals::install().map_err(DaemonError::Signals)?;
        let waiter = Waiter::new().map_err(DaemonError::Poll)?;
        // Before anything else: knocks at a door whose set is missing
        // would all fail.
        let mut nft = NftDoors::default();
        let mut problems = nft.check(&config, &settings.config_path).into_iter();
        if let Some(first) = problems.next() {
            return Err(DaemonError::NftSets {
                first,
                more: problems.count(),
            });
        }
        let mut log = OperatorLog::open(
            settings.log_file.as_deref(),
            config.options.use_syslog,
            settings.verbose,
        )?;
        log.set_format(settings.log_format);
        log.set_journal(Journald::detect());
        let state_file = config.options.state_file_path();
        let (journal, contents) = Journal::open(&state_file)?;
        let Contents {
            stops: entries,
            used,
            problems,
        } = contents;
        let mut ifaces = Interfaces::open(&settings.choice, settings.only_v4)?;
        // The choice may have followed a route that moved since it was made.
        let mut settings = settings.clone();
        settings.choice = ifaces.choice().clone();
        settings.interfaces = settings.choice.interfaces();
        let settings = &settings;
        let local = ifaces
            .read_addresses()
            .map_err(|source| DaemonError::Addresses {
                ifaces: settings.interfaces.join(","),
                source,
            })?;
        let now = monotonic_now();
        let journal_path = journal.path().display().to_string();
        let service = Service::new(
            &config,
            settings.service(Mode::Live, state_file, wall_offset()),
            LocalAddrs::List(local),
            now,
        );
        // At startup a capture that cannot take the filter is an error.
        if settings.debug {
            println!("capture filter: {}", service.filter());
        }
        ifaces.install_strict(service.filter())?;
        let out = Output::new(log, TimeBase::Live, settings.lookup);
        let mut exec = Executor::new(out, Some(journal));
        exec.nft = nft;
        let mut daemon = Daemon {
            settings: settings.clone(),
            service,
            exec,
            ifaces,
            signals,
            waiter,
            skipped: Skipped::default(),
        };
        let interfaces = settings.interfaces.join(",");
        // knockd 0.8's -v line; in JSON, stdout holds objects only (the
        // `starting_up` line says the same).
        if settings.verbose && settings.log_format == LogFormat::Text {
            println!("listening on {interfaces}...");
        }
        daemon.exec.out.log(now, Notice::StartingUp { interfaces });
        if let Some(notice) = settings.choice.startup_notice() {
            daemon.exec.out.log(now, notice);
        }
        daemon.ifaces.report_waiting(&mut daemon.exec.out, now);
        let time = daemon.exec.out.time();
        let used = used
            .into_iter()
            .map(super::effects::restored_mark)
            .collect();
        let restored = entries
            .into_iter()
            .map(|e| RestoredStop {
                due: time.engine_time(e.due),
                src: e.src,
                door: e.door,
                command: e.command,
            })
            .collect();
        daemon
            .service
            .handle_restore(&journal_path, restored, used, problems, now);
        daemon.drain(now);
        Ok(daemon)
    }

    /// The config file for a reload; its nftables sets must pass the
    /// same check as at startup, or the running config stays.
    fn load_for_reload(&mut self) -> Result<Parsed, Diagnostics> {
        let path = &self.settings.config_path;
        let (config, warnings) = config_file::load(path)?;
        let errors = self.exec.nft.check(&config, path);
        if errors.is_empty() {
            Ok((config, warnings))
        } else {
            Err(Diagnostics { errors, warnings })
        }
    }

    /// Carries out the service's effects.
    fn drain(&mut self, now: Timestamp) {
        let mut host = Live {
            ifaces: &mut self.ifaces,
            debug: self.settings.debug,
        };
        self.exec.drain(&mut self.service, &mut host, now);
    }

    /// Serves until SIGTERM/SIGINT, then runs every pending stop command,
    /// logs capture statistics and `shutting down`.
    pub fn run(mut self) -> Result<(), DaemonError> {
        let mut batch: Vec<Knock> = Vec::with_capacity(BATCH);
        // The slots whose capture is ready, this turn.
        let mut ready: Vec<usize> = Vec::new();
        let mut started = false;
        // A failure still goes through the shutdown below: pending stops
        // run and `shutting down` is logged before the error is returned.
        let mut failure = None;
        loop {
            let timeout = poll_timeout(self.deadline(), monotonic_now());
            if !started {
                // Start-up is over, and this is its first wait: what only
                // start-up needed goes back to the system.
                started = true;
                super::footprint::release_startup_memory();
            }
            let waited = self.wait(timeout);
            match waited {
                Ok(()) | Err(nix::Error::EINTR) => {}
                Err(e) => {
                    failure = Some(DaemonError::Poll(e));
                    break;
                }
            }
            let mut signal_ready = false;
            let mut net_ready = false;
            ready.clear();
            for token in self.waiter.ready() {
                match *token {
                    Token::Capture(i) => ready.push(i),
                    Token::Signals => signal_ready = true,
                    Token::Netlink => net_ready = true,
                    // Only wakes the loop: `write_ready` below takes them.
                    Token::Lookup => {}
                }
            }
            // Slot order, as poll reported them.
            ready.sort_unstable();
            // The turn's one reading of the clock: every input of this turn
            // happened now.
            let now = monotonic_now();
            if signal_ready {
                // SIGCHLD needs nothing here: it woke the loop, and the
                // runner is reaped below.
                let pending = self.signals.take();
                if pending.shutdown {
                    break;
                }
                if pending.reload {
                    let config = self.load_for_reload();
                    self.service.handle_reload(config, now);
                    self.drain(now);
                }
            }
            for &i in &ready {
                self.read_slot(i, &mut batch, now);
            }
            let net_changed = net_ready && self.ifaces.netlink_changed();
            let addrs =
                self.ifaces
                    .follow(net_changed, self.service.filter(), &mut self.exec.out, now);
            if let Some(names) = self.ifaces.take_moved() {
                self.settings.interfaces = names.clone();
                self.service.handle_interfaces(names, now);
            }
            if let Some(addrs) = addrs {
                self.service.handle_local_addrs(addrs, now);
                self.drain(now);
            }
            self.reap(now);
            if self.service.has_rotating_doors() {
                self.service.handle_wall_clock(wall_offset(), now);
            }
            self.service.handle_timeout(now);
            self.drain(now);
            for i in 0..self.ifaces.slots.len() {
                if let Some(r) = self.ifaces.slots[i].ring.handle_timeout(now) {
                    self.start_resize(i, r, now);
                }
            }
            self.complete_resizes(&mut batch, now);
            self.exec.out.write_ready(now);
        }
        self.shut_down();
        match failure {
            Some(e) => Err(e),
            None => Ok(()),
        }
    }

    /// Waits (at most `timeout`) for a capture, a signal, a link change or
    /// a host name; the epoll set is brought up to date first if captures
    /// came or went.
    fn wait(&mut self, timeout: PollTimeout) -> nix::Result<()> {
        let current = sources(&self.ifaces, &self.signals, &self.exec.out);
        if !self.waiter.matches(current) {
            let wanted: Vec<Wanted<'_>> =
                sources(&self.ifaces, &self.signals, &self.exec.out).collect();
            self.waiter.sync(&wanted)?;
        }
        self.waiter.wait(timeout)
    }

    /// The next time anything is due: the service, an interface retry, or
    /// a log line waiting for a host name.
    fn deadline(&self) -> Option<Timestamp> {
        [
            self.service.poll_timeout(),
            self.ifaces.next_deadline(),
            self.exec.out.next_deadline(),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    fn reap(&mut self, now: Timestamp) {
        let mut host = Live {
            ifaces: &mut self.ifaces,
            debug: self.settings.debug,
        };
        self.exec.reap(&mut self.service, &mut host, now);
    }

    /// Hands a batch of frames from slot `i`, read at `now`, to the
    /// service. A capture that fails (the interface went away) is closed
    /// and waited for; one falling behind is moved to a larger ring.
    fn read_slot(&mut self, i: usize, batch: &mut Vec<Knock>, now: Timestamp) {
        let debug = self.settings.debug.then_some(TimeBase::Live);
        let Some(cap) = self.ifaces.slots[i].cap.as_mut() else {
            return;
        };
        let result = read_knocks(cap, batch, debug, now, &mut self.skipped);
        // The kernel's drop counter costs a system call; drops only happen
        // once the ring is full, and a full ring is read in full batches,
        // so a read of a few knocks need not ask.
        let dropped = match result {
            Ok(n) if n >= ring::GROW_BACKLOG => cap.new_drops(),
            _ => 0,
        };
        self.service.handle_knocks(batch, now);
        self.drain(now);
        match result {
            Err(e) => self.ifaces.lose(i, &e.to_string(), &mut self.exec.out, now),
            Ok(n) => {
                if let Some(r) = self.ifaces.slots[i].ring.observe(n, dropped, now) {
                    self.start_resize(i, r, now);
                }
            }
        }
    }

    /// Starts moving slot `i`'s capture to the ring `resize` asks for.
    fn start_resize(&mut self, i: usize, resize: Resize, now: Timestamp) {
        let filter = self.service.filter().to_string();
        if let Err(e) = self.ifaces.start_resize(i, resize, &filter, now) {
            self.resize_failed(i, resize, &e, now);
        }
    }

    /// Hands each slot whose new capture is ready over to it, reading what
    /// the old ring still holds into the service first: no knock is lost,
    /// seen twice or reordered by the move.
    fn complete_resizes(&mut self, batch: &mut Vec<Knock>, now: Timestamp) {
        while let Some((i, opening, resize)) = self.ifaces.take_opened(now) {
            let filter = self.service.filter().to_string();
            let mut old = match opening
                .finish(&filter)
                .and_then(|next| self.ifaces.hand_over(i, next))
            {
                Ok(old) => old,
                Err(e) => {
                    self.resize_failed(i, resize, &e, now);
                    continue;
                }
            };
            let debug = self.settings.debug.then_some(TimeBase::Live);
            // Bounded: the old ring receives nothing any more.
            while let Ok(n) = read_knocks(&mut old, batch, debug, now, &mut self.skipped) {
                self.service.handle_knocks(batch, now);
                self.drain(now);
                if n < BATCH {
                    break;
                }
            }
            self.ifaces.finish_resize(i, old);
            let iface = self.ifaces.slots[i].name.clone();
            self.exec
                .out
                .log(now, Notice::CaptureResized { iface, resize });
            self.ifaces.slots[i].ring.resized(resize, true, now);
        }
    }

    fn resize_failed(&mut self, i: usize, resize: Resize, e: &CaptureError, now: Timestamp) {
        self.exec.out.log(
            now,
            Notice::CaptureNotResized {
                iface: self.ifaces.slots[i].name.clone(),
                bytes: resize.bytes,
                error: e.to_string(),
                retry: ring::RETRY,
            },
        );
        self.ifaces.slots[i].ring.resized(resize, false, now);
    }

    /// Runs every pending stop command, waits (boundedly) for the commands
    /// in flight, then logs capture statistics and `shutting down`.
    fn shut_down(&mut self) {
        let now = monotonic_now();
        self.service.handle_shutdown(Close::All, now);
        self.drain(now);
        while !self.service.is_finished() {
            // SIGCHLD on the signal pipe wakes this up when a command ends.
            let wait = poll_timeout(self.service.poll_timeout(), monotonic_now());
            let mut fds = [PollFd::new(self.signals.as_fd(), PollFlags::POLLIN)];
            if nix::poll::poll(&mut fds, wait).is_err() {
                std::thread::sleep(Duration::from_millis(10));
            }
            let _ = self.signals.take();
            let now = monotonic_now();
            self.reap(now);
            if self.service.has_rotating_doors() {
                self.service.handle_wall_clock(wall_offset(), now);
            }
            self.service.handle_timeout(now);
            self.drain(now);
        }
        let now = monotonic_now();
        for notice in self.ifaces.stats().into_iter().chain(self.skipped.notice()) {
            self.exec.out.log(now, notice);
        }
        self.exec.out.log(now, Notice::ShuttingDown);
        self.exec.out.flush_lookups();
    }
}

/// Reads up to a batch of frames from `cap` into `batch` as knocks
/// stamped `now`, counting skips in `skipped`; returns how many frames were
/// read.
fn read_knocks(
    cap: &mut LiveCapture,
    batch: &mut Vec<Knock>,
    debug: Option<TimeBase>,
    now: Timestamp,
    skipped: &mut Skipped,
) -> Result<usize, CaptureError> {
    let link = cap.link();
    batch.clear();
    cap.read_batch(|data, len| {
        batch.extend(knock_of(link, data, len, now, debug, skipped));
    })
}

/// Every descriptor the loop waits for, in a fixed order.
fn sources<'a>(
    ifaces: &'a Interfaces,
    signals: &'a Signals,
    out: &'a Output,
) -> impl Iterator<Item = Wanted<'a>> {
    let caps = ifaces.slots.iter().enumerate().filter_map(|(i, s)| {
        s.cap
            .as_ref()
            .map(|c| (Token::Capture(i), c.as_fd(), c.serial()))
    });
    let net = ifaces.netwatch_fd().map(|fd| (Token::Netlink, fd, 0));
    let lookup = out.lookup_fd().map(|fd| (Token::Lookup, fd, 0));
    caps.chain([(Token::Signals, signals.as_fd(), 0)])
        .chain(net)
        .chain(lookup)
}

/// How long the loop may sleep to wake at `deadline` (never before it).
fn poll_timeout(deadline: Option<Timestamp>, now: Timestamp) -> PollTimeout {
    match deadline {
        None => PollTimeout::NONE,
        Some(at) => {
            let ms = at.saturating_since(now).as_nanos().div_ceil(1_000_000);
            PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX)
        }
    }
}
