//! The HTTP, protocol/port and asymmetry checks through the whole engine: each fixture flow
//! raises its finding, and the finding vanishes when its check (or rule) is switched off; real
//! curl and python http.server traffic raises nothing, except a program it serves as a PNG.

mod common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::{run_engine, Run};
use unmask::capture::Action;
use unmask::config::Config;
use unmask::fixtures::{self, Conversation, FixtureFlow};
use unmask::verdict::Mode;

fn flow(name: &str) -> FixtureFlow {
    fixtures::standard_flows()
        .into_iter()
        .find(|f| f.name == name)
        .unwrap_or_else(|| panic!("no fixture flow {name}"))
}

fn run(config: &Config, name: &str) -> (Run, Vec<String>) {
    let f = flow(name);
    let run = run_engine(config, f.frames.clone());
    let found = run.findings_on_port(f.server_port);
    (run, found)
}

fn alert<'a>(run: &'a Run, finding: &str) -> &'a serde_json::Value {
    run.of_type("alert")
        .find(|a| a["unmask"]["finding"] == finding)
        .unwrap_or_else(|| panic!("no {finding} alert"))
}

/// (fixture, finding it must raise, config change that must make it vanish).
type Switch = (&'static str, &'static str, fn(&mut Config));

const SWITCHES: &[Switch] = &[
    ("http_missing_headers", "http_header_signature", |c| {
        c.detect.http.enabled = false
    }),
    ("http_missing_headers", "http_header_signature", |c| {
        c.detect.http.signatures.clear()
    }),
    ("http_on_443", "http_header_signature", |c| {
        c.detect
            .http
            .signatures
            .retain(|s| s.name != "missing-user-agent")
    }),
    ("http_forged_browser", "http_header_anomaly", |c| {
        c.detect.http.enabled = false
    }),
    ("http_forged_browser", "http_header_anomaly", |c| {
        c.detect.http.weights.browser_missing_header = 0
    }),
    ("http_forged_browser", "http_header_anomaly", |c| {
        c.detect.http.anomaly_threshold = 19
    }),
    ("http_reply_not_http", "http_header_anomaly", |c| {
        c.detect.http.weights.response_not_http = 0
    }),
    ("random_on_80", "opaque_on_cleartext_port", |c| {
        c.detect.protocol_port.opaque_on_cleartext_port = false
    }),
    ("random_on_80", "opaque_on_cleartext_port", |c| {
        c.detect.protocol_port.enabled = false
    }),
    ("non_tls_on_443", "non_tls_on_tls_port", |c| {
        c.detect.protocol_port.non_tls_on_tls_port = false
    }),
    ("non_tls_on_443", "non_tls_on_tls_port", |c| {
        c.detect.protocol_port.min_confidence = 96
    }),
    ("http_to_ssh_server", "protocol_direction_mismatch", |c| {
        c.detect.protocol_port.direction_mismatch = false
    }),
    ("http_to_ssh_server", "http_header_anomaly", |c| {
        c.detect.http.enabled = false
    }),
    ("upload_heavy", "asymmetric_flow", |c| {
        c.detect.asymmetry.enabled = false
    }),
    ("upload_heavy", "asymmetric_flow", |c| {
        c.detect.asymmetry.ratio = 40
    }),
    ("upload_heavy", "asymmetric_flow", |c| {
        c.detect.asymmetry.min_bytes = 4_000_000
    }),
];

/// The default config with upload-heavy flows alerted (by default they are only recorded in
/// the flow record: every honest upload is one).
fn uploads_alerted() -> Config {
    let mut c = Config::default();
    c.detect
        .alert_min_confidence
        .0
        .insert("asymmetric_flow".into(), 0);
    c
}

