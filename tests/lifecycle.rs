//! Privileged lifecycle tests: what happens around the knocks — shutdown
//! with doors open, crashes and restarts, slow and failing commands,
//! one-time sequences, SIGHUP, `-d`, log floods, `-l`, syslog, and
//! interfaces that come, go and change address.
//!
//! Like tests/live.rs every test needs root and is `#[ignore]`d. They run
//! in parallel with each other and with tests/live.rs: on `lo` each test
//! has its own door ports (73xx-75xx; live.rs uses 71xx-72xx) and its own
//! spoofed sources (127.0.1.x, and 127.2.x.x for the flood); the others
//! use namespaces named after the test and this process.

mod support;

use std::fs;
use std::net::Ipv4Addr;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant, SystemTime};

use nix::sys::signal::{kill, Signal};
use nix::unistd::Pid;
use support::{
    actions, knock, message_of, processes, require_knock_client, require_root, run_bounded,
    test_dir, this_run, wait_for, write_config, Daemon, GroupGuard, Injector, Launch, Netns, Veth,
    KNOCKD, WAIT,
};

fn d(dir: &Path) -> String {
    dir.to_str().expect("utf-8 temp dir").to_string()
}

fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// A spoofed source of this file: 127.0.1.`n`.
fn src(n: u8) -> Ipv4Addr {
    Ipv4Addr::new(127, 0, 1, n)
}

/// `Stage 1..=n` and `OPEN SESAME` of `door` for `ip`, then its command.
fn opened(ip: &str, door: &str, stages: usize, command: &str) -> Vec<String> {
    let mut v: Vec<String> = (1..=stages)
        .map(|n| format!("{ip}: {door}: Stage {n}"))
        .collect();
    v.push(format!("{ip}: {door}: OPEN SESAME"));
    v.push(format!("{door}: running command: {command}"));
    v
}

/// A door with a 3-port SYN sequence and `extra` directives.
fn door(name: &str, ports: [u16; 3], extra: &str) -> String {
    format!(
        "[{name}]\n\
         \tSequence = {},{},{}\n\
         \tSeq_Timeout = 20\n\
         \tTCPFlags = syn\n\
         {extra}",
        ports[0], ports[1], ports[2]
    )
}

fn count(msgs: &[String], msg: &str) -> usize {
    msgs.iter().filter(|m| *m == msg).count()
}

fn mtime(path: &Path) -> SystemTime {
    fs::metadata(path)
        .and_then(|m| m.modified())
        .unwrap_or_else(|e| panic!("mtime of {}: {e}", path.display()))
}

/// Waits until the journal at `path` names `command` (it is rewritten
/// right after the start command is started).
fn wait_journaled(daemon: &Daemon, path: &Path, command: &str) {
    wait_for(
        &format!("journal entry for {command:?}"),
        WAIT,
        || {
            format!(
                "state file: {:?}\nlog:\n{}",
                fs::read_to_string(path).unwrap_or_default(),
                daemon.messages().join("\n")
            )
        },
        || fs::read_to_string(path).is_ok_and(|t| t.contains(command)),
    );
}

/// The stops the journal holds now (its records folded), as
/// `DOOR SRC COMMAND`.
fn journal_entries(path: &Path) -> Vec<String> {
    let (entries, problems) = knockd::daemon::journal::read(path).unwrap_or_default();
    assert!(problems.is_empty(), "{problems:?}");
    entries
        .iter()
        .map(|e| format!("{} {} {}", e.door, e.src, e.command))
        .collect()
}

