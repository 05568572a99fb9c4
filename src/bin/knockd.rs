//! `knockd`: command line in, exit status out.
//!
//! This file owns what the user sees before the daemon proper starts: usage
//! errors, config diagnostics, `--check` output, and the exit code of each
//! outcome (sysexits: 64 usage, 69 unavailable, 78 config). It must not
//! panic on any input; every failure is a one-line message and a code.

use std::fmt::Display;
use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use clap::error::ErrorKind;
use knockd::core::config::{self, Config, LogFormat, Warning};
use knockd::core::iface::{self, Choice};
use knockd::daemon::cli::{
    self, Cli, EX_CANTCREAT, EX_CONFIG, EX_NOINPUT, EX_OSERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE,
};
use knockd::daemon::config_file;
use knockd::daemon::pidfile::PidFile;
use knockd::daemon::routes;
use knockd::daemon::run::{Daemon, DaemonError};
use knockd::daemon::settings::Settings;

fn main() -> ExitCode {
    run(std::env::args_os())
}

/// What this invocation is for, decided from the flags alone.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// `--check`: validate the config, list its doors, exit.
    Check,
    /// Capture knocks and run commands (foreground or `-d`).
    Serve,
    /// `--read`: replay a capture file through the doors.
    Replay,
    /// `--status`: the doors open now.
    Status,
    /// `--add-user NAME --door DOOR`: a new user's key.
    AddUser,
    /// `--list-users DOOR`: a door's users and when each last opened.
    ListUsers,
}

impl Mode {
    fn of(cli: &Cli) -> Mode {
        if cli.check {
            Mode::Check
        } else if cli.status {
            Mode::Status
        } else if cli.add_user.is_some() {
            Mode::AddUser
        } else if cli.list_users.is_some() {
            Mode::ListUsers
        } else if cli.read.is_some() {
            Mode::Replay
        } else {
            Mode::Serve
        }
    }
}

fn run(args: impl IntoIterator<Item = std::ffi::OsString>) -> ExitCode {
    let cli = match cli::parse_args(args) {
        Ok(cli) => cli,
        Err(e) => return clap_exit(&e),
    };
    let mode = Mode::of(&cli);
    let Some((config, warnings)) = load_config(&cli.config) else {
        if mode == Mode::Serve {
            // Doors an earlier run left open still close on time.
            let options = config_file::options_despite_errors(&cli.config);
            let reason = format!("{} has errors", cli.config.display());
            recover(&cli, &options, &reason);
        }
        return ExitCode::from(EX_CONFIG);
    };
    match mode {
        Mode::Check => check(&cli, &config, warnings.len()),
        Mode::Status => status(&config),
        Mode::AddUser => add_user(&cli, &config),
        Mode::ListUsers => list_users(&cli, &config),
        Mode::Serve => serve(&cli, config),
        Mode::Replay => replay(&cli, &config),
    }
}

/// Help and version go to stdout with status 0; anything else is a usage
/// error: clap's short message on stderr and `EX_USAGE`.
fn clap_exit(e: &clap::Error) -> ExitCode {
    // clap picks the stream by kind; a closed stream is not worth a panic.
    let _ = e.print();
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayVersion => ExitCode::SUCCESS,
        _ => ExitCode::from(EX_USAGE),
    }
}

/// Reads the config at `path`, printing warnings and errors to stderr, one
/// line each. `None` when the daemon must not start.
fn load_config(path: &Path) -> Option<(Config, Vec<Warning>)> {
    let mut warnings = config_file::permission_warnings(path);
    match config_file::load(path) {
        Ok((config, parse_warnings)) => {
            warnings.extend(parse_warnings);
            for w in &warnings {
                eprint_line(w);
            }
            Some((config, warnings))
        }
        Err(diag) => {
            warnings.extend(diag.warnings);
            for w in &warnings {
                eprint_line(w);
            }
            for e in &diag.errors {
                eprint_line(e);
            }
            let n = diag.errors.len();
            eprint_line(format_args!(
                "knockd: {}: {n} {}; not starting",
                path.display(),
                plural(n, "error", "errors")
            ));
            None
        }
    }
}

