//! Service identity profiles: a flow whose SNI or Host claims a well-known service but whose
//! certificate, issuer, address, port or protocol contradicts it impersonates that service.
//!
//! Peers check certificates against generic trust; this check knows what a *particular*
//! service looks like. A "mail.google.com" SNI answered by a certificate from some other issuer,
//! or sent to an address outside the service's networks, is T1001.003 in its purest form.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::proto::known_protocol_names;
use crate::proto::AppProto;

/// One well-known service as the network should see it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ServiceProfile {
    pub name: String,
    /// Host names that claim the service: exact names, or `*.example.com` for any subdomain.
    pub hosts: Vec<String>,
    /// Organisations that issue its certificates (the issuer's O=), case-insensitive.
    #[serde(default)]
    pub issuer_orgs: Vec<String>,
    /// Networks its servers live in (CIDR); empty means "not checked".
    #[serde(default)]
    pub server_prefixes: Vec<String>,
    /// Server ports it uses; empty means "not checked".
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Application protocols it speaks (names as in the port map); empty means "not checked".
    #[serde(default)]
    pub protocols: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub enabled: bool,
    pub block: bool,
    pub profiles: Vec<ServiceProfile>,
}

fn strings(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| s.to_string()).collect()
}

impl Default for ServiceConfig {
    /// EXAMPLE profiles for the services MITRE's T1001.003 procedures name. Issuers and
    /// networks of real services change: review them before relying on them.
    fn default() -> Self {
        let google_issuers = strings(&["Google Trust Services", "Google Trust Services LLC"]);
        ServiceConfig {
            enabled: true,
            block: true,
            profiles: vec![
                ServiceProfile {
                    name: "Gmail (example)".into(),
                    hosts: strings(&[
                        "gmail.com",
                        "*.gmail.com",
                        "mail.google.com",
                        "smtp.gmail.com",
                        "imap.gmail.com",
                        "pop.gmail.com",
                    ]),
                    issuer_orgs: google_issuers.clone(),
                    server_prefixes: Vec::new(),
                    ports: vec![443, 465, 587, 993, 995],
                    protocols: strings(&["tls", "smtp", "imap", "pop3"]),
                },
                ServiceProfile {
                    name: "Google Drive (example)".into(),
                    hosts: strings(&[
                        "drive.google.com",
                        "docs.google.com",
                        "drive.usercontent.google.com",
                    ]),
                    issuer_orgs: google_issuers,
                    server_prefixes: Vec::new(),
                    ports: vec![443],
                    protocols: strings(&["tls"]),
                },
                ServiceProfile {
                    name: "Yahoo (example)".into(),
                    hosts: strings(&["yahoo.com", "*.yahoo.com", "*.yimg.com"]),
                    issuer_orgs: strings(&["DigiCert Inc", "DigiCert, Inc."]),
                    server_prefixes: Vec::new(),
                    ports: vec![443, 465, 587, 993, 995],
                    protocols: strings(&["tls", "smtp", "imap", "pop3"]),
                },
            ],
        }
    }
}

/// A host name pattern, lower-cased.
#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(String),
    /// `*.suffix`: one or more labels before `.suffix`.
    Subdomain(String),
}

impl HostPattern {
    fn parse(s: &str) -> Option<HostPattern> {
        let lower = s.trim().to_ascii_lowercase();
        let valid = |h: &str| {
            !h.is_empty()
                && h.split('.').all(|l| {
                    !l.is_empty() && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
                })
        };
        match lower.strip_prefix("*.") {
            Some(rest) if valid(rest) => Some(HostPattern::Subdomain(format!(".{rest}"))),
            Some(_) => None,
            None if valid(&lower) => Some(HostPattern::Exact(lower)),
            None => None,
        }
    }

