//! Each flow's round-trip watch for the relay check: the RTT state (`flow::rtt`) and the
//! sequential test (`detect::relay`) side by side, one fixed-size slot per flow-table slot.
//!
//! The slots sit beside the flow table rather than in its `Flow` (kept within four cache
//! lines) and outlive the inspection slot: the pairs that tell a relay come after the
//! handshake, often past the stream depth. The watch is bounded so that decided flows still
//! cost nothing once it is over: it stops when the test decides, after `max_pairs` pairs or
//! after `max_packets` packets, and from then on a packet costs one load and one branch.
//! Bypassed flows (live) stop reaching the worker; whatever pairs came before are what the
//! test had.

use crate::capture::Timestamp;
use crate::detect::relay::{RelayCheck, RelayTest};
use crate::detect::Finding;
use crate::flow::rtt::{RttState, Segment};
use crate::flow::{Dir, FlowIdx};
use crate::wire::TcpPacket;

/// One flow's watch: 96 bytes.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    rtt: RttState,
    test: RelayTest,
    done: bool,
}

/// The per-flow byte cost of the watch.
pub const SLOT_BYTES: usize = std::mem::size_of::<Slot>();
const _: () = assert!(SLOT_BYTES <= 96);

pub(super) struct RttWatch {
    /// Indexed by flow-table slot; grows up to the table's capacity as slots are first used
    /// (reserved up front, so it never reallocates).
    slots: Vec<Slot>,
}

impl RttWatch {
    pub(super) fn new(flow_capacity: usize) -> Self {
        RttWatch {
            slots: Vec::with_capacity(flow_capacity),
        }
    }

    /// Whether a packet of the flow in table slot `idx` still goes to [`RttWatch::packet`]:
    /// its first packet, or the watch not over yet. Inlined, so that the packets of flows
    /// whose watch is over cost one load and a branch.
    #[inline]
    pub(super) fn watching(&self, idx: FlowIdx, started: bool) -> bool {
        started || self.slots.get(idx as usize).is_none_or(|s| !s.done)
    }

    /// Takes one packet of the flow in table slot `idx` (`started`: its first packet, the slot
    /// starts over); returns the finding when the flow's test decides it is relayed.
    #[allow(clippy::too_many_arguments)]
    #[inline]
    pub(super) fn packet(
        &mut self,
        check: &RelayCheck,
        idx: FlowIdx,
        started: bool,
        packets: u64,
        dir: Dir,
        p: &TcpPacket<'_>,
        ts: Timestamp,
    ) -> Option<Finding> {
        let i = idx as usize;
        if i >= self.slots.len() {
            self.grow(i);
        }
        let slot = self.slots.get_mut(i)?;
        if started {
            *slot = Slot::default();
        } else if slot.done {
            return None;
        }
        if check.packets_done(packets) {
            slot.done = true;
        }
        let seg = Segment {
            dir,
            syn: p.flags.syn(),
            fin: p.flags.fin(),
            ack: p.flags.ack(),
            rst: p.flags.rst(),
            seq: p.seq,
            ack_no: p.ack,
            len: p.segment_len,
            ts,
        };
        let sample = slot.rtt.observe(&seg, check.min_gap_ns())?;
        let found = check.judge(&mut slot.test, &sample);
        slot.done |= check.finished(&slot.test, packets);
        found
    }

    /// Makes every slot now (all of the reserved capacity, as the first packets of new flows
    /// would one by one): their pages are then mapped before the first packet rather than
    /// faulted in on the packet path. A made slot is what `grow` would make, so watches do
    /// not change.
    pub(super) fn prefault(&mut self) {
        if let Some(last) = self.slots.capacity().checked_sub(1) {
            self.grow(last);
        }
    }

    /// Slots up to `i` (within the reserved capacity: never reallocates).
    #[cold]
    fn grow(&mut self, i: usize) {
        while self.slots.len() <= i && self.slots.len() < self.slots.capacity() {
            self.slots.push(Slot::default());
        }
    }
}
