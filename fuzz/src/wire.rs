//! The `wire` target: captured bytes on every supported link type through
//! `wire::parse`.
//!
//! Input: byte 0 picks the link type (below 0x80: `LINKS[b % 8]`; from
//! 0x80: bytes 1..5 are a pcap DLT number for `LinkType::from_dlt`), then
//! 4 bytes of wire length and 8 of timestamp (little endian), then the
//! frame.

use std::net::IpAddr;

use knockd::core::knock::{Proto, Timestamp};
use knockd::core::wire::{parse, LinkType, Packet};

use crate::is_one_clean_line;

/// Every `LinkType` variant with the savefile number that selects it.
pub const LINKS: [(LinkType, i32); 8] = [
    (LinkType::Ethernet, 1),
    (LinkType::LinuxSll, 113),
    (LinkType::LinuxSll2, 276),
    (LinkType::RawIp, 101),
    (LinkType::Ipv4, 228),
    (LinkType::Ipv6, 229),
    (LinkType::Null, 0),
    (LinkType::Loop, 108),
];

pub fn check(data: &[u8]) {
    let Some((&select, mut rest)) = data.split_first() else {
        return;
    };
    let link = if select < 0x80 {
        let (link, dlt) = LINKS[usize::from(select) % LINKS.len()];
        assert_eq!(LinkType::from_dlt(dlt), Ok(link), "DLT {dlt}");
        link
    } else {
        let Some((dlt, tail)) = rest.split_first_chunk::<4>() else {
            return;
        };
        rest = tail;
        let dlt = i32::from_le_bytes(*dlt);
        match LinkType::from_dlt(dlt) {
            Ok(link) => {
                assert!(!link.name().is_empty());
                link
            }
            Err(e) => {
                let s = e.to_string();
                assert!(is_one_clean_line(&s), "{s:?}");
                assert!(s.contains(&dlt.to_string()), "{s:?}");
                return;
            }
        }
    };
    let Some((len, rest)) = rest.split_first_chunk::<4>() else {
        return;
    };
    let Some((at, frame)) = rest.split_first_chunk::<8>() else {
        return;
    };
    let wire_len = u32::from_le_bytes(*len);
    let at = Timestamp::from_nanos(u64::from_le_bytes(*at));
    let result = parse(link, frame, wire_len, at);
    match &result {
        Ok(p) => check_packet(link, frame, wire_len, at, p),
        Err(skip) => {
            let s = skip.to_string();
            assert!(is_one_clean_line(&s) && !s.is_empty(), "{s:?}");
        }
    }
    assert_eq!(
        parse(link, frame, wire_len, at),
        result,
        "not deterministic"
    );
}

fn check_packet(link: LinkType, frame: &[u8], wire_len: u32, at: Timestamp, p: &Packet) {
    let k = &p.knock;
    assert_eq!(k.at, at, "knock time is not the capture time");
    assert_eq!(p.wire_len, wire_len);
    let line = p.to_string();
    assert!(is_one_clean_line(&line), "packet line {line:?}");
    assert!(
        line.starts_with(&format!("{}: ", k.proto)) && line.ends_with(" bytes"),
        "{line:?}"
    );
    // One form per address: no IPv4-mapped address comes out (a mapped
    // source next to a real IPv6 destination is IPv4 next to IPv6), and no
    // source that cannot be a host.
    for a in [k.src, k.dst] {
        assert!(
            !matches!(a, IpAddr::V6(v6) if v6.to_ipv4_mapped().is_some()),
            "mapped address {a} came out"
        );
    }
    let host = match k.src {
        IpAddr::V4(a) => !(a.is_unspecified() || a.octets()[0] == 0 || a.octets()[0] >= 224),
        IpAddr::V6(a) => !(a.is_unspecified() || a.is_multicast()),
    };
    assert!(host, "source {} cannot be a host", k.src);
    match k.proto {
        Proto::Tcp => assert_eq!(k.tcp_flags.0 & !0x3f, 0, "flags outside the six"),
        Proto::Udp => assert_eq!(k.tcp_flags.0, 0, "UDP with TCP flags"),
    }
    // An IPv6 link carries IPv6 packets, whose addresses may be mapped IPv4
    // ones and come out as IPv4: only the IPv4 link is held to its family.
    if link == LinkType::Ipv4 {
        assert!(k.src.is_ipv4() && k.dst.is_ipv4(), "IPv4 link gave {}", k.src);
    }
    // Whatever the link header, the knock is what its IP bytes decode to
    // on their own (DLT_RAW).
    if let Some(ip) = ip_bytes(link, frame) {
        let raw = parse(LinkType::RawIp, ip, wire_len, at);
        assert_eq!(
            raw.as_ref(),
            Ok(p),
            "link {link} decodes otherwise than its IP bytes"
        );
    } else {
        panic!("{link} frame parsed but its IP bytes cannot be found");
    }
}

/// The IP packet inside a frame, found independently of the decoder:
/// the link header's fixed length, then any VLAN tags.
fn ip_bytes(link: LinkType, frame: &[u8]) -> Option<&[u8]> {
    let be16 = |b: &[u8], at: usize| Some(u16::from_be_bytes([*b.get(at)?, *b.get(at + 1)?]));
    let (mut ether_type, mut rest) = match link {
        LinkType::Ethernet => (be16(frame, 12)?, frame.get(14..)?),
        LinkType::LinuxSll => (be16(frame, 14)?, frame.get(16..)?),
        LinkType::LinuxSll2 => (be16(frame, 0)?, frame.get(20..)?),
        LinkType::Null | LinkType::Loop => return frame.get(4..),
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => return Some(frame),
    };
    while matches!(ether_type, 0x8100 | 0x88a8 | 0x9100) {
        ether_type = be16(rest, 2)?;
        rest = rest.get(4..)?;
    }
    matches!(ether_type, 0x0800 | 0x86dd).then_some(rest)
}
