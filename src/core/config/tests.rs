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

// ---- structural errors ---------------------------------------------------------

#[test]
fn directive_before_any_section() {
    assert_eq!(
        errors("Sequence = 1\nUseSyslog\n[d]\nsequence = 1\n"),
        [
            "k.conf:1: Sequence: directive outside any section (put it under [options] or a [door])",
            "k.conf:2: UseSyslog: directive outside any section (put it under [options] or a [door])",
        ]
    );
}

#[test]
fn empty_section_name_reports_once() {
    assert_eq!(
        errors("[]\nsequence = 1\ncommand = x\n[d]\nsequence = 1\n"),
        ["k.conf:1: empty section name '[]'"]
    );
    assert_eq!(errors("[  ]\n"), ["k.conf:1: empty section name '[]'"]);
}

#[test]
fn unclosed_section_header_reports_once() {
    assert_eq!(
        errors("[d\nsequence = 1\ntcpflags = syn\n"),
        ["k.conf:1: section header is missing its closing ']'"]
    );
}

#[test]
fn unknown_door_directive_and_misplaced_option() {
    assert_eq!(
        door_error("Sequense = 1"),
        "k.conf:3: Sequense: unknown door directive"
    );
    assert_eq!(
        door_error("bogus"),
        "k.conf:3: bogus: unknown door directive"
    );
    assert_eq!(
        door_error("LogFile = /tmp/x"),
        "k.conf:3: LogFile: is a global option; move it to [options]"
    );
    assert_eq!(
        door_error("UseSyslog = yes"),
        "k.conf:3: UseSyslog: is a global option; move it to [options]"
    );
}

#[test]
fn bare_use_syslog_in_a_door_works_with_a_warning() {
    // knockd 0.8 honours it anywhere; configs in the wild rely on that.
    let (c, w) = parse_ok("[d]\nsequence = 1\nUseSyslog\n");
    assert!(c.options.use_syslog);
    assert_eq!(w, ["warning: k.conf:3: UseSyslog belongs in [options]"]);
}

#[test]
fn missing_key() {
    assert_eq!(door_error("= 5"), "k.conf:3: no key before '='");
}

#[test]
fn sequence_and_one_time_sequences_are_exclusive() {
    assert_eq!(
        error("[d]\nsequence = 1\none_time_sequences = /etc/knockd/otp\n"),
        "k.conf:3: One_Time_Sequences: door [d] has both Sequence and One_Time_Sequences; use one"
    );
}

#[test]
fn every_error_of_a_file_is_reported_in_order() {
    let text = "\
UseSyslog
[options]
LogLevel = 3
[open]
sequence = 7000,abc
seq_timeout = soon
tcpflags = syn,bogus
target = nowhere
[]
[close]
command = /bin/true
[last]
sequence = 1:icmp
";
    assert_eq!(
        errors(text),
        [
            "k.conf:1: UseSyslog: directive outside any section (put it under [options] or a [door])",
            "k.conf:3: LogLevel: unknown option",
            "k.conf:5: sequence: port \"abc\" is not a number",
            "k.conf:6: seq_timeout: \"soon\" is not a number of seconds",
            "k.conf:7: tcpflags: unknown TCP flag \"bogus\" (expected fin, syn, rst, psh, ack or urg, optionally with !)",
            "k.conf:8: target: \"nowhere\" is not an IP address",
            "k.conf:9: empty section name '[]'",
            "k.conf:10: door [close] has no Sequence (or One_Time_Sequences, or Sequence_Secret)",
            "k.conf:13: sequence: unknown protocol \"icmp\" (expected tcp or udp)",
        ]
    );
}

#[test]
fn errors_stop_after_a_hundred() {
    let text = "junk line\n".repeat(500);
    let e = errors(&text);
    assert_eq!(e.len(), 101);
    assert_eq!(
        e[0],
        "k.conf:1: junk line: directive outside any section (put it under [options] or a [door])"
    );
    assert_eq!(
        e[100],
        "k.conf:100: too many errors, stopped reading after 100"
    );
}

