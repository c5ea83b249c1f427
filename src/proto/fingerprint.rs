//! TLS client and server fingerprints computed from parsed hellos, without heap allocation.
//!
//! * JA3 / JA3S as tshark 4.0 prints them (`tls.handshake.ja3_full`, `tls.handshake.ja3s_full`):
//!   decimal values, lists joined with `-`, fields with `,`; GREASE values (RFC 8701) dropped
//!   from ciphers, extensions and supported groups; the hash is the MD5 of the string in
//!   lowercase hex.
//! * JA3N: JA3 with the extension list sorted numerically, so that clients which shuffle
//!   their extensions (Chrome since v110) keep one value.
//! * JA4 (client), per FoxIO's `technical_details/JA4.md` (BSD-3-Clause method):
//!   `t` + version + `d`|`i` + cipher count + extension count + ALPN edge characters, then the
//!   truncated SHA-256 of the sorted cipher list and of the sorted extension list (without SNI
//!   and ALPN) followed by the signature algorithms in wire order.
//!
//! JA4S and the other JA4+ methods are not implemented: FoxIO licenses them separately.

use md5::{Digest, Md5};
use sha2::Sha256;

use crate::proto::memo::{HelloMemo, HelloPrints, ServerPrints, HELLO_KEY_CAP};
use crate::proto::tls::{
    ext, is_grease, version, ClientHello, ServerHello, MAX_CIPHERS, MAX_EXTENSIONS, MAX_GROUPS,
    MAX_POINT_FORMATS, MAX_SIG_ALGS,
};
use crate::text::InlineStr;

/// Lowercase hex MD5.
pub type Md5Hex = InlineStr<32>;

pub use crate::proto::memo::{Ja3, JA3_TEXT_LEN};

/// A JA4 fingerprint, e.g. `t13d1516h2_8daaf6152771_e5627efa2ab1` (36 characters).
pub type Ja4 = InlineStr<36>;
/// JA4S text: `t1205h2_c02f_8763c20bf469`.
pub type Ja4s = InlineStr<25>;

/// Capacity of the raw JA4 string (`ja4_r` / `ja4_ro`).
pub const JA4_RAW_LEN: usize = 2048;

const HEX_DIGITS: &[u8; 16] = b"0123456789abcdef";

/// Appends `digits` (ASCII digits a writer below produced). The number writers skip
/// `core::fmt`: its formatter and padding machinery cost more than hashing the text (JA3 was
/// a tenth of the worker's time on a real traffic mix); and the bytes go in without a UTF-8
/// check.
fn push_digits<const N: usize>(out: &mut InlineStr<N>, digits: &[u8]) {
    out.push_ascii(digits);
}

/// Appends `v` in decimal, as `{v}` would.
fn push_dec<const N: usize>(out: &mut InlineStr<N>, v: u16) {
    let mut buf = [0u8; 5];
    let mut rest = v;
    let mut used = 0;
    for slot in buf.iter_mut().rev() {
        *slot = b'0' + (rest % 10) as u8;
        rest /= 10;
        used += 1;
        if rest == 0 {
            break;
        }
    }
    push_digits(out, buf.get(buf.len() - used..).unwrap_or(&[]));
}

/// Appends `v` as four lowercase hex digits, as `{v:04x}` would.
fn push_hex4<const N: usize>(out: &mut InlineStr<N>, v: u16) {
    let nibble = |shift: u16| HEX_DIGITS[usize::from((v >> shift) & 0x0f)];
    push_digits(out, &[nibble(12), nibble(8), nibble(4), nibble(0)]);
}

/// Appends a number below 100 as two decimal digits, as `{v:02}` would.
fn push_dec2<const N: usize>(out: &mut InlineStr<N>, v: usize) {
    let v = v.min(99) as u8;
    push_digits(out, &[b'0' + v / 10, b'0' + v % 10]);
}

fn hex_lower<const N: usize>(bytes: &[u8]) -> InlineStr<N> {
    let mut s = InlineStr::new();
    for b in bytes {
        push_digits(
            &mut s,
            &[
                HEX_DIGITS[usize::from(b >> 4)],
                HEX_DIGITS[usize::from(b & 0x0f)],
            ],
        );
    }
    s
}

