//! The per-worker engine: frame → wire → flow → stream → proto → detect → verdict.
//!
//! One engine per worker, owning its flow table, stream windows and counters outright: nothing
//! here is shared or locked. It does no I/O of its own except handing fixed-size EVE records to
//! the writer thread's channel (never blocking) and queueing flow commands for the datapath.

pub mod record;
pub mod rtt_watch;
pub mod servers;
pub mod worker;

use std::net::IpAddr;
use std::sync::Arc;

use crossbeam_channel::{Sender, TrySendError};

use crate::capture::{Action, Frame, LinkType, Timestamp};
use crate::detect::check::Evidence;
use crate::detect::config::DetectConfig;
use crate::detect::policy::FindingPolicy;
use crate::detect::{Detector, Event, Finding, FindingKind, Findings, FlowView};
use crate::flow::defrag::{Defrag, DefragConfig, DefragEvent, Outcome as DefragOutcome};
use crate::flow::table::{Expiry, Recheck, SegmentMeta, TcpState, Track};
use crate::flow::table::{TableConfig, TableStats};
use crate::flow::{
    Dir, EndReason, Flow, FlowIdx, FlowKey, FlowTable, OverlapPolicy, Side, StreamPool,
};
use crate::inspect::{
    FlowBase, InspectConfig, InspectState, OneWayWait, Report, TlsFacts, TRAIL_RECORDS,
};
use crate::proto::entropy::PayloadFigures;
use crate::proto::tls::TlsScratch;
use crate::proto::{self, AppProto, DirIdent, Probe};
use crate::verdict::{
    Bypass, FlowCommand, FlowControl, FlowVerdict, FrameHandler, HostBlocks, KernelFlow, Mode,
};
use crate::wire::{
    self, DecodeConfig, Malformed, OtherKind, Parsed, TcpFlags, TcpPacket, TunnelKind, TunnelPath,
    WireAnomalies,
};
use record::{
    AlertAction, AlertRecord, AnomalyRecord, DropRecord, EveRecord, FlowMeta, FlowRecord,
    KernelShare, Recycled, SpareStrings, TlsEveRecord, TlsRecord, Tunnels,
};
use servers::ServerHistory;

/// `FlowExt::inspect` when the flow has no inspection slot (the table's default).
const NO_SLOT: u32 = u32::MAX;

fn slot_of(flow: &Flow) -> Option<u32> {
    (flow.ext.inspect != NO_SLOT).then_some(flow.ext.inspect)
}

/// What the engine takes from the configuration; `crate::config::Config::engine` composes it,
/// so the engine never imports the config file layer.
#[derive(Debug, Clone, Default)]
pub struct EngineConfig {
    pub table: TableConfig,
    pub stream_depth: usize,
    pub stream_memcap: usize,
    pub overlap_policy: OverlapPolicy,
    pub block_overlap_conflict: bool,
    pub verify_checksums: bool,
    /// `stream.ttl_tolerance`: hops below a sender's highest TTL still taken as reaching.
    pub ttl_tolerance: u8,
    /// Write a `flow` record at each flow's end.
    pub flow_records: bool,
    /// Bytes after which an unidentified direction is final as unknown.
    pub unknown_after: usize,
    /// Certificates and hellos per worker kept already parsed (`proto.tls_cert_cache`,
    /// `proto.tls_hello_memo`).
    pub tls_cert_cache: usize,
    pub tls_hello_memo: usize,
    pub mode: Mode,
    pub detect: DetectConfig,
    pub decode: DecodeConfig,
    pub defrag: DefragConfig,
    /// A flow whose one talking side is past the stream depth, while the other side has sent
    /// nothing for this long since the flow began, is judged on what it showed (and may be
    /// bypassed). 0: never; such flows stay under inspection until they end.
    pub one_way_ns: u64,
}

/// How the engine is being run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub worker: u8,
    /// Record capture packet numbers (`pcap_cnt`) in EVE records: replay only.
    pub packet_numbers: bool,
}

/// A counter per kind, for kinds too many for std's array `Default`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PerKind<const N: usize>(pub [u64; N]);

impl<'de, const N: usize> serde::Deserialize<'de> for PerKind<N> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let v: Vec<u64> = serde::Deserialize::deserialize(d)?;
        let mut out = [0u64; N];
        for (o, x) in out.iter_mut().zip(v) {
            *o = x;
        }
        Ok(PerKind(out))
    }
}

impl<const N: usize> serde::Serialize for PerKind<N> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.as_slice().serialize(s)
    }
}

impl<const N: usize> Default for PerKind<N> {
    fn default() -> Self {
        PerKind([0; N])
    }
}

impl<const N: usize> std::ops::Index<usize> for PerKind<N> {
    type Output = u64;
    fn index(&self, i: usize) -> &u64 {
        &self.0[i]
    }
}

impl<const N: usize> std::ops::IndexMut<usize> for PerKind<N> {
    fn index_mut(&mut self, i: usize) -> &mut u64 {
        &mut self.0[i]
    }
}

/// Plain per-worker counters. Only this worker writes them; the exporter reads snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub other: [u64; OtherKind::COUNT],
    pub malformed: [u64; Malformed::COUNT],
    /// Encapsulations opened, by [`TunnelKind::index`] (a packet in two tunnels counts twice).
    pub tunnels: [u64; TunnelKind::COUNT],
    /// IP reassembly events by [`DefragEvent::index`] (copied from the reassembly table).
    pub defrag: [u64; DefragEvent::COUNT],
    /// Lookups of the TLS caches by [`TlsScratch::CACHES`] (certificate, client hello, server
    /// hello): `[hits, lookups]` each, copied from the worker's scratch.
    pub tls_cache: [[u64; 2]; crate::proto::tls::TlsScratch::CACHES],
    pub bad_tcp_options: u64,
    pub truncated_payload: u64,
    pub forwarded: u64,
    /// Packets dropped because their flow was blocked (the triggering packet included).
    pub dropped: u64,
    /// Packets dropped in block mode because they could not be inspected (tunnels nested too
    /// deep, IP fragments beyond the reassembly limits).
    pub dropped_uninspectable: u64,
    /// Packets of decided flows that skipped inspection.
    pub fast_path: u64,
    /// Packets that went through stream and protocol inspection.
    pub inspected: u64,
    pub flows_refused_packets: u64,
    pub flows_ended: u64,
    pub flows_blocked: u64,
    pub flows_by_app: [u64; AppProto::COUNT],
    pub stream_retransmissions: u64,
    pub stream_conflicting_overlaps: u64,
    pub stream_out_of_order: u64,
    pub stream_beyond_depth: u64,
    pub stream_too_many_gaps: u64,
    pub stream_out_of_window: u64,
    /// RSTs whose sequence number is not where the receiver's stream is (RFC 5961: it would
    /// not reset): the flow's state is kept as it was.
    pub stream_rst_ignored: u64,
    /// Segments not inspected because their TCP checksum is wrong (`stream.verify_checksums`).
    pub stream_bad_checksum: u64,
    /// Segments whose TTL is too low to reach the receiver (below the sender's highest TTL by
    /// more than `stream.ttl_tolerance`): not inspected, and their RST or FIN ends nothing.
    pub stream_low_ttl: u64,
    pub stream_memcap_refused: u64,
    pub findings: PerKind<{ FindingKind::COUNT }>,
    /// Of `findings`: those whose action was to block the flow (block mode, blocking check).
    pub findings_blocked: PerKind<{ FindingKind::COUNT }>,
    /// Findings below their kind's alert floor: recorded in the flow record, no alert.
    pub findings_recorded: PerKind<{ FindingKind::COUNT }>,
    pub findings_overflow: u64,
    pub tls_anomalies: PerKind<{ crate::proto::tls::TlsAnomaly::KINDS }>,
    pub eve_dropped: u64,
    pub commands_dropped: u64,
    /// Flows handed to the kernel's bypass map (`verdict.bypass`).
    pub flows_bypassed: u64,
    /// One-directional flows judged while the other side stayed silent (`flow.one_way_secs`).
    pub flows_one_way: u64,
    /// Bypassed flows handed over again: their kernel entry had expired or been evicted.
    pub bypass_renewed: u64,
    /// Reads of a bypassed flow's kernel counters (idle rechecks and flow ends).
    pub bypass_rechecks: u64,
    /// Packets of bypassed flows the kernel forwarded without a worker, as read back.
    pub bypass_kernel_packets: u64,
}

fn add_all(into: &mut [u64], from: &[u64]) {
    for (a, b) in into.iter_mut().zip(from) {
        *a += b;
    }
}

