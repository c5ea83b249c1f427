//! Writes the 64-byte-frame captures `scripts/bench-peers.sh` replays through unmask and its
//! peers (ndpiReader, Suricata), so every tool reads the same file:
//!
//!   cargo build --release --example peer_capture
//!   target/release/examples/peer_capture established 10000000 /tmp/est.pcap
//!
//! Shapes (every frame after the set-up is 60 bytes captured, 64 on the wire):
//! - `established`: 64 HTTPS flows open with a handshake and a whole TLS 1.2 handshake (so every
//!   tool can decide them), then alternate 6-byte segments of TLS application data from the
//!   server with the client's bare ACKs, round-robin over the flows: the packets of decided flows.
//! - `midstream`: the shape of `unmask-diag gen` (bench-live.sh's tcp64): 64 one-directional
//!   flows 10.77.0.1 -> 10.77.0.2:80 seen from the middle, each frame the next 6 bytes.
//!
//! The count is the total number of frames, set-up included. Frames are 1 µs apart.

use std::net::SocketAddr;
use std::path::Path;
use std::process::exit;

use unmask::capture::pcapwrite::PcapWriter;
use unmask::fixtures::{self, tcp_frame, tls, Conversation, Flags, FIXTURE_EPOCH};

const FLOWS: u16 = 64;
/// Ethernet's minimum frame without FCS: 14 + 20 + 20 + 6 bytes of payload.
const FRAME: usize = 60;
const PAYLOAD: usize = FRAME - 54;
const STEP_NS: u64 = 1_000;
const CLIENT_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
const SERVER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (shape, count, out) = match args.as_slice() {
        [s, n, o] => match n.parse::<u64>() {
            Ok(n) => (s.as_str(), n, Path::new(o)),
            Err(_) => usage(&format!("count {n:?} is not a whole number")),
        },
        _ => usage("expected SHAPE COUNT OUT"),
    };
    let mut w = PcapWriter::create_ethernet(out).unwrap_or_else(|e| {
        eprintln!("peer_capture: {}: {e}", out.display());
        exit(1)
    });
    let written = match shape {
        "established" => established(&mut w, count),
        "midstream" => midstream(&mut w, count),
        other => usage(&format!("unknown shape {other:?}")),
    };
    if let Err(e) = written.and_then(|()| w.finish().map(drop)) {
        eprintln!("peer_capture: writing {}: {e}", out.display());
        exit(1);
    }
}

fn usage(why: &str) -> ! {
    eprintln!("peer_capture: {why}; usage: peer_capture established|midstream COUNT OUT.pcap");
    exit(2)
}

/// Sequence numbers of an IPv4 TCP frame without options: (seq, ack).
fn seq_ack(frame: &[u8]) -> (u32, u32) {
    let word = |at: usize| {
        frame
            .get(at..at + 4)
            .map_or(0, |b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    };
    (word(38), word(42))
}

fn established(w: &mut PcapWriter, count: u64) -> std::io::Result<()> {
    struct Flow {
        client: SocketAddr,
        server: SocketAddr,
        client_seq: u32,
        server_seq: u32,
        offset: usize,
    }
    let mut setup = Vec::new();
    let mut flows = Vec::new();
    for i in 0..FLOWS {
        let client = SocketAddr::from(([10, 77, 1, 1 + i as u8], 40_000 + i));
        let server = SocketAddr::from(([10, 77, 0, 2], 443));
        let frames = Conversation::new(client, server, FIXTURE_EPOCH)
            .handshake()
            .client(&tls::client_hello(&tls::Hello::default()))
            .server(&tls::server_flight_tls12(
                0xc02f,
                Some("h2"),
                &[
                    fixtures::CERT_WWW_EXAMPLE_COM,
                    fixtures::CERT_FIXTURE_ROOT_CA,
                ],
            ))
            .client(&tls::client_finish_tls12())
            .server(&tls::server_finish_tls12())
            .into_frames();
        // The set-up ends with the client acknowledging the server's Finished: its sequence
        // and acknowledgement numbers are where each side goes on.
        let (client_seq, server_seq) = frames.last().map_or((0, 0), |(_, f)| seq_ack(f));
        setup.extend(frames);
        flows.push(Flow {
            client,
            server,
            client_seq,
            server_seq,
            offset: 0,
        });
    }
    setup.sort_by_key(|f| f.0);
    let mut ts = setup.last().map_or(FIXTURE_EPOCH, |f| f.0);
    let mut left = count;
    for (t, f) in setup.iter().take(count as usize) {
        w.write(*t, f)?;
        left -= 1;
    }
    // One download stream shared by every flow: whole records, so wrapping around keeps the
    // record framing a TLS parser would follow.
    let stream = tls::app_data(16_000 * 64);
    let mut next = 0usize;
    while left > 0 {
        let f = &mut flows[next];
        next = (next + 1) % FLOWS as usize;
        let data: Vec<u8> = (0..PAYLOAD)
            .map(|k| stream[(f.offset + k) % stream.len()])
            .collect();
        f.offset = (f.offset + PAYLOAD) % stream.len();
        ts = ts.add_nanos(STEP_NS);
        let seg = tcp_frame(
            f.server,
            f.client,
            SERVER_MAC,
            CLIENT_MAC,
            f.server_seq,
            f.client_seq,
            Flags::ACK | Flags::PSH,
            &data,
        );
        w.write(ts, &seg)?;
        f.server_seq = f.server_seq.wrapping_add(PAYLOAD as u32);
        left -= 1;
        if left == 0 {
            break;
        }
        ts = ts.add_nanos(STEP_NS);
        let mut ack = tcp_frame(
            f.client,
            f.server,
            CLIENT_MAC,
            SERVER_MAC,
            f.client_seq,
            f.server_seq,
            Flags::ACK,
            &[],
        );
        // A bare ACK is 54 bytes; on Ethernet it is padded to the minimum frame.
        ack.resize(FRAME, 0);
        w.write(ts, &ack)?;
        left -= 1;
    }
    Ok(())
}

fn midstream(w: &mut PcapWriter, count: u64) -> std::io::Result<()> {
    let server = SocketAddr::from(([10, 77, 0, 2], 80));
    let mut seqs = vec![0u32; FLOWS as usize];
    let mut ts = FIXTURE_EPOCH;
    let zeros = [0u8; PAYLOAD];
    for n in 0..count {
        let i = (n % FLOWS as u64) as usize;
        let client = SocketAddr::from(([10, 77, 0, 1], 10_000 + i as u16));
        let f = tcp_frame(
            client,
            server,
            CLIENT_MAC,
            SERVER_MAC,
            seqs[i],
            0,
            Flags::ACK,
            &zeros,
        );
        seqs[i] = seqs[i].wrapping_add(PAYLOAD as u32);
        w.write(ts, &f)?;
        ts = ts.add_nanos(STEP_NS);
    }
    Ok(())
}
