//! knockd.conf: the typed, validated configuration and its parser.
//!
//! This module owns turning text into doors and options, and every message
//! about what is wrong with that text. It reads no file: the shell opens
//! the config and hands over a reader, then resolves each door's
//! one-time-sequences file (reads it, checks it can be written) with
//! [`onetime`], the one reader of that format. It must not open captures,
//! run commands or know about the engine.

mod door_extras;
mod error;
pub mod onetime;
mod parse;
mod rotating;
mod sequence;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use crate::core::cidr::Cidr;
use crate::core::knock::{Proto, TcpFlags};
use crate::core::rotate::{Rotation, Secret};

pub use door_extras::TOKENS;
pub use error::{write_clean, ConfigError, Diagnostics, Warning};
pub use onetime::OneTimeLine;
pub use parse::{io_reason, parse_partial, parse_reader, parse_str, Parsed, MAX_CONFIG_BYTES};
pub use rotating::{DEFAULT_PERIOD, DEFAULT_SKEW, MAX_PERIOD};
pub use sequence::{parse_sequence, SequenceError};

/// knockd's default `Seq_Timeout`, in seconds.
pub const DEFAULT_SEQ_TIMEOUT: Duration = Duration::from_secs(25);
/// knockd's default `Cmd_Timeout`, in seconds.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// Doors in one file at most: far beyond any real config, and small enough
/// that door numbers fit the engine's compact tables.
pub const MAX_DOORS: usize = 4096;
/// knockd's limit on ports in one sequence.
pub const MAX_SEQUENCE_LEN: usize = 32;
/// Default cap on tracked knock attempts: about 24 MiB of attempt table.
pub const DEFAULT_MAX_ATTEMPTS: usize = 1 << 19;
/// Default `LogRate`: far above any real knocking, far below a flood.
pub const DEFAULT_LOG_RATE: u32 = 50;
/// Default `MaxCommands`: commands running at once. A firewall command takes
/// milliseconds, so 16 at once still runs hundreds a second, while a flood
/// can never put more than 16 root shells (a few MiB each) on the machine.
pub const DEFAULT_MAX_COMMANDS: usize = 16;
/// Default `MaxOpensPerMinute` (per door): no person knocks a door open
/// once a second for a minute; a flood of spoofed sources at a door anyone
/// can open is held to this.
pub const DEFAULT_MAX_OPENS_PER_MINUTE: u32 = 60;
/// Default `MaxPendingStops` (per door): firewall rules a door can have
/// open at once, whatever `Cmd_Timeout` is.
pub const DEFAULT_MAX_PENDING_STOPS: usize = 1024;
/// Default `MaxLogLines`: stage and sequence-timeout lines per second for
/// all doors together (each door also has `LogRate`).
pub const DEFAULT_MAX_LOG_LINES: u32 = 200;
/// Default journal of pending stop commands.
pub const DEFAULT_STATE_FILE: &str = "/var/lib/knockd/state";
/// Default pid file, as knockd.
pub const DEFAULT_PID_FILE: &str = "/var/run/knockd.pid";

/// The whole parsed file: global options and the doors, in file order.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    pub options: Options,
    pub doors: Vec<Door>,
}

