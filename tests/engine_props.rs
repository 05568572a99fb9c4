//! Properties of the engine over generated doors and traffic.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use knockd::core::config::{Config, Door, Options, Sequence, Step};
use knockd::core::engine::{Action, CommandKind, Engine, Event, LocalAddrs};
use knockd::core::knock::{Knock, Proto, TcpFlags, Timestamp};
use proptest::prelude::*;

const LEGIT: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1));
const DST: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));

fn step() -> impl Strategy<Value = Step> {
    // A small port range makes repeated ports and shared prefixes common.
    (
        7000u16..7006,
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)],
    )
        .prop_map(|(port, proto)| Step { port, proto })
}

fn sequence() -> impl Strategy<Value = Vec<Step>> {
    prop::collection::vec(step(), 1..6)
}

fn config(seqs: &[Vec<Step>], max_attempts: usize) -> Config {
    Config {
        options: Options {
            max_attempts,
            ..Options::default()
        },
        doors: seqs
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut d = Door::new(format!("d{i}"), Sequence::new(s.clone()).unwrap());
                d.start_command = Some("open %IP%".into());
                d
            })
            .collect(),
    }
}

fn knock(ms: u64, src: IpAddr, s: Step) -> Knock {
    Knock {
        at: Timestamp::from_nanos(ms * 1_000_000),
        src,
        dst: DST,
        proto: s.proto,
        dst_port: s.port,
        tcp_flags: TcpFlags::SYN,
    }
}

fn opened(engine: &mut Engine, who: IpAddr, door: &str) -> bool {
    let mut found = false;
    while let Some(a) = engine.poll_accepting() {
        if let Action::Log(Event::OpenSesame { src, door: d }) = a {
            found |= src == who && &*d == door;
        }
    }
    found
}

/// Noise: knocks from sources other than the legitimate one.
fn noise() -> impl Strategy<Value = Vec<(u8, Step)>> {
    prop::collection::vec((1u8..40, step()), 0..60)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    /// A legitimate sequence from one source always opens, whatever other
    /// sources send in between.
    #[test]
    fn legit_sequence_opens_despite_noise(seq in sequence(), noise in noise(), seed in any::<u64>()) {
        let mut engine = Engine::new(&config(std::slice::from_ref(&seq), 1 << 16), LocalAddrs::Any);
        let mut ms = 0;
        let mut noise = noise.into_iter();
        let mut got = false;
        for (i, s) in seq.iter().enumerate() {
            // Spread the noise between the steps.
            let burst = ((seed >> (i % 60)) & 7) as usize;
            for (host, n) in noise.by_ref().take(burst) {
                ms += 1;
                engine.handle_knock(&knock(ms, IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)), n));
                got |= opened(&mut engine, LEGIT, "d0");
            }
            ms += 1;
            engine.handle_knock(&knock(ms, LEGIT, *s));
            got |= opened(&mut engine, LEGIT, "d0");
        }
        prop_assert!(got, "legitimate knock did not open");
    }

    /// A packet handled twice in a row (a retransmission, or the same packet
    /// read from two captures) never changes the outcome of a sequence of
    /// two steps or more: the knock opens, exactly once. (A one-step door
    /// opens on every copy, as on every retransmission, knockd 0.8's too;
    /// `Reopen` says what a second opening does. A copy arriving after
    /// later packets would be another matter: a first port seen again
    /// restarts the attempt. Moving a capture to another ring never
    /// produces copies: see daemon::fanout.)
    #[test]
    fn a_packet_seen_twice_in_a_row_opens_exactly_once(
        seq in prop::collection::vec(step(), 2..6),
        which in any::<prop::sample::Index>(),
    ) {
        let i = which.index(seq.len());
        let mut sent = seq.clone();
        sent.insert(i, seq[i]);
        let mut engine = Engine::new(&config(&[seq], 1 << 16), LocalAddrs::Any);
        let mut opens = 0;
        for (ms, s) in sent.iter().enumerate() {
            engine.handle_knock(&knock(ms as u64, LEGIT, *s));
            opens += usize::from(opened(&mut engine, LEGIT, "d0"));
        }
        prop_assert_eq!(opens, 1, "sent {:?}", sent);
    }

    /// The same sequence with any one step changed never opens.
    #[test]
    fn changed_step_never_opens(seq in sequence(), which in any::<prop::sample::Index>(), other in step()) {
        let i = which.index(seq.len());
        prop_assume!(other != seq[i]);
        let mut sent = seq.clone();
        sent[i] = other;
        let mut engine = Engine::new(&config(&[seq], 1 << 16), LocalAddrs::Any);
        let mut got = false;
        for (ms, s) in sent.iter().enumerate() {
            engine.handle_knock(&knock(ms as u64, LEGIT, *s));
            got |= opened(&mut engine, LEGIT, "d0");
        }
        prop_assert!(!got, "a wrong sequence opened");
    }

    /// The attempt table never holds more than MaxAttempts, for any doors
    /// and any traffic.
    #[test]
    fn attempts_never_exceed_the_cap(
        seqs in prop::collection::vec(sequence(), 1..4),
        cap in 1usize..32,
        traffic in prop::collection::vec((any::<u8>(), step(), 0u64..3000), 0..400),
    ) {
        let mut engine = Engine::new(&config(&seqs, cap), LocalAddrs::Any);
        let mut ms = 0;
        for (host, s, gap) in traffic {
            ms += gap;
            engine.handle_knock(&knock(ms, IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)), s));
            while engine.poll_accepting().is_some() {}
            prop_assert!(engine.tracked_attempts() <= cap);
        }
    }

    /// A knocker who has matched two steps survives any flood of spoofed
    /// sources hitting the first port of a full table, and gets in.
    #[test]
    fn progress_survives_a_first_port_flood(cap in 1usize..16, flood in 1usize..500) {
        let seq: Vec<Step> = [7000, 8000, 9000]
            .iter()
            .map(|&port| Step { port, proto: Proto::Tcp })
            .collect();
        let mut engine = Engine::new(&config(std::slice::from_ref(&seq), cap), LocalAddrs::Any);
        engine.handle_knock(&knock(0, LEGIT, seq[0]));
        engine.handle_knock(&knock(1, LEGIT, seq[1]));
        for n in 0..flood {
            let src = IpAddr::V4(Ipv4Addr::from(0xC633_6400u32 + n as u32));
            engine.handle_knock(&knock(2, src, seq[0]));
        }
        while engine.poll_accepting().is_some() {}
        engine.handle_knock(&knock(3, LEGIT, seq[2]));
        prop_assert!(opened(&mut engine, LEGIT, "d0"));
    }
}

