//! Engine throughput per core over in-memory captures (no I/O): packets/s is criterion's
//! "elements" throughput. Run with `cargo bench --bench engine`.

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};

use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
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

    let (warm, steady) = established(64, 2000);
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
