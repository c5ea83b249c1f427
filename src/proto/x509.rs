//! X.509 certificates from TLS Certificate messages: the fields the checks and the EVE log
//! read, in a fixed-size [`CertInfo`], and a host-name matcher with RFC 6125 wildcard rules.
//!
//! Parsing uses x509-parser, which allocates while it decodes (names, extension lists); the
//! result is copied into fixed-size fields so nothing of it outlives the call. Text follows
//! Suricata's EVE `tls` object: DNs as x509-parser prints them (`C=US, O=Let's Encrypt, CN=R3`),
//! the serial as uppercase hex pairs joined by `:`, the fingerprint as the SHA-1 of the DER in
//! lowercase hex pairs joined by `:`.
//!
//! `self_signed` is decided structurally: the issuer DN equals the subject DN and, when both
//! key identifiers are present, the authority key identifier equals the subject key
//! identifier. The signature itself is not verified: x509-parser's `verify` feature pulls in
//! `ring`, a large native dependency, for a signal that the DN comparison already gives.

use std::fmt::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use sha1::{Digest, Sha1};
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::prelude::{FromDer, X509Certificate, X509Error};
use x509_parser::public_key::PublicKey;

use crate::proto::fixed_list::FixedList;
use crate::text::InlineStr;

/// Capacity of a printed distinguished name.
pub const DN_TEXT_LEN: usize = 512;
/// Capacity of one SAN DNS name or CN (host names are at most 253 characters).
pub const NAME_TEXT_LEN: usize = 256;
/// SAN DNS names kept; real leaf certificates rarely carry more (CDN certificates can).
pub const MAX_SAN_DNS: usize = 32;
pub const MAX_SAN_IPS: usize = 8;
pub const MAX_ISSUER_ORGS: usize = 4;

/// Why a certificate could not be read. Small and `Copy`: this runs on hostile input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CertError {
    /// No bytes at all.
    Empty,
    /// The DER ends before the structure it announces (a length runs past the data).
    Truncated,
    /// The bytes are not valid DER at the outer level.
    InvalidDer,
    InvalidVersion,
    InvalidSerial,
    InvalidAlgorithm,
    InvalidName,
    InvalidDate,
    InvalidPublicKey,
    InvalidExtensions,
    /// Bytes after the end of the certificate.
    TrailingBytes,
    /// Some other part of the structure is invalid.
    Invalid,
}

impl CertError {
    /// Stable short name for EVE and counters.
    pub fn name(self) -> &'static str {
        match self {
            CertError::Empty => "empty",
            CertError::Truncated => "truncated",
            CertError::InvalidDer => "invalid_der",
            CertError::InvalidVersion => "invalid_version",
            CertError::InvalidSerial => "invalid_serial",
            CertError::InvalidAlgorithm => "invalid_algorithm",
            CertError::InvalidName => "invalid_name",
            CertError::InvalidDate => "invalid_date",
            CertError::InvalidPublicKey => "invalid_public_key",
            CertError::InvalidExtensions => "invalid_extensions",
            CertError::TrailingBytes => "trailing_bytes",
            CertError::Invalid => "invalid",
        }
    }

    fn from_x509(e: &x509_parser::nom::Err<X509Error>) -> CertError {
        use x509_parser::der_parser::error::BerError;
        use x509_parser::nom::error::ErrorKind;
        use x509_parser::nom::Err;
        match e {
            Err::Incomplete(_) => CertError::Truncated,
            Err::Error(e) | Err::Failure(e) => match e {
                X509Error::InvalidVersion => CertError::InvalidVersion,
                X509Error::InvalidSerial => CertError::InvalidSerial,
                X509Error::InvalidAlgorithmIdentifier => CertError::InvalidAlgorithm,
                X509Error::InvalidX509Name => CertError::InvalidName,
                X509Error::InvalidDate => CertError::InvalidDate,
                X509Error::InvalidSPKI => CertError::InvalidPublicKey,
                X509Error::InvalidExtensions | X509Error::DuplicateExtensions => {
                    CertError::InvalidExtensions
                }
                // x509-parser reports a length that runs past the input as nom's Eof.
                X509Error::Der(BerError::Incomplete(_)) | X509Error::NomError(ErrorKind::Eof) => {
                    CertError::Truncated
                }
                X509Error::NomError(_) => CertError::InvalidDer,
                X509Error::Der(_) => CertError::InvalidDer,
                _ => CertError::Invalid,
            },
        }
    }
}

