//! Port hits: the packets a knock is made of.
//!
//! A TCP hit is a non-blocking `connect` abandoned at once: the kernel sends
//! exactly one SYN, and closing a socket still in SYN_SENT sends nothing
//! further (no RST, no retransmission; no `SO_LINGER` tricks needed). A UDP
//! hit is one datagram holding one zero byte, as knockd's client sends.
//! Neither needs root. This module must not resolve names or read config.

use std::io::{self, Write};
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::AsRawFd;
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{connect, socket, AddressFamily, SockFlag, SockType, SockaddrStorage};

use crate::core::knock::Proto;

/// One hit of a sequence, ready to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub port: u16,
    pub proto: Proto,
    /// The port as the user wrote it (`ssh` or `22`), for the verbose line.
    pub label: String,
}

/// A hit that did not leave this machine.
#[derive(Debug, thiserror::Error)]
pub enum HitError {
    /// No socket could be made (descriptor limit, no IPv6 in this kernel).
    #[error("cannot open a {proto} socket: {source}")]
    Socket { proto: Proto, source: io::Error },
    /// The kernel refused to send (no route, firewall on this host).
    #[error("cannot hit {proto} {addr}: {source}")]
    Send {
        proto: Proto,
        addr: SocketAddr,
        source: io::Error,
    },
}

/// Sends one hit to `addr`.
pub fn hit(addr: SocketAddr, proto: Proto) -> Result<(), HitError> {
    match proto {
        Proto::Tcp => tcp_hit(addr),
        Proto::Udp => udp_hit(addr),
    }
}

fn tcp_hit(addr: SocketAddr) -> Result<(), HitError> {
    let socket_error = |e: Errno| HitError::Socket {
        proto: Proto::Tcp,
        source: e.into(),
    };
    let family = match addr {
        SocketAddr::V4(_) => AddressFamily::Inet,
        SocketAddr::V6(_) => AddressFamily::Inet6,
    };
    let fd = socket(
        family,
        SockType::Stream,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        None,
    )
    .map_err(socket_error)?;
    match connect(fd.as_raw_fd(), &SockaddrStorage::from(addr)) {
        // The SYN is out. Refused: on loopback the RST can arrive inside
        // the call; the server saw the SYN all the same.
        Ok(()) | Err(Errno::EINPROGRESS) | Err(Errno::ECONNREFUSED) => Ok(()),
        Err(e) => Err(HitError::Send {
            proto: Proto::Tcp,
            addr,
            source: e.into(),
        }),
    }
    // `fd` closes here, in SYN_SENT: nothing more goes out.
}

fn udp_hit(addr: SocketAddr) -> Result<(), HitError> {
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (std::net::Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (std::net::Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let socket = UdpSocket::bind(local).map_err(|source| HitError::Socket {
        proto: Proto::Udp,
        source,
    })?;
    socket
        .send_to(&[0], addr)
        .map(drop)
        .map_err(|source| HitError::Send {
            proto: Proto::Udp,
            addr,
            source,
        })
}

/// knockd's verbose line, byte for byte: `hitting tcp 192.0.2.1:7000`, the
/// port as typed, an IPv6 address without brackets (`hitting tcp ::1:7000`).
pub fn verbose_line(addr: IpAddr, hit: &Hit) -> String {
    format!("hitting {} {}:{}", hit.proto, addr, hit.label)
}

/// Hits every port in order, printing the verbose line first when `verbose`
/// is given, and waiting `delay` after each hit, the last one included: like
/// knockd's client, so `knock -d 500 h 1 2 3 && ssh h` gives the server's
/// command time to run before ssh connects.
pub fn knock(
    addr: IpAddr,
    hits: &[Hit],
    delay: Duration,
    mut verbose: Option<&mut dyn Write>,
) -> Result<(), HitError> {
    for h in hits {
        if let Some(out) = verbose.as_mut() {
            // As knockd's vprintf: a closed stdout does not stop the knock.
            let _ = writeln!(out, "{}", verbose_line(addr, h));
            let _ = out.flush();
        }
        hit(SocketAddr::new(addr, h.port), h.proto)?;
        if !delay.is_zero() {
            std::thread::sleep(delay);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr, TcpListener};

    fn h(port: u16, proto: Proto, label: &str) -> Hit {
        Hit {
            port,
            proto,
            label: label.into(),
        }
    }

    #[test]
    fn verbose_lines_match_knockd() {
        let v4 = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let v6 = IpAddr::V6(Ipv6Addr::LOCALHOST);
        assert_eq!(
            verbose_line(v4, &h(7000, Proto::Tcp, "7000")),
            "hitting tcp 127.0.0.1:7000"
        );
        assert_eq!(
            verbose_line(v4, &h(22, Proto::Udp, "ssh")),
            "hitting udp 127.0.0.1:ssh"
        );
        assert_eq!(
            verbose_line(v6, &h(7000, Proto::Tcp, "7000")),
            "hitting tcp ::1:7000"
        );
    }

    /// A TCP hit on a listening loopback port arrives as a connection
    /// attempt; a UDP hit arrives as one zero byte.
    #[test]
    fn hits_reach_loopback_listeners() {
        let tcp = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind tcp");
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind udp");
        udp.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let addr = IpAddr::V4(Ipv4Addr::LOCALHOST);
        let hits = [
            h(tcp.local_addr().expect("addr").port(), Proto::Tcp, "t"),
            h(udp.local_addr().expect("addr").port(), Proto::Udp, "u"),
        ];
        let mut out = Vec::new();
        knock(addr, &hits, Duration::ZERO, Some(&mut out)).expect("knock");
        let text = String::from_utf8(out).expect("utf-8");
        assert_eq!(
            text,
            format!("hitting tcp 127.0.0.1:t\nhitting udp 127.0.0.1:u\n")
        );
        let mut buf = [9u8; 8];
        let (n, _) = udp.recv_from(&mut buf).expect("udp hit");
        assert_eq!(&buf[..n], &[0]);
        // The SYN completed a handshake with the listener before close.
        tcp.set_nonblocking(false).expect("blocking");
        let (_conn, peer) = tcp.accept().expect("tcp hit");
        assert!(peer.ip().is_loopback());
    }

    #[test]
    fn closed_ports_are_not_errors() {
        // Find a free port by binding and dropping; nothing listens there.
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        hit(addr, Proto::Tcp).expect("tcp hit on a closed port");
        hit(addr, Proto::Udp).expect("udp hit on a closed port");
    }

    #[test]
    fn send_errors_name_the_target() {
        let e = HitError::Send {
            proto: Proto::Tcp,
            addr: "[2001:db8::1]:7000".parse().expect("addr"),
            source: io::Error::from_raw_os_error(libc::ENETUNREACH),
        };
        assert_eq!(
            e.to_string(),
            "cannot hit tcp [2001:db8::1]:7000: Network is unreachable (os error 101)"
        );
    }

    #[test]
    fn delay_follows_every_hit() {
        let port = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let hits = [h(port, Proto::Udp, "1"), h(port, Proto::Udp, "2")];
        let start = std::time::Instant::now();
        knock(
            Ipv4Addr::LOCALHOST.into(),
            &hits,
            Duration::from_millis(30),
            None,
        )
        .expect("knock");
        assert!(start.elapsed() >= Duration::from_millis(60));
    }
}
