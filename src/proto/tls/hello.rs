//! ClientHello and ServerHello bodies as fixed-size values, and the pure functions that parse
//! them out of handshake message bodies (TLS and the SSLv2-compatible ClientHello).
//!
//! Everything a fingerprint or a check reads is kept in wire order, GREASE included (the
//! fingerprint code drops GREASE itself), in fixed arrays that remember when they overflowed.
//! The parsers never fail on odd values: they record what was sent, report every
//! inconsistency through the `anomaly` callback, and give up (returning `None`) only when the
//! mandatory part of a hello is cut short.

use super::TlsAnomaly;
pub use crate::proto::fixed_list::FixedList;
use crate::text::InlineStr;

/// Capacities of the fixed lists. Real clients stay well below them: the widest hello in the
/// reference captures offers 67 cipher suites and 19 extensions.
pub const MAX_CIPHERS: usize = 128;
pub const MAX_EXTENSIONS: usize = 64;
pub const MAX_GROUPS: usize = 48;
pub const MAX_POINT_FORMATS: usize = 8;
pub const MAX_SIG_ALGS: usize = 64;
pub const MAX_VERSIONS: usize = 16;
pub const MAX_COMPRESSION: usize = 8;
pub const MAX_ALPN: usize = 8;
/// ALPN protocol ids longer than this are cut (and flagged) in the text copy.
pub const ALPN_TEXT_LEN: usize = 32;
/// Host names are at most 253 characters; the margin leaves room for `\xNN` escapes.
pub const SNI_TEXT_LEN: usize = 320;

/// Extension type numbers this module interprets.
pub mod ext {
    pub const SERVER_NAME: u16 = 0;
    pub const SUPPORTED_GROUPS: u16 = 10;
    pub const EC_POINT_FORMATS: u16 = 11;
    pub const SIGNATURE_ALGORITHMS: u16 = 13;
    pub const ALPN: u16 = 16;
    pub const PADDING: u16 = 21;
    pub const EARLY_DATA: u16 = 42;
    pub const SUPPORTED_VERSIONS: u16 = 43;
    pub const KEY_SHARE: u16 = 51;
    pub const ENCRYPTED_CLIENT_HELLO: u16 = 0xfe0d;
    /// ESNI, draft-ietf-tls-esni-01 to -05 (Firefox and Cloudflare, 2018-2020).
    pub const ENCRYPTED_SERVER_NAME: u16 = 0xffce;
    pub const RENEGOTIATION_INFO: u16 = 0xff01;
}

/// TLS protocol version numbers as they appear on the wire.
pub mod version {
    pub const SSL2: u16 = 0x0002;
    pub const SSL3: u16 = 0x0300;
    pub const TLS10: u16 = 0x0301;
    pub const TLS11: u16 = 0x0302;
    pub const TLS12: u16 = 0x0303;
    pub const TLS13: u16 = 0x0304;
}

/// RFC 8446 4.1.3: a ServerHello whose random is this value is a HelloRetryRequest.
const HELLO_RETRY_RANDOM: [u8; 32] = [
    0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8, 0x91,
    0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8, 0x33, 0x9c,
];

/// GREASE values (RFC 8701): 0x0a0a, 0x1a1a, ... 0xfafa.
pub fn is_grease(v: u16) -> bool {
    let [hi, lo] = v.to_be_bytes();
    hi == lo && lo & 0x0f == 0x0a
}

/// Known TLS/SSL protocol versions (SSL 3.0 to TLS 1.3), the only ones a TLS-over-TCP peer
/// may legitimately name outside GREASE and pre-standard TLS 1.3 drafts.
pub fn is_known_version(v: u16) -> bool {
    (version::SSL3..=version::TLS13).contains(&v)
}

/// TLS 1.3 draft numbers (0x7fNN), sent by some pre-2018 stacks.
pub fn is_tls13_draft(v: u16) -> bool {
    v >> 8 == 0x7f
}

