//! Evasion fixtures (fixtures/evasion, written by scripts/evasion_pcaps.py): a flagged flow
//! (SSH on 443) and a benign one (HTTP on 80) hidden in tunnels and IP fragments. The flagged
//! flow must be detected (and cut in block mode), the benign one must pass whole.

mod common;

use std::path::{Path, PathBuf};

use common::{capture_frames, run_engine, Run};
use unmask::capture::Action;
use unmask::config::Config;
use unmask::flow::defrag::DefragEvent;
use unmask::verdict::Mode;
use unmask::wire::{OtherKind, TunnelKind};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fixtures/evasion")
        .join(name)
}

fn run(name: &str, mode: Mode) -> Run {
    let mut c = Config::default();
    c.verdict.mode = mode;
    run_engine(&c, capture_frames(&fixture(name)))
}

/// What the fixture's two flows came to.
struct Verdicts {
    flagged_findings: Vec<String>,
    benign_findings: Vec<String>,
    /// Frames dropped, per flow (by inner server port).
    flagged_dropped: usize,
    benign_dropped: usize,
}

fn verdicts(run: &Run) -> Verdicts {
    let dropped_on = |port: u16| {
        run.of_type("drop")
            .filter(|d| d["dest_port"] == port || d["src_port"] == port)
            .count()
    };
    Verdicts {
        flagged_findings: run.findings_on_port(443),
        benign_findings: run.findings_on_port(80),
        flagged_dropped: dropped_on(443),
        benign_dropped: dropped_on(80),
    }
}

/// The flagged flow raises protocol_port_mismatch and, in block mode, loses its frames after the
/// verdict; the benign flow raises nothing and loses nothing.
fn assert_caught(name: &str, run_monitor: &Run, run_block: &Run) {
    let m = verdicts(run_monitor);
    assert_eq!(
        m.flagged_findings,
        ["protocol_port_mismatch"],
        "{name}: flagged flow"
    );
    assert!(
        m.benign_findings.is_empty(),
        "{name}: benign flow raised {:?}",
        m.benign_findings
    );
    assert_eq!(
        m.flagged_dropped + m.benign_dropped,
        0,
        "{name}: monitor drops nothing"
    );
    let b = verdicts(run_block);
    assert_eq!(
        b.flagged_dropped, 1,
        "{name}: one drop record for the flagged flow"
    );
    assert_eq!(b.benign_dropped, 0, "{name}: benign flow dropped");
    assert!(run_block.counters.dropped >= 1, "{name}: nothing dropped");
    let forwarded = run_block
        .actions
        .iter()
        .filter(|a| **a == Action::Forward)
        .count();
    assert_eq!(
        forwarded as u64 + run_block.counters.dropped + run_block.counters.dropped_uninspectable,
        run_block.actions.len() as u64,
        "{name}"
    );
    assert_eq!(run_block.counters.dropped_uninspectable, 0, "{name}");
}

#[test]
fn the_plain_fixture_is_caught_without_tunnels() {
    let (m, b) = (
        run("plain.pcap", Mode::Monitor),
        run("plain.pcap", Mode::Block),
    );
    assert_caught("plain", &m, &b);
    assert!(m.counters.tunnels.iter().all(|&n| n == 0));
}

