//! Giving up root where nothing needs it: `--read` without
//! `--run-commands` only parses a capture file (hostile input like any
//! packet) and writes to stdout and a log file opened before, so once
//! those are open it runs as an unprivileged user, as tcpdump does after
//! opening its capture (`-Z`).
//!
//! It must not decide when to drop (the caller does) or fall back to
//! running as root when dropping fails: then nothing is parsed.

use nix::unistd::{getgid, getuid, setgroups, setresgid, setresuid, Gid, Uid, User};

/// Why root could not be given up.
#[derive(Debug, thiserror::Error)]
pub enum DropError {
    #[error("cannot give up root before reading the capture: no user {tried} (create it, or run as a user without root)")]
    NoUser { tried: &'static str },
    #[error("cannot give up root before reading the capture: {what}: {source}")]
    Call {
        what: &'static str,
        source: nix::Error,
    },
}

/// The users tried, in order: the package's own, then `nobody`.
pub const USERS: [&str; 2] = ["knockd", "nobody"];

/// Who the process runs as after [`drop_root`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dropped {
    pub user: String,
    pub uid: u32,
}

/// Runs the rest of the process as [`USERS`]' first existing user, with
/// no supplementary groups and `no_new_privs`, when it runs as root (any
/// of real, effective or saved uid 0); otherwise changes nothing and
/// returns `None`. Afterwards root cannot be had back.
pub fn drop_root() -> Result<Option<Dropped>, DropError> {
    let (r, e, s) = resuid();
    if r != 0 && e != 0 && s != 0 {
        return Ok(None);
    }
    let user = USERS
        .iter()
        .find_map(|name| User::from_name(name).ok().flatten())
        .ok_or(DropError::NoUser {
            tried: "knockd or nobody",
        })?;
    let call = |what| move |source| DropError::Call { what, source };
    setgroups(&[user.gid]).map_err(call("setgroups"))?;
    setresgid(user.gid, user.gid, user.gid).map_err(call("setresgid"))?;
    setresuid(user.uid, user.uid, user.uid).map_err(call("setresuid"))?;
    no_new_privs().map_err(call("prctl(PR_SET_NO_NEW_PRIVS)"))?;
    // Proof, not hope: root must be gone for good.
    let root_group = getgid() == Gid::from_raw(0) && user.gid.as_raw() != 0;
    if nix::unistd::setuid(Uid::from_raw(0)).is_ok() || getuid().is_root() || root_group {
        return Err(DropError::Call {
            what: "checking that root is gone",
            source: nix::Error::EPERM,
        });
    }
    Ok(Some(Dropped {
        user: user.name,
        uid: user.uid.as_raw(),
    }))
}

/// Real, effective and saved uid.
fn resuid() -> (u32, u32, u32) {
    let (mut r, mut e, mut s) = (0, 0, 0);
    // SAFETY: getresuid only writes the three integers it is given.
    let rc = unsafe { libc::getresuid(&mut r, &mut e, &mut s) };
    if rc != 0 {
        // Cannot tell: assume root, so the drop is attempted.
        return (0, 0, 0);
    }
    (r, e, s)
}

fn no_new_privs() -> nix::Result<()> {
    // SAFETY: PR_SET_NO_NEW_PRIVS takes integer arguments only.
    let rc = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    nix::errno::Errno::result(rc).map(drop)
}