// ---- hostile input ---------------------------------------------------------------

#[test]
fn empty_input_parses_with_a_warning() {
    for text in ["", "\n\n", "# only a comment\n", "[options]\nUseSyslog\n"] {
        let (c, w) = parse_ok(text);
        assert!(c.doors.is_empty());
        assert_eq!(
            w,
            ["warning: k.conf: no doors defined: nothing can be opened"]
        );
    }
}

#[test]
fn binary_input_gives_one_clean_line_per_problem() {
    let bytes = b"\x00\x01\x02\n\xff\xfe\xfd\n[d\x1b[31m]\nsequence = 1\r\x0b2\n";
    let diag = parse_reader(&bytes[..], Path::new(FILE)).expect_err("binary must fail");
    assert_eq!(
        lines(&diag.errors),
        [
            "k.conf:1: \\u{0}\\u{1}\\u{2}: directive outside any section (put it under [options] or a [door])",
            "k.conf:2: not valid UTF-8 text",
            "k.conf:4: sequence: port \"1\\r\\u{b}2\" is not a number",
        ]
    );
    for line in lines(&diag.errors) {
        assert!(!line.chars().any(char::is_control), "{line:?}");
    }
}

#[test]
fn huge_line_is_clipped_in_the_message() {
    let text = format!("[d]\nsequence = 1\n{}\n", "x".repeat(1_000_000));
    let e = error(&text);
    assert_eq!(
        e,
        format!("k.conf:3: {}...: unknown door directive", "x".repeat(60))
    );
}

#[test]
fn oversized_input_is_refused_not_read_whole() {
    use std::io::Read;
    let endless = std::io::repeat(b'#').take(17 << 20);
    let diag = parse_reader(endless, Path::new(FILE)).expect_err("17 MiB must fail");
    assert_eq!(
        lines(&diag.errors),
        ["k.conf:1: file is larger than 16 MiB; is this the right file?"]
    );
    // Exactly at the cap is still read.
    let at_cap = std::io::repeat(b'#').take(16 << 20);
    assert!(parse_reader(at_cap, Path::new(FILE)).is_ok());
}

#[test]
fn one_time_sequences_without_a_path() {
    assert_eq!(
        error("[d]\nOne_Time_Sequences =\n"),
        "k.conf:2: One_Time_Sequences: empty value"
    );
}

// ---- real configs ----------------------------------------------------------------------

/// Debian's /etc/knockd.conf (package knockd 0.8-2), as shipped.
const DEBIAN_KNOCKD_CONF: &str = "\
[options]
\tUseSyslog

[openSSH]
\tsequence    = 7000,8000,9000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn

[closeSSH]
\tsequence    = 9000,8000,7000
\tseq_timeout = 5
\tcommand     = /sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT
\ttcpflags    = syn

[openHTTPS]
\tsequence    = 12345,54321,24680,13579
\tseq_timeout = 5
\tcommand     = /usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%
\ttcpflags    = syn
";

