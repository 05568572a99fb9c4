//! Tests of reading a config from disk: files, one-time files (the
//! resolve step) and permissions. Messages are asserted whole.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::*;
use crate::core::config::{Door, FlagRule, Sequence};
use crate::core::knock::{Proto, TcpFlags};

const FILE: &str = "k.conf";

/// Config text as `load` reads a file named `k.conf`.
fn load_str(text: &str) -> Result<Parsed, Diagnostics> {
    load_from(text.as_bytes(), Path::new(FILE))
}

fn parse_ok(text: &str) -> (Config, Vec<String>) {
    match load_str(text) {
        Ok((config, warnings)) => (config, lines(&warnings)),
        Err(d) => panic!("unexpected errors: {:#?}", lines(&d.errors)),
    }
}

/// The only door of `text`.
fn door(text: &str) -> Door {
    let mut c = parse_ok(text).0;
    assert_eq!(c.doors.len(), 1, "expected one door");
    c.doors.remove(0)
}

fn lines<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

/// The single error of `text`.
fn error(text: &str) -> String {
    match load_str(text) {
        Ok((c, _)) => panic!("parsed without error: {c:#?}"),
        Err(d) => {
            assert_eq!(d.errors.len(), 1, "expected one error, got {:#?}", d.errors);
            d.errors[0].to_string()
        }
    }
}

fn steps(seq: &Sequence) -> Vec<(u16, Proto)> {
    seq.steps().iter().map(|s| (s.port, s.proto)).collect()
}

/// A file (mode 0600) alone in a private directory: the trust rule refuses
/// a file directly in /tmp, where others can plant names beside it.
struct TempFile {
    _dir: tempfile::TempDir,
    path: std::path::PathBuf,
}

impl TempFile {
    fn path(&self) -> &Path {
        &self.path
    }
}

fn temp_file(text: &[u8]) -> TempFile {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("file");
    let mut f = std::fs::File::create(&path).expect("temp file");
    f.write_all(text).expect("write temp file");
    f.flush().expect("flush temp file");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    TempFile { _dir: dir, path }
}

fn rule(set: TcpFlags, clear: TcpFlags) -> FlagRule {
    FlagRule { set, clear }
}

#[test]
fn load_missing_file_and_directory() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("nope.conf");
    let diag = load(&missing).expect_err("missing");
    assert_eq!(
        lines(&diag.errors),
        [format!("{}: cannot read: no such file", missing.display())]
    );
    let diag = load(dir.path()).expect_err("directory");
    assert_eq!(
        lines(&diag.errors),
        [format!(
            "{}: is a directory, not a config file",
            dir.path().display()
        )]
    );
}

#[test]
fn load_reads_a_file_and_names_it() {
    let f = temp_file(b"[d]\nsequence = 1,2\nseq_timeout = x\n");
    let diag = load(f.path()).expect_err("bad timeout");
    assert_eq!(
        lines(&diag.errors),
        [format!(
            "{}:3: seq_timeout: \"x\" is not a number of seconds",
            f.path().display()
        )]
    );
    let f = temp_file(b"[d]\nsequence = 1,2\n");
    let (c, _) = load(f.path()).expect("good file");
    assert_eq!(c.doors[0].name, "d");
}

#[test]
fn one_time_sequences_first_valid_line_is_live() {
    let otp = temp_file(b"# used before\n#1111,2222\n\n 3333,4444:udp\n 5555\n");
    let d = door(&format!(
        "[d]\nOne_Time_Sequences = {}\n",
        otp.path().display()
    ));
    let SequenceSource::OneTime {
        path,
        current: Some(current),
        ..
    } = &d.sequence
    else {
        panic!("not one-time: {:?}", d.sequence);
    };
    assert_eq!(path, otp.path());
    assert_eq!(current.line, 4);
    assert_eq!(current.offset, 26, "the first byte of the line");
    assert_eq!(
        steps(&current.sequence),
        [(3333, Proto::Tcp), (4444, Proto::Udp)]
    );
    assert_eq!(d.sequence.current(), Some(&current.sequence));
}