impl std::ops::AddAssign<&Counters> for Counters {
    /// Sums another worker's counters into these (for run totals).
    fn add_assign(&mut self, o: &Counters) {
        let scalars: [(&mut u64, u64); 31] = [
            (&mut self.packets, o.packets),
            (&mut self.bytes, o.bytes),
            (&mut self.tcp, o.tcp),
            (&mut self.bad_tcp_options, o.bad_tcp_options),
            (&mut self.truncated_payload, o.truncated_payload),
            (&mut self.forwarded, o.forwarded),
            (&mut self.dropped, o.dropped),
            (&mut self.dropped_uninspectable, o.dropped_uninspectable),
            (&mut self.fast_path, o.fast_path),
            (&mut self.inspected, o.inspected),
            (&mut self.flows_refused_packets, o.flows_refused_packets),
            (&mut self.flows_ended, o.flows_ended),
            (&mut self.flows_blocked, o.flows_blocked),
            (&mut self.stream_retransmissions, o.stream_retransmissions),
            (
                &mut self.stream_conflicting_overlaps,
                o.stream_conflicting_overlaps,
            ),
            (&mut self.stream_out_of_order, o.stream_out_of_order),
            (&mut self.stream_beyond_depth, o.stream_beyond_depth),
            (&mut self.stream_too_many_gaps, o.stream_too_many_gaps),
            (&mut self.stream_out_of_window, o.stream_out_of_window),
            (&mut self.stream_rst_ignored, o.stream_rst_ignored),
            (&mut self.stream_bad_checksum, o.stream_bad_checksum),
            (&mut self.stream_low_ttl, o.stream_low_ttl),
            (&mut self.stream_memcap_refused, o.stream_memcap_refused),
            (&mut self.findings_overflow, o.findings_overflow),
            (&mut self.eve_dropped, o.eve_dropped),
            (&mut self.commands_dropped, o.commands_dropped),
            (&mut self.flows_bypassed, o.flows_bypassed),
            (&mut self.flows_one_way, o.flows_one_way),
            (&mut self.bypass_renewed, o.bypass_renewed),
            (&mut self.bypass_rechecks, o.bypass_rechecks),
            (&mut self.bypass_kernel_packets, o.bypass_kernel_packets),
        ];
        for (a, b) in scalars {
            *a += b;
        }
        add_all(&mut self.other, &o.other);
        add_all(&mut self.malformed, &o.malformed);
        add_all(&mut self.tunnels, &o.tunnels);
        add_all(&mut self.defrag, &o.defrag);
        for (a, b) in self.tls_cache.iter_mut().zip(&o.tls_cache) {
            add_all(a, b);
        }
        add_all(&mut self.flows_by_app, &o.flows_by_app);
        add_all(&mut self.findings.0, &o.findings.0);
        add_all(&mut self.findings_blocked.0, &o.findings_blocked.0);
        add_all(&mut self.findings_recorded.0, &o.findings_recorded.0);
        add_all(&mut self.tls_anomalies.0, &o.tls_anomalies.0);
    }
}

/// Stream windows plus the inspection state that goes with each slot.
struct InspectPool {
    streams: StreamPool,
    /// Grows up to the stream pool's capacity as slots are first used (capacity is reserved
    /// up front, so growing never reallocates).
    states: Vec<InspectState>,
}

impl InspectPool {
    fn new(depth: usize, memcap: usize) -> Self {
        let streams = StreamPool::new(depth, memcap);
        let states = Vec::with_capacity(streams.capacity());
        InspectPool { streams, states }
    }

    fn state_mut(&mut self, slot: u32) -> Option<&mut InspectState> {
        state_mut(&mut self.states, slot)
    }
}

/// The state of `slot`, created on first use of the slot.
fn state_mut(states: &mut Vec<InspectState>, slot: u32) -> Option<&mut InspectState> {
    let i = slot as usize;
    while states.len() <= i && states.len() < states.capacity() {
        states.push(InspectState::default());
    }
    states.get_mut(i)
}

/// Flow commands waiting for the end of the batch; fixed capacity.
struct CommandQueue {
    items: [Option<FlowCommand>; Self::CAPACITY],
    len: usize,
}

impl CommandQueue {
    const CAPACITY: usize = 1024;

    fn new() -> Self {
        CommandQueue {
            items: [None; Self::CAPACITY],
            len: 0,
        }
    }

    /// False when full: the flow stays blocked in userspace, only the kernel shortcut is lost.
    fn push(&mut self, cmd: FlowCommand) -> bool {
        match self.items.get_mut(self.len) {
            Some(slot) => {
                *slot = Some(cmd);
                self.len += 1;
                true
            }
            None => false,
        }
    }

    fn drain(&mut self, ctl: &mut dyn FlowControl) {
        for cmd in self.items[..self.len].iter_mut().filter_map(Option::take) {
            ctl.apply(&cmd);
        }
        self.len = 0;
    }
}

/// Strings a worker keeps per TLS record field for refilling records.
const SPARE_STRINGS: usize = 256;

/// Flow records leave 1/this of the EVE queue free for every other record.
const FLOW_RECORD_HEADROOM: usize = 4;

/// Where findings and records go: verdicts, EVE, counters. Kept apart from the inspection
/// pool so a parser callback can report while the pool is borrowed.
struct Sink {
    mode: Mode,
    packet_numbers: bool,
    eve: Option<Sender<EveRecord>>,
    /// Boxes the writer gave back, refilled instead of allocated (see [`Recycled`]).
    recycled: Option<Recycled>,
    /// Strings that refilled TLS records no longer needed.
    spare: SpareStrings,
    commands: CommandQueue,
    counters: Counters,
}

impl Sink {
    fn pcap_cnt(&self) -> Option<u64> {
        self.packet_numbers.then_some(self.counters.packets)
    }

    fn send(&mut self, rec: EveRecord) {
        if let Some(tx) = &self.eve {
            // Flow records come one per flow, at a rate a flood decides: they may fill the
            // queue only up to three quarters, so alerts still find room while the writer is
            // behind (a SYN flood of random 5-tuples otherwise crowds every alert out).
            if matches!(rec, EveRecord::Flow(_))
                && tx
                    .capacity()
                    .is_some_and(|cap| tx.len() >= cap - cap / FLOW_RECORD_HEADROOM)
            {
                self.counters.eve_dropped += 1;
                return;
            }
            match tx.try_send(rec) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.counters.eve_dropped += 1
                }
            }
        }
    }

    /// [`Sink::raise`] for one finding the engine itself makes (not a check's), through the
    /// shared `buf` so nothing is allocated.
    fn raise_one(
        &mut self,
        flow: &mut Flow,
        buf: &mut Findings,
        finding: Finding,
        policy: &FindingPolicy,
        ts: Timestamp,
    ) {
        buf.clear();
        buf.push(finding);
        self.raise(flow, buf, policy, ts);
    }

    /// Turns findings into alerts and, in block mode, a block verdict.
    fn raise(
        &mut self,
        flow: &mut Flow,
        findings: &Findings,
        policy: &FindingPolicy,
        ts: Timestamp,
    ) {
        self.counters.findings_overflow += findings.overflow as u64;
        for f in findings.iter() {
            let bit = 1u64 << f.kind.index();
            if !policy.alerts(f) {
                // Below the alert floor: the flow record names it, once per kind.
                if flow.ext.recorded & bit == 0 {
                    flow.ext.recorded |= bit;
                    self.counters.findings_recorded[f.kind.index()] += 1;
                }
                continue;
            }
            let block = self.mode == Mode::Block && policy.blocks(f);
            let blocked = FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked;
            // One alert per kind per flow, unless a later finding of that kind blocks a flow an
            // earlier, alert-only one of the same kind let through.
            let newly_blocks = block && !blocked;
            if flow.ext.alerted & bit != 0 && !newly_blocks {
                continue;
            }
            flow.ext.alerted |= bit;
            self.counters.findings[f.kind.index()] += 1;
            self.counters.findings_blocked[f.kind.index()] += block as u64;
            if block && FlowVerdict::from_u8(flow.ext.verdict) != FlowVerdict::Blocked {
                flow.ext.verdict = FlowVerdict::Blocked as u8;
                self.counters.flows_blocked += 1;
                if !self.commands.push(FlowCommand::Block {
                    key: flow.key,
                    at: ts,
                }) {
                    self.counters.commands_dropped += 1;
                }
            }
            let alert = AlertRecord {
                ts,
                meta: flow_meta(flow),
                dir: f.dir,
                action: if block {
                    AlertAction::Blocked
                } else {
                    AlertAction::Allowed
                },
                finding: *f,
                pcap_cnt: self.pcap_cnt(),
            };
            let boxed = match self.recycled.as_ref().and_then(Recycled::alert) {
                Some(mut b) => {
                    *b = alert;
                    b
                }
                None => Box::new(alert),
            };
            self.send(EveRecord::Alert(boxed));
        }
    }
}

/// The checks and the sink, bound to one flow: what inspection reports to.
struct FlowReport<'a> {
    detector: &'a Detector,
    findings: &'a mut Findings,
    sink: &'a mut Sink,
    servers: &'a mut ServerHistory,
    flow: &'a mut Flow,
    ts: Timestamp,
}

impl Report for FlowReport<'_> {
    fn event(&mut self, view: &FlowView<'_>, event: &Event<'_>) {
        self.findings.clear();
        self.detector.on_event(view, event, self.findings);
        if let Event::Identified { dir, data } = *event {
            let ident = view.ident[dir.index()];
            self.flow.ext.app[dir.index()] = ident.proto() as u8;
            self.flow.ext.app_confidence[dir.index()] = ident.confidence();
            self.flow.ext.ident_bytes[dir.index()] = ident.bytes_seen;
            // The client's opening bytes matched no protocol on a connection seen from its
            // handshake: judge their randomness once, and remember it for the server.
            if dir == Dir::ToServer
                && ident.proto() == AppProto::Unknown
                && view.seen_from_start == [true, true]
                && !data.is_empty()
            {
                let figures = PayloadFigures::of(data);
                let server = self.servers.record(
                    view.server_addr,
                    view.server_port,
                    figures.exemption().is_none(),
                    view.now,
                );
                let opaque = Event::OpaqueFirstPayload {
                    figures: &figures,
                    server,
                };
                self.detector.on_event(view, &opaque, self.findings);
            }
        }
        if let Event::TlsAnomaly { dir, anomaly } = *event {
            self.sink.counters.tls_anomalies[anomaly.kind_index()] += 1;
            let _ = dir;
        }
        if !self.findings.is_empty() {
            self.sink
                .raise(self.flow, self.findings, &self.detector.policy, self.ts);
        }
    }

    fn tls_record(&mut self, facts: &TlsFacts) {
        let sink = &mut *self.sink;
        let boxed = match sink.recycled.as_ref().and_then(Recycled::tls) {
            Some(mut b) => {
                b.ts = self.ts;
                b.meta = flow_meta(self.flow);
                b.tls.fill_from(facts, &mut sink.spare);
                b
            }
            None => Box::new(TlsEveRecord {
                ts: self.ts,
                meta: flow_meta(self.flow),
                tls: TlsRecord::from_facts(facts),
            }),
        };
        sink.send(EveRecord::Tls(boxed));
    }
}

