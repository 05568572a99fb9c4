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
//! decision. It must not touch pcap either, not even to check that a filter
//! compiles: that check (against a dead handle, without privileges) lives in
//! [`crate::daemon::filter_check`], since `core` stays free of IO and C
//! libraries.
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

use crate::core::config::{Door, FlagRule, Sequence};
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

/// Builds the capture filter for `doors`, each with the sequence live for
/// it now (a one-time door moves on; a disabled door is left out by the
/// caller).
///
/// `local` holds every address (IPv4 and IPv6) of the capture interface(s);
/// a door with a `Target` matches knocks to that address instead. With
/// `only_v4` (`-4`) IPv6 is left out entirely, so a door whose only
/// destination is IPv6 contributes nothing. Returns [`MATCH_NOTHING`] when
/// no door has a destination.
pub fn build_filter<'a>(
    doors: impl IntoIterator<Item = (&'a Door, &'a Sequence)>,
    local: &[IpAddr],
    only_v4: bool,
) -> String {
    build_filter_with_ranges(doors, std::iter::empty(), local, only_v4)
}

/// A door whose live sequences are let through by their whole port range
/// instead of port by port: a door of many users, whose port list would
/// make a filter longer than the kernel takes (4096 instructions).
#[derive(Debug, Clone, Copy)]
pub struct PortRange<'a> {
    pub door: &'a Door,
    pub proto: Proto,
    pub first: u16,
    pub last: u16,
}

/// [`build_filter`], with some doors' ports given as ranges.
pub fn build_filter_with_ranges<'a>(
    doors: impl IntoIterator<Item = (&'a Door, &'a Sequence)>,
    ranges: impl IntoIterator<Item = PortRange<'a>>,
    local: &[IpAddr],
    only_v4: bool,
) -> String {
    let ranges: Vec<PortRange<'a>> = ranges.into_iter().collect();
    let mut groups: Vec<Group> = Vec::new();
    let families: &[Family] = if only_v4 {
        &[Family::V4]
    } else {
        &[Family::V4, Family::V6]
    };
    for (door, sequence) in doors {
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
            group.add_door(door, sequence);
        }
    }
    for r in &ranges {
        for &family in families {
            let hosts = destinations(r.door, local, family);
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
            group.add_range(r);
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
    /// Port ranges (doors of many users), TCP per flag rule.
    tcp_ranges: Vec<(FlagRule, (u16, u16))>,
    udp_ranges: Vec<(u16, u16)>,
}

impl Group {
    fn new(family: Family, hosts: Vec<IpAddr>) -> Self {
        Group {
            family,
            hosts,
            tcp: Vec::new(),
            udp: Vec::new(),
            tcp_ranges: Vec::new(),
            udp_ranges: Vec::new(),
        }
    }

    fn add_range(&mut self, r: &PortRange<'_>) {
        let rule = r.door.tcp_flags;
        match r.proto {
            Proto::Udp => push_unique(&mut self.udp_ranges, (r.first, r.last)),
            Proto::Tcp if rule.set.0 & rule.clear.0 == 0 => {
                push_unique(&mut self.tcp_ranges, (rule, (r.first, r.last)))
            }
            Proto::Tcp => {}
        }
    }

    fn add_door(&mut self, door: &Door, sequence: &Sequence) {
        let rule = door.tcp_flags;
        // A rule that both requires and forbids a flag matches no packet
        // (the parser rejects it; `Door` fields are public, though), so its
        // TCP steps would only let useless packets in.
        let satisfiable = rule.set.0 & rule.clear.0 == 0;
        for step in sequence.steps() {
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
        self.tcp.is_empty()
            && self.udp.is_empty()
            && self.tcp_ranges.is_empty()
            && self.udp_ranges.is_empty()
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
        for (rule, (first, last)) in &self.tcp_ranges {
            let mut alt = format!("tcp dst portrange {first}-{last}");
            if let Some(test) = flag_test(self.family, rule) {
                alt.push_str(" and ");
                alt.push_str(&test);
            }
            alts.push(alt);
        }
        for (first, last) in &self.udp_ranges {
            alts.push(format!("udp dst portrange {first}-{last}"));
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
