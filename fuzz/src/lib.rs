//! Checks shared by the fuzz targets in `fuzz_targets/`: each target only
//! turns libFuzzer's bytes into an input and calls one `check` here, so the
//! invariants live in one place and read as plain code.
//!
//! Every check panics (`assert!`) when an invariant breaks; libFuzzer
//! reports the panic as a crash and saves the input under `artifacts/`.
//! What each target checks is listed in `doc/fuzzing.md`.

pub mod config;
pub mod engine;
pub mod onetime;
pub mod wire;

/// True when `s` is one line that cannot drive a terminal: no control
/// characters at all (`\n`, `\r`, escape, ...).
pub fn is_one_clean_line(s: &str) -> bool {
    !s.chars().any(char::is_control)
}
