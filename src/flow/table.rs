//! The per-worker flow table: fixed capacity, O(1) lookup, expiry on packet time.
//!
//! # Shape
//!
//! An open-addressing index (linear probing over a power-of-two array of 8-byte entries, at most
//! half full) points into a slab of [`Flow`]s. An index entry holds the low 32 bits of the key's
//! hash beside the slab position, so a probe only touches a flow whose hash bits match, and
//! deletion shifts the following entries back (no tombstones): lookups cost the same after ten
//! million short flows as on a fresh table.
//!
//! Memory: the index is allocated zeroed at construction (the OS hands out zero pages lazily);
//! the slab is reserved for `capacity` flows and filled on demand, so resident memory follows the
//! peak number of flows, while no packet ever allocates (a push within the reserved capacity
//! never reallocates, and freed slots are reused first).
//!
//! # Time
//!
//! Every flow sits on one of four intrusive LRU lists ordered by last activity: *new* (never
//! saw both directions of an open connection: half-open SYNs, one-way pickups), *established*,
//! *closed* (FIN both ways or RST), and *bypassed* (handed to the kernel, which forwards the
//! rest of it without the worker). Each list has its own idle timeout, so expiry pops list
//! heads and costs O(expired). A bypassed flow past its timeout is not simply ended: the owner
//! is asked ([`Expiry::recheck`]) whether the kernel still sees it, and a flow still alive goes
//! back to the tail, checked again one timeout later. Time is packet time; the table keeps the
//! newest time it has seen and takes an older packet time (captures reorder) as that newest
//! time, so the lists stay sorted and nothing panics or underflows.
//!
//! # When full
//!
//! A new flow that finds the table full first expires everything past its timeout; if that
//! frees nothing, it evicts, in this order: the least recently active *closed* flow, else the
//! least recently active *new* flow, else the least recently active *established* flow if it has
//! been idle at least `evict_min_idle_ns`. Otherwise the packet is refused ([`Lookup::Refused`],
//! counted in [`TableStats::refused`]) and is handled without flow state. Evicted flows go
//! through `on_end` with [`EndReason::Evicted`].

use super::key::{FlowKey, Side, V4Endpoints};
use super::Dir;
use crate::capture::Timestamp;
use crate::wire::{Family, TcpFlags};

/// Index of a flow slot; stable for the life of the flow.
pub type FlowIdx = u32;

/// TCP connection state as seen from the middle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum TcpState {
    /// First packet was a SYN; no SYN-ACK yet.
    #[default]
    SynSent,
    /// SYN-ACK seen.
    SynReceived,
    /// Handshake completed, or the flow was picked up mid-stream.
    Established,
    /// One side sent FIN.
    FinWait,
    /// Both sides sent FIN.
    Closed,
    /// A RST was seen.
    Reset,
}

impl TcpState {
    /// Suricata's EVE flow `state` values: new, established, closed.
    pub fn eve_name(self) -> &'static str {
        match self {
            TcpState::SynSent | TcpState::SynReceived => "new",
            TcpState::Established | TcpState::FinWait => "established",
            TcpState::Closed | TcpState::Reset => "closed",
        }
    }
}

/// How the client and server roles were assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RoleSource {
    /// From the SYN / SYN-ACK handshake.
    #[default]
    Handshake,
    /// Picked up mid-stream: the endpoint with the lower port is taken as the server (the `lo`
    /// endpoint when both ports are equal).
    PortGuess,
}

/// Why a flow left the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EndReason {
    /// Idle longer than its state's timeout.
    Timeout,
    /// Closed (FIN both ways or RST) and past the closed timeout, or replaced by a new
    /// connection on the same ports.
    Closed,
    /// Evicted to make room for a new flow.
    Evicted,
    /// The run ended (end of capture, shutdown).
    Shutdown,
}

impl EndReason {
    /// Suricata's EVE flow `reason` values.
    pub fn eve_name(self) -> &'static str {
        match self {
            EndReason::Timeout | EndReason::Closed => "timeout",
            EndReason::Evicted => "forced",
            EndReason::Shutdown => "shutdown",
        }
    }
}

/// What expiry asks of the table's owner.
pub trait Expiry {
    /// A bypassed flow went unchecked for `bypassed_timeout_ns`: is it still alive where its
    /// packets go now? The owner may update the flow (counters, `last_ts`, `bypassed`).
    fn recheck(&mut self, flow: &mut Flow) -> Recheck;

    /// The flow is about to leave the table.
    fn end(&mut self, flow: &mut Flow, reason: EndReason);
}

/// The answer to [`Expiry::recheck`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Recheck {
    /// Still alive: back to the tail of its list, checked again one timeout later.
    Alive,
    /// Over: it leaves the table with this reason.
    End(EndReason),
}

/// A plain end callback: owners that never bypass have nothing to recheck.
impl<F: FnMut(&mut Flow, EndReason)> Expiry for F {
    fn recheck(&mut self, _flow: &mut Flow) -> Recheck {
        Recheck::End(EndReason::Timeout)
    }

    fn end(&mut self, flow: &mut Flow, reason: EndReason) {
        self(flow, reason)
    }
}

/// The engine's own per-flow fields. The table stores them and never reads them; a new flow
/// starts with `FlowExt::default()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowExt {
    /// Application protocol per direction, as `crate::proto::AppProto as u8`.
    pub app: [u8; 2],
    /// Identification confidence per direction, 0..=100.
    pub app_confidence: [u8; 2],
    /// `crate::verdict::FlowVerdict as u8`.
    pub verdict: u8,
    /// Inspection slot in the engine's pool, `u32::MAX` when none.
    pub inspect: u32,
    /// Bit per finding kind already alerted on this flow (alerts are raised once per kind).
    pub alerted: u64,
    /// Bit per finding kind raised below its alert floor (recorded, not alerted).
    pub recorded: u64,
    /// Number of packets dropped by verdict.
    pub dropped: u32,
    /// In-order bytes identification had looked at when it finished, per direction ("unknown
    /// after N bytes").
    pub ident_bytes: [u32; 2],
    /// When the flow was last handed to the kernel's bypass map; 0: never.
    pub bypass_at: Timestamp,
    /// The bypass entry's counters as last read, by sending side of the key (lo, hi): the
    /// next read adds only what is new.
    pub kernel_read_pkts: [u64; 2],
    pub kernel_read_bytes: [u64; 2],
    /// Packets and bytes the kernel forwarded without the worker, by direction; included in
    /// the flow's `pkts` and `bytes`.
    pub kernel_pkts: [u64; 2],
    pub kernel_bytes: [u64; 2],
    /// The tunnels that carried the flow's first tunnelled packet, outermost first, as
    /// `crate::wire::TunnelKind as u8` (0 past the end); deeper ones are only counted.
    pub tunnels: [u8; TUNNELS_KEPT],
    /// How many tunnels that packet was nested in (may exceed [`TUNNELS_KEPT`]).
    pub tunnel_depth: u8,
    /// Per sending direction, the highest IP TTL (hop limit) seen: a floor for what reaches
    /// the receiver (0: nothing seen). Segments well below it are left out of inspection.
    pub ttl_floor: [u8; 2],
    /// Per sending direction, the lowest TTL of a data segment left out for its TTL (0: none).
    pub ttl_skipped: [u8; 2],
    /// Per sending side (as [`Dir::index`]), the window scale its SYN offered; `u8::MAX`: no
    /// SYN seen.
    pub wscale: [u8; 2],
}

/// Tunnel kinds a flow remembers.
pub const TUNNELS_KEPT: usize = 4;

impl Default for FlowExt {
    fn default() -> Self {
        FlowExt {
            app: [0; 2],
            app_confidence: [0; 2],
            verdict: 0,
            // "No inspection slot", per the field's contract; a derived 0 would name slot 0.
            inspect: u32::MAX,
            alerted: 0,
            recorded: 0,
            dropped: 0,
            ident_bytes: [0; 2],
            bypass_at: Timestamp(0),
            kernel_read_pkts: [0; 2],
            kernel_read_bytes: [0; 2],
            kernel_pkts: [0; 2],
            kernel_bytes: [0; 2],
            tunnels: [0; TUNNELS_KEPT],
            tunnel_depth: 0,
            ttl_floor: [0; 2],
            ttl_skipped: [0; 2],
            wscale: [u8::MAX; 2],
        }
    }
}

/// One tracked TCP connection.
#[derive(Debug, Clone, Copy)]
pub struct Flow {
    pub key: FlowKey,
    /// Which endpoint of the key is the client.
    pub client: Side,
    pub roles: RoleSource,
    pub state: TcpState,
    /// FIN seen, indexed by [`Dir::index`] of its sender's direction.
    pub fin: [bool; 2],
    /// Initial sequence numbers known (SYN / SYN-ACK seen), indexed by [`Dir::index`].
    pub isn_known: [bool; 2],
    /// Unique per worker and run, below 2^53 (exact in JSON doubles):
    /// `worker << 45 | sequence` with the sequence starting at 1.
    pub flow_id: u64,
    /// Packet time of the first packet (the table's clock: never before an earlier flow's).
    pub first_ts: Timestamp,
    /// Packet time of the latest packet, as above.
    pub last_ts: Timestamp,
    /// Indexed by [`Dir::index`].
    pub pkts: [u64; 2],
    /// Sum of the `bytes` the caller passed per packet, indexed by [`Dir::index`]. The engine
    /// passes the frame's length on the wire, as Suricata's `bytes_toserver/toclient` do.
    pub bytes: [u64; 2],
    /// Initial sequence numbers per direction, valid where `isn_known`.
    pub isn: [u32; 2],
    /// Handed to the kernel: packets no longer reach the worker, so its idle time says
    /// nothing and expiry asks the owner instead ([`FlowTable::refile`] after setting it).
    pub bypassed: bool,
    pub ext: FlowExt,
}

/// Flows are stored by value in a slab sized at start-up: keep them within four cache lines.
pub const FLOW_SIZE_LIMIT: usize = 256;
const _: () = assert!(std::mem::size_of::<Flow>() <= FLOW_SIZE_LIMIT);
/// A slot is its flow, the list links and recency, and the 16 bytes of endpoint words the
/// lean path's lookup compares ([`FlowTable::find_v4`]): 272 bytes, 16 MB more per million
/// flows than without them, for about 28 fewer instructions per packet of a decided flow.
const SLOT_SIZE_LIMIT: usize = FLOW_SIZE_LIMIT + 16;
const _: () = assert!(std::mem::size_of::<Slot>() <= SLOT_SIZE_LIMIT);

impl Flow {
    fn fresh(key: FlowKey, flow_id: u64, now: Timestamp) -> Flow {
        Flow {
            key,
            client: Side::Lo,
            roles: RoleSource::Handshake,
            state: TcpState::SynSent,
            fin: [false; 2],
            isn_known: [false; 2],
            flow_id,
            first_ts: now,
            last_ts: now,
            pkts: [0; 2],
            bytes: [0; 2],
            isn: [0; 2],
            bypassed: false,
            ext: FlowExt::default(),
        }
    }

    /// Direction of a packet sent by `side`.
    pub fn dir_of(&self, side: Side) -> Dir {
        if side == self.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        }
    }

    /// Which endpoint of the key is the server.
    pub fn server(&self) -> Side {
        self.client.other()
    }

    /// True once packets went both ways on a connection that is not closing down.
    fn is_established(&self) -> bool {
        matches!(self.state, TcpState::Established | TcpState::FinWait)
            && self.pkts[0] > 0
            && self.pkts[1] > 0
    }

    fn list(&self) -> ListId {
        match self.state {
            TcpState::Closed | TcpState::Reset => ListId::Closed,
            _ if self.bypassed => ListId::Bypassed,
            _ if self.is_established() => ListId::Established,
            _ => ListId::New,
        }
    }
}

/// The result of [`FlowTable::lookup_or_insert`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lookup {
    Found(FlowIdx),
    Created(FlowIdx),
    /// Full, and nothing could be evicted: the packet is handled without flow state.
    Refused,
}

/// What one packet needs from the table, besides its key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SegmentMeta {
    /// The endpoint that sent the packet ([`FlowKey::from_tcp`]).
    pub side: Side,
    pub flags: TcpFlags,
    pub seq: u32,
    /// Added to the direction's byte counter (the engine passes the frame's wire length).
    pub bytes: u32,
}

