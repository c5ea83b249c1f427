//! The TLS, certificate, SNI and fingerprint checks over the project's scripted flows
//! (`unmask::fixtures::tls_check_flows`), through the whole engine: each flow raises exactly
//! the findings of these checks it is built to raise, the benign handshake raises none, and
//! each finding vanishes when its check is switched off.

mod common;

use std::collections::BTreeSet;

use common::{run_engine, Run};
use unmask::config::Config;
use unmask::fixtures::{self, FixtureFlow};
use unmask::verdict::Mode;

/// Finding names these checks own.
const OURS: &[&str] = &[
    "tls_malformed_handshake",
    "tls_answered_by_non_tls",
    "tls_one_sided",
    "tls_fingerprint_denied",
    "tls_fingerprint_not_allowed",
    "cert_issuer_watched",
    "cert_issuer_not_allowed",
    "cert_self_signed",
    "cert_expired",
    "cert_not_yet_valid",
    "cert_validity_too_long",
    "cert_name_mismatch",
    "cert_invalid",
    "tls_fatal_alert_after_certificate",
    "sni_missing",
    "sni_ip_literal",
    "sni_alpn_mismatch",
    "esni_with_cleartext_sni",
    "ech_public_name_mismatch",
    "ech_non_browser_client",
];

fn client_port(f: &FixtureFlow) -> u16 {
    let frame = &f.frames[0].1;
    // Ethernet (14) + IPv4 (20): the SYN's source port.
    u16::from_be_bytes([frame[34], frame[35]])
}

/// Our findings on the flow whose client port is `port`.
fn ours_on(run: &Run, port: u16) -> BTreeSet<String> {
    run.of_type("alert")
        .filter(|a| a["src_port"] == port || a["dest_port"] == port)
        .map(|a| a["unmask"]["finding"].as_str().unwrap_or("").to_string())
        .filter(|n| OURS.contains(&n.as_str()))
        .collect()
}

fn run_flow(config: &Config, flow: &FixtureFlow) -> BTreeSet<String> {
    ours_on(&run_engine(config, flow.frames.clone()), client_port(flow))
}

fn flow(name: &str) -> FixtureFlow {
    fixtures::tls_check_flows()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture flow {name}"))
}

