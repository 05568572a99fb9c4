//! The bytes: the few netlink and nf_tables messages [`super::Nft`] sends,
//! built by hand, and a defensive parser for the kernel's replies.
//!
//! Everything here is pure (bytes in, bytes or values out), so it is unit
//! tested byte for byte without root. The parser never indexes past a
//! length it has checked: a truncated or garbled reply is a [`Malformed`]
//! error, never a panic.

// Values checked against linux-libc-dev's linux/netlink.h,
// linux/netfilter/nfnetlink.h and linux/netfilter/nf_tables.h.

/// `nlmsghdr` size; also NLMSG_HDRLEN (already aligned).
pub(super) const NLMSG_HDRLEN: usize = 16;
/// NLMSG_ALIGNTO and NLA_ALIGNTO.
const ALIGNTO: usize = 4;
/// `nlattr` header size.
const NLA_HDRLEN: usize = 4;
/// `nfgenmsg` size.
const NFGENMSG_LEN: usize = 4;

pub(super) const NLM_F_REQUEST: u16 = 0x1;
/// Marks the parts of a dump (only the tests look at it).
#[cfg(test)]
const NLM_F_MULTI: u16 = 0x2;
pub(super) const NLM_F_ACK: u16 = 0x4;
/// Set by the kernel on dump parts when the dumped object changed
/// meanwhile: the dump must be started again.
pub(super) const NLM_F_DUMP_INTR: u16 = 0x10;
pub(super) const NLM_F_DUMP: u16 = 0x300;
pub(super) const NLM_F_EXCL: u16 = 0x200;
pub(super) const NLM_F_CREATE: u16 = 0x400;

pub(super) const NLMSG_ERROR: u16 = 2;
pub(super) const NLMSG_DONE: u16 = 3;

const NLA_F_NESTED: u16 = 0x8000;
const NLA_F_NET_BYTEORDER: u16 = 0x4000;
const NLA_TYPE_MASK: u16 = !(NLA_F_NESTED | NLA_F_NET_BYTEORDER);

const NFNETLINK_V0: u8 = 0;
const NFNL_SUBSYS_NFTABLES: u16 = 10;
const NFNL_MSG_BATCH_BEGIN: u16 = 16;
const NFNL_MSG_BATCH_END: u16 = 17;
/// AF_UNSPEC: the family of the batch delimiters.
const AF_UNSPEC: u8 = 0;

const NFT_MSG_GETTABLE: u16 = 1;
const NFT_MSG_NEWSET: u16 = 9;
const NFT_MSG_GETSET: u16 = 10;
const NFT_MSG_NEWSETELEM: u16 = 12;
const NFT_MSG_GETSETELEM: u16 = 13;
const NFT_MSG_DELSETELEM: u16 = 14;

const NFTA_TABLE_NAME: u16 = 1;

const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;

const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;

const NFTA_LIST_ELEM: u16 = 1;

const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_FLAGS: u16 = 3;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_SET_ELEM_EXPIRATION: u16 = 5;

const NFTA_DATA_VALUE: u16 = 1;

/// nft_set_flags.
pub(super) const NFT_SET_INTERVAL: u32 = 0x4;
pub(super) const NFT_SET_MAP: u32 = 0x8;
pub(super) const NFT_SET_TIMEOUT: u32 = 0x10;
pub(super) const NFT_SET_OBJECT: u32 = 0x40;
pub(super) const NFT_SET_CONCAT: u32 = 0x80;

/// nft_set_elem_flags: elements that are not an address of their own.
const NFT_SET_ELEM_INTERVAL_END: u32 = 0x1;
const NFT_SET_ELEM_CATCHALL: u32 = 0x2;

/// The nlmsghdr type of an nf_tables message.
const fn nft_type(msg: u16) -> u16 {
    (NFNL_SUBSYS_NFTABLES << 8) | msg
}

/// The type of the kernel's answer to GETSET.
pub(super) const NEWSET: u16 = nft_type(NFT_MSG_NEWSET);
/// The type of each part of the kernel's answer to a GETSETELEM dump.
pub(super) const NEWSETELEM: u16 = nft_type(NFT_MSG_NEWSETELEM);

const fn align(len: usize) -> usize {
    (len + ALIGNTO - 1) & !(ALIGNTO - 1)
}

