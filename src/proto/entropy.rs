//! Cheap randomness measures over a byte slice, for checks that ask "does this look like
//! ciphertext / compressed data, or like text?". Stack-only: one 256-entry histogram.

/// Byte statistics of one slice, computed in a single pass.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ByteStats {
    /// Number of bytes looked at.
    pub len: usize,
    /// Shannon entropy of the byte distribution, bits per byte (0.0..=8.0).
    pub entropy: f32,
    /// The largest entropy `len` bytes can show: log2(min(len, 256)). A 64-byte sample of
    /// perfect randomness scores at most 6.0, so compare `entropy` against this, not 8.0.
    pub max_entropy: f32,
    /// Fraction of bytes that are printable ASCII or tab / CR / LF (0.0..=1.0).
    pub printable: f32,
}

impl ByteStats {
    pub fn of(data: &[u8]) -> ByteStats {
        let mut hist = [0u32; 256];
        let mut printable = 0usize;
        for &b in data {
            // A slice longer than u32::MAX would saturate a bucket; the estimate stays sane.
            hist[b as usize] = hist[b as usize].saturating_add(1);
            printable += usize::from(is_text_byte(b));
        }
        let len = data.len();
        ByteStats {
            len,
            entropy: entropy_of_histogram(&hist, len),
            max_entropy: max_entropy(len),
            printable: ratio(printable, len),
        }
    }

    /// `entropy / max_entropy`: 1.0 for a sample as random as its length allows.
    pub fn normalized_entropy(&self) -> f32 {
        if self.max_entropy > 0.0 {
            (self.entropy / self.max_entropy).min(1.0)
        } else {
            0.0
        }
    }
}

/// Shannon entropy of `data` in bits per byte; 0.0 for an empty slice.
pub fn shannon_entropy(data: &[u8]) -> f32 {
    let mut hist = [0u32; 256];
    for &b in data {
        hist[b as usize] = hist[b as usize].saturating_add(1);
    }
    entropy_of_histogram(&hist, data.len())
}

/// Fraction of `data` that is printable ASCII or tab / CR / LF; 0.0 for an empty slice.
pub fn printable_ratio(data: &[u8]) -> f32 {
    let n = data.iter().filter(|&&b| is_text_byte(b)).count();
    ratio(n, data.len())
}

/// log2(min(len, 256)): the entropy ceiling of a sample of `len` bytes.
pub fn max_entropy(len: usize) -> f32 {
    (len.min(256) as f32).log2().max(0.0)
}

/// The figures the Great Firewall's fully-encrypted rules read from the first client data
/// packet (Wu et al., USENIX Security 2023), plus the byte entropy. One pass, stack only.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct PayloadFigures {
    pub len: usize,
    /// Average set bits per byte (random data sits near 4.0).
    pub popcount_avg: f32,
    /// Leading bytes that are printable ASCII (0x20..=0x7e), counted up to 6.
    pub printable_prefix: u8,
    /// Share of printable ASCII bytes (0x20..=0x7e), 0.0..=1.0.
    pub printable_share: f32,
    /// Longest run of contiguous printable ASCII bytes.
    pub printable_run: usize,
    /// The payload starts like TLS (0x16/0x17 0x03 0x00..=0x09) or like an HTTP method.
    pub protocol_prefix: bool,
    /// Shannon entropy, bits per byte, and as a share of what `len` bytes can show.
    pub entropy: f32,
    pub entropy_share: f32,
}

/// Which of the five published exemptions lets a payload pass as "not fully encrypted".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exemption {
    /// Ex1: popcount per byte <= 3.4 or >= 4.6.
    PopcountBand,
    /// Ex2: the first 6 bytes are printable.
    PrintablePrefix,
    /// Ex3: more than half the bytes are printable.
    PrintableShare,
    /// Ex4: more than 20 contiguous printable bytes.
    PrintableRun,
    /// Ex5: a TLS or HTTP prefix.
    ProtocolPrefix,
}

