//! Per-flow inspection: what the engine keeps about a flow while it is still being judged, and
//! the driving of the protocol parsers over the in-order stream prefix.
//!
//! Every time a direction's in-order prefix grows, [`InspectState::advance`] identifies the
//! direction (until final), feeds the parser of the identified protocol, folds what it parsed
//! into the flow's facts, and reports each parsed object to the checks as an [`Event`]. It
//! stops at the first decision worth keeping: the state lives in a pool slot that is freed as
//! soon as [`InspectState::done`] says there is nothing more to learn.

use std::net::IpAddr;

use crate::capture::Timestamp;
use crate::flow::{Dir, StreamDir};
use crate::proto::entropy::PayloadFigures;
use crate::proto::fingerprint::{self, Ja3};
use crate::proto::http::{self, Body, HeadError, HttpHead};
use crate::proto::magic::{self, ChunkStart};
use crate::proto::ssh::{self, SshBanner};
use crate::proto::summary::{Known, TlsSummary};
use crate::proto::tls::{
    self, ClientHello, FixedList, ServerHello, TlsAnomaly, TlsDir, TlsEvent, TlsScratch,
    ALPN_TEXT_LEN,
};
use crate::proto::websocket;
use crate::proto::x509::{CertError, CertInfo, KeyKind, NameMatch, NAME_TEXT_LEN};
use crate::proto::{self, AppProto, DirIdent};
use crate::text::InlineStr;

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
    /// The records followed after a handshake (TLS records, or WebSocket frames after an
    /// HTTP upgrade), sizes only.
    pub trail: Option<&'a RecordTrail>,
    /// HTTP facts so far, when the flow carries HTTP.
    pub http: Option<&'a HttpFacts>,
    /// Packets and bytes per direction so far.
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    /// Per direction: its SYN was seen, so the inspected bytes start at the first byte it sent.
    /// False for a flow picked up mid-stream, whose first bytes may be the middle of anything
    /// (a TLS record, a compressed body), so checks that judge how a stream opens skip it.
    pub seen_from_start: [bool; 2],
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
    /// TLS 1.3: the client's first protected record after the ServerHello (its Finished)
    /// arrived, so the server's protected handshake flight in `TlsFacts::shape` is complete.
    TlsClientFinished,
    /// A record joined `FlowView::trail`: a TLS application-data record after the handshake,
    /// or a WebSocket data frame after an HTTP upgrade.
    TrailRecord {
        dir: Dir,
    },
    HttpRequest(&'a HttpHead<'a>),
    HttpResponse(&'a HttpHead<'a>),
    /// The first bytes of a response body (after the chunk-size line when chunked), once
    /// [`magic::SNIFF_LEN`] of them are in, the body ended, or no more will come.
    HttpResponseBody(&'a HttpBody<'a>),
    /// After a request, the server answered with bytes that are not an HTTP response.
    HttpResponseNotHttp {
        data: &'a [u8],
    },
    SshBanner {
        dir: Dir,
        banner: &'a SshBanner<'a>,
    },
    /// The client's first data, on a flow whose handshake was seen, matched no protocol: its
    /// randomness figures, and what this worker saw of the same server before (this flow
    /// included). Raised by the engine right after `Identified`.
    OpaqueFirstPayload {
        figures: &'a PayloadFigures,
        server: ServerTally,
    },
    /// An HTTP connection upgraded to WebSocket broke a rule no genuine peer breaks.
    WebSocketProblem {
        dir: Dir,
        problem: websocket::Problem,
    },
    /// Every few thousand packets of a long flow, inspected or not.
    Periodic,
    /// The flow is ending.
    FlowEnd,
}

/// A server's recent history on this worker: flows whose first client payload was judged,
/// and how many of those the published fully-encrypted rules matched.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerTally {
    pub judged: u32,
    pub fully_encrypted: u32,
}

/// HTTP messages parsed per direction: enough to judge a client, bounded for pipelines.
pub const MAX_HTTP_MESSAGES: u8 = 4;

/// Leaf certificate facts kept for the checks and the EVE `tls` record.
#[derive(Debug, Clone, Copy, Default)]
pub struct LeafCert {
    pub subject: InlineStr<{ crate::proto::x509::DN_TEXT_LEN }>,
    pub issuer: InlineStr<{ crate::proto::x509::DN_TEXT_LEN }>,
    pub subject_cn: Option<InlineStr<NAME_TEXT_LEN>>,
    pub issuer_orgs: FixedList<InlineStr<NAME_TEXT_LEN>, { crate::proto::x509::MAX_ISSUER_ORGS }>,
    /// The first SAN DNS names (for EVE; matching used all of them).
    pub san_dns: FixedList<InlineStr<NAME_TEXT_LEN>, 4>,
    pub san_dns_total: u16,
    pub serial: InlineStr<128>,
    pub sha1: [u8; 20],
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
    pub is_ca: bool,
    pub key_kind: KeyKind,
    pub key_bits: u32,
    pub host_match: Option<NameMatch>,
}

impl LeafCert {
    // Inlined so the 3.5 KB value is built where the caller keeps it, not copied there.
    #[inline(always)]
    fn from_info(c: &CertInfo) -> LeafCert {
        let mut san_dns = FixedList::default();
        for name in c.san_dns.as_slice().iter().take(4) {
            san_dns.push(*name);
        }
        LeafCert {
            subject: c.subject,
            issuer: c.issuer,
            subject_cn: c.subject_cn,
            issuer_orgs: c.issuer_orgs,
            san_dns,
            san_dns_total: c.san_dns.as_slice().len() as u16,
            serial: c.serial,
            sha1: c.sha1,
            not_before: c.not_before,
            not_after: c.not_after,
            self_signed: c.self_signed,
            is_ca: c.is_ca,
            key_kind: c.key_kind,
            key_bits: c.key_bits,
            host_match: c.host_match,
        }
    }
}

/// Application-data records followed after the handshake.
pub const TRAIL_RECORDS: usize = 25;
/// Inner length of a TLS 1.3 record that carries an alert (level and description).
const ENCRYPTED_ALERT_LEN: u16 = 2;

/// Bursts (runs of one direction) followed after the handshake: a CONNECT or WebSocket
/// exchange and the four bursts of an inner handshake, with room to spare.
pub const TRAIL_BURSTS: usize = 8;

