//! How large a live capture's kernel ring should be, and when to change it.
//!
//! The ring is memory the daemon holds for as long as it runs, and it is
//! most of what the daemon holds: a quiet host needs a few knocks' worth,
//! a spoofed flood tens of thousands of packets' worth, enough to ride out
//! the moments the daemon is descheduled. So a capture starts with no ring
//! at all, on a packet socket ([`SOCKET`]; or, where libpcap must read it,
//! with a small ring, [`CALM_BYTES`]) and moves to a large one
//! ([`FLOOD_BYTES`]) at the first sign of a flood, before the socket's
//! queue or the small ring overflows if it can:
//!
//! - [`FLOOD_RATE`] packets within [`RATE_WINDOW`]: knocks are a handful
//!   of packets, so a thousand a second past the filter is a flood even
//!   when the daemon keeps up (this is what fires first, a few
//!   milliseconds into a flood);
//! - one read finding [`GROW_BACKLOG`] packets waiting: the small ring is
//!   filling faster than it is read;
//! - the kernel reporting a packet it had to drop.
//!
//! Opening the large ring takes the kernel ten to twenty milliseconds (it
//! waits out an RCU grace period), and the socket (or small ring) is read
//! meanwhile. The capture goes back after [`CALM`] without any of those
//! signs. Checking for calm is the only timer, and only while the ring is
//! large: an idle daemon never wakes up.
//!
//! Pure and driven by explicit time, like the engine: the shell reports
//! each read and each resize it carried out (or could not), and asks for
//! the next deadline.

use std::fmt;
use std::time::Duration;

use crate::core::knock::Timestamp;

/// Ring bytes while calm: 8192 packet slots with the capture's snaplen,
/// what the first tens of milliseconds of a flood need while the large
/// ring is opened, when the daemon reads slower than the flood comes (the
/// ring knockd 0.8 always has). Half of it lost packets at a flood's start
/// in 1 to 6 runs of 8 of `tests/trust.rs`'s flood (133k packets/s on `lo`,
/// unoptimized daemon); this size none in 8.
pub const CALM_BYTES: usize = 2 << 20;

/// Ring bytes under a flood: 65536 packet slots, 45 ms of minimum-size
/// packets at gigabit line rate (1.49 M/s), longer than the daemon is
/// descheduled on a busy host. With a million spoofed sources this and a
/// full attempt table stay under 64 MiB together.
pub const FLOOD_BYTES: usize = 16 << 20;

/// The calm "size" of a capture read from a packet socket: no ring at
/// all, packets wait in the socket's queue, which takes kernel memory per
/// packet only while it waits. A flood moves such a capture to a
/// [`FLOOD_BYTES`] ring all the same (reading a ring costs no system call
/// a packet), and calm moves it back to the socket.
pub const SOCKET: usize = 0;

/// Packets within [`RATE_WINDOW`] that make a flood: an eighth of the
/// small ring, and hundreds of knocks' worth.
pub const FLOOD_RATE: usize = 1024;

/// The window [`FLOOD_RATE`] is counted in.
pub const RATE_WINDOW: Duration = Duration::from_secs(1);

/// Packets waiting at one read that mean the small ring is filling faster
/// than it is read: a sixteenth of it.
pub const GROW_BACKLOG: usize = 512;

/// How long the large ring must go without a sign of a flood before the
/// small one takes over again.
pub const CALM: Duration = Duration::from_secs(300);

/// After a resize the system refused (no memory), how long before the
/// next attempt.
pub const RETRY: Duration = Duration::from_secs(10);

/// Why a ring changes size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Why {
    /// This many packets were read within this time.
    Rate(usize, Duration),
    /// This many packets were waiting at one read.
    Backlog(usize),
    /// The kernel dropped this many packets for want of ring space.
    Dropped(u64),
    /// No sign of a flood for this long.
    Calm(Duration),
}

/// A ring size to move to, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Resize {
    pub bytes: usize,
    pub why: Why,
}

