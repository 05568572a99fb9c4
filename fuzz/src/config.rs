//! The `config` and `config_shaped` targets: knockd.conf text through the
//! parser, then what parsed through a fresh engine.

use std::io::{self, Read};
use std::net::{IpAddr, Ipv4Addr};
use std::path::Path;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use knockd::core::config::{
    parse_partial, parse_reader, parse_sequence, Config, ConfigError, Diagnostics, SequenceSource,
    Warning, MAX_DOORS, MAX_SEQUENCE_LEN,
};
use knockd::core::engine::{Action, CommandKind, Engine, Event, LocalAddrs};
use knockd::core::knock::{Knock, Proto, TcpFlags, Timestamp};
use knockd::core::rotate::{self, Rotation, Secret};

use crate::is_one_clean_line;

/// The file name every message must start with.
pub const FILE: &str = "/etc/knockd.conf";

/// Errors a parse may collect: the parser stops at 100 and adds one line
/// saying so; a read error or the end of the file can add a few more.
const MAX_ERRORS_REPORTED: usize = 104;

/// Longest message line: file, line number, a key clipped at 60
/// characters and a message clipped at 300, each character escaped to at
/// most `\u{10ffff}` (10 bytes).
const MAX_LINE_BYTES: usize = FILE.len() + 40 + 10 * (60 + 300 + 6);

/// Raw bytes: the first byte chooses how the reader hands them over
/// (whole, or in small chunks, optionally ending in an I/O error), so
/// line and chunk boundaries meet in every way.
pub fn check_bytes(data: &[u8]) {
    let Some((&mode, text)) = data.split_first() else {
        return;
    };
    let chunk = usize::from(mode & 0x0f) + 1;
    let fail = match mode >> 4 {
        1 => Some(io::ErrorKind::Other),
        2 => Some(io::ErrorKind::InvalidData),
        3 => Some(io::ErrorKind::UnexpectedEof),
        _ => None,
    };
    if mode & 0x0f == 0x0f && fail.is_none() {
        check_text(text);
        return;
    }
    let reader = Chunked {
        data: text,
        chunk,
        fail,
        interrupted: false,
    };
    let (config, diag) = parse_partial(reader, Path::new(FILE));
    check_diagnostics(&diag, text, fail.is_some());
    if fail.is_none() {
        // The reader's chunking must not change the outcome.
        let whole = parse_partial(text, Path::new(FILE));
        assert_eq!(whole.0, config, "chunked read parsed differently");
        assert_eq!(whole.1, diag, "chunked read reported differently");
    } else {
        // Unless the parser gave up before reaching the end.
        assert!(
            diag.errors.len() >= 100
                || diag
                    .errors
                    .iter()
                    .any(|e| e.message.starts_with("read error")),
            "an I/O error was not reported: {diag:#?}"
        );
    }
}

/// Config text as one slice: parse, check every message and what parsed.
pub fn check_text(text: &[u8]) {
    let path = Path::new(FILE);
    let (config, diag) = parse_partial(text, path);
    check_diagnostics(&diag, text, false);
    match parse_reader(text, path) {
        Ok((c, warnings)) => {
            assert!(diag.errors.is_empty(), "parse_reader Ok despite errors");
            assert_eq!(c, config);
            assert_eq!(warnings, diag.warnings);
            check_config(&config);
        }
        Err(d) => {
            assert!(!diag.errors.is_empty(), "parse_reader Err without errors");
            assert_eq!(d, diag);
        }
    }
}

fn check_diagnostics(diag: &Diagnostics, text: &[u8], io_error: bool) {
    assert!(
        diag.errors.len() <= MAX_ERRORS_REPORTED,
        "{} errors collected",
        diag.errors.len()
    );
    // Lines are counted as the parser counts them: split at '\n'.
    let lines = text.split(|&b| b == b'\n').count() + usize::from(io_error);
    for e in &diag.errors {
        check_error(e, lines);
    }
    for w in &diag.warnings {
        check_warning(w, lines);
    }
}

