use super::*;
use crate::capture::Timestamp;
use crate::proto::http::{parse_request, parse_response, HeadAnomalies};
use crate::proto::DirIdent;

fn view() -> FlowView<'static> {
    FlowView {
        client_addr: [10, 0, 0, 1].into(),
        server_addr: [10, 0, 0, 2].into(),
        client_port: 50000,
        server_port: 80,
        ident: [DirIdent::default(); 2],
        tls: None,
        trail: None,
        http: None,
        pkts: [1, 1],
        bytes: [100, 100],
        seen_from_start: [true; 2],
        first_ts: Timestamp(0),
        now: Timestamp(0),
    }
}

fn request_with(cfg: &HttpConfig, bytes: &[u8]) -> Vec<Finding> {
    let head = parse_request(bytes).expect("a complete request head");
    let mut out = Findings::default();
    HttpCheck::new(cfg).on_event(&view(), &Event::HttpRequest(&head), &mut out);
    out.iter().copied().collect()
}

fn request(bytes: &[u8]) -> Vec<Finding> {
    request_with(&HttpConfig::default(), bytes)
}

fn response_with(cfg: &HttpConfig, bytes: &[u8]) -> Vec<Finding> {
    let head = parse_response(bytes).expect("a complete response head");
    let mut out = Findings::default();
    HttpCheck::new(cfg).on_event(&view(), &Event::HttpResponse(&head), &mut out);
    out.iter().copied().collect()
}

fn not_http(data: &[u8]) -> Vec<Finding> {
    let mut out = Findings::default();
    HttpCheck::new(&HttpConfig::default()).on_event(
        &view(),
        &Event::HttpResponseNotHttp { data },
        &mut out,
    );
    out.iter().copied().collect()
}

fn of(found: &[Finding], kind: FindingKind) -> Option<Finding> {
    found.iter().find(|f| f.kind == kind).copied()
}

fn anomaly(found: &[Finding]) -> Option<Finding> {
    of(found, FindingKind::HttpHeaderAnomaly)
}

fn signature(found: &[Finding]) -> Option<Finding> {
    of(found, FindingKind::HttpHeaderSignature)
}

/// The score a request gets, whether or not it crosses the threshold.
fn score(bytes: &[u8]) -> u32 {
    let cfg = HttpConfig {
        anomaly_threshold: 1,
        ..HttpConfig::default()
    };
    anomaly(&request_with(&cfg, bytes)).map_or(0, |f| {
        let s = f.evidence.get("score").unwrap();
        s.split(' ').next().unwrap().parse().unwrap()
    })
}

const FIREFOX: &[u8] = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";
const CURL: &[u8] =
    b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8000\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
/// suricata-verify http-missing-protocol's request, as on the wire.
const NO_VERSION: &[u8] = b"GET /gen.php?generate=191636955/-394717567&hwid=-53127817\r\nHost: 5.8.88.25\r\nConnection:keep-alive\r\nUpgrade-Insecure-Requests:1\r\nUser-Agent:Mozilla/5.0 (Windows NT 6.1; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/56.0.2924.87 Safari/537.36\r\nAccept:text/html,application/xhtml+xml,application/xml;q=0.9,image/webp,*/*;q=0.8\r\nAccept-Language:en-US;q=0.6,en;q=0.4\r\nAccept-Encoding:gzip, deflate\r\n\r\n";
/// suricata-verify detect-app-layer-protocol-03's UPnP request: odd but real.
const UPNP: &[u8] = b"NOTMETHOD /WANIPConnection HTTP/1.1\r\nCache-Control: no-cache\r\nConnection: Close\r\nPragma: no-cache\r\nUser-Agent: Microsoft-Windows/6.1 UPnP/1.0\r\nNT: upnp:event\r\nCallback: <http://192.168.0.13:2869/upnp/eventing/mclbfxnltw>\r\nTimeout: Second-1800\r\nHost: 192.168.0.1\r\n\r\n";

fn chrome(headers: &str) -> Vec<u8> {
    format!("GET /news HTTP/1.1\r\n{headers}\r\n").into_bytes()
}

// --- HeaderSignatureMatch ---------------------------------------------------------------------

