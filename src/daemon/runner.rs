//! Runs door commands with `/bin/sh -c` without ever stalling capture, reaps
//! them, and reports how they ended.
//!
//! knockd 0.8 runs the start command, sleeps `Cmd_Timeout`, then runs the
//! stop command, all in one forked child per open door. Here every command
//! is a direct child of the daemon, watched from the main loop, and the
//! engine schedules stop commands. Two of knockd's guarantees are kept
//! explicitly:
//! - a stop command never runs while the start command it undoes is still
//!   running (a slow `iptables -A` finishing after its `-D` would leave the
//!   rule in for good): it waits for that start to end;
//! - a stop command counts as done only once it has run: until then it is
//!   reported by [`Runner::unfinished_stops`], so the journal keeps it and a
//!   daemon killed meanwhile runs it again at its next start.

use std::net::IpAddr;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use crate::core::engine::{Command, CommandKind};
use crate::core::knock::Timestamp;

/// After this long a command still running is reported (not killed: it may
/// be a slow firewall reload that must finish).
pub const SLOW_COMMAND: Duration = Duration::from_secs(60);

/// What running or reaping commands produced, for the pipeline to act on.
#[derive(Debug, Default)]
pub struct Outcome {
    /// Operator log lines, in order.
    pub lines: Vec<String>,
    /// Start commands that could not run or did not succeed: the engine
    /// must not treat their doors as open.
    pub failed_starts: Vec<(Arc<str>, IpAddr)>,
    /// Stop commands the system refused to start (no memory, no pids):
    /// they must be scheduled again, never dropped.
    pub unstarted_stops: Vec<Command>,
    /// A stop command finished: the journal can forget it.
    pub stops_finished: bool,
}

impl Outcome {
    fn merge(&mut self, other: Outcome) {
        self.lines.extend(other.lines);
        self.failed_starts.extend(other.failed_starts);
        self.unstarted_stops.extend(other.unstarted_stops);
        self.stops_finished |= other.stops_finished;
    }
}

struct Running {
    child: Child,
    cmd: Command,
    started: Timestamp,
    reported_slow: bool,
}

/// The commands in flight, and stop commands waiting for their start.
#[derive(Default)]
pub struct Runner {
    running: Vec<Running>,
    waiting: Vec<Command>,
}

impl Runner {
    /// Runs `cmd` now, or, for a stop command whose start is still running
    /// for the same door and knocker, as soon as that start has ended.
    pub fn run(&mut self, cmd: Command, now: Timestamp) -> Outcome {
        if cmd.kind == CommandKind::Stop && self.start_running(&cmd.door, cmd.src) {
            self.waiting.push(cmd);
            return Outcome::default();
        }
        self.spawn(cmd, now)
    }

    fn start_running(&self, door: &Arc<str>, src: IpAddr) -> bool {
        self.running
            .iter()
            .any(|r| r.cmd.kind == CommandKind::Start && r.cmd.door == *door && r.cmd.src == src)
    }

    fn spawn(&mut self, cmd: Command, now: Timestamp) -> Outcome {
        let mut out = Outcome::default();
        out.lines
            .push(format!("{}: running command: {}", cmd.door, cmd.command));
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c")
            .arg(&cmd.command)
            .stdin(Stdio::null())
            // Readiness messages are the daemon's alone to send.
            .env_remove("NOTIFY_SOCKET")
            // Its own process group: a Ctrl-C meant for a foreground daemon
            // must not kill a firewall command half way.
            .process_group(0);
        match sh.spawn() {
            Ok(child) => self.running.push(Running {
                child,
                cmd,
                started: now,
                reported_slow: false,
            }),
            Err(e) => {
                out.lines
                    .push(format!("{}: cannot run command: {e}", cmd.door));
                match cmd.kind {
                    CommandKind::Start => out.failed_starts.push((cmd.door, cmd.src)),
                    CommandKind::Stop => out.unstarted_stops.push(cmd),
                }
            }
        }
        out
    }

    /// Collects finished commands (after SIGCHLD, or whenever convenient),
    /// reports failures and slow commands, and starts the stop commands
    /// that were waiting for a start that has now ended.
    pub fn reap(&mut self, now: Timestamp) -> Outcome {
        let mut out = Outcome::default();
        let mut i = 0;
        while i < self.running.len() {
            let r = &mut self.running[i];
            match r.child.try_wait() {
                Ok(None) => {
                    if !r.reported_slow && now.saturating_since(r.started) >= SLOW_COMMAND {
                        r.reported_slow = true;
                        out.lines.push(format!(
                            "{}: command still running after {}s: {}",
                            r.cmd.door,
                            SLOW_COMMAND.as_secs(),
                            r.cmd.command
                        ));
                    }
                    i += 1;
                }
                finished => {
                    let r = self.running.swap_remove(i);
                    let ok = match finished {
                        Ok(Some(status)) => match (status.code(), status.signal()) {
                            (Some(0), _) => true,
                            (Some(code), _) => {
                                out.lines.push(format!(
                                    "{}: command returned non-zero status code ({code})",
                                    r.cmd.door
                                ));
                                false
                            }
                            (None, Some(sig)) => {
                                out.lines.push(format!(
                                    "{}: command killed by signal {sig}",
                                    r.cmd.door
                                ));
                                false
                            }
                            (None, None) => false,
                        },
                        Err(e) => {
                            out.lines
                                .push(format!("{}: cannot wait for command: {e}", r.cmd.door));
                            false
                        }
                        Ok(None) => unreachable!("matched above"),
                    };
                    match r.cmd.kind {
                        CommandKind::Start if !ok => {
                            out.failed_starts.push((r.cmd.door.clone(), r.cmd.src));
                        }
                        CommandKind::Start => {}
                        CommandKind::Stop => out.stops_finished = true,
                    }
                }
            }
        }
        let waiting = std::mem::take(&mut self.waiting);
        for cmd in waiting {
            if self.start_running(&cmd.door, cmd.src) {
                self.waiting.push(cmd);
            } else {
                let spawned = self.spawn(cmd, now);
                out.merge(spawned);
            }
        }
        out
    }

