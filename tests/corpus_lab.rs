//! Precision on real benign software: a reduced run of the benign corpus (scripts/corpus.sh:
//! curl, wget, Python, Go, Node, Java, git, apt, ffmpeg, openssl, OpenSSH, psql, redis-cli,
//! Chromium and Firefox against nginx, apache2, lighttpd, h2o, Python, Node, OpenSSH,
//! PostgreSQL, Redis, Postfix and Dovecot), then `unmask replay --mode block` of every capture
//! with the default config through scripts/corpus/precision.py. Nothing may be blocked and
//! nothing may alert; every scenario must have made its flows, or the run proves nothing.
//! The full corpus (thousands of flows) runs from scripts/bench-precision.sh.
//!
//! Needs root and `bash scripts/deps.sh proxylab` + `bash scripts/deps.sh corpus` (the test
//! command installs them); prints "skipped" and passes without them.

mod common;

use common::lab::{root_with, Command};
use serde_json::Value;

const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/corpus.sh");
const PRECISION: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/corpus/precision.py");
const UNMASK: &str = env!("CARGO_BIN_EXE_unmask");

/// Scenarios the reduced run may lose without failing: none today. A scenario that cannot
/// start (a server that would not come up) is a broken corpus, not a pass.
const MIN_SCENARIOS: usize = 55;

fn can_run() -> bool {
    root_with(
        "corpus_lab",
        &[
            "nginx",
            "apache2",
            "lighttpd",
            "h2o",
            "postfix",
            "dovecot",
            "redis-server",
            "psql",
            "firefox-esr",
            "go",
            "javac",
            "node",
            "ffmpeg",
            "tcpdump",
        ],
        "run `bash scripts/deps.sh proxylab` and `bash scripts/deps.sh corpus` as root",
    )
}

#[test]
fn benign_software_raises_nothing_and_is_never_blocked() {
    if !can_run() {
        return;
    }
    let out = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("corpus-lab");
    let _ = std::fs::remove_dir_all(&out);
    std::fs::create_dir_all(&out).expect("captures dir");
    let dir = out.to_str().expect("utf-8 path");
    let prefix = format!("ct{}", std::process::id() % 100_000);
    let run = Command::new("bash")
        .args([CORPUS, "run", "--quick", "--out", dir])
        .env("CORPUS_PREFIX", &prefix)
        .status()
        .expect("corpus.sh runs");
    assert!(run.success(), "corpus.sh run failed: {run}");

    let manifest: Value = serde_json::from_str(
        &std::fs::read_to_string(out.join("manifest.json")).expect("manifest.json"),
    )
    .expect("manifest parses");
    let scenarios = manifest["scenarios"].as_array().expect("scenarios");
    let mut clients = std::collections::BTreeSet::new();
    let mut bad = Vec::new();
    for s in scenarios {
        let name = s["scenario"].as_str().unwrap_or("?");
        let flows = s["flows"].as_u64().unwrap_or(0);
        eprintln!(
            "corpus_lab: {name:32} {:8} flows {flows}",
            s["status"].as_str().unwrap_or("?")
        );
        if s["status"] != "ok" || flows == 0 {
            bad.push(format!("{name}: {} {:?}", s["status"], s.get("errors")));
        } else {
            clients.insert(s["client"].as_str().unwrap_or("?").to_string());
        }
    }
    assert!(bad.is_empty(), "scenarios that did not run: {bad:#?}");
    assert!(
        scenarios.len() >= MIN_SCENARIOS,
        "{} scenarios, fewer than {MIN_SCENARIOS}",
        scenarios.len()
    );
    assert!(clients.len() >= 15, "client implementations: {clients:?}");

    let report = out.join("precision.json");
    let status = Command::new("python3")
        .args([PRECISION, "--unmask", UNMASK, "--corpus", dir, "--json"])
        .arg(&report)
        .status()
        .expect("precision.py runs");
    let r: Value = serde_json::from_str(&std::fs::read_to_string(&report).expect("precision.json"))
        .expect("precision.json parses");
    let alerts = r["benign_alerts"].as_array().cloned().unwrap_or_default();
    assert!(
        status.success() && alerts.is_empty(),
        "benign corpus raised {} alert(s) (captures in {dir}): {alerts:#?}",
        alerts.len()
    );
    assert!(
        r["benign_flows"].as_u64().unwrap_or(0) >= 200,
        "too few flows to mean anything: {}",
        r["benign_flows"]
    );
}