/// The sizes and directions of the first application-data records after the TLS handshake,
/// each with the outer cipher's per-record overhead removed: what a TLS handshake tunnelled
/// inside this one looks like from outside (Xue et al., USENIX Security 2024). Records are
/// parsed, not guessed from packet sizes, so TLS 1.3's optional ChangeCipherSpec and records
/// split over segments change nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct RecordTrail {
    /// Direction ([`Dir::index`]) and inner length of each record, in arrival order.
    pub records: [(u8, u16); TRAIL_RECORDS],
    pub len: u8,
    /// Runs of one direction in `records`; the trail is full when the next run would pass
    /// [`TRAIL_BURSTS`] (a prelude exchange and the inner handshake fit in eight).
    pub bursts: u8,
    /// Records to follow (from the config); the trail is full at this many.
    pub limit: u8,
    /// Bytes removed from each record: the outer cipher's nonce, tag and content type.
    pub overhead: u16,
    /// TLS 1.3's client Finished (the first client record after its ChangeCipherSpec) was
    /// skipped: it belongs to the outer handshake.
    pub client_finished_skipped: bool,
}

impl RecordTrail {
    pub fn as_slice(&self) -> &[(u8, u16)] {
        &self.records[..usize::from(self.len).min(TRAIL_RECORDS)]
    }

    pub fn is_full(&self) -> bool {
        self.len >= self.limit
            || usize::from(self.len) >= TRAIL_RECORDS
            || usize::from(self.bursts) >= TRAIL_BURSTS
    }

    fn push(&mut self, dir: Dir, record_len: u16) {
        let turn = match self.as_slice().last() {
            Some(&(last, _)) => last != dir.index() as u8,
            None => true,
        };
        if turn && usize::from(self.bursts) >= TRAIL_BURSTS {
            return;
        }
        if let Some(slot) = self.records.get_mut(usize::from(self.len)) {
            *slot = (dir.index() as u8, record_len.saturating_sub(self.overhead));
            self.len += 1;
            self.bursts += u8::from(turn);
        }
    }
}

/// Bytes an outer record adds to what it carries: TLS 1.3 adds the content type and a
/// 16-byte tag; TLS 1.2 AES-GCM/CCM an 8-byte explicit nonce and the tag; ChaCha20 only the
/// tag. CBC suites pad to the block and add a MAC: about 40, never exact.
pub fn record_overhead(version: u16, cipher: u16) -> u16 {
    if version == 0x0304 {
        return 17;
    }
    match cipher {
        0xcca8..=0xccae => 16,
        0x009c..=0x00a7 | 0xc02b..=0xc032 | 0xc09c..=0xc0af | 0xc050..=0xc05f => 24,
        _ => 40,
    }
}

/// Server handshake record sizes kept (the first ones; count, total and last are kept whole).
pub const SHAPE_RECORDS: usize = 6;
/// Server records kept after the client's Finished.
pub const POST_HANDSHAKE_RECORDS: usize = 4;
/// Server records after the client's Finished the EVE `tls` record waits for: an
/// OpenSSL-based server's two NewSessionTickets, or a relay's first two data records.
pub const POST_HANDSHAKE_LOGGED: usize = 2;

/// The record-level shape of a TLS 1.3 handshake, seen without decryption: the server's
/// protected handshake records (application data after its ServerHello, before the client's
/// Finished), the client's Finished record, and the server's first records after it (the
/// NewSessionTickets of an OpenSSL-based server, or the first data of a relay that sends none).
/// Lengths are record lengths (inner content, content type and AEAD tag).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HandshakeShape {
    /// The server accepted a pre-shared key (resumption): its flight has no certificate.
    pub psk: bool,
    pub server_records: u16,
    pub server_bytes: u32,
    pub server_sizes: [u16; SHAPE_RECORDS],
    /// The last protected handshake record the server sent before the client's Finished.
    pub server_last: u16,
    /// One of those records had exactly the size of a lone Finished for the suite.
    pub server_finished_alone: bool,
    /// The client's first protected record after the ServerHello (its Finished, or its
    /// Certificate when the server asked for one); 0 until seen.
    pub client_finished: u16,
    /// The first protected record the client sent before the server's flight could have
    /// ended (a relay client's own data); 0 if none.
    pub client_early: u16,
    /// Server records after the client's Finished (counted whole, the first sizes kept).
    pub post_records: u16,
    pub post_sizes: [u16; POST_HANDSHAKE_RECORDS],
}

impl HandshakeShape {
    pub fn server_sizes(&self) -> &[u16] {
        &self.server_sizes[..usize::from(self.server_records).min(SHAPE_RECORDS)]
    }

    pub fn post_sizes(&self) -> &[u16] {
        &self.post_sizes[..usize::from(self.post_records).min(POST_HANDSHAKE_RECORDS)]
    }

    /// The client sent a protected record before the server's flight could have ended.
    pub fn client_spoke_early(&self) -> bool {
        self.client_early > 0
    }

    /// Folds one record event; `summary` already includes it. Returns true when the event was
    /// the client's Finished (the server's flight is then complete).
    fn observe(&mut self, dir: Dir, ev: &TlsEvent<'_>, summary: &TlsSummary) -> bool {
        match *ev {
            TlsEvent::ServerHello(sh) if dir == Dir::ToClient && !sh.is_hello_retry => {
                self.psk = sh.has_extension(PRE_SHARED_KEY_EXT);
                false
            }
            TlsEvent::ApplicationData { len }
                if summary.negotiated_version == 0x0304 && summary.server_hello_seen =>
            {
                match (dir, self.client_finished) {
                    (Dir::ToClient, 0) => {
                        if let Some(slot) =
                            self.server_sizes.get_mut(usize::from(self.server_records))
                        {
                            *slot = len;
                        }
                        self.server_records = self.server_records.saturating_add(1);
                        self.server_bytes = self.server_bytes.saturating_add(u32::from(len));
                        self.server_last = len;
                        let finished = tls::finished_record_len(summary.cipher);
                        if finished == Some(len) {
                            self.server_finished_alone = true;
                        }
                        // A client that spoke early may send nothing more before the server's
                        // data, which would then be taken for the flight's end (relaylab with
                        // delay lines, and 1 in 5 runs of the reduced lab). Its flight ends at
                        // its first record of a Finished's size, exact or with a few bytes
                        // appended (shorter than any CertificateVerify); the early record
                        // stands for the client's Finished.
                        let finished_sized = finished.is_some_and(|f| {
                            len >= f && len < f.saturating_add(SMALLEST_CERTIFICATE_VERIFY)
                        });
                        if self.client_early > 0 && finished_sized {
                            self.client_finished = self.client_early;
                            return true;
                        }
                        false
                    }
                    (Dir::ToServer, 0) => {
                        // A client has nothing protected to send between the ServerHello and
                        // the server's Finished (early data goes before the ServerHello): a
                        // record while the server's flight cannot have ended yet is a relay
                        // client's own data, and the flight is judged at the next one.
                        let flight_may_be_over = tls::finished_record_len(summary.cipher)
                            .is_none_or(|finished| self.server_last >= finished);
                        if !flight_may_be_over {
                            if self.client_early == 0 {
                                self.client_early = len.max(1);
                            }
                            return false;
                        }
                        self.client_finished = len.max(1);
                        true
                    }
                    (Dir::ToClient, _) => {
                        if let Some(slot) = self.post_sizes.get_mut(usize::from(self.post_records))
                        {
                            *slot = len;
                        }
                        self.post_records = self.post_records.saturating_add(1);
                        false
                    }
                    _ => false,
                }
            }
            _ => false,
        }
    }
}

