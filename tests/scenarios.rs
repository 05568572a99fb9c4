//! Engine scenarios in virtual time: one readable file per behaviour in
//! `tests/scenarios/`, one test per file.
//!
//! File format (`#` starts a comment line):
//!
//! ```text
//! config:
//! [door]
//! sequence = 7000,8000
//! onetime:                      (optional: lines of a one-time file;
//! 7000,8000                      %ONETIME% in the config names it)
//! events:
//! local 192.0.2.1 2001:db8::1   (addresses that are ours; default: any)
//! 0.000 203.0.113.5 tcp 7000 S  (a knock: time src proto port [flags] [-> dst])
//! > Stage line etc.             (every action the input caused, in order)
//! timeout 30.000                (handle_timeout at that time)
//! advance                       (handle_timeout at poll_timeout(): jump)
//! next 5.000 | next none        (assert poll_timeout)
//! sequence DOOR 1111,2222|none  (hand a one-time door its next sequence)
//! close-all 40.000              (shutdown: run pending stops)
//! start-failed DOOR SRC         (the shell saw that door's start fail)
//! stops 1                       (assert number of pending stops)
//! ```
//!
//! Actions render as `log TEXT`, `run start|stop DOOR: CMD`, `used DOOR`;
//! journal notices are not rendered. After each input, the `>` lines that
//! follow must equal everything the engine emitted, exactly.

use std::collections::HashMap;
use std::net::IpAddr;

use knockd::core::config::onetime::first_live;
use knockd::core::config::{parse_sequence, parse_str, SequenceSource};
use knockd::core::engine::{Action, CommandKind, DoorId, Engine, LocalAddrs, OpenId};

mod fixture;
use fixture::{time, Fixture};

fn render(action: &Action, door_names: &[String]) -> Option<String> {
    Some(match action {
        Action::Log(e) => format!("log {e}"),
        Action::Run(c) => format!(
            "run {} {}: {}",
            match c.kind {
                CommandKind::Start => "start",
                CommandKind::Stop => "stop",
            },
            c.name,
            c.command
        ),
        Action::OneTimeUsed { door } => format!("used {}", door_names[door.0 as usize]),
        Action::StopScheduled(_) | Action::Propose(_) => return None,
    })
}

/// A knock without `-> dst` goes to our first address of its family.
fn default_dst(local: &[IpAddr], src: IpAddr) -> IpAddr {
    local
        .iter()
        .find(|a| a.is_ipv6() == src.is_ipv6())
        .copied()
        .unwrap_or_else(|| {
            if src.is_ipv6() {
                "2001:db8::1".parse().unwrap()
            } else {
                "192.0.2.1".parse().unwrap()
            }
        })
}

struct Run {
    engine: Engine,
    local: Vec<IpAddr>,
    door_names: Vec<String>,
    /// The last start command run per (door name, source): what
    /// `start-failed` reports as failed.
    starts: HashMap<(String, IpAddr), (DoorId, OpenId)>,
    out: Vec<String>,
}

impl Run {
    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_accepting() {
            if let Action::Run(c) = &a {
                if let (CommandKind::Start, Some(door)) = (c.kind, c.door) {
                    self.starts
                        .insert((c.name.to_string(), c.src), (door, c.open));
                }
            }
            if let Some(line) = render(&a, &self.door_names) {
                self.out.push(line);
            }
        }
    }

    /// Applies one input line; returns false for a line that is not one.
    fn input(&mut self, line: &str) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words[0] {
            "local" => {
                self.local = words[1..].iter().map(|w| w.parse().unwrap()).collect();
                self.engine
                    .set_local_addrs(LocalAddrs::List(self.local.clone()));
            }
            "timeout" => self.engine.handle_timeout(time(words[1])),
            "advance" => {
                let at = self.engine.poll_timeout().expect("advance with no timer");
                self.engine.handle_timeout(at);
            }
            "close-all" => self.engine.close_all(time(words[1])),
            "start-failed" => {
                let src: IpAddr = words[2].parse().unwrap();
                let (door, open) = self.starts[&(words[1].to_string(), src)];
                self.engine.start_failed(door, src, open);
            }
            "next" => {
                let got = self.engine.poll_timeout().map(|t| t.to_string());
                let want = (words[1] != "none").then(|| time(words[1]).to_string());
                assert_eq!(got, want, "poll_timeout");
            }
            "stops" => {
                let n: usize = words[1].parse().unwrap();
                assert_eq!(self.engine.pending_stop_count(), n, "pending stops");
            }
            "sequence" => {
                let d = self
                    .door_names
                    .iter()
                    .position(|n| n == words[1])
                    .expect("unknown door");
                let seq = (words[2] != "none").then(|| parse_sequence(words[2]).unwrap());
                self.engine.set_sequence(DoorId(d as u16), seq);
            }
            _ => {
                let local = self.local.clone();
                let k = fixture::knock(&words, |src| default_dst(&local, src));
                self.engine.handle_knock(&k);
            }
        }
    }
}

fn run_scenario(name: &str) {
    let f = Fixture::read("scenarios", name);
    let config_text = f.configs[""].replace("%ONETIME%", "/virtual/otp");
    let (mut config, _) = parse_str(&config_text, &f.path)
        .unwrap_or_else(|d| panic!("{name}: config: {:?}", d.errors));
    // The shell's resolve step, against the in-memory file.
    for door in &mut config.doors {
        if let SequenceSource::OneTime { path, current, .. } = &mut door.sequence {
            *current = first_live(f.onetime.as_bytes(), path, |_| false, &mut Vec::new());
        }
    }
    let mut run = Run {
        engine: Engine::new(&config, LocalAddrs::Any),
        local: Vec::new(),
        door_names: config.doors.iter().map(|d| d.name.clone()).collect(),
        starts: HashMap::new(),
        out: Vec::new(),
    };
    f.check(|line| {
        let input = line.split(" #").next().unwrap_or(line).trim();
        run.out.clear();
        run.input(input);
        run.drain();
        std::mem::take(&mut run.out)
    });
}

fixture_tests!(
    "scenarios", run_scenario:
    basic_open,
    ipv6_commands,
    two_sources_interleaved,
    doors_sharing_prefix,
    open_close_reversed,
    single_port_door,
    repeated_ports,
    tcp_flags_syn_not_ack,
    break_and_restart,
    retransmit_ignored,
    timeout_at_deadline,
    timeout_fires_on_time,
    subsecond_precision,
    stop_command,
    reopen_extend,
    reopen_after_failed_start,
    reopen_stack,
    target_door,
    destination_matching,
    udp_mixed,
    doors_independent,
    one_time_sequences,
    close_all_on_shutdown,
    time_never_goes_back,
);
