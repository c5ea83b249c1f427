//! TLS records and handshake messages, one direction at a time.
//!
//! # How the engine drives it
//!
//! For each direction of a flow the engine keeps the in-order bytes from the start of the
//! stream in one contiguous window, and a [`TlsDir`] (fixed size, `Copy`, no heap) in the
//! flow's slot. Each time the in-order prefix grows it calls
//!
//! ```ignore
//! dir_state.feed(prefix_so_far, &mut worker_scratch, |event| { /* TlsEvent<'_> */ });
//! ```
//!
//! `feed` resumes at the first record it has not parsed yet, handles every *complete* record
//! (a record cut at the end of the prefix waits for the next call) and reports what it saw as
//! [`TlsEvent`]s, borrowed for the duration of the callback. Feeding the same prefix twice, or
//! a prefix grown one byte at a time, yields each event exactly once.
//!
//! Handshake messages may span records and several may share a record. A message inside one
//! record is parsed in place; one that spans records is copied into the per-worker
//! [`TlsScratch`] once its last byte has arrived (the earlier fragments are still in the
//! prefix, so no per-flow buffer is needed). A message larger than the scratch is skipped and
//! reported as [`TlsAnomaly::HandshakeTooLarge`].
//!
//! Anomalies are events too ([`TlsEvent::Anomaly`]); each kind is reported at most once per
//! direction, and [`TlsDir::anomalies`] keeps the set. A direction whose framing breaks
//! (invalid content type, record too long, bytes that are not TLS at all) stops: nothing more is
//! parsed, as there is no reliable way to find the next record boundary.
//!
//! [`TlsSummary`] folds the events of both directions into the per-flow facts the checks and
//! the EVE log read (SNI, versions, fingerprints, certificates seen, alerts).
//!
//! # API at a glance
//!
//! | item | what |
//! |---|---|
//! | [`TlsDir::new`]`(role)` / [`TlsDir::starting_at`]`(role, offset)` | per-direction state (56 bytes, `Copy`, `const`); `role` is `Dir::ToServer` for the client's bytes; `starting_at` skips a cleartext prelude (STARTTLS, RDP X.224, PROXY header) |
//! | [`TlsDir::feed`]`(prefix, &mut scratch, \|ev\| ..)` | parse what is new; [`TlsDir::consumed`], [`TlsDir::stopped`], [`TlsDir::anomalies`] |
//! | [`TlsScratch::new`]`(cap)` | per-worker reassembly buffer, allocated once ([`DEFAULT_SCRATCH_LEN`]) |
//! | [`TlsEvent`] | `ClientHello(&ClientHello)`, `ServerHello(&ServerHello)`, `Certificate { index, der }`, `ServerHelloDone`, `Handshake { msg_type, len }`, `ChangeCipherSpec`, `Alert { level, description }`, `EncryptedAlert`, `EncryptedHandshake` (Finished after CCS), `ApplicationData { len }`, `Heartbeat`, `Anomaly(TlsAnomaly)` |
//! | [`TlsAnomaly`] | `Copy` enum; [`TlsAnomaly::name`] is the stable EVE/counter name, [`TlsAnomaly::kind_index`] a dense index below [`TlsAnomaly::KINDS`] |
//! | [`ClientHello`], [`ServerHello`] | fixed-size hellos (lists in [`FixedList`]s that flag overflow, text in `InlineStr`) |
//! | [`TlsSummary::observe`]`(dir, &event)` | per-flow facts, JA3/JA3N/JA3S/JA4 included |
//! | [`probe`]`(bytes)` / [`find_hello`]`(bytes)` | "is this TLS?" for the identifier; offset of the first hello after a prelude |
//! | `crate::proto::fingerprint::{ja3, ja3n, ja3s, ja4, ja4_raw}` | fingerprints of a hello |
//! | `crate::proto::x509::CertInfo::from_der[_for_host]` | certificate fields and SNI matching |
//!
//! The record and hello parsers are our own zero-allocation cursor code: tls-parser's message
//! parsers return `Vec`s, which the packet path may not allocate. tls-parser still supplies the
//! wire constants and cipher-suite registry, and it is the reference the unit tests compare
//! against.

mod hello;
#[cfg(test)]
pub(crate) mod testdata;

pub use hello::{
    ext, is_grease, is_known_version, is_tls13_draft, parse_client_hello, parse_ech, parse_esni,
    parse_server_hello, parse_sslv2_client_hello, version, ClientHello, EchExt, EchType, EsniExt,
    FixedList, HiddenName, ServerHello, ALPN_TEXT_LEN, MAX_ALPN, MAX_CIPHERS, MAX_COMPRESSION,
    MAX_EXTENSIONS, MAX_GROUPS, MAX_POINT_FORMATS, MAX_SIG_ALGS, MAX_VERSIONS, SNI_TEXT_LEN,
};

use crate::flow::Dir;
use crate::proto::memo::{HelloMemo, ServerPrints, HELLO_MEMO_ENTRIES};
use crate::proto::x509::{CertCache, CERT_CACHE_ENTRIES};
use crate::proto::{AppProto, Probe};
use hello::Rd;
use tls_parser::{TlsHandshakeType, TlsRecordType};

/// Largest record body a peer may send: 2^14 plus the 2048-byte expansion RFC 5246 6.2.3
/// allows for protected records. Anything longer is malformed, not something to wait for.
pub const MAX_RECORD_LEN: usize = (1 << 14) + 2048;

/// Default size of the per-worker reassembly buffer: larger than any hello or certificate
/// chain seen in practice, and four times the default stream depth.
pub const DEFAULT_SCRATCH_LEN: usize = 64 * 1024;

