//! AF_XDP sockets of one worker, as a [`PacketSource`].
//!
//! Worker `i` owns queue `i` of every port. Its sockets share one UMEM, so forwarding a frame
//! from port A to port B is a TX descriptor on B's socket pointing at the frame A received:
//! no copy. Frames cycle through: fill ring -> kernel -> RX ring -> handler -> TX ring of the
//! peer (forward) or the free list (drop) -> completion ring -> free list -> fill ring.
//!
//! A frame of a flow another worker owns (RSS that is not symmetric) is copied into a slot of
//! the owner's lock-free queue and the received frame recycled; the owner judges the copy and
//! sends it from its own UMEM on its own socket of the peer port.

use std::num::NonZeroU32;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

use crossbeam_queue::ArrayQueue;
use xsk_rs::config::{
    BindFlags, FrameSize, Interface, LibxdpFlags, QueueSize, SocketConfig, UmemConfig,
};
use xsk_rs::{CompQueue, FillQueue, FrameDesc, RxQueue, Socket, TxQueue, Umem};

use super::bpf::XdpMode;
use super::steer;
use crate::capture::{Action, Frame, LinkType, PacketSource, Polled, SourceError, Timestamp};

/// How a worker waits for frames.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum PollMode {
    /// Sleep in poll() when idle: cheap on shared cores.
    #[default]
    Poll,
    /// Never sleep; set SO_PREFER_BUSY_POLL and let the socket drive NAPI. Only on a core the
    /// worker owns alone (it starves a NAPI thread sharing its core).
    BusyPoll,
}

/// Whether to ask for zero-copy.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum ZeroCopy {
    /// Zero-copy first, copy mode when the driver refuses (veth always does).
    #[default]
    Auto,
    /// Zero-copy or fail.
    On,
    /// Copy mode only.
    Off,
}

/// Whether the UMEM goes on huge pages (`datapath.huge_pages`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum HugePages {
    /// Huge pages when the system has them reserved (vm.nr_hugepages), small pages otherwise.
    #[default]
    Auto,
    /// Huge pages or fail.
    On,
    /// Small pages only.
    Off,
}

/// Socket and ring settings of the live datapath (`[datapath]` in the TOML config).
#[derive(Debug, Clone, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct XskConfig {
    /// UMEM frame size in bytes (power of two, 2048 or 4096).
    pub frame_size: u32,
    /// UMEM frames per worker, shared by its sockets (frames x frame size is locked memory).
    pub frame_count: u32,
    /// RX and TX ring entries per socket (power of two).
    pub rx_ring: u32,
    pub tx_ring: u32,
    /// Fill and completion ring entries per socket (power of two). A worker keeps at most
    /// half its frames in its fill rings (the rest are in flight on RX and TX rings): with every
    /// frame in the fill rings, forwarding starved them.
    pub fill_ring: u32,
    pub comp_ring: u32,
    /// Frames taken from one RX ring per poll.
    pub batch: u32,
    pub poll_mode: PollMode,
    /// How long an idle worker sleeps in poll() (also bounds the shutdown latency).
    pub poll_timeout_ms: i32,
    /// SO_BUSY_POLL microseconds and budget (busy-poll mode only).
    pub busy_poll_us: u32,
    pub busy_poll_budget: u32,
    pub zero_copy: ZeroCopy,
    /// UMEM on 2 MiB pages: the worker reads every frame's headers, and on 4 KiB pages a 16 MiB
    /// UMEM is 4,096 TLB entries, more than the CPU holds, so most first reads of a frame also
    /// walked the page tables (perf on the mixed inline bench).
    pub huge_pages: HugePages,
    /// Slots in each worker's handoff queue (frames of its flows received by other workers).
    pub handoff_queue: u32,
    /// What decides a frame's worker when there are several.
    pub steering: steer::Steering,
    /// Pin worker i to core (first_core + i) modulo the number of cores.
    pub pin_cores: bool,
    pub first_core: usize,
    /// native (in the driver) or generic (skb mode, for drivers without XDP).
    pub xdp_mode: XdpMode,
    /// Lifetime of a kernel block entry in seconds (0 = until the flow is forgotten).
    pub block_ttl_secs: u64,
    /// Lifetime of a kernel bypass entry in seconds (0 = until the flow is forgotten).
    pub bypass_ttl_secs: u64,
    /// Capacity of each of the block and bypass maps (LRU beyond it).
    pub flow_map_entries: u32,
}

impl Default for XskConfig {
    fn default() -> Self {
        XskConfig {
            frame_size: 2048,
            frame_count: 8192,
            rx_ring: 2048,
            tx_ring: 2048,
            fill_ring: 2048,
            comp_ring: 2048,
            batch: 64,
            poll_mode: PollMode::Poll,
            poll_timeout_ms: 100,
            busy_poll_us: 20,
            busy_poll_budget: 64,
            zero_copy: ZeroCopy::Auto,
            huge_pages: HugePages::Auto,
            handoff_queue: 1024,
            steering: steer::Steering::IpPair,
            pin_cores: true,
            first_core: 0,
            xdp_mode: XdpMode::Native,
            block_ttl_secs: 600,
            bypass_ttl_secs: 0,
            flow_map_entries: super::bpf::FLOW_MAP_ENTRIES,
        }
    }
}

impl XskConfig {
    /// Checks the values the kernel and the rings insist on; the message names the key.
    pub fn validate(&self) -> Result<(), String> {
        let pow2 = |name: &str, v: u32| {
            if v.is_power_of_two() {
                Ok(())
            } else {
                Err(format!("datapath.{name} = {v}: must be a power of two"))
            }
        };
        pow2("frame_size", self.frame_size)?;
        if !(2048..=4096).contains(&self.frame_size) {
            return Err(format!(
                "datapath.frame_size = {}: must be 2048 or 4096",
                self.frame_size
            ));
        }
        pow2("rx_ring", self.rx_ring)?;
        pow2("tx_ring", self.tx_ring)?;
        pow2("fill_ring", self.fill_ring)?;
        pow2("comp_ring", self.comp_ring)?;
        if self.batch == 0 || self.batch > 1024 {
            return Err(format!("datapath.batch = {}: must be 1..=1024", self.batch));
        }
        let need = self.batch.saturating_mul(8);
        if self.frame_count < need {
            return Err(format!(
                "datapath.frame_count = {}: must be at least 8 x batch ({need})",
                self.frame_count
            ));
        }
        if self.handoff_queue == 0 {
            return Err("datapath.handoff_queue must be at least 1".into());
        }
        if self.flow_map_entries == 0 {
            return Err("datapath.flow_map_entries must be at least 1".into());
        }
        if self.poll_timeout_ms < 0 {
            return Err("datapath.poll_timeout_ms must not be negative".into());
        }
        Ok(())
    }
}

