//! Wire decoder tests: every supported link type with IPv4 and IPv6, TCP and
//! UDP; VLAN tags, loopback families, extension headers, fragments, lengths
//! cut by the snaplen, the debug line, and properties over random packets.

use super::*;
use crate::core::knock::{Proto, TcpFlags};
use etherparse::{IpHeaders, PacketBuilder, PacketBuilderStep};
use proptest::prelude::*;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

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
            Addrs::V6(s, d) => (Ipv6Addr::from(s).into(), Ipv6Addr::from(d).into()),
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

// ---- IPv6 extension headers ----

const HOP_BY_HOP: u8 = 0;
const ROUTING: u8 = 43;
const FRAGMENT: u8 = 44;
const ESP: u8 = 50;
const AUTH: u8 = 51;
const NO_NEXT: u8 = 59;
const DEST_OPTS: u8 = 60;

/// The body of an extension header of `kind` (its first byte, next
/// header, is filled in by `with_v6_exts`).
fn ext(kind: u8) -> Vec<u8> {
    match kind {
        // PadN option of 4 bytes: 8 bytes in all.
        HOP_BY_HOP | DEST_OPTS => vec![0, 0, 1, 4, 0, 0, 0, 0],
        // 16 bytes: length field 1 (in 8-byte units after the first 8).
        ROUTING => [vec![0, 1, 0, 0, 0, 0, 0, 0], vec![0; 8]].concat(),
        // Offset 0, M clear: an atomic fragment.
        FRAGMENT => vec![0, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef],
        // Payload length 1 -> (1 + 2) * 4 = 12 bytes.
        AUTH => vec![0, 1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1],
        _ => unreachable!(),
    }
}

/// Inserts extension headers between the IPv6 header and its payload,
/// chaining next-header fields and fixing the payload length.
fn with_v6_exts(pkt: &[u8], exts: &[Vec<u8>], kinds: &[u8]) -> Vec<u8> {
    let mut out = pkt[..40].to_vec();
    let transport = pkt[6];
    let mut chain = kinds.to_vec();
    chain.push(transport);
    out[6] = chain[0];
    for (i, e) in exts.iter().enumerate() {
        let mut e = e.clone();
        e[0] = chain[i + 1];
        out.extend_from_slice(&e);
    }
    out.extend_from_slice(&pkt[40..]);
    let plen = (out.len() - 40) as u16;
    out[4..6].copy_from_slice(&plen.to_be_bytes());
    out
}

fn v6_with(kinds: &[u8], l4: L4) -> Vec<u8> {
    let exts: Vec<_> = kinds.iter().map(|&k| ext(k)).collect();
    let base = ip_packet(Addrs::default_for(Ver::V6), l4, SPORT, DPORT, b"");
    with_v6_exts(&base, &exts, kinds)
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let chains: [&[u8]; 5] = [
        &[HOP_BY_HOP, DEST_OPTS],
        &[HOP_BY_HOP],
        &[DEST_OPTS, ROUTING, DEST_OPTS],
        &[AUTH],
        &[HOP_BY_HOP, ROUTING, AUTH, DEST_OPTS],
    ];
    for kinds in chains {
        for l4 in [L4::Tcp(SYN, false), L4::Udp] {
            let p = v6_with(kinds, l4);
            let want = expected(
                Addrs::default_for(Ver::V6),
                l4,
                SPORT,
                DPORT,
                p.len() as u32,
            );
            assert_eq!(parse_all(LinkType::Ipv6, &p), Ok(want), "{kinds:?} {l4:?}");
            let f = frame(LinkType::Ethernet, Ver::V6, &p);
            assert!(parse_all(LinkType::Ethernet, &f).is_ok());
        }
    }
}

#[test]
fn ipv6_fragment_header_is_skipped() {
    let atomic = ext(FRAGMENT);
    let mut first = ext(FRAGMENT);
    first[3] = 0x01; // M set, offset 0
    let mut later = ext(FRAGMENT);
    later[2] = 0x00;
    later[3] = 0x08; // offset 1 (in 8-byte units), M clear
    for body in [&atomic, &first, &later] {
        for kinds in [
            &[FRAGMENT][..],
            &[HOP_BY_HOP, FRAGMENT],
            &[DEST_OPTS, FRAGMENT],
        ] {
            let exts: Vec<_> = kinds
                .iter()
                .map(|&k| if k == FRAGMENT { body.clone() } else { ext(k) })
                .collect();
            let base = ip_packet(
                Addrs::default_for(Ver::V6),
                L4::Tcp(SYN, false),
                SPORT,
                DPORT,
                b"",
            );
            let p = with_v6_exts(&base, &exts, kinds);
            assert_eq!(
                parse_all(LinkType::RawIp, &p),
                Err(Skip::Ipv6Fragment),
                "{body:?}"
            );
        }
    }
    assert_eq!(Skip::Ipv6Fragment.to_string(), "IPv6 fragment");
}