#[test]
fn debian_knockd_conf() {
    let (c, w) = parse_ok(DEBIAN_KNOCKD_CONF);
    assert!(w.is_empty(), "{w:?}");
    assert!(c.options.use_syslog);
    assert_eq!(c.options.log_file, None);
    let syn = rule(TcpFlags::SYN, TcpFlags(0));
    let tcp = |ports: &[u16]| ports.iter().map(|&p| (p, Proto::Tcp)).collect::<Vec<_>>();

    let names: Vec<&str> = c.doors.iter().map(|d| d.name.as_str()).collect();
    assert_eq!(names, ["openSSH", "closeSSH", "openHTTPS"]);
    let [open, close, https] = &c.doors[..] else {
        panic!("three doors");
    };
    assert_eq!(open.line, 4);
    assert_eq!(steps(open.sequence.current()), tcp(&[7000, 8000, 9000]));
    assert_eq!(open.seq_timeout, Duration::from_secs(5));
    assert_eq!(open.tcp_flags, syn);
    assert_eq!(
        open.start_command_for(false),
        Some("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(open.start_command_for(true), open.start_command_for(false));
    assert_eq!(open.stop_command, None);
    assert_eq!(open.cmd_timeout, Duration::from_secs(10));

    assert_eq!(steps(close.sequence.current()), tcp(&[9000, 8000, 7000]));
    assert_eq!(
        close.start_command.as_deref(),
        Some("/sbin/iptables -D INPUT -s %IP% -p tcp --dport 22 -j ACCEPT")
    );
    assert_eq!(close.tcp_flags, syn);

    assert_eq!(
        steps(https.sequence.current()),
        tcp(&[12345, 54321, 24680, 13579])
    );
    assert_eq!(
        https.start_command.as_deref(),
        Some("/usr/local/sbin/knock_add -i -c INPUT -p tcp -d 443 -f %IP%")
    );
    assert_eq!(
        lines(&c.doors.iter().map(Door::summary).collect::<Vec<_>>()),
        [
            "[openSSH] sequence 7000:tcp,8000:tcp,9000:tcp, seq_timeout 5s, tcpflags syn, commands: start",
            "[closeSSH] sequence 9000:tcp,8000:tcp,7000:tcp, seq_timeout 5s, tcpflags syn, commands: start",
            "[openHTTPS] sequence 12345:tcp,54321:tcp,24680:tcp,13579:tcp, seq_timeout 5s, tcpflags syn, commands: start",
        ]
    );
}

#[test]
fn man_page_example_1_open_and_close() {
    let c = config(
        "[options]
\tlogfile = /var/log/knockd.log

[openSSH]
\tsequence    = 7000,8000,9000
\tseq_timeout = 10
\ttcpflags    = syn
\tcommand     = /usr/sbin/iptables -A INPUT -s %IP% --dport 22 -j ACCEPT

[closeSSH]
\tsequence    = 9000,8000,7000
\tseq_timeout = 10
\ttcpflags    = syn
\tcommand     = /usr/sbin/iptables -D INPUT -s %IP% --dport 22 -j ACCEPT
",
    );
    assert_eq!(c.options.log_file, Some("/var/log/knockd.log".into()));
    assert!(!c.options.use_syslog);
    assert_eq!(c.doors.len(), 2);
    assert_eq!(c.doors[0].name, "openSSH");
    assert_eq!(
        c.doors[0].sequence.current().expect("fixed").to_string(),
        "7000:tcp,8000:tcp,9000:tcp"
    );
    assert_eq!(c.doors[0].seq_timeout, Duration::from_secs(10));
    assert_eq!(
        c.doors[0].start_command.as_deref(),
        Some("/usr/sbin/iptables -A INPUT -s %IP% --dport 22 -j ACCEPT")
    );
    assert_eq!(c.doors[1].name, "closeSSH");
    assert_eq!(
        c.doors[1].sequence.current().expect("fixed").to_string(),
        "9000:tcp,8000:tcp,7000:tcp"
    );
    assert_eq!(
        c.doors[1].start_command.as_deref(),
        Some("/usr/sbin/iptables -D INPUT -s %IP% --dport 22 -j ACCEPT")
    );
    for d in &c.doors {
        assert_eq!(d.tcp_flags, rule(TcpFlags::SYN, TcpFlags(0)));
        assert_eq!(d.stop_command, None);
    }
}

#[test]
fn man_page_example_2_open_close_with_timeout() {
    let d = door(
        "[options]
\tlogfile = /var/log/knockd.log

[opencloseSSH]
\tsequence      = 2222:udp,3333:tcp,4444:udp
\tseq_timeout   = 15
\ttcpflags      = syn,ack
\tstart_command = /usr/sbin/iptables -A INPUT -s %IP% -p tcp --syn -j ACCEPT
\tcmd_timeout   = 5
\tstop_command  = /usr/sbin/iptables -D INPUT -s %IP% -p tcp --syn -j ACCEPT
",
    );
    assert_eq!(d.name, "opencloseSSH");
    assert_eq!(
        steps(d.sequence.current()),
        [(2222, Proto::Udp), (3333, Proto::Tcp), (4444, Proto::Udp)]
    );
    assert_eq!(d.seq_timeout, Duration::from_secs(15));
    assert_eq!(
        d.tcp_flags,
        rule(TcpFlags::SYN | TcpFlags::ACK, TcpFlags(0))
    );
    assert_eq!(d.cmd_timeout, Duration::from_secs(5));
    assert_eq!(
        d.start_command_for(true),
        Some("/usr/sbin/iptables -A INPUT -s %IP% -p tcp --syn -j ACCEPT")
    );
    assert_eq!(
        d.stop_command_for(false),
        Some("/usr/sbin/iptables -D INPUT -s %IP% -p tcp --syn -j ACCEPT")
    );
    assert_eq!(
        d.summary(),
        "[opencloseSSH] sequence 2222:udp,3333:tcp,4444:udp, seq_timeout 15s, tcpflags syn,ack, \
         commands: start stop, cmd_timeout 5s"
    );
}

#[test]
fn summary_shows_target_empty_commands_and_reopen() {
    let d = door_with(
        "target = 10.0.0.9\ncommand = a\ncommand_6 =\nstop_command = b\nreopen = stack\ncmd_timeout = 2.5",
    );
    assert_eq!(
        d.summary(),
        "[d] sequence 7000:tcp, seq_timeout 25s, tcpflags any, target 10.0.0.9, \
         commands: start start_6=none stop, cmd_timeout 2.5s, reopen stack"
    );
    assert_eq!(
        door_with("").summary(),
        "[d] sequence 7000:tcp, seq_timeout 25s, tcpflags any, no commands"
    );
}

// ---- hostile input ---------------------------------------------------------

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]

    /// Any bytes at all give a config or errors, never a panic; and every
    /// error is one line naming the file.
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..512)) {
        if let Err(d) = super::parse_reader(&bytes[..], std::path::Path::new("fuzz.conf")) {
            for e in d.errors {
                let line = e.to_string();
                proptest::prop_assert!(line.starts_with("fuzz.conf"));
                proptest::prop_assert!(!line.contains('\n'));
            }
        }
    }

    /// Config-shaped text with random keys, values and sections likewise.
    #[test]
    fn config_shaped_text_never_panics(
        lines in proptest::collection::vec(
            proptest::prop_oneof![
                "\\[[a-zA-Z ]{0,8}\\]?",
                "[a-zA-Z_]{0,14} *= *[0-9a-z:,!. %-]{0,40}",
                "[ \t#]*[a-zA-Z_]{0,10}",
            ],
            0..30,
        )
    ) {
        let text = lines.join("\n");
        let _ = super::parse_str(&text, std::path::Path::new("fuzz.conf"));
    }
}

