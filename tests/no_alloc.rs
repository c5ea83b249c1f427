//! Zero heap allocations per packet in steady state: established flows that inspection has
//! already decided go through the engine without touching the allocator.

mod common;

use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::workloads;
use unmask::verdict::{FrameHandler, NoFlowControl};

#[global_allocator]
static GLOBAL: common::alloc::Counting = common::alloc::Counting;

fn feed(engine: &mut Engine, frames: &[(Timestamp, Vec<u8>)]) {
    let mut ctl = NoFlowControl::default();
    for (i, (ts, data)) in frames.iter().enumerate() {
        let frame = Frame::ethernet(data, *ts);
        engine.handle(&frame);
        if i % 64 == 63 {
            engine.after_batch(Timestamp(0), &mut ctl);
        }
    }
}

/// An engine for 4096 flows whose EVE records queue up unread (the receiver is kept alive).
fn engine(mut config: Config) -> (Engine, crossbeam_channel::Receiver<EveRecord>) {
    config.flow.capacity = 4096;
    let (tx, rx) = crossbeam_channel::bounded(1 << 16);
    let engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        Some(tx),
    );
    (engine, rx)
}

#[test]
fn decided_flows_cost_no_allocation_per_packet() {
    let _turn = common::alloc::measuring();
    let mut config = Config::default();
    // Following the records after the handshake (tls_in_tls) keeps these flows under
    // inspection for 25 more records; this test is about flows already decided.
    config.detect.tls_in_tls.enabled = false;
    let (mut engine, rx) = engine(config);
    // Warm-up: 64 HTTPS flows through their handshakes, so inspection decides each of them.
    let (warm, steady) = workloads::established_https(64, 20_000, 200_000);
    feed(&mut engine, &warm);
    assert_eq!(
        engine.streams_in_use(),
        0,
        "every warm flow must be decided before measuring"
    );

    let fast_before = engine.counters().fast_path;
    let before = common::alloc::allocations();
    feed(&mut engine, &steady);
    let after = common::alloc::allocations();
    assert!(steady.len() > 10_000, "enough packets to mean something");
    assert_eq!(
        after - before,
        0,
        "{} allocations over {} steady-state packets",
        after - before,
        steady.len()
    );
    assert_eq!(
        (engine.counters().fast_path - fast_before) as usize,
        steady.len(),
        "every steady-state packet took the decided-flow fast path"
    );
    drop(engine);
    drop(rx);
}

#[test]
fn following_records_after_the_handshake_costs_no_allocation() {
    let _turn = common::alloc::measuring();
    let config = Config::default();
    assert!(config.detect.tls_in_tls.enabled, "on by default");
    let (mut engine, rx) = engine(config);
    let (warm, steady) = workloads::established_https(64, 20_000, 200_000);
    feed(&mut engine, &warm);
    assert_eq!(
        engine.streams_in_use(),
        64,
        "after the handshake each flow's records are still followed"
    );
    let before = common::alloc::allocations();
    feed(&mut engine, &steady);
    let after = common::alloc::allocations();
    assert_eq!(
        after - before,
        0,
        "{} allocations while following records",
        after - before
    );
    assert_eq!(
        engine.streams_in_use(),
        0,
        "the stream depth ends the following of bulk flows"
    );
    drop(engine);
    drop(rx);
}
