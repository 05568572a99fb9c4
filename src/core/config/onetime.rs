//! The one-time-sequences file format: one sequence per line, the first
//! valid one is live, and a used line has `#` written over its first byte.
//!
//! This is the only reader of that format; the shell reads and writes the
//! bytes, everything about what they mean is decided here. Each line is
//! located by its byte offset, so exactly that line can later be marked
//! used. knockd 0.8 records the offset of the wrong line when an invalid
//! line precedes the live one, which lets a used sequence open twice;
//! keeping the offset with the parsed line rules that out.

use std::path::Path;

use super::error::Warning;
use super::sequence::{parse_sequence, SequenceError};
use super::Sequence;

/// Largest one-time-sequences file read, so a wrong path (a device, a huge
/// log) cannot exhaust memory. The shell enforces it when reading.
pub const MAX_ONE_TIME_FILE_BYTES: u64 = 16 << 20;

/// The live line of a one-time-sequences file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OneTimeLine {
    pub sequence: Sequence,
    /// 1-based line number, for messages.
    pub line: usize,
    /// Byte offset of the line's first byte: where `#` goes once it is used.
    pub offset: u64,
}

/// What one line of the file holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineKind {
    /// Empty or blank: skipped silently.
    Blank,
    /// Starts with `#`: a comment or a used sequence, skipped silently.
    Used,
    /// A sequence not used yet.
    Valid(Sequence),
    /// Not a sequence: skipped with a warning, as knockd skips it.
    Invalid(SequenceError),
    /// Not UTF-8 text: skipped with a warning.
    NotUtf8,
}

/// One line of the file, with its place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Line {
    /// 1-based line number.
    pub number: usize,
    /// Byte offset of its first byte.
    pub offset: u64,
    pub kind: LineKind,
}

/// Every line of a one-time-sequences file, in order.
pub fn lines(text: &[u8]) -> impl Iterator<Item = Line> + '_ {
    let mut offset = 0u64;
    text.split_inclusive(|&b| b == b'\n')
        .enumerate()
        .map(move |(i, raw)| {
            let start = offset;
            offset += raw.len() as u64;
            let kind = match std::str::from_utf8(raw) {
                Err(_) => LineKind::NotUtf8,
                Ok(s) => {
                    let t = s.trim();
                    if t.is_empty() {
                        LineKind::Blank
                    } else if t.starts_with('#') {
                        LineKind::Used
                    } else {
                        match parse_sequence(t) {
                            Ok(seq) => LineKind::Valid(seq),
                            Err(e) => LineKind::Invalid(e),
                        }
                    }
                }
            };
            Line {
                number: i + 1,
                offset: start,
                kind,
            }
        })
}

/// The first valid unused line of `text` (the file at `path`) for which
/// `skip` says no, or `None` when none is left. Invalid lines before it are
/// reported in `warnings`, naming `path:line`.
///
/// knockd marks a line's first byte, so a line's offset is where its first
/// byte is, leading spaces included (its man page advises a leading space,
/// which keeps the digits readable once `#` is written).
pub fn first_live(
    text: &[u8],
    path: &Path,
    mut skip: impl FnMut(&Sequence) -> bool,
    warnings: &mut Vec<Warning>,
) -> Option<OneTimeLine> {
    for line in lines(text) {
        let message = match line.kind {
            LineKind::Valid(sequence) if !skip(&sequence) => {
                return Some(OneTimeLine {
                    sequence,
                    line: line.number,
                    offset: line.offset,
                })
            }
            LineKind::Blank | LineKind::Used | LineKind::Valid(_) => continue,
            LineKind::Invalid(e) => format!("{e}; line skipped"),
            LineKind::NotUtf8 => "not valid UTF-8; line skipped".to_string(),
        };
        warnings.push(Warning {
            file: path.to_path_buf(),
            line: Some(line.number),
            message,
        });
    }
    None
}

