//! The first bytes of each direction of a flow, in sequence order, for inspection.
//!
//! Each direction owns a fixed window of `depth` bytes in a [`StreamPool`] slot, indexed by
//! offset from the stream's first sequence number, so out-of-order segments are written in place
//! and no memory beyond the slot is ever used. A [`StreamDir`] remembers which byte ranges of
//! its window hold data: the in-order prefix (readable) and up to [`MAX_GAPS`] ranges received
//! ahead of a hole. Bytes outside those ranges are stale (from the slot's previous flow) and are
//! never read or compared.
//!
//! Overlaps keep the first copy by default ([`OverlapPolicy`]): bytes already held are never
//! overwritten, and a later segment that disagrees with them is reported as a conflicting
//! overlap, the classic way to show an inspector one stream and the receiver another (receivers
//! differ: most keep the first copy, some the last, so neither choice is safe on its own and the
//! conflict itself is what the engine reports).

/// Which copy of overlapping bytes is kept for inspection.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OverlapPolicy {
    /// Bytes already held stay (Linux, BSD, Windows for in-window data).
    #[default]
    First,
    /// A later segment overwrites held bytes not yet inspected (bytes the parsers have read
    /// are not read again).
    Last,
}

/// Ranges received ahead of a hole that one direction can hold.
pub const MAX_GAPS: usize = 8;

/// A segment this far past the stream start (or further) is not plausible TCP: 2^30 is the
/// largest window TCP's window scaling allows.
pub const MAX_AHEAD: u32 = 1 << 30;

/// The largest window (per direction) a pool hands out; offsets stay far below [`MAX_AHEAD`].
pub const MAX_DEPTH: usize = 1 << 24;

/// What inserting one segment did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InsertOutcome {
    /// The in-order readable prefix grew.
    pub advanced: bool,
    /// The segment overlapped bytes already held, and every overlapped byte was identical: a
    /// retransmission (the rest of the segment, if any, was kept).
    pub retransmission: bool,
    /// The segment overlapped bytes already held with different content (first copy kept).
    pub conflicting_overlap: bool,
    /// Arrived ahead of a gap.
    pub out_of_order: bool,
    /// Some or all of the segment lay beyond the depth and was not kept.
    pub beyond_depth: bool,
    /// Too many holes to track: the segment was not kept.
    pub too_many_gaps: bool,
    /// The segment was before the stream start or implausibly far ahead (nothing kept).
    pub out_of_window: bool,
}

/// Offsets from the stream base, `start < end`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Range {
    start: u32,
    end: u32,
}

/// Reassembly state of one direction (lives in the engine's inspection slot).
#[derive(Debug, Clone, Copy, Default)]
pub struct StreamDir {
    /// Sequence number of window offset 0.
    base: u32,
    /// Bytes `[0, readable)` of the window are held, in order.
    readable: u32,
    /// Held ranges beyond a hole: sorted, disjoint, not touching each other or the prefix.
    ranges: [Range; MAX_GAPS],
    nranges: u8,
    anchored: bool,
}

const _: () = assert!(std::mem::size_of::<StreamDir>() <= 80);

impl StreamDir {
    /// Anchors the stream at a known initial sequence number (from SYN / SYN-ACK): data starts
    /// at `isn + 1`. Ignored (returns false) once data is held under another anchor, so a late
    /// or forged SYN cannot shift bytes already kept.
    pub fn set_isn(&mut self, isn: u32) -> bool {
        let base = isn.wrapping_add(1);
        if self.anchored && self.base != base && self.holds_data() {
            return false;
        }
        self.base = base;
        self.anchored = true;
        true
    }

    /// Writes a segment into `window` (this direction's `depth`-byte buffer). `seq` is the
    /// sequence number of `data[0]`: for a SYN carrying data (TCP Fast Open) that is the SYN's
    /// `seq + 1`. Without a known ISN the first non-empty segment seen anchors the stream
    /// (mid-stream pickup); bytes before it are then out of window. Empty segments change
    /// nothing. Never panics and never allocates, whatever `seq` and `data`.
    pub fn insert(&mut self, window: &mut [u8], seq: u32, data: &[u8]) -> InsertOutcome {
        self.insert_with(window, seq, data, OverlapPolicy::First)
    }

