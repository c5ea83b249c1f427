//! Malformed traffic, as an attacker would send it at the appliance: broken IP and TCP header
//! lengths, bogus TCP options, overlapping segments with conflicting data, TLS records and
//! handshake messages claiming far more than they carry (up to 16 MiB), and certificates with
//! broken DER. Each case is counted under its own reason (exactly once), none panics, the
//! flows around them are still judged, and the cases that are findings raise them.

mod common;

use std::net::SocketAddr;

use common::run_engine;
use unmask::capture::Timestamp;
use unmask::config::Config;
use unmask::detect::FindingKind;
use unmask::fixtures::{self, fake_tls, tls, Conversation, Flags, TimedFrame, FIXTURE_EPOCH};
use unmask::proto::tls::TlsAnomaly;
use unmask::wire::Malformed;

fn addr(s: &str) -> SocketAddr {
    s.parse().expect("address")
}

fn at(ms: u64) -> Timestamp {
    FIXTURE_EPOCH.add_nanos(ms * 1_000_000)
}

/// A bare 54-byte SYN, mutated by `edit` (offsets: IPv4 header at 14, TCP at 34).
fn broken_syn(port: u16, edit: impl FnOnce(&mut Vec<u8>)) -> Vec<u8> {
    let mut f = fixtures::tcp_frame(
        addr(&format!("10.66.0.1:{port}")),
        addr("10.66.0.2:80"),
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        1000,
        0,
        Flags::SYN,
        &[],
    );
    edit(&mut f);
    f
}

/// The header-level cases, each with the reason it must be counted under.
fn header_cases() -> Vec<(&'static str, Vec<u8>, Malformed)> {
    vec![
        (
            "IPv4 IHL 3 (12-byte header)",
            broken_syn(40001, |f| f[14] = 0x43),
            Malformed::BadIpv4Header,
        ),
        (
            "IPv4 total length 1500 in a 54-byte frame",
            broken_syn(40002, |f| f[16..18].copy_from_slice(&1500u16.to_be_bytes())),
            Malformed::BadIpv4Length,
        ),
        (
            "IPv4 total length 10, below its own header",
            broken_syn(40003, |f| f[16..18].copy_from_slice(&10u16.to_be_bytes())),
            Malformed::BadIpv4Length,
        ),
        (
            "TCP data offset 3 (12-byte header)",
            broken_syn(40004, |f| f[46] = 0x30),
            Malformed::BadTcpHeader,
        ),
        (
            "TCP data offset 15 (60 bytes) in a 20-byte segment",
            broken_syn(40005, |f| f[46] = 0xf0),
            Malformed::BadTcpHeader,
        ),
        (
            "IPv6 version nibble behind an IPv4 EtherType",
            broken_syn(40006, |f| f[14] = 0x65),
            Malformed::BadIpVersion,
        ),
        (
            "frame cut inside the Ethernet header",
            broken_syn(40007, |f| f.truncate(10)),
            Malformed::TruncatedLink,
        ),
        (
            "IPv4 header cut after 8 bytes",
            broken_syn(40008, |f| f.truncate(22)),
            Malformed::BadIpv4Header,
        ),
    ]
}

/// A SYN whose options area is garbage: an MSS option of length 0, then a timestamp option
/// claiming 40 bytes. Still a SYN: tracked, with the options counted as bad.
fn syn_with_bogus_options() -> Vec<u8> {
    let mut f = broken_syn(40010, |_| {});
    // Grow the TCP header to 28 bytes (data offset 7) with 8 option bytes.
    f.extend_from_slice(&[2, 0, 0, 0, 8, 40, 0, 0]);
    f[46] = 0x70;
    let total = (f.len() - 14) as u16;
    f[16..18].copy_from_slice(&total.to_be_bytes());
    f
}

fn ms(n: u64) -> u64 {
    n * 1_000_000
}

/// Conflicting retransmission: the client's request, then a segment over its first bytes
/// carrying other data.
fn conflicting_overlap() -> Vec<TimedFrame> {
    Conversation::new(addr("10.66.0.1:40020"), addr("10.66.0.2:80"), at(100))
        .step(ms(1))
        .handshake()
        .raw_data(true, 0, b"GET /index.html HTTP/1.1\r\nHost: lab\r\n\r\n")
        .raw_data(true, 4, b"/evil.html")
        .skip(true, 39)
        .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
        .close()
        .into_frames()
}

/// A TLS record header announcing 65535 bytes (far beyond 2^14 + 2048) on 443.
fn oversized_record() -> Vec<TimedFrame> {
    let mut hello = vec![0x16, 0x03, 0x01, 0xff, 0xff];
    hello.extend_from_slice(&[0x01, 0x00, 0x00, 0x40, 0x03, 0x03]);
    hello.extend_from_slice(&[0x11; 64]);
    Conversation::new(addr("10.66.0.1:40030"), addr("10.66.0.2:443"), at(200))
        .handshake()
        .client(&hello)
        .close()
        .into_frames()
}