#[test]
fn real_clients_match_no_default_signature() {
    for req in [FIREFOX, CURL, UPNP] {
        assert!(signature(&request(req)).is_none());
    }
    // HTTP/1.0 does not require Host (a health check's "GET / HTTP/1.0").
    let found = request(b"GET /health HTTP/1.0\r\nUser-Agent: check/1.0\r\n\r\n");
    assert!(signature(&found).is_none());
}

#[test]
fn missing_user_agent_alerts_without_blocking() {
    let found = request(b"GET / HTTP/1.1\r\nHost: a.example\r\nAccept: */*\r\n\r\n");
    let f = signature(&found).expect("missing-user-agent");
    assert_eq!(f.evidence.get("signatures"), Some("missing-user-agent"));
    assert_eq!(f.confidence, 60);
    assert!(!f.block, "many honest tools omit User-Agent");
    assert_eq!(f.dir, Dir::ToServer);
    assert_eq!(f.evidence.get("request_line"), Some("GET /"));
    assert_eq!(f.evidence.get("matched_value"), None);
}

#[test]
fn absence_is_not_claimed_past_the_header_capacity() {
    let mut req = b"GET / HTTP/1.1\r\n".to_vec();
    for i in 0..70 {
        req.extend_from_slice(format!("X-Filler-{i}: {i}\r\n").as_bytes());
    }
    req.extend_from_slice(b"Host: a.example\r\nUser-Agent: tool/1\r\n\r\n");
    assert!(signature(&request(&req)).is_none());
}

#[test]
fn missing_host_on_http11_blocks_and_both_are_one_finding() {
    let found = request(b"GET /update HTTP/1.1\r\nAccept: */*\r\n\r\n");
    let sigs: Vec<_> = found
        .iter()
        .filter(|f| f.kind == FindingKind::HttpHeaderSignature)
        .collect();
    assert_eq!(sigs.len(), 1, "one finding per head, naming every pattern");
    let f = sigs[0];
    assert_eq!(
        f.evidence.get("signatures"),
        Some("missing-user-agent, missing-host")
    );
    assert_eq!(f.confidence, 85);
    assert!(f.block, "RFC 9112 3.2: no HTTP/1.1 client omits Host");
    // The check-wide switch wins over the pattern's.
    let monitor = HttpConfig {
        block: false,
        ..HttpConfig::default()
    };
    assert!(
        !signature(&request_with(&monitor, b"GET / HTTP/1.1\r\n\r\n"))
            .unwrap()
            .block
    );
}

fn sig(name: &str) -> HeaderSignature {
    HeaderSignature {
        name: name.into(),
        message: MessageKind::Request,
        header: "User-Agent".into(),
        absent: false,
        equals: None,
        prefix: None,
        contains: None,
        version: VersionFilter::Any,
        confidence: 90,
        block: true,
    }
}

#[test]
fn value_patterns_match_case_insensitively() {
    let cfg = HttpConfig {
        signatures: vec![
            HeaderSignature {
                equals: Some("CURL/8.5.0".into()),
                ..sig("curl-exact")
            },
            HeaderSignature {
                prefix: Some("curl/".into()),
                ..sig("curl-prefix")
            },
            HeaderSignature {
                contains: Some("L/8".into()),
                ..sig("curl-contains")
            },
            HeaderSignature {
                header: "accept".into(),
                ..sig("has-accept")
            },
            HeaderSignature {
                prefix: Some("wget/".into()),
                ..sig("wget")
            },
            HeaderSignature {
                prefix: Some("curl/".into()),
                contains: Some("7.".into()),
                ..sig("old-curl")
            },
        ],
        ..HttpConfig::default()
    };
    let f = signature(&request_with(&cfg, CURL)).unwrap();
    assert_eq!(
        f.evidence.get("signatures"),
        Some("curl-exact, curl-prefix, curl-contains, has-accept")
    );
    assert_eq!(f.evidence.get("matched_value"), Some("curl/8.5.0"));
    assert_eq!(f.evidence.get("user_agent"), Some("curl/8.5.0"));
    assert!(f.block);
    assert_eq!(f.confidence, 90);
}

