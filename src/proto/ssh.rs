//! SSH identification strings (RFC 4253 4.2):
//! `SSH-protoversion-softwareversion SP comments CR LF`, at most 255 bytes with CR LF. A
//! server may send other lines first; a client may not.

use super::{Evidence, Role};
use crate::flow::Dir;

/// RFC 4253 4.2: the identification string is at most 255 characters including CR LF.
pub const MAX_BANNER_LEN: usize = 255;
/// How far a line is followed before it is judged without its end.
const LINE_HARD_CAP: usize = 1024;
/// Lines a server may send before its banner that we are willing to skip.
const MAX_LINES_BEFORE: u16 = 32;

/// Things about a banner that a well-behaved implementation would not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SshAnomalies(u16);

impl SshAnomalies {
    /// Line ended with LF alone (RFC requires CR LF; some old implementations send LF).
    pub const NO_CR: Self = Self(1 << 0);
    /// Longer than 255 bytes with CR LF.
    pub const TOO_LONG: Self = Self(1 << 1);
    /// No LF within the hard cap: the banner was judged on a cut line.
    pub const UNTERMINATED: Self = Self(1 << 2);
    /// Bytes outside printable US-ASCII (0x20..=0x7e).
    pub const NON_PRINTABLE: Self = Self(1 << 3);
    /// protoversion other than "2.0" or "1.99".
    pub const UNUSUAL_VERSION: Self = Self(1 << 4);
    /// Lines before the banner (allowed from a server only).
    pub const LINES_BEFORE: Self = Self(1 << 5);
    /// Lines before the banner sent by the client, which RFC 4253 does not allow.
    pub const LINES_BEFORE_FROM_CLIENT: Self = Self(1 << 6);
    /// Empty softwareversion.
    pub const EMPTY_SOFTWARE: Self = Self(1 << 7);
    /// softwareversion contains '-', which RFC 4253 excludes.
    pub const DASH_IN_SOFTWARE: Self = Self(1 << 8);
    /// No '-' after protoversion: not the `SSH-x-y` shape at all.
    pub const MALFORMED: Self = Self(1 << 9);

    const NAMES: [(SshAnomalies, &'static str); 10] = [
        (Self::NO_CR, "no_cr"),
        (Self::TOO_LONG, "too_long"),
        (Self::UNTERMINATED, "unterminated"),
        (Self::NON_PRINTABLE, "non_printable"),
        (Self::UNUSUAL_VERSION, "unusual_version"),
        (Self::LINES_BEFORE, "lines_before"),
        (Self::LINES_BEFORE_FROM_CLIENT, "lines_before_from_client"),
        (Self::EMPTY_SOFTWARE, "empty_software"),
        (Self::DASH_IN_SOFTWARE, "dash_in_software"),
        (Self::MALFORMED, "malformed"),
    ];

    pub const fn empty() -> Self {
        Self(0)
    }
    pub const fn bits(self) -> u16 {
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
    /// Names of the set flags, for logs and alerts.
    pub fn names(self) -> impl Iterator<Item = &'static str> {
        Self::NAMES
            .into_iter()
            .filter(move |(f, _)| self.contains(*f))
            .map(|(_, n)| n)
    }
}

/// A parsed identification string. Slices borrow the stream data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SshBanner<'a> {
    /// The whole line without CR LF.
    pub line: &'a [u8],
    pub proto_version: &'a [u8],
    pub software: &'a [u8],
    /// Text after the first space, when there is a space.
    pub comments: Option<&'a [u8]>,
    /// Where the banner line starts (after any lines before it).
    pub offset: usize,
    /// Just past the banner's LF: where the binary packet protocol begins.
    pub end: usize,
    pub lines_before: u16,
    pub anomalies: SshAnomalies,
}

