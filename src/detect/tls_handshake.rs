//! Fake or malformed TLS handshakes (DET0470 ProtocolMatchConfidence): a per-direction record and
//! handshake state machine's anomalies, ClientHellos answered by something that is not TLS, and
//! TLS seen in one direction only.
//!
//! The record and handshake parser (`crate::proto::tls`) reports 35 kinds of anomaly. This check
//! judges them: [`anomaly_confidence`] says how strongly each one means "no TLS stack wrote
//! this". Impossible structures (lengths that disagree, empty cipher lists, duplicate
//! extensions, broken record framing, a hello from the wrong side) are near-certain; version
//! oddities that only hand-made hellos show are likely; legacy formats and the traces of a
//! capture that began mid-session are not signs of fakery at all and never raise anything.
//!
//! On top of the parser's per-direction view, the check compares the two hellos (a server may
//! only choose a cipher, version and ALPN protocol the client offered) and looks at flows that
//! skip the handshake altogether.
//!
//! | rule | finding | when |
//! |---|---|---|
//! | parser anomaly with confidence ≥ `min_confidence` | `tls_malformed_handshake` | as reported; hello-internal ones at the hello, with its lengths |
//! | `server_cipher_not_offered`, `server_version_not_offered`, `server_alpn_not_offered` | `tls_malformed_handshake` | at the ServerHello |
//! | `handshake_skipped`: a direction seen from its first byte (or a server answering a seen ClientHello) starts with a non-handshake record, never sends its hello, and sends application data | `tls_malformed_handshake` | at an alert, at the end of the handshake or of inspection, at flow end |
//! | the server's first bytes are not TLS after a ClientHello (`not_tls`), in either order | `tls_answered_by_non_tls` | at once |
//! | client sent its hello and more, the server is on the wire but sent nothing that could be TLS | `tls_one_sided` | at flow end |

use std::fmt;

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::TlsFacts;
use crate::proto::tls::{is_grease, is_known_version, AnomalySet, ClientHello, TlsAnomaly};
use crate::proto::AppProto;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsHandshakeConfig {
    pub enabled: bool,
    pub block: bool,
    /// DET0470 ProtocolMatchConfidence: the least confidence (1-100) a malformation needs to
    /// raise `tls_malformed_handshake`.
    pub min_confidence: u8,
    /// Anomaly names (parser anomalies or this check's cross-checks) never to report.
    pub ignore_anomalies: Vec<String>,
    pub answered_by_non_tls: bool,
    pub one_sided: bool,
    /// Client TLS bytes (hello included) a one-sided flow needs before it is reported.
    pub one_sided_min_client_bytes: u32,
}

impl Default for TlsHandshakeConfig {
    fn default() -> Self {
        TlsHandshakeConfig {
            enabled: true,
            block: true,
            min_confidence: 60,
            ignore_anomalies: Vec::new(),
            answered_by_non_tls: true,
            one_sided: true,
            one_sided_min_client_bytes: 1024,
        }
    }
}

/// Names of the rules this check adds to the parser's anomalies (accepted in
/// `ignore_anomalies` too).
pub const CROSS_CHECKS: [&str; 4] = [
    "server_cipher_not_offered",
    "server_version_not_offered",
    "server_alpn_not_offered",
    "handshake_skipped",
];

const CIPHER_NOT_OFFERED: u8 = 1 << 0;
const VERSION_NOT_OFFERED: u8 = 1 << 1;
const ALPN_NOT_OFFERED: u8 = 1 << 2;
const HANDSHAKE_SKIPPED: u8 = 1 << 3;

impl TlsHandshakeConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let key_err = |key: String, message: String| KeyError {
            path: path.into(),
            key,
            message,
        };
        if !(1..=100).contains(&self.min_confidence) {
            return Err(key_err(
                "detect.tls_handshake.min_confidence".into(),
                format!("invalid value {}; accepted: 1 to 100", self.min_confidence),
            ));
        }
        for (i, name) in self.ignore_anomalies.iter().enumerate() {
            if !TlsAnomaly::NAMES.contains(&name.as_str()) && !CROSS_CHECKS.contains(&name.as_str())
            {
                return Err(key_err(
                    format!("detect.tls_handshake.ignore_anomalies[{i}]"),
                    format!(
                        "unknown anomaly {name:?}; accepted: {}, {}",
                        TlsAnomaly::NAMES.join(", "),
                        CROSS_CHECKS.join(", ")
                    ),
                ));
            }
        }
        if self.one_sided_min_client_bytes > 1 << 20 {
            return Err(key_err(
                "detect.tls_handshake.one_sided_min_client_bytes".into(),
                format!(
                    "invalid value {}; accepted: 0 to 1048576",
                    self.one_sided_min_client_bytes
                ),
            ));
        }
        Ok(())
    }
}

