//! Journal tests: format round trips, appends and rewrites, the lock, and
//! the trust checks.

use std::os::unix::fs::PermissionsExt;

use super::*;

fn entry(secs: u64, door: &str, command: &str) -> Entry {
    Entry {
        due: UNIX_EPOCH + Duration::from_nanos(secs * 1_000_000_000 + 123),
        src: "2001:db8::7".parse().unwrap(),
        door: door.into(),
        command: command.into(),
    }
}

fn private_dir() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
    dir
}

#[test]
fn appends_and_rewrites_round_trip_awkward_text() {
    let dir = private_dir();
    let path = dir.path().join("sub/state");
    let (mut j, old, problems) = Journal::open(&path).unwrap();
    assert!(old.is_empty() && problems.is_empty());
    let a = entry(
        1_800_000_000,
        "open\tSSH",
        "iptables -D INPUT -s 2001:db8::7 -j ACCEPT",
    );
    let b = entry(
        1_800_000_010,
        "d",
        "printf 'a\\tb\\n' > /tmp/x\nsecond line",
    );
    j.rewrite(&[]).unwrap();
    j.append(&[Record::Add(1, a.clone()), Record::Add(2, b.clone())])
        .unwrap();
    assert_eq!(read(&path).unwrap().0, vec![a.clone(), b.clone()]);
    // A later add of a key replaces it (an extended door); a remove ends it.
    let a2 = Entry {
        due: a.due + Duration::from_secs(5),
        ..a.clone()
    };
    j.append(&[Record::Add(1, a2.clone()), Record::Remove(2)])
        .unwrap();
    assert_eq!(read(&path).unwrap(), (vec![a2.clone()], vec![]));
    // A rewrite leaves exactly what it was given, and no temporary file.
    j.rewrite(&[(9, b.clone())]).unwrap();
    assert!(!dir.path().join("sub/state.tmp").exists());
    assert_eq!(read(&path).unwrap().0, vec![b]);
    // Appends go to the rewritten file.
    j.append(&[Record::Remove(9)]).unwrap();
    assert_eq!(read(&path).unwrap().0, vec![]);
}

#[test]
fn records_go_over_zeros_written_ahead_and_a_restart_goes_on_after_them() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let (mut j, _, _) = Journal::open(&path).unwrap();
    j.rewrite(&[]).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, (HEADER.len() + 1) as u64 + SPARE);
    j.append(&[Record::Add(1, entry(5, "d", "close 1"))])
        .unwrap();
    // Written in place: the file did not grow, and reads stop at the zeros.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(read(&path).unwrap().0, vec![entry(5, "d", "close 1")]);
    drop(j);
    let (mut j, old, problems) = Journal::open(&path).unwrap();
    assert_eq!((old.len(), problems.len()), (1, 0));
    // Enough records to use up the zeros: the file grows, by whole spares.
    let many: Vec<Record> = (2..2000)
        .map(|k| Record::Add(k, entry(k, "d", &format!("close {k}"))))
        .collect();
    for chunk in many.chunks(100) {
        j.append(chunk).unwrap();
    }
    j.append(&[Record::Remove(1)]).unwrap();
    let (entries, problems) = read(&path).unwrap();
    assert_eq!((entries.len(), problems.len()), (1998, 0));
    assert_eq!(entries[0], entry(2, "d", "close 2"));
    let text = std::fs::read(&path).unwrap();
    let zeros = text.len() - records(&text).len();
    assert!(
        zeros > 0 && zeros as u64 <= SPARE,
        "{zeros} zeros at the end"
    );
}

#[test]
fn v1_journals_are_still_read() {
    let dir = private_dir();
    let path = dir.path().join("state");
    std::fs::write(
        &path,
        "# knockd-rs pending stop commands v1\n5\t192.0.2.1\td\tclose\n",
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_j, entries, problems) = Journal::open(&path).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].command, "close");
    assert!(problems.is_empty());
}

#[test]
fn a_second_daemon_cannot_share_the_journal() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let (first, _, _) = Journal::open(&path).unwrap();
    let second = Journal::open(&path).err().unwrap();
    assert_eq!(
        second.to_string(),
        format!(
            "state file {} is in use by another knockd; give each instance its own StateFile",
            path.display()
        )
    );
    drop(first);
    assert!(Journal::open(&path).is_ok());
}

