use super::*;

fn args(list: &[&str]) -> Args {
    let mut all = vec!["knock"];
    all.extend_from_slice(list);
    match args::parse_args(all) {
        Ok(a) => a,
        Err(e) => panic!("{list:?}: {e}"),
    }
}

fn doors_file(text: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("doors");
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let p = path.to_str().expect("utf-8").to_string();
    (dir, p)
}

fn protos(p: &Plan) -> Vec<(u16, Proto)> {
    p.hits.iter().map(|h| (h.port, h.proto)).collect()
}

#[test]
fn command_line_plan_as_knockd() {
    let p = plan(&args(&["-d", "20", "h", "1", "2:udp", "ssh"])).expect("plan");
    assert_eq!(p.host, "h");
    assert_eq!(p.family, Family::Any);
    assert_eq!(
        protos(&p),
        [(1, Proto::Tcp), (2, Proto::Udp), (22, Proto::Tcp)]
    );
    assert_eq!(p.hits[2].label, "ssh");
    assert_eq!(p.delay, Duration::from_millis(20));
    assert_eq!(p.connect, None);
}

#[test]
fn udp_flag_overrides_every_suffix_as_knockd() {
    let p = plan(&args(&["-u", "h", "1:tcp", "2"])).expect("plan");
    assert_eq!(protos(&p), [(1, Proto::Udp), (2, Proto::Udp)]);
}

#[test]
fn connect_defaults() {
    let p = plan(&args(&["--connect", "22", "h", "1"])).expect("plan");
    assert_eq!(
        p.connect,
        Some(Connect {
            port: 22,
            retries: 0,
            timeout: Duration::from_secs(5)
        })
    );
}

#[test]
fn door_from_file_with_flags_winning() {
    let (_dir, path) = doors_file(
        "[srv]\nhost = 192.0.2.7\nsequence = 7000 8000:tcp 9000\nprotocol = udp\n\
         delay = 40\nfamily = ipv4\n",
    );
    let p = plan(&args(&["--doors", &path, "srv"])).expect("plan");
    assert_eq!(p.host, "192.0.2.7");
    assert_eq!(
        protos(&p),
        [(7000, Proto::Udp), (8000, Proto::Tcp), (9000, Proto::Udp)]
    );
    assert_eq!((p.delay, p.family), (Duration::from_millis(40), Family::V4));
    assert!(p.warnings.is_empty());

    let p = plan(&args(&[
        "--doors",
        &path,
        "-6",
        "-d",
        "0",
        "--connect",
        "22",
        "srv",
    ]))
    .expect("plan");
    assert_eq!((p.delay, p.family), (Duration::ZERO, Family::V6));
    assert_eq!(p.connect.map(|c| c.port), Some(22));
}

#[test]
fn door_errors_and_their_exit_codes() {
    let (dir, path) = doors_file("[srv]\nhost = h\nsequence = 1\n");
    let e = plan(&args(&["--doors", &path, "other"])).expect_err("no such door");
    assert_eq!(
        e.to_string(),
        format!("no ports given, and no door [other] in {path}")
    );
    assert_eq!(e.exit_code(), EX_USAGE);

    let missing = dir.path().join("nope");
    let e = plan(&args(&["--doors", missing.to_str().expect("utf-8"), "srv"]))
        .expect_err("missing file");
    assert!(e.to_string().starts_with("cannot read doors file "), "{e}");
    assert_eq!(e.exit_code(), EX_NOINPUT);

    let (_d2, broken) = doors_file("[srv]\nhost = h\nsequence = 1:icmp\n");
    let e = plan(&args(&["--doors", &broken, "srv"])).expect_err("broken");
    assert!(
        e.to_string()
            .starts_with(&format!("{broken}:3: sequence: unknown protocol")),
        "{e}"
    );
    assert_eq!(e.exit_code(), EX_CONFIG);

    let e = plan(&args(&["--doors", &path, "h", "1"])).expect_err("doors with ports");
    assert_eq!(e.exit_code(), EX_USAGE);
}

