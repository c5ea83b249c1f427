//! The direction-free flow key: both directions of a connection map to the same key.
//!
//! The canonical order (which endpoint is `lo`) is also computed by the XDP program for its
//! block and bypass maps, so it must stay exactly: compare the 16 address bytes
//! lexicographically, then the host-order port; the smaller endpoint is `lo`.

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::OnceLock;

use crate::wire::{Family, TcpPacket};

/// IANA protocol number of TCP, the only protocol this key describes today.
pub const IPPROTO_TCP: u8 = 6;

/// A TCP connection's endpoints in canonical order: `lo` is the endpoint whose (address bytes,
/// port) pair sorts first. Layout matches `struct unmask_flow_key` in bpf/unmask_shared.h,
/// except that ports here are host order (the datapath converts when it writes the BPF map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub family: u8,
    pub proto: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 40);

/// An IPv4 key's endpoints as two words, each the address (as a big-endian number) above the
/// port: the order [`FlowKey::new`] sorts endpoints in, so `lo <= hi`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct V4Endpoints {
    pub lo: u64,
    pub hi: u64,
}

impl V4Endpoints {
    #[inline(always)]
    fn word(addr_be: u32, port: u16) -> u64 {
        u64::from(addr_be) << 16 | u64::from(port)
    }
}

/// Which endpoint of the key sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lo,
    Hi,
}

impl Side {
    /// The other endpoint.
    pub fn other(self) -> Side {
        match self {
            Side::Lo => Side::Hi,
            Side::Hi => Side::Lo,
        }
    }
}

impl FlowKey {
    /// The key of a packet's flow, and which end of it sent the packet.
    pub fn from_tcp(p: &TcpPacket<'_>) -> (FlowKey, Side) {
        FlowKey::new(p.family, p.src, p.sport, p.dst, p.dport)
    }

    /// The canonical key of a TCP connection between `(src, sport)` and `(dst, dport)`, and the
    /// side `src` ended up on. Identical endpoints (a connection to itself) are `Lo`.
    pub fn new(
        family: Family,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
    ) -> (FlowKey, Side) {
        // Big-endian integers order as their bytes do: one 128-bit compare instead of a
        // byte-wise one.
        let src_first = (u128::from_be_bytes(src), sport) <= (u128::from_be_bytes(dst), dport);
        let (lo_addr, lo_port, hi_addr, hi_port, side) = if src_first {
            (src, sport, dst, dport, Side::Lo)
        } else {
            (dst, dport, src, sport, Side::Hi)
        };
        (
            FlowKey::tcp(family, lo_addr, lo_port, hi_addr, hi_port),
            side,
        )
    }

    /// [`FlowKey::new`] from addresses given as little-endian words of their 16 bytes
    /// (`u128::from_le_bytes`), as the lean decode reads them: no byte arrays are built.
    #[inline(always)]
    pub fn from_words(
        family: Family,
        src: u128,
        sport: u16,
        dst: u128,
        dport: u16,
    ) -> (FlowKey, Side) {
        // The byte order of the addresses is their big-endian value: swap, then compare.
        let src_first = (src.swap_bytes(), sport) <= (dst.swap_bytes(), dport);
        let (lo, lo_port, hi, hi_port, side) = if src_first {
            (src, sport, dst, dport, Side::Lo)
        } else {
            (dst, dport, src, sport, Side::Hi)
        };
        let key = FlowKey::tcp(family, lo.to_le_bytes(), lo_port, hi.to_le_bytes(), hi_port);
        (key, side)
    }

    /// [`FlowKey::new`] of an IPv4 connection, addresses given as little-endian words of
    /// their 4 bytes: the (address, port) order is one 64-bit compare. Also gives the key's
    /// [`V4Endpoints`], from which [`FlowHasher::hash_v4`] hashes it.
    #[inline(always)]
    pub fn from_v4_words(
        src: u32,
        sport: u16,
        dst: u32,
        dport: u16,
    ) -> (FlowKey, Side, V4Endpoints) {
        let s = V4Endpoints::word(src.swap_bytes(), sport);
        let d = V4Endpoints::word(dst.swap_bytes(), dport);
        let (lo, lo_port, hi, hi_port, side) = if s <= d {
            (src, sport, dst, dport, Side::Lo)
        } else {
            (dst, dport, src, sport, Side::Hi)
        };
        let ends = V4Endpoints {
            lo: s.min(d),
            hi: s.max(d),
        };
        let (lo, hi) = (u128::from(lo).to_le_bytes(), u128::from(hi).to_le_bytes());
        (
            FlowKey::tcp(Family::V4, lo, lo_port, hi, hi_port),
            side,
            ends,
        )
    }

