//! Protocol versus port (DET0470 AllowedServicePorts, ProtocolMatchConfidence).
//!
//! Content decides the protocol; the port only says what the network expects there. A protocol
//! on a port that the map reserves for *other* protocols is dressed up as them: SSH on 443 wants
//! to pass for HTTPS. A protocol on a port nobody reserved is only unusual.
//!
//! Four rules, all judged when a direction's identification becomes final:
//!
//! - **ProtocolPortMismatch**: a protocol identified at `min_confidence` or more on a port the
//!   map reserves for other protocols only.
//! - **NonTlsOnTlsPort**: a direction, seen from its first byte, that no probe shows to be a
//!   protocol allowed on a TLS port. The TLS probe recognises records from their header, so
//!   bytes it rejects from the start of a stream are not TLS, whatever they look like.
//! - **OpaqueOnCleartextPort**: the same on a port reserved for a cleartext protocol (HTTP,
//!   SMTP, POP3, IMAP, FTP). Those protocols are text, so unidentified *binary* bytes there are
//!   sure to be something else (more so when they look encrypted); unidentified *text* may be a
//!   dialect the probes do not know, and stays below the default threshold.
//! - **ProtocolDirectionMismatch**: both directions identified, at `min_confidence` or more,
//!   as different protocols (an HTTP client answered by an SSH server).
//!
//! Directions picked up mid-stream (no SYN seen) are never judged as unidentified: their first
//! bytes may sit inside a TLS record or a compressed body.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use std::fmt;

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::proto::{self, AppProto, ByteStats, DirIdent};

/// DET0470 AllowedServicePorts and ProtocolMatchConfidence.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtocolPortConfig {
    pub enabled: bool,
    pub block: bool,
    pub min_confidence: u8,
    pub alert_nonstandard_port: bool,
    /// Unidentified data on a port reserved for TLS.
    pub non_tls_on_tls_port: bool,
    /// Unidentified data on a port reserved for a cleartext protocol.
    pub opaque_on_cleartext_port: bool,
    /// Both directions identified as different protocols.
    pub direction_mismatch: bool,
    /// Entropy, as a percentage of the most a sample of its length can show, from which
    /// unidentified bytes look encrypted or compressed.
    pub high_entropy_percent: u8,
    pub allowed_ports: BTreeMap<String, Vec<u16>>,
}

impl Default for ProtocolPortConfig {
    fn default() -> Self {
        let ports: &[(&str, &[u16])] = &[
            (
                "tls",
                &[
                    443, 465, 563, 636, 853, 989, 990, 992, 993, 994, 995, 5061, 8443,
                ],
            ),
            ("http", &[80, 591, 8000, 8008, 8080, 8081, 8888, 3128]),
            // Cleartext HTTP/2 runs where HTTP/1 does (RFC 9113 3.3: "http" URIs).
            ("http2", &[80, 591, 8000, 8008, 8080, 8081, 8888, 3128]),
            ("ssh", &[22]),
            ("smtp", &[25, 587, 2525]),
            ("pop3", &[110]),
            ("imap", &[143]),
            ("ftp", &[21]),
            ("rdp", &[3389]),
            ("dns", &[53]),
            ("socks4", &[1080]),
            ("socks5", &[1080]),
            ("openvpn", &[1194]),
        ];
        ProtocolPortConfig {
            enabled: true,
            block: true,
            min_confidence: 80,
            alert_nonstandard_port: false,
            non_tls_on_tls_port: true,
            opaque_on_cleartext_port: true,
            direction_mismatch: true,
            high_entropy_percent: 85,
            allowed_ports: ports
                .iter()
                .map(|(p, list)| (p.to_string(), list.to_vec()))
                .collect(),
        }
    }
}

/// Fewer bytes than a TLS record header and a handshake header cannot show a stream is not
/// TLS, nor that it is opaque: the unidentified-data rules wait for at least this many.
const MIN_JUDGED_BYTES: usize = 16;

