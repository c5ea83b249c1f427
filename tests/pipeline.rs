//! The whole engine over the project's own fixture flows: identification, findings, verdicts,
//! and the EVE records that come out.

mod common;

use common::{run_engine, Run};
use unmask::capture::Action;
use unmask::config::Config;
use unmask::fixtures::{self, Conversation, FixtureFlow};
use unmask::verdict::Mode;

fn config(mode: Mode) -> Config {
    let mut c = Config::default();
    c.verdict.mode = mode;
    c
}

fn flow_record(run: &Run, client_port: u16) -> &serde_json::Value {
    run.of_type("flow")
        .find(|r| r["src_port"] == client_port)
        .unwrap_or_else(|| panic!("no flow record for client port {client_port}"))
}

fn client_port(f: &FixtureFlow) -> u16 {
    // Every fixture flow's first frame is the client's SYN; its TCP source port is at a fixed
    // offset in an Ethernet/IPv4 frame.
    let frame = &f.frames[0].1;
    u16::from_be_bytes([frame[34], frame[35]])
}

#[test]
fn each_fixture_flow_is_identified_and_judged_as_expected() {
    for flow in fixtures::standard_flows() {
        let run = run_engine(&config(Mode::Monitor), flow.frames.clone());
        let port = client_port(&flow);
        let rec = flow_record(&run, port);
        assert_eq!(
            rec["app_proto"].as_str().unwrap_or("unknown"),
            flow.expect_app,
            "{}: app_proto in {rec}",
            flow.name
        );
        let mut want: Vec<String> = flow.expect_findings.iter().map(|s| s.to_string()).collect();
        want.sort();
        assert_eq!(
            run.findings_on_port(flow.server_port),
            want,
            "{}",
            flow.name
        );
        assert_eq!(rec["flow"]["alerted"], !want.is_empty(), "{}", flow.name);
        assert!(
            run.actions.iter().all(|a| *a == Action::Forward),
            "{}: monitor mode never drops",
            flow.name
        );
    }
}

#[test]
fn block_mode_drops_flagged_flows_from_the_triggering_packet_on() {
    for flow in fixtures::standard_flows() {
        let run = run_engine(&config(Mode::Block), flow.frames.clone());
        let drops = run.actions.iter().filter(|a| **a == Action::Drop).count();
        if !flow.expect_blocked {
            assert_eq!(
                drops, 0,
                "{}: benign or alert-only flow must pass",
                flow.name
            );
            continue;
        }
        assert!(drops > 0, "{}: flagged flow must be cut", flow.name);
        // Once a packet is dropped, every later packet of the flow is too.
        let first = run.actions.iter().position(|a| *a == Action::Drop).unwrap();
        assert!(
            run.actions[first..].iter().all(|a| *a == Action::Drop),
            "{}",
            flow.name
        );
        assert!(
            run.of_type("alert")
                .any(|a| a["alert"]["action"] == "blocked"),
            "{}",
            flow.name
        );
        // The drop record names the first dropped packet by its number in the capture.
        let drop = run.of_type("drop").next().expect("a drop record");
        assert_eq!(drop["pcap_cnt"], (first + 1) as u64, "{}", flow.name);
        assert_eq!(run.counters.dropped, drops as u64);
        let rec = flow_record(&run, client_port(&flow));
        assert_eq!(rec["flow"]["action"], "drop");
    }
}

#[test]
fn interleaved_capture_gives_the_same_findings_as_flows_alone() {
    let run = run_engine(&config(Mode::Monitor), fixtures::standard_capture());
    for flow in fixtures::standard_flows() {
        let alone = run_engine(&config(Mode::Monitor), flow.frames.clone());
        let port = client_port(&flow);
        let findings = |r: &Run| -> Vec<String> {
            r.of_type("alert")
                .filter(|a| a["src_port"] == port || a["dest_port"] == port)
                .map(|a| a["unmask"]["finding"].to_string())
                .collect()
        };
        assert_eq!(findings(&run), findings(&alone), "{}", flow.name);
    }
    assert_eq!(
        run.of_type("flow").count(),
        fixtures::standard_flows().len()
    );
}

#[test]
fn identification_survives_out_of_order_and_retransmitted_segments() {
    let hello = b"SSH-2.0-OpenSSH_9.2p1\r\n";
    let client = "10.77.0.1:41000".parse().unwrap();
    let server = "10.77.0.2:443".parse().unwrap();
    // The banner arrives as three segments: the last first, then a retransmission of it, then
    // the first two.
    let conv = Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
        .handshake()
        .raw_data(false, 16, &hello[16..])
        .raw_data(false, 16, &hello[16..])
        .raw_data(false, 0, &hello[..8])
        .raw_data(false, 8, &hello[8..16])
        .skip(false, hello.len() as u32)
        .client(hello)
        .close();
    let run = run_engine(&config(Mode::Monitor), conv.into_frames());
    assert_eq!(
        run.findings_on_port(443),
        vec!["protocol_port_mismatch".to_string()]
    );
    assert!(run.counters.stream_out_of_order >= 1);
    assert!(run.counters.stream_retransmissions >= 1);
}