/// The result of [`FlowTable::track`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The packet belongs to a flow that was already tracked.
    Existing { idx: FlowIdx, dir: Dir },
    /// The packet started a flow: a new key, or a new connection (a SYN) reusing the ports of
    /// an ended one, which went through `on_end` with [`EndReason::Closed`] first and whose
    /// slot the new flow took over. Either way the flow's `ext` is fresh.
    Started { idx: FlowIdx, dir: Dir },
    /// Full, and nothing could be evicted: the packet is handled without flow state.
    Refused,
}

/// Table-level counters, plain integers owned by the worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TableStats {
    /// Flows started, port reuses included.
    pub created: u64,
    pub ended_timeout: u64,
    /// Closed flows past their timeout, and flows replaced by a new connection (`reused`).
    pub ended_closed: u64,
    pub evicted: u64,
    /// Flows ended by [`FlowTable::drain`].
    pub ended_shutdown: u64,
    pub refused: u64,
    /// Of `ended_closed`: a SYN reopened the ports of a closing or closed flow.
    pub reused: u64,
}

/// Number of live flows on each timeout list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ListCounts {
    pub new: usize,
    pub established: usize,
    pub closed: usize,
    pub bypassed: usize,
}

/// Timeouts and capacity; validated by config.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TableConfig {
    /// Maximum number of flows, clamped to `1..=MAX_CAPACITY`.
    pub capacity: u32,
    /// Idle timeout of flows that never completed a handshake (SYN floods live here).
    pub new_timeout_ns: u64,
    pub established_timeout_ns: u64,
    pub closed_timeout_ns: u64,
    /// How long a bypassed flow goes unchecked: past it, expiry asks the owner whether the
    /// kernel still forwards it ([`Expiry::recheck`]).
    pub bypassed_timeout_ns: u64,
    /// A flow idle at least this long may be evicted when the table is full.
    pub evict_min_idle_ns: u64,
}

impl TableConfig {
    /// Largest supported capacity: the index stays below 2^32 entries.
    pub const MAX_CAPACITY: u32 = 1 << 28;
}

impl Default for TableConfig {
    fn default() -> Self {
        const S: u64 = Timestamp::NANOS_PER_SEC;
        TableConfig {
            capacity: 1_000_000,
            new_timeout_ns: 30 * S,
            established_timeout_ns: 600 * S,
            closed_timeout_ns: 10 * S,
            bypassed_timeout_ns: 30 * S,
            evict_min_idle_ns: 30 * S,
        }
    }
}

const NIL: u32 = u32::MAX;
/// `flow_id` bits left for the per-worker sequence: 8 worker bits above keep ids below 2^53.
const FLOW_SEQ_BITS: u32 = 45;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ListId {
    New = 0,
    Established = 1,
    Closed = 2,
    Bypassed = 3,
    /// On the free list (not a flow).
    Free = 4,
}

/// The lists flows live on, in the order expiry and shutdown visit them.
const LIVE_LISTS: [ListId; 4] = [
    ListId::New,
    ListId::Established,
    ListId::Closed,
    ListId::Bypassed,
];

#[derive(Debug, Clone, Copy)]
struct Slot {
    flow: Flow,
    /// Neighbours on the slot's list (`next` also threads the free list).
    prev: u32,
    next: u32,
    /// Low 32 bits of the key's hash: where its index entry lives.
    hash: u32,
    list: ListId,
    /// When the flow last showed life: its last packet, or for a bypassed flow the last
    /// recheck that found it alive. Lists are ordered by it and timeouts count from it.
    touched: Timestamp,
    /// The key's endpoints when it is a plain IPv4 key ([`FlowKey::exact_v4_endpoints`]),
    /// else [`NO_V4`]: the lean path's lookup compares these two words instead of the key.
    v4: V4Endpoints,
}

/// [`Slot::v4`] of a key that is not plain IPv4: endpoint words are below 2^48, so it equals
/// none.
const NO_V4: V4Endpoints = V4Endpoints {
    lo: u64::MAX,
    hi: u64::MAX,
};

fn v4_of(key: &FlowKey) -> V4Endpoints {
    key.exact_v4_endpoints().unwrap_or(NO_V4)
}

#[derive(Debug, Clone, Copy)]
struct List {
    head: u32,
    tail: u32,
    len: u32,
}

const EMPTY_LIST: List = List {
    head: NIL,
    tail: NIL,
    len: 0,
};

/// Fixed-capacity flow table. See the module documentation for its policies.
pub struct FlowTable {
    cfg: TableConfig,
    capacity: u32,
    worker: u8,
    /// 0 = empty; otherwise `hash32 << 32 | (slot + 1)`.
    index: Vec<u64>,
    mask: usize,
    slab: Vec<Slot>,
    free_head: u32,
    lists: [List; 4],
    len: u32,
    next_seq: u64,
    /// The newest packet time seen.
    clock: Timestamp,
    stats: TableStats,
    /// A copy of the process-wide key hasher, so the per-packet hash reads no global.
    hasher: super::key::FlowHasher,
}

impl FlowTable {
    /// A table for worker `worker` (part of every `flow_id`). Allocates everything it will
    /// ever use here: the index (zeroed) and the slab's reservation.
    pub fn new(cfg: TableConfig, worker: u8) -> Self {
        let capacity = cfg.capacity.clamp(1, TableConfig::MAX_CAPACITY);
        // At most half full: short probe runs even for the misses a SYN flood produces.
        let index_len = (capacity as usize * 2).next_power_of_two();
        // Seed the process-wide key hash now rather than on the first packet, and keep it
        // here: the same hash as `FlowKey::hash64`, without a global read per packet.
        let hasher = *super::key::FlowHasher::global();
        FlowTable {
            cfg,
            capacity,
            worker,
            index: vec![0u64; index_len],
            mask: index_len - 1,
            slab: Vec::with_capacity(capacity as usize),
            free_head: NIL,
            lists: [EMPTY_LIST; 4],
            len: 0,
            next_seq: 1,
            clock: Timestamp(0),
            stats: TableStats::default(),
            hasher,
        }
    }

    /// Writes every page of the index and of the slab's reservation once, so that flows
    /// landing in never-used slots take no first-touch page faults on the packet path (perf
    /// on the real-capture mix showed ~4 % of a worker in them, with the TLB-shootdown IPIs
    /// that follow). Allocates nothing and changes no entry: any time is safe, right after
    /// [`FlowTable::new`] is the point. Costs a write per page of
    /// [`FlowTable::full_footprint_bytes`] and makes all of it resident.
    pub fn prefault(&mut self) {
        const PAGE: usize = 4096;
        // Reads and writes back each page's first entry; the opaque value keeps the store.
        for e in self
            .index
            .iter_mut()
            .step_by(PAGE / std::mem::size_of::<u64>())
        {
            *e = std::hint::black_box(*e);
        }
        let filler = Slot {
            flow: Flow::fresh(
                FlowKey::new(Family::V4, [0; 16], 0, [0; 16], 0).0,
                0,
                Timestamp(0),
            ),
            prev: NIL,
            next: NIL,
            hash: 0,
            list: ListId::Free,
            touched: Timestamp(0),
            v4: NO_V4,
        };
        // Slots past the slab's length are uninitialised reservation: writing one per page
        // maps the page and leaves the vector (its length, its live slots) as it was.
        let per_page = (PAGE / std::mem::size_of::<Slot>()).max(1);
        for s in self.slab.spare_capacity_mut().iter_mut().step_by(per_page) {
            s.write(filler);
        }
    }

    /// The hash the table expects for `key`: [`FlowKey::hash64`]'s value, from the table's
    /// own copy of the hasher.
    #[inline]
    pub fn hash(&self, key: &FlowKey) -> u64 {
        self.hasher.hash(key)
    }

    /// [`FlowTable::hash`] of an IPv4 key, from the endpoint words its constructor gave
    /// ([`FlowKey::from_v4_words`]).
    #[inline(always)]
    pub fn hash_v4(&self, ends: super::key::V4Endpoints) -> u64 {
        self.hasher.hash_v4(ends)
    }

    /// The per-packet entry point: finds or starts the packet's flow (ending a closed flow whose
    /// ports a new SYN reuses) and applies the packet to it. `hash` is `key.hash64()` (any
    /// function of the key works, as long as it is the same for every call with that key).
    pub fn track<F>(
        &mut self,
        key: &FlowKey,
        hash: u64,
        seg: SegmentMeta,
        now: Timestamp,
        mut on_end: F,
    ) -> Track
    where
        F: FnMut(&mut Flow, EndReason),
    {
        let (idx, started) = match self.lookup_or_insert(key, hash, now, &mut on_end) {
            Lookup::Refused => return Track::Refused,
            Lookup::Created(idx) => (idx, true),
            Lookup::Found(idx) => {
                let reused = self
                    .slab
                    .get(idx as usize)
                    .is_some_and(|s| is_new_connection(&s.flow, &seg));
                if reused {
                    self.restart(idx, &mut on_end);
                }
                (idx, reused)
            }
        };
        let dir = self.on_packet(idx, seg.side, seg.flags, seg.seq, seg.bytes, now);
        if started {
            Track::Started { idx, dir }
        } else {
            Track::Existing { idx, dir }
        }
    }

    /// Finds the flow of `key` or creates it (roles and state are set by the first
    /// [`FlowTable::on_packet`]). When full, expires and evicts per the module's policy,
    /// calling `on_end` for each flow removed first. Does not detect port reuse: see
    /// [`FlowTable::track`].
    pub fn lookup_or_insert<F>(
        &mut self,
        key: &FlowKey,
        hash: u64,
        now: Timestamp,
        mut on_end: F,
    ) -> Lookup
    where
        F: FnMut(&mut Flow, EndReason),
    {
        self.advance(now);
        if let Some(idx) = self.find(key, hash) {
            return Lookup::Found(idx);
        }
        if self.len >= self.capacity && !self.make_room(&mut on_end) {
            self.stats.refused += 1;
            return Lookup::Refused;
        }
        Lookup::Created(self.insert_new(key, hash))
    }

    /// The flow at `idx`. Panics if `idx` did not come from this table (a bug, not input).
    pub fn get(&self, idx: FlowIdx) -> &Flow {
        &self.slab[idx as usize].flow
    }

    /// The flow at `idx`. Panics if `idx` did not come from this table (a bug, not input).
    pub fn get_mut(&mut self, idx: FlowIdx) -> &mut Flow {
        &mut self.slab[idx as usize].flow
    }

    /// The live flow at `idx`, `None` for a free or never-used slot.
    pub fn try_get(&self, idx: FlowIdx) -> Option<&Flow> {
        self.slab
            .get(idx as usize)
            .filter(|s| s.list != ListId::Free)
            .map(|s| &s.flow)
    }

