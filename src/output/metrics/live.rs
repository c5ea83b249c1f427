//! The live datapath's side of the metrics: plain numbers the runtime hands over at scrape time.
//!
//! Nothing here is on the packet path. The XDP program counts per CPU in a BPF array, the
//! AF_XDP workers already publish their ring and handoff counters (single-writer relaxed
//! stores, once per batch), and the kernel keeps socket statistics. The exporter asks a
//! [`LiveSource`] for all of it once per scrape, on its own thread.
//!
//! # Hooking the live runtime in
//!
//! `runtime::run_metered` does this; any other runtime does the same:
//!
//! ```text
//! let hub = Hub::new(HubOptions::from_config(&config, RunMode::Live));
//! let _exporter = Exporter::start(addr, Arc::clone(&hub))?;        // before attaching
//! live::run(&setup,
//!     |i| Metered::new(engine_i, hub.register_worker(i)),         // per worker thread
//!     stop,
//!     |stats, program| {                                          // every worker receiving
//!         hub.set_live_source(Box::new(DatapathSource::new(stats.clone(),
//!                                                          program.counter_reader()?)));
//!         hub.set_source_ready(true);                             // /readyz: attached
//!     })
//! ```
//!
//! [`DatapathSource`] copies `CounterReader::read()` into [`LiveSnapshot::xdp`] (reason and
//! action names as labels) and each worker's `SharedStats::snapshot()` into one
//! [`LiveWorker`]. `/readyz` waits for every registered worker to poll.
//!
//! Field mapping from the datapath's types (`src/datapath/xsk.rs`, `bpf.rs`):
//!
//! | datapath                                   | here                                      |
//! |--------------------------------------------|-------------------------------------------|
//! | `XdpCounters::reasons[r]` (`Reason::NAMES`) | `XdpCounts::reasons` (`reason` label)    |
//! | `XdpCounters::actions[a]` (`ACTION_NAMES`) | `XdpCounts::actions` (`action` label)     |
//! | `WorkerStats::{rx, rx_bytes, tx, dropped}` | `RingCounts::{rx_packets, rx_bytes, tx_packets, dropped_packets}` |
//! | `WorkerStats::{tx_ring_full, fill_empty, tx_kicks}` | `RingCounts::{tx_ring_full, fill_empty, tx_kicks}` |
//! | `WorkerStats::handoff_{out, in, full, no_frame, too_big}` | `HandoffCounts::{sent, received, queue_full, no_frame, too_big}` |
//! | `SocketStats::*` (summed over the worker's sockets) | `SocketCounts::*` (same names)   |

use crate::datapath::bpf::{self, CounterReader, Reason, ACTION_NAMES};
use crate::datapath::live::LiveStats;
use crate::datapath::xsk::{SocketStats, WorkerStats};

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
    /// `bypassed`, `to_socket`, `unsure`, `no_socket`, `expired`, `tunnel`): label `reason`.
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

/// The live datapath as a [`LiveSource`]: the workers' published counters and the XDP
/// program's per-CPU counter map, read at each scrape.
pub struct DatapathSource {
    stats: LiveStats,
    xdp: CounterReader,
}

impl DatapathSource {
    pub fn new(stats: LiveStats, xdp: CounterReader) -> DatapathSource {
        DatapathSource { stats, xdp }
    }
}

fn pb(c: &bpf::PacketsBytes) -> PacketsBytes {
    PacketsBytes {
        packets: c.packets,
        bytes: c.bytes,
    }
}

