//! The real-capture tier: every capture in ../shared/pcaps replays without a panic or an
//! unexplained error, and the protocols unmask identifies for TLS/HTTP/SSH (and the mail,
//! VPN and proxy protocols nDPI names) agree with nDPI's DPI verdicts, except where this file
//! records why they should not.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use unmask::config::Config;

/// An unordered endpoint pair, as "a:p|b:q" with the smaller side first.
fn pair(a: &str, ap: &str, b: &str, bp: &str) -> String {
    let x = format!("{a}:{ap}");
    let y = format!("{b}:{bp}");
    if x <= y {
        format!("{x}|{y}")
    } else {
        format!("{y}|{x}")
    }
}

/// nDPI's protocol name to the app_proto unmask should report, for the protocols compared.
fn expected_app(ndpi: &str) -> Option<&'static str> {
    let master = ndpi.split('/').nth(1)?.split('.').next()?;
    Some(match master {
        "TLS" | "IMAPS" | "SMTPS" | "POP3S" => "tls",
        "HTTP" => "http",
        "SSH" => "ssh",
        "SMTP" => "smtp",
        "POP3" => "pop3",
        "IMAP" => "imap",
        "OpenVPN" => "openvpn",
        "SOCKS" => "socks5",
        _ => return None,
    })
}

/// Flows where unmask must differ from nDPI, and why (capture, endpoint pair, unmask's answer).
const EXPECTED_DIFFERENCES: &[(&str, &str, &str, &str)] = &[
    (
        "rdp_over_tls.pcap",
        "",
        "rdp",
        "RDP negotiates over X.224 first and upgrades to TLS; the stream starts as RDP",
    ),
    (
        "smtp-starttls.pcap",
        "",
        "smtp",
        "STARTTLS: the stream starts as cleartext SMTP; nDPI labels the flow by its later TLS",
    ),
];

#[test]
fn every_shared_capture_replays_cleanly_and_protocols_agree_with_ndpi() {
    let Some(dir) = common::shared_pcaps("real_captures") else {
        return;
    };
    let mut flows_by_capture: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut failures = Vec::new();
    let mut caps = Vec::new();
    common::captures(&dir, &mut caps);
    caps.sort();
    for cap in caps {
        let name = cap.file_name().unwrap().to_string_lossy().to_string();
        let (records, error) = common::replay_capture(&cap, Config::default());
        let damaged = common::DAMAGED.iter().find(|d| d.0 == name);
        match (error, damaged) {
            (None, None) => {}
            (Some(e), Some(d)) if e.contains(d.3) && e.contains(&format!("offset {}", d.2)) => {}
            (e, d) => failures.push(format!(
                "{name}: capture error {e:?}, expected damage {d:?}"
            )),
        }
        let flows = flows_by_capture.entry(name.clone()).or_default();
        for r in records.iter().filter(|r| r["event_type"] == "flow") {
            let key = pair(
                r["src_ip"].as_str().unwrap(),
                &r["src_port"].to_string(),
                r["dest_ip"].as_str().unwrap(),
                &r["dest_port"].to_string(),
            );
            let app = r["app_proto"].as_str().unwrap_or("unknown").to_string();
            flows.insert(key, app);
        }
        eprintln!("{name}: {} records, {} flows", records.len(), flows.len());
    }

    let oracle = dir.join("ndpi/oracle/ndpi_expected_flows.tsv");
    let mut compared = 0;
    let mut used_differences = BTreeSet::new();
    if let Ok(text) = std::fs::read_to_string(&oracle) {
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split('\t').collect();
            // cfg pcap flow l4 src sport dir dst dport proto confidence ...
            if f.len() < 11 || f[0] != "default" || f[3] != "TCP" || !f[10].starts_with("DPI") {
                continue;
            }
            // Tunnelled flows (GTP) are outside what unmask decapsulates.
            if f[9].starts_with("GTP:") {
                continue;
            }
            let Some(want) = expected_app(f[9]) else {
                continue;
            };
            let (pcap, key) = (f[1], pair(f[4], f[5], f[7], f[8]));
            let got = flows_by_capture
                .get(pcap)
                .and_then(|m| m.get(&key))
                .map(String::as_str);
            compared += 1;
            if got == Some(want) {
                continue;
            }
            let excused = EXPECTED_DIFFERENCES.iter().find(|(p, k, app, _)| {
                *p == pcap && (k.is_empty() || *k == key) && Some(*app) == got
            });
            match excused {
                Some(d) => {
                    used_differences.insert(d.0);
                }
                None => failures.push(format!(
                    "{pcap} {key}: nDPI says {} ({}), unmask says {}",
                    f[9],
                    want,
                    got.unwrap_or("no flow")
                )),
            }
        }
    } else {
        eprintln!(
            "real_captures: {} absent: protocol comparison skipped",
            oracle.display()
        );
    }
    for (pcap, _, _, why) in EXPECTED_DIFFERENCES {
        if !used_differences.contains(pcap) {
            failures.push(format!(
                "{pcap}: recorded difference no longer happens ({why}); remove it"
            ));
        }
    }
    eprintln!("compared {compared} flows with nDPI's DPI verdicts");
    assert!(
        failures.is_empty(),
        "{} problems:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
