//! Parser tests: every directive and alias, every default, every error with
//! its exact one-line message, and real configs (Debian's, the man page's).
//!
//! Messages are asserted whole: they are the interface to the admin, and a
//! test that only checks "some error happened" cannot catch a wrong line.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;
use crate::core::knock::{Proto, TcpFlags};

mod errors;
mod extensions;
mod real;

const FILE: &str = "k.conf";

fn parse_ok(text: &str) -> (Config, Vec<String>) {
    match parse_str(text, Path::new(FILE)) {
        Ok((config, warnings)) => (config, warnings.iter().map(|w| w.to_string()).collect()),
        Err(d) => panic!("unexpected errors: {:#?}", lines(&d.errors)),
    }
}

fn config(text: &str) -> Config {
    parse_ok(text).0
}

/// The only door of `text`.
fn door(text: &str) -> Door {
    let mut c = config(text);
    assert_eq!(c.doors.len(), 1, "expected one door");
    c.doors.remove(0)
}

/// A door section with `body` after a valid sequence.
fn door_with(body: &str) -> Door {
    door(&format!("[d]\nsequence = 7000\n{body}\n"))
}

fn lines<T: ToString>(items: &[T]) -> Vec<String> {
    items.iter().map(|i| i.to_string()).collect()
}

fn errors(text: &str) -> Vec<String> {
    match parse_str(text, Path::new(FILE)) {
        Ok((c, _)) => panic!("parsed without error: {c:#?}"),
        Err(d) => lines(&d.errors),
    }
}

/// The single error of `text`.
fn error(text: &str) -> String {
    let mut e = errors(text);
    assert_eq!(e.len(), 1, "expected one error, got {e:#?}");
    e.remove(0)
}

/// The error for `body` on line 3 of a door section.
fn door_error(body: &str) -> String {
    error(&format!("[d]\nsequence = 7000\n{body}\n"))
}

/// The steps of a door's live sequence (a fixed one: always there).
fn steps(seq: Option<&Sequence>) -> Vec<(u16, Proto)> {
    let seq = seq.expect("a live sequence");
    seq.steps().iter().map(|s| (s.port, s.proto)).collect()
}

fn rule(set: TcpFlags, clear: TcpFlags) -> FlagRule {
    FlagRule { set, clear }
}

// ---- defaults ----------------------------------------------------------

#[test]
fn door_defaults_are_knockds() {
    let d = door("[d]\nsequence = 7000\n");
    assert_eq!(d.name, "d");
    assert_eq!(d.line, 1);
    assert_eq!(d.seq_timeout, Duration::from_secs(25));
    assert_eq!(d.cmd_timeout, Duration::from_secs(10));
    assert_eq!(d.tcp_flags, FlagRule::default());
    assert!(d.tcp_flags.is_any());
    assert_eq!(d.start_command, None);
    assert_eq!(d.start_command_6, None);
    assert_eq!(d.stop_command, None);
    assert_eq!(d.stop_command_6, None);
    assert_eq!(d.target, None);
    assert_eq!(d.reopen, Reopen::Extend);
    assert_eq!(
        d,
        Door {
            line: 1,
            ..Door::new("d", d.sequence.current().expect("fixed").clone())
        }
    );
}

#[test]
fn option_defaults() {
    let c = config("[d]\nsequence = 7000\n");
    assert_eq!(c.options, Options::default());
    assert!(!c.options.use_syslog);
    assert_eq!(c.options.log_file, None);
    assert_eq!(c.options.pid_file, None);
    assert!(c.options.interfaces.is_empty());
    assert_eq!(c.options.max_attempts, 1 << 19);
    assert_eq!(c.options.state_file, None);
    assert_eq!(c.options.log_rate, 50);
}

// ---- options -------------------------------------------------------------

#[test]
fn log_format_text_or_json_and_a_bad_value_names_its_line() {
    use crate::core::config::LogFormat;
    assert_eq!(
        config("[d]\nsequence=1\n").options.log_format,
        LogFormat::Text
    );
    for (value, want) in [
        ("json", LogFormat::Json),
        ("JSON", LogFormat::Json),
        ("text", LogFormat::Text),
    ] {
        let text = format!("[options]\nLogFormat = {value}\n[d]\nsequence=1\n");
        assert_eq!(config(&text).options.log_format, want, "{value}");
    }
    assert_eq!(
        error("[options]\nLogFormat = xml\n[d]\nsequence=1\n"),
        "k.conf:2: LogFormat: \"xml\" is not a log format (text or json)"
    );
    assert_eq!(
        error("[options]\nLogFormat\n[d]\nsequence=1\n"),
        "k.conf:2: LogFormat: needs a value (LogFormat = ...)"
    );
    assert_eq!(
        error("[d]\nsequence=1\nLogFormat = json\n"),
        "k.conf:3: LogFormat: is a global option; move it to [options]"
    );
}

