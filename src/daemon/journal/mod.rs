//! The journal of pending stop commands (`StateFile`), so that a daemon
//! killed with `kill -9`, crashed, or rebooted during `Cmd_Timeout` still
//! closes the door when it starts again.
//!
//! This module owns the file format, durable appends, atomic rewrites,
//! the lock that keeps two daemons from sharing one journal, and the checks
//! that make its content trustworthy (its commands run as root at the next
//! start). It must not decide when a stop is due or what to write (the
//! service does) or run anything.
//!
//! Format (text, after a version header), one record per line:
//! `+<TAB>KEY<TAB>DUE_UNIX_NANOS<TAB>SOURCE<TAB>DOOR<TAB>COMMAND` (a stop
//! is pending; a later `+` for the same key replaces it) and `-<TAB>KEY`
//! (it ran), with `\`, tab and newline escaped in the door and command.
//! Each write appends the records of one input and syncs: O(1) per open.
//! Now and then the file is rewritten whole (a temporary file, synced and
//! renamed over it).
//!
//! The sync of an append is on the way from a knock to its start command,
//! so the file keeps zeros written ahead of its records ([`SPARE`] bytes,
//! renewed when used up), and records are written over them in place: a
//! write that neither grows the file nor allocates space changes no
//! metadata the sync must wait for, so `fdatasync` is a data write and a
//! cache flush, not a file-system journal commit (on ext4, 3–5× cheaper,
//! and without the commit's long tail). Readers stop at the zeros. Times are wall-clock, because the monotonic clock
//! does not survive a reboot. Lines of the v1 format (an entry without a
//! leading `+`) are still read.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};

use super::file_error::FileError;
use super::safe_file;

const HEADER: &str = "# knockd-rs pending stop commands v2";

/// Zeros kept written ahead of the records: about 300 records before the
/// file grows again (one sync with a commit), at 64 KiB of disk.
const SPARE: u64 = 64 << 10;

/// Largest journal read at start: far beyond `MaxPendingStops` of every
/// door, small enough that a wrong file cannot exhaust memory.
const MAX_BYTES: u64 = 256 << 20;

/// One pending stop command as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub due: SystemTime,
    pub src: IpAddr,
    pub door: String,
    pub command: String,
}

/// One change, as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Add(u64, Entry),
    Remove(u64),
}

/// A journal problem, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("state file {path} is in use by another knockd; give each instance its own StateFile")]
    Locked { path: String },
    /// The file exists but cannot be trusted: its commands would run as
    /// root. The message says how to fix it.
    #[error("state file {path}: {why}")]
    Untrusted { path: String, why: String },
}

/// An open journal, locked for this daemon's lifetime.
pub struct Journal {
    path: PathBuf,
    /// Where records are written, in place over the zeros.
    file: File,
    /// The end of the records: where the next one goes.
    end: u64,
    /// The file's length: records, then zeros up to here.
    len: u64,
    /// Held for the lock (released when the file closes).
    _lock: Flock<File>,
}

