//! Unprivileged: rotating doors (show-sequence vectors, gen-secret, secret files, derived ports on loopback).

use super::*;

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
