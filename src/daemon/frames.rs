//! Captured frames to knocks, with `-D`'s line per packet.

use super::clock::{debug_stamp, TimeBase};
use crate::core::knock::{Knock, Timestamp};
use crate::core::wire::{self, LinkType};

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
    match wire::parse(link, data, wire_len, at) {
        Ok(packet) => {
            if let Some(time) = debug {
                println!("{} {packet}", debug_stamp(time.wall(at)));
            }
            Some(packet.knock)
        }
        Err(skip) => {
            tracing::debug!(%skip, len = data.len(), "frame skipped");
            None
        }
    }
}
