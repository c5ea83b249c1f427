//! Writes the seed corpora of the fuzz targets (fuzz/, cargo-fuzz), one folder per target:
//!
//!   cargo run --example fuzz_seeds -- [OUT_DIR [PCAPS_DIR]]
//!
//! OUT_DIR defaults to fuzz/corpus. Seeds the project makes itself (fixture frames, flows,
//! TLS flights, certificates, hand-made reassembly cases) are always written. When PCAPS_DIR
//! (default `$UNMASK_PCAPS`, else ../shared/pcaps) exists, frames, flows, reassembled streams
//! and certificates taken from those captures are added; they stay outside the repository
//! (fuzz/corpus is git-ignored). `scripts/fuzz.sh` runs this before fuzzing.

#[path = "../fuzz/src/harness.rs"]
mod harness;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

use harness::{EngineRecord, StreamOp};
use unmask::capture::pcap::CaptureSource;
use unmask::capture::{Action, LinkType, PacketSource, Polled, Timestamp};
use unmask::fixtures::{self, fake_tls, tls, Flags};
use unmask::flow::{Dir, FlowKey, StreamDir};
use unmask::proto::tls::{TlsDir, TlsEvent, TlsScratch};
use unmask::wire::{self, Parsed};

/// Per capture file: frames offered to the `wire` corpus, flows to the `engine` corpus.
const WIRE_PER_FILE: usize = 48;
const FLOWS_PER_FILE: usize = 12;
/// Size caps that match the `-max_len` scripts/fuzz.sh gives each target.
const ENGINE_MAX: usize = 16 * 1024;
const TLS_MAX: usize = 16 * 1024;
const HTTP_MAX: usize = 4 * 1024;
const STREAM_WINDOW: usize = 64 * 1024;

struct Corpus {
    root: PathBuf,
    counts: BTreeMap<&'static str, usize>,
}

impl Corpus {
    fn add(&mut self, target: &'static str, data: &[u8]) {
        // FNV-1a names the file: the same seed twice is written once.
        let hash = data.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(*b)).wrapping_mul(0x0100_0000_01b3)
        });
        let dir = self.root.join(target);
        let path = dir.join(format!("seed-{hash:016x}"));
        if path.exists() {
            return;
        }
        std::fs::create_dir_all(&dir).expect("create corpus folder");
        std::fs::write(&path, data).expect("write seed");
        *self.counts.entry(target).or_default() += 1;
    }
}

/// A captured frame, owned.
struct Captured {
    ts: Timestamp,
    link: LinkType,
    data: Vec<u8>,
}

fn main() {
    let mut args = std::env::args().skip(1);
    let out = args.next().map_or_else(
        || PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/fuzz/corpus")),
        PathBuf::from,
    );
    let pcaps = args
        .next()
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("UNMASK_PCAPS").map(PathBuf::from))
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps")));
    let mut corpus = Corpus {
        root: out,
        counts: BTreeMap::new(),
    };

    project_seeds(&mut corpus);
    if pcaps.is_dir() {
        let mut files = Vec::new();
        captures(&pcaps, &mut files);
        files.sort();
        for file in &files {
            capture_seeds(&mut corpus, file);
        }
        eprintln!(
            "fuzz_seeds: {} capture files from {}",
            files.len(),
            pcaps.display()
        );
    } else {
        eprintln!(
            "fuzz_seeds: {} not found: project seeds only",
            pcaps.display()
        );
    }
    for (target, n) in &corpus.counts {
        println!(
            "{target}: {n} new seeds in {}",
            corpus.root.join(target).display()
        );
    }
}

fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "oracle") {
                captures(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng" || e == "cap")
        {
            out.push(path);
        }
    }
}

fn read_capture(path: &Path) -> Vec<Captured> {
    let mut frames = Vec::new();
    let Ok(mut source) = CaptureSource::open(&[path.to_path_buf()], 256) else {
        return frames;
    };
    loop {
        let polled = source.poll_batch(|f| {
            frames.push(Captured {
                ts: f.ts,
                link: f.link,
                data: f.data.to_vec(),
            });
            Action::Forward
        });
        match polled {
            Ok(Polled::Frames(_)) | Ok(Polled::Idle) => {}
            Ok(Polled::End) | Err(_) => return frames,
        }
    }
}

