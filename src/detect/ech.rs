//! Encrypted ClientHello (ECH, 0xfe0d) and its predecessor ESNI (0xffce) used as a disguise
//! rather than for privacy (DET0470 HeaderAnomalyScore, IssuerOrgFilter and
//! TLSFingerprintMatch families).
//!
//! | rule | finding | confidence |
//! |---|---|---|
//! | ESNI together with a cleartext server_name | `esni_with_cleartext_sni` | 75 |
//! | ECH, and the certificate the server shows does not cover the outer (public) name | `ech_public_name_mismatch` | 85 |
//! | ECH or ESNI from a hello no browser sends ([`BrowserShape`]) | `ech_non_browser_client` | 60, +10 per further trait, at most 85 |
//!
//! Chrome and Firefox send an ECH extension on every hello: a real one where the site
//! publishes an ECH config, a GREASE one (random config id, key and payload, RFC 9849 6.2)
//! everywhere else, and the two cannot be told apart on the wire. So the extension alone is
//! never a finding; only what it comes with is.
//!
//! - ESNI hid the name in place of server_name: Firefox, the one browser that shipped it,
//!   sent no cleartext name beside it. A hello carrying both is named for the observer while
//!   claiming to hide something (drafts -01 to -03 let a client add a dummy name, so it is
//!   not certain).
//! - ECH is TLS 1.3 only, and an accepted ECH keeps the certificate encrypted. A certificate
//!   in the clear after an ECH hello means ECH was not used, and RFC 9849 6.1.6 has the client
//!   authenticate that handshake against the outer name; a certificate that does not cover it
//!   is no ECH front. (`cert_name_mismatch` fires too; this finding says the name was an ECH
//!   public name.) With TLS 1.3 the certificate is never seen, and nothing is judged.
//! - ECH (and ESNI) shipped in browsers first; a library or tool offering it is possible
//!   (Go 1.23 and curl built against an ECH-capable TLS library can) but rare, and a hello
//!   whose shape is no browser's while carrying a browser-only extension is what a tunnel
//!   dressed as browser traffic looks like. The shape model is the shared one in
//!   `proto::fingerprint` and is judged on the first ClientHello.

use std::fmt;

use serde::{Deserialize, Serialize};

use super::certificate::SanList;
use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::TlsFacts;
use crate::proto::fingerprint::BrowserShape;
use crate::proto::tls::{ClientHello, EchType, HiddenName};
use crate::proto::x509::{CertInfo, NameMatch};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct EchConfig {
    pub enabled: bool,
    pub block: bool,
    /// ESNI offered together with a cleartext server_name.
    pub esni_with_sni: bool,
    /// ECH offered, and the certificate shown in the clear does not cover the outer name.
    pub public_name_mismatch: bool,
    /// ECH or ESNI offered by a hello whose shape no browser sends.
    pub non_browser: bool,
    /// Fewest non-browser traits (see `proto::fingerprint::BrowserShape`) that make a finding.
    pub non_browser_min_traits: u8,
}

impl Default for EchConfig {
    fn default() -> Self {
        EchConfig {
            enabled: true,
            block: false,
            esni_with_sni: true,
            public_name_mismatch: true,
            non_browser: true,
            non_browser_min_traits: 1,
        }
    }
}

impl EchConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let traits = (BrowserShape::TRAITS + WireOddities::TRAITS) as u8;
        if !(1..=traits).contains(&self.non_browser_min_traits) {
            return Err(KeyError {
                path: path.into(),
                key: "detect.ech.non_browser_min_traits".into(),
                message: format!(
                    "invalid value {}; accepted: 1 to {traits}",
                    self.non_browser_min_traits
                ),
            });
        }
        Ok(())
    }
}

pub struct EchCheck {
    cfg: EchConfig,
}

const ESNI_WITH_SNI_CONFIDENCE: u8 = 75;
const PUBLIC_NAME_MISMATCH_CONFIDENCE: u8 = 85;
const NON_BROWSER_CONFIDENCE: u8 = 60;
const NON_BROWSER_PER_TRAIT: u8 = 10;
const NON_BROWSER_MAX: u8 = 85;

