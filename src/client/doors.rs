//! The client's doors file: named knock sequences, so `knock myserver` (and
//! `ProxyCommand knock --connect %p %h`) need no ports on the command line.
//!
//! ```text
//! # ~/.config/knock/doors  (or $XDG_CONFIG_HOME/knock/doors)
//! [myserver]
//! host     = server.example.com
//! sequence = 7000,8000:udp,9000
//! delay    = 100
//! protocol = tcp
//! family   = ipv4
//!
//! [rotating]
//! host        = server.example.com
//! secret_file = ssh.key       # relative to this file's directory
//! door        = ssh           # the door's name in knockd.conf
//! ports       = 10000-10999
//! length      = 5
//! period      = 30
//! protocols   = tcp
//! ```
//!
//! Same shape as knockd.conf: `[name]` sections, `key = value`, keys
//! case-insensitive; `#` starts a comment anywhere on a line, `;` at its
//! start. `host` and `sequence` (for a rotating door, `secret_file`, see
//! below) are required; `sequence` takes the command line's `PORT[:PROTO]`
//! items separated by commas or spaces; `delay` is milliseconds after each
//! hit; `protocol` (tcp or udp) applies to items without a suffix; `family`
//! is `ipv4`, `ipv6` or `any`.
//!
//! A rotating door (one whose sequence knockd derives from a secret and the
//! time, knockd.conf's `Sequence_*` directives) has `secret_file` instead of
//! `sequence`, never both: the file with the door's base32 secret (a
//! relative path is relative to the doors file's directory). With it,
//! `ports` (`FIRST-LAST`) and `length` (1-32) are required; `door` is the
//! name the daemon derives with (default: the section name); `period` is
//! seconds (default 30); `protocols` is `tcp` or `udp`, or one per step
//! separated by commas (default tcp). The fixed-sequence `protocol` has no
//! place in a rotating door. `host`, `delay` and `family` apply to both.
//!
//! This module owns the syntax and its error messages. It must not resolve
//! hosts or open sockets; reading is bounded so a wrong path (a device, a
//! huge file) cannot hang or exhaust the client. It does not read secret
//! files either: a door names its file, the caller reads it.

use std::fmt;
use std::io::Read;
use std::path::{Path, PathBuf};

use super::args::{parse_port_spec, PortSpec};
use super::rotating::{self, PortRange};
use super::Family;
use crate::core::knock::Proto;
use crate::core::rotate::Rotation;

/// Largest doors file read: far more than any hand-written list of doors.
pub const MAX_DOORS_FILE: u64 = 1 << 20;

/// One named door: everything `knock HOST PORT...` would otherwise need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    pub name: String,
    pub host: String,
    /// The fixed sequence; empty for a rotating door.
    pub sequence: Vec<PortSpec>,
    /// Set for a rotating door: its sequence comes from its secret and the
    /// time, not from `sequence`.
    pub rotating: Option<RotatingDoor>,
    /// Milliseconds after each hit; `-d` wins.
    pub delay: Option<u64>,
    /// Protocol for items without a suffix; `-u` wins.
    pub protocol: Option<Proto>,
    /// Address family; `-4`/`-6` win.
    pub family: Option<Family>,
}

/// What the doors file says about a rotating door; the secret itself is
/// read only when the door is used, so a broken key file of one door does
/// not break the others.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingDoor {
    /// `secret_file`, made relative to the doors file's directory.
    pub secret_file: PathBuf,
    /// `door`: the name the daemon derives with (default: the section name).
    pub door: String,
    /// `ports`, `length`, `period` and `protocols`, validated.
    pub rotation: Rotation,
}

/// A broken doors file: where, and what is wrong. One line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorsError {
    pub path: PathBuf,
    /// 1-based; 0 for the file as a whole (unreadable, too big).
    pub line: usize,
    pub message: String,
}

/// Longest message shown; ours are under 200 characters plus the text
/// they echo.
const MAX_MESSAGE_CHARS: usize = 300;

