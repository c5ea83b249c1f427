//! Metering costs the worker no allocation: the per-packet timing and counting, the per-batch
//! histograms and even publishing a snapshot on every batch run on preallocated memory, while
//! an exporter thread collects concurrently.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::{self, tls, Conversation, TimedFrame};
use unmask::output::metrics::{Hub, HubOptions, Metered, RunMode};
use unmask::verdict::{FrameHandler, Mode, NoFlowControl};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

fn feed<H: FrameHandler>(h: &mut H, frames: &[TimedFrame], batch: usize) {
    let mut ctl = NoFlowControl::default();
    for chunk in frames.chunks(batch) {
        for (ts, data) in chunk {
            h.handle(&Frame::ethernet(data, *ts));
        }
        h.after_batch(Timestamp(0), &mut ctl);
    }
}

/// 64 HTTPS flows: (handshakes, which decide each flow; bulk data afterwards).
fn flows() -> (Vec<TimedFrame>, Vec<TimedFrame>) {
    let mut warm = Vec::new();
    let mut steady = Vec::new();
    for i in 0..64u16 {
        let client = format!("10.77.2.{}:{}", 1 + i % 200, 41_000 + i)
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
            .client(&tls::app_data(20_000))
            .server(&tls::app_data(200_000))
            .into_frames();
        warm.extend_from_slice(&frames[..n]);
        steady.extend_from_slice(&frames[n..]);
    }
    warm.sort_by_key(|f| f.0);
    steady.sort_by_key(|f| f.0);
    (warm, steady)
}

#[test]
fn metering_and_publishing_allocate_nothing_on_the_worker() {
    let mut config = Config::default();
    // Following the records after the handshake (tls_in_tls) keeps these flows under
    // inspection for 25 more records; this test is about flows already decided.
    config.detect.tls_in_tls.enabled = false;
    config.flow.capacity = 4096;
    config.verdict.mode = Mode::Monitor;
    // Publish after every batch and time every packet: the most the worker can be asked to do.
    config.metrics.publish_interval_ms = 1;
    let mut opts = HubOptions::from_config(&config, RunMode::Replay);
    opts.publish_interval = Duration::ZERO;
    opts.sample_every = 1;
    let hub = Hub::new(opts);
    let engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        None,
    );
    let mut m = Metered::new(engine, hub.register_worker(0));
    let (warm, steady) = flows();
    feed(&mut m, &warm, 64);
    assert_eq!(m.inner().streams_in_use(), 0, "warm flows decided");

    let stop = Arc::new(AtomicBool::new(false));
    let collector = {
        let hub = Arc::clone(&hub);
        let stop = Arc::clone(&stop);
        std::thread::spawn(move || {
            let mut scrapes = 0u64;
            while !stop.load(Ordering::Relaxed) {
                assert!(!hub.families().is_empty());
                scrapes += 1;
            }
            scrapes
        })
    };
    let publishes_before = m.probe().loops().publishes;
    common::alloc::count_this_thread(true);
    let before = common::alloc::allocations();
    feed(&mut m, &steady, 64);
    let allocations = common::alloc::allocations() - before;
    common::alloc::count_this_thread(false);
    stop.store(true, Ordering::Relaxed);
    let scrapes = collector.join().unwrap();

    let publishes = m.probe().loops().publishes - publishes_before;
    assert!(steady.len() > 10_000, "enough packets to mean something");
    assert_eq!(
        publishes as usize,
        steady.len().div_ceil(64),
        "one per batch"
    );
    assert!(scrapes > 0, "the exporter collected concurrently");
    assert_eq!(
        allocations,
        0,
        "{allocations} allocations over {} packets and {publishes} publishes",
        steady.len()
    );
    assert_eq!(m.probe().missed, 0);

    // And nothing was lost on the way: the totals hold every packet and every sample.
    let total_frames = (warm.len() + steady.len()) as u64;
    let t = &hub.collect()[0];
    assert_eq!(t.view.counters.packets, total_frames);
    assert_eq!(t.timing.packet.count(), total_frames);
    assert_eq!(t.loops.frames, total_frames);
}
