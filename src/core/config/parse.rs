//! The knockd.conf grammar: `[section]` headers and `key = value` lines.
//!
//! Errors are collected, not returned at the first one, so `knockd --check`
//! shows everything wrong with a file at once. Keys are matched without
//! regard to case, as knockd does.

use std::io::{BufRead, BufReader, Read};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::door_extras::{parse_nft_set, unknown_tokens};
use super::error::{Diagnostics, Warning};
use super::rotating::{is_rotating_key, RotatingBuilder};
use super::sequence::parse_sequence;
use super::{Config, Door, FlagRule, Options, Reopen, SequenceSource};
use crate::core::cidr::parse_list as parse_cidrs;
use crate::core::knock::TcpFlags;
use crate::core::rotate::{Rotation, WEAK_BELOW};

/// Stop collecting after this many errors: a binary file or a wrong path
/// would otherwise produce one message per line.
const MAX_ERRORS: usize = 100;

/// Largest config file read. A real knockd.conf is a few KiB; the cap keeps a
/// wrong path (`/dev/zero`, a huge log) from exhausting memory.
pub const MAX_CONFIG_BYTES: u64 = 16 << 20;

/// Largest timeout accepted, so deadline arithmetic can never overflow.
const MAX_TIMEOUT_SECS: f64 = 1e9;

/// Largest `MaxCommands`: more root shells at once than this is no bound.
const MAX_MAX_COMMANDS: usize = 1024;

/// Largest `MaxAttempts`: 16 Mi attempts is already about 1 GiB of table.
const MAX_MAX_ATTEMPTS: usize = 1 << 24;

/// A successful parse: the config and what deserves a warning.
pub type Parsed = (Config, Vec<Warning>);

/// Parses config text; `file` is only used to name the place in messages.
pub fn parse_str(text: &str, file: &Path) -> Result<Parsed, Diagnostics> {
    parse_reader(text.as_bytes(), file)
}

/// Parses config text from any reader.
pub fn parse_reader(reader: impl Read, file: &Path) -> Result<Parsed, Diagnostics> {
    let (config, diag) = parse_partial(reader, file);
    if diag.errors.is_empty() {
        Ok((config, diag.warnings))
    } else {
        Err(diag)
    }
}

/// Parses config text from any reader, keeping the doors that parsed even
/// when others did not: the shell still checks their one-time files, so
/// `knockd --check` reports every problem of a file in one pass.
pub fn parse_partial(reader: impl Read, file: &Path) -> (Config, Diagnostics) {
    let mut p = Parser {
        file,
        diag: Diagnostics::default(),
        options: Options::default(),
        doors: Vec::new(),
        section: Section::None,
        seen_options: false,
    };
    // One byte over the cap tells "exactly at the cap" from "too large".
    let mut reader = BufReader::new(reader.take(MAX_CONFIG_BYTES + 1));
    let mut buf = Vec::new();
    let mut number = 0usize;
    let mut total = 0u64;
    loop {
        buf.clear();
        match reader.read_until(b'\n', &mut buf) {
            Ok(0) => break,
            Ok(n) => total += n as u64,
            Err(e) => {
                p.diag.error(
                    file,
                    Some(number + 1),
                    None,
                    format!("read error: {}", io_reason(&e)),
                );
                break;
            }
        }
        number += 1;
        if total > MAX_CONFIG_BYTES {
            p.error(
                number,
                None,
                format!(
                    "file is larger than {} MiB; is this the right file?",
                    MAX_CONFIG_BYTES >> 20
                ),
            );
            break;
        }
        // A UTF-8 byte-order mark, as some editors write, is not part of line 1.
        let bytes = match buf.strip_prefix(b"\xef\xbb\xbf") {
            Some(rest) if number == 1 => rest,
            _ => &buf[..],
        };
        match std::str::from_utf8(bytes) {
            Ok(text) => p.line(number, text),
            Err(_) => p.error(number, None, "not valid UTF-8 text"),
        }
        if p.diag.errors.len() >= MAX_ERRORS {
            p.error(
                number,
                None,
                format!("too many errors, stopped reading after {MAX_ERRORS}"),
            );
            return (
                Config {
                    options: p.options,
                    doors: p.doors,
                },
                p.diag,
            );
        }
    }
    p.finish_section();
    if p.doors.len() > super::MAX_DOORS {
        p.diag.error(
            file,
            None,
            None,
            format!(
                "{} doors; at most {} are allowed",
                p.doors.len(),
                super::MAX_DOORS
            ),
        );
    }
    // With `Include`, the shell warns once it has read the other files.
    if p.doors.is_empty() && p.diag.errors.is_empty() && p.options.include.is_empty() {
        p.diag
            .warn(file, None, "no doors defined: nothing can be opened");
    }
    let mut names: Vec<&str> = p.doors.iter().map(|d| d.name.as_str()).collect();
    names.sort_unstable();
    for pair in names.windows(2) {
        if pair[0] == pair[1] {
            let name = pair[0].to_string();
            p.diag.warn(
                file,
                None,
                format!(
                    "door name [{name}] is used more than once; log lines will not tell them apart"
                ),
            );
        }
    }
    (
        Config {
            options: p.options,
            doors: p.doors,
        },
        p.diag,
    )
}