#[test]
fn too_many_doors() {
    let text: String = (0..=MAX_DOORS)
        .map(|i| format!("[d{i}]\nsequence = 1\n"))
        .collect();
    let d = parse_str(&text, Path::new("k.conf")).expect_err("rejected");
    assert_eq!(
        d.errors.iter().map(ToString::to_string).collect::<Vec<_>>(),
        vec![format!(
            "k.conf: {} doors; at most {MAX_DOORS} are allowed",
            MAX_DOORS + 1
        )]
    );
}

// ---- rotating sequences ------------------------------------------------------

const SECRET: &str = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ";

#[test]
fn rotating_door_with_defaults_and_every_directive() {
    let d = door(&format!(
        "[ssh]\nSequence_Secret = {SECRET}\nSequence_Ports = 10000-10999\nSequence_Length = 5\n"
    ));
    let SequenceSource::Rotating { secret, rotation } = &d.sequence else {
        panic!("not rotating: {:?}", d.sequence);
    };
    assert_eq!(
        secret.secret().map(|s| s.to_base32()),
        Some(SECRET.to_string())
    );
    assert_eq!(
        (
            rotation.first,
            rotation.last,
            rotation.length,
            rotation.period,
            rotation.skew
        ),
        (10000, 10999, 5, 30, 1)
    );
    assert_eq!(rotation.protocols, vec![Proto::Tcp]);
    assert_eq!(
        d.sequence.current(),
        None,
        "the service derives its sequences"
    );
    assert_eq!(
        d.summary(),
        "[ssh] sequence rotating (5 ports from 10000-10999, tcp, every 30s, skew 1, secret inline), \
         seq_timeout 25s, tcpflags any, no commands"
    );
    let d = door(
        "[ssh]\nsequence_secret_file = /etc/knockd/ssh.key\nsequence_ports = 7000-7010\n\
         sequence_length = 3\nsequence_protocols = tcp,UDP,tcp\nsequence_period = 60\n\
         sequence_skew = 0\n",
    );
    let SequenceSource::Rotating { secret, rotation } = &d.sequence else {
        panic!("not rotating");
    };
    assert!(matches!(
        secret,
        SecretSource::File {
            line: 2,
            secret: None,
            ..
        }
    ));
    assert_eq!(rotation.protocols, vec![Proto::Tcp, Proto::Udp, Proto::Tcp]);
    assert_eq!((rotation.period, rotation.skew), (60, 0));
    assert!(
        d.summary().contains("secret from /etc/knockd/ssh.key"),
        "{}",
        d.summary()
    );
}

