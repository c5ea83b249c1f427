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
}
