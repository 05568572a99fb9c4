//! LogRate, -l and UseSyslog.

use super::*;

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
// 11. LogFormat = json

/// `YYYY-MM-DDTHH:MM:SS.mmm+HH:MM` (RFC 3339, milliseconds, local offset).
fn is_rfc3339_millis(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 29
        && b.iter().enumerate().all(|(i, &c)| match i {
            4 | 7 => c == b'-',
            10 => c == b'T',
            13 | 16 | 26 => c == b':',
            19 => c == b'.',
            23 => c == b'+' || c == b'-',
            _ => c.is_ascii_digit(),
        })
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn log_format_json_writes_one_object_per_line_with_the_text_line_as_message() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    // Quotes and a backslash in the command: the JSON escaper's work.
    let door_conf = door(
        "jdoor",
        [7561, 7562, 7563],
        &format!(
            "\tStart_Command = touch {p}/opened-%IP% && echo \"a\\b\" >/dev/null\n\
             \tCmd_Timeout = 1\n\
             \tStop_Command = touch {p}/closed-%IP%\n"
        ),
    );
    let ip = src(40).to_string();
    let scenario = |json: bool| -> (Vec<String>, String, String) {
        let _ = fs::remove_file(dir.path().join(format!("opened-{ip}")));
        let _ = fs::remove_file(dir.path().join(format!("closed-{ip}")));
        let conf = if json {
            format!("[options]\n\tLogFormat = json\n{door_conf}")
        } else {
            door_conf.clone()
        };
        let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo", "-v"], &conf);
        let mut inj = Injector::lo();
        inj.knock_from(src(40), &[7561, 7562, 7563]);
        daemon.wait_for_file(&dir.path().join(format!("closed-{ip}")));
        let log = daemon.log_path().to_path_buf();
        let stdout_path = dir.path().join("knockd.stdout");
        let msgs = daemon.stop();
        let text = fs::read_to_string(&log).unwrap();
        let stdout = fs::read_to_string(&stdout_path).unwrap();
        fs::rename(
            &log,
            dir.path().join(if json { "json.log" } else { "text.log" }),
        )
        .unwrap();
        (msgs, text, stdout)
    };
    let (text_msgs, _, _) = scenario(false);
    let (json_msgs, json_text, json_stdout) = scenario(true);
    // The same scenario says the same things, word for word.
    assert_eq!(json_msgs, text_msgs);
    assert!(text_msgs.contains(&format!("{ip}: jdoor: OPEN SESAME")));
    // -v: stdout carries the same objects as the file.
    assert_eq!(json_stdout, json_text);

    let objects: Vec<support::json::Json> = json_text
        .lines()
        .map(|l| support::json::parse(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    assert_eq!(objects.len(), text_msgs.len());
    let mut events = Vec::new();
    for (o, text) in objects.iter().zip(&text_msgs) {
        let keys = o.keys();
        assert_eq!(keys[..2], ["time", "event"], "{o:?}");
        assert_eq!(keys.last(), Some(&"message"), "{o:?}");
        assert!(is_rfc3339_millis(o.str("time").unwrap()), "{o:?}");
        let event = o.str("event").unwrap();
        assert!(
            !event.is_empty() && event.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
            "{event:?}"
        );
        assert_eq!(o.str("message"), Some(text.as_str()));
        let has_ip = text.starts_with(&format!("{ip}: "));
        assert_eq!(o.str("ip"), has_ip.then_some(ip.as_str()), "{o:?}");
        let has_door = text.contains("jdoor: ");
        assert_eq!(o.str("door"), has_door.then_some("jdoor"), "{o:?}");
        assert_eq!(o.get("user"), None, "no per-user keys yet");
        events.push(event.to_string());
    }
    let start = format!("touch {p}/opened-{ip} && echo \"a\\b\" >/dev/null");
    let stage2 = objects
        .iter()
        .find(|o| o.str("message") == Some(&format!("{ip}: jdoor: Stage 2")))
        .unwrap();
    assert_eq!(stage2.str("event"), Some("stage"));
    assert_eq!(
        stage2.get("stage"),
        Some(&support::json::Json::Num("2".into()))
    );
    let run = objects
        .iter()
        .find(|o| o.str("command") == Some(start.as_str()))
        .unwrap_or_else(|| panic!("no command {start:?}:\n{json_text}"));
    assert_eq!(run.str("event"), Some("running_command"));
    assert_eq!(
        events,
        [
            "starting_up",
            "stage",
            "stage",
            "stage",
            "open_sesame",
            "running_command",
            "command_timeout",
            "running_command",
            "capture_stats",
            "shutting_down"
        ],
        "{json_text}"
    );
}

// ---------------------------------------------------------------------------
// 12. journald, natively

/// Fields of a journal native-protocol datagram: `KEY=value\n`, or `KEY\n`,
/// a 64-bit little-endian length, the value and `\n`.
fn journal_fields(mut d: &[u8]) -> Vec<(String, String)> {
    let mut out = Vec::new();
    while !d.is_empty() {
        let nl = d.iter().position(|&b| b == b'\n').expect("field ends");
        let line = &d[..nl];
        if let Some(eq) = line.iter().position(|&b| b == b'=') {
            out.push((
                String::from_utf8_lossy(&line[..eq]).into_owned(),
                String::from_utf8_lossy(&line[eq + 1..]).into_owned(),
            ));
            d = &d[nl + 1..];
        } else {
            let rest = &d[nl + 1..];
            let len = u64::from_le_bytes(rest[..8].try_into().unwrap()) as usize;
            out.push((
                String::from_utf8_lossy(line).into_owned(),
                String::from_utf8_lossy(&rest[8..8 + len]).into_owned(),
            ));
            assert_eq!(rest[8 + len], b'\n');
            d = &rest[8 + len + 1..];
        }
    }
    out
}

#[test]
#[ignore = "needs root: packet injection, live capture on lo, a mount namespace"]
fn under_systemd_each_line_goes_to_the_journal_once_with_fields() {
    use std::os::unix::fs::MetadataExt;
    require_root("packet injection, live capture on lo, a mount namespace");
    let dir = test_dir();
    let p = d(dir.path());
    // A journal socket in the test's directory, mounted (in a private
    // mount namespace, over a tmpfs /run) where journald's would be.
    let jdir = dir.path().join("journal");
    fs::create_dir(&jdir).unwrap();
    let sink = UnixDatagram::bind(jdir.join("socket")).expect("bind the journal socket");
    // systemd's $JOURNAL_STREAM: the device and inode of stdout, which
    // Daemon::launch reopens (truncates) in place.
    let stdout = dir.path().join("knockd.stdout");
    fs::write(&stdout, "").unwrap();
    let meta = fs::metadata(&stdout).unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let script = format!(
        "mount -t tmpfs tmpfs /run && mkdir -p /run/systemd/journal && \
         mount --bind \"$0\" /run/systemd/journal && \
         JOURNAL_STREAM={stream} exec \"$@\""
    );
    let launch = Launch::Wrapped(vec![
        "unshare".into(),
        "--mount".into(),
        "--propagation".into(),
        "private".into(),
        "sh".into(),
        "-c".into(),
        script,
        jdir.display().to_string(),
    ]);
    let conf = door(
        "jrnl",
        [7571, 7572, 7573],
        &format!("\tStart_Command = touch {p}/opened-%IP%\n"),
    );
    let mut daemon = Daemon::launch(dir.path(), launch, &["-i", "lo", "-v"], &conf);
    let mut inj = Injector::lo();
    inj.knock_from(src(41), &[7571, 7572, 7573]);
    daemon.wait_for_file(&dir.path().join("opened-127.0.1.41"));
    let msgs = daemon.stop();

    sink.set_nonblocking(true).unwrap();
    let mut entries = Vec::new();
    let mut buf = vec![0u8; 65536];
    while let Ok(n) = sink.recv(&mut buf) {
        entries.push(journal_fields(&buf[..n]));
        assert!(entries.len() < 1000);
    }
    let field = |e: &[(String, String)], k: &str| {
        e.iter().find(|(key, _)| key == k).map(|(_, v)| v.clone())
    };
    // Every line once, in order, the text line as MESSAGE.
    let messages: Vec<String> = entries
        .iter()
        .map(|e| field(e, "MESSAGE").expect("MESSAGE"))
        .collect();
    assert_eq!(messages, msgs);
    for e in &entries {
        assert_eq!(field(e, "PRIORITY").as_deref(), Some("5"));
        assert_eq!(field(e, "SYSLOG_IDENTIFIER").as_deref(), Some("knockd"));
        assert!(field(e, "KNOCKD_EVENT").is_some(), "{e:?}");
    }
    let open = entries
        .iter()
        .find(|e| field(e, "KNOCKD_EVENT").as_deref() == Some("open_sesame"))
        .expect("an open_sesame entry");
    assert_eq!(field(open, "KNOCKD_IP").as_deref(), Some("127.0.1.41"));
    assert_eq!(field(open, "KNOCKD_DOOR").as_deref(), Some("jrnl"));
    // ... and not a second time as text through stdout (the journal
    // stream): only knockd 0.8's own `-v` line is there.
    let out = fs::read_to_string(&stdout).unwrap();
    assert_eq!(out, "listening on lo...\n");
}