#[test]
fn ipv6_esp_and_no_next_header_are_not_tcp_udp() {
    let base = ip_packet(Addrs::default_for(Ver::V6), L4::Udp, SPORT, DPORT, b"");
    for proto in [ESP, NO_NEXT] {
        let mut p = base.clone();
        p[6] = proto;
        assert_eq!(parse_all(LinkType::Ipv6, &p), Err(Skip::NotTcpUdp(proto)));
        // Also behind a hop-by-hop header.
        let mut p = with_v6_exts(&base, &[ext(HOP_BY_HOP)], &[HOP_BY_HOP]);
        p[40] = proto;
        assert_eq!(parse_all(LinkType::Ipv6, &p), Err(Skip::NotTcpUdp(proto)));
    }
    assert_eq!(
        Skip::NotTcpUdp(NO_NEXT).to_string(),
        "not TCP/UDP (IP protocol 59, no next header)"
    );
}

/// Regression: a parsed header naming a truncated one used to send
/// etherparse's extension iterator past the end of the slice (UB,
/// an abort in debug builds) when we looked for fragment headers.
#[test]
fn ipv6_truncated_extension_after_a_parsed_one() {
    let p = v6_with(&[HOP_BY_HOP, DEST_OPTS], L4::Udp);
    // Keep the hop-by-hop header and half the destination options.
    let mut cut = p[..40 + 8 + 4].to_vec();
    cut[4..6].copy_from_slice(&12u16.to_be_bytes());
    assert_eq!(
        parse_all(LinkType::Ipv6, &cut),
        Err(Skip::Truncated(Header::Ipv6Extension))
    );
    // The same with the payload length still claiming the whole packet.
    assert_eq!(
        parse_all(LinkType::Ipv6, &p[..40 + 8 + 4]),
        Err(Skip::Truncated(Header::Ipv6Extension))
    );
    // And after a fragment header, whose verdict wins.
    let mut first = ext(FRAGMENT);
    first[3] = 0x01;
    let base = ip_packet(Addrs::default_for(Ver::V6), L4::Udp, SPORT, DPORT, b"");
    let p = with_v6_exts(&base, &[first, ext(DEST_OPTS)], &[FRAGMENT, DEST_OPTS]);
    assert_eq!(
        parse_all(LinkType::Ipv6, &p[..40 + 8 + 4]),
        Err(Skip::Ipv6Fragment)
    );
}

#[test]
fn ipv6_hop_by_hop_not_first_is_malformed() {
    let p = v6_with(&[DEST_OPTS, HOP_BY_HOP], L4::Udp);
    assert_eq!(
        parse_all(LinkType::Ipv6, &p),
        Err(Skip::Malformed("IPv6 hop-by-hop header not first"))
    );
}

// ---- IPv4 ----

/// Sets the IPv4 total length to the packet's length after an edit.
fn set_v4_total_len(p: &mut [u8]) {
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
}

fn v4_tcp() -> Vec<u8> {
    ip_packet(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        b"",
    )
}

#[test]
fn ipv4_fragments_are_skipped() {
    let cases = [
        ([0x20, 0x00], Err(Skip::Ipv4Fragment)), // MF, offset 0
        ([0x00, 0x01], Err(Skip::Ipv4Fragment)), // offset 1
        ([0x20, 0x10], Err(Skip::Ipv4Fragment)), // MF and offset
        ([0x1f, 0xff], Err(Skip::Ipv4Fragment)), // largest offset
    ];
    for (frag, want) in cases {
        let mut p = v4_tcp();
        p[6..8].copy_from_slice(&frag);
        assert_eq!(parse_all(LinkType::Ipv4, &p), want, "{frag:x?}");
    }
    // Don't-fragment alone is a whole packet.
    let mut p = v4_tcp();
    p[6..8].copy_from_slice(&[0x40, 0x00]);
    assert!(parse_all(LinkType::Ipv4, &p).is_ok());
}