/// What the engine does where TCP segments overlap with different bytes.
#[derive(Debug, Clone, Copy)]
struct StreamPolicy {
    overlap: OverlapPolicy,
    block_conflict: bool,
    verify_checksums: bool,
    ttl_tolerance: u8,
}

impl StreamPolicy {
    /// Whether a segment's TTL is too low to reach the receiver: below the highest TTL its
    /// sender has shown by more than the tolerance (path changes move TTLs by a hop or so).
    /// Every other segment raises the floor. Attackers choose every TTL they send, the SYN's
    /// included; a floor set too high is caught when the receiver acknowledges what was left
    /// out (`Core::track_window`).
    fn low_ttl(&self, flow: &mut Flow, dir: Dir, ttl: u8) -> bool {
        let floor = &mut flow.ext.ttl_floor[dir.index()];
        if self.below_floor(ttl, *floor) {
            return true;
        }
        *floor = (*floor).max(ttl);
        false
    }

    /// Whether `ttl` lies more than the tolerance below `floor` (left out of inspection).
    fn below_floor(&self, ttl: u8, floor: u8) -> bool {
        u16::from(ttl) + u16::from(self.ttl_tolerance) < u16::from(floor)
    }

    fn overlap_name(&self) -> &'static str {
        match self.overlap {
            OverlapPolicy::First => "first",
            OverlapPolicy::Last => "last",
        }
    }
}

/// Everything but the flow table, so table callbacks can borrow it while the table is busy.
struct Core {
    stream_policy: StreamPolicy,
    flow_records: bool,
    inspect: InspectConfig,
    pool: InspectPool,
    /// Shared by every worker and swapped whole on a reload: checks only read it.
    detector: Arc<Detector>,
    /// `detector.relay.is_some()`, kept beside the counters: the lean path asks on every
    /// packet, and through the `Arc` that was two dependent loads.
    relay_on: bool,
    findings: Findings,
    scratch: TlsScratch,
    sink: Sink,
    /// Latest packet time seen, or the wall clock when the worker supplies it.
    clock: Timestamp,
    /// Which decided flows go to the kernel's bypass map; `Off` unless a live runtime asks.
    bypass: Bypass,
    /// A flow of the packet being handled changed list (bypassed): the table must refile it.
    refile: bool,
    /// A bypassed flow the kernel has not seen for this long is over.
    established_timeout_ns: u64,
    /// [`EngineConfig::one_way_ns`].
    one_way_ns: u64,
    /// Recent servers and how their flows opened (fully encrypted or not).
    servers: ServerHistory,
    /// Hosts a host alert listed (live, `correlation.block_secs`): their new flows are cut.
    host_blocks: Option<Arc<HostBlocks>>,
    /// Per flow-table slot: round trips for the relay check.
    rtt: rtt_watch::RttWatch,
}

/// A bypassed flow that still sends packets to the worker this long after it was handed to
/// the kernel has lost its kernel entry (expired, evicted): it is handed over again. Less
/// than this is packets that were already on their way when the entry was written.
const BYPASS_RENEW_NS: u64 = Timestamp::NANOS_PER_SEC;

/// The table's expiry hooks in a live worker: a bypassed flow is judged on the kernel's
/// counters, which only the datapath (`ctl`) can read.
struct Hooks<'a> {
    core: &'a mut Core,
    ctl: &'a mut dyn FlowControl,
}

impl Expiry for Hooks<'_> {
    fn recheck(&mut self, flow: &mut Flow) -> Recheck {
        self.core.recheck_bypassed(flow, self.ctl)
    }

    fn end(&mut self, flow: &mut Flow, reason: EndReason) {
        if flow.bypassed {
            self.core.sink.counters.bypass_rechecks += 1;
            if let Some(k) = self.ctl.kernel_flow(&flow.key) {
                self.core.merge_kernel(flow, &k);
            }
        }
        self.core.end_flow(flow, reason)
    }
}

/// One worker's engine.
pub struct Engine {
    flows: FlowTable,
    core: Core,
    /// Tunnels opened per frame at most, and what happens to frames nested deeper.
    decode: DecodeConfig,
    /// IP fragments waiting for the rest of their datagram.
    defrag: Defrag,
    /// Plain Ethernet/IP/TCP frames are read at fixed offsets ([`wire::decode_plain`]) before
    /// the tunnel-capable decode; off only to compare the two.
    plain_decode: bool,
}

/// Packets between two periodic checks of a long flow (a power of two: a mask test).
const PERIODIC_PACKETS: u64 = 4096;

impl Engine {
    /// Builds an engine. `eve` receives records; `None` discards them (benches).
    pub fn new(
        config: &EngineConfig,
        opts: EngineOptions,
        eve: Option<Sender<EveRecord>>,
    ) -> Engine {
        Self::with_detector(config, opts, eve, Arc::new(Detector::new(&config.detect)))
    }

    /// Builds an engine around a detector built once for all workers (`config.detect` is not
    /// read again).
    pub fn with_detector(
        config: &EngineConfig,
        opts: EngineOptions,
        eve: Option<Sender<EveRecord>>,
        detector: Arc<Detector>,
    ) -> Engine {
        let table = config.table;
        let flows = FlowTable::new(table, opts.worker);
        let pool = InspectPool::new(config.stream_depth, config.stream_memcap);
        Engine {
            decode: config.decode,
            defrag: Defrag::new(config.defrag),
            plain_decode: true,
            core: Core {
                stream_policy: StreamPolicy {
                    overlap: config.overlap_policy,
                    block_conflict: config.block_overlap_conflict,
                    verify_checksums: config.verify_checksums,
                    ttl_tolerance: config.ttl_tolerance,
                },
                flow_records: config.flow_records,
                inspect: InspectConfig {
                    unknown_after: config.unknown_after,
                    trail_records: if config.detect.tls_in_tls.enabled {
                        TRAIL_RECORDS as u8
                    } else {
                        0
                    },
                },
                pool,
                relay_on: detector.relay.is_some(),
                detector,
                findings: Findings::default(),
                scratch: TlsScratch::with_caches(
                    crate::proto::tls::DEFAULT_SCRATCH_LEN,
                    config.tls_cert_cache,
                    config.tls_hello_memo,
                ),
                sink: Sink {
                    mode: config.mode,
                    packet_numbers: opts.packet_numbers,
                    eve,
                    recycled: None,
                    spare: SpareStrings::with_capacity(SPARE_STRINGS),
                    commands: CommandQueue::new(),
                    counters: Counters::default(),
                },
                clock: Timestamp(0),
                bypass: Bypass::Off,
                refile: false,
                established_timeout_ns: table.established_timeout_ns,
                one_way_ns: config.one_way_ns,
                servers: ServerHistory::new(
                    config.detect.fully_encrypted.server_slots as usize,
                    u64::from(config.detect.fully_encrypted.server_window_secs),
                ),
                host_blocks: None,
                rtt: rtt_watch::RttWatch::new(flows.capacity()),
            },
            flows,
        }
    }

    /// New flows of the hosts listed in `blocks` raise `host_blocked` (and, in block mode, are
    /// cut). Live only: in replay the writer that lists hosts runs behind the engine, so which
    /// flows would meet a listing would depend on thread timing.
    pub fn set_host_blocks(&mut self, blocks: Arc<HostBlocks>) {
        self.core.host_blocks = Some(blocks);
    }

    /// Refills the record boxes `from` hands back (the EVE writer's `recycled()`) instead of
    /// allocating alert and TLS records.
    pub fn recycle_records(&mut self, from: Recycled) {
        self.core.sink.recycled = Some(from);
    }

    /// Lets decided flows go to the kernel's bypass map per `bypass` (the live runtime, whose
    /// [`FlowControl`] applies the commands and reads the counters back). Replay leaves it
    /// off: with no kernel, bypassed flows would only go unaccounted.
    pub fn set_bypass(&mut self, bypass: Bypass) {
        self.core.bypass = bypass;
    }

    /// Puts a reloaded policy in force from the next packet on; flows, their state and the
    /// verdicts already given stay. Returns the detector it replaces, so that the caller can
    /// free it off the packet path.
    pub fn apply_policy(&mut self, detector: Arc<Detector>, mode: Mode) -> Arc<Detector> {
        self.core.sink.mode = mode;
        self.core.relay_on = detector.relay.is_some();
        std::mem::replace(&mut self.core.detector, detector)
    }

    /// Maps the flow table's whole memory now ([`FlowTable::prefault`], and the relay watch's
    /// slots beside it), so that new flows
    /// cost no page faults on the packet path. For the live workers and replay, before the
    /// first packet.
    pub fn prefault_flow_table(&mut self) {
        self.flows.prefault();
        // The relay check's per-flow watch grows with the table's slots: the same faults.
        if self.core.detector.relay.is_some() {
            self.core.rtt.prefault();
        }
    }