#[test]
fn one_time_sequences_invalid_lines_warn_with_their_place() {
    let otp = temp_file(b" 7000,abc\n 99999\n\xff\n 1111:udp\n");
    let p = otp.path().display();
    let (c, w) = parse_ok(&format!("[d]\none_time_sequences = {p}\n"));
    let SequenceSource::OneTime {
        current: Some(current),
        ..
    } = &c.doors[0].sequence
    else {
        panic!("not one-time");
    };
    assert_eq!(current.line, 4);
    assert_eq!(
        w,
        [
            format!("warning: {p}:1: port \"abc\" is not a number; line skipped"),
            format!("warning: {p}:2: port 99999 is out of range (1-65535); line skipped"),
            format!("warning: {p}:3: not valid UTF-8; line skipped"),
        ]
    );
}

/// Using up the last sequence is a normal event: the door is disabled with
/// a warning, never the daemon (knockd 0.8 refuses to start, and the stops
/// a restart must run stay undone).
#[test]
fn one_time_sequences_file_without_a_valid_line_disables_the_door() {
    let otp = temp_file(b"# used\n 7000:icmp\n\n");
    let p = otp.path().display();
    let (c, w) = parse_ok(&format!(
        "[d]\nOne_Time_Sequences = {p}\n[e]\nsequence = 1\n"
    ));
    assert_eq!(
        w,
        [
            format!(
                "warning: {p}:2: unknown protocol \"icmp\" (expected tcp or udp); line skipped"
            ),
            format!("warning: k.conf:2: {p} has no unused sequence left: door [d] is disabled"),
        ]
    );
    assert_eq!(c.doors[0].sequence.current(), None);
    assert!(c.doors[0].summary().contains("door disabled"));
    assert_eq!(c.doors[1].name, "e");
}

#[test]
fn one_time_sequences_unreadable() {
    let dir = tempfile::tempdir().expect("temp dir");
    let missing = dir.path().join("otp");
    assert_eq!(
        error(&format!(
            "[d]\nOne_Time_Sequences = {}\n",
            missing.display()
        )),
        format!(
            "k.conf:2: One_Time_Sequences: cannot read {}: no such file",
            missing.display()
        )
    );
    assert_eq!(
        error(&format!(
            "[d]\nOne_Time_Sequences = {}\n",
            dir.path().display()
        )),
        format!(
            "k.conf:2: One_Time_Sequences: {} is not a regular file (a directory); name a regular file",
            dir.path().display()
        )
    );
}

/// Readable by others is a warning (knockd 0.8 installs 0644); writable by
/// group or others is an error of `load` (the trust rule), not a warning.
#[test]
fn permission_warnings_by_mode() {
    use std::os::unix::fs::PermissionsExt;
    let f = temp_file(b"[d]\nsequence = 1\n");
    let p = f.path().display().to_string();
    let set = |mode: u32| {
        std::fs::set_permissions(f.path(), std::fs::Permissions::from_mode(mode)).expect("chmod");
        lines(&permission_warnings(f.path()))
    };
    assert!(set(0o600).is_empty());
    assert!(set(0o640).is_empty());
    assert!(set(0o400).is_empty());
    assert_eq!(
        set(0o644),
        [format!(
            "warning: {p}: readable by others (mode 0644): the knock sequences are secrets; chmod 600"
        )]
    );
    assert!(set(0o660).is_empty(), "an error of load, not a warning");
    assert!(set(0o666).is_empty(), "an error of load, not a warning");
    assert!(permission_warnings(Path::new("/nonexistent/knockd.conf")).is_empty());
    // Not a regular file: `load` reports it; a mode warning would be noise.
    assert!(permission_warnings(Path::new("/dev/null")).is_empty());
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).expect("chmod");
    assert!(permission_warnings(dir.path()).is_empty());
}

