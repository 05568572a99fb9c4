//! One-time-sequences files on disk: reading them (bounded), and using up a
//! line by writing `#` over its first byte, in place.
//!
//! What the bytes mean, and which byte to write, is decided by
//! [`crate::core::config::onetime`]; this module only moves bytes. A
//! one-byte write cannot be torn, so a crash leaves either the old or the
//! new file.

use std::fs::{File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use super::safe_file::{self, Holds, TrustError};

use crate::core::config::onetime::{locate_used, MAX_ONE_TIME_FILE_BYTES};
use crate::core::config::OneTimeLine;

/// The whole file at `path`, under the trust rule
/// ([`safe_file::open_trusted`]: no link, no FIFO, nobody else may read or
/// write it), refusing one larger than [`MAX_ONE_TIME_FILE_BYTES`].
pub fn read(path: &Path) -> Result<Vec<u8>, TrustError> {
    let mut file = safe_file::open_trusted(path, Holds::OneTime, false)?;
    read_from(&mut file).map_err(TrustError::Io)
}

fn read_from(file: &mut File) -> io::Result<Vec<u8>> {
    let mut text = Vec::new();
    Read::by_ref(file)
        .take(MAX_ONE_TIME_FILE_BYTES + 1)
        .read_to_end(&mut text)?;
    if text.len() as u64 > MAX_ONE_TIME_FILE_BYTES {
        return Err(io::Error::other(format!(
            "larger than {} MiB",
            MAX_ONE_TIME_FILE_BYTES >> 20
        )));
    }
    Ok(text)
}

/// Whether the file can be opened for writing (it is not changed; no
/// link is followed and the open never blocks).
pub fn writable(path: &Path) -> bool {
    OpenOptions::new()
        .write(true)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path)
        .is_ok()
}

/// Marks `used` as used in the file at `path` (synced), and returns the
/// file's bytes as they are now. When no line holds the used sequence any
/// more (the file was edited), nothing is written. The file passes the
/// trust rule again: it may have been replaced since the config was read.
pub fn use_line(path: &Path, used: &OneTimeLine) -> Result<Vec<u8>, TrustError> {
    let mut file = safe_file::open_trusted(path, Holds::OneTime, true)?;
    mark(&mut file, used).map_err(TrustError::Io)
}

fn mark(file: &mut File, used: &OneTimeLine) -> io::Result<Vec<u8>> {
    let mut text = read_from(file)?;
    if let Some(offset) = locate_used(&text, used) {
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(b"#")?;
        file.sync_data()?;
        if let Some(byte) = usize::try_from(offset).ok().and_then(|o| text.get_mut(o)) {
            *byte = b'#';
        }
    }
    Ok(text)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::onetime::first_live;

    fn setup(text: &str) -> (tempfile::TempDir, std::path::PathBuf, OneTimeLine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp");
        std::fs::write(&path, text).unwrap();
        private(&path);
        let live = first_live(text.as_bytes(), &path, |_| false, &mut Vec::new()).unwrap();
        (dir, path, live)
    }

    fn private(path: &Path) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
    }

    fn next(text: &[u8]) -> Option<String> {
        first_live(text, Path::new("otp"), |_| false, &mut Vec::new())
            .map(|l| l.sequence.to_string())
    }

    #[test]
    fn marks_the_used_line_even_after_an_invalid_one() {
        // knockd 0.8 marks the wrong line here and the sequence opens twice.
        let (_d, path, live) = setup("7000,abc\n 1111,2222\n3333,4444\n");
        assert_eq!(live.sequence.to_string(), "1111:tcp,2222:tcp");
        let text = use_line(&path, &live).unwrap();
        assert_eq!(text, std::fs::read(&path).unwrap(), "the bytes as written");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "7000,abc\n#1111,2222\n3333,4444\n"
        );
        let live = first_live(&text, &path, |_| false, &mut Vec::new()).unwrap();
        assert_eq!(live.sequence.to_string(), "3333:tcp,4444:tcp");
        let text = use_line(&path, &live).unwrap();
        assert_eq!(next(&text), None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "7000,abc\n#1111,2222\n#333,4444\n"
        );
    }

    #[test]
    fn an_edited_file_marks_the_line_that_holds_the_sequence() {
        let (_d, path, live) = setup("1111,2222\n3333\n");
        std::fs::write(&path, "# new comment line\n5555\n1111,2222\n3333\n").unwrap();
        let text = use_line(&path, &live).unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# new comment line\n5555\n#111,2222\n3333\n"
        );
        assert_eq!(next(&text).as_deref(), Some("5555:tcp"));
    }

    #[test]
    fn a_sequence_no_longer_in_the_file_writes_nothing() {
        let (_d, path, live) = setup("1111,2222\n");
        std::fs::write(&path, "9999\n").unwrap();
        let text = use_line(&path, &live).unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "9999\n");
        assert_eq!(next(&text).as_deref(), Some("9999:tcp"));
    }

    #[test]
    fn missing_directory_and_oversized_files_are_errors() {
        assert!(read(Path::new("/nonexistent/otp")).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            read(dir.path()).unwrap_err().to_string(),
            "is not a regular file (a directory); name a regular file"
        );
        let big = dir.path().join("big");
        let f = File::create(&big).unwrap();
        f.set_len(MAX_ONE_TIME_FILE_BYTES + 1).unwrap();
        private(&big);
        assert_eq!(read(&big).unwrap_err().to_string(), "larger than 16 MiB");
        let (_d, path, live) = setup("1111\n");
        std::fs::write(&path, vec![b'#'; MAX_ONE_TIME_FILE_BYTES as usize + 1]).unwrap();
        assert!(
            use_line(&path, &live).is_err(),
            "the cap holds when marking too"
        );
    }

    /// A file swapped for a FIFO after the config was read (a knock then
    /// uses a line) is an error, not a main loop blocked for ever.
    #[test]
    fn a_fifo_is_an_error_not_a_hang() {
        let (_d, path, live) = setup("1111\n");
        std::fs::remove_file(&path).unwrap();
        nix::unistd::mkfifo(&path, nix::sys::stat::Mode::from_bits_truncate(0o600)).unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        let p = path.clone();
        std::thread::spawn(move || {
            let _ = tx.send((use_line(&p, &live).is_err(), read(&p).is_err()));
        });
        let got = rx
            .recv_timeout(std::time::Duration::from_secs(5))
            .expect("use_line or read still blocked on a FIFO after 5 s");
        assert_eq!(got, (true, true));
    }
}
