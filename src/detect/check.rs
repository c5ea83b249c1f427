//! What every check shares: the [`Check`] trait, the [`Finding`] it pushes (kind, confidence,
//! evidence, the MITRE mapping) and the [`KeyError`] its config validation returns. Checks
//! import this file and `inspect`, never the detector that composes them.

use std::fmt::Write as _;

use crate::flow::Dir;
pub use crate::inspect::{Event, FlowView};
use crate::text::InlineStr;

/// The range checks every check's `validate` makes: the file and the key's table, so each
/// error names `path`, `section.key`, the value and the accepted range.
pub struct KeyRange<'a> {
    pub path: &'a str,
    pub section: &'a str,
}

impl KeyRange<'_> {
    pub fn check(&self, key: &str, value: u64, lo: u64, hi: u64) -> Result<(), KeyError> {
        if (lo..=hi).contains(&value) {
            return Ok(());
        }
        Err(self.error(
            key,
            format!("invalid value {value}; accepted: {lo} to {hi}"),
        ))
    }

    pub fn error(&self, key: &str, message: String) -> KeyError {
        KeyError {
            path: self.path.into(),
            key: format!("{}.{key}", self.section),
            message,
        }
    }
}

/// A key of the `[detect]` section with a value no check accepts, phrased for the operator:
/// the file, the key, the value and what would be accepted.
#[derive(Debug, thiserror::Error)]
#[error("{path}: key `{key}`: {message}")]
pub struct KeyError {
    pub path: String,
    pub key: String,
    pub message: String,
}

/// MITRE ATT&CK technique every finding belongs to.
pub const MITRE_TECHNIQUE: &str = "T1001.003";
pub const MITRE_TECHNIQUE_NAME: &str = "Protocol or Service Impersonation";
/// Command and Control.
pub const MITRE_TACTIC: &str = "TA0011";
pub const MITRE_ANALYTIC: &str = "DET0470";

/// The DET0470 tunables, as MITRE names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tunable {
    AllowedServicePorts,
    ProtocolMatchConfidence,
    IssuerOrgFilter,
    HeaderSignatureMatch,
    HeaderAnomalyScore,
    TlsFingerprintMatch,
    /// DET0470's correlation window (host-level findings).
    TimeWindow,
}

impl Tunable {
    pub fn name(self) -> &'static str {
        match self {
            Tunable::AllowedServicePorts => "AllowedServicePorts",
            Tunable::ProtocolMatchConfidence => "ProtocolMatchConfidence",
            Tunable::IssuerOrgFilter => "IssuerOrgFilter",
            Tunable::HeaderSignatureMatch => "HeaderSignatureMatch",
            Tunable::HeaderAnomalyScore => "HeaderAnomalyScore",
            Tunable::TlsFingerprintMatch => "TLSFingerprintMatch",
            Tunable::TimeWindow => "TimeWindow",
        }
    }
}