/// Bit per [`AppProto`] allowed on each port.
pub struct ProtocolPortCheck {
    allowed: Box<[u16; 65536]>,
    min_confidence: u8,
    block: bool,
    alert_nonstandard: bool,
    non_tls: bool,
    opaque: bool,
    direction_mismatch: bool,
    high_entropy_percent: u8,
}

const _: () = assert!(
    AppProto::COUNT <= 16,
    "the per-port mask holds 16 protocols"
);

const fn bit(p: AppProto) -> u16 {
    1 << (p as u8)
}

/// Protocols whose every message is text: a port reserved for one of them promises text.
const CLEARTEXT: u16 = bit(AppProto::Http)
    | bit(AppProto::Smtp)
    | bit(AppProto::Pop3)
    | bit(AppProto::Imap)
    | bit(AppProto::Ftp);

/// Below this share of text bytes a sample is binary (ciphertext scores about 38%).
const TEXT_MIN_PRINTABLE: f32 = 0.9;
/// Fewer bytes than this say too little about their entropy to call them encrypted.
const ENTROPY_MIN_SAMPLE: usize = 32;

/// Confidence of each rule by what the unidentified bytes look like.
const NON_TLS_CONFIDENCE: u8 = 90;
const OPAQUE_BINARY_CONFIDENCE: u8 = 85;
const OPAQUE_TEXT_CONFIDENCE: u8 = 60;
const ENCRYPTED_CONFIDENCE: u8 = 95;

/// What unidentified bytes look like.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Looks {
    /// Binary and as random as its length allows: ciphertext or compressed data.
    Encrypted,
    Binary,
    Text,
}

impl Looks {
    fn name(self) -> &'static str {
        match self {
            Looks::Encrypted => "encrypted_or_compressed",
            Looks::Binary => "binary",
            Looks::Text => "text",
        }
    }
}

impl ProtocolPortCheck {
    pub fn new(cfg: &ProtocolPortConfig) -> Self {
        let mut allowed = Box::new([0u16; 65536]);
        for (name, ports) in &cfg.allowed_ports {
            // Config validation rejected unknown names already; skip defensively.
            let Some(proto) = AppProto::from_name(name) else {
                continue;
            };
            for &port in ports {
                allowed[port as usize] |= 1 << proto.index();
            }
        }
        ProtocolPortCheck {
            allowed,
            min_confidence: cfg.min_confidence,
            block: cfg.block,
            alert_nonstandard: cfg.alert_nonstandard_port,
            non_tls: cfg.non_tls_on_tls_port,
            opaque: cfg.opaque_on_cleartext_port,
            direction_mismatch: cfg.direction_mismatch,
            high_entropy_percent: cfg.high_entropy_percent,
        }
    }

    fn mask(&self, port: u16) -> u16 {
        self.allowed[port as usize]
    }

    fn finding(&self, kind: FindingKind, confidence: u8, dir: Dir) -> Finding {
        Finding {
            kind,
            confidence,
            block: self.block && kind != FindingKind::NonStandardPort,
            dir,
            evidence: Default::default(),
        }
    }

    /// A known protocol on a port reserved for others (or for nobody).
    fn port_rule(&self, view: &FlowView<'_>, dir: Dir, out: &mut Findings) {
        let ident = view.ident[dir.index()];
        let (proto, confidence) = (ident.proto(), ident.confidence());
        if proto == AppProto::Unknown || confidence < self.min_confidence {
            return;
        }
        let port = view.server_port;
        let mask = self.mask(port);
        if mask & (1 << proto.index()) != 0 {
            return;
        }
        let kind = if mask != 0 {
            FindingKind::ProtocolPortMismatch
        } else if self.alert_nonstandard {
            FindingKind::NonStandardPort
        } else {
            return;
        };
        let mut f = self.finding(kind, confidence, dir);
        f.evidence.add("protocol", proto.name());
        f.evidence.add("server_port", port);
        if mask != 0 {
            f.evidence.add("port_reserved_for", MaskNames(mask));
        }
        f.evidence.add("direction", dir_name(dir));
        f.evidence.add("identification_confidence", confidence);
        out.push(f);
    }