#[test]
fn every_tunnel_kind_is_opened_and_its_inner_flows_judged() {
    use TunnelKind::*;
    let cases: &[(&str, &[TunnelKind])] = &[
        ("gre", &[Gre]),
        ("gre_key_seq", &[Gre]),
        ("gre_teb", &[Gre]),
        ("erspan2", &[Erspan]),
        ("erspan3", &[Erspan]),
        ("ipip", &[Ipv4InIp]),
        ("6in4", &[Ipv6InIp]),
        ("4in6", &[Ipv4InIp]),
        ("6in6", &[Ipv6InIp]),
        ("vxlan", &[Vxlan]),
        ("geneve", &[Geneve]),
        ("gtpu", &[GtpU]),
        ("gtpu_v6", &[GtpU]),
        ("mpls", &[Mpls]),
        ("gtpu_in_vxlan", &[Vxlan, GtpU]),
    ];
    for (name, chain) in cases {
        let file = format!("tunnel_{name}.pcap");
        let (m, b) = (run(&file, Mode::Monitor), run(&file, Mode::Block));
        assert_caught(name, &m, &b);
        let frames = m.counters.packets;
        for kind in TunnelKind::ALL {
            let want = if chain.contains(&kind) { frames } else { 0 };
            assert_eq!(
                m.counters.tunnels[kind.index()],
                want,
                "{name}: {} count",
                kind.name()
            );
        }
        assert_eq!(m.counters.tcp, frames, "{name}: every frame reached TCP");
        // Every record of the inner flows says what carried them.
        let names: Vec<&str> = chain.iter().map(|k| k.name()).collect();
        let innermost = format!("{} tunnel", names.last().unwrap());
        for r in &m.records {
            assert_eq!(r["tunnel"]["depth"], chain.len(), "{name}: {r}");
            assert_eq!(r["tunnel"]["pkt_src"], innermost.as_str(), "{name}: {r}");
        }
        let flow = m
            .of_type("flow")
            .find(|f| f["dest_port"] == 443)
            .expect("flow record");
        assert_eq!(
            flow["unmask"]["tunnels"],
            serde_json::json!(names),
            "{name}"
        );
        let alert = m.of_type("alert").next().expect("alert");
        assert_eq!(
            alert["unmask"]["tunnels"],
            serde_json::json!(names),
            "{name}"
        );
        // The inner 5-tuple is the flow.
        assert_eq!(alert["dest_port"], 443);
        assert!(
            alert["dest_ip"] == "10.2.0.2" || alert["dest_ip"] == "2001:db8:2::2",
            "{name}: {alert}"
        );
    }
}

#[test]
fn tunnels_stay_closed_at_depth_zero() {
    let mut c = Config::default();
    c.decode.tunnel_depth = 0;
    let r = run_engine(&c, capture_frames(&fixture("tunnel_gtpu.pcap")));
    assert_eq!(r.counters.tcp, 0);
    assert_eq!(r.counters.other[OtherKind::Udp.index()], r.counters.packets);
    assert!(r.of_type("alert").next().is_none());
}

#[test]
fn nesting_deeper_than_the_limit_is_counted_and_dropped_in_block_mode() {
    let m = run("tunnel_too_deep.pcap", Mode::Monitor);
    let n = m.counters.packets;
    assert_eq!(m.counters.other[OtherKind::TunnelTooDeep.index()], n);
    assert_eq!(m.counters.tunnels[TunnelKind::Ipv4InIp.index()], 4 * n);
    assert!(m.actions.iter().all(|a| *a == Action::Forward));
    let b = run("tunnel_too_deep.pcap", Mode::Block);
    assert!(
        b.actions.iter().all(|a| *a == Action::Drop),
        "block mode drops what it cannot open"
    );
    // One level deeper allowed: the flows inside are judged like any other.
    let mut c = Config::default();
    c.decode.tunnel_depth = 5;
    let deep = run_engine(&c, capture_frames(&fixture("tunnel_too_deep.pcap")));
    assert_eq!(deep.findings_on_port(443), ["protocol_port_mismatch"]);
}

/// The fixtures in the repository are what the script writes today.
#[test]
fn fixtures_are_current() {
    if let Some(checked) = common::script_fixtures_current("evasion_pcaps.py", "evasion") {
        assert!(checked >= 36, "{checked}");
    }
}

