//! The `knockd` command line: knockd 0.8's flags, plus long-only extensions.
//!
//! This module owns the flag names, their help text, the exit codes the
//! binary uses and how a flag and a config option combine. It must not read
//! files, print, or exit: the binary decides what to do with a parse result,
//! so every path stays testable.
//!
//! Every short flag is knockd's own. Extensions (`--check`) are long-only, so
//! an admin's existing `KNOCKD_OPTS` never means something new.

use std::ffi::OsString;
use std::path::PathBuf;

use clap::{ArgAction, Parser};

use crate::core::config::{LogFormat, Options, DEFAULT_PID_FILE};

/// Config path when `-c` is not given, as knockd.
pub const DEFAULT_CONFIG: &str = "/etc/knockd.conf";
/// Interface when neither `-i` nor `Interface` names one, as knockd (the
/// live daemon takes the default route's when it does not exist:
/// [`crate::core::iface`]).
pub const DEFAULT_INTERFACE: &str = "eth0";

pub use crate::core::sysexits::{
    EX_CANTCREAT, EX_CONFIG, EX_NOINPUT, EX_OSERR, EX_TEMPFAIL, EX_UNAVAILABLE, EX_USAGE,
};

/// knockd's options. Field names follow the long flags.
#[derive(Debug, Clone, PartialEq, Eq, Parser)]
#[command(
    name = "knockd",
    version,
    about = "port-knock server",
    long_about = None,
    disable_help_flag = true,
    disable_version_flag = true
)]
pub struct Cli {
    /// network interface to listen on; repeatable (default: "eth0", or if
    /// there is none, the default route's interface, followed when the
    /// route moves; `--check` says which)
    #[arg(short = 'i', long = "interface", value_name = "IF", value_parser = interface_name)]
    pub interfaces: Vec<String>,

    /// use an alternate config file
    #[arg(short, long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
    pub config: PathBuf,

    /// run as a daemon
    #[arg(short = 'd', long)]
    pub daemon: bool,

    /// output debug messages
    #[arg(short = 'D', long)]
    pub debug: bool,

    /// be verbose
    #[arg(short, long)]
    pub verbose: bool,

    /// lookup DNS names (may be a security risk)
    #[arg(short, long)]
    pub lookup: bool,

    /// use an alternate pidfile
    #[arg(short, long, value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// use an alternate logfile
    #[arg(short = 'g', long, value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// log lines as text (knockd's) or json (one object per line, with
    /// fields); wins over LogFormat
    #[arg(long, value_name = "FORMAT", value_parser = log_format)]
    pub log_format: Option<LogFormat>,

    /// do not track ipv6
    #[arg(short = '4', long = "only-ip-v4")]
    pub only_ip_v4: bool,

    /// check the config file, list its doors and exit
    #[arg(long)]
    pub check: bool,

    /// list the doors open now (from the state file) and exit
    #[arg(long, conflicts_with_all = ["check", "daemon"])]
    pub status: bool,

    /// replay a capture file (pcap or pcapng) through the doors, then exit;
    /// as root, without --run-commands, it gives up root (to the user
    /// knockd, else nobody) before reading a packet
    #[arg(long, value_name = "FILE", conflicts_with_all = ["check", "daemon"])]
    pub read: Option<PathBuf>,

    /// with --read: print the commands instead of running them (the
    /// default; kept so existing scripts work)
    #[arg(long, requires = "read", conflicts_with = "run_commands")]
    pub dry_run: bool,

    /// with --read: really run the doors' commands (as root: they change
    /// the firewall) and mark used one-time sequences
    #[arg(long, requires = "read")]
    pub run_commands: bool,

    /// with --read: a destination address that counts as ours; repeatable
    /// (default: every destination)
    #[arg(long, value_name = "ADDR", requires = "read")]
    pub local_addr: Vec<std::net::IpAddr>,

