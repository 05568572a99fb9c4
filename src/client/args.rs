//! The `knock` command line: knockd 0.8's client flags plus long-only
//! extensions (`--connect`, `--retry`, `--timeout`, `--doors`, and the
//! rotating-door flags `--secret-file`, `--door`, `--ports`, `--length`,
//! `--period`, `--protocols`, `--show-sequence`, `--at`, `--gen-secret`).
//!
//! This module owns the flag names, their help text and the syntax of one
//! `PORT[:PROTO]` argument (shared with the doors file). It must not resolve
//! hosts, open sockets, print or exit; the only outside lookup it makes is a
//! service name in the services database (`ssh` → 22), as knockd's client
//! does through `getaddrinfo`.

use std::ffi::{CStr, CString, OsString};
use std::fmt;
use std::path::PathBuf;
use std::sync::Mutex;

use clap::{ArgAction, Parser};

use super::rotating::{self, PortRange};
use crate::core::knock::Proto;

/// Most `--retry` accepts: each retry knocks the whole sequence again, so
/// an unbounded count is a knock flood, not persistence.
pub const MAX_RETRIES: u32 = 100;
/// Seconds `--connect` waits for each connection attempt unless `--timeout`
/// says otherwise.
pub const DEFAULT_CONNECT_TIMEOUT_SECS: f64 = 5.0;
/// Longest `--timeout`: an hour is already more than any firewall delay.
pub const MAX_CONNECT_TIMEOUT_SECS: f64 = 3600.0;

/// One knock target as typed: `7000`, `7000:udp`, `ssh:tcp`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortSpec {
    /// The resolved port number, 1-65535.
    pub port: u16,
    /// The protocol suffix, if one was given; `None` lets `-u` or the door's
    /// `protocol` decide (tcp by default).
    pub proto: Option<Proto>,
    /// The port part as typed (`ssh` or `7000`): knockd's verbose line prints
    /// it this way, so ours does too.
    pub label: String,
}

/// Why a `PORT[:PROTO]` text is not valid. Displays as one line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortError {
    Empty,
    OutOfRange(String),
    UnknownService(String),
    UnknownProtocol { arg: String, proto: String },
}

impl fmt::Display for PortError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PortError::Empty => f.write_str("empty port"),
            PortError::OutOfRange(p) => write!(f, "port {p} is out of range (1-65535)"),
            PortError::UnknownService(p) => write!(
                f,
                "\"{p}\" is neither a port number nor a known service name"
            ),
            PortError::UnknownProtocol { arg, proto } => write!(
                f,
                "unknown protocol \"{proto}\" in \"{arg}\" (expected tcp or udp)"
            ),
        }
    }
}

impl std::error::Error for PortError {}

/// Parses `PORT[:PROTO]`. The protocol is `tcp` or `udp`, any case; the port
/// is 1-65535 or a service name.
///
/// knockd 0.8 treats any suffix but exactly `udp` as tcp (`7000:UDP` and
/// `7000:foo` knock tcp) and passes port 0 or 70000 on to the resolver; here
/// those are errors, because a silently wrong knock just fails to open the
/// door with no hint why.
pub fn parse_port_spec(text: &str) -> Result<PortSpec, PortError> {
    let (port, proto) = match text.split_once(':') {
        Some((port, proto)) => (port.trim(), Some(proto.trim())),
        None => (text.trim(), None),
    };
    let proto = match proto {
        None => None,
        Some(p) if p.eq_ignore_ascii_case("tcp") => Some(Proto::Tcp),
        Some(p) if p.eq_ignore_ascii_case("udp") => Some(Proto::Udp),
        Some(p) => {
            return Err(PortError::UnknownProtocol {
                arg: text.to_string(),
                proto: p.to_string(),
            })
        }
    };
    let number = parse_port_number(port, proto.unwrap_or(Proto::Tcp))?;
    Ok(PortSpec {
        port: number,
        proto,
        label: port.to_string(),
    })
}