impl std::fmt::Display for CertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// Public key algorithm of the subject.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyKind {
    #[default]
    Unknown,
    Rsa,
    Ec,
    Dsa,
    Other,
}

/// An IP address from subjectAltName (a `Default`-able wrapper for the fixed list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SanIp(pub IpAddr);

impl Default for SanIp {
    fn default() -> Self {
        SanIp(IpAddr::V4(Ipv4Addr::UNSPECIFIED))
    }
}

/// What unmask keeps of one certificate. Fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CertInfo {
    pub version: u8,
    pub subject: InlineStr<DN_TEXT_LEN>,
    pub issuer: InlineStr<DN_TEXT_LEN>,
    /// First commonName of the subject, if any.
    pub subject_cn: Option<InlineStr<NAME_TEXT_LEN>>,
    pub issuer_orgs: FixedList<InlineStr<NAME_TEXT_LEN>, MAX_ISSUER_ORGS>,
    pub san_dns: FixedList<InlineStr<NAME_TEXT_LEN>, MAX_SAN_DNS>,
    pub san_ips: FixedList<SanIp, MAX_SAN_IPS>,
    /// The certificate has a subjectAltName extension (then the CN is not a host name).
    pub has_san: bool,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    /// Raw serial bytes as uppercase hex pairs joined by ':' (Suricata's `serial`).
    pub serial: InlineStr<128>,
    /// SHA-1 of the DER.
    pub sha1: [u8; 20],
    /// Issuer DN equals subject DN (byte for byte).
    pub issuer_is_subject: bool,
    /// Authority key id equals subject key id; `None` when either is absent.
    pub aki_matches_ski: Option<bool>,
    /// See the module docs: DN equality, contradicted by differing key identifiers.
    pub self_signed: bool,
    pub is_ca: bool,
    pub key_kind: KeyKind,
    /// Key size in bits (RSA modulus, EC field), 0 when unknown.
    pub key_bits: u32,
    /// The host given to [`CertInfo::from_der_for_host`], matched against every name in the
    /// certificate (not only the ones kept in the fixed lists).
    pub host_match: Option<NameMatch>,
}

impl CertInfo {
    /// Parses one DER certificate. Trailing bytes after the certificate are an error: a
    /// Certificate message frames each certificate exactly.
    pub fn from_der(der: &[u8]) -> Result<CertInfo, CertError> {
        Self::from_der_for_host(der, None)
    }

    /// Like [`CertInfo::from_der`], and when `host` (the SNI) is given, matches it against all
    /// the certificate's names while they are at hand (see [`match_host`]); the result is in
    /// `host_match`. Certificates of CDNs carry hundreds of names, more than the fixed lists
    /// keep.
    pub fn from_der_for_host(der: &[u8], host: Option<&str>) -> Result<CertInfo, CertError> {
        let cert = parse_der(der)?;
        Ok(Self::from_parsed(&cert, &sha1_of(der), host))
    }

