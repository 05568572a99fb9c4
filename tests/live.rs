//! Privileged end-to-end tests: the real daemon capturing real packets.
//!
//! Every test needs root (live capture, packet injection, network
//! namespaces) and is `#[ignore]`d, so a normal `cargo test` lists them as
//! ignored; `make test` as root (CI) runs them with `--include-ignored`.
//! Run as a normal user with `--include-ignored`, each fails at once saying
//! it needs root.
//!
//! Tests run in parallel. Those on `lo` share the interface, so each uses
//! its own door ports (all below the ephemeral range, so no reply packet
//! can hit another test's door) and its own spoofed sources; those in
//! namespaces get namespaces named after the test and this process. Each
//! test writes its config into a private directory, with commands that
//! create marker files named after `%IP%`, so a test sees that the command
//! really ran, for whom.
//!
//! Negative checks ("this packet did nothing") are made after a later
//! knock on the same interface has been logged: capture keeps order, so by
//! then every earlier packet has been judged.

mod support;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use support::{
    actions, files_with_prefix, knock, require_knock_client, require_root, test_dir, Daemon, Flags,
    Injector, VethPair, CLI_V4, CLI_V6, SRV_IF, SRV_V4, SRV_V6, WAIT,
};

/// `dir` as text for configs and expected log lines.
fn d(dir: &Path) -> String {
    dir.to_str().expect("utf-8 temp dir").to_string()
}