const RECORD_HEADER_LEN: usize = 5;
const HANDSHAKE_HEADER_LEN: usize = 4;

/// Per-worker buffer for handshake messages that span records. Allocated once.
#[derive(Debug, Clone)]
pub struct RecordScratch {
    buf: Box<[u8]>,
}

impl RecordScratch {
    pub fn new(capacity: usize) -> Self {
        RecordScratch {
            buf: vec![0; capacity].into_boxed_slice(),
        }
    }

    pub fn capacity(&self) -> usize {
        self.buf.len()
    }
}

/// What a worker's TLS parsing reuses across flows, allocated once: the reassembly buffer, the
/// certificates already parsed and the client and server hellos already fingerprinted.
#[derive(Debug)]
pub struct TlsScratch {
    records: RecordScratch,
    certs: CertCache,
    hellos: HelloMemo,
    servers: HelloMemo<ServerPrints>,
}

impl TlsScratch {
    /// A reassembly buffer of `capacity` bytes, a certificate cache of [`CERT_CACHE_ENTRIES`]
    /// and two hello memos (clients, servers) of [`HELLO_MEMO_ENTRIES`].
    pub fn new(capacity: usize) -> Self {
        Self::with_caches(capacity, CERT_CACHE_ENTRIES, HELLO_MEMO_ENTRIES)
    }

    /// As [`TlsScratch::new`], with `certs` certificates remembered and `hellos` hellos per
    /// memo (`proto.tls_cert_cache`, `proto.tls_hello_memo`; 0 turns one off).
    pub fn with_caches(capacity: usize, certs: usize, hellos: usize) -> Self {
        TlsScratch {
            records: RecordScratch::new(capacity),
            certs: CertCache::new(certs),
            hellos: HelloMemo::new(hellos),
            servers: HelloMemo::new(hellos),
        }
    }

    /// The caches' names, in the order of [`TlsScratch::cache_hits`].
    pub const CACHES: usize = 3;
    pub const CACHE_NAMES: [&'static str; Self::CACHES] =
        ["certificate", "client_hello", "server_hello"];

    /// Per cache (certificates, client hellos, server hellos): lookups that found their
    /// certificate or hello already done, and all lookups.
    pub fn cache_hits(&self) -> [[u64; 2]; Self::CACHES] {
        [self.certs.hits(), self.hellos.hits(), self.servers.hits()].map(|(h, n)| [h, n])
    }

    pub fn capacity(&self) -> usize {
        self.records.capacity()
    }

    /// Every part at once: events borrow from the records while the caches are used.
    pub fn parts(&mut self) -> ScratchParts<'_> {
        ScratchParts {
            records: &mut self.records,
            certs: &mut self.certs,
            hellos: &mut self.hellos,
            servers: &mut self.servers,
        }
    }
}

/// [`TlsScratch::parts`]: each part borrowed on its own.
pub struct ScratchParts<'a> {
    pub records: &'a mut RecordScratch,
    pub certs: &'a mut CertCache,
    pub hellos: &'a mut HelloMemo,
    pub servers: &'a mut HelloMemo<ServerPrints>,
}

impl Default for TlsScratch {
    fn default() -> Self {
        Self::new(DEFAULT_SCRATCH_LEN)
    }
}

/// Something wrong or odd in one direction of a TLS stream. The checks turn these into
/// findings; [`TlsAnomaly::name`] is the stable name for EVE and counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsAnomaly {
    /// The first bytes of the direction are neither a TLS record nor an SSLv2 hello.
    NotTls,
    /// The client used the SSLv2-compatible ClientHello format (legacy, pre-2010 stacks).
    Sslv2ClientHello,
    /// A later record header has a content type outside 20..=24.
    InvalidContentType,
    /// A record header version whose major is 3 but minor is beyond TLS 1.3.
    RecordVersionInvalid,
    /// Record version 0x0304: TLS 1.3 freezes the record layer at 0x0303.
    RecordVersionOdd,
    /// A record longer than 2^14 + 2048 bytes.
    RecordTooLong,
    /// A zero-length handshake, alert or ChangeCipherSpec record (RFC 8446 5.1 forbids them).
    EmptyRecord,
    /// After ChangeCipherSpec, the bytes no longer parse as records.
    FramingBrokenAfterCcs,
    /// ChangeCipherSpec body other than the single byte 1.
    CcsInvalid,
    /// A plaintext alert that is not two bytes of (level 1|2, description).
    AlertInvalid,
    /// Application data after this side began its handshake but before it finished it (TLS
    /// 1.2 and earlier: before ChangeCipherSpec; TLS 1.3: before its hello).
    AppDataBeforeHandshake,
    /// The direction's first record is not a handshake record: the stream was picked up
    /// mid-session, or the peer skipped the handshake altogether.
    StartsWithoutHandshake,
    /// A handshake message cut by a record of another content type.
    HandshakeInterleaved,
    /// A handshake message longer than the reassembly buffer.
    HandshakeTooLarge,
    /// A handshake message type no TLS version defines.
    HandshakeTypeUnknown,
    /// A handshake message whose body does not fit its fixed format.
    HandshakeBodyInvalid {
        msg_type: u8,
    },
    ClientHelloFromServer,
    ServerHelloFromClient,
    /// A hello ends before its mandatory fields do.
    HelloTruncated,
    /// Bytes after the end of a hello's extensions.
    HelloTrailingBytes,
    /// A hello version outside SSL 3.0..=TLS 1.3 (e.g. 0x0000, DTLS, 0x0400).
    HelloVersionInvalid,
    /// legacy_version 0x0304, which no real TLS 1.3 stack sends.
    HelloVersionOdd,
    /// The record claims a higher version than the hello inside it.
    RecordHelloVersionMismatch,
    /// ServerHello's supported_versions contradicts its legacy_version or names < TLS 1.3.
    ServerVersionInconsistent,
    /// supported_versions holds a value that is neither a version, a TLS 1.3 draft nor GREASE.
    SupportedVersionUnknown,
    SessionIdTooLong,
    CipherListEmpty,
    /// Cipher list with an odd byte length (or, in SSLv2 format, not a multiple of 3).
    CipherListOddLength,
    CompressionListEmpty,
    /// An extensions block that is present but empty.
    ExtensionsEmpty,
    /// Extension lengths that disagree with the extensions block.
    ExtensionsLengthMismatch,
    /// The same extension type twice (RFC 8446 4.2).
    ExtensionDuplicate,
    /// A known extension whose inner lengths are inconsistent or empty where they may not be.
    ExtensionBodyInvalid {
        ext: u16,
    },
    /// The server picked a GREASE cipher or echoed a GREASE extension.
    ServerChoseGrease,
    /// Certificate message lengths that disagree with each other, or an empty certificate.
    CertificateListInvalid,
}