/// Evictions are reported, at most once per interval, with their count.
#[test]
fn evictions_are_reported_rate_limited() {
    let seq = vec![
        Step {
            port: 7000,
            proto: Proto::Tcp,
        },
        Step {
            port: 8000,
            proto: Proto::Tcp,
        },
    ];
    let mut engine = Engine::new(&config(std::slice::from_ref(&seq), 2), LocalAddrs::Any);
    let mut reports = Vec::new();
    fn drain(engine: &mut Engine, reports: &mut Vec<String>) {
        while let Some(a) = engine.poll_accepting() {
            if let Action::Log(e @ Event::Evicted { .. }) = a {
                reports.push(e.to_string());
            }
        }
    }
    for n in 0..5u32 {
        let src = IpAddr::V4(Ipv4Addr::from(0xC633_6400 + n));
        engine.handle_knock(&knock(u64::from(n), src, seq[0]));
        if let Some(at) = engine.poll_timeout() {
            engine.handle_timeout(at.min(Timestamp::from_nanos(u64::from(n) * 1_000_000)));
        }
        drain(&mut engine, &mut reports);
    }
    // Third knock evicts first: reported at once; the next two are held back.
    assert_eq!(
        reports,
        vec!["attempt table full (2 attempts): 1 knock attempt(s) dropped"]
    );
    // The held-back report comes 10 s after the first, by timer.
    assert_eq!(
        engine.poll_timeout(),
        Some(Timestamp::from_nanos(10_002_000_000))
    );
    let at = engine.poll_timeout().unwrap();
    engine.handle_timeout(at);
    drain(&mut engine, &mut reports);
    assert_eq!(
        reports[1],
        "attempt table full (2 attempts): 2 knock attempt(s) dropped"
    );
}

/// A stop is announced (for the journal) exactly when it is scheduled or
/// moved; it leaves the schedule by running, announced by its Run.
#[test]
fn stop_scheduled_is_emitted_when_the_journal_must_change() {
    let mut door = Door::new(
        "d",
        Sequence::new(vec![Step {
            port: 7000,
            proto: Proto::Tcp,
        }])
        .unwrap(),
    );
    door.start_command = Some("open %IP%".into());
    door.stop_command = Some("close %IP%".into());
    let config = Config {
        options: Options::default(),
        doors: vec![door],
    };
    let mut engine = Engine::new(&config, LocalAddrs::Any);
    let count = |engine: &mut Engine| {
        let (mut scheduled, mut stops_run) = (0, 0);
        while let Some(a) = engine.poll_accepting() {
            match a {
                Action::StopScheduled(_) => scheduled += 1,
                Action::Run(c) if c.kind == CommandKind::Stop => stops_run += 1,
                _ => {}
            }
        }
        (scheduled, stops_run)
    };
    engine.handle_knock(&knock(
        0,
        LEGIT,
        Step {
            port: 7000,
            proto: Proto::Tcp,
        },
    ));
    assert_eq!(count(&mut engine), (1, 0));
    assert_eq!(engine.pending_stops().count(), 1);
    engine.handle_timeout(Timestamp::from_nanos(5_000_000_000));
    assert_eq!(count(&mut engine), (0, 0), "nothing due, nothing changed");
    engine.handle_timeout(Timestamp::from_nanos(10_000_000_000));
    assert_eq!(count(&mut engine), (0, 1));
    assert_eq!(engine.pending_stops().count(), 0);
}

