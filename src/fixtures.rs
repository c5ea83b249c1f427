//! Project-made traffic: whole TCP conversations built frame by frame, and the fixture set the
//! tests, benches and the demo replay. Independent of the parsers it exercises: it only writes
//! bytes the way the RFCs lay them out.

use std::net::{IpAddr, SocketAddr};

use etherparse::PacketBuilder;

use crate::source::Timestamp;

/// A frame and its capture time.
pub type TimedFrame = (Timestamp, Vec<u8>);

/// 2026-12-01T00:00:00Z: inside the fixture certificate's validity.
pub const FIXTURE_EPOCH: Timestamp = Timestamp(1_796_083_200 * Timestamp::NANOS_PER_SEC);

/// A leaf certificate for www.example.com / example.com, issued by the fixture root CA,
/// valid 2026-11-23 to 2027-11-23 (made with openssl for this project).
pub const CERT_WWW_EXAMPLE_COM: &[u8] = include_bytes!("../fixtures/certs/www.example.com.der");
pub const CERT_FIXTURE_ROOT_CA: &[u8] = include_bytes!("../fixtures/certs/fixture-root-ca.der");

const CLIENT_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];
const SERVER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];

/// One TCP conversation, built in order. Sequence and acknowledgement numbers are kept right,
/// data is cut into `mss`-sized segments, and every data segment is acknowledged.
#[derive(Debug, Clone)]
pub struct Conversation {
    client: SocketAddr,
    server: SocketAddr,
    /// Next sequence number each side will send.
    client_seq: u32,
    server_seq: u32,
    ts: Timestamp,
    step_ns: u64,
    mss: usize,
    frames: Vec<TimedFrame>,
}

impl Conversation {
    /// A conversation starting at `start`; ISNs derive from the ports so every flow differs.
    pub fn new(client: SocketAddr, server: SocketAddr, start: Timestamp) -> Self {
        let isn = |p: u16, salt: u32| (p as u32).wrapping_mul(2_654_435_761).wrapping_add(salt);
        Conversation {
            client,
            server,
            client_seq: isn(client.port(), 0x1000),
            server_seq: isn(server.port(), 0x7000_0000),
            ts: start,
            step_ns: 1_000_000,
            mss: 1460,
            frames: Vec::new(),
        }
    }

    /// Segment size for data (default 1460).
    pub fn mss(mut self, mss: usize) -> Self {
        self.mss = mss.max(1);
        self
    }

    /// Time between frames (default 1 ms).
    pub fn step(mut self, step_ns: u64) -> Self {
        self.step_ns = step_ns;
        self
    }

    /// Starts the next sequence numbers from explicit ISNs (before `handshake`).
    pub fn isns(mut self, client_isn: u32, server_isn: u32) -> Self {
        self.client_seq = client_isn;
        self.server_seq = server_isn;
        self
    }

    /// SYN, SYN-ACK, ACK.
    pub fn handshake(mut self) -> Self {
        let (c, s) = (self.client_seq, self.server_seq);
        self.push(true, c, 0, Flags::SYN, &[]);
        self.push(false, s, c.wrapping_add(1), Flags::SYN | Flags::ACK, &[]);
        self.client_seq = c.wrapping_add(1);
        self.server_seq = s.wrapping_add(1);
        self.push(true, self.client_seq, self.server_seq, Flags::ACK, &[]);
        self
    }

    /// The client sends `data` (segmented); the server acknowledges each segment.
    pub fn client(self, data: &[u8]) -> Self {
        self.send(true, data)
    }

    /// The server sends `data` (segmented); the client acknowledges each segment.
    pub fn server(self, data: &[u8]) -> Self {
        self.send(false, data)
    }

    fn send(mut self, from_client: bool, data: &[u8]) -> Self {
        for chunk in data.chunks(self.mss) {
            let (seq, ack) = self.seqs(from_client);
            self.push(from_client, seq, ack, Flags::ACK | Flags::PSH, chunk);
            self.advance(from_client, chunk.len() as u32);
            let (seq, ack) = self.seqs(!from_client);
            self.push(!from_client, seq, ack, Flags::ACK, &[]);
        }
        self
    }

    /// A data segment at an explicit offset from the sender's next sequence number, without
    /// advancing it: for out-of-order, retransmission and overlap cases.
    pub fn raw_data(mut self, from_client: bool, offset: u32, data: &[u8]) -> Self {
        let (seq, ack) = self.seqs(from_client);
        self.push(
            from_client,
            seq.wrapping_add(offset),
            ack,
            Flags::ACK | Flags::PSH,
            data,
        );
        self
    }

    /// Moves the sender's next sequence number on by `n` (after raw segments covered it).
    pub fn skip(mut self, from_client: bool, n: u32) -> Self {
        self.advance(from_client, n);
        self
    }

    /// FIN from the client, FIN-ACK from the server, final ACK.
    pub fn close(mut self) -> Self {
        let (seq, ack) = self.seqs(true);
        self.push(true, seq, ack, Flags::FIN | Flags::ACK, &[]);
        self.advance(true, 1);
        let (seq, ack) = self.seqs(false);
        self.push(false, seq, ack, Flags::FIN | Flags::ACK, &[]);
        self.advance(false, 1);
        let (seq, ack) = self.seqs(true);
        self.push(true, seq, ack, Flags::ACK, &[]);
        self
    }

    /// A reset from one side.
    pub fn reset(mut self, from_client: bool) -> Self {
        let (seq, ack) = self.seqs(from_client);
        self.push(from_client, seq, ack, Flags::RST | Flags::ACK, &[]);
        self
    }

    pub fn frames(&self) -> &[TimedFrame] {
        &self.frames
    }

    pub fn into_frames(self) -> Vec<TimedFrame> {
        self.frames
    }

    /// Time of the next frame.
    pub fn now(&self) -> Timestamp {
        self.ts
    }

    fn seqs(&self, from_client: bool) -> (u32, u32) {
        if from_client {
            (self.client_seq, self.server_seq)
        } else {
            (self.server_seq, self.client_seq)
        }
    }

    fn advance(&mut self, from_client: bool, n: u32) {
        if from_client {
            self.client_seq = self.client_seq.wrapping_add(n);
        } else {
            self.server_seq = self.server_seq.wrapping_add(n);
        }
    }

    fn push(&mut self, from_client: bool, seq: u32, ack: u32, flags: u8, payload: &[u8]) {
        let (src, dst, smac, dmac) = if from_client {
            (self.client, self.server, CLIENT_MAC, SERVER_MAC)
        } else {
            (self.server, self.client, SERVER_MAC, CLIENT_MAC)
        };
        let frame = tcp_frame(src, dst, smac, dmac, seq, ack, flags, payload);
        self.frames.push((self.ts, frame));
        self.ts = self.ts.add_nanos(self.step_ns);
    }
}

/// TCP flag bits for [`tcp_frame`].
pub struct Flags;

impl Flags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
}

/// One Ethernet/IP/TCP frame with correct checksums. Mixed address families are a caller bug
/// and produce an IPv6 frame with v4-mapped addresses.
#[allow(clippy::too_many_arguments)]
pub fn tcp_frame(
    src: SocketAddr,
    dst: SocketAddr,
    smac: [u8; 6],
    dmac: [u8; 6],
    seq: u32,
    ack: u32,
    flags: u8,
    payload: &[u8],
) -> Vec<u8> {
    let eth = PacketBuilder::ethernet2(smac, dmac);
    let ip = match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) => eth.ipv4(s.octets(), d.octets(), 64),
        (s, d) => eth.ipv6(v6_octets(s), v6_octets(d), 64),
    };
    let mut tcp = ip.tcp(src.port(), dst.port(), seq, 64_240);
    if flags & Flags::SYN != 0 {
        tcp = tcp.syn();
    }
    if flags & Flags::FIN != 0 {
        tcp = tcp.fin();
    }
    if flags & Flags::RST != 0 {
        tcp = tcp.rst();
    }
    if flags & Flags::PSH != 0 {
        tcp = tcp.psh();
    }
    if flags & Flags::ACK != 0 {
        tcp = tcp.ack(ack);
    }
    let mut out = Vec::with_capacity(tcp.size(payload.len()));
    // Writing into a Vec cannot fail, and the payload is far below the IP length limit for
    // every caller (segments are at most one MSS).
    tcp.write(&mut out, payload)
        .expect("fixture frame within IP length limits");
    out
}