// ---------------------------------------------------------------------------
// 1. SIGTERM runs every pending stop command before the process exits.

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn sigterm_with_two_doors_open_runs_both_stop_commands_before_exit() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    // The stop commands take a moment, so a daemon that did not wait for
    // them would exit before their markers exist.
    let conf = format!(
        "{}{}",
        door(
            "one",
            [7301, 7302, 7303],
            &format!(
                "\tStart_Command = touch {p}/opened1-%IP%\n\
                 \tCmd_Timeout = 600\n\
                 \tStop_Command = sleep 0.3; touch {p}/closed1-%IP%\n"
            )
        ),
        door(
            "two",
            [7311, 7312, 7313],
            &format!(
                "\tStart_Command = touch {p}/opened2-%IP%\n\
                 \tCmd_Timeout = 600\n\
                 \tStop_Command = sleep 0.3; touch {p}/closed2-%IP%\n"
            )
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(1), &[7301, 7302, 7303]);
    inj.knock_from(src(2), &[7311, 7312, 7313]);
    daemon.wait_for_file(&dir.path().join("opened1-127.0.1.1"));
    daemon.wait_for_file(&dir.path().join("opened2-127.0.1.2"));
    let state = dir.path().join("state");
    wait_journaled(&daemon, &state, "closed2-127.0.1.2");
    assert_eq!(journal_entries(&state).len(), 2);
    // A marker exists a moment before its start command has exited and
    // been reaped; a start still running at SIGTERM is (rightly) killed
    // before its stop runs, which is not what this test is about.
    let pid = daemon.pid().as_raw();
    wait_for(
        "the start commands to be reaped",
        WAIT,
        || daemon.messages().join("\n"),
        || !processes().iter().any(|p| p.1 == pid),
    );

    let t = daemon.terminate();
    // At the moment the exit was seen.
    let closed1 = dir.path().join("closed1-127.0.1.1").exists();
    let closed2 = dir.path().join("closed2-127.0.1.2").exists();
    let msgs = t.assert_clean();
    assert!(
        closed1 && closed2,
        "stop commands still running at exit (closed1 {closed1}, closed2 {closed2})\nlog:\n{}",
        msgs.join("\n")
    );
    let acts = actions(&msgs);
    let mut expected = opened(
        "127.0.1.1",
        "one",
        3,
        &format!("touch {p}/opened1-127.0.1.1"),
    );
    expected.extend(opened(
        "127.0.1.2",
        "two",
        3,
        &format!("touch {p}/opened2-127.0.1.2"),
    ));
    assert_eq!(acts[..10], expected[..], "log:\n{}", msgs.join("\n"));
    // The two closes, each `command timeout` then its command, in either
    // order, and nothing else.
    let mut closes: Vec<[String; 2]> = acts[10..]
        .chunks(2)
        .map(|c| [c[0].clone(), c.get(1).cloned().unwrap_or_default()])
        .collect();
    closes.sort();
    assert_eq!(
        closes,
        vec![
            [
                "127.0.1.1: one: command timeout".to_string(),
                format!("one: running command: sleep 0.3; touch {p}/closed1-127.0.1.1"),
            ],
            [
                "127.0.1.2: two: command timeout".to_string(),
                format!("two: running command: sleep 0.3; touch {p}/closed2-127.0.1.2"),
            ],
        ],
        "log:\n{}",
        msgs.join("\n")
    );
    // Nothing left pending for a next run.
    assert_eq!(journal_entries(&state), Vec::<String>::new());
}

// ---------------------------------------------------------------------------
// 2. kill -9 during Cmd_Timeout, then a restart.

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn kill9_during_cmd_timeout_overdue_stop_runs_at_restart() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7321, 7322, 7323],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP%\n\
             \tCmd_Timeout = 1\n\
             \tStop_Command = touch {p}/closed-%IP%\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(3), &[7321, 7322, 7323]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.3"));
    let state = dir.path().join("state");
    wait_journaled(&daemon, &state, &format!("touch {p}/closed-127.0.1.3"));
    let first = daemon.kill9();
    let closed = dir.path().join("closed-127.0.1.3");
    assert!(
        !closed.exists(),
        "closed before the kill:\n{}",
        first.join("\n")
    );
    // Let the stop become overdue while no daemon runs.
    std::thread::sleep(Duration::from_millis(1500));
    assert!(!closed.exists());

    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    daemon.wait_for_file(&closed);
    daemon.wait_for_line(
        &format!("door: running command: touch {p}/closed-127.0.1.3"),
        WAIT,
    );
    let msgs = this_run(&daemon.stop());
    assert_eq!(
        msgs[..4],
        lines(&[
            "starting up, listening on lo",
            &format!("restored 1 pending stop command(s) from {p}/state, 1 overdue"),
            "127.0.1.3: door: command timeout",
            &format!("door: running command: touch {p}/closed-127.0.1.3"),
        ])[..],
        "log:\n{}",
        msgs.join("\n")
    );
    assert_eq!(actions(&msgs).len(), 3, "log:\n{}", msgs.join("\n"));
    assert_eq!(journal_entries(&state), Vec::<String>::new());
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn kill9_and_restart_before_the_stop_is_due_keeps_its_time() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7331, 7332, 7333],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP%\n\
             \tCmd_Timeout = 4\n\
             \tStop_Command = touch {p}/closed-%IP%\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(4), &[7331, 7332, 7333]);
    let opened_marker = dir.path().join("opened-127.0.1.4");
    daemon.wait_for_file(&opened_marker);
    let state = dir.path().join("state");
    wait_journaled(&daemon, &state, &format!("touch {p}/closed-127.0.1.4"));
    daemon.kill9();

    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let restarted = SystemTime::now();
    let closed = dir.path().join("closed-127.0.1.4");
    daemon.wait_for_file(&closed);
    let msgs = this_run(&daemon.stop());
    assert_eq!(
        msgs[..4],
        lines(&[
            "starting up, listening on lo",
            &format!("restored 1 pending stop command(s) from {p}/state, 0 overdue"),
            "127.0.1.4: door: command timeout",
            &format!("door: running command: touch {p}/closed-127.0.1.4"),
        ])[..],
        "log:\n{}",
        msgs.join("\n")
    );
    // Closed Cmd_Timeout after it opened: not at the restart, not later.
    let held = mtime(&closed)
        .duration_since(mtime(&opened_marker))
        .expect("closed after opened");
    assert!(
        held >= Duration::from_millis(3900) && held < Duration::from_millis(5500),
        "door held open {held:?} with Cmd_Timeout = 4"
    );
    let after_restart = mtime(&closed).duration_since(restarted).unwrap_or_default();
    assert!(
        after_restart >= Duration::from_secs(2),
        "stop ran {after_restart:?} after the restart: not rescheduled"
    );
}

