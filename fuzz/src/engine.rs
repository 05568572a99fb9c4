//! The `engine` target: a generated config and a stream of operations
//! (knocks, batches of knocks, timeouts, reloads, failed starts, one-time
//! sequence changes, address changes, cancelled openings, restored and
//! rescheduled stops, shutdowns) through `Engine`, with every action
//! checked as it is drained.
//!
//! Two engines run side by side: one gets batches through `handle_knocks`,
//! the other the same knocks one at a time through `handle_knock`. Their
//! actions must be identical (the batch path only prefetches).

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::time::Duration;

use arbitrary::{Arbitrary, Unstructured};
use knockd::core::config::{
    Config, Door, FlagRule, OneTimeLine, Options, Reopen, SecretSource, Sequence, SequenceSource,
    Step,
};
use knockd::core::engine::{
    Action, CommandKind, DoorId, Engine, Event, LocalAddrs, OpenId, PendingStop, Variant,
    MAX_VARIANTS,
};
use knockd::core::knock::{Knock, Proto, TcpFlags, Timestamp};
use knockd::core::rotate::{Rotation, Secret};

const MS: u64 = 1_000_000;

/// Knock sources: IPv4, IPv6, and an IPv4-mapped IPv6 address that must
/// stay a different source from its IPv4 twin.
fn source(i: u8) -> IpAddr {
    match i % 8 {
        0 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 2)),
        2 => IpAddr::V4(Ipv4Addr::new(203, 0, 113, 3)),
        3 => IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9)),
        4 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1)),
        5 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 2)),
        6 => IpAddr::V6(Ipv4Addr::new(203, 0, 113, 1).to_ipv6_mapped()),
        _ => IpAddr::V6(Ipv6Addr::new(0xfe80, 0, 0, 0, 0, 0, 0, 9)),
    }
}

/// Destinations (and door targets): two of each family.
fn dest(i: u8) -> IpAddr {
    match i % 4 {
        0 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
        1 => IpAddr::V4(Ipv4Addr::new(192, 0, 2, 2)),
        2 => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 1)),
        _ => IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 1, 0, 0, 0, 0, 2)),
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
struct GenStep {
    port: u8,
    udp: bool,
}

impl GenStep {
    fn step(self) -> Step {
        Step {
            port: 7000 + u16::from(self.port % 6),
            proto: if self.udp { Proto::Udp } else { Proto::Tcp },
        }
    }
}

fn sequence(steps: &[GenStep]) -> Sequence {
    let mut s: Vec<Step> = steps.iter().take(4).map(|g| g.step()).collect();
    if s.is_empty() {
        s.push(Step {
            port: 7000,
            proto: Proto::Tcp,
        });
    }
    Sequence::new(s).unwrap()
}

#[derive(Debug, Arbitrary)]
enum Kind {
    Fixed,
    /// A one-time door, resolved (its sequence live) or exhausted.
    OneTime {
        exhausted: bool,
    },
    /// A rotating door: no sequence until `SetVariants`.
    Rotating,
}

#[derive(Debug, Arbitrary)]
struct GenDoor {
    /// Four names for up to four doors: names repeat sometimes.
    name: u8,
    steps: Vec<GenStep>,
    kind: Kind,
    seq_timeout_ms: u16,
    cmd_timeout_ms: u16,
    /// Bit 0: start, 1: stop, 2: start_6 set, 3: start_6 empty,
    /// 4: stop_6 set, 5: stop_6 empty, 6: Reopen = stack.
    commands: u8,
    flags_set: u8,
    flags_clear: u8,
    target: Option<u8>,
    /// Bit 0: Allow 203.0.113.0/31, 1: Allow 2001:db8::/127, 2: Deny
    /// 203.0.113.2/32, 3: Deny ::/0 (the sources of `source`).
    acl: u8,
    cooldown_ms: Option<u16>,
}

#[derive(Debug, Arbitrary)]
struct GenConfig {
    doors: Vec<GenDoor>,
    max_attempts: u8,
}

