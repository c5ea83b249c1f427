//! Verdicts: what the appliance does about a flow, and the commands the engine hands to the
//! datapath so the kernel can act on whole flows.

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