#[test]
fn each_finding_vanishes_when_its_check_or_rule_is_off() {
    for (name, finding, off) in SWITCHES {
        let (_, on) = run(&uploads_alerted(), name);
        assert!(
            on.iter().any(|f| f == finding),
            "{name}: {finding} in {on:?}"
        );
        let mut c = uploads_alerted();
        off(&mut c);
        let (_, without) = run(&c, name);
        assert!(
            !without.iter().any(|f| f == finding),
            "{name}: {finding} still raised: {without:?}"
        );
        // Only that finding goes: the rest of the flow's verdict is untouched.
        let mut rest: Vec<_> = on.iter().filter(|f| *f != finding).collect();
        let mut others: Vec<_> = without.iter().collect();
        rest.sort();
        others.sort();
        if !matches!(
            (*name, *finding),
            ("random_on_80", _) | ("http_to_ssh_server", "http_header_anomaly")
        ) {
            assert_eq!(rest, others, "{name} with {finding} off");
        }
    }
}

#[test]
fn evidence_names_the_reasons() {
    let c = Config::default();
    let (r, _) = run(&c, "http_missing_headers");
    let a = alert(&r, "http_header_signature");
    assert_eq!(
        a["unmask"]["evidence"]["signatures"],
        "missing-user-agent, missing-host"
    );
    assert_eq!(
        a["alert"]["metadata"]["det0470_tunable"][0],
        "HeaderSignatureMatch"
    );
    assert_eq!(a["direction"], "to_server");

    let (r, _) = run(&c, "http_forged_browser");
    let a = alert(&r, "http_header_anomaly");
    let ev = &a["unmask"]["evidence"];
    assert_eq!(ev["score"], "18 (threshold 10)");
    assert_eq!(
        ev["browser_missing_headers"],
        "weight 12: missing Accept, Accept-Encoding, Accept-Language"
    );
    assert_eq!(ev["browser_lowercase_names"], "weight 6");
    assert_eq!(
        a["alert"]["metadata"]["det0470_tunable"][0],
        "HeaderAnomalyScore"
    );
    assert_eq!(a["unmask"]["confidence"], 90);

    let (r, _) = run(&c, "http_reply_not_http");
    let a = alert(&r, "http_header_anomaly");
    assert_eq!(a["direction"], "to_client");
    assert!(a["unmask"]["evidence"]["response_not_http"]
        .as_str()
        .unwrap()
        .starts_with("weight 10: dGFzazpz"));

    let (r, _) = run(&c, "non_tls_on_443");
    let ev = &alert(&r, "non_tls_on_tls_port")["unmask"]["evidence"];
    assert_eq!(ev["looks_like"], "encrypted_or_compressed");
    assert_eq!(ev["port_reserved_for"], "tls");

    let (r, _) = run(&c, "http_to_ssh_server");
    let ev = &alert(&r, "protocol_direction_mismatch")["unmask"]["evidence"];
    assert_eq!(ev["to_server"], "http (95)");
    assert_eq!(ev["to_client"], "ssh (97)");
    // Suricata's anomaly record for the same observation still comes out.
    assert!(r
        .of_type("anomaly")
        .any(|a| a["anomaly"]["event"] == "applayer_mismatch_protocol_both_directions"));
}

#[test]
fn asymmetry_is_judged_periodically_and_at_the_end_once() {
    // By default an upload-heavy flow is recorded, not alerted: its flow record names it.
    let (r, found) = run(&Config::default(), "upload_heavy");
    assert!(found.is_empty(), "{found:?}");
    let rec = r.of_type("flow").next().unwrap();
    assert_eq!(rec["flow"]["alerted"], false);
    assert_eq!(
        rec["unmask"]["recorded_findings"],
        serde_json::json!(["asymmetric_flow"])
    );

    let c = uploads_alerted();
    let (r, found) = run(&c, "upload_heavy");
    assert_eq!(found, vec!["asymmetric_flow".to_string()]);
    assert_eq!(r.of_type("alert").count(), 1, "raised once per flow");
    let a = alert(&r, "asymmetric_flow");
    // 3 MB in 1460-byte segments is over 4096 packets: the periodic look sees it first.
    assert_eq!(a["unmask"]["evidence"]["judged_at"], "periodic");
    assert_eq!(a["alert"]["severity"], 3);
    let ratio: u64 = a["unmask"]["evidence"]["ratio"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (20..40).contains(&ratio),
        "ACKs keep a pure upload near 28:1, got {ratio}"
    );
    let rec = r.of_type("flow").next().unwrap();
    assert_eq!(rec["flow"]["alerted"], true);

    // A shorter upload ends before any periodic look: judged at the end.
    let conv = fixtures::upload_heavy(
        "10.77.0.1:41013".parse().unwrap(),
        "10.77.0.2:443".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
        1_500_000,
        300,
    );
    let r = run_engine(&c, conv.into_frames());
    let a = alert(&r, "asymmetric_flow");
    assert_eq!(a["unmask"]["evidence"]["judged_at"], "flow_end");

    // The same bytes the other way are a download: nothing.
    let conv = fixtures::upload_heavy(
        "10.77.0.1:41014".parse().unwrap(),
        "10.77.0.2:443".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
        300,
        1_500_000,
    );
    assert!(run_engine(&c, conv.into_frames())
        .of_type("alert")
        .next()
        .is_none());
}

