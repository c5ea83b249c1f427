//! `unmask replay`: the engine over capture files, with EVE output and an end summary.

use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::capture::pcap::CaptureSource;
use crate::capture::SourceError;
use crate::config::{ChecksumValidation, Config};
use crate::engine::worker::{self, Clock};
use crate::engine::{Counters, Engine, EngineOptions};
use crate::flow::table::TableStats;
use crate::host::store::StoreError;
use crate::host::{HostLayer, HostSummary};
use crate::output::eve::{EveError, EveStats, EveTarget, EveWriter, SinkStats};
use crate::output::metrics::{Hub, HubOptions, Metered, RunMode, TimingSummary};
use crate::verdict::{Mode, NoFlowControl};

/// Frames per batch when reading captures: large enough to amortise the per-batch timer work,
/// small enough to keep timeouts close to packet time.
pub const REPLAY_BATCH: usize = 256;

pub struct ReplayOptions {
    pub config: Config,
    pub files: Vec<PathBuf>,
    pub eve: EveTarget,
    /// Called after each batch with (bytes read, total bytes) for a progress display.
    pub progress: Option<Box<dyn FnMut(u64, u64)>>,
    /// Where the worker publishes its metrics (an exporter may be serving it); `None` keeps
    /// them private to the end summary. One replay per hub.
    pub metrics: Option<Arc<Hub>>,
}

/// What a replay saw and did.
#[derive(Debug, Clone)]
pub struct ReplaySummary {
    pub files: usize,
    pub mode: Mode,
    pub counters: Counters,
    pub table: TableStats,
    pub eve: EveStats,
    pub eve_target: String,
    /// Each `[[output.sinks]]` entry's records sent and lost.
    pub eve_sinks: Vec<SinkStats>,
    pub elapsed: Duration,
    pub flow_commands: NoFlowControl,
    /// Per-packet and per-batch latency percentiles.
    pub timing: TimingSummary,
    /// Host correlation and baseline, when configured.
    pub host: Option<HostSummary>,
}

impl ReplaySummary {
    pub fn packets_per_sec(&self) -> f64 {
        let secs = self.elapsed.as_secs_f64();
        if secs > 0.0 {
            self.counters.packets as f64 / secs
        } else {
            0.0
        }
    }
}

