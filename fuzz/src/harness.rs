//! Fuzz harnesses: one `run_*` function per target, each taking the raw fuzzer input.
//!
//! This file is shared three ways so that an input format has exactly one definition:
//! - the libFuzzer targets in `fuzz/fuzz_targets/` call the `run_*` functions;
//! - the main crate's `tests/fuzz_regressions.rs` includes it (`#[path]`) and replays every
//!   crash the fuzzer found through the same function, on stable, in plain `cargo test`;
//! - `examples/fuzz_seeds.rs` includes it for the `encode_*` functions that write seeds.
//!
//! A `run_*` function decodes the input, drives unmask, and panics when an invariant fails;
//! unmask itself panicking (overflow, index, unwrap) is the other way it fails.
// Each includer uses a different part of the file.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr};
use std::sync::OnceLock;

use unmask::capture::{Action, Frame, LinkType, Timestamp};
use unmask::config::Config;
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures;
use unmask::flow::stream::{StreamDir, MAX_AHEAD, MAX_GAPS};
use unmask::flow::{Dir, FlowHasher, FlowKey};
use unmask::output::eve::EveFormat;
use unmask::proto::fingerprint::{ja3, ja3n, ja3s, ja4, ja4_raw};
use unmask::proto::http::{parse_head, parse_request, parse_response, HttpHead};
use unmask::proto::summary::TlsSummary;
use unmask::proto::tls::{
    find_hello, parse_client_hello, parse_server_hello, parse_sslv2_client_hello, ClientHello,
    ServerHello, TlsDir, TlsEvent, TlsScratch, DEFAULT_SCRATCH_LEN,
};
use unmask::proto::x509::{dns_name_matches, match_host, CertInfo, NameMatch};
use unmask::proto::{self, ssh, AppProto, ByteStats};
use unmask::verdict::{FrameHandler, Mode, NoFlowControl};
use unmask::wire::{self, Parsed, TcpPacket, WireAnomalies};

/// Reads an input front to back. Past the end every read yields zeros or an empty slice, so
/// a short input is still a valid (if dull) case rather than a rejected one.
pub struct Cursor<'a> {
    data: &'a [u8],
}

impl<'a> Cursor<'a> {
    pub fn new(data: &'a [u8]) -> Self {
        Cursor { data }
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((b, rest)) => {
                self.data = rest;
                *b
            }
            None => 0,
        }
    }

    pub fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    pub fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }

    /// Up to `n` bytes (fewer at the end of the input).
    pub fn take(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    pub fn rest(&mut self) -> &'a [u8] {
        self.take(self.data.len())
    }
}

/// Link types in the order the first byte of a `wire` input (and a link-selecting engine
/// record) names them.
pub const LINKS: [LinkType; 7] = [
    LinkType::Ethernet,
    LinkType::LinuxSll,
    LinkType::LinuxSll2,
    LinkType::RawIp,
    LinkType::Ipv4,
    LinkType::Ipv6,
    LinkType::Null,
];

fn link_of(selector: u8) -> LinkType {
    LINKS[usize::from(selector) % LINKS.len()]
}

pub fn link_index(link: LinkType) -> u8 {
    LINKS.iter().position(|l| *l == link).unwrap_or(0) as u8
}

// ---------------------------------------------------------------------------------------------
// wire: [selector][extra: u16 LE][frame]
//   selector bits 0-2: link type (LINKS, modulo 7); bit 3: also parse with an original length.
//   extra: original length = frame length + extra, or minus (extra & 0x7fff) when bit 15 is set.

pub fn encode_wire(link: LinkType, captured: bool, extra: u16, frame: &[u8]) -> Vec<u8> {
    let mut out = vec![link_index(link) | if captured { 8 } else { 0 }];
    out.extend_from_slice(&extra.to_le_bytes());
    out.extend_from_slice(frame);
    out
}

pub fn run_wire(input: &[u8]) {
    let mut c = Cursor::new(input);
    let selector = c.u8();
    let extra = c.u16();
    let frame = c.rest();
    let link = link_of(selector & 7);

    let unknown = wire::parse(frame, link);
    check_parsed(frame, &unknown);
    if selector & 8 == 0 {
        return;
    }
    let len = u32::try_from(frame.len()).unwrap_or(u32::MAX);
    let wire_len = if extra & 0x8000 != 0 {
        len.saturating_sub(u32::from(extra & 0x7fff))
    } else {
        len.saturating_add(u32::from(extra))
    };
    let exact = wire::parse_captured(frame, wire_len, link);
    check_parsed(frame, &exact);
    let via_frame = wire::parse_frame(&Frame {
        data: frame,
        ts: Timestamp(0),
        link,
        wire_len,
        port: 0,
        queue: 0,
    });
    assert_eq!(exact, via_frame, "parse_frame differs from parse_captured");
    if let Parsed::Tcp(p) = exact {
        // The original length only decides whether a long IP length is a lie or a capture
        // cut; whatever it accepts, the length-less parse accepts the same way.
        assert_eq!(
            unknown, exact,
            "parse and parse_captured disagree on an accepted frame"
        );
        if wire_len as usize <= frame.len() {
            assert!(
                !p.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD),
                "nothing was cut, yet the payload is called truncated"
            );
        }
    }
}