#[test]
fn block_mode_cuts_impersonations_but_not_uploads() {
    let mut c = uploads_alerted();
    c.verdict.mode = Mode::Block;
    let (r, _) = run(&c, "upload_heavy");
    assert!(r.actions.iter().all(|a| *a == Action::Forward));
    assert_eq!(alert(&r, "asymmetric_flow")["alert"]["action"], "allowed");

    // The forged request is dropped from its own first segment on.
    let f = flow("http_forged_browser");
    let r = run_engine(&c, f.frames.clone());
    let first = r.actions.iter().position(|a| *a == Action::Drop).unwrap();
    let request_frame = f
        .frames
        .iter()
        .position(|(_, fr)| fr.windows(9).any(|w| w == b"GET /news"))
        .unwrap();
    assert_eq!(first, request_frame);

    // The missing-user-agent pattern alone alerts without blocking.
    let conv = Conversation::new(
        "10.77.0.1:41020".parse().unwrap(),
        "10.77.0.2:80".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
    )
    .handshake()
    .client(b"GET /status HTTP/1.1\r\nHost: device.lan\r\nAccept: */*\r\n\r\n")
    .server(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    .close();
    let r = run_engine(&c, conv.into_frames());
    assert_eq!(
        r.findings_on_port(80),
        vec!["http_header_signature".to_string()]
    );
    assert!(r.actions.iter().all(|a| *a == Action::Forward));
}

#[test]
fn mid_stream_pickups_are_not_judged_unidentified() {
    // The same random bytes as non_tls_on_443, but the capture starts after the handshake.
    let f = flow("non_tls_on_443");
    let after_handshake: Vec<_> = f.frames[3..].to_vec();
    let r = run_engine(&Config::default(), after_handshake);
    assert!(
        r.findings_on_port(443).is_empty(),
        "{:?}",
        r.findings_on_port(443)
    );
}

// --- Real clients and servers ----------------------------------------------------------------

/// A python http.server on loopback, killed on drop.
struct PyServer {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl PyServer {
    fn start() -> PyServer {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("index.html"),
            "<html><body>hello</body></html>\n",
        )
        .unwrap();
        std::fs::write(dir.path().join("data.bin"), fixtures::noise(20_000, 3)).unwrap();
        // http.server guesses image/png from the name.
        std::fs::write(dir.path().join("x.png"), pe_image(4096)).unwrap();
        std::fs::write(dir.path().join("real.png"), png_image(300)).unwrap();
        let mut child = Command::new("python3")
            .args(["-u", "-m", "http.server", "0", "--bind", "127.0.0.1"])
            .current_dir(dir.path())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 is needed for this test (scripts/deps.sh)");
        // "Serving HTTP on 127.0.0.1 port 40123 (http://127.0.0.1:40123/) ..."
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port = line
            .split_whitespace()
            .skip_while(|w| *w != "port")
            .nth(1)
            .and_then(|p| p.parse().ok())
            .unwrap_or_else(|| panic!("unexpected http.server banner {line:?}"));
        PyServer {
            child,
            port,
            _dir: dir,
        }
    }
}

impl Drop for PyServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Relays one connection from curl to the server and returns what each side sent: the real
/// bytes of both programs, framed afterwards as a capture would see them.
fn relay_once(server_port: u16, curl_args: &[&str]) -> (Vec<u8>, Vec<u8>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let relay_addr: SocketAddr = listener.local_addr().unwrap();
    let url = format!("http://{relay_addr}/");
    let mut curl = Command::new("curl");
    curl.args(["-s", "-o", "/dev/null", "--max-time", "10"]);
    for a in curl_args {
        curl.arg(a.replace("URL/", &url));
    }
    let mut curl = curl
        .spawn()
        .expect("curl is needed for this test (scripts/deps.sh)");
    let (mut client, _) = listener.accept().unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut server = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    server
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    // curl sends its whole request (no body for these) and waits; http.server answers and
    // closes (HTTP/1.0).
    let mut request = Vec::new();
    let mut buf = [0u8; 4096];
    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
        let n = client.read(&mut buf).unwrap();
        assert!(n > 0, "curl closed before finishing its request");
        request.extend_from_slice(&buf[..n]);
    }
    server.write_all(&request).unwrap();
    let mut response = Vec::new();
    server.read_to_end(&mut response).unwrap();
    client.write_all(&response).unwrap();
    let _ = client.shutdown(Shutdown::Write);
    let status = curl.wait().unwrap();
    assert!(status.success(), "curl {curl_args:?}: {status}");
    (request, response)
}

