//! Opening files as root without being steered: never through a symbolic
//! link, temporary files only fresh (`O_EXCL`), and files whose content is
//! trusted (the journal runs its commands) only when nobody else could have
//! written them.
//!
//! [`open_trusted`] is the one rule for every file whose content becomes a
//! root command or a secret: the config, its `Include` files, secret files
//! and one-time files. It is sshd's `StrictModes` (`safe_path`), with one
//! choice of ours: a sticky directory owned by root (as `/tmp`) is accepted
//! above a file's own directory (nobody else can rename or replace entries
//! they do not own in it), never as the file's own directory, where others
//! can plant names beside the file (a file an `Include` wildcard matches, a
//! hard link).

use std::collections::HashSet;
use std::fs::{File, Metadata, OpenOptions};
use std::io;
use std::os::unix::fs::{FileTypeExt, MetadataExt, OpenOptionsExt};
use std::path::Path;

/// Opens (creating with `mode`) for appending, refusing a symbolic link at
/// the last component: a log or pid file planted as a link by whoever can
/// write its directory must not make root append to, or truncate, another
/// file.
pub fn open_append(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .append(true)
        .create(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(explain_loop)
}

/// Opens (creating with `mode`) for reading and writing, never through a
/// symbolic link and without truncating.
pub fn open_rw(path: &Path, mode: u32) -> io::Result<File> {
    OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(explain_loop)
}

/// Creates a fresh temporary file: whatever was at `path` (a stale one, or
/// a planted link) is removed first (unlinking never follows a link), and
/// the new one must not exist when created.
pub fn create_fresh(path: &Path, mode: u32) -> io::Result<File> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW)
        .open(path)
        .map_err(explain_loop)
}

/// `O_NOFOLLOW` on a link fails with ELOOP, whose words ("too many levels
/// of symbolic links") do not say what to do.
fn explain_loop(e: io::Error) -> io::Error {
    if e.raw_os_error() == Some(libc::ELOOP) {
        io::Error::other("is a symbolic link; remove it, knockd creates the file itself")
    } else {
        e
    }
}

/// What a trusted file holds: it decides whether others may read it, and
/// what its error messages say is at stake.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Holds {
    /// The config or an included file: commands that run as root. Others
    /// may read it (knockd 0.8 installs it 0644; a warning says so).
    Commands,
    /// A rotating door's secret: nobody else may read it.
    Secret,
    /// One-time sequences: nobody else may read them.
    OneTime,
}

impl Holds {
    fn what(self) -> &'static str {
        match self {
            Holds::Commands => "commands that run as root",
            Holds::Secret => "a rotating door's secret",
            Holds::OneTime => "one-time knock sequences",
        }
    }
}

/// Why [`open_trusted`] gave no file.
#[derive(Debug)]
pub enum TrustError {
    /// It could not be opened or examined (no such file, permission).
    Io(io::Error),
    /// It is there, but not to be trusted: why, ending with the fix. A
    /// phrase whose subject is the file (`is owned by uid 65534, ...`).
    Untrusted(String),
}

impl std::fmt::Display for TrustError {
    /// The reason alone, for a message that names the file before it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TrustError::Io(e) => f.write_str(&crate::core::config::io_reason(e)),
            TrustError::Untrusted(why) => f.write_str(why),
        }
    }
}

impl TrustError {
    /// A message naming `path`: `cannot read PATH: no such file`, or
    /// `PATH is owned by ...; chown root PATH`.
    pub fn about(&self, path: &Path) -> String {
        match self {
            TrustError::Io(_) => format!("cannot read {}: {self}", path.display()),
            TrustError::Untrusted(why) => format!("{} {why}", path.display()),
        }
    }
}

