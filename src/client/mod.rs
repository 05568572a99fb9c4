//! `knock`, the client: knockd 0.8's command line, plus one-address
//! resolution, clear errors, a doors file, `--connect` for ssh's
//! `ProxyCommand`, and rotating doors.
//!
//! This module owns how a command line (and maybe a door from the doors
//! file) becomes a [`Mode`] (usually a [`Plan`]), how it runs, and which
//! exit code each failure gets. Its parts: [`args`] (flags and
//! `PORT[:PROTO]`), [`doors`] (the doors file), [`rotating`] (secret files
//! and the sequence of the moment), [`resolve`] (host to one address),
//! [`hit`] (the packets) and [`relay`] (`--connect`).
//!
//! The client must not depend on the daemon's layers (wire, engine,
//! capture, daemon): it shares the vocabulary in [`crate::core::knock`] and
//! the rotating-sequence derivation in [`crate::core::rotate`] (with the
//! sequence type and limits it uses from [`crate::core::config`]).

pub mod args;
pub mod doors;
pub mod hit;
pub mod relay;
pub mod resolve;
pub mod rotating;

use std::borrow::Cow;
use std::fmt;
use std::io::{self, Write};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use crate::core::knock::Proto;
use args::Args;
use hit::{Hit, HitError};
use relay::RelayError;
use resolve::ResolveError;
use rotating::{GenSecretError, Rotating, SecretFileError};

pub use crate::core::sysexits::{
    EX_CANTCREAT, EX_CONFIG, EX_IOERR, EX_NOHOST, EX_NOINPUT, EX_OSERR, EX_UNAVAILABLE, EX_USAGE,
};

/// Which address family to knock over: `-4`, `-6`, or whatever the
/// resolver prefers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Any,
    V4,
    V6,
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Family::Any => "IP",
            Family::V4 => "IPv4",
            Family::V6 => "IPv6",
        })
    }
}

/// `--connect`: where to relay to after the knock, and how hard to try.
#[derive(Debug, Clone, PartialEq)]
pub struct Connect {
    pub port: u16,
    /// Extra knock-and-connect rounds after the first one fails.
    pub retries: u32,
    /// How long each connection attempt may take.
    pub timeout: Duration,
}

/// Everything one run does, decided before any packet leaves: a bad door or
/// argument fails before the first hit, never halfway through a sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    pub host: String,
    pub family: Family,
    /// The hits of a fixed sequence; empty for a rotating door, whose hits
    /// are derived afresh for every knock round.
    pub hits: Vec<Hit>,
    /// A rotating door: each round knocks the sequence of its moment.
    pub rotating: Option<Rotating>,
    /// Wait after each hit.
    pub delay: Duration,
    pub verbose: bool,
    pub connect: Option<Connect>,
    /// Lines for stderr before starting (a doors file others can read).
    pub warnings: Vec<String>,
}

/// `--show-sequence`: a rotating door's sequence, printed instead of
/// knocked (no host, no resolution, no socket).
#[derive(Debug, Clone, PartialEq)]
pub struct Show {
    pub rotating: Rotating,
    /// `--at`: the Unix time to derive for; `None` is now.
    pub at: Option<u64>,
    /// Lines for stderr before printing.
    pub warnings: Vec<String>,
}

/// What one invocation does: knock (the usual), print a rotating sequence,
/// or make a secret. Decided whole before anything is sent or written.
#[derive(Debug, Clone, PartialEq)]
pub enum Mode {
    Knock(Plan),
    Show(Show),
    /// `--gen-secret FILE`.
    GenSecret(PathBuf),
}

impl Mode {
    /// Lines for stderr before running (files others can read).
    pub fn warnings(&self) -> &[String] {
        match self {
            Mode::Knock(p) => &p.warnings,
            Mode::Show(s) => &s.warnings,
            Mode::GenSecret(_) => &[],
        }
    }
}