/// What a finding is about. Each kind is one signature (stable `signature_id`) in EVE.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum FindingKind {
    /// A known protocol on a server port reserved for a different protocol (SSH on 443).
    ProtocolPortMismatch = 0,
    /// A known protocol on a port reserved for no protocol (informational).
    NonStandardPort = 1,
    /// Data on a port reserved for TLS that is not TLS (unidentified or another protocol).
    NonTlsOnTlsPort = 2,
    /// Unidentifiable or high-entropy bytes on a port reserved for a cleartext protocol.
    OpaqueOnCleartextPort = 3,
    /// The two directions were identified as different protocols (HTTP answered by SSH).
    ProtocolDirectionMismatch = 4,
    /// TLS records whose handshake is inconsistent, impossible or out of order.
    TlsMalformedHandshake = 5,
    /// A ClientHello whose answer is not a TLS record.
    TlsAnsweredByNonTls = 6,
    /// One side speaks TLS while the other sends data that never becomes TLS, or nothing.
    TlsOneSided = 7,
    /// A JA3/JA3N/JA4 fingerprint on a configured deny list.
    TlsFingerprintDenied = 8,
    /// A client fingerprint missing from the allow list of the destination it contacts.
    TlsFingerprintNotAllowed = 9,
    /// The leaf certificate's issuer organisation is on the watch list.
    CertIssuerWatched = 10,
    /// Allow-list mode: the issuer organisation is not allowed.
    CertIssuerNotAllowed = 11,
    /// The server's leaf certificate is self-signed.
    CertSelfSigned = 12,
    /// The leaf certificate's notAfter is before the packet time.
    CertExpired = 13,
    /// The leaf certificate's notBefore is after the packet time.
    CertNotYetValid = 14,
    /// The validity period exceeds what public CAs issue.
    CertValidityTooLong = 15,
    /// The SNI matches no SAN (or CN) of the leaf certificate.
    CertNameMismatch = 16,
    /// The leaf certificate's DER does not parse.
    CertInvalid = 17,
    /// A fatal alert follows the certificate: a peer rejected it.
    TlsFatalAlertAfterCertificate = 18,
    /// No server_name where clients of this service always send one.
    SniMissing = 19,
    /// The SNI is an IP literal, which RFC 6066 forbids.
    SniIpLiteral = 20,
    /// The ALPN offered does not fit the SNI (or is offered without one).
    SniAlpnMismatch = 21,
    /// SNI or Host claims a configured service whose certificate, issuer, address or protocol contradicts it.
    ServiceImpersonation = 22,
    /// A configured HTTP header pattern matched (defaults: missing User-Agent, missing Host).
    HttpHeaderSignature = 23,
    /// The weighted HTTP header anomaly score crossed the threshold.
    HttpHeaderAnomaly = 24,
    /// Client-to-server bytes dwarf server-to-client bytes.
    AsymmetricFlow = 25,
    /// The client's first payload matched no protocol and looks uniformly random (Shadowsocks,
    /// VMess, obfs4): the published fully-encrypted rules, entropy and the server's history.
    FullyEncryptedFirstPayload = 26,
    /// The first records after the TLS handshake have the shape of a TLS handshake tunnelled
    /// inside (Trojan, VLESS, VMess over TLS, HTTPS proxies).
    TlsInTls = 27,
    /// ESNI offered beside a cleartext server_name.
    EsniWithCleartextSni = 28,
    /// ECH offered, and the certificate shown in the clear does not cover the outer name.
    EchPublicNameMismatch = 29,
    /// ECH or ESNI offered by a ClientHello no browser sends.
    EchNonBrowserClient = 30,
    /// An HTTP response body whose first bytes contradict its Content-Type.
    HttpBodyTypeMismatch = 31,
    /// An image Content-Type over a body with no image format's signature.
    HttpImageWithoutMagic = 32,
    /// An HTTP upgrade to WebSocket the server never performed (wrong accept value) or whose
    /// bytes are not WebSocket frames: a tunnel dressed as WebSocket.
    WebSocketImpersonation = 33,
    /// IP fragments of one datagram overlap with different bytes: the inspector and the
    /// receiver may reassemble different payloads (raised by the engine's reassembly).
    IpFragmentOverlap = 34,
    /// TCP segments overlap with different bytes: the inspector and the receiver may read
    /// different streams (raised by the engine's stream reassembly).
    TcpOverlapConflict = 35,
    /// A new flow of a host that a host alert put on the block list (`correlation.block_secs`).
    /// 37 stays unused: its signature id is the host alert's.
    HostBlocked = 36,
    /// TLS 1.3 protected handshake records of sizes no genuine stack sends: bytes appended to
    /// the server's Finished (ShadowTLS v3's HMAC on a relayed handshake).
    Tls13RecordShape = 40,
    /// A server answered for a service whose genuine servers were learned (host store) and
    /// departed from that profile: prefix, JA3S, certificate, ALPN or post-handshake records.
    /// Raised by the host layer on the EVE writer thread.
    ServiceProfileMismatch = 41,
    /// The server's answers come one leg later than its transport round trip explains: a
    /// relay forwarding to an origin elsewhere (a weak signal: recorded below the alert floor
    /// by default).
    Relayed = 42,
}

