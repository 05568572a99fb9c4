//! The wire layer: captured bytes and a link-layer type to a [`Knock`].
//!
//! This module owns packet decoding: link-layer headers (Ethernet with VLAN
//! tags, Linux cooked capture v1 and v2, raw IP, BSD loopback), IPv4 and
//! IPv6 (with extension headers), and the few TCP/UDP header fields a knock
//! needs. A packet that cannot be a knock comes back as a [`Skip`] with a
//! short reason for `-D` debug output.
//!
//! Addresses come out in one form: an IPv4-mapped IPv6 address
//! (`::ffff:a.b.c.d`) is the IPv4 address, source and destination, so the
//! ACL, the engine, the log and `%IP%` never see two spellings of one host.
//! A source that cannot be a host (unspecified, multicast, broadcast, IPv4
//! 240/4) is a [`Skip::NotAHost`], never a knock.
//!
//! It must not:
//! - depend on the `pcap` crate: the capture shell passes the link type
//!   number (taken once from pcap, never guessed per packet) and the bytes;
//! - import the engine or any shell module;
//! - allocate on the per-packet path: everything returned is `Copy`;
//! - panic: every byte that arrives is hostile data, and a malformed packet
//!   is skipped with a reason, never a crash.
//!
//! IP and extension-header parsing is delegated to `etherparse`'s lax
//! slices, which never allocate and accept snaplen-cut captures. The link
//! headers it does not cover well (BSD loopback, Linux SLL/SLL2) and the
//! transport fields are read here by hand.

mod ip;
mod link;
#[cfg(test)]
mod tests;

use std::fmt;
use std::net::IpAddr;

use crate::core::knock::{Knock, Timestamp};
pub use ip::is_host;
use ip::{ipv4, ipv6, transport, VERSION_MISMATCH};
use link::{strip_link, Net};
pub use link::{LinkType, UnsupportedLinkType};

/// A decoded TCP or UDP packet: the engine's [`Knock`] plus what the `-D`
/// debug line prints and the engine does not need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// What the engine decides on.
    pub knock: Knock,
    /// Source port, only for the debug line.
    pub src_port: u16,
    /// Length of the packet on the wire (pcap's `len`, not `caplen`), as
    /// knockd prints it.
    pub wire_len: u32,
}

impl fmt::Display for Packet {
    /// knockd's debug line without its date prefix, which the shell adds:
    /// `tcp: 192.0.2.1:40000 -> 192.0.2.2:7000 60 bytes`. Addresses are
    /// bare (no brackets around IPv6), as knockd prints them.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let k = &self.knock;
        write!(
            f,
            "{}: {}:{} -> {}:{} {} bytes",
            k.proto, k.src, self.src_port, k.dst, k.dst_port, self.wire_len
        )
    }
}

/// A header that was cut short, named in [`Skip::Truncated`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header {
    /// The 14-byte Ethernet II header.
    Ethernet,
    /// A 4-byte 802.1Q/802.1ad tag.
    Vlan,
    /// The 16-byte Linux cooked capture v1 header.
    LinuxSll,
    /// The 20-byte Linux cooked capture v2 header.
    LinuxSll2,
    /// The 4-byte address family of `DLT_NULL`/`DLT_LOOP`.
    Loopback,
    /// Not even the IP version byte (raw IP).
    Ip,
    /// The IPv4 header, options included.
    Ipv4,
    /// The fixed 40-byte IPv6 header.
    Ipv6,
    /// An IPv6 extension header before the transport.
    Ipv6Extension,
    /// An IPv4 authentication header before the transport.
    IpAuth,
    /// The first 14 bytes of TCP: ports, data offset and flags.
    Tcp,
    /// The first 4 bytes of UDP: the ports.
    Udp,
}

impl Header {
    fn as_str(self) -> &'static str {
        match self {
            Header::Ethernet => "Ethernet header",
            Header::Vlan => "VLAN tag",
            Header::LinuxSll => "Linux SLL header",
            Header::LinuxSll2 => "Linux SLL2 header",
            Header::Loopback => "loopback header",
            Header::Ip => "IP header",
            Header::Ipv4 => "IPv4 header",
            Header::Ipv6 => "IPv6 header",
            Header::Ipv6Extension => "IPv6 extension header",
            Header::IpAuth => "IP authentication header",
            Header::Tcp => "TCP header",
            Header::Udp => "UDP header",
        }
    }
}