/// Most sendto() kicks per socket and batch in copy mode (32 frames each).
const MAX_KICKS: usize = 64;

/// Largest frame a handoff slot carries (a 4096-byte UMEM frame minus the XDP headroom).
pub const HANDOFF_BYTES: usize = 4096 - 256;

/// A frame copied out of the receiving worker's UMEM for the worker that owns its flow.
#[derive(Clone)]
pub struct Handoff {
    len: u16,
    port: u8,
    queue: u16,
    ts: Timestamp,
    data: [u8; HANDOFF_BYTES],
}

impl std::fmt::Debug for Handoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Handoff")
            .field("len", &self.len)
            .field("port", &self.port)
            .finish()
    }
}

/// A worker's inbox: its queue and the eventfd that wakes it from poll().
#[derive(Debug)]
pub struct Inbox {
    pub queue: ArrayQueue<Handoff>,
    wake: OwnedFd,
}

impl Inbox {
    pub fn new(slots: usize) -> std::io::Result<Inbox> {
        // SAFETY: plain syscall; the returned descriptor is checked before use.
        let fd = unsafe { libc::eventfd(0, libc::EFD_NONBLOCK | libc::EFD_CLOEXEC) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        Ok(Inbox {
            queue: ArrayQueue::new(slots.max(1)),
            // SAFETY: a fresh descriptor nobody else owns.
            wake: unsafe { OwnedFd::from_raw_fd(fd) },
        })
    }

    fn wake(&self) {
        let one: u64 = 1;
        // SAFETY: writes 8 bytes from a live u64 to our eventfd; failure (counter full) only
        // means the owner is already due to wake.
        unsafe { libc::write(self.wake.as_raw_fd(), (&one as *const u64).cast(), 8) };
    }

    fn drain_wake(&self) {
        let mut v: u64 = 0;
        // SAFETY: reads 8 bytes into a live u64 from our non-blocking eventfd.
        unsafe { libc::read(self.wake.as_raw_fd(), (&mut v as *mut u64).cast(), 8) };
    }
}

/// Counters of one worker, plain integers on the hot path.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct WorkerStats {
    pub rx: u64,
    pub rx_bytes: u64,
    pub tx: u64,
    pub dropped: u64,
    /// Frames that did not fit the TX ring (dropped).
    pub tx_ring_full: u64,
    /// Times a fill ring wanted frames and the free list had none.
    pub fill_empty: u64,
    pub tx_kicks: u64,
    pub handoff_out: u64,
    pub handoff_in: u64,
    /// Handoffs lost because the owner's queue was full.
    pub handoff_full: u64,
    /// Handed-off frames the owner could not send for lack of a free frame.
    pub handoff_no_frame: u64,
    /// Frames larger than a handoff slot (dropped).
    pub handoff_too_big: u64,
}

/// Published copy of a worker's counters, for a metrics exporter on another thread. The
/// worker stores its counters once per batch and its sockets' kernel statistics about once a
/// second; readers take a [`SharedStats::snapshot`].
#[derive(Debug, Default)]
pub struct SharedStats {
    worker: [AtomicU64; WORKER_FIELDS],
    /// Kernel statistics summed over the worker's sockets.
    socket: [AtomicU64; SOCKET_FIELDS],
}

const WORKER_FIELDS: usize = 12;
const SOCKET_FIELDS: usize = 6;

impl WorkerStats {
    fn to_array(self) -> [u64; WORKER_FIELDS] {
        [
            self.rx,
            self.rx_bytes,
            self.tx,
            self.dropped,
            self.tx_ring_full,
            self.fill_empty,
            self.tx_kicks,
            self.handoff_out,
            self.handoff_in,
            self.handoff_full,
            self.handoff_no_frame,
            self.handoff_too_big,
        ]
    }

    fn from_array(a: [u64; WORKER_FIELDS]) -> WorkerStats {
        WorkerStats {
            rx: a[0],
            rx_bytes: a[1],
            tx: a[2],
            dropped: a[3],
            tx_ring_full: a[4],
            fill_empty: a[5],
            tx_kicks: a[6],
            handoff_out: a[7],
            handoff_in: a[8],
            handoff_full: a[9],
            handoff_no_frame: a[10],
            handoff_too_big: a[11],
        }
    }
}

impl SocketStats {
    fn to_array(self) -> [u64; SOCKET_FIELDS] {
        [
            self.rx_dropped,
            self.rx_invalid_descs,
            self.tx_invalid_descs,
            self.rx_ring_full,
            self.rx_fill_ring_empty_descs,
            self.tx_ring_empty_descs,
        ]
    }

    fn from_array(a: [u64; SOCKET_FIELDS]) -> SocketStats {
        SocketStats {
            rx_dropped: a[0],
            rx_invalid_descs: a[1],
            tx_invalid_descs: a[2],
            rx_ring_full: a[3],
            rx_fill_ring_empty_descs: a[4],
            tx_ring_empty_descs: a[5],
        }
    }
}

