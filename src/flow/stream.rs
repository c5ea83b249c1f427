//! The first bytes of each direction of a flow, in sequence order, for inspection.
//!
//! Each direction owns a fixed window of `depth` bytes in a [`StreamPool`] slot, indexed by
//! offset from the stream's first sequence number, so out-of-order segments are written in place
//! and no memory beyond the slot is ever used.

/// What inserting one segment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// The in-order readable prefix grew.
    pub advanced: bool,
    /// The segment (or part of it) repeated bytes already held, identical: a retransmission.
    pub retransmission: bool,
    /// The segment overlapped bytes already held with different content (first copy kept).
    pub conflicting_overlap: bool,
    /// Arrived ahead of a gap.
    pub out_of_order: bool,
    /// Some or all of the segment lay beyond the depth and was not kept.
    pub beyond_depth: bool,
    /// Too many holes to track: the segment was not kept.
    pub too_many_gaps: bool,
    /// The segment was before the stream start or implausibly far ahead.
    pub out_of_window: bool,
}

/// Reassembly state of one direction (lives in the engine's inspection slot).
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamDir {
    _private: (),
}

impl StreamDir {
    /// Anchors the stream at a known initial sequence number (from SYN / SYN-ACK): data starts
    /// at `isn + 1`.
    pub fn set_isn(&mut self, isn: u32) {
        let _ = isn;
        unimplemented!("stream reassembly lands with the flow branch")
    }

    /// Writes a segment into `window` (this direction's `depth`-byte buffer). Without a known
    /// ISN the first segment seen anchors the stream (mid-stream pickup).
    pub fn insert(&mut self, window: &mut [u8], seq: u32, data: &[u8]) -> InsertOutcome {
        let _ = (window, seq, data);
        unimplemented!()
    }

    /// Length of the in-order prefix ready for inspection.
    pub fn readable(&self) -> usize {
        unimplemented!()
    }

    /// True once the in-order prefix fills the window.
    pub fn depth_reached(&self, depth: usize) -> bool {
        self.readable() >= depth
    }
}

/// Fixed-size stream windows, two per slot (one per direction), under a global byte cap.
pub struct StreamPool {
    _private: (),
}

impl StreamPool {
    /// `depth` bytes per direction; at most `memcap / (2 * depth)` slots exist at once.
    /// Memory is reserved up front but only touched as slots are used.
    pub fn new(depth: usize, memcap: usize) -> Self {
        let _ = (depth, memcap);
        unimplemented!()
    }

    /// A free slot, or `None` when the global cap is reached (counted by the caller).
    pub fn alloc(&mut self) -> Option<u32> {
        unimplemented!()
    }

    pub fn free(&mut self, slot: u32) {
        let _ = slot;
        unimplemented!()
    }

    /// The window of one direction (`dir` 0 = to server, 1 = to client).
    pub fn window_mut(&mut self, slot: u32, dir: usize) -> &mut [u8] {
        let _ = (slot, dir);
        unimplemented!()
    }

    pub fn window(&self, slot: u32, dir: usize) -> &[u8] {
        let _ = (slot, dir);
        unimplemented!()
    }

    pub fn depth(&self) -> usize {
        unimplemented!()
    }

    pub fn in_use(&self) -> usize {
        unimplemented!()
    }

    pub fn capacity(&self) -> usize {
        unimplemented!()
    }
}