/// Writes one netlink message (header, nfgenmsg, attributes) onto the end
/// of a buffer that may already hold others: a batch is one buffer.
struct Writer<'a> {
    buf: &'a mut Vec<u8>,
    start: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut Vec<u8>, ty: u16, flags: u16, seq: u32, family: u8, res_id: u16) -> Self {
        let start = buf.len();
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_len, patched by finish
        buf.extend_from_slice(&ty.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel fills it in
        buf.extend_from_slice(&[family, NFNETLINK_V0]);
        buf.extend_from_slice(&res_id.to_be_bytes());
        Writer { buf, start }
    }

    fn pad(&mut self) {
        let padded = align(self.buf.len());
        self.buf.resize(padded, 0);
    }

    /// Patches the 16-bit length at `at` (an attribute header). Callers
    /// only write names validated to at most 255 bytes and fixed-size
    /// values, so the length always fits; saturating keeps this total.
    fn patch_u16(&mut self, at: usize, len: usize) {
        let len = u16::try_from(len).unwrap_or(u16::MAX).to_ne_bytes();
        if let Some(slot) = self.buf.get_mut(at..at + 2) {
            slot.copy_from_slice(&len);
        }
    }

    fn attr(&mut self, ty: u16, data: &[u8]) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(data);
        self.patch_u16(at, NLA_HDRLEN + data.len());
        self.pad();
    }

    /// A NUL-terminated string attribute (NLA_STRING / NLA_NUL_STRING).
    fn str(&mut self, ty: u16, s: &str) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.patch_u16(at, NLA_HDRLEN + s.len() + 1);
        self.pad();
    }

    fn u64_be(&mut self, ty: u16, v: u64) {
        self.attr(ty, &v.to_be_bytes());
    }

    /// A nested attribute (NLA_F_NESTED set, as libmnl does) holding
    /// whatever `inner` writes.
    fn nest(&mut self, ty: u16, inner: impl FnOnce(&mut Self)) {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        self.buf
            .extend_from_slice(&(ty | NLA_F_NESTED).to_ne_bytes());
        inner(self);
        let len = self.buf.len() - at;
        self.patch_u16(at, len);
    }

    fn finish(self) {
        let len = u32::try_from(self.buf.len() - self.start).unwrap_or(u32::MAX);
        if let Some(slot) = self.buf.get_mut(self.start..self.start + 4) {
            slot.copy_from_slice(&len.to_ne_bytes());
        }
    }
}

/// NFNL_MSG_BATCH_BEGIN for nf_tables.
pub(super) fn batch_begin(buf: &mut Vec<u8>, seq: u32) {
    batch_delimiter(buf, NFNL_MSG_BATCH_BEGIN, seq);
}

/// NFNL_MSG_BATCH_END for nf_tables: commits the batch.
pub(super) fn batch_end(buf: &mut Vec<u8>, seq: u32) {
    batch_delimiter(buf, NFNL_MSG_BATCH_END, seq);
}

fn batch_delimiter(buf: &mut Vec<u8>, ty: u16, seq: u32) {
    Writer::new(buf, ty, NLM_F_REQUEST, seq, AF_UNSPEC, NFNL_SUBSYS_NFTABLES).finish();
}

/// NFT_MSG_GETTABLE for one table (acked).
pub(super) fn get_table(buf: &mut Vec<u8>, seq: u32, family: u8, table: &str) {
    let mut w = Writer::new(
        buf,
        nft_type(NFT_MSG_GETTABLE),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        family,
        0,
    );
    w.str(NFTA_TABLE_NAME, table);
    w.finish();
}

/// The set a message is about: NFPROTO family, table and set names
/// (validated by the caller: non-empty, at most 255 bytes, no NUL).
#[derive(Clone, Copy, Debug)]
pub(super) struct Target<'a> {
    pub(super) family: u8,
    pub(super) table: &'a str,
    pub(super) set: &'a str,
}

/// NFT_MSG_GETSET for one set (acked).
pub(super) fn get_set(buf: &mut Vec<u8>, seq: u32, t: Target<'_>) {
    let mut w = Writer::new(
        buf,
        nft_type(NFT_MSG_GETSET),
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        t.family,
        0,
    );
    w.str(NFTA_SET_TABLE, t.table);
    w.str(NFTA_SET_NAME, t.set);
    w.finish();
}

