//! Server certificates (DET0470 IssuerOrgFilter): issuer organisation allow and watch lists,
//! self-signed, expired or not yet valid at packet time, validity too long, SNI not covered,
//! unparsable DER, and fatal alerts right after the certificate.
//!
//! Only the server's leaf certificate is judged, and only where it travels in the clear (TLS
//! 1.2 and earlier; TLS 1.3 encrypts it). Times are the packet's, so a replay judges a
//! capture as it was when it was taken.
//!
//! | rule | finding | confidence | blocks (with `block`) |
//! |---|---|---|---|
//! | an issuer O= is on `issuer_org_watch` | `cert_issuer_watched` | 90 | yes |
//! | `issuer_org_allow` is set and no issuer O= is on it | `cert_issuer_not_allowed` | 80 | yes |
//! | issuer DN = subject DN (and key ids agree) | `cert_self_signed` | 90 | yes |
//! | notAfter + `clock_skew_secs` < packet time | `cert_expired` | 95 | yes |
//! | notBefore − `clock_skew_secs` > packet time | `cert_not_yet_valid` | 90 | yes |
//! | CA-issued, non-CA leaf valid longer than public CAs may issue | `cert_validity_too_long` | 60 | no |
//! | the SNI matches no SAN (or CN without SAN), RFC 6125 wildcards | `cert_name_mismatch` | 90 | yes |
//! | the leaf's DER does not parse | `cert_invalid` | 85 | yes |
//! | a fatal alert follows the certificate | `tls_fatal_alert_after_certificate` | 80 certificate alerts, 50 others | no |
//!
//! Validity: the CA/Browser Forum Baseline Requirements cap a publicly trusted leaf at 398
//! days for certificates issued since 2020-09-01 (`max_validity_days`); earlier certificates
//! are held to the cap in force when they were issued (825 days from 2018-03-01, 39 months
//! from 2015-04-01, 60 months before), so old captures are not flagged for following old
//! rules. CA certificates served as leaves and self-signed certificates are not judged here:
//! their lifetimes follow no public rule (and self-signed has its own finding). Private PKIs
//! issue long-lived leaves by design (VPN appliances, remote-desktop relays): the finding is
//! low severity and never blocks; set `max_validity_days = 0` where that is the norm.

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::TlsFacts;
use crate::proto::x509::{CertInfo, NameMatch};
use crate::text::TlsDate;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificateConfig {
    pub enabled: bool,
    pub block: bool,
    /// DET0470 IssuerOrgFilter, allow mode: when not empty, leaves from other issuer
    /// organisations are flagged.
    pub issuer_org_allow: Vec<String>,
    /// DET0470 IssuerOrgFilter, watch mode: leaves from these issuer organisations are flagged.
    pub issuer_org_watch: Vec<String>,
    pub self_signed: bool,
    pub expired: bool,
    pub not_yet_valid: bool,
    /// Tolerance for the sensor's and the server's clocks, both ways.
    pub clock_skew_secs: u32,
    /// Longest validity (days) of a CA-issued leaf issued since 2020-09-01; 0 turns the rule off.
    pub max_validity_days: u32,
    pub name_mismatch: bool,
    pub invalid: bool,
    pub fatal_alert_after_certificate: bool,
}

impl Default for CertificateConfig {
    fn default() -> Self {
        CertificateConfig {
            enabled: true,
            block: true,
            issuer_org_allow: Vec::new(),
            issuer_org_watch: Vec::new(),
            self_signed: true,
            expired: true,
            not_yet_valid: true,
            clock_skew_secs: 300,
            max_validity_days: 398,
            name_mismatch: true,
            invalid: true,
            fatal_alert_after_certificate: true,
        }
    }
}

/// An organisation name must fit the certificate facts' name capacity to ever match.
const ORG_MAX_LEN: usize = crate::proto::x509::NAME_TEXT_LEN;

