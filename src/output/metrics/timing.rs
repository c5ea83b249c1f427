//! Timing histograms: hdrhistograms of nanoseconds (or batch sizes) that a worker fills and the
//! exporter turns into Prometheus histograms and percentile gauges.
//!
//! Every histogram of one kind has the same bounds, so two of them can be swapped or added
//! without allocating: that is how a worker hands its recent samples to the exporter.

use hdrhistogram::Histogram;

/// Latencies are recorded in nanoseconds up to a minute; anything longer is clamped (a stalled
/// worker shows up as a one-minute batch, which is alarming enough).
const LATENCY_MAX_NS: u64 = 60_000_000_000;
/// Largest batch a source may hand over (AF_XDP rings are far smaller).
const BATCH_SIZE_MAX: u64 = 1 << 16;
/// Two significant digits: 1% resolution is ample for latency percentiles and keeps each
/// histogram near 30 KiB, so copying one on publish is cheap.
const SIGFIG: u8 = 2;

/// Upper bounds (seconds) of the exported latency buckets: 250 ns to 1 s, roughly 1-2.5-5 steps.
pub const LATENCY_BUCKETS_SECONDS: [f64; 19] = [
    250e-9, 500e-9, 1e-6, 2.5e-6, 5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3,
    5e-3, 10e-3, 25e-3, 100e-3, 250e-3, 1.0,
];

/// Upper bounds of the exported batch size buckets (frames).
pub const BATCH_SIZE_BUCKETS: [f64; 12] = [
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 4096.0,
];

/// The percentiles exported as gauges and printed in the replay summary.
pub const PERCENTILES: [(&str, f64); 3] = [("50", 0.50), ("99", 0.99), ("99.9", 0.999)];

/// What a histogram measures, which fixes its bounds and how its values are exported.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scale {
    /// Nanoseconds, exported in seconds.
    Nanos,
    /// A plain count (frames per batch).
    Count,
}

impl Scale {
    fn max(self) -> u64 {
        match self {
            Scale::Nanos => LATENCY_MAX_NS,
            Scale::Count => BATCH_SIZE_MAX,
        }
    }

    /// The exported unit per recorded unit.
    pub fn factor(self) -> f64 {
        match self {
            Scale::Nanos => 1e-9,
            Scale::Count => 1.0,
        }
    }

    pub fn buckets(self) -> &'static [f64] {
        match self {
            Scale::Nanos => &LATENCY_BUCKETS_SECONDS,
            Scale::Count => &BATCH_SIZE_BUCKETS,
        }
    }
}

/// An hdrhistogram plus the exact sum of what was recorded (Prometheus wants `_sum`).
#[derive(Debug, Clone)]
pub struct Histo {
    scale: Scale,
    hist: Histogram<u64>,
    sum: u64,
}

impl Histo {
    pub fn new(scale: Scale) -> Histo {
        // Fixed, valid bounds: creation cannot fail.
        let hist = Histogram::new_with_bounds(1, scale.max(), SIGFIG)
            .expect("constant histogram bounds are valid");
        Histo {
            scale,
            hist,
            sum: 0,
        }
    }

    pub fn scale(&self) -> Scale {
        self.scale
    }

    /// Records one value; out-of-range values are clamped, never an error.
    #[inline]
    pub fn record(&mut self, value: u64) {
        self.hist.saturating_record(value);
        self.sum = self.sum.saturating_add(value);
    }

    pub fn count(&self) -> u64 {
        self.hist.len()
    }

    pub fn sum(&self) -> u64 {
        self.sum
    }

    pub fn is_empty(&self) -> bool {
        self.hist.is_empty()
    }

    pub fn reset(&mut self) {
        self.hist.reset();
        self.sum = 0;
    }

    /// Moves everything recorded in `from` into `self` and leaves `from` empty, without
    /// allocating: an empty `self` trades places with `from`, otherwise the counts are added.
    pub fn absorb(&mut self, from: &mut Histo) {
        if from.is_empty() {
            return;
        }
        if self.is_empty() {
            std::mem::swap(self, from);
            // `from` now holds our old, empty histogram; its sum is already zero.
            return;
        }
        self.add(from);
        from.reset();
    }