impl GenConfig {
    fn build(&self) -> Config {
        let mut doors = Vec::new();
        for g in self.doors.iter().take(4) {
            let seq = sequence(&g.steps);
            let mut d = Door::new(format!("d{}", g.name % 4), seq.clone());
            match g.kind {
                Kind::Fixed => {}
                Kind::OneTime { exhausted } => {
                    d.sequence = SequenceSource::OneTime {
                        path: PathBuf::from("/etc/knockd/otp"),
                        directive_line: 3,
                        directive_key: "One_Time_Sequences".into(),
                        current: (!exhausted).then_some(OneTimeLine {
                            sequence: seq,
                            line: 1,
                            offset: 0,
                        }),
                    };
                }
                Kind::Rotating => {
                    d.sequence = SequenceSource::Rotating {
                        secret: SecretSource::Inline(Secret::new(vec![7; 16]).unwrap()),
                        rotation: Rotation {
                            length: seq.len() as u8,
                            first: 7000,
                            last: 7005,
                            protocols: vec![Proto::Tcp],
                            period: 30,
                            skew: 1,
                        },
                    };
                }
            }
            d.seq_timeout = Duration::from_millis(u64::from(g.seq_timeout_ms));
            d.cmd_timeout = Duration::from_millis(u64::from(g.cmd_timeout_ms));
            let c = g.commands;
            let cmd = |what: &str| Some(format!("{what} {} %IP%", d.name));
            if c & 1 != 0 {
                d.start_command = cmd("open");
            }
            if c & 2 != 0 {
                d.stop_command = cmd("close");
            }
            if c & 4 != 0 {
                d.start_command_6 = cmd("open6");
            } else if c & 8 != 0 {
                d.start_command_6 = Some(String::new());
            }
            if c & 16 != 0 {
                d.stop_command_6 = cmd("close6");
            } else if c & 32 != 0 {
                d.stop_command_6 = Some(String::new());
            }
            if c & 64 != 0 {
                d.reopen = Reopen::Stack;
            }
            let set = g.flags_set & 0x3f;
            d.tcp_flags = FlagRule {
                set: TcpFlags(set),
                clear: TcpFlags(g.flags_clear & 0x3f & !set),
            };
            d.target = g.target.map(dest);
            let ranges = [
                (1, true, "203.0.113.0/31"),
                (2, true, "2001:db8::/127"),
                (4, false, "203.0.113.2/32"),
                (8, false, "::/0"),
            ];
            for (bit, allow, text) in ranges {
                if g.acl & bit != 0 {
                    let Ok(cidr) = text.parse() else { continue };
                    if allow {
                        d.allow.push(cidr);
                    } else {
                        d.deny.push(cidr);
                    }
                }
            }
            d.cooldown = g.cooldown_ms.map(|ms| Duration::from_millis(u64::from(ms)));
            doors.push(d);
        }
        if doors.is_empty() {
            let mut d = Door::new("d0", sequence(&[]));
            d.start_command = Some("open %IP%".into());
            d.stop_command = Some("close %IP%".into());
            doors.push(d);
        }
        Config {
            options: Options {
                max_attempts: usize::from(self.max_attempts % 64) + 1,
                ..Options::default()
            },
            doors,
        }
    }
}

#[derive(Debug, Clone, Copy, Arbitrary)]
struct GenKnock {
    /// Milliseconds after the latest time; with `stale`, before it.
    dt_ms: u16,
    stale: bool,
    src: u8,
    dst: u8,
    step: GenStep,
    flags: u8,
}

#[derive(Debug, Arbitrary)]
enum Op {
    Knock(GenKnock),
    Knocks(Vec<GenKnock>),
    Timeout {
        dt_ms: u32,
    },
    /// Time jumps to near the end of `Timestamp`, where deadlines saturate.
    Jump {
        before_end_s: u8,
    },
    CloseAll {
        dt_ms: u16,
    },
    Reload(GenConfig),
    /// The start command of one of the openings so far failed.
    StartFailed(u8),
    /// One of the openings so far is cancelled before its start ran.
    CancelOpen(u8),
    /// A stop that ran (the system refused to start it) is scheduled again.
    Reschedule {
        which: u8,
        dt_ms: u16,
    },
    /// A stop journaled by an earlier run is restored.
    Restore {
        name: u8,
        src: u8,
        dt_ms: u16,
    },
    SetSequence {
        door: u8,
        steps: Option<Vec<GenStep>>,
    },
    /// The accepted sequences of a door (a rotating door's periods).
    SetVariants {
        door: u8,
        variants: Vec<(u8, Vec<GenStep>, bool)>,
    },
    SetLocal(Option<u8>),
}

