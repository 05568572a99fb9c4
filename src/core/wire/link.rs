//! The link layer of the wire decoder: pcap link-type numbers to decoders,
//! and link headers (Ethernet with VLAN tags, Linux SLL/SLL2, raw IP, BSD
//! and OpenBSD loopback) stripped down to the IP bytes. The link type is
//! decided here once per capture so that the per-packet path never guesses
//! how a frame begins and an unsupported interface is refused at open time.
//! It must not look past the link header (IP and the transport belong to
//! the sibling `ip` module), and, like the whole decoder, must not allocate
//! or panic: every frame is hostile data.

use std::fmt;

use etherparse::{EtherType, Ethernet2Slice, SingleVlanSlice};
use thiserror::Error;

use super::{Header, Skip};

/// A link-layer header format this daemon can decode.
///
/// Decided once per capture handle from the pcap link type, so that the
/// per-packet path never has to guess how a frame begins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// `DLT_EN10MB`: Ethernet II, optionally with 802.1Q/802.1ad tags.
    Ethernet,
    /// `DLT_LINUX_SLL`: Linux cooked capture v1 (`-i any`, PPP, tun).
    LinuxSll,
    /// `DLT_LINUX_SLL2`: Linux cooked capture v2 (newer `-i any`).
    LinuxSll2,
    /// `DLT_RAW`: an IP packet with no link header; version nibble decides.
    RawIp,
    /// `LINKTYPE_IPV4`: an IPv4 packet with no link header.
    Ipv4,
    /// `LINKTYPE_IPV6`: an IPv6 packet with no link header.
    Ipv6,
    /// `DLT_NULL`: BSD loopback, a 4-byte address family in the writer's
    /// byte order.
    Null,
    /// `DLT_LOOP`: OpenBSD loopback, a 4-byte address family in network
    /// byte order.
    Loop,
}

/// `DLT_RAW`: libpcap numbers it 14 on OpenBSD and 12 everywhere else.
/// Live captures report this value, not `LINKTYPE_RAW` (101).
#[cfg(target_os = "openbsd")]
const DLT_RAW: i32 = 14;
#[cfg(not(target_os = "openbsd"))]
const DLT_RAW: i32 = 12;
/// The raw-IP number of the *other* platforms. OpenBSD's 12 is its
/// `DLT_LOOP`, and NetBSD/FreeBSD use 14 for `DLT_PPP_BSDOS`, so on those it
/// must not be read as raw IP; elsewhere accepting it costs nothing and lets
/// an OpenBSD-written capture replay.
#[cfg(target_os = "openbsd")]
const DLT_RAW_ALT: Option<i32> = None;
#[cfg(any(target_os = "netbsd", target_os = "freebsd"))]
const DLT_RAW_ALT: Option<i32> = None;
#[cfg(not(any(target_os = "openbsd", target_os = "netbsd", target_os = "freebsd")))]
const DLT_RAW_ALT: Option<i32> = Some(14);
/// `DLT_LOOP`: 12 on OpenBSD, 108 (its `LINKTYPE_LOOP`) everywhere else.
#[cfg(target_os = "openbsd")]
const DLT_LOOP: i32 = 12;
#[cfg(not(target_os = "openbsd"))]
const DLT_LOOP: i32 = 108;

impl LinkType {
    /// Maps a pcap link-layer type number to a decoder, so an unsupported
    /// interface is refused once, at open time, with a message naming it.
    ///
    /// Accepts the `DLT_*` values libpcap reports on this platform and the
    /// `LINKTYPE_*` values written in savefiles where they differ
    /// (`LINKTYPE_RAW` 101, `LINKTYPE_LOOP` 108).
    pub fn from_dlt(dlt: i32) -> Result<LinkType, UnsupportedLinkType> {
        match dlt {
            0 => Ok(LinkType::Null),
            1 => Ok(LinkType::Ethernet),
            101 => Ok(LinkType::RawIp),
            108 => Ok(LinkType::Loop),
            113 => Ok(LinkType::LinuxSll),
            228 => Ok(LinkType::Ipv4),
            229 => Ok(LinkType::Ipv6),
            276 => Ok(LinkType::LinuxSll2),
            // Guards, not patterns: the platform values may repeat the
            // savefile ones above (108 is both on most systems).
            _ if dlt == DLT_RAW || Some(dlt) == DLT_RAW_ALT => Ok(LinkType::RawIp),
            _ if dlt == DLT_LOOP => Ok(LinkType::Loop),
            _ => Err(UnsupportedLinkType { dlt }),
        }
    }

    /// libpcap's name for the type (without `DLT_`), for startup and debug
    /// lines that should read like tcpdump's.
    pub fn name(self) -> &'static str {
        match self {
            LinkType::Ethernet => "EN10MB",
            LinkType::LinuxSll => "LINUX_SLL",
            LinkType::LinuxSll2 => "LINUX_SLL2",
            LinkType::RawIp => "RAW",
            LinkType::Ipv4 => "IPV4",
            LinkType::Ipv6 => "IPV6",
            LinkType::Null => "NULL",
            LinkType::Loop => "LOOP",
        }
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The capture's link-layer type is one this daemon cannot decode.
///
/// Returned at capture open so the operator learns which interface type is
/// the problem (e.g. a Wi-Fi monitor interface) instead of seeing silence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("unsupported link-layer type {dlt}{}", DltSuffix(*.dlt))]
pub struct UnsupportedLinkType {
    /// The pcap link-layer type number as reported.
    pub dlt: i32,
}

/// Names of common link types we do not decode, so the error says more than
/// a number. Values are the ones shared by every libpcap platform.
fn unsupported_dlt_name(dlt: i32) -> Option<&'static str> {
    Some(match dlt {
        6 => "IEEE802",
        7 => "ARCNET",
        8 => "SLIP",
        9 => "PPP",
        10 => "FDDI",
        50 => "PPP_SERIAL",
        51 => "PPP_ETHER",
        104 => "C_HDLC",
        105 => "IEEE802_11",
        117 => "PFLOG",
        119 => "PRISM_HEADER",
        127 => "IEEE802_11_RADIO",
        163 => "IEEE802_11_RADIO_AVS",
        192 => "PPI",
        220 => "USB_LINUX_MMAPPED",
        239 => "NFLOG",
        253 => "NETLINK",
        _ => return None,
    })
}

