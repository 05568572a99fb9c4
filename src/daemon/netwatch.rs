//! Wakes the daemon when links or addresses change (rtnetlink multicast),
//! so an interface that appears late, goes away and comes back, or changes
//! address is followed without polling: nothing wakes the daemon while the
//! network is quiet. When the capture follows the default route
//! ([`crate::core::iface`]), route changes are watched too.
//!
//! Link and address messages are not parsed: any change means "look
//! again" (interfaces and addresses are re-read with getifaddrs). Route
//! messages are, just enough to ignore every route but a default one
//! ([`super::routes`]): a router's route churn must not wake the daemon.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use super::routes;
use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;
const RTMGRP_IPV4_ROUTE: u32 = 0x40;
const RTMGRP_IPV6_ROUTE: u32 = 0x400;

/// A subscription to link and address changes (and default routes).
pub struct NetWatch {
    sock: OwnedFd,
}

impl NetWatch {
    /// Subscribes to link and address changes, and with `routes` to route
    /// changes.
    pub fn open(routes: bool) -> nix::Result<Self> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        let mut groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        if routes {
            groups |= RTMGRP_IPV4_ROUTE | RTMGRP_IPV6_ROUTE;
        }
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            &NetlinkAddr::new(0, groups),
        )?;
        Ok(NetWatch { sock })
    }

    /// Empties the socket; true when a link, an address or a default route
    /// changed since the last call.
    pub fn changed(&mut self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        loop {
            match recv(
                std::os::fd::AsRawFd::as_raw_fd(&self.sock),
                &mut buf,
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(0) => break,
                Ok(n) => {
                    let datagram = buf.get(..n).unwrap_or_default();
                    any |=
                        !routes::only_routes(datagram) || routes::touches_default_route(datagram);
                }
                // ENOBUFS: we missed messages; that is a change too.
                Err(nix::Error::ENOBUFS) => any = true,
                Err(_) => break,
            }
        }
        any
    }
}

impl AsFd for NetWatch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}