/// A well-formed record carrying a ClientHello whose handshake header claims 16 MiB - 1.
fn handshake_claiming_16_mib() -> Vec<TimedFrame> {
    let mut body = vec![0x01, 0xff, 0xff, 0xff, 0x03, 0x03];
    body.extend_from_slice(&[0x22; 200]);
    let record = tls::record(22, 0x0301, &body);
    Conversation::new(addr("10.66.0.1:40040"), addr("10.66.0.2:443"), at(300))
        .handshake()
        .client(&record)
        .client(&tls::app_data(3000))
        .close()
        .into_frames()
}

/// A TLS 1.2 handshake whose server certificate is `der`.
fn with_certificate(port: u16, der: &[u8], ms_at: u64) -> Vec<TimedFrame> {
    let hello = tls::client_hello(&tls::Hello::default());
    Conversation::new(
        addr(&format!("10.66.0.1:{port}")),
        addr("10.66.0.2:443"),
        at(ms_at),
    )
    .handshake()
    .client(&hello)
    .server(&fake_tls::server_flight_with_raw_cert(der))
    .client(&tls::client_finish_tls12())
    .server(&tls::server_finish_tls12())
    .client(&tls::app_data(600))
    .server(&tls::app_data(4000))
    .close()
    .into_frames()
}

#[test]
fn every_malformation_is_counted_under_its_reason_and_judged() {
    let mut frames: Vec<TimedFrame> = Vec::new();
    let cases = header_cases();
    for (i, (_, f, _)) in cases.iter().enumerate() {
        frames.push((at(i as u64), f.clone()));
    }
    frames.push((at(20), syn_with_bogus_options()));
    let good = fixtures::CERT_WWW_EXAMPLE_COM;
    let mut streams = vec![
        conflicting_overlap(),
        oversized_record(),
        handshake_claiming_16_mib(),
        // DER cut inside its content, and cut inside its first header.
        with_certificate(40050, &good[..good.len() / 2], 400),
        with_certificate(40051, &good[..3], 500),
        // A control: the intact certificate, judged clean of certificate findings.
        with_certificate(40052, good, 600),
    ];
    streams.insert(0, frames);
    let frames = fixtures::interleave(streams);

    let run = run_engine(&Config::default(), frames);
    let c = &run.counters;

    let mut want = [0u64; Malformed::COUNT];
    for (_, _, reason) in &cases {
        want[reason.index()] += 1;
    }
    for (i, name) in Malformed::NAMES.iter().enumerate() {
        assert_eq!(c.malformed[i], want[i], "malformed {name}");
    }
    assert_eq!(c.bad_tcp_options, 1, "bogus TCP options");
    assert_eq!(c.stream_conflicting_overlaps, 1, "conflicting overlap");
    let overlap: Vec<_> = run
        .of_type("anomaly")
        .filter(|a| a["anomaly"]["event"] == "stream.reassembly_overlap_different_data")
        .collect();
    assert_eq!(overlap.len(), 1, "one anomaly record for the overlap");
    assert_eq!(overlap[0]["src_port"], 40020);
    // First copy wins: the request inspected is the original one.
    let http: Vec<_> = run
        .of_type("flow")
        .filter(|f| f["src_port"] == 40020)
        .collect();
    assert_eq!(http.len(), 1);
    assert_eq!(http[0]["app_proto"], "http", "{}", http[0]);

    assert!(c.tls_anomalies.0[TlsAnomaly::RecordTooLong.kind_index()] >= 1);
    assert!(c.tls_anomalies.0[TlsAnomaly::HandshakeTooLarge.kind_index()] >= 1);
    let malformed_tls = |port: u16| {
        run.of_type("alert")
            .filter(|a| a["src_port"] == port || a["dest_port"] == port)
            .map(|a| a["unmask"]["finding"].as_str().unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    for port in [40030, 40040] {
        assert!(
            malformed_tls(port).contains(&FindingKind::TlsMalformedHandshake.name().to_string()),
            "port {port}: {:?}",
            malformed_tls(port)
        );
    }
    for port in [40050, 40051] {
        assert!(
            malformed_tls(port).contains(&FindingKind::CertInvalid.name().to_string()),
            "broken DER on {port}: {:?}",
            malformed_tls(port)
        );
    }
    assert!(
        !malformed_tls(40052).contains(&FindingKind::CertInvalid.name().to_string()),
        "intact certificate: {:?}",
        malformed_tls(40052)
    );
    // Every TCP flow that had a valid header ended with a flow record.
    let ended: Vec<u64> = run
        .of_type("flow")
        .filter_map(|f| f["src_port"].as_u64())
        .collect();
    for port in [40010, 40020, 40030, 40040, 40050, 40051, 40052] {
        assert!(ended.contains(&port), "flow record for {port}: {ended:?}");
    }
    for port in 40001..=40008 {
        assert!(!ended.contains(&port), "malformed frame {port} made a flow");
    }
}