impl TlsAnomaly {
    /// Number of distinct kinds (payload fields do not make new kinds).
    pub const KINDS: usize = 35;

    /// Dense index of the kind, for counters and the per-direction report set.
    pub fn kind_index(self) -> usize {
        use TlsAnomaly::*;
        match self {
            NotTls => 0,
            Sslv2ClientHello => 1,
            InvalidContentType => 2,
            RecordVersionInvalid => 3,
            RecordVersionOdd => 4,
            RecordTooLong => 5,
            EmptyRecord => 6,
            FramingBrokenAfterCcs => 7,
            CcsInvalid => 8,
            AlertInvalid => 9,
            AppDataBeforeHandshake => 10,
            HandshakeInterleaved => 11,
            HandshakeTooLarge => 12,
            HandshakeTypeUnknown => 13,
            HandshakeBodyInvalid { .. } => 14,
            ClientHelloFromServer => 15,
            ServerHelloFromClient => 16,
            HelloTruncated => 17,
            HelloTrailingBytes => 18,
            HelloVersionInvalid => 19,
            HelloVersionOdd => 20,
            RecordHelloVersionMismatch => 21,
            ServerVersionInconsistent => 22,
            SupportedVersionUnknown => 23,
            SessionIdTooLong => 24,
            CipherListEmpty => 25,
            CipherListOddLength => 26,
            CompressionListEmpty => 27,
            ExtensionsEmpty => 28,
            ExtensionsLengthMismatch => 29,
            ExtensionDuplicate => 30,
            ExtensionBodyInvalid { .. } => 31,
            ServerChoseGrease => 32,
            CertificateListInvalid => 33,
            StartsWithoutHandshake => 34,
        }
    }

    /// Stable short name (EVE `tls.anomaly`, counter label).
    pub fn name(self) -> &'static str {
        Self::NAMES
            .get(self.kind_index())
            .copied()
            .unwrap_or("unknown")
    }

    /// Names by [`TlsAnomaly::kind_index`].
    pub const NAMES: [&'static str; Self::KINDS] = [
        "not_tls",
        "sslv2_client_hello",
        "invalid_content_type",
        "record_version_invalid",
        "record_version_odd",
        "record_too_long",
        "empty_record",
        "framing_broken_after_ccs",
        "ccs_invalid",
        "alert_invalid",
        "app_data_before_handshake",
        "handshake_interleaved",
        "handshake_too_large",
        "handshake_type_unknown",
        "handshake_body_invalid",
        "client_hello_from_server",
        "server_hello_from_client",
        "hello_truncated",
        "hello_trailing_bytes",
        "hello_version_invalid",
        "hello_version_odd",
        "record_hello_version_mismatch",
        "server_version_inconsistent",
        "supported_version_unknown",
        "session_id_too_long",
        "cipher_list_empty",
        "cipher_list_odd_length",
        "compression_list_empty",
        "extensions_empty",
        "extensions_length_mismatch",
        "extension_duplicate",
        "extension_body_invalid",
        "server_chose_grease",
        "certificate_list_invalid",
        "starts_without_handshake",
    ];
}

/// A set of anomaly kinds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct AnomalySet(u64);

impl AnomalySet {
    /// Adds the kind; true when it was not there yet.
    pub fn insert(&mut self, a: TlsAnomaly) -> bool {
        let bit = 1u64 << a.kind_index();
        let new = self.0 & bit == 0;
        self.0 |= bit;
        new
    }

    pub fn contains(&self, a: TlsAnomaly) -> bool {
        self.0 & (1u64 << a.kind_index()) != 0
    }

    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }

    pub fn len(&self) -> usize {
        self.0.count_ones() as usize
    }

    pub fn union(self, other: AnomalySet) -> AnomalySet {
        AnomalySet(self.0 | other.0)
    }

    /// Names of the kinds in the set, by kind index.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        TlsAnomaly::NAMES
            .iter()
            .enumerate()
            .filter(move |(i, _)| self.0 & (1u64 << i) != 0)
            .map(|(_, n)| *n)
    }
}

