//! The `knockd` binary as a user meets it: exit codes, what goes to stdout
//! and stderr, and that no input makes it panic.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

const EX_USAGE: i32 = 64;
const EX_CONFIG: i32 = 78;

/// Runs knockd to completion. Every case here must exit by itself; one
/// that would start serving instead is killed after 20 s and fails, rather
/// than hanging the suite.
fn knockd(args: &[&str]) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(args)
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run knockd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while child.try_wait().expect("wait for knockd").is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("knockd {args:?} did not exit within 20 s");
        }
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    child.wait_with_output().expect("collect knockd output")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Exit code, with both streams in the failure message.
fn code(o: &Output) -> i32 {
    assert!(
        !stderr(o).contains("panicked") && !stderr(o).contains("RUST_BACKTRACE"),
        "panic:\n{}",
        stderr(o)
    );
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {o:?}"))
}

fn sample() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("knockd.conf.sample")
}

/// A private config file (mode 0600, so no permission warning).
fn config_file(dir: &tempfile::TempDir, name: &str, bytes: &[u8]) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.path().join(name);
    let mut f = std::fs::File::create(&path).expect("create config");
    f.write_all(bytes).expect("write config");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    path
}

/// `--check`'s stdout without its `interface: ...` line, which must come
/// just before the verdict (it depends on this machine's interfaces when
/// the config names none).
fn without_interface(out: &str) -> String {
    let lines: Vec<&str> = out.lines().collect();
    let n = lines.len();
    assert!(
        n >= 2 && lines[n - 2].starts_with("interface: "),
        "no interface line before the verdict:\n{out}"
    );
    let mut kept: Vec<&str> = lines[..n - 2].to_vec();
    kept.push(lines[n - 1]);
    kept.iter().map(|l| format!("{l}\n")).collect()
}

/// Runs `knockd --check -c` on `text` and returns (code, stdout, stderr).
fn check(text: &[u8]) -> (i32, String, String, PathBuf, tempfile::TempDir) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config_file(&dir, "knockd.conf", text);
    let o = knockd(&["--check", "-c", path.to_str().expect("utf-8 path")]);
    (code(&o), stdout(&o), stderr(&o), path, dir)
}

#[test]
fn version() {
    for flag in ["-V", "--version"] {
        let o = knockd(&[flag]);
        assert_eq!(code(&o), 0);
        assert_eq!(
            stdout(&o),
            format!("knockd {}\n", env!("CARGO_PKG_VERSION"))
        );
        assert_eq!(stderr(&o), "");
    }
}

#[test]
fn help() {
    for flag in ["-h", "--help"] {
        let o = knockd(&[flag]);
        assert_eq!(code(&o), 0);
        let out = stdout(&o);
        assert!(out.contains("Usage: knockd [OPTIONS]"), "{out}");
        assert!(out.contains("-i, --interface <IF>"), "{out}");
        assert!(out.contains("--check"), "{out}");
        assert_eq!(stderr(&o), "");
    }
}

#[test]
fn unknown_flag_is_a_short_usage_error() {
    for args in [&["--bogus"][..], &["-x"], &["-c"], &["stray"], &["-i", ""]] {
        let o = knockd(args);
        assert_eq!(code(&o), EX_USAGE, "{args:?}");
        assert_eq!(stdout(&o), "");
        let err = stderr(&o);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.contains("--help"), "{err}");
        assert!(err.lines().count() <= 6, "not short: {err}");
    }
}

/// Issue 19 row 10: a rotating door a port scan opens is named at
/// `--check` (and at start: the same warnings go to stderr).
#[test]
fn check_warns_about_a_weak_rotating_door() {
    let (c, out, err, path, _dir) = check(
        b"[options]\n\tLogFile = /dev/null\n\n[rot]\n\tSequence_Secret = GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\
          \tSequence_Ports = 7000-7009\n\tSequence_Length = 1\n\tSequence_Skew = 3\n\
          \tCommand = /bin/true %IP%\n",
    );
    assert_eq!(c, 0, "{err}");
    let p = path.display();
    assert!(
        err.starts_with(&format!(
            "warning: {p}:4: door [rot]: weak rotating sequence: 10 ports taken 1 at a time give 10 sequences, 7 accepted at once (Sequence_Skew 3): about 2 tries per opening (under 2^32); raise Sequence_Length"
        )),
        "{err}"
    );
    assert!(out.ends_with("1 door OK, 1 warning\n"), "{out}");
}

