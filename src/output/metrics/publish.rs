//! How a worker's numbers reach the exporter without costing the packet path anything.
//!
//! The worker counts in plain integers it alone owns (the engine's [`Counters`], the loop
//! counts below) and records timing samples into its own hdrhistograms. Every
//! `publish_interval` it copies the counters into a preallocated [`Snapshot`] box and moves
//! its recent timing samples into the same box (a swap: no allocation), then sends the box
//! to the exporter over a bounded crossbeam channel. The exporter folds each box into its
//! running totals and sends the emptied box back. Three boxes circulate per worker; the
//! exporter holds at most one at a time, so the worker always finds a box: a fresh one from
//! the return channel, or else its own oldest unread one, which it refreshes in place (its
//! samples are kept and added to). No lock is taken, and nothing shared is touched between
//! two publishes.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender};

use crate::capture::{Action, Frame, Timestamp};
use crate::engine::{Counters, Engine};
use crate::flow::table::TableStats;
use crate::verdict::{FlowControl, FrameHandler};

use super::timing::Timing;

/// Boxes per worker: one being read by the exporter, one waiting, one being filled.
const BOXES: usize = 3;

/// What a handler reports about itself at publish time.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EngineView {
    pub counters: Counters,
    pub table: TableStats,
    pub active_flows: u64,
    /// Stream windows held by flows under inspection.
    pub streams_in_use: u64,
}

/// A handler whose state the metrics can read (the engine; test doubles).
pub trait Observe {
    /// Copies the current numbers into `out` (overwriting; must not allocate).
    fn observe(&self, out: &mut EngineView);
}

impl Observe for Engine {
    fn observe(&self, out: &mut EngineView) {
        out.counters.clone_from(self.counters());
        out.table = self.table_stats();
        out.active_flows = self.active_flows() as u64;
        out.streams_in_use = self.streams_in_use() as u64;
    }
}

/// What the worker loop itself counts: per batch, plus forward/drop by the handler's action.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LoopCounts {
    pub batches: u64,
    pub idle_polls: u64,
    pub frames: u64,
    pub forwarded_packets: u64,
    pub forwarded_bytes: u64,
    pub dropped_packets: u64,
    pub dropped_bytes: u64,
    pub publishes: u64,
}

/// One publish: cumulative counters, and the timing samples since the previous publish.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub view: EngineView,
    pub loops: LoopCounts,
    pub timing: Timing,
    /// The worker has finished: this is its last publish.
    pub finished: bool,
}

/// The channels and flags shared between one worker and the exporter.
#[derive(Debug)]
pub(crate) struct Slot {
    pub(crate) worker: usize,
    full_tx: Sender<Box<Snapshot>>,
    pub(crate) full_rx: Receiver<Box<Snapshot>>,
    pub(crate) empty_tx: Sender<Box<Snapshot>>,
    empty_rx: Receiver<Box<Snapshot>>,
    /// Set while the worker's loop runs (readiness).
    pub(crate) polling: AtomicBool,
    /// Milliseconds since the hub started at the worker's last publish (liveness of a loop).
    pub(crate) heartbeat_ms: AtomicU64,
}

impl Slot {
    pub(crate) fn new(worker: usize) -> Slot {
        let (full_tx, full_rx) = crossbeam_channel::bounded(BOXES);
        let (empty_tx, empty_rx) = crossbeam_channel::bounded(BOXES);
        for _ in 0..BOXES {
            // Capacity equals the number of boxes: never full.
            let _ = empty_tx.try_send(Box::default());
        }
        Slot {
            worker,
            full_tx,
            full_rx,
            empty_tx,
            empty_rx,
            polling: AtomicBool::new(false),
            heartbeat_ms: AtomicU64::new(0),
        }
    }
}

/// The worker's end: its private counts and samples, and when to publish them.
#[derive(Debug)]
pub struct WorkerProbe {
    slot: Arc<Slot>,
    epoch: Instant,
    interval: Duration,
    /// Time one packet in `sample_every` (a power of two).
    sample_every: u32,
    countdown: u32,
    loops: LoopCounts,
    timing: Timing,
    batch_frames: u64,
    batch_start: Instant,
    last_publish: Instant,
    /// Publishes that found no box (cannot happen while the exporter holds at most one).
    pub missed: u64,
}

impl WorkerProbe {
    pub(crate) fn new(
        slot: Arc<Slot>,
        epoch: Instant,
        interval: Duration,
        sample_every: u32,
    ) -> Self {
        let now = Instant::now();
        let sample_every = sample_every.max(1);
        WorkerProbe {
            slot,
            epoch,
            interval,
            sample_every,
            countdown: sample_every,
            loops: LoopCounts::default(),
            timing: Timing::default(),
            batch_frames: 0,
            batch_start: now,
            last_publish: now,
            missed: 0,
        }
    }

