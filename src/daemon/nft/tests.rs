use super::*;

fn ssh4() -> SetRef {
    "inet filter knockd_ssh4".parse().unwrap()
}

#[test]
fn set_refs_parse_and_print_as_nft_writes_them() {
    for (text, family, nfproto) in [
        ("ip t s", Family::Ip, 2),
        ("ip6 t s", Family::Ip6, 10),
        ("inet t s", Family::Inet, 1),
        ("bridge t s", Family::Bridge, 7),
        ("netdev t s", Family::Netdev, 5),
        ("arp t s", Family::Arp, 3),
    ] {
        let r: SetRef = text.parse().unwrap();
        assert_eq!(r.family, family);
        assert_eq!(family.nfproto(), nfproto);
        assert_eq!(r.to_string(), text);
    }
    let r: SetRef = "  inet\tfilter   knockd_ssh4 ".parse().unwrap();
    assert_eq!(
        r,
        SetRef {
            family: Family::Inet,
            table: "filter".into(),
            set: "knockd_ssh4".into()
        }
    );
    assert_eq!(r.to_string(), "inet filter knockd_ssh4");
}

#[test]
fn bad_set_refs_are_one_line_errors() {
    let cases = [
        (
            "inet filter",
            "expected an nft set as `FAMILY TABLE SET` (e.g. `inet filter knockd_ssh4`), \
             got `inet filter`",
        ),
        (
            "inet filter a\nb",
            "expected an nft set as `FAMILY TABLE SET` (e.g. `inet filter knockd_ssh4`), \
             got `inet filter a\\nb`",
        ),
        (
            "ipv4 filter s",
            "unknown nft family `ipv4`: expected ip, ip6, inet, bridge, netdev or arp",
        ),
    ];
    for (text, want) in cases {
        let e = text.parse::<SetRef>().unwrap_err().to_string();
        assert_eq!(e, want);
        assert!(!e.contains('\n'));
    }
    let long = format!("inet filter {}", "x".repeat(256));
    assert!(long
        .parse::<SetRef>()
        .unwrap_err()
        .to_string()
        .starts_with("nft set name `xxx"));
    assert!(format!("inet filter {}", "x".repeat(255))
        .parse::<SetRef>()
        .is_ok());
}

#[test]
fn error_messages_are_one_line_and_name_the_set() {
    let set = ssh4();
    let addr: IpAddr = "192.0.2.2".parse().unwrap();
    let cases: Vec<(NftError, &str)> = vec![
        (
            NftError::Missing {
                set: set.clone(),
                v6: false,
                table_missing: false,
            },
            "nft set inet filter knockd_ssh4 does not exist; create it with: \
             nft add set inet filter knockd_ssh4 '{ type ipv4_addr; flags timeout; }'",
        ),
        (
            NftError::Missing {
                set: set.clone(),
                v6: true,
                table_missing: true,
            },
            "nft set inet filter knockd_ssh4 does not exist, nor does its table; \
             create them with: nft add table inet filter && \
             nft add set inet filter knockd_ssh4 '{ type ipv6_addr; flags timeout; }'",
        ),
        (
            NftError::NoTimeout {
                set: set.clone(),
                v6: false,
            },
            "nft set inet filter knockd_ssh4 has no `flags timeout`, so its elements \
             cannot expire; a set's type and flags cannot change, so recreate it (after \
             removing the rules that use it): nft delete set inet filter knockd_ssh4 && \
             nft add set inet filter knockd_ssh4 '{ type ipv4_addr; flags timeout; }'",
        ),
        (
            NftError::WrongKey {
                set: set.clone(),
                v6: false,
                key_len: 2,
                key_type: 13,
            },
            "nft set inet filter knockd_ssh4 holds 2-byte inet_service keys, not \
             ipv4_addr; a set's type and flags cannot change, so recreate it (after \
             removing the rules that use it): nft delete set inet filter knockd_ssh4 && \
             nft add set inet filter knockd_ssh4 '{ type ipv4_addr; flags timeout; }'",
        ),
        (
            NftError::BadFlags {
                set: set.clone(),
                v6: false,
                flags: 0x14,
            },
            "nft set inet filter knockd_ssh4 is an interval set (flags interval), not a \
             plain set of addresses; a set's type and flags cannot change, so recreate it \
             (after removing the rules that use it): nft delete set inet filter \
             knockd_ssh4 && nft add set inet filter knockd_ssh4 \
             '{ type ipv4_addr; flags timeout; }'",
        ),
        (
            NftError::Kernel {
                op: Op::Add(addr),
                set: set.clone(),
                errno: Errno::EPERM,
            },
            "nft set inet filter knockd_ssh4: cannot add 192.0.2.2: Operation not permitted",
        ),
        (
            NftError::Timeout {
                op: Op::Check,
                set: set.clone(),
            },
            "nft set inet filter knockd_ssh4: cannot look it up: no answer from the kernel \
             within 1s",
        ),
        (
            NftError::Reply {
                op: Op::List,
                set: set.clone(),
                detail: "bad attribute length",
            },
            "nft set inet filter knockd_ssh4: cannot list its elements: malformed reply \
             from the kernel: bad attribute length",
        ),
        (
            NftError::Invalid {
                op: Op::Add(addr),
                set: set.clone(),
                why: "a zero timeout would never expire",
            },
            "nft set inet filter knockd_ssh4: cannot add 192.0.2.2: a zero timeout would \
             never expire",
        ),
        (
            NftError::Open(Errno::EPROTONOSUPPORT),
            "cannot open a netfilter netlink socket: Protocol not supported",
        ),
    ];
    for (e, want) in cases {
        assert_eq!(e.to_string(), want);
    }
    // A name with a newline (fields are public) still prints on one line.
    let odd = SetRef {
        family: Family::Ip,
        table: "a\nb".into(),
        set: "s".into(),
    };
    let e = NftError::Kernel {
        op: Op::Delete(addr),
        set: odd,
        errno: Errno::ENOENT,
    };
    assert_eq!(
        e.to_string(),
        "nft set ip a\\nb s: cannot delete 192.0.2.2: No such file or directory"
    );
}

