//! Reading knockd.conf from disk: the file, its `Include` files, then each
//! door's secret or one-time-sequences file (the resolve step), every one
//! under the trust rule of [`safe_file::open_trusted`].
//!
//! Parsing is [`crate::core::config`]'s; this module only opens files and
//! turns what it finds into the same `file:line` diagnostics.

use std::io::Read;
use std::path::Path;

use super::onetime_file;
use super::safe_file::{self, Holds, TrustError};
use crate::core::config::onetime::first_live;
use crate::core::config::{
    io_reason, parse_partial, valid_user_name, Config, Diagnostics, Options, Parsed, SecretSource,
    SequenceSource, UserKey, Warning, MAX_USERS, MAX_USER_NAME,
};
use crate::core::rotate::Secret;

/// Reads, parses and resolves the config file at `path`: every problem of
/// the file (its own lines, its included, secret and one-time files) in
/// one pass. Each of those files must pass the trust rule
/// ([`safe_file::open_trusted`]): it is opened without following a link
/// or blocking, and one others could have written is an error.
///
/// That others can read the main file is only a warning; see
/// [`permission_warnings`].
pub fn load(path: &Path) -> Result<Parsed, Diagnostics> {
    let mut diag = Diagnostics::default();
    if std::fs::symlink_metadata(path).is_ok_and(|m| m.is_dir()) {
        diag.error(path, None, None, "is a directory, not a config file");
        return Err(diag);
    }
    match safe_file::open_trusted(path, Holds::Commands, false) {
        Ok(file) => load_from(file, path),
        Err(TrustError::Io(e)) => {
            diag.error(path, None, None, format!("cannot read: {}", io_reason(&e)));
            Err(diag)
        }
        Err(TrustError::Untrusted(why)) => {
            diag.error(path, None, None, why);
            Err(diag)
        }
    }
}

/// [`load`] of config text from any reader (`path` names it in messages):
/// parsed, then its one-time files resolved from disk.
pub fn load_from(reader: impl Read, path: &Path) -> Result<Parsed, Diagnostics> {
    // The parser caps what it reads (a wrong path such as /dev/zero).
    let (mut config, mut diag) = parse_partial(reader, path);
    include(&mut config, path, &mut diag);
    resolve(&mut config, path, &mut diag);
    if diag.errors.is_empty() {
        Ok((config, diag.warnings))
    } else {
        // Resolve errors sit at their directive's line among the parser's,
        // each file's together, the main file's first.
        diag.errors
            .sort_by_key(|e| (e.file.as_path() != path, e.file.clone(), e.line));
        Err(diag)
    }
}

/// `[options] Include = GLOB`: the doors of every matching file, files in
/// name order, after the main file's. An included file holds doors only;
/// a door name defined in two files is an error (within one file it stays
/// a warning, as knockd 0.8 accepts it).
fn include(config: &mut Config, main: &Path, diag: &mut Diagnostics) {
    let base = main.parent().unwrap_or(Path::new("."));
    for (pattern, line) in config.options.include.clone() {
        let files = match glob(base, &pattern) {
            Ok(files) => files,
            Err(message) => {
                diag.error(main, Some(line), Some("Include"), message);
                continue;
            }
        };
        for file in files {
            // Its commands run as root just as the main file's do.
            let text = match safe_file::open_trusted(&file, Holds::Commands, false) {
                Ok(f) => f,
                Err(e) => {
                    diag.error(main, Some(line), Some("Include"), e.about(&file));
                    continue;
                }
            };
            let (part, d) = parse_partial(text, &file);
            diag.warnings.extend(permission_warnings(&file));
            diag.errors.extend(d.errors);
            diag.warnings.extend(d.warnings);
            if let Some(options) = part.options.section_line {
                diag.error(
                    &file,
                    Some(options),
                    None,
                    format!(
                        "[options] belong in {}, not in an included file",
                        main.display()
                    ),
                );
            }
            for mut door in part.doors {
                let earlier = config.doors.iter().find(|d| d.name == door.name);
                if let Some(earlier) = earlier {
                    let at = earlier.file.as_deref().unwrap_or(main);
                    diag.error(
                        &file,
                        Some(door.line),
                        None,
                        format!(
                            "door [{}] is already defined at {}:{}",
                            door.name,
                            at.display(),
                            earlier.line
                        ),
                    );
                    continue;
                }
                door.file = Some(file.clone());
                config.doors.push(door);
            }
        }
    }
    if config.options.include.is_empty() {
        return;
    }
    if config.doors.len() > crate::core::config::MAX_DOORS {
        let message = format!(
            "{} doors with the included files; at most {} are allowed",
            config.doors.len(),
            crate::core::config::MAX_DOORS
        );
        diag.error(main, None, None, message);
    } else if config.doors.is_empty() && diag.errors.is_empty() {
        diag.warn(main, None, "no doors defined: nothing can be opened");
    }
}