fn check_parsed(frame: &[u8], parsed: &Parsed<'_>) {
    let Parsed::Tcp(p) = parsed else {
        return;
    };
    let within = frame.as_ptr_range();
    let payload = p.payload.as_ptr_range();
    assert!(
        p.payload.is_empty() || (payload.start >= within.start && payload.end <= within.end),
        "payload is not a slice of the frame"
    );
    assert!(p.payload.len() as u64 <= u64::from(p.segment_len));
    assert_eq!(
        p.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD),
        (p.payload.len() as u64) < u64::from(p.segment_len),
        "truncated flag disagrees with the lengths"
    );
    check_flow_key(p);
}

/// Both directions of a connection map to one key, from opposite sides.
fn check_flow_key(p: &TcpPacket<'_>) {
    let (key, side) = FlowKey::from_tcp(p);
    let back = TcpPacket {
        src: p.dst,
        dst: p.src,
        sport: p.dport,
        dport: p.sport,
        ..*p
    };
    let (key_back, side_back) = FlowKey::from_tcp(&back);
    assert_eq!(key, key_back, "the reply direction has another flow key");
    if (p.src, p.sport) != (p.dst, p.dport) {
        assert_ne!(side, side_back, "both directions on the same side");
    }
    assert_eq!(key.hash64(), key_back.hash64());
}

// ---------------------------------------------------------------------------------------------
// stream: [depth: u16 (1 + n % 512)][isn: u32][flags][stale byte] then operations, each [op] + arguments:
//   op % 4 == 0: segment near the ISN: [offset: i16][len: u16 (mod 1024)][fill]
//   op % 4 == 1: segment anywhere:     [offset: u32][len: u8][fill]
//   op % 4 == 2: set_isn(isn + i16):  [offset: i16]
//   op % 4 == 3: segment with bytes:   [offset: i16][len: u8][bytes...]
// Offsets count from isn + 1 (the first data byte). A `fill` below 0x80 writes the "true"
// stream byte of each sequence number (so overlaps agree); from 0x80 on it writes `fill`
// itself (so overlaps may conflict). flags bit 0: set_isn(isn) before anything else.

/// Largest window the stream target uses (the model costs O(depth) per operation; depth
/// only moves where "beyond depth" starts, which small windows reach as well).
pub const STREAM_MAX_DEPTH: usize = 512;
/// Operations per input; MAX_GAPS + 1 holes need only a few.
pub const STREAM_MAX_OPS: usize = 48;

#[derive(Debug, Clone)]
pub enum StreamOp {
    Near { offset: i16, len: u16, fill: u8 },
    Far { offset: u32, len: u8, fill: u8 },
    SetIsn { offset: i16 },
    Bytes { offset: i16, data: Vec<u8> },
}

pub fn encode_stream(depth: u16, isn: u32, set_isn: bool, stale: u8, ops: &[StreamOp]) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&depth.to_le_bytes());
    out.extend_from_slice(&isn.to_le_bytes());
    out.push(u8::from(set_isn));
    out.push(stale);
    for op in ops {
        match op {
            StreamOp::Near { offset, len, fill } => {
                out.push(0);
                out.extend_from_slice(&offset.to_le_bytes());
                out.extend_from_slice(&len.to_le_bytes());
                out.push(*fill);
            }
            StreamOp::Far { offset, len, fill } => {
                out.push(1);
                out.extend_from_slice(&offset.to_le_bytes());
                out.push(*len);
                out.push(*fill);
            }
            StreamOp::SetIsn { offset } => {
                out.push(2);
                out.extend_from_slice(&offset.to_le_bytes());
            }
            StreamOp::Bytes { offset, data } => {
                out.push(3);
                out.extend_from_slice(&offset.to_le_bytes());
                let n = data.len().min(255);
                out.push(n as u8);
                out.extend_from_slice(&data[..n]);
            }
        }
    }
    out
}

/// The byte a consistent sender puts at sequence number `seq`.
fn true_byte(seq: u32) -> u8 {
    let x = seq.wrapping_mul(0x9e37_79b1);
    (x >> 24) as u8 ^ (x >> 8) as u8
}