#[test]
fn response_patterns_and_version_filters() {
    let cfg = HttpConfig {
        signatures: vec![
            HeaderSignature {
                message: MessageKind::Response,
                header: "Server".into(),
                prefix: Some("nginx/1.10".into()),
                ..sig("old-nginx")
            },
            HeaderSignature {
                header: "Server".into(),
                absent: true,
                version: VersionFilter::Http10,
                message: MessageKind::Response,
                ..sig("bare-http10-response")
            },
        ],
        ..HttpConfig::default()
    };
    let found = response_with(
        &cfg,
        b"HTTP/1.1 200 OK\r\nServer: nginx/1.10.3\r\nContent-Length: 0\r\n\r\n",
    );
    let f = signature(&found).unwrap();
    assert_eq!(f.evidence.get("signatures"), Some("old-nginx"));
    assert_eq!(f.dir, Dir::ToClient);
    assert_eq!(f.evidence.get("status_line"), Some("200 OK"));
    let found = response_with(&cfg, b"HTTP/1.0 200 OK\r\nContent-Length: 0\r\n\r\n");
    assert_eq!(
        signature(&found).unwrap().evidence.get("signatures"),
        Some("bare-http10-response")
    );
    assert!(signature(&response_with(&cfg, b"HTTP/1.1 204 No Content\r\n\r\n")).is_none());
    // Request patterns never look at responses.
    let found = response_with(&HttpConfig::default(), b"HTTP/1.1 204 No Content\r\n\r\n");
    assert!(found.is_empty());
}

#[test]
fn signatures_validate_with_named_keys() {
    let with = |s: HeaderSignature| HttpConfig {
        signatures: vec![s],
        ..HttpConfig::default()
    };
    let msg = |c: HttpConfig| c.validate("t.toml").unwrap_err().to_string();
    let e = msg(with(HeaderSignature {
        header: "User Agent".into(),
        ..sig("x")
    }));
    assert!(e.contains("detect.http.signatures[0].header"), "{e}");
    assert!(e.contains("User Agent"), "{e}");
    let e = msg(with(HeaderSignature {
        absent: true,
        prefix: Some("a".into()),
        ..sig("x")
    }));
    assert!(e.contains("signatures[0].prefix"), "{e}");
    let e = msg(with(HeaderSignature {
        contains: Some(String::new()),
        ..sig("x")
    }));
    assert!(
        e.contains("signatures[0].contains") && e.contains("empty"),
        "{e}"
    );
    let e = msg(with(HeaderSignature {
        confidence: 0,
        ..sig("x")
    }));
    assert!(
        e.contains("signatures[0].confidence") && e.contains("1 to 100"),
        "{e}"
    );
    let e = msg(with(sig("")));
    assert!(e.contains("signatures[0].name"), "{e}");
    let dup = HttpConfig {
        signatures: vec![sig("a"), sig("a")],
        ..HttpConfig::default()
    };
    assert!(msg(dup).contains("signatures[1].name"));
    let many = HttpConfig {
        signatures: (0..=MAX_SIGNATURES)
            .map(|i| sig(&format!("s{i}")))
            .collect(),
        ..HttpConfig::default()
    };
    assert!(msg(many).contains("at most 64"));
    assert!(HttpConfig::default().validate("t.toml").is_ok());
}

#[test]
fn config_ranges_are_validated() {
    let msg = |c: HttpConfig| c.validate("t.toml").unwrap_err().to_string();
    let e = msg(HttpConfig {
        anomaly_threshold: 0,
        ..HttpConfig::default()
    });
    assert!(e.contains("detect.http.anomaly_threshold"), "{e}");
    let e = msg(HttpConfig {
        token_min_entropy: f64::NAN,
        ..HttpConfig::default()
    });
    assert!(e.contains("detect.http.token_min_entropy"), "{e}");
    let e = msg(HttpConfig {
        weights: Weights {
            bare_lf: 5000,
            ..Weights::default()
        },
        ..HttpConfig::default()
    });
    assert!(e.contains("detect.http.weights.bare_lf"), "{e}");
    assert!(e.contains("5000"), "{e}");
}

// --- HeaderAnomalyScore: baselines ------------------------------------------------------------

