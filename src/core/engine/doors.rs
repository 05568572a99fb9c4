//! The engine's doors as they are built from a config, and how a reload
//! maps the old doors onto the new. Part of the engine; split out of
//! `mod.rs`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use super::{DoorId, DoorState, Live, Variant};
use crate::core::config::{Config, Door, SequenceSource};

pub(super) fn door_states(config: &Config) -> Vec<DoorState> {
    config
        .doors
        .iter()
        .map(|d| DoorState {
            name: Arc::from(d.name.as_str()),
            config: d.clone(),
            live: Live::new(
                d.sequence
                    .current()
                    .cloned()
                    .map(Variant::only)
                    .into_iter()
                    .collect(),
            ),
            once: matches!(d.sequence, SequenceSource::Rotating { .. }),
        })
        .collect()
}

/// Whether `a` and `b` are the same door of users but for its users (a
/// key added or revoked).
pub(super) fn same_but_users(a: &Door, b: &Door) -> bool {
    use crate::core::config::SecretSource;
    let strip = |d: &Door| {
        let mut d = d.clone();
        match &mut d.sequence {
            SequenceSource::Rotating {
                secret: SecretSource::Dir { users, .. },
                ..
            } => *users = None,
            _ => return None,
        }
        Some(d)
    };
    matches!((strip(a), strip(b)), (Some(a), Some(b)) if a == b)
}

/// How door ids of `old` map to `new`: by name, and among doors sharing a
/// name, by their order.
pub(super) fn door_map(old: &[DoorState], new: &[DoorState]) -> Vec<Option<DoorId>> {
    let mut by_name: HashMap<&str, VecDeque<DoorId>> = HashMap::new();
    for (i, d) in new.iter().enumerate() {
        by_name
            .entry(&d.name)
            .or_default()
            .push_back(DoorId(i as u16));
    }
    old.iter()
        .map(|d| by_name.get_mut(&*d.name).and_then(VecDeque::pop_front))
        .collect()
}