impl CertificateConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let err = |key: String, message: String| KeyError {
            path: path.into(),
            key,
            message,
        };
        for (list, name) in [
            (&self.issuer_org_allow, "issuer_org_allow"),
            (&self.issuer_org_watch, "issuer_org_watch"),
        ] {
            for (i, org) in list.iter().enumerate() {
                if org.trim().is_empty() || org.len() > ORG_MAX_LEN {
                    return Err(err(
                        format!("detect.certificate.{name}[{i}]"),
                        format!(
                            "invalid organisation {org:?}; accepted: a non-empty O= value of at \
                             most {ORG_MAX_LEN} bytes, matched exactly, ignoring ASCII case"
                        ),
                    ));
                }
            }
        }
        if self.clock_skew_secs > 86_400 {
            return Err(err(
                "detect.certificate.clock_skew_secs".into(),
                format!(
                    "invalid value {}; accepted: 0 to 86400",
                    self.clock_skew_secs
                ),
            ));
        }
        if self.max_validity_days > 36_500 {
            return Err(err(
                "detect.certificate.max_validity_days".into(),
                format!(
                    "invalid value {}; accepted: 0 (off) to 36500",
                    self.max_validity_days
                ),
            ));
        }
        Ok(())
    }
}

pub struct CertificateCheck {
    cfg: CertificateConfig,
}

/// Unix seconds of the Baseline Requirements' validity caps, newest first:
/// (issued on or after, cap in days; 0 = the configured `max_validity_days`).
const VALIDITY_ERAS: [(i64, u32); 4] = [
    (1_598_918_400, 0),    // 2020-09-01: 398 days (configurable)
    (1_519_862_400, 825),  // 2018-03-01: 825 days
    (1_427_846_400, 1185), // 2015-04-01: 39 months
    (i64::MIN, 1826),      // before: 60 months
];

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

/// TLS alert descriptions that reject a certificate (RFC 5246 7.2.2, RFC 8446 6.2).
fn certificate_alert(description: u8) -> bool {
    matches!(description, 42..=49 | 111 | 112 | 116)
}

impl CertificateCheck {
    pub fn new(cfg: &CertificateConfig) -> Self {
        CertificateCheck { cfg: cfg.clone() }
    }

    fn finding(&self, kind: FindingKind, confidence: u8, block: bool) -> Finding {
        Finding {
            kind,
            confidence,
            block: block && self.cfg.block,
            dir: Dir::ToClient,
            evidence: Evidence::default(),
        }
    }

    /// The validity cap (days) for a certificate issued at `not_before`; 0 means none.
    fn validity_cap(&self, not_before: i64) -> u32 {
        VALIDITY_ERAS
            .iter()
            .find(|(since, _)| not_before >= *since)
            .map_or(0, |(_, cap)| {
                if *cap == 0 {
                    self.cfg.max_validity_days
                } else {
                    *cap
                }
            })
    }