/// The `[options]` section.
#[derive(Debug, Clone, PartialEq)]
pub struct Options {
    /// `UseSyslog`: mirror operator messages to syslog.
    pub use_syslog: bool,
    /// `LogFile`: where operator messages are appended.
    pub log_file: Option<PathBuf>,
    /// `PidFile`.
    pub pid_file: Option<PathBuf>,
    /// `Interface`: one or more names (comma-separated); `-i` wins.
    pub interfaces: Vec<String>,
    /// `MaxAttempts` (ours): bound on knock attempts tracked at once.
    pub max_attempts: usize,
    /// `StateFile` (ours): journal of pending stop commands.
    pub state_file: Option<PathBuf>,
    /// `Include` (ours): files of more doors (glob patterns, each with the
    /// line that named it); the shell reads them.
    pub include: Vec<(String, usize)>,
    /// Line of the first `[options]` header, if any (an `Include`d file
    /// may not have one).
    pub section_line: Option<usize>,
    /// `LogRate` (ours): stage and sequence-timeout lines per second per
    /// door before the rest are counted instead of written; 0: no limit.
    pub log_rate: u32,
    /// `MaxLogLines` (ours): the same for all doors together; 0: no limit.
    pub max_log_lines: u32,
    /// `MaxCommands` (ours): commands running at once; the rest queue,
    /// stops first.
    pub max_commands: usize,
    /// `MaxOpensPerMinute` (ours): openings per door per minute.
    pub max_opens_per_minute: u32,
    /// `MaxPendingStops` (ours): stop commands pending per door.
    pub max_pending_stops: usize,
    /// `LogFormat` (ours): how log-file and `-v` lines are written;
    /// `--log-format` wins.
    pub log_format: LogFormat,
}

/// How operator messages are written to the log file and stdout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum LogFormat {
    /// knockd's `[YYYY-MM-DD HH:MM] message` lines (the default).
    #[default]
    Text,
    /// One JSON object per line: the message plus its fields, for log
    /// shippers that should not need a pattern per line shape.
    Json,
}

impl LogFormat {
    /// `text` or `json` (any case), as `LogFormat =` and `--log-format`
    /// take it.
    pub fn parse(value: &str) -> Option<LogFormat> {
        match value.to_ascii_lowercase().as_str() {
            "text" => Some(LogFormat::Text),
            "json" => Some(LogFormat::Json),
            _ => None,
        }
    }
}

impl Options {
    /// The journal of pending stop commands: `StateFile`, or the default.
    /// The one place that default is applied.
    pub fn state_file_path(&self) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_STATE_FILE))
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            use_syslog: false,
            log_file: None,
            pid_file: None,
            interfaces: Vec::new(),
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            state_file: None,
            include: Vec::new(),
            section_line: None,
            log_rate: DEFAULT_LOG_RATE,
            max_log_lines: DEFAULT_MAX_LOG_LINES,
            max_commands: DEFAULT_MAX_COMMANDS,
            max_opens_per_minute: DEFAULT_MAX_OPENS_PER_MINUTE,
            max_pending_stops: DEFAULT_MAX_PENDING_STOPS,
            log_format: LogFormat::Text,
        }
    }
}

/// One step of a knock sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Step {
    pub port: u16,
    pub proto: Proto,
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.proto)
    }
}

/// A validated knock sequence: 1 to [`MAX_SEQUENCE_LEN`] steps.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequence(Vec<Step>);

impl Sequence {
    /// Wraps steps already checked by [`parse_sequence`]; `None` when the
    /// count is out of range, so an invalid sequence cannot exist.
    pub fn new(steps: Vec<Step>) -> Option<Self> {
        (1..=MAX_SEQUENCE_LEN)
            .contains(&steps.len())
            .then_some(Sequence(steps))
    }

    pub fn steps(&self) -> &[Step] {
        &self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Always false: a sequence has at least one step. Present for clippy's
    /// `len_without_is_empty` and for readers who expect it.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Display for Sequence {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, step) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{step}")?;
        }
        Ok(())
    }
}

/// Where a door's sequence comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SequenceSource {
    /// `Sequence = ...`: fixed.
    Fixed(Sequence),
    /// `One_Time_Sequences = path`: the first valid line is live; each
    /// successful knock uses it up.
    OneTime {
        path: PathBuf,
        /// Line of the directive and its key as written, for messages
        /// about the file.
        directive_line: usize,
        directive_key: String,
        /// The live line. The parser leaves it `None`; the shell's resolve
        /// step reads the file and fills it in. `None` after that means no
        /// unused line is left: the door is disabled.
        current: Option<OneTimeLine>,
    },
    /// `Sequence_Secret*` and the other `Sequence_*` directives: the
    /// sequence is derived from the secret and the time
    /// ([`crate::core::rotate`]).
    Rotating {
        secret: SecretSource,
        rotation: Rotation,
    },
}