// Per flow, in every inspection slot: keep it small.
const _: () = assert!(std::mem::size_of::<HandshakeShape>() <= 36);

/// The smallest CertificateVerify record (Ed25519; detect::handshake_shape's bound): a server
/// record shorter than that and at least a Finished can only be a Finished.
const SMALLEST_CERTIFICATE_VERIFY: u16 = 72;

/// TLS extension pre_shared_key: in a ServerHello, the server resumed a session.
const PRE_SHARED_KEY_EXT: u16 = 41;

/// What is known about a flow's TLS so far.
#[derive(Debug, Clone, Copy)]
pub struct TlsFacts {
    /// TLS parsing runs on this flow (identified as TLS, or found after a cleartext prelude).
    pub active: bool,
    /// Per direction: parsing started (at `start[d]`), or still looking for a hello.
    pub started: [bool; 2],
    pub dirs: [TlsDir; 2],
    pub summary: TlsSummary,
    pub ja3: Option<Ja3>,
    pub ja3s: Option<Ja3>,
    pub client_alpns: FixedList<InlineStr<ALPN_TEXT_LEN>, 8>,
    pub leaf: Option<LeafCert>,
    pub leaf_error: Option<CertError>,
    /// A fatal alert arrived after a certificate had been seen (either direction).
    pub fatal_alert_after_certificate: bool,
    /// Per direction: the stream is inspected from its first byte (the SYN was seen), so a
    /// first record that is not a handshake was sent that way, not picked up mid-session.
    pub from_start: [bool; 2],
    /// Per direction, set when the flow ends: bytes beyond a hole never became readable (the
    /// capture or the tap lost a segment), so what was not seen may well have been sent.
    pub lost_bytes: [bool; 2],
    pub handshake_done: bool,
    pub logged: bool,
    /// Per direction: bytes of the prefix already searched for a hello after a cleartext
    /// prelude, without finding one.
    pub upgrade_scanned: [u32; 2],
    pub trail: RecordTrail,
    pub shape: HandshakeShape,
}

impl Default for TlsFacts {
    #[inline(always)]
    fn default() -> Self {
        TlsFacts {
            active: false,
            started: [false; 2],
            dirs: [TlsDir::new(Dir::ToServer), TlsDir::new(Dir::ToClient)],
            summary: TlsSummary::default(),
            ja3: None,
            ja3s: None,
            client_alpns: FixedList::default(),
            leaf: None,
            leaf_error: None,
            fatal_alert_after_certificate: false,
            from_start: [false; 2],
            lost_bytes: [false; 2],
            handshake_done: false,
            logged: false,
            upgrade_scanned: [0; 2],
            trail: RecordTrail::default(),
            shape: HandshakeShape::default(),
        }
    }
}

impl TlsFacts {
    /// The handshake is over as far as inspection is concerned: the keys are in use (CCS both
    /// ways for TLS 1.2, the client's CCS or data for TLS 1.3), or a side stopped or alerted.
    fn over(&self) -> bool {
        let s = &self.summary;
        let stopped = self.dirs.iter().any(|d| d.stopped());
        let keys_in_use = if s.negotiated_version == 0x0304 {
            s.server_hello_seen && (s.ccs_client || s.app_data_client > 0)
        } else {
            s.ccs_client && s.ccs_server
        };
        stopped || keys_in_use || s.fatal_alert
    }
}

/// Suricata's version names.
pub fn version_name(v: u16, sslv2: bool) -> &'static str {
    if sslv2 {
        return "SSLv2";
    }
    match v {
        0x0300 => "SSLv3",
        0x0301 => "TLSv1",
        0x0302 => "TLS 1.1",
        0x0303 => "TLS 1.2",
        0x0304 => "TLS 1.3",
        _ => "UNDETERMINED",
    }
}

/// The start of a response body, as shown to the checks.
#[derive(Debug, Clone, Copy)]
pub struct HttpBody<'a> {
    pub status: u16,
    /// Content-Type and Content-Encoding as sent (escaped), when present.
    pub content_type: Option<&'a str>,
    pub content_encoding: Option<&'a str>,
    pub chunked: bool,
    /// Content-Length, or the first chunk's size when chunked; `None` for a body that runs to
    /// the connection's end.
    pub declared_len: Option<u64>,
    /// Up to [`magic::SNIFF_LEN`] first bytes of the body (of its first chunk when chunked).
    pub bytes: &'a [u8],
}

/// Header values kept for a body still arriving; longer ones are cut (the type and subtype
/// come first, so classification survives).
pub const BODY_HEADER_LEN: usize = 96;

/// A response body whose first bytes have not all arrived: where it starts in the direction's
/// stream and what its head said.
#[derive(Debug, Clone, Copy)]
pub struct PendingBody {
    at: u32,
    framing: Body,
    status: u16,
    content_type: Option<InlineStr<BODY_HEADER_LEN>>,
    content_encoding: Option<InlineStr<BODY_HEADER_LEN>>,
}

impl PendingBody {
    /// The body after `head`, parsed at `offset` of its direction's stream; `None` when the
    /// head says there is none.
    fn after(head: &HttpHead<'_>, offset: usize) -> Option<PendingBody> {
        let framing = head.body();
        if matches!(framing, Body::Length(0) | Body::Invalid) {
            return None;
        }
        let keep = |v: &[u8]| InlineStr::from_bytes_escaped(v.get(..BODY_HEADER_LEN).unwrap_or(v));
        Some(PendingBody {
            at: u32::try_from(offset.checked_add(head.head_len())?).ok()?,
            framing,
            status: head.status().unwrap_or(0),
            content_type: head.header("content-type").map(keep),
            content_encoding: head.header("content-encoding").map(keep),
        })
    }
}