    /// `sha1` is the DER's SHA-1 (the caller may have it already).
    fn from_parsed(cert: &X509Certificate<'_>, sha1: &[u8; 20], host: Option<&str>) -> CertInfo {
        let tbs = &cert.tbs_certificate;
        let mut info = CertInfo {
            version: (tbs.version.0.min(254) + 1) as u8,
            subject: InlineStr::new(),
            issuer: InlineStr::new(),
            subject_cn: None,
            issuer_orgs: FixedList::default(),
            san_dns: FixedList::default(),
            san_ips: FixedList::default(),
            has_san: false,
            not_before: tbs.validity.not_before.timestamp(),
            not_after: tbs.validity.not_after.timestamp(),
            serial: InlineStr::new(),
            sha1: *sha1,
            issuer_is_subject: tbs.issuer.as_raw() == tbs.subject.as_raw(),
            aki_matches_ski: None,
            self_signed: false,
            is_ca: false,
            key_kind: KeyKind::Unknown,
            key_bits: 0,
            host_match: None,
        };
        let _ = write!(info.subject, "{}", tbs.subject);
        let _ = write!(info.issuer, "{}", tbs.issuer);
        info.subject_cn = tbs
            .subject
            .iter_common_name()
            .next()
            .map(|cn| match cn.as_str() {
                Ok(s) => InlineStr::from_str_lossy(s),
                Err(_) => InlineStr::from_bytes_escaped(cn.as_slice()),
            });
        for org in tbs.issuer.iter_organization() {
            info.issuer_orgs.push(match org.as_str() {
                Ok(s) => InlineStr::from_str_lossy(s),
                Err(_) => InlineStr::from_bytes_escaped(org.as_slice()),
            });
        }
        for (i, b) in tbs.raw_serial().iter().enumerate() {
            if i > 0 {
                info.serial.push_char(':');
            }
            let _ = write!(info.serial, "{b:02X}");
        }

        let mut aki: Option<&[u8]> = None;
        let mut ski: Option<&[u8]> = None;
        for ext in tbs.extensions() {
            match ext.parsed_extension() {
                ParsedExtension::SubjectAlternativeName(san) => {
                    info.has_san = true;
                    if let Some(h) = host {
                        let names = &san.general_names;
                        let dns = names.iter().filter_map(|n| match n {
                            GeneralName::DNSName(d) => Some(*d),
                            _ => None,
                        });
                        let ips = names.iter().filter_map(|n| match n {
                            GeneralName::IPAddress(b) => ip_from_san(b),
                            _ => None,
                        });
                        info.host_match = Some(match_host(h, true, dns, ips, None, false));
                    }
                    for name in &san.general_names {
                        match name {
                            GeneralName::DNSName(n) => info
                                .san_dns
                                .push(InlineStr::from_bytes_escaped(n.as_bytes())),
                            GeneralName::IPAddress(b) => {
                                if let Some(ip) = ip_from_san(b) {
                                    info.san_ips.push(SanIp(ip));
                                }
                            }
                            _ => {}
                        }
                    }
                }
                ParsedExtension::BasicConstraints(bc) => info.is_ca = bc.ca,
                ParsedExtension::AuthorityKeyIdentifier(a) => {
                    aki = a.key_identifier.as_ref().map(|k| k.0)
                }
                ParsedExtension::SubjectKeyIdentifier(k) => ski = Some(k.0),
                _ => {}
            }
        }
        info.aki_matches_ski = match (aki, ski) {
            (Some(a), Some(s)) => Some(a == s),
            _ => None,
        };
        info.self_signed = self_signed_rule(info.issuer_is_subject, info.aki_matches_ski);
        if let (Some(h), None) = (host, info.host_match) {
            // No subjectAltName: the first CN, read in full from the parsed name. A CN whose
            // string type does not decode is read as escaped bytes, as `subject_cn` shows it,
            // so the check judges the name the log shows (and `matches_host` agrees).
            let first = tbs.subject.iter_common_name().next();
            let undecoded = first
                .filter(|c| c.as_str().is_err())
                .map(|c| InlineStr::<NAME_TEXT_LEN>::from_bytes_escaped(c.as_slice()));
            let cn = first
                .and_then(|c| c.as_str().ok())
                .or(undecoded.as_ref().map(|c| c.as_str()));
            let cut = undecoded.is_some_and(|c| c.truncated());
            let m = match_host(h, false, std::iter::empty(), std::iter::empty(), cn, cut);
            info.host_match = Some(m);
        }

        match tbs.subject_pki.parsed() {
            Ok(PublicKey::RSA(rsa)) => {
                info.key_kind = KeyKind::Rsa;
                info.key_bits = significant_bits(rsa.modulus);
            }
            Ok(PublicKey::EC(ec)) => {
                info.key_kind = KeyKind::Ec;
                info.key_bits = ec.key_size().min(u32::MAX as usize) as u32;
            }
            Ok(PublicKey::DSA(y)) => {
                info.key_kind = KeyKind::Dsa;
                info.key_bits = significant_bits(y);
            }
            Ok(_) => info.key_kind = KeyKind::Other,
            Err(_) => {}
        }
        info
    }

    /// Days between notBefore and notAfter (negative when the dates are reversed).
    pub fn validity_days(&self) -> i64 {
        self.not_after.saturating_sub(self.not_before) / 86_400
    }

