//! Inputs the fuzzer (fuzz/, scripts/fuzz.sh) found crashing, replayed through the same
//! harness code on stable in plain `cargo test`, plus one project-made input per target so the
//! harnesses themselves stay working.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use harness::{EngineRecord, StreamOp};
use unmask::fixtures::{self, tls};
use unmask::flow::Dir;
use unmask::source::LinkType;

// --- harness smoke: a valid input of each format passes every invariant ---

#[test]
fn wire_harness_accepts_fixture_frames() {
    for frame in harness::fixture_frames().iter().take(40) {
        harness::run_wire(&harness::encode_wire(LinkType::Ethernet, true, 0, frame));
        harness::run_wire(&harness::encode_wire(
            LinkType::RawIp,
            true,
            3,
            &frame[14..],
        ));
    }
}

#[test]
fn stream_harness_checks_against_the_model() {
    let ops = [
        StreamOp::Near {
            offset: 100,
            len: 50,
            fill: 0,
        },
        StreamOp::Near {
            offset: 0,
            len: 120,
            fill: 0,
        },
        StreamOp::Near {
            offset: 140,
            len: 20,
            fill: 0xee,
        },
        StreamOp::SetIsn { offset: 5 },
    ];
    harness::run_stream(&harness::encode_stream(
        300,
        u32::MAX - 60,
        true,
        0x55,
        &ops,
    ));
    harness::run_stream(&harness::encode_stream(300, 7, false, 0, &ops));
}

#[test]
fn tls_harness_feeds_whole_and_chunked() {
    let mut flight = tls::client_hello(&tls::Hello::default());
    flight.extend(tls::client_finish_tls12());
    for seed in [0, 1, 77] {
        harness::run_tls(&harness::encode_tls(
            Dir::ToServer,
            None,
            None,
            seed,
            &flight,
        ));
        harness::run_tls(&harness::encode_tls(
            Dir::ToServer,
            None,
            Some(0),
            seed,
            &flight,
        ));
    }
    let server = tls::server_flight_tls12(0xc02f, None, &[fixtures::CERT_WWW_EXAMPLE_COM]);
    harness::run_tls(&harness::encode_tls(Dir::ToClient, None, None, 3, &server));
}

#[test]
fn http_harness_runs_every_probe() {
    harness::run_http(b"GET / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\n\r\nabc");
    harness::run_http(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n");
    harness::run_http(b"SSH-2.0-OpenSSH_9.6\r\n");
    harness::run_http(b"");
}

#[test]
fn cert_harness_matches_names() {
    harness::run_cert(&harness::encode_cert(
        "www.example.com",
        fixtures::CERT_WWW_EXAMPLE_COM,
    ));
    harness::run_cert(&harness::encode_cert("a.b.c,*.b.c,*.c", &[]));
}

#[test]
fn engine_harness_replays_fixture_frames() {
    let n = harness::fixture_frames().len();
    let records: Vec<EngineRecord> = (0..n as u16)
        .map(|index| EngineRecord::Fixture {
            index,
            patches: Vec::new(),
        })
        .collect();
    let header = harness::encode_engine_header(64, false, 8, 8);
    let counters = harness::run_engine(&harness::encode_engine(&header, &records));
    assert_eq!(counters.packets, n as u64);
    assert!(counters.tcp == n as u64 && counters.findings.iter().sum::<u64>() > 0);
}
