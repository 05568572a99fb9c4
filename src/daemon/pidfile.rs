//! The pid file of a detached daemon (`-d`): locked for the daemon's life,
//! so a second instance on the same file refuses to start instead of
//! overwriting it, and removed on exit.

use std::fs::File;
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};

use nix::fcntl::{Flock, FlockArg};

use super::file_error::FileError;

/// Why the pid file could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum PidFileError {
    #[error(transparent)]
    Io(#[from] FileError),
    #[error("another knockd is running (pid {pid}, pid file {path})")]
    Running { path: String, pid: String },
}

/// A held pid file; dropping it removes the file.
pub struct PidFile {
    path: PathBuf,
    _lock: Flock<File>,
}

impl PidFile {
    /// Creates (or takes over a stale) pid file, locks it and writes our pid.
    pub fn create(path: &Path) -> Result<PidFile, PidFileError> {
        let err = |e: std::io::Error| PidFileError::Io(FileError::new("pid file", path, e));
        // Never through a symbolic link: it is truncated below, as root.
        let file = super::safe_file::open_rw(path, 0o644).map_err(err)?;
        let mut file = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
            Ok(locked) => locked,
            Err((mut file, _)) => {
                let mut pid = String::new();
                let _ = file.read_to_string(&mut pid);
                return Err(PidFileError::Running {
                    path: path.display().to_string(),
                    pid: pid.trim().to_string(),
                });
            }
        };
        file.set_len(0).map_err(err)?;
        file.rewind().map_err(err)?;
        writeln!(file, "{}", std::process::id()).map_err(err)?;
        file.sync_all().map_err(err)?;
        Ok(PidFile {
            path: path.to_path_buf(),
            _lock: file,
        })
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locked_while_held_removed_when_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("knockd.pid");
        let held = PidFile::create(&path).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            format!("{}\n", std::process::id())
        );
        let second = PidFile::create(&path).err().unwrap();
        assert_eq!(
            second.to_string(),
            format!(
                "another knockd is running (pid {}, pid file {})",
                std::process::id(),
                path.display()
            )
        );
        drop(held);
        assert!(!path.exists());
        // A stale file (no lock held) is taken over.
        std::fs::write(&path, "99999\n").unwrap();
        let _again = PidFile::create(&path).unwrap();
    }
}