    /// Expired or not yet valid at `unix_secs`.
    pub fn is_valid_at(&self, unix_secs: i64) -> bool {
        self.not_before <= unix_secs && unix_secs <= self.not_after
    }

    /// The SHA-1 fingerprint as Suricata prints it (`aa:bb:...`).
    pub fn sha1_text(&self) -> InlineStr<59> {
        sha1_text(&self.sha1)
    }

    /// Does `host` (an SNI) name this certificate? See [`match_host`].
    pub fn matches_host(&self, host: &str) -> NameMatch {
        let cn = self.subject_cn.as_ref().map(|c| c.as_str());
        let mut truncated = self.san_dns.overflowed()
            || self.san_ips.overflowed()
            || self.san_dns.as_slice().iter().any(|n| n.truncated());
        let dns = self.san_dns.as_slice().iter().filter(|n| !n.truncated());
        let ips = self.san_ips.as_slice().iter().map(|i| i.0);
        if !self.has_san {
            truncated |= self.subject_cn.is_some_and(|c| c.truncated());
        }
        match_host(
            host,
            self.has_san,
            dns.map(|n| n.as_str()),
            ips,
            cn,
            truncated,
        )
    }
}

/// Decodes one DER certificate that must fill `der` exactly.
fn parse_der(der: &[u8]) -> Result<X509Certificate<'_>, CertError> {
    if der.is_empty() {
        return Err(CertError::Empty);
    }
    let (rest, cert) = X509Certificate::from_der(der).map_err(|e| CertError::from_x509(&e))?;
    if !rest.is_empty() {
        return Err(CertError::TrailingBytes);
    }
    Ok(cert)
}

/// Issuer DN equal to the subject DN, unless both key identifiers are present and differ (a
/// different key of a same-named CA issued it).
fn self_signed_rule(issuer_is_subject: bool, aki_matches_ski: Option<bool>) -> bool {
    issuer_is_subject && aki_matches_ski != Some(false)
}

/// SHA-1 of a certificate's DER.
pub fn sha1_of(der: &[u8]) -> [u8; 20] {
    Sha1::digest(der).into()
}

/// `aa:bb:...` lowercase, as Suricata's `tls.fingerprint`.
pub fn sha1_text(sha1: &[u8; 20]) -> InlineStr<59> {
    let mut s = InlineStr::new();
    for (i, b) in sha1.iter().enumerate() {
        if i > 0 {
            s.push_char(':');
        }
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn significant_bits(int_be: &[u8]) -> u32 {
    let mut bytes = int_be;
    while let [0, rest @ ..] = bytes {
        bytes = rest;
    }
    match bytes.first() {
        None => 0,
        Some(first) => {
            let len = u32::try_from(bytes.len()).unwrap_or(u32::MAX / 8);
            len.saturating_mul(8) - first.leading_zeros()
        }
    }
}

fn ip_from_san(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => <[u8; 4]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V4(Ipv4Addr::from(a))),
        16 => <[u8; 16]>::try_from(b)
            .ok()
            .map(|a| IpAddr::V6(Ipv6Addr::from(a))),
        _ => None,
    }
}

/// Outcome of matching a host name against a certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameMatch {
    Match,
    Mismatch,
    /// No kept name matched, but some names were cut or dropped, so a match cannot be ruled
    /// out.
    Unknown,
}