fn check_error(e: &ConfigError, lines: usize) {
    let s = e.to_string();
    assert!(is_one_clean_line(&s), "error is not one clean line: {s:?}");
    assert!(s.starts_with(FILE), "error does not name the file: {s:?}");
    assert!(
        s.len() <= MAX_LINE_BYTES,
        "error line too long: {} bytes",
        s.len()
    );
    if let Some(n) = e.line {
        assert!((1..=lines).contains(&n), "error line {n} of {lines}: {s:?}");
    }
}

fn check_warning(w: &Warning, lines: usize) {
    let s = w.to_string();
    assert!(
        is_one_clean_line(&s),
        "warning is not one clean line: {s:?}"
    );
    let place = s.strip_prefix("warning: ").expect("warning prefix");
    assert!(
        place.starts_with(FILE),
        "warning does not name the file: {s:?}"
    );
    assert!(
        s.len() <= MAX_LINE_BYTES,
        "warning line too long: {} bytes",
        s.len()
    );
    if let Some(n) = w.line {
        assert!(
            (1..=lines).contains(&n),
            "warning line {n} of {lines}: {s:?}"
        );
    }
}

/// What a successful parse promises, then: every door opens for its own
/// sequence in a fresh engine.
fn check_config(config: &Config) {
    let o = &config.options;
    assert!((1..=1 << 24).contains(&o.max_attempts));
    assert!(o.log_rate <= 1_000_000);
    assert!(o.interfaces.iter().all(|i| !i.is_empty() && i.trim() == i));
    assert!(config.doors.len() <= MAX_DOORS);
    for door in &config.doors {
        assert!(!door.name.is_empty() && door.name.trim() == door.name);
        assert!(door.line >= 1);
        assert!(door.seq_timeout <= Duration::from_secs(1_000_000_000));
        assert!(door.cmd_timeout <= Duration::from_secs(1_000_000_000));
        let f = door.tcp_flags;
        assert_eq!(f.set.0 & f.clear.0, 0, "flag both required and forbidden");
        assert_eq!((f.set.0 | f.clear.0) & !0x3f, 0);
        let summary = door.summary();
        assert!(
            !summary.contains('\n'),
            "summary is not one line: {summary:?}"
        );
        match &door.sequence {
            SequenceSource::Fixed(seq) => {
                assert!((1..=MAX_SEQUENCE_LEN).contains(&seq.len()));
                assert!(seq.steps().iter().all(|s| s.port >= 1));
                // The printed sequence reads back as the same sequence.
                assert_eq!(parse_sequence(&seq.to_string()).as_ref(), Ok(seq));
            }
            SequenceSource::OneTime { current, .. } => {
                assert!(current.is_none(), "the parser resolved a one-time file");
            }
            SequenceSource::Rotating { secret, rotation } => {
                check_rotation(&door.name, secret.secret(), rotation);
            }
        }
    }
    // A door's own sequence opens it when nothing can evict the attempt
    // (one source: one attempt per door) and the sequence cannot time out
    // between knocks sent at one instant.
    if config.options.max_attempts < config.doors.len() {
        return;
    }
    for door in config.doors.iter().take(8) {
        let SequenceSource::Fixed(seq) = &door.sequence else {
            continue;
        };
        if seq.len() > 1 && door.seq_timeout == Duration::ZERO {
            continue;
        }
        let src = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let dst = door
            .target
            .unwrap_or(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)));
        let mut engine = Engine::new(config, LocalAddrs::Any);
        let at = Timestamp::from_nanos(1_000_000_000);
        for step in seq.steps() {
            engine.handle_knock(&Knock {
                at,
                src,
                dst,
                proto: step.proto,
                dst_port: step.port,
                tcp_flags: if step.proto == Proto::Tcp {
                    door.tcp_flags.set
                } else {
                    TcpFlags::default()
                },
            });
        }
        let (mut opened, mut started) = (false, false);
        while let Some(a) = engine.poll_accepting() {
            match a {
                Action::Log(Event::OpenSesame { src: s, door: d }) => {
                    opened |= s == src && *d == *door.name;
                }
                Action::Run(c) if c.kind == CommandKind::Start => {
                    started |= c.src == src && *c.name == *door.name;
                }
                _ => {}
            }
        }
        assert!(opened, "door [{}] did not open for {seq}", door.name);
        if door.start_command_for(false).is_some() {
            assert!(
                started,
                "door [{}] opened without its start command",
                door.name
            );
        }
    }
}

