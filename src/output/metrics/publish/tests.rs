use super::*;
use crate::capture::{LinkType, VecSource};
use crate::engine::worker::{self, Clock};
use crate::output::metrics::registry::{Hub, HubOptions, RunMode};
use crate::verdict::{Mode, NoFlowControl};

/// Drops frames whose first byte is 0xdd, forwards the rest; counts like the engine.
#[derive(Default)]
struct Fake {
    counters: Counters,
    after_batches: u64,
}

impl FrameHandler for Fake {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        self.counters.packets += 1;
        self.counters.bytes += frame.wire_len as u64;
        if frame.data.first() == Some(&0xdd) {
            self.counters.dropped += 1;
            Action::Drop
        } else {
            self.counters.forwarded += 1;
            Action::Forward
        }
    }
    fn after_batch(&mut self, _: Timestamp, _: &mut dyn FlowControl) {
        self.after_batches += 1;
    }
    fn finish(&mut self, _: Timestamp, _: &mut dyn FlowControl) {}
}

impl Observe for Fake {
    fn observe(&self, out: &mut EngineView) {
        out.counters.clone_from(&self.counters);
        out.active_flows = self.after_batches;
    }
}

fn hub(interval_ms: u64, sample_every: u32) -> Arc<Hub> {
    Hub::new(HubOptions {
        mode: RunMode::Replay,
        verdict: Mode::Monitor,
        stream_depth: 1024,
        publish_interval: Duration::from_millis(interval_ms),
        sample_every,
    })
}

fn frames(n: usize) -> Vec<(Timestamp, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let first = if i % 10 == 3 { 0xdd } else { 0 };
            (Timestamp(i as u64), vec![first; 60 + i % 7])
        })
        .collect()
}

fn run(m: &mut Metered<Fake>, frames: Vec<(Timestamp, Vec<u8>)>, batch: usize) {
    let mut src = VecSource::new(LinkType::Ethernet, frames, batch);
    let stop = std::sync::atomic::AtomicBool::new(false);
    worker::run(
        &mut src,
        m,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, _| {},
    )
    .unwrap();
}

#[test]
fn final_publish_carries_exact_totals() {
    let hub = hub(10_000, 4);
    let mut m = Metered::new(Fake::default(), hub.register_worker(7));
    let input = frames(1000);
    let bytes: u64 = input.iter().map(|f| f.1.len() as u64).sum();
    let drops: Vec<u64> = input
        .iter()
        .filter(|f| f.1[0] == 0xdd)
        .map(|f| f.1.len() as u64)
        .collect();
    run(&mut m, input, 64);
    let t = hub.collect();
    assert_eq!(t.len(), 1);
    let t = &t[0];
    assert!(t.seen && t.finished);
    assert_eq!(t.worker, 7);
    assert_eq!(t.view.counters.packets, 1000);
    assert_eq!(t.view.counters.bytes, bytes);
    assert_eq!(t.loops.frames, 1000);
    assert_eq!(t.loops.batches, 1000usize.div_ceil(64) as u64);
    assert_eq!(t.loops.dropped_packets, drops.len() as u64);
    assert_eq!(t.loops.dropped_bytes, drops.iter().sum::<u64>());
    assert_eq!(t.loops.forwarded_packets + t.loops.dropped_packets, 1000);
    // One packet in four timed, every non-empty batch timed and sized.
    assert_eq!(t.timing.packet.count(), 250);
    assert_eq!(t.timing.batch.count(), t.loops.batches);
    assert_eq!(t.timing.batch_size.sum(), 1000);
    // Everything moved out: nothing left in the channels or in the worker.
    assert!(hub.collect()[0].timing.packet.count() == 250);
}

#[test]
fn unread_snapshots_are_refreshed_in_place_without_losing_samples() {
    // Publish on every batch, never collect until the end: the worker runs out of fresh
    // boxes after three publishes and must recycle its own unread ones.
    let hub = hub(0, 1);
    let mut m = Metered::new(Fake::default(), hub.register_worker(0));
    run(&mut m, frames(500), 10);
    assert_eq!(m.probe().missed, 0);
    assert!(m.probe().loops().publishes >= 50);
    let t = &hub.collect()[0];
    assert_eq!(t.timing.packet.count(), 500, "every sample arrives once");
    assert_eq!(t.timing.batch.count(), 50);
    assert_eq!(t.view.counters.packets, 500);
    assert!(t.finished);
}

#[test]
fn concurrent_collector_sees_monotone_counts_and_every_sample() {
    let hub = hub(0, 1);
    let probe = hub.register_worker(0);
    let stop = Arc::new(AtomicBool::new(false));
    let reader = {
        let hub = Arc::clone(&hub);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut last = 0;
            let mut reads = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let t = hub.collect();
                let p = t[0].view.counters.packets;
                assert!(p >= last, "went backwards: {last} -> {p}");
                assert!(t[0].timing.packet.count() <= p);
                last = p;
                reads += 1;
            }
            reads
        })
    };
    let mut m = Metered::new(Fake::default(), probe);
    run(&mut m, frames(20_000), 8);
    stop.store(true, Ordering::Relaxed);
    let reads = reader.join().unwrap();
    assert!(reads > 0);
    assert_eq!(m.probe().missed, 0);
    let t = &hub.collect()[0];
    assert_eq!(t.view.counters.packets, 20_000);
    assert_eq!(t.timing.packet.count(), 20_000);
    assert_eq!(t.timing.batch_size.sum(), 20_000);
}

#[test]
fn polling_flag_follows_the_loop() {
    let hub = hub(0, 1);
    hub.set_source_ready(true);
    let mut m = Metered::new(Fake::default(), hub.register_worker(3));
    assert_eq!(hub.readiness(), Err("worker 3 not polling".into()));
    let mut ctl = NoFlowControl::default();
    m.after_batch(Timestamp(0), &mut ctl);
    assert_eq!(hub.readiness(), Ok(()));
    m.finish(Timestamp(0), &mut ctl);
    assert_eq!(hub.readiness(), Err("worker 3 not polling".into()));
    hub.set_source_ready(false);
    assert_eq!(hub.readiness(), Err("not reading captures".into()));
}
