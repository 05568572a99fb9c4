//! Opening files as root without being steered: never through a symbolic
//! link, temporary files only fresh (`O_EXCL`), and files whose content is
//! trusted (the journal runs its commands) only when nobody else could have
//! written them.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
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
}