#[test]
fn use_syslog_bare_and_with_a_value() {
    assert!(
        config("[options]\nUseSyslog\n[d]\nsequence=1\n")
            .options
            .use_syslog
    );
    assert!(
        config("[options]\nusesyslog\n[d]\nsequence=1\n")
            .options
            .use_syslog
    );
    for yes in ["yes", "YES", "true", "on", "1"] {
        let text = format!("[options]\nUseSyslog = {yes}\n[d]\nsequence=1\n");
        assert!(config(&text).options.use_syslog, "{yes}");
    }
    for no in ["no", "No", "false", "off", "0"] {
        let text = format!("[options]\nUseSyslog\nUseSyslog = {no}\n[d]\nsequence=1\n");
        assert!(!config(&text).options.use_syslog, "{no}");
    }
    assert_eq!(
        error("[options]\nUseSyslog = maybe\n[d]\nsequence=1\n"),
        "k.conf:2: UseSyslog: takes no value (or yes/no)"
    );
}

#[test]
fn path_options() {
    let c = config(
        "[options]\nLogFile = /var/log/knockd.log\nPIDFILE = /run/k.pid\nstatefile=/var/lib/k/state\n[d]\nsequence=1\n",
    );
    assert_eq!(
        c.options.log_file,
        Some(PathBuf::from("/var/log/knockd.log"))
    );
    assert_eq!(c.options.pid_file, Some(PathBuf::from("/run/k.pid")));
    assert_eq!(
        c.options.state_file,
        Some(PathBuf::from("/var/lib/k/state"))
    );
}

#[test]
fn interface_is_a_list() {
    let one = config("[options]\nInterface = eth1\n[d]\nsequence=1\n");
    assert_eq!(one.options.interfaces, ["eth1"]);
    let many = config("[options]\ninterface = lo, eth0 ,wlan0\n[d]\nsequence=1\n");
    assert_eq!(many.options.interfaces, ["lo", "eth0", "wlan0"]);
    assert_eq!(
        error("[options]\nInterface = lo,,eth0\n[d]\nsequence=1\n"),
        "k.conf:2: Interface: empty interface name in the list"
    );
}

#[test]
fn max_attempts() {
    let c = config("[options]\nMaxAttempts = 1000\n[d]\nsequence=1\n");
    assert_eq!(c.options.max_attempts, 1000);
    let c = config("[options]\nmaxattempts = 16777216\n[d]\nsequence=1\n");
    assert_eq!(c.options.max_attempts, 1 << 24);
    for bad in ["0", "-1", "many", "16777217", "1.5"] {
        assert_eq!(
            error(&format!(
                "[options]\nMaxAttempts = {bad}\n[d]\nsequence=1\n"
            )),
            format!("k.conf:2: MaxAttempts: \"{bad}\" is not a whole number from 1 to 16777216")
        );
    }
}

#[test]
fn log_rate() {
    let c = config("[options]\nLogRate = 5\n[d]\nsequence=1\n");
    assert_eq!(c.options.log_rate, 5);
    let c = config("[options]\nlograte = 0\n[d]\nsequence=1\n");
    assert_eq!(c.options.log_rate, 0);
    for bad in ["-1", "fast", "1.5", "1000001"] {
        assert_eq!(
            error(&format!("[options]\nLogRate = {bad}\n[d]\nsequence=1\n")),
            format!(
                "k.conf:2: LogRate: \"{bad}\" is not a whole number of lines per second (0: no limit)"
            )
        );
    }
}

#[test]
fn options_need_values() {
    assert_eq!(
        error("[options]\nLogFile\n[d]\nsequence=1\n"),
        "k.conf:2: LogFile: needs a value (LogFile = ...)"
    );
    assert_eq!(
        error("[options]\nPidFile =\n[d]\nsequence=1\n"),
        "k.conf:2: PidFile: empty value"
    );
}

