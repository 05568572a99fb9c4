//! Wire decoder tests: every supported link type with IPv4 and IPv6, TCP and
//! UDP; VLAN tags, loopback families, extension headers, fragments, lengths
//! cut by the snaplen, the debug line, and properties over random packets.

use super::*;
use crate::core::knock::{Proto, TcpFlags};
use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

mod headers;
mod lengths;
mod sources;

const AT: Timestamp = Timestamp::from_nanos(1_500_000_000);
const V4_SRC: [u8; 4] = [192, 0, 2, 1];
const V4_DST: [u8; 4] = [192, 0, 2, 2];
const V6_SRC: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const V6_DST: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
const SPORT: u16 = 40000;
const DPORT: u16 = 7000;
const SYN: u8 = 0x02;

const ALL_LINKS: [LinkType; 8] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
    LinkType::Loop,
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ver {
    V4,
    V6,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum L4 {
    /// TCP with this raw flag byte (all eight bits honoured) and NS.
    Tcp(u8, bool),
    Udp,
}

/// Address pair for a test packet.
#[derive(Debug, Clone, Copy)]
enum Addrs {
    V4([u8; 4], [u8; 4]),
    V6([u8; 16], [u8; 16]),
}

impl Addrs {
    fn default_for(ver: Ver) -> Addrs {
        match ver {
            Ver::V4 => Addrs::V4(V4_SRC, V4_DST),
            Ver::V6 => Addrs::V6(V6_SRC, V6_DST),
        }
    }
    fn ver(self) -> Ver {
        match self {
            Addrs::V4(..) => Ver::V4,
            Addrs::V6(..) => Ver::V6,
        }
    }
    fn ips(self) -> (IpAddr, IpAddr) {
        match self {
            Addrs::V4(s, d) => (Ipv4Addr::from(s).into(), Ipv4Addr::from(d).into()),
            // A mapped address comes out as IPv4.
            Addrs::V6(s, d) => (
                IpAddr::from(Ipv6Addr::from(s)).to_canonical(),
                IpAddr::from(Ipv6Addr::from(d)).to_canonical(),
            ),
        }
    }
}

fn tcp_step(
    step: PacketBuilderStep<IpHeaders>,
    sport: u16,
    dport: u16,
    flags: u8,
    ns: bool,
) -> PacketBuilderStep<etherparse::TcpHeader> {
    let mut b = step.tcp(sport, dport, 1, 1024);
    if flags & 0x01 != 0 {
        b = b.fin();
    }
    if flags & 0x02 != 0 {
        b = b.syn();
    }
    if flags & 0x04 != 0 {
        b = b.rst();
    }
    if flags & 0x08 != 0 {
        b = b.psh();
    }
    if flags & 0x10 != 0 {
        b = b.ack(1);
    }
    if flags & 0x20 != 0 {
        b = b.urg(0);
    }
    if flags & 0x40 != 0 {
        b = b.ece();
    }
    if flags & 0x80 != 0 {
        b = b.cwr();
    }
    if ns {
        b = b.ns();
    }
    b
}

/// An IP packet (no link header) built by etherparse.
fn ip_packet(addrs: Addrs, l4: L4, sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
    let step = match addrs {
        Addrs::V4(s, d) => PacketBuilder::ipv4(s, d, 64),
        Addrs::V6(s, d) => PacketBuilder::ipv6(s, d, 64),
    };
    let mut out = Vec::new();
    match l4 {
        L4::Tcp(flags, ns) => tcp_step(step, sport, dport, flags, ns)
            .write(&mut out, payload)
            .unwrap(),
        L4::Udp => step.udp(sport, dport).write(&mut out, payload).unwrap(),
    }
    out
}

fn ethertype(ver: Ver) -> [u8; 2] {
    match ver {
        Ver::V4 => [0x08, 0x00],
        Ver::V6 => [0x86, 0xdd],
    }
}

/// Prefixes the link header of `link` by hand. For NULL the family is
/// written little-endian (an x86 writer) with macOS's AF_INET6.
fn frame(link: LinkType, ver: Ver, ip: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    match link {
        LinkType::Ethernet => {
            f.extend_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
            f.extend_from_slice(&ethertype(ver));
        }
        LinkType::LinuxSll => {
            f.extend_from_slice(&[0, 0]); // packet type: to us
            f.extend_from_slice(&[0x02, 0x00]); // ARPHRD_PPP: not Ethernet
            f.extend_from_slice(&[0, 0]); // address length
            f.extend_from_slice(&[0; 8]); // address
            f.extend_from_slice(&ethertype(ver));
        }
        LinkType::LinuxSll2 => {
            f.extend_from_slice(&ethertype(ver));
            f.extend_from_slice(&[0, 0]); // reserved
            f.extend_from_slice(&3u32.to_be_bytes()); // interface index
            f.extend_from_slice(&[0xff, 0xfe]); // ARPHRD_NONE (tun)
            f.push(0); // packet type
            f.push(0); // address length
            f.extend_from_slice(&[0; 8]);
        }
        LinkType::Null => {
            let af: u32 = if ver == Ver::V4 { 2 } else { 30 };
            f.extend_from_slice(&af.to_le_bytes());
        }
        LinkType::Loop => {
            let af: u32 = if ver == Ver::V4 { 2 } else { 24 };
            f.extend_from_slice(&af.to_be_bytes());
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => {}
    }
    f.extend_from_slice(ip);
    f
}

fn link_len(link: LinkType) -> usize {
    match link {
        LinkType::Ethernet => 14,
        LinkType::LinuxSll => 16,
        LinkType::LinuxSll2 => 20,
        LinkType::Null | LinkType::Loop => 4,
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => 0,
    }
}

fn fits(link: LinkType, ver: Ver) -> bool {
    !matches!(
        (link, ver),
        (LinkType::Ipv4, Ver::V6) | (LinkType::Ipv6, Ver::V4)
    )
}

fn expected(addrs: Addrs, l4: L4, sport: u16, dport: u16, wire_len: u32) -> Packet {
    let (src, dst) = addrs.ips();
    let (proto, tcp_flags) = match l4 {
        L4::Tcp(flags, _) => (Proto::Tcp, TcpFlags(flags & 0x3f)),
        L4::Udp => (Proto::Udp, TcpFlags::default()),
    };
    Packet {
        knock: Knock {
            at: AT,
            src,
            dst,
            proto,
            dst_port: dport,
            tcp_flags,
        },
        src_port: sport,
        wire_len,
    }
}

fn parse_all(link: LinkType, data: &[u8]) -> Result<Packet, Skip> {
    parse(link, data, data.len() as u32, AT)
}

// ---- from_dlt ----

#[test]
fn from_dlt_maps_every_supported_value() {
    let cases = [
        (0, LinkType::Null),
        (1, LinkType::Ethernet),
        (101, LinkType::RawIp),
        (108, LinkType::Loop),
        (113, LinkType::LinuxSll),
        (228, LinkType::Ipv4),
        (229, LinkType::Ipv6),
        (276, LinkType::LinuxSll2),
    ];
    for (dlt, link) in cases {
        assert_eq!(LinkType::from_dlt(dlt), Ok(link), "dlt {dlt}");
    }
}

#[cfg(not(any(target_os = "openbsd", target_os = "netbsd", target_os = "freebsd")))]
#[test]
fn from_dlt_raw_is_12_live_and_14_from_openbsd() {
    assert_eq!(LinkType::from_dlt(12), Ok(LinkType::RawIp));
    assert_eq!(LinkType::from_dlt(14), Ok(LinkType::RawIp));
}

#[cfg(target_os = "openbsd")]
#[test]
fn from_dlt_openbsd_numbers() {
    assert_eq!(LinkType::from_dlt(12), Ok(LinkType::Loop));
    assert_eq!(LinkType::from_dlt(14), Ok(LinkType::RawIp));
}

#[test]
fn from_dlt_unsupported_names_the_type() {
    let e = LinkType::from_dlt(105).unwrap_err();
    assert_eq!(e, UnsupportedLinkType { dlt: 105 });
    assert_eq!(
        e.to_string(),
        "unsupported link-layer type 105 (IEEE802_11)"
    );
    assert_eq!(
        LinkType::from_dlt(127).unwrap_err().to_string(),
        "unsupported link-layer type 127 (IEEE802_11_RADIO)"
    );
    assert_eq!(
        LinkType::from_dlt(9).unwrap_err().to_string(),
        "unsupported link-layer type 9 (PPP)"
    );
    assert_eq!(
        LinkType::from_dlt(4242).unwrap_err().to_string(),
        "unsupported link-layer type 4242"
    );
    assert_eq!(
        LinkType::from_dlt(-1).unwrap_err().to_string(),
        "unsupported link-layer type -1"
    );
}

#[test]
fn link_type_names() {
    let names: Vec<_> = ALL_LINKS.iter().map(|l| l.to_string()).collect();
    assert_eq!(
        names,
        [
            "EN10MB",
            "LINUX_SLL",
            "LINUX_SLL2",
            "RAW",
            "IPV4",
            "IPV6",
            "NULL",
            "LOOP"
        ]
    );
}

// ---- every link type x v4/v6 x tcp/udp ----

#[test]
fn every_link_version_and_protocol() {
    let mut checked = 0;
    for link in ALL_LINKS {
        for ver in [Ver::V4, Ver::V6] {
            if !fits(link, ver) {
                continue;
            }
            for l4 in [L4::Tcp(SYN, false), L4::Tcp(0x12, false), L4::Udp] {
                let addrs = Addrs::default_for(ver);
                let f = frame(link, ver, &ip_packet(addrs, l4, SPORT, DPORT, b"x"));
                let got = parse(link, &f, 1514, AT);
                assert_eq!(
                    got,
                    Ok(expected(addrs, l4, SPORT, DPORT, 1514)),
                    "{link:?} {ver:?} {l4:?}"
                );
                checked += 1;
            }
        }
    }
    assert_eq!(checked, 3 * (6 * 2 + 2));
}

#[test]
fn dedicated_ip_link_types_reject_the_other_version() {
    let v6 = ip_packet(Addrs::default_for(Ver::V6), L4::Udp, SPORT, DPORT, b"");
    let v4 = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    assert_eq!(
        parse_all(LinkType::Ipv4, &v6),
        Err(Skip::Malformed(VERSION_MISMATCH))
    );
    assert_eq!(
        parse_all(LinkType::Ipv6, &v4),
        Err(Skip::Malformed(VERSION_MISMATCH))
    );
    // The same for an ethertype that disagrees with the packet.
    let mut f = frame(LinkType::Ethernet, Ver::V4, &v6);
    assert_eq!(
        parse_all(LinkType::Ethernet, &f),
        Err(Skip::Malformed(VERSION_MISMATCH))
    );
    f[12..14].copy_from_slice(&ethertype(Ver::V6));
    assert!(parse_all(LinkType::Ethernet, &f).is_ok());
}

#[test]
fn raw_ip_with_unknown_version_is_malformed() {
    let mut p = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    p[0] = 0x55;
    assert_eq!(
        parse_all(LinkType::RawIp, &p),
        Err(Skip::Malformed("IP version is neither 4 nor 6"))
    );
}

#[test]
fn etherparse_built_ethernet_frame() {
    let builder = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12])
        .ipv4([10, 0, 0, 9], [10, 0, 0, 1], 64)
        .tcp(1234, 22, 7, 512)
        .syn()
        .ack(5);
    let mut f = Vec::new();
    builder.write(&mut f, &[]).unwrap();
    let p = parse(LinkType::Ethernet, &f, 54, AT).unwrap();
    assert_eq!(p.knock.src, IpAddr::from([10, 0, 0, 9]));
    assert_eq!(p.knock.dst, IpAddr::from([10, 0, 0, 1]));
    assert_eq!(p.knock.proto, Proto::Tcp);
    assert_eq!(p.knock.dst_port, 22);
    assert_eq!(p.knock.tcp_flags, TcpFlags::SYN | TcpFlags::ACK);
    assert_eq!(p.knock.at, AT);
    assert_eq!(p.src_port, 1234);
    assert_eq!(p.wire_len, 54);
}

