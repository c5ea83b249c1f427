//! Community ID against the reference implementation: every capture in ../shared/pcaps is
//! replayed and the `community_id` of every record is compared with what pycommunityid (the
//! spec authors' implementation, installed by scripts/deps.sh) computes from the record's own
//! 5-tuple. Run twice: with the defaults (seed 0, monitor) and with another seed in block mode,
//! so `drop` records and the seed's byte order are compared too.

mod common;

use std::io::Write;
use std::path::Path;
use std::process::Command;

use serde_json::Value;
use unmask::config::Config;
use unmask::verdict::Mode;

const HELPER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/community_id_reference.py"
);

/// Below these the comparison says little: the shared captures hold about 260 TCP flows, 65 of
/// them over IPv6.
const MIN_FLOWS: u64 = 100;
const MIN_IPV6_FLOWS: u64 = 20;

/// The helper's summary of one EVE file.
fn reference(eve: &Path, seed: u16) -> Value {
    let out = Command::new("python3")
        .arg(HELPER)
        .arg("--seed")
        .arg(seed.to_string())
        .arg(eve)
        .output()
        .expect("python3 runs");
    assert!(
        out.status.success(),
        "{HELPER} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("the helper prints one JSON object")
}

fn count(summary: &Value, event_type: &str, field: &str) -> u64 {
    summary["by_type"][event_type][field].as_u64().unwrap_or(0)
}

#[test]
fn community_id_matches_the_reference_implementation_on_every_shared_capture() {
    let Some(dir) = common::shared_pcaps("community_id") else {
        return;
    };
    // The oracle is a test dependency like any other: missing, it is a failure, not a skip.
    let import = Command::new("python3")
        .args(["-c", "import communityid"])
        .output()
        .expect("python3 runs");
    assert!(
        import.status.success(),
        "the reference implementation is missing (run scripts/deps.sh): {}",
        String::from_utf8_lossy(&import.stderr)
    );
    let mut caps = Vec::new();
    common::captures(&dir, &mut caps);
    caps.sort();
    let mut runs = Vec::new();
    for (seed, mode) in [(None, Mode::Monitor), (Some(40_503u16), Mode::Block)] {
        let mut config = Config::default();
        config.verdict.mode = mode;
        if let Some(s) = seed {
            config.output.community_id_seed = s;
        }
        let seed = config.output.community_id_seed;
        let mut eve = tempfile::NamedTempFile::new().unwrap();
        for cap in &caps {
            // Damaged captures end with an error; what came before it is compared all the same.
            let (records, _) = common::replay_capture(cap, config.clone());
            for r in records {
                writeln!(eve, "{r}").unwrap();
            }
        }
        eve.flush().unwrap();
        let summary = reference(eve.path(), seed);
        eprintln!("community_id: {} captures, {summary}", caps.len());
        assert_eq!(summary["mismatch"], 0, "IDs differ: {summary}");
        assert_eq!(summary["missing"], 0, "records without an ID: {summary}");
        assert_eq!(summary["unsupported"], 0, "non-TCP records: {summary}");
        let flows = count(&summary, "flow", "compared");
        let v6 = count(&summary, "flow", "ipv6");
        assert!(
            flows >= MIN_FLOWS && v6 >= MIN_IPV6_FLOWS,
            "too few flow records compared to mean anything ({flows}, {v6} IPv6): {summary}"
        );
        runs.push((seed, mode, summary));
    }
    // The block-mode run must have compared drop records, or it added nothing but the seed.
    let (_, _, block) = &runs[1];
    assert!(
        count(block, "drop", "compared") > 0,
        "no drop records: {block}"
    );
    for (seed, mode, s) in &runs {
        eprintln!(
            "community_id: seed {seed} ({}): {} flow records equal to the reference ({} IPv6), \
             {} records in all",
            mode.name(),
            count(s, "flow", "compared"),
            count(s, "flow", "ipv6"),
            s["by_type"]
                .as_object()
                .map(|m| m
                    .values()
                    .map(|c| c["compared"].as_u64().unwrap_or(0))
                    .sum())
                .unwrap_or(0u64),
        );
    }
}