    /// Case-insensitive, without allocating; a trailing dot (absolute name) is ignored.
    fn matches(&self, host: &str) -> bool {
        let host = host.strip_suffix('.').unwrap_or(host);
        match self {
            HostPattern::Exact(h) => host.eq_ignore_ascii_case(h),
            HostPattern::Subdomain(suffix) => {
                host.len() > suffix.len()
                    && host
                        .get(host.len() - suffix.len()..)
                        .is_some_and(|tail| tail.eq_ignore_ascii_case(suffix))
            }
        }
    }
}

/// A CIDR prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Prefix {
    addr: IpAddr,
    len: u8,
}

impl Prefix {
    fn parse(s: &str) -> Option<Prefix> {
        let (a, l) = s.trim().split_once('/')?;
        let addr: IpAddr = a.parse().ok()?;
        let len: u8 = l.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        (len <= max).then_some(Prefix { addr, len })
    }

    fn contains(&self, ip: IpAddr) -> bool {
        let bits = |a: IpAddr| -> (u128, u8) {
            match a {
                IpAddr::V4(v4) => (u32::from(v4) as u128, 32),
                IpAddr::V6(v6) => (u128::from(v6), 128),
            }
        };
        let ((p, pw), (x, xw)) = (bits(self.addr), bits(ip));
        if pw != xw {
            return false;
        }
        let shift = pw - self.len;
        shift >= pw || (p >> shift) == (x >> shift)
    }
}

/// A profile compiled for matching.
#[derive(Debug, Clone)]
struct Compiled {
    name: String,
    hosts: Vec<HostPattern>,
    issuer_orgs: Vec<String>,
    prefixes: Vec<Prefix>,
    ports: Vec<u16>,
    /// Bit per [`AppProto`]; 0 means not checked.
    protocols: u16,
}

impl ServiceConfig {
    /// Every host pattern, prefix and protocol name must parse.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let err = |key: String, message: String| KeyError {
            path: path.into(),
            key,
            message,
        };
        for (i, p) in self.profiles.iter().enumerate() {
            let key = format!("detect.service.profiles[{i}]");
            if p.name.trim().is_empty() {
                return Err(err(
                    format!("{key}.name"),
                    "empty name; accepted: any non-empty text".into(),
                ));
            }
            if p.hosts.is_empty() {
                return Err(err(
                    format!("{key}.hosts"),
                    format!(
                        "profile {:?} names no host; accepted: host names or *.domain patterns",
                        p.name
                    ),
                ));
            }
            for (j, h) in p.hosts.iter().enumerate() {
                if HostPattern::parse(h).is_none() {
                    return Err(err(
                        format!("{key}.hosts[{j}]"),
                        format!("invalid host pattern {h:?}; accepted: a host name (mail.example.com) or *.domain (*.example.com)"),
                    ));
                }
            }
            for (j, c) in p.server_prefixes.iter().enumerate() {
                if Prefix::parse(c).is_none() {
                    return Err(err(
                        format!("{key}.server_prefixes[{j}]"),
                        format!("invalid prefix {c:?}; accepted: CIDR such as 142.250.0.0/15 or 2607:f8b0::/32"),
                    ));
                }
            }
            if let Some((j, bad)) = p.ports.iter().enumerate().find(|(_, p)| **p == 0) {
                return Err(err(
                    format!("{key}.ports[{j}]"),
                    format!("invalid port {bad}; accepted: 1 to 65535"),
                ));
            }
            for (j, name) in p.protocols.iter().enumerate() {
                if !matches!(AppProto::from_name(name), Some(p) if p != AppProto::Unknown) {
                    return Err(err(
                        format!("{key}.protocols[{j}]"),
                        format!(
                            "unknown protocol {name:?}; accepted: {}",
                            known_protocol_names().join(", ")
                        ),
                    ));
                }
            }
        }
        Ok(())
    }
}

pub struct ServiceCheck {
    profiles: Vec<Compiled>,
    block: bool,
}