/// The one GTP-U capture among the shared real ones: a TLS ClientHello to e.crashlytics.com
/// inside GTP-U (inside QinQ), which nDPI decodes and flags ("TLS Susp Extn") and which unmask
/// passed unseen as UDP before tunnels were opened.
#[test]
fn the_real_gtp_tls_flow_is_inspected() {
    let Some(dir) = common::shared_pcaps("the_real_gtp_tls_flow_is_inspected") else {
        return;
    };
    let path = dir.join("ndpi/tls_invalid_reads.pcap");
    // As `unmask replay` does (checksum_validation auto): the inner segments' checksums do not
    // add up (the capture was rewritten, or taken before offload finished them).
    let mut c = Config::default();
    c.stream.checksum_validation = unmask::config::ChecksumValidation::No;
    let r = run_engine(&c, capture_frames(&path));
    assert_eq!(r.counters.tunnels[TunnelKind::GtpU.index()], 3);
    let inner: Vec<_> = r
        .of_type("alert")
        .filter(|a| a["src_ip"] == "10.191.139.17" && a["dest_ip"] == "54.221.224.45")
        .collect();
    assert!(!inner.is_empty(), "the GTP-carried flow raised nothing");
    for a in &inner {
        assert_eq!(a["tunnel"]["pkt_src"], "gtp_u tunnel", "{a}");
        assert_eq!(a["unmask"]["finding"], "tls_malformed_handshake", "{a}");
    }
    let tls = r
        .of_type("tls")
        .find(|t| t["dest_ip"] == "54.221.224.45")
        .expect("a tls record for the inner flow");
    assert_eq!(tls["tls"]["sni"], "e.crashlytics.com");
}

fn defrag(run: &Run, event: DefragEvent) -> u64 {
    run.counters.defrag[event.index()]
}

#[test]
fn fragments_in_any_order_are_reassembled_before_inspection() {
    for name in [
        "in_order",
        "reversed",
        "v6_in_order",
        "v6_reversed",
        "outer_gtpu",
    ] {
        let file = format!("frag_{name}.pcap");
        let (m, b) = (run(&file, Mode::Monitor), run(&file, Mode::Block));
        assert_caught(name, &m, &b);
        // Two data segments per flow, each one datagram.
        assert_eq!(defrag(&m, DefragEvent::Reassembled), 4, "{name}");
        assert_eq!(defrag(&m, DefragEvent::OverlapConflict), 0, "{name}");
        assert_eq!(
            m.counters.tcp, 16,
            "{name}: 12 whole segments and 4 reassembled"
        );
    }
    let gtp = run("frag_outer_gtpu.pcap", Mode::Monitor);
    assert_eq!(gtp.counters.tunnels[TunnelKind::GtpU.index()], 16);
    let alert = gtp.of_type("alert").next().unwrap();
    assert_eq!(alert["tunnel"]["pkt_src"], "gtp_u tunnel");
}

/// Without reassembly the same fixtures pass unseen: what the reassembly buys.
#[test]
fn without_reassembly_fragmented_flows_are_not_judged() {
    let mut c = Config::default();
    c.defrag.enabled = false;
    let r = run_engine(&c, capture_frames(&fixture("frag_in_order.pcap")));
    assert!(r.findings_on_port(443).is_empty());
    assert_eq!(r.counters.other[OtherKind::Fragment.index()], 38);
}

#[test]
fn overlapping_fragments_with_different_bytes_are_a_finding_either_way_round() {
    for name in ["overlap_first_real", "overlap_last_real"] {
        let file = format!("frag_{name}.pcap");
        let (m, b) = (run(&file, Mode::Monitor), run(&file, Mode::Block));
        let v = verdicts(&m);
        assert!(
            v.flagged_findings
                .contains(&"ip_fragment_overlap".to_string()),
            "{name}: {:?}",
            v.flagged_findings
        );
        // The benign flow repeats a fragment with identical bytes: a retransmission.
        assert!(
            v.benign_findings.is_empty(),
            "{name}: {:?}",
            v.benign_findings
        );
        assert_eq!(defrag(&m, DefragEvent::OverlapConflict), 1, "{name}");
        let alert = m
            .of_type("alert")
            .find(|a| a["unmask"]["finding"] == "ip_fragment_overlap")
            .unwrap();
        assert_eq!(alert["dest_port"], 443, "{name}");
        assert!(
            alert["unmask"]["evidence"]["fragment_id"].is_string(),
            "{alert}"
        );
        let vb = verdicts(&b);
        assert_eq!(
            vb.flagged_findings,
            ["ip_fragment_overlap"],
            "{name}: blocked at once"
        );
        assert_eq!(vb.flagged_dropped, 1, "{name}");
        assert_eq!(vb.benign_dropped, 0, "{name}");
        // The fragment that completed the conflicting datagram is the first one dropped.
        let first_drop = b.of_type("drop").next().unwrap();
        let alert_b = b.of_type("alert").next().unwrap();
        assert_eq!(first_drop["pcap_cnt"], alert_b["pcap_cnt"], "{name}");
    }
}