    /// [`StreamDir::insert`] keeping the copy `policy` names where segments overlap.
    pub fn insert_with(
        &mut self,
        window: &mut [u8],
        seq: u32,
        data: &[u8],
        policy: OverlapPolicy,
    ) -> InsertOutcome {
        let mut out = InsertOutcome::default();
        if data.is_empty() {
            return out;
        }
        if !self.anchored {
            self.base = seq;
            self.anchored = true;
        }
        let depth = window.len().min(MAX_DEPTH) as u32;
        let offset = seq.wrapping_sub(self.base);
        let (start, data) = if offset > i32::MAX as u32 {
            // Starts before the base: keep only what reaches past it.
            let skip = offset.wrapping_neg() as usize;
            match data.get(skip..) {
                Some(rest) if !rest.is_empty() => (0u32, rest),
                _ => {
                    out.out_of_window = true;
                    return out;
                }
            }
        } else if offset >= MAX_AHEAD {
            out.out_of_window = true;
            return out;
        } else {
            (offset, data)
        };
        if start >= depth {
            out.beyond_depth = true;
            return out;
        }
        let room = (depth - start) as usize;
        let data = match data.get(..room) {
            Some(fits) if data.len() > room => {
                out.beyond_depth = true;
                fits
            }
            _ => data,
        };
        // `data.len() <= room`, so `end <= depth`.
        let end = start + data.len() as u32;
        out.out_of_order = start > self.readable;

        // Ranges the segment overlaps or touches form one run [first, last).
        let n = self.nranges as usize;
        let held = &self.ranges[..n.min(MAX_GAPS)];
        let first = held.iter().take_while(|r| r.end < start).count();
        let last = first + held[first..].iter().take_while(|r| r.start <= end).count();
        let touches_prefix = start <= self.readable;
        let after = if touches_prefix {
            n - (last - first)
        } else {
            n - (last - first) + 1
        };
        if after > MAX_GAPS {
            out.too_many_gaps = true;
            return out;
        }

        // First copy wins: write only into holes, compare where bytes are already held.
        let mut conflict = false;
        let mut overlapped = false;
        let mut cursor = start;
        let prefix = Range {
            start: 0,
            end: self.readable,
        };
        let held_in_order = std::iter::once(prefix).chain(held[first..last].iter().copied());
        for h in held_in_order {
            if h.end <= cursor || h.start >= end {
                continue;
            }
            if h.start > cursor {
                put(window, data, start, cursor, h.start);
            }
            let (a, b) = (h.start.max(cursor), h.end.min(end));
            overlapped = true;
            if !same(window, data, start, a, b) {
                conflict = true;
                if policy == OverlapPolicy::Last {
                    put(window, data, start, a, b);
                }
            }
            cursor = cursor.max(h.end);
        }
        if cursor < end {
            put(window, data, start, cursor, end);
        }
        out.conflicting_overlap = conflict;
        out.retransmission = overlapped && !conflict;

        // Merge the segment into the held ranges.
        if touches_prefix {
            let mut readable = self.readable.max(end);
            let mut absorbed = 0;
            for r in &self.ranges[..n] {
                if r.start > readable {
                    break;
                }
                readable = readable.max(r.end);
                absorbed += 1;
            }
            self.ranges.copy_within(absorbed..n, 0);
            self.nranges = (n - absorbed) as u8;
            out.advanced = readable > self.readable;
            self.readable = readable;
        } else {
            let merged = Range {
                start: held[first..last]
                    .first()
                    .map_or(start, |r| r.start.min(start)),
                end: held[first..last].last().map_or(end, |r| r.end.max(end)),
            };
            let removed = last - first;
            if removed == 0 {
                // `after <= MAX_GAPS` guarantees room for one more.
                self.ranges.copy_within(first..n, first + 1);
            } else {
                self.ranges.copy_within(last..n, first + 1);
            }
            self.ranges[first] = merged;
            self.nranges = after as u8;
        }
        out
    }

    /// Length of the in-order prefix ready for inspection.
    pub fn readable(&self) -> usize {
        self.readable as usize
    }

    /// True once the in-order prefix fills the window.
    pub fn depth_reached(&self, depth: usize) -> bool {
        self.readable() >= depth
    }

    /// Whether a segment starting at `seq` lies wholly past the first `depth` bytes, where
    /// [`StreamDir::insert_with`] only counts it (`beyond_depth`). False before anchoring.
    pub fn past_depth(&self, seq: u32, depth: usize) -> bool {
        self.anchored
            && (depth.min(MAX_DEPTH) as u32..MAX_AHEAD).contains(&seq.wrapping_sub(self.base))
    }