impl fmt::Display for Header {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why a captured packet is not a knock.
///
/// Expected, not an error: the shell logs it at debug level and moves on.
/// Plain `Copy` data, so skipping a flood of junk costs no allocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// The link layer carries something other than IP (e.g. ARP, 0x0806).
    NotIpEtherType(u16),
    /// A BSD loopback frame whose address family is neither INET nor INET6.
    /// For `DLT_NULL`, whose byte order is unknown, the smaller of the two
    /// readings: the one the writer most likely meant.
    NotIpFamily(u32),
    /// An IPv4 fragment (more-fragments set or a non-zero offset). Only
    /// whole packets count: a later fragment has no ports at all, and a
    /// first fragment's ports are not necessarily what the host reassembles
    /// (overlapping fragments can rewrite them).
    Ipv4Fragment,
    /// An IPv6 packet with a Fragment extension header, for the same
    /// reasons; atomic fragments (offset 0, no more fragments) included.
    Ipv6Fragment,
    /// The transport is neither TCP nor UDP (e.g. ICMP, ESP, no next header).
    NotTcpUdp(u8),
    /// The capture ends before a header we need to read.
    Truncated(Header),
    /// A header that is present but invalid.
    Malformed(&'static str),
    /// The source cannot be a host's address (unspecified, multicast,
    /// broadcast, IPv4 240/4): no reply can reach it, so no knocker sent
    /// it; a door it opened would open for a forged address the ACL never
    /// saw. Counted by the shell, shown with `-D`.
    NotAHost(IpAddr),
}

/// Why `src` cannot be a host, for the debug line (off the hot path).
fn not_a_host_reason(src: IpAddr) -> &'static str {
    match src {
        IpAddr::V4(a) => match a.octets()[0] {
            _ if a.is_unspecified() => "unspecified",
            0 => "this network, 0.0.0.0/8",
            _ if a.is_broadcast() => "broadcast",
            224..=239 => "multicast",
            _ => "reserved, 240.0.0.0/4",
        },
        IpAddr::V6(a) if a.is_unspecified() => "unspecified",
        IpAddr::V6(_) => "multicast",
    }
}

/// Well-known IP protocol numbers, so a debug line says `ICMP`, not `1`.
fn ip_proto_name(proto: u8) -> Option<&'static str> {
    Some(match proto {
        1 => "ICMP",
        2 => "IGMP",
        4 => "IP-in-IP",
        41 => "IPv6-in-IP",
        47 => "GRE",
        50 => "ESP",
        58 => "ICMPv6",
        59 => "no next header",
        103 => "PIM",
        112 => "VRRP",
        132 => "SCTP",
        135 => "IPv6 mobility",
        _ => return None,
    })
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Skip::NotIpEtherType(t) => write!(f, "not IP (ethertype {t:#06x})"),
            Skip::NotIpFamily(af) => write!(f, "not IP (address family {af})"),
            Skip::Ipv4Fragment => f.write_str("IPv4 fragment"),
            Skip::Ipv6Fragment => f.write_str("IPv6 fragment"),
            Skip::NotTcpUdp(p) => match ip_proto_name(p) {
                Some(name) => write!(f, "not TCP/UDP (IP protocol {p}, {name})"),
                None => write!(f, "not TCP/UDP (IP protocol {p})"),
            },
            Skip::Truncated(h) => write!(f, "truncated {h}"),
            Skip::Malformed(why) => write!(f, "malformed packet: {why}"),
            Skip::NotAHost(src) => write!(
                f,
                "source {src} cannot be a host ({})",
                not_a_host_reason(src)
            ),
        }
    }
}

/// Decodes one captured packet into a knock candidate.
///
/// `data` is what was captured (possibly cut at the snaplen); `wire_len` is
/// the original length from the pcap header, only echoed for debug output;
/// `at` is the time the engine should see. Only the headers up to the TCP
/// flags (or UDP ports) must be present: a snaplen-cut packet still counts.
pub fn parse(link: LinkType, data: &[u8], wire_len: u32, at: Timestamp) -> Result<Packet, Skip> {
    let (net, ip) = strip_link(link, data)?;
    // The version nibble is checked even when the link layer names the
    // protocol, so a mismatch is reported as such rather than as whatever
    // the wrong header parser trips over first.
    let Some(version) = ip.first().map(|b| b >> 4) else {
        return Err(Skip::Truncated(match net {
            Net::V4 => Header::Ipv4,
            Net::V6 => Header::Ipv6,
            Net::ByVersion => Header::Ip,
        }));
    };
    let ip = match (net, version) {
        (Net::V4 | Net::ByVersion, 4) => ipv4(ip)?,
        (Net::V6 | Net::ByVersion, 6) => ipv6(ip)?,
        (Net::ByVersion, _) => return Err(Skip::Malformed("IP version is neither 4 nor 6")),
        _ => return Err(Skip::Malformed(VERSION_MISMATCH)),
    };
    if !is_host(ip.src) {
        return Err(Skip::NotAHost(ip.src));
    }
    let l4 = transport(ip.proto, ip.payload)?;
    Ok(Packet {
        knock: Knock {
            at,
            src: ip.src,
            dst: ip.dst,
            proto: l4.proto,
            dst_port: l4.dst_port,
            tcp_flags: l4.flags,
        },
        src_port: l4.src_port,
        wire_len,
    })
}
