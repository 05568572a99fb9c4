//! Engine regressions found by fuzzing (`fuzz/`, doc/fuzzing.md); the
//! engine's behaviour is otherwise specified by tests/scenarios/*.txt and
//! tests/engine_props.rs.

use std::net::{IpAddr, Ipv4Addr};

use super::*;
use crate::core::config::{parse_sequence, Door, Options};
use crate::core::knock::{Proto, TcpFlags};

/// Found by the `engine` fuzz target: an attempt on one sequence of a door
/// broken by the first step of another, one-step sequence restarted on
/// that sequence at stage 1 of 1, and the next knock indexed past its end.
/// The one-step sequence must complete at once instead.
#[test]
fn a_one_step_variant_started_mid_attempt_opens_at_once() {
    let seq = |s: &str| parse_sequence(s).unwrap();
    let config = Config {
        options: Options::default(),
        doors: vec![Door::new("d0", seq("7000"))],
    };
    let mut engine = Engine::new(&config, LocalAddrs::Any);
    engine.set_variants(
        DoorId(0),
        vec![
            Variant {
                label: 1,
                sequence: seq("7001:udp,7001:udp"),
                used: false,
                user: None,
            },
            Variant {
                label: 3,
                sequence: seq("7000"),
                used: false,
                user: None,
            },
        ],
    );
    let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
    let knock = |ms: u64, dst_port: u16, proto: Proto| Knock {
        at: Timestamp::from_nanos(ms * 1_000_000),
        src,
        dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        proto,
        dst_port,
        tcp_flags: if proto == Proto::Tcp {
            TcpFlags::SYN
        } else {
            TcpFlags::default()
        },
    };
    let mut opened = 0;
    for k in [
        knock(1, 7001, Proto::Udp),
        knock(2, 7000, Proto::Tcp),
        knock(3, 7000, Proto::Tcp),
    ] {
        engine.handle_knock(&k);
        while let Some(a) = engine.poll_accepting() {
            opened += usize::from(matches!(a, Action::Log(Event::OpenSesame { .. })));
        }
    }
    assert_eq!(opened, 2, "each one-step knock on 7000 opens");
}

/// A door of users: two users' sequences may begin alike. An attempt
/// started on the first user's (the first in order with that first step)
/// follows the other's when its next step is theirs, with few variants
/// (a scan) and with many (the prefix index).
#[test]
fn an_attempt_follows_the_user_whose_sequence_it_knocks() {
    let seq = |s: &str| parse_sequence(s).unwrap();
    for filler in [0, 20] {
        let config = Config {
            options: Options::default(),
            doors: vec![Door::new("d0", seq("7000"))],
        };
        let mut engine = Engine::new(&config, LocalAddrs::Any);
        let user = |label: u64, steps: &str, name: &str| Variant {
            label,
            sequence: seq(steps),
            used: false,
            user: Some(Arc::from(name)),
        };
        let mut variants = vec![
            user(1, "7000,7001,7002", "alice"),
            user(1, "7000,7005,7006", "bob"),
        ];
        for i in 0..filler {
            variants.push(user(1, &format!("{},9000,9001", 8000 + i), "x"));
        }
        engine.set_variants(DoorId(0), variants);
        let src = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
        let mut proposed = Vec::new();
        for (ms, port) in [(1, 7000), (2, 7005), (3, 7006)] {
            engine.handle_knock(&Knock {
                at: Timestamp::from_nanos(ms * 1_000_000),
                src,
                dst: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
                proto: Proto::Tcp,
                dst_port: port,
                tcp_flags: TcpFlags::SYN,
            });
            while let Some(a) = engine.poll_accepting() {
                if let Action::Propose(o) = a {
                    proposed.push(engine.user_of(&o));
                }
            }
        }
        assert_eq!(proposed, vec![Some(Arc::from("bob"))], "{filler} others");
    }
}
