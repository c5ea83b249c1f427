//! `unmask run`: the appliance. Loads the XDP program, starts one engine per worker on the
//! AF_XDP sockets, writes EVE records, and on SIGINT/SIGTERM detaches everything and reports.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use crate::app::reload::{self, PolicyInbox, Reloader};
use crate::capture::{Action, Frame, Timestamp};
use crate::config::Config;
use crate::datapath::live::{self, LiveError, LiveSetup, RunReport};
use crate::datapath::privilege::{self, PrivilegeError};
use crate::datapath::Topology;
use crate::detect::Detector;
use crate::engine::{Counters, Engine, EngineOptions};
use crate::flow::table::TableStats;
use crate::output::eve::{EveError, EveStats, EveTarget, EveWriter, SinkStats};
use crate::output::metrics::live::DatapathSource;
use crate::output::metrics::{EngineView, Hub, HubOptions, Metered, Observe, RunMode};
use crate::verdict::{FlowControl, FrameHandler, Mode};

#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error("{path}: key `live.ports`: no ports configured; set [live] ports (inline: [\"port A\", \"port B\"], tap: [\"mirror port\"])")]
    NoPorts { path: String },
    #[error(transparent)]
    Eve(#[from] EveError),
    #[error(transparent)]
    Live(#[from] LiveError),
    #[error("{path}: key `live.control_socket`: {message}")]
    Control { path: String, message: String },
    #[error("{0}; set live.drop_privileges = false to run with every capability")]
    Privilege(#[from] PrivilegeError),
    #[error(transparent)]
    Store(#[from] crate::host::store::StoreError),
}

/// What a live run did: the datapath's report and the engines' counters summed.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LiveSummary {
    pub datapath: RunReport,
    pub counters: Counters,
    pub table: Vec<TableStatsReport>,
    pub eve: EveStatsReport,
    pub eve_target: String,
    /// Each `[[output.sinks]]` entry's records sent and lost.
    pub eve_sinks: Vec<SinkStats>,
    pub mode: &'static str,
    /// Host correlation and baseline, when configured.
    pub host: Option<crate::host::HostSummary>,
}

/// Serializable copies of stats types owned by other modules.
#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct TableStatsReport {
    pub created: u64,
    pub evicted: u64,
    pub refused: u64,
    pub reused: u64,
}

#[derive(Debug, Clone, Copy, serde::Serialize)]
pub struct EveStatsReport {
    pub alert: u64,
    pub flow: u64,
    pub anomaly: u64,
    pub drop: u64,
    pub tls: u64,
    pub host_alert: u64,
    pub first_seen: u64,
}

impl From<EveStats> for EveStatsReport {
    fn from(s: EveStats) -> Self {
        EveStatsReport {
            alert: s.alert,
            flow: s.flow,
            anomaly: s.anomaly,
            drop: s.drop,
            tls: s.tls,
            host_alert: s.host_alert,
            first_seen: s.first_seen,
        }
    }
}

/// What each worker's engine leaves behind when it finishes.
type Results = Arc<Mutex<Vec<(Counters, TableStats)>>>;

/// The engine as a worker's handler, handing its counters over when the worker ends.
struct WorkerEngine {
    engine: Engine,
    results: Results,
    policy: PolicyInbox,
}

impl FrameHandler for WorkerEngine {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        self.engine.handle(frame)
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.policy.apply_pending(&mut self.engine);
        self.engine.after_batch(now, ctl)
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.engine.finish(now, ctl);
        // Once per worker at shutdown: the lock is control-plane only.
        if let Ok(mut r) = self.results.lock() {
            r.push((self.engine.counters().clone(), self.engine.table_stats()));
        }
    }
}

impl Observe for WorkerEngine {
    fn observe(&self, out: &mut EngineView) {
        self.engine.observe(out)
    }
}

/// Runs the appliance until SIGINT/SIGTERM. `ready` is called once every worker receives.
pub fn run(
    config: &Config,
    config_path: &str,
    eve: EveTarget,
    ready: impl FnOnce(&str),
) -> Result<LiveSummary, RuntimeError> {
    run_metered(config, config_path, eve, None, None, ready)
}

