//! The network and transport layers of the wire decoder: IPv4, IPv6 with its
//! extension headers, and the few TCP/UDP fields a knock needs. Only a whole,
//! unfragmented TCP or UDP packet can be a knock (a fragment's ports are not
//! what the host reassembles), so everything else becomes a `Skip` here. It
//! must not know about link headers or pcap, and must not allocate or panic:
//! that is why parsing goes through etherparse's lax slices, which do
//! neither and accept snaplen-cut captures, and why the transport fields are
//! read by hand from only the bytes a knock needs.

use std::net::{IpAddr, Ipv6Addr};

use etherparse::{err, Ipv6ExtensionSlice, LaxIpPayloadSlice, LaxIpv4Slice, LaxIpv6Slice};

use super::{Header, Skip};
use crate::core::knock::{Proto, TcpFlags};

/// The network layer reduced to what a knock needs.
pub(super) struct Ip<'a> {
    pub(super) src: IpAddr,
    pub(super) dst: IpAddr,
    /// Protocol of `payload`, after any extension headers.
    pub(super) proto: u8,
    /// Transport bytes, bounded by the IP length field when the capture
    /// holds more (Ethernet padding, a trailing FCS).
    pub(super) payload: &'a [u8],
}

pub(super) const VERSION_MISMATCH: &str = "IP version does not match the link-layer protocol";

pub(super) fn ipv4(data: &[u8]) -> Result<Ip<'_>, Skip> {
    use err::ipv4::{HeaderError as E, HeaderSliceError as S};
    // The lax slice bounds the payload by the total length when the capture
    // is longer, and falls back to the captured bytes when it is shorter
    // (snaplen) or when the total length is 0 (TSO on the capturing host).
    // It reads IHL and skips options; checksums are not verified, as knockd
    // does not verify them either.
    let (v4, auth_err) = LaxIpv4Slice::from_slice(data).map_err(|e| match e {
        S::Len(_) => Skip::Truncated(Header::Ipv4),
        S::Content(E::UnexpectedVersion { .. }) => Skip::Malformed(VERSION_MISMATCH),
        S::Content(E::HeaderLengthSmallerThanHeader { .. }) => {
            Skip::Malformed("IPv4 header length below 20 bytes")
        }
    })?;
    if v4.is_payload_fragmented() {
        return Err(Skip::Ipv4Fragment);
    }
    if let Some(e) = auth_err {
        return Err(auth_skip(e));
    }
    let header = v4.header();
    Ok(ip_of(
        IpAddr::V4(header.source_addr()),
        IpAddr::V4(header.destination_addr()),
        v4.payload(),
    ))
}

pub(super) fn ipv6(data: &[u8]) -> Result<Ip<'_>, Skip> {
    use err::ipv6::{HeaderError as E, HeaderSliceError as S};
    // etherparse walks hop-by-hop, routing, fragment, destination options
    // and AH headers (knockd 0.8 walks none, so it misses such knocks). It
    // stops at anything else, ESP (50) and no-next-header (59) included,
    // which then fail the TCP/UDP test below. The payload length bounds the
    // walk, with the same snaplen and zero-length fallbacks as IPv4.
    let (v6, ext_err) = LaxIpv6Slice::from_slice(data).map_err(|e| match e {
        S::Len(_) => Skip::Truncated(Header::Ipv6),
        S::Content(E::UnexpectedVersion { .. }) => Skip::Malformed(VERSION_MISMATCH),
    })?;
    // Extension-header errors first: besides reporting them, this is what
    // makes the walk below sound. etherparse's extension iterator (0.16 to
    // 0.21) trusts that the headers it re-walks end in a non-extension
    // protocol; after a lax parse that stopped on an error the last next
    // header names a missing extension, and the iterator reads past the
    // slice (undefined behaviour; debug builds abort). Without an error the
    // parse stopped at a non-extension header, so the iterator does too.
    if let Some((e, _layer)) = ext_err {
        use err::ipv6_exts::{HeaderError as XE, HeaderSliceError as XS};
        return Err(if v6.is_payload_fragmented() {
            // A fragment is skipped whatever follows its header.
            Skip::Ipv6Fragment
        } else {
            match e {
                XS::Len(_) => Skip::Truncated(Header::Ipv6Extension),
                XS::Content(XE::HopByHopNotAtStart) => {
                    Skip::Malformed("IPv6 hop-by-hop header not first")
                }
                XS::Content(XE::IpAuth(_)) => {
                    Skip::Malformed("IP authentication header length is 0")
                }
            }
        });
    }
    // etherparse calls a fragment header with offset 0 and no more-fragments
    // flag unfragmented; we skip it too. Such atomic fragments are no longer
    // generated (RFC 8021) and are only seen in evasion attempts.
    let has_fragment_header = v6
        .extensions()
        .clone()
        .into_iter()
        .any(|ext| matches!(ext, Ipv6ExtensionSlice::Fragment(_)));
    if v6.is_payload_fragmented() || has_fragment_header {
        return Err(Skip::Ipv6Fragment);
    }
    let header = v6.header();
    Ok(ip_of(
        canonical(header.source_addr()),
        canonical(header.destination_addr()),
        v6.payload(),
    ))
}

