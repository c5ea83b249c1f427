//! What each extra EVE sink did with the records it was handed, shared by the writer thread,
//! a sink's own sender thread (redis) and the metrics exporter.

use std::sync::atomic::{AtomicU64, Ordering};

/// Records one sink delivered and lost, and how often it had to connect again, readable by the
/// metrics exporter while the writer runs.
#[derive(Debug)]
pub struct SinkCounter {
    pub label: String,
    sent: AtomicU64,
    lost: AtomicU64,
    reconnects: AtomicU64,
}

impl SinkCounter {
    pub fn new(label: String) -> SinkCounter {
        SinkCounter {
            label,
            sent: AtomicU64::new(0),
            lost: AtomicU64::new(0),
            reconnects: AtomicU64::new(0),
        }
    }

    pub fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    pub fn lost(&self) -> u64 {
        self.lost.load(Ordering::Relaxed)
    }

    /// Connections made after the first (the peer went away, or was away at the start, and a
    /// later attempt found it).
    pub fn reconnects(&self) -> u64 {
        self.reconnects.load(Ordering::Relaxed)
    }

    pub fn add_sent(&self, n: u64) {
        self.sent.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_lost(&self, n: u64) {
        self.lost.fetch_add(n, Ordering::Relaxed);
    }

    pub fn add_reconnect(&self) {
        self.reconnects.fetch_add(1, Ordering::Relaxed);
    }
}

/// What a sink did with one record at the moment it was handed over.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Delivery {
    Sent,
    Lost,
    /// Queued for the sink's own thread, which counts it sent or lost later.
    Queued,
}

/// What the writer tells a sink about a line besides its bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LineMeta {
    /// The alert's `alert.severity` (1 highest), `None` for other event types.
    pub alert_severity: Option<u8>,
}
