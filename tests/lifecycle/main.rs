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

#[path = "../support/mod.rs"]
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

mod commands;
mod interfaces;
mod journal;
mod logging;
mod signals;

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
    let contents = knockd::daemon::journal::read(path).unwrap_or_default();
    assert!(contents.problems.is_empty(), "{:?}", contents.problems);
    contents
        .stops
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

/// The daemon logs `re-reading config file` before it parses and applies
/// the new config (same loop pass, before READY=1); give that pass a moment.
fn settle() {
    std::thread::sleep(Duration::from_millis(100));
}
