//! `knock`, the client: knockd 0.8's command line, plus one-address
//! resolution, clear errors, a doors file and `--connect` for ssh's
//! `ProxyCommand`.
//!
//! This module owns how a command line (and maybe a door from the doors
//! file) becomes a [`Plan`], how a plan runs, and which exit code each
//! failure gets. Its parts: [`args`] (flags and `PORT[:PROTO]`), [`doors`]
//! (the doors file), [`resolve`] (host to one address), [`hit`] (the
//! packets) and [`relay`] (`--connect`).
//!
//! The client must not depend on the daemon's layers (config, wire, engine,
//! capture, daemon): it shares only the vocabulary in [`crate::core::knock`].

pub mod args;
pub mod doors;
pub mod hit;
pub mod relay;
pub mod resolve;

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

pub use crate::core::sysexits::{
    EX_CONFIG, EX_IOERR, EX_NOHOST, EX_NOINPUT, EX_OSERR, EX_UNAVAILABLE, EX_USAGE,
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
    pub hits: Vec<Hit>,
    /// Wait after each hit.
    pub delay: Duration,
    pub verbose: bool,
    pub connect: Option<Connect>,
    /// Lines for stderr before starting (a doors file others can read).
    pub warnings: Vec<String>,
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
            ClientError::DoorsUnreadable { .. } => EX_NOINPUT,
            ClientError::Doors(_) => EX_CONFIG,
            ClientError::Resolve(_) => EX_NOHOST,
            ClientError::Hit(HitError::Socket { .. }) => EX_OSERR,
            ClientError::Hit(HitError::Send { .. }) | ClientError::Connect { .. } => EX_UNAVAILABLE,
            ClientError::Relay(_) => EX_IOERR,
        }
    }
}

/// Turns the command line into a plan, reading the doors file only for
/// `knock DOOR` (no ports given). Command-line flags win over the door's
/// settings.
pub fn plan(args: &Args) -> Result<Plan, ClientError> {
    let mut warnings = Vec::new();
    let door = if args.ports.is_empty() {
        Some(find_door(args, &mut warnings)?)
    } else if args.doors.is_some() {
        return Err(ClientError::Usage(
            "--doors is for knock DOOR; with ports on the command line it would be ignored".into(),
        ));
    } else {
        None
    };
    let (host, specs) = match &door {
        Some(d) => (d.host.clone(), d.sequence.as_slice()),
        None => (args.host.clone(), args.ports.as_slice()),
    };
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
    Ok(Plan {
        host,
        family,
        hits,
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
    })
}

fn find_door(args: &Args, warnings: &mut Vec<String>) -> Result<doors::Door, ClientError> {
    let name = &args.host;
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
    all.into_iter().find(|d| &d.name == name).ok_or_else(|| {
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

/// Runs a plan: resolve once, knock, and with `--connect` connect (knocking
/// again on a refused or timed-out connection, up to `retries` times) and
/// relay stdin/stdout. Messages go to stderr only; in `--connect` mode even
/// the verbose lines do, because stdout belongs to the relayed stream.
pub fn run(plan: &Plan) -> Result<(), ClientError> {
    let addr = resolve::resolve(&plan.host, plan.family)?;
    let mut knocks = 0u32;
    loop {
        {
            let mut stdout = io::stdout();
            let mut stderr = io::stderr();
            let verbose: Option<&mut dyn Write> = match (plan.verbose, &plan.connect) {
                (false, _) => None,
                (true, None) => Some(&mut stdout),
                (true, Some(_)) => Some(&mut stderr),
            };
            hit::knock(addr, &plan.hits, plan.delay, verbose)?;
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

    #[test]
    fn backoff_doubles_to_a_cap() {
        let secs: Vec<f64> = (1..=7).map(|n| backoff(n).as_secs_f64()).collect();
        assert_eq!(secs, [0.5, 1.0, 2.0, 4.0, 8.0, 8.0, 8.0]);
        assert_eq!(backoff(u32::MAX), Duration::from_secs(8));
    }
}