fn generated(seq: u32, len: usize, fill: u8) -> Vec<u8> {
    (0..len)
        .map(|i| {
            if fill < 0x80 {
                true_byte(seq.wrapping_add(i as u32))
            } else {
                fill
            }
        })
        .collect()
}

/// What a segment should do, by the simplest possible reading of the stream's contract:
/// every window offset remembers the first byte written there, nothing else.
#[derive(Debug, Default, PartialEq, Eq)]
struct Expected {
    advanced: bool,
    retransmission: bool,
    conflicting_overlap: bool,
    out_of_order: bool,
    beyond_depth: bool,
    too_many_gaps: bool,
    out_of_window: bool,
}

struct StreamModel {
    base: Option<u32>,
    bytes: Vec<Option<u8>>,
}

impl StreamModel {
    fn prefix(&self) -> usize {
        self.bytes.iter().take_while(|b| b.is_some()).count()
    }

    fn held(&self) -> usize {
        self.bytes.iter().filter(|b| b.is_some()).count()
    }

    /// Runs of held bytes other than the in-order prefix.
    fn gaps_with(&self, extra: std::ops::Range<usize>) -> usize {
        let held = |i: usize| self.bytes[i].is_some() || extra.contains(&i);
        let mut runs = 0;
        let mut prev = true; // offset 0 starts the prefix, never a gap range
        for i in 0..self.bytes.len() {
            let h = held(i);
            if h && !prev {
                runs += 1;
            }
            prev = h;
        }
        runs
    }

    fn set_isn(&mut self, isn: u32) -> bool {
        let base = isn.wrapping_add(1);
        if self.base.is_some_and(|b| b != base) && self.held() > 0 {
            return false;
        }
        self.base = Some(base);
        true
    }

    fn insert(&mut self, seq: u32, data: &[u8]) -> Expected {
        let mut e = Expected::default();
        if data.is_empty() {
            return e;
        }
        let base = *self.base.get_or_insert(seq);
        let depth = self.bytes.len();
        let offset = seq.wrapping_sub(base);
        let (start, data) = if offset > i32::MAX as u32 {
            let skip = offset.wrapping_neg() as usize;
            if skip >= data.len() {
                e.out_of_window = true;
                return e;
            }
            (0, &data[skip..])
        } else if offset >= MAX_AHEAD {
            e.out_of_window = true;
            return e;
        } else {
            (offset as usize, data)
        };
        if start >= depth {
            e.beyond_depth = true;
            return e;
        }
        let data = if data.len() > depth - start {
            e.beyond_depth = true;
            &data[..depth - start]
        } else {
            data
        };
        let end = start + data.len();
        let prefix = self.prefix();
        e.out_of_order = start > prefix;
        if self.gaps_with(start..end) > MAX_GAPS {
            e.too_many_gaps = true;
            return e;
        }
        let mut overlapped = false;
        for (i, b) in data.iter().enumerate() {
            match &mut self.bytes[start + i] {
                Some(held) => {
                    overlapped = true;
                    e.conflicting_overlap |= *held != *b;
                }
                slot => *slot = Some(*b),
            }
        }
        e.retransmission = overlapped && !e.conflicting_overlap;
        e.advanced = self.prefix() > prefix;
        e
    }
}

pub fn run_stream(input: &[u8]) {
    let mut c = Cursor::new(input);
    let depth = 1 + usize::from(c.u16()) % STREAM_MAX_DEPTH;
    let isn = c.u32();
    let flags = c.u8();
    let stale = c.u8();
    // Bytes a previous flow left in the slot: never to be read back.
    let mut window = vec![stale; depth];
    let mut dir = StreamDir::default();
    let mut model = StreamModel {
        base: None,
        bytes: vec![None; depth],
    };
    let near = |offset: i16| isn.wrapping_add(1).wrapping_add(offset as i32 as u32);
    if flags & 1 != 0 {
        assert!(dir.set_isn(isn));
        assert!(model.set_isn(isn));
    }
    for _ in 0..STREAM_MAX_OPS {
        if c.is_empty() {
            break;
        }
        let op = c.u8();
        let (seq, data) = match op % 4 {
            0 => {
                let seq = near(c.u16() as i16);
                let len = usize::from(c.u16()) % 1024;
                (seq, generated(seq, len, c.u8()))
            }
            1 => {
                let seq = isn.wrapping_add(1).wrapping_add(c.u32());
                let len = usize::from(c.u8());
                (seq, generated(seq, len, c.u8()))
            }
            2 => {
                let to = near(c.u16() as i16).wrapping_sub(1);
                assert_eq!(dir.set_isn(to), model.set_isn(to), "set_isn({to}) answer");
                check_stream(&dir, &window, &model);
                continue;
            }
            _ => {
                let seq = near(c.u16() as i16);
                let len = usize::from(c.u8());
                (seq, c.take(len).to_vec())
            }
        };
        let got = dir.insert(&mut window, seq, &data);
        let want = model.insert(seq, &data);
        let got = Expected {
            advanced: got.advanced,
            retransmission: got.retransmission,
            conflicting_overlap: got.conflicting_overlap,
            out_of_order: got.out_of_order,
            beyond_depth: got.beyond_depth,
            too_many_gaps: got.too_many_gaps,
            out_of_window: got.out_of_window,
        };
        assert_eq!(got, want, "insert(seq {seq}, {} bytes) outcome", data.len());
        check_stream(&dir, &window, &model);
    }
}