impl SharedStats {
    fn publish(&self, s: &WorkerStats) {
        for (slot, v) in self.worker.iter().zip(s.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn publish_sockets(&self, s: &SocketStats) {
        for (slot, v) in self.socket.iter().zip(s.to_array()) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The worker's counters and its sockets' kernel statistics (summed) as last published.
    pub fn snapshot(&self) -> (WorkerStats, SocketStats) {
        let w = std::array::from_fn(|i| self.worker[i].load(Ordering::Relaxed));
        let s = std::array::from_fn(|i| self.socket[i].load(Ordering::Relaxed));
        (WorkerStats::from_array(w), SocketStats::from_array(s))
    }
}

/// The kernel's view of one socket (getsockopt XDP_STATISTICS).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SocketStats {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum XskError {
    #[error("datapath config: {0}")]
    Config(String),
    #[error("creating the UMEM of worker {worker}: {reason}")]
    Umem { worker: usize, reason: String },
    #[error("binding an AF_XDP socket to {iface} queue {queue}: {reason}")]
    Bind {
        iface: String,
        queue: u32,
        reason: String,
    },
    #[error("{0}")]
    Os(#[from] std::io::Error),
}

/// One AF_XDP socket with its four rings.
struct PortSocket {
    port: u8,
    tx: TxQueue,
    rx: RxQueue,
    fq: FillQueue,
    cq: CompQueue,
    fd: i32,
    /// Frames on the TX ring not yet seen on the completion ring.
    tx_outstanding: u32,
    fq_size: u32,
    /// How full this socket's fill ring is kept.
    fill_target: u32,
    tx_size: u32,
    /// Frames waiting to go on the TX ring of this socket.
    pending: Vec<FrameDesc>,
}

/// Which datapath mode the sockets ended up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub enum BindMode {
    ZeroCopy,
    Copy,
}

/// What a worker sends where.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Forwarding {
    /// Forward = TX on the other port.
    Inline,
    /// Forward = recycle (nothing is sent).
    Tap,
}

/// Who the worker is among its peers (for handoffs).
#[derive(Debug, Clone)]
pub struct Peers {
    pub me: usize,
    pub inboxes: Arc<Vec<Inbox>>,
}

/// The AF_XDP sockets of one worker, as a packet source.
pub struct XskSource {
    umem: Umem,
    sockets: Vec<PortSocket>,
    free: Vec<FrameDesc>,
    scratch: Vec<FrameDesc>,
    queue: u32,
    batch: usize,
    forwarding: Forwarding,
    poll_mode: PollMode,
    poll_timeout_ms: i32,
    steering: steer::Steering,
    peers: Peers,
    /// Bit i set: worker i's inbox got frames this batch and needs a wake-up.
    woke: u64,
    stop: Arc<AtomicBool>,
    pollfds: Vec<libc::pollfd>,
    pub stats: WorkerStats,
    shared: Arc<SharedStats>,
    mode: BindMode,
    huge_pages: bool,
    /// Frames kept back from the fill rings for handoff transmissions.
    reserve: usize,
    sockets_published: Timestamp,
}

impl std::fmt::Debug for XskSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskSource")
            .field("queue", &self.queue)
            .field("sockets", &self.sockets.len())
            .field("mode", &self.mode)
            .finish()
    }
}

/// 2 MiB pages one worker's UMEM takes.
pub fn huge_pages_needed(cfg: &XskConfig) -> u64 {
    (u64::from(cfg.frame_count) * u64::from(cfg.frame_size)).div_ceil(2 << 20)
}

/// Why [`new_umem`] made no UMEM.
enum UmemFailure {
    /// `HugePages::On`, and none could be had (the reason).
    NoHugePages(String),
    /// None even on 4 KiB pages (the reason).
    Create(String),
}

/// A UMEM of `count` frames on huge pages when `pages` allows and the system has them
/// reserved, else on 4 KiB pages (for `HugePages::On`, an error instead); the bool says
/// whether it got huge pages.
fn new_umem(
    cfg: UmemConfig,
    count: NonZeroU32,
    pages: HugePages,
) -> Result<(Umem, Vec<FrameDesc>, bool), UmemFailure> {
    let why = |x: &xsk_rs::umem::UmemCreateError| match std::error::Error::source(x) {
        Some(s) => format!("{x}: {s}"),
        None => x.to_string(),
    };
    if pages != HugePages::Off {
        match Umem::new(cfg, count, true) {
            Ok((u, d)) => return Ok((u, d, true)),
            Err(x) if pages == HugePages::On => return Err(UmemFailure::NoHugePages(why(&x))),
            Err(_) => {}
        }
    }
    let (u, d) = Umem::new(cfg, count, false).map_err(|x| UmemFailure::Create(why(&x)))?;
    Ok((u, d, false))
}

fn umem_err(worker: usize) -> impl Fn(String) -> XskError {
    move |reason| XskError::Umem { worker, reason }
}

