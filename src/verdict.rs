//! Verdicts: what the appliance does about a flow, and the commands the engine hands to the
//! datapath so the kernel can act on whole flows.

use std::sync::atomic::{AtomicU64, Ordering};

use crate::capture::{Action, Frame, Timestamp};
use crate::flow::FlowKey;
use crate::wire::TcpFlags;

/// Whether findings only alert, or also drop.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Mode {
    /// Alert only; every packet is forwarded.
    #[default]
    Monitor,
    /// Alert, drop the triggering packet and every later packet of the flow.
    Block,
}

impl Mode {
    pub fn name(self) -> &'static str {
        match self {
            Mode::Monitor => "monitor",
            Mode::Block => "block",
        }
    }
}

/// What happens to traffic when the daemon is not there to judge it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "kebab-case")]
pub enum FailMode {
    /// The XDP program keeps bridging in the kernel: availability over inspection.
    #[default]
    FailOpen,
    /// The XDP program drops what it cannot hand to a worker.
    FailClosed,
}

/// Which judged flows the kernel forwards on its own (the XDP bypass map), so their later
/// packets never reach a worker. Live only: replay has no kernel and ignores it.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Bypass {
    /// Every packet reaches a worker: full visibility, the userspace cost of every byte.
    #[default]
    Off,
    /// Flows whose inspection finished without any finding.
    Clean,
    /// Every flow whose inspection is over and that is not blocked: clean, alerted (monitor
    /// mode, or alert-only checks), and those left uninspected (stream memcap).
    Decided,
}

impl Bypass {
    pub fn name(self) -> &'static str {
        match self {
            Bypass::Off => "off",
            Bypass::Clean => "clean",
            Bypass::Decided => "decided",
        }
    }

    /// Whether a flow that reached `verdict` goes to the kernel.
    pub fn takes(self, verdict: FlowVerdict) -> bool {
        match self {
            Bypass::Off => false,
            Bypass::Clean => verdict == FlowVerdict::Clean,
            Bypass::Decided => matches!(
                verdict,
                FlowVerdict::Clean | FlowVerdict::Alerted | FlowVerdict::Uninspected
            ),
        }
    }
}

/// Where a flow stands; stored in the flow's `ext.verdict`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum FlowVerdict {
    /// Still being inspected.
    #[default]
    Inspecting = 0,
    /// Inspection finished without a blocking finding; later packets skip inspection.
    Clean = 1,
    /// A finding alerted (monitor mode, or a non-blocking check); inspection is over.
    Alerted = 2,
    /// Blocked: every later packet is dropped.
    Blocked = 3,
    /// Could not be inspected (no stream memory, table refused): passed without judgement.
    Uninspected = 4,
}

impl FlowVerdict {
    pub fn from_u8(v: u8) -> FlowVerdict {
        match v {
            1 => FlowVerdict::Clean,
            2 => FlowVerdict::Alerted,
            3 => FlowVerdict::Blocked,
            4 => FlowVerdict::Uninspected,
            _ => FlowVerdict::Inspecting,
        }
    }

    /// True once no more inspection will happen for the flow.
    pub fn decided(self) -> bool {
        self != FlowVerdict::Inspecting
    }
}

/// A whole-flow instruction for the datapath, produced by the engine after a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlowCommand {
    /// Drop every later packet of this flow in the kernel (both directions).
    Block { key: FlowKey, at: Timestamp },
    /// Forward every later packet of this flow in the kernel without userspace.
    Bypass { key: FlowKey, at: Timestamp },
    /// The flow ended: remove any kernel entry for it.
    Forget { key: FlowKey },
}

/// What the kernel settled for a bypassed flow since its entry was written: the packets the
/// worker did not see.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelFlow {
    /// Packets by sending endpoint of the key (index 0: [`crate::flow::Side::Lo`], 1: `Hi`).
    pub pkts: [u64; 2],
    /// Frame bytes, indexed as `pkts`.
    pub bytes: [u64; 2],
    /// TCP flags seen, OR-ed, indexed as `pkts`.
    pub tcp_flags: [u8; 2],
    /// Nanoseconds since the kernel last matched a packet of the flow; `None`: not since the
    /// entry was written.
    pub idle_ns: Option<u64>,
}

impl KernelFlow {
    /// FIN from both ends, or a RST from either: the connection is over.
    pub fn closed(&self) -> bool {
        (self.tcp_flags[0] & self.tcp_flags[1] & TcpFlags::FIN) != 0 || self.reset()
    }

    /// A RST from either end.
    pub fn reset(&self) -> bool {
        (self.tcp_flags[0] | self.tcp_flags[1]) & TcpFlags::RST != 0
    }
}

/// The datapath side of flow commands: the XDP maps live, nothing in replay.
pub trait FlowControl {
    fn apply(&mut self, cmd: &FlowCommand);

    /// The kernel's account of a bypassed flow; `None` where there is no kernel (replay) or
    /// no entry (expired, evicted, never written).
    fn kernel_flow(&mut self, _key: &FlowKey) -> Option<KernelFlow> {
        None
    }
}