#[test]
fn unknown_option_and_door_directive_in_options() {
    assert_eq!(
        error("[options]\nLogLevel = debug\n[d]\nsequence=1\n"),
        "k.conf:2: LogLevel: unknown option"
    );
    assert_eq!(
        error("[options]\nSequence = 1,2\n[d]\nsequence=1\n"),
        "k.conf:2: Sequence: is a door directive; it cannot be used in [options]"
    );
}

#[test]
fn options_section_name_ignores_case_and_merges() {
    let (c, w) = parse_ok("[Options]\nLogFile = /a\n[d]\nsequence=1\n[OPTIONS]\nPidFile = /b\n");
    assert_eq!(c.options.log_file, Some("/a".into()));
    assert_eq!(c.options.pid_file, Some("/b".into()));
    assert_eq!(c.doors.len(), 1);
    assert_eq!(
        w,
        ["warning: k.conf:5: second [options] section; its settings are merged"]
    );
}

// ---- door directives ---------------------------------------------------------

#[test]
fn sequence_protocols_spaces_and_case() {
    let d = door("[d]\nSequence = 7000, 8000:UDP ,9000:tcp, 10000:Udp\n");
    assert_eq!(
        steps(d.sequence.current()),
        [
            (7000, Proto::Tcp),
            (8000, Proto::Udp),
            (9000, Proto::Tcp),
            (10000, Proto::Udp)
        ]
    );
    assert!(matches!(d.sequence, SequenceSource::Fixed(_)));
}

#[test]
fn sequence_limits() {
    let d = door("[d]\nsequence = 1,65535:udp\n");
    assert_eq!(
        steps(d.sequence.current()),
        [(1, Proto::Tcp), (65535, Proto::Udp)]
    );
    let ports: Vec<String> = (1..=32).map(|p| (1000 + p).to_string()).collect();
    let d = door(&format!("[d]\nsequence = {}\n", ports.join(",")));
    assert_eq!(d.sequence.current().expect("fixed").len(), 32);
}

#[test]
fn sequence_errors() {
    let cases = [
        ("7000,abc", "port \"abc\" is not a number"),
        ("7000,-1", "port \"-1\" is not a number"),
        ("0", "port 0 is out of range (1-65535)"),
        ("7000,65536", "port 65536 is out of range (1-65535)"),
        ("70000", "port 70000 is out of range (1-65535)"),
        (
            "7000:icmp",
            "unknown protocol \"icmp\" (expected tcp or udp)",
        ),
        ("7000:", "unknown protocol \"\" (expected tcp or udp)"),
        (
            "7000,,8000",
            "empty port (two commas in a row, or a trailing comma?)",
        ),
        (
            "7000,",
            "empty port (two commas in a row, or a trailing comma?)",
        ),
        ("", "empty value"),
    ];
    for (value, message) in cases {
        assert_eq!(
            error(&format!("[d]\nSequence = {value}\n")),
            format!("k.conf:2: Sequence: {message}"),
            "{value}"
        );
    }
    let ports = vec!["7000"; 33].join(",");
    assert_eq!(
        error(&format!("[d]\nsequence = {ports}\n")),
        "k.conf:2: sequence: 33 ports in the sequence; at most 32 are allowed"
    );
}

#[test]
fn sequence_repeated_last_wins_with_a_warning() {
    let (c, w) = parse_ok("[d]\nsequence = 1\nsequence = 2,3\n");
    assert_eq!(
        steps(c.doors[0].sequence.current()),
        [(2, Proto::Tcp), (3, Proto::Tcp)]
    );
    assert_eq!(
        w,
        ["warning: k.conf:3: sequence set again in this door; the last one wins"]
    );
}

#[test]
fn door_without_sequence() {
    assert_eq!(
        error("[options]\nUseSyslog\n\n[lonely]\ncommand = /bin/true\n"),
        "k.conf:4: door [lonely] has no Sequence (or One_Time_Sequences, or Sequence_Secret)"
    );
    // The last door, and one followed by another section, are both checked.
    assert_eq!(
        errors("[a]\n[b]\nsequence = 1\n[c]\n"),
        [
            "k.conf:1: door [a] has no Sequence (or One_Time_Sequences, or Sequence_Secret)",
            "k.conf:4: door [c] has no Sequence (or One_Time_Sequences, or Sequence_Secret)",
        ]
    );
}

