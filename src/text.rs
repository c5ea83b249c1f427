//! Fixed-capacity text that lives inline, so the packet path can record names, SNIs and
//! fingerprints without touching the heap.

use std::fmt;

/// UTF-8 text of at most `N` bytes, stored inline. Writes past the capacity are cut at a
/// character boundary and remembered in [`InlineStr::truncated`], never an error.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct InlineStr<const N: usize> {
    len: u16,
    truncated: bool,
    buf: [u8; N],
}

impl<const N: usize> Default for InlineStr<N> {
    fn default() -> Self {
        Self::new()
    }
}

impl<const N: usize> InlineStr<N> {
    // N must fit the u16 length; checked at compile time wherever a size is instantiated.
    const CAPACITY_FITS: () = assert!(N <= u16::MAX as usize);

    pub const fn new() -> Self {
        #[allow(clippy::let_unit_value)]
        let _ = Self::CAPACITY_FITS;
        InlineStr {
            len: 0,
            truncated: false,
            buf: [0; N],
        }
    }

    /// Copies `s`, cutting it to capacity.
    pub fn from_str_lossy(s: &str) -> Self {
        let mut out = Self::new();
        out.push_str(s);
        out
    }

    /// Copies bytes that should be text; invalid UTF-8 is replaced by `\xNN` escapes so an
    /// analyst sees exactly what was on the wire.
    pub fn from_bytes_escaped(bytes: &[u8]) -> Self {
        let mut out = Self::new();
        out.push_bytes_escaped(bytes);
        out
    }

    pub fn as_str(&self) -> &str {
        // Only whole UTF-8 characters are ever copied in (see push_str), so this cannot fail;
        // the fallback keeps the accessor panic-free regardless.
        std::str::from_utf8(&self.buf[..self.len as usize]).unwrap_or("")
    }

    /// The text's bytes, without the UTF-8 check [`InlineStr::as_str`] makes: for hashing.
    pub fn as_bytes(&self) -> &[u8] {
        self.buf.get(..self.len as usize).unwrap_or(&[])
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub const fn capacity(&self) -> usize {
        N
    }

    /// True when something written did not fit.
    pub fn truncated(&self) -> bool {
        self.truncated
    }

    pub fn clear(&mut self) {
        self.len = 0;
        self.truncated = false;
    }

    pub fn push_str(&mut self, s: &str) {
        let room = N - self.len as usize;
        let take = if s.len() <= room {
            s.len()
        } else {
            self.truncated = true;
            let mut cut = room;
            while cut > 0 && !s.is_char_boundary(cut) {
                cut -= 1;
            }
            cut
        };
        let start = self.len as usize;
        self.buf[start..start + take].copy_from_slice(&s.as_bytes()[..take]);
        self.len += take as u16;
    }

    /// Appends ASCII bytes (digits, hex) without a UTF-8 check; a byte above 0x7f, which a
    /// caller should never pass, is written as `?` so the text stays valid.
    pub fn push_ascii(&mut self, bytes: &[u8]) {
        let start = self.len as usize;
        let take = bytes.len().min(N - start);
        if take < bytes.len() {
            self.truncated = true;
        }
        if let Some(dst) = self.buf.get_mut(start..start + take) {
            for (d, &b) in dst.iter_mut().zip(bytes) {
                *d = if b.is_ascii() { b } else { b'?' };
            }
        }
        self.len += take as u16;
    }

    pub fn push_char(&mut self, c: char) {
        let mut tmp = [0u8; 4];
        self.push_str(c.encode_utf8(&mut tmp));
    }

    pub fn push_bytes_escaped(&mut self, bytes: &[u8]) {
        for chunk in bytes.utf8_chunks() {
            for c in chunk.valid().chars() {
                if c.is_control() {
                    self.push_escaped_byte_chars(c);
                } else {
                    self.push_char(c);
                }
            }
            for b in chunk.invalid() {
                self.push_hex_escape(*b);
            }
        }
    }

    fn push_escaped_byte_chars(&mut self, c: char) {
        let mut tmp = [0u8; 4];
        for b in c.encode_utf8(&mut tmp).bytes() {
            self.push_hex_escape(b);
        }
    }

    fn push_hex_escape(&mut self, b: u8) {
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let esc = [b'\\', b'x', HEX[(b >> 4) as usize], HEX[(b & 0xf) as usize]];
        // The escape is pure ASCII, so it is valid UTF-8.
        self.push_str(std::str::from_utf8(&esc).unwrap_or("?"));
    }
}

impl<const N: usize> fmt::Write for InlineStr<N> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.push_str(s);
        Ok(())
    }
}

