//! The systemd journal, natively: under systemd, operator messages go to
//! `/run/systemd/journal/socket` as entries with fields
//! (`KNOCKD_EVENT=`, `KNOCKD_IP=`, `KNOCKD_DOOR=`, ...), so
//! `journalctl -u knockd KNOCKD_DOOR=ssh` finds a door's lines.
//!
//! This module only detects systemd and sends datagrams; what an entry
//! holds is [`crate::core::service::journal_entry`], and which copies of a
//! line it replaces is [`super::oplog::OperatorLog`]'s decision.

use std::io;
use std::os::fd::AsFd;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

/// journald's socket for native-protocol entries.
pub const JOURNAL_SOCKET: &str = "/run/systemd/journal/socket";
/// journald's syslog socket, which `/dev/log` points at under systemd.
const JOURNAL_DEV_LOG: &str = "/run/systemd/journal/dev-log";

/// Where a daemon under systemd stands: which of its outputs already end in
/// the journal, and a socket to send entries on.
pub struct Journald {
    sock: UnixDatagram,
    /// `None`: the socket is connected (tests use a socket pair).
    path: Option<PathBuf>,
    /// stdout is the journal stream (so `-v` lines land there as text).
    pub stdout_is_journal: bool,
    /// `/dev/log` is journald's (so syslog lines land there as text).
    pub syslog_is_journal: bool,
}

impl Journald {
    /// The journal, if this process runs under systemd with its output
    /// connected to it: `$JOURNAL_STREAM` (`DEV:INODE`) names the stream,
    /// and it only counts when stdout or stderr still is that stream (a
    /// child that redirected them inherits the variable, as systemd
    /// documents).
    pub fn detect() -> Option<Journald> {
        let stream = std::env::var("JOURNAL_STREAM").ok()?;
        let stdout_is_journal = is_stream(&stream, io::stdout().as_fd());
        if !stdout_is_journal && !is_stream(&stream, io::stderr().as_fd()) {
            return None;
        }
        let sock = UnixDatagram::unbound().ok()?;
        sock.set_nonblocking(true).ok()?;
        let syslog_is_journal = std::fs::canonicalize("/dev/log")
            .is_ok_and(|p| p == Path::new(JOURNAL_DEV_LOG))
            || std::fs::read_link("/dev/log").is_ok_and(|p| p == Path::new(JOURNAL_DEV_LOG));
        Some(Journald {
            sock,
            path: Some(PathBuf::from(JOURNAL_SOCKET)),
            stdout_is_journal,
            syslog_is_journal,
        })
    }

    /// A journal on a connected socket (tests read the other end), made
    /// non-blocking as [`Journald::detect`]'s is.
    pub fn connected(sock: UnixDatagram, stdout_is_journal: bool, syslog_is_journal: bool) -> Self {
        let _ = sock.set_nonblocking(true);
        Journald {
            sock,
            path: None,
            stdout_is_journal,
            syslog_is_journal,
        }
    }

    /// Sends one entry (one datagram). Never blocks: a journal that cannot
    /// take it now gets an error, and the caller writes the line the text
    /// way instead.
    pub fn send(&self, entry: &[u8]) -> io::Result<()> {
        let sent = match &self.path {
            Some(p) => self.sock.send_to(entry, p)?,
            None => self.sock.send(entry)?,
        };
        if sent == entry.len() {
            Ok(())
        } else {
            Err(io::Error::new(io::ErrorKind::WriteZero, "short datagram"))
        }
    }
}

