//! HTTP request and response heads (DET0470 HeaderSignatureMatch and HeaderAnomalyScore).
//!
//! Two findings, judged on every head the inspector parses (the first few of each direction)
//! and on a first response that is not HTTP at all:
//!
//! - **HttpHeaderSignature** (HeaderSignatureMatch): configured patterns over one header of a
//!   request or response: the header is absent, or one of its values equals, starts with or
//!   contains a string (ASCII case-insensitive, names and values alike; no regular
//!   expressions). Defaults: a request without User-Agent, an HTTP/1.1 request without Host.
//!   Every pattern that matched is named in one finding; it blocks when any of them blocks.
//! - **HttpHeaderAnomaly** (HeaderAnomalyScore): a weighted sum of anomalies, each one
//!   something real clients and servers do not send, raised when the sum reaches the
//!   threshold, with every contributing anomaly and its weight as evidence. No single mild
//!   oddity reaches the default threshold on its own; a request has to look wrong in several
//!   ways, or the server has to answer it with something that is not HTTP.
//!
//! What counts as a browser is deliberately narrow: a User-Agent starting `Mozilla/` that names
//! a browser engine's product token and no crawler. The browser rules rest on what the browsers'
//! own HTTP/1.1 stacks always do, so only a client that merely borrowed the User-Agent string
//! trips them:
//!
//! - Chromium, Firefox and Safari send Accept, Accept-Encoding and Accept-Language on every
//!   request (Accept is left out of WebSocket and h2c upgrade requests, and CONNECT carries
//!   none of them, so those are exempt); Internet Explorer and legacy Edge send Accept and
//!   Accept-Encoding but not always Accept-Language.
//! - Their header names are written in the registered casing ("User-Agent"); only an HTTP/2
//!   stack lowercases names, and HTTP/2 never reaches this parser.
//! - Chromium and Firefox write Host as their first header line; Internet Explorer writes it
//!   near the end, so the position rule is limited to the two.
//! - No current browser sends HTTP/1.0 requests.
//!
//! All matching is over the parsed head's bytes; nothing is allocated per message.

use std::fmt;
use std::net::{Ipv4Addr, Ipv6Addr};

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::proto::http::{HeadKind, HttpHead, Version};
use crate::proto::shannon_entropy;

