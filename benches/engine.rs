//! Engine throughput per core over in-memory captures (no I/O): packets/s is criterion's
//! "elements" throughput. Run with `cargo bench --bench engine`.
//!
//! Each workload also runs `_metered`: the engine inside `metrics::Metered` with the default
//! metrics settings (publish every 100 ms, time one packet in 64, every batch timed), so the
//! two numbers show what metrics cost. The long-running `established` variant also has an
//! exporter thread collecting every 100 ms (a scrape every 15 s is the usual load); the others
//! build a fresh engine per iteration and publish at least once (the first batch).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::{self, workloads, TimedFrame};
use unmask::output::metrics::{Hub, HubOptions, Metered, RunMode};
use unmask::verdict::{FrameHandler, NoFlowControl};

/// Boxed: an `Engine` is ~72 KiB by value, and criterion's `iter_batched_ref` over inputs that
/// large (it collects them into a `Vec`) kept LLVM optimising this crate for 22 minutes of a
/// 35-minute cold `cargo bench` build (issue 13); boxed, the crate builds in seconds. Only the
/// untimed set-up changes: `feed` still calls the engine directly.
fn engine(capacity: u32) -> Box<Engine> {
    let mut c = Config::default();
    c.flow.capacity = capacity;
    Box::new(Engine::new(
        &c.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        None,
    ))
}

fn metered(capacity: u32, hub: &Arc<Hub>) -> Box<Metered<Engine>> {
    Box::new(Metered::new(*engine(capacity), hub.register_worker(0)))
}

fn hub() -> Arc<Hub> {
    Hub::new(HubOptions::from_config(&Config::default(), RunMode::Replay))
}

/// Collects (as a scrape would) every 100 ms until dropped.
struct Collector {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Collector {
    fn start(hub: &Arc<Hub>) -> Collector {
        let stop = Arc::new(AtomicBool::new(false));
        let (h, s) = (Arc::clone(hub), Arc::clone(&stop));
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                criterion::black_box(h.families());
                std::thread::sleep(Duration::from_millis(100));
            }
        });
        Collector {
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn feed(engine: &mut impl FrameHandler, frames: &[TimedFrame]) {
    let mut ctl = NoFlowControl::default();
    for (i, (ts, data)) in frames.iter().enumerate() {
        let frame = Frame::ethernet(data, *ts);
        criterion::black_box(engine.handle(&frame));
        if i % 256 == 255 {
            engine.after_batch(Timestamp(0), &mut ctl);
        }
    }
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");

    let flood = workloads::syn_flood(100_000);
    g.throughput(Throughput::Elements(flood.len() as u64));
    g.bench_function("syn_flood_64B_100k_flows", |b| {
        b.iter_batched_ref(
            || engine(1 << 20),
            |e| feed(&mut **e, &flood),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("syn_flood_64B_100k_flows_metered", |b| {
        b.iter_batched_ref(
            || metered(1 << 20, &hub()),
            |e| feed(&mut **e, &flood),
            BatchSize::LargeInput,
        )
    });

    let (warm, steady) = workloads::established_https(64, 0, 2000 * 1460 / 2);
    let mut e = engine(1 << 16);
    feed(&mut *e, &warm);
    g.throughput(Throughput::Elements(steady.len() as u64));
    g.bench_function("established_data_64_flows", |b| {
        b.iter(|| feed(&mut *e, &steady))
    });
    let hub_est = hub();
    let mut m = metered(1 << 16, &hub_est);
    feed(&mut *m, &warm);
    let collector = Collector::start(&hub_est);
    g.bench_function("established_data_64_flows_metered", |b| {
        b.iter(|| feed(&mut *m, &steady))
    });
    drop(collector);

    let mixed = fixtures::standard_capture();
    g.throughput(Throughput::Elements(mixed.len() as u64));
    g.bench_function("mixed_tls_http_ssh_fixture", |b| {
        b.iter_batched_ref(
            || engine(1 << 16),
            |e| feed(&mut **e, &mixed),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("mixed_tls_http_ssh_fixture_metered", |b| {
        b.iter_batched_ref(
            || metered(1 << 16, &hub()),
            |e| feed(&mut **e, &mixed),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