#[test]
fn exit_codes_are_sysexits() {
    let io = || io::Error::from_raw_os_error(libc::ECONNREFUSED);
    let addr: SocketAddr = "192.0.2.1:22".parse().expect("addr");
    assert_eq!(ClientError::Usage(String::new()).exit_code(), 64);
    assert_eq!(
        ClientError::Resolve(ResolveError::NoAddress {
            host: "h".into(),
            family: Family::V6
        })
        .exit_code(),
        68
    );
    let connect = ClientError::Connect {
        addr,
        knocks: 4,
        source: io(),
    };
    assert_eq!(connect.exit_code(), 69);
    assert_eq!(
        connect.to_string(),
        "cannot connect to 192.0.2.1:22: Connection refused (os error 111) (after 4 knocks)"
    );
    assert_eq!(
        ClientError::Hit(HitError::Socket {
            proto: Proto::Tcp,
            source: io()
        })
        .exit_code(),
        71
    );
    assert_eq!(
        ClientError::Relay(RelayError::FromServer(io())).exit_code(),
        74
    );
}

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

/// A secret file (mode 600) in a temp dir: (dir, path).
fn secret_file(text: &str) -> (tempfile::TempDir, String) {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("ssh.key");
    std::fs::write(&path, text).expect("write");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let p = path.to_str().expect("utf-8").to_string();
    (dir, p)
}

/// The rotating flags of the README's vector, then `rest`.
fn rotating_args(key: &str, rest: &[&str]) -> Args {
    let mut all = vec![
        "--secret-file",
        key,
        "--door",
        "ssh",
        "--ports",
        "10000-10999",
        "--length",
        "5",
    ];
    all.extend_from_slice(rest);
    args(&all)
}

fn usage_error(a: &Args) -> String {
    match mode(a) {
        Ok(m) => panic!("{a:?}: {m:?}"),
        Err(e) => {
            assert_eq!(e.exit_code(), EX_USAGE, "{e}");
            e.to_string()
        }
    }
}

#[test]
fn rotating_flags_plan_a_rotating_knock() {
    let (_dir, key) = secret_file(&format!("{SECRET}\n"));
    let p = plan(&rotating_args(
        &key,
        &["-d", "5", "-4", "--connect", "22", "h"],
    ))
    .expect("plan");
    assert_eq!((p.host.as_str(), p.family), ("h", Family::V4));
    assert!(p.hits.is_empty());
    assert_eq!(p.delay, Duration::from_millis(5));
    assert_eq!(p.connect.map(|c| c.port), Some(22));
    assert!(p.warnings.is_empty());
    let r = p.rotating.expect("rotating");
    assert_eq!(r.door, "ssh");
    assert_eq!(
        (r.rotation.period, &r.rotation.protocols[..]),
        (30, &[Proto::Tcp][..])
    );
    assert_eq!(
        r.show_line(r.rotation.counter(1_700_000_000)),
        "10759:tcp 10995:tcp 10648:tcp 10389:tcp 10822:tcp"
    );
    let p = plan(&rotating_args(
        &key,
        &["--period", "60", "--protocols", "udp", "h"],
    ))
    .expect("plan");
    let r = p.rotating.expect("rotating");
    assert_eq!(
        (r.rotation.period, &r.rotation.protocols[..]),
        (60, &[Proto::Udp][..])
    );
}

#[test]
fn show_sequence_needs_no_host() {
    let (_dir, key) = secret_file(SECRET);
    let m = mode(&rotating_args(
        &key,
        &["--show-sequence", "--at", "1700000010"],
    ))
    .expect("mode");
    let Mode::Show(show) = m else { panic!("{m:?}") };
    assert_eq!(show.at, Some(1_700_000_010));
    assert_eq!(
        show.rotating
            .show_line(show.rotating.rotation.counter(1_700_000_010)),
        "10846:tcp 10066:tcp 10484:tcp 10876:tcp 10800:tcp"
    );
    // A HOST is allowed and ignored; plan() refuses to knock.
    let a = rotating_args(&key, &["--show-sequence", "h"]);
    assert!(matches!(mode(&a), Ok(Mode::Show(_))));
    assert_eq!(
        usage_error_of_plan(&a),
        "--show-sequence prints a sequence; it does not knock"
    );
}

fn usage_error_of_plan(a: &Args) -> String {
    let e = plan(a).expect_err("not a knock");
    assert_eq!(e.exit_code(), EX_USAGE);
    e.to_string()
}

