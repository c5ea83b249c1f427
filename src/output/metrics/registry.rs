//! The exporter's side: running totals per worker, readiness, the live hook, and the metric
//! families built from them at each scrape (a `prometheus` [`Collector`]).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use prometheus::core::{Collector, Desc};
use prometheus::proto::{self, MetricFamily, MetricType};

use crate::config::Config;
use crate::detect::FindingKind;
use crate::output::eve::EveCounters;
use crate::proto::tls::TlsAnomaly;
use crate::proto::AppProto;
use crate::verdict::Mode;
use crate::wire::{Malformed, OtherKind};

use super::live::{LiveSnapshot, LiveSource, PacketsBytes};
use super::publish::{EngineView, LoopCounts, Slot, Snapshot, WorkerProbe};
use super::timing::{Histo, Timing, TimingSummary, PERCENTILES};

/// How the process runs, for `unmask_build_info{mode}` and readiness wording.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunMode {
    Replay,
    Live,
}

impl RunMode {
    pub fn name(self) -> &'static str {
        match self {
            RunMode::Replay => "replay",
            RunMode::Live => "live",
        }
    }
}

#[derive(Debug, Clone)]
pub struct HubOptions {
    pub mode: RunMode,
    pub verdict: Mode,
    /// Bytes per direction of a stream window (`stream.depth`), to report window memory.
    pub stream_depth: u32,
    pub publish_interval: Duration,
    pub sample_every: u32,
}

impl HubOptions {
    pub fn from_config(config: &Config, mode: RunMode) -> HubOptions {
        HubOptions {
            mode,
            verdict: config.verdict.mode,
            stream_depth: config.stream.depth,
            publish_interval: Duration::from_millis(config.metrics.publish_interval_ms as u64),
            sample_every: config.metrics.latency_sample_every,
        }
    }
}

/// What the exporter has folded together for one worker.
#[derive(Debug, Clone, Default)]
pub struct WorkerTotals {
    pub worker: usize,
    /// At least one snapshot arrived.
    pub seen: bool,
    pub finished: bool,
    pub view: EngineView,
    pub loops: LoopCounts,
    /// Cumulative since the worker started.
    pub timing: Timing,
}

impl WorkerTotals {
    fn apply(&mut self, snap: &Snapshot) {
        self.seen = true;
        self.finished = snap.finished;
        self.view.clone_from(&snap.view);
        self.loops = snap.loops;
        self.timing.add(&snap.timing);
    }
}

struct State {
    slots: Vec<Arc<Slot>>,
    totals: Vec<WorkerTotals>,
}

/// The meeting point of workers, runtime and exporter. Share it as `Arc<Hub>`.
pub struct Hub {
    opts: HubOptions,
    epoch: Instant,
    start_unix: f64,
    state: Mutex<State>,
    source_ready: AtomicBool,
    live: Mutex<Option<Box<dyn LiveSource>>>,
    eve: Mutex<Option<Arc<EveCounters>>>,
    config_reloads: AtomicU64,
    /// The verdict mode in force: a reload may change it.
    block_mode: AtomicBool,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("opts", &self.opts).finish()
    }
}

/// A worker that has not published for this long is not "polling" any more.
const STALL_MIN: Duration = Duration::from_secs(2);

impl Hub {
    pub fn new(opts: HubOptions) -> Arc<Hub> {
        let start_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs_f64();
        let block_mode = AtomicBool::new(opts.verdict == Mode::Block);
        Arc::new(Hub {
            opts,
            epoch: Instant::now(),
            start_unix,
            state: Mutex::new(State {
                slots: Vec::new(),
                totals: Vec::new(),
            }),
            source_ready: AtomicBool::new(false),
            live: Mutex::new(None),
            eve: Mutex::new(None),
            config_reloads: AtomicU64::new(0),
            block_mode,
        })
    }

