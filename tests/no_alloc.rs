//! Zero heap allocations per packet in steady state: established flows that inspection has
//! already decided go through the engine without touching the allocator.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU64, Ordering};

use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::workloads;
use unmask::verdict::{FrameHandler, NoFlowControl};

struct Counting;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

// SAFETY: defers to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

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

#[test]
fn decided_flows_cost_no_allocation_per_packet() {
    let mut config = Config::default();
    config.flow.capacity = 4096;
    // Following the records after the handshake (tls_in_tls) keeps these flows under
    // inspection for 25 more records; this test is about flows already decided.
    config.detect.tls_in_tls.enabled = false;
    let (tx, rx) = crossbeam_channel::bounded(1 << 16);
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        Some(tx),
    );
    // Warm-up: 64 HTTPS flows through their handshakes, so inspection decides each of them.
    let (warm, steady) = workloads::established_https(64, 20_000, 200_000);
    feed(&mut engine, &warm);
    assert_eq!(
        engine.streams_in_use(),
        0,
        "every warm flow must be decided before measuring"
    );

    let fast_before = engine.counters().fast_path;
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    feed(&mut engine, &steady);
    let after = ALLOCATIONS.load(Ordering::Relaxed);
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