    /// Sequence number of the window's first byte, once anchored.
    pub fn base(&self) -> Option<u32> {
        self.anchored.then_some(self.base)
    }

    /// The sequence number right after the readable prefix, once anchored.
    pub fn next_seq(&self) -> Option<u32> {
        self.anchored.then(|| self.base.wrapping_add(self.readable))
    }

    /// Number of ranges held ahead of a hole.
    pub fn gaps(&self) -> usize {
        self.nranges as usize
    }

    /// Bytes held in total, in order or not.
    pub fn held_bytes(&self) -> usize {
        self.readable as usize
            + self.ranges[..self.nranges as usize]
                .iter()
                .map(|r| (r.end - r.start) as usize)
                .sum::<usize>()
    }

    fn holds_data(&self) -> bool {
        self.readable > 0 || self.nranges > 0
    }
}

/// Copies the segment bytes of stream offsets `[a, b)` into the window (the segment starts at
/// offset `seg_start`). Out-of-range requests copy nothing.
fn put(window: &mut [u8], data: &[u8], seg_start: u32, a: u32, b: u32) {
    let (wa, wb) = (a as usize, b as usize);
    let (da, db) = ((a - seg_start) as usize, (b - seg_start) as usize);
    if let (Some(dst), Some(src)) = (window.get_mut(wa..wb), data.get(da..db)) {
        dst.copy_from_slice(src);
    }
}

/// Whether the window already holds the segment's bytes for stream offsets `[a, b)`.
fn same(window: &[u8], data: &[u8], seg_start: u32, a: u32, b: u32) -> bool {
    let (wa, wb) = (a as usize, b as usize);
    let (da, db) = ((a - seg_start) as usize, (b - seg_start) as usize);
    window.get(wa..wb) == data.get(da..db)
}

/// Fixed-size stream windows, two per slot (one per direction), under a global byte cap.
///
/// The whole cap is allocated zeroed at construction, which the OS backs lazily, and slots are
/// handed out most-recently-freed first, so resident memory follows the peak number of slots in
/// use rather than the cap.
pub struct StreamPool {
    depth: usize,
    slots: u32,
    mem: Vec<u8>,
    /// Freed slots, reused last-in first-out.
    free: Vec<u32>,
    /// Slots `fresh..slots` were never handed out.
    fresh: u32,
    /// One bit per slot: allocated.
    used: Vec<u64>,
    in_use: usize,
}

impl StreamPool {
    /// `depth` bytes per direction (clamped to `1..=MAX_DEPTH`); at most
    /// `memcap / (2 * depth)` slots exist at once.
    pub fn new(depth: usize, memcap: usize) -> Self {
        let depth = depth.clamp(1, MAX_DEPTH);
        let slots = (memcap / (2 * depth)).min(u32::MAX as usize - 1);
        StreamPool {
            depth,
            slots: slots as u32,
            mem: vec![0u8; slots * 2 * depth],
            free: Vec::with_capacity(slots),
            fresh: 0,
            used: vec![0u64; slots.div_ceil(64)],
            in_use: 0,
        }
    }

    /// A free slot, or `None` when the global cap is reached (counted by the caller).
    pub fn alloc(&mut self) -> Option<u32> {
        let slot = match self.free.pop() {
            Some(s) => s,
            None if self.fresh < self.slots => {
                self.fresh += 1;
                self.fresh - 1
            }
            None => return None,
        };
        if let Some(w) = self.used.get_mut(slot as usize / 64) {
            *w |= 1 << (slot % 64);
        }
        self.in_use += 1;
        Some(slot)
    }

    /// Returns a slot to the pool. A slot that is not allocated (double free, foreign number)
    /// is ignored and reported as `false`, so it can never be handed out twice.
    pub fn free(&mut self, slot: u32) -> bool {
        let Some(w) = self.used.get_mut(slot as usize / 64) else {
            return false;
        };
        let bit = 1u64 << (slot % 64);
        if *w & bit == 0 {
            return false;
        }
        *w &= !bit;
        // Within capacity: every slot fits on the free list at once.
        self.free.push(slot);
        self.in_use -= 1;
        true
    }

    fn range(&self, slot: u32, dir: usize) -> Option<std::ops::Range<usize>> {
        if slot >= self.slots || dir > 1 {
            return None;
        }
        let start = (slot as usize * 2 + dir) * self.depth;
        Some(start..start + self.depth)
    }

