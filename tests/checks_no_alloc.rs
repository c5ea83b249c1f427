//! The protocol/port, HTTP, HTTP body, ECH and asymmetry checks judge events without touching
//! the heap, also when they raise findings with full evidence.

mod common;

use unmask::capture::Timestamp;
use unmask::config::Config;
use unmask::detect::{Detector, Event, Findings, FlowView};
use unmask::fixtures::{self, CHROME_UA};
use unmask::flow::Dir;
use unmask::inspect::{RecordTrail, ServerTally};
use unmask::proto::entropy::PayloadFigures;
use unmask::proto::http::{parse_request, parse_response};
use unmask::proto::{AppProto, DirIdent, Probe};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

fn view(port: u16, ts: Probe, tc: Probe, bytes: [u64; 2]) -> FlowView<'static> {
    let ident = |probe| DirIdent {
        probe,
        ..DirIdent::default()
    };
    FlowView {
        client_addr: [10, 0, 0, 1].into(),
        server_addr: [10, 0, 0, 2].into(),
        client_port: 50000,
        server_port: port,
        ident: [ident(ts), ident(tc)],
        tls: None,
        trail: None,
        http: None,
        pkts: [5000, 100],
        bytes,
        seen_from_start: [true; 2],
        first_ts: Timestamp(0),
        now: Timestamp(0),
    }
}

