//! Service rules in virtual time: one readable file per rule in
//! `tests/service/`, one test per file, no root, no sleeping.
//!
//! File format (`#` starts a comment line):
//!
//! ```text
//! settings: replay dry-run only-v4   (optional; default: live)
//!           start=T                  (the service starts at T, not 0)
//! config:                            (the config the service starts with)
//! [door]
//! sequence = 7000
//! config NAME:                       (another config, for `reload NAME`)
//! onetime:                           (optional: the one-time file's lines;
//! 1111,2222                           %ONETIME% in a config names it)
//! keys:                              (optional: users of Sequence_Secret_Dir
//! /virtual/a alice BASE32             doors, as DIR NAME SECRET; `keys NAME:`
//!                                     for `config NAME:`)
//! events:
//! local 192.0.2.1 2001:db8::1 [@T]   (the interfaces' addresses changed)
//! 0.000 203.0.113.5 tcp 7000 S       (a knock: time src proto port [flags] [-> dst])
//! burst T N 198.51.100 tcp 1000      (N knocks from .1 to .N in one batch)
//! > log TEXT                         (every effect the input caused, in order)
//! timeout T | advance                (handle_timeout at T, or at poll_timeout())
//! ended ID exit N|signal N|spawn-failed WHY|wait-failed WHY [@T]
//! journal-fails WHY | journal-works  (answers to journal writes from now on)
//! spawn-fails WHY | spawn-works      (answers to Run effects from now on)
//! mark-fails WHY | mark-works        (answers to one-time file uses)
//! nft-fails WHY | nft-works          (answers to nftables additions)
//! nft-size N SET                     (the kernel's set SET holds at most N)
//! nft-admin ADDR permanent|T SET     (an admin put ADDR in SET, for good or
//!                                     until T)
//! nft-has SET = ADDR...              (assert what SET holds, sorted)
//! reload NAME [@T]                   (handle_reload with config NAME)
//! restore T SRC DOOR COMMAND... [@T] (a journaled stop, due at T)
//! shutdown T                         (handle_shutdown)
//! next T | next none                 (assert poll_timeout)
//! finished yes|no                    (assert is_finished)
//! file LINE|LINE|...                 (assert the one-time file's lines)
//! ```
//!
//! Effects render as `log TEXT`, `run #ID COMMAND`, `journal ENTRY | ...`
//! (each `DOOR SRC @DUE: COMMAND`, or `journal (empty)`), `one-time DOOR
//! mark|read line N`, `filter TEXT`, `log-file PATH|none`, `reopen-log`,
//! `syslog on|off`, `reloading|ready|stopping`, `kill #ID`, `nft add SET
//! ADDR Ns` (answered as the kernel would: refreshed when already there). The harness answers journal
//! writes, runs and one-time uses as the shell would (the one-time file
//! lives in memory and is marked where the core says). After each input,
//! the `>` lines that follow must equal every effect it caused, exactly.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use knockd::core::config::onetime::{first_live, locate_used};
use knockd::core::config::{parse_str, Diagnostics, Parsed, SecretSource, SequenceSource, UserKey};
use knockd::core::engine::LocalAddrs;
use knockd::core::knock::Timestamp;
use knockd::core::rotate::Secret;

mod fixture;
use fixture::{time, Fixture};
use knockd::core::service::{
    Close, CommandEnd, CommandId, Effect, JournalEntry, JournalRecord, JournalWrite, Mode,
    NftAdded, Readiness, RestoredStop, Service, Settings, UsedMark,
};

const ONETIME: &str = "/virtual/otp";

/// The fixture's config text parsed, its one-time doors resolved against
/// the in-memory file as the shell's resolve step would.
fn load(text: &str, onetime: &[u8], keys: &str, name: &Path) -> Result<Parsed, Diagnostics> {
    let (mut config, mut warnings) = parse_str(&text.replace("%ONETIME%", ONETIME), name)?;
    for door in &mut config.doors {
        if let SequenceSource::Rotating {
            secret: SecretSource::Dir { path, users, .. },
            ..
        } = &mut door.sequence
        {
            let mut found: Vec<UserKey> = keys
                .lines()
                .filter_map(|l| {
                    let w: Vec<&str> = l.split_whitespace().collect();
                    (Path::new(w[0]) == path.as_path()).then(|| UserKey {
                        name: w[1].into(),
                        secret: Secret::from_base32(w[2]).unwrap(),
                    })
                })
                .collect();
            found.sort_by(|a, b| a.name.cmp(&b.name));
            *users = Some(found);
        }
        if let SequenceSource::OneTime { path, current, .. } = &mut door.sequence {
            *current = first_live(onetime, path, |_| false, &mut warnings);
        }
    }
    Ok((config, warnings))
}

