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