/// Declares the anomaly weights once: the config struct, its defaults, and the name→weight
/// table the scorer and the validator walk.
macro_rules! weights {
    ($( $(#[$doc:meta])* $name:ident = $default:expr, )*) => {
        /// Points each anomaly adds to a head's score (0 switches an anomaly off).
        #[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct Weights {
            $( $(#[$doc])* pub $name: u16, )*
        }

        impl Default for Weights {
            fn default() -> Self {
                Weights { $( $name: $default, )* }
            }
        }

        impl Weights {
            pub const COUNT: usize = [$(stringify!($name)),*].len();

            /// Every anomaly name with its weight.
            pub fn entries(&self) -> [(&'static str, u16); Self::COUNT] {
                [$( (stringify!($name), self.$name), )*]
            }

            /// The weight of the anomaly called `name`; 0 for a name that has none.
            pub fn of(&self, name: &str) -> u16 {
                match name {
                    $( stringify!($name) => self.$name, )*
                    _ => 0,
                }
            }
        }
    };
}

weights! {
    /// Per header a claimed browser always sends and this request lacks.
    browser_missing_header = 4,
    /// A claimed browser writing every header name in lowercase.
    browser_lowercase_names = 6,
    /// A claimed Chromium or Firefox with Host as the third header line or later.
    browser_host_late = 3,
    /// A claimed current browser sending an HTTP/1.0 request.
    browser_http10 = 5,
    /// A registered header name in casing no library writes ("hOsT").
    odd_header_case = 8,
    /// A User-Agent with no product/version word (RFC 9110 10.1.5).
    odd_user_agent = 3,
    /// Host sent more than once with the same value.
    duplicate_host = 6,
    /// Host sent more than once with different values (RFC 9112 3.2 requires a 400).
    conflicting_host = 10,
    /// Host is an IP address.
    host_ip_literal = 3,
    /// A long random-looking token in the request target.
    random_uri_token = 4,
    /// A long random-looking token in a Cookie header.
    random_cookie_token = 4,
    /// The server answered a request with bytes that are not an HTTP response.
    response_not_http = 10,
    /// Parser leniencies (crate::proto::http::HeadAnomalies), by the parser's names.
    missing_version = 6,
    unknown_method = 3,
    unusual_version = 4,
    bare_lf = 3,
    leading_empty_lines = 2,
    multiple_spaces = 3,
    space_in_target = 3,
    non_ascii_target = 2,
    invalid_header_line = 4,
    space_before_colon = 5,
    no_space_after_colon = 3,
    obs_fold = 4,
    header_overflow = 3,
    ctl_in_header = 5,
    non_ascii_header = 2,
    bad_status_line = 5,
}

/// Which heads a signature applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum MessageKind {
    #[default]
    Request,
    Response,
}

/// HTTP versions a signature applies to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
pub enum VersionFilter {
    #[default]
    #[serde(rename = "any")]
    Any,
    #[serde(rename = "1.0")]
    Http10,
    #[serde(rename = "1.1")]
    Http11,
}

fn default_signature_confidence() -> u8 {
    70
}

/// One HeaderSignatureMatch pattern. With `absent`, it matches heads without the header;
/// otherwise heads where some value of the header satisfies every one of `equals`, `prefix`
/// and `contains` that is set (or merely has the header, when none is set).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct HeaderSignature {
    pub name: String,
    #[serde(default)]
    pub message: MessageKind,
    pub header: String,
    #[serde(default)]
    pub absent: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub equals: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contains: Option<String>,
    #[serde(default)]
    pub version: VersionFilter,
    #[serde(default = "default_signature_confidence")]
    pub confidence: u8,
    #[serde(default)]
    pub block: bool,
}

/// Most signatures a config may hold (their indices live in fixed arrays while matching).
pub const MAX_SIGNATURES: usize = 64;

#[derive(Debug, Clone, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    /// In block mode, HttpHeaderAnomaly drops the flow, and so do signatures that say `block`.
    pub block: bool,
    /// HeaderAnomalyScore: the score at which a head is reported.
    pub anomaly_threshold: u16,
    /// A token (a run of URL-safe base64 / percent-encoded characters) at least this long...
    pub token_min_len: u16,
    /// ...with at least this Shannon entropy, in bits per character, looks random.
    pub token_min_entropy: f64,
    pub weights: Weights,
    pub signatures: Vec<HeaderSignature>,
}

// `token_min_entropy` is a float, but validation keeps it finite, so equality is total.
impl Eq for HttpConfig {}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            block: true,
            anomaly_threshold: 10,
            token_min_len: 32,
            token_min_entropy: 4.3,
            weights: Weights::default(),
            signatures: vec![
                HeaderSignature {
                    name: "missing-user-agent".into(),
                    message: MessageKind::Request,
                    header: "User-Agent".into(),
                    absent: true,
                    equals: None,
                    prefix: None,
                    contains: None,
                    version: VersionFilter::Any,
                    confidence: 60,
                    block: false,
                },
                HeaderSignature {
                    name: "missing-host".into(),
                    message: MessageKind::Request,
                    header: "Host".into(),
                    absent: true,
                    equals: None,
                    prefix: None,
                    contains: None,
                    version: VersionFilter::Http11,
                    confidence: 85,
                    block: true,
                },
            ],
        }
    }
}

fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

