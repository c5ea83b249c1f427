//! A fixed engine workload for instruction-count profiling, which stays repeatable on a busy
//! machine where wall-clock benchmarks do not:
//!
//!   cargo build --release --example engine_profile
//!   valgrind --tool=callgrind target/release/examples/engine_profile established 20
//!
//! Workloads: `established` (data packets of decided HTTPS flows), `syn` (a SYN flood over
//! distinct 5-tuples), `mixed` (the fixture capture), `oneway` (bench-live's tcp64 traffic:
//! 64 one-directional midstream flows of 6-byte segments, past the stream depth but not yet
//! silent long enough to be concluded; a pass is 1,000 segments per flow), `oneway-judged`
//! (the same flows once concluded), `prefault` (times
//! mapping a default flow table). The count is how many passes to make.
//! A third argument turns behaviour checks off, to measure what they cost:
//! `fully_encrypted`, `tls_in_tls`, or both comma-separated.

use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::{Engine, EngineOptions};
use unmask::fixtures::{self, workloads, TimedFrame};
use unmask::verdict::{FrameHandler, NoFlowControl};

fn feed(engine: &mut Engine, frames: &[TimedFrame]) -> u64 {
    let mut ctl = NoFlowControl::default();
    let mut dropped = 0;
    for (i, (ts, data)) in frames.iter().enumerate() {
        let frame = Frame::ethernet(data, *ts);
        dropped += (engine.handle(&frame) == unmask::capture::Action::Drop) as u64;
        if i % 256 == 255 {
            engine.after_batch(Timestamp(0), &mut ctl);
        }
    }
    dropped
}

fn engine(off: &str) -> Engine {
    let mut c = Config::default();
    c.flow.capacity = 1 << 20;
    for check in off.split(',').filter(|s| !s.is_empty()) {
        match check {
            "fully_encrypted" => c.detect.fully_encrypted.enabled = false,
            "tls_in_tls" => c.detect.tls_in_tls.enabled = false,
            "relay" => c.detect.relay.enabled = false,
            "handshake_shape" => c.detect.handshake_shape.enabled = false,
            other => {
                eprintln!("engine_profile: unknown check {other:?}; accepted: fully_encrypted, tls_in_tls, relay, handshake_shape");
                std::process::exit(2);
            }
        }
    }
    Engine::new(
        &c.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        None,
    )
}

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "established".into());
    let passes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(10);
    let off = args.next().unwrap_or_default();
    let (mut packets, mut dropped) = (0u64, 0u64);
    match which.as_str() {
        "established" => {
            let (warm, steady) = workloads::established_https(64, 0, 1_460_000);
            let mut e = engine(&off);
            feed(&mut e, &warm);
            for _ in 0..passes {
                dropped += feed(&mut e, &steady);
                packets += steady.len() as u64;
            }
        }
        "syn" => {
            let flood = workloads::syn_flood(100_000);
            for _ in 0..passes {
                let mut e = engine(&off);
                dropped += feed(&mut e, &flood);
                packets += flood.len() as u64;
            }
        }
        "mixed" => {
            let mixed = fixtures::standard_capture();
            for _ in 0..passes {
                let mut e = engine(&off);
                dropped += feed(&mut e, &mixed);
                packets += mixed.len() as u64;
            }
        }
        "oneway" | "oneway-judged" => {
            // The generator's frames (unmask-diag gen), one every microsecond: 64 flows x
            // 3,000 segments (past the 16 KiB depth) as warm-up, then the passes, all within
            // the first seconds, before flow.one_way_secs concludes them.
            const FLOWS: usize = 64;
            let mut frames =
                unmask::datapath::xsk::test_frames(FLOWS as u16, 60, [2, 0, 0, 0, 0, 2]);
            let mut seq = [0u32; FLOWS];
            let mut ts = 0u64;
            let mut round = |frames: &mut Vec<Vec<u8>>, ts: &mut u64, out: &mut Vec<TimedFrame>| {
                for (f, s) in frames.iter_mut().zip(seq.iter_mut()) {
                    unmask::datapath::xsk::set_test_seq(f, *s);
                    *s = s.wrapping_add(6);
                    *ts += 1_000;
                    out.push((Timestamp(*ts), f.clone()));
                }
            };
            let mut warm = Vec::new();
            for _ in 0..3_000 {
                round(&mut frames, &mut ts, &mut warm);
            }
            if which == "oneway-judged" {
                // Past flow.one_way_secs: the first steady segment of each flow concludes it.
                ts += 5_000_000_000;
            }
            let mut steady = Vec::new();
            for _ in 0..passes * 1_000 {
                round(&mut frames, &mut ts, &mut steady);
            }
            let mut e = engine(&off);
            feed(&mut e, &warm);
            dropped += feed(&mut e, &steady);
            packets += steady.len() as u64;
        }
        "prefault" => {
            // Start-up cost of mapping a default-capacity flow table (wall time, not a
            // callgrind figure): `engine_profile prefault 1`.
            let c = Config::default();
            for _ in 0..passes {
                let mut e = Engine::new(
                    &c.engine(),
                    EngineOptions {
                        worker: 0,
                        packet_numbers: false,
                    },
                    None,
                );
                let t = std::time::Instant::now();
                e.prefault_flow_table();
                println!(
                    "prefault: {} flows, {:.1} ms",
                    c.flow.capacity,
                    t.elapsed().as_secs_f64() * 1e3
                );
            }
        }
        other => {
            eprintln!(
                "engine_profile: unknown workload {other:?}; accepted: established, syn, mixed, oneway, oneway-judged, prefault"
            );
            std::process::exit(2);
        }
    }
    println!("{which}: {packets} packets, {dropped} dropped");
}