/// An nftables set as the kernel keeps it: its `size` (none: no bound)
/// and its elements with their expiry (none: no timeout).
#[derive(Default)]
struct KernelSet {
    size: Option<usize>,
    elems: HashMap<IpAddr, Option<Timestamp>>,
}

impl KernelSet {
    /// Drops what expired by `now`, as the kernel does by itself.
    fn expire(&mut self, now: Timestamp) {
        self.elems.retain(|_, e| e.is_none_or(|t| t > now));
    }

    fn is_full(&self) -> bool {
        self.size.is_some_and(|n| self.elems.len() >= n)
    }
}

struct Run {
    service: Service,
    configs: HashMap<String, String>,
    /// Door names of the running config, by id.
    names: Vec<String>,
    file: Vec<u8>,
    /// The `keys:` sections, by config name.
    keys: HashMap<String, String>,
    journal_fails: Option<String>,
    spawn_fails: Option<String>,
    mark_fails: Option<String>,
    /// Answers to nftables additions: an error, or the set kept here.
    nft_fails: Option<String>,
    nft: HashMap<String, KernelSet>,
    now: Timestamp,
    out: Vec<String>,
}

impl Run {
    /// Drains every effect, answering as the shell would.
    fn drain(&mut self) {
        while let Some(effect) = self.service.poll_effect() {
            let line = match effect {
                Effect::Log(n) => format!("log {n}"),
                Effect::Run { id, command } => {
                    if let Some(why) = &self.spawn_fails {
                        let end = CommandEnd::SpawnFailed(why.clone());
                        self.out.push(format!("run #{} {command}", id.0));
                        self.service.handle_command_ended(id, end, self.now);
                        continue;
                    }
                    format!("run #{} {command}", id.0)
                }
                Effect::Journal(write) => {
                    let entry = |key: u64, e: &JournalEntry| {
                        format!("+{key} {} {} @{}: {}", e.door, e.src, e.due, e.command)
                    };
                    let used = |m: &UsedMark| {
                        let user = m.user.as_ref().map_or(String::new(), |u| format!("/{u}"));
                        format!("used {}{user}/{} until {}", m.door, m.period, m.keep_until)
                    };
                    let (kind, shown): (&str, Vec<String>) = match &write {
                        JournalWrite::Append(records) => (
                            "journal",
                            records
                                .iter()
                                .map(|r| match r {
                                    JournalRecord::Add { key, entry: e } => entry(*key, e),
                                    JournalRecord::Remove { key } => format!("-{key}"),
                                    JournalRecord::Used(m) => used(m),
                                })
                                .collect(),
                        ),
                        JournalWrite::Rewrite { stops, used: marks } => (
                            "journal rewrite",
                            stops
                                .iter()
                                .map(|(k, e)| entry(*k, e))
                                .chain(marks.iter().map(used))
                                .collect(),
                        ),
                    };
                    self.out.push(if shown.is_empty() {
                        format!("{kind} (empty)")
                    } else {
                        format!("{kind} {}", shown.join(" | "))
                    });
                    let result = self.journal_fails.clone().map_or(Ok(()), Err);
                    self.service.handle_journal_result(result, self.now);
                    continue;
                }
                Effect::UseOneTime {
                    door,
                    path,
                    used,
                    mark,
                } => {
                    let name = self.door_name(door);
                    self.out.push(format!(
                        "one-time {name} {} line {}",
                        if mark { "mark" } else { "read" },
                        used.line
                    ));
                    assert_eq!(path, Path::new(ONETIME));
                    let result = match (&self.mark_fails, mark) {
                        (Some(why), true) => Err(why.clone()),
                        _ => {
                            if mark {
                                if let Some(at) = locate_used(&self.file, &used) {
                                    self.file[at as usize] = b'#';
                                }
                            }
                            Ok(self.file.clone())
                        }
                    };
                    self.service.handle_one_time_file(door, result, self.now);
                    continue;
                }
                Effect::InstallFilter(f) => format!("filter {f}"),
                Effect::Kill { id } => format!("kill #{}", id.0),
                Effect::NftAdd {
                    id,
                    set,
                    addr,
                    timeout,
                    evict,
                } => {
                    let room = evict.map(|v| format!(" (if full: drop {v})"));
                    self.out.push(format!(
                        "nft add {set} {addr} {}s{}",
                        timeout.as_secs_f64(),
                        room.unwrap_or_default()
                    ));
                    // Answered as the kernel and the shell would.
                    let name = set.to_string();
                    let k = self.nft.entry(name.clone()).or_default();
                    k.expire(self.now);
                    let expiry = Some(self.now + timeout);
                    let result = match (&self.nft_fails, k.elems.get(&addr)) {
                        (Some(why), _) => Err(why.clone()),
                        (None, Some(None)) => Ok(NftAdded::Permanent),
                        (None, Some(Some(_))) => {
                            k.elems.insert(addr, expiry);
                            Ok(NftAdded::Refreshed)
                        }
                        (None, None) if !k.is_full() => {
                            k.elems.insert(addr, expiry);
                            Ok(NftAdded::New)
                        }
                        (None, None) => match evict {
                            Some(v) if k.elems.remove(&v).is_some() => {
                                k.elems.insert(addr, expiry);
                                Ok(NftAdded::MadeRoom)
                            }
                            _ => Err(format!(
                                "nft set {name}: cannot add {addr}: the set is full (raise its `size`)"
                            )),
                        },
                    };
                    self.service.handle_nft_result(id, result, self.now);
                    continue;
                }
                Effect::SetLogFile(p) => format!(
                    "log-file {}",
                    p.map_or("none".to_string(), |p| p.display().to_string())
                ),
                Effect::ReopenLog => "reopen-log".to_string(),
                Effect::SetSyslog(on) => format!("syslog {}", if on { "on" } else { "off" }),
                Effect::SetLogFormat(f) => format!("log-format {f:?}"),
                Effect::Readiness(r) => match r {
                    Readiness::Reloading => "reloading",
                    Readiness::Ready => "ready",
                    Readiness::Stopping => "stopping",
                }
                .to_string(),
            };
            self.out.push(line);
        }
    }

