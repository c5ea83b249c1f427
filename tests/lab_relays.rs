//! Relays that borrow a real identity (issue 21), against a real nginx in namespaces
//! (scripts/relaylab.sh, reduced to 3 connections per scenario): ShadowTLS v3 in front of
//! Shadowsocks-2022 and REALITY with VLESS and Vision, both from `shoes`, beside direct HTTPS
//! to the same site. The site's profile is learned from the direct captures, then every capture
//! is replayed against it (scripts/relaylab_compare.py). A reverse proxy beside the site and a
//! slow origin are benign controls. No delay lines here (the relay check's `relayed` needs them: see
//! docs/relays.md for the full lab with --delay-ms and --site-delay-ms).
//!
//! Needs root, nginx, tcpdump, curl and shoes (`bash scripts/deps.sh relaylab` installs it in
//! /opt/unmask-relays); prints "skipped" and passes without them.

mod common;

use common::lab::*;
use serde_json::Value;

const SCRIPT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/relaylab.sh");
const SHOES: &str = "/opt/unmask-relays/bin/shoes";

#[test]
fn lab_relays_borrowing_a_handshake_are_found_and_the_genuine_site_is_not() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !root_with(
        "lab_relays",
        &[
            "ip",
            "ethtool",
            "curl",
            "openssl",
            "nginx",
            "tcpdump",
            "python3",
            "ndpiReader",
        ],
        "bash scripts/deps.sh && bash scripts/deps.sh proxylab",
    ) {
        return;
    }
    if !Path::new(SHOES).is_file() && !have("shoes") {
        eprintln!("lab_relays: skipped (shoes not installed; bash scripts/deps.sh relaylab)");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("captures");
    // RELAYLAB_PREFIX lets a run choose its names (helpers sharing the machine have their own).
    let prefix = std::env::var("RELAYLAB_PREFIX")
        .unwrap_or_else(|_| format!("ur{}", std::process::id() % 100_000));
    let run = Command::new("bash")
        .arg(SCRIPT)
        .args(["run", "--conns", "3", "--out"])
        .arg(&out)
        .env("RELAYLAB_PREFIX", &prefix)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "relaylab run: {}\n{}",
        String::from_utf8_lossy(&run.stdout),
        String::from_utf8_lossy(&run.stderr)
    );
    // Every scenario's connections worked: a failed relay proves nothing.
    let manifest = std::fs::read_to_string(out.join("manifest.txt")).unwrap();
    for line in manifest.lines() {
        assert!(line.ends_with(" 3/3"), "{manifest}");
    }
    let json = dir.path().join("compare.json");
    let cmp = Command::new("python3")
        .arg(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/scripts/relaylab_compare.py"
        ))
        .arg(&out)
        .arg("--unmask")
        .arg(env!("CARGO_BIN_EXE_unmask"))
        .arg("--json")
        .arg(&json)
        .output()
        .unwrap();
    let table = String::from_utf8_lossy(&cmp.stdout).to_string();
    assert!(
        cmp.status.success(),
        "{table}\n{}",
        String::from_utf8_lossy(&cmp.stderr)
    );
    eprintln!("{table}");
    let rows: Vec<Value> = serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let row = |name: &str| -> (u64, u64, u64, u64) {
        let r = rows
            .iter()
            .find(|r| r["scenario"] == name)
            .unwrap_or_else(|| panic!("no {name} in {table}"));
        (
            r["flows"].as_u64().unwrap(),
            r["tls13_record_shape"].as_u64().unwrap(),
            r["service_profile_mismatch"].as_u64().unwrap(),
            r["relayed_alerts"].as_u64().unwrap(),
        )
    };
    // The genuine site, a benign reverse proxy for it beside its origin, and a slow origin of
    // its own name: nothing alerts, `relayed` included (it is recorded at most, below its
    // alert floor).
    for genuine in ["direct-h1", "direct-h2", "reverse-near", "slow-origin"] {
        let (flows, shape, profile, relayed_alerts) = row(genuine);
        assert!(flows >= 3, "{genuine}: {table}");
        assert_eq!(
            (shape, profile, relayed_alerts),
            (0, 0, 0),
            "{genuine}: {table}"
        );
    }
    let (flows, shape, _, _) = row("shadowtls");
    assert!(
        flows >= 3 && shape == flows,
        "every ShadowTLS flow by record shape: {table}"
    );
    let (flows, _, profile, _) = row("reality");
    assert!(
        flows >= 3 && profile == flows,
        "every REALITY flow by profile: {table}"
    );
}
