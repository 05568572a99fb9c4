//! What the command line and the config decided for this run.

use std::net::IpAddr;
use std::path::PathBuf;

use crate::core::config::LogFormat;
use crate::core::iface::Choice;
use crate::core::service::{self, Mode};

/// The run's settings, for the shell and (via [`Settings::service`]) the
/// service.
#[derive(Debug, Clone)]
pub struct Settings {
    pub config_path: PathBuf,
    /// Which interfaces to capture on, and why ([`crate::core::iface`]).
    pub choice: Choice,
    /// The choice's interfaces.
    pub interfaces: Vec<String>,
    /// Whether `-i` chose the interfaces (a reloaded `Interface` then does
    /// not matter).
    pub interfaces_from_cli: bool,
    /// `-g`, else the config's `LogFile`.
    pub log_file: Option<PathBuf>,
    /// Whether `-g` chose the log file (a reload then keeps it).
    pub log_file_from_cli: bool,
    /// `--log-format`, else the config's `LogFormat`.
    pub log_format: LogFormat,
    /// Whether `--log-format` chose it (a reload then keeps it).
    pub log_format_from_cli: bool,
    pub only_v4: bool,
    pub debug: bool,
    pub verbose: bool,
    /// Print would-be commands instead of running them.
    pub dry_run: bool,
    /// `-l`: add knockers' host names to log lines.
    pub lookup: bool,
    /// Replay: destination addresses that count as ours (empty: any).
    pub local_addrs: Vec<IpAddr>,
}

impl Settings {
    /// The service's part of the settings, for a run in `mode` journaling
    /// to `state_file`.
    pub fn service(&self, mode: Mode, state_file: PathBuf, wall_offset: i128) -> service::Settings {
        service::Settings {
            mode,
            dry_run: self.dry_run,
            only_v4: self.only_v4,
            config_path: self.config_path.clone(),
            interfaces: self.interfaces.clone(),
            interfaces_from_cli: self.interfaces_from_cli,
            log_file: self.log_file.clone(),
            log_file_from_cli: self.log_file_from_cli,
            log_format: self.log_format,
            log_format_from_cli: self.log_format_from_cli,
            state_file,
            wall_offset,
        }
    }
}