impl HttpConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let err = |key: String, message: String| KeyError {
            path: path.into(),
            key,
            message,
        };
        let range = |key: &str, value: u64, lo: u64, hi: u64| {
            if (lo..=hi).contains(&value) {
                Ok(())
            } else {
                Err(err(
                    format!("detect.http.{key}"),
                    format!("invalid value {value}; accepted: {lo} to {hi}"),
                ))
            }
        };
        range("anomaly_threshold", self.anomaly_threshold.into(), 1, 1000)?;
        range("token_min_len", self.token_min_len.into(), 8, 4096)?;
        let e = self.token_min_entropy;
        if !(e.is_finite() && (1.0..=8.0).contains(&e)) {
            return Err(err(
                "detect.http.token_min_entropy".into(),
                format!("invalid value {e}; accepted: 1.0 to 8.0 (bits per character)"),
            ));
        }
        for (name, weight) in self.weights.entries() {
            range(&format!("weights.{name}"), weight.into(), 0, 1000)?;
        }
        if self.signatures.len() > MAX_SIGNATURES {
            return Err(err(
                "detect.http.signatures".into(),
                format!(
                    "{} signatures; accepted: at most {MAX_SIGNATURES}",
                    self.signatures.len()
                ),
            ));
        }
        for (i, s) in self.signatures.iter().enumerate() {
            let key = |field: &str| format!("detect.http.signatures[{i}].{field}");
            if s.name.is_empty() || s.name.len() > 64 {
                return Err(err(
                    key("name"),
                    format!("invalid name {:?}; accepted: 1 to 64 characters", s.name),
                ));
            }
            if self.signatures[..i].iter().any(|o| o.name == s.name) {
                return Err(err(
                    key("name"),
                    format!("duplicate name {:?}; each signature needs its own", s.name),
                ));
            }
            if s.header.is_empty() || !s.header.bytes().all(is_tchar) {
                return Err(err(
                    key("header"),
                    format!(
                        "invalid header name {:?}; accepted: an HTTP field name (RFC 9110 token)",
                        s.header
                    ),
                ));
            }
            let matchers = [
                ("equals", &s.equals),
                ("prefix", &s.prefix),
                ("contains", &s.contains),
            ];
            for (field, m) in matchers {
                match m {
                    Some(v) if s.absent => {
                        return Err(err(
                            key(field),
                            format!(
                                "{field} = {v:?} with absent = true; accepted: either absent, or value matchers"
                            ),
                        ))
                    }
                    Some(v) if v.is_empty() => {
                        return Err(err(
                            key(field),
                            "empty string; accepted: a non-empty string".into(),
                        ))
                    }
                    _ => {}
                }
            }
            range(
                &format!("signatures[{i}].confidence"),
                s.confidence.into(),
                1,
                100,
            )?;
        }
        Ok(())
    }
}

pub struct HttpCheck {
    cfg: HttpConfig,
}

impl HttpCheck {
    pub fn new(cfg: &HttpConfig) -> Self {
        HttpCheck { cfg: cfg.clone() }
    }
}

