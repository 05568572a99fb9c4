//! The journal of pending stops where it meets a power cut and a full
//! disk: a torn last record is skipped and reported, never run; with the
//! state file's file system full the door still opens, from the zeros
//! written ahead, and fails closed only once they are spent.

use super::*;

// ---------------------------------------------------------------------------
// A torn last record.

/// A cut mid-append leaves only the start of the last record (the rest of
/// it zeros): the next start must not run the truncated command (here
/// `touch DIR/closed-to` instead of `touch DIR/closed-torn-name`), and
/// says which line it skipped.
#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn a_torn_last_record_is_reported_and_never_run() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7561, 7562, 7563],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP%\n\
             \tCmd_Timeout = 1\n\
             \tStop_Command = touch {p}/closed-torn-name\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(60), &[7561, 7562, 7563]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.60"));
    let state = dir.path().join("state");
    wait_journaled(&daemon, &state, &format!("touch {p}/closed-torn-name"));
    daemon.kill9();
    // The power cut: the record stops after `closed-to`, zeros follow.
    let mut bytes = fs::read(&state).unwrap();
    let at = bytes
        .windows(7)
        .position(|w| w == b"rn-name")
        .expect("the record");
    let end = bytes.iter().rposition(|b| *b != 0).unwrap() + 1;
    bytes[at..end].fill(0);
    fs::write(&state, &bytes).unwrap();
    let line = bytes[..at].split(|b| *b == b'\n').count();
    std::thread::sleep(Duration::from_millis(1200));

    let daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    // Long enough for an overdue stop to run.
    std::thread::sleep(Duration::from_millis(500));
    let msgs = this_run(&daemon.stop());
    for name in ["closed-to", "closed-torn-name"] {
        assert!(
            !dir.path().join(name).exists(),
            "{name} ran from a torn record\nlog:\n{}",
            msgs.join("\n")
        );
    }
    assert_eq!(
        msgs[..2],
        lines(&[
            "starting up, listening on lo",
            &format!("state file {p}/state: line {line}: incomplete record skipped (cut short by a crash)"),
        ])[..],
        "log:\n{}",
        msgs.join("\n")
    );
    assert!(
        !msgs.iter().any(|m| m.contains("running command")),
        "log:\n{}",
        msgs.join("\n")
    );
}

// ---------------------------------------------------------------------------
// A full disk.

/// A small tmpfs mounted on a fresh directory, unmounted on drop (lazily,
/// so a daemon a failing test left holding a file cannot keep it).
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = test_dir();
        support::run_ok(
            "mount",
            &[
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
                &d(dir.path()),
            ],
        );
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }

    /// `dd` into a filler file until the file system has no room, then
    /// the last bytes of its last page too.
    fn fill(&self) {
        let filler = self.path().join("filler");
        let out = run_bounded(
            Command::new("dd").args(["if=/dev/zero", &format!("of={}", filler.display()), "bs=4k"]),
            WAIT,
        );
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("No space left on device"), "dd: {said}");
        let mut f = fs::OpenOptions::new().append(true).open(&filler).unwrap();
        use std::io::Write;
        while f.write(&[0]).is_ok_and(|n| n == 1) {}
    }

    fn empty(&self) {
        fs::remove_file(self.path().join("filler")).unwrap();
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = run_bounded(Command::new("umount").arg("-l").arg(self.dir.path()), WAIT);
    }
}

/// The message of the full-disk warning for the state file at `state`.
fn is_full_warning(msg: &str, state: &Path) -> bool {
    msg.strip_prefix(&format!(
        "state file {}: file system full, using the ",
        state.display()
    ))
    .and_then(|rest| rest.strip_suffix(" bytes written ahead (compaction waits)"))
    .is_some_and(|n| n.parse::<u64>().is_ok())
}

