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

// ---------------------------------------------------------------------------
// Unprivileged: rotating doors

/// The README's test-vector secret.
const VECTOR_SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const VECTOR_AT_0: &str = "10759:tcp 10995:tcp 10648:tcp 10389:tcp 10822:tcp\n";
const VECTOR_AT_10: &str = "10846:tcp 10066:tcp 10484:tcp 10876:tcp 10800:tcp\n";

/// Writes `text` to `dir/name` with `mode`; returns the path as a string.
fn file_with_mode(dir: &Path, name: &str, text: &str, mode: u32) -> String {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join(name);
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    path.to_str().expect("utf-8 temp dir").to_string()
}

/// `--secret-file KEY --door ssh --ports 10000-10999 --length 5`, then `rest`.
fn vector_args<'a>(key: &'a str, rest: &[&'a str]) -> Vec<&'a str> {
    let mut v = vec![
        "--secret-file",
        key,
        "--door",
        "ssh",
        "--ports",
        "10000-10999",
        "--length",
        "5",
    ];
    v.extend_from_slice(rest);
    v
}

#[test]
fn show_sequence_prints_the_published_vectors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = file_with_mode(dir.path(), "ssh.key", &format!("{VECTOR_SECRET}\n"), 0o600);
    for (at, want, extra) in [
        ("1700000000", VECTOR_AT_0, &[][..]),
        ("1700000010", VECTOR_AT_10, &[][..]),
        // The defaults spelled out; a HOST is accepted and not resolved.
        (
            "1700000000",
            VECTOR_AT_0,
            &[
                "--period",
                "30",
                "--protocols",
                "tcp",
                "no-such-host.invalid",
            ][..],
        ),
    ] {
        let mut args = vector_args(&key, &["--show-sequence", "--at", at]);
        args.extend_from_slice(extra);
        let o = knock(&args);
        assert_eq!(code(&o), 0, "{o:?}");
        assert_eq!(text(&o.stdout), want, "{args:?}");
        assert_eq!(text(&o.stderr), "");
    }
    // One protocol per step (the README's second secret).
    let mixed = file_with_mode(
        dir.path(),
        "mixed.key",
        "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U\n",
        0o600,
    );
    let o = knock(&[
        "--show-sequence",
        "--at",
        "1800000000",
        "--secret-file",
        &mixed,
        "--door",
        "openSSH",
        "--ports",
        "1-65535",
        "--length",
        "8",
        "--period",
        "60",
        "--protocols",
        "tcp,udp,tcp,udp,tcp,udp,tcp,udp",
    ]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        text(&o.stdout),
        "38005:tcp 8340:udp 28852:tcp 64074:udp 33158:tcp 22691:udp 26499:tcp 62752:udp\n"
    );
    // Without --at: now, in the same shape.
    let o = knock(&vector_args(
        &key,
        &["--show-sequence", "--protocols", "udp"],
    ));
    assert_eq!(code(&o), 0, "{o:?}");
    let words: Vec<String> = text(&o.stdout).split(' ').map(str::to_string).collect();
    assert_eq!(words.len(), 5, "{o:?}");
    assert!(
        words.iter().all(|w| w.trim_end().ends_with(":udp")),
        "{words:?}"
    );
}

/// A doors file in `$XDG_CONFIG_HOME/knock/doors` (mode 600) with `text`,
/// and the secret file `ssh.key` beside it.
fn rotating_doors_home(text: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    let knock_dir = dir.path().join("knock");
    std::fs::create_dir_all(&knock_dir).expect("mkdir");
    file_with_mode(&knock_dir, "doors", text, 0o600);
    file_with_mode(&knock_dir, "ssh.key", &format!("{VECTOR_SECRET}\n"), 0o600);
    dir
}

fn knock_in(home: &Path, args: &[&str], stdin: &[u8]) -> Output {
    run_bounded(
        Command::new(KNOCK)
            .args(args)
            .env("XDG_CONFIG_HOME", home)
            .env("HOME", home),
        stdin,
        Duration::from_secs(30),
    )
}