fn v6_octets(a: IpAddr) -> [u8; 16] {
    match a {
        IpAddr::V6(v6) => v6.octets(),
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
    }
}

/// Merges conversations into one capture ordered by time (stable for equal times).
pub fn interleave(conversations: Vec<Vec<TimedFrame>>) -> Vec<TimedFrame> {
    let mut all: Vec<TimedFrame> = conversations.into_iter().flatten().collect();
    all.sort_by_key(|(ts, _)| *ts);
    all
}

/// TLS messages written from the RFC layouts (RFC 5246 / 8446).
pub mod tls {
    /// Cipher suites a modern client offers (TLS 1.3 then ECDHE-GCM/ChaCha).
    pub const MODERN_CIPHERS: &[u16] = &[
        0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
        0x009c, 0x009d, 0x002f, 0x0035,
    ];

    fn u16be(v: usize) -> [u8; 2] {
        (v as u16).to_be_bytes()
    }

    fn u24be(v: usize) -> [u8; 3] {
        let b = (v as u32).to_be_bytes();
        [b[1], b[2], b[3]]
    }

    /// A record of `content_type` around `body`.
    pub fn record(content_type: u8, version: u16, body: &[u8]) -> Vec<u8> {
        let mut r = vec![content_type];
        r.extend_from_slice(&version.to_be_bytes());
        r.extend_from_slice(&u16be(body.len()));
        r.extend_from_slice(body);
        r
    }

    /// A handshake message of `msg_type` around `body`.
    pub fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
        let mut h = vec![msg_type];
        h.extend_from_slice(&u24be(body.len()));
        h.extend_from_slice(body);
        h
    }

    fn extension(ty: u16, data: &[u8]) -> Vec<u8> {
        let mut e = ty.to_be_bytes().to_vec();
        e.extend_from_slice(&u16be(data.len()));
        e.extend_from_slice(data);
        e
    }

    /// Options for [`client_hello`].
    #[derive(Debug, Clone)]
    pub struct Hello<'a> {
        pub sni: Option<&'a str>,
        pub alpn: &'a [&'a str],
        pub ciphers: &'a [u16],
        /// Offer TLS 1.3 through supported_versions.
        pub tls13: bool,
    }

    impl Default for Hello<'_> {
        fn default() -> Self {
            Hello {
                sni: Some("www.example.com"),
                alpn: &["h2", "http/1.1"],
                ciphers: MODERN_CIPHERS,
                tls13: true,
            }
        }
    }

    /// A ClientHello record (handshake wrapped in one record, version 0x0301 as clients send).
    pub fn client_hello(h: &Hello<'_>) -> Vec<u8> {
        let mut body = Vec::new();
        body.extend_from_slice(&0x0303u16.to_be_bytes());
        body.extend((0..32u8).map(|i| i.wrapping_mul(7)));
        body.push(32);
        body.extend((0..32u8).map(|i| i.wrapping_mul(13)));
        body.extend_from_slice(&u16be(h.ciphers.len() * 2));
        for c in h.ciphers {
            body.extend_from_slice(&c.to_be_bytes());
        }
        body.extend_from_slice(&[1, 0]);
        let mut exts = Vec::new();
        if let Some(name) = h.sni {
            let mut list = vec![0u8];
            list.extend_from_slice(&u16be(name.len()));
            list.extend_from_slice(name.as_bytes());
            let mut data = u16be(list.len()).to_vec();
            data.extend_from_slice(&list);
            exts.extend(extension(0, &data));
        }
        exts.extend(extension(0x0017, &[]));
        exts.extend(extension(0xff01, &[0]));
        exts.extend(extension(
            0x000a,
            &[0, 6, 0x00, 0x1d, 0x00, 0x17, 0x00, 0x18],
        ));
        exts.extend(extension(0x000b, &[1, 0]));
        exts.extend(extension(0x0023, &[]));
        if !h.alpn.is_empty() {
            let mut list = Vec::new();
            for p in h.alpn {
                list.push(p.len() as u8);
                list.extend_from_slice(p.as_bytes());
            }
            let mut data = u16be(list.len()).to_vec();
            data.extend_from_slice(&list);
            exts.extend(extension(0x0010, &data));
        }
        exts.extend(extension(
            0x000d,
            &[0, 8, 0x04, 0x03, 0x08, 0x04, 0x04, 0x01, 0x05, 0x03],
        ));
        if h.tls13 {
            let mut ks = vec![0, 36, 0x00, 0x1d, 0, 32];
            ks.extend((0..32u8).map(|i| i ^ 0x5a));
            exts.extend(extension(0x0033, &ks));
            exts.extend(extension(0x002b, &[4, 0x03, 0x04, 0x03, 0x03]));
        }
        body.extend_from_slice(&u16be(exts.len()));
        body.extend_from_slice(&exts);
        record(22, 0x0301, &handshake(1, &body))
    }

    /// A TLS 1.2 ServerHello + Certificate + ServerHelloDone flight in one record.
    pub fn server_flight_tls12(cipher: u16, alpn: Option<&str>, chain: &[&[u8]]) -> Vec<u8> {
        let mut sh = Vec::new();
        sh.extend_from_slice(&0x0303u16.to_be_bytes());
        sh.extend((0..32u8).map(|i| i.wrapping_mul(11)));
        sh.push(0);
        sh.extend_from_slice(&cipher.to_be_bytes());
        sh.push(0);
        let mut exts = Vec::new();
        exts.extend(extension(0xff01, &[0]));
        exts.extend(extension(0x0017, &[]));
        if let Some(p) = alpn {
            let mut data = u16be(p.len() + 1).to_vec();
            data.push(p.len() as u8);
            data.extend_from_slice(p.as_bytes());
            exts.extend(extension(0x0010, &data));
        }
        sh.extend_from_slice(&u16be(exts.len()));
        sh.extend_from_slice(&exts);
        let mut certs = Vec::new();
        for der in chain {
            certs.extend_from_slice(&u24be(der.len()));
            certs.extend_from_slice(der);
        }
        let mut cert_body = u24be(certs.len()).to_vec();
        cert_body.extend_from_slice(&certs);
        let mut flight = handshake(2, &sh);
        flight.extend(handshake(11, &cert_body));
        flight.extend(handshake(14, &[]));
        record(22, 0x0303, &flight)
    }

    /// ClientKeyExchange, ChangeCipherSpec and an encrypted Finished, as a client sends them.
    pub fn client_finish_tls12() -> Vec<u8> {
        let mut ckx = vec![32];
        ckx.extend((0..32u8).map(|i| i ^ 0x33));
        let mut out = record(22, 0x0303, &handshake(16, &ckx));
        out.extend(record(20, 0x0303, &[1]));
        out.extend(record(22, 0x0303, &[0x42; 40]));
        out
    }

    /// ChangeCipherSpec and an encrypted Finished from the server.
    pub fn server_finish_tls12() -> Vec<u8> {
        let mut out = record(20, 0x0303, &[1]);
        out.extend(record(22, 0x0303, &[0x24; 40]));
        out
    }

    /// Application data records carrying `len` bytes in total (opaque, like ciphertext).
    pub fn app_data(len: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(len + len / 16_000 * 5 + 5);
        let mut left = len;
        let mut x = 0x9e37_79b9u32;
        while left > 0 {
            let n = left.min(16_000);
            let body: Vec<u8> = (0..n)
                .map(|_| {
                    x ^= x << 13;
                    x ^= x >> 17;
                    x ^= x << 5;
                    x as u8
                })
                .collect();
            out.extend(record(23, 0x0303, &body));
            left -= n;
        }
        out
    }
}

/// One named flow of the fixture set, with what unmask must say about it.
#[derive(Debug, Clone)]
pub struct FixtureFlow {
    pub name: &'static str,
    pub frames: Vec<TimedFrame>,
    pub server_port: u16,
    /// The protocol the to-server direction must be identified as ("unknown" allowed).
    pub expect_app: &'static str,
    /// Finding kinds (by name) that must be raised on this flow; none means it is benign.
    pub expect_findings: &'static [&'static str],
    /// In block mode the flow is dropped (some finding blocks by default); false for benign
    /// flows and for flows whose findings only alert (an upload-heavy flow).
    pub expect_blocked: bool,
}