/// The sizing state of one capture.
#[derive(Debug, Clone)]
pub struct Ring {
    bytes: usize,
    /// The size calm returns to: [`CALM_BYTES`], or [`SOCKET`].
    calm: usize,
    /// A capture that cannot be resized (its kernel lacks what it takes)
    /// keeps the large ring for good.
    fixed: bool,
    /// Packets read since `window_start`.
    window_start: Timestamp,
    window_packets: usize,
    /// While large: when calm is next checked, and whether a sign of a
    /// flood was seen since the last check.
    check_at: Option<Timestamp>,
    stormy: bool,
    /// No resize before this, after one that failed.
    not_before: Option<Timestamp>,
    /// A resize was asked for and the shell has not reported on it yet.
    pending: bool,
}

impl Default for Ring {
    fn default() -> Self {
        Ring::new()
    }
}

impl Ring {
    /// A capture opened with the small ring, free to grow.
    pub fn new() -> Ring {
        Ring {
            bytes: CALM_BYTES,
            calm: CALM_BYTES,
            fixed: false,
            window_start: Timestamp::ZERO,
            window_packets: 0,
            check_at: None,
            stormy: false,
            not_before: None,
            pending: false,
        }
    }

    /// A capture read from a packet socket while calm, free to move to a
    /// ring under a flood and back.
    pub fn socket() -> Ring {
        Ring {
            bytes: SOCKET,
            calm: SOCKET,
            ..Ring::new()
        }
    }

    /// A capture that cannot be resized: it gets the large ring up front,
    /// as a flood would find it.
    pub fn fixed() -> Ring {
        Ring {
            bytes: FLOOD_BYTES,
            fixed: true,
            ..Ring::new()
        }
    }

    /// The size the capture's ring should have now.
    pub fn bytes(&self) -> usize {
        self.bytes
    }

    fn is_large(&self) -> bool {
        self.bytes >= FLOOD_BYTES
    }

    /// One read at `now` found `backlog` packets waiting (read at once),
    /// and the kernel dropped `dropped` more packets since the last read.
    /// Asks for at most one resize at a time: none until the shell reports
    /// on the last one ([`Ring::resized`]).
    pub fn observe(&mut self, backlog: usize, dropped: u64, now: Timestamp) -> Option<Resize> {
        if self.fixed {
            return None;
        }
        let rate = self.count(backlog, now);
        let why = if dropped > 0 {
            Why::Dropped(dropped)
        } else if backlog >= GROW_BACKLOG {
            Why::Backlog(backlog)
        } else if let Some((packets, within)) = rate {
            Why::Rate(packets, within)
        } else {
            return None;
        };
        if self.is_large() {
            self.stormy = true;
            return None;
        }
        if self.pending || self.not_before.is_some_and(|t| now < t) {
            return None;
        }
        self.pending = true;
        Some(Resize {
            bytes: FLOOD_BYTES,
            why,
        })
    }

    /// Counts `packets` read at `now` in the rate window; the count and
    /// the time it took once it reaches [`FLOOD_RATE`].
    fn count(&mut self, packets: usize, now: Timestamp) -> Option<(usize, Duration)> {
        if now.saturating_since(self.window_start) >= RATE_WINDOW {
            self.window_start = now;
            self.window_packets = 0;
        }
        self.window_packets = self.window_packets.saturating_add(packets);
        (self.window_packets >= FLOOD_RATE)
            .then(|| (self.window_packets, now.saturating_since(self.window_start)))
    }

    /// When calm is next checked ([`Ring::handle_timeout`]); none while the
    /// ring is small or a resize is under way.
    pub fn deadline(&self) -> Option<Timestamp> {
        self.check_at.filter(|_| !self.pending)
    }

    /// At the calm check: back to the small ring if there was no sign of a
    /// flood since the last check, otherwise look again after [`CALM`]. A
    /// call before the deadline does nothing.
    pub fn handle_timeout(&mut self, now: Timestamp) -> Option<Resize> {
        let at = self.deadline()?;
        if now < at {
            return None;
        }
        if !self.stormy {
            self.pending = true;
            return Some(Resize {
                bytes: self.calm,
                why: Why::Calm(CALM),
            });
        }
        self.arm(now);
        None
    }

    /// The shell moved the capture to `resize.bytes` (`done`), or could
    /// not (it keeps its ring, and no resize is tried for [`RETRY`]).
    pub fn resized(&mut self, resize: Resize, done: bool, now: Timestamp) {
        self.pending = false;
        if done {
            self.bytes = resize.bytes;
            self.not_before = None;
        } else {
            self.not_before = Some(now + RETRY);
        }
        if self.is_large() {
            self.arm(now);
        } else {
            self.check_at = None;
        }
    }