#[test]
fn man_page_examples_3_and_4_one_time_sequences_and_ipv6() {
    let otp = temp_file(b" 1000,2000,3000\n 4000,5000:udp\n");
    let p = otp.path().display();
    let example_3 = format!(
        "[options]
\tlogfile = /var/log/knockd.log

[opencloseSMTP]
\tone_time_sequences = {p}
\tseq_timeout        = 15
\ttcpflags           = fin,!ack
\tstart_command      = /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\tcmd_timeout        = 5
\tstop_command       = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\t
"
    );
    let d3 = door(&example_3);
    assert_eq!(d3.name, "opencloseSMTP");
    let SequenceSource::OneTime {
        path,
        current: Some(current),
        ..
    } = &d3.sequence
    else {
        panic!("not one-time");
    };
    assert_eq!(path, otp.path());
    assert_eq!((current.line, current.offset), (1, 0));
    assert_eq!(current.sequence.to_string(), "1000:tcp,2000:tcp,3000:tcp");
    assert_eq!(d3.tcp_flags, rule(TcpFlags::FIN, TcpFlags::ACK));
    assert_eq!(d3.seq_timeout, Duration::from_secs(15));
    assert_eq!(d3.cmd_timeout, Duration::from_secs(5));
    // No _6 commands: IPv6 knocks run the IPv4 ones.
    assert_eq!(
        d3.start_command_for(true),
        Some("/usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT")
    );
    assert_eq!(
        d3.summary(),
        format!(
            "[opencloseSMTP] sequence 1000:tcp,2000:tcp,3000:tcp (one-time, {p}:1), seq_timeout 15s, \
             tcpflags fin,!ack, commands: start stop, cmd_timeout 5s"
        )
    );

    let example_4 = format!(
        "[options]
\tlogfile = /var/log/knockd.log

[opencloseSMTP]
\tone_time_sequences = {p}
\tseq_timeout        = 15
\ttcpflags           = fin,!ack
\tstart_command      = /usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\tstart_command_6    = /usr/sbin/ip6tables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\tcmd_timeout        = 5
\tstop_command       = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\tstop_command_6     = /usr/sbin/ip6tables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT
\t
"
    );
    let d4 = door(&example_4);
    assert_eq!(
        d4.start_command_for(false),
        Some("/usr/sbin/iptables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT")
    );
    assert_eq!(
        d4.start_command_for(true),
        Some("/usr/sbin/ip6tables -A INPUT -s %IP% -p tcp --dport 25 -j ACCEPT")
    );
    assert_eq!(
        d4.stop_command_for(false),
        Some("/usr/sbin/iptables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT")
    );
    assert_eq!(
        d4.stop_command_for(true),
        Some("/usr/sbin/ip6tables -D INPUT -s %IP% -p tcp --dport 25 -j ACCEPT")
    );
    assert_eq!(d4.sequence, d3.sequence);
}

/// Root can write any file, so this runs (and means something) only
/// unprivileged; as root the permission bits cannot make a file unwritable.
#[test]
fn a_one_time_file_knockd_cannot_write_is_an_error() {
    use std::os::unix::fs::PermissionsExt;
    if nix::unistd::Uid::effective().is_root() {
        eprintln!("skipped as root: permission bits do not stop root from writing");
        return;
    }
    let dir = tempfile::tempdir().expect("temp dir");
    let otp = dir.path().join("otp");
    std::fs::write(&otp, "1111,2222\n").expect("write");
    std::fs::set_permissions(&otp, std::fs::Permissions::from_mode(0o444)).expect("chmod");
    let text = format!("[d]\none_time_sequences = {}\n", otp.display());
    let d = load_str(&text).expect_err("rejected");
    assert_eq!(
        d.errors[0].to_string(),
        format!(
            "k.conf:2: one_time_sequences: {} is not writable: used sequences could not be marked",
            otp.display()
        )
    );
}

#[test]
fn every_problem_of_a_file_in_one_pass_in_line_order() {
    // A parse error after a one-time door whose file is missing: both are
    // reported, in line order, even though the parse failed.
    let text = "[a]\none_time_sequences = /nonexistent/otp\n[b]\nsequence = 7000,abc\n";
    let d = load_str(text).expect_err("two errors");
    assert_eq!(
        lines(&d.errors),
        [
            "k.conf:2: one_time_sequences: cannot read /nonexistent/otp: no such file",
            "k.conf:4: sequence: port \"abc\" is not a number",
        ]
    );
}