fn md5_hex(text: &[u8]) -> Md5Hex {
    hex_lower(&Md5::digest(text))
}

fn push_dec_list<const N: usize>(out: &mut InlineStr<N>, items: impl Iterator<Item = u16>) {
    for (i, v) in items.enumerate() {
        if i > 0 {
            out.push_char('-');
        }
        push_dec(out, v);
    }
}

fn finish(text: InlineStr<JA3_TEXT_LEN>, overflow: bool) -> Ja3 {
    Ja3 {
        md5: md5_hex(text.as_bytes()),
        incomplete: overflow || text.truncated(),
        text,
    }
}

fn ja3_with(ch: &ClientHello, sort_extensions: bool) -> Ja3 {
    let mut t = InlineStr::<JA3_TEXT_LEN>::new();
    push_dec(&mut t, ch.legacy_version);
    t.push_char(',');
    push_dec_list(&mut t, non_grease(ch.ciphers.as_slice()));
    t.push_char(',');
    if ch.extensions_length_cut {
        return finish(t, ch.any_overflow());
    }
    if sort_extensions {
        let mut exts = [0u16; crate::proto::tls::MAX_EXTENSIONS];
        let n = copy_non_grease(ch.extensions.as_slice(), &mut exts);
        let exts = exts.get_mut(..n).unwrap_or(&mut []);
        exts.sort_unstable();
        push_dec_list(&mut t, exts.iter().copied());
    } else {
        push_dec_list(&mut t, non_grease(ch.extensions.as_slice()));
    }
    t.push_char(',');
    push_dec_list(&mut t, non_grease(ch.groups.as_slice()));
    t.push_char(',');
    push_dec_list(
        &mut t,
        ch.point_formats.as_slice().iter().map(|f| *f as u16),
    );
    finish(t, ch.any_overflow())
}

/// JA3, JA3N and JA4 of a ClientHello, from `memo` when a hello identical in everything they
/// read was fingerprinted before.
pub fn client_prints<'m>(ch: &ClientHello, memo: &'m mut HelloMemo) -> &'m HelloPrints {
    let mut key = HelloKey::new();
    key.fill(ch);
    key.lookup(memo, || HelloPrints {
        ja3: ja3(ch),
        ja3n_md5: ja3n(ch).md5,
        ja4: ja4(ch),
    })
}

/// JA3S and JA4S of a ServerHello, from `memo` when a hello identical in everything they read
/// was fingerprinted before.
pub fn server_prints<'m>(
    sh: &ServerHello,
    memo: &'m mut HelloMemo<ServerPrints>,
) -> &'m ServerPrints {
    let mut key = HelloKey::new();
    key.fill_server(sh);
    key.lookup(memo, || ServerPrints {
        ja3s: ja3s(sh),
        ja4s: ja4s(sh),
    })
}

// Every list at full capacity, each after its length, and the four scalars.
const _: () = assert!(
    4 + 5 + MAX_CIPHERS + MAX_EXTENSIONS + MAX_GROUPS + MAX_POINT_FORMATS + MAX_SIG_ALGS
        <= HELLO_KEY_CAP
);

/// Everything a hello's fingerprints read of it: the key of its memo entry.
struct HelloKey {
    words: [u16; HELLO_KEY_CAP],
    len: usize,
}

impl HelloKey {
    fn new() -> HelloKey {
        HelloKey {
            words: [0; HELLO_KEY_CAP],
            len: 0,
        }
    }