/// Where to write the `#` that marks `used` as used in `text`: its recorded
/// offset if that line still holds the sequence, unused; otherwise (the file
/// was edited) the first unused line holding it; `None` when no line holds
/// it any more (then nothing is written).
pub fn locate_used(text: &[u8], used: &OneTimeLine) -> Option<u64> {
    let holds = |line: &Line| matches!(&line.kind, LineKind::Valid(s) if *s == used.sequence);
    let at_offset = usize::try_from(used.offset)
        .ok()
        .filter(|&o| o < text.len())
        // Only where a line starts: after an edit the old offset may fall
        // inside another line, whose `#` would then mark the wrong one.
        .filter(|&o| o == 0 || text[o - 1] == b'\n')
        .and_then(|o| lines(&text[o..]).next())
        .filter(|l| holds(l));
    if at_offset.is_some() {
        return Some(used.offset);
    }
    lines(text).find(|l| holds(l)).map(|l| l.offset)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Found by the `onetime` fuzz target: a recorded offset that falls
    /// inside another line after an edit must not be taken, or `#` lands
    /// mid-line and the used sequence stays live.
    #[test]
    fn a_stale_offset_inside_a_line_is_not_used() {
        let seq = |s: &str| crate::core::config::parse_sequence(s).unwrap();
        let used = OneTimeLine {
            sequence: seq("2222"),
            line: 2,
            offset: 6,
        };
        assert_eq!(locate_used(b"#111\n12222\n2222\n", &used), Some(11));
        let used = OneTimeLine {
            sequence: seq("2"),
            line: 2,
            offset: 1,
        };
        assert_eq!(locate_used(b"12\n2\n", &used), Some(3));
    }

    fn live(text: &str) -> (Option<OneTimeLine>, Vec<Warning>) {
        let mut warnings = Vec::new();
        let l = first_live(text.as_bytes(), Path::new("otp"), |_| false, &mut warnings);
        (l, warnings)
    }

    #[test]
    fn skips_used_blank_and_invalid_lines_and_points_at_the_live_one() {
        let text = "# used\n#1111,2222\n\n7000,abc\n  3333,4444:udp\n5555\n";
        let (l, warnings) = live(text);
        let l = l.unwrap();
        assert_eq!(l.sequence.to_string(), "3333:tcp,4444:udp");
        assert_eq!(l.line, 5);
        assert_eq!(&text[l.offset as usize..][..6], "  3333");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, Some(4));
        assert!(warnings[0]
            .to_string()
            .contains("otp:4: port \"abc\" is not a number"));
    }

    #[test]
    fn none_left_and_not_utf8() {
        assert_eq!(live("#7000\n\n# done\n").0, None);
        let mut w = Vec::new();
        let l = first_live(b"\xff\xfe\n7000\n", Path::new("otp"), |_| false, &mut w);
        assert_eq!(l.unwrap().line, 2);
        assert_eq!(
            w[0].to_string(),
            "warning: otp:1: not valid UTF-8; line skipped"
        );
    }

    #[test]
    fn skip_passes_over_burned_sequences() {
        let mut w = Vec::new();
        let burned = parse_sequence("1111").unwrap();
        let l = first_live(b"1111\n2222\n", Path::new("otp"), |s| *s == burned, &mut w);
        assert_eq!(l.unwrap().sequence.to_string(), "2222:tcp");
    }

    #[test]
    fn locate_prefers_the_recorded_offset_then_the_first_unused_copy() {
        let text = b"7000,abc\n 1111,2222\n3333\n";
        let (l, _) = live(std::str::from_utf8(text).unwrap());
        let l = l.unwrap();
        assert_eq!(locate_used(text, &l), Some(9));
        // Edited above the line: found by content.
        let edited = b"# new\n5555\n1111,2222\n";
        assert_eq!(locate_used(edited, &l), Some(11));
        // Already marked, or gone: nothing to write.
        assert_eq!(locate_used(b"7000,abc\n#1111,2222\n", &l), None);
        assert_eq!(locate_used(b"9999\n", &l), None);
        // An offset past the end is not a panic.
        let far = OneTimeLine {
            offset: 1 << 40,
            ..l
        };
        assert_eq!(locate_used(b"1111,2222\n", &far), Some(0));
    }
}
