//! Live and offline packet sources over libpcap.
//!
//! This module owns opening a capture (with the parameters a knock daemon
//! needs), installing the BPF filter and handing raw frames to a callback.
//! It must not parse packets (that is `wire`) or decide anything (`engine`).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::pcap_file::PcapFile;
use crate::core::wire::{LinkType, UnsupportedLinkType};

/// Bytes kept of each packet: enough for link, VLAN, IPv6 extension and
/// TCP headers; knocks carry no payload worth copying.
pub const SNAPLEN: i32 = 512;

/// Kernel buffer: a flood of spoofed knocks at hundreds of thousands of
/// packets per second must not overflow it while a batch is processed.
pub const BUFFER_BYTES: i32 = 32 << 20;

/// Frames handed over per wake-up before the loop looks at its timers and
/// signals again, so a flood cannot starve them.
pub const BATCH: usize = 1024;

/// A failure a user can cause or must know about, naming the interface or
/// file and the operation.
#[derive(Debug, thiserror::Error)]
pub enum CaptureError {
    #[error("cannot capture on {iface}: {source}")]
    Open { iface: String, source: pcap::Error },
    #[error("cannot read capture file {path}: {source}")]
    OpenFile { path: String, source: pcap::Error },
    #[error("{iface}: {source}")]
    LinkType {
        iface: String,
        source: UnsupportedLinkType,
    },
    #[error("{iface}: cannot install capture filter: {source} (filter: {filter})")]
    Filter {
        iface: String,
        filter: String,
        source: pcap::Error,
    },
    #[error("{iface}: capture failed: {source}")]
    Read { iface: String, source: pcap::Error },
}

/// Kernel counters of a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// A live capture on one interface, non-blocking, for a poll loop.
pub struct LiveCapture {
    iface: String,
    cap: pcap::Capture<pcap::Active>,
    link: LinkType,
}

impl LiveCapture {
    /// Opens `iface` (or `any`) for knocks: immediate mode so a knock is seen
    /// the moment it arrives rather than when a buffer fills, not
    /// promiscuous (knocks are addressed to us), non-blocking.
    pub fn open(iface: &str) -> Result<Self, CaptureError> {
        let open_err = |source| CaptureError::Open {
            iface: iface.to_string(),
            source,
        };
        let cap = pcap::Capture::from_device(iface)
            .map_err(open_err)?
            .snaplen(SNAPLEN)
            .promisc(false)
            .immediate_mode(true)
            .buffer_size(BUFFER_BYTES)
            .open()
            .map_err(open_err)?
            .setnonblock()
            .map_err(open_err)?;
        // Taken once from pcap, never guessed per packet. A live capture
        // reports raw IP as DLT_RAW (12), which from_dlt knows.
        let link =
            LinkType::from_dlt(cap.get_datalink().0).map_err(|source| CaptureError::LinkType {
                iface: iface.to_string(),
                source,
            })?;
        Ok(LiveCapture {
            iface: iface.to_string(),
            cap,
            link,
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Installs a BPF filter, replacing the previous one.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        self.cap
            .filter(filter, true)
            .map_err(|source| CaptureError::Filter {
                iface: self.iface.clone(),
                filter: filter.to_string(),
                source,
            })
    }

    /// Hands up to [`BATCH`] waiting frames to `each` (data, original
    /// length); returns how many. Zero means nothing is waiting.
    pub fn read_batch(&mut self, mut each: impl FnMut(&[u8], u32)) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < BATCH {
            match self.cap.next_packet() {
                Ok(p) => {
                    each(p.data, p.header.len);
                    n += 1;
                }
                Err(pcap::Error::TimeoutExpired) => break,
                Err(source) => {
                    return Err(CaptureError::Read {
                        iface: self.iface.clone(),
                        source,
                    })
                }
            }
        }
        Ok(n)
    }

    /// Packets received and dropped so far, as the kernel counts them.
    pub fn stats(&mut self) -> Option<Stats> {
        self.cap.stats().ok().map(|s| Stats {
            received: u64::from(s.received),
            dropped: u64::from(s.dropped),
            if_dropped: u64::from(s.if_dropped),
        })
    }
}

impl AsFd for LiveCapture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.cap.as_fd()
    }
}

/// A capture file (pcap or pcapng) read start to end.
pub struct FileCapture {
    path: String,
    reader: FileReader,
    link: LinkType,
}

/// Who reads the file: our own reader for the classic pcap files it
/// takes (see [`PcapFile`]), libpcap for everything else.
enum FileReader {
    Direct(PcapFile),
    Libpcap(pcap::Capture<pcap::Offline>),
}

/// One frame of a capture file with its capture time (nanoseconds since the
/// Unix epoch).
pub struct FileFrame<'a> {
    pub data: &'a [u8],
    pub wire_len: u32,
    pub ts_nanos: u64,
}

impl FileCapture {
    pub fn open(path: &Path) -> Result<Self, CaptureError> {
        let shown = path.display().to_string();
        if let Some(file) = PcapFile::open(path) {
            return Ok(FileCapture {
                path: shown,
                link: file.link(),
                reader: FileReader::Direct(file),
            });
        }
        let cap = pcap::Capture::from_file_with_precision(path, pcap::Precision::Nano).map_err(
            |source| CaptureError::OpenFile {
                path: shown.clone(),
                source,
            },
        )?;
        let link =
            LinkType::from_dlt(cap.get_datalink().0).map_err(|source| CaptureError::LinkType {
                iface: shown.clone(),
                source,
            })?;
        Ok(FileCapture {
            path: shown,
            reader: FileReader::Libpcap(cap),
            link,
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// The next frame, `None` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<FileFrame<'_>>, CaptureError> {
        let read_err = |source| CaptureError::Read {
            iface: self.path.clone(),
            source,
        };
        match &mut self.reader {
            FileReader::Direct(file) => match file.next_record() {
                Ok(r) => Ok(r.map(|r| FileFrame {
                    data: r.data,
                    wire_len: r.wire_len,
                    ts_nanos: r.ts_nanos,
                })),
                Err(e) => Err(read_err(pcap::Error::PcapError(e))),
            },
            FileReader::Libpcap(cap) => match cap.next_packet() {
                Ok(p) => {
                    let ts = p.header.ts;
                    // Opened with nanosecond precision: tv_usec holds
                    // nanoseconds.
                    let ts_nanos = (ts.tv_sec.max(0) as u64)
                        .saturating_mul(1_000_000_000)
                        .saturating_add(ts.tv_usec.max(0) as u64);
                    Ok(Some(FileFrame {
                        data: p.data,
                        wire_len: p.header.len,
                        ts_nanos,
                    }))
                }
                Err(pcap::Error::NoMorePackets) => Ok(None),
                Err(source) => Err(read_err(source)),
            },
        }
    }
}