/// `--check`: one summary line per door on stdout, then a verdict line.
fn check(cli: &Cli, config: &Config, warnings: usize) -> ExitCode {
    for door in &config.doors {
        print_line(door.summary());
    }
    let choice = routes::choose(&cli.interfaces, &config.options.interfaces);
    print_line(format_args!("interface: {choice}"));
    let n = config.doors.len();
    let mut verdict = format!(
        "{}: {n} {} OK",
        cli.config.display(),
        plural(n, "door", "doors")
    );
    if warnings > 0 {
        verdict.push_str(&format!(
            ", {warnings} {}",
            plural(warnings, "warning", "warnings")
        ));
    }
    print_line(verdict);
    ExitCode::SUCCESS
}

/// The interfaces as named (`-i`, `Interface`, else `eth0`), without
/// looking at the system: for what captures nothing (replay, recovery).
fn named(cli: &Cli, config: &Config) -> Choice {
    let assume_eth0 = iface::System {
        eth0_exists: true,
        ..iface::System::default()
    };
    iface::choose(&cli.interfaces, &config.options.interfaces, &assume_eth0)
}

fn settings(cli: &Cli, config: &Config, choice: Choice) -> Settings {
    Settings {
        config_path: cli.config.clone(),
        interfaces: choice.interfaces(),
        choice,
        interfaces_from_cli: !cli.interfaces.is_empty(),
        log_file: cli.log_file(&config.options),
        log_file_from_cli: cli.logfile.is_some(),
        log_format: cli.log_format(&config.options),
        log_format_from_cli: cli.log_format.is_some(),
        only_v4: cli.only_ip_v4,
        debug: cli.debug,
        verbose: cli.verbose,
        // `--read` is dry unless `--run-commands` says otherwise; the live
        // daemon always runs them.
        dry_run: cli.read.is_some() && !cli.run_commands,
        lookup: cli.lookup,
        local_addrs: cli.local_addr.clone(),
    }
}

/// Diagnostics for developers go to stderr through `tracing`: warnings by
/// default, debug with `-D`, or whatever `RUST_LOG` says (`target=level`
/// directives, comma-separated, a bare level for every target; an unset or
/// unparsable `RUST_LOG` means the default). `filter::Targets` parses that
/// much without the regex engine `EnvFilter` would bring for span and
/// field filters no one here needs.
fn init_tracing(debug: bool) {
    use tracing_subscriber::filter::{LevelFilter, Targets};
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| v.parse::<Targets>().ok())
        .unwrap_or_else(|| match debug {
            true => Targets::new().with_target("knockd", LevelFilter::DEBUG),
            false => Targets::new().with_default(LevelFilter::WARN),
        });
    use std::io::IsTerminal;
    let fmt = tracing_subscriber::fmt::layer()
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = tracing_subscriber::registry()
        .with(fmt)
        .with(filter)
        .try_init();
}

/// Capture and act on knocks until SIGTERM/SIGINT: in the foreground
/// (telling systemd when ready), or with `-d` detached, the command
/// returning only once the daemon is capturing.
fn serve(cli: &Cli, config: Config) -> ExitCode {
    init_tracing(cli.debug);
    let choice = routes::choose(&cli.interfaces, &config.options.interfaces);
    let mut settings = settings(cli, &config, choice);
    // SIGHUP re-reads the config after `-d` has moved to `/`.
    if let Ok(abs) = std::path::absolute(&settings.config_path) {
        settings.config_path = abs;
    }
    let options = config.options.clone();
    if !cli.daemon {
        return match Daemon::start(&settings, config) {
            Ok(daemon) => {
                ready();
                finish(daemon.run())
            }
            Err(e) => {
                recover(cli, &options, &e.to_string());
                fail(&e)
            }
        };
    }
    let pid_path = std::path::absolute(cli.pid_file(&config.options))
        .unwrap_or_else(|_| cli.pid_file(&config.options));
    let readiness = match knockd::daemon::detach::detach() {
        Ok(r) => r,
        Err(e) => {
            eprint_line(format_args!("knockd: cannot detach: {e}"));
            return ExitCode::from(EX_OSERR);
        }
    };
    // From here on this is the detached child; errors go to the parent.
    let pid_file = match PidFile::create(&pid_path) {
        Ok(p) => p,
        Err(e) => {
            let code = match e {
                knockd::daemon::pidfile::PidFileError::Running { .. } => EX_TEMPFAIL,
                knockd::daemon::pidfile::PidFileError::Io(_) => EX_CANTCREAT,
            };
            readiness.fail(code, &format!("knockd: {e}"));
            return ExitCode::from(code);
        }
    };
    let daemon = match Daemon::start(&settings, config) {
        Ok(d) => d,
        Err(e) => {
            recover(cli, &options, &e.to_string());
            let code = exit_code(&e);
            readiness.fail(code, &format!("knockd: {e}"));
            return ExitCode::from(code);
        }
    };
    if let Err(e) = readiness.ready() {
        tracing::warn!(%e, "detaching from the terminal failed");
    }
    ready();
    let code = finish(daemon.run());
    drop(pid_file);
    code
}

