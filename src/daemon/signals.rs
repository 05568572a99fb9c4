//! Signals as data: handlers only set a flag and write a byte to a pipe the
//! main loop polls (signal-hook's self-pipe), so no work ever runs inside a
//! handler.

use std::io::Read;
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};

/// What arrived since the last look.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Pending {
    pub reload: bool,
    pub shutdown: bool,
    pub child: bool,
}

/// The registered handlers and the pipe that wakes the loop.
pub struct Signals {
    wake: UnixStream,
    hup: Arc<AtomicBool>,
    term: Arc<AtomicBool>,
    chld: Arc<AtomicBool>,
}

impl Signals {
    /// Installs handlers for SIGHUP, SIGTERM, SIGINT and SIGCHLD.
    pub fn install() -> std::io::Result<Self> {
        let (read, write) = UnixStream::pair()?;
        read.set_nonblocking(true)?;
        write.set_nonblocking(true)?;
        let hup = Arc::new(AtomicBool::new(false));
        let term = Arc::new(AtomicBool::new(false));
        let chld = Arc::new(AtomicBool::new(false));
        signal_hook::flag::register(SIGHUP, hup.clone())?;
        signal_hook::flag::register(SIGTERM, term.clone())?;
        signal_hook::flag::register(SIGINT, term.clone())?;
        signal_hook::flag::register(SIGCHLD, chld.clone())?;
        for sig in [SIGHUP, SIGTERM, SIGINT, SIGCHLD] {
            signal_hook::low_level::pipe::register(sig, write.try_clone()?)?;
        }
        Ok(Signals {
            wake: read,
            hup,
            term,
            chld,
        })
    }

    /// Empties the wake pipe and takes the flags.
    pub fn take(&mut self) -> Pending {
        let mut buf = [0u8; 64];
        while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        Pending {
            reload: self.hup.swap(false, Ordering::AcqRel),
            shutdown: self.term.swap(false, Ordering::AcqRel),
            child: self.chld.swap(false, Ordering::AcqRel),
        }
    }
}

impl AsFd for Signals {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.wake.as_fd()
    }
}
