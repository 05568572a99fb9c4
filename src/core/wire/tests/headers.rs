//! IPv6 extension headers, IPv4 options and fragments, TCP details.

use super::*;

// ---- IPv6 extension headers ----

pub(super) const HOP_BY_HOP: u8 = 0;
pub(super) const ROUTING: u8 = 43;
pub(super) const FRAGMENT: u8 = 44;
pub(super) const ESP: u8 = 50;
pub(super) const AUTH: u8 = 51;
pub(super) const NO_NEXT: u8 = 59;
pub(super) const DEST_OPTS: u8 = 60;

/// The body of an extension header of `kind` (its first byte, next
/// header, is filled in by `with_v6_exts`).
pub(super) fn ext(kind: u8) -> Vec<u8> {
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
pub(super) fn with_v6_exts(pkt: &[u8], exts: &[Vec<u8>], kinds: &[u8]) -> Vec<u8> {
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

pub(super) fn v6_with(kinds: &[u8], l4: L4) -> Vec<u8> {
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
pub(super) fn set_v4_total_len(p: &mut [u8]) {
    let len = p.len() as u16;
    p[2..4].copy_from_slice(&len.to_be_bytes());
}

pub(super) fn v4_tcp() -> Vec<u8> {
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