#[derive(Debug, Arbitrary)]
struct Input {
    config: GenConfig,
    local: Option<u8>,
    ops: Vec<Op>,
}

fn local_addrs(mask: Option<u8>) -> LocalAddrs {
    match mask {
        None => LocalAddrs::Any,
        Some(m) => LocalAddrs::List((0..4).filter(|i| m & (1 << i) != 0).map(dest).collect()),
    }
}

/// An opening whose stop command is still expected.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Open {
    name: String,
    src: IpAddr,
}

struct Harness {
    /// Gets knock batches through `handle_knocks`.
    batch: Engine,
    /// Gets the same knocks one at a time.
    single: Engine,
    /// Actions drained (proposals committed) while an op fed knocks: each
    /// proposal is decided before the next knock, as the service does.
    batch_out: Vec<Action>,
    single_out: Vec<Action>,
    config: Config,
    /// Latest time fed in.
    now: Timestamp,
    /// Openings whose stop command has not run yet.
    expected_stops: BTreeMap<OpenId, Open>,
    /// Every start run so far: door (remapped across reloads), source.
    starts: Vec<(Option<DoorId>, IpAddr, OpenId)>,
    /// Stops that ran, for `Reschedule` (doors remapped across reloads).
    ran: Vec<PendingStop>,
}

impl Harness {
    fn new(config: Config, local: LocalAddrs) -> Self {
        Harness {
            batch: Engine::new(&config, local.clone()),
            single: Engine::new(&config, local),
            batch_out: Vec::new(),
            single_out: Vec::new(),
            config,
            now: Timestamp::ZERO,
            expected_stops: BTreeMap::new(),
            starts: Vec::new(),
            ran: Vec::new(),
        }
    }

    fn knock(&mut self, g: &GenKnock) -> Knock {
        let dt = u64::from(g.dt_ms) * MS;
        let at = if g.stale {
            Timestamp::from_nanos(self.now.as_nanos().saturating_sub(dt))
        } else {
            Timestamp::from_nanos(self.now.as_nanos().saturating_add(dt))
        };
        self.now = self.now.max(at);
        let step = g.step.step();
        Knock {
            at,
            src: source(g.src),
            dst: dest(g.dst),
            proto: step.proto,
            dst_port: step.port,
            tcp_flags: if step.proto == Proto::Tcp {
                TcpFlags(g.flags & 0x3f)
            } else {
                TcpFlags::default()
            },
        }
    }

    fn max_attempts(&self) -> usize {
        self.config.options.max_attempts
    }