    /// Whether plain Ethernet/IP/TCP frames take the fixed-offset decode (on by default).
    /// Both decodes give the same packets; turning it off is for comparing them.
    pub fn set_plain_decode(&mut self, on: bool) {
        self.plain_decode = on;
    }

    pub fn counters(&self) -> &Counters {
        &self.core.sink.counters
    }

    pub fn table_stats(&self) -> TableStats {
        self.flows.stats()
    }

    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    pub fn mode(&self) -> Mode {
        self.core.sink.mode
    }

    /// Stream windows in use right now.
    pub fn streams_in_use(&self) -> usize {
        self.core.pool.streams.in_use()
    }

    fn tcp(&mut self, frame: &Frame<'_>, p: &TcpPacket<'_>, tunnels: &TunnelPath) -> Action {
        let Engine { flows, core, .. } = self;
        track_tcp(flows, core, frame, p, tunnels, None)
    }

    /// The lean path: a packet of a judged (clean, alerted or uninspected) flow, in a plain
    /// frame, that changes nothing but the flow's TCP state and counters. Reads only the key,
    /// flags and sequence number; `None` hands the packet to [`track_keyed`], which does the
    /// same and everything else (new flows, inspection, SYN and RST handling, drops, bypass
    /// renewal, the periodic checks).
    #[inline(always)]
    fn judged(
        &mut self,
        frame: &Frame<'_>,
        flags: TcpFlags,
        seq: impl FnOnce() -> u32,
        find: impl FnOnce(&FlowTable) -> Option<FlowIdx>,
        side: Side,
    ) -> Option<Action> {
        // A SYN may open a new connection on the ports (port reuse), a RST is checked against
        // the stream, a RST or FIN against the TTL floor: all are the full path's.
        if flags.syn() || flags.rst() || flags.fin() {
            return None;
        }
        let idx = find(&self.flows)?;
        let flow = self.flows.get(idx);
        let verdict = FlowVerdict::from_u8(flow.ext.verdict);
        let judged = matches!(
            verdict,
            FlowVerdict::Clean | FlowVerdict::Alerted | FlowVerdict::Uninspected
        );
        let periodic_due = (flow.pkts[0] + flow.pkts[1] + 1) & (PERIODIC_PACKETS - 1) == 0;
        if !judged || flow.bypassed || periodic_due {
            if verdict == FlowVerdict::Inspecting {
                return self.one_way_waiting(frame, idx, side, flags);
            }
            return None;
        }
        let Engine { flows, core, .. } = self;
        let dir = flows.on_settled_packet(idx, side, flags, seq, frame.wire_len, frame.ts);
        // The relay check times request/response pairs past inspection too, up to its bound:
        // the packet's view is made only while the flow's watch runs.
        if core.relay_on && core.rtt.watching(idx, false) {
            core.watch_plain_rtt(idx, flows.get_mut(idx), dir, frame);
        }
        let c = &mut core.sink.counters;
        c.fast_path += 1;
        c.forwarded += 1;
        Some(Action::Forward)
    }

    /// The lean path for a flow waiting to be concluded as one-directional
    /// ([`OneWayWait`]): a segment of its talking direction past the stream depth, or a bare
    /// acknowledgment, that repeats the last acknowledgment and window and keeps to the TTL
    /// floor, before `flow.one_way_secs` is up. The full path would count it and change
    /// nothing else, which is all this does. `None` for any other packet, which the full
    /// path takes (and the conclusion with it). The frame's view is made again here: kept
    /// for this branch, it held registers the decided flows' packets needed.
    #[inline(never)]
    fn one_way_waiting(
        &mut self,
        frame: &Frame<'_>,
        idx: FlowIdx,
        side: Side,
        flags: TcpFlags,
    ) -> Option<Action> {
        let Engine { flows, core, .. } = self;
        let flow = flows.get(idx);
        let state = slot_of(flow).and_then(|s| core.pool.states.get(s as usize))?;
        let wait = state.one_way;
        if wait.talker == 0 {
            return None;
        }
        let seg = wire::plain_view(frame)?;
        let d = flow.dir_of(side).index();
        let floor = flow.ext.ttl_floor[d];
        let keeps_state = usize::from(wait.talker) == d + 1
            && flow.pkts[1 - d] == 0
            && flags.ack()
            && seg.ack() == wait.ack
            && seg.window() == wait.window
            // Neither below the TTL floor (left out) nor above it (raising it).
            && seg.ttl() <= floor
            && !core.stream_policy.below_floor(seg.ttl(), floor);
        if !keeps_state {
            return None;
        }
        let payload = seg.payload_len();
        if payload != 0
            && (!state.stream[d].past_depth(seg.seq(), core.pool.streams.depth())
                || frame.ts.since(flow.first_ts) >= core.one_way_ns)
        {
            return None;
        }
        let dir = flows.on_one_sided_packet(idx, side, flags, seg.seq(), frame.wire_len, frame.ts);
        if core.relay_on && core.rtt.watching(idx, false) {
            core.watch_plain_rtt(idx, flows.get_mut(idx), dir, frame);
        }
        let c = &mut core.sink.counters;
        if payload != 0 {
            c.inspected += 1;
            c.stream_beyond_depth += 1;
        }
        c.forwarded += 1;
        Some(Action::Forward)
    }

    /// A fragment: kept for reassembly and forwarded as it arrives; the one that completes its
    /// datagram carries the datagram's verdict (a receiver cannot rebuild a datagram whose last
    /// fragment was dropped, so dropping that one drops the datagram).
    fn fragment(
        &mut self,
        frame: &Frame<'_>,
        f: &wire::IpFragment<'_>,
        outer: &TunnelPath,
    ) -> Action {
        let Engine {
            flows,
            core,
            decode,
            defrag,
            ..
        } = self;
        let block = core.sink.mode == Mode::Block;
        let (datagram, conflict) = match defrag.insert(f, frame.ts) {
            DefragOutcome::Pending => {
                core.sink.counters.forwarded += 1;
                return Action::Forward;
            }
            DefragOutcome::Refused(_) => {
                let c = &mut core.sink.counters;
                if block && defrag.drop_unreassembled() {
                    c.dropped_uninspectable += 1;
                    return Action::Drop;
                }
                c.forwarded += 1;
                return Action::Forward;
            }
            DefragOutcome::Complete { datagram, conflict } => (datagram, conflict),
        };
        let len = u32::try_from(datagram.len()).unwrap_or(u32::MAX);
        let remaining = usize::from(decode.tunnel_depth).saturating_sub(outer.depth());
        let inner = wire::decode_captured(
            datagram,
            len,
            LinkType::RawIp,
            u8::try_from(remaining).unwrap_or(0),
        );
        let c = &mut core.sink.counters;
        for kind in inner.tunnels.kinds() {
            c.tunnels[kind.index()] += 1;
        }
        let whole = Frame {
            data: datagram,
            ts: frame.ts,
            link: LinkType::RawIp,
            wire_len: len,
            port: frame.port,
            queue: frame.queue,
        };
        let path = outer.then(&inner.tunnels);
        let overlap = conflict.then(|| {
            let mut evidence = Evidence::default();
            evidence.add("fragment_id", f.id);
            evidence.add("fragments_protocol", f.proto);
            Finding {
                kind: FindingKind::IpFragmentOverlap,
                confidence: 90,
                block: true,
                dir: Dir::ToServer,
                evidence,
            }
        });
        match inner.parsed {
            Parsed::Tcp(p) => {
                c.tcp += 1;
                track_tcp(flows, core, &whole, &p, &path, overlap.as_ref())
            }
            other => {
                match other {
                    Parsed::Other(kind) => c.other[kind.index()] += 1,
                    Parsed::Malformed(why) => c.malformed[why.index()] += 1,
                    Parsed::Tcp(_) => {}
                }
                // No flow to raise it on: the conflict is counted (defrag overlap_conflict)
                // and, in block mode, the datagram does not go through.
                if conflict && block {
                    c.dropped_uninspectable += 1;
                    return Action::Drop;
                }
                c.forwarded += 1;
                Action::Forward
            }
        }
    }
}

/// Tracks a TCP packet's flow and judges the packet. `raise` is a finding the packet brought
/// before inspection (overlapping fragments), raised on its flow first.
fn track_tcp(
    flows: &mut FlowTable,
    core: &mut Core,
    frame: &Frame<'_>,
    p: &TcpPacket<'_>,
    tunnels: &TunnelPath,
    raise: Option<&Finding>,
) -> Action {
    let (key, side) = FlowKey::from_tcp(p);
    let hash = flows.hash(&key);
    track_keyed(
        flows,
        core,
        frame,
        p,
        tunnels,
        raise,
        Keyed { key, side, hash },
    )
}

/// A packet's flow key, the side that sent it, and the key's hash, computed once.
struct Keyed {
    key: FlowKey,
    side: Side,
    hash: u64,
}