impl ServiceCheck {
    /// Compiles the profiles; entries that do not parse were rejected by `validate` and are
    /// skipped here.
    pub fn new(cfg: &ServiceConfig) -> Self {
        let profiles = cfg
            .profiles
            .iter()
            .map(|p| Compiled {
                name: p.name.clone(),
                hosts: p
                    .hosts
                    .iter()
                    .filter_map(|h| HostPattern::parse(h))
                    .collect(),
                issuer_orgs: p.issuer_orgs.clone(),
                prefixes: p
                    .server_prefixes
                    .iter()
                    .filter_map(|c| Prefix::parse(c))
                    .collect(),
                ports: p.ports.clone(),
                protocols: p
                    .protocols
                    .iter()
                    .filter_map(|n| AppProto::from_name(n))
                    .fold(0, |m, p| m | 1 << p.index()),
            })
            .collect();
        ServiceCheck {
            profiles,
            block: cfg.block,
        }
    }

    fn claimed(&self, host: &str) -> Option<&Compiled> {
        self.profiles
            .iter()
            .find(|p| p.hosts.iter().any(|h| h.matches(host)))
    }
}

/// A Host header without its port.
fn host_name(host: &[u8]) -> Option<&str> {
    let s = std::str::from_utf8(host).ok()?.trim();
    if s.starts_with('[') {
        return Some(s);
    }
    Some(match s.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) => h,
        _ => s,
    })
}

impl ServiceCheck {
    fn finding(
        &self,
        profile: &Compiled,
        claim: &str,
        how: &'static str,
        confidence: u8,
    ) -> Finding {
        let mut f = Finding {
            kind: FindingKind::ServiceImpersonation,
            confidence,
            block: self.block,
            dir: Dir::ToClient,
            evidence: Default::default(),
        };
        f.evidence.add("service", &profile.name);
        f.evidence.add("claimed_by", how);
        f.evidence.add("host", claim);
        f
    }

    /// Address, port and protocol facets of a claim.
    fn check_endpoint(
        &self,
        profile: &Compiled,
        view: &FlowView<'_>,
        claim: &str,
        how: &'static str,
        proto: AppProto,
        out: &mut Findings,
    ) {
        if !profile.prefixes.is_empty()
            && !profile
                .prefixes
                .iter()
                .any(|p| p.contains(view.server_addr))
        {
            let mut f = self.finding(profile, claim, how, 85);
            f.evidence.add(
                "contradiction",
                "server address outside the service's networks",
            );
            f.evidence.add("server_addr", view.server_addr);
            out.push(f);
            return;
        }
        if !profile.ports.is_empty() && !profile.ports.contains(&view.server_port) {
            let mut f = self.finding(profile, claim, how, 70);
            f.evidence
                .add("contradiction", "server port the service does not use");
            f.evidence.add("server_port", view.server_port);
            out.push(f);
            return;
        }
        if profile.protocols != 0 && profile.protocols & (1 << proto.index()) == 0 {
            let mut f = self.finding(profile, claim, how, 85);
            f.evidence
                .add("contradiction", "protocol the service does not speak");
            f.evidence.add("protocol", proto.name());
            out.push(f);
        }
    }
}