#[test]
fn seq_timeout_and_its_alias() {
    assert_eq!(
        door_with("Seq_Timeout = 5").seq_timeout,
        Duration::from_secs(5)
    );
    assert_eq!(door_with("timeout = 7").seq_timeout, Duration::from_secs(7));
    assert_eq!(
        door_with("SEQ_TIMEOUT = 0.5").seq_timeout,
        Duration::from_millis(500)
    );
    assert_eq!(door_with("seq_timeout = 0").seq_timeout, Duration::ZERO);
}

#[test]
fn zero_seq_timeout_warns_only_where_a_knock_needs_several_ports() {
    let warning = "warning: k.conf:1: door [d]: Seq_Timeout = 0 leaves no time between \
                   knocks, so a sequence of more than one port can never complete \
                   (knockd 0.8 allowed the rest of the current second)";
    let (_, w) = parse_ok("[d]\nsequence = 1,2\nseq_timeout = 0\n");
    assert_eq!(w, [warning]);
    let (_, w) = parse_ok("[d]\none_time_sequences = /etc/k.seq\nseq_timeout = 0\n");
    assert_eq!(w, [warning]);
    // One port: the knock is complete at once, so 0 is fine.
    let (_, w) = parse_ok("[d]\nsequence = 1\nseq_timeout = 0\n");
    assert_eq!(w, Vec::<String>::new());
    let (_, w) = parse_ok("[d]\nsequence = 1,2\nseq_timeout = 0.1\n");
    assert_eq!(w, Vec::<String>::new());
    // A rotating door of several steps too (a strong one: no other
    // warning).
    let rot = "[d]\nsequence_secret = GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ\n\
               sequence_ports = 10000-19999\nsequence_length = 4\nseq_timeout = 0\n";
    let (_, w) = parse_ok(rot);
    assert_eq!(w, [warning]);
}

#[test]
fn cmd_timeout() {
    assert_eq!(
        door_with("Cmd_Timeout = 30").cmd_timeout,
        Duration::from_secs(30)
    );
    assert_eq!(
        door_with("cmd_timeout=1.25").cmd_timeout,
        Duration::from_millis(1250)
    );
}

#[test]
fn timeout_errors() {
    for key in ["Seq_Timeout", "Timeout", "Cmd_Timeout"] {
        for bad in ["abc", "-5", "5s", "1e3", "1.2.3", ".", "10 20"] {
            assert_eq!(
                door_error(&format!("{key} = {bad}")),
                format!("k.conf:3: {key}: \"{bad}\" is not a number of seconds")
            );
        }
        assert_eq!(
            door_error(&format!("{key} = 2000000000")),
            format!("k.conf:3: {key}: 2000000000 seconds is too long (at most 1000000000)")
        );
        assert_eq!(
            door_error(&format!("{key} =")),
            format!("k.conf:3: {key}: empty value")
        );
        assert_eq!(
            door_error(key),
            format!("k.conf:3: {key}: needs a value ({key} = ...)")
        );
    }
}

#[test]
fn tcp_flags_set_negated_and_case() {
    assert_eq!(
        door_with("TCPFlags = syn").tcp_flags,
        rule(TcpFlags::SYN, TcpFlags(0))
    );
    assert_eq!(
        door_with("tcpflags = SYN, !Ack").tcp_flags,
        rule(TcpFlags::SYN, TcpFlags::ACK)
    );
    assert_eq!(
        door_with("TCPFlags = fin,syn,rst,psh,ack,urg").tcp_flags,
        rule(TcpFlags(0x3f), TcpFlags(0))
    );
    assert_eq!(
        door_with("TCPFlags = !fin,!syn,!rst,!psh,!ack,!urg").tcp_flags,
        rule(TcpFlags(0), TcpFlags(0x3f))
    );
    let d = door_with("TCPFlags = fin,!ack");
    assert_eq!(d.tcp_flags.to_string(), "fin,!ack");
    assert!(d.tcp_flags.matches(TcpFlags::FIN));
    assert!(!d.tcp_flags.matches(TcpFlags::FIN | TcpFlags::ACK));
    assert!(!d.tcp_flags.matches(TcpFlags::SYN));
}

