//! Every descriptor the daemon holds is close-on-exec, so a command sees
//! only stdin, stdout and stderr: not the raw packet socket (a shell that
//! could sniff and inject), not the journal's lock, not netlink.
//!
//! Rust opens its own files and sockets close-on-exec; libpcap does not,
//! and a library may open more behind our back. So every descriptor above
//! stderr is marked close-on-exec before each command is spawned
//! ([`confine`], one system call where the kernel has it). The one thread
//! besides the main one that opens descriptors (a capture taking over from
//! another) holds [`open_guard`] from opening one until it has marked it,
//! and [`confine`]'s guard is held until the command is spawned, so no
//! unmarked descriptor can appear in between.
//!
//! The marking is done in the daemon, not in the child between fork and
//! exec (`pre_exec`): a `pre_exec` hook makes std fork the whole daemon
//! instead of using `posix_spawn` (a vfork), which measured 0.3 ms slower
//! per command (examples/knock-latency).

use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};
use std::sync::{Mutex, MutexGuard};

static SPAWN: Mutex<()> = Mutex::new(());

fn spawn_lock() -> MutexGuard<'static, ()> {
    // The lock guards no data: a holder that panicked leaves nothing torn.
    SPAWN
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// `close_range(first, u32::MAX, CLOSE_RANGE_CLOEXEC)`: marks, closes
/// nothing.
fn mark_from(first: libc::c_uint) -> libc::c_long {
    // SAFETY: close_range with CLOSE_RANGE_CLOEXEC only sets a flag on
    // descriptors of this process; it closes nothing and touches no memory.
    unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            libc::CLOSE_RANGE_CLOEXEC,
        )
    }
}

/// Makes the next command spawned start with only stdin, stdout and
/// stderr open. Hold the returned guard until it is spawned.
pub fn confine() -> io::Result<MutexGuard<'static, ()>> {
    let guard = spawn_lock();
    cloexec_all()?;
    Ok(guard)
}

/// Held by a thread other than the main one from opening a descriptor
/// that is not close-on-exec until it has marked it.
pub fn open_guard() -> MutexGuard<'static, ()> {
    spawn_lock()
}

/// Marks every descriptor from 3 up close-on-exec.
pub fn cloexec_all() -> io::Result<()> {
    if mark_from(3) == 0 {
        return Ok(());
    }
    let e = io::Error::last_os_error();
    if !falls_back(&e) {
        return Err(e);
    }
    cloexec_each()
}

/// Whether `close_range` failed in a way that means "mark them one by
/// one": a kernel without it (ENOSYS, before 5.9) or its flag (EINVAL,
/// before 5.11), or a seccomp filter written before it existed that
/// refuses it with EPERM (systemd's `SystemCallFilter=` in older
/// releases, container runtimes' default profiles). Anything else is a
/// real failure of the call, and the command is not started.
fn falls_back(e: &io::Error) -> bool {
    matches!(
        e.raw_os_error(),
        Some(libc::ENOSYS) | Some(libc::EINVAL) | Some(libc::EPERM)
    )
}

/// Where `close_range` cannot be used: one by one, from /proc.
fn cloexec_each() -> io::Result<()> {
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

/// Marks one descriptor close-on-exec.
pub fn set_cloexec(fd: BorrowedFd<'_>) -> nix::Result<()> {
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
    use std::process::{Command, Stdio};

    /// The tests mark every descriptor of this process: one at a time, so
    /// that one never marks the descriptor the other checks.
    static ALONE: Mutex<()> = Mutex::new(());

    fn unmarked_socket() -> OwnedFd {
        // SAFETY: a plain socket(2) call; its result is owned just below.
        let raw = unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM, 0) };
        assert!(raw > 2);
        // SAFETY: `raw` is a fresh descriptor nobody else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        assert!(!is_cloexec(&fd));
        fd
    }

    /// Issue 19: the fallback was taken on ENOSYS and EINVAL only, but
    /// seccomp filters older than close_range (systemd's, containers')
    /// refuse it with EPERM: every command then failed to start.
    #[test]
    fn close_range_refused_by_the_kernel_or_a_filter_falls_back() {
        for errno in [libc::ENOSYS, libc::EINVAL, libc::EPERM] {
            assert!(
                falls_back(&io::Error::from_raw_os_error(errno)),
                "errno {errno}"
            );
        }
        for errno in [libc::EBADF, libc::ENOMEM] {
            assert!(
                !falls_back(&io::Error::from_raw_os_error(errno)),
                "errno {errno}"
            );
        }
    }

    #[test]
    fn the_fallback_marks_every_descriptor_too() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let fd = unmarked_socket();
        cloexec_each().unwrap();
        assert!(is_cloexec(&fd));
    }

    #[test]
    fn a_descriptor_opened_without_cloexec_gets_it() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let fd = unmarked_socket();
        cloexec_all().unwrap();
        assert!(is_cloexec(&fd));
    }

    #[test]
    fn a_confined_command_sees_only_stdin_stdout_and_stderr() {
        let _alone = ALONE.lock().unwrap_or_else(|e| e.into_inner());
        let fd = unmarked_socket();
        let mut sh = Command::new("/bin/sh");
        sh.args(["-c", "ls /proc/$$/fd"])
            .stdin(Stdio::null())
            .stderr(Stdio::null());
        let guard = confine().unwrap();
        let out = sh.output().unwrap();
        drop(guard);
        let open: Vec<i32> = String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .filter_map(|f| f.parse().ok())
            .collect();
        assert!(out.status.success(), "{out:?}");
        assert!(open.contains(&1), "{open:?}");
        assert!(!open.contains(&fd.as_raw_fd()), "{open:?}");
    }
}