fn check_stream(dir: &StreamDir, window: &[u8], model: &StreamModel) {
    // One walk over the model yields every figure checked below. This runs after each
    // operation over the whole window; walking it once per figure made this function alone
    // 59% of the fuzzing loop, against about 1% in StreamDir::insert.
    let mut prefix = None;
    let mut held = 0;
    let mut gaps = 0;
    let mut prev = true; // offset 0 starts the prefix, never a gap range
    for (i, b) in model.bytes.iter().enumerate() {
        match b {
            Some(b) => {
                held += 1;
                if !prev {
                    gaps += 1;
                }
                // First copy wins, in the prefix and beyond a hole alike.
                assert_eq!(
                    window[i], *b,
                    "window byte at offset {i} is not the first copy"
                );
            }
            None => {
                prefix.get_or_insert(i);
            }
        }
        prev = b.is_some();
    }
    let prefix = prefix.unwrap_or(model.bytes.len());
    assert_eq!(dir.readable(), prefix, "readable prefix length");
    assert_eq!(dir.base(), model.base, "stream base");
    assert_eq!(
        dir.next_seq(),
        model.base.map(|b| b.wrapping_add(prefix as u32))
    );
    assert_eq!(dir.held_bytes(), held, "bytes held");
    assert_eq!(dir.gaps(), gaps, "ranges held past a hole");
    assert_eq!(dir.depth_reached(window.len()), prefix >= window.len());
}

// ---------------------------------------------------------------------------------------------
// tls: [config][chunk seed][prelude length if config bit 1][scratch size if config bit 2][stream]
//   config bit 0: role (0 = the client's bytes, ToServer); bit 1: TLS starts after a prelude
//   (TlsDir::starting_at); bit 2: a small scratch buffer (64 + 4 * n bytes).
//   The stream is fed once whole and once as a growing prefix cut by the chunk seed; both must
//   report the same events and end in the same state.

pub fn encode_tls(
    role: Dir,
    prelude: Option<u8>,
    scratch: Option<u8>,
    chunk_seed: u8,
    stream: &[u8],
) -> Vec<u8> {
    let mut config = 0u8;
    if role == Dir::ToClient {
        config |= 1;
    }
    if prelude.is_some() {
        config |= 2;
    }
    if scratch.is_some() {
        config |= 4;
    }
    let mut out = vec![config, chunk_seed];
    out.extend(prelude);
    out.extend(scratch);
    out.extend_from_slice(stream);
    out
}