    fn on_leaf(&self, view: &FlowView<'_>, c: &CertInfo, out: &mut Findings) {
        let sni = view
            .tls
            .filter(|t| t.summary.has_sni)
            .map(|t| t.summary.sni.as_str());
        let base = |f: &mut Finding| {
            f.evidence.add("subject", c.subject.as_str());
            f.evidence.add("issuer", c.issuer.as_str());
        };
        let orgs = c.issuer_orgs.as_slice();
        let on = |list: &[String]| {
            orgs.iter()
                .find(|o| list.iter().any(|l| l.eq_ignore_ascii_case(o.as_str())))
        };
        if let Some(org) = on(&self.cfg.issuer_org_watch) {
            let mut f = self.finding(FindingKind::CertIssuerWatched, 90, true);
            f.evidence.add("issuer_org", org.as_str());
            base(&mut f);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        if !self.cfg.issuer_org_allow.is_empty() && on(&self.cfg.issuer_org_allow).is_none() {
            let mut f = self.finding(FindingKind::CertIssuerNotAllowed, 80, true);
            f.evidence
                .add("issuer_org", orgs.first().map_or("(none)", |o| o.as_str()));
            base(&mut f);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        if self.cfg.self_signed && c.self_signed {
            let mut f = self.finding(FindingKind::CertSelfSigned, 90, true);
            base(&mut f);
            f.evidence.add("is_ca", c.is_ca);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        let now = view.now.secs().min(i64::MAX as u64) as i64;
        let skew = self.cfg.clock_skew_secs as i64;
        if self.cfg.expired && c.not_after.saturating_add(skew) < now {
            let mut f = self.finding(FindingKind::CertExpired, 95, true);
            f.evidence.add("not_after", TlsDate(c.not_after));
            f.evidence.add("packet_time", TlsDate(now));
            f.evidence
                .add("expired_days", now.saturating_sub(c.not_after) / 86_400);
            base(&mut f);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        if self.cfg.not_yet_valid && c.not_before.saturating_sub(skew) > now {
            let mut f = self.finding(FindingKind::CertNotYetValid, 90, true);
            f.evidence.add("not_before", TlsDate(c.not_before));
            f.evidence.add("packet_time", TlsDate(now));
            base(&mut f);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        let cap = self.validity_cap(c.not_before);
        let days = c.validity_days();
        if self.cfg.max_validity_days > 0
            && cap > 0
            && !c.self_signed
            && !c.is_ca
            && days > cap as i64
        {
            let mut f = self.finding(FindingKind::CertValidityTooLong, 60, false);
            f.evidence.add("validity_days", days);
            f.evidence.add("max_days", cap);
            f.evidence.add("not_before", TlsDate(c.not_before));
            f.evidence.add("not_after", TlsDate(c.not_after));
            base(&mut f);
            add_sni(&mut f.evidence, sni);
            out.push(f);
        }
        if let (true, Some(NameMatch::Mismatch), Some(host)) =
            (self.cfg.name_mismatch, c.host_match, sni)
        {
            // An IP address as SNI is already a broken client (sni_ip_literal), and almost no
            // certificate names an address: the mismatch follows from it and says less than a
            // name the certificate does not cover (Teams' media relays do this, benignly).
            let ip_literal = host.parse::<std::net::IpAddr>().is_ok();
            let confidence = if ip_literal { 60 } else { 90 };
            let mut f = self.finding(FindingKind::CertNameMismatch, confidence, true);
            f.evidence.add("sni", host);
            if ip_literal {
                f.evidence.add("sni_is_ip_literal", true);
            }
            f.evidence.add("subject", c.subject.as_str());
            f.evidence.add("san_dns", SanList(c));
            f.evidence.add("issuer", c.issuer.as_str());
            out.push(f);
        }
    }

    fn on_alert(&self, t: &TlsFacts, dir: Dir, level: u8, description: u8, out: &mut Findings) {
        if !self.cfg.fatal_alert_after_certificate || level != 2 || !t.fatal_alert_after_certificate
        {
            return;
        }
        let confidence = if certificate_alert(description) {
            80
        } else {
            50
        };
        let mut f = self.finding(
            FindingKind::TlsFatalAlertAfterCertificate,
            confidence,
            false,
        );
        f.dir = dir;
        f.evidence.add("alert", AlertName(description));
        f.evidence.add(
            "sent_by",
            match dir {
                Dir::ToServer => "client",
                Dir::ToClient => "server",
            },
        );
        f.evidence.add("direction", dir_name(dir));
        if let Some(leaf) = &t.leaf {
            f.evidence.add("subject", leaf.subject.as_str());
            f.evidence.add("issuer", leaf.issuer.as_str());
        }
        add_sni(
            &mut f.evidence,
            t.summary.has_sni.then(|| t.summary.sni.as_str()),
        );
        out.push(f);
    }
}

fn add_sni(e: &mut Evidence, sni: Option<&str>) {
    if let Some(s) = sni {
        e.add("sni", s);
    }
}

/// The SAN DNS names kept for the certificate, comma-separated (`(none)` without SAN).
pub(super) struct SanList<'a>(pub(super) &'a CertInfo);

impl std::fmt::Display for SanList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let names = self.0.san_dns.as_slice();
        if !self.0.has_san {
            return f.write_str("(no subjectAltName)");
        }
        for (i, n) in names.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(n.as_str())?;
        }
        if self.0.san_dns.overflowed() {
            write!(f, ",+{}", self.0.san_dns.total() - names.len())?;
        }
        Ok(())
    }
}

/// An alert description as `name (n)`.
struct AlertName(u8);

impl std::fmt::Display for AlertName {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let name = match self.0 {
            0 => "close_notify",
            10 => "unexpected_message",
            20 => "bad_record_mac",
            22 => "record_overflow",
            40 => "handshake_failure",
            42 => "bad_certificate",
            43 => "unsupported_certificate",
            44 => "certificate_revoked",
            45 => "certificate_expired",
            46 => "certificate_unknown",
            47 => "illegal_parameter",
            48 => "unknown_ca",
            49 => "access_denied",
            50 => "decode_error",
            51 => "decrypt_error",
            70 => "protocol_version",
            71 => "insufficient_security",
            80 => "internal_error",
            86 => "inappropriate_fallback",
            90 => "user_canceled",
            109 => "missing_extension",
            110 => "unsupported_extension",
            112 => "unrecognized_name",
            111 => "certificate_unobtainable",
            113 => "bad_certificate_status_response",
            115 => "unknown_psk_identity",
            116 => "certificate_required",
            120 => "no_application_protocol",
            _ => "unknown",
        };
        write!(f, "{name} ({})", self.0)
    }
}