impl Check for HttpCheck {
    fn on_event(&self, _view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        match *event {
            Event::HttpRequest(head) => {
                self.signatures(head, Dir::ToServer, out);
                self.score_request(head, out);
            }
            Event::HttpResponse(head) => {
                self.signatures(head, Dir::ToClient, out);
                self.score_response(head, out);
            }
            Event::HttpResponseNotHttp { data } => self.score_not_http(data, out),
            _ => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// HeaderSignatureMatch

impl HttpCheck {
    fn signatures(&self, head: &HttpHead<'_>, dir: Dir, out: &mut Findings) {
        let mut hits = [0u8; MAX_SIGNATURES];
        let mut n = 0usize;
        let mut block = false;
        let mut confidence = 0u8;
        let mut value: Option<&[u8]> = None;
        for (i, sig) in self.cfg.signatures.iter().enumerate().take(MAX_SIGNATURES) {
            let Some(matched) = signature_matches(sig, head) else {
                continue;
            };
            if let Some(slot) = hits.get_mut(n) {
                *slot = i as u8;
                n += 1;
            }
            block |= sig.block;
            confidence = confidence.max(sig.confidence);
            if value.is_none() {
                value = matched;
            }
        }
        if n == 0 {
            return;
        }
        let mut f = Finding {
            kind: FindingKind::HttpHeaderSignature,
            confidence,
            block: self.cfg.block && block,
            dir,
            evidence: Default::default(),
        };
        f.evidence.add(
            "signatures",
            SignatureNames {
                sigs: &self.cfg.signatures,
                hits: hits.get(..n).unwrap_or(&[]),
            },
        );
        if let Some(v) = value {
            f.evidence.add("matched_value", Escaped(v));
        }
        add_context(&mut f, head);
        out.push(f);
    }
}

/// `Some(value)` when `sig` matches `head`: the value that matched, `None` for an absence.
fn signature_matches<'a>(sig: &HeaderSignature, head: &HttpHead<'a>) -> Option<Option<&'a [u8]>> {
    let kind = match head.kind() {
        HeadKind::Request => MessageKind::Request,
        HeadKind::Response => MessageKind::Response,
    };
    let version_ok = match sig.version {
        VersionFilter::Any => true,
        VersionFilter::Http10 => head.version() == Version::Http10,
        VersionFilter::Http11 => head.version() == Version::Http11,
    };
    if sig.message != kind || !version_ok {
        return None;
    }
    if sig.absent {
        // Past MAX_HEADERS lines the head is not fully known: absence cannot be shown.
        let absent = !head.header_overflow() && !head.has_header(&sig.header);
        return absent.then_some(None);
    }
    head.headers()
        .find(|(name, value)| {
            name.eq_ignore_ascii_case(sig.header.as_bytes())
                && sig
                    .equals
                    .as_ref()
                    .is_none_or(|e| value.eq_ignore_ascii_case(e.as_bytes()))
                && sig
                    .prefix
                    .as_ref()
                    .is_none_or(|p| starts_with_ci(value, p.as_bytes()))
                && sig
                    .contains
                    .as_ref()
                    .is_none_or(|c| contains_ci(value, c.as_bytes()))
        })
        .map(|(_, value)| Some(value))
}

fn starts_with_ci(hay: &[u8], needle: &[u8]) -> bool {
    hay.get(..needle.len())
        .is_some_and(|h| h.eq_ignore_ascii_case(needle))
}

fn contains_ci(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty()
        && hay
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle))
}

fn contains(hay: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && hay.windows(needle.len()).any(|w| w == needle)
}

struct SignatureNames<'a> {
    sigs: &'a [HeaderSignature],
    hits: &'a [u8],
}

impl fmt::Display for SignatureNames<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (n, &i) in self.hits.iter().enumerate() {
            if n > 0 {
                f.write_str(", ")?;
            }
            if let Some(s) = self.sigs.get(usize::from(i)) {
                f.write_str(&s.name)?;
            }
        }
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// HeaderAnomalyScore

/// Why an anomaly counted, for its evidence line.
#[derive(Debug, Clone, Copy)]
enum Detail<'a> {
    None,
    Missing(MissingHeaders),
    /// A header name or value, as sent.
    Bytes(&'a [u8]),
    /// A random-looking token and its entropy in bits per character.
    Token(&'a [u8], f32),
    /// Index of the header line.
    Position(usize),
}

/// Browser headers a request lacks (at most three).
#[derive(Debug, Clone, Copy, Default)]
struct MissingHeaders {
    names: [&'static str; 3],
    len: usize,
}

impl MissingHeaders {
    fn push(&mut self, name: &'static str) {
        if let Some(slot) = self.names.get_mut(self.len) {
            *slot = name;
            self.len += 1;
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Hit<'a> {
    name: &'static str,
    weight: u16,
    detail: Detail<'a>,
}

impl fmt::Display for Hit<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "weight {}", self.weight)?;
        match self.detail {
            Detail::None => Ok(()),
            Detail::Missing(m) => {
                f.write_str(": missing ")?;
                for (i, n) in m.names.iter().take(m.len).enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    f.write_str(n)?;
                }
                Ok(())
            }
            Detail::Bytes(b) => write!(f, ": {}", Cut(b, QUOTE_MAX)),
            Detail::Token(t, bits) => write!(
                f,
                ": {} ({} chars, {bits:.2} bits/char)",
                Cut(t, QUOTE_MAX),
                t.len()
            ),
            Detail::Position(i) => write!(f, ": Host is header line {}", i + 1),
        }
    }
}

/// Hits beyond the evidence slots, on one line.
struct MoreHits<'s, 'a>(&'s [Hit<'a>]);