#[test]
fn checks_raise_findings_without_allocating() {
    let _turn = common::alloc::measuring();
    let mut config = Config::default();
    // Low enough that a response's single anomaly is reported too.
    config.detect.http.anomaly_threshold = 5;
    let detector = Detector::new(&config.detect);
    let noise = fixtures::noise(1400, 9);
    let forged = format!(
        "GET  /x?t=q8Vz1PkT0mXwH3aJr7LbYe5NcGu2Fs9D HTTP/1.0\nuser-agent: {CHROME_UA}\nhost: 1.2.3.4\nhOsT: 1.2.3.5\ncookie: kwsKXp7X9FsL2QmZ0cVbRy8uHt4nJe1PqAiWd6Gz3oYk\n\n"
    );
    let request = parse_request(forged.as_bytes()).unwrap();
    let missing = parse_request(b"GET / HTTP/1.1\r\n\r\n").unwrap();
    let response = parse_response(b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n").unwrap();
    let m = |p, c| Probe::Match(p, c);
    let figures = PayloadFigures::of(&noise);
    let mut trail = RecordTrail::default();
    for (d, len) in [(0u8, 292u16), (1, 1307), (0, 93), (1, 120)] {
        trail.records[usize::from(trail.len)] = (d, len);
        trail.len += 1;
    }
    let mut tunnel = view(443, m(AppProto::Tls, 98), m(AppProto::Tls, 98), [600, 600]);
    tunnel.trail = Some(&trail);
    let cases: Vec<(FlowView, Event)> = vec![
        (
            view(8388, Probe::NoMatch, Probe::NeedMore, [600, 0]),
            Event::OpaqueFirstPayload {
                figures: &figures,
                server: ServerTally {
                    judged: 3,
                    fully_encrypted: 3,
                },
            },
        ),
        (tunnel, Event::TrailRecord { dir: Dir::ToClient }),
        (
            view(443, Probe::NoMatch, Probe::NeedMore, [600, 0]),
            Event::Identified {
                dir: Dir::ToServer,
                data: &noise,
            },
        ),
        (
            view(80, Probe::NoMatch, Probe::NeedMore, [600, 0]),
            Event::Identified {
                dir: Dir::ToServer,
                data: &noise,
            },
        ),
        (
            view(22, m(AppProto::Http, 95), m(AppProto::Ssh, 97), [600, 600]),
            Event::Identified {
                dir: Dir::ToClient,
                data: b"SSH-2.0-OpenSSH_9.2\r\n",
            },
        ),
        (
            view(80, m(AppProto::Http, 95), Probe::NeedMore, [600, 0]),
            Event::HttpRequest(&request),
        ),
        (
            view(80, m(AppProto::Http, 95), Probe::NeedMore, [600, 0]),
            Event::HttpRequest(&missing),
        ),
        (
            view(80, m(AppProto::Http, 95), m(AppProto::Http, 95), [600, 600]),
            Event::HttpResponse(&response),
        ),
        (
            view(80, m(AppProto::Http, 95), Probe::NoMatch, [600, 600]),
            Event::HttpResponseNotHttp { data: &noise[..64] },
        ),
        (
            view(
                443,
                m(AppProto::Tls, 98),
                m(AppProto::Tls, 98),
                [8_000_000, 90_000],
            ),
            Event::Periodic,
        ),
        (
            view(
                443,
                m(AppProto::Tls, 98),
                m(AppProto::Tls, 98),
                [8_000_000, 90_000],
            ),
            Event::FlowEnd,
        ),
    ];
    let mut out = Findings::default();
    let mut raised = 0;
    for (i, (v, e)) in cases.iter().enumerate() {
        out.clear();
        let before = common::alloc::allocations();
        detector.on_event(v, e, &mut out);
        let after = common::alloc::allocations();
        assert_eq!(after - before, 0, "case {i} allocated");
        assert!(!out.is_empty(), "case {i} raised nothing");
        raised += out.len();
    }
    assert!(raised >= cases.len());
}

/// The ECH check on a library-shaped hello with ESNI beside a cleartext name and an ECH
/// extension, and on a certificate that does not cover that (public) name.
#[test]
fn ech_check_raises_findings_without_allocating() {
    let _turn = common::alloc::measuring();
    use unmask::inspect::TlsFacts;
    use unmask::proto::tls::{ClientHello, TlsDir, TlsEvent, TlsScratch};
    use unmask::proto::x509::CertInfo;

    let detector = Detector::new(&Config::default().detect);
    let ech = fixtures::tls::ech_outer(9, 200);
    let esni = fixtures::tls::esni(64);
    let record = fixtures::tls::client_hello(&fixtures::tls::Hello {
        sni: Some("front.example.org"),
        extra: &[(0xfe0d, &ech), (0xffce, &esni)],
        ..fixtures::tls::Hello::default()
    });
    let mut facts = TlsFacts::default();
    let mut hello: Option<ClientHello> = None;
    TlsDir::new(Dir::ToServer).feed(&record, &mut TlsScratch::new(1 << 16), |ev| {
        facts.summary.observe(Dir::ToServer, &ev);
        if let TlsEvent::ClientHello(ch) = ev {
            hello = Some(*ch);
        }
    });
    let hello = hello.expect("a hello");
    let cert =
        CertInfo::from_der_for_host(fixtures::CERT_WWW_EXAMPLE_COM, Some("front.example.org"))
            .expect("fixture certificate");
    let mut v = view(
        443,
        Probe::Match(AppProto::Tls, 98),
        Probe::Match(AppProto::Tls, 98),
        [600, 600],
    );
    v.tls = Some(&facts);
    let mut out = Findings::default();
    for (event, want) in [
        (Event::TlsClientHello(&hello), 2),
        (Event::TlsLeafCertificate(&cert), 2),
    ] {
        out.clear();
        let before = common::alloc::allocations();
        detector.on_event(&v, &event, &mut out);
        assert_eq!(
            common::alloc::allocations() - before,
            0,
            "{event:?} allocated"
        );
        assert!(out.len() >= want, "{event:?}: {} findings", out.len());
    }
}

/// Inspection of an HTTP exchange whose response body (chunked, its size line in a segment of
/// its own) is a program served as an image: parsing the heads, finding the body start and
/// judging its first bytes, findings included, touch no heap.
#[test]
fn response_bodies_are_inspected_and_judged_without_allocating() {
    let _turn = common::alloc::measuring();
    use unmask::inspect::{
        FlowBase, FlowView as View, InspectConfig, InspectState, Report, TlsFacts,
    };
    use unmask::proto::tls::TlsScratch;

    struct Judge<'a> {
        detector: &'a Detector,
        out: Findings,
        kinds: Vec<&'static str>,
    }
    impl Report for Judge<'_> {
        fn event(&mut self, view: &View<'_>, event: &Event<'_>) {
            self.out.clear();
            self.detector.on_event(view, event, &mut self.out);
            for f in self.out.iter() {
                // Capacity reserved up front: pushing stays off the heap.
                if self.kinds.len() < self.kinds.capacity() {
                    self.kinds.push(f.kind.name());
                }
            }
        }
        fn tls_record(&mut self, _facts: &TlsFacts) {}
    }

    let detector = Detector::new(&Config::default().detect);
    let mut judge = Judge {
        detector: &detector,
        out: Findings::default(),
        kinds: Vec::with_capacity(16),
    };
    let request = b"GET /logo.png HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
    let mut program = vec![0u8; 1500];
    program[..2].copy_from_slice(b"MZ");
    program[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    program[0x80..0x84].copy_from_slice(b"PE\0\0");
    let head = b"HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nTransfer-Encoding: chunked\r\n\r\n";
    let size_line = format!("{:x}\r\n", program.len()).into_bytes();
    let segments: [(usize, &[u8]); 4] = [(0, request), (1, head), (1, &size_line), (1, &program)];

    let mut state = Box::new(InspectState::new([Some(1000), Some(5000)]));
    let mut windows = [vec![0u8; 16384], vec![0u8; 16384]];
    let mut scratch = TlsScratch::new(1 << 16);
    let base = FlowBase {
        client_addr: [10, 0, 0, 1].into(),
        server_addr: [10, 0, 0, 2].into(),
        client_port: 50000,
        server_port: 80,
        pkts: [4, 4],
        bytes: [600, 2000],
        seen_from_start: [true; 2],
        first_ts: Timestamp(0),
    };
    let cfg = InspectConfig {
        unknown_after: 64,
        trail_records: 0,
    };
    let mut seq = [1001u32, 5001u32];
    let before = common::alloc::allocations();
    for (d, data) in segments {
        let [w0, w1] = &mut windows;
        let (mine, other) = if d == 0 { (w0, w1) } else { (w1, w0) };
        state.stream[d].insert(mine, seq[d], data);
        seq[d] = seq[d].wrapping_add(data.len() as u32);
        let dir = if d == 0 { Dir::ToServer } else { Dir::ToClient };
        state.advance(
            dir,
            mine,
            other,
            &base,
            Timestamp(0),
            &cfg,
            &mut scratch,
            &mut judge,
        );
    }
    let after = common::alloc::allocations();
    assert_eq!(after - before, 0, "inspection allocated");
    assert_eq!(judge.kinds, ["http_body_type_mismatch"]);
}
