//! Doors of users (`Sequence_Secret_Dir`, issue 21) end to end: our
//! `knock` with each user's own key file opens the door on `lo` and across
//! a veth pair, and the log names who opened; a revoked user (key removed, SIGHUP) is refused
//! while the other still opens; `knockd --add-user` writes a key whose
//! printed command line opens the door; `--check` refuses a key file
//! others can read (exit 78).
//!
//! Root only for the live tests (`#[ignore]`d otherwise); ports 78xx,
//! sources 127.0.6.x.

mod support;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use support::{
    require_root, run_bounded, test_dir, write_config, Daemon, VethPair, SRV_IF, SRV_V4, WAIT,
};

const KNOCK: &str = env!("CARGO_BIN_EXE_knock");

const ALICE: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";
const BOB: &str = "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U";

/// `dir/users` (mode 0700) with `NAME.key` (mode 0600) for each user.
fn users_dir(dir: &Path, users: &[(&str, &str)]) -> PathBuf {
    let users_dir = dir.join("users");
    fs::create_dir(&users_dir).unwrap();
    fs::set_permissions(&users_dir, fs::Permissions::from_mode(0o700)).unwrap();
    for (name, secret) in users {
        key_file(&users_dir.join(format!("{name}.key")), secret);
    }
    users_dir
}

fn key_file(path: &Path, secret: &str) {
    fs::write(path, format!("{secret}\n")).unwrap();
    fs::set_permissions(path, fs::Permissions::from_mode(0o600)).unwrap();
}

/// A door of users `door` on 7800-7899, 4 steps, 30 s periods. Each test
/// names its own door: the name is part of the derivation, so tests
/// running side by side on `lo` never open each other's doors.
fn conf(door: &str, users: &Path, extra: &str) -> String {
    format!(
        "[{door}]\n\tSequence_Secret_Dir = {}\n\tSequence_Ports = 7800-7899\n\
         \tSequence_Length = 4\n\tSequence_Period = 30\n\tTCPFlags = syn\n{extra}",
        users.display()
    )
}

