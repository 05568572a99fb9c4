//! Classic pcap files read without libpcap, for `--read`'s speed.
//!
//! libpcap reads a savefile record by record, with two buffered `fread`
//! calls each (header, then data): at millions of frames per second that
//! was a quarter of a replay. This reader takes the file in large blocks
//! and hands out frames from its buffer.
//!
//! It takes only the files whose reading it can match exactly, and leaves
//! every other file to libpcap ([`PcapFile::open`] says `None`): pcapng,
//! byte-swapped files (libpcap rewrites some link headers of those), the
//! versions before 2.4 (their length fields may be swapped), the patched
//! "Kuznetzov" record format, and link types the wire parser does not
//! decode. For the files it takes, it gives what libpcap gives: the same
//! frames, lengths and timestamps (microsecond files scaled to
//! nanoseconds), frames longer than the file's snapshot length cut to it,
//! and the same message for a record libpcap refuses or a file cut short.
//! It must not parse frames (that is `wire`) or decide anything.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

use crate::core::wire::LinkType;

/// `TCPDUMP_MAGIC`, in the reader's byte order: microsecond timestamps.
const MAGIC_MICROS: u32 = 0xa1b2_c3d4;
/// `NSEC_TCPDUMP_MAGIC`: nanosecond timestamps.
const MAGIC_NANOS: u32 = 0xa1b2_3c4d;
/// libpcap's largest sane frame for the link types read here
/// (`MAXIMUM_SNAPLEN`).
const MAX_SNAPLEN: u32 = 262_144;
/// The savefile numbers of the link types `wire` decodes, which libpcap
/// maps to link types `LinkType::from_dlt` reads the same way: NULL,
/// EN10MB, RAW, LOOP, LINUX_SLL, IPV4, IPV6, LINUX_SLL2.
const LINKTYPES: [u32; 8] = [0, 1, 101, 108, 113, 228, 229, 276];
/// The file header and a record header.
const FILE_HEADER: usize = 24;
const RECORD_HEADER: usize = 16;
/// Bytes read from the file at once: many records per system call, and
/// always room for the largest record.
const BLOCK: usize = 1 << 20;

/// One record: its captured bytes and what its header says.
pub struct Record<'a> {
    pub data: &'a [u8],
    pub wire_len: u32,
    /// Nanoseconds since the Unix epoch (negative times as zero, as
    /// `FileCapture` reads libpcap's).
    pub ts_nanos: u64,
}

/// An open classic pcap file in the reader's byte order.
pub struct PcapFile {
    file: File,
    buf: Vec<u8>,
    /// Unread bytes are `buf[pos..end]`.
    pos: usize,
    end: usize,
    nanos: bool,
    /// libpcap's snapshot length for the file: longer records are cut.
    snapshot: u32,
    link: LinkType,
}

impl PcapFile {
    /// Opens `path` if it is a file this reader takes (see the module
    /// docs); `None` for every other file and every failure, so libpcap
    /// opens it and words whatever is wrong.
    pub fn open(path: &Path) -> Option<PcapFile> {
        let mut file = File::open(path).ok()?;
        let mut header = [0u8; FILE_HEADER];
        file.read_exact(&mut header).ok()?;
        let u32_at = |i: usize| u32::from_ne_bytes([0, 1, 2, 3].map(|k| header[i + k]));
        let u16_at = |i: usize| u16::from_ne_bytes([header[i], header[i + 1]]);
        let nanos = match u32_at(0) {
            MAGIC_MICROS => false,
            MAGIC_NANOS => true,
            _ => return None,
        };
        if (u16_at(4), u16_at(6)) != (2, 4) {
            return None;
        }
        // The whole field: extension bits (an FCS length) go to libpcap.
        let linktype = u32_at(20);
        if !LINKTYPES.contains(&linktype) {
            return None;
        }
        let link = LinkType::from_dlt(linktype as i32).ok()?;
        let snaplen = u32_at(16);
        // pcap_adjust_snapshot: a bogus length means the maximum.
        let snapshot = if snaplen == 0 || snaplen > i32::MAX as u32 {
            MAX_SNAPLEN
        } else {
            snaplen
        };
        Some(PcapFile {
            file,
            buf: vec![0; BLOCK],
            pos: 0,
            end: 0,
            nanos,
            snapshot,
            link,
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next record, `None` at the end of the file; `Err` holds
    /// libpcap's words for what is wrong.
    pub fn next_record(&mut self) -> Result<Option<Record<'_>>, String> {
        let got = self.fill(RECORD_HEADER)?;
        if got == 0 {
            return Ok(None);
        }
        if got < RECORD_HEADER {
            return Err(format!(
                "truncated dump file; tried to read {RECORD_HEADER} header bytes, only got {got}"
            ));
        }
        let h = &self.buf[self.pos..self.pos + RECORD_HEADER];
        let field = |i: usize| u32::from_ne_bytes([h[i], h[i + 1], h[i + 2], h[i + 3]]);
        // Both time fields are signed 32-bit in the format.
        let (sec, frac) = (i64::from(field(0) as i32), i64::from(field(4) as i32));
        let (caplen, wire_len) = (field(8), field(12));
        self.pos += RECORD_HEADER;
        if caplen > MAX_SNAPLEN {
            return Err(if caplen > self.snapshot {
                format!(
                    "invalid packet capture length {caplen}, bigger than snaplen of {}",
                    self.snapshot
                )
            } else {
                format!(
                    "invalid packet capture length {caplen}, bigger than maximum of {MAX_SNAPLEN}"
                )
            });
        }
        // A record longer than the snapshot length is cut to it, the rest
        // read and dropped.
        let keep = caplen.min(self.snapshot) as usize;
        let got = self.fill(caplen as usize)?;
        if got < keep {
            return Err(format!(
                "truncated dump file; tried to read {keep} captured bytes, only got {got}"
            ));
        }
        if got < caplen as usize {
            return Err(format!(
                "truncated dump file; tried to read {caplen} captured bytes, only got {got}"
            ));
        }
        let data = &self.buf[self.pos..self.pos + keep];
        self.pos += caplen as usize;
        let frac = if self.nanos { frac } else { frac * 1000 };
        let ts_nanos = (sec.max(0) as u64)
            .saturating_mul(1_000_000_000)
            .saturating_add(frac.max(0) as u64);
        Ok(Some(Record {
            data,
            wire_len,
            ts_nanos,
        }))
    }

    /// Makes `need` bytes (at most [`BLOCK`]) unread in the buffer, or as
    /// many as the file still has; returns how many there are.
    fn fill(&mut self, need: usize) -> Result<usize, String> {
        if self.end - self.pos >= need {
            return Ok(self.end - self.pos);
        }
        self.buf.copy_within(self.pos..self.end, 0);
        self.end -= self.pos;
        self.pos = 0;
        while self.end < need {
            match self.file.read(&mut self.buf[self.end..]) {
                Ok(0) => break,
                Ok(n) => self.end += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(read_error(&e)),
            }
        }
        Ok(self.end)
    }
}

/// libpcap's words for a failed read: "error reading dump file: " and the
/// system's message.
fn read_error(e: &io::Error) -> String {
    let reason = match e.raw_os_error() {
        Some(code) => nix::errno::Errno::from_raw(code).desc().to_string(),
        None => e.to_string(),
    };
    format!("error reading dump file: {reason}")
}

#[cfg(test)]
mod tests;