    /// Adds `other`'s counts; same bounds by construction, so nothing can overflow the range.
    pub fn add(&mut self, other: &Histo) {
        // Both were built by `Histo::new` with the same scale: the ranges match.
        let _ = self.hist.add(&other.hist);
        self.sum = self.sum.saturating_add(other.sum);
    }

    /// The value at quantile `q` (0..=1) in the recorded unit; 0 when empty.
    pub fn quantile(&self, q: f64) -> u64 {
        if self.is_empty() {
            return 0;
        }
        self.hist.value_at_quantile(q)
    }

    /// Cumulative counts at each of `bounds` (in the exported unit), as Prometheus buckets
    /// want them: the number of recorded values `<= bound`. One pass over recorded values.
    pub fn cumulative(&self, bounds: &[f64]) -> Vec<u64> {
        let factor = self.scale.factor();
        let mut out = vec![0u64; bounds.len()];
        for v in self.hist.iter_recorded() {
            // hdrhistogram buckets values: report each at the highest value it stands for, so
            // a value is never counted below a bound it may exceed.
            let value = self.hist.highest_equivalent(v.value_iterated_to()) as f64 * factor;
            let n = v.count_at_value();
            // Buckets are cumulative: the value counts towards every bound at or above it.
            if let Some(first) = bounds.iter().position(|b| value <= *b) {
                for c in &mut out[first..] {
                    *c += n;
                }
            }
        }
        out
    }
}

/// A worker's three histograms.
#[derive(Debug, Clone)]
pub struct Timing {
    /// Time in the handler of one sampled packet.
    pub packet: Histo,
    /// From the first frame of a batch until the handler's after-batch work is done.
    pub batch: Histo,
    /// Frames per non-empty batch.
    pub batch_size: Histo,
}

impl Default for Timing {
    fn default() -> Self {
        Timing {
            packet: Histo::new(Scale::Nanos),
            batch: Histo::new(Scale::Nanos),
            batch_size: Histo::new(Scale::Count),
        }
    }
}

impl Timing {
    pub fn absorb(&mut self, from: &mut Timing) {
        self.packet.absorb(&mut from.packet);
        self.batch.absorb(&mut from.batch);
        self.batch_size.absorb(&mut from.batch_size);
    }

    pub fn add(&mut self, other: &Timing) {
        self.packet.add(&other.packet);
        self.batch.add(&other.batch);
        self.batch_size.add(&other.batch_size);
    }

    pub fn reset(&mut self) {
        self.packet.reset();
        self.batch.reset();
        self.batch_size.reset();
    }

    pub fn summary(&self, sample_every: u32) -> TimingSummary {
        let pct = |h: &Histo| PERCENTILES.map(|(_, q)| h.quantile(q));
        TimingSummary {
            packet_ns: pct(&self.packet),
            batch_ns: pct(&self.batch),
            packets_timed: self.packet.count(),
            batches_timed: self.batch.count(),
            mean_batch: if self.batch_size.is_empty() {
                0.0
            } else {
                self.batch_size.sum() as f64 / self.batch_size.count() as f64
            },
            sample_every,
        }
    }
}

/// Latency percentiles of a run, for the replay summary.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct TimingSummary {
    /// p50, p99, p99.9 of the per-packet time, nanoseconds.
    pub packet_ns: [u64; 3],
    /// p50, p99, p99.9 of the per-batch time, nanoseconds.
    pub batch_ns: [u64; 3],
    pub packets_timed: u64,
    pub batches_timed: u64,
    pub mean_batch: f64,
    /// One packet in this many was timed.
    pub sample_every: u32,
}

/// A duration in nanoseconds for people: "850 ns", "12.3 µs", "4.1 ms".
pub fn human_ns(ns: u64) -> String {
    match ns {
        0..=999 => format!("{ns} ns"),
        1_000..=999_999 => format!("{:.1} µs", ns as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1} ms", ns as f64 / 1e6),
        _ => format!("{:.2} s", ns as f64 / 1e9),
    }
}