#[test]
fn rotating_door_errors_name_their_line() {
    let base = format!("[ssh]\nSequence_Secret = {SECRET}\nSequence_Ports = 10000-10999\n");
    assert_eq!(
        error(&format!("{base}Sequence_Length = 0\n")),
        "k.conf:4: Sequence_Length: \"0\" is not a whole number from 1 to 32"
    );
    assert_eq!(
        error(&format!("{base}Sequence_Length = 5\nSequence_Skew = 9\n")),
        "k.conf:5: Sequence_Skew: \"9\" is not a whole number from 0 to 3"
    );
    assert_eq!(
        error(&format!(
            "{base}Sequence_Length = 5\nSequence_Protocols = tcp,icmp\n"
        )),
        "k.conf:5: Sequence_Protocols: unknown protocol \"icmp\" (expected tcp or udp)"
    );
    assert_eq!(
        error(&format!(
            "{base}Sequence_Length = 5\nSequence_Protocols = tcp,udp\n"
        )),
        "k.conf:2: Sequence_Protocols names 2 protocols for 5 steps (give one, or one per step)"
    );
    assert_eq!(
        error("[ssh]\nSequence_Secret = abc\nSequence_Ports = 1-9\nSequence_Length = 2\n"),
        "k.conf:2: Sequence_Secret: not base32 (letters A-Z and digits 2-7)"
    );
    assert_eq!(
        error("[ssh]\nSequence_Secret = GEZDGNBV\nSequence_Ports = 1-9\nSequence_Length = 2\n"),
        "k.conf:2: Sequence_Secret: 5 bytes is too short (at least 16); make one with knock --gen-secret"
    );
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence_Secret = {SECRET}\nSequence_Ports = 9-1\nSequence_Length = 2\n"
        )),
        "k.conf:3: Sequence_Ports: \"9-1\": the first port is above the last"
    );
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence_Secret = {SECRET}\nSequence_Ports = 1-3\nSequence_Length = 4\n"
        )),
        "k.conf:2: Sequence_Length 4 is more than the 3 ports of Sequence_Ports (no port repeats)"
    );
    assert_eq!(
        error("[ssh]\nSequence_Ports = 1-9\nSequence_Length = 2\n"),
        "k.conf:2: door [ssh] has Sequence_* directives but no Sequence_Secret or Sequence_Secret_File"
    );
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence_Secret = {SECRET}\nSequence_Length = 2\n"
        )),
        "k.conf:2: door [ssh] has no Sequence_Ports (FIRST-LAST)"
    );
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence_Secret = {SECRET}\nSequence_Secret_File = /k\nSequence_Ports = 1-9\nSequence_Length = 2\n"
        )),
        "k.conf:3: Sequence_Secret_File: a door has one Sequence_Secret or Sequence_Secret_File"
    );
}