/// The parts of a ClientHello that fingerprints and checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ClientHello {
    /// Version in the header of the record that began the hello (0x0002 for SSLv2 format).
    pub record_version: u16,
    /// `legacy_version` (`client_version` before TLS 1.3).
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id_len: u8,
    pub ciphers: FixedList<u16, MAX_CIPHERS>,
    pub compression: FixedList<u8, MAX_COMPRESSION>,
    /// Extension types in wire order.
    pub extensions: FixedList<u16, MAX_EXTENSIONS>,
    /// The extensions block was present (even if empty).
    pub has_extensions_block: bool,
    /// Bytes follow the compression methods but too few for the extensions length: tshark
    /// then ends its JA3 string after the cipher field, and so does [`crate::proto::fingerprint::ja3`].
    pub extensions_length_cut: bool,
    /// Contents of `supported_versions`, when the extension was sent.
    pub supported_versions: FixedList<u16, MAX_VERSIONS>,
    pub has_supported_versions: bool,
    pub groups: FixedList<u16, MAX_GROUPS>,
    pub point_formats: FixedList<u8, MAX_POINT_FORMATS>,
    pub sig_algs: FixedList<u16, MAX_SIG_ALGS>,
    /// The server_name extension was present (JA4 'd'), whatever its content.
    pub has_sni: bool,
    /// First host_name in server_name, bytes as sent (non-UTF-8 and control bytes escaped).
    pub sni: InlineStr<SNI_TEXT_LEN>,
    /// ALPN protocol ids as text (escaped), in order.
    pub alpn: FixedList<InlineStr<ALPN_TEXT_LEN>, MAX_ALPN>,
    /// First and last raw byte of the first ALPN id, and its length (JA4 needs raw bytes).
    pub alpn_first_edges: [u8; 2],
    pub alpn_first_len: u8,
    /// A GREASE value appeared among ciphers, extensions, groups or versions.
    pub grease_seen: bool,
    /// The hello came in the SSLv2-compatible format (RFC 5246 appendix E.2); cipher specs
    /// that have no TLS equivalent (first byte non-zero) are counted in `sslv2_only_specs`.
    pub sslv2_format: bool,
    pub sslv2_only_specs: u16,
    /// The ECH and ESNI extensions, as far as they can be read without keys.
    pub hidden: HiddenName,
    /// Length of the handshake message body.
    pub body_len: u32,
}

/// The `type` byte of an ECH extension (draft-ietf-tls-esni-13 onwards).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum EchType {
    /// The ClientHelloOuter's extension: cipher suite, config id, encapsulated key, payload.
    #[default]
    Outer,
    /// The marker of a ClientHelloInner; it belongs inside the encrypted payload, so on the wire
    /// it means a hand-made hello.
    Inner,
    Other(u8),
}

impl EchType {
    pub fn name(self) -> &'static str {
        match self {
            EchType::Outer => "outer",
            EchType::Inner => "inner",
            EchType::Other(_) => "unknown",
        }
    }
}

/// What an ECH extension (0xfe0d) shows on the wire. A GREASE ECH extension (RFC 9849 6.2,
/// sent by Chrome and Firefox on every hello) is built to look exactly like this, so nothing
/// here says whether the payload is real.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EchExt {
    pub ty: EchType,
    /// HPKE KDF and AEAD ids of the outer extension.
    pub kdf: u16,
    pub aead: u16,
    pub config_id: u8,
    pub enc_len: u16,
    pub payload_len: u16,
    /// The body had exactly the fields its type calls for.
    pub well_formed: bool,
}

/// What an ESNI extension (0xffce, draft-ietf-tls-esni-01..05) shows on the wire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct EsniExt {
    pub suite: u16,
    /// Key share group and key length.
    pub group: u16,
    pub key_len: u16,
    pub digest_len: u16,
    pub payload_len: u16,
    pub well_formed: bool,
}

/// The extensions that hide the server name; the first of each type is kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct HiddenName {
    pub ech: Option<EchExt>,
    pub esni: Option<EsniExt>,
}

impl HiddenName {
    pub fn any(&self) -> bool {
        self.ech.is_some() || self.esni.is_some()
    }
}

