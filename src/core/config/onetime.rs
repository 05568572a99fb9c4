//! Reading a one-time-sequences file: one sequence per line, the first valid
//! one is live.
//!
//! Each line is located by its byte offset, so the shell can later mark
//! exactly that line used. knockd 0.8 records the offset of the wrong line
//! when an invalid line precedes the live one, which lets a used sequence
//! open twice; keeping the offset with the parsed line rules that out.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

use super::error::Warning;
use super::sequence::parse_sequence;
use super::Sequence;

/// The live line of a one-time-sequences file.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct OneTimeLine {
    pub sequence: Sequence,
    /// 1-based line number, for messages.
    pub line: usize,
    /// Byte offset of the line's first byte: where `#` goes once it is used.
    pub offset: u64,
}

/// Largest one-time-sequences file we read, so a wrong path (say a device or
/// a huge log) cannot exhaust memory.
const MAX_FILE_BYTES: u64 = 16 << 20;

/// Finds the first valid sequence line of the file at `path`.
///
/// Blank lines and lines starting with `#` are skipped silently; invalid
/// lines are skipped with a warning naming `file:line`, as knockd skips them.
/// `Ok(None)` means no valid line is left.
pub fn next_one_time_sequence(
    path: &Path,
    warnings: &mut Vec<Warning>,
) -> io::Result<Option<OneTimeLine>> {
    let file = std::fs::File::open(path)?;
    if file.metadata()?.is_dir() {
        return Err(io::Error::other("is a directory"));
    }
    let mut reader = BufReader::new(file.take(MAX_FILE_BYTES));
    let mut offset = 0u64;
    let mut buf = Vec::new();
    let mut number = 0usize;
    loop {
        buf.clear();
        let n = reader.read_until(b'\n', &mut buf)?;
        if n == 0 {
            return Ok(None);
        }
        number += 1;
        let start = offset;
        offset += n as u64;
        let Ok(text) = std::str::from_utf8(&buf) else {
            warnings.push(Warning {
                file: path.to_path_buf(),
                line: Some(number),
                message: "not valid UTF-8; line skipped".into(),
            });
            continue;
        };
        let text = text.trim();
        if text.is_empty() || text.starts_with('#') {
            continue;
        }
        match parse_sequence(text) {
            Ok(sequence) => {
                return Ok(Some(OneTimeLine {
                    sequence,
                    line: number,
                    // knockd marks the line's first byte, so a leading
                    // space (as its man page advises) keeps the digits.
                    offset: start,
                }));
            }
            Err(e) => warnings.push(Warning {
                file: path.to_path_buf(),
                line: Some(number),
                message: format!("{e}; line skipped"),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn skips_used_blank_and_invalid_lines_and_points_at_the_live_one() {
        let text = "# used\n#1111,2222\n\n7000,abc\n  3333,4444:udp\n5555\n";
        let f = file(text);
        let mut warnings = Vec::new();
        let live = next_one_time_sequence(f.path(), &mut warnings)
            .unwrap()
            .unwrap();
        assert_eq!(live.sequence.to_string(), "3333:tcp,4444:udp");
        assert_eq!(live.line, 5);
        assert_eq!(&text[live.offset as usize..][..6], "  3333");
        assert_eq!(warnings.len(), 1);
        assert_eq!(warnings[0].line, Some(4));
        assert!(warnings[0]
            .to_string()
            .contains(":4: port \"abc\" is not a number"));
    }

    #[test]
    fn none_left() {
        let f = file("#7000\n\n# done\n");
        let mut w = Vec::new();
        assert_eq!(next_one_time_sequence(f.path(), &mut w).unwrap(), None);
    }

    #[test]
    fn missing_file_and_directory_are_errors() {
        let mut w = Vec::new();
        assert!(next_one_time_sequence(Path::new("/nonexistent/otp"), &mut w).is_err());
        let dir = tempfile::tempdir().unwrap();
        assert!(next_one_time_sequence(dir.path(), &mut w).is_err());
    }
}
