//! The system facts the interface choice ([`crate::core::iface`]) needs:
//! whether `eth0` exists, and the default routes of the main table, read
//! with an rtnetlink dump (`RTM_GETROUTE`), as `ip route show default`.
//!
//! The messages are built and parsed by hand, defensively: a truncated or
//! garbled message is skipped, never a panic. The same parser tells
//! [`super::netwatch`] whether a route notification is about a default
//! route (only those can move the capture; a router's other route churn
//! must not wake the daemon).

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::sys::socket::{
    recv, send, setsockopt, socket, sockopt, AddressFamily, MsgFlags, SockFlag, SockProtocol,
    SockType,
};
use nix::sys::time::TimeVal;

use crate::core::iface::{self, Choice, DefaultRoute, System, ETH0};

// Values from linux/netlink.h and linux/rtnetlink.h.
const NLMSG_HDRLEN: usize = 16;
const RTMSG_LEN: usize = 12;
const NLA_HDRLEN: usize = 4;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NLMSG_ERROR: u16 = 2;
const NLMSG_DONE: u16 = 3;
const RTM_NEWROUTE: u16 = 24;
const RTM_DELROUTE: u16 = 25;
const RTM_GETROUTE: u16 = 26;
const RTA_OIF: u16 = 4;
const RTA_PRIORITY: u16 = 6;
const RTA_MULTIPATH: u16 = 9;
const RTA_TABLE: u16 = 15;
const RTN_UNICAST: u8 = 1;
const RT_TABLE_MAIN: u32 = 254;
const RTNH_F_LINKDOWN: u32 = 0x10;
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;

/// How long a dump may take before it is given up (it takes microseconds).
const DUMP_TIMEOUT: Duration = Duration::from_secs(2);

/// One default route as the kernel reports it, before its interface index
/// is given a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RawRoute {
    pub v6: bool,
    pub ifindex: u32,
    pub metric: u32,
    pub linkdown: bool,
}

/// What the system looks like for the interface choice.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    pub eth0_exists: bool,
    pub v4: Vec<DefaultRoute>,
    pub v6: Vec<DefaultRoute>,
}

impl Facts {
    /// Reads them now. A failed route dump counts as no default route
    /// (warned): the daemon then waits for `eth0`, as knockd does.
    pub fn read() -> Facts {
        let eth0_exists = nix::net::if_::if_nametoindex(ETH0).is_ok();
        let routes = default_routes().unwrap_or_else(|e| {
            tracing::warn!(%e, "cannot read the default routes");
            Vec::new()
        });
        let mut facts = Facts {
            eth0_exists,
            ..Facts::default()
        };
        for r in routes {
            // An interface gone since the dump has no name: skip it.
            let Ok(name) = nix::net::if_::if_indextoname(r.ifindex) else {
                continue;
            };
            let route = DefaultRoute {
                ifname: name.to_string_lossy().into_owned(),
                metric: r.metric,
                linkdown: r.linkdown,
            };
            if r.v6 {
                facts.v6.push(route);
            } else {
                facts.v4.push(route);
            }
        }
        facts
    }

    /// The view [`crate::core::iface`] takes.
    pub fn system(&self) -> System<'_> {
        System {
            eth0_exists: self.eth0_exists,
            v4: &self.v4,
            v6: &self.v6,
        }
    }
}

/// The interface choice for `-i` (`cli`) and `Interface` (`config`),
/// reading the system only when neither names one.
pub fn choose(cli: &[String], config: &[String]) -> Choice {
    if !cli.is_empty() || !config.is_empty() {
        return iface::choose(cli, config, &System::default());
    }
    iface::choose(cli, config, &Facts::read().system())
}

/// The default routes of the main table, IPv4 then IPv6.
pub fn default_routes() -> io::Result<Vec<RawRoute>> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    let timeout = TimeVal::new(DUMP_TIMEOUT.as_secs() as _, 0);
    setsockopt(&sock, sockopt::ReceiveTimeout, &timeout)?;
    let mut routes = Vec::new();
    for (seq, family) in [(1, AF_INET), (2, AF_INET6)] {
        match dump(&sock, seq, family, &mut routes) {
            Ok(()) => {}
            // A kernel without IPv6 has no IPv6 routes to dump.
            Err(e) if family == AF_INET6 && e.raw_os_error() == Some(libc::EAFNOSUPPORT) => {}
            Err(e) => return Err(e),
        }
    }
    Ok(routes)
}