    /// write a new key for user NAME at the door named by --door (a door
    /// with Sequence_Secret_Dir): DIR/NAME.key, mode 0600, never over
    /// another; print the user's knock command line and doors-file entry
    #[arg(long, value_name = "NAME", requires = "door",
          conflicts_with_all = ["check", "daemon", "status", "read", "list_users"])]
    pub add_user: Option<String>,

    /// with --add-user: the door's name in the config
    #[arg(long, value_name = "DOOR", requires = "add_user")]
    pub door: Option<String>,

    /// list the users of DOOR (a door with Sequence_Secret_Dir) and when
    /// each last opened (from the state file)
    #[arg(long, value_name = "DOOR", conflicts_with_all = ["check", "daemon", "status", "read"])]
    pub list_users: Option<String>,

    /// display version
    #[arg(short = 'V', long, action = ArgAction::Version)]
    version: (),

    /// this help
    #[arg(short = 'h', long, action = ArgAction::Help)]
    help: (),
}

/// Parses `args` (program name first). `--help` and `--version` come back as
/// errors of kind `DisplayHelp`/`DisplayVersion`, which clap prints to stdout;
/// the caller maps every other error to [`EX_USAGE`].
pub fn parse_args<I, T>(args: I) -> Result<Cli, clap::Error>
where
    I: IntoIterator<Item = T>,
    T: Into<OsString> + Clone,
{
    Cli::try_parse_from(args)
}

/// `--log-format`: `text` or `json`.
fn log_format(s: &str) -> Result<LogFormat, String> {
    LogFormat::parse(s).ok_or_else(|| format!("\"{s}\" is not a log format (text or json)"))
}

/// `-i ""` would later fail as "no such device"; say so where it is typed.
fn interface_name(s: &str) -> Result<String, String> {
    if s.trim().is_empty() {
        Err("interface name is empty".into())
    } else {
        Ok(s.to_string())
    }
}

impl Cli {
    /// Interfaces as named: `-i` wins over the config's `Interface`, which
    /// wins over knockd's default `eth0`. Only the live daemon looks
    /// further ([`crate::core::iface`]); this is for what captures nothing.
    pub fn interfaces(&self, options: &Options) -> Vec<String> {
        if !self.interfaces.is_empty() {
            self.interfaces.clone()
        } else if !options.interfaces.is_empty() {
            options.interfaces.clone()
        } else {
            vec![DEFAULT_INTERFACE.to_string()]
        }
    }

    /// The pid file: `-p`, then `PidFile`, then knockd's default.
    ///
    /// knockd 0.8 lets `PidFile` override `-p` (it reads the config after the
    /// flags); here the command line wins, as it does for `-i`.
    pub fn pid_file(&self, options: &Options) -> PathBuf {
        self.pidfile
            .clone()
            .or_else(|| options.pid_file.clone())
            .unwrap_or_else(|| PathBuf::from(DEFAULT_PID_FILE))
    }

    /// The log file, if any: `-g`, then `LogFile` (command line wins, as for
    /// [`Cli::pid_file`]).
    pub fn log_file(&self, options: &Options) -> Option<PathBuf> {
        self.logfile.clone().or_else(|| options.log_file.clone())
    }

    /// The log format: `--log-format`, then `LogFormat`, then text.
    pub fn log_format(&self, options: &Options) -> LogFormat {
        self.log_format.unwrap_or(options.log_format)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> Cli {
        let mut all = vec!["knockd"];
        all.extend_from_slice(args);
        match parse_args(all) {
            Ok(cli) => cli,
            Err(e) => panic!("{args:?}: {e}"),
        }
    }

    fn error_kind(args: &[&str]) -> ErrorKind {
        let mut all = vec!["knockd"];
        all.extend_from_slice(args);
        match parse_args(all) {
            Ok(cli) => panic!("{args:?} parsed: {cli:?}"),
            Err(e) => e.kind(),
        }
    }

    #[test]
    fn clap_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }

    #[test]
    fn defaults_are_knockds() {
        let cli = parse(&[]);
        assert_eq!(cli.interfaces, Vec::<String>::new());
        assert_eq!(cli.config, PathBuf::from("/etc/knockd.conf"));
        assert!(!cli.daemon && !cli.debug && !cli.verbose && !cli.lookup);
        assert!(!cli.only_ip_v4 && !cli.check);
        assert_eq!(cli.pidfile, None);
        assert_eq!(cli.logfile, None);
    }

    #[test]
    fn interface_short_long_and_repeated() {
        assert_eq!(parse(&["-i", "lo"]).interfaces, ["lo"]);
        assert_eq!(parse(&["--interface", "eth1"]).interfaces, ["eth1"]);
        assert_eq!(parse(&["--interface=eth1"]).interfaces, ["eth1"]);
        assert_eq!(parse(&["-ilo"]).interfaces, ["lo"]);
        assert_eq!(
            parse(&["-i", "lo", "--interface", "eth0"]).interfaces,
            ["lo", "eth0"]
        );
        assert_eq!(error_kind(&["-i", ""]), ErrorKind::ValueValidation);
        assert_eq!(error_kind(&["-i"]), ErrorKind::InvalidValue);
    }

    #[test]
    fn config_short_and_long() {
        assert_eq!(parse(&["-c", "a.conf"]).config, PathBuf::from("a.conf"));
        assert_eq!(
            parse(&["--config", "/x/b.conf"]).config,
            PathBuf::from("/x/b.conf")
        );
    }

    #[test]
    fn daemon_short_and_long() {
        assert!(parse(&["-d"]).daemon);
        assert!(parse(&["--daemon"]).daemon);
        assert!(!parse(&["-d"]).debug, "-d is daemon, not debug");
    }

    #[test]
    fn debug_short_and_long() {
        assert!(parse(&["-D"]).debug);
        assert!(parse(&["--debug"]).debug);
        assert!(!parse(&["-D"]).daemon, "-D is debug, not daemon");
    }

    #[test]
    fn verbose_short_and_long() {
        assert!(parse(&["-v"]).verbose);
        assert!(parse(&["--verbose"]).verbose);
    }

    #[test]
    fn lookup_short_and_long() {
        assert!(parse(&["-l"]).lookup);
        assert!(parse(&["--lookup"]).lookup);
    }

    #[test]
    fn pidfile_short_and_long() {
        assert_eq!(
            parse(&["-p", "/run/k.pid"]).pidfile,
            Some("/run/k.pid".into())
        );
        assert_eq!(
            parse(&["--pidfile", "/run/k.pid"]).pidfile,
            Some("/run/k.pid".into())
        );
    }

    #[test]
    fn logfile_short_and_long() {
        assert_eq!(
            parse(&["-g", "/tmp/k.log"]).logfile,
            Some("/tmp/k.log".into())
        );
        assert_eq!(
            parse(&["--logfile", "/tmp/k.log"]).logfile,
            Some("/tmp/k.log".into())
        );
    }

    #[test]
    fn only_ip_v4_short_and_long() {
        assert!(parse(&["-4"]).only_ip_v4);
        assert!(parse(&["--only-ip-v4"]).only_ip_v4);
    }

    #[test]
    fn check_is_long_only() {
        assert!(parse(&["--check"]).check);
        assert_eq!(error_kind(&["-C"]), ErrorKind::UnknownArgument);
    }

    #[test]
    fn bundled_short_flags_as_getopt() {
        let cli = parse(&["-vDl4", "-c", "k.conf"]);
        assert!(cli.verbose && cli.debug && cli.lookup && cli.only_ip_v4);
        assert!(!cli.daemon);
        assert_eq!(cli.config, PathBuf::from("k.conf"));
    }