#[test]
fn sample_config_checks_with_a_line_per_door() {
    let path = sample();
    let o = knockd(&["--check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0, "{}", stderr(&o));
    let out = stdout(&o);
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines.len(), 5, "{out}");
    assert_eq!(
        lines[0],
        "[openSSH] sequence 7000:tcp,8000:tcp,9000:tcp, seq_timeout 10s, tcpflags syn,!ack, \
         commands: start start_6 stop stop_6, cmd_timeout 15s"
    );
    assert_eq!(
        lines[1],
        "[closeSSH] sequence 9000:tcp,8000:tcp,7000:tcp, seq_timeout 10s, tcpflags syn, commands: start"
    );
    assert_eq!(
        lines[2],
        "[mixedUDP] sequence 2222:udp,3333:tcp,4444:udp, seq_timeout 15s, tcpflags any, \
         commands: start start_6=none"
    );
    assert_eq!(lines[3], "interface: lo (Interface)");
    assert!(
        lines[4].starts_with(&format!("{}: 3 doors OK", path.display())),
        "{}",
        lines[4]
    );
    // Only a permission warning is allowed: git checks the sample out 0644.
    for line in stderr(&o).lines() {
        assert!(line.contains("readable by others"), "{line}");
    }
}

#[test]
fn sample_config_with_tight_mode_has_no_warnings() {
    let dir = tempfile::tempdir().expect("temp dir");
    let text = std::fs::read(sample()).expect("read sample");
    let path = config_file(&dir, "sample.conf", &text);
    let o = knockd(&["--check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0);
    assert_eq!(stderr(&o), "");
    assert!(stdout(&o).ends_with(&format!("{}: 3 doors OK\n", path.display())));
}

#[test]
fn sample_config_shows_every_directive() {
    let text = std::fs::read_to_string(sample()).expect("read sample");
    // Keys of `key = value` and bare lines, commented out or not.
    let keys: Vec<String> = text
        .lines()
        .map(|l| l.trim_start().trim_start_matches('#').trim_start())
        .filter(|l| !l.starts_with('[') && !l.is_empty())
        .filter_map(|l| {
            let key = l.split('=').next()?.trim();
            (!key.contains(' ')).then(|| key.to_ascii_lowercase())
        })
        .collect();
    for key in [
        "usesyslog",
        "logfile",
        "pidfile",
        "interface",
        "maxattempts",
        "statefile",
        "sequence",
        "one_time_sequences",
        "seq_timeout",
        "timeout",
        "tcpflags",
        "start_command",
        "start_command_6",
        "command",
        "command_6",
        "stop_command",
        "stop_command_6",
        "cmd_timeout",
        "target",
        "reopen",
    ] {
        assert!(keys.iter().any(|k| k == key), "{key} missing from {keys:?}");
    }
}

/// A missing interface is waited for, not fatal (it may come up after the
/// daemon, e.g. a VPN or a hot-plugged NIC). Needs no root: nothing is
/// captured until the interface exists.
#[test]
fn a_missing_interface_is_waited_for() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let log = dir.path().join("knockd.log");
    let conf = format!(
        "[options]\nStateFile = {}\n[d]\nsequence = 1\n",
        state.display()
    );
    let path = config_file(&dir, "k.conf", conf.as_bytes());
    let mut child = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(["-i", "no-such-if0", "-g"])
        .arg(&log)
        .arg("-c")
        .arg(&path)
        .stdin(std::process::Stdio::null())
        .spawn()
        .expect("run knockd");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    let want = "interface no-such-if0 does not exist (yet); waiting for it";
    while !std::fs::read_to_string(&log)
        .unwrap_or_default()
        .contains(want)
    {
        if std::time::Instant::now() > deadline || child.try_wait().ok().flatten().is_some() {
            let _ = child.kill();
            panic!("no \"{want}\" in {:?}", std::fs::read_to_string(&log));
        }
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("signal knockd");
    let status = child.wait().expect("wait for knockd");
    assert_eq!(status.code(), Some(0));
    let text = std::fs::read_to_string(&log).expect("log");
    assert!(
        text.lines()
            .last()
            .is_some_and(|l| l.ends_with("] shutting down")),
        "{text}"
    );

    // A bad config is still reported before anything starts.
    let bad = config_file(&dir, "bad.conf", b"[d]\nsequence = 0\n");
    let o = knockd(&["-c", bad.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), EX_CONFIG);
}

#[test]
fn an_unwritable_log_file_is_one_line_and_cantcreat() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config_file(&dir, "k.conf", b"[d]\nsequence = 1\n");
    let o = knockd(&[
        "-i",
        "lo",
        "-g",
        "/nonexistent/dir/knockd.log",
        "-c",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code(&o), 73);
    assert_eq!(
        stderr(&o),
        "knockd: cannot open log file /nonexistent/dir/knockd.log: no such file\n"
    );
}

#[test]
fn a_missing_capture_file_is_one_line_and_noinput() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config_file(&dir, "k.conf", b"[d]\nsequence = 1\n");
    let o = knockd(&[
        "--read",
        "/nonexistent/knocks.pcap",
        "-c",
        path.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(code(&o), 66);
    let err = stderr(&o);
    assert!(
        err.starts_with("knockd: cannot read capture file /nonexistent/knocks.pcap: "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

#[test]
fn bad_configs_exit_78_naming_file_line_and_key() {
    let otp_dir = tempfile::tempdir().expect("temp dir");
    let missing_otp = otp_dir.path().join("missing");
    let cases: Vec<(String, String)> = vec![
        ("[d]\nsequence = 7000,abc\n".into(), ":2: sequence: port \"abc\" is not a number".into()),
        ("[d]\nsequence = -7\n".into(), ":2: sequence: port \"-7\" is not a number".into()),
        ("[d]\nsequence = 0\n".into(), ":2: sequence: port 0 is out of range (1-65535)".into()),
        ("[d]\nsequence = 65536\n".into(), ":2: sequence: port 65536 is out of range (1-65535)".into()),
        (
            "[d]\nsequence = 1:icmp\n".into(),
            ":2: sequence: unknown protocol \"icmp\" (expected tcp or udp)".into(),
        ),
        (
            "[d]\nsequence = 1\ntcpflags = syn,fun\n".into(),
            ":3: tcpflags: unknown TCP flag \"fun\" (expected fin, syn, rst, psh, ack or urg, optionally with !)"
                .into(),
        ),
        ("[d]\nsequence = 1\ncolour = red\n".into(), ":3: colour: unknown door directive".into()),
        ("[options]\nverbose = 1\n".into(), ":2: verbose: unknown option".into()),
        (
            "sequence = 1\n".into(),
            ":1: sequence: directive outside any section (put it under [options] or a [door])".into(),
        ),
        ("[]\n".into(), ":1: empty section name '[]'".into()),
        (
            "[options]\nUseSyslog\n[d]\ncommand = x\n".into(),
            ":3: door [d] has no Sequence (or One_Time_Sequences, or Sequence_Secret)".into(),
        ),
        (
            format!("[d]\nsequence = {}\n", vec!["1"; 33].join(",")),
            ":2: sequence: 33 ports in the sequence; at most 32 are allowed".into(),
        ),
        (
            "[d]\nsequence = 1\nseq_timeout = 5s\n".into(),
            ":3: seq_timeout: \"5s\" is not a number of seconds".into(),
        ),
        (
            "[d]\nsequence = 1\ncmd_timeout = ten\n".into(),
            ":3: cmd_timeout: \"ten\" is not a number of seconds".into(),
        ),
        (
            format!("[d]\none_time_sequences = {}\n", missing_otp.display()),
            format!(
                ":2: one_time_sequences: cannot read {}: no such file",
                missing_otp.display()
            ),
        ),
        (
            "[d]\nsequence = 1\ntarget = router\n".into(),
            ":3: target: \"router\" is not an IP address".into(),
        ),
    ];
    for (text, expected) in cases {
        let (code, out, err, path, _dir) = check(text.as_bytes());
        assert_eq!(code, EX_CONFIG, "{text}\n{err}");
        assert_eq!(out, "", "{text}");
        assert_eq!(
            err,
            format!(
                "{p}{expected}\nknockd: {p}: 1 error; not starting\n",
                p = path.display()
            ),
            "{text}"
        );
    }
}

#[test]
fn all_errors_of_a_file_are_listed() {
    let (code, _, err, path, _dir) =
        check(b"[a]\nsequence = 1,x\n[b]\nsequence = 2\ntimeout = never\n[c]\n");
    assert_eq!(code, EX_CONFIG);
    let p = path.display();
    assert_eq!(
        err,
        format!(
            "{p}:2: sequence: port \"x\" is not a number\n\
             {p}:5: timeout: \"never\" is not a number of seconds\n\
             {p}:6: door [c] has no Sequence (or One_Time_Sequences, or Sequence_Secret)\n\
             knockd: {p}: 3 errors; not starting\n"
        )
    );
}

#[test]
fn one_time_file_with_invalid_lines_warns_with_its_place() {
    let dir = tempfile::tempdir().expect("temp dir");
    let otp = config_file(&dir, "otp", b" 1,abc\n 2,3:udp\n");
    let conf = format!("[d]\none_time_sequences = {}\n", otp.display());
    let (code, out, err, path, _dir) = check(conf.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        format!(
            "warning: {}:1: port \"abc\" is not a number; line skipped\n",
            otp.display()
        )
    );
    assert_eq!(
        without_interface(&out),
        format!(
            "[d] sequence 2:tcp,3:udp (one-time, {}:2), seq_timeout 25s, tcpflags any, no commands\n\
             {}: 1 door OK, 1 warning\n",
            otp.display(),
            path.display()
        )
    );
}

/// Readable by others is a warning (knockd 0.8 installs it 0644); writable
/// by them is an error (its commands run as root).
#[test]
fn world_readable_config_warns_but_checks_and_world_writable_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = config_file(&dir, "k.conf", b"[d]\nsequence = 1\n");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let o = knockd(&["--check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        stderr(&o),
        format!(
            "warning: {}: readable by others (mode 0644): the knock sequences are secrets; chmod 600\n",
            path.display()
        )
    );
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o666)).expect("chmod");
    let o = knockd(&["--check", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), EX_CONFIG);
    assert_eq!(
        stderr(&o),
        format!(
            "{p}: is writable by group or others (mode 0666), and holds commands that run as root; \
             chmod go-w {p}\nknockd: {p}: 1 error; not starting\n",
            p = path.display()
        )
    );
}

#[test]
fn check_names_the_interface_and_why() {
    let dir = tempfile::tempdir().expect("temp dir");
    let named = config_file(
        &dir,
        "named.conf",
        b"[options]\ninterface = wg0,lo\n[d]\nsequence = 1\n",
    );
    let plain = config_file(&dir, "plain.conf", b"[d]\nsequence = 1\n");
    let cases: [(&[&str], &Path, &str); 3] = [
        (&["-i", "wlan9"], &named, "interface: wlan9 (-i)"),
        (
            &["-i", "eth0", "-i", "lo"],
            &plain,
            "interface: eth0,lo (-i)",
        ),
        (&[], &named, "interface: wg0,lo (Interface)"),
    ];
    for (flags, path, line) in cases {
        let mut args = flags.to_vec();
        args.extend(["--check", "-c", path.to_str().expect("utf-8 path")]);
        let o = knockd(&args);
        assert_eq!(code(&o), 0, "{args:?}: {}", stderr(&o));
        let out = stdout(&o);
        assert_eq!(out.lines().nth(1), Some(line), "{args:?}:\n{out}");
    }
    // Nothing named: eth0 if this machine has one, else the default
    // route's interface, saying so (tests/lifecycle pins each case in a
    // namespace of its own).
    let o = knockd(&["--check", "-c", plain.to_str().expect("utf-8 path")]);
    let out = stdout(&o);
    let line = out.lines().nth(1).unwrap_or_default();
    assert!(
        line == "interface: eth0 (knockd's default; no -i, no Interface)"
            || line.ends_with("default route; no -i, no Interface, no eth0)")
            || line.ends_with("(no -i, no Interface, no eth0, no default route)"),
        "{out}"
    );
}

#[test]
fn empty_config_is_accepted_with_a_warning() {
    let (code, out, err, path, _dir) = check(b"");
    assert_eq!(code, 0);
    assert_eq!(
        err,
        format!(
            "warning: {}: no doors defined: nothing can be opened\n",
            path.display()
        )
    );
    assert_eq!(
        without_interface(&out),
        format!("{}: 0 doors OK, 1 warning\n", path.display())
    );
}

/// Deterministic junk (xorshift), so a failure can be reproduced.
fn junk(len: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(len);
    while out.len() < len {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        out.extend_from_slice(&seed.to_le_bytes());
    }
    out.truncate(len);
    out
}

#[test]
fn binary_config_is_rejected_cleanly() {
    let mut bytes = vec![0u8, 0, 0, b'\n'];
    bytes.extend(junk(64 * 1024, 0x9e37_79b9_7f4a_7c15));
    let (code, out, err, path, _dir) = check(&bytes);
    assert_eq!(code, EX_CONFIG, "{err}");
    assert_eq!(out, "");
    let first = err.lines().next().expect("an error line");
    assert_eq!(
        first,
        format!(
            "{}:1: \\u{{0}}\\u{{0}}\\u{{0}}: directive outside any section (put it under [options] or a [door])",
            path.display()
        )
    );
    for line in err.lines() {
        assert!(!line.chars().any(|c| c.is_control()), "{line:?}");
    }
    assert!(err.lines().count() <= 102, "{} lines", err.lines().count());
}

#[test]
fn ten_megabytes_of_junk_finish_fast_with_bounded_output() {
    let mut text = Vec::with_capacity(10 << 20);
    let mut i = 0u64;
    while text.len() < 10 << 20 {
        text.extend_from_slice(format!("junk {i} = ?!\n").as_bytes());
        i += 1;
    }
    let started = Instant::now();
    let (code, out, err, path, _dir) = check(&text);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, EX_CONFIG);
    assert_eq!(out, "");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 102, "100 errors, the cap notice, the verdict");
    assert_eq!(
        lines[100],
        format!(
            "{}:100: too many errors, stopped reading after 100",
            path.display()
        )
    );
    assert_eq!(
        lines[101],
        format!("knockd: {}: 101 errors; not starting", path.display())
    );
}

#[test]
fn ten_megabyte_single_line_gives_one_short_error() {
    let mut text = b"[d]\nsequence = 1\n".to_vec();
    text.extend(std::iter::repeat_n(b'x', 10 << 20));
    let (code, _, err, _, _dir) = check(&text);
    assert_eq!(code, EX_CONFIG);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.len() < 1000, "{} bytes of stderr", err.len());
}

#[test]
fn ten_megabytes_of_comments_parse_fast() {
    let mut text = b"[d]\nsequence = 1\n".to_vec();
    while text.len() < 10 << 20 {
        text.extend_from_slice(b"# a long comment line to make a big but valid file\n");
    }
    let started = Instant::now();
    let (code, out, err, _, _dir) = check(&text);
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(code, 0, "{err}");
    assert!(out.ends_with(": 1 door OK\n"), "{out}");
}

#[test]
fn directory_as_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = knockd(&["--check", "-c", dir.path().to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), EX_CONFIG);
    assert_eq!(
        stderr(&o),
        format!(
            "{p}: is a directory, not a config file\nknockd: {p}: 1 error; not starting\n",
            p = dir.path().display()
        )
    );
}

#[test]
fn missing_config() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("absent.conf");
    for args in [vec!["--check"], vec![]] {
        let mut args = args;
        args.extend(["-c", path.to_str().expect("utf-8 path")]);
        let o = knockd(&args);
        assert_eq!(code(&o), EX_CONFIG);
        assert_eq!(
            stderr(&o),
            format!(
                "{p}: cannot read: no such file\nknockd: {p}: 1 error; not starting\n",
                p = path.display()
            )
        );
    }
}