fn addr(host: u8, port: u16) -> SocketAddr {
    SocketAddr::from(([10, 77, 0, host], port))
}

/// The project's standard fixture flows: benign baselines and impersonations, each on its own
/// client port, starting one second apart from [`FIXTURE_EPOCH`].
pub fn standard_flows() -> Vec<FixtureFlow> {
    let mut flows = Vec::new();
    let mut n = 0u64;
    let mut start = || {
        n += 1;
        FIXTURE_EPOCH.add_nanos(n * Timestamp::NANOS_PER_SEC)
    };
    let chain: &[&[u8]] = &[CERT_WWW_EXAMPLE_COM, CERT_FIXTURE_ROOT_CA];

    let benign_tls = Conversation::new(addr(1, 40001), addr(2, 443), start())
        .handshake()
        .client(&tls::client_hello(&tls::Hello::default()))
        .server(&tls::server_flight_tls12(0xc02f, Some("h2"), chain))
        .client(&tls::client_finish_tls12())
        .server(&tls::server_finish_tls12())
        .client(&tls::app_data(600))
        .server(&tls::app_data(40_000))
        .close();
    flows.push(FixtureFlow {
        name: "benign_https",
        frames: benign_tls.into_frames(),
        server_port: 443,
        expect_app: "tls",
        expect_findings: &[],
        expect_blocked: false,
    });

    let get = b"GET /index.html HTTP/1.1\r\nHost: www.example.com\r\nUser-Agent: Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0\r\nAccept: text/html,application/xhtml+xml\r\nAccept-Language: en-US,en;q=0.5\r\nAccept-Encoding: gzip, deflate\r\nConnection: keep-alive\r\n\r\n";
    let ok =
        b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 13\r\n\r\n<html></html>";
    flows.push(FixtureFlow {
        name: "benign_http",
        frames: Conversation::new(addr(1, 40002), addr(2, 80), start())
            .handshake()
            .client(get)
            .server(ok)
            .close()
            .into_frames(),
        server_port: 80,
        expect_app: "http",
        expect_findings: &[],
        expect_blocked: false,
    });

    flows.push(FixtureFlow {
        name: "benign_ssh",
        frames: Conversation::new(addr(1, 40003), addr(2, 22), start())
            .handshake()
            .server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .client(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\n")
            .client(&ssh_kexinit())
            .server(&ssh_kexinit())
            .close()
            .into_frames(),
        server_port: 22,
        expect_app: "ssh",
        expect_findings: &[],
        expect_blocked: false,
    });

    flows.push(FixtureFlow {
        name: "ssh_on_443",
        frames: Conversation::new(addr(1, 40004), addr(2, 443), start())
            .handshake()
            .server(b"SSH-2.0-OpenSSH_9.2p1\r\n")
            .client(b"SSH-2.0-OpenSSH_9.2p1\r\n")
            .client(&ssh_kexinit())
            .server(&ssh_kexinit())
            .client(&[0x5a; 3000])
            .server(&[0xa5; 3000])
            .close()
            .into_frames(),
        server_port: 443,
        expect_app: "ssh",
        expect_findings: &["protocol_port_mismatch"],
        expect_blocked: true,
    });

    flows.push(FixtureFlow {
        name: "http_on_443",
        frames: Conversation::new(addr(1, 40005), addr(2, 443), start())
            .handshake()
            .client(
                b"POST /gate.php HTTP/1.1\r\nHost: 10.77.0.2:443\r\nContent-Length: 4\r\n\r\nping",
            )
            .server(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
            .close()
            .into_frames(),
        server_port: 443,
        expect_app: "http",
        // The beacon sends no User-Agent either (HeaderSignatureMatch's default pattern).
        expect_findings: &["http_header_signature", "protocol_port_mismatch"],
        expect_blocked: true,
    });

    flows.push(FixtureFlow {
        name: "smtp_on_25",
        frames: Conversation::new(addr(1, 40006), addr(2, 25), start())
            .handshake()
            .server(b"220 mail.example.com ESMTP Postfix\r\n")
            .client(b"EHLO client.example.com\r\n")
            .server(b"250-mail.example.com\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
            .client(b"QUIT\r\n")
            .server(b"221 2.0.0 Bye\r\n")
            .close()
            .into_frames(),
        server_port: 25,
        expect_app: "smtp",
        expect_findings: &[],
        expect_blocked: false,
    });

    flows.extend(http_and_port_flows(&mut start));
    flows
}

/// Deterministic bytes that look like ciphertext (xorshift), different per `seed`.
pub fn noise(len: usize, seed: u32) -> Vec<u8> {
    let mut x = seed | 1;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            (x >> 11) as u8
        })
        .collect()
}

/// A Chrome User-Agent, as a forged request would borrow it.
pub const CHROME_UA: &str = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36";

/// Bytes a client uploads in [`upload_heavy`]: enough for the engine's periodic look (every
/// 4096 packets) to come while the flow is still running.
pub const UPLOAD_BYTES: usize = 3_000_000;

/// A TLS 1.2 session (the benign_https handshake) in which the client uploads `up` bytes and
/// the server answers with `down`.
pub fn upload_heavy(
    client: SocketAddr,
    server: SocketAddr,
    start: Timestamp,
    up: usize,
    down: usize,
) -> Conversation {
    let chain: &[&[u8]] = &[CERT_WWW_EXAMPLE_COM, CERT_FIXTURE_ROOT_CA];
    Conversation::new(client, server, start)
        .handshake()
        .client(&tls::client_hello(&tls::Hello::default()))
        .server(&tls::server_flight_tls12(0xc02f, Some("h2"), chain))
        .client(&tls::client_finish_tls12())
        .server(&tls::server_finish_tls12())
        .client(&tls::app_data(up))
        .server(&tls::app_data(down))
        .close()
}

/// HTTP impersonations, unidentifiable bytes on reserved ports, a protocol mismatch between
/// directions and an upload-heavy flow.
fn http_and_port_flows(start: &mut dyn FnMut() -> Timestamp) -> Vec<FixtureFlow> {
    let mut flows = Vec::new();
    let ok = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\n\r\nok";

    // A script's request: no User-Agent, and no Host although it speaks HTTP/1.1.
    flows.push(FixtureFlow {
        name: "http_missing_headers",
        frames: Conversation::new(addr(1, 40007), addr(2, 80), start())
            .handshake()
            .client(b"GET /update/check?v=2 HTTP/1.1\r\nAccept: */*\r\nConnection: close\r\n\r\n")
            .server(ok)
            .close()
            .into_frames(),
        server_port: 80,
        expect_app: "http",
        expect_findings: &["http_header_signature"],
        expect_blocked: true,
    });

    // Chrome's User-Agent on a request Chrome would never write: lowercase names and none of
    // the Accept headers every Chrome request carries.
    let forged = format!(
        "GET /news/today HTTP/1.1\r\nhost: www.example.com\r\nuser-agent: {CHROME_UA}\r\nconnection: keep-alive\r\n\r\n"
    );
    flows.push(FixtureFlow {
        name: "http_forged_browser",
        frames: Conversation::new(addr(1, 40008), addr(2, 80), start())
            .handshake()
            .client(forged.as_bytes())
            .server(ok)
            .close()
            .into_frames(),
        server_port: 80,
        expect_app: "http",
        expect_findings: &["http_header_anomaly"],
        expect_blocked: true,
    });

    // An ordinary request answered by a C2-style text blob instead of an HTTP response.
    flows.push(FixtureFlow {
        name: "http_reply_not_http",
        frames: Conversation::new(addr(1, 40009), addr(2, 80), start())
            .handshake()
            .client(b"GET /gate.php?id=7 HTTP/1.1\r\nHost: cdn.example.net\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
            .server(b"dGFzazpzbGVlcCA2MDA7aWQ6NDI=$#$c2xlZXA=\n")
            .close()
            .into_frames(),
        server_port: 80,
        expect_app: "http",
        expect_findings: &["http_header_anomaly"],
        expect_blocked: true,
    });

    // Ciphertext-like bytes both ways on the HTTP port, from the first byte.
    flows.push(FixtureFlow {
        name: "random_on_80",
        frames: Conversation::new(addr(1, 40010), addr(2, 80), start())
            .handshake()
            .client(&noise(1200, 0x8080))
            .server(&noise(2600, 0x0808))
            .close()
            .into_frames(),
        server_port: 80,
        expect_app: "unknown",
        expect_findings: &["opaque_on_cleartext_port"],
        expect_blocked: true,
    });

    // Not TLS on 443: an obfuscated tunnel's opening, no record header anywhere.
    flows.push(FixtureFlow {
        name: "non_tls_on_443",
        frames: Conversation::new(addr(1, 40011), addr(2, 443), start())
            .handshake()
            .client(&noise(517, 0x4430))
            .server(&noise(1400, 0x0443))
            .client(&noise(300, 0x4431))
            .close()
            .into_frames(),
        server_port: 443,
        expect_app: "unknown",
        expect_findings: &["non_tls_on_tls_port"],
        expect_blocked: true,
    });

    // An HTTP client talking to an SSH server on 22 (suricata-verify output-eve-anomaly-02):
    // HTTP on the SSH port, a different protocol each way, and an answer that is not HTTP.
    flows.push(FixtureFlow {
        name: "http_to_ssh_server",
        frames: Conversation::new(addr(1, 40012), addr(2, 22), start())
            .handshake()
            .client(b"GET / HTTP/1.1\r\nHost: ssh.example.org:22\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n\r\n")
            .server(b"SSH-2.0-OpenSSH_9.2p1 Debian-2+deb12u3\r\nInvalid SSH identification string.\r\n")
            .close()
            .into_frames(),
        server_port: 22,
        expect_app: "http",
        expect_findings: &[
            "http_header_anomaly",
            "protocol_direction_mismatch",
            "protocol_port_mismatch",
        ],
        expect_blocked: true,
    });

    // Megabytes up, a few hundred bytes down, over real-looking TLS: a low-severity signal
    // that alerts without blocking.
    flows.push(FixtureFlow {
        name: "upload_heavy",
        frames: upload_heavy(addr(1, 40013), addr(2, 443), start(), UPLOAD_BYTES, 300)
            .into_frames(),
        server_port: 443,
        expect_app: "tls",
        expect_findings: &["asymmetric_flow"],
        expect_blocked: false,
    });

    flows
}

/// An SSH binary packet carrying a KEXINIT-like payload (opaque to identification).
pub fn ssh_kexinit() -> Vec<u8> {
    let payload: Vec<u8> = std::iter::once(20u8)
        .chain((0..16u8).map(|i| i.wrapping_mul(29)))
        .chain(
            b"\x00\x00\x00\x1acurve25519-sha256,ext-info-c"
                .iter()
                .copied(),
        )
        .collect();
    let padding = 8 - (payload.len() + 5) % 8 + 8;
    let len = payload.len() + padding + 1;
    let mut p = (len as u32).to_be_bytes().to_vec();
    p.push(padding as u8);
    p.extend_from_slice(&payload);
    p.extend(std::iter::repeat_n(0u8, padding));
    p
}

/// The standard flows merged into one capture.
pub fn standard_capture() -> Vec<TimedFrame> {
    interleave(standard_flows().into_iter().map(|f| f.frames).collect())
}

/// Handshakes no TLS stack writes, built byte by byte from the RFC 5246 layouts: the fake
/// and malformed TLS the handshake check must catch.
pub mod fake_tls {
    use super::tls::{handshake, record};

    /// Deterministic filler bytes (xorshift), so fixtures are stable across runs.
    pub fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A ClientHello body with a 3-byte cipher list (cipher suites are 2 bytes each) and no
    /// extensions.
    pub fn client_hello_odd_ciphers() -> Vec<u8> {
        let mut body = 0x0303u16.to_be_bytes().to_vec();
        body.extend(noise(32, 7));
        body.push(0);
        body.extend_from_slice(&[0, 3, 0xc0, 0x2f, 0x00]);
        body.extend_from_slice(&[1, 0]);
        record(22, 0x0301, &handshake(1, &body))
    }

    /// A ClientHello whose handshake header claims 10 bytes fewer than the record carries:
    /// its extensions block then runs past the message, and the last 10 bytes of the record
    /// read as a handshake message of their own.
    pub fn client_hello_length_mismatch() -> Vec<u8> {
        let hello = super::tls::client_hello(&super::tls::Hello::default());
        let mut out = hello.clone();
        // Record header (5) then handshake type (1) and a 24-bit length.
        let claimed = u32::from_be_bytes([0, out[6], out[7], out[8]]) - 10;
        out[6..9].copy_from_slice(&claimed.to_be_bytes()[1..]);
        out
    }

    /// A handshake record header announcing `len` bytes whose body starts with handshake
    /// type `msg_type` and is noise from there on, then more noise where the next record
    /// header should be.
    pub fn garbage_after_header(len: usize, msg_type: u8) -> Vec<u8> {
        let mut out = vec![22, 3, 3];
        out.extend_from_slice(&(len as u16).to_be_bytes());
        let mut body = noise(len, 0x5eed);
        if let Some(b) = body.first_mut() {
            *b = msg_type;
        }
        out.extend(body);
        // 0x9c is no record content type: the framing breaks here.
        out.push(0x9c);
        out.extend(noise(200, 0xbad));
        out
    }

    /// A fatal alert record (TLS 1.2 plaintext).
    pub fn fatal_alert(description: u8) -> Vec<u8> {
        record(21, 0x0303, &[2, description])
    }

    /// A TLS 1.2 ServerHello + Certificate + ServerHelloDone flight whose single certificate
    /// is `der` as given (for unparsable certificates).
    pub fn server_flight_with_raw_cert(der: &[u8]) -> Vec<u8> {
        super::tls::server_flight_tls12(0xc02f, None, &[der])
    }
}

/// Flows for the TLS, certificate, SNI and fingerprint checks: genuine handshakes with one
/// thing wrong each, and fake TLS. Each on its own client port, one second apart.
pub fn tls_check_flows() -> Vec<FixtureFlow> {
    use fake_tls as fake;
    let mut flows = Vec::new();
    let mut n = 0u64;
    let mut start = || {
        n += 1;
        FIXTURE_EPOCH.add_nanos((100 + n) * Timestamp::NANOS_PER_SEC)
    };
    let chain: &[&[u8]] = &[CERT_WWW_EXAMPLE_COM, CERT_FIXTURE_ROOT_CA];
    let hello = tls::client_hello(&tls::Hello::default());
    let flight = tls::server_flight_tls12(0xc02f, Some("h2"), chain);
    let genuine = |c: Conversation, client_hello: &[u8], server_flight: &[u8]| {
        c.handshake()
            .client(client_hello)
            .server(server_flight)
            .client(&tls::client_finish_tls12())
            .server(&tls::server_finish_tls12())
            .client(&tls::app_data(600))
            .server(&tls::app_data(4000))
            .close()
            .into_frames()
    };
    // Findings whose checks alert without blocking by default.
    const ALERT_ONLY: &[&str] = &[
        "sni_missing",
        "sni_ip_literal",
        "sni_alpn_mismatch",
        "tls_one_sided",
        "cert_validity_too_long",
        "tls_fatal_alert_after_certificate",
    ];
    let mut push = |name, frames, expect_findings: &'static [&'static str]| {
        flows.push(FixtureFlow {
            name,
            frames,
            server_port: 443,
            expect_app: "tls",
            expect_findings,
            expect_blocked: expect_findings.iter().any(|f| !ALERT_ONLY.contains(f)),
        });
    };

    let c = Conversation::new(addr(1, 41001), addr(2, 443), start());
    push("tls_benign_handshake", genuine(c, &hello, &flight), &[]);

    let c = Conversation::new(addr(1, 41002), addr(2, 443), start())
        .handshake()
        .client(&fake::client_hello_odd_ciphers())
        .server(&tls::app_data(800))
        .close();
    // No SNI either, on 443.
    push(
        "fake_tls_odd_cipher_list",
        c.into_frames(),
        &["tls_malformed_handshake", "sni_missing"],
    );

    let c = Conversation::new(addr(1, 41003), addr(2, 443), start())
        .handshake()
        .client(&fake::client_hello_length_mismatch())
        .server(&tls::app_data(800))
        .close();
    push(
        "fake_tls_length_mismatch",
        c.into_frames(),
        &["tls_malformed_handshake"],
    );

    // A real-looking ClientHello answered by a record header and noise.
    let c = Conversation::new(addr(1, 41004), addr(2, 443), start())
        .handshake()
        .client(&hello)
        .server(&fake::garbage_after_header(700, 2))
        .close();
    push(
        "fake_tls_garbage_after_header",
        c.into_frames(),
        &["tls_malformed_handshake"],
    );

    let c = Conversation::new(addr(1, 41005), addr(2, 443), start())
        .handshake()
        .client(&hello)
        .server(b"SSH-2.0-OpenSSH_9.2p1\r\n")
        .server(&ssh_kexinit())
        .close();
    push(
        "tls_hello_answered_by_ssh",
        c.into_frames(),
        &["tls_answered_by_non_tls"],
    );

    let c = Conversation::new(addr(1, 41006), addr(2, 443), start())
        .handshake()
        .client(&tls::app_data(1200))
        .server(&tls::app_data(3000))
        .client(&tls::app_data(500))
        .close();
    push(
        "tls_app_data_before_any_handshake",
        c.into_frames(),
        &["tls_malformed_handshake"],
    );

    let c = Conversation::new(addr(1, 41007), addr(2, 443), start())
        .handshake()
        .client(&hello)
        .server(&tls::app_data(3000))
        .client(&tls::app_data(3000))
        .close();
    push(
        "tls_server_skips_handshake",
        c.into_frames(),
        &["tls_malformed_handshake"],
    );

    let mut client = hello.clone();
    client.extend(tls::app_data(4000));
    let c = Conversation::new(addr(1, 41008), addr(2, 443), start())
        .handshake()
        .client(&client)
        .close();
    push("tls_one_sided", c.into_frames(), &["tls_one_sided"]);

    let ip_sni = tls::client_hello(&tls::Hello {
        sni: Some("203.0.113.7"),
        ..tls::Hello::default()
    });
    let c = Conversation::new(addr(1, 41009), addr(2, 443), start());
    push(
        "tls_ip_literal_sni",
        genuine(c, &ip_sni, &flight),
        &["sni_ip_literal", "cert_name_mismatch"],
    );

    let no_sni = tls::client_hello(&tls::Hello {
        sni: None,
        ..tls::Hello::default()
    });
    let c = Conversation::new(addr(1, 41010), addr(2, 443), start());
    push(
        "tls_no_sni_with_h2",
        genuine(c, &no_sni, &flight),
        &["sni_missing", "sni_alpn_mismatch"],
    );

    // The fixture certificate is valid 2026-11-23 to 2027-11-23.
    let after = Timestamp::from_secs_nanos(1_830_000_000, 0); // 2027-12-27
    let c = Conversation::new(addr(1, 41011), addr(2, 443), after);
    push(
        "tls_cert_expired",
        genuine(c, &hello, &flight),
        &["cert_expired"],
    );

    let before = Timestamp::from_secs_nanos(1_790_000_000, 0); // 2026-09-21
    let c = Conversation::new(addr(1, 41012), addr(2, 443), before);
    push(
        "tls_cert_not_yet_valid",
        genuine(c, &hello, &flight),
        &["cert_not_yet_valid"],
    );

    let root_only = tls::server_flight_tls12(0xc02f, Some("h2"), &[CERT_FIXTURE_ROOT_CA]);
    let c = Conversation::new(addr(1, 41013), addr(2, 443), start());
    push(
        "tls_self_signed",
        genuine(c, &hello, &root_only),
        &["cert_self_signed", "cert_name_mismatch"],
    );

    let other_name = tls::client_hello(&tls::Hello {
        sni: Some("mail.example.org"),
        ..tls::Hello::default()
    });
    let c = Conversation::new(addr(1, 41014), addr(2, 443), start());
    push(
        "tls_cert_name_mismatch",
        genuine(c, &other_name, &flight),
        &["cert_name_mismatch"],
    );

    let c = Conversation::new(addr(1, 41015), addr(2, 443), start())
        .handshake()
        .client(&hello)
        .server(&flight)
        .client(&fake::fatal_alert(48))
        .close();
    push(
        "tls_fatal_alert_after_certificate",
        c.into_frames(),
        &["tls_fatal_alert_after_certificate"],
    );

    let mut broken = CERT_WWW_EXAMPLE_COM.to_vec();
    broken.truncate(broken.len() / 2);
    let bad_flight = fake::server_flight_with_raw_cert(&broken);
    let c = Conversation::new(addr(1, 41016), addr(2, 443), start());
    push(
        "tls_cert_invalid",
        genuine(c, &hello, &bad_flight),
        &["cert_invalid"],
    );

    flows
}

/// Workloads for benchmarks, profiling and the allocation test.
pub mod workloads {
    use super::{tcp_frame, tls, Conversation, Flags, TimedFrame, FIXTURE_EPOCH};
    use std::net::SocketAddr;

    /// `n` 64-byte SYNs over `n` distinct 5-tuples (xorshift-spread addresses and ports).
    pub fn syn_flood(n: usize) -> Vec<TimedFrame> {
        let mut x = 0x2545_f491_4f6c_dd1du64;
        (0..n)
            .map(|i| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let src = SocketAddr::from((
                    [10, (x >> 8) as u8, (x >> 16) as u8, (x >> 24) as u8],
                    1024 + (x >> 32) as u16 % 60_000,
                ));
                let dst = SocketAddr::from(([10, 77, 0, 2], 443));
                let mut f = tcp_frame(src, dst, [2; 6], [4; 6], x as u32, 0, Flags::SYN, &[]);
                f.resize(64, 0);
                (FIXTURE_EPOCH.add_nanos(i as u64 * 1000), f)
            })
            .collect()
    }

    /// `flows` HTTPS flows split at the end of their handshakes: (the frames up to and
    /// including the handshake, the data frames after it). `client_bytes` and `server_bytes`
    /// of application data follow the handshake.
    pub fn established_https(
        flows: u16,
        client_bytes: usize,
        server_bytes: usize,
    ) -> (Vec<TimedFrame>, Vec<TimedFrame>) {
        let mut warm = Vec::new();
        let mut steady = Vec::new();
        for i in 0..flows {
            let client = SocketAddr::from((
                [10, 77, 1 + (i / 250) as u8, 1 + (i % 250) as u8],
                40_000u16.wrapping_add(i),
            ));
            let server = SocketAddr::from(([10, 77, 0, 2], 443));
            let conv = Conversation::new(client, server, FIXTURE_EPOCH)
                .handshake()
                .client(&tls::client_hello(&tls::Hello::default()))
                .server(&tls::server_flight_tls12(
                    0xc02f,
                    Some("h2"),
                    &[super::CERT_WWW_EXAMPLE_COM, super::CERT_FIXTURE_ROOT_CA],
                ))
                .client(&tls::client_finish_tls12())
                .server(&tls::server_finish_tls12());
            let n = conv.frames().len();
            let mut conv = conv;
            if client_bytes > 0 {
                conv = conv.client(&tls::app_data(client_bytes));
            }
            if server_bytes > 0 {
                conv = conv.server(&tls::app_data(server_bytes));
            }
            let frames = conv.into_frames();
            warm.extend_from_slice(&frames[..n]);
            steady.extend_from_slice(&frames[n..]);
        }
        warm.sort_by_key(|f| f.0);
        steady.sort_by_key(|f| f.0);
        (warm, steady)
    }
}