    /// The prints remembered under this key, or `compute`'s. A key longer than the capacity
    /// (its `len` kept counting) is not looked up: the prints are computed and not remembered.
    fn lookup<'m, P: Copy>(
        &self,
        memo: &'m mut HelloMemo<P>,
        compute: impl FnOnce() -> P,
    ) -> &'m P {
        match self.words.get(..self.len) {
            Some(words) => memo.get_or_compute(words, compute),
            None => memo.keep(compute()),
        }
    }

    /// What JA3, JA3N and JA4 read of a ClientHello, GREASE values left out as they leave
    /// them out.
    fn fill(&mut self, ch: &ClientHello) {
        let flags = u16::from(ch.has_sni)
            | u16::from(ch.extensions_length_cut) << 1
            | u16::from(ch.any_overflow()) << 2
            | u16::from(ch.ciphers.overflowed()) << 3
            | u16::from(ch.extensions.overflowed()) << 4
            | u16::from(ch.alpn_first_len == 0) << 5;
        self.push(ch.legacy_version);
        self.push(ch.max_offered_version());
        self.push(flags);
        self.push(u16::from_be_bytes(ch.alpn_first_edges));
        self.list(non_grease(ch.ciphers.as_slice()));
        self.list(non_grease(ch.extensions.as_slice()));
        self.list(non_grease(ch.groups.as_slice()));
        self.list(ch.point_formats.as_slice().iter().map(|f| u16::from(*f)));
        self.list(non_grease(ch.sig_algs.as_slice()));
    }

    /// What JA3S and JA4S read of a ServerHello.
    fn fill_server(&mut self, sh: &ServerHello) {
        // JA4S reads the chosen ALPN's first and last characters only (see `ja4s`).
        let alpn = match sh.alpn.as_ref().map(|a| a.as_str().as_bytes()) {
            Some([first, .., last]) => [2, u16::from(*first), u16::from(*last)],
            Some([only]) => [1, u16::from(*only), 0],
            _ => [0; 3],
        };
        self.push(sh.legacy_version);
        self.push(sh.negotiated_version());
        self.push(sh.cipher);
        self.push(u16::from(sh.extensions.overflowed()));
        for w in alpn {
            self.push(w);
        }
        // As sent: JA4S counts and hashes GREASE values too.
        self.list(sh.extensions.as_slice().iter().copied());
    }

    fn push(&mut self, w: u16) {
        if let Some(slot) = self.words.get_mut(self.len) {
            *slot = w;
        }
        // Past the capacity `len` keeps counting, so the key is not used (see `lookup`).
        self.len += 1;
    }

    fn list(&mut self, items: impl Iterator<Item = u16>) {
        let at = self.len;
        self.push(0);
        let mut n = 0u16;
        for v in items {
            self.push(v);
            n = n.saturating_add(1);
        }
        if let Some(slot) = self.words.get_mut(at) {
            *slot = n;
        }
    }
}

/// JA3 of a ClientHello, as tshark 4.0 computes it.
pub fn ja3(ch: &ClientHello) -> Ja3 {
    ja3_with(ch, false)
}

/// JA3 with the extensions sorted numerically (stable across extension shuffling).
pub fn ja3n(ch: &ClientHello) -> Ja3 {
    ja3_with(ch, true)
}

/// JA3S of a ServerHello, as tshark 4.0 computes it.
pub fn ja3s(sh: &ServerHello) -> Ja3 {
    let mut t = InlineStr::<JA3_TEXT_LEN>::new();
    push_dec(&mut t, sh.legacy_version);
    t.push_char(',');
    push_dec(&mut t, sh.cipher);
    t.push_char(',');
    push_dec_list(&mut t, non_grease(sh.extensions.as_slice()));
    finish(t, sh.extensions.overflowed())
}

fn non_grease(items: &[u16]) -> impl Iterator<Item = u16> + '_ {
    items.iter().copied().filter(|v| !is_grease(*v))
}

fn copy_non_grease(items: &[u16], out: &mut [u16]) -> usize {
    let mut n = 0;
    for (slot, v) in out.iter_mut().zip(non_grease(items)) {
        *slot = v;
        n += 1;
    }
    n
}

/// The two JA4 version characters for a wire version.
fn ja4_version(v: u16) -> &'static str {
    match v {
        version::TLS13 => "13",
        version::TLS12 => "12",
        version::TLS11 => "11",
        version::TLS10 => "10",
        version::SSL3 => "s3",
        version::SSL2 => "s2",
        0xfeff => "d1",
        0xfefd => "d2",
        0xfefc => "d3",
        _ => "00",
    }
}

fn alnum(b: u8) -> bool {
    b.is_ascii_alphanumeric()
}