/// One anomaly of every kind, by [`TlsAnomaly::kind_index`] (payloads are placeholders).
const ALL_KINDS: [TlsAnomaly; TlsAnomaly::KINDS] = [
    TlsAnomaly::NotTls,
    TlsAnomaly::Sslv2ClientHello,
    TlsAnomaly::InvalidContentType,
    TlsAnomaly::RecordVersionInvalid,
    TlsAnomaly::RecordVersionOdd,
    TlsAnomaly::RecordTooLong,
    TlsAnomaly::EmptyRecord,
    TlsAnomaly::FramingBrokenAfterCcs,
    TlsAnomaly::CcsInvalid,
    TlsAnomaly::AlertInvalid,
    TlsAnomaly::AppDataBeforeHandshake,
    TlsAnomaly::HandshakeInterleaved,
    TlsAnomaly::HandshakeTooLarge,
    TlsAnomaly::HandshakeTypeUnknown,
    TlsAnomaly::HandshakeBodyInvalid { msg_type: 0 },
    TlsAnomaly::ClientHelloFromServer,
    TlsAnomaly::ServerHelloFromClient,
    TlsAnomaly::HelloTruncated,
    TlsAnomaly::HelloTrailingBytes,
    TlsAnomaly::HelloVersionInvalid,
    TlsAnomaly::HelloVersionOdd,
    TlsAnomaly::RecordHelloVersionMismatch,
    TlsAnomaly::ServerVersionInconsistent,
    TlsAnomaly::SupportedVersionUnknown,
    TlsAnomaly::SessionIdTooLong,
    TlsAnomaly::CipherListEmpty,
    TlsAnomaly::CipherListOddLength,
    TlsAnomaly::CompressionListEmpty,
    TlsAnomaly::ExtensionsEmpty,
    TlsAnomaly::ExtensionsLengthMismatch,
    TlsAnomaly::ExtensionDuplicate,
    TlsAnomaly::ExtensionBodyInvalid { ext: 0 },
    TlsAnomaly::ServerChoseGrease,
    TlsAnomaly::CertificateListInvalid,
    TlsAnomaly::StartsWithoutHandshake,
];

/// How strongly a parser anomaly says the handshake was not written by a TLS stack (0: not a
/// sign of fakery; such anomalies never raise `tls_malformed_handshake`).
pub fn anomaly_confidence(a: TlsAnomaly) -> u8 {
    use TlsAnomaly::*;
    match a {
        // Judged by their own rules: `not_tls` answers a hello (tls_answered_by_non_tls), a
        // first record that is not a handshake is a mid-session pickup unless the stream was
        // seen from its start (handshake_skipped).
        NotTls | StartsWithoutHandshake => 0,
        // Legacy or real-world oddities: SSLv2-format hellos from pre-2010 stacks; private
        // version numbers (Facebook's fizz offers 0xfb1a); handshake messages larger than the
        // reassembly buffer (huge CertificateRequest CA lists).
        Sslv2ClientHello | SupportedVersionUnknown | HandshakeTooLarge => 0,
        // RFC 5246's grammar allows an empty extensions block and some embedded stacks send
        // one: weak, below the default threshold.
        ExtensionsEmpty => 50,
        // Structures no TLS stack can produce: counts and lengths that contradict each other,
        // lists that may not be empty, record framing that breaks.
        CipherListEmpty | CipherListOddLength => 95,
        InvalidContentType
        | RecordTooLong
        | HelloTruncated
        | HelloVersionInvalid
        | SessionIdTooLong
        | CompressionListEmpty
        | ExtensionsLengthMismatch
        | ExtensionDuplicate
        | ServerChoseGrease
        | ClientHelloFromServer
        | ServerHelloFromClient => 90,
        FramingBrokenAfterCcs
        | RecordVersionInvalid
        | CcsInvalid
        | AppDataBeforeHandshake
        | HandshakeTypeUnknown
        | HandshakeBodyInvalid { .. }
        | ServerVersionInconsistent
        | CertificateListInvalid => 85,
        AlertInvalid | HandshakeInterleaved | ExtensionBodyInvalid { .. } | HelloVersionOdd => 80,
        EmptyRecord | HelloTrailingBytes => 75,
        // Version contradictions between layers: hand-made hellos, rarely odd stacks.
        RecordVersionOdd | RecordHelloVersionMismatch => 70,
    }
}

/// Anomalies reported while a hello is parsed, before its event: judged at the hello, where
/// its lengths are known. (`hello_truncated` stops the parse, so no hello event follows.)
fn hello_internal(a: TlsAnomaly) -> bool {
    use TlsAnomaly::*;
    matches!(
        a,
        HelloTrailingBytes
            | HelloVersionInvalid
            | HelloVersionOdd
            | RecordHelloVersionMismatch
            | ServerVersionInconsistent
            | SupportedVersionUnknown
            | SessionIdTooLong
            | CipherListEmpty
            | CipherListOddLength
            | CompressionListEmpty
            | ExtensionsEmpty
            | ExtensionsLengthMismatch
            | ExtensionDuplicate
            | ExtensionBodyInvalid { .. }
            | ServerChoseGrease
    )
}

pub struct TlsHandshakeCheck {
    cfg: TlsHandshakeConfig,
    /// Bit per parser anomaly kind index that is ignored.
    ignored: u64,
    /// Bit per cross-check that is ignored.
    ignored_cross: u8,
}

fn dir_name(d: Dir) -> &'static str {
    match d {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

/// A version as `0x0303 (TLS 1.2)`.
struct Version(u16);

impl fmt::Display for Version {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "0x{:04x} ({})",
            self.0,
            crate::inspect::version_name(self.0, false)
        )
    }
}

