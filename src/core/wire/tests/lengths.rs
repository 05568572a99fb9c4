//! Lengths (padding, snaplen, truncation), the debug line, and properties.

use super::headers::*;
use super::*;

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
        let src = addrs.ips().0;
        let want = if ip::is_host(src) {
            Ok(expected(addrs, l4, sport, dport, wire_len))
        } else {
            Err(Skip::NotAHost(src))
        };
        prop_assert_eq!(got, want);
    }
}
