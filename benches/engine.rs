//! Engine throughput per core over in-memory captures (no I/O): packets/s is criterion's
//! "elements" throughput. Run with `cargo bench --bench engine`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::{self, workloads, TimedFrame};
use unmask::source::{Frame, LinkType, Timestamp};
use unmask::verdict::{FrameHandler, NoFlowControl};

fn engine(capacity: u32) -> Engine {
    let mut c = Config::default();
    c.flow.capacity = capacity;
    Engine::new(
        &c,
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        None,
    )
}

fn feed(engine: &mut Engine, frames: &[TimedFrame]) {
    let mut ctl = NoFlowControl::default();
    for (i, (ts, data)) in frames.iter().enumerate() {
        let frame = Frame {
            data,
            ts: *ts,
            link: LinkType::Ethernet,
            wire_len: data.len() as u32,
            port: 0,
            queue: 0,
        };
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
            |e| feed(e, &flood),
            BatchSize::LargeInput,
        )
    });

    let (warm, steady) = workloads::established_https(64, 0, 2000 * 1460 / 2);
    let mut e = engine(1 << 16);
    feed(&mut e, &warm);
    g.throughput(Throughput::Elements(steady.len() as u64));
    g.bench_function("established_data_64_flows", |b| {
        b.iter(|| feed(&mut e, &steady))
    });

    let mixed = fixtures::standard_capture();
    g.throughput(Throughput::Elements(mixed.len() as u64));
    g.bench_function("mixed_tls_http_ssh_fixture", |b| {
        b.iter_batched_ref(
            || engine(1 << 16),
            |e| feed(e, &mixed),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