/// What one direction of a TLS stream said, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsEvent<'a> {
    ClientHello(&'a ClientHello),
    ServerHello(&'a ServerHello),
    /// One certificate of a (TLS 1.2 and earlier) Certificate message, leaf first.
    Certificate {
        index: u16,
        der: &'a [u8],
    },
    ServerHelloDone,
    /// Any other plaintext handshake message.
    Handshake {
        msg_type: u8,
        len: u32,
    },
    ChangeCipherSpec,
    /// A plaintext alert.
    Alert {
        level: u8,
        description: u8,
    },
    /// An alert record after ChangeCipherSpec (its content is encrypted).
    EncryptedAlert {
        len: u16,
    },
    /// A handshake record after ChangeCipherSpec (normally Finished).
    EncryptedHandshake {
        len: u16,
    },
    ApplicationData {
        len: u16,
    },
    Heartbeat {
        len: u16,
    },
    Anomaly(TlsAnomaly),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Phase {
    /// No byte examined yet.
    #[default]
    Start,
    /// Parsing TLS records at `next`.
    Records,
    /// Framing lost (or never TLS): ignore the rest.
    Stopped,
}

/// A handshake message whose bytes continue in later records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Pending {
    active: bool,
    /// Offset of the record header where the message starts, and of its first byte there.
    start_rec: u32,
    start_at: u32,
    /// Message bytes (header included) seen so far, and the total once the header is known.
    have: u32,
    need: u32,
    header: [u8; HANDSHAKE_HEADER_LEN],
}

// Lives in every flow slot, twice: keep it small.
const _: () = assert!(std::mem::size_of::<TlsDir>() <= 64);

/// Parse state of one direction. Fixed size, no heap; lives in the flow's slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TlsDir {
    role: Dir,
    phase: Phase,
    /// Offset in the stream of the next record header to parse.
    next: u32,
    pending: Pending,
    /// Bytes of an oversized handshake message still to skip.
    discard: u32,
    hello_seen: bool,
    /// This side offered (client) or chose (server) TLS 1.3: ChangeCipherSpec is then a
    /// compatibility record and protected handshake travels as application data.
    tls13: bool,
    ccs_seen: bool,
    /// Handshake records are protected from here on.
    encrypted: bool,
    /// The first record was not a handshake: everything may be protected, nothing is judged
    /// against handshake order.
    mid_stream: bool,
    records: u32,
    reported: AnomalySet,
}

impl TlsDir {
    /// State for the direction `role` (`ToServer` carries the client's bytes).
    pub const fn new(role: Dir) -> Self {
        TlsDir {
            role,
            phase: Phase::Start,
            next: 0,
            pending: Pending {
                active: false,
                start_rec: 0,
                start_at: 0,
                have: 0,
                need: 0,
                header: [0; HANDSHAKE_HEADER_LEN],
            },
            discard: 0,
            hello_seen: false,
            tls13: false,
            ccs_seen: false,
            encrypted: false,
            mid_stream: false,
            records: 0,
            reported: AnomalySet(0),
        }
    }

    /// State for a direction whose TLS starts at stream offset `offset`, after a cleartext
    /// prelude another parser recognised (SMTP/IMAP/POP3 STARTTLS, an RDP X.224 exchange, a
    /// PROXY protocol header, an HTTP CONNECT or SOCKS handshake).
    pub fn starting_at(role: Dir, offset: usize) -> Self {
        TlsDir {
            next: u32::try_from(offset).unwrap_or(u32::MAX),
            ..Self::new(role)
        }
    }

    pub fn role(&self) -> Dir {
        self.role
    }

    /// Stream offset up to which complete records have been parsed.
    pub fn consumed(&self) -> usize {
        self.next as usize
    }

    /// Complete records parsed so far.
    pub fn records(&self) -> u32 {
        self.records
    }

    /// Framing was lost or the bytes were never TLS; further `feed` calls do nothing.
    pub fn stopped(&self) -> bool {
        self.phase == Phase::Stopped
    }

    /// This side sent ChangeCipherSpec.
    pub fn ccs_seen(&self) -> bool {
        self.ccs_seen
    }

    /// This side sent its hello (ClientHello or ServerHello).
    pub fn hello_seen(&self) -> bool {
        self.hello_seen
    }

    /// The anomaly kinds reported so far.
    pub fn anomalies(&self) -> AnomalySet {
        self.reported
    }

    /// Parses every complete record of `data` (the whole in-order prefix of this direction)
    /// not parsed yet, and reports them through `on_event`.
    pub fn feed<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        scratch: &mut TlsScratch,
        on_event: F,
    ) {
        self.feed_records(data, &mut scratch.records, on_event);
    }

    /// [`TlsDir::feed`] with only the reassembly part of the scratch, so that `on_event` may
    /// use the certificate cache.
    pub fn feed_records<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        scratch: &mut RecordScratch,
        mut on_event: F,
    ) {
        let mut out = Out {
            reported: &mut self.reported,
            f: &mut on_event,
        };
        let mut st = Walk {
            role: self.role,
            phase: self.phase,
            next: self.next as usize,
            pending: self.pending,
            discard: self.discard,
            hello_seen: self.hello_seen,
            tls13: self.tls13,
            ccs_seen: self.ccs_seen,
            encrypted: self.encrypted,
            mid_stream: self.mid_stream,
            records: self.records,
        };
        st.run(data, scratch, &mut out);
        self.phase = st.phase;
        // Stream windows are far below 4 GiB; saturate rather than wrap if one ever is not.
        self.next = u32::try_from(st.next).unwrap_or(u32::MAX);
        self.pending = st.pending;
        self.discard = st.discard;
        self.hello_seen = st.hello_seen;
        self.tls13 = st.tls13;
        self.ccs_seen = st.ccs_seen;
        self.encrypted = st.encrypted;
        self.mid_stream = st.mid_stream;
        self.records = st.records;
    }
}

