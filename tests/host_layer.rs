//! The host layer end to end, through the `unmask` binary: first_seen records only on the first
//! replay into a state directory, one host alert naming the flows that made it, and a store
//! that survives kill -9 in the middle of its writes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;
use unmask::capture::pcapwrite::PcapWriter;
use unmask::capture::Timestamp;
use unmask::fixtures::{self, tls, Conversation, TimedFrame, FIXTURE_EPOCH};

const BIN: &str = env!("CARGO_BIN_EXE_unmask");

fn write_pcap(path: &Path, frames: &[TimedFrame]) {
    let mut w = PcapWriter::create_ethernet(path).unwrap();
    for (ts, f) in frames {
        w.write(*ts, f).unwrap();
    }
    w.finish().unwrap();
}

/// Replays `files` into `state` with `config`; returns the EVE records.
fn replay(config: &Path, state: &Path, files: &[PathBuf], eve: &Path) -> Vec<Value> {
    let _ = std::fs::remove_file(eve);
    let out = Command::new(BIN)
        .arg("replay")
        .arg("--config")
        .arg(config)
        .arg("--state")
        .arg(state)
        .arg("--eve")
        .arg(eve)
        .args(files)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "replay failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::read_to_string(eve)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn of_type<'a>(records: &'a [Value], t: &str) -> Vec<&'a Value> {
    records.iter().filter(|r| r["event_type"] == t).collect()
}

fn host_alerts(records: &[Value]) -> Vec<&Value> {
    records
        .iter()
        .filter(|r| r["event_type"] == "alert" && r["alert"]["signature_id"] == 9_470_038)
        .collect()
}