#[test]
fn tcp_flags_accumulate_across_lines() {
    assert_eq!(
        door_with("TCPFlags = syn\nTCPFlags = !ack\ntcpflags = urg").tcp_flags,
        rule(TcpFlags::SYN | TcpFlags::URG, TcpFlags::ACK)
    );
}

#[test]
fn tcp_flags_errors() {
    let expected = "(expected fin, syn, rst, psh, ack or urg, optionally with !)";
    assert_eq!(
        door_error("TCPFlags = syn,foo"),
        format!("k.conf:3: TCPFlags: unknown TCP flag \"foo\" {expected}")
    );
    assert_eq!(
        door_error("TCPFlags = syn,"),
        format!("k.conf:3: TCPFlags: unknown TCP flag \"\" {expected}")
    );
    assert_eq!(
        door_error("TCPFlags = !"),
        format!("k.conf:3: TCPFlags: unknown TCP flag \"!\" {expected}")
    );
    assert_eq!(
        door_error("TCPFlags = syn|ack"),
        format!("k.conf:3: TCPFlags: unknown TCP flag \"syn|ack\" {expected}")
    );
    assert_eq!(
        door_error("TCPFlags = syn,!syn"),
        "k.conf:3: TCPFlags: flag syn is both required and forbidden"
    );
    assert_eq!(
        door_error("TCPFlags = syn,ack\nTCPFlags = !ack,!syn"),
        "k.conf:4: TCPFlags: flag syn, ack is both required and forbidden"
    );
}

#[test]
fn start_command_and_alias() {
    let d = door_with("Start_Command = /sbin/iptables -A INPUT -s %IP% -j ACCEPT");
    assert_eq!(
        d.start_command.as_deref(),
        Some("/sbin/iptables -A INPUT -s %IP% -j ACCEPT")
    );
    let d = door_with("command = echo a=b   ");
    assert_eq!(
        d.start_command.as_deref(),
        Some("echo a=b"),
        "split on the first '='"
    );
    assert_eq!(d.start_command_6, None);
}

#[test]
fn start_command_6_and_alias() {
    let d = door_with("Start_Command_6 = ip6tables -A INPUT -s %IP%");
    assert_eq!(
        d.start_command_6.as_deref(),
        Some("ip6tables -A INPUT -s %IP%")
    );
    assert_eq!(d.start_command, None);
    let d = door_with("COMMAND_6 = echo six");
    assert_eq!(d.start_command_6.as_deref(), Some("echo six"));
}

#[test]
fn stop_commands() {
    let d = door_with("Stop_Command = echo stop\nstop_command_6 = echo stop6");
    assert_eq!(d.stop_command.as_deref(), Some("echo stop"));
    assert_eq!(d.stop_command_6.as_deref(), Some("echo stop6"));
    assert_eq!(d.start_command, None);
}

#[test]
fn empty_commands_are_kept_and_bare_commands_are_errors() {
    let d = door_with("Start_Command_6 =\nStop_Command_6 =");
    assert_eq!(d.start_command_6.as_deref(), Some(""));
    assert_eq!(d.stop_command_6.as_deref(), Some(""));
    assert_eq!(
        door_error("Stop_Command"),
        "k.conf:3: Stop_Command: needs a value (Stop_Command = ...)"
    );
}

#[test]
fn command_repeated_last_wins_with_a_warning() {
    let (c, w) = parse_ok("[d]\nsequence=1\ncommand = a\nstart_command = b\n");
    assert_eq!(c.doors[0].start_command.as_deref(), Some("b"));
    assert_eq!(
        w,
        ["warning: k.conf:4: start_command set again in this door; the last one wins"]
    );
}