    pub fn options(&self) -> &HubOptions {
        &self.opts
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves plain numbers behind: keep serving.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers worker `worker` (a unique index) and returns its end of the channel. Call on
    /// the control path, before the worker runs: the snapshot boxes are allocated here.
    pub fn register_worker(&self, worker: usize) -> WorkerProbe {
        let slot = Arc::new(Slot::new(worker));
        let mut st = self.lock();
        st.slots.push(Arc::clone(&slot));
        st.totals.push(WorkerTotals {
            worker,
            ..WorkerTotals::default()
        });
        drop(st);
        WorkerProbe::new(
            slot,
            self.epoch,
            self.opts.publish_interval,
            self.opts.sample_every,
        )
    }

    /// The packet source is there: captures open (replay), program attached (live).
    pub fn set_source_ready(&self, ready: bool) {
        self.source_ready.store(ready, Ordering::Relaxed);
    }

    /// The live datapath's counters, read at each scrape. See [`super::live`].
    pub fn set_live_source(&self, source: Box<dyn LiveSource>) {
        *self.live.lock().unwrap_or_else(|e| e.into_inner()) = Some(source);
    }

    /// The EVE writer's counts of records written.
    pub fn set_eve_counters(&self, counters: Arc<EveCounters>) {
        *self.eve.lock().unwrap_or_else(|e| e.into_inner()) = Some(counters);
    }

    /// A reload was applied, with this verdict mode in force from now on.
    pub fn count_config_reload(&self, verdict: Mode) {
        self.config_reloads.fetch_add(1, Ordering::Relaxed);
        self.block_mode
            .store(verdict == Mode::Block, Ordering::Relaxed);
    }

    /// Folds every snapshot the workers have sent into the totals and returns the boxes.
    pub fn collect(&self) -> Vec<WorkerTotals> {
        let mut st = self.lock();
        let State { slots, totals } = &mut *st;
        for (slot, total) in slots.iter().zip(totals.iter_mut()) {
            while let Ok(mut b) = slot.full_rx.try_recv() {
                total.apply(&b);
                b.timing.reset();
                // Capacity equals the number of boxes: the return cannot find it full.
                let _ = slot.empty_tx.try_send(b);
            }
        }
        totals.clone()
    }

    /// Timing over every worker since the start, for the replay summary.
    pub fn timing_summary(&self) -> TimingSummary {
        let mut all = Timing::default();
        for t in self.collect() {
            all.add(&t.timing);
        }
        all.summary(self.opts.sample_every)
    }

    /// `Ok` when ready to judge traffic, else why not.
    pub fn readiness(&self) -> Result<(), String> {
        if !self.source_ready.load(Ordering::Relaxed) {
            return Err(match self.opts.mode {
                RunMode::Replay => "not reading captures".into(),
                RunMode::Live => "XDP program not attached".into(),
            });
        }
        let st = self.lock();
        if st.slots.is_empty() {
            return Err("no worker registered".into());
        }
        let stall = STALL_MIN.max(self.opts.publish_interval * 20);
        let now_ms = self.epoch.elapsed().as_millis() as u64;
        for slot in &st.slots {
            if !slot.polling.load(Ordering::Relaxed) {
                return Err(format!("worker {} not polling", slot.worker));
            }
            let beat = slot.heartbeat_ms.load(Ordering::Relaxed);
            if now_ms.saturating_sub(beat) > stall.as_millis() as u64 {
                return Err(format!(
                    "worker {} has not published for {} ms",
                    slot.worker,
                    now_ms.saturating_sub(beat)
                ));
            }
        }
        Ok(())
    }

    /// Every metric family, as of now.
    pub fn families(&self) -> Vec<MetricFamily> {
        let totals = self.collect();
        let polling: Vec<bool> = self
            .lock()
            .slots
            .iter()
            .map(|s| s.polling.load(Ordering::Relaxed))
            .collect();
        let mut out = Families::default();
        self.process_families(&mut out);
        for (t, polling) in totals.iter().zip(polling) {
            if t.seen {
                worker_families(&mut out, t, polling, self.opts.stream_depth);
            }
        }
        let counts = self
            .eve
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map(|c| (c.snapshot(), c.host_counts()));
        if let Some((e, _)) = counts {
            for (ty, n) in [
                ("alert", e.alert),
                ("flow", e.flow),
                ("anomaly", e.anomaly),
                ("drop", e.drop),
                ("tls", e.tls),
                ("first_seen", e.first_seen),
            ] {
                out.counter("unmask_eve_records_written_total", &[("type", ty)], n);
            }
        }
        // Zeros without a host layer, so every family is always there.
        let host_alerts = counts.map_or(0, |(e, _)| e.host_alert);
        let h = counts.map(|(_, h)| h).unwrap_or_default();
        out.counter("unmask_host_alerts_total", &[], host_alerts);
        out.counter(
            "unmask_host_contributions_refused_total",
            &[],
            h.hosts_refused,
        );
        out.gauge("unmask_baseline_pairs", &[], h.baseline_pairs as f64);
        out.counter("unmask_baseline_commits_total", &[], h.baseline_commits);
        out.counter(
            "unmask_baseline_commit_errors_total",
            &[],
            h.baseline_commit_errors,
        );
        out.counter("unmask_baseline_refused_total", &[], h.baseline_refused);
        if let Some(c) = self.eve.lock().unwrap_or_else(|e| e.into_inner()).as_ref() {
            for s in c.sinks() {
                let l = [("sink", s.label.as_str())];
                out.counter("unmask_eve_sink_records_total", &l, s.sent());
                out.counter("unmask_eve_sink_lost_total", &l, s.lost());
                out.counter("unmask_eve_sink_reconnects_total", &l, s.reconnects());
            }
            out.counter("unmask_eve_reopen_total", &[], c.reopens());
            out.counter("unmask_eve_reopen_failures_total", &[], c.reopen_failures());
        }
        let mut live = LiveSnapshot::default();
        let has_live = {
            let guard = self.live.lock().unwrap_or_else(|e| e.into_inner());
            match guard.as_ref() {
                Some(src) => {
                    src.read(&mut live);
                    true
                }
                None => false,
            }
        };
        if has_live {
            live_families(&mut out, &live);
        }
        out.finish()
    }

    fn process_families(&self, out: &mut Families) {
        out.gauge(
            "unmask_build_info",
            &[
                ("version", env!("CARGO_PKG_VERSION")),
                (
                    "git_hash",
                    option_env!("UNMASK_GIT_HASH").unwrap_or("unknown"),
                ),
                ("mode", self.opts.mode.name()),
                (
                    "verdict",
                    if self.block_mode.load(Ordering::Relaxed) {
                        Mode::Block.name()
                    } else {
                        Mode::Monitor.name()
                    },
                ),
            ],
            1.0,
        );
        out.counter(
            "unmask_config_reloads_total",
            &[],
            self.config_reloads.load(Ordering::Relaxed),
        );
        out.gauge("unmask_process_start_time_seconds", &[], self.start_unix);
        out.gauge(
            "unmask_process_ready",
            &[],
            if self.readiness().is_ok() { 1.0 } else { 0.0 },
        );
    }
}

fn worker_families(out: &mut Families, t: &WorkerTotals, polling: bool, depth: u32) {
    let w = t.worker.to_string();
    let w = w.as_str();
    let c = &t.view.counters;
    let l = &t.loops;
    let tb = &t.view.table;
    let wl = [("worker", w)];

    out.counter("unmask_engine_received_packets_total", &wl, c.packets);
    out.counter("unmask_engine_received_bytes_total", &wl, c.bytes);
    out.counter(
        "unmask_engine_forwarded_packets_total",
        &wl,
        l.forwarded_packets,
    );
    out.counter(
        "unmask_engine_forwarded_bytes_total",
        &wl,
        l.forwarded_bytes,
    );
    let verdict = [("worker", w), ("reason", "verdict")];
    out.counter(
        "unmask_engine_dropped_packets_total",
        &verdict,
        l.dropped_packets,
    );
    out.counter(
        "unmask_engine_dropped_bytes_total",
        &verdict,
        l.dropped_bytes,
    );
    out.counter("unmask_engine_inspected_packets_total", &wl, c.inspected);
    out.counter(
        "unmask_engine_uninspectable_dropped_packets_total",
        &wl,
        c.dropped_uninspectable,
    );
    out.counter("unmask_engine_fast_path_packets_total", &wl, c.fast_path);

    out.counter(
        "unmask_wire_packets_total",
        &[("worker", w), ("kind", "tcp")],
        c.tcp,
    );
    for (kind, n) in OtherKind::NAMES.iter().zip(c.other) {
        out.counter(
            "unmask_wire_packets_total",
            &[("worker", w), ("kind", kind)],
            n,
        );
    }
    for (reason, n) in Malformed::NAMES.iter().zip(c.malformed) {
        out.counter(
            "unmask_wire_malformed_packets_total",
            &[("worker", w), ("reason", reason)],
            n,
        );
    }
    for (event, n) in crate::flow::defrag::DefragEvent::NAMES.iter().zip(c.defrag) {
        out.counter(
            "unmask_defrag_events_total",
            &[("worker", w), ("event", event)],
            n,
        );
    }
    for (cache, [hits, lookups]) in crate::proto::tls::TlsScratch::CACHE_NAMES
        .iter()
        .zip(c.tls_cache)
    {
        for (result, n) in [("hit", hits), ("miss", lookups.saturating_sub(hits))] {
            out.counter(
                "unmask_tls_cache_lookups_total",
                &[("worker", w), ("cache", cache), ("result", result)],
                n,
            );
        }
    }
    for (kind, n) in crate::wire::TunnelKind::NAMES.iter().zip(c.tunnels) {
        out.counter(
            "unmask_wire_tunnels_total",
            &[("worker", w), ("kind", kind)],
            n,
        );
    }
    for (kind, n) in [
        ("bad_tcp_options", c.bad_tcp_options),
        ("truncated_payload", c.truncated_payload),
    ] {
        out.counter(
            "unmask_wire_anomalies_total",
            &[("worker", w), ("kind", kind)],
            n,
        );
    }

    out.gauge("unmask_flow_active_flows", &wl, t.view.active_flows as f64);
    out.counter("unmask_flow_created_total", &wl, tb.created);
    for (reason, n) in [
        ("timeout", tb.ended_timeout),
        ("closed", tb.ended_closed),
        ("evicted", tb.evicted),
        ("shutdown", tb.ended_shutdown),
    ] {
        out.counter(
            "unmask_flow_ended_total",
            &[("worker", w), ("reason", reason)],
            n,
        );
    }
    out.counter("unmask_flow_refused_packets_total", &wl, tb.refused);
    out.counter("unmask_flow_reused_total", &wl, tb.reused);
    out.counter("unmask_flow_blocked_total", &wl, c.flows_blocked);
    out.counter("unmask_flow_bypassed_total", &wl, c.flows_bypassed);
    out.counter("unmask_flow_one_way_total", &wl, c.flows_one_way);
    out.counter("unmask_flow_bypass_renewed_total", &wl, c.bypass_renewed);
    out.counter("unmask_flow_bypass_rechecks_total", &wl, c.bypass_rechecks);
    out.counter(
        "unmask_flow_bypass_kernel_packets_total",
        &wl,
        c.bypass_kernel_packets,
    );
    for (p, n) in AppProto::ALL.iter().zip(c.flows_by_app) {
        out.counter(
            "unmask_flow_app_proto_total",
            &[("worker", w), ("app_proto", p.name())],
            n,
        );
    }

    out.gauge(
        "unmask_stream_active_windows",
        &wl,
        t.view.streams_in_use as f64,
    );
    out.gauge(
        "unmask_stream_buffer_bytes",
        &wl,
        (t.view.streams_in_use * 2 * depth as u64) as f64,
    );
    for (event, n) in [
        ("retransmission", c.stream_retransmissions),
        ("conflicting_overlap", c.stream_conflicting_overlaps),
        ("out_of_order", c.stream_out_of_order),
        ("beyond_depth", c.stream_beyond_depth),
        ("too_many_gaps", c.stream_too_many_gaps),
        ("out_of_window", c.stream_out_of_window),
        ("rst_ignored", c.stream_rst_ignored),
        ("bad_checksum", c.stream_bad_checksum),
        ("low_ttl", c.stream_low_ttl),
    ] {
        out.counter(
            "unmask_stream_events_total",
            &[("worker", w), ("event", event)],
            n,
        );
    }
    out.counter(
        "unmask_stream_memcap_refused_total",
        &wl,
        c.stream_memcap_refused,
    );

    for kind in FindingKind::ALL.iter() {
        let i = kind.index();
        let all = c.findings[i];
        let blocked = c.findings_blocked[i];
        for (action, n) in [
            ("blocked", blocked),
            ("allowed", all.saturating_sub(blocked)),
            ("recorded", c.findings_recorded[i]),
        ] {
            out.counter(
                "unmask_detect_findings_total",
                &[("worker", w), ("kind", kind.name()), ("action", action)],
                n,
            );
        }
    }
    out.counter(
        "unmask_detect_findings_overflow_total",
        &wl,
        c.findings_overflow,
    );
    for (kind, n) in TlsAnomaly::NAMES.iter().zip(c.tls_anomalies.0) {
        out.counter(
            "unmask_tls_anomalies_total",
            &[("worker", w), ("kind", kind)],
            n,
        );
    }
    out.counter(
        "unmask_verdict_commands_dropped_total",
        &wl,
        c.commands_dropped,
    );
    out.counter("unmask_eve_records_dropped_total", &wl, c.eve_dropped);

    out.counter("unmask_worker_batches_total", &wl, l.batches);
    out.counter("unmask_worker_idle_polls_total", &wl, l.idle_polls);
    out.counter("unmask_worker_snapshots_published_total", &wl, l.publishes);
    out.gauge(
        "unmask_worker_polling",
        &wl,
        if polling { 1.0 } else { 0.0 },
    );
    for (name, h) in [
        ("unmask_worker_packet_latency_seconds", &t.timing.packet),
        ("unmask_worker_batch_latency_seconds", &t.timing.batch),
        ("unmask_worker_batch_size_packets", &t.timing.batch_size),
    ] {
        out.histogram(name, &wl, h);
    }
    for (name, h) in [
        (
            "unmask_worker_packet_latency_percentile_seconds",
            &t.timing.packet,
        ),
        (
            "unmask_worker_batch_latency_percentile_seconds",
            &t.timing.batch,
        ),
    ] {
        for (p, q) in PERCENTILES {
            out.gauge(
                name,
                &[("worker", w), ("percentile", p)],
                h.quantile(q) as f64 * h.scale().factor(),
            );
        }
    }
}

fn live_families(out: &mut Families, live: &LiveSnapshot) {
    if let Some(xdp) = &live.xdp {
        let pb =
            |out: &mut Families, pk: &str, by: &str, label: &str, v: &[(&str, PacketsBytes)]| {
                for (name, c) in v {
                    out.counter(pk, &[(label, name)], c.packets);
                    out.counter(by, &[(label, name)], c.bytes);
                }
            };
        pb(
            out,
            "unmask_xdp_packets_total",
            "unmask_xdp_bytes_total",
            "reason",
            &xdp.reasons,
        );
        pb(
            out,
            "unmask_xdp_action_packets_total",
            "unmask_xdp_action_bytes_total",
            "action",
            &xdp.actions,
        );
    }
    for lw in &live.workers {
        let w = lw.worker.to_string();
        let w = w.as_str();
        let wl = [("worker", w)];
        let r = &lw.ring;
        out.counter("unmask_ring_rx_packets_total", &wl, r.rx_packets);
        out.counter("unmask_ring_rx_bytes_total", &wl, r.rx_bytes);
        out.counter("unmask_ring_tx_packets_total", &wl, r.tx_packets);
        out.counter("unmask_ring_dropped_packets_total", &wl, r.dropped_packets);
        out.counter("unmask_ring_tx_full_total", &wl, r.tx_ring_full);
        out.counter("unmask_ring_fill_empty_total", &wl, r.fill_empty);
        out.counter("unmask_ring_tx_kicks_total", &wl, r.tx_kicks);
        let h = &lw.handoff;
        for (dir, n) in [("out", h.sent), ("in", h.received)] {
            out.counter(
                "unmask_handoff_frames_total",
                &[("worker", w), ("direction", dir)],
                n,
            );
        }
        for (reason, n) in [
            ("queue_full", h.queue_full),
            ("no_frame", h.no_frame),
            ("too_big", h.too_big),
        ] {
            out.counter(
                "unmask_handoff_dropped_total",
                &[("worker", w), ("reason", reason)],
                n,
            );
        }
        let s = &lw.socket;
        out.counter("unmask_xsk_rx_dropped_total", &wl, s.rx_dropped);
        out.counter("unmask_xsk_rx_invalid_descs_total", &wl, s.rx_invalid_descs);
        out.counter("unmask_xsk_tx_invalid_descs_total", &wl, s.tx_invalid_descs);
        out.counter("unmask_xsk_rx_ring_full_total", &wl, s.rx_ring_full);
        out.counter(
            "unmask_xsk_fill_ring_empty_total",
            &wl,
            s.rx_fill_ring_empty_descs,
        );
        out.counter("unmask_xsk_tx_ring_empty_total", &wl, s.tx_ring_empty_descs);
    }
}

/// What kind of metric a family is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// A family's fixed description: what `/metrics` may contain, and the dashboard may query.
#[derive(Debug, Clone, Copy)]
pub struct Spec {
    pub name: &'static str,
    pub kind: Kind,
    pub labels: &'static [&'static str],
    pub help: &'static str,
    /// Only present when the live datapath reports (see [`super::live`]).
    pub live_only: bool,
}