/// Matches `host` (an SNI as sent) against a certificate's names.
///
/// * An IP literal (`192.0.2.1`, `2001:db8::1`, also `[2001:db8::1]`) matches only the SAN IP
///   entries (RFC 6125 does not allow IPs in DNS names or the CN).
/// * Otherwise the SAN DNS names are tried; the subject CN only when there is no SAN
///   extension (RFC 6125 6.4.4).
/// * Comparison ignores ASCII case and one trailing dot.
/// * A wildcard is honoured only as the whole left-most label (`*.example.com`); it covers
///   exactly one non-empty label, never an IP, and needs at least two labels after it.
///   So `*.badssl.com` covers `a.badssl.com` but neither `badssl.com` nor
///   `wrong.host.badssl.com`.
pub fn match_host<'n>(
    host: &str,
    has_san: bool,
    san_dns: impl Iterator<Item = &'n str>,
    san_ips: impl Iterator<Item = IpAddr>,
    cn: Option<&str>,
    names_incomplete: bool,
) -> NameMatch {
    let host = host.strip_suffix('.').unwrap_or(host);
    let bracketless = host
        .strip_prefix('[')
        .and_then(|h| h.strip_suffix(']'))
        .unwrap_or(host);
    let found = if let Ok(ip) = bracketless.parse::<IpAddr>() {
        san_ips.into_iter().any(|s| s == ip)
    } else if has_san {
        san_dns
            .into_iter()
            .any(|pattern| dns_name_matches(pattern, host))
    } else {
        cn.is_some_and(|pattern| dns_name_matches(pattern, host))
    };
    if found {
        NameMatch::Match
    } else if names_incomplete {
        NameMatch::Unknown
    } else {
        NameMatch::Mismatch
    }
}

/// One presented name (`pattern`, possibly `*.x.y`) against one reference host name.
pub fn dns_name_matches(pattern: &str, host: &str) -> bool {
    let pattern = pattern.strip_suffix('.').unwrap_or(pattern);
    if pattern.is_empty() || host.is_empty() {
        return false;
    }
    let Some(suffix) = pattern.strip_prefix("*.") else {
        return !pattern.contains('*') && pattern.eq_ignore_ascii_case(host);
    };
    // The wildcard must be alone in its label, the rest literal, and leave at least two
    // labels (no `*.com`).
    if suffix.contains('*') || suffix.split('.').count() < 2 || suffix.split('.').any(str::is_empty)
    {
        return false;
    }
    let Some((first_label, host_rest)) = host.split_once('.') else {
        return false;
    };
    !first_label.is_empty() && host_rest.eq_ignore_ascii_case(suffix)
}

/// Certificates a worker remembers by default (see [`CertCache`]).
pub const CERT_CACHE_ENTRIES: usize = 128;
/// Entries per set: a certificate may sit in any of them, so a few popular servers whose
/// digests share a set do not evict each other.
const CERT_CACHE_WAYS: usize = 4;
/// Largest certificate remembered; larger ones (rare: CDN certificates with hundreds of names
/// run to 5-6 KB) are parsed every time.
pub const CERT_CACHE_DER_LEN: usize = 8 * 1024;
/// subjectAltName DNS names and IP addresses remembered per certificate for matching the SNI;
/// a certificate with more is parsed again for every flow that names a host.
const CERT_CACHE_NAMES: usize = 512;

/// Where a remembered certificate's host names are, as byte ranges of its DER (x509-parser
/// hands them out as slices of it), so a later flow's SNI is matched against exactly the
/// names a parse would give it.
#[derive(Debug, Clone, Copy)]
struct HostNames {
    /// Every name is in the ranges below: matching from them equals matching on a parse.
    exact: bool,
    has_san: bool,
    /// (offset, length) of each SAN DNS name, then of each SAN IP address (from `dns`).
    ranges: [(u16, u16); CERT_CACHE_NAMES],
    dns: u16,
    all: u16,
    /// The subject's first commonName (used when there is no subjectAltName).
    cn: Option<(u16, u16)>,
}

impl HostNames {
    const NONE: HostNames = HostNames {
        exact: false,
        has_san: false,
        ranges: [(0, 0); CERT_CACHE_NAMES],
        dns: 0,
        all: 0,
        cn: None,
    };

