//! What the service asks the shell to do, as data, and what the shell
//! reports back about commands.

use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;

use super::notice::Notice;
use crate::core::config::{NftSet, OneTimeLine};
use crate::core::engine::DoorId;
use crate::core::knock::Timestamp;

/// Names one command run, from [`Effect::Run`] to
/// [`super::Service::handle_command_ended`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CommandId(pub u64);

/// How a command ended, as the shell saw it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CommandEnd {
    /// It exited with this status.
    Exited(i32),
    /// A signal ended it.
    Signaled(i32),
    /// The system would not start it (fork or exec failed): the reason.
    SpawnFailed(String),
    /// Waiting for it failed: the reason. It is counted as failed.
    WaitFailed(String),
}

/// A pending stop command as the journal keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct JournalEntry {
    /// When it is due, in engine time (the shell stores wall-clock time).
    pub due: Timestamp,
    pub src: IpAddr,
    pub door: Arc<str>,
    pub command: String,
}

/// A rotating door's period that opened: journaled with the stops, so it
/// stays used across a restart (and, kept a day past its period, a clock
/// step back).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedMark {
    pub door: Arc<str>,
    /// Whose sequence it was, at a door of users: each user's periods open
    /// once, apart from everyone else's.
    pub user: Option<Arc<str>>,
    /// The period counter (Unix time divided by the door's period).
    pub period: u64,
    /// Unix second after which the mark can no longer matter.
    pub keep_until: u64,
}

/// One change to the journal, appended to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalRecord {
    /// The stop known as `key` is pending (a later record for the same key
    /// replaces it: an extended door, a stop scheduled again).
    Add { key: u64, entry: JournalEntry },
    /// The stop known as `key` ran, or will never run.
    Remove { key: u64 },
    /// A rotating door's period opened: it must never open again.
    Used(UsedMark),
}

/// How to bring the journal file up to date.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JournalWrite {
    /// Append these records (synced).
    Append(Vec<JournalRecord>),
    /// Replace the whole file, atomically, with these stops (by key) and
    /// used marks: at start, after a failed write, and when appended
    /// records pile up.
    Rewrite {
        stops: Vec<(u64, JournalEntry)>,
        used: Vec<UsedMark>,
    },
}

/// What systemd (or the parent of `-d`) is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Readiness {
    /// A reload started (`RELOADING=1`).
    Reloading,
    /// Serving with the current config and filter (`READY=1`).
    Ready,
    /// Shutting down (`STOPPING=1`).
    Stopping,
}

/// One thing for the shell to do, drained with
/// [`super::Service::poll_effect`] and carried out in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Write an operator message (log file, syslog, `-v`).
    Log(Notice),
    /// Run `command` with `/bin/sh -c`; report its end with
    /// [`super::Service::handle_command_ended`].
    Run { id: CommandId, command: String },
    /// Write the journal of pending stops, durably. The shell answers with
    /// [`super::Service::handle_journal_result`] before it polls the next
    /// effect: the start commands this write covers come after it, and do
    /// not run if it failed.
    Journal(JournalWrite),
    /// Add `addr` to the nftables `set` with a kernel timeout (an element
    /// already there gets its timeout started over; one without a timeout,
    /// an admin's, is left as it is): the kernel closes the door by itself,
    /// even if the daemon dies. If the kernel says the set is full and
    /// `evict` names an element (the daemon's own, nearest expiry), remove
    /// it and add `addr` in one batch. The shell answers with
    /// [`super::Service::handle_nft_result`] (with `id`) before the next
    /// effect.
    NftAdd {
        /// Names this request in its answer.
        id: u64,
        set: NftSet,
        addr: IpAddr,
        timeout: std::time::Duration,
        evict: Option<IpAddr>,
    },
    /// Kill command `id` and its process group (a start still running when
    /// its stop is due); its end is reported as usual.
    Kill { id: CommandId },
    /// A one-time door's live line was used: with `mark`, write `#` over
    /// it in the file (where [`crate::core::config::onetime::locate_used`]
    /// says); then read the file and hand its bytes to
    /// [`super::Service::handle_one_time_file`].
    UseOneTime {
        door: DoorId,
        path: PathBuf,
        used: OneTimeLine,
        mark: bool,
    },
    /// Install this BPF filter on every capture.
    InstallFilter(String),
    /// The log file is now this one (a reload): reopen it, or switch.
    SetLogFile(Option<PathBuf>),
    /// Reopen the log file (after logrotate), keeping its path.
    ReopenLog,
    /// Mirror messages to syslog, or stop.
    SetSyslog(bool),
    /// Write log-file and `-v` lines in this format from now on (a reload
    /// changed `LogFormat`).
    SetLogFormat(crate::core::config::LogFormat),
    /// Tell the service manager.
    Readiness(Readiness),
}