impl Journal {
    /// Locks the journal at `path`, creating its directory (mode 0700) when
    /// missing, checks it can be trusted, and returns it with the stops an
    /// earlier run left. Malformed lines are skipped and reported in the
    /// second list.
    pub fn open(path: &Path) -> Result<(Journal, Vec<Entry>, Vec<String>), JournalError> {
        let err = |e: io::Error| JournalError::Io(FileError::new("state file", path, e));
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(err)?;
        }
        let lock = safe_file::open_rw(&with_suffix(path, ".lock"), 0o600).map_err(err)?;
        let lock = Flock::lock(lock, FlockArg::LockExclusiveNonblock).map_err(|_| {
            JournalError::Locked {
                path: path.display().to_string(),
            }
        })?;
        let untrusted = |why: String| JournalError::Untrusted {
            path: path.display().to_string(),
            why,
        };
        if std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_symlink()) {
            return Err(untrusted(
                "is a symbolic link; remove it, knockd creates the file itself".into(),
            ));
        }
        let mut file = safe_file::open_rw(path, 0o600).map_err(err)?;
        if let Some(why) = safe_file::untrusted(&file, path).map_err(err)? {
            return Err(untrusted(why));
        }
        // Bytes, not text: a line a crash or a bad disk left unreadable
        // costs that line, not every stop in the file.
        let mut bytes = Vec::new();
        Read::by_ref(&mut file)
            .take(MAX_BYTES)
            .read_to_end(&mut bytes)
            .map_err(err)?;
        let (entries, problems) = parse(&bytes);
        let len = file.metadata().map_err(err)?.len();
        // Records end where the zeros begin; a file larger than was read
        // is written at its end.
        let end = if (bytes.len() as u64) < len {
            len
        } else {
            records(&bytes).len() as u64
        };
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                end,
                len,
                _lock: lock,
            },
            entries,
            problems,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: io::Error) -> JournalError {
        JournalError::Io(FileError::new("state file", &self.path, e))
    }

    /// Appends `records` in one write and syncs them: once this returns,
    /// they survive a crash or a power cut.
    pub fn append(&mut self, records: &[Record]) -> Result<(), JournalError> {
        let mut text = String::new();
        for r in records {
            render(&mut text, r);
        }
        let end = self.end + text.len() as u64;
        if end > self.len {
            // Out of zeros: more are written first, synced with the records
            // (this sync grows the file, so it commits; the next ones do not).
            let len = end + SPARE;
            write_zeros(&self.file, self.len, len).map_err(|e| self.error(e))?;
            self.len = len;
        }
        self.file
            .write_all_at(text.as_bytes(), self.end)
            .map_err(|e| self.error(e))?;
        self.file.sync_data().map_err(|e| self.error(e))?;
        self.end = end;
        Ok(())
    }

    /// Replaces the journal with `stops`: written to a fresh temporary
    /// file, synced, renamed over the old one and the directory synced, so
    /// a crash at any point leaves either the old or the new journal, whole.
    pub fn rewrite(&mut self, stops: &[(u64, Entry)]) -> Result<(), JournalError> {
        let mut text = String::from(HEADER);
        text.push('\n');
        for (key, entry) in stops {
            render(&mut text, &Record::Add(*key, entry.clone()));
        }
        let tmp = with_suffix(&self.path, ".tmp");
        let mut file = safe_file::create_fresh(&tmp, 0o600).map_err(|e| self.error(e))?;
        let end = text.len() as u64;
        file.write_all(text.as_bytes()).map_err(|e| self.error(e))?;
        write_zeros(&file, end, end + SPARE).map_err(|e| self.error(e))?;
        file.sync_all().map_err(|e| self.error(e))?;
        std::fs::rename(&tmp, &self.path).map_err(|e| self.error(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        // The new file is the journal now: records go on in it.
        self.file = file;
        self.end = end;
        self.len = end + SPARE;
        Ok(())
    }
}

/// Reads a journal without locking it (for `--status`).
pub fn read(path: &Path) -> io::Result<(Vec<Entry>, Vec<String>)> {
    Ok(parse(&std::fs::read(path)?))
}

/// Writes zeros over `from..to` of `file` (not synced).
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    let zeros = vec![0u8; (to - from) as usize];
    file.write_all_at(&zeros, from)
}

/// The records of a journal: what precedes the zeros written ahead.
fn records(bytes: &[u8]) -> &[u8] {
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    &bytes[..end]
}

fn with_suffix(path: &Path, suffix: &str) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(suffix);
    PathBuf::from(s)
}

fn nanos(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap_or_default().as_nanos()
}

fn render(text: &mut String, record: &Record) {
    use std::fmt::Write as _;
    let _ = match record {
        Record::Add(key, e) => writeln!(
            text,
            "+\t{key}\t{}\t{}\t{}\t{}",
            nanos(e.due),
            e.src,
            escape(&e.door),
            escape(&e.command)
        ),
        Record::Remove(key) => writeln!(text, "-\t{key}"),
    };
}

/// The stops a journal holds: its adds not removed, in the order they were
/// first added; and the lines that could not be read (not UTF-8, or not a
/// record).
fn parse(bytes: &[u8]) -> (Vec<Entry>, Vec<String>) {
    // Key -> (order first seen, entry).
    let mut live: BTreeMap<u64, (usize, Entry)> = BTreeMap::new();
    let mut problems = Vec::new();
    let malformed = |i: usize| format!("line {}: malformed entry skipped", i + 1);
    let mut lines: Vec<&[u8]> = records(bytes).split(|b| *b == b'\n').collect();
    if lines.last().is_some_and(|l| l.is_empty()) {
        lines.pop();
    }
    for (i, line) in lines.into_iter().enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            problems.push(malformed(i));
            continue;
        };
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match parse_line(line) {
            Some(Record::Add(key, entry)) => {
                let order = live.get(&key).map_or(i, |(o, _)| *o);
                live.insert(key, (order, entry));
            }
            Some(Record::Remove(key)) => {
                live.remove(&key);
            }
            // v1: an entry of its own, never removed by key.
            None => match parse_entry(line) {
                Some(entry) => {
                    live.insert(u64::MAX - i as u64, (i, entry));
                }
                None => problems.push(malformed(i)),
            },
        }
    }
    let mut entries: Vec<(usize, Entry)> = live.into_values().collect();
    entries.sort_by_key(|(order, _)| *order);
    (entries.into_iter().map(|(_, e)| e).collect(), problems)
}

fn parse_line(line: &str) -> Option<Record> {
    if let Some(rest) = line.strip_prefix("+\t") {
        let (key, entry) = rest.split_once('\t')?;
        return Some(Record::Add(key.parse().ok()?, parse_entry(entry)?));
    }
    let key = line.strip_prefix("-\t")?;
    Some(Record::Remove(key.parse().ok()?))
}

/// `DUE<TAB>SOURCE<TAB>DOOR<TAB>COMMAND`.
fn parse_entry(line: &str) -> Option<Entry> {
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
mod tests;