impl fmt::Display for DoorsError {
    /// One line that cannot drive the terminal: control characters in the
    /// echoed text are escaped (`\u{1b}`), and a huge line is clipped.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line == 0 {
            write!(f, "{}: ", self.path.display())?;
        } else {
            write!(f, "{}:{}: ", self.path.display(), self.line)?;
        }
        crate::core::config::write_clean(f, &self.message, MAX_MESSAGE_CHARS)
    }
}

impl std::error::Error for DoorsError {}

/// Where `knock DOOR` looks without `--doors`: `$XDG_CONFIG_HOME/knock/doors`
/// when that is an absolute path (as the XDG spec requires), otherwise
/// `$HOME/.config/knock/doors`; `None` when neither variable helps.
pub fn default_path() -> Option<PathBuf> {
    default_path_from(
        std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from),
        std::env::var_os("HOME").map(PathBuf::from),
    )
}

fn default_path_from(xdg: Option<PathBuf>, home: Option<PathBuf>) -> Option<PathBuf> {
    let base = match (xdg, home) {
        (Some(x), _) if x.is_absolute() => x,
        (_, Some(h)) if h.is_absolute() => h.join(".config"),
        _ => return None,
    };
    Some(base.join("knock").join("doors"))
}

/// Reads and parses the doors file at `path`. An I/O error comes back
/// as-is so the caller can tell "missing" from "broken".
pub fn load(path: &Path) -> Result<Result<Vec<Door>, DoorsError>, std::io::Error> {
    let file = std::fs::File::open(path)?;
    let mut text = String::new();
    let read = file.take(MAX_DOORS_FILE + 1).read_to_string(&mut text);
    let whole = |message: String| {
        Ok(Err(DoorsError {
            path: path.to_path_buf(),
            line: 0,
            message,
        }))
    };
    match read {
        Err(e) if e.kind() == std::io::ErrorKind::InvalidData => whole("not UTF-8 text".into()),
        Err(e) => Err(e),
        Ok(n) if n as u64 > MAX_DOORS_FILE => whole(format!(
            "larger than {MAX_DOORS_FILE} bytes; not a doors file?"
        )),
        Ok(_) => Ok(parse(&text, path)),
    }
}

/// A warning line when the file is readable or writable by others: the
/// sequences in it are secrets.
pub fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "{}: warning: readable or writable by others (mode {:o}); the sequences in it are secrets (chmod 600)",
            path.display(),
            mode & 0o777
        )
    })
}

/// Parses doors-file text; `path` only labels errors. The first error wins:
/// a doors file is small and hand-written, one message at a time is enough.
pub fn parse(text: &str, path: &Path) -> Result<Vec<Door>, DoorsError> {
    let err = |line: usize, message: String| DoorsError {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut doors: Vec<Door> = Vec::new();
    // The section being filled and the line it started on.
    let mut open: Option<(Partial, usize)> = None;
    for (index, raw) in text.lines().enumerate() {
        let n = index + 1;
        // No value has a use for '#', so it starts a comment anywhere.
        let line = raw.split('#').next().unwrap_or_default().trim();
        if line.is_empty() || line.starts_with(';') {
            continue;
        }
        if let Some(rest) = line.strip_prefix('[') {
            let Some(name) = rest.strip_suffix(']').map(str::trim) else {
                return Err(err(n, format!("\"{line}\": a section line is [name]")));
            };
            if name.is_empty() {
                return Err(err(n, "empty door name".into()));
            }
            if doors.iter().any(|d| d.name == name)
                || open.as_ref().is_some_and(|(p, _)| p.name == name)
            {
                return Err(err(n, format!("door [{name}] is defined twice")));
            }
            if let Some((partial, start)) = open.take() {
                doors.push(partial.finish(path).map_err(|m| err(start, m))?);
            }
            open = Some((Partial::new(name), n));
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(n, format!("\"{line}\" is not key = value")));
        };
        let Some((partial, _)) = open.as_mut() else {
            return Err(err(n, "key outside a [door] section".into()));
        };
        partial
            .set(&key.trim().to_ascii_lowercase(), value.trim(), n)
            .map_err(|m| err(n, m))?;
    }
    if let Some((partial, start)) = open {
        doors.push(partial.finish(path).map_err(|m| err(start, m))?);
    }
    Ok(doors)
}