/// What is known about a flow's HTTP so far.
#[derive(Debug, Clone, Copy, Default)]
pub struct HttpFacts {
    pub active: bool,
    pub requests: u8,
    pub responses: u8,
    /// Bit `i`: request `i` was HEAD, so response `i` has no body whatever its headers say.
    pub head_requests: u8,
    /// The last response's body, until its first bytes are judged.
    pub body: Option<PendingBody>,
    /// Where the next message of each direction starts; `None` once it cannot be known
    /// (a body of unknown length) or the direction is not HTTP.
    pub next: [Option<u32>; 2],
    pub not_http: [bool; 2],
    /// A request asked for `Upgrade: h2c` (RFC 7540 3.2).
    pub h2c_requested: bool,
    /// The server agreed (101): both directions speak HTTP/2 from the next byte on, so no
    /// more HTTP/1 heads are read (the client's preface is not a request).
    pub h2c_upgraded: bool,
}

impl HttpFacts {
    /// No more heads will be parsed in direction `d`: enough messages, not HTTP, a body of
    /// unknown length, or the next message starts past the stream window.
    fn exhausted(&self, d: usize, depth: usize) -> bool {
        let count = if d == 0 {
            self.requests
        } else {
            self.responses
        };
        self.not_http[d]
            || count >= MAX_HTTP_MESSAGES
            || self.next[d].is_none_or(|at| at as usize >= depth)
    }

    /// Every request the window can hold was judged, and so was every response: a later
    /// request on a kept-alive connection is inspected like the first (a benign first request
    /// must not buy the rest of the connection a pass).
    fn over(&self, depth: usize) -> bool {
        // A response body still owes the checks its first bytes.
        if self.body.is_some() {
            return false;
        }
        if self.not_http[0] {
            return true;
        }
        self.requests > 0
            && self.exhausted(0, depth)
            && (self.exhausted(1, depth) || self.responses >= self.requests)
    }
}

/// A WebSocket upgrade (RFC 6455) on a cleartext HTTP connection, and the sizes of the data
/// frames that follow it: a proxy that tunnels through WebSocket (VMess or Trojan over `ws`)
/// shows the inner handshake in them as a TLS-wrapped one shows it in its records.
#[derive(Debug, Clone, Copy, Default)]
pub struct WsFacts {
    /// A request asked for `Upgrade: websocket`.
    pub requested: bool,
    /// The server answered 101: both directions now carry frames.
    pub upgraded: bool,
    /// Stream offset of each direction's next frame header; `None` once framing is lost.
    pub next: [Option<u32>; 2],
    pub trail: RecordTrail,
    /// The request's Sec-WebSocket-Key (a 16-byte nonce in base64 is 24 bytes).
    pub key: [u8; 32],
    pub key_len: u8,
    /// What was wrong with the request itself, judged when the 101 confirms the upgrade.
    pub request_problem: Option<websocket::Problem>,
    /// A problem was reported; one per flow is enough.
    pub reported: bool,
}

impl WsFacts {
    fn key(&self) -> &[u8] {
        &self.key[..usize::from(self.key_len).min(self.key.len())]
    }

    /// Keeps the request's key and notes what a genuine client would have sent.
    fn note_request(&mut self, head: &http::HttpHead<'_>) {
        let key = head.header("sec-websocket-key").map(<[u8]>::trim_ascii);
        if let Some(k) = key.filter(|k| k.len() <= self.key.len()) {
            self.key[..k.len()].copy_from_slice(k);
            self.key_len = k.len() as u8;
        }
        self.request_problem = if key.is_none() || !head.has_header("sec-websocket-version") {
            Some(websocket::Problem::IncompleteRequest)
        } else if !matches!(head.body(), http::Body::Length(0)) {
            Some(websocket::Problem::BodyOnUpgrade)
        } else {
            None
        };
    }
}

/// SSH banners seen per direction.
#[derive(Debug, Clone, Copy, Default)]
pub struct SshFacts {
    pub active: bool,
    pub banner_done: [bool; 2],
}

/// Protocols that may switch to TLS after a cleartext prelude (STARTTLS, RDP security
/// upgrade, proxies): their streams are searched for a hello.
fn may_upgrade_to_tls(p: AppProto) -> bool {
    matches!(
        p,
        AppProto::Smtp
            | AppProto::Imap
            | AppProto::Pop3
            | AppProto::Ftp
            | AppProto::Rdp
            | AppProto::Socks4
            | AppProto::Socks5
            | AppProto::Http
    )
}

/// A flow under inspection whose one talking direction is past the stream depth while the
/// other has been silent: until `flow.one_way_secs` concludes it, its segments past the depth
/// are only counted. What the engine's lean path needs to know that a packet changes nothing
/// else, from the last packet the full path saw (which clears it first and sets it again).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OneWayWait {
    /// The talking direction as `Dir::index() + 1`; 0: not waiting.
    pub talker: u8,
    /// The acknowledgment number and raw window its last packet carried: a packet with the
    /// same ones moves nothing in the silent side's receive window.
    pub ack: u32,
    pub window: u16,
}

/// A flow's inspection state, kept in a pool slot only while the flow is being inspected.
#[derive(Debug, Clone, Copy)]
pub struct InspectState {
    pub stream: [StreamDir; 2],
    pub one_way: OneWayWait,
    /// Per data direction, the receiver's highest acknowledgement number; with `rwin_max`, the
    /// right edge of what the receiver accepts (learnt once the flow has a slot).
    pub rwin_ack: [u32; 2],
    /// Per data direction, the largest window (scaled) its receiver advertised; 0: unknown.
    pub rwin_max: [u32; 2],
    pub ident: [DirIdent; 2],
    pub tls: TlsFacts,
    pub http: HttpFacts,
    pub ssh: SshFacts,
    pub ws: WsFacts,
}

impl Default for InspectState {
    // Inlined, like `new`, so the engine's `*slot = InspectState::new(..)` can write the fresh
    // state in place instead of building it aside and copying its 9.5 KB per new flow.
    #[inline(always)]
    fn default() -> Self {
        InspectState {
            stream: [StreamDir::default(); 2],
            one_way: OneWayWait::default(),
            rwin_ack: [0; 2],
            rwin_max: [0; 2],
            ident: [DirIdent::default(); 2],
            tls: TlsFacts::default(),
            http: HttpFacts {
                next: [Some(0); 2],
                ..HttpFacts::default()
            },
            ssh: SshFacts::default(),
            ws: WsFacts::default(),
        }
    }
}