/// Event sink that reports each anomaly kind once.
struct Out<'s, F> {
    reported: &'s mut AnomalySet,
    f: &'s mut F,
}

impl<F: FnMut(TlsEvent<'_>)> Out<'_, F> {
    fn event(&mut self, e: TlsEvent<'_>) {
        (self.f)(e);
    }
    fn anomaly(&mut self, a: TlsAnomaly) {
        if self.reported.insert(a) {
            (self.f)(TlsEvent::Anomaly(a));
        }
    }
}

/// Working copy of the direction state for one `feed` call.
struct Walk {
    role: Dir,
    phase: Phase,
    next: usize,
    pending: Pending,
    discard: u32,
    hello_seen: bool,
    tls13: bool,
    ccs_seen: bool,
    encrypted: bool,
    mid_stream: bool,
    records: u32,
}

/// A record header as read from the stream.
#[derive(Debug, Clone, Copy)]
struct RecordHeader {
    content_type: u8,
    version: u16,
    len: usize,
}

fn read_record_header(b: &[u8]) -> Option<RecordHeader> {
    match b {
        [t, maj, min, l0, l1, ..] => Some(RecordHeader {
            content_type: *t,
            version: u16::from_be_bytes([*maj, *min]),
            len: u16::from_be_bytes([*l0, *l1]) as usize,
        }),
        _ => None,
    }
}

fn is_record_type(t: u8) -> bool {
    (TlsRecordType::ChangeCipherSpec.0..=TlsRecordType::Heartbeat.0).contains(&t)
}

/// Could the first bytes of a stream start an SSLv2-format ClientHello? (2-byte header with
/// the high bit set, message type 1, version major 0 or 3.)
fn sslv2_hello_prefix(b: &[u8]) -> Probe {
    match b {
        [] => Probe::NeedMore,
        [h, ..] if h & 0x80 == 0 => Probe::NoMatch,
        [_] | [_, _] => Probe::NeedMore,
        [_, _, ty, ..] if *ty != 1 => Probe::NoMatch,
        [_, _, _] => Probe::NeedMore,
        [_, _, _, 0 | 3, ..] => Probe::Match(AppProto::Tls, 80),
        _ => Probe::NoMatch,
    }
}

/// Is this the start of a TLS stream? For the protocol identifier: certain on a handshake
/// record carrying a ClientHello or ServerHello, less so on any other valid record header,
/// fairly sure on an SSLv2-format ClientHello.
pub fn probe(data: &[u8]) -> Probe {
    let first = match data.first() {
        None => return Probe::NeedMore,
        Some(b) => *b,
    };
    if !is_record_type(first) {
        return sslv2_hello_prefix(data);
    }
    match data.get(1) {
        None => return Probe::NeedMore,
        Some(3) => {}
        Some(_) => return Probe::NoMatch,
    }
    let Some(h) = read_record_header(data) else {
        return match data.get(2) {
            Some(m) if *m > 4 => Probe::NoMatch,
            _ => Probe::NeedMore,
        };
    };
    if h.version & 0xff > 4 || h.len > MAX_RECORD_LEN {
        return Probe::NoMatch;
    }
    if h.content_type != TlsRecordType::Handshake.0 {
        return Probe::Match(AppProto::Tls, 50);
    }
    match data.get(RECORD_HEADER_LEN) {
        None => Probe::NeedMore,
        Some(1 | 2) => Probe::Match(AppProto::Tls, 100),
        Some(_) => Probe::Match(AppProto::Tls, 60),
    }
}

/// Offset of the first plausible TLS record carrying a ClientHello or ServerHello in `data`,
/// for callers that know TLS starts somewhere after a cleartext prelude (see
/// [`TlsDir::starting_at`]). The header must be a handshake record of version 3.0..=3.4 whose
/// first message is a hello with a 3.x legacy version and a length below 64 KiB.
pub fn find_hello(data: &[u8]) -> Option<usize> {
    let plausible = |w: &[u8]| match w {
        [22, 3, rv, l0, l1, 1 | 2, h0, _, _, 3, hv] => {
            let rec_len = u16::from_be_bytes([*l0, *l1]) as usize;
            *rv <= 4
                && *hv <= 4
                && *h0 == 0
                && (HANDSHAKE_HEADER_LEN..=MAX_RECORD_LEN).contains(&rec_len)
        }
        _ => false,
    };
    // Candidates are where the handshake content type (22) is: memchr skips the bytes between
    // them several at a time (this runs over every byte of long HTTP and SMTP flows).
    let last_start = data.len().checked_sub(HELLO_PROBE_LEN)?;
    let mut from = 0;
    while from <= last_start {
        let at = from + memchr::memchr(22, data.get(from..=last_start)?)?;
        if data.get(at..at + HELLO_PROBE_LEN).is_some_and(plausible) {
            return Some(at);
        }
        from = at + 1;
    }
    None
}

/// [`find_hello`] on `data` whose first `scanned` bytes were already searched (as a shorter
/// `data`) without a find: only the windows that reach past them are tried.
pub fn find_hello_after(data: &[u8], scanned: usize) -> Option<usize> {
    let from = scanned.saturating_sub(HELLO_PROBE_LEN - 1).min(data.len());
    find_hello(data.get(from..).unwrap_or(&[])).map(|at| at + from)
}

/// Bytes [`find_hello`] looks at per candidate offset: a record header and the hello's first
/// six bytes.
const HELLO_PROBE_LEN: usize = RECORD_HEADER_LEN + 6;

impl Walk {
    fn run<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        scratch: &mut RecordScratch,
        out: &mut Out<'_, F>,
    ) {
        if self.phase == Phase::Start {
            let base = self.next;
            self.start(data.get(base..).unwrap_or(&[]), base, out);
        }
        while self.phase == Phase::Records {
            let Some(rest) = data.get(self.next..) else {
                // The engine handed a shorter prefix than before: nothing new to read.
                return;
            };
            let Some(h) = read_record_header(rest) else {
                if let Some(t) = rest.first() {
                    if !is_record_type(*t) {
                        self.broken(out);
                    }
                }
                return;
            };
            if !is_record_type(h.content_type) || h.version >> 8 != 3 {
                self.broken(out);
                return;
            }
            if h.len > MAX_RECORD_LEN {
                out.anomaly(TlsAnomaly::RecordTooLong);
                self.phase = Phase::Stopped;
                return;
            }
            let Some(body) = rest.get(RECORD_HEADER_LEN..RECORD_HEADER_LEN + h.len) else {
                return; // wait for the rest of the record
            };
            let rec_off = self.next;
            self.next += RECORD_HEADER_LEN + h.len;
            if self.records == 0 && h.content_type != TlsRecordType::Handshake.0 {
                out.anomaly(TlsAnomaly::StartsWithoutHandshake);
                self.mid_stream = true;
            }
            self.records = self.records.saturating_add(1);
            if h.version & 0xff > 4 {
                out.anomaly(TlsAnomaly::RecordVersionInvalid);
            } else if h.version == version::TLS13 {
                out.anomaly(TlsAnomaly::RecordVersionOdd);
            }
            self.record(data, rec_off, h, body, scratch, out);
        }
    }

    /// Decides from the first bytes (`data`, at stream offset `base`) whether this direction
    /// is TLS at all.
    fn start<F: FnMut(TlsEvent<'_>)>(&mut self, data: &[u8], base: usize, out: &mut Out<'_, F>) {
        let Some(first) = data.first() else { return };
        if is_record_type(*first) {
            match data.get(1) {
                None => {}
                Some(3) => self.phase = Phase::Records,
                Some(_) => self.not_tls(out),
            }
            return;
        }
        match sslv2_hello_prefix(data) {
            Probe::NeedMore => {}
            Probe::NoMatch => self.not_tls(out),
            Probe::Match(..) => self.sslv2_hello(data, base, out),
        }
    }

    fn not_tls<F: FnMut(TlsEvent<'_>)>(&mut self, out: &mut Out<'_, F>) {
        out.anomaly(TlsAnomaly::NotTls);
        self.phase = Phase::Stopped;
    }

    /// Framing lost mid-stream: name why, then stop.
    fn broken<F: FnMut(TlsEvent<'_>)>(&mut self, out: &mut Out<'_, F>) {
        if self.ccs_seen {
            out.anomaly(TlsAnomaly::FramingBrokenAfterCcs);
        } else {
            out.anomaly(TlsAnomaly::InvalidContentType);
        }
        self.phase = Phase::Stopped;
    }

    fn sslv2_hello<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        base: usize,
        out: &mut Out<'_, F>,
    ) {
        let (Some(h0), Some(h1)) = (data.first(), data.get(1)) else {
            return;
        };
        let len = u16::from_be_bytes([h0 & 0x7f, *h1]) as usize;
        let Some(msg) = data.get(2..2 + len) else {
            return; // wait for the whole hello
        };
        out.anomaly(TlsAnomaly::Sslv2ClientHello);
        if self.role == Dir::ToClient {
            out.anomaly(TlsAnomaly::ClientHelloFromServer);
        }
        let parsed = parse_sslv2_client_hello(msg, &mut |a| out.anomaly(a));
        if let Some(ch) = parsed {
            self.hello_seen = true;
            self.tls13 = ch.offers_tls13();
            out.event(TlsEvent::ClientHello(&ch));
        }
        self.next = base + 2 + len;
        self.records = self.records.saturating_add(1);
        self.phase = Phase::Records;
    }

    fn record<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        rec_off: usize,
        h: RecordHeader,
        body: &[u8],
        scratch: &mut RecordScratch,
        out: &mut Out<'_, F>,
    ) {
        let len16 = h.len as u16; // h.len <= MAX_RECORD_LEN < 2^16
        let is_handshake = h.content_type == TlsRecordType::Handshake.0;
        if !is_handshake && (self.pending.active || self.discard > 0) {
            out.anomaly(TlsAnomaly::HandshakeInterleaved);
            self.pending = Pending::default();
            self.discard = 0;
        }
        if body.is_empty() && h.content_type != TlsRecordType::ApplicationData.0 {
            out.anomaly(TlsAnomaly::EmptyRecord);
            return;
        }
        match TlsRecordType(h.content_type) {
            TlsRecordType::ChangeCipherSpec => {
                if body != [1] {
                    out.anomaly(TlsAnomaly::CcsInvalid);
                }
                self.ccs_seen = true;
                if !self.tls13 {
                    self.encrypted = true;
                }
                out.event(TlsEvent::ChangeCipherSpec);
            }
            TlsRecordType::Alert => match body {
                [level @ (1 | 2), description] => out.event(TlsEvent::Alert {
                    level: *level,
                    description: *description,
                }),
                _ if self.ccs_seen || self.mid_stream => {
                    out.event(TlsEvent::EncryptedAlert { len: len16 })
                }
                _ => out.anomaly(TlsAnomaly::AlertInvalid),
            },
            TlsRecordType::ApplicationData => {
                let ready = self.hello_seen && (self.tls13 || self.ccs_seen);
                if !ready && !self.mid_stream {
                    out.anomaly(TlsAnomaly::AppDataBeforeHandshake);
                }
                out.event(TlsEvent::ApplicationData { len: len16 });
            }
            TlsRecordType::Heartbeat => out.event(TlsEvent::Heartbeat { len: len16 }),
            _ => {
                // Handshake. Before TLS 1.3 everything after CCS is protected. A TLS 1.3
                // side's CCS is cosmetic, but if the peer settled on TLS 1.2 its Finished
                // follows the CCS protected: only a record that starts like a hello is then
                // read as plaintext.
                let protected = self.encrypted
                    || (self.ccs_seen && !self.pending.active && !looks_like_hello(body));
                if protected {
                    self.encrypted = true;
                    out.event(TlsEvent::EncryptedHandshake { len: len16 });
                } else {
                    self.handshake_record(data, rec_off, h.version, body, scratch, out);
                }
            }
        }
    }

    /// Splits one plaintext handshake record into messages, finishing or starting a message
    /// that spans records.
    fn handshake_record<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        data: &[u8],
        rec_off: usize,
        rec_version: u16,
        body: &[u8],
        scratch: &mut RecordScratch,
        out: &mut Out<'_, F>,
    ) {
        let mut pos = 0usize;
        if self.discard > 0 {
            let skip = (self.discard as usize).min(body.len());
            pos = skip;
            self.discard -= skip as u32;
        }
        if self.pending.active {
            while self.pending.need == 0 && pos < body.len() {
                let have = self.pending.have as usize;
                if let (Some(slot), Some(b)) = (self.pending.header.get_mut(have), body.get(pos)) {
                    *slot = *b;
                }
                self.pending.have += 1;
                pos += 1;
                if self.pending.have as usize == HANDSHAKE_HEADER_LEN {
                    let [t, a, b, c] = self.pending.header;
                    let total = HANDSHAKE_HEADER_LEN as u32 + u32::from_be_bytes([0, a, b, c]);
                    if !is_known_handshake_type(t) {
                        out.anomaly(TlsAnomaly::HandshakeTypeUnknown);
                    }
                    if total as usize > scratch.capacity() {
                        out.anomaly(TlsAnomaly::HandshakeTooLarge);
                        self.pending = Pending::default();
                        let skip =
                            ((total - HANDSHAKE_HEADER_LEN as u32) as usize).min(body.len() - pos);
                        self.discard = total - HANDSHAKE_HEADER_LEN as u32 - skip as u32;
                        pos += skip;
                        break;
                    }
                    self.pending.need = total;
                }
            }
            if self.pending.active && self.pending.need > 0 {
                let want = (self.pending.need - self.pending.have) as usize;
                let avail = body.len() - pos;
                if avail >= want {
                    let need = self.pending.need as usize;
                    let first_version = data
                        .get(self.pending.start_rec as usize..)
                        .and_then(read_record_header)
                        .map_or(rec_version, |h| h.version);
                    if let Some(msg) = gather(data, &self.pending, need, &mut scratch.buf) {
                        self.message(msg, first_version, out);
                    }
                    self.pending = Pending::default();
                    pos += want;
                } else {
                    self.pending.have += avail as u32;
                    pos = body.len();
                }
            }
        }
        while let Some(rest) = body.get(pos..).filter(|r| !r.is_empty()) {
            let header = rest.get(..HANDSHAKE_HEADER_LEN).and_then(|h| match h {
                [t, a, b, c] => Some((*t, u32::from_be_bytes([0, *a, *b, *c]) as usize)),
                _ => None,
            });
            let Some((msg_type, len)) = header else {
                // The 4-byte header itself is split across records.
                let mut hdr = [0u8; HANDSHAKE_HEADER_LEN];
                for (d, s) in hdr.iter_mut().zip(rest) {
                    *d = *s;
                }
                self.pending = Pending {
                    active: true,
                    start_rec: rec_off as u32,
                    start_at: (rec_off + RECORD_HEADER_LEN + pos) as u32,
                    have: rest.len() as u32,
                    need: 0,
                    header: hdr,
                };
                return;
            };
            let total = HANDSHAKE_HEADER_LEN + len;
            if let Some(msg) = rest.get(..total) {
                self.message(msg, rec_version, out);
                pos += total;
                continue;
            }
            if !is_known_handshake_type(msg_type) {
                out.anomaly(TlsAnomaly::HandshakeTypeUnknown);
            }
            if total > scratch.capacity() {
                out.anomaly(TlsAnomaly::HandshakeTooLarge);
                self.discard = (total - rest.len()) as u32;
                return;
            }
            self.pending = Pending {
                active: true,
                start_rec: rec_off as u32,
                start_at: (rec_off + RECORD_HEADER_LEN + pos) as u32,
                have: rest.len() as u32,
                need: total as u32,
                header: [0; HANDSHAKE_HEADER_LEN],
            };
            return;
        }
    }

    /// One whole handshake message (header included).
    fn message<F: FnMut(TlsEvent<'_>)>(
        &mut self,
        msg: &[u8],
        rec_version: u16,
        out: &mut Out<'_, F>,
    ) {
        let (Some(&msg_type), Some(body)) = (msg.first(), msg.get(HANDSHAKE_HEADER_LEN..)) else {
            return;
        };
        let mut anomaly = |a| out.anomaly(a);
        match TlsHandshakeType(msg_type) {
            TlsHandshakeType::ClientHello => {
                if self.role == Dir::ToClient {
                    anomaly(TlsAnomaly::ClientHelloFromServer);
                }
                if let Some(ch) = parse_client_hello(body, rec_version, &mut anomaly) {
                    if version_above(rec_version, ch.legacy_version) {
                        anomaly(TlsAnomaly::RecordHelloVersionMismatch);
                    }
                    self.hello_seen = true;
                    self.tls13 |= ch.offers_tls13();
                    out.event(TlsEvent::ClientHello(&ch));
                }
            }
            TlsHandshakeType::ServerHello => {
                if self.role == Dir::ToServer {
                    anomaly(TlsAnomaly::ServerHelloFromClient);
                }
                if let Some(sh) = parse_server_hello(body, rec_version, &mut anomaly) {
                    if version_above(rec_version, sh.legacy_version) {
                        anomaly(TlsAnomaly::RecordHelloVersionMismatch);
                    }
                    self.hello_seen = true;
                    let v = sh.negotiated_version();
                    self.tls13 = v == version::TLS13 || is_tls13_draft(v);
                    out.event(TlsEvent::ServerHello(&sh));
                }
            }
            TlsHandshakeType::Certificate => self.certificates(body, out),
            TlsHandshakeType::ServerDone => {
                if !body.is_empty() {
                    out.anomaly(TlsAnomaly::HandshakeBodyInvalid { msg_type });
                }
                out.event(TlsEvent::ServerHelloDone);
            }
            t => {
                if !is_known_handshake_type(t.0) {
                    out.anomaly(TlsAnomaly::HandshakeTypeUnknown);
                }
                out.event(TlsEvent::Handshake {
                    msg_type,
                    len: body.len() as u32,
                });
            }
        }
    }

    /// A TLS 1.2-style Certificate message: a 24-bit list length, then 24-bit-length DER
    /// certificates.
    fn certificates<F: FnMut(TlsEvent<'_>)>(&mut self, body: &[u8], out: &mut Out<'_, F>) {
        let mut r = Rd::new(body);
        let list = match r.u24().map(|n| n as usize) {
            Some(n) if n == r.remaining() => r.rest(),
            Some(_) | None => {
                out.anomaly(TlsAnomaly::CertificateListInvalid);
                r.rest()
            }
        };
        let mut l = Rd::new(list);
        let mut index = 0u16;
        while l.remaining() > 0 {
            let Some(len) = l.u24() else {
                out.anomaly(TlsAnomaly::CertificateListInvalid);
                return;
            };
            let Some(der) = l.take(len as usize) else {
                out.anomaly(TlsAnomaly::CertificateListInvalid);
                return;
            };
            if der.is_empty() {
                out.anomaly(TlsAnomaly::CertificateListInvalid);
                continue;
            }
            out.event(TlsEvent::Certificate { index, der });
            index = index.saturating_add(1);
        }
    }
}

