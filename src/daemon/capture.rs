//! Live and offline packet sources: a plain packet socket where the
//! interface allows ([`super::packet_socket`]), libpcap otherwise.
//!
//! This module owns opening a capture (with the parameters a knock daemon
//! needs), installing the BPF filter, handing raw frames to a callback, and
//! moving a live capture (socket or ring) to a ring of another size, or
//! back to a socket, without losing or repeating a packet
//! ([`super::fanout`]). It must not parse packets (that
//! is `wire`) or decide anything (`engine`; when to resize is
//! [`crate::core::ring`]'s).

use std::os::fd::{AsFd, BorrowedFd};
use std::path::Path;

use super::packet_socket::{self, PacketSocket};
use super::pcap_file::PcapFile;
use super::{fanout, fds};
use crate::core::ring;
use crate::core::wire::{LinkType, UnsupportedLinkType};

/// Bytes kept of each packet: the headers a knock is read from and no
/// more, so the kernel ring holds as many packets as possible. The worst
/// case the decoder must see whole is Ethernet with two VLAN tags (22),
/// IPv6 (40) with extension headers, then the 14 TCP bytes it reads: this
/// leaves 112 bytes for extension headers (hop-by-hop, destination options,
/// routing, AH in any combination real traffic carries). With Ethernet
/// framing libpcap then lays out exactly 256 bytes per packet, 16 to a
/// page.
pub const SNAPLEN: i32 = 188;

/// The receive queue of a packet-socket capture: kernel memory taken per
/// packet only while it waits to be read (about 830 bytes for a small
/// packet on `lo`), so about 80 000 packets, more than the 65 536 of
/// libpcap's flood ring ([`crate::core::ring::FLOOD_BYTES`]), and nothing
/// while idle.
pub const SOCKET_QUEUE_BYTES: usize = 64 << 20;

/// Frames handed over per wake-up before the loop looks at its timers and
/// signals again, so a flood cannot starve them.
pub const BATCH: usize = 1024;

/// The interface libpcap treats as loopback: it throws away the copy of
/// each packet the host sends there and keeps the one it receives.
const LOOPBACK: &str = "lo";

/// Stack of the thread that opens a capture (libpcap's activation and
/// filter compiler need a few KiB).
const OPENING_STACK: usize = 256 << 10;

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
    #[error("{iface}: cannot install capture filter: {source} (filter: {filter})")]
    FilterRefused {
        iface: String,
        filter: String,
        source: std::io::Error,
    },
    #[error("{iface}: capture failed: {source}")]
    Read { iface: String, source: pcap::Error },
    #[error("{iface}: capture failed: {source}")]
    Socket {
        iface: String,
        source: std::io::Error,
    },
    /// Moving a capture to another ring failed; only ever reported inside a
    /// line that names the interface and the ring.
    #[error("{0}")]
    Resize(std::io::Error),
}

/// Kernel counters of a live capture.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
}

/// Where a live capture's packets come from.
enum Source {
    /// libpcap's memory-mapped ring.
    Pcap(pcap::Capture<pcap::Active>),
    /// A packet socket's receive queue.
    Socket(PacketSocket),
}

/// A live capture on one interface, non-blocking, for a poll loop.
pub struct LiveCapture {
    iface: String,
    source: Source,
    link: LinkType,
    ring_bytes: usize,
    /// The fanout group this capture receives through, when the kernel
    /// has them: what lets it hand over to a capture with another ring.
    group: Option<fanout::Group>,
    /// Counters at the moment this capture started receiving: what it saw
    /// before (copies its predecessor got as well) is not counted.
    base: Stats,
    /// Kernel drops already reported by [`LiveCapture::new_drops`].
    drops_seen: u64,
    /// Tells this capture from one opened later under the same descriptor
    /// number (the run loop's epoll set must register that one again).
    serial: u64,
}

/// The serial number of the next capture opened.
static NEXT_SERIAL: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(1);

fn next_serial() -> u64 {
    NEXT_SERIAL.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}