/// The files `pattern` names, in name order: `*` and `?` may appear in its
/// last part only (`/etc/knockd.d/*.conf`); a relative pattern is taken
/// from `base` (the main config's directory). A pattern without wildcards
/// names one file, which must exist. A wildcard skips directories only:
/// a link, FIFO or device it matches is returned, for the trust rule to
/// report (the admin meant it to hold doors; skipping it would lose them
/// without a word).
fn glob(base: &Path, pattern: &str) -> Result<Vec<std::path::PathBuf>, String> {
    let path = base.join(pattern);
    let wild = |s: &str| s.contains(['*', '?']);
    let Some(name) = path.file_name().and_then(|n| n.to_str()) else {
        return Err(format!("\"{pattern}\" does not name files"));
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    if wild(&dir.to_string_lossy()) {
        return Err(format!(
            "\"{pattern}\": wildcards are allowed in the file name only"
        ));
    }
    if !wild(name) {
        return match std::fs::symlink_metadata(&path) {
            Ok(m) if !m.is_dir() => Ok(vec![path]),
            _ => Err(format!("{} is not a file", path.display())),
        };
    }
    let entries = std::fs::read_dir(dir)
        .map_err(|e| format!("cannot read {}: {}", dir.display(), io_reason(&e)))?;
    let mut files: Vec<std::path::PathBuf> = entries
        .flatten()
        .filter(|e| e.file_type().is_ok_and(|t| !t.is_dir()))
        .filter(|e| e.file_name().to_str().is_some_and(|n| matches(name, n)))
        .map(|e| e.path())
        .collect();
    files.sort();
    Ok(files)
}

/// Shell-style matching of `name` against `pattern` with `*` and `?`, by
/// character (`?.conf` matches `é.conf`); neither ever matches a `/`, and
/// a leading dot is matched only by a leading dot (no hidden files by
/// `*`). Greedy with one backtrack point, so linear in practice whatever
/// the pattern.
fn matches(pattern: &str, name: &str) -> bool {
    if name.starts_with('.') && !pattern.starts_with('.') {
        return false;
    }
    let p: Vec<char> = pattern.chars().collect();
    let n: Vec<char> = name.chars().collect();
    let (mut i, mut j) = (0, 0);
    // Where the last `*` was, and the name position it currently covers to.
    let mut star: Option<(usize, usize)> = None;
    while j < n.len() {
        match p.get(i) {
            Some('*') => {
                star = Some((i, j));
                i += 1;
            }
            Some(&c) if (c == '?' && n[j] != '/') || c == n[j] => {
                i += 1;
                j += 1;
            }
            // A `*` extends over one more character, never over a `/`.
            _ => match star {
                Some((si, sj)) if n[sj] != '/' => {
                    star = Some((si, sj + 1));
                    i = si + 1;
                    j = sj + 1;
                }
                _ => return false,
            },
        }
    }
    p[i..].iter().all(|&c| c == '*')
}

/// The `[options]` of the file at `path` as far as they parse: a config
/// with errors still names its `StateFile` and `LogFile`, which a daemon
/// that cannot start needs to close the doors an earlier run left open.
/// A file that fails the trust rule gives the defaults: whoever could
/// write it must not choose where root appends its log.
pub fn options_despite_errors(path: &Path) -> Options {
    match safe_file::open_trusted(path, Holds::Commands, false) {
        Ok(file) => parse_partial(file, path).0.options,
        Err(_) => Options::default(),
    }
}

/// Reads each one-time door's file: its live line, warnings about invalid
/// lines, and errors (at the directive's line) when it cannot be read or
/// written. A file with no unused line left is a warning, and its door is
/// disabled: using up the last sequence is a normal event, and must never
/// keep the daemon (and the stops it has to run) from starting.
pub fn resolve(config: &mut Config, main: &Path, diag: &mut Diagnostics) {
    for door in &mut config.doors {
        let name = door.name.clone();
        let file = door.file.clone().unwrap_or_else(|| main.to_path_buf());
        let file = file.as_path();
        if let SequenceSource::Rotating {
            secret:
                SecretSource::File {
                    path,
                    line,
                    key,
                    secret,
                },
            ..
        } = &mut door.sequence
        {
            match read_secret(path) {
                Ok(s) => *secret = Some(s),
                Err(message) => diag.error(file, Some(*line), Some(key), message),
            }
            continue;
        }
        if let SequenceSource::Rotating {
            secret:
                SecretSource::Dir {
                    path,
                    line,
                    key,
                    users,
                },
            ..
        } = &mut door.sequence
        {
            match read_users(path) {
                Ok(found) => {
                    if found.is_empty() {
                        diag.warn(
                            file,
                            Some(*line),
                            format!(
                                "{} holds no NAME.key file: door [{name}] opens for nobody",
                                path.display()
                            ),
                        );
                    }
                    *users = Some(found);
                }
                Err(message) => diag.error(file, Some(*line), Some(key), message),
            }
            continue;
        }
        let SequenceSource::OneTime {
            path,
            directive_line,
            directive_key,
            current,
        } = &mut door.sequence
        else {
            continue;
        };
        let shown = path.display().to_string();
        let problem = match onetime_file::read(path) {
            Err(e) => Some(e.about(path)),
            Ok(text) => match first_live(&text, path, |_| false, &mut diag.warnings) {
                None => {
                    diag.warn(
                        file,
                        Some(*directive_line),
                        format!("{shown} has no unused sequence left: door [{name}] is disabled"),
                    );
                    None
                }
                // Used lines are marked in the file; one knockd cannot
                // write would open with the same sequence again after every
                // reload or restart.
                Some(_) if !onetime_file::writable(path) => Some(format!(
                    "{shown} is not writable: used sequences could not be marked"
                )),
                Some(line) => {
                    *current = Some(line);
                    None
                }
            },
        };
        if let Some(message) = problem {
            diag.error(file, Some(*directive_line), Some(directive_key), message);
        }
    }
}

/// Largest secret file read: a secret is a line of base32.
const MAX_SECRET_FILE_BYTES: u64 = 4096;

/// A rotating door's secret file, under the trust rule (refused, too,
/// when others can read it, as ssh refuses such a private key): its
/// base32 content.
fn read_secret(path: &Path) -> Result<Secret, String> {
    use std::io::Read;
    let shown = path.display();
    let file = safe_file::open_trusted(path, Holds::Secret, false).map_err(|e| e.about(path))?;
    let mut text = String::new();
    file.take(MAX_SECRET_FILE_BYTES)
        .read_to_string(&mut text)
        .map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    Secret::from_base32(&text).map_err(|e| format!("{shown}: {e}"))
}

/// The users of a `Sequence_Secret_Dir` door: every `NAME.key` in `dir`,
/// sorted by name, each under the trust rule of secret files; `dir`
/// itself root's (or knockd's user's) and not writable by group or others
/// (whoever could write it could add a user). The first problem is the
/// error, naming the file.
pub fn read_users(dir: &Path) -> Result<Vec<UserKey>, String> {
    use std::os::unix::fs::MetadataExt;
    let shown = dir.display();
    let meta =
        std::fs::metadata(dir).map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    if !meta.is_dir() {
        return Err(format!(
            "{shown} is not a directory; name the directory of NAME.key files"
        ));
    }
    let euid = nix::unistd::geteuid().as_raw();
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "{shown} is owned by uid {}, not root, and holds users' secrets; chown root {shown}",
            meta.uid()
        ));
    }
    let mode = meta.mode() & 0o7777;
    if mode & 0o022 != 0 {
        return Err(format!(
            "{shown} is writable by group or others (mode {mode:04o}): they could add a user; chmod go-w {shown}"
        ));
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
    let mut names = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|e| format!("cannot read {shown}: {}", io_reason(&e)))?;
        let file = entry.file_name();
        let Some(stem) = file.as_encoded_bytes().strip_suffix(b".key") else {
            continue;
        };
        let path = entry.path();
        let name = std::str::from_utf8(stem)
            .ok()
            .filter(|n| valid_user_name(n))
            .ok_or_else(|| {
                format!(
                    "{}: a user's name is letters, digits and ._- (at most {MAX_USER_NAME} bytes, not starting with a dot); rename the file",
                    path.display()
                )
            })?;
        names.push((name.to_string(), path));
    }
    if names.len() > MAX_USERS {
        return Err(format!(
            "{shown} holds {} users; a door takes at most {MAX_USERS}",
            names.len()
        ));
    }
    names.sort();
    names
        .into_iter()
        .map(|(name, path)| {
            Ok(UserKey {
                name: name.into(),
                secret: read_secret(&path)?,
            })
        })
        .collect()
}

/// A warning when others may read the file: it holds the knock sequences.
/// (That they may write it is an error of [`load`]: the trust rule.)
pub fn permission_warnings(path: &Path) -> Vec<Warning> {
    use std::os::unix::fs::PermissionsExt;
    // Only a regular file has a meaningful mode here; a directory or device
    // given by mistake is reported by `load`.
    let meta = match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.is_file() => meta,
        _ => return Vec::new(),
    };
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o022 == 0 && mode & 0o004 != 0 {
        return vec![Warning {
            file: path.to_path_buf(),
            line: None,
            message: format!(
                "readable by others (mode {mode:04o}): the knock sequences are secrets; chmod 600"
            ),
        }];
    }
    Vec::new()
}

#[cfg(test)]
mod tests;