/// The JA4 "a" part: `t13d1516h2`.
fn ja4_a(ch: &ClientHello) -> InlineStr<10> {
    let mut a = InlineStr::<10>::new();
    a.push_char('t');
    a.push_str(ja4_version(ch.max_offered_version()));
    a.push_char(if ch.has_sni { 'd' } else { 'i' });
    let count = |items: &[u16], overflow: bool| {
        if overflow {
            99
        } else {
            non_grease(items).count().min(99)
        }
    };
    push_dec2(
        &mut a,
        count(ch.ciphers.as_slice(), ch.ciphers.overflowed()),
    );
    push_dec2(
        &mut a,
        count(ch.extensions.as_slice(), ch.extensions.overflowed()),
    );
    if ch.alpn_first_len == 0 {
        a.push_str("00");
    } else {
        let [first, last] = ch.alpn_first_edges;
        push_alpn_edges(&mut a, first, last);
    }
    a
}

/// JA4's two ALPN characters: the id's first and last, or, when either is not alphanumeric,
/// the first's high nibble and the last's low nibble in hex.
fn push_alpn_edges<const N: usize>(out: &mut InlineStr<N>, first: u8, last: u8) {
    if alnum(first) && alnum(last) {
        out.push_char(first as char);
        out.push_char(last as char);
    } else {
        out.push_char(HEX_DIGITS[(first >> 4) as usize] as char);
        out.push_char(HEX_DIGITS[(last & 0x0f) as usize] as char);
    }
}

fn push_hex_list<const N: usize>(out: &mut InlineStr<N>, items: &[u16]) {
    for (i, v) in items.iter().enumerate() {
        if i > 0 {
            out.push_char(',');
        }
        push_hex4(out, *v);
    }
}

/// The sorted, GREASE-free cipher list and extension list (SNI and ALPN removed unless
/// `original` is set, in which case wire order is kept and nothing is removed).
struct Ja4Lists {
    ciphers: [u16; crate::proto::tls::MAX_CIPHERS],
    n_ciphers: usize,
    exts: [u16; crate::proto::tls::MAX_EXTENSIONS],
    n_exts: usize,
    sigs: [u16; crate::proto::tls::MAX_SIG_ALGS],
    n_sigs: usize,
}

impl Ja4Lists {
    fn new(ch: &ClientHello, original: bool) -> Self {
        let mut l = Ja4Lists {
            ciphers: [0; crate::proto::tls::MAX_CIPHERS],
            n_ciphers: 0,
            exts: [0; crate::proto::tls::MAX_EXTENSIONS],
            n_exts: 0,
            sigs: [0; crate::proto::tls::MAX_SIG_ALGS],
            n_sigs: 0,
        };
        l.n_ciphers = copy_non_grease(ch.ciphers.as_slice(), &mut l.ciphers);
        let kept = ch
            .extensions
            .as_slice()
            .iter()
            .copied()
            .filter(|e| !is_grease(*e))
            .filter(|e| original || (*e != ext::SERVER_NAME && *e != ext::ALPN));
        for (slot, e) in l.exts.iter_mut().zip(kept) {
            *slot = e;
            l.n_exts += 1;
        }
        l.n_sigs = copy_non_grease(ch.sig_algs.as_slice(), &mut l.sigs);
        if !original {
            l.ciphers
                .get_mut(..l.n_ciphers)
                .unwrap_or(&mut [])
                .sort_unstable();
            l.exts
                .get_mut(..l.n_exts)
                .unwrap_or(&mut [])
                .sort_unstable();
        }
        l
    }

    fn ciphers(&self) -> &[u16] {
        self.ciphers.get(..self.n_ciphers).unwrap_or(&[])
    }
    fn exts(&self) -> &[u16] {
        self.exts.get(..self.n_exts).unwrap_or(&[])
    }
    fn sigs(&self) -> &[u16] {
        self.sigs.get(..self.n_sigs).unwrap_or(&[])
    }

    fn cipher_text(&self) -> InlineStr<JA4_RAW_LEN> {
        let mut t = InlineStr::new();
        push_hex_list(&mut t, self.ciphers());
        t
    }

    fn ext_text(&self) -> InlineStr<JA4_RAW_LEN> {
        let mut t = InlineStr::new();
        push_hex_list(&mut t, self.exts());
        if !self.sigs().is_empty() {
            t.push_char('_');
            push_hex_list(&mut t, self.sigs());
        }
        t
    }
}