impl XskSource {
    /// Creates the UMEM and binds one socket per interface on `queue`. The sockets are not yet
    /// registered in the XSKMAP: the caller does that with [`XskSource::socket_fds`].
    pub fn open(
        ifaces: &[String],
        queue: u32,
        cfg: &XskConfig,
        forwarding: Forwarding,
        peers: Peers,
        stop: Arc<AtomicBool>,
        shared: Arc<SharedStats>,
    ) -> Result<XskSource, XskError> {
        cfg.validate().map_err(XskError::Config)?;
        let worker = peers.me;
        let e = umem_err(worker);
        let umem_cfg = UmemConfig::builder()
            .frame_size(FrameSize::new(cfg.frame_size).map_err(|x| e(x.to_string()))?)
            .fill_queue_size(QueueSize::new(cfg.fill_ring).map_err(|x| e(x.to_string()))?)
            .comp_queue_size(QueueSize::new(cfg.comp_ring).map_err(|x| e(x.to_string()))?)
            .build()
            .map_err(|x| e(x.to_string()))?;
        let count = NonZeroU32::new(cfg.frame_count).ok_or_else(|| e("frame_count is 0".into()))?;
        let (umem, descs, huge_pages) = match new_umem(umem_cfg, count, cfg.huge_pages) {
            Ok(made) => made,
            Err(UmemFailure::NoHugePages(reason)) => {
                return Err(e(format!(
                    "datapath.huge_pages = \"on\": no UMEM of {} x {} bytes on huge pages ({}); \
                     reserve them first (sysctl vm.nr_hugepages: {} per worker), or set \
                     huge_pages = \"auto\" or \"off\"",
                    cfg.frame_count,
                    cfg.frame_size,
                    reason,
                    huge_pages_needed(cfg),
                )))
            }
            Err(UmemFailure::Create(reason)) => return Err(e(reason)),
        };

        let mut mode = BindMode::Copy;
        let mut sockets = Vec::with_capacity(ifaces.len());
        for (port, iface) in ifaces.iter().enumerate() {
            let (s, m) = bind(&umem, iface, queue, cfg, port as u8)?;
            mode = m;
            sockets.push(s);
        }
        let batch = cfg.batch as usize;
        let mut pollfds: Vec<libc::pollfd> = sockets
            .iter()
            .map(|s| libc::pollfd {
                fd: s.fd,
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        if let Some(inbox) = peers.inboxes.get(worker) {
            pollfds.push(libc::pollfd {
                fd: inbox.wake.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if cfg.poll_mode == PollMode::BusyPoll {
            for s in &sockets {
                set_busy_poll(s.fd, cfg.busy_poll_us, cfg.busy_poll_budget)?;
            }
        }
        let reserve = if peers.inboxes.len() > 1 {
            batch * 2
        } else {
            0
        };
        let mut src = XskSource {
            umem,
            sockets,
            free: descs,
            scratch: vec![FrameDesc::default(); batch],
            queue,
            batch,
            forwarding,
            poll_mode: cfg.poll_mode,
            poll_timeout_ms: cfg.poll_timeout_ms,
            steering: cfg.steering,
            peers,
            woke: 0,
            stop,
            pollfds,
            stats: WorkerStats::default(),
            shared,
            mode,
            huge_pages,
            reserve,
            sockets_published: Timestamp(0),
        };
        // Pending vectors never grow past their capacity: a batch adds at most `batch` frames
        // and the inbox drain at most another `batch` before they are flushed.
        for s in &mut src.sockets {
            s.pending.reserve(batch * 2);
        }
        src.refill();
        Ok(src)
    }

    /// (port index, socket fd) of every socket, for the XSKMAP.
    pub fn socket_fds(&self) -> Vec<(u8, i32)> {
        self.sockets.iter().map(|s| (s.port, s.fd)).collect()
    }

    pub fn bind_mode(&self) -> BindMode {
        self.mode
    }

    /// Whether the UMEM is on huge pages.
    pub fn huge_pages(&self) -> bool {
        self.huge_pages
    }

    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// The kernel's statistics of each socket, by port.
    pub fn socket_stats(&self) -> Vec<(u8, SocketStats)> {
        self.sockets
            .iter()
            .filter_map(|s| Some((s.port, socket_stat(s)?)))
            .collect()
    }

    /// Moves completed TX frames back to the free list.
    fn reclaim(&mut self) {
        for s in &mut self.sockets {
            while s.tx_outstanding > 0 {
                let want = (s.tx_outstanding as usize).min(self.scratch.len());
                // SAFETY: the completion ring only returns frames of this UMEM that we put on
                // a TX ring; `scratch` has room for `want` descriptors.
                let n = unsafe { s.cq.consume(&mut self.scratch[..want]) };
                if n == 0 {
                    break;
                }
                s.tx_outstanding = s.tx_outstanding.saturating_sub(n as u32);
                self.free.extend_from_slice(&self.scratch[..n]);
            }
        }
    }

    /// Tops the fill rings up from the free list, keeping a reserve for handoffs.
    fn refill(&mut self) {
        for s in &mut self.sockets {
            let want = s.fill_target;
            let free_slots = s.fq.nb_free_exact();
            let filled = s.fq_size.saturating_sub(free_slots);
            let room = want.saturating_sub(filled) as usize;
            if room == 0 {
                continue;
            }
            let n = room.min(self.free.len().saturating_sub(self.reserve));
            if n == 0 {
                // Only worth counting when the ring is running low, not merely not full.
                if room * 2 > want as usize {
                    self.stats.fill_empty += 1;
                }
                continue;
            }
            let from = self.free.len() - n;
            // SAFETY: frames on the free list belong to this UMEM and are in no ring. The ring
            // takes all of them or none (libxdp reserves all-or-nothing), and `n` fits.
            let put = unsafe { s.fq.produce(&self.free[from..]) };
            if put == n {
                self.free.truncate(from);
            }
            if self.poll_mode == PollMode::BusyPoll && s.fq.needs_wakeup() {
                kick_rx(s.fd);
            }
        }
    }

    /// Puts pending frames on their TX rings and kicks the kernel while TX is outstanding (in
    /// copy mode a sendto() moves at most 32 frames, so every call kicks again).
    fn flush_tx(&mut self) {
        for s in &mut self.sockets {
            if !s.pending.is_empty() {
                let fits = (s.tx.nb_free(s.pending.len() as u32) as usize).min(s.pending.len());
                // SAFETY: pending frames belong to this UMEM and are in no ring; the ring
                // reserves all-or-nothing, and `fits` entries are free.
                let put = if fits > 0 {
                    unsafe { s.tx.produce(&s.pending[..fits]) }
                } else {
                    0
                };
                s.tx_outstanding = s.tx_outstanding.saturating_add(put as u32);
                self.stats.tx += put as u64;
                if put < s.pending.len() {
                    let lost = s.pending.len() - put;
                    self.stats.tx_ring_full += lost as u64;
                    self.stats.dropped += lost as u64;
                    self.free.extend_from_slice(&s.pending[put..]);
                }
                s.pending.clear();
            }
            if s.tx_outstanding == 0 {
                continue;
            }
            if self.mode == BindMode::ZeroCopy {
                if s.tx.needs_wakeup() {
                    self.stats.tx_kicks += 1;
                    let _ = s.tx.wakeup();
                }
                continue;
            }
            // Copy mode: one sendto() sends at most 32 frames, so kick until the kernel has
            // taken every descriptor off the TX ring (bounded, in case the device stalls).
            for _ in 0..MAX_KICKS {
                if s.tx.nb_free_exact() >= s.tx_size {
                    break;
                }
                self.stats.tx_kicks += 1;
                // Errors here are transient (ENOBUFS, EAGAIN, EBUSY) or mean the device went
                // down; the frames come back on the completion ring either way.
                let _ = s.tx.wakeup();
            }
        }
    }

    fn wake_peers(&mut self) {
        if self.woke == 0 {
            return;
        }
        for (i, inbox) in self.peers.inboxes.iter().enumerate().take(64) {
            if self.woke & (1u64 << i) != 0 {
                inbox.wake();
            }
        }
        self.woke = 0;
    }

    fn sleep(&mut self) {
        if self.poll_mode == PollMode::BusyPoll {
            for s in &self.sockets {
                kick_rx(s.fd);
            }
            return;
        }
        let any_tx = self.sockets.iter().any(|s| s.tx_outstanding > 0);
        let timeout = if any_tx { 0 } else { self.poll_timeout_ms };
        for p in &mut self.pollfds {
            p.revents = 0;
        }
        // SAFETY: `pollfds` is a live array of initialised pollfd structs of the given length.
        unsafe {
            libc::poll(
                self.pollfds.as_mut_ptr(),
                self.pollfds.len() as libc::nfds_t,
                timeout,
            )
        };
    }

    fn publish(&mut self, now: Timestamp) {
        self.shared.publish(&self.stats);
        if now.since(self.sockets_published) >= Timestamp::NANOS_PER_SEC {
            self.sockets_published = now;
            let mut sum = [0u64; SOCKET_FIELDS];
            for st in self.sockets.iter().filter_map(socket_stat) {
                for (acc, v) in sum.iter_mut().zip(st.to_array()) {
                    *acc = acc.wrapping_add(v);
                }
            }
            self.shared.publish_sockets(&SocketStats::from_array(sum));
        }
    }

    pub fn stopped(&self) -> bool {
        self.stop.load(Ordering::Relaxed)
    }
}

impl PacketSource for XskSource {
    fn poll_batch<F>(&mut self, mut handle: F) -> Result<Polled, SourceError>
    where
        F: FnMut(&Frame<'_>) -> Action,
    {
        if self.stopped() {
            return Ok(Polled::End);
        }
        self.reclaim();
        self.refill();
        let ts = Timestamp::now();
        let workers = self.peers.inboxes.len();
        let me = self.peers.me;
        let mut seen = 0usize;

        for si in 0..self.sockets.len() {
            // SAFETY: frames come back from the RX ring of a socket of this UMEM; `scratch`
            // has room for `batch` descriptors.
            let n = unsafe { self.sockets[si].rx.consume(&mut self.scratch[..self.batch]) };
            seen += n;
            let port = self.sockets[si].port;
            let peer = if self.sockets.len() == 2 { 1 - si } else { si };
            for d in 0..n.min(PREFETCH_AHEAD) {
                // SAFETY: as below, a received frame of this UMEM, ours until we ring it again.
                prefetch_frame(unsafe { self.umem.data(&self.scratch[d]) }.contents());
            }
            for d in 0..n {
                let desc = self.scratch[d];
                if let Some(ahead) = self.scratch[..n].get(d + PREFETCH_AHEAD) {
                    // SAFETY: as below, a received frame of this UMEM, ours until we ring it
                    // again.
                    prefetch_frame(unsafe { self.umem.data(ahead) }.contents());
                }
                // SAFETY: the descriptor came from this UMEM's RX ring and the frame is ours
                // until we put it on a ring again; nothing writes it meanwhile.
                let data = unsafe { self.umem.data(&desc) }.contents();
                self.stats.rx += 1;
                self.stats.rx_bytes += data.len() as u64;
                if let Some(owner) = steer::owner(data, workers, self.steering) {
                    if owner != me {
                        handoff(
                            &self.peers,
                            owner,
                            data,
                            port,
                            self.queue,
                            ts,
                            &mut self.stats,
                            &mut self.woke,
                        );
                        self.free.push(desc);
                        continue;
                    }
                }
                let frame = Frame {
                    data,
                    ts,
                    link: LinkType::Ethernet,
                    wire_len: data.len() as u32,
                    port,
                    queue: self.queue as u16,
                };
                match (handle(&frame), self.forwarding) {
                    (Action::Forward, Forwarding::Inline) => self.sockets[peer].pending.push(desc),
                    (Action::Forward, Forwarding::Tap) => self.free.push(desc),
                    (Action::Drop, _) => {
                        self.stats.dropped += 1;
                        self.free.push(desc);
                    }
                }
            }
        }

        // Frames of our flows that other workers received.
        if workers > 1 {
            let inboxes = Arc::clone(&self.peers.inboxes);
            if let Some(inbox) = inboxes.get(me) {
                inbox.drain_wake();
                let mut taken = 0;
                while taken < self.batch {
                    let Some(h) = inbox.queue.pop() else { break };
                    taken += 1;
                    seen += 1;
                    self.stats.handoff_in += 1;
                    let len = usize::from(h.len).min(HANDOFF_BYTES);
                    let data = &h.data[..len];
                    let frame = Frame {
                        data,
                        ts: h.ts,
                        link: LinkType::Ethernet,
                        wire_len: len as u32,
                        port: h.port,
                        queue: h.queue,
                    };
                    let action = handle(&frame);
                    if action == Action::Drop {
                        self.stats.dropped += 1;
                        continue;
                    }
                    if self.forwarding == Forwarding::Tap || self.sockets.len() < 2 {
                        continue;
                    }
                    let peer = if h.port == 0 { 1 } else { 0 };
                    let Some(mut desc) = self.free.pop() else {
                        self.stats.handoff_no_frame += 1;
                        self.stats.dropped += 1;
                        continue;
                    };
                    // SAFETY: the descriptor is from our free list: a frame of this UMEM in
                    // no ring, so nothing else reads or writes it.
                    let mut out = unsafe { self.umem.data_mut(&mut desc) };
                    let mut cur = out.cursor();
                    cur.set_pos(0);
                    let written = std::io::Write::write(&mut cur, data).unwrap_or(0);
                    if written != len {
                        self.stats.handoff_too_big += 1;
                        self.stats.dropped += 1;
                        self.free.push(desc);
                        continue;
                    }
                    self.sockets[peer].pending.push(desc);
                }
            }
        }

        self.flush_tx();
        self.wake_peers();
        self.publish(ts);
        if seen == 0 {
            self.sleep();
            return Ok(Polled::Idle);
        }
        Ok(Polled::Frames(seen))
    }
}

/// Frames whose headers are fetched ahead of the one being handled. When the worker falls
/// behind, the RX ring holds frames the kernel copied long enough ago to have left the cache,
/// and the first read of each frame's headers was the engine's costliest instruction (perf on
/// the mixed inline bench); two frames ahead covers a memory round trip at ~1 µs per frame.
const PREFETCH_AHEAD: usize = 2;

/// Asks for the cache lines of a frame's headers (link, IP and TCP with options fit in two).
#[inline(always)]
fn prefetch_frame(data: &[u8]) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
        let p = data.as_ptr().cast::<i8>();
        // SAFETY: a prefetch is a hint that never faults, whatever the address; both addresses
        // are inside or one line past the frame's own UMEM chunk.
        unsafe {
            _mm_prefetch::<_MM_HINT_T0>(p);
            _mm_prefetch::<_MM_HINT_T0>(p.wrapping_add(64));
        }
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = data;
}

#[allow(clippy::too_many_arguments)]
fn handoff(
    peers: &Peers,
    owner: usize,
    data: &[u8],
    port: u8,
    queue: u32,
    ts: Timestamp,
    stats: &mut WorkerStats,
    woke: &mut u64,
) {
    let Some(inbox) = peers.inboxes.get(owner) else {
        return;
    };
    if data.len() > HANDOFF_BYTES {
        stats.handoff_too_big += 1;
        stats.dropped += 1;
        return;
    }
    let mut slot = Handoff {
        len: data.len() as u16,
        port,
        queue: queue as u16,
        ts,
        data: [0; HANDOFF_BYTES],
    };
    slot.data[..data.len()].copy_from_slice(data);
    match inbox.queue.push(slot) {
        Ok(()) => {
            stats.handoff_out += 1;
            if owner < 64 {
                *woke |= 1u64 << owner;
            }
        }
        Err(_) => {
            stats.handoff_full += 1;
            stats.dropped += 1;
        }
    }
}

fn socket_stat(s: &PortSocket) -> Option<SocketStats> {
    let st = s.rx.fd().xdp_statistics().ok()?;
    Some(SocketStats {
        rx_dropped: st.rx_dropped(),
        rx_invalid_descs: st.rx_invalid_descs(),
        tx_invalid_descs: st.tx_invalid_descs(),
        rx_ring_full: st.rx_ring_full(),
        rx_fill_ring_empty_descs: st.rx_fill_ring_empty_descs(),
        tx_ring_empty_descs: st.tx_ring_empty_descs(),
    })
}

fn kick_rx(fd: i32) {
    // SAFETY: a zero-length non-blocking recvfrom with null buffers is how AF_XDP is told to
    // process its rings; no memory is passed.
    unsafe {
        libc::recvfrom(
            fd,
            std::ptr::null_mut(),
            0,
            libc::MSG_DONTWAIT,
            std::ptr::null_mut(),
            std::ptr::null_mut(),
        )
    };
}

/// Whether the kernel runs this socket in zero-copy mode (getsockopt XDP_OPTIONS).
fn socket_is_zero_copy(fd: i32) -> Option<bool> {
    const XDP_OPTIONS: libc::c_int = 8;
    const XDP_OPTIONS_ZEROCOPY: u32 = 1;
    let mut flags: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: struct xdp_options is one u32; we pass a live u32 and its size.
    let ret = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_XDP,
            XDP_OPTIONS,
            (&mut flags as *mut u32).cast(),
            &mut len,
        )
    };
    (ret == 0).then_some(flags & XDP_OPTIONS_ZEROCOPY != 0)
}

fn set_busy_poll(fd: i32, usecs: u32, budget: u32) -> Result<(), XskError> {
    // Values from include/uapi/asm-generic/socket.h (not in every libc version).
    const SO_PREFER_BUSY_POLL: libc::c_int = 69;
    const SO_BUSY_POLL_BUDGET: libc::c_int = 70;
    for (opt, val) in [
        (SO_PREFER_BUSY_POLL, 1i32),
        (libc::SO_BUSY_POLL, usecs as i32),
        (SO_BUSY_POLL_BUDGET, budget as i32),
    ] {
        // SAFETY: passes a pointer to a live i32 and its size.
        let ret = unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                opt,
                (&val as *const i32).cast(),
                std::mem::size_of::<i32>() as libc::socklen_t,
            )
        };
        if ret != 0 {
            return Err(XskError::Os(std::io::Error::last_os_error()));
        }
    }
    Ok(())
}

fn bind(
    umem: &Umem,
    iface: &str,
    queue: u32,
    cfg: &XskConfig,
    port: u8,
) -> Result<(PortSocket, BindMode), XskError> {
    let bind_err = |reason: String| XskError::Bind {
        iface: iface.to_string(),
        queue,
        reason,
    };
    let name: Interface = iface
        .parse()
        .map_err(|_| bind_err("interface name contains NUL".into()))?;
    let attempts: &[(BindFlags, BindMode)] = match cfg.zero_copy {
        ZeroCopy::Auto => &[
            (BindFlags::XDP_ZEROCOPY, BindMode::ZeroCopy),
            (BindFlags::XDP_COPY, BindMode::Copy),
        ],
        ZeroCopy::On => &[(BindFlags::XDP_ZEROCOPY, BindMode::ZeroCopy)],
        ZeroCopy::Off => &[(BindFlags::XDP_COPY, BindMode::Copy)],
    };
    let mut last = String::new();
    for &(flags, mode) in attempts {
        let sc = SocketConfig::builder()
            .rx_queue_size(QueueSize::new(cfg.rx_ring).map_err(|e| bind_err(e.to_string()))?)
            .tx_queue_size(QueueSize::new(cfg.tx_ring).map_err(|e| bind_err(e.to_string()))?)
            .libxdp_flags(LibxdpFlags::XSK_LIBXDP_FLAGS_INHIBIT_PROG_LOAD)
            .bind_flags(flags | BindFlags::XDP_USE_NEED_WAKEUP)
            .build();
        // SAFETY: each worker binds its own queue id on each interface exactly once, and the
        // UMEM's frames are only handed to rings by this worker.
        match unsafe { Socket::new(sc, umem, &name, queue) } {
            Ok((tx, rx, Some((fq, cq)))) => {
                let fd = rx.fd().as_raw_fd();
                // The bind flag is a request; XDP_OPTIONS says what the kernel really did.
                let mode = match socket_is_zero_copy(fd) {
                    Some(true) => BindMode::ZeroCopy,
                    Some(false) => BindMode::Copy,
                    None => mode,
                };
                let s = PortSocket {
                    port,
                    tx,
                    rx,
                    fq,
                    cq,
                    fd,
                    tx_outstanding: 0,
                    fq_size: cfg.fill_ring,
                    fill_target: cfg.fill_ring,
                    tx_size: cfg.tx_ring,
                    pending: Vec::new(),
                };
                return Ok((s, mode));
            }
            Ok((_, _, None)) => {
                return Err(bind_err(
                    "the UMEM already has rings for this interface and queue".into(),
                ))
            }
            Err(e) => {
                last = match std::error::Error::source(&e) {
                    Some(src) => format!("{e}: {src}"),
                    None => e.to_string(),
                };
            }
        }
    }
    Err(bind_err(last))
}

/// What the generator sent.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct GenReport {
    pub sent: u64,
    pub kicks: u64,
    pub seconds: f64,
    pub mode: Option<BindMode>,
    /// Whether the generator's UMEM got huge pages.
    pub huge_pages: bool,
}

