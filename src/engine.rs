//! The per-worker engine: frame → wire → flow → stream → proto → detect → verdict.
//!
//! One engine per worker, owning its flow table, stream windows and counters outright: nothing
//! here is shared or locked. It does no I/O of its own except handing fixed-size EVE records to
//! the writer thread's channel (never blocking) and queueing flow commands for the datapath.

use crossbeam_channel::{Sender, TrySendError};

use crate::alert::{
    AlertAction, AlertRecord, AnomalyRecord, DropRecord, EveRecord, FlowMeta, FlowRecord,
};
use crate::config::Config;
use crate::detect::{Detector, Event, FindingKind, Findings, FlowView};
use crate::flow::table::TableStats;
use crate::flow::table::{SegmentMeta, Track};
use crate::flow::{Dir, EndReason, Flow, FlowKey, FlowTable, Side, StreamDir, StreamPool};
use crate::proto::{self, AppProto, DirIdent, Probe};
use crate::source::{Action, Frame, Timestamp};
use crate::verdict::{FlowCommand, FlowControl, FlowVerdict, FrameHandler, Mode};
use crate::wire::{self, Malformed, OtherKind, Parsed, TcpPacket, WireAnomalies};

/// `FlowExt::inspect` when the flow has no inspection slot (the table's default).
const NO_SLOT: u32 = u32::MAX;

fn slot_of(flow: &Flow) -> Option<u32> {
    (flow.ext.inspect != NO_SLOT).then_some(flow.ext.inspect)
}

/// Engine settings derived from [`Config`] plus how the engine is being run.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    pub worker: u8,
    /// Record capture packet numbers (`pcap_cnt`) in EVE records: replay only.
    pub packet_numbers: bool,
}

/// Plain per-worker counters. Only this worker writes them; the exporter reads snapshots.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Counters {
    pub packets: u64,
    pub bytes: u64,
    pub tcp: u64,
    pub other: [u64; OtherKind::COUNT],
    pub malformed: [u64; Malformed::COUNT],
    pub bad_tcp_options: u64,
    pub truncated_payload: u64,
    pub forwarded: u64,
    /// Packets dropped because their flow was blocked (the triggering packet included).
    pub dropped: u64,
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
    pub stream_memcap_refused: u64,
    pub findings: [u64; FindingKind::COUNT],
    pub findings_overflow: u64,
    pub eve_dropped: u64,
    pub commands_dropped: u64,
}

/// Inspection state of one flow; lives in the pool, only while the flow is being inspected.
#[derive(Debug, Clone, Copy, Default)]
struct InspectState {
    stream: [StreamDir; 2],
    ident: [DirIdent; 2],
}

/// Stream windows plus the inspection state that goes with each slot.
struct InspectPool {
    streams: StreamPool,
    states: Vec<InspectState>,
}

impl InspectPool {
    fn new(depth: usize, memcap: usize) -> Self {
        let streams = StreamPool::new(depth, memcap);
        let states = vec![InspectState::default(); streams.capacity()];
        InspectPool { streams, states }
    }
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

/// Everything but the flow table, so table callbacks can borrow it while the table is busy.
struct Core {
    opts: EngineOptions,
    mode: Mode,
    flow_records: bool,
    unknown_after: usize,
    pool: InspectPool,
    detector: Detector,
    eve: Option<Sender<EveRecord>>,
    commands: CommandQueue,
    findings: Findings,
    counters: Counters,
    /// Latest packet time seen, or the wall clock when the worker supplies it.
    clock: Timestamp,
}

/// One worker's engine.
pub struct Engine {
    flows: FlowTable,
    core: Core,
}

impl Engine {
    /// Builds an engine. `eve` receives records; `None` discards them (benches).
    pub fn new(config: &Config, opts: EngineOptions, eve: Option<Sender<EveRecord>>) -> Engine {
        let flows = FlowTable::new(config.flow.table(), opts.worker);
        let pool = InspectPool::new(config.stream.depth as usize, config.stream.memcap as usize);
        Engine {
            flows,
            core: Core {
                opts,
                mode: config.verdict.mode,
                flow_records: config.output.flow_records,
                unknown_after: config.proto.unknown_after_bytes as usize,
                pool,
                detector: Detector::new(&config.detect),
                eve,
                commands: CommandQueue::new(),
                findings: Findings::default(),
                counters: Counters::default(),
                clock: Timestamp(0),
            },
        }
    }

    pub fn counters(&self) -> &Counters {
        &self.core.counters
    }

    pub fn table_stats(&self) -> TableStats {
        self.flows.stats()
    }

    pub fn active_flows(&self) -> usize {
        self.flows.len()
    }

    pub fn mode(&self) -> Mode {
        self.core.mode
    }

    /// Stream windows in use right now.
    pub fn streams_in_use(&self) -> usize {
        self.core.pool.streams.in_use()
    }

