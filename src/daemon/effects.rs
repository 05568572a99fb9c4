//! Carrying out what the service asks, in order, and handing the answers
//! back: the one place where effects become IO, shared by the live daemon
//! and `--read`.

use super::journal::{self, Journal};
use super::nft_doors::NftDoors;
use super::onetime_file;
use super::output::Output;
use super::runner::Runner;
use crate::core::config::io_reason;
use crate::core::knock::Timestamp;
use crate::core::service::{
    CommandEnd, Effect, JournalEntry, JournalRecord, JournalWrite, Notice, Readiness, Service,
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
}

impl Executor {
    pub fn new(out: Output, journal: Option<Journal>) -> Self {
        Executor {
            out,
            runner: Runner::default(),
            journal,
            nft: NftDoors::default(),
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
                    let time = self.out.time();
                    let entry = |e: JournalEntry| journal::Entry {
                        due: time.wall(e.due),
                        src: e.src,
                        door: e.door.to_string(),
                        command: e.command,
                    };
                    let result = match (&mut self.journal, write) {
                        (None, _) => Ok(()),
                        (Some(j), JournalWrite::Append(records)) => {
                            let records: Vec<journal::Record> = records
                                .into_iter()
                                .map(|r| match r {
                                    JournalRecord::Add { key, entry: e } => {
                                        journal::Record::Add(key, entry(e))
                                    }
                                    JournalRecord::Remove { key } => journal::Record::Remove(key),
                                })
                                .collect();
                            j.append(&records)
                        }
                        (Some(j), JournalWrite::Rewrite(stops)) => {
                            let stops: Vec<(u64, journal::Entry)> =
                                stops.into_iter().map(|(k, e)| (k, entry(e))).collect();
                            j.rewrite(&stops)
                        }
                    };
                    service.handle_journal_result(result.map_err(|e| e.to_string()), now);
                }
                Effect::Kill { id } => self.runner.kill(id),
                Effect::NftAdd {
                    set,
                    addr,
                    timeout,
                    evict,
                } => {
                    let result = self.nft.add(&set, addr, timeout, evict);
                    service.handle_nft_result(result, now);
                }
                Effect::UseOneTime {
                    door,
                    path,
                    used,
                    mark,
                } => {
                    let bytes = if mark {
                        onetime_file::use_line(&path, &used)
                    } else {
                        onetime_file::read(&path)
                    };
                    service.handle_one_time_file(door, bytes.map_err(|e| io_reason(&e)), now);
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
                Effect::Readiness(r) => host.readiness(r),
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