#[test]
fn conflicting_overlap_is_reported_and_first_copy_wins() {
    let client = "10.77.0.1:41001".parse().unwrap();
    let server = "10.77.0.2:22".parse().unwrap();
    let conv = Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
        .handshake()
        .raw_data(false, 0, b"SSH-2.0-")
        // Same sequence space, different bytes: an evasion attempt.
        .raw_data(false, 0, b"GET / HT")
        .raw_data(false, 8, b"OpenSSH_9.2\r\n")
        .skip(false, 21)
        .close();
    let run = run_engine(&config(Mode::Monitor), conv.into_frames());
    assert_eq!(run.counters.stream_conflicting_overlaps, 1);
    let anomaly = run.of_type("anomaly").next().expect("an anomaly record");
    assert_eq!(
        anomaly["anomaly"]["event"],
        "stream.reassembly_overlap_different_data"
    );
    // The first copy (SSH) decided the identification: no mismatch on port 22; the conflict
    // itself is the finding (the receiver may have kept the other copy).
    let rec = run.of_type("flow").next().unwrap();
    assert_eq!(rec["app_proto"], "ssh");
    assert_eq!(run.findings_on_port(22), ["tcp_overlap_conflict"]);
}

#[test]
fn ipv6_flows_are_tracked_and_reported() {
    let client = "[fd00:77::1]:42000".parse().unwrap();
    let server = "[fd00:77::2]:443".parse().unwrap();
    let conv = Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
        .handshake()
        .server(b"SSH-2.0-dropbear_2022.83\r\n")
        .client(b"SSH-2.0-PuTTY_Release_0.78\r\n")
        .close();
    let run = run_engine(&config(Mode::Monitor), conv.into_frames());
    let alert = run
        .of_type("alert")
        .next()
        .expect("ssh on 443 over IPv6 alerts");
    assert_eq!(alert["src_ip"], "fd00:77::2");
    assert_eq!(alert["ip_v"], 6);
}

#[test]
fn flows_in_a_full_table_are_counted_not_crashed() {
    let mut c = config(Mode::Monitor);
    c.flow.capacity = 2;
    c.flow.evict_min_idle_secs = 3600;
    let frames: Vec<_> = (0..5u16)
        .flat_map(|i| {
            let client = format!("10.77.0.1:{}", 43000 + i).parse().unwrap();
            let server = "10.77.0.2:80".parse().unwrap();
            Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
                .handshake()
                .client(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .into_frames()
        })
        .collect();
    let run = run_engine(&c, frames);
    assert!(run.counters.flows_refused_packets > 0);
    assert!(run.actions.iter().all(|a| *a == Action::Forward));
}

#[test]
fn a_blocking_finding_blocks_even_after_an_alert_only_one_of_its_kind() {
    // First request: no User-Agent (an alert-only signature). Second request on the same
    // connection: no Host on HTTP/1.1 (a blocking signature of the same kind).
    let client = "10.77.0.1:44000".parse().unwrap();
    let server = "10.77.0.2:80".parse().unwrap();
    let conv = Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
        .handshake()
        .client(b"GET / HTTP/1.1\r\nHost: www.example.com\r\nAccept: */*\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .client(b"GET /next HTTP/1.1\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
        .close();
    let run = run_engine(&config(Mode::Block), conv.into_frames());
    let alerts: Vec<_> = run
        .of_type("alert")
        .filter(|a| a["unmask"]["finding"] == "http_header_signature")
        .collect();
    assert_eq!(alerts.len(), 2, "{alerts:?}");
    assert_eq!(alerts[0]["alert"]["action"], "allowed");
    assert_eq!(alerts[1]["alert"]["action"], "blocked");
    assert!(run.actions.contains(&Action::Drop));
}

#[test]
fn flow_records_never_crowd_alerts_out_of_a_full_eve_queue() {
    use unmask::capture::{LinkType, VecSource};
    use unmask::engine::record::EveRecord;
    use unmask::engine::worker::{self, Clock};
    use unmask::engine::{Engine, EngineOptions};
    use unmask::fixtures::{standard_flows, workloads::syn_flood};
    let mut config = Config::default();
    // Every flood SYN evicts the flow before it: one flow record per frame.
    config.flow.capacity = 1;
    let flagged = standard_flows()
        .into_iter()
        .find(|f| f.name == "http_on_443")
        .expect("fixture");
    let mut frames = syn_flood(100);
    let after = frames.last().map(|f| f.0).unwrap_or_default();
    frames.extend(flagged.frames.iter().map(|(ts, d)| {
        (
            after.add_nanos(ts.0 - flagged.frames[0].0 .0 + 1),
            d.clone(),
        )
    }));
    // Nobody reads the queue: the writer has fallen behind for good.
    let (tx, rx) = crossbeam_channel::bounded(16);
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        Some(tx),
    );
    let mut source = VecSource::new(LinkType::Ethernet, frames, 32);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let mut ctl = unmask::verdict::NoFlowControl::default();
    worker::run(
        &mut source,
        &mut engine,
        &mut ctl,
        Clock::PacketTime,
        &stop,
        |_, _| {},
    )
    .expect("in-memory source");
    let records: Vec<EveRecord> = rx.try_iter().collect();
    let flows = records
        .iter()
        .filter(|r| matches!(r, EveRecord::Flow(_)))
        .count();
    let alerts: Vec<&str> = records
        .iter()
        .filter_map(|r| match r {
            EveRecord::Alert(a) => Some(a.finding.kind.name()),
            _ => None,
        })
        .collect();
    assert_eq!(
        flows, 12,
        "flow records stop at three quarters of the queue"
    );
    assert_eq!(alerts.len(), flagged.expect_findings.len(), "{alerts:?}");
    for f in flagged.expect_findings {
        assert!(alerts.contains(f), "{f} missing from {alerts:?}");
    }
    let c = engine.counters();
    assert_eq!(c.eve_dropped, c.flows_ended - 12);
}