/// [`track_tcp`] with the key already made.
fn track_keyed(
    flows: &mut FlowTable,
    core: &mut Core,
    frame: &Frame<'_>,
    p: &TcpPacket<'_>,
    tunnels: &TunnelPath,
    raise: Option<&Finding>,
    keyed: Keyed,
) -> Action {
    let Keyed { key, side, hash } = keyed;
    let seg = SegmentMeta {
        side,
        flags: p.flags,
        seq: p.seq,
        bytes: frame.wire_len,
    };
    // A RST ends the connection only at the receiver's next sequence number, and a RST or FIN
    // only if it reaches the receiver at all; the state before it is kept in case it did not
    // (an evasion: a forged RST or FIN that makes an inspector give up).
    let before_end = if p.flags.rst() || p.flags.fin() {
        flows.find(&key, hash).map(|i| {
            let f = flows.get(i);
            (f.state, f.fin)
        })
    } else {
        None
    };
    let (idx, dir, started) =
        match flows.track(&key, hash, seg, frame.ts, |f, r| core.end_flow(f, r)) {
            Track::Existing { idx, dir } => (idx, dir, false),
            Track::Started { idx, dir } => (idx, dir, true),
            Track::Refused => {
                core.sink.counters.flows_refused_packets += 1;
                if raise.is_some() && core.sink.mode == Mode::Block {
                    core.sink.counters.dropped_uninspectable += 1;
                    return Action::Drop;
                }
                core.sink.counters.forwarded += 1;
                return Action::Forward;
            }
        };
    let flow = flows.get_mut(idx);
    // Decided flows skip the TTL floor (their data is no longer inspected), but not for RSTs
    // and FINs, which could still end them.
    let low_ttl = (before_end.is_some()
        || FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Inspecting)
        && core.stream_policy.low_ttl(flow, dir, p.ttl);
    core.sink.counters.stream_low_ttl += low_ttl as u64;
    if let Some((prior, prior_fin)) = before_end {
        let bad_checksum =
            core.stream_policy.verify_checksums && wire::tcp_checksum_ok(p) == Some(false);
        let rst_away = p.flags.rst() && core.rst_out_of_window(flow, dir, p.seq);
        if prior != TcpState::Reset && (bad_checksum || low_ttl || rst_away) {
            flow.state = prior;
            flow.fin = prior_fin;
            core.sink.counters.stream_rst_ignored += p.flags.rst() as u64;
            core.refile = true;
        }
    }
    if flow.ext.tunnel_depth == 0 && !tunnels.is_empty() {
        flow.ext.tunnels = tunnels.packed();
        flow.ext.tunnel_depth = u8::try_from(tunnels.depth()).unwrap_or(u8::MAX);
    }
    if let Some(finding) = raise {
        let mut finding = *finding;
        finding.dir = dir;
        core.sink.raise_one(
            flow,
            &mut core.findings,
            finding,
            &core.detector.policy,
            frame.ts,
        );
    }
    if started {
        if let Some(blocks) = &core.host_blocks {
            let m = flow_meta(flow);
            if blocks.blocked(&m.client_addr, frame.ts) {
                let mut evidence = Evidence::default();
                evidence.add("host", ip(m.family, m.client_addr));
                let finding = Finding {
                    kind: FindingKind::HostBlocked,
                    confidence: 100,
                    block: true,
                    dir,
                    evidence,
                };
                core.sink.raise_one(
                    flow,
                    &mut core.findings,
                    finding,
                    &core.detector.policy,
                    frame.ts,
                );
            }
        }
    }
    let action = core.packet(flow, dir, p, frame, low_ttl);
    // A segment the receiver never gets times nothing.
    if !low_ttl && core.rtt.watching(idx, started) {
        core.watch_rtt(idx, started, flow, dir, p, frame.ts);
    }
    if core.refile {
        core.refile = false;
        flows.refile(idx);
    }
    action
}

impl Engine {
    /// A frame [`wire::plain_view`] took: the lean path's action if it applies
    /// ([`Engine::judged`]), else the key and hash made for the full path.
    #[inline(always)]
    fn lean(
        &mut self,
        frame: &Frame<'_>,
        v: &wire::PlainTcp<'_>,
        find: impl FnOnce(&FlowTable) -> Option<FlowIdx>,
        side: Side,
    ) -> Option<Action> {
        let c = &mut self.core.sink.counters;
        c.tcp += 1;
        if v.anomalies().has(WireAnomalies::BAD_TCP_OPTIONS) {
            c.bad_tcp_options += 1;
        }
        self.judged(frame, v.flags(), || v.seq(), find, side)
    }

    /// A frame of any other shape: the lean path if [`wire::plain_any`] takes it, else the
    /// full decode. Out of line, so the entry holds one inlined lean path, not two.
    #[inline(never)]
    fn lean_any(&mut self, frame: &Frame<'_>) -> Action {
        if let Some(v) = wire::plain_any(frame.data) {
            let (src, sport, dst, dport) = v.endpoint_words();
            let (key, side) = FlowKey::from_words(v.family(), src, sport, dst, dport);
            let hash = self.flows.hash(&key);
            return match self.lean(frame, &v, |t| t.find(&key, hash), side) {
                Some(action) => action,
                None => self.keyed(frame, v, Keyed { key, side, hash }),
            };
        }
        self.decoded(frame)
    }

    /// [`Engine::keyed`] for a frame [`wire::plain_untagged_ipv4`] took, which decodes the
    /// view again and builds the key here rather than have the per-packet entry keep them:
    /// handing the view over made LLVM write all of it to the stack on every packet, lean ones
    /// included, and the lean path looks flows up by endpoint words, not by key.
    #[inline(never)]
    fn keyed_untagged_ipv4(&mut self, frame: &Frame<'_>, hash: u64) -> Action {
        match wire::plain_untagged_ipv4(frame.data) {
            Some(v) => {
                let (src, sport, dst, dport) = v.v4_endpoint_words();
                let (key, side, _) = FlowKey::from_v4_words(src, sport, dst, dport);
                self.keyed(frame, v, Keyed { key, side, hash })
            }
            // Not reached: the same bytes gave a view a moment ago. Were it reached, the full
            // decode still judges the frame (its TCP counter would count it twice).
            None => self.decoded(frame),
        }
    }

    /// A plain frame the lean path left to the full path. Out of line: the lean path's
    /// per-packet entry stays small (no large stack frame, fewer spills).
    #[inline(never)]
    fn keyed(&mut self, frame: &Frame<'_>, v: wire::PlainTcp<'_>, keyed: Keyed) -> Action {
        let p = v.packet();
        let Engine { flows, core, .. } = self;
        track_keyed(flows, core, frame, &p, &TunnelPath::default(), None, keyed)
    }

    /// A frame [`wire::plain_view`] does not take: the full decode. Out of line, as `keyed`.
    #[inline(never)]
    fn decoded(&mut self, frame: &Frame<'_>) -> Action {
        let c = &mut self.core.sink.counters;
        let decoded = wire::decode_frame(frame, self.decode.tunnel_depth);
        if !decoded.tunnels.is_empty() {
            for kind in decoded.tunnels.kinds() {
                c.tunnels[kind.index()] += 1;
            }
        }
        match decoded.parsed {
            Parsed::Tcp(p) => {
                c.tcp += 1;
                if p.anomalies.has(WireAnomalies::BAD_TCP_OPTIONS) {
                    c.bad_tcp_options += 1;
                }
                if p.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD) {
                    c.truncated_payload += 1;
                }
                self.tcp(frame, &p, &decoded.tunnels)
            }
            Parsed::Other(OtherKind::TunnelTooDeep)
                if self.decode.drop_too_deep && self.core.sink.mode == Mode::Block =>
            {
                c.other[OtherKind::TunnelTooDeep.index()] += 1;
                c.dropped_uninspectable += 1;
                Action::Drop
            }
            Parsed::Other(OtherKind::Fragment) if self.defrag.enabled() => {
                c.other[OtherKind::Fragment.index()] += 1;
                let action = match decoded.fragment {
                    Some(f) => self.fragment(frame, &f, &decoded.tunnels),
                    None => {
                        self.core.sink.counters.forwarded += 1;
                        Action::Forward
                    }
                };
                self.core.sink.counters.defrag = self.defrag.events;
                action
            }
            Parsed::Other(kind) => {
                c.other[kind.index()] += 1;
                c.forwarded += 1;
                Action::Forward
            }
            Parsed::Malformed(why) => {
                // Unparsable frames are not ours to judge: an inline box that ate them would
                // break things it does not understand. They are counted by reason.
                c.malformed[why.index()] += 1;
                c.forwarded += 1;
                Action::Forward
            }
        }
    }
}

impl FrameHandler for Engine {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        self.core.sink.counters.packets += 1;
        if frame.ts > self.core.clock {
            self.core.clock = frame.ts;
        }
        // Apart from `packets` (the clock's branch between them): side by side, LLVM made the
        // two adds one vector add of seven instructions.
        self.core.sink.counters.bytes += frame.wire_len as u64;
        if self.plain_decode && frame.link == LinkType::Ethernet {
            // The commonest shape first, with its key built knowing it is IPv4.
            if let Some(v) = wire::plain_untagged_ipv4(frame.data) {
                let (src, sport, dst, dport) = v.v4_endpoint_words();
                let (ends, side) = FlowKey::v4_sides(src, sport, dst, dport);
                let hash = self.flows.hash_v4(ends);
                return match self.lean(frame, &v, |t| t.find_v4(ends, hash), side) {
                    Some(action) => action,
                    None => self.keyed_untagged_ipv4(frame, hash),
                };
            }
            return self.lean_any(frame);
        }
        self.decoded(frame)
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        if now > self.core.clock {
            self.core.clock = now;
        }
        let Engine {
            flows,
            core,
            defrag,
            ..
        } = self;
        let clock = core.clock;
        defrag.expire(clock);
        core.sink.counters.defrag = defrag.events;
        core.sink.counters.tls_cache = core.scratch.cache_hits();
        flows.expire_with(clock, Hooks { core, ctl });
        core.sink.commands.drain(ctl);
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.after_batch(now, ctl);
        let Engine { flows, core, .. } = self;
        flows.drain_with(Hooks { core, ctl });
        core.sink.commands.drain(ctl);
    }
}