/// Copies a message that spans records into `buf`: from `p.start_at`, the handshake payload
/// of each record up to `need` bytes. Every record from the start record on is a handshake
/// record (another content type would have dropped the pending message).
fn gather<'b>(data: &[u8], p: &Pending, need: usize, buf: &'b mut [u8]) -> Option<&'b [u8]> {
    let dst = buf.get_mut(..need)?;
    let mut filled = 0usize;
    let mut rec = p.start_rec as usize;
    let mut from = p.start_at as usize;
    while filled < need {
        let h = read_record_header(data.get(rec..)?)?;
        let body_end = rec + RECORD_HEADER_LEN + h.len;
        let chunk = data.get(from..body_end)?;
        let n = chunk.len().min(need - filled);
        dst.get_mut(filled..filled + n)?
            .copy_from_slice(chunk.get(..n)?);
        filled += n;
        rec = body_end;
        from = rec + RECORD_HEADER_LEN;
    }
    Some(dst)
}

/// After a TLS 1.3 side's ChangeCipherSpec, a plaintext handshake record can only be a
/// second hello (after HelloRetryRequest): type 1 or 2 followed by a 3.x legacy version.
fn looks_like_hello(body: &[u8]) -> bool {
    matches!(body, [1 | 2, _, _, _, 3, minor, ..] if *minor <= 4)
}