/// Where a rotating door's secret comes from.
#[derive(Debug, Clone, PartialEq)]
pub enum SecretSource {
    /// `Sequence_Secret = BASE32` in the config itself.
    Inline(Secret),
    /// `Sequence_Secret_File = path`: the parser leaves `secret` `None`;
    /// the shell's resolve step reads the file (refusing one others can
    /// read) and fills it in.
    File {
        path: PathBuf,
        /// Line and key of the directive, for messages about the file.
        line: usize,
        key: String,
        secret: Option<Secret>,
    },
    /// `Sequence_Secret_Dir = DIR`: one secret per user, `DIR/NAME.key`,
    /// so each person opens, is named and is revoked alone. The parser
    /// leaves `users` `None`; the shell's resolve step reads the directory
    /// (each file under the trust rule) and fills it in, sorted by name.
    Dir {
        path: PathBuf,
        /// Line and key of the directive, for messages about the files.
        line: usize,
        key: String,
        users: Option<Vec<UserKey>>,
    },
}

/// One user of a `Sequence_Secret_Dir` door: the name (the key file's
/// stem) and its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct UserKey {
    pub name: Arc<str>,
    pub secret: Secret,
}

/// Users a `Sequence_Secret_Dir` door takes at most: bounds the door's
/// live sequences (users times accepted periods) and the filter.
pub const MAX_USERS: usize = 4096;

/// Longest user name, in bytes.
pub const MAX_USER_NAME: usize = 64;

/// Whether `name` may name a user: letters, digits, `._-`, 1 to
/// [`MAX_USER_NAME`] bytes, not starting with a dot (a hidden file, and
/// never `.` or `..`). It appears in log lines and in `%USER%`, expanded
/// into a shell command: nothing in it may be special there.
pub fn valid_user_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_USER_NAME
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
}

impl SecretSource {
    /// The secret, once known (`None` for a door of users, too).
    pub fn secret(&self) -> Option<&Secret> {
        match self {
            SecretSource::Inline(s) => Some(s),
            SecretSource::File { secret, .. } => secret.as_ref(),
            SecretSource::Dir { .. } => None,
        }
    }
}

impl SequenceSource {
    /// The fixed sequence that opens the door now (`None`: a one-time door
    /// with no sequence left or not resolved yet, or a rotating door, whose
    /// sequences the service derives as time passes).
    pub fn current(&self) -> Option<&Sequence> {
        match self {
            SequenceSource::Fixed(seq) => Some(seq),
            SequenceSource::OneTime { current, .. } => current.as_ref().map(|c| &c.sequence),
            SequenceSource::Rotating { .. } => None,
        }
    }
}

/// TCP flag requirements of a door (`TCPFlags = syn,!ack`): flags that must
/// be set and flags that must be clear. Empty means any TCP packet counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlagRule {
    pub set: TcpFlags,
    pub clear: TcpFlags,
}

impl FlagRule {
    /// Whether a TCP packet with `flags` counts for the door at all.
    #[inline]
    pub fn matches(&self, flags: TcpFlags) -> bool {
        flags.contains(self.set) && flags.excludes(self.clear)
    }

    /// True when the door places no condition on TCP flags.
    pub fn is_any(&self) -> bool {
        self.set.0 == 0 && self.clear.0 == 0
    }
}

impl fmt::Display for FlagRule {
    /// The config spelling (`syn,!ack`), or `any`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("any");
        }
        let mut first = true;
        for (flag, name) in TcpFlags::NAMED {
            let bang = if self.set.contains(flag) {
                ""
            } else if self.clear.contains(flag) {
                "!"
            } else {
                continue;
            };
            if !first {
                f.write_str(",")?;
            }
            write!(f, "{bang}{name}")?;
            first = false;
        }
        Ok(())
    }
}