    /// Stop commands not yet run to completion: running, or waiting for
    /// their start. The journal keeps them.
    pub fn unfinished_stops(&self) -> impl Iterator<Item = &Command> {
        self.running
            .iter()
            .map(|r| &r.cmd)
            .filter(|c| c.kind == CommandKind::Stop)
            .chain(self.waiting.iter())
    }

    /// When a running command next deserves a "still running" report.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.running
            .iter()
            .filter(|r| !r.reported_slow)
            .map(|r| r.started + SLOW_COMMAND)
            .min()
    }

    /// Waits for every running command (and the stops waiting on them)
    /// until `limit` has passed: shutdown must not leave before the stop
    /// commands it just started, nor hang on a stuck one. Returns what
    /// happened and how many were still running or waiting at the limit.
    pub fn wait_all(&mut self, limit: Duration, now: impl Fn() -> Timestamp) -> (Outcome, usize) {
        let deadline = SystemTime::now() + limit;
        let mut out = Outcome::default();
        loop {
            let reaped = self.reap(now());
            out.merge(reaped);
            if (self.running.is_empty() && self.waiting.is_empty()) || SystemTime::now() >= deadline
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in &self.running {
            out.lines.push(format!(
                "{}: command still running at shutdown, left running: {}",
                r.cmd.door, r.cmd.command
            ));
        }
        for c in &self.waiting {
            out.lines.push(format!(
                "{}: stop command not run at shutdown (its start is still running); kept for the next start: {}",
                c.door, c.command
            ));
        }
        (out, self.running.len() + self.waiting.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::daemon::clock::monotonic_now;

    fn cmd(kind: CommandKind, command: &str) -> Command {
        Command {
            door: Arc::from("door"),
            src: "192.0.2.1".parse().unwrap(),
            kind,
            command: command.to_string(),
        }
    }

    #[test]
    fn exit_codes_and_signals_are_reported_and_failed_starts_named() {
        let mut r = Runner::default();
        let now = monotonic_now();
        let out = r.run(cmd(CommandKind::Start, "exit 3"), now);
        assert_eq!(out.lines, vec!["door: running command: exit 3"]);
        r.run(cmd(CommandKind::Stop, "true"), now);
        r.run(cmd(CommandKind::Stop, "kill -9 $$"), now);
        let (out, left) = r.wait_all(Duration::from_secs(10), monotonic_now);
        assert_eq!(left, 0);
        let mut lines = out.lines.clone();
        lines.sort();
        assert!(lines.contains(&"door: command killed by signal 9".to_string()));
        assert!(lines.contains(&"door: command returned non-zero status code (3)".to_string()));
        assert_eq!(out.failed_starts.len(), 1);
        assert!(out.stops_finished);
    }

    /// knockd 0.8 runs start, then stop, in one child: a stop never
    /// overtakes its start. A start slower than Cmd_Timeout must not let
    /// its stop run first.
    #[test]
    fn a_stop_waits_for_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("order");
        let o = out.display();
        let mut r = Runner::default();
        let now = monotonic_now();
        r.run(
            cmd(CommandKind::Start, &format!("sleep 0.3; echo start >> {o}")),
            now,
        );
        let waited = r.run(cmd(CommandKind::Stop, &format!("echo stop >> {o}")), now);
        assert!(
            waited.lines.is_empty(),
            "not started yet: {:?}",
            waited.lines
        );
        assert_eq!(r.unfinished_stops().count(), 1, "the journal keeps it");
        let (done, left) = r.wait_all(Duration::from_secs(10), monotonic_now);
        assert_eq!(left, 0);
        assert!(done.stops_finished);
        assert_eq!(std::fs::read_to_string(&out).unwrap(), "start\nstop\n");
        assert_eq!(r.unfinished_stops().count(), 0);
    }

    #[test]
    fn a_running_stop_stays_unfinished_and_slow_commands_are_reported_once() {
        let mut r = Runner::default();
        let t0 = monotonic_now();
        r.run(cmd(CommandKind::Stop, "sleep 5"), t0);
        assert!(monotonic_now().saturating_since(t0) < Duration::from_secs(1));
        assert_eq!(r.unfinished_stops().count(), 1);
        assert_eq!(r.next_deadline(), Some(t0 + SLOW_COMMAND));
        let later = t0 + SLOW_COMMAND;
        assert_eq!(
            r.reap(later).lines,
            vec!["door: command still running after 60s: sleep 5"]
        );
        assert!(r.reap(later).lines.is_empty());
        assert_eq!(r.next_deadline(), None);
        let (_, left) = r.wait_all(Duration::from_millis(50), monotonic_now);
        assert_eq!(left, 1);
        for mut x in r.running.drain(..) {
            let _ = x.child.kill();
            let _ = x.child.wait();
        }
    }
}