    fn run(&mut self, op: &Op) {
        // Stops pending before the op, with their due times: a stop that
        // runs during the op (other than at shutdown) must have been due.
        let due: HashMap<OpenId, Timestamp> = self
            .batch
            .pending_stops()
            .map(|s| (s.open, s.due))
            .collect();
        let mut knocks = Vec::new();
        let mut closing = false;
        let mut timeout = false;
        match op {
            Op::Knock(g) => {
                let k = self.knock(g);
                self.batch.handle_knock(&k);
                self.single.handle_knock(&k);
                knocks.push(k);
                self.commit_proposals();
            }
            Op::Knocks(gs) => {
                knocks = gs.iter().take(64).map(|g| self.knock(g)).collect();
                let mut rest = knocks.as_slice();
                while !rest.is_empty() {
                    let handled = self.batch.handle_knocks(rest);
                    assert!(handled >= 1, "a batch handled no knock");
                    rest = &rest[handled..];
                    while let Some(a) = self.batch.poll_accepting() {
                        self.batch_out.push(a);
                    }
                }
                for k in &knocks {
                    self.single.handle_knock(k);
                    while let Some(a) = self.single.poll_accepting() {
                        self.single_out.push(a);
                    }
                }
            }
            Op::Timeout { dt_ms } => {
                self.now = self.now + Duration::from_millis(u64::from(*dt_ms));
                self.batch.handle_timeout(self.now);
                self.single.handle_timeout(self.now);
                timeout = true;
            }
            Op::Jump { before_end_s } => {
                let end = u64::MAX - u64::from(*before_end_s) * 1_000 * MS;
                self.now = self.now.max(Timestamp::from_nanos(end));
                self.batch.handle_timeout(self.now);
                self.single.handle_timeout(self.now);
                timeout = true;
            }
            Op::CloseAll { dt_ms } => {
                self.now = self.now + Duration::from_millis(u64::from(*dt_ms));
                self.batch.close_all(self.now);
                self.single.close_all(self.now);
                closing = true;
            }
            Op::Reload(g) => {
                let config = g.build();
                let map = self.batch.reload(&config);
                assert_eq!(self.single.reload(&config), map);
                assert_eq!(map.len(), self.config.doors.len());
                for (old, new) in map.iter().enumerate() {
                    if let Some(new) = new {
                        assert_eq!(
                            self.config.doors[old].name, config.doors[new.0 as usize].name,
                            "reload maps a door to one of another name"
                        );
                    }
                }
                let remap =
                    |d: Option<DoorId>| d.and_then(|d| map.get(d.0 as usize).copied().flatten());
                for (door, _, _) in &mut self.starts {
                    *door = remap(*door);
                }
                for stop in &mut self.ran {
                    stop.door = remap(stop.door);
                }
                self.config = config;
            }
            Op::StartFailed(i) => {
                if !self.starts.is_empty() {
                    let (door, src, open) = self.starts[usize::from(*i) % self.starts.len()];
                    if let Some(door) = door {
                        self.batch.start_failed(door, src, open);
                        self.single.start_failed(door, src, open);
                    }
                }
            }
            Op::CancelOpen(i) => {
                if !self.starts.is_empty() {
                    let (_, _, open) = self.starts[usize::from(*i) % self.starts.len()];
                    let stop = self.batch.cancel_open(open);
                    assert_eq!(self.single.cancel_open(open), stop);
                    match (stop, self.expected_stops.remove(&open)) {
                        (Some(s), Some(o)) => {
                            assert_eq!(s.open, open);
                            assert_eq!((&*s.name, s.src), (o.name.as_str(), o.src));
                        }
                        (None, None) => {}
                        (s, o) => panic!("cancel_open({open:?}) gave {s:?}, pending {o:?}"),
                    }
                }
            }
            Op::Reschedule { which, dt_ms } => {
                if !self.ran.is_empty() {
                    let mut stop = self.ran.swap_remove(usize::from(*which) % self.ran.len());
                    stop.due = self.now + Duration::from_millis(u64::from(*dt_ms));
                    self.expected_stops.insert(
                        stop.open,
                        Open {
                            name: stop.name.to_string(),
                            src: stop.src,
                        },
                    );
                    self.batch.reschedule_stop(stop.clone());
                    self.single.reschedule_stop(stop);
                }
            }
            Op::Restore { name, src, dt_ms } => {
                let name = format!("d{}", name % 5);
                let src = source(*src);
                let due = self.now + Duration::from_millis(u64::from(*dt_ms));
                let command = format!("close {name} {src}");
                let open = self
                    .batch
                    .restore_stop(name.as_str().into(), src, command.clone(), due);
                assert_eq!(
                    self.single
                        .restore_stop(name.as_str().into(), src, command, due),
                    open
                );
                let prev = self.expected_stops.insert(open, Open { name, src });
                assert!(
                    prev.is_none(),
                    "restored stop got opening id {open:?} in use"
                );
                self.starts.push((None, src, open));
            }
            Op::SetSequence { door, steps } => {
                let door = DoorId(u16::from(*door) % self.config.doors.len() as u16);
                let seq = steps.as_deref().map(sequence);
                self.batch.set_sequence(door, seq.clone());
                self.single.set_sequence(door, seq);
            }
            Op::SetVariants { door, variants } => {
                let door = DoorId(u16::from(*door) % self.config.doors.len() as u16);
                let variants: Vec<Variant> = variants
                    .iter()
                    .map(|(label, steps, used)| Variant {
                        label: u64::from(*label % 4),
                        sequence: sequence(steps),
                        used: *used,
                        user: None,
                    })
                    .collect();
                self.batch.set_variants(door, variants.clone());
                self.single.set_variants(door, variants.clone());
                let kept = &variants[..variants.len().min(MAX_VARIANTS)];
                assert_eq!(self.batch.variants(door), kept, "variants not as set");
            }
            Op::SetLocal(mask) => {
                self.batch.set_local_addrs(local_addrs(*mask));
                self.single.set_local_addrs(local_addrs(*mask));
            }
        }
        self.drain(&knocks, &due, closing);
        self.check_state(timeout, closing);
    }

