//! HTTP/1.x request and response heads.
//!
//! One structural parser reads the head, lenient enough for what real (and malicious)
//! clients send — a missing version, bare LF line ends, header lines without a colon — and
//! records each leniency as an anomaly. httparse then judges the same head strictly, and its
//! verdict is kept as [`HttpHead::is_strict`]. Headers are kept as offsets into the caller's
//! bytes, in order, with their original casing; nothing is allocated.

use super::probes::{first_line, Line};
use super::{Evidence, Role};

/// Header lines kept per head; further lines are counted and flagged, not stored.
pub const MAX_HEADERS: usize = 64;
/// A head that has not ended within this many bytes is reported as [`HeadError::TooLong`].
pub const MAX_HEAD_LEN: usize = 16 * 1024;
/// Longest method token accepted (the longest registered method is 17 bytes).
const METHOD_MAX: usize = 24;
/// Header lines that fail to parse before the head is judged not HTTP at all.
const MAX_INVALID_LINES: u16 = 16;
/// How long the probe follows a request line before judging it on what it has.
const PROBE_LINE_CAP: usize = 8192;

/// Methods from the IANA HTTP method registry plus the UPnP / SSDP ones.
pub const KNOWN_METHODS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"HEAD",
    b"PUT",
    b"DELETE",
    b"CONNECT",
    b"OPTIONS",
    b"TRACE",
    b"PATCH",
    b"PROPFIND",
    b"PROPPATCH",
    b"MKCOL",
    b"COPY",
    b"MOVE",
    b"LOCK",
    b"UNLOCK",
    b"SEARCH",
    b"REPORT",
    b"MKACTIVITY",
    b"CHECKOUT",
    b"CHECKIN",
    b"UNCHECKOUT",
    b"MERGE",
    b"MKCALENDAR",
    b"MKWORKSPACE",
    b"UPDATE",
    b"LABEL",
    b"ACL",
    b"BIND",
    b"REBIND",
    b"UNBIND",
    b"LINK",
    b"UNLINK",
    b"ORDERPATCH",
    b"VERSION-CONTROL",
    b"BASELINE-CONTROL",
    b"SUBSCRIBE",
    b"UNSUBSCRIBE",
    b"NOTIFY",
    b"M-SEARCH",
    b"PURGE",
    b"QUERY",
    // The HTTP/2 connection preface starts "PRI * HTTP/2.0".
    b"PRI",
];

pub fn is_known_method(method: &[u8]) -> bool {
    KNOWN_METHODS.contains(&method)
}

/// RFC 9110 5.6.2 token characters.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'!' | b'#'
                | b'$'
                | b'%'
                | b'&'
                | b'\''
                | b'*'
                | b'+'
                | b'-'
                | b'.'
                | b'^'
                | b'_'
                | b'`'
                | b'|'
                | b'~'
        )
}

fn is_ctl(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

fn trim_ows(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    while let [rest @ .., b' ' | b'\t'] = s {
        s = rest;
    }
    s
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadKind {
    Request,
    Response,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Version {
    Http10,
    Http11,
    /// Well-formed digits other than 1.0 / 1.1 ("HTTP/0.9", "HTTP/2.0", "HTTP/1.2").
    Other(u8, u8),
    /// A request line with no version at all: `GET /path` and the end of the line.
    Missing,
}

/// Why a head could not be returned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadError {
    /// Could still be HTTP: the blank line ending the head has not arrived.
    Incomplete,
    NotHttp,
    /// No end of head within [`MAX_HEAD_LEN`] bytes.
    TooLong,
}

/// Leniencies the parser applied: each is something a conforming peer would not send.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct HeadAnomalies(u32);

impl HeadAnomalies {
    pub const MISSING_VERSION: Self = Self(1 << 0);
    pub const UNKNOWN_METHOD: Self = Self(1 << 1);
    /// Version digits other than 1.0 / 1.1.
    pub const UNUSUAL_VERSION: Self = Self(1 << 2);
    /// A line ended by LF without CR.
    pub const BARE_LF: Self = Self(1 << 3);
    /// Empty lines before the start line.
    pub const LEADING_EMPTY_LINES: Self = Self(1 << 4);
    /// More than one space between start-line parts.
    pub const MULTIPLE_SPACES: Self = Self(1 << 5);
    /// Unencoded space inside the request target.
    pub const SPACE_IN_TARGET: Self = Self(1 << 6);
    /// Bytes >= 0x80 in the request target.
    pub const NON_ASCII_TARGET: Self = Self(1 << 7);
    /// A header line without a valid name and colon (skipped).
    pub const INVALID_HEADER_LINE: Self = Self(1 << 8);
    /// Whitespace between header name and colon (RFC 9112 5.1 forbids it).
    pub const SPACE_BEFORE_COLON: Self = Self(1 << 9);
    /// `Name:value` with no space after the colon (legal, but rare from real clients).
    pub const NO_SPACE_AFTER_COLON: Self = Self(1 << 10);
    /// obs-fold continuation line (skipped).
    pub const OBS_FOLD: Self = Self(1 << 11);
    /// More header lines than [`MAX_HEADERS`].
    pub const HEADER_OVERFLOW: Self = Self(1 << 12);
    /// Control characters other than tab in a header value.
    pub const CTL_IN_HEADER: Self = Self(1 << 13);
    /// Bytes >= 0x80 in a header value.
    pub const NON_ASCII_HEADER: Self = Self(1 << 14);
    /// A status code that is not three digits, or a reason with control characters.
    pub const BAD_STATUS_LINE: Self = Self(1 << 15);

    const NAMES: [(HeadAnomalies, &'static str); 16] = [
        (Self::MISSING_VERSION, "missing_version"),
        (Self::UNKNOWN_METHOD, "unknown_method"),
        (Self::UNUSUAL_VERSION, "unusual_version"),
        (Self::BARE_LF, "bare_lf"),
        (Self::LEADING_EMPTY_LINES, "leading_empty_lines"),
        (Self::MULTIPLE_SPACES, "multiple_spaces"),
        (Self::SPACE_IN_TARGET, "space_in_target"),
        (Self::NON_ASCII_TARGET, "non_ascii_target"),
        (Self::INVALID_HEADER_LINE, "invalid_header_line"),
        (Self::SPACE_BEFORE_COLON, "space_before_colon"),
        (Self::NO_SPACE_AFTER_COLON, "no_space_after_colon"),
        (Self::OBS_FOLD, "obs_fold"),
        (Self::HEADER_OVERFLOW, "header_overflow"),
        (Self::CTL_IN_HEADER, "ctl_in_header"),
        (Self::NON_ASCII_HEADER, "non_ascii_header"),
        (Self::BAD_STATUS_LINE, "bad_status_line"),
    ];

    pub const fn empty() -> Self {
        Self(0)
    }
    pub const fn bits(self) -> u32 {
        self.0
    }
    pub const fn contains(self, other: Self) -> bool {
        self.0 & other.0 == other.0
    }
    pub const fn is_empty(self) -> bool {
        self.0 == 0
    }
    pub fn insert(&mut self, other: Self) {
        self.0 |= other.0;
    }
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// Offsets into the parsed bytes; u32 is plenty for a head capped at [`MAX_HEAD_LEN`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct Span {
    start: u32,
    len: u32,
}

impl Span {
    fn of(base: usize, start_in_base: usize, len: usize) -> Span {
        Span {
            start: u32::try_from(base + start_in_base).unwrap_or(u32::MAX),
            len: u32::try_from(len).unwrap_or(0),
        }
    }
    fn get<'a>(&self, data: &'a [u8]) -> &'a [u8] {
        let start = self.start as usize;
        data.get(start..start.saturating_add(self.len as usize))
            .unwrap_or(&[])
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct HeaderSpan {
    name: Span,
    value: Span,
}

/// What Content-Length says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ContentLength {
    Absent,
    Value(u64),
    /// Not a decimal number.
    Invalid,
    /// Several Content-Length values that differ (a request-smuggling shape).
    Conflicting,
}

/// How the message body after the head is delimited (RFC 9112 6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Body {
    /// Exactly this many bytes (0 for requests without a body and for 1xx/204/304).
    Length(u64),
    Chunked,
    /// A response without length: the body runs until the connection closes.
    UntilClose,
    /// The framing headers contradict each other or cannot be read.
    Invalid,
}

/// A parsed request or response head. Slices borrow the bytes it was parsed from.
#[derive(Debug, Clone, Copy)]
pub struct HttpHead<'a> {
    data: &'a [u8],
    kind: HeadKind,
    method: Span,
    target: Span,
    version: Version,
    status: u16,
    reason: Span,
    headers: [HeaderSpan; MAX_HEADERS],
    stored: u8,
    header_lines: u16,
    head_len: u32,
    strict: bool,
    anomalies: HeadAnomalies,
}

