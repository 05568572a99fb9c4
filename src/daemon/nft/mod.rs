//! A small nftables client over netlink, so a door can close itself in
//! the kernel: the knocker's address goes into an nftables set with a
//! timeout, and the kernel removes it when the timeout runs out, whether
//! or not knockd is still running.
//!
//! Written by hand rather than taken from a crate:
//! - rustables is GPL-3.0-or-later (this crate is GPL-2.0-or-later) and
//!   needs libclang and bindgen at build time;
//! - the nftnl crate's safe API cannot set a set element's timeout (only
//!   raw libnftnl FFI can), and it brings libnftnl and libmnl with it;
//! - what we need is a handful of messages: look a set up (GETSET), add
//!   and delete one element (NEWSETELEM, DELSETELEM, in a batch), look one
//!   up and list the elements (GETSETELEM). The bytes live in `wire`, pure and tested
//!   byte for byte; this file owns the socket.
//!
//! Every exchange waits at most [`REPLY_TIMEOUT`] for the kernel, so the
//! daemon never hangs on netlink; replies are matched by sequence number
//! and sender (the kernel), and parsed defensively.
//!
//! A repeat knock must restart the timeout, and a plain add does not do
//! that portably: before Linux 6.10 the kernel ignores the timeout of an
//! element that already exists, and later kernels update it only when the
//! timeout value differs (and make the element permanent when an add
//! carries no timeout at all). So [`Nft::add`] looks the element up and,
//! when it is there, deletes and re-adds it in one batch, which the kernel
//! commits atomically: the address is never missing from the set. (Looking
//! up first, rather than creating and reading EEXIST, also keeps batches
//! from being refused: the kernel aborts a refused batch after an RCU
//! grace period, milliseconds asleep.)

mod error;
mod wire;

pub use error::{NftError, Op};
use wire::ElemOp;

use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::str::FromStr;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{
    bind, recvfrom, send, socket, AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol,
    SockType,
};

/// How long one operation waits for the kernel's answers: a daemon must
/// never hang on netlink, and the kernel answers in microseconds.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(1);

/// Longest table or set name the kernel accepts (NFT_NAME_MAXLEN, 256,
/// counts the terminating NUL).
const NAME_MAX: usize = 255;

/// nftables' own numbers for the key types of address sets (`type
/// ipv4_addr`, `type ipv6_addr`, and `typeof ip saddr` alike). The kernel
/// only stores them; nft uses them to print elements.
const TYPE_IPV4_ADDR: u32 = 7;
const TYPE_IPV6_ADDR: u32 = 8;

/// An nftables address family: which table namespace a set lives in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Family {
    Ip,
    Ip6,
    Inet,
    Bridge,
    Netdev,
    Arp,
}

impl Family {
    /// The NFPROTO_* number the kernel knows the family by.
    pub fn nfproto(self) -> u8 {
        match self {
            Family::Ip => 2,
            Family::Ip6 => 10,
            Family::Inet => 1,
            Family::Bridge => 7,
            Family::Netdev => 5,
            Family::Arp => 3,
        }
    }

    /// The name nft uses (`ip`, `ip6`, `inet`, `bridge`, `netdev`, `arp`).
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Ip6 => "ip6",
            Family::Inet => "inet",
            Family::Bridge => "bridge",
            Family::Netdev => "netdev",
            Family::Arp => "arp",
        }
    }

    const ALL: [Family; 6] = [
        Family::Ip,
        Family::Ip6,
        Family::Inet,
        Family::Bridge,
        Family::Netdev,
        Family::Arp,
    ];
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Which nftables set a door adds knockers to, written as nft writes it:
/// `FAMILY TABLE SET` (e.g. `inet filter knockd_ssh4`), so it can be
/// pasted into an `nft` command and back.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct SetRef {
    pub family: Family,
    pub table: String,
    pub set: String,
}

/// Why a `FAMILY TABLE SET` did not parse; one line.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseSetRefError {
    #[error(
        "expected an nft set as `FAMILY TABLE SET` (e.g. `inet filter knockd_ssh4`), got `{0}`"
    )]
    Shape(String),
    #[error("unknown nft family `{0}`: expected ip, ip6, inet, bridge, netdev or arp")]
    Family(String),
    #[error("nft {0} name `{1}` is longer than 255 bytes")]
    TooLong(&'static str, String),
}