/// Where inspection events go: the engine runs the checks and turns findings into verdicts.
pub trait Report {
    /// An event for the checks, with the flow as it stands.
    fn event(&mut self, view: &FlowView<'_>, event: &Event<'_>);
    /// The handshake's EVE `tls` record is ready.
    fn tls_record(&mut self, facts: &TlsFacts);
}

/// The parts of a flow the view needs, copied once per call.
#[derive(Debug, Clone, Copy)]
pub struct FlowBase {
    pub client_addr: IpAddr,
    pub server_addr: IpAddr,
    pub client_port: u16,
    pub server_port: u16,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    /// Per direction: the SYN was seen (see [`FlowView::seen_from_start`]).
    pub seen_from_start: [bool; 2],
    pub first_ts: Timestamp,
}

impl FlowBase {
    pub fn view<'a>(
        &self,
        ident: [DirIdent; 2],
        tls: Option<&'a TlsFacts>,
        http: Option<&'a HttpFacts>,
        now: Timestamp,
    ) -> FlowView<'a> {
        FlowView {
            client_addr: self.client_addr,
            server_addr: self.server_addr,
            client_port: self.client_port,
            server_port: self.server_port,
            ident,
            tls,
            trail: tls.map(|t| &t.trail),
            http,
            pkts: self.pkts,
            bytes: self.bytes,
            seen_from_start: self.seen_from_start,
            first_ts: self.first_ts,
            now,
        }
    }
}

/// Knobs of inspection, from config.
#[derive(Debug, Clone, Copy)]
pub struct InspectConfig {
    pub unknown_after: usize,
    /// Application-data records followed after a TLS handshake (at most [`TRAIL_RECORDS`]);
    /// 0 ends inspection with the handshake.
    pub trail_records: u8,
}

impl InspectState {
    /// A fresh state for a flow whose ISNs may already be known.
    #[inline(always)]
    pub fn new(isn: [Option<u32>; 2]) -> Self {
        let mut s = InspectState::default();
        for (d, isn) in isn.iter().enumerate() {
            if let Some(isn) = isn {
                s.stream[d].set_isn(*isn);
            }
        }
        s.tls.from_start = isn.map(|i| i.is_some());
        s
    }

    /// Nothing more to learn from this flow: every direction identified and every active
    /// parser past the part of the conversation the checks judge.
    pub fn done(&self, depth: usize) -> bool {
        if !self.ident.iter().all(DirIdent::is_final) {
            return false;
        }
        if self.tls.active && !self.tls.handshake_done {
            return false;
        }
        // After the handshake, the first records' sizes may show a handshake tunnelled inside.
        // A direction past the stream depth shows no more records, and a stopped parser none.
        if self.tls.active
            && !self.tls.trail.is_full()
            && !self.tls.dirs.iter().any(|d| d.stopped())
            && !self.stream.iter().any(|s| s.depth_reached(depth))
        {
            return false;
        }
        if self.ws.upgraded
            && !self.ws.trail.is_full()
            && self.ws.next.iter().all(Option::is_some)
            && !self.stream.iter().any(|s| s.depth_reached(depth))
        {
            return false;
        }
        // A cleartext prelude that may still turn into TLS keeps the flow under inspection
        // until the stream depth ends it.
        if !self.tls.active
            && self
                .ident
                .iter()
                .any(|i| may_upgrade_to_tls(i.proto()) && i.proto() != AppProto::Http)
        {
            return false;
        }
        if self.http.active && !self.http.over(depth) {
            return false;
        }
        if self.ssh.active && !self.ssh.banner_done.iter().all(|d| *d) {
            return false;
        }
        true
    }

    /// Inspects what became readable in direction `dir`. `window` is that direction's stream
    /// window; `other` the other direction's.
    #[allow(clippy::too_many_arguments)]
    pub fn advance<R: Report>(
        &mut self,
        dir: Dir,
        window: &[u8],
        other: &[u8],
        base: &FlowBase,
        now: Timestamp,
        cfg: &InspectConfig,
        scratch: &mut TlsScratch,
        report: &mut R,
    ) {
        let d = dir.index();
        self.tls.trail.limit = cfg.trail_records;
        self.ws.trail.limit = cfg.trail_records;
        let readable = self.stream[d].readable().min(window.len());
        let data = &window[..readable];
        let other_readable = self.stream[1 - d].readable().min(other.len());
        let other_data = &other[..other_readable];
        // A full window will not grow: what it holds of a body is all there will be.
        let full = !window.is_empty() && readable == window.len();
        let other_full = !other.is_empty() && other_readable == other.len();

        if !self.ident[d].is_final() {
            self.ident[d] = proto::identify_dir(data, dir, cfg.unknown_after, false);
            if self.ident[d].is_final() {
                let view = base.view(self.ident, None, None, now);
                report.event(
                    &view,
                    &Event::Identified {
                        dir,
                        data: &data[..data.len().min(cfg.unknown_after)],
                    },
                );
                self.activate();
                // The other direction may have been waiting for this one's protocol.
                if self.ident[1 - d].is_final() {
                    let other = (other_data, other_full);
                    self.parse(dir.reverse(), other, base, now, scratch, report);
                }
            }
        }
        self.parse(dir, (data, full), base, now, scratch, report);
    }

    /// The stream ended: identification still waiting for bytes decides on what it has.
    pub fn conclude<R: Report>(
        &mut self,
        windows: [&[u8]; 2],
        base: &FlowBase,
        now: Timestamp,
        cfg: &InspectConfig,
        report: &mut R,
    ) {
        for d in 0..2 {
            self.tls.lost_bytes[d] = self.stream[d].gaps() > 0;
        }
        for dir in [Dir::ToServer, Dir::ToClient] {
            let d = dir.index();
            let readable = self.stream[d].readable().min(windows[d].len());
            if self.ident[d].is_final() || readable == 0 {
                continue;
            }
            let data = &windows[d][..readable];
            self.ident[d] = proto::identify_dir(data, dir, cfg.unknown_after, true);
            if self.ident[d].is_final() {
                let view = base.view(self.ident, None, None, now);
                let seen = &data[..data.len().min(cfg.unknown_after)];
                report.event(&view, &Event::Identified { dir, data: seen });
            }
        }
        // The last response body is judged on the bytes it got.
        let d = Dir::ToClient.index();
        let readable = self.stream[d].readable().min(windows[d].len());
        self.judge_body(&windows[d][..readable], true, base, now, report);
    }