// ---------------------------------------------------------------------------
// 3. A slow command neither delays knocks nor keeps shutdown waiting long.

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn a_sleeping_command_does_not_delay_the_next_knock_and_shutdown_is_bounded() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = format!(
        "{}{}",
        door("A", [7341, 7342, 7343], "\tStart_Command = sleep 30\n"),
        door(
            "B",
            [7351, 7352, 7353],
            &format!("\tStart_Command = touch {p}/opened-%IP%\n")
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(5), &[7341, 7342, 7343]);
    let knocked = Instant::now();
    inj.knock_from(src(5), &[7351, 7352, 7353]);
    daemon.wait_for_line("127.0.1.5: B: OPEN SESAME", WAIT);
    let seen = knocked.elapsed();
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.5"));
    let ran = knocked.elapsed();
    assert!(
        seen < Duration::from_secs(1) && ran < Duration::from_secs(1),
        "B's knock took {seen:?} to open and {ran:?} to run its command behind A's sleep"
    );
    // A's command: the daemon's child running `sleep`, leader of its own
    // process group; killed by the guard whatever happens.
    let daemon_pid = daemon.pid().as_raw();
    let (child, _, pgid, _) = processes()
        .into_iter()
        .find(|(_, ppid, _, comm)| *ppid == daemon_pid && (comm == "sh" || comm == "sleep"))
        .expect("A's command among the daemon's children");
    assert_eq!(pgid, child, "a command is not its own process group");
    let _guard = GroupGuard(Pid::from_raw(pgid));

    let t = daemon.terminate();
    let elapsed = t.elapsed;
    let msgs = t.assert_clean();
    assert!(
        elapsed >= Duration::from_millis(9500) && elapsed < Duration::from_secs(12),
        "shutdown took {elapsed:?}; it waits 10 s for commands"
    );
    let mut expected = opened("127.0.1.5", "A", 3, "sleep 30");
    expected.extend(opened(
        "127.0.1.5",
        "B",
        3,
        &format!("touch {p}/opened-127.0.1.5"),
    ));
    expected.push("A: command still running at shutdown, left running: sleep 30".into());
    assert_eq!(actions(&msgs), expected);
    // Left running, as logged.
    assert!(
        kill(Pid::from_raw(-pgid), None).is_ok(),
        "A's command did not outlive the daemon"
    );
}