    /// The endpoints of an IPv4 connection between `(src, sport)` and `(dst, dport)`
    /// (addresses as in [`FlowKey::from_v4_words`]) and the side `src` is on, without the
    /// key: what the lean path looks a flow up by ([`FlowTable::find_v4`]).
    ///
    /// [`FlowTable::find_v4`]: super::table::FlowTable::find_v4
    #[inline(always)]
    pub fn v4_sides(src: u32, sport: u16, dst: u32, dport: u16) -> (V4Endpoints, Side) {
        let s = V4Endpoints::word(src.swap_bytes(), sport);
        let d = V4Endpoints::word(dst.swap_bytes(), dport);
        let side = if s <= d { Side::Lo } else { Side::Hi };
        (
            V4Endpoints {
                lo: s.min(d),
                hi: s.max(d),
            },
            side,
        )
    }

    /// This key's [`V4Endpoints`] when it is exactly what [`FlowKey::from_v4_words`] builds
    /// (IPv4, TCP, the address bytes past the fourth and the padding zero), so that equal
    /// endpoints mean an equal key; `None` for any other key.
    pub fn exact_v4_endpoints(&self) -> Option<V4Endpoints> {
        let v4 = self.family == Family::V4 as u8
            && self.proto == IPPROTO_TCP
            && self._pad == [0; 2]
            && self.lo_addr[4..] == [0; 12]
            && self.hi_addr[4..] == [0; 12];
        v4.then(|| self.v4_endpoints())
    }

    /// The endpoints of an IPv4 key as [`V4Endpoints`] (the first four address bytes).
    #[inline(always)]
    fn v4_endpoints(&self) -> V4Endpoints {
        let [a, b, c, d, ..] = self.lo_addr;
        let lo = V4Endpoints::word(u32::from_be_bytes([a, b, c, d]), self.lo_port);
        let [a, b, c, d, ..] = self.hi_addr;
        let hi = V4Endpoints::word(u32::from_be_bytes([a, b, c, d]), self.hi_port);
        V4Endpoints { lo, hi }
    }

    /// The key of a TCP connection whose endpoints are already in canonical order.
    #[inline(always)]
    fn tcp(
        family: Family,
        lo_addr: [u8; 16],
        lo_port: u16,
        hi_addr: [u8; 16],
        hi_port: u16,
    ) -> Self {
        FlowKey {
            lo_addr,
            hi_addr,
            lo_port,
            hi_port,
            family: family as u8,
            proto: IPPROTO_TCP,
            _pad: [0; 2],
        }
    }

    /// `self == other`, as three word compares folded into one branch: the derived
    /// comparison goes field by field, a branch each, in the flow table's lookup.
    #[inline(always)]
    pub fn same(&self, other: &FlowKey) -> bool {
        let lo = u128::from_ne_bytes(self.lo_addr) ^ u128::from_ne_bytes(other.lo_addr);
        let hi = u128::from_ne_bytes(self.hi_addr) ^ u128::from_ne_bytes(other.hi_addr);
        let tail = self.tail() ^ other.tail();
        (lo | hi) == 0 && tail == 0
    }

    /// The last eight bytes (ports, family, protocol, padding) as one word.
    #[inline(always)]
    fn tail(&self) -> u64 {
        u64::from(self.lo_port)
            | u64::from(self.hi_port) << 16
            | u64::from(self.family) << 32
            | u64::from(self.proto) << 40
            | u64::from(self._pad[0]) << 48
            | u64::from(self._pad[1]) << 56
    }