impl LiveCapture {
    /// Opens `iface` (or `any`) for knocks with a kernel ring of about
    /// `ring_bytes`: immediate mode so a knock is seen the moment it arrives
    /// rather than when a buffer fills, not promiscuous (knocks are
    /// addressed to us), non-blocking. It joins a fanout group of its own
    /// before any filter is installed; where the kernel refuses, the
    /// capture works the same but cannot be resized.
    pub fn open(iface: &str, ring_bytes: usize) -> Result<Self, CaptureError> {
        let mut cap = Self::activate(iface, ring_bytes)?;
        cap.group = match fanout::create(cap.as_fd(), iface == LOOPBACK) {
            Ok(group) => Some(group),
            Err(e) => {
                tracing::debug!(iface, %e, "no fanout group: the capture ring keeps its size");
                None
            }
        };
        Ok(cap)
    }

    /// Opens `iface` on a packet socket with a receive queue of
    /// `queue_bytes`, taking no packet until a filter is installed, in a
    /// fanout group of its own (so that a flood can move it to a ring, as
    /// [`LiveCapture::open`]). `Ok(None)` when the interface's frames do
    /// not start with an Ethernet header (or it cannot be told): open it
    /// with libpcap.
    pub fn open_socket(iface: &str, queue_bytes: usize) -> Result<Option<Self>, CaptureError> {
        let Some(mut cap) = Self::socket(iface, queue_bytes)? else {
            return Ok(None);
        };
        cap.group = match fanout::create(cap.as_fd(), iface == LOOPBACK) {
            Ok(group) => Some(group),
            Err(e) => {
                tracing::debug!(iface, %e, "no fanout group: the capture stays on its socket");
                None
            }
        };
        Ok(Some(cap))
    }

    fn socket(iface: &str, queue_bytes: usize) -> Result<Option<Self>, CaptureError> {
        if packet_socket::suits(iface) != Some(true) {
            return Ok(None);
        }
        let sock =
            PacketSocket::open(iface, queue_bytes).map_err(|source| CaptureError::Socket {
                iface: iface.to_string(),
                source,
            })?;
        Ok(Some(LiveCapture {
            iface: iface.to_string(),
            source: Source::Socket(sock),
            link: LinkType::Ethernet,
            ring_bytes: ring::SOCKET,
            group: None,
            base: Stats::default(),
            drops_seen: 0,
            serial: next_serial(),
        }))
    }

    fn activate(iface: &str, ring_bytes: usize) -> Result<Self, CaptureError> {
        let open_err = |source| CaptureError::Open {
            iface: iface.to_string(),
            source,
        };
        let cap = pcap::Capture::from_device(iface)
            .map_err(open_err)?
            .snaplen(SNAPLEN)
            .promisc(false)
            .immediate_mode(true)
            .buffer_size(i32::try_from(ring_bytes).unwrap_or(i32::MAX))
            .open()
            .map_err(open_err)?
            .setnonblock()
            .map_err(open_err)?;
        // libpcap does not open it close-on-exec. Failing to mark it here
        // leaks nothing: every descriptor is marked again for each command
        // (fds::confine).
        let _ = fds::set_cloexec(cap.as_fd());
        // Taken once from pcap, never guessed per packet. A live capture
        // reports raw IP as DLT_RAW (12), which from_dlt knows.
        let link =
            LinkType::from_dlt(cap.get_datalink().0).map_err(|source| CaptureError::LinkType {
                iface: iface.to_string(),
                source,
            })?;
        Ok(LiveCapture {
            iface: iface.to_string(),
            source: Source::Pcap(cap),
            link,
            ring_bytes,
            group: None,
            base: Stats::default(),
            drops_seen: 0,
            serial: next_serial(),
        })
    }

    pub fn link(&self) -> LinkType {
        self.link
    }

    /// Different for every capture the daemon opens.
    pub fn serial(&self) -> u64 {
        self.serial
    }

    /// Whether packets come from a packet socket rather than libpcap's ring.
    pub fn is_socket(&self) -> bool {
        matches!(self.source, Source::Socket(_))
    }

    /// The ring size asked for when this capture was opened
    /// ([`ring::SOCKET`] for a packet socket).
    pub fn ring_bytes(&self) -> usize {
        self.ring_bytes
    }