/// A port number 1-65535, or a service name looked up for `proto` first and
/// then for any protocol (knockd's client accepts a name listed for either).
pub fn parse_port_number(text: &str, proto: Proto) -> Result<u16, PortError> {
    if text.is_empty() {
        return Err(PortError::Empty);
    }
    if text.bytes().all(|b| b.is_ascii_digit()) {
        return match text.parse::<u32>() {
            Ok(n @ 1..=65535) => Ok(n as u16),
            _ => Err(PortError::OutOfRange(text.to_string())),
        };
    }
    if text.starts_with(['-', '+']) && text[1..].bytes().all(|b| b.is_ascii_digit()) {
        return Err(PortError::OutOfRange(text.to_string()));
    }
    service_port(text, Some(proto))
        .or_else(|| service_port(text, None))
        .ok_or_else(|| PortError::UnknownService(text.to_string()))
}

/// `getservbyname(3)` returns a pointer into a static buffer; this lock keeps
/// two threads (the test harness runs tests in parallel) from sharing it.
static SERVICES: Mutex<()> = Mutex::new(());

/// The port the services database lists for `name` (and `proto`, if given).
fn service_port(name: &str, proto: Option<Proto>) -> Option<u16> {
    let name = CString::new(name).ok()?;
    let proto: Option<&CStr> = proto.map(|p| match p {
        Proto::Tcp => c"tcp",
        Proto::Udp => c"udp",
    });
    let _guard = SERVICES
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // SAFETY: both pointers are NUL-terminated strings that outlive the
    // call (or null for "any protocol"); the returned entry is read at once,
    // under the lock, before any other call can overwrite it.
    let port = unsafe {
        let entry = libc::getservbyname(
            name.as_ptr(),
            proto.map_or(std::ptr::null(), |p| p.as_ptr()),
        );
        if entry.is_null() {
            return None;
        }
        (*entry).s_port
    };
    // s_port holds the port in network byte order in the low 16 bits.
    match u16::from_be(port as u16) {
        0 => None,
        n => Some(n),
    }
}

/// `-d MS`: a whole number of milliseconds. knockd's `atoi` turns `1s` into
/// 1 and `x` into 0; a typo here is an error instead.
fn parse_delay(text: &str) -> Result<u64, String> {
    if text.starts_with('-') {
        return Err("delay cannot be negative".into());
    }
    text.parse::<u64>()
        .map_err(|_| format!("\"{text}\" is not a whole number of milliseconds"))
}

/// `--connect PORT`: the port to relay to, a number or a tcp service name.
fn parse_connect_port(text: &str) -> Result<u16, String> {
    parse_port_number(text.trim(), Proto::Tcp).map_err(|e| e.to_string())
}

fn parse_retries(text: &str) -> Result<u32, String> {
    match text.parse::<u32>() {
        Ok(n) if n <= MAX_RETRIES => Ok(n),
        _ => Err(format!("expected a count from 0 to {MAX_RETRIES}")),
    }
}

fn parse_timeout(text: &str) -> Result<f64, String> {
    match text.parse::<f64>() {
        Ok(s) if s > 0.0 && s <= MAX_CONNECT_TIMEOUT_SECS => Ok(s),
        _ => Err(format!(
            "expected seconds, more than 0 and at most {MAX_CONNECT_TIMEOUT_SECS}"
        )),
    }
}

/// `--ports A-B` (clap wants one error type per parser; the text is the
/// message).
fn parse_port_range(text: &str) -> Result<PortRange, String> {
    rotating::parse_port_range(text)
}

/// `--protocols tcp[,udp,...]`.
fn parse_protocols(text: &str) -> Result<Protocols, String> {
    rotating::parse_protocols(text).map(Protocols)
}

/// `--at UNIX_TIME`: whole seconds since 1970.
fn parse_unix_time(text: &str) -> Result<u64, String> {
    text.parse::<u64>()
        .map_err(|_| format!("\"{text}\" is not a Unix time in whole seconds"))
}