impl<const N: usize> fmt::Display for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl<const N: usize> fmt::Debug for InlineStr<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl<const N: usize> PartialEq<str> for InlineStr<N> {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl<const N: usize> PartialEq<&str> for InlineStr<N> {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// Proleptic Gregorian date of a day count since 1970-01-01 (days-from-civil inverted, using
/// 400-year eras so the arithmetic stays in integers).
pub fn civil_from_days(days: i64) -> (i64, u32, u32) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let y = yoe + era * 400 + i64::from(m <= 2);
    (y, m, d)
}

/// Suricata's TLS date layout: `2016-01-01T00:00:00`, UTC, no zone.
pub struct TlsDate(pub i64);

impl TlsDate {
    /// The text written by hand for years 0 to 9999: `core::fmt`'s padding machinery cost more
    /// than the date arithmetic, and every TLS record and certificate-date finding writes
    /// dates. Other years (a sign, a fifth digit) go through `write!`.
    fn ascii(&self) -> Option<[u8; 19]> {
        let days = self.0.div_euclid(86_400);
        let sod = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        let y = u32::try_from(y).ok().filter(|y| *y <= 9999)?;
        let two = |v: u32| [b'0' + (v / 10 % 10) as u8, b'0' + (v % 10) as u8];
        let sod = sod as u32;
        let [y1, y2] = two(y / 100);
        let [y3, y4] = two(y % 100);
        let [m1, m2] = two(m);
        let [d1, d2] = two(d);
        let [h1, h2] = two(sod / 3600);
        let [n1, n2] = two((sod / 60) % 60);
        let [s1, s2] = two(sod % 60);
        Some([
            y1, y2, y3, y4, b'-', m1, m2, b'-', d1, d2, b'T', h1, h2, b':', n1, n2, b':', s1, s2,
        ])
    }
}

impl fmt::Display for TlsDate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(text) = self.ascii() {
            if let Ok(s) = std::str::from_utf8(&text) {
                return f.write_str(s);
            }
        }
        let days = self.0.div_euclid(86_400);
        let sod = self.0.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }
}

const BASE64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 (RFC 4648 section 4, with padding) of `input` into `out`, which must hold
/// exactly `4 * ceil(input.len() / 3)` bytes. Written here rather than pulled in as a crate:
/// the callers encode 20-byte SHA-1 digests (Community ID, WebSocket accept values).
pub fn base64_into(input: &[u8], out: &mut [u8]) {
    debug_assert_eq!(out.len(), input.len().div_ceil(3) * 4);
    for (chunk, quad) in input.chunks(3).zip(out.chunks_mut(4)) {
        let byte = |i: usize| u32::from(chunk.get(i).copied().unwrap_or(0));
        let group = byte(0) << 16 | byte(1) << 8 | byte(2);
        for (j, c) in quad.iter_mut().enumerate() {
            // A short last chunk of n bytes fills n + 1 characters; the rest are padding.
            *c = if j <= chunk.len() {
                BASE64[(group >> (18 - 6 * j)) as usize & 63]
            } else {
                b'='
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fmt::Write;

    /// What `TlsDate` wrote before its hand-written path: `write!` with padding.
    fn tls_date_by_format(t: i64) -> String {
        let days = t.div_euclid(86_400);
        let sod = t.rem_euclid(86_400);
        let (y, m, d) = civil_from_days(days);
        format!(
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60
        )
    }

    #[test]
    fn tls_dates_read_as_the_padded_format_wrote_them() {
        // Every hour over years -2 to 10002 would be slow; a prime step walks every day, hour,
        // minute and second combination closely enough, and the edges are listed.
        let first = -62_200_000_000i64; // year -2
        let last = 253_500_000_000i64; // year 10003
        let mut t = first;
        while t < last {
            assert_eq!(TlsDate(t).to_string(), tls_date_by_format(t), "{t}");
            t += 86_399 * 7 + 3_607;
        }
        for t in [
            0,
            -1,
            86_399,
            86_400,
            -62_167_219_200, // 0000-01-01T00:00:00
            -62_167_219_201, // a second before: year -1
            253_402_300_799, // 9999-12-31T23:59:59
            253_402_300_800, // 10000-01-01T00:00:00
            i64::MAX / 1000,
            i64::MIN / 1000,
        ] {
            assert_eq!(TlsDate(t).to_string(), tls_date_by_format(t), "{t}");
        }
    }

    #[test]
    fn ascii_pushes_keep_the_text_valid_and_cut_at_capacity() {
        let mut s = InlineStr::<6>::new();
        s.push_ascii(b"12");
        s.push_ascii(&[b'a', 0xc3, b'b']);
        assert_eq!(s.as_str(), "12a?b");
        assert_eq!(s.as_bytes(), b"12a?b");
        assert!(!s.truncated());
        s.push_ascii(b"xyz");
        assert_eq!(s.as_str(), "12a?bx");
        assert!(s.truncated());
    }

    #[test]
    fn keeps_text_that_fits() {
        let mut s = InlineStr::<8>::new();
        s.push_str("abc");
        write!(s, "{}", 12).unwrap();
        assert_eq!(s, "abc12");
        assert!(!s.truncated());
    }

    #[test]
    fn cuts_at_capacity_on_a_char_boundary() {
        let s = InlineStr::<4>::from_str_lossy("abé€");
        // "ab" (2) + "é" (2) = 4; "€" does not fit.
        assert_eq!(s, "abé");
        assert!(s.truncated());
        let t = InlineStr::<3>::from_str_lossy("abé");
        assert_eq!(t, "ab");
        assert!(t.truncated());
    }

    #[test]
    fn escapes_invalid_and_control_bytes() {
        let s = InlineStr::<32>::from_bytes_escaped(b"a\xffb\n");
        assert_eq!(s, "a\\xffb\\x0a");
    }

    #[test]
    fn base64_matches_rfc4648_vectors() {
        for (input, want) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            let mut out = vec![0u8; input.len().div_ceil(3) * 4];
            base64_into(input.as_bytes(), &mut out);
            assert_eq!(std::str::from_utf8(&out).unwrap(), want, "{input:?}");
        }
        // Every alphabet position, including '+' and '/'.
        let all: Vec<u8> = (0u8..=255).collect();
        let mut out = vec![0u8; all.len().div_ceil(3) * 4];
        base64_into(&all, &mut out);
        assert!(out.starts_with(b"AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8g"));
        assert!(out.ends_with(b"+/w=="));
    }
}
