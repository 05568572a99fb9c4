//! The journal of pending stop commands (`StateFile`), so that a daemon
//! killed with `kill -9`, crashed, or rebooted during `Cmd_Timeout` still
//! closes the door when it starts again.
//!
//! This module owns the file format, atomic replacement and the lock that
//! keeps two daemons from sharing one journal. It must not decide when a
//! stop is due (the engine does) or run anything.
//!
//! Format (text, one entry per line after a version header):
//! `DUE_UNIX_NANOS<TAB>SOURCE<TAB>DOOR<TAB>COMMAND`, with `\`, tab and
//! newline escaped in the door and command. Times are wall-clock, because
//! the monotonic clock does not survive a reboot.

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use super::file_error::FileError;

const HEADER: &str = "# knockd-rs pending stop commands v1";

/// One pending stop command as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub due: SystemTime,
    pub src: IpAddr,
    pub door: String,
    pub command: String,
}

/// A journal problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("state file {path} is in use by another knockd; give each instance its own StateFile")]
    Locked { path: String },
}

/// An open journal, locked for this daemon's lifetime.
pub struct Journal {
    path: PathBuf,
    /// Held for the lock (released when the file closes).
    _lock: Flock<File>,
}

impl Journal {
    /// Locks the journal at `path`, creating its directory (mode 0700) when
    /// missing, and returns it with the entries an earlier run left.
    /// Malformed lines are skipped and reported in the second list.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>, Vec<String>), JournalError> {
        let err = |e: io::Error| JournalError::Io(FileError::new("state file", path, e));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let lock_path = with_suffix(path, ".lock");
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .mode(0o600)
            .open(&lock_path)
            .map_err(err)?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|_| {
            JournalError::Locked {
                path: path.display().to_string(),
            }
        })?;
        let (entries, problems) = match std::fs::read_to_string(path) {
            Ok(text) => parse(&text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => (Vec::new(), Vec::new()),
            Err(e) => return Err(err(e)),
        };
        Ok((
            Journal {
                path: path.to_path_buf(),
                _lock: lock,
            },
            entries,
            problems,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Replaces the journal with `entries`: written to a temporary file,
    /// synced, renamed over the old one and the directory synced, so a crash
    /// at any point leaves either the old or the new journal, whole.
    pub fn write(&self, entries: &[Entry]) -> Result<(), JournalError> {
        let err = |e: io::Error| JournalError::Io(FileError::new("state file", &self.path, e));
        let tmp = with_suffix(&self.path, ".tmp");
        let mut text = String::from(HEADER);
        text.push('\n');
        for e in entries {
            let nanos = e
                .due
                .duration_since(UNIX_EPOCH)
                .unwrap_or_default()
                .as_nanos();
            text.push_str(&format!(
                "{nanos}\t{}\t{}\t{}\n",
                e.src,
                escape(&e.door),
                escape(&e.command)
            ));
        }
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(true)
            .write(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(err)?;
        file.write_all(text.as_bytes()).map_err(err)?;
        file.sync_all().map_err(err)?;
        drop(file);
        std::fs::rename(&tmp, &self.path).map_err(err)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        Ok(())
    }
}

/// Reads a journal without locking it (for `--status`-style inspection).
pub fn read(path: &Path) -> io::Result<(Vec<Entry>, Vec<String>)> {
    Ok(parse(&std::fs::read_to_string(path)?))
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn parse(text: &str) -> (Vec<Entry>, Vec<String>) {
    let mut entries = Vec::new();
    let mut problems = Vec::new();
    for (i, line) in text.lines().enumerate() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(e) => entries.push(e),
            None => problems.push(format!("line {}: malformed entry skipped", i + 1)),
        }
    }
    (entries, problems)
}

fn parse_line(line: &str) -> Option<Entry> {
    let mut f = line.splitn(4, '\t');
    let nanos: u64 = f.next()?.parse().ok()?;
    let src: IpAddr = f.next()?.parse().ok()?;
    let door = unescape(f.next()?)?;
    let command = unescape(f.next()?)?;
    Some(Entry {
        due: UNIX_EPOCH + Duration::from_nanos(nanos),
        src,
        door,
        command,
    })
}

fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            c => out.push(c),
        }
    }
    out
}

fn unescape(s: &str) -> Option<String> {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        out.push(match chars.next()? {
            '\\' => '\\',
            't' => '\t',
            'n' => '\n',
            'r' => '\r',
            _ => return None,
        });
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(secs: u64, door: &str, command: &str) -> Entry {
        Entry {
            due: UNIX_EPOCH + Duration::from_nanos(secs * 1_000_000_000 + 123),
            src: "2001:db8::7".parse().unwrap(),
            door: door.into(),
            command: command.into(),
        }
    }

    #[test]
    fn round_trips_awkward_text_atomically() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/state");
        let (j, old, problems) = Journal::open(&path).unwrap();
        assert!(old.is_empty() && problems.is_empty());
        let entries = vec![
            entry(
                1_800_000_000,
                "open\tSSH",
                "iptables -D INPUT -s 2001:db8::7 -j ACCEPT",
            ),
            entry(
                1_800_000_010,
                "d",
                "printf 'a\\tb\\n' > /tmp/x\nsecond line",
            ),
        ];
        j.write(&entries).unwrap();
        assert!(!dir.path().join("sub/state.tmp").exists());
        let (back, problems) = read(&path).unwrap();
        assert_eq!(back, entries);
        assert!(problems.is_empty());
        j.write(&[]).unwrap();
        assert_eq!(read(&path).unwrap().0, vec![]);
    }

    #[test]
    fn a_second_daemon_cannot_share_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        let (first, _, _) = Journal::open(&path).unwrap();
        let second = Journal::open(&path).err().unwrap();
        assert_eq!(
            second.to_string(),
            format!(
                "state file {} is in use by another knockd; give each instance its own StateFile",
                path.display()
            )
        );
        drop(first);
        assert!(Journal::open(&path).is_ok());
    }

    #[test]
    fn malformed_lines_are_skipped_and_reported() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state");
        std::fs::write(
            &path,
            format!("{HEADER}\nnot a line\n5\t192.0.2.1\td\tclose\n7\tnot-ip\td\tc\n"),
        )
        .unwrap();
        let (_j, entries, problems) = Journal::open(&path).unwrap();
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].command, "close");
        assert_eq!(
            problems,
            vec![
                "line 2: malformed entry skipped",
                "line 4: malformed entry skipped"
            ]
        );
    }
}
