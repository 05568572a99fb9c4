//! Rotating doors on the client side: the secret file, the syntax of a
//! rotation's parts (shared by the flags and the doors file), the sequence
//! of a given moment, and `--gen-secret`.
//!
//! The derivation itself is [`crate::core::rotate`], the same code the
//! daemon runs, so client and daemon cannot disagree on a port. This module
//! owns only what is the client's: reading (and warning about) a secret
//! file, writing a new one, and which period a knock round uses. It must not
//! resolve hosts or open sockets.

use std::fmt;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::hit::Hit;
use crate::core::knock::Proto;
use crate::core::rotate::{sequence, Rotation, Secret, GENERATED_SECRET_BYTES};

/// Largest secret file read: a secret is one line of base32 (a 64-byte
/// secret is 103 characters), so anything bigger is the wrong file.
pub const MAX_SECRET_FILE: u64 = 4096;
/// Default `--period` and `period`: knockd.conf's `Sequence_Period` default.
pub const DEFAULT_PERIOD_SECS: u64 = crate::core::config::DEFAULT_PERIOD;
/// Longest `--period` and `period`: a day, as knockd.conf's
/// `Sequence_Period` allows; longer is no rotation.
pub const MAX_PERIOD_SECS: u64 = crate::core::config::MAX_PERIOD;

/// A port range `A-B` (inclusive), as knockd.conf's `Sequence_Ports`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortRange {
    pub first: u16,
    pub last: u16,
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `A-B`: two ports 1-65535, the first not above the last.
pub fn parse_port_range(text: &str) -> Result<PortRange, String> {
    let Some((a, b)) = text.split_once('-') else {
        return Err(format!("\"{text}\" is not a port range (FIRST-LAST)"));
    };
    let port = |p: &str| match p.trim().parse::<u32>() {
        Ok(n @ 1..=65535) => Ok(n as u16),
        _ => Err(format!(
            "\"{text}\": \"{}\" is not a port from 1 to 65535",
            p.trim()
        )),
    };
    let (first, last) = (port(a)?, port(b)?);
    if first > last {
        return Err(format!("\"{text}\": the first port is above the last"));
    }
    Ok(PortRange { first, last })
}

/// `tcp`, `udp` or a comma-separated list of them (one per step), any case.
pub fn parse_protocols(text: &str) -> Result<Vec<Proto>, String> {
    text.split(',')
        .map(|p| match p.trim().to_ascii_lowercase().as_str() {
            "tcp" => Ok(Proto::Tcp),
            "udp" => Ok(Proto::Udp),
            other => Err(format!(
                "unknown protocol \"{other}\" in \"{text}\" (expected tcp or udp, comma-separated)"
            )),
        })
        .collect()
}

/// Steps per sequence: 1 to 32, as knockd.conf's `Sequence_Length`.
pub fn parse_length(text: &str) -> Result<u8, String> {
    let max = crate::core::config::MAX_SEQUENCE_LEN;
    match text.trim().parse::<u8>() {
        Ok(n) if n >= 1 && usize::from(n) <= max => Ok(n),
        _ => Err(format!("\"{text}\" is not a whole number from 1 to {max}")),
    }
}

/// Seconds per period: 1 to a day, as knockd.conf's `Sequence_Period`.
pub fn parse_period(text: &str) -> Result<u64, String> {
    match text.trim().parse::<u64>() {
        Ok(n @ 1..=MAX_PERIOD_SECS) => Ok(n),
        _ => Err(format!(
            "\"{text}\" is not a whole number of seconds from 1 to {MAX_PERIOD_SECS}"
        )),
    }
}

/// The rotation of a door from its parts, checked as the daemon checks it;
/// `Err` is [`Rotation::validate`]'s message. The skew is the daemon's
/// business (the client always knocks one period's sequence), so it is 0.
pub fn rotation(
    range: PortRange,
    length: u8,
    protocols: Option<Vec<Proto>>,
    period: Option<u64>,
) -> Result<Rotation, String> {
    let rotation = Rotation {
        length,
        first: range.first,
        last: range.last,
        protocols: protocols.unwrap_or_else(|| vec![Proto::Tcp]),
        period: period.unwrap_or(DEFAULT_PERIOD_SECS),
        skew: 0,
    };
    rotation.validate().map_err(|e| e.to_string())?;
    Ok(rotation)
}

/// A rotating door ready to derive: its secret, the name the daemon derives
/// with, and how it rotates.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotating {
    pub secret: Secret,
    /// The door's name in knockd.conf (part of the derivation).
    pub door: String,
    pub rotation: Rotation,
}