#[test]
fn wire_len_is_passed_through_not_measured() {
    let f = frame(
        LinkType::Ethernet,
        Ver::V4,
        &ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b""),
    );
    assert_eq!(
        parse(LinkType::Ethernet, &f, 9000, AT).unwrap().wire_len,
        9000
    );
}

// ---- BSD loopback ----

#[test]
fn null_accepts_every_family_in_both_byte_orders() {
    let v4 = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    let v6 = ip_packet(Addrs::default_for(Ver::V6), L4::Udp, SPORT, DPORT, b"");
    let cases = [(2u32, &v4, Ver::V4), (10, &v6, Ver::V6), (24, &v6, Ver::V6)];
    let cases = cases
        .into_iter()
        .chain([(28, &v6, Ver::V6), (30, &v6, Ver::V6)]);
    for (af, ip, ver) in cases {
        for hdr in [af.to_le_bytes(), af.to_be_bytes()] {
            let mut f = hdr.to_vec();
            f.extend_from_slice(ip);
            let want = expected(
                Addrs::default_for(ver),
                L4::Udp,
                SPORT,
                DPORT,
                f.len() as u32,
            );
            assert_eq!(parse_all(LinkType::Null, &f), Ok(want), "af {af} {hdr:?}");
        }
    }
}

#[test]
fn loop_is_network_byte_order_only() {
    let v4 = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    let mut f = 2u32.to_le_bytes().to_vec();
    f.extend_from_slice(&v4);
    assert_eq!(
        parse_all(LinkType::Loop, &f),
        Err(Skip::NotIpFamily(0x0200_0000))
    );
    f[..4].copy_from_slice(&2u32.to_be_bytes());
    assert!(parse_all(LinkType::Loop, &f).is_ok());
}

