//! Generates the packaged files that are derived from the command line
//! definition: man pages (clap_mangen) and shell completions (clap_complete).
//!
//! `cargo run --example gen-assets -- OUTDIR` (what `make assets` runs)
//! writes, for every program in [`programs`]:
//!
//! - `NAME.SECTION`: the man page: title, NAME, SYNOPSIS, DESCRIPTION and
//!   OPTIONS from the clap `Command`, then the hand-written sections from
//!   `doc/NAME.SECTION.tail` (exit status, signals, files, see also);
//! - `NAME.bash`, `_NAME` (zsh), `NAME.fish`: completions.
//!
//! It is an example rather than a build script so an ordinary build never
//! pays for clap_mangen/clap_complete, and rather than a binary so the
//! package never ships it. It reads the same `Cli` the binary parses, so a
//! flag added to the binary shows up in the man page and completions
//! without anyone editing them.
//!
//! The output is byte-for-byte reproducible: the only date on the page
//! comes from `SOURCE_DATE_EPOCH` (the Makefile passes the last commit's
//! time), and is left empty without it.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::CommandFactory;
use clap_complete::Shell;

/// One program whose assets are generated.
struct Program {
    cmd: clap::Command,
    /// Man section: 8 for the daemon (an admin's command in /usr/sbin),
    /// 1 for the client.
    section: &'static str,
    /// Longer DESCRIPTION than the one-line `about` that `--help` shows.
    description: &'static str,
    /// Hand-written roff appended after OPTIONS.
    tail: &'static str,
}

/// Every program in the package. The `knock` client joins this list with
/// one entry once its `Cli` exists (section "1", `doc/knock.1.tail`).
fn programs() -> Vec<Program> {
    vec![
        Program {
            cmd: knockd::daemon::cli::Cli::command(),
            section: "8",
            description: KNOCKD_DESCRIPTION,
            tail: include_str!("../doc/knockd.8.tail"),
        },
        Program {
            cmd: knockd::client::args::Args::command(),
            section: "1",
            description: KNOCK_DESCRIPTION,
            tail: include_str!("../doc/knock.1.tail"),
        },
    ]
}

const KNOCK_DESCRIPTION: &str = "\
knock sends a port-knock sequence to a host running knockd(8): a TCP hit is \
a single SYN from a non-blocking connect that is abandoned at once, a UDP \
hit a one-byte datagram; no privileges are needed. It is a drop-in for \
knockd 0.8's client, with the same flags and output, and can also relay a \
connection after knocking (ssh ProxyCommand), read doors from a file, and \
knock rotating doors, whose sequence it derives from a secret and the time.";

const KNOCKD_DESCRIPTION: &str = "\
knockd is a port-knock server. It listens to all traffic on a network \
interface (closed ports included) and watches each source address for a \
secret sequence of TCP or UDP port hits defined in its configuration file, \
knockd.conf(5). When a source completes a door's sequence within the \
sequence timeout, knockd runs that door's start command with %IP% replaced \
by the source address, typically a firewall rule admitting it, and after \
Cmd_Timeout seconds the door's stop command.

This is knockd-rs, a drop-in replacement for knockd 0.8: the same flags, \
configuration syntax and log lines. Every short option is knockd 0.8's; \
the options added by knockd-rs are long-only.";

fn main() -> ExitCode {
    let mut args = std::env::args_os().skip(1);
    let (Some(out), None) = (args.next(), args.next()) else {
        eprintln!("usage: cargo run --example gen-assets -- OUTDIR");
        return ExitCode::from(64);
    };
    match generate(Path::new(&out)) {
        Ok(files) => {
            for f in files {
                println!("{}", f.display());
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("gen-assets: {e}");
            ExitCode::from(73)
        }
    }
}

fn generate(out: &Path) -> Result<Vec<PathBuf>, String> {
    fs::create_dir_all(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let date = source_date();
    let mut written = Vec::new();
    for p in programs() {
        let name = p.cmd.get_name().to_string();

        let page = out.join(format!("{name}.{}", p.section));
        let roff = man_page(&p, &date).map_err(|e| format!("{name}: {e}"))?;
        write(&page, &roff)?;
        written.push(page);

        for (shell, file) in [
            (Shell::Bash, format!("{name}.bash")),
            (Shell::Zsh, format!("_{name}")),
            (Shell::Fish, format!("{name}.fish")),
        ] {
            let mut buf = Vec::new();
            let mut cmd = p.cmd.clone();
            clap_complete::generate(shell, &mut cmd, &name, &mut buf);
            let path = out.join(file);
            write(&path, &buf)?;
            written.push(path);
        }
    }
    Ok(written)
}

fn man_page(p: &Program, date: &str) -> std::io::Result<Vec<u8>> {
    let name = p.cmd.get_name().to_string();
    let version = p.cmd.get_version().unwrap_or_default().to_string();
    let cmd = p.cmd.clone().long_about(p.description);
    let man = clap_mangen::Man::new(cmd)
        .title(name.to_uppercase())
        .section(p.section)
        .date(date)
        .source(format!("knockd-rs {version}"))
        .manual(if p.section == "8" {
            "System Administration"
        } else {
            "User Commands"
        });
    // Section by section, so the hand-written part lands after OPTIONS and
    // clap_mangen's bare VERSION section is left out.
    let mut buf = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    man.render_synopsis_section(&mut buf)?;
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    buf.write_all(p.tail.as_bytes())?;
    Ok(buf)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), String> {
    fs::write(path, bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// `SOURCE_DATE_EPOCH` as `YYYY-MM-DD` (UTC), the reproducible-builds
/// convention; empty when unset or not a number.
fn source_date() -> String {
    std::env::var("SOURCE_DATE_EPOCH")
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .map(|secs| {
            let (y, m, d) = civil_from_days(secs.div_euclid(86_400));
            format!("{y:04}-{m:02}-{d:02}")
        })
        .unwrap_or_default()
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's
/// `civil_from_days`), to avoid a date crate for one footer.
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates() {
        assert_eq!(civil_from_days(0), (1970, 1, 1));
        assert_eq!(civil_from_days(11_016), (2000, 2, 29));
        assert_eq!(civil_from_days(19_723), (2024, 1, 1));
        assert_eq!(civil_from_days(-1), (1969, 12, 31));
    }
}