// ---------------------------------------------------------------------------
// 4. How commands ended.

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn non_zero_exit_and_death_by_signal_are_logged() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let conf = format!(
        "{}{}",
        door("three", [7361, 7362, 7363], "\tStart_Command = exit 3\n"),
        door(
            "killed",
            [7371, 7372, 7373],
            "\tStart_Command = kill -9 $$\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(6), &[7361, 7362, 7363]);
    daemon.wait_for_line("three: command returned non-zero status code (3)", WAIT);
    inj.knock_from(src(6), &[7371, 7372, 7373]);
    daemon.wait_for_line("killed: command killed by signal 9", WAIT);
    let msgs = daemon.stop();
    let mut expected = opened("127.0.1.6", "three", 3, "exit 3");
    expected.push("three: command returned non-zero status code (3)".into());
    expected.extend(opened("127.0.1.6", "killed", 3, "kill -9 $$"));
    expected.push("killed: command killed by signal 9".into());
    assert_eq!(actions(&msgs), expected);
}

// ---------------------------------------------------------------------------
// 5. One-time sequences.

#[test]
#[ignore = "needs root: live capture on lo"]
fn one_time_sequences_are_used_up_in_place_across_restarts_and_ipv6() {
    require_root("live capture on lo");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let otp = dir.path().join("otp");
    // An invalid line before the second sequence: knockd 0.8 then marks
    // the wrong line.
    fs::write(
        &otp,
        "7381,7382,7383\n7000,abc\n7384,7385,7386\n7387,7388,7389\n",
    )
    .unwrap();
    fs::set_permissions(&otp, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
    // `probe` is the sentinel: once it opened, every earlier knock was
    // judged.
    let conf = format!(
        "[otp]\n\
         \tOne_Time_Sequences = {p}/otp\n\
         \tSeq_Timeout = 20\n\
         \tTCPFlags = syn\n\
         \tStart_Command = touch {p}/opened-%IP%\n\
         [probe]\n\
         \tSequence = 7391,7392\n\
         \tTCPFlags = syn\n\
         \tStart_Command = true\n"
    );
    let text = || fs::read_to_string(&otp).unwrap();
    let otp_opened = |ip: &str| opened(ip, "otp", 3, &format!("touch {p}/opened-{ip}"));
    let probe = |ip: &str| opened(ip, "probe", 2, "true");
    let skipped = format!("warning: {p}/otp:2: port \"abc\" is not a number; line skipped");

    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    knock(None, &["127.0.0.1", "7381", "7382", "7383"]);
    daemon.wait_for_line("127.0.0.1: otp: OPEN SESAME", WAIT);
    wait_for(
        "the first sequence marked used",
        WAIT,
        || format!("{:?}", text()),
        || text().starts_with('#'),
    );
    assert_eq!(
        text(),
        "#381,7382,7383\n7000,abc\n7384,7385,7386\n7387,7388,7389\n"
    );
    // Used: no longer opens (not even a Stage 1).
    knock(None, &["127.0.0.1", "7381", "7382", "7383"]);
    knock(None, &["127.0.0.1", "7391", "7392"]);
    daemon.wait_for_line("127.0.0.1: probe: OPEN SESAME", WAIT);
    daemon.wait_for_line("probe: running command: true", WAIT);
    let msgs = daemon.stop();
    let mut expected = otp_opened("127.0.0.1");
    // Looking for the next sequence passes the invalid line.
    expected.push(skipped.clone());
    expected.extend(probe("127.0.0.1"));
    assert_eq!(actions(&msgs), expected);

    // A restart reads the file afresh: the second sequence is live.
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    knock(None, &["127.0.0.1", "7384", "7385", "7386"]);
    daemon.wait_for_line("127.0.0.1: otp: OPEN SESAME", WAIT);
    wait_for(
        "the second sequence marked used",
        WAIT,
        || format!("{:?}", text()),
        || text().contains("#384"),
    );
    assert_eq!(
        text(),
        "#381,7382,7383\n7000,abc\n#384,7385,7386\n7387,7388,7389\n"
    );
    // The third over IPv6: the capture filter follows the new sequence.
    knock(None, &["-6", "::1", "7387", "7388", "7389"]);
    let last =
        "no more sequences left in the one time sequences file for door otp --> disabling the door";
    daemon.wait_for_line(last, WAIT);
    daemon.wait_for_file(&dir.path().join("opened-::1"));
    assert_eq!(
        text(),
        "#381,7382,7383\n7000,abc\n#384,7385,7386\n#387,7388,7389\n"
    );
    // The door is disabled, the daemon serves on.
    knock(None, &["-6", "::1", "7387", "7388", "7389"]);
    knock(None, &["127.0.0.1", "7391", "7392"]);
    daemon.wait_for_line("probe: running command: true", WAIT);
    let msgs = this_run(&daemon.stop());
    let mut expected = otp_opened("127.0.0.1");
    // The invalid line is behind the used ones now: reported once (at
    // startup, on stderr), never again in the log.
    expected.extend(otp_opened("::1"));
    expected.push(last.to_string());
    expected.extend(probe("127.0.0.1"));
    assert_eq!(actions(&msgs), expected, "log:\n{}", msgs.join("\n"));
}

// ---------------------------------------------------------------------------
// 6. SIGHUP.

/// The daemon logs `re-reading config file` before it parses and applies
/// the new config (same loop pass, before READY=1); give that pass a moment.
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn sighup_rereads_a_changed_config() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let old = door(
        "door",
        [7401, 7402, 7403],
        &format!("\tStart_Command = touch {p}/old-%IP%\n"),
    );
    let new = door(
        "door",
        [7404, 7405, 7406],
        &format!("\tStart_Command = touch {p}/new-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &old);
    let conf = write_config(dir.path(), &new);
    daemon.signal(Signal::SIGHUP);
    daemon.wait_for_line(&format!("re-reading config file: {}", conf.display()), WAIT);
    settle();
    let mut inj = Injector::lo();
    inj.knock_from(src(7), &[7401, 7402, 7403]);
    inj.knock_from(src(7), &[7404, 7405, 7406]);
    daemon.wait_for_file(&dir.path().join("new-127.0.1.7"));
    let msgs = daemon.stop();
    let mut expected = vec![format!("re-reading config file: {}", conf.display())];
    expected.extend(opened(
        "127.0.1.7",
        "door",
        3,
        &format!("touch {p}/new-127.0.1.7"),
    ));
    assert_eq!(actions(&msgs), expected);
    assert!(!dir.path().join("old-127.0.1.7").exists());
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn sighup_with_a_broken_config_keeps_the_running_one() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let good = door(
        "door",
        [7411, 7412, 7413],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &good);
    // Lines 1-2 are `[options]` and the StateFile the harness adds.
    let conf = write_config(
        dir.path(),
        "[door]\n\tSequence = 7414,abc\n\tSeq_Timeout = zz\n\tStart_Command = true\n",
    );
    let c = conf.display().to_string();
    daemon.signal(Signal::SIGHUP);
    let kept = format!("{c}: 2 error(s); keeping the running configuration");
    daemon.wait_for_line(&kept, WAIT);
    settle();
    let mut inj = Injector::lo();
    inj.knock_from(src(8), &[7411, 7412, 7413]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.8"));
    let msgs = daemon.stop();
    let mut expected = lines(&[
        &format!("re-reading config file: {c}"),
        &format!("config error: {c}:4: Sequence: port \"abc\" is not a number"),
        &format!("config error: {c}:5: Seq_Timeout: \"zz\" is not a number of seconds"),
        &kept,
    ]);
    expected.extend(opened(
        "127.0.1.8",
        "door",
        3,
        &format!("touch {p}/opened-127.0.1.8"),
    ));
    assert_eq!(actions(&msgs), expected);
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn sighup_after_logrotate_writes_a_new_log_file() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7421, 7422, 7423],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(9), &[7421, 7422, 7423]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.9"));
    let log = daemon.log_path().to_path_buf();
    let rotated = dir.path().join("knockd.log.1");
    fs::rename(&log, &rotated).expect("rotate the log");
    daemon.signal(Signal::SIGHUP);
    // As knockd 0.8: `re-reading config file` still goes to the old file,
    // then the log is reopened, creating the new one.
    let conf_path = dir.path().join("knockd.conf");
    let reread = format!("re-reading config file: {}", conf_path.display());
    let old_msgs = || -> Vec<String> {
        fs::read_to_string(&rotated)
            .unwrap()
            .lines()
            .map(|l| message_of(l).to_string())
            .collect()
    };
    wait_for(
        "a new log file",
        WAIT,
        || old_msgs().join("\n"),
        || log.exists(),
    );
    inj.knock_from(src(10), &[7421, 7422, 7423]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.10"));
    let new_log = daemon.stop();

    let mut expected = vec!["starting up, listening on lo".to_string()];
    expected.extend(opened(
        "127.0.1.9",
        "door",
        3,
        &format!("touch {p}/opened-127.0.1.9"),
    ));
    expected.push(reread);
    assert_eq!(old_msgs(), expected);
    let mut expected = opened(
        "127.0.1.10",
        "door",
        3,
        &format!("touch {p}/opened-127.0.1.10"),
    );
    // The capture statistics and `shutting down` (checked by stop()).
    expected.push(new_log[new_log.len() - 2].clone());
    expected.push("shutting down".into());
    assert_eq!(new_log, expected);
}

// ---------------------------------------------------------------------------
// 7. -d

/// A daemon that detached itself; SIGKILLed on drop unless seen to exit.
struct Detached {
    pid: Pid,
    gone: bool,
}

impl Detached {
    fn is_gone(&self) -> bool {
        // Reparented away from us: it may linger as a zombie until init
        // reaps it.
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid));
        match stat {
            Err(_) => true,
            Ok(s) => s
                .rfind(')')
                .is_some_and(|i| s[i + 2..].starts_with('Z') || s[i + 2..].starts_with('X')),
        }
    }
}

impl Drop for Detached {
    fn drop(&mut self) {
        if !self.gone && !self.is_gone() {
            let _ = kill(self.pid, Signal::SIGKILL);
        }
    }
}

fn knockd_d(args: &[&Path]) -> std::process::Output {
    run_bounded(Command::new(KNOCKD).args(args), Duration::from_secs(15))
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn detach_returns_when_capturing_locks_the_pid_file_and_reports_failures() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = write_config(
        dir.path(),
        &door(
            "door",
            [7431, 7432, 7433],
            &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
        ),
    );
    let pid_file = dir.path().join("knockd.pid");
    let log = dir.path().join("knockd.log");
    let messages = || -> Vec<String> {
        fs::read_to_string(&log)
            .unwrap_or_default()
            .lines()
            .map(|l| message_of(l).to_string())
            .collect()
    };
    let mut inj = Injector::lo();
    let arg = |s: &str| PathBuf::from(s);
    let out = knockd_d(&[
        &arg("-d"),
        &arg("-p"),
        &pid_file,
        &arg("-i"),
        &arg("lo"),
        &arg("-c"),
        &conf,
        &arg("-g"),
        &log,
    ]);
    // The very next packets are seen: it returned once capturing.
    inj.knock_from(src(11), &[7431, 7432, 7433]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "knockd -d: {} {stderr}", out.status);
    assert_eq!(stderr, "");
    let pid_text = fs::read_to_string(&pid_file).expect("pid file");
    let pid: i32 = pid_text.trim().parse().expect("a pid in the pid file");
    let mut daemon = Detached {
        pid: Pid::from_raw(pid),
        gone: false,
    };
    assert_eq!(pid_text, format!("{pid}\n"));
    assert_eq!(
        fs::read_link(format!("/proc/{pid}/exe")).expect("daemon's exe"),
        fs::canonicalize(KNOCKD).unwrap()
    );
    let opened_marker = dir.path().join("opened-127.0.1.11");
    wait_for(
        "the knock right after -d returned",
        WAIT,
        || messages().join("\n"),
        || opened_marker.exists(),
    );

    // A second -d on the same pid file.
    let second_log = dir.path().join("second.log");
    let out = knockd_d(&[
        &arg("-d"),
        &arg("-p"),
        &pid_file,
        &arg("-i"),
        &arg("lo"),
        &arg("-c"),
        &conf,
        &arg("-g"),
        &second_log,
    ]);
    assert_eq!(out.status.code(), Some(75), "{out:?}");
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "knockd: another knockd is running (pid {pid}, pid file {})\n",
            pid_file.display()
        )
    );
    assert_eq!(fs::read_to_string(&pid_file).unwrap(), pid_text);

    kill(daemon.pid, Signal::SIGTERM).expect("SIGTERM the detached knockd");
    wait_for(
        "the detached daemon's exit",
        Duration::from_secs(15),
        || messages().join("\n"),
        || daemon.is_gone(),
    );
    daemon.gone = true;
    assert!(!pid_file.exists(), "pid file left behind");
    let msgs = messages();
    assert_eq!(msgs.last().map(String::as_str), Some("shutting down"));
    assert_eq!(
        actions(&msgs),
        opened(
            "127.0.1.11",
            "door",
            3,
            &format!("touch {p}/opened-127.0.1.11")
        )
    );

    // A -d that cannot start: its error on the terminal, exit 73.
    let bad_pid = dir.path().join("bad.pid");
    let out = knockd_d(&[
        &arg("-d"),
        &arg("-p"),
        &bad_pid,
        &arg("-i"),
        &arg("lo"),
        &arg("-c"),
        &conf,
        &arg("-g"),
        &arg("/nonexistent/dir/log"),
    ]);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(73), "{out:?}");
    assert_eq!(stderr.lines().count(), 1, "{stderr:?}");
    assert!(
        stderr.starts_with("knockd: cannot open log file /nonexistent/dir/log: "),
        "{stderr:?}"
    );
    assert!(!bad_pid.exists(), "pid file of a daemon that never started");
}