impl Rotating {
    /// The hits of period `counter`; the label is the port number, so `-v`
    /// prints knockd's `hitting tcp HOST:PORT`.
    pub fn hits(&self, counter: u64) -> Vec<Hit> {
        sequence(&self.secret, &self.door, &self.rotation, counter)
            .steps()
            .iter()
            .map(|s| Hit {
                port: s.port,
                proto: s.proto,
                label: s.port.to_string(),
            })
            .collect()
    }

    /// `--show-sequence`'s line for period `counter`: `PORT:PROTO` words
    /// separated by single spaces, the shape a script can feed to any
    /// knock client.
    pub fn show_line(&self, counter: u64) -> String {
        let words: Vec<String> = self
            .hits(counter)
            .iter()
            .map(|h| format!("{}:{}", h.port, h.proto))
            .collect();
        words.join(" ")
    }
}

/// The period a knock round uses, given the current period and the one the
/// previous round knocked (`None` for the first round).
///
/// The daemon refuses a (door, period) completed twice (replay refusal) and
/// also accepts the neighbouring periods (skew). A `--retry` round that
/// still falls in the period the previous round knocked would repeat a
/// sequence the daemon may already have used, and be refused just when it
/// is needed (the first knock got through but the firewall was slow); so it
/// knocks the next period's sequence instead, which the daemon accepts as a
/// neighbour. Any other round knocks the current period.
pub fn round_counter(current: u64, previous: Option<u64>) -> u64 {
    match previous {
        Some(p) if p == current => current.saturating_add(1),
        _ => current,
    }
}

/// Seconds since the Unix epoch by the system clock; `None` for a clock set
/// before 1970, where no sequence the daemon expects can be derived.
pub fn unix_now() -> Option<u64> {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .ok()
        .map(|d| d.as_secs())
}

/// A secret file that cannot be used. One line, naming the file.
#[derive(Debug, thiserror::Error)]
pub enum SecretFileError {
    /// It cannot be opened or read (missing, no permission, a directory).
    #[error("cannot read secret file {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: io::Error },
    /// It was read, but holds no secret.
    #[error("secret file {}: {problem}", path.display())]
    Malformed { path: PathBuf, problem: String },
}