#[test]
fn command_fallback_rules() {
    // _6 unset: IPv6 knocks use the IPv4 command.
    let d = door_with("command = v4\nstop_command = stop4");
    assert_eq!(d.start_command_for(false), Some("v4"));
    assert_eq!(d.start_command_for(true), Some("v4"));
    assert_eq!(d.stop_command_for(false), Some("stop4"));
    assert_eq!(d.stop_command_for(true), Some("stop4"));

    // _6 set: each family its own.
    let d = door_with("command = v4\ncommand_6 = v6\nstop_command = s4\nstop_command_6 = s6");
    assert_eq!(d.start_command_for(false), Some("v4"));
    assert_eq!(d.start_command_for(true), Some("v6"));
    assert_eq!(d.stop_command_for(false), Some("s4"));
    assert_eq!(d.stop_command_for(true), Some("s6"));

    // _6 empty: nothing for IPv6, IPv4 unchanged.
    let d = door_with("command = v4\ncommand_6 =\nstop_command = s4\nstop_command_6 =");
    assert_eq!(d.start_command_for(false), Some("v4"));
    assert_eq!(d.start_command_for(true), None);
    assert_eq!(d.stop_command_for(false), Some("s4"));
    assert_eq!(d.stop_command_for(true), None);

    // Only _6: nothing for IPv4.
    let d = door_with("command_6 = v6");
    assert_eq!(d.start_command_for(false), None);
    assert_eq!(d.start_command_for(true), Some("v6"));

    // Empty IPv4 command, _6 unset: nothing either way.
    let d = door_with("command =");
    assert_eq!(d.start_command_for(false), None);
    assert_eq!(d.start_command_for(true), None);

    // Nothing set.
    let d = door_with("");
    assert_eq!(d.start_command_for(false), None);
    assert_eq!(d.stop_command_for(true), None);
}

#[test]
fn target_v4_and_v6() {
    assert_eq!(
        door_with("Target = 192.168.1.20").target,
        Some("192.168.1.20".parse::<IpAddr>().unwrap())
    );
    assert_eq!(
        door_with("target = 2001:db8::1").target,
        Some("2001:db8::1".parse::<IpAddr>().unwrap())
    );
    for bad in ["192.168.1.256", "host.example", "[::1]", "10.0.0.1/24"] {
        assert_eq!(
            door_error(&format!("Target = {bad}")),
            format!("k.conf:3: Target: \"{bad}\" is not an IP address")
        );
    }
}

#[test]
fn reopen() {
    assert_eq!(door_with("Reopen = extend").reopen, Reopen::Extend);
    assert_eq!(door_with("reopen = STACK").reopen, Reopen::Stack);
    assert_eq!(
        door_error("Reopen = twice"),
        "k.conf:3: Reopen: \"twice\" is not extend or stack"
    );
}

#[test]
fn keys_ignore_case() {
    let d = door(
        "[d]\nSEQUENCE = 1\nsEq_TiMeOuT = 3\ntcpFLAGS = syn\nSTART_command = a\nstart_COMMAND_6 = b\n\
         STOP_COMMAND = c\nstop_command_6 = d\nCMD_TIMEOUT = 4\nTARGET = 10.0.0.1\nREOPEN = stack\n",
    );
    assert_eq!(steps(d.sequence.current()), [(1, Proto::Tcp)]);
    assert_eq!(d.seq_timeout, Duration::from_secs(3));
    assert_eq!(d.tcp_flags, rule(TcpFlags::SYN, TcpFlags(0)));
    assert_eq!(d.start_command.as_deref(), Some("a"));
    assert_eq!(d.start_command_6.as_deref(), Some("b"));
    assert_eq!(d.stop_command.as_deref(), Some("c"));
    assert_eq!(d.stop_command_6.as_deref(), Some("d"));
    assert_eq!(d.cmd_timeout, Duration::from_secs(4));
    assert_eq!(d.target, Some("10.0.0.1".parse().unwrap()));
    assert_eq!(d.reopen, Reopen::Stack);
}

#[test]
fn lines_comments_and_whitespace() {
    let c = config(
        "# comment\n\n   # indented comment\n\t[options]  \r\n\tUseSyslog\r\n  [ spaced ]\n  sequence   =   1   \n",
    );
    assert!(c.options.use_syslog);
    assert_eq!(c.doors[0].name, "spaced");
    assert_eq!(c.doors[0].line, 6);
}

#[test]
fn byte_order_mark_is_ignored() {
    let c = config("\u{feff}[options]\nUseSyslog\n[d]\nsequence = 1\n");
    assert!(c.options.use_syslog);
    assert_eq!(c.doors.len(), 1);
}

#[test]
fn doors_keep_file_order_and_duplicate_names_warn() {
    let (c, w) = parse_ok("[b]\nsequence=1\n[a]\nsequence=2\n[b]\nsequence=3\n");
    let names: Vec<&str> = c.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["b", "a", "b"]);
    assert_eq!(
        w,
        ["warning: k.conf: door name [b] is used more than once; log lines will not tell them apart"]
    );
}
