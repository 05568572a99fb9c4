//! The interfaces the daemon captures on: open, waited for (missing or
//! down), lost and reopened, and their addresses followed.
//!
//! Link changes arrive by netlink, so nothing polls while the network is
//! quiet; without netlink, missing interfaces are retried on a backing-off
//! timer. What an address change means for the doors is the service's to
//! decide; this module only reports the new addresses.

use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd};
use std::time::Duration;

use super::capture::{CaptureError, LiveCapture};
use super::netif;
use super::netwatch::NetWatch;
use super::output::Output;
use crate::core::knock::Timestamp;
use crate::core::service::Notice;

/// First retry delay for an interface that is missing or failed; doubles
/// up to [`MAX_RETRY`]. Link changes (netlink) retry at once anyway.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const MAX_RETRY: Duration = Duration::from_secs(60);

/// One interface the daemon wants to capture on, open or waiting for it.
pub struct Slot {
    pub name: String,
    pub cap: Option<LiveCapture>,
    /// The interface index the capture is bound to (0 for `any`): a new
    /// index under the same name means the interface was re-created.
    ifindex: u32,
    retry_at: Option<Timestamp>,
    backoff: Duration,
}

/// Every capture interface, and the addresses they have.
pub struct Interfaces {
    names: Vec<String>,
    only_v4: bool,
    pub slots: Vec<Slot>,
    netwatch: Option<NetWatch>,
    local: Vec<IpAddr>,
}

/// The interface index of `name` (0 for `any`), if it exists.
fn ifindex(name: &str) -> Option<u32> {
    if name == netif::ANY {
        return Some(0);
    }
    nix::net::if_::if_nametoindex(name).ok()
}

impl Interfaces {
    /// Opens a capture on each interface that exists and is up: failing to
    /// capture on one is the admin's to fix now (permissions, link type),
    /// not something to wait for. The others are waited for.
    pub fn open(names: &[String], only_v4: bool) -> Result<Self, CaptureError> {
        let mut slots = Vec::new();
        for name in names {
            let mut slot = Slot {
                name: name.clone(),
                cap: None,
                ifindex: 0,
                retry_at: None,
                backoff: FIRST_RETRY,
            };
            if let Some(index) = ifindex(name).filter(|_| netif::is_up(name)) {
                slot.cap = Some(LiveCapture::open(name)?);
                slot.ifindex = index;
            }
            slots.push(slot);
        }
        let netwatch = match NetWatch::open() {
            Ok(w) => Some(w),
            Err(e) => {
                tracing::warn!(%e, "no link-change notifications; retrying interfaces on a timer");
                None
            }
        };
        Ok(Interfaces {
            names: names.to_vec(),
            only_v4,
            slots,
            netwatch,
            local: Vec::new(),
        })
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

    /// When a retry is next due.
    pub fn next_deadline(&self) -> Option<Timestamp> {
        self.slots.iter().filter_map(|s| s.retry_at).min()
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
        slot.cap = None;
        slot.backoff = FIRST_RETRY;
        slot.retry_at = Some(now + FIRST_RETRY);
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
                slot.cap = None;
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
            match LiveCapture::open(&slot.name) {
                Ok(mut cap) => {
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
                            slot.cap = Some(cap);
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
                Some(Notice::CaptureStats {
                    iface: slot.name.clone(),
                    received: s.received,
                    dropped: s.dropped,
                    if_dropped: s.if_dropped,
                })
            })
            .collect()
    }
}