#[test]
fn null_with_other_family_is_not_ip() {
    let mut f = 17u32.to_le_bytes().to_vec();
    f.extend_from_slice(&[0x45; 40]);
    assert_eq!(parse_all(LinkType::Null, &f), Err(Skip::NotIpFamily(17)));
    assert_eq!(
        Skip::NotIpFamily(17).to_string(),
        "not IP (address family 17)"
    );
}

// ---- VLAN ----

/// An Ethernet frame with VLAN tags: the Ethernet type field holds the
/// first TPID, and each tag is a TCI followed by the next type.
fn tagged(tags: &[u16], ver: Ver, ip: &[u8]) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
    f.extend_from_slice(&tags[0].to_be_bytes());
    for i in 0..tags.len() {
        // Priority 5, VLAN id 100 + i.
        let tci = (5u16 << 13) | (100 + i as u16);
        f.extend_from_slice(&tci.to_be_bytes());
        match tags.get(i + 1) {
            Some(next) => f.extend_from_slice(&next.to_be_bytes()),
            None => f.extend_from_slice(&ethertype(ver)),
        }
    }
    f.extend_from_slice(ip);
    f
}

#[test]
fn vlan_single_and_stacked() {
    let stacks: [&[u16]; 6] = [
        &[0x8100],
        &[0x88a8, 0x8100],
        &[0x9100, 0x8100],
        &[0x8100, 0x8100],
        &[0x88a8, 0x88a8, 0x8100],
        &[0x88a8, 0x9100, 0x8100, 0x8100],
    ];
    for tags in stacks {
        for ver in [Ver::V4, Ver::V6] {
            let addrs = Addrs::default_for(ver);
            let l4 = L4::Tcp(SYN, false);
            let f = tagged(tags, ver, &ip_packet(addrs, l4, SPORT, DPORT, b""));
            assert_eq!(
                f.len(),
                14 + 4 * tags.len() + if ver == Ver::V4 { 40 } else { 60 }
            );
            let want = expected(addrs, l4, SPORT, DPORT, f.len() as u32);
            assert_eq!(
                parse_all(LinkType::Ethernet, &f),
                Ok(want),
                "{tags:x?} {ver:?}"
            );
        }
    }
}