impl Core {
    /// The relay check's round-trip watch (`rtt_watch`), on packets past inspection too. Kept
    /// out of line: the per-packet path it joins stays as the compiler laid it out.
    #[inline(never)]
    fn watch_rtt(
        &mut self,
        idx: FlowIdx,
        started: bool,
        flow: &mut Flow,
        dir: Dir,
        p: &TcpPacket<'_>,
        ts: Timestamp,
    ) {
        let Some(check) = &self.detector.relay else {
            return;
        };
        let packets = flow.pkts[0] + flow.pkts[1];
        if let Some(f) = self.rtt.packet(check, idx, started, packets, dir, p, ts) {
            let policy = &self.detector.policy;
            self.sink.raise_one(flow, &mut self.findings, f, policy, ts);
        }
    }

    /// [`Core::watch_rtt`] for a packet of the lean path, whose view is made again here: the
    /// lean path keeps only its key, flags and sequence number (a view kept for this rare
    /// call was written to the stack on every packet).
    #[inline(never)]
    fn watch_plain_rtt(&mut self, idx: FlowIdx, flow: &mut Flow, dir: Dir, frame: &Frame<'_>) {
        if let Some(v) = wire::plain_view(frame) {
            self.watch_rtt(idx, false, flow, dir, &v.packet(), frame.ts);
        }
    }

