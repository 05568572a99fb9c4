//! Tests that keep the message catalogue, its structured fields and the
//! LOG MESSAGES section of knockd(8) in step.
//!
//! [`samples`] builds every shape of every message with placeholder values
//! (door `DOOR`, knocker 192.0.2.1, paths `PATH`, ...). A message added to
//! [`Notice`] or [`Event`] without an event name does not compile
//! ([`Notice::event`] is an exhaustive match); one with a name but no
//! sample here fails [`every_event_name_has_a_sample`]; one with a sample
//! but not in the man page fails [`man_page_lists_every_message`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::caps::Limit;
use super::fields::Value;
use super::notice::{Notice, Unjournaled};
use super::record::{journal_entry, json_line, push_json_str};
use super::validate::Forged;
use crate::core::config::{ConfigError, Warning};
use crate::core::engine::{CommandKind, Event};
use crate::core::ring::{Resize, Why};

const IP: &str = "192.0.2.1";

fn ip() -> IpAddr {
    IP.parse().unwrap()
}

fn door() -> Arc<str> {
    Arc::from("DOOR")
}

fn st(v: &str) -> String {
    v.to_string()
}

/// One of every shape of every operator message.
pub(super) fn samples() -> Vec<Notice> {
    let (src, d) = (ip(), door());
    let secs = Duration::from_secs;
    let resized = |why| Notice::CaptureResized {
        iface: st("IF"),
        resize: Resize {
            bytes: 4 << 20,
            why,
        },
    };
    let mut v: Vec<Notice> = [
        Event::Stage {
            src,
            door: d.clone(),
            stage: 1,
        },
        Event::OpenSesame {
            src,
            door: d.clone(),
        },
        Event::OpenedBy {
            src,
            door: d.clone(),
            user: Arc::from("USER"),
        },
        Event::SequenceTimeout {
            src,
            door: d.clone(),
            stage: 1,
        },
        Event::CommandTimeout {
            src,
            door: d.clone(),
        },
        Event::Extended {
            src,
            door: d.clone(),
        },
        Event::Evicted { count: 1, cap: 1 },
        Event::Replayed {
            src,
            door: d.clone(),
        },
        Event::CoolingDown {
            src,
            door: d.clone(),
            left: secs(5),
        },
    ]
    .into_iter()
    .map(Notice::Event)
    .collect();
    v.extend([
        Notice::NotStarting {
            reason: st("REASON"),
            left: 1,
        },
        Notice::StartingUp {
            interfaces: st("IF"),
        },
        Notice::ShuttingDown,
        Notice::Rereading {
            path: PathBuf::from("PATH"),
        },
        Notice::Warning(Warning {
            file: PathBuf::from("PATH"),
            line: Some(1),
            message: st("REASON"),
        }),
        Notice::ConfigError(ConfigError {
            file: PathBuf::from("PATH"),
            line: Some(1),
            key: Some(st("KEY")),
            message: st("ERROR"),
        }),
        Notice::KeepingConfig {
            path: PathBuf::from("PATH"),
            errors: 1,
        },
        Notice::StateFileChanged {
            state: PathBuf::from("STATEFILE"),
            path: PathBuf::from("PATH"),
        },
        Notice::InterfaceChanged {
            wanted: vec![st("IF")],
            path: PathBuf::from("PATH"),
            current: vec![st("IF")],
        },
        Notice::LogFileKept { error: st("ERROR") },
        Notice::RunningCommand {
            door: d.clone(),
            command: st("COMMAND"),
        },
        Notice::WouldRun {
            door: d.clone(),
            kind: CommandKind::Start,
            command: st("COMMAND"),
        },
        Notice::WouldRun {
            door: d.clone(),
            kind: CommandKind::Stop,
            command: st("COMMAND"),
        },
        Notice::WouldAddToSet {
            door: d.clone(),
            src,
            set: st("SET"),
            timeout: secs(30),
        },
        Notice::AddedToSet {
            door: d.clone(),
            src,
            set: st("SET"),
            timeout: secs(30),
            refreshed: false,
        },
        Notice::AddedToSet {
            door: d.clone(),
            src,
            set: st("SET"),
            timeout: secs(30),
            refreshed: true,
        },
        Notice::LeftInSet {
            door: d.clone(),
            src,
            set: st("SET"),
        },
        Notice::NotAddedToSet {
            src,
            door: d.clone(),
            error: st("ERROR"),
        },
        Notice::CannotRun {
            door: d.clone(),
            reason: st("ERROR"),
        },
        Notice::NonZeroStatus {
            door: d.clone(),
            code: 1,
        },
        Notice::KilledBySignal {
            door: d.clone(),
            signal: 9,
        },
        Notice::CannotWait {
            door: d.clone(),
            reason: st("ERROR"),
        },
        Notice::StillRunning {
            door: d.clone(),
            after: secs(60),
            command: st("COMMAND"),
        },
        Notice::LeftRunning {
            door: d.clone(),
            command: st("COMMAND"),
        },
        Notice::StopKept {
            door: d.clone(),
            command: st("COMMAND"),
        },
        Notice::KillingStart {
            door: d.clone(),
            command: st("COMMAND"),
        },
        Notice::StartNeverRan {
            src,
            door: d.clone(),
        },
        Notice::Refused {
            src,
            door: d.clone(),
            limit: Limit::OpensPerMinute(60),
        },
        Notice::Refused {
            src,
            door: d.clone(),
            limit: Limit::PendingStops(1024),
        },
        Notice::Refused {
            src,
            door: d.clone(),
            limit: Limit::NftAddsPerSecond(1000),
        },
        Notice::RefusedMore {
            door: d.clone(),
            count: 1,
        },
        Notice::NotOpened {
            src,
            door: d.clone(),
            what: Unjournaled::Stop,
            error: st("ERROR"),
        },
        Notice::NotOpened {
            src,
            door: d.clone(),
            what: Unjournaled::UsedPeriod,
            error: st("ERROR"),
        },
        Notice::ProposalDropped {
            src,
            door: Some(d.clone()),
            reason: Forged::Acl,
        },
        Notice::ProposalDropped {
            src,
            door: None,
            reason: Forged::UnknownDoor,
        },
        Notice::ProposalsDroppedMore { count: 1 },
        Notice::StopRetry {
            door: d.clone(),
            src,
            after: secs(5),
        },
        Notice::Suppressed {
            door: d.clone(),
            count: 1,
            rate: 50,
        },
        Notice::SuppressedAll {
            count: 1,
            rate: 200,
        },
        Notice::OpeningsNotLogged {
            door: Some(d.clone()),
            count: 1,
            rate: 50,
        },
        Notice::OpeningsNotLogged {
            door: None,
            count: 1,
            rate: 200,
        },
        Notice::StateFileProblem {
            path: st("PATH"),
            problem: st("REASON"),
        },
        Notice::Restored {
            count: 1,
            path: st("PATH"),
            overdue: 1,
        },
        Notice::JournalFailed { error: st("ERROR") },
        Notice::StateFileFull {
            path: st("PATH"),
            reserve: 65536,
        },
        Notice::OneTimeDryRun {
            door: d.clone(),
            path: PathBuf::from("PATH"),
        },
        Notice::OneTimeExhausted { door: d.clone() },
        Notice::OneTimeMarkFailed {
            door: d.clone(),
            path: PathBuf::from("PATH"),
            reason: st("ERROR"),
        },
        Notice::OneTimeBurned {
            path: PathBuf::from("PATH"),
            line: 1,
        },
        Notice::InterfaceWaiting {
            name: st("IF"),
            missing: true,
        },
        Notice::InterfaceWaiting {
            name: st("IF"),
            missing: false,
        },
        Notice::InterfaceGone { name: st("IF") },
        Notice::Listening { name: st("IF") },
        Notice::DefaultInterface {
            name: st("IF"),
            v6: false,
        },
        Notice::DefaultInterface {
            name: st("IF"),
            v6: true,
        },
        Notice::NoDefaultInterface,
        Notice::DefaultRouteMoved {
            from: Some(st("IF")),
            to: st("IF"),
        },
        Notice::DefaultRouteMoved {
            from: None,
            to: st("IF"),
        },
        Notice::CaptureRetry {
            error: st("ERROR"),
            after: secs(5),
        },
        Notice::CaptureLost {
            error: st("ERROR"),
            name: st("IF"),
        },
        Notice::Addresses {
            interfaces: st("IF"),
            addrs: vec![ip()],
        },
        Notice::Addresses {
            interfaces: st("IF"),
            addrs: vec![],
        },
        resized(Why::Rate(1, Duration::from_millis(100))),
        resized(Why::Backlog(1)),
        resized(Why::Dropped(1)),
        resized(Why::Calm(secs(60))),
        Notice::CaptureNotResized {
            iface: st("IF"),
            bytes: 4 << 20,
            error: st("ERROR"),
            retry: secs(60),
        },
        Notice::NotAHost { count: 1 },
        Notice::CaptureStats {
            iface: st("IF"),
            received: 1,
            dropped: 1,
            if_dropped: 1,
        },
    ]);
    v
}

