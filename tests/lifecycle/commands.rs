//! Slow commands, how commands ended, one-time sequences.

use super::*;

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
    // The file is marked a moment before that filter is installed, so a
    // knock sent the instant the mark shows can still meet the old filter:
    // knock again (a repeated first port starts over) until it is judged.
    let last =
        "no more sequences left in the one time sequences file for door otp --> disabling the door";
    for _ in 0..3 {
        knock(None, &["-6", "::1", "7387", "7388", "7389"]);
        let until = std::time::Instant::now() + Duration::from_secs(3);
        while std::time::Instant::now() < until && !daemon.messages().iter().any(|m| m == last) {
            std::thread::sleep(Duration::from_millis(20));
        }
        if daemon.messages().iter().any(|m| m == last) {
            break;
        }
    }
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
