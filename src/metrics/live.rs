//! The live datapath's side of the metrics: plain numbers the runtime hands over at scrape time.
//!
//! Nothing here is on the packet path. The XDP program counts per CPU in a BPF array, the
//! AF_XDP workers already publish their ring and handoff counters (single-writer relaxed
//! stores, once per batch), and the kernel keeps socket statistics. The exporter asks a
//! [`LiveSource`] for all of it once per scrape, on its own thread.
//!
//! # Hooking the live runtime in
//!
//! ```text
//! let hub = Hub::new(HubOptions::from_config(&config, RunMode::Live));
//! let _exporter = Exporter::start(addr, Arc::clone(&hub))?;        // before attaching
//! live::run(&setup,
//!     |i| Metered::new(Engine::new(..), hub.register_worker(i)),  // per worker thread
//!     stop,
//!     |stats, program| {                                          // every worker receiving
//!         hub.set_live_source(Box::new(MyAdapter { stats: stats.clone(),
//!                                                  xdp: program.counter_reader()? }));
//!         hub.set_source_ready(true);                             // /readyz: attached
//!     })
//! ```
//!
//! where `MyAdapter::read` copies `CounterReader::read()` into [`LiveSnapshot::xdp`] (reason and
//! action names as labels) and each worker's `SharedStats::snapshot()` into one
//! [`LiveWorker`]. Registration of workers must happen before the exporter's first scrape
//! is expected to be complete; `/readyz` waits for every registered worker to poll.
//!
//! Field mapping from the datapath branch's types (`src/datapath/xsk.rs`, `bpf.rs`):
//!
//! | datapath                                   | here                                      |
//! |--------------------------------------------|-------------------------------------------|
//! | `XdpCounters::reasons[r]` (by `Reason`)    | `XdpCounts::reasons` (`reason` label)     |
//! | `XdpCounters::actions[a]` (`ACTION_NAMES`) | `XdpCounts::actions` (`action` label)     |
//! | `WorkerStats::{rx, rx_bytes, tx, dropped}` | `RingCounts::{rx_packets, rx_bytes, tx_packets, dropped_packets}` |
//! | `WorkerStats::{tx_ring_full, fill_empty, tx_kicks}` | `RingCounts::{tx_ring_full, fill_empty, tx_kicks}` |
//! | `WorkerStats::handoff_{out, in, full, no_frame, too_big}` | `HandoffCounts::{sent, received, queue_full, no_frame, too_big}` |
//! | `SocketStats::*` (summed over the worker's sockets) | `SocketCounts::*` (same names)   |

/// Packets and bytes under one label.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PacketsBytes {
    pub packets: u64,
    pub bytes: u64,
}

/// The XDP program's counters, summed over CPUs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct XdpCounts {
    /// Why frames left the program (`foreign_port`, `non_tcp`, `blocked` (block map),
    /// `bypassed`, `to_socket`, `unsure`, `no_socket`, `expired`): label `reason`.
    pub reasons: Vec<(&'static str, PacketsBytes)>,
    /// The XDP action each frame got (`aborted`, `drop`, `pass`, `tx`, `redirect`): label
    /// `action`.
    pub actions: Vec<(&'static str, PacketsBytes)>,
}

/// One worker's ring and handoff counters as its loop published them.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RingCounts {
    pub rx_packets: u64,
    pub rx_bytes: u64,
    pub tx_packets: u64,
    /// Frames the worker dropped (verdict) and released without sending.
    pub dropped_packets: u64,
    /// Frames that did not fit the TX ring (lost).
    pub tx_ring_full: u64,
    /// Times the fill ring wanted frames and none were free.
    pub fill_empty: u64,
    pub tx_kicks: u64,
}

/// Frames passed between workers (a flow owned by another worker's queue).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandoffCounts {
    pub sent: u64,
    pub received: u64,
    /// Lost: the owner's queue was full.
    pub queue_full: u64,
    /// Lost: the owner had no free frame to send it from.
    pub no_frame: u64,
    /// Lost: larger than a handoff slot.
    pub too_big: u64,
}

/// The kernel's statistics of a worker's AF_XDP sockets (getsockopt XDP_STATISTICS), summed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SocketCounts {
    pub rx_dropped: u64,
    pub rx_invalid_descs: u64,
    pub tx_invalid_descs: u64,
    pub rx_ring_full: u64,
    pub rx_fill_ring_empty_descs: u64,
    pub tx_ring_empty_descs: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveWorker {
    pub worker: usize,
    pub ring: RingCounts,
    pub handoff: HandoffCounts,
    pub socket: SocketCounts,
}

/// Everything the live runtime reports at one scrape.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LiveSnapshot {
    /// `None` when the counter map could not be read this time (the scrape still succeeds).
    pub xdp: Option<XdpCounts>,
    pub workers: Vec<LiveWorker>,
}

/// Implemented by the live runtime; called by the exporter thread once per scrape.
pub trait LiveSource: Send + Sync {
    /// Fills `out` (which starts empty) with the current counters.
    fn read(&self, out: &mut LiveSnapshot);
}

/// A fixed snapshot: for tests, and for a runtime that prefers to push values itself.
impl LiveSource for std::sync::Mutex<LiveSnapshot> {
    fn read(&self, out: &mut LiveSnapshot) {
        if let Ok(s) = self.lock() {
            out.clone_from(&s);
        }
    }
}