impl Check for CertificateCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        match *event {
            Event::TlsLeafCertificate(c) => self.on_leaf(view, c, out),
            Event::TlsCertificateInvalid(e) if self.cfg.invalid => {
                let mut f = self.finding(FindingKind::CertInvalid, 85, true);
                f.evidence.add("error", e.name());
                if let Some(t) = view.tls {
                    f.evidence.add("certificates", t.summary.certificates);
                    add_sni(
                        &mut f.evidence,
                        t.summary.has_sni.then(|| t.summary.sni.as_str()),
                    );
                }
                out.push(f);
            }
            Event::TlsAlert {
                dir,
                level,
                description,
            } => {
                if let Some(t) = view.tls {
                    self.on_alert(t, dir, level, description, out);
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::fixtures::{CERT_FIXTURE_ROOT_CA, CERT_WWW_EXAMPLE_COM, FIXTURE_EPOCH};
    use crate::proto::tls::{ClientHello, TlsEvent};
    use crate::proto::x509::CertError;
    use crate::proto::DirIdent;
    use crate::text::InlineStr;

    fn facts(sni: Option<&str>) -> TlsFacts {
        let mut t = TlsFacts::default();
        let mut ch = ClientHello::default();
        if let Some(s) = sni {
            ch.has_sni = true;
            ch.sni = InlineStr::from_str_lossy(s);
        }
        t.summary
            .observe(Dir::ToServer, &TlsEvent::ClientHello(&ch));
        t
    }

    fn view(t: &TlsFacts, now: Timestamp) -> FlowView<'_> {
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            client_port: 50000,
            server_port: 443,
            ident: [DirIdent::default(); 2],
            tls: Some(t),
            trail: None,
            http: None,
            seen_from_start: [true, true],
            pkts: [3, 3],
            bytes: [500, 3000],
            first_ts: now,
            now,
        }
    }

