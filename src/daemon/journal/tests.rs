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
    let (mut j, old) = Journal::open(&path).unwrap();
    assert_eq!(old, Contents::default());
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
    j.rewrite(&[], &[], now()).unwrap();
    j.append(&[Record::Add(1, a.clone()), Record::Add(2, b.clone())])
        .unwrap();
    assert_eq!(read(&path).unwrap().stops, vec![a.clone(), b.clone()]);
    // A later add of a key replaces it (an extended door); a remove ends it.
    let a2 = Entry {
        due: a.due + Duration::from_secs(5),
        ..a.clone()
    };
    j.append(&[Record::Add(1, a2.clone()), Record::Remove(2)])
        .unwrap();
    assert_eq!(read(&path).unwrap().stops, vec![a2.clone()]);
    assert_eq!(read(&path).unwrap().problems, Vec::<String>::new());
    // A rewrite leaves exactly what it was given, and no temporary file.
    j.rewrite(&[(9, b.clone())], &[], now()).unwrap();
    assert!(!dir.path().join("sub/state.tmp").exists());
    assert_eq!(read(&path).unwrap().stops, vec![b]);
    // Appends go to the rewritten file.
    j.append(&[Record::Remove(9)]).unwrap();
    assert_eq!(read(&path).unwrap().stops, vec![]);
}

#[test]
fn records_go_over_zeros_written_ahead_and_a_restart_goes_on_after_them() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let (mut j, _) = Journal::open(&path).unwrap();
    j.rewrite(&[], &[], now()).unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    assert_eq!(len, (HEADER.len() + 1) as u64 + SPARE);
    j.append(&[Record::Add(1, entry(5, "d", "close 1"))])
        .unwrap();
    // Written in place: the file did not grow, and reads stop at the zeros.
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);
    assert_eq!(read(&path).unwrap().stops, vec![entry(5, "d", "close 1")]);
    drop(j);
    let (mut j, old) = Journal::open(&path).unwrap();
    assert_eq!((old.stops.len(), old.problems.len()), (1, 0));
    // Enough records to use up the zeros: the file grows, by whole spares.
    let many: Vec<Record> = (2..2000)
        .map(|k| Record::Add(k, entry(k, "d", &format!("close {k}"))))
        .collect();
    for chunk in many.chunks(100) {
        j.append(chunk).unwrap();
    }
    j.append(&[Record::Remove(1)]).unwrap();
    let Contents {
        stops: entries,
        problems,
        ..
    } = read(&path).unwrap();
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
    let (_j, old) = Journal::open(&path).unwrap();
    assert_eq!(old.stops.len(), 1);
    assert_eq!(old.stops[0].command, "close");
    assert!(old.problems.is_empty());
}

#[test]
fn a_second_daemon_cannot_share_the_journal() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let (first, _) = Journal::open(&path).unwrap();
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

/// A v3 record: its line, with its checksum.
fn line(record: &Record) -> String {
    let mut text = String::new();
    render(&mut text, record);
    text
}

fn now() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

fn write_journal(path: &Path, bytes: &[u8]) {
    std::fs::write(path, bytes).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).unwrap();
}

#[test]
fn malformed_lines_are_skipped_and_reported() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let good = line(&Record::Add(1, entry(5, "d", "close")));
    // A record of v2 (no checksum), one whose checksum does not match,
    // and a removal whose key is not a number, checksummed.
    let unchecked = "+\t2\t7\t192.0.2.1\td\tc\n";
    let damaged = good.replace("close", "clone");
    let mut bad_key = String::from("-\tx");
    let check = checksum(&bad_key);
    bad_key.push_str(&format!("\t{check:016x}\n"));
    write_journal(
        &path,
        format!("{HEADER}\nnot a line\n{good}{unchecked}{damaged}{bad_key}").as_bytes(),
    );
    let (_j, old) = Journal::open(&path).unwrap();
    assert_eq!(old.stops, vec![entry(5, "d", "close")]);
    assert_eq!(
        old.problems,
        vec![
            "line 2: malformed entry skipped",
            "line 4: malformed entry skipped",
            "line 5: malformed entry skipped",
            "line 6: malformed entry skipped"
        ]
    );
}