    /// `low_ttl`: the segment's TTL says it expires before the receiver
    /// ([`StreamPolicy::low_ttl`]).
    fn packet(
        &mut self,
        flow: &mut Flow,
        dir: Dir,
        p: &TcpPacket<'_>,
        frame: &Frame<'_>,
        low_ttl: bool,
    ) -> Action {
        match FlowVerdict::from_u8(flow.ext.verdict) {
            FlowVerdict::Blocked => return self.drop_packet(flow, dir, p, frame),
            FlowVerdict::Inspecting => {}
            _ => {
                self.sink.counters.fast_path += 1;
                self.sink.counters.forwarded += 1;
                if flow.bypassed && frame.ts.since(flow.ext.bypass_at) >= BYPASS_RENEW_NS {
                    self.sink.counters.bypass_renewed += 1;
                    self.hand_to_kernel(flow, frame.ts);
                }
                if (flow.pkts[0] + flow.pkts[1]) & (PERIODIC_PACKETS - 1) == 0 {
                    self.periodic(flow, frame.ts);
                    if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
                        self.sink.counters.forwarded -= 1;
                        return self.drop_packet(flow, dir, p, frame);
                    }
                }
                return Action::Forward;
            }
        }
        // Whatever this packet moves (window, TTL floor, stream), the lean path's wait was
        // read before it: `inspect` sets it again when the packet leaves the flow waiting.
        if let Some(st) = slot_of(flow).and_then(|s| self.pool.states.get_mut(s as usize)) {
            st.one_way = OneWayWait::default();
        }
        self.track_window(flow, dir, p, frame);
        if !p.payload.is_empty() {
            self.sink.counters.inspected += 1;
            if low_ttl {
                let d = dir.index();
                let skipped = &mut flow.ext.ttl_skipped[d];
                *skipped = if *skipped == 0 {
                    p.ttl
                } else {
                    (*skipped).min(p.ttl)
                };
            } else {
                self.inspect(flow, dir, p, frame);
            }
        }
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
            return self.drop_packet(flow, dir, p, frame);
        }
        self.sink.counters.forwarded += 1;
        Action::Forward
    }

    /// Whether a RST from `dir` lies away from where that direction's stream is, as far as the
    /// inspection slot knows it (RFC 5961: only a RST at the receiver's next sequence number
    /// resets; one inside the window draws a challenge ACK). Without a slot, or before the
    /// direction sent anything, the RST is taken at its word.
    fn rst_out_of_window(&self, flow: &Flow, dir: Dir, seq: u32) -> bool {
        let Some(state) = slot_of(flow).and_then(|s| self.pool.states.get(s as usize)) else {
            return false;
        };
        match state.stream[dir.index()].next_seq() {
            // After a FIN the sender's next sequence number is one further.
            Some(next) => seq != next && seq != next.wrapping_add(1),
            None => false,
        }
    }

    /// Learns, from a segment of an inspected flow, what its receiver accepts: the window the
    /// segment advertises for the other direction's data (its acknowledgement plus the largest
    /// scaled window so far) and the window scale a SYN offers. An acknowledgement past the
    /// bytes inspected, in a direction where segments were left out for their TTL, says those
    /// segments did reach the receiver (the TTL floor was a lie, e.g. a SYN sent with a
    /// higher TTL than the data): the receiver read bytes the inspector never saw, which is
    /// raised as a stream conflict.
    fn track_window(&mut self, flow: &mut Flow, dir: Dir, p: &TcpPacket<'_>, frame: &Frame<'_>) {
        let d = dir.index();
        if p.flags.syn() {
            flow.ext.wscale[d] = window_scale(p.header).unwrap_or(0);
        }
        if !p.flags.ack() {
            return;
        }
        let o = 1 - d;
        // Windows in SYN segments are never scaled (RFC 7323); unknown scales count as the
        // largest, so the edge is never drawn nearer than it is.
        let shift = match flow.ext.wscale[d] {
            _ if p.flags.syn() => 0,
            u8::MAX => 14,
            s => s.min(14),
        };
        let win = (p.window as u32) << shift;
        let state = slot_of(flow).and_then(|s| self.pool.states.get_mut(s as usize));
        let mut held = None;
        if let Some(st) = state {
            if st.rwin_max[o] == 0 || (p.ack.wrapping_sub(st.rwin_ack[o]) as i32) > 0 {
                st.rwin_ack[o] = p.ack;
            }
            st.rwin_max[o] = st.rwin_max[o].max(win);
            held = st.stream[o].next_seq();
        }
        if flow.ext.ttl_skipped[o] == 0 {
            return;
        }
        // Where the inspected stream ends; with nothing inspected yet, right after the SYN.
        let isn = flow.isn_known[o].then(|| flow.isn[o].wrapping_add(1));
        let Some(next) = held.or(isn) else {
            return;
        };
        // A FIN takes a sequence number of its own.
        let next = next.wrapping_add(flow.fin[o] as u32);
        if (p.ack.wrapping_sub(next) as i32) <= 0 {
            return;
        }
        let mut evidence = Evidence::default();
        evidence.add("reason", "acknowledged_below_ttl_floor");
        evidence.add("ttl_floor", flow.ext.ttl_floor[o]);
        evidence.add("ttl", flow.ext.ttl_skipped[o]);
        // From here the lower TTL is known to reach: take it as the floor.
        flow.ext.ttl_floor[o] = flow.ext.ttl_skipped[o];
        flow.ext.ttl_skipped[o] = 0;
        let finding = Finding {
            kind: FindingKind::TcpOverlapConflict,
            confidence: 85,
            block: self.stream_policy.block_conflict,
            dir: if o == 0 { Dir::ToServer } else { Dir::ToClient },
            evidence,
        };
        self.sink.raise_one(
            flow,
            &mut self.findings,
            finding,
            &self.detector.policy,
            frame.ts,
        );
    }

    fn drop_packet(
        &mut self,
        flow: &mut Flow,
        dir: Dir,
        p: &TcpPacket<'_>,
        frame: &Frame<'_>,
    ) -> Action {
        self.sink.counters.dropped += 1;
        flow.ext.dropped = flow.ext.dropped.saturating_add(1);
        if flow.ext.dropped == 1 {
            let rec = DropRecord {
                ts: frame.ts,
                meta: flow_meta(flow),
                dir,
                len: frame.wire_len,
                seq: p.seq,
                ack: p.ack,
                flags: p.flags,
                pcap_cnt: self.sink.pcap_cnt(),
            };
            self.sink.send(EveRecord::Drop(rec));
        }
        Action::Drop
    }

    /// Checks that watch long flows after inspection (byte ratios) get a look now and then.
    fn periodic(&mut self, flow: &mut Flow, ts: Timestamp) {
        let base = flow_base(flow);
        let view = base.view(decided_idents(flow), None, None, ts);
        let mut report = FlowReport {
            detector: &self.detector,
            findings: &mut self.findings,
            sink: &mut self.sink,
            servers: &mut self.servers,
            flow,
            ts,
        };
        report.event(&view, &Event::Periodic);
    }

    /// Feeds a data segment to the flow's stream and inspects whatever became readable.
    fn inspect(&mut self, flow: &mut Flow, dir: Dir, p: &TcpPacket<'_>, frame: &Frame<'_>) {
        let d = dir.index();
        let seq = if p.flags.syn() {
            p.seq.wrapping_add(1)
        } else {
            p.seq
        };
        // A segment the receiver drops must not change what is inspected: otherwise a
        // bad-checksum copy shows the inspector one stream and the receiver another. A
        // segment wholly past the depth changes nothing inspected, so its checksum is not
        // read (it is counted beyond the depth, whatever its checksum).
        let past_depth = slot_of(flow)
            .and_then(|slot| self.pool.states.get(slot as usize))
            .is_some_and(|st| st.stream[d].past_depth(seq, self.pool.streams.depth()));
        if !past_depth
            && self.stream_policy.verify_checksums
            && wire::tcp_checksum_ok(p) == Some(false)
        {
            self.sink.counters.stream_bad_checksum += 1;
            return;
        }
        let Some(slot) = self.slot_for(flow) else {
            return;
        };
        let Core {
            pool,
            detector,
            findings,
            scratch,
            sink,
            inspect,
            servers,
            stream_policy,
            ..
        } = self;
        let InspectPool { streams, states } = pool;
        let Some(state) = state_mut(states, slot) else {
            return;
        };
        // Data starting at or past the right edge of the receiver's window is dropped by the
        // receiver (RFC 9293 3.10.7.4), so it is not inspected either.
        if state.rwin_max[d] != 0 {
            let edge = state.rwin_ack[d].wrapping_add(state.rwin_max[d]);
            if (seq.wrapping_sub(edge) as i32) >= 0 {
                sink.counters.stream_out_of_window += 1;
                return;
            }
        }
        // Data on a SYN (TCP Fast Open) starts after the SYN's own sequence number (`seq`).
        let out = state.stream[d].insert_with(
            streams.window_mut(slot, d),
            seq,
            p.payload,
            stream_policy.overlap,
        );
        let c = &mut sink.counters;
        c.stream_retransmissions += out.retransmission as u64;
        c.stream_out_of_order += out.out_of_order as u64;
        c.stream_beyond_depth += out.beyond_depth as u64;
        c.stream_too_many_gaps += out.too_many_gaps as u64;
        c.stream_out_of_window += out.out_of_window as u64;
        if out.conflicting_overlap {
            c.stream_conflicting_overlaps += 1;
            let rec = AnomalyRecord {
                ts: frame.ts,
                meta: flow_meta(flow),
                dir,
                layer: "stream",
                event: "stream.reassembly_overlap_different_data",
                pcap_cnt: sink.pcap_cnt(),
            };
            sink.send(EveRecord::Anomaly(rec));
            // Once per flow (alerts are once per kind): the receiver may keep either copy, so
            // what was inspected may not be what it reads.
            let mut evidence = Evidence::default();
            evidence.add("seq", seq);
            evidence.add("len", p.payload.len());
            evidence.add("policy", stream_policy.overlap_name());
            let finding = Finding {
                kind: FindingKind::TcpOverlapConflict,
                confidence: 85,
                block: stream_policy.block_conflict,
                dir,
                evidence,
            };
            sink.raise_one(flow, findings, finding, &detector.policy, frame.ts);
        }
        if out.advanced {
            let base = flow_base(flow);
            let mismatch_before = mismatch(&state.ident);
            let mut report = FlowReport {
                detector,
                findings,
                sink,
                servers,
                flow,
                ts: frame.ts,
            };
            state.advance(
                dir,
                streams.window(slot, d),
                streams.window(slot, 1 - d),
                &base,
                frame.ts,
                inspect,
                scratch,
                &mut report,
            );
            if !mismatch_before && mismatch(&state.ident) {
                // Suricata's name for the same observation, so existing hunts find it.
                let rec = AnomalyRecord {
                    ts: frame.ts,
                    meta: flow_meta(flow),
                    dir,
                    layer: "proto_detect",
                    event: "applayer_mismatch_protocol_both_directions",
                    pcap_cnt: sink.pcap_cnt(),
                };
                sink.send(EveRecord::Anomaly(rec));
            }
        }
        let depth = streams.depth();
        let done = state.done(depth) || state.stream.iter().all(|s| s.depth_reached(depth));
        let one_way = !done
            && self.one_way_ns != 0
            && flow.pkts[1 - d] == 0
            // Past the depth: the window is full, or the sender is beyond it while a hole
            // (a segment the capture lost) holds the in-order part back.
            && (state.stream[d].depth_reached(depth) || out.beyond_depth)
            && frame.ts.since(flow.first_ts) >= self.one_way_ns;
        if one_way {
            self.conclude_one_way(flow, slot, frame.ts);
        } else if !done
            && self.one_way_ns != 0
            && flow.pkts[1 - d] == 0
            && p.flags.ack()
            && (state.stream[d].depth_reached(depth) || out.beyond_depth)
        {
            // Waiting for `one_way_ns`: until then the lean path counts this direction's
            // segments past the depth (`Engine::one_way_waiting`).
            state.one_way = OneWayWait {
                talker: d as u8 + 1,
                ack: p.ack,
                window: p.window,
            };
        }
        if done || one_way || FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
            self.finish_inspection(flow);
        }
    }

    /// A flow only one side of which ever spoke, and that side past the stream depth: nothing
    /// more would be inspected until the other side speaks, which a SPAN of one direction or a
    /// one-way sender never does. Directions still undecided are judged on what they sent, as
    /// at the flow's end, so the flow can be settled (and bypassed) now.
    fn conclude_one_way(&mut self, flow: &mut Flow, slot: u32, ts: Timestamp) {
        self.sink.counters.flows_one_way += 1;
        let base = flow_base(flow);
        let Some(state) = self.pool.states.get_mut(slot as usize) else {
            return;
        };
        let windows = [
            self.pool.streams.window(slot, 0),
            self.pool.streams.window(slot, 1),
        ];
        let mut report = FlowReport {
            detector: &self.detector,
            findings: &mut self.findings,
            sink: &mut self.sink,
            servers: &mut self.servers,
            flow,
            ts,
        };
        state.conclude(windows, &base, ts, &self.inspect, &mut report);
    }

    /// The flow's inspection slot, allocating one on its first data.
    fn slot_for(&mut self, flow: &mut Flow) -> Option<u32> {
        if let Some(slot) = slot_of(flow) {
            return Some(slot);
        }
        let Some(slot) = self.pool.streams.alloc() else {
            self.sink.counters.stream_memcap_refused += 1;
            flow.ext.verdict = FlowVerdict::Uninspected as u8;
            self.maybe_bypass(flow);
            return None;
        };
        let isn = [0, 1].map(|d| flow.isn_known[d].then_some(flow.isn[d]));
        match self.pool.state_mut(slot) {
            Some(s) => *s = InspectState::new(isn),
            None => {
                self.pool.streams.free(slot);
                return None;
            }
        }
        flow.ext.inspect = slot;
        Some(slot)
    }

    fn finish_inspection(&mut self, flow: &mut Flow) {
        if let Some(slot) = slot_of(flow) {
            if let Some(state) = self.pool.states.get_mut(slot as usize) {
                let base = flow_base(flow);
                let mut report = FlowReport {
                    detector: &self.detector,
                    findings: &mut self.findings,
                    sink: &mut self.sink,
                    servers: &mut self.servers,
                    flow,
                    ts: self.clock,
                };
                if state.tls.active && !state.tls.handshake_done {
                    // Inspection stops (stream depth) before the handshake finished: the
                    // checks still get their end-of-handshake look, which a flow that skips
                    // the handshake never triggers otherwise.
                    state.tls.handshake_done = true;
                    let view = state.view(&base, self.clock);
                    report.event(&view, &Event::TlsHandshakeDone);
                }
                state.log_tls(&mut report);
            }
        }
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Inspecting {
            flow.ext.verdict = if flow.ext.alerted != 0 {
                FlowVerdict::Alerted
            } else {
                FlowVerdict::Clean
            } as u8;
        }
        self.release_slot(flow);
        self.maybe_bypass(flow);
    }

    /// Hands a flow whose inspection is over to the kernel, if the bypass policy takes its
    /// verdict.
    fn maybe_bypass(&mut self, flow: &mut Flow) {
        if flow.bypassed || !self.bypass.takes(FlowVerdict::from_u8(flow.ext.verdict)) {
            return;
        }
        self.sink.counters.flows_bypassed += 1;
        self.hand_to_kernel(flow, self.clock);
    }

    /// Queues the bypass entry. A fresh entry counts from zero, so the read-back starts over.
    fn hand_to_kernel(&mut self, flow: &mut Flow, ts: Timestamp) {
        if !self.sink.commands.push(FlowCommand::Bypass {
            key: flow.key,
            at: ts,
        }) {
            // The worker keeps forwarding it itself; the next packet tries again.
            self.sink.counters.commands_dropped += 1;
            return;
        }
        flow.ext.bypass_at = ts;
        flow.ext.kernel_read_pkts = [0; 2];
        flow.ext.kernel_read_bytes = [0; 2];
        if !flow.bypassed {
            flow.bypassed = true;
            self.refile = true;
        }
    }

    /// Adds what the kernel forwarded since the last read to the flow's counters.
    fn merge_kernel(&mut self, flow: &mut Flow, k: &KernelFlow) {
        for (i, side) in [Side::Lo, Side::Hi].into_iter().enumerate() {
            let d = flow.dir_of(side).index();
            let ext = &mut flow.ext;
            let pkts = k.pkts[i].saturating_sub(ext.kernel_read_pkts[i]);
            let bytes = k.bytes[i].saturating_sub(ext.kernel_read_bytes[i]);
            ext.kernel_read_pkts[i] = ext.kernel_read_pkts[i].max(k.pkts[i]);
            ext.kernel_read_bytes[i] = ext.kernel_read_bytes[i].max(k.bytes[i]);
            ext.kernel_pkts[d] = ext.kernel_pkts[d].saturating_add(pkts);
            ext.kernel_bytes[d] = ext.kernel_bytes[d].saturating_add(bytes);
            flow.pkts[d] = flow.pkts[d].saturating_add(pkts);
            flow.bytes[d] = flow.bytes[d].saturating_add(bytes);
            self.sink.counters.bypass_kernel_packets += pkts;
        }
        if let Some(idle) = k.idle_ns {
            let seen = Timestamp(self.clock.0.saturating_sub(idle));
            if seen > flow.last_ts {
                flow.last_ts = seen;
            }
        }
        if k.closed() && !matches!(flow.state, TcpState::Closed | TcpState::Reset) {
            // The close went by the kernel; the record says how the connection ended.
            flow.state = if k.reset() {
                TcpState::Reset
            } else {
                TcpState::Closed
            };
        }
    }

    /// A bypassed flow went unchecked for the bypassed timeout: bring its counters up to date
    /// from the kernel, give the byte-ratio checks their look, and say whether it lives on.
    fn recheck_bypassed(&mut self, flow: &mut Flow, ctl: &mut dyn FlowControl) -> Recheck {
        self.sink.counters.bypass_rechecks += 1;
        let Some(k) = ctl.kernel_flow(&flow.key) else {
            // No entry, and no packet reached the worker since (that would have touched the
            // flow): nothing has carried it for a whole period.
            return Recheck::End(EndReason::Timeout);
        };
        self.merge_kernel(flow, &k);
        if k.closed() {
            return Recheck::End(EndReason::Closed);
        }
        let idle = k
            .idle_ns
            .unwrap_or_else(|| self.clock.since(flow.ext.bypass_at));
        if idle > self.established_timeout_ns {
            return Recheck::End(EndReason::Timeout);
        }
        let clock = self.clock;
        self.periodic(flow, clock);
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
            // The block command replaces the bypass entry; the flow is the worker's again.
            flow.bypassed = false;
        }
        Recheck::Alive
    }

    fn release_slot(&mut self, flow: &mut Flow) {
        if let Some(slot) = slot_of(flow) {
            self.pool.streams.free(slot);
            flow.ext.inspect = NO_SLOT;
        }
    }

    /// Called by the flow table just before a flow leaves it.
    fn end_flow(&mut self, flow: &mut Flow, reason: EndReason) {
        let clock = if flow.last_ts > self.clock {
            flow.last_ts
        } else {
            self.clock
        };
        let base = flow_base(flow);
        let state = slot_of(flow).and_then(|s| self.pool.states.get_mut(s as usize));
        {
            let mut report = FlowReport {
                detector: &self.detector,
                findings: &mut self.findings,
                sink: &mut self.sink,
                servers: &mut self.servers,
                flow,
                ts: clock,
            };
            match state {
                Some(state) => {
                    // Directions still undecided are judged on what they sent: a short flow
                    // ends before its probes had enough bytes to be sure.
                    let windows = [
                        self.pool
                            .streams
                            .window(slot_of(report.flow).unwrap_or(0), 0),
                        self.pool
                            .streams
                            .window(slot_of(report.flow).unwrap_or(0), 1),
                    ];
                    state.conclude(windows, &base, clock, &self.inspect, &mut report);
                    let view = state.view(&base, clock);
                    report.event(&view, &Event::FlowEnd);
                    state.log_tls(&mut report);
                }
                None => {
                    let idents = decided_idents(report.flow);
                    let view = base.view(idents, None, None, clock);
                    report.event(&view, &Event::FlowEnd);
                }
            }
        }
        self.release_slot(flow);
        let verdict = FlowVerdict::from_u8(flow.ext.verdict);
        if verdict == FlowVerdict::Blocked || flow.bypassed {
            // The kernel entry would otherwise linger until LRU pressure pushes it out.
            if !self
                .sink
                .commands
                .push(FlowCommand::Forget { key: flow.key })
            {
                self.sink.counters.commands_dropped += 1;
            }
        }
        let meta = flow_meta(flow);
        let c = &mut self.sink.counters;
        c.flows_ended += 1;
        c.flows_by_app[meta.app_proto.index()] += 1;
        if self.flow_records {
            let rec = FlowRecord {
                meta,
                start: flow.first_ts,
                end: flow.last_ts,
                pkts: flow.pkts,
                bytes: flow.bytes,
                state: flow.state.eve_name(),
                reason: reason.eve_name(),
                alerted: flow.ext.alerted != 0,
                recorded: flow.ext.recorded,
                blocked: verdict == FlowVerdict::Blocked,
                uninspected: (verdict == FlowVerdict::Uninspected).then_some("stream_memcap"),
                ident_bytes: flow.ext.ident_bytes,
                bypassed: (flow.ext.bypass_at != Timestamp(0)).then_some(KernelShare {
                    pkts: flow.ext.kernel_pkts,
                    bytes: flow.ext.kernel_bytes,
                }),
            };
            self.sink.send(EveRecord::Flow(rec));
        }
    }
}

