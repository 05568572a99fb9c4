//! The interfaces the daemon captures on: open, waited for (missing or
//! down), lost and reopened, and their addresses followed.
//!
//! Link changes arrive by netlink, so nothing polls while the network is
//! quiet; without netlink, missing interfaces are retried on a backing-off
//! timer. When no interface is named and there is no `eth0`, the capture
//! follows the default route: which interface that makes is
//! [`crate::core::iface`]'s to decide; this module reads the routes
//! ([`super::routes`]) and moves the capture. What an address change means for the doors is the service's to
//! decide; this module only reports the new addresses. Each capture starts
//! with a small kernel ring and is moved to a larger one under a flood
//! (when: [`crate::core::ring`]; how: [`Interfaces::start_resize`]).

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::capture::{CaptureError, LiveCapture, Opening, Stats, SOCKET_QUEUE_BYTES};
use super::netif;
use super::netwatch::NetWatch;
use super::output::Output;
use super::routes::Facts;
use crate::core::iface::{self, Choice};
use crate::core::knock::Timestamp;
use crate::core::ring::{Resize, Ring};
use crate::core::service::Notice;

/// First retry delay for an interface that is missing or failed; doubles
/// up to [`MAX_RETRY`]. Link changes (netlink) retry at once anyway.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// How often the loop looks whether a capture being opened to take over
/// is ready (it takes milliseconds; only while one is being opened).
const OPENING_POLL: Duration = Duration::from_millis(1);

/// One interface the daemon wants to capture on, open or waiting for it.
pub struct Slot {
    pub name: String,
    pub cap: Option<LiveCapture>,
    /// The interface index the capture is bound to (0 for `any`): a new
    /// index under the same name means the interface was re-created.
    ifindex: u32,
    retry_at: Option<Timestamp>,
    backoff: Duration,
    /// How large the capture's ring is and should be.
    pub ring: Ring,
    /// Counters of the captures this one took over from.
    carried: Stats,
    /// A capture being opened to take over, for this resize.
    opening: Option<(Opening, Resize, Timestamp)>,
}

impl Slot {
    /// A slot for `name`, with no capture yet.
    fn new(name: &str) -> Slot {
        Slot {
            name: name.to_string(),
            cap: None,
            ifindex: 0,
            retry_at: None,
            backoff: FIRST_RETRY,
            ring: Ring::new(),
            carried: Stats::default(),
            opening: None,
        }
    }

    /// Installs a freshly opened capture (with its ring's sizing state).
    fn attach(&mut self, (cap, ring): (LiveCapture, Ring)) {
        self.cap = Some(cap);
        self.ring = ring;
        self.carried = Stats::default();
    }

    /// Closes the capture (and gives up a resize under way); it is waited
    /// for.
    fn detach(&mut self) {
        self.cap = None;
        self.ring = Ring::new();
        self.carried = Stats::default();
        self.opening = None;
    }
}

/// Every capture interface, and the addresses they have.
pub struct Interfaces {
    /// Which interfaces, and why (whether they follow the default route).
    choice: Choice,
    /// The choice's interfaces, one per slot.
    names: Vec<String>,
    /// The capture moved to other interfaces since [`Interfaces::take_moved`].
    moved: bool,
    only_v4: bool,
    pub slots: Vec<Slot>,
    netwatch: Option<NetWatch>,
    local: Vec<IpAddr>,
}

/// Set to `libpcap` in the daemon's environment to read every capture
/// through libpcap's ring, as releases before the packet-socket reader did
/// (for troubleshooting, and for the tests of ring resizing).
pub const CAPTURE_ENV: &str = "KNOCKD_CAPTURE";