impl FromStr for SetRef {
    type Err = ParseSetRefError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let words: Vec<&str> = s.split_whitespace().collect();
        let [family, table, set] = words[..] else {
            return Err(ParseSetRefError::Shape(one_line(s)));
        };
        let family = Family::ALL
            .into_iter()
            .find(|f| f.name() == family)
            .ok_or_else(|| ParseSetRefError::Family(one_line(family)))?;
        for (what, name) in [("table", table), ("set", set)] {
            if name.len() > NAME_MAX {
                return Err(ParseSetRefError::TooLong(what, one_line(name)));
            }
        }
        Ok(SetRef {
            family,
            table: table.to_string(),
            set: set.to_string(),
        })
    }
}

impl fmt::Display for SetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {} {}",
            self.family,
            one_line(&self.table),
            one_line(&self.set)
        )
    }
}

/// `s` with control characters escaped, so a message built from it stays
/// on one line whatever a caller put in a name.
fn one_line(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// What the kernel says about a set: enough to tell whether knockd can
/// add addresses to it that expire by themselves.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct SetInfo {
    /// Bytes per key: 4 for IPv4 addresses, 16 for IPv6.
    pub key_len: u32,
    /// nft's key type number (7 `ipv4_addr`, 8 `ipv6_addr`); informational
    /// for the kernel.
    pub key_type: u32,
    /// NFT_SET_* flags.
    pub flags: u32,
}

impl SetInfo {
    /// Whether the set was created with `flags timeout`: without it the
    /// kernel refuses elements with a timeout (EINVAL).
    pub fn has_timeout(&self) -> bool {
        self.flags & wire::NFT_SET_TIMEOUT != 0
    }
}

/// What [`Nft::add`] did: a knocker's first opening, or a repeat knock
/// that restarted the timeout of an address already in the set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Added {
    New,
    Refreshed,
    /// The address was there without a timeout (an admin added it): left
    /// as it is, so it never starts to expire.
    Permanent,
    /// The set was full: the element [`Nft::add_making_room`] named was
    /// removed (or was gone already) and the address added.
    MadeRoom,
}