    /// Whether a capture opened with [`LiveCapture::open_sibling`] can take
    /// over from this one.
    pub fn resizable(&self) -> bool {
        self.group.is_some()
    }

    /// Starts opening a capture of the same interface with a ring of
    /// about `ring_bytes` and `filter` installed, to take over from this
    /// one ([`LiveCapture::hand_over`]). It is opened on a helper thread:
    /// the kernel takes milliseconds to set up a large ring, and this
    /// capture must go on being read meanwhile.
    pub fn open_sibling(&self, ring_bytes: usize, filter: &str) -> Result<Opening, CaptureError> {
        let Some(group) = self.group else {
            return Err(CaptureError::Resize(std::io::Error::from(
                std::io::ErrorKind::Unsupported,
            )));
        };
        let iface = self.iface.clone();
        let wanted = filter.to_string();
        let thread = std::thread::Builder::new()
            .name("knockd-ring".into())
            .stack_size(OPENING_STACK)
            .spawn(move || Self::sibling(&iface, group, ring_bytes, &wanted))
            .map_err(CaptureError::Resize)?;
        Ok(Opening {
            thread,
            filter: filter.to_string(),
        })
    }

    /// On the helper thread: the new capture, in fanout group `group` but
    /// not receiving yet. What reached it before it joined the group (the
    /// capture it takes over from got those packets too) is read and thrown
    /// away, so once handed over to, its ring holds only packets the other
    /// one never saw. Before that read, the group's steering is set again
    /// to what it is: the kernel returns from that only when every packet
    /// on its way to this socket from before it joined has landed (an RCU
    /// grace period, 10 to 50 ms, which costs this thread and not the
    /// loop reading the old ring).
    fn sibling(
        iface: &str,
        group: fanout::Group,
        ring_bytes: usize,
        filter: &str,
    ) -> Result<LiveCapture, CaptureError> {
        let mut next = if ring_bytes == ring::SOCKET {
            Self::socket(iface, SOCKET_QUEUE_BYTES)?.ok_or_else(|| {
                CaptureError::Resize(std::io::Error::from(std::io::ErrorKind::Unsupported))
            })?
        } else {
            // libpcap's socket is not close-on-exec until activate marks
            // it; no command may be forked in between and inherit it.
            let _fds = fds::open_guard();
            Self::activate(iface, ring_bytes)?
        };
        next.set_filter(filter)?;
        fanout::join(next.as_fd(), group).map_err(CaptureError::Resize)?;
        next.group = Some(group);
        fanout::steer(next.as_fd(), 0).map_err(CaptureError::Resize)?;
        while next.read_batch(|_, _| {})? == BATCH {}
        next.base = next.raw_stats().unwrap_or_default();
        Ok(next)
    }

    /// Steers the group from this capture to `next` (its second member).
    /// When this returns, no packet is on its way into this capture's ring
    /// any more: read it to its end, then drop it.
    pub fn hand_over(&self, next: &LiveCapture) -> Result<(), CaptureError> {
        fanout::steer(next.as_fd(), 1).map_err(CaptureError::Resize)
    }

    /// Called on the capture that took over once its predecessor is gone:
    /// it is now the group's only member (number 0), and the group is
    /// steered to 0 again so that the next sibling to join (number 1)
    /// receives nothing until handed over to. Should the kernel refuse,
    /// this capture keeps receiving but can no longer be resized.
    pub fn settle(&mut self) {
        if let Err(e) = fanout::steer(self.as_fd(), 0) {
            tracing::warn!(iface = %self.iface, %e, "cannot reset the fanout group; the capture ring keeps its size");
            self.group = None;
        }
    }

    /// Installs a BPF filter, replacing the previous one.
    pub fn set_filter(&mut self, filter: &str) -> Result<(), CaptureError> {
        let compile_err = |source| CaptureError::Filter {
            iface: self.iface.clone(),
            filter: filter.to_string(),
            source,
        };
        match &mut self.source {
            Source::Pcap(cap) => cap.filter(filter, true).map_err(compile_err),
            Source::Socket(sock) => {
                let program = compile_ethernet(filter).map_err(compile_err)?;
                sock.set_filter(&program)
                    .map_err(|source| CaptureError::FilterRefused {
                        iface: self.iface.clone(),
                        filter: filter.to_string(),
                        source,
                    })
            }
        }
    }

