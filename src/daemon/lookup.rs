//! `-l`: knockers' host names in log lines (`IP (HOST): door: ...`), looked
//! up off the capture path.
//!
//! knockd 0.8 calls `gethostbyaddr` inside its packet handler, so a slow DNS
//! server stalls knock processing. Here a worker thread does the lookups;
//! log lines wait in order (so the log still reads in event order) until
//! their knocker's name is known or a deadline passes, and are then written
//! with or without the name. Commands never wait for DNS. Everything is
//! bounded: the cache, the lines waiting and the lookups in flight; past the
//! bounds lines are written without a name.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{Read, Write};
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::mpsc::{self, Receiver, SyncSender, TrySendError};
use std::time::{Duration, SystemTime};

use crate::core::knock::Timestamp;
use crate::core::service::Notice;

/// How long a log line waits for its knocker's name.
pub const LOOKUP_WAIT: Duration = Duration::from_secs(2);
const MAX_CACHE: usize = 4096;
const MAX_WAITING_LINES: usize = 1024;
const MAX_IN_FLIGHT: usize = 64;

struct Waiting {
    wall: SystemTime,
    deadline: Timestamp,
    line: Notice,
}

/// Host-name lookups and the log lines waiting for them.
pub struct Tagger {
    cache: HashMap<IpAddr, Option<String>>,
    in_flight: HashSet<IpAddr>,
    waiting: VecDeque<Waiting>,
    requests: SyncSender<IpAddr>,
    answers: Receiver<(IpAddr, Option<String>)>,
    wake: UnixStream,
}

impl Tagger {
    /// Starts the lookup thread, resolving with the system resolver.
    pub fn start() -> std::io::Result<Self> {
        Self::with_resolver(|ip| dns_lookup::lookup_addr(&ip).ok())
    }

    /// Starts the lookup thread with `resolve` (tests pass a fake one).
    pub fn with_resolver(
        resolve: impl Fn(IpAddr) -> Option<String> + Send + 'static,
    ) -> std::io::Result<Self> {
        let (requests, inbox) = mpsc::sync_channel::<IpAddr>(MAX_IN_FLIGHT);
        let (outbox, answers) = mpsc::channel();
        let (wake, mut ping) = UnixStream::pair()?;
        wake.set_nonblocking(true)?;
        ping.set_nonblocking(true)?;
        std::thread::Builder::new()
            .name("knockd-lookup".into())
            .spawn(move || {
                for ip in inbox {
                    let name = resolve(ip)
                        .filter(|n| *n != ip.to_string())
                        .map(|n| printable(&n));
                    if outbox.send((ip, name)).is_err() {
                        break;
                    }
                    // A full pipe already means "wake up".
                    let _ = ping.write(&[1]);
                }
            })?;
        Ok(Tagger {
            cache: HashMap::new(),
            in_flight: HashSet::new(),
            waiting: VecDeque::new(),
            requests,
            answers,
            wake,
        })
    }

    /// Queues a line to be written at `wall`; a knocker not yet known gets
    /// a lookup.
    pub fn push(&mut self, now: Timestamp, wall: SystemTime, line: Notice) {
        if let Some(ip) = line.src() {
            self.request(ip);
        }
        if self.waiting.len() >= MAX_WAITING_LINES {
            // Too much waiting (a flood with -l): stop waiting for anyone.
            for w in &mut self.waiting {
                w.deadline = Timestamp::ZERO;
            }
        }
        self.waiting.push_back(Waiting {
            wall,
            deadline: now + LOOKUP_WAIT,
            line,
        });
    }

    fn request(&mut self, ip: IpAddr) {
        if self.cache.contains_key(&ip) || self.in_flight.contains(&ip) {
            return;
        }
        match self.requests.try_send(ip) {
            Ok(()) => {
                self.in_flight.insert(ip);
            }
            // Too many lookups queued: this one goes without a name.
            Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                self.remember(ip, None);
            }
        }
    }

    fn remember(&mut self, ip: IpAddr, name: Option<String>) {
        if self.cache.len() >= MAX_CACHE {
            self.cache.clear();
        }
        self.cache.insert(ip, name);
    }

    /// The lines that can be written now, in order, with names.
    pub fn ready(&mut self, now: Timestamp) -> Vec<Tagged> {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        while let Ok((ip, name)) = self.answers.try_recv() {
            self.in_flight.remove(&ip);
            self.remember(ip, name);
        }
        let mut out = Vec::new();
        while let Some(front) = self.waiting.front() {
            let src = front.line.src();
            let known = src.is_none_or(|ip| self.cache.contains_key(&ip));
            if !known && now < front.deadline {
                break;
            }
            let Some(w) = self.waiting.pop_front() else {
                break;
            };
            out.push(self.tag(w));
        }
        out
    }

    /// Everything still waiting, with the names known so far (shutdown).
    pub fn flush(&mut self) -> Vec<Tagged> {
        let lines: Vec<Waiting> = self.waiting.drain(..).collect();
        lines.into_iter().map(|w| self.tag(w)).collect()
    }

    fn tag(&self, w: Waiting) -> Tagged {
        let host = w
            .line
            .src()
            .and_then(|ip| self.cache.get(&ip))
            .and_then(Clone::clone);
        Tagged {
            wall: w.wall,
            notice: w.line,
            host,
        }
    }

    /// When the oldest waiting line stops waiting.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.waiting.front().map(|w| w.deadline)
    }
}