/// Opens `path` (for reading, and writing when `write`) under the trust
/// rule, or says why not: without following a link and without blocking
/// (`O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC`, so a FIFO cannot stall the main
/// loop), then on the descriptor: a regular file, owned by root or by
/// knockd's own user, not writable by group or others (nor readable, for
/// [`Holds::Secret`] and [`Holds::OneTime`]); then every directory on its
/// path, as given and as resolved, owned by root or knockd's user and not
/// writable by group or others (sticky ones owned so accepted above the
/// file's own directory; see the module doc).
pub fn open_trusted(path: &Path, holds: Holds, write: bool) -> Result<File, TrustError> {
    let file = OpenOptions::new()
        .read(true)
        .write(write)
        .custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK | libc::O_CLOEXEC)
        .open(path);
    let file = match file {
        Ok(f) => f,
        // ELOOP is a link at the last component; ENXIO a FIFO opened for
        // writing with no reader; both mean a file that is not one.
        Err(e) if e.raw_os_error() == Some(libc::ELOOP) => return Err(TrustError::Untrusted(
            "is a symbolic link; name the file itself (knockd follows no link to a file it trusts)"
                .into(),
        )),
        Err(e) if e.raw_os_error() == Some(libc::ENXIO) => {
            return Err(TrustError::Untrusted(
                "is not a regular file; name a regular file".into(),
            ))
        }
        Err(e) => return Err(TrustError::Io(e)),
    };
    let meta = file.metadata().map_err(TrustError::Io)?;
    if let Some(why) = untrusted_file(&meta, path, holds) {
        return Err(TrustError::Untrusted(why));
    }
    if let Some(why) = untrusted_dirs(path).map_err(TrustError::Io)? {
        return Err(TrustError::Untrusted(why));
    }
    Ok(file)
}

/// Whom a trusted file or directory may belong to, as a message says it.
fn owners(euid: u32) -> String {
    if euid == 0 {
        "root".into()
    } else {
        format!("root or uid {euid} (knockd's user)")
    }
}

