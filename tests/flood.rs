//! A scaled-down flood through the engine: a million 64-byte frames over random 5-tuples with
//! the fixture flows spread through them, into a flow table of 4096. Memory stays within the
//! bound the config promises and does not grow with the flood, the table evicts and then
//! refuses, and every fixture flow is judged as it is without the flood. (The ten-million
//! frame run in release mode, and the same flood live through the lab, are scripts/flood.sh.)

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::worker::{self, Clock};
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures::flood::{self, Flood, FloodCounts, FloodSpec, MemoryBound};
use unmask::flow::table::TableStats;
use unmask::verdict::NoFlowControl;

/// Memory figures are per process: one test of this file at a time.
static SERIAL: Mutex<()> = Mutex::new(());

const MIB: u64 = 1024 * 1024;

/// A field of /proc/self/status in bytes (VmRSS, VmHWM).
fn status_bytes(field: &str) -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().strip_suffix("kB")?.trim().parse::<u64>().ok())
        .map(|kb| kb * 1024)
        .unwrap_or_else(|| panic!("{field} not in /proc/self/status"))
}

/// Resets the peak RSS to the current RSS (Linux >= 4.0); false when not allowed.
fn reset_peak() -> bool {
    std::fs::write("/proc/self/clear_refs", "5").is_ok()
}

const CAPACITY: u32 = 4096;

/// The flood config: a table far smaller than the flood and modest stream and EVE limits, so
/// the bound is tight enough to mean something. Flow records stay on: a million of them may
/// overrun the EVE queue (counted as dropped), but never at the expense of alerts.
fn flood_config() -> Config {
    let mut c = Config::default();
    c.flow.capacity = CAPACITY;
    c.stream.memcap = 4 * MIB;
    c.output.queue_capacity = 4096;
    c
}

struct Outcome {
    counters: Counters,
    table: TableStats,
    /// Findings per client port of the fixture flows (10.77.0.0/24).
    findings: BTreeMap<u16, BTreeSet<String>>,
    /// Alerts on anything else (the flood must raise none).
    other_alerts: u64,
    /// VmRSS after each quarter of the frames.
    rss: Vec<u64>,
    frames: u64,
    kinds: FloodCounts,
}

/// Runs one engine over a flood with a bounded EVE queue drained by a thread that keeps only
/// the fixture flows' findings (the EVE writer's place).
fn run(config: &Config, mut source: Flood) -> Outcome {
    let (tx, rx) = crossbeam_channel::bounded::<EveRecord>(config.output.queue_capacity as usize);
    let consumer = std::thread::spawn(move || {
        let mut findings: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
        let mut other = 0;
        for rec in rx {
            if let EveRecord::Alert(a) = rec {
                if a.meta.client_addr[..3] == [10, 77, 0] {
                    findings
                        .entry(a.meta.client_port)
                        .or_default()
                        .insert(a.finding.kind.name().to_string());
                } else {
                    other += 1;
                }
            }
        }
        (findings, other)
    });
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    let total = source.total_frames();
    let mut rss = Vec::new();
    let mut next_sample = total / 4;
    let stop = AtomicBool::new(false);
    worker::run(
        &mut source,
        &mut engine,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, e| {
            if e.counters().packets >= next_sample {
                rss.push(status_bytes("VmRSS"));
                next_sample += total / 4;
            }
        },
    )
    .expect("a flood source never fails");
    let counters = engine.counters().clone();
    let table = engine.table_stats();
    drop(engine);
    let (findings, other_alerts) = consumer.join().expect("EVE consumer");
    Outcome {
        kinds: source.counts(),
        frames: counters.packets,
        counters,
        table,
        findings,
        other_alerts,
        rss,
    }
}