/// Static facts about a finding kind: its EVE signature and classification.
#[derive(Debug, Clone, Copy)]
pub struct KindInfo {
    pub name: &'static str,
    pub signature_id: u32,
    pub signature: &'static str,
    pub category: &'static str,
    /// Suricata severity: 1 high, 2 medium, 3 low.
    pub severity: u8,
    pub tunable: Tunable,
}

/// Signature ids live in a block of our own, clear of ET/Snort ranges.
const SID_BASE: u32 = 9_470_000;

impl FindingKind {
    /// One past the highest discriminant: the length of arrays indexed by [`FindingKind::index`]
    /// (some discriminants are unused, so this is more than the number of kinds).
    pub const COUNT: usize = 43;
    /// The number of kinds, the length of [`FindingKind::ALL`].
    pub const DEFINED: usize = 40;
    pub const ALL: [FindingKind; Self::DEFINED] = [
        FindingKind::ProtocolPortMismatch,
        FindingKind::NonStandardPort,
        FindingKind::NonTlsOnTlsPort,
        FindingKind::OpaqueOnCleartextPort,
        FindingKind::ProtocolDirectionMismatch,
        FindingKind::TlsMalformedHandshake,
        FindingKind::TlsAnsweredByNonTls,
        FindingKind::TlsOneSided,
        FindingKind::TlsFingerprintDenied,
        FindingKind::TlsFingerprintNotAllowed,
        FindingKind::CertIssuerWatched,
        FindingKind::CertIssuerNotAllowed,
        FindingKind::CertSelfSigned,
        FindingKind::CertExpired,
        FindingKind::CertNotYetValid,
        FindingKind::CertValidityTooLong,
        FindingKind::CertNameMismatch,
        FindingKind::CertInvalid,
        FindingKind::TlsFatalAlertAfterCertificate,
        FindingKind::SniMissing,
        FindingKind::SniIpLiteral,
        FindingKind::SniAlpnMismatch,
        FindingKind::ServiceImpersonation,
        FindingKind::HttpHeaderSignature,
        FindingKind::HttpHeaderAnomaly,
        FindingKind::AsymmetricFlow,
        FindingKind::FullyEncryptedFirstPayload,
        FindingKind::TlsInTls,
        FindingKind::EsniWithCleartextSni,
        FindingKind::EchPublicNameMismatch,
        FindingKind::EchNonBrowserClient,
        FindingKind::HttpBodyTypeMismatch,
        FindingKind::HttpImageWithoutMagic,
        FindingKind::WebSocketImpersonation,
        FindingKind::IpFragmentOverlap,
        FindingKind::TcpOverlapConflict,
        FindingKind::HostBlocked,
        FindingKind::Tls13RecordShape,
        FindingKind::ServiceProfileMismatch,
        FindingKind::Relayed,
    ];

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn info(self) -> KindInfo {
        match self {
            FindingKind::ProtocolPortMismatch => KindInfo {
                name: "protocol_port_mismatch",
                signature_id: SID_BASE + 1,
                signature: "UNMASK protocol on a port reserved for another protocol",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::AllowedServicePorts,
            },
            FindingKind::NonStandardPort => KindInfo {
                name: "nonstandard_port",
                signature_id: SID_BASE + 2,
                signature: "UNMASK known protocol on a non-standard port",
                category: "Misc activity",
                severity: 3,
                tunable: Tunable::AllowedServicePorts,
            },
            FindingKind::NonTlsOnTlsPort => KindInfo {
                name: "non_tls_on_tls_port",
                signature_id: SID_BASE + 3,
                signature: "UNMASK non-TLS traffic on a TLS port",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::OpaqueOnCleartextPort => KindInfo {
                name: "opaque_on_cleartext_port",
                signature_id: SID_BASE + 4,
                signature:
                    "UNMASK unidentifiable or high-entropy data on a cleartext protocol port",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::ProtocolDirectionMismatch => KindInfo {
                name: "protocol_direction_mismatch",
                signature_id: SID_BASE + 5,
                signature: "UNMASK each direction of the flow speaks a different protocol",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::TlsMalformedHandshake => KindInfo {
                name: "tls_malformed_handshake",
                signature_id: SID_BASE + 6,
                signature: "UNMASK malformed or fake TLS handshake",
                category: "Potentially Bad Traffic",
                severity: 1,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::TlsAnsweredByNonTls => KindInfo {
                name: "tls_answered_by_non_tls",
                signature_id: SID_BASE + 7,
                signature: "UNMASK TLS ClientHello answered by something that is not TLS",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::TlsOneSided => KindInfo {
                name: "tls_one_sided",
                signature_id: SID_BASE + 8,
                signature: "UNMASK TLS seen in one direction only",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::TlsFingerprintDenied => KindInfo {
                name: "tls_fingerprint_denied",
                signature_id: SID_BASE + 9,
                signature: "UNMASK TLS client fingerprint on the deny list",
                category: "A Network Trojan was detected",
                severity: 1,
                tunable: Tunable::TlsFingerprintMatch,
            },
            FindingKind::TlsFingerprintNotAllowed => KindInfo {
                name: "tls_fingerprint_not_allowed",
                signature_id: SID_BASE + 10,
                signature:
                    "UNMASK TLS client fingerprint not on the allow list for this destination",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::TlsFingerprintMatch,
            },
            FindingKind::CertIssuerWatched => KindInfo {
                name: "cert_issuer_watched",
                signature_id: SID_BASE + 11,
                signature: "UNMASK certificate issuer organisation on the watch list",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertIssuerNotAllowed => KindInfo {
                name: "cert_issuer_not_allowed",
                signature_id: SID_BASE + 12,
                signature: "UNMASK certificate issuer organisation not on the allow list",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertSelfSigned => KindInfo {
                name: "cert_self_signed",
                signature_id: SID_BASE + 13,
                signature: "UNMASK self-signed server certificate",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertExpired => KindInfo {
                name: "cert_expired",
                signature_id: SID_BASE + 14,
                signature: "UNMASK server certificate expired at packet time",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertNotYetValid => KindInfo {
                name: "cert_not_yet_valid",
                signature_id: SID_BASE + 15,
                signature: "UNMASK server certificate not yet valid at packet time",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertValidityTooLong => KindInfo {
                name: "cert_validity_too_long",
                signature_id: SID_BASE + 16,
                signature: "UNMASK server certificate validity period too long",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertNameMismatch => KindInfo {
                name: "cert_name_mismatch",
                signature_id: SID_BASE + 17,
                signature: "UNMASK SNI not covered by the server certificate",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::CertInvalid => KindInfo {
                name: "cert_invalid",
                signature_id: SID_BASE + 18,
                signature: "UNMASK unparsable server certificate",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::TlsFatalAlertAfterCertificate => KindInfo {
                name: "tls_fatal_alert_after_certificate",
                signature_id: SID_BASE + 19,
                signature: "UNMASK TLS fatal alert right after the certificate",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::SniMissing => KindInfo {
                name: "sni_missing",
                signature_id: SID_BASE + 20,
                signature: "UNMASK TLS ClientHello without SNI where a hostname is expected",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::SniIpLiteral => KindInfo {
                name: "sni_ip_literal",
                signature_id: SID_BASE + 21,
                signature: "UNMASK TLS SNI is an IP address",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::SniAlpnMismatch => KindInfo {
                name: "sni_alpn_mismatch",
                signature_id: SID_BASE + 22,
                signature: "UNMASK TLS SNI and ALPN contradict each other",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::ServiceImpersonation => KindInfo {
                name: "service_impersonation",
                signature_id: SID_BASE + 23,
                signature: "UNMASK flow claims a well-known service it does not belong to",
                category: "A Network Trojan was detected",
                severity: 1,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::HttpHeaderSignature => KindInfo {
                name: "http_header_signature",
                signature_id: SID_BASE + 24,
                signature: "UNMASK HTTP header signature match",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::HeaderSignatureMatch,
            },
            FindingKind::HttpHeaderAnomaly => KindInfo {
                name: "http_header_anomaly",
                signature_id: SID_BASE + 25,
                signature: "UNMASK HTTP header anomaly score above threshold",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::AsymmetricFlow => KindInfo {
                name: "asymmetric_flow",
                signature_id: SID_BASE + 26,
                signature: "UNMASK upload-heavy flow",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::FullyEncryptedFirstPayload => KindInfo {
                name: "fully_encrypted",
                signature_id: SID_BASE + 27,
                signature: "UNMASK fully encrypted first payload (no protocol, random bytes)",
                category: "Potential Corporate Privacy Violation",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::TlsInTls => KindInfo {
                name: "tls_in_tls",
                signature_id: SID_BASE + 28,
                signature: "UNMASK TLS handshake tunnelled inside TLS (record sizes)",
                category: "Potential Corporate Privacy Violation",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::EsniWithCleartextSni => KindInfo {
                name: "esni_with_cleartext_sni",
                signature_id: SID_BASE + 29,
                signature: "UNMASK TLS ESNI offered beside a cleartext SNI",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::EchPublicNameMismatch => KindInfo {
                name: "ech_public_name_mismatch",
                signature_id: SID_BASE + 30,
                signature: "UNMASK TLS ECH public name not covered by the server certificate",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::EchNonBrowserClient => KindInfo {
                name: "ech_non_browser_client",
                signature_id: SID_BASE + 31,
                signature: "UNMASK TLS ECH or ESNI from a client hello no browser sends",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::TlsFingerprintMatch,
            },
            FindingKind::HttpBodyTypeMismatch => KindInfo {
                name: "http_body_type_mismatch",
                signature_id: SID_BASE + 32,
                signature: "UNMASK HTTP response body contradicts its Content-Type",
                category: "A Network Trojan was detected",
                severity: 1,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::HttpImageWithoutMagic => KindInfo {
                name: "http_image_without_magic",
                signature_id: SID_BASE + 33,
                signature: "UNMASK HTTP image response without an image signature",
                category: "Potentially Bad Traffic",
                severity: 3,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::WebSocketImpersonation => KindInfo {
                name: "websocket_impersonation",
                signature_id: SID_BASE + 34,
                signature: "UNMASK HTTP upgrade to WebSocket that is not WebSocket",
                category: "Potential Corporate Privacy Violation",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::IpFragmentOverlap => KindInfo {
                name: "ip_fragment_overlap",
                signature_id: SID_BASE + 35,
                signature: "UNMASK overlapping IP fragments with different data",
                category: "Potentially Bad Traffic",
                severity: 1,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::TcpOverlapConflict => KindInfo {
                name: "tcp_overlap_conflict",
                signature_id: SID_BASE + 36,
                signature: "UNMASK overlapping TCP segments with different data",
                category: "Potentially Bad Traffic",
                severity: 1,
                tunable: Tunable::HeaderAnomalyScore,
            },
            FindingKind::HostBlocked => KindInfo {
                name: "host_blocked",
                signature_id: SID_BASE + 37,
                signature: "UNMASK new flow of a host a host alert put on the block list",
                category: "Potentially Bad Traffic",
                severity: 1,
                tunable: Tunable::TimeWindow,
            },
            FindingKind::Tls13RecordShape => KindInfo {
                name: "tls13_record_shape",
                signature_id: SID_BASE + 41,
                signature: "UNMASK TLS 1.3 handshake records of a size no genuine stack sends (relayed handshake)",
                category: "Potential Corporate Privacy Violation",
                severity: 2,
                tunable: Tunable::ProtocolMatchConfidence,
            },
            FindingKind::ServiceProfileMismatch => KindInfo {
                name: "service_profile_mismatch",
                signature_id: SID_BASE + 42,
                signature: "UNMASK server departs from the learned profile of the service it answers for",
                category: "Potentially Bad Traffic",
                severity: 2,
                tunable: Tunable::IssuerOrgFilter,
            },
            FindingKind::Relayed => KindInfo {
                name: "relayed",
                signature_id: SID_BASE + 43,
                signature: "UNMASK server answers one leg later than its transport RTT (relay)",
                category: "Potential Corporate Privacy Violation",
                severity: 3,
                tunable: Tunable::ProtocolMatchConfidence,
            },
        }
    }

    pub fn name(self) -> &'static str {
        self.info().name
    }
}

/// Capacity of one evidence value; longer values are cut and marked truncated.
pub const EVIDENCE_VALUE_LEN: usize = 192;
const EVIDENCE_ITEMS: usize = 8;

/// The values that made a check fire, as (name, value) pairs.
#[derive(Debug, Clone, Copy)]
pub struct Evidence {
    items: [(&'static str, InlineStr<EVIDENCE_VALUE_LEN>); EVIDENCE_ITEMS],
    len: u8,
}

impl Default for Evidence {
    fn default() -> Self {
        Evidence {
            items: [("", InlineStr::new()); EVIDENCE_ITEMS],
            len: 0,
        }
    }
}

impl Evidence {
    /// Adds one value; extra values beyond capacity are ignored (checks add the most telling
    /// ones first).
    pub fn add(&mut self, name: &'static str, value: impl std::fmt::Display) {
        if let Some(slot) = self.items.get_mut(self.len as usize) {
            slot.0 = name;
            slot.1.clear();
            let _ = write!(slot.1, "{value}");
            self.len += 1;
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        self.items[..self.len as usize]
            .iter()
            .map(|(k, v)| (*k, v.as_str()))
    }

    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(k, _)| *k == name).map(|(_, v)| v)
    }
}

/// One thing a check found on a flow.
#[derive(Debug, Clone, Copy)]
pub struct Finding {
    pub kind: FindingKind,
    /// How sure the check is, 0..=100.
    pub confidence: u8,
    /// Whether, in block mode, this finding drops the flow (from the check's `block` key).
    pub block: bool,
    /// The direction whose data triggered it.
    pub dir: Dir,
    pub evidence: Evidence,
}

/// Findings raised while handling one event; fixed capacity, no heap.
pub struct Findings {
    items: [Option<Finding>; Self::CAPACITY],
    len: usize,
    /// Findings that did not fit (counted by the engine).
    pub overflow: u32,
}

impl Default for Findings {
    fn default() -> Self {
        Findings {
            items: [None; Self::CAPACITY],
            len: 0,
            overflow: 0,
        }
    }
}

impl Findings {
    pub const CAPACITY: usize = 8;

    pub fn push(&mut self, f: Finding) {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(f);
                self.len += 1;
            }
            None => self.overflow += 1,
        }
    }

    pub fn iter(&self) -> impl Iterator<Item = &Finding> {
        self.items[..self.len].iter().flatten()
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.overflow = 0;
    }
}

/// The shape every check has.
pub trait Check {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_fit_their_arrays_and_signature_ids_follow_discriminants() {
        let mut seen = [false; FindingKind::COUNT];
        for k in FindingKind::ALL {
            assert!(k.index() < FindingKind::COUNT, "{}", k.name());
            assert!(!seen[k.index()], "{} listed twice", k.name());
            seen[k.index()] = true;
            assert_eq!(k.info().signature_id, SID_BASE + k.index() as u32 + 1);
        }
        assert!(
            seen[FindingKind::COUNT - 1],
            "COUNT is one past the highest kind"
        );
    }
}