    /// Drains both engines into their buffers, committing proposals.
    fn commit_proposals(&mut self) {
        while let Some(a) = self.batch.poll_accepting() {
            self.batch_out.push(a);
        }
        while let Some(a) = self.single.poll_accepting() {
            self.single_out.push(a);
        }
    }

    /// Drains both engines, which must agree, and checks every action.
    fn drain(&mut self, knocks: &[Knock], due: &HashMap<OpenId, Timestamp>, closing: bool) {
        let mut actions = std::mem::take(&mut self.batch_out);
        while let Some(a) = self.batch.poll_accepting() {
            actions.push(a);
        }
        let mut single = std::mem::take(&mut self.single_out);
        while let Some(a) = self.single.poll_accepting() {
            single.push(a);
        }
        assert_eq!(actions, single, "handle_knocks and handle_knock disagree");
        let live: Vec<Vec<Sequence>> = self
            .batch
            .doors()
            .map(|(_, _, vs)| vs.iter().map(|v| v.sequence.clone()).collect())
            .collect();
        let mut opened: Option<(DoorId, IpAddr)> = None;
        for a in actions {
            let previous = opened.take();
            match a {
                Action::Propose(o) => {
                    let (door, src) = (o.door, o.src);
                    assert!(
                        (door.0 as usize) < self.config.doors.len(),
                        "opened {door:?}"
                    );
                    opened = Some((door, src));
                }
                Action::Run(c) => match c.kind {
                    CommandKind::Start => {
                        let open = c.open;
                        let id = c.door.expect("a start without a door");
                        let door = &self.config.doors[id.0 as usize];
                        assert_eq!(*c.name, *door.name);
                        assert_eq!(
                            Some(c.command.as_str()),
                            door.start_command_for(c.src.is_ipv6())
                                .map(|s| s.replace("%IP%", &c.src.to_string()))
                                .as_deref()
                        );
                        assert!(
                            knocks.iter().any(|k| k.src == c.src),
                            "start for {} without a knock from it",
                            c.src
                        );
                        self.starts.push((Some(id), c.src, open));
                        if door.stop_command_for(c.src.is_ipv6()).is_some() {
                            let prev = self.expected_stops.insert(
                                open,
                                Open {
                                    name: c.name.to_string(),
                                    src: c.src,
                                },
                            );
                            assert!(prev.is_none(), "opening id {open:?} reused");
                        }
                    }
                    CommandKind::Stop => {
                        let open = c.open;
                        let Some(o) = self.expected_stops.remove(&open) else {
                            panic!(
                                "stop for {open:?} ({} {}) that is not pending",
                                c.name, c.src
                            );
                        };
                        assert_eq!(o.name, *c.name, "stop of another door name");
                        assert_eq!(o.src, c.src, "stop for another source");
                        // (A stop added during a batch may also run in it.)
                        if let (false, Some(at)) = (closing, due.get(&open)) {
                            assert!(*at <= self.now, "stop due {at} ran at {}", self.now);
                        }
                        if self.ran.len() < 16 {
                            self.ran.push(PendingStop {
                                door: c.door,
                                name: c.name.clone(),
                                src: c.src,
                                command: c.command.clone(),
                                due: self.now,
                                open,
                            });
                        }
                    }
                },
                Action::Log(Event::OpenSesame { src, door }) => {
                    // Announced by `Propose` of that door and source.
                    let (id, from) = previous.expect("OPEN SESAME without Propose before it");
                    assert_eq!(from, src, "Propose and OPEN SESAME of other sources");
                    assert_eq!(*self.config.doors[id.0 as usize].name, *door);
                    // Allow/Deny: a source the door does not admit never
                    // opens it.
                    let d = &self.config.doors[id.0 as usize];
                    assert!(
                        !d.deny.iter().any(|c| c.contains(src))
                            && (d.allow.is_empty() || d.allow.iter().any(|c| c.contains(src))),
                        "{door} opened for {src}, outside its Allow/Deny"
                    );
                    // Only a knock from `src` on the last step of one of
                    // the sequences of a door of that name opens it (a
                    // one-time door has none left once used).
                    let ok = knocks.iter().any(|k| {
                        k.src == src
                            && self.config.doors.iter().zip(&live).any(|(d, seqs)| {
                                *d.name == *door
                                    && (seqs.is_empty()
                                        || seqs.iter().any(|s| {
                                            let last = s.steps()[s.len() - 1];
                                            last.port == k.dst_port && last.proto == k.proto
                                        }))
                            })
                    });
                    assert!(ok, "{door} opened for {src} without its last step");
                }
                Action::Log(Event::Stage { stage, .. }) => {
                    // Sequences have 1 to 4 steps.
                    assert!((1..=4).contains(&stage), "stage {stage}");
                }
                Action::Log(Event::SequenceTimeout { stage, .. }) => {
                    // A completed sequence opens; it never times out.
                    assert!((1..4).contains(&stage), "timed out at stage {stage}");
                }
                Action::Log(Event::Evicted { count, cap }) => {
                    assert!(count >= 1);
                    assert_eq!(cap, self.max_attempts());
                }
                Action::OneTimeUsed { door } => {
                    let d = &self.config.doors[door.0 as usize];
                    assert!(
                        matches!(d.sequence, SequenceSource::OneTime { .. }),
                        "OneTimeUsed for fixed door {}",
                        d.name
                    );
                    assert!(
                        live[door.0 as usize].is_empty(),
                        "used one-time door still live"
                    );
                }
                Action::StopScheduled(stop) => {
                    // Scheduled for an opening in this op (its start came
                    // first) or extended: either way, one that is pending.
                    let o = self
                        .expected_stops
                        .get(&stop.open)
                        .unwrap_or_else(|| panic!("scheduled stop of unknown opening {stop:?}"));
                    assert_eq!((o.name.as_str(), o.src), (&*stop.name, stop.src));
                }
                Action::Log(_) => {}
                // Actions added since this harness was written.
                #[allow(unreachable_patterns)]
                _ => {}
            }
        }
    }

