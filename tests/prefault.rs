//! `Engine::prefault_flow_table` (the flow table's pages and the relay watch's slots mapped
//! before the first packet) changes nothing an engine does: the relay fixture, whose finding
//! depends on the watch slots, and the standard fixture capture give the same verdicts, EVE
//! records and counters with and without it.

mod common;

use std::path::Path;

use common::{run_engine_with, Run};
use unmask::config::Config;
use unmask::fixtures::{self, TimedFrame};

fn run(config: &Config, frames: Vec<TimedFrame>, prefault: bool) -> Run {
    run_engine_with(config, frames, |engine| {
        if prefault {
            engine.prefault_flow_table();
        }
    })
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
        assert!(!plain.records.is_empty(), "no records: nothing compared");
        assert_eq!(plain.actions, prefaulted.actions, "verdicts");
        assert_eq!(plain.records, prefaulted.records, "records");
        assert_eq!(plain.counters, prefaulted.counters, "counters");
    }
    // The relay finding, which reads the watch slots the prefault made, is among them.
    let relayed_frames = common::capture_frames(&relayed);
    let records = run(&config, relayed_frames, true).records;
    assert!(
        records
            .iter()
            .any(|r| r["event_type"] == "alert" && r["unmask"]["finding"] == "relayed"),
        "{records:#?}"
    );
}
