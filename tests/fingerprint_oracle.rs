//! JA3 and JA3S against tshark, JA4 and JA4S against ja4plus, for every TLS-over-TCP handshake unmask
//! logs in the shared captures. A mismatch fails, naming the capture, the flow and both values.
//! Handshakes the oracles saw that unmask does not log (TLS inside OpenVPN framing, which
//! tshark decodes) are counted and listed, not failed: unmask inspects raw TCP payload.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use unmask::config::Config;

/// (capture, client "ip:port", server "ip:port") → value.
type Table = BTreeMap<(String, String, String), String>;

fn endpoint(ip: &str, port: &str) -> String {
    if ip.contains(':') {
        format!("[{ip}]:{port}")
    } else {
        format!("{ip}:{port}")
    }
}

/// tshark joins repeated fields with commas (tunnels give outer,inner): the last is the flow.
fn last(field: &str) -> &str {
    field.rsplit(',').next().unwrap_or(field)
}

/// JA3 (client rows) and JA3S (server rows) from tshark, first handshake of each flow.
fn tshark_table(path: &Path) -> (Table, Table) {
    let (mut ja3, mut ja3s) = (Table::new(), Table::new());
    let Ok(text) = std::fs::read_to_string(path) else {
        return (ja3, ja3s);
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 16 {
            continue;
        }
        let src_ip = if f[3].is_empty() {
            last(f[2])
        } else {
            last(f[3])
        };
        let dst_ip = if f[6].is_empty() {
            last(f[5])
        } else {
            last(f[6])
        };
        let src = endpoint(src_ip, last(f[4]));
        let dst = endpoint(dst_ip, last(f[7]));
        let types: Vec<&str> = f[8].split(',').collect();
        if types.contains(&"1") && !f[13].is_empty() {
            ja3.entry((f[0].to_string(), src.clone(), dst.clone()))
                .or_insert_with(|| last(f[13]).to_string());
        }
        if types.contains(&"2") && !f[15].is_empty() {
            ja3s.entry((f[0].to_string(), dst, src))
                .or_insert_with(|| last(f[15]).to_string());
        }
    }
    (ja3, ja3s)
}

/// ja4plus's JA4 (sent by the client) and JA4S (sent by the server) rows, keyed by (capture,
/// client, server).
fn ja4plus_tables(path: &Path) -> (Table, Table) {
    let (mut ja4, mut ja4s) = (Table::new(), Table::new());
    let Ok(text) = std::fs::read_to_string(path) else {
        return (ja4, ja4s);
    };
    for line in text.lines().skip(1) {
        let f: Vec<&str> = line.split('\t').collect();
        if f.len() < 7 {
            continue;
        }
        let (src, dst) = (endpoint(f[3], f[4]), endpoint(f[5], f[6]));
        match f[1] {
            "ja4" => ja4.entry((f[0].to_string(), src, dst)),
            "ja4s" => ja4s.entry((f[0].to_string(), dst, src)),
            _ => continue,
        }
        .or_insert_with(|| f[2].to_string());
    }
    (ja4, ja4s)
}

#[test]
fn fingerprints_equal_tshark_and_ja4plus() {
    let Some(dir) = common::shared_pcaps("fingerprint_oracle") else {
        return;
    };
    let mut ours: [Table; 4] = Default::default();
    let mut want: [Table; 4] = Default::default();
    for set in ["ndpi", "suricata-verify"] {
        let oracle = dir.join(set).join("oracle");
        let (ja3, ja3s) = tshark_table(&oracle.join("ja3_tshark.tsv"));
        want[0].extend(ja3);
        want[1].extend(ja3s);
        let (ja4, ja4s) = ja4plus_tables(&oracle.join("ja4_ja4plus.tsv"));
        want[2].extend(ja4);
        want[3].extend(ja4s);
        let mut caps = Vec::new();
        common::captures(&dir.join(set), &mut caps);
        for cap in caps {
            let name = cap.file_name().unwrap().to_string_lossy().to_string();
            let (records, _) = common::replay_capture(&cap, Config::default());
            for r in records.iter().filter(|r| r["event_type"] == "tls") {
                let client = endpoint(r["src_ip"].as_str().unwrap(), &r["src_port"].to_string());
                let server = endpoint(r["dest_ip"].as_str().unwrap(), &r["dest_port"].to_string());
                let key = (name.clone(), client, server);
                let tls = &r["tls"];
                let ja4s = &r["unmask"]["ja4s"];
                for (i, v) in [&tls["ja3"]["hash"], &tls["ja3s"]["hash"], &tls["ja4"], ja4s]
                    .into_iter()
                    .enumerate()
                {
                    if let Some(v) = v.as_str() {
                        ours[i].insert(key.clone(), v.to_string());
                    }
                }
            }
        }
    }
    let names = [
        "JA3 (tshark)",
        "JA3S (tshark)",
        "JA4 (ja4plus)",
        "JA4S (ja4plus)",
    ];
    let mut mismatches = Vec::new();
    for i in 0..names.len() {
        let (mut matched, mut unseen) = (0, Vec::new());
        for (key, expected) in &want[i] {
            match ours[i].get(key) {
                Some(got) if got == expected => matched += 1,
                Some(got) => mismatches.push(format!(
                    "{} {} {} -> {}: unmask {got}, oracle {expected}",
                    names[i], key.0, key.1, key.2
                )),
                None => unseen.push(format!("{} {} -> {}", key.0, key.1, key.2)),
            }
        }
        eprintln!(
            "{}: {matched} equal, {} oracle handshakes not logged by unmask: {unseen:?}",
            names[i],
            unseen.len()
        );
        assert!(matched > 0, "{}: nothing compared", names[i]);
    }
    assert!(mismatches.is_empty(), "{}", mismatches.join("\n"));
}
