//! `--read`: a capture file through the same service and effects as the
//! live daemon, with the capture's own timestamps as time, so the output is
//! what the live daemon would have logged.

use std::collections::{HashMap, VecDeque};
use std::path::Path;
use std::time::{Duration, Instant};

use super::capture::{CaptureError, FileCapture};
use super::clock::TimeBase;
use super::effects::{Executor, Host};
use super::frames::{take, Skipped};
use super::oplog::OperatorLog;
use super::output::Output;
use super::run::DaemonError;
use super::settings::Settings;
use crate::core::config::{Config, SequenceSource};
use crate::core::engine::{LocalAddrs, Prefetch, PREFETCH_AHEAD};
use crate::core::knock::Timestamp;
use crate::core::service::{Close, Mode, Readiness, Service, SHUTDOWN_GRACE};
use crate::core::wire::{self, LinkType, Packet, Skip};

/// What a replay saw, for its closing line.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplaySummary {
    pub frames: u64,
    pub knocks: u64,
    pub opened: u64,
}

/// A replay has no capture to filter and no service manager to tell.
struct Offline;

impl Host for Offline {
    fn install_filter(&mut self, _: &mut Output, _: &str, _: Timestamp) {}
    fn readiness(&mut self, _: Readiness) {}
}

/// Feeds the capture file at `path` through the doors with the capture's
/// own time, then lets the remaining timers (sequence timeouts, stop
/// commands) fire at their times, so the output tells the whole story.
pub fn replay(
    settings: &Settings,
    config: &Config,
    path: &Path,
) -> Result<ReplaySummary, DaemonError> {
    let mut file = FileCapture::open(path)?;
    // The config's LogFile is the production log: a replay writes to a log
    // file only when one is named with -g.
    let log_file = settings
        .log_file
        .as_deref()
        .filter(|_| settings.log_file_from_cli);
    let mut log = OperatorLog::replay(log_file)?;
    log.set_format(settings.log_format);
    // Everything this run reads or writes is open or read: a dry run
    // parses the capture (hostile input) without root. With
    // --run-commands the commands are the admin's and may need root.
    let mut one_time_bytes = HashMap::new();
    if settings.dry_run {
        for door in &config.doors {
            if let SequenceSource::OneTime { path, .. } = &door.sequence {
                if let Ok(bytes) = super::onetime_file::read(path) {
                    one_time_bytes.insert(path.clone(), bytes);
                }
            }
        }
        if let Some(d) = super::privdrop::drop_root()? {
            tracing::debug!(user = %d.user, uid = d.uid, "gave up root for --read");
        }
    }
    let local = if settings.local_addrs.is_empty() {
        LocalAddrs::Any
    } else {
        LocalAddrs::List(settings.local_addrs.clone())
    };
    let mut service = Service::new(
        config,
        // The capture's time is Unix time already.
        settings.service(Mode::Replay, config.options.state_file_path(), 0),
        local,
        Timestamp::ZERO,
    );
    let out = Output::new(log, TimeBase::Capture, settings.lookup);
    let mut exec = Executor::new(out, None);
    exec.one_time_bytes = one_time_bytes;
    let debug = settings.debug.then_some(TimeBase::Capture);
    let link = file.link();
    let mut ahead = ReadAhead::default();
    let mut frames = 0;
    let mut skipped = Skipped::default();
    let mut last = Timestamp::ZERO;
    loop {
        ahead.fill(&mut file, link, &service);
        let Some(frame) = ahead.next(&service) else {
            break;
        };
        frames += 1;
        let at = frame.at;
        last = last.max(at);
        // Timers due before this frame fire at their own time first.
        while let Some(t) = service.poll_timeout().filter(|t| *t < at) {
            service.handle_timeout(t);
            exec.drain(&mut service, &mut Offline, t);
        }
        if let Some(knock) = take(&frame.parsed, frame.len, debug, &mut skipped) {
            service.handle_knocks(&[knock], at);
            exec.drain(&mut service, &mut Offline, at);
        }
        exec.reap(&mut service, &mut Offline, last);
    }
    // Frames read before a failure are replayed first, as they were read.
    if let Some(e) = ahead.failed.take() {
        return Err(e.into());
    }
    while let Some(t) = service.poll_timeout() {
        let t = t.max(last);
        service.handle_timeout(t);
        exec.drain(&mut service, &mut Offline, t);
    }
    // Commands run in real time, whatever the capture's clock says: wait
    // for them in real time.
    service.handle_shutdown(Close::All, last);
    exec.drain(&mut service, &mut Offline, last);
    let until = Instant::now() + SHUTDOWN_GRACE;
    while !service.is_finished() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(5));
        exec.reap(&mut service, &mut Offline, last);
    }
    if !service.is_finished() {
        service.handle_timeout(last + SHUTDOWN_GRACE);
        exec.drain(&mut service, &mut Offline, last);
    }
    if let Some(notice) = skipped.notice() {
        exec.out.log(last, notice);
    }
    exec.out.finish_lookups();
    let stats = service.stats();
    Ok(ReplaySummary {
        frames,
        knocks: stats.knocks,
        opened: stats.opened,
    })
}

/// A frame read ahead of its turn: parsed at once (the capture's buffer
/// holds it only until the next read), handled later.
struct Frame {
    at: Timestamp,
    parsed: Result<Packet, Skip>,
    /// Bytes captured, for the debug line of a skipped frame.
    len: usize,
}

/// How many frames are read before their turn: the engine's look-ahead.
/// Each frame is still handled alone, at its own time (the service's
/// timers and rate limits see exactly the times they would one frame at a
/// time), but with the attempt table lines it needs already on their way:
/// with a flood of a million sources, each one is a miss to memory.
const FAR: usize = 2 * PREFETCH_AHEAD;
const NEAR: usize = PREFETCH_AHEAD;

/// The frames read ahead, oldest first, and the read failure that ended
/// reading, kept until the frames before it are replayed.
#[derive(Default)]
struct ReadAhead {
    frames: VecDeque<Frame>,
    failed: Option<CaptureError>,
    done: bool,
}

impl ReadAhead {
    /// Reads until `FAR` frames wait (or the file ends), asking for each
    /// new knock's index line.
    fn fill(&mut self, file: &mut FileCapture, link: LinkType, service: &Service) {
        while !self.done && self.frames.len() <= FAR {
            match file.next_frame() {
                Ok(Some(f)) => {
                    let at = Timestamp::from_nanos(f.ts_nanos);
                    let parsed = wire::parse(link, f.data, f.wire_len, at);
                    if let Ok(p) = &parsed {
                        service.prefetch(&p.knock, Prefetch::Index);
                    }
                    let len = f.data.len();
                    self.frames.push_back(Frame { at, parsed, len });
                }
                Ok(None) => self.done = true,
                Err(e) => {
                    self.failed = Some(e);
                    self.done = true;
                }
            }
        }
    }

    /// The next frame to handle, after asking for the attempt of the frame
    /// `NEAR` places after it.
    fn next(&mut self, service: &Service) -> Option<Frame> {
        if let Some(Ok(p)) = self.frames.get(NEAR).map(|f| &f.parsed) {
            service.prefetch(&p.knock, Prefetch::Attempt);
        }
        self.frames.pop_front()
    }
}
