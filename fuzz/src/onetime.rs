//! The `onetime` target: one-time-sequences file bytes through
//! `first_live` and `locate_used`.
//!
//! Input: byte 0 says which valid lines `first_live`'s `skip` passes over
//! (bit `i % 8` for the i-th valid line), bytes 1..9 are an offset (little
//! endian) for a stale `OneTimeLine`, the rest is the file.

use std::path::Path;

use knockd::core::config::onetime::{first_live, lines, locate_used, Line, LineKind};
use knockd::core::config::{parse_sequence, OneTimeLine, Sequence};

use crate::is_one_clean_line;

const PATH: &str = "/etc/knockd/otp";

pub fn check(data: &[u8]) {
    if data.len() < 9 {
        return;
    }
    let mask = data[0];
    let offset = u64::from_le_bytes(data[1..9].try_into().unwrap());
    let text = &data[9..];
    let all: Vec<Line> = lines(text).collect();
    check_lines(text, &all);

    // first_live against a reading of `lines` by hand.
    let mut warnings = Vec::new();
    let mut calls = 0usize;
    let live = first_live(
        text,
        Path::new(PATH),
        |_| {
            let skip = mask & (1 << (calls % 8)) != 0;
            calls += 1;
            skip
        },
        &mut warnings,
    );
    let mut valid_seen = 0usize;
    let mut expected_warnings = Vec::new();
    let mut expected = None;
    for line in &all {
        match &line.kind {
            LineKind::Valid(seq) => {
                let skip = mask & (1 << (valid_seen % 8)) != 0;
                valid_seen += 1;
                if !skip {
                    expected = Some(OneTimeLine {
                        sequence: seq.clone(),
                        line: line.number,
                        offset: line.offset,
                    });
                    break;
                }
            }
            LineKind::Invalid(_) | LineKind::NotUtf8 => expected_warnings.push(line.number),
            LineKind::Blank | LineKind::Used => {}
        }
    }
    assert_eq!(
        live, expected,
        "first_live is not the first valid unskipped line"
    );
    assert_eq!(
        warnings.iter().map(|w| w.line).collect::<Vec<_>>(),
        expected_warnings.into_iter().map(Some).collect::<Vec<_>>(),
        "warnings are not the invalid lines before the live one"
    );
    for w in &warnings {
        let s = w.to_string();
        assert!(
            is_one_clean_line(&s),
            "warning is not one clean line: {s:?}"
        );
        assert!(
            s.starts_with(&format!("warning: {PATH}:")),
            "warning does not name the file and line: {s:?}"
        );
    }

    // The live line is found where it was recorded, and marking it uses
    // exactly that line up.
    if let Some(l) = &live {
        assert_eq!(
            locate_used(text, l),
            Some(l.offset),
            "live line not found at its offset"
        );
        check_located(text, &l.sequence, Some(l.offset));
    }

    // A stale record: any offset, with the live sequence or another one
    // from the file (or a fixed one), as after the file was edited.
    let sequence = live
        .as_ref()
        .map(|l| l.sequence.clone())
        .or_else(|| {
            all.iter().rev().find_map(|l| match &l.kind {
                LineKind::Valid(s) => Some(s.clone()),
                _ => None,
            })
        })
        .unwrap_or_else(|| parse_sequence("7000").unwrap());
    let stale = OneTimeLine {
        sequence,
        line: 1,
        offset,
    };
    let found = locate_used(text, &stale);
    check_located(text, &stale.sequence, found);
}

/// `lines` tiles the text: consecutive, starting at line starts, numbered
/// from 1.
fn check_lines(text: &[u8], all: &[Line]) {
    let mut at = 0u64;
    for (i, line) in all.iter().enumerate() {
        assert_eq!(line.number, i + 1);
        assert_eq!(
            line.offset,
            at,
            "line {} does not start where the last ended",
            i + 1
        );
        let rest = &text[at as usize..];
        let len = rest
            .iter()
            .position(|&b| b == b'\n')
            .map_or(rest.len(), |p| p + 1);
        at += len as u64;
    }
    assert_eq!(at as usize, text.len(), "lines do not cover the text");
}

/// Where `locate_used` points must lie in an unused line holding `seq`
/// (its first byte, or a blank before the digits), and writing `#` there
/// must use exactly that line up; `None` only when no unused line holds it.
fn check_located(text: &[u8], seq: &Sequence, found: Option<u64>) {
    let holders = |t: &[u8]| {
        lines(t)
            .filter(|l| matches!(&l.kind, LineKind::Valid(s) if s == seq))
            .map(|l| l.offset)
            .collect::<Vec<_>>()
    };
    let before = holders(text);
    let Some(o) = found else {
        assert!(
            before.is_empty(),
            "a line holds the sequence but none was located"
        );
        return;
    };
    assert!((o as usize) < text.len(), "located offset {o} past the end");
    let line = lines(text)
        .take_while(|l| l.offset <= o)
        .last()
        .expect("a line at the offset");
    assert!(
        before.contains(&line.offset),
        "offset {o} is in line {} ({:?}), which does not hold {seq}; lines holding it start at {before:?}",
        line.number,
        line.kind,
    );
    let mut marked = text.to_vec();
    marked[o as usize] = b'#';
    let after = holders(&marked);
    assert_eq!(
        after.len() + 1,
        before.len(),
        "marking used up other lines too"
    );
    assert!(
        !after.contains(&line.offset),
        "marked line still holds the sequence"
    );
}