/// A rotating door as parsed: a valid rotation, and (with the secret at
/// hand) sequences as the derivation specifies them: `Sequence_Length`
/// distinct ports of the range, with the protocols given.
fn check_rotation(door: &str, secret: Option<&Secret>, r: &Rotation) {
    assert_eq!(
        r.validate(),
        Ok(()),
        "the parser let an invalid rotation through"
    );
    let Some(secret) = secret else {
        return;
    };
    for counter in [0, 1, r.counter(1_700_000_000), u64::MAX] {
        let seq = rotate::sequence(secret, door, r, counter);
        assert_eq!(seq.len(), usize::from(r.length), "rotating sequence length");
        for (k, s) in seq.steps().iter().enumerate() {
            assert!(
                (r.first..=r.last).contains(&s.port),
                "port {} out of range",
                s.port
            );
            let proto = r.protocols.get(k).unwrap_or(&r.protocols[0]);
            assert_eq!(s.proto, *proto, "protocol of step {k}");
            assert!(
                seq.steps()[..k].iter().all(|o| o.port != s.port),
                "port {} twice in {seq}",
                s.port
            );
        }
        assert_eq!(
            rotate::sequence(secret, door, r, counter),
            seq,
            "not deterministic"
        );
    }
}

/// A reader that hands out `chunk` bytes at a time, reports one
/// `Interrupted` (which must be retried, not reported) and then optionally
/// fails instead of ending.
struct Chunked<'a> {
    data: &'a [u8],
    chunk: usize,
    fail: Option<io::ErrorKind>,
    interrupted: bool,
}

impl Read for Chunked<'_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if !self.interrupted && self.data.len() > self.chunk {
            self.interrupted = true;
            return Err(io::ErrorKind::Interrupted.into());
        }
        if self.data.is_empty() {
            return match self.fail {
                Some(kind) => Err(io::Error::new(kind, "injected\nfailure (os error 5)")),
                None => Ok(0),
            };
        }
        let n = self.chunk.min(buf.len()).min(self.data.len());
        buf[..n].copy_from_slice(&self.data[..n]);
        self.data = &self.data[n..];
        Ok(n)
    }
}

// ---- config_shaped --------------------------------------------------------

/// Directive names, in their documented spelling; the shaped input picks
/// one and a letter case.
const KEYS: &[&str] = &[
    "Sequence",
    "One_Time_Sequences",
    "Seq_Timeout",
    "Timeout",
    "TCPFlags",
    "Start_Command",
    "Command",
    "Start_Command_6",
    "Command_6",
    "Stop_Command",
    "Stop_Command_6",
    "Cmd_Timeout",
    "Target",
    "Reopen",
    "UseSyslog",
    "LogFile",
    "PidFile",
    "Interface",
    "MaxAttempts",
    "StateFile",
    "LogRate",
    "MaxLogLines",
    "MaxCommands",
    "MaxOpensPerMinute",
    "MaxPendingStops",
    "Sequence_Secret",
    "Sequence_Secret_File",
    "Sequence_Length",
    "Sequence_Ports",
    "Sequence_Protocols",
    "Sequence_Period",
    "Sequence_Skew",
];

