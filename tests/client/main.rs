//! The `knock` binary end to end.
//!
//! Unprivileged tests drive the binary on loopback: exit codes, what goes
//! to stdout and stderr, `--connect` relaying and retrying. Root-only tests
//! (ignored unless `--include-ignored`, which `make test` passes as root)
//! build network namespaces and check interoperability both ways — our
//! `knock` opens a door of the real knockd 0.8, Debian's `knock` opens a
//! door of our `knockd`, over IPv4 and IPv6 — that a TCP hit is exactly
//! one SYN, and that `--connect --retry` gets through a firewall that only
//! the door's command lifts, even when the first knock is lost.
//!
//! Rotating doors need no root here: `--show-sequence` against the
//! published test vectors, `--gen-secret`, secret-file errors, and knocks
//! whose UDP hits land on loopback sockets listening on the ports that
//! `knockd::core::rotate` derives (tests/rotating.rs opens a real daemon's
//! rotating door, as root).
//!
//! Every child runs under a deadline and is killed (by its own pid) if it
//! overstays; namespaces are named after the test and this process's pid
//! and deleted on drop, also when a test fails.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod netns;
mod rotating;

const KNOCK: &str = env!("CARGO_BIN_EXE_knock");
const KNOCKD: &str = env!("CARGO_BIN_EXE_knockd");
const KNOCKD_08: &str = "/usr/sbin/knockd";
const DEBIAN_KNOCK: &str = "/usr/bin/knock";

const EX_USAGE: i32 = 64;
const EX_NOINPUT: i32 = 66;
const EX_NOHOST: i32 = 68;
const EX_UNAVAILABLE: i32 = 69;
const EX_CANTCREAT: i32 = 73;
const EX_CONFIG: i32 = 78;

// ---------------------------------------------------------------------------
// Running children under a deadline

/// Runs `cmd` to completion with `stdin` fed in, killing it after `limit`.
fn run_bounded(cmd: &mut Command, stdin: &[u8], limit: Duration) -> Output {
    let mut child = cmd
        .env("RUST_BACKTRACE", "1")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
    let mut input = child.stdin.take().expect("stdin");
    let data = stdin.to_vec();
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data);
    });
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let status = wait_bounded(&mut child, limit)
        .unwrap_or_else(|| panic!("{cmd:?} still running after {limit:?}; killed"));
    let _ = feeder.join();
    Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    }
}

fn drain(mut r: impl Read + Send + 'static) -> std::thread::JoinHandle<Vec<u8>> {
    std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = r.read_to_end(&mut v);
        v
    })
}