/// A rotating door's secret file is refused, with its place, when others
/// could read it (as ssh refuses such a key), and read when private.
#[test]
fn secret_files_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let key = temp_file(b"GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n");
    let k = key.path().display();
    let text = format!(
        "[ssh]\nSequence_Ports = 10000-10999\nSequence_Length = 5\nSequence_Secret_File = {k}\n"
    );
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    assert_eq!(
        error(&text),
        format!(
            "k.conf:4: Sequence_Secret_File: {k} is readable by group or others (mode 0644), \
             and holds a rotating door's secret; chmod go-rwx {k}"
        )
    );
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let d = door(&text);
    let SequenceSource::Rotating { secret, .. } = &d.sequence else {
        panic!("not rotating");
    };
    assert_eq!(
        secret.secret().map(|s| s.to_base32()),
        Some("GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ".to_string())
    );
    std::fs::write(key.path(), "not a secret\n").unwrap();
    assert_eq!(
        error(&text),
        format!("k.conf:4: Sequence_Secret_File: {k}: not base32 (letters A-Z and digits 2-7)")
    );
    let missing =
        "[ssh]\nSequence_Ports = 1-9\nSequence_Length = 2\nSequence_Secret_File = /nonexistent/key\n";
    assert_eq!(
        error(missing),
        "k.conf:4: Sequence_Secret_File: cannot read /nonexistent/key: no such file"
    );
}

/// A directory holding `knockd.conf` and the given other files, mode 600.
fn config_dir(files: &[(&str, &str)]) -> tempfile::TempDir {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().expect("temp dir");
    for (name, text) in files {
        let path = dir.path().join(name);
        std::fs::write(&path, text).expect("write config file");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
    dir
}

#[test]
fn include_adds_doors_from_matching_files_in_name_order() {
    let dir = config_dir(&[(
        "knockd.conf",
        "[options]\n Include = doors/*.conf\n[main]\n sequence = 1\n command = m\n",
    )]);
    std::fs::create_dir(dir.path().join("doors")).expect("mkdir");
    for (name, port) in [
        ("b.conf", 3),
        ("a.conf", 2),
        ("c.txt", 9),
        (".hidden.conf", 8),
    ] {
        let text = format!("[{name}]\n sequence = {port}\n command = x\n");
        std::fs::write(dir.path().join("doors").join(name), text).expect("write");
    }
    let (config, _) = load(&dir.path().join("knockd.conf")).expect("loads");
    let names: Vec<&str> = config.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["main", "a.conf", "b.conf"]);
    assert_eq!(config.doors[0].file, None);
    assert_eq!(
        config.doors[1].file.as_deref(),
        Some(dir.path().join("doors/a.conf").as_path())
    );
    let SequenceSource::Fixed(seq) = &config.doors[2].sequence else {
        panic!("a fixed sequence")
    };
    assert_eq!(steps(seq), [(3, Proto::Tcp)]);
}

#[test]
fn include_errors_name_the_included_file_and_line() {
    let dir = config_dir(&[
        ("knockd.conf", "[options]\n Include = extra.conf\n[ssh]\n sequence = 1\n command = x\n"),
        (
            "extra.conf",
            "# doors only\n[options]\n logfile = /tmp/x\n[web]\n sequence = nonsense\n command = y\n[ssh]\n sequence = 2\n command = z\n",
        ),
    ]);
    let main = dir.path().join("knockd.conf");
    let extra = dir.path().join("extra.conf");
    let Err(d) = load(&main) else {
        panic!("an included file's errors must stop the load")
    };
    let got = lines(&d.errors);
    let e = extra.display();
    let m = main.display();
    assert_eq!(got.len(), 3, "{got:#?}");
    assert!(got[0].starts_with(&format!("{e}:2: ")), "{}", got[0]);
    assert!(got[0].contains("[options] belong in"), "{}", got[0]);
    assert!(got[1].starts_with(&format!("{e}:5: ")), "{}", got[1]);
    assert_eq!(
        got[2],
        format!("{e}:7: door [ssh] is already defined at {m}:3")
    );
}