fn sha256_12(text: &[u8]) -> InlineStr<12> {
    let digest = Sha256::digest(text);
    hex_lower(digest.get(..6).unwrap_or(&[]))
}

/// JA4 of a ClientHello (TLS over TCP).
pub fn ja4(ch: &ClientHello) -> Ja4 {
    let lists = Ja4Lists::new(ch, false);
    let mut out = Ja4::new();
    out.push_str(ja4_a(ch).as_str());
    out.push_char('_');
    if lists.ciphers().is_empty() {
        out.push_str("000000000000");
    } else {
        out.push_str(sha256_12(lists.cipher_text().as_bytes()).as_str());
    }
    out.push_char('_');
    if lists.exts().is_empty() {
        out.push_str("000000000000");
    } else {
        out.push_str(sha256_12(lists.ext_text().as_bytes()).as_str());
    }
    out
}

/// JA4S of a ServerHello (TLS over TCP), as ja4plus computes it: `t`, the chosen version
/// (supported_versions when present), the extension count, the chosen ALPN's first and last
/// characters, the cipher, and the first 12 hex digits of SHA-256 over the extensions in the
/// order the server sent them.
pub fn ja4s(sh: &ServerHello) -> Ja4s {
    let mut out = Ja4s::new();
    out.push_char('t');
    out.push_str(ja4_version(sh.negotiated_version()));
    let exts = sh.extensions.as_slice();
    let count = if sh.extensions.overflowed() {
        99
    } else {
        exts.len().min(99)
    };
    push_dec2(&mut out, count);
    // The chosen id as logged (escaped), so an unprintable edge reads as its escape.
    match sh.alpn.as_ref().map(|a| a.as_str().as_bytes()) {
        Some([first, .., last]) => push_alpn_edges(&mut out, *first, *last),
        Some([only]) => push_alpn_edges(&mut out, *only, *only),
        _ => out.push_str("00"),
    }
    out.push_char('_');
    push_hex4(&mut out, sh.cipher);
    out.push_char('_');
    if exts.is_empty() {
        out.push_str("000000000000");
    } else {
        let mut text = InlineStr::<JA4_RAW_LEN>::new();
        push_hex_list(&mut text, exts);
        out.push_str(sha256_12(text.as_bytes()).as_str());
    }
    out
}

/// Raw JA4 (`ja4_r`, sorted; or `ja4_ro` with `original`, wire order, SNI and ALPN kept).
pub fn ja4_raw(ch: &ClientHello, original: bool) -> InlineStr<JA4_RAW_LEN> {
    let lists = Ja4Lists::new(ch, original);
    let mut out = InlineStr::new();
    out.push_str(ja4_a(ch).as_str());
    out.push_char('_');
    out.push_str(lists.cipher_text().as_str());
    out.push_char('_');
    out.push_str(lists.ext_text().as_str());
    out
}

/// How a ClientHello departs from the hellos current browsers send: one bit per trait every
/// Chromium (Chrome, Edge, Brave, Opera), Firefox and Safari hello shares. It is the one model
/// of a browser hello in unmask; a hello with no bit set *could* be a browser (a client copying a
/// browser's hello byte for byte passes), one with a bit set is not one.
///
/// The traits, from the browsers' own stacks (BoringSSL, NSS, Apple's):
///
/// - Chromium and Safari put GREASE values (RFC 8701) in their cipher and extension lists;
///   Firefox never does, but NSS sends record_size_limit (RFC 8449), which neither OpenSSL,
///   Go, rustls, BoringSSL's defaults nor Windows' Schannel send. A hello with neither is no
///   browser's.
/// - Every browser offers ALPN with h2 or http/1.1 (WebSocket connections offer http/1.1
///   alone).
/// - Every browser that speaks ECH or ESNI offers TLS 1.3 with all three TLS 1.3 suites
///   (0x1301-0x1303), and between 10 and 32 suites in all (Chrome 15, Firefox 17, Safari 20).
/// - No browser offers NULL, export, anonymous or RC4 suites any more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BrowserShape(u8);