impl<'a> HttpHead<'a> {
    fn new(data: &'a [u8], kind: HeadKind) -> Self {
        HttpHead {
            data,
            kind,
            method: Span::default(),
            target: Span::default(),
            version: Version::Missing,
            status: 0,
            reason: Span::default(),
            headers: [HeaderSpan::default(); MAX_HEADERS],
            stored: 0,
            header_lines: 0,
            head_len: 0,
            strict: false,
            anomalies: HeadAnomalies::empty(),
        }
    }

    pub fn kind(&self) -> HeadKind {
        self.kind
    }
    /// Request method as sent (empty for a response).
    pub fn method(&self) -> &'a [u8] {
        self.method.get(self.data)
    }
    pub fn method_known(&self) -> bool {
        is_known_method(self.method())
    }
    /// Request target as sent (empty for a response).
    pub fn target(&self) -> &'a [u8] {
        self.target.get(self.data)
    }
    pub fn version(&self) -> Version {
        self.version
    }
    /// Response status code.
    pub fn status(&self) -> Option<u16> {
        (self.kind == HeadKind::Response).then_some(self.status)
    }
    /// Response reason phrase (may be empty).
    pub fn reason(&self) -> &'a [u8] {
        self.reason.get(self.data)
    }
    /// Bytes from the start of the data through the blank line ending the head.
    pub fn head_len(&self) -> usize {
        self.head_len as usize
    }
    /// httparse accepted exactly this head.
    pub fn is_strict(&self) -> bool {
        self.strict
    }
    pub fn anomalies(&self) -> HeadAnomalies {
        self.anomalies
    }
    /// Header lines kept (at most [`MAX_HEADERS`]).
    pub fn header_count(&self) -> usize {
        usize::from(self.stored)
    }
    /// All well-formed header lines, including any past capacity.
    pub fn header_lines(&self) -> usize {
        usize::from(self.header_lines)
    }
    pub fn header_overflow(&self) -> bool {
        self.anomalies.contains(HeadAnomalies::HEADER_OVERFLOW)
    }

    fn spans(&self) -> &[HeaderSpan] {
        self.headers
            .get(..self.header_count())
            .unwrap_or(&self.headers)
    }
    /// Headers in order, names with their original casing, values without surrounding
    /// whitespace.
    pub fn headers(&self) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + '_ {
        let data = self.data;
        self.spans()
            .iter()
            .map(move |h| (h.name.get(data), h.value.get(data)))
    }
    /// Header names in order as sent, for header-order and casing checks.
    pub fn header_names(&self) -> impl Iterator<Item = &'a [u8]> + '_ {
        self.headers().map(|(n, _)| n)
    }
    fn values_of<'s>(&'s self, name: &'s str) -> impl Iterator<Item = &'a [u8]> + 's {
        self.headers()
            .filter(move |(n, _)| n.eq_ignore_ascii_case(name.as_bytes()))
            .map(|(_, v)| v)
    }
    /// First value of `name` (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&'a [u8]> {
        self.values_of(name).next()
    }
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
    /// How many times `name` occurs.
    pub fn count_of(&self, name: &str) -> usize {
        self.values_of(name).count()
    }
    pub fn host(&self) -> Option<&'a [u8]> {
        self.header("host")
    }
    pub fn host_count(&self) -> usize {
        self.count_of("host")
    }
    /// Several Host headers with different values (case-insensitive).
    pub fn hosts_conflict(&self) -> bool {
        let Some(first) = self.host() else {
            return false;
        };
        self.values_of("host")
            .any(|v| !v.eq_ignore_ascii_case(first))
    }
    pub fn user_agent(&self) -> Option<&'a [u8]> {
        self.header("user-agent")
    }

    pub fn content_length(&self) -> ContentLength {
        let mut found: Option<u64> = None;
        for value in self.values_of("content-length") {
            // A list ("5, 5") is tolerated when every element agrees (RFC 9110 8.6).
            for part in value.split(|&b| b == b',') {
                let Some(n) = parse_decimal(trim_ows(part)) else {
                    return ContentLength::Invalid;
                };
                match found {
                    Some(prev) if prev != n => return ContentLength::Conflicting,
                    _ => found = Some(n),
                }
            }
        }
        found.map_or(ContentLength::Absent, ContentLength::Value)
    }

    /// Transfer-Encoding ends in `chunked`.
    pub fn is_chunked(&self) -> bool {
        let mut last: Option<&[u8]> = None;
        for value in self.values_of("transfer-encoding") {
            if let Some(coding) = value.rsplit(|&b| b == b',').next() {
                last = Some(trim_ows(coding));
            }
        }
        last.is_some_and(|c| c.eq_ignore_ascii_case(b"chunked"))
    }

    /// How the body after this head is delimited. A response to HEAD also has no body;
    /// only the caller knows the request, so that case is left to it.
    pub fn body(&self) -> Body {
        if self.kind == HeadKind::Response
            && (self.status < 200 || self.status == 204 || self.status == 304)
        {
            return Body::Length(0);
        }
        if self.has_header("transfer-encoding") {
            return if self.is_chunked() {
                Body::Chunked
            } else if self.kind == HeadKind::Response {
                Body::UntilClose
            } else {
                Body::Invalid
            };
        }
        match self.content_length() {
            ContentLength::Value(n) => Body::Length(n),
            ContentLength::Absent if self.kind == HeadKind::Request => Body::Length(0),
            ContentLength::Absent => Body::UntilClose,
            ContentLength::Invalid | ContentLength::Conflicting => Body::Invalid,
        }
    }

    /// Offset (in the parsed bytes) where the next message on the connection starts, when
    /// the body has a known length. Pipelined requests continue there.
    pub fn next_message_offset(&self) -> Option<usize> {
        match self.body() {
            Body::Length(n) => usize::try_from(n).ok()?.checked_add(self.head_len()),
            _ => None,
        }
    }
}