/// An IPv4-mapped address (`::ffff:a.b.c.d`) as the IPv4 address it
/// names, any other IPv6 address as it is: one address, one form, before the
/// ACL, the engine, the log and `%IP%` see it (`Deny = 10.0.0.0/8` must
/// keep `::ffff:10.0.0.1` out). IPv4-compatible (`::a.b.c.d`) and NAT64
/// addresses are IPv6 hosts of their own and stay IPv6.
#[inline]
fn canonical(a: Ipv6Addr) -> IpAddr {
    match a.to_ipv4_mapped() {
        Some(v4) => IpAddr::V4(v4),
        None => IpAddr::V6(a),
    }
}

/// Whether `src` can be a host's address, in a couple of integer compares
/// (every packet pays it). Not: IPv4 0.0.0.0/8 (unspecified, "this
/// network": the kernel drops such sources as martians), 224.0.0.0/4
/// (multicast) and 240.0.0.0/4 (reserved, with broadcast); IPv6 `::` and
/// ff00::/8 (multicast). Loopback stays a host: knocks on `lo` are real.
#[inline]
pub fn is_host(src: IpAddr) -> bool {
    match src {
        // 1.0.0.0 to 223.255.255.255, in one compare.
        IpAddr::V4(a) => u32::from(a).wrapping_sub(0x0100_0000) < 0xdf00_0000,
        IpAddr::V6(a) => {
            let x = u128::from(a);
            x != 0 && (x >> 120) != 0xff
        }
    }
}

fn auth_skip(e: err::ip_auth::HeaderSliceError) -> Skip {
    match e {
        err::ip_auth::HeaderSliceError::Len(_) => Skip::Truncated(Header::IpAuth),
        err::ip_auth::HeaderSliceError::Content(_) => {
            Skip::Malformed("IP authentication header length is 0")
        }
    }
}

fn ip_of<'a>(src: IpAddr, dst: IpAddr, payload: &LaxIpPayloadSlice<'a>) -> Ip<'a> {
    Ip {
        src,
        dst,
        proto: payload.ip_number.0,
        payload: payload.payload,
    }
}

/// The transport fields of a knock.
pub(super) struct L4 {
    pub(super) proto: Proto,
    pub(super) src_port: u16,
    pub(super) dst_port: u16,
    pub(super) flags: TcpFlags,
}

const IPPROTO_TCP: u8 = 6;
const IPPROTO_UDP: u8 = 17;

/// Reads ports (and TCP flags) by hand rather than with etherparse's
/// `TcpSlice`/`UdpSlice`: those demand the whole header including TCP
/// options, while a knock needs only the first 14 (TCP) or 4 (UDP) bytes,
/// and a snaplen-cut capture with those must still count.
pub(super) fn transport(proto: u8, l4: &[u8]) -> Result<L4, Skip> {
    match proto {
        IPPROTO_TCP => {
            // Ports (0..4), data offset (high nibble of 12), flags (13).
            let h = l4.first_chunk::<14>().ok_or(Skip::Truncated(Header::Tcp))?;
            if h[12] >> 4 < 5 {
                // A header shorter than its fixed part is not TCP; no stack
                // would accept it, so it cannot be a real knock.
                return Err(Skip::Malformed("TCP data offset below 20 bytes"));
            }
            Ok(L4 {
                proto: Proto::Tcp,
                src_port: u16::from_be_bytes([h[0], h[1]]),
                dst_port: u16::from_be_bytes([h[2], h[3]]),
                // The low six bits are the flags a door can name; ECE and
                // CWR (and NS, in byte 12) are congestion signalling.
                flags: TcpFlags(h[13] & 0x3f),
            })
        }
        IPPROTO_UDP => {
            let h = l4.first_chunk::<4>().ok_or(Skip::Truncated(Header::Udp))?;
            Ok(L4 {
                proto: Proto::Udp,
                src_port: u16::from_be_bytes([h[0], h[1]]),
                dst_port: u16::from_be_bytes([h[2], h[3]]),
                flags: TcpFlags::default(),
            })
        }
        other => Err(Skip::NotTcpUdp(other)),
    }
}