#[test]
fn show_sequence_of_a_doors_file_door() {
    let home = rotating_doors_home(
        "[myserver]\nhost = 192.0.2.1\nsecret_file = ssh.key\ndoor = ssh\n\
         ports = 10000-10999\nlength = 5\n",
    );
    for (at, want) in [("1700000000", VECTOR_AT_0), ("1700000010", VECTOR_AT_10)] {
        let o = knock_in(
            home.path(),
            &["--show-sequence", "--at", at, "myserver"],
            b"",
        );
        assert_eq!(code(&o), 0, "{o:?}");
        assert_eq!(text(&o.stdout), want);
        assert_eq!(text(&o.stderr), "");
    }
}

#[test]
fn gen_secret_creates_a_private_secret_once() {
    use knockd::core::rotate::{Secret, GENERATED_SECRET_BYTES};
    use std::os::unix::fs::MetadataExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("new.key");
    let p = path.to_str().expect("utf-8");
    let o = knock(&["--gen-secret", p]);
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(
        (text(&o.stdout), text(&o.stderr)),
        (String::new(), String::new())
    );
    assert_eq!(
        std::fs::metadata(&path).expect("stat").mode() & 0o777,
        0o600
    );
    let content = std::fs::read_to_string(&path).expect("read");
    assert!(content.ends_with('\n'), "{content:?}");
    let secret = Secret::from_base32(&content).expect("a secret");
    assert_eq!(secret.to_base32(), content.trim_end());
    let bytes = data_encoding::BASE32_NOPAD
        .decode(content.trim_end().as_bytes())
        .expect("base32");
    assert_eq!(bytes.len(), GENERATED_SECRET_BYTES);
    assert_eq!(bytes.len(), 32);

    // The secret works: --show-sequence takes it.
    let o = knock(&vector_args(p, &["--show-sequence"]));
    assert_eq!(code(&o), 0, "{o:?}");

    // Never overwritten.
    let o = knock(&["--gen-secret", p]);
    assert_eq!(code(&o), EX_CANTCREAT, "{o:?}");
    assert_eq!(
        text(&o.stderr),
        format!("knock: secret file {p} already exists; not overwriting it\n")
    );
    assert_eq!(std::fs::read_to_string(&path).expect("read"), content);
    // Not even through a symlink to a missing file.
    let link = dir.path().join("link.key");
    std::os::unix::fs::symlink(dir.path().join("target.key"), &link).expect("symlink");
    let o = knock(&["--gen-secret", link.to_str().expect("utf-8")]);
    assert_eq!(code(&o), EX_CANTCREAT, "{o:?}");
    assert!(!dir.path().join("target.key").exists());
}

#[test]
fn secret_file_warnings_and_errors() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = file_with_mode(dir.path(), "group.key", VECTOR_SECRET, 0o640);
    let o = knock(&vector_args(
        &key,
        &["--show-sequence", "--at", "1700000000"],
    ));
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(text(&o.stdout), VECTOR_AT_0);
    assert_eq!(
        text(&o.stderr),
        format!(
            "knock: {key}: warning: readable or writable by group or others (mode 640); it holds a secret (chmod 600)\n"
        )
    );

    let bad = file_with_mode(dir.path(), "bad.key", "this is not base32\n", 0o600);
    let o = knock(&vector_args(&bad, &["--show-sequence"]));
    assert_eq!(code(&o), EX_CONFIG, "{o:?}");
    assert_eq!(
        text(&o.stderr),
        format!("knock: secret file {bad}: not base32 (letters A-Z and digits 2-7)\n")
    );
    let short = file_with_mode(dir.path(), "short.key", "GEZDGNBV\n", 0o600);
    let o = knock(&vector_args(&short, &["127.0.0.1"]));
    assert_eq!(code(&o), EX_CONFIG, "{o:?}");
    assert!(text(&o.stderr).contains("too short"), "{o:?}");

    let missing = dir.path().join("missing.key");
    let m = missing.to_str().expect("utf-8");
    let o = knock(&vector_args(m, &["127.0.0.1"]));
    assert_eq!(code(&o), EX_NOINPUT, "{o:?}");
    assert_eq!(
        text(&o.stderr),
        format!("knock: cannot read secret file {m}: No such file or directory (os error 2)\n")
    );
}