/// Seeds the project makes itself.
fn project_seeds(corpus: &mut Corpus) {
    let frames: Vec<Captured> = harness::fixture_frames()
        .iter()
        .enumerate()
        .map(|(i, f)| Captured {
            ts: fixtures::FIXTURE_EPOCH.add_nanos(i as u64 * 1_000_000),
            link: LinkType::Ethernet,
            data: f.clone(),
        })
        .collect();
    wire_project_seeds(corpus, &frames);
    stream_project_seeds(corpus);
    tls_project_seeds(corpus);
    for c in [
        fixtures::CERT_WWW_EXAMPLE_COM,
        fixtures::CERT_FIXTURE_ROOT_CA,
    ] {
        for host in [
            "www.example.com",
            "example.com",
            "WWW.Example.COM.",
            "192.0.2.1",
            "",
        ] {
            corpus.add("cert", &harness::encode_cert(host, c));
        }
    }
    for names in [
        "a.example.com,*.example.com,example.com",
        "example.com,*.com,*.example.com",
        "[2001:db8::1],2001:db8::1,192.0.2.1",
        "x.y.example.com,*.example.com,x*.y.example.com",
    ] {
        corpus.add("cert", &harness::encode_cert(names, &[]));
    }
    for flow in fixtures::standard_flows()
        .into_iter()
        .chain(fixtures::tls_check_flows())
    {
        let captured: Vec<Captured> = flow
            .frames
            .iter()
            .map(|(ts, f)| Captured {
                ts: *ts,
                link: LinkType::Ethernet,
                data: f.clone(),
            })
            .collect();
        flow_seeds(corpus, &captured);
    }
    engine_project_seeds(corpus);
}

fn wire_project_seeds(corpus: &mut Corpus, frames: &[Captured]) {
    for (i, f) in frames.iter().enumerate() {
        corpus.add(
            "wire",
            &harness::encode_wire(LinkType::Ethernet, i % 2 == 0, 0, &f.data),
        );
        if i % 16 != 0 || f.data.len() <= 14 {
            continue;
        }
        // The same datagram under every other link layer, VLAN-tagged, and cut short.
        let ip = &f.data[14..];
        let mut null = 2u32.to_le_bytes().to_vec();
        null.extend_from_slice(ip);
        let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 2, 2, 2, 2, 2, 0, 0, 0x08, 0x00];
        sll.extend_from_slice(ip);
        let mut sll2 = vec![
            0x08, 0x00, 0, 0, 0, 0, 0, 2, 0, 1, 0, 6, 2, 2, 2, 2, 2, 2, 0, 0,
        ];
        sll2.extend_from_slice(ip);
        let mut vlan = f.data[..12].to_vec();
        vlan.extend_from_slice(&[0x88, 0xa8, 0x00, 0x64, 0x81, 0x00, 0x00, 0x0a]);
        vlan.extend_from_slice(&f.data[12..]);
        for (link, data) in [
            (LinkType::RawIp, ip.to_vec()),
            (LinkType::Ipv4, ip.to_vec()),
            (LinkType::Null, null),
            (LinkType::LinuxSll, sll),
            (LinkType::LinuxSll2, sll2),
            (LinkType::Ethernet, vlan),
        ] {
            corpus.add("wire", &harness::encode_wire(link, true, 0, &data));
        }
        let cut = f.data.len().min(60);
        let extra = (f.data.len() - cut) as u16;
        corpus.add(
            "wire",
            &harness::encode_wire(LinkType::Ethernet, true, extra, &f.data[..cut]),
        );
    }
    let v6 = |host: u16, port| {
        std::net::SocketAddr::from((
            std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, host),
            port,
        ))
    };
    for (flags, payload) in [
        (Flags::SYN, &b""[..]),
        (
            Flags::ACK | Flags::PSH,
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],
        ),
    ] {
        let f = fixtures::tcp_frame(
            v6(1, 40000),
            v6(2, 80),
            [2; 6],
            [4; 6],
            7,
            9,
            flags,
            payload,
        );
        corpus.add(
            "wire",
            &harness::encode_wire(LinkType::Ethernet, true, 0, &f),
        );
        corpus.add(
            "wire",
            &harness::encode_wire(LinkType::Ipv6, false, 0, &f[14..]),
        );
    }
}