#[test]
fn real_browsers_tools_and_servers_score_nothing() {
    assert_eq!(score(FIREFOX), 0);
    // curl to a loopback address: the IP-literal Host is all there is.
    assert_eq!(score(CURL), 3);
    assert!(request(CURL).is_empty());
    let chrome_real = chrome(&format!(
        "Host: www.example.com\r\nConnection: keep-alive\r\nUpgrade-Insecure-Requests: 1\r\nUser-Agent: {CHROME_UA}\r\nAccept: text/html\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en-US,en;q=0.9\r\n"
    ));
    assert_eq!(score(&chrome_real), 0);
    // Chrome's WebSocket handshake carries no Accept.
    let ws = chrome(&format!(
        "Host: ws.example.com\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nUser-Agent: {CHROME_UA}\r\nSec-WebSocket-Version: 13\r\nAccept-Encoding: gzip, deflate\r\nAccept-Language: en\r\nSec-WebSocket-Key: sb9H3YzYsVPR/qPgmiLeEQ==\r\n"
    ));
    assert_eq!(score(&ws), 0);
    // CONNECT through a proxy carries none of the Accept headers.
    let connect = format!(
        "CONNECT www.example.com:443 HTTP/1.1\r\nHost: www.example.com:443\r\nProxy-Connection: keep-alive\r\nUser-Agent: {CHROME_UA}\r\n\r\n"
    );
    assert_eq!(score(connect.as_bytes()), 0);
    // Internet Explorer puts Host late and may omit Accept-Language.
    let ie = b"GET /video/ HTTP/1.1\r\nAccept: */*\r\nUA-CPU: AMD64\r\nAccept-Encoding: gzip, deflate\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Win64; x64; Trident/7.0; rv:11.0) like Gecko\r\nHost: gandhitoday.org\r\nConnection: Keep-Alive\r\n\r\n";
    assert_eq!(score(ie), 0);
    let python = b"HTTP/1.0 200 OK\r\nServer: SimpleHTTP/0.6 Python/3.12.3\r\nDate: Tue, 01 Dec 2026 00:00:00 GMT\r\nContent-type: text/html; charset=utf-8\r\nContent-Length: 10\r\n\r\n";
    assert!(response_with(&HttpConfig::default(), python).is_empty());
}

#[test]
fn an_odd_but_real_upnp_request_stays_below_the_threshold() {
    assert_eq!(score(UPNP), 6, "unknown_method 3 + host_ip_literal 3");
    assert!(request(UPNP).is_empty());
}

// --- HeaderAnomalyScore: rules ----------------------------------------------------------------

#[test]
fn a_forged_browser_request_crosses_the_threshold_with_its_reasons() {
    let forged = chrome(&format!(
        "host: www.example.com\r\nuser-agent: {CHROME_UA}\r\nconnection: keep-alive\r\n"
    ));
    let found = request(&forged);
    let f = anomaly(&found).expect("HttpHeaderAnomaly");
    assert_eq!(f.evidence.get("score"), Some("18 (threshold 10)"));
    assert_eq!(
        f.evidence.get("browser_missing_headers"),
        Some("weight 12: missing Accept, Accept-Encoding, Accept-Language")
    );
    assert_eq!(f.evidence.get("browser_lowercase_names"), Some("weight 6"));
    assert_eq!(f.confidence, 90);
    assert!(f.block);
    assert_eq!(f.evidence.get("request_line"), Some("GET /news"));
    // Heaviest anomaly first in the evidence.
    let names: Vec<_> = f.evidence.iter().map(|(k, _)| k).collect();
    assert_eq!(
        &names[..3],
        &[
            "score",
            "browser_missing_headers",
            "browser_lowercase_names"
        ]
    );
}

