//! Where frames come from, and what happens to them afterwards.
//!
//! The engine never learns whether a frame came from a capture file or an AF_XDP ring: a
//! [`PacketSource`] hands it frames in batches and applies the [`Action`] it returns for each.

use std::fmt;

pub mod pcap;
pub mod pcapwrite;

/// The largest captured length accepted for one record. libpcap and Wireshark cap snaplen at
/// 256 KiB too; anything larger is a damaged length field, not a packet.
pub const MAX_RECORD_LEN: usize = 256 * 1024;

/// Nanoseconds since the Unix epoch, taken from the capture record or the receive clock.
///
/// Every timeout in the engine runs on this packet time, so a replay is deterministic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Timestamp(pub u64);

impl Timestamp {
    pub const NANOS_PER_SEC: u64 = 1_000_000_000;

    pub fn from_secs_nanos(secs: u64, nanos: u32) -> Self {
        Timestamp(
            secs.saturating_mul(Self::NANOS_PER_SEC)
                .saturating_add(nanos as u64),
        )
    }

    pub fn secs(self) -> u64 {
        self.0 / Self::NANOS_PER_SEC
    }

    pub fn subsec_nanos(self) -> u32 {
        (self.0 % Self::NANOS_PER_SEC) as u32
    }

    /// Time from `earlier` to `self`; zero when the clock went backwards (captures do that).
    pub fn since(self, earlier: Timestamp) -> u64 {
        self.0.saturating_sub(earlier.0)
    }

    pub fn add_nanos(self, nanos: u64) -> Self {
        Timestamp(self.0.saturating_add(nanos))
    }

    /// The wall clock now; used by live sources once per batch.
    pub fn now() -> Self {
        let d = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        Timestamp::from_secs_nanos(d.as_secs(), d.subsec_nanos())
    }
}

/// How a frame's bytes begin: the link layer header type of its capture or port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// DLT_EN10MB (1): Ethernet II, possibly with 802.1Q / 802.1ad tags.
    Ethernet,
    /// DLT_LINUX_SLL (113): Linux cooked capture v1.
    LinuxSll,
    /// DLT_LINUX_SLL2 (276): Linux cooked capture v2.
    LinuxSll2,
    /// DLT_RAW (101, and 12/14 on some systems): an IPv4 or IPv6 header first.
    RawIp,
    /// DLT_IPV4 (228): IPv4 only.
    Ipv4,
    /// DLT_IPV6 (229): IPv6 only.
    Ipv6,
    /// DLT_NULL (0) and DLT_LOOP (108): a 4-byte address family, host or network order.
    Null,
}

impl LinkType {
    /// Maps a pcap/pcapng LINKTYPE_ value to a supported link type, `None` when unsupported.
    pub fn from_linktype(value: u32) -> Option<Self> {
        Some(match value {
            0 | 108 => LinkType::Null,
            1 => LinkType::Ethernet,
            12 | 14 | 101 => LinkType::RawIp,
            113 => LinkType::LinuxSll,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            276 => LinkType::LinuxSll2,
            _ => return None,
        })
    }
}

impl fmt::Display for LinkType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            LinkType::Ethernet => "ethernet",
            LinkType::LinuxSll => "linux-sll",
            LinkType::LinuxSll2 => "linux-sll2",
            LinkType::RawIp => "raw-ip",
            LinkType::Ipv4 => "ipv4",
            LinkType::Ipv6 => "ipv6",
            LinkType::Null => "null/loopback",
        };
        f.write_str(name)
    }
}

/// One received frame, borrowed from the source for the duration of the handler call.
#[derive(Debug, Clone, Copy)]
pub struct Frame<'a> {
    pub data: &'a [u8],
    pub ts: Timestamp,
    pub link: LinkType,
    /// Length on the wire; larger than `data.len()` when the capture truncated the frame.
    pub wire_len: u32,
    /// Index of the port the frame entered on (0 = A, 1 = B); 0 for captures.
    pub port: u8,
    /// Receive queue the frame arrived on; 0 for captures.
    pub queue: u16,
}

impl<'a> Frame<'a> {
    /// A whole Ethernet frame received at `ts` on port 0, queue 0: how fixtures, tests and
    /// benchmarks feed an engine directly.
    pub fn ethernet(data: &'a [u8], ts: Timestamp) -> Frame<'a> {
        Frame {
            data,
            ts,
            link: LinkType::Ethernet,
            wire_len: data.len() as u32,
            port: 0,
            queue: 0,
        }
    }
}

/// What the source must do with a frame after the engine has seen it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    /// Send on to the peer port (inline) or release (tap, replay).
    Forward,
    /// Do not forward: the flow was judged and blocked.
    Drop,
}

/// What one call to [`PacketSource::poll_batch`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Polled {
    /// This many frames were handed to the handler.
    Frames(usize),
    /// Nothing arrived this time; the caller may run timers and poll again.
    Idle,
    /// The source is exhausted (end of the last capture file) or was told to stop.
    End,
}

/// A failure of the packet source itself (not of a packet): unreadable file, broken ring.
#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("{path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: {reason} (at byte offset {offset})")]
    Format {
        path: String,
        offset: u64,
        reason: String,
    },
    #[error("{path}: unsupported link type {linktype}; supported: 0 (null), 1 (ethernet), 12/14/101 (raw IP), 108 (loop), 113 (linux-sll), 228 (ipv4), 229 (ipv6), 276 (linux-sll2)")]
    UnsupportedLinkType { path: String, linktype: u32 },
    #[error("{0}")]
    Device(String),
}

/// A batch-oriented frame source: a capture file, an AF_XDP socket pair, a test vector.
pub trait PacketSource {
    /// Receives up to one batch, calls `handle` once per frame in arrival order, and applies
    /// the returned [`Action`] to that frame before the call returns.
    fn poll_batch<F>(&mut self, handle: F) -> Result<Polled, SourceError>
    where
        F: FnMut(&Frame<'_>) -> Action;
}

/// An in-memory source over owned frames; used by tests and benches.
#[derive(Debug, Clone)]
pub struct VecSource {
    frames: Vec<(Timestamp, Vec<u8>)>,
    link: LinkType,
    next: usize,
    batch: usize,
    /// The action returned for every frame, in order.
    pub actions: Vec<Action>,
}

impl VecSource {
    pub fn new(link: LinkType, frames: Vec<(Timestamp, Vec<u8>)>, batch: usize) -> Self {
        let actions = Vec::with_capacity(frames.len());
        VecSource {
            frames,
            link,
            next: 0,
            batch: batch.max(1),
            actions,
        }
    }

    /// Starts again from the first frame (benches loop over the same frames).
    pub fn rewind(&mut self) {
        self.next = 0;
        self.actions.clear();
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }
}

impl PacketSource for VecSource {
    fn poll_batch<F>(&mut self, mut handle: F) -> Result<Polled, SourceError>
    where
        F: FnMut(&Frame<'_>) -> Action,
    {
        if self.next >= self.frames.len() {
            return Ok(Polled::End);
        }
        let end = (self.next + self.batch).min(self.frames.len());
        for (ts, data) in &self.frames[self.next..end] {
            let frame = Frame {
                data,
                ts: *ts,
                link: self.link,
                wire_len: data.len() as u32,
                port: 0,
                queue: 0,
            };
            // Capacity for every frame was reserved up front, so this never allocates.
            self.actions.push(handle(&frame));
        }
        let n = end - self.next;
        self.next = end;
        Ok(Polled::Frames(n))
    }
}
