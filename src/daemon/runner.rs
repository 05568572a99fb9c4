//! Runs door commands with `/bin/sh -c` without ever stalling capture, and
//! reaps them.
//!
//! knockd 0.8 runs the start command, sleeps `Cmd_Timeout`, then runs the
//! stop command, all in one forked child per open door. Here every command
//! is a direct child of the daemon, watched from the main loop; when to run
//! what (and what an exit status means) is the service's to decide. This
//! module only spawns, reaps and reports.

use std::collections::BTreeMap;
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::process::{Child, Stdio};

use crate::core::config::io_reason;
use crate::core::service::{CommandEnd, CommandId};

/// The children in flight, by the service's command id.
#[derive(Default)]
pub struct Runner {
    children: BTreeMap<CommandId, Child>,
}

impl Runner {
    /// Starts `command` as command `id`; `Err` holds why the system refused
    /// (report it as [`CommandEnd::SpawnFailed`]).
    pub fn spawn(&mut self, id: CommandId, command: &str) -> Result<(), String> {
        let mut sh = std::process::Command::new("/bin/sh");
        sh.arg("-c")
            .arg(command)
            .stdin(Stdio::null())
            // Readiness messages are the daemon's alone to send.
            .env_remove("NOTIFY_SOCKET")
            // Its own process group: a Ctrl-C meant for a foreground daemon
            // must not kill a firewall command half way.
            .process_group(0);
        // A command sees stdin, stdout and stderr, nothing else.
        let _fds = super::fds::confine().map_err(|e| io_reason(&e))?;
        let child = sh.spawn().map_err(|e| io_reason(&e))?;
        self.children.insert(id, child);
        Ok(())
    }

    /// Kills command `id` with its process group (whatever it started too),
    /// if it is still running; its end is reaped as usual.
    pub fn kill(&mut self, id: CommandId) {
        if let Some(child) = self.children.get(&id) {
            let group = nix::unistd::Pid::from_raw(child.id() as i32);
            // The command is its group's leader (`process_group(0)`); a
            // group already gone is fine.
            let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
        }
    }

    /// The commands that have ended since the last call (after SIGCHLD, or
    /// whenever convenient), never blocking.
    pub fn reap(&mut self) -> Vec<(CommandId, CommandEnd)> {
        let mut ended = Vec::new();
        if self.children.is_empty() {
            // Asked after every packet of a replay.
            return ended;
        }
        self.children.retain(|id, child| {
            let end = match child.try_wait() {
                Ok(None) => return true,
                Ok(Some(status)) => match (status.code(), status.signal()) {
                    (Some(code), _) => CommandEnd::Exited(code),
                    (None, Some(sig)) => CommandEnd::Signaled(sig),
                    (None, None) => CommandEnd::WaitFailed("unknown exit status".into()),
                },
                Err(e) => CommandEnd::WaitFailed(io_reason(&e)),
            };
            ended.push((*id, end));
            false
        });
        ended
    }

    /// Children not yet reaped.
    pub fn len(&self) -> usize {
        self.children.len()
    }

    pub fn is_empty(&self) -> bool {
        self.children.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, Instant};

    fn reap_all(r: &mut Runner, n: usize) -> Vec<(CommandId, CommandEnd)> {
        let until = Instant::now() + Duration::from_secs(10);
        let mut out = Vec::new();
        while out.len() < n && Instant::now() < until {
            out.extend(r.reap());
            std::thread::sleep(Duration::from_millis(5));
        }
        out.sort_by_key(|(id, _)| *id);
        out
    }

    #[test]
    fn exit_codes_and_signals_are_reported_by_id() {
        let mut r = Runner::default();
        r.spawn(CommandId(1), "exit 3").unwrap();
        r.spawn(CommandId(2), "true").unwrap();
        r.spawn(CommandId(3), "kill -9 $$").unwrap();
        assert_eq!(
            reap_all(&mut r, 3),
            vec![
                (CommandId(1), CommandEnd::Exited(3)),
                (CommandId(2), CommandEnd::Exited(0)),
                (CommandId(3), CommandEnd::Signaled(9)),
            ]
        );
        assert!(r.is_empty());
    }

    #[test]
    fn a_running_command_is_not_reported_and_spawning_never_blocks() {
        let mut r = Runner::default();
        let t0 = Instant::now();
        r.spawn(CommandId(7), "sleep 5").unwrap();
        assert!(t0.elapsed() < Duration::from_secs(1));
        assert!(r.reap().is_empty());
        assert_eq!(r.len(), 1);
        for child in r.children.values_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}