/// Small TCP frames (10.77.0.1 -> 10.77.0.2, port 80, one source port per flow) for load
/// generation. Checksums are zero: receivers under test count frames, they do not verify them.
pub fn test_frames(flows: u16, size: usize, dst_mac: [u8; 6]) -> Vec<Vec<u8>> {
    let size = size.clamp(54, 1514);
    (0..flows)
        .map(|i| {
            let mut f = vec![0u8; size];
            f[0..6].copy_from_slice(&dst_mac);
            f[6..12].copy_from_slice(&[0x02, 0x00, 0x00, 0x00, 0x00, 0x01]);
            f[12..14].copy_from_slice(&[0x08, 0x00]);
            f[14] = 0x45;
            let ip_len = (size - 14) as u16;
            f[16..18].copy_from_slice(&ip_len.to_be_bytes());
            f[22] = 64;
            f[23] = 6;
            f[26..30].copy_from_slice(&[10, 77, 0, 1]);
            f[30..34].copy_from_slice(&[10, 77, 0, 2]);
            f[34..36].copy_from_slice(&(10000u16.wrapping_add(i)).to_be_bytes());
            f[36..38].copy_from_slice(&80u16.to_be_bytes());
            f[46] = 0x50;
            f[47] = 0x10;
            // Right checksums: a live engine drops bad-checksum segments from inspection
            // (stream.checksum_validation), which would keep every flow under inspection.
            let ip_sum = !fold16(sum16(&f[14..34]));
            f[24..26].copy_from_slice(&ip_sum.to_be_bytes());
            let tcp_len = (size - 34) as u32;
            let pseudo = sum16(&f[26..34]) + 6 + tcp_len;
            let tcp_sum = !fold16(pseudo + sum16(&f[34..]));
            f[50..52].copy_from_slice(&tcp_sum.to_be_bytes());
            f
        })
        .collect()
}