/// Opens a capture on `name`: a packet socket where the interface allows,
/// otherwise libpcap with the small ring; either moves to the large ring
/// under a flood. Where the kernel cannot move a capture, a socket stays a
/// socket and libpcap gets the large ring from the start.
fn open_capture(name: &str) -> Result<(LiveCapture, Ring), CaptureError> {
    if std::env::var_os(CAPTURE_ENV).is_none_or(|v| v != "libpcap") {
        match LiveCapture::open_socket(name, SOCKET_QUEUE_BYTES) {
            Ok(Some(cap)) if cap.resizable() => return Ok((cap, Ring::socket())),
            Ok(Some(cap)) => return Ok((cap, Ring::fixed())),
            Ok(None) => {}
            Err(e) => tracing::debug!(%e, "no packet socket; trying libpcap"),
        }
    }
    let ring = Ring::new();
    let cap = LiveCapture::open(name, ring.bytes())?;
    if cap.resizable() {
        return Ok((cap, ring));
    }
    drop(cap);
    let ring = Ring::fixed();
    Ok((LiveCapture::open(name, ring.bytes())?, ring))
}

/// The interface index of `name` (0 for `any`), if it exists.
fn ifindex(name: &str) -> Option<u32> {
    if name == netif::ANY {
        return Some(0);
    }
    nix::net::if_::if_nametoindex(name).ok()
}