impl EchCheck {
    pub fn new(cfg: &EchConfig) -> Self {
        EchCheck { cfg: cfg.clone() }
    }

    fn finding(&self, kind: FindingKind, confidence: u8, t: &TlsFacts) -> Finding {
        let mut evidence = Evidence::default();
        evidence.add("extensions", Extensions(&t.summary.hidden));
        Finding {
            kind,
            confidence,
            block: self.cfg.block,
            dir: Dir::ToServer,
            evidence,
        }
    }

    fn on_client_hello(&self, t: &TlsFacts, ch: &ClientHello, out: &mut Findings) {
        let s = &t.summary;
        // Judged once, on the client's first hello (the one the summary recorded).
        if !s.client_hello_seen || s.client_hellos != 1 || s.sslv2_hello || !s.hidden.any() {
            return;
        }
        if self.cfg.esni_with_sni && s.hidden.esni.is_some() && s.has_sni && !s.sni.is_empty() {
            let mut f = self.finding(
                FindingKind::EsniWithCleartextSni,
                ESNI_WITH_SNI_CONFIDENCE,
                t,
            );
            f.evidence.add("sni", s.sni.as_str());
            add_fingerprint(&mut f.evidence, t);
            out.push(f);
        }
        if self.cfg.non_browser {
            let shape = BrowserShape::of(ch);
            let wire = WireOddities::of(&s.hidden);
            let traits = shape.count() + wire.count();
            if traits >= u32::from(self.cfg.non_browser_min_traits) {
                let extra = u8::try_from(traits.saturating_sub(1)).unwrap_or(u8::MAX);
                let confidence = NON_BROWSER_CONFIDENCE
                    .saturating_add(extra.saturating_mul(NON_BROWSER_PER_TRAIT))
                    .min(NON_BROWSER_MAX);
                let mut f = self.finding(FindingKind::EchNonBrowserClient, confidence, t);
                f.evidence.add("not_browser", Traits(shape, wire));
                add_fingerprint(&mut f.evidence, t);
                add_sni(&mut f.evidence, t);
                f.evidence.add("client_alpns", Alpns(ch));
                f.evidence.add("ciphers", ch.ciphers.total());
                out.push(f);
            }
        }
    }

    fn on_certificate(&self, t: &TlsFacts, c: &CertInfo, out: &mut Findings) {
        let s = &t.summary;
        if !self.cfg.public_name_mismatch
            || s.hidden.ech.is_none()
            || !s.has_sni
            || c.host_match != Some(NameMatch::Mismatch)
        {
            return;
        }
        let mut f = self.finding(
            FindingKind::EchPublicNameMismatch,
            PUBLIC_NAME_MISMATCH_CONFIDENCE,
            t,
        );
        f.dir = Dir::ToClient;
        f.evidence.add("public_name", s.sni.as_str());
        f.evidence.add("subject", c.subject.as_str());
        f.evidence.add("san_dns", SanList(c));
        f.evidence.add("issuer", c.issuer.as_str());
        f.evidence.add("version", Hex(s.negotiated_version));
        add_fingerprint(&mut f.evidence, t);
        out.push(f);
    }
}

impl Check for EchCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Some(t) = view.tls else {
            return;
        };
        match event {
            Event::TlsClientHello(ch) => self.on_client_hello(t, ch, out),
            Event::TlsLeafCertificate(c) => self.on_certificate(t, c, out),
            _ => {}
        }
    }
}

fn add_fingerprint(e: &mut Evidence, t: &TlsFacts) {
    if let Some(ja4) = &t.summary.ja4 {
        e.add("ja4", ja4.as_str());
    }
}

fn add_sni(e: &mut Evidence, t: &TlsFacts) {
    let s = &t.summary;
    if s.has_sni {
        e.add("sni", s.sni.as_str());
    } else {
        e.add("sni", "(none)");
    }
}

