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

/// The frame's IP packet inside GTP-U inside GRE, on a new Ethernet header.
fn tunnelled(frame: &[u8]) -> Vec<u8> {
    fn ipv4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let total = (20 + payload.len()) as u16;
        let mut ip = vec![
            0x45, 0, 0, 0, 0, 1, 0, 0, 64, proto, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
        ];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(payload);
        ip
    }
    let inner = &frame[14..];
    let mut gtp = vec![0x30, 0xff];
    gtp.extend_from_slice(&(inner.len() as u16).to_be_bytes());
    gtp.extend_from_slice(&[0, 0, 0, 7]);
    gtp.extend_from_slice(inner);
    let mut udp = vec![0x08, 0x68, 0x08, 0x68];
    udp.extend_from_slice(&((8 + gtp.len()) as u16).to_be_bytes());
    udp.extend_from_slice(&[0, 0]);
    udp.extend_from_slice(&gtp);
    let mut gre = vec![0, 0, 0x08, 0x00];
    gre.extend_from_slice(&ipv4(17, &udp));
    let mut out = frame[..12].to_vec();
    out.extend_from_slice(&[0x08, 0x00]);
    out.extend_from_slice(&ipv4(47, &gre));
    out
}

#[test]
fn tunnelled_flows_cost_no_allocation_per_packet() {
    let _turn = common::alloc::measuring();
    let mut config = Config::default();
    config.detect.tls_in_tls.enabled = false;
    let (mut engine, rx) = engine(config);
    let (warm, steady) = workloads::established_https(64, 20_000, 200_000);
    let wrap = |frames: Vec<(Timestamp, Vec<u8>)>| -> Vec<(Timestamp, Vec<u8>)> {
        frames
            .into_iter()
            .map(|(ts, f)| (ts, tunnelled(&f)))
            .collect()
    };
    let (warm, steady) = (wrap(warm), wrap(steady));
    feed(&mut engine, &warm);
    assert_eq!(engine.streams_in_use(), 0, "warm flows decided");
    let before = common::alloc::allocations();
    feed(&mut engine, &steady);
    let after = common::alloc::allocations();
    assert_eq!(
        after - before,
        0,
        "allocations over {} packets",
        steady.len()
    );
    let gtp = unmask::wire::TunnelKind::GtpU.index();
    assert_eq!(
        engine.counters().tunnels[gtp] as usize,
        warm.len() + steady.len(),
        "every frame was opened down to its TCP segment"
    );
    drop(engine);
    drop(rx);
}

/// The frame's IPv4 packet as two fragments, second half first (identification `id`).
fn fragmented(frame: &[u8], id: u16) -> [Vec<u8>; 2] {
    let ip = &frame[14..];
    let ihl = usize::from(ip[0] & 0x0f) * 4;
    let payload = &ip[ihl..];
    let cut = (payload.len() / 2) & !7;
    let part = |offset: usize, data: &[u8], more: bool| {
        let mut h = ip[..20].to_vec();
        h[0] = 0x45;
        h[2..4].copy_from_slice(&((20 + data.len()) as u16).to_be_bytes());
        h[4..6].copy_from_slice(&id.to_be_bytes());
        let flags = (offset / 8) as u16 | if more { 0x2000 } else { 0 };
        h[6..8].copy_from_slice(&flags.to_be_bytes());
        let mut f = frame[..14].to_vec();
        f.extend_from_slice(&h);
        f.extend_from_slice(data);
        f
    };
    [
        part(cut, &payload[cut..], false),
        part(0, &payload[..cut], true),
    ]
}

#[test]
fn reassembling_fragments_costs_no_allocation() {
    let _turn = common::alloc::measuring();
    let mut config = Config::default();
    config.detect.tls_in_tls.enabled = false;
    let (mut engine, rx) = engine(config);
    let (warm, steady) = workloads::established_https(64, 20_000, 200_000);
    feed(&mut engine, &warm);
    assert_eq!(engine.streams_in_use(), 0, "warm flows decided");
    let frags: Vec<(Timestamp, Vec<u8>)> = steady
        .iter()
        .filter(|(_, f)| f.len() > 14 + 20 + 40 && f[12..14] == [0x08, 0x00])
        .enumerate()
        .flat_map(|(i, (ts, f))| fragmented(f, i as u16).map(|p| (*ts, p)))
        .collect();
    assert!(frags.len() > 10_000);
    let before = common::alloc::allocations();
    feed(&mut engine, &frags);
    let after = common::alloc::allocations();
    assert_eq!(
        after - before,
        0,
        "allocations over {} fragments",
        frags.len()
    );
    let reassembled =
        engine.counters().defrag[unmask::flow::defrag::DefragEvent::Reassembled.index()];
    assert_eq!(reassembled as usize, frags.len() / 2);
    drop(engine);
    drop(rx);
}