    fn arm(&mut self, now: Timestamp) {
        self.check_at = Some(now + CALM);
        self.stormy = false;
    }
}

/// A ring size for a log line: `16 MiB`, `512 KiB`, or (no ring)
/// `the socket queue`.
pub struct Bytes(pub usize);

impl fmt::Display for Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        const MIB: usize = 1 << 20;
        if self.0 == SOCKET {
            write!(f, "the socket queue")
        } else if self.0 >= MIB && self.0 % MIB == 0 {
            write!(f, "{} MiB", self.0 / MIB)
        } else {
            write!(f, "{} KiB", self.0.div_ceil(1 << 10))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(millis: u64) -> Timestamp {
        Timestamp::from_nanos(millis * 1_000_000)
    }

    fn grown(ring: &mut Ring, now: Timestamp) {
        let r = ring.observe(GROW_BACKLOG, 0, now).expect("grows");
        ring.resized(r, true, now);
    }

    fn grow_to(why: Why) -> Option<Resize> {
        Some(Resize {
            bytes: FLOOD_BYTES,
            why,
        })
    }

    #[test]
    fn knocks_keep_the_ring_small_and_set_no_timer() {
        let mut ring = Ring::new();
        // A knock of three packets every 10 ms: 300 a second, for a minute.
        for t in 0..6000 {
            assert_eq!(ring.observe(3, 0, at(t * 10)), None, "at {t}");
        }
        assert_eq!(ring.bytes(), CALM_BYTES);
        assert_eq!(ring.deadline(), None);
    }

    #[test]
    fn a_socket_capture_grows_to_a_ring_and_returns_to_the_socket() {
        let mut ring = Ring::socket();
        assert_eq!(ring.bytes(), SOCKET);
        assert_eq!(ring.deadline(), None);
        grown(&mut ring, at(1));
        assert_eq!(ring.bytes(), FLOOD_BYTES);
        let calm = ring.deadline().expect("calm is checked");
        let back = ring.handle_timeout(calm).expect("calm");
        assert_eq!(
            back,
            Resize {
                bytes: SOCKET,
                why: Why::Calm(CALM)
            }
        );
        ring.resized(back, true, calm);
        assert_eq!(ring.bytes(), SOCKET);
        assert_eq!(ring.deadline(), None);
        assert_eq!(Bytes(SOCKET).to_string(), "the socket queue");
    }

    #[test]
    fn a_flood_rate_grows_the_ring_before_any_backlog() {
        let mut ring = Ring::new();
        // 100 packets per read every millisecond: 100 k packets a second,
        // read as fast as they come.
        for t in 0..10 {
            assert_eq!(ring.observe(100, 0, at(1000 + t)), None);
        }
        let r = ring.observe(100, 0, at(1010));
        assert_eq!(r, grow_to(Why::Rate(1100, Duration::from_millis(10))));
    }

    #[test]
    fn the_rate_window_starts_over_each_second() {
        let mut ring = Ring::new();
        for t in 0..20 {
            // 600 packets a second, in two reads each.
            assert_eq!(ring.observe(300, 0, at(t * 500)), None, "at {t}");
        }
    }

    #[test]
    fn a_backlog_grows_the_ring() {
        let mut ring = Ring::new();
        let r = ring.observe(GROW_BACKLOG, 0, at(1));
        assert_eq!(r, grow_to(Why::Backlog(GROW_BACKLOG)));
    }

    #[test]
    fn a_kernel_drop_grows_the_ring_whatever_the_backlog() {
        let mut ring = Ring::new();
        let r = ring.observe(1, 3, at(1));
        assert_eq!(r, grow_to(Why::Dropped(3)));
    }

    #[test]
    fn one_resize_at_a_time() {
        let mut ring = Ring::new();
        let r = ring.observe(GROW_BACKLOG, 0, at(1)).expect("grows");
        assert_eq!(ring.observe(GROW_BACKLOG * 2, 7, at(2)), None);
        ring.resized(r, true, at(3));
        let check = ring.deadline().expect("armed");
        let r = ring.handle_timeout(check).expect("shrinks");
        assert_eq!(ring.deadline(), None, "no timer while the shell works");
        assert_eq!(ring.handle_timeout(check + CALM), None);
        ring.resized(r, true, check);
        assert_eq!(ring.bytes(), CALM_BYTES);
    }

    #[test]
    fn a_large_ring_does_not_grow_again() {
        let mut ring = Ring::new();
        grown(&mut ring, at(1));
        assert_eq!(ring.bytes(), FLOOD_BYTES);
        assert_eq!(ring.observe(100_000, 1000, at(2)), None);
    }

    #[test]
    fn a_large_ring_shrinks_after_a_calm_and_then_sets_no_timer() {
        let mut ring = Ring::new();
        grown(&mut ring, at(10));
        assert_eq!(ring.deadline(), Some(at(10) + CALM));
        // Knocks go on meanwhile.
        ring.observe(3, 0, at(20_000));
        let just_before = Timestamp::from_nanos((at(10) + CALM).as_nanos() - 1);
        assert_eq!(ring.handle_timeout(just_before), None);
        let r = ring.handle_timeout(at(10) + CALM).expect("shrinks");
        assert_eq!(
            r,
            Resize {
                bytes: CALM_BYTES,
                why: Why::Calm(CALM)
            }
        );
        ring.resized(r, true, at(10) + CALM);
        assert_eq!(ring.bytes(), CALM_BYTES);
        assert_eq!(ring.deadline(), None);
    }

    #[test]
    fn a_flood_going_on_keeps_the_large_ring_another_period() {
        let mut ring = Ring::new();
        grown(&mut ring, at(0));
        // The large ring keeps up (small reads), but the rate is a flood's.
        for t in 0..2000 {
            ring.observe(10, 0, at(5000 + t));
        }
        let check = at(0) + CALM;
        assert_eq!(ring.handle_timeout(check), None);
        assert_eq!(ring.bytes(), FLOOD_BYTES);
        assert_eq!(ring.deadline(), Some(check + CALM));
        // The next period is calm: it shrinks then.
        assert!(ring.handle_timeout(check + CALM).is_some());
    }

    #[test]
    fn drops_during_the_calm_period_keep_the_large_ring() {
        let mut ring = Ring::new();
        grown(&mut ring, at(0));
        ring.observe(1, 1, at(5000));
        assert_eq!(ring.handle_timeout(at(0) + CALM), None);
        assert_eq!(ring.bytes(), FLOOD_BYTES);
    }

    #[test]
    fn a_failed_grow_is_retried_only_after_a_pause() {
        let mut ring = Ring::new();
        let r = ring.observe(GROW_BACKLOG, 0, at(1000)).expect("grows");
        ring.resized(r, false, at(1000));
        assert_eq!(ring.bytes(), CALM_BYTES);
        assert_eq!(ring.deadline(), None);
        assert_eq!(ring.observe(GROW_BACKLOG, 5, at(1000) + RETRY / 2), None);
        assert!(ring.observe(GROW_BACKLOG, 0, at(1000) + RETRY).is_some());
    }

    #[test]
    fn a_failed_shrink_keeps_the_large_ring_and_checks_again_later() {
        let mut ring = Ring::new();
        grown(&mut ring, at(0));
        let check = at(0) + CALM;
        let r = ring.handle_timeout(check).expect("shrinks");
        ring.resized(r, false, check);
        assert_eq!(ring.bytes(), FLOOD_BYTES);
        assert_eq!(ring.deadline(), Some(check + CALM));
    }

    #[test]
    fn a_fixed_ring_is_large_and_never_resized() {
        let mut ring = Ring::fixed();
        assert_eq!(ring.bytes(), FLOOD_BYTES);
        assert_eq!(ring.observe(100_000, 1000, at(1)), None);
        assert_eq!(ring.deadline(), None);
        assert_eq!(ring.handle_timeout(at(1_000_000_000)), None);
    }

    #[test]
    fn sizes_print_in_mib_or_kib() {
        assert_eq!(Bytes(16 << 20).to_string(), "16 MiB");
        assert_eq!(Bytes(1 << 20).to_string(), "1 MiB");
        assert_eq!(Bytes(512 << 10).to_string(), "512 KiB");
    }
}