/// What an ECH or ESNI body shows that a browser's never does: the inner-hello marker on the
/// wire (it belongs inside the encrypted payload) or a body that does not parse.
#[derive(Debug, Clone, Copy, Default)]
struct WireOddities {
    inner_on_wire: bool,
    ech_malformed: bool,
    esni_malformed: bool,
}

impl WireOddities {
    const TRAITS: usize = 3;

    fn of(h: &HiddenName) -> Self {
        WireOddities {
            inner_on_wire: h.ech.is_some_and(|e| e.ty == EchType::Inner),
            ech_malformed: h.ech.is_some_and(|e| !e.well_formed),
            esni_malformed: h.esni.is_some_and(|e| !e.well_formed),
        }
    }

    fn count(self) -> u32 {
        u32::from(self.inner_on_wire)
            + u32::from(self.ech_malformed)
            + u32::from(self.esni_malformed)
    }
}

struct Traits(BrowserShape, WireOddities);

impl fmt::Display for Traits {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let wire = [
            (self.1.inner_on_wire, "ech_inner_type_on_wire"),
            (self.1.ech_malformed, "ech_body_malformed"),
            (self.1.esni_malformed, "esni_body_malformed"),
        ];
        let names = self
            .0
            .names()
            .chain(wire.into_iter().filter(|(on, _)| *on).map(|(_, n)| n));
        for (i, n) in names.enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(n)?;
        }
        Ok(())
    }
}

/// `ech(type=outer,kdf=0x0001,aead=0x0001,config_id=7,enc=32,payload=200)` and/or
/// `esni(suite=0x1301,group=0x001d,key=32,digest=32,payload=100)`.
struct Extensions<'a>(&'a HiddenName);

impl fmt::Display for Extensions<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(e) = &self.0.ech {
            write!(
                f,
                "ech(type={},kdf={:#06x},aead={:#06x},config_id={},enc={},payload={})",
                e.ty.name(),
                e.kdf,
                e.aead,
                e.config_id,
                e.enc_len,
                e.payload_len
            )?;
        }
        if let Some(e) = &self.0.esni {
            if self.0.ech.is_some() {
                f.write_str(",")?;
            }
            write!(
                f,
                "esni(suite={:#06x},group={:#06x},key={},digest={},payload={})",
                e.suite, e.group, e.key_len, e.digest_len, e.payload_len
            )?;
        }
        Ok(())
    }
}

struct Alpns<'a>(&'a ClientHello);

impl fmt::Display for Alpns<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let list = self.0.alpn.as_slice();
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

struct Hex(u16);

