//! Directives knockd 0.8 does not have: rotating sequences, nft sets, ACLs, cool-down, tokens.

use super::*;

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

/// Issue 19 row 10: 10 ports, one step, skew 3 passed silently, and a
/// 10-port scan opened it.
#[test]
fn weak_rotating_doors_are_warned_about_with_their_search_space() {
    let weak = |ports: &str, length: u8, skew: u8| {
        parse_ok(&format!(
            "[ssh]\nSequence_Secret = {SECRET}\nSequence_Ports = {ports}\n\
             Sequence_Length = {length}\nSequence_Skew = {skew}\n"
        ))
        .1
    };
    assert_eq!(
        weak("7000-7009", 1, 3),
        [
            "warning: k.conf:1: door [ssh]: weak rotating sequence: 10 ports taken 1 at a \
          time give 10 sequences, 7 accepted at once (Sequence_Skew 3): about 2 tries per \
          opening (under 2^32); raise Sequence_Length (each step multiplies the sequences \
          by about the number of ports)"
        ]
    );
    // 1000 * 999 * 998 / 3 = 332,334,000: still under 2^32.
    assert_eq!(weak("10000-10999", 3, 1).len(), 1);
    assert!(
        weak("10000-10999", 3, 1)[0].contains(
            "1000 ports taken 3 at a time give 997002000 sequences, 3 accepted at once \
             (Sequence_Skew 1): about 332334000 tries"
        ),
        "{:?}",
        weak("10000-10999", 3, 1)
    );
    // The README's door: 1000 ports, 5 steps, skew 1 (3.3e14): quiet.
    assert_eq!(weak("10000-10999", 5, 1), Vec::<String>::new());
    // The edge: 65535 * 65534 is just under 2^32; 65535 * 65534 * 65533
    // over 7 periods is far above.
    assert_eq!(weak("1-65535", 2, 0).len(), 1);
    assert_eq!(weak("1-65535", 3, 3), Vec::<String>::new());
    // 32 steps of 65535 ports never overflows the count.
    assert_eq!(weak("1-65535", 32, 3), Vec::<String>::new());
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
        "k.conf:2: door [ssh] has Sequence_* directives but no Sequence_Secret, Sequence_Secret_File or Sequence_Secret_Dir"
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
        "k.conf:3: Sequence_Secret_File: a door has one Sequence_Secret, Sequence_Secret_File or Sequence_Secret_Dir"
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
        ["warning: k.conf:3: command: unknown token %SET% stays as it is (known: %IP% %DOOR% %DST% %PROTO% %TIMEOUT% %FAMILY% %USER%)"]
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

#[test]
fn user_token_is_warned_about_at_doors_without_users() {
    let (_, warnings) = parse_ok("[d]\nsequence = 7000\ncommand = logger %USER% %IP%\n");
    assert_eq!(
        warnings,
        ["warning: k.conf:1: door [d]: %USER% is always empty here: the door has no users (Sequence_Secret_Dir)"]
    );
    let (c, warnings) = parse_ok(
        "[d]\nsequence_secret_dir = /etc/knockd/ssh.users\nsequence_ports = 10000-60000\n\
         sequence_length = 5\ncommand = logger %USER% %IP%\n",
    );
    assert!(warnings.is_empty(), "{warnings:#?}");
    assert!(matches!(
        &c.doors[0].sequence,
        SequenceSource::Rotating {
            secret: SecretSource::Dir {
                line: 2,
                users: None,
                ..
            },
            ..
        }
    ));
}

#[test]
fn a_door_has_one_secret_source() {
    let conf = "[d]\nsequence_secret_file = /k\nsequence_secret_dir = /u\n\
                sequence_ports = 10000-60000\nsequence_length = 5\ncommand = x\n";
    let e = parse_str(conf, Path::new("k.conf")).unwrap_err();
    assert_eq!(
        e.errors[0].to_string(),
        "k.conf:3: sequence_secret_dir: a door has one Sequence_Secret, Sequence_Secret_File or Sequence_Secret_Dir"
    );
}
