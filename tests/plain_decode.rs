//! The fixed-offset decode of plain Ethernet/IP/TCP frames (`wire::decode_plain`, on by
//! default) against the tunnel-capable decode alone: every shared capture, replayed both ways
//! in block mode, gives the same verdict per frame, the same EVE records in the same order,
//! and the same counters.

mod common;

use serde_json::Value;
use unmask::capture::pcap::CaptureSource;
use unmask::capture::{Action, Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::worker::{self, Clock};
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures::{self, TimedFrame, FIXTURE_EPOCH};
use unmask::output::eve::EveFormat;
use unmask::verdict::{FlowControl, FrameHandler, Mode, NoFlowControl};

/// An engine that remembers the action it gave each frame.
struct Recording {
    engine: Engine,
    actions: Vec<Action>,
}

impl FrameHandler for Recording {
    fn handle(&mut self, frame: &Frame<'_>) -> Action {
        let a = self.engine.handle(frame);
        self.actions.push(a);
        a
    }

    fn after_batch(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.engine.after_batch(now, ctl)
    }

    fn finish(&mut self, now: Timestamp, ctl: &mut dyn FlowControl) {
        self.engine.finish(now, ctl)
    }
}

struct Outcome {
    actions: Vec<Action>,
    records: Vec<Value>,
    counters: Counters,
}

fn replay(path: &std::path::Path, plain: bool) -> Outcome {
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    let mut engine_config = config.engine();
    // As replay runs it (`auto`): captures hold offloaded, unfinished checksums.
    engine_config.verify_checksums = false;
    let (tx, rx) = crossbeam_channel::unbounded::<EveRecord>();
    let mut engine = Engine::new(
        &engine_config,
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    engine.set_plain_decode(plain);
    let mut handler = Recording {
        engine,
        actions: Vec::new(),
    };
    let mut source = CaptureSource::open(&[path.to_path_buf()], 64).expect("capture opens");
    let stop = std::sync::atomic::AtomicBool::new(false);
    // Damaged captures end in an error; both runs meet it at the same frame.
    let _ = worker::run(
        &mut source,
        &mut handler,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, _| {},
    );
    let counters = handler.engine.counters().clone();
    drop(handler.engine);
    Outcome {
        actions: handler.actions,
        records: rx
            .try_iter()
            .map(|r| r.to_json(&EveFormat::default()))
            .collect(),
        counters,
    }
}

#[test]
fn plain_decode_gives_the_same_verdicts_records_and_counters_on_every_shared_capture() {
    let Some(dir) = common::shared_pcaps("plain_decode") else {
        return;
    };
    let mut caps = Vec::new();
    common::captures(&dir, &mut caps);
    caps.sort();
    assert!(!caps.is_empty(), "no captures under {}", dir.display());
    let mut failures = Vec::new();
    let (mut frames, mut tcp) = (0usize, 0u64);
    for cap in &caps {
        let Ok(_) = CaptureSource::open(std::slice::from_ref(cap), 64) else {
            continue;
        };
        let on = replay(cap, true);
        let off = replay(cap, false);
        let name = cap.display();
        frames += on.actions.len();
        tcp += on.counters.tcp;
        if on.actions != off.actions {
            failures.push(format!("{name}: verdicts differ"));
        }
        if on.records != off.records {
            let at = on
                .records
                .iter()
                .zip(&off.records)
                .position(|(a, b)| a != b)
                .unwrap_or(on.records.len().min(off.records.len()));
            failures.push(format!(
                "{name}: EVE records differ ({} vs {}), first at {at}: {:?} vs {:?}",
                on.records.len(),
                off.records.len(),
                on.records.get(at),
                off.records.get(at)
            ));
        }
        if on.counters != off.counters {
            failures.push(format!(
                "{name}: counters differ: {:?} vs {:?}",
                on.counters, off.counters
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    assert!(frames > 10_000 && tcp > 0, "{frames} frames, {tcp} TCP");
}

fn addr(host: u8, port: u16) -> std::net::SocketAddr {
    std::net::SocketAddr::from(([10, 9, 0, host], port))
}

/// One segment of the crafted one-directional flows below: `len` bytes of `fill` at `seq`,
/// with the given acknowledgment number and IP TTL (IP checksum made again).
#[allow(clippy::too_many_arguments)]
fn segment(
    from: std::net::SocketAddr,
    to: std::net::SocketAddr,
    ts: Timestamp,
    seq: u32,
    ack: u32,
    ttl: u8,
    payload: &[u8],
) -> TimedFrame {
    let mut f = fixtures::tcp_frame(
        from,
        to,
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 2],
        seq,
        ack,
        fixtures::Flags::ACK | fixtures::Flags::PSH,
        payload,
    );
    f[22] = ttl;
    f[24..26].copy_from_slice(&[0, 0]);
    let sum = f[14..34]
        .chunks(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum::<u32>();
    let folded = (sum & 0xffff) + (sum >> 16);
    let folded = (folded & 0xffff) + (folded >> 16);
    f[24..26].copy_from_slice(&(!(folded as u16)).to_be_bytes());
    (ts, f)
}

#[test]
fn a_one_directional_flow_waiting_to_be_concluded_takes_the_lean_path_to_the_same_outcome() {
    // Packets of a one-directional flow past the stream depth, before flow.one_way_secs, go
    // by the lean path (Engine::one_way_waiting) unless they could change something: each
    // kind of exception below must come out as the full decode alone makes it, with
    // checksums verified (as live).
    let ms = |i: u32| FIXTURE_EPOCH.add_nanos(u64::from(i) * 1_000_000);
    let (c1, s1) = (addr(1, 40200), addr(2, 5001));
    let (c2, s2) = (addr(3, 40201), addr(4, 5002));
    let data = [0x5au8; 60];
    let mut frames = Vec::new();
    // 60-byte segments: the 16 KiB depth is passed at segment 274, the flow concluded at 5 s.
    for i in 0..6000u32 {
        let seq = 1000 + i * 60;
        let (mut ack, mut ttl) = (77, 64);
        match i {
            // The acknowledgment moves on, and comes back.
            1000..=1009 => ack = 78,
            // Below the TTL floor: left out of inspection.
            1500 | 2500 => ttl = 40,
            // One hop down, within the tolerance; above the floor after the conclusion.
            1700 => ttl = 63,
            5500 => ttl = 70,
            _ => {}
        }
        let mut frame = segment(c1, s1, ms(i), seq, ack, ttl, &data);
        if i == 100 || i == 3001 {
            // A bad checksum inside the depth (left out) and past it (only counted).
            frame.1[60] ^= 0xff;
        }
        frames.push(frame);
        if i % 89 == 0 {
            frames.push(segment(c1, s1, ms(i), seq + 60, ack, ttl, b""));
        }
        if i == 4000 {
            // A retransmission inside the depth with other bytes: a conflicting overlap.
            frames.push(segment(c1, s1, ms(i), 1000 + 5 * 60, 77, 64, &[0x33; 60]));
        }
    }
    // The second flow's other side speaks while it waits: never concluded.
    for i in 0..3000u32 {
        frames.push(segment(c2, s2, ms(i), 5000 + i * 60, 9, 64, &data));
        if i == 2000 {
            frames.push(segment(s2, c2, ms(i), 9, 5000 + 2001 * 60, 64, b"ok\r\n"));
        }
    }
    frames.sort_by_key(|(ts, _)| *ts);

    let config = Config::default();
    assert_eq!(config.flow.one_way_secs, 5);
    let lean = common::run_engine(&config, frames.clone());
    let full = common::run_engine_with(&config, frames, |e| e.set_plain_decode(false));
    assert_eq!(lean.actions, full.actions);
    assert_eq!(lean.records, full.records);
    assert_eq!(lean.counters, full.counters);
    // The exceptions did happen (so both paths met them).
    let c = &lean.counters;
    assert_eq!(c.flows_one_way, 1);
    assert_eq!(c.stream_bad_checksum, 1);
    assert_eq!(c.stream_low_ttl, 2);
    assert!(c.stream_beyond_depth > 4000, "{}", c.stream_beyond_depth);
    assert!(c.stream_conflicting_overlaps >= 1);
}
