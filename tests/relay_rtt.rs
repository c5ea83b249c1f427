//! The relay check on script-written captures with controlled packet times (fixtures/rtt,
//! written by scripts/rtt_pcaps.py): a relayed keep-alive connection is found with its round
//! trips as evidence; a direct one and one to an origin with variable think time are not.

mod common;

use std::path::{Path, PathBuf};

use common::{capture_frames, run_engine, Run};
use serde_json::Value;
use unmask::config::Config;
use unmask::detect::FindingKind;

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/rtt")
        .join(name)
}

/// A config whose relay findings alert (floor 0), so their evidence is in EVE.
fn alerting() -> Config {
    let mut c = Config::default();
    c.detect.alert_min_confidence.0.insert("relayed".into(), 0);
    c
}

fn relayed_alerts(run: &Run) -> Vec<&Value> {
    run.of_type("alert")
        .filter(|a| a["unmask"]["finding"] == "relayed")
        .collect()
}

fn recorded(run: &Run) -> Vec<String> {
    run.of_type("flow")
        .flat_map(|f| {
            f["unmask"]["recorded_findings"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .map(|v| v.as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn a_relayed_connection_is_found_with_both_round_trips() {
    let run = run_engine(&alerting(), capture_frames(&fixture("relayed.pcap")));
    let alerts = relayed_alerts(&run);
    assert_eq!(alerts.len(), 1, "{:#?}", run.records);
    let ev = &alerts[0]["unmask"]["evidence"];
    // Requests answered 81 and 82 ms later than a 20 ms transport RTT: the second decides.
    assert_eq!(ev["extra_leg_ms"], "81.0");
    assert_eq!(ev["app_rtt_ms"], "101.0");
    assert_eq!(ev["transport_rtt_server_ms"], "20.0");
    assert_eq!(ev["transport_rtt_client_ms"], "0.3");
    assert_eq!(ev["pairs"], "2");
    assert_eq!(ev["legs"], "2");
    assert_eq!(ev["decision"], "relayed");
    assert_eq!(alerts[0]["alert"]["signature_id"], 9_470_043);
    // Nothing else about the connection is odd.
    assert_eq!(run.findings_on_port(80), ["relayed"]);
}

#[test]
fn by_default_it_is_recorded_not_alerted() {
    let run = run_engine(&Config::default(), capture_frames(&fixture("relayed.pcap")));
    assert!(relayed_alerts(&run).is_empty());
    assert_eq!(recorded(&run), ["relayed"]);
    let c = &run.counters;
    assert_eq!(c.findings_recorded[FindingKind::Relayed.index()], 1);
    assert_eq!(c.findings[FindingKind::Relayed.index()], 0);
}

#[test]
fn direct_and_slow_origin_connections_are_not_relayed() {
    for name in ["direct.pcap", "slow_origin.pcap"] {
        let run = run_engine(&alerting(), capture_frames(&fixture(name)));
        assert!(run.of_type("flow").count() == 1, "{name}: one flow");
        assert!(
            relayed_alerts(&run).is_empty(),
            "{name}: {:#?}",
            run.records
        );
        assert!(recorded(&run).is_empty(), "{name}");
        assert!(run.findings_on_port(80).is_empty(), "{name}");
    }
}

#[test]
fn the_check_can_be_turned_off() {
    let mut c = alerting();
    c.detect.relay.enabled = false;
    let run = run_engine(&c, capture_frames(&fixture("relayed.pcap")));
    assert!(relayed_alerts(&run).is_empty());
}

/// The fixtures in the repository are what the script writes today.
#[test]
fn fixtures_are_current() {
    if let Some(checked) = common::script_fixtures_current("rtt_pcaps.py", "rtt") {
        assert_eq!(checked, 3);
    }
}