/// Waits for `child` until `limit`; on timeout kills it (this pid only) and
/// returns `None`.
fn wait_bounded(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return None;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Exit code, failing on a panic or a signal.
fn code(o: &Output) -> i32 {
    let err = text(&o.stderr);
    assert!(!err.contains("panicked"), "panic:\n{err}");
    o.status
        .code()
        .unwrap_or_else(|| panic!("killed by a signal: {o:?}"))
}

fn knock(args: &[&str]) -> Output {
    run_bounded(Command::new(KNOCK).args(args), b"", Duration::from_secs(20))
}

/// A loopback TCP port nothing listens on (bound, then released).
fn closed_port() -> u16 {
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

// ---------------------------------------------------------------------------
// A stand-in for sshd: banner, line echo, a trailer after the client's EOF

const BANNER: &str = "SSH-2.0-knockd-rs-echo\r\n";

/// Serves one conversation on `listener`: the banner, `echo: LINE` per line,
/// and `bye` once the client half-closes. Returns the lines it got.
fn serve_echo(listener: TcpListener) -> Vec<String> {
    listener.set_nonblocking(true).expect("nonblocking");
    let deadline = Instant::now() + Duration::from_secs(30);
    let conn = loop {
        match listener.accept() {
            Ok((c, _)) => break c,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                assert!(Instant::now() < deadline, "nobody connected within 30 s");
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("accept: {e}"),
        }
    };
    conn.set_nonblocking(false).expect("blocking");
    conn.set_read_timeout(Some(Duration::from_secs(20)))
        .expect("timeout");
    let mut writer = conn.try_clone().expect("clone");
    writer.write_all(BANNER.as_bytes()).expect("banner");
    let mut lines = Vec::new();
    for line in BufReader::new(conn).lines() {
        let line = line.expect("read line");
        writer
            .write_all(format!("echo: {line}\n").as_bytes())
            .expect("echo");
        lines.push(line);
    }
    writer.write_all(b"bye\n").expect("trailer");
    lines
}

fn expected_conversation(lines: &[&str]) -> String {
    let mut s = BANNER.to_string();
    for l in lines {
        s.push_str(&format!("echo: {l}\n"));
    }
    s.push_str("bye\n");
    s
}

// ---------------------------------------------------------------------------
// Unprivileged: the binary's contract

#[test]
fn version_and_help_go_to_stdout_with_status_0() {
    let o = knock(&["-V"]);
    assert_eq!(code(&o), 0);
    assert_eq!(
        text(&o.stdout),
        format!("knock {}\n", env!("CARGO_PKG_VERSION"))
    );
    let o = knock(&["--help"]);
    assert_eq!(code(&o), 0);
    assert!(text(&o.stdout).contains("--connect <PORT>"), "{o:?}");
    assert_eq!(text(&o.stderr), "");
}

#[test]
fn usage_errors_are_short_and_64() {
    for args in [
        &[][..],
        &["h", "7000:foo"],
        &["h", "0"],
        &["h", "65536"],
        &["h", "no-such-service-xyz"],
        &["-d", "-1", "h", "1"],
        &["-d", "1s", "h", "1"],
        &["-4", "-6", "h", "1"],
        &["--retry", "2", "h", "1"],
        &["--bogus", "h", "1"],
    ] {
        let o = knock(args);
        assert_eq!(code(&o), EX_USAGE, "{args:?}: {o:?}");
        assert_eq!(text(&o.stdout), "", "{args:?}");
        let err = text(&o.stderr);
        assert!(err.starts_with("error: "), "{args:?}: {err}");
        assert!(err.lines().count() <= 8, "not short: {err}");
    }
}

#[test]
fn a_door_name_without_a_doors_file_is_a_one_line_usage_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let o = run_bounded(
        Command::new(KNOCK)
            .arg("myserver")
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME"),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), EX_USAGE);
    let expected = format!(
        "knock: no ports given for \"myserver\", and no doors file at {}/.config/knock/doors \
         (usage: knock HOST PORT[:PROTO]...)\n",
        dir.path().display()
    );
    assert_eq!(text(&o.stderr), expected);
}

#[test]
fn wrong_family_for_the_host_is_68() {
    let o = knock(&["-6", "127.0.0.1", "1"]);
    assert_eq!(code(&o), EX_NOHOST);
    assert_eq!(
        text(&o.stderr),
        "knock: host \"127.0.0.1\" has no IPv6 address\n"
    );
}

#[test]
fn a_door_from_the_doors_file_knocks_its_sequence() {
    let dir = tempfile::tempdir().expect("temp dir");
    let doors = dir.path().join("knock").join("doors");
    std::fs::create_dir_all(doors.parent().expect("parent")).expect("mkdir");
    let (a, b) = (closed_port(), closed_port());
    std::fs::write(
        &doors,
        format!("[lab]\nhost = 127.0.0.1\nsequence = {a}, {b}:udp\n"),
    )
    .expect("write doors");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&doors, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let o = run_bounded(
        Command::new(KNOCK)
            .args(["-v", "lab"])
            .env("XDG_CONFIG_HOME", dir.path()),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        format!("hitting tcp 127.0.0.1:{a}\nhitting udp 127.0.0.1:{b}\n")
    );
    assert_eq!(text(&o.stderr), "");
}

/// ProxyCommand mode on loopback: stdout carries the server's bytes and
/// nothing else (verbose lines go to stderr); stdin's EOF half-closes and
/// the server's trailer still arrives.
#[test]
fn connect_relays_a_conversation_and_keeps_stdout_clean() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || serve_echo(listener));
    let knock_port = closed_port().to_string();
    let o = run_bounded(
        Command::new(KNOCK).args([
            "-v",
            "--connect",
            &port.to_string(),
            "127.0.0.1",
            &knock_port,
        ]),
        b"hello\nworld\n",
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(text(&o.stdout), expected_conversation(&["hello", "world"]));
    assert_eq!(server.join().expect("server"), ["hello", "world"]);
    let err = text(&o.stderr);
    assert!(
        err.starts_with(&format!("hitting tcp 127.0.0.1:{knock_port}\n")),
        "{err}"
    );
    assert!(
        err.contains(&format!("connecting to 127.0.0.1:{port}")),
        "{err}"
    );
}

#[test]
fn connect_refused_retries_with_backoff_then_fails_69() {
    let port = closed_port().to_string();
    let start = Instant::now();
    let o = knock(&["--connect", &port, "--retry", "2", "127.0.0.1", "1:udp"]);
    assert_eq!(code(&o), EX_UNAVAILABLE, "{o:?}");
    // 0.5 s then 1 s of backoff.
    assert!(start.elapsed() >= Duration::from_millis(1500));
    assert_eq!(text(&o.stdout), "");
    let err = text(&o.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 3, "{err}");
    assert!(
        lines[0]
            .ends_with("Connection refused (os error 111); knocking again in 0.5s (retry 1 of 2)"),
        "{err}"
    );
    assert!(
        lines[1].ends_with("knocking again in 1.0s (retry 2 of 2)"),
        "{err}"
    );
    assert_eq!(
        lines[2],
        format!(
            "knock: cannot connect to 127.0.0.1:{port}: Connection refused (os error 111) (after 3 knocks)"
        )
    );
}