/// The 16-bit big-endian words of `data` summed (odd tail padded with zero), unfolded.
fn sum16(data: &[u8]) -> u32 {
    data.chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w.get(1).copied().unwrap_or(0)])))
        .sum()
}

/// Folds carries back into 16 bits (one's complement addition).
fn fold16(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Writes a sequence number into a [`test_frames`] frame and updates its TCP checksum to
/// match (RFC 1624: HC' = ~(~HC + ~m + m') over the two changed words).
pub fn set_test_seq(frame: &mut [u8], seq: u32) {
    let (Some(old), Some(ck)) = (frame.get(38..42), frame.get(50..52)) else {
        return;
    };
    let new = seq.to_be_bytes();
    let mut sum = u32::from(!u16::from_be_bytes([ck[0], ck[1]]));
    sum += u32::from(!u16::from_be_bytes([old[0], old[1]]));
    sum += u32::from(!u16::from_be_bytes([old[2], old[3]]));
    sum += u32::from(u16::from_be_bytes([new[0], new[1]]));
    sum += u32::from(u16::from_be_bytes([new[2], new[3]]));
    let ck = !fold16(sum);
    frame[38..42].copy_from_slice(&new);
    frame[50..52].copy_from_slice(&ck.to_be_bytes());
}

/// How the generator numbers the TCP segments of each flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GenSeq {
    /// Each frame carries the next bytes of its flow (sequence number moves on by the payload
    /// length): a stream of tiny segments, as a receiver sees a real connection.
    Stream,
    /// Every frame of a flow repeats the same segment: a flood of retransmissions.
    Repeat,
}