/// A sample's text as the man page shows it: the knocker as `IP`, every
/// number as `N`.
fn shape(n: &Notice) -> String {
    let text = n.to_string().replace(IP, "IP");
    let mut out = String::new();
    let mut in_number = false;
    for c in text.chars() {
        if c.is_ascii_digit() {
            if !in_number {
                out.push('N');
            }
            in_number = true;
        } else {
            in_number = false;
            out.push(c);
        }
    }
    out
}

/// Event name → (field keys in first-seen order, shapes), over all samples.
fn catalogue() -> BTreeMap<&'static str, (Vec<&'static str>, Vec<String>)> {
    let mut map: BTreeMap<&'static str, (Vec<&'static str>, Vec<String>)> = BTreeMap::new();
    for n in samples() {
        let entry = map.entry(n.event()).or_default();
        for (k, _) in n.fields() {
            if !entry.0.contains(&k) {
                entry.0.push(k);
            }
        }
        let s = shape(&n);
        if !entry.1.contains(&s) {
            entry.1.push(s);
        }
    }
    map
}

/// The LOG MESSAGES list as roff, in the order of [`samples`]: what
/// `doc/knockd.8.tail` must hold.
fn man_list() -> String {
    let cat = catalogue();
    let mut seen = Vec::new();
    let mut out = String::new();
    for n in samples() {
        let name = n.event();
        if seen.contains(&name) {
            continue;
        }
        seen.push(name);
        let (fields, shapes) = &cat[name];
        out.push_str(&format!(".TP\n.B {name}\n"));
        for (i, s) in shapes.iter().enumerate() {
            if i > 0 {
                out.push_str(".br\n");
            }
            out.push_str(&roff(s));
            out.push('\n');
        }
        if !fields.is_empty() {
            out.push_str(&format!(".br\nFields: {}.\n", fields.join(", ")));
        }
    }
    out
}