#[test]
fn include_patterns_that_name_nothing_usable() {
    let dir = config_dir(&[(
        "knockd.conf",
        "[options]\n Include = missing.conf\n Include = */x.conf\n Include = none-*.conf\n",
    )]);
    let main = dir.path().join("knockd.conf");
    let Err(d) = load(&main) else {
        panic!("a missing included file is an error")
    };
    let got = lines(&d.errors);
    let m = main.display();
    let missing = dir.path().join("missing.conf");
    assert_eq!(
        got,
        [
            format!("{m}:2: Include: {} is not a file", missing.display()),
            format!("{m}:3: Include: \"*/x.conf\": wildcards are allowed in the file name only"),
        ]
    );
}

#[test]
fn glob_matching() {
    assert!(matches("*.conf", "a.conf"));
    assert!(matches("?.conf", "a.conf"));
    assert!(!matches("?.conf", "ab.conf"));
    assert!(!matches("*.conf", ".a.conf"));
    assert!(matches(".*", ".a"));
    assert!(matches("a*b*c", "aXbYc"));
    assert!(!matches("a*b*c", "aXbY"));
    // Many stars against a long name stay quick enough for a config.
    assert!(!matches("*a*a*a*a*a*b", &"a".repeat(40)));
}

#[test]
fn glob_question_mark_matches_one_character_not_one_byte() {
    assert!(matches("?.conf", "é.conf"), "é is two bytes, one character");
    assert!(matches("??.conf", "日本.conf"));
    assert!(!matches("?.conf", "日本.conf"));
    assert!(matches("*é*", "xxéyy"));
    assert!(matches("d?r", "dör"));
}

#[test]
fn glob_star_and_question_mark_never_cross_a_slash() {
    assert!(!matches("a*c", "a/c"));
    assert!(!matches("a?c", "a/c"));
    assert!(!matches("*", "x/y"));
}

#[test]
fn include_matches_non_ascii_names_by_character() {
    let dir = config_dir(&[
        ("knockd.conf", "[options]\n Include = ?.conf\n"),
        ("é.conf", "[accent]\n sequence = 1\n command = x\n"),
        ("ab.conf", "[two]\n sequence = 2\n command = x\n"),
    ]);
    let (config, _) = load(&dir.path().join("knockd.conf")).expect("loads");
    let names: Vec<&str> = config.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["accent"]);
}

// ---------------------------------------------------------------------------
// One trust rule for every file whose content becomes a root command or a
// secret. Ownership by another user needs root (tests/trust.rs); modes,
// links, FIFOs and directories are tested here.

/// `f` on another thread, failing when it takes over 5 s: a FIFO opened
/// for reading blocks until a writer comes, and before the trust rule
/// `load` waited for one for ever.
fn within_5s<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    match rx.recv_timeout(Duration::from_secs(5)) {
        Ok(v) => v,
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
            panic!("{what}: still blocked after 5 s")
        }
        Err(_) => panic!("{what} failed: see the panic above"),
    }
}

fn mkfifo(path: &Path) {
    nix::unistd::mkfifo(path, nix::sys::stat::Mode::from_bits_truncate(0o600)).expect("mkfifo");
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// The errors of loading `dir/knockd.conf`, within 5 s.
fn load_errors(dir: &Path) -> Vec<String> {
    let main = dir.join("knockd.conf");
    within_5s("load", move || match load(&main) {
        Ok((c, w)) => panic!(
            "loaded: {:?} doors, warnings {:?}",
            c.doors.len(),
            lines(&w)
        ),
        Err(d) => lines(&d.errors),
    })
}

#[test]
fn trust_an_included_file_others_can_write_is_an_error() {
    let dir = config_dir(&[
        ("knockd.conf", "[options]\n Include = extra.conf\n"),
        ("extra.conf", "[web]\n sequence = 1\n command = y\n"),
    ]);
    let extra = dir.path().join("extra.conf");
    let (m, e) = (dir.path().join("knockd.conf"), extra.display());
    for mode in [0o666, 0o620, 0o602] {
        chmod(&extra, mode);
        assert_eq!(
            load_errors(dir.path()),
            [format!(
                "{}:2: Include: {e} is writable by group or others (mode {mode:04o}), \
                 and holds commands that run as root; chmod go-w {e}",
                m.display()
            )]
        );
    }
}

#[test]
fn trust_an_included_files_directory_others_can_write_is_an_error() {
    let dir = config_dir(&[(
        "knockd.conf",
        "[options]\n Include = doors/*.conf\n[main]\n sequence = 1\n",
    )]);
    let doors = dir.path().join("doors");
    std::fs::create_dir(&doors).expect("mkdir");
    let a = doors.join("a.conf");
    std::fs::write(&a, "[a]\n sequence = 2\n").expect("write");
    chmod(&a, 0o600);
    chmod(&doors, 0o777);
    let m = dir.path().join("knockd.conf");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:2: Include: {} is in directory {d}, writable by group or others (mode 0777): \
             they could replace the file; chmod go-w {d}",
            m.display(),
            a.display(),
            d = doors.display()
        )]
    );
    chmod(&doors, 0o755);
    assert!(load(&m).is_ok());
}