#[test]
fn timeouts_round_up_and_zero_is_refused() {
    assert_eq!(timeout_ms(Duration::ZERO), None);
    assert_eq!(timeout_ms(Duration::from_nanos(1)), Some(1));
    assert_eq!(timeout_ms(Duration::from_millis(2000)), Some(2000));
    assert_eq!(timeout_ms(Duration::from_micros(2_000_001)), Some(2001));
    assert_eq!(timeout_ms(Duration::MAX), Some(u64::MAX));
}

#[test]
fn invalid_names_are_refused_before_sending() {
    let addr: IpAddr = "2001:db8::2".parse().unwrap();
    for (table, set) in [("", "s"), ("t", ""), ("t\0", "s")] {
        let r = SetRef {
            family: Family::Inet,
            table: table.into(),
            set: set.into(),
        };
        assert!(validate(&r, Op::Add(addr)).is_err(), "{table:?} {set:?}");
    }
    let r = SetRef {
        family: Family::Inet,
        table: "t".into(),
        set: "y".repeat(256),
    };
    assert!(validate(&r, Op::Check).is_err());
    assert!(validate(&ssh4(), Op::Check).is_ok());
}

#[test]
fn keys_are_addresses_in_network_order() {
    let v4: IpAddr = "192.0.2.2".parse().unwrap();
    let v6: IpAddr = "2001:db8::1".parse().unwrap();
    assert_eq!(key_of(v4), vec![192, 0, 2, 2]);
    assert_eq!(addr_of(&key_of(v4)).unwrap(), v4);
    assert_eq!(addr_of(&key_of(v6)).unwrap(), v6);
    assert!(addr_of(&[1, 2]).is_err());
}

#[test]
fn status_codes_become_errnos() {
    assert_eq!(errno_of(-17).unwrap(), Errno::EEXIST);
    assert!(errno_of(0).is_err());
    assert!(errno_of(5).is_err());
    assert!(errno_of(i32::MIN).is_err());
}

#[test]
fn dumps_list_each_address_once() {
    let a: IpAddr = "192.0.2.2".parse().unwrap();
    let b: IpAddr = "192.0.2.3".parse().unwrap();
    let s = Duration::from_secs;
    assert_eq!(
        dedup(vec![
            (a, Some(s(5))),
            (b, None),
            (a, Some(s(9))),
            (b, Some(s(1)))
        ]),
        vec![(a, Some(s(9))), (b, None)]
    );
    assert_eq!(
        dedup(vec![(a, Some(s(9))), (a, Some(s(5)))]),
        vec![(a, Some(s(9)))]
    );
}

#[test]
fn the_socket_is_close_on_exec() {
    // Opening a netfilter netlink socket needs no privilege.
    let nft = Nft::open().unwrap();
    let flags = nix::fcntl::fcntl(&nft.sock, nix::fcntl::FcntlArg::F_GETFD).unwrap();
    assert_ne!(flags & libc::FD_CLOEXEC, 0);
}

#[test]
fn a_full_set_says_so() {
    let e = NftError::Kernel {
        op: Op::Add("192.0.2.3".parse().unwrap()),
        set: ssh4(),
        errno: Errno::ENFILE,
    };
    assert_eq!(
        e.to_string(),
        "nft set inet filter knockd_ssh4: cannot add 192.0.2.3: the set is full (raise its `size`)"
    );
}

#[test]
fn has_timeout_reads_the_flag() {
    let info = SetInfo {
        key_len: 4,
        key_type: 7,
        flags: 0x10,
    };
    assert!(info.has_timeout());
    assert!(!SetInfo { flags: 0x4, ..info }.has_timeout());
}
