//! The BPF filter text built from the doors, so that only packets that can
//! matter reach user space.
//!
//! This module owns the *text* of the capture filter: which destination
//! addresses, protocols, ports and TCP flags the kernel lets through. It is a
//! pure function of the doors (with their current sequences) and the capture
//! interface's addresses; the capture shell installs the result and asks for
//! a new one whenever doors, one-time sequences or addresses change.
//!
//! It must not decide what a knock *is*: the filter is only a prefilter. Every
//! packet that could count for a door must pass it, and a few that cannot may
//! pass too (IPv6 with extension headers, below); the engine makes the real
//! decision. It must not open live captures either; it only compiles against
//! a dead handle, to check a filter without privileges.
//!
//! # Shape of the filter
//!
//! Doors are grouped by address family and destination set (the capture
//! interface's addresses, or the door's `Target`). Within a group, TCP ports
//! are merged per flag rule and UDP ports are merged, de-duplicated, in the
//! order the doors name them:
//!
//! ```text
//! (dst host 192.0.2.1 and tcp dst port (7000 or 8000) and tcp[tcpflags] & tcp-syn != 0)
//! or (dst host 2001:db8::1 and tcp dst port (7000 or 8000) and ip6[53] & tcp-syn != 0)
//! or (dst host 2001:db8::1 and (ip6[6] == 0 or ip6[6] == 43 or ...))
//! ```
//!
//! (one line in reality). `and` and `or` have the *same* precedence in pcap
//! syntax, so every alternative is parenthesized.
//!
//! # IPv6 and extension headers
//!
//! libpcap 1.10 cannot test TCP flags of IPv6 packets (`tcp[...]` is IPv4
//! only: `ip6 and tcp[13] != 0` "rejects all packets"), and its `tcp dst
//! port` / `udp dst port` for IPv6 only match when TCP/UDP directly follows
//! the fixed 40-byte header (`ip6[6] == 6` / `17`). knockd 0.8 reads flags
//! at `ip6[13+40]`, which is wrong once an extension header is present.
//!
//! We keep the fast exact test for the common case: with `tcp dst port` the
//! next header is TCP at offset 40, so `ip6[53]` *is* its flag byte. Packets
//! whose first next header is an extension header are let through to the
//! addressed host regardless of port or flags, and the engine decides. A
//! bounded in-kernel walk is not available: `ip6 protochain 6` compiles to
//! a loop with a backward jump, which the Linux kernel refuses ("Kernel
//! filter failed: Invalid argument"), and libpcap then silently filters
//! *every* packet in user space. Extension headers on knocks are rare, so
//! letting them through costs little.

use std::fmt::Write as _;
use std::net::IpAddr;

use crate::core::config::{Door, FlagRule};
use crate::core::knock::{Proto, TcpFlags};

/// The filter installed when no door can be knocked (no doors, or no
/// address to knock on). There is no `false` in pcap syntax, and a filter
/// the optimizer proves empty fails to compile ("expression rejects all
/// packets"); `less 0` (packet length <= 0) compiles on every link type and
/// matches no real packet.
pub const MATCH_NOTHING: &str = "less 0";

/// IPv6 next-header values after which a TCP or UDP header may still
/// follow, so such packets are passed to user space undecided: hop-by-hop,
/// routing, fragment, AH, destination options, mobility, HIP and shim6 (the
/// IANA extension-header registry without ESP, whose payload is encrypted,
/// and the experimental 253/254). The wire decoder must walk at least these.
pub const IPV6_EXTENSION_HEADERS: [u8; 8] = [0, 43, 44, 51, 60, 135, 139, 140];