const fn spec(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        labels,
        help,
        live_only: false,
    }
}

const fn live(
    name: &'static str,
    kind: Kind,
    labels: &'static [&'static str],
    help: &'static str,
) -> Spec {
    Spec {
        name,
        kind,
        labels,
        help,
        live_only: true,
    }
}

use Kind::{Counter as C, Gauge as G, Histogram as H};
const W: &[&str] = &["worker"];

/// Every metric unmask exports.
pub const SPECS: &[Spec] = &[
    spec("unmask_build_info", G, &["version", "git_hash", "mode", "verdict"], "Always 1; labels: version, git commit, run mode (replay, live), verdict mode (monitor, block)."),
    spec("unmask_config_reloads_total", C, &[], "Config reloads applied since start (SIGHUP or `unmask ctl reload`); rejected ones are not counted."),
    spec("unmask_process_start_time_seconds", G, &[], "Start time of the process, seconds since the Unix epoch."),
    spec("unmask_process_ready", G, &[], "1 when /readyz reports ready: the source is open (replay) or the program attached (live), and every worker polls."),
    spec("unmask_engine_received_packets_total", C, W, "Frames handed to the engine."),
    spec("unmask_engine_received_bytes_total", C, W, "Bytes on the wire of frames handed to the engine."),
    spec("unmask_engine_forwarded_packets_total", C, W, "Frames the engine let through (forwarded inline, released in tap and replay)."),
    spec("unmask_engine_forwarded_bytes_total", C, W, "Bytes on the wire of frames the engine let through."),
    spec("unmask_engine_dropped_packets_total", C, &["worker", "reason"], "Frames the engine dropped, by reason (verdict: the flow was blocked)."),
    spec("unmask_engine_dropped_bytes_total", C, &["worker", "reason"], "Bytes on the wire of frames the engine dropped, by reason."),
    spec("unmask_engine_uninspectable_dropped_packets_total", C, W, "Frames dropped in block mode because they could not be inspected (tunnels nested too deep, IP fragments beyond the reassembly limits)."),
    spec("unmask_engine_inspected_packets_total", C, W, "TCP segments with payload that went through stream and protocol inspection."),
    spec("unmask_engine_fast_path_packets_total", C, W, "Packets of already decided flows that skipped inspection."),
    spec("unmask_wire_packets_total", C, &["worker", "kind"], "Parsed frames by kind (tcp, udp, icmp, arp, fragment, other_ip, other_ether, tunnel_too_deep)."),
    spec("unmask_wire_malformed_packets_total", C, &["worker", "reason"], "Frames that could not be parsed, by reason (forwarded unjudged)."),
    spec("unmask_defrag_events_total", C, &["worker", "event"], "IP fragment reassembly: datagrams reassembled, overlap conflicts, timeouts, and fragments refused by limit (table_full, too_many_fragments, too_large, invalid, refused)."),
    spec("unmask_tls_cache_lookups_total", C, &["worker", "cache", "result"], "Lookups of the worker's TLS caches (proto.tls_cert_cache, proto.tls_hello_memo): a hit skips parsing a certificate or fingerprinting a hello again."),
    spec("unmask_wire_tunnels_total", C, &["worker", "kind"], "Encapsulations opened to reach the packet inside, by kind (a frame in two tunnels counts in both)."),
    spec("unmask_wire_anomalies_total", C, &["worker", "kind"], "TCP packets parsed despite an anomaly, by kind."),
    spec("unmask_flow_active_flows", G, W, "Flows in the worker's flow table."),
    spec("unmask_flow_created_total", C, W, "Flows started (port reuses included)."),
    spec("unmask_flow_ended_total", C, &["worker", "reason"], "Flows that left the table, by reason (timeout, closed, evicted, shutdown)."),
    spec("unmask_flow_refused_packets_total", C, W, "Packets handled without a flow because the table was full and nothing could be evicted."),
    spec("unmask_flow_reused_total", C, W, "Closing or closed flows replaced by a new connection on the same ports."),
    spec("unmask_flow_blocked_total", C, W, "Flows blocked (block mode)."),
    spec("unmask_flow_bypassed_total", C, W, "Flows handed to the kernel's bypass map once judged (verdict.bypass)."),
    spec("unmask_flow_one_way_total", C, W, "One-directional flows judged while the other side stayed silent (flow.one_way_secs)."),
    spec("unmask_flow_bypass_renewed_total", C, W, "Bypassed flows handed over again after their kernel entry expired or was evicted."),
    spec("unmask_flow_bypass_rechecks_total", C, W, "Reads of bypassed flows' kernel counters (idle rechecks and flow ends)."),
    spec("unmask_flow_bypass_kernel_packets_total", C, W, "Packets of bypassed flows the kernel forwarded without a worker, as read back at rechecks."),
    spec("unmask_flow_app_proto_total", C, &["worker", "app_proto"], "Ended flows by identified application protocol."),
    spec("unmask_stream_active_windows", G, W, "Stream windows held by flows under inspection."),
    spec("unmask_stream_buffer_bytes", G, W, "Bytes of stream window memory held by flows under inspection (windows x 2 x stream.depth)."),
    spec("unmask_stream_events_total", C, &["worker", "event"], "Reassembly events, by kind."),
    spec("unmask_stream_memcap_refused_total", C, W, "Flows passed uninspected because the stream memcap was reached."),
    spec("unmask_detect_findings_total", C, &["worker", "kind", "action"], "Findings by check kind and action (blocked: the flow was dropped; allowed: alert only)."),
    spec("unmask_detect_findings_overflow_total", C, W, "Findings lost because one event raised more than a finding set holds."),
    spec("unmask_tls_anomalies_total", C, &["worker", "kind"], "TLS protocol anomalies, by kind."),
    spec("unmask_verdict_commands_dropped_total", C, W, "Block/bypass/forget commands for the kernel maps lost to a full command queue."),
    spec("unmask_eve_records_written_total", C, &["type"], "EVE records written, by event type (alert, flow, anomaly, drop, tls, first_seen)."),
    spec("unmask_host_alerts_total", C, &[], "Host alerts: findings of several flows of one host within correlation.time_window_secs."),
    spec("unmask_host_contributions_refused_total", C, &[], "Findings the correlator could not score: its host table (correlation.max_hosts) was full of active hosts."),
    spec("unmask_baseline_pairs", G, &[], "Pairs in the first-seen baseline (held in memory, committed to the store)."),
    spec("unmask_baseline_commits_total", C, &[], "Baseline store commits (one transaction of the pairs changed since the last)."),
    spec("unmask_baseline_commit_errors_total", C, &[], "Baseline store commits that failed (retried at the next interval)."),
    spec("unmask_baseline_refused_total", C, &[], "New pairs not kept: the baseline was at baseline.max_entries."),
    spec("unmask_eve_records_dropped_total", C, W, "EVE records dropped because the writer's queue was full."),
    spec("unmask_eve_sink_records_total", C, &["sink"], "EVE records handed to an extra sink ([[output.sinks]], labelled kind:path; redis: redis:address/command:key, counted when redis acknowledged them)."),
    spec("unmask_eve_sink_lost_total", C, &["sink"], "EVE records an extra sink lost: peer absent, full or too slow, or waiting out a reconnect backoff (redis: its queue full, a failed round trip, or redis away at shutdown)."),
    spec("unmask_eve_sink_reconnects_total", C, &["sink"], "Connections an extra sink made after its first (unix_stream, redis): the peer went away or was away at start and was found again."),
    spec("unmask_eve_reopen_total", C, &[], "Reopens of the EVE file for log rotation (unmask ctl reopen, SIGHUP)."),
    spec("unmask_eve_reopen_failures_total", C, &[], "Reopen requests whose open failed; the writer went on with the file it had."),
    spec("unmask_worker_batches_total", C, W, "Non-empty batches handled."),
    spec("unmask_worker_idle_polls_total", C, W, "Polls that found no frame."),
    spec("unmask_worker_snapshots_published_total", C, W, "Snapshots the worker handed to the exporter."),
    spec("unmask_worker_polling", G, W, "1 while the worker's loop runs."),
    spec("unmask_worker_packet_latency_seconds", H, W, "Time in the engine of one packet (one in metrics.latency_sample_every is timed)."),
    spec("unmask_worker_batch_latency_seconds", H, W, "Time from a batch's first frame until its after-batch work (timers, commands) is done."),
    spec("unmask_worker_batch_size_packets", H, W, "Frames per non-empty batch."),
    spec("unmask_worker_packet_latency_percentile_seconds", G, &["worker", "percentile"], "Per-packet time at percentile 50, 99, 99.9 since start (hdrhistogram)."),
    spec("unmask_worker_batch_latency_percentile_seconds", G, &["worker", "percentile"], "Per-batch time at percentile 50, 99, 99.9 since start (hdrhistogram)."),
    live("unmask_xdp_packets_total", C, &["reason"], "Frames leaving the XDP program, by reason (blocked: the block map dropped it), summed over CPUs."),
    live("unmask_xdp_bytes_total", C, &["reason"], "Bytes leaving the XDP program, by reason."),
    live("unmask_xdp_action_packets_total", C, &["action"], "Frames by XDP action (aborted, drop, pass, tx, redirect)."),
    live("unmask_xdp_action_bytes_total", C, &["action"], "Bytes by XDP action."),
    live("unmask_ring_rx_packets_total", C, W, "Frames received from the worker's AF_XDP RX rings."),
    live("unmask_ring_rx_bytes_total", C, W, "Bytes received from the worker's AF_XDP RX rings."),
    live("unmask_ring_tx_packets_total", C, W, "Frames sent on the worker's TX rings."),
    live("unmask_ring_dropped_packets_total", C, W, "Frames the worker released without sending (verdict drops)."),
    live("unmask_ring_tx_full_total", C, W, "Frames lost because the TX ring was full."),
    live("unmask_ring_fill_empty_total", C, W, "Times the fill ring needed frames and none were free."),
    live("unmask_ring_tx_kicks_total", C, W, "sendto() wake-ups of the kernel for TX."),
    live("unmask_handoff_frames_total", C, &["worker", "direction"], "Frames handed to (out) or received from (in) another worker."),
    live("unmask_handoff_dropped_total", C, &["worker", "reason"], "Handoffs lost, by reason (queue_full, no_frame, too_big)."),
    live("unmask_xsk_rx_dropped_total", C, W, "Kernel: frames dropped for non-ring reasons (XDP_STATISTICS rx_dropped)."),
    live("unmask_xsk_rx_invalid_descs_total", C, W, "Kernel: invalid RX descriptors."),
    live("unmask_xsk_tx_invalid_descs_total", C, W, "Kernel: invalid TX descriptors."),
    live("unmask_xsk_rx_ring_full_total", C, W, "Kernel: frames dropped because the RX ring was full."),
    live("unmask_xsk_fill_ring_empty_total", C, W, "Kernel: times the fill ring was empty."),
    live("unmask_xsk_tx_ring_empty_total", C, W, "Kernel: times the TX ring was empty when polled."),
];

