//! SIGHUP and -d.

use super::*;

// ---------------------------------------------------------------------------
// 6. SIGHUP.

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