// ---------------------------------------------------------------------------
// 8. LogRate.

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn a_first_port_flood_is_summarised_and_a_real_knock_still_opens() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = format!(
        "[options]\n\tLogRate = 5\n{}",
        door(
            "flood",
            [7441, 7442, 7443],
            &format!("\tStart_Command = touch {p}/opened-%IP%\n")
        )
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    const N: usize = 300;
    let begin = Instant::now();
    for i in 0..N {
        let (hi, lo) = ((i / 250) as u8, (i % 250) as u8 + 1);
        inj.tcp_from(Ipv4Addr::new(127, 2, hi, lo), 7441, support::Flags::Syn);
        assert!(begin.elapsed() < Duration::from_secs(2), "flood too slow");
    }
    let took = begin.elapsed();
    assert!(took < Duration::from_millis(500), "flood took {took:?}");
    let is_summary = |m: &String| {
        m.starts_with("flood: ")
            && m.ends_with(
                " stage and sequence timeout lines not logged in the last second (more than 5/s)",
            )
    };
    daemon.wait_until("the flood summary", WAIT, |msgs| {
        msgs.iter().any(is_summary)
    });
    // After the summary a new window starts: the real knock is logged whole.
    inj.knock_from(src(12), &[7441, 7442, 7443]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.12"));
    let msgs = daemon.stop();

    let acts = actions(&msgs);
    let stages = acts
        .iter()
        .filter(|m| m.starts_with("127.2.") && m.ends_with(": flood: Stage 1"))
        .count();
    let summaries: Vec<&String> = acts.iter().filter(|m| is_summary(m)).collect();
    let summary = format!(
        "flood: {} stage and sequence timeout lines not logged in the last second (more than 5/s)",
        N - 5
    );
    assert_eq!(
        (stages, summaries),
        (5, vec![&summary]),
        "log:\n{}",
        msgs.join("\n")
    );
    // The 5 stage lines, the summary, then the real knock.
    assert_eq!(acts[5], summary);
    assert_eq!(
        acts[6..],
        opened(
            "127.0.1.12",
            "flood",
            3,
            &format!("touch {p}/opened-127.0.1.12")
        )[..]
    );
    let stats = &msgs[msgs.len() - 2];
    assert!(
        stats.starts_with("lo: ") && stats.contains(" 0 dropped by the kernel"),
        "{stats}"
    );
}

// ---------------------------------------------------------------------------
// 9. -l

#[test]
#[ignore = "needs root: live capture on lo"]
fn lookup_adds_host_names() {
    require_root("live capture on lo");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7451, 7452, 7453],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP%\n\
             \tCmd_Timeout = 1\n\
             \tStop_Command = touch {p}/closed-%IP%\n"
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo", "-l"], &conf);
    knock(None, &["127.0.0.1", "7451", "7452", "7453"]);
    daemon.wait_for_line("127.0.0.1 (localhost): door: command timeout", WAIT);
    daemon.wait_for_file(&dir.path().join("closed-127.0.0.1"));
    let msgs = daemon.stop();
    let h = "127.0.0.1 (localhost)";
    let mut expected = opened(h, "door", 3, &format!("touch {p}/opened-127.0.0.1"));
    expected.push(format!("{h}: door: command timeout"));
    expected.push(format!("door: running command: touch {p}/closed-127.0.0.1"));
    assert_eq!(actions(&msgs), expected);
}