/// A v2 journal (an upgrade) is still read, records without checksum;
/// but a last line without its newline is skipped and reported there too.
#[test]
fn v2_journals_are_read_but_not_their_torn_last_line() {
    let dir = private_dir();
    let path = dir.path().join("state");
    write_journal(
        &path,
        b"# knockd-rs pending stop commands v2\n+\t50\t5\t192.0.2.1\td\tclose 50\n+\t5\t6\t192.0.2.2\td\tclose 5\n-\t5",
    );
    let (mut j, old) = Journal::open(&path).unwrap();
    let commands: Vec<&str> = old.stops.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close 50", "close 5"]);
    assert_eq!(old.problems, vec![format!("line 4: {TORN}")]);
    // Appended in place (a full disk at the upgrade): over the torn line,
    // which a newline would make whole, and under the v3 header.
    j.append(&[Record::Remove(50)]).unwrap();
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.contains(&format!("close 5\n{HEADER}\n-\t50\t")),
        "{text:?}"
    );
    let again = read(&path).unwrap();
    let commands: Vec<&str> = again.stops.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close 5"]);
    assert_eq!(again.problems, Vec::<String>::new());
}

/// A journal damaged by a crash or a bad disk (bytes that are not UTF-8)
/// still gives up every stop it can read: refusing the whole file would
/// leave those doors open for good.
#[test]
fn bytes_that_are_not_text_cost_only_their_line() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let mut bytes = format!("{HEADER}\n").into_bytes();
    bytes.extend_from_slice(line(&Record::Add(1, entry(5, "d", "close one"))).as_bytes());
    let mut two = line(&Record::Add(2, entry(6, "d", "close two"))).into_bytes();
    two[30] = 0xff;
    bytes.extend_from_slice(&two);
    bytes.extend_from_slice(b"\x80\x00garbage\n");
    bytes.extend_from_slice(line(&Record::Add(3, entry(7, "d", "close three"))).as_bytes());
    write_journal(&path, &bytes);
    let (mut j, old) = Journal::open(&path).unwrap();
    let commands: Vec<&str> = old.stops.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close one", "close three"]);
    assert_eq!(
        old.problems,
        vec![
            "line 3: malformed entry skipped",
            "line 4: malformed entry skipped"
        ]
    );
    // It goes on after what it read, and reads back the same way.
    j.append(&[Record::Remove(1)]).unwrap();
    drop(j);
    let (_, old) = Journal::open(&path).unwrap();
    let commands: Vec<&str> = old.stops.iter().map(|e| e.command.as_str()).collect();
    assert_eq!(commands, ["close three"]);
    assert_eq!(read(&path).unwrap().stops.len(), 1, "--status reads it too");
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
    let (mut j, _) = Journal::open(&path).unwrap();
    j.rewrite(&[(1, entry(5, "d", "x"))], &[], now()).unwrap();
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "");
}

proptest::proptest! {
    /// Whatever a crash or a disk leaves in the file, reading it never
    /// panics, and each problem names one line of it.
    #[test]
    fn any_bytes_read_without_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..2048)) {
        let Contents { stops, used, problems } = parse(&bytes);
        let lines = bytes.split(|b| *b == b'\n').count();
        proptest::prop_assert!(stops.len() + used.len() + problems.len() <= lines);
        for p in &problems {
            proptest::prop_assert!(p.starts_with("line ") && !p.contains('\n'), "{}", p);
        }
    }

    /// A valid record after any damaged line is still read.
    #[test]
    fn a_record_after_garbage_is_kept(garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..256)) {
        let mut bytes: Vec<u8> = garbage.iter().map(|b| if *b == b'\n' { b' ' } else { *b }).collect();
        bytes.push(b'\n');
        bytes.extend_from_slice(line(&Record::Add(9, entry(5, "d", "close nine"))).as_bytes());
        let stops = parse(&bytes).stops;
        proptest::prop_assert!(stops.iter().any(|e| e.command == "close nine"));
    }
}

/// A power cut mid-append leaves only the start of the last record (then
/// the zeros written ahead): at no cut is a record applied that was not
/// written whole. A torn `touch DIR/torn-name` must not run as
/// `touch DIR/to`, and a torn `-<TAB>50` must not remove stop 5.
#[test]
fn a_record_cut_at_any_byte_is_never_applied() {
    let mut whole = format!("{HEADER}\n");
    render(&mut whole, &Record::Add(50, entry(5, "d", "close 50")));
    render(&mut whole, &Record::Add(5, entry(6, "d", "close 5")));
    let Contents {
        stops: before,
        problems,
        ..
    } = parse(whole.as_bytes());
    assert_eq!((before.len(), problems.len()), (2, 0));
    let torn = [
        Record::Add(7, entry(7, "d", "touch /var/lib/app/torn-name")),
        Record::Remove(50),
        Record::Used(mark("rot", 12345, 99)),
    ];
    // Every cut that applied something not written whole, and its result.
    let mut wrong = Vec::new();
    let mut cuts = 0;
    for last in torn {
        let mut full = whole.clone();
        render(&mut full, &last);
        for cut in whole.len()..full.len() {
            for zeros in [0, 64] {
                cuts += 1;
                let mut bytes = full.as_bytes()[..cut].to_vec();
                bytes.resize(cut + zeros, 0);
                let Contents {
                    stops: entries,
                    problems,
                    ..
                } = parse(&bytes);
                let shown = &full[whole.len()..cut];
                let torn = usize::from(cut > whole.len());
                if entries != before || problems.len() != torn {
                    let commands: Vec<&str> = entries.iter().map(|e| e.command.as_str()).collect();
                    wrong.push(format!(
                        "cut after {shown:?}: stops {commands:?}, problems {problems:?}"
                    ));
                }
            }
        }
    }
    // Every byte of a 75-byte add, a 22-byte removal and a 49-byte mark,
    // with and without zeros after.
    assert_eq!(cuts, 2 * (75 + 22 + 49));
    assert!(
        wrong.is_empty(),
        "{} of {cuts} cuts applied a torn record, e.g.:\n{}",
        wrong.len(),
        wrong
            .iter()
            .filter(|w| w.contains("\"touch /var/lib/app/to\"")
                || w.starts_with("cut after \"-\\t5\":"))
            .take(2)
            .cloned()
            .collect::<Vec<_>>()
            .join("\n")
    );
}

