//! Live capture from a plain packet socket, read with `recvmmsg`.
//!
//! libpcap on Linux always reads through a memory-mapped ring: pinned
//! memory mapped into the daemon for as long as it runs, sized for the
//! worst moment. A packet socket queues packets in the kernel instead,
//! each taking memory only while it waits to be read, so an idle daemon
//! holds nothing for capture and a flood's first milliseconds have the
//! whole queue ([`super::capture::SOCKET_QUEUE_BYTES`]) at once.
//!
//! Only for interfaces whose frames carry an Ethernet header (Ethernet,
//! veth, bridges, loopback): `any` and other link layers stay with
//! libpcap, which knows how to present them. The BPF filter is still
//! libpcap's, compiled for Ethernet without opening anything.
//!
//! This module owns the socket and its options; it must not parse packets
//! or decide anything.

use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd};

use super::sockopt;

/// Bytes kept of each packet read, a multiple of 8 past
/// [`super::capture::SNAPLEN`]: the headers a knock is read from.
const SLOT: usize = 192;

/// Packets taken per `recvmmsg` call.
const PER_CALL: usize = 64;

/// `ARPHRD_*` types whose frames start with an Ethernet header.
const ARPHRD_ETHER: u16 = 1;
const ARPHRD_LOOPBACK: u16 = 772;

/// `sll_pkttype` of a packet the host sends.
const PACKET_OUTGOING: u8 = 4;

/// `BPF_RET | BPF_K` with 0: a filter that takes no packet.
const REJECT_ALL: libc::sock_filter = libc::sock_filter {
    code: 0x06,
    jt: 0,
    jf: 0,
    k: 0,
};

/// Whether `iface` can be read from a packet socket: it exists and its
/// frames start with an Ethernet header. `None` means it cannot be told
/// (it does not exist); libpcap then opens it, or reports why not.
pub fn suits(iface: &str) -> Option<bool> {
    let hw = hardware_type(iface).ok()?;
    Some(hw == ARPHRD_ETHER || hw == ARPHRD_LOOPBACK)
}

/// Kernel counters, accumulated: the kernel resets its own at each read.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub received: u64,
    pub dropped: u64,
}

/// A packet socket bound to one interface, non-blocking and close-on-exec.
pub struct PacketSocket {
    fd: OwnedFd,
    /// On loopback every packet passes twice (sent and received); the sent
    /// copy is left out, in the kernel where it can, here otherwise.
    skip_outgoing: bool,
    counters: Counters,
    bufs: Box<[[u8; SLOT]; PER_CALL]>,
    addrs: Box<[libc::sockaddr_ll; PER_CALL]>,
}