fn parse_decimal(s: &[u8]) -> Option<u64> {
    if s.is_empty() || s.len() > 19 || !s.iter().all(u8::is_ascii_digit) {
        return None;
    }
    s.iter().try_fold(0u64, |n, &d| {
        n.checked_mul(10)?.checked_add(u64::from(d - b'0'))
    })
}

/// Parses a head, request or response by its first bytes.
pub fn parse_head(data: &[u8]) -> Result<HttpHead<'_>, HeadError> {
    let start = skip_empty_lines(data).0;
    let rest = data.get(start..).unwrap_or(&[]);
    if rest.starts_with(b"HTTP/") || (!rest.is_empty() && b"HTTP/".starts_with(rest)) {
        parse_response(data)
    } else {
        parse_request(data)
    }
}

/// Parses a request head from the start of `data`.
pub fn parse_request(data: &[u8]) -> Result<HttpHead<'_>, HeadError> {
    let mut head = HttpHead::new(data, HeadKind::Request);
    let (at, skipped) = skip_empty_lines(data);
    if skipped {
        head.anomalies.insert(HeadAnomalies::LEADING_EMPTY_LINES);
    }
    let rest = data.get(at..).unwrap_or(&[]);
    let (text, len) = match first_line(rest, MAX_HEAD_LEN) {
        Line::Complete { text, len } => (text, len),
        Line::Partial => {
            return match request_line(rest, false) {
                Err(LineError::NotHttp) => Err(HeadError::NotHttp),
                _ => Err(HeadError::Incomplete),
            }
        }
        Line::TooLong => return Err(HeadError::TooLong),
    };
    let rl = request_line(text, true).map_err(|_| HeadError::NotHttp)?;
    head.method = Span::of(at, 0, rl.method_len);
    head.target = Span::of(at, rl.target_start, rl.target_len);
    head.version = rl.version;
    head.anomalies.insert(rl.anomalies);
    if text.len() + 1 == len {
        head.anomalies.insert(HeadAnomalies::BARE_LF);
    }
    parse_headers(&mut head, at + len)?;
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut hdrs);
    head.strict = matches!(
        req.parse(data.get(..head.head_len()).unwrap_or(data)),
        Ok(httparse::Status::Complete(n)) if n == head.head_len()
    );
    Ok(head)
}

/// Parses a response head from the start of `data`.
pub fn parse_response(data: &[u8]) -> Result<HttpHead<'_>, HeadError> {
    let mut head = HttpHead::new(data, HeadKind::Response);
    let (at, skipped) = skip_empty_lines(data);
    if skipped {
        head.anomalies.insert(HeadAnomalies::LEADING_EMPTY_LINES);
    }
    let rest = data.get(at..).unwrap_or(&[]);
    let (text, len) = match first_line(rest, MAX_HEAD_LEN) {
        Line::Complete { text, len } => (text, len),
        Line::Partial => {
            return match status_line(rest, false) {
                Err(LineError::NotHttp) => Err(HeadError::NotHttp),
                _ => Err(HeadError::Incomplete),
            }
        }
        Line::TooLong => return Err(HeadError::TooLong),
    };
    let sl = status_line(text, true).map_err(|_| HeadError::NotHttp)?;
    head.version = sl.version;
    head.status = sl.status;
    head.reason = Span::of(at, sl.reason_start, sl.reason_len);
    head.anomalies.insert(sl.anomalies);
    if text.len() + 1 == len {
        head.anomalies.insert(HeadAnomalies::BARE_LF);
    }
    parse_headers(&mut head, at + len)?;
    let mut hdrs = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut hdrs);
    head.strict = matches!(
        resp.parse(data.get(..head.head_len()).unwrap_or(data)),
        Ok(httparse::Status::Complete(n)) if n == head.head_len()
    );
    Ok(head)
}

/// Skips CRLF / LF before a start line (RFC 9112 2.2 lets a server ignore them); at most a
/// few, since a stream of empty lines is not HTTP either.
fn skip_empty_lines(data: &[u8]) -> (usize, bool) {
    let mut at = 0usize;
    for _ in 0..4 {
        match data.get(at..) {
            Some([b'\r', b'\n', ..]) => at += 2,
            Some([b'\n', ..]) => at += 1,
            _ => break,
        }
    }
    (at, at > 0)
}