/// What went wrong in an exchange, before it is put in terms of the
/// operation and the set.
#[derive(Debug)]
enum Fail {
    Kernel(Errno),
    Timeout,
    Io(Errno),
    Reply(&'static str),
}

impl From<wire::Malformed> for Fail {
    fn from(m: wire::Malformed) -> Self {
        Fail::Reply(m.0)
    }
}

impl Fail {
    fn at(self, op: Op, set: &SetRef) -> NftError {
        let set = set.clone();
        match self {
            Fail::Kernel(errno) => NftError::Kernel { op, set, errno },
            Fail::Timeout => NftError::Timeout { op, set },
            Fail::Io(errno) => NftError::Io { op, set, errno },
            Fail::Reply(detail) => NftError::Reply { op, set, detail },
        }
    }
}

/// The errno of a netlink status code (negative errno).
fn errno_of(code: i32) -> Result<Errno, Fail> {
    match code.checked_neg() {
        Some(e) if e > 0 => Ok(Errno::from_raw(e)),
        _ => Err(Fail::Reply("error code is not a negative errno")),
    }
}

/// An address as the kernel stores it in a set: network byte order.
fn key_of(addr: IpAddr) -> Vec<u8> {
    match addr {
        IpAddr::V4(a) => a.octets().to_vec(),
        IpAddr::V6(a) => a.octets().to_vec(),
    }
}

fn addr_of(key: &[u8]) -> Result<IpAddr, Fail> {
    if let Ok(b) = <[u8; 4]>::try_from(key) {
        Ok(IpAddr::V4(Ipv4Addr::from(b)))
    } else if let Ok(b) = <[u8; 16]>::try_from(key) {
        Ok(IpAddr::V6(Ipv6Addr::from(b)))
    } else {
        Err(Fail::Reply("set element key is neither 4 nor 16 bytes"))
    }
}

/// The element timeout in milliseconds, rounded up (a 0 would make the
/// element permanent: the kernel reads 0 as "no timeout").
fn timeout_ms(timeout: Duration) -> Option<u64> {
    let ms = timeout
        .as_nanos()
        .div_ceil(1_000_000)
        .try_into()
        .unwrap_or(u64::MAX);
    (ms > 0).then_some(ms)
}

/// Names the kernel would refuse or misread: checked before sending, so
/// the encoder never sees them.
fn validate(set: &SetRef, op: Op) -> Result<(), NftError> {
    let bad = |why| NftError::Invalid {
        op,
        set: set.clone(),
        why,
    };
    for name in [&set.table, &set.set] {
        if name.is_empty() {
            return Err(bad("empty table or set name"));
        }
        if name.len() > NAME_MAX {
            return Err(bad("table or set name longer than 255 bytes"));
        }
        if name.contains('\0') {
            return Err(bad("NUL byte in a table or set name"));
        }
    }
    Ok(())
}

/// A netfilter netlink socket speaking just enough nf_tables to manage
/// the addresses in a set. One per thread of use; operations are
/// synchronous and bounded by [`REPLY_TIMEOUT`].
#[derive(Debug)]
pub struct Nft {
    sock: OwnedFd,
    seq: u32,
    buf: Vec<u8>,
    /// Sets found full, and when: see [`Nft::add_making_room`].
    full: HashMap<SetRef, Instant>,
}

/// How long a set found full is taken to stay full (a flood keeps it so):
/// meanwhile additions that name a victim replace it at once.
const FULL_FOR: Duration = Duration::from_secs(1);

/// Receive buffer: larger than any part of a dump the kernel sends (it
/// sizes those to at most 32 KiB), so a reply is never truncated.
const RECV_BUF: usize = 64 * 1024;

/// NEWSETELEM-EEXIST-refresh rounds before giving up: an element may
/// expire between the two batches (the refresh then fails with ENOENT and
/// a plain add is tried again).
const ADD_ROUNDS: usize = 3;

impl Nft {
    /// Opens a NETLINK_NETFILTER socket, close-on-exec (commands the
    /// daemon runs must not inherit it) and bound to a kernel-chosen port.
    pub fn open() -> Result<Nft, NftError> {
        let sock = socket(
            AddressFamily::Netlink,
            SockType::Raw,
            SockFlag::SOCK_CLOEXEC,
            SockProtocol::NetlinkNetFilter,
        )
        .map_err(NftError::Open)?;
        bind(sock.as_raw_fd(), &NetlinkAddr::new(0, 0)).map_err(NftError::Open)?;
        Ok(Nft {
            sock,
            // Any start works: replies are matched to this socket's own
            // requests, and a stale reply has an older number.
            seq: 0,
            buf: vec![0; RECV_BUF],
            full: HashMap::new(),
        })
    }

    fn next_seq(&mut self) -> u32 {
        self.seq = self.seq.wrapping_add(1);
        if self.seq == 0 {
            self.seq = 1;
        }
        self.seq
    }

    /// Checks that `set` exists and can hold addresses that expire by
    /// themselves: IPv6 (`v6`) or IPv4 keys, `flags timeout`, not a map or
    /// an interval set. Called at startup, so a misconfigured set is an
    /// error with the command that fixes it, not a door that never opens.
    pub fn check(&mut self, set: &SetRef, v6: bool) -> Result<SetInfo, NftError> {
        validate(set, Op::Check)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let info = self.get_set(set, deadline).map_err(|f| match f {
            Fail::Kernel(Errno::ENOENT) => NftError::Missing {
                set: set.clone(),
                v6,
                table_missing: !self.table_exists(set, deadline).unwrap_or(true),
            },
            f => f.at(Op::Check, set),
        })?;
        let (want_len, want_type) = if v6 {
            (16, TYPE_IPV6_ADDR)
        } else {
            (4, TYPE_IPV4_ADDR)
        };
        let structural = wire::NFT_SET_MAP | wire::NFT_SET_OBJECT | wire::NFT_SET_CONCAT;
        if info.flags & structural != 0 {
            return Err(NftError::BadFlags {
                set: set.clone(),
                v6,
                flags: info.flags,
            });
        }
        // Key type 0: a set made by a tool that does not name types.
        if info.key_len != want_len || (info.key_type != want_type && info.key_type != 0) {
            return Err(NftError::WrongKey {
                set: set.clone(),
                v6,
                key_len: info.key_len,
                key_type: info.key_type,
            });
        }
        if info.flags & wire::NFT_SET_INTERVAL != 0 {
            return Err(NftError::BadFlags {
                set: set.clone(),
                v6,
                flags: info.flags,
            });
        }
        if !info.has_timeout() {
            return Err(NftError::NoTimeout {
                set: set.clone(),
                v6,
            });
        }
        Ok(info)
    }

