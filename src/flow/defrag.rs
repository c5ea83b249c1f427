//! IPv4 and IPv6 fragment reassembly, in memory fixed when the worker starts.
//!
//! A [`Defrag`] holds up to `max_datagrams` datagrams in flight, each in a slot of
//! `max_datagram_bytes` (plus room for the header written in front on completion) with a bitmap
//! of the 8-byte blocks received. Fragment offsets are multiples of 8 and every fragment but the
//! last is a whole number of blocks, so a block is the unit of "held". Nothing is allocated per
//! packet; lookups scan the slots, which costs only on fragments.
//!
//! Overlaps keep the first copy and compare the rest: a later fragment whose bytes differ from
//! what is held marks the datagram as conflicting (the Teardrop / Ptacek–Newsham games, where
//! the inspector and the receiver reassemble different payloads). The caller decides what a
//! conflict means; the reassembled datagram is the first copy of every byte.
//!
//! What reaches the limits (too many datagrams in flight, too many fragments, too large, a
//! fragment no receiver would accept) is refused, and the datagram stays refused until its
//! timeout, so its later fragments are refused too.

use crate::capture::Timestamp;
use crate::wire::{Family, IpFragment};

/// Room in front of each slot's payload for the IP header written on completion.
const HEADROOM: usize = 40;
const IPV4_HEADER: usize = 20;
const IPV6_HEADER: usize = 40;
/// The largest IPv4 payload: the total length field is 16 bits and counts the header.
const MAX_IPV4_PAYLOAD: u32 = 65_535 - IPV4_HEADER as u32;

/// `[defrag]`: limits of IP fragment reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefragConfig {
    /// Reassemble fragments before inspection; off forwards them uninspected (counted).
    pub enabled: bool,
    /// Datagrams being reassembled at once, per worker.
    pub max_datagrams: u32,
    /// Fragments one datagram may arrive in.
    pub max_fragments: u32,
    /// Largest reassembled payload, in bytes.
    pub max_datagram_bytes: u32,
    /// A datagram not complete this long after its first fragment is given up.
    pub timeout_secs: u32,
    /// In block mode, drop fragments that cannot be reassembled (limits, broken fragments)
    /// instead of forwarding them uninspected.
    pub drop_unreassembled: bool,
}

impl Default for DefragConfig {
    fn default() -> Self {
        DefragConfig {
            enabled: true,
            max_datagrams: 64,
            max_fragments: 64,
            max_datagram_bytes: 65_535,
            timeout_secs: 30,
            drop_unreassembled: true,
        }
    }
}

/// What happened to a fragment or a datagram; a counter each.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum DefragEvent {
    /// A datagram was completed.
    Reassembled = 0,
    /// A completed datagram had overlapping fragments with different bytes.
    OverlapConflict = 1,
    /// A datagram was given up incomplete after the timeout.
    Timeout = 2,
    /// A new datagram found every slot busy.
    TableFull = 3,
    /// A datagram arrived in more fragments than allowed.
    TooManyFragments = 4,
    /// A datagram would exceed the size limit.
    TooLarge = 5,
    /// A fragment no receiver accepts (empty, not a multiple of 8 bytes before the last, cut
    /// by the capture).
    Invalid = 6,
    /// A fragment of a datagram already refused.
    Refused = 7,
}

impl DefragEvent {
    pub const COUNT: usize = 8;
    pub const NAMES: [&'static str; Self::COUNT] = [
        "reassembled",
        "overlap_conflict",
        "timeout",
        "table_full",
        "too_many_fragments",
        "too_large",
        "invalid",
        "refused",
    ];

    pub fn index(self) -> usize {
        self as usize
    }
}

/// What one fragment led to.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome<'a> {
    /// Kept; the datagram is not complete yet.
    Pending,
    /// The datagram is complete: an IP header (written here, lengths set, no fragment fields)
    /// followed by the payload. `conflict`: overlapping fragments disagreed.
    Complete { datagram: &'a [u8], conflict: bool },
    /// Not reassembled and never will be (the reason is counted as well).
    Refused(DefragEvent),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    family: Family,
    src: [u8; 16],
    dst: [u8; 16],
    id: u32,
    proto: u8,
}

