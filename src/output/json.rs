//! A JSON writer that appends straight to a byte buffer, for the EVE writer's hot loop.
//!
//! Building each record as a `serde_json::Value` tree cost the writer more than everything
//! else it does (a map insert, a heap string and a free per field). This writes the same bytes
//! directly: serde_json's compact layout (no spaces), its string escaping (`"`, `\`, and the
//! control characters below U+0020 as `\b \t \n \f \r` or `\u00xx`; everything else, `/`, DEL
//! and non-ASCII included, as is) and its integer digits. Keys come out in the order they are
//! written, as serde_json's `preserve_order` kept them, so callers write each key once and in
//! the record's order.
//!
//! Objects and arrays close themselves when dropped, so a nested object is a scope.

use std::fmt;

/// Appends `s` as a JSON string, quoted and escaped as serde_json escapes it.
pub fn write_str(out: &mut Vec<u8>, s: &str) {
    out.push(b'"');
    escape_into(out, s);
    out.push(b'"');
}

/// Whether any of the 8 bytes of `w` is below 0x20, `"` or `\\` (exact: no byte is missed,
/// and a byte is reported only when one of them is there).
fn word_needs_escape(w: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // A byte below n (n <= 0x80) sets its high bit in (w - n) & !w; a zero byte of w ^ c is
    // a byte equal to c.
    let control = w.wrapping_sub(ONES * 0x20) & !w;
    let q = w ^ (ONES * u64::from(b'"'));
    let quote = q.wrapping_sub(ONES) & !q;
    let b = w ^ (ONES * u64::from(b'\\'));
    let backslash = b.wrapping_sub(ONES) & !b;
    (control | quote | backslash) & HIGH != 0
}

/// Appends `s` escaped, without the quotes.
fn escape_into(out: &mut Vec<u8>, s: &str) {
    let bytes = s.as_bytes();
    // Most strings need no escape at all: find that eight bytes at a time.
    let mut clean = 0;
    while let Some(chunk) = bytes.get(clean..clean + 8) {
        let mut w = [0u8; 8];
        w.copy_from_slice(chunk);
        if word_needs_escape(u64::from_le_bytes(w)) {
            break;
        }
        clean += 8;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate().skip(clean) {
        if b >= 0x20 && b != b'"' && b != b'\\' {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        let short: &[u8] = match b {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            0x08 => b"\\b",
            0x0c => b"\\f",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            _ => {
                const HEX: &[u8; 16] = b"0123456789abcdef";
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0xf)]);
                continue;
            }
        };
        out.extend_from_slice(short);
    }
    out.extend_from_slice(&bytes[start..]);
}

/// "00" to "99", two bytes each.
const PAIRS: &[u8; 200] = b"\
0001020304050607080910111213141516171819\
2021222324252627282930313233343536373839\
4041424344454647484950515253545556575859\
6061626364656667686970717273747576777879\
8081828384858687888990919293949596979899";

/// Appends `v % 100` as two digits.
pub fn write_2digits(out: &mut Vec<u8>, v: u64) {
    let at = (v % 100) as usize * 2;
    out.extend_from_slice(&PAIRS[at..at + 2]);
}

/// Appends `v` in decimal.
pub fn write_u64(out: &mut Vec<u8>, mut v: u64) {
    // Most numbers in a record (ports, octets, counts, flags) are short: no loop for them.
    if v < 10 {
        out.push(b'0' + v as u8);
        return;
    }
    if v < 100 {
        write_2digits(out, v);
        return;
    }
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[at..]);
}

/// A `fmt::Write` that escapes what is written into it as the inside of a JSON string.
struct Escaping<'a>(&'a mut Vec<u8>);

impl fmt::Write for Escaping<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        escape_into(self.0, s);
        Ok(())
    }
}

/// Appends what `v` displays as one JSON string.
pub fn write_display(out: &mut Vec<u8>, v: impl fmt::Display) {
    out.push(b'"');
    // Writing into a Vec cannot fail; a Display impl that reports an error leaves what it
    // wrote so far, as serde_json's collect_str would have failed the whole record instead.
    let _ = fmt::write(&mut Escaping(out), format_args!("{v}"));
    out.push(b'"');
}

/// An object being written; `}` is appended when it is dropped.
pub struct JsonObject<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonObject<'a> {
    /// Starts an object at the end of `out`.
    pub fn new(out: &'a mut Vec<u8>) -> JsonObject<'a> {
        out.push(b'{');
        JsonObject { out, empty: true }
    }

    /// Writes `k` as it is: keys are the writer's own names, plain ASCII with nothing to
    /// escape (escaping every key was a fifth of the writer). Names that come from elsewhere go
    /// through [`JsonObject::str_named`].
    fn key(&mut self, k: &'static str) {
        debug_assert!(
            !k.bytes().any(|b| b < 0x20 || b == b'"' || b == b'\\'),
            "{k:?}"
        );
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        self.out.push(b'"');
        self.out.extend_from_slice(k.as_bytes());
        self.out.extend_from_slice(b"\":");
    }

    /// A string field whose name is not the writer's own (evidence names): escaped like a
    /// value.
    pub fn str_named(&mut self, k: &str, v: &str) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
        write_str(self.out, k);
        self.out.push(b':');
        write_str(self.out, v);
    }

    pub fn str(&mut self, k: &'static str, v: &str) {
        self.key(k);
        write_str(self.out, v);
    }

    /// A string field whose value is what `v` displays.
    pub fn display(&mut self, k: &'static str, v: impl fmt::Display) {
        self.key(k);
        write_display(self.out, v);
    }

    pub fn u64(&mut self, k: &'static str, v: u64) {
        self.key(k);
        write_u64(self.out, v);
    }

    pub fn bool(&mut self, k: &'static str, v: bool) {
        self.key(k);
        self.out
            .extend_from_slice(if v { b"true" as &[u8] } else { b"false" });
    }

    /// Writes the key and returns the buffer, for a value the caller appends itself.
    pub fn raw(&mut self, k: &'static str) -> &mut Vec<u8> {
        self.key(k);
        self.out
    }

    pub fn object(&mut self, k: &'static str) -> JsonObject<'_> {
        self.key(k);
        JsonObject::new(self.out)
    }

    pub fn array(&mut self, k: &'static str) -> JsonArray<'_> {
        self.key(k);
        JsonArray::new(self.out)
    }

    /// An array of strings.
    pub fn strs<'s>(&mut self, k: &'static str, items: impl IntoIterator<Item = &'s str>) {
        let mut a = self.array(k);
        for s in items {
            a.str(s);
        }
    }

    /// An array of numbers.
    pub fn u64s(&mut self, k: &'static str, items: impl IntoIterator<Item = u64>) {
        let mut a = self.array(k);
        for v in items {
            a.u64(v);
        }
    }
}