    /// Bytes no probe could place, on a port that promises TLS or a cleartext protocol.
    fn unidentified_rule(&self, view: &FlowView<'_>, dir: Dir, data: &[u8], out: &mut Findings) {
        let d = dir.index();
        let ident = view.ident[d];
        let port = view.server_port;
        let mask = self.mask(port);
        // A flow that ends after a few bytes (a stray CRLF, a probe) is identified on what it
        // sent, but that says nothing about what it carries.
        if mask == 0
            || data.len() < MIN_JUDGED_BYTES
            || !view.seen_from_start[d]
            || !ident.is_final()
        {
            return;
        }
        let proto = ident.proto();
        // Shown to be some protocol: either it belongs here, or the port rule speaks for it.
        if proto != AppProto::Unknown && ident.confidence() >= self.min_confidence {
            return;
        }
        // A weak guess of a protocol the port allows (an odd HTTP method on 80) is given the
        // benefit of the doubt, and so is a shared-form guess the other direction settles
        // ("USER bob" is FTP or POP3; a "+OK" greeting makes it POP3).
        let flow = proto::resolve(view.ident[0].probe, view.ident[1].probe);
        let reconciled = match dir {
            Dir::ToServer => flow.app_proto_ts,
            Dir::ToClient => flow.app_proto_tc,
        };
        if [proto, reconciled]
            .iter()
            .any(|&p| p != AppProto::Unknown && mask & bit(p) != 0)
        {
            return;
        }
        let kind = if mask & bit(AppProto::Tls) != 0 {
            if !self.non_tls {
                return;
            }
            FindingKind::NonTlsOnTlsPort
        } else if mask & CLEARTEXT != 0 {
            if !self.opaque {
                return;
            }
            FindingKind::OpaqueOnCleartextPort
        } else {
            return;
        };
        let stats = ByteStats::of(data);
        let looks = self.looks(&stats);
        let confidence = match (kind, looks) {
            (_, Looks::Encrypted) => ENCRYPTED_CONFIDENCE,
            (FindingKind::NonTlsOnTlsPort, _) => NON_TLS_CONFIDENCE,
            (_, Looks::Binary) => OPAQUE_BINARY_CONFIDENCE,
            (_, Looks::Text) => OPAQUE_TEXT_CONFIDENCE,
        };
        if confidence < self.min_confidence {
            return;
        }
        let mut f = self.finding(kind, confidence, dir);
        f.evidence.add("server_port", port);
        f.evidence.add("port_reserved_for", MaskNames(mask));
        f.evidence.add("direction", dir_name(dir));
        f.evidence.add("identification", IdentText(ident));
        f.evidence.add("looks_like", looks.name());
        f.evidence.add("bytes_seen", stats.len);
        f.evidence.add(
            "entropy_bits_per_byte",
            format_args!("{:.2} of {:.2}", stats.entropy, stats.max_entropy),
        );
        f.evidence.add(
            "printable_percent",
            format_args!("{:.0}", stats.printable * 100.0),
        );
        out.push(f);
    }

    fn looks(&self, s: &ByteStats) -> Looks {
        if s.printable >= TEXT_MIN_PRINTABLE {
            Looks::Text
        } else if s.len >= ENTROPY_MIN_SAMPLE
            && s.normalized_entropy() * 100.0 >= f32::from(self.high_entropy_percent)
        {
            Looks::Encrypted
        } else {
            Looks::Binary
        }
    }

    /// Each direction confidently a different protocol.
    fn direction_rule(&self, view: &FlowView<'_>, dir: Dir, out: &mut Findings) {
        let [ts, tc] = view.ident;
        if !self.direction_mismatch || !ts.is_final() || !tc.is_final() {
            return;
        }
        if !proto::resolve(ts.probe, tc.probe).mismatch {
            return;
        }
        let confidence = ts.confidence().min(tc.confidence());
        if confidence < self.min_confidence {
            return;
        }
        let mut f = self.finding(FindingKind::ProtocolDirectionMismatch, confidence, dir);
        f.evidence.add("to_server", IdentText(ts));
        f.evidence.add("to_client", IdentText(tc));
        f.evidence.add("server_port", view.server_port);
        out.push(f);
    }
}