impl std::fmt::Display for TimingSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let list = |v: [u64; 3]| {
            PERCENTILES
                .iter()
                .zip(v)
                .map(|((name, _), ns)| format!("p{name} {}", human_ns(ns)))
                .collect::<Vec<_>>()
                .join(", ")
        };
        write!(
            f,
            "per packet {} (1 in {} packets timed, {} samples); per batch {} ({} batches, mean {:.1} frames)",
            list(self.packet_ns),
            self.sample_every,
            self.packets_timed,
            list(self.batch_ns),
            self.batches_timed,
            self.mean_batch
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_follow_what_was_recorded() {
        let mut h = Histo::new(Scale::Nanos);
        assert_eq!(h.quantile(0.5), 0);
        for v in 1..=1000u64 {
            h.record(v * 1000);
        }
        assert_eq!(h.count(), 1000);
        assert_eq!(h.sum(), 1000 * 1001 / 2 * 1000);
        let p50 = h.quantile(0.5) as f64;
        assert!((p50 - 500_000.0).abs() / 500_000.0 < 0.01, "{p50}");
        let p999 = h.quantile(0.999) as f64;
        assert!((p999 - 999_000.0).abs() / 999_000.0 < 0.01, "{p999}");
    }

    #[test]
    fn out_of_range_values_are_clamped_not_lost() {
        let mut h = Histo::new(Scale::Count);
        h.record(0);
        h.record(u64::MAX);
        assert_eq!(h.count(), 2);
        assert_eq!(h.sum(), u64::MAX);
    }

    #[test]
    fn cumulative_buckets_are_monotone_and_bounded_by_count() {
        let mut h = Histo::new(Scale::Nanos);
        // 10 values at 300 ns, 5 at 7 µs, 1 at 2 s (beyond the last bound).
        for _ in 0..10 {
            h.record(300);
        }
        for _ in 0..5 {
            h.record(7_000);
        }
        h.record(2_000_000_000);
        let c = h.cumulative(&LATENCY_BUCKETS_SECONDS);
        assert_eq!(c[0], 0, "250 ns bucket holds nothing");
        assert_eq!(c[1], 10, "500 ns bucket holds the 300 ns values");
        let at_10us = LATENCY_BUCKETS_SECONDS
            .iter()
            .position(|b| *b == 10e-6)
            .unwrap();
        assert_eq!(c[at_10us - 1], 10, "5 µs bucket excludes 7 µs");
        assert_eq!(c[at_10us], 15);
        assert_eq!(*c.last().unwrap(), 15, "the 2 s value is only in +Inf");
        assert!(c.windows(2).all(|w| w[0] <= w[1]));
    }

    #[test]
    fn absorb_moves_samples_and_empties_the_source() {
        let mut worker = Timing::default();
        let mut mailbox = Timing::default();
        worker.packet.record(100);
        worker.batch_size.record(32);
        // Empty destination: a swap.
        mailbox.absorb(&mut worker);
        assert_eq!(mailbox.packet.count(), 1);
        assert!(worker.packet.is_empty() && worker.batch_size.is_empty());
        // Non-empty destination (a mailbox nobody read yet): counts add up.
        worker.packet.record(200);
        mailbox.absorb(&mut worker);
        assert_eq!(mailbox.packet.count(), 2);
        assert_eq!(mailbox.packet.sum(), 300);
        assert!(worker.packet.is_empty());
        assert_eq!(worker.packet.sum(), 0);
    }

    #[test]
    fn summary_prints_percentiles() {
        let mut t = Timing::default();
        t.packet.record(1_500);
        t.batch.record(2_000_000);
        t.batch_size.record(10);
        t.batch_size.record(20);
        let s = t.summary(64);
        assert_eq!(s.mean_batch, 15.0);
        let text = s.to_string();
        assert!(text.contains("p50 1.5 µs"), "{text}");
        assert!(text.contains("p99.9 2.0 ms"), "{text}");
        assert!(text.contains("1 in 64"), "{text}");
    }

    #[test]
    fn human_units() {
        assert_eq!(human_ns(850), "850 ns");
        assert_eq!(human_ns(12_340), "12.3 µs");
        assert_eq!(human_ns(4_100_000), "4.1 ms");
        assert_eq!(human_ns(3_000_000_000), "3.00 s");
    }
}