#[test]
fn a_million_frame_flood_stays_in_bounds_and_every_fixture_flow_is_still_judged() {
    let _serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    let config = flood_config();
    let spec = FloodSpec::new(1_000_000);

    // The fixture flows alone, at the times they have in the flood: what the engine says
    // about them when nothing else is going on.
    let alone = run(
        &config,
        Flood::new(
            FloodSpec {
                embedded_only: true,
                ..spec
            },
            flood::embedded_flows(),
        ),
    );

    let source = Flood::new(spec, flood::embedded_flows());
    let flows: Vec<(String, u16, &'static [&'static str])> = source
        .flows()
        .iter()
        .map(|f| {
            (
                f.name.to_string(),
                flood::client_port(f).expect("client port"),
                f.expect_findings,
            )
        })
        .collect();
    let generator_heap = source.heap_bytes() as u64;
    let bound = MemoryBound::of(&config);
    let peak_reset = reset_peak();
    let before = status_bytes("VmRSS");
    let hwm_before = status_bytes("VmHWM");
    let out = run(&config, source);
    let peak = status_bytes("VmHWM");
    let c = &out.counters;

    eprintln!(
        "flood: {} frames, evicted {}, refused {} ({} packets without a flow), findings on fixture flows {:?}",
        out.frames, out.table.evicted, out.table.refused, c.flows_refused_packets, out.findings
    );
    eprintln!(
        "memory: RSS {:.1} MiB before, peak {:.1} MiB (grew {:.1} MiB; peak reset: {peak_reset}); bound {bound} + generator {:.1} MiB; RSS by quarter {:?} MiB",
        before as f64 / MIB as f64,
        peak as f64 / MIB as f64,
        peak.saturating_sub(before) as f64 / MIB as f64,
        generator_heap as f64 / MIB as f64,
        out.rss.iter().map(|r| r / MIB).collect::<Vec<_>>()
    );

    // Memory: the peak grew by less than every structure the config sizes, counted full, plus
    // the generator's own frames and 8 MiB for the engine's fixed parts, the EVE thread and
    // the allocator; and once the table is full, RSS no longer follows the flood.
    let start = if peak_reset {
        before
    } else {
        before.max(hwm_before)
    };
    let allowed = bound.total() as u64 + generator_heap + 8 * MIB;
    assert!(
        peak.saturating_sub(start) < allowed,
        "peak grew {} bytes, bound {allowed}",
        peak.saturating_sub(start)
    );
    assert_eq!(out.rss.len(), 4, "{:?}", out.rss);
    let growth = out.rss[3].saturating_sub(out.rss[0]);
    assert!(
        growth < 2 * MIB,
        "RSS grew {growth} bytes from the first to the last quarter"
    );

    // The table was full. Through the first phase every flood frame started a flow that a
    // later one evicted (random 5-tuples practically never repeat), and so did each fixture
    // flow; in the second, the first CAPACITY completed handshakes filled it with established
    // flows nobody may evict, and each frame of every later connection was refused.
    let k = out.kinds;
    assert_eq!(c.packets, k.total());
    let phase_one = k.syn + k.rst + k.fin + k.ack + flows.len() as u64;
    assert!(
        out.table.evicted.abs_diff(phase_one) <= phase_one / 1000,
        "{:?} {k:?}",
        out.table
    );
    let connections = k.handshake / 3;
    assert_eq!(
        out.table.refused,
        (connections - u64::from(CAPACITY)) * 3,
        "{:?}",
        out.table
    );
    assert_eq!(c.flows_refused_packets, out.table.refused);
    assert_eq!(c.malformed.iter().sum::<u64>(), 0);
    assert_eq!(c.stream_memcap_refused, 0);

    // Judgement: the flood raises nothing of its own, and every fixture flow gets the same
    // findings as without the flood — its expected ones, or none for benign flows.
    assert_eq!(out.other_alerts, 0);
    assert_eq!(alone.other_alerts, 0);
    let mut failures = Vec::new();
    for (name, port, expected) in &flows {
        let got = out.findings.get(port).cloned().unwrap_or_default();
        let without = alone.findings.get(port).cloned().unwrap_or_default();
        if got != without {
            failures.push(format!("{name}: {got:?} in the flood, {without:?} alone"));
        }
        let want: BTreeSet<String> = expected.iter().map(|s| s.to_string()).collect();
        if !want.is_subset(&got) || (want.is_empty() && !got.is_empty()) {
            failures.push(format!("{name}: {got:?}, expected {want:?}"));
        }
    }
    assert!(flows.iter().filter(|f| !f.2.is_empty()).count() >= 20);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