/// Reads an ECH extension body. Malformed bodies are recorded, not reported as anomalies: the
/// fake-handshake check judges framing, and ECH bodies are opaque by design.
pub fn parse_ech(data: &[u8]) -> EchExt {
    let mut r = Rd::new(data);
    let mut e = EchExt::default();
    let Some(ty) = r.u8() else {
        return e;
    };
    match ty {
        0 => {
            let fields = (|| {
                let kdf = r.u16()?;
                let aead = r.u16()?;
                let config_id = r.u8()?;
                let enc = r.vec16()?;
                let payload = r.vec16()?;
                Some((kdf, aead, config_id, enc.len(), payload.len()))
            })();
            if let Some((kdf, aead, config_id, enc_len, payload_len)) = fields {
                e.kdf = kdf;
                e.aead = aead;
                e.config_id = config_id;
                e.enc_len = enc_len as u16;
                e.payload_len = payload_len as u16;
                e.well_formed = r.remaining() == 0 && payload_len > 0;
            }
        }
        1 => {
            e.ty = EchType::Inner;
            e.well_formed = r.remaining() == 0;
        }
        other => e.ty = EchType::Other(other),
    }
    e
}

/// Reads an ESNI extension body (draft -02 to -05 layout: suite, key share, digest, payload).
pub fn parse_esni(data: &[u8]) -> EsniExt {
    let mut r = Rd::new(data);
    let mut e = EsniExt::default();
    let fields = (|| {
        let suite = r.u16()?;
        let group = r.u16()?;
        let key = r.vec16()?;
        let digest = r.vec16()?;
        let payload = r.vec16()?;
        Some((suite, group, key.len(), digest.len(), payload.len()))
    })();
    if let Some((suite, group, key_len, digest_len, payload_len)) = fields {
        e.suite = suite;
        e.group = group;
        e.key_len = key_len as u16;
        e.digest_len = digest_len as u16;
        e.payload_len = payload_len as u16;
        e.well_formed = r.remaining() == 0 && payload_len > 0;
    }
    e
}

impl ClientHello {
    /// Highest version the client offers: from supported_versions when present (GREASE
    /// ignored), else `legacy_version`.
    pub fn max_offered_version(&self) -> u16 {
        if self.has_supported_versions {
            let best = self
                .supported_versions
                .as_slice()
                .iter()
                .copied()
                .filter(|v| !is_grease(*v))
                .max();
            if let Some(v) = best {
                return v;
            }
        }
        self.legacy_version
    }

    /// The client can speak TLS 1.3 (so its records after the hello may be encrypted
    /// handshake or early data, and ChangeCipherSpec is only a compatibility signal).
    pub fn offers_tls13(&self) -> bool {
        self.has_supported_versions
            && self
                .supported_versions
                .as_slice()
                .iter()
                .any(|v| *v == version::TLS13 || is_tls13_draft(*v))
    }

    pub fn has_extension(&self, ty: u16) -> bool {
        self.extensions.contains(&ty)
    }

    /// True when one of the fixed lists lost items, so fingerprints are incomplete.
    pub fn any_overflow(&self) -> bool {
        self.ciphers.overflowed()
            || self.extensions.overflowed()
            || self.groups.overflowed()
            || self.point_formats.overflowed()
            || self.sig_algs.overflowed()
            || self.supported_versions.overflowed()
    }
}

/// The parts of a ServerHello that fingerprints and checks read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ServerHello {
    pub record_version: u16,
    pub legacy_version: u16,
    pub random: [u8; 32],
    pub session_id_len: u8,
    pub cipher: u16,
    pub compression: u8,
    pub extensions: FixedList<u16, MAX_EXTENSIONS>,
    pub has_extensions_block: bool,
    /// supported_versions as selected by the server (TLS 1.3 and HelloRetryRequest).
    pub selected_version: Option<u16>,
    /// ALPN protocol the server selected (escaped text), if any.
    pub alpn: Option<InlineStr<ALPN_TEXT_LEN>>,
    /// The random is the HelloRetryRequest marker (RFC 8446 4.1.3).
    pub is_hello_retry: bool,
    pub body_len: u32,
}