    fn check_state(&mut self, timeout: bool, closing: bool) {
        for e in [&self.batch, &self.single] {
            assert!(
                e.tracked_attempts() <= self.max_attempts(),
                "{} attempts tracked, MaxAttempts {}",
                e.tracked_attempts(),
                self.max_attempts()
            );
            assert_eq!(
                e.pending_stop_count(),
                self.expected_stops.len(),
                "pending stops {:?}, expected {:?}",
                e.pending_stops().collect::<Vec<_>>(),
                self.expected_stops
            );
            let mut per_door: HashMap<DoorId, usize> = HashMap::new();
            for s in e.pending_stops() {
                let o = self
                    .expected_stops
                    .get(&s.open)
                    .expect("unexpected pending stop");
                assert_eq!((o.name.as_str(), o.src), (&*s.name, s.src));
                if let Some(d) = s.door {
                    assert!(
                        (d.0 as usize) < self.config.doors.len(),
                        "stop of door {d:?}"
                    );
                    *per_door.entry(d).or_default() += 1;
                }
            }
            for d in 0..self.config.doors.len() {
                let d = DoorId(d as u16);
                assert_eq!(
                    e.pending_stops_of(d),
                    per_door.get(&d).copied().unwrap_or(0),
                    "pending_stops_of({d:?})"
                );
            }
            if timeout {
                if let Some(at) = e.poll_timeout() {
                    assert!(
                        at > self.now,
                        "due at {at}, after handle_timeout({})",
                        self.now
                    );
                }
            }
            if closing {
                assert_eq!(e.pending_stop_count(), 0, "stops left after close_all");
            }
        }
        assert_eq!(self.batch.poll_timeout(), self.single.poll_timeout());
        assert_eq!(self.batch.stats(), self.single.stats());
    }
}

pub fn check(data: &[u8]) {
    let u = Unstructured::new(data);
    let Ok(input) = Input::arbitrary_take_rest(u) else {
        return;
    };
    if crate::debug() {
        eprintln!("{input:#?}");
    }
    let mut h = Harness::new(input.config.build(), local_addrs(input.local));
    for op in input.ops.iter().take(256) {
        h.run(op);
    }
    h.run(&Op::CloseAll { dt_ms: 0 });
    // Far in the future too: nothing may be left for later.
    h.now = Timestamp::from_nanos(u64::MAX);
    h.batch.close_all(h.now);
    h.single.close_all(h.now);
    h.drain(&[], &HashMap::new(), true);
    h.check_state(false, true);
    assert!(
        h.expected_stops.is_empty(),
        "stops never ran: {:?}",
        h.expected_stops
    );
}