#[test]
fn fragments_beyond_the_limits_are_counted_and_dropped_in_block_mode() {
    let (m, b) = (
        run("frag_too_many.pcap", Mode::Monitor),
        run("frag_too_many.pcap", Mode::Block),
    );
    // Each direction of the flagged flow sent one datagram in more than 64 fragments.
    assert_eq!(defrag(&m, DefragEvent::TooManyFragments), 2);
    let refused = defrag(&m, DefragEvent::TooManyFragments) + defrag(&m, DefragEvent::Refused);
    // The benign flow's three-fragment datagrams are reassembled and judged clean.
    assert_eq!(defrag(&m, DefragEvent::Reassembled), 2);
    assert!(m.findings_on_port(80).is_empty());
    // Monitor mode forwards what it could not reassemble (counted above)...
    assert!(m.actions.iter().all(|a| *a == Action::Forward));
    // ...block mode drops it: the receiver never gets a whole datagram.
    let dropped = b.actions.iter().filter(|a| **a == Action::Drop).count() as u64;
    assert_eq!(dropped, refused);
    assert_eq!(b.counters.dropped_uninspectable, refused);
    assert_eq!(verdicts(&b).benign_dropped, 0);
    // With the limit raised, the same flow is reassembled and caught.
    let mut c = Config::default();
    c.defrag.max_fragments = 128;
    let raised = run_engine(&c, capture_frames(&fixture("frag_too_many.pcap")));
    assert_eq!(raised.findings_on_port(443), ["protocol_port_mismatch"]);
    // And with drop_unreassembled off, block mode forwards them (counted) instead.
    let mut c = Config::default();
    c.verdict.mode = Mode::Block;
    c.defrag.drop_unreassembled = false;
    let lenient = run_engine(&c, capture_frames(&fixture("frag_too_many.pcap")));
    assert!(lenient.actions.iter().all(|a| *a == Action::Forward));
}

