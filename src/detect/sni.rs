//! Server Name Indication (DET0470 HeaderAnomalyScore): missing where a hostname is expected,
//! IP literals, and SNI/ALPN contradictions.
//!
//! Judged once, on the client's first ClientHello (a second hello after HelloRetryRequest
//! repeats the first one's name).
//!
//! | rule | finding | confidence |
//! |---|---|---|
//! | no server_name, no ESNI/ECH, server port in `missing_sni_ports` | `sni_missing` | 60 |
//! | the SNI is an IPv4 or IPv6 literal (RFC 6066 3 forbids them) | `sni_ip_literal` | 90 |
//! | an ALPN from `web_alpns` is offered without any server_name (nDPI's "ALPN/SNI mismatch") | `sni_alpn_mismatch` | 70 |
//!
//! Many non-web TLS clients legitimately send no SNI (opportunistic DNS-over-TLS, mail
//! relays, VPN and remote-desktop clients on their own ports), so the missing-SNI rule only
//! looks at the ports where HTTPS lives. An HTTP ALPN without a name is different: a client
//! that says it will speak HTTP names its host in the request anyway, and browsers always send
//! SNI for names; only a client connecting to a bare address, or one dressing up as a browser,
//! offers h2 without SNI. Hellos carrying ESNI (0xffce) or ECH (0xfe0d) hide the name on
//! purpose and are left alone, as are SSLv2-format hellos, which cannot carry extensions.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::TlsFacts;
use crate::proto::tls::{ext, ClientHello};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SniConfig {
    pub enabled: bool,
    pub block: bool,
    /// Server ports where a ClientHello without SNI is flagged; empty turns the rule off.
    pub missing_sni_ports: Vec<u16>,
    /// ALPN protocol ids that promise a named host; offered without SNI, they are flagged.
    /// Empty turns the rule off.
    pub web_alpns: Vec<String>,
    pub ip_literal: bool,
}

impl Default for SniConfig {
    fn default() -> Self {
        SniConfig {
            enabled: true,
            block: false,
            missing_sni_ports: vec![443, 8443],
            web_alpns: ["h2", "http/1.1", "http/1.0", "spdy/3.1", "spdy/3", "spdy/2"]
                .map(String::from)
                .to_vec(),
            ip_literal: true,
        }
    }
}

impl SniConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let err = |key: String, message: String| KeyError {
            path: path.into(),
            key,
            message,
        };
        for (i, p) in self.missing_sni_ports.iter().enumerate() {
            if *p == 0 {
                return Err(err(
                    format!("detect.sni.missing_sni_ports[{i}]"),
                    "invalid port 0; accepted: 1 to 65535".into(),
                ));
            }
        }
        for (i, a) in self.web_alpns.iter().enumerate() {
            if a.is_empty() || a.len() > crate::proto::tls::ALPN_TEXT_LEN {
                return Err(err(
                    format!("detect.sni.web_alpns[{i}]"),
                    format!(
                        "invalid ALPN id {a:?}; accepted: 1 to {} bytes, as sent (e.g. \"h2\", \
                         \"http/1.1\")",
                        crate::proto::tls::ALPN_TEXT_LEN
                    ),
                ));
            }
        }
        Ok(())
    }
}

pub struct SniCheck {
    cfg: SniConfig,
}

/// Is this SNI an IP literal (dotted IPv4, IPv6, bracketed IPv6)?
pub fn is_ip_literal(sni: &str) -> bool {
    let s = sni.strip_suffix('.').unwrap_or(sni);
    let s = s
        .strip_prefix('[')
        .and_then(|x| x.strip_suffix(']'))
        .unwrap_or(s);
    s.parse::<IpAddr>().is_ok()
}

impl SniCheck {
    pub fn new(cfg: &SniConfig) -> Self {
        SniCheck { cfg: cfg.clone() }
    }

