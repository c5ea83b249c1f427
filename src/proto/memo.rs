//! Hello fingerprints already computed, per worker. Clients built on the same TLS stack send
//! the same lists in the same order (everything but Chromium, which shuffles its extensions),
//! and a server answers them the same way, so most hellos on a busy link were fingerprinted
//! before: a JA3, its JA3N and JA4 cost two MD5s and two SHA-256s over text (a server's JA3S
//! and JA4S one of each), a lookup a comparison of the lists.
//!
//! The key is built by `fingerprint` from exactly what the fingerprints read (see
//! `fingerprint::client_prints`); this file knows nothing of hellos, so the TLS scratch can
//! hold the memo without an import cycle.

use crate::text::InlineStr;

/// Capacity of a JA3 string: the fixed lists' capacities at six characters per value fit.
pub const JA3_TEXT_LEN: usize = 2048;
/// Most 16-bit words in a key (the scalars and every list, each after its length).
pub const HELLO_KEY_CAP: usize = 384;
/// Hellos remembered by default (per memo: one for clients, one for servers).
pub const HELLO_MEMO_ENTRIES: usize = 64;
/// Entries per set (the least recently used of a set is replaced).
const HELLO_MEMO_WAYS: usize = 4;

/// A JA3-style fingerprint: the string and its MD5 (lowercase hex). Defined here rather than
/// in `fingerprint` (which re-exports it) so the memo can hold one without an import cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ja3 {
    pub text: InlineStr<JA3_TEXT_LEN>,
    pub md5: InlineStr<32>,
    /// The hello had more values than its fixed lists keep, so the fingerprint is not the
    /// one other tools compute.
    pub incomplete: bool,
}

/// The fingerprints of one ClientHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelloPrints {
    pub ja3: Ja3,
    pub ja3n_md5: InlineStr<32>,
    pub ja4: InlineStr<36>,
}

/// The fingerprints of one ServerHello.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServerPrints {
    pub ja3s: Ja3,
    pub ja4s: InlineStr<25>,
}

#[derive(Debug, Clone)]
struct Entry<P> {
    key: [u16; HELLO_KEY_CAP],
    key_len: u16,
    last_use: u64,
    prints: Option<P>,
}

/// Bounded and allocated once, at start. `P` is what is remembered per hello:
/// [`HelloPrints`] or [`ServerPrints`].
#[derive(Debug)]
pub struct HelloMemo<P = HelloPrints> {
    entries: Box<[Entry<P>]>,
    /// Where prints that are not remembered (the memo is off) are kept for the caller.
    spare: Option<P>,
    lookups: u64,
    hits: u64,
}

impl<P: Copy> HelloMemo<P> {
    /// A memo of `entries` hellos (rounded up to a whole set; 0 disables it).
    pub fn new(entries: usize) -> HelloMemo<P> {
        let empty = Entry {
            key: [0; HELLO_KEY_CAP],
            key_len: 0,
            last_use: 0,
            prints: None,
        };
        let sets = entries.div_ceil(HELLO_MEMO_WAYS);
        HelloMemo {
            entries: vec![empty; sets * HELLO_MEMO_WAYS].into_boxed_slice(),
            spare: None,
            lookups: 0,
            hits: 0,
        }
    }

    /// Hellos found already fingerprinted, of all looked up.
    pub fn hits(&self) -> (u64, u64) {
        (self.hits, self.lookups)
    }

    /// Keeps `prints` that are not to be remembered, for the caller to borrow.
    pub fn keep(&mut self, prints: P) -> &P {
        self.spare.insert(prints)
    }

    /// The prints remembered for `key`, or `compute`'s, remembered when the key fits. Borrowed
    /// from the memo: the prints are a few KB, copied once, by the caller, where it keeps them.
    pub fn get_or_compute(&mut self, key: &[u16], compute: impl FnOnce() -> P) -> &P {
        self.lookups += 1;
        let now = self.lookups;
        let sets = self.entries.len() / HELLO_MEMO_WAYS;
        if sets == 0 || key.len() > HELLO_KEY_CAP {
            return self.keep(compute());
        }
        // FNV-1a over the words picks the set.
        let hash = key.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, w| {
            (h ^ u64::from(*w)).wrapping_mul(0x0100_0000_01b3)
        });
        let first = (hash % sets as u64) as usize * HELLO_MEMO_WAYS;
        let ways = self
            .entries
            .get(first..first + HELLO_MEMO_WAYS)
            .unwrap_or(&[]);
        let found = ways.iter().position(|e| {
            e.prints.is_some()
                && usize::from(e.key_len) == key.len()
                && e.key.get(..key.len()) == Some(key)
        });
        let victim = ways
            .iter()
            .enumerate()
            .min_by_key(|(_, e)| if e.prints.is_none() { 0 } else { e.last_use })
            .map_or(0, |(i, _)| i);
        if found.is_some() {
            self.hits += 1;
        }
        let spare = &mut self.spare;
        let Some(entry) = self.entries.get_mut(first + found.unwrap_or(victim)) else {
            return spare.insert(compute());
        };
        entry.last_use = now;
        if found.is_none() {
            let Some(slot) = entry.key.get_mut(..key.len()) else {
                return spare.insert(compute());
            };
            slot.copy_from_slice(key);
            entry.key_len = key.len() as u16;
            entry.prints = None;
        }
        match entry.prints {
            Some(ref prints) => prints,
            None => entry.prints.insert(compute()),
        }
    }
}