impl Exemption {
    pub fn name(self) -> &'static str {
        match self {
            Exemption::PopcountBand => "popcount_band",
            Exemption::PrintablePrefix => "printable_prefix",
            Exemption::PrintableShare => "printable_share",
            Exemption::PrintableRun => "printable_run",
            Exemption::ProtocolPrefix => "protocol_prefix",
        }
    }
}

/// The published bounds: [`POPCOUNT_LOW`, `POPCOUNT_HIGH`] is the random band, and the
/// printable thresholds are those of the paper's artifact.
pub const POPCOUNT_LOW: f32 = 3.4;
pub const POPCOUNT_HIGH: f32 = 4.6;
pub const PRINTABLE_PREFIX_LEN: u8 = 6;
pub const PRINTABLE_SHARE_MAX: f32 = 0.5;
pub const PRINTABLE_RUN_MAX: usize = 20;

impl PayloadFigures {
    pub fn of(data: &[u8]) -> PayloadFigures {
        let mut hist = [0u32; 256];
        let mut bits = 0u64;
        let mut printable = 0usize;
        let mut run = 0usize;
        let mut longest = 0usize;
        for &b in data {
            hist[b as usize] = hist[b as usize].saturating_add(1);
            bits += u64::from(b.count_ones());
            if is_ascii_printable(b) {
                printable += 1;
                run += 1;
                longest = longest.max(run);
            } else {
                run = 0;
            }
        }
        let printable_prefix = data
            .iter()
            .take(usize::from(PRINTABLE_PREFIX_LEN))
            .take_while(|b| is_ascii_printable(**b))
            .count() as u8;
        let len = data.len();
        let entropy = entropy_of_histogram(&hist, len);
        let ceiling = max_entropy(len);
        PayloadFigures {
            len,
            popcount_avg: ratio(bits as usize, len),
            printable_prefix,
            printable_share: ratio(printable, len),
            printable_run: longest,
            protocol_prefix: protocol_prefix(data),
            entropy,
            entropy_share: if ceiling > 0.0 {
                (entropy / ceiling).min(1.0)
            } else {
                0.0
            },
        }
    }

    /// The first exemption that holds, in the paper's order; `None`: the censor's rules
    /// would call this payload fully encrypted.
    pub fn exemption(&self) -> Option<Exemption> {
        if self.len == 0 {
            return Some(Exemption::PopcountBand);
        }
        if self.popcount_avg <= POPCOUNT_LOW || self.popcount_avg >= POPCOUNT_HIGH {
            return Some(Exemption::PopcountBand);
        }
        if self.printable_prefix >= PRINTABLE_PREFIX_LEN {
            return Some(Exemption::PrintablePrefix);
        }
        if self.printable_share > PRINTABLE_SHARE_MAX {
            return Some(Exemption::PrintableShare);
        }
        if self.printable_run > PRINTABLE_RUN_MAX {
            return Some(Exemption::PrintableRun);
        }
        if self.protocol_prefix {
            return Some(Exemption::ProtocolPrefix);
        }
        None
    }
}

fn is_ascii_printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// Ex5 as the artifact's code has it: TLS handshake or application data with a 0x03 major
/// version and a minor up to 0x0f, or one of four HTTP methods.
fn protocol_prefix(data: &[u8]) -> bool {
    let tls = matches!(data, [0x16 | 0x17, 0x03, minor, ..] if *minor <= 0x0f);
    let http = [&b"GET "[..], b"PUT ", b"POST ", b"HEAD "]
        .iter()
        .any(|m| data.starts_with(m));
    tls || http
}

fn is_text_byte(b: u8) -> bool {
    matches!(b, 0x20..=0x7e | b'\t' | b'\r' | b'\n')
}

fn ratio(part: usize, whole: usize) -> f32 {
    if whole == 0 {
        0.0
    } else {
        part as f32 / whole as f32
    }
}