/// Whether `fd` is the stream `$JOURNAL_STREAM` names (`DEV:INODE`, both
/// decimal).
pub fn is_stream(stream: &str, fd: impl AsFd) -> bool {
    let Some((dev, ino)) = stream.split_once(':') else {
        return false;
    };
    let (Ok(dev), Ok(ino)) = (dev.parse::<u64>(), ino.parse::<u64>()) else {
        return false;
    };
    // dev_t and ino_t are not u64 on every platform.
    #[allow(clippy::unnecessary_cast)]
    match nix::sys::stat::fstat(fd) {
        Ok(st) => st.st_dev as u64 == dev && st.st_ino as u64 == ino,
        Err(_) => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::engine::Event;
    use crate::core::service::{journal_entry, Notice};
    use std::sync::Arc;

    /// Parses datagrams of the native protocol back into (key, value)
    /// pairs: `KEY=value\n`, or `KEY\n` + u64 LE length + value + `\n`.
    fn parse(mut d: &[u8]) -> Vec<(String, String)> {
        let mut out = Vec::new();
        while !d.is_empty() {
            let nl = d.iter().position(|&b| b == b'\n').expect("newline");
            let line = &d[..nl];
            if let Some(eq) = line.iter().position(|&b| b == b'=') {
                let key = String::from_utf8(line[..eq].to_vec()).unwrap();
                let value = String::from_utf8(line[eq + 1..].to_vec()).unwrap();
                out.push((key, value));
                d = &d[nl + 1..];
            } else {
                let key = String::from_utf8(line.to_vec()).unwrap();
                let rest = &d[nl + 1..];
                let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
                let value = String::from_utf8(rest[8..8 + len].to_vec()).unwrap();
                assert_eq!(rest[8 + len], b'\n', "binary field ends in a newline");
                out.push((key, value));
                d = &rest[8 + len + 1..];
            }
            let key = &out.last().unwrap().0;
            assert!(
                !key.is_empty()
                    && !key.starts_with('_')
                    && key
                        .bytes()
                        .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_'),
                "journal field name {key:?}"
            );
        }
        out
    }

    fn recv(sock: &UnixDatagram) -> Vec<(String, String)> {
        let mut buf = vec![0u8; 65536];
        let n = sock.recv(&mut buf).unwrap();
        parse(&buf[..n])
    }

    #[test]
    fn entries_sent_on_a_socket_pair_read_back_with_every_field() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let j = Journald::connected(ours, true, true);
        let open = Notice::Event(Event::OpenSesame {
            src: "192.0.2.7".parse().unwrap(),
            door: Arc::from("ssh"),
        });
        j.send(&journal_entry(
            &open,
            Some("client.example"),
            &open.to_string(),
        ))
        .unwrap();
        assert_eq!(
            recv(&theirs),
            [
                ("MESSAGE", "192.0.2.7: ssh: OPEN SESAME"),
                ("PRIORITY", "5"),
                ("SYSLOG_IDENTIFIER", "knockd"),
                ("SYSLOG_FACILITY", "3"),
                ("KNOCKD_EVENT", "open_sesame"),
                ("KNOCKD_IP", "192.0.2.7"),
                ("KNOCKD_HOST", "client.example"),
                ("KNOCKD_DOOR", "ssh"),
            ]
            .map(|(k, v)| (k.to_string(), v.to_string()))
        );

        // A value with a newline (a command) takes the binary length form;
        // a list is one field per item.
        let run = Notice::RunningCommand {
            door: Arc::from("web"),
            command: "a\nb=c".into(),
        };
        j.send(&journal_entry(&run, None, &run.to_string()))
            .unwrap();
        let got = recv(&theirs);
        assert_eq!(
            got[0],
            ("MESSAGE".into(), "web: running command: a\nb=c".into())
        );
        assert!(got.contains(&("KNOCKD_EVENT".into(), "running_command".into())));
        assert!(got.contains(&("KNOCKD_DOOR".into(), "web".into())));
        assert!(got.contains(&("KNOCKD_COMMAND".into(), "a\nb=c".into())));
        let addrs = Notice::Addresses {
            interfaces: "lo".into(),
            addrs: vec!["127.0.0.1".parse().unwrap(), "::1".parse().unwrap()],
        };
        j.send(&journal_entry(&addrs, None, &addrs.to_string()))
            .unwrap();
        let got = recv(&theirs);
        let items: Vec<&str> = got
            .iter()
            .filter(|(k, _)| k == "KNOCKD_ADDRESSES")
            .map(|(_, v)| v.as_str())
            .collect();
        assert_eq!(items, ["127.0.0.1", "::1"]);
    }

    #[test]
    fn a_journal_that_cannot_take_an_entry_is_an_error_not_a_wait() {
        let (ours, theirs) = UnixDatagram::pair().unwrap();
        let j = Journald::connected(ours, false, false);
        let mut failed = false;
        for _ in 0..100_000 {
            if j.send(&[b'M'; 1024]).is_err() {
                failed = true;
                break;
            }
        }
        assert!(failed, "a full socket must refuse, not block");
        drop(theirs);
    }

    #[test]
    fn journal_stream_matches_only_its_own_device_and_inode() {
        let file = tempfile::tempfile().unwrap();
        let st = nix::sys::stat::fstat(&file).unwrap();
        let me = format!("{}:{}", st.st_dev, st.st_ino);
        assert!(is_stream(&me, &file));
        assert!(!is_stream(
            &format!("{}:{}", st.st_dev, st.st_ino + 1),
            &file
        ));
        assert!(!is_stream("garbage", &file));
        assert!(!is_stream("", &file));
    }
}