#[test]
fn rotating_usage_errors_are_one_line_and_64() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = file_with_mode(dir.path(), "ssh.key", VECTOR_SECRET, 0o600);
    let k = key.as_str();
    for (args, want) in [
        (
            vec!["--secret-file", k, "--ports", "1-9", "--length", "3", "h"],
            "--secret-file needs --door NAME",
        ),
        (
            vec!["--secret-file", k, "--door", "d", "--length", "3", "h"],
            "--secret-file needs --ports A-B",
        ),
        (
            vec!["--secret-file", k, "--door", "d", "--ports", "1-9", "h"],
            "--secret-file needs --length N",
        ),
        (
            vec!["--door", "d", "--ports", "1-9", "--length", "3", "h"],
            "--door is for a rotating door",
        ),
        (vector_args(k, &["h", "7000"]), "ports on the command line"),
        (
            vec![
                "--secret-file",
                k,
                "--door",
                "d",
                "--ports",
                "1-3",
                "--length",
                "5",
                "h",
            ],
            "Sequence_Length 5 is more than the 3 ports",
        ),
        (
            vec!["--show-sequence"],
            "--show-sequence needs a rotating DOOR",
        ),
        (
            vec!["--show-sequence", "h", "1"],
            "--show-sequence is for rotating doors",
        ),
        (
            vector_args(k, &["-u", "h"]),
            "-u does not apply to a rotating door",
        ),
    ] {
        let o = knock(&args);
        assert_eq!(code(&o), EX_USAGE, "{args:?}: {o:?}");
        let err = text(&o.stderr);
        assert!(
            err.starts_with("knock: ") && err.contains(want),
            "{args:?}: {err}"
        );
        assert_eq!(err.lines().count(), 1, "{err}");
        assert_eq!(text(&o.stdout), "");
    }
    // clap's own errors (still 64): a HOST to knock, --at alone, --gen-secret with more.
    for args in [
        vector_args(k, &[]),
        vec!["--at", "5", "h", "1"],
        vec!["--gen-secret", "x", "h"],
        vector_args(k, &["--length", "0", "h"]),
    ] {
        let o = knock(&args);
        assert_eq!(code(&o), EX_USAGE, "{args:?}: {o:?}");
        assert!(text(&o.stderr).starts_with("error: "), "{o:?}");
    }
}

/// Now in Unix seconds.
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_secs()
}

/// The ports `door` knocks in period `counter`.
fn derived_ports(door: &str, rotation: &knockd::core::rotate::Rotation, counter: u64) -> Vec<u16> {
    use knockd::core::rotate::{sequence, Secret};
    let secret = Secret::from_base32(VECTOR_SECRET).expect("secret");
    sequence(&secret, door, rotation, counter)
        .steps()
        .iter()
        .map(|s| s.port)
        .collect()
}