pub fn spec_of(name: &str) -> Option<&'static Spec> {
    SPECS.iter().find(|s| s.name == name)
}

/// Families under construction, by name.
#[derive(Default)]
struct Families {
    by_name: BTreeMap<&'static str, MetricFamily>,
}

fn labels(pairs: &[(&str, &str)]) -> Vec<proto::LabelPair> {
    pairs
        .iter()
        .map(|(k, v)| {
            let mut l = proto::LabelPair::default();
            l.set_name(k.to_string());
            l.set_value(v.to_string());
            l
        })
        .collect()
}

impl Families {
    fn family(&mut self, name: &str) -> Option<&mut MetricFamily> {
        // Only names from the table are emitted (a unit test checks every one).
        let spec = spec_of(name)?;
        Some(self.by_name.entry(spec.name).or_insert_with(|| {
            let mut mf = MetricFamily::default();
            mf.set_name(spec.name.to_string());
            mf.set_help(spec.help.to_string());
            mf.set_field_type(match spec.kind {
                Kind::Counter => MetricType::COUNTER,
                Kind::Gauge => MetricType::GAUGE,
                Kind::Histogram => MetricType::HISTOGRAM,
            });
            mf
        }))
    }

    fn counter(&mut self, name: &str, l: &[(&str, &str)], v: u64) {
        if let Some(f) = self.family(name) {
            let mut m = proto::Metric::from_label(labels(l));
            let mut c = proto::Counter::default();
            c.set_value(v as f64);
            m.set_counter(c);
            f.mut_metric().push(m);
        }
    }