#[test]
fn gen_secret_mode() {
    let a = args(&["--gen-secret", "/x/new.key"]);
    assert_eq!(
        mode(&a).expect("mode"),
        Mode::GenSecret("/x/new.key".into())
    );
    assert!(mode(&a).expect("mode").warnings().is_empty());
    assert_eq!(
        usage_error_of_plan(&a),
        "--gen-secret makes a secret; it does not knock"
    );
}

#[test]
fn rotating_usage_errors_are_one_line() {
    let (_dir, key) = secret_file(SECRET);
    let missing = |skip: &str| {
        let full = [
            ("--secret-file", key.as_str()),
            ("--door", "ssh"),
            ("--ports", "1-9"),
            ("--length", "3"),
        ];
        let mut list = vec![];
        for (flag, value) in full.iter().filter(|(f, _)| *f != skip) {
            list.extend([*flag, *value]);
        }
        list.push("h");
        usage_error(&args(&list))
    };
    assert_eq!(
        missing("--door"),
        "--secret-file needs --door NAME (the door's name in knockd.conf)"
    );
    assert_eq!(
        missing("--ports"),
        "--secret-file needs --ports A-B (the door's Sequence_Ports)"
    );
    assert_eq!(
        missing("--length"),
        "--secret-file needs --length N (the door's Sequence_Length)"
    );
    assert_eq!(
        missing("--secret-file"),
        "--door is for a rotating door: give it with --secret-file FILE, --door, --ports and --length"
    );
    for flag in [
        &["--period", "30"][..],
        &["--protocols", "udp"],
        &["--length", "3"],
    ] {
        let mut list = flag.to_vec();
        list.push("h");
        let e = usage_error(&args(&list));
        assert!(
            e.starts_with(&format!("{} is for a rotating door", flag[0])),
            "{e}"
        );
    }
    assert_eq!(
        usage_error(&rotating_args(&key, &["h", "7000"])),
        "with --secret-file the sequence is derived; ports on the command line (\"7000\") are not allowed"
    );
    assert_eq!(
        usage_error(&rotating_args(&key, &["--doors", "/x", "h"])),
        "--doors is for knock DOOR; with --secret-file it would be ignored"
    );
    assert_eq!(
        usage_error(&rotating_args(&key, &["-u", "h"])),
        "-u does not apply to a rotating door: its protocols are part of the sequence (see --protocols)"
    );
    assert_eq!(
        usage_error(&args(&[
            "--secret-file",
            &key,
            "--door",
            "",
            "--ports",
            "1-9",
            "--length",
            "3",
            "h"
        ])),
        "--door: empty door name"
    );
    // Rotation::validate's message, naming the door.
    assert_eq!(
        usage_error(&args(&["--secret-file", &key, "--door", "ssh", "--ports", "1-3", "--length", "4", "h"])),
        "rotating door \"ssh\": Sequence_Length 4 is more than the 3 ports of Sequence_Ports (no port repeats)"
    );
    assert_eq!(
        usage_error(&rotating_args(&key, &["--protocols", "tcp,udp", "h"])),
        "rotating door \"ssh\": Sequence_Protocols names 2 protocols for 5 steps (give one, or one per step)"
    );
    assert_eq!(
        usage_error(&args(&["--show-sequence"])),
        "--show-sequence needs a rotating DOOR, or --secret-file with --door, --ports and --length"
    );
    assert!(usage_error(&args(&["--show-sequence", "h", "1"]))
        .starts_with("--show-sequence is for rotating doors: give --secret-file"));
}

