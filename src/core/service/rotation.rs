//! Rotating doors: which periods each one accepts now, when that changes,
//! and which periods already opened (a period opens once: a replay, by
//! anyone, is refused).
//!
//! The accepted periods are the current one and `Sequence_Skew` on either
//! side; their sequences are handed to the engine, current first. The
//! capture filter gets one more period ahead, so the ports of the period
//! about to start are let through before the boundary: a knock right after
//! it is never lost to a filter installed a moment late. (Filtering on the
//! whole port range instead would need no timing at all, but would let
//! every packet to a thousand ports reach user space, and a flooder who
//! does not know the secret could fill it for free.)

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use crate::core::config::{Config, Door, SecretSource, Sequence, SequenceSource};
use crate::core::engine::{DoorId, Variant};
use crate::core::knock::Timestamp;
use crate::core::rotate::{sequence, Rotation, Secret};

/// Periods remembered per door as opened: more than every period a clock
/// step back could bring into the window again.
const USED_HISTORY: usize = 64;

const NANOS: i128 = 1_000_000_000;

/// One rotating door.
struct RotatingDoor {
    door: DoorId,
    name: Arc<str>,
    config: Door,
    secret: Secret,
    rotation: Rotation,
    /// The period its variants were made for.
    current: Option<u64>,
    /// The sequence of the period after the accepted ones, for the filter.
    lookahead: Option<Sequence>,
}

/// Every rotating door of the running config.
#[derive(Default)]
pub(super) struct RotatingDoors {
    doors: Vec<RotatingDoor>,
    /// Periods that opened, by door name (kept across reloads).
    used: HashMap<Arc<str>, VecDeque<u64>>,
    /// Engine time plus this is Unix time, in nanoseconds.
    offset: i128,
}

impl RotatingDoors {
    /// The rotating doors of `config` whose secret is known (the shell
    /// resolved the files); what was used stays used.
    pub fn configure(&mut self, config: &Config) {
        self.doors = config
            .doors
            .iter()
            .enumerate()
            .filter_map(|(i, d)| match &d.sequence {
                SequenceSource::Rotating { secret, rotation } => {
                    let secret = match secret {
                        SecretSource::Inline(s) => s.clone(),
                        SecretSource::File { secret, .. } => secret.clone()?,
                    };
                    Some(RotatingDoor {
                        door: DoorId(i as u16),
                        name: Arc::from(d.name.as_str()),
                        config: d.clone(),
                        secret,
                        rotation: rotation.clone(),
                        current: None,
                        lookahead: None,
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

    /// For each door whose period changed by `now`: its new variants. The
    /// engine's `current` variants say which of the periods leaving opened.
    pub fn refresh(
        &mut self,
        now: Timestamp,
        current: impl Fn(DoorId) -> Vec<Variant>,
    ) -> Vec<(DoorId, Vec<Variant>)> {
        let unix = self.unix_secs(now);
        let mut out = Vec::new();
        for d in &mut self.doors {
            let p = d.rotation.counter(unix);
            if d.current == Some(p) {
                continue;
            }
            let used = self.used.entry(d.name.clone()).or_default();
            for v in current(d.door).iter().filter(|v| v.used) {
                if !used.contains(&v.label) {
                    if used.len() == USED_HISTORY {
                        used.pop_front();
                    }
                    used.push_back(v.label);
                }
            }
            let skew = u64::from(d.rotation.skew);
            // Current first, then the nearest periods on either side: a
            // first step shared by two periods starts the likelier one.
            let mut labels = vec![p];
            for k in 1..=skew {
                labels.extend(p.checked_sub(k));
                labels.extend(p.checked_add(k));
            }
            let variants = labels
                .into_iter()
                .map(|label| Variant {
                    label,
                    sequence: sequence(&d.secret, &d.name, &d.rotation, label),
                    used: used.contains(&label),
                })
                .collect();
            d.lookahead = p
                .checked_add(skew + 1)
                .map(|c| sequence(&d.secret, &d.name, &d.rotation, c));
            d.current = Some(p);
            out.push((d.door, variants));
        }
        out
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
    /// door's next period.
    pub fn lookahead(&self) -> impl Iterator<Item = (&Door, &Sequence)> {
        self.doors
            .iter()
            .filter_map(|d| d.lookahead.as_ref().map(|s| (&d.config, s)))
    }
}