    /// GETSET, retried once if the kernel asks (EAGAIN while it loads
    /// nf_tables).
    fn get_set(&mut self, set: &SetRef, deadline: Instant) -> Result<SetInfo, Fail> {
        let mut again = true;
        loop {
            let seq = self.next_seq();
            let mut req = Vec::new();
            wire::get_set(&mut req, seq, target(set));
            let mut attrs = None;
            let mut code = None;
            self.exchange(&req, deadline, |m| {
                if m.seq != seq {
                    return Ok(false);
                }
                match m.ty {
                    wire::NEWSET => attrs = Some(wire::parse_set(m.payload)?),
                    wire::NLMSG_ERROR => {
                        code = Some(wire::status_code(m.payload)?);
                        return Ok(true);
                    }
                    _ => {}
                }
                Ok(false)
            })?;
            match code {
                Some(0) => {
                    let a = attrs.ok_or(Fail::Reply("no set in the kernel's answer"))?;
                    return Ok(SetInfo {
                        key_len: a.key_len,
                        key_type: a.key_type,
                        flags: a.flags,
                    });
                }
                Some(c) => match errno_of(c)? {
                    Errno::EAGAIN if again => again = false,
                    e => return Err(Fail::Kernel(e)),
                },
                None => return Err(Fail::Reply("no acknowledgement")),
            }
        }
    }

    /// Whether the set's table exists (to say what to create when the set
    /// does not).
    fn table_exists(&mut self, set: &SetRef, deadline: Instant) -> Result<bool, Fail> {
        let seq = self.next_seq();
        let mut req = Vec::new();
        wire::get_table(&mut req, seq, set.family.nfproto(), &set.table);
        let mut code = None;
        self.exchange(&req, deadline, |m| {
            if m.seq == seq && m.ty == wire::NLMSG_ERROR {
                code = Some(wire::status_code(m.payload)?);
                return Ok(true);
            }
            Ok(false)
        })?;
        match code {
            Some(0) => Ok(true),
            Some(c) if c == -(Errno::ENOENT as i32) => Ok(false),
            Some(c) => Err(Fail::Kernel(errno_of(c)?)),
            None => Err(Fail::Reply("no acknowledgement")),
        }
    }

    /// Adds `addr` to `set`, to be removed by the kernel after `timeout`
    /// (rounded up to whole milliseconds; zero is refused, as the kernel
    /// would read it as "never"). An address already there has its timeout
    /// restarted (see the module doc for why a plain add cannot): it is
    /// deleted and re-added in one atomic batch. An element the operator
    /// added without a timeout is left as it is ([`Added::Permanent`]): a
    /// knock never turns it into one that expires.
    pub fn add(
        &mut self,
        set: &SetRef,
        addr: IpAddr,
        timeout: Duration,
    ) -> Result<Added, NftError> {
        self.add_making_room(set, addr, timeout, None)
    }