impl ServerHello {
    /// The version the server chose: supported_versions when present, else legacy_version.
    pub fn negotiated_version(&self) -> u16 {
        self.selected_version.unwrap_or(self.legacy_version)
    }

    pub fn has_extension(&self, ty: u16) -> bool {
        self.extensions.contains(&ty)
    }
}

/// Big-endian reader over a byte slice; every read is checked.
#[derive(Clone, Copy)]
pub(crate) struct Rd<'a> {
    b: &'a [u8],
}

impl<'a> Rd<'a> {
    pub(crate) fn new(b: &'a [u8]) -> Self {
        Rd { b }
    }
    pub(crate) fn remaining(&self) -> usize {
        self.b.len()
    }
    pub(crate) fn rest(&self) -> &'a [u8] {
        self.b
    }
    pub(crate) fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if n > self.b.len() {
            return None;
        }
        let (head, tail) = self.b.split_at(n);
        self.b = tail;
        Some(head)
    }
    pub(crate) fn u8(&mut self) -> Option<u8> {
        let (first, tail) = self.b.split_first()?;
        self.b = tail;
        Some(*first)
    }
    pub(crate) fn u16(&mut self) -> Option<u16> {
        let s = self.take(2)?;
        Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
    }
    pub(crate) fn u24(&mut self) -> Option<u32> {
        let s = self.take(3)?;
        Some(u32::from_be_bytes([0, *s.first()?, *s.get(1)?, *s.get(2)?]))
    }
    /// A vector with a one-byte length prefix.
    pub(crate) fn vec8(&mut self) -> Option<&'a [u8]> {
        let n = self.u8()? as usize;
        self.take(n)
    }
    /// A vector with a two-byte length prefix.
    pub(crate) fn vec16(&mut self) -> Option<&'a [u8]> {
        let n = self.u16()? as usize;
        self.take(n)
    }
}

fn u16_items(b: &[u8]) -> impl Iterator<Item = u16> + '_ {
    b.chunks_exact(2).map(|c| match c {
        [hi, lo] => u16::from_be_bytes([*hi, *lo]),
        _ => 0,
    })
}

fn check_version(v: u16, anomaly: &mut impl FnMut(TlsAnomaly)) {
    if !is_known_version(v) {
        anomaly(TlsAnomaly::HelloVersionInvalid);
    } else if v == version::TLS13 {
        // RFC 8446 4.1.2: TLS 1.3 peers put 0x0303 in legacy_version; 0x0304 here is a
        // hand-made hello.
        anomaly(TlsAnomaly::HelloVersionOdd);
    }
}

/// Parses a ClientHello body (the bytes after the 4-byte handshake header).
pub fn parse_client_hello(
    body: &[u8],
    record_version: u16,
    anomaly: &mut impl FnMut(TlsAnomaly),
) -> Option<ClientHello> {
    let mut ch = ClientHello {
        record_version,
        body_len: body.len() as u32,
        ..ClientHello::default()
    };
    let mut r = Rd::new(body);
    let fixed = (|| {
        let v = r.u16()?;
        let random = r.take(32)?;
        let sid = r.vec8()?;
        Some((v, random, sid))
    })();
    let Some((legacy_version, random, sid)) = fixed else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    ch.legacy_version = legacy_version;
    check_version(legacy_version, anomaly);
    ch.random.copy_from_slice(random);
    ch.session_id_len = sid.len() as u8;
    if sid.len() > 32 {
        anomaly(TlsAnomaly::SessionIdTooLong);
    }

    let Some(cipher_len) = r.u16() else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    let Some(ciphers) = r.take(cipher_len as usize) else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    if ciphers.is_empty() {
        anomaly(TlsAnomaly::CipherListEmpty);
    }
    if ciphers.len() % 2 != 0 {
        anomaly(TlsAnomaly::CipherListOddLength);
    }
    for c in u16_items(ciphers) {
        ch.grease_seen |= is_grease(c);
        ch.ciphers.push(c);
    }

    let Some(comp) = r.vec8() else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    if comp.is_empty() {
        anomaly(TlsAnomaly::CompressionListEmpty);
    }
    for m in comp {
        ch.compression.push(*m);
    }

    if r.remaining() == 0 {
        // No extensions block: legal before TLS 1.3 (SSLv3-era clients).
        return Some(ch);
    }
    ch.has_extensions_block = true;
    let Some(ext_len) = r.u16() else {
        anomaly(TlsAnomaly::ExtensionsLengthMismatch);
        ch.extensions_length_cut = true;
        return Some(ch);
    };
    let ext_block = match r.take(ext_len as usize) {
        Some(b) => b,
        None => {
            // The block claims more than the message holds; read what is there.
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            let rest = r.rest();
            r = Rd::new(&[]);
            rest
        }
    };
    if r.remaining() != 0 {
        anomaly(TlsAnomaly::HelloTrailingBytes);
    }
    if ext_block.is_empty() {
        anomaly(TlsAnomaly::ExtensionsEmpty);
    }
    let mut e = Rd::new(ext_block);
    while e.remaining() > 0 {
        let (Some(ty), Some(len)) = (e.u16(), e.u16()) else {
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            break;
        };
        let Some(data) = e.take(len as usize) else {
            // The type was on the wire: tshark and ja4 count it, so do we.
            note_extension(&mut ch.extensions, &mut ch.grease_seen, ty, anomaly);
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            break;
        };
        note_extension(&mut ch.extensions, &mut ch.grease_seen, ty, anomaly);
        client_extension(&mut ch, ty, data, anomaly);
    }
    Some(ch)
}

