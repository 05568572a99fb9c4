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
//! Format (text, after a version header), one record per line, each
//! ending in a tab and 16 hex digits, the first 8 bytes of the SHA-256 of
//! what precedes them, then a newline:
//! `+<TAB>KEY<TAB>DUE_UNIX_NANOS<TAB>SOURCE<TAB>DOOR<TAB>COMMAND` (a stop
//! is pending; a later `+` for the same key replaces it), `-<TAB>KEY` (it
//! ran), `u<TAB>DOOR<TAB>PERIOD<TAB>KEEP_UNTIL_UNIX_NANOS` (a rotating
//! door's period opened; see [`UsedMark`]) and
//! `U<TAB>DOOR<TAB>USER<TAB>PERIOD<TAB>KEEP_UNTIL_UNIX_NANOS` (a user's
//! period at a door of users opened), with `\`, tab and newline escaped
//! in doors, users and commands. A record is whole or ignored: a power
//! cut mid-append leaves the start of a record with no newline, or with a
//! checksum that does not match, and such a line is skipped and reported,
//! never applied (`touch DIR/torn-name` must not run as `touch DIR/to`).
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
//! and without the commit's long tail). Readers stop at the zeros.
//!
//! The zeros are also a reserve for a full disk: when a rewrite finds no
//! room (`ENOSPC`, `EDQUOT`), the file is brought to the same content by
//! appending what differs over its zeros instead (the records already
//! there stay valid), so a restart on a full `/var` still opens doors;
//! only when the reserve is spent does a write fail (and the door stays
//! closed). Times are wall-clock, because the monotonic clock does not
//! survive a reboot.
//!
//! Older files are still read: v2 (records without checksum) and v1 (an
//! entry without a leading `+`), but there too a last line without its
//! newline is skipped and reported. Appending to an older file in place
//! first writes the v3 header, from where checksums are required.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fs::File;
use std::io::{self, Read, Write};
use std::net::IpAddr;
use std::os::unix::fs::DirBuilderExt;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::fcntl::{Flock, FlockArg};
use sha2::{Digest, Sha256};

use super::file_error::FileError;
use super::safe_file;

/// The header of the current format: checksummed records.
pub const HEADER: &str = "# knockd-rs pending stop commands v3";

/// A header line, any version (`v1`, `v2`, `v3`): it sets how the lines
/// after it are read.
const HEADER_PREFIX: &str = "# knockd-rs pending stop commands v";

/// The first version whose records carry their checksum.
const CHECKED: u32 = 3;

/// Hex digits of a record's checksum (8 bytes of its SHA-256).
const CHECK_LEN: usize = 16;

/// Zeros kept written ahead of the records: about 300 records before the
/// file grows again (one sync with a commit), at 64 KiB of disk; and the
/// reserve that records go to when the file system is full.
const SPARE: u64 = 64 << 10;

/// Largest journal read at start: far beyond `MaxPendingStops` of every
/// door, small enough that a wrong file cannot exhaust memory.
const MAX_BYTES: u64 = 256 << 20;

/// The problem reported for a last line without its newline.
const TORN: &str = "incomplete record skipped (cut short by a crash)";

/// One pending stop command as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub due: SystemTime,
    pub src: IpAddr,
    pub door: String,
    pub command: String,
}

/// A rotating door's period that opened: it must never open again, also
/// after a restart, so it is journaled with the stops, and kept until
/// `keep_until` (past it, the period cannot be accepted anyway and a
/// rewrite drops the mark).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsedMark {
    /// The door's name (its sequences derive from it).
    pub door: String,
    /// Whose key opened it, at a door of users (a `U` record); `None` for
    /// every other rotating door (a `u` record, as before users).
    pub user: Option<String>,
    /// The period's counter (time / `Sequence_Period`).
    pub period: u64,
    /// Until when the mark is kept (wall-clock time).
    pub keep_until: SystemTime,
}

/// One change, as appended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Add(u64, Entry),
    Remove(u64),
    Used(UsedMark),
}

/// What a journal holds, as read back.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Contents {
    /// The stops pending: adds not removed, in the order first added.
    pub stops: Vec<Entry>,
    /// The used marks, one per door and period (the latest `keep_until`),
    /// in the order first seen; expired ones too (the reader decides).
    pub used: Vec<UsedMark>,
    /// The lines skipped (`line N: ...`): torn, damaged or not a record.
    pub problems: Vec<String>,
}

/// How a rewrite brought the file up to date.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rewritten {
    /// Written whole, afresh: the file is compact again.
    Whole,
    /// No room for a fresh file: what differed was appended to the old one,
    /// over its zeros, of which `reserve` bytes are left. `first` is true
    /// when the previous write was not in place (the moment to warn).
    InPlace { reserve: u64, first: bool },
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

