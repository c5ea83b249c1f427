//! The live appliance: load and attach the XDP program, open one worker per queue, run the
//! handler on every frame, apply flow commands to the kernel maps, and tear everything down.
//!
//! Entry point: [`run`]. The caller owns signal handling policy; [`stop_on_signals`] installs
//! SIGINT/SIGTERM handlers that set the stop flag.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::bpf::{
    monotonic_ns, AttachOutcome, BpfError, FlowMap, FlowMaps, PortLock, Program, ProgramSetup,
    Topology, XdpCounters,
};
use super::xsk::{
    BindMode, Forwarding, Inbox, Peers, SharedStats, SocketStats, WorkerStats, XskConfig, XskError,
    XskSource,
};

use crate::flow::FlowKey;
use crate::verdict::{FailMode, FlowCommand, FlowControl, FrameHandler, KernelFlow};

/// Everything the live datapath needs to start.
#[derive(Debug, Clone)]
pub struct LiveSetup {
    /// Port A, then port B (inline); one port (tap).
    pub ports: Vec<String>,
    pub topology: Topology,
    pub fail: FailMode,
    /// Workers = queues used on each port (worker i owns queue i).
    pub workers: usize,
    /// Rings, frames, polling, XDP mode, kernel flow entries (`[datapath]` in the config).
    pub xsk: XskConfig,
    /// Diagnostics: every frame goes to the workers, unparsed by the XDP program.
    pub steer_all: bool,
}