/// Which kind of door a key belongs to: a door is one or the other.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Fixed,
    Rotating,
}

fn kind_of(key: &str) -> Option<Kind> {
    match key {
        "sequence" | "protocol" => Some(Kind::Fixed),
        "secret_file" | "door" | "ports" | "length" | "period" | "protocols" => {
            Some(Kind::Rotating)
        }
        _ => None,
    }
}

/// A section being read: every field optional until [`Partial::finish`].
struct Partial {
    name: String,
    host: Option<String>,
    sequence: Option<Vec<PortSpec>>,
    delay: Option<u64>,
    protocol: Option<Proto>,
    family: Option<Family>,
    secret_file: Option<PathBuf>,
    door: Option<String>,
    ports: Option<PortRange>,
    length: Option<u8>,
    period: Option<u64>,
    protocols: Option<Vec<Proto>>,
    /// The first fixed-only and rotating-only key seen, and their lines.
    first_fixed: Option<(String, usize)>,
    first_rotating: Option<(String, usize)>,
}

impl Partial {
    fn new(name: &str) -> Partial {
        Partial {
            name: name.to_string(),
            host: None,
            sequence: None,
            delay: None,
            protocol: None,
            family: None,
            secret_file: None,
            door: None,
            ports: None,
            length: None,
            period: None,
            protocols: None,
            first_fixed: None,
            first_rotating: None,
        }
    }

    fn set(&mut self, key: &str, value: &str, line: usize) -> Result<(), String> {
        let twice = || format!("{key} is set twice in [{}]", self.name);
        let (mine, other) = match kind_of(key) {
            Some(Kind::Fixed) => (&mut self.first_fixed, &self.first_rotating),
            Some(Kind::Rotating) => (&mut self.first_rotating, &self.first_fixed),
            None => (&mut None, &None),
        };
        if let Some((other_key, other_line)) = other {
            return Err(format!(
                "door [{}] has both {other_key} (line {other_line}) and {key}: a door has a sequence, or a secret_file with ports and length, never both",
                self.name
            ));
        }
        mine.get_or_insert_with(|| (key.to_string(), line));
        match key {
            "host" => {
                if self.host.is_some() {
                    return Err(twice());
                }
                if value.is_empty() || value.contains(char::is_whitespace) {
                    return Err(format!("host \"{value}\" is not a host name or address"));
                }
                self.host = Some(value.to_string());
            }
            "sequence" => {
                if self.sequence.is_some() {
                    return Err(twice());
                }
                let items = value
                    .split(|c: char| c == ',' || c.is_whitespace())
                    .filter(|s| !s.is_empty())
                    .map(|s| parse_port_spec(s).map_err(|e| format!("sequence: {e}")))
                    .collect::<Result<Vec<_>, _>>()?;
                if items.is_empty() {
                    return Err("sequence: no ports".into());
                }
                self.sequence = Some(items);
            }
            "delay" => {
                if self.delay.is_some() {
                    return Err(twice());
                }
                self.delay = Some(value.parse().map_err(|_| {
                    format!("delay \"{value}\" is not a whole number of milliseconds")
                })?);
            }
            "protocol" => {
                if self.protocol.is_some() {
                    return Err(twice());
                }
                self.protocol = Some(match value.to_ascii_lowercase().as_str() {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    _ => return Err(format!("protocol \"{value}\" (expected tcp or udp)")),
                });
            }
            "family" => {
                if self.family.is_some() {
                    return Err(twice());
                }
                self.family = Some(match value.to_ascii_lowercase().as_str() {
                    "ipv4" | "4" => Family::V4,
                    "ipv6" | "6" => Family::V6,
                    "any" => Family::Any,
                    _ => return Err(format!("family \"{value}\" (expected ipv4, ipv6 or any)")),
                });
            }
            "secret_file" => {
                if self.secret_file.is_some() {
                    return Err(twice());
                }
                if value.is_empty() {
                    return Err("secret_file: empty path".into());
                }
                self.secret_file = Some(PathBuf::from(value));
            }
            "door" => {
                if self.door.is_some() {
                    return Err(twice());
                }
                if value.is_empty() {
                    return Err("door: empty name".into());
                }
                self.door = Some(value.to_string());
            }
            "ports" => {
                if self.ports.is_some() {
                    return Err(twice());
                }
                self.ports = Some(rotating::parse_port_range(value).map_err(|e| format!("ports: {e}"))?);
            }
            "length" => {
                if self.length.is_some() {
                    return Err(twice());
                }
                self.length = Some(rotating::parse_length(value).map_err(|e| format!("length: {e}"))?);
            }
            "period" => {
                if self.period.is_some() {
                    return Err(twice());
                }
                self.period = Some(rotating::parse_period(value).map_err(|e| format!("period: {e}"))?);
            }
            "protocols" => {
                if self.protocols.is_some() {
                    return Err(twice());
                }
                self.protocols =
                    Some(rotating::parse_protocols(value).map_err(|e| format!("protocols: {e}"))?);
            }
            _ => {
                return Err(format!(
                    "unknown key \"{key}\" (expected host, sequence, delay, protocol, family, secret_file, door, ports, length, period or protocols)"
                ))
            }
        }
        Ok(())
    }