fn stream_project_seeds(corpus: &mut Corpus) {
    use StreamOp::*;
    let near = |offset: i16, len: u16| Near {
        offset,
        len,
        fill: 0,
    };
    let cases: Vec<(u16, u32, bool, Vec<StreamOp>)> = vec![
        // In order, then a retransmission.
        (
            400,
            1000,
            true,
            vec![near(0, 100), near(100, 100), near(50, 100)],
        ),
        // Out of order, filled later.
        (
            400,
            1000,
            true,
            vec![near(200, 100), near(0, 100), near(100, 100)],
        ),
        // Conflicting overlap.
        (
            400,
            1000,
            true,
            vec![
                near(0, 100),
                Near {
                    offset: 50,
                    len: 100,
                    fill: 0xaa,
                },
            ],
        ),
        // Sequence numbers wrapping inside the window.
        (511, 0xffff_ff00, true, vec![near(0, 300), near(300, 300)]),
        // No ISN: the first segment anchors, an earlier one is partly before it.
        (
            512,
            77,
            false,
            vec![near(10, 50), near(0, 30), near(-5, 40)],
        ),
        // Too many holes.
        (
            511,
            5,
            true,
            (1..=10).map(|i| near(i * 40, 10)).collect::<Vec<_>>(),
        ),
        // Depth boundary and beyond.
        (64, 9, true, vec![near(60, 10), near(0, 60), near(64, 1)]),
        // A late SYN after data, then one before.
        (
            256,
            100,
            false,
            vec![near(0, 10), SetIsn { offset: -5 }, near(10, 10)],
        ),
        (256, 100, false, vec![SetIsn { offset: 3 }, near(0, 10)]),
        // Far away, both ways.
        (
            256,
            100,
            true,
            vec![
                Far {
                    offset: 0x4000_0000,
                    len: 10,
                    fill: 0,
                },
                Far {
                    offset: 0xffff_fff0,
                    len: 40,
                    fill: 0,
                },
            ],
        ),
        (
            128,
            1,
            true,
            vec![Bytes {
                offset: 0,
                data: b"GET / HTTP/1.1\r\n".to_vec(),
            }],
        ),
    ];
    for (depth, isn, set, ops) in cases {
        corpus.add(
            "stream",
            &harness::encode_stream(depth, isn, set, 0x55, &ops),
        );
    }
}

fn tls_project_seeds(corpus: &mut Corpus) {
    let chain: &[&[u8]] = &[
        fixtures::CERT_WWW_EXAMPLE_COM,
        fixtures::CERT_FIXTURE_ROOT_CA,
    ];
    let mut client = tls::client_hello(&tls::Hello::default());
    client.extend(tls::client_finish_tls12());
    client.extend(tls::app_data(300));
    let mut server = tls::server_flight_tls12(0xc02f, Some("h2"), chain);
    server.extend(tls::server_finish_tls12());
    server.extend(tls::app_data(200));
    let tls12 = tls::client_hello(&tls::Hello {
        tls13: false,
        sni: None,
        ..tls::Hello::default()
    });
    let streams: Vec<(Dir, Vec<u8>)> = vec![
        (Dir::ToServer, client),
        (Dir::ToClient, server),
        (Dir::ToServer, tls12),
        (Dir::ToServer, fake_tls::client_hello_odd_ciphers()),
        (Dir::ToServer, fake_tls::client_hello_length_mismatch()),
        (Dir::ToServer, fake_tls::garbage_after_header(100, 1)),
        (Dir::ToClient, fake_tls::fatal_alert(40)),
        (Dir::ToClient, fake_tls::server_flight_with_raw_cert(&[0x30, 0x82, 1, 0, 5])),
        (Dir::ToServer, b"\x80\x2e\x01\x03\x01\x00\x15\x00\x00\x00\x10\x00\x00\x39\x00\x00\x38\x00\x00\x35\x00\x00\x16\x00\x00\x13\x00\x00\x0a\x00\x00\x33\x00\x00\x32\x00\x00\x2f".to_vec()),
    ];
    for (i, (role, s)) in streams.iter().enumerate() {
        let seed = i as u8;
        corpus.add("tls", &harness::encode_tls(*role, None, None, seed, s));
        corpus.add("tls", &harness::encode_tls(*role, None, Some(16), seed, s));
        let mut prelude = b"EHLO x\r\n".to_vec();
        prelude.extend_from_slice(s);
        corpus.add(
            "tls",
            &harness::encode_tls(*role, Some(8), None, seed, &prelude),
        );
        // The hello body alone, for the parsers run straight on the bytes.
        if let Some(body) = s.get(9..) {
            corpus.add("tls", &harness::encode_tls(*role, None, None, 0, body));
        }
    }
}

