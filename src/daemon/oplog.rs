//! The operator log: knockd's messages, in knockd's format, to the log
//! file, syslog and (with `-v`) stdout; with `LogFormat = json`, one JSON
//! object per line to the file and stdout (syslog keeps the text); under
//! systemd, natively to the journal.
//!
//! Scripts and log watchers match these lines, so the text comes from the
//! engine's `Event` display unchanged and each file line is
//! `[YYYY-MM-DD HH:MM] message`, local time, appended and flushed. Unlike
//! knockd 0.8 no message ends in a stray blank line.

use std::ffi::CString;
use std::fs::File;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::core::config::LogFormat;
use crate::core::service::{journal_entry, json_line, Notice};
use crate::daemon::clock::{log_stamp, rfc3339};
use crate::daemon::file_error::FileError;
use crate::daemon::journald::Journald;

/// The log file could not be opened: the daemon does not start (knockd 0.8
/// prints a warning and runs without its log, so watchers see nothing).
pub type LogOpenError = FileError;

/// Where operator messages go.
pub struct OperatorLog {
    file: Option<(PathBuf, File)>,
    /// Lines the log file could not take since its last good write (a
    /// full disk): reported on stderr once when it starts, once when it
    /// ends, not per line.
    lost: u64,
    /// The last failed write left part of a line that could not be cut
    /// off: the next line starts on a line of its own.
    torn: bool,
    syslog: bool,
    verbose: bool,
    /// Stdout lines carry the log file's stamp (replay: the capture's time).
    stamp_stdout: bool,
    format: LogFormat,
    /// Under systemd: the journal, written natively.
    journal: Option<Journald>,
}

