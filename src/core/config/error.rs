//! Errors and warnings about a config file, each one line naming the place.

use std::fmt;
use std::path::{Path, PathBuf};

/// Something that keeps the daemon from starting with this config.
///
/// Displays as one line: `FILE:LINE: KEY: what is wrong` (the line and key
/// are left out when the problem has none, e.g. an unreadable file). Control
/// characters are escaped and echoed text is clipped, so a binary or huge
/// file still gives one short line per problem.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub struct ConfigError {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub key: Option<String>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_place(f, &self.file, self.line, self.key.as_deref())?;
        write_clean(f, &self.message, MAX_MESSAGE_CHARS)
    }
}

/// Something worth an admin's attention that does not stop the daemon.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Warning {
    pub file: PathBuf,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("warning: ")?;
        write_place(f, &self.file, self.line, None)?;
        write_clean(f, &self.message, MAX_MESSAGE_CHARS)
    }
}

fn write_place(
    f: &mut fmt::Formatter<'_>,
    file: &Path,
    line: Option<usize>,
    key: Option<&str>,
) -> fmt::Result {
    write!(f, "{}", file.display())?;
    if let Some(line) = line {
        write!(f, ":{line}")?;
    }
    f.write_str(": ")?;
    if let Some(key) = key {
        write_clean(f, key, MAX_KEY_CHARS)?;
        f.write_str(": ")?;
    }
    Ok(())
}

/// Longest key echoed in a message; real keys are under 20 characters.
const MAX_KEY_CHARS: usize = 60;
/// Longest message; ours are under 120 characters plus the echoed value.
const MAX_MESSAGE_CHARS: usize = 300;

/// Writes `text` with control characters escaped (`\r`, `\u{1b}`), so the
/// message stays one line and cannot drive the terminal, clipped to `max`
/// characters with `...`: for every message that echoes a file's text
/// (the config's and the client's doors file's).
pub fn write_clean(f: &mut fmt::Formatter<'_>, text: &str, max: usize) -> fmt::Result {
    for (i, c) in text.chars().enumerate() {
        if i == max {
            return f.write_str("...");
        }
        if c.is_control() {
            write!(f, "{}", c.escape_default())?;
        } else {
            write!(f, "{c}")?;
        }
    }
    Ok(())
}

/// Everything found wrong with one file: all errors, not just the first,
/// plus warnings. An admin fixes a config in one pass.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diagnostics {
    pub errors: Vec<ConfigError>,
    pub warnings: Vec<Warning>,
}

impl Diagnostics {
    pub(crate) fn error(
        &mut self,
        file: &Path,
        line: Option<usize>,
        key: Option<&str>,
        message: impl Into<String>,
    ) {
        self.errors.push(ConfigError {
            file: file.to_path_buf(),
            line,
            key: key.map(str::to_string),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, file: &Path, line: Option<usize>, message: impl Into<String>) {
        self.warnings.push(Warning {
            file: file.to_path_buf(),
            line,
            message: message.into(),
        });
    }
}
