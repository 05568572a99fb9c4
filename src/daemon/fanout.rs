//! Packet fanout groups: the kernel hands each packet to exactly one
//! member socket of a group, the one a steering program names.
//!
//! This is what lets a capture move to a ring of another size with neither
//! a gap nor a duplicate: the new capture joins the old one's group while
//! the program still names the old one, then one system call names the new
//! one instead. Every packet goes to one ring or the other, never both, and
//! the kernel returns from that call only when no packet is still on its
//! way into the old ring (it waits out an RCU grace period before freeing
//! the previous program), so the old ring can then be read to its end.
//! Setting the program a socket's group already has waits the same way,
//! which is how a socket that just joined makes sure nothing it received
//! on its own before is still arriving.
//!
//! This module owns the three socket options involved and nothing else; it
//! must not know about pcap or rings.

use std::io;
use std::os::fd::BorrowedFd;

use super::sockopt;

/// `PACKET_FANOUT_CBPF`: the member is chosen by a classic BPF program.
const MODE: u32 = libc::PACKET_FANOUT_CBPF;
/// The kernel picks an id no other group in the namespace has, so a daemon
/// never joins another program's group by accident.
const UNIQUE_ID: u32 = libc::PACKET_FANOUT_FLAG_UNIQUEID;
/// Packets the host sends are not handed to the group (recent kernels;
/// older ones refuse the flag).
const IGNORE_OUTGOING: u32 = libc::PACKET_FANOUT_FLAG_IGNORE_OUTGOING;
/// `BPF_RET | BPF_K`: return a constant.
const BPF_RET_K: u16 = 0x06;

/// A fanout group: what a socket needs to join it.
#[derive(Debug, Clone, Copy)]
pub struct Group {
    id: u16,
    /// The flags it was created with, which every member must repeat.
    flags: u32,
}

/// Creates a new group with the socket `fd` as its only member (member 0),
/// steered to member 0. With `ignore_outgoing` (for loopback, where every
/// packet passes twice, sent and received, and libpcap throws the sent
/// copy away), the group is not handed what the host sends, where the
/// kernel can do that. Fails on kernels without unique fanout ids; the
/// capture then simply cannot be resized.
pub fn create(fd: BorrowedFd<'_>, ignore_outgoing: bool) -> io::Result<Group> {
    let mut flags = 0;
    if ignore_outgoing
        && setsockopt_u32(
            fd,
            libc::PACKET_FANOUT,
            (MODE | UNIQUE_ID | IGNORE_OUTGOING) << 16,
        )
        .is_ok()
    {
        flags = IGNORE_OUTGOING;
    } else {
        setsockopt_u32(fd, libc::PACKET_FANOUT, (MODE | UNIQUE_ID) << 16)?;
    }
    let val: u32 = sockopt::get(fd, libc::SOL_PACKET, libc::PACKET_FANOUT, 0)?;
    // The low 16 bits are the id; mode and flags sit above.
    let id = (val & 0xFFFF) as u16;
    steer(fd, 0)?;
    Ok(Group { id, flags })
}

/// Adds the socket `fd` to `group` as its next member. It receives
/// nothing until the group is steered to it.
pub fn join(fd: BorrowedFd<'_>, group: Group) -> io::Result<()> {
    setsockopt_u32(
        fd,
        libc::PACKET_FANOUT,
        u32::from(group.id) | ((MODE | group.flags) << 16),
    )
}

/// Steers every packet of the group that `fd` belongs to to member
/// `member` (members are numbered in joining order; when one leaves, the
/// last takes its number). When this returns after replacing a program,
/// no packet steered by the previous one is still being delivered.
pub fn steer(fd: BorrowedFd<'_>, member: u32) -> io::Result<()> {
    let mut program = [libc::sock_filter {
        code: BPF_RET_K,
        jt: 0,
        jf: 0,
        k: member,
    }];
    let fprog = libc::sock_fprog {
        len: 1,
        filter: program.as_mut_ptr(),
    };
    // The kernel copies the one-instruction program during the call.
    sockopt::set(fd, libc::SOL_PACKET, libc::PACKET_FANOUT_DATA, &fprog)
}

fn setsockopt_u32(fd: BorrowedFd<'_>, option: libc::c_int, val: u32) -> io::Result<()> {
    sockopt::set(fd, libc::SOL_PACKET, option, &val)
}