/// A door has exactly one of Sequence, One_Time_Sequences or the rotating
/// directives.
#[test]
fn rotating_and_fixed_sequences_are_exclusive() {
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence = 7000\nSequence_Secret = {SECRET}\nSequence_Ports = 1-9\nSequence_Length = 2\n"
        )),
        "k.conf:3: door [ssh] has both Sequence and Sequence_* (a rotating sequence); use one"
    );
    assert_eq!(
        error(&format!(
            "[ssh]\nSequence_Length = 2\nOne_Time_Sequences = /x\nSequence_Secret = {SECRET}\nSequence_Ports = 1-9\n"
        )),
        "k.conf:2: door [ssh] has both One_Time_Sequences and Sequence_* (a rotating sequence); use one"
    );
}

// ---- directives knockd 0.8 does not have ------------------------------

#[test]
fn nft_sets_acls_and_cooldown_parse() {
    let d = door_with(
        "Nft_Set = inet filter knockd_ssh4\nnft_set_6 = inet filter knockd_ssh6\n\
         Allow = 198.51.100.0/24, 2001:db8::/32\nAllow = 203.0.113.7\n\
         Deny = 198.51.100.66\nCooldown = 30",
    );
    assert_eq!(
        d.nft_set.expect("v4 set").to_string(),
        "inet filter knockd_ssh4"
    );
    assert_eq!(
        d.nft_set_6.expect("v6 set").to_string(),
        "inet filter knockd_ssh6"
    );
    assert_eq!(
        lines(&d.allow),
        ["198.51.100.0/24", "2001:db8::/32", "203.0.113.7/32"],
        "Allow lines add up"
    );
    assert_eq!(lines(&d.deny), ["198.51.100.66/32"]);
    assert_eq!(d.cooldown, Some(Duration::from_secs(30)));
    let plain = door_with("");
    assert!(plain.nft_set.is_none() && plain.allow.is_empty() && plain.cooldown.is_none());
}

#[test]
fn bad_nft_sets_acls_and_cooldowns_name_their_line() {
    assert_eq!(
        door_error("Nft_Set = inet filter"),
        "k.conf:3: Nft_Set: \"inet filter\" is not FAMILY TABLE SET (e.g. inet filter knockd_ssh)"
    );
    assert_eq!(
        door_error("Nft_Set_6 = ip filter s"),
        "k.conf:3: Nft_Set_6: family \"ip\" cannot hold IPv6 addresses (expected ip6, inet, bridge, netdev)"
    );
    assert_eq!(
        door_error("Allow = 198.51.100.0/33"),
        "k.conf:3: Allow: \"198.51.100.0/33\": the prefix must be 0 to 32"
    );
    assert_eq!(
        door_error("Deny = example.org"),
        "k.conf:3: Deny: \"example.org\" is not an address or an address/prefix"
    );
    assert_eq!(door_error("Allow = ,"), "k.conf:3: Allow: no address range");
    assert_eq!(
        door_error("Cooldown = soon"),
        "k.conf:3: Cooldown: \"soon\" is not a number of seconds"
    );
}

#[test]
fn unknown_command_tokens_are_warned_about_known_ones_are_not() {
    let (_, warnings) = parse_ok(
        "[d]\nsequence = 7000\ncommand = ipset add %SET% %IP% timeout %TIMEOUT%\n\
         stop_command = logger %DOOR% %DST% %PROTO% %FAMILY% 100%\n",
    );
    assert_eq!(
        warnings,
        ["warning: k.conf:3: command: unknown token %SET% stays as it is (known: %IP% %DOOR% %DST% %PROTO% %TIMEOUT% %FAMILY%)"]
    );
}

#[test]
fn include_is_an_option_and_silences_the_no_doors_warning() {
    let (c, warnings) =
        parse_ok("[options]\nInclude = /etc/knockd.d/*.conf\ninclude = more.conf\n");
    assert_eq!(
        c.options.include,
        [
            ("/etc/knockd.d/*.conf".to_string(), 2),
            ("more.conf".to_string(), 3)
        ]
    );
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert_eq!(c.options.section_line, Some(1));
}