    /// Turns on the parsers the identification calls for.
    fn activate(&mut self) {
        for i in self.ident {
            match i.proto() {
                AppProto::Tls => self.tls.active = true,
                AppProto::Http => self.http.active = true,
                AppProto::Ssh => self.ssh.active = true,
                _ => {}
            }
        }
        if self.ident.iter().any(|i| i.proto() == AppProto::Tls) {
            // Identified as TLS from the first byte: both directions parse from the start,
            // so a ClientHello answered by something else shows as "not TLS".
            self.tls.started = [true; 2];
        }
    }

    /// Parses what `dir` made readable: `(data, full)`, full when the window will not grow.
    fn parse<R: Report>(
        &mut self,
        dir: Dir,
        (data, full): (&[u8], bool),
        base: &FlowBase,
        now: Timestamp,
        scratch: &mut TlsScratch,
        report: &mut R,
    ) {
        let d = dir.index();
        if self.http.active && !self.ws.upgraded {
            if dir == Dir::ToClient {
                self.judge_body(data, full, base, now, report);
            }
            self.parse_http(dir, data, base, now, report);
            if dir == Dir::ToClient {
                self.judge_body(data, full, base, now, report);
            }
        }
        if self.ws.upgraded {
            self.follow_ws(dir, data, base, now, report);
        }
        if self.ssh.active && !self.ssh.banner_done[d] {
            match ssh::parse_banner(data, dir) {
                Ok(banner) => {
                    self.ssh.banner_done[d] = true;
                    let view = base.view(self.ident, None, None, now);
                    report.event(
                        &view,
                        &Event::SshBanner {
                            dir,
                            banner: &banner,
                        },
                    );
                }
                Err(ssh::BannerError::Incomplete) => {}
                Err(_) => self.ssh.banner_done[d] = true,
            }
        }
        if !self.tls.active || !self.tls.started[d] {
            self.find_upgrade(dir, data);
        }
        if self.tls.active
            && self.tls.started[d]
            && (!self.tls.handshake_done || !self.tls.trail.is_full())
        {
            self.parse_tls(dir, data, base, now, scratch, report);
        }
    }

    /// Looks for a TLS hello after a cleartext prelude (STARTTLS and the like).
    fn find_upgrade(&mut self, dir: Dir, data: &[u8]) {
        let d = dir.index();
        if self.tls.started[d] || !self.ident.iter().any(|i| may_upgrade_to_tls(i.proto())) {
            return;
        }
        // `data` is the direction's whole prefix, grown since the last look: only the bytes a
        // new hello could overlap are searched (rescanning it all made every packet of a long
        // HTTP or SMTP flow cost in proportion to the bytes before it).
        let scanned = self.tls.upgrade_scanned[d] as usize;
        self.tls.upgrade_scanned[d] = u32::try_from(data.len()).unwrap_or(u32::MAX);
        if let Some(offset) = tls::find_hello_after(data, scanned) {
            self.tls.active = true;
            self.tls.started[d] = true;
            self.tls.dirs[d] = TlsDir::starting_at(dir, offset);
        }
    }

    fn parse_tls<R: Report>(
        &mut self,
        dir: Dir,
        data: &[u8],
        base: &FlowBase,
        now: Timestamp,
        scratch: &mut TlsScratch,
        report: &mut R,
    ) {
        let d = dir.index();
        let ident = self.ident;
        let http = &self.http;
        let facts = &mut self.tls;
        let mut dir_state = facts.dirs[d];
        let tls::ScratchParts {
            records,
            certs,
            hellos,
            servers,
        } = scratch.parts();
        dir_state.feed_records(data, records, |ev| {
            let was_over = facts.over();
            // The hello's JA3 (JA3S) string is kept in `facts` and its MD5 in the summary:
            // computed once (a client's, with its JA3N and JA4, looked up in the worker's
            // memo), for the hellos either keeps.
            let client = match ev {
                TlsEvent::ClientHello(ch)
                    if dir == Dir::ToServer
                        && (facts.ja3.is_none() || !facts.summary.client_hello_seen) =>
                {
                    Some(fingerprint::client_prints(ch, hellos))
                }
                _ => None,
            };
            let server = match ev {
                TlsEvent::ServerHello(sh) if dir == Dir::ToClient => {
                    Some(fingerprint::server_prints(sh, servers))
                }
                _ => None,
            };
            // A certificate parsed before has its SHA-1 remembered (the DER is compared).
            let cert_sha1 = match ev {
                TlsEvent::Certificate { index: 0, der } if facts.summary.leaf_sha1.is_none() => {
                    Some(
                        certs
                            .remembered_sha1(der)
                            .unwrap_or_else(|| crate::proto::x509::sha1_of(der)),
                    )
                }
                _ => None,
            };
            let known = Known {
                client,
                server,
                cert_sha1,
            };
            facts.summary.observe_with(dir, &ev, known);
            if facts.shape.observe(dir, &ev, &facts.summary) {
                let view = base.view(ident, Some(&*facts), Some(http), now);
                report.event(&view, &Event::TlsClientFinished);
            }
            let event = match ev {
                TlsEvent::ApplicationData { len } if was_over && !facts.trail.is_full() => {
                    let s = &facts.summary;
                    let trail = &mut facts.trail;
                    if trail.len == 0 && !trail.client_finished_skipped {
                        trail.overhead = record_overhead(s.negotiated_version, s.cipher);
                    }
                    if s.negotiated_version == 0x0304
                        && dir == Dir::ToServer
                        && s.ccs_client
                        && !trail.client_finished_skipped
                    {
                        trail.client_finished_skipped = true;
                        None
                    } else if len.saturating_sub(trail.overhead) <= ENCRYPTED_ALERT_LEN {
                        // TLS 1.3 encrypts alerts as application data: a 2-byte record is the
                        // outer close_notify, not something the tunnel carried.
                        None
                    } else {
                        trail.push(dir, len);
                        Some(Event::TrailRecord { dir })
                    }
                }
                TlsEvent::ClientHello(ch) => {
                    if dir == Dir::ToServer && facts.ja3.is_none() && !ch.sslv2_format {
                        // One assignment per arm: a value merged from both arms went through a
                        // temporary, copying the 2 KB print twice.
                        match client {
                            Some(p) => facts.ja3 = Some(p.ja3),
                            None => facts.ja3 = Some(fingerprint::ja3(ch)),
                        }
                        for a in ch.alpn.as_slice().iter().take(8) {
                            facts.client_alpns.push(*a);
                        }
                    }
                    Some(Event::TlsClientHello(ch))
                }
                TlsEvent::ServerHello(sh) => {
                    if dir == Dir::ToClient && facts.ja3s.is_none() {
                        match server {
                            Some(p) => facts.ja3s = Some(p.ja3s),
                            None => facts.ja3s = Some(fingerprint::ja3s(sh)),
                        }
                    }
                    Some(Event::TlsServerHello(sh))
                }
                TlsEvent::Certificate { index: 0, der }
                    if dir == Dir::ToClient
                        && facts.leaf.is_none()
                        && facts.leaf_error.is_none() =>
                {
                    let host = facts.summary.has_sni.then_some(facts.summary.sni);
                    // Computed above when this is the flow's first certificate (the summary's
                    // `leaf_sha1` does not look at the direction).
                    let sha1 = cert_sha1.unwrap_or_else(|| crate::proto::x509::sha1_of(der));
                    match certs.parse_for_host(der, &sha1, host.as_ref().map(|h| h.as_str())) {
                        Ok(info) => {
                            facts.leaf = Some(LeafCert::from_info(info));
                            let view = base.view(ident, Some(&*facts), Some(http), now);
                            report.event(&view, &Event::TlsLeafCertificate(info));
                            None
                        }
                        Err(e) => {
                            facts.leaf_error = Some(e);
                            Some(Event::TlsCertificateInvalid(e))
                        }
                    }
                }
                TlsEvent::Alert { level, description } => {
                    if level == 2 && facts.summary.certificates > 0 {
                        facts.fatal_alert_after_certificate = true;
                    }
                    Some(Event::TlsAlert {
                        dir,
                        level,
                        description,
                    })
                }
                TlsEvent::Anomaly(anomaly) => Some(Event::TlsAnomaly { dir, anomaly }),
                _ => None,
            };
            if let Some(event) = event {
                let view = base.view(ident, Some(&*facts), Some(http), now);
                report.event(&view, &event);
            }
        });
        self.tls.dirs[d] = dir_state;
        if !self.tls.handshake_done && self.tls.over() {
            self.tls.handshake_done = true;
            let view = base.view(self.ident, Some(&self.tls), Some(&self.http), now);
            report.event(&view, &Event::TlsHandshakeDone);
        }
        // A TLS 1.3 handshake's record waits for the server's first records after the client's
        // Finished (the post-handshake shape the service profiles learn); the end of
        // inspection writes it with what there was.
        let waiting = self.tls.summary.negotiated_version == 0x0304
            && usize::from(self.tls.shape.post_records) < POST_HANDSHAKE_LOGGED
            && !self.tls.dirs.iter().any(|d| d.stopped());
        if self.tls.handshake_done && !waiting {
            self.log_tls(report);
        }
    }