/// The words of an I/O error without its "(os error N)" tail, for one-line
/// messages that already name the file.
pub fn io_reason(e: &std::io::Error) -> String {
    match e.kind() {
        std::io::ErrorKind::NotFound => "no such file".into(),
        std::io::ErrorKind::PermissionDenied => "permission denied".into(),
        _ => {
            // io::Error's Display appends "(os error N)"; keep the words only.
            let s = e.to_string();
            match s.find(" (os error") {
                Some(i) => s[..i].to_string(),
                None => s,
            }
        }
    }
}

enum Section {
    /// Before the first header: every directive is an error.
    None,
    Options,
    Door(Box<DoorBuilder>),
    /// After a broken header (already reported): its lines are ignored, so
    /// one typo gives one error, not one per line of the section.
    Skip,
}

/// A door while its section is being read.
struct DoorBuilder {
    door: Door,
    sequence_line: Option<usize>,
    one_time_line: Option<usize>,
    sequence: Option<SequenceSource>,
    /// A sequence line without a value was already reported; "no sequence"
    /// would only repeat it.
    sequence_reported: bool,
    /// `Sequence_*` directives of a rotating door.
    rotating: RotatingBuilder,
    /// One of them had an error (already reported).
    rotating_failed: bool,
}

struct Parser<'a> {
    file: &'a Path,
    diag: Diagnostics,
    options: Options,
    doors: Vec<Door>,
    section: Section,
    seen_options: bool,
}