/// Which element message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum ElemOp {
    /// NEWSETELEM with NLM_F_CREATE | NLM_F_EXCL: EEXIST if present.
    Create,
    /// DELSETELEM: ENOENT if absent.
    Delete,
    /// GETSETELEM of one element (not in a batch): its NEWSETELEM, or
    /// ENOENT if absent.
    Get,
}

/// One set element message (acked, for a batch): `key` is the address in
/// network byte order; `timeout_ms` only with [`ElemOp::Create`].
pub(super) fn set_elem(
    buf: &mut Vec<u8>,
    seq: u32,
    op: ElemOp,
    t: Target<'_>,
    key: &[u8],
    timeout_ms: Option<u64>,
) {
    let (ty, flags) = match op {
        ElemOp::Create => (
            nft_type(NFT_MSG_NEWSETELEM),
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        ),
        ElemOp::Delete => (nft_type(NFT_MSG_DELSETELEM), NLM_F_REQUEST | NLM_F_ACK),
        ElemOp::Get => (nft_type(NFT_MSG_GETSETELEM), NLM_F_REQUEST | NLM_F_ACK),
    };
    let mut w = Writer::new(buf, ty, flags, seq, t.family, 0);
    w.str(NFTA_SET_ELEM_LIST_TABLE, t.table);
    w.str(NFTA_SET_ELEM_LIST_SET, t.set);
    w.nest(NFTA_SET_ELEM_LIST_ELEMENTS, |w| {
        w.nest(NFTA_LIST_ELEM, |w| {
            w.nest(NFTA_SET_ELEM_KEY, |w| w.attr(NFTA_DATA_VALUE, key));
            if let Some(ms) = timeout_ms {
                w.u64_be(NFTA_SET_ELEM_TIMEOUT, ms);
            }
        });
    });
    w.finish();
}

/// NFT_MSG_GETSETELEM dump of one set's elements.
pub(super) fn get_set_elems(buf: &mut Vec<u8>, seq: u32, t: Target<'_>) {
    let mut w = Writer::new(
        buf,
        nft_type(NFT_MSG_GETSETELEM),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        t.family,
        0,
    );
    w.str(NFTA_SET_ELEM_LIST_TABLE, t.table);
    w.str(NFTA_SET_ELEM_LIST_SET, t.set);
    w.finish();
}

/// What is wrong with a reply, for the error message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Malformed(pub(super) &'static str);

impl std::fmt::Display for Malformed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

/// One netlink message of a datagram.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct NlMsg<'a> {
    pub(super) ty: u16,
    pub(super) flags: u16,
    pub(super) seq: u32,
    pub(super) payload: &'a [u8],
}

fn u16_ne(b: &[u8], at: usize) -> Result<u16, Malformed> {
    b.get(at..at + 2)
        .and_then(|s| s.try_into().ok())
        .map(u16::from_ne_bytes)
        .ok_or(Malformed("truncated field"))
}

fn u32_ne(b: &[u8], at: usize) -> Result<u32, Malformed> {
    b.get(at..at + 4)
        .and_then(|s| s.try_into().ok())
        .map(u32::from_ne_bytes)
        .ok_or(Malformed("truncated field"))
}

/// Splits a datagram into its messages, checking every length.
pub(super) fn messages(mut buf: &[u8]) -> Result<Vec<NlMsg<'_>>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < NLMSG_HDRLEN {
            return Err(Malformed("truncated netlink header"));
        }
        let len = u32_ne(buf, 0)? as usize;
        if len < NLMSG_HDRLEN || len > buf.len() {
            return Err(Malformed("bad netlink message length"));
        }
        out.push(NlMsg {
            ty: u16_ne(buf, 4)?,
            flags: u16_ne(buf, 6)?,
            seq: u32_ne(buf, 8)?,
            payload: buf.get(NLMSG_HDRLEN..len).unwrap_or_default(),
        });
        // The last message of a datagram may omit its padding.
        buf = buf.get(align(len)..).unwrap_or_default();
    }
    Ok(out)
}

/// The code of an NLMSG_ERROR (0: an ACK; negative: -errno) or of an
/// NLMSG_DONE (0, or a negative errno ending a failed dump).
pub(super) fn status_code(payload: &[u8]) -> Result<i32, Malformed> {
    payload
        .get(..4)
        .and_then(|s| s.try_into().ok())
        .map(i32::from_ne_bytes)
        .ok_or(Malformed("truncated error code"))
}