/// One worker's datapath counters in the exporter's terms.
pub fn live_worker(worker: usize, w: &WorkerStats, s: &SocketStats) -> LiveWorker {
    LiveWorker {
        worker,
        ring: RingCounts {
            rx_packets: w.rx,
            rx_bytes: w.rx_bytes,
            tx_packets: w.tx,
            dropped_packets: w.dropped,
            tx_ring_full: w.tx_ring_full,
            fill_empty: w.fill_empty,
            tx_kicks: w.tx_kicks,
        },
        handoff: HandoffCounts {
            sent: w.handoff_out,
            received: w.handoff_in,
            queue_full: w.handoff_full,
            no_frame: w.handoff_no_frame,
            too_big: w.handoff_too_big,
        },
        socket: SocketCounts {
            rx_dropped: s.rx_dropped,
            rx_invalid_descs: s.rx_invalid_descs,
            tx_invalid_descs: s.tx_invalid_descs,
            rx_ring_full: s.rx_ring_full,
            rx_fill_ring_empty_descs: s.rx_fill_ring_empty_descs,
            tx_ring_empty_descs: s.tx_ring_empty_descs,
        },
    }
}

/// The XDP counters in the exporter's terms, labelled by reason and action name.
pub fn xdp_counts(c: &bpf::XdpCounters) -> XdpCounts {
    XdpCounts {
        reasons: Reason::NAMES
            .iter()
            .zip(c.reasons.iter())
            .map(|(n, v)| (*n, pb(v)))
            .collect(),
        actions: ACTION_NAMES
            .iter()
            .zip(c.actions.iter())
            .map(|(n, v)| (*n, pb(v)))
            .collect(),
    }
}

impl LiveSource for DatapathSource {
    fn read(&self, out: &mut LiveSnapshot) {
        // A failed map read costs this scrape its XDP families, not the whole scrape.
        out.xdp = self.xdp.read().ok().map(|c| xdp_counts(&c));
        out.workers = self
            .stats
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let (w, sock) = s.snapshot();
                live_worker(i, &w, &sock)
            })
            .collect();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn datapath_counters_map_field_by_field() {
        let w = WorkerStats {
            rx: 1,
            rx_bytes: 2,
            tx: 3,
            dropped: 4,
            tx_ring_full: 5,
            fill_empty: 6,
            tx_kicks: 7,
            handoff_out: 8,
            handoff_in: 9,
            handoff_full: 10,
            handoff_no_frame: 11,
            handoff_too_big: 12,
        };
        let s = SocketStats {
            rx_dropped: 13,
            rx_invalid_descs: 14,
            tx_invalid_descs: 15,
            rx_ring_full: 16,
            rx_fill_ring_empty_descs: 17,
            tx_ring_empty_descs: 18,
        };
        let l = live_worker(3, &w, &s);
        assert_eq!(l.worker, 3);
        let got = [
            l.ring.rx_packets,
            l.ring.rx_bytes,
            l.ring.tx_packets,
            l.ring.dropped_packets,
            l.ring.tx_ring_full,
            l.ring.fill_empty,
            l.ring.tx_kicks,
            l.handoff.sent,
            l.handoff.received,
            l.handoff.queue_full,
            l.handoff.no_frame,
            l.handoff.too_big,
            l.socket.rx_dropped,
            l.socket.rx_invalid_descs,
            l.socket.tx_invalid_descs,
            l.socket.rx_ring_full,
            l.socket.rx_fill_ring_empty_descs,
            l.socket.tx_ring_empty_descs,
        ];
        assert_eq!(got, std::array::from_fn(|i| i as u64 + 1));
    }

    #[test]
    fn xdp_counters_are_labelled_by_name() {
        let mut c = bpf::XdpCounters::default();
        c.reasons[Reason::Blocked as usize] = bpf::PacketsBytes {
            packets: 7,
            bytes: 700,
        };
        c.actions[1] = bpf::PacketsBytes {
            packets: 9,
            bytes: 900,
        };
        let x = xdp_counts(&c);
        assert_eq!(x.reasons.len(), Reason::COUNT);
        let blocked = x.reasons.iter().find(|(n, _)| *n == "blocked").unwrap().1;
        assert_eq!((blocked.packets, blocked.bytes), (7, 700));
        assert_eq!(x.actions[1].0, "drop");
        assert_eq!(x.actions[1].1.packets, 9);
    }
}