/// One `RTM_GETROUTE` dump of `family`, its default routes added to `out`.
fn dump(sock: &OwnedFd, seq: u32, family: u8, out: &mut Vec<RawRoute>) -> io::Result<()> {
    let req = request(seq, family);
    send(sock.as_raw_fd(), &req, MsgFlags::empty())?;
    // Large enough for any part of a dump (the kernel sends at most 32 KiB).
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let len = recv(sock.as_raw_fd(), &mut buf, MsgFlags::empty())?;
        let data = buf.get(..len).unwrap_or_default();
        for (ty, msg_seq, payload) in messages(data) {
            if msg_seq != seq {
                continue;
            }
            match ty {
                NLMSG_DONE => return Ok(()),
                NLMSG_ERROR => {
                    let code = payload
                        .get(..4)
                        .and_then(|b| b.try_into().ok())
                        .map(i32::from_ne_bytes)
                        .unwrap_or(-libc::EIO);
                    return Err(io::Error::from_raw_os_error(-code));
                }
                RTM_NEWROUTE => out.extend(default_route(payload)),
                _ => {}
            }
        }
    }
}

/// A dump request for every route of `family`.
fn request(seq: u32, family: u8) -> Vec<u8> {
    let len = NLMSG_HDRLEN + RTMSG_LEN;
    let mut req = Vec::with_capacity(len);
    req.extend_from_slice(&(len as u32).to_ne_bytes());
    req.extend_from_slice(&RTM_GETROUTE.to_ne_bytes());
    req.extend_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    req.extend_from_slice(&seq.to_ne_bytes());
    req.extend_from_slice(&0u32.to_ne_bytes());
    // rtmsg: only the family matters for a dump.
    req.push(family);
    req.extend_from_slice(&[0; RTMSG_LEN - 1]);
    req
}

const fn align(len: usize) -> usize {
    (len + 3) & !3
}

