//! SIGHUP: what a reload takes at once, what it reports only a restart can
//! change, and what it keeps (pending stops, used one-time lines).

use super::caps::Caps;
use super::{Effect, Mode, Notice, Phase, Readiness, Service};
use crate::core::config::{Config, Diagnostics, Parsed, Warning};
use crate::core::knock::Timestamp;

impl Service {
    /// SIGHUP: the config as read again (its one-time files resolved), or
    /// what is wrong with it. A broken config is reported and the running
    /// one kept (knockd 0.8 exits, locking admins out over a typo); the log
    /// file is reopened either way (logrotate).
    pub fn handle_reload(&mut self, result: Result<Parsed, Diagnostics>, now: Timestamp) {
        self.advance(now);
        if self.phase != Phase::Serving {
            return;
        }
        self.push(Effect::Readiness(Readiness::Reloading));
        self.log(Notice::Rereading {
            path: self.settings.config_path.clone(),
        });
        self.reloading = true;
        match result {
            Ok((config, warnings)) => self.reload(&config, warnings),
            Err(diag) => {
                let errors = diag.errors.len();
                for e in diag.errors {
                    self.log(Notice::ConfigError(e));
                }
                self.log(Notice::KeepingConfig {
                    path: self.settings.config_path.clone(),
                    errors,
                });
                self.push(Effect::ReopenLog);
            }
        }
        self.flush();
    }

    fn reload(&mut self, config: &Config, warnings: Vec<Warning>) {
        for w in warnings {
            self.log(Notice::Warning(w));
        }
        let s = &self.settings;
        let log_file = if s.log_file_from_cli {
            s.log_file.clone()
        } else {
            config.options.log_file.clone()
        };
        // Only a restart can move the journal or the captures: say so.
        let state = config.options.state_file_path();
        let state_moved =
            (s.mode == Mode::Live && state != s.state_file).then(|| Notice::StateFileChanged {
                state,
                path: s.config_path.clone(),
            });
        let wanted = &config.options.interfaces;
        let moved = !s.interfaces_from_cli && !wanted.is_empty() && *wanted != s.interfaces;
        let interfaces_moved = moved.then(|| Notice::InterfaceChanged {
            wanted: wanted.clone(),
            path: s.config_path.clone(),
            current: s.interfaces.clone(),
        });
        self.push(Effect::SetLogFile(log_file));
        for notice in state_moved.into_iter().chain(interfaces_moved) {
            self.log(notice);
        }
        let o = &config.options;
        let map = self.engine.reload(config);
        self.commands.remap(&map);
        self.commands.set_max(o.max_commands);
        self.limiter.set_rates(o.log_rate, o.max_log_lines);
        self.set_lines.set_rates(o.log_rate, o.max_log_lines);
        // Door numbers changed: the per-door counts start over. The
        // record of our set elements is by set, not door: it stays, or a
        // full set would have nothing to make room with after logrotate's
        // SIGHUP.
        let room = std::mem::take(&mut self.caps.room);
        self.caps = Caps::new(o.max_opens_per_minute, o.max_pending_stops);
        self.caps.room = room;
        self.push(Effect::SetSyslog(o.use_syslog));
        if !self.settings.log_format_from_cli && o.log_format != self.settings.log_format {
            self.settings.log_format = o.log_format;
            self.push(Effect::SetLogFormat(o.log_format));
        }
        self.onetime = self.onetime.reloaded(config);
        self.rotating.configure(config);
        let now = self.now;
        self.rotate(now);
        // A sequence used before the reload but not marked in its file (the
        // write failed, or a dry run) must not open the door a second time.
        for (door, path, line) in self.onetime.take_burned() {
            self.engine.set_sequence(door, None);
            self.log(Notice::OneTimeBurned { path, line });
        }
        self.filter_stale = true;
        self.fill_slots();
    }
}