impl Parser<'_> {
    fn error(&mut self, line: usize, key: Option<&str>, message: impl Into<String>) {
        self.diag.error(self.file, Some(line), key, message);
    }

    fn warn(&mut self, line: usize, message: impl Into<String>) {
        self.diag.warn(self.file, Some(line), message);
    }

    fn line(&mut self, number: usize, raw: &str) {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        if let Some(rest) = line.strip_prefix('[') {
            self.section_header(number, rest);
            return;
        }
        let (key, value) = match line.split_once('=') {
            Some((k, v)) => (k.trim(), Some(v.trim())),
            None => (line, None),
        };
        if key.is_empty() {
            self.error(number, None, "no key before '='");
            return;
        }
        match &self.section {
            Section::None => self.error(
                number,
                Some(key),
                "directive outside any section (put it under [options] or a [door])",
            ),
            Section::Options => self.option(number, key, value),
            Section::Door(_) => self.door_directive(number, key, value),
            Section::Skip => {}
        }
    }

    fn section_header(&mut self, number: usize, rest: &str) {
        self.finish_section();
        let Some(name) = rest.strip_suffix(']') else {
            self.error(number, None, "section header is missing its closing ']'");
            // Swallow the section's lines without a cascade of errors.
            self.section = Section::Skip;
            return;
        };
        let name = name.trim();
        if name.is_empty() {
            self.error(number, None, "empty section name '[]'");
            self.section = Section::Skip;
            return;
        }
        if name.eq_ignore_ascii_case("options") {
            if self.seen_options {
                self.warn(number, "second [options] section; its settings are merged");
            }
            self.seen_options = true;
            self.options.section_line.get_or_insert(number);
            self.section = Section::Options;
            return;
        }
        let mut door = Door::new(name, placeholder_sequence());
        door.line = number;
        self.section = Section::Door(Box::new(DoorBuilder {
            door,
            sequence_line: None,
            one_time_line: None,
            sequence: None,
            sequence_reported: false,
            rotating: RotatingBuilder::default(),
            rotating_failed: false,
        }));
    }

    fn finish_section(&mut self) {
        let Section::Door(b) = std::mem::replace(&mut self.section, Section::None) else {
            return;
        };
        let mut b = *b;
        if !b.rotating.has_users() {
            let commands = [
                &b.door.start_command,
                &b.door.start_command_6,
                &b.door.stop_command,
                &b.door.stop_command_6,
            ];
            if commands
                .iter()
                .any(|c| c.as_deref().is_some_and(|c| c.contains("%USER%")))
            {
                self.warn(
                    b.door.line,
                    format!(
                        "door [{}]: %USER% is always empty here: the door has no users (Sequence_Secret_Dir)",
                        b.door.name
                    ),
                );
            }
        }
        if let Some(line) = b.rotating.first_line {
            let other = match (b.sequence_line, b.one_time_line) {
                (Some(_), _) => Some("Sequence"),
                (_, Some(_)) => Some("One_Time_Sequences"),
                _ => None,
            };
            if let Some(other) = other {
                let message = format!(
                    "door [{}] has both {other} and Sequence_* (a rotating sequence); use one",
                    b.door.name
                );
                self.error(line, None, message);
                return;
            }
            if b.rotating_failed {
                return;
            }
            let name = b.door.name.clone();
            match std::mem::take(&mut b.rotating).finish(&name) {
                Ok(source) => {
                    if let SequenceSource::Rotating { rotation, .. } = &source {
                        self.warn_if_weak(&b.door, rotation);
                        if rotation.length > 1 {
                            self.warn_if_no_time(&b.door);
                        }
                    }
                    b.door.sequence = source;
                    self.doors.push(b.door);
                }
                Err(message) => self.error(line, None, message),
            }
            return;
        }
        match (b.sequence_line, b.one_time_line) {
            (Some(_), Some(l)) => {
                self.error(
                    l,
                    Some("One_Time_Sequences"),
                    format!(
                        "door [{}] has both Sequence and One_Time_Sequences; use one",
                        b.door.name
                    ),
                );
                return;
            }
            (None, None) if b.sequence_reported => return,
            (None, None) => {
                self.error(
                    b.door.line,
                    None,
                    format!(
                        "door [{}] has no Sequence (or One_Time_Sequences, or Sequence_Secret)",
                        b.door.name
                    ),
                );
                return;
            }
            _ => {}
        }
        // A missing sequence here means its own line already had an error.
        if let Some(seq) = b.sequence.take() {
            if can_take_several_knocks(&seq) {
                self.warn_if_no_time(&b.door);
            }
            b.door.sequence = seq;
            self.doors.push(b.door);
        }
    }

    /// `Seq_Timeout = 0` on a door whose knock takes several ports.
    fn warn_if_no_time(&mut self, door: &Door) {
        if door.seq_timeout.is_zero() {
            self.warn(
                door.line,
                format!(
                    "door [{}]: Seq_Timeout = 0 leaves no time between knocks, so a \
                     sequence of more than one port can never complete (knockd 0.8 \
                     allowed the rest of the current second)",
                    door.name
                ),
            );
        }
    }

    /// A rotating door a port scan opens passes every other check: say so
    /// at `--check`, start and reload, with the numbers and the fix.
    fn warn_if_weak(&mut self, door: &Door, rotation: &Rotation) {
        let tries = rotation.tries();
        if tries >= WEAK_BELOW || rotation.validate().is_err() {
            return;
        }
        let ports = u32::from(rotation.last) - u32::from(rotation.first) + 1;
        self.warn(
            door.line,
            format!(
                "door [{}]: weak rotating sequence: {ports} ports taken {} at a time give {} \
                 sequences, {} accepted at once (Sequence_Skew {}): about {tries} tries per \
                 opening (under 2^32); raise Sequence_Length (each step multiplies the \
                 sequences by about the number of ports)",
                door.name,
                rotation.length,
                rotation.sequences(),
                rotation.accepted_periods(),
                rotation.skew,
            ),
        );
    }

    fn option(&mut self, number: usize, key: &str, value: Option<&str>) {
        let upper = key.to_ascii_uppercase();
        if upper == "USESYSLOG" {
            match value.map(parse_bool) {
                None => self.options.use_syslog = true,
                Some(Some(b)) => self.options.use_syslog = b,
                Some(None) => self.error(number, Some(key), "takes no value (or yes/no)"),
            }
            return;
        }
        if is_door_key(&upper) {
            self.error(
                number,
                Some(key),
                "is a door directive; it cannot be used in [options]",
            );
            return;
        }
        if !matches!(
            upper.as_str(),
            "LOGFILE"
                | "PIDFILE"
                | "INCLUDE"
                | "INTERFACE"
                | "MAXATTEMPTS"
                | "STATEFILE"
                | "LOGRATE"
                | "MAXLOGLINES"
                | "MAXCOMMANDS"
                | "MAXOPENSPERMINUTE"
                | "MAXPENDINGSTOPS"
                | "LOGFORMAT"
        ) {
            self.error(number, Some(key), "unknown option");
            return;
        }
        let Some(value) = self.value(number, key, value) else {
            return;
        };
        match upper.as_str() {
            "LOGFILE" => self.options.log_file = Some(PathBuf::from(value)),
            "PIDFILE" => self.options.pid_file = Some(PathBuf::from(value)),
            "STATEFILE" => self.options.state_file = Some(PathBuf::from(value)),
            "INCLUDE" => self.options.include.push((value.to_string(), number)),
            "INTERFACE" => {
                let names: Vec<String> = value
                    .split(',')
                    .map(str::trim)
                    .map(str::to_string)
                    .collect();
                if names.iter().any(String::is_empty) {
                    self.error(number, Some(key), "empty interface name in the list");
                } else {
                    self.options.interfaces = names;
                }
            }
            "MAXATTEMPTS" => match value.parse::<usize>() {
                Ok(n @ 1..=MAX_MAX_ATTEMPTS) => self.options.max_attempts = n,
                _ => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a whole number from 1 to {MAX_MAX_ATTEMPTS}"),
                ),
            },
            "LOGRATE" | "MAXLOGLINES" => match value.parse::<u32>() {
                Ok(n) if n <= 1_000_000 && upper == "LOGRATE" => self.options.log_rate = n,
                Ok(n) if n <= 1_000_000 => self.options.max_log_lines = n,
                _ => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a whole number of lines per second (0: no limit)"),
                ),
            },
            "MAXCOMMANDS" => match value.parse::<usize>() {
                Ok(n @ 1..=MAX_MAX_COMMANDS) => self.options.max_commands = n,
                _ => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a whole number from 1 to {MAX_MAX_COMMANDS}"),
                ),
            },
            "MAXOPENSPERMINUTE" => match value.parse::<u32>() {
                Ok(n @ 1..=1_000_000) => self.options.max_opens_per_minute = n,
                _ => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a whole number from 1 to 1000000"),
                ),
            },
            "MAXPENDINGSTOPS" => match value.parse::<usize>() {
                Ok(n @ 1..=1_000_000) => self.options.max_pending_stops = n,
                _ => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a whole number from 1 to 1000000"),
                ),
            },
            "LOGFORMAT" => match super::LogFormat::parse(value) {
                Some(f) => self.options.log_format = f,
                None => self.error(
                    number,
                    Some(key),
                    format!("\"{value}\" is not a log format (text or json)"),
                ),
            },
            // Unknown keys were reported above.
            _ => {}
        }
    }

    /// The value of a directive that needs one, or an error.
    fn value<'v>(&mut self, number: usize, key: &str, value: Option<&'v str>) -> Option<&'v str> {
        match value {
            None => {
                self.error(number, Some(key), format!("needs a value ({key} = ...)"));
                None
            }
            Some("") => {
                self.error(number, Some(key), "empty value");
                None
            }
            Some(v) => Some(v),
        }
    }

    fn door_directive(&mut self, number: usize, key: &str, value: Option<&str>) {
        let upper = key.to_ascii_uppercase();
        if upper == "USESYSLOG" && value.is_none() {
            // knockd 0.8 honours a bare UseSyslog anywhere; keep configs working.
            self.warn(number, "UseSyslog belongs in [options]");
            self.options.use_syslog = true;
            return;
        }
        if !is_door_key(&upper) {
            if matches!(
                upper.as_str(),
                "LOGFILE"
                    | "PIDFILE"
                    | "INTERFACE"
                    | "MAXATTEMPTS"
                    | "STATEFILE"
                    | "INCLUDE"
                    | "LOGRATE"
                    | "MAXLOGLINES"
                    | "MAXCOMMANDS"
                    | "MAXOPENSPERMINUTE"
                    | "MAXPENDINGSTOPS"
                    | "LOGFORMAT"
                    | "USESYSLOG"
            ) {
                self.error(
                    number,
                    Some(key),
                    "is a global option; move it to [options]",
                );
            } else {
                self.error(number, Some(key), "unknown door directive");
            }
            return;
        }
        // Commands may be empty ("do nothing"); everything else needs a value.
        let is_command = upper.contains("COMMAND");
        let value = if is_command {
            match value {
                Some(v) => v,
                None => {
                    self.error(number, Some(key), format!("needs a value ({key} = ...)"));
                    return;
                }
            }
        } else {
            match self.value(number, key, value) {
                Some(v) => v,
                None => {
                    if let Section::Door(b) = &mut self.section {
                        b.sequence_reported |=
                            matches!(upper.as_str(), "SEQUENCE" | "ONE_TIME_SEQUENCES");
                    }
                    return;
                }
            }
        };
        let Section::Door(b) = &mut self.section else {
            return;
        };
        if is_rotating_key(&upper) {
            if let Err(message) = b.rotating.directive(number, &upper, key, value) {
                b.rotating_failed = true;
                self.error(number, Some(key), message);
            }
            return;
        }
        let mut error: Option<String> = None;
        let mut repeated = false;
        match upper.as_str() {
            "SEQUENCE" => {
                repeated = b.sequence_line.is_some();
                b.sequence_line = Some(number);
                match parse_sequence(value) {
                    Ok(seq) => b.sequence = Some(SequenceSource::Fixed(seq)),
                    Err(e) => error = Some(e.to_string()),
                }
            }
            "ONE_TIME_SEQUENCES" => {
                repeated = b.one_time_line.is_some();
                b.one_time_line = Some(number);
                // The file itself is read by the shell's resolve step.
                b.sequence = Some(SequenceSource::OneTime {
                    path: PathBuf::from(value),
                    directive_line: number,
                    directive_key: key.to_string(),
                    current: None,
                });
            }
            "SEQ_TIMEOUT" | "TIMEOUT" => match parse_seconds(value) {
                Ok(d) => b.door.seq_timeout = d,
                Err(e) => error = Some(e),
            },
            "CMD_TIMEOUT" => match parse_seconds(value) {
                Ok(d) => b.door.cmd_timeout = d,
                Err(e) => error = Some(e),
            },
            "TCPFLAGS" => match parse_flags(value, b.door.tcp_flags) {
                Ok(rule) => b.door.tcp_flags = rule,
                Err(e) => error = Some(e),
            },
            "START_COMMAND" | "COMMAND" => {
                repeated = b.door.start_command.replace(value.to_string()).is_some()
            }
            "START_COMMAND_6" | "COMMAND_6" => {
                repeated = b.door.start_command_6.replace(value.to_string()).is_some()
            }
            "STOP_COMMAND" => repeated = b.door.stop_command.replace(value.to_string()).is_some(),
            "STOP_COMMAND_6" => {
                repeated = b.door.stop_command_6.replace(value.to_string()).is_some()
            }
            "NFT_SET" | "NFT_SET_6" => match parse_nft_set(value, upper == "NFT_SET_6") {
                Ok(set) if upper == "NFT_SET" => repeated = b.door.nft_set.replace(set).is_some(),
                Ok(set) => repeated = b.door.nft_set_6.replace(set).is_some(),
                Err(e) => error = Some(e),
            },
            "ALLOW" | "DENY" => match parse_cidrs(value) {
                // Lines add up, as TCPFlags lines do.
                Ok(list) if upper == "ALLOW" => b.door.allow.extend(list),
                Ok(list) => b.door.deny.extend(list),
                Err(e) => error = Some(e),
            },
            "COOLDOWN" => match parse_seconds(value) {
                Ok(d) => b.door.cooldown = Some(d),
                Err(e) => error = Some(e),
            },
            "TARGET" => match value.parse::<IpAddr>() {
                Ok(ip) => b.door.target = Some(ip),
                Err(_) => error = Some(format!("\"{value}\" is not an IP address")),
            },
            "REOPEN" => match value.to_ascii_lowercase().as_str() {
                "extend" => b.door.reopen = Reopen::Extend,
                "stack" => b.door.reopen = Reopen::Stack,
                _ => error = Some(format!("\"{value}\" is not extend or stack")),
            },
            // Not a door key: reported above.
            _ => {}
        }
        if let Some(message) = error {
            self.error(number, Some(key), message);
        } else if repeated {
            self.warn(
                number,
                format!("{key} set again in this door; the last one wins"),
            );
        }
        if is_command {
            for token in unknown_tokens(value) {
                self.warn(
                    number,
                    format!(
                        "{key}: unknown token {token} stays as it is (known: {})",
                        super::TOKENS.join(" ")
                    ),
                );
            }
        }
    }
}