#[test]
fn vlan_built_by_etherparse() {
    let mut f = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .double_vlan(
            etherparse::VlanId::try_new(10).unwrap(),
            etherparse::VlanId::try_new(20).unwrap(),
        )
        .ipv6(V6_SRC, V6_DST, 1)
        .udp(SPORT, DPORT)
        .write(&mut f, b"k")
        .unwrap();
    let want = expected(Addrs::default_for(Ver::V6), L4::Udp, SPORT, DPORT, 7);
    assert_eq!(parse(LinkType::Ethernet, &f, 7, AT), Ok(want));
}

#[test]
fn vlan_tag_in_linux_sll() {
    // libpcap re-inserts an offloaded tag after the SLL header.
    let ip = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    let mut f = frame(LinkType::LinuxSll, Ver::V4, &[]);
    f[14..16].copy_from_slice(&[0x81, 0x00]);
    f.extend_from_slice(&[0x00, 0x64, 0x08, 0x00]);
    f.extend_from_slice(&ip);
    let want = expected(
        Addrs::default_for(Ver::V4),
        L4::Udp,
        SPORT,
        DPORT,
        f.len() as u32,
    );
    assert_eq!(parse_all(LinkType::LinuxSll, &f), Ok(want));
}

#[test]
fn vlan_tagged_arp_is_not_ip() {
    let mut f = vec![0xff; 12];
    f.extend_from_slice(&[0x81, 0x00, 0x00, 0x05, 0x08, 0x06]);
    f.extend_from_slice(&[0; 28]);
    assert_eq!(
        parse_all(LinkType::Ethernet, &f),
        Err(Skip::NotIpEtherType(0x0806))
    );
}