#[test]
fn real_curl_and_python_http_server_raise_nothing() {
    let py = PyServer::start();
    let exchanges = [
        relay_once(py.port, &["URL/"]),
        relay_once(py.port, &["URL/index.html"]),
        relay_once(py.port, &["URL/data.bin"]),
        relay_once(py.port, &["URL/missing"]),
        relay_once(py.port, &["-I", "URL/index.html"]),
        relay_once(py.port, &["-H", "Accept-Language: de", "URL/?q=1"]),
    ];
    for (i, (request, response)) in exchanges.iter().enumerate() {
        assert!(request.starts_with(b"GET ") || request.starts_with(b"HEAD "));
        assert!(
            response.starts_with(b"HTTP/1.0 "),
            "python answers HTTP/1.0"
        );
        for server_port in [80u16, 8000] {
            let conv = Conversation::new(
                format!("10.77.0.1:{}", 42000 + i).parse().unwrap(),
                format!("10.77.0.2:{server_port}").parse().unwrap(),
                fixtures::FIXTURE_EPOCH,
            )
            .handshake()
            .client(request)
            .server(response)
            .close();
            let r = run_engine(&Config::default(), conv.into_frames());
            let rec = r.of_type("flow").next().unwrap();
            assert_eq!(rec["app_proto"], "http");
            assert_eq!(
                r.of_type("alert").count(),
                0,
                "request {:?}: {:?}",
                String::from_utf8_lossy(request),
                r.of_type("alert").collect::<Vec<_>>()
            );
        }
    }
}

/// python http.server serves a PE program named x.png as image/png; curl fetches it. The real
/// bytes of both, replayed, raise http_body_type_mismatch at 95 (and block in block mode); a
/// real PNG and a HEAD for the program raise nothing.
#[test]
fn real_python_http_server_serving_a_program_as_png_is_flagged() {
    let py = PyServer::start();
    let judge = |args: &[&str], mode: Mode| {
        let (request, response) = relay_once(py.port, args);
        let conv = Conversation::new(
            "10.77.0.1:42100".parse().unwrap(),
            "10.77.0.2:80".parse().unwrap(),
            fixtures::FIXTURE_EPOCH,
        )
        .handshake()
        .client(&request)
        .server(&response)
        .close();
        let mut config = Config::default();
        config.verdict.mode = mode;
        (response, run_engine(&config, conv.into_frames()))
    };
    let (response, r) = judge(&["URL/x.png"], Mode::Monitor);
    let text = String::from_utf8_lossy(&response);
    assert!(text.contains("Content-type: image/png"), "{text:.300}");
    assert_eq!(r.findings_on_port(80), ["http_body_type_mismatch"]);
    let a = alert(&r, "http_body_type_mismatch");
    assert_eq!(a["unmask"]["confidence"], 95);
    let ev = &a["unmask"]["evidence"];
    assert_eq!(ev["content_type"], "image/png");
    assert_eq!(ev["body_magic"], "pe");
    assert_eq!(ev["content_length"], "4096");
    assert!(ev["first_bytes"].as_str().unwrap().starts_with("4d5a"));
    let (_, r) = judge(&["URL/x.png"], Mode::Block);
    assert_eq!(r.counters.flows_blocked, 1);
    let (_, r) = judge(&["URL/real.png"], Mode::Monitor);
    assert_eq!(r.of_type("alert").count(), 0);
    let (_, r) = judge(&["-I", "URL/x.png"], Mode::Monitor);
    assert_eq!(r.of_type("alert").count(), 0);
}