/// Builds the capture filter for `doors`, each with its current sequence.
///
/// `local` holds every address (IPv4 and IPv6) of the capture interface(s);
/// a door with a `Target` matches knocks to that address instead. With
/// `only_v4` (`-4`) IPv6 is left out entirely, so a door whose only
/// destination is IPv6 contributes nothing. Disabled doors (one-time file
/// used up) are left out by the caller. Returns [`MATCH_NOTHING`] when no
/// door has a destination.
pub fn build_filter(doors: &[Door], local: &[IpAddr], only_v4: bool) -> String {
    let mut groups: Vec<Group> = Vec::new();
    let families: &[Family] = if only_v4 {
        &[Family::V4]
    } else {
        &[Family::V4, Family::V6]
    };
    for door in doors {
        for &family in families {
            let hosts = destinations(door, local, family);
            if hosts.is_empty() {
                continue;
            }
            let group = match groups
                .iter()
                .position(|g| g.family == family && g.hosts == hosts)
            {
                Some(i) => &mut groups[i],
                None => {
                    groups.push(Group::new(family, hosts));
                    let last = groups.len() - 1;
                    &mut groups[last]
                }
            };
            group.add_door(door);
        }
    }
    groups.retain(|g| !g.is_empty());

    let mut parts: Vec<String> = groups.iter().map(Group::render).collect();
    let mut v6_hosts: Vec<IpAddr> = Vec::new();
    for g in groups.iter().filter(|g| g.family == Family::V6) {
        for h in &g.hosts {
            push_unique(&mut v6_hosts, *h);
        }
    }
    if !v6_hosts.is_empty() {
        parts.push(render_ipv6_extension_clause(&v6_hosts));
    }
    if parts.is_empty() {
        MATCH_NOTHING.to_string()
    } else {
        parts.join(" or ")
    }
}

/// Why a filter could not be compiled.
#[derive(Debug, thiserror::Error)]
#[error("cannot compile capture filter for link type {linktype:?}: {source}")]
pub struct CompileError {
    pub linktype: pcap::Linktype,
    #[source]
    pub source: pcap::Error,
}

/// Compiles `filter` (optimized, as the capture does) for `linktype` on a
/// dead handle: lets `--check`-style callers and tests verify a filter
/// without privileges or an interface.
///
/// `linktype` is what pcap reports for a capture (a DLT). The one exception
/// accepted is [`pcap::Linktype::RAW`] (101, the savefile number for raw IP):
/// `pcap_compile` on a handle opened with it fails ("unknown data link type
/// 101"), so it is compiled as DLT_RAW (12), which is what pcap reports for
/// such captures, live or from a file.
pub fn compile_check(filter: &str, linktype: pcap::Linktype) -> Result<(), CompileError> {
    let err = |source| CompileError { linktype, source };
    let dlt = if linktype == pcap::Linktype::RAW {
        pcap::Linktype(DLT_RAW)
    } else {
        linktype
    };
    let cap = pcap::Capture::dead(dlt).map_err(err)?;
    cap.compile(filter, true).map_err(err)?;
    Ok(())
}

/// DLT_RAW on Linux and most systems (OpenBSD: 14).
const DLT_RAW: i32 = 12;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Family {
    V4,
    V6,
}

impl Family {
    fn of(ip: &IpAddr) -> Family {
        match ip {
            IpAddr::V4(_) => Family::V4,
            IpAddr::V6(_) => Family::V6,
        }
    }
}

/// The door's destinations in `family`, de-duplicated, in the caller's order.
fn destinations(door: &Door, local: &[IpAddr], family: Family) -> Vec<IpAddr> {
    let mut hosts = Vec::new();
    match door.target {
        Some(t) if Family::of(&t) == family => hosts.push(t),
        Some(_) => {}
        None => {
            for ip in local.iter().filter(|ip| Family::of(ip) == family) {
                push_unique(&mut hosts, *ip);
            }
        }
    }
    hosts
}

fn push_unique<T: PartialEq>(v: &mut Vec<T>, item: T) {
    if !v.contains(&item) {
        v.push(item);
    }
}

/// Everything addressed to one destination set in one family.
struct Group {
    family: Family,
    hosts: Vec<IpAddr>,
    /// TCP ports per flag rule, in first-seen order.
    tcp: Vec<(FlagRule, Vec<u16>)>,
    udp: Vec<u16>,
}

impl Group {
    fn new(family: Family, hosts: Vec<IpAddr>) -> Self {
        Group {
            family,
            hosts,
            tcp: Vec::new(),
            udp: Vec::new(),
        }
    }