#[derive(Debug, Clone, Copy)]
struct Slot {
    in_use: bool,
    /// Refused: later fragments are refused too until the timeout.
    refused: bool,
    conflict: bool,
    key: Key,
    first_ts: Timestamp,
    fragments: u32,
    held_blocks: u32,
    /// Payload length, once the last fragment (no more-fragments flag) was seen.
    total: Option<u32>,
    ttl: u8,
}

impl Slot {
    const EMPTY: Slot = Slot {
        in_use: false,
        refused: false,
        conflict: false,
        key: Key {
            family: Family::V4,
            src: [0; 16],
            dst: [0; 16],
            id: 0,
            proto: 0,
        },
        first_ts: Timestamp(0),
        fragments: 0,
        held_blocks: 0,
        total: None,
        ttl: 0,
    };
}

/// One worker's reassembly table.
pub struct Defrag {
    config: DefragConfig,
    slots: Vec<Slot>,
    /// Per slot: HEADROOM + max_datagram_bytes. Reserved whole at start but only zeroed up to
    /// the highest slot used so far (growing within the reservation never reallocates): a
    /// worker that never sees a fragment never touches it.
    mem: Vec<u8>,
    /// Per slot: one bit per 8-byte block of payload.
    held: Vec<u64>,
    slot_bytes: usize,
    slot_words: usize,
    timeout_ns: u64,
    in_use: usize,
    /// Counters by [`DefragEvent::index`].
    pub events: [u64; DefragEvent::COUNT],
}

impl Defrag {
    /// Reserves every slot now; memory is touched only as slots are first used.
    pub fn new(config: DefragConfig) -> Defrag {
        let datagrams = if config.enabled {
            config.max_datagrams as usize
        } else {
            0
        };
        let max_bytes = config.max_datagram_bytes as usize;
        let slot_bytes = HEADROOM + max_bytes;
        let slot_words = max_bytes.div_ceil(8).div_ceil(64);
        Defrag {
            config,
            slots: vec![Slot::EMPTY; datagrams],
            mem: Vec::with_capacity(datagrams * slot_bytes),
            held: vec![0; datagrams * slot_words],
            slot_bytes,
            slot_words,
            timeout_ns: u64::from(config.timeout_secs) * Timestamp::NANOS_PER_SEC,
            in_use: 0,
            events: [0; DefragEvent::COUNT],
        }
    }

    pub fn enabled(&self) -> bool {
        self.config.enabled
    }

    pub fn drop_unreassembled(&self) -> bool {
        self.config.drop_unreassembled
    }

    /// Datagrams in flight (refused ones included, until their timeout).
    pub fn in_use(&self) -> usize {
        self.in_use
    }

    /// Gives up datagrams older than the timeout.
    pub fn expire(&mut self, now: Timestamp) {
        if self.in_use == 0 {
            return;
        }
        for i in 0..self.slots.len() {
            let s = self.slots[i];
            if s.in_use && now.since(s.first_ts) > self.timeout_ns {
                if !s.refused {
                    self.events[DefragEvent::Timeout.index()] += 1;
                }
                self.release(i);
            }
        }
    }

    fn release(&mut self, i: usize) {
        if let Some(s) = self.slots.get_mut(i) {
            if s.in_use {
                self.in_use -= 1;
            }
            *s = Slot::EMPTY;
        }
    }