    /// [`Nft::add`], and if the set is full, `victim` (an element the
    /// caller added, nearest expiry) is removed and `addr` added in one
    /// batch, which the kernel applies all or none: [`Added::MadeRoom`].
    ///
    /// The element is looked up first, and a set found full is taken to
    /// stay full for [`FULL_FOR`] (without a victim, the addition fails
    /// without asking): a batch the kernel refuses (EEXIST, ENFILE) is
    /// aborted, and an abort waits for an RCU grace period (8 ms measured,
    /// asleep), which under a flood stalled the daemon until the capture
    /// ring overflowed. So the common paths (new, full, refresh) each send
    /// one batch that succeeds, and at most one a second is refused.
    pub fn add_making_room(
        &mut self,
        set: &SetRef,
        addr: IpAddr,
        timeout: Duration,
        victim: Option<IpAddr>,
    ) -> Result<Added, NftError> {
        validate(set, Op::Add(addr))?;
        let ms = timeout_ms(timeout).ok_or_else(|| NftError::Invalid {
            op: Op::Add(addr),
            set: set.clone(),
            why: "a zero timeout would never expire",
        })?;
        let key = key_of(addr);
        let victim = victim.filter(|v| *v != addr).map(key_of);
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let enoent = -(Errno::ENOENT as i32);
        for _ in 0..ADD_ROUNDS {
            let found = self.lookup(set, &key, deadline);
            let op = Op::Refresh(addr);
            match found.map_err(|f| f.at(Op::Add(addr), set))? {
                // An admin's element without a timeout stays as it is.
                Some(None) => return Ok(Added::Permanent),
                // Already in for longer than a knock would give (an
                // admin's longer timeout): never shortened.
                Some(Some(left)) if left >= ms => return Ok(Added::Refreshed),
                Some(Some(_)) => {
                    let refresh = [
                        (ElemOp::Delete, &key, None),
                        (ElemOp::Create, &key, Some(ms)),
                    ];
                    let codes = self
                        .elem_batch(set, &refresh, deadline)
                        .map_err(|f| f.at(op, set))?;
                    match codes.as_slice() {
                        [0, 0] => return Ok(Added::Refreshed),
                        // Expired meanwhile: add it afresh.
                        [d, _] if *d == enoent => continue,
                        [0, c] | [c, _] => return Err(errno_at(*c, op, set)),
                        _ => return Err(Fail::Reply("missing acknowledgement").at(op, set)),
                    }
                }
                None => {}
            }
            let op = Op::Add(addr);
            let full = self.full.get(set).is_some_and(|t| t.elapsed() < FULL_FOR);
            if let (true, Some(v)) = (full, &victim) {
                // The victim is the caller's record of its own element; the
                // kernel's word decides: an element made permanent since
                // (an admin's add without a timeout) is never removed.
                if let Some(None) = self.lookup(set, v, deadline).map_err(|f| f.at(op, set))? {
                    return Err(Fail::Kernel(Errno::ENFILE).at(op, set));
                }
                let replace = [(ElemOp::Delete, v, None), (ElemOp::Create, &key, Some(ms))];
                let codes = self
                    .elem_batch(set, &replace, deadline)
                    .map_err(|f| f.at(op, set))?;
                match codes.as_slice() {
                    [0, 0] => return Ok(Added::MadeRoom),
                    // The victim is gone already (expired): room, perhaps.
                    [d, _] if *d == enoent => {
                        self.full.remove(set);
                        continue;
                    }
                    [0, c] | [c, _] => return Err(errno_at(*c, op, set)),
                    _ => return Err(Fail::Reply("missing acknowledgement").at(op, set)),
                }
            }
            if full && victim.is_none() {
                // Nothing to remove: full, as the kernel said a moment ago
                // (asking again would cost an aborted batch).
                return Err(Fail::Kernel(Errno::ENFILE).at(op, set));
            }
            let codes = self
                .elem_batch(set, &[(ElemOp::Create, &key, Some(ms))], deadline)
                .map_err(|f| f.at(op, set))?;
            match codes.as_slice() {
                [0] => {
                    self.full.remove(set);
                    return Ok(Added::New);
                }
                // Added meanwhile: refresh it.
                [c] if *c == -(Errno::EEXIST as i32) => {}
                [c] if *c == -(Errno::ENFILE as i32) => {
                    self.full.insert(set.clone(), Instant::now());
                    if victim.is_none() {
                        return Err(errno_at(*c, op, set));
                    }
                }
                [c] => return Err(errno_at(*c, op, set)),
                _ => return Err(Fail::Reply("missing acknowledgement").at(op, set)),
            }
        }
        Err(Fail::Kernel(Errno::EAGAIN).at(Op::Add(addr), set))
    }

    /// Whether `key` is in `set`: None if not, else its time left in
    /// milliseconds (None: no timeout).
    fn lookup(
        &mut self,
        set: &SetRef,
        key: &[u8],
        deadline: Instant,
    ) -> Result<Option<Option<u64>>, Fail> {
        let seq = self.next_seq();
        let mut req = Vec::new();
        wire::set_elem(&mut req, seq, wire::ElemOp::Get, target(set), key, None);
        let mut found = None;
        let mut code = None;
        self.exchange(&req, deadline, |m| {
            if m.seq != seq {
                return Ok(false);
            }
            match m.ty {
                wire::NEWSETELEM => {
                    for e in wire::parse_elems(m.payload)? {
                        if e.key == key {
                            found = Some(e.expires_ms);
                        }
                    }
                    Ok(false)
                }
                wire::NLMSG_ERROR => {
                    code = Some(wire::status_code(m.payload)?);
                    Ok(true)
                }
                _ => Ok(false),
            }
        })?;
        match code {
            Some(0) => Ok(found),
            Some(c) if c == -(Errno::ENOENT as i32) => Ok(None),
            Some(c) => Err(Fail::Kernel(errno_of(c)?)),
            None => Err(Fail::Reply("no acknowledgement")),
        }
    }