fn parse_headers(head: &mut HttpHead<'_>, mut at: usize) -> Result<(), HeadError> {
    let data = head.data;
    let mut invalid = 0u16;
    loop {
        let rest = data.get(at..).unwrap_or(&[]);
        let room = MAX_HEAD_LEN.saturating_sub(at);
        let (text, len) = match first_line(rest, room) {
            Line::Complete { text, len } => (text, len),
            Line::Partial if room > 0 => return Err(HeadError::Incomplete),
            Line::Partial | Line::TooLong => return Err(HeadError::TooLong),
        };
        if text.len() + 1 == len {
            head.anomalies.insert(HeadAnomalies::BARE_LF);
        }
        let line_at = at;
        at += len;
        if text.is_empty() {
            head.head_len = u32::try_from(at).unwrap_or(u32::MAX);
            return Ok(());
        }
        if matches!(text.first(), Some(b' ' | b'\t')) {
            head.anomalies.insert(HeadAnomalies::OBS_FOLD);
            continue;
        }
        let name_len = text.iter().take_while(|&&b| is_tchar(b)).count();
        let ws = text
            .get(name_len..)
            .unwrap_or(&[])
            .iter()
            .take_while(|&&b| b == b' ' || b == b'\t')
            .count();
        if name_len == 0 || text.get(name_len + ws) != Some(&b':') {
            head.anomalies.insert(HeadAnomalies::INVALID_HEADER_LINE);
            invalid += 1;
            if invalid > MAX_INVALID_LINES {
                return Err(HeadError::NotHttp);
            }
            continue;
        }
        if ws > 0 {
            head.anomalies.insert(HeadAnomalies::SPACE_BEFORE_COLON);
        }
        let raw_value = text.get(name_len + ws + 1..).unwrap_or(&[]);
        let value = trim_ows(raw_value);
        if !value.is_empty() && !matches!(raw_value.first(), Some(b' ' | b'\t')) {
            head.anomalies.insert(HeadAnomalies::NO_SPACE_AFTER_COLON);
        }
        if value.iter().any(|&b| is_ctl(b) && b != b'\t') {
            head.anomalies.insert(HeadAnomalies::CTL_IN_HEADER);
        }
        if value.iter().any(|&b| b >= 0x80) {
            head.anomalies.insert(HeadAnomalies::NON_ASCII_HEADER);
        }
        // Offset of the trimmed value within the line.
        let lead = raw_value.len() - trim_ows_start(raw_value).len();
        let value_at = name_len + ws + 1 + lead;
        head.header_lines = head.header_lines.saturating_add(1);
        if let Some(slot) = head.headers.get_mut(usize::from(head.stored)) {
            *slot = HeaderSpan {
                name: Span::of(line_at, 0, name_len),
                value: Span::of(line_at, value_at, value.len()),
            };
            head.stored += 1;
        } else {
            head.anomalies.insert(HeadAnomalies::HEADER_OVERFLOW);
        }
    }
}

fn trim_ows_start(mut s: &[u8]) -> &[u8] {
    while let [b' ' | b'\t', rest @ ..] = s {
        s = rest;
    }
    s
}

/// Why a start line was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineError {
    /// The line so far is consistent with HTTP; carries the confidence it already supports.
    Incomplete(u8),
    NotHttp,
}

struct RequestLine {
    method_len: usize,
    target_start: usize,
    target_len: usize,
    version: Version,
    anomalies: HeadAnomalies,
}

/// Parses `HTTP/d.d` exactly.
fn version_of(v: &[u8]) -> Option<Version> {
    match v {
        [b'H', b'T', b'T', b'P', b'/', maj, b'.', min]
            if maj.is_ascii_digit() && min.is_ascii_digit() =>
        {
            Some(match (maj - b'0', min - b'0') {
                (1, 0) => Version::Http10,
                (1, 1) => Version::Http11,
                (a, b) => Version::Other(a, b),
            })
        }
        _ => None,
    }
}

/// Could `v` still grow into `HTTP/d.d`?
fn version_prefix(v: &[u8]) -> bool {
    const SHAPE: &[u8] = b"HTTP/0.0";
    v.len() < SHAPE.len()
        && v.iter().zip(SHAPE).all(|(&b, &s)| {
            if s == b'0' {
                b.is_ascii_digit()
            } else {
                b == s
            }
        })
}