    /// The window of one direction (`dir` 0 = to server, 1 = to client); empty for a slot or
    /// direction that does not exist.
    pub fn window_mut(&mut self, slot: u32, dir: usize) -> &mut [u8] {
        match self.range(slot, dir) {
            Some(r) => self.mem.get_mut(r).unwrap_or_default(),
            None => &mut [],
        }
    }

    /// As [`StreamPool::window_mut`], read-only.
    pub fn window(&self, slot: u32, dir: usize) -> &[u8] {
        match self.range(slot, dir) {
            Some(r) => self.mem.get(r).unwrap_or_default(),
            None => &[],
        }
    }

    pub fn depth(&self) -> usize {
        self.depth
    }

    pub fn in_use(&self) -> usize {
        self.in_use
    }

    pub fn capacity(&self) -> usize {
        self.slots as usize
    }

    /// Bytes reserved for windows (the cap rounded down to whole slots).
    pub fn reserved_bytes(&self) -> usize {
        self.mem.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
            z ^ (z >> 31)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n.max(1)
        }
    }

    fn payload(len: usize, seed: u64) -> Vec<u8> {
        let mut rng = Rng(seed);
        (0..len).map(|_| rng.next() as u8).collect()
    }

    /// Every held range of `s` matches `truth` at the same offsets.
    fn assert_held_matches(s: &StreamDir, window: &[u8], truth: &[u8]) {
        let r = s.readable();
        assert_eq!(&window[..r], &truth[..r]);
        for g in &s.ranges[..s.gaps()] {
            let (a, b) = (g.start as usize, g.end as usize);
            assert!(a > r, "range touches the prefix");
            assert_eq!(&window[a..b], &truth[a..b]);
        }
        for pair in s.ranges[..s.gaps()].windows(2) {
            assert!(pair[0].end < pair[1].start, "ranges unsorted or touching");
        }
    }

    #[test]
    fn in_order_segments_after_syn() {
        let truth = payload(3000, 1);
        let mut w = vec![0u8; 4096];
        let mut s = StreamDir::default();
        assert!(s.set_isn(999));
        assert_eq!(s.base(), Some(1000));
        let mut seq = 1000u32;
        for chunk in truth.chunks(1000) {
            let o = s.insert(&mut w, seq, chunk);
            assert_eq!(
                o,
                InsertOutcome {
                    advanced: true,
                    ..Default::default()
                }
            );
            seq += chunk.len() as u32;
        }
        assert_eq!(s.readable(), 3000);
        assert_eq!(&w[..3000], &truth[..]);
        assert_eq!(s.next_seq(), Some(4000));
        assert_eq!(s.gaps(), 0);
    }

    #[test]
    fn reverse_order_fills_when_the_first_segment_arrives() {
        let truth = payload(2000, 2);
        let mut w = vec![0u8; 4096];
        let mut s = StreamDir::default();
        s.set_isn(0);
        let chunks: Vec<_> = truth.chunks(100).enumerate().collect();
        for &(i, c) in chunks.iter().rev() {
            let o = s.insert(&mut w, 1 + i as u32 * 100, c);
            assert_eq!(o.out_of_order, i != 0);
            assert_eq!(o.advanced, i == 0);
            assert!(!o.too_many_gaps);
            // Adjacent arrivals merge: one range ahead of the hole at most.
            assert!(s.gaps() <= 1);
        }
        assert_eq!(s.readable(), 2000);
        assert_eq!(&w[..2000], &truth[..]);
    }

    #[test]
    fn random_permutations_reassemble_the_original() {
        let mut rng = Rng(42);
        for round in 0..300 {
            let len = 1 + rng.below(5000) as usize;
            let truth = payload(len, round);
            let depth = 4096;
            let mut w = vec![0xAAu8; depth];
            let isn = rng.next() as u32;
            let mut s = StreamDir::default();
            s.set_isn(isn);
            // Random cut points, plus re-segmented copies overlapping them (retransmissions).
            let mut segs: Vec<(usize, usize)> = Vec::new();
            let mut at = 0;
            while at < len {
                let l = 1 + rng.below(700) as usize;
                segs.push((at, (at + l).min(len)));
                at += l;
            }
            for _ in 0..rng.below(6) {
                let a = rng.below(len as u64) as usize;
                let b = (a + 1 + rng.below(900) as usize).min(len);
                segs.push((a, b));
            }
            for i in (1..segs.len()).rev() {
                segs.swap(i, rng.below(i as u64 + 1) as usize);
            }
            // Dropped segments come again later, as the sender would retransmit them.
            let mut pending = segs;
            let mut passes = 0;
            while !pending.is_empty() {
                passes += 1;
                assert!(passes < 100, "no progress");
                let mut dropped = Vec::new();
                for &(a, b) in &pending {
                    let seq = isn.wrapping_add(1).wrapping_add(a as u32);
                    let o = s.insert(&mut w, seq, &truth[a..b]);
                    assert!(!o.conflicting_overlap && !o.out_of_window);
                    assert_eq!(o.beyond_depth, b > depth);
                    if o.too_many_gaps {
                        dropped.push((a, b));
                    }
                    assert_held_matches(&s, &w, &truth);
                }
                pending = dropped;
            }
            let want = len.min(depth);
            assert_eq!(s.readable(), want, "round {round}");
            assert_eq!(&w[..want], &truth[..want]);
            assert_eq!(s.gaps(), 0);
            assert_eq!(s.depth_reached(depth), len >= depth);
        }
    }

    #[test]
    fn retransmission_is_flagged_and_harmless() {
        let mut w = vec![0u8; 64];
        let mut s = StreamDir::default();
        s.set_isn(10);
        s.insert(&mut w, 11, b"hello world");
        let o = s.insert(&mut w, 11, b"hello world");
        assert!(o.retransmission && !o.conflicting_overlap && !o.advanced);
        // Partial retransmission carrying new bytes too.
        let o = s.insert(&mut w, 17, b"world!!");
        assert!(o.retransmission && o.advanced && !o.conflicting_overlap);
        assert_eq!(&w[..s.readable()], b"hello world!!");
    }

    #[test]
    fn conflicting_overlap_keeps_the_first_copy() {
        let mut w = vec![0u8; 64];
        let mut s = StreamDir::default();
        s.set_isn(0);
        s.insert(&mut w, 1, b"GET /index.html");
        let o = s.insert(&mut w, 5, b"/evil");
        assert!(o.conflicting_overlap && !o.retransmission);
        assert_eq!(&w[..s.readable()], b"GET /index.html");
        // Out of order data is protected the same way.
        s.insert(&mut w, 30, b"AAAA");
        let o = s.insert(&mut w, 28, b"xxBBBByy");
        assert!(o.conflicting_overlap && o.out_of_order);
        assert_eq!(&w[29..33], b"AAAA");
        assert_eq!((&w[27..29], &w[33..35]), (&b"xx"[..], &b"yy"[..]));
    }

    #[test]
    fn the_last_policy_keeps_the_later_copy_and_still_reports_it() {
        let mut w = vec![0u8; 64];
        let mut s = StreamDir::default();
        s.set_isn(0);
        s.insert_with(&mut w, 1, b"GET /index.html", OverlapPolicy::Last);
        let o = s.insert_with(&mut w, 5, b"/evil", OverlapPolicy::Last);
        assert!(o.conflicting_overlap && !o.retransmission);
        assert_eq!(&w[..s.readable()], b"GET /evilx.html");
        let o = s.insert_with(&mut w, 5, b"/evil", OverlapPolicy::Last);
        assert!(o.retransmission && !o.conflicting_overlap);
    }

    #[test]
    fn overlap_spanning_several_ranges_fills_only_holes() {
        let truth: Vec<u8> = (0..100u8).collect();
        let mut w = vec![0u8; 128];
        let mut s = StreamDir::default();
        s.set_isn(u32::MAX); // base 0
        for (a, b) in [(10, 20), (30, 40), (50, 60)] {
            s.insert(&mut w, a as u32, &truth[a..b]);
        }
        assert_eq!(s.gaps(), 3);
        // One segment over all three, with identical bytes: one merged range.
        let o = s.insert(&mut w, 15, &truth[15..55]);
        assert!(o.retransmission && !o.conflicting_overlap && o.out_of_order);
        assert_eq!(s.gaps(), 1);
        assert_eq!(s.held_bytes(), 50);
        // The same span with one changed byte inside a held range is a conflict; holes were
        // already filled, so nothing changes.
        let mut forged = truth[15..55].to_vec();
        forged[20] ^= 0xff; // offset 35, held
        let o = s.insert(&mut w, 15, &forged);
        assert!(o.conflicting_overlap);
        assert_eq!(&w[10..60], &truth[10..60]);
        s.insert(&mut w, 0, &truth[..10]);
        assert_eq!(s.readable(), 60);
        assert_eq!(&w[..60], &truth[..60]);
    }

    #[test]
    fn sequence_numbers_wrap_at_2_pow_32() {
        let truth = payload(600, 3);
        let mut w = vec![0u8; 1024];
        let mut s = StreamDir::default();
        s.set_isn(u32::MAX - 200);
        let base = u32::MAX - 199;
        // Second half first (sequence numbers past the wrap), then the first half.
        let o = s.insert(&mut w, base.wrapping_add(300), &truth[300..]);
        assert!(o.out_of_order && !o.out_of_window);
        let o = s.insert(&mut w, base, &truth[..300]);
        assert!(o.advanced);
        assert_eq!(s.readable(), 600);
        assert_eq!(&w[..600], &truth[..]);
        assert_eq!(s.next_seq(), Some(base.wrapping_add(600)));
        // The same with an ISN of exactly u32::MAX (base 0).
        let mut s = StreamDir::default();
        s.set_isn(u32::MAX);
        assert_eq!(s.base(), Some(0));
        assert!(s.insert(&mut w, 0, b"x").advanced);
    }

    #[test]
    fn depth_boundary_keeps_what_fits() {
        let mut w = vec![0u8; 10];
        let mut s = StreamDir::default();
        s.set_isn(0);
        let o = s.insert(&mut w, 1, b"0123456789ABC");
        assert!(o.advanced && o.beyond_depth);
        assert_eq!(&w[..], b"0123456789");
        assert!(s.depth_reached(10));
        let o = s.insert(&mut w, 11, b"more");
        assert_eq!(
            o,
            InsertOutcome {
                beyond_depth: true,
                ..Default::default()
            }
        );
        // Exactly up to the end: nothing beyond.
        let mut s = StreamDir::default();
        s.set_isn(0);
        assert!(!s.insert(&mut w, 6, b"6789").beyond_depth);
        // A zero-size window keeps nothing and does not panic.
        let mut s = StreamDir::default();
        assert!(s.insert(&mut [], 5, b"abc").beyond_depth);
    }

    #[test]
    fn too_many_gaps_drops_the_segment() {
        let mut w = vec![0u8; 256];
        let mut s = StreamDir::default();
        s.set_isn(0);
        for i in 0..MAX_GAPS as u32 {
            let o = s.insert(&mut w, 1 + 10 + i * 10, b"abcd");
            assert!(!o.too_many_gaps);
        }
        assert_eq!(s.gaps(), MAX_GAPS);
        let held = s.held_bytes();
        let before = w.clone();
        let o = s.insert(&mut w, 1 + 200, b"zz");
        assert!(o.too_many_gaps && o.out_of_order);
        assert_eq!((s.held_bytes(), &w), (held, &before));
        // A segment that joins two ranges needs no new one, so it is kept.
        let o = s.insert(&mut w, 1 + 14, b"123456");
        assert!(!o.too_many_gaps);
        assert_eq!(s.gaps(), MAX_GAPS - 1);
        // Extending the prefix is always possible.
        let o = s.insert(&mut w, 1, b"0123456789");
        assert!(o.advanced);
        assert_eq!(s.readable(), 24);
        assert_eq!(s.gaps(), MAX_GAPS - 2);
    }

    #[test]
    fn before_the_base_and_far_ahead_are_out_of_window() {
        let mut w = vec![0u8; 100];
        let mut s = StreamDir::default();
        s.set_isn(999);
        let o = s.insert(&mut w, 900, &[1; 50]);
        assert!(o.out_of_window);
        assert_eq!(s.held_bytes(), 0);
        // Straddling the base: the part from the base on is kept.
        let o = s.insert(&mut w, 995, b"xxxxxabc");
        assert!(o.advanced && !o.out_of_window);
        assert_eq!(&w[..3], b"abc");
        let o = s.insert(&mut w, 1000u32.wrapping_add(MAX_AHEAD), b"far");
        assert!(o.out_of_window && !o.beyond_depth);
        // Half the sequence space behind.
        let o = s.insert(&mut w, 1000u32.wrapping_sub(1 << 31), b"old");
        assert!(o.out_of_window);
        assert_eq!(s.readable(), 3);
    }

    #[test]
    fn mid_stream_pickup_anchors_on_the_first_segment() {
        let mut w = vec![0u8; 64];
        let mut s = StreamDir::default();
        assert_eq!(s.base(), None);
        assert_eq!(s.insert(&mut w, 77, b""), InsertOutcome::default());
        assert_eq!(s.base(), None, "an empty segment does not anchor");
        let o = s.insert(&mut w, 5000, b"SSH-2.0-");
        assert!(o.advanced);
        assert_eq!(s.base(), Some(5000));
        s.insert(&mut w, 5008, b"x");
        assert_eq!(&w[..s.readable()], b"SSH-2.0-x");
        // Data held: a late SYN cannot move the anchor.
        assert!(!s.set_isn(1));
        assert_eq!(s.base(), Some(5000));
        // Before any data, a SYN re-anchors (retransmitted SYN with a new ISN).
        let mut s = StreamDir::default();
        s.set_isn(10);
        assert!(s.set_isn(20));
        assert_eq!(s.base(), Some(21));
    }

    /// Byte-level model: which offsets are held and with what, first copy wins.
    struct ByteModel {
        held: Vec<Option<u8>>,
    }

    impl ByteModel {
        fn prefix(&self) -> usize {
            self.held.iter().take_while(|b| b.is_some()).count()
        }
        /// Maximal held runs that do not start at offset 0 (held ahead of a hole).
        fn gaps(&self) -> usize {
            (1..self.held.len())
                .filter(|&i| self.held[i].is_some() && self.held[i - 1].is_none())
                .count()
        }
    }

    #[test]
    fn randomized_against_a_byte_model() {
        let mut rng = Rng(7);
        for round in 0..400 {
            let depth = 1 + rng.below(300) as usize;
            let truth = payload(depth + 100, round);
            let mut w = vec![0x55u8; depth];
            let mut m = ByteModel {
                held: vec![None; depth],
            };
            let mut s = StreamDir::default();
            let isn = if round % 2 == 0 {
                u32::MAX - rng.below(100) as u32
            } else {
                rng.next() as u32
            };
            s.set_isn(isn);
            let base = isn.wrapping_add(1);
            for _ in 0..40 {
                let rel = rng.below(depth as u64 + 80) as i64 - 40;
                let len = rng.below(60) as usize;
                let mut data: Vec<u8> = (0..len)
                    .map(|i| {
                        let at = rel + i as i64;
                        truth.get(at.max(0) as usize).copied().unwrap_or(0)
                    })
                    .collect();
                if rng.below(8) == 0 && !data.is_empty() {
                    let i = rng.below(len as u64) as usize;
                    data[i] = data[i].wrapping_add(1);
                }
                let seq = base.wrapping_add(rel as u32);
                let o = s.insert(&mut w, seq, &data);

                // The model's view of the same segment.
                let mut want = InsertOutcome::default();
                let a = rel.max(0) as usize;
                let b = (rel + len as i64).max(0) as usize;
                if len == 0 {
                } else if b == 0 {
                    want.out_of_window = true;
                } else if a >= depth {
                    want.beyond_depth = true;
                } else {
                    let b_kept = b.min(depth);
                    want.beyond_depth = b > depth;
                    let old_prefix = m.prefix();
                    want.out_of_order = a > old_prefix;
                    let mut probe = ByteModel {
                        held: m.held.clone(),
                    };
                    for i in a..b_kept {
                        probe.held[i].get_or_insert(0);
                    }
                    if probe.gaps() > MAX_GAPS {
                        want.too_many_gaps = true;
                    } else {
                        let mut overlap = false;
                        let mut differ = false;
                        for i in a..b_kept {
                            let byte = data[(i as i64 - rel) as usize];
                            match m.held[i] {
                                Some(old) => {
                                    overlap = true;
                                    differ |= old != byte;
                                }
                                None => m.held[i] = Some(byte),
                            }
                        }
                        want.conflicting_overlap = differ;
                        want.retransmission = overlap && !differ;
                        want.advanced = m.prefix() > old_prefix;
                    }
                }
                assert_eq!(o, want, "round {round} rel {rel} len {len}");
                assert_eq!(s.readable(), m.prefix());
                let mut held = 0;
                for (i, b) in m.held.iter().enumerate() {
                    if let Some(b) = b {
                        assert_eq!(w[i], *b, "round {round} offset {i}");
                        held += 1;
                    }
                }
                assert_eq!(s.held_bytes(), held);
                assert_eq!(s.gaps(), m.gaps());
            }
        }
    }

    #[test]
    fn no_panic_on_any_sequence_and_length() {
        let mut rng = Rng(11);
        let big = payload(70_000, 5);
        for _ in 0..5000 {
            let mut w = vec![0u8; 1 + rng.below(2000) as usize];
            let mut s = StreamDir::default();
            if rng.below(2) == 0 {
                s.set_isn(rng.next() as u32);
            }
            for _ in 0..8 {
                let seq = match rng.below(4) {
                    0 => rng.next() as u32,
                    1 => s.base().unwrap_or(0).wrapping_add(rng.below(4000) as u32),
                    2 => s.base().unwrap_or(0).wrapping_sub(rng.below(4000) as u32),
                    _ => [0, u32::MAX, 1 << 31, (1 << 31) - 1][rng.below(4) as usize],
                };
                let len = rng.below(big.len() as u64) as usize;
                s.insert(&mut w, seq, &big[..len]);
                assert!(s.readable() <= w.len());
                assert!(s.gaps() <= MAX_GAPS);
            }
        }
    }

    #[test]
    fn pool_allocates_up_to_its_cap() {
        let mut p = StreamPool::new(1024, 10 * 2048 + 100);
        assert_eq!(
            (p.capacity(), p.depth(), p.reserved_bytes()),
            (10, 1024, 10 * 2048)
        );
        let slots: Vec<u32> = (0..10).map(|_| p.alloc().expect("slot")).collect();
        assert_eq!(p.alloc(), None);
        assert_eq!(p.in_use(), 10);
        let mut sorted = slots.clone();
        sorted.sort_unstable();
        sorted.dedup();
        assert_eq!(sorted.len(), 10);
        // Windows are disjoint and the right size.
        for &s in &slots {
            p.window_mut(s, 0).fill(s as u8);
            p.window_mut(s, 1).fill(100 + s as u8);
        }
        for &s in &slots {
            assert_eq!(p.window(s, 0).len(), 1024);
            assert!(p.window(s, 0).iter().all(|&b| b == s as u8));
            assert!(p.window(s, 1).iter().all(|&b| b == 100 + s as u8));
        }
        // Invalid slot or direction: empty, no panic.
        assert!(p.window(10, 0).is_empty());
        assert!(p.window_mut(3, 2).is_empty());
        // A cap below one slot gives no slots.
        let mut tiny = StreamPool::new(1024, 2047);
        assert_eq!((tiny.capacity(), tiny.alloc()), (0, None));
        // Depth 0 is taken as 1.
        assert_eq!(StreamPool::new(0, 10).depth(), 1);
    }

    #[test]
    fn pool_reuses_freed_slots_and_rejects_double_free() {
        let mut p = StreamPool::new(16, 3 * 32);
        let a = p.alloc().unwrap();
        let b = p.alloc().unwrap();
        let c = p.alloc().unwrap();
        assert_eq!(p.alloc(), None);
        assert!(p.free(b));
        assert!(!p.free(b), "double free");
        assert!(!p.free(99), "foreign slot");
        assert_eq!(p.in_use(), 2);
        assert_eq!(p.alloc(), Some(b), "the freed slot comes back");
        assert_eq!(p.alloc(), None);
        for s in [a, b, c] {
            assert!(p.free(s));
        }
        assert_eq!(p.in_use(), 0);
        let again: Vec<u32> = (0..3).map(|_| p.alloc().unwrap()).collect();
        assert_eq!(again, vec![c, b, a], "most recently freed first");
    }

    #[test]
    fn stale_bytes_of_a_reused_slot_are_never_compared() {
        let mut p = StreamPool::new(32, 64);
        let slot = p.alloc().unwrap();
        let mut s = StreamDir::default();
        s.set_isn(0);
        s.insert(p.window_mut(slot, 0), 1, b"old flow bytes");
        p.free(slot);
        let slot = p.alloc().unwrap();
        let mut s = StreamDir::default();
        s.set_isn(100);
        let o = s.insert(p.window_mut(slot, 0), 101, b"new flow");
        assert!(!o.conflicting_overlap && !o.retransmission && o.advanced);
        assert_eq!(&p.window(slot, 0)[..s.readable()], b"new flow");
    }
}