fn note_extension<const N: usize>(
    list: &mut FixedList<u16, N>,
    grease_seen: &mut bool,
    ty: u16,
    anomaly: &mut impl FnMut(TlsAnomaly),
) {
    if is_grease(ty) {
        *grease_seen = true;
    } else if list.contains(&ty) {
        // RFC 8446 4.2: at most one extension of each type. (Two GREASE extensions are
        // legal and differ anyway.)
        anomaly(TlsAnomaly::ExtensionDuplicate);
    }
    list.push(ty);
}

fn client_extension(
    ch: &mut ClientHello,
    ty: u16,
    data: &[u8],
    anomaly: &mut impl FnMut(TlsAnomaly),
) {
    let bad =
        |anomaly: &mut dyn FnMut(TlsAnomaly)| anomaly(TlsAnomaly::ExtensionBodyInvalid { ext: ty });
    let mut r = Rd::new(data);
    match ty {
        ext::SERVER_NAME => {
            ch.has_sni = true;
            let Some(list) = r.vec16() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.is_empty() {
                bad(anomaly);
            }
            let mut l = Rd::new(list);
            let mut first = true;
            while l.remaining() > 0 {
                let (Some(name_type), Some(name)) = (l.u8(), l.vec16()) else {
                    bad(anomaly);
                    return;
                };
                if name_type == 0 && first {
                    ch.sni = InlineStr::from_bytes_escaped(name);
                    first = false;
                    if name.is_empty() {
                        bad(anomaly);
                    }
                }
            }
        }
        ext::SUPPORTED_GROUPS => {
            let Some(list) = r.vec16() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.len() % 2 != 0 {
                bad(anomaly);
            }
            for g in u16_items(list) {
                ch.grease_seen |= is_grease(g);
                ch.groups.push(g);
            }
        }
        ext::EC_POINT_FORMATS => {
            let Some(list) = r.vec8() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.is_empty() {
                bad(anomaly);
            }
            for f in list {
                ch.point_formats.push(*f);
            }
        }
        ext::SIGNATURE_ALGORITHMS => {
            let Some(list) = r.vec16() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.len() % 2 != 0 || list.is_empty() {
                bad(anomaly);
            }
            for s in u16_items(list) {
                ch.sig_algs.push(s);
            }
        }
        ext::ALPN => {
            let Some(list) = r.vec16() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.is_empty() {
                bad(anomaly);
            }
            let mut l = Rd::new(list);
            while l.remaining() > 0 {
                let Some(proto) = l.vec8() else {
                    bad(anomaly);
                    return;
                };
                if proto.is_empty() {
                    // RFC 7301 3.1: empty protocol names are not allowed.
                    bad(anomaly);
                }
                if ch.alpn.total() == 0 {
                    ch.alpn_first_len = proto.len() as u8;
                    if let (Some(f), Some(l)) = (proto.first(), proto.last()) {
                        ch.alpn_first_edges = [*f, *l];
                    }
                }
                ch.alpn.push(InlineStr::from_bytes_escaped(proto));
            }
        }
        ext::SUPPORTED_VERSIONS => {
            ch.has_supported_versions = true;
            let Some(list) = r.vec8() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 || list.len() % 2 != 0 || list.is_empty() {
                bad(anomaly);
            }
            for v in u16_items(list) {
                if is_grease(v) {
                    ch.grease_seen = true;
                } else if !is_known_version(v) && !is_tls13_draft(v) {
                    anomaly(TlsAnomaly::SupportedVersionUnknown);
                }
                ch.supported_versions.push(v);
            }
        }
        ext::ENCRYPTED_CLIENT_HELLO if ch.hidden.ech.is_none() => {
            ch.hidden.ech = Some(parse_ech(data));
        }
        ext::ENCRYPTED_SERVER_NAME if ch.hidden.esni.is_none() => {
            ch.hidden.esni = Some(parse_esni(data));
        }
        _ => {}
    }
}

