//! Carrying out what the service asks, in order, and handing the answers
//! back: the one place where effects become IO, shared by the live daemon
//! and `--read`.

use std::collections::HashMap;
use std::path::PathBuf;

use super::journal::{self, Journal, JournalError, Rewritten};
use super::nft_doors::NftDoors;
use super::onetime_file;
use super::output::Output;
use super::runner::Runner;
use crate::core::knock::Timestamp;
use crate::core::service::{
    CommandEnd, Effect, JournalEntry, JournalRecord, JournalWrite, Notice, Readiness, Service,
    UsedMark,
};

/// The part of carrying out effects that differs between the live daemon
/// and a replay.
pub trait Host {
    /// Installs `filter` on every capture.
    fn install_filter(&mut self, out: &mut Output, filter: &str, now: Timestamp);
    /// Tells the service manager.
    fn readiness(&mut self, readiness: Readiness);
}

/// The log, the commands and the journal: what effects act on.
pub struct Executor {
    pub out: Output,
    pub runner: Runner,
    /// Where pending stops are journaled (not in a replay).
    journal: Option<Journal>,
    /// The netlink side of `Nft_Set` doors.
    pub nft: NftDoors,
    /// One-time files read before a dry run gave up root: what reading
    /// them again returns (a dry run never marks them, so they do not
    /// change under it).
    pub one_time_bytes: HashMap<PathBuf, Vec<u8>>,
}

impl Executor {
    pub fn new(out: Output, journal: Option<Journal>) -> Self {
        Executor {
            out,
            runner: Runner::default(),
            journal,
            nft: NftDoors::default(),
            one_time_bytes: HashMap::new(),
        }
    }

    /// Carries out every effect the service has, answering those that need
    /// an answer at once. `now` stamps log lines and answers.
    pub fn drain(&mut self, service: &mut Service, host: &mut impl Host, now: Timestamp) {
        while let Some(effect) = service.poll_effect() {
            match effect {
                Effect::Log(notice) => self.out.log(now, notice),
                Effect::Run { id, command } => {
                    if let Err(reason) = self.runner.spawn(id, &command) {
                        service.handle_command_ended(id, CommandEnd::SpawnFailed(reason), now);
                    }
                }
                Effect::Journal(write) => {
                    let result = self.write_journal(write, now);
                    service.handle_journal_result(result.map_err(|e| e.to_string()), now);
                }
                Effect::Kill { id } => self.runner.kill(id),
                Effect::NftAdd {
                    id,
                    set,
                    addr,
                    timeout,
                    evict,
                } => {
                    let result = self.nft.add(&set, addr, timeout, evict);
                    service.handle_nft_result(id, result, now);
                }
                Effect::UseOneTime {
                    door,
                    path,
                    used,
                    mark,
                } => {
                    let bytes = match self.one_time_bytes.get(&path) {
                        Some(bytes) if !mark => Ok(bytes.clone()),
                        _ if mark => onetime_file::use_line(&path, &used),
                        _ => onetime_file::read(&path),
                    };
                    service.handle_one_time_file(door, bytes.map_err(|e| e.to_string()), now);
                }
                Effect::InstallFilter(filter) => host.install_filter(&mut self.out, &filter, now),
                Effect::SetLogFile(path) => {
                    if let Err(e) = self.out.log.set_path(path.as_deref()) {
                        let error = e.to_string();
                        self.out.log(now, Notice::LogFileKept { error });
                    }
                }
                Effect::ReopenLog => {
                    if let Err(e) = self.out.log.reopen() {
                        let error = e.to_string();
                        self.out.log(now, Notice::LogFileKept { error });
                    }
                }
                Effect::SetSyslog(on) => self.out.log.set_syslog(on),
                Effect::SetLogFormat(format) => self.out.log.set_format(format),
                Effect::Readiness(r) => host.readiness(r),
            }
        }
    }

    /// Brings the journal up to date. A rewrite the file system had no
    /// room for goes to the zeros written ahead; the first such one since
    /// the journal was last written whole is logged (once, not per write).
    fn write_journal(&mut self, write: JournalWrite, now: Timestamp) -> Result<(), JournalError> {
        let Some(j) = &mut self.journal else {
            return Ok(());
        };
        let time = self.out.time();
        let entry = |e: JournalEntry| journal::Entry {
            due: time.wall(e.due),
            src: e.src,
            door: e.door.to_string(),
            command: e.command,
        };
        match write {
            JournalWrite::Append(records) => {
                let records: Vec<journal::Record> = records
                    .into_iter()
                    .map(|r| match r {
                        JournalRecord::Add { key, entry: e } => journal::Record::Add(key, entry(e)),
                        JournalRecord::Remove { key } => journal::Record::Remove(key),
                        JournalRecord::Used(m) => journal::Record::Used(used_mark(m)),
                    })
                    .collect();
                j.append(&records)
            }
            JournalWrite::Rewrite { stops, used } => {
                let stops: Vec<(u64, journal::Entry)> =
                    stops.into_iter().map(|(k, e)| (k, entry(e))).collect();
                let used: Vec<journal::UsedMark> = used.into_iter().map(used_mark).collect();
                let written = j.rewrite(&stops, &used, time.wall(now))?;
                if let Rewritten::InPlace {
                    reserve,
                    first: true,
                } = written
                {
                    let path = j.path().display().to_string();
                    self.out.log(now, Notice::StateFileFull { path, reserve });
                }
                Ok(())
            }
        }
    }

    /// Reports the commands that ended, and carries out what follows.
    pub fn reap(&mut self, service: &mut Service, host: &mut impl Host, now: Timestamp) {
        for (id, end) in self.runner.reap() {
            service.handle_command_ended(id, end, now);
        }
        self.drain(service, host, now);
    }
}

/// A used mark as the journal file keeps it (its time as wall-clock time:
/// the mark's `keep_until` is a Unix second already).
fn used_mark(m: UsedMark) -> journal::UsedMark {
    journal::UsedMark {
        door: m.door.to_string(),
        user: m.user.map(|u| u.to_string()),
        period: m.period,
        keep_until: std::time::UNIX_EPOCH + std::time::Duration::from_secs(m.keep_until),
    }
}

/// A used mark read back from the journal file, as the service keeps it.
pub fn restored_mark(m: journal::UsedMark) -> UsedMark {
    let keep_until = m
        .keep_until
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    UsedMark {
        door: m.door.into(),
        user: m.user.map(std::sync::Arc::from),
        period: m.period,
        keep_until,
    }
}