/// `-` is `\-` in roff (a minus, not a hyphen: what an admin types).
fn roff(s: &str) -> String {
    s.replace('\\', "\\e").replace('-', "\\-")
}

/// Every event name written in [`Notice::event`]'s source.
fn names_in_source() -> Vec<String> {
    let src = include_str!("fields.rs");
    let start = src.find("pub fn event(&self)").unwrap();
    let end = start + src[start..].find("\n    }\n").unwrap();
    src[start..end]
        .split("=> \"")
        .skip(1)
        .map(|s| s[..s.find('"').unwrap()].to_string())
        .collect()
}

#[test]
fn every_event_name_has_a_sample_and_names_are_unique_snake_case() {
    let mut names = names_in_source();
    assert!(names.len() > 50, "{names:?}");
    for n in &names {
        assert!(
            !n.is_empty()
                && n.bytes().all(|b| b.is_ascii_lowercase() || b == b'_')
                && !n.starts_with('_'),
            "{n:?}"
        );
    }
    let before = names.len();
    names.sort();
    names.dedup();
    assert_eq!(names.len(), before, "an event name is used twice");
    let sampled: Vec<String> = catalogue().keys().map(|k| k.to_string()).collect();
    assert_eq!(sampled, names, "samples() lacks a message kind");
}