/// Parses a ServerHello body (after the 4-byte handshake header).
pub fn parse_server_hello(
    body: &[u8],
    record_version: u16,
    anomaly: &mut impl FnMut(TlsAnomaly),
) -> Option<ServerHello> {
    let mut sh = ServerHello {
        record_version,
        body_len: body.len() as u32,
        ..ServerHello::default()
    };
    let mut r = Rd::new(body);
    let fixed = (|| {
        let v = r.u16()?;
        let random = r.take(32)?;
        let sid = r.vec8()?;
        let cipher = r.u16()?;
        let comp = r.u8()?;
        Some((v, random, sid, cipher, comp))
    })();
    let Some((legacy_version, random, sid, cipher, comp)) = fixed else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    sh.legacy_version = legacy_version;
    check_version(legacy_version, anomaly);
    sh.random.copy_from_slice(random);
    sh.is_hello_retry = sh.random == HELLO_RETRY_RANDOM;
    sh.session_id_len = sid.len() as u8;
    if sid.len() > 32 {
        anomaly(TlsAnomaly::SessionIdTooLong);
    }
    sh.cipher = cipher;
    sh.compression = comp;
    if is_grease(cipher) {
        // A server must pick one of the offered suites, and GREASE never is one.
        anomaly(TlsAnomaly::ServerChoseGrease);
    }

    if r.remaining() == 0 {
        return Some(sh);
    }
    sh.has_extensions_block = true;
    let Some(ext_len) = r.u16() else {
        anomaly(TlsAnomaly::ExtensionsLengthMismatch);
        return Some(sh);
    };
    let ext_block = match r.take(ext_len as usize) {
        Some(b) => b,
        None => {
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            let rest = r.rest();
            r = Rd::new(&[]);
            rest
        }
    };
    if r.remaining() != 0 {
        anomaly(TlsAnomaly::HelloTrailingBytes);
    }
    if ext_block.is_empty() {
        anomaly(TlsAnomaly::ExtensionsEmpty);
    }
    let mut e = Rd::new(ext_block);
    let mut grease = false;
    while e.remaining() > 0 {
        let (Some(ty), Some(len)) = (e.u16(), e.u16()) else {
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            break;
        };
        let Some(data) = e.take(len as usize) else {
            note_extension(&mut sh.extensions, &mut grease, ty, anomaly);
            anomaly(TlsAnomaly::ExtensionsLengthMismatch);
            break;
        };
        note_extension(&mut sh.extensions, &mut grease, ty, anomaly);
        server_extension(&mut sh, ty, data, anomaly);
    }
    if grease {
        anomaly(TlsAnomaly::ServerChoseGrease);
    }
    if let Some(v) = sh.selected_version {
        // RFC 8446 4.1.3: a TLS 1.3 ServerHello keeps legacy_version at 0x0303, and a server
        // negotiating an older version must not send supported_versions at all.
        if v < version::TLS13 && !is_tls13_draft(v) || legacy_version != version::TLS12 {
            anomaly(TlsAnomaly::ServerVersionInconsistent);
        }
    }
    Some(sh)
}