    /// The ranges of `cert`'s names inside `der`; `exact` is false when one is not a slice of
    /// `der`, does not fit, or the CN needed escaping (then a parse decides the match).
    fn of(cert: &X509Certificate<'_>, der: &[u8]) -> HostNames {
        let mut names = HostNames::NONE;
        let mut exact = true;
        let mut push = |names: &mut HostNames, bytes: &[u8]| match range_in(der, bytes) {
            Some(r) if usize::from(names.all) < CERT_CACHE_NAMES => {
                if let Some(slot) = names.ranges.get_mut(usize::from(names.all)) {
                    *slot = r;
                    names.all += 1;
                }
            }
            _ => exact = false,
        };
        let mut sans = 0;
        for ext in cert.tbs_certificate.extensions() {
            if let ParsedExtension::SubjectAlternativeName(san) = ext.parsed_extension() {
                sans += 1;
                names.has_san = true;
                for n in &san.general_names {
                    if let GeneralName::DNSName(d) = n {
                        push(&mut names, d.as_bytes());
                    }
                }
                names.dns = names.all;
                for n in &san.general_names {
                    if let GeneralName::IPAddress(b) = n {
                        push(&mut names, b);
                    }
                }
            }
        }
        if !names.has_san {
            if let Some(cn) = cert.tbs_certificate.subject.iter_common_name().next() {
                match cn.as_str().ok().and_then(|s| range_in(der, s.as_bytes())) {
                    Some(r) => names.cn = Some(r),
                    None => exact = false,
                }
            }
        }
        // More than one subjectAltName extension: a parse keeps the last one's match.
        names.exact = exact && sans <= 1;
        names
    }

    fn name(der: &[u8], (at, len): (u16, u16)) -> &[u8] {
        let at = usize::from(at);
        der.get(at..at + usize::from(len)).unwrap_or(&[])
    }

    /// `host` matched as [`CertInfo::from_der_for_host`] matches it. Only when `exact`.
    fn matches(&self, der: &[u8], host: &str) -> NameMatch {
        let text = |r| std::str::from_utf8(Self::name(der, r)).unwrap_or("");
        if self.has_san {
            let all = self.ranges.get(..usize::from(self.all)).unwrap_or(&[]);
            let (dns, ips) = all.split_at(usize::from(self.dns).min(all.len()));
            match_host(
                host,
                true,
                dns.iter().map(|r| text(*r)),
                ips.iter().filter_map(|r| ip_from_san(Self::name(der, *r))),
                None,
                false,
            )
        } else {
            let cn = self.cn.map(text);
            match_host(
                host,
                false,
                std::iter::empty(),
                std::iter::empty(),
                cn,
                false,
            )
        }
    }
}

/// Offset and length of `part` inside `whole`, when it is a slice of it.
fn range_in(whole: &[u8], part: &[u8]) -> Option<(u16, u16)> {
    let start = (part.as_ptr() as usize).checked_sub(whole.as_ptr() as usize)?;
    let end = start.checked_add(part.len())?;
    if end > whole.len() {
        return None;
    }
    Some((u16::try_from(start).ok()?, u16::try_from(part.len()).ok()?))
}

impl CachedCert {
    fn holds(&self, der: &[u8]) -> bool {
        self.info.is_some()
            && usize::from(self.der_len) == der.len()
            && self.der.get(..der.len()) == Some(der)
    }
}

/// One remembered certificate: its DER (compared in full, so a SHA-1 collision cannot pass
/// one certificate off as another), what a parse gave, and where its names are.
#[derive(Debug, Clone)]
struct CachedCert {
    sha1: [u8; 20],
    der_len: u16,
    /// Lookup count at the last use, for evicting the least recently used of a set.
    last_use: u64,
    der: [u8; CERT_CACHE_DER_LEN],
    info: Option<CertInfo>,
    names: HostNames,
}

/// Parsed certificates by SHA-1 of their DER, per worker: a popular server presents the same
/// certificate to every client, and parsing it (x509-parser decodes every name and extension,
/// and allocates while doing so) costs more than the rest of the handshake's inspection. Zeek
/// caches its X.509 results the same way. What depends on the flow is still decided per flow:
/// the SNI is matched against the remembered names on every lookup, and the validity dates are
/// left to the checks, against the flow's time. Bounded and allocated once, at start; the
/// least recently used entry of a set is replaced.
#[derive(Debug)]
pub struct CertCache {
    entries: Box<[CachedCert]>,
    /// Where a certificate that is not remembered (too large, or its names not all at hand
    /// for a host) is parsed to.
    spare: Box<Option<CertInfo>>,
    lookups: u64,
    hits: u64,
}

impl CertCache {
    /// A cache of `entries` certificates (rounded up to a whole set; 0 disables it).
    pub fn new(entries: usize) -> CertCache {
        let sets = entries.div_ceil(CERT_CACHE_WAYS);
        let empty = CachedCert {
            sha1: [0; 20],
            der_len: 0,
            last_use: 0,
            der: [0; CERT_CACHE_DER_LEN],
            info: None,
            names: HostNames::NONE,
        };
        CertCache {
            entries: vec![empty; sets * CERT_CACHE_WAYS].into_boxed_slice(),
            spare: Box::new(None),
            lookups: 0,
            hits: 0,
        }
    }

