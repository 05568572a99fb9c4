//! Every config in `examples/` is one `knockd --check` accepts: the files
//! it names (under /etc/knockd/) are made in a private directory first,
//! secrets as `knock --gen-secret` would, one-time files with a sequence,
//! a directory of users' keys with two users.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const KNOCKD: &str = env!("CARGO_BIN_EXE_knockd");

/// The paths under /etc/knockd/ a config names (outside comments).
fn etc_paths(text: &str) -> Vec<String> {
    text.lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .flat_map(str::split_whitespace)
        .filter(|w| w.starts_with("/etc/knockd/"))
        .map(str::to_string)
        .collect()
}

fn check(example: &Path) {
    let text = fs::read_to_string(example).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc");
    fs::create_dir(&etc).unwrap();
    for path in etc_paths(&text) {
        let name = path.trim_start_matches("/etc/knockd/");
        let local = etc.join(name);
        let is_users = text
            .lines()
            .any(|l| l.contains("Sequence_Secret_Dir") && l.contains(&path));
        if is_users {
            fs::create_dir(&local).unwrap();
            fs::set_permissions(&local, fs::Permissions::from_mode(0o700)).unwrap();
            for user in ["alice", "bob"] {
                let key = local.join(format!("{user}.key"));
                fs::write(&key, "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n").unwrap();
                fs::set_permissions(&key, fs::Permissions::from_mode(0o600)).unwrap();
            }
            continue;
        }
        let is_secret = text
            .lines()
            .any(|l| l.contains("Sequence_Secret_File") && l.contains(&path));
        let content = if is_secret {
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n"
        } else {
            " 1111,2222,3333\n 4444,5555,6666\n"
        };
        fs::write(&local, content).unwrap();
        fs::set_permissions(&local, fs::Permissions::from_mode(0o600)).unwrap();
    }
    let text = text.replace("/etc/knockd/", &format!("{}/", etc.display()));
    let conf = dir.path().join("knockd.conf");
    fs::write(&conf, text).unwrap();
    fs::set_permissions(&conf, fs::Permissions::from_mode(0o600)).unwrap();
    let out = Command::new(KNOCKD)
        .args(["--check".as_ref(), "-c".as_ref(), conf.as_os_str()])
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "{}: knockd --check failed:\n{stdout}{stderr}",
        example.display()
    );
    assert!(stdout.contains(" OK"), "{stdout}");
    // An example is copied as it is: none may teach a door a scan opens.
    assert!(
        !stderr.contains("weak rotating sequence"),
        "{}: {stderr}",
        example.display()
    );
}

#[test]
fn every_example_config_passes_check() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "conf") {
            check(&path);
            checked += 1;
        }
    }
    assert!(checked >= 2, "only {checked} example configs");
}