fn engine_project_seeds(corpus: &mut Corpus) {
    // Each fixture flow replayed by index (a compact seed whose frames the fuzzer patches),
    // under a few table and pool sizes.
    let mut index = 0u16;
    let flows: Vec<usize> = fixtures::standard_flows()
        .into_iter()
        .chain(fixtures::tls_check_flows())
        .map(|f| f.frames.len())
        .collect();
    for (n, len) in flows.iter().enumerate() {
        let records: Vec<EngineRecord> = (index..index + *len as u16)
            .map(|i| EngineRecord::Fixture {
                index: i,
                patches: Vec::new(),
            })
            .chain([EngineRecord::Batch { dt_us: 700_000_000 }])
            .collect();
        index += *len as u16;
        let header = match n % 3 {
            0 => harness::encode_engine_header(16, false, 8, 4),
            1 => harness::encode_engine_header(2, false, 4, 1),
            _ => harness::encode_engine_header(64, true, 6, 8),
        };
        corpus.add("engine", &harness::encode_engine(&header, &records));
    }
    // Everything at once in a small table: evictions and refusals.
    let all: Vec<EngineRecord> = (0..index)
        .map(|i| EngineRecord::Fixture {
            index: i,
            patches: Vec::new(),
        })
        .collect();
    corpus.add(
        "engine",
        &harness::encode_engine(&harness::encode_engine_header(4, false, 8, 2), &all),
    );
}

/// Seeds from one capture's frames: wire frames, engine flows, reassembled streams (tls,
/// http, stream), certificates.
fn capture_seeds(corpus: &mut Corpus, path: &Path) {
    let frames = read_capture(path);
    if frames.is_empty() {
        return;
    }
    for f in frames.iter().take(WIRE_PER_FILE) {
        corpus.add("wire", &harness::encode_wire(f.link, true, 0, &f.data));
    }
    // The first frames of the file as they come (several flows interleaved).
    engine_seed(corpus, &frames.iter().collect::<Vec<_>>(), 64);
    flow_seeds(corpus, &frames);
}

/// Splits frames into TCP flows; each becomes an engine seed, its directions stream / tls /
/// http seeds, its certificates cert seeds.
fn flow_seeds(corpus: &mut Corpus, frames: &[Captured]) {
    let mut order: Vec<FlowKey> = Vec::new();
    let mut flows: HashMap<FlowKey, Vec<&Captured>> = HashMap::new();
    for f in frames {
        if let Parsed::Tcp(p) = wire::parse(&f.data, f.link) {
            let (key, _) = FlowKey::from_tcp(&p);
            let list = flows.entry(key).or_default();
            if list.is_empty() {
                order.push(key);
            }
            list.push(f);
        }
    }
    for key in order.iter().take(FLOWS_PER_FILE) {
        let flow = &flows[key];
        engine_seed(corpus, flow, 4);
        directions(corpus, flow);
    }
}

