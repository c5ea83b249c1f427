//! A real Prometheus server (Debian's package) scrapes `unmask replay --metrics`, and its HTTP
//! API must hold every series with the counts the replay produced.
//!
//! Needs the `prometheus` binary; installs it through scripts/deps.sh when root, otherwise
//! prints "SKIPPED" and passes. Everything runs on loopback; both processes are killed and the
//! temporary directories removed however the test ends.

mod metrics_util;

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use metrics_util::*;
use serde_json::Value;
use unmask::output::metrics::registry::{Kind, SPECS};

const TEST: &str = "a_real_prometheus_scrapes_the_replay";

/// A port nobody listens on right now (the kernel's pick for a socket we close again).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs an instant query; `Ok(None)` while Prometheus has no such series yet.
fn query(prom: SocketAddr, q: &str) -> Result<Vec<Value>, String> {
    let (status, _, body) = http_get(prom, &format!("/api/v1/query?query={}", urlencode(q)))
        .map_err(|e| format!("GET {q}: {e}"))?;
    if status != 200 {
        return Err(format!("GET {q}: status {status}: {body}"));
    }
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{q}: {e}: {body}"))?;
    if v["status"] != "success" {
        return Err(format!("{q}: {body}"));
    }
    Ok(v["data"]["result"].as_array().cloned().unwrap_or_default())
}

/// The single value of a query whose result is one sample.
fn scalar(prom: SocketAddr, q: &str) -> Option<f64> {
    let r = query(prom, q).ok()?;
    let [one] = r.as_slice() else {
        return None;
    };
    one["value"][1].as_str()?.parse().ok()
}

