//! The shell's clocks: a monotonic one that stamps live packets and drives
//! timers, the wall clock for log lines and the journal, and the local-time
//! rendering knockd uses.
//!
//! The engine never reads a clock; this module is where time enters.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::core::knock::Timestamp;

/// Now on the clock live knocks are stamped with.
///
/// CLOCK_BOOTTIME rather than CLOCK_MONOTONIC: it keeps counting while the
/// machine is suspended, so a door opened before a suspend closes on time
/// after resume instead of staying open for the length of the sleep.
pub fn monotonic_now() -> Timestamp {
    let id = if cfg!(any(target_os = "linux", target_os = "android")) {
        nix::time::ClockId::CLOCK_BOOTTIME
    } else {
        nix::time::ClockId::CLOCK_MONOTONIC
    };
    match nix::time::clock_gettime(id) {
        Ok(ts) => Timestamp::from_nanos(
            (ts.tv_sec() as u64).saturating_mul(1_000_000_000) + ts.tv_nsec() as u64,
        ),
        // Both clocks exist on every platform we build for; if one did not,
        // the process-local monotonic clock still orders events correctly.
        Err(_) => {
            static START: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
            Timestamp::from_duration(START.get_or_init(std::time::Instant::now).elapsed())
        }
    }
}

/// Unix time (nanoseconds) minus monotonic time: what rotating doors add to
/// engine time to count periods. It moves when the wall clock is set.
pub fn wall_offset() -> i128 {
    let mono = i128::from(monotonic_now().as_nanos());
    let wall = match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_nanos() as i128,
        Err(e) => -(e.duration().as_nanos() as i128),
    };
    wall - mono
}

/// How engine time maps to the wall clock: live, engine time is the
/// monotonic clock; replaying a capture, it is the capture's own clock.
#[derive(Debug, Clone, Copy)]
pub enum TimeBase {
    Live,
    Capture,
}

impl TimeBase {
    /// The wall-clock time of engine time `at`.
    pub fn wall(self, at: Timestamp) -> SystemTime {
        match self {
            TimeBase::Capture => UNIX_EPOCH + Duration::from_nanos(at.as_nanos()),
            TimeBase::Live => {
                let (mono, wall) = (monotonic_now(), SystemTime::now());
                if at <= mono {
                    wall - (mono - at)
                } else {
                    wall + (at - mono)
                }
            }
        }
    }

    /// The engine time of wall-clock time `wall` (for journaled deadlines).
    pub fn engine_time(self, wall: SystemTime) -> Timestamp {
        match self {
            TimeBase::Capture => {
                Timestamp::from_duration(wall.duration_since(UNIX_EPOCH).unwrap_or_default())
            }
            TimeBase::Live => {
                let (mono, now) = (monotonic_now(), SystemTime::now());
                match wall.duration_since(now) {
                    Ok(ahead) => mono + ahead,
                    Err(behind) => Timestamp::from_nanos(
                        mono.as_nanos()
                            .saturating_sub(behind.duration().as_nanos() as u64),
                    ),
                }
            }
        }
    }
}

/// Broken-down local time: (year, month 1-12, day, hour, minute, second).
pub fn local_time(t: SystemTime) -> (i32, u32, u32, u32, u32, u32) {
    let secs = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => d.as_secs() as libc::time_t,
        Err(e) => -(e.duration().as_secs() as libc::time_t),
    };
    // SAFETY: `tm` is plain data, fully written by localtime_r on success;
    // localtime_r is the thread-safe variant and only reads `secs`.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            return (1970, 1, 1, 0, 0, 0);
        }
        tm
    };
    (
        tm.tm_year + 1900,
        (tm.tm_mon + 1) as u32,
        tm.tm_mday as u32,
        tm.tm_hour as u32,
        tm.tm_min as u32,
        tm.tm_sec as u32,
    )
}

/// `[YYYY-MM-DD HH:MM]`, the prefix of every knockd log-file line.
pub fn log_stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, _) = local_time(t);
    format!("[{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}]")
}

/// `YYYY-MM-DD HH:MM:SS`, the prefix of `-D` packet lines (with the month
/// right: knockd 0.8 prints it one too low).
pub fn debug_stamp(t: SystemTime) -> String {
    let (y, mo, d, h, mi, s) = local_time(t);
    format!("{y:04}-{mo:02}-{d:02} {h:02}:{mi:02}:{s:02}")
}

/// RFC 3339 local time with milliseconds and the local offset
/// (`2026-12-05T01:30:00.123+00:00`), the `time` of a JSON log line.
pub fn rfc3339(t: SystemTime) -> String {
    let (secs, millis) = match t.duration_since(UNIX_EPOCH) {
        Ok(d) => (d.as_secs() as libc::time_t, d.subsec_millis()),
        Err(e) => (-(e.duration().as_secs() as libc::time_t), 0),
    };
    // SAFETY: as in `local_time`: plain data, written by localtime_r.
    let tm = unsafe {
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&secs, &mut tm).is_null() {
            tm.tm_year = 70;
            tm.tm_mday = 1;
        }
        tm
    };
    let off = tm.tm_gmtoff;
    let (sign, off) = if off < 0 { ('-', -off) } else { ('+', off) };
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{millis:03}{sign}{:02}:{:02}",
        tm.tm_year + 1900,
        tm.tm_mon + 1,
        tm.tm_mday,
        tm.tm_hour,
        tm.tm_min,
        tm.tm_sec.min(59),
        off / 3600,
        off % 3600 / 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_have_knockd_shape_and_the_right_month() {
        // 2026-03-15 12:34:56 UTC: March 15th in every time zone.
        let t = UNIX_EPOCH + Duration::from_secs(1_773_578_096);
        let log = log_stamp(t);
        assert!(log.starts_with("[2026-03-1"), "{log}");
        assert_eq!(log.len(), "[2026-03-15 12:34]".len());
        assert!(log.ends_with(":34]"), "{log}");
        let debug = debug_stamp(t);
        assert!(
            debug.starts_with("2026-03-1") && debug.ends_with(":34:56"),
            "{debug}"
        );
    }

    #[test]
    fn monotonic_clock_moves_forward() {
        let a = monotonic_now();
        let b = monotonic_now();
        assert!(b >= a);
        assert!(a > Timestamp::ZERO);
    }

    #[test]
    fn live_wall_and_engine_time_round_trip() {
        let now = monotonic_now();
        let later = now + Duration::from_secs(30);
        let wall = TimeBase::Live.wall(later);
        let back = TimeBase::Live.engine_time(wall);
        let diff = if back > later {
            back - later
        } else {
            later - back
        };
        assert!(diff < Duration::from_millis(50), "{diff:?}");
    }

    #[test]
    fn capture_time_is_epoch_time() {
        let at = Timestamp::from_nanos(1_700_000_000_500_000_000);
        let wall = TimeBase::Capture.wall(at);
        assert_eq!(TimeBase::Capture.engine_time(wall), at);
    }

    #[test]
    fn rfc3339_has_millis_and_the_offset_of_the_log_stamp() {
        let t = UNIX_EPOCH + Duration::from_millis(1_796_000_000_123);
        let s = rfc3339(t);
        assert_eq!(s.len(), 29, "{s}");
        assert_eq!(&s[19..23], ".123", "{s}");
        assert!(matches!(&s[23..24], "+" | "-"), "{s}");
        assert_eq!(&s[26..27], ":", "{s}");
        // The same local minute as the text line's stamp.
        let stamp = log_stamp(t);
        assert_eq!(&s[..10], &stamp[1..11]);
        assert_eq!(&s[11..16], &stamp[12..17]);
    }
}