/// The daemon cannot start (`reason`): the journaled stops that are due
/// run first, the rest stay journaled (see `knockd::daemon::recover`).
fn recover(cli: &Cli, options: &knockd::core::config::Options, reason: &str) {
    let config = Config {
        options: options.clone(),
        doors: Vec::new(),
    };
    let settings = settings(cli, &config, named(cli, &config));
    knockd::daemon::recover::run_due_stops(&settings, options, reason);
}

/// The state file as `--status` and `--list-users` show it (none yet:
/// empty), or the exit code after a one-line error.
fn read_state_file(config: &Config) -> Result<knockd::daemon::journal::Contents, ExitCode> {
    let path = config.options.state_file_path();
    match knockd::daemon::journal::read(&path) {
        Ok(contents) => Ok(contents),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            Ok(knockd::daemon::journal::Contents::default())
        }
        Err(e) => {
            eprint_line(format_args!(
                "knockd: cannot read state file {}: {}",
                path.display(),
                config::io_reason(&e)
            ));
            Err(ExitCode::from(EX_NOINPUT))
        }
    }
}

/// `--status`: the open doors as the journal of pending stop commands has
/// them — door, knocker, and when the door closes.
fn status(config: &Config) -> ExitCode {
    let entries = match read_state_file(config) {
        Ok(contents) => contents.stops,
        Err(code) => return code,
    };
    if entries.is_empty() {
        print_line("no open doors");
        return ExitCode::SUCCESS;
    }
    let now = std::time::SystemTime::now();
    for e in entries {
        let left = match e.due.duration_since(now) {
            Ok(d) => format!("closes in {}s", d.as_secs()),
            Err(_) => "overdue (closes when knockd next runs)".to_string(),
        };
        let (y, mo, d, h, mi, s) = knockd::daemon::clock::local_time(e.due);
        print_line(format_args!(
            "{}\t{}\t{left}, at {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}\t{}",
            e.door, e.src, e.command
        ));
    }
    ExitCode::SUCCESS
}

/// `--add-user NAME --door DOOR`: writes the user's key file and prints
/// what the user needs (the `knock` line and a doors-file entry, naming
/// this host: replace it with the name the user reaches it by).
fn add_user(cli: &Cli, config: &Config) -> ExitCode {
    use knockd::daemon::users;
    let (Some(name), Some(door)) = (&cli.add_user, &cli.door) else {
        return ExitCode::from(EX_USAGE);
    };
    let door = match users::find(config, door) {
        Ok(d) => d,
        Err(e) => {
            eprint_line(format_args!("knockd: {}: {e}", cli.config.display()));
            return ExitCode::from(EX_USAGE);
        }
    };
    let path = match users::add_user(&door, name) {
        Ok(p) => p,
        Err(e) => {
            eprint_line(format_args!("knockd: {e}"));
            return ExitCode::from(EX_CANTCREAT);
        }
    };
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "HOST".into());
    eprint_line(format_args!(
        "knockd: wrote {} (mode 0600): give it to {name} privately; \
         SIGHUP knockd to admit {name} (remove the file and SIGHUP to revoke)",
        path.display()
    ));
    print!("{}", users::instructions(&door, name, &host));
    ExitCode::SUCCESS
}