#[test]
fn malformed_lines_are_skipped_and_reported() {
    let dir = private_dir();
    let path = dir.path().join("state");
    std::fs::write(
        &path,
        format!(
            "{HEADER}\nnot a line\n+\t1\t5\t192.0.2.1\td\tclose\n+\t2\t7\tnot-ip\td\tc\n-\tx\n"
        ),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (_j, entries, problems) = Journal::open(&path).unwrap();
    assert_eq!(entries.len(), 1);
    assert_eq!(entries[0].command, "close");
    assert_eq!(
        problems,
        vec![
            "line 2: malformed entry skipped",
            "line 4: malformed entry skipped",
            "line 5: malformed entry skipped"
        ]
    );
}

/// A journal damaged by a crash or a bad disk (bytes that are not UTF-8)
/// still gives up every stop it can read: refusing the whole file would
/// leave those doors open for good.
#[test]
fn bytes_that_are_not_text_cost_only_their_line() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let mut bytes = format!("{HEADER}\n+\t1\t5\t192.0.2.1\td\tclose one\n").into_bytes();
    bytes.extend_from_slice(b"+\t2\t6\t192.0.2.2\td\tclose \xff\xfe two\n");
    bytes.extend_from_slice(b"\x80\x00garbage\n");
    bytes.extend_from_slice(b"+\t3\t7\t192.0.2.3\td\tclose three\n");
    std::fs::write(&path, &bytes).unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    let (mut j, entries, problems) = Journal::open(&path).unwrap();
    let commands: Vec<&str> = entries.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close one", "close three"]);
    assert_eq!(
        problems,
        vec![
            "line 3: malformed entry skipped",
            "line 4: malformed entry skipped"
        ]
    );
    // It goes on after what it read, and reads back the same way.
    j.append(&[Record::Remove(1)]).unwrap();
    drop(j);
    let (_, entries, _) = Journal::open(&path).unwrap();
    let commands: Vec<&str> = entries.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close three"]);
    let (entries, _) = read(&path).unwrap();
    assert_eq!(entries.len(), 1, "--status reads it too");
}

#[test]
fn a_symlinked_or_writable_journal_is_refused_with_the_fix() {
    let dir = private_dir();
    let target = dir.path().join("elsewhere");
    std::fs::write(&target, "").unwrap();
    let path = dir.path().join("state");
    std::os::unix::fs::symlink(&target, &path).unwrap();
    let e = Journal::open(&path).err().unwrap().to_string();
    assert_eq!(
        e,
        format!(
            "state file {}: is a symbolic link; remove it, knockd creates the file itself",
            path.display()
        )
    );
    std::fs::remove_file(&path).unwrap();
    std::fs::write(&path, "").unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o620)).unwrap();
    let e = Journal::open(&path).err().unwrap().to_string();
    assert!(
        e.ends_with(&format!("; chmod go-w {}", path.display())),
        "{e}"
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
    // A planted link in place of the temporary file is replaced, not
    // followed.
    std::os::unix::fs::symlink(&target, dir.path().join("state.tmp")).unwrap();
    let (mut j, _, _) = Journal::open(&path).unwrap();
    j.rewrite(&[(1, entry(5, "d", "x"))]).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}

proptest::proptest! {
    /// Whatever a crash or a disk leaves in the file, reading it never
    /// panics, and each problem names one line of it.
    #[test]
    fn any_bytes_read_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let (entries, problems) = parse(&bytes);
        let lines = bytes.split(|b| *b == b'\n').count();
        proptest::prop_assert!(entries.len() + problems.len() <= lines);
        for p in &problems {
            proptest::prop_assert!(p.starts_with("line ") && !p.contains('\n'), "{}", p);
        }
    }

    /// A valid record after any damaged line is still read.
    #[test]
    fn a_record_after_garbage_is_kept(garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let mut bytes: Vec<u8> = garbage.iter().map(|b| if *b == b'\n' { b' ' } else { *b }).collect();
        bytes.extend_from_slice(b"\n+\t9\t5\t192.0.2.9\td\tclose nine\n");
        let (entries, _) = parse(&bytes);
        proptest::prop_assert!(entries.iter().any(|e| e.command == "close nine"));
    }
}
