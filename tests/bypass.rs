//! Kernel bypass through the whole engine, against a simulated XDP bypass map: once a judged
//! flow is handed to the kernel its packets stop reaching the engine, yet its flow record, its
//! byte-ratio check and its end come out as if the engine had seen every packet.

use std::collections::HashMap;
use std::net::SocketAddr;

use serde_json::Value;
use unmask::capture::{Frame, Timestamp};
use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures::{self, tls, Conversation, TimedFrame, FIXTURE_EPOCH};
use unmask::flow::FlowKey;
use unmask::output::eve::EveFormat;
use unmask::verdict::{Bypass, FlowCommand, FlowControl, FrameHandler, KernelFlow, Mode};
use unmask::wire::{self, Parsed};

const S: u64 = Timestamp::NANOS_PER_SEC;
/// After-batch calls every 10 ms of frame time.
const TICK: u64 = S / 100;

/// The XDP program's bypass map as the engine sees it: entries the engine wrote count the
/// packets the "kernel" forwarded in the engine's place, per sending side, with flags and time.
#[derive(Default)]
struct SimKernel {
    entries: HashMap<FlowKey, (KernelFlow, Timestamp)>,
    now: Timestamp,
    bypasses: u64,
    forgets: u64,
    blocks: u64,
}

impl SimKernel {
    /// True when the kernel took the frame (its flow is in the map).
    fn take(&mut self, key: &FlowKey, side: usize, len: u64, flags: u8, ts: Timestamp) -> bool {
        let Some((k, last)) = self.entries.get_mut(key) else {
            return false;
        };
        k.pkts[side] += 1;
        k.bytes[side] += len;
        k.tcp_flags[side] |= flags;
        *last = ts;
        true
    }
}

impl FlowControl for SimKernel {
    fn apply(&mut self, cmd: &FlowCommand) {
        match cmd {
            FlowCommand::Bypass { key, .. } => {
                self.bypasses += 1;
                // A written entry starts from zero and has matched nothing yet.
                self.entries
                    .insert(*key, (KernelFlow::default(), Timestamp(0)));
            }
            FlowCommand::Block { key, .. } => {
                self.blocks += 1;
                self.entries.remove(key);
            }
            FlowCommand::Forget { key } => {
                self.forgets += 1;
                self.entries.remove(key);
            }
        }
    }

    fn kernel_flow(&mut self, key: &FlowKey) -> Option<KernelFlow> {
        let (k, last) = self.entries.get(key)?;
        let mut k = *k;
        k.idle_ns = (last.0 != 0).then(|| self.now.since(*last));
        Some(k)
    }
}

/// What a driven run produced.
struct Driven {
    records: Vec<Value>,
    counters: Counters,
    kernel: SimKernel,
    /// Frames the engine handled itself.
    to_engine: usize,
}

impl Driven {
    fn flows(&self) -> Vec<&Value> {
        self.records
            .iter()
            .filter(|r| r["event_type"] == "flow")
            .collect()
    }

    fn findings(&self) -> Vec<String> {
        let mut f: Vec<String> = self
            .records
            .iter()
            .filter(|r| r["event_type"] == "alert")
            .map(|r| r["unmask"]["finding"].as_str().unwrap().to_string())
            .collect();
        f.sort();
        f
    }
}