pub fn run_tls(input: &[u8]) {
    let mut c = Cursor::new(input);
    let config = c.u8();
    let chunk_seed = c.u8();
    let role = if config & 1 == 0 {
        Dir::ToServer
    } else {
        Dir::ToClient
    };
    let prelude = if config & 2 != 0 {
        usize::from(c.u8())
    } else {
        0
    };
    let scratch_len = if config & 4 != 0 {
        64 + 4 * usize::from(c.u8())
    } else {
        DEFAULT_SCRATCH_LEN
    };
    let stream = c.rest();
    let fresh = || {
        if config & 2 != 0 {
            TlsDir::starting_at(role, prelude)
        } else {
            TlsDir::new(role)
        }
    };
    let mut scratch = TlsScratch::new(scratch_len);

    let mut whole = fresh();
    let mut whole_events = Vec::new();
    let mut summary = TlsSummary::default();
    whole.feed(stream, &mut scratch, |e| {
        summary.observe(role, &e);
        exercise_event(&e);
        whole_events.push(OwnedEvent::of(&e));
    });
    assert!(whole.consumed() <= stream.len().max(prelude));

    let mut chunked = fresh();
    let mut chunked_events = Vec::new();
    let mut rng = u32::from(chunk_seed) | 0x100;
    let mut end = 0usize;
    loop {
        rng ^= rng << 13;
        rng ^= rng >> 17;
        rng ^= rng << 5;
        // Mostly small steps (splits inside headers), now and then a big one.
        let step = if rng % 8 == 0 {
            (rng >> 8) as usize % 4096
        } else {
            1 + (rng >> 8) as usize % 16
        };
        end = (end + step).min(stream.len());
        let before = chunked.consumed();
        let was_stopped = chunked.stopped();
        let mut n = 0;
        chunked.feed(&stream[..end], &mut scratch, |e| {
            n += 1;
            chunked_events.push(OwnedEvent::of(&e));
        });
        assert!(chunked.consumed() >= before, "consumed went backwards");
        assert!(chunked.consumed() <= end.max(prelude));
        if was_stopped {
            assert_eq!(n, 0, "a stopped direction reported events");
        }
        if end == stream.len() {
            break;
        }
    }
    assert_eq!(
        whole_events, chunked_events,
        "events depend on how the stream was cut"
    );
    assert_eq!(
        whole, chunked,
        "final state depends on how the stream was cut"
    );

    // The hello parsers straight on the bytes reach corners the record layer rarely shows.
    let mut ignore = |_| {};
    if let Some(ch) = parse_client_hello(stream, 0x0303, &mut ignore) {
        fingerprint_client(&ch);
    }
    if let Some(sh) = parse_server_hello(stream, 0x0303, &mut ignore) {
        fingerprint_server(&sh);
    }
    if let Some(ch) = parse_sslv2_client_hello(stream, &mut ignore) {
        fingerprint_client(&ch);
    }
    if let Some(at) = find_hello(stream) {
        assert!(at < stream.len());
    }
    let _ = proto::tls::probe(stream);
}

