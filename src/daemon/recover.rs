//! A daemon that cannot start (a config error, an interface it cannot
//! capture on) still closes the doors an earlier run left open: the
//! journaled stops that are due run, the rest stay journaled for the next
//! start, and only then does it exit with its error.
//!
//! Without this, a daemon killed with doors open and then unable to start
//! (say its last one-time sequence was used, or an admin's typo) would
//! leave the holes open for as long as it stays down; systemd's
//! `RestartPreventExitStatus=78` keeps it down.

use std::time::Duration;

use super::clock::{monotonic_now, TimeBase};
use super::effects::{Executor, Host};
use super::journal::{self, Journal};
use super::oplog::OperatorLog;
use super::output::Output;
use super::settings::Settings;
use crate::core::config::{Config, Options};
use crate::core::engine::LocalAddrs;
use crate::core::knock::Timestamp;
use crate::core::service::{Close, Mode, Notice, Readiness, RestoredStop, Service};

/// Nothing to capture or tell while recovering.
struct Recovering;

impl Host for Recovering {
    fn install_filter(&mut self, _: &mut super::output::Output, _: &str, _: Timestamp) {}
    fn readiness(&mut self, _: Readiness) {}
}

/// Runs the stops journaled in `options`' state file that are due, waits
/// (boundedly) for them, and leaves the others journaled; `reason` says in
/// the log why the daemon is not starting. Returns how many stops it ran.
/// A journal another knockd holds (it is running) is left alone, and one
/// that cannot be opened is reported on stderr by the caller's error
/// anyway: both run nothing.
pub fn run_due_stops(settings: &Settings, options: &Options, reason: &str) -> usize {
    let path = options.state_file_path();
    let (journal, contents) = match Journal::open(&path) {
        Ok(j) => j,
        // Another knockd holds it (and runs its stops), or it cannot be
        // used: the caller's own error says what to fix.
        Err(_) => return 0,
    };
    let journal::Contents {
        stops: entries,
        used,
        problems,
    } = contents;
    if entries.is_empty() && problems.is_empty() {
        return 0;
    }
    // The rewrite below keeps the rotating doors' used marks.
    let used = used
        .into_iter()
        .map(super::effects::restored_mark)
        .collect();
    // The log file if it can be opened; otherwise stdout with -v only.
    let log = OperatorLog::open(settings.log_file.as_deref(), false, settings.verbose)
        .or_else(|_| OperatorLog::open(None, false, settings.verbose));
    let Ok(mut log) = log else { return 0 };
    log.set_format(settings.log_format);
    log.set_journal(super::journald::Journald::detect());
    let now = monotonic_now();
    let config = Config {
        options: options.clone(),
        doors: Vec::new(),
    };
    let mut service = Service::new(
        &config,
        settings.service(Mode::Live, path.clone(), super::clock::wall_offset()),
        LocalAddrs::List(Vec::new()),
        now,
    );
    let mut exec = Executor::new(Output::new(log, TimeBase::Live, false), Some(journal));
    let journal_path = path.display().to_string();
    let restored = entries
        .into_iter()
        .map(|e| RestoredStop {
            due: TimeBase::Live.engine_time(e.due),
            src: e.src,
            door: e.door,
            command: e.command,
        })
        .collect();
    service.handle_restore(&journal_path, restored, used, problems, now);
    service.handle_timeout(now);
    let ran = service.commands_running();
    service.handle_shutdown(Close::Due, now);
    exec.drain(&mut service, &mut Recovering, now);
    while !service.is_finished() {
        std::thread::sleep(Duration::from_millis(5));
        let now = monotonic_now();
        exec.reap(&mut service, &mut Recovering, now);
        service.handle_timeout(now);
        exec.drain(&mut service, &mut Recovering, now);
    }
    let now = monotonic_now();
    let left = service.journaled();
    exec.out.log(
        now,
        Notice::NotStarting {
            reason: reason.to_string(),
            left,
        },
    );
    ran
}