#[test]
fn ipv4_options_are_skipped_by_ihl() {
    let base = v4_tcp();
    // IHL 7: 8 bytes of options (NOPs) before TCP.
    let mut p = base[..20].to_vec();
    p.extend_from_slice(&[1; 8]);
    p.extend_from_slice(&base[20..]);
    p[0] = 0x47;
    set_v4_total_len(&mut p);
    let want = expected(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        48,
    );
    assert_eq!(parse_all(LinkType::RawIp, &p), Ok(want));
}

#[test]
fn ipv4_bad_ihl_is_malformed() {
    for ihl in 0..5u8 {
        let mut p = v4_tcp();
        p[0] = 0x40 | ihl;
        assert_eq!(
            parse_all(LinkType::RawIp, &p),
            Err(Skip::Malformed("IPv4 header length below 20 bytes")),
            "ihl {ihl}"
        );
    }
    // An IHL reaching past the capture is truncation.
    let mut p = v4_tcp();
    p[0] = 0x4f;
    assert_eq!(
        parse_all(LinkType::RawIp, &p),
        Err(Skip::Truncated(Header::Ipv4))
    );
}

#[test]
fn ipv4_authentication_header_is_walked() {
    let base = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    let mut ah = ext(AUTH);
    ah[0] = 17;
    let mut p = base[..20].to_vec();
    p.extend_from_slice(&ah);
    p.extend_from_slice(&base[20..]);
    p[9] = AUTH;
    set_v4_total_len(&mut p);
    let want = expected(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, 40);
    assert_eq!(parse_all(LinkType::RawIp, &p), Ok(want));
    p[21] = 0; // AH payload length 0 is invalid
    assert_eq!(
        parse_all(LinkType::RawIp, &p),
        Err(Skip::Malformed("IP authentication header length is 0"))
    );
}

#[test]
fn ipv4_zero_total_length_uses_the_capture() {
    // As captured before TSO fills in the length.
    let mut p = v4_tcp();
    p[2..4].copy_from_slice(&[0, 0]);
    let want = expected(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        40,
    );
    assert_eq!(parse_all(LinkType::RawIp, &p), Ok(want));
}

// ---- TCP details ----

#[test]
fn tcp_flags_keep_only_the_six_door_flags() {
    let p = ip_packet(
        Addrs::default_for(Ver::V4),
        L4::Tcp(0xff, true),
        SPORT,
        DPORT,
        b"",
    );
    assert_eq!(p[20 + 13], 0xff);
    assert_eq!(p[20 + 12], 0x51); // data offset 5, NS set
    let got = parse_all(LinkType::Ipv4, &p).unwrap();
    assert_eq!(got.knock.tcp_flags, TcpFlags(0x3f));
    for bit in 0..8 {
        let flags = 1u8 << bit;
        let p = ip_packet(
            Addrs::default_for(Ver::V6),
            L4::Tcp(flags, false),
            SPORT,
            DPORT,
            b"",
        );
        let got = parse_all(LinkType::Ipv6, &p).unwrap();
        assert_eq!(got.knock.tcp_flags, TcpFlags(flags & 0x3f), "bit {bit}");
    }
}

#[test]
fn tcp_data_offset_below_five_is_malformed() {
    let mut p = v4_tcp();
    p[20 + 12] = 0x40;
    assert_eq!(
        parse_all(LinkType::Ipv4, &p),
        Err(Skip::Malformed("TCP data offset below 20 bytes"))
    );
}

// ---- lengths: padding, snaplen, truncation ----

#[test]
fn ethernet_padding_is_ignored() {
    let ip = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"k");
    let mut f = frame(LinkType::Ethernet, Ver::V4, &ip);
    assert_eq!(f.len(), 43);
    f.resize(60, 0xaa);
    f.extend_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // FCS
    let want = expected(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, 64);
    assert_eq!(parse_all(LinkType::Ethernet, &f), Ok(want));
}