    fn finding(&self, kind: FindingKind, confidence: u8) -> Finding {
        Finding {
            kind,
            confidence,
            block: self.cfg.block,
            dir: Dir::ToServer,
            evidence: Evidence::default(),
        }
    }

    fn web_alpn<'a>(&self, t: &'a TlsFacts) -> Option<&'a str> {
        t.client_alpns
            .as_slice()
            .iter()
            .map(|a| a.as_str())
            .find(|a| self.cfg.web_alpns.iter().any(|w| w == a))
    }

    fn on_client_hello(
        &self,
        view: &FlowView<'_>,
        t: &TlsFacts,
        ch: &ClientHello,
        out: &mut Findings,
    ) {
        let s = &t.summary;
        // The client's first hello, as the summary recorded it; a repeated or misplaced one
        // adds nothing.
        if !s.client_hello_seen || s.client_hellos != 1 || s.sslv2_hello {
            return;
        }
        if s.has_sni {
            let name = s.sni.as_str();
            if self.cfg.ip_literal && is_ip_literal(name) {
                let mut f = self.finding(FindingKind::SniIpLiteral, 90);
                f.evidence.add("sni", name);
                f.evidence.add("server_addr", view.server_addr);
                f.evidence.add(
                    "sni_is_server_addr",
                    name.parse::<IpAddr>() == Ok(view.server_addr),
                );
                out.push(f);
            }
            return;
        }
        let hidden = ch.has_extension(ext::ENCRYPTED_SERVER_NAME)
            || ch.has_extension(ext::ENCRYPTED_CLIENT_HELLO);
        if hidden {
            return;
        }
        let port = view.server_port;
        if self.cfg.missing_sni_ports.contains(&port) {
            let mut f = self.finding(FindingKind::SniMissing, 60);
            f.evidence.add("server_port", port);
            f.evidence.add("server_addr", view.server_addr);
            add_alpns(&mut f.evidence, t);
            out.push(f);
        }
        if let Some(alpn) = self.web_alpn(t) {
            let mut f = self.finding(FindingKind::SniAlpnMismatch, 70);
            f.evidence.add("alpn", alpn);
            add_alpns(&mut f.evidence, t);
            f.evidence.add("server_port", port);
            f.evidence.add("server_addr", view.server_addr);
            out.push(f);
        }
    }
}

fn add_alpns(e: &mut Evidence, t: &TlsFacts) {
    struct List<'a>(&'a TlsFacts);
    impl std::fmt::Display for List<'_> {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            let list = self.0.client_alpns.as_slice();
            if list.is_empty() {
                return f.write_str("(none)");
            }
            for (i, a) in list.iter().enumerate() {
                if i > 0 {
                    f.write_str(",")?;
                }
                f.write_str(a.as_str())?;
            }
            Ok(())
        }
    }
    e.add("client_alpns", List(t));
}