impl fmt::Display for MoreHits<'_, '_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, h) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{} {}", h.name, h.weight)?;
        }
        Ok(())
    }
}

/// The anomalies of one head; at most one hit per anomaly, so the capacity is the table's.
struct Score<'a> {
    hits: [Hit<'a>; Weights::COUNT],
    len: usize,
    total: u32,
}

impl<'a> Score<'a> {
    fn new() -> Self {
        Score {
            hits: [Hit {
                name: "",
                weight: 0,
                detail: Detail::None,
            }; Weights::COUNT],
            len: 0,
            total: 0,
        }
    }

    /// Counts an anomaly; a zero weight switches it off.
    fn add(&mut self, name: &'static str, weight: u16, detail: Detail<'a>) {
        if weight == 0 {
            return;
        }
        if let Some(slot) = self.hits.get_mut(self.len) {
            *slot = Hit {
                name,
                weight,
                detail,
            };
            self.len += 1;
            self.total = self.total.saturating_add(u32::from(weight));
        }
    }

    fn hits(&mut self) -> &mut [Hit<'a>] {
        let len = self.len.min(self.hits.len());
        &mut self.hits[..len]
    }
}

/// Evidence slots: the score line, then one per anomaly, then context if room is left.
const EVIDENCE_HITS: usize = 7;

/// Who a User-Agent claims to be.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Browser {
    Chromium,
    Firefox,
    /// Safari and the iOS browsers, which all use Apple's network stack.
    Safari,
    /// Internet Explorer and legacy (EdgeHTML) Edge.
    Ie,
}

fn browser_claim(ua: &[u8]) -> Option<Browser> {
    if !ua.starts_with(b"Mozilla/") {
        return None;
    }
    // Crawlers borrow browser strings but announce themselves; they are not browsers.
    if [&b"bot"[..], b"crawl", b"spider"]
        .iter()
        .any(|w| contains_ci(ua, w))
    {
        return None;
    }
    let any = |tokens: &[&[u8]]| tokens.iter().any(|t| contains(ua, t));
    if any(&[b"Trident/", b"MSIE ", b"Edge/"]) {
        Some(Browser::Ie)
    } else if any(&[b"CriOS/", b"FxiOS/", b"EdgiOS/"]) {
        Some(Browser::Safari)
    } else if any(&[b"Chrome/", b"Chromium/", b"Edg/", b"EdgA/"]) {
        Some(Browser::Chromium)
    } else if any(&[b"Firefox/"]) {
        Some(Browser::Firefox)
    } else if any(&[b"Safari/"]) {
        Some(Browser::Safari)
    } else {
        None
    }
}

/// RFC 9110 10.1.5: User-Agent = product *( RWS ( product / comment ) ), product = token
/// ["/" product-version]. Real software names itself with at least one product/version.
fn user_agent_well_formed(ua: &[u8]) -> bool {
    let mut depth = 0usize;
    let mut has_version = false;
    let mut word_start = None;
    let mut check = |word: &[u8]| {
        let mut parts = word.splitn(2, |&b| b == b'/');
        let product = parts.next().unwrap_or(&[]);
        let product_ok = !product.is_empty() && product.iter().all(|&b| is_tchar(b));
        match parts.next() {
            Some(v) if product_ok && !v.is_empty() && v.iter().all(|&b| is_tchar(b)) => {
                has_version = true;
                true
            }
            Some(_) => false,
            None => product_ok,
        }
    };
    let mut ok = true;
    for (i, &b) in ua.iter().enumerate() {
        match b {
            b'(' => {
                if depth == 0 {
                    if let Some(s) = word_start.take() {
                        ok &= check(ua.get(s..i).unwrap_or(&[]));
                    }
                }
                depth += 1;
            }
            b')' if depth > 0 => depth -= 1,
            _ if depth > 0 => {}
            b' ' | b'\t' => {
                if let Some(s) = word_start.take() {
                    ok &= check(ua.get(s..i).unwrap_or(&[]));
                }
            }
            _ => {
                if word_start.is_none() {
                    word_start = Some(i);
                }
            }
        }
    }
    if let Some(s) = word_start {
        ok &= check(ua.get(s..).unwrap_or(&[]));
    }
    ok && has_version
}

