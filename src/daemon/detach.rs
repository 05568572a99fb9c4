//! `-d`: detach from the terminal the way an admin expects of a daemon —
//! the command returns only once the daemon is capturing (exit 0), or with
//! the daemon's own one-line error and exit code if it could not start.
//!
//! The parent forks; the child starts a new session and starts up (opening
//! files relative to the directory knockd was started in, as knockd 0.8
//! does), then moves to `/`, points stdio at /dev/null and reports over a
//! pipe: `0` for ready, or an exit code and a message.

use std::fs::File;
use std::io::{Read, Write};
use std::os::fd::OwnedFd;

/// The child's end of the readiness pipe.
pub struct Readiness {
    pipe: File,
}

impl Readiness {
    /// Startup succeeded: let go of the directory and the terminal, then
    /// the parent exits 0.
    pub fn ready(mut self) -> std::io::Result<()> {
        // Report first: the daemon is capturing whatever happens next, and a
        // parent told otherwise would exit non-zero over a running daemon.
        self.pipe.write_all(b"0\n")?;
        drop(self.pipe);
        std::env::set_current_dir("/")?;
        let null = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/null")?;
        nix::unistd::dup2_stdin(&null)?;
        nix::unistd::dup2_stdout(&null)?;
        nix::unistd::dup2_stderr(&null)?;
        Ok(())
    }

    /// Startup failed: the parent prints `message` and exits with `code`.
    pub fn fail(mut self, code: u8, message: &str) {
        let _ = writeln!(self.pipe, "{code}\n{message}");
    }
}

/// Forks. Returns in the child, detached, with its readiness pipe; the
/// parent never returns: it waits for the child's report and exits.
pub fn detach() -> std::io::Result<Readiness> {
    let (read, write): (OwnedFd, OwnedFd) = nix::unistd::pipe()?;
    // SAFETY: called before the daemon starts any thread (signal handlers,
    // lookups and command children all come later), so the child is a
    // complete copy of a single-threaded process.
    match unsafe { nix::unistd::fork() }? {
        nix::unistd::ForkResult::Parent { .. } => {
            drop(write);
            let mut report = String::new();
            let _ = File::from(read).read_to_string(&mut report);
            let mut lines = report.splitn(2, '\n');
            let code: u8 = lines
                .next()
                .and_then(|c| c.trim().parse().ok())
                .unwrap_or(1);
            let message = lines.next().unwrap_or("").trim_end();
            if code != 0 {
                if message.is_empty() {
                    eprintln!("knockd: the daemon exited during startup");
                } else {
                    eprintln!("{message}");
                }
            }
            std::process::exit(i32::from(code));
        }
        nix::unistd::ForkResult::Child => {
            drop(read);
            nix::unistd::setsid()?;
            Ok(Readiness {
                pipe: File::from(write),
            })
        }
    }
}