impl SshBanner<'_> {
    /// SSH 2 proper, or a server that also speaks SSH 1 ("1.99", RFC 4253 5.1).
    pub fn is_v2(&self) -> bool {
        self.proto_version == b"2.0" || self.proto_version == b"1.99"
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BannerError {
    /// Could still be SSH: the banner line has not ended yet.
    Incomplete,
    NotSsh,
}

/// Parses the identification string at the start of one direction's stream. `dir` tells
/// whether lines before the banner are allowed (server) or an anomaly (client).
pub fn parse_banner(data: &[u8], dir: Dir) -> Result<SshBanner<'_>, BannerError> {
    let mut at = 0usize;
    let mut lines_before = 0u16;
    loop {
        let rest = data.get(at..).unwrap_or(&[]);
        // The identification string is case-sensitive.
        if rest.starts_with(b"SSH-") {
            break;
        }
        if b"SSH-".starts_with(rest) {
            return Err(BannerError::Incomplete);
        }
        let window = rest.get(..LINE_HARD_CAP.min(rest.len())).unwrap_or(rest);
        let Some(lf) = window.iter().position(|&b| b == b'\n') else {
            return if rest.len() < LINE_HARD_CAP {
                Err(BannerError::Incomplete)
            } else {
                Err(BannerError::NotSsh)
            };
        };
        // Lines before the banner are text; binary data with a stray LF is not SSH.
        let line = window.get(..lf).unwrap_or(&[]);
        if !line
            .iter()
            .all(|&b| b == b'\r' || b == b'\t' || b >= 0x20 && b != 0x7f)
        {
            return Err(BannerError::NotSsh);
        }
        lines_before += 1;
        if lines_before > MAX_LINES_BEFORE {
            return Err(BannerError::NotSsh);
        }
        at += lf + 1;
    }

    let rest = data.get(at..).unwrap_or(&[]);
    let mut anomalies = SshAnomalies::empty();
    if lines_before > 0 {
        anomalies.insert(SshAnomalies::LINES_BEFORE);
        if dir == Dir::ToServer {
            anomalies.insert(SshAnomalies::LINES_BEFORE_FROM_CLIENT);
        }
    }
    let window = rest.get(..LINE_HARD_CAP.min(rest.len())).unwrap_or(rest);
    let (line, consumed) = match window.iter().position(|&b| b == b'\n') {
        Some(lf) => {
            let raw = window.get(..lf).unwrap_or(&[]);
            let line = match raw.strip_suffix(b"\r") {
                Some(l) => l,
                None => {
                    anomalies.insert(SshAnomalies::NO_CR);
                    raw
                }
            };
            if lf + 1 > MAX_BANNER_LEN {
                anomalies.insert(SshAnomalies::TOO_LONG);
            }
            (line, lf + 1)
        }
        None if rest.len() < LINE_HARD_CAP => return Err(BannerError::Incomplete),
        None => {
            anomalies.insert(SshAnomalies::TOO_LONG);
            anomalies.insert(SshAnomalies::UNTERMINATED);
            (window, window.len())
        }
    };

    if !line.iter().all(|&b| (0x20..=0x7e).contains(&b)) {
        anomalies.insert(SshAnomalies::NON_PRINTABLE);
    }
    let after_ssh = line.get(4..).unwrap_or(&[]);
    let (proto_version, software, comments) = match after_ssh.iter().position(|&b| b == b'-') {
        Some(dash) => {
            let proto = after_ssh.get(..dash).unwrap_or(&[]);
            let tail = after_ssh.get(dash + 1..).unwrap_or(&[]);
            match tail.iter().position(|&b| b == b' ') {
                Some(sp) => (
                    proto,
                    tail.get(..sp).unwrap_or(&[]),
                    Some(tail.get(sp + 1..).unwrap_or(&[])),
                ),
                None => (proto, tail, None),
            }
        }
        None => {
            anomalies.insert(SshAnomalies::MALFORMED);
            (after_ssh, &[][..], None)
        }
    };
    if proto_version != b"2.0" && proto_version != b"1.99" {
        anomalies.insert(SshAnomalies::UNUSUAL_VERSION);
    }
    if software.is_empty() {
        anomalies.insert(SshAnomalies::EMPTY_SOFTWARE);
    }
    if software.contains(&b'-') {
        anomalies.insert(SshAnomalies::DASH_IN_SOFTWARE);
    }
    Ok(SshBanner {
        line,
        proto_version,
        software,
        comments,
        offset: at,
        end: at + consumed,
        lines_before,
        anomalies,
    })
}