fn u16_at(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// The messages of a datagram: (type, sequence number, payload). Stops at
/// the first bad length.
fn messages(mut buf: &[u8]) -> Vec<(u16, u32, &[u8])> {
    let mut out = Vec::new();
    while let Some(len) = u32_at(buf, 0).map(|l| l as usize) {
        if len < NLMSG_HDRLEN || len > buf.len() {
            break;
        }
        let (Some(ty), Some(seq)) = (u16_at(buf, 4), u32_at(buf, 8)) else {
            break;
        };
        out.push((ty, seq, buf.get(NLMSG_HDRLEN..len).unwrap_or_default()));
        buf = buf.get(align(len)..).unwrap_or_default();
    }
    out
}

/// The attributes in `buf`: (type, payload). Stops at the first bad length.
fn attrs(mut buf: &[u8]) -> Vec<(u16, &[u8])> {
    let mut out = Vec::new();
    while let Some(len) = u16_at(buf, 0).map(usize::from) {
        if len < NLA_HDRLEN || len > buf.len() {
            break;
        }
        let Some(ty) = u16_at(buf, 2) else { break };
        // Without the nested and byte-order flag bits.
        out.push((ty & 0x3fff, buf.get(NLA_HDRLEN..len).unwrap_or_default()));
        buf = buf.get(align(len)..).unwrap_or_default();
    }
    out
}

/// The route in an `RTM_NEWROUTE`/`RTM_DELROUTE` payload, if it is a
/// unicast default route (`0.0.0.0/0`, `::/0`) of the main table with an
/// outgoing interface (the first nexthop's, for a multipath route).
pub fn default_route(payload: &[u8]) -> Option<RawRoute> {
    let rtm = payload.get(..RTMSG_LEN)?;
    let (family, dst_len, table, kind) = (rtm[0], rtm[1], rtm[4], rtm[7]);
    let flags = u32_at(rtm, 8)?;
    if dst_len != 0 || kind != RTN_UNICAST || !(family == AF_INET || family == AF_INET6) {
        return None;
    }
    let mut table = u32::from(table);
    let mut ifindex = None;
    let mut metric = 0;
    let mut linkdown = flags & RTNH_F_LINKDOWN != 0;
    for (ty, data) in attrs(payload.get(RTMSG_LEN..)?) {
        match ty {
            RTA_TABLE => table = u32_at(data, 0)?,
            RTA_OIF => ifindex = u32_at(data, 0),
            RTA_PRIORITY => metric = u32_at(data, 0)?,
            // rtnexthop: len u16, flags u8, hops u8, ifindex i32.
            RTA_MULTIPATH if ifindex.is_none() => {
                ifindex = u32_at(data, 4);
                linkdown |= data
                    .get(2)
                    .is_some_and(|f| u32::from(*f) & RTNH_F_LINKDOWN != 0);
            }
            _ => {}
        }
    }
    if table != RT_TABLE_MAIN {
        return None;
    }
    Some(RawRoute {
        v6: family == AF_INET6,
        ifindex: ifindex.filter(|&i| i != 0)?,
        metric,
        linkdown,
    })
}

/// Whether a datagram of route notifications adds or removes a default
/// route of the main table.
pub fn touches_default_route(datagram: &[u8]) -> bool {
    messages(datagram).into_iter().any(|(ty, _, payload)| {
        matches!(ty, RTM_NEWROUTE | RTM_DELROUTE) && default_route(payload).is_some()
    })
}

/// Whether a datagram holds route notifications only (link and address
/// notifications always count as a change).
pub fn only_routes(datagram: &[u8]) -> bool {
    let msgs = messages(datagram);
    !msgs.is_empty()
        && msgs
            .iter()
            .all(|(ty, _, _)| matches!(*ty, RTM_NEWROUTE | RTM_DELROUTE))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An rtnetlink route message as the kernel sends it.
    fn route_msg(
        ty: u16,
        family: u8,
        dst_len: u8,
        table: u8,
        flags: u32,
        attrs: &[(u16, Vec<u8>)],
    ) -> Vec<u8> {
        let mut body = vec![family, dst_len, 0, 0, table, 3, 0, RTN_UNICAST];
        body.extend_from_slice(&flags.to_ne_bytes());
        for (ty, data) in attrs {
            let len = (NLA_HDRLEN + data.len()) as u16;
            body.extend_from_slice(&len.to_ne_bytes());
            body.extend_from_slice(&ty.to_ne_bytes());
            body.extend_from_slice(data);
            body.resize(align(body.len()), 0);
        }
        let mut msg = Vec::new();
        msg.extend_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        msg.extend_from_slice(&ty.to_ne_bytes());
        msg.extend_from_slice(&0x2u16.to_ne_bytes());
        msg.extend_from_slice(&7u32.to_ne_bytes());
        msg.extend_from_slice(&0u32.to_ne_bytes());
        msg.extend_from_slice(&body);
        msg
    }

    fn u32a(ty: u16, v: u32) -> (u16, Vec<u8>) {
        (ty, v.to_ne_bytes().to_vec())
    }

    fn payload(msg: &[u8]) -> &[u8] {
        &msg[NLMSG_HDRLEN..]
    }

    #[test]
    fn a_default_route_gives_its_interface_and_metric() {
        let m = route_msg(
            RTM_NEWROUTE,
            AF_INET,
            0,
            254,
            0,
            &[
                u32a(RTA_TABLE, 254),
                u32a(RTA_PRIORITY, 100),
                u32a(RTA_OIF, 3),
            ],
        );
        assert_eq!(
            default_route(payload(&m)),
            Some(RawRoute {
                v6: false,
                ifindex: 3,
                metric: 100,
                linkdown: false
            })
        );
        assert!(touches_default_route(&m));
        assert!(only_routes(&m));
    }

    #[test]
    fn other_routes_and_tables_are_not_default_routes() {
        let net = route_msg(RTM_NEWROUTE, AF_INET, 24, 254, 0, &[u32a(RTA_OIF, 3)]);
        assert_eq!(default_route(payload(&net)), None);
        assert!(!touches_default_route(&net));
        let local = route_msg(RTM_NEWROUTE, AF_INET, 0, 255, 0, &[u32a(RTA_OIF, 3)]);
        assert_eq!(default_route(payload(&local)), None);
        // A table above 255 is named by RTA_TABLE only.
        let vrf = route_msg(
            RTM_NEWROUTE,
            AF_INET6,
            0,
            252,
            0,
            &[u32a(RTA_TABLE, 1000), u32a(RTA_OIF, 3)],
        );
        assert_eq!(default_route(payload(&vrf)), None);
        // No outgoing interface (a nexthop object without one): unusable.
        let no_oif = route_msg(RTM_NEWROUTE, AF_INET, 0, 254, 0, &[]);
        assert_eq!(default_route(payload(&no_oif)), None);
    }

    #[test]
    fn ipv6_linkdown_and_multipath_routes_are_read() {
        let m = route_msg(
            RTM_DELROUTE,
            AF_INET6,
            0,
            254,
            RTNH_F_LINKDOWN,
            &[u32a(RTA_OIF, 9), u32a(RTA_PRIORITY, 1024)],
        );
        assert_eq!(
            default_route(payload(&m)),
            Some(RawRoute {
                v6: true,
                ifindex: 9,
                metric: 1024,
                linkdown: true
            })
        );
        assert!(touches_default_route(&m));
        // rtnexthop: len 8, flags 0, hops 0, ifindex 5; then a second one.
        let mut hops = Vec::new();
        for ifindex in [5u32, 6] {
            hops.extend_from_slice(&8u16.to_ne_bytes());
            hops.extend_from_slice(&[0, 0]);
            hops.extend_from_slice(&ifindex.to_ne_bytes());
        }
        let mp = route_msg(RTM_NEWROUTE, AF_INET, 0, 254, 0, &[(RTA_MULTIPATH, hops)]);
        assert_eq!(default_route(payload(&mp)).map(|r| r.ifindex), Some(5));
    }

    #[test]
    fn garbled_messages_are_skipped_without_panicking() {
        let m = route_msg(RTM_NEWROUTE, AF_INET, 0, 254, 0, &[u32a(RTA_OIF, 3)]);
        for cut in 0..m.len() {
            let _ = touches_default_route(&m[..cut]);
            let _ = default_route(&payload(&m)[..cut.min(m.len() - NLMSG_HDRLEN)]);
        }
        // An attribute claiming more than there is.
        let mut bad = m.clone();
        let at = NLMSG_HDRLEN + RTMSG_LEN;
        bad[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
        assert_eq!(default_route(payload(&bad)).map(|r| r.ifindex), None);
        assert!(!only_routes(&[]));
    }

    #[test]
    fn a_link_message_is_not_only_routes() {
        let mut m = route_msg(RTM_NEWROUTE, AF_INET, 0, 254, 0, &[u32a(RTA_OIF, 3)]);
        // RTM_NEWLINK.
        m[4..6].copy_from_slice(&16u16.to_ne_bytes());
        assert!(!only_routes(&m));
        assert!(!touches_default_route(&m));
    }

    #[test]
    fn the_dump_request_asks_for_every_route_of_the_family() {
        let r = request(9, AF_INET6);
        assert_eq!(r.len(), 28);
        assert_eq!(u32_at(&r, 0), Some(28));
        assert_eq!(u16_at(&r, 4), Some(RTM_GETROUTE));
        assert_eq!(u16_at(&r, 6), Some(NLM_F_REQUEST | NLM_F_DUMP));
        assert_eq!(u32_at(&r, 8), Some(9));
        assert_eq!(r[16], AF_INET6);
    }

    #[test]
    fn the_dump_of_this_system_matches_ip_route() {
        let facts = Facts::read();
        for (flag, ours) in [("-4", &facts.v4), ("-6", &facts.v6)] {
            let Ok(out) = std::process::Command::new("ip")
                .args([flag, "-o", "route", "show", "default", "table", "main"])
                .output()
            else {
                return; // no iproute2 here: nothing to compare with
            };
            let text = String::from_utf8_lossy(&out.stdout);
            let theirs: Vec<&str> = text
                .lines()
                .filter(|l| l.starts_with("default"))
                .filter_map(|l| {
                    let words: Vec<&str> = l.split_whitespace().collect();
                    let at = words.iter().position(|w| *w == "dev")?;
                    words.get(at + 1).copied()
                })
                .collect();
            let ours: Vec<&str> = ours.iter().map(|r| r.ifname.as_str()).collect();
            assert_eq!(ours, theirs, "{flag}: ip route says:\n{text}");
        }
    }
}
