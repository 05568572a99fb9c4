//! The one error type for a file the daemon could not use: it names the
//! file and what it is for in one line, and keeps the OS error as its
//! `source()` for whoever wants more than the words.

use std::fmt;
use std::io;
use std::path::{Path, PathBuf};

use crate::core::config::io_reason;

/// A failed operation on a file: `{what} {path}: {reason}`, where the reason
/// is the OS error's words without "(os error N)".
#[derive(Debug, thiserror::Error)]
pub struct FileError {
    /// What the file is to the daemon, as the message starts
    /// (`"state file"`, `"pid file"`, `"cannot open log file"`).
    pub what: &'static str,
    pub path: PathBuf,
    #[source]
    pub source: io::Error,
}

impl FileError {
    pub fn new(what: &'static str, path: &Path, source: io::Error) -> Self {
        FileError {
            what,
            path: path.to_path_buf(),
            source,
        }
    }
}

impl fmt::Display for FileError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}: {}",
            self.what,
            self.path.display(),
            io_reason(&self.source)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error;

    #[test]
    fn one_line_and_the_os_error_kept() {
        let e = FileError::new(
            "state file",
            Path::new("/var/lib/knockd/state"),
            io::Error::from_raw_os_error(28),
        );
        assert_eq!(
            e.to_string(),
            "state file /var/lib/knockd/state: No space left on device"
        );
        let source = e.source().and_then(|s| s.downcast_ref::<io::Error>());
        assert_eq!(source.and_then(io::Error::raw_os_error), Some(28));
    }
}