/// Replay has no kernel to tell; commands are only counted.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoFlowControl {
    pub blocks: u64,
    pub bypasses: u64,
    pub forgets: u64,
}

impl FlowControl for NoFlowControl {
    fn apply(&mut self, cmd: &FlowCommand) {
        match cmd {
            FlowCommand::Block { .. } => self.blocks += 1,
            FlowCommand::Bypass { .. } => self.bypasses += 1,
            FlowCommand::Forget { .. } => self.forgets += 1,
        }
    }
}

/// What a worker loop drives: the engine in production, a trivial loop in diagnostics.
pub trait FrameHandler {
    /// Judges one frame.
    fn handle(&mut self, frame: &Frame<'_>) -> Action;

    /// Called after every batch (and when idle) with the current time: run timers, hand
    /// pending flow commands to `ctl`, publish counters.
    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl);

    /// Called once when the source ends or the worker stops: end every flow.
    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl);
}

/// Hosts a host alert put on the block list (`correlation.block_secs`), until a packet time.
/// The EVE writer thread writes it when it writes a host alert; workers read it when a flow
/// starts. No lock: a slot is two atomics, and a reader that meets a slot half written sees a
/// host that is not (yet) listed, which only lets one more flow start.
pub struct HostBlocks {
    slots: Box<[HostSlot]>,
}

#[derive(Default)]
struct HostSlot {
    /// [`HostBlocks::key`] of the address; 0: empty.
    key: AtomicU64,
    /// Packet time (ns) until which new flows of the host are blocked.
    until: AtomicU64,
}

/// Slots looked at from a key's home slot.
const HOST_PROBE: usize = 4;

impl HostBlocks {
    /// `capacity` slots (rounded up to a power of two): the most hosts listed at once.
    pub fn new(capacity: usize) -> HostBlocks {
        let n = capacity.max(HOST_PROBE).next_power_of_two();
        HostBlocks {
            slots: (0..n).map(|_| HostSlot::default()).collect(),
        }
    }

    /// FNV-1a of the 16 address bytes (IPv4 in the first four), never 0 (an empty slot).
    fn key(addr: &[u8; 16]) -> u64 {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325;
        for b in addr {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h | 1
    }

    fn home(&self, key: u64) -> usize {
        // The length is a power of two.
        (key as usize) & (self.slots.len() - 1)
    }

    /// Lists `addr` until `until` (packet time). A full neighbourhood gives up the slot whose
    /// listing ends first.
    pub fn block(&self, addr: &[u8; 16], until: Timestamp) {
        let key = Self::key(addr);
        let home = self.home(key);
        let mask = self.slots.len() - 1;
        let mut pick = home;
        let mut soonest = u64::MAX;
        for i in 0..HOST_PROBE {
            let at = (home + i) & mask;
            let slot = &self.slots[at];
            let k = slot.key.load(Ordering::Acquire);
            if k == key || k == 0 {
                pick = at;
                break;
            }
            let u = slot.until.load(Ordering::Acquire);
            if u < soonest {
                soonest = u;
                pick = at;
            }
        }
        let slot = &self.slots[pick];
        slot.until.store(0, Ordering::Release);
        slot.key.store(key, Ordering::Release);
        slot.until.store(until.0, Ordering::Release);
    }

    /// Whether a new flow of `addr` at packet time `now` meets a listing.
    pub fn blocked(&self, addr: &[u8; 16], now: Timestamp) -> bool {
        let key = Self::key(addr);
        let home = self.home(key);
        let mask = self.slots.len() - 1;
        (0..HOST_PROBE).any(|i| {
            let slot = &self.slots[(home + i) & mask];
            slot.key.load(Ordering::Acquire) == key && slot.until.load(Ordering::Acquire) > now.0
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> [u8; 16] {
        let mut a = [0u8; 16];
        a[..4].copy_from_slice(&[10, 77, 0, last]);
        a
    }

    #[test]
    fn a_listed_host_is_blocked_until_its_time_and_others_never() {
        let b = HostBlocks::new(8);
        let t = |s: u64| Timestamp(s * Timestamp::NANOS_PER_SEC);
        assert!(!b.blocked(&v4(1), t(1)));
        b.block(&v4(1), t(60));
        assert!(b.blocked(&v4(1), t(59)));
        assert!(!b.blocked(&v4(1), t(60)), "the listing ends");
        assert!(!b.blocked(&v4(2), t(10)));
        // Listed again: the later time holds.
        b.block(&v4(1), t(120));
        assert!(b.blocked(&v4(1), t(100)));
    }

    #[test]
    fn a_full_table_gives_up_the_listing_that_ends_first() {
        let b = HostBlocks::new(4);
        let t = |s: u64| Timestamp(s * Timestamp::NANOS_PER_SEC);
        for i in 0..4u8 {
            b.block(&v4(i), t(100 + u64::from(i)));
        }
        b.block(&v4(9), t(500));
        assert!(b.blocked(&v4(9), t(200)));
        assert!(!b.blocked(&v4(0), t(50)), "the soonest listing made room");
        assert!((1..4).all(|i| b.blocked(&v4(i), t(50))));
    }
}