/// TCP games (Ptacek–Newsham, Geneva): the flagged flow is caught whatever the segmentation,
/// overlaps with different bytes are a finding of their own, and the benign flow (whose
/// overlaps repeat identical bytes) passes whole.
#[test]
fn tcp_segmentation_games_do_not_change_the_verdict() {
    let cases: &[(&str, &[&str])] = &[
        ("one_byte", &["protocol_port_mismatch"]),
        ("out_of_order", &["protocol_port_mismatch"]),
        ("overlap_first_real", &["tcp_overlap_conflict"]),
        ("overlap_last_real", &["tcp_overlap_conflict"]),
        ("syn_data", &["tcp_overlap_conflict"]),
        ("rst_out_of_window", &["protocol_port_mismatch"]),
        ("low_ttl", &["protocol_port_mismatch"]),
        ("low_ttl_rst", &["protocol_port_mismatch"]),
        ("out_of_window", &["protocol_port_mismatch"]),
    ];
    for (name, must) in cases {
        let file = format!("tcp_{name}.pcap");
        let (m, b) = (run(&file, Mode::Monitor), run(&file, Mode::Block));
        let v = verdicts(&m);
        for kind in *must {
            assert!(
                v.flagged_findings.iter().any(|f| f == kind),
                "{name}: {kind} missing from {:?}",
                v.flagged_findings
            );
        }
        assert!(
            v.benign_findings.is_empty(),
            "{name}: {:?}",
            v.benign_findings
        );
        let vb = verdicts(&b);
        assert_eq!(vb.flagged_dropped, 1, "{name}: flagged flow cut");
        assert_eq!(vb.benign_dropped, 0, "{name}: benign flow intact");
        assert!(b.counters.dropped >= 1, "{name}");
    }
    // The overlap conflict alone blocks: with the SSH banner kept out of reach of the port
    // check, block mode still cuts the flow.
    let mut c = Config::default();
    c.verdict.mode = Mode::Block;
    c.detect.protocol_port.enabled = false;
    let r = run_engine(&c, capture_frames(&fixture("tcp_overlap_first_real.pcap")));
    assert_eq!(r.findings_on_port(443), ["tcp_overlap_conflict"]);
    assert_eq!(verdicts(&r).flagged_dropped, 1);
    let a = r.of_type("alert").next().unwrap();
    assert_eq!(a["unmask"]["evidence"]["policy"], "first");
    // Alert only when asked.
    c.stream.block_overlap_conflict = false;
    let r = run_engine(&c, capture_frames(&fixture("tcp_overlap_first_real.pcap")));
    assert_eq!(r.counters.dropped, 0);
}

/// A RST far from the sender's stream is not a reset (RFC 5961): the flow stays established
/// (not moved to the short closed timeout nor first in line for eviction), while one at the
/// right sequence number still ends it.
#[test]
fn out_of_window_rsts_do_not_reset_the_flow() {
    let m = run("tcp_rst_out_of_window.pcap", Mode::Monitor);
    assert_eq!(m.counters.stream_rst_ignored, 2, "one per flow");
    for f in m.of_type("flow") {
        assert_eq!(f["flow"]["state"], "established", "{f}");
    }
    assert_eq!(m.findings_on_port(443), ["protocol_port_mismatch"]);
    // The plain fixture's connections end with FINs: nothing ignored there.
    assert_eq!(
        run("plain.pcap", Mode::Monitor).counters.stream_rst_ignored,
        0
    );
}

/// A copy of the flagged data with a wrong TCP checksum, sent first: the receiver drops it, so
/// with checksums validated the inspector reads what the receiver reads (the real copy after
/// it), not the decoy.
#[test]
fn segments_with_a_bad_checksum_are_not_inspected() {
    let mut c = Config::default();
    c.stream.checksum_validation = unmask::config::ChecksumValidation::Yes;
    let r = run_engine(&c, capture_frames(&fixture("tcp_bad_checksum.pcap")));
    assert_eq!(r.counters.stream_bad_checksum, 2, "one decoy per flow");
    assert_eq!(r.findings_on_port(443), ["protocol_port_mismatch"]);
    assert!(r.findings_on_port(80).is_empty());
    assert_eq!(r.counters.stream_conflicting_overlaps, 0);
    // Without validation the decoy is what the stream keeps, and the real data conflicts.
    c.stream.checksum_validation = unmask::config::ChecksumValidation::No;
    let r = run_engine(&c, capture_frames(&fixture("tcp_bad_checksum.pcap")));
    assert_eq!(r.counters.stream_bad_checksum, 0);
    assert!(r.counters.stream_conflicting_overlaps >= 1);
}