/// What a second successful knock does while the door is already open for
/// the same address (only matters for doors with a stop command).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Reopen {
    /// Push the pending stop command back; do not run the start command
    /// again, so firewall rules are not stacked.
    #[default]
    Extend,
    /// knockd 0.8: run the start command again and schedule one more stop.
    Stack,
}

/// A door: a named sequence and what happens when it is knocked.
#[derive(Debug, Clone, PartialEq)]
pub struct Door {
    pub name: String,
    /// Line of the `[name]` header, for messages about the door.
    pub line: usize,
    pub sequence: SequenceSource,
    pub seq_timeout: Duration,
    pub tcp_flags: FlagRule,
    /// `Start_Command`/`Command`. `None` when unset.
    pub start_command: Option<String>,
    /// `Start_Command_6`/`Command_6`: `None` falls back to the v4 command;
    /// `Some("")` means "do nothing for IPv6".
    pub start_command_6: Option<String>,
    pub stop_command: Option<String>,
    pub stop_command_6: Option<String>,
    pub cmd_timeout: Duration,
    /// `Target`: match knocks to this address instead of the interface's.
    pub target: Option<IpAddr>,
    /// `Reopen` (ours).
    pub reopen: Reopen,
    /// `Nft_Set` (ours): the nftables set IPv4 knockers are added to, with
    /// a kernel timeout of `Cmd_Timeout`.
    pub nft_set: Option<NftSet>,
    /// `Nft_Set_6` (ours): the same for IPv6 knockers.
    pub nft_set_6: Option<NftSet>,
    /// `Allow` (ours): only knocks from these ranges count (empty: all).
    pub allow: Vec<Cidr>,
    /// `Deny` (ours): knocks from these ranges never count; deny wins.
    pub deny: Vec<Cidr>,
    /// `Cooldown` (ours): after the door opens for a source, that source's
    /// completions within this long are ignored.
    pub cooldown: Option<Duration>,
    /// The file the door is defined in, when not the main config (an
    /// `Include`d one), for messages.
    pub file: Option<PathBuf>,
}

/// An nftables set, as `Nft_Set = FAMILY TABLE SET` names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NftSet {
    /// `ip`, `ip6`, `inet`, `bridge` or `netdev`.
    pub family: String,
    pub table: String,
    pub set: String,
}

impl fmt::Display for NftSet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {} {}", self.family, self.table, self.set)
    }
}

impl Door {
    /// A door with knockd's defaults and the given sequence; the parser
    /// starts from this, and so can tests.
    pub fn new(name: impl Into<String>, sequence: Sequence) -> Self {
        Door {
            name: name.into(),
            line: 0,
            sequence: SequenceSource::Fixed(sequence),
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            tcp_flags: FlagRule::default(),
            start_command: None,
            start_command_6: None,
            stop_command: None,
            stop_command_6: None,
            cmd_timeout: DEFAULT_CMD_TIMEOUT,
            target: None,
            reopen: Reopen::default(),
            nft_set: None,
            nft_set_6: None,
            allow: Vec::new(),
            deny: Vec::new(),
            cooldown: None,
            file: None,
        }
    }

    /// The start command for a knock from `v6` or v4, after knockd's
    /// fallback (`_6` unset → v4 command) and "empty means nothing".
    pub fn start_command_for(&self, v6: bool) -> Option<&str> {
        pick_command(v6, &self.start_command, &self.start_command_6)
    }

    /// Whether knocks from `src` count for this door: not in `Deny`, and in
    /// `Allow` when there is one (deny wins).
    pub fn admits(&self, src: IpAddr) -> bool {
        !self.deny.iter().any(|c| c.contains(src))
            && (self.allow.is_empty() || self.allow.iter().any(|c| c.contains(src)))
    }

    /// The nftables set a knocker from `v6` or v4 is added to.
    pub fn nft_set_for(&self, v6: bool) -> Option<&NftSet> {
        if v6 {
            self.nft_set_6.as_ref()
        } else {
            self.nft_set.as_ref()
        }
    }

    /// The stop command, with the same fallback rules as the start command.
    pub fn stop_command_for(&self, v6: bool) -> Option<&str> {
        pick_command(v6, &self.stop_command, &self.stop_command_6)
    }
}