    /// Writes the EVE `tls` record once per flow, when there was a hello to describe.
    pub fn log_tls<R: Report>(&mut self, report: &mut R) {
        let s = &self.tls.summary;
        if self.tls.active && !self.tls.logged && (s.client_hello_seen || s.server_hello_seen) {
            self.tls.logged = true;
            report.tls_record(&self.tls);
        }
    }

    /// Reads the WebSocket frame headers that became readable in `dir` and adds each data
    /// frame's payload length to the trail. Control frames (close, ping, pong) are skipped:
    /// they carry nothing of a tunnelled handshake.
    fn follow_ws<R: Report>(
        &mut self,
        dir: Dir,
        data: &[u8],
        base: &FlowBase,
        now: Timestamp,
        report: &mut R,
    ) {
        let d = dir.index();
        while !self.ws.trail.is_full() {
            let Some(at) = self.ws.next[d] else {
                return;
            };
            let Some(rest) = data.get(at as usize..) else {
                return;
            };
            let Some(h) = websocket::frame_header(rest) else {
                return;
            };
            if let Some(problem) = websocket::frame_problem(&h, dir == Dir::ToServer) {
                // Not (or no longer) WebSocket framing: say so once, and stop reading frames.
                self.ws.next[d] = None;
                if !self.ws.reported {
                    self.ws.reported = true;
                    let view = base.view(self.ident, None, Some(&self.http), now);
                    report.event(&view, &Event::WebSocketProblem { dir, problem });
                }
                return;
            }
            let (opcode, len) = (h.opcode, h.len);
            self.ws.next[d] = u64::from(at)
                .checked_add(h.header_len as u64)
                .and_then(|n| n.checked_add(len))
                .and_then(|n| u32::try_from(n).ok());
            if opcode <= 0x02 {
                self.ws
                    .trail
                    .push(dir, u16::try_from(len).unwrap_or(u16::MAX));
                let mut view = base.view(self.ident, None, Some(&self.http), now);
                view.trail = Some(&self.ws.trail);
                report.event(&view, &Event::TrailRecord { dir });
            }
        }
    }