    fn gauge(&mut self, name: &str, l: &[(&str, &str)], v: f64) {
        if let Some(f) = self.family(name) {
            let mut m = proto::Metric::from_label(labels(l));
            let mut g = proto::Gauge::default();
            g.set_value(v);
            m.set_gauge(g);
            f.mut_metric().push(m);
        }
    }

    fn histogram(&mut self, name: &str, l: &[(&str, &str)], h: &Histo) {
        if let Some(f) = self.family(name) {
            let bounds = h.scale().buckets();
            let buckets = h
                .cumulative(bounds)
                .into_iter()
                .zip(bounds)
                .map(|(n, b)| {
                    let mut bk = proto::Bucket::default();
                    bk.set_cumulative_count(n);
                    bk.set_upper_bound(*b);
                    bk
                })
                .collect();
            let mut ph = proto::Histogram::default();
            ph.set_sample_count(h.count());
            ph.set_sample_sum(h.sum() as f64 * h.scale().factor());
            ph.set_bucket(buckets);
            let mut m = proto::Metric::from_label(labels(l));
            m.set_histogram(ph);
            f.mut_metric().push(m);
        }
    }

    fn finish(self) -> Vec<MetricFamily> {
        self.by_name.into_values().collect()
    }
}

/// The hub as a `prometheus` collector, so it can sit in a [`prometheus::Registry`].
pub struct HubCollector {
    hub: Arc<Hub>,
    descs: Vec<Desc>,
}