fn mismatch(ident: &[DirIdent; 2]) -> bool {
    ident.iter().all(DirIdent::is_final) && proto::resolve(ident[0].probe, ident[1].probe).mismatch
}

/// Identification results kept on the flow after its inspection state is gone.
fn decided_idents(flow: &Flow) -> [DirIdent; 2] {
    [0, 1].map(|d| DirIdent {
        probe: match AppProto::from_u8(flow.ext.app[d]) {
            AppProto::Unknown => Probe::NoMatch,
            p => Probe::Match(p, flow.ext.app_confidence[d]),
        },
        ..DirIdent::default()
    })
}

fn ip(family: crate::wire::Family, addr: [u8; 16]) -> IpAddr {
    match family {
        crate::wire::Family::V4 => IpAddr::from([addr[0], addr[1], addr[2], addr[3]]),
        crate::wire::Family::V6 => IpAddr::from(addr),
    }
}

fn flow_base(flow: &Flow) -> FlowBase {
    let m = flow_meta(flow);
    FlowBase {
        client_addr: ip(m.family, m.client_addr),
        server_addr: ip(m.family, m.server_addr),
        client_port: m.client_port,
        server_port: m.server_port,
        pkts: flow.pkts,
        bytes: flow.bytes,
        seen_from_start: flow.isn_known,
        first_ts: flow.first_ts,
    }
}

/// The flow's endpoints by role and what it carries, for EVE.
pub fn flow_meta(flow: &Flow) -> FlowMeta {
    let k = &flow.key;
    let (client_addr, client_port, server_addr, server_port) = match flow.client {
        Side::Lo => (k.lo_addr, k.lo_port, k.hi_addr, k.hi_port),
        Side::Hi => (k.hi_addr, k.hi_port, k.lo_addr, k.lo_port),
    };
    let probe = |d: usize| match AppProto::from_u8(flow.ext.app[d]) {
        AppProto::Unknown => Probe::NoMatch,
        p => Probe::Match(p, flow.ext.app_confidence[d]),
    };
    let ident = proto::resolve(probe(0), probe(1));
    FlowMeta {
        flow_id: flow.flow_id,
        family: k.family(),
        client_addr,
        client_port,
        server_addr,
        server_port,
        app_proto: ident.app_proto,
        app_ts: ident.app_proto_ts,
        app_tc: ident.app_proto_tc,
        tunnels: Tunnels {
            kinds: flow.ext.tunnels,
            depth: flow.ext.tunnel_depth,
        },
    }
}

/// The window scale a SYN's TCP options offer (RFC 7323 option 3), if any. Malformed options
/// end the search.
fn window_scale(header: &[u8]) -> Option<u8> {
    let mut opts = header.get(20..)?;
    while let Some(&kind) = opts.first() {
        match kind {
            0 => return None,
            1 => opts = &opts[1..],
            _ => {
                let len = *opts.get(1)? as usize;
                if len < 2 {
                    return None;
                }
                if kind == 3 && len == 3 {
                    return opts.get(2).copied();
                }
                opts = opts.get(len..)?;
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every number in `v` replaced by `f(position)`.
    fn renumber(v: &mut serde_json::Value, next: &mut u64) {
        match v {
            serde_json::Value::Number(_) => {
                *next += 1;
                *v = (*next).into();
            }
            serde_json::Value::Array(a) => a.iter_mut().for_each(|x| renumber(x, next)),
            serde_json::Value::Object(o) => o.values_mut().for_each(|x| renumber(x, next)),
            _ => {}
        }
    }

    #[test]
    fn adding_counters_sums_every_field() {
        let mut v = serde_json::to_value(Counters::default()).unwrap();
        renumber(&mut v, &mut 0);
        let a: Counters = serde_json::from_value(v.clone()).unwrap();
        let mut sum = a.clone();
        sum += &a;
        let mut doubled = v;
        fn double(v: &mut serde_json::Value) {
            match v {
                serde_json::Value::Number(n) => *v = (n.as_u64().unwrap() * 2).into(),
                serde_json::Value::Array(a) => a.iter_mut().for_each(double),
                serde_json::Value::Object(o) => o.values_mut().for_each(double),
                _ => {}
            }
        }
        double(&mut doubled);
        assert_eq!(serde_json::to_value(&sum).unwrap(), doubled);
    }

    #[test]
    fn window_scale_is_read_from_syn_options_and_malformed_options_give_none() {
        let header = |opts: &[u8]| {
            let mut h = vec![0u8; 20];
            h.extend_from_slice(opts);
            h
        };
        // MSS, SACK permitted, timestamps, NOP, window scale 7 (Linux's SYN).
        let linux = header(&[
            2, 4, 5, 180, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
        ]);
        assert_eq!(window_scale(&linux), Some(7));
        assert_eq!(window_scale(&header(&[2, 4, 5, 180])), None);
        assert_eq!(
            window_scale(&header(&[0, 3, 3, 7])),
            None,
            "after end of list"
        );
        assert_eq!(
            window_scale(&header(&[8, 1, 3, 3, 7])),
            None,
            "length below 2"
        );
        assert_eq!(
            window_scale(&header(&[8, 40, 3, 3, 7])),
            None,
            "runs past the end"
        );
        assert_eq!(window_scale(&header(&[3, 3])), None, "cut short");
        assert_eq!(window_scale(&[0u8; 10]), None, "no full header");
    }
}