/// Whether a door's sequence may be longer than one knock (a one-time
/// file's lines are only read later, so they may).
fn can_take_several_knocks(seq: &SequenceSource) -> bool {
    match seq {
        SequenceSource::Fixed(s) => s.len() > 1,
        SequenceSource::OneTime { .. } => true,
        SequenceSource::Rotating { rotation, .. } => rotation.length > 1,
    }
}

fn is_door_key(upper: &str) -> bool {
    is_rotating_key(upper)
        || matches!(
            upper,
            "SEQUENCE"
                | "ONE_TIME_SEQUENCES"
                | "SEQ_TIMEOUT"
                | "TIMEOUT"
                | "TCPFLAGS"
                | "START_COMMAND"
                | "COMMAND"
                | "START_COMMAND_6"
                | "COMMAND_6"
                | "STOP_COMMAND"
                | "STOP_COMMAND_6"
                | "CMD_TIMEOUT"
                | "TARGET"
                | "REOPEN"
                | "NFT_SET"
                | "NFT_SET_6"
                | "ALLOW"
                | "DENY"
                | "COOLDOWN"
        )
}

/// A sequence that is never used: the door's real one replaces it before the
/// door leaves the parser.
fn placeholder_sequence() -> super::Sequence {
    // Built directly (the field is private to `config`): one step is valid.
    super::Sequence(vec![super::Step {
        port: 1,
        proto: crate::core::knock::Proto::Tcp,
    }])
}