impl PacketSocket {
    /// Binds a socket to `iface` with a receive queue of `queue_bytes`
    /// (root may exceed the system's `rmem_max`; others get what it
    /// allows). It takes no packet until [`PacketSocket::set_filter`].
    pub fn open(iface: &str, queue_bytes: usize) -> io::Result<Self> {
        let index = nix::net::if_::if_nametoindex(iface).map_err(io::Error::from)?;
        // SAFETY: plain socket(2); the descriptor is owned at once below.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_CLOEXEC | libc::SOCK_NONBLOCK,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a descriptor just returned to us and owned by
        // nothing else.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // Protocol 0: nothing reaches the socket until it is bound, and the
        // reject-all filter goes in first, so no unfiltered packet is ever
        // queued.
        attach(fd.as_fd(), &[REJECT_ALL])?;
        let queue = libc::c_int::try_from(queue_bytes / 2).unwrap_or(libc::c_int::MAX / 2);
        // The kernel doubles the value for its bookkeeping; hence the half.
        if setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUFFORCE, queue).is_err() {
            setsockopt(fd.as_fd(), libc::SOL_SOCKET, libc::SO_RCVBUF, queue)?;
        }
        let loopback = hardware_type(iface)? == ARPHRD_LOOPBACK;
        // Linux 4.20 and later leave the host's own packets out in the
        // kernel; on older ones they are skipped as they are read.
        let ignored = loopback
            && setsockopt(
                fd.as_fd(),
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                1,
            )
            .is_ok();
        // SAFETY: all-zero is a valid sockaddr_ll (plain integers).
        let mut addr: libc::sockaddr_ll = unsafe { std::mem::zeroed() };
        addr.sll_family = libc::AF_PACKET as u16;
        addr.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        // Never 0: that would bind to every interface.
        addr.sll_ifindex = i32::try_from(index)
            .ok()
            .filter(|&i| i > 0)
            .ok_or_else(|| io::Error::from(io::ErrorKind::InvalidInput))?;
        // SAFETY: the address is a live sockaddr_ll of the size given.
        let r = unsafe {
            libc::bind(
                fd.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(PacketSocket {
            fd,
            skip_outgoing: loopback && !ignored,
            counters: Counters::default(),
            bufs: Box::new([[0; SLOT]; PER_CALL]),
            // SAFETY: as above, all-zero sockaddr_ll values are valid.
            addrs: Box::new(unsafe { std::mem::zeroed() }),
        })
    }

    /// Installs a compiled classic BPF program, replacing the previous one
    /// in one step.
    pub fn set_filter(&mut self, program: &[libc::sock_filter]) -> io::Result<()> {
        attach(self.fd.as_fd(), program)
    }

    /// Hands up to `max` waiting packets to `each` (data, original
    /// length); returns how many packets were taken off the queue (the
    /// host's own on loopback count, though not handed over). Zero means
    /// nothing is waiting.
    pub fn read(&mut self, max: usize, mut each: impl FnMut(&[u8], u32)) -> io::Result<usize> {
        let mut taken = 0;
        let mut lens = [0u32; PER_CALL];
        while taken < max {
            let want = (max - taken).min(PER_CALL);
            let n = self.recv(&mut lens[..want])?;
            for (i, &len) in lens.iter().enumerate().take(n) {
                if self.skip_outgoing && self.addrs[i].sll_pkttype == PACKET_OUTGOING {
                    continue;
                }
                each(&self.bufs[i][..(len as usize).min(SLOT)], len);
            }
            taken += n;
            if n < want {
                break;
            }
        }
        Ok(taken)
    }

    /// One `recvmmsg` of up to `lens.len()` packets into the slots, without
    /// waiting; their original lengths go to `lens`.
    fn recv(&mut self, lens: &mut [u32]) -> io::Result<usize> {
        let want = lens.len().min(PER_CALL);
        // SAFETY: all-zero iovec and mmsghdr values are valid (null
        // pointers, zero lengths); the ones used are filled in below.
        let mut iov: [libc::iovec; PER_CALL] = unsafe { std::mem::zeroed() };
        let mut msgs: [libc::mmsghdr; PER_CALL] = unsafe { std::mem::zeroed() };
        for (i, (v, m)) in iov.iter_mut().zip(msgs.iter_mut()).enumerate().take(want) {
            v.iov_base = self.bufs[i].as_mut_ptr().cast();
            v.iov_len = SLOT;
            m.msg_hdr.msg_iov = v;
            m.msg_hdr.msg_iovlen = 1;
            // The address (for its packet type) only where the sent copy
            // must be told apart here: the kernel copies it out per packet.
            if self.skip_outgoing {
                m.msg_hdr.msg_name = (&raw mut self.addrs[i]).cast();
                m.msg_hdr.msg_namelen = size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            }
        }
        // SAFETY: the first `want` headers point at live buffers of the
        // lengths they give (the slots, the addresses, the iovecs on this
        // frame), all of which outlive the call.
        let r = unsafe {
            libc::recvmmsg(
                self.fd.as_raw_fd(),
                msgs.as_mut_ptr(),
                want as libc::c_uint,
                libc::MSG_DONTWAIT | libc::MSG_TRUNC,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            return match e.kind() {
                io::ErrorKind::WouldBlock | io::ErrorKind::Interrupted => Ok(0),
                _ => Err(e),
            };
        }
        let n = r as usize;
        for (len, m) in lens.iter_mut().zip(&msgs).take(n) {
            // With MSG_TRUNC: the packet's length, not what was copied.
            *len = m.msg_len;
        }
        Ok(n)
    }

    /// Packets received and dropped since the socket was opened.
    pub fn counters(&mut self) -> io::Result<Counters> {
        let empty = libc::tpacket_stats {
            tp_packets: 0,
            tp_drops: 0,
        };
        let st = sockopt::get(
            self.fd.as_fd(),
            libc::SOL_PACKET,
            libc::PACKET_STATISTICS,
            empty,
        )?;
        // The kernel's received count already includes its drops.
        self.counters.received += u64::from(st.tp_packets);
        self.counters.dropped += u64::from(st.tp_drops);
        Ok(self.counters)
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}

/// Replaces the socket's filter with `program`.
fn attach(fd: BorrowedFd<'_>, program: &[libc::sock_filter]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(program.len())
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "filter program too long"))?,
        // The kernel only reads the program, and copies it during the call.
        filter: program.as_ptr().cast_mut(),
    };
    sockopt::set(fd, libc::SOL_SOCKET, libc::SO_ATTACH_FILTER, &fprog)
}

fn setsockopt(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    option: libc::c_int,
    val: libc::c_int,
) -> io::Result<()> {
    sockopt::set(fd, level, option, &val)
}

/// `struct ifreq` as SIOCGIFHWADDR fills it: the name, then a sockaddr
/// whose family is the `ARPHRD_*` type.
#[repr(C)]
struct IfHwAddr {
    name: [libc::c_char; libc::IFNAMSIZ],
    family: libc::sa_family_t,
    data: [u8; 22],
}

