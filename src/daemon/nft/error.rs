//! Why an nftables operation failed, in one line that names the set and,
//! for a set knockd cannot use, the `nft` commands that fix it.

use std::fmt;
use std::net::IpAddr;

use nix::errno::Errno;

use super::{one_line, wire, SetRef, REPLY_TIMEOUT, TYPE_IPV4_ADDR, TYPE_IPV6_ADDR};

/// The operation an error happened in, for its message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Check,
    Add(IpAddr),
    /// The delete-and-add batch that restarts an element's timeout.
    Refresh(IpAddr),
    Delete(IpAddr),
    List,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Op::Check => f.write_str("cannot look it up"),
            Op::Add(a) => write!(f, "cannot add {a}"),
            Op::Refresh(a) => write!(f, "cannot refresh the timeout of {a}"),
            Op::Delete(a) => write!(f, "cannot delete {a}"),
            Op::List => f.write_str("cannot list its elements"),
        }
    }
}

/// Why an nftables operation failed. Every message is one line and names
/// the set (but [`NftError::Open`], which has none), so it can go straight
/// into the log; the set problems say how to fix them.
#[derive(Debug, thiserror::Error)]
pub enum NftError {
    /// No netlink socket: the daemon cannot use nftables at all.
    #[error("cannot open a netfilter netlink socket: {}", .0.desc())]
    Open(Errno),
    /// The set (or its table) does not exist.
    #[error("{}", missing(.set, *.v6, *.table_missing))]
    Missing {
        set: SetRef,
        v6: bool,
        table_missing: bool,
    },
    /// The set's keys are not addresses of the family asked for.
    #[error(
        "nft set {set} holds {} keys, not {}; {}",
        key_desc(*.key_len, *.key_type), addr_type(*.v6), recreate(.set, *.v6)
    )]
    WrongKey {
        set: SetRef,
        v6: bool,
        key_len: u32,
        key_type: u32,
    },
    /// A map, interval set, concatenation or object map: adding a bare
    /// address to it is refused or, for an interval set, opens a range.
    #[error(
        "nft set {set} is {}, not a plain set of addresses; {}",
        flags_desc(*.flags), recreate(.set, *.v6)
    )]
    BadFlags { set: SetRef, v6: bool, flags: u32 },
    /// The set lacks `flags timeout`, so its elements cannot expire.
    #[error(
        "nft set {set} has no `flags timeout`, so its elements cannot expire; {}",
        recreate(.set, *.v6)
    )]
    NoTimeout { set: SetRef, v6: bool },
    /// The kernel refused the operation.
    #[error("nft set {set}: {op}: {}", kernel_desc(*.errno))]
    Kernel { op: Op, set: SetRef, errno: Errno },
    /// The kernel did not answer within [`REPLY_TIMEOUT`].
    #[error("nft set {set}: {op}: no answer from the kernel within {REPLY_TIMEOUT:?}")]
    Timeout { op: Op, set: SetRef },
    /// Sending to or receiving from the socket failed.
    #[error("nft set {set}: {op}: netlink socket: {}", .errno.desc())]
    Io { op: Op, set: SetRef, errno: Errno },
    /// The kernel's answer did not parse.
    #[error("nft set {set}: {op}: malformed reply from the kernel: {detail}")]
    Reply {
        op: Op,
        set: SetRef,
        detail: &'static str,
    },
    /// The request itself cannot be sent (a name or timeout out of range).
    #[error("nft set {set}: {op}: {why}")]
    Invalid {
        op: Op,
        set: SetRef,
        why: &'static str,
    },
}

/// The kernel's errno in words; ENFILE is how nf_tables says a set with
/// a `size` is full, which strerror's text would not suggest.
fn kernel_desc(errno: Errno) -> String {
    match errno {
        Errno::ENFILE => "the set is full (raise its `size`)".to_string(),
        e => e.desc().to_string(),
    }
}

fn addr_type(v6: bool) -> &'static str {
    if v6 {
        "ipv6_addr"
    } else {
        "ipv4_addr"
    }
}

/// The `nft add set` command for the set knockd wants.
fn add_set_cmd(set: &SetRef, v6: bool) -> String {
    format!(
        "nft add set {set} '{{ type {}; flags timeout; }}'",
        addr_type(v6)
    )
}

fn missing(set: &SetRef, v6: bool, table_missing: bool) -> String {
    if table_missing {
        format!(
            "nft set {set} does not exist, nor does its table; create them with: \
             nft add table {} {} && {}",
            set.family,
            one_line(&set.table),
            add_set_cmd(set, v6)
        )
    } else {
        format!(
            "nft set {set} does not exist; create it with: {}",
            add_set_cmd(set, v6)
        )
    }
}

fn recreate(set: &SetRef, v6: bool) -> String {
    format!(
        "a set's type and flags cannot change, so recreate it (after removing \
         the rules that use it): nft delete set {set} && {}",
        add_set_cmd(set, v6)
    )
}

fn key_desc(len: u32, ty: u32) -> String {
    let name = match ty {
        TYPE_IPV4_ADDR => "ipv4_addr",
        TYPE_IPV6_ADDR => "ipv6_addr",
        9 => "ether_addr",
        12 => "inet_proto",
        13 => "inet_service",
        19 => "mark",
        // nft packs the types of a concatenation 6 bits each.
        64.. => "concatenated",
        _ => return format!("{len}-byte (type {ty})"),
    };
    format!("{len}-byte {name}")
}

fn flags_desc(flags: u32) -> &'static str {
    if flags & wire::NFT_SET_OBJECT != 0 {
        "an object map"
    } else if flags & wire::NFT_SET_MAP != 0 {
        "a map"
    } else if flags & wire::NFT_SET_CONCAT != 0 {
        "a concatenation"
    } else {
        "an interval set (flags interval)"
    }
}