/// Registered names that libraries write from constants, in their registered casing.
const CANONICAL_NAMES: &[&str] = &[
    "Host",
    "User-Agent",
    "Accept",
    "Accept-Language",
    "Accept-Encoding",
    "Connection",
    "Content-Length",
    "Content-Type",
    "Cookie",
    "Referer",
    "Cache-Control",
    "Pragma",
    "Upgrade",
    "Origin",
    "Authorization",
    "Range",
    "Transfer-Encoding",
    "Keep-Alive",
    "Proxy-Connection",
    "If-Modified-Since",
    "If-None-Match",
];

/// `name` is a registered name written neither as registered, nor all lower, nor all upper
/// case: the mixed casing of hand-made or evasive requests.
fn odd_case(name: &[u8]) -> bool {
    let Some(canonical) = CANONICAL_NAMES
        .iter()
        .find(|c| name.eq_ignore_ascii_case(c.as_bytes()))
    else {
        return false;
    };
    name != canonical.as_bytes()
        && name.iter().any(u8::is_ascii_uppercase)
        && name.iter().any(u8::is_ascii_lowercase)
}

/// The Host value is an IP address, with or without a port.
fn host_is_ip(host: &[u8]) -> bool {
    let Ok(text) = std::str::from_utf8(host) else {
        return false;
    };
    if let Some(rest) = text.strip_prefix('[') {
        return rest
            .split_once(']')
            .is_some_and(|(addr, _)| addr.parse::<Ipv6Addr>().is_ok());
    }
    let addr = match text.rsplit_once(':') {
        Some((a, port)) if port.bytes().all(|b| b.is_ascii_digit()) => a,
        _ => text,
    };
    addr.parse::<Ipv4Addr>().is_ok()
}

/// Characters of URL-safe base64 and percent-encoding: a run of them is one token.
fn is_token_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'_' | b'%' | b'~')
}

/// Bytes of a token measured for entropy; a longer token is judged on its first part.
const TOKEN_SAMPLE: usize = 512;

/// Entropy of `token` once `%XX` escapes are decoded (an escape is one character of the
/// text it encodes: percent-encoded prose is prose), and the decoded length.
fn token_entropy(token: &[u8]) -> (f32, usize) {
    let mut buf = [0u8; TOKEN_SAMPLE];
    let mut n = 0usize;
    let mut i = 0usize;
    while n < TOKEN_SAMPLE {
        let Some(&b) = token.get(i) else { break };
        let hex = |k: usize| token.get(k).and_then(|c| char::from(*c).to_digit(16));
        let decoded = match (b, hex(i + 1), hex(i + 2)) {
            (b'%', Some(hi), Some(lo)) => {
                i += 3;
                (hi * 16 + lo) as u8
            }
            _ => {
                i += 1;
                b
            }
        };
        buf[n] = decoded;
        n += 1;
    }
    (shannon_entropy(&buf[..n]), n)
}

/// The first token of `text` at least `min_len` characters long (decoded) with at least
/// `min_bits` of entropy per character.
fn random_token(text: &[u8], min_len: usize, min_bits: f64) -> Option<(&[u8], f32)> {
    text.split(|&b| !is_token_char(b))
        .filter(|t| t.len() >= min_len)
        .map(|t| (t, token_entropy(t)))
        .find(|&(_, (bits, len))| len >= min_len && f64::from(bits) >= min_bits)
        .map(|(t, (bits, _))| (t, bits))
}

/// An HTTP/2 frame header of a SETTINGS frame on stream 0: what an h2c server sends first
/// after a client's prior-knowledge preface (RFC 9113 3.4). Not HTTP/1, and not an anomaly.
/// Confidence of a reply that is not HTTP at all to an HTTP request.
const NOT_HTTP_CONFIDENCE: u8 = 90;

fn starts_with_h2_settings(data: &[u8]) -> bool {
    matches!(data, [_, _, _, 0x04, _, 0, 0, 0, 0, ..])
}