/// The interface's `ARPHRD_*` hardware type.
fn hardware_type(iface: &str) -> io::Result<u16> {
    let bytes = iface.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::from(io::ErrorKind::InvalidInput));
    }
    let mut req = IfHwAddr {
        name: [0; libc::IFNAMSIZ],
        family: 0,
        data: [0; 22],
    };
    for (d, &b) in req.name.iter_mut().zip(bytes) {
        *d = b as libc::c_char;
    }
    // SAFETY: plain socket(2), owned at once below.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: a descriptor just returned to us, owned by nothing else.
    let sock = unsafe { OwnedFd::from_raw_fd(raw) };
    // SAFETY: SIOCGIFHWADDR reads the name from and writes the address
    // into a live ifreq-sized struct.
    let r = unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFHWADDR, &raw mut req) };
    if r != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(req.family)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::UdpSocket;
    use std::time::{Duration, Instant};

    fn is_root() -> bool {
        nix::unistd::geteuid().is_root()
    }

    #[test]
    fn loopback_suits_and_unknown_interfaces_cannot_be_told() {
        assert_eq!(suits("lo"), Some(true));
        assert_eq!(suits("no-such-if0"), None);
        assert_eq!(suits("name-far-too-long-for-linux"), None);
        assert_eq!(hardware_type("lo").unwrap(), ARPHRD_LOOPBACK);
    }

    /// Accepts UDP to `port` in an Ethernet frame carrying IPv4 with no
    /// options (all this test sends): ethertype, protocol, port.
    fn udp_port_filter(port: u16) -> Vec<libc::sock_filter> {
        let op = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
        vec![
            op(0x28, 0, 0, 12),              // ldh [12]
            op(0x15, 0, 5, 0x0800),          // jeq IPv4
            op(0x30, 0, 0, 23),              // ldb [23]
            op(0x15, 0, 3, 17),              // jeq UDP
            op(0x28, 0, 0, 36),              // ldh [36]
            op(0x15, 0, 1, u32::from(port)), // jeq port
            op(0x06, 0, 0, 0xFFFF),          // ret all
            op(0x06, 0, 0, 0),               // ret none
        ]
    }

    fn read_for(sock: &mut PacketSocket, wait: Duration) -> Vec<(Vec<u8>, u32)> {
        let until = Instant::now() + wait;
        let mut got = Vec::new();
        while Instant::now() < until {
            sock.read(1024, |d, len| got.push((d.to_vec(), len)))
                .unwrap();
            std::thread::sleep(Duration::from_millis(5));
        }
        got
    }

    #[test]
    #[ignore = "needs root: packet socket"]
    fn loopback_packets_arrive_once_filtered_with_their_length_and_counted() {
        assert!(is_root(), "run as root");
        let mut sock = PacketSocket::open("lo", 1 << 20).unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        // Before the filter: nothing is taken.
        tx.send_to(b"before", ("127.0.0.1", port)).unwrap();
        assert!(read_for(&mut sock, Duration::from_millis(50)).is_empty());
        sock.set_filter(&udp_port_filter(port)).unwrap();
        let payload = [7u8; 400];
        tx.send_to(&payload, ("127.0.0.1", port)).unwrap();
        tx.send_to(b"x", ("127.0.0.1", port.wrapping_add(1)))
            .unwrap();
        let got = read_for(&mut sock, Duration::from_millis(100));
        // Once (not also as sent), cut to the slot, with its real length:
        // 14 Ethernet + 20 IPv4 + 8 UDP + 400.
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].0.len(), SLOT);
        assert_eq!(got[0].1, 14 + 20 + 8 + 400);
        // The kernel counts the sent copy too where it cannot leave it out
        // (before Linux 4.20); then it is skipped as read.
        let copies = if sock.skip_outgoing { 2 } else { 1 };
        let c = sock.counters().unwrap();
        assert_eq!((c.received, c.dropped), (copies, 0));
        // The kernel reset its counters; ours accumulate.
        assert_eq!(sock.counters().unwrap().received, copies);
    }

    #[test]
    #[ignore = "needs root: packet socket"]
    fn a_full_queue_drops_and_says_so() {
        assert!(is_root(), "run as root");
        // The smallest queue the kernel allows: a few packets.
        let mut sock = PacketSocket::open("lo", 0).unwrap();
        let rx = UdpSocket::bind("127.0.0.1:0").unwrap();
        let port = rx.local_addr().unwrap().port();
        let tx = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_filter(&udp_port_filter(port)).unwrap();
        for _ in 0..2000 {
            tx.send_to(&[0u8; 1000], ("127.0.0.1", port)).unwrap();
        }
        let got = read_for(&mut sock, Duration::from_millis(50));
        let c = sock.counters().unwrap();
        assert!(c.dropped > 0, "{c:?}");
        if sock.skip_outgoing {
            // Sent copies are counted (and dropped) alongside.
            assert_eq!(c.received, 4000, "{c:?}");
        } else {
            assert_eq!(c.received, 2000, "{c:?}");
            assert_eq!(got.len() as u64, c.received - c.dropped);
        }
    }
}
