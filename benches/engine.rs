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

use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::metrics::{Hub, HubOptions, Metered, RunMode};
use unmask::fixtures::{self, tls, Conversation, Flags, TimedFrame};
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

fn metered(capacity: u32, hub: &Arc<Hub>) -> Metered<Engine> {
    Metered::new(engine(capacity), hub.register_worker(0))
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

/// 64-byte SYNs over `n` distinct 5-tuples (xorshift-spread addresses and ports).
fn syn_flood(n: usize) -> Vec<TimedFrame> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..n)
        .map(|i| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let src = std::net::SocketAddr::from((
                [10, (x >> 8) as u8, (x >> 16) as u8, (x >> 24) as u8],
                1024 + (x >> 32) as u16 % 60_000,
            ));
            let dst = std::net::SocketAddr::from(([10, 77, 0, 2], 443));
            let mut f = fixtures::tcp_frame(src, dst, [2; 6], [4; 6], x as u32, 0, Flags::SYN, &[]);
            f.resize(64, 0);
            (fixtures::FIXTURE_EPOCH.add_nanos(i as u64 * 1000), f)
        })
        .collect()
}

/// `flows` HTTPS flows: (warm-up frames through the handshake, steady-state data frames).
fn established(flows: u16, data_packets_per_flow: usize) -> (Vec<TimedFrame>, Vec<TimedFrame>) {
    let mut warm = Vec::new();
    let mut steady = Vec::new();
    for i in 0..flows {
        let client = format!("10.77.{}.{}:{}", 1 + i / 250, 1 + i % 250, 40_000 + i)
            .parse()
            .unwrap();
        let server = "10.77.0.2:443".parse().unwrap();
        let conv = Conversation::new(client, server, fixtures::FIXTURE_EPOCH)
            .handshake()
            .client(&tls::client_hello(&tls::Hello::default()))
            .server(&tls::server_flight_tls12(
                0xc02f,
                Some("h2"),
                &[fixtures::CERT_WWW_EXAMPLE_COM],
            ))
            .client(&tls::client_finish_tls12())
            .server(&tls::server_finish_tls12());
        let n = conv.frames().len();
        let frames = conv
            .server(&tls::app_data(data_packets_per_flow * 1460 / 2))
            .into_frames();
        warm.extend_from_slice(&frames[..n]);
        steady.extend_from_slice(&frames[n..]);
    }
    warm.sort_by_key(|f| f.0);
    steady.sort_by_key(|f| f.0);
    (warm, steady)
}

fn bench(c: &mut Criterion) {
    let mut g = c.benchmark_group("engine");

    let flood = syn_flood(100_000);
    g.throughput(Throughput::Elements(flood.len() as u64));
    g.bench_function("syn_flood_64B_100k_flows", |b| {
        b.iter_batched_ref(
            || engine(1 << 20),
            |e| feed(e, &flood),
            BatchSize::LargeInput,
        )
    });
    g.bench_function("syn_flood_64B_100k_flows_metered", |b| {
        b.iter_batched_ref(
            || metered(1 << 20, &hub()),
            |e| feed(e, &flood),
            BatchSize::LargeInput,
        )
    });

    let (warm, steady) = established(64, 2000);
    let mut e = engine(1 << 16);
    feed(&mut e, &warm);
    g.throughput(Throughput::Elements(steady.len() as u64));
    g.bench_function("established_data_64_flows", |b| {
        b.iter(|| feed(&mut e, &steady))
    });
    let hub_est = hub();
    let mut m = metered(1 << 16, &hub_est);
    feed(&mut m, &warm);
    let collector = Collector::start(&hub_est);
    g.bench_function("established_data_64_flows_metered", |b| {
        b.iter(|| feed(&mut m, &steady))
    });
    drop(collector);

    let mixed = fixtures::standard_capture();
    g.throughput(Throughput::Elements(mixed.len() as u64));
    g.bench_function("mixed_tls_http_ssh_fixture", |b| {
        b.iter_batched_ref(
            || engine(1 << 16),
            |e| feed(e, &mixed),
            BatchSize::SmallInput,
        )
    });
    g.bench_function("mixed_tls_http_ssh_fixture_metered", |b| {
        b.iter_batched_ref(
            || metered(1 << 16, &hub()),
            |e| feed(e, &mixed),
            BatchSize::SmallInput,
        )
    });
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