/// A flood of 64-byte TCP frames over random 5-tuples with the fixture flows spread through
/// it, streamed frame by frame (ten million frames never sit in memory at once), and the memory
/// bound an engine configuration promises under it.
///
/// The flood has two phases. The first (most of it) is a SYN flood with RSTs, FINs and bare
/// ACKs that belong to no connection: every frame starts a flow the table can evict (half-open
/// and one-way flows sit on its *new* list, reset ones on its *closed* list), so a full table
/// evicts. The fixture flows run during this phase, one after another. The second phase (the
/// last `handshake_permille` of the flood) completes handshakes and then stays silent: those
/// flows are established and not idle long enough to be evicted, so once they fill the table
/// every further new flow is refused.
///
/// Flood addresses come from the benchmarking range 198.18.0.0/15 (RFC 2544), so they never
/// collide with the fixture flows (10.77.0.0/24).
pub mod flood {
    use super::{
        standard_flows, tls_check_flows, FixtureFlow, Flags, CLIENT_MAC, FIXTURE_EPOCH, SERVER_MAC,
    };
    use crate::alert::{AlertRecord, EveRecord, TlsEveRecord};
    use crate::config::Config;
    use crate::flow::{FlowTable, StreamPool};
    use crate::inspect::InspectState;
    use crate::source::{Action, Frame, PacketSource, Polled, SourceError, Timestamp};