impl Check for ServiceCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        match event {
            Event::TlsClientHello(ch) if ch.has_sni => {
                let sni = ch.sni.as_str();
                if let Some(p) = self.claimed(sni) {
                    self.check_endpoint(p, view, sni, "sni", AppProto::Tls, out);
                }
            }
            Event::TlsLeafCertificate(cert) => {
                let Some(tls) = view.tls else { return };
                if !tls.summary.has_sni || self.claimed(tls.summary.sni.as_str()).is_none() {
                    return;
                }
                let sni = tls.summary.sni.as_str();
                let Some(p) = self.claimed(sni) else { return };
                if p.issuer_orgs.is_empty() {
                    return;
                }
                let orgs = cert.issuer_orgs.as_slice();
                let expected = orgs.iter().any(|o| {
                    p.issuer_orgs
                        .iter()
                        .any(|e| e.eq_ignore_ascii_case(o.as_str()))
                });
                if !expected || cert.self_signed {
                    let mut f = self.finding(p, sni, "sni", 90);
                    f.evidence.add(
                        "contradiction",
                        if cert.self_signed {
                            "self-signed certificate"
                        } else {
                            "certificate issuer is not one the service uses"
                        },
                    );
                    f.evidence.add("issuer", cert.issuer.as_str());
                    f.evidence.add("expected_issuers", p.issuer_orgs.join("|"));
                    out.push(f);
                }
            }
            Event::HttpRequest(head) => {
                let Some(host) = head.host().and_then(host_name) else {
                    return;
                };
                if let Some(p) = self.claimed(host) {
                    let mut found = Findings::default();
                    self.check_endpoint(p, view, host, "http_host", AppProto::Http, &mut found);
                    for mut f in found.iter().copied() {
                        f.dir = Dir::ToServer;
                        out.push(f);
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_patterns_match_exact_and_subdomains_only() {
        let exact = HostPattern::parse("Mail.Google.com").unwrap();
        assert!(exact.matches("mail.google.com"));
        assert!(exact.matches("MAIL.GOOGLE.COM."));
        assert!(!exact.matches("xmail.google.com"));
        let sub = HostPattern::parse("*.yahoo.com").unwrap();
        assert!(sub.matches("login.yahoo.com"));
        assert!(sub.matches("a.b.yahoo.com"));
        assert!(!sub.matches("yahoo.com"));
        assert!(!sub.matches("evilyahoo.com"));
        assert!(HostPattern::parse("*.").is_none());
        assert!(HostPattern::parse("bad host").is_none());
        assert!(HostPattern::parse("a..b").is_none());
    }

    #[test]
    fn prefixes_contain_what_they_should() {
        let p = Prefix::parse("142.250.0.0/15").unwrap();
        assert!(p.contains("142.251.3.4".parse().unwrap()));
        assert!(!p.contains("142.252.0.1".parse().unwrap()));
        assert!(!p.contains("2607:f8b0::1".parse().unwrap()));
        let all = Prefix::parse("0.0.0.0/0").unwrap();
        assert!(all.contains("8.8.8.8".parse().unwrap()));
        let v6 = Prefix::parse("2607:f8b0::/32").unwrap();
        assert!(v6.contains("2607:f8b0:4004::1".parse().unwrap()));
        assert!(Prefix::parse("10.0.0.0/33").is_none());
    }

    #[test]
    fn host_header_loses_its_port() {
        assert_eq!(host_name(b"mail.google.com:8080"), Some("mail.google.com"));
        assert_eq!(host_name(b"mail.google.com"), Some("mail.google.com"));
        assert_eq!(host_name(b"[::1]:80"), Some("[::1]:80"));
    }

    #[test]
    fn bad_profiles_are_config_errors_naming_the_key() {
        let mut cfg = ServiceConfig::default();
        cfg.profiles[1].hosts.push("not a host".into());
        let e = cfg.validate("x.toml").unwrap_err().to_string();
        assert!(e.contains("detect.service.profiles[1].hosts[3]"), "{e}");
        let mut cfg = ServiceConfig::default();
        cfg.profiles[0].server_prefixes.push("10.0.0.0/40".into());
        let e = cfg.validate("x.toml").unwrap_err().to_string();
        assert!(
            e.contains("server_prefixes[0]") && e.contains("CIDR"),
            "{e}"
        );
        let mut cfg = ServiceConfig::default();
        cfg.profiles[2].protocols.push("gopher".into());
        let e = cfg.validate("x.toml").unwrap_err().to_string();
        assert!(e.contains("protocols[4]") && e.contains("gopher"), "{e}");
    }
}