/// `knock`'s arguments for `door` with key file `key`, before HOST.
fn knock_args(door: &str, key: &Path) -> Vec<String> {
    let key = key.display().to_string();
    [
        "--secret-file",
        &key,
        "--door",
        door,
        "--ports",
        "7800-7899",
        "--length",
        "4",
        "--period",
        "30",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_knock(args: &[String]) {
    let out = run_bounded(Command::new(KNOCK).args(args), Duration::from_secs(15));
    assert!(
        out.status.success(),
        "knock {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The ports of a key's sequence at Unix time `at`.
fn sequence_at(door: &str, key: &Path, at: u64) -> Vec<u16> {
    let mut args = knock_args(door, key);
    args.extend([
        "--show-sequence".to_string(),
        "--at".into(),
        at.to_string(),
        "127.0.0.1".into(),
    ]);
    let out = run_bounded(Command::new(KNOCK).args(&args), Duration::from_secs(10));
    assert!(out.status.success(), "knock --show-sequence");
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text.lines().last().expect("a sequence line");
    line.split_whitespace()
        .map(|w| w.split(':').next().unwrap().parse().expect("a port"))
        .collect()
}

fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// Waits until the current 30 s period has at least `margin` left.
fn away_from_a_boundary(margin: Duration) {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap();
    let into = Duration::from_nanos((now.as_nanos() % 30_000_000_000) as u64);
    if Duration::from_secs(30) - into < margin {
        std::thread::sleep(Duration::from_secs(30) - into + Duration::from_millis(100));
    }
}

fn transcript(msgs: &[String]) {
    for m in msgs {
        eprintln!("log: {m}");
    }
}

/// Two users, each with their own key file, open the same door in the
/// same period; the log names each, and `%USER%` reaches the command.
#[test]
#[ignore = "needs root: live capture on lo"]
fn two_users_open_in_one_period_with_their_own_keys() {
    require_root("live capture on lo");
    let dir = test_dir();
    let users = users_dir(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let starts = dir.path().join("starts");
    let conf = conf(
        "two",
        &users,
        &format!(
            "\tStart_Command = echo %IP% %USER% >> {}\n",
            starts.display()
        ),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    away_from_a_boundary(Duration::from_secs(8));
    for user in ["alice", "bob"] {
        let mut args = knock_args("two", &users.join(format!("{user}.key")));
        args.push("127.0.0.1".into());
        eprintln!("$ knock {}", args.join(" "));
        run_knock(&args);
        daemon.wait_for_line(&format!("127.0.0.1: two: opened by {user}"), WAIT);
    }
    daemon.wait_until("both starts", WAIT, |_| {
        fs::read_to_string(&starts).is_ok_and(|s| s.lines().count() == 2)
    });
    let msgs = daemon.stop();
    transcript(&msgs);
    assert_eq!(
        fs::read_to_string(&starts).unwrap(),
        "127.0.0.1 alice\n127.0.0.1 bob\n"
    );
    assert_eq!(
        msgs.iter()
            .filter(|m| *m == "127.0.0.1: two: OPEN SESAME")
            .count(),
        2,
        "{msgs:?}"
    );
}

/// Across a veth pair, from the client's namespace, with the user's own
/// key: the door opens for 192.0.2.2, named.
#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn a_user_opens_across_a_veth_pair() {
    require_root("network namespaces and live capture");
    let net = VethPair::new("usr");
    let dir = test_dir();
    let users = users_dir(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let conf = conf(
        "veth",
        &users,
        &format!(
            "\tStart_Command = touch {}/opened-%IP%-%USER%\n",
            dir.path().display()
        ),
    );
    let mut daemon = Daemon::start(dir.path(), Some(&net.server), &["-i", SRV_IF], &conf);
    away_from_a_boundary(Duration::from_secs(8));
    let mut args = knock_args("veth", &users.join("bob.key"));
    args.push(SRV_V4.to_string());
    let out = run_bounded(
        Command::new("ip")
            .args(["netns", "exec", net.client.name(), KNOCK])
            .args(&args),
        Duration::from_secs(15),
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    daemon.wait_for_file(&dir.path().join("opened-192.0.2.2-bob"));
    let msgs = daemon.stop();
    transcript(&msgs);
    assert!(
        msgs.iter().any(|m| m == "192.0.2.2: veth: opened by bob"),
        "{msgs:?}"
    );
}

/// Alice's key file is removed and knockd gets SIGHUP: her sequences of
/// the current and the next period are refused at once, while bob, whose
/// key stays, opens.
#[test]
#[ignore = "needs root: live capture on lo, packet injection"]
fn a_revoked_user_is_refused_after_sighup_while_the_other_opens() {
    require_root("live capture on lo, packet injection");
    let dir = test_dir();
    let users = users_dir(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    // The client keeps its own copy of alice's key.
    let alice_copy = dir.path().join("alice-copy.key");
    key_file(&alice_copy, ALICE);
    let starts = dir.path().join("starts");
    let conf = conf(
        "revoked",
        &users,
        &format!("\tStart_Command = echo %USER% >> {}\n", starts.display()),
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    away_from_a_boundary(Duration::from_secs(10));
    let now = unix_now();
    let current = sequence_at("revoked", &alice_copy, now);
    let next = sequence_at("revoked", &alice_copy, now + 30);

    fs::remove_file(users.join("alice.key")).unwrap();
    eprintln!("$ rm {}/alice.key; kill -HUP knockd", users.display());
    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    let conf_path = dir.path().join("knockd.conf");
    daemon.wait_for_line(
        &format!("re-reading config file: {}", conf_path.display()),
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(300));

    // Alice's current period with our client, her next one injected.
    let mut args = knock_args("revoked", &alice_copy);
    args.push("127.0.0.1".into());
    eprintln!("$ knock {}", args.join(" "));
    run_knock(&args);
    let mut inject = support::Injector::lo();
    inject.knock(61, &next);
    inject.knock(62, &current);
    // Bob, after her: when he has opened, her knocks were all seen.
    let mut args = knock_args("revoked", &users.join("bob.key"));
    args.push("127.0.0.1".into());
    eprintln!("$ knock {}", args.join(" "));
    run_knock(&args);
    daemon.wait_for_line("127.0.0.1: revoked: opened by bob", WAIT);
    std::thread::sleep(Duration::from_millis(300));
    let msgs = daemon.stop();
    transcript(&msgs);
    assert!(
        !msgs.iter().any(|m| m.contains("opened by alice")),
        "{msgs:?}"
    );
    assert_eq!(
        msgs.iter().filter(|m| m.ends_with("OPEN SESAME")).count(),
        1,
        "{msgs:?}"
    );
    assert_eq!(fs::read_to_string(&starts).unwrap(), "bob\n");
}

/// `knockd --add-user` writes the key and prints a `knock` line; that
/// line (with the key's path and this host's address) opens the door
/// once knockd is told (SIGHUP), and `--list-users` then says when.
#[test]
#[ignore = "needs root: live capture on lo"]
fn add_user_then_knock_with_the_printed_command_line() {
    require_root("live capture on lo");
    let dir = test_dir();
    let users = users_dir(dir.path(), &[("bob", BOB)]);
    let conf = conf("added", &users, "\tStart_Command = true\n");
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let conf_path = dir.path().join("knockd.conf");
    let out = run_bounded(
        Command::new(support::knockd_bin()).args([
            "--add-user",
            "carol",
            "--door",
            "added",
            "-c",
            &conf_path.display().to_string(),
        ]),
        Duration::from_secs(10),
    );
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    eprintln!(
        "$ knockd --add-user carol --door added -c {}",
        conf_path.display()
    );
    eprint!("{}{stdout}", String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success());
    let key = users.join("carol.key");
    assert_eq!(
        fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    // Never over an existing key.
    let again = run_bounded(
        Command::new(support::knockd_bin()).args([
            "--add-user",
            "carol",
            "--door",
            "added",
            "-c",
            &conf_path.display().to_string(),
        ]),
        Duration::from_secs(10),
    );
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("already exists"));

    let line = stdout
        .lines()
        .find(|l| l.starts_with("knock "))
        .expect("a knock command line");
    let mut words: Vec<String> = line.split_whitespace().skip(1).map(String::from).collect();
    let n = words.len();
    words[n - 1] = "127.0.0.1".into();
    let at = words.iter().position(|w| w == "carol.key").expect("key");
    words[at] = key.display().to_string();

    daemon.signal(nix::sys::signal::Signal::SIGHUP);
    daemon.wait_for_line(
        &format!("re-reading config file: {}", conf_path.display()),
        WAIT,
    );
    std::thread::sleep(Duration::from_millis(300));
    away_from_a_boundary(Duration::from_secs(8));
    run_knock(&words);
    daemon.wait_for_line("127.0.0.1: added: opened by carol", WAIT);
    let list = run_bounded(
        Command::new(support::knockd_bin()).args([
            "--list-users",
            "added",
            "-c",
            &conf_path.display().to_string(),
        ]),
        Duration::from_secs(10),
    );
    let listed = String::from_utf8_lossy(&list.stdout).to_string();
    eprint!("$ knockd --list-users added\n{listed}");
    let msgs = daemon.stop();
    transcript(&msgs);
    assert!(list.status.success());
    let lines: Vec<&str> = listed.lines().collect();
    assert_eq!(lines.len(), 2, "{listed}");
    assert!(lines[0].starts_with("bob\tnot opened"), "{listed}");
    assert!(
        lines[1].starts_with("carol\tlast opened in the period from "),
        "{listed}"
    );
}

/// A key file others can read, or a directory others can write, is a
/// config error naming the file: `--check` exits 78.
#[test]
fn an_untrusted_key_file_or_directory_is_refused_by_check() {
    let dir = test_dir();
    let users = users_dir(dir.path(), &[("alice", ALICE), ("bob", BOB)]);
    let conf_path = write_config(
        dir.path(),
        &conf("untrusted", &users, "\tStart_Command = true\n"),
    );
    let check = || {
        let out = run_bounded(
            Command::new(support::knockd_bin()).args([
                "--check",
                "-c",
                &conf_path.display().to_string(),
            ]),
            Duration::from_secs(10),
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    assert_eq!(check().0, Some(0), "{}", check().1);

    let bob = users.join("bob.key");
    fs::set_permissions(&bob, fs::Permissions::from_mode(0o644)).unwrap();
    let (code, err) = check();
    eprint!("{err}");
    assert_eq!(code, Some(78), "{err}");
    assert!(
        err.contains(&format!(
            ": Sequence_Secret_Dir: {} is readable by group or others",
            bob.display()
        )),
        "{err}"
    );
    fs::set_permissions(&bob, fs::Permissions::from_mode(0o600)).unwrap();

    fs::set_permissions(&users, fs::Permissions::from_mode(0o777)).unwrap();
    let (code, err) = check();
    eprint!("{err}");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("is writable by group or others"), "{err}");
    fs::set_permissions(&users, fs::Permissions::from_mode(0o700)).unwrap();

    // A name that cannot be a user's.
    key_file(&users.join("bad name.key"), ALICE);
    let (code, err) = check();
    eprint!("{err}");
    assert_eq!(code, Some(78), "{err}");
    assert!(err.contains("bad name.key: a user's name is"), "{err}");
}