// ---------------------------------------------------------------------------
// 10. UseSyslog

/// A syslog receiver at /dev/log for one test: bound at /dev/log itself
/// when this machine has none (removed on drop), else bound in the test's
/// directory and mounted over /dev/log in a private mount namespace the
/// daemon runs in. Tests holding one are serialised by a lock file.
struct SyslogSink {
    sock: UnixDatagram,
    launch: Vec<String>,
    remove: Option<PathBuf>,
    _lock: fs::File,
}

const DEV_LOG: &str = "/dev/log";

impl SyslogSink {
    fn new(dir: &Path) -> SyslogSink {
        let lock = fs::File::create("/tmp/knockd-rs-tests-dev-log.lock").expect("lock file");
        let deadline = Instant::now() + Duration::from_secs(60);
        use std::os::fd::AsRawFd;
        // SAFETY: flock on a descriptor we own.
        while unsafe { libc::flock(lock.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) } != 0 {
            assert!(Instant::now() < deadline, "/dev/log lock held for 60 s");
            std::thread::sleep(Duration::from_millis(50));
        }
        if fs::symlink_metadata(DEV_LOG).is_err() {
            let sock = UnixDatagram::bind(DEV_LOG).expect("bind /dev/log");
            SyslogSink {
                sock,
                launch: Vec::new(),
                remove: Some(PathBuf::from(DEV_LOG)),
                _lock: lock,
            }
        } else {
            let path = dir.join("dev-log");
            let sock = UnixDatagram::bind(&path).expect("bind the test's syslog socket");
            let script = format!("mount --bind \"$0\" {DEV_LOG} && exec \"$@\"");
            SyslogSink {
                sock,
                launch: vec![
                    "unshare".into(),
                    "--mount".into(),
                    "--propagation".into(),
                    "private".into(),
                    "sh".into(),
                    "-c".into(),
                    script,
                    path.display().to_string(),
                ],
                remove: None,
                _lock: lock,
            }
        }
    }

