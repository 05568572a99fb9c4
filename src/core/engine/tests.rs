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