impl Check for SniCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        if let (Event::TlsClientHello(ch), Some(t)) = (event, view.tls) {
            self.on_client_hello(view, t, ch, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::fixtures::tls as build;
    use crate::proto::tls::{TlsEvent, TlsScratch};
    use crate::proto::DirIdent;

    /// Parses a ClientHello record as inspection does and runs the check on it.
    fn run(cfg: &SniConfig, hello: &[u8], server_port: u16) -> Vec<Finding> {
        let mut t = TlsFacts::default();
        let mut d = t.dirs[0];
        let mut out = Findings::default();
        let check = SniCheck::new(cfg);
        d.feed(hello, &mut TlsScratch::new(1 << 16), |ev| {
            t.summary.observe(Dir::ToServer, &ev);
            if let TlsEvent::ClientHello(ch) = ev {
                for a in ch.alpn.as_slice() {
                    t.client_alpns.push(*a);
                }
                let v = FlowView {
                    client_addr: [10, 0, 0, 1].into(),
                    server_addr: [192, 0, 2, 10].into(),
                    client_port: 50000,
                    server_port,
                    ident: [DirIdent::default(); 2],
                    tls: Some(&t),
                    trail: None,
                    http: None,
                    seen_from_start: [true, true],
                    pkts: [3, 3],
                    bytes: [500, 500],
                    first_ts: Timestamp(0),
                    now: Timestamp(0),
                };
                check.on_event(&v, &Event::TlsClientHello(ch), &mut out);
            }
        });
        out.iter().copied().collect()
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    fn hello(sni: Option<&str>, alpn: &[&str]) -> Vec<u8> {
        build::client_hello(&build::Hello {
            sni,
            alpn,
            ..build::Hello::default()
        })
    }

    #[test]
    fn named_hello_raises_nothing() {
        let cfg = SniConfig::default();
        assert!(run(&cfg, &hello(Some("www.example.com"), &["h2"]), 443).is_empty());
    }

    #[test]
    fn ip_literals_are_recognised() {
        for ip in ["192.0.2.1", "2001:db8::1", "[2001:db8::1]", "10.0.0.1."] {
            assert!(is_ip_literal(ip), "{ip}");
        }
        for name in [
            "example.com",
            "1.2.3.example",
            "256.1.1.1",
            "",
            "[example.com]",
        ] {
            assert!(!is_ip_literal(name), "{name}");
        }
        let f = run(
            &SniConfig::default(),
            &hello(Some("192.0.2.10"), &["h2"]),
            443,
        );
        assert_eq!(kinds(&f), [FindingKind::SniIpLiteral]);
        assert_eq!(f[0].evidence.get("sni_is_server_addr"), Some("true"));
        assert!(!f[0].block);
        let off = SniConfig {
            ip_literal: false,
            ..SniConfig::default()
        };
        assert!(run(&off, &hello(Some("192.0.2.10"), &["h2"]), 443).is_empty());
    }

    #[test]
    fn missing_sni_on_web_ports_and_web_alpn_without_sni() {
        let cfg = SniConfig::default();
        let f = run(&cfg, &hello(None, &["h2", "http/1.1"]), 443);
        assert_eq!(
            kinds(&f),
            [FindingKind::SniMissing, FindingKind::SniAlpnMismatch]
        );
        assert_eq!(f[1].evidence.get("alpn"), Some("h2"));
        assert_eq!(f[0].evidence.get("client_alpns"), Some("h2,http/1.1"));
        // Not a web port, no web ALPN: a non-web client (DoT, mail, VPN) - nothing.
        assert!(run(&cfg, &hello(None, &[]), 853).is_empty());
        assert!(run(&cfg, &hello(None, &["dot"]), 853).is_empty());
        // A web ALPN on another port still contradicts the missing name.
        assert_eq!(
            kinds(&run(&cfg, &hello(None, &["http/1.1"]), 8080)),
            [FindingKind::SniAlpnMismatch]
        );
        // A web port without ALPN: only the port rule.
        assert_eq!(
            kinds(&run(&cfg, &hello(None, &[]), 443)),
            [FindingKind::SniMissing]
        );
        // Both rules off.
        let off = SniConfig {
            missing_sni_ports: vec![],
            web_alpns: vec![],
            ..SniConfig::default()
        };
        assert!(run(&off, &hello(None, &["h2"]), 443).is_empty());
    }

    #[test]
    fn validation_names_key_value_and_accepted() {
        let bad = SniConfig {
            missing_sni_ports: vec![443, 0],
            ..SniConfig::default()
        };
        assert!(
            matches!(bad.validate("x"), Err(KeyError { key, .. }) if key == "detect.sni.missing_sni_ports[1]")
        );
        let bad = SniConfig {
            web_alpns: vec![String::new()],
            ..SniConfig::default()
        };
        match bad.validate("x") {
            Err(KeyError { key, message, .. }) => {
                assert_eq!(key, "detect.sni.web_alpns[0]");
                assert!(message.contains("accepted"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        assert!(SniConfig::default().validate("x").is_ok());
    }
}