/// Waits until at least `margin` seconds remain in the current period.
fn away_from_a_boundary(period: u64, margin: u64) {
    while period - unix_now() % period < margin {
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// UDP sockets on 127.0.0.1 at `ports`, non-blocking; `None` when one of
/// them is taken (the caller picks another door name, so other ports).
fn udp_listeners(ports: &[u16]) -> Option<Vec<std::net::UdpSocket>> {
    ports
        .iter()
        .map(|&p| {
            let s = std::net::UdpSocket::bind((Ipv4Addr::LOCALHOST, p)).ok()?;
            s.set_nonblocking(true).ok()?;
            Some(s)
        })
        .collect()
}

/// Runs `cmd` while polling `socks`: which socket got each datagram, in
/// arrival order, and what it held; and the finished command's output.
fn knock_while_listening(
    mut cmd: Command,
    socks: &[std::net::UdpSocket],
) -> (Vec<(usize, Vec<u8>)>, Output) {
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn knock");
    let out = drain(child.stdout.take().expect("stdout"));
    let err = drain(child.stderr.take().expect("stderr"));
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < socks.len() && Instant::now() < deadline {
        for (i, s) in socks.iter().enumerate() {
            let mut buf = [9u8; 16];
            if let Ok(n) = s.recv(&mut buf) {
                got.push((i, buf[..n].to_vec()));
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    let status = wait_bounded(&mut child, Duration::from_secs(20)).expect("knock finished");
    let output = Output {
        status,
        stdout: out.join().expect("stdout reader"),
        stderr: err.join().expect("stderr reader"),
    };
    (got, output)
}

/// Knocks a rotating UDP door at 127.0.0.1 (`make_cmd` builds the command
/// for a door name), and checks that one zero byte reached each derived
/// port, in order, and that `-v` printed knockd's lines. Retried when a
/// period boundary falls in the middle or a derived port is taken.
fn rotating_udp_knock_arrives(make_cmd: impl Fn(&str) -> Command) {
    use knockd::core::knock::Proto;
    use knockd::core::rotate::Rotation;
    let rotation = Rotation {
        length: 5,
        first: 40000,
        last: 44999,
        protocols: vec![Proto::Udp],
        period: 30,
        skew: 1,
    };
    for attempt in 0..4 {
        away_from_a_boundary(rotation.period, 3);
        let door = format!("udp-{}-{attempt}", std::process::id());
        let before = rotation.counter(unix_now());
        let ports = derived_ports(&door, &rotation, before);
        let Some(socks) = udp_listeners(&ports) else {
            continue;
        };
        let (got, o) = knock_while_listening(make_cmd(&door), &socks);
        if rotation.counter(unix_now()) != before {
            continue;
        }
        assert_eq!(code(&o), 0, "{o:?}");
        let order: Vec<usize> = got.iter().map(|(i, _)| *i).collect();
        assert_eq!(order, [0, 1, 2, 3, 4], "datagrams to {ports:?}: {got:?}");
        assert!(got.iter().all(|(_, b)| b == &[0]), "{got:?}");
        let lines: String = ports
            .iter()
            .map(|p| format!("hitting udp 127.0.0.1:{p}\n"))
            .collect();
        assert_eq!(text(&o.stdout), lines);
        assert_eq!(text(&o.stderr), "");
        return;
    }
    panic!("no attempt was clear of period boundaries and taken ports");
}

#[test]
fn a_rotating_knock_sends_the_derived_ports_in_order() {
    let dir = tempfile::tempdir().expect("temp dir");
    let key = file_with_mode(dir.path(), "udp.key", VECTOR_SECRET, 0o600);
    rotating_udp_knock_arrives(|door| {
        let mut c = Command::new(KNOCK);
        c.args([
            "-v",
            "-d",
            "30",
            "--secret-file",
            &key,
            "--door",
            door,
            "--ports",
            "40000-44999",
            "--length",
            "5",
            "--protocols",
            "udp",
            "127.0.0.1",
        ]);
        c
    });
}

#[test]
fn a_rotating_door_from_the_doors_file_knocks() {
    let home = rotating_doors_home("");
    let doors = home.path().join("knock").join("doors");
    rotating_udp_knock_arrives(|door| {
        std::fs::write(
            &doors,
            format!(
                "[lab]\nhost = 127.0.0.1\nsecret_file = ssh.key\ndoor = {door}\n\
                 ports = 40000-44999\nlength = 5\nprotocols = udp\ndelay = 30\n"
            ),
        )
        .expect("write doors");
        let mut c = Command::new(KNOCK);
        c.args(["-v", "lab"]).env("XDG_CONFIG_HOME", home.path());
        c
    });
}

/// `ProxyCommand knock --connect %p myserver` with a rotating door.
#[test]
fn connect_through_a_rotating_door_from_the_doors_file() {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let server = std::thread::spawn(move || serve_echo(listener));
    let home = rotating_doors_home(
        "[myserver]\nhost = 127.0.0.1\nsecret_file = ssh.key\ndoor = ssh\n\
         ports = 10000-10999\nlength = 5\nprotocols = udp\n",
    );
    let o = knock_in(
        home.path(),
        &["-v", "--connect", &port.to_string(), "myserver"],
        b"hello\n",
    );
    assert_eq!(code(&o), 0, "{o:?}");
    assert_eq!(text(&o.stdout), expected_conversation(&["hello"]));
    assert_eq!(server.join().expect("server"), ["hello"]);
    let err = text(&o.stderr);
    let hits = err
        .lines()
        .filter(|l| l.starts_with("hitting udp 127.0.0.1:1"))
        .count();
    assert_eq!(hits, 5, "{err}");
}

/// The replay rule: a `--retry` round in the period the first round
/// knocked knocks the next period's sequence (the daemon would refuse the
/// same period twice).
#[test]
fn a_retry_in_the_same_period_knocks_the_next_periods_sequence() {
    use knockd::core::knock::Proto;
    use knockd::core::rotate::Rotation;
    let dir = tempfile::tempdir().expect("temp dir");
    let key = file_with_mode(dir.path(), "ssh.key", VECTOR_SECRET, 0o600);
    let rotation = Rotation {
        length: 5,
        first: 10000,
        last: 10999,
        protocols: vec![Proto::Tcp],
        period: 3600,
        skew: 1,
    };
    for _ in 0..3 {
        away_from_a_boundary(rotation.period, 10);
        let before = rotation.counter(unix_now());
        let closed = closed_port().to_string();
        let o = knock(&vector_args(
            &key,
            &[
                "-v",
                "--period",
                "3600",
                "--connect",
                &closed,
                "--retry",
                "1",
                "127.0.0.1",
            ],
        ));
        if rotation.counter(unix_now()) != before {
            continue;
        }
        assert_eq!(code(&o), EX_UNAVAILABLE, "{o:?}");
        let err = text(&o.stderr);
        let hit: Vec<&str> = err.lines().filter(|l| l.starts_with("hitting ")).collect();
        let want: Vec<String> = [before, before + 1]
            .iter()
            .flat_map(|&c| derived_ports("ssh", &rotation, c))
            .map(|p| format!("hitting tcp 127.0.0.1:{p}"))
            .collect();
        assert_eq!(hit, want, "{err}");
        return;
    }
    panic!("every attempt crossed a period boundary");
}

// ---------------------------------------------------------------------------
// Root-only: network namespaces

fn sh(script: &str) -> Output {
    run_bounded(
        Command::new("sh").args(["-c", script]),
        b"",
        Duration::from_secs(20),
    )
}

fn sh_ok(script: &str) {
    let o = sh(script);
    assert!(o.status.success(), "{script}: {}", text(&o.stderr));
}

/// A network namespace with `lo` up, deleted on drop.
struct Netns {
    name: String,
}

impl Netns {
    /// `kc-<tag>-<pid>`: unique per test and per test process.
    fn new(tag: &str) -> Netns {
        let name = format!("kc-{tag}-{}", std::process::id());
        // A leftover from a killed run of this very pid cannot exist, but a
        // stale name would make `add` fail confusingly: clear it first.
        let _ = sh(&format!("ip netns del {name} 2>/dev/null"));
        sh_ok(&format!(
            "ip netns add {name} && ip -n {name} link set lo up"
        ));
        Netns { name }
    }

    fn cmd(&self, program: &str) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name, program]);
        c
    }

    fn sh(&self, script: &str) {
        sh_ok(&format!("ip netns exec {} sh -c '{script}'", self.name));
    }

    fn path(&self) -> PathBuf {
        Path::new("/run/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = sh(&format!("ip netns del {}", self.name));
    }
}

/// Server and client namespaces joined by a veth pair:
/// server 192.0.2.1 / 2001:db8::1 on `kv-s`, client 192.0.2.2 / 2001:db8::2.
fn server_and_client(tag: &str) -> (Netns, Netns) {
    let srv = Netns::new(&format!("{tag}-s"));
    let cli = Netns::new(&format!("{tag}-c"));
    sh_ok(&format!(
        "ip -n {s} link add kv-s type veth peer name kv-c netns {c} && \
         ip -n {s} addr add 192.0.2.1/24 dev kv-s && \
         ip -n {s} addr add 2001:db8::1/64 dev kv-s nodad && \
         ip -n {c} addr add 192.0.2.2/24 dev kv-c && \
         ip -n {c} addr add 2001:db8::2/64 dev kv-c nodad && \
         ip -n {s} link set kv-s up && ip -n {c} link set kv-c up",
        s = srv.name,
        c = cli.name
    ));
    (srv, cli)
}

/// Which daemon guards the door.
#[derive(Clone, Copy, Debug)]
enum Daemon {
    Knockd08,
    Ours,
}

/// A daemon running in a namespace; killed (its pid) on drop.
struct RunningDaemon {
    child: Child,
    log: PathBuf,
}

impl RunningDaemon {
    /// Starts `daemon` on `iface` inside `ns` with `door` as its only door,
    /// and waits until its capture is open (the `starting up` log line).
    fn start(daemon: Daemon, ns: &Netns, iface: &str, dir: &Path, door: &str) -> RunningDaemon {
        use std::os::unix::fs::PermissionsExt;
        let log = dir.join("knockd.log");
        let conf = dir.join("knockd.conf");
        std::fs::write(
            &conf,
            format!("[options]\n\tlogfile = {}\n\n{door}", log.display()),
        )
        .expect("write config");
        std::fs::set_permissions(&conf, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let program = match daemon {
            Daemon::Knockd08 => KNOCKD_08,
            Daemon::Ours => KNOCKD,
        };
        let child = ns
            .cmd(program)
            .args(["-i", iface, "-c"])
            .arg(&conf)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("start {program}: {e}"));
        let d = RunningDaemon { child, log };
        d.wait_for_log("starting up", Duration::from_secs(10));
        d
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn wait_for_log(&self, needle: &str, limit: Duration) -> String {
        let deadline = Instant::now() + limit;
        loop {
            let log = self.log_text();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "no {needle:?} in the daemon log within {limit:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for RunningDaemon {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Which client knocks.
#[derive(Clone, Copy, Debug)]
enum Client {
    Ours,
    Debian,
}

impl Client {
    fn program(self) -> &'static str {
        match self {
            Client::Ours => KNOCK,
            Client::Debian => DEBIAN_KNOCK,
        }
    }
}

/// `client` knocks 7000, 8000:udp, 9000 on `host` from `client_ns`; the
/// door's command leaves a marker file named after the knocker. Returns the
/// client's stdout and the daemon's log.
fn door_opens(
    daemon: Daemon,
    client: Client,
    srv: &Netns,
    client_ns: &Netns,
    iface: &str,
    host: &str,
    expect_src: &str,
) -> (String, String) {
    let dir = tempfile::tempdir().expect("temp dir");
    let marker = dir.path().join("opened");
    let door = format!(
        "[lab]\n\tsequence = 7000,8000:udp,9000\n\tseq_timeout = 10\n\ttcpflags = syn\n\
         \tcommand = echo %IP% > {}\n",
        marker.display()
    );
    let d = RunningDaemon::start(daemon, srv, iface, dir.path(), &door);
    let o = run_bounded(
        client_ns
            .cmd(client.program())
            .args(["-v", host, "7000", "8000:udp", "9000"]),
        b"",
        Duration::from_secs(20),
    );
    assert_eq!(code(&o), 0, "{client:?}: {o:?}");
    let log = d.wait_for_log("OPEN SESAME", Duration::from_secs(10));
    assert!(
        log.contains(&format!("{expect_src}: lab: OPEN SESAME")),
        "{log}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while !marker.exists() {
        assert!(Instant::now() < deadline, "command did not run:\n{log}");
        std::thread::sleep(Duration::from_millis(20));
    }
    let opened = std::fs::read_to_string(&marker).expect("marker");
    assert_eq!(opened.trim(), expect_src);
    let stdout = text(&o.stdout);
    println!("--- {client:?} knock -> {daemon:?}\n{stdout}{log}");
    (stdout, log)
}

fn verbose_lines(host: &str) -> String {
    format!("hitting tcp {host}:7000\nhitting udp {host}:8000\nhitting tcp {host}:9000\n")
}

#[test]
#[ignore = "needs root: network namespaces and knockd 0.8 (/usr/sbin/knockd)"]
fn our_knock_opens_a_knockd_08_door() {
    let (srv, cli) = server_and_client("o08");
    let (out, _) = door_opens(
        Daemon::Knockd08,
        Client::Ours,
        &srv,
        &cli,
        "kv-s",
        "192.0.2.1",
        "192.0.2.2",
    );
    assert_eq!(out, verbose_lines("192.0.2.1"));
}

#[test]
#[ignore = "needs root: network namespaces and knockd 0.8 (/usr/sbin/knockd)"]
fn our_knock_opens_a_knockd_08_door_over_ipv6_loopback() {
    let ns = Netns::new("o08v6");
    let (out, _) = door_opens(Daemon::Knockd08, Client::Ours, &ns, &ns, "lo", "::1", "::1");
    assert_eq!(out, verbose_lines("::1"));
}

#[test]
#[ignore = "needs root: network namespaces and Debian's knock (/usr/bin/knock)"]
fn debian_knock_opens_our_door() {
    let (srv, cli) = server_and_client("deb");
    let (out, _) = door_opens(
        Daemon::Ours,
        Client::Debian,
        &srv,
        &cli,
        "kv-s",
        "192.0.2.1",
        "192.0.2.2",
    );
    // Our verbose text is knockd's, byte for byte.
    assert_eq!(out, verbose_lines("192.0.2.1"));
}

#[test]
#[ignore = "needs root: network namespaces and Debian's knock (/usr/bin/knock)"]
fn debian_knock_opens_our_door_over_ipv6_loopback() {
    let ns = Netns::new("debv6");
    let (out, _) = door_opens(Daemon::Ours, Client::Debian, &ns, &ns, "lo", "::1", "::1");
    assert_eq!(out, verbose_lines("::1"));
}

#[test]
#[ignore = "needs root: network namespaces (an empty one, so no DNS query leaves)"]
fn an_unresolvable_host_is_one_line_and_68() {
    let ns = Netns::new("dns");
    let o = run_bounded(
        ns.cmd(KNOCK).args(["no-such-host.invalid", "7000"]),
        b"",
        Duration::from_secs(30),
    );
    assert_eq!(code(&o), EX_NOHOST, "{o:?}");
    let err = text(&o.stderr);
    assert!(
        err.starts_with("knock: cannot resolve host \"no-such-host.invalid\": "),
        "{err}"
    );
    assert_eq!(err.lines().count(), 1, "{err}");
}

/// Counts SYNs on `lo` while our knock hits three ports per family whose
/// SYNs are dropped on arrival (so no RST ends the attempt): a socket left
/// in SYN_SENT would retransmit after 1 s. Exactly one SYN per hit.
#[test]
#[ignore = "needs root: network namespaces, iptables, tcpdump"]
fn a_tcp_hit_is_exactly_one_syn() {
    let ns = Netns::new("syn");
    ns.sh("iptables -A INPUT -p tcp --dport 7000:7002 -j DROP && \
         ip6tables -A INPUT -p tcp --dport 7000:7002 -j DROP");
    let mut dump = ns
        .cmd("tcpdump")
        .args([
            "-i",
            "lo",
            "-nn",
            "-l",
            "-U",
            "tcp[tcpflags] & tcp-syn != 0 or ip6",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("tcpdump");
    struct KillOnDrop(Child);
    impl Drop for KillOnDrop {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = dump.stdout.take().expect("stdout");
    let stderr = dump.stderr.take().expect("stderr");
    let dump = KillOnDrop(dump);
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if line.contains("listening on") {
                let _ = tx.send(());
            }
        }
    });
    rx.recv_timeout(Duration::from_secs(10))
        .expect("tcpdump did not start listening");
    let lines = drain(stdout);

    for host in ["127.0.0.1", "::1"] {
        let o = run_bounded(
            ns.cmd(KNOCK).args([host, "7000", "7001", "7002"]),
            b"",
            Duration::from_secs(20),
        );
        assert_eq!(code(&o), 0, "{o:?}");
    }
    // The first retransmission would come 1 s after its SYN.
    std::thread::sleep(Duration::from_millis(2500));
    drop(dump);
    let captured = text(&lines.join().expect("tcpdump output"));
    println!("--- tcpdump -i lo (SYNs)\n{captured}");
    let syns: Vec<&str> = captured
        .lines()
        .filter(|l| l.contains("Flags [S]"))
        .collect();
    for host in ["127.0.0.1", "::1"] {
        for port in 7000..=7002 {
            let to_port = format!("> {host}.{port}:");
            let n = syns.iter().filter(|l| l.contains(&to_port)).count();
            assert_eq!(n, 1, "SYNs to {host}.{port}:\n{captured}");
        }
    }
    assert_eq!(syns.len(), 6, "{captured}");
}

/// Moves the calling thread into the namespace at `path`; sockets it opens
/// afterwards live there. Only this thread moves.
fn enter_netns(path: &Path) {
    use std::os::fd::AsRawFd;
    let f = std::fs::File::open(path).expect("open netns");
    // SAFETY: setns on a valid namespace fd affects only the calling thread
    // (a thread spawned for this purpose); no memory is shared with the call.
    let rc = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns: {}", std::io::Error::last_os_error());
}

/// The ProxyCommand scenario. The server namespace drops TCP to port 2222
/// until knockd 0.8's door command deletes that rule; an echo server
/// listens there. The client's first knock loses its 8000 hit (a client-side
/// OUTPUT rule drops the first SYN to 8000 only: the daemon's capture would
/// see a packet dropped on the server's INPUT), so the first connection
/// times out; `--retry` knocks again, the door opens, and a conversation is
/// relayed through stdin/stdout.
#[test]
#[ignore = "needs root: network namespaces, iptables/nft and knockd 0.8"]
fn connect_with_retry_gets_through_after_a_lost_knock() {
    let (srv, cli) = server_and_client("px");
    srv.sh("iptables -A INPUT -p tcp --dport 2222 -j DROP");
    // numgen counts evaluations of this rule, which only SYNs to 8000
    // reach: the first one (0) is dropped, later ones pass.
    cli.sh(
        "nft add table inet kc && \
         nft \"add chain inet kc out { type filter hook output priority 0; }\" && \
         nft add rule inet kc out tcp dport 8000 tcp flags syn numgen inc mod 1000 == 0 counter drop",
    );

    let listener = {
        let path = srv.path();
        std::thread::spawn(move || {
            enter_netns(&path);
            TcpListener::bind((Ipv4Addr::new(192, 0, 2, 1), 2222)).expect("bind in server ns")
        })
        .join()
        .expect("listener thread")
    };
    let server = std::thread::spawn(move || serve_echo(listener));

    let dir = tempfile::tempdir().expect("temp dir");
    let door = "[ssh]\n\tsequence = 7000,8000,9000\n\tseq_timeout = 5\n\ttcpflags = syn\n\
                \tcommand = /usr/sbin/iptables -D INPUT -p tcp --dport 2222 -j DROP\n";
    let d = RunningDaemon::start(Daemon::Knockd08, &srv, "kv-s", dir.path(), door);

    let start = Instant::now();
    let o = run_bounded(
        cli.cmd(KNOCK).args([
            "--connect",
            "2222",
            "--retry",
            "3",
            "--timeout",
            "2",
            "192.0.2.1",
            "7000",
            "8000",
            "9000",
        ]),
        b"SSH-2.0-OpenSSH_test\r\nuname\n",
        Duration::from_secs(30),
    );
    let took = start.elapsed();
    let log = d.log_text();
    println!(
        "--- knock --connect (took {took:?})\nstdout:\n{}stderr:\n{}knockd 0.8 log:\n{log}",
        text(&o.stdout),
        text(&o.stderr)
    );
    assert_eq!(code(&o), 0, "{o:?}\n{log}");
    assert_eq!(
        text(&o.stdout),
        expected_conversation(&["SSH-2.0-OpenSSH_test", "uname"])
    );
    let err = text(&o.stderr);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(
        err.starts_with("knock: cannot connect to 192.0.2.1:2222: ")
            && err.contains("knocking again in 0.5s (retry 1 of 3)"),
        "{err}"
    );
    assert_eq!(log.matches("OPEN SESAME").count(), 1, "{log}");
    assert_eq!(
        server.join().expect("server"),
        ["SSH-2.0-OpenSSH_test", "uname"]
    );
    // The rule dropped exactly the first knock's 8000.
    let counter = run_bounded(
        cli.cmd("nft").args(["list", "chain", "inet", "kc", "out"]),
        b"",
        Duration::from_secs(10),
    );
    assert!(
        text(&counter.stdout).contains("counter packets 1 "),
        "{}",
        text(&counter.stdout)
    );
}
