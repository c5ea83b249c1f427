//! The per-core loop: poll the source, hand each frame to the handler, apply its action, run
//! timers between batches. It reads like the dataflow and knows nothing of files or rings.

use std::sync::atomic::{AtomicBool, Ordering};

use crate::capture::{PacketSource, Polled, SourceError, Timestamp};
use crate::verdict::{FlowControl, FrameHandler};

/// Which clock drives timeouts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Clock {
    /// Capture time: timeouts follow the packets, so replays are deterministic.
    PacketTime,
    /// The wall clock, read once per batch: flows expire even when no packets arrive.
    Wall,
}

impl Clock {
    fn now(self) -> Timestamp {
        match self {
            Clock::PacketTime => Timestamp(0),
            Clock::Wall => Timestamp::now(),
        }
    }
}

/// What one run of the loop did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopStats {
    pub batches: u64,
    pub frames: u64,
    pub idle_polls: u64,
}

/// Runs until the source ends or `stop` is set; every flow is ended before returning, also
/// when the source fails (so the records of what was seen so far are written), in which case
/// the source's error is returned afterwards.
pub fn run<S, H>(
    source: &mut S,
    handler: &mut H,
    ctl: &mut dyn FlowControl,
    clock: Clock,
    stop: &AtomicBool,
    mut on_batch: impl FnMut(&S, &H),
) -> Result<LoopStats, SourceError>
where
    S: PacketSource,
    H: FrameHandler,
{
    let mut stats = LoopStats::default();
    let result = loop {
        if stop.load(Ordering::Relaxed) {
            break Ok(());
        }
        match source.poll_batch(|frame| handler.handle(frame)) {
            Ok(Polled::Frames(n)) => {
                stats.batches += 1;
                stats.frames += n as u64;
            }
            Ok(Polled::Idle) => stats.idle_polls += 1,
            Ok(Polled::End) => break Ok(()),
            Err(e) => break Err(e),
        }
        handler.after_batch(clock.now(), ctl);
        on_batch(source, handler);
    };
    handler.finish(clock.now(), ctl);
    result.map(|()| stats)
}
