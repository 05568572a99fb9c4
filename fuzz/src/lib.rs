//! Checks shared by the fuzz targets in `fuzz_targets/`: each target only
//! turns libFuzzer's bytes into an input and calls one `check` here, so the
//! invariants live in one place and read as plain code.
//!
//! Every check panics (`assert!`) when an invariant breaks; libFuzzer
//! reports the panic as a crash and saves the input under `artifacts/`.
//! What each target checks is listed in `doc/fuzzing.md`.

pub mod config;
pub mod doors;
pub mod engine;
pub mod journal;
pub mod onetime;
pub mod wire;

/// True when `s` is one line that cannot drive a terminal: no control
/// characters at all (`\n`, `\r`, escape, ...).
pub fn is_one_clean_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}

/// Whether the known finding `name` is to be passed over, so a target can
/// keep fuzzing for other bugs until it is fixed: `KNOCKD_FUZZ_KNOWN` is a
/// comma-separated list of such names (see `doc/fuzzing.md`). Unset, every
/// invariant is checked.
pub fn known(name: &str) -> bool {
    use std::sync::OnceLock;
    static KNOWN: OnceLock<Vec<String>> = OnceLock::new();
    KNOWN
        .get_or_init(|| {
            std::env::var("KNOCKD_FUZZ_KNOWN")
                .unwrap_or_default()
                .split(',')
                .map(|s| s.trim().to_string())
                .filter(|s| !s.is_empty())
                .collect()
        })
        .iter()
        .any(|k| k == name)
}

/// Whether `KNOCKD_FUZZ_DEBUG` is set: structured targets then print the
/// input they decoded (run one artifact to see what it stands for).
pub fn debug() -> bool {
    use std::sync::OnceLock;
    static DEBUG: OnceLock<bool> = OnceLock::new();
    *DEBUG.get_or_init(|| std::env::var_os("KNOCKD_FUZZ_DEBUG").is_some())
}
