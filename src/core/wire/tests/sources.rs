//! One canonical source address: an IPv4-mapped IPv6 address is IPv4 from
//! the wire on, and a source that cannot be a host is never a knock.

use super::*;

fn v6_frame(src: Ipv6Addr, dst: Ipv6Addr) -> Vec<u8> {
    ip_packet(
        Addrs::V6(src.octets(), dst.octets()),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        &[],
    )
}

fn v4_frame(src: Ipv4Addr) -> Vec<u8> {
    ip_packet(
        Addrs::V4(src.octets(), V4_DST),
        L4::Tcp(SYN, false),
        SPORT,
        DPORT,
        &[],
    )
}

#[test]
fn mapped_source_and_destination_become_ipv4() {
    let src: Ipv6Addr = "::ffff:10.0.0.1".parse().unwrap();
    let dst: Ipv6Addr = "::ffff:192.0.2.2".parse().unwrap();
    for link in [LinkType::RawIp, LinkType::Ipv6, LinkType::Ethernet] {
        let f = frame(link, Ver::V6, &v6_frame(src, dst));
        let p = parse_all(link, &f).unwrap();
        assert_eq!(p.knock.src, IpAddr::from([10, 0, 0, 1]), "{link}");
        assert_eq!(p.knock.dst, IpAddr::from([192, 0, 2, 2]), "{link}");
        assert_eq!(
            p.to_string(),
            format!(
                "tcp: 10.0.0.1:{SPORT} -> 192.0.2.2:{DPORT} {} bytes",
                f.len()
            )
        );
    }
    // A mapped source to a real IPv6 destination: each address on its own.
    let p = parse_all(LinkType::RawIp, &v6_frame(src, V6_DST.into())).unwrap();
    assert_eq!(p.knock.src, IpAddr::from([10, 0, 0, 1]));
    assert_eq!(p.knock.dst, IpAddr::from(V6_DST));
    // IPv4-compatible (::a.b.c.d, deprecated) and NAT64 addresses are IPv6
    // hosts of their own, not mapped ones.
    for other in ["::10.0.0.1", "64:ff9b::a00:1", "::ffff:0:a00:1"] {
        let a: Ipv6Addr = other.parse().unwrap();
        let p = parse_all(LinkType::RawIp, &v6_frame(a, V6_DST.into())).unwrap();
        assert_eq!(p.knock.src, IpAddr::V6(a), "{other}");
    }
}

/// Every source that cannot be a host, with the reason `-D` prints.
const NOT_HOSTS: [(&str, &str); 12] = [
    ("0.0.0.0", "source 0.0.0.0 cannot be a host (unspecified)"),
    (
        "0.1.2.3",
        "source 0.1.2.3 cannot be a host (this network, 0.0.0.0/8)",
    ),
    ("224.0.0.1", "source 224.0.0.1 cannot be a host (multicast)"),
    (
        "239.255.255.250",
        "source 239.255.255.250 cannot be a host (multicast)",
    ),
    (
        "240.0.0.1",
        "source 240.0.0.1 cannot be a host (reserved, 240.0.0.0/4)",
    ),
    (
        "255.255.255.254",
        "source 255.255.255.254 cannot be a host (reserved, 240.0.0.0/4)",
    ),
    (
        "255.255.255.255",
        "source 255.255.255.255 cannot be a host (broadcast)",
    ),
    ("::", "source :: cannot be a host (unspecified)"),
    ("ff02::1", "source ff02::1 cannot be a host (multicast)"),
    (
        "ff0e::1234",
        "source ff0e::1234 cannot be a host (multicast)",
    ),
    (
        "::ffff:0.0.0.0",
        "source 0.0.0.0 cannot be a host (unspecified)",
    ),
    (
        "::ffff:224.0.0.1",
        "source 224.0.0.1 cannot be a host (multicast)",
    ),
];

#[test]
fn sources_that_cannot_be_a_host_are_skipped() {
    for (src, why) in NOT_HOSTS {
        let ip = match src.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => v4_frame(a),
            IpAddr::V6(a) => v6_frame(a, V6_DST.into()),
        };
        for link in [LinkType::RawIp, LinkType::Ethernet, LinkType::LinuxSll] {
            let ver = if ip[0] >> 4 == 4 { Ver::V4 } else { Ver::V6 };
            let got = parse_all(link, &frame(link, ver, &ip)).map_err(|s| s.to_string());
            assert_eq!(
                got.map(|p| p.knock.src),
                Err(why.to_string()),
                "{src} on {link}"
            );
        }
    }
}

#[test]
fn the_edges_of_the_impossible_ranges_are_hosts() {
    for src in [
        "1.0.0.0",
        "127.0.0.1",
        "223.255.255.255",
        "10.0.0.1",
        "::1",
        "::0.0.0.1",
        "fe80::1",
        "feff:ffff::1",
        "2001:db8::1",
    ] {
        let ip = match src.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => v4_frame(a),
            IpAddr::V6(a) => v6_frame(a, V6_DST.into()),
        };
        let got = parse_all(LinkType::RawIp, &ip).map(|p| p.knock.src);
        assert_eq!(got, Ok(src.parse().unwrap()), "{src}");
    }
}

#[test]
fn a_multicast_or_broadcast_destination_is_still_decoded() {
    // Only the source is judged: knocks to a broadcast address are the
    // door's business (its Target, the local addresses).
    let ip = ip_packet(
        Addrs::V4(V4_SRC, [255, 255, 255, 255]),
        L4::Udp,
        SPORT,
        DPORT,
        &[],
    );
    let p = parse_all(LinkType::RawIp, &ip).unwrap();
    assert_eq!(p.knock.dst, IpAddr::from([255, 255, 255, 255]));
}
