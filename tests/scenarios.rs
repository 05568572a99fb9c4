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

use std::io::Write;
use std::net::IpAddr;
use std::path::Path;

use knockd::core::config::{parse_sequence, parse_str};
use knockd::core::engine::{Action, CommandKind, DoorId, Engine, LocalAddrs};
use knockd::core::knock::{Knock, Proto, TcpFlags, Timestamp};

fn time(s: &str) -> Timestamp {
    let secs: f64 = s.parse().unwrap_or_else(|_| panic!("bad time {s}"));
    Timestamp::from_nanos((secs * 1e9).round() as u64)
}

fn flags(s: &str) -> TcpFlags {
    let mut f = TcpFlags::default();
    for c in s.chars() {
        f |= match c {
            'F' => TcpFlags::FIN,
            'S' => TcpFlags::SYN,
            'R' => TcpFlags::RST,
            'P' => TcpFlags::PSH,
            'A' => TcpFlags::ACK,
            'U' => TcpFlags::URG,
            '.' => TcpFlags::default(),
            _ => panic!("bad flag letter {c}"),
        };
    }
    f
}

fn render(action: &Action) -> Option<String> {
    Some(match action {
        Action::Log(e) => format!("log {e}"),
        Action::Run(c) => format!(
            "run {} {}: {}",
            match c.kind {
                CommandKind::Start => "start",
                CommandKind::Stop => "stop",
            },
            c.door,
            c.command
        ),
        Action::OneTimeUsed { name, .. } => format!("used {name}"),
        Action::StopsChanged => return None,
    })
}

struct Run {
    engine: Engine,
    local: Vec<IpAddr>,
    door_names: Vec<String>,
    out: Vec<String>,
}

impl Run {
    fn drain(&mut self) {
        while let Some(a) = self.engine.poll_action() {
            if let Some(line) = render(&a) {
                self.out.push(line);
            }
        }
    }

    fn default_dst(&self, src: IpAddr) -> IpAddr {
        self.local
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
                let door: std::sync::Arc<str> = std::sync::Arc::from(words[1]);
                self.engine.start_failed(&door, words[2].parse().unwrap());
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
                // A knock: time src proto port [flags] [-> dst]
                let at = time(words[0]);
                let src: IpAddr = words[1].parse().unwrap();
                let proto = match words[2] {
                    "tcp" => Proto::Tcp,
                    "udp" => Proto::Udp,
                    p => panic!("bad proto {p}"),
                };
                let dst_port: u16 = words[3].parse().unwrap();
                let mut rest = &words[4..];
                let mut tcp_flags = TcpFlags::default();
                if proto == Proto::Tcp {
                    tcp_flags = TcpFlags::SYN;
                    if let Some(f) = rest.first().filter(|w| **w != "->") {
                        tcp_flags = flags(f);
                        rest = &rest[1..];
                    }
                }
                let dst = match rest {
                    ["->", d] => d.parse().unwrap(),
                    [] => self.default_dst(src),
                    _ => panic!("bad knock line {line}"),
                };
                self.engine.handle_knock(&Knock {
                    at,
                    src,
                    dst,
                    proto,
                    dst_port,
                    tcp_flags,
                });
            }
        }
    }
}

fn run_scenario(name: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/scenarios")
        .join(format!("{name}.txt"));
    let text = std::fs::read_to_string(&path).unwrap();
    let mut config_text = String::new();
    let mut onetime_text = String::new();
    let mut events: Vec<(usize, &str)> = Vec::new();
    let mut part = "";
    for (i, raw) in text.lines().enumerate() {
        let line = raw.trim();
        match line {
            "config:" | "onetime:" | "events:" => {
                part = line;
                continue;
            }
            _ => {}
        }
        match part {
            "config:" => {
                config_text.push_str(raw);
                config_text.push('\n');
            }
            "onetime:" => {
                onetime_text.push_str(raw);
                onetime_text.push('\n');
            }
            "events:" if !line.is_empty() && !line.starts_with('#') => events.push((i + 1, line)),
            _ => {}
        }
    }
    let mut onetime = tempfile::NamedTempFile::new().unwrap();
    onetime.write_all(onetime_text.as_bytes()).unwrap();
    let config_text = config_text.replace("%ONETIME%", &onetime.path().display().to_string());
    let (config, _) =
        parse_str(&config_text, &path).unwrap_or_else(|d| panic!("{name}: config: {:?}", d.errors));
    let mut run = Run {
        engine: Engine::new(&config, LocalAddrs::Any),
        local: Vec::new(),
        door_names: config.doors.iter().map(|d| d.name.clone()).collect(),
        out: Vec::new(),
    };
    let mut failures = Vec::new();
    let mut i = 0;
    while i < events.len() {
        let (lineno, line) = events[i];
        i += 1;
        if line.starts_with('>') {
            failures.push(format!(
                "{name}.txt:{lineno}: expectation with no input before it"
            ));
            continue;
        }
        let input = line.split(" #").next().unwrap_or(line).trim();
        run.out.clear();
        run.input(input);
        run.drain();
        let mut want = Vec::new();
        while i < events.len() && events[i].1.starts_with('>') {
            want.push(events[i].1[1..].trim().to_string());
            i += 1;
        }
        if run.out != want {
            failures.push(format!(
                "{name}.txt:{lineno}: after `{input}`\n  want: {want:#?}\n  got:  {:#?}",
                run.out
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

macro_rules! scenarios {
    ($($name:ident),* $(,)?) => {
        $(#[test] fn $name() { run_scenario(stringify!($name)); })*

        /// Every file in tests/scenarios/ is listed above, so none is
        /// silently skipped.
        #[test]
        fn every_scenario_file_is_run() {
            let listed = [$(stringify!($name)),*];
            let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/scenarios");
            for entry in std::fs::read_dir(dir).unwrap() {
                let name = entry.unwrap().file_name().into_string().unwrap();
                let stem = name.trim_end_matches(".txt");
                assert!(listed.contains(&stem), "tests/scenarios/{name} is not listed in scenarios!");
            }
        }
    };
}

scenarios!(
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