const FLAGS: &[&str] = &["syn", "ack", "fin", "rst", "psh", "urg", "SYN", "ecn", ""];
const PROTOS: &[&str] = &["", ":tcp", ":udp", ":UDP", ": tcp", ":icmp", ":"];
const PORTS: &[&str] = &[
    "7000",
    "7001",
    "8000",
    "9000",
    "1",
    "65535",
    "0",
    "65536",
    "+22",
    "-1",
    "",
    " 7000 ",
    "99999999999999999999",
    "7e3",
    "0x1b",
];
const NUMBERS: &[&str] = &[
    "0",
    "1",
    "5",
    "10",
    "0.5",
    ".5",
    "5.",
    "1.2.3",
    "1000000000",
    "1000000001",
    "1e3",
    "-1",
    "64",
    "16777216",
    "16777217",
    "1000000",
    "1000001",
    "4294967296",
    "NaN",
    "inf",
    " 3",
];
const IPS: &[&str] = &[
    "192.0.2.1",
    "2001:db8::1",
    "::ffff:192.0.2.1",
    "10.0.0.256",
    "fe80::1%eth0",
    "[::1]",
    "localhost",
];
const WORDS: &[&str] = &[
    "yes",
    "no",
    "true",
    "off",
    "1",
    "0",
    "maybe",
    "extend",
    "stack",
    "Stack",
    "eth0",
    "eth0, wlan0",
    "eth0,,wlan0",
    ",",
    "/var/log/knockd.log",
    "/tmp/otp",
    "%IP%",
];
const NAMES: &[&str] = &["openSSH", "closeSSH", "options", "OPTIONS", "door", "d"];

#[derive(Debug, Arbitrary)]
pub struct Shaped {
    lines: Vec<ShapedLine>,
}

#[derive(Debug, Arbitrary)]
enum ShapedLine {
    Section(Section),
    Directive {
        key: Key,
        case: u8,
        value: Option<Value>,
        indent: bool,
    },
    Comment(String),
    Blank,
    Raw(String),
    /// A whole rotating door, valid but for what its numbers say.
    RotatingDoor(RotatingDoor),
}

#[derive(Debug, Arbitrary)]
struct RotatingDoor {
    name: u8,
    secret_len: u8,
    fill: u8,
    first: u16,
    span: u8,
    length: u8,
    protocols: Vec<bool>,
    period: Option<u32>,
    skew: Option<u8>,
}

#[derive(Debug, Arbitrary)]
enum Section {
    Name(u8),
    Raw(String),
    Empty,
    Unclosed(u8),
}

#[derive(Debug, Arbitrary)]
enum Key {
    Known(u8),
    Raw(String),
}

#[derive(Debug, Arbitrary)]
enum Value {
    Sequence(Vec<(u8, u8)>),
    Number(u8),
    Flags(Vec<(bool, u8)>),
    Ip(u8),
    Word(u8),
    /// Base32 of `len % 70` bytes (a secret needs 16 to 64).
    Secret {
        len: u8,
        fill: u8,
    },
    /// `FIRST-LAST`.
    Range(u16, u16),
    Command(String),
    Empty,
    Raw(String),
}

fn pick<'a>(list: &[&'a str], i: u8) -> &'a str {
    list[usize::from(i) % list.len()]
}

