//! `Engine::prefault_flow_table` (the flow table's pages and the relay watch's slots mapped
//! before the first packet) changes nothing an engine does: the relay fixture, whose finding
//! depends on the watch slots, and the standard fixture capture give the same verdicts, EVE
//! records and counters with and without it.

mod common;

use std::path::Path;

use serde_json::Value;
use unmask::capture::{Action, LinkType, VecSource};
use unmask::config::Config;
use unmask::engine::worker::{self, Clock};
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures::{self, TimedFrame};
use unmask::output::eve::EveFormat;
use unmask::verdict::NoFlowControl;

fn run(
    config: &Config,
    frames: Vec<TimedFrame>,
    prefault: bool,
) -> (Vec<Action>, Vec<Value>, Counters) {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    if prefault {
        engine.prefault_flow_table();
    }
    let mut source = VecSource::new(LinkType::Ethernet, frames, 64);
    let stop = std::sync::atomic::AtomicBool::new(false);
    worker::run(
        &mut source,
        &mut engine,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, _| {},
    )
    .expect("in-memory source never fails");
    let counters = engine.counters().clone();
    drop(engine);
    let records = rx
        .try_iter()
        .map(|r| r.to_json(&EveFormat::default()))
        .collect();
    (source.actions.clone(), records, counters)
}

#[test]
fn a_prefaulted_engine_gives_the_same_verdicts_records_and_counters() {
    let mut config = Config::default();
    // Small, so the test maps megabytes, not the default table's hundreds.
    config.flow.capacity = 4096;
    config
        .detect
        .alert_min_confidence
        .0
        .insert("relayed".into(), 0);
    let relayed = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/rtt/relayed.pcap");
    for frames in [
        common::capture_frames(&relayed),
        fixtures::standard_capture(),
    ] {
        let plain = run(&config, frames.clone(), false);
        let prefaulted = run(&config, frames, true);
        assert!(!plain.1.is_empty(), "no records: nothing compared");
        assert_eq!(plain.0, prefaulted.0, "verdicts");
        assert_eq!(plain.1, prefaulted.1, "records");
        assert_eq!(plain.2, prefaulted.2, "counters");
    }
    // The relay finding, which reads the watch slots the prefault made, is among them.
    let relayed_frames = common::capture_frames(&relayed);
    let (_, records, _) = run(&config, relayed_frames, true);
    assert!(
        records
            .iter()
            .any(|r| r["event_type"] == "alert" && r["unmask"]["finding"] == "relayed"),
        "{records:#?}"
    );
}
