//! Behaviour checks against real proxies: a reduced run of the proxy lab (scripts/proxylab.sh:
//! Debian's shadowsocks-libev, v2ray, trojan, obfs4proxy, stunnel4 + tinyproxy and nginx behind
//! a 30 ms user-space delay line), then `unmask replay` of every capture with the default
//! config. The full lab (10 connections, every scenario) runs from the script.
//!
//! Needs root and `bash scripts/deps.sh proxylab` (the test command installs both); prints
//! "skipped" and passes without them.

mod common;

use common::lab::{have, root_with, Command};
use serde_json::Value;

const PROXYLAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/proxylab.sh");
const UNMASK: &str = env!("CARGO_BIN_EXE_unmask");

/// One scenario per proxy family the behaviour checks claim, and the benign traffic that
/// crosses the same link.
const SCENARIOS: &[&str] = &[
    "ss-aead",
    "vmess-tcp",
    "obfs4",
    "ss-obfs-http",
    "trojan",
    "vless-tls",
    "vmess-tls",
    "https-connect",
    "vmess-ws",
    "https-direct",
    "h2-direct",
    "wss-direct",
    "git-https",
    "ssh",
];

/// One lab at a time: two labs and their proxies on two cores starve the delay line.
static LAB: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Where a run's captures go: kept under the target directory after the test, so a failure
/// can be looked at (`unmask replay` of the pcap named in the message).
fn captures_dir(client: &str) -> std::path::PathBuf {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("proxy-lab-{client}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("captures dir");
    dir
}

fn can_run() -> bool {
    root_with(
        "proxy_lab",
        &[
            "ss-server",
            "v2ray",
            "trojan",
            "obfs4proxy",
            "stunnel4",
            "tinyproxy",
            "nginx",
            "tcpdump",
            "ndpiReader",
        ],
        "run `bash scripts/deps.sh proxylab` as root",
    )
}

#[test]
fn proxies_are_unmasked_and_benign_traffic_is_not() {
    if !can_run() {
        return;
    }
    let _turn = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let out = captures_dir("curl");
    let dir = out.to_str().expect("utf-8 path");
    let prefix = format!("pt{}", std::process::id() % 100_000);
    let run = Command::new("bash")
        .args([PROXYLAB, "run", "--quick", "--out", dir, "--only"])
        .arg(SCENARIOS.join(","))
        .env("PROXYLAB_PREFIX", &prefix)
        .status()
        .expect("proxylab.sh runs");
    assert!(run.success(), "proxylab.sh run failed: {run}");
    let cmp = Command::new("bash")
        .args([PROXYLAB, "compare", dir, "--unmask", UNMASK])
        .status()
        .expect("proxylab.sh compare runs");
    assert!(cmp.success(), "proxylab.sh compare failed: {cmp}");
    let text = std::fs::read_to_string(out.join("compare.json")).expect("compare.json");
    let report: Value = serde_json::from_str(&text).expect("compare.json parses");
    let rows = report["rows"].as_array().expect("rows");

    let mut seen = Vec::new();
    let (mut tunnel_flows, mut tunnel_alerted) = (0u64, 0u64);
    let (mut opaque_flows, mut opaque_alerted) = (0u64, 0u64);
    for row in rows {
        let name = row["scenario"].as_str().unwrap_or("?");
        let tls = row["inner_tls"].as_str().unwrap_or("-");
        let class = row["class"].as_str().unwrap_or("?");
        let flows = row["flows"].as_u64().unwrap_or(0);
        let alerted = row["unmask_alerted"].as_u64().unwrap_or(0);
        let findings = row["unmask_findings"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        let what = format!(
            "{name} (inner TLS {tls}): {alerted}/{flows}, findings {findings:?}, pcap {dir}/{}",
            row["pcap"].as_str().unwrap_or("?")
        );
        eprintln!("proxy_lab: {class:16} {what}");
        assert_eq!(row["capture_status"], "ok", "{what}: the capture failed");
        assert!(flows > 0, "{what}: no flow on the proxy leg");
        match class {
            "fully_encrypted" => {
                // One miss per scenario at most, 95% over the class: a loaded CI machine once
                // lost one obfs4 opening in three; lab runs by hand flagged 130 of 130.
                assert!(alerted + 1 >= flows, "{what}: fully encrypted flows missed");
                opaque_flows += flows;
                opaque_alerted += alerted;
                // simple-obfs dresses its random bytes as a WebSocket upgrade: that disguise
                // is what gives it away.
                let kind = if name == "ss-obfs-http" {
                    "websocket_impersonation"
                } else {
                    "fully_encrypted"
                };
                assert!(findings.contains_key(kind), "{what}");
            }
            "tls_in_tls" => {
                // VMess pads its first records by 0-63 random bytes, which can push the inner
                // Finished-and-request burst past the bound: one miss in three is allowed per
                // scenario, 90% over the class.
                assert!(alerted + 1 >= flows, "{what}: TLS-in-TLS flows missed");
                assert!(findings.contains_key("tls_in_tls"), "{what}");
                tunnel_flows += flows;
                tunnel_alerted += alerted;
            }
            "benign" => assert_eq!(alerted, 0, "{what}: benign traffic raised an alert"),
            other => panic!("{what}: unknown class {other}"),
        }
        seen.push(name.to_string());
    }
    assert!(
        opaque_alerted * 100 >= opaque_flows * 95,
        "fully encrypted: {opaque_alerted}/{opaque_flows} flagged, below 95% (captures in {dir})"
    );
    assert!(
        tunnel_alerted * 10 >= tunnel_flows * 9,
        "TLS in TLS: {tunnel_alerted}/{tunnel_flows} flagged, below 90%"
    );
    for s in SCENARIOS {
        assert!(
            seen.iter().any(|n| n == s),
            "scenario {s} missing from {seen:?}"
        );
    }
}

/// Runs the lab with Chromium as the inner client on `scenarios` and returns compare.json.
fn chromium_lab(scenarios: &[&str]) -> Value {
    let out = captures_dir("chromium");
    let dir = out.to_str().expect("utf-8 path");
    let prefix = format!("pc{}", std::process::id() % 100_000);
    let run = Command::new("bash")
        .args([
            PROXYLAB, "run", "--quick", "--client", "chromium", "--out", dir, "--only",
        ])
        .arg(scenarios.join(","))
        .env("PROXYLAB_PREFIX", &prefix)
        .status()
        .expect("proxylab.sh runs");
    assert!(
        run.success(),
        "proxylab.sh run --client chromium failed: {run}"
    );
    let cmp = Command::new("bash")
        .args([PROXYLAB, "compare", dir, "--unmask", UNMASK])
        .status()
        .expect("proxylab.sh compare runs");
    assert!(cmp.success(), "proxylab.sh compare failed: {cmp}");
    let text = std::fs::read_to_string(out.join("compare.json")).expect("compare.json");
    serde_json::from_str(&text).expect("compare.json parses")
}

/// A real browser inside: its traffic through the same link stays silent, and its pages
/// fetched through Trojan and VMess-TLS are unmasked. Chromium's idle pre-connections and
/// merged records make the browser case harder than curl's (docs/behaviour.md has the full
/// numbers), so the bar here is a majority per scenario.
#[test]
fn a_browser_inside_the_tunnel_is_unmasked_and_a_browser_outside_is_not() {
    if !can_run() {
        return;
    }
    if !have("chromium") {
        eprintln!("proxy_lab chromium: skipped (no chromium; run `bash scripts/deps.sh proxylab`)");
        return;
    }
    let _turn = LAB.lock().unwrap_or_else(|e| e.into_inner());
    let report = chromium_lab(&[
        "https-direct",
        "h2-direct",
        "trojan",
        "vmess-tls",
        "ss-aead",
    ]);
    for row in report["rows"].as_array().expect("rows") {
        let name = row["scenario"].as_str().unwrap_or("?");
        let tls = row["inner_tls"].as_str().unwrap_or("-");
        let flows = row["flows"].as_u64().unwrap_or(0);
        let alerted = row["unmask_alerted"].as_u64().unwrap_or(0);
        let what = format!("chromium {name} (TLS {tls}): {alerted}/{flows}");
        eprintln!("proxy_lab: {what}");
        assert_eq!(row["capture_status"], "ok", "{what}: the capture failed");
        assert!(flows > 0, "{what}: no flow");
        match row["class"].as_str().unwrap_or("?") {
            "benign" => assert_eq!(
                alerted, 0,
                "{what}: a browser's own traffic raised an alert"
            ),
            "fully_encrypted" => assert_eq!(alerted, flows, "{what}"),
            _ => assert!(alerted * 2 > flows, "{what}: not even a majority"),
        }
    }
}