/// A TLS event with the bytes it borrows copied, to compare two runs.
#[derive(Debug, PartialEq)]
enum OwnedEvent {
    Client(Box<ClientHello>),
    Server(Box<ServerHello>),
    Certificate(u16, Vec<u8>),
    Plain(TlsEvent<'static>),
}

impl OwnedEvent {
    fn of(e: &TlsEvent<'_>) -> Self {
        use TlsEvent as E;
        OwnedEvent::Plain(match *e {
            E::ClientHello(ch) => return OwnedEvent::Client(Box::new(*ch)),
            E::ServerHello(sh) => return OwnedEvent::Server(Box::new(*sh)),
            E::Certificate { index, der } => return OwnedEvent::Certificate(index, der.to_vec()),
            E::ServerHelloDone => E::ServerHelloDone,
            E::Handshake { msg_type, len } => E::Handshake { msg_type, len },
            E::ChangeCipherSpec => E::ChangeCipherSpec,
            E::Alert { level, description } => E::Alert { level, description },
            E::EncryptedAlert { len } => E::EncryptedAlert { len },
            E::EncryptedHandshake { len } => E::EncryptedHandshake { len },
            E::ApplicationData { len } => E::ApplicationData { len },
            E::Heartbeat { len } => E::Heartbeat { len },
            E::Anomaly(a) => E::Anomaly(a),
        })
    }
}

/// What the engine does with an event: fingerprint hellos, parse certificates.
fn exercise_event(e: &TlsEvent<'_>) {
    match e {
        TlsEvent::ClientHello(ch) => fingerprint_client(ch),
        TlsEvent::ServerHello(sh) => fingerprint_server(sh),
        TlsEvent::Certificate { der, .. } => {
            if let Ok(info) = CertInfo::from_der(der) {
                let _ = info.sha1_text();
            }
        }
        TlsEvent::Anomaly(a) => {
            let _ = (a.name(), a.kind_index());
        }
        _ => {}
    }
}

fn fingerprint_client(ch: &ClientHello) {
    let _ = (
        ch.max_offered_version(),
        ch.offers_tls13(),
        ch.any_overflow(),
    );
    let _ = (
        ja3(ch),
        ja3n(ch),
        ja4(ch),
        ja4_raw(ch, false),
        ja4_raw(ch, true),
    );
}

fn fingerprint_server(sh: &ServerHello) {
    let _ = (sh.negotiated_version(), ja3s(sh));
}

// ---------------------------------------------------------------------------------------------
// http: the input is one direction's first bytes, as is. Runs the HTTP head parsers, the SSH
// banner parser and every protocol probe.

pub fn run_http(input: &[u8]) {
    for head in [
        parse_request(input),
        parse_response(input),
        parse_head(input),
    ]
    .into_iter()
    .flatten()
    {
        check_head(&head, input);
    }
    for dir in [Dir::ToServer, Dir::ToClient] {
        if let Ok(b) = ssh::parse_banner(input, dir) {
            assert!(b.offset <= b.end && b.end <= input.len(), "banner bounds");
            let _ = (b.is_v2(), b.anomalies.names().count());
        }
        let _ = proto::identify_detail(input, dir);
        for limit in [input.len(), 1 + input.len() / 3] {
            for ended in [false, true] {
                let d = proto::identify_dir(input, dir, limit, ended);
                assert!(d.bytes_seen as usize <= input.len());
                let _ = (d.proto(), d.confidence(), d.is_final());
            }
        }
    }
    let flow = proto::resolve(
        proto::identify(input, Dir::ToServer),
        proto::identify(input, Dir::ToClient),
    );
    let _ = flow;
    for p in AppProto::ALL {
        let _ = proto::probe_as(p, input);
    }
    let stats = ByteStats::of(input);
    let _ = stats.normalized_entropy();
    let _ = (proto::shannon_entropy(input), proto::printable_ratio(input));
}

fn check_head(h: &HttpHead<'_>, input: &[u8]) {
    assert!(h.head_len() <= input.len(), "head longer than the input");
    let _ = (
        h.kind(),
        h.method(),
        h.method_known(),
        h.target(),
        h.version(),
    );
    let _ = (
        h.status(),
        h.reason(),
        h.is_strict(),
        h.anomalies().names().count(),
    );
    assert!(h.headers().count() <= h.header_count().max(h.header_lines()));
    let _ = (h.header_overflow(), h.header_names().count());
    let _ = (
        h.header("host"),
        h.has_header("content-length"),
        h.count_of("host"),
    );
    let _ = (h.host(), h.host_count(), h.hosts_conflict(), h.user_agent());
    let _ = (h.content_length(), h.is_chunked(), h.body());
    if let Some(next) = h.next_message_offset() {
        assert!(next >= h.head_len());
    }
}

// ---------------------------------------------------------------------------------------------
// cert: [host length][host bytes][DER]. The host is the SNI to match (none when not UTF-8).
// The host bytes are also read as "host,pattern,pattern,..." for the name matcher alone.

pub fn encode_cert(host: &str, der: &[u8]) -> Vec<u8> {
    let host = &host.as_bytes()[..host.len().min(255)];
    let mut out = vec![host.len() as u8];
    out.extend_from_slice(host);
    out.extend_from_slice(der);
    out
}

pub fn run_cert(input: &[u8]) {
    let mut c = Cursor::new(input);
    let n = usize::from(c.u8());
    let host = std::str::from_utf8(c.take(n)).ok();
    let der = c.rest();
    match CertInfo::from_der_for_host(der, host) {
        Ok(info) => {
            let _ = (info.validity_days(), info.sha1_text());
            for t in [i64::MIN, -1, 0, 1_800_000_000, i64::MAX] {
                let _ = info.is_valid_at(t);
            }
            if let Some(host) = host {
                // The kept lists are a subset of all names: a match there is a match overall,
                // and when nothing was left out, a mismatch there is one overall.
                match info.matches_host(host) {
                    NameMatch::Match => assert_eq!(info.host_match, Some(NameMatch::Match)),
                    NameMatch::Mismatch => {
                        assert_eq!(info.host_match, Some(NameMatch::Mismatch))
                    }
                    NameMatch::Unknown => {}
                }
            } else {
                assert_eq!(info.host_match, None);
            }
        }
        Err(e) => {
            let _ = e.name();
        }
    }
    if let Some(list) = host {
        let mut names = list.split(',');
        let reference = names.next().unwrap_or("");
        let patterns: Vec<&str> = names.collect();
        let ips: Vec<IpAddr> = patterns.iter().filter_map(|p| p.parse().ok()).collect();
        for has_san in [false, true] {
            let _ = match_host(
                reference,
                has_san,
                patterns.iter().copied(),
                ips.iter().copied(),
                patterns.first().copied(),
                false,
            );
        }
        for p in &patterns {
            let m = dns_name_matches(p, reference);
            // Names compare without regard to ASCII case.
            assert_eq!(
                m,
                dns_name_matches(&p.to_ascii_uppercase(), &reference.to_ascii_lowercase()),
                "case changed the answer for {p:?} / {reference:?}"
            );
        }
    }
}

// ---------------------------------------------------------------------------------------------
// engine: [capacity/mode][depth][slots][batch] then records [kind][dt] + body:
//   kind % 4 == 0: Ethernet frame        [len: u16][bytes]
//   kind % 4 == 1: fixture frame, patched [index: u16][n][(offset: u16, value)...n]
//   kind % 4 == 2: frame of another link  [len: u16][bytes], link = LINKS[(kind >> 2) & 7]
//   kind % 4 == 3: after_batch now        (no body)
//   kind bit 5: the capture cut the frame (original length 100 bytes more);
//   kind bits 6-7: unit of dt (1 us, 1 ms, 100 ms, 10 s), time advanced before the record.
// Header: byte 0 bits 0-5: flow table capacity - 1; bit 6: monitor mode (else block); bit 7:
// no flow records. byte 1: stream depth = 16 << (n % 9). byte 2: stream slots = 1 + n % 8.
// byte 3: after_batch every 1 + n % 32 frames.

pub const ENGINE_RECORD_FRAME: u8 = 0;
pub const ENGINE_RECORD_FIXTURE: u8 = 1;
pub const ENGINE_RECORD_LINK: u8 = 2;
pub const ENGINE_RECORD_BATCH: u8 = 3;

/// One record of an engine input, for the seed writer.
#[derive(Debug, Clone)]
pub enum EngineRecord {
    Frame {
        link: LinkType,
        dt_us: u64,
        data: Vec<u8>,
    },
    Fixture {
        index: u16,
        patches: Vec<(u16, u8)>,
    },
    Batch {
        dt_us: u64,
    },
}

pub fn encode_engine_header(capacity: u8, monitor: bool, depth_shift: u8, slots: u8) -> Vec<u8> {
    let mut b0 = capacity.saturating_sub(1) & 0x3f;
    if monitor {
        b0 |= 0x40;
    }
    vec![b0, depth_shift, slots.saturating_sub(1), 7]
}

/// The (unit, count) pair that best approximates `dt_us`.
fn encode_dt(dt_us: u64) -> (u8, u8) {
    const UNITS: [u64; 4] = [1, 1_000, 100_000, 10_000_000];
    for (i, unit) in UNITS.iter().enumerate() {
        if dt_us / unit <= 255 {
            return (i as u8, (dt_us / unit) as u8);
        }
    }
    (3, 255)
}

pub fn encode_engine(header: &[u8], records: &[EngineRecord]) -> Vec<u8> {
    let mut out = header.to_vec();
    for r in records {
        match r {
            EngineRecord::Frame { link, dt_us, data } => {
                let (unit, dt) = encode_dt(*dt_us);
                let kind = if *link == LinkType::Ethernet {
                    ENGINE_RECORD_FRAME
                } else {
                    ENGINE_RECORD_LINK | link_index(*link) << 2
                };
                out.push(kind | unit << 6);
                out.push(dt);
                let data = &data[..data.len().min(usize::from(u16::MAX))];
                out.extend_from_slice(&(data.len() as u16).to_le_bytes());
                out.extend_from_slice(data);
            }
            EngineRecord::Fixture { index, patches } => {
                out.push(ENGINE_RECORD_FIXTURE);
                out.push(0);
                out.extend_from_slice(&index.to_le_bytes());
                out.push(patches.len().min(255) as u8);
                for (at, v) in patches.iter().take(255) {
                    out.extend_from_slice(&at.to_le_bytes());
                    out.push(*v);
                }
            }
            EngineRecord::Batch { dt_us } => {
                let (unit, dt) = encode_dt(*dt_us);
                out.push(ENGINE_RECORD_BATCH | unit << 6);
                out.push(dt);
            }
        }
    }
    out
}

/// Every frame of the project's fixture flows: real-looking Ethernet frames to mutate.
pub fn fixture_frames() -> &'static [Vec<u8>] {
    static FRAMES: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    FRAMES.get_or_init(|| {
        fixtures::standard_flows()
            .into_iter()
            .chain(fixtures::tls_check_flows())
            .flat_map(|f| f.frames.into_iter().map(|(_, frame)| frame))
            .collect()
    })
}

