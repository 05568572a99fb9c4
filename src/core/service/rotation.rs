//! Rotating doors: which periods each one accepts now, when that changes,
//! and which periods already opened (a period opens once, ever: a replay,
//! by anyone, is refused).
//!
//! The used marks are this module's, by door name, user (a door of users,
//! `Sequence_Secret_Dir`: each user's periods open once, apart from
//! everyone else's) and period counter (a counter of Unix time, not of the
//! engine's clock), so they outlive a
//! reload (the engine's sequences are made anew), a restart (they are
//! journaled and handed back by `handle_restore`) and a wall-clock step
//! back (a mark is kept [`STEP_BACK`] past the last moment its period can
//! be accepted). The engine's `used` flags are only their copy for the
//! knock path.
//!
//! The accepted periods are the current one and `Sequence_Skew` on either
//! side; their sequences are handed to the engine, current first. The
//! capture filter gets one more period ahead, so the ports of the period
//! about to start are let through before the boundary: a knock right after
//! it is never lost to a filter installed a moment late. (Filtering on the
//! whole port range instead would need no timing at all, but would let
//! every packet to a thousand ports reach user space, and a flooder who
//! does not know the secret could fill it for free.)

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::config::{Config, Door, SecretSource, Sequence, SequenceSource};
use crate::core::engine::{DoorId, Variant};
use crate::core::knock::Timestamp;
use crate::core::rotate::{sequence, Rotation, Secret};
use crate::core::service::effect::UsedMark;

/// How far back a wall-clock step may go and still find a used period
/// refused: a mark is kept this long after its period left the accepted
/// window.
pub const STEP_BACK: u64 = 24 * 3600;

/// Used marks kept at most, every door together. Openings are bounded per
/// minute, so this is reached only past ~90 openings a minute, every minute
/// of a day; then the mark expiring first is dropped.
pub const MAX_USED: usize = 1 << 17;

const NANOS: i128 = 1_000_000_000;

/// The key of a used mark: door name, user (a door of users), period.
type MarkKey = (Arc<str>, Option<Arc<str>>, u64);

/// One rotating door.
struct RotatingDoor {
    door: DoorId,
    name: Arc<str>,
    config: Door,
    /// Its secret (user `None`), or each user's, sorted by name.
    keys: Vec<(Option<Arc<str>>, Secret)>,
    rotation: Rotation,
    /// The period its variants were made for.
    current: Option<u64>,
    /// The sequences of the period after the accepted ones (one per key),
    /// for the filter.
    lookahead: Vec<Sequence>,
}

/// Every rotating door of the running config.
#[derive(Default)]
pub(super) struct RotatingDoors {
    doors: Vec<RotatingDoor>,
    /// Periods that opened, by door name and period, with the Unix second
    /// until which each mark is kept (across reloads and, journaled,
    /// restarts).
    used: HashMap<MarkKey, u64>,
    /// Engine time plus this is Unix time, in nanoseconds.
    offset: i128,
}