    fn refuse(&mut self, i: usize, why: DefragEvent) -> Outcome<'_> {
        self.events[why.index()] += 1;
        if let Some(s) = self.slots.get_mut(i) {
            s.refused = true;
        }
        Outcome::Refused(why)
    }

    /// The slot of `key`, or a free one claimed for it; `None` when every slot is busy.
    fn slot_for(&mut self, key: &Key, now: Timestamp) -> Option<usize> {
        let timeout = self.timeout_ns;
        let expired = |s: &Slot| now.since(s.first_ts) > timeout;
        let mine = self.slots.iter().position(|s| s.in_use && s.key == *key);
        let i = match mine {
            Some(i) if !expired(&self.slots[i]) => return Some(i),
            Some(i) => i,
            None => self.slots.iter().position(|s| !s.in_use || expired(s))?,
        };
        // Expired but not yet swept: given up now, and the slot starts over.
        if self.slots[i].in_use {
            if !self.slots[i].refused {
                self.events[DefragEvent::Timeout.index()] += 1;
            }
            self.release(i);
        }
        self.claim(i, key, now)
    }

    fn claim(&mut self, i: usize, key: &Key, now: Timestamp) -> Option<usize> {
        let s = self.slots.get_mut(i)?;
        *s = Slot {
            in_use: true,
            key: *key,
            first_ts: now,
            ..Slot::EMPTY
        };
        self.in_use += 1;
        let end = (i + 1) * self.slot_bytes;
        if self.mem.len() < end && end <= self.mem.capacity() {
            // Within the reservation made at start: no reallocation.
            self.mem.resize(end, 0);
        }
        if let Some(words) = self
            .held
            .get_mut(i * self.slot_words..(i + 1) * self.slot_words)
        {
            words.fill(0);
        }
        Some(i)
    }

    /// Adds one fragment. Never panics and never allocates, whatever the fragment says.
    pub fn insert(&mut self, f: &IpFragment<'_>, now: Timestamp) -> Outcome<'_> {
        let key = Key {
            family: f.family,
            src: f.src,
            dst: f.dst,
            id: f.id,
            proto: f.proto,
        };
        let Some(i) = self.slot_for(&key, now) else {
            self.events[DefragEvent::TableFull.index()] += 1;
            return Outcome::Refused(DefragEvent::TableFull);
        };
        if self.slots[i].refused {
            self.events[DefragEvent::Refused.index()] += 1;
            return Outcome::Refused(DefragEvent::Refused);
        }
        let len = f.data.len() as u32;
        // Every fragment but the last is a whole number of 8-byte blocks (RFC 791, RFC 8200).
        if !f.whole || len == 0 || (f.more && len % 8 != 0) {
            return self.refuse(i, DefragEvent::Invalid);
        }
        let start = f.offset;
        let end = start.saturating_add(len);
        let limit = match f.family {
            Family::V4 => self.config.max_datagram_bytes.min(MAX_IPV4_PAYLOAD),
            Family::V6 => self.config.max_datagram_bytes,
        };
        if end > limit {
            return self.refuse(i, DefragEvent::TooLarge);
        }
        if self.slots[i].fragments >= self.config.max_fragments {
            return self.refuse(i, DefragEvent::TooManyFragments);
        }
        let (slot_bytes, slot_words) = (self.slot_bytes, self.slot_words);
        let s = &mut self.slots[i];
        s.fragments += 1;
        if start == 0 {
            s.ttl = f.ttl;
        }
        if !f.more {
            match s.total {
                Some(t) if t != end => s.conflict = true,
                Some(_) => {}
                None => s.total = Some(end),
            }
        }
        if s.total.is_some_and(|t| end > t) {
            s.conflict = true;
        }
        let payload = self
            .mem
            .get_mut(i * slot_bytes + HEADROOM..(i + 1) * slot_bytes)
            .unwrap_or_default();
        let held = self
            .held
            .get_mut(i * slot_words..(i + 1) * slot_words)
            .unwrap_or_default();
        // Block by block: write where nothing is held, compare where something is.
        let mut block = start / 8;
        let mut at = start;
        while at < end {
            let block_end = ((block + 1) * 8).min(end);
            let (a, b) = (at as usize, block_end as usize);
            let src = f
                .data
                .get(a - start as usize..b - start as usize)
                .unwrap_or_default();
            let word = (block / 64) as usize;
            let bit = 1u64 << (block % 64);
            let is_held = held.get(word).is_some_and(|w| w & bit != 0);
            if let Some(dst) = payload.get_mut(a..b) {
                if is_held {
                    s.conflict |= dst != src;
                } else {
                    dst.copy_from_slice(src);
                    if let Some(w) = held.get_mut(word) {
                        *w |= bit;
                    }
                    s.held_blocks += 1;
                }
            }
            at = block_end;
            block += 1;
        }
        let Some(total) = s.total else {
            return Outcome::Pending;
        };
        let blocks = total.div_ceil(8);
        if s.held_blocks < blocks || !all_held(held, blocks) {
            return Outcome::Pending;
        }
        let conflict = s.conflict;
        let slot = *s;
        self.events[DefragEvent::Reassembled.index()] += 1;
        if conflict {
            self.events[DefragEvent::OverlapConflict.index()] += 1;
            // Later copies of the datagram's fragments are refused until the timeout.
            self.slots[i].refused = true;
        } else {
            self.release(i);
        }
        let region = self
            .mem
            .get_mut(i * slot_bytes..i * slot_bytes + HEADROOM + total as usize)
            .unwrap_or_default();
        let header_len = write_header(region, &slot, total);
        region
            .get(HEADROOM - header_len..)
            .map_or(Outcome::Refused(DefragEvent::Invalid), |datagram| {
                Outcome::Complete { datagram, conflict }
            })
    }
}

