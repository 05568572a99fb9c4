//! Captured frames to knocks, with `-D`'s line per packet.

use super::clock::{debug_stamp, TimeBase};
use crate::core::knock::{Knock, Timestamp};
use crate::core::service::Notice;
use crate::core::wire::{self, LinkType, Packet, Skip};

/// Frames skipped for a reason the operator should hear of at shutdown:
/// sources that cannot be a host are forged, never a lost knock.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Skipped {
    /// [`Skip::NotAHost`] frames.
    pub not_a_host: u64,
}

impl Skipped {
    /// The shutdown (or end of `--read`) line, when there is something to
    /// say.
    pub fn notice(&self) -> Option<Notice> {
        (self.not_a_host > 0).then_some(Notice::NotAHost {
            count: self.not_a_host,
        })
    }
}

/// Parses one frame seen at `at` into a knock (`None`: not one, counted in
/// `skipped` when it says so). With `debug` (`-D`), prints the packet line,
/// stamped with the wall-clock time of `at`, or the reason for a skip.
pub fn knock_of(
    link: LinkType,
    data: &[u8],
    wire_len: u32,
    at: Timestamp,
    debug: Option<TimeBase>,
    skipped: &mut Skipped,
) -> Option<Knock> {
    let parsed = wire::parse(link, data, wire_len, at);
    take(&parsed, data.len(), debug, skipped)
}

/// The knock of a frame parsed earlier (`len`: its captured length), saying
/// now what [`knock_of`] says: so a reader that parses ahead still prints
/// each frame's line when its turn comes, between the lines of its
/// neighbours.
pub fn take(
    parsed: &Result<Packet, Skip>,
    len: usize,
    debug: Option<TimeBase>,
    skipped: &mut Skipped,
) -> Option<Knock> {
    match parsed {
        Ok(packet) => {
            if let Some(time) = debug {
                println!("{} {packet}", debug_stamp(time.wall(packet.knock.at)));
            }
            Some(packet.knock)
        }
        Err(skip) => {
            if let Skip::NotAHost(_) = skip {
                skipped.not_a_host += 1;
            }
            tracing::debug!(%skip, len, "frame skipped");
            None
        }
    }
}