impl LiveSetup {
    pub fn new(ports: Vec<String>, topology: Topology) -> LiveSetup {
        LiveSetup {
            ports,
            topology,
            fail: FailMode::FailOpen,
            workers: 1,
            xsk: XskConfig::default(),
            steer_all: false,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum LiveError {
    #[error(transparent)]
    Bpf(#[from] BpfError),
    #[error(transparent)]
    Xsk(#[from] XskError),
    #[error("{0}")]
    Setup(String),
    #[error("worker {0} panicked")]
    WorkerPanicked(usize),
}

/// `FlowControl` of a live worker: flow commands become block / bypass map entries.
#[derive(Debug)]
pub struct LiveFlowControl {
    maps: FlowMaps,
    block_ttl_ns: u64,
    bypass_ttl_ns: u64,
    pub stats: FlowControlStats,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct FlowControlStats {
    pub blocks: u64,
    pub bypasses: u64,
    pub forgets: u64,
    /// Lookups of bypass entries (a bypassed flow's idle check or end).
    pub kernel_reads: u64,
    /// Map updates that failed (logged once each; the worker goes on).
    pub errors: u64,
}

impl LiveFlowControl {
    pub fn new(maps: FlowMaps, block_ttl: Duration, bypass_ttl: Duration) -> LiveFlowControl {
        LiveFlowControl {
            maps,
            block_ttl_ns: block_ttl.as_nanos().min(u128::from(u64::MAX)) as u64,
            bypass_ttl_ns: bypass_ttl.as_nanos().min(u128::from(u64::MAX)) as u64,
            stats: FlowControlStats::default(),
        }
    }

    pub fn maps(&self) -> &FlowMaps {
        &self.maps
    }
}

impl FlowControl for LiveFlowControl {
    fn apply(&mut self, cmd: &FlowCommand) {
        let result = match cmd {
            FlowCommand::Block { key, .. } => {
                self.stats.blocks += 1;
                // A blocked flow must not stay bypassed.
                let _ = self.maps.remove(FlowMap::Bypass, key);
                self.maps.insert(FlowMap::Block, key, self.block_ttl_ns)
            }
            FlowCommand::Bypass { key, .. } => {
                self.stats.bypasses += 1;
                // A re-bypass (the entry expired while the flow went on) starts its counters
                // again; the engine resets its read-back when it hands the flow over.
                self.maps.insert(FlowMap::Bypass, key, self.bypass_ttl_ns)
            }
            FlowCommand::Forget { key } => {
                self.stats.forgets += 1;
                self.maps
                    .remove(FlowMap::Block, key)
                    .and(self.maps.remove(FlowMap::Bypass, key))
            }
        };
        if let Err(e) = result {
            self.stats.errors += 1;
            if self.stats.errors == 1 {
                eprintln!("unmask: flow command failed: {e}");
            }
        }
    }

    fn kernel_flow(&mut self, key: &FlowKey) -> Option<KernelFlow> {
        self.stats.kernel_reads += 1;
        let e = match self.maps.get(FlowMap::Bypass, key) {
            Ok(e) => e?,
            Err(e) => {
                self.stats.errors += 1;
                if self.stats.errors == 1 {
                    eprintln!("unmask: reading a bypass entry failed: {e}");
                }
                return None;
            }
        };
        Some(KernelFlow {
            pkts: e.pkts,
            bytes: e.bytes,
            tcp_flags: e.tcp_flags,
            idle_ns: (e.last_ns != 0).then(|| monotonic_ns().saturating_sub(e.last_ns)),
        })
    }
}

/// What one worker did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WorkerReport {
    pub worker: usize,
    pub queue: u32,
    pub core: Option<usize>,
    pub stats: WorkerStats,
    pub flow_control: FlowControlStats,
    /// Kernel statistics per port socket.
    pub sockets: Vec<(u8, SocketStats)>,
}

/// What a run did, returned after a clean stop.
#[derive(Debug, Clone, serde::Serialize)]
pub struct RunReport {
    pub bind_mode: BindMode,
    /// Whether every worker's UMEM is on huge pages (`datapath.huge_pages`).
    pub huge_pages: bool,
    pub attach: Vec<String>,
    pub workers: Vec<WorkerReport>,
    pub xdp: XdpCounters,
    pub seconds: f64,
}

/// Live counters the caller may read while the run goes on (one per worker).
pub type LiveStats = Arc<Vec<Arc<SharedStats>>>;

static SIGNAL_STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    SIGNAL_STOP.store(true, Ordering::Relaxed);
}

/// Installs SIGINT and SIGTERM handlers and returns the flag they set.
pub fn stop_on_signals() -> &'static AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_signal;
    for sig in [libc::SIGINT, libc::SIGTERM] {
        // SAFETY: the handler only stores to a static atomic, which is async-signal-safe.
        unsafe { libc::signal(sig, handler as libc::sighandler_t) };
    }
    &SIGNAL_STOP
}

static SIGNAL_RELOAD: AtomicBool = AtomicBool::new(false);

extern "C" fn on_reload_signal(_: libc::c_int) {
    SIGNAL_RELOAD.store(true, Ordering::Relaxed);
}

/// Installs a SIGHUP handler and returns the flag it sets (the control thread takes it).
/// Without it SIGHUP would end the process, as it does by default.
pub fn reload_on_sighup() -> &'static AtomicBool {
    let handler: extern "C" fn(libc::c_int) = on_reload_signal;
    // SAFETY: the handler only stores to a static atomic, which is async-signal-safe.
    unsafe { libc::signal(libc::SIGHUP, handler as libc::sighandler_t) };
    &SIGNAL_RELOAD
}

/// Runs the live datapath until `stop` is set. `make_handler(i)` builds worker i's handler on
/// worker i's thread; `on_start` is called once every worker is receiving, with the live
/// counters (for a metrics exporter or a progress line).
pub fn run<H, M, S>(
    setup: &LiveSetup,
    make_handler: M,
    stop: &AtomicBool,
    on_start: S,
) -> Result<RunReport, LiveError>
where
    H: FrameHandler,
    M: Fn(usize) -> H + Sync,
    S: FnOnce(&LiveStats, &Program),
{
    let workers = setup.workers;
    if workers == 0 || workers > super::bpf::MAX_QUEUES as usize || workers > 64 {
        return Err(LiveError::Setup(format!(
            "workers = {workers}: must be 1..={}",
            super::bpf::MAX_QUEUES
        )));
    }
    setup.xsk.validate().map_err(LiveError::Setup)?;
    let started = Instant::now();
    let _lock = PortLock::acquire(&setup.ports)?;
    let mut program = Program::load(&ProgramSetup {
        ports: setup.ports.clone(),
        topology: setup.topology,
        fail: setup.fail,
        xdp_mode: setup.xsk.xdp_mode,
        steer_all: setup.steer_all,
        flow_map_entries: setup.xsk.flow_map_entries,
    })?;
    let mut attach: Vec<String> = program
        .attach()?
        .iter()
        .zip(program.port_names())
        .map(|(o, name)| match o {
            AttachOutcome::Fresh => format!("{name}: attached"),
            AttachOutcome::Replaced { old_id } => {
                format!("{name}: replaced earlier unmask program id {old_id}")
            }
        })
        .collect();
    if !program.reused_maps().is_empty() {
        attach.push(format!(
            "kept the earlier program's {}",
            program.reused_maps().join(", ")
        ));
    }

    let forwarding = match setup.topology {
        Topology::Inline => Forwarding::Inline,
        Topology::Tap => Forwarding::Tap,
    };
    let mut inboxes = Vec::with_capacity(workers);
    for _ in 0..workers {
        inboxes.push(Inbox::new(setup.xsk.handoff_queue as usize).map_err(XskError::Os)?);
    }
    let inboxes = Arc::new(inboxes);
    let worker_stop = Arc::new(AtomicBool::new(false));
    let shared: LiveStats = Arc::new((0..workers).map(|_| Arc::default()).collect());

    // Open every socket before any worker runs, so a failure leaves nothing half-started.
    let mut sources = Vec::with_capacity(workers);
    for i in 0..workers {
        let src = XskSource::open(
            &setup.ports,
            i as u32,
            &setup.xsk,
            forwarding,
            Peers {
                me: i,
                inboxes: Arc::clone(&inboxes),
            },
            Arc::clone(&worker_stop),
            Arc::clone(&shared[i]),
        )?;
        sources.push(src);
    }
    let bind_mode = sources.first().map_or(BindMode::Copy, |s| s.bind_mode());
    let huge_pages = sources.iter().all(|s| s.huge_pages());
    for src in &sources {
        for (port, fd) in src.socket_fds() {
            program.register_socket(port, src.queue(), fd)?;
        }
    }
    let mut controls = Vec::with_capacity(workers);
    for _ in 0..workers {
        controls.push(LiveFlowControl::new(
            program.flow_maps()?,
            Duration::from_secs(setup.xsk.block_ttl_secs),
            Duration::from_secs(setup.xsk.bypass_ttl_secs),
        ));
    }
    let cores = if setup.xsk.pin_cores {
        core_affinity::get_core_ids().unwrap_or_default()
    } else {
        Vec::new()
    };
    let worker_cores: Vec<core_affinity::CoreId> = (0..workers)
        .filter_map(|i| {
            cores
                .get((setup.xsk.first_core + i) % cores.len().max(1))
                .copied()
        })
        .collect();
    let housekeeping = housekeeping_cores(&cores, &worker_cores);
    if !housekeeping.is_empty() {
        keep_threads_on(&housekeeping);
    }

    let mut on_start = Some(on_start);
    let reports = std::thread::scope(|scope| {
        let (ready_tx, ready_rx) = std::sync::mpsc::channel::<()>();
        let mut handles = Vec::with_capacity(workers);
        for (i, (src, ctl)) in sources.into_iter().zip(controls).enumerate() {
            let core = worker_cores.get(i).copied();
            let make = &make_handler;
            let ready = ready_tx.clone();
            handles.push(scope.spawn(move || worker_loop(i, src, ctl, make, core, ready)));
        }
        drop(ready_tx);
        // Ready only once every worker has built its handler (an engine's tables and caches
        // are allocated there): until then frames would wait in the rings, and whoever starts
        // traffic at the ready line would measure the set-up.
        let mut built = 0;
        while built < workers
            && !stop.load(Ordering::Relaxed)
            && !handles.iter().any(|h| h.is_finished())
        {
            if ready_rx.recv_timeout(Duration::from_millis(50)).is_ok() {
                built += 1;
            }
        }
        if built == workers {
            if let Some(start) = on_start.take() {
                start(&shared, &program);
            }
        }
        // A worker only ends early when it failed (or its handler panicked): stop them all
        // rather than run on with a queue nobody serves.
        while !stop.load(Ordering::Relaxed) && !handles.iter().any(|h| h.is_finished()) {
            std::thread::sleep(Duration::from_millis(50));
        }
        worker_stop.store(true, Ordering::Relaxed);
        handles
            .into_iter()
            .enumerate()
            .map(|(i, h)| h.join().map_err(|_| LiveError::WorkerPanicked(i)))
            .collect::<Vec<_>>()
    });

    // Sockets are closed by now (each worker dropped its source); clear the slots anyway so a
    // late frame takes the fail-mode path rather than a dead socket, then detach.
    for i in 0..workers {
        for port in 0..setup.ports.len() {
            let _ = program.unregister_socket(port as u8, i as u32);
        }
    }
    let xdp = program.counters().unwrap_or_default();
    let errors = program.detach();
    drop(program);
    let mut workers_out = Vec::with_capacity(workers);
    for r in reports {
        workers_out.push(r?);
    }
    if let Some(e) = errors.into_iter().next() {
        return Err(e.into());
    }
    Ok(RunReport {
        bind_mode,
        huge_pages,
        attach,
        workers: workers_out,
        xdp,
        seconds: started.elapsed().as_secs_f64(),
    })
}

/// The cores no worker is pinned to, when there are any: where the other threads (EVE writer,
/// metrics, control) belong, as Suricata's management CPU set. On the bench's two cores the
/// EVE writer's wake-ups otherwise landed on the worker's core, which it took from the worker.
fn housekeeping_cores(
    all: &[core_affinity::CoreId],
    workers: &[core_affinity::CoreId],
) -> Vec<core_affinity::CoreId> {
    all.iter()
        .filter(|c| !workers.iter().any(|w| w.id == c.id))
        .copied()
        .collect()
}

/// Restricts every thread of the process that runs now to `cores`. Workers are spawned later:
/// they inherit the set from the thread that spawns them and then pin themselves.
fn keep_threads_on(cores: &[core_affinity::CoreId]) {
    // SAFETY: cpu_set_t is a plain bit array; all zeroes is the empty set.
    let mut set: libc::cpu_set_t = unsafe { std::mem::zeroed() };
    for c in cores {
        if c.id < libc::CPU_SETSIZE as usize {
            // SAFETY: the index is below CPU_SETSIZE, the size of the set.
            unsafe { libc::CPU_SET(c.id, &mut set) };
        }
    }
    for tid in super::privilege::task_ids().unwrap_or_default() {
        // SAFETY: `set` is an initialised cpu_set_t of the size passed; a thread that ended
        // meanwhile makes the call fail with ESRCH, which changes nothing.
        unsafe {
            libc::sched_setaffinity(
                tid as libc::pid_t,
                std::mem::size_of::<libc::cpu_set_t>(),
                &set,
            )
        };
    }
}

fn worker_loop<H, M>(
    i: usize,
    mut src: XskSource,
    mut ctl: LiveFlowControl,
    make: &M,
    core: Option<core_affinity::CoreId>,
    ready: std::sync::mpsc::Sender<()>,
) -> WorkerReport
where
    H: FrameHandler,
    M: Fn(usize) -> H,
{
    let pinned = core.filter(|c| core_affinity::set_for_current(*c));
    let mut handler = make(i);
    let _ = ready.send(());
    drop(ready);
    // The source ends itself when the run is stopped; this flag is never set.
    let never = AtomicBool::new(false);
    if let Err(e) = crate::engine::worker::run(
        &mut src,
        &mut handler,
        &mut ctl,
        crate::engine::worker::Clock::Wall,
        &never,
        |_, _| {},
    ) {
        eprintln!("unmask: worker {i}: {e}");
    }
    WorkerReport {
        worker: i,
        queue: src.queue(),
        core: pinned.map(|c| c.id),
        stats: src.stats,
        flow_control: ctl.stats,
        sockets: src.socket_stats(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use core_affinity::CoreId;

    fn ids(v: &[CoreId]) -> Vec<usize> {
        v.iter().map(|c| c.id).collect()
    }

    #[test]
    fn housekeeping_gets_the_cores_no_worker_is_pinned_to() {
        let all: Vec<CoreId> = (0..4).map(|id| CoreId { id }).collect();
        let w = |v: &[usize]| v.iter().map(|&id| CoreId { id }).collect::<Vec<_>>();
        assert_eq!(ids(&housekeeping_cores(&all, &w(&[1]))), [0, 2, 3]);
        assert_eq!(
            ids(&housekeeping_cores(&all, &w(&[0, 1, 2, 3]))),
            [] as [usize; 0]
        );
        // Workers wrapped round the cores (more workers than cores) leave nothing spare.
        assert_eq!(
            ids(&housekeeping_cores(&all[..2], &w(&[1, 0, 1]))),
            [] as [usize; 0]
        );
        // Unpinned workers (no cores listed): nothing is restricted.
        assert_eq!(ids(&housekeeping_cores(&[], &[])), [] as [usize; 0]);
    }
}
