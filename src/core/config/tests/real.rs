//! Real configs (knockd 0.8 samples, the seeds) and more hostile input.

use super::*;

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