impl Drop for JsonObject<'_> {
    fn drop(&mut self) {
        self.out.push(b'}');
    }
}

/// An array being written; `]` is appended when it is dropped.
pub struct JsonArray<'a> {
    out: &'a mut Vec<u8>,
    empty: bool,
}

impl<'a> JsonArray<'a> {
    pub fn new(out: &'a mut Vec<u8>) -> JsonArray<'a> {
        out.push(b'[');
        JsonArray { out, empty: true }
    }

    fn comma(&mut self) {
        if !self.empty {
            self.out.push(b',');
        }
        self.empty = false;
    }

    pub fn str(&mut self, v: &str) {
        self.comma();
        write_str(self.out, v);
    }

    pub fn u64(&mut self, v: u64) {
        self.comma();
        write_u64(self.out, v);
    }

    pub fn object(&mut self) -> JsonObject<'_> {
        self.comma();
        JsonObject::new(self.out)
    }
}

impl Drop for JsonArray<'_> {
    fn drop(&mut self) {
        self.out.push(b']');
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ours(s: &str) -> String {
        let mut out = Vec::new();
        write_str(&mut out, s);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        // Every ASCII byte alone and inside text, then characters serde_json leaves alone.
        for b in 0u8..0x80 {
            let c = char::from(b);
            let mut cases = vec![c.to_string(), format!("a{c}b{c}{c}")];
            // The character at every place of strings read eight bytes at a time.
            for len in [8, 9, 15, 16, 17, 24] {
                for at in 0..len {
                    let mut t: Vec<char> = "abcdefghijklmnopqrstuvwxyz".chars().take(len).collect();
                    t[at] = c;
                    cases.push(t.into_iter().collect());
                }
            }
            for s in cases {
                assert_eq!(
                    ours(&s),
                    serde_json::to_string(&s).unwrap(),
                    "byte {b:#04x}"
                );
            }
        }
        for s in [
            "",
            "/path/to",
            "é ü ß",
            "\u{7f}\u{80}\u{9f}\u{a0}",
            "\u{2028}\u{2029}",
            "日本語\"\\",
            "\u{1f600} emoji",
            "\u{fffd}",
        ] {
            assert_eq!(ours(s), serde_json::to_string(s).unwrap(), "{s:?}");
        }
    }

    #[test]
    fn display_values_are_escaped_as_one_string() {
        let mut out = Vec::new();
        write_display(&mut out, format_args!("{}\"{}\n{}", "a", 5, "\\"));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string("a\"5\n\\").unwrap()
        );
    }

    #[test]
    fn names_from_elsewhere_are_escaped_and_the_writers_own_written_as_they_are() {
        let mut out = Vec::new();
        {
            let mut m = JsonObject::new(&mut out);
            m.str("plain", "v");
            m.str_named("a\"b\n", "c");
        }
        let want = serde_json::json!({ "plain": "v", "a\"b\n": "c" });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
    }

    #[test]
    fn numbers_are_plain_decimal() {
        for v in (0..1000).chain([9999, 10000, 12345, u64::from(u32::MAX), u64::MAX]) {
            let mut out = Vec::new();
            write_u64(&mut out, v);
            assert_eq!(out, serde_json::to_vec(&v).unwrap());
        }
        for v in 0..250 {
            let mut two = Vec::new();
            write_2digits(&mut two, v);
            assert_eq!(String::from_utf8(two).unwrap(), format!("{:02}", v % 100));
        }
    }

    #[test]
    fn nested_objects_and_arrays_match_serde_json_compact_layout() {
        let mut out = Vec::new();
        {
            let mut m = JsonObject::new(&mut out);
            m.str("a", "x");
            m.u64("n", 3);
            {
                let mut inner = m.object("o");
                inner.bool("t", true);
                inner.bool("f", false);
                inner.strs("s", ["p", "q"]);
                let _ = inner.object("empty");
            }
            m.u64s("v", [1, 2]);
            {
                let mut a = m.array("objs");
                a.object().u64("k", 1);
                let _ = a.object();
            }
            let _ = m.array("none");
        }
        let want = serde_json::json!({
            "a": "x", "n": 3,
            "o": { "t": true, "f": false, "s": ["p", "q"], "empty": {} },
            "v": [1, 2],
            "objs": [{ "k": 1 }, {}],
            "none": [],
        });
        assert_eq!(
            String::from_utf8(out).unwrap(),
            serde_json::to_string(&want).unwrap()
        );
    }
}