#[test]
fn each_flow_raises_exactly_its_findings() {
    let config = Config::default();
    let mut failures = Vec::new();
    for f in fixtures::tls_check_flows() {
        let got = run_flow(&config, &f);
        let want: BTreeSet<String> = f.expect_findings.iter().map(|s| s.to_string()).collect();
        if got != want {
            failures.push(format!("{}: got {got:?}, want {want:?}", f.name));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn interleaved_flows_give_the_same_findings() {
    let flows = fixtures::tls_check_flows();
    let all = fixtures::interleave(flows.iter().map(|f| f.frames.clone()).collect());
    let run = run_engine(&Config::default(), all);
    for f in &flows {
        let want: BTreeSet<String> = f.expect_findings.iter().map(|s| s.to_string()).collect();
        assert_eq!(ours_on(&run, client_port(f)), want, "{}", f.name);
    }
}

#[test]
fn the_standard_fixture_flows_raise_nothing_of_ours() {
    let run = run_engine(&Config::default(), fixtures::standard_capture());
    for f in fixtures::standard_flows() {
        assert!(
            ours_on(&run, client_port(&f)).is_empty(),
            "{}: {:?}",
            f.name,
            ours_on(&run, client_port(&f))
        );
    }
}

/// Switches one check off.
type Disable = fn(&mut Config);

/// Each check, switched off, takes its findings with it (and only its own).
#[test]
fn disabling_a_check_removes_its_findings() {
    let cases: &[(&str, &str, Disable)] = &[
        ("fake_tls_odd_cipher_list", "tls_malformed_handshake", |c| {
            c.detect.tls_handshake.enabled = false
        }),
        (
            "tls_hello_answered_by_ssh",
            "tls_answered_by_non_tls",
            |c| c.detect.tls_handshake.enabled = false,
        ),
        ("tls_one_sided", "tls_one_sided", |c| {
            c.detect.tls_handshake.enabled = false
        }),
        ("tls_cert_expired", "cert_expired", |c| {
            c.detect.certificate.enabled = false
        }),
        ("tls_self_signed", "cert_self_signed", |c| {
            c.detect.certificate.enabled = false
        }),
        ("tls_cert_name_mismatch", "cert_name_mismatch", |c| {
            c.detect.certificate.enabled = false
        }),
        ("tls_cert_invalid", "cert_invalid", |c| {
            c.detect.certificate.enabled = false
        }),
        (
            "tls_fatal_alert_after_certificate",
            "tls_fatal_alert_after_certificate",
            |c| c.detect.certificate.enabled = false,
        ),
        ("tls_no_sni_with_h2", "sni_missing", |c| {
            c.detect.sni.enabled = false
        }),
        ("tls_ip_literal_sni", "sni_ip_literal", |c| {
            c.detect.sni.enabled = false
        }),
        (
            "tls_esni_with_cleartext_sni",
            "esni_with_cleartext_sni",
            |c| c.detect.ech.enabled = false,
        ),
        (
            "tls_ech_public_name_mismatch",
            "ech_public_name_mismatch",
            |c| c.detect.ech.public_name_mismatch = false,
        ),
        (
            "tls_ech_non_browser_client",
            "ech_non_browser_client",
            |c| c.detect.ech.non_browser = false,
        ),
    ];
    for (name, finding, disable) in cases {
        let f = flow(name);
        let on = run_flow(&Config::default(), &f);
        assert!(
            on.contains(*finding),
            "{name}: {finding} missing from {on:?}"
        );
        let mut config = Config::default();
        disable(&mut config);
        let off = run_flow(&config, &f);
        assert!(!off.contains(*finding), "{name}: {finding} still raised");
    }
}

/// The fingerprint check needs lists: the fixture client's own fingerprint on a deny list is
/// flagged, and a destination guarded by an allow list without it flags the client.
#[test]
fn fingerprint_lists_flag_the_fixture_client() {
    let f = flow("tls_benign_handshake");
    let run = run_engine(&Config::default(), f.frames.clone());
    let tls = run.of_type("tls").next().expect("a tls record");
    let ja4 = tls["tls"]["ja4"].as_str().unwrap().to_string();
    let ja3 = tls["tls"]["ja3"]["hash"].as_str().unwrap().to_string();

    let dir = tempfile::tempdir().unwrap();
    let deny = dir.path().join("deny.list");
    std::fs::write(&deny, format!("# test\nja4 {ja4} fixture client\n")).unwrap();
    let other = dir.path().join("allow.list");
    std::fs::write(&other, "ja3 00000000000000000000000000000000 nobody\n").unwrap();
    let listed = dir.path().join("listed.list");
    std::fs::write(&listed, format!("ja3 {ja3} fixture client\n")).unwrap();
    let path = |p: &std::path::Path| p.to_string_lossy().to_string();

    let mut config = Config::default();
    config.detect.fingerprint.deny_files = vec![path(&deny)];
    config.validate("test").unwrap();
    let run = run_engine(&config, f.frames.clone());
    let alert = run
        .of_type("alert")
        .find(|a| a["unmask"]["finding"] == "tls_fingerprint_denied")
        .expect("deny hit");
    let evidence = alert["unmask"]["evidence"].to_string();
    assert!(evidence.contains("fixture client"), "{evidence}");

    let allow_set = |file: &std::path::Path, port: u16| {
        let text = format!(
            "[[detect.fingerprint.allow]]\nname = \"guarded\"\nfiles = [{:?}]\nports = [{port}]\n",
            path(file)
        );
        Config::parse(&text, "test.toml").unwrap()
    };
    let not_allowed = run_flow(&allow_set(&other, 443), &f);
    assert!(
        not_allowed.contains("tls_fingerprint_not_allowed"),
        "{not_allowed:?}"
    );
    assert!(run_flow(&allow_set(&listed, 443), &f).is_empty());
    assert!(run_flow(&allow_set(&other, 8443), &f).is_empty());

    let mut off = config.clone();
    off.detect.fingerprint.enabled = false;
    assert!(run_flow(&off, &f).is_empty());
}

#[test]
fn bad_list_file_is_a_config_error_naming_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.list");
    std::fs::write(
        &bad,
        "ja3 e7d705a3286e19ea42f587b344ee6865 ok\nja4 nonsense label\n",
    )
    .unwrap();
    let text = format!(
        "[detect.fingerprint]\ndeny_files = [{:?}]\n",
        bad.to_string_lossy()
    );
    let err = Config::parse(&text, "site.toml").unwrap_err().to_string();
    assert!(
        err.starts_with("site.toml: key `detect.fingerprint.deny_files[0]`"),
        "{err}"
    );
    assert!(
        err.contains("bad.list line 2") && err.contains("\"nonsense\""),
        "{err}"
    );
}

/// In block mode the fake handshakes are dropped from the packet that revealed them on; the
/// client-oddity (SNI) findings only alert.
#[test]
fn block_mode_drops_fake_tls_but_not_sni_oddities() {
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    for name in [
        "fake_tls_odd_cipher_list",
        "tls_hello_answered_by_ssh",
        "tls_self_signed",
    ] {
        let run = run_engine(&config, flow(name).frames);
        assert!(run.counters.flows_blocked >= 1, "{name} not blocked");
    }
    let run = run_engine(&config, flow("tls_no_sni_with_h2").frames);
    assert_eq!(run.counters.flows_blocked, 0);
    let run = run_engine(&config, flow("tls_benign_handshake").frames);
    assert_eq!(run.counters.flows_blocked, 0);
}