    fn run(cfg: &CertificateConfig, der: &[u8], sni: Option<&str>, now: Timestamp) -> Vec<Finding> {
        let info = CertInfo::from_der_for_host(der, sni).unwrap();
        let t = facts(sni);
        let mut out = Findings::default();
        CertificateCheck::new(cfg).on_event(
            &view(&t, now),
            &Event::TlsLeafCertificate(&info),
            &mut out,
        );
        out.iter().copied().collect()
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    const LEAF: &[u8] = CERT_WWW_EXAMPLE_COM;

    #[test]
    fn valid_leaf_for_its_name_raises_nothing() {
        let cfg = CertificateConfig::default();
        assert!(run(&cfg, LEAF, Some("www.example.com"), FIXTURE_EPOCH).is_empty());
        assert!(run(&cfg, LEAF, Some("EXAMPLE.com."), FIXTURE_EPOCH).is_empty());
        // No SNI: nothing to match.
        assert!(run(&cfg, LEAF, None, FIXTURE_EPOCH).is_empty());
    }

    #[test]
    fn expiry_is_judged_at_packet_time_with_skew() {
        let cfg = CertificateConfig::default();
        let not_after = CertInfo::from_der(LEAF).unwrap().not_after as u64;
        let just_after = Timestamp::from_secs_nanos(not_after + 100, 0);
        assert!(run(&cfg, LEAF, Some("www.example.com"), just_after).is_empty());
        let later = Timestamp::from_secs_nanos(not_after + 86_400 * 3, 0);
        let f = run(&cfg, LEAF, Some("www.example.com"), later);
        assert_eq!(kinds(&f), [FindingKind::CertExpired]);
        assert_eq!(f[0].evidence.get("not_after"), Some("2027-11-23T05:56:54"));
        assert_eq!(f[0].evidence.get("expired_days"), Some("3"));
        assert_eq!(f[0].confidence, 95);
        let off = CertificateConfig {
            expired: false,
            ..CertificateConfig::default()
        };
        assert!(run(&off, LEAF, Some("www.example.com"), later).is_empty());
    }

    #[test]
    fn not_yet_valid_before_not_before() {
        let cfg = CertificateConfig::default();
        let early = Timestamp::from_secs_nanos(1_790_000_000, 0);
        let f = run(&cfg, LEAF, Some("www.example.com"), early);
        assert_eq!(kinds(&f), [FindingKind::CertNotYetValid]);
        assert_eq!(f[0].evidence.get("not_before"), Some("2026-11-23T05:56:54"));
    }

    #[test]
    fn name_mismatch_follows_rfc6125_wildcards_and_san() {
        let cfg = CertificateConfig::default();
        let f = run(&cfg, LEAF, Some("mail.example.com"), FIXTURE_EPOCH);
        assert_eq!(kinds(&f), [FindingKind::CertNameMismatch]);
        assert_eq!(
            f[0].evidence.get("san_dns"),
            Some("www.example.com,example.com")
        );
        assert_eq!(f[0].evidence.get("sni"), Some("mail.example.com"));
        let off = CertificateConfig {
            name_mismatch: false,
            ..CertificateConfig::default()
        };
        assert!(run(&off, LEAF, Some("mail.example.com"), FIXTURE_EPOCH).is_empty());
    }

    #[test]
    fn self_signed_ca_as_leaf_is_self_signed_but_not_too_long() {
        let cfg = CertificateConfig::default();
        let f = run(&cfg, CERT_FIXTURE_ROOT_CA, None, FIXTURE_EPOCH);
        assert_eq!(kinds(&f), [FindingKind::CertSelfSigned]);
        assert_eq!(f[0].evidence.get("is_ca"), Some("true"));
    }

    #[test]
    fn issuer_organisation_lists_match_exactly_ignoring_case() {
        let watch = CertificateConfig {
            issuer_org_watch: vec!["unmask fixture TRUST".into()],
            ..CertificateConfig::default()
        };
        let f = run(&watch, LEAF, Some("www.example.com"), FIXTURE_EPOCH);
        assert_eq!(kinds(&f), [FindingKind::CertIssuerWatched]);
        assert_eq!(
            f[0].evidence.get("issuer_org"),
            Some("Unmask Fixture Trust")
        );
        let partial = CertificateConfig {
            issuer_org_watch: vec!["Unmask Fixture".into()],
            ..CertificateConfig::default()
        };
        assert!(run(&partial, LEAF, Some("www.example.com"), FIXTURE_EPOCH).is_empty());
        let allow = CertificateConfig {
            issuer_org_allow: vec!["Let's Encrypt".into(), "DigiCert Inc".into()],
            ..CertificateConfig::default()
        };
        let f = run(&allow, LEAF, Some("www.example.com"), FIXTURE_EPOCH);
        assert_eq!(kinds(&f), [FindingKind::CertIssuerNotAllowed]);
        let allowed = CertificateConfig {
            issuer_org_allow: vec!["Unmask Fixture Trust".into()],
            ..CertificateConfig::default()
        };
        assert!(run(&allowed, LEAF, Some("www.example.com"), FIXTURE_EPOCH).is_empty());
    }

    #[test]
    fn validity_caps_follow_the_issuance_era() {
        let check = CertificateCheck::new(&CertificateConfig::default());
        assert_eq!(check.validity_cap(1_700_000_000), 398);
        assert_eq!(check.validity_cap(1_550_000_000), 825);
        assert_eq!(check.validity_cap(1_450_000_000), 1185);
        assert_eq!(check.validity_cap(1_000_000_000), 1826);
        // The fixture leaf (365 days, 2026) is within the cap; 300 days is not.
        let strict = CertificateConfig {
            max_validity_days: 300,
            ..CertificateConfig::default()
        };
        let f = run(&strict, LEAF, Some("www.example.com"), FIXTURE_EPOCH);
        assert_eq!(kinds(&f), [FindingKind::CertValidityTooLong]);
        assert_eq!(f[0].evidence.get("validity_days"), Some("365"));
        assert!(!f[0].block);
        let off = CertificateConfig {
            max_validity_days: 0,
            ..CertificateConfig::default()
        };
        assert!(run(&off, LEAF, Some("www.example.com"), FIXTURE_EPOCH).is_empty());
    }

    #[test]
    fn invalid_der_and_fatal_alerts() {
        let check = CertificateCheck::new(&CertificateConfig::default());
        let mut t = facts(Some("www.example.com"));
        let mut out = Findings::default();
        check.on_event(
            &view(&t, FIXTURE_EPOCH),
            &Event::TlsCertificateInvalid(CertError::Truncated),
            &mut out,
        );
        let f: Vec<_> = out.iter().copied().collect();
        assert_eq!(kinds(&f), [FindingKind::CertInvalid]);
        assert_eq!(f[0].evidence.get("error"), Some("truncated"));

        let alert = Event::TlsAlert {
            dir: Dir::ToServer,
            level: 2,
            description: 48,
        };
        let mut out = Findings::default();
        check.on_event(&view(&t, FIXTURE_EPOCH), &alert, &mut out);
        assert!(out.is_empty(), "no certificate was seen");
        t.fatal_alert_after_certificate = true;
        check.on_event(&view(&t, FIXTURE_EPOCH), &alert, &mut out);
        let f: Vec<_> = out.iter().copied().collect();
        assert_eq!(kinds(&f), [FindingKind::TlsFatalAlertAfterCertificate]);
        assert_eq!(f[0].evidence.get("alert"), Some("unknown_ca (48)"));
        assert_eq!(f[0].evidence.get("sent_by"), Some("client"));
        assert_eq!(f[0].confidence, 80);
        let warning = Event::TlsAlert {
            dir: Dir::ToServer,
            level: 1,
            description: 0,
        };
        let mut out = Findings::default();
        check.on_event(&view(&t, FIXTURE_EPOCH), &warning, &mut out);
        assert!(out.is_empty());
    }

    #[test]
    fn validation_names_key_value_and_accepted() {
        let bad = CertificateConfig {
            issuer_org_watch: vec![" ".into()],
            ..CertificateConfig::default()
        };
        match bad.validate("x.toml") {
            Err(KeyError { key, message, .. }) => {
                assert_eq!(key, "detect.certificate.issuer_org_watch[0]");
                assert!(message.contains("non-empty"), "{message}");
            }
            other => panic!("{other:?}"),
        }
        let bad = CertificateConfig {
            clock_skew_secs: 100_000,
            ..CertificateConfig::default()
        };
        assert!(
            matches!(bad.validate("x"), Err(KeyError { key, .. }) if key == "detect.certificate.clock_skew_secs")
        );
        assert!(CertificateConfig::default().validate("x").is_ok());
    }
}