/// The record claims a higher version than the hello. Unknown versions are not compared:
/// they are reported on their own.
fn version_above(record: u16, hello: u16) -> bool {
    is_known_version(record) && is_known_version(hello) && record > hello
}

fn is_known_handshake_type(t: u8) -> bool {
    // RFC 8446 and the IANA registry: hello_request .. message_hash, plus NPN (67).
    matches!(
        t,
        0..=6 | 8 | 11..=17 | 20..=26 | 67 | 254
    )
}

/// The record carrying a lone TLS 1.3 Finished for `cipher`: handshake header, verify_data
/// (the suite's hash length), inner content type, AEAD tag. None for a suite not in RFC 8446.
pub fn finished_record_len(cipher: u16) -> Option<u16> {
    const HEADER: u16 = 4;
    const CONTENT_TYPE: u16 = 1;
    let (hash, tag) = match cipher {
        // TLS_AES_128_GCM_SHA256, TLS_CHACHA20_POLY1305_SHA256, TLS_AES_128_CCM_SHA256
        0x1301 | 0x1303 | 0x1304 => (32, 16),
        // TLS_AES_256_GCM_SHA384
        0x1302 => (48, 16),
        // TLS_AES_128_CCM_8_SHA256
        0x1305 => (32, 8),
        _ => return None,
    };
    Some(HEADER + hash + CONTENT_TYPE + tag)
}

#[cfg(test)]
mod tests;