    fn add_door(&mut self, door: &Door) {
        let rule = door.tcp_flags;
        // A rule that both requires and forbids a flag matches no packet
        // (the parser rejects it; `Door` fields are public, though), so its
        // TCP steps would only let useless packets in.
        let satisfiable = rule.set.0 & rule.clear.0 == 0;
        for step in door.sequence.current().steps() {
            match step.proto {
                Proto::Udp => push_unique(&mut self.udp, step.port),
                Proto::Tcp if satisfiable => {
                    let i = match self.tcp.iter().position(|(r, _)| *r == rule) {
                        Some(i) => i,
                        None => {
                            self.tcp.push((rule, Vec::new()));
                            self.tcp.len() - 1
                        }
                    };
                    push_unique(&mut self.tcp[i].1, step.port);
                }
                Proto::Tcp => {}
            }
        }
    }

    fn is_empty(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }

    fn render(&self) -> String {
        let mut alts: Vec<String> = Vec::new();
        for (rule, ports) in &self.tcp {
            let mut alt = format!("tcp dst port {}", alternatives(ports));
            if let Some(test) = flag_test(self.family, rule) {
                alt.push_str(" and ");
                alt.push_str(&test);
            }
            alts.push(alt);
        }
        if !self.udp.is_empty() {
            alts.push(format!("udp dst port {}", alternatives(&self.udp)));
        }
        let body = if alts.len() == 1 {
            alts.swap_remove(0)
        } else {
            let wrapped: Vec<String> = alts.iter().map(|a| format!("({a})")).collect();
            format!("({})", wrapped.join(" or "))
        };
        format!("(dst host {} and {body})", alternatives(&self.hosts))
    }
}

/// `7000` or `(7000 or 8000)`: pcap carries the qualifiers (`tcp dst port`,
/// `dst host`) into a parenthesized list of bare values.
fn alternatives<T: std::fmt::Display>(items: &[T]) -> String {
    match items {
        [one] => one.to_string(),
        _ => {
            let texts: Vec<String> = items.iter().map(ToString::to_string).collect();
            format!("({})", texts.join(" or "))
        }
    }
}

/// One masked comparison of the TCP flag byte: required flags set, forbidden
/// flags clear. `None` when the door accepts any flags.
///
/// IPv4 uses libpcap's `tcp[tcpflags]`, which also skips IP options and
/// non-first fragments. IPv6 reads byte 13 of a TCP header that directly
/// follows the fixed header; it is only ever combined with `tcp dst port`,
/// which for IPv6 requires exactly that (`ip6[6] == 6`).
fn flag_test(family: Family, rule: &FlagRule) -> Option<String> {
    if rule.is_any() {
        return None;
    }
    let byte = match family {
        Family::V4 => "tcp[tcpflags]",
        Family::V6 => "ip6[53]",
    };
    let mask = rule.set | rule.clear;
    let mut test = format!("{byte} & {}", flag_names(mask));
    if rule.clear.0 == 0 && rule.set.0.count_ones() == 1 {
        test.push_str(" != 0");
    } else if rule.set.0 == 0 {
        test.push_str(" == 0");
    } else {
        let _ = write!(test, " == {}", flag_names(rule.set));
    }
    Some(test)
}

/// `tcp-syn` or `(tcp-syn|tcp-ack)`, with libpcap's names for the bits.
fn flag_names(flags: TcpFlags) -> String {
    const PCAP_NAMES: [(TcpFlags, &str); 6] = [
        (TcpFlags::FIN, "tcp-fin"),
        (TcpFlags::SYN, "tcp-syn"),
        (TcpFlags::RST, "tcp-rst"),
        (TcpFlags::PSH, "tcp-push"),
        (TcpFlags::ACK, "tcp-ack"),
        (TcpFlags::URG, "tcp-urg"),
    ];
    let names: Vec<&str> = PCAP_NAMES
        .iter()
        .filter(|(f, _)| flags.contains(*f))
        .map(|(_, n)| *n)
        .collect();
    match names.as_slice() {
        [one] => (*one).to_string(),
        _ => format!("({})", names.join("|")),
    }
}