/// An anomaly name with its payload, e.g. `extension_body_invalid(ext=16)`.
struct AnomalyText(TlsAnomaly);

impl fmt::Display for AnomalyText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())?;
        match self.0 {
            TlsAnomaly::ExtensionBodyInvalid { ext } => write!(f, "(ext={ext})"),
            TlsAnomaly::HandshakeBodyInvalid { msg_type } => write!(f, "(msg_type={msg_type})"),
            _ => Ok(()),
        }
    }
}

/// The reportable anomalies of a set, comma-separated.
struct Flagged<'a>(&'a TlsHandshakeCheck, AnomalySet);

impl fmt::Display for Flagged<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for a in ALL_KINDS.iter().filter(|a| self.1.contains(**a)) {
            if self.0.reportable(*a).is_some() {
                if !first {
                    f.write_str(",")?;
                }
                f.write_str(a.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

impl TlsHandshakeCheck {
    pub fn new(cfg: &TlsHandshakeConfig) -> Self {
        let mut ignored = 0u64;
        let mut ignored_cross = 0u8;
        for name in &cfg.ignore_anomalies {
            if let Some(i) = TlsAnomaly::NAMES.iter().position(|n| n == name) {
                ignored |= 1 << i;
            }
            if let Some(i) = CROSS_CHECKS.iter().position(|n| n == name) {
                ignored_cross |= 1 << i;
            }
        }
        TlsHandshakeCheck {
            cfg: cfg.clone(),
            ignored,
            ignored_cross,
        }
    }

    /// The confidence of `a` when it is to be reported as a malformation.
    fn reportable(&self, a: TlsAnomaly) -> Option<u8> {
        let c = anomaly_confidence(a);
        let ignored = self.ignored & (1u64 << a.kind_index()) != 0;
        (c > 0 && !ignored && c >= self.cfg.min_confidence).then_some(c)
    }

    fn cross_enabled(&self, bit: u8, confidence: u8) -> bool {
        self.ignored_cross & bit == 0 && confidence >= self.cfg.min_confidence
    }

    fn finding(&self, kind: FindingKind, confidence: u8, dir: Dir, block: bool) -> Finding {
        Finding {
            kind,
            confidence,
            block: block && self.cfg.block,
            dir,
            evidence: Evidence::default(),
        }
    }

    fn on_anomaly(
        &self,
        view: &FlowView<'_>,
        t: &TlsFacts,
        dir: Dir,
        a: TlsAnomaly,
        out: &mut Findings,
    ) {
        let s = &t.summary;
        match a {
            TlsAnomaly::NotTls => {
                if dir == Dir::ToClient && s.client_hello_seen {
                    self.answered_by_non_tls(view, t, out);
                }
                return;
            }
            // A hello from the wrong side is a malformation only when the other side already
            // played its own role; otherwise the roles were guessed the wrong way round (a
            // flow picked up without its SYN).
            TlsAnomaly::ClientHelloFromServer if !s.client_hello_seen => return,
            TlsAnomaly::ServerHelloFromClient if !(s.client_hello_seen || s.server_hello_seen) => {
                return
            }
            a if hello_internal(a) => return,
            _ => {}
        }
        let Some(confidence) = self.reportable(a) else {
            return;
        };
        let mut f = self.finding(FindingKind::TlsMalformedHandshake, confidence, dir, true);
        let e = &mut f.evidence;
        e.add("anomaly", AnomalyText(a));
        e.add("direction", dir_name(dir));
        e.add("anomalies", Flagged(self, anomalies(t, dir)));
        add_versions(e, t, dir);
        out.push(f);
    }

    /// Hello-internal anomalies, judged with the hello's lengths at hand.
    fn on_hello(
        &self,
        t: &TlsFacts,
        hello: (&'static str, u16, u16, u32, usize, usize),
        out: &mut Findings,
    ) {
        let (what, record_version, hello_version, body_len, ciphers, extensions) = hello;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let set = anomalies(t, dir);
            let worst = ALL_KINDS
                .iter()
                .filter(|a| set.contains(**a) && hello_internal(**a))
                .filter_map(|a| self.reportable(*a).map(|c| (c, *a)))
                .max_by_key(|(c, _)| *c);
            let Some((confidence, a)) = worst else {
                continue;
            };
            let mut f = self.finding(FindingKind::TlsMalformedHandshake, confidence, dir, true);
            let e = &mut f.evidence;
            e.add("anomaly", AnomalyText(a));
            e.add("direction", dir_name(dir));
            e.add("anomalies", Flagged(self, set));
            e.add("hello", what);
            e.add("record_version", Version(record_version));
            e.add("hello_version", Version(hello_version));
            e.add("hello_length", body_len);
            e.add("ciphers_extensions", format_args!("{ciphers}/{extensions}"));
            out.push(f);
            return;
        }
    }

    /// The server's choices against the client's offer.
    fn cross_check(&self, view: &FlowView<'_>, t: &TlsFacts, out: &mut Findings) {
        let s = &t.summary;
        if !(s.client_hello_seen && s.server_hello_seen) {
            return;
        }
        if let Some(ja3) = t.ja3.as_ref().filter(|j| !j.incomplete) {
            let offered = ja3_field(ja3.text.as_str(), 1);
            if !is_grease(s.cipher)
                && !list_has(offered, s.cipher)
                && self.cross_enabled(CIPHER_NOT_OFFERED, 90)
            {
                let mut f =
                    self.finding(FindingKind::TlsMalformedHandshake, 90, Dir::ToClient, true);
                f.evidence.add("anomaly", CROSS_CHECKS[0]);
                f.evidence
                    .add("server_cipher", format_args!("0x{:04x}", s.cipher));
                f.evidence.add("client_ciphers", offered);
                add_sni(&mut f.evidence, view, t);
                out.push(f);
                return;
            }
        }
        let (offered, chosen) = (s.client_max_version, s.negotiated_version);
        if is_known_version(offered)
            && is_known_version(chosen)
            && chosen > offered
            && self.cross_enabled(VERSION_NOT_OFFERED, 90)
        {
            let mut f = self.finding(FindingKind::TlsMalformedHandshake, 90, Dir::ToClient, true);
            f.evidence.add("anomaly", CROSS_CHECKS[1]);
            f.evidence.add("server_version", Version(chosen));
            f.evidence.add("client_max_version", Version(offered));
            add_sni(&mut f.evidence, view, t);
            out.push(f);
            return;
        }
        if let Some(selected) = s.alpn_selected.as_ref() {
            let list = t.client_alpns.as_slice();
            // Eight kept names may be a cut list: a match beyond them cannot be ruled out.
            let complete = list.len() < 8;
            if complete
                && !list.iter().any(|a| a == selected)
                && self.cross_enabled(ALPN_NOT_OFFERED, 80)
            {
                let mut f =
                    self.finding(FindingKind::TlsMalformedHandshake, 80, Dir::ToClient, true);
                f.evidence.add("anomaly", CROSS_CHECKS[2]);
                f.evidence.add("server_alpn", selected.as_str());
                f.evidence.add("client_alpns", AlpnList(list));
                add_sni(&mut f.evidence, view, t);
                out.push(f);
            }
        }
    }

    /// A direction that skipped the handshake: its first record was not a handshake although
    /// its stream was seen from the start (or it answers a ClientHello we saw), it never sent
    /// its hello, and it sent application data.
    fn handshake_skipped(&self, t: &TlsFacts, out: &mut Findings) {
        if !self.cross_enabled(HANDSHAKE_SKIPPED, 85) {
            return;
        }
        let s = &t.summary;
        for dir in [Dir::ToServer, Dir::ToClient] {
            let (hello, app_data) = match dir {
                Dir::ToServer => (s.client_hello_seen, s.app_data_client),
                Dir::ToClient => (s.server_hello_seen, s.app_data_server),
            };
            let from_start =
                t.from_start[dir.index()] || (dir == Dir::ToClient && s.client_hello_seen);
            if anomalies(t, dir).contains(TlsAnomaly::StartsWithoutHandshake)
                && from_start
                && !hello
                && app_data > 0
            {
                let mut f = self.finding(FindingKind::TlsMalformedHandshake, 85, dir, true);
                f.evidence.add("anomaly", CROSS_CHECKS[3]);
                f.evidence.add("direction", dir_name(dir));
                f.evidence.add("application_data_records", app_data);
                f.evidence.add("client_hello_seen", s.client_hello_seen);
                f.evidence.add("records", t.dirs[dir.index()].records());
                out.push(f);
                return;
            }
        }
    }

    fn answered_by_non_tls(&self, view: &FlowView<'_>, t: &TlsFacts, out: &mut Findings) {
        if !self.cfg.answered_by_non_tls {
            return;
        }
        let s = &t.summary;
        let server = view.ident[Dir::ToClient.index()];
        let known_other = !matches!(server.proto(), AppProto::Unknown | AppProto::Tls);
        // An SSLv2-format hello may be answered by an SSLv2 SERVER-HELLO, which is legacy
        // SSL, not "not TLS": only another identified protocol counts then.
        if s.sslv2_hello && !known_other {
            return;
        }
        let confidence = if known_other { 95 } else { 80 };
        let mut f = self.finding(
            FindingKind::TlsAnsweredByNonTls,
            confidence,
            Dir::ToClient,
            true,
        );
        let e = &mut f.evidence;
        e.add("server_protocol", server.proto().name());
        e.add("server_identification_confidence", server.confidence());
        e.add("server_bytes_seen", server.bytes_seen);
        e.add("client_version", Version(s.client_max_version));
        add_sni(e, view, t);
        out.push(f);
    }

    /// At flow end: the client sent its hello and more, the server was on the wire, yet it
    /// sent nothing that was or could become TLS. A tap that sees one direction (no server
    /// packets at all), a SYN-only or hello-only flow, and a server whose first record was cut
    /// by the capture or the stream depth (its bytes start like TLS) are all left alone, and so
    /// is a server whose stream has a hole (a lost segment: its hello may be in it).
    fn one_sided(&self, view: &FlowView<'_>, t: &TlsFacts, out: &mut Findings) {
        if !self.cfg.one_sided {
            return;
        }
        let s = &t.summary;
        let (client, server) = (
            &t.dirs[Dir::ToServer.index()],
            &t.dirs[Dir::ToClient.index()],
        );
        let server_ident = view.ident[Dir::ToClient.index()];
        let client_bytes = client.consumed();
        if !s.client_hello_seen
            || s.server_hello_seen
            || server.records() > 0
            || server.stopped()
            || t.lost_bytes[Dir::ToClient.index()]
            || server_ident.proto() == AppProto::Tls
            || view.pkts[Dir::ToClient.index()] == 0
            || client.records() < 2
            || client_bytes < self.cfg.one_sided_min_client_bytes as usize
        {
            return;
        }
        let mut f = self.finding(FindingKind::TlsOneSided, 70, Dir::ToServer, false);
        let e = &mut f.evidence;
        e.add("client_records", client.records());
        e.add("client_tls_bytes", client_bytes);
        e.add("server_packets", view.pkts[Dir::ToClient.index()]);
        e.add("server_bytes_seen", server_ident.bytes_seen);
        e.add("server_protocol", server_ident.proto().name());
        add_sni(e, view, t);
        out.push(f);
    }
}

fn anomalies(t: &TlsFacts, dir: Dir) -> AnomalySet {
    match dir {
        Dir::ToServer => t.summary.anomalies_client,
        Dir::ToClient => t.summary.anomalies_server,
    }
}

fn add_versions(e: &mut Evidence, t: &TlsFacts, dir: Dir) {
    let s = &t.summary;
    match dir {
        Dir::ToServer if s.client_hello_seen => {
            e.add("record_version", Version(s.client_record_version));
            e.add("hello_version", Version(s.client_legacy_version));
        }
        Dir::ToClient if s.server_hello_seen => {
            e.add("server_version", Version(s.negotiated_version));
        }
        _ => {}
    }
}

fn add_sni(e: &mut Evidence, _view: &FlowView<'_>, t: &TlsFacts) {
    if t.summary.has_sni {
        e.add("sni", t.summary.sni.as_str());
    }
}

/// Field `n` (0-based) of a JA3 string (`version,ciphers,extensions,groups,formats`).
fn ja3_field(ja3: &str, n: usize) -> &str {
    ja3.split(',').nth(n).unwrap_or("")
}

/// Is `value` in a `-`-separated decimal list?
fn list_has(list: &str, value: u16) -> bool {
    list.split('-').any(|v| v.parse::<u16>() == Ok(value))
}

struct AlpnList<'a, const N: usize>(&'a [crate::text::InlineStr<N>]);

impl<const N: usize> fmt::Display for AlpnList<'_, N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, a) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            f.write_str(a.as_str())?;
        }
        Ok(())
    }
}