/// Feeds `frames` in time order: a frame of a flow in the simulated map goes to the kernel,
/// any other to the engine; between frames the engine gets its after-batch call every
/// `tick_ns` of frame time (as a live worker gets one per batch or idle poll). After the last
/// frame the clock runs on for `tail_ns`, then the run stops.
fn drive(
    config: &Config,
    bypass: Bypass,
    frames: &[TimedFrame],
    tick_ns: u64,
    tail_ns: u64,
    mut between: impl FnMut(usize, &mut SimKernel),
) -> Driven {
    let (tx, rx) = crossbeam_channel::unbounded();
    // These flows are judged at the end of their handshake; following the records after it
    // (tls_in_tls) would hold them 25 records longer before the bypass this file is about.
    let mut engine_config = config.engine();
    engine_config.detect.tls_in_tls.enabled = false;
    let mut engine = Engine::new(
        &engine_config,
        EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        Some(tx),
    );
    engine.set_bypass(bypass);
    let mut kernel = SimKernel::default();
    let mut to_engine = 0;
    let mut next_tick = frames.first().map_or(Timestamp(0), |f| f.0);
    for (i, (ts, data)) in frames.iter().enumerate() {
        between(i, &mut kernel);
        kernel.now = *ts;
        while *ts >= next_tick {
            engine.after_batch(next_tick, &mut kernel);
            next_tick = next_tick.add_nanos(tick_ns);
        }
        let frame = Frame::ethernet(data, *ts);
        let taken = match wire::parse_frame(&frame) {
            Parsed::Tcp(p) => {
                let (key, side) = FlowKey::from_tcp(&p);
                let side = (side != unmask::flow::Side::Lo) as usize;
                kernel.take(&key, side, data.len() as u64, p.flags.0, *ts)
            }
            _ => false,
        };
        if !taken {
            to_engine += 1;
            engine.handle(&frame);
        }
    }
    let end = frames
        .last()
        .map_or(Timestamp(0), |f| f.0)
        .add_nanos(tail_ns);
    while next_tick <= end {
        kernel.now = next_tick;
        engine.after_batch(next_tick, &mut kernel);
        next_tick = next_tick.add_nanos(tick_ns);
    }
    kernel.now = end;
    engine.finish(end, &mut kernel);
    let counters = engine.counters().clone();
    drop(engine);
    let records = rx
        .try_iter()
        .map(|r: EveRecord| r.to_json(&EveFormat::default()))
        .collect();
    Driven {
        records,
        counters,
        kernel,
        to_engine,
    }
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 77, 0, host], port))
}

/// A benign TLS 1.2 session with a download of `down` bytes, closed with FINs.
fn https_download(
    client_port: u16,
    start: Timestamp,
    down: usize,
    step_ns: u64,
) -> Vec<TimedFrame> {
    let chain: &[&[u8]] = &[
        fixtures::CERT_WWW_EXAMPLE_COM,
        fixtures::CERT_FIXTURE_ROOT_CA,
    ];
    Conversation::new(addr(1, client_port), addr(2, 443), start)
        .step(step_ns)
        .handshake()
        .client(&tls::client_hello(&tls::Hello::default()))
        .server(&tls::server_flight_tls12(0xc02f, Some("h2"), chain))
        .client(&tls::client_finish_tls12())
        .server(&tls::server_finish_tls12())
        .server(&tls::app_data(down))
        .close()
        .into_frames()
}

/// The flow record's counters that must not depend on who carried the packets.
fn totals(flow: &Value) -> [u64; 4] {
    let f = &flow["flow"];
    [
        "pkts_toserver",
        "pkts_toclient",
        "bytes_toserver",
        "bytes_toclient",
    ]
    .map(|k| f[k].as_u64().unwrap())
}

#[test]
fn a_bypassed_download_leaves_the_engine_but_its_flow_record_counts_every_packet() {
    let config = Config::default();
    let frames = https_download(40001, FIXTURE_EPOCH, 2_000_000, 1_000_000);
    let seen = drive(&config, Bypass::Off, &frames, TICK, 60 * S, |_, _| {});
    let by = drive(&config, Bypass::Clean, &frames, TICK, 60 * S, |_, _| {});

    assert_eq!(seen.to_engine, frames.len());
    assert_eq!(seen.kernel.bypasses, 0, "off means off");
    assert_eq!(by.counters.flows_bypassed, 1);
    assert_eq!(by.kernel.bypasses, 1);
    // The engine stops seeing the flow once its handshake is judged (about 20 frames) and the
    // batch that judged it ends (10 frames a tick here): a few dozen frames of the ~2800.
    assert!(
        by.to_engine < 50,
        "engine still saw {} of {} frames",
        by.to_engine,
        frames.len()
    );
    assert_eq!(
        by.counters.bypass_kernel_packets,
        (frames.len() - by.to_engine) as u64
    );

    let (a, b) = (seen.flows(), by.flows());
    assert_eq!((a.len(), b.len()), (1, 1));
    assert_eq!(
        totals(a[0]),
        totals(b[0]),
        "the kernel's share is accounted"
    );
    assert_eq!(a[0]["app_proto"], b[0]["app_proto"]);
    assert!(a[0]["flow"].get("bypass").is_none());
    assert_eq!(b[0]["flow"]["bypass"], "capture");
    let kernel_pkts = b[0]["flow"]["bypassed"]["pkts_toclient"].as_u64().unwrap()
        + b[0]["flow"]["bypassed"]["pkts_toserver"].as_u64().unwrap();
    assert_eq!(kernel_pkts, by.counters.bypass_kernel_packets);
    // Ended by the kernel's FINs at the first recheck, not by the end of the run, and with
    // the time of its last packet.
    assert_eq!(b[0]["flow"]["reason"], "timeout");
    assert_eq!(a[0]["flow"]["end"], b[0]["flow"]["end"]);
    assert_eq!(by.kernel.forgets, 1, "the entry is removed with the flow");
    assert!(by.kernel.entries.is_empty());
    assert!(seen.findings().is_empty() && by.findings().is_empty());
}