impl fmt::Display for Hex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#06x}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::fixtures::{self, tls as build};
    use crate::proto::tls::testdata::{self, bytes};
    use crate::proto::tls::{ext, TlsEvent, TlsScratch};
    use crate::proto::DirIdent;

    fn view(t: &TlsFacts) -> FlowView<'_> {
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [192, 0, 2, 10].into(),
            client_port: 50000,
            server_port: 443,
            ident: [DirIdent::default(); 2],
            tls: Some(t),
            trail: None,
            http: None,
            seen_from_start: [true, true],
            pkts: [3, 3],
            bytes: [500, 500],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        }
    }

    /// Parses a ClientHello record as inspection does, runs the check on it, and returns the
    /// facts (for a certificate to follow) with the findings.
    fn hello(cfg: &EchConfig, record: &[u8]) -> (TlsFacts, Vec<Finding>) {
        let mut t = TlsFacts::default();
        let mut d = t.dirs[0];
        let mut out = Findings::default();
        let check = EchCheck::new(cfg);
        d.feed(record, &mut TlsScratch::new(1 << 16), |ev| {
            t.summary.observe(Dir::ToServer, &ev);
            if let TlsEvent::ClientHello(ch) = ev {
                check.on_event(&view(&t), &Event::TlsClientHello(ch), &mut out);
            }
        });
        (t, out.iter().copied().collect())
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    /// A Chromium-shaped fixture hello (GREASE, h2, 15 suites) with the given extensions.
    fn browserish(sni: Option<&str>, extra: &[(u16, &[u8])]) -> Vec<u8> {
        build::client_hello(&build::Hello {
            sni,
            grease: true,
            extra,
            ..build::Hello::default()
        })
    }

    #[test]
    fn grease_ech_from_browsers_is_never_a_finding() {
        let cfg = EchConfig::default();
        // Chrome's own hello, ECH extension and all.
        let (t, f) = hello(&cfg, &bytes(testdata::CHROME_ECH_HELLO));
        assert!(t.summary.hidden.ech.is_some());
        assert!(f.is_empty(), "{f:?}");
        // Firefox's ESNI hello: no cleartext name beside it.
        let (t, f) = hello(&cfg, &bytes(testdata::FIREFOX_ESNI_HELLO));
        assert!(t.summary.hidden.esni.is_some());
        assert!(f.is_empty(), "{f:?}");
        // The fixture's browser shape with an ECH extension of any payload size.
        for len in [1, 144, 239, 400] {
            let ech = build::ech_outer(0x5a, len);
            let (_, f) = hello(
                &cfg,
                &browserish(
                    Some("www.example.com"),
                    &[(ext::ENCRYPTED_CLIENT_HELLO, &ech)],
                ),
            );
            assert!(f.is_empty(), "{len}: {f:?}");
        }
    }

    #[test]
    fn esni_beside_a_cleartext_name() {
        let cfg = EchConfig::default();
        let esni = build::esni(96);
        let (_, f) = hello(
            &cfg,
            &browserish(
                Some("cover.example.net"),
                &[(ext::ENCRYPTED_SERVER_NAME, &esni)],
            ),
        );
        assert_eq!(kinds(&f), [FindingKind::EsniWithCleartextSni]);
        assert_eq!(f[0].confidence, 75);
        assert_eq!(f[0].evidence.get("sni"), Some("cover.example.net"));
        assert_eq!(
            f[0].evidence.get("extensions"),
            Some("esni(suite=0x1301,group=0x001d,key=32,digest=32,payload=96)")
        );
        assert!(f[0]
            .evidence
            .get("ja4")
            .is_some_and(|j| j.starts_with("t13d")));
        assert!(!f[0].block);
        // Without the name: what Firefox sent.
        let (_, f) = hello(
            &cfg,
            &browserish(None, &[(ext::ENCRYPTED_SERVER_NAME, &esni)]),
        );
        assert!(f.is_empty(), "{f:?}");
        let off = EchConfig {
            esni_with_sni: false,
            ..EchConfig::default()
        };
        let (_, f) = hello(
            &off,
            &browserish(
                Some("cover.example.net"),
                &[(ext::ENCRYPTED_SERVER_NAME, &esni)],
            ),
        );
        assert!(f.is_empty());
    }

    #[test]
    fn ech_from_a_hello_no_browser_sends() {
        let cfg = EchConfig::default();
        let ech = build::ech_outer(1, 200);
        let exts: &[(u16, &[u8])] = &[(ext::ENCRYPTED_CLIENT_HELLO, &ech)];
        // A library hello: no GREASE, no record_size_limit.
        let lib = build::client_hello(&build::Hello {
            extra: exts,
            ..build::Hello::default()
        });
        let (_, f) = hello(&cfg, &lib);
        assert_eq!(kinds(&f), [FindingKind::EchNonBrowserClient]);
        assert_eq!(f[0].confidence, 60);
        assert_eq!(
            f[0].evidence.get("not_browser"),
            Some("no_grease_nor_record_size_limit")
        );
        assert_eq!(
            f[0].evidence.get("extensions"),
            Some("ech(type=outer,kdf=0x0001,aead=0x0001,config_id=1,enc=32,payload=200)")
        );
        assert_eq!(f[0].evidence.get("sni"), Some("www.example.com"));
        // A tunnel: no ALPN, no TLS 1.3, a short list: every trait adds 10, up to 85.
        let tunnel = build::client_hello(&build::Hello {
            alpn: &[],
            tls13: false,
            ciphers: &[0xc02f, 0xc030],
            extra: exts,
            ..build::Hello::default()
        });
        let (_, f) = hello(&cfg, &tunnel);
        assert_eq!(kinds(&f), [FindingKind::EchNonBrowserClient]);
        assert_eq!(f[0].confidence, 85);
        assert_eq!(
            f[0].evidence.get("not_browser"),
            Some("no_grease_nor_record_size_limit,no_h2_or_http1.1_alpn,no_tls13,missing_tls13_suites,cipher_count_outside_10_to_32")
        );
        assert_eq!(f[0].evidence.get("client_alpns"), Some("(none)"));
        // The inner-hello marker on the wire, from an otherwise browser-shaped hello.
        let (_, f) = hello(
            &cfg,
            &browserish(
                Some("www.example.com"),
                &[(ext::ENCRYPTED_CLIENT_HELLO, &[1])],
            ),
        );
        assert_eq!(kinds(&f), [FindingKind::EchNonBrowserClient]);
        assert_eq!(
            f[0].evidence.get("not_browser"),
            Some("ech_inner_type_on_wire")
        );
        // The threshold: two traits needed, the library hello has one.
        let two = EchConfig {
            non_browser_min_traits: 2,
            ..EchConfig::default()
        };
        assert!(hello(&two, &lib).1.is_empty());
        // No ECH, no judgement, whatever the shape.
        let plain = build::client_hello(&build::Hello::default());
        assert!(hello(&cfg, &plain).1.is_empty());
    }

    #[test]
    fn certificate_not_covering_the_public_name() {
        let cfg = EchConfig::default();
        let check = EchCheck::new(&cfg);
        let ech = build::ech_outer(3, 180);
        let run = |sni: &str, with_ech: bool| {
            let exts: &[(u16, &[u8])] = &[(ext::ENCRYPTED_CLIENT_HELLO, &ech)];
            let record = browserish(Some(sni), if with_ech { exts } else { &[] });
            let (mut t, f) = hello(&cfg, &record);
            assert!(f.is_empty());
            t.summary.negotiated_version = 0x0303;
            let cert = CertInfo::from_der_for_host(fixtures::CERT_WWW_EXAMPLE_COM, Some(sni))
                .expect("fixture certificate");
            let mut out = Findings::default();
            check.on_event(&view(&t), &Event::TlsLeafCertificate(&cert), &mut out);
            out.iter().copied().collect::<Vec<_>>()
        };
        let f = run("ech-front.example.net", true);
        assert_eq!(kinds(&f), [FindingKind::EchPublicNameMismatch]);
        assert_eq!(f[0].confidence, 85);
        assert_eq!(f[0].dir, Dir::ToClient);
        assert_eq!(
            f[0].evidence.get("public_name"),
            Some("ech-front.example.net")
        );
        assert!(f[0]
            .evidence
            .get("san_dns")
            .is_some_and(|s| s.contains("www.example.com")));
        assert_eq!(f[0].evidence.get("version"), Some("0x0303"));
        // The certificate covers the public name: an ECH front that declined, nothing wrong.
        assert!(run("www.example.com", true).is_empty());
        // No ECH: cert_name_mismatch's business alone.
        assert!(run("ech-front.example.net", false).is_empty());
    }

    #[test]
    fn validation_names_key_value_and_accepted() {
        assert!(EchConfig::default().validate("x").is_ok());
        for bad in [0, 10] {
            let cfg = EchConfig {
                non_browser_min_traits: bad,
                ..EchConfig::default()
            };
            match cfg.validate("f.toml") {
                Err(KeyError { path, key, message }) => {
                    assert_eq!(path, "f.toml");
                    assert_eq!(key, "detect.ech.non_browser_min_traits");
                    assert_eq!(message, format!("invalid value {bad}; accepted: 1 to 9"));
                }
                other => panic!("{other:?}"),
            }
        }
    }
}