    #[test]
    fn version_and_help_are_displays() {
        assert_eq!(error_kind(&["-V"]), ErrorKind::DisplayVersion);
        assert_eq!(error_kind(&["--version"]), ErrorKind::DisplayVersion);
        assert_eq!(error_kind(&["-h"]), ErrorKind::DisplayHelp);
        assert_eq!(error_kind(&["--help"]), ErrorKind::DisplayHelp);
    }

    #[test]
    fn version_text_is_knockd_and_crate_version() {
        let Err(e) = parse_args(["knockd", "-V"]) else {
            panic!("-V parsed");
        };
        assert_eq!(
            e.to_string(),
            format!("knockd {}\n", env!("CARGO_PKG_VERSION"))
        );
    }

    #[test]
    fn help_lists_every_flag() {
        let Err(e) = parse_args(["knockd", "-h"]) else {
            panic!("-h parsed");
        };
        let help = e.to_string();
        for flag in [
            "-i, --interface <IF>",
            "-c, --config <FILE>",
            "-d, --daemon",
            "-D, --debug",
            "-v, --verbose",
            "-l, --lookup",
            "-p, --pidfile <FILE>",
            "-g, --logfile <FILE>",
            "-4, --only-ip-v4",
            "--log-format <FORMAT>",
            "--check",
            "-V, --version",
            "-h, --help",
        ] {
            assert!(help.contains(flag), "{flag} missing from:\n{help}");
        }
    }

    #[test]
    fn unknown_flags_and_arguments_are_errors() {
        assert_eq!(error_kind(&["--bogus"]), ErrorKind::UnknownArgument);
        assert_eq!(error_kind(&["-x"]), ErrorKind::UnknownArgument);
        assert_eq!(error_kind(&["extra"]), ErrorKind::UnknownArgument);
        assert_eq!(error_kind(&["-c"]), ErrorKind::InvalidValue);
    }

    #[test]
    fn command_line_wins_over_config_over_default() {
        let mut options = Options::default();
        let plain = parse(&[]);
        assert_eq!(plain.interfaces(&options), ["eth0"]);
        assert_eq!(
            plain.pid_file(&options),
            PathBuf::from("/var/run/knockd.pid")
        );
        assert_eq!(plain.log_file(&options), None);

        options.interfaces = vec!["lo".into(), "eth1".into()];
        options.pid_file = Some("/run/conf.pid".into());
        options.log_file = Some("/var/log/conf.log".into());
        assert_eq!(plain.interfaces(&options), ["lo", "eth1"]);
        assert_eq!(plain.pid_file(&options), PathBuf::from("/run/conf.pid"));
        assert_eq!(plain.log_file(&options), Some("/var/log/conf.log".into()));

        let flags = parse(&["-i", "wlan0", "-p", "/run/cli.pid", "-g", "/tmp/cli.log"]);
        assert_eq!(flags.interfaces(&options), ["wlan0"]);
        assert_eq!(flags.pid_file(&options), PathBuf::from("/run/cli.pid"));
        assert_eq!(flags.log_file(&options), Some("/tmp/cli.log".into()));
    }

    #[test]
    fn log_format_flag_wins_over_log_format_option() {
        let mut options = Options::default();
        assert_eq!(parse(&[]).log_format(&options), LogFormat::Text);
        options.log_format = LogFormat::Json;
        assert_eq!(parse(&[]).log_format(&options), LogFormat::Json);
        let text = parse(&["--log-format", "text"]);
        assert_eq!(text.log_format(&options), LogFormat::Text);
        options.log_format = LogFormat::Text;
        let json = parse(&["--log-format=json"]);
        assert_eq!(json.log_format(&options), LogFormat::Json);
        let Err(e) = parse_args(["knockd", "--log-format", "xml"]) else {
            panic!("xml parsed");
        };
        assert!(
            e.to_string()
                .contains("\"xml\" is not a log format (text or json)"),
            "{e}"
        );
    }
}