/// Probe: "SSH-<digits.digits>-" opens the stream (either direction), or, from a server,
/// follows a few text lines.
pub(crate) fn probe(data: &[u8]) -> Evidence {
    if data.starts_with(b"SSH-") {
        return probe_banner_start(data, Role::Either, 0);
    }
    if b"SSH-".starts_with(data) {
        return Evidence::need(if data.len() >= 3 { 30 } else { 5 }, Role::Either);
    }
    // Lines before the banner: only judged on the lines already here, so that ordinary
    // text protocols are not held back waiting for a banner that never comes.
    let mut at = 0usize;
    for _ in 0..MAX_LINES_BEFORE {
        let rest = data.get(at..).unwrap_or(&[]);
        // A byte that is neither text nor the line feed before the line's end ends the probe,
        // and so does a line without a line feed within the cap. Binary streams, most of what
        // this sees, fail on their first byte, before the search; text lines are found with
        // memchr and then checked, instead of byte by byte.
        let window = rest.get(..LINE_HARD_CAP.min(rest.len())).unwrap_or(rest);
        let is_text = |b: u8| b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b);
        if window.first().is_some_and(|&b| b != b'\n' && !is_text(b)) {
            return Evidence::no();
        }
        let line_end = memchr::memchr(b'\n', window);
        let line = window
            .get(..line_end.unwrap_or(window.len()))
            .unwrap_or(window);
        if !line.iter().all(|&b| is_text(b)) {
            return Evidence::no();
        }
        let Some(lf) = line_end else {
            return Evidence::no();
        };
        at += lf + 1;
        let next = data.get(at..).unwrap_or(&[]);
        if next.starts_with(b"SSH-") {
            let ev = probe_banner_start(next, Role::Server, 25);
            return match ev.step {
                super::Step::NeedMore(_) => Evidence::no(),
                _ => ev,
            };
        }
    }
    Evidence::no()
}

