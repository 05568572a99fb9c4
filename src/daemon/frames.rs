//! Captured frames to knocks, with `-D`'s line per packet.

use super::clock::{debug_stamp, TimeBase};
use crate::core::knock::{Knock, Timestamp};
use crate::core::wire::{self, LinkType, Packet, Skip};

/// Parses one frame seen at `at` into a knock (`None`: not one). With
/// `debug` (`-D`), prints the packet line, stamped with the wall-clock
/// time of `at`.
pub fn knock_of(
    link: LinkType,
    data: &[u8],
    wire_len: u32,
    at: Timestamp,
    debug: Option<TimeBase>,
) -> Option<Knock> {
    let parsed = wire::parse(link, data, wire_len, at);
    take(&parsed, data.len(), debug)
}

/// The knock of a frame parsed earlier (`len`: its captured length), saying
/// now what [`knock_of`] says: so a reader that parses ahead still prints
/// each frame's line when its turn comes, between the lines of its
/// neighbours.
pub fn take(parsed: &Result<Packet, Skip>, len: usize, debug: Option<TimeBase>) -> Option<Knock> {
    match parsed {
        Ok(packet) => {
            if let Some(time) = debug {
                println!("{} {packet}", debug_stamp(time.wall(packet.knock.at)));
            }
            Some(packet.knock)
        }
        Err(skip) => {
            tracing::debug!(%skip, len, "frame skipped");
            None
        }
    }
}