/// The protocols of a rotating door's steps: one for all, or one per step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protocols(pub Vec<Proto>);

/// knock's options. Field names follow the long flags.
#[derive(Debug, Clone, PartialEq, Parser)]
#[command(
    name = "knock",
    version,
    about = "port-knock client",
    long_about = None,
    // Two lines: clap repeats the usage in every error, which must stay short.
    override_usage = "knock [OPTIONS] <HOST> <PORT[:PROTO]>...\n       knock [OPTIONS] <DOOR>",
    after_help = "examples:\n  knock myserver.example.com 123:tcp 456:udp 789:tcp\n  \
                  knock myserver                      (a door from ~/.config/knock/doors)\n  \
                  ProxyCommand knock --connect %p %h 7000 8000 9000   (in ~/.ssh/config)\n  \
                  knock --secret-file ssh.key --door ssh --ports 10000-10999 --length 5 myserver.example.com\n  \
                  knock --show-sequence myserver      (a rotating door's current sequence)\n  \
                  knock --gen-secret ssh.key          (a new secret for a rotating door)",
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Args {
    /// make all port hits use UDP (default is TCP)
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// wait MS milliseconds after each port hit
    #[arg(short = 'd', long, value_name = "MS", value_parser = parse_delay, allow_hyphen_values = true)]
    pub delay: Option<u64>,

    /// force usage of IPv4
    #[arg(short = '4', long, conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// force usage of IPv6
    #[arg(short = '6', long)]
    pub ipv6: bool,

    /// be verbose
    #[arg(short = 'v', long)]
    pub verbose: bool,

    /// after knocking, connect to HOST:PORT and relay stdin/stdout (for ssh's ProxyCommand)
    #[arg(long, value_name = "PORT", value_parser = parse_connect_port)]
    pub connect: Option<u16>,

    /// with --connect: if the connection is refused or times out, knock and connect again, up to N times (a rotating door's retry in the period just knocked knocks the next period's sequence)
    #[arg(long, value_name = "N", value_parser = parse_retries, requires = "connect", allow_hyphen_values = true)]
    pub retry: Option<u32>,

    /// with --connect: seconds to wait for each connection attempt [default: 5]
    #[arg(long, value_name = "SECS", value_parser = parse_timeout, requires = "connect", allow_hyphen_values = true)]
    pub timeout: Option<f64>,

    /// doors file for `knock DOOR` [default: $XDG_CONFIG_HOME/knock/doors or ~/.config/knock/doors]
    #[arg(long, value_name = "FILE")]
    pub doors: Option<PathBuf>,

    /// rotating door: file holding its base32 secret (as knockd.conf's Sequence_Secret_File)
    #[arg(long, value_name = "FILE")]
    pub secret_file: Option<PathBuf>,

    /// rotating door: its name in knockd.conf, part of the derivation
    #[arg(long, value_name = "NAME")]
    pub door: Option<String>,

    /// rotating door: the port range of its sequence (Sequence_Ports)
    #[arg(long = "ports", id = "port_range", value_name = "A-B", value_parser = parse_port_range)]
    pub port_range: Option<PortRange>,

    /// rotating door: ports per sequence (Sequence_Length)
    #[arg(long, value_name = "N", value_parser = rotating::parse_length, allow_hyphen_values = true)]
    pub length: Option<u8>,

    /// rotating door: seconds per sequence (Sequence_Period) [default: 30]
    #[arg(long, value_name = "SECS", value_parser = rotating::parse_period, allow_hyphen_values = true)]
    pub period: Option<u64>,

    /// rotating door: one protocol, or one per step (Sequence_Protocols) [default: tcp]
    #[arg(long, value_name = "PROTO[,PROTO...]", value_parser = parse_protocols)]
    pub protocols: Option<Protocols>,

    /// print a rotating door's current sequence (PORT:PROTO ...) instead of knocking
    #[arg(long, conflicts_with = "connect")]
    pub show_sequence: bool,

    /// with --show-sequence: the sequence at this Unix time (seconds) instead of now
    #[arg(long, value_name = "UNIX_TIME", value_parser = parse_unix_time, requires = "show_sequence", allow_hyphen_values = true)]
    pub at: Option<u64>,

    /// write a new random secret for a rotating door to FILE (mode 600; never overwrites)
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub gen_secret: Option<PathBuf>,

    /// host name or address to knock on; alone, the name of a door in the doors file
    #[arg(value_name = "HOST", required_unless_present_any = ["show_sequence", "gen_secret"])]
    pub host: Option<String>,

    /// ports to hit, in order; a port number or service name, optionally :tcp or :udp
    #[arg(value_name = "PORT[:PROTO]", value_parser = parse_port_spec)]
    pub ports: Vec<PortSpec>,

    /// display version
    #[arg(short = 'V', long, action = ArgAction::Version)]
    version: (),

    /// this help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    help: (),
}

