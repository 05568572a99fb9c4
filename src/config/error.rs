//! Errors and warnings about a config file, each one line naming the place.

use std::fmt;
use std::path::{Path, PathBuf};

/// Something that keeps the daemon from starting with this config.
///
/// Displays as one line: `FILE:LINE: KEY: what is wrong` (the line and key
/// are left out when the problem has none, e.g. an unreadable file).
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
        f.write_str(&self.message)
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
        f.write_str(&self.message)
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
        write!(f, "{key}: ")?;
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