impl RotatingDoors {
    /// The rotating doors of `config` whose secrets are known (the shell
    /// resolved the files); what was used stays used. A user whose key is
    /// gone (revoked) has no sequence from now on; everyone else's marks
    /// and sequences are as they were.
    pub fn configure(&mut self, config: &Config) {
        self.doors = config
            .doors
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match &d.sequence {
                SequenceSource::Rotating { secret, rotation } => {
                    let keys = match secret {
                        SecretSource::Inline(s) => vec![(None, s.clone())],
                        SecretSource::File { secret, .. } => vec![(None, secret.clone()?)],
                        SecretSource::Dir { users, .. } => users
                            .as_ref()?
                            .iter()
                            .map(|u| (Some(u.name.clone()), u.secret.clone()))
                            .collect(),
                    };
                    Some(RotatingDoor {
                        door: DoorId(i as u16),
                        name: Arc::from(d.name.as_str()),
                        config: d.clone(),
                        keys,
                        rotation: rotation.clone(),
                        current: None,
                        lookahead: Vec::new(),
                    })
                }
                _ => None,
            })
            .collect();
    }

    pub fn is_empty(&self) -> bool {
        self.doors.is_empty()
    }

    /// Engine time plus `offset` is Unix time (nanoseconds). Returns
    /// whether it moved enough to matter (the wall clock was set; two
    /// readings of the clocks always differ by a little).
    pub fn set_offset(&mut self, offset: i128) -> bool {
        const NOISE: i128 = 50_000_000;
        let moved = (offset - self.offset).abs() > NOISE;
        if moved {
            self.offset = offset;
        }
        moved
    }

    fn unix_secs(&self, now: Timestamp) -> u64 {
        let ns = i128::from(now.as_nanos()) + self.offset;
        u64::try_from(ns.max(0) / NANOS).unwrap_or(u64::MAX)
    }

    /// For each door whose period changed by `now` (or that has no
    /// variants yet, after a reload): its new variants, marked used from
    /// the marks kept here.
    pub fn refresh(&mut self, now: Timestamp) -> Vec<(DoorId, Vec<Variant>)> {
        let unix = self.unix_secs(now);
        let mut out = Vec::new();
        let mut changed = false;
        for d in &mut self.doors {
            let p = d.rotation.counter(unix);
            if d.current == Some(p) {
                continue;
            }
            changed = true;
            let skew = u64::from(d.rotation.skew);
            // Current first, then the nearest periods on either side: a
            // first step shared by two periods starts the likelier one.
            let mut labels = vec![p];
            for k in 1..=skew {
                labels.extend(p.checked_sub(k));
                labels.extend(p.checked_add(k));
            }
            // Each period, every user: one derivation per (user, period),
            // once per period change, never per knock.
            let used = &self.used;
            let mut variants = Vec::with_capacity(labels.len() * d.keys.len());
            for &label in &labels {
                for (user, secret) in &d.keys {
                    variants.push(Variant {
                        label,
                        sequence: sequence(secret, &d.name, &d.rotation, label),
                        used: used.contains_key(&(d.name.clone(), user.clone(), label)),
                        user: user.clone(),
                    });
                }
            }
            d.lookahead = match p.checked_add(skew + 1) {
                Some(c) => d
                    .keys
                    .iter()
                    .map(|(_, secret)| sequence(secret, &d.name, &d.rotation, c))
                    .collect(),
                None => Vec::new(),
            };
            d.current = Some(p);
            out.push((d.door, variants));
        }
        if changed {
            self.used.retain(|_, keep_until| *keep_until > unix);
        }
        out
    }

    /// Whether period `period` of the door named `name` opened already
    /// (for `user`, at a door of users).
    pub fn is_used(&self, name: &Arc<str>, user: Option<&Arc<str>>, period: u64) -> bool {
        self.used
            .contains_key(&(name.clone(), user.cloned(), period))
    }

    /// Whether rotating door `door` accepts period `period` now: what a
    /// proposal must name to be taken.
    pub fn accepts(&self, door: DoorId, period: u64) -> bool {
        self.doors.iter().any(|d| {
            d.door == door
                && d.current
                    .is_some_and(|p| p.abs_diff(period) <= u64::from(d.rotation.skew))
        })
    }

    /// Marks period `period` of rotating door `door` used (by `user`, at
    /// a door of users), and returns the mark to journal (`None`: not a
    /// rotating door).
    pub fn mark_used(
        &mut self,
        door: DoorId,
        user: Option<Arc<str>>,
        period: u64,
    ) -> Option<UsedMark> {
        let d = self.doors.iter().find(|d| d.door == door)?;
        let skew = u64::from(d.rotation.skew);
        // The last second the period can be accepted, plus a step back.
        let keep_until = period
            .saturating_add(skew + 1)
            .saturating_mul(d.rotation.period)
            .saturating_add(STEP_BACK);
        let mark = UsedMark {
            door: d.name.clone(),
            user,
            period,
            keep_until,
        };
        self.keep(mark.clone());
        Some(mark)
    }

    /// Keeps `mark` (one restored from the journal, or just made).
    pub fn keep(&mut self, mark: UsedMark) {
        let key = (mark.door, mark.user, mark.period);
        if self.used.len() >= MAX_USED && !self.used.contains_key(&key) {
            let first = self
                .used
                .iter()
                .min_by_key(|(_, until)| **until)
                .map(|(k, _)| k.clone());
            if let Some(k) = first {
                self.used.remove(&k);
            }
        }
        self.used.insert(key, mark.keep_until);
    }

    /// Takes back the mark of period `period` of the door named `name`
    /// (and `user`) (the opening was refused after all).
    pub fn unmark(&mut self, name: &Arc<str>, user: Option<&str>, period: u64) {
        self.used
            .remove(&(name.clone(), user.map(Arc::from), period));
    }

    /// Every door's variants are made again at the next refresh (used
    /// marks were restored).
    pub fn reset_current(&mut self) {
        for d in &mut self.doors {
            d.current = None;
        }
    }

    /// Used marks kept.
    pub fn used_count(&self) -> usize {
        self.used.len()
    }

    /// The marks kept (for a journal rewrite), in a stable order.
    pub fn marks(&self) -> Vec<UsedMark> {
        let mut v: Vec<UsedMark> = self
            .used
            .iter()
            .map(|((door, user, period), keep_until)| UsedMark {
                door: door.clone(),
                user: user.clone(),
                period: *period,
                keep_until: *keep_until,
            })
            .collect();
        v.sort_by(|a, b| (&a.door, &a.user, a.period).cmp(&(&b.door, &b.user, b.period)));
        v
    }

    /// Unix time at engine time `now`, in seconds.
    pub fn unix_at(&self, now: Timestamp) -> u64 {
        self.unix_secs(now)
    }

    /// When the next period starts for some door, in engine time.
    pub fn next_boundary(&self) -> Option<Timestamp> {
        self.doors
            .iter()
            .filter_map(|d| {
                let next = d.current?.checked_add(1)?;
                let unix_ns = i128::from(next) * i128::from(d.rotation.period) * NANOS;
                let engine = (unix_ns - self.offset).max(0);
                Some(Timestamp::from_nanos(
                    u64::try_from(engine).unwrap_or(u64::MAX),
                ))
            })
            .min()
    }

    /// The sequences the filter lets through beyond the engine's: each
    /// door's next period (each user's, at a door of users).
    pub fn lookahead(&self) -> impl Iterator<Item = (&Door, &Sequence)> {
        self.doors
            .iter()
            .flat_map(|d| d.lookahead.iter().map(|s| (&d.config, s)))
    }
}