    /// Every flood frame is this long: Ethernet, IPv4 and TCP headers and 10 bytes of padding.
    pub const FRAME_LEN: usize = 64;

    /// What to generate.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct FloodSpec {
        /// Flood frames, not counting the fixture flows' own frames.
        pub packets: u64,
        /// Per mille of the flood, at its end, made of completed handshakes that stay open.
        pub handshake_permille: u32,
        /// Flood frames between two consecutive frames of one fixture flow.
        pub gap: u64,
        /// Packet time between two frames (1 µs: a flood of 1 Mpps).
        pub step_ns: u64,
        pub seed: u64,
        /// Leave the flood frames out but keep every fixture frame at the time it has in the
        /// flood: the baseline the flood's findings are compared with.
        pub embedded_only: bool,
    }

    impl FloodSpec {
        pub fn new(packets: u64) -> FloodSpec {
            FloodSpec {
                packets,
                handshake_permille: 50,
                gap: 8,
                step_ns: 1_000,
                seed: 0x5eed_f100d,
                embedded_only: false,
            }
        }
    }

    /// Counts of what a flood held, by kind.
    #[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
    pub struct FloodCounts {
        pub syn: u64,
        pub rst: u64,
        pub fin: u64,
        pub ack: u64,
        /// Frames of completed handshakes (three per connection).
        pub handshake: u64,
        /// Frames of the fixture flows.
        pub embedded: u64,
    }

    impl FloodCounts {
        pub fn flood(&self) -> u64 {
            self.syn + self.rst + self.fin + self.ack + self.handshake
        }

        pub fn total(&self) -> u64 {
            self.flood() + self.embedded
        }
    }

    #[derive(Debug, Clone, Copy)]
    enum Kind {
        Syn,
        Rst,
        Fin,
        Ack,
        Handshake,
    }

    impl Kind {
        fn count(self, c: &mut FloodCounts) -> &mut u64 {
            match self {
                Kind::Syn => &mut c.syn,
                Kind::Rst => &mut c.rst,
                Kind::Fin => &mut c.fin,
                Kind::Ack => &mut c.ack,
                Kind::Handshake => &mut c.handshake,
            }
        }
    }

    /// The fixture flows a flood carries: the standard set and the TLS check flows, except
    /// those whose verdict depends on the capture's absolute time (certificates not yet valid
    /// or expired), which a flood's own timeline would change.
    pub fn embedded_flows() -> Vec<FixtureFlow> {
        let day = FIXTURE_EPOCH.add_nanos(86_400 * Timestamp::NANOS_PER_SEC);
        standard_flows()
            .into_iter()
            .chain(tls_check_flows())
            .filter(|f| {
                f.frames
                    .first()
                    .is_some_and(|(ts, _)| *ts >= FIXTURE_EPOCH && *ts < day)
            })
            .collect()
    }

    /// A flood as a stream of frames. Also a [`PacketSource`], so an engine can run on it
    /// without a capture file.
    pub struct Flood {
        spec: FloodSpec,
        flows: Vec<FixtureFlow>,
        /// (flood position, flow, frame): when each fixture frame goes out, sorted.
        schedule: Vec<(u64, u32, u32)>,
        next_scheduled: usize,
        /// Flood frames generated so far (emitted or, with `embedded_only`, skipped).
        position: u64,
        /// Frames emitted so far: the clock.
        emitted: u64,
        /// Where the completed-handshake phase begins.
        handshakes_from: u64,
        rng: u64,
        buf: [u8; FRAME_LEN],
        /// Handshake phase: the connection being opened and its next frame (0..3).
        conn: ([u8; 4], u16, [u8; 4], u32, u32),
        conn_step: u8,
        counts: FloodCounts,
        batch: usize,
    }

    impl Flood {
        pub fn new(spec: FloodSpec, flows: Vec<FixtureFlow>) -> Flood {
            let handshake_frames =
                spec.packets * u64::from(spec.handshake_permille.min(1000)) / 1000 / 3 * 3;
            let handshakes_from = spec.packets - handshake_frames;
            let gap = spec.gap.max(1);
            let longest = flows
                .iter()
                .map(|f| f.frames.len() as u64 * gap)
                .max()
                .unwrap_or(0);
            // The flows start evenly spaced over the first phase, after the table has had
            // some flood to fill up with, and end before the second phase begins.
            let room = handshakes_from.saturating_sub(longest);
            let k = flows.len() as u64;
            let mut schedule = Vec::new();
            for (i, f) in flows.iter().enumerate() {
                let start = room * (i as u64 + 1) / (k + 1);
                for j in 0..f.frames.len() {
                    schedule.push((start + j as u64 * gap, i as u32, j as u32));
                }
            }
            schedule.sort_unstable();
            Flood {
                spec,
                flows,
                schedule,
                next_scheduled: 0,
                position: 0,
                emitted: 0,
                handshakes_from,
                rng: spec.seed | 1,
                buf: [0; FRAME_LEN],
                conn: ([0; 4], 0, [0; 4], 0, 0),
                conn_step: 0,
                counts: FloodCounts::default(),
                batch: 256,
            }
        }

        /// The fixture flows carried, in the order they start.
        pub fn flows(&self) -> &[FixtureFlow] {
            &self.flows
        }

        /// Frames this flood will emit in all.
        pub fn total_frames(&self) -> u64 {
            let flood = if self.spec.embedded_only {
                0
            } else {
                self.spec.packets
            };
            flood + self.schedule.len() as u64
        }

        /// What has been emitted so far, by kind.
        pub fn counts(&self) -> FloodCounts {
            self.counts
        }

        /// Heap the generator holds (the fixture flows' frames and their schedule): what a
        /// process running an engine on it uses besides the engine.
        pub fn heap_bytes(&self) -> usize {
            let frames: usize = self
                .flows
                .iter()
                .map(|f| {
                    f.frames.capacity() * std::mem::size_of::<(Timestamp, Vec<u8>)>()
                        + f.frames.iter().map(|(_, v)| v.capacity()).sum::<usize>()
                })
                .sum();
            frames + self.schedule.capacity() * std::mem::size_of::<(u64, u32, u32)>()
        }

        /// The next frame and its time, `None` at the end.
        pub fn next_frame(&mut self) -> Option<(Timestamp, &[u8])> {
            loop {
                let due = self
                    .schedule
                    .get(self.next_scheduled)
                    .filter(|(at, _, _)| *at <= self.position || self.position >= self.spec.packets)
                    .copied();
                if let Some((_, flow, frame)) = due {
                    self.next_scheduled += 1;
                    let ts = self.tick();
                    self.counts.embedded += 1;
                    let data = self
                        .flows
                        .get(flow as usize)
                        .and_then(|f| f.frames.get(frame as usize))
                        .map(|(_, d)| d.as_slice())
                        .unwrap_or(&[]);
                    return Some((ts, data));
                }
                if self.position >= self.spec.packets {
                    return None;
                }
                let kind = self.make_flood_frame();
                self.position += 1;
                if !self.spec.embedded_only {
                    *kind.count(&mut self.counts) += 1;
                    let ts = self.tick();
                    return Some((ts, &self.buf));
                }
                // Skipped flood frames still take their time, so the fixture frames keep the
                // times they have in the flood.
                self.tick();
            }
        }

        fn tick(&mut self) -> Timestamp {
            let ts = FIXTURE_EPOCH.add_nanos(self.emitted.saturating_mul(self.spec.step_ns));
            self.emitted += 1;
            ts
        }

        fn random(&mut self) -> u64 {
            // xorshift64*
            self.rng ^= self.rng >> 12;
            self.rng ^= self.rng << 25;
            self.rng ^= self.rng >> 27;
            self.rng.wrapping_mul(0x2545_f491_4f6c_dd1d)
        }

        fn random_endpoints(&mut self) -> ([u8; 4], u16, [u8; 4], u16) {
            const PORTS: [u16; 8] = [80, 443, 22, 25, 8080, 3389, 8443, 993];
            let r = self.random();
            let s = self.random();
            let src = [198, 18, (r >> 8) as u8, (r >> 16) as u8];
            let dst = [198, 19, (r >> 24) as u8, (r >> 32) as u8];
            let sport = 1024 + (s % 64_512) as u16;
            // Mostly well-known services, some anywhere.
            let dport = match PORTS.get((s >> 20) as usize % 10) {
                Some(p) => *p,
                None => 1 + (s >> 32) as u16 % 65_535,
            };
            (src, sport, dst, dport)
        }

        /// Writes the next flood frame into the buffer.
        fn make_flood_frame(&mut self) -> Kind {
            if self.position >= self.handshakes_from {
                self.make_handshake_frame();
                return Kind::Handshake;
            }
            let (src, sport, dst, dport) = self.random_endpoints();
            let r = self.random();
            let (seq, ack) = (r as u32, (r >> 32) as u32);
            let (kind, flags) = match r % 100 {
                0..70 => (Kind::Syn, Flags::SYN),
                70..80 => (Kind::Rst, Flags::RST),
                80..90 => (Kind::Fin, Flags::FIN | Flags::ACK),
                _ => (Kind::Ack, Flags::ACK),
            };
            write_frame(&mut self.buf, true, src, sport, dst, dport, seq, ack, flags);
            kind
        }

        fn make_handshake_frame(&mut self) {
            if self.conn_step == 0 {
                let (src, sport, dst, _) = self.random_endpoints();
                let r = self.random();
                self.conn = (src, sport, dst, r as u32, (r >> 32) as u32);
            }
            let (c, cport, s, cisn, sisn) = self.conn;
            let sport = 443;
            let buf = &mut self.buf;
            match self.conn_step {
                0 => write_frame(buf, true, c, cport, s, sport, cisn, 0, Flags::SYN),
                1 => write_frame(
                    buf,
                    false,
                    s,
                    sport,
                    c,
                    cport,
                    sisn,
                    cisn.wrapping_add(1),
                    Flags::SYN | Flags::ACK,
                ),
                _ => write_frame(
                    buf,
                    true,
                    c,
                    cport,
                    s,
                    sport,
                    cisn.wrapping_add(1),
                    sisn.wrapping_add(1),
                    Flags::ACK,
                ),
            }
            self.conn_step = (self.conn_step + 1) % 3;
        }

        /// Writes the whole flood as a pcap; returns what it held.
        pub fn write_pcap<W: std::io::Write>(
            &mut self,
            w: &mut crate::datapath::pcapwrite::PcapWriter<W>,
        ) -> std::io::Result<FloodCounts> {
            while let Some((ts, frame)) = self.next_frame() {
                w.write(ts, frame)?;
            }
            Ok(self.counts)
        }
    }

    impl PacketSource for Flood {
        fn poll_batch<F>(&mut self, mut handle: F) -> Result<Polled, SourceError>
        where
            F: FnMut(&Frame<'_>) -> Action,
        {
            let mut n = 0;
            while n < self.batch {
                let Some((ts, data)) = self.next_frame() else {
                    break;
                };
                let frame = Frame::ethernet(data, ts);
                handle(&frame);
                n += 1;
            }
            Ok(if n == 0 {
                Polled::End
            } else {
                Polled::Frames(n)
            })
        }
    }

    /// One flood frame from a client, for tests.
    #[cfg(test)]
    pub(super) fn frame_for_test(
        src: std::net::SocketAddr,
        dst: std::net::SocketAddr,
        seq: u32,
        ack: u32,
        flags: u8,
    ) -> [u8; FRAME_LEN] {
        let v4 = |a: std::net::SocketAddr| match a.ip() {
            std::net::IpAddr::V4(v) => v.octets(),
            std::net::IpAddr::V6(_) => [0; 4],
        };
        let mut buf = [0; FRAME_LEN];
        write_frame(
            &mut buf,
            true,
            v4(src),
            src.port(),
            v4(dst),
            dst.port(),
            seq,
            ack,
            flags,
        );
        buf
    }

    /// Client port of a fixture flow (its first frame is the client's SYN).
    pub fn client_port(flow: &FixtureFlow) -> Option<u16> {
        let (ts, data) = flow.frames.first()?;
        let frame = Frame::ethernet(data, *ts);
        match crate::wire::parse_frame(&frame) {
            crate::wire::Parsed::Tcp(p) if p.dport == flow.server_port => Some(p.sport),
            crate::wire::Parsed::Tcp(p) => Some(p.dport),
            _ => None,
        }
    }

    /// Writes a flood capture to `out`, and beside it `<out>.flows.tsv`: one line per fixture
    /// flow it carries (name, client port, server port, expected protocol, expected findings,
    /// blocked in block mode), for scripts that compare findings.
    pub fn write_capture(
        out: &std::path::Path,
        spec: FloodSpec,
    ) -> Result<(FloodCounts, usize), SourceError> {
        use std::io::Write;
        let io_err = |path: &std::path::Path| {
            let path = path.display().to_string();
            move |source| SourceError::Io { path, source }
        };
        let mut flood = Flood::new(spec, embedded_flows());
        let mut w = crate::datapath::pcapwrite::PcapWriter::create_ethernet(out)?;
        let counts = flood.write_pcap(&mut w).map_err(io_err(out))?;
        w.finish().map_err(io_err(out))?;
        let mut tsv = String::from(
            "name\tclient_port\tserver_port\texpect_app\texpect_findings\texpect_blocked\n",
        );
        for f in flood.flows() {
            tsv.push_str(&format!(
                "{}\t{}\t{}\t{}\t{}\t{}\n",
                f.name,
                client_port(f).unwrap_or(0),
                f.server_port,
                f.expect_app,
                f.expect_findings.join(","),
                f.expect_blocked
            ));
        }
        let list = out.with_extension("flows.tsv");
        std::fs::File::create(&list)
            .and_then(|mut file| file.write_all(tsv.as_bytes()))
            .map_err(io_err(&list))?;
        Ok((counts, flood.flows().len()))
    }

    /// One's-complement sum of big-endian 16-bit words, not yet folded.
    fn sum16(bytes: &[u8]) -> u32 {
        bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum()
    }

    fn fold(mut s: u32) -> u16 {
        while s > 0xffff {
            s = (s & 0xffff) + (s >> 16);
        }
        !(s as u16)
    }

    /// A 64-byte Ethernet/IPv4/TCP frame without payload, checksums right.
    #[allow(clippy::too_many_arguments)]
    fn write_frame(
        buf: &mut [u8; FRAME_LEN],
        from_client: bool,
        src: [u8; 4],
        sport: u16,
        dst: [u8; 4],
        dport: u16,
        seq: u32,
        ack: u32,
        flags: u8,
    ) {
        let (smac, dmac) = if from_client {
            (CLIENT_MAC, SERVER_MAC)
        } else {
            (SERVER_MAC, CLIENT_MAC)
        };
        *buf = [0; FRAME_LEN];
        buf[0..6].copy_from_slice(&dmac);
        buf[6..12].copy_from_slice(&smac);
        buf[12..14].copy_from_slice(&0x0800u16.to_be_bytes());
        let ip = 14;
        buf[ip] = 0x45;
        buf[ip + 2..ip + 4].copy_from_slice(&40u16.to_be_bytes());
        buf[ip + 6] = 0x40; // don't fragment
        buf[ip + 8] = 64;
        buf[ip + 9] = 6;
        buf[ip + 12..ip + 16].copy_from_slice(&src);
        buf[ip + 16..ip + 20].copy_from_slice(&dst);
        let ip_sum = fold(sum16(&buf[ip..ip + 20]));
        buf[ip + 10..ip + 12].copy_from_slice(&ip_sum.to_be_bytes());
        let tcp = ip + 20;
        buf[tcp..tcp + 2].copy_from_slice(&sport.to_be_bytes());
        buf[tcp + 2..tcp + 4].copy_from_slice(&dport.to_be_bytes());
        buf[tcp + 4..tcp + 8].copy_from_slice(&seq.to_be_bytes());
        let ack = if flags & Flags::ACK != 0 { ack } else { 0 };
        buf[tcp + 8..tcp + 12].copy_from_slice(&ack.to_be_bytes());
        buf[tcp + 12] = 5 << 4;
        buf[tcp + 13] = flags;
        buf[tcp + 14..tcp + 16].copy_from_slice(&64_240u16.to_be_bytes());
        // Pseudo-header: addresses, protocol, TCP length.
        let pseudo = sum16(&buf[ip + 12..ip + 20]) + 6 + 20;
        let tcp_sum = fold(pseudo + sum16(&buf[tcp..tcp + 20]));
        buf[tcp + 16..tcp + 18].copy_from_slice(&tcp_sum.to_be_bytes());
    }

    /// The most memory one engine may use under a config, by part, in bytes: every structure
    /// the config sizes, counted as if completely full. A process adds its fixed overhead
    /// (code, libraries, thread stacks, I/O buffers), which is measured, not derived.
    #[derive(Debug, Clone, Copy, PartialEq, Eq)]
    pub struct MemoryBound {
        /// Flow table: hash index and flow slab (`flow.capacity`).
        pub table: usize,
        /// Stream windows (`stream.memcap`, rounded down to whole slots).
        pub stream_windows: usize,
        /// Inspection state and free-list entry per stream slot (memcap / (2 x depth) slots).
        pub stream_state: usize,
        /// EVE queue (`output.queue_capacity` records), each at its slot size plus the boxed
        /// payload of the largest boxed record.
        pub eve_queue: usize,
    }

    impl MemoryBound {
        pub fn of(config: &Config) -> MemoryBound {
            // Built only to ask their sizes: both allocate zeroed memory the OS hands out
            // lazily, so nothing here becomes resident.
            let table = FlowTable::new(config.flow.table(), 0).full_footprint_bytes();
            let pool = StreamPool::new(config.stream.depth as usize, config.stream.memcap as usize);
            let slots = pool.capacity();
            let stream_windows = pool.reserved_bytes();
            let stream_state = slots
                * (std::mem::size_of::<InspectState>() + std::mem::size_of::<u32>())
                + slots.div_ceil(64) * 8;
            let boxed = std::mem::size_of::<AlertRecord>().max(std::mem::size_of::<TlsEveRecord>());
            // crossbeam's bounded channel keeps a stamp word beside each message.
            let slot = std::mem::size_of::<EveRecord>() + std::mem::size_of::<usize>();
            let eve_queue = config.output.queue_capacity as usize * (slot + boxed);
            MemoryBound {
                table,
                stream_windows,
                stream_state,
                eve_queue,
            }
        }

        pub fn total(&self) -> usize {
            self.table + self.stream_windows + self.stream_state + self.eve_queue
        }
    }

    impl std::fmt::Display for MemoryBound {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            const MIB: f64 = 1024.0 * 1024.0;
            write!(
                f,
                "{:.1} MiB = table {:.1} + stream windows {:.1} + stream state {:.1} + EVE queue {:.1}",
                self.total() as f64 / MIB,
                self.table as f64 / MIB,
                self.stream_windows as f64 / MIB,
                self.stream_state as f64 / MIB,
                self.eve_queue as f64 / MIB
            )
        }
    }
}