/// Doors for the batch property: short timeouts so attempts time out
/// mid-batch, stop commands so stops fire, and a `Target` on one door so
/// destination checks differ between doors.
fn batch_config(seqs: &[Vec<Step>], max_attempts: usize, timeouts: &[u64]) -> Config {
    let mut config = config(seqs, max_attempts);
    for (i, d) in config.doors.iter_mut().enumerate() {
        d.seq_timeout = Duration::from_millis(timeouts[i % timeouts.len()]);
        d.stop_command = Some("close %IP%".into());
        d.cmd_timeout = Duration::from_millis(timeouts[(i + 1) % timeouts.len()]);
        if i == 2 {
            d.target = Some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)));
        }
    }
    config
}

/// Random traffic: sources from a small pool (v4, and v6 including the
/// v4-mapped twin of a v4 source), ports near the doors', any flags, two
/// destinations, and gaps that are often zero (equal timestamps) and
/// sometimes backwards.
fn traffic() -> impl Strategy<Value = Vec<Knock>> {
    let knock = (0u8..24, step(), 0u8..64, any::<bool>(), 0i64..400);
    prop::collection::vec(knock, 0..300).prop_map(|raw| {
        let mut ms: i64 = 0;
        raw.into_iter()
            .map(|(host, s, flags, other_dst, gap)| {
                // Mostly forward, sometimes a little back: the engine
                // clamps time, and both paths must clamp alike.
                ms = (ms + gap - 50).max(0);
                let src = match host % 4 {
                    0 | 1 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, host)),
                    2 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, u16::from(host))),
                    _ => IpAddr::V6(Ipv4Addr::new(198, 51, 100, host - 3).to_ipv6_mapped()),
                };
                Knock {
                    at: Timestamp::from_nanos(ms as u64 * 1_000_000),
                    src,
                    dst: if other_dst {
                        IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2))
                    } else {
                        DST
                    },
                    proto: s.proto,
                    dst_port: s.port,
                    tcp_flags: TcpFlags(flags),
                }
            })
            .collect()
    })
}

fn drain_all(engine: &mut Engine, out: &mut Vec<Action>) {
    while let Some(a) = engine.poll_accepting() {
        out.push(a);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1000))]

    /// `handle_knocks` is `handle_knock` in a loop: the same actions in the
    /// same order, the same state after, for any doors, table size, traffic
    /// and batch boundaries (the look-ahead prefetching only hints).
    #[test]
    fn batches_act_exactly_like_single_knocks(
        seqs in prop::collection::vec(sequence(), 1..4),
        cap in 1usize..24,
        timeouts in prop::collection::vec(1u64..3000, 1..4),
        knocks in traffic(),
        cuts in prop::collection::vec(0usize..80, 0..8),
    ) {
        let config = batch_config(&seqs, cap, &timeouts);
        let mut one = Engine::new(&config, LocalAddrs::Any);
        let mut batched = Engine::new(&config, LocalAddrs::Any);
        let (mut want, mut got) = (Vec::new(), Vec::new());
        for k in &knocks {
            one.handle_knock(k);
            drain_all(&mut one, &mut want);
        }
        let mut rest = knocks.as_slice();
        for cut in cuts.into_iter().chain([usize::MAX]) {
            let (mut batch, tail) = rest.split_at(cut.min(rest.len()));
            // Each proposal is decided before the next knock is seen.
            while !batch.is_empty() {
                let handled = batched.handle_knocks(batch);
                prop_assert!(handled >= 1);
                batch = &batch[handled..];
                drain_all(&mut batched, &mut got);
            }
            rest = tail;
        }
        prop_assert_eq!(&got, &want);
        prop_assert_eq!(batched.stats(), one.stats());
        prop_assert_eq!(batched.tracked_attempts(), one.tracked_attempts());
        prop_assert_eq!(batched.poll_timeout(), one.poll_timeout());
        // And what is left fires alike.
        let end = Timestamp::from_nanos(u64::MAX / 2);
        one.handle_timeout(end);
        batched.handle_timeout(end);
        drain_all(&mut one, &mut want);
        drain_all(&mut batched, &mut got);
        prop_assert_eq!(got, want);
    }
}