    /// Hands up to [`BATCH`] waiting frames to `each` (data, original
    /// length); returns how many. Zero means nothing is waiting.
    pub fn read_batch(&mut self, mut each: impl FnMut(&[u8], u32)) -> Result<usize, CaptureError> {
        let cap = match &mut self.source {
            Source::Pcap(cap) => cap,
            Source::Socket(sock) => {
                return sock
                    .read(BATCH, each)
                    .map_err(|source| CaptureError::Socket {
                        iface: self.iface.clone(),
                        source,
                    })
            }
        };
        let mut n = 0;
        while n < BATCH {
            match cap.next_packet() {
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

    /// Packets received and dropped while this capture was the one
    /// receiving, as the kernel counts them.
    pub fn stats(&mut self) -> Option<Stats> {
        let s = self.raw_stats()?;
        Some(Stats {
            received: s.received.saturating_sub(self.base.received),
            dropped: s.dropped.saturating_sub(self.base.dropped),
            if_dropped: s.if_dropped.saturating_sub(self.base.if_dropped),
        })
    }

    /// Packets the kernel dropped for want of ring space since the last
    /// call: the sign that the ring is too small.
    pub fn new_drops(&mut self) -> u64 {
        let Some(s) = self.stats() else { return 0 };
        let new = s.dropped.saturating_sub(self.drops_seen);
        self.drops_seen = s.dropped;
        new
    }

    fn raw_stats(&mut self) -> Option<Stats> {
        match &mut self.source {
            Source::Pcap(cap) => cap.stats().ok().map(|s| Stats {
                received: u64::from(s.received),
                dropped: u64::from(s.dropped),
                if_dropped: u64::from(s.if_dropped),
            }),
            Source::Socket(sock) => sock.counters().ok().map(|c| Stats {
                received: c.received,
                dropped: c.dropped,
                if_dropped: 0,
            }),
        }
    }
}

/// A capture being opened on a helper thread to take over from another.
pub struct Opening {
    thread: std::thread::JoinHandle<Result<LiveCapture, CaptureError>>,
    filter: String,
}

impl Opening {
    /// Whether [`Opening::finish`] would return at once.
    pub fn is_done(&self) -> bool {
        self.thread.is_finished()
    }

    /// The opened capture, ready to be handed over to, with `filter`
    /// installed in case the filter changed while it was being opened.
    pub fn finish(self, filter: &str) -> Result<LiveCapture, CaptureError> {
        let mut next = self
            .thread
            .join()
            .map_err(|_| CaptureError::Resize(std::io::Error::other("opening thread failed")))??;
        if filter != self.filter {
            next.set_filter(filter)?;
        }
        Ok(next)
    }
}

impl AsFd for LiveCapture {
    fn as_fd(&self) -> BorrowedFd<'_> {
        match &self.source {
            Source::Pcap(cap) => cap.as_fd(),
            Source::Socket(sock) => sock.as_fd(),
        }
    }
}

/// `filter` compiled by libpcap for Ethernet frames, without opening a
/// capture, as the kernel takes it.
fn compile_ethernet(filter: &str) -> Result<Vec<libc::sock_filter>, pcap::Error> {
    let dead = pcap::Capture::dead(pcap::Linktype::ETHERNET)?;
    let program = dead.compile(filter, true)?;
    let insns = program.get_instructions();
    // SAFETY: `BpfInstruction` is a transparent wrapper of libpcap's
    // `struct bpf_insn` (u16 code, u8 jt, u8 jf, u32 k), which is the
    // kernel's `struct sock_filter` field for field; `insns` is a live
    // slice of that many.
    let kernel = unsafe { std::slice::from_raw_parts(insns.as_ptr().cast(), insns.len()) };
    Ok(kernel.to_vec())
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