// --- Response bodies against their Content-Type ---------------------------------------------

/// A PE image of `len` bytes: "MZ", e_lfanew 0x80, "PE\0\0" there, the DOS stub's message.
fn pe_image(len: usize) -> Vec<u8> {
    let mut b = vec![0u8; len.max(0x100)];
    b[..2].copy_from_slice(b"MZ");
    b[0x3c..0x40].copy_from_slice(&0x80u32.to_le_bytes());
    b[0x4e..0x4e + 38].copy_from_slice(b"This program cannot be run in DOS mode");
    b[0x80..0x84].copy_from_slice(b"PE\0\0");
    b
}

/// A PNG signature and IHDR chunk, padded with noise to `len` bytes.
fn png_image(len: usize) -> Vec<u8> {
    let mut b = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR\0\0\0\x10\0\0\0\x10\x08\x06\0\0\0".to_vec();
    b.extend(fixtures::noise(len.saturating_sub(b.len()), 5));
    b
}

/// One GET answered by `head` and then `body`, in separate segments as servers write them.
fn body_flow(port: u16, request: &str, head: &str, body: &[&[u8]]) -> Vec<fixtures::TimedFrame> {
    let mut c = Conversation::new(
        format!("10.77.0.1:{port}").parse().unwrap(),
        "10.77.0.2:80".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
    )
    .handshake()
    .client(request.as_bytes())
    .server(head.as_bytes());
    for part in body {
        c = c.server(part);
    }
    c.close().into_frames()
}

const GET: &str =
    "GET /x HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";

fn body_findings(request: &str, head: &str, body: &[&[u8]]) -> (Run, Vec<String>) {
    let r = run_engine(&Config::default(), body_flow(42200, request, head, body));
    let found = r.findings_on_port(80);
    (r, found)
}

/// (Content-Type, body, the signature and confidence the finding must carry, if any).
type BodyCase<'a> = (&'a str, &'a [u8], Option<(&'a str, u64)>);

#[test]
fn bodies_that_contradict_their_type() {
    let exe = pe_image(2000);
    let elf = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0\x02\0\x3e\0".to_vec();
    let zip = b"PK\x03\x04\x14\0\0\0\x08\0filler bytes of the archive".to_vec();
    let gz = b"\x1f\x8b\x08\0\0\0\0\0\0\x03compressed bytes follow".to_vec();
    let ps = b"$ErrorActionPreference = 'SilentlyContinue'; IEX $stage".to_vec();
    let cases: &[BodyCase] = &[
        // An executable behind an image type: the highest confidence.
        ("image/png", &exe, Some(("pe", 95))),
        ("font/woff2", &elf, Some(("elf", 95))),
        ("application/json", &exe, Some(("pe", 90))),
        ("text/plain", &elf, Some(("elf", 80))),
        // Archives: lower, and lowest under text/plain.
        ("video/mp4", &zip, Some(("zip", 80))),
        ("text/css", &zip, Some(("zip", 70))),
        ("text/plain", &zip, Some(("zip", 50))),
        // gzip without a Content-Encoding is an archive like any other.
        ("text/html", &gz, Some(("gzip", 70))),
        ("image/gif", &ps, Some(("powershell", 85))),
        ("application/json", &ps, Some(("powershell", 70))),
        // Types that promise nothing, and text that may hold a script.
        ("application/octet-stream", &exe, None),
        ("application/zip", &zip, None),
        ("text/html", &ps, None),
    ];
    for (i, (ct, body, want)) in cases.iter().enumerate() {
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {}\r\n\r\n",
            body.len()
        );
        let r = run_engine(
            &Config::default(),
            body_flow(42300 + i as u16, GET, &head, &[body]),
        );
        let alerts: Vec<_> = r
            .of_type("alert")
            .filter(|a| a["unmask"]["finding"] == "http_body_type_mismatch")
            .collect();
        match want {
            Some((magic, confidence)) => {
                assert_eq!(
                    alerts.len(),
                    1,
                    "{ct} {magic}: {:?}",
                    r.findings_on_port(80)
                );
                assert_eq!(
                    alerts[0]["unmask"]["evidence"]["body_magic"], *magic,
                    "{ct}"
                );
                assert_eq!(
                    alerts[0]["unmask"]["confidence"], *confidence,
                    "{ct} {magic}"
                );
                assert_eq!(alerts[0]["unmask"]["evidence"]["content_type"], *ct);
            }
            None => assert!(alerts.is_empty(), "{ct}: {alerts:?}"),
        }
    }
}