/// Parses `args` (program name first). `--help` and `--version` come back as
/// errors of kind `DisplayHelp`/`DisplayVersion`; the caller prints them and
/// maps every other error to a usage failure.
pub fn parse_args<I, T>(args: I) -> Result<Args, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Args::try_parse_from(args)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Args {
        let mut all = vec!["knock"];
        all.extend_from_slice(args);
        match parse_args(all) {
            Ok(a) => a,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn error(args: &[&str]) -> clap::Error {
        let mut all = vec!["knock"];
        all.extend_from_slice(args);
        match parse_args(all) {
            Ok(a) => panic!("{args:?} parsed: {a:?}"),
            Err(e) => e,
        }
    }

    fn spec(port: u16, proto: Option<Proto>, label: &str) -> PortSpec {
        PortSpec {
            port,
            proto,
            label: label.into(),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Args::command().debug_assert();
    }

    #[test]
    fn knockd_style_invocation() {
        let a = parse(&["host.example", "123:tcp", "456:udp", "789"]);
        assert_eq!(a.host.as_deref(), Some("host.example"));
        assert_eq!(
            a.ports,
            [
                spec(123, Some(Proto::Tcp), "123"),
                spec(456, Some(Proto::Udp), "456"),
                spec(789, None, "789"),
            ]
        );
        assert!(!a.udp && !a.verbose && !a.ipv4 && !a.ipv6);
        assert_eq!(
            (a.delay, a.connect, a.retry, a.timeout),
            (None, None, None, None)
        );
    }

    #[test]
    fn every_knockd_flag_short_and_long() {
        assert!(parse(&["-u", "h", "1"]).udp);
        assert!(parse(&["--udp", "h", "1"]).udp);
        assert_eq!(parse(&["-d", "250", "h", "1"]).delay, Some(250));
        assert_eq!(parse(&["--delay", "0", "h", "1"]).delay, Some(0));
        assert_eq!(parse(&["-d250", "h", "1"]).delay, Some(250));
        assert!(parse(&["-4", "h", "1"]).ipv4);
        assert!(parse(&["--ipv4", "h", "1"]).ipv4);
        assert!(parse(&["-6", "h", "1"]).ipv6);
        assert!(parse(&["--ipv6", "h", "1"]).ipv6);
        assert!(parse(&["-v", "h", "1"]).verbose);
        assert!(parse(&["--verbose", "h", "1"]).verbose);
        let a = parse(&["-vu6", "-d", "5", "h", "1"]);
        assert!(a.verbose && a.udp && a.ipv6);
        assert_eq!(a.delay, Some(5));
    }

    #[test]
    fn flags_may_follow_the_host_as_with_getopt() {
        let a = parse(&["h", "7000", "-v", "8000"]);
        assert!(a.verbose);
        assert_eq!(a.ports.len(), 2);
    }

    #[test]
    fn a_lone_host_is_a_door_name() {
        let a = parse(&["myserver"]);
        assert_eq!(a.host.as_deref(), Some("myserver"));
        assert!(a.ports.is_empty());
        assert_eq!(error(&[]).kind(), ErrorKind::MissingRequiredArgument);
    }

    #[test]
    fn protocol_suffix_is_tcp_or_udp_any_case() {
        assert_eq!(
            parse_port_spec("7000:UDP"),
            Ok(spec(7000, Some(Proto::Udp), "7000"))
        );
        assert_eq!(
            parse_port_spec("7000:Tcp"),
            Ok(spec(7000, Some(Proto::Tcp), "7000"))
        );
        assert_eq!(
            parse_port_spec("7000:foo"),
            Err(PortError::UnknownProtocol {
                arg: "7000:foo".into(),
                proto: "foo".into()
            })
        );
        assert_eq!(
            parse_port_spec("7000:").map_err(|e| e.to_string()),
            Err("unknown protocol \"\" in \"7000:\" (expected tcp or udp)".into())
        );
        assert_eq!(
            parse_port_spec("7000:foo").map_err(|e| e.to_string()),
            Err("unknown protocol \"foo\" in \"7000:foo\" (expected tcp or udp)".into())
        );
    }

    #[test]
    fn ports_out_of_range_are_errors_not_wrapped() {
        assert_eq!(parse_port_spec("1"), Ok(spec(1, None, "1")));
        assert_eq!(parse_port_spec("65535"), Ok(spec(65535, None, "65535")));
        for bad in ["0", "65536", "70000", "99999999999999999999", "-1", "+5"] {
            assert_eq!(
                parse_port_spec(bad),
                Err(PortError::OutOfRange(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            PortError::OutOfRange("70000".into()).to_string(),
            "port 70000 is out of range (1-65535)"
        );
        assert_eq!(parse_port_spec(""), Err(PortError::Empty));
        assert_eq!(parse_port_spec(":udp"), Err(PortError::Empty));
    }

    #[test]
    fn service_names_resolve_like_knockds_client() {
        // /etc/services is part of every Debian base system (netbase).
        assert_eq!(parse_port_spec("ssh"), Ok(spec(22, None, "ssh")));
        assert_eq!(
            parse_port_spec("domain:udp"),
            Ok(spec(53, Some(Proto::Udp), "domain"))
        );
        // Listed for udp only, still accepted for a tcp hit, as knockd does.
        assert_eq!(parse_port_spec("syslog").map(|s| s.port), Ok(514));
        assert_eq!(
            parse_port_spec("no-such-service-xyz").map_err(|e| e.to_string()),
            Err("\"no-such-service-xyz\" is neither a port number nor a known service name".into())
        );
        assert!(parse_port_spec("a\0b").is_err());
    }

    #[test]
    fn bad_port_arguments_are_value_errors_naming_the_problem() {
        let e = error(&["h", "7000:foo"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("unknown protocol \"foo\""), "{e}");
        let e = error(&["h", "7000", "70000"]);
        assert!(e.to_string().contains("out of range (1-65535)"), "{e}");
    }

    #[test]
    fn delay_must_be_whole_non_negative_milliseconds() {
        let e = error(&["-d", "-5", "h", "1"]);
        assert_eq!(e.kind(), ErrorKind::ValueValidation);
        assert!(e.to_string().contains("delay cannot be negative"), "{e}");
        let e = error(&["-d", "1s", "h", "1"]);
        assert!(
            e.to_string().contains("not a whole number of milliseconds"),
            "{e}"
        );
        assert_eq!(error(&["h", "1", "-d"]).kind(), ErrorKind::InvalidValue);
    }

    #[test]
    fn ipv4_and_ipv6_conflict() {
        assert_eq!(
            error(&["-4", "-6", "h", "1"]).kind(),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn connect_retry_and_timeout() {
        let a = parse(&[
            "--connect",
            "22",
            "--retry",
            "3",
            "--timeout",
            "1.5",
            "h",
            "7000",
        ]);
        assert_eq!(
            (a.connect, a.retry, a.timeout),
            (Some(22), Some(3), Some(1.5))
        );
        assert_eq!(parse(&["--connect", "ssh", "h"]).connect, Some(22));
        assert_eq!(
            error(&["--retry", "3", "h", "1"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            error(&["--timeout", "3", "h", "1"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            error(&["--connect", "0", "h"]).kind(),
            ErrorKind::ValueValidation
        );
        for bad in ["101", "-1", "x"] {
            let e = error(&["--connect", "22", "--retry", bad, "h"]);
            assert!(e.to_string().contains("from 0 to 100"), "{e}");
        }
        for bad in ["0", "-1", "nan", "3601", "inf"] {
            let e = error(&["--connect", "22", "--timeout", bad, "h"]);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{bad}");
        }
    }

    #[test]
    fn doors_file_flag() {
        assert_eq!(
            parse(&["--doors", "/x/d", "srv"]).doors,
            Some("/x/d".into())
        );
    }

    #[test]
    fn version_and_help_are_displays() {
        for (flag, kind) in [
            ("-V", ErrorKind::DisplayVersion),
            ("--version", ErrorKind::DisplayVersion),
            ("-h", ErrorKind::DisplayHelp),
            ("--help", ErrorKind::DisplayHelp),
        ] {
            assert_eq!(error(&[flag]).kind(), kind, "{flag}");
        }
        assert_eq!(
            error(&["-V"]).to_string(),
            format!("knock {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn help_lists_every_flag() {
        let help = error(&["-h"]).to_string();
        for flag in [
            "-u, --udp",
            "-d, --delay <MS>",
            "-4, --ipv4",
            "-6, --ipv6",
            "-v, --verbose",
            "--connect <PORT>",
            "--retry <N>",
            "--timeout <SECS>",
            "--doors <FILE>",
            "-V, --version",
            "-h, --help",
            "knock [OPTIONS] <HOST> <PORT[:PROTO]>...",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }

    #[test]
    fn rotating_door_flags() {
        let a = parse(&[
            "--secret-file",
            "/k/ssh.key",
            "--door",
            "ssh",
            "--ports",
            "10000-10999",
            "--length",
            "5",
            "--period",
            "60",
            "--protocols",
            "tcp,UDP,tcp,udp,tcp",
            "h",
        ]);
        assert_eq!(a.secret_file, Some("/k/ssh.key".into()));
        assert_eq!(a.door.as_deref(), Some("ssh"));
        assert_eq!(
            a.port_range,
            Some(PortRange {
                first: 10000,
                last: 10999
            })
        );
        assert_eq!((a.length, a.period), (Some(5), Some(60)));
        use Proto::{Tcp, Udp};
        assert_eq!(a.protocols, Some(Protocols(vec![Tcp, Udp, Tcp, Udp, Tcp])));
        assert_eq!(a.host.as_deref(), Some("h"));
        assert!(a.ports.is_empty() && !a.show_sequence);
        // Unset: None, so the mode can tell given from default.
        let a = parse(&["h", "1"]);
        assert_eq!(
            (
                a.secret_file,
                a.door,
                a.port_range,
                a.length,
                a.period,
                a.protocols
            ),
            (None, None, None, None, None, None)
        );
        assert_eq!((a.show_sequence, a.at, a.gen_secret), (false, None, None));
    }

    #[test]
    fn bad_rotating_values_are_value_errors_naming_the_problem() {
        for (args, needle) in [
            (
                &["--ports", "7000", "h"][..],
                "not a port range (FIRST-LAST)",
            ),
            (&["--ports", "9-5", "h"], "the first port is above the last"),
            (&["--ports", "0-5", "h"], "not a port from 1 to 65535"),
            (&["--length", "0", "h"], "not a whole number from 1 to 32"),
            (&["--length", "33", "h"], "not a whole number from 1 to 32"),
            (&["--length", "-1", "h"], "not a whole number from 1 to 32"),
            (&["--period", "0", "h"], "from 1 to 86400"),
            (&["--period", "x", "h"], "from 1 to 86400"),
            (&["--protocols", "icmp", "h"], "unknown protocol \"icmp\""),
            (&["--protocols", "tcp,,udp", "h"], "unknown protocol \"\""),
            (
                &["--show-sequence", "--at", "-1", "h"],
                "not a Unix time in whole seconds",
            ),
        ] {
            let e = error(args);
            assert_eq!(e.kind(), ErrorKind::ValueValidation, "{args:?}");
            assert!(e.to_string().contains(needle), "{args:?}: {e}");
        }
    }

    #[test]
    fn show_sequence_and_at() {
        let a = parse(&["--show-sequence", "--at", "1700000000", "myserver"]);
        assert!(a.show_sequence);
        assert_eq!(a.at, Some(1_700_000_000));
        // No HOST needed: the rotating flags may say everything.
        let a = parse(&["--show-sequence", "--secret-file", "k"]);
        assert_eq!(a.host, None);
        assert_eq!(
            error(&["--at", "5", "h", "1"]).kind(),
            ErrorKind::MissingRequiredArgument
        );
        assert_eq!(
            error(&["--show-sequence", "--connect", "22", "h"]).kind(),
            ErrorKind::ArgumentConflict
        );
    }

    #[test]
    fn gen_secret_stands_alone() {
        let a = parse(&["--gen-secret", "/k/new.key"]);
        assert_eq!(a.gen_secret, Some("/k/new.key".into()));
        assert_eq!(a.host, None);
        for extra in [&["h"][..], &["-v"], &["--show-sequence"], &["h", "1"]] {
            let mut args = vec!["--gen-secret", "k"];
            args.extend_from_slice(extra);
            assert_eq!(error(&args).kind(), ErrorKind::ArgumentConflict, "{args:?}");
        }
    }

    #[test]
    fn host_is_required_unless_showing_or_generating() {
        for args in [
            &["-v"][..],
            &[
                "--secret-file",
                "k",
                "--door",
                "d",
                "--ports",
                "1-9",
                "--length",
                "3",
            ],
        ] {
            assert_eq!(
                error(args).kind(),
                ErrorKind::MissingRequiredArgument,
                "{args:?}"
            );
        }
    }

    #[test]
    fn help_lists_every_rotating_flag() {
        let help = error(&["-h"]).to_string();
        for flag in [
            "--secret-file <FILE>",
            "--door <NAME>",
            "--ports <A-B>",
            "--length <N>",
            "--period <SECS>",
            "[default: 30]",
            "--protocols <PROTO[,PROTO...]>",
            "--show-sequence",
            "--at <UNIX_TIME>",
            "--gen-secret <FILE>",
            "knock --secret-file ssh.key --door ssh --ports 10000-10999 --length 5 ",
            "knock --show-sequence myserver",
            "knock --gen-secret ssh.key",
            "next period",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
        // Long-only: every short flag is knockd 0.8's.
        use clap::CommandFactory;
        let cmd = Args::command();
        for id in [
            "secret_file",
            "door",
            "port_range",
            "length",
            "period",
            "protocols",
            "show_sequence",
            "at",
            "gen_secret",
        ] {
            let arg = cmd.get_arguments().find(|a| a.get_id() == id);
            assert_eq!(arg.map(|a| a.get_short()), Some(None), "{id}");
        }
    }

    #[test]
    fn unknown_flags_are_errors() {
        assert_eq!(
            error(&["--bogus", "h", "1"]).kind(),
            ErrorKind::UnknownArgument
        );
        assert_eq!(error(&["-x", "h", "1"]).kind(), ErrorKind::UnknownArgument);
    }
}