impl HttpCheck {
    fn parser_anomalies<'a>(&self, head: &HttpHead<'a>, s: &mut Score<'a>) {
        for name in head.anomalies().names() {
            s.add(name, self.cfg.weights.of(name), Detail::None);
        }
    }

    fn score_request(&self, head: &HttpHead<'_>, out: &mut Findings) {
        let w = &self.cfg.weights;
        let mut s = Score::new();
        self.parser_anomalies(head, &mut s);

        let ua = head.user_agent();
        let browser = ua.and_then(browser_claim);
        let connect = head.method().eq_ignore_ascii_case(b"CONNECT");
        if let (Some(b), false) = (browser, connect) {
            let mut missing = MissingHeaders::default();
            if !head.has_header("accept") && !head.has_header("upgrade") {
                missing.push("Accept");
            }
            if !head.has_header("accept-encoding") {
                missing.push("Accept-Encoding");
            }
            if b != Browser::Ie && !head.has_header("accept-language") {
                missing.push("Accept-Language");
            }
            // Past MAX_HEADERS lines a header may be there unseen (header_overflow scores).
            if missing.len > 0 && !head.header_overflow() {
                let weight = w.browser_missing_header.saturating_mul(missing.len as u16);
                s.add("browser_missing_headers", weight, Detail::Missing(missing));
            }
            let (mut lettered, mut lower) = (0usize, 0usize);
            for n in head.header_names() {
                if n.iter().any(u8::is_ascii_alphabetic) {
                    lettered += 1;
                    lower += usize::from(!n.iter().any(u8::is_ascii_uppercase));
                }
            }
            if lettered >= 2 && lower == lettered {
                s.add(
                    "browser_lowercase_names",
                    w.browser_lowercase_names,
                    Detail::None,
                );
            }
            if matches!(b, Browser::Chromium | Browser::Firefox) {
                let pos = head
                    .header_names()
                    .position(|n| n.eq_ignore_ascii_case(b"host"));
                if let Some(p) = pos.filter(|&p| p >= 2) {
                    s.add(
                        "browser_host_late",
                        w.browser_host_late,
                        Detail::Position(p),
                    );
                }
            }
            if b != Browser::Ie && head.version() == Version::Http10 {
                s.add("browser_http10", w.browser_http10, Detail::None);
            }
        }
        if let Some(name) = head.header_names().find(|n| odd_case(n)) {
            s.add("odd_header_case", w.odd_header_case, Detail::Bytes(name));
        }
        if let Some(ua) = ua {
            if !user_agent_well_formed(ua) {
                s.add("odd_user_agent", w.odd_user_agent, Detail::Bytes(ua));
            }
        }
        if head.host_count() > 1 {
            if head.hosts_conflict() {
                s.add("conflicting_host", w.conflicting_host, Detail::None);
            } else {
                s.add("duplicate_host", w.duplicate_host, Detail::None);
            }
        }
        if let Some(host) = head.host().filter(|h| host_is_ip(h)) {
            s.add("host_ip_literal", w.host_ip_literal, Detail::Bytes(host));
        }
        let (min_len, min_bits) = (
            usize::from(self.cfg.token_min_len),
            self.cfg.token_min_entropy,
        );
        if let Some((t, bits)) = random_token(head.target(), min_len, min_bits) {
            s.add(
                "random_uri_token",
                w.random_uri_token,
                Detail::Token(t, bits),
            );
        }
        let cookie_token = head
            .headers()
            .filter(|(n, _)| n.eq_ignore_ascii_case(b"cookie"))
            .find_map(|(_, v)| random_token(v, min_len, min_bits));
        if let Some((t, bits)) = cookie_token {
            s.add(
                "random_cookie_token",
                w.random_cookie_token,
                Detail::Token(t, bits),
            );
        }
        self.report(&mut s, Dir::ToServer, Some(head), 0, out);
    }

    fn score_response(&self, head: &HttpHead<'_>, out: &mut Findings) {
        let mut s = Score::new();
        self.parser_anomalies(head, &mut s);
        self.report(&mut s, Dir::ToClient, Some(head), 0, out);
    }

    fn score_not_http(&self, data: &[u8], out: &mut Findings) {
        if starts_with_h2_settings(data) {
            return;
        }
        let mut s = Score::new();
        s.add(
            "response_not_http",
            self.cfg.weights.response_not_http,
            Detail::Bytes(data.get(..48).unwrap_or(data)),
        );
        // Not a style of HTTP but no HTTP at all: a request answered this way was not talking
        // to an HTTP server (a C2 gate's reply), so it is as sure as a protocol mismatch.
        self.report(&mut s, Dir::ToClient, None, NOT_HTTP_CONFIDENCE, out);
    }

    fn report(
        &self,
        s: &mut Score<'_>,
        dir: Dir,
        head: Option<&HttpHead<'_>>,
        min_confidence: u8,
        out: &mut Findings,
    ) {
        let threshold = u32::from(self.cfg.anomaly_threshold);
        let total = s.total;
        if total < threshold || threshold == 0 {
            return;
        }
        // 50 at the threshold, 99 from twice the threshold on.
        let over = (total - threshold).saturating_mul(50) / threshold;
        let confidence = u8::try_from((50 + over).min(99))
            .unwrap_or(99)
            .max(min_confidence);
        let mut f = Finding {
            kind: FindingKind::HttpHeaderAnomaly,
            confidence,
            block: self.cfg.block,
            dir,
            evidence: Default::default(),
        };
        f.evidence
            .add("score", format_args!("{total} (threshold {threshold})"));
        let hits = s.hits();
        // Heaviest first, ties in the order found; an insertion sort, as std's stable sort
        // may allocate and there are at most a few dozen hits.
        for i in 1..hits.len() {
            let mut j = i;
            while j > 0 && hits[j - 1].weight < hits[j].weight {
                hits.swap(j - 1, j);
                j -= 1;
            }
        }
        let (own, more) = if hits.len() > EVIDENCE_HITS {
            hits.split_at(EVIDENCE_HITS - 1)
        } else {
            (&hits[..], &[][..])
        };
        for h in own.iter() {
            f.evidence.add(h.name, h);
        }
        if !more.is_empty() {
            f.evidence.add("more_anomalies", MoreHits(more));
        }
        if let Some(head) = head {
            add_context(&mut f, head);
        }
        out.push(f);
    }
}