#[test]
fn secret_file_problems_and_their_exit_codes() {
    let (dir, key) = secret_file("not base32!\n");
    let e = mode(&rotating_args(&key, &["h"])).expect_err("malformed");
    assert_eq!(
        e.to_string(),
        format!("secret file {key}: not base32 (letters A-Z and digits 2-7)")
    );
    assert_eq!(e.exit_code(), EX_CONFIG);
    let missing = dir.path().join("nope");
    let missing = missing.to_str().expect("utf-8");
    let e = mode(&rotating_args(missing, &["h"])).expect_err("missing");
    assert!(
        e.to_string()
            .starts_with(&format!("cannot read secret file {missing}: ")),
        "{e}"
    );
    assert_eq!(e.exit_code(), EX_NOINPUT);
    // Group-readable: a warning, and on we go.
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(&key, SECRET).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o640)).expect("chmod");
    let p = plan(&rotating_args(&key, &["h"])).expect("plan");
    assert_eq!(p.warnings.len(), 1);
    assert!(
        p.warnings[0].starts_with(&format!("{key}: warning: ")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn rotating_door_from_the_doors_file() {
    let (dir, path) = doors_file(
        "[srv]\nhost = 192.0.2.7\nsecret_file = ssh.key\ndoor = ssh\nports = 10000-10999\n\
         length = 5\ndelay = 40\n[fixed]\nhost = h\nsequence = 1\n\
         [broken]\nhost = h\nsecret_file = nope.key\nports = 1-9\nlength = 3\n",
    );
    use std::os::unix::fs::PermissionsExt;
    let key = dir.path().join("ssh.key");
    std::fs::write(&key, format!("{SECRET}\n")).expect("write");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).expect("chmod");

    let p = plan(&args(&["--doors", &path, "--connect", "22", "srv"])).expect("plan");
    assert_eq!(
        (p.host.as_str(), p.delay),
        ("192.0.2.7", Duration::from_millis(40))
    );
    assert!(p.hits.is_empty());
    let r = p.rotating.expect("rotating");
    assert_eq!(
        r.show_line(r.rotation.counter(1_700_000_000)),
        "10759:tcp 10995:tcp 10648:tcp 10389:tcp 10822:tcp"
    );

    let m = mode(&args(&[
        "--doors",
        &path,
        "--show-sequence",
        "--at",
        "1700000000",
        "srv",
    ]))
    .expect("mode");
    assert!(
        matches!(&m, Mode::Show(s) if s.at == Some(1_700_000_000)),
        "{m:?}"
    );

    assert_eq!(
        usage_error(&args(&["--doors", &path, "--show-sequence", "fixed"])),
        "--show-sequence is for rotating doors; door [fixed] has a fixed sequence"
    );
    assert!(usage_error(&args(&["--doors", &path, "-u", "srv"])).starts_with("-u does not apply"));
    // The rotating flags are not for a door of the file.
    assert!(
        usage_error(&args(&["--doors", &path, "--period", "60", "srv"]))
            .starts_with("--period is for a rotating door")
    );
    // A door's missing secret file is 66, named with its directory.
    let e = mode(&args(&["--doors", &path, "broken"])).expect_err("no key");
    assert!(
        e.to_string().starts_with(&format!(
            "cannot read secret file {}: ",
            dir.path().join("nope.key").display()
        )),
        "{e}"
    );
    assert_eq!(e.exit_code(), EX_NOINPUT);
    // A broken door elsewhere in the file does not stop a fixed one.
    assert!(plan(&args(&["--doors", &path, "fixed"])).is_ok());
}

#[test]
fn rotating_exit_codes() {
    let io = || io::Error::from_raw_os_error(libc::EACCES);
    assert_eq!(
        ClientError::GenSecret(GenSecretError::Exists { path: "k".into() }).exit_code(),
        73
    );
    assert_eq!(
        ClientError::GenSecret(GenSecretError::Create {
            path: "k".into(),
            source: io()
        })
        .exit_code(),
        73
    );
    assert_eq!(
        ClientError::GenSecret(GenSecretError::Random("x".into())).exit_code(),
        71
    );
    assert_eq!(ClientError::Clock.exit_code(), 71);
    assert_eq!(ClientError::Stdout(io()).exit_code(), 74);
    assert_eq!(
        ClientError::Secret(SecretFileError::Unreadable {
            path: "k".into(),
            source: io()
        })
        .exit_code(),
        66
    );
    assert_eq!(
        ClientError::Secret(SecretFileError::Malformed {
            path: "k".into(),
            problem: "x".into()
        })
        .exit_code(),
        78
    );
}

#[test]
fn backoff_doubles_to_a_cap() {
    let secs: Vec<f64> = (1..=7).map(|n| backoff(n).as_secs_f64()).collect();
    assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]);
    assert_eq!(backoff(u32::MAX), Duration::from_secs(8));
}