fn server_extension(
    sh: &mut ServerHello,
    ty: u16,
    data: &[u8],
    anomaly: &mut impl FnMut(TlsAnomaly),
) {
    let bad =
        |anomaly: &mut dyn FnMut(TlsAnomaly)| anomaly(TlsAnomaly::ExtensionBodyInvalid { ext: ty });
    let mut r = Rd::new(data);
    match ty {
        ext::SUPPORTED_VERSIONS => {
            let Some(v) = r.u16() else {
                bad(anomaly);
                return;
            };
            if r.remaining() != 0 {
                bad(anomaly);
            }
            if !is_known_version(v) && !is_tls13_draft(v) {
                anomaly(TlsAnomaly::SupportedVersionUnknown);
            }
            sh.selected_version = Some(v);
        }
        ext::ALPN => {
            // The server names exactly one protocol (RFC 7301 3.1).
            let list = r.vec16();
            let mut l = Rd::new(list.unwrap_or(&[]));
            match (list, l.vec8()) {
                (Some(_), Some(proto)) if !proto.is_empty() => {
                    sh.alpn = Some(InlineStr::from_bytes_escaped(proto));
                    if l.remaining() != 0 || r.remaining() != 0 {
                        bad(anomaly);
                    }
                }
                _ => bad(anomaly),
            }
        }
        // The server acknowledges SNI with an empty extension.
        ext::SERVER_NAME if !data.is_empty() => bad(anomaly),
        _ => {}
    }
}

/// Parses an SSLv2-format ClientHello (RFC 5246 appendix E.2, RFC 6101 appendix E) from the
/// record body after the 2-byte length header. The first byte is the message type (1).
pub fn parse_sslv2_client_hello(
    msg: &[u8],
    anomaly: &mut impl FnMut(TlsAnomaly),
) -> Option<ClientHello> {
    let mut r = Rd::new(msg);
    let fields = (|| {
        let ty = r.u8()?;
        let v = r.u16()?;
        let spec_len = r.u16()? as usize;
        let sid_len = r.u16()? as usize;
        let chal_len = r.u16()? as usize;
        Some((ty, v, spec_len, sid_len, chal_len))
    })();
    let Some((1, legacy_version, spec_len, sid_len, chal_len)) = fields else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    let (Some(specs), Some(sid), Some(challenge)) =
        (r.take(spec_len), r.take(sid_len), r.take(chal_len))
    else {
        anomaly(TlsAnomaly::HelloTruncated);
        return None;
    };
    let mut ch = ClientHello {
        record_version: version::SSL2,
        legacy_version,
        sslv2_format: true,
        body_len: msg.len() as u32,
        session_id_len: sid.len().min(255) as u8,
        ..ClientHello::default()
    };
    if legacy_version != version::SSL2 && !is_known_version(legacy_version) {
        anomaly(TlsAnomaly::HelloVersionInvalid);
    }
    if r.remaining() != 0 {
        anomaly(TlsAnomaly::HelloTrailingBytes);
    }
    if spec_len == 0 {
        anomaly(TlsAnomaly::CipherListEmpty);
    }
    if spec_len % 3 != 0 {
        anomaly(TlsAnomaly::CipherListOddLength);
    }
    for spec in specs.chunks_exact(3) {
        if let [0, hi, lo] = spec {
            let c = u16::from_be_bytes([*hi, *lo]);
            ch.grease_seen |= is_grease(c);
            ch.ciphers.push(c);
        } else {
            ch.sslv2_only_specs = ch.sslv2_only_specs.saturating_add(1);
        }
    }
    // The challenge is right-aligned into the 32-byte random (RFC 5246 E.2).
    let take = challenge.len().min(32);
    if let (Some(dst), Some(src)) = (
        ch.random.get_mut(32 - take..),
        challenge.get(challenge.len() - take..),
    ) {
        dst.copy_from_slice(src);
    }
    ch.compression.push(0);
    Some(ch)
}