/// A decoy at TTL 2 (it expires before the server) under the real data: the inspector reads
/// what the server reads, so the flagged flow is judged on its SSH banner alone (no overlap
/// conflict: the decoy never entered the stream) and the benign flow, whose decoy differs too,
/// raises nothing. With the check off (tolerance 255) the decoy is inspected and conflicts.
#[test]
fn segments_whose_ttl_expires_before_the_server_are_not_inspected() {
    let m = run("tcp_low_ttl.pcap", Mode::Monitor);
    assert_eq!(m.counters.stream_low_ttl, 2, "one decoy per flow");
    assert_eq!(m.findings_on_port(443), ["protocol_port_mismatch"]);
    assert!(
        m.findings_on_port(80).is_empty(),
        "{:?}",
        m.of_type("alert")
            .map(|a| a.to_string())
            .collect::<Vec<_>>()
    );
    assert_eq!(m.counters.stream_conflicting_overlaps, 0);
    let mut c = Config::default();
    c.stream.ttl_tolerance = 255;
    let r = run_engine(&c, capture_frames(&fixture("tcp_low_ttl.pcap")));
    assert_eq!(r.counters.stream_low_ttl, 0);
    assert_eq!(r.counters.stream_conflicting_overlaps, 2);
    // Within the tolerance a lower TTL is a path change, not a decoy.
    c.stream.ttl_tolerance = 62;
    let r = run_engine(&c, capture_frames(&fixture("tcp_low_ttl.pcap")));
    assert_eq!(r.counters.stream_low_ttl, 0);
}

/// A RST at the right sequence number but with TTL 2 ends nothing: the flows stay open (their
/// FINs then close them) and the flagged data after it is inspected and cut.
#[test]
fn a_rst_whose_ttl_expires_before_the_server_ends_nothing() {
    let m = run("tcp_low_ttl_rst.pcap", Mode::Monitor);
    assert_eq!(m.counters.stream_low_ttl, 2, "one RST per flow");
    assert_eq!(m.counters.stream_rst_ignored, 2);
    for f in m.of_type("flow") {
        assert_eq!(f["flow"]["state"], "closed", "{f}");
        assert_ne!(f["flow"]["reason"], "rst", "{f}");
    }
    let mut c = Config::default();
    c.stream.ttl_tolerance = 255;
    let r = run_engine(&c, capture_frames(&fixture("tcp_low_ttl_rst.pcap")));
    assert_eq!(
        r.counters.stream_rst_ignored, 0,
        "the RST is taken at its word"
    );
}

/// Bytes past the right edge of the server's window (its acknowledgement plus the largest
/// window it offered) are dropped by the server, so they are not inspected: the real bytes
/// that later fill that part of the stream are read without a conflict.
#[test]
fn data_beyond_the_receivers_window_is_not_inspected() {
    let m = run("tcp_out_of_window.pcap", Mode::Monitor);
    assert_eq!(m.counters.stream_out_of_window, 2, "one decoy per flow");
    assert_eq!(m.counters.stream_conflicting_overlaps, 0);
    assert_eq!(m.findings_on_port(443), ["protocol_port_mismatch"]);
    assert!(m.findings_on_port(80).is_empty());
}

/// The other way round: a SYN sent with a higher TTL than the data sets the floor so high that
/// the real data looks like it expires early. The server's acknowledgement of bytes the
/// inspector left out gives it away: a blocking stream conflict, and the flow is cut at the
/// server's answer.
#[test]
fn a_ttl_floor_set_too_high_is_caught_when_the_receiver_acknowledges() {
    let (m, b) = (
        run("tcp_high_ttl_syn.pcap", Mode::Monitor),
        run("tcp_high_ttl_syn.pcap", Mode::Block),
    );
    assert_eq!(
        m.counters.stream_low_ttl, 2,
        "the handshake's last ACK and the data"
    );
    // The server's own banner is inspected as usual and gives the port mismatch too.
    assert_eq!(
        m.findings_on_port(443),
        ["protocol_port_mismatch", "tcp_overlap_conflict"]
    );
    let a = m
        .of_type("alert")
        .find(|a| a["unmask"]["finding"] == "tcp_overlap_conflict")
        .expect("alert");
    assert_eq!(
        a["unmask"]["evidence"]["reason"],
        "acknowledged_below_ttl_floor"
    );
    assert!(m.findings_on_port(80).is_empty());
    let v = verdicts(&b);
    assert_eq!(v.flagged_dropped, 1);
    assert_eq!(v.benign_dropped, 0);
}