    pub fn family(&self) -> Family {
        if self.family == 6 {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// A well-mixed 64-bit hash of the key (the same on both directions), keyed with the
    /// process-wide random seed of [`FlowHasher::global`].
    pub fn hash64(&self) -> u64 {
        FlowHasher::global().hash(self)
    }

    /// The same hash under an explicit hasher (fixed seeds for reproducible tests and benches).
    pub fn hash_with(&self, hasher: &FlowHasher) -> u64 {
        hasher.hash(self)
    }

    /// The address bytes of one endpoint (IPv4 in the first four bytes).
    pub fn addr(&self, side: Side) -> [u8; 16] {
        match side {
            Side::Lo => self.lo_addr,
            Side::Hi => self.hi_addr,
        }
    }

    /// The host-order port of one endpoint.
    pub fn port(&self, side: Side) -> u16 {
        match side {
            Side::Lo => self.lo_port,
            Side::Hi => self.hi_port,
        }
    }

    /// One endpoint's address as a std address, for output.
    pub fn ip(&self, side: Side) -> IpAddr {
        let a = self.addr(side);
        match self.family() {
            Family::V4 => IpAddr::V4(Ipv4Addr::new(a[0], a[1], a[2], a[3])),
            Family::V6 => IpAddr::V6(Ipv6Addr::from(a)),
        }
    }

    /// `(src addr, src port, dst addr, dst port)` of a packet sent by `sender`. With
    /// `sender = flow.client` this is (client, server).
    pub fn endpoints(&self, sender: Side) -> ([u8; 16], u16, [u8; 16], u16) {
        let recv = sender.other();
        (
            self.addr(sender),
            self.port(sender),
            self.addr(recv),
            self.port(recv),
        )
    }

    /// `(src, dst)` socket addresses of a packet sent by `sender`, for output.
    pub fn socket_addrs(&self, sender: Side) -> (SocketAddr, SocketAddr) {
        let recv = sender.other();
        (
            SocketAddr::new(self.ip(sender), self.port(sender)),
            SocketAddr::new(self.ip(recv), self.port(recv)),
        )
    }
}

/// A keyed hash of flow keys, for the flow table.
///
/// Keys are chosen by whoever sends packets (a SYN flood over random 5-tuples), so the hash
/// is keyed with a secret seed that an attacker cannot learn from outside: without it they
/// cannot aim many keys at one bucket. The mixing is the folded 64x64->128 multiply used by
/// fast keyed hashes (wyhash, foldhash): three multiplies for 40 bytes, a few nanoseconds.
/// It is not a cryptographic MAC; it only has to make collisions unpredictable.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct FlowHasher {
    k: [u64; 6],
    /// Even keys of IPv4 keys' one multiply ([`FlowHasher::hash_v4`]).
    v4: [u64; 2],
}

impl std::fmt::Debug for FlowHasher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The keys are the secret; never print them.
        f.write_str("FlowHasher { .. }")
    }
}

static GLOBAL_HASHER: OnceLock<FlowHasher> = OnceLock::new();

fn fold_mul(a: u64, b: u64) -> u64 {
    let p = (a as u128).wrapping_mul(b as u128);
    (p as u64) ^ ((p >> 64) as u64)
}

