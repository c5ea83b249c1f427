//! Every EVE record unmask writes must validate against Suricata's own schema once the
//! top-level `unmask` object (our evidence) is removed, so SIEM pipelines built for Suricata
//! ingest them unchanged.

mod common;

use std::path::Path;

use common::run_engine;
use serde_json::Value;
use unmask::config::Config;
use unmask::fixtures;
use unmask::verdict::Mode;

const SCHEMA: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../shared/schemas/suricata-8.0.6-eve.schema.json"
);

fn validator() -> Option<jsonschema::Validator> {
    if !Path::new(SCHEMA).is_file() {
        eprintln!("eve_schema: skipped: {SCHEMA} not found");
        return None;
    }
    let schema: Value = serde_json::from_str(&std::fs::read_to_string(SCHEMA).unwrap()).unwrap();
    Some(jsonschema::validator_for(&schema).expect("Suricata's schema compiles"))
}

fn assert_valid(v: &jsonschema::Validator, records: &[Value]) -> usize {
    let mut checked = 0;
    for rec in records {
        let mut stripped = rec.clone();
        stripped
            .as_object_mut()
            .expect("records are objects")
            .remove("unmask");
        let errors: Vec<String> = v
            .iter_errors(&stripped)
            .map(|e| format!("{} at {}", e, e.instance_path))
            .collect();
        assert!(
            errors.is_empty(),
            "record {rec} fails the schema: {errors:?}"
        );
        checked += 1;
    }
    checked
}

#[test]
fn every_record_type_validates_against_suricatas_schema() {
    let Some(v) = validator() else { return };
    let mut types = std::collections::BTreeSet::new();
    for mode in [Mode::Monitor, Mode::Block] {
        let mut c = Config::default();
        c.verdict.mode = mode;
        let run = run_engine(&c, fixtures::standard_capture());
        assert_valid(&v, &run.records);
        // On by default: so the schema above has checked a community_id in every record.
        for r in &run.records {
            assert!(r["community_id"].is_string(), "no community_id: {r}");
        }
        types.extend(
            run.records
                .iter()
                .map(|r| r["event_type"].as_str().unwrap().to_string()),
        );
    }
    for t in ["alert", "flow", "drop", "tls"] {
        assert!(
            types.contains(t),
            "no {t} record was produced, so none was checked: {types:?}"
        );
    }
}

/// Records of flows found inside tunnels carry Suricata's `tunnel` object (depth, pkt_src),
/// which the schema closes to other fields: the kinds go in `unmask.tunnels` instead.
#[test]
fn tunnelled_flow_records_validate() {
    let Some(v) = validator() else { return };
    let path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/evasion/tunnel_gtpu_in_vxlan.pcap");
    let mut c = Config::default();
    c.verdict.mode = Mode::Block;
    let (records, error) = common::replay_capture(&path, c);
    assert!(error.is_none(), "{error:?}");
    let with_tunnel = records.iter().filter(|r| r["tunnel"]["depth"] == 2).count();
    assert_eq!(
        with_tunnel,
        records.len(),
        "every record says what carried its flow"
    );
    assert!(records.iter().any(|r| r["event_type"] == "alert"));
    assert_eq!(assert_valid(&v, &records), records.len());
}

#[test]
fn the_validator_rejects_what_suricata_would_not_write() {
    // Guards the test above against a validator that accepts anything.
    let Some(v) = validator() else { return };
    let bad = serde_json::json!({ "timestamp": "yesterday", "event_type": "alert", "bogus": 1 });
    assert!(!v.is_valid(&bad));
}

#[test]
fn host_alert_and_first_seen_records_validate_against_suricatas_schema() {
    use unmask::capture::Timestamp;
    use unmask::detect::Finding;
    use unmask::detect::FindingKind;
    use unmask::engine::record::{AlertAction, AlertRecord, FlowMeta};
    use unmask::flow::Dir;
    use unmask::host::correlate::{Cause, Contribution, HostAlert, HostKey, Role};
    use unmask::host::pair::PairKind;
    use unmask::host::{FirstSeen, HostRecord};
    use unmask::output::eve::EveFormat;
    use unmask::proto::AppProto;
    use unmask::wire::Family;
    let Some(v) = validator() else { return };
    let mut client = [0u8; 16];
    client[..4].copy_from_slice(&[10, 0, 0, 1]);
    let mut server = [0u8; 16];
    server[..4].copy_from_slice(&[10, 0, 0, 9]);
    let ts = Timestamp::from_secs_nanos(1_700_000_000, 0);
    let meta = FlowMeta {
        flow_id: 7,
        family: Family::V4,
        client_addr: client,
        client_port: 40000,
        server_addr: server,
        server_port: 8443,
        app_proto: AppProto::Tls,
        app_ts: AppProto::Tls,
        app_tc: AppProto::Tls,
        tunnels: Default::default(),
    };
    let mut records = Vec::new();
    for role in [Role::Client, Role::Server] {
        let alert = HostAlert {
            ts,
            host: HostKey {
                family: Family::V4,
                addr: client,
                role,
            },
            window_start: ts,
            window_secs: 300,
            score: 160,
            threshold: 150,
            contributions: vec![
                Contribution {
                    ts,
                    flow_id: 7,
                    cause: Cause::FirstSeen(PairKind::ClientJa4),
                    points: 40,
                },
                Contribution {
                    ts,
                    flow_id: 8,
                    cause: Cause::Finding(FindingKind::ProtocolPortMismatch),
                    points: 120,
                },
            ],
        };
        records.push(HostRecord::Alert(Box::new(alert)).to_json(&EveFormat::default()));
    }
    for kind in PairKind::ALL {
        let f = FirstSeen {
            ts,
            meta,
            kind,
            value: "t13d1516h2_8daaf6152771_e5627efa2ab1".into(),
        };
        records.push(HostRecord::FirstSeen(Box::new(f)).to_json(&EveFormat::default()));
    }
    // A per-flow finding of the host layer (a service profile departure), as a worker's alert.
    let mut finding = Finding {
        kind: FindingKind::ServiceProfileMismatch,
        confidence: 70,
        block: false,
        dir: Dir::ToClient,
        evidence: Default::default(),
    };
    finding.evidence.add("service", "www.example-site.test");
    finding.evidence.add("departed", "prefix,post_handshake");
    let alert = AlertRecord {
        ts,
        meta,
        dir: Dir::ToClient,
        action: AlertAction::Allowed,
        finding,
        pcap_cnt: None,
    };
    records.push(HostRecord::Finding(Box::new(alert)).to_json(&EveFormat::default()));
    assert_eq!(assert_valid(&v, &records), 2 + PairKind::ALL.len() + 1);
    let last = records.last().unwrap();
    assert_eq!(last["alert"]["signature_id"], 9_470_042);
    assert_eq!(last["unmask"]["finding"], "service_profile_mismatch");
    assert_eq!(
        records[0]["unmask"]["host"]["flow_ids"],
        serde_json::json!([7, 8])
    );
}
