//! The per-capture expectation table (tests/expectations.toml) against what unmask raises on
//! every shared capture: exactly the listed finding kinds, nothing on the rest, and nothing on
//! a capture of a benign MANIFEST category unless the table says why the finding is right.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use unmask::config::Config;

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Table {
    capture: Vec<Entry>,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Entry {
    file: String,
    raise: Vec<String>,
    why: String,
    benign_exception: Option<String>,
}

const BENIGN: &[&str] = &[
    "tls-benign",
    "benign-cleartext",
    "benign-mixed-tls",
    "benign-tls-mail",
];

/// (file, category) rows of the MANIFEST's table.
fn manifest_categories(text: &str) -> BTreeMap<String, String> {
    text.lines()
        .filter_map(|l| {
            let cells: Vec<&str> = l.split('|').map(str::trim).collect();
            let file = cells.get(1)?.strip_prefix('`')?.strip_suffix('`')?;
            Some((file.to_string(), cells.get(4)?.to_string()))
        })
        .collect()
}

#[test]
fn every_capture_raises_exactly_what_the_table_says() {
    let table: Table = toml::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/expectations.toml"
        ))
        .expect("tests/expectations.toml"),
    )
    .expect("the expectation table parses");
    let known: BTreeSet<&str> = unmask::detect::FindingKind::ALL
        .iter()
        .map(|k| k.name())
        .collect();
    for e in &table.capture {
        assert!(!e.why.trim().is_empty(), "{}: no reason given", e.file);
        for k in &e.raise {
            assert!(
                known.contains(k.as_str()),
                "{}: unknown finding kind {k}",
                e.file
            );
        }
    }
    let Some(dir) = common::shared_pcaps("expectations") else {
        return;
    };
    let categories = std::fs::read_to_string(dir.join("ndpi/MANIFEST.md"))
        .map(|t| manifest_categories(&t))
        .unwrap_or_default();
    assert!(
        categories.get("http.pcapng").map(String::as_str) == Some("benign-cleartext"),
        "the MANIFEST's categories were not read"
    );
    let mut caps = Vec::new();
    common::captures(&dir, &mut caps);
    let mut seen = BTreeSet::new();
    let mut failures = Vec::new();
    for cap in caps {
        let name = cap.file_name().unwrap().to_string_lossy().to_string();
        let (records, _) = common::replay_capture(&cap, Config::default());
        let got: BTreeSet<String> = records
            .iter()
            .filter(|r| r["event_type"] == "alert")
            .map(|a| a["unmask"]["finding"].as_str().unwrap_or("").to_string())
            .collect();
        let entry = table.capture.iter().find(|e| e.file == name);
        let want: BTreeSet<String> = entry
            .map(|e| e.raise.iter().cloned().collect())
            .unwrap_or_default();
        if got != want {
            failures.push(format!(
                "{name}: raised {got:?}, the table says {want:?} ({})",
                entry
                    .map(|e| e.why.as_str())
                    .unwrap_or("not listed: nothing")
            ));
        }
        let benign = categories
            .get(&name)
            .is_some_and(|c| BENIGN.contains(&c.as_str()));
        if benign && !got.is_empty() && entry.and_then(|e| e.benign_exception.as_ref()).is_none() {
            failures.push(format!(
                "{name}: benign capture raised {got:?} without a recorded reason"
            ));
        }
        seen.insert(name);
    }
    for e in &table.capture {
        if !seen.contains(&e.file) {
            failures.push(format!("{}: listed but not in {}", e.file, dir.display()));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