fn splitmix64(state: &mut u64) -> u64 {
    *state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
    let mut z = *state;
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

impl FlowHasher {
    /// A hasher with a fixed seed: the same hashes in every run (tests, benches, reproducible
    /// replays). Never use a published seed on a live link.
    pub fn with_seed(seed: u64) -> FlowHasher {
        let mut state = seed;
        let mut k = [0u64; 6];
        for w in &mut k {
            // An odd multiplier operand keeps a zero word from zeroing the product.
            *w = splitmix64(&mut state) | 1;
        }
        let v4 = [splitmix64(&mut state) & !1, splitmix64(&mut state) & !1];
        FlowHasher { k, v4 }
    }

    /// A hasher with a seed drawn from the OS's randomness (through std's `RandomState`, whose
    /// SipHash keys come from the OS once per thread).
    pub fn random() -> FlowHasher {
        let rs = std::collections::hash_map::RandomState::new();
        let seed =
            rs.hash_one(0x756e_6d61_736bu64) ^ rs.hash_one(std::process::id()).rotate_left(32);
        FlowHasher::with_seed(seed)
    }

    /// The process-wide hasher behind [`FlowKey::hash64`]: random unless
    /// [`FlowHasher::set_global`] ran first. Seeded once; afterwards this is a plain load.
    pub fn global() -> &'static FlowHasher {
        GLOBAL_HASHER.get_or_init(FlowHasher::random)
    }

    /// Fixes the process-wide hasher (deterministic replays). Only works before the first
    /// use; returns false (and changes nothing) afterwards.
    pub fn set_global(hasher: FlowHasher) -> bool {
        GLOBAL_HASHER.set(hasher).is_ok()
    }

    /// The 64-bit hash of a key.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        if key.family == Family::V4 as u8 {
            return self.hash_v4(key.v4_endpoints());
        }
        let lo = u128::from_le_bytes(key.lo_addr);
        let hi = u128::from_le_bytes(key.hi_addr);
        let tail = (key.lo_port as u64)
            | (key.hi_port as u64) << 16
            | (key.family as u64) << 32
            | (key.proto as u64) << 40;
        let a = fold_mul(lo as u64 ^ self.k[0], (lo >> 64) as u64 ^ self.k[1]);
        let b = fold_mul(hi as u64 ^ self.k[2], (hi >> 64) as u64 ^ self.k[3]);
        // The folded product's high half reaches every low bit the table uses, so the third
        // product is the last: a fourth round measured 5 % of a decided flow's packet cost
        // and is not needed for the spread (`hash_spreads_sequential_keys_over_low_bits`).
        fold_mul(a ^ tail ^ self.k[4], b ^ self.k[5])
    }

    /// [`FlowHasher::hash`] of an IPv4 key, from its endpoint words: one multiply. Each
    /// 48-bit word, shifted up with its low bit set and XORed with an even key, is an odd
    /// operand, so the product's low half is a bijection of either word given the other:
    /// consecutive ports of one endpoint land on distinct low bits (an even operand would
    /// pin the product's low bits to zero and pile them into a fraction of the buckets).
    #[inline(always)]
    pub fn hash_v4(&self, ends: V4Endpoints) -> u64 {
        fold_mul(
            (ends.lo << 1 | 1) ^ self.v4[0],
            (ends.hi << 1 | 1) ^ self.v4[1],
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::TcpFlags;

    fn v4(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&a);
        out
    }

    fn v6(last: u8) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[0] = 0x20;
        out[1] = 0x01;
        out[2] = 0x0d;
        out[3] = 0xb8;
        out[15] = last;
        out
    }

    fn pkt(
        family: Family,
        src: [u8; 16],
        sport: u16,
        dst: [u8; 16],
        dport: u16,
    ) -> TcpPacket<'static> {
        TcpPacket {
            family,
            src,
            dst,
            sport,
            dport,
            seq: 1,
            ack: 0,
            flags: TcpFlags(TcpFlags::SYN),
            window: 0,
            ttl: 64,
            vlan: None,
            segment_len: 0,
            header: &[],
            payload: &[],
            anomalies: Default::default(),
        }
    }

    #[test]
    fn both_directions_give_one_key_v4() {
        let a = v4([10, 0, 0, 2]);
        let b = v4([10, 0, 0, 1]);
        let (k1, s1) = FlowKey::from_tcp(&pkt(Family::V4, a, 40000, b, 443));
        let (k2, s2) = FlowKey::from_tcp(&pkt(Family::V4, b, 443, a, 40000));
        assert_eq!(k1, k2);
        assert_ne!(s1, s2);
        // 10.0.0.1 sorts first, so it is lo whatever the ports say.
        assert_eq!(k1.lo_addr, b);
        assert_eq!(k1.lo_port, 443);
        assert_eq!(k1.hi_port, 40000);
        assert_eq!(s1, Side::Hi);
        assert_eq!(k1.family, 4);
        assert_eq!(k1.proto, IPPROTO_TCP);
        assert_eq!(k1.hash64(), k2.hash64());
    }

    #[test]
    fn both_directions_give_one_key_v6() {
        let a = v6(1);
        let b = v6(2);
        let (k1, s1) = FlowKey::from_tcp(&pkt(Family::V6, b, 80, a, 50000));
        let (k2, s2) = FlowKey::from_tcp(&pkt(Family::V6, a, 50000, b, 80));
        assert_eq!(k1, k2);
        assert_eq!(s1, Side::Hi);
        assert_eq!(s2, Side::Lo);
        assert_eq!(k1.lo_addr, a);
        assert_eq!(k1.family(), Family::V6);
        assert_eq!(k1.ip(Side::Lo), "2001:db8::1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn equal_addresses_order_by_host_port() {
        let a = v4([127, 0, 0, 1]);
        // 0x0100 = 256 > 0x00ff = 255 in host order, though its first byte (network order 0x01)
        // is smaller: the comparison is on the host-order value, as in the XDP program.
        let (k, s) = FlowKey::from_tcp(&pkt(Family::V4, a, 256, a, 255));
        assert_eq!((k.lo_port, k.hi_port), (255, 256));
        assert_eq!(s, Side::Hi);
        let (k2, s2) = FlowKey::from_tcp(&pkt(Family::V4, a, 255, a, 256));
        assert_eq!(k, k2);
        assert_eq!(s2, Side::Lo);
        // A connection to itself: both directions are Lo.
        let (k3, s3) = FlowKey::from_tcp(&pkt(Family::V4, a, 7, a, 7));
        assert_eq!(s3, Side::Lo);
        assert_eq!(k3.lo_port, 7);
    }

    #[test]
    fn address_order_is_bytewise_not_numeric_per_family() {
        // Byte 3 decides before the port does.
        let (k, s) = FlowKey::new(Family::V4, v4([10, 0, 0, 9]), 1, v4([10, 0, 1, 0]), 65535);
        assert_eq!(s, Side::Lo);
        assert_eq!(k.lo_addr, v4([10, 0, 0, 9]));
    }

    #[test]
    fn endpoints_follow_the_sender() {
        let (k, s) = FlowKey::new(
            Family::V4,
            v4([192, 168, 1, 9]),
            51000,
            v4([1, 1, 1, 1]),
            443,
        );
        assert_eq!(s, Side::Hi);
        let (sa, sp, da, dp) = k.endpoints(s);
        assert_eq!(
            (sa, sp, da, dp),
            (v4([192, 168, 1, 9]), 51000, v4([1, 1, 1, 1]), 443)
        );
        let (src, dst) = k.socket_addrs(s.other());
        assert_eq!(src, "1.1.1.1:443".parse::<SocketAddr>().unwrap());
        assert_eq!(dst, "192.168.1.9:51000".parse::<SocketAddr>().unwrap());
    }

    #[test]
    fn seeded_hashes_are_reproducible_and_seed_dependent() {
        let (k, _) = FlowKey::new(Family::V4, v4([10, 0, 0, 1]), 1234, v4([10, 0, 0, 2]), 80);
        let h1 = FlowHasher::with_seed(7);
        let h2 = FlowHasher::with_seed(7);
        let h3 = FlowHasher::with_seed(8);
        assert_eq!(k.hash_with(&h1), k.hash_with(&h2));
        assert_ne!(k.hash_with(&h1), k.hash_with(&h3));
        assert_ne!(FlowHasher::random().hash(&k), FlowHasher::random().hash(&k));
        assert_eq!(format!("{h1:?}"), "FlowHasher { .. }");
    }

    #[test]
    fn same_agrees_with_equality_on_every_byte() {
        let (base, _) = FlowKey::new(Family::V6, v6(7), 40_000, v6(9), 443);
        assert!(base.same(&base));
        // Every one of the key's 40 bytes, changed alone, makes the keys differ.
        for at in 0..40 {
            let mut k = base;
            match at {
                0..=15 => k.lo_addr[at] ^= 0x80,
                16..=31 => k.hi_addr[at - 16] ^= 1,
                32 => k.lo_port ^= 1,
                33 => k.lo_port ^= 0x100,
                34 => k.hi_port ^= 1,
                35 => k.hi_port ^= 0x8000,
                36 => k.family ^= 2,
                37 => k.proto ^= 1,
                _ => k._pad[at - 38] ^= 1,
            }
            assert_eq!(k == base, k.same(&base), "byte {at}");
            assert!(!k.same(&base), "byte {at}");
            assert!(!base.same(&k), "byte {at}");
        }
    }

    #[test]
    fn hash_spreads_sequential_keys_over_low_bits() {
        // A SYN flood from one source over consecutive ports must not pile into few buckets,
        // whatever the parity of the fixed server port (an even multiply operand would pin
        // low product bits), and over both the IPv4 and the general hash.
        for (seed, server, port) in [
            (1, v4([10, 0, 0, 2]), 80),
            (2, v4([10, 0, 0, 2]), 443),
            (3, v4([10, 0, 0, 3]), 8080),
            (4, v4([10, 0, 0, 3]), 8443),
            (5, v6(2), 443),
            (6, v6(2), 80),
        ] {
            let family = if server == v6(2) {
                Family::V6
            } else {
                Family::V4
            };
            let h = FlowHasher::with_seed(seed);
            let buckets = 1usize << 12;
            let mut counts = vec![0u32; buckets];
            let n = buckets * 16;
            for i in 0..n {
                let mut client = server;
                client[0] = 9;
                client[2] = (i >> 16) as u8;
                let (k, _) = FlowKey::new(family, client, i as u16, server, port);
                counts[(h.hash(&k) as usize) & (buckets - 1)] += 1;
            }
            let max = counts.iter().copied().max().unwrap_or(0);
            let empty = counts.iter().filter(|&&c| c == 0).count();
            // Poisson(16): a bucket above 40 or an empty bucket is vanishingly unlikely when
            // mixed.
            assert!(max < 40, "seed {seed} port {port}: max bucket {max}");
            assert_eq!(empty, 0, "seed {seed} port {port}");
        }
    }

    #[test]
    fn ipv4_words_give_the_key_and_hash_of_the_general_constructor() {
        let h = FlowHasher::with_seed(9);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..10_000u32 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            // Every fourth pair shares an address, so the ports decide the order.
            let (a, b) = (
                x as u32,
                if i % 4 == 0 {
                    x as u32
                } else {
                    (x >> 32) as u32
                },
            );
            let (pa, pb) = ((x >> 16) as u16, (x >> 40) as u16);
            let (key, side, ends) = FlowKey::from_v4_words(a, pa, b, pb);
            let (want, want_side) = FlowKey::new(
                Family::V4,
                u128::from(a).to_le_bytes(),
                pa,
                u128::from(b).to_le_bytes(),
                pb,
            );
            assert_eq!((key, side), (want, want_side));
            assert_eq!(h.hash_v4(ends), h.hash(&key));
            // The other direction: the same key, hash and endpoints.
            let (back, _, back_ends) = FlowKey::from_v4_words(b, pb, a, pa);
            assert_eq!((back, back_ends), (key, ends));
        }
    }

    #[test]
    fn exact_v4_endpoints_only_for_keys_the_ipv4_constructor_builds() {
        let (k, side, ends) = FlowKey::from_v4_words(0x0a00_0001, 40000, 0x0a00_0002, 443);
        assert_eq!(side, Side::Lo);
        assert_eq!(k.exact_v4_endpoints(), Some(ends));
        assert_eq!(
            FlowKey::v4_sides(0x0a00_0002, 443, 0x0a00_0001, 40000),
            (ends, Side::Hi)
        );
        let mut bad = Vec::new();
        for i in 4..16 {
            let mut b = k;
            b.lo_addr[i] = 1;
            bad.push(b);
            let mut b = k;
            b.hi_addr[i] = 0x80;
            bad.push(b);
        }
        let mut b = k;
        b.family = Family::V6 as u8;
        bad.push(b);
        let mut b = k;
        b.proto = 17;
        bad.push(b);
        let mut b = k;
        b._pad[1] = 1;
        bad.push(b);
        for b in bad {
            assert_eq!(b.exact_v4_endpoints(), None, "{b:?}");
        }
    }

    #[test]
    fn every_ipv4_key_field_changes_the_hash() {
        let h = FlowHasher::with_seed(4);
        let (base, _) = FlowKey::new(Family::V4, v4([10, 1, 2, 3]), 1000, v4([10, 1, 2, 4]), 80);
        let b = h.hash(&base);
        for i in 0..4 {
            for bit in [1, 0x80] {
                let mut k = base;
                k.lo_addr[i] ^= bit;
                assert_ne!(h.hash(&k), b, "lo_addr[{i}] ^ {bit}");
                let mut k = base;
                k.hi_addr[i] ^= bit;
                assert_ne!(h.hash(&k), b, "hi_addr[{i}] ^ {bit}");
            }
        }
        for bit in [1, 0x8000] {
            let mut k = base;
            k.lo_port ^= bit;
            assert_ne!(h.hash(&k), b);
            let mut k = base;
            k.hi_port ^= bit;
            assert_ne!(h.hash(&k), b);
        }
    }

    #[test]
    fn every_key_field_changes_the_hash() {
        let h = FlowHasher::with_seed(3);
        let (base, _) = FlowKey::new(Family::V6, v6(1), 1000, v6(2), 2000);
        let b = h.hash(&base);
        for i in 0..16 {
            let mut k = base;
            k.lo_addr[i] ^= 0x80;
            assert_ne!(h.hash(&k), b, "lo_addr[{i}]");
            let mut k = base;
            k.hi_addr[i] ^= 1;
            assert_ne!(h.hash(&k), b, "hi_addr[{i}]");
        }
        let mut k = base;
        k.lo_port ^= 1;
        assert_ne!(h.hash(&k), b);
        let mut k = base;
        k.hi_port ^= 0x8000;
        assert_ne!(h.hash(&k), b);
        let mut k = base;
        k.family = 4;
        assert_ne!(h.hash(&k), b);
    }
}