/// Sends `frames` round-robin from an AF_XDP socket on (iface, queue) until `done()` says so.
/// The socket needs no XDP program: it only transmits.
pub fn generate(
    iface: &str,
    queue: u32,
    frames: &[Vec<u8>],
    seq: GenSeq,
    done: &dyn Fn() -> bool,
) -> Result<GenReport, XskError> {
    let cfg = XskConfig {
        frame_count: 4096,
        ..XskConfig::default()
    };
    let e = umem_err(0);
    let umem_cfg = UmemConfig::builder()
        .frame_size(FrameSize::new(cfg.frame_size).map_err(|x| e(x.to_string()))?)
        .fill_queue_size(QueueSize::new(cfg.fill_ring).map_err(|x| e(x.to_string()))?)
        .comp_queue_size(QueueSize::new(cfg.comp_ring).map_err(|x| e(x.to_string()))?)
        .build()
        .map_err(|x| e(x.to_string()))?;
    let count = NonZeroU32::new(cfg.frame_count).ok_or_else(|| e("no frames".into()))?;
    // On huge pages when the system has them, as the receivers' UMEMs: on 4 KiB pages the
    // generator's rate moved with where its pages landed (1.2 to 2.1 Mpps run to run).
    let (umem, mut free, huge_pages) =
        new_umem(umem_cfg, count, HugePages::Auto).map_err(|f| match f {
            UmemFailure::NoHugePages(reason) | UmemFailure::Create(reason) => e(reason),
        })?;
    let (mut s, mode) = bind(&umem, iface, queue, &cfg, 0)?;
    if frames.is_empty() {
        return Ok(GenReport::default());
    }
    // Which flow each UMEM frame carries (by frame number), and each flow's next sequence
    // number, for GenSeq::Stream.
    let frame_size = cfg.frame_size as usize;
    let mut flow_of = vec![0usize; cfg.frame_count as usize + 1];
    let mut next_seq = vec![0u32; frames.len()];
    let payload = frames[0].len().saturating_sub(54) as u32;
    for (i, d) in free.iter_mut().enumerate() {
        if let Some(slot) = flow_of.get_mut(d.addr() / frame_size) {
            *slot = i % frames.len();
        }
        let src = &frames[i % frames.len()];
        // SAFETY: every descriptor is a distinct frame of this UMEM in no ring yet.
        let mut data = unsafe { umem.data_mut(d) };
        let mut cur = data.cursor();
        cur.set_pos(0);
        std::io::Write::write_all(&mut cur, src)?;
    }
    let mut done_descs = vec![FrameDesc::default(); 256];
    let mut report = GenReport {
        mode: Some(mode),
        huge_pages,
        ..GenReport::default()
    };
    let started = std::time::Instant::now();
    let mut rounds = 0u32;
    loop {
        rounds = rounds.wrapping_add(1);
        if rounds % 64 == 0 && done() {
            break;
        }
        // SAFETY: completions return frames of this UMEM that we transmitted.
        let n = unsafe { s.cq.consume(&mut done_descs) };
        for d in &mut done_descs[..n] {
            // Completion descriptors come back without a length; every frame kept its bytes.
            // SAFETY: the frame came back from the completion ring and is ours again.
            let mut data = unsafe { umem.data_mut(d) };
            data.cursor().set_pos(frames[0].len());
        }
        free.extend_from_slice(&done_descs[..n]);
        report.sent += n as u64;
        s.tx_outstanding = s.tx_outstanding.saturating_sub(n as u32);
        let want = free.len().min(64);
        if want > 0 {
            let k = (s.tx.nb_free(want as u32) as usize).min(want);
            if k > 0 {
                let from = free.len() - k;
                if seq == GenSeq::Stream {
                    for d in &mut free[from..] {
                        let flow = flow_of.get(d.addr() / frame_size).copied().unwrap_or(0);
                        let Some(n) = next_seq.get_mut(flow) else {
                            continue;
                        };
                        // SAFETY: the frame is on the free list: in no ring, ours to write.
                        let mut data = unsafe { umem.data_mut(d) };
                        set_test_seq(data.contents_mut(), *n);
                        *n = n.wrapping_add(payload);
                    }
                }
                // SAFETY: frames from the free list are in no ring.
                let put = unsafe { s.tx.produce(&free[from..]) };
                if put == k {
                    free.truncate(from);
                    s.tx_outstanding += k as u32;
                }
            }
        }
        if s.tx_outstanding > 0 {
            report.kicks += 1;
            s.tx.wakeup()?;
        }
    }
    report.seconds = started.elapsed().as_secs_f64();
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_frames_carry_right_checksums_at_every_sequence_number() {
        let ok = |f: &[u8]| match crate::wire::parse(f, LinkType::Ethernet) {
            crate::wire::Parsed::Tcp(p) => crate::wire::tcp_checksum_ok(&p),
            other => panic!("not TCP: {other:?}"),
        };
        for size in [60, 61, 200] {
            let mut frames = test_frames(3, size, [0xff; 6]);
            for f in &mut frames {
                assert_eq!(ok(f), Some(true));
                for seq in [1u32, 6, 0xffff, 0x1_0000, 0xdead_beef, u32::MAX, 0] {
                    set_test_seq(f, seq);
                    assert_eq!(u32::from_be_bytes(f[38..42].try_into().unwrap()), seq);
                    assert_eq!(ok(f), Some(true), "size {size}, seq {seq:#x}");
                }
            }
        }
    }

    #[test]
    fn handoff_copies_the_frame_into_the_owners_queue_and_counts_overflow() {
        let inboxes = Arc::new(vec![Inbox::new(2).unwrap(), Inbox::new(2).unwrap()]);
        let peers = Peers {
            me: 0,
            inboxes: Arc::clone(&inboxes),
        };
        let mut stats = WorkerStats::default();
        let mut woke = 0u64;
        let frame = [7u8; 100];
        for _ in 0..3 {
            handoff(&peers, 1, &frame, 1, 3, Timestamp(5), &mut stats, &mut woke);
        }
        assert_eq!(stats.handoff_out, 2);
        assert_eq!(stats.handoff_full, 1);
        assert_eq!(stats.dropped, 1);
        assert_eq!(woke, 0b10);
        let h = inboxes[1].queue.pop().unwrap();
        assert_eq!((h.len, h.port, h.queue, h.ts), (100, 1, 3, Timestamp(5)));
        assert_eq!(&h.data[..100], &frame[..]);
        assert!(inboxes[0].queue.is_empty());

        let big = vec![0u8; HANDOFF_BYTES + 1];
        handoff(&peers, 1, &big, 0, 0, Timestamp(0), &mut stats, &mut woke);
        assert_eq!(stats.handoff_too_big, 1);
        // An owner index beyond the workers is ignored rather than trusted.
        handoff(&peers, 9, &frame, 0, 0, Timestamp(0), &mut stats, &mut woke);
        assert_eq!(stats.handoff_out, 2);
    }

    #[test]
    fn inbox_wakeup_is_readable_and_drains() {
        let inbox = Inbox::new(1).unwrap();
        inbox.wake();
        inbox.wake();
        let mut p = libc::pollfd {
            fd: inbox.wake.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one live pollfd.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 1);
        inbox.drain_wake();
        p.revents = 0;
        // SAFETY: as above.
        assert_eq!(unsafe { libc::poll(&mut p, 1, 0) }, 0);
    }

    #[test]
    fn test_frames_are_keyed_tcp_flows() {
        let frames = test_frames(8, 60, [0xff; 6]);
        assert_eq!(frames.len(), 8);
        let keys: std::collections::HashSet<_> = frames
            .iter()
            .map(|f| steer::tcp_flow_key(f).expect("keyable"))
            .collect();
        assert_eq!(keys.len(), 8);
        assert!(frames.iter().all(|f| f.len() == 60));
    }

    #[test]
    fn shared_stats_round_trip_every_field() {
        let w = WorkerStats::from_array(std::array::from_fn(|i| i as u64 + 1));
        let k = SocketStats::from_array(std::array::from_fn(|i| i as u64 + 100));
        let shared = SharedStats::default();
        shared.publish(&w);
        shared.publish_sockets(&k);
        assert_eq!(shared.snapshot(), (w, k));
        assert_eq!(w.to_array(), std::array::from_fn(|i| i as u64 + 1));
    }

    #[test]
    fn default_config_is_valid() {
        XskConfig::default().validate().unwrap();
    }

    #[test]
    fn config_rejects_bad_values_naming_the_key() {
        let bad = |f: fn(&mut XskConfig)| {
            let mut c = XskConfig::default();
            f(&mut c);
            c.validate().unwrap_err()
        };
        assert!(bad(|c| c.frame_size = 3000).contains("frame_size"));
        assert!(bad(|c| c.frame_size = 1024).contains("frame_size"));
        assert!(bad(|c| c.rx_ring = 1000).contains("rx_ring"));
        assert!(bad(|c| c.batch = 0).contains("batch"));
        assert!(bad(|c| c.frame_count = 16).contains("frame_count"));
        assert!(bad(|c| c.handoff_queue = 0).contains("handoff_queue"));
    }

    #[test]
    fn config_deserializes_with_defaults_and_rejects_unknown_keys() {
        let c: XskConfig = toml::from_str("batch = 32\npoll_mode = \"busy-poll\"").unwrap();
        assert_eq!(c.batch, 32);
        assert_eq!(c.poll_mode, PollMode::BusyPoll);
        assert_eq!(c.frame_size, 2048);
        assert!(toml::from_str::<XskConfig>("batchh = 32").is_err());
        assert_eq!(c.huge_pages, HugePages::Auto);
        let c: XskConfig = toml::from_str("huge_pages = \"off\"").unwrap();
        assert_eq!(c.huge_pages, HugePages::Off);
        let bad = toml::from_str::<XskConfig>("huge_pages = \"yes\"").unwrap_err();
        assert!(bad.to_string().contains("auto"), "{bad}");
    }

    #[test]
    fn huge_pages_needed_covers_the_umem() {
        let d = XskConfig::default();
        assert_eq!(huge_pages_needed(&d), 8);
        let odd = XskConfig {
            frame_count: 1025,
            ..XskConfig::default()
        };
        assert_eq!(huge_pages_needed(&odd), 2);
    }
}