/// A restart (a crash, an upgrade, a reboot) with the state file's file
/// system full: the start-up rewrite has no room, so the journal goes on in
/// the old file, over its zeros; one line says so, and the admin who knocks
/// to come in and clean up is let in. Once those zeros are spent, a door
/// fails closed.
#[test]
#[ignore = "needs root: mounts a tmpfs, packet injection and live capture on lo"]
fn a_restart_on_a_full_disk_still_opens_and_fails_closed_only_when_the_reserve_is_spent() {
    require_root("mounts a tmpfs, packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let tmpfs = Tmpfs::mount("1m");
    let state = tmpfs.path().join("state");
    // Stop commands of 1.5 kB: two fit in one page of reserve, not three.
    let conf = format!(
        "[options]\n\tStateFile = {}\n{}",
        state.display(),
        door(
            "door",
            [7571, 7572, 7573],
            &format!(
                "\tStart_Command = touch {p}/opened-%IP%\n\
                 \tCmd_Timeout = 600\n\
                 \tStop_Command = touch {p}/closed-%IP% # {}\n",
                "x".repeat(1500)
            )
        )
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(61), &[7571, 7572, 7573]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.61"));
    wait_journaled(&daemon, &state, &format!("touch {p}/closed-127.0.1.61"));
    daemon.kill9();
    tmpfs.fill();

    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    inj.knock_from(src(62), &[7571, 7572, 7573]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.62"));
    let msgs = daemon.this_run();
    let warnings = msgs.iter().filter(|m| is_full_warning(m, &state)).count();
    assert_eq!(warnings, 1, "log:\n{}", msgs.join("\n"));
    assert!(
        msgs.iter().any(|m| m
            == &format!(
                "restored 1 pending stop command(s) from {}, 0 overdue",
                state.display()
            )),
        "log:\n{}",
        msgs.join("\n")
    );
    assert!(
        !msgs.iter().any(|m| m.contains("not opened")),
        "log:\n{}",
        msgs.join("\n")
    );
    // Both stops are journaled, in the old file.
    let mut held = journal_entries(&state);
    held.sort();
    assert_eq!(held.len(), 2, "{held:?}");
    assert!(
        held[0].contains("closed-127.0.1.61") && held[1].contains("closed-127.0.1.62"),
        "{held:?}"
    );
    // Shutdown runs both stops and journals that they ran.
    let msgs = this_run(&daemon.stop());
    for n in [61, 62] {
        assert!(
            dir.path().join(format!("closed-127.0.1.{n}")).exists(),
            "log:\n{}",
            msgs.join("\n")
        );
    }
    assert_eq!(journal_entries(&state), Vec::<String>::new());

    // A journal with one page of reserve, on a full disk: two openings
    // fit, the third fails closed.
    tmpfs.empty();
    fs::remove_file(&state).unwrap();
    let mut bytes = b"# knockd-rs pending stop commands v3\n".to_vec();
    bytes.resize(4096, 0);
    fs::write(&state, &bytes).unwrap();
    tmpfs.fill();
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let reserve = 4096 - 37;
    daemon.wait_for_line(
        &format!(
            "state file {}: file system full, using the {reserve} bytes written ahead (compaction waits)",
            state.display()
        ),
        WAIT,
    );
    for n in [63, 64] {
        inj.knock_from(src(n), &[7571, 7572, 7573]);
        daemon.wait_for_file(&dir.path().join(format!("opened-127.0.1.{n}")));
    }
    inj.knock_from(src(65), &[7571, 7572, 7573]);
    let refused = format!(
        "127.0.1.65: door: not opened: its stop command could not be journaled (state file {}: No space left on device)",
        state.display()
    );
    daemon.wait_for_line(&refused, WAIT);
    std::thread::sleep(Duration::from_millis(200));
    assert!(!dir.path().join("opened-127.0.1.65").exists());
    let msgs = this_run(&daemon.stop());
    let warnings = msgs.iter().filter(|m| is_full_warning(m, &state)).count();
    assert_eq!(warnings, 1, "log:\n{}", msgs.join("\n"));
}

/// The log file on a full disk: its lines are lost (said once on stderr,
/// not per line), and doors open as ever.
#[test]
#[ignore = "needs root: mounts a tmpfs, packet injection and live capture on lo"]
fn a_full_disk_under_the_log_file_never_blocks_an_opening() {
    require_root("mounts a tmpfs, packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let tmpfs = Tmpfs::mount("256k");
    // The harness logs to DIR/knockd.log: bind the tmpfs's file there.
    let log = dir.path().join("knockd.log");
    fs::write(tmpfs.path().join("knockd.log"), "").unwrap();
    fs::write(&log, "").unwrap();
    support::run_ok(
        "mount",
        &["--bind", &d(&tmpfs.path().join("knockd.log")), &d(&log)],
    );
    struct Unbind(PathBuf);
    impl Drop for Unbind {
        fn drop(&mut self) {
            let _ = run_bounded(Command::new("umount").arg("-l").arg(&self.0), WAIT);
        }
    }
    let _bound = Unbind(log.clone());
    let conf = door(
        "door",
        [7581, 7582, 7583],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP%\n\
             \tCmd_Timeout = 1\n\
             \tStop_Command = touch {p}/closed-%IP%\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    // A line that ends the log file at a page boundary: no slack in its
    // last page, so the next line needs a page the full disk does not have.
    let len = fs::metadata(&log).unwrap().len() as usize;
    let slack = 4096 - len % 4096;
    let pad = if slack >= 21 { slack } else { slack + 4096 };
    let line = format!("[2000-01-01 00:00] {}\n", "p".repeat(pad - 20));
    let mut f = fs::OpenOptions::new().append(true).open(&log).unwrap();
    std::io::Write::write_all(&mut f, line.as_bytes()).unwrap();
    drop(f);
    tmpfs.fill();
    let mut inj = Injector::lo();
    inj.knock_from(src(66), &[7581, 7582, 7583]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.66"));
    daemon.wait_for_file(&dir.path().join("closed-127.0.1.66"));
    // Room again: lines are written again, and stderr says how many were
    // lost, once.
    tmpfs.empty();
    inj.knock_from(src(67), &[7581, 7582, 7583]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.67"));
    daemon.wait_for_line("127.0.1.67: door: OPEN SESAME", WAIT);
    let stderr = daemon.stderr();
    let t = daemon.terminate();
    assert!(t.status.success(), "{}", t.stderr);
    let cannot: Vec<&str> = stderr
        .lines()
        .filter(|l| l.starts_with("knockd: cannot write log file"))
        .collect();
    assert_eq!(
        cannot,
        [format!(
            "knockd: cannot write log file {}: No space left on device; lines are lost until it can be written again",
            log.display()
        )],
        "stderr:\n{stderr}"
    );
    assert!(
        stderr.lines().any(|l| l.starts_with(&format!(
            "knockd: log file {} written again; ",
            log.display()
        ))),
        "stderr:\n{stderr}"
    );
    assert!(
        !t.msgs.iter().any(|m| m.contains("127.0.1.66")),
        "{:?}",
        t.msgs
    );
}
