//! The host layer live: `unmask run` in the namespace lab with correlation on and a baseline
//! store. A client fetches a few pages over HTTPS with curl while the baseline learns, then
//! starts a beacon with another TLS client (openssl s_client: a fingerprint it never showed)
//! to a service it never used on an odd port, and speaks SSH to port 443. The new pairs give
//! `first_seen` records, and the beacon and the impersonation together give one host alert that
//! names both flows. Run again on the same store, the same scenario gives no `first_seen`.
//!
//! Needs root and the tools from scripts/deps.sh; prints "skipped" and passes without them.

mod common;

use common::lab::*;
use serde_json::Value;

const SSH_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n";

struct Scene {
    lab: Lab,
    ca: String,
    beacon_ca: String,
    config: PathBuf,
}

fn scene(tag: &str, mode: &str, extra: &str) -> Scene {
    let mut lab = Lab::up(tag, 1);
    let out = lab.run(
        "server",
        &["ip", "addr", "add", "10.77.0.3/24", "dev", &lab.iface('s')],
    );
    assert!(out.status.success(), "second server address");
    let www = lab.path("www");
    std::fs::create_dir_all(&www).expect("www dir");
    std::fs::write(www.join("page"), "a benign page\n".repeat(200)).expect("page");
    let (ca, cert, key) = make_certs(lab.dir.path(), "www.lab.example");
    let beacon_dir = lab.path("beacon-pki");
    std::fs::create_dir_all(&beacon_dir).expect("pki dir");
    let (beacon_ca, bcert, bkey) = make_certs(&beacon_dir, "cdn-sync.net");
    for (port, cert, key) in [(443, &cert, &key), (8443, &bcert, &bkey)] {
        let cmd = format!(
            "cd {} && exec openssl s_server -quiet -accept 10.77.0.2:{port} -cert {} -key {} -WWW",
            www.display(),
            cert.display(),
            key.display()
        );
        lab.spawn("server", &["sh", "-c", &cmd]);
    }
    std::thread::sleep(Duration::from_millis(500));
    let state = lab.path("state");
    let base = lab.config(mode, "inline", 1, "fail-open");
    let mut text = std::fs::read_to_string(&base).expect("config");
    text.push_str(&format!(
        "\n[correlation]\nenabled = true\ntime_window_secs = 120\n{extra}\n[baseline]\nstate_dir = \"{}\"\nlearning_secs = 2\ncommit_interval_ms = 100\n",
        state.display()
    ));
    let config = lab.path("hosts.toml");
    std::fs::write(&config, text).expect("write config");
    Scene {
        lab,
        ca: ca.to_string_lossy().into_owned(),
        beacon_ca: beacon_ca.to_string_lossy().into_owned(),
        config,
    }
}

/// A benign HTTPS fetch from the client; true when it got the page.
fn fetch(s: &Scene, tag: &str) -> bool {
    let out = s.lab.path(&format!("fetch-{tag}"));
    s.lab
        .curl(
            "https://www.lab.example/page",
            &out,
            &[
                "--cacert",
                &s.ca,
                "--resolve",
                "www.lab.example:443:10.77.0.2",
                "--max-time",
                "5",
            ],
        )
        .status
        .success()
}

/// One run of the scenario through a fresh `unmask run` on the scene's store; `after` runs
/// once the scenario is over, with the appliance still up. Returns the run's records.
fn run_scenario(s: &mut Scene, after: impl FnOnce(&Scene)) -> Vec<Value> {
    let config = s.config.clone();
    let unmask = s.lab.unmask(&config);
    for i in 0..3 {
        assert!(fetch(s, &format!("page-{i}")), "benign fetch {i}");
    }
    // Past the learning period (packet time, from the store's first pair).
    std::thread::sleep(Duration::from_secs(3));
    let beacon = s.lab.cmd(
        "client",
        &[
            "sh",
            "-c",
            &format!(
                "printf 'GET /page HTTP/1.0\\r\\n\\r\\n' | openssl s_client -quiet -connect 10.77.0.2:8443 -servername cdn-sync.net -CAfile {}",
                s.beacon_ca
            ),
        ],
    )
    .output()
    .expect("beacon");
    assert!(
        String::from_utf8_lossy(&beacon.stdout).contains("a benign page"),
        "the beacon got its answer: {}",
        String::from_utf8_lossy(&beacon.stderr)
    );
    let ssh = s.lab.sink("10.77.0.3:443", &["--banner", SSH_BANNER]);
    s.lab.send(
        "10.77.0.3:443",
        &[
            "--hello",
            SSH_BANNER,
            "--chunks",
            "3",
            "--chunk-size",
            "100",
        ],
    );
    let _ = count(&ssh);
    std::thread::sleep(Duration::from_millis(500));
    after(s);
    let _report = unmask.stop();
    eve_records(&s.lab.path("eve.json"))
}