#[test]
fn man_page_lists_every_message() {
    let page = include_str!("../../../doc/knockd.8.tail");
    let want = man_list();
    let start = page
        .find(".SH \"LOG MESSAGES\"")
        .expect("knockd.8.tail has a LOG MESSAGES section");
    let section = &page[start..];
    let section = &section[..section[1..].find("\n.SH ").map_or(section.len(), |i| i + 1)];
    assert!(
        section.trim_end().ends_with(want.trim_end()),
        "doc/knockd.8.tail's LOG MESSAGES list differs from the catalogue; it should read:\n{want}"
    );
}

#[test]
fn fields_are_the_facts_of_the_text_line() {
    for n in samples() {
        let text = n.to_string();
        let fields = n.fields();
        let keys: Vec<&str> = fields.iter().map(|(k, _)| *k).collect();
        let mut unique = keys.clone();
        unique.sort();
        unique.dedup();
        assert_eq!(
            unique.len(),
            keys.len(),
            "{text}: duplicate key in {keys:?}"
        );
        for k in &keys {
            assert!(
                k.bytes().all(|b| b.is_ascii_lowercase() || b == b'_'),
                "{k:?}"
            );
            assert!(
                !["time", "event", "message", "host"].contains(k),
                "{text}: {k} is reserved"
            );
        }
        // ip and door exactly where the text line names them, first.
        let has_ip = text.contains(IP) && !matches!(n, Notice::Addresses { .. });
        assert_eq!(keys.contains(&"ip"), has_ip, "{text}: {keys:?}");
        assert_eq!(
            keys.contains(&"door"),
            text.contains("DOOR"),
            "{text}: {keys:?}"
        );
        let lead: Vec<&str> = keys
            .iter()
            .copied()
            .take_while(|k| *k == "ip" || *k == "door")
            .collect();
        assert_eq!(
            lead.len(),
            usize::from(has_ip) + usize::from(text.contains("DOOR")),
            "{text}: ip and door come first: {keys:?}"
        );
        // Every text value is said in the line.
        for (k, v) in &fields {
            match v {
                // A `reason` in lower case is a code word (`missing`,
                // `rate`), which the line says in other words.
                Value::Str(s)
                    if ["reason", "unjournaled"].contains(k)
                        && s.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') => {}
                Value::Str(s) => assert!(text.contains(s.as_str()), "{text}: {k}={s}"),
                Value::List(items) => {
                    for s in items {
                        assert!(text.contains(s.as_str()), "{text}: {k}={s}");
                    }
                }
                Value::Int(_) | Value::Secs(_) | Value::Bool(_) => {}
            }
        }
    }
}

#[test]
fn fields_of_some_messages_exactly() {
    let s = |v: &str| Value::Str(v.to_string());
    let cases: Vec<(Notice, Vec<(&str, Value)>)> = vec![
        (
            Notice::Event(Event::Stage {
                src: ip(),
                door: door(),
                stage: 2,
            }),
            vec![("ip", s(IP)), ("door", s("DOOR")), ("stage", Value::Int(2))],
        ),
        (
            Notice::AddedToSet {
                door: door(),
                src: ip(),
                set: st("inet f s"),
                timeout: Duration::from_millis(2500),
                refreshed: true,
            },
            vec![
                ("ip", s(IP)),
                ("door", s("DOOR")),
                ("set", s("inet f s")),
                ("timeout", Value::Secs(2.5)),
                ("refreshed", Value::Bool(true)),
            ],
        ),
        (
            Notice::NonZeroStatus {
                door: door(),
                code: 3,
            },
            vec![("door", s("DOOR")), ("status", Value::Int(3))],
        ),
        (
            Notice::Refused {
                src: ip(),
                door: door(),
                limit: Limit::PendingStops(7),
            },
            vec![
                ("ip", s(IP)),
                ("door", s("DOOR")),
                ("limit", s("MaxPendingStops")),
                ("count", Value::Int(7)),
            ],
        ),
        (Notice::ShuttingDown, vec![]),
    ];
    for (n, want) in cases {
        assert_eq!(n.fields(), want, "{n}");
    }
}

