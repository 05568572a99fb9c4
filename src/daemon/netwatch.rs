//! Wakes the daemon when links or addresses change (rtnetlink multicast),
//! so an interface that appears late, goes away and comes back, or changes
//! address is followed without polling: nothing wakes the daemon while the
//! network is quiet.
//!
//! The messages themselves are not parsed: any change means "look again"
//! (interfaces and addresses are re-read with getifaddrs), which keeps this
//! module tiny and can never misread a message.

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use nix::sys::socket::{
    bind, recv, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType,
};

const RTMGRP_LINK: u32 = 0x1;
const RTMGRP_IPV4_IFADDR: u32 = 0x10;
const RTMGRP_IPV6_IFADDR: u32 = 0x100;

/// A subscription to link and address changes.
pub struct NetWatch {
    sock: OwnedFd,
}

impl NetWatch {
    pub fn open() -> nix::Result<Self> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkRoute,
        )?;
        let groups = RTMGRP_LINK | RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR;
        bind(
            std::os::fd::AsRawFd::as_raw_fd(&sock),
            &NetlinkAddr::new(0, groups),
        )?;
        Ok(NetWatch { sock })
    }

    /// Empties the socket; true when anything changed since the last call.
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
                Ok(_) => any = true,
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