#[test]
fn device_as_config_is_refused_before_reading() {
    // /dev/zero never ends: the trust rule refuses it before a byte is read
    // (the parser's size cap still bounds a huge regular file).
    let o = knockd(&["--check", "-c", "/dev/zero"]);
    assert_eq!(code(&o), EX_CONFIG);
    assert_eq!(
        stderr(&o),
        "/dev/zero: is not a regular file (a device); name a regular file\n\
         knockd: /dev/zero: 1 error; not starting\n"
    );
}

#[test]
fn closed_stdout_is_not_a_panic() {
    use std::process::Stdio;
    let mut child = Command::new(env!("CARGO_BIN_EXE_knockd"))
        .args(["--check", "-c", sample().to_str().expect("utf-8 path")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn knockd");
    drop(child.stdout.take());
    let o = child.wait_with_output().expect("wait");
    assert_eq!(code(&o), 0);
}

#[test]
fn status_lists_open_doors_from_the_state_file() {
    let dir = tempfile::tempdir().expect("temp dir");
    let state = dir.path().join("state");
    let conf = format!(
        "[options]\nStateFile = {}\n[d]\nsequence = 1\n",
        state.display()
    );
    let path = config_file(&dir, "k.conf", conf.as_bytes());
    let o = knockd(&["--status", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0);
    assert_eq!(stdout(&o), "no open doors\n");
    let due = std::time::SystemTime::now() + std::time::Duration::from_secs(300);
    let nanos = due
        .duration_since(std::time::UNIX_EPOCH)
        .expect("after 1970")
        .as_nanos();
    std::fs::write(
        &state,
        format!(
            "# knockd-rs pending stop commands v1\n{nanos}\t192.0.2.9\topenSSH\tclose 192.0.2.9\n"
        ),
    )
    .expect("write state");
    let o = knockd(&["--status", "-c", path.to_str().expect("utf-8 path")]);
    assert_eq!(code(&o), 0);
    let out = stdout(&o);
    assert!(out.starts_with("openSSH\t192.0.2.9\tcloses in 29"), "{out}");
    assert!(out.ends_with("\tclose 192.0.2.9\n"), "{out}");
}

/// A one-time file whose last sequence was used disables its door with a
/// warning; the config is fine (knockd 0.8 and our earlier versions refused
/// to start, so a daemon restarted after a crash left its stops undone).
#[test]
fn an_exhausted_one_time_file_disables_its_door_not_the_daemon() {
    let otp_dir = tempfile::tempdir().expect("temp dir");
    let otp = config_file(&otp_dir, "otp", b"#1111\n# all used\n");
    let text = format!(
        "[d]\none_time_sequences = {}\n[ssh]\nsequence = 7000\n",
        otp.display()
    );
    let (code, out, err, path, _dir) = check(text.as_bytes());
    assert_eq!(code, 0, "{err}");
    assert_eq!(
        err,
        format!(
            "warning: {}:2: {} has no unused sequence left: door [d] is disabled\n",
            path.display(),
            otp.display()
        )
    );
    assert!(
        out.starts_with(&format!(
            "[d] sequence none (one-time, {}: no unused line left, door disabled)",
            otp.display()
        )),
        "{out}"
    );
    assert!(out.ends_with(": 2 doors OK, 1 warning\n"), "{out}");
}