/// `baseline export` as (type, ip, port, value) -> count.
fn export(state: &Path) -> BTreeMap<(String, String, u64, String), u64> {
    let out = Command::new(BIN)
        .args(["baseline", "export", "--state"])
        .arg(state)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "export failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap();
            (
                (
                    v["type"].as_str().unwrap().to_string(),
                    v["ip"].as_str().unwrap().to_string(),
                    v["port"].as_u64().unwrap_or(0),
                    v["value"].as_str().unwrap().to_string(),
                ),
                v["count"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("unmask.toml");
    std::fs::write(&p, text).unwrap();
    p
}

#[test]
fn a_capture_replayed_twice_gives_first_seen_records_only_the_first_time() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixtures.pcap");
    write_pcap(&pcap, &fixtures::standard_capture());
    let cfg = config(dir.path(), "");
    let state = dir.path().join("state");
    let eve = dir.path().join("eve.json");
    let first = replay(&cfg, &state, std::slice::from_ref(&pcap), &eve);
    let seen: BTreeSet<(String, String)> = of_type(&first, "first_seen")
        .iter()
        .map(|r| {
            let f = &r["unmask"]["first_seen"];
            (
                f["type"].as_str().unwrap().to_string(),
                f["value"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    // The fixture's TLS flows share one client, one fingerprint, one server and certificate.
    let types: BTreeSet<&str> = seen.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(
        types,
        BTreeSet::from(["client_ja4", "client_service", "server_cert", "server_ja3s"]),
        "{seen:?}"
    );
    assert!(seen.contains(&("client_service".into(), "example.com".into())));
    let after_first = export(&state);
    let (profiles, pairs): (Vec<_>, Vec<_>) = after_first
        .keys()
        .partition(|k| k.0.starts_with("service_"));
    assert_eq!(pairs.len(), 4, "{pairs:?}");
    // Alert mode from the start: no service gets a profile from first use (issue 21).
    assert!(profiles.is_empty(), "{profiles:?}");

    let second = replay(&cfg, &state, &[pcap], &eve);
    assert!(of_type(&second, "first_seen").is_empty());
    assert_eq!(of_type(&second, "tls").len(), of_type(&first, "tls").len());
    // Every pair seen again, none new: the counts doubled.
    let after_second = export(&state);
    for (k, n) in &after_first {
        assert_eq!(after_second[k], 2 * n, "{k:?}");
    }
    assert_eq!(after_second.len(), after_first.len());
}

const SHARED: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps/ndpi");

#[test]
fn real_captures_replayed_twice_give_first_seen_records_only_the_first_time() {
    let files: Vec<PathBuf> = [
        "443-chrome.pcap",
        "443-curl.pcap",
        "443-safari.pcap",
        "chrome.pcap",
    ]
    .iter()
    .map(|f| Path::new(SHARED).join(f))
    .filter(|p| p.is_file())
    .collect();
    if files.is_empty() {
        eprintln!("host_layer: skipped: no TLS captures under {SHARED}");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Retention counts back from the newest packet time seen, and these captures were taken
    // months apart: with the default 90 days the older ones would be forgotten (and new again).
    let cfg = config(dir.path(), "[baseline]\nretention_days = 3650\n");
    let state = dir.path().join("state");
    let eve = dir.path().join("eve.json");
    let first = replay(&cfg, &state, &files, &eve);
    let ja4s: BTreeSet<&str> = of_type(&first, "tls")
        .iter()
        .filter_map(|r| r["tls"]["ja4"].as_str())
        .collect();
    let new_ja4: BTreeSet<&str> = of_type(&first, "first_seen")
        .iter()
        .filter(|r| r["unmask"]["first_seen"]["type"] == "client_ja4")
        .map(|r| r["unmask"]["first_seen"]["value"].as_str().unwrap())
        .collect();
    assert!(!ja4s.is_empty(), "the captures have TLS handshakes");
    assert_eq!(new_ja4, ja4s, "every JA4 of the captures is new once");
    let second = replay(&cfg, &state, &files, &eve);
    assert_eq!(of_type(&second, "first_seen").len(), 0);
    assert!(!of_type(&second, "tls").is_empty());
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 77, 0, host], port))
}

fn at(secs: u64) -> Timestamp {
    FIXTURE_EPOCH.add_nanos(secs * Timestamp::NANOS_PER_SEC)
}

/// One client: three benign HTTPS fetches, then (after the learning period) a beacon with a
/// new ClientHello to an odd port, then SSH to port 443.
fn beacon_scenario() -> Vec<TimedFrame> {
    let chain: &[&[u8]] = &[
        fixtures::CERT_WWW_EXAMPLE_COM,
        fixtures::CERT_FIXTURE_ROOT_CA,
    ];
    let mut convs = Vec::new();
    for i in 0..3u16 {
        convs.push(
            Conversation::new(addr(1, 41000 + i), addr(2, 443), at(u64::from(i)))
                .handshake()
                .client(&tls::client_hello(&tls::Hello::default()))
                .server(&tls::server_flight_tls12(0xc02f, Some("h2"), chain))
                .client(&tls::client_finish_tls12())
                .server(&tls::server_finish_tls12())
                .client(&tls::app_data(500))
                .server(&tls::app_data(20_000))
                .close()
                .into_frames(),
        );
    }
    let beacon = tls::Hello {
        sni: Some("cdn.beacon-example.net"),
        alpn: &[],
        ciphers: &[0xc02f, 0xc030, 0x009c],
        tls13: false,
        grease: false,
        extra: &[],
    };
    convs.push(
        Conversation::new(addr(1, 42000), addr(9, 8443), at(20))
            .handshake()
            .client(&tls::client_hello(&beacon))
            .server(&tls::server_flight_tls12(0xc02f, None, chain))
            .client(&tls::client_finish_tls12())
            .server(&tls::server_finish_tls12())
            .client(&tls::app_data(300))
            .server(&tls::app_data(300))
            .close()
            .into_frames(),
    );
    convs.push(
        Conversation::new(addr(1, 42001), addr(9, 443), at(40))
            .handshake()
            .server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .client(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .client(&fixtures::ssh_kexinit())
            .server(&fixtures::ssh_kexinit())
            .close()
            .into_frames(),
    );
    convs.into_iter().flatten().collect()
}

#[test]
fn a_beacon_after_benign_fetches_gives_first_seen_records_and_one_host_alert() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("beacon.pcap");
    write_pcap(&pcap, &beacon_scenario());
    // The benign fetches fall in the learning period; the beacon 20 s in does not.
    let cfg = config(
        dir.path(),
        "[correlation]\nenabled = true\ntime_window_secs = 60\n[baseline]\nlearning_secs = 10\n",
    );
    let state = dir.path().join("state");
    let eve = dir.path().join("eve.json");
    let records = replay(&cfg, &state, std::slice::from_ref(&pcap), &eve);

    let flow_of = |port: u64| -> u64 {
        of_type(&records, "flow")
            .iter()
            .find(|r| r["src_port"] == port)
            .unwrap_or_else(|| panic!("no flow record from port {port}"))["flow_id"]
            .as_u64()
            .unwrap()
    };
    let (beacon, ssh) = (flow_of(42000), flow_of(42001));
    let first_seen = of_type(&records, "first_seen");
    let new: BTreeSet<(&str, &str)> = first_seen
        .iter()
        .map(|r| {
            assert_eq!(
                r["flow_id"], beacon,
                "only the beacon shows anything new: {r}"
            );
            let f = &r["unmask"]["first_seen"];
            (f["type"].as_str().unwrap(), f["host"].as_str().unwrap())
        })
        .collect();
    assert!(new.contains(&("client_ja4", "10.77.0.1")), "{new:?}");
    assert!(new.contains(&("client_service", "10.77.0.1")), "{new:?}");
    assert!(new.contains(&("server_ja3s", "10.77.0.9:8443")), "{new:?}");

    let alerts = host_alerts(&records);
    assert_eq!(alerts.len(), 1, "{alerts:#?}");
    let a = alerts[0];
    assert_eq!(a["src_ip"], "10.77.0.1");
    let host = &a["unmask"]["host"];
    assert_eq!(host["role"], "client");
    assert_eq!(host["window_secs"], 60);
    assert_eq!(host["flow_ids"], serde_json::json!([beacon, ssh]));
    let findings: BTreeSet<&str> = host["findings"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["finding"].as_str().unwrap())
        .collect();
    assert!(findings.contains("client_ja4"), "{findings:?}");
    assert!(findings.contains("protocol_port_mismatch"), "{findings:?}");
    assert!(host["score"].as_u64().unwrap() >= host["threshold"].as_u64().unwrap());
    // Written after the records that made it.
    let pos = |pred: &dyn Fn(&Value) -> bool| records.iter().position(pred).unwrap();
    assert!(pos(&|r| r == a) > pos(&|r| r["event_type"] == "first_seen"));

    // Second run of the same scenario: nothing is new any more.
    let again = replay(&cfg, &state, &[pcap], &eve);
    assert!(of_type(&again, "first_seen").is_empty());
}

/// Many clients, each with its own name: every replay pass changes many pairs.
fn many_clients(n: u16) -> Vec<TimedFrame> {
    let chain: &[&[u8]] = &[
        fixtures::CERT_WWW_EXAMPLE_COM,
        fixtures::CERT_FIXTURE_ROOT_CA,
    ];
    let names: Vec<String> = (0..n).map(|i| format!("host{i}.site{i}.example")).collect();
    let mut frames = Vec::new();
    for i in 0..n {
        let client = SocketAddr::from(([10, 80, (i >> 8) as u8, i as u8], 40000 + i % 20000));
        let hello = tls::Hello {
            sni: Some(&names[i as usize]),
            ..tls::Hello::default()
        };
        frames.extend(
            Conversation::new(client, addr(2, 443), at(u64::from(i) / 10))
                .handshake()
                .client(&tls::client_hello(&hello))
                .server(&tls::server_flight_tls12(0xc02f, Some("h2"), chain))
                .close()
                .into_frames(),
        );
    }
    frames
}

#[test]
fn a_store_killed_mid_write_reopens_with_no_more_than_was_committed() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("many.pcap");
    write_pcap(&pcap, &many_clients(3000));
    let cfg = config(dir.path(), "[baseline]\ncommit_interval_ms = 10\n");
    // The same capture many times over: the same pairs, their counts growing every pass.
    let passes = 40;
    let files: Vec<PathBuf> = (0..passes).map(|_| pcap.clone()).collect();

    // The whole run: what an uninterrupted replay commits.
    let full_state = dir.path().join("full");
    let started = Instant::now();
    replay(&cfg, &full_state, &files, &dir.path().join("full.json"));
    let full_took = started.elapsed();
    let full = export(&full_state);
    assert_eq!(
        full.len(),
        2 * 3000 + 2,
        "ja4 and service of each client, ja3s and certificate of the one server"
    );

    let state = dir.path().join("killed");
    let mut killed_mid_run = 0;
    let mut before: BTreeMap<(String, String, u64, String), u64> = BTreeMap::new();
    for round in 0..3u32 {
        let mut child = Command::new(BIN)
            .arg("replay")
            .arg("--config")
            .arg(&cfg)
            .arg("--state")
            .arg(&state)
            .arg("--eve")
            .arg(dir.path().join("killed.json"))
            .args(&files)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        // Somewhere in the run, at a different point each round.
        std::thread::sleep(full_took.mul_f64(0.2 + 0.2 * f64::from(round)));
        // SIGKILL: nothing of unmask's runs after it.
        let killed = child.kill().is_ok();
        let status = child.wait().unwrap();
        if killed && status.code().is_none() {
            killed_mid_run += 1;
        }
        // The store opens, exports, and holds no pair or count the full run did not reach
        // per round: round r has replayed at most `passes` more passes on top of the last.
        let now = export(&state);
        for (k, n) in &now {
            let whole = full
                .get(k)
                .unwrap_or_else(|| panic!("pair {k:?} never in the full run"));
            assert!(
                *n <= whole * u64::from(round + 1),
                "{k:?}: {n} after round {round}, full run {whole}"
            );
        }
        // What the earlier rounds committed is all still there.
        for (k, n) in &before {
            assert!(now.get(k).is_some_and(|m| m >= n), "{k:?} lost: had {n}");
        }
        before = now;
    }
    assert!(
        killed_mid_run > 0,
        "no replay was still running when killed"
    );
    // And the store is still usable for a complete run.
    let again = replay(&cfg, &state, &[pcap], &dir.path().join("again.json"));
    assert!(of_type(&again, "first_seen").len() < 2 * 3000 + 2);
    assert!(Duration::from_secs(0) < full_took);
}

#[test]
fn an_exported_baseline_imported_elsewhere_knows_every_pair() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixtures.pcap");
    write_pcap(&pcap, &fixtures::standard_capture());
    let cfg = config(dir.path(), "");
    let eve = dir.path().join("eve.json");
    let learned = dir.path().join("learned");
    assert!(!of_type(
        &replay(&cfg, &learned, std::slice::from_ref(&pcap), &eve),
        "first_seen"
    )
    .is_empty());
    let file = dir.path().join("baseline.jsonl");
    let out = Command::new(BIN)
        .args(["baseline", "export", "--state"])
        .arg(&learned)
        .arg("--out")
        .arg(&file)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let fresh = dir.path().join("fresh");
    let import = |state: &Path, file: &Path| {
        Command::new(BIN)
            .args(["baseline", "import", "--state"])
            .arg(state)
            .arg(file)
            .output()
            .unwrap()
    };
    let out = import(&fresh, &file);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(export(&fresh), export(&learned));
    // The imported store knows every pair: nothing is new to it.
    assert!(of_type(&replay(&cfg, &fresh, &[pcap], &eve), "first_seen").is_empty());

    // A bad line names the file, the line and the field.
    let bad = dir.path().join("bad.jsonl");
    std::fs::write(&bad, "{\"type\":\"client_ja4\",\"ip\":\"10.0.0.300\"}\n").unwrap();
    let out = import(&fresh, &bad);
    assert!(!out.status.success());
    let msg = String::from_utf8_lossy(&out.stderr);
    assert!(msg.contains("bad.jsonl:1") && msg.contains("`ip`"), "{msg}");

    let out = Command::new(BIN)
        .args(["baseline", "stats", "--state"])
        .arg(&fresh)
        .output()
        .unwrap();
    let stats: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(stats["pairs"], export(&learned).len());
    assert_eq!(stats["by_type"]["client_ja4"], 1);
}
