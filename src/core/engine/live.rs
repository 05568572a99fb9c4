//! A door's live sequences (its variants: one, or one per accepted period
//! and user), with the indexes that keep a knock's cost flat in their
//! number. Part of the engine; split out of `mod.rs`.

use std::collections::HashMap;
use std::sync::Arc;

use crate::core::config::{Sequence, Step};
use crate::core::knock::Proto;

/// One sequence a door accepts. A fixed or one-time door has at most one;
/// a rotating door has one per accepted period, labelled with the period's
/// counter, and each opens once; a door of users (`Sequence_Secret_Dir`)
/// has one per user and accepted period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Variant {
    /// The period counter of a rotating door; 0 otherwise.
    pub label: u64,
    pub sequence: Sequence,
    /// A rotating door's sequence that already opened: completing it again
    /// is a replay, refused.
    pub used: bool,
    /// Whose key the sequence was derived from (a door of users), for the
    /// line that names who opened, `%USER%` and the used mark.
    pub user: Option<Arc<str>>,
}

impl Variant {
    /// The one sequence of a fixed or one-time door.
    pub fn only(sequence: Sequence) -> Variant {
        Variant {
            label: 0,
            sequence,
            used: false,
            user: None,
        }
    }
}

/// Sequences a door accepts at once at most: a rotating door's current
/// period and up to three on either side, for each of its users.
pub const MAX_VARIANTS: usize =
    (2 * crate::core::rotate::MAX_SKEW as usize + 1) * crate::core::config::MAX_USERS;

/// Past this many live sequences a door looks a knock up in a hash index
/// instead of scanning them: a door of a thousand users costs the same per
/// knock as a door of one.
const SCAN_VARIANTS: usize = 8;

/// The live sequences of a door, with the indexes that keep a knock's cost
/// flat in their number.
#[derive(Default)]
pub(super) struct Live {
    pub(super) variants: Vec<Variant>,
    /// For each first step, the first variant (in order) starting with it
    /// (only past [`SCAN_VARIANTS`]).
    pub(super) starts: HashMap<Step, u16>,
    /// Every step of every variant (only past [`SCAN_VARIANTS`]).
    pub(super) steps: std::collections::HashSet<Step>,
    /// Variants by a hash of their first k steps, k >= 2 (only past
    /// [`SCAN_VARIANTS`], at a door of users): where an attempt goes when
    /// its next step is not its sequence's but another's that begins
    /// alike.
    pub(super) prefixes: HashMap<u64, Vec<u16>>,
    /// Its sequences are users' (`Sequence_Secret_Dir`): they may share
    /// first steps, so an attempt may move between them.
    pub(super) users: bool,
}

impl Live {
    pub(super) fn new(variants: Vec<Variant>) -> Live {
        let mut live = Live {
            variants,
            ..Live::default()
        };
        live.users = live.variants.iter().any(|v| v.user.is_some());
        if live.variants.len() > SCAN_VARIANTS {
            for (i, v) in live.variants.iter().enumerate() {
                let steps = v.sequence.steps();
                live.starts.entry(steps[0]).or_insert(i as u16);
                live.steps.extend(steps.iter().copied());
                if live.users {
                    for k in 2..=steps.len() {
                        live.prefixes
                            .entry(prefix_hash(&steps[..k]))
                            .or_default()
                            .push(i as u16);
                    }
                }
            }
        }
        live
    }

    /// At a door of users, the first variant that begins with the steps
    /// attempt `variant` matched so far (`stage` of them) and then `step`:
    /// the sequence the attempt really follows. O(1) past
    /// [`SCAN_VARIANTS`] (a hash of the prefix, then a check).
    pub(super) fn switch(&self, variant: u16, stage: usize, step: Step) -> Option<u16> {
        if !self.users {
            return None;
        }
        let matched = &self.variants.get(variant as usize)?.sequence.steps()[..stage];
        let fits = |w: &Variant| {
            let s = w.sequence.steps();
            s.len() > stage && s[..stage] == *matched && s[stage] == step
        };
        if self.variants.len() > SCAN_VARIANTS {
            let mut key = matched.to_vec();
            key.push(step);
            return self
                .prefixes
                .get(&prefix_hash(&key))?
                .iter()
                .copied()
                .find(|&w| fits(&self.variants[w as usize]));
        }
        self.variants.iter().position(fits).map(|i| i as u16)
    }

    pub(super) fn is_empty(&self) -> bool {
        self.variants.is_empty()
    }

    /// The variant a first step `step` starts: the first, in order, whose
    /// first step it is.
    #[inline]
    pub(super) fn starts(&self, step: Step) -> Option<u16> {
        if self.variants.len() > SCAN_VARIANTS {
            return self.starts.get(&step).copied();
        }
        self.variants
            .iter()
            .position(|v| v.sequence.steps()[0] == step)
            .map(|i| i as u16)
    }

    /// Whether any variant has a step to `port` over `proto`.
    #[inline]
    pub(super) fn has_step(&self, proto: Proto, port: u16) -> bool {
        if self.variants.len() > SCAN_VARIANTS {
            return self.steps.contains(&Step { proto, port });
        }
        self.variants.iter().any(|v| {
            v.sequence
                .steps()
                .iter()
                .any(|s| s.port == port && s.proto == proto)
        })
    }
}

/// A hash of a sequence's first steps (for [`Live::switch`]; collisions
/// are checked there).
fn prefix_hash(steps: &[Step]) -> u64 {
    steps.iter().fold(0xcbf2_9ce4_8422_2325, |h, s| {
        let v = (u64::from(s.port) << 1) | (s.proto as u64);
        (h ^ v).wrapping_mul(0x0100_0000_01b3)
    })
}
