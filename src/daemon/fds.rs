//! Every descriptor the daemon holds is close-on-exec, so a command sees
//! only stdin, stdout and stderr: not the raw packet socket (a shell that
//! could sniff and inject), not the journal's lock, not netlink.
//!
//! Rust opens its own files and sockets close-on-exec; libpcap does not,
//! and a library may open more behind our back. So before each command the
//! runner marks every descriptor above stderr close-on-exec, in one system
//! call where the kernel has it.

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// Marks every descriptor from 3 up close-on-exec.
pub fn cloexec_all() -> io::Result<()> {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors of this process; it closes nothing and touches no memory.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            3 as libc::c_uint,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    };
    if r == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !matches!(e.raw_os_error(), Some(libc::ENOSYS) | Some(libc::EINVAL)) {
        return Err(e);
    }
    // Kernels before 5.11: one by one, from /proc.
    let fds: Vec<RawFd> = std::fs::read_dir("/proc/self/fd")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|fd| *fd > 2)
        .collect();
    for fd in fds {
        // SAFETY: only the flag of a descriptor listed as open is changed;
        // one closed meanwhile (the listing's own) fails harmlessly.
        let fd = unsafe { BorrowedFd::borrow_raw(fd) };
        let _ = set_cloexec(fd);
    }
    Ok(())
}

fn set_cloexec(fd: BorrowedFd<'_>) -> nix::Result<()> {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    let flags = FdFlag::from_bits_truncate(fcntl(fd, FcntlArg::F_GETFD)?);
    fcntl(fd, FcntlArg::F_SETFD(flags | FdFlag::FD_CLOEXEC))?;
    Ok(())
}

/// Whether `fd` is close-on-exec (for tests and checks).
pub fn is_cloexec(fd: &impl AsRawFd) -> bool {
    use nix::fcntl::{fcntl, FcntlArg, FdFlag};
    // SAFETY: the descriptor is borrowed from a live owner for this call.
    let fd = unsafe { BorrowedFd::borrow_raw(fd.as_raw_fd()) };
    fcntl(fd, FcntlArg::F_GETFD)
        .is_ok_and(|f| FdFlag::from_bits_truncate(f).contains(FdFlag::FD_CLOEXEC))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::{FromRawFd, OwnedFd};

    #[test]
    fn a_descriptor_opened_without_cloexec_gets_it() {
        // SAFETY: a plain socket(2) call; its result is owned just below.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
        assert!(raw > 2);
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        assert!(!is_cloexec(&fd));
        cloexec_all().unwrap();
        assert!(is_cloexec(&fd));
    }
}