#[test]
fn truncated_vlan_tag() {
    let mut f = vec![0xff; 12];
    f.extend_from_slice(&[0x88, 0xa8, 0x00, 0x05]);
    assert_eq!(
        parse_all(LinkType::Ethernet, &f),
        Err(Skip::Truncated(Header::Vlan))
    );
}

// ---- not IP, not TCP/UDP ----

#[test]
fn arp_is_not_ip() {
    let mut f = vec![0xff; 6];
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x08, 0x06]);
    f.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
    f.extend_from_slice(&[0; 20]);
    let got = parse_all(LinkType::Ethernet, &f);
    assert_eq!(got, Err(Skip::NotIpEtherType(0x0806)));
    assert_eq!(got.unwrap_err().to_string(), "not IP (ethertype 0x0806)");
}

#[test]
fn cooked_captures_check_the_protocol_field() {
    let sll = [vec![0; 14], vec![0x08, 0x06], vec![0; 28]].concat();
    assert_eq!(
        parse_all(LinkType::LinuxSll, &sll),
        Err(Skip::NotIpEtherType(0x0806))
    );
    let sll2 = [vec![0x88, 0xcc], vec![0; 18], vec![0; 28]].concat();
    assert_eq!(
        parse_all(LinkType::LinuxSll2, &sll2),
        Err(Skip::NotIpEtherType(0x88cc))
    );
}

#[test]
fn icmp_is_not_tcp_udp() {
    let mut v4 = Vec::new();
    PacketBuilder::ethernet2([1; 6], [2; 6])
        .ipv4(V4_SRC, V4_DST, 64)
        .icmpv4_echo_request(1, 1)
        .write(&mut v4, b"ping")
        .unwrap();
    let got = parse_all(LinkType::Ethernet, &v4);
    assert_eq!(got, Err(Skip::NotTcpUdp(1)));
    assert_eq!(
        got.unwrap_err().to_string(),
        "not TCP/UDP (IP protocol 1, ICMP)"
    );

    let mut v6 = Vec::new();
    PacketBuilder::ipv6(V6_SRC, V6_DST, 64)
        .icmpv6_echo_request(1, 1)
        .write(&mut v6, b"ping")
        .unwrap();
    assert_eq!(parse_all(LinkType::RawIp, &v6), Err(Skip::NotTcpUdp(58)));
}
