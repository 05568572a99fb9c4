//! Structural errors and hostile input: one clean line naming the line, never a panic.

use super::*;

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