/// A replay that could not start, or whose output failed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Source(#[from] SourceError),
    #[error(transparent)]
    Eve(#[from] EveError),
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The summary, and the capture error that cut the replay short, if any. Everything seen
/// before such an error has been judged and written.
pub struct ReplayOutcome {
    pub summary: ReplaySummary,
    pub error: Option<SourceError>,
}

pub fn replay(opts: ReplayOptions) -> Result<ReplayOutcome, ReplayError> {
    let ReplayOptions {
        config,
        files,
        eve,
        mut progress,
        metrics,
    } = opts;
    let hub =
        metrics.unwrap_or_else(|| Hub::new(HubOptions::from_config(&config, RunMode::Replay)));
    let mut source = CaptureSource::open(&files, REPLAY_BATCH)?;
    let eve_target = eve.to_string();
    // Opened before the first packet: a store in use by another process fails the start.
    let host = HostLayer::from_config(&config.correlation, &config.baseline)?;
    let (tx, writer) = EveWriter::spawn_for_output(eve, &config.output, host)?;
    hub.set_eve_counters(writer.counters());
    let mut engine_config = config.engine();
    if config.stream.checksum_validation == ChecksumValidation::Auto {
        // Captures taken where the kernel offloads checksums hold unfinished ones.
        engine_config.verify_checksums = false;
    }
    let mut engine = Engine::new(
        &engine_config,
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    engine.recycle_records(writer.recycled());
    // Not prefaulted (live workers are): a capture's flows touch only their own slots, and
    // mapping the whole table would add ~0.1 s and its full memory to every replay.
    let mut engine = Metered::new(engine, hub.register_worker(0));
    hub.set_source_ready(true);
    let mut ctl = NoFlowControl::default();
    let stop = AtomicBool::new(false);
    let started = Instant::now();
    let result = worker::run(
        &mut source,
        &mut engine,
        &mut ctl,
        Clock::PacketTime,
        &stop,
        |s, _| {
            if let Some(p) = progress.as_mut() {
                p(s.bytes_read(), s.total_bytes());
            }
        },
    );
    let elapsed = started.elapsed();
    hub.set_source_ready(false);
    let engine = engine.into_inner();
    let counters = engine.counters().clone();
    let table = engine.table_stats();
    let timing = hub.timing_summary();
    // Dropping the engine drops its sender, which lets the writer finish.
    drop(engine);
    let eve_counters = writer.counters();
    let (eve_stats, host) = writer.finish_with_host()?;
    Ok(ReplayOutcome {
        summary: ReplaySummary {
            files: files.len(),
            mode: config.verdict.mode,
            counters,
            table,
            eve: eve_stats,
            eve_target,
            eve_sinks: eve_counters.sink_stats(),
            elapsed,
            flow_commands: ctl,
            timing,
            host,
        },
        error: result.err(),
    })
}

/// Writes `name count` pairs for the non-zero counts, comma separated.
fn nonzero_list<'a>(
    f: &mut std::fmt::Formatter<'_>,
    pairs: impl Iterator<Item = (&'a str, u64)>,
) -> std::fmt::Result {
    let mut first = true;
    for (name, n) in pairs.filter(|(_, n)| *n > 0) {
        if !first {
            f.write_str(", ")?;
        }
        write!(f, "{name} {n}")?;
        first = false;
    }
    if first {
        f.write_str("none")?;
    }
    Ok(())
}

impl std::fmt::Display for ReplaySummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::detect::FindingKind;
        use crate::proto::AppProto;
        use crate::wire::{Malformed, OtherKind};
        let c = &self.counters;
        writeln!(
            f,
            "unmask replay: {} file(s), {} mode",
            self.files,
            self.mode.name()
        )?;
        let other: u64 = c.other.iter().sum();
        let malformed: u64 = c.malformed.iter().sum();
        write!(
            f,
            "  packets    {} (tcp {}, other {}, malformed {})",
            c.packets, c.tcp, other, malformed
        )?;
        if other + malformed > 0 {
            f.write_str(" [")?;
            nonzero_list(
                f,
                OtherKind::NAMES
                    .iter()
                    .copied()
                    .zip(c.other.iter().copied())
                    .chain(
                        Malformed::NAMES
                            .iter()
                            .copied()
                            .zip(c.malformed.iter().copied()),
                    ),
            )?;
            f.write_str("]")?;
        }
        writeln!(f)?;
        if c.defrag.iter().any(|&n| n > 0) {
            f.write_str("  defrag     ")?;
            nonzero_list(
                f,
                crate::flow::defrag::DefragEvent::NAMES
                    .iter()
                    .copied()
                    .zip(c.defrag.iter().copied()),
            )?;
            writeln!(f)?;
        }
        if c.tunnels.iter().any(|&n| n > 0) {
            f.write_str("  tunnels    ")?;
            nonzero_list(
                f,
                crate::wire::TunnelKind::NAMES
                    .iter()
                    .copied()
                    .zip(c.tunnels.iter().copied()),
            )?;
            writeln!(f)?;
        }
        if c.tls_cache.iter().any(|&[_, n]| n > 0) {
            f.write_str("  tls cache ")?;
            for (i, (name, [hits, lookups])) in crate::proto::tls::TlsScratch::CACHE_NAMES
                .iter()
                .zip(c.tls_cache)
                .enumerate()
            {
                let sep = if i == 0 { " " } else { ", " };
                write!(f, "{sep}{name} {hits}/{lookups} hits")?;
            }
            writeln!(f)?;
        }
        writeln!(
            f,
            "  rate       {:.0} packets/s ({:.3} s)",
            self.packets_per_sec(),
            self.elapsed.as_secs_f64()
        )?;
        writeln!(
            f,
            "  flows      {} ended, {} evicted, {} packets without a flow (table full)",
            c.flows_ended, self.table.evicted, c.flows_refused_packets
        )?;
        f.write_str("  protocols  ")?;
        nonzero_list(
            f,
            AppProto::ALL
                .iter()
                .map(|p| p.name())
                .zip(c.flows_by_app.iter().copied()),
        )?;
        writeln!(f)?;
        f.write_str("  findings   ")?;
        nonzero_list(
            f,
            FindingKind::ALL
                .iter()
                .map(|k| (k.name(), c.findings[k.index()])),
        )?;
        writeln!(f)?;
        if self.mode == Mode::Block {
            writeln!(
                f,
                "  block      would drop {} packets in {} flows (first packet of each: see EVE `drop` records, pcap_cnt)",
                c.dropped, c.flows_blocked
            )?;
            if c.dropped_uninspectable > 0 {
                writeln!(
                    f,
                    "             and {} packets it could not inspect (tunnels too deep, fragments beyond the reassembly limits)",
                    c.dropped_uninspectable
                )?;
            }
        }
        writeln!(
            f,
            "  eve        {} alert, {} flow, {} anomaly, {} drop records to {} ({} dropped: queue full)",
            self.eve.alert,
            self.eve.flow,
            self.eve.anomaly,
            self.eve.drop,
            self.eve_target,
            c.eve_dropped
        )?;
        if self.eve.host_alert + self.eve.first_seen > 0 {
            writeln!(
                f,
                "  eve        {} host alert (of the alerts), {} first_seen records",
                self.eve.host_alert, self.eve.first_seen
            )?;
        }
        for s in &self.eve_sinks {
            writeln!(f, "{s}")?;
        }
        if let Some(h) = &self.host {
            write!(f, "{h}")?;
        }
        if self.timing.batches_timed > 0 {
            writeln!(f, "  latency    {}", self.timing)?;
        }
        if c.stream_memcap_refused > 0 {
            writeln!(
                f,
                "  note       {} flows passed uninspected: stream memcap reached",
                c.stream_memcap_refused
            )?;
        }
        Ok(())
    }
}