    fn parse_http<R: Report>(
        &mut self,
        dir: Dir,
        data: &[u8],
        base: &FlowBase,
        now: Timestamp,
        report: &mut R,
    ) {
        let d = dir.index();
        loop {
            let count = if dir == Dir::ToServer {
                self.http.requests
            } else {
                self.http.responses
            };
            if count >= MAX_HTTP_MESSAGES || self.http.not_http[d] {
                return;
            }
            // Responses are judged against a request: wait for one.
            if dir == Dir::ToClient && self.http.requests == 0 {
                return;
            }
            let Some(offset) = self.http.next[d] else {
                return;
            };
            let Some(rest) = data.get(offset as usize..) else {
                return;
            };
            if rest.is_empty() {
                return;
            }
            let parsed = match dir {
                Dir::ToServer => http::parse_request(rest),
                Dir::ToClient => http::parse_response(rest),
            };
            match parsed {
                Ok(head) => {
                    let index = count.min(7);
                    // A response to HEAD has no body, whatever its Content-Length says.
                    let bodiless =
                        dir == Dir::ToClient && self.http.head_requests & (1 << index) != 0;
                    let next = if bodiless {
                        Some(head.head_len())
                    } else {
                        head.next_message_offset()
                    };
                    self.http.next[d] = next.and_then(|n| u32::try_from(offset as usize + n).ok());
                    let event = match dir {
                        Dir::ToServer => {
                            if head.method().eq_ignore_ascii_case(b"HEAD") {
                                self.http.head_requests |= 1 << index;
                            }
                            let upgrade = head
                                .header("upgrade")
                                .is_some_and(|v| v.trim_ascii().eq_ignore_ascii_case(b"websocket"));
                            if upgrade && !self.ws.requested {
                                self.ws.requested = true;
                                self.ws.note_request(&head);
                            }
                            if head.header("upgrade").is_some_and(|v| {
                                v.split(|&b| b == b',')
                                    .any(|t| t.trim_ascii().eq_ignore_ascii_case(b"h2c"))
                            }) {
                                self.http.h2c_requested = true;
                            }
                            self.http.requests += 1;
                            Event::HttpRequest(&head)
                        }
                        Dir::ToClient => {
                            self.http.responses += 1;
                            Event::HttpResponse(&head)
                        }
                    };
                    let view = base.view(self.ident, None, Some(&self.http), now);
                    report.event(&view, &event);
                    if dir == Dir::ToClient && head.status() == Some(101) && self.http.h2c_requested
                    {
                        // HTTP/2 frames follow in both directions: no more HTTP/1 to read.
                        self.http.h2c_upgraded = true;
                        self.http.next = [None; 2];
                        return;
                    }
                    if dir == Dir::ToClient && head.status() == Some(101) && self.ws.requested {
                        // Frames follow both heads; the parser has no more HTTP to read.
                        self.ws.upgraded = true;
                        self.ws.next = self.http.next;
                        // The server's own proof outranks what the request lacked.
                        let expected = websocket::accept_for(self.ws.key());
                        let given = head.header("sec-websocket-accept").map(<[u8]>::trim_ascii);
                        let problem = (given != Some(&expected[..]))
                            .then_some(websocket::Problem::AcceptMismatch)
                            .or(self.ws.request_problem);
                        if let Some(problem) = problem {
                            self.ws.reported = true;
                            let view = base.view(self.ident, None, Some(&self.http), now);
                            report.event(&view, &Event::WebSocketProblem { dir, problem });
                        }
                        return;
                    }
                    if dir == Dir::ToClient && !bodiless {
                        // The previous body's bytes are all in (this head follows them).
                        self.judge_body(data, true, base, now, report);
                        self.http.body = PendingBody::after(&head, offset as usize);
                    }
                }
                Err(HeadError::Incomplete) => return,
                Err(HeadError::NotHttp) | Err(HeadError::TooLong) => {
                    self.http.not_http[d] = true;
                    self.http.next[d] = None;
                    if dir == Dir::ToClient && self.http.responses == 0 {
                        let view = base.view(self.ident, None, Some(&self.http), now);
                        let preview = &rest[..rest.len().min(64)];
                        report.event(&view, &Event::HttpResponseNotHttp { data: preview });
                    }
                    return;
                }
            }
        }
    }

    /// Shows the checks the first bytes of the pending response body once they are in (or,
    /// with `last`, whatever is in), and forgets it.
    fn judge_body<R: Report>(
        &mut self,
        data: &[u8],
        last: bool,
        base: &FlowBase,
        now: Timestamp,
        report: &mut R,
    ) {
        let Some(p) = self.http.body else {
            return;
        };
        let rest = data.get(p.at as usize..).unwrap_or(&[]);
        let (start, limit, chunked) = match p.framing {
            Body::Length(n) => (0, n, false),
            Body::UntilClose => (0, u64::MAX, false),
            Body::Chunked => match magic::first_chunk(rest) {
                ChunkStart::Incomplete if !last => return,
                ChunkStart::Data { at, len } if len > 0 => (at, len, true),
                _ => {
                    self.http.body = None;
                    return;
                }
            },
            Body::Invalid => {
                self.http.body = None;
                return;
            }
        };
        let body = rest.get(start..).unwrap_or(&[]);
        let want = usize::try_from(limit.min(magic::SNIFF_LEN as u64)).unwrap_or(magic::SNIFF_LEN);
        if body.len() < want && !last {
            return;
        }
        self.http.body = None;
        let bytes = body.get(..want.min(body.len())).unwrap_or(&[]);
        if bytes.is_empty() {
            return;
        }
        let shown = HttpBody {
            status: p.status,
            content_type: p.content_type.as_ref().map(|s| s.as_str()),
            content_encoding: p.content_encoding.as_ref().map(|s| s.as_str()),
            chunked,
            declared_len: (limit != u64::MAX).then_some(limit),
            bytes,
        };
        let view = base.view(self.ident, None, Some(&self.http), now);
        report.event(&view, &Event::HttpResponseBody(&shown));
    }

    /// Facts of the flow for the end-of-flow event.
    pub fn view<'a>(&'a self, base: &FlowBase, now: Timestamp) -> FlowView<'a> {
        base.view(
            self.ident,
            self.tls.active.then_some(&self.tls),
            self.http.active.then_some(&self.http),
            now,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tls13(cipher: u16) -> TlsSummary {
        TlsSummary {
            negotiated_version: 0x0304,
            server_hello_seen: true,
            cipher,
            ..TlsSummary::default()
        }
    }

    fn data(len: u16) -> TlsEvent<'static> {
        TlsEvent::ApplicationData { len }
    }

    #[test]
    fn a_client_record_before_the_server_flight_can_end_waits_for_the_next_one() {
        let s = tls13(0x1301);
        let mut shape = HandshakeShape::default();
        // A relay's client sends its own data after the server's first record.
        assert!(!shape.observe(Dir::ToClient, &data(31), &s));
        assert!(!shape.observe(Dir::ToServer, &data(285), &s));
        assert!(shape.client_spoke_early());
        assert_eq!(shape.client_finished, 0);
        for n in [872, 285] {
            assert!(!shape.observe(Dir::ToClient, &data(n), &s));
        }
        // The server's first Finished-sized record ends its flight, with the client's early
        // record for its Finished: the client may send nothing more before the server's data.
        assert!(shape.observe(Dir::ToClient, &data(73), &s));
        assert_eq!(shape.server_sizes(), &[31, 872, 285, 73]);
        assert_eq!((shape.server_last, shape.client_finished), (73, 285));
        // The server's data after it is post-handshake, not the flight's end.
        assert!(!shape.observe(Dir::ToClient, &data(14591), &s));
        assert!(!shape.observe(Dir::ToServer, &data(734), &s));
        assert_eq!(shape.server_last, 73);
        assert_eq!(shape.post_sizes(), &[14591]);

        // A genuine flight: the client's Finished comes after the server's.
        let mut genuine = HandshakeShape::default();
        for n in [36, 868, 281, 53] {
            genuine.observe(Dir::ToClient, &data(n), &s);
        }
        assert!(genuine.observe(Dir::ToServer, &data(53), &s));
        assert!(!genuine.client_spoke_early());
    }
}