fn wait_for<T>(what: &str, limit: Duration, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + limit;
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// The summary's counts, parsed from unmask's stderr.
struct Summary {
    packets: f64,
    would_drop: f64,
    malformed: f64,
}

fn parse_summary(lines: &[String]) -> Summary {
    let field = |prefix: &str| -> Option<&str> {
        lines
            .iter()
            .find_map(|l| l.trim_start().strip_prefix(prefix))
            .map(str::trim_start)
    };
    let first_number = |s: &str| -> f64 {
        s.split(|c: char| !c.is_ascii_digit())
            .find(|t| !t.is_empty())
            .and_then(|t| t.parse().ok())
            .unwrap_or_else(|| panic!("no number in {s:?}"))
    };
    let packets_line = field("packets").expect("summary has a packets line");
    let malformed = packets_line
        .split("malformed ")
        .nth(1)
        .map(first_number)
        .unwrap();
    Summary {
        packets: first_number(packets_line),
        would_drop: first_number(field("block").expect("block mode summary line")),
        malformed,
    }
}

#[test]
fn a_real_prometheus_scrapes_the_replay() {
    let Some(prometheus) = prometheus_tool(TEST, "prometheus") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let eve = dir.path().join("eve.json");
    // A datagram sink nobody listens on, so the sink families are exported too.
    let config = dir.path().join("unmask.toml");
    std::fs::write(
        &config,
        format!(
            "[[output.sinks]]\nkind = \"unix_dgram\"\npath = \"{}\"\n",
            dir.path().join("absent.dgram").display()
        ),
    )
    .unwrap();

    // unmask first: it binds port 0 and prints the port it got.
    let mut unmask = Reaped(
        Command::new(env!("CARGO_BIN_EXE_unmask"))
            .args(["replay", "--no-progress", "--mode", "block", "--config"])
            .arg(&config)
            .arg("--eve")
            .arg(&eve)
            .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "300"])
            .arg(&pcap)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = read_until(&mut unmask.0, "for 300 s more");
    let target = lines
        .iter()
        .find_map(|l| l.strip_prefix("unmask: metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .expect("unmask prints where it serves")
        .to_string();
    let summary = parse_summary(&lines);
    let eve_text = std::fs::read_to_string(&eve).unwrap();
    let alerts = eve_text
        .lines()
        .filter(|l| l.contains("\"event_type\":\"alert\""))
        .count() as f64;
    let blocked = eve_text
        .lines()
        .filter(|l| l.contains("\"event_type\":\"alert\"") && l.contains("\"action\":\"blocked\""))
        .count() as f64;
    assert!(
        alerts > 0.0 && blocked > 0.0,
        "the fixture raises blocking findings"
    );

    let prom_port = free_port();
    let prom_addr: SocketAddr = format!("127.0.0.1:{prom_port}").parse().unwrap();
    let config = dir.path().join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: unmask\n    static_configs:\n      - targets: [\"{target}\"]\n"
        ),
    )
    .unwrap();
    let data = dir.path().join("data");
    let prom_log = std::fs::File::create(dir.path().join("prometheus.log")).unwrap();
    let prom = Reaped(
        Command::new(&prometheus)
            .arg(format!("--config.file={}", config.display()))
            .arg(format!("--storage.tsdb.path={}", data.display()))
            .arg(format!("--web.listen-address={prom_addr}"))
            .arg("--log.level=warn")
            .stdout(Stdio::null())
            .stderr(prom_log)
            .spawn()
            .unwrap(),
    );
    let log = || std::fs::read_to_string(dir.path().join("prometheus.log")).unwrap_or_default();

    // Prometheus is up, and has scraped unmask successfully.
    wait_for("Prometheus to answer", Duration::from_secs(60), || {
        http_get(prom_addr, "/-/ready").ok().filter(|r| r.0 == 200)
    });
    let up = wait_for(
        "the first scrape of unmask",
        Duration::from_secs(60),
        || scalar(prom_addr, "up{job=\"unmask\"}"),
    );
    assert_eq!(up, 1.0, "scrape failed; Prometheus log:\n{}", log());

    let sum = |q: &str| {
        scalar(prom_addr, q).unwrap_or_else(|| panic!("no value for {q}; log:\n{}", log()))
    };
    assert_eq!(
        sum("sum(unmask_engine_received_packets_total)"),
        summary.packets
    );
    assert_eq!(
        sum("sum(unmask_engine_received_packets_total)"),
        unmask::fixtures::standard_capture().len() as f64 + EXTRA_MALFORMED as f64
    );
    assert_eq!(
        sum("sum(unmask_engine_dropped_packets_total{reason=\"verdict\"})"),
        summary.would_drop
    );
    assert_eq!(
        sum("sum(unmask_wire_malformed_packets_total)"),
        summary.malformed
    );
    // Findings below their alert floor are counted as action="recorded", with no alert.
    assert_eq!(
        sum("sum(unmask_detect_findings_total{action!=\"recorded\"})"),
        alerts
    );
    assert_eq!(
        sum("sum(unmask_detect_findings_total{action=\"blocked\"})"),
        blocked
    );
    assert_eq!(
        sum("unmask_eve_records_written_total{type=\"alert\"}"),
        alerts
    );
    assert_eq!(
        sum("count(unmask_build_info{mode=\"replay\",verdict=\"block\"})"),
        1.0
    );
    // Histograms arrive as histograms: a quantile can be computed from the buckets.
    let p99 =
        sum("histogram_quantile(0.99, sum by (le) (unmask_worker_batch_latency_seconds_bucket))");
    assert!(p99 > 0.0 && p99 <= 1.0, "{p99}");

    // Every family unmask exports in replay exists as a series in Prometheus.
    let names: BTreeSet<String> =
        query(prom_addr, "count by (__name__) ({__name__=~\"unmask_.+\"})")
            .unwrap()
            .iter()
            .filter_map(|r| r["metric"]["__name__"].as_str().map(String::from))
            .collect();
    for spec in SPECS.iter().filter(|s| !s.live_only) {
        let name = match spec.kind {
            Kind::Histogram => format!("{}_bucket", spec.name),
            _ => spec.name.to_string(),
        };
        assert!(
            names.contains(&name),
            "{name} missing in Prometheus: {names:?}"
        );
    }
    drop(prom);
    drop(unmask);
}