    fn tcp(&mut self, frame: &Frame<'_>, p: &TcpPacket<'_>) -> Action {
        let (key, side) = FlowKey::from_tcp(p);
        let hash = key.hash64();
        let Engine { flows, core } = self;
        let seg = SegmentMeta {
            side,
            flags: p.flags,
            seq: p.seq,
            bytes: frame.wire_len,
        };
        let (idx, dir) = match flows.track(&key, hash, seg, frame.ts, |f, r| core.end_flow(f, r)) {
            Track::Existing { idx, dir } | Track::Started { idx, dir } => (idx, dir),
            Track::Refused => {
                core.counters.flows_refused_packets += 1;
                core.counters.forwarded += 1;
                return Action::Forward;
            }
        };
        core.packet(flows.get_mut(idx), dir, p, frame)
    }
}

impl FrameHandler for Engine {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        let c = &mut self.core.counters;
        c.packets += 1;
        c.bytes += frame.wire_len as u64;
        if frame.ts > self.core.clock {
            self.core.clock = frame.ts;
        }
        match wire::parse_frame(frame) {
            Parsed::Tcp(p) => {
                c.tcp += 1;
                if p.anomalies.has(WireAnomalies::BAD_TCP_OPTIONS) {
                    c.bad_tcp_options += 1;
                }
                if p.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD) {
                    c.truncated_payload += 1;
                }
                self.tcp(frame, &p)
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

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        if now > self.core.clock {
            self.core.clock = now;
        }
        let Engine { flows, core } = self;
        let clock = core.clock;
        flows.expire(clock, |f, r| core.end_flow(f, r));
        core.commands.drain(ctl);
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.after_batch(now, ctl);
        let Engine { flows, core } = self;
        flows.drain(|f, r| core.end_flow(f, r));
        core.commands.drain(ctl);
    }
}

impl Core {
    fn packet(
        &mut self,
        flow: &mut Flow,
        dir: Dir,
        p: &TcpPacket<'_>,
        frame: &Frame<'_>,
    ) -> Action {
        match FlowVerdict::from_u8(flow.ext.verdict) {
            FlowVerdict::Blocked => return self.drop_packet(flow, dir, p, frame),
            FlowVerdict::Inspecting => {}
            _ => {
                self.counters.fast_path += 1;
                self.counters.forwarded += 1;
                return Action::Forward;
            }
        }
        if !p.payload.is_empty() {
            self.counters.inspected += 1;
            self.inspect(flow, dir, p, frame);
        }
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
            return self.drop_packet(flow, dir, p, frame);
        }
        self.counters.forwarded += 1;
        Action::Forward
    }