impl OperatorLog {
    /// Opens the log file (append, created 0640) and syslog as configured.
    pub fn open(path: Option<&Path>, syslog: bool, verbose: bool) -> Result<Self, LogOpenError> {
        let file = match path {
            Some(p) => Some((p.to_path_buf(), open_append(p)?)),
            None => None,
        };
        if syslog {
            // SAFETY: openlog keeps the ident pointer; a 'static C string
            // literal lives for the whole process.
            unsafe { libc::openlog(c"knockd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        }
        Ok(OperatorLog {
            file,
            lost: 0,
            torn: false,
            syslog,
            verbose,
            stamp_stdout: false,
            format: LogFormat::Text,
            journal: None,
        })
    }

    /// The log of a replay: every line on stdout with the stamp the log
    /// file would have shown (capture time), plus `file` if one was asked
    /// for on the command line. Never syslog: a replay is not an event.
    pub fn replay(file: Option<&Path>) -> Result<Self, LogOpenError> {
        let mut log = OperatorLog::open(file, false, true)?;
        log.stamp_stdout = true;
        Ok(log)
    }

    /// Writes `notice` (with `-l`'s `host` for its knocker, if known),
    /// stamped with `at`, everywhere it goes, in the configured format.
    ///
    /// Under systemd (see [`Journald`]) the copies that would reach the
    /// journal as text (stdout when it is the journal stream, syslog when
    /// `/dev/log` is journald's) are replaced by one native entry with
    /// fields, so each line is in the journal once. If the journal does
    /// not take the entry, the text copies are written as before.
    pub fn notice(&mut self, at: SystemTime, notice: &Notice, host: Option<&str>) {
        let text = notice.with_host(host).to_string();
        let json = match self.format {
            LogFormat::Text => None,
            LogFormat::Json => Some(json_line(&rfc3339(at), notice, host, &text)),
        };
        let (stdout, syslog) = match &self.journal {
            Some(j) => text_copies(self.verbose, self.syslog, j, || {
                j.send(&journal_entry(notice, host, &text)).is_ok()
            }),
            None => (self.verbose, self.syslog),
        };
        self.write(at, &text, json.as_deref(), stdout, syslog);
    }

    /// Writes one plain message stamped with `at`, as text.
    #[cfg(test)]
    pub fn line(&mut self, at: SystemTime, msg: &str) {
        self.write(at, msg, None, self.verbose, self.syslog);
    }

    /// Writes `msg` (or, in JSON format, `json`) to stdout if `stdout`,
    /// syslog (always the text) if `syslog`, and the log file. A write
    /// error (a full disk) is reported on stderr, once until the file takes
    /// lines again, and never stops or delays the daemon: knocks keep being
    /// served, doors opened.
    fn write(&mut self, at: SystemTime, msg: &str, json: Option<&str>, stdout: bool, syslog: bool) {
        if stdout {
            let _ = match json {
                Some(json) => writeln!(std::io::stdout().lock(), "{json}"),
                None if self.stamp_stdout => {
                    writeln!(std::io::stdout().lock(), "{} {msg}", log_stamp(at))
                }
                None => writeln!(std::io::stdout().lock(), "{msg}"),
            };
        }
        if syslog {
            if let Ok(c) = CString::new(msg.replace('\0', "")) {
                // SAFETY: "%s" with one valid NUL-terminated C string.
                unsafe { libc::syslog(libc::LOG_NOTICE, c"%s".as_ptr(), c.as_ptr()) };
            }
        }
        if let Some((path, file)) = &mut self.file {
            // One write per line, so concurrent appenders never interleave
            // inside a line.
            let nl = if self.torn { "\n" } else { "" };
            let text = match json {
                Some(json) => format!("{nl}{json}\n"),
                None => format!("{nl}{} {msg}\n", log_stamp(at)),
            };
            let (done, result) = write_some(file, text.as_bytes());
            match result {
                Ok(()) => {
                    self.torn = false;
                    if self.lost > 0 {
                        let _ = writeln!(
                            std::io::stderr().lock(),
                            "knockd: log file {} written again; {} line(s) lost",
                            path.display(),
                            self.lost
                        );
                        self.lost = 0;
                    }
                }
                Err(e) => {
                    // A line is whole or absent: the part written goes.
                    if done > 0 && !cut_off(file, done) {
                        self.torn = true;
                    }
                    if self.lost == 0 {
                        let _ = writeln!(
                            std::io::stderr().lock(),
                            "knockd: cannot write log file {}: {}; lines are lost until it can be written again",
                            path.display(),
                            crate::core::config::io_reason(&e)
                        );
                    }
                    self.lost += 1;
                }
            }
        }
    }

    /// Writes lines in `format` from now on (`LogFormat`, `--log-format`).
    pub fn set_format(&mut self, format: LogFormat) {
        self.format = format;
    }

    /// Sends lines to the systemd journal natively (see
    /// [`OperatorLog::notice`]); `None`: not under systemd.
    pub fn set_journal(&mut self, journal: Option<Journald>) {
        self.journal = journal;
    }

    /// Reopens the log file (SIGHUP after logrotate), creating it again if
    /// it was moved or deleted. On failure the old handle is kept.
    pub fn reopen(&mut self) -> Result<(), LogOpenError> {
        if let Some((path, file)) = &mut self.file {
            *file = open_append(path)?;
            self.torn = false;
        }
        Ok(())
    }

    /// Points the log at another file (a reloaded config changed LogFile).
    pub fn set_path(&mut self, path: Option<&Path>) -> Result<(), LogOpenError> {
        let same = self.file.as_ref().map(|(p, _)| p.as_path()) == path;
        if same {
            return self.reopen();
        }
        self.file = match path {
            Some(p) => Some((p.to_path_buf(), open_append(p)?)),
            None => None,
        };
        self.torn = false;
        Ok(())
    }

    /// Turns syslog on or off (a reloaded `UseSyslog`).
    pub fn set_syslog(&mut self, on: bool) {
        if on && !self.syslog {
            // SAFETY: as in `open`: a 'static ident for openlog.
            unsafe { libc::openlog(c"knockd".as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) };
        }
        self.syslog = on;
    }
}

/// Removes the last `done` bytes of `file`, the start of a line whose end
/// could not be written (a full disk); false when it cannot.
fn cut_off(file: &File, done: usize) -> bool {
    file.metadata()
        .and_then(|m| file.set_len(m.len().saturating_sub(done as u64)))
        .is_ok()
}

/// Writes `buf` as `write_all` does, but says how much got out before an
/// error: part of a line may be in the file.
fn write_some(file: &mut File, buf: &[u8]) -> (usize, std::io::Result<()>) {
    let mut done = 0;
    while done < buf.len() {
        match file.write(&buf[done..]) {
            Ok(0) => return (done, Err(std::io::ErrorKind::WriteZero.into())),
            Ok(n) => done += n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return (done, Err(e)),
        }
    }
    (done, Ok(()))
}

/// Under systemd: sends the journal entry (`send`) when a copy of the
/// line would reach the journal as text anyway, and says which text copies
/// (stdout, syslog) are still to be written: those the entry does not
/// replace, or all of them when the journal did not take it.
fn text_copies(
    stdout: bool,
    syslog: bool,
    j: &Journald,
    send: impl FnOnce() -> bool,
) -> (bool, bool) {
    let replaces_stdout = stdout && j.stdout_is_journal;
    let replaces_syslog = syslog && j.syslog_is_journal;
    if (replaces_stdout || replaces_syslog) && send() {
        (stdout && !replaces_stdout, syslog && !replaces_syslog)
    } else {
        (stdout, syslog)
    }
}

fn open_append(path: &Path) -> Result<File, LogOpenError> {
    // Never through a symbolic link: root appending to whatever a link in
    // a writable log directory points at is a classic takeover.
    super::safe_file::open_append(path, 0o640)
        .map_err(|e| FileError::new("cannot open log file", path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_stamped_appended_and_have_no_blank_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        std::fs::write(&path, "old line\n").unwrap();
        let mut log = OperatorLog::open(Some(&path), false, false).unwrap();
        let at = SystemTime::now();
        log.line(at, "openSSH: running command: /bin/true");
        log.line(at, "192.0.2.1: openSSH: OPEN SESAME");
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3, "{text:?}");
        assert_eq!(lines[0], "old line");
        let stamp = log_stamp(at);
        assert_eq!(
            lines[1],
            format!("{stamp} openSSH: running command: /bin/true")
        );
        assert_eq!(lines[2], format!("{stamp} 192.0.2.1: openSSH: OPEN SESAME"));
    }

    #[test]
    fn under_systemd_each_line_reaches_the_journal_once() {
        use std::os::unix::net::UnixDatagram;
        let journal = |stdout_j, syslog_j| {
            Journald::connected(UnixDatagram::pair().unwrap().0, stdout_j, syslog_j)
        };
        // (-v, UseSyslog, stdout is the journal, /dev/log is journald's,
        //  the journal takes the entry) -> (entry sent, stdout, syslog).
        let cases = [
            // -v to the journal stream: the entry replaces the stdout copy.
            ((true, false, true, true, true), (true, false, false)),
            // UseSyslog to journald: the entry replaces the syslog copy.
            ((false, true, false, true, true), (true, false, false)),
            // Both: one entry, neither text copy.
            ((true, true, true, true, true), (true, false, false)),
            // -v to a stdout that is not the journal (stderr is): stdout
            // keeps its copy; syslog to journald is replaced.
            ((true, true, false, true, true), (true, true, false)),
            // Nothing would reach the journal: nothing is sent.
            ((false, false, true, true, true), (false, false, false)),
            ((false, true, true, false, true), (false, false, true)),
            // The journal refuses: the text copies are written instead.
            ((true, true, true, true, false), (true, true, true)),
        ];
        for ((v, sl, sj, lj, takes), want) in cases {
            let mut sent = false;
            let (out, sys) = text_copies(v, sl, &journal(sj, lj), || {
                sent = true;
                takes
            });
            assert_eq!((sent, out, sys), want, "{:?}", (v, sl, sj, lj, takes));
        }
    }

    #[test]
    fn json_lines_go_to_the_file_whole_and_text_stays_the_default() {
        use crate::core::engine::Event;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        let mut log = OperatorLog::open(Some(&path), false, false).unwrap();
        let n = Notice::Event(Event::OpenSesame {
            src: "192.0.2.1".parse().unwrap(),
            door: "ssh".into(),
        });
        let at = SystemTime::now();
        log.notice(at, &n, None);
        log.set_format(LogFormat::Json);
        log.notice(at, &n, Some("h.example"));
        log.set_format(LogFormat::Text);
        log.notice(at, &n, None);
        let text = std::fs::read_to_string(&path).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        let stamp = log_stamp(at);
        assert_eq!(lines[0], format!("{stamp} 192.0.2.1: ssh: OPEN SESAME"));
        assert_eq!(
            lines[1],
            format!(
                r#"{{"time":"{}","event":"open_sesame","ip":"192.0.2.1","host":"h.example","door":"ssh","message":"192.0.2.1 (h.example): ssh: OPEN SESAME"}}"#,
                rfc3339(at)
            )
        );
        assert_eq!(lines[2], lines[0]);
        assert_eq!(lines.len(), 3);
    }

    #[test]
    fn reopen_recreates_a_rotated_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        let mut log = OperatorLog::open(Some(&path), false, false).unwrap();
        log.line(SystemTime::now(), "before");
        std::fs::rename(&path, dir.path().join("knockd.log.1")).unwrap();
        log.reopen().unwrap();
        log.line(SystemTime::now(), "after");
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(
            text.ends_with("after\n") && !text.contains("before"),
            "{text}"
        );
    }

    /// A log file on a full disk (here /dev/full, whose writes fail with
    /// ENOSPC) loses its lines, counted and reported once, and never stops
    /// the caller; a file that takes lines again ends the count.
    #[test]
    fn a_full_disk_loses_lines_without_stopping_anything() {
        let mut log = OperatorLog::open(Some(Path::new("/dev/full")), false, false).unwrap();
        log.line(SystemTime::now(), "192.0.2.1: door: OPEN SESAME");
        log.line(SystemTime::now(), "door: running command: /bin/true");
        assert_eq!(log.lost, 2);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.log");
        log.set_path(Some(&path)).unwrap();
        log.line(SystemTime::now(), "back");
        assert_eq!(log.lost, 0);
        assert!(std::fs::read_to_string(&path).unwrap().ends_with(" back\n"));
    }

    #[test]
    fn unwritable_log_is_a_one_line_error() {
        let err = OperatorLog::open(Some(Path::new("/nonexistent/dir/knockd.log")), false, false)
            .err()
            .unwrap();
        assert_eq!(
            err.to_string(),
            "cannot open log file /nonexistent/dir/knockd.log: no such file"
        );
    }
}