impl Interfaces {
    /// Opens a capture on each interface of `choice` that exists and is
    /// up: failing to capture on one is the admin's to fix now
    /// (permissions, link type), not something to wait for. The others are
    /// waited for. A choice that follows the default route is looked at
    /// again once route changes are watched, so none made meanwhile is
    /// missed ([`Interfaces::choice`] says what it became).
    pub fn open(choice: &Choice, only_v4: bool) -> Result<Self, CaptureError> {
        let netwatch = match NetWatch::open(choice.follows_routes()) {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(%e, "no link-change notifications; retrying interfaces on a timer");
                None
            }
        };
        let choice = if choice.follows_routes() {
            iface::follow(choice, &Facts::read().system())
        } else {
            choice.clone()
        };
        let names = choice.interfaces();
        let mut slots = Vec::new();
        for name in &names {
            let mut slot = Slot::new(name);
            if let Some(index) = ifindex(name).filter(|_| netif::is_up(name)) {
                slot.attach(open_capture(name)?);
                slot.ifindex = index;
            }
            slots.push(slot);
        }
        Ok(Interfaces {
            choice,
            names,
            moved: false,
            only_v4,
            slots,
            netwatch,
            local: Vec::new(),
        })
    }

    /// Which interfaces are captured on, and why.
    pub fn choice(&self) -> &Choice {
        &self.choice
    }

    /// The interfaces captured on now, once after the capture moved to
    /// follow the default route.
    pub fn take_moved(&mut self) -> Option<Vec<String>> {
        std::mem::take(&mut self.moved).then(|| self.names.clone())
    }

    /// After a link or route change: where the choice follows the default
    /// route and the route moved, closes the old captures and makes slots
    /// for the new interfaces (opened by [`Interfaces::follow`] right
    /// after), logging the move.
    fn follow_route(&mut self, out: &mut Output, now: Timestamp) {
        let facts = Facts::read();
        let next = iface::follow(&self.choice, &facts.system());
        if next == self.choice {
            return;
        }
        if let Some(notice) = iface::move_notice(&self.choice, &next) {
            out.log(now, notice);
        }
        let names = next.interfaces();
        if names != self.names {
            self.slots = names.iter().map(|n| Slot::new(n)).collect();
            self.names = names;
            self.moved = true;
        }
        self.choice = next;
    }

    /// Reads the interfaces' addresses (at start).
    pub fn read_addresses(&mut self) -> std::io::Result<Vec<IpAddr>> {
        self.local = netif::addresses(&self.names, self.only_v4)?;
        Ok(self.local.clone())
    }

    /// Installs `filter` on every open capture; at start a capture that
    /// cannot take it is an error.
    pub fn install_strict(&mut self, filter: &str) -> Result<(), CaptureError> {
        for cap in self.slots.iter_mut().filter_map(|s| s.cap.as_mut()) {
            cap.set_filter(filter)?;
        }
        Ok(())
    }

    /// Says which interfaces are waited for (at start), and arms their
    /// retry timers when there is no netlink to say when they come.
    pub fn report_waiting(&mut self, out: &mut Output, now: Timestamp) {
        let timed = self.netwatch.is_none();
        for slot in self.slots.iter_mut().filter(|s| s.cap.is_none()) {
            out.log(
                now,
                Notice::InterfaceWaiting {
                    name: slot.name.clone(),
                    missing: ifindex(&slot.name).is_none(),
                },
            );
            if timed {
                slot.retry_at = Some(now + FIRST_RETRY);
            }
        }
    }

    /// When a retry, a ring's calm check or a look at a capture being
    /// opened is next due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.slots
            .iter()
            .flat_map(|s| {
                let opening = s.opening.as_ref().map(|o| o.2);
                [s.retry_at, s.ring.deadline(), opening]
            })
            .flatten()
            .min()
    }

    /// The fd netlink reports link and address changes on.
    pub fn netwatch_fd(&self) -> Option<BorrowedFd<'_>> {
        self.netwatch.as_ref().map(|w| w.as_fd())
    }

    /// Whether netlink reported a change (drains its socket).
    pub fn netlink_changed(&mut self) -> bool {
        self.netwatch.as_mut().is_some_and(NetWatch::changed)
    }

    /// Installs `filter` on every open capture. A capture that refuses it
    /// (its interface just went down) is closed and waited for.
    pub fn install(&mut self, filter: &str, out: &mut Output, now: Timestamp) {
        for i in 0..self.slots.len() {
            let Some(cap) = self.slots[i].cap.as_mut() else {
                continue;
            };
            if let Err(e) = cap.set_filter(filter) {
                self.lose(i, &e.to_string(), out, now);
            }
        }
    }

    /// Closes slot `i`'s capture after `error` and waits for the interface.
    pub fn lose(&mut self, i: usize, error: &str, out: &mut Output, now: Timestamp) {
        let slot = &mut self.slots[i];
        out.log(
            now,
            Notice::CaptureLost {
                error: error.to_string(),
                name: slot.name.clone(),
            },
        );
        slot.detach();
        slot.backoff = FIRST_RETRY;
        slot.retry_at = Some(now + FIRST_RETRY);
    }

    /// Starts moving slot `i`'s capture to the ring `resize` asks for: a
    /// capture with that ring and `filter` is opened on a helper thread
    /// ([`Interfaces::take_opened`] says when it is ready).
    pub fn start_resize(
        &mut self,
        i: usize,
        resize: Resize,
        filter: &str,
        now: Timestamp,
    ) -> Result<(), CaptureError> {
        let slot = &mut self.slots[i];
        let Some(cap) = slot.cap.as_ref() else {
            return Err(CaptureError::Resize(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        let opening = cap.open_sibling(resize.bytes, filter)?;
        slot.opening = Some((opening, resize, now + OPENING_POLL));
        Ok(())
    }

    /// A capture opened to take over, once it is ready: its slot, the
    /// opening and its resize. Those still opening are looked at again
    /// after a millisecond.
    pub fn take_opened(&mut self, now: Timestamp) -> Option<(usize, Opening, Resize)> {
        for (i, slot) in self.slots.iter_mut().enumerate() {
            match slot.opening.take() {
                Some((opening, resize, _)) if opening.is_done() => {
                    return Some((i, opening, resize));
                }
                Some((opening, resize, _)) => {
                    slot.opening = Some((opening, resize, now + OPENING_POLL));
                }
                None => {}
            }
        }
        None
    }

    /// Steers slot `i`'s packets to `next`, which becomes the slot's
    /// capture: from now on every packet lands in exactly one of the two.
    /// Returns the old capture, which receives nothing more: read it to its
    /// end (what it holds came before everything in the new one), then
    /// give it to [`Interfaces::finish_resize`]. On an error the slot keeps
    /// its capture, untouched.
    pub fn hand_over(&mut self, i: usize, next: LiveCapture) -> Result<LiveCapture, CaptureError> {
        let slot = &mut self.slots[i];
        let Some(old) = slot.cap.as_ref() else {
            return Err(CaptureError::Resize(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            )));
        };
        old.hand_over(&next)?;
        match slot.cap.replace(next) {
            Some(old) => Ok(old),
            None => Err(CaptureError::Resize(std::io::Error::from(
                std::io::ErrorKind::NotConnected,
            ))),
        }
    }

    /// Closes the capture slot `i` took over from, now read to its end,
    /// keeping its counters for the shutdown statistics.
    pub fn finish_resize(&mut self, i: usize, mut old: LiveCapture) {
        let slot = &mut self.slots[i];
        if let Some(s) = old.stats() {
            slot.carried.received += s.received;
            slot.carried.dropped += s.dropped;
            slot.carried.if_dropped += s.if_dropped;
        }
        drop(old);
        if let Some(cap) = slot.cap.as_mut() {
            cap.settle();
        }
    }

    /// Opens captures on interfaces that appeared, reopens those that were
    /// re-created, installs `filter` on what opened, and re-reads the
    /// addresses. Runs when netlink reports a change or a retry is due.
    /// Returns the addresses when they changed.
    pub fn follow(
        &mut self,
        net_changed: bool,
        filter: &str,
        out: &mut Output,
        now: Timestamp,
    ) -> Option<Vec<IpAddr>> {
        let mut opened = false;
        let timed = self.netwatch.is_none();
        if net_changed && self.choice.follows_routes() {
            self.follow_route(out, now);
        }
        for slot in &mut self.slots {
            let due = slot.retry_at.is_some_and(|t| t <= now);
            if !net_changed && !due {
                continue;
            }
            let index = ifindex(&slot.name);
            if slot.cap.is_some() && index == Some(slot.ifindex) {
                continue;
            }
            if slot.cap.is_some() {
                // Gone, or re-created under the same name: the capture is
                // bound to an interface that no longer exists.
                slot.detach();
                out.log(
                    now,
                    Notice::InterfaceGone {
                        name: slot.name.clone(),
                    },
                );
            }
            let Some(index) = index.filter(|_| netif::is_up(&slot.name)) else {
                // Netlink will say when it is back; without netlink, look
                // again on a backing-off timer.
                slot.retry_at = None;
                if timed {
                    slot.retry_at = Some(now + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_RETRY);
                }
                continue;
            };
            match open_capture(&slot.name) {
                Ok((mut cap, ring)) => {
                    slot.ifindex = index;
                    slot.retry_at = None;
                    slot.backoff = FIRST_RETRY;
                    out.log(
                        now,
                        Notice::Listening {
                            name: slot.name.clone(),
                        },
                    );
                    match cap.set_filter(filter) {
                        Ok(()) => {
                            slot.attach((cap, ring));
                            opened = true;
                        }
                        Err(e) => {
                            out.log(
                                now,
                                Notice::CaptureLost {
                                    error: e.to_string(),
                                    name: slot.name.clone(),
                                },
                            );
                            slot.retry_at = Some(now + FIRST_RETRY);
                        }
                    }
                }
                Err(e) => {
                    out.log(
                        now,
                        Notice::CaptureRetry {
                            error: e.to_string(),
                            after: slot.backoff,
                        },
                    );
                    slot.retry_at = Some(now + slot.backoff);
                    slot.backoff = (slot.backoff * 2).min(MAX_RETRY);
                }
            }
        }
        if !(net_changed || opened) {
            return None;
        }
        match netif::addresses(&self.names, self.only_v4) {
            Ok(local) if local != self.local => {
                self.local = local.clone();
                Some(local)
            }
            Ok(_) => None,
            Err(e) => {
                tracing::warn!(%e, "cannot re-read interface addresses");
                None
            }
        }
    }

    /// The kernel counters of every open capture (shutdown).
    pub fn stats(&mut self) -> Vec<Notice> {
        self.slots
            .iter_mut()
            .filter_map(|slot| {
                let s = slot.cap.as_mut()?.stats()?;
                let c = slot.carried;
                Some(Notice::CaptureStats {
                    iface: slot.name.clone(),
                    received: c.received + s.received,
                    dropped: c.dropped + s.dropped,
                    if_dropped: c.if_dropped + s.if_dropped,
                })
            })
            .collect()
    }
}