/// The file itself, from `fstat` on its descriptor.
fn untrusted_file(meta: &Metadata, path: &Path, holds: Holds) -> Option<String> {
    let shown = path.display();
    let t = meta.file_type();
    if !t.is_file() {
        let kind = if t.is_dir() {
            "a directory"
        } else if t.is_fifo() {
            "a FIFO"
        } else if t.is_socket() {
            "a socket"
        } else {
            "a device"
        };
        return Some(format!(
            "is not a regular file ({kind}); name a regular file"
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    let what = holds.what();
    if meta.uid() != 0 && meta.uid() != euid {
        return Some(format!(
            "is owned by uid {}, not {}, and holds {what}; chown root {shown}",
            meta.uid(),
            owners(euid)
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Some(format!(
            "is writable by group or others (mode {mode:04o}), and holds {what}; chmod go-w {shown}"
        ));
    }
    if holds != Holds::Commands && mode & 0o044 != 0 {
        return Some(format!(
            "is readable by group or others (mode {mode:04o}), and holds {what}; chmod go-rwx {shown}"
        ));
    }
    None
}

/// Every directory on the way to `path`: each prefix of the path as given
/// (followed, so a linked directory is checked where it points) and each
/// ancestor of its resolved directory, each once.
fn untrusted_dirs(path: &Path) -> io::Result<Option<String>> {
    let euid = nix::unistd::geteuid().as_raw();
    let abs = std::path::absolute(path)?;
    let Some(parent) = abs.parent() else {
        return Ok(None);
    };
    let own = std::fs::metadata(parent)?;
    let resolved = std::fs::canonicalize(parent)?;
    let mut seen = HashSet::new();
    for dir in parent.ancestors().chain(resolved.ancestors()) {
        let m = std::fs::metadata(dir)?;
        if !seen.insert((m.dev(), m.ino())) {
            continue;
        }
        let d = dir.display();
        if m.uid() != 0 && m.uid() != euid {
            return Ok(Some(format!(
                "is in directory {d}, owned by uid {}, not {}: that user could replace the file; chown root {d}",
                m.uid(),
                owners(euid)
            )));
        }
        let mode = m.mode() & 0o7777;
        if mode & 0o022 == 0 {
            continue;
        }
        let is_own = (m.dev(), m.ino()) == (own.dev(), own.ino());
        if mode & 0o1000 == 0 {
            return Ok(Some(format!(
                "is in directory {d}, writable by group or others (mode {mode:04o}): they could replace the file; chmod go-w {d}"
            )));
        }
        if is_own {
            return Ok(Some(format!(
                "is in directory {d}, writable by others (mode {mode:04o}): they could plant files beside it; move the file into a directory only root can write"
            )));
        }
    }
    Ok(None)
}

/// Why a file (or its directory) cannot be trusted, with the fix, or `None`
/// when it can: a regular file with one link, owned by us (root) and not
/// writable by group or others, in a directory likewise.
pub fn untrusted(file: &File, path: &Path) -> io::Result<Option<String>> {
    let euid = nix::unistd::geteuid().as_raw();
    let owner = if euid == 0 {
        "root".to_string()
    } else {
        format!("uid {euid}")
    };
    let shown = path.display();
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Ok(Some("not a regular file; remove it".into()));
    }
    if meta.uid() != euid {
        return Ok(Some(format!(
            "owned by uid {}, not {owner}: others could have written its commands; chown {owner} {shown}",
            meta.uid()
        )));
    }
    let mode = meta.mode() & 0o777;
    if mode & 0o022 != 0 {
        return Ok(Some(format!(
            "writable by group or others (mode {mode:04o}): they could add commands that run as root; chmod go-w {shown}"
        )));
    }
    if meta.nlink() != 1 {
        return Ok(Some(format!(
            "has {} hard links: it may be another file; remove it, knockd creates the file itself",
            meta.nlink()
        )));
    }
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        let d = std::fs::metadata(dir)?;
        let dmode = d.mode() & 0o777;
        if d.uid() != euid {
            return Ok(Some(format!(
                "its directory {} is owned by uid {}, not {owner}; chown {owner} {}",
                dir.display(),
                d.uid(),
                dir.display()
            )));
        }
        if dmode & 0o022 != 0 {
            return Ok(Some(format!(
                "its directory {} is writable by group or others (mode {dmode:04o}): they could replace the file; chmod go-w {}",
                dir.display(),
                dir.display()
            )));
        }
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn links_are_refused_and_temporary_files_are_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("target");
        std::fs::write(&target, "precious\n").unwrap();
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = open_append(&link, 0o600).unwrap_err();
        assert_eq!(
            e.to_string(),
            "is a symbolic link; remove it, knockd creates the file itself"
        );
        assert!(open_rw(&link, 0o600).is_err());
        // A planted link in place of a temporary file is removed, not
        // followed.
        let f = create_fresh(&link, 0o600).unwrap();
        drop(f);
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        assert!(!std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink());
    }

    #[test]
    fn trust_needs_our_file_not_writable_by_others_in_a_safe_directory() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        let path = dir.path().join("state");
        let f = open_rw(&path, 0o600).unwrap();
        assert_eq!(untrusted(&f, &path).unwrap(), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o664)).unwrap();
        let why = untrusted(&f, &path).unwrap().unwrap();
        assert!(
            why.starts_with("writable by group or others (mode 0664)"),
            "{why}"
        );
        assert!(
            why.ends_with(&format!("chmod go-w {}", path.display())),
            "{why}"
        );
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::hard_link(&path, dir.path().join("other")).unwrap();
        let why = untrusted(&f, &path).unwrap().unwrap();
        assert!(why.starts_with("has 2 hard links"), "{why}");
        std::fs::remove_file(dir.path().join("other")).unwrap();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let why = untrusted(&f, &path).unwrap().unwrap();
        assert!(
            why.contains("is writable by group or others (mode 0777)"),
            "{why}"
        );
    }

    fn chmod(path: &Path, mode: u32) {
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn why(path: &Path) -> String {
        match open_trusted(path, Holds::Commands, false) {
            Ok(_) => "trusted".into(),
            Err(e) => e.to_string(),
        }
    }

    /// A linked directory is checked where it points, and the directories
    /// on the path as written are checked too: either could let others
    /// swap the file.
    #[test]
    fn directories_are_checked_as_written_and_as_resolved() {
        let dir = tempfile::tempdir().unwrap();
        let (open, private) = (dir.path().join("open"), dir.path().join("private"));
        std::fs::create_dir(&open).unwrap();
        std::fs::create_dir(&private).unwrap();
        chmod(&private, 0o700);
        let file = private.join("k.conf");
        std::fs::write(&file, "").unwrap();
        chmod(&file, 0o600);
        assert_eq!(why(&file), "trusted");
        // Written through a link in a directory others can write.
        std::os::unix::fs::symlink(&private, open.join("via")).unwrap();
        chmod(&open, 0o777);
        assert_eq!(
            why(&open.join("via/k.conf")),
            format!(
                "is in directory {o}, writable by group or others (mode 0777): they could \
                 replace the file; chmod go-w {o}",
                o = open.display()
            )
        );
        // A link (in a safe directory) to a directory others can write.
        chmod(&open, 0o755);
        let link = dir.path().join("link");
        std::os::unix::fs::symlink(&open, &link).unwrap();
        std::fs::rename(&file, open.join("k.conf")).unwrap();
        assert_eq!(why(&link.join("k.conf")), "trusted");
        chmod(&open, 0o775);
        assert_eq!(
            why(&link.join("k.conf")),
            format!(
                "is in directory {l}, writable by group or others (mode 0775): they could \
                 replace the file; chmod go-w {l}",
                l = link.display()
            )
        );
    }
}