/// [`run`], with the workers' metrics and the datapath's counters published into `metrics`
/// (an exporter may serve it); `None` keeps them private. `mode_override` is a verdict mode
/// given on the command line: reloads keep it rather than take the file's.
pub fn run_metered(
    config: &Config,
    config_path: &str,
    eve: EveTarget,
    metrics: Option<Arc<Hub>>,
    mode_override: Option<Mode>,
    ready: impl FnOnce(&str),
) -> Result<LiveSummary, RuntimeError> {
    let hub = metrics.unwrap_or_else(|| Hub::new(HubOptions::from_config(config, RunMode::Live)));
    if config.live.ports.is_empty() {
        return Err(RuntimeError::NoPorts {
            path: config_path.into(),
        });
    }
    let setup = LiveSetup {
        ports: config.live.ports.clone(),
        topology: config.live.topology,
        fail: config.verdict.fail_mode,
        workers: config.live.workers as usize,
        xsk: config.datapath.clone(),
        steer_all: false,
    };
    let control = reload::bind_control_socket(&config.live.control_socket).map_err(|message| {
        RuntimeError::Control {
            path: config_path.into(),
            message,
        }
    })?;
    let (mut reloader, inboxes) = Reloader::new(
        std::path::Path::new(config_path),
        config,
        setup.workers,
        Some(Arc::clone(&hub)),
    );
    reloader.set_mode_override(mode_override);
    // Built once: every worker shares it, and a reload replaces it whole.
    let detector = Arc::new(Detector::new(&config.detect));
    let eve_target = eve.to_string();
    let mut host = crate::host::HostLayer::from_config(&config.correlation, &config.baseline)?;
    // A host alert lists its client for correlation.block_secs; workers read the list when a
    // flow starts (lock-free).
    let host_blocks =
        (config.correlation.enabled && config.correlation.block_secs > 0).then(|| {
            Arc::new(crate::verdict::HostBlocks::new(
                config.correlation.max_hosts as usize,
            ))
        });
    if let (Some(h), Some(b)) = (host.as_mut(), &host_blocks) {
        h.set_blocks(Arc::clone(b), config.correlation.block_secs);
    }
    let (tx, writer) = EveWriter::spawn_for_output(eve, &config.output, host)?;
    hub.set_eve_counters(writer.counters());
    reloader.set_reopen(writer.reopen_handle());
    let recycled = writer.recycled();
    let results: Results = Arc::default();
    let stop = live::stop_on_signals();
    let sighup = live::reload_on_sighup();
    let control_thread = std::thread::Builder::new()
        .name("unmask-control".into())
        .spawn(move || reload::serve(reloader, control, sighup, stop))
        .ok();
    let mut dropped: Option<Result<privilege::Dropped, PrivilegeError>> = None;
    let report = live::run(
        &setup,
        |i| {
            let mut engine = Engine::with_detector(
                &config.engine(),
                EngineOptions {
                    worker: i as u8,
                    packet_numbers: false,
                },
                Some(tx.clone()),
                Arc::clone(&detector),
            );
            engine.set_bypass(config.verdict.bypass);
            // Record boxes come back from the writer to be refilled: a box malloc'd on a worker
            // and freed on the writer made glibc take the worker's arena lock from the writer.
            engine.recycle_records(recycled.clone());
            // Not prefaulted (`Engine::prefault_flow_table`): on the veth lab it cost live
            // throughput instead of saving it (bench-live tcp64 tap 0.80 -> 0.69, mixed tap
            // 0.83 -> 0.60, medians of 3-4 pairs), and it ran after the ready line, while the
            // sockets were already receiving. Nor on transparent huge pages: advised for the
            // flow table, windows and states, mixed inline fell (medians 0.73-0.77 against
            // 0.86 without, same evening): a first touch zeroes 2 MiB where 4 KiB were
            // touched.
            if let Some(b) = &host_blocks {
                engine.set_host_blocks(Arc::clone(b));
            }
            let engine = WorkerEngine {
                engine,
                results: results.clone(),
                policy: inboxes[i].clone(),
            };
            Metered::new(engine, hub.register_worker(i))
        },
        stop,
        |stats, program| {
            // Without the counter map the scrape still has every engine and worker family.
            if let Ok(xdp) = program.counter_reader() {
                hub.set_live_source(Box::new(DatapathSource::new(Arc::clone(stats), xdp)));
            }
            // Everything privileged is done: the program is attached, the sockets are bound.
            let mut caps = String::from("all");
            if config.live.drop_privileges {
                let result = privilege::drop_all_but(privilege::KEPT);
                match &result {
                    Ok(d) => caps = format!("{:#x}", d.kept),
                    Err(_) => stop.store(true, Ordering::Relaxed),
                }
                dropped = Some(result);
                if stop.load(Ordering::Relaxed) {
                    return;
                }
            }
            hub.set_source_ready(true);
            let topology = match config.live.topology {
                Topology::Inline => "inline",
                Topology::Tap => "tap",
            };
            ready(&format!(
                "prog_id={} topology={topology} ports={} workers={} mode={} fail_mode={:?} bypass={} caps={caps} control={:?}",
                program.id(),
                config.live.ports.join(","),
                config.live.workers,
                config.verdict.mode.name(),
                config.verdict.fail_mode,
                config.verdict.bypass.name(),
                config.live.control_socket,
            ));
        },
    );
    // A failed start leaves the stop flag unset; set it so nothing waits on it.
    stop.store(true, Ordering::Relaxed);
    hub.set_source_ready(false);
    drop(tx);
    if let Some(t) = control_thread {
        let _ = t.join();
    }
    if !config.live.control_socket.is_empty() {
        let _ = std::fs::remove_file(&config.live.control_socket);
    }
    let report = report?;
    if let Some(Err(e)) = dropped {
        // The datapath is down already (a clean stop); say why it stopped.
        let _ = writer.finish();
        return Err(e.into());
    }
    let eve_counters = writer.counters();
    let (eve_stats, host) = writer.finish_with_host()?;
    let mut counters = Counters::default();
    let mut table = Vec::new();
    if let Ok(r) = results.lock() {
        for (c, t) in r.iter() {
            counters += c;
            table.push(TableStatsReport {
                created: t.created,
                evicted: t.evicted,
                refused: t.refused,
                reused: t.reused,
            });
        }
    }
    Ok(LiveSummary {
        datapath: report,
        counters,
        table,
        eve: eve_stats.into(),
        eve_target,
        eve_sinks: eve_counters.sink_stats(),
        mode: config.verdict.mode.name(),
        host,
    })
}