    fn door_name(&self, door: knockd::core::engine::DoorId) -> String {
        self.names[door.0 as usize].clone()
    }

    /// `@T` at the end of `words` sets the time of a non-knock input.
    fn at<'a>(&mut self, words: &'a [&'a str]) -> &'a [&'a str] {
        if let Some(t) = words.last().and_then(|w| w.strip_prefix('@')) {
            self.now = time(t);
            return &words[..words.len() - 1];
        }
        words
    }

    fn input(&mut self, line: &str) {
        let all: Vec<&str> = line.split_whitespace().collect();
        let words = self.at(&all);
        let rest = words[1..].join(" ");
        match words[0] {
            "local" => {
                let addrs = words[1..].iter().map(|w| w.parse().unwrap()).collect();
                self.service.handle_local_addrs(addrs, self.now);
            }
            "timeout" => {
                self.now = time(words[1]);
                self.service.handle_timeout(self.now);
            }
            "advance" => {
                let at = self.service.poll_timeout().expect("advance with no timer");
                self.now = at;
                self.service.handle_timeout(at);
            }
            "ended" => {
                let id = CommandId(words[1].trim_start_matches('#').parse().unwrap());
                let why = words[3..].join(" ");
                let end = match words[2] {
                    "exit" => CommandEnd::Exited(words[3].parse().unwrap()),
                    "signal" => CommandEnd::Signaled(words[3].parse().unwrap()),
                    "spawn-failed" => CommandEnd::SpawnFailed(why),
                    "wait-failed" => CommandEnd::WaitFailed(why),
                    e => panic!("bad end {e}"),
                };
                self.service.handle_command_ended(id, end, self.now);
            }
            "journal-fails" => self.journal_fails = Some(rest),
            "journal-works" => self.journal_fails = None,
            "spawn-fails" => self.spawn_fails = Some(rest),
            "spawn-works" => self.spawn_fails = None,
            "mark-fails" => self.mark_fails = Some(rest),
            "mark-works" => self.mark_fails = None,
            "nft-fails" => self.nft_fails = Some(rest),
            "nft-works" => self.nft_fails = None,
            "nft-size" => {
                let k = self.nft.entry(words[2..].join(" ")).or_default();
                k.size = Some(words[1].parse().unwrap());
            }
            "nft-admin" => {
                let expiry = (words[2] != "permanent").then(|| time(words[2]));
                let k = self.nft.entry(words[3..].join(" ")).or_default();
                k.elems.insert(words[1].parse().unwrap(), expiry);
            }
            "nft-has" => {
                let (set, want) = rest.split_once(" = ").expect("nft-has SET = ADDR...");
                let k = self.nft.entry(set.to_string()).or_default();
                k.expire(self.now);
                let mut got: Vec<IpAddr> = k.elems.keys().copied().collect();
                got.sort();
                let got: Vec<String> = got.iter().map(|a| a.to_string()).collect();
                assert_eq!(got.join(" "), want, "nft set {set}");
            }
            "reload" => {
                let text = self.configs.get(words[1]).expect("no such config").clone();
                let loaded = load(
                    &text,
                    &self.file,
                    self.keys.get(words[1]).map_or("", String::as_str),
                    Path::new("k.conf"),
                );
                if let Ok((c, _)) = &loaded {
                    self.names = c.doors.iter().map(|d| d.name.clone()).collect();
                }
                self.service.handle_reload(loaded, self.now);
            }
            "restore" => {
                let stop = RestoredStop {
                    due: time(words[1]),
                    src: words[2].parse().unwrap(),
                    door: words[3].to_string(),
                    command: words[4..].join(" "),
                };
                self.service.handle_restore(
                    "/var/lib/knockd/state",
                    vec![stop],
                    vec![],
                    vec![],
                    self.now,
                );
            }
            "restore-used" => {
                // restore-used DOOR[/USER] PERIOD KEEP_UNTIL: a used mark an
                // earlier run journaled.
                let (door, user) = match words[1].split_once('/') {
                    Some((d, u)) => (d, Some(u.into())),
                    None => (words[1], None),
                };
                let mark = UsedMark {
                    door: door.into(),
                    user,
                    period: words[2].parse().unwrap(),
                    keep_until: words[3].parse().unwrap(),
                };
                self.service.handle_restore(
                    "/var/lib/knockd/state",
                    vec![],
                    vec![mark],
                    vec![],
                    self.now,
                );
            }
            "wall" => {
                // wall SECS: the wall clock is set, so that engine time plus
                // SECS is Unix time (fixture times start out as Unix times).
                let secs: i128 = words[1].parse().unwrap();
                self.service
                    .handle_wall_clock(secs * 1_000_000_000, self.now);
            }
            "shutdown" => {
                self.now = time(words[1]);
                self.service.handle_shutdown(Close::All, self.now);
            }
            "shutdown-keeping" => {
                self.now = time(words[1]);
                self.service.handle_shutdown(Close::Due, self.now);
            }
            "next" => {
                let got = self.service.poll_timeout().map(|t| t.to_string());
                let want = (words[1] != "none").then(|| time(words[1]).to_string());
                assert_eq!(got, want, "poll_timeout");
            }
            "finished" => assert_eq!(self.service.is_finished(), words[1] == "yes"),
            "file" => {
                let text = String::from_utf8_lossy(&self.file).to_string();
                let got: Vec<&str> = text.lines().collect();
                let want = line.strip_prefix("file ").unwrap_or_default();
                assert_eq!(got.join("|"), want, "one-time file");
            }
            "burst" => {
                // burst T N A.B.C tcp PORT: N knocks from A.B.C.1..N in one
                // batch, as the capture hands them over.
                let n: u8 = words[2].parse().unwrap();
                let knocks: Vec<_> = (1..=n)
                    .map(|i| {
                        let src = format!("{}.{i}", words[3]);
                        let line = [words[1], &src, words[4], words[5]];
                        fixture::knock(&line, |_| "192.0.2.1".parse().unwrap())
                    })
                    .collect();
                self.now = time(words[1]);
                self.service.handle_knocks(&knocks, self.now);
            }
            _ => self.knock(words),
        }
    }

    /// A knock line, to our address of its family by default.
    fn knock(&mut self, words: &[&str]) {
        let k = fixture::knock(words, |src| {
            if src.is_ipv6() {
                "2001:db8::1".parse().unwrap()
            } else {
                "192.0.2.1".parse().unwrap()
            }
        });
        self.now = k.at;
        self.service.handle_knocks(&[k], k.at);
    }
}

fn run_fixture(name: &str) {
    let f = Fixture::read("service", name);
    let (config, _) = load(
        &f.configs[""],
        f.onetime.as_bytes(),
        f.keys.get("").map_or("", String::as_str),
        &f.path,
    )
    .unwrap_or_else(|d| panic!("{name}: config: {:?}", d.errors));
    let settings = Settings {
        mode: if f.has("replay") {
            Mode::Replay
        } else {
            Mode::Live
        },
        dry_run: f.has("dry-run"),
        only_v4: f.has("only-v4"),
        config_path: PathBuf::from("k.conf"),
        interfaces: vec!["eth0".into()],
        interfaces_from_cli: false,
        log_file: None,
        log_file_from_cli: false,
        log_format: knockd::core::config::LogFormat::Text,
        log_format_from_cli: false,
        state_file: PathBuf::from("/var/lib/knockd/state"),
        // Fixture times are Unix times.
        wall_offset: 0,
    };
    let local = if f.has("replay") {
        LocalAddrs::Any
    } else {
        LocalAddrs::List(vec![
            "192.0.2.1".parse().unwrap(),
            "2001:db8::1".parse().unwrap(),
        ])
    };
    // `settings: start=T` starts the service at T (rotating doors count
    // periods from it); otherwise at 0.
    let start = f
        .settings
        .iter()
        .find_map(|w| w.strip_prefix("start="))
        .map_or(Timestamp::ZERO, time);
    let mut run = Run {
        service: Service::new(&config, settings, local, start),
        configs: f.configs.clone(),
        names: config.doors.iter().map(|d| d.name.clone()).collect(),
        file: f.onetime.clone().into_bytes(),
        keys: f.keys.clone(),
        journal_fails: None,
        spawn_fails: None,
        mark_fails: None,
        nft_fails: None,
        nft: HashMap::new(),
        now: start,
        out: Vec::new(),
    };
    f.check(|line| {
        run.out.clear();
        run.input(line);
        run.drain();
        std::mem::take(&mut run.out)
    });
}

fixture_tests!(
    "service", run_fixture:
    a_full_nft_set_makes_room,
    addresses_follow_the_interface,
    allow_and_deny,
    bad_reload_keeps_running_config,
    bounds_hold_within_one_batch,
    command_tokens,
    concurrent_commands_are_bounded,
    cooldown_ignores_repeats,
    failed_start_reopens,
    hung_start_is_killed_when_its_stop_is_due,
    journal_before_start,
    journal_failure_keeps_the_door_shut,
    many_doors_share_a_log_budget,
    mapped_sources_obey_deny,
    nft_doors_are_bounded_by_their_set,
    nft_set_and_commands_journal_first,
    nft_set_doors,
    one_time_mark_failure_never_revives,
    one_time_progression,
    only_v4_ignores_ipv6,
    openings_per_door_are_bounded,
    pending_stops_per_door_are_bounded,
    rate_limited_flood,
    refusals_are_summed_up_once_a_minute,
    recovery_keeps_stops_not_yet_due,
    reload_keeps_door_identity,
    reload_settings_that_need_a_restart,
    reload_takes_log_format,
    replay_uses_capture_time,
    restored_stops_do_not_count_as_open,
    restored_stops_run_on_time,
    rotating_knock_crossing_a_boundary,
    rotating_sequences_open_once_per_period,
    rotating_skew_edges,
    rotating_nft_door_marks_before_the_set,
    rotating_refused_opening_commits_nothing,
    rotating_used_survives_reload,
    rotating_used_survives_restart_and_clock_steps,
    users_open_apart_in_one_period,
    users_revoked_at_once,
    same_named_doors_are_separate,
    shutdown_gives_up_after_grace,
    shutdown_runs_every_pending_stop,
    slow_command_reported_once,
    stop_retried_after_spawn_failure,
);