fn client_hello_facts(ch: &ClientHello) -> (&'static str, u16, u16, u32, usize, usize) {
    (
        "client_hello",
        ch.record_version,
        ch.legacy_version,
        ch.body_len,
        ch.ciphers.total(),
        ch.extensions.total(),
    )
}

impl Check for TlsHandshakeCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Some(t) = view.tls else {
            return;
        };
        match *event {
            Event::TlsAnomaly { dir, anomaly } => self.on_anomaly(view, t, dir, anomaly, out),
            Event::TlsClientHello(ch) => {
                self.on_hello(t, client_hello_facts(ch), out);
                // The server spoke first and it was not TLS: now that the client's hello is
                // here, that is a hello "answered" by something else.
                let s = &t.summary;
                if s.client_hello_seen && s.anomalies_server.contains(TlsAnomaly::NotTls) {
                    self.answered_by_non_tls(view, t, out);
                }
            }
            Event::TlsServerHello(sh) => {
                let facts = (
                    "server_hello",
                    sh.record_version,
                    sh.legacy_version,
                    sh.body_len,
                    1,
                    sh.extensions.total(),
                );
                self.on_hello(t, facts, out);
                self.cross_check(view, t, out);
            }
            Event::TlsAlert { .. } | Event::TlsHandshakeDone => self.handshake_skipped(t, out),
            Event::FlowEnd => {
                self.handshake_skipped(t, out);
                self.one_sided(view, t, out);
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::fixtures::tls as build;
    use crate::proto::tls::{TlsEvent, TlsScratch};
    use crate::proto::{DirIdent, Probe};

    fn view<'a>(t: &'a TlsFacts) -> FlowView<'a> {
        let mut ident = [DirIdent::default(); 2];
        ident[0].probe = Probe::Match(AppProto::Tls, 100);
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            client_port: 50000,
            server_port: 443,
            ident,
            tls: Some(t),
            trail: None,
            http: None,
            seen_from_start: [true, true],
            pkts: [5, 5],
            bytes: [1000, 1000],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        }
    }

    /// Feeds `bytes` as direction `dir` the way inspection does, running the check on every
    /// event; returns the findings.
    fn feed(
        check: &TlsHandshakeCheck,
        t: &mut TlsFacts,
        ident: [DirIdent; 2],
        dir: Dir,
        bytes: &[u8],
    ) -> Vec<Finding> {
        let mut scratch = TlsScratch::new(1 << 16);
        let mut found = Vec::new();
        let mut d = t.dirs[dir.index()];
        let mut events = Vec::new();
        d.feed(bytes, &mut scratch, |ev| {
            t.summary.observe(dir, &ev);
            match ev {
                TlsEvent::ClientHello(ch) => {
                    if dir == Dir::ToServer && t.ja3.is_none() {
                        t.ja3 = Some(crate::proto::fingerprint::ja3(ch));
                        for a in ch.alpn.as_slice() {
                            t.client_alpns.push(*a);
                        }
                    }
                    let mut out = Findings::default();
                    let mut v = view(t);
                    v.ident = ident;
                    check.on_event(&v, &Event::TlsClientHello(ch), &mut out);
                    events.extend(out.iter().copied());
                }
                TlsEvent::ServerHello(sh) => {
                    let mut out = Findings::default();
                    let mut v = view(t);
                    v.ident = ident;
                    check.on_event(&v, &Event::TlsServerHello(sh), &mut out);
                    events.extend(out.iter().copied());
                }
                TlsEvent::Anomaly(anomaly) => {
                    let mut out = Findings::default();
                    let mut v = view(t);
                    v.ident = ident;
                    check.on_event(&v, &Event::TlsAnomaly { dir, anomaly }, &mut out);
                    events.extend(out.iter().copied());
                }
                _ => {}
            }
        });
        t.dirs[dir.index()] = d;
        found.extend(events);
        found
    }

    fn tls_ident() -> [DirIdent; 2] {
        let mut ident = [DirIdent::default(); 2];
        ident[0].probe = Probe::Match(AppProto::Tls, 100);
        ident[1].probe = Probe::Match(AppProto::Tls, 100);
        ident
    }

    fn end(
        check: &TlsHandshakeCheck,
        t: &TlsFacts,
        ident: [DirIdent; 2],
        pkts: [u64; 2],
    ) -> Vec<Finding> {
        let mut v = view(t);
        v.ident = ident;
        v.pkts = pkts;
        let mut out = Findings::default();
        check.on_event(&v, &Event::FlowEnd, &mut out);
        out.iter().copied().collect()
    }

    fn kinds(f: &[Finding]) -> Vec<FindingKind> {
        f.iter().map(|f| f.kind).collect()
    }

    fn default_check() -> TlsHandshakeCheck {
        TlsHandshakeCheck::new(&TlsHandshakeConfig::default())
    }

    #[test]
    fn kind_table_follows_the_parser_indices() {
        for (i, a) in ALL_KINDS.iter().enumerate() {
            assert_eq!(a.kind_index(), i, "{a:?}");
        }
    }

    #[test]
    fn benign_oddities_never_count_as_malformed() {
        for a in [
            TlsAnomaly::StartsWithoutHandshake,
            TlsAnomaly::Sslv2ClientHello,
            TlsAnomaly::SupportedVersionUnknown,
            TlsAnomaly::HandshakeTooLarge,
            TlsAnomaly::NotTls,
        ] {
            assert_eq!(anomaly_confidence(a), 0, "{a:?}");
        }
        assert!(anomaly_confidence(TlsAnomaly::ExtensionsEmpty) < 60);
        assert!(anomaly_confidence(TlsAnomaly::CipherListOddLength) >= 90);
    }

    #[test]
    fn genuine_handshake_raises_nothing() {
        let check = default_check();
        let mut t = TlsFacts::default();
        let chain: &[&[u8]] = &[crate::fixtures::CERT_WWW_EXAMPLE_COM];
        let mut found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        found.extend(feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::server_flight_tls12(0xc02f, Some("h2"), chain),
        ));
        found.extend(end(&check, &t, tls_ident(), [5, 5]));
        assert!(found.is_empty(), "{found:?}");
    }

    #[test]
    fn odd_cipher_list_is_malformed_with_hello_lengths() {
        let check = default_check();
        let mut t = TlsFacts::default();
        let hello = crate::fixtures::fake_tls::client_hello_odd_ciphers();
        let found = feed(&check, &mut t, tls_ident(), Dir::ToServer, &hello);
        assert_eq!(kinds(&found), [FindingKind::TlsMalformedHandshake]);
        let e = &found[0].evidence;
        assert_eq!(e.get("anomaly"), Some("cipher_list_odd_length"));
        assert_eq!(e.get("hello"), Some("client_hello"));
        assert_eq!(e.get("record_version"), Some("0x0301 (TLSv1)"));
        assert!(e.get("hello_length").is_some());
        assert_eq!(found[0].confidence, 95);
        assert!(found[0].block);
    }

    #[test]
    fn ignored_and_below_threshold_anomalies_stay_quiet() {
        let hello = crate::fixtures::fake_tls::client_hello_odd_ciphers();
        let ignore = TlsHandshakeCheck::new(&TlsHandshakeConfig {
            ignore_anomalies: vec!["cipher_list_odd_length".into()],
            ..TlsHandshakeConfig::default()
        });
        let mut t = TlsFacts::default();
        assert!(feed(&ignore, &mut t, tls_ident(), Dir::ToServer, &hello).is_empty());
        let strict = TlsHandshakeCheck::new(&TlsHandshakeConfig {
            min_confidence: 96,
            ..TlsHandshakeConfig::default()
        });
        let mut t = TlsFacts::default();
        assert!(feed(&strict, &mut t, tls_ident(), Dir::ToServer, &hello).is_empty());
    }

    #[test]
    fn garbage_after_a_record_header_breaks_framing() {
        let check = default_check();
        let mut t = TlsFacts::default();
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        let found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &crate::fixtures::fake_tls::garbage_after_header(600, 2),
        );
        assert!(
            kinds(&found).contains(&FindingKind::TlsMalformedHandshake),
            "{found:?}"
        );
    }

    #[test]
    fn hello_answered_by_ssh_is_answered_by_non_tls() {
        let check = default_check();
        let mut t = TlsFacts::default();
        let mut ident = tls_ident();
        ident[1].probe = Probe::Match(AppProto::Ssh, 95);
        feed(
            &check,
            &mut t,
            ident,
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        let found = feed(
            &check,
            &mut t,
            ident,
            Dir::ToClient,
            b"SSH-2.0-OpenSSH_9.2p1\r\n",
        );
        assert_eq!(kinds(&found), [FindingKind::TlsAnsweredByNonTls]);
        assert_eq!(found[0].evidence.get("server_protocol"), Some("ssh"));
        assert_eq!(found[0].confidence, 95);
        assert_eq!(found[0].evidence.get("sni"), Some("www.example.com"));
    }

    #[test]
    fn server_speaking_first_then_a_hello_is_answered_by_non_tls_too() {
        let check = default_check();
        let mut t = TlsFacts::default();
        let mut ident = tls_ident();
        ident[1].probe = Probe::Match(AppProto::Smtp, 90);
        assert!(feed(
            &check,
            &mut t,
            ident,
            Dir::ToClient,
            b"220 mx.example.com ESMTP\r\n"
        )
        .is_empty());
        let found = feed(
            &check,
            &mut t,
            ident,
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        assert_eq!(kinds(&found), [FindingKind::TlsAnsweredByNonTls]);
    }

    #[test]
    fn not_tls_from_a_client_or_without_a_hello_is_not_this_rule() {
        let check = default_check();
        let mut t = TlsFacts::default();
        assert!(feed(&check, &mut t, tls_ident(), Dir::ToClient, b"SSH-2.0-x\r\n").is_empty());
        let mut t = TlsFacts::default();
        assert!(feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            b"GET / HTTP/1.1\r\n"
        )
        .is_empty());
    }

    #[test]
    fn server_choices_outside_the_offer_are_malformed() {
        let check = default_check();
        let chain: &[&[u8]] = &[crate::fixtures::CERT_WWW_EXAMPLE_COM];
        // 0x0005 (RC4-SHA) is not among the modern ciphers offered.
        let mut t = TlsFacts::default();
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        let found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::server_flight_tls12(0x0005, None, chain),
        );
        assert_eq!(kinds(&found), [FindingKind::TlsMalformedHandshake]);
        assert_eq!(
            found[0].evidence.get("anomaly"),
            Some("server_cipher_not_offered")
        );
        assert_eq!(found[0].evidence.get("server_cipher"), Some("0x0005"));
        // ALPN the client never offered.
        let mut t = TlsFacts::default();
        let hello = build::Hello {
            alpn: &["http/1.1"],
            ..build::Hello::default()
        };
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&hello),
        );
        let found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::server_flight_tls12(0xc02f, Some("h2"), chain),
        );
        assert_eq!(
            found[0].evidence.get("anomaly"),
            Some("server_alpn_not_offered")
        );
        assert_eq!(found[0].evidence.get("client_alpns"), Some("http/1.1"));
        // Ignored cross-checks stay quiet.
        let quiet = TlsHandshakeCheck::new(&TlsHandshakeConfig {
            ignore_anomalies: vec!["server_alpn_not_offered".into()],
            ..TlsHandshakeConfig::default()
        });
        let mut t = TlsFacts::default();
        feed(
            &quiet,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&hello),
        );
        assert!(feed(
            &quiet,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::server_flight_tls12(0xc02f, Some("h2"), chain)
        )
        .is_empty());
    }

    #[test]
    fn swapped_roles_are_not_hellos_from_the_wrong_side() {
        let check = default_check();
        let chain: &[&[u8]] = &[crate::fixtures::CERT_WWW_EXAMPLE_COM];
        let mut t = TlsFacts::default();
        // Picked up without the SYN and the roles guessed the wrong way: the "server" sends
        // the ClientHello and the "client" the ServerHello.
        let mut found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::client_hello(&build::Hello::default()),
        );
        found.extend(feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::server_flight_tls12(0xc02f, None, chain),
        ));
        assert!(found.is_empty(), "{found:?}");
        // A server that answers a ClientHello with a ClientHello of its own is malformed.
        let mut t = TlsFacts::default();
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        let found = feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::client_hello(&build::Hello::default()),
        );
        assert_eq!(
            found[0].evidence.get("anomaly"),
            Some("client_hello_from_server")
        );
    }

    #[test]
    fn skipped_handshake_needs_a_stream_seen_from_its_start() {
        let check = default_check();
        let data = build::app_data(2000);
        // Mid-session pickup: nothing.
        let mut t = TlsFacts::default();
        feed(&check, &mut t, tls_ident(), Dir::ToServer, &data);
        feed(&check, &mut t, tls_ident(), Dir::ToClient, &data);
        assert!(end(&check, &t, tls_ident(), [5, 5]).is_empty());
        // The same bytes on a stream seen from its SYN: the handshake was skipped.
        let mut t = TlsFacts {
            from_start: [true; 2],
            ..TlsFacts::default()
        };
        feed(&check, &mut t, tls_ident(), Dir::ToServer, &data);
        let found = end(&check, &t, tls_ident(), [5, 5]);
        assert_eq!(kinds(&found), [FindingKind::TlsMalformedHandshake]);
        assert_eq!(found[0].evidence.get("anomaly"), Some("handshake_skipped"));
        assert_eq!(found[0].dir, Dir::ToServer);
    }

    #[test]
    fn server_answering_a_hello_with_application_data_skipped_its_handshake() {
        let check = default_check();
        let mut t = TlsFacts::default();
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToClient,
            &build::app_data(500),
        );
        let found = end(&check, &t, tls_ident(), [5, 5]);
        assert_eq!(found[0].dir, Dir::ToClient);
        assert_eq!(found[0].evidence.get("anomaly"), Some("handshake_skipped"));
        // A warning alert before the ServerHello (unrecognized_name) is a real server.
        let mut t = TlsFacts::default();
        let chain: &[&[u8]] = &[crate::fixtures::CERT_WWW_EXAMPLE_COM];
        feed(
            &check,
            &mut t,
            tls_ident(),
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        let mut answer = build::record(21, 0x0303, &[1, 112]);
        answer.extend(build::server_flight_tls12(0xc02f, Some("h2"), chain));
        answer.extend(build::server_finish_tls12());
        answer.extend(build::app_data(300));
        feed(&check, &mut t, tls_ident(), Dir::ToClient, &answer);
        assert!(end(&check, &t, tls_ident(), [5, 5]).is_empty());
    }

    #[test]
    fn one_sided_tls_needs_a_present_silent_server_and_a_busy_client() {
        let check = default_check();
        let mut client = build::client_hello(&build::Hello::default());
        client.extend(build::app_data(3000));
        let mut ident = tls_ident();
        ident[1] = DirIdent::default();
        let mut t = TlsFacts::default();
        feed(&check, &mut t, ident, Dir::ToServer, &client);
        let found = end(&check, &t, ident, [5, 3]);
        assert_eq!(kinds(&found), [FindingKind::TlsOneSided]);
        assert!(!found[0].block);
        assert_eq!(found[0].evidence.get("server_packets"), Some("3"));
        // A tap that never saw the server: not one-sided TLS, one-sided capture.
        assert!(end(&check, &t, ident, [5, 0]).is_empty());
        // Only a hello: a server that did not answer yet.
        let mut t = TlsFacts::default();
        feed(
            &check,
            &mut t,
            ident,
            Dir::ToServer,
            &build::client_hello(&build::Hello::default()),
        );
        assert!(end(&check, &t, ident, [2, 3]).is_empty());
        // A server whose first bytes look like TLS may have had its record cut.
        let mut t = TlsFacts::default();
        feed(&check, &mut t, ident, Dir::ToServer, &client);
        feed(&check, &mut t, ident, Dir::ToClient, &[22, 3, 3, 0x40, 0]);
        assert!(end(&check, &t, tls_ident(), [5, 3]).is_empty());
        // A server stream with a hole (the capture lost the segment with its hello, the
        // client acknowledged it): what was lost may have been TLS.
        let mut t = TlsFacts::default();
        feed(&check, &mut t, ident, Dir::ToServer, &client);
        t.lost_bytes[Dir::ToClient.index()] = true;
        assert!(end(&check, &t, ident, [5, 3]).is_empty());
        // Switched off.
        let off = TlsHandshakeCheck::new(&TlsHandshakeConfig {
            one_sided: false,
            ..Default::default()
        });
        let mut t = TlsFacts::default();
        feed(&off, &mut t, ident, Dir::ToServer, &client);
        assert!(end(&off, &t, ident, [5, 3]).is_empty());
    }

    #[test]
    fn validation_names_key_value_and_accepted() {
        let bad = TlsHandshakeConfig {
            ignore_anomalies: vec!["no_such_thing".into()],
            ..TlsHandshakeConfig::default()
        };
        match bad.validate("x.toml") {
            Err(KeyError { key, message, .. }) => {
                assert_eq!(key, "detect.tls_handshake.ignore_anomalies[0]");
                assert!(message.contains("no_such_thing") && message.contains("cipher_list_empty"));
            }
            other => panic!("{other:?}"),
        }
        let bad = TlsHandshakeConfig {
            min_confidence: 0,
            ..TlsHandshakeConfig::default()
        };
        assert!(
            matches!(bad.validate("x.toml"), Err(KeyError { key, .. }) if key == "detect.tls_handshake.min_confidence")
        );
        assert!(TlsHandshakeConfig::default().validate("x.toml").is_ok());
    }
}