/// `--list-users DOOR`: one line per user, with when they last opened as
/// the state file's used marks say (marks are kept about a day).
fn list_users(cli: &Cli, config: &Config) -> ExitCode {
    use knockd::daemon::users;
    let Some(door) = &cli.list_users else {
        return ExitCode::from(EX_USAGE);
    };
    let door = match users::find(config, door) {
        Ok(d) => d,
        Err(e) => {
            eprint_line(format_args!("knockd: {}: {e}", cli.config.display()));
            return ExitCode::from(EX_USAGE);
        }
    };
    let marks = match read_state_file(config) {
        Ok(contents) => contents.used,
        Err(code) => return code,
    };
    if door.users.is_empty() {
        print_line(format_args!("no users in {}", door.dir.display()));
    }
    for (name, last) in users::last_opened(&door, &marks) {
        match last {
            Some(t) => {
                let (y, mo, d, h, mi, s) = knockd::daemon::clock::local_time(t);
                print_line(format_args!(
                    "{name}\tlast opened in the period from {y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}"
                ));
            }
            None => print_line(format_args!("{name}\tnot opened in the last day")),
        }
    }
    ExitCode::SUCCESS
}

/// Tells systemd the daemon is capturing.
fn ready() {
    knockd::daemon::notify::notify(&format!("READY=1\nMAINPID={}", std::process::id()));
}

fn finish(result: Result<(), DaemonError>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e),
    }
}

/// `--read FILE`: the doors' decisions for a recorded capture.
fn replay(cli: &Cli, config: &Config) -> ExitCode {
    init_tracing(cli.debug);
    let Some(path) = &cli.read else {
        return ExitCode::from(EX_USAGE);
    };
    let settings = settings(cli, config, named(cli, config));
    match knockd::daemon::replay::replay(&settings, config, path) {
        Ok(s) => {
            let summary = format!(
                "{}: {} frames, {} knocks, {} doors opened",
                path.display(),
                s.frames,
                s.knocks,
                s.opened
            );
            // In JSON, stdout holds the log's objects only (for jq and
            // friends); the summary, not a log line, goes to stderr.
            match cli.log_format(&config.options) {
                LogFormat::Text => print_line(summary),
                LogFormat::Json => eprint_line(summary),
            }
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// One line on stderr and the sysexits code for the kind of failure.
fn fail(e: &DaemonError) -> ExitCode {
    eprint_line(format_args!("knockd: {e}"));
    ExitCode::from(exit_code(e))
}

/// The sysexits code for a kind of failure.
fn exit_code(e: &DaemonError) -> u8 {
    match e {
        DaemonError::Capture(knockd::daemon::capture::CaptureError::OpenFile { .. }) => EX_NOINPUT,
        DaemonError::Capture(_) => EX_UNAVAILABLE,
        DaemonError::Log(_) => EX_CANTCREAT,
        DaemonError::Journal(knockd::daemon::journal::JournalError::Io(_)) => EX_CANTCREAT,
        DaemonError::Journal(knockd::daemon::journal::JournalError::Locked { .. }) => EX_TEMPFAIL,
        DaemonError::Journal(knockd::daemon::journal::JournalError::Untrusted { .. }) => EX_CONFIG,
        DaemonError::NftSets { .. } => EX_CONFIG,
        DaemonError::DropRoot(_) => EX_OSERR,
        DaemonError::Addresses { .. } | DaemonError::Signals(_) | DaemonError::Poll(_) => EX_OSERR,
    }
}

fn plural(n: usize, one: &'static str, many: &'static str) -> &'static str {
    if n == 1 {
        one
    } else {
        many
    }
}

/// A line on stdout; a closed pipe (`knockd --check | head -1`) is not an
/// error worth a panic.
fn print_line(line: impl Display) {
    let _ = writeln!(std::io::stdout().lock(), "{line}");
}

/// A line on stderr, never panicking.
fn eprint_line(line: impl Display) {
    let _ = writeln!(std::io::stderr().lock(), "{line}");
}