fn dir_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

/// The protocols a port mask names, for evidence ("tls" or "socks4|socks5").
struct MaskNames(u16);

impl fmt::Display for MaskNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in AppProto::ALL {
            if self.0 & (1 << p.index()) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(p.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

/// A direction's identification for evidence: "ssh (97)" or "unknown".
struct IdentText(DirIdent);

impl fmt::Display for IdentText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.proto() {
            AppProto::Unknown => f.write_str("unknown")?,
            p => write!(f, "{} ({})", p.name(), self.0.confidence())?,
        }
        if self.0.forced {
            f.write_str(", settled at the byte limit")?;
        }
        Ok(())
    }
}

impl Check for ProtocolPortCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Event::Identified { dir, data } = *event else {
            return;
        };
        self.port_rule(view, dir, out);
        self.unidentified_rule(view, dir, data, out);
        self.direction_rule(view, dir, out);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::flow::Dir;
    use crate::proto::{DirIdent, Probe};

    fn view(server_port: u16, dir: Dir, proto: AppProto, confidence: u8) -> FlowView<'static> {
        let mut ident = [DirIdent::default(); 2];
        ident[dir.index()].probe = if proto == AppProto::Unknown {
            Probe::NoMatch
        } else {
            Probe::Match(proto, confidence)
        };
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            server_port,
            client_port: 50000,
            ident,
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

    fn run(cfg: &ProtocolPortConfig, v: &FlowView, dir: Dir) -> Vec<Finding> {
        run_data(cfg, v, dir, b"")
    }

    fn run_data(cfg: &ProtocolPortConfig, v: &FlowView, dir: Dir, data: &[u8]) -> Vec<Finding> {
        let check = ProtocolPortCheck::new(cfg);
        let mut out = Findings::default();
        check.on_event(v, &Event::Identified { dir, data }, &mut out);
        out.iter().copied().collect()
    }

    fn kinds(found: &[Finding]) -> Vec<FindingKind> {
        found.iter().map(|f| f.kind).collect()
    }

    /// Deterministic bytes that look like ciphertext.
    fn noise(n: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                (x >> 8) as u8
            })
            .collect()
    }

    /// Both directions final: `ts` and `tc` as (protocol, confidence), Unknown for no match.
    fn both(server_port: u16, ts: (AppProto, u8), tc: (AppProto, u8)) -> FlowView<'static> {
        let mut v = view(server_port, Dir::ToServer, ts.0, ts.1);
        v.ident[1].probe = if tc.0 == AppProto::Unknown {
            Probe::NoMatch
        } else {
            Probe::Match(tc.0, tc.1)
        };
        v
    }

    #[test]
    fn random_bytes_on_443_are_not_tls() {
        let cfg = ProtocolPortConfig::default();
        let v = view(443, Dir::ToServer, AppProto::Unknown, 0);
        let found = run_data(&cfg, &v, Dir::ToServer, &noise(600, 7));
        assert_eq!(kinds(&found), vec![FindingKind::NonTlsOnTlsPort]);
        let f = &found[0];
        assert_eq!(f.confidence, 95);
        assert!(f.block);
        assert_eq!(
            f.evidence.get("looks_like"),
            Some("encrypted_or_compressed")
        );
        assert_eq!(f.evidence.get("identification"), Some("unknown"));
        assert_eq!(f.evidence.get("port_reserved_for"), Some("tls"));
        assert_eq!(f.evidence.get("bytes_seen"), Some("600"));
        // Text is just as surely not TLS.
        let found = run_data(&cfg, &v, Dir::ToServer, b"hello there, server\r\n");
        assert_eq!(kinds(&found), vec![FindingKind::NonTlsOnTlsPort]);
        assert_eq!(found[0].confidence, 90);
        assert_eq!(found[0].evidence.get("looks_like"), Some("text"));
    }

    #[test]
    fn a_few_bytes_before_the_end_are_not_judged() {
        // tls_unidirectional.pcap: a client sends "\r\n" to 443 and closes.
        let cfg = ProtocolPortConfig::default();
        let v = view(443, Dir::ToServer, AppProto::Unknown, 0);
        assert!(run_data(&cfg, &v, Dir::ToServer, b"\r\n").is_empty());
        assert!(run_data(&cfg, &v, Dir::ToServer, &noise(MIN_JUDGED_BYTES - 1, 5)).is_empty());
        assert_eq!(
            run_data(&cfg, &v, Dir::ToServer, &noise(MIN_JUDGED_BYTES, 5)).len(),
            1
        );
    }

    #[test]
    fn unidentified_rules_need_the_stream_from_its_start() {
        let cfg = ProtocolPortConfig::default();
        for port in [443, 80] {
            let mut v = view(port, Dir::ToClient, AppProto::Unknown, 0);
            v.seen_from_start = [true, false];
            assert!(
                run_data(&cfg, &v, Dir::ToClient, &noise(1400, 3)).is_empty(),
                "mid-stream bytes on {port} may be inside a record or a body"
            );
        }
    }

    #[test]
    fn nothing_seen_or_undecided_is_not_judged() {
        let cfg = ProtocolPortConfig::default();
        let v = view(443, Dir::ToServer, AppProto::Unknown, 0);
        assert!(run_data(&cfg, &v, Dir::ToServer, b"").is_empty());
        let mut v = view(443, Dir::ToServer, AppProto::Unknown, 0);
        v.ident[0].probe = Probe::NeedMore;
        assert!(run_data(&cfg, &v, Dir::ToServer, &noise(100, 1)).is_empty());
    }

    #[test]
    fn weak_guesses_count_as_unidentified_unless_the_port_allows_them() {
        let cfg = ProtocolPortConfig::default();
        // A 35% SOCKS4 guess on 443 is no protocol at all.
        let v = view(443, Dir::ToClient, AppProto::Socks4, 35);
        let found = run_data(&cfg, &v, Dir::ToClient, &noise(200, 9));
        assert_eq!(kinds(&found), vec![FindingKind::NonTlsOnTlsPort]);
        assert_eq!(found[0].evidence.get("identification"), Some("socks4 (35)"));
        // A weak TLS guess (a record cut short at the byte limit) belongs on 443.
        let v = view(443, Dir::ToServer, AppProto::Tls, 70);
        assert!(run_data(&cfg, &v, Dir::ToServer, &noise(200, 9)).is_empty());
        // An unknown method on 80 is still HTTP enough (suricata-verify
        // detect-app-layer-protocol-03).
        let v = view(80, Dir::ToServer, AppProto::Http, 65);
        let req = b"NOTMETHOD /WANIPConnection HTTP/1.1\r\nHost: 192.168.0.1\r\n\r\n";
        assert!(run_data(&cfg, &v, Dir::ToServer, req).is_empty());
    }

    #[test]
    fn a_shared_form_guess_settled_by_the_other_side_belongs_to_the_port() {
        // pop3.pcap: "USER" guessed FTP (45), the "+OK" greeting names POP3: POP3 on 110.
        let low = ProtocolPortConfig {
            min_confidence: 50,
            ..ProtocolPortConfig::default()
        };
        let mut v = both(110, (AppProto::Ftp, 45), (AppProto::Pop3, 90));
        assert!(run_data(&low, &v, Dir::ToServer, b"USER someone@example.com\r\n").is_empty());
        // Without the greeting to settle it, a weak FTP guess on 110 is unidentified.
        v.ident[1].probe = Probe::NeedMore;
        let found = run_data(&low, &v, Dir::ToServer, b"USER someone@example.com\r\n");
        assert_eq!(kinds(&found), vec![FindingKind::OpaqueOnCleartextPort]);
    }

    #[test]
    fn binary_on_cleartext_ports_is_opaque_and_text_stays_below_threshold() {
        let cfg = ProtocolPortConfig::default();
        for port in [80, 8080, 25, 21, 110, 143] {
            let v = view(port, Dir::ToServer, AppProto::Unknown, 0);
            let found = run_data(&cfg, &v, Dir::ToServer, &noise(1000, 11));
            assert_eq!(
                kinds(&found),
                vec![FindingKind::OpaqueOnCleartextPort],
                "port {port}"
            );
            assert_eq!(found[0].confidence, 95);
        }
        let v = view(80, Dir::ToClient, AppProto::Unknown, 0);
        // Low-entropy binary: structured, not text, not random.
        let structured: Vec<u8> = (0..400u32)
            .map(|i| [0u8, 1, 2, 0xff][(i % 4) as usize])
            .collect();
        let found = run_data(&cfg, &v, Dir::ToClient, &structured);
        assert_eq!(found[0].evidence.get("looks_like"), Some("binary"));
        assert_eq!(found[0].confidence, 85);
        // Unidentified text (the non-HTTP answer of suricata-verify http-missing-protocol)
        // is 60: silent by default, reported once min_confidence is lowered.
        let reply = b"xzscxc#$#AzMTax4wGxA5DSBkODw8e3d3PCsADwwXfXdienNreXM=$#$vxxd";
        assert!(run_data(&cfg, &v, Dir::ToClient, reply).is_empty());
        let low = ProtocolPortConfig {
            min_confidence: 60,
            ..ProtocolPortConfig::default()
        };
        let found = run_data(&low, &v, Dir::ToClient, reply);
        assert_eq!(kinds(&found), vec![FindingKind::OpaqueOnCleartextPort]);
        assert_eq!(found[0].evidence.get("looks_like"), Some("text"));
        // Short binary is never called encrypted.
        let found = run_data(&cfg, &v, Dir::ToClient, &noise(16, 5));
        assert_eq!(found[0].evidence.get("looks_like"), Some("binary"));
    }

    #[test]
    fn ports_reserved_for_nothing_or_other_protocols_are_not_judged_unidentified() {
        let cfg = ProtocolPortConfig::default();
        for port in [3001, 22, 53, 3389] {
            let v = view(port, Dir::ToServer, AppProto::Unknown, 0);
            assert!(
                run_data(&cfg, &v, Dir::ToServer, &noise(500, 2)).is_empty(),
                "port {port}"
            );
        }
    }

    #[test]
    fn each_unidentified_rule_can_be_switched_off() {
        let v443 = view(443, Dir::ToServer, AppProto::Unknown, 0);
        let v80 = view(80, Dir::ToServer, AppProto::Unknown, 0);
        let data = noise(500, 4);
        let off = ProtocolPortConfig {
            non_tls_on_tls_port: false,
            opaque_on_cleartext_port: false,
            ..ProtocolPortConfig::default()
        };
        assert!(run_data(&off, &v443, Dir::ToServer, &data).is_empty());
        assert!(run_data(&off, &v80, Dir::ToServer, &data).is_empty());
        let high = ProtocolPortConfig {
            high_entropy_percent: 100,
            ..ProtocolPortConfig::default()
        };
        let found = run_data(&high, &v80, Dir::ToServer, &data);
        assert_eq!(found[0].evidence.get("looks_like"), Some("binary"));
    }

    #[test]
    fn each_direction_a_different_protocol_is_a_mismatch() {
        let cfg = ProtocolPortConfig::default();
        // suricata-verify output-eve-anomaly-02: HTTP to an SSH server on 22.
        let v = both(22, (AppProto::Http, 95), (AppProto::Ssh, 97));
        let found = run(&cfg, &v, Dir::ToClient);
        let f = found
            .iter()
            .find(|f| f.kind == FindingKind::ProtocolDirectionMismatch)
            .expect("a direction mismatch");
        assert_eq!(f.confidence, 95);
        assert_eq!(f.evidence.get("to_server"), Some("http (95)"));
        assert_eq!(f.evidence.get("to_client"), Some("ssh (97)"));
        // The HTTP side on port 22 is also a port mismatch, judged when it was identified.
        assert_eq!(
            kinds(&run(&cfg, &v, Dir::ToServer)),
            vec![
                FindingKind::ProtocolPortMismatch,
                FindingKind::ProtocolDirectionMismatch
            ]
        );
        // Undecided or unknown other side: no verdict.
        let mut v = both(465, (AppProto::Tls, 98), (AppProto::Smtp, 90));
        v.ident[1].probe = Probe::NeedMore;
        assert!(run(&cfg, &v, Dir::ToServer).is_empty());
        let v = both(443, (AppProto::Tls, 98), (AppProto::Unknown, 0));
        assert!(
            !kinds(&run(&cfg, &v, Dir::ToServer)).contains(&FindingKind::ProtocolDirectionMismatch)
        );
        // Below ProtocolMatchConfidence on either side: no mismatch.
        let v = both(8000, (AppProto::Http, 95), (AppProto::Ssh, 60));
        assert!(run(&cfg, &v, Dir::ToClient).is_empty());
        // Same protocol both ways, however weak one side: consistent.
        let v = both(80, (AppProto::Http, 65), (AppProto::Http, 95));
        assert!(run(&cfg, &v, Dir::ToClient).is_empty());
        let off = ProtocolPortConfig {
            direction_mismatch: false,
            ..ProtocolPortConfig::default()
        };
        // On a port reserved for nothing only the mismatch speaks.
        let v = both(3001, (AppProto::Http, 95), (AppProto::Ssh, 97));
        assert!(run(&off, &v, Dir::ToClient).is_empty());
        assert_eq!(run(&cfg, &v, Dir::ToClient).len(), 1);
    }

    #[test]
    fn ssh_on_443_is_a_mismatch_with_evidence() {
        let cfg = ProtocolPortConfig::default();
        let found = run(
            &cfg,
            &view(443, Dir::ToClient, AppProto::Ssh, 95),
            Dir::ToClient,
        );
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.kind, FindingKind::ProtocolPortMismatch);
        assert_eq!(f.confidence, 95);
        assert!(f.block);
        assert_eq!(f.evidence.get("protocol"), Some("ssh"));
        assert_eq!(f.evidence.get("server_port"), Some("443"));
        assert_eq!(f.evidence.get("port_reserved_for"), Some("tls"));
    }

    #[test]
    fn protocol_on_its_own_port_is_fine() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer
        )
        .is_empty());
        assert!(run(
            &cfg,
            &view(1080, Dir::ToServer, AppProto::Socks5, 90),
            Dir::ToServer
        )
        .is_empty());
    }

    #[test]
    fn low_confidence_is_below_protocol_match_confidence() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Http, 60),
            Dir::ToServer
        )
        .is_empty());
        let strict = ProtocolPortConfig {
            min_confidence: 50,
            ..ProtocolPortConfig::default()
        };
        assert_eq!(
            run(
                &strict,
                &view(443, Dir::ToServer, AppProto::Http, 60),
                Dir::ToServer
            )
            .len(),
            1
        );
    }

    #[test]
    fn unreserved_port_only_alerts_when_asked_and_never_blocks() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(3001, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer
        )
        .is_empty());
        let noisy = ProtocolPortConfig {
            alert_nonstandard_port: true,
            ..ProtocolPortConfig::default()
        };
        let found = run(
            &noisy,
            &view(3001, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::NonStandardPort);
        assert!(!found[0].block);
    }

    #[test]
    fn unknown_protocol_is_not_this_checks_business() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Unknown, 0),
            Dir::ToServer
        )
        .is_empty());
    }

    #[test]
    fn shared_ports_list_every_owner() {
        let cfg = ProtocolPortConfig::default();
        let found = run(
            &cfg,
            &view(1080, Dir::ToServer, AppProto::Http, 95),
            Dir::ToServer,
        );
        assert_eq!(
            found[0].evidence.get("port_reserved_for"),
            Some("socks4|socks5")
        );
    }
}