/// A line whose wait for its knocker's name is over: the name, if one
/// was found, goes into the text (`IP (HOST): ...`) and the fields.
#[derive(Debug, Clone)]
pub struct Tagged {
    pub wall: SystemTime,
    pub notice: Notice,
    pub host: Option<String>,
}

impl std::fmt::Display for Tagged {
    /// The text line.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.notice.with_host(self.host.as_deref()).fmt(f)
    }
}

/// A host name as it may appear in a log line: whoever controls the
/// knocker's reverse DNS chooses it, so anything but letters, digits and
/// `.-_` is written as `\xNN` (no newline to forge a line, no escape to
/// drive a terminal, nothing a log parser would split on).
pub fn printable(name: &str) -> String {
    let mut out = String::with_capacity(name.len());
    for b in name.bytes().take(255) {
        if b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_') {
            out.push(b as char);
        } else {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    out
}

impl AsFd for Tagger {
    /// Readable when a lookup finished.
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    use crate::core::engine::Event;

    fn stage(ip: &str) -> Notice {
        Notice::Event(Event::Stage {
            src: ip.parse().unwrap(),
            door: Arc::from("d"),
            stage: 1,
        })
    }

    fn wait_ready(t: &mut Tagger, now: Timestamp, n: usize) -> Vec<String> {
        let mut got = Vec::new();
        for _ in 0..500 {
            got.extend(t.ready(now).into_iter().map(|l| l.to_string()));
            if got.len() >= n {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    fn hostile_names_are_escaped_to_printable_ascii() {
        assert_eq!(printable("client.example-1_a"), "client.example-1_a");
        assert_eq!(
            printable("evil\n[2026-01-01 00:00] 1.2.3.4: ssh: OPEN SESAME"),
            "evil\\x0a\\x5b2026-01-01\\x2000\\x3a00\\x5d\\x201.2.3.4\\x3a\\x20ssh\\x3a\\x20OPEN\\x20SESAME"
        );
        assert_eq!(printable("\u{1b}[31mred"), "\\x1b\\x5b31mred");
        assert_eq!(printable("é"), "\\xc3\\xa9");
        assert_eq!(printable(&"a".repeat(300)).len(), 255);
    }

    #[test]
    fn names_are_added_and_order_is_kept() {
        let mut t = Tagger::with_resolver(|ip| {
            (ip.to_string() == "192.0.2.1").then(|| "client.example".to_string())
        })
        .unwrap();
        let now = Timestamp::from_nanos(1);
        let wall = SystemTime::now();
        t.push(now, wall, stage("192.0.2.1"));
        t.push(
            now,
            wall,
            Notice::RunningCommand {
                door: Arc::from("d"),
                command: "x".into(),
            },
        );
        t.push(now, wall, stage("192.0.2.2"));
        assert_eq!(
            wait_ready(&mut t, now, 3),
            vec![
                "192.0.2.1 (client.example): d: Stage 1",
                "d: running command: x",
                "192.0.2.2: d: Stage 1",
            ]
        );
        assert_eq!(t.next_deadline(), None);
    }

    /// Issue 19: with `-l`, only the engine's lines got `IP (HOST)`; the
    /// service's lines about a knocker (refused, not opened, ...) did not.
    #[test]
    fn every_ip_door_line_gets_the_host_name() {
        use crate::core::service::Limit;
        let mut t = Tagger::with_resolver(|ip| {
            (ip.to_string() == "192.0.2.1").then(|| "client.example".to_string())
        })
        .unwrap();
        let now = Timestamp::from_nanos(1);
        let wall = SystemTime::now();
        let src: IpAddr = "192.0.2.1".parse().unwrap();
        let door = || Arc::<str>::from("d");
        let lines = [
            Notice::Refused {
                src,
                door: door(),
                limit: Limit::OpensPerMinute(60),
            },
            Notice::NotOpened {
                src,
                door: door(),
                what: crate::core::service::Unjournaled::Stop,
                error: "disk full".into(),
            },
            Notice::NotAddedToSet {
                src,
                door: door(),
                error: "no such set".into(),
            },
            Notice::StartNeverRan { src, door: door() },
        ];
        for line in lines {
            t.push(now, wall, line);
        }
        assert_eq!(
            wait_ready(&mut t, now, 4),
            vec![
                "192.0.2.1 (client.example): d: opening refused: 60 openings in the last minute (MaxOpensPerMinute)",
                "192.0.2.1 (client.example): d: not opened: its stop command could not be journaled (disk full)",
                "192.0.2.1 (client.example): d: not opened: no such set",
                "192.0.2.1 (client.example): d: start command still waiting for a free slot when its stop was due; neither runs",
            ]
        );
    }

    #[test]
    fn a_slow_resolver_never_holds_lines_past_the_deadline() {
        let (release, gate) = mpsc::channel::<()>();
        let gate = std::sync::Mutex::new(gate);
        let mut t = Tagger::with_resolver(move |_| {
            let _ = gate.lock().map(|g| g.recv_timeout(Duration::from_secs(10)));
            Some("late.example".into())
        })
        .unwrap();
        let now = Timestamp::from_nanos(1_000);
        t.push(now, SystemTime::now(), stage("198.51.100.9"));
        assert!(t.ready(now).is_empty(), "waits while the lookup runs");
        assert_eq!(t.next_deadline(), Some(now + LOOKUP_WAIT));
        let later = now + LOOKUP_WAIT;
        assert_eq!(
            t.ready(later)
                .into_iter()
                .map(|l| l.to_string())
                .collect::<Vec<_>>(),
            vec!["198.51.100.9: d: Stage 1"]
        );
        let _ = release.send(());
    }
}