/// The main config's own directory, or one above it, writable by others.
#[test]
fn trust_a_main_config_in_a_directory_others_can_write_is_an_error() {
    let dir = config_dir(&[("knockd.conf", "[main]\n sequence = 1\n")]);
    let m = dir.path().join("knockd.conf");
    chmod(dir.path(), 0o770);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{m}: is in directory {d}, writable by group or others (mode 0770): \
             they could replace the file; chmod go-w {d}",
            m = m.display(),
            d = dir.path().display()
        )]
    );
    // Sticky (as /tmp): others cannot replace a file they do not own, but
    // they can plant names beside it, so it is refused as the file's own
    // directory, and accepted above it.
    chmod(dir.path(), 0o1777);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{m}: is in directory {d}, writable by others (mode 1777): they could plant \
             files beside it; move the file into a directory only root can write",
            m = m.display(),
            d = dir.path().display()
        )]
    );
    let private = dir.path().join("private");
    std::fs::create_dir(&private).expect("mkdir");
    chmod(&private, 0o700);
    std::fs::rename(&m, private.join("knockd.conf")).expect("move");
    assert!(load(&private.join("knockd.conf")).is_ok());
    // Not sticky above: refused, naming that directory.
    chmod(dir.path(), 0o777);
    assert_eq!(
        load_errors(&private),
        [format!(
            "{m}: is in directory {d}, writable by group or others (mode 0777): \
             they could replace the file; chmod go-w {d}",
            m = private.join("knockd.conf").display(),
            d = dir.path().display()
        )]
    );
    chmod(dir.path(), 0o700);
}

#[test]
fn trust_a_main_config_that_is_a_fifo_or_a_link_is_an_error() {
    let dir = config_dir(&[("real.conf", "[main]\n sequence = 1\n")]);
    let m = dir.path().join("knockd.conf");
    std::os::unix::fs::symlink(dir.path().join("real.conf"), &m).expect("symlink");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}: is a symbolic link; name the file itself (knockd follows no link to a file it trusts)",
            m.display()
        )]
    );
    std::fs::remove_file(&m).expect("rm");
    mkfifo(&m);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}: is not a regular file (a FIFO); name a regular file",
            m.display()
        )]
    );
    // Serving with a broken config reads its options (the journal's path)
    // again: that must not block either.
    let opts = within_5s("options_despite_errors", move || {
        options_despite_errors(&m).state_file
    });
    assert_eq!(opts, None);
}

fn rotating_conf(key: &Path) -> String {
    format!(
        "[ssh]\nSequence_Ports = 10000-10999\nSequence_Length = 5\nSequence_Secret_File = {}\n",
        key.display()
    )
}

#[test]
fn trust_a_secret_file_that_is_a_fifo_is_an_error_not_a_hang() {
    let dir = config_dir(&[]);
    let key = dir.path().join("ssh.key");
    mkfifo(&key);
    std::fs::write(dir.path().join("knockd.conf"), rotating_conf(&key)).expect("write");
    chmod(&dir.path().join("knockd.conf"), 0o600);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:4: Sequence_Secret_File: {k} is not a regular file (a FIFO); name a regular file",
            dir.path().join("knockd.conf").display(),
            k = key.display()
        )]
    );
}