/// `data` starts with "SSH-": judge the protoversion. `penalty` lowers the confidence of a
/// banner found after other lines.
fn probe_banner_start(data: &[u8], role: Role, penalty: u8) -> Evidence {
    let version = data.get(4..).unwrap_or(&[]);
    let n = version
        .iter()
        .take(8)
        .take_while(|&&b| b.is_ascii_digit() || b == b'.')
        .count();
    match version.get(n) {
        None if n < 8 => Evidence::need(50u8.saturating_sub(penalty), role),
        Some(b'-') if n > 0 => {
            let proto = version.get(..n).unwrap_or(&[]);
            let confidence: u8 = match proto {
                b"2.0" => 97,
                b"1.99" => 95,
                [b'1', b'.', ..] => 80,
                _ => 60,
            };
            Evidence::matched(confidence.saturating_sub(penalty), role)
        }
        _ => Evidence::no(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::Step;

    /// The probe as it read lines before memchr: byte by byte, stopping at the first byte that
    /// is neither text nor a line feed.
    fn probe_bytewise(data: &[u8]) -> Evidence {
        if data.starts_with(b"SSH-") {
            return probe_banner_start(data, Role::Either, 0);
        }
        if b"SSH-".starts_with(data) {
            return Evidence::need(if data.len() >= 3 { 30 } else { 5 }, Role::Either);
        }
        let mut at = 0usize;
        for _ in 0..MAX_LINES_BEFORE {
            let rest = data.get(at..).unwrap_or(&[]);
            let mut line_end = None;
            for (i, &b) in rest.iter().take(LINE_HARD_CAP).enumerate() {
                if b == b'\n' {
                    line_end = Some(i);
                    break;
                }
                if !(b == b'\r' || b == b'\t' || (0x20..0x7f).contains(&b)) {
                    return Evidence::no();
                }
            }
            let Some(lf) = line_end else {
                return Evidence::no();
            };
            at += lf + 1;
            let next = data.get(at..).unwrap_or(&[]);
            if next.starts_with(b"SSH-") {
                let ev = probe_banner_start(next, Role::Server, 25);
                return match ev.step {
                    Step::NeedMore(_) => Evidence::no(),
                    _ => ev,
                };
            }
        }
        Evidence::no()
    }

    #[test]
    fn the_line_search_answers_as_the_bytewise_scan_did() {
        // Streams built from pieces that hit every branch: text, line feeds, a banner after
        // lines, binary bytes at the start, inside and at the end of a line, lines at and past
        // the cap, and more lines than are looked at.
        let long = vec![b'a'; LINE_HARD_CAP - 1];
        let too_long = vec![b'a'; LINE_HARD_CAP + 1];
        let pieces: [&[u8]; 14] = [
            b"220 mail.example ESMTP\r\n",
            b"\n",
            b"SSH-2.0-OpenSSH_9.6\r\n",
            b"SSH-1.99-x\r\n",
            b"SSH-",
            b"SSH-2.",
            b"\x16\x03\x01\x02\x00",
            b"text\x00more\n",
            b"tab\there\r\n",
            b"\xc3\xa9t\xc3\xa9\n",
            b"x",
            &long,
            &too_long,
            b"\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n\n",
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        let mut checked = 0;
        for len in 0..6 {
            for _ in 0..400 {
                let mut data = Vec::new();
                for _ in 0..len {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    data.extend_from_slice(pieces[(seed % pieces.len() as u64) as usize]);
                }
                assert_eq!(probe(&data), probe_bytewise(&data), "{data:?}");
                checked += 1;
            }
        }
        assert_eq!(checked, 2400);
    }

    #[test]
    fn parses_a_plain_banner() {
        let b = parse_banner(
            b"SSH-2.0-OpenSSH_9.6p1 Ubuntu-3ubuntu13.5\r\n\0\0\0\x14",
            Dir::ToServer,
        )
        .unwrap();
        assert_eq!(b.proto_version, b"2.0");
        assert_eq!(b.software, b"OpenSSH_9.6p1");
        assert_eq!(b.comments, Some(&b"Ubuntu-3ubuntu13.5"[..]));
        assert_eq!(b.offset, 0);
        assert_eq!(b.end, 42);
        assert!(b.anomalies.is_empty(), "{:?}", b.anomalies);
        assert!(b.is_v2());
    }

    #[test]
    fn flags_missing_cr_and_old_versions() {
        let b = parse_banner(b"SSH-1.5-OldServer\n", Dir::ToClient).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::NO_CR));
        assert!(b.anomalies.contains(SshAnomalies::UNUSUAL_VERSION));
        assert!(!b.is_v2());
        let names: Vec<_> = b.anomalies.names().collect();
        assert_eq!(names, ["no_cr", "unusual_version"]);
        let b = parse_banner(b"SSH-1.99-Cisco-1.25\r\n", Dir::ToClient).unwrap();
        assert!(b.is_v2());
        assert!(b.anomalies.contains(SshAnomalies::DASH_IN_SOFTWARE));
        assert!(!b.anomalies.contains(SshAnomalies::UNUSUAL_VERSION));
    }

    #[test]
    fn lines_before_are_allowed_for_servers_only() {
        let data = b"Welcome to host\r\nAuthorized use only\r\nSSH-2.0-dropbear_2022.83\r\n";
        let s = parse_banner(data, Dir::ToClient).unwrap();
        assert_eq!(s.lines_before, 2);
        assert_eq!(s.software, b"dropbear_2022.83");
        assert_eq!(s.offset, 38);
        assert!(s.anomalies.contains(SshAnomalies::LINES_BEFORE));
        assert!(!s.anomalies.contains(SshAnomalies::LINES_BEFORE_FROM_CLIENT));
        let c = parse_banner(data, Dir::ToServer).unwrap();
        assert!(c.anomalies.contains(SshAnomalies::LINES_BEFORE_FROM_CLIENT));
    }

    #[test]
    fn flags_long_non_printable_and_malformed_banners() {
        let mut long = b"SSH-2.0-".to_vec();
        long.extend(std::iter::repeat_n(b'a', 300));
        long.extend_from_slice(b"\r\n");
        let b = parse_banner(&long, Dir::ToServer).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::TOO_LONG));
        assert!(!b.anomalies.contains(SshAnomalies::UNTERMINATED));

        let mut endless = b"SSH-2.0-".to_vec();
        endless.extend(std::iter::repeat_n(b'a', 2000));
        assert_eq!(
            parse_banner(&endless[..500], Dir::ToServer),
            Err(BannerError::Incomplete)
        );
        let b = parse_banner(&endless, Dir::ToServer).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::UNTERMINATED));
        assert_eq!(b.end, LINE_HARD_CAP);

        let b = parse_banner(b"SSH-2.0-bad\x01name\r\n", Dir::ToServer).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::NON_PRINTABLE));
        let b = parse_banner(b"SSH-2.0\r\n", Dir::ToServer).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::MALFORMED));
        assert!(b.anomalies.contains(SshAnomalies::EMPTY_SOFTWARE));
        let b = parse_banner(b"SSH-2.0-\r\n", Dir::ToServer).unwrap();
        assert!(b.anomalies.contains(SshAnomalies::EMPTY_SOFTWARE));
        assert!(!b.anomalies.contains(SshAnomalies::MALFORMED));
    }

    #[test]
    fn incomplete_and_not_ssh() {
        let full = b"SSH-2.0-Go\r\n";
        for n in 0..full.len() {
            assert_eq!(
                parse_banner(&full[..n], Dir::ToClient),
                Err(BannerError::Incomplete),
                "prefix {n}"
            );
        }
        assert!(parse_banner(full, Dir::ToClient).is_ok());
        assert_eq!(
            parse_banner(b"\x16\x03\x01\x02\x00\x01\n", Dir::ToServer),
            Err(BannerError::NotSsh)
        );
        assert_eq!(
            parse_banner(b"ssh-2.0-lower\r\n", Dir::ToServer),
            // Case matters: this is a line before a banner that has not come yet.
            Err(BannerError::Incomplete)
        );
        let mut many = Vec::new();
        for _ in 0..40 {
            many.extend_from_slice(b"hello\r\n");
        }
        many.extend_from_slice(b"SSH-2.0-x\r\n");
        assert_eq!(parse_banner(&many, Dir::ToClient), Err(BannerError::NotSsh));
    }

    #[test]
    fn probe_confidence_tracks_the_version() {
        let m = |d: &[u8]| probe(d).step;
        assert_eq!(m(b"SSH-2.0-"), Step::Match(97));
        assert_eq!(m(b"SSH-1.99-x"), Step::Match(95));
        assert_eq!(m(b"SSH-1.5-x"), Step::Match(80));
        assert_eq!(m(b"SSH-3.1-x"), Step::Match(60));
        assert_eq!(m(b"SSH-2."), Step::NeedMore(50));
        assert_eq!(m(b"SS"), Step::NeedMore(5));
        assert_eq!(m(b"SSH-x"), Step::NoMatch);
        assert_eq!(m(b"SSH--"), Step::NoMatch);
        assert_eq!(m(b"SSH-123456789"), Step::NoMatch);
        let pre = probe(b"Hello there\r\nSSH-2.0-srv\r\n");
        assert_eq!(pre.step, Step::Match(72));
        assert_eq!(pre.role, Role::Server);
        assert_eq!(m(b"Hello there\r\nSSH-2."), Step::NoMatch);
        assert_eq!(m(b"Hello there\r\n"), Step::NoMatch);
    }
}
