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
        expect_findings: &["protocol_port_mismatch"],
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
    let mut push = |name, frames, expect_findings| {
        flows.push(FixtureFlow {
            name,
            frames,
            server_port: 443,
            expect_app: "tls",
            expect_findings,
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