#[test]
fn each_missing_browser_header_weighs() {
    let base = |extra: &str| {
        score(&chrome(&format!(
            "Host: a.example\r\nUser-Agent: {CHROME_UA}\r\n{extra}"
        )))
    };
    assert_eq!(base(""), 12);
    assert_eq!(base("Accept: */*\r\n"), 8);
    assert_eq!(base("Accept: */*\r\nAccept-Encoding: gzip\r\n"), 4);
    assert_eq!(
        base("Accept: */*\r\nAccept-Encoding: gzip\r\nAccept-Language: de\r\n"),
        0
    );
    // A tool's own User-Agent claims no browser: its headers are its business.
    assert_eq!(
        score(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Go-http-client/1.1\r\n\r\n"),
        0
    );
    // Crawlers announce themselves and are not held to browser behaviour.
    assert_eq!(
        score(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html) Chrome/120.0 Safari/537.36\r\n\r\n"),
        0
    );
}

#[test]
fn host_late_only_for_chromium_and_firefox() {
    let late = |ua: &str| {
        score(
            format!(
                "GET / HTTP/1.1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nAccept-Language: en\r\nUser-Agent: {ua}\r\nHost: a.example\r\n\r\n"
            )
            .as_bytes(),
        )
    };
    assert_eq!(late(CHROME_UA), 3);
    assert_eq!(
        late("Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"),
        3
    );
    assert_eq!(
        late("Mozilla/5.0 (Macintosh; Intel Mac OS X 14_4) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Safari/605.1.15"),
        0
    );
    let cfg = HttpConfig {
        anomaly_threshold: 1,
        ..HttpConfig::default()
    };
    let req = format!(
        "GET / HTTP/1.1\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nAccept-Language: en\r\nUser-Agent: {CHROME_UA}\r\nHost: a.example\r\n\r\n"
    );
    let f = anomaly(&request_with(&cfg, req.as_bytes())).unwrap();
    assert_eq!(
        f.evidence.get("browser_host_late"),
        Some("weight 3: Host is header line 5")
    );
}

#[test]
fn http10_from_a_current_browser() {
    let req = format!(
        "GET / HTTP/1.0\r\nHost: a\r\nUser-Agent: {CHROME_UA}\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nAccept-Language: en\r\n\r\n"
    );
    assert_eq!(score(req.as_bytes()), 5);
    assert_eq!(score(req.replace("HTTP/1.0", "HTTP/1.1").as_bytes()), 0);
    // Internet Explorer could be set to HTTP/1.0 through proxies: not held to it.
    let ie = b"GET / HTTP/1.0\r\nAccept: */*\r\nAccept-Encoding: gzip\r\nUser-Agent: Mozilla/5.0 (Windows NT 10.0; Trident/7.0; rv:11.0) like Gecko\r\nHost: a\r\n\r\n";
    assert_eq!(score(ie), 0);
}

#[test]
fn casing_no_library_writes() {
    // http-manipulated.pcap: "hOsT:" with no space after the colon.
    let req =
        b"GET / HTTP/1.1\r\nhOsT:wwww.lan:8080\r\nUser-Agent: curl/7.64.0\r\nAccept: */*\r\n\r\n";
    let found = request(req);
    let f = anomaly(&found).expect("8 + 3 crosses 10");
    assert_eq!(f.evidence.get("odd_header_case"), Some("weight 8: hOsT"));
    assert_eq!(f.evidence.get("no_space_after_colon"), Some("weight 3"));
    // Registered casing, all lower and all upper are what libraries write.
    for name in ["Host", "host", "HOST"] {
        let req = format!("GET / HTTP/1.1\r\n{name}: a\r\nUser-Agent: x/1\r\n\r\n");
        assert_eq!(score(req.as_bytes()), 0, "{name}");
    }
    // Unregistered names may be camel-cased at will.
    assert_eq!(
        score(b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x/1\r\nSec-WebSocket-Key: k\r\nX-AspNet-Version: 4\r\n\r\n"),
        0
    );
}

#[test]
fn user_agents_without_a_product_version() {
    for ua in [
        "**",
        "pwtyyEKzNtGatwnJjmCcBLbOveCVpc",
        "jndi:ldap://172.16.238.11:1389/a",
        "exoplayer-codelab",
        "",
    ] {
        assert!(!user_agent_well_formed(ua.as_bytes()), "{ua:?}");
    }
    for ua in [
        "curl/8.5.0",
        "Debian APT-HTTP/1.3 (2.6.1)",
        CHROME_UA,
        "Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0; .NET4.0C; .NET4.0E)",
        "Microsoft-Windows/6.1 UPnP/1.0",
        "Dalvik/2.1.0 (Linux; U; Android 11; SM-A515F Build/RP1A.200720.012)",
        "Valve/Steam HTTP Client 1.0",
    ] {
        assert!(user_agent_well_formed(ua.as_bytes()), "{ua:?}");
    }
    let req = b"GET /solar.php HTTP/1.1\r\nConnection: Keep-Alive\r\nAccept: */*\r\nAccept-Language: en-us\r\nUser-Agent: pwtyyEKzNtGatwnJjmCcBLbOveCVpc\r\nHost: 144.91.69.195\r\n\r\n";
    assert_eq!(score(req), 6, "odd_user_agent 3 + host_ip_literal 3");
}

#[test]
fn duplicate_and_conflicting_host() {
    let dup = b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: A.example\r\nUser-Agent: x/1\r\n\r\n";
    assert_eq!(score(dup), 6);
    let conflict =
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\nUser-Agent: x/1\r\n\r\n";
    let f = anomaly(&request(conflict)).expect("conflicting Host alone crosses 10");
    assert!(f.evidence.get("conflicting_host").is_some());
    assert!(f.evidence.get("duplicate_host").is_none());
}

#[test]
fn ip_literal_hosts() {
    for h in [
        "5.8.88.25",
        "82.118.225.196:7080",
        "[2001:db8::1]",
        "[::1]:8080",
    ] {
        assert!(host_is_ip(h.as_bytes()), "{h}");
    }
    for h in [
        "example.com",
        "1.2.3.4.example",
        "localhost:80",
        "[nothost]",
        "1.2.3",
        "",
    ] {
        assert!(!host_is_ip(h.as_bytes()), "{h}");
    }
    let req = b"GET / HTTP/1.1\r\nHost: 10.1.2.3:8080\r\nUser-Agent: x/1\r\n\r\n";
    assert_eq!(score(req), 3);
}

#[test]
fn random_tokens_in_target_and_cookie() {
    let (min, bits) = (32, 4.3);
    // 33 bytes of base64 (24 random bytes): random.
    let b64 = b"/c?d=q8Vz1PkT0mXwH3aJr7LbYe5NcGu2Fs9D";
    let (t, e) = random_token(b64, min, bits).expect("base64 token");
    assert_eq!(t, &b"q8Vz1PkT0mXwH3aJr7LbYe5NcGu2Fs9D"[..]);
    assert!(e > 4.5, "{e}");
    // Hex digests, UUIDs, slugs and short ids are not.
    for benign in [
        &b"/objects/9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"[..],
        b"/u/550e8400-e29b-41d4-a716-446655440000",
        b"/2024/05/a-long-article-title-slug-for-search-engines.html",
        b"/watch?v=dQw4w9WgXcQ&list=PL9tY0BWXOZFs",
        b"/JSESSIONID=784F27AF20E357C1D6B456D33B247A0B",
    ] {
        assert!(
            random_token(benign, min, bits).is_none(),
            "{}",
            String::from_utf8_lossy(benign)
        );
    }
    // Percent-encoded text is text once decoded (WebattackSQLinj.pcap's injected SQL)...
    let sqli = b"/dv/vulnerabilities/sqli/?id=1%27+and+1%3D1+union+select+null%2C+table_name+from+information_schema.tables%23&Submit=Submit";
    assert!(random_token(sqli, min, bits).is_none());
    // ...and percent-encoded base64 stays random (trickbot.pcap's form body, as a query).
    let b64 = b"/p?OK21=U6yKuycpyrtWSffsIT9gHat3iWBeoClJC627YeIJvNZ8w0V19THZ5LojccyPn%2BOJaTyN9bLgKJ%2FujJRle6N41jquWXBduzcsDRDP3eo2eiR74fOUe9LIh%2FmaOBVP%2B1Pm%2B3LQTqp";
    assert!(random_token(b64, min, bits).is_some());
    let req = b"GET /tracking/adImpression?d=IAAAAAAgAAA6X1tPSEVEX1lYX11IQ0JYRVdYR01QQFBFV0JFWUFfXVNaQkRcQ0RSQUVTVltHWkFF HTTP/1.1\r\nHost: a\r\nUser-Agent: x/1\r\n\r\n";
    let cfg = HttpConfig {
        anomaly_threshold: 1,
        ..HttpConfig::default()
    };
    let f = anomaly(&request_with(&cfg, req)).unwrap();
    let ev = f.evidence.get("random_uri_token").unwrap();
    assert!(ev.starts_with("weight 4: IAAAAAAgAAA6X1tP"), "{ev}");
    assert!(ev.contains("chars,") && ev.ends_with("bits/char)"), "{ev}");
    // A bare base64 blob as the cookie (a common C2 metadata carrier).
    let req = b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x/1\r\nCookie: kwsKXp7X9FsL2QmZ0cVbRy8uHt4nJe1PqAiWd6Gz3oYk\r\n\r\n";
    assert_eq!(score(req), 4);
    let req = b"GET / HTTP/1.1\r\nHost: a\r\nUser-Agent: x/1\r\nCookie: security=low; PHPSESSID=5dfcuh85kg0vvidf8nrsjtbob5\r\n\r\n";
    assert_eq!(score(req), 0);
    // Tunable: a shorter minimum length catches the 26-character session id.
    let cfg = HttpConfig {
        anomaly_threshold: 1,
        token_min_len: 20,
        token_min_entropy: 3.5,
        ..HttpConfig::default()
    };
    assert!(anomaly(&request_with(&cfg, req)).is_some());
}

#[test]
fn parser_anomalies_add_their_weights() {
    // suricata-verify http-missing-protocol: no version, no space after colons, IP host.
    let found = request(NO_VERSION);
    let f = anomaly(&found).expect("12 crosses 10");
    assert_eq!(f.evidence.get("score"), Some("12 (threshold 10)"));
    assert_eq!(f.evidence.get("missing_version"), Some("weight 6"));
    assert_eq!(f.evidence.get("no_space_after_colon"), Some("weight 3"));
    assert_eq!(
        f.evidence.get("host_ip_literal"),
        Some("weight 3: 5.8.88.25")
    );
    assert_eq!(f.confidence, 60);
    // Bare LF and a space before the colon.
    let req = b"GET / HTTP/1.1\nHost : a\nUser-Agent: x/1\n\n";
    assert_eq!(score(req), 8);
    // A response with a broken status line.
    let cfg = HttpConfig {
        anomaly_threshold: 5,
        ..HttpConfig::default()
    };
    let found = response_with(&cfg, b"HTTP/1.1 200 O\x01K\r\nContent-Length: 0\r\n\r\n");
    let f = anomaly(&found).expect("bad_status_line");
    assert_eq!(f.dir, Dir::ToClient);
    assert_eq!(f.evidence.get("bad_status_line"), Some("weight 5"));
}

#[test]
fn every_parser_anomaly_has_a_weight() {
    let all = [
        HeadAnomalies::MISSING_VERSION,
        HeadAnomalies::UNKNOWN_METHOD,
        HeadAnomalies::UNUSUAL_VERSION,
        HeadAnomalies::BARE_LF,
        HeadAnomalies::LEADING_EMPTY_LINES,
        HeadAnomalies::MULTIPLE_SPACES,
        HeadAnomalies::SPACE_IN_TARGET,
        HeadAnomalies::NON_ASCII_TARGET,
        HeadAnomalies::INVALID_HEADER_LINE,
        HeadAnomalies::SPACE_BEFORE_COLON,
        HeadAnomalies::NO_SPACE_AFTER_COLON,
        HeadAnomalies::OBS_FOLD,
        HeadAnomalies::HEADER_OVERFLOW,
        HeadAnomalies::CTL_IN_HEADER,
        HeadAnomalies::NON_ASCII_HEADER,
        HeadAnomalies::BAD_STATUS_LINE,
    ];
    let mut every = HeadAnomalies::empty();
    for a in all {
        every.insert(a);
    }
    let w = Weights::default();
    let names: Vec<_> = every.names().collect();
    assert_eq!(names.len(), 16);
    for name in names {
        assert!(w.of(name) > 0, "{name} has no weight");
        assert!(w.entries().iter().any(|(n, _)| *n == name));
    }
}

#[test]
fn a_response_that_is_not_http() {
    // suricata-verify http-missing-protocol's reply.
    let found = not_http(b"xzscxc#$#AzMTax4wGxA5DSBkODw8e3d3PCsADwwXfXdienNreXM=$#$vxxd");
    let f = anomaly(&found).expect("response_not_http alone reaches the threshold");
    assert_eq!(f.dir, Dir::ToClient);
    // Not HTTP at all is as sure as a protocol mismatch, whatever the score.
    assert_eq!(f.confidence, 90);
    let ev = f.evidence.get("response_not_http").unwrap();
    assert!(ev.starts_with("weight 10: xzscxc#$#AzMTax"), "{ev}");
    // Binary shows escaped.
    let f = anomaly(&not_http(b"\x00\x01SSH")).unwrap();
    assert_eq!(
        f.evidence.get("response_not_http"),
        Some("weight 10: \\x00\\x01SSH")
    );
    // An h2c server's SETTINGS frame after a prior-knowledge preface is HTTP/2, not a lie.
    assert!(not_http(&[0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3, 0, 0, 0, 100]).is_empty());
}

#[test]
fn weights_threshold_and_confidence_are_tunable() {
    let forged = chrome(&format!("host: a\r\nuser-agent: {CHROME_UA}\r\n"));
    let zero = HttpConfig {
        weights: Weights {
            browser_missing_header: 0,
            browser_lowercase_names: 0,
            ..Weights::default()
        },
        ..HttpConfig::default()
    };
    assert!(anomaly(&request_with(&zero, &forged)).is_none());
    let strict = HttpConfig {
        anomaly_threshold: 19,
        ..HttpConfig::default()
    };
    assert!(anomaly(&request_with(&strict, &forged)).is_none());
    let loose = HttpConfig {
        anomaly_threshold: 5,
        ..HttpConfig::default()
    };
    // 18 is over twice 5: confidence capped at 99.
    assert_eq!(
        anomaly(&request_with(&loose, &forged)).unwrap().confidence,
        99
    );
    let monitor = HttpConfig {
        block: false,
        ..HttpConfig::default()
    };
    assert!(!anomaly(&request_with(&monitor, &forged)).unwrap().block);
}

#[test]
fn many_anomalies_all_reach_the_evidence() {
    // Most request-side rules at once (all-lowercase names aside: "hOsT" is not), plus
    // several parser leniencies.
    let req = format!(
        "GET  /x?t=q8Vz1PkT0mXwH3aJr7LbYe5NcGu2Fs9D HTTP/1.0\naccept-charset:utf-8\nuser-agent: {CHROME_UA}\nhost: 1.2.3.4\nhOsT: 1.2.3.5\ncookie: kwsKXp7X9FsL2QmZ0cVbRy8uHt4nJe1PqAiWd6Gz3oYk\n\n"
    );
    let found = request(req.as_bytes());
    let f = anomaly(&found).unwrap();
    let keys: Vec<_> = f.evidence.iter().map(|(k, _)| k).collect();
    assert_eq!(keys.len(), 8, "{keys:?}");
    assert_eq!(keys[0], "score");
    assert_eq!(keys[7], "more_anomalies");
    let more = f.evidence.get("more_anomalies").unwrap();
    // Everything not given its own line is listed with its weight.
    let listed = keys[1..7].len() + more.split("; ").count();
    let expected = [
        "conflicting_host",
        "browser_missing_headers",
        "odd_header_case",
        "browser_host_late",
        "browser_http10",
        "host_ip_literal",
        "random_uri_token",
        "random_cookie_token",
        "bare_lf",
        "multiple_spaces",
        "no_space_after_colon",
    ];
    assert_eq!(listed, expected.len(), "{keys:?} + {more}");
    for name in expected {
        assert!(
            keys.contains(&name) || more.contains(name),
            "{name} missing from {keys:?} / {more}"
        );
    }
}

#[test]
fn browser_claims_are_narrow() {
    use Browser::*;
    let claim = |ua: &str| browser_claim(ua.as_bytes());
    assert_eq!(claim(CHROME_UA), Some(Chromium));
    assert_eq!(
        claim("Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/99.0.4844.74 Safari/537.36 Edg/99.0.1150.55"),
        Some(Chromium)
    );
    assert_eq!(
        claim("Mozilla/5.0 (X11; Linux x86_64; rv:45.0) Gecko/20100101 Firefox/45.0"),
        Some(Firefox)
    );
    assert_eq!(
        claim("Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) CriOS/124.0 Mobile/15E148 Safari/604.1"),
        Some(Safari)
    );
    assert_eq!(
        claim("Mozilla/4.0 (compatible; MSIE 7.0; Windows NT 10.0; WOW64; Trident/7.0)"),
        Some(Ie)
    );
    // An iOS app's WebKit view without a browser token, tools, crawlers: no claim.
    for ua in [
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148",
        "curl/8.5.0",
        "Mozilla/5.0 (compatible; bingbot/2.0; +http://www.bing.com/bingbot.htm)",
        "Chrome/124.0 Safari/537.36",
    ] {
        assert_eq!(claim(ua), None, "{ua}");
    }
}

#[test]
fn other_events_are_ignored() {
    let mut out = Findings::default();
    let check = HttpCheck::new(&HttpConfig::default());
    for e in [
        Event::Periodic,
        Event::FlowEnd,
        Event::Identified {
            dir: Dir::ToServer,
            data: b"GET / HTTP/1.1\r\n\r\n",
        },
    ] {
        check.on_event(&view(), &e, &mut out);
    }
    assert!(out.is_empty());
}