#[test]
fn ip_length_bounds_the_transport_over_padding() {
    // Total length says only 2 bytes follow the IPv4 header; the padding
    // after them must not be read as ports.
    let ip = ip_packet(Addrs::default_for(Ver::V4), L4::Udp, SPORT, DPORT, b"");
    let mut f = frame(LinkType::Ethernet, Ver::V4, &ip);
    f[14 + 2..14 + 4].copy_from_slice(&22u16.to_be_bytes());
    assert_eq!(
        parse_all(LinkType::Ethernet, &f),
        Err(Skip::Truncated(Header::Udp))
    );

    let ip = ip_packet(
        Addrs::default_for(Ver::V6),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        b"",
    );
    let mut f = frame(LinkType::Ethernet, Ver::V6, &ip);
    f[14 + 4..14 + 6].copy_from_slice(&13u16.to_be_bytes());
    assert_eq!(
        parse_all(LinkType::Ethernet, &f),
        Err(Skip::Truncated(Header::Tcp))
    );
    f[14 + 4..14 + 6].copy_from_slice(&14u16.to_be_bytes());
    assert!(parse_all(LinkType::Ethernet, &f).is_ok());
}

#[test]
fn snaplen_cut_tcp_options_still_parse() {
    // A SYN with 20 bytes of options, captured up to the flags only.
    let ip = ip_packet(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        b"",
    );
    let mut p = ip[..20].to_vec();
    p.extend_from_slice(&ip[20..40]);
    p.extend_from_slice(&[1; 20]);
    p[20 + 12] = 0xa0; // data offset 10
    set_v4_total_len(&mut p);
    let want = expected(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        60,
    );
    assert_eq!(parse(LinkType::RawIp, &p[..34], 60, AT), Ok(want));
}

/// Every prefix of a valid packet: too short for the headers we read
/// gives `Truncated`, long enough gives exactly the built packet.
fn check_every_prefix(link: LinkType, full: &[u8], needed: usize, want: Packet) {
    for n in 0..=full.len() {
        let got = parse(link, &full[..n], want.wire_len, AT);
        if n < needed {
            assert!(
                matches!(got, Err(Skip::Truncated(_))),
                "{link:?} len {n}/{needed}: {got:?}"
            );
        } else {
            assert_eq!(got, Ok(want), "{link:?} len {n}/{needed}");
        }
    }
}

#[test]
fn truncation_at_every_length() {
    for link in ALL_LINKS {
        for ver in [Ver::V4, Ver::V6] {
            if !fits(link, ver) {
                continue;
            }
            for l4 in [L4::Tcp(SYN, false), L4::Udp] {
                let addrs = Addrs::default_for(ver);
                let f = frame(link, ver, &ip_packet(addrs, l4, SPORT, DPORT, b"knock"));
                let ip_len = if ver == Ver::V4 { 20 } else { 40 };
                let l4_len = if l4 == L4::Udp { 4 } else { 14 };
                let needed = link_len(link) + ip_len + l4_len;
                let want = expected(addrs, l4, SPORT, DPORT, f.len() as u32);
                check_every_prefix(link, &f, needed, want);
            }
        }
    }
}

#[test]
fn truncation_with_vlan_and_extension_headers() {
    let p = v6_with(&[HOP_BY_HOP, ROUTING, DEST_OPTS], L4::Tcp(SYN, false));
    let f = tagged(&[0x88a8, 0x8100], Ver::V6, &p);
    let needed = 14 + 8 + 40 + 8 + 16 + 8 + 14;
    let want = expected(
        Addrs::default_for(Ver::V6),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        999,
    );
    check_every_prefix(LinkType::Ethernet, &f, needed, want);
}

#[test]
fn truncation_names_the_header() {
    let cases = [
        (LinkType::Ethernet, 13, Header::Ethernet),
        (LinkType::LinuxSll, 15, Header::LinuxSll),
        (LinkType::LinuxSll2, 19, Header::LinuxSll2),
        (LinkType::Null, 3, Header::Loopback),
        (LinkType::Loop, 0, Header::Loopback),
        (LinkType::RawIp, 0, Header::Ip),
        (LinkType::Ethernet, 14 + 19, Header::Ipv4),
        (LinkType::Ethernet, 14 + 20 + 13, Header::Tcp),
    ];
    for (link, n, header) in cases {
        let f = frame(link, Ver::V4, &v4_tcp());
        assert_eq!(
            parse_all(link, &f[..n]),
            Err(Skip::Truncated(header)),
            "{link:?}"
        );
    }
    let f = frame(
        LinkType::LinuxSll,
        Ver::V6,
        &v6_with(&[HOP_BY_HOP], L4::Udp),
    );
    assert_eq!(
        parse_all(LinkType::LinuxSll, &f[..16 + 39]),
        Err(Skip::Truncated(Header::Ipv6))
    );
    assert_eq!(
        parse_all(LinkType::LinuxSll, &f[..16 + 47]),
        Err(Skip::Truncated(Header::Ipv6Extension))
    );
    assert_eq!(
        parse_all(LinkType::LinuxSll, &f[..16 + 48 + 3]),
        Err(Skip::Truncated(Header::Udp))
    );
    assert_eq!(
        Skip::Truncated(Header::Ipv6Extension).to_string(),
        "truncated IPv6 extension header"
    );
}