/// One attribute: its type without the flag bits, and its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Attr<'a> {
    pub(super) ty: u16,
    pub(super) data: &'a [u8],
}

impl Attr<'_> {
    fn u32_be(&self) -> Result<u32, Malformed> {
        self.data
            .try_into()
            .map(u32::from_be_bytes)
            .map_err(|_| Malformed("u32 attribute of the wrong size"))
    }

    fn u64_be(&self) -> Result<u64, Malformed> {
        self.data
            .try_into()
            .map(u64::from_be_bytes)
            .map_err(|_| Malformed("u64 attribute of the wrong size"))
    }
}

/// The attributes in `buf`, checking every length.
pub(super) fn attrs(mut buf: &[u8]) -> Result<Vec<Attr<'_>>, Malformed> {
    let mut out = Vec::new();
    while !buf.is_empty() {
        if buf.len() < NLA_HDRLEN {
            return Err(Malformed("truncated attribute header"));
        }
        let len = usize::from(u16_ne(buf, 0)?);
        if len < NLA_HDRLEN || len > buf.len() {
            return Err(Malformed("bad attribute length"));
        }
        out.push(Attr {
            ty: u16_ne(buf, 2)? & NLA_TYPE_MASK,
            data: buf.get(NLA_HDRLEN..len).unwrap_or_default(),
        });
        buf = buf.get(align(len)..).unwrap_or_default();
    }
    Ok(out)
}

/// The attributes of an nf_tables message (after its nfgenmsg).
fn nft_attrs(payload: &[u8]) -> Result<Vec<Attr<'_>>, Malformed> {
    attrs(
        payload
            .get(NFGENMSG_LEN..)
            .ok_or(Malformed("truncated nfgenmsg"))?,
    )
}

/// What NEWSET says about a set.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct SetAttrs {
    pub(super) flags: u32,
    pub(super) key_type: u32,
    pub(super) key_len: u32,
}

/// Parses the kernel's NEWSET answer to GETSET.
pub(super) fn parse_set(payload: &[u8]) -> Result<SetAttrs, Malformed> {
    let mut flags = 0;
    let mut key_type = 0;
    let mut key_len = None;
    for a in nft_attrs(payload)? {
        match a.ty {
            NFTA_SET_FLAGS => flags = a.u32_be()?,
            NFTA_SET_KEY_TYPE => key_type = a.u32_be()?,
            NFTA_SET_KEY_LEN => key_len = Some(a.u32_be()?),
            _ => {}
        }
    }
    Ok(SetAttrs {
        flags,
        key_type,
        key_len: key_len.ok_or(Malformed("set without a key length"))?,
    })
}

/// One element of a NEWSETELEM dump part.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct Elem {
    pub(super) key: Vec<u8>,
    /// Milliseconds left; absent for an element without a timeout.
    pub(super) expires_ms: Option<u64>,
}

/// Parses one NEWSETELEM part of a GETSETELEM dump. Catch-all and
/// interval-end elements are not addresses and are skipped.
pub(super) fn parse_elems(payload: &[u8]) -> Result<Vec<Elem>, Malformed> {
    let mut out = Vec::new();
    for list in nft_attrs(payload)? {
        if list.ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for item in attrs(list.data)? {
            if item.ty != NFTA_LIST_ELEM {
                continue;
            }
            let mut key = None;
            let mut expires_ms = None;
            let mut flags = 0;
            for a in attrs(item.data)? {
                match a.ty {
                    NFTA_SET_ELEM_KEY => {
                        for d in attrs(a.data)? {
                            if d.ty == NFTA_DATA_VALUE {
                                key = Some(d.data.to_vec());
                            }
                        }
                    }
                    NFTA_SET_ELEM_EXPIRATION => expires_ms = Some(a.u64_be()?),
                    NFTA_SET_ELEM_FLAGS => flags = a.u32_be()?,
                    _ => {}
                }
            }
            if flags & (NFT_SET_ELEM_INTERVAL_END | NFT_SET_ELEM_CATCHALL) != 0 {
                continue;
            }
            out.push(Elem {
                key: key.ok_or(Malformed("set element without a key"))?,
                expires_ms,
            });
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests;