fn json(s: &str) -> String {
    let mut out = String::new();
    push_json_str(&mut out, s);
    out
}

#[test]
fn json_strings_escape_quotes_backslashes_and_control_characters() {
    assert_eq!(json("plain"), r#""plain""#);
    assert_eq!(json(r#"say "hi""#), r#""say \"hi\"""#);
    assert_eq!(json(r"C:\dir\"), r#""C:\\dir\\""#);
    assert_eq!(json("a\nb\rc\td"), r#""a\nb\rc\td""#);
    assert_eq!(json("\u{8}\u{c}"), r#""\b\f""#);
    assert_eq!(
        json("\0\u{1}\u{1b}[31m\u{1f}"),
        r#""\u0000\u0001\u001b[31m\u001f""#
    );
    // DEL is not a JSON control character; the line separators are
    // escaped for JavaScript readers.
    assert_eq!(json("\u{7f}"), "\"\u{7f}\"");
    assert_eq!(json("\u{2028}\u{2029}"), r#""\u2028\u2029""#);
    // Non-ASCII stays as UTF-8.
    assert_eq!(json("tür 门 🔑"), "\"tür 门 🔑\"");
    assert_eq!(json(""), r#""""#);
}

#[test]
fn json_lines_are_flat_objects_in_a_fixed_key_order() {
    let n = Notice::Event(Event::OpenSesame {
        src: ip(),
        door: door(),
    });
    assert_eq!(
        json_line("2026-12-05T01:30:00.123+00:00", &n, None, &n.to_string()),
        r#"{"time":"2026-12-05T01:30:00.123+00:00","event":"open_sesame","ip":"192.0.2.1","door":"DOOR","message":"192.0.2.1: DOOR: OPEN SESAME"}"#
    );
    let text = n.with_host(Some("h.example")).to_string();
    assert_eq!(
        json_line("T", &n, Some("h.example"), &text),
        r#"{"time":"T","event":"open_sesame","ip":"192.0.2.1","host":"h.example","door":"DOOR","message":"192.0.2.1 (h.example): DOOR: OPEN SESAME"}"#
    );
    let n = Notice::AddedToSet {
        door: door(),
        src: ip(),
        set: st("inet f s"),
        timeout: Duration::from_millis(2500),
        refreshed: false,
    };
    assert_eq!(
        json_line("T", &n, None, "M"),
        r#"{"time":"T","event":"added_to_set","ip":"192.0.2.1","door":"DOOR","set":"inet f s","timeout":2.5,"refreshed":false,"message":"M"}"#
    );
    let n = Notice::InterfaceChanged {
        wanted: vec![st("a"), st("b\"")],
        path: PathBuf::from("k.conf"),
        current: vec![],
    };
    assert_eq!(
        json_line("T", &n, None, "M"),
        r#"{"time":"T","event":"interface_changed","wanted":["a","b\""],"path":"k.conf","interfaces":[],"message":"M"}"#
    );
}

#[test]
fn every_sample_renders_to_a_json_line_and_a_journal_entry() {
    for n in samples() {
        let text = n.to_string();
        let line = json_line("T", &n, None, &text);
        assert!(!line.contains('\n'), "{line}");
        assert!(line.starts_with(&format!(r#"{{"time":"T","event":"{}""#, n.event())));
        assert!(line.ends_with(&format!(r#","message":{}}}"#, json(&text))));
        let entry = journal_entry(&n, None, &text);
        let entry = String::from_utf8(entry).unwrap();
        assert!(entry.starts_with(&format!("MESSAGE={text}\n")), "{entry}");
        assert!(entry.contains(&format!("\nKNOCKD_EVENT={}\n", n.event())));
    }
}