    fn launch(&self) -> Launch<'static> {
        if self.launch.is_empty() {
            Launch::Direct
        } else {
            Launch::Wrapped(self.launch.clone())
        }
    }

    /// Every datagram received so far.
    fn received(&self) -> Vec<String> {
        self.sock.set_nonblocking(true).unwrap();
        let mut out = Vec::new();
        let mut buf = vec![0u8; 8192];
        for _ in 0..10_000 {
            match self.sock.recv(&mut buf) {
                Ok(n) => out.push(String::from_utf8_lossy(&buf[..n]).into_owned()),
                Err(_) => break,
            }
        }
        out
    }
}

impl Drop for SyslogSink {
    fn drop(&mut self) {
        if let Some(path) = &self.remove {
            let _ = fs::remove_file(path);
        }
    }
}

#[test]
#[ignore = "needs root: live capture on lo, a syslog socket at /dev/log"]
fn use_syslog_sends_every_message_as_knockd_daemon_notice() {
    require_root("live capture on lo, a syslog socket at /dev/log");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let sink = SyslogSink::new(dir.path());
    let conf = format!(
        "[options]\n\tUseSyslog\n{}",
        door(
            "door",
            [7461, 7462, 7463],
            &format!("\tStart_Command = touch {p}/opened-%IP%\n")
        )
    );
    let mut daemon = Daemon::launch(dir.path(), sink.launch(), &["-i", "lo"], &conf);
    let pid = daemon.pid();
    knock(None, &["127.0.0.1", "7461", "7462", "7463"]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.1"));
    let msgs = daemon.stop();
    let datagrams = sink.received();
    // `<PRI>Mmm dd hh:mm:ss knockd[PID]: msg`, PRI = daemon(3)*8 + notice(5).
    let tag = format!(" knockd[{pid}]: ");
    let got: Vec<String> = datagrams
        .iter()
        .map(|d| {
            assert!(d.starts_with("<29>"), "not daemon.notice: {d:?}");
            let at = d.find(&tag).unwrap_or_else(|| panic!("no {tag:?}: {d:?}"));
            d[at + tag.len()..].trim_end_matches('\n').to_string()
        })
        .collect();
    assert_eq!(got, msgs);
    assert!(msgs.contains(&"127.0.0.1: door: OPEN SESAME".to_string()));
}

// ---------------------------------------------------------------------------
// 11. Interfaces: several at once, late, down and up, new addresses.

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn two_interfaces_at_once() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("two-s");
    let cli = Netns::new("two-c");
    Veth {
        a: (&srv, "kd-a", "02:00:00:00:01:01", "198.51.100.1/24"),
        b: (&cli, "kd-ca", "02:00:00:00:01:02", "198.51.100.2/24"),
    }
    .create();
    Veth {
        a: (&srv, "kd-b", "02:00:00:00:02:01", "203.0.113.1/24"),
        b: (&cli, "kd-cb", "02:00:00:00:02:02", "203.0.113.2/24"),
    }
    .create();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7471, 7472, 7473],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &["-i", "kd-a", "-i", "kd-b"], &conf);
    knock(Some(&cli), &["198.51.100.1", "7471", "7472", "7473"]);
    daemon.wait_for_file(&dir.path().join("opened-198.51.100.2"));
    knock(Some(&cli), &["203.0.113.1", "7471", "7472", "7473"]);
    daemon.wait_for_file(&dir.path().join("opened-203.0.113.2"));
    let msgs = daemon.stop();
    assert_eq!(msgs[0], "starting up, listening on kd-a,kd-b");
    let mut expected = Vec::new();
    for ip in ["198.51.100.2", "203.0.113.2"] {
        expected.extend(opened(ip, "door", 3, &format!("touch {p}/opened-{ip}")));
    }
    assert_eq!(actions(&msgs), expected);
}