/// A request line (without CR LF). With `complete == false`, `text` is a line still
/// arriving, and the answer is Incomplete unless a byte already rules HTTP out.
fn request_line(text: &[u8], complete: bool) -> Result<RequestLine, LineError> {
    // A line still arriving may stop between its CR and LF.
    let text = if complete {
        text
    } else {
        text.strip_suffix(b"\r").unwrap_or(text)
    };
    let mut anomalies = HeadAnomalies::empty();
    let method_len = text.iter().take_while(|&&b| is_tchar(b)).count();
    let method = text.get(..method_len).unwrap_or(&[]);
    let known = is_known_method(method);
    if method_len == text.len() {
        let could_be = method_len <= METHOD_MAX;
        return if !complete && could_be {
            let prefix_of_known = KNOWN_METHODS.iter().any(|m| m.starts_with(method));
            Err(LineError::Incomplete(
                if prefix_of_known && method_len > 1 {
                    5
                } else {
                    0
                },
            ))
        } else {
            Err(LineError::NotHttp)
        };
    }
    if method_len == 0 || method_len > METHOD_MAX || text.get(method_len) != Some(&b' ') {
        return Err(LineError::NotHttp);
    }
    if !known {
        anomalies.insert(HeadAnomalies::UNKNOWN_METHOD);
    }
    let spaces = text
        .get(method_len..)
        .unwrap_or(&[])
        .iter()
        .take_while(|&&b| b == b' ')
        .count();
    if spaces > 1 {
        anomalies.insert(HeadAnomalies::MULTIPLE_SPACES);
    }
    let target_start = method_len + spaces;
    let after = text.get(target_start..).unwrap_or(&[]);
    let Some(&first) = after.first() else {
        return if complete {
            Err(LineError::NotHttp)
        } else {
            Err(LineError::Incomplete(if known { 10 } else { 0 }))
        };
    };
    // origin-form, asterisk-form, or absolute / authority form (RFC 9112 3.2).
    let origin = first == b'/';
    if !(origin || first == b'*' || first.is_ascii_alphabetic()) {
        return Err(LineError::NotHttp);
    }
    let absolute = after.len() >= 7
        && (prefix_ci_bytes(after, b"http://") || prefix_ci_bytes(after, b"https://"));
    let target_len = after.iter().take_while(|&&b| b != b' ').count();
    let target = after.get(..target_len).unwrap_or(&[]);
    if target.iter().any(|&b| is_ctl(b)) {
        return Err(LineError::NotHttp);
    }
    if target.iter().any(|&b| b >= 0x80) {
        anomalies.insert(HeadAnomalies::NON_ASCII_TARGET);
    }
    let missing_ok = known && (origin || absolute);
    let tentative = if known && origin { 40 } else { 0 };
    let tail = after.get(target_len..).unwrap_or(&[]);
    if tail.is_empty() {
        return if !complete {
            Err(LineError::Incomplete(tentative))
        } else if missing_ok {
            anomalies.insert(HeadAnomalies::MISSING_VERSION);
            Ok(RequestLine {
                method_len,
                target_start,
                target_len,
                version: Version::Missing,
                anomalies,
            })
        } else {
            Err(LineError::NotHttp)
        };
    }
    let vspaces = tail.iter().take_while(|&&b| b == b' ').count();
    if vspaces > 1 {
        anomalies.insert(HeadAnomalies::MULTIPLE_SPACES);
    }
    let vtext = tail.get(vspaces..).unwrap_or(&[]);
    if !complete {
        return if vtext.len() <= 8 && version_prefix(vtext) {
            let t = if known && vtext.len() >= 7 {
                80
            } else {
                tentative
            };
            Err(LineError::Incomplete(t))
        } else if known && (origin || absolute) && !vtext.starts_with(b"HTTP/") {
            // Could be a target with an unencoded space, or a version-less line; the line
            // end will tell.
            Err(LineError::Incomplete(tentative))
        } else if vtext.starts_with(b"HTTP/") {
            // Trailing bytes after a version: judged when the line ends.
            Err(LineError::Incomplete(tentative))
        } else {
            Err(LineError::NotHttp)
        };
    }
    // Trailing spaces after the version are tolerated and flagged.
    let vtrim = trim_ows(vtext);
    if vtrim.len() != vtext.len() {
        anomalies.insert(HeadAnomalies::MULTIPLE_SPACES);
    }
    if let Some(version) = version_of(vtrim) {
        if matches!(version, Version::Other(..)) {
            anomalies.insert(HeadAnomalies::UNUSUAL_VERSION);
        }
        return Ok(RequestLine {
            method_len,
            target_start,
            target_len,
            version,
            anomalies,
        });
    }
    // "GET /a b HTTP/1.1": the version is the last word, the target has a space in it.
    let last_sp = text.iter().rposition(|&b| b == b' ').unwrap_or(0);
    if let Some(version) = text.get(last_sp + 1..).and_then(version_of) {
        if last_sp > target_start {
            anomalies.insert(HeadAnomalies::SPACE_IN_TARGET);
            if matches!(version, Version::Other(..)) {
                anomalies.insert(HeadAnomalies::UNUSUAL_VERSION);
            }
            let target_len = trim_ows(text.get(target_start..last_sp).unwrap_or(&[])).len();
            return Ok(RequestLine {
                method_len,
                target_start,
                target_len,
                version,
                anomalies,
            });
        }
    }
    if missing_ok {
        anomalies.insert(HeadAnomalies::MISSING_VERSION);
        anomalies.insert(HeadAnomalies::SPACE_IN_TARGET);
        let target_len = trim_ows(after).len();
        return Ok(RequestLine {
            method_len,
            target_start,
            target_len,
            version: Version::Missing,
            anomalies,
        });
    }
    Err(LineError::NotHttp)
}

fn prefix_ci_bytes(data: &[u8], word: &[u8]) -> bool {
    data.get(..word.len())
        .is_some_and(|p| p.eq_ignore_ascii_case(word))
}

struct StatusLine {
    version: Version,
    status: u16,
    reason_start: usize,
    reason_len: usize,
    anomalies: HeadAnomalies,
}

/// `HTTP/d.d SP 3DIGIT [SP reason]` (without CR LF).
fn status_line(text: &[u8], complete: bool) -> Result<StatusLine, LineError> {
    let text = if complete {
        text
    } else {
        text.strip_suffix(b"\r").unwrap_or(text)
    };
    let mut anomalies = HeadAnomalies::empty();
    let vtext = text.get(..8.min(text.len())).unwrap_or(text);
    let Some(version) = version_of(vtext) else {
        return if !complete && version_prefix(vtext) {
            Err(LineError::Incomplete(if vtext.len() >= 5 { 30 } else { 5 }))
        } else {
            Err(LineError::NotHttp)
        };
    };
    if matches!(version, Version::Other(..)) {
        anomalies.insert(HeadAnomalies::UNUSUAL_VERSION);
    }
    let rest = text.get(8..).unwrap_or(&[]);
    let spaces = rest.iter().take_while(|&&b| b == b' ').count();
    if rest.is_empty() || (spaces == rest.len() && !complete) {
        return if complete {
            Err(LineError::NotHttp)
        } else {
            Err(LineError::Incomplete(40))
        };
    }
    if spaces == 0 {
        return Err(LineError::NotHttp);
    }
    if spaces > 1 {
        anomalies.insert(HeadAnomalies::MULTIPLE_SPACES);
    }
    let code = rest.get(spaces..).unwrap_or(&[]);
    let digits = code.iter().take_while(|&&b| b.is_ascii_digit()).count();
    if !complete && digits == code.len() && digits < 3 {
        return Err(LineError::Incomplete(50));
    }
    if digits != 3 {
        return Err(LineError::NotHttp);
    }
    let status = code
        .iter()
        .take(3)
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    if !(100..=599).contains(&status) {
        anomalies.insert(HeadAnomalies::BAD_STATUS_LINE);
    }
    let after = code.get(3..).unwrap_or(&[]);
    let reason_start = 8 + spaces + 3 + usize::from(!after.is_empty());
    match after.first() {
        None => {}
        Some(b' ') => {}
        Some(_) => return Err(LineError::NotHttp),
    }
    let reason = after.get(1..).unwrap_or(&[]);
    if reason.iter().any(|&b| is_ctl(b) && b != b'\t') {
        anomalies.insert(HeadAnomalies::BAD_STATUS_LINE);
    }
    if !complete {
        return Err(LineError::Incomplete(60));
    }
    Ok(StatusLine {
        version,
        status,
        reason_start,
        reason_len: reason.len(),
        anomalies,
    })
}

// ---------------------------------------------------------------------------------------------
// Probe.

