//! `knock`: command line in, exit status out.
//!
//! This file owns what the user sees around a run (a knock, a
//! `--show-sequence` line, a `--gen-secret` file): clap's help, version and
//! usage errors, warnings, and the one-line failure message with its
//! sysexits code (see [`knockd::client`]). It must not panic on any input.

use std::fmt::Display;
use std::io::Write;
use std::process::ExitCode;

use clap::error::ErrorKind;
use knockd::client::{self, args, EX_USAGE};

fn main() -> ExitCode {
    run(std::env::args_os())
}

fn run(argv: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let args = match args::parse_args(argv) {
        Ok(a) => a,
        Err(e) => {
            // clap picks the stream by kind; a closed stream is not worth a panic.
            let _ = e.print();
            return match e.kind() {
                ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
                _ => ExitCode::from(EX_USAGE),
            };
        }
    };
    let result = client::mode(&args).and_then(|mode| {
        for w in mode.warnings() {
            eprint_line(format_args!("knock: {w}"));
        }
        client::execute(&mode)
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprint_line(format_args!("knock: {e}"));
            ExitCode::from(e.exit_code())
        }
    }
}

/// A line on stderr, never panicking.
fn eprint_line(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