fn engine_seed(corpus: &mut Corpus, frames: &[&Captured], capacity: u8) {
    let mut records = Vec::new();
    let mut size = 4;
    let mut prev = frames.first().map_or(Timestamp(0), |f| f.ts);
    for f in frames {
        size += f.data.len() + 4;
        if size > ENGINE_MAX {
            break;
        }
        records.push(EngineRecord::Frame {
            link: f.link,
            dt_us: f.ts.since(prev) / 1000,
            data: f.data.clone(),
        });
        prev = f.ts;
    }
    records.push(EngineRecord::Batch { dt_us: 700_000_000 });
    let header = harness::encode_engine_header(capacity, false, 8, 4);
    corpus.add("engine", &harness::encode_engine(&header, &records));
}

/// One direction of a flow being put back together for seeds.
struct Side {
    dir: StreamDir,
    window: Vec<u8>,
    isn: Option<u32>,
    segments: Vec<(u32, Vec<u8>)>,
    client: bool,
}

fn directions(corpus: &mut Corpus, flow: &[&Captured]) {
    let mut sides: Vec<((Vec<u8>, u16), Side)> = Vec::new();
    for f in flow {
        let Parsed::Tcp(p) = wire::parse(&f.data, f.link) else {
            continue;
        };
        let id = (p.src.to_vec(), p.sport);
        let idx = match sides.iter().position(|(k, _)| *k == id) {
            Some(i) => i,
            None => {
                sides.push((
                    id,
                    Side {
                        dir: StreamDir::default(),
                        window: vec![0; STREAM_WINDOW],
                        isn: None,
                        segments: Vec::new(),
                        // Without a SYN, the higher port is the client's, most of the time.
                        client: p.sport > p.dport,
                    },
                ));
                sides.len() - 1
            }
        };
        let side = &mut sides[idx].1;
        if p.flags.syn() {
            side.dir.set_isn(p.seq);
            side.isn = Some(p.seq);
            side.client = !p.flags.ack();
        }
        let seq = if p.flags.syn() {
            p.seq.wrapping_add(1)
        } else {
            p.seq
        };
        side.dir.insert(&mut side.window, seq, p.payload);
        if !p.payload.is_empty() {
            side.segments.push((seq, p.payload.to_vec()));
        }
    }
    let mut certs = Vec::new();
    let mut sni = String::new();
    for (_, side) in &sides {
        let data = &side.window[..side.dir.readable()];
        if data.is_empty() {
            continue;
        }
        let role = if side.client {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let tls_like = matches!(data.first(), Some(0x14..=0x18) | Some(0x80..=0xff));
        if tls_like {
            let cut = &data[..data.len().min(TLS_MAX - 3)];
            corpus.add(
                "tls",
                &harness::encode_tls(role, None, None, cut.len() as u8, cut),
            );
            let mut scratch = TlsScratch::default();
            TlsDir::new(role).feed(data, &mut scratch, |e| match e {
                TlsEvent::Certificate { der, .. } => certs.push(der.to_vec()),
                TlsEvent::ClientHello(ch) => sni = ch.sni.as_str().to_owned(),
                _ => {}
            });
        } else {
            corpus.add("http", &data[..data.len().min(HTTP_MAX)]);
        }
        stream_seed(corpus, side);
    }
    for der in &certs {
        corpus.add("cert", &harness::encode_cert(&sni, der));
    }
}

/// The first segments of a direction as `Bytes` operations (split to fit their length byte),
/// with the ISN when the SYN was seen.
fn stream_seed(corpus: &mut Corpus, side: &Side) {
    let Some(&(first_seq, _)) = side.segments.first() else {
        return;
    };
    let isn = side.isn.unwrap_or(first_seq.wrapping_sub(1));
    let mut ops = Vec::new();
    for (seq, data) in side.segments.iter().take(24) {
        for (i, chunk) in data.chunks(255).enumerate() {
            let offset = seq
                .wrapping_sub(isn.wrapping_add(1))
                .wrapping_add((i * 255) as u32);
            let Ok(offset) = i16::try_from(offset as i32) else {
                continue;
            };
            ops.push(StreamOp::Bytes {
                offset,
                data: chunk.to_vec(),
            });
        }
    }
    if !ops.is_empty() {
        corpus.add(
            "stream",
            &harness::encode_stream(511, isn, side.isn.is_some(), 0, &ops),
        );
    }
}
