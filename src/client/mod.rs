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
mod tests;
