//! Live: a real Prometheus scrapes `unmask run` in the namespace lab while real peers send an
//! impersonation (SSH on 443) through it in block mode; its API must hold the engine's,
//! the XDP program's and the rings' counts as the run report states them.
//!
//! Needs root, the lab tools and Debian's prometheus package; prints "skipped" without them.

mod common;
mod metrics_util;

use common::lab::*;

const TEST: &str = "lab_prometheus_scrapes_unmask_run";
const SSH_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n";
const METRICS: &str = "127.0.0.1:9477";
const PROM: &str = "127.0.0.1:9090";

/// `curl` inside the appliance namespace, where unmask and Prometheus listen on loopback.
fn curl(lab: &Lab, args: &[&str]) -> Option<String> {
    let mut a = vec!["curl", "-s", "--max-time", "5"];
    a.extend_from_slice(args);
    let out = lab.run("appliance", &a);
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).into_owned())
}

/// One number from Prometheus' instant-query API, `None` until the series exists.
fn prom(lab: &Lab, q: &str) -> Option<f64> {
    let body = curl(
        lab,
        &[
            "-G",
            &format!("http://{PROM}/api/v1/query"),
            "--data-urlencode",
            &format!("query={q}"),
        ],
    )?;
    let v: serde_json::Value = serde_json::from_str(&body).ok()?;
    let r = v["data"]["result"].as_array()?;
    let [one] = r.as_slice() else {
        return None;
    };
    one["value"][1].as_str()?.parse().ok()
}

/// Straight from unmask's /metrics: the sum of a family.
fn direct(lab: &Lab, family: &str) -> Option<f64> {
    let text = curl(lab, &[&format!("http://{METRICS}/metrics")])?;
    let s = metrics_util::parse_exposition(&text);
    Some(metrics_util::sum_of(&s, family, &[]))
}

fn wait<T>(what: &str, secs: u64, mut f: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(secs);
    loop {
        if let Some(v) = f() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn lab_prometheus_scrapes_unmask_run() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run(TEST) {
        return;
    }
    let Some(prometheus) = metrics_util::prometheus_tool(TEST, "prometheus") else {
        return;
    };
    let mut lab = Lab::up("mx", 1);
    let cfg = lab.config("block", "inline", 1, "fail-open");
    let mut text = std::fs::read_to_string(&cfg).unwrap();
    text.push_str(&format!(
        "\n[metrics]\nenabled = true\nlisten = \"{METRICS}\"\n"
    ));
    std::fs::write(&cfg, text).unwrap();

    let prom_cfg = lab.path("prometheus.yml");
    std::fs::write(
        &prom_cfg,
        format!(
            "global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n\
             scrape_configs:\n  - job_name: unmask\n    static_configs:\n      - targets: [\"{METRICS}\"]\n"
        ),
    )
    .unwrap();
    let data = lab.path("prom-data");
    let prom_bin = prometheus.to_string_lossy().into_owned();
    // Lab children are killed when the lab drops, also when the test fails.
    lab.spawn(
        "appliance",
        &[
            &prom_bin,
            &format!("--config.file={}", prom_cfg.display()),
            &format!("--storage.tsdb.path={}", data.display()),
            &format!("--web.listen-address={PROM}"),
            "--log.level=warn",
        ],
    );

    let unmask = lab.unmask(&cfg);
    let ready = wait("/readyz", 20, || {
        curl(
            &lab,
            &[
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                &format!("http://{METRICS}/readyz"),
            ],
        )
        .filter(|code| code == "200")
    });
    assert_eq!(ready, "200");

    // An impersonation (SSH on the TLS port) and some benign non-TCP traffic.
    assert!(ping(&lab, "10.77.0.2"), "ping through the appliance");
    let sink = lab.sink("10.77.0.2:443", &["--banner", SSH_BANNER]);
    lab.send(
        "10.77.0.2:443",
        &[
            "--hello",
            SSH_BANNER,
            "--chunks",
            "20",
            "--chunk-size",
            "1000",
            "--pause",
            "0.05",
        ],
    );
    let got = count(&sink);
    assert!(
        got < 20_000,
        "the impersonation was cut ({got} bytes arrived)"
    );

    // Prometheus catches up with what unmask serves, and the numbers stop moving.
    let up = wait("a successful scrape", 60, || {
        prom(&lab, "up{job=\"unmask\"}").filter(|v| *v == 1.0)
    });
    assert_eq!(up, 1.0);
    let mut last = None;
    let packets = wait("stable packet counts in Prometheus", 60, || {
        let now = direct(&lab, "unmask_engine_received_packets_total")?;
        let scraped = prom(&lab, "sum(unmask_engine_received_packets_total)")?;
        let stable = scraped == now && last == Some(now);
        last = Some(now);
        std::thread::sleep(Duration::from_millis(1500));
        stable.then_some(now)
    });
    let q = |q: &str| prom(&lab, q).unwrap_or_else(|| panic!("no value for {q}"));
    let findings = q("sum(unmask_detect_findings_total{action!=\"recorded\"})");
    let blocked_findings =
        q("sum(unmask_detect_findings_total{action=\"blocked\",kind=\"protocol_port_mismatch\"})");
    let ring_rx = q("sum(unmask_ring_rx_packets_total)");
    let to_socket = q("sum(unmask_xdp_packets_total{reason=\"to_socket\"})");
    let non_tcp = q("sum(unmask_xdp_packets_total{reason=\"non_tcp\"})");
    let redirects = q("sum(unmask_xdp_action_packets_total{action=\"redirect\"})");
    let latency_count = q("sum(unmask_worker_batch_latency_seconds_count)");
    assert_eq!(
        q("count(unmask_build_info{mode=\"live\",verdict=\"block\"})"),
        1.0
    );
    assert_eq!(q("min(unmask_process_ready)"), 1.0);

    let records = unmask.records();
    let report = unmask.stop();
    let alerts = records
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .count() as f64;
    assert!(packets > 0.0);
    assert_eq!(packets, u64_at(&report, "/counters/packets") as f64);
    assert_eq!(findings, alerts, "{records:?}");
    assert!(blocked_findings >= 1.0);
    assert_eq!(ring_rx, sum_workers(&report["datapath"], "rx") as f64);
    // The XDP counters keep moving with late retransmissions and neighbour traffic: what
    // Prometheus saw is at most what the program counted by the end, and not nothing.
    let end_to_socket = xdp_reason(&report["datapath"], TO_SOCKET) as f64;
    let end_non_tcp = xdp_reason(&report["datapath"], NON_TCP) as f64;
    assert!(
        to_socket > 0.0 && to_socket <= end_to_socket,
        "{to_socket} vs {end_to_socket}"
    );
    assert!(
        non_tcp > 0.0 && non_tcp <= end_non_tcp,
        "{non_tcp} vs {end_non_tcp}"
    );
    assert!(
        redirects >= to_socket,
        "every frame to a socket is an XDP redirect"
    );
    assert!(latency_count > 0.0);
}