    /// The door, or what it lacks. `path` is the doors file's, for making a
    /// relative `secret_file` relative to its directory.
    fn finish(self, path: &Path) -> Result<Door, String> {
        let missing = |what: &str| format!("door [{}] has no {what}", self.name);
        let host = self.host.clone().ok_or_else(|| missing("host"))?;
        let rotating = match (self.secret_file.clone(), &self.first_rotating) {
            (Some(file), _) => {
                let ports = self.ports.ok_or_else(|| missing("ports (FIRST-LAST)"))?;
                let length = self.length.ok_or_else(|| missing("length"))?;
                let rotation =
                    rotating::rotation(ports, length, self.protocols.clone(), self.period)
                        .map_err(|e| format!("door [{}]: {e}", self.name))?;
                let secret_file = match path.parent() {
                    Some(dir) if file.is_relative() => dir.join(file),
                    _ => file,
                };
                Some(RotatingDoor {
                    secret_file,
                    door: self.door.clone().unwrap_or_else(|| self.name.clone()),
                    rotation,
                })
            }
            (None, Some((key, _))) => {
                return Err(format!(
                    "door [{}] has {key} but no secret_file (the rotating door's secret)",
                    self.name
                ))
            }
            (None, None) => None,
        };
        let sequence = match rotating {
            Some(_) => Vec::new(),
            None => self.sequence.clone().ok_or_else(|| missing("sequence"))?,
        };
        Ok(Door {
            name: self.name,
            host,
            sequence,
            rotating,
            delay: self.delay,
            protocol: self.protocol,
            family: self.family,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doors(text: &str) -> Vec<Door> {
        match parse(text, Path::new("doors")) {
            Ok(d) => d,
            Err(e) => panic!("{e}"),
        }
    }

    fn error(text: &str) -> String {
        match parse(text, Path::new("/home/u/.config/knock/doors")) {
            Ok(d) => panic!("parsed: {d:?}"),
            Err(e) => e.to_string(),
        }
    }

    /// Fuzz finding (`doors`): a control character in a doors file (here
    /// a NUL in a key; an escape sequence works the same) was echoed raw
    /// into the error, which then could drive the terminal or span lines.
    #[test]
    fn control_characters_are_escaped_in_errors() {
        let e = error("[X]\nhost=h\nsequ \0ce=2-2\n");
        assert_eq!(
            e,
            "/home/u/.config/knock/doors:3: unknown key \"sequ \\u{0}ce\" (expected host, sequence, delay, protocol, family, secret_file, door, ports, length, period or protocols)"
        );
        let e = error("[a\x1b[2J\rb\n");
        assert!(!e.chars().any(char::is_control), "{e:?}");
        // A huge line gives a short message.
        let e = error(&format!("{}\n", "k".repeat(100_000)));
        assert!(e.len() < 400, "{} bytes", e.len());
    }

    #[test]
    fn the_documented_example() {
        let d = doors(
            "# my doors\n[myserver]\nhost     = server.example.com\nsequence = 7000,8000:udp,9000\n\
             delay    = 100\nprotocol = tcp\nfamily   = ipv4\n",
        );
        assert_eq!(d.len(), 1);
        let d = &d[0];
        assert_eq!(d.name, "myserver");
        assert_eq!(d.host, "server.example.com");
        let seq: Vec<_> = d.sequence.iter().map(|s| (s.port, s.proto)).collect();
        assert_eq!(seq, [(7000, None), (8000, Some(Proto::Udp)), (9000, None)]);
        assert_eq!(d.delay, Some(100));
        assert_eq!(d.protocol, Some(Proto::Tcp));
        assert_eq!(d.family, Some(Family::V4));
    }

    #[test]
    fn several_doors_optional_keys_and_layout() {
        let d = doors(
            "; comment\n\n[a] # first\nHOST=10.0.0.1\nSequence = 1 2, ssh:udp # ssh last\n\
             [ b ]\nhost = ::1\nsequence=9\n",
        );
        assert_eq!(d.len(), 2);
        assert_eq!(d[0].sequence.len(), 3);
        assert_eq!(d[0].sequence[2].port, 22);
        assert_eq!((d[0].delay, d[0].protocol, d[0].family), (None, None, None));
        assert_eq!(d[1].name, "b");
        assert_eq!(d[1].host, "::1");
        assert!(doors("").is_empty());
    }

    #[test]
    fn errors_name_file_line_and_problem() {
        assert_eq!(
            error("[a]\nhost = h\nsequence = 7000:foo\n"),
            "/home/u/.config/knock/doors:3: sequence: unknown protocol \"foo\" in \"7000:foo\" (expected tcp or udp)"
        );
        assert_eq!(
            error("[a]\nhost = h\n\n[b]\nhost=h\nsequence=1\n"),
            "/home/u/.config/knock/doors:1: door [a] has no sequence"
        );
        assert_eq!(
            error("[a]\nsequence = 1\n"),
            "/home/u/.config/knock/doors:1: door [a] has no host"
        );
        assert!(error("host = h\n").ends_with(":1: key outside a [door] section"));
        assert!(error("[a]\nport = 22\n").contains(":2: unknown key \"port\""));
        assert!(error("[a]\nhost\n").contains(":2: \"host\" is not key = value"));
        assert!(error("[a\n").contains(":1: \"[a\": a section line is [name]"));
        assert!(error("[]\n").contains("empty door name"));
        assert!(error("[a]\nhost=h\nsequence=1\n[a]\n").contains(":4: door [a] is defined twice"));
        assert!(error("[a]\nhost=h\nhost=i\n").contains(":3: host is set twice in [a]"));
        assert!(error("[a]\nhost=h\nsequence=70000\n").contains("port 70000 is out of range"));
        assert!(error("[a]\nhost=h\nsequence= , \n").contains("sequence: no ports"));
        assert!(error("[a]\nhost=h\nsequence=1\ndelay=-1\n").contains("delay \"-1\""));
        assert!(error("[a]\nhost=h\nsequence=1\nprotocol=icmp\n").contains("expected tcp or udp"));
        assert!(
            error("[a]\nhost=h\nsequence=1\nfamily=ipx\n").contains("expected ipv4, ipv6 or any")
        );
        assert!(error("[a]\nhost=a b\nsequence=1\n").contains("not a host name"));
    }

    const ROTATING: &str =
        "[rot]\nhost = h\nsecret_file = ssh.key\nports = 10000-10999\nlength = 5\n";

    #[test]
    fn the_documented_rotating_example() {
        let d = doors(
            "[rotating]\nhost        = server.example.com\nsecret_file = ssh.key       # relative\n\
             door        = ssh\nports       = 10000-10999\nlength      = 5\nperiod      = 30\n\
             protocols   = tcp\n",
        );
        let d = &d[0];
        assert_eq!(
            (d.name.as_str(), d.host.as_str()),
            ("rotating", "server.example.com")
        );
        assert!(d.sequence.is_empty());
        let r = d.rotating.as_ref().expect("rotating");
        assert_eq!(r.door, "ssh");
        assert_eq!(
            r.rotation,
            Rotation {
                length: 5,
                first: 10000,
                last: 10999,
                protocols: vec![Proto::Tcp],
                period: 30,
                skew: 0,
            }
        );
    }

    #[test]
    fn rotating_defaults_and_secret_paths() {
        // Relative to the doors file's directory; absolute as written.
        let d = parse(ROTATING, Path::new("/home/u/.config/knock/doors")).expect("valid");
        let r = d[0].rotating.as_ref().expect("rotating");
        assert_eq!(
            r.secret_file,
            PathBuf::from("/home/u/.config/knock/ssh.key")
        );
        // `door` defaults to the section name; period 30, tcp.
        assert_eq!(r.door, "rot");
        assert_eq!(
            (r.rotation.period, &r.rotation.protocols[..]),
            (30, &[Proto::Tcp][..])
        );
        let d = doors(
            "[a]\nHost = h\nSECRET_FILE = /etc/k/a.key\nPorts = 1-9\nLength = 3\n\
             Protocols = udp, TCP ,udp\nPeriod = 60\ndelay = 5\nfamily = ipv6\n",
        );
        let r = d[0].rotating.as_ref().expect("rotating");
        assert_eq!(r.secret_file, PathBuf::from("/etc/k/a.key"));
        assert_eq!(r.rotation.protocols, [Proto::Udp, Proto::Tcp, Proto::Udp]);
        assert_eq!(
            (r.rotation.first, r.rotation.last, r.rotation.period),
            (1, 9, 60)
        );
        assert_eq!((d[0].delay, d[0].family), (Some(5), Some(Family::V6)));
        // Fixed and rotating doors side by side.
        let d = doors(&format!("[f]\nhost=h\nsequence=1\n{ROTATING}"));
        assert_eq!(
            (d[0].rotating.is_none(), d[1].rotating.is_some()),
            (true, true)
        );
    }

    #[test]
    fn rotating_errors_name_file_line_and_problem() {
        let p = "/home/u/.config/knock/doors";
        assert_eq!(
            error(&format!("{ROTATING}sequence = 7000\n")),
            format!(
                "{p}:6: door [rot] has both secret_file (line 3) and sequence: a door has a \
                 sequence, or a secret_file with ports and length, never both"
            )
        );
        assert!(
            error("[a]\nhost=h\nsequence=1\nsecret_file=k\n").starts_with(&format!(
                "{p}:4: door [a] has both sequence (line 3) and secret_file"
            ))
        );
        assert!(
            error("[a]\nhost=h\nsequence=1\nports=1-9\n").starts_with(&format!(
                "{p}:4: door [a] has both sequence (line 3) and ports"
            ))
        );
        assert!(
            error(&format!("{ROTATING}protocol = udp\n")).starts_with(&format!(
                "{p}:6: door [rot] has both secret_file (line 3) and protocol"
            ))
        );
        assert_eq!(
            error("[a]\nhost=h\nports=1-9\nlength=3\n"),
            format!("{p}:1: door [a] has ports but no secret_file (the rotating door's secret)")
        );
        assert_eq!(
            error("[a]\nhost=h\nsecret_file=k\nlength=3\n"),
            format!("{p}:1: door [a] has no ports (FIRST-LAST)")
        );
        assert_eq!(
            error("[a]\nhost=h\nsecret_file=k\nports=1-9\n"),
            format!("{p}:1: door [a] has no length")
        );
        assert_eq!(
            error("[a]\nhost=h\nsecret_file=k\nports=1-3\nlength=4\n"),
            format!(
                "{p}:1: door [a]: Sequence_Length 4 is more than the 3 ports of Sequence_Ports (no port repeats)"
            )
        );
        assert!(
            error("[a]\nhost=h\nsecret_file=k\nports=1-9\nlength=3\nprotocols=tcp,udp\n")
                .starts_with(&format!(
                    "{p}:1: door [a]: Sequence_Protocols names 2 protocols for 3 steps"
                ))
        );
        assert_eq!(
            error("[a]\nhost=h\nsecret_file=k\nports=9-1\n"),
            format!("{p}:4: ports: \"9-1\": the first port is above the last")
        );
        assert!(error("[a]\nsecret_file=k\nlength=0\n")
            .contains(":3: length: \"0\" is not a whole number from 1 to 32"));
        assert!(error("[a]\nsecret_file=k\nperiod=0\n").contains(":3: period: \"0\""));
        assert!(error("[a]\nsecret_file=k\nprotocols=icmp\n")
            .contains(":3: protocols: unknown protocol \"icmp\""));
        assert!(error("[a]\nsecret_file=\n").contains(":2: secret_file: empty path"));
        assert!(error("[a]\ndoor=\n").contains(":2: door: empty name"));
        assert!(error("[a]\nsecret_file=k\nsecret_file=j\n")
            .contains(":3: secret_file is set twice in [a]"));
        assert!(
            error("[a]\nsecret_file=k\nlength=3\nlength=3\n").contains(":4: length is set twice")
        );
        assert_eq!(
            error("[a]\nsecret_file=k\nports=1-9\nlength=3\n"),
            format!("{p}:1: door [a] has no host")
        );
    }

    #[test]
    fn default_path_follows_xdg_then_home() {
        let p = |x: Option<&str>, h: Option<&str>| {
            default_path_from(x.map(PathBuf::from), h.map(PathBuf::from))
        };
        assert_eq!(
            p(Some("/x/cfg"), Some("/home/u")),
            Some(PathBuf::from("/x/cfg/knock/doors"))
        );
        assert_eq!(
            p(Some("relative"), Some("/home/u")),
            Some(PathBuf::from("/home/u/.config/knock/doors"))
        );
        assert_eq!(
            p(None, Some("/home/u")),
            Some(PathBuf::from("/home/u/.config/knock/doors"))
        );
        assert_eq!(p(None, None), None);
        assert_eq!(p(None, Some("")), None);
    }

    #[test]
    fn load_reads_files_and_reports_missing_and_oversized() {
        use std::io::Write;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("doors");
        assert_eq!(
            load(&path).err().map(|e| e.kind()),
            Some(std::io::ErrorKind::NotFound)
        );
        std::fs::write(&path, "[a]\nhost=h\nsequence=1\n").expect("write");
        let loaded = load(&path).expect("readable").expect("valid");
        assert_eq!(loaded[0].name, "a");

        let mut f = std::fs::File::create(&path).expect("create");
        f.write_all(&vec![b'#'; MAX_DOORS_FILE as usize + 1])
            .expect("write");
        let e = load(&path).expect("readable").expect_err("too big");
        assert!(e.to_string().contains("larger than"), "{e}");

        std::fs::write(&path, b"[a]\xff\n").expect("write");
        let e = load(&path).expect("readable").expect_err("binary");
        assert!(e.to_string().ends_with(": not UTF-8 text"), "{e}");
    }

    #[test]
    fn permission_warning_only_when_others_can_read() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("doors");
        std::fs::write(&path, "").expect("write");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        assert_eq!(permission_warning(&path), None);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let w = permission_warning(&path).expect("warning");
        assert!(w.contains("mode 644") && w.contains("chmod 600"), "{w}");
    }
}