fn parse_bool(v: &str) -> Option<bool> {
    match v.to_ascii_lowercase().as_str() {
        "yes" | "true" | "on" | "1" => Some(true),
        "no" | "false" | "off" | "0" => Some(false),
        _ => None,
    }
}

/// Seconds, whole or decimal (`5`, `0.5`); knockd accepts whole seconds only
/// and reads garbage as 0, we reject it.
fn parse_seconds(v: &str) -> Result<Duration, String> {
    let ok = !v.is_empty()
        && v.bytes().all(|b| b.is_ascii_digit() || b == b'.')
        && v.bytes().filter(|&b| b == b'.').count() <= 1
        && v.bytes().any(|b| b.is_ascii_digit());
    let secs: f64 = match v.parse() {
        Ok(s) if ok => s,
        _ => return Err(format!("\"{v}\" is not a number of seconds")),
    };
    if secs > MAX_TIMEOUT_SECS {
        return Err(format!(
            "{v} seconds is too long (at most {MAX_TIMEOUT_SECS:.0})"
        ));
    }
    Ok(Duration::from_secs_f64(secs))
}

/// `syn,!ack`: adds to `rule` (knockd accumulates repeated TCPFlags lines).
fn parse_flags(v: &str, mut rule: FlagRule) -> Result<FlagRule, String> {
    for item in v.split(',') {
        let item = item.trim();
        let (negate, name) = match item.strip_prefix('!') {
            Some(n) => (true, n.trim()),
            None => (false, item),
        };
        let Some((flag, _)) = TcpFlags::NAMED
            .iter()
            .find(|(_, n)| n.eq_ignore_ascii_case(name))
        else {
            return Err(format!(
                "unknown TCP flag \"{item}\" (expected fin, syn, rst, psh, ack or urg, optionally with !)"
            ));
        };
        if negate {
            rule.clear |= *flag;
        } else {
            rule.set |= *flag;
        }
    }
    if rule.set.0 & rule.clear.0 != 0 {
        let both = TcpFlags(rule.set.0 & rule.clear.0);
        let names: Vec<&str> = TcpFlags::NAMED
            .iter()
            .filter(|(f, _)| both.contains(*f))
            .map(|(_, n)| *n)
            .collect();
        return Err(format!(
            "flag {} is both required and forbidden",
            names.join(", ")
        ));
    }
    Ok(rule)
}
