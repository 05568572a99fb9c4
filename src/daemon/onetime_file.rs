//! Using up a line of a one-time-sequences file: `#` written over its
//! first byte, in place, then the next valid line found.
//!
//! knockd 0.8 finds the line to mark by re-reading the file and counting
//! positions, and gets it wrong when an invalid line precedes the live one,
//! so a used sequence can open twice. Here the line's byte offset was
//! recorded when it was read, and the bytes there are checked to still hold
//! that sequence before anything is written. A one-byte write cannot be
//! torn, so a crash leaves either the old or the new file.

use std::fs::OpenOptions;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::Path;

use crate::core::config::{next_one_time_sequence, parse_sequence, OneTimeLine, Warning};

/// Longest line looked at when checking what is at the recorded offset.
const MAX_LINE: u64 = 4096;

/// Marks `used` in the file at `path` and returns the next live line
/// (`None`: none left). If the file was edited and the recorded offset no
/// longer holds the used sequence, the first unused line holding it is
/// marked instead; if there is none, nothing is written.
pub fn consume(
    path: &Path,
    used: &OneTimeLine,
    warnings: &mut Vec<Warning>,
) -> io::Result<Option<OneTimeLine>> {
    let mut file = OpenOptions::new().read(true).write(true).open(path)?;
    let offset = if holds_sequence(&mut file, used.offset, used)? {
        Some(used.offset)
    } else {
        find_unused(path, used)?
    };
    if let Some(offset) = offset {
        file.seek(SeekFrom::Start(offset))?;
        file.write_all(b"#")?;
        file.sync_data()?;
    }
    // Invalid lines above the used one were reported when the file was
    // first read; only say something about the lines newly reached.
    let mut found = Vec::new();
    let next = next_one_time_sequence(path, &mut found)?;
    warnings.extend(
        found
            .into_iter()
            .filter(|w| w.line.is_none_or(|l| l > used.line)),
    );
    Ok(next)
}

/// The first valid, unused line after `used`, without writing anything:
/// what a dry run moves on to.
pub fn peek_after(path: &Path, used: &OneTimeLine) -> io::Result<Option<OneTimeLine>> {
    let text = std::fs::read(path)?;
    let mut offset = 0u64;
    for (i, line) in text.split_inclusive(|&b| b == b'\n').enumerate() {
        let start = offset;
        offset += line.len() as u64;
        if start <= used.offset {
            continue;
        }
        let Ok(s) = std::str::from_utf8(line) else {
            continue;
        };
        let t = s.trim();
        if t.is_empty() || t.starts_with('#') {
            continue;
        }
        if let Ok(sequence) = parse_sequence(t) {
            return Ok(Some(OneTimeLine {
                sequence,
                line: i + 1,
                offset: start,
            }));
        }
    }
    Ok(None)
}

fn holds_sequence(file: &mut std::fs::File, offset: u64, used: &OneTimeLine) -> io::Result<bool> {
    file.seek(SeekFrom::Start(offset))?;
    let mut buf = Vec::new();
    Read::by_ref(file).take(MAX_LINE).read_to_end(&mut buf)?;
    let line = buf.split(|&b| b == b'\n').next().unwrap_or(&[]);
    let Ok(text) = std::str::from_utf8(line) else {
        return Ok(false);
    };
    let text = text.trim();
    Ok(!text.starts_with('#') && parse_sequence(text).is_ok_and(|s| s == used.sequence))
}

/// The offset of the first unused line holding `used`'s sequence.
fn find_unused(path: &Path, used: &OneTimeLine) -> io::Result<Option<u64>> {
    let text = std::fs::read(path)?;
    let mut offset = 0u64;
    for line in text.split_inclusive(|&b| b == b'\n') {
        if let Ok(s) = std::str::from_utf8(line) {
            let t = s.trim();
            if !t.starts_with('#') && parse_sequence(t).is_ok_and(|seq| seq == used.sequence) {
                return Ok(Some(offset));
            }
        }
        offset += line.len() as u64;
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup(text: &str) -> (tempfile::TempDir, std::path::PathBuf, OneTimeLine) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("otp");
        std::fs::write(&path, text).unwrap();
        let live = next_one_time_sequence(&path, &mut Vec::new())
            .unwrap()
            .unwrap();
        (dir, path, live)
    }

    #[test]
    fn marks_the_used_line_even_after_an_invalid_one() {
        // knockd 0.8 marks the wrong line here and the sequence opens twice.
        let (_d, path, live) = setup("7000,abc\n 1111,2222\n3333,4444\n");
        assert_eq!(live.sequence.to_string(), "1111:tcp,2222:tcp");
        let next = consume(&path, &live, &mut Vec::new()).unwrap().unwrap();
        assert_eq!(next.sequence.to_string(), "3333:tcp,4444:tcp");
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "7000,abc\n#1111,2222\n3333,4444\n"
        );
        let none = consume(&path, &next, &mut Vec::new()).unwrap();
        assert_eq!(none, None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "7000,abc\n#1111,2222\n#333,4444\n"
        );
    }

    #[test]
    fn an_edited_file_marks_the_line_that_holds_the_sequence() {
        let (_d, path, live) = setup("1111,2222\n3333\n");
        std::fs::write(&path, "# new comment line\n5555\n1111,2222\n3333\n").unwrap();
        let next = consume(&path, &live, &mut Vec::new()).unwrap().unwrap();
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "# new comment line\n5555\n#111,2222\n3333\n"
        );
        assert_eq!(next.sequence.to_string(), "5555:tcp");
    }

    #[test]
    fn peek_after_moves_on_without_writing() {
        let (_d, path, live) = setup("1111\nbad,x\n2222\n");
        let next = peek_after(&path, &live).unwrap().unwrap();
        assert_eq!(next.sequence.to_string(), "2222:tcp");
        assert_eq!(next.line, 3);
        assert_eq!(peek_after(&path, &next).unwrap(), None);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "1111\nbad,x\n2222\n"
        );
    }

    #[test]
    fn a_sequence_no_longer_in_the_file_writes_nothing() {
        let (_d, path, live) = setup("1111,2222\n");
        std::fs::write(&path, "9999\n").unwrap();
        let next = consume(&path, &live, &mut Vec::new()).unwrap().unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "9999\n");
        assert_eq!(next.sequence.to_string(), "9999:tcp");
    }
}
