//! Runs door commands with `/bin/sh -c` without ever stalling capture, reaps
//! them, and reports how they ended.
//!
//! knockd 0.8 runs commands with `system()` in a forked child that then
//! sleeps for `Cmd_Timeout` before the stop command; here every command is
//! a direct child of the daemon, watched from the main loop, and stop
//! commands are scheduled by the engine.

use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use std::os::unix::process::{CommandExt, ExitStatusExt};

use crate::knock::Timestamp;

/// After this long a command still running is reported (not killed: it may
/// be a slow firewall reload that must finish).
pub const SLOW_COMMAND: Duration = Duration::from_secs(60);

/// A message the runner wants logged, with the time it happened.
pub type Report = String;

struct Running {
    child: Child,
    door: Arc<str>,
    command: String,
    started: Timestamp,
    reported_slow: bool,
}

/// The commands in flight.
#[derive(Default)]
pub struct Runner {
    running: Vec<Running>,
}

impl Runner {
    /// Starts `command` for `door`. Returns the log lines to write now:
    /// `door: running command: CMD` (knockd's text) and, if the shell could
    /// not be started at all, why.
    pub fn spawn(&mut self, door: &Arc<str>, command: &str, now: Timestamp) -> Vec<Report> {
        let mut lines = vec![format!("{door}: running command: {command}")];
        let mut cmd = Command::new("/bin/sh");
        cmd.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            // Readiness messages are the daemon's alone to send.
            .env_remove("NOTIFY_SOCKET")
            // Its own process group: a Ctrl-C meant for a foreground daemon
            // must not kill a firewall command half way.
            .process_group(0);
        match cmd.spawn() {
            Ok(child) => self.running.push(Running {
                child,
                door: door.clone(),
                command: command.to_string(),
                started: now,
                reported_slow: false,
            }),
            Err(e) => lines.push(format!("{door}: cannot run command: {e}")),
        }
        lines
    }

    /// Collects finished commands (after SIGCHLD, or whenever convenient)
    /// and reports failures and slow commands.
    pub fn reap(&mut self, now: Timestamp) -> Vec<Report> {
        let mut lines = Vec::new();
        self.running.retain_mut(|r| match r.child.try_wait() {
            Ok(Some(status)) => {
                if let Some(code) = status.code() {
                    if code != 0 {
                        lines.push(format!(
                            "{}: command returned non-zero status code ({code})",
                            r.door
                        ));
                    }
                } else if let Some(sig) = status.signal() {
                    lines.push(format!("{}: command killed by signal {sig}", r.door));
                }
                false
            }
            Ok(None) => {
                if !r.reported_slow && now.saturating_since(r.started) >= SLOW_COMMAND {
                    r.reported_slow = true;
                    lines.push(format!(
                        "{}: command still running after {}s: {}",
                        r.door,
                        SLOW_COMMAND.as_secs(),
                        r.command
                    ));
                }
                true
            }
            Err(e) => {
                lines.push(format!("{}: cannot wait for command: {e}", r.door));
                false
            }
        });
        lines
    }

    /// When a running command next deserves a "still running" report.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.running
            .iter()
            .filter(|r| !r.reported_slow)
            .map(|r| r.started + SLOW_COMMAND)
            .min()
    }

    pub fn in_flight(&self) -> usize {
        self.running.len()
    }

    /// Waits for every running command until `limit` has passed (shutdown:
    /// the stop commands just started must finish before the daemon exits,
    /// but a hung one must not keep it from exiting). Returns the reports
    /// and how many were still running at the limit.
    pub fn wait_all(
        &mut self,
        limit: Duration,
        now: impl Fn() -> Timestamp,
    ) -> (Vec<Report>, usize) {
        let deadline = SystemTime::now() + limit;
        let mut lines = Vec::new();
        loop {
            lines.extend(self.reap(now()));
            if self.running.is_empty() || SystemTime::now() >= deadline {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        for r in &self.running {
            lines.push(format!(
                "{}: command still running at shutdown, left running: {}",
                r.door, r.command
            ));
        }
        (lines, self.running.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::clock::monotonic_now;

    fn door() -> Arc<str> {
        Arc::from("door")
    }

    #[test]
    fn exit_codes_and_signals_are_reported() {
        let mut r = Runner::default();
        let now = monotonic_now();
        assert_eq!(
            r.spawn(&door(), "exit 3", now),
            vec!["door: running command: exit 3"]
        );
        r.spawn(&door(), "true", now);
        r.spawn(&door(), "kill -9 $$", now);
        let (lines, left) = r.wait_all(Duration::from_secs(10), monotonic_now);
        assert_eq!(left, 0);
        let mut lines = lines;
        lines.sort();
        assert_eq!(
            lines,
            vec![
                "door: command killed by signal 9",
                "door: command returned non-zero status code (3)",
            ]
        );
    }

    #[test]
    fn spawning_does_not_wait_and_slow_commands_are_reported_once() {
        let mut r = Runner::default();
        let t0 = monotonic_now();
        r.spawn(&door(), "sleep 5", t0);
        assert!(monotonic_now().saturating_since(t0) < Duration::from_secs(1));
        assert_eq!(r.in_flight(), 1);
        assert_eq!(r.next_deadline(), Some(t0 + SLOW_COMMAND));
        let later = t0 + SLOW_COMMAND;
        assert_eq!(
            r.reap(later),
            vec!["door: command still running after 60s: sleep 5"]
        );
        assert!(r.reap(later).is_empty());
        assert_eq!(r.next_deadline(), None);
        let (_, left) = r.wait_all(Duration::from_millis(50), monotonic_now);
        assert_eq!(left, 1);
        for mut x in r.running.drain(..) {
            let _ = x.child.kill();
            let _ = x.child.wait();
        }
    }
}