/// Owned strings from literals, for comparing with the log.
fn lines(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

/// The log's startup and shutdown lines around the actions: the first
/// message names the interface, the last two are the capture statistics
/// (no kernel drops) and `shutting down`.
fn assert_lifecycle(msgs: &[String], iface: &str) {
    assert_eq!(
        msgs.first().map(String::as_str),
        Some(format!("starting up, listening on {iface}").as_str()),
        "{msgs:#?}"
    );
    let stats = &msgs[msgs.len() - 2];
    assert!(
        stats.starts_with(&format!("{iface}: "))
            && stats.contains(" packets received, 0 dropped by the kernel, "),
        "{msgs:#?}"
    );
}

// ---------------------------------------------------------------------------
// 1. Loopback, knocked by Debian's knock client.

#[test]
#[ignore = "needs root: live capture on lo"]
fn lo_knock_client_tcp_opens_then_stop_command_runs() {
    require_root("live capture on lo");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = format!(
        "[door]\n\
         Sequence = 7101,7102,7103\n\
         Seq_Timeout = 10\n\
         TCPFlags = syn\n\
         Start_Command = touch {p}/opened-%IP%\n\
         Cmd_Timeout = 1\n\
         Stop_Command = touch {p}/closed-%IP%\n"
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo", "-v"], &conf);
    knock(None, &["127.0.0.1", "7101", "7102", "7103"]);
    let closed = dir.path().join("closed-127.0.0.1");
    daemon.wait_for_line(
        &format!("door: running command: touch {p}/closed-127.0.0.1"),
        WAIT,
    );
    daemon.wait_for_file(&closed);
    let msgs = daemon.stop();

    assert_eq!(
        actions(&msgs),
        lines(&[
            "127.0.0.1: door: Stage 1",
            "127.0.0.1: door: Stage 2",
            "127.0.0.1: door: Stage 3",
            "127.0.0.1: door: OPEN SESAME",
            &format!("door: running command: touch {p}/opened-127.0.0.1"),
            "127.0.0.1: door: command timeout",
            &format!("door: running command: touch {p}/closed-127.0.0.1"),
        ])
    );
    assert_lifecycle(&msgs, "lo");
    assert_eq!(
        files_with_prefix(dir.path(), "opened-"),
        ["opened-127.0.0.1"]
    );
    assert_eq!(
        files_with_prefix(dir.path(), "closed-"),
        ["closed-127.0.0.1"]
    );
    // The stop command waited Cmd_Timeout after the start command.
    let mtime = |name: &str| {
        std::fs::metadata(dir.path().join(name))
            .and_then(|m| m.modified())
            .expect("marker mtime")
    };
    let held = mtime("closed-127.0.0.1")
        .duration_since(mtime("opened-127.0.0.1"))
        .expect("closed after opened");
    assert!(
        held >= Duration::from_millis(500) && held < Duration::from_secs(5),
        "door held open {held:?} with Cmd_Timeout = 1"
    );
    // -v prints the same messages to stdout, after its own banner.
    let stdout = std::fs::read_to_string(dir.path().join("knockd.stdout")).expect("stdout");
    let mut out: Vec<String> = stdout.lines().map(str::to_string).collect();
    assert_eq!(out.first().map(String::as_str), Some("listening on lo..."));
    out.remove(0);
    assert_eq!(out, msgs);
}

#[test]
#[ignore = "needs root: live capture on lo"]
fn lo_knock_client_udp_and_mixed_protocols_open() {
    require_root("live capture on lo");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = format!(
        "[udp]\n\
         Sequence = 7111:udp,7112:udp,7113:udp\n\
         Start_Command = touch {p}/udp-%IP%\n\
         [mixed]\n\
         Sequence = 7114:udp,7115:tcp,7116:udp\n\
         TCPFlags = syn\n\
         Start_Command = touch {p}/mixed-%IP%\n"
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    knock(None, &["-u", "127.0.0.1", "7111", "7112", "7113"]);
    daemon.wait_for_file(&dir.path().join("udp-127.0.0.1"));
    knock(None, &["127.0.0.1", "7114:udp", "7115", "7116:udp"]);
    daemon.wait_for_file(&dir.path().join("mixed-127.0.0.1"));
    let msgs = daemon.stop();

    assert_eq!(
        actions(&msgs),
        lines(&[
            "127.0.0.1: udp: Stage 1",
            "127.0.0.1: udp: Stage 2",
            "127.0.0.1: udp: Stage 3",
            "127.0.0.1: udp: OPEN SESAME",
            &format!("udp: running command: touch {p}/udp-127.0.0.1"),
            "127.0.0.1: mixed: Stage 1",
            "127.0.0.1: mixed: Stage 2",
            "127.0.0.1: mixed: Stage 3",
            "127.0.0.1: mixed: OPEN SESAME",
            &format!("mixed: running command: touch {p}/mixed-127.0.0.1"),
        ])
    );
    assert_lifecycle(&msgs, "lo");
}

#[test]
#[ignore = "needs root: live capture on lo"]
fn lo_knock_client_ipv6_runs_the_6_commands() {
    require_root("live capture on lo");
    require_knock_client();
    let dir = test_dir();
    let p = d(dir.path());
    let conf = format!(
        "[door]\n\
         Sequence = 7121,7122,7123\n\
         TCPFlags = syn\n\
         Start_Command = touch {p}/opened4-%IP%\n\
         Start_Command_6 = touch {p}/opened6-%IP%\n\
         Cmd_Timeout = 1\n\
         Stop_Command = touch {p}/closed4-%IP%\n\
         Stop_Command_6 = touch {p}/closed6-%IP%\n"
    );
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    knock(None, &["-6", "::1", "7121", "7122", "7123"]);
    daemon.wait_for_file(&dir.path().join("closed6-::1"));
    // The same door over IPv4 still uses the plain commands.
    knock(None, &["-4", "127.0.0.1", "7121", "7122", "7123"]);
    daemon.wait_for_file(&dir.path().join("closed4-127.0.0.1"));
    let msgs = daemon.stop();

    assert_eq!(
        actions(&msgs),
        lines(&[
            "::1: door: Stage 1",
            "::1: door: Stage 2",
            "::1: door: Stage 3",
            "::1: door: OPEN SESAME",
            &format!("door: running command: touch {p}/opened6-::1"),
            "::1: door: command timeout",
            &format!("door: running command: touch {p}/closed6-::1"),
            "127.0.0.1: door: Stage 1",
            "127.0.0.1: door: Stage 2",
            "127.0.0.1: door: Stage 3",
            "127.0.0.1: door: OPEN SESAME",
            &format!("door: running command: touch {p}/opened4-127.0.0.1"),
            "127.0.0.1: door: command timeout",
            &format!("door: running command: touch {p}/closed4-127.0.0.1"),
        ])
    );
    assert_eq!(
        files_with_prefix(dir.path(), "opened"),
        ["opened4-127.0.0.1", "opened6-::1"]
    );
    assert_eq!(
        files_with_prefix(dir.path(), "closed"),
        ["closed4-127.0.0.1", "closed6-::1"]
    );
}

// ---------------------------------------------------------------------------
// 2. Loopback, crafted packets: spoofed 127.x sources, chosen TCP flags.

/// The five lines of one successful knock of `door` from `ip`, whose start
/// command touches `DIR/opened-%IP%`.
fn opened(ip: &str, door: &str, stages: usize, dir: &str) -> Vec<String> {
    let mut v: Vec<String> = (1..=stages)
        .map(|n| format!("{ip}: {door}: Stage {n}"))
        .collect();
    v.push(format!("{ip}: {door}: OPEN SESAME"));
    v.push(format!("{door}: running command: touch {dir}/opened-{ip}"));
    v
}

fn door_conf(name: &str, ports: [u16; 3], flags: &str, dir: &str) -> String {
    format!(
        "[{name}]\n\
         Sequence = {},{},{}\n\
         Seq_Timeout = 20\n\
         TCPFlags = {flags}\n\
         Start_Command = touch {dir}/opened-%IP%\n",
        ports[0], ports[1], ports[2]
    )
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn lo_crafted_two_sources_interleaved_both_open() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let seq = [7201, 7202, 7203];
    let conf = door_conf("door", seq, "syn", &p);
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    // knockd 0.8 forgets .6's attempt when .5's ends, so .6 never opens.
    for port in seq {
        inj.tcp(5, port, Flags::Syn);
        inj.tcp(6, port, Flags::Syn);
    }
    daemon.wait_for_line("127.0.0.6: door: OPEN SESAME", WAIT);
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.6"));
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.5"));
    let msgs = daemon.stop();

    let mut expected = Vec::new();
    for n in 1..=3 {
        expected.push(format!("127.0.0.5: door: Stage {n}"));
        if n == 3 {
            expected.push("127.0.0.5: door: OPEN SESAME".into());
            expected.push(format!("door: running command: touch {p}/opened-127.0.0.5"));
        }
        expected.push(format!("127.0.0.6: door: Stage {n}"));
    }
    expected.push("127.0.0.6: door: OPEN SESAME".into());
    expected.push(format!("door: running command: touch {p}/opened-127.0.0.6"));
    assert_eq!(actions(&msgs), expected);
    assert_eq!(
        files_with_prefix(dir.path(), "opened-"),
        ["opened-127.0.0.5", "opened-127.0.0.6"]
    );
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn lo_crafted_syn_not_ack_door_ignores_syn_ack() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let seq = [7211, 7212, 7213];
    let conf = door_conf("door", seq, "syn,!ack", &p);
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    // .7 knocks with SYN+ACK and bare ACK packets mixed in, some on the
    // next port (would advance), some on a wrong one (would break): ignored.
    inj.tcp(7, seq[0], Flags::Syn);
    inj.tcp(7, seq[1], Flags::SynAck);
    inj.tcp(7, seq[2], Flags::Ack);
    inj.tcp(7, seq[1], Flags::Syn);
    inj.tcp(7, seq[0], Flags::SynAck);
    inj.tcp(7, seq[0], Flags::Ack);
    inj.tcp(7, seq[2], Flags::Syn);
    // .8 knocks the whole sequence with SYN+ACK only: nothing at all.
    for port in seq {
        inj.tcp(8, port, Flags::SynAck);
    }
    // The sentinel: once it opened, every earlier packet was judged.
    inj.knock(99, &seq);
    daemon.wait_for_line("127.0.0.99: door: OPEN SESAME", WAIT);
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.99"));
    let msgs = daemon.stop();

    let mut expected = opened("127.0.0.7", "door", 3, &p);
    expected.extend(opened("127.0.0.99", "door", 3, &p));
    assert_eq!(actions(&msgs), expected);
    assert_eq!(
        files_with_prefix(dir.path(), "opened-"),
        ["opened-127.0.0.7", "opened-127.0.0.99"]
    );
}

#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn lo_crafted_other_port_is_ignored_and_wrong_door_port_breaks() {
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let seq = [7221, 7222, 7223];
    let conf = door_conf("door", seq, "syn", &p);
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo", "-D"], &conf);
    let mut inj = Injector::lo();
    // .9: a SYN to a port of no door between the steps changes nothing.
    inj.tcp(9, seq[0], Flags::Syn);
    inj.tcp(9, 7229, Flags::Syn);
    inj.tcp(9, seq[1], Flags::Syn);
    inj.tcp(9, 7229, Flags::Syn);
    inj.tcp(9, seq[2], Flags::Syn);
    // .10: the third port where the second is due breaks the attempt, so
    // the rest of the sequence does nothing; a fresh knock then opens.
    inj.tcp(10, seq[0], Flags::Syn);
    inj.tcp(10, seq[2], Flags::Syn);
    inj.tcp(10, seq[1], Flags::Syn);
    inj.tcp(10, seq[2], Flags::Syn);
    inj.knock(10, &seq);
    daemon.wait_for_line("127.0.0.10: door: OPEN SESAME", WAIT);
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.10"));
    let msgs = daemon.stop();

    let mut expected = opened("127.0.0.9", "door", 3, &p);
    expected.push("127.0.0.10: door: Stage 1".into());
    expected.extend(opened("127.0.0.10", "door", 3, &p));
    assert_eq!(actions(&msgs), expected);
    assert_eq!(
        files_with_prefix(dir.path(), "opened-"),
        ["opened-127.0.0.10", "opened-127.0.0.9"]
    );

    // -D: the capture filter, then one line per captured packet, dated
    // right (knockd 0.8 prints the month one too low). The filter keeps
    // the port of no door (7229) from reaching user space at all.
    let out = std::fs::read_to_string(dir.path().join("knockd.stdout")).expect("stdout file");
    assert!(
        out.lines().any(|l| l.starts_with(
            "capture filter: (dst host 127.0.0.1 and tcp dst port (7221 or 7222 or 7223) and tcp[tcpflags] & tcp-syn != 0)"
        )),
        "{out}"
    );
    let today = String::from_utf8(
        std::process::Command::new("date")
            .arg("+%Y-%m-%d")
            .output()
            .expect("date")
            .stdout,
    )
    .expect("utf-8");
    let first = out
        .lines()
        .find(|l| l.contains(" tcp: 127.0.0.9:") && l.contains(" -> 127.0.0.1:7221 "))
        .unwrap_or_else(|| panic!("no packet line for 127.0.0.9 in:\n{out}"));
    assert!(first.starts_with(today.trim()), "{first} vs {today}");
    assert!(first.ends_with(" bytes"), "{first}");
    assert!(!out.contains("-> 127.0.0.1:7229 "), "{out}");
}

/// Issue 19: sources that cannot be a host (unspecified, broadcast,
/// multicast, 240/4) opened doors. Live, they never knock, and shutdown
/// counts them in one line.
#[test]
#[ignore = "needs root: packet injection and live capture on lo"]
fn lo_crafted_sources_that_cannot_be_a_host_never_knock_and_are_counted() {
    use std::net::Ipv4Addr;
    require_root("packet injection and live capture on lo");
    let dir = test_dir();
    let p = d(dir.path());
    let seq = [7241, 7242, 7243];
    let conf = door_conf("door", seq, "syn", &p);
    let mut daemon = Daemon::start(dir.path(), None, &["-i", "lo"], &conf);
    let mut inj = Injector::lo();
    for src in [
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::BROADCAST,
        Ipv4Addr::new(224, 0, 0, 1),
        Ipv4Addr::new(240, 0, 0, 1),
    ] {
        inj.knock_from(src, &seq);
    }
    // The sentinel: once it opened, every earlier packet was judged.
    inj.knock(41, &seq);
    daemon.wait_for_line("127.0.0.41: door: OPEN SESAME", WAIT);
    daemon.wait_for_file(&dir.path().join("opened-127.0.0.41"));
    let msgs = daemon.stop();
    let mut expected = opened("127.0.0.41", "door", 3, &p);
    expected.push(
        "12 packet(s) skipped: source cannot be a host (unspecified, multicast, broadcast or 240.0.0.0/4)"
            .into(),
    );
    assert_eq!(actions(&msgs), expected);
    assert_eq!(
        files_with_prefix(dir.path(), "opened-"),
        ["opened-127.0.0.41"]
    );
}

// ---------------------------------------------------------------------------
// 3. Two namespaces joined by a veth pair; the daemon in the server one.

fn two_family_conf(dir: &str) -> String {
    format!(
        "[door]\n\
         Sequence = 7001,7002:udp,7003\n\
         TCPFlags = syn\n\
         Start_Command = touch {dir}/opened4-%IP%\n\
         Start_Command_6 = touch {dir}/opened6-%IP%\n"
    )
}

/// The daemon in the server namespace with `args`; the client knocks over
/// IPv4 and then IPv6: both open, each with its own command and the
/// client's address.
fn knock_across_veth(tag: &str, args: &[&str], iface: &str) {
    require_root("network namespaces and live capture");
    require_knock_client();
    let net = VethPair::new(tag);
    let dir = test_dir();
    let p = d(dir.path());
    let mut daemon = Daemon::start(dir.path(), Some(&net.server), args, &two_family_conf(&p));
    let srv4 = SRV_V4.to_string();
    let srv6 = SRV_V6.to_string();
    let (cli4, cli6) = (CLI_V4.to_string(), CLI_V6.to_string());
    knock(Some(&net.client), &[&srv4, "7001", "7002:udp", "7003"]);
    daemon.wait_for_file(&dir.path().join(format!("opened4-{cli4}")));
    knock(
        Some(&net.client),
        &["-6", &srv6, "7001", "7002:udp", "7003"],
    );
    daemon.wait_for_file(&dir.path().join(format!("opened6-{cli6}")));
    let msgs = daemon.stop();

    let mut expected = Vec::new();
    for (ip, marker) in [(&cli4, "opened4"), (&cli6, "opened6")] {
        for n in 1..=3 {
            expected.push(format!("{ip}: door: Stage {n}"));
        }
        expected.push(format!("{ip}: door: OPEN SESAME"));
        expected.push(format!("door: running command: touch {p}/{marker}-{ip}"));
    }
    assert_eq!(actions(&msgs), expected);
    assert_lifecycle(&msgs, iface);
    assert_eq!(
        files_with_prefix(dir.path(), "opened"),
        [format!("opened4-{cli4}"), format!("opened6-{cli6}")]
    );
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn netns_veth_ipv4_and_ipv6_knocks_open_with_client_address() {
    knock_across_veth("veth", &["-i", SRV_IF], SRV_IF);
}

/// knockd 0.8 on `-i any` (Linux cooked capture) matches nothing.
#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn netns_any_interface_ipv4_and_ipv6_knocks_open() {
    knock_across_veth("any", &["-i", "any"], "any");
}

#[test]
#[ignore = "needs root: network namespaces and live capture"]
fn netns_only_v4_ignores_ipv6_knocks() {
    require_root("network namespaces and live capture");
    require_knock_client();
    let net = VethPair::new("v4only");
    let dir = test_dir();
    let p = d(dir.path());
    let mut daemon = Daemon::start(
        dir.path(),
        Some(&net.server),
        &["-4", "-i", SRV_IF],
        &two_family_conf(&p),
    );
    let srv4 = SRV_V4.to_string();
    let srv6 = SRV_V6.to_string();
    let cli4 = CLI_V4.to_string();
    // IPv6 first: by the time the IPv4 knock opens, it has been ignored.
    knock(
        Some(&net.client),
        &["-6", &srv6, "7001", "7002:udp", "7003"],
    );
    knock(Some(&net.client), &[&srv4, "7001", "7002:udp", "7003"]);
    daemon.wait_for_file(&dir.path().join(format!("opened4-{cli4}")));
    let msgs = daemon.stop();

    let mut expected: Vec<String> = (1..=3)
        .map(|n| format!("{cli4}: door: Stage {n}"))
        .collect();
    expected.push(format!("{cli4}: door: OPEN SESAME"));
    expected.push(format!("door: running command: touch {p}/opened4-{cli4}"));
    assert_eq!(actions(&msgs), expected);
    assert_eq!(
        files_with_prefix(dir.path(), "opened"),
        [format!("opened4-{cli4}")]
    );
}

// ---------------------------------------------------------------------------
// 4. A real firewall in the server namespace.

/// Connects from the client namespace to the server's port 2222, waiting at
/// most a second: `Ok` when the firewall lets the SYN in.
fn connect_2222(net: &VethPair) -> std::io::Result<TcpStream> {
    let to = SocketAddr::from((SRV_V4, 2222));
    net.client
        .enter(|| TcpStream::connect_timeout(&to, Duration::from_secs(1)))
}

fn assert_filtered(net: &VethPair, when: &str) {
    match connect_2222(net) {
        Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
        other => panic!("{when}: connecting to port 2222 should time out, got {other:?}"),
    }
}

#[test]
#[ignore = "needs root: network namespaces, iptables in a namespace, live capture"]
fn netns_firewall_opens_for_the_knocker_then_closes() {
    require_root("network namespaces, iptables in a namespace, live capture");
    require_knock_client();
    let net = VethPair::new("fw");
    let srv = net.server.name().to_string();
    // Default deny, as a knockd admin has it. The knocks are dropped too,
    // but capture sees packets before netfilter's INPUT chain.
    net.server.default_drop_v4();
    let listener: TcpListener = net
        .server
        .enter(|| TcpListener::bind((SRV_V4, 2222)))
        .expect("listen on 192.0.2.1:2222 in the server namespace");

    let dir = test_dir();
    let p = d(dir.path());
    // `ip netns exec` in the commands too: even a broken harness that
    // started the daemon outside the namespace could not touch the host's
    // firewall.
    let rule = "INPUT -s %IP% -p tcp --dport 2222 -j ACCEPT";
    let conf = format!(
        "[ssh]\n\
         Sequence = 7001,7002,7003\n\
         Seq_Timeout = 10\n\
         TCPFlags = syn,!ack\n\
         Start_Command = ip netns exec {srv} iptables -I {rule} && touch {p}/opened-%IP%\n\
         Cmd_Timeout = 3\n\
         Stop_Command = ip netns exec {srv} iptables -D {rule} && touch {p}/closed-%IP%\n"
    );
    let mut daemon = Daemon::start(dir.path(), Some(&net.server), &["-i", SRV_IF], &conf);
    let srv4 = SRV_V4.to_string();
    let cli4 = CLI_V4.to_string();

    assert_filtered(&net, "before knocking");
    // A wrong sequence opens nothing.
    knock(Some(&net.client), &[&srv4, "7001", "7003", "7002"]);
    assert_filtered(&net, "after a wrong knock");

    knock(Some(&net.client), &[&srv4, "7001", "7002", "7003"]);
    let opened_at = Instant::now();
    daemon.wait_for_file(&dir.path().join(format!("opened-{cli4}")));
    let rules =
        String::from_utf8_lossy(&net.server.exec("iptables", &["-S", "INPUT"]).stdout).into_owned();
    assert!(
        rules.contains(&format!(
            "-A INPUT -s {cli4}/32 -p tcp -m tcp --dport 2222 -j ACCEPT"
        )),
        "{rules}"
    );
    let stream = connect_2222(&net).expect("port 2222 open after the knock");
    let (_accepted, peer) = listener.accept().expect("accept the client");
    assert_eq!(peer.ip(), CLI_V4);
    assert!(
        opened_at.elapsed() < Duration::from_secs(3),
        "the check ran after Cmd_Timeout; the machine is too slow for this test"
    );

    daemon.wait_for_file(&dir.path().join(format!("closed-{cli4}")));
    // The connection made while open lives on (ESTABLISHED); new ones are
    // filtered again.
    drop(stream);
    assert_filtered(&net, "after the stop command");
    let msgs = daemon.stop();

    let start = format!("iptables -I INPUT -s {cli4} -p tcp --dport 2222 -j ACCEPT");
    let stop = format!("iptables -D INPUT -s {cli4} -p tcp --dport 2222 -j ACCEPT");
    assert_eq!(
        actions(&msgs),
        lines(&[
            &format!("{cli4}: ssh: Stage 1"),
            &format!("{cli4}: ssh: Stage 1"),
            &format!("{cli4}: ssh: Stage 2"),
            &format!("{cli4}: ssh: Stage 3"),
            &format!("{cli4}: ssh: OPEN SESAME"),
            &format!(
                "ssh: running command: ip netns exec {srv} {start} && touch {p}/opened-{cli4}"
            ),
            &format!("{cli4}: ssh: command timeout"),
            &format!("ssh: running command: ip netns exec {srv} {stop} && touch {p}/closed-{cli4}"),
        ])
    );
    let rules =
        String::from_utf8_lossy(&net.server.exec("iptables", &["-S", "INPUT"]).stdout).into_owned();
    assert!(!rules.contains("--dport 2222"), "{rules}");
}