fn mark(door: &str, period: u64, keep_secs: u64) -> UsedMark {
    UsedMark {
        door: door.into(),
        user: None,
        period,
        keep_until: now() + Duration::from_secs(keep_secs),
    }
}

/// Used marks of rotating doors go through appends, rewrites and a
/// restart like the stops; one per door and period (the latest
/// `keep_until`), and a rewrite keeps only those not expired.
#[test]
fn used_marks_round_trip_and_expired_ones_are_dropped_by_a_rewrite() {
    let dir = private_dir();
    let path = dir.path().join("state");
    let (mut j, _) = Journal::open(&path).unwrap();
    j.rewrite(
        &[(1, entry(5, "d", "close"))],
        &[mark("rot\tA", 7, 10)],
        now(),
    )
    .unwrap();
    j.append(&[
        Record::Used(mark("rot B", 8, 20)),
        Record::Used(mark("rot\tA", 7, 30)),
        Record::Remove(1),
    ])
    .unwrap();
    drop(j);
    let (mut j, old) = Journal::open(&path).unwrap();
    assert_eq!(old.stops, vec![]);
    assert_eq!(old.used, vec![mark("rot\tA", 7, 30), mark("rot B", 8, 20)]);
    assert_eq!(old.problems, Vec::<String>::new());
    // At now + 25 s, rot B's mark is past keeping.
    let later = now() + Duration::from_secs(25);
    assert_eq!(j.rewrite(&[], &old.used, later).unwrap(), Rewritten::Whole);
    assert_eq!(read(&path).unwrap().used, vec![mark("rot\tA", 7, 30)]);
    // A mark whose line is damaged is not taken.
    let text = std::fs::read_to_string(&path).unwrap();
    write_journal(&path, text.replace("\t7\t", "\t8\t").as_bytes());
    let damaged = read(&path).unwrap();
    assert_eq!(damaged.used, vec![]);
    assert_eq!(damaged.problems, vec!["line 2: malformed entry skipped"]);
}

/// A small tmpfs mounted on a fresh directory, unmounted on drop: a file
/// system a test can fill.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = private_dir();
        let out = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tmpfs")
            .arg(dir.path())
            .output()
            .unwrap();
        assert!(out.status.success(), "mount: {out:?}");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Fills the file system: writes to `filler` until it has no room.
    fn fill(&self) {
        let mut f = File::create(self.path().join("filler")).unwrap();
        let block = vec![0x55u8; 4096];
        loop {
            match f.write(&block) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) if is_no_space(&e) => break,
                Err(e) => panic!("filling: {e}"),
            }
        }
        // Whatever is left of the last page, too.
        while f.write(&[0x55]).is_ok_and(|n| n == 1) {}
    }

    fn empty(&self) {
        std::fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(self.dir.path())
            .status();
    }
}