// ---- debug line ----

#[test]
fn debug_line_matches_knockd() {
    let v4 = expected(
        Addrs::default_for(Ver::V4),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        60,
    );
    assert_eq!(
        v4.to_string(),
        "tcp: 192.0.2.1:40000 -> 192.0.2.2:7000 60 bytes"
    );
    let v6 = expected(Addrs::default_for(Ver::V6), L4::Udp, 5353, 8000, 63);
    assert_eq!(
        v6.to_string(),
        "udp: 2001:db8::1:5353 -> 2001:db8::2:8000 63 bytes"
    );
}

#[test]
fn skip_reasons_read_well() {
    assert_eq!(Skip::Ipv4Fragment.to_string(), "IPv4 fragment");
    assert_eq!(
        Skip::NotTcpUdp(253).to_string(),
        "not TCP/UDP (IP protocol 253)"
    );
    assert_eq!(
        Skip::Malformed("TCP data offset below 20 bytes").to_string(),
        "malformed packet: TCP data offset below 20 bytes"
    );
    assert_eq!(
        Skip::NotIpEtherType(0x88cc).to_string(),
        "not IP (ethertype 0x88cc)"
    );
}

// ---- properties ----

fn any_link() -> impl Strategy<Value = LinkType> {
    prop::sample::select(ALL_LINKS.to_vec())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// Hostile input is data: no byte string panics any decoder.
    #[test]
    fn arbitrary_bytes_never_panic(data in prop::collection::vec(any::<u8>(), 0..160)) {
        for link in ALL_LINKS {
            let _ = parse(link, &data, data.len() as u32, AT);
        }
    }

    /// Random damage to a valid frame (deep in the IP and extension
    /// headers, where arbitrary bytes rarely reach) never panics.
    #[test]
    fn damaged_frames_never_panic(
        link in any_link(),
        v6 in any::<bool>(),
        exts in prop::collection::vec(prop::sample::select(vec![HOP_BY_HOP, ROUTING, DEST_OPTS, AUTH, FRAGMENT]), 0..4),
        flips in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let ver = if v6 { Ver::V6 } else { Ver::V4 };
        let ip = if v6 {
            v6_with(&exts, L4::Tcp(SYN, false))
        } else {
            v4_tcp()
        };
        let mut f = frame(link, ver, &ip);
        for (at, byte) in flips {
            let i = at.index(f.len());
            f[i] = byte;
        }
        let n = cut.index(f.len() + 1);
        let _ = parse(link, &f[..n], 0, AT);
    }

    /// A valid packet decodes to exactly what was built.
    #[test]
    fn valid_packets_round_trip(
        link in any_link(),
        v4 in any::<([u8; 4], [u8; 4])>(),
        v6 in any::<([u8; 16], [u8; 16])>(),
        use_v6 in any::<bool>(),
        tcp in any::<bool>(),
        flags in any::<u8>(),
        ns in any::<bool>(),
        sport in any::<u16>(),
        dport in any::<u16>(),
        payload in prop::collection::vec(any::<u8>(), 0..32),
        null_be in any::<bool>(),
        wire_len in any::<u32>(),
    ) {
        let use_v6 = match link {
            LinkType::Ipv4 => false,
            LinkType::Ipv6 => true,
            _ => use_v6,
        };
        let addrs = if use_v6 { Addrs::V6(v6.0, v6.1) } else { Addrs::V4(v4.0, v4.1) };
        let l4 = if tcp { L4::Tcp(flags, ns) } else { L4::Udp };
        let mut f = frame(link, addrs.ver(), &ip_packet(addrs, l4, sport, dport, &payload));
        if link == LinkType::Null && null_be {
            let af = u32::from_le_bytes([f[0], f[1], f[2], f[3]]);
            f[..4].copy_from_slice(&af.to_be_bytes());
        }
        let got = parse(link, &f, wire_len, AT);
        prop_assert_eq!(got, Ok(expected(addrs, l4, sport, dport, wire_len)));
    }
}