fn all_held(held: &[u64], blocks: u32) -> bool {
    let full = (blocks / 64) as usize;
    let rest = blocks % 64;
    held.get(..full)
        .is_some_and(|w| w.iter().all(|&x| x == u64::MAX))
        && (rest == 0
            || held
                .get(full)
                .is_some_and(|&w| w & ((1u64 << rest) - 1) == (1u64 << rest) - 1))
}

/// Writes the reassembled datagram's IP header just before the payload in `region` (whose
/// first HEADROOM bytes are free); returns its length.
fn write_header(region: &mut [u8], s: &Slot, total: u32) -> usize {
    let k = &s.key;
    match k.family {
        Family::V4 => {
            let Some(h) = region.get_mut(HEADROOM - IPV4_HEADER..HEADROOM) else {
                return 0;
            };
            let length = (IPV4_HEADER as u32 + total) as u16;
            h.fill(0);
            h[0] = 0x45;
            h[2..4].copy_from_slice(&length.to_be_bytes());
            h[4..6].copy_from_slice(&(k.id as u16).to_be_bytes());
            h[8] = s.ttl;
            h[9] = k.proto;
            h[12..16].copy_from_slice(&k.src[..4]);
            h[16..20].copy_from_slice(&k.dst[..4]);
            IPV4_HEADER
        }
        Family::V6 => {
            let Some(h) = region.get_mut(HEADROOM - IPV6_HEADER..HEADROOM) else {
                return 0;
            };
            h.fill(0);
            h[0] = 0x60;
            h[4..6].copy_from_slice(&(total as u16).to_be_bytes());
            h[6] = k.proto;
            h[7] = s.ttl;
            h[8..24].copy_from_slice(&k.src);
            h[24..40].copy_from_slice(&k.dst);
            IPV6_HEADER
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frag(data: &[u8], offset: u32, more: bool, id: u32) -> IpFragment<'_> {
        let mut src = [0u8; 16];
        src[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut dst = [0u8; 16];
        dst[..4].copy_from_slice(&[10, 0, 0, 2]);
        IpFragment {
            family: Family::V4,
            src,
            dst,
            id,
            proto: 6,
            offset,
            more,
            ttl: 64,
            vlan: None,
            data,
            whole: true,
        }
    }

    fn small() -> Defrag {
        Defrag::new(DefragConfig {
            max_datagrams: 2,
            max_fragments: 4,
            max_datagram_bytes: 64,
            ..DefragConfig::default()
        })
    }

    const T0: Timestamp = Timestamp(1_000);

    fn payload(d: &Outcome<'_>) -> (Vec<u8>, bool) {
        match d {
            Outcome::Complete { datagram, conflict } => (datagram[20..].to_vec(), *conflict),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn in_order_and_reversed_reassemble_the_same_bytes() {
        let data: Vec<u8> = (0..20u8).collect();
        for order in [[0usize, 1, 2], [2, 1, 0], [1, 2, 0]] {
            let mut d = small();
            let parts = [
                frag(&data[0..8], 0, true, 7),
                frag(&data[8..16], 8, true, 7),
                frag(&data[16..], 16, false, 7),
            ];
            let mut last = None;
            for (n, &i) in order.iter().enumerate() {
                let out = d.insert(&parts[i], T0);
                if n < 2 {
                    assert_eq!(out, Outcome::Pending);
                } else {
                    last = Some(payload(&out));
                    if let Outcome::Complete { datagram, .. } = out {
                        assert_eq!(datagram[0], 0x45);
                        assert_eq!(u16::from_be_bytes([datagram[2], datagram[3]]), 40);
                        assert_eq!(datagram[9], 6);
                    }
                }
            }
            assert_eq!(last, Some((data.clone(), false)));
            assert_eq!(d.in_use(), 0);
        }
    }

    #[test]
    fn overlaps_keep_the_first_copy_and_report_a_conflict() {
        let mut d = small();
        assert_eq!(
            d.insert(&frag(b"AAAAAAAA", 0, true, 1), T0),
            Outcome::Pending
        );
        assert_eq!(
            d.insert(&frag(b"BBBBBBBB", 0, true, 1), T0),
            Outcome::Pending
        );
        let out = d.insert(&frag(b"CC", 8, false, 1), T0);
        assert_eq!(payload(&out), (b"AAAAAAAACC".to_vec(), true));
        // The datagram stays refused: a copy of its last fragment is not let through.
        assert_eq!(
            d.insert(&frag(b"CC", 8, false, 1), T0),
            Outcome::Refused(DefragEvent::Refused)
        );
        // Identical overlaps are retransmissions, not conflicts.
        let out = {
            d.insert(&frag(b"AAAAAAAA", 0, true, 2), T0);
            d.insert(&frag(b"AAAAAAAA", 0, true, 2), T0);
            d.insert(&frag(b"CC", 8, false, 2), T0)
        };
        assert_eq!(payload(&out), (b"AAAAAAAACC".to_vec(), false));
    }

    #[test]
    fn limits_refuse_and_keep_refusing() {
        let mut d = small();
        let eight = [0u8; 8];
        for n in 0..4 {
            assert_eq!(
                d.insert(&frag(&eight, n * 8, true, 1), T0),
                Outcome::Pending
            );
        }
        assert_eq!(
            d.insert(&frag(&eight, 32, true, 1), T0),
            Outcome::Refused(DefragEvent::TooManyFragments)
        );
        assert_eq!(
            d.insert(&frag(&eight, 40, false, 1), T0),
            Outcome::Refused(DefragEvent::Refused)
        );
        assert_eq!(
            d.insert(&frag(&eight, 64, true, 2), T0),
            Outcome::Refused(DefragEvent::TooLarge)
        );
        assert_eq!(
            d.insert(&frag(&eight, 0, true, 3), T0),
            Outcome::Refused(DefragEvent::TableFull)
        );
        assert_eq!(
            d.insert(&frag(&[1, 2, 3], 0, true, 1), T0),
            Outcome::Refused(DefragEvent::Refused)
        );
        // After the timeout the slots are free again.
        let later = T0.add_nanos(31 * Timestamp::NANOS_PER_SEC);
        d.expire(later);
        assert_eq!(d.in_use(), 0);
        assert_eq!(
            d.insert(&frag(&[1, 2, 3], 0, true, 9), later),
            Outcome::Refused(DefragEvent::Invalid)
        );
        assert_eq!(
            d.events[DefragEvent::Timeout.index()],
            0,
            "refused ones do not time out as pending"
        );
    }

    #[test]
    fn arbitrary_fragments_never_panic() {
        let mut state = 0x1234_5678_9abc_def0u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let mut d = small();
        let data = [0xabu8; 80];
        for n in 0..20_000u64 {
            let len = (next() % 80) as usize;
            let f = frag(
                &data[..len],
                (next() % 96) as u32 * 8,
                next() % 3 != 0,
                (next() % 4) as u32,
            );
            let _ = d.insert(&f, Timestamp(n * 1_000_000_000));
        }
    }
}