/// EVE records rendered as JSON per engine input.
const EVE_RENDERED: usize = 3;

/// The default configuration, built once: an input only changes a few plain fields of a
/// clone, so every input still starts from the same state, and the profiles and lists
/// `Config::default` assembles are not rebuilt for every execution.
fn base_config() -> &'static Config {
    static BASE: OnceLock<Config> = OnceLock::new();
    BASE.get_or_init(Config::default)
}

/// A fixed flow hash, so that a crash input replays the same way in every process.
fn fixed_hasher() {
    let _ = FlowHasher::set_global(FlowHasher::with_seed(0x756e_6d61_736b_f022));
}

pub fn run_engine(input: &[u8]) -> Counters {
    fixed_hasher();
    let mut c = Cursor::new(input);
    let b0 = c.u8();
    let capacity = 1 + u32::from(b0 & 0x3f);
    let mode = if b0 & 0x40 != 0 {
        Mode::Monitor
    } else {
        Mode::Block
    };
    let depth = 16u32 << (c.u8() % 9);
    let slots = 1 + u64::from(c.u8() % 8);
    let batch = 1 + usize::from(c.u8() % 32);

    let mut config = base_config().clone();
    config.flow.capacity = capacity;
    config.verdict.mode = mode;
    config.output.flow_records = b0 & 0x80 == 0;
    config.stream.depth = depth;
    config.stream.memcap = slots * 2 * u64::from(depth);
    // A small queue: the engine must count what it cannot hand over, never block or grow.
    let (tx, rx) = crossbeam_channel::bounded(64);
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    let mut ctl = NoFlowControl::default();
    let mut now = fixtures::FIXTURE_EPOCH;
    let mut frames = 0u64;
    let mut drops = 0u64;
    let mut since_batch = 0usize;
    let mut buf = Vec::new();
    // Building JSON costs more than the engine itself: build a few records per input and
    // only count the rest. The records are built (unmask's code) but not serialised to text:
    // that part is serde_json's and cost a third of the rendering time.
    let mut rendered = 0;
    let mut drain = |rx: &crossbeam_channel::Receiver<unmask::engine::record::EveRecord>| {
        for record in rx.try_iter() {
            if rendered < EVE_RENDERED {
                rendered += 1;
                let json = record.to_json(&EveFormat::default());
                assert_eq!(
                    json.get("event_type").and_then(|t| t.as_str()),
                    Some(record.event_type()),
                    "EVE record without its event_type"
                );
                // Whatever addresses the input forged, the ID is "1:" and 28 base64 characters.
                let id = json.get("community_id").and_then(|t| t.as_str());
                assert!(
                    id.is_some_and(|id| id.len() == 30 && id.starts_with("1:")),
                    "EVE record with a malformed community_id: {id:?}"
                );
            }
        }
    };

    while !c.is_empty() {
        let kind = c.u8();
        let unit = [1_000u64, 1_000_000, 100_000_000, 10_000_000_000][usize::from(kind >> 6)];
        now = now.add_nanos(u64::from(c.u8()) * unit);
        let link = match kind % 4 {
            ENGINE_RECORD_FRAME => {
                buf.clear();
                let len = usize::from(c.u16());
                buf.extend_from_slice(c.take(len));
                LinkType::Ethernet
            }
            ENGINE_RECORD_FIXTURE => {
                let all = fixture_frames();
                buf.clear();
                buf.extend_from_slice(&all[usize::from(c.u16()) % all.len()]);
                for _ in 0..c.u8() {
                    let at = usize::from(c.u16());
                    let v = c.u8();
                    if !buf.is_empty() {
                        let n = buf.len();
                        buf[at % n] = v;
                    }
                }
                LinkType::Ethernet
            }
            ENGINE_RECORD_LINK => {
                buf.clear();
                let len = usize::from(c.u16());
                buf.extend_from_slice(c.take(len));
                link_of((kind >> 2) & 7)
            }
            _ => {
                engine.after_batch(now, &mut ctl);
                since_batch = 0;
                drain(&rx);
                continue;
            }
        };
        let len = u32::try_from(buf.len()).unwrap_or(u32::MAX);
        let frame = Frame {
            data: &buf,
            ts: now,
            link,
            wire_len: if kind & 0x20 != 0 { len + 100 } else { len },
            port: 0,
            queue: 0,
        };
        frames += 1;
        if engine.handle(&frame) == Action::Drop {
            drops += 1;
        }
        assert!(
            engine.active_flows() <= capacity as usize,
            "flow table over capacity"
        );
        assert!(
            engine.streams_in_use() as u64 <= slots,
            "stream pool over its cap"
        );
        since_batch += 1;
        if since_batch == batch {
            engine.after_batch(now, &mut ctl);
            since_batch = 0;
            drain(&rx);
        }
    }
    engine.after_batch(now, &mut ctl);
    engine.finish(now, &mut ctl);
    drain(&rx);

    let counters = engine.counters().clone();
    assert_eq!(engine.active_flows(), 0, "flows left after finish");
    assert_eq!(engine.streams_in_use(), 0, "stream windows leaked");
    assert_eq!(counters.packets, frames);
    assert_eq!(
        counters.forwarded + counters.dropped,
        counters.packets,
        "every frame is forwarded or dropped, once"
    );
    assert_eq!(counters.dropped, drops);
    if mode == Mode::Monitor {
        assert_eq!(drops, 0, "monitor mode dropped a frame");
    }
    counters
}

/// Endpoints for hand-made seeds.
pub fn socket(host: [u8; 4], port: u16) -> SocketAddr {
    SocketAddr::from((host, port))
}