/// With the file system full, a rewrite (the one at every start, or a
/// compaction) goes to the zeros written ahead, records already there
/// valid; appends go on there; only when those are spent does a write
/// fail. Room again, and the next rewrite is whole.
#[test]
#[ignore = "needs root: mounts a tmpfs"]
fn a_full_file_system_uses_the_zeros_written_ahead() {
    let fs = Tmpfs::mount("256k");
    let path = fs.path().join("state");
    let (mut j, _) = Journal::open(&path).unwrap();
    let stops: Vec<(u64, Entry)> = (1..=3)
        .map(|k| (k, entry(k, "d", &format!("close {k}"))))
        .collect();
    assert_eq!(j.rewrite(&stops, &[], now()).unwrap(), Rewritten::Whole);
    j.append(&[Record::Remove(1), Record::Used(mark("rot", 4, 60))])
        .unwrap();
    fs.fill();
    // A restart on the full disk: the rewrite under new keys is appended.
    drop(j);
    let (mut j, old) = Journal::open(&path).unwrap();
    assert_eq!(old.stops, vec![stops[1].1.clone(), stops[2].1.clone()]);
    let renewed = vec![(12, old.stops[0].clone()), (13, old.stops[1].clone())];
    let written = j.rewrite(&renewed, &old.used, now()).unwrap();
    let Rewritten::InPlace {
        reserve,
        first: true,
    } = written
    else {
        panic!("{written:?}");
    };
    assert!(reserve > SPARE - 1024 && reserve < SPARE, "{reserve}");
    assert!(!fs.path().join("state.tmp").exists());
    let now_read = read(&path).unwrap();
    assert_eq!(now_read.stops, vec![stops[1].1.clone(), stops[2].1.clone()]);
    assert_eq!(now_read.used, vec![mark("rot", 4, 60)]);
    assert_eq!(now_read.problems, Vec::<String>::new());
    // A second rewrite in place is not the first: one warning per episode.
    let again = j.rewrite(&renewed, &old.used, now()).unwrap();
    assert!(
        matches!(again, Rewritten::InPlace { first: false, .. }),
        "{again:?}"
    );
    // Appends use up the reserve, then fail (the door would stay closed),
    // and what was written stays readable.
    let mut key = 100;
    let error = loop {
        let big = entry(key, "d", &"x".repeat(1000));
        match j.append(&[Record::Add(key, big)]) {
            Ok(()) => key += 1,
            Err(e) => break e,
        }
        assert!(key < 1000, "the reserve never ran out");
    };
    assert!(key > 60, "only {} records fitted", key - 100);
    assert!(
        error.to_string().ends_with(": No space left on device"),
        "{error}"
    );
    let full = read(&path).unwrap();
    assert_eq!(full.stops.len(), 2 + (key - 100) as usize);
    assert_eq!(full.problems, Vec::<String>::new());
    // Room again: the next rewrite is whole, and small.
    fs.empty();
    assert_eq!(j.rewrite(&renewed, &[], now()).unwrap(), Rewritten::Whole);
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(len < SPARE + 1024, "{len}");
    assert_eq!(read(&path).unwrap().stops.len(), 2);
}

/// Disks may persist the sectors of one write out of order: a power cut
/// can keep a record's end (its newline) but not its middle. The checksum
/// catches what the newline cannot.
#[test]
fn a_record_whose_middle_was_lost_is_not_applied() {
    let mut text = format!("{HEADER}\n");
    render(&mut text, &Record::Add(1, entry(5, "d", "close 1")));
    let start = text.len();
    render(
        &mut text,
        &Record::Add(7, entry(7, "d", "touch /var/lib/app/torn-name")),
    );
    let mut bytes = text.into_bytes();
    for b in &mut bytes[start + 40..start + 60] {
        *b = 0;
    }
    let read = parse(&bytes);
    assert_eq!(read.stops, vec![entry(5, "d", "close 1")]);
    assert_eq!(read.problems, vec!["line 3: malformed entry skipped"]);
}

/// A door of users journals each user's mark as a `U` record; the `u`
/// records of earlier versions are read as they were (no user), and the
/// same period of two users, or of a user and the door, are three marks.
#[test]
fn user_marks_are_their_own_records_and_old_ones_read_as_before() {
    let keep = UNIX_EPOCH + Duration::from_secs(1_700_086_440);
    let user = |u: Option<&str>| UsedMark {
        door: "ssh".into(),
        user: u.map(str::to_string),
        period: 56_666_666,
        keep_until: keep,
    };
    let alice = line(&Record::Used(user(Some("alice"))));
    assert!(
        alice.starts_with("U\tssh\talice\t56666666\t1700086440000000000\t"),
        "{alice}"
    );
    let old = line(&Record::Used(user(None)));
    assert!(
        old.starts_with("u\tssh\t56666666\t1700086440000000000\t"),
        "{old}"
    );
    let bob = line(&Record::Used(user(Some("bob"))));
    let text = format!("{HEADER}\n{alice}{old}{bob}{alice}");
    let read = parse(text.as_bytes());
    assert_eq!(read.problems, Vec::<String>::new());
    assert_eq!(
        read.used,
        vec![user(Some("alice")), user(None), user(Some("bob"))]
    );
    // A torn user field is not a user-less mark.
    let torn = alice.replacen("alice\t", "", 1);
    assert_eq!(parse(format!("{HEADER}\n{torn}").as_bytes()).used, vec![]);
}