/// What the file on disk holds, by checksum: what a rewrite in place must
/// change to reach new content.
#[derive(Default)]
struct OnDisk {
    /// Key -> checksum of the stop's latest add.
    stops: HashMap<u64, u64>,
    /// Checksums of the used marks.
    used: HashSet<u64>,
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
    /// Written before the next records: the v3 header in an older file.
    prefix: String,
    /// What the file holds.
    disk: OnDisk,
    /// The last rewrite went in place (the file system was full).
    in_place: bool,
    /// Held for the lock (released when the file closes).
    _lock: Flock<File>,
}

impl Journal {
    /// Locks the journal at `path`, creating its directory (mode 0700) when
    /// missing, checks it can be trusted, and returns it with what an
    /// earlier run left: stops, used marks, and the lines skipped.
    pub fn open(path: &Path) -> Result<(Journal, Contents), JournalError> {
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
        let folded = fold(&bytes);
        let len = file.metadata().map_err(err)?.len();
        // Records end where the zeros begin; a file larger than was read
        // is written at its end.
        let end = if (bytes.len() as u64) < len {
            len
        } else {
            // A torn last line is wiped and written over: a newline after
            // it would make the start of a v2 record look whole.
            let whole = folded.whole as u64;
            let _ = write_zeros(&file, whole, records(&bytes).len() as u64);
            whole
        };
        let mut prefix = String::new();
        if folded.version < CHECKED {
            prefix.push_str(HEADER);
            prefix.push('\n');
        }
        Ok((
            Journal {
                path: path.to_path_buf(),
                file,
                end,
                len,
                prefix,
                disk: folded.disk,
                in_place: false,
                _lock: lock,
            },
            folded.contents,
        ))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    fn error(&self, e: io::Error) -> JournalError {
        JournalError::Io(FileError::new("state file", &self.path, e))
    }

    /// Appends `records` in one write and syncs them: once this returns,
    /// they survive a crash or a power cut. With the file system full they
    /// go to the zeros written ahead; it fails when those are spent.
    pub fn append(&mut self, records: &[Record]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let mut text = self.prefix.clone();
        let mut checks = Vec::with_capacity(records.len());
        for r in records {
            checks.push(render(&mut text, r));
        }
        let end = self.end + text.len() as u64;
        if end > self.len {
            // Out of zeros: more are written first, synced with the records
            // (this sync grows the file, so it commits; the next ones do
            // not). With no room for a whole spare, the bytes these records
            // need may still fit in the last block the file has.
            let grown = match write_zeros(&self.file, self.len, end + SPARE) {
                Err(e) if is_no_space(&e) => write_zeros(&self.file, self.len, end).map(|()| end),
                r => r.map(|()| end + SPARE),
            };
            self.len = grown.map_err(|e| self.error(e))?;
        }
        let written = self
            .file
            .write_all_at(text.as_bytes(), self.end)
            .and_then(|()| self.file.sync_data());
        if let Err(e) = written {
            // Whatever of it reached the disk must not be read back, nor
            // stay readable after the shorter records written over it next
            // (best effort: the disk just failed).
            let _ = write_zeros(&self.file, self.end, end.min(self.len));
            return Err(self.error(e));
        }
        self.end = end;
        self.prefix.clear();
        for (r, check) in records.iter().zip(checks) {
            match r {
                Record::Add(key, _) => {
                    self.disk.stops.insert(*key, check);
                }
                Record::Remove(key) => {
                    self.disk.stops.remove(key);
                }
                Record::Used(_) => {
                    self.disk.used.insert(check);
                }
            }
        }
        Ok(())
    }

    /// Replaces the journal with `stops` and the marks of `used` still to
    /// keep at `now`: written to a fresh temporary file, synced, renamed
    /// over the old one and the directory synced, so a crash at any point
    /// leaves either the old or the new journal, whole. When the file
    /// system has no room for it, the old file is brought to the same
    /// content by appending what differs (see [`Rewritten::InPlace`]).
    pub fn rewrite(
        &mut self,
        stops: &[(u64, Entry)],
        used: &[UsedMark],
        now: SystemTime,
    ) -> Result<Rewritten, JournalError> {
        let used: Vec<&UsedMark> = used.iter().filter(|m| m.keep_until > now).collect();
        let tmp = with_suffix(&self.path, ".tmp");
        match self.write_fresh(&tmp, stops, &used) {
            Ok(()) => {
                self.in_place = false;
                Ok(Rewritten::Whole)
            }
            Err(e) if is_no_space(&e) => {
                // Give back what the temporary file took.
                let _ = std::fs::remove_file(&tmp);
                self.rewrite_in_place(stops, &used)
            }
            Err(e) => Err(self.error(e)),
        }
    }

    fn write_fresh(
        &mut self,
        tmp: &Path,
        stops: &[(u64, Entry)],
        used: &[&UsedMark],
    ) -> io::Result<()> {
        let mut text = String::from(HEADER);
        text.push('\n');
        let mut disk = OnDisk::default();
        for (key, entry) in stops {
            disk.stops
                .insert(*key, render(&mut text, &Record::Add(*key, entry.clone())));
        }
        for mark in used {
            disk.used
                .insert(render(&mut text, &Record::Used((*mark).clone())));
        }
        let mut file = safe_file::create_fresh(tmp, 0o600)?;
        let end = text.len() as u64;
        file.write_all(text.as_bytes())?;
        write_zeros(&file, end, end + SPARE)?;
        file.sync_all()?;
        std::fs::rename(tmp, &self.path)?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        // The new file is the journal now: records go on in it.
        self.file = file;
        self.end = end;
        self.len = end + SPARE;
        self.prefix.clear();
        self.disk = disk;
        Ok(())
    }

    /// The file system is full: appends to the old file what makes it hold
    /// `stops` and `used` (removals of stops it has that are gone, the adds
    /// it lacks, the marks it lacks), within the zeros written ahead.
    fn rewrite_in_place(
        &mut self,
        stops: &[(u64, Entry)],
        used: &[&UsedMark],
    ) -> Result<Rewritten, JournalError> {
        let wanted: HashSet<u64> = stops.iter().map(|(k, _)| *k).collect();
        let mut gone: Vec<u64> = self
            .disk
            .stops
            .keys()
            .filter(|k| !wanted.contains(k))
            .copied()
            .collect();
        gone.sort_unstable();
        let mut diff: Vec<Record> = gone.into_iter().map(Record::Remove).collect();
        let mut scratch = String::new();
        for (key, entry) in stops {
            let add = Record::Add(*key, entry.clone());
            scratch.clear();
            if self.disk.stops.get(key) != Some(&render(&mut scratch, &add)) {
                diff.push(add);
            }
        }
        for mark in used {
            let mark = Record::Used((*mark).clone());
            scratch.clear();
            if !self.disk.used.contains(&render(&mut scratch, &mark)) {
                diff.push(mark);
            }
        }
        self.append(&diff)?;
        let first = !self.in_place;
        self.in_place = true;
        Ok(Rewritten::InPlace {
            reserve: self.len.saturating_sub(self.end),
            first,
        })
    }
}

/// Reads a journal without locking it (for `--status`).
pub fn read(path: &Path) -> io::Result<Contents> {
    Ok(parse(&std::fs::read(path)?))
}

/// The file system (or the quota) has no room: the error a rewrite falls
/// back from, and the one that spends the reserve.
fn is_no_space(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::ENOSPC | libc::EDQUOT))
}

