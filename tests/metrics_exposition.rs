//! The exposition a replay produces: its values against the replay's own summary and EVE
//! output, promtool's verdict on it and on the shipped scrape config, and the Grafana
//! dashboard's queries against it.

mod metrics_util;

use std::collections::BTreeSet;

use metrics_util::*;
use unmask::detect::FindingKind;
use unmask::output::metrics::registry::{spec_of, Kind, SPECS};

#[test]
fn exposition_values_equal_what_the_replay_produced() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let config = block_config();
    let hub = replay_hub(&config);
    let (summary, eve) = replay_into(&hub, config, &pcap);
    let text = unmask::output::metrics::registry::encode(
        &unmask::output::metrics::registry::registry(&hub).unwrap(),
    )
    .unwrap();
    let s = parse_exposition(&text);
    let c = &summary.counters;
    let frames = unmask::fixtures::standard_capture().len() as u64 + EXTRA_MALFORMED;

    assert_eq!(c.packets, frames);
    assert_eq!(
        sum_of(&s, "unmask_engine_received_packets_total", &[]),
        frames as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_engine_received_bytes_total", &[]),
        c.bytes as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_wire_malformed_packets_total", &[]),
        EXTRA_MALFORMED as f64
    );
    assert_eq!(
        sum_of(
            &s,
            "unmask_wire_malformed_packets_total",
            &["reason=\"truncated_link\""]
        ),
        1.0
    );
    assert_eq!(
        sum_of(&s, "unmask_wire_packets_total", &["kind=\"tcp\""]),
        c.tcp as f64
    );

    // Forward and drop as the engine counted them, and as EVE recorded them.
    assert!(c.dropped > 0, "block mode drops the flagged flows");
    assert_eq!(
        sum_of(
            &s,
            "unmask_engine_dropped_packets_total",
            &["reason=\"verdict\""]
        ),
        c.dropped as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_engine_forwarded_packets_total", &[]),
        c.forwarded as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_engine_forwarded_bytes_total", &[])
            + sum_of(&s, "unmask_engine_dropped_bytes_total", &[]),
        c.bytes as f64
    );

    // Findings: per kind as counted, and as many as EVE alerts.
    let alerts = eve
        .iter()
        .filter(|l| l.contains("\"event_type\":\"alert\""))
        .count();
    assert!(alerts > 0);
    // Findings below their alert floor are counted as action="recorded" and raise no alert.
    let alerted = |having: &[&str]| {
        sum_of(
            &s,
            "unmask_detect_findings_total",
            &[having, &["action=\"allowed\""]].concat(),
        ) + sum_of(
            &s,
            "unmask_detect_findings_total",
            &[having, &["action=\"blocked\""]].concat(),
        )
    };
    assert_eq!(alerted(&[]), alerts as f64);
    let recorded = sum_of(&s, "unmask_detect_findings_total", &["action=\"recorded\""]);
    assert_eq!(recorded, c.findings_recorded.0.iter().sum::<u64>() as f64);
    assert!(
        recorded > 0.0,
        "the upload-heavy fixture flow is recorded, not alerted"
    );
    for k in FindingKind::ALL.iter() {
        let label = format!("kind=\"{}\"", k.name());
        assert_eq!(
            alerted(&[&label]),
            c.findings[k.index()] as f64,
            "{}",
            k.name()
        );
    }
    let blocked_alerts = eve
        .iter()
        .filter(|l| l.contains("\"event_type\":\"alert\"") && l.contains("\"action\":\"blocked\""))
        .count();
    assert_eq!(
        sum_of(&s, "unmask_detect_findings_total", &["action=\"blocked\""]),
        blocked_alerts as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_eve_records_written_total", &["type=\"alert\""]),
        summary.eve.alert as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_eve_records_written_total", &[]),
        eve.len() as f64
    );

    // Flows.
    assert_eq!(
        sum_of(&s, "unmask_flow_created_total", &[]),
        summary.table.created as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_flow_ended_total", &[]),
        c.flows_ended as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_flow_active_flows", &[]),
        0.0,
        "all ended"
    );
    assert_eq!(
        sum_of(&s, "unmask_flow_blocked_total", &[]),
        c.flows_blocked as f64
    );

    // Timing: histogram counts agree with the loop, percentiles are ordered.
    let batches = sum_of(&s, "unmask_worker_batches_total", &[]);
    assert!(batches >= 1.0);
    assert_eq!(
        sum_of(&s, "unmask_worker_batch_latency_seconds_count", &[]),
        batches
    );
    assert_eq!(
        sum_of(&s, "unmask_worker_batch_size_packets_sum", &[]),
        frames as f64
    );
    assert_eq!(
        sum_of(&s, "unmask_worker_packet_latency_seconds_count", &[]),
        (frames / config_sample_every()) as f64
    );
    let p = |q: &str| {
        sum_of(
            &s,
            "unmask_worker_batch_latency_percentile_seconds",
            &[&format!("percentile=\"{q}\"")],
        )
    };
    assert!(p("50") > 0.0 && p("50") <= p("99") && p("99") <= p("99.9"));
    assert_eq!(
        summary.timing.batch_ns[0] as f64 * 1e-9,
        p("50"),
        "summary and gauge read the same histogram"
    );

    // Process.
    assert_eq!(
        sum_of(
            &s,
            "unmask_build_info",
            &["mode=\"replay\"", "verdict=\"block\""]
        ),
        1.0
    );
    assert_eq!(sum_of(&s, "unmask_config_reloads_total", &[]), 0.0);
    assert!(sum_of(&s, "unmask_process_start_time_seconds", &[]) > 1.6e9);
    assert_eq!(sum_of(&s, "unmask_process_ready", &[]), 0.0, "replay over");
}