/// Checks that `wanted` occur in `msgs` in this order (other lines may
/// come between). An entry ending in `*` matches by prefix, one starting
/// with `*` by suffix.
fn assert_in_order(msgs: &[String], wanted: &[String]) {
    let mut it = msgs.iter();
    for w in wanted {
        let hit = |m: &String| {
            if let Some(prefix) = w.strip_suffix('*') {
                m.starts_with(prefix)
            } else if let Some(suffix) = w.strip_prefix('*') {
                m.ends_with(suffix)
            } else {
                m == w
            }
        };
        assert!(
            it.any(hit),
            "{w:?} missing (or out of order) in:\n{}",
            msgs.join("\n")
        );
    }
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn an_interface_that_comes_late_goes_down_and_changes_address() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let srv = Netns::new("late-s");
    let cli = Netns::new("late-c");
    let dir = test_dir();
    let p = d(dir.path());
    let conf = door(
        "door",
        [7481, 7482, 7483],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&srv), &["-i", "kd-late"], &conf);
    daemon.wait_for_line(
        "interface kd-late does not exist (yet); waiting for it",
        WAIT,
    );
    std::thread::sleep(Duration::from_secs(2));
    Veth {
        a: (&srv, "kd-late", "02:00:00:00:03:01", "192.0.2.1/24"),
        b: (&cli, "kd-clate", "02:00:00:00:03:02", "192.0.2.2/24"),
    }
    .create();
    daemon.wait_for_line("listening on kd-late", WAIT);
    let open_line = "192.0.2.2: door: OPEN SESAME";
    let opens = |n: usize| move |msgs: &[String]| count(msgs, open_line) == n;
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    daemon.wait_until("the first knock", WAIT, opens(1));

    // Down and up again. The capture survives a down interface (the
    // kernel keeps the packet socket bound to it), so there is nothing to
    // reopen.
    srv.ip(&["link", "set", "kd-late", "down"]);
    std::thread::sleep(Duration::from_millis(300));
    srv.ip(&["link", "set", "kd-late", "up"]);
    support::wait_link_up(&srv, "kd-late");
    support::wait_link_up(&cli, "kd-clate");
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    daemon.wait_until("the knock after down/up", WAIT, opens(2));

    // A new address: knocks to it count, knocks to the old one do not.
    srv.ip(&["addr", "del", "192.0.2.1/24", "dev", "kd-late"]);
    srv.ip(&["addr", "add", "192.0.2.11/24", "dev", "kd-late"]);
    daemon.wait_until("the new address", WAIT, |msgs| {
        msgs.iter().any(|m| {
            m.starts_with("addresses of kd-late: ")
                && m.split(' ').any(|a| a == "192.0.2.11")
                && !m.split(' ').any(|a| a == "192.0.2.1")
        })
    });
    settle();
    knock(Some(&cli), &["192.0.2.1", "7481", "7482", "7483"]);
    knock(Some(&cli), &["192.0.2.11", "7481", "7482", "7483"]);
    daemon.wait_until("the knock to the new address", WAIT, opens(3));
    let msgs = daemon.stop();

    let cmd = format!("touch {p}/opened-192.0.2.2");
    let mut wanted = lines(&[
        "starting up, listening on kd-late",
        "interface kd-late does not exist (yet); waiting for it",
        "listening on kd-late",
    ]);
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    wanted.push("addresses of kd-late: *".into());
    wanted.extend(opened("192.0.2.2", "door", 3, &cmd));
    assert_in_order(&msgs, &wanted);
    // Exactly three knocks counted: the one to the old address did nothing.
    let knock_lines: Vec<&String> = msgs
        .iter()
        .filter(|m| m.starts_with("192.0.2.2: "))
        .collect();
    assert_eq!(knock_lines.len(), 12, "log:\n{}", msgs.join("\n"));
}