/// IPv6 packets to a door's address whose first next header is an extension
/// header: passed undecided (see the module doc).
fn render_ipv6_extension_clause(hosts: &[IpAddr]) -> String {
    let tests: Vec<String> = IPV6_EXTENSION_HEADERS
        .iter()
        .map(|nh| format!("ip6[6] == {nh}"))
        .collect();
    format!(
        "(dst host {} and ({}))",
        alternatives(hosts),
        tests.join(" or ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::config::{parse_sequence, Door};
    use etherparse::PacketBuilder;
    use pcap::Linktype;

    const V4: &str = "192.0.2.1";
    const V6: &str = "2001:db8::1";
    const EXT: &str = "(ip6[6] == 0 or ip6[6] == 43 or ip6[6] == 44 or ip6[6] == 51 \
                       or ip6[6] == 60 or ip6[6] == 135 or ip6[6] == 139 or ip6[6] == 140)";

    /// Every link type the daemon captures on (SPEC §3).
    const LINKTYPES: [Linktype; 6] = [
        Linktype::ETHERNET,
        Linktype::LINUX_SLL,
        Linktype(276),     // LINUX_SLL2
        Linktype(DLT_RAW), // raw IP as pcap reports it
        Linktype::RAW,     // 101: mapped to DLT_RAW by compile_check
        Linktype::NULL,
    ];

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn door(name: &str, seq: &str, flags: &str) -> Door {
        let mut d = Door::new(name, parse_sequence(seq).unwrap());
        for f in flags.split(',').filter(|f| !f.is_empty()) {
            let (neg, f) = match f.strip_prefix('!') {
                Some(rest) => (true, rest),
                None => (false, f),
            };
            let bit = TcpFlags::NAMED.iter().find(|(_, n)| *n == f).unwrap().0;
            if neg {
                d.tcp_flags.clear |= bit;
            } else {
                d.tcp_flags.set |= bit;
            }
        }
        d
    }

    /// knockd's sample knockd.conf: openSSH, closeSSH, openHTTPS.
    fn sample_doors() -> Vec<Door> {
        vec![
            door("openSSH", "7000,8000,9000", "syn"),
            door("closeSSH", "9000,8000,7000", "syn"),
            door("openHTTPS", "12345,54321,24680,13579", "syn"),
        ]
    }

    /// Builds the filter and checks that it compiles on every link type.
    fn build(doors: &[Door], local: &[&str], only_v4: bool) -> String {
        let local: Vec<IpAddr> = local.iter().map(|s| ip(s)).collect();
        let f = build_filter(doors, &local, only_v4);
        for lt in LINKTYPES {
            if let Err(e) = compile_check(&f, lt) {
                panic!("{e}\nfilter: {f}");
            }
        }
        f
    }

    // ---- golden strings ----

    #[test]
    fn knockd_sample_config_v4() {
        assert_eq!(
            build(&sample_doors(), &[V4], false),
            "(dst host 192.0.2.1 and tcp dst port (7000 or 8000 or 9000 or 12345 or 54321 \
             or 24680 or 13579) and tcp[tcpflags] & tcp-syn != 0)"
        );
    }

    #[test]
    fn knockd_sample_config_v4_and_v6() {
        assert_eq!(
            build(&sample_doors(), &[V4, V6], false),
            format!(
                "(dst host 192.0.2.1 and tcp dst port (7000 or 8000 or 9000 or 12345 or 54321 \
                 or 24680 or 13579) and tcp[tcpflags] & tcp-syn != 0) \
                 or (dst host 2001:db8::1 and tcp dst port (7000 or 8000 or 9000 or 12345 \
                 or 54321 or 24680 or 13579) and ip6[53] & tcp-syn != 0) \
                 or (dst host 2001:db8::1 and {EXT})"
            )
        );
    }

    #[test]
    fn only_v4_leaves_ipv6_out() {
        assert_eq!(
            build(&sample_doors(), &[V4, V6], true),
            build(&sample_doors(), &[V4], false)
        );
    }

    #[test]
    fn mixed_tcp_udp_door_without_flags() {
        assert_eq!(
            build(&[door("mix", "8000:tcp,4000:udp,8001,4001:udp,8000", "")], &[V4], false),
            "(dst host 192.0.2.1 and ((tcp dst port (8000 or 8001)) or (udp dst port (4000 or 4001))))"
        );
    }

    #[test]
    fn single_port_udp_door() {
        assert_eq!(
            build(&[door("u", "5000:udp", "syn")], &[V4], false),
            "(dst host 192.0.2.1 and udp dst port 5000)"
        );
    }

    #[test]
    fn syn_not_ack_is_one_masked_comparison() {
        assert_eq!(
            build(&[door("d", "7000,8000", "syn,!ack")], &[V4, V6], false),
            format!(
                "(dst host 192.0.2.1 and tcp dst port (7000 or 8000) \
                 and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) \
                 or (dst host 2001:db8::1 and tcp dst port (7000 or 8000) \
                 and ip6[53] & (tcp-syn|tcp-ack) == tcp-syn) \
                 or (dst host 2001:db8::1 and {EXT})"
            )
        );
    }

    #[test]
    fn other_flag_shapes() {
        assert_eq!(
            build(&[door("d", "7000", "!ack,!rst")], &[V4], false),
            "(dst host 192.0.2.1 and tcp dst port 7000 and tcp[tcpflags] & (tcp-rst|tcp-ack) == 0)"
        );
        assert_eq!(
            build(&[door("d", "7000", "fin,psh,urg,!syn")], &[V4], false),
            "(dst host 192.0.2.1 and tcp dst port 7000 \
             and tcp[tcpflags] & (tcp-fin|tcp-syn|tcp-push|tcp-urg) == (tcp-fin|tcp-push|tcp-urg))"
        );
    }

    #[test]
    fn doors_with_different_flags_stay_apart_in_one_host_group() {
        assert_eq!(
            build(
                &[
                    door("a", "7000,8000", "syn"),
                    door("b", "9000,7000", "syn,!ack"),
                    door("c", "6000:udp,8000", "syn"),
                ],
                &[V4, "192.0.2.9"],
                true
            ),
            "(dst host (192.0.2.1 or 192.0.2.9) and ((tcp dst port (7000 or 8000) \
             and tcp[tcpflags] & tcp-syn != 0) or (tcp dst port (9000 or 7000) \
             and tcp[tcpflags] & (tcp-syn|tcp-ack) == tcp-syn) or (udp dst port 6000)))"
        );
    }

    #[test]
    fn target_door_replaces_local_addresses() {
        let mut t = door("t", "1111,2222", "syn");
        t.target = Some(ip("198.51.100.7"));
        assert_eq!(
            build(&[door("a", "7000", "syn"), t], &[V4, V6], false),
            format!(
                "(dst host 192.0.2.1 and tcp dst port 7000 and tcp[tcpflags] & tcp-syn != 0) \
                 or (dst host 2001:db8::1 and tcp dst port 7000 and ip6[53] & tcp-syn != 0) \
                 or (dst host 198.51.100.7 and tcp dst port (1111 or 2222) \
                 and tcp[tcpflags] & tcp-syn != 0) \
                 or (dst host 2001:db8::1 and {EXT})"
            )
        );
    }

    #[test]
    fn ipv6_target_with_only_v4_contributes_nothing() {
        let mut t = door("t", "1111", "");
        t.target = Some(ip("2001:db8::77"));
        assert_eq!(build(&[t.clone()], &[V4, V6], true), MATCH_NOTHING);
        assert_eq!(
            build(&[t], &[V4], false),
            format!(
                "(dst host 2001:db8::77 and tcp dst port 1111) or (dst host 2001:db8::77 and {EXT})"
            )
        );
    }

    #[test]
    fn duplicate_addresses_and_ports_are_merged() {
        assert_eq!(
            build(
                &[door("a", "7000,7000,7000:udp,7000:udp", "")],
                &[V4, V4],
                true
            ),
            "(dst host 192.0.2.1 and ((tcp dst port 7000) or (udp dst port 7000)))"
        );
    }

    #[test]
    fn nothing_to_knock_on_matches_nothing() {
        assert_eq!(build(&[], &[V4, V6], false), MATCH_NOTHING);
        assert_eq!(build(&sample_doors(), &[], false), MATCH_NOTHING);
        assert_eq!(build(&sample_doors(), &[V6], true), MATCH_NOTHING);
    }

    #[test]
    fn contradictory_flag_rule_drops_only_tcp_steps() {
        let mut d = door("d", "7000,8000:udp", "");
        d.tcp_flags.set = TcpFlags::SYN;
        d.tcp_flags.clear = TcpFlags::SYN;
        assert_eq!(
            build(&[d.clone()], &[V4], false),
            "(dst host 192.0.2.1 and udp dst port 8000)"
        );
        let only_tcp = Door {
            sequence: crate::core::config::SequenceSource::Fixed(parse_sequence("7000").unwrap()),
            ..d
        };
        assert_eq!(build(&[only_tcp], &[V4], false), MATCH_NOTHING);
    }

    #[test]
    fn every_address_form_compiles() {
        build(
            &sample_doors(),
            &[
                "10.0.0.1",
                "fe80::fc:ff:fe00:1",
                "::ffff:192.0.2.1",
                "::1",
                "127.0.0.1",
            ],
            false,
        );
    }

    #[test]
    fn largest_door_compiles() {
        let seq: Vec<String> = (0..32)
            .map(|i| format!("{}:{}", 1000 + i, if i % 2 == 0 { "tcp" } else { "udp" }))
            .collect();
        build(
            &[door("big", &seq.join(","), "syn,!ack,!rst")],
            &[V4, V6],
            false,
        );
    }

    #[test]
    fn compile_check_reports_bad_filters() {
        let err = compile_check("tcp dst port (", Linktype::ETHERNET).unwrap_err();
        assert!(err.to_string().contains("Linktype(1)"), "{err}");
        // Why MATCH_NOTHING is not something like `ip and not ip`.
        assert!(compile_check("ip and not ip", Linktype::ETHERNET).is_err());
        compile_check(MATCH_NOTHING, Linktype::ETHERNET).unwrap();
        // The quirk compile_check works around.
        let raw = pcap::Capture::dead(Linktype::RAW).unwrap();
        assert!(raw.compile("ip", true).is_err());
        compile_check("ip", Linktype::RAW).unwrap();
    }

    // ---- the compiled filter run against packets ----

    const MAC_A: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const MAC_B: [u8; 6] = [2, 0, 0, 0, 0, 2];
    const SRC4: [u8; 4] = [203, 0, 113, 5];
    const SRC6: [u8; 16] = [
        0x20, 0x01, 0x0d, 0xb8, 0xff, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
    ];

    #[derive(Clone, Copy)]
    enum L4 {
        Tcp { port: u16, flags: TcpFlags },
        Udp { port: u16 },
    }

    fn syn(port: u16) -> L4 {
        L4::Tcp {
            port,
            flags: TcpFlags::SYN,
        }
    }

    /// An Ethernet frame from SRC4/SRC6 to `dst`.
    fn frame(dst: &str, l4: L4) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2(MAC_A, MAC_B);
        let ipb = match ip(dst) {
            IpAddr::V4(d) => eth.ipv4(SRC4, d.octets(), 64),
            IpAddr::V6(d) => eth.ipv6(SRC6, d.octets(), 64),
        };
        let mut out = Vec::new();
        match l4 {
            L4::Tcp { port, flags } => {
                let mut b = ipb.tcp(40000, port, 1, 1024);
                if flags.contains(TcpFlags::FIN) {
                    b = b.fin();
                }
                if flags.contains(TcpFlags::SYN) {
                    b = b.syn();
                }
                if flags.contains(TcpFlags::RST) {
                    b = b.rst();
                }
                if flags.contains(TcpFlags::PSH) {
                    b = b.psh();
                }
                if flags.contains(TcpFlags::ACK) {
                    b = b.ack(1);
                }
                if flags.contains(TcpFlags::URG) {
                    b = b.urg(0);
                }
                b.write(&mut out, &[]).unwrap();
            }
            L4::Udp { port } => ipb.udp(40000, port).write(&mut out, &[1]).unwrap(),
        }
        out
    }

    /// Inserts an 8-byte IPv6 extension header of type `ext` (PadN options)
    /// between the fixed header and the transport header of an Ethernet v6
    /// frame.
    fn with_ipv6_ext(mut f: Vec<u8>, ext: u8) -> Vec<u8> {
        const IP: usize = 14;
        let next = f[IP + 6];
        f[IP + 6] = ext;
        let plen = u16::from_be_bytes([f[IP + 4], f[IP + 5]]) + 8;
        f[IP + 4..IP + 6].copy_from_slice(&plen.to_be_bytes());
        let hdr = [next, 0, 1, 4, 0, 0, 0, 0];
        f.splice(IP + 40..IP + 40, hdr);
        f
    }

    struct Compiled(pcap::BpfProgram);

    impl Compiled {
        fn new(filter: &str, lt: Linktype) -> Self {
            let cap = pcap::Capture::dead(lt).unwrap();
            Compiled(cap.compile(filter, true).unwrap())
        }
        fn passes(&self, pkt: &[u8]) -> bool {
            self.0.filter(pkt)
        }
    }

    fn eth(doors: &[Door], local: &[&str], only_v4: bool) -> Compiled {
        Compiled::new(&build(doors, local, only_v4), Linktype::ETHERNET)
    }

    #[test]
    fn ipv4_tcp_flags_and_ports() {
        let f = eth(&[door("d", "7000,8000", "syn,!ack")], &[V4, V6], false);
        assert!(f.passes(&frame(V4, syn(7000))));
        assert!(f.passes(&frame(V4, syn(8000))));
        let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
        assert!(!f.passes(&frame(
            V4,
            L4::Tcp {
                port: 7000,
                flags: syn_ack
            }
        )));
        let ack = TcpFlags::ACK;
        assert!(!f.passes(&frame(
            V4,
            L4::Tcp {
                port: 7000,
                flags: ack
            }
        )));
        let syn_fin = TcpFlags::SYN | TcpFlags::FIN;
        assert!(f.passes(&frame(
            V4,
            L4::Tcp {
                port: 7000,
                flags: syn_fin
            }
        )));
        assert!(!f.passes(&frame(V4, syn(7001))), "non-door port");
        assert!(!f.passes(&frame("192.0.2.2", syn(7000))), "wrong dst host");
        assert!(
            !f.passes(&frame(V4, L4::Udp { port: 7000 })),
            "udp to a tcp step"
        );
    }

    #[test]
    fn ipv4_non_first_fragment_is_rejected() {
        let f = eth(&[door("d", "7000", "")], &[V4], false);
        let mut p = frame(V4, syn(7000));
        assert!(f.passes(&p));
        p[14 + 7] = 1; // fragment offset 8 bytes: no TCP header here
        assert!(!f.passes(&p));
    }

    #[test]
    fn udp_steps() {
        let f = eth(&[door("d", "7000,4000:udp", "syn")], &[V4, V6], false);
        assert!(f.passes(&frame(V4, L4::Udp { port: 4000 })));
        assert!(f.passes(&frame(V6, L4::Udp { port: 4000 })));
        assert!(!f.passes(&frame(V4, syn(4000))), "tcp to a udp-only port");
        assert!(!f.passes(&frame(V6, syn(4000))), "tcp to a udp-only port");
        assert!(!f.passes(&frame(V4, L4::Udp { port: 7000 })));
        assert!(!f.passes(&frame(V4, L4::Udp { port: 4001 })));
    }

    #[test]
    fn ipv6_tcp_without_extension_headers_is_decided_in_kernel() {
        let f = eth(&[door("d", "7000,8000", "syn,!ack")], &[V4, V6], false);
        assert!(f.passes(&frame(V6, syn(7000))));
        assert!(f.passes(&frame(V6, syn(8000))));
        let syn_ack = TcpFlags::SYN | TcpFlags::ACK;
        assert!(!f.passes(&frame(
            V6,
            L4::Tcp {
                port: 7000,
                flags: syn_ack
            }
        )));
        assert!(!f.passes(&frame(V6, syn(7001))), "non-door port");
        assert!(
            !f.passes(&frame("2001:db8::2", syn(7000))),
            "wrong dst host"
        );
        assert!(!f.passes(&frame(V6, L4::Udp { port: 7000 })));
    }

    #[test]
    fn ipv6_with_extension_headers_is_let_through_to_our_addresses() {
        let f = eth(&[door("d", "7000", "syn,!ack")], &[V4, V6], false);
        for ext in IPV6_EXTENSION_HEADERS {
            let knock = with_ipv6_ext(frame(V6, syn(7000)), ext);
            assert!(f.passes(&knock), "ext header {ext} before a knock");
            // Undecidable in the kernel, so even these pass; the engine
            // rejects them.
            let other = with_ipv6_ext(frame(V6, syn(9999)), ext);
            assert!(f.passes(&other), "ext header {ext}, other port");
            let udp = with_ipv6_ext(frame(V6, L4::Udp { port: 7000 }), ext);
            assert!(f.passes(&udp), "ext header {ext}, udp");
            let elsewhere = with_ipv6_ext(frame("2001:db8::2", syn(7000)), ext);
            assert!(!f.passes(&elsewhere), "ext header {ext}, not our address");
        }
        // ESP hides the transport header; it could never be a knock.
        assert!(!f.passes(&with_ipv6_ext(frame(V6, syn(7000)), 50)));
    }

    #[test]
    fn ipv6_is_rejected_with_only_v4() {
        let f = eth(&[door("d", "7000", "syn")], &[V4, V6], true);
        assert!(f.passes(&frame(V4, syn(7000))));
        assert!(!f.passes(&frame(V6, syn(7000))));
        assert!(!f.passes(&with_ipv6_ext(frame(V6, syn(7000)), 0)));
    }

    #[test]
    fn target_door_matches_only_its_target() {
        let mut t = door("t", "1111", "syn");
        t.target = Some(ip("198.51.100.7"));
        let f = eth(&[door("a", "7000", "syn"), t], &[V4, V6], false);
        assert!(f.passes(&frame("198.51.100.7", syn(1111))));
        assert!(
            !f.passes(&frame(V4, syn(1111))),
            "target door, local address"
        );
        assert!(
            !f.passes(&frame(V6, syn(1111))),
            "target door, local v6 address"
        );
        assert!(f.passes(&frame(V4, syn(7000))), "other door, local address");
        assert!(
            !f.passes(&frame("198.51.100.7", syn(7000))),
            "other door, target"
        );
    }

    #[test]
    fn nothing_filter_rejects_everything() {
        let f = eth(&[], &[V4, V6], false);
        assert!(!f.passes(&frame(V4, syn(7000))));
        assert!(!f.passes(&frame(V6, L4::Udp { port: 7000 })));
        assert!(!f.passes(&with_ipv6_ext(frame(V6, syn(7000)), 0)));
    }

    /// The same decisions on link types without an Ethernet header.
    #[test]
    fn other_link_types_decide_alike() {
        let filter = build(&[door("d", "7000,4000:udp", "syn,!ack")], &[V4, V6], false);
        let cases = [
            (frame(V4, syn(7000)), true),
            (frame(V6, syn(7000)), true),
            (with_ipv6_ext(frame(V6, syn(7000)), 60), true),
            (frame(V6, L4::Udp { port: 4000 }), true),
            (frame(V4, syn(7001)), false),
            (frame(V6, syn(4000)), false),
            (
                frame(
                    V4,
                    L4::Tcp {
                        port: 7000,
                        flags: TcpFlags::SYN | TcpFlags::ACK,
                    },
                ),
                false,
            ),
            (frame("192.0.2.2", syn(7000)), false),
        ];
        for (eth_frame, expected) in cases {
            let ip_packet = &eth_frame[14..];
            let v6 = ip_packet[0] >> 4 == 6;
            let ethertype: u16 = if v6 { 0x86dd } else { 0x0800 };
            // Linux cooked v1: 16-byte header, protocol in the last two.
            let mut sll = vec![0u8; 14];
            sll.extend_from_slice(&ethertype.to_be_bytes());
            sll.extend_from_slice(ip_packet);
            // Linux cooked v2: 20-byte header, protocol first.
            let mut sll2 = ethertype.to_be_bytes().to_vec();
            sll2.extend_from_slice(&[0u8; 18]);
            sll2.extend_from_slice(ip_packet);
            // BSD loopback: address family in host byte order. For a live
            // (or dead) handle libpcap tests the host's own AF_INET6; the
            // BSD values (24, 28, 30) only for savefiles.
            let af = if v6 {
                nix::libc::AF_INET6
            } else {
                nix::libc::AF_INET
            } as u32;
            let mut null = af.to_ne_bytes().to_vec();
            null.extend_from_slice(ip_packet);
            let packets: [(Linktype, &[u8]); 4] = [
                (Linktype::LINUX_SLL, &sll),
                (Linktype(276), &sll2),
                (Linktype(DLT_RAW), ip_packet),
                (Linktype::NULL, &null),
            ];
            for (lt, pkt) in packets {
                assert_eq!(
                    Compiled::new(&filter, lt).passes(pkt),
                    expected,
                    "link type {lt:?}, frame {eth_frame:02x?}"
                );
            }
        }
    }
}