fn config_sample_every() -> u64 {
    unmask::config::Config::default()
        .metrics
        .latency_sample_every as u64
}

#[test]
fn every_family_is_exported_and_no_other() {
    let text = full_exposition();
    let names: BTreeSet<String> = family_names(&text).into_iter().collect();
    let specs: BTreeSet<String> = SPECS.iter().map(|s| s.name.to_string()).collect();
    assert_eq!(names, specs);
}

#[test]
fn promtool_accepts_the_exposition() {
    let Some(tool) = prometheus_tool("promtool_accepts_the_exposition", "promtool") else {
        return;
    };
    let text = full_exposition();
    let (ok, out) = promtool(&tool, &["check", "metrics"], &text);
    assert!(ok, "promtool check metrics:\n{out}");
    assert!(!out.contains("problem") && !out.contains("error"), "{out}");
    // The check has teeth: a counter without `_total` and a camelCase name are rejected.
    let bad = "# HELP unmask_badCounter x\n# TYPE unmask_badCounter counter\nunmask_badCounter 1\n";
    let (ok, out) = promtool(&tool, &["check", "metrics"], bad);
    assert!(!ok, "promtool accepted a bad exposition: {out}");
}

#[test]
fn promtool_accepts_the_shipped_scrape_config() {
    let Some(tool) = prometheus_tool("promtool_accepts_the_shipped_scrape_config", "promtool")
    else {
        return;
    };
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/prometheus.yml");
    let (ok, out) = promtool(&tool, &["check", "config", path], "");
    assert!(ok, "promtool check config:\n{out}");
    assert!(out.contains("SUCCESS"), "{out}");
    // And it scrapes the default listen address.
    let text = std::fs::read_to_string(path).unwrap();
    let listen = unmask::config::Config::default().metrics.listen;
    assert!(text.contains(&format!("\"{listen}\"")), "{text}");
}

/// Every `unmask_*` name in a PromQL expression, histogram series mapped to their family.
fn metric_names(expr: &str) -> Vec<String> {
    let mut out = Vec::new();
    let bytes = expr.as_bytes();
    let mut i = 0;
    while let Some(at) = expr[i..].find("unmask_") {
        let start = i + at;
        let end = start
            + expr[start..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .unwrap_or(expr.len() - start);
        // A name, not the tail of another identifier.
        let standalone =
            start == 0 || !(bytes[start - 1].is_ascii_alphanumeric() || bytes[start - 1] == b'_');
        if standalone {
            let name = &expr[start..end];
            let family = ["_bucket", "_sum", "_count"]
                .iter()
                .find_map(|suffix| {
                    let base = name.strip_suffix(suffix)?;
                    spec_of(base)
                        .filter(|s| s.kind == Kind::Histogram)
                        .map(|s| s.name)
                })
                .unwrap_or(name);
            out.push(family.to_string());
        }
        i = end;
    }
    out
}

fn queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(m) => {
            for (k, v) in m {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone())
                    }
                    _ => queries(v, out),
                }
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(|v| queries(v, out)),
        _ => {}
    }
}

#[test]
fn dashboard_queries_only_exported_metrics() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/grafana/unmask.json");
    let dash: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).expect("valid JSON");
    assert_eq!(dash["title"], "unmask");
    let mut exprs = Vec::new();
    queries(&dash, &mut exprs);
    assert!(exprs.len() > 30, "{} queries", exprs.len());
    let exported: BTreeSet<String> = family_names(&full_exposition()).into_iter().collect();
    let mut used = BTreeSet::new();
    for e in &exprs {
        for name in metric_names(e) {
            assert!(
                exported.contains(&name),
                "dashboard query uses {name}, which unmask does not export: {e}"
            );
            used.insert(name);
        }
    }
    // The panels the issue asks for, each backed by its metrics.
    let titles: Vec<String> = dash["panels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["title"].as_str().unwrap_or("").to_lowercase())
        .collect();
    for topic in [
        "throughput",
        "drops by reason",
        "findings by kind",
        "latency",
        "flow table",
        "ring health",
    ] {
        assert!(
            titles.iter().any(|t| t.contains(topic)),
            "no panel about {topic}: {titles:?}"
        );
    }
    for needed in [
        "unmask_engine_received_packets_total",
        "unmask_engine_dropped_packets_total",
        "unmask_detect_findings_total",
        "unmask_worker_packet_latency_seconds",
        "unmask_worker_batch_latency_seconds",
        "unmask_flow_active_flows",
        "unmask_xdp_packets_total",
        "unmask_xsk_rx_ring_full_total",
        "unmask_ring_fill_empty_total",
        "unmask_handoff_dropped_total",
    ] {
        assert!(used.contains(needed), "dashboard never queries {needed}");
    }
}

#[test]
fn metric_name_extraction() {
    assert_eq!(
        metric_names("histogram_quantile(0.5, sum by (le) (rate(unmask_worker_packet_latency_seconds_bucket[5m])))"),
        ["unmask_worker_packet_latency_seconds"]
    );
    assert_eq!(
        metric_names("a / sum(unmask_worker_batch_size_packets_count) + x_unmask_y + unmask_flow_active_flows"),
        ["unmask_worker_batch_size_packets", "unmask_flow_active_flows"]
    );
    // `_count` on a non-histogram stays as written (and would fail the dashboard test).
    assert_eq!(
        metric_names("unmask_flow_created_count"),
        ["unmask_flow_created_count"]
    );
}