    /// The live flow of `key`, if tracked. Always inlined: it is most of the lean path's
    /// lookup, and LLVM's own choice there flips with unrelated changes elsewhere in the crate
    /// (278 -> 328 instructions per decided packet when it stopped inlining it).
    #[inline(always)]
    pub fn find(&self, key: &FlowKey, hash: u64) -> Option<FlowIdx> {
        let h32 = hash as u32;
        let mut pos = h32 as usize & self.mask;
        loop {
            let e = *self.index.get(pos)?;
            if e == 0 {
                return None;
            }
            if (e >> 32) as u32 == h32 {
                let slot = (e as u32).wrapping_sub(1);
                if self
                    .slab
                    .get(slot as usize)
                    .is_some_and(|s| s.flow.key.same(key))
                {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & self.mask;
        }
    }

    /// [`FlowTable::find`] of a plain IPv4 key given by its endpoints
    /// ([`FlowKey::v4_sides`]) and hash ([`FlowTable::hash_v4`]): two word compares per
    /// candidate instead of the whole key, and no key to build.
    #[inline(always)]
    pub fn find_v4(&self, ends: V4Endpoints, hash: u64) -> Option<FlowIdx> {
        let h32 = hash as u32;
        // The index's length less one is `mask` (a power of two long, never empty): masked
        // with it, a position needs no bounds check.
        let index = &self.index[..];
        if index.is_empty() {
            return None;
        }
        let mask = index.len() - 1;
        let mut pos = h32 as usize & mask;
        loop {
            let e = index[pos & mask];
            if e == 0 {
                return None;
            }
            if (e >> 32) as u32 == h32 {
                let slot = (e as u32).wrapping_sub(1);
                if self.slab.get(slot as usize).is_some_and(|s| s.v4 == ends) {
                    return Some(slot);
                }
            }
            pos = (pos + 1) & mask;
        }
    }

    /// Applies one packet to the flow: roles, TCP state, counters, recency. Returns the
    /// packet's direction. An `idx` that is not a live flow is ignored (`ToServer`).
    pub fn on_packet(
        &mut self,
        idx: FlowIdx,
        side: Side,
        flags: TcpFlags,
        seq: u32,
        bytes: u32,
        now: Timestamp,
    ) -> Dir {
        self.advance(now);
        let clock = self.clock;
        let Some(slot) = self.slab.get_mut(idx as usize) else {
            return Dir::ToServer;
        };
        if slot.list == ListId::Free {
            return Dir::ToServer;
        }
        let flow = &mut slot.flow;
        if flow.pkts == [0, 0] {
            first_packet(flow, side, flags, seq);
        } else {
            next_packet(flow, side, flags, seq);
        }
        let dir = count_packet(slot, side, bytes, clock);
        let list = slot.flow.list();
        if slot.list != list {
            self.unlink(idx);
            self.push_tail(list, idx);
        } else if self.lists[list as usize].tail != idx {
            self.move_to_tail(list, idx);
        }
        // Otherwise already the most recent on the right list (back-to-back packets of one
        // flow): the order is unchanged, and the neighbours need not be touched.
        dir
    }

    /// [`FlowTable::on_packet`] for the packets of settled connections: a segment without
    /// SYN, RST or FIN on a flow that is on the established list, not bypassed, and
    /// established or closing, or from the side that alone has spoken on such a flow still
    /// on the new list (one-directional, [`FlowTable::on_one_sided_packet`]). Such a packet
    /// changes neither the TCP state nor the list, so only the counters and the recency move.
    /// Any other packet or flow takes `on_packet`, so the result is always the same as
    /// `on_packet`'s. The sequence number is read only for that fallback: the lean path's
    /// packets never need it.
    #[inline(always)]
    pub fn on_settled_packet(
        &mut self,
        idx: FlowIdx,
        side: Side,
        flags: TcpFlags,
        seq: impl FnOnce() -> u32,
        bytes: u32,
        now: Timestamp,
    ) -> Dir {
        let settled = flags.0 & (TcpFlags::SYN | TcpFlags::RST | TcpFlags::FIN) == 0
            && self.slab.get(idx as usize).is_some_and(|s| {
                s.list == ListId::Established
                    && !s.flow.bypassed
                    && matches!(s.flow.state, TcpState::Established | TcpState::FinWait)
            });
        if !settled {
            return self.on_one_sided_packet(idx, side, flags, seq(), bytes, now);
        }
        self.advance(now);
        let clock = self.clock;
        let dir = count_packet(&mut self.slab[idx as usize], side, bytes, clock);
        if self.lists[ListId::Established as usize].tail != idx {
            self.move_to_established_tail(idx);
        }
        dir
    }

    /// [`FlowTable::on_settled_packet`] off the established list: a segment without SYN, RST
    /// or FIN from the side that alone has spoken on an established-state flow (which stays
    /// on the new list while the other side is silent) moves only the counters and the
    /// recency; anything else takes `on_packet`. Out of line, so the settled entry stays small.
    #[inline(never)]
    pub fn on_one_sided_packet(
        &mut self,
        idx: FlowIdx,
        side: Side,
        flags: TcpFlags,
        seq: u32,
        bytes: u32,
        now: Timestamp,
    ) -> Dir {
        let one_sided = flags.0 & (TcpFlags::SYN | TcpFlags::RST | TcpFlags::FIN) == 0
            && self.slab.get(idx as usize).is_some_and(|s| {
                let d = s.flow.dir_of(side).index();
                s.list == ListId::New
                    && !s.flow.bypassed
                    && matches!(s.flow.state, TcpState::Established | TcpState::FinWait)
                    && s.flow.pkts[d] > 0
                    && s.flow.pkts[1 - d] == 0
            });
        if !one_sided {
            return self.on_packet(idx, side, flags, seq, bytes, now);
        }
        self.advance(now);
        let clock = self.clock;
        let dir = count_packet(&mut self.slab[idx as usize], side, bytes, clock);
        if self.lists[ListId::New as usize].tail != idx {
            self.move_to_tail(ListId::New, idx);
        }
        dir
    }

    /// [`FlowTable::move_to_tail`] on the established list, inlined into the settled entry
    /// (the lean path's every packet) without a call.
    #[inline(always)]
    fn move_to_established_tail(&mut self, idx: FlowIdx) {
        let Slot { prev, next, .. } = self.slab[idx as usize];
        let l = &mut self.lists[ListId::Established as usize];
        let old_tail = l.tail;
        l.tail = idx;
        if prev == NIL {
            l.head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        // Not the tail, so it has a successor.
        self.slab[next as usize].prev = prev;
        self.slab[old_tail as usize].next = idx;
        let slot = &mut self.slab[idx as usize];
        slot.prev = old_tail;
        slot.next = NIL;
    }

    /// Moves `idx`, on `list` but not its tail, to the tail: one pass over the three slots
    /// involved instead of an unlink and a push.
    #[inline]
    fn move_to_tail(&mut self, list: ListId, idx: FlowIdx) {
        let Slot { prev, next, .. } = self.slab[idx as usize];
        let l = &mut self.lists[list as usize];
        let old_tail = l.tail;
        if prev == NIL {
            l.head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        l.tail = idx;
        // Not the tail, so it has a successor.
        self.slab[next as usize].prev = prev;
        self.slab[old_tail as usize].next = idx;
        let slot = &mut self.slab[idx as usize];
        slot.prev = old_tail;
        slot.next = NIL;
    }

    /// Removes every flow whose timeout has passed at `now` (idle strictly longer than its
    /// list's timeout), calling `hooks.end` first: `Timeout` for new and established flows,
    /// `Closed` for closed ones. A bypassed flow past its timeout is rechecked instead
    /// ([`Expiry::recheck`]) and ends only when the owner says so. Returns how many ended.
    /// Costs O(ended + rechecked).
    pub fn expire_with<E: Expiry>(&mut self, now: Timestamp, mut hooks: E) -> usize {
        self.advance(now);
        self.expire_all(&mut hooks, true)
    }

    /// [`FlowTable::expire_with`] for owners that never bypass a flow.
    pub fn expire<F>(&mut self, now: Timestamp, on_end: F) -> usize
    where
        F: FnMut(&mut Flow, EndReason),
    {
        self.expire_with(now, on_end)
    }

    /// Removes every flow (end of run), calling `on_end` with `Shutdown` for each.
    pub fn drain<F>(&mut self, on_end: F)
    where
        F: FnMut(&mut Flow, EndReason),
    {
        self.drain_with(on_end)
    }

    /// Removes every flow (end of run), calling `hooks.end` with `Shutdown` for each, oldest
    /// first within new, established, closed, bypassed.
    pub fn drain_with<E: Expiry>(&mut self, mut hooks: E) {
        for list in LIVE_LISTS {
            while let Some(idx) = self.head(list) {
                self.remove(idx, EndReason::Shutdown, &mut hooks);
            }
        }
    }

    /// Moves the flow at `idx` to the list its state now calls for (after the owner set
    /// `bypassed`); its place in time is kept as the most recent.
    pub fn refile(&mut self, idx: FlowIdx) {
        let Some(slot) = self.slab.get(idx as usize) else {
            return;
        };
        if slot.list == ListId::Free {
            return;
        }
        let list = slot.flow.list();
        if slot.list != list {
            self.unlink(idx);
            self.push_tail(list, idx);
            self.slab[idx as usize].touched = self.clock;
        }
    }

    pub fn len(&self) -> usize {
        self.len as usize
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Maximum number of flows.
    pub fn capacity(&self) -> usize {
        self.capacity as usize
    }

    pub fn config(&self) -> &TableConfig {
        &self.cfg
    }

    pub fn stats(&self) -> TableStats {
        self.stats
    }

    /// Live flows per timeout list (gauges).
    pub fn list_counts(&self) -> ListCounts {
        ListCounts {
            new: self.lists[ListId::New as usize].len as usize,
            established: self.lists[ListId::Established as usize].len as usize,
            closed: self.lists[ListId::Closed as usize].len as usize,
            bypassed: self.lists[ListId::Bypassed as usize].len as usize,
        }
    }

    /// Bytes the table occupies when every slot is in use (index + slab).
    pub fn full_footprint_bytes(&self) -> usize {
        self.index.len() * std::mem::size_of::<u64>()
            + self.capacity as usize * std::mem::size_of::<Slot>()
    }

    /// The newest packet time the table has seen.
    pub fn clock(&self) -> Timestamp {
        self.clock
    }

    fn advance(&mut self, now: Timestamp) {
        if now > self.clock {
            self.clock = now;
        }
    }

    fn timeout_of(&self, list: ListId) -> (u64, EndReason) {
        match list {
            ListId::New => (self.cfg.new_timeout_ns, EndReason::Timeout),
            ListId::Established => (self.cfg.established_timeout_ns, EndReason::Timeout),
            ListId::Bypassed => (self.cfg.bypassed_timeout_ns, EndReason::Timeout),
            ListId::Closed | ListId::Free => (self.cfg.closed_timeout_ns, EndReason::Closed),
        }
    }

    fn idle(&self, idx: FlowIdx) -> u64 {
        self.clock.since(self.slab[idx as usize].touched)
    }

    /// `recheck`: whether bypassed flows are due for [`Expiry::recheck`] too (not while making
    /// room for a packet: that path has no way to ask the kernel).
    fn expire_all<E: Expiry>(&mut self, hooks: &mut E, recheck: bool) -> usize {
        let mut ended = 0;
        for list in LIVE_LISTS {
            if list == ListId::Bypassed && !recheck {
                continue;
            }
            let (timeout, reason) = self.timeout_of(list);
            while let Some(idx) = self.head(list) {
                if self.idle(idx) <= timeout {
                    break;
                }
                if list == ListId::Bypassed {
                    match hooks.recheck(&mut self.slab[idx as usize].flow) {
                        Recheck::Alive => {
                            // Touched now, so it is not this loop's head again.
                            let to = self.slab[idx as usize].flow.list();
                            self.unlink(idx);
                            self.push_tail(to, idx);
                            self.slab[idx as usize].touched = self.clock;
                            continue;
                        }
                        Recheck::End(why) => {
                            self.remove(idx, why, hooks);
                            ended += 1;
                            continue;
                        }
                    }
                }
                self.remove(idx, reason, hooks);
                ended += 1;
            }
        }
        ended
    }

    /// Frees one slot per the eviction policy; false when nothing may go.
    fn make_room<E: Expiry>(&mut self, on_end: &mut E) -> bool {
        if self.expire_all(on_end, false) > 0 {
            return true;
        }
        let min_idle = self.cfg.evict_min_idle_ns;
        let victim = self
            .head(ListId::Closed)
            .or_else(|| self.head(ListId::New))
            .or_else(|| {
                self.head(ListId::Established)
                    .filter(|&idx| self.idle(idx) >= min_idle)
            })
            .or_else(|| {
                // Last: the kernel may still be forwarding it, which only a recheck would tell.
                self.head(ListId::Bypassed)
                    .filter(|&idx| self.idle(idx) >= min_idle)
            });
        match victim {
            Some(idx) => {
                self.remove(idx, EndReason::Evicted, on_end);
                true
            }
            None => false,
        }
    }

    fn next_flow_id(&mut self) -> u64 {
        let seq = self.next_seq & ((1u64 << FLOW_SEQ_BITS) - 1);
        self.next_seq = self.next_seq.wrapping_add(1);
        ((self.worker as u64) << FLOW_SEQ_BITS) | seq
    }

    /// Adds a flow for a key known to be absent, with a free slot known to exist.
    fn insert_new(&mut self, key: &FlowKey, hash: u64) -> FlowIdx {
        let flow_id = self.next_flow_id();
        let flow = Flow::fresh(*key, flow_id, self.clock);
        let idx = if self.free_head != NIL {
            let idx = self.free_head;
            let slot = &mut self.slab[idx as usize];
            self.free_head = slot.next;
            slot.flow = flow;
            slot.hash = hash as u32;
            slot.touched = self.clock;
            slot.v4 = v4_of(key);
            idx
        } else {
            // Within the reserved capacity: never reallocates.
            let idx = self.slab.len() as u32;
            self.slab.push(Slot {
                flow,
                prev: NIL,
                next: NIL,
                hash: hash as u32,
                list: ListId::Free,
                touched: self.clock,
                v4: v4_of(key),
            });
            idx
        };
        let h32 = hash as u32;
        let mut pos = h32 as usize & self.mask;
        while self.index[pos] != 0 {
            pos = (pos + 1) & self.mask;
        }
        self.index[pos] = (h32 as u64) << 32 | (idx as u64 + 1);
        self.push_tail(ListId::New, idx);
        self.len += 1;
        self.stats.created += 1;
        idx
    }

    /// Ends the flow at `idx` (as `Closed`) and starts a fresh one in the same slot and index
    /// entry, for a new connection on the same ports.
    fn restart<E: Expiry>(&mut self, idx: FlowIdx, on_end: &mut E) {
        on_end.end(&mut self.slab[idx as usize].flow, EndReason::Closed);
        self.stats.ended_closed += 1;
        self.stats.reused += 1;
        self.stats.created += 1;
        let flow_id = self.next_flow_id();
        let key = self.slab[idx as usize].flow.key;
        self.slab[idx as usize].flow = Flow::fresh(key, flow_id, self.clock);
        self.slab[idx as usize].touched = self.clock;
        self.unlink(idx);
        self.push_tail(ListId::New, idx);
    }

    fn remove<E: Expiry>(&mut self, idx: FlowIdx, reason: EndReason, on_end: &mut E) {
        on_end.end(&mut self.slab[idx as usize].flow, reason);
        match reason {
            EndReason::Timeout => self.stats.ended_timeout += 1,
            EndReason::Closed => self.stats.ended_closed += 1,
            EndReason::Evicted => self.stats.evicted += 1,
            EndReason::Shutdown => self.stats.ended_shutdown += 1,
        }
        let entry_slot = idx as u64 + 1;
        let mut pos = self.slab[idx as usize].hash as usize & self.mask;
        // The entry is there by construction; the bound only guards against a broken invariant.
        let mut probes = 0;
        while self.index[pos] as u32 as u64 != entry_slot && probes <= self.mask {
            pos = (pos + 1) & self.mask;
            probes += 1;
        }
        if probes <= self.mask {
            self.delete_entry(pos);
        }
        self.unlink(idx);
        let slot = &mut self.slab[idx as usize];
        slot.list = ListId::Free;
        slot.next = self.free_head;
        self.free_head = idx;
        self.len -= 1;
    }

    /// Backward-shift deletion: pulls later entries of the probe run into the hole so that no
    /// run is ever broken and no tombstone is ever left.
    fn delete_entry(&mut self, pos: usize) {
        let mask = self.mask;
        let mut hole = pos;
        let mut j = (pos + 1) & mask;
        loop {
            let e = self.index[j];
            if e == 0 {
                break;
            }
            let home = (e >> 32) as usize & mask;
            // The entry may fill the hole if the hole lies on its path from home to j.
            if j.wrapping_sub(home) & mask >= j.wrapping_sub(hole) & mask {
                self.index[hole] = e;
                hole = j;
            }
            j = (j + 1) & mask;
        }
        self.index[hole] = 0;
    }

    fn head(&self, list: ListId) -> Option<FlowIdx> {
        let h = self.lists.get(list as usize)?.head;
        (h != NIL).then_some(h)
    }

    fn unlink(&mut self, idx: FlowIdx) {
        let Slot {
            prev, next, list, ..
        } = self.slab[idx as usize];
        if list == ListId::Free {
            return;
        }
        let l = &mut self.lists[list as usize];
        if prev == NIL {
            l.head = next;
        } else {
            self.slab[prev as usize].next = next;
        }
        if next == NIL {
            l.tail = prev;
        } else {
            self.slab[next as usize].prev = prev;
        }
        l.len -= 1;
        let slot = &mut self.slab[idx as usize];
        slot.prev = NIL;
        slot.next = NIL;
        slot.list = ListId::Free;
    }

    fn push_tail(&mut self, list: ListId, idx: FlowIdx) {
        let l = &mut self.lists[list as usize];
        let old_tail = l.tail;
        l.tail = idx;
        if old_tail == NIL {
            l.head = idx;
        }
        l.len += 1;
        if old_tail != NIL {
            self.slab[old_tail as usize].next = idx;
        }
        let slot = &mut self.slab[idx as usize];
        slot.prev = old_tail;
        slot.next = NIL;
        slot.list = list;
    }
}

/// A SYN that opens a new connection on the ports of one that is closing or closed (port reuse),
/// rather than a retransmission of the flow's own SYN.
fn is_new_connection(flow: &Flow, seg: &SegmentMeta) -> bool {
    let pure_syn = seg.flags.syn() && !seg.flags.ack() && !seg.flags.rst();
    let ending = matches!(
        flow.state,
        TcpState::FinWait | TcpState::Closed | TcpState::Reset
    );
    let c = Dir::ToServer.index();
    let own_syn = seg.side == flow.client && flow.isn_known[c] && flow.isn[c] == seg.seq;
    pure_syn && ending && !own_syn
}

/// Counts one packet of `bytes` from `side` on the slot's flow and marks it seen at `clock`;
/// returns the packet's direction. What every packet does to its flow, whatever its flags.
#[inline(always)]
fn count_packet(slot: &mut Slot, side: Side, bytes: u32, clock: Timestamp) -> Dir {
    let flow = &mut slot.flow;
    let dir = flow.dir_of(side);
    let d = dir.index();
    // Plain adds (wrapping, never panicking): 2^64 packets or bytes take centuries at any
    // line rate, and the saturating form cost three instructions on every packet.
    flow.pkts[d] = flow.pkts[d].wrapping_add(1);
    flow.bytes[d] = flow.bytes[d].wrapping_add(bytes as u64);
    flow.last_ts = clock;
    slot.touched = clock;
    dir
}

/// Roles and state from the first packet of a flow.
fn first_packet(flow: &mut Flow, side: Side, flags: TcpFlags, seq: u32) {
    if flags.syn() && !flags.rst() {
        flow.roles = RoleSource::Handshake;
        if flags.ack() {
            // The SYN was missed: the SYN-ACK's sender is the server.
            flow.client = side.other();
            flow.state = TcpState::SynReceived;
            flow.isn[Dir::ToClient.index()] = seq;
            flow.isn_known[Dir::ToClient.index()] = true;
        } else {
            flow.client = side;
            flow.state = TcpState::SynSent;
            flow.isn[Dir::ToServer.index()] = seq;
            flow.isn_known[Dir::ToServer.index()] = true;
        }
        if flags.fin() {
            note_fin(flow, side);
        }
        return;
    }
    flow.roles = RoleSource::PortGuess;
    let server = if flow.key.hi_port < flow.key.lo_port {
        Side::Hi
    } else {
        Side::Lo
    };
    flow.client = server.other();
    flow.state = TcpState::Established;
    if flags.rst() {
        flow.state = TcpState::Reset;
    } else if flags.fin() {
        note_fin(flow, side);
    }
}

fn next_packet(flow: &mut Flow, side: Side, flags: TcpFlags, seq: u32) {
    if flags.rst() {
        flow.state = TcpState::Reset;
        return;
    }
    let from_client = side == flow.client;
    if flags.syn() {
        if flags.ack() {
            if !from_client && matches!(flow.state, TcpState::SynSent | TcpState::SynReceived) {
                flow.state = TcpState::SynReceived;
                flow.isn[Dir::ToClient.index()] = seq;
                flow.isn_known[Dir::ToClient.index()] = true;
            }
        } else if from_client && flow.state == TcpState::SynSent {
            // A retried SYN: the server will answer the latest one.
            flow.isn[Dir::ToServer.index()] = seq;
            flow.isn_known[Dir::ToServer.index()] = true;
        }
    } else {
        match flow.state {
            // The client's ACK completes the handshake.
            TcpState::SynReceived if from_client => flow.state = TcpState::Established,
            // Traffic after a SYN whose SYN-ACK the capture missed.
            TcpState::SynSent => flow.state = TcpState::Established,
            _ => {}
        }
    }
    if flags.fin() {
        note_fin(flow, side);
    }
}

fn note_fin(flow: &mut Flow, side: Side) {
    if flow.state == TcpState::Reset {
        return;
    }
    let d = flow.dir_of(side).index();
    flow.fin[d] = true;
    flow.state = if flow.fin == [true, true] {
        TcpState::Closed
    } else {
        TcpState::FinWait
    };
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::key::FlowHasher;
    use crate::wire::Family;
    use std::collections::{HashMap, HashSet};

    const S: u64 = Timestamp::NANOS_PER_SEC;
    const SYN: u8 = TcpFlags::SYN;
    const ACK: u8 = TcpFlags::ACK;
    const FIN: u8 = TcpFlags::FIN;
    const RST: u8 = TcpFlags::RST;
    const PSH: u8 = TcpFlags::PSH;

    fn cfg(capacity: u32) -> TableConfig {
        TableConfig {
            capacity,
            new_timeout_ns: 30 * S,
            established_timeout_ns: 600 * S,
            closed_timeout_ns: 10 * S,
            bypassed_timeout_ns: 20 * S,
            evict_min_idle_ns: 5 * S,
        }
    }

    fn v4(a: u8, b: u8, c: u8, d: u8) -> [u8; 16] {
        let mut out = [0u8; 16];
        out[..4].copy_from_slice(&[a, b, c, d]);
        out
    }

    /// Connection `i`: client 10.0.x.y:(1024 + i) to server 10.9.0.1:443. Returns the key and
    /// the client's side.
    fn conn(i: u32) -> (FlowKey, Side) {
        FlowKey::new(
            Family::V4,
            v4(10, 0, (i >> 8) as u8, i as u8),
            1024 + (i % 60000) as u16,
            v4(10, 9, 0, 1),
            443,
        )
    }

    type Ends = Vec<(u64, EndReason)>;

    /// Feeds one packet through `track`, collecting ended flows.
    #[allow(clippy::too_many_arguments)]
    fn pkt(
        t: &mut FlowTable,
        key: &FlowKey,
        side: Side,
        flags: u8,
        seq: u32,
        bytes: u32,
        ts: u64,
        ends: &mut Ends,
    ) -> Track {
        let seg = SegmentMeta {
            side,
            flags: TcpFlags(flags),
            seq,
            bytes,
        };
        t.track(key, key.hash64(), seg, Timestamp(ts), |f, r| {
            ends.push((f.flow_id, r))
        })
    }

    fn idx_of(tr: Track) -> FlowIdx {
        match tr {
            Track::Existing { idx, .. } | Track::Started { idx, .. } => idx,
            Track::Refused => panic!("refused"),
        }
    }

    fn dir_of(tr: Track) -> Dir {
        match tr {
            Track::Existing { dir, .. } | Track::Started { dir, .. } => dir,
            Track::Refused => panic!("refused"),
        }
    }

    /// A completed handshake on connection `i` at time `ts`; returns the flow's slot.
    fn handshake(t: &mut FlowTable, i: u32, ts: u64, ends: &mut Ends) -> FlowIdx {
        let (k, c) = conn(i);
        let idx = idx_of(pkt(t, &k, c, SYN, 100, 60, ts, ends));
        pkt(t, &k, c.other(), SYN | ACK, 900, 60, ts, ends);
        pkt(t, &k, c, ACK, 101, 54, ts, ends);
        idx
    }

    /// An owner that answers rechecks from a script and records ends.
    struct Scripted {
        alive: HashSet<u64>,
        rechecked: Vec<u64>,
        ends: Ends,
    }

    impl Expiry for &mut Scripted {
        fn recheck(&mut self, flow: &mut Flow) -> Recheck {
            self.rechecked.push(flow.flow_id);
            if self.alive.contains(&flow.flow_id) {
                Recheck::Alive
            } else {
                Recheck::End(EndReason::Closed)
            }
        }

        fn end(&mut self, flow: &mut Flow, reason: EndReason) {
            self.ends.push((flow.flow_id, reason));
        }
    }

    #[test]
    fn find_v4_agrees_with_find_on_every_key() {
        // Plain IPv4 keys, IPv4-family keys with stray bytes past the address, IPv6 keys
        // whose first bytes and ports equal a plain key's, and colliding hashes: the
        // endpoint-word lookup must find exactly the flows the key lookup finds.
        let hasher = FlowHasher::with_seed(11);
        let mut x = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let mut t = FlowTable::new(cfg(4096), 0);
        let mut probes = Vec::new();
        for i in 0..6000u32 {
            let r = next();
            // Few distinct addresses and ports, so endpoints repeat across variants.
            let (a, b) = ((r as u32) & 0x0300_0003, ((r >> 32) as u32) & 0x0300_0003);
            let (pa, pb) = ((r >> 20) as u16 & 3, (r >> 40) as u16 & 3);
            let (mut key, _, _) = FlowKey::from_v4_words(a, pa, b, pb);
            match i % 5 {
                0 => key.lo_addr[4 + (r >> 50) as usize % 12] = 1,
                1 => key.family = Family::V6 as u8,
                2 => key._pad[(r >> 50) as usize % 2] = 1,
                _ => {}
            }
            // Crushed hashes make every lookup walk candidates of other keys.
            let hash = if i % 3 == 0 { 7 } else { hasher.hash(&key) };
            if i % 2 == 0 && t.len() < t.capacity() {
                t.lookup_or_insert(&key, hash, Timestamp(1), |_, _| {});
            }
            probes.push((key, hash, (a, pa, b, pb)));
        }
        let mut found = 0;
        for (key, hash, (a, pa, b, pb)) in probes {
            let by_key = t.find(&key, hash);
            if let Some(ends) = key.exact_v4_endpoints() {
                assert_eq!(FlowKey::v4_sides(a, pa, b, pb).0, ends);
                assert_eq!(FlowKey::v4_sides(b, pb, a, pa).0, ends);
                assert_eq!(t.find_v4(ends, hash), by_key, "{key:?}");
                found += by_key.is_some() as u32;
            } else if let Some(idx) = by_key {
                // A key that is not plain IPv4 is never found by endpoint words.
                let (ends, _) = FlowKey::v4_sides(a, pa, b, pb);
                assert_ne!(t.find_v4(ends, hash), Some(idx), "{key:?}");
            }
        }
        assert!(found > 500, "{found} plain IPv4 keys found");
    }

    #[test]
    fn prefault_changes_no_flow_entry_or_order() {
        // Two tables fed the same packets, one prefaulted part-way (live slots, freed slots
        // and untouched reservation all present): every flow, end and count stays the same.
        let (mut plain, mut touched) = (FlowTable::new(cfg(64), 0), FlowTable::new(cfg(64), 0));
        let (mut ends_a, mut ends_b) = (Ends::new(), Ends::new());
        for i in 0..20 {
            handshake(&mut plain, i, i as u64 * S, &mut ends_a);
            handshake(&mut touched, i, i as u64 * S, &mut ends_b);
        }
        plain.expire(Timestamp(610 * S), |f, r| ends_a.push((f.flow_id, r)));
        touched.expire(Timestamp(610 * S), |f, r| ends_b.push((f.flow_id, r)));
        touched.prefault();
        for i in 20..100 {
            let ts = 700 * S + i as u64 * S;
            handshake(&mut plain, i, ts, &mut ends_a);
            handshake(&mut touched, i, ts, &mut ends_b);
        }
        assert!(
            !ends_a.is_empty(),
            "no flow ended: the test would not see a freed slot"
        );
        assert_eq!(ends_a, ends_b);
        assert_eq!(plain.len(), touched.len());
        assert_eq!(plain.list_counts(), touched.list_counts());
        for i in 0..100 {
            let (k, _) = conn(i);
            let (a, b) = (plain.find(&k, k.hash64()), touched.find(&k, k.hash64()));
            assert_eq!(a, b, "flow {i}");
            if let (Some(a), Some(b)) = (a, b) {
                assert_eq!(
                    format!("{:?}", plain.get(a)),
                    format!("{:?}", touched.get(b))
                );
            }
        }
    }

    #[test]
    fn the_settled_packet_entry_matches_on_packet_on_every_flow_and_flag() {
        // Two tables fed the same packets: one applies found flows' packets with `on_packet`,
        // the other with `on_settled_packet`. Flags, bypass and the clock vary at random, so
        // both the settled case and every fallback are taken.
        let mut plain = FlowTable::new(cfg(64), 0);
        let mut settled = FlowTable::new(cfg(64), 0);
        let (mut ends_a, mut ends_b) = (Ends::new(), Ends::new());
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng
        };
        let (mut took_settled, mut took_one_sided, mut ts) = (0, 0, S);
        for _ in 0..20_000 {
            let r = next();
            let (k, client) = conn((r % 24) as u32);
            let side = if r >> 8 & 1 == 0 {
                client
            } else {
                client.other()
            };
            let flags = match r >> 12 & 15 {
                0 => SYN,
                1 => SYN | ACK,
                2 => FIN | ACK,
                3 => RST,
                _ => ACK | (PSH * (r >> 20 & 1) as u8),
            };
            ts += (r >> 24) % (3 * S);
            let seq = (r >> 32) as u32;
            let found = (plain.find(&k, k.hash64()), settled.find(&k, k.hash64()));
            match found {
                (Some(a), Some(b)) => {
                    assert_eq!(a, b);
                    if r >> 40 & 63 == 0 {
                        let flip = !plain.get(a).bypassed;
                        for t in [&mut plain, &mut settled] {
                            t.get_mut(a).bypassed = flip;
                            t.refile(a);
                        }
                    }
                    let was_settled = settled.slab[b as usize].list == ListId::Established;
                    let before = &settled.slab[b as usize];
                    let d = before.flow.dir_of(side).index();
                    let was_one_sided = before.list == ListId::New
                        && before.flow.state == TcpState::Established
                        && before.flow.pkts[d] > 0
                        && before.flow.pkts[1 - d] == 0;
                    let f = TcpFlags(flags);
                    let da = plain.on_packet(a, side, f, seq, 60, Timestamp(ts));
                    let db = settled.on_settled_packet(b, side, f, || seq, 60, Timestamp(ts));
                    assert_eq!(da, db);
                    assert_eq!(
                        format!("{:?}", plain.get(a)),
                        format!("{:?}", settled.get(b))
                    );
                    took_settled += usize::from(was_settled && flags & (SYN | FIN | RST) == 0);
                    took_one_sided += usize::from(was_one_sided && flags & (SYN | FIN | RST) == 0);
                }
                (None, None) => {
                    let ta = pkt(&mut plain, &k, side, flags, seq, 60, ts, &mut ends_a);
                    let tb = pkt(&mut settled, &k, side, flags, seq, 60, ts, &mut ends_b);
                    assert_eq!(ta, tb);
                }
                other => panic!("tables differ: {other:?}"),
            }
            if r >> 46 & 255 == 0 {
                plain.expire(Timestamp(ts), |f, r| ends_a.push((f.flow_id, r)));
                settled.expire(Timestamp(ts), |f, r| ends_b.push((f.flow_id, r)));
            }
            assert_eq!(plain.list_counts(), settled.list_counts());
            assert_eq!(ends_a, ends_b);
        }
        plain.check_invariants();
        settled.check_invariants();
        assert!(
            took_settled > 1_000,
            "the settled case ran {took_settled} times"
        );
        assert!(
            took_one_sided > 100,
            "the one-sided case ran {took_one_sided} times"
        );
        // Same flows, same order: everything ends alike.
        plain.expire(Timestamp(ts + 1_000 * S), |f, r| {
            ends_a.push((f.flow_id, r))
        });
        settled.expire(Timestamp(ts + 1_000 * S), |f, r| {
            ends_b.push((f.flow_id, r))
        });
        assert_eq!(ends_a, ends_b);
        assert!(!ends_a.is_empty());
    }

    #[test]
    fn bypassed_flows_are_rechecked_on_their_own_timeout_not_ended() {
        let mut t = FlowTable::new(cfg(3), 0);
        let mut ends = Ends::new();
        let a = handshake(&mut t, 1, S, &mut ends);
        let b = handshake(&mut t, 2, S, &mut ends);
        for idx in [a, b] {
            t.get_mut(idx).bypassed = true;
            t.refile(idx);
        }
        assert_eq!(t.list_counts().bypassed, 2);
        assert_eq!(t.list_counts().established, 0);
        t.check_invariants();
        let (ida, idb) = (t.get(a).flow_id, t.get(b).flow_id);
        let mut owner = Scripted {
            alive: HashSet::from([ida]),
            rechecked: Vec::new(),
            ends: Ends::new(),
        };
        // Within the bypassed timeout (20 s): nobody is asked.
        assert_eq!(t.expire_with(Timestamp(21 * S), &mut owner), 0);
        assert!(owner.rechecked.is_empty());
        // Past it: both are asked; the live one stays (checked again 20 s later), the other
        // ends with the owner's reason.
        assert_eq!(t.expire_with(Timestamp(22 * S), &mut owner), 1);
        assert_eq!(owner.rechecked, vec![ida, idb]);
        assert_eq!(owner.ends, vec![(idb, EndReason::Closed)]);
        assert_eq!(t.len(), 1);
        t.check_invariants();
        assert_eq!(t.expire_with(Timestamp(42 * S), &mut owner), 0);
        assert_eq!(owner.rechecked.len(), 2);
        t.expire_with(Timestamp(43 * S), &mut owner);
        assert_eq!(owner.rechecked, vec![ida, idb, ida]);
        // A plain end callback (no kernel to ask) never ends a bypassed flow while making
        // room: it is the last eviction candidate, after new and established flows.
        let c = handshake(&mut t, 3, 44 * S, &mut ends);
        let (k4, c4) = conn(4);
        pkt(&mut t, &k4, c4, SYN, 1, 60, 50 * S, &mut ends);
        assert_eq!(t.len(), 3);
        let (k5, c5) = conn(5);
        let tr = pkt(&mut t, &k5, c5, SYN, 1, 60, 51 * S, &mut ends);
        assert!(matches!(tr, Track::Started { .. }));
        assert_eq!(ends.len(), 1, "the half-open flow went first");
        assert!(t.try_get(a).is_some() && t.try_get(c).is_some());
        t.check_invariants();
        // Back from bypass (a block took it over): an established flow again.
        t.get_mut(a).bypassed = false;
        t.refile(a);
        assert_eq!(t.list_counts().bypassed, 0);
        assert_eq!(t.list_counts().established, 2);
        t.check_invariants();
    }

    impl FlowTable {
        /// Checks every structural invariant; panics with a reason on the first broken one.
        fn check_invariants(&self) {
            let mut occupied = 0;
            for (pos, &e) in self.index.iter().enumerate() {
                if e == 0 {
                    continue;
                }
                occupied += 1;
                let slot = (e as u32 - 1) as usize;
                let s = &self.slab[slot];
                assert_ne!(s.list, ListId::Free, "index points at a free slot");
                assert_eq!(s.hash, (e >> 32) as u32, "index hash disagrees with slot");
                // Reachable from home without crossing an empty entry.
                let mut p = s.hash as usize & self.mask;
                while p != pos {
                    assert_ne!(self.index[p], 0, "probe run broken before entry {pos}");
                    p = (p + 1) & self.mask;
                }
            }
            assert_eq!(occupied, self.len as usize, "index entries vs len");
            let mut total = 0;
            for list in LIVE_LISTS {
                let l = self.lists[list as usize];
                let mut n = 0;
                let mut prev = NIL;
                let mut cur = l.head;
                let mut last = Timestamp(0);
                while cur != NIL {
                    let s = &self.slab[cur as usize];
                    assert_eq!(s.list, list);
                    assert_eq!(s.prev, prev);
                    assert_eq!(s.flow.list(), list, "flow on the wrong list");
                    assert!(s.touched >= last, "list out of time order");
                    last = s.touched;
                    prev = cur;
                    cur = s.next;
                    n += 1;
                }
                assert_eq!(l.tail, prev);
                assert_eq!(l.len, n);
                total += n;
            }
            assert_eq!(total, self.len);
            let mut free = 0;
            let mut cur = self.free_head;
            while cur != NIL {
                assert_eq!(self.slab[cur as usize].list, ListId::Free);
                cur = self.slab[cur as usize].next;
                free += 1;
            }
            assert_eq!(free + self.len as usize, self.slab.len());
        }

        /// Mean and maximum distance of index entries from their home position.
        fn displacement(&self) -> (f64, usize) {
            let mut sum = 0usize;
            let mut max = 0usize;
            let mut n = 0usize;
            for (pos, &e) in self.index.iter().enumerate() {
                if e != 0 {
                    let home = (e >> 32) as usize & self.mask;
                    let d = pos.wrapping_sub(home) & self.mask;
                    sum += d;
                    max = max.max(d);
                    n += 1;
                }
            }
            (sum as f64 / n.max(1) as f64, max)
        }
    }

    #[test]
    fn flow_fits_its_budget() {
        assert!(std::mem::size_of::<Flow>() <= FLOW_SIZE_LIMIT);
        assert!(std::mem::size_of::<Slot>() <= SLOT_SIZE_LIMIT);
        let t = FlowTable::new(cfg(1_000_000), 0);
        // 2^21 index entries of 8 bytes plus the slab.
        assert_eq!(
            t.full_footprint_bytes(),
            (1 << 21) * 8 + 1_000_000 * std::mem::size_of::<Slot>()
        );
    }

    #[test]
    fn handshake_assigns_roles_isns_and_counters() {
        let mut t = FlowTable::new(cfg(16), 3);
        let mut ends = Ends::new();
        let (k, c) = conn(1);
        let tr = pkt(&mut t, &k, c, SYN, 1000, 74, S, &mut ends);
        let Track::Started { idx, dir } = tr else {
            panic!("{tr:?}")
        };
        assert_eq!(dir, Dir::ToServer);
        let f = t.get(idx);
        assert_eq!(
            (f.client, f.roles, f.state),
            (c, RoleSource::Handshake, TcpState::SynSent)
        );
        assert_eq!((f.isn[0], f.isn_known), (1000, [true, false]));
        assert_eq!(t.list_counts().new, 1);

        let tr = pkt(&mut t, &k, c.other(), SYN | ACK, 7777, 74, 2 * S, &mut ends);
        assert_eq!(
            tr,
            Track::Existing {
                idx,
                dir: Dir::ToClient
            }
        );
        let f = t.get(idx);
        assert_eq!(f.state, TcpState::SynReceived);
        assert_eq!((f.isn[1], f.isn_known), (7777, [true, true]));
        // Both directions seen, but no handshake yet: still new.
        assert_eq!(t.list_counts().new, 1);

        pkt(&mut t, &k, c, ACK, 1001, 66, 3 * S, &mut ends);
        pkt(&mut t, &k, c, ACK | PSH, 1001, 566, 3 * S, &mut ends);
        let f = t.get(idx);
        assert_eq!(f.state, TcpState::Established);
        assert_eq!(f.pkts, [3, 1]);
        assert_eq!(f.bytes, [74 + 66 + 566, 74]);
        assert_eq!((f.first_ts, f.last_ts), (Timestamp(S), Timestamp(3 * S)));
        assert_eq!(f.flow_id, 3 << 45 | 1);
        assert_eq!(f.ext, FlowExt::default());
        assert_eq!(f.ext.inspect, u32::MAX);
        assert_eq!(
            t.list_counts(),
            ListCounts {
                new: 0,
                established: 1,
                closed: 0,
                bypassed: 0,
            }
        );
        assert!(ends.is_empty());
        t.check_invariants();
    }

    #[test]
    fn syn_ack_first_makes_its_sender_the_server() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let (k, c) = conn(2);
        let tr = pkt(&mut t, &k, c.other(), SYN | ACK, 5000, 60, S, &mut ends);
        assert_eq!(dir_of(tr), Dir::ToClient);
        let idx = idx_of(tr);
        let f = t.get(idx);
        assert_eq!(
            (f.client, f.roles, f.state),
            (c, RoleSource::Handshake, TcpState::SynReceived)
        );
        assert_eq!((f.isn[1], f.isn_known), (5000, [false, true]));
        // The server's retransmitted SYN-ACK does not complete anything.
        pkt(&mut t, &k, c.other(), SYN | ACK, 5000, 60, S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::SynReceived);
        let tr = pkt(&mut t, &k, c, ACK, 1, 60, S, &mut ends);
        assert_eq!(dir_of(tr), Dir::ToServer);
        assert_eq!(t.get(idx).state, TcpState::Established);
    }

    #[test]
    fn mid_stream_pickup_guesses_the_lower_port_as_server() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        // Server data first: 443 is the server whoever speaks first.
        let (k, c) = conn(3);
        let tr = pkt(&mut t, &k, c.other(), ACK | PSH, 1, 1400, S, &mut ends);
        assert_eq!(dir_of(tr), Dir::ToClient);
        let f = t.get(idx_of(tr));
        assert_eq!(
            (f.client, f.roles, f.state),
            (c, RoleSource::PortGuess, TcpState::Established)
        );
        assert_eq!(f.isn_known, [false, false]);
        // One direction only: the flow counts as new (short timeout, evicted early).
        assert_eq!(t.list_counts().new, 1);
        pkt(&mut t, &k, c, ACK, 1, 60, S, &mut ends);
        assert_eq!(t.list_counts().established, 1);

        // Server on the lo side with the lower port.
        let (k2, s2) = FlowKey::new(Family::V4, v4(1, 1, 1, 1), 22, v4(9, 9, 9, 9), 50000);
        assert_eq!(s2, Side::Lo);
        let tr = pkt(&mut t, &k2, Side::Hi, ACK, 1, 60, S, &mut ends);
        assert_eq!(t.get(idx_of(tr)).client, Side::Hi);
        assert_eq!(dir_of(tr), Dir::ToServer);

        // Equal ports: lo is the server.
        let (k3, _) = FlowKey::new(Family::V4, v4(1, 1, 1, 1), 179, v4(2, 2, 2, 2), 179);
        let tr = pkt(&mut t, &k3, Side::Lo, ACK, 1, 60, S, &mut ends);
        assert_eq!(t.get(idx_of(tr)).client, Side::Hi);
        assert_eq!(dir_of(tr), Dir::ToClient);
    }

    #[test]
    fn fin_both_ways_closes_and_rst_resets() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let idx = handshake(&mut t, 4, S, &mut ends);
        let (k, c) = conn(4);
        pkt(&mut t, &k, c, FIN | ACK, 101, 60, 2 * S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::FinWait);
        assert_eq!(t.get(idx).fin, [true, false]);
        assert_eq!(t.list_counts().established, 1);
        // A repeated FIN from the same side changes nothing.
        pkt(&mut t, &k, c, FIN | ACK, 101, 60, 2 * S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::FinWait);
        pkt(&mut t, &k, c.other(), FIN | ACK, 901, 60, 3 * S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::Closed);
        assert_eq!(t.list_counts().closed, 1);
        // The last ACK keeps it closed.
        pkt(&mut t, &k, c, ACK, 102, 60, 3 * S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::Closed);

        let idx2 = handshake(&mut t, 5, S, &mut ends);
        let (k2, c2) = conn(5);
        pkt(&mut t, &k2, c2.other(), RST, 1, 60, 2 * S, &mut ends);
        assert_eq!(t.get(idx2).state, TcpState::Reset);
        // A FIN after the reset does not revive the flow.
        pkt(&mut t, &k2, c2, FIN | ACK, 1, 60, 2 * S, &mut ends);
        assert_eq!(t.get(idx2).state, TcpState::Reset);
        assert_eq!(t.list_counts().closed, 2);

        // A RST as the first packet.
        let (k3, c3) = conn(6);
        let tr = pkt(&mut t, &k3, c3.other(), RST | ACK, 1, 60, 2 * S, &mut ends);
        let f = t.get(idx_of(tr));
        assert_eq!(
            (f.state, f.roles, f.client),
            (TcpState::Reset, RoleSource::PortGuess, c3)
        );
        assert!(ends.is_empty());
        t.check_invariants();
    }

    #[test]
    fn each_timeout_runs_on_packet_time() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let t0 = 1000 * S;
        // new: a lone SYN.
        let (kn, cn) = conn(10);
        let new_id = {
            let i = idx_of(pkt(&mut t, &kn, cn, SYN, 1, 60, t0, &mut ends));
            t.get(i).flow_id
        };
        // established.
        let est = handshake(&mut t, 11, t0, &mut ends);
        let est_id = t.get(est).flow_id;
        // closed.
        let cl = handshake(&mut t, 12, t0, &mut ends);
        let cl_id = t.get(cl).flow_id;
        let (kc, cc) = conn(12);
        pkt(&mut t, &kc, cc, RST, 1, 60, t0, &mut ends);

        let expire = |t: &mut FlowTable, at: u64| {
            let mut got = Ends::new();
            let n = t.expire(Timestamp(at), |f, r| got.push((f.flow_id, r)));
            assert_eq!(n, got.len());
            t.check_invariants();
            got
        };
        assert!(
            expire(&mut t, t0 + 10 * S).is_empty(),
            "exactly at the timeout: kept"
        );
        assert_eq!(
            expire(&mut t, t0 + 10 * S + 1),
            vec![(cl_id, EndReason::Closed)]
        );
        assert!(expire(&mut t, t0 + 30 * S).is_empty());
        assert_eq!(
            expire(&mut t, t0 + 30 * S + 1),
            vec![(new_id, EndReason::Timeout)]
        );
        // Activity postpones the established timeout.
        let (ke, ce) = conn(11);
        pkt(&mut t, &ke, ce, ACK, 1, 60, t0 + 100 * S, &mut ends);
        assert!(expire(&mut t, t0 + 600 * S + 1).is_empty());
        assert_eq!(
            expire(&mut t, t0 + 700 * S + 1),
            vec![(est_id, EndReason::Timeout)]
        );
        assert!(t.is_empty());
        let st = t.stats();
        assert_eq!((st.ended_timeout, st.ended_closed, st.created), (2, 1, 3));
    }