impl BrowserShape {
    pub const NO_GREASE_NOR_RECORD_SIZE_LIMIT: Self = Self(1 << 0);
    pub const NO_WEB_ALPN: Self = Self(1 << 1);
    pub const NO_TLS13: Self = Self(1 << 2);
    pub const MISSING_TLS13_SUITES: Self = Self(1 << 3);
    pub const CIPHER_COUNT: Self = Self(1 << 4);
    pub const OBSOLETE_SUITES: Self = Self(1 << 5);

    const NAMES: [(BrowserShape, &'static str); 6] = [
        (
            Self::NO_GREASE_NOR_RECORD_SIZE_LIMIT,
            "no_grease_nor_record_size_limit",
        ),
        (Self::NO_WEB_ALPN, "no_h2_or_http1.1_alpn"),
        (Self::NO_TLS13, "no_tls13"),
        (Self::MISSING_TLS13_SUITES, "missing_tls13_suites"),
        (Self::CIPHER_COUNT, "cipher_count_outside_10_to_32"),
        (Self::OBSOLETE_SUITES, "null_export_anon_or_rc4_suites"),
    ];

    /// How many traits there are.
    pub const TRAITS: usize = Self::NAMES.len();

    /// Fewest and most cipher suites (GREASE aside) a browser hello offers.
    pub const MIN_CIPHERS: usize = 10;
    pub const MAX_CIPHERS: usize = 32;

    /// Judges a TLS-format ClientHello.
    pub fn of(ch: &ClientHello) -> BrowserShape {
        let mut b = BrowserShape::default();
        let mut set = |bit: BrowserShape, on: bool| {
            if on {
                b.0 |= bit.0;
            }
        };
        set(
            Self::NO_GREASE_NOR_RECORD_SIZE_LIMIT,
            !ch.grease_seen && !ch.has_extension(RECORD_SIZE_LIMIT),
        );
        set(
            Self::NO_WEB_ALPN,
            !ch.alpn
                .as_slice()
                .iter()
                .any(|a| a.as_str() == "h2" || a.as_str() == "http/1.1"),
        );
        set(Self::NO_TLS13, !ch.offers_tls13());
        set(
            Self::MISSING_TLS13_SUITES,
            ![0x1301, 0x1302, 0x1303]
                .iter()
                .all(|c| ch.ciphers.contains(c)),
        );
        let count = if ch.ciphers.overflowed() {
            ch.ciphers.total()
        } else {
            non_grease(ch.ciphers.as_slice()).count()
        };
        set(
            Self::CIPHER_COUNT,
            !(Self::MIN_CIPHERS..=Self::MAX_CIPHERS).contains(&count),
        );
        set(
            Self::OBSOLETE_SUITES,
            ch.ciphers.as_slice().iter().any(|c| obsolete_suite(*c)),
        );
        b
    }

    /// No trait contradicts a browser.
    pub fn browser_like(self) -> bool {
        self.0 == 0
    }

    pub fn count(self) -> u32 {
        self.0.count_ones()
    }

    pub fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }

    /// Names of the traits that contradict a browser.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// RFC 8449 record_size_limit, sent by NSS (Firefox).
const RECORD_SIZE_LIMIT: u16 = 0x001c;

/// NULL, export, anonymous and RC4 suites (RFC 5246 / 4492 / 8422 registry ranges no browser
/// has offered since 2016).
fn obsolete_suite(c: u16) -> bool {
    matches!(
        c,
        // NULL, export, RC4, IDEA, DES (0x000a, 3DES, is still in Safari's and old
        // Firefox's lists)
        0x0000..=0x0009 | 0x000b
            | 0x000e | 0x0011 | 0x0014 // export DH
            | 0x0017..=0x001b // anonymous DH, RC4, export
            | 0x002c..=0x002e // PSK NULL
            | 0x0034 | 0x003a | 0x003b | 0x006c | 0x006d // anonymous, NULL SHA-256
            | 0xc001 | 0xc002 | 0xc006 | 0xc007 | 0xc00b | 0xc00c | 0xc010 | 0xc011 // ECDH(E) NULL/RC4
            | 0xc015..=0xc019 // ECDH anonymous
    )
}

#[cfg(test)]
mod tests;