#[test]
fn encodings_framings_and_bodiless_answers() {
    let exe = pe_image(3000);
    // Chunked: the magic is after the chunk-size line, and the line may arrive alone.
    let head = "HTTP/1.1 200 OK\r\nContent-Type: image/jpeg\r\nTransfer-Encoding: chunked\r\n\r\n";
    let mut chunk = format!("{:x}\r\n", exe.len()).into_bytes();
    chunk.extend_from_slice(&exe);
    chunk.extend_from_slice(b"\r\n0\r\n\r\n");
    let (line, rest) = chunk.split_at(4);
    let (r, found) = body_findings(GET, head, &[line, rest]);
    assert_eq!(found, ["http_body_type_mismatch"]);
    let ev = &alert(&r, "http_body_type_mismatch")["unmask"]["evidence"];
    assert_eq!(ev["transfer"], "chunked");
    assert_eq!(ev["first_chunk_len"], exe.len().to_string());
    // The body runs to the close and is shorter than the sniff window: judged at the end.
    let head = "HTTP/1.0 200 OK\r\nContent-Type: image/png\r\n\r\n";
    let (_, found) = body_findings(GET, head, &[&exe[..300]]);
    assert_eq!(found, ["http_body_type_mismatch"]);
    // Content-Encoding: the bytes are the encoding's; not judged.
    let gz = b"\x1f\x8b\x08\0\0\0\0\0\0\x03compressed".to_vec();
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Encoding: gzip\r\nContent-Length: {}\r\n\r\n", gz.len());
    assert!(body_findings(GET, &head, &[&gz]).1.is_empty());
    let head = format!("HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Encoding: br\r\nContent-Length: {}\r\n\r\n", exe.len());
    assert!(body_findings(GET, &head, &[&exe]).1.is_empty());
    // Partial content and error statuses: not judged.
    for status in ["206 Partial Content", "404 Not Found"] {
        let head = format!(
            "HTTP/1.1 {status}\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
            exe.len()
        );
        assert!(body_findings(GET, &head, &[&exe]).1.is_empty(), "{status}");
    }
    // A HEAD answered with the program's headers, then a pipelined GET whose response body
    // is the program: only the second is judged, and found.
    let pipelined = "HEAD /x HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\nGET /x HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
    let head = format!(
        "HTTP/1.1 200 OK\r\nContent-Type: image/png\r\nContent-Length: {}\r\n\r\n",
        exe.len()
    );
    let (r, found) = body_findings(pipelined, &format!("{head}{head}"), &[&exe]);
    assert_eq!(found, ["http_body_type_mismatch"]);
    assert_eq!(r.of_type("alert").count(), 1);
    // The HEAD alone: nothing, though nothing follows its head.
    let head_only =
        "HEAD /x HTTP/1.1\r\nHost: cdn.example.com\r\nUser-Agent: curl/8.0\r\nAccept: */*\r\n\r\n";
    assert!(body_findings(head_only, &head, &[]).1.is_empty());
    // 304 and 204 carry no body.
    for status in ["304 Not Modified", "204 No Content"] {
        let head = format!("HTTP/1.1 {status}\r\nContent-Type: image/png\r\n\r\n");
        assert!(body_findings(GET, &head, &[]).1.is_empty(), "{status}");
    }
}

