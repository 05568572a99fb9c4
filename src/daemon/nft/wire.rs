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
mod tests {
    use super::*;
    use proptest::prelude::*;

    // Expected bytes are written out by hand for a little-endian host
    // (netlink headers are in host order; attribute values big-endian).

    #[cfg(target_endian = "little")]
    #[test]
    fn batch_delimiters_are_byte_exact() {
        let mut buf = Vec::new();
        batch_begin(&mut buf, 7);
        batch_end(&mut buf, 9);
        #[rustfmt::skip]
        let want: &[u8] = &[
            // BATCH_BEGIN: len 20, type 16, flags REQUEST, seq 7, pid 0
            20, 0, 0, 0, 16, 0, 1, 0, 7, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: AF_UNSPEC, v0, res_id NFNL_SUBSYS_NFTABLES (BE)
            0, 0, 0, 10,
            // BATCH_END: type 17, seq 9
            20, 0, 0, 0, 17, 0, 1, 0, 9, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 10,
        ];
        assert_eq!(buf, want);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn get_set_is_byte_exact() {
        let mut buf = Vec::new();
        get_set(
            &mut buf,
            3,
            Target {
                family: 1,
                table: "filter",
                set: "ab",
            },
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            // len 40, type 0x0a0a (GETSET), flags REQUEST|ACK, seq 3
            40, 0, 0, 0, 0x0a, 0x0a, 5, 0, 3, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: inet (1), v0, res_id 0
            1, 0, 0, 0,
            // NFTA_SET_TABLE "filter\0": len 11, padded to 12
            11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0,
            // NFTA_SET_NAME "ab\0": len 7, padded to 8
            7, 0, 2, 0, b'a', b'b', 0, 0,
        ];
        assert_eq!(buf, want);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn get_table_is_byte_exact() {
        let mut buf = Vec::new();
        get_table(&mut buf, 1, 2, "t");
        #[rustfmt::skip]
        let want: &[u8] = &[
            // len 28, type 0x0a01 (GETTABLE), flags REQUEST|ACK, seq 1
            28, 0, 0, 0, 0x01, 0x0a, 5, 0, 1, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0,
            // NFTA_TABLE_NAME "t\0"
            6, 0, 1, 0, b't', 0, 0, 0,
        ];
        assert_eq!(buf, want);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn new_set_elem_is_byte_exact() {
        let mut buf = Vec::new();
        set_elem(
            &mut buf,
            2,
            ElemOp::Create,
            Target {
                family: 2,
                table: "t",
                set: "s",
            },
            &[192, 0, 2, 2],
            Some(2000),
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            // len 68, type 0x0a0c (NEWSETELEM),
            // flags REQUEST|ACK|EXCL|CREATE = 0x0605, seq 2
            68, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x06, 2, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: ip (2)
            2, 0, 0, 0,
            // NFTA_SET_ELEM_LIST_TABLE "t", NFTA_SET_ELEM_LIST_SET "s"
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b's', 0, 0, 0,
            // NFTA_SET_ELEM_LIST_ELEMENTS | NLA_F_NESTED, len 32
            32, 0, 0x03, 0x80,
            //   NFTA_LIST_ELEM | NESTED, len 28
            28, 0, 0x01, 0x80,
            //     NFTA_SET_ELEM_KEY | NESTED, len 12
            12, 0, 0x01, 0x80,
            //       NFTA_DATA_VALUE 192.0.2.2
            8, 0, 1, 0, 192, 0, 2, 2,
            //     NFTA_SET_ELEM_TIMEOUT 2000 ms, u64 big-endian
            12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x07, 0xd0,
        ];
        assert_eq!(buf, want);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn del_set_elem_is_byte_exact() {
        let mut buf = Vec::new();
        let key = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
        set_elem(
            &mut buf,
            5,
            ElemOp::Delete,
            Target {
                family: 10,
                table: "t",
                set: "s",
            },
            &key,
            None,
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            // len 68, type 0x0a0e (DELSETELEM), flags REQUEST|ACK, seq 5
            68, 0, 0, 0, 0x0e, 0x0a, 5, 0, 5, 0, 0, 0, 0, 0, 0, 0,
            // nfgenmsg: ip6 (10)
            10, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b's', 0, 0, 0,
            // ELEMENTS len 32 > LIST_ELEM len 28 > KEY len 24 > VALUE len 20
            32, 0, 0x03, 0x80,
            28, 0, 0x01, 0x80,
            24, 0, 0x01, 0x80,
            20, 0, 1, 0,
            0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1,
            // no timeout attribute
        ];
        assert_eq!(buf, want);
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn get_set_elems_is_byte_exact() {
        let mut buf = Vec::new();
        get_set_elems(
            &mut buf,
            4,
            Target {
                family: 1,
                table: "t",
                set: "s",
            },
        );
        #[rustfmt::skip]
        let want: &[u8] = &[
            // len 36, type 0x0a0d (GETSETELEM), flags REQUEST|DUMP = 0x301
            36, 0, 0, 0, 0x0d, 0x0a, 0x01, 0x03, 4, 0, 0, 0, 0, 0, 0, 0,
            1, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b's', 0, 0, 0,
        ];
        assert_eq!(buf, want);
    }

    /// A hand-built NEWSET reply as the kernel sends it (with a few
    /// attributes this parser ignores).
    #[cfg(target_endian = "little")]
    fn newset_reply() -> Vec<u8> {
        #[rustfmt::skip]
        let v: Vec<u8> = vec![
            // len 80, NEWSET (0x0a09), flags 0, seq 3, pid 1234
            80, 0, 0, 0, 0x09, 0x0a, 0, 0, 3, 0, 0, 0, 0xd2, 0x04, 0, 0,
            1, 0, 0, 0x2a, // inet, v0, res_id = generation (ignored)
            11, 0, 1, 0, b'f', b'i', b'l', b't', b'e', b'r', 0, 0,
            7, 0, 2, 0, b'a', b'b', 0, 0,
            8, 0, 3, 0, 0, 0, 0, 0x10,  // FLAGS: timeout
            8, 0, 4, 0, 0, 0, 0, 7,     // KEY_TYPE: ipv4_addr
            8, 0, 5, 0, 0, 0, 0, 4,     // KEY_LEN: 4
            8, 0, 10, 0, 0, 0, 0, 1,    // NFTA_SET_ID (ignored)
            8, 0, 12, 0, 0, 0, 0x27, 0x10, // GC interval (ignored)
        ];
        v
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_a_newset_reply() {
        let reply = newset_reply();
        let msgs = messages(&reply).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, NEWSET);
        assert_eq!(msgs[0].seq, 3);
        assert_eq!(
            parse_set(msgs[0].payload).unwrap(),
            SetAttrs {
                flags: NFT_SET_TIMEOUT,
                key_type: 7,
                key_len: 4
            }
        );
    }

    /// A NEWSETELEM dump part with two elements (one with an expiration,
    /// one without) and a catch-all, followed by NLMSG_DONE.
    #[cfg(target_endian = "little")]
    fn setelem_dump() -> Vec<u8> {
        #[rustfmt::skip]
        let v: Vec<u8> = vec![
            // len 120, NEWSETELEM (0x0a0c), flags MULTI, seq 4
            120, 0, 0, 0, 0x0c, 0x0a, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0,
            2, 0, 0, 0,
            6, 0, 1, 0, b't', 0, 0, 0,
            6, 0, 2, 0, b's', 0, 0, 0,
            // ELEMENTS, len 84
            84, 0, 0x03, 0x80,
            //   LIST_ELEM len 40: key, timeout 5000, expiration 4200
            40, 0, 0x01, 0x80,
            12, 0, 0x01, 0x80, 8, 0, 1, 0, 192, 0, 2, 2,
            12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x13, 0x88,
            12, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x10, 0x68,
            //   LIST_ELEM len 16 (no NLA_F_NESTED: older kernels): key only
            16, 0, 0x01, 0,
            12, 0, 0x01, 0, 8, 0, 1, 0, 198, 51, 100, 7,
            //   LIST_ELEM len 24: catch-all (flags 2, no key)
            24, 0, 0x01, 0x80,
            8, 0, 3, 0, 0, 0, 0, 2,
            12, 0, 4, 0, 0, 0, 0, 0, 0, 0, 0x13, 0x88,
            // NLMSG_DONE, seq 4, code 0
            20, 0, 0, 0, 3, 0, 2, 0, 4, 0, 0, 0, 0, 0, 0, 0,
            0, 0, 0, 0,
        ];
        v
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_a_setelem_dump() {
        let dump = setelem_dump();
        let msgs = messages(&dump).unwrap();
        assert_eq!(msgs.len(), 2);
        assert_eq!(msgs[0].ty, NEWSETELEM);
        assert_eq!(msgs[0].flags, NLM_F_MULTI);
        assert_eq!(
            parse_elems(msgs[0].payload).unwrap(),
            vec![
                Elem {
                    key: vec![192, 0, 2, 2],
                    expires_ms: Some(4200)
                },
                Elem {
                    key: vec![198, 51, 100, 7],
                    expires_ms: None
                },
            ]
        );
        assert_eq!(msgs[1].ty, NLMSG_DONE);
        assert_eq!(status_code(msgs[1].payload), Ok(0));
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn parses_an_error_reply() {
        #[rustfmt::skip]
        let reply: &[u8] = &[
            // NLMSG_ERROR, len 36, seq 9: -EEXIST (-17), then the request's
            // header (NETLINK_CAP_ACK not set)
            36, 0, 0, 0, 2, 0, 0, 0, 9, 0, 0, 0, 0, 0, 0, 0,
            0xef, 0xff, 0xff, 0xff,
            68, 0, 0, 0, 0x0c, 0x0a, 0x05, 0x06, 9, 0, 0, 0, 0, 0, 0, 0,
        ];
        let msgs = messages(reply).unwrap();
        assert_eq!(msgs.len(), 1);
        assert_eq!(msgs[0].ty, NLMSG_ERROR);
        assert_eq!(msgs[0].seq, 9);
        assert_eq!(status_code(msgs[0].payload), Ok(-17));
    }

    #[test]
    fn round_trips_what_it_builds() {
        let mut buf = Vec::new();
        batch_begin(&mut buf, 1);
        set_elem(
            &mut buf,
            2,
            ElemOp::Create,
            Target {
                family: 1,
                table: "filter",
                set: "knockd_ssh4",
            },
            &[10, 0, 0, 1],
            Some(u64::MAX),
        );
        batch_end(&mut buf, 3);
        let msgs = messages(&buf).unwrap();
        assert_eq!(
            msgs.iter().map(|m| m.seq).collect::<Vec<_>>(),
            vec![1, 2, 3]
        );
        let top = nft_attrs(msgs[1].payload).unwrap();
        assert_eq!(top.len(), 3);
        assert_eq!(top[0].data, b"filter\0");
        assert_eq!(top[1].data, b"knockd_ssh4\0");
        // The element list parses like a dump part (minus the expiration).
        assert_eq!(
            parse_elems(msgs[1].payload).unwrap(),
            vec![Elem {
                key: vec![10, 0, 0, 1],
                expires_ms: None
            }]
        );
    }

    #[cfg(target_endian = "little")]
    #[test]
    fn every_truncation_is_an_error_or_a_shorter_parse() {
        for whole in [newset_reply(), setelem_dump()] {
            for cut in 0..whole.len() {
                let part = &whole[..cut];
                // Any prefix either fails to split or splits into fewer,
                // complete messages; no panic either way.
                if let Ok(msgs) = messages(part) {
                    for m in msgs {
                        let _ = parse_set(m.payload);
                        let _ = parse_elems(m.payload);
                        let _ = status_code(m.payload);
                    }
                }
            }
        }
        // Header lengths that lie.
        let mut lie = newset_reply();
        lie[0] = 200;
        assert!(messages(&lie).is_err());
        lie[0] = 3;
        assert!(messages(&lie).is_err());
        // An attribute length that lies.
        let mut lie = newset_reply();
        lie[20] = 250;
        let msgs = messages(&lie).unwrap();
        assert!(parse_set(msgs[0].payload).is_err());
        // A u32 attribute of the wrong size.
        let mut odd = newset_reply();
        odd[56] = 6; // KEY_LEN's nla_len 8 -> 6
        let msgs = messages(&odd).unwrap();
        assert!(parse_set(msgs[0].payload).is_err());
    }

    #[test]
    fn a_set_without_a_key_length_is_malformed() {
        let mut buf = Vec::new();
        get_set(
            &mut buf,
            1,
            Target {
                family: 2,
                table: "t",
                set: "s",
            },
        );
        let msgs = messages(&buf).unwrap();
        assert_eq!(
            parse_set(msgs[0].payload),
            Err(Malformed("set without a key length"))
        );
    }

    /// Runs every parser on whatever `messages` makes of `bytes`.
    fn parse_all(bytes: &[u8]) {
        let _ = status_code(bytes);
        let _ = parse_set(bytes);
        let _ = parse_elems(bytes);
        if let Ok(msgs) = messages(bytes) {
            for m in msgs {
                assert!(m.payload.len() <= bytes.len());
                let _ = status_code(m.payload);
                let _ = parse_set(m.payload);
                let _ = parse_elems(m.payload);
            }
        }
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
            parse_all(&bytes);
        }

        /// Garbage spliced into a well-formed dump after its headers, where
        /// the nested parsers get to run on it.
        #[test]
        fn garbled_dumps_never_panic(
            at in 0usize..124,
            junk in proptest::collection::vec(any::<u8>(), 1..64),
        ) {
            let mut dump = setelem_dump_any_endian();
            let end = (at + junk.len()).min(dump.len());
            dump[at..end].copy_from_slice(&junk[..end - at]);
            parse_all(&dump);
        }
    }

    /// [`setelem_dump`] on any host (for the proptest): the same shape,
    /// built with the encoder instead of literal bytes.
    fn setelem_dump_any_endian() -> Vec<u8> {
        let mut buf = Vec::new();
        set_elem(
            &mut buf,
            4,
            ElemOp::Create,
            Target {
                family: 2,
                table: "t",
                set: "s",
            },
            &[192, 0, 2, 2],
            Some(5000),
        );
        set_elem(
            &mut buf,
            4,
            ElemOp::Create,
            Target {
                family: 2,
                table: "t",
                set: "s",
            },
            &[198, 51, 100, 7],
            None,
        );
        buf.resize(124.max(buf.len()), 0);
        buf
    }
}
