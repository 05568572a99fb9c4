//! The journal of pending stops (`StateFile`) as the daemon reads it back
//! at start: arbitrary bytes, and journals of real records cut at any byte.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use arbitrary::{Arbitrary, Unstructured};
use knockd::daemon::journal::{parse, render, Contents, Entry, Record, UsedMark, HEADER};

/// One record, from a small vocabulary so keys and doors repeat.
#[derive(Debug, Arbitrary)]
enum Op {
    Add {
        key: u8,
        due: u32,
        v6: bool,
        door: u8,
        command: String,
    },
    Remove {
        key: u8,
    },
    Used {
        door: u8,
        /// A user of the door (a `U` record), or none (a `u` record).
        user: Option<u8>,
        period: u8,
        keep: u32,
    },
}

const DOORS: [&str; 4] = ["d", "open\tSSH", "back\\slash", "rot n"];
const USERS: [&str; 3] = ["alice", "bob", "a.b-c_d"];

fn time(secs: u32) -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(u64::from(secs)) + Duration::from_nanos(7)
}

fn record(op: &Op) -> Record {
    match op {
        Op::Add {
            key,
            due,
            v6,
            door,
            command,
        } => Record::Add(
            u64::from(*key),
            Entry {
                due: time(*due),
                src: if *v6 {
                    "2001:db8::7".parse().unwrap()
                } else {
                    "192.0.2.7".parse().unwrap()
                },
                door: DOORS[usize::from(*door) % 4].to_string(),
                command: command.clone(),
            },
        ),
        Op::Remove { key } => Record::Remove(u64::from(*key)),
        Op::Used {
            door,
            user,
            period,
            keep,
        } => Record::Used(UsedMark {
            door: DOORS[usize::from(*door) % 4].to_string(),
            user: user.map(|u| USERS[usize::from(u) % 3].to_string()),
            period: u64::from(*period),
            keep_until: time(*keep),
        }),
    }
}

/// What `records` leave, folded by hand: stops in the order first added,
/// one mark per door, user and period with the latest `keep_until`.
fn expected(records: &[Record]) -> (Vec<Entry>, Vec<UsedMark>) {
    let mut live: BTreeMap<u64, (usize, Entry)> = BTreeMap::new();
    let mut marks: Vec<UsedMark> = Vec::new();
    for (i, r) in records.iter().enumerate() {
        match r {
            Record::Add(key, e) => {
                let order = live.get(key).map_or(i, |(o, _)| *o);
                live.insert(*key, (order, e.clone()));
            }
            Record::Remove(key) => {
                live.remove(key);
            }
            Record::Used(m) => match marks
                .iter_mut()
                .find(|k| k.door == m.door && k.user == m.user && k.period == m.period)
            {
                Some(k) => k.keep_until = k.keep_until.max(m.keep_until),
                None => marks.push(m.clone()),
            },
        }
    }
    let mut stops: Vec<(usize, Entry)> = live.into_values().collect();
    stops.sort_by_key(|(o, _)| *o);
    (stops.into_iter().map(|(_, e)| e).collect(), marks)
}

/// Byte 0 picks the mode: even, the rest is a journal as it is on disk
/// (any bytes); odd, it is a list of records, written as the daemon
/// writes them and cut after a chosen byte (a power cut mid-append),
/// zeros after the cut or not.
pub fn check(data: &[u8]) {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    if mode % 2 == 0 {
        any_bytes(rest);
    } else {
        cut_records(mode, rest);
    }
}

fn any_bytes(bytes: &[u8]) {
    let contents = parse(bytes);
    assert_eq!(contents, parse(bytes), "same bytes, same reading");
    let lines = bytes.split(|b| *b == b'\n').count();
    assert!(contents.stops.len() + contents.used.len() + contents.problems.len() <= lines);
    let mut last = 0;
    for p in &contents.problems {
        assert!(crate::is_one_clean_line(p), "{p:?}");
        let n: usize = p
            .strip_prefix("line ")
            .and_then(|r| r.split_once(':'))
            .and_then(|(n, _)| n.parse().ok())
            .unwrap_or_else(|| panic!("problem without its line: {p:?}"));
        assert!(n > last && n <= lines, "{p:?} of {lines} lines");
        last = n;
    }
    // Whole or ignored: what follows the last newline (before the zeros)
    // changes nothing but one problem.
    let end = bytes.iter().rposition(|b| *b != 0).map_or(0, |i| i + 1);
    let whole = bytes[..end]
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    let cut = parse(&bytes[..whole]);
    assert_eq!(
        cut.stops, contents.stops,
        "a torn last line changed the stops"
    );
    assert_eq!(
        cut.used, contents.used,
        "a torn last line changed the marks"
    );
    let torn = usize::from(whole < end);
    assert_eq!(cut.problems.len() + torn, contents.problems.len());
}

fn cut_records(mode: u8, rest: &[u8]) {
    let mut u = Unstructured::new(rest);
    let Ok(ops) = Vec::<Op>::arbitrary(&mut u) else {
        return;
    };
    let Ok(at) = u32::arbitrary(&mut u) else {
        return;
    };
    let records: Vec<Record> = ops.iter().map(record).collect();
    let mut text = format!("{HEADER}\n");
    // Where each record ends.
    let mut ends = Vec::with_capacity(records.len());
    for r in &records {
        render(&mut text, r);
        ends.push(text.len());
    }
    let whole = parse(text.as_bytes());
    let (stops, used) = expected(&records);
    assert_eq!(whole.stops, stops, "round trip of the stops");
    assert_eq!(whole.used, used, "round trip of the marks");
    assert!(whole.problems.is_empty(), "{:?}", whole.problems);
    // The cut: every record wholly before it applies, none after.
    let cut = at as usize % (text.len() + 1);
    let mut bytes = text.as_bytes()[..cut].to_vec();
    if mode & 2 != 0 {
        bytes.resize(cut + 64, 0);
    }
    let applied = ends.iter().take_while(|e| **e <= cut).count();
    let read: Contents = parse(&bytes);
    let (stops, used) = expected(&records[..applied]);
    assert_eq!(read.stops, stops, "cut at {cut}: a torn record applied");
    assert_eq!(read.used, used, "cut at {cut}: a torn mark applied");
    let header = HEADER.len() + 1;
    let torn = cut > header && !ends.contains(&cut);
    let torn_header = cut > 0 && cut < header;
    assert_eq!(
        read.problems.len(),
        usize::from(torn || torn_header),
        "cut at {cut}: {:?}",
        read.problems
    );
}