fn pick_command<'a>(
    v6: bool,
    v4: &'a Option<String>,
    v6cmd: &'a Option<String>,
) -> Option<&'a str> {
    let chosen = if v6 {
        v6cmd.as_ref().or(v4.as_ref())
    } else {
        v4.as_ref()
    };
    chosen.map(String::as_str).filter(|c| !c.is_empty())
}

fn fmt_secs(d: Duration) -> String {
    let ms = d.as_millis();
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{}s", d.as_secs_f64())
    }
}

impl Door {
    /// The one-line summary `knockd --check` prints for the door.
    pub fn summary(&self) -> String {
        let mut s = format!("[{}] sequence ", self.name);
        match &self.sequence {
            SequenceSource::Fixed(seq) => s.push_str(&seq.to_string()),
            SequenceSource::OneTime {
                path,
                current: Some(current),
                ..
            } => s.push_str(&format!(
                "{} (one-time, {}:{})",
                current.sequence,
                path.display(),
                current.line
            )),
            SequenceSource::OneTime {
                path,
                current: None,
                ..
            } => s.push_str(&format!(
                "none (one-time, {}: no unused line left, door disabled)",
                path.display()
            )),
            SequenceSource::Rotating {
                secret,
                rotation: r,
            } => {
                let protocols: Vec<&str> = r.protocols.iter().map(|p| p.as_str()).collect();
                s.push_str(&format!(
                    "rotating ({} ports from {}-{}, {}, every {}s, skew {}, secret {})",
                    r.length,
                    r.first,
                    r.last,
                    protocols.join(","),
                    r.period,
                    r.skew,
                    match secret {
                        SecretSource::Inline(_) => "inline".to_string(),
                        SecretSource::File { path, .. } => format!("from {}", path.display()),
                        SecretSource::Dir { path, users, .. } => format!(
                            "per user from {}{}",
                            path.display(),
                            users
                                .as_ref()
                                .map_or(String::new(), |u| format!(": {} user(s)", u.len()))
                        ),
                    }
                ));
            }
        }
        s.push_str(&format!(
            ", seq_timeout {}, tcpflags {}",
            fmt_secs(self.seq_timeout),
            self.tcp_flags
        ));
        if let Some(t) = self.target {
            s.push_str(&format!(", target {t}"));
        }
        let mut cmds = Vec::new();
        for (name, value) in [
            ("start", &self.start_command),
            ("start_6", &self.start_command_6),
            ("stop", &self.stop_command),
            ("stop_6", &self.stop_command_6),
        ] {
            match value {
                Some(v) if v.is_empty() => cmds.push(format!("{name}=none")),
                Some(_) => cmds.push(name.to_string()),
                None => {}
            }
        }
        if cmds.is_empty() {
            s.push_str(", no commands");
        } else {
            s.push_str(&format!(", commands: {}", cmds.join(" ")));
        }
        if self.stop_command.is_some() || self.stop_command_6.is_some() {
            s.push_str(&format!(", cmd_timeout {}", fmt_secs(self.cmd_timeout)));
            if self.reopen == Reopen::Stack {
                s.push_str(", reopen stack");
            }
        }
        for (set, kind) in [(&self.nft_set, "ipv4_addr"), (&self.nft_set_6, "ipv6_addr")] {
            if let Some(set) = set {
                s.push_str(&format!(
                    ", nft set {set} (must exist: type {kind}; flags timeout), timeout {}",
                    fmt_secs(self.cmd_timeout)
                ));
            }
        }
        for (list, word) in [(&self.allow, "allow"), (&self.deny, "deny")] {
            if !list.is_empty() {
                let shown: Vec<String> = list.iter().map(ToString::to_string).collect();
                s.push_str(&format!(", {word} {}", shown.join(" ")));
            }
        }
        if let Some(c) = self.cooldown {
            s.push_str(&format!(", cooldown {}", fmt_secs(c)));
        }
        s
    }
}