/// Writes zeros over `from..to` of `file` (not synced).
fn write_zeros(file: &File, from: u64, to: u64) -> io::Result<()> {
    if to <= from {
        return Ok(());
    }
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

/// The checksum of a record's text: the first 8 bytes of its SHA-256.
fn checksum(payload: &str) -> u64 {
    let digest = Sha256::digest(payload.as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&digest[..8]);
    u64::from_be_bytes(first)
}

/// Appends `record` as one line, with its checksum, as the journal writes
/// it (public for the fuzz target); returns the checksum.
pub fn render(text: &mut String, record: &Record) -> u64 {
    use std::fmt::Write as _;
    let start = text.len();
    let _ = match record {
        Record::Add(key, e) => write!(
            text,
            "+\t{key}\t{}\t{}\t{}\t{}",
            nanos(e.due),
            e.src,
            escape(&e.door),
            escape(&e.command)
        ),
        Record::Remove(key) => write!(text, "-\t{key}"),
        Record::Used(m) => match &m.user {
            None => write!(
                text,
                "u\t{}\t{}\t{}",
                escape(&m.door),
                m.period,
                nanos(m.keep_until)
            ),
            Some(user) => write!(
                text,
                "U\t{}\t{}\t{}\t{}",
                escape(&m.door),
                escape(user),
                m.period,
                nanos(m.keep_until)
            ),
        },
    };
    let check = checksum(&text[start..]);
    let _ = writeln!(text, "\t{check:016x}");
    check
}

/// What a journal's bytes hold: its contents, and what the file has on
/// disk for a rewrite in place to go on from.
struct Folded {
    contents: Contents,
    disk: OnDisk,
    /// The version of the last header (0: none).
    version: u32,
    /// The length of the whole lines: where a torn last line starts.
    whole: usize,
}

/// What a journal holds: the stops and used marks its records leave, and
/// the lines that could not be read (torn, damaged, not UTF-8, or not a
/// record). Never panics, whatever the bytes.
pub fn parse(bytes: &[u8]) -> Contents {
    fold(bytes).contents
}

fn fold(bytes: &[u8]) -> Folded {
    // Key -> (order first seen, entry, checksum).
    let mut live: BTreeMap<u64, (usize, Entry, u64)> = BTreeMap::new();
    // (door, user, period) -> (order first seen, mark); and the checksums.
    type MarkKey = (String, Option<String>, u64);
    let mut marks: HashMap<MarkKey, (usize, UsedMark)> = HashMap::new();
    let mut used_checks = HashSet::new();
    let mut problems = Vec::new();
    let malformed = |i: usize| format!("line {}: malformed entry skipped", i + 1);
    let records = records(bytes);
    let mut lines: Vec<&[u8]> = records.split(|b| *b == b'\n').collect();
    // What follows the last newline was cut short: never applied.
    let torn = lines.pop().filter(|l| !l.is_empty());
    let mut version = 0;
    for (i, line) in lines.iter().enumerate() {
        let Ok(line) = std::str::from_utf8(line) else {
            problems.push(malformed(i));
            continue;
        };
        if line.starts_with('#') {
            if let Some(v) = line.strip_prefix(HEADER_PREFIX) {
                version = v.trim_end_matches('\r').parse().unwrap_or(version);
            }
            continue;
        }
        let record = match checked(line) {
            Some((payload, check)) => parse_record(payload).map(|r| (r, check)),
            None if version >= CHECKED => None,
            None => {
                // v1 and v2: no checksum.
                let line = line.strip_suffix('\r').unwrap_or(line);
                if line.is_empty() {
                    continue;
                }
                let check = checksum(line);
                match parse_record(line) {
                    Some(r @ (Record::Add(..) | Record::Remove(_))) => Some((r, check)),
                    Some(Record::Used(_)) => None,
                    // v1: an entry of its own, never removed by key.
                    None => parse_entry(line).map(|e| (Record::Add(u64::MAX - i as u64, e), check)),
                }
            }
        };
        match record {
            Some((Record::Add(key, entry), check)) => {
                let order = live.get(&key).map_or(i, |(o, ..)| *o);
                live.insert(key, (order, entry, check));
            }
            Some((Record::Remove(key), _)) => {
                live.remove(&key);
            }
            Some((Record::Used(mark), check)) => {
                used_checks.insert(check);
                let at = marks
                    .entry((mark.door.clone(), mark.user.clone(), mark.period))
                    .or_insert((i, mark.clone()));
                at.1.keep_until = at.1.keep_until.max(mark.keep_until);
            }
            None => problems.push(malformed(i)),
        }
    }
    if torn.is_some() {
        problems.push(format!("line {}: {TORN}", lines.len() + 1));
    }
    let disk = OnDisk {
        stops: live.iter().map(|(k, (_, _, c))| (*k, *c)).collect(),
        used: used_checks,
    };
    let mut stops: Vec<(usize, Entry)> = live.into_values().map(|(o, e, _)| (o, e)).collect();
    stops.sort_by_key(|(order, _)| *order);
    let mut used: Vec<(usize, UsedMark)> = marks.into_values().collect();
    used.sort_by_key(|(order, _)| *order);
    Folded {
        contents: Contents {
            stops: stops.into_iter().map(|(_, e)| e).collect(),
            used: used.into_iter().map(|(_, m)| m).collect(),
            problems,
        },
        disk,
        version,
        whole: records.len() - torn.map_or(0, <[u8]>::len),
    }
}

/// A line's payload and checksum, when it ends in a checksum that matches.
fn checked(line: &str) -> Option<(&str, u64)> {
    let (payload, hex) = line.rsplit_once('\t')?;
    if hex.len() != CHECK_LEN || !hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    let check = u64::from_str_radix(hex, 16).ok()?;
    (checksum(payload) == check).then_some((payload, check))
}

fn parse_record(line: &str) -> Option<Record> {
    if let Some(rest) = line.strip_prefix("+\t") {
        let (key, entry) = rest.split_once('\t')?;
        return Some(Record::Add(key.parse().ok()?, parse_entry(entry)?));
    }
    let used = line
        .strip_prefix("u\t")
        .map(|rest| (rest, false))
        .or_else(|| line.strip_prefix("U\t").map(|rest| (rest, true)));
    if let Some((rest, with_user)) = used {
        let mut f = rest.split('\t');
        let door = unescape(f.next()?)?;
        let user = match with_user {
            true => Some(unescape(f.next()?)?),
            false => None,
        };
        let period = f.next()?.parse().ok()?;
        let keep: u64 = f.next()?.parse().ok()?;
        if f.next().is_some() {
            return None;
        }
        return Some(Record::Used(UsedMark {
            door,
            user,
            period,
            keep_until: UNIX_EPOCH + Duration::from_nanos(keep),
        }));
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