fn entropy_of_histogram(hist: &[u32; 256], len: usize) -> f32 {
    if len == 0 {
        return 0.0;
    }
    let total = len as f32;
    let mut h = 0.0f32;
    for &count in hist.iter().filter(|&&c| c > 0) {
        let p = count as f32 / total;
        h -= p * p.log2();
    }
    h.clamp(0.0, 8.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_zero() {
        assert_eq!(shannon_entropy(&[]), 0.0);
        assert_eq!(printable_ratio(&[]), 0.0);
        let s = ByteStats::of(&[]);
        assert_eq!(s.len, 0);
        assert_eq!(s.normalized_entropy(), 0.0);
    }

    #[test]
    fn constant_bytes_have_no_entropy() {
        assert_eq!(shannon_entropy(&[0x41; 500]), 0.0);
    }

    #[test]
    fn two_equal_symbols_give_one_bit() {
        let data: Vec<u8> = (0..1000)
            .map(|i| if i % 2 == 0 { 0 } else { 0xff })
            .collect();
        assert!((shannon_entropy(&data) - 1.0).abs() < 1e-4);
    }

    #[test]
    fn every_byte_once_gives_eight_bits() {
        let data: Vec<u8> = (0..=255u8).collect();
        assert!((shannon_entropy(&data) - 8.0).abs() < 1e-4);
        let s = ByteStats::of(&data);
        assert!((s.max_entropy - 8.0).abs() < 1e-6);
        assert!((s.normalized_entropy() - 1.0).abs() < 1e-4);
        // 0x20..=0x7e (95) plus tab, LF, CR.
        assert!((s.printable - 98.0 / 256.0).abs() < 1e-6);
    }

    #[test]
    fn short_random_sample_is_judged_against_its_ceiling() {
        let data: Vec<u8> = (0..16u8).map(|i| i.wrapping_mul(37)).collect();
        let s = ByteStats::of(&data);
        assert!((s.entropy - 4.0).abs() < 1e-4, "16 distinct bytes = 4 bits");
        assert!((s.max_entropy - 4.0).abs() < 1e-6);
        assert!(s.normalized_entropy() > 0.99);
    }

    #[test]
    fn text_is_printable_and_low_entropy() {
        let text = b"GET /index.html HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n";
        let s = ByteStats::of(text);
        assert_eq!(s.printable, 1.0);
        assert!(s.entropy > 3.0 && s.entropy < 5.5, "{}", s.entropy);
        assert!((printable_ratio(b"ab\x00\xff") - 0.5).abs() < 1e-6);
    }

    /// A fixed xorshift stream: uniformly spread bytes like an AEAD ciphertext.
    fn noise(n: usize) -> Vec<u8> {
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn random_bytes_pass_every_exemption() {
        let f = PayloadFigures::of(&noise(600));
        assert!((f.popcount_avg - 4.0).abs() < 0.25, "{}", f.popcount_avg);
        assert!(f.entropy_share > 0.9, "{}", f.entropy_share);
        assert!(f.printable_run <= PRINTABLE_RUN_MAX);
        assert_eq!(f.exemption(), None, "{f:?}");
    }

    #[test]
    fn each_exemption_is_named() {
        assert_eq!(
            PayloadFigures::of(&[0u8; 64]).exemption(),
            Some(Exemption::PopcountBand)
        );
        assert_eq!(
            PayloadFigures::of(&[0xffu8; 64]).exemption(),
            Some(Exemption::PopcountBand)
        );
        let mut data = noise(300);
        data[..6].copy_from_slice(b"SSH-2.");
        assert_eq!(
            PayloadFigures::of(&data).exemption(),
            Some(Exemption::PrintablePrefix)
        );
        let hello = [&[0x16u8, 0x03, 0x01, 0x02, 0x00][..], &noise(300)].concat();
        assert_eq!(
            PayloadFigures::of(&hello).exemption(),
            Some(Exemption::ProtocolPrefix)
        );
        let mut run = noise(300);
        run[100..122].copy_from_slice(b"abcdefghijklmnopqrstuv");
        let f = PayloadFigures::of(&run);
        assert_eq!(f.printable_run, 22);
        assert_eq!(f.exemption(), Some(Exemption::PrintableRun), "{f:?}");
        let text = b"POST /upload HTTP/1.1\r\n";
        let f = PayloadFigures::of(text);
        assert_eq!(f.printable_prefix, 6);
        assert!(f.exemption().is_some());
    }
}