/// Is this the start of an HTTP/1.x request or response? Known methods with a version are
/// near-certain; an unknown method needs a well-formed version; a known method without a
/// version needs a header line after it.
pub(crate) fn probe(data: &[u8]) -> Evidence {
    let (start, _) = skip_empty_lines(data);
    let rest = data.get(start..).unwrap_or(&[]);
    if rest.is_empty() {
        return Evidence::need(0, Role::Either);
    }
    if rest.starts_with(b"HTTP/") || b"HTTP/".starts_with(rest) {
        return probe_response(rest);
    }
    probe_request(rest)
}

/// The client connection preface of HTTP/2 with prior knowledge (RFC 9113 3.4).
pub const H2_PREFACE: &[u8; 24] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Is this the start of a cleartext HTTP/2 connection? The client's preface is certain (its
/// first line alone already outbids the HTTP/1 probe's reading of it as a request with the
/// PRI method); a server's first frame is a SETTINGS frame on stream 0 without the ACK flag,
/// whose length is a whole number of 6-byte settings.
pub(crate) fn probe_h2(data: &[u8]) -> Evidence {
    let n = data.len().min(H2_PREFACE.len());
    if data[..n] == H2_PREFACE[..n] {
        if n == H2_PREFACE.len() {
            return Evidence::matched(100, Role::Client);
        }
        // "PRI * HTTP/2.0\r\n" (16 bytes) is already more than any HTTP/1 request line.
        let tentative = if n >= 16 { 99 } else { (n * 5) as u8 };
        return Evidence::need(tentative, Role::Client);
    }
    match data {
        [l0, l1, l2, 0x04, 0x00, s0, s1, s2, s3, ..] => {
            let len = u32::from_be_bytes([0, *l0, *l1, *l2]);
            let stream = u32::from_be_bytes([*s0, *s1, *s2, *s3]) & 0x7fff_ffff;
            if stream == 0 && len % 6 == 0 && len <= 16_384 {
                Evidence::matched(85, Role::Server)
            } else {
                Evidence::no()
            }
        }
        // Too short for a frame header: only a SETTINGS frame's first bytes can still become one.
        [0x00] | [0x00, _] | [0x00, _, _] | [0x00, _, _, 0x04] | [0x00, _, _, 0x04, 0x00, ..] => {
            Evidence::need(10, Role::Server)
        }
        _ => Evidence::no(),
    }
}

fn probe_response(data: &[u8]) -> Evidence {
    let role = Role::Server;
    match first_line(data, 512) {
        Line::Complete { text, .. } => match status_line(text, true) {
            Ok(sl) => {
                let c = match sl.version {
                    Version::Http10 | Version::Http11 => 95,
                    _ => 70,
                };
                Evidence::matched(c, role)
            }
            Err(_) => Evidence::no(),
        },
        Line::Partial => match status_line(data, false) {
            Err(LineError::Incomplete(t)) => Evidence::need(t, role),
            _ => Evidence::no(),
        },
        Line::TooLong => Evidence::no(),
    }
}