impl HubCollector {
    pub fn new(hub: Arc<Hub>) -> HubCollector {
        let descs = SPECS
            .iter()
            .filter_map(|s| {
                Desc::new(
                    s.name.to_string(),
                    s.help.to_string(),
                    s.labels.iter().map(|l| l.to_string()).collect(),
                    Default::default(),
                )
                .ok()
            })
            .collect();
        HubCollector { hub, descs }
    }
}

impl Collector for HubCollector {
    fn desc(&self) -> Vec<&Desc> {
        self.descs.iter().collect()
    }

    fn collect(&self) -> Vec<MetricFamily> {
        self.hub.families()
    }
}

/// The exposition text of `registry` (the hub's collector registered in it).
pub fn encode(registry: &prometheus::Registry) -> Result<String, prometheus::Error> {
    use prometheus::Encoder;
    let mut buf = Vec::new();
    prometheus::TextEncoder::new().encode(&registry.gather(), &mut buf)?;
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

/// A registry holding `hub`'s collector.
pub fn registry(hub: &Arc<Hub>) -> Result<prometheus::Registry, prometheus::Error> {
    let r = prometheus::Registry::new();
    r.register(Box::new(HubCollector::new(Arc::clone(hub))))?;
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::metrics::live::{LiveWorker, XdpCounts};
    use crate::verdict::{FlowControl, FrameHandler, NoFlowControl};

    struct Nothing;
    impl FrameHandler for Nothing {
        fn handle(&mut self, _: &crate::capture::Frame<'_>) -> crate::capture::Action {
            crate::capture::Action::Forward
        }
        fn after_batch(&mut self, _: crate::capture::Timestamp, _: &mut dyn FlowControl) {}
        fn finish(&mut self, _: crate::capture::Timestamp, _: &mut dyn FlowControl) {}
    }
    impl crate::output::metrics::Observe for Nothing {
        fn observe(&self, out: &mut EngineView) {
            out.counters.packets = 5;
        }
    }

    fn live_hub() -> Arc<Hub> {
        let hub = Hub::new(HubOptions {
            mode: RunMode::Live,
            verdict: Mode::Block,
            stream_depth: 4096,
            publish_interval: Duration::from_millis(100),
            sample_every: 64,
        });
        let mut m = crate::output::metrics::Metered::new(Nothing, hub.register_worker(0));
        m.finish(crate::capture::Timestamp(0), &mut NoFlowControl::default());
        hub.set_eve_counters(Arc::new(EveCounters::with_sinks([
            "unix_dgram:/run/x.sock".to_string(),
        ])));
        let pb = PacketsBytes {
            packets: 1,
            bytes: 64,
        };
        hub.set_live_source(Box::new(Mutex::new(LiveSnapshot {
            xdp: Some(XdpCounts {
                reasons: vec![("blocked", pb), ("to_socket", pb)],
                actions: vec![("drop", pb), ("redirect", pb)],
            }),
            workers: vec![LiveWorker::default()],
        })));
        hub
    }

    #[test]
    fn every_spec_is_emitted_with_its_labels_and_nothing_else() {
        let fams = live_hub().families();
        let names: Vec<&str> = fams.iter().map(|f| f.name()).collect();
        for s in SPECS {
            assert!(names.contains(&s.name), "{} not emitted", s.name);
        }
        for f in &fams {
            let spec = spec_of(f.name()).expect("emitted families come from SPECS");
            assert_eq!(f.help(), spec.help);
            for m in f.get_metric() {
                let got: Vec<&str> = m.get_label().iter().map(|l| l.name()).collect();
                assert_eq!(got, spec.labels, "labels of {}", f.name());
            }
        }
    }

    #[test]
    fn names_follow_the_convention() {
        let mut seen = std::collections::HashSet::new();
        for s in SPECS {
            assert!(seen.insert(s.name), "{} listed twice", s.name);
            assert!(s.name.starts_with("unmask_"), "{}", s.name);
            let parts: Vec<&str> = s.name.split('_').collect();
            assert!(parts.len() >= 3, "unmask_<subsystem>_<name>: {}", s.name);
            assert!(
                s.name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                s.name
            );
            assert_eq!(
                s.kind == Kind::Counter,
                s.name.ends_with("_total"),
                "counters and only counters end in _total: {}",
                s.name
            );
            assert!(!s.help.is_empty());
        }
    }

    #[test]
    fn workers_appear_only_once_they_published() {
        let hub = Hub::new(HubOptions {
            mode: RunMode::Replay,
            verdict: Mode::Monitor,
            stream_depth: 4096,
            publish_interval: Duration::from_millis(100),
            sample_every: 1,
        });
        let _probe = hub.register_worker(0);
        let fams = hub.families();
        assert!(fams.iter().all(|f| !f.name().starts_with("unmask_engine_")));
        assert!(fams.iter().any(|f| f.name() == "unmask_build_info"));
        // No live source registered: no live family.
        assert!(fams
            .iter()
            .all(|f| !spec_of(f.name()).is_some_and(|s| s.live_only)));
    }

    #[test]
    fn live_readiness_names_what_is_missing() {
        let hub = Hub::new(HubOptions {
            mode: RunMode::Live,
            verdict: Mode::Monitor,
            stream_depth: 4096,
            publish_interval: Duration::from_millis(100),
            sample_every: 1,
        });
        assert_eq!(hub.readiness(), Err("XDP program not attached".into()));
        hub.set_source_ready(true);
        assert_eq!(hub.readiness(), Err("no worker registered".into()));
    }

    #[test]
    fn text_encoding_carries_the_values() {
        let hub = live_hub();
        let text = encode(&registry(&hub).unwrap()).unwrap();
        assert!(
            text.contains("unmask_engine_received_packets_total{worker=\"0\"} 5\n"),
            "{text}"
        );
        assert!(text.contains("unmask_xdp_packets_total{reason=\"blocked\"} 1\n"));
        assert!(text.contains("unmask_xdp_action_bytes_total{action=\"redirect\"} 64\n"));
        assert!(text.contains("unmask_build_info{version=\""));
        assert!(text.contains("mode=\"live\",verdict=\"block\"} 1\n"));
        assert!(
            text.contains("unmask_worker_batch_size_packets_bucket{worker=\"0\",le=\"+Inf\"} 0\n")
        );
    }

    #[test]
    fn a_reload_is_counted_and_its_verdict_mode_shown() {
        let hub = live_hub();
        let text = encode(&registry(&hub).unwrap()).unwrap();
        assert!(text.contains("unmask_config_reloads_total 0\n"), "{text}");
        hub.count_config_reload(Mode::Monitor);
        let text = encode(&registry(&hub).unwrap()).unwrap();
        assert!(text.contains("unmask_config_reloads_total 1\n"), "{text}");
        assert!(
            text.contains("mode=\"live\",verdict=\"monitor\"} 1\n"),
            "{text}"
        );
    }
}