    /// Removes `addr` from `set` now (a door closed early). An address not
    /// in the set (never added, or already expired) is not an error; a
    /// missing set is.
    pub fn delete(&mut self, set: &SetRef, addr: IpAddr) -> Result<(), NftError> {
        let op = Op::Delete(addr);
        validate(set, op)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let codes = self
            .elem_batch(set, &[(ElemOp::Delete, &key_of(addr), None)], deadline)
            .map_err(|f| f.at(op, set))?;
        match codes.as_slice() {
            [0] => Ok(()),
            // The element is absent, or the set is: only the first is fine.
            [c] if *c == -(Errno::ENOENT as i32) => match self.get_set(set, deadline) {
                Ok(_) => Ok(()),
                Err(f) => Err(f.at(op, set)),
            },
            [c] => Err(errno_at(*c, op, set)),
            _ => Err(Fail::Reply("missing acknowledgement").at(op, set)),
        }
    }

    /// The addresses in `set`, each with the time left before the kernel
    /// removes it (`None`: no timeout). For tests and status tooling.
    ///
    /// A dump the kernel marks as interrupted (the set changed meanwhile)
    /// is started again, up to three times; the last one is returned. Each
    /// address is listed once: a dump that races with a refresh can see
    /// the old and the new element together for an instant (the kernel
    /// does not mark that dump interrupted), and the new one is kept. In
    /// that window a dump can also miss both (about once in 150 000 dumps
    /// taken during refreshes): a dump is not a snapshot, so it says what
    /// the set holds, not what a packet sees (tests/nft.rs checks that on
    /// the packet path).
    pub fn elements(&mut self, set: &SetRef) -> Result<Vec<(IpAddr, Option<Duration>)>, NftError> {
        validate(set, Op::List)?;
        let deadline = Instant::now() + REPLY_TIMEOUT;
        let mut tries = 3;
        loop {
            let seq = self.next_seq();
            let mut req = Vec::new();
            wire::get_set_elems(&mut req, seq, target(set));
            let mut out = Vec::new();
            let mut interrupted = false;
            self.exchange(&req, deadline, |m| {
                if m.seq != seq {
                    return Ok(false);
                }
                interrupted |= m.flags & wire::NLM_F_DUMP_INTR != 0;
                match m.ty {
                    wire::NEWSETELEM => {
                        for e in wire::parse_elems(m.payload)? {
                            let expires = e.expires_ms.map(Duration::from_millis);
                            out.push((addr_of(&e.key)?, expires));
                        }
                        Ok(false)
                    }
                    // DONE carries the dump's status (0 or -errno);
                    // ERROR, a refusal before the dump started.
                    wire::NLMSG_DONE | wire::NLMSG_ERROR => {
                        let code = wire::status_code(m.payload)?;
                        if code != 0 {
                            return Err(Fail::Kernel(errno_of(code)?));
                        }
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .map_err(|f| f.at(Op::List, set))?;
            tries -= 1;
            if !interrupted || tries == 0 {
                return Ok(dedup(out));
            }
        }
    }

    /// Commits element operations (each on its key) in `set` as one
    /// batch, which the kernel applies all or none; the status of each (0
    /// or -errno), in order.
    fn elem_batch(
        &mut self,
        set: &SetRef,
        ops: &[(ElemOp, &Vec<u8>, Option<u64>)],
        deadline: Instant,
    ) -> Result<Vec<i32>, Fail> {
        let begin = self.next_seq();
        let seqs: Vec<u32> = ops.iter().map(|_| self.next_seq()).collect();
        let end = self.next_seq();
        let mut req = Vec::new();
        wire::batch_begin(&mut req, begin);
        for (&(op, key, timeout_ms), &seq) in ops.iter().zip(&seqs) {
            wire::set_elem(&mut req, seq, op, target(set), key, timeout_ms);
        }
        wire::batch_end(&mut req, end);
        self.commit(&req, begin, &seqs, deadline)
    }

    /// Sends a batch and collects the status of each message in `seqs`
    /// (0 or -errno, in order). An error on the batch itself (`begin`)
    /// fails the whole exchange.
    fn commit(
        &mut self,
        req: &[u8],
        begin: u32,
        seqs: &[u32],
        deadline: Instant,
    ) -> Result<Vec<i32>, Fail> {
        let mut codes: Vec<Option<i32>> = vec![None; seqs.len()];
        self.exchange(req, deadline, |m| {
            if m.ty != wire::NLMSG_ERROR {
                return Ok(false);
            }
            if m.seq == begin {
                let code = wire::status_code(m.payload)?;
                return Err(Fail::Kernel(errno_of(code)?));
            }
            if let Some(i) = seqs.iter().position(|&s| s == m.seq) {
                if let Some(slot) = codes.get_mut(i) {
                    *slot = Some(wire::status_code(m.payload)?);
                }
            }
            Ok(codes.iter().all(Option::is_some))
        })?;
        Ok(codes.into_iter().flatten().collect())
    }

    /// Sends `req` and hands every message the kernel sends back to
    /// `handle` until it returns true, an error, or `deadline` passes.
    /// Messages from anything but the kernel are dropped; `handle` drops
    /// those with sequence numbers it does not expect (stale replies to an
    /// exchange that timed out).
    fn exchange(
        &mut self,
        req: &[u8],
        deadline: Instant,
        mut handle: impl FnMut(&wire::NlMsg<'_>) -> Result<bool, Fail>,
    ) -> Result<(), Fail> {
        match send(self.sock.as_raw_fd(), req, MsgFlags::empty()) {
            Ok(n) if n == req.len() => {}
            Ok(_) => return Err(Fail::Io(Errno::EMSGSIZE)),
            Err(e) => return Err(Fail::Io(e)),
        }
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(Fail::Timeout);
            }
            // Rounded up, so a wait never ends just short of the deadline.
            let ms = u16::try_from(left.as_millis().saturating_add(1)).unwrap_or(u16::MAX);
            let mut fds = [PollFd::new(self.sock.as_fd(), PollFlags::POLLIN)];
            match poll(&mut fds, PollTimeout::from(ms)) {
                Ok(0) | Err(Errno::EINTR) => continue,
                Ok(_) => {}
                Err(e) => return Err(Fail::Io(e)),
            }
            // Readable, and only this thread reads the socket: no wait.
            let (len, from) = match recvfrom::<NetlinkAddr>(self.sock.as_raw_fd(), &mut self.buf) {
                Ok((len, from)) => (len, from.map(|a| a.pid())),
                Err(Errno::EAGAIN | Errno::EINTR) => continue,
                Err(e) => return Err(Fail::Io(e)),
            };
            // The kernel's datagrams are at most 32 KiB; a full buffer
            // means one was cut short.
            if len >= self.buf.len() {
                return Err(Fail::Reply("reply larger than the receive buffer"));
            }
            if from != Some(0) {
                continue;
            }
            for m in wire::messages(self.buf.get(..len).unwrap_or_default())? {
                if handle(&m)? {
                    return Ok(());
                }
            }
        }
    }
}

/// Each address once, with the latest expiry (no expiry counts as
/// latest), in the order first seen.
fn dedup(elems: Vec<(IpAddr, Option<Duration>)>) -> Vec<(IpAddr, Option<Duration>)> {
    let mut at: std::collections::HashMap<IpAddr, usize> =
        std::collections::HashMap::with_capacity(elems.len());
    let mut out: Vec<(IpAddr, Option<Duration>)> = Vec::with_capacity(elems.len());
    for (addr, expires) in elems {
        match at.get(&addr).and_then(|&i| out.get_mut(i)) {
            Some(seen) => {
                let later = match (seen.1, expires) {
                    (None, _) => None,
                    (_, None) => None,
                    (Some(a), Some(b)) => Some(a.max(b)),
                };
                seen.1 = later;
            }
            None => {
                at.insert(addr, out.len());
                out.push((addr, expires));
            }
        }
    }
    out
}

/// What the wire encoder needs to name `set`.
fn target(set: &SetRef) -> wire::Target<'_> {
    wire::Target {
        family: set.family.nfproto(),
        table: &set.table,
        set: &set.set,
    }
}

/// A kernel status code as the error of `op` on `set`.
fn errno_at(code: i32, op: Op, set: &SetRef) -> NftError {
    match errno_of(code) {
        Ok(errno) => Fail::Kernel(errno).at(op, set),
        Err(f) => f.at(op, set),
    }
}

#[cfg(test)]
mod tests;