fn probe_request(data: &[u8]) -> Evidence {
    let role = Role::Client;
    let (text, len) = match first_line(data, PROBE_LINE_CAP) {
        Line::Complete { text, len } => (text, len),
        Line::Partial => {
            return match request_line(data, false) {
                Err(LineError::Incomplete(t)) => Evidence::need(t, role),
                _ => Evidence::no(),
            }
        }
        // A request line this long is only credible with a known method and a path.
        Line::TooLong => {
            return match request_line(data, false) {
                Err(LineError::Incomplete(t)) if t >= 40 => Evidence::matched(40, role),
                _ => Evidence::no(),
            }
        }
    };
    let Ok(rl) = request_line(text, true) else {
        return Evidence::no();
    };
    let known = !rl.anomalies.contains(HeadAnomalies::UNKNOWN_METHOD);
    match rl.version {
        Version::Http10 | Version::Http11 if known => Evidence::matched(95, role),
        Version::Other(2, 0) if known => Evidence::matched(90, role),
        Version::Other(..) if known => Evidence::matched(75, role),
        Version::Http10 | Version::Http11 => Evidence::matched(65, role),
        Version::Other(..) => Evidence::matched(50, role),
        Version::Missing => {
            // HTTP/0.9-style line, or a malformed request followed by headers.
            let next = data.get(len..).unwrap_or(&[]);
            match first_line(next, PROBE_LINE_CAP) {
                Line::Complete { text: [], .. } => Evidence::matched(45, role),
                Line::Complete { text, .. } => {
                    let name = text.iter().take_while(|&&b| is_tchar(b)).count();
                    if name > 0 && text.get(name) == Some(&b':') {
                        Evidence::matched(55, role)
                    } else {
                        Evidence::no()
                    }
                }
                Line::Partial => Evidence::need(45, role),
                Line::TooLong => Evidence::no(),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Step;

    const REQ: &[u8] = b"GET /index.html?q=1 HTTP/1.1\r\nHost: example.com\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n";
    const RESP: &[u8] =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 5\r\n\r\nhello";

    #[test]
    fn parses_a_request_head() {
        let h = parse_request(REQ).unwrap();
        assert_eq!(h.kind(), HeadKind::Request);
        assert_eq!(h.method(), b"GET");
        assert!(h.method_known());
        assert_eq!(h.target(), b"/index.html?q=1");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.head_len(), REQ.len());
        assert!(h.is_strict());
        assert!(h.anomalies().is_empty(), "{:?}", h.anomalies());
        assert_eq!(h.host(), Some(&b"example.com"[..]));
        assert_eq!(h.user_agent(), Some(&b"curl/8.5.0"[..]));
        let names: Vec<_> = h.header_names().collect();
        assert_eq!(names, [&b"Host"[..], b"User-Agent", b"Accept"]);
        assert!(h.has_header("ACCEPT"));
        assert!(!h.has_header("cookie"));
        assert_eq!(h.status(), None);
        assert_eq!(h.body(), Body::Length(0));
        assert_eq!(h.next_message_offset(), Some(REQ.len()));
    }

    #[test]
    fn parses_a_response_head_and_its_body_length() {
        let h = parse_response(RESP).unwrap();
        assert_eq!(h.kind(), HeadKind::Response);
        assert_eq!(h.status(), Some(200));
        assert_eq!(h.reason(), b"OK");
        assert_eq!(h.version(), Version::Http11);
        assert_eq!(h.content_length(), ContentLength::Value(5));
        assert_eq!(h.body(), Body::Length(5));
        assert_eq!(h.next_message_offset(), Some(RESP.len()));
        assert!(h.is_strict());
        let auto = parse_head(RESP).unwrap();
        assert_eq!(auto.kind(), HeadKind::Response);
    }

    #[test]
    fn response_without_reason_or_length() {
        let h = parse_response(b"HTTP/1.0 204\r\n\r\n").unwrap();
        assert_eq!(h.status(), Some(204));
        assert_eq!(h.reason(), b"");
        assert_eq!(h.version(), Version::Http10);
        assert_eq!(h.body(), Body::Length(0));
        let h = parse_response(b"HTTP/1.1 200 OK\r\nServer: x\r\n\r\n").unwrap();
        assert_eq!(h.body(), Body::UntilClose);
        assert_eq!(h.next_message_offset(), None);
        let h =
            parse_response(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n").unwrap();
        assert!(h.is_chunked());
        assert_eq!(h.body(), Body::Chunked);
    }

    #[test]
    fn pipelined_requests_continue_at_the_next_offset() {
        let two = b"POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /b HTTP/1.1\r\nHost: h\r\n\r\n";
        let first = parse_request(two).unwrap();
        assert_eq!(first.method(), b"POST");
        let next = first.next_message_offset().unwrap();
        let second = parse_request(&two[next..]).unwrap();
        assert_eq!(second.method(), b"GET");
        assert_eq!(second.target(), b"/b");
        assert_eq!(next + second.head_len(), two.len());
    }

    #[test]
    fn every_prefix_is_incomplete_never_wrong() {
        for n in 0..REQ.len() {
            assert_eq!(
                parse_request(&REQ[..n]).err(),
                Some(HeadError::Incomplete),
                "request prefix {n}"
            );
            assert_eq!(
                parse_head(&REQ[..n]).err(),
                Some(HeadError::Incomplete),
                "head prefix {n}"
            );
        }
        let head_end = RESP.len() - 5;
        for n in 0..head_end {
            assert_eq!(
                parse_response(&RESP[..n]).err(),
                Some(HeadError::Incomplete),
                "response prefix {n}"
            );
        }
        assert!(parse_response(&RESP[..head_end]).is_ok());
    }

    #[test]
    fn missing_version_is_parsed_leniently() {
        let data = b"GET /gen.php?generate=1&hwid=-5\r\nHost: 5.8.88.25\r\nConnection:keep-alive\r\nUser-Agent:Mozilla/5.0\r\n\r\n";
        let h = parse_request(data).unwrap();
        assert_eq!(h.version(), Version::Missing);
        assert_eq!(h.target(), b"/gen.php?generate=1&hwid=-5");
        assert!(h.anomalies().contains(HeadAnomalies::MISSING_VERSION));
        assert!(h.anomalies().contains(HeadAnomalies::NO_SPACE_AFTER_COLON));
        assert!(!h.is_strict());
        assert_eq!(h.user_agent(), Some(&b"Mozilla/5.0"[..]));
        assert_eq!(h.header("connection"), Some(&b"keep-alive"[..]));
        // Unknown methods need a version.
        assert_eq!(
            parse_request(b"FOO /x\r\nA: b\r\n\r\n").err(),
            Some(HeadError::NotHttp)
        );
    }

    #[test]
    fn unknown_method_with_version_is_http() {
        let h =
            parse_request(b"NOTMETHOD /WANIPConnection HTTP/1.1\r\nHOST: 192.168.0.1:1780\r\n\r\n")
                .unwrap();
        assert_eq!(h.method(), b"NOTMETHOD");
        assert!(!h.method_known());
        assert!(h.anomalies().contains(HeadAnomalies::UNKNOWN_METHOD));
        // Casing of names is kept; lookups ignore it.
        assert_eq!(h.header_names().next(), Some(&b"HOST"[..]));
        assert_eq!(h.host(), Some(&b"192.168.0.1:1780"[..]));
        // httparse accepts any token as a method.
        assert!(h.is_strict());
    }

    #[test]
    fn hosts_count_and_conflict() {
        let h =
            parse_request(b"GET / HTTP/1.1\r\nHost: a.example\r\nX: y\r\nhost: A.EXAMPLE\r\n\r\n")
                .unwrap();
        assert_eq!(h.host_count(), 2);
        assert!(!h.hosts_conflict());
        let h =
            parse_request(b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n").unwrap();
        assert!(h.hosts_conflict());
        let h = parse_request(b"GET / HTTP/1.1\r\n\r\n").unwrap();
        assert_eq!(h.host(), None);
        assert_eq!(h.host_count(), 0);
        assert!(!h.hosts_conflict());
    }

    #[test]
    fn content_length_forms() {
        let cl = |hdrs: &str| {
            let text = format!("POST / HTTP/1.1\r\n{hdrs}\r\n");
            let h = parse_request(text.as_bytes()).unwrap();
            (h.content_length(), h.body())
        };
        assert_eq!(cl(""), (ContentLength::Absent, Body::Length(0)));
        assert_eq!(
            cl("Content-Length: 42\r\n"),
            (ContentLength::Value(42), Body::Length(42))
        );
        assert_eq!(cl("Content-Length: 7, 7\r\n").0, ContentLength::Value(7));
        assert_eq!(
            cl("Content-Length: 7\r\nContent-Length: 8\r\n"),
            (ContentLength::Conflicting, Body::Invalid)
        );
        assert_eq!(
            cl("Content-Length: -1\r\n"),
            (ContentLength::Invalid, Body::Invalid)
        );
        assert_eq!(
            cl("Content-Length: 99999999999999999999\r\n").0,
            ContentLength::Invalid
        );
        assert_eq!(cl("Transfer-Encoding: chunked\r\n").1, Body::Chunked);
        assert_eq!(cl("Transfer-Encoding: gzip\r\n").1, Body::Invalid);
    }

    #[test]
    fn header_capacity_overflow_is_flagged() {
        let mut text = b"GET / HTTP/1.1\r\n".to_vec();
        for i in 0..70 {
            text.extend_from_slice(format!("X-H{i}: v\r\n").as_bytes());
        }
        text.extend_from_slice(b"Host: late\r\n\r\n");
        let h = parse_request(&text).unwrap();
        assert_eq!(h.header_count(), MAX_HEADERS);
        assert_eq!(h.header_lines(), 71);
        assert!(h.header_overflow());
        assert!(!h.is_strict(), "httparse runs out of header slots too");
        // The late Host header is beyond capacity: counted, not stored.
        assert_eq!(h.host(), None);
    }

    #[test]
    fn lenient_forms_are_flagged() {
        let h = parse_request(b"\r\nGET  /a b HTTP/1.0\nHost : x\n\tfolded\nbad line\n\n").unwrap();
        let a = h.anomalies();
        for f in [
            HeadAnomalies::LEADING_EMPTY_LINES,
            HeadAnomalies::MULTIPLE_SPACES,
            HeadAnomalies::SPACE_IN_TARGET,
            HeadAnomalies::BARE_LF,
            HeadAnomalies::SPACE_BEFORE_COLON,
            HeadAnomalies::OBS_FOLD,
            HeadAnomalies::INVALID_HEADER_LINE,
        ] {
            assert!(
                a.contains(f),
                "{:?} missing from {:?}",
                f,
                a.names().collect::<Vec<_>>()
            );
        }
        assert_eq!(h.target(), b"/a b");
        assert_eq!(h.version(), Version::Http10);
        assert_eq!(h.host(), Some(&b"x"[..]));
        assert_eq!(h.header_count(), 1);
        assert!(!h.is_strict());
    }

    #[test]
    fn odd_versions_and_status_lines() {
        let h = parse_request(b"PRI * HTTP/2.0\r\n\r\n").unwrap();
        assert_eq!(h.version(), Version::Other(2, 0));
        assert!(h.anomalies().contains(HeadAnomalies::UNUSUAL_VERSION));
        let h = parse_response(b"HTTP/1.1  404  Not Found\r\n\r\n").unwrap();
        assert_eq!(h.status(), Some(404));
        assert!(h.anomalies().contains(HeadAnomalies::MULTIPLE_SPACES));
        assert_eq!(
            parse_response(b"HTTP/1.1 2000 OK\r\n\r\n").err(),
            Some(HeadError::NotHttp)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1 20\r\n\r\n").err(),
            Some(HeadError::NotHttp)
        );
        assert_eq!(
            parse_response(b"HTTP/1.1200 OK\r\n\r\n").err(),
            Some(HeadError::NotHttp)
        );
        let h = parse_response(b"HTTP/1.1 999 Odd\r\n\r\n").unwrap();
        assert!(h.anomalies().contains(HeadAnomalies::BAD_STATUS_LINE));
    }

    #[test]
    fn non_http_is_rejected() {
        for bad in [
            &b"xzscxc#$#AzMTax4wGxA5DSBkODw8e3d3PCsADwwXfXdienNreXM=$#$vxxd"[..],
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"220 mail.example.com ESMTP\r\n",
            b"EHLO client.example\r\n",
            b"a001 LOGIN user pass\r\n",
            b"\x00\x1c\x12\x34\x01\x00",
            b"GET\r\n\r\n",
            b"GET \r\n\r\n",
            b"GET /\x01 HTTP/1.1\r\n\r\n",
            b"HTTP/x.1 200 OK\r\n\r\n",
        ] {
            assert_eq!(
                parse_head(bad).err(),
                Some(HeadError::NotHttp),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        let mut junk_headers = b"GET / HTTP/1.1\r\n".to_vec();
        for _ in 0..20 {
            junk_headers.extend_from_slice(b"\x01\x02\x03\r\n");
        }
        assert_eq!(parse_request(&junk_headers).err(), Some(HeadError::NotHttp));
    }

    #[test]
    fn endless_head_is_too_long() {
        let mut text = b"GET / HTTP/1.1\r\n".to_vec();
        while text.len() <= MAX_HEAD_LEN {
            text.extend_from_slice(b"X-Filler: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\r\n");
        }
        assert_eq!(parse_request(&text).err(), Some(HeadError::TooLong));
    }

    #[test]
    fn probe_confidence_reflects_structure() {
        let p = |d: &[u8]| probe(d).step;
        assert_eq!(p(b"GET / HTTP/1.1\r\n"), Step::Match(95));
        assert_eq!(p(b"HTTP/1.0 200 OK\r\n"), Step::Match(95));
        assert_eq!(
            p(b"NOTMETHOD /WANIPConnection HTTP/1.1\r\n"),
            Step::Match(65)
        );
        assert_eq!(p(b"GET /gen.php?x=1\r\nHost:a\r\n"), Step::Match(55));
        assert_eq!(p(b"GET /gen.php?x=1\r\nHo"), Step::NeedMore(45));
        assert_eq!(p(b"GET /gen.php?x=1\r\n\x01\x02\r\n"), Step::NoMatch);
        assert_eq!(p(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), Step::Match(90));
        assert_eq!(p(b"GET /abc HTTP/1."), Step::NeedMore(80));
        assert_eq!(p(b"GET /abc"), Step::NeedMore(40));
        assert_eq!(p(b"GE"), Step::NeedMore(5));
        assert_eq!(p(b"FOO /x\r\n\r\n"), Step::NoMatch);
        assert_eq!(p(b"USER anonymous\r\n"), Step::NoMatch);
        assert_eq!(p(b"HTTP/1.1 200"), Step::NeedMore(60));
    }

    #[test]
    fn h2c_preface_and_server_settings_are_http2() {
        let p = |d: &[u8]| probe_h2(d).step;
        assert_eq!(p(H2_PREFACE), Step::Match(100));
        assert_eq!(p(&H2_PREFACE[..16]), Step::NeedMore(99));
        assert_eq!(p(b"PRI"), Step::NeedMore(15));
        assert_eq!(p(b"GET / HTTP/1.1\r\n"), Step::NoMatch);
        // nginx's opening SETTINGS: three settings, 18 bytes, stream 0.
        assert_eq!(p(&[0, 0, 18, 4, 0, 0, 0, 0, 0, 0, 3]), Step::Match(85));
        // An ACK, a frame on a stream, a length that is not whole settings: not an opening.
        assert_eq!(p(&[0, 0, 0, 4, 1, 0, 0, 0, 0]), Step::NoMatch);
        assert_eq!(p(&[0, 0, 18, 4, 0, 0, 0, 0, 1]), Step::NoMatch);
        assert_eq!(p(&[0, 0, 17, 4, 0, 0, 0, 0, 0]), Step::NoMatch);
        assert_eq!(p(&[0, 0, 18]), Step::NeedMore(10));
        assert_eq!(p(&[0x17, 3, 3, 0, 40]), Step::NoMatch);
    }
}