#[test]
fn images_with_and_without_an_image_signature() {
    let png = png_image(500);
    let head = |ct: &str, n: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {n}\r\n\r\n")
    };
    assert!(body_findings(GET, &head("image/png", png.len()), &[&png])
        .1
        .is_empty());
    // A JPEG under image/png is a mislabel, not a disguise.
    let jpeg = b"\xff\xd8\xff\xe0\0\x10JFIF\0\x01\x01\0\0\x01\0\x01\0\0".to_vec();
    assert!(body_findings(GET, &head("image/png", jpeg.len()), &[&jpeg])
        .1
        .is_empty());
    // Noise under image/gif: the low-confidence reverse rule, alert only.
    let noise = fixtures::noise(400, 11);
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    let r = run_engine(
        &config,
        body_flow(42400, GET, &head("image/gif", noise.len()), &[&noise]),
    );
    assert_eq!(r.findings_on_port(80), ["http_image_without_magic"]);
    assert_eq!(
        alert(&r, "http_image_without_magic")["unmask"]["confidence"],
        40
    );
    assert_eq!(r.counters.flows_blocked, 0);
    // An SVG is markup, and a 1x1 tracking pixel short of 16 bytes says too little.
    let svg = b"<svg xmlns=\"http://www.w3.org/2000/svg\"/>".to_vec();
    assert!(
        body_findings(GET, &head("image/svg+xml", svg.len()), &[&svg])
            .1
            .is_empty()
    );
    assert!(body_findings(GET, &head("image/gif", 9), &[b"not a gif"])
        .1
        .is_empty());
    // Switched off.
    let mut off = Config::default();
    off.detect.http_body.image_without_magic = false;
    let r = run_engine(
        &off,
        body_flow(42401, GET, &head("image/gif", noise.len()), &[&noise]),
    );
    assert!(r.findings_on_port(80).is_empty());
    let mut off = Config::default();
    off.detect.http_body.enabled = false;
    let exe = pe_image(600);
    let r = run_engine(
        &off,
        body_flow(42402, GET, &head("image/png", exe.len()), &[&exe]),
    );
    assert!(r.findings_on_port(80).is_empty());
}

#[test]
fn only_sure_body_findings_block() {
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    let zip = b"PK\x03\x04\x14\0\0\0\x08\0filler bytes of the archive".to_vec();
    let exe = pe_image(700);
    let head = |ct: &str, n: usize| {
        format!("HTTP/1.1 200 OK\r\nContent-Type: {ct}\r\nContent-Length: {n}\r\n\r\n")
    };
    let r = run_engine(
        &config,
        body_flow(42500, GET, &head("text/plain", zip.len()), &[&zip]),
    );
    assert_eq!(r.findings_on_port(80), ["http_body_type_mismatch"]);
    assert_eq!(
        r.counters.flows_blocked, 0,
        "an archive as text/plain (50) only alerts"
    );
    let r = run_engine(
        &config,
        body_flow(42501, GET, &head("image/png", exe.len()), &[&exe]),
    );
    assert_eq!(r.counters.flows_blocked, 1);
}

// The shared real captures are judged in tests/expectations.rs (tests/expectations.toml).

/// A WebSocket frame as a client (masked) or a server (unmasked) sends it, with `len` payload
/// bytes of pseudo-random content.
fn ws_frame(len: usize, masked: bool, seed: u32) -> Vec<u8> {
    let mut f = vec![0x82u8];
    let mask_bit = if masked { 0x80 } else { 0 };
    match len {
        0..=125 => f.push(mask_bit | len as u8),
        126..=0xffff => {
            f.push(mask_bit | 126);
            f.extend_from_slice(&(len as u16).to_be_bytes());
        }
        _ => {
            f.push(mask_bit | 127);
            f.extend_from_slice(&(len as u64).to_be_bytes());
        }
    }
    if masked {
        f.extend_from_slice(&[0x11, 0x22, 0x33, 0x44]);
    }
    f.extend(fixtures::noise(len, seed));
    f
}