/// Every way `knock` fails; [`ClientError::exit_code`] maps each to sysexits.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("{0}")]
    Usage(String),
    #[error("cannot read doors file {}: {source}", path.display())]
    DoorsUnreadable { path: PathBuf, source: io::Error },
    #[error(transparent)]
    Doors(#[from] doors::DoorsError),
    #[error(transparent)]
    Secret(#[from] SecretFileError),
    #[error(transparent)]
    GenSecret(#[from] GenSecretError),
    /// The system clock says before 1970: no period to derive.
    #[error("the system clock is before 1970; cannot derive a rotating door's sequence")]
    Clock,
    #[error(transparent)]
    Resolve(#[from] ResolveError),
    #[error(transparent)]
    Hit(#[from] HitError),
    #[error("cannot connect to {addr}: {source}{}", after_knocks(*knocks))]
    Connect {
        addr: SocketAddr,
        knocks: u32,
        source: io::Error,
    },
    #[error(transparent)]
    Relay(#[from] RelayError),
    /// `--show-sequence` could not print its line.
    #[error("cannot write to stdout: {0}")]
    Stdout(#[source] io::Error),
}

/// `" (after 3 knocks)"` when `--retry` knocked more than once.
fn after_knocks(knocks: u32) -> String {
    if knocks > 1 {
        format!(" (after {knocks} knocks)")
    } else {
        String::new()
    }
}

impl ClientError {
    /// The process exit status for this failure.
    pub fn exit_code(&self) -> u8 {
        match self {
            ClientError::Usage(_) => EX_USAGE,
            ClientError::DoorsUnreadable { .. }
            | ClientError::Secret(SecretFileError::Unreadable { .. }) => EX_NOINPUT,
            ClientError::Doors(_) | ClientError::Secret(SecretFileError::Malformed { .. }) => {
                EX_CONFIG
            }
            ClientError::GenSecret(GenSecretError::Random(_)) | ClientError::Clock => EX_OSERR,
            ClientError::GenSecret(_) => EX_CANTCREAT,
            ClientError::Resolve(_) => EX_NOHOST,
            ClientError::Hit(HitError::Socket { .. }) => EX_OSERR,
            ClientError::Hit(HitError::Send { .. }) | ClientError::Connect { .. } => EX_UNAVAILABLE,
            ClientError::Relay(_) | ClientError::Stdout(_) => EX_IOERR,
        }
    }
}

fn usage(message: impl Into<String>) -> ClientError {
    ClientError::Usage(message.into())
}

/// Turns the command line into a knock plan; see [`mode`]. `--show-sequence`
/// and `--gen-secret` do not knock, so here they are usage errors.
pub fn plan(args: &Args) -> Result<Plan, ClientError> {
    match mode(args)? {
        Mode::Knock(plan) => Ok(plan),
        Mode::Show(_) => Err(usage(
            "--show-sequence prints a sequence; it does not knock",
        )),
        Mode::GenSecret(_) => Err(usage("--gen-secret makes a secret; it does not knock")),
    }
}

/// Turns the command line into what to do, reading the doors file only for
/// `knock DOOR` (no ports given) and a secret file only for a rotating
/// door. Command-line flags win over the door's settings.
pub fn mode(args: &Args) -> Result<Mode, ClientError> {
    if let Some(path) = &args.gen_secret {
        // clap lets nothing else through with --gen-secret.
        return Ok(Mode::GenSecret(path.clone()));
    }
    let mut warnings = Vec::new();
    let (door, rotating) = if let Some(r) = rotating_from_flags(args, &mut warnings)? {
        (None, Some(r))
    } else if args.ports.is_empty() {
        let Some(name) = args.host.as_deref() else {
            return Err(usage(
                "--show-sequence needs a rotating DOOR, or --secret-file with --door, --ports and --length",
            ));
        };
        let door = find_door(name, args, &mut warnings)?;
        let rotating = match &door.rotating {
            Some(rd) => {
                let (secret, warning) = rotating::read_secret(&rd.secret_file)?;
                warnings.extend(warning);
                Some(Rotating {
                    secret,
                    door: rd.door.clone(),
                    rotation: rd.rotation.clone(),
                })
            }
            None => None,
        };
        (Some(door), rotating)
    } else if args.doors.is_some() {
        return Err(usage(
            "--doors is for knock DOOR; with ports on the command line it would be ignored",
        ));
    } else {
        (None, None)
    };
    if args.show_sequence {
        return match rotating {
            Some(rotating) => Ok(Mode::Show(Show {
                rotating,
                at: args.at,
                warnings,
            })),
            None => Err(usage(match &door {
                Some(d) => format!(
                    "--show-sequence is for rotating doors; door [{}] has a fixed sequence",
                    d.name
                ),
                None => "--show-sequence is for rotating doors: give --secret-file with --door, --ports and --length, or a rotating DOOR".into(),
            })),
        };
    }
    if rotating.is_some() && args.udp {
        return Err(usage(
            "-u does not apply to a rotating door: its protocols are part of the sequence (see --protocols)",
        ));
    }
    let host = match &door {
        Some(d) => d.host.clone(),
        None => args
            .host
            .clone()
            .ok_or_else(|| usage("no HOST to knock on"))?,
    };
    let specs = door
        .as_ref()
        .map_or(args.ports.as_slice(), |d| d.sequence.as_slice());
    let default_proto = door.as_ref().and_then(|d| d.protocol).unwrap_or(Proto::Tcp);
    let hits = specs
        .iter()
        .map(|s| Hit {
            port: s.port,
            // knockd: -u makes every hit UDP, even one written `:tcp`.
            proto: if args.udp {
                Proto::Udp
            } else {
                s.proto.unwrap_or(default_proto)
            },
            label: s.label.clone(),
        })
        .collect();
    let family = if args.ipv4 {
        Family::V4
    } else if args.ipv6 {
        Family::V6
    } else {
        door.as_ref().and_then(|d| d.family).unwrap_or(Family::Any)
    };
    let delay_ms = args
        .delay
        .or(door.as_ref().and_then(|d| d.delay))
        .unwrap_or(0);
    Ok(Mode::Knock(Plan {
        host,
        family,
        hits,
        rotating,
        delay: Duration::from_millis(delay_ms),
        verbose: args.verbose,
        connect: args.connect.map(|port| Connect {
            port,
            retries: args.retry.unwrap_or(0),
            timeout: Duration::from_secs_f64(
                args.timeout.unwrap_or(args::DEFAULT_CONNECT_TIMEOUT_SECS),
            ),
        }),
        warnings,
    }))
}

/// The rotating door the flags describe (`--secret-file` and its
/// companions), `None` without any of them. Checks every combination first
/// (each a one-line usage error), reads the secret file last.
fn rotating_from_flags(
    args: &Args,
    warnings: &mut Vec<String>,
) -> Result<Option<Rotating>, ClientError> {
    let companions = [
        ("--door", args.door.is_some()),
        ("--ports", args.port_range.is_some()),
        ("--length", args.length.is_some()),
        ("--period", args.period.is_some()),
        ("--protocols", args.protocols.is_some()),
    ];
    let Some(file) = &args.secret_file else {
        return match companions.iter().find(|(_, given)| *given) {
            Some((flag, _)) => Err(usage(format!(
                "{flag} is for a rotating door: give it with --secret-file FILE, --door, --ports and --length"
            ))),
            None => Ok(None),
        };
    };
    let Some(door) = &args.door else {
        return Err(usage(
            "--secret-file needs --door NAME (the door's name in knockd.conf)",
        ));
    };
    let Some(range) = args.port_range else {
        return Err(usage(
            "--secret-file needs --ports A-B (the door's Sequence_Ports)",
        ));
    };
    let Some(length) = args.length else {
        return Err(usage(
            "--secret-file needs --length N (the door's Sequence_Length)",
        ));
    };
    if door.is_empty() {
        return Err(usage("--door: empty door name"));
    }
    if let Some(first) = args.ports.first() {
        return Err(usage(format!(
            "with --secret-file the sequence is derived; ports on the command line (\"{}\") are not allowed",
            first.label
        )));
    }
    if args.doors.is_some() {
        return Err(usage(
            "--doors is for knock DOOR; with --secret-file it would be ignored",
        ));
    }
    let rotation = rotating::rotation(
        range,
        length,
        args.protocols.as_ref().map(|p| p.0.clone()),
        args.period,
    )
    .map_err(|e| usage(format!("rotating door \"{door}\": {e}")))?;
    let (secret, warning) = rotating::read_secret(file)?;
    warnings.extend(warning);
    Ok(Some(Rotating {
        secret,
        door: door.clone(),
        rotation,
    }))
}

fn find_door(
    name: &str,
    args: &Args,
    warnings: &mut Vec<String>,
) -> Result<doors::Door, ClientError> {
    let (path, explicit) = match &args.doors {
        Some(p) => (p.clone(), true),
        None => match doors::default_path() {
            Some(p) => (p, false),
            None => {
                return Err(ClientError::Usage(format!(
                    "no ports given for \"{name}\", and no doors file (HOME is not set)"
                )))
            }
        },
    };
    let loaded = match doors::load(&path) {
        Ok(loaded) => loaded,
        Err(e) if e.kind() == io::ErrorKind::NotFound && !explicit => {
            return Err(ClientError::Usage(format!(
                "no ports given for \"{name}\", and no doors file at {} (usage: knock HOST PORT[:PROTO]...)",
                path.display()
            )))
        }
        Err(source) => return Err(ClientError::DoorsUnreadable { path, source }),
    };
    let all = loaded.map_err(ClientError::Doors)?;
    warnings.extend(doors::permission_warning(&path));
    all.into_iter().find(|d| d.name == name).ok_or_else(|| {
        ClientError::Usage(format!(
            "no ports given, and no door [{name}] in {}",
            path.display()
        ))
    })
}

/// Pause before the `n`th retry (1-based): 0.5 s, doubling, at most 8 s.
/// Long enough for a slow server-side command, short enough for a human.
pub fn backoff(n: u32) -> Duration {
    Duration::from_millis(500u64 << n.saturating_sub(1).min(4))
}

/// Carries out a mode: [`run`] a plan, print a sequence, or write a secret.
pub fn execute(mode: &Mode) -> Result<(), ClientError> {
    match mode {
        Mode::Knock(plan) => run(plan),
        Mode::Show(show) => {
            let unix = match show.at {
                Some(t) => t,
                None => rotating::unix_now().ok_or(ClientError::Clock)?,
            };
            let counter = show.rotating.rotation.counter(unix);
            let mut out = io::stdout().lock();
            writeln!(out, "{}", show.rotating.show_line(counter))
                .and_then(|()| out.flush())
                .map_err(ClientError::Stdout)
        }
        Mode::GenSecret(path) => Ok(rotating::gen_secret(path)?),
    }
}

/// Runs a plan: resolve once, knock, and with `--connect` connect (knocking
/// again on a refused or timed-out connection, up to `retries` times) and
/// relay stdin/stdout. Messages go to stderr only; in `--connect` mode even
/// the verbose lines do, because stdout belongs to the relayed stream.
pub fn run(plan: &Plan) -> Result<(), ClientError> {
    let addr = resolve::resolve(&plan.host, plan.family)?;
    let mut knocks = 0u32;
    // The period the previous round of a rotating door knocked.
    let mut knocked: Option<u64> = None;
    loop {
        // A rotating door's hits are those of this round's moment; a retry
        // in the period just knocked takes the next period instead (see
        // `rotating::round_counter`: the daemon refuses a period twice).
        let hits: Cow<'_, [Hit]> = match &plan.rotating {
            None => Cow::Borrowed(&plan.hits),
            Some(r) => {
                let now = rotating::unix_now().ok_or(ClientError::Clock)?;
                let counter = rotating::round_counter(r.rotation.counter(now), knocked);
                knocked = Some(counter);
                Cow::Owned(r.hits(counter))
            }
        };
        {
            let mut stdout = io::stdout();
            let mut stderr = io::stderr();
            let verbose: Option<&mut dyn Write> = match (plan.verbose, &plan.connect) {
                (false, _) => None,
                (true, None) => Some(&mut stdout),
                (true, Some(_)) => Some(&mut stderr),
            };
            hit::knock(addr, &hits, plan.delay, verbose)?;
        }
        knocks += 1;
        let Some(c) = &plan.connect else {
            return Ok(());
        };
        let target = SocketAddr::new(addr, c.port);
        if plan.verbose {
            note(format_args!("connecting to {target}"));
        }
        match relay::connect(target, c.timeout) {
            Ok(stream) => {
                if plan.verbose {
                    note(format_args!("connected to {target}, relaying"));
                }
                return relay::relay(stream, io::stdin(), io::stdout()).map_err(ClientError::Relay);
            }
            Err(e) if relay::is_retryable(&e) && knocks <= c.retries => {
                let wait = backoff(knocks);
                note(format_args!(
                    "knock: cannot connect to {target}: {e}; knocking again in {:.1}s (retry {knocks} of {})",
                    wait.as_secs_f64(),
                    c.retries
                ));
                std::thread::sleep(wait);
            }
            Err(source) => {
                return Err(ClientError::Connect {
                    addr: target,
                    knocks,
                    source,
                })
            }
        }
    }
}

/// One line on stderr; a closed stderr is no reason to stop.
fn note(line: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "{line}");
}

#[cfg(test)]
mod tests {
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
        assert!(
            usage_error(&args(&["--doors", &path, "-u", "srv"])).starts_with("-u does not apply")
        );
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
}