    fn drop_packet(
        &mut self,
        flow: &mut Flow,
        dir: Dir,
        p: &TcpPacket<'_>,
        frame: &Frame<'_>,
    ) -> Action {
        self.counters.dropped += 1;
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
                pcap_cnt: self.pcap_cnt(),
            };
            self.send(EveRecord::Drop(rec));
        }
        Action::Drop
    }

    fn pcap_cnt(&self) -> Option<u64> {
        self.opts.packet_numbers.then_some(self.counters.packets)
    }

    /// Feeds a data segment to the flow's stream and inspects whatever became readable.
    fn inspect(&mut self, flow: &mut Flow, dir: Dir, p: &TcpPacket<'_>, frame: &Frame<'_>) {
        let slot = match self.slot_for(flow) {
            Some(s) => s,
            None => return,
        };
        let d = dir.index();
        let Some(state) = self.pool.states.get_mut(slot as usize) else {
            return;
        };
        let window = self.pool.streams.window_mut(slot, d);
        // Data on a SYN (TCP Fast Open) starts after the SYN's own sequence number.
        let seq = if p.flags.syn() {
            p.seq.wrapping_add(1)
        } else {
            p.seq
        };
        let out = state.stream[d].insert(window, seq, p.payload);
        let c = &mut self.counters;
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
                pcap_cnt: self.pcap_cnt(),
            };
            self.send(EveRecord::Anomaly(rec));
        }
        if out.advanced {
            self.identify(flow, slot, dir, frame);
        }
        if self.inspection_done(slot) {
            self.finish_inspection(flow);
        }
    }

    /// The flow's inspection slot, allocating one on its first data.
    fn slot_for(&mut self, flow: &mut Flow) -> Option<u32> {
        if let Some(slot) = slot_of(flow) {
            return Some(slot);
        }
        let Some(slot) = self.pool.streams.alloc() else {
            self.counters.stream_memcap_refused += 1;
            flow.ext.verdict = FlowVerdict::Uninspected as u8;
            return None;
        };
        let mut state = InspectState::default();
        for dir in [Dir::ToServer, Dir::ToClient] {
            let d = dir.index();
            if flow.isn_known[d] {
                state.stream[d].set_isn(flow.isn[d]);
            }
        }
        match self.pool.states.get_mut(slot as usize) {
            Some(s) => *s = state,
            None => {
                self.pool.streams.free(slot);
                return None;
            }
        }
        flow.ext.inspect = slot;
        Some(slot)
    }

    fn identify(&mut self, flow: &mut Flow, slot: u32, dir: Dir, frame: &Frame<'_>) {
        let d = dir.index();
        let Some(state) = self.pool.states.get_mut(slot as usize) else {
            return;
        };
        if state.ident[d].is_final() {
            return;
        }
        let readable = state.stream[d].readable();
        let window = self.pool.streams.window(slot, d);
        let data = &window[..readable.min(window.len())];
        let ident = proto::identify_dir(data, dir, self.unknown_after, false);
        state.ident[d] = ident;
        if !ident.is_final() {
            return;
        }
        flow.ext.app[d] = ident.proto() as u8;
        flow.ext.app_confidence[d] = ident.confidence();
        let idents = state.ident;
        let view = FlowView {
            server_port: server_port(flow),
            client_port: client_port(flow),
            ident: idents,
            now: frame.ts,
        };
        self.findings.clear();
        self.detector
            .on_event(&view, Event::Identified(dir), &mut self.findings);
        self.raise(flow, frame.ts);
        if idents.iter().all(DirIdent::is_final)
            && proto::resolve(idents[0].probe, idents[1].probe).mismatch
        {
            // Suricata's name for the same observation, so existing hunts find it.
            let rec = AnomalyRecord {
                ts: frame.ts,
                meta: flow_meta(flow),
                dir,
                layer: "proto_detect",
                event: "applayer_mismatch_protocol_both_directions",
                pcap_cnt: self.pcap_cnt(),
            };
            self.send(EveRecord::Anomaly(rec));
        }
    }

    /// Turns the findings just collected into alerts and, in block mode, a block verdict.
    fn raise(&mut self, flow: &mut Flow, ts: Timestamp) {
        self.counters.findings_overflow += self.findings.overflow as u64;
        let mut findings = std::mem::take(&mut self.findings);
        for f in findings.iter() {
            let bit = 1u64 << f.kind.index();
            if flow.ext.alerted & bit != 0 {
                continue;
            }
            flow.ext.alerted |= bit;
            self.counters.findings[f.kind.index()] += 1;
            let block = self.mode == Mode::Block && f.block;
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
            let rec = AlertRecord {
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
            self.send(EveRecord::Alert(Box::new(rec)));
        }
        findings.clear();
        self.findings = findings;
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Blocked {
            self.release_slot(flow);
        }
    }

    /// Inspection is over once both directions are identified (protocol parsers extend this).
    fn inspection_done(&self, slot: u32) -> bool {
        self.pool
            .states
            .get(slot as usize)
            .is_some_and(|s| s.ident.iter().all(DirIdent::is_final))
    }

    fn finish_inspection(&mut self, flow: &mut Flow) {
        if FlowVerdict::from_u8(flow.ext.verdict) == FlowVerdict::Inspecting {
            flow.ext.verdict = if flow.ext.alerted != 0 {
                FlowVerdict::Alerted
            } else {
                FlowVerdict::Clean
            } as u8;
        }
        self.release_slot(flow);
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
        let state = slot_of(flow).and_then(|s| self.pool.states.get(s as usize).copied());
        if let Some(state) = state {
            {
                let view = FlowView {
                    server_port: server_port(flow),
                    client_port: client_port(flow),
                    ident: state.ident,
                    now: clock,
                };
                self.findings.clear();
                self.detector
                    .on_event(&view, Event::FlowEnd, &mut self.findings);
                self.raise(flow, flow.last_ts);
            }
        }
        let inspected_bytes = match state {
            Some(s) => [s.stream[0].readable() as u32, s.stream[1].readable() as u32],
            None => [0, 0],
        };
        self.release_slot(flow);
        let verdict = FlowVerdict::from_u8(flow.ext.verdict);
        if verdict == FlowVerdict::Blocked {
            // The kernel entry would otherwise linger until LRU pressure pushes it out.
            if !self.commands.push(FlowCommand::Forget { key: flow.key }) {
                self.counters.commands_dropped += 1;
            }
        }
        let meta = flow_meta(flow);
        self.counters.flows_ended += 1;
        self.counters.flows_by_app[meta.app_proto.index()] += 1;
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
                blocked: verdict == FlowVerdict::Blocked,
                uninspected: (verdict == FlowVerdict::Uninspected).then_some("stream_memcap"),
                inspected_bytes,
            };
            self.send(EveRecord::Flow(rec));
        }
    }

    fn send(&mut self, rec: EveRecord) {
        if let Some(tx) = &self.eve {
            match tx.try_send(rec) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
                    self.counters.eve_dropped += 1
                }
            }
        }
    }
}

fn client_port(flow: &Flow) -> u16 {
    match flow.client {
        Side::Lo => flow.key.lo_port,
        Side::Hi => flow.key.hi_port,
    }
}

fn server_port(flow: &Flow) -> u16 {
    match flow.client {
        Side::Lo => flow.key.hi_port,
        Side::Hi => flow.key.lo_port,
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
    }
}