    pub fn worker(&self) -> usize {
        self.slot.worker
    }

    pub fn loops(&self) -> &LoopCounts {
        &self.loops
    }

    /// Hands the current numbers to the exporter. Called between batches, never per packet.
    pub fn publish(&mut self, source: &impl Observe, finished: bool) {
        let slot = &self.slot;
        // A fresh box, or else our own oldest unread one (its samples stay and are added to).
        let boxed = slot
            .empty_rx
            .try_recv()
            .or_else(|_| slot.full_rx.try_recv());
        let Ok(mut b) = boxed else {
            self.missed += 1;
            return;
        };
        self.loops.publishes += 1;
        source.observe(&mut b.view);
        b.loops = self.loops;
        b.timing.absorb(&mut self.timing);
        b.finished = finished;
        // Capacity equals the number of boxes: a send cannot find the channel full.
        let _ = slot.full_tx.try_send(b);
        let since = self.last_publish.saturating_duration_since(self.epoch);
        slot.heartbeat_ms
            .store(since.as_millis() as u64, Ordering::Relaxed);
    }

    fn set_polling(&self, on: bool) {
        self.slot.polling.store(on, Ordering::Relaxed);
    }
}

/// A [`FrameHandler`] that times and counts around another one and publishes its numbers.
///
/// Per packet it costs a countdown, an add per action, and one clock read pair for one packet
/// in `latency_sample_every`; per batch two clock reads and three histogram records; per
/// publish (every `publish_interval_ms`) a copy of the counters and a pointer swap.
pub struct Metered<H> {
    inner: H,
    probe: WorkerProbe,
}

impl<H: FrameHandler + Observe> Metered<H> {
    pub fn new(inner: H, probe: WorkerProbe) -> Self {
        Metered { inner, probe }
    }

    pub fn inner(&self) -> &H {
        &self.inner
    }

    pub fn probe(&self) -> &WorkerProbe {
        &self.probe
    }

    pub fn into_inner(self) -> H {
        self.inner
    }

    /// Publishes now, whatever the interval (tests, shutdown paths).
    pub fn publish_now(&mut self) {
        self.probe.last_publish = Instant::now();
        self.probe.publish(&self.inner, false);
    }

    #[inline]
    fn count(&mut self, action: Action, len: u32) {
        let l = &mut self.probe.loops;
        match action {
            Action::Forward => {
                l.forwarded_packets += 1;
                l.forwarded_bytes += len as u64;
            }
            Action::Drop => {
                l.dropped_packets += 1;
                l.dropped_bytes += len as u64;
            }
        }
    }
}

impl<H: FrameHandler + Observe> FrameHandler for Metered<H> {
    #[inline]
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        let p = &mut self.probe;
        if p.batch_frames == 0 {
            p.batch_start = Instant::now();
        }
        p.batch_frames += 1;
        p.countdown -= 1;
        let action = if p.countdown == 0 {
            p.countdown = p.sample_every;
            let t0 = Instant::now();
            let action = self.inner.handle(frame);
            let ns = t0.elapsed().as_nanos() as u64;
            self.probe.timing.packet.record(ns);
            action
        } else {
            self.inner.handle(frame)
        };
        self.count(action, frame.wire_len);
        action
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.inner.after_batch(now, ctl);
        let end = Instant::now();
        let p = &mut self.probe;
        // The first poll: the worker is up; publish at once so it shows in /metrics.
        let first = p.loops.batches == 0 && p.loops.idle_polls == 0;
        if first {
            p.set_polling(true);
        }
        if p.batch_frames > 0 {
            let ns = end.saturating_duration_since(p.batch_start).as_nanos() as u64;
            p.timing.batch.record(ns);
            p.timing.batch_size.record(p.batch_frames);
            p.loops.batches += 1;
            p.loops.frames += p.batch_frames;
            p.batch_frames = 0;
        } else {
            p.loops.idle_polls += 1;
        }
        if first || end.saturating_duration_since(p.last_publish) >= p.interval {
            p.last_publish = end;
            self.probe.publish(&self.inner, false);
        }
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.inner.finish(now, ctl);
        // Frames of a batch cut short by a source error have no after-batch call.
        if self.probe.batch_frames > 0 {
            self.probe.loops.batches += 1;
            self.probe.loops.frames += self.probe.batch_frames;
            self.probe.batch_frames = 0;
        }
        self.probe.last_publish = Instant::now();
        self.probe.publish(&self.inner, true);
        self.probe.set_polling(false);
    }
}

impl<H: Observe> Observe for Metered<H> {
    fn observe(&self, out: &mut EngineView) {
        self.inner.observe(out)
    }
}

#[cfg(test)]
mod tests;