/// Reads the base32 secret at `path` (at most [`MAX_SECRET_FILE`] bytes),
/// with a warning line when group or others can read or write it: the
/// client goes on (it is the user's own key), the daemon would refuse it.
pub fn read_secret(path: &Path) -> Result<(Secret, Option<String>), SecretFileError> {
    use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
    let unreadable = |source: io::Error| SecretFileError::Unreadable {
        path: path.to_path_buf(),
        source,
    };
    let malformed = |problem: String| SecretFileError::Malformed {
        path: path.to_path_buf(),
        problem,
    };
    // Non-blocking open: a FIFO given by mistake must not hang the client.
    let file = std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
        .map_err(unreadable)?;
    let meta = file.metadata().map_err(unreadable)?;
    if !meta.is_file() {
        return Err(unreadable(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        )));
    }
    let mode = meta.permissions().mode() & 0o777;
    let warning = (mode & 0o077 != 0).then(|| {
        format!(
            "{}: warning: readable or writable by group or others (mode {mode:o}); it holds a secret (chmod 600)",
            path.display()
        )
    });
    let mut bytes = Vec::new();
    file.take(MAX_SECRET_FILE + 1)
        .read_to_end(&mut bytes)
        .map_err(unreadable)?;
    if bytes.len() as u64 > MAX_SECRET_FILE {
        return Err(malformed(format!(
            "larger than {MAX_SECRET_FILE} bytes; not a secret file?"
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed("not UTF-8 text".into()))?;
    let secret = Secret::from_base32(&text).map_err(|e| malformed(e.to_string()))?;
    Ok((secret, warning))
}

/// Why `--gen-secret` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum GenSecretError {
    /// The OS random number generator failed.
    #[error("cannot get random bytes for a secret: {0}")]
    Random(String),
    /// The file exists: a secret is never overwritten, since the daemon's
    /// copy would stop matching.
    #[error("secret file {} already exists; not overwriting it", path.display())]
    Exists { path: PathBuf },
    /// The file cannot be created or written.
    #[error("cannot create secret file {}: {source}", path.display())]
    Create { path: PathBuf, source: io::Error },
}

/// `--gen-secret`: writes a new random secret ([`GENERATED_SECRET_BYTES`]
/// bytes from the OS) as base32 and a newline to a new file at `path`,
/// mode 600, refusing to replace anything already there (O_EXCL, which
/// also refuses a symlink). A failed write removes the partial file.
pub fn gen_secret(path: &Path) -> Result<(), GenSecretError> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut bytes = vec![0u8; GENERATED_SECRET_BYTES];
    getrandom::fill(&mut bytes).map_err(|e| GenSecretError::Random(e.to_string()))?;
    let secret = Secret::new(bytes).map_err(|e| GenSecretError::Random(e.to_string()))?;
    let create = |source: io::Error| GenSecretError::Create {
        path: path.to_path_buf(),
        source,
    };
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| match e.kind() {
            io::ErrorKind::AlreadyExists => GenSecretError::Exists {
                path: path.to_path_buf(),
            },
            _ => create(e),
        })?;
    let written = file
        .write_all(format!("{}\n", secret.to_base32()).as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        // We created it a moment ago; a half-written secret is worse than none.
        let _ = std::fs::remove_file(path);
        return Err(create(e));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

    fn ssh(protocols: &[Proto]) -> Rotating {
        Rotating {
            secret: Secret::from_base32(SECRET).expect("secret"),
            door: "ssh".into(),
            rotation: rotation(
                PortRange {
                    first: 10000,
                    last: 10999,
                },
                5,
                Some(protocols.to_vec()),
                None,
            )
            .expect("rotation"),
        }
    }

    #[test]
    fn show_line_is_the_published_vector() {
        let r = ssh(&[Proto::Tcp]);
        assert_eq!(
            r.show_line(r.rotation.counter(1_700_000_000)),
            "10759:tcp 10995:tcp 10648:tcp 10389:tcp 10822:tcp"
        );
        assert_eq!(
            r.show_line(r.rotation.counter(1_700_000_010)),
            "10846:tcp 10066:tcp 10484:tcp 10876:tcp 10800:tcp"
        );
        let hits = r.hits(56_666_666);
        assert_eq!(hits[0].label, "10759");
        let mixed = ssh(&[Proto::Udp, Proto::Tcp, Proto::Udp, Proto::Tcp, Proto::Udp]);
        assert_eq!(
            mixed.show_line(56_666_666),
            "10759:udp 10995:tcp 10648:udp 10389:tcp 10822:udp"
        );
    }

    #[test]
    fn a_retry_in_the_knocked_period_knocks_the_next_one() {
        assert_eq!(round_counter(100, None), 100);
        assert_eq!(round_counter(100, Some(100)), 101);
        // The clock moved on: the current period is fresh.
        assert_eq!(round_counter(101, Some(100)), 101);
        // The previous round already took the next period; this one is
        // the current period, which only the round before that knocked.
        assert_eq!(round_counter(100, Some(101)), 100);
        assert_eq!(round_counter(101, Some(101)), 102);
        assert_eq!(round_counter(u64::MAX, Some(u64::MAX)), u64::MAX);
    }

    #[test]
    fn port_ranges() {
        assert_eq!(
            parse_port_range("10000-10999"),
            Ok(PortRange {
                first: 10000,
                last: 10999
            })
        );
        assert_eq!(
            parse_port_range(" 7 - 7 "),
            Ok(PortRange { first: 7, last: 7 })
        );
        assert_eq!(
            parse_port_range("7000"),
            Err("\"7000\" is not a port range (FIRST-LAST)".into())
        );
        assert_eq!(
            parse_port_range("9-5"),
            Err("\"9-5\": the first port is above the last".into())
        );
        assert_eq!(
            parse_port_range("0-5"),
            Err("\"0-5\": \"0\" is not a port from 1 to 65535".into())
        );
        for bad in ["1-65536", "-5", "1-", "a-b", "1-2-3"] {
            assert!(parse_port_range(bad).is_err(), "{bad}");
        }
        assert_eq!(PortRange { first: 1, last: 9 }.to_string(), "1-9");
    }

    #[test]
    fn protocols_lengths_and_periods() {
        assert_eq!(parse_protocols("tcp"), Ok(vec![Proto::Tcp]));
        assert_eq!(
            parse_protocols("UDP, tcp"),
            Ok(vec![Proto::Udp, Proto::Tcp])
        );
        assert_eq!(
            parse_protocols("tcp,icmp"),
            Err(
                "unknown protocol \"icmp\" in \"tcp,icmp\" (expected tcp or udp, comma-separated)"
                    .into()
            )
        );
        assert!(parse_protocols("").is_err());
        assert!(parse_protocols("tcp,").is_err());
        assert_eq!(parse_length("5"), Ok(5));
        assert_eq!(parse_length("32"), Ok(32));
        for bad in ["0", "33", "-1", "x", "999999999999999999999"] {
            assert_eq!(
                parse_length(bad),
                Err(format!("\"{bad}\" is not a whole number from 1 to 32"))
            );
        }
        assert_eq!(parse_period("30"), Ok(30));
        assert_eq!(parse_period("86400"), Ok(86_400));
        for bad in ["0", "86401", "-30", "1.5"] {
            assert!(parse_period(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn rotation_is_validated_like_the_daemons() {
        let range = PortRange { first: 1, last: 3 };
        let r = rotation(range, 3, None, None).expect("valid");
        assert_eq!((r.protocols, r.period), (vec![Proto::Tcp], 30));
        assert_eq!(
            rotation(range, 4, None, None),
            Err(
                "Sequence_Length 4 is more than the 3 ports of Sequence_Ports (no port repeats)"
                    .into()
            )
        );
        assert_eq!(
            rotation(range, 3, Some(vec![Proto::Tcp, Proto::Udp]), Some(60)),
            Err(
                "Sequence_Protocols names 2 protocols for 3 steps (give one, or one per step)"
                    .into()
            )
        );
    }

    fn write_mode(path: &Path, text: &[u8], mode: u32) {
        std::fs::write(path, text).expect("write");
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    #[test]
    fn secret_files_read_warn_and_fail_with_the_file_named() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("ssh.key");
        write_mode(&path, format!("{SECRET}\n").as_bytes(), 0o600);
        let (secret, warning) = read_secret(&path).expect("valid");
        assert_eq!(secret.to_base32(), SECRET);
        assert_eq!(warning, None);

        write_mode(&path, format!("{SECRET}\n").as_bytes(), 0o640);
        let (_, warning) = read_secret(&path).expect("valid");
        let w = warning.expect("warning");
        assert!(
            w.starts_with(&format!("{}: warning: ", path.display()))
                && w.contains("mode 640")
                && w.contains("chmod 600"),
            "{w}"
        );

        write_mode(&path, b"not a secret!\n", 0o600);
        let e = read_secret(&path).expect_err("malformed");
        assert_eq!(
            e.to_string(),
            format!(
                "secret file {}: not base32 (letters A-Z and digits 2-7)",
                path.display()
            )
        );
        write_mode(&path, b"GEZDGNBV\n", 0o600);
        let e = read_secret(&path).expect_err("short");
        assert!(e.to_string().contains("too short"), "{e}");
        write_mode(&path, &[b'A'; MAX_SECRET_FILE as usize + 1], 0o600);
        let e = read_secret(&path).expect_err("big");
        assert!(e.to_string().ends_with("not a secret file?"), "{e}");
        write_mode(&path, b"\xff\xfe", 0o600);
        let e = read_secret(&path).expect_err("binary");
        assert!(e.to_string().ends_with(": not UTF-8 text"), "{e}");
        assert!(matches!(e, SecretFileError::Malformed { .. }));

        let missing = dir.path().join("nope");
        let e = read_secret(&missing).expect_err("missing");
        assert!(matches!(e, SecretFileError::Unreadable { .. }));
        assert_eq!(
            e.to_string(),
            format!(
                "cannot read secret file {}: No such file or directory (os error 2)",
                missing.display()
            )
        );
        let e = read_secret(dir.path()).expect_err("directory");
        assert!(e.to_string().ends_with("not a regular file"), "{e}");
    }

    #[test]
    fn a_fifo_is_refused_without_hanging() {
        let dir = tempfile::tempdir().expect("temp dir");
        let fifo = dir.path().join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::from_bits_truncate(0o600))
            .expect("mkfifo");
        let e = read_secret(&fifo).expect_err("fifo");
        assert!(e.to_string().ends_with("not a regular file"), "{e}");
    }

    #[test]
    fn gen_secret_makes_a_private_file_once() {
        use std::os::unix::fs::MetadataExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("new.key");
        gen_secret(&path).expect("created");
        let meta = std::fs::metadata(&path).expect("stat");
        assert_eq!(meta.mode() & 0o777, 0o600);
        let text = std::fs::read_to_string(&path).expect("read");
        assert!(
            text.ends_with('\n') && text.lines().count() == 1,
            "{text:?}"
        );
        let (secret, warning) = read_secret(&path).expect("parses");
        assert_eq!(warning, None);
        assert_eq!(
            data_encoding::BASE32_NOPAD
                .decode(secret.to_base32().as_bytes())
                .map(|b| b.len()),
            Ok(GENERATED_SECRET_BYTES)
        );

        let e = gen_secret(&path).expect_err("exists");
        assert!(matches!(e, GenSecretError::Exists { .. }), "{e}");
        assert_eq!(
            e.to_string(),
            format!(
                "secret file {} already exists; not overwriting it",
                path.display()
            )
        );
        assert_eq!(std::fs::read_to_string(&path).expect("read"), text);

        // Two secrets are never the same.
        let other = dir.path().join("other.key");
        gen_secret(&other).expect("created");
        assert_ne!(std::fs::read_to_string(&other).expect("read"), text);

        let e = gen_secret(&dir.path().join("no/such/dir/key")).expect_err("no dir");
        assert!(matches!(e, GenSecretError::Create { .. }), "{e}");
    }
}
