//! The fixed-offset decode of plain Ethernet/IP/TCP frames (`wire::decode_plain`, on by
//! default) against the tunnel-capable decode alone: every shared capture, replayed both ways
//! in block mode, gives the same verdict per frame, the same EVE records in the same order,
//! and the same counters.

mod common;

use serde_json::Value;
use unmask::capture::pcap::CaptureSource;
use unmask::capture::{Action, Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::worker::{self, Clock};
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::output::eve::EveFormat;
use unmask::verdict::{FlowControl, FrameHandler, Mode, NoFlowControl};

/// An engine that remembers the action it gave each frame.
struct Recording {
    engine: Engine,
    actions: Vec<Action>,
}

impl FrameHandler for Recording {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        let a = self.engine.handle(frame);
        self.actions.push(a);
        a
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.engine.after_batch(now, ctl)
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.engine.finish(now, ctl)
    }
}

struct Outcome {
    actions: Vec<Action>,
    records: Vec<Value>,
    counters: Counters,
}

fn replay(path: &std::path::Path, plain: bool) -> Outcome {
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    let mut engine_config = config.engine();
    // As replay runs it (`auto`): captures hold offloaded, unfinished checksums.
    engine_config.verify_checksums = false;
    let (tx, rx) = crossbeam_channel::unbounded::<EveRecord>();
    let mut engine = Engine::new(
        &engine_config,
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    engine.set_plain_decode(plain);
    let mut handler = Recording {
        engine,
        actions: Vec::new(),
    };
    let mut source = CaptureSource::open(&[path.to_path_buf()], 64).expect("capture opens");
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Damaged captures end in an error; both runs meet it at the same frame.
    let _ = worker::run(
        &mut source,
        &mut handler,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, _| {},
    );
    let counters = handler.engine.counters().clone();
    drop(handler.engine);
    Outcome {
        actions: handler.actions,
        records: rx
            .try_iter()
            .map(|r| r.to_json(&EveFormat::default()))
            .collect(),
        counters,
    }
}

#[test]
fn plain_decode_gives_the_same_verdicts_records_and_counters_on_every_shared_capture() {
    let Some(dir) = common::shared_pcaps("plain_decode") else {
        return;
    };
    let mut caps = Vec::new();
    common::captures(&dir, &mut caps);
    caps.sort();
    assert!(!caps.is_empty(), "no captures under {}", dir.display());
    let mut failures = Vec::new();
    let (mut frames, mut tcp) = (0usize, 0u64);
    for cap in &caps {
        let Ok(_) = CaptureSource::open(std::slice::from_ref(cap), 64) else {
            continue;
        };
        let on = replay(cap, true);
        let off = replay(cap, false);
        let name = cap.display();
        frames += on.actions.len();
        tcp += on.counters.tcp;
        if on.actions != off.actions {
            failures.push(format!("{name}: verdicts differ"));
        }
        if on.records != off.records {
            let at = on
                .records
                .iter()
                .zip(&off.records)
                .position(|(a, b)| a != b)
                .unwrap_or(on.records.len().min(off.records.len()));
            failures.push(format!(
                "{name}: EVE records differ ({} vs {}), first at {at}: {:?} vs {:?}",
                on.records.len(),
                off.records.len(),
                on.records.get(at),
                off.records.get(at)
            ));
        }
        if on.counters != off.counters {
            failures.push(format!(
                "{name}: counters differ: {:?} vs {:?}",
                on.counters, off.counters
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(frames > 10_000 && tcp > 0, "{frames} frames, {tcp} TCP");
}