    #[test]
    fn time_going_backwards_neither_panics_nor_unsorts() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let (k1, c1) = conn(1);
        let (k2, c2) = conn(2);
        pkt(&mut t, &k1, c1, SYN, 1, 60, 100 * S, &mut ends);
        // An older packet time: taken as the newest time seen.
        let i2 = idx_of(pkt(&mut t, &k2, c2, SYN, 1, 60, 50 * S, &mut ends));
        assert_eq!(t.get(i2).first_ts, Timestamp(100 * S));
        assert_eq!(t.clock(), Timestamp(100 * S));
        assert_eq!(t.expire(Timestamp(0), |_, _| {}), 0);
        t.check_invariants();
        assert_eq!(t.expire(Timestamp(u64::MAX), |_, _| {}), 2);
        assert!(t.is_empty());
    }

    #[test]
    fn full_table_evicts_closed_then_new_then_idle_established_then_refuses() {
        let mut t = FlowTable::new(cfg(3), 1);
        let mut ends = Ends::new();
        let t0 = 100 * S;
        // Established first (oldest), then new, then closed (newest): order of eviction must
        // follow the policy, not age.
        let est = handshake(&mut t, 1, t0, &mut ends);
        let est_id = t.get(est).flow_id;
        let (kn, cn) = conn(2);
        let new_id = {
            let i = idx_of(pkt(&mut t, &kn, cn, SYN, 1, 60, t0 + S, &mut ends));
            t.get(i).flow_id
        };
        let cl = handshake(&mut t, 3, t0 + 2 * S, &mut ends);
        let cl_id = t.get(cl).flow_id;
        let (kc, cc) = conn(3);
        pkt(&mut t, &kc, cc, RST, 1, 60, t0 + 2 * S, &mut ends);
        assert_eq!(t.len(), 3);

        let now = t0 + 3 * S;
        let (k4, c4) = conn(4);
        assert!(matches!(
            pkt(&mut t, &k4, c4, SYN, 1, 60, now, &mut ends),
            Track::Started { .. }
        ));
        assert_eq!(ends, vec![(cl_id, EndReason::Evicted)]);
        ends.clear();
        // conn 4 is now the newest new flow; conn 2 the oldest.
        let (k5, c5) = conn(5);
        pkt(&mut t, &k5, c5, SYN, 1, 60, now, &mut ends);
        assert_eq!(ends, vec![(new_id, EndReason::Evicted)]);
        ends.clear();
        // Make 4 and 5 established so only established flows remain.
        for i in [4, 5] {
            let (k, c) = conn(i);
            pkt(&mut t, &k, c.other(), SYN | ACK, 1, 60, now, &mut ends);
            pkt(&mut t, &k, c, ACK, 2, 60, now, &mut ends);
        }
        assert_eq!(t.list_counts().established, 3);
        // Conn 1 idle 3 s < 5 s: refused.
        let (k6, c6) = conn(6);
        assert_eq!(
            pkt(&mut t, &k6, c6, SYN, 1, 60, now, &mut ends),
            Track::Refused
        );
        assert_eq!(t.stats().refused, 1);
        assert!(ends.is_empty());
        // Idle exactly the minimum: the oldest established flow goes.
        assert!(matches!(
            pkt(&mut t, &k6, c6, SYN, 1, 60, t0 + 5 * S, &mut ends),
            Track::Started { .. }
        ));
        assert_eq!(ends, vec![(est_id, EndReason::Evicted)]);
        let st = t.stats();
        assert_eq!((st.evicted, st.refused, st.created), (3, 1, 6));
        t.check_invariants();
    }

    #[test]
    fn full_table_expires_before_it_evicts() {
        let mut t = FlowTable::new(cfg(2), 0);
        let mut ends = Ends::new();
        let (k1, c1) = conn(1);
        let (k2, c2) = conn(2);
        let id1 = {
            let i = idx_of(pkt(&mut t, &k1, c1, SYN, 1, 60, S, &mut ends));
            t.get(i).flow_id
        };
        let id2 = {
            let i = idx_of(pkt(&mut t, &k2, c2, SYN, 1, 60, 2 * S, &mut ends));
            t.get(i).flow_id
        };
        let (k3, c3) = conn(3);
        // 40 s later both half-open flows have timed out: both end as timeouts, none evicted.
        pkt(&mut t, &k3, c3, SYN, 1, 60, 42 * S, &mut ends);
        assert_eq!(
            ends,
            vec![(id1, EndReason::Timeout), (id2, EndReason::Timeout)]
        );
        assert_eq!(t.len(), 1);
        assert_eq!(t.stats().evicted, 0);
    }

    #[test]
    fn capacity_one_works() {
        let mut t = FlowTable::new(cfg(1), 0);
        assert_eq!(t.capacity(), 1);
        let mut ends = Ends::new();
        let a = handshake(&mut t, 1, S, &mut ends);
        let (k2, c2) = conn(2);
        assert_eq!(
            pkt(&mut t, &k2, c2, SYN, 1, 60, 2 * S, &mut ends),
            Track::Refused
        );
        let b = idx_of(pkt(&mut t, &k2, c2, SYN, 1, 60, 6 * S, &mut ends));
        assert_eq!(a, b, "the only slot is reused");
        assert_eq!(ends.len(), 1);
        assert_eq!(t.find(&conn(1).0, conn(1).0.hash64()), None);
        assert_eq!(t.find(&k2, k2.hash64()), Some(b));
        t.check_invariants();
        // Capacity 0 is taken as 1.
        assert_eq!(FlowTable::new(cfg(0), 0).capacity(), 1);
    }

    #[test]
    fn capacity_16m_builds_lazily_and_works() {
        let mut t = FlowTable::new(cfg(16 << 20), 0);
        assert_eq!(t.capacity(), 16 << 20);
        assert_eq!(t.index.len(), 32 << 20);
        // Reserved, not filled: the slab grows with use.
        assert_eq!(t.slab.len(), 0);
        let mut ends = Ends::new();
        for i in 0..1000 {
            handshake(&mut t, i, S, &mut ends);
        }
        assert_eq!((t.len(), t.slab.len()), (1000, 1000));
        let (k, _) = conn(500);
        assert!(t.find(&k, k.hash64()).is_some());
        assert!(ends.is_empty());
        // Above the maximum: clamped.
        let c = TableConfig {
            capacity: u32::MAX,
            ..cfg(1)
        };
        assert_eq!(
            c.capacity.clamp(1, TableConfig::MAX_CAPACITY),
            TableConfig::MAX_CAPACITY
        );
    }

    #[test]
    fn syn_after_close_starts_a_new_flow_in_place() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let idx = handshake(&mut t, 7, S, &mut ends);
        let (k, c) = conn(7);
        pkt(&mut t, &k, c, ACK | PSH, 101, 1000, S, &mut ends);
        pkt(&mut t, &k, c, FIN | ACK, 101, 60, S, &mut ends);
        pkt(&mut t, &k, c.other(), FIN | ACK, 901, 60, S, &mut ends);
        let old_id = t.get(idx).flow_id;
        t.get_mut(idx).ext.verdict = 3;

        // The server port's side opens the new connection this time.
        let tr = pkt(&mut t, &k, c.other(), SYN, 5555, 60, 2 * S, &mut ends);
        assert_eq!(
            tr,
            Track::Started {
                idx,
                dir: Dir::ToServer
            }
        );
        assert_eq!(ends, vec![(old_id, EndReason::Closed)]);
        let f = t.get(idx);
        assert_ne!(f.flow_id, old_id);
        assert_eq!((f.client, f.state), (c.other(), TcpState::SynSent));
        assert_eq!((f.pkts, f.bytes), ([1, 0], [60, 0]));
        assert_eq!((f.isn, f.isn_known), ([5555, 0], [true, false]));
        assert_eq!(f.fin, [false, false]);
        assert_eq!(f.first_ts, Timestamp(2 * S));
        assert_eq!(f.ext, FlowExt::default());
        assert_eq!(t.list_counts().new, 1);
        assert_eq!(
            (t.stats().reused, t.stats().ended_closed, t.stats().created),
            (1, 1, 2)
        );
        assert_eq!(t.len(), 1);
        t.check_invariants();
    }

    #[test]
    fn syn_retransmissions_do_not_restart() {
        let mut t = FlowTable::new(cfg(16), 0);
        let mut ends = Ends::new();
        let (k, c) = conn(8);
        let idx = idx_of(pkt(&mut t, &k, c, SYN, 10, 60, S, &mut ends));
        assert!(matches!(
            pkt(&mut t, &k, c, SYN, 10, 60, 2 * S, &mut ends),
            Track::Existing { .. }
        ));
        // A SYN on an established flow is not a new connection either.
        handshake(&mut t, 9, S, &mut ends);
        let (k9, c9) = conn(9);
        assert!(matches!(
            pkt(&mut t, &k9, c9, SYN, 1, 60, S, &mut ends),
            Track::Existing { .. }
        ));
        // Half-closed, and the client's own SYN again (same ISN): a retransmission.
        pkt(&mut t, &k, c, FIN | ACK, 11, 60, S, &mut ends);
        assert_eq!(t.get(idx).state, TcpState::FinWait);
        assert!(matches!(
            pkt(&mut t, &k, c, SYN, 10, 60, S, &mut ends),
            Track::Existing { .. }
        ));
        // A SYN with another ISN: a new connection.
        assert!(matches!(
            pkt(&mut t, &k, c, SYN, 99, 60, S, &mut ends),
            Track::Started { .. }
        ));
        // After RST, a SYN-ACK is not a new connection (only a pure SYN is).
        pkt(&mut t, &k9, c9, RST, 1, 60, S, &mut ends);
        assert!(matches!(
            pkt(&mut t, &k9, c9.other(), SYN | ACK, 1, 60, S, &mut ends),
            Track::Existing { .. }
        ));
        assert_eq!(ends.len(), 1);
    }

    #[test]
    fn flow_ids_are_unique_and_below_2_pow_53() {
        let mut t = FlowTable::new(cfg(4), 255);
        let mut seen = HashSet::new();
        for i in 0..1000u32 {
            let (k, c) = conn(i);
            let tr = pkt(
                &mut t,
                &k,
                c,
                SYN,
                1,
                60,
                i as u64 * 31 * S,
                &mut Ends::new(),
            );
            let id = t.get(idx_of(tr)).flow_id;
            assert!(id < 1 << 53);
            assert_eq!(id >> 45, 255);
            assert!(seen.insert(id));
        }
        let mut t0 = FlowTable::new(cfg(4), 0);
        let (k, c) = conn(0);
        let id = {
            let i = idx_of(pkt(&mut t0, &k, c, SYN, 1, 60, 0, &mut Ends::new()));
            t0.get(i).flow_id
        };
        assert_eq!(id, 1, "worker 0's first flow is 1, never 0");
    }

    #[test]
    fn drain_ends_everything_as_shutdown() {
        let mut t = FlowTable::new(cfg(64), 0);
        let mut ends = Ends::new();
        for i in 0..40 {
            handshake(&mut t, i, S, &mut ends);
        }
        let (k, c) = conn(0);
        pkt(&mut t, &k, c, RST, 1, 60, S, &mut ends);
        let mut got = Vec::new();
        t.drain(|f, r| got.push((f.flow_id, r)));
        assert_eq!(got.len(), 40);
        assert!(got.iter().all(|&(_, r)| r == EndReason::Shutdown));
        assert!(t.is_empty());
        assert_eq!(t.stats().ended_shutdown, 40);
        t.check_invariants();
        // Usable again afterwards.
        handshake(&mut t, 1, 2 * S, &mut ends);
        assert_eq!(t.len(), 1);
    }

    #[test]
    fn lookup_or_insert_and_on_packet_work_alone() {
        let mut t = FlowTable::new(cfg(4), 0);
        let (k, c) = conn(1);
        let h = k.hash64();
        let Lookup::Created(idx) = t.lookup_or_insert(&k, h, Timestamp(5), |_, _| {}) else {
            panic!()
        };
        assert_eq!(
            t.lookup_or_insert(&k, h, Timestamp(6), |_, _| {}),
            Lookup::Found(idx)
        );
        assert_eq!(
            t.on_packet(idx, c.other(), TcpFlags(SYN | ACK), 3, 60, Timestamp(7)),
            Dir::ToClient
        );
        assert!(t.try_get(idx).is_some());
        assert!(t.try_get(idx + 1).is_none());
        // A stale index is ignored rather than trusted.
        assert_eq!(
            t.on_packet(99, c, TcpFlags(ACK), 0, 1, Timestamp(8)),
            Dir::ToServer
        );
    }

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
            self.next() % n
        }
    }

    #[derive(Debug, Clone, Copy)]
    struct Model {
        idx: FlowIdx,
        flow_id: u64,
        last: u64,
        touch: u64,
        /// 0 new, 1 established, 2 closed: written from the spec, not from the table's lists.
        cat: u8,
        state: TcpState,
        client: Side,
        isn0: Option<u32>,
    }

    fn model_cat(f: &Flow) -> u8 {
        match f.state {
            TcpState::Closed | TcpState::Reset => 2,
            TcpState::Established | TcpState::FinWait if f.pkts[0] > 0 && f.pkts[1] > 0 => 1,
            _ => 0,
        }
    }

    /// Table behaviour against a HashMap model of the documented policy: membership, stable
    /// indices, exactly which flows expire or are evicted and why, refusals, unique ids.
    fn run_model(seed: u64, crush_hash: bool) {
        let c = TableConfig {
            capacity: 48,
            new_timeout_ns: 50,
            established_timeout_ns: 200,
            closed_timeout_ns: 20,
            bypassed_timeout_ns: 100,
            evict_min_idle_ns: 30,
        };
        let timeout = |cat: u8| match cat {
            0 => (c.new_timeout_ns, EndReason::Timeout),
            1 => (c.established_timeout_ns, EndReason::Timeout),
            _ => (c.closed_timeout_ns, EndReason::Closed),
        };
        let hasher = FlowHasher::with_seed(seed);
        let hash = |k: &FlowKey| {
            let h = k.hash_with(&hasher);
            if crush_hash {
                h & 0x3f
            } else {
                h
            }
        };
        let mut rng = Rng(seed);
        let mut t = FlowTable::new(c, 2);
        let mut model: HashMap<FlowKey, Model> = HashMap::new();
        let mut ids = HashSet::new();
        let keys: Vec<(FlowKey, Side)> = (0..160).map(conn).collect();
        let flag_set = [
            SYN,
            SYN,
            SYN | ACK,
            ACK,
            ACK | PSH,
            ACK,
            FIN | ACK,
            RST,
            ACK | PSH,
        ];
        let mut clock = 0u64;
        let mut touch = 0u64;
        let (mut refused, mut restarts) = (0, 0);

        let expired_now = |model: &HashMap<FlowKey, Model>, clock: u64| {
            let mut v: Vec<(u64, EndReason)> = model
                .values()
                .filter(|m| clock.saturating_sub(m.last) > timeout(m.cat).0)
                .map(|m| (m.flow_id, timeout(m.cat).1))
                .collect();
            v.sort_by_key(|e| e.0);
            v
        };
        let forget = |model: &mut HashMap<FlowKey, Model>, ended: &[(u64, EndReason)]| {
            model.retain(|_, m| !ended.iter().any(|e| e.0 == m.flow_id));
        };

        for op in 0..20_000u32 {
            // Every 5000 ops, a busy phase: data both ways on many flows, little time passing,
            // no expiry calls, so the table fills with recently active established flows.
            let busy = op % 5000 >= 3500;
            let r = if busy { rng.below(85) } else { rng.below(100) };
            let now = if rng.below(20) == 0 {
                clock.saturating_sub(rng.below(10))
            } else if busy {
                clock + (rng.below(16) == 0) as u64
            } else {
                clock + rng.below(8)
            };
            clock = clock.max(now);
            let mut got = Ends::new();
            if r < 85 {
                let (key, client) = keys[rng.below(keys.len() as u64) as usize];
                let first = if rng.below(2) == 0 {
                    client
                } else {
                    client.other()
                };
                // In the busy phase both ends speak, so flows become established at once.
                let sends = if busy { 2 } else { 1 };
                for n in 0..sends {
                    let side = if n == 0 { first } else { first.other() };
                    let mut got = Ends::new();
                    let flags = if busy {
                        ACK | PSH
                    } else {
                        flag_set[rng.below(flag_set.len() as u64) as usize]
                    };
                    let seq = rng.below(3) as u32;
                    let seg = SegmentMeta {
                        side,
                        flags: TcpFlags(flags),
                        seq,
                        bytes: 100,
                    };
                    let tr = t.track(&key, hash(&key), seg, Timestamp(now), |f, why| {
                        got.push((f.flow_id, why))
                    });
                    got.sort_by_key(|e| e.0);
                    let idx = match (model.get(&key).copied(), tr) {
                        (Some(m), Track::Existing { idx, .. }) => {
                            assert_eq!(idx, m.idx, "op {op}: index moved");
                            assert!(got.is_empty(), "op {op}: {got:?}");
                            idx
                        }
                        (Some(m), Track::Started { idx, .. }) => {
                            let pure_syn = flags == SYN;
                            let ending = matches!(
                                m.state,
                                TcpState::FinWait | TcpState::Closed | TcpState::Reset
                            );
                            let own = side == m.client && m.isn0 == Some(seq);
                            assert!(pure_syn && ending && !own, "op {op}: unexpected restart");
                            assert_eq!(idx, m.idx);
                            assert_eq!(got, vec![(m.flow_id, EndReason::Closed)]);
                            restarts += 1;
                            idx
                        }
                        (None, Track::Existing { .. }) => {
                            panic!("op {op}: found a flow not in the model")
                        }
                        (None, outcome) => {
                            let mut expect = Vec::new();
                            if model.len() >= c.capacity as usize {
                                expect = expired_now(&model, clock);
                                if expect.is_empty() {
                                    let oldest = |cat: u8| {
                                        model
                                            .values()
                                            .filter(|m| m.cat == cat)
                                            .min_by_key(|m| m.touch)
                                            .copied()
                                    };
                                    let victim = oldest(2).or_else(|| oldest(0)).or_else(|| {
                                        oldest(1).filter(|m| clock - m.last >= c.evict_min_idle_ns)
                                    });
                                    if let Some(v) = victim {
                                        expect.push((v.flow_id, EndReason::Evicted));
                                    }
                                }
                            }
                            assert_eq!(got, expect, "op {op}");
                            forget(&mut model, &got);
                            match outcome {
                                Track::Refused => {
                                    assert_eq!(model.len(), c.capacity as usize);
                                    refused += 1;
                                    continue;
                                }
                                Track::Started { idx, .. } => {
                                    assert!(model.values().all(|m| m.idx != idx), "slot shared");
                                    idx
                                }
                                Track::Existing { .. } => unreachable!(),
                            }
                        }
                        (Some(_), Track::Refused) => panic!("op {op}: refused a tracked flow"),
                    };
                    let f = t.get(idx);
                    assert_eq!(f.key, key);
                    touch += 1;
                    let isn0 = f.isn_known[0].then_some(f.isn[0]);
                    let m = Model {
                        idx,
                        flow_id: f.flow_id,
                        last: clock,
                        touch,
                        cat: model_cat(f),
                        state: f.state,
                        client: f.client,
                        isn0,
                    };
                    if model
                        .insert(key, m)
                        .is_none_or(|old| old.flow_id != m.flow_id)
                    {
                        assert!(ids.insert(m.flow_id), "op {op}: flow id reused");
                    }
                }
            } else if r < 95 {
                let at = clock + rng.below(120);
                clock = at;
                let expect = expired_now(&model, clock);
                let n = t.expire(Timestamp(at), |f, why| got.push((f.flow_id, why)));
                got.sort_by_key(|e| e.0);
                assert_eq!(n, got.len());
                assert_eq!(got, expect, "op {op}: expire");
                forget(&mut model, &got);
            } else {
                let (key, _) = keys[rng.below(keys.len() as u64) as usize];
                assert_eq!(t.find(&key, hash(&key)), model.get(&key).map(|m| m.idx));
            }
            assert_eq!(t.len(), model.len());
            if op % 101 == 0 {
                t.check_invariants();
            }
        }
        t.check_invariants();
        // The sequence must have exercised the interesting paths.
        assert!(
            refused > 0 && restarts > 0,
            "refused {refused} restarts {restarts}"
        );
        assert!(t.stats().evicted > 0 && t.stats().ended_timeout > 0);
        let mut got = Ends::new();
        t.drain(|f, why| got.push((f.flow_id, why)));
        assert_eq!(got.len(), model.len());
        assert!(t.is_empty());
    }

    #[test]
    fn randomized_against_a_hashmap_model() {
        run_model(0x5eed_0001, false);
        run_model(0x5eed_0002, false);
    }

    #[test]
    fn randomized_against_a_hashmap_model_with_colliding_hashes() {
        // 64 distinct hash values for 160 keys: long shared probe runs, deletions in their middle.
        run_model(0x5eed_0003, true);
    }

    #[test]
    fn churn_of_short_flows_leaves_no_debris() {
        // Many SYN / RST pairs through a small table: without backward-shift deletion the index
        // would fill with tombstones and probes would lengthen.
        let mut t = FlowTable::new(cfg(1024), 0);
        let mut ends = Ends::new();
        let mut ts = 0;
        for i in 0..200_000u32 {
            let (k, c) = conn(i);
            ts += 1000;
            let tr = pkt(&mut t, &k, c, SYN, i, 60, ts, &mut ends);
            assert!(!matches!(tr, Track::Refused));
            if i % 3 != 0 {
                pkt(&mut t, &k, c.other(), RST | ACK, 0, 60, ts, &mut ends);
            }
        }
        t.check_invariants();
        assert_eq!(t.len(), 1024);
        let (mean, max) = t.displacement();
        // Linear probing at load 1/2 averages 0.5 positions from home.
        assert!(mean < 1.5 && max < 64, "mean {mean} max {max}");
        assert_eq!(t.slab.len(), 1024, "slots are recycled, not appended");
    }

    /// Rough per-operation timings; run with
    /// `cargo test --release --lib flow::table::tests::measure -- --ignored --nocapture`.
    /// Keys are visited in memory order so that only the table's own accesses are random.
    #[test]
    #[ignore]
    fn measure_lookup_speed() {
        use std::hint::black_box;
        use std::time::Instant;

        fn keys(n: u32) -> Vec<FlowKey> {
            (0..n)
                .map(|i| {
                    FlowKey::new(
                        Family::V4,
                        v4(10, (i >> 16) as u8, (i >> 8) as u8, i as u8),
                        (i % 50000) as u16 + 1024,
                        v4(172, 16, 0, 1),
                        443,
                    )
                    .0
                })
                .collect()
        }
        fn per_op(start: Instant, ops: usize) -> f64 {
            start.elapsed().as_nanos() as f64 / ops as f64
        }

        for n in [4_096u32, 1_000_000] {
            let ks = keys(n);
            let mut t = FlowTable::new(cfg(n), 0);
            // Inserted in shuffled order so that slab accesses are random too, as in traffic.
            let mut order: Vec<usize> = (0..ks.len()).collect();
            let mut rng = Rng(n as u64);
            for i in (1..order.len()).rev() {
                order.swap(i, rng.below(i as u64 + 1) as usize);
            }
            for &i in &order {
                t.lookup_or_insert(&ks[i], ks[i].hash64(), Timestamp(1), |_, _| {});
            }
            let (mean, max) = t.displacement();
            let mut miss_probes = 0usize;
            for k in &ks {
                let mut k = *k;
                k.hi_port = 8443;
                let mut pos = k.hash64() as u32 as usize & t.mask;
                while t.index[pos] != 0 {
                    miss_probes += 1;
                    pos = (pos + 1) & t.mask;
                }
            }
            println!(
                "{n} flows: displacement mean {mean:.2} max {max}; occupied entries passed per miss {:.2}",
                miss_probes as f64 / n as f64
            );
            let rounds = (8_000_000 / n as usize).max(4);
            let ops = rounds * n as usize;
            let mut acc = 0u64;

            let start = Instant::now();
            for _ in 0..rounds {
                for k in &ks {
                    acc = acc.wrapping_add(black_box(k).hash64());
                }
            }
            let hash_ns = per_op(start, ops);

            let start = Instant::now();
            for _ in 0..rounds {
                for k in &ks {
                    let k = black_box(k);
                    acc = acc.wrapping_add(t.find(k, k.hash64()).unwrap_or(0) as u64);
                }
            }
            let hit_ns = per_op(start, ops);

            let start = Instant::now();
            for r in 0..rounds {
                for k in &ks {
                    let mut k = *k;
                    k.hi_port = 8443 + r as u16;
                    let k = black_box(&k);
                    acc = acc.wrapping_add(t.find(k, k.hash64()).unwrap_or(0) as u64);
                }
            }
            let miss_ns = per_op(start, ops);

            let seg = SegmentMeta {
                side: Side::Lo,
                flags: TcpFlags(ACK),
                seq: 0,
                bytes: 100,
            };
            let start = Instant::now();
            for r in 0..rounds {
                for k in &ks {
                    let k = black_box(k);
                    let tr = t.track(k, k.hash64(), seg, Timestamp(2 + r as u64), |_, _| {});
                    acc = acc.wrapping_add(matches!(tr, Track::Existing { .. }) as u64);
                }
            }
            let track_ns = per_op(start, ops);
            // Back-to-back packets of one flow (a bulk transfer).
            let hot = ks[n as usize / 2];
            let start = Instant::now();
            for r in 0..ops {
                let k = black_box(&hot);
                let tr = t.track(k, k.hash64(), seg, Timestamp(10 + r as u64), |_, _| {});
                acc = acc.wrapping_add(matches!(tr, Track::Existing { .. }) as u64);
            }
            let hot_ns = per_op(start, ops);
            black_box(acc);
            println!(
                "{n} flows: hash {hash_ns:.1} ns, lookup hit {hit_ns:.1} ns, miss {miss_ns:.1} ns, \
                 track (lookup + on_packet) {track_ns:.1} ns, track of one hot flow {hot_ns:.1} ns"
            );
        }
        let t = FlowTable::new(cfg(1_000_000), 0);
        println!(
            "size_of Flow {} B, slot {} B, full table {:.1} B/flow at capacity 1M",
            std::mem::size_of::<Flow>(),
            std::mem::size_of::<Slot>(),
            t.full_footprint_bytes() as f64 / 1e6
        );
    }
}