#[cfg(test)]
mod flood_tests {
    use super::flood::*;
    use super::*;
    use crate::source::Frame;
    use crate::wire::{self, Parsed};

    fn collect(spec: FloodSpec) -> (Vec<(Timestamp, Vec<u8>)>, FloodCounts) {
        let mut f = Flood::new(spec, embedded_flows());
        let mut out = Vec::new();
        while let Some((ts, d)) = f.next_frame() {
            out.push((ts, d.to_vec()));
        }
        assert_eq!(out.len() as u64, f.total_frames());
        (out, f.counts())
    }

    #[test]
    fn a_flood_carries_every_fixture_frame_in_order_among_its_own() {
        let spec = FloodSpec::new(200_000);
        let (frames, counts) = collect(spec);
        let flows = embedded_flows();
        let fixture_frames: usize = flows.iter().map(|f| f.frames.len()).sum();
        assert_eq!(counts.embedded as usize, fixture_frames);
        assert_eq!(counts.flood(), spec.packets);
        assert_eq!(counts.handshake, spec.packets * 50 / 1000 / 3 * 3);
        let a = counts.flood() - counts.handshake;
        // 70 / 10 / 10 / 10 per cent, within a per cent of the phase.
        for (got, share) in [
            (counts.syn, 70),
            (counts.rst, 10),
            (counts.fin, 10),
            (counts.ack, 10),
        ] {
            assert!(got.abs_diff(a * share / 100) < a / 100, "{counts:?}");
        }
        assert!(
            frames.windows(2).all(|w| w[0].0 < w[1].0),
            "time goes forwards"
        );

        // Every fixture frame appears, in its flow's order; the rest are 64-byte frames from
        // the benchmarking range without payload.
        let mut next = vec![0usize; flows.len()];
        let mut positions = vec![Vec::new(); flows.len()];
        let (mut syn, mut rst) = (0, 0);
        for (i, (ts, d)) in frames.iter().enumerate() {
            let frame = Frame::ethernet(d, *ts);
            let Parsed::Tcp(p) = wire::parse_frame(&frame) else {
                panic!("frame {i} is not TCP");
            };
            if p.src[..2] == [10, 77] {
                let k = (0..flows.len())
                    .find(|&k| {
                        flows[k]
                            .frames
                            .get(next[k])
                            .is_some_and(|(_, want)| want == d)
                    })
                    .expect("a fixture frame, next in its flow");
                next[k] += 1;
                positions[k].push(i);
            } else {
                assert_eq!(d.len(), flood::FRAME_LEN);
                assert!(p.payload.is_empty() && p.anomalies.0 == 0, "frame {i}");
                assert!(p.src[..2] == [198, 18] || p.src[..2] == [198, 19]);
                syn += u64::from(p.flags.syn() && !p.flags.ack());
                rst += u64::from(p.flags.rst());
            }
        }
        assert_eq!(syn, counts.syn + counts.handshake / 3);
        assert_eq!(rst, counts.rst);
        for (k, f) in flows.iter().enumerate() {
            assert_eq!(next[k], f.frames.len(), "{}", f.name);
        }
        // Spread through the first phase: the first flow starts after the table could fill,
        // the last ends before the handshakes begin.
        let handshakes_from = frames.len() - counts.handshake as usize;
        let first = positions.iter().map(|p| p[0]).min().unwrap();
        let last = positions.iter().map(|p| *p.last().unwrap()).max().unwrap();
        assert!(
            first > 1000 && last < handshakes_from,
            "{first} {last} {handshakes_from}"
        );

        // Without the flood: the same fixture frames at the same times.
        let alone = collect(FloodSpec {
            embedded_only: true,
            ..spec
        })
        .0;
        let embedded: Vec<_> = frames
            .into_iter()
            .filter(|(_, d)| d[26..28] == [10, 77])
            .collect();
        assert_eq!(alone, embedded);
    }

    #[test]
    fn flood_frames_match_an_independent_builder() {
        let src = SocketAddr::from(([198, 18, 1, 2], 40_000));
        let dst = SocketAddr::from(([198, 19, 3, 4], 443));
        for flags in [
            Flags::SYN,
            Flags::RST,
            Flags::FIN | Flags::ACK,
            Flags::ACK,
            Flags::SYN | Flags::ACK,
        ] {
            let mut want = tcp_frame(
                src,
                dst,
                CLIENT_MAC,
                SERVER_MAC,
                0x1234_5678,
                0x9abc_def0,
                flags,
                &[],
            );
            want.resize(flood::FRAME_LEN, 0);
            let got = flood::frame_for_test(src, dst, 0x1234_5678, 0x9abc_def0, flags);
            assert_eq!(got.to_vec(), want, "flags {flags:#x}");
        }
    }
}