    /// Certificates found already parsed, of all looked up.
    pub fn hits(&self) -> (u64, u64) {
        (self.hits, self.lookups)
    }

    /// The first entry of the set `der` goes to: picked by its length and last bytes (the
    /// signature's, which differ between any two certificates), not by a digest, so that a
    /// remembered certificate's SHA-1 is found without computing it.
    fn set_of(der: &[u8], sets: usize) -> usize {
        let tail = der.get(der.len().saturating_sub(16)..).unwrap_or(&[]);
        let hash = tail
            .iter()
            .fold(0xcbf2_9ce4_8422_2325u64 ^ der.len() as u64, |h, b| {
                (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
            });
        (hash % sets.max(1) as u64) as usize
    }

    /// The SHA-1 of `der` as remembered, when this certificate was parsed before: the DER is
    /// compared in full, so the digest is its own.
    pub fn remembered_sha1(&self, der: &[u8]) -> Option<[u8; 20]> {
        let sets = self.entries.len() / CERT_CACHE_WAYS;
        if sets == 0 {
            return None;
        }
        let first = Self::set_of(der, sets) * CERT_CACHE_WAYS;
        self.entries
            .get(first..first + CERT_CACHE_WAYS)?
            .iter()
            .find(|e| e.holds(der))
            .map(|e| e.sha1)
    }

    /// [`CertInfo::from_der_for_host`] of `der`, whose SHA-1 is `sha1`, remembered when it
    /// parses. The returned certificate's `host_match` is for `host`.
    pub fn parse_for_host(
        &mut self,
        der: &[u8],
        sha1: &[u8; 20],
        host: Option<&str>,
    ) -> Result<&CertInfo, CertError> {
        self.lookups += 1;
        let now = self.lookups;
        let sets = self.entries.len() / CERT_CACHE_WAYS;
        if sets == 0 || der.len() > CERT_CACHE_DER_LEN {
            return self.parse_uncached(der, sha1, host);
        }
        let first = Self::set_of(der, sets) * CERT_CACHE_WAYS;
        let ways = self
            .entries
            .get(first..first + CERT_CACHE_WAYS)
            .unwrap_or(&[]);
        let found = ways.iter().position(|e| e.holds(der) && e.sha1 == *sha1);
        // On a miss, the least recently used way is replaced (an empty one was never used).
        let victim = ways
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| if e.info.is_none() { 0 } else { e.last_use })
            .map_or(0, |(i, _)| i);
        let exact = found
            .and_then(|w| ways.get(w))
            .is_some_and(|e| e.names.exact);
        if found.is_some() && host.is_some() && !exact {
            return self.parse_uncached(der, sha1, host);
        }
        let entry = self
            .entries
            .get_mut(first + found.unwrap_or(victim))
            .ok_or(CertError::Invalid)?;
        entry.last_use = now;
        if found.is_some() {
            self.hits += 1;
            let host_match = host.map(|h| entry.names.matches(&entry.der, h));
            let info = entry.info.as_mut().ok_or(CertError::Invalid)?;
            info.host_match = host_match;
            return Ok(info);
        }
        entry.info = None;
        let cert = parse_der(der)?;
        let der_copy = entry.der.get_mut(..der.len()).ok_or(CertError::Invalid)?;
        der_copy.copy_from_slice(der);
        entry.sha1 = *sha1;
        entry.der_len = der.len() as u16;
        entry.names = HostNames::of(&cert, der);
        entry.info = Some(CertInfo::from_parsed(&cert, sha1, host));
        entry.info.as_ref().ok_or(CertError::Invalid)
    }

    fn parse_uncached(
        &mut self,
        der: &[u8],
        sha1: &[u8; 20],
        host: Option<&str>,
    ) -> Result<&CertInfo, CertError> {
        let cert = parse_der(der)?;
        Ok(self.spare.insert(CertInfo::from_parsed(&cert, sha1, host)))
    }
}

#[cfg(test)]
mod tests;