impl std::fmt::Display for LiveSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use crate::datapath::bpf::Reason;
        use crate::detect::FindingKind;
        let c = &self.counters;
        let d = &self.datapath;
        writeln!(
            f,
            "unmask run: {} mode, {:?} sockets, UMEM on {} pages, {:.1} s, attached {}",
            self.mode,
            d.bind_mode,
            if d.huge_pages { "huge" } else { "4 KiB" },
            d.seconds,
            d.attach.join(", ")
        )?;
        let rx: u64 = d.workers.iter().map(|w| w.stats.rx).sum();
        let tx: u64 = d.workers.iter().map(|w| w.stats.tx).sum();
        let handoffs: u64 = d.workers.iter().map(|w| w.stats.handoff_out).sum();
        writeln!(
            f,
            "  workers    {}: rx {rx}, tx {tx}, handoffs {handoffs}",
            d.workers.len()
        )?;
        writeln!(
            f,
            "  engine     packets {}, inspected {}, fast path {}, dropped by verdict {}",
            c.packets, c.inspected, c.fast_path, c.dropped
        )?;
        write!(f, "  xdp        ")?;
        for (i, name) in Reason::NAMES.iter().enumerate() {
            if let Some(r) = d.xdp.reasons.get(i) {
                if r.packets > 0 {
                    write!(f, "{name} {} ", r.packets)?;
                }
            }
        }
        writeln!(f)?;
        write!(f, "  findings   ")?;
        let mut any = false;
        for k in FindingKind::ALL {
            let n = c.findings[k.index()];
            if n > 0 {
                write!(f, "{} {n} ", k.name())?;
                any = true;
            }
        }
        if !any {
            write!(f, "none")?;
        }
        writeln!(f)?;
        writeln!(
            f,
            "  flows      {} ended, {} blocked, {} bypassed ({} packets forwarded by the kernel alone)",
            c.flows_ended, c.flows_blocked, c.flows_bypassed, c.bypass_kernel_packets
        )?;
        writeln!(
            f,
            "  eve        {} alert, {} flow, {} tls, {} anomaly, {} drop records to {} ({} dropped: queue full)",
            self.eve.alert, self.eve.flow, self.eve.tls, self.eve.anomaly, self.eve.drop, self.eve_target, c.eve_dropped
        )?;
        for s in &self.eve_sinks {
            writeln!(f, "{s}")?;
        }
        if let Some(h) = &self.host {
            write!(f, "{h}")?;
        }
        Ok(())
    }
}