fn websocket(port: u16, sizes: &[(char, usize)]) -> Run {
    let upgrade = "GET /ray HTTP/1.1\r\nHost: proxy.example\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64) Gecko/20100101 Firefox/128.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let switching = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let mut conv = Conversation::new(
        format!("10.77.0.1:{port}").parse().unwrap(),
        "10.77.0.2:80".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
    )
    .handshake()
    .client(upgrade.as_bytes())
    .server(switching.as_bytes());
    for (i, (side, len)) in sizes.iter().enumerate() {
        conv = match side {
            'C' => conv.client(&ws_frame(*len, true, i as u32)),
            _ => conv.server(&ws_frame(*len, false, i as u32)),
        };
    }
    run_engine(&Config::default(), conv.close().into_frames())
}

#[test]
fn a_handshake_tunnelled_in_websocket_frames_is_tls_in_tls() {
    // VMess over cleartext WebSocket, measured in the proxy lab: inner ClientHello, the
    // server's certificate flight, the client's Finished, the reply; then the request.
    let r = websocket(
        42001,
        &[
            ('C', 406),
            ('S', 1552),
            ('C', 277),
            ('S', 138),
            ('C', 120),
            ('S', 900),
        ],
    );
    let a = alert(&r, "tls_in_tls");
    // Raised as soon as the reply arrives, so an inline appliance can cut the tunnel early.
    assert_eq!(a["unmask"]["evidence"]["bursts"], "C406 S1552 C277 S138");
    assert_eq!(a["unmask"]["evidence"]["outer_record_overhead"], "0");

    // A chat over the same kind of upgrade: answers as large as the questions.
    let r = websocket(
        42002,
        &[
            ('C', 203),
            ('S', 181),
            ('C', 1746),
            ('S', 1742),
            ('C', 285),
            ('S', 281),
        ],
    );
    assert!(
        r.of_type("alert")
            .all(|a| a["unmask"]["finding"] != "tls_in_tls"),
        "an echo is no tunnel"
    );
}

#[test]
fn an_upgrade_the_server_never_performed_is_websocket_impersonation() {
    // simple-obfs `obfs=http`, as captured in the proxy lab: no Sec-WebSocket-Version, a body
    // on the GET, and a 101 whose accept value has nothing to do with the key.
    let request = "GET / HTTP/1.1\r\nHost: www.bing.com\r\nUser-Agent: curl/7.29.0\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: Z4GbQRAWgDi9QVQS9HLANw==\r\nContent-Length: 372\r\n\r\n";
    let answer = "HTTP/1.1 101 Switching Protocols\r\nServer: nginx/1.10.9\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: c0gzZlHcsHT/XEkZSpToKg==\r\n\r\n";
    let conv = Conversation::new(
        "10.77.0.1:42003".parse().unwrap(),
        "10.77.0.2:80".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
    )
    .handshake()
    .client(&[request.as_bytes(), &fixtures::noise(372, 1)].concat())
    .server(&[answer.as_bytes(), &fixtures::noise(2000, 2)].concat())
    .client(&fixtures::noise(600, 3))
    .close();
    let r = run_engine(&Config::default(), conv.into_frames());
    let a = alert(&r, "websocket_impersonation");
    assert_eq!(a["unmask"]["evidence"]["problem"], "accept_mismatch");
    assert_eq!(a["unmask"]["evidence"]["sent_by"], "server");

    // The same request answered with the accept value RFC 6455 derives from its key, then
    // bytes that are not frames.
    let good = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n";
    let request = "GET /chat HTTP/1.1\r\nHost: chat.example\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";
    let conv = Conversation::new(
        "10.77.0.1:42004".parse().unwrap(),
        "10.77.0.2:80".parse().unwrap(),
        fixtures::FIXTURE_EPOCH,
    )
    .handshake()
    .client(request.as_bytes())
    .server(good.as_bytes())
    // A server frame with the mask bit set: no genuine server sends one.
    .server(&[0x82, 0x85, 1, 2, 3, 4, 9, 9, 9, 9, 9])
    .close();
    let r = run_engine(&Config::default(), conv.into_frames());
    let a = alert(&r, "websocket_impersonation");
    assert_eq!(a["unmask"]["evidence"]["problem"], "wrong_masking");
}
