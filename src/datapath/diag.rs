//! Trivial frame handlers: what the datapath runs before (and beside) the engine, in
//! diagnostics, benchmarks and the namespace tests.

use super::steer;
use crate::capture::{Action, Frame, Timestamp};
use crate::flow::FlowKey;
use crate::verdict::{FlowCommand, FlowControl, FrameHandler};

/// Forwards every frame.
#[derive(Debug, Default, Clone, Copy)]
pub struct ForwardAll;

impl FrameHandler for ForwardAll {
    fn handle(&mut self, _: &Frame<'_>) -> Action {
        Action::Forward
    }
    fn after_batch(&mut self, _: Timestamp, _: &mut dyn FlowControl) {}
    fn finish(&mut self, _: Timestamp, _: &mut dyn FlowControl) {}
}

/// Drops every frame (raw rx-drop loop).
#[derive(Debug, Default, Clone, Copy)]
pub struct DropAll;

impl FrameHandler for DropAll {
    fn handle(&mut self, _: &Frame<'_>) -> Action {
        Action::Drop
    }
    fn after_batch(&mut self, _: Timestamp, _: &mut dyn FlowControl) {}
    fn finish(&mut self, _: Timestamp, _: &mut dyn FlowControl) {}
}

/// Pending commands a handler keeps between a frame and the end of its batch.
const PENDING: usize = 64;

/// Blocks every TCP flow that has `port` at either end: drops the frame that shows it and
/// tells the kernel to drop the rest of the flow. Stands in for a blocking finding.
#[derive(Debug)]
pub struct BlockPort {
    pub port: u16,
    pending: [Option<FlowKey>; PENDING],
    n: usize,
    /// Frames this handler dropped itself (the kernel drops the rest).
    pub dropped: u64,
}

impl BlockPort {
    pub fn new(port: u16) -> BlockPort {
        BlockPort {
            port,
            pending: [None; PENDING],
            n: 0,
            dropped: 0,
        }
    }
}

impl FrameHandler for BlockPort {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        let Some(key) = steer::tcp_flow_key(frame.data) else {
            return Action::Forward;
        };
        if key.lo_port != self.port && key.hi_port != self.port {
            return Action::Forward;
        }
        self.dropped += 1;
        let known = self.pending[..self.n].contains(&Some(key));
        if !known {
            if let Some(slot) = self.pending.get_mut(self.n) {
                *slot = Some(key);
                self.n += 1;
            }
        }
        Action::Drop
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        for slot in self.pending.iter_mut().take(self.n) {
            if let Some(key) = slot.take() {
                ctl.apply(&FlowCommand::Block { key, at: now });
            }
        }
        self.n = 0;
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.after_batch(now, ctl);
    }
}

/// Bypasses every TCP flow that has `port` at either end: forwards the frame and tells the
/// kernel to forward the rest of the flow without the workers. Stands in for a clean verdict.
#[derive(Debug)]
pub struct BypassPort {
    pub port: u16,
    pending: [Option<FlowKey>; PENDING],
    n: usize,
}

impl BypassPort {
    pub fn new(port: u16) -> BypassPort {
        BypassPort {
            port,
            pending: [None; PENDING],
            n: 0,
        }
    }
}

impl FrameHandler for BypassPort {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        if let Some(key) = steer::tcp_flow_key(frame.data) {
            if (key.lo_port == self.port || key.hi_port == self.port)
                && !self.pending[..self.n].contains(&Some(key))
            {
                if let Some(slot) = self.pending.get_mut(self.n) {
                    *slot = Some(key);
                    self.n += 1;
                }
            }
        }
        Action::Forward
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        for slot in self.pending.iter_mut().take(self.n) {
            if let Some(key) = slot.take() {
                ctl.apply(&FlowCommand::Bypass { key, at: now });
            }
        }
        self.n = 0;
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.after_batch(now, ctl);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::datapath::steer::tests::tcp4;

    use crate::verdict::NoFlowControl;

    fn frame(data: &[u8]) -> Frame<'_> {
        Frame::ethernet(data, Timestamp(0))
    }

    #[test]
    fn block_port_drops_and_blocks_once_per_flow() {
        let mut h = BlockPort::new(8080);
        let hit = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 8080);
        let back = tcp4([10, 0, 0, 2], 8080, [10, 0, 0, 1], 40000);
        let other = tcp4([10, 0, 0, 1], 40001, [10, 0, 0, 2], 80);
        assert_eq!(h.handle(&frame(&hit)), Action::Drop);
        assert_eq!(h.handle(&frame(&back)), Action::Drop);
        assert_eq!(h.handle(&frame(&other)), Action::Forward);
        assert_eq!(h.handle(&frame(&[0u8; 10])), Action::Forward);
        let mut ctl = NoFlowControl::default();
        h.after_batch(Timestamp(1), &mut ctl);
        assert_eq!(ctl.blocks, 1);
        h.after_batch(Timestamp(2), &mut ctl);
        assert_eq!(ctl.blocks, 1);
    }

    #[test]
    fn bypass_port_forwards_and_bypasses_matching_flows() {
        let mut h = BypassPort::new(80);
        let hit = tcp4([10, 0, 0, 1], 40000, [10, 0, 0, 2], 80);
        let other = tcp4([10, 0, 0, 1], 40001, [10, 0, 0, 2], 81);
        assert_eq!(h.handle(&frame(&hit)), Action::Forward);
        assert_eq!(h.handle(&frame(&hit)), Action::Forward);
        assert_eq!(h.handle(&frame(&other)), Action::Forward);
        let mut ctl = NoFlowControl::default();
        h.after_batch(Timestamp(1), &mut ctl);
        assert_eq!((ctl.bypasses, ctl.blocks), (1, 0));
    }
}