#[test]
fn the_byte_ratio_check_still_judges_a_bypassed_upload() {
    let mut config = Config::default();
    config.verdict.mode = Mode::Monitor;
    // Alerted, so the evidence can be read (by default upload-heavy flows are only recorded).
    config
        .detect
        .alert_min_confidence
        .0
        .insert("asymmetric_flow".into(), 0);
    let frames = fixtures::upload_heavy(
        addr(1, 40002),
        addr(2, 443),
        FIXTURE_EPOCH,
        fixtures::UPLOAD_BYTES,
        300,
    )
    .into_frames();
    let seen = drive(&config, Bypass::Off, &frames, TICK, 5 * S, |_, _| {});
    let by = drive(&config, Bypass::Clean, &frames, TICK, 5 * S, |_, _| {});
    assert_eq!(seen.findings(), vec!["asymmetric_flow".to_string()]);
    assert_eq!(by.findings(), seen.findings());
    assert!(by.to_engine < 50, "engine saw {}", by.to_engine);
    let alert = by
        .records
        .iter()
        .find(|r| r["event_type"] == "alert")
        .unwrap();
    // Judged on the kernel's counters: the engine alone saw under 50 frames.
    let up: u64 = alert["unmask"]["evidence"]["bytes_toserver"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(up >= fixtures::UPLOAD_BYTES as u64, "bytes_toserver {up}");
    assert_eq!(totals(seen.flows()[0]), totals(by.flows()[0]));
}

#[test]
fn a_long_quiet_bypassed_flow_is_rechecked_and_kept_until_it_closes() {
    let mut config = Config::default();
    config.flow.bypassed_timeout_secs = 10;
    // One frame every 2 s for about 3 minutes: far past the recheck period, well within the
    // established timeout, and nothing of it reaches the engine after the handshake.
    let frames = https_download(40003, FIXTURE_EPOCH, 60 * 1460, 2 * S);
    let span = frames.last().unwrap().0.since(frames[0].0);
    assert!(span > 100 * S);
    let by = drive(&config, Bypass::Clean, &frames, S, 30 * S, |_, _| {});
    assert_eq!(by.flows().len(), 1);
    // One read a period (10 s, seen on 1 s ticks: every 11 s) and one at the end.
    let rechecks = by.counters.bypass_rechecks;
    assert!(
        rechecks >= span / (11 * S) && rechecks <= span / (10 * S) + 2,
        "{rechecks} rechecks over {} s",
        span / S
    );
    let seen = drive(&config, Bypass::Off, &frames, S, 30 * S, |_, _| {});
    assert_eq!(totals(seen.flows()[0]), totals(by.flows()[0]));
    assert_eq!(
        by.flows()[0]["flow"]["state"],
        seen.flows()[0]["flow"]["state"]
    );
}

#[test]
fn a_flow_whose_kernel_entry_vanished_is_handed_over_again() {
    let config = Config::default();
    let frames = https_download(40004, FIXTURE_EPOCH, 2_000_000, 1_000_000);
    let half = frames.len() / 2;
    let by = drive(&config, Bypass::Clean, &frames, TICK, 60 * S, |i, k| {
        if i == half {
            // LRU pressure or an entry lifetime: the kernel forgets the flow mid-way.
            k.entries.clear();
        }
    });
    assert_eq!(by.counters.flows_bypassed, 1);
    assert_eq!(by.counters.bypass_renewed, 1);
    assert_eq!(by.kernel.bypasses, 2);
    // About a second of frames (1 ms apart) reached the engine before it handed the flow
    // over again, not the whole second half.
    assert!(by.to_engine < 1200, "engine saw {} frames", by.to_engine);
    assert_eq!(by.flows().len(), 1);
}

#[test]
fn blocked_flows_are_never_bypassed_and_replay_never_bypasses() {
    let mut config = Config::default();
    config.verdict.mode = Mode::Block;
    // SSH on port 443: blocked, so never handed to the bypass map.
    let frames = Conversation::new(addr(1, 40005), addr(2, 443), FIXTURE_EPOCH)
        .handshake()
        .client(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        .server(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        .client(&fixtures::ssh_kexinit())
        .close()
        .into_frames();
    let by = drive(&config, Bypass::Decided, &frames, TICK, 5 * S, |_, _| {});
    assert_eq!(by.findings(), vec!["protocol_port_mismatch".to_string()]);
    assert_eq!(by.counters.flows_bypassed, 0);
    assert_eq!(by.kernel.bypasses, 0);
    assert_eq!(by.kernel.blocks, 1);

    // `unmask replay` never calls set_bypass: the same download is not bypassed there.
    let frames = https_download(40006, FIXTURE_EPOCH, 200_000, 1_000_000);
    let run = common::run_engine(&Config::default(), frames);
    assert_eq!(run.counters.flows_bypassed, 0);
}

mod common;

/// A one-directional stream picked up mid-way (a SPAN port carrying one direction, a one-way
/// generator): `n` segments of 6 bytes, one per millisecond, and not a packet back.
fn one_way(n: u32) -> Vec<TimedFrame> {
    one_way_lossy(n, None)
}

/// [`one_way`] without segment `lost` (the capture dropped it: a hole the stream never fills).
fn one_way_lossy(n: u32, lost: Option<u32>) -> Vec<TimedFrame> {
    let (c, s) = (addr(1, 40100), addr(2, 5001));
    (0..n)
        .filter(|&i| Some(i) != lost)
        .map(|i| {
            let ts = FIXTURE_EPOCH.add_nanos(u64::from(i) * S / 1000);
            let seq = 1000 + i * 6;
            let data = fixtures::tcp_frame(
                c,
                s,
                [2, 0, 0, 0, 0, 1],
                [2, 0, 0, 0, 0, 2],
                seq,
                77,
                fixtures::Flags::ACK | fixtures::Flags::PSH,
                b"UNMASK",
            );
            (ts, data)
        })
        .collect()
}

#[test]
fn a_one_directional_flow_past_depth_is_judged_once_the_other_side_stayed_silent() {
    // 8 s of segments; the 16 KiB stream depth is reached after 2.7 s, the other side has
    // been silent for 5 s (the default flow.one_way_secs) at 5 s.
    let frames = one_way(8000);
    let mut config = Config::default();
    assert_eq!(config.flow.one_way_secs, 5);
    let by = drive(&config, Bypass::Clean, &frames, TICK, 60 * S, |_, _| {});
    assert_eq!(by.counters.flows_one_way, 1);
    assert_eq!(by.counters.flows_bypassed, 1);
    // Judged by the packet at 5 s; the kernel takes over at the end of that tick.
    assert!(
        (5000..5020).contains(&by.to_engine),
        "engine saw {} of {} frames",
        by.to_engine,
        frames.len()
    );
    let flows = by.flows();
    assert_eq!(flows.len(), 1);
    assert_eq!(totals(flows[0])[0], frames.len() as u64);
    assert_eq!(flows[0]["flow"]["bypass"], "capture", "{}", flows[0]);

    // Judged the same way without a kernel to hand it to: no more inspection, no bypass.
    let judged = drive(&config, Bypass::Off, &frames, TICK, 60 * S, |_, _| {});
    assert_eq!(judged.counters.flows_one_way, 1);
    assert_eq!(judged.counters.flows_bypassed, 0);
    assert_eq!(judged.to_engine, frames.len());
    assert_eq!(by.findings(), judged.findings());

    // A hole early on keeps the in-order part below the depth for good; the sender going
    // past the depth is what counts.
    let lossy = one_way_lossy(8000, Some(10));
    let holed = drive(&config, Bypass::Clean, &lossy, TICK, 60 * S, |_, _| {});
    assert_eq!(holed.counters.flows_one_way, 1);
    assert_eq!(holed.counters.flows_bypassed, 1);
    assert!(holed.to_engine < 5020, "engine saw {}", holed.to_engine);

    // Before the silence lasted long enough, nothing is concluded.
    let short = drive(
        &config,
        Bypass::Clean,
        &one_way(4900),
        TICK,
        60 * S,
        |_, _| {},
    );
    assert_eq!(short.counters.flows_one_way, 0);
    assert_eq!(short.counters.flows_bypassed, 0);

    // 0 turns it off: the flow stays under inspection to its end.
    config.flow.one_way_secs = 0;
    let off = drive(&config, Bypass::Clean, &frames, TICK, 60 * S, |_, _| {});
    assert_eq!(off.counters.flows_one_way, 0);
    assert_eq!(off.counters.flows_bypassed, 0);
    assert_eq!(off.to_engine, frames.len());
}