#[test]
fn trust_a_secret_file_readable_by_group_or_a_link_is_an_error() {
    let dir = config_dir(&[("real.key", "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n")]);
    let real = dir.path().join("real.key");
    let m = dir.path().join("knockd.conf");
    std::fs::write(&m, rotating_conf(&real)).expect("write");
    chmod(&m, 0o600);
    chmod(&real, 0o640);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:4: Sequence_Secret_File: {k} is readable by group or others (mode 0640), \
             and holds a rotating door's secret; chmod go-rwx {k}",
            m.display(),
            k = real.display()
        )]
    );
    chmod(&real, 0o600);
    let link = dir.path().join("ssh.key");
    std::os::unix::fs::symlink(&real, &link).expect("symlink");
    std::fs::write(&m, rotating_conf(&link)).expect("write");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:4: Sequence_Secret_File: {k} is a symbolic link; name the file itself \
             (knockd follows no link to a file it trusts)",
            m.display(),
            k = link.display()
        )]
    );
}

#[test]
fn trust_a_one_time_file_that_is_a_fifo_or_readable_by_others_is_an_error() {
    let dir = config_dir(&[]);
    let otp = dir.path().join("otp");
    mkfifo(&otp);
    let m = dir.path().join("knockd.conf");
    std::fs::write(&m, format!("[d]\nOne_Time_Sequences = {}\n", otp.display())).expect("write");
    chmod(&m, 0o600);
    let o = otp.display();
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:2: One_Time_Sequences: {o} is not a regular file (a FIFO); name a regular file",
            m.display()
        )]
    );
    std::fs::remove_file(&otp).expect("rm");
    std::fs::write(&otp, " 1111\n").expect("write");
    chmod(&otp, 0o644);
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:2: One_Time_Sequences: {o} is readable by group or others (mode 0644), \
             and holds one-time knock sequences; chmod go-rwx {o}",
            m.display()
        )]
    );
    chmod(&otp, 0o600);
    assert!(load(&m).is_ok());
}

/// A link (or FIFO) that a wildcard matches is reported, not skipped: the
/// admin meant to include it, and its door would be missing without a
/// word. A directory is skipped (it holds no doors).
#[test]
fn trust_a_link_or_fifo_matched_by_a_wildcard_is_an_error() {
    let dir = config_dir(&[
        ("knockd.conf", "[options]\n Include = doors/*.conf\n"),
        ("elsewhere.conf", "[linked]\n sequence = 1\n"),
    ]);
    let doors = dir.path().join("doors");
    std::fs::create_dir(&doors).expect("mkdir");
    std::fs::create_dir(doors.join("sub.conf")).expect("mkdir");
    let link = doors.join("a.conf");
    std::os::unix::fs::symlink(dir.path().join("elsewhere.conf"), &link).expect("symlink");
    let fifo = doors.join("b.conf");
    mkfifo(&fifo);
    let m = dir.path().join("knockd.conf");
    assert_eq!(
        load_errors(dir.path()),
        [
            format!(
                "{}:2: Include: {} is a symbolic link; name the file itself \
                 (knockd follows no link to a file it trusts)",
                m.display(),
                link.display()
            ),
            format!(
                "{}:2: Include: {} is not a regular file (a FIFO); name a regular file",
                m.display(),
                fifo.display()
            ),
        ]
    );
}

#[test]
fn trust_an_included_link_named_without_a_wildcard_is_an_error() {
    let dir = config_dir(&[
        ("knockd.conf", "[options]\n Include = extra.conf\n"),
        ("real.conf", "[linked]\n sequence = 1\n"),
    ]);
    let link = dir.path().join("extra.conf");
    std::os::unix::fs::symlink(dir.path().join("real.conf"), &link).expect("symlink");
    assert_eq!(
        load_errors(dir.path()),
        [format!(
            "{}:2: Include: {} is a symbolic link; name the file itself \
             (knockd follows no link to a file it trusts)",
            dir.path().join("knockd.conf").display(),
            link.display()
        )]
    );
}