fn flow_id_to(records: &[Value], ip: &str, port: u64) -> Option<u64> {
    records
        .iter()
        .find(|r| r["event_type"] == "flow" && r["dest_ip"] == ip && r["dest_port"] == port)
        .and_then(|r| r["flow_id"].as_u64())
}

#[test]
fn lab_a_new_beacon_and_an_impersonation_make_one_host_alert_and_first_seen_records_once() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_hosts") || !have("openssl") {
        return;
    }
    let mut s = scene("hs", "monitor", "");
    let first = run_scenario(&mut s, |_| {});
    let beacon = flow_id_to(&first, "10.77.0.2", 8443).expect("beacon flow record");
    let ssh = flow_id_to(&first, "10.77.0.3", 443).expect("ssh flow record");
    let seen: Vec<&Value> = first
        .iter()
        .filter(|r| r["event_type"] == "first_seen")
        .collect();
    let types: Vec<&str> = seen
        .iter()
        .filter(|r| r["flow_id"] == beacon)
        .filter_map(|r| r["unmask"]["first_seen"]["type"].as_str())
        .collect();
    eprintln!(
        "lab_hosts: first run: {} first_seen records, on the beacon: {types:?}",
        seen.len()
    );
    assert!(
        types.contains(&"client_ja4") && types.contains(&"client_service"),
        "first_seen on the beacon: {seen:#?}"
    );
    // Nothing learned in the learning period is reported.
    let benign_443 = first
        .iter()
        .filter(|r| {
            r["event_type"] == "flow" && r["dest_port"] == 443 && r["dest_ip"] == "10.77.0.2"
        })
        .filter_map(|r| r["flow_id"].as_u64())
        .collect::<Vec<_>>();
    assert!(
        seen.iter()
            .all(|r| !benign_443.contains(&r["flow_id"].as_u64().unwrap_or(0))),
        "a learning-period flow was reported: {seen:#?}"
    );
    let host_alerts: Vec<&Value> = first
        .iter()
        .filter(|r| r["event_type"] == "alert" && r["unmask"]["host"].is_object())
        .collect();
    assert_eq!(host_alerts.len(), 1, "{host_alerts:#?}");
    let h = &host_alerts[0]["unmask"]["host"];
    assert_eq!(h["ip"], "10.77.0.1");
    let ids: Vec<u64> = h["flow_ids"]
        .as_array()
        .expect("flow_ids")
        .iter()
        .filter_map(Value::as_u64)
        .collect();
    assert!(
        ids.contains(&beacon) && ids.contains(&ssh),
        "host alert names {ids:?}, beacon {beacon}, ssh {ssh}"
    );

    // The same scenario on the same store: every pair is known now.
    let second = run_scenario(&mut s, |_| {});
    let again: Vec<&Value> = second
        .iter()
        .filter(|r| r["event_type"] == "first_seen")
        .collect();
    eprintln!("lab_hosts: second run: {} first_seen records", again.len());
    assert!(again.is_empty(), "{again:#?}");
}

#[test]
fn lab_in_block_mode_a_host_alert_cuts_the_hosts_new_flows_for_block_secs() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_hosts_block") || !have("openssl") {
        return;
    }
    let mut s = scene("hb", "block", "block_secs = 60\n");
    let mut after_alert = None;
    let records = run_scenario(&mut s, |s| after_alert = Some(fetch(s, "after")));
    assert_eq!(
        after_alert,
        Some(false),
        "the client's new HTTPS flow after its host alert was cut"
    );
    let host_alerts = records
        .iter()
        .filter(|r| r["event_type"] == "alert" && r["unmask"]["host"].is_object())
        .count();
    assert_eq!(host_alerts, 1);
    let blocked: Vec<&Value> = records
        .iter()
        .filter(|r| r["event_type"] == "alert" && r["unmask"]["finding"] == "host_blocked")
        .collect();
    assert!(!blocked.is_empty(), "no host_blocked alert");
    for r in &blocked {
        assert_eq!(r["alert"]["action"], "blocked", "{r}");
        assert_eq!(r["src_ip"], "10.77.0.1", "{r}");
        assert_eq!(r["unmask"]["evidence"]["host"], "10.77.0.1", "{r}");
    }
}
