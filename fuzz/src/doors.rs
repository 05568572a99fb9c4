//! The client's doors file (`~/.config/knock/doors`) as arbitrary text.

use std::collections::HashSet;
use std::path::Path;

use knockd::client::doors::parse;

/// Checks, for any text: no panic, the same result twice; an error is one
/// clean line naming the file and a line that exists; the doors of a file
/// that parses are well formed (names trimmed, non-empty and unique, a
/// host without spaces, a fixed sequence or a rotation, never both).
pub fn check(data: &[u8]) {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("/home/u/.config/knock/doors");
    let result = parse(&text, path);
    assert_eq!(result, parse(&text, path), "same text, same result");
    match result {
        Err(e) => {
            let shown = e.to_string();
            assert!(crate::is_one_clean_line(&shown), "{shown:?}");
            assert!(
                shown.starts_with("/home/u/.config/knock/doors:"),
                "{shown:?}"
            );
            let lines = text.lines().count();
            assert!(
                e.line >= 1 && e.line <= lines,
                "line {} of {lines}: {shown}",
                e.line
            );
        }
        Ok(doors) => {
            let mut names = HashSet::new();
            for d in &doors {
                assert!(
                    !d.name.is_empty() && d.name.trim() == d.name,
                    "{:?}",
                    d.name
                );
                assert!(names.insert(d.name.clone()), "door {:?} twice", d.name);
                assert!(
                    !d.host.is_empty() && !d.host.contains(char::is_whitespace),
                    "host {:?}",
                    d.host
                );
                match &d.rotating {
                    None => {
                        assert!(!d.sequence.is_empty(), "[{}] without a sequence", d.name);
                        assert!(d.sequence.iter().all(|s| s.port != 0));
                    }
                    Some(r) => {
                        assert!(d.sequence.is_empty(), "[{}] has both", d.name);
                        assert!(d.protocol.is_none(), "[{}] rotating with protocol", d.name);
                        assert!(!r.door.is_empty(), "[{}] rotating without a door", d.name);
                    }
                }
            }
        }
    }
}
