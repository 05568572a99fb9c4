//! The same knocks against knockd 0.8 (Debian's `/usr/sbin/knockd`) and
//! ours, on `lo`: the log files must hold the same messages, apart from the
//! differences the README lists (knockd 0.8's stray blank lines; our
//! capture statistics line at shutdown).
//!
//! Both daemons run one after the other on the same ports, so this file's
//! tests run serially (one test) and use ports no other test file uses.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const REFERENCE: &str = "/usr/sbin/knockd";

const CONFIG: &str = "\
[options]
\tLogFile = LOG
\tSTATE
[openSSH]
\tsequence      = 7401,7402,7403
\tseq_timeout   = 5
\ttcpflags      = syn
\tstart_command = /bin/true open %IP%
\tcmd_timeout   = 1
\tstop_command  = /bin/true close %IP%
[failing]
\tsequence = 7411
\tcommand  = exit 3
[partial]
\tsequence    = 7421,7422
\tseq_timeout = 1
\tcommand     = /bin/true
";

fn knock(ports: &[&str]) {
    let status = Command::new("knock")
        .arg("127.0.0.1")
        .args(ports)
        .status()
        .expect("Debian's knock client (apt-get install knockd)");
    assert!(status.success());
}

fn wait_for(log: &Path, text: &str) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while !std::fs::read_to_string(log)
        .unwrap_or_default()
        .contains(text)
    {
        assert!(
            Instant::now() < deadline,
            "no {text:?} in {}:\n{}",
            log.display(),
            std::fs::read_to_string(log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn stop(mut child: Child) -> Option<i32> {
    let pid = nix::unistd::Pid::from_raw(child.id() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).expect("SIGTERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            return status.code();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("daemon did not stop");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `binary` with the shared config and the shared knocks; returns the
/// log's messages (time stamps stripped, one per line as written) and the
/// exit code.
fn session(binary: &str, dir: &Path, ours: bool) -> (Vec<String>, Option<i32>) {
    let log = dir.join(if ours { "ours.log" } else { "ref.log" });
    let conf = dir.join(if ours { "ours.conf" } else { "ref.conf" });
    let state = if ours {
        format!("StateFile = {}", dir.join("state").display())
    } else {
        String::new()
    };
    let text = CONFIG
        .replace("LOG", &log.display().to_string())
        .replace("STATE", &state);
    std::fs::write(&conf, text).unwrap();
    let child = Command::new(binary)
        .args(["-i", "lo", "-c"])
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    wait_for(&log, "starting up, listening on lo");
    // knockd 0.8 installs its filter right after that line; give both the
    // same moment to settle.
    std::thread::sleep(Duration::from_millis(300));
    knock(&["7401", "7402", "7403"]);
    wait_for(&log, "openSSH: command timeout");
    wait_for(&log, "running command: /bin/true close 127.0.0.1");
    knock(&["7411"]);
    wait_for(&log, "failing: command returned non-zero status code (3)");
    knock(&["7421"]);
    std::thread::sleep(Duration::from_millis(1500));
    // knockd 0.8 notices the timeout only on the next packet.
    knock(&["7422"]);
    wait_for(&log, "partial: sequence timeout (stage 1)");
    let code = stop(child);
    let text = std::fs::read_to_string(&log).unwrap();
    let messages = text
        .lines()
        .map(|l| match l.strip_prefix('[') {
            Some(rest) => rest.split_once("] ").map_or(l, |(_, m)| m).to_string(),
            None => l.to_string(),
        })
        .collect();
    (messages, code)
}

#[test]
#[ignore = "needs root: captures on lo, runs knockd 0.8"]
fn same_log_lines_as_knockd_0_8() {
    assert!(
        nix::unistd::Uid::effective().is_root(),
        "this test needs root; run: sudo -E cargo test --test compat -- --include-ignored"
    );
    assert!(
        Path::new(REFERENCE).exists(),
        "{REFERENCE} missing: apt-get install knockd"
    );
    let dir = tempfile::tempdir().unwrap();
    let (reference, ref_code) = session(REFERENCE, dir.path(), false);
    let (ours, our_code) = session(env!("CARGO_BIN_EXE_knockd"), dir.path(), true);

    // knockd 0.8 exits with the signal number; we exit 0.
    assert_eq!(ref_code, Some(15));
    assert_eq!(our_code, Some(0));
    // knockd 0.8 writes a blank line after some messages; we never do.
    assert!(reference.iter().any(String::is_empty), "{reference:#?}");
    assert!(!ours.iter().any(String::is_empty), "{ours:#?}");
    let reference: Vec<&String> = reference.iter().filter(|l| !l.is_empty()).collect();
    // Our capture statistics line at shutdown is ours alone.
    let ours: Vec<&String> = ours
        .iter()
        .filter(|l| !l.starts_with("lo: ") || !l.contains("packets received"))
        .collect();
    assert_eq!(ours, reference);
    // And it is the full story, not two empty logs agreeing.
    assert_eq!(ours.len(), 15, "{ours:#?}");
}
