//! Impersonation checks. Each check looks at a flow's parsed state when something new is known
//! and pushes [`Finding`]s; checks never parse bytes themselves.
//!
//! Every finding carries what was found, how sure the check is, the values that triggered it,
//! MITRE ATT&CK T1001.003, and the DET0470 tunable it belongs to.

pub mod protocol_port;

use std::fmt::Write as _;

use crate::config::DetectConfig;
use crate::flow::Dir;
use std::net::IpAddr;

use crate::inspect::{HttpFacts, TlsFacts};
use crate::proto::http::HttpHead;
use crate::proto::ssh::SshBanner;
use crate::proto::tls::{ClientHello, ServerHello, TlsAnomaly};
use crate::proto::x509::{CertError, CertInfo};
use crate::proto::DirIdent;
use crate::source::Timestamp;
use crate::text::InlineStr;

pub use protocol_port::ProtocolPortCheck;

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
    pub const COUNT: usize = 2;
    pub const ALL: [FindingKind; Self::COUNT] = [
        FindingKind::ProtocolPortMismatch,
        FindingKind::NonStandardPort,
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

/// What a check is shown about a flow when an event happens. Everything is borrowed from the
/// engine's per-flow state for the duration of the call; checks keep nothing.
#[derive(Debug, Clone, Copy)]
pub struct FlowView<'a> {
    pub client_addr: IpAddr,
    pub server_addr: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    /// Identification per direction, indexed by [`Dir::index`].
    pub ident: [DirIdent; 2],
    /// TLS facts folded so far, when the flow carries TLS.
    pub tls: Option<&'a TlsFacts>,
    /// HTTP facts so far, when the flow carries HTTP.
    pub http: Option<&'a HttpFacts>,
    /// Packets and bytes per direction so far.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub first_ts: Timestamp,
    /// Packet time of the event.
    pub now: Timestamp,
}

/// The moments at which checks run, with what was just parsed.
#[derive(Debug, Clone, Copy)]
pub enum Event<'a> {
    /// Identification of this direction just finished; `data` is what the probes saw.
    Identified {
        dir: Dir,
        data: &'a [u8],
    },
    TlsClientHello(&'a ClientHello),
    TlsServerHello(&'a ServerHello),
    /// The leaf certificate, parsed (with the SNI matched against it when there was one).
    TlsLeafCertificate(&'a CertInfo),
    /// The leaf certificate's DER could not be parsed.
    TlsCertificateInvalid(CertError),
    TlsAnomaly {
        dir: Dir,
        anomaly: TlsAnomaly,
    },
    TlsAlert {
        dir: Dir,
        level: u8,
        description: u8,
    },
    /// The handshake is over (or stopped); fired once.
    TlsHandshakeDone,
    HttpRequest(&'a HttpHead<'a>),
    HttpResponse(&'a HttpHead<'a>),
    /// After a request, the server answered with bytes that are not an HTTP response.
    HttpResponseNotHttp {
        data: &'a [u8],
    },
    SshBanner {
        dir: Dir,
        banner: &'a SshBanner<'a>,
    },
    /// Every few thousand packets of a long flow, inspected or not.
    Periodic,
    /// The flow is ending.
    FlowEnd,
}

/// The shape every check has.
pub trait Check {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings);
}

/// Every configured check, dispatched statically.
pub struct Detector {
    protocol_port: Option<ProtocolPortCheck>,
}

impl Detector {
    pub fn new(cfg: &DetectConfig) -> Detector {
        Detector {
            protocol_port: cfg
                .protocol_port
                .enabled
                .then(|| ProtocolPortCheck::new(&cfg.protocol_port)),
        }
    }

    pub fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        if let Some(c) = &self.protocol_port {
            c.on_event(view, event, out);
        }
    }
}