/// Writes ` (NAME)` after the number when the type has a known name.
struct DltSuffix(i32);

impl fmt::Display for DltSuffix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match unsupported_dlt_name(self.0) {
            Some(name) => write!(f, " ({name})"),
            None => Ok(()),
        }
    }
}

/// What the link layer says the network layer is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Net {
    V4,
    V6,
    /// No link header to say: read the IP version nibble.
    ByVersion,
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q, 802.1ad, and the pre-standard QinQ tag.
const ETHERTYPE_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

/// BSD `AF_INET`, the same on every system.
const AF_INET: u32 = 2;
/// `AF_INET6` as the writer's system numbers it: Linux, NetBSD/OpenBSD,
/// FreeBSD/DragonFly, macOS. A capture may come from any of them.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Removes the link-layer header, returning the network-layer bytes.
pub(super) fn strip_link(link: LinkType, data: &[u8]) -> Result<(Net, &[u8]), Skip> {
    match link {
        LinkType::Ethernet => {
            // etherparse only checks the 14-byte length here; the ethertype
            // is interpreted below so VLAN handling is shared with SLL.
            let eth = Ethernet2Slice::from_slice_without_fcs(data)
                .map_err(|_| Skip::Truncated(Header::Ethernet))?;
            by_ethertype(eth.ether_type(), eth.payload_slice())
        }
        // SLL is read by hand: etherparse's `LinuxSllSlice` rejects every
        // ARPHRD type but Ethernet and a few others, which would drop knocks
        // arriving over PPP, tun or loopback under `-i any`. We need only the
        // protocol field (bytes 14..16), an ethertype for IP on every ARPHRD.
        LinkType::LinuxSll => {
            let (hdr, rest) = data
                .split_first_chunk::<16>()
                .ok_or(Skip::Truncated(Header::LinuxSll))?;
            by_ethertype(EtherType(u16::from_be_bytes([hdr[14], hdr[15]])), rest)
        }
        // SLL2 moved the protocol field to the front (bytes 0..2).
        LinkType::LinuxSll2 => {
            let (hdr, rest) = data
                .split_first_chunk::<20>()
                .ok_or(Skip::Truncated(Header::LinuxSll2))?;
            by_ethertype(EtherType(u16::from_be_bytes([hdr[0], hdr[1]])), rest)
        }
        LinkType::RawIp => Ok((Net::ByVersion, data)),
        LinkType::Ipv4 => Ok((Net::V4, data)),
        LinkType::Ipv6 => Ok((Net::V6, data)),
        LinkType::Null => {
            let (hdr, rest) = data
                .split_first_chunk::<4>()
                .ok_or(Skip::Truncated(Header::Loopback))?;
            // Written in the capturing host's byte order, which a savefile
            // does not record: accept either. The values are small, so the
            // two readings of a real family can never collide.
            let be = u32::from_be_bytes(*hdr);
            let le = u32::from_le_bytes(*hdr);
            let net = |af: u32| {
                if af == AF_INET {
                    Some(Net::V4)
                } else if AF_INET6.contains(&af) {
                    Some(Net::V6)
                } else {
                    None
                }
            };
            match net(be).or_else(|| net(le)) {
                Some(n) => Ok((n, rest)),
                None => Err(Skip::NotIpFamily(be.min(le))),
            }
        }
        LinkType::Loop => {
            let (hdr, rest) = data
                .split_first_chunk::<4>()
                .ok_or(Skip::Truncated(Header::Loopback))?;
            let af = u32::from_be_bytes(*hdr);
            if af == AF_INET {
                Ok((Net::V4, rest))
            } else if AF_INET6.contains(&af) {
                Ok((Net::V6, rest))
            } else {
                Err(Skip::NotIpFamily(af))
            }
        }
    }
}

/// Follows an ethertype through any VLAN tags to IPv4 or IPv6.
///
/// Also applied after SLL/SLL2, where libpcap re-inserts a VLAN tag the NIC
/// stripped. Each tag consumes 4 bytes, so the loop ends with the data; no
/// depth limit is needed.
fn by_ethertype(mut ether_type: EtherType, mut rest: &[u8]) -> Result<(Net, &[u8]), Skip> {
    loop {
        match ether_type.0 {
            ETHERTYPE_IPV4 => return Ok((Net::V4, rest)),
            ETHERTYPE_IPV6 => return Ok((Net::V6, rest)),
            t if ETHERTYPE_VLAN.contains(&t) => {
                let tag =
                    SingleVlanSlice::from_slice(rest).map_err(|_| Skip::Truncated(Header::Vlan))?;
                ether_type = tag.ether_type();
                rest = tag.payload_slice();
            }
            other => return Err(Skip::NotIpEtherType(other)),
        }
    }
}