/// The start line and User-Agent, when evidence slots remain.
fn add_context(f: &mut Finding, head: &HttpHead<'_>) {
    match head.kind() {
        HeadKind::Request => {
            f.evidence.add(
                "request_line",
                format_args!(
                    "{} {}",
                    Cut(head.method(), QUOTE_MAX),
                    Cut(head.target(), TARGET_MAX)
                ),
            );
            if let Some(ua) = head.user_agent() {
                f.evidence.add("user_agent", Escaped(ua));
            }
        }
        HeadKind::Response => {
            f.evidence.add(
                "status_line",
                format_args!("{} {}", head.status().unwrap_or(0), Escaped(head.reason())),
            );
        }
    }
}

/// Bytes from the wire as text: printable ASCII as is, everything else as `\xNN`.
struct Escaped<'a>(&'a [u8]);

impl fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for &b in self.0 {
            if (0x20..0x7f).contains(&b) {
                fmt::Write::write_char(f, char::from(b))?;
            } else {
                write!(f, "\\x{b:02x}")?;
            }
        }
        Ok(())
    }
}

/// [`Escaped`], cut after `max` bytes with "..." so one long value cannot fill the evidence.
struct Cut<'a>(&'a [u8], usize);

impl fmt::Display for Cut<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.get(..self.1) {
            Some(head) if self.0.len() > self.1 => write!(f, "{}...", Escaped(head)),
            _ => Escaped(self.0).fmt(f),
        }
    }
}

/// Longest piece of a value (token, User-Agent, target) quoted in evidence.
const QUOTE_MAX: usize = 64;
/// Longest request target quoted in the request line.
const TARGET_MAX: usize = 96;

#[cfg(test)]
mod tests;