impl Shaped {
    /// The config text the structure stands for.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                ShapedLine::Section(s) => match s {
                    Section::Name(i) => out.push_str(&format!("[{}]", pick(NAMES, *i))),
                    Section::Raw(name) => out.push_str(&format!("[{name}]")),
                    Section::Empty => out.push_str("[ ]"),
                    Section::Unclosed(i) => out.push_str(&format!("[{}", pick(NAMES, *i))),
                },
                ShapedLine::Directive {
                    key,
                    case,
                    value,
                    indent,
                } => {
                    if *indent {
                        out.push('\t');
                    }
                    let key = match key {
                        Key::Known(i) => pick(KEYS, *i).to_string(),
                        Key::Raw(k) => k.clone(),
                    };
                    out.push_str(&match case % 3 {
                        0 => key,
                        1 => key.to_ascii_lowercase(),
                        _ => key.to_ascii_uppercase(),
                    });
                    if let Some(v) = value {
                        out.push_str(if case & 4 == 0 { " = " } else { "=" });
                        render_value(v, &mut out);
                    }
                }
                ShapedLine::Comment(c) => out.push_str(&format!("# {c}")),
                ShapedLine::Blank => {}
                ShapedLine::Raw(r) => out.push_str(r),
                ShapedLine::RotatingDoor(r) => {
                    let bytes: Vec<u8> = (0..16 + usize::from(r.secret_len % 50))
                        .map(|i| r.fill.wrapping_mul(i as u8 | 1))
                        .collect();
                    let first = 1 + r.first % 65000;
                    out.push_str(&format!("[{}]\n", pick(NAMES, r.name)));
                    out.push_str(&format!("Sequence_Secret = {}\n", base32(&bytes)));
                    out.push_str(&format!(
                        "Sequence_Ports = {first}-{}\n",
                        first + u16::from(r.span)
                    ));
                    out.push_str(&format!("Sequence_Length = {}\n", 1 + r.length % 33));
                    if !r.protocols.is_empty() {
                        let p: Vec<&str> = r
                            .protocols
                            .iter()
                            .map(|&u| if u { "udp" } else { "tcp" })
                            .collect();
                        out.push_str(&format!("Sequence_Protocols = {}\n", p.join(",")));
                    }
                    if let Some(p) = r.period {
                        out.push_str(&format!("Sequence_Period = {}\n", p % 90_000));
                    }
                    if let Some(k) = r.skew {
                        out.push_str(&format!("Sequence_Skew = {}\n", k % 5));
                    }
                    out.push_str("Start_Command = open %IP%");
                }
            }
            out.push('\n');
        }
        out
    }
}

fn render_value(v: &Value, out: &mut String) {
    match v {
        Value::Sequence(steps) => {
            let items: Vec<String> = steps
                .iter()
                .map(|&(port, proto)| format!("{}{}", pick(PORTS, port), pick(PROTOS, proto)))
                .collect();
            out.push_str(&items.join(","));
        }
        Value::Number(i) => out.push_str(pick(NUMBERS, *i)),
        Value::Flags(flags) => {
            let items: Vec<String> = flags
                .iter()
                .map(|&(neg, f)| format!("{}{}", if neg { "!" } else { "" }, pick(FLAGS, f)))
                .collect();
            out.push_str(&items.join(","));
        }
        Value::Ip(i) => out.push_str(pick(IPS, *i)),
        Value::Word(i) => out.push_str(pick(WORDS, *i)),
        Value::Secret { len, fill } => {
            let bytes: Vec<u8> = (0..*len % 70).map(|i| fill.wrapping_mul(i)).collect();
            // Lower case and '=' padding are accepted too.
            let text = base32(&bytes);
            out.push_str(&if fill & 1 == 1 {
                text.to_ascii_lowercase()
            } else {
                text
            });
        }
        Value::Range(a, b) => out.push_str(&format!("{}-{}", 7000 + a % 64, 7000 + b % 64)),
        Value::Command(c) => out.push_str(&format!("/sbin/iptables -A INPUT -s %IP% {c}")),
        Value::Empty => {}
        Value::Raw(r) => out.push_str(r),
    }
}

/// RFC 4648 base32 with padding.
fn base32(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::new();
    for chunk in bytes.chunks(5) {
        let mut buf = [0u8; 5];
        buf[..chunk.len()].copy_from_slice(chunk);
        let v = buf.iter().fold(0u64, |v, &b| v << 8 | u64::from(b));
        let chars = (chunk.len() * 8).div_ceil(5);
        for i in 0..8 {
            if i < chars {
                out.push(ALPHABET[(v >> (35 - 5 * i) & 31) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The shaped target: a structure of real directives rendered as text.
pub fn check_shaped(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(shaped) = Shaped::arbitrary_take_rest(u) else {
        return;
    };
    if crate::debug() {
        eprintln!("{}", shaped.render());
    }
    check_text(shaped.render().as_bytes());
}
