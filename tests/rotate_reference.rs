//! The README's derivation, implemented a second time in Python's standard
//! library (`scripts/rotate-reference.py`), agrees with ours (`knock
//! --show-sequence`) on inputs neither was tuned for: what a third-party
//! client written from the README would compute, the daemon expects.

use std::process::Command;

const KNOCK: &str = env!("CARGO_BIN_EXE_knock");

fn ours(
    secret: &std::path::Path,
    door: &str,
    range: &str,
    len: u32,
    protos: &str,
    period: u64,
    at: u64,
) -> String {
    let out = Command::new(KNOCK)
        .args(["--show-sequence", "--secret-file"])
        .arg(secret)
        .args([
            "--door",
            door,
            "--ports",
            range,
            "--length",
            &len.to_string(),
        ])
        .args(["--protocols", protos, "--period", &period.to_string()])
        .args(["--at", &at.to_string()])
        .output()
        .expect("run knock");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .replace(' ', ",")
}

fn reference(
    secret: &str,
    door: &str,
    range: &str,
    len: u32,
    protos: &str,
    period: u64,
    at: u64,
) -> String {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/rotate-reference.py");
    let out = Command::new("python3")
        .arg(script)
        .args([
            secret,
            door,
            range,
            &len.to_string(),
            protos,
            &period.to_string(),
            &at.to_string(),
        ])
        .output()
        .expect("python3 runs (Debian's python3-minimal is enough)");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    text.trim()
        .rsplit(' ')
        .next()
        .unwrap_or_default()
        .to_string()
}

#[test]
fn the_python_reference_and_knock_agree() {
    let dir = tempfile::tempdir().unwrap();
    // Secrets of several lengths, doors with non-ASCII names, ranges small
    // and whole, mixed protocols, times around and far from boundaries.
    let cases: &[(&str, &str, &str, u32, &str, u64, u64)] = &[
        (
            "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ",
            "ssh",
            "10000-10999",
            5,
            "tcp",
            30,
            1_700_000_000,
        ),
        (
            "MFRGGZDFMZTWQ2LKNNWG23TPOBYXE43U",
            "porte-d'entrée",
            "1-65535",
            12,
            "udp",
            45,
            1_800_000_044,
        ),
        (
            "KRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLUKRSXG5CTMVRXEZLU",
            "web",
            "4000-4015",
            16,
            "tcp",
            1,
            86_399,
        ),
        (
            "ONSWG4TFORZXGZLDOJSXI43FMNZGK5DTMVRXEZLU",
            "x",
            "65000-65535",
            3,
            "udp,tcp,udp",
            86_400,
            4_102_444_800,
        ),
    ];
    for (i, (secret, door, range, len, protos, period, at)) in cases.iter().enumerate() {
        let key = dir.path().join(format!("k{i}"));
        std::fs::write(&key, secret).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            ours(&key, door, range, *len, protos, *period, *at),
            reference(secret, door, range, *len, protos, *period, *at),
            "{door} {range} at {at}"
        );
    }
}
