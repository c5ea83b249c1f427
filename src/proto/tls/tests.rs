use super::testdata::{self, bytes};
use super::*;
use crate::proto::summary::TlsSummary;

/// An owned, comparable copy of an event (events borrow the stream and the scratch).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ev {
    Ch(Box<ClientHello>),
    Sh(Box<ServerHello>),
    Cert(u16, Vec<u8>),
    Done,
    Hs(u8, u32),
    Ccs,
    Alert(u8, u8),
    EncAlert(u16),
    EncHs(u16),
    App(u16),
    Heartbeat(u16),
    Anomaly(TlsAnomaly),
}

fn own(e: TlsEvent<'_>) -> Ev {
    match e {
        TlsEvent::ClientHello(c) => Ev::Ch(Box::new(*c)),
        TlsEvent::ServerHello(s) => Ev::Sh(Box::new(*s)),
        TlsEvent::Certificate { index, der } => Ev::Cert(index, der.to_vec()),
        TlsEvent::ServerHelloDone => Ev::Done,
        TlsEvent::Handshake { msg_type, len } => Ev::Hs(msg_type, len),
        TlsEvent::ChangeCipherSpec => Ev::Ccs,
        TlsEvent::Alert { level, description } => Ev::Alert(level, description),
        TlsEvent::EncryptedAlert { len } => Ev::EncAlert(len),
        TlsEvent::EncryptedHandshake { len } => Ev::EncHs(len),
        TlsEvent::ApplicationData { len } => Ev::App(len),
        TlsEvent::Heartbeat { len } => Ev::Heartbeat(len),
        TlsEvent::Anomaly(a) => Ev::Anomaly(a),
    }
}

fn run_with(role: Dir, data: &[u8], scratch_len: usize) -> (Vec<Ev>, TlsDir) {
    let mut st = TlsDir::new(role);
    let mut scratch = TlsScratch::new(scratch_len);
    let mut evs = Vec::new();
    st.feed(data, &mut scratch, |e| evs.push(own(e)));
    (evs, st)
}

fn run(role: Dir, data: &[u8]) -> Vec<Ev> {
    run_with(role, data, DEFAULT_SCRATCH_LEN).0
}

fn anomalies(evs: &[Ev]) -> Vec<TlsAnomaly> {
    evs.iter()
        .filter_map(|e| match e {
            Ev::Anomaly(a) => Some(*a),
            _ => None,
        })
        .collect()
}

fn client_hello(evs: &[Ev]) -> &ClientHello {
    evs.iter()
        .find_map(|e| match e {
            Ev::Ch(c) => Some(&**c),
            _ => None,
        })
        .expect("a ClientHello event")
}

fn server_hello(evs: &[Ev]) -> &ServerHello {
    evs.iter()
        .find_map(|e| match e {
            Ev::Sh(s) => Some(&**s),
            _ => None,
        })
        .expect("a ServerHello event")
}

/// Splits a stream of records into (content type, version, body).
fn records(data: &[u8]) -> Vec<(u8, u16, Vec<u8>)> {
    let mut out = Vec::new();
    let mut i = 0;
    while i + 5 <= data.len() {
        let len = u16::from_be_bytes([data[i + 3], data[i + 4]]) as usize;
        out.push((
            data[i],
            u16::from_be_bytes([data[i + 1], data[i + 2]]),
            data[i + 5..i + 5 + len].to_vec(),
        ));
        i += 5 + len;
    }
    assert_eq!(i, data.len(), "test vector is whole records");
    out
}

fn record(ty: u8, version: u16, body: &[u8]) -> Vec<u8> {
    let mut r = vec![ty];
    r.extend_from_slice(&version.to_be_bytes());
    r.extend_from_slice(&(body.len() as u16).to_be_bytes());
    r.extend_from_slice(body);
    r
}

/// Re-frames the stream: consecutive plaintext handshake records (those before
/// ChangeCipherSpec) are merged and cut again into records of at most `chunk` bytes; other
/// records stay as they are.
fn reframe(data: &[u8], chunk: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut hs: Vec<u8> = Vec::new();
    let mut hs_version = 0;
    let mut after_ccs = false;
    let flush = |out: &mut Vec<u8>, hs: &mut Vec<u8>, v: u16| {
        for c in hs.chunks(chunk) {
            out.extend(record(22, v, c));
        }
        hs.clear();
    };
    for (ty, v, body) in records(data) {
        after_ccs |= ty == 20;
        if ty == 22 && !after_ccs {
            if hs.is_empty() {
                hs_version = v;
            }
            hs.extend(body);
        } else {
            flush(&mut out, &mut hs, hs_version);
            out.extend(record(ty, v, &body));
        }
    }
    flush(&mut out, &mut hs, hs_version);
    out
}

fn handshake(msg_type: u8, body: &[u8]) -> Vec<u8> {
    let mut m = vec![msg_type];
    m.extend_from_slice(&(body.len() as u32).to_be_bytes()[1..]);
    m.extend_from_slice(body);
    m
}

/// Builds ClientHello bodies, correct by default, for the malformed variants.
#[derive(Clone)]
struct Ch {
    version: u16,
    sid: Vec<u8>,
    ciphers: Vec<u8>,
    comp: Vec<u8>,
    exts: Option<Vec<(u16, Vec<u8>)>>,
}

impl Ch {
    fn new() -> Ch {
        Ch {
            version: 0x0303,
            sid: vec![7; 32],
            ciphers: u16s(&[0x1301, 0xc02f, 0x002f]),
            comp: vec![0],
            exts: Some(vec![
                (0, sni_body(b"example.com")),
                (10, vec16(&u16s(&[29, 23]))),
                (11, vec![1, 0]),
                (13, vec16(&u16s(&[0x0403, 0x0804]))),
                (16, vec16(&[2, b'h', b'2'])),
                (43, vec8(&u16s(&[0x0304, 0x0303]))),
            ]),
        }
    }

    fn ext_block(&self) -> Vec<u8> {
        let mut b = Vec::new();
        for (t, d) in self.exts.iter().flatten() {
            b.extend_from_slice(&t.to_be_bytes());
            b.extend_from_slice(&(d.len() as u16).to_be_bytes());
            b.extend_from_slice(d);
        }
        b
    }

    fn body(&self) -> Vec<u8> {
        let mut b = self.version.to_be_bytes().to_vec();
        b.extend_from_slice(&[0x11; 32]);
        b.extend(vec8(&self.sid));
        b.extend(vec16(&self.ciphers));
        b.extend(vec8(&self.comp));
        if self.exts.is_some() {
            b.extend(vec16(&self.ext_block()));
        }
        b
    }

    fn record(&self) -> Vec<u8> {
        record(22, 0x0301, &handshake(1, &self.body()))
    }
}

fn u16s(v: &[u16]) -> Vec<u8> {
    v.iter().flat_map(|x| x.to_be_bytes()).collect()
}

fn vec8(b: &[u8]) -> Vec<u8> {
    let mut v = vec![b.len() as u8];
    v.extend_from_slice(b);
    v
}

fn vec16(b: &[u8]) -> Vec<u8> {
    let mut v = (b.len() as u16).to_be_bytes().to_vec();
    v.extend_from_slice(b);
    v
}

fn sni_body(name: &[u8]) -> Vec<u8> {
    let mut entry = vec![0];
    entry.extend(vec16(name));
    vec16(&entry)
}

fn server_hello_body(version: u16, cipher: u16, exts: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = version.to_be_bytes().to_vec();
    b.extend_from_slice(&[0x22; 32]);
    b.extend(vec8(&[5; 32]));
    b.extend_from_slice(&cipher.to_be_bytes());
    b.push(0);
    let mut e = Vec::new();
    for (t, d) in exts {
        e.extend_from_slice(&t.to_be_bytes());
        e.extend(vec16(d));
    }
    if !exts.is_empty() {
        b.extend(vec16(&e));
    }
    b
}

// ---------------------------------------------------------------- real handshakes

#[test]
fn curl_tls13_client_hello() {
    let data = bytes(testdata::CURL_TLS13_CLIENT);
    let evs = run(Dir::ToServer, &data);
    assert_eq!(anomalies(&evs), vec![]);
    let ch = client_hello(&evs);
    assert_eq!(ch.record_version, 0x0301);
    assert_eq!(ch.legacy_version, 0x0303);
    assert_eq!(ch.sni, "test.unmask.example");
    assert!(ch.has_sni);
    let alpn: Vec<&str> = ch.alpn.as_slice().iter().map(|a| a.as_str()).collect();
    assert_eq!(alpn, ["h2", "http/1.1"]);
    assert_eq!(
        ch.supported_versions.as_slice(),
        [0x0304, 0x0303, 0x0302, 0x0301]
    );
    assert_eq!(ch.max_offered_version(), 0x0304);
    assert!(ch.offers_tls13());
    assert_eq!(ch.ciphers.total(), 31);
    assert_eq!(
        ch.extensions.as_slice(),
        [0, 11, 10, 16, 22, 23, 49, 13, 43, 45, 51, 21]
    );
    assert_eq!(ch.point_formats.as_slice(), [0, 1, 2]);
    assert_eq!(ch.session_id_len, 32);
    assert!(!ch.grease_seen);
    // After the hello: the compatibility CCS, then protected records, all accepted.
    assert_eq!(evs.get(1), Some(&Ev::Ccs));
    assert!(evs[2..].iter().all(|e| matches!(e, Ev::App(_))));
    assert!(evs.len() > 2);
}

/// tls-parser, an independent parser, reads the same hello fields.
#[test]
fn client_hello_agrees_with_tls_parser() {
    use tls_parser::{parse_tls_extensions, parse_tls_plaintext, TlsMessage, TlsMessageHandshake};
    for vector in [
        testdata::CURL_TLS13_CLIENT,
        testdata::S_CLIENT_TLS12_CLIENT,
        testdata::PYTHON_TLS13_CLIENT,
    ] {
        let data = bytes(vector);
        let evs = run(Dir::ToServer, &data);
        let ours = client_hello(&evs);
        let (_, plain) = parse_tls_plaintext(&data).expect("tls-parser reads the record");
        let Some(TlsMessage::Handshake(TlsMessageHandshake::ClientHello(theirs))) =
            plain.msg.first()
        else {
            panic!("tls-parser sees a ClientHello");
        };
        assert_eq!(ours.legacy_version, theirs.version.0);
        let ciphers: Vec<u16> = theirs.ciphers.iter().map(|c| c.0).collect();
        assert_eq!(ours.ciphers.as_slice(), &ciphers[..]);
        let (_, exts) = parse_tls_extensions(theirs.ext.unwrap_or(&[])).expect("extensions");
        let types: Vec<u16> = exts
            .iter()
            .map(|e| u16::from(tls_parser::TlsExtensionType::from(e)))
            .collect();
        assert_eq!(ours.extensions.as_slice(), &types[..]);
    }
}

#[test]
fn curl_tls13_server_flight() {
    let data = bytes(testdata::CURL_TLS13_SERVER);
    let evs = run(Dir::ToClient, &data);
    assert_eq!(anomalies(&evs), vec![]);
    let sh = server_hello(&evs);
    assert_eq!(sh.legacy_version, 0x0303);
    assert_eq!(sh.selected_version, Some(0x0304));
    assert_eq!(sh.negotiated_version(), 0x0304);
    assert_eq!(sh.cipher, 0x1302);
    assert_eq!(sh.extensions.as_slice(), [43, 51]);
    assert!(!sh.is_hello_retry);
    assert_eq!(evs.get(1), Some(&Ev::Ccs));
    assert!(evs[2..].iter().all(|e| matches!(e, Ev::App(_))));
}

#[test]
fn tls12_full_handshake_server_side() {
    let data = bytes(testdata::S_CLIENT_TLS12_SERVER);
    let evs = run(Dir::ToClient, &data);
    assert_eq!(anomalies(&evs), vec![]);
    let sh = server_hello(&evs);
    assert_eq!(sh.negotiated_version(), 0x0303);
    assert_eq!(sh.selected_version, None);
    assert_eq!(sh.cipher, 0xc030);
    assert_eq!(sh.extensions.as_slice(), [0xff01, 11, 35, 23]);
    let kinds: Vec<String> = evs
        .iter()
        .map(|e| match e {
            Ev::Sh(_) => "SH".into(),
            Ev::Cert(i, _) => format!("Cert{i}"),
            Ev::Hs(t, _) => format!("Hs{t}"),
            Ev::Done => "Done".into(),
            Ev::Ccs => "CCS".into(),
            Ev::EncHs(_) => "EncHs".into(),
            Ev::App(_) => "App".into(),
            Ev::EncAlert(_) => "EncAlert".into(),
            other => format!("{other:?}"),
        })
        .collect();
    let head: Vec<&str> = kinds.iter().take(7).map(|s| s.as_str()).collect();
    assert_eq!(head, ["SH", "Cert0", "Hs12", "Done", "Hs4", "CCS", "EncHs"]);
    assert!(kinds[7..].iter().all(|k| k == "App" || k == "EncAlert"));
    let leaf = evs
        .iter()
        .find_map(|e| match e {
            Ev::Cert(0, der) => Some(der.clone()),
            _ => None,
        })
        .unwrap();
    let info = crate::proto::x509::CertInfo::from_der(&leaf).unwrap();
    assert_eq!(info.subject, "CN=rsa.unmask.example");
}

#[test]
fn tls12_full_handshake_client_side() {
    let data = bytes(testdata::S_CLIENT_TLS12_CLIENT);
    let evs = run(Dir::ToServer, &data);
    assert_eq!(anomalies(&evs), vec![]);
    let ch = client_hello(&evs);
    assert_eq!(ch.sni, "rsa.unmask.example");
    assert!(!ch.offers_tls13());
    assert_eq!(ch.alpn.total(), 0);
    assert!(
        matches!(evs[1], Ev::Hs(16, _)),
        "ClientKeyExchange: {:?}",
        evs[1]
    );
    assert_eq!(evs[2], Ev::Ccs);
    assert!(matches!(evs[3], Ev::EncHs(_)));
    assert!(evs[4..]
        .iter()
        .all(|e| matches!(e, Ev::App(_) | Ev::EncAlert(_))));
    assert!(
        evs[4..].iter().any(|e| matches!(e, Ev::EncAlert(_))),
        "close_notify"
    );
}

#[test]
fn python_client_hello() {
    let evs = run(Dir::ToServer, &bytes(testdata::PYTHON_TLS13_CLIENT));
    assert_eq!(anomalies(&evs), vec![]);
    let ch = client_hello(&evs);
    assert_eq!(ch.sni, "py.unmask.example");
    assert_eq!(ch.alpn.as_slice()[0], "http/1.1");
    assert_eq!(ch.alpn_first_edges, [b'h', b'1']);
    assert_eq!(ch.alpn_first_len, 8);
}

// ---------------------------------------------------------------- resumption and reassembly

fn all_vectors() -> Vec<(Dir, Vec<u8>)> {
    vec![
        (Dir::ToServer, bytes(testdata::CURL_TLS13_CLIENT)),
        (Dir::ToClient, bytes(testdata::CURL_TLS13_SERVER)),
        (Dir::ToServer, bytes(testdata::S_CLIENT_TLS12_CLIENT)),
        (Dir::ToClient, bytes(testdata::S_CLIENT_TLS12_SERVER)),
        (Dir::ToServer, bytes(testdata::PYTHON_TLS13_CLIENT)),
    ]
}

#[test]
fn growing_prefix_one_byte_at_a_time_gives_each_event_once() {
    for (role, data) in all_vectors() {
        let whole = run(role, &data);
        let mut st = TlsDir::new(role);
        let mut scratch = TlsScratch::default();
        let mut evs = Vec::new();
        for end in 0..=data.len() {
            st.feed(&data[..end], &mut scratch, |e| evs.push(own(e)));
        }
        // Feeding the complete prefix again adds nothing.
        st.feed(&data, &mut scratch, |e| evs.push(own(e)));
        assert_eq!(evs, whole);
        assert_eq!(st.consumed(), data.len());
    }
}

#[test]
fn handshake_reframed_into_small_records_parses_the_same() {
    for (role, data) in all_vectors() {
        let whole = run(role, &data);
        for chunk in [1, 2, 3, 4, 5, 7, 64, 100, 333] {
            let framed = reframe(&data, chunk);
            let evs = run(role, &framed);
            assert_eq!(evs, whole, "chunk {chunk}");
            // And byte by byte over the re-framed stream.
            let mut st = TlsDir::new(role);
            let mut scratch = TlsScratch::default();
            let mut grown = Vec::new();
            for end in (0..=framed.len()).step_by(3).chain([framed.len()]) {
                st.feed(&framed[..end], &mut scratch, |e| grown.push(own(e)));
            }
            assert_eq!(grown, whole, "chunk {chunk}, grown");
        }
    }
}

#[test]
fn several_messages_in_one_record() {
    let data = bytes(testdata::S_CLIENT_TLS12_SERVER);
    // Merge the whole plaintext handshake flight into a single record.
    let merged = reframe(&data, 16384);
    assert!(records(&merged).len() < records(&data).len() || records(&data)[0].2.len() > 1000);
    assert_eq!(run(Dir::ToClient, &merged), run(Dir::ToClient, &data));
}

#[test]
fn message_larger_than_scratch_is_skipped_and_parsing_goes_on() {
    let data = reframe(&bytes(testdata::S_CLIENT_TLS12_SERVER), 200);
    let (evs, st) = run_with(Dir::ToClient, &data, 300);
    assert_eq!(anomalies(&evs), vec![TlsAnomaly::HandshakeTooLarge]);
    assert!(!evs.iter().any(|e| matches!(e, Ev::Cert(..))));
    // The ServerHello fits, the certificate does not, the messages after it are read.
    assert!(evs.iter().any(|e| matches!(e, Ev::Sh(_))));
    assert!(evs.contains(&Ev::Done));
    assert!(evs.contains(&Ev::Ccs));
    assert!(!st.stopped());
}

#[test]
fn shorter_prefix_than_before_is_ignored() {
    let data = bytes(testdata::CURL_TLS13_CLIENT);
    let mut st = TlsDir::new(Dir::ToServer);
    let mut scratch = TlsScratch::default();
    let mut n = 0;
    st.feed(&data, &mut scratch, |_| n += 1);
    let before = n;
    st.feed(&data[..10], &mut scratch, |_| n += 1);
    assert_eq!(n, before);
    assert_eq!(st.consumed(), data.len());
}

#[test]
fn starting_at_an_offset_skips_a_cleartext_prelude() {
    let mut data = b"220 mail ESMTP ready\r\n".to_vec();
    let at = data.len();
    data.extend(bytes(testdata::S_CLIENT_TLS12_CLIENT));
    assert_eq!(find_hello(&data), Some(at));
    let mut st = TlsDir::starting_at(Dir::ToServer, at);
    let mut scratch = TlsScratch::default();
    let mut evs = Vec::new();
    st.feed(&data, &mut scratch, |e| evs.push(own(e)));
    assert_eq!(evs, run(Dir::ToServer, &data[at..]));
    assert_eq!(find_hello(b"EHLO x\r\nSTARTTLS\r\n"), None);
}

#[test]
fn searching_a_growing_prefix_finds_what_a_full_search_finds() {
    let mut data = b"220 mail ESMTP ready\r\n250 STARTTLS\r\n".to_vec();
    let at = data.len();
    data.extend(bytes(testdata::S_CLIENT_TLS12_CLIENT));
    // Every way of growing the prefix in steps, including steps that cut the record header.
    for step in 1..=16 {
        let mut scanned = 0;
        let mut found = None;
        let mut len = 0;
        while len < data.len() && found.is_none() {
            len = (len + step).min(data.len());
            found = find_hello_after(&data[..len], scanned);
            assert_eq!(found, find_hello(&data[..len]), "step {step}, prefix {len}");
            scanned = len;
        }
        assert_eq!(found, Some(at), "step {step}");
    }
    // A `scanned` beyond the data (never the case) searches nothing rather than panicking.
    assert_eq!(find_hello_after(&data[..10], 50), None);
}

// ---------------------------------------------------------------- anomalies

fn client_anomalies(data: &[u8]) -> Vec<TlsAnomaly> {
    anomalies(&run(Dir::ToServer, data))
}

#[test]
fn well_formed_builder_hello_has_no_anomaly() {
    let evs = run(Dir::ToServer, &Ch::new().record());
    assert_eq!(anomalies(&evs), vec![]);
    let ch = client_hello(&evs);
    assert_eq!(ch.sni, "example.com");
    assert_eq!(ch.sig_algs.as_slice(), [0x0403, 0x0804]);
}

#[test]
fn not_tls_at_all() {
    let (evs, st) = run_with(Dir::ToServer, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 64);
    assert_eq!(evs, vec![Ev::Anomaly(TlsAnomaly::NotTls)]);
    assert!(st.stopped());
    // Decided on the first byte; nothing more is said later.
    let mut st = TlsDir::new(Dir::ToClient);
    let mut scratch = TlsScratch::new(64);
    let mut n = 0;
    st.feed(b"S", &mut scratch, |_| n += 1);
    st.feed(b"SSH-2.0-OpenSSH_9.6\r\n", &mut scratch, |_| n += 1);
    assert_eq!(n, 1);
    // A record type byte with a non-3 major version is not TLS either.
    assert_eq!(
        client_anomalies(&[22, 2, 0, 0, 4]),
        vec![TlsAnomaly::NotTls]
    );
    // Too few bytes to tell: no verdict yet.
    assert_eq!(client_anomalies(&[22]), vec![]);
    assert_eq!(client_anomalies(&[]), vec![]);
}

fn sslv2_hello() -> Vec<u8> {
    // RFC 6101 appendix E.1 layout: type 1, version 3.1, then cipher specs (3 bytes each),
    // session id and challenge.
    let specs: &[u8] = &[
        0x00, 0x00, 0x04, 0x01, 0x00, 0x80, 0x00, 0x00, 0x0a, 0x00, 0x00, 0xff,
    ];
    let challenge = [0xab; 16];
    let mut msg = vec![1, 3, 1];
    msg.extend_from_slice(&(specs.len() as u16).to_be_bytes());
    msg.extend_from_slice(&0u16.to_be_bytes());
    msg.extend_from_slice(&(challenge.len() as u16).to_be_bytes());
    msg.extend_from_slice(specs);
    msg.extend_from_slice(&challenge);
    let mut out = vec![0x80 | (msg.len() >> 8) as u8, msg.len() as u8];
    out.extend(msg);
    out
}

#[test]
fn sslv2_format_client_hello_is_recognised() {
    let mut data = sslv2_hello();
    // The client continues in TLS records once the server answered in TLS.
    data.extend(record(22, 0x0301, &handshake(16, &[0; 6])));
    let evs = run(Dir::ToServer, &data);
    assert_eq!(anomalies(&evs), vec![TlsAnomaly::Sslv2ClientHello]);
    let ch = client_hello(&evs);
    assert!(ch.sslv2_format);
    assert_eq!(ch.record_version, 0x0002);
    assert_eq!(ch.legacy_version, 0x0301);
    assert_eq!(ch.ciphers.as_slice(), [0x0004, 0x000a, 0x00ff]);
    assert_eq!(ch.sslv2_only_specs, 1);
    assert_eq!(&ch.random[16..], &[0xab; 16]);
    assert_eq!(evs.last(), Some(&Ev::Hs(16, 6)));
    assert_eq!(probe(&data), Probe::Match(AppProto::Tls, 80));
    // Byte by byte gives the same.
    let mut st = TlsDir::new(Dir::ToServer);
    let mut scratch = TlsScratch::default();
    let mut grown = Vec::new();
    for end in 0..=data.len() {
        st.feed(&data[..end], &mut scratch, |e| grown.push(own(e)));
    }
    assert_eq!(grown, evs);
}

#[test]
fn record_layer_anomalies() {
    let hello = Ch::new().record();
    let with = |tail: &[u8]| {
        let mut d = hello.clone();
        d.extend_from_slice(tail);
        d
    };
    assert_eq!(
        client_anomalies(&with(&[0x42, 3, 3, 0, 1, 0])),
        vec![TlsAnomaly::InvalidContentType]
    );
    let (_, st) = run_with(Dir::ToServer, &with(&[0x42]), 64);
    assert!(st.stopped(), "decided on the content type byte alone");
    assert_eq!(
        client_anomalies(&with(&[22, 3, 3, 0x48, 0x01])),
        vec![TlsAnomaly::RecordTooLong]
    );
    assert_eq!(
        client_anomalies(&with(&[22, 3, 3, 0x48, 0x00])),
        vec![],
        "2^14+2048 waits"
    );
    assert_eq!(
        client_anomalies(&with(&record(21, 0x0309, &[1, 0]))),
        vec![TlsAnomaly::RecordVersionInvalid]
    );
    assert_eq!(
        client_anomalies(&with(&record(21, 0x0304, &[1, 0]))),
        vec![TlsAnomaly::RecordVersionOdd]
    );
    assert_eq!(
        client_anomalies(&with(&record(22, 0x0303, &[]))),
        vec![TlsAnomaly::EmptyRecord]
    );
    assert_eq!(
        client_anomalies(&with(&record(20, 0x0303, &[2]))),
        vec![TlsAnomaly::CcsInvalid]
    );
    assert_eq!(
        client_anomalies(&with(&record(21, 0x0303, &[2]))),
        vec![TlsAnomaly::AlertInvalid]
    );
    assert_eq!(
        client_anomalies(&with(&record(21, 0x0303, &[7, 0]))),
        vec![TlsAnomaly::AlertInvalid]
    );
    let evs = run(Dir::ToServer, &with(&record(21, 0x0303, &[2, 40])));
    assert_eq!(evs.last(), Some(&Ev::Alert(2, 40)));
    assert_eq!(anomalies(&evs), vec![]);
}

#[test]
fn bytes_after_ccs_that_break_framing() {
    let mut data = bytes(testdata::S_CLIENT_TLS12_CLIENT);
    data.extend_from_slice(b"\x00garbage");
    assert_eq!(
        client_anomalies(&data),
        vec![TlsAnomaly::FramingBrokenAfterCcs]
    );
}

#[test]
fn application_data_ordering() {
    // TLS 1.2-only client: data before its CCS is premature.
    let mut tls12 = Ch::new();
    tls12.exts = Some(vec![(0, sni_body(b"a.example"))]);
    let mut d = tls12.record();
    d.extend(record(23, 0x0303, &[1, 2, 3]));
    assert_eq!(
        client_anomalies(&d),
        vec![TlsAnomaly::AppDataBeforeHandshake]
    );
    // After its CCS it is fine.
    let mut d = tls12.record();
    d.extend(record(20, 0x0303, &[1]));
    d.extend(record(22, 0x0303, &[0x55; 40]));
    d.extend(record(23, 0x0303, &[1, 2, 3]));
    let evs = run(Dir::ToServer, &d);
    assert_eq!(anomalies(&evs), vec![]);
    assert_eq!(evs[2], Ev::EncHs(40));
    // A TLS 1.3 client may send protected records right after its hello.
    let mut d = Ch::new().record();
    d.extend(record(23, 0x0303, &[1, 2, 3]));
    assert_eq!(client_anomalies(&d), vec![]);
    // Server: data before its ServerHello.
    let d = [
        record(22, 0x0303, &handshake(14, &[])),
        record(23, 0x0303, &[9; 20]),
    ]
    .concat();
    let evs = run(Dir::ToClient, &d);
    assert!(anomalies(&evs).contains(&TlsAnomaly::AppDataBeforeHandshake));
}

#[test]
fn stream_picked_up_mid_session() {
    let d = [record(23, 0x0303, &[9; 30]), record(21, 0x0303, &[7; 26])].concat();
    let evs = run(Dir::ToServer, &d);
    assert_eq!(
        evs,
        vec![
            Ev::Anomaly(TlsAnomaly::StartsWithoutHandshake),
            Ev::App(30),
            Ev::EncAlert(26)
        ]
    );
}

#[test]
fn tls13_client_after_compat_ccs() {
    // A TLS 1.3 client whose server picked TLS 1.2: its Finished after CCS is protected.
    let mut d = Ch::new().record();
    d.extend(record(20, 0x0303, &[1]));
    d.extend(record(22, 0x0303, &[0x8c; 40]));
    let evs = run(Dir::ToServer, &d);
    assert_eq!(evs[2], Ev::EncHs(40));
    assert_eq!(anomalies(&evs), vec![]);
    // After HelloRetryRequest: CCS, then a second plaintext ClientHello.
    let mut d = Ch::new().record();
    d.extend(record(20, 0x0303, &[1]));
    d.extend(Ch::new().record());
    let evs = run(Dir::ToServer, &d);
    assert_eq!(evs.iter().filter(|e| matches!(e, Ev::Ch(_))).count(), 2);
    assert_eq!(anomalies(&evs), vec![]);
}

#[test]
fn handshake_interleaved_with_another_record() {
    let msg = handshake(1, &Ch::new().body());
    let (a, b) = msg.split_at(30);
    let d = [
        record(22, 0x0301, a),
        record(21, 0x0301, &[1, 0]),
        record(22, 0x0301, b),
    ]
    .concat();
    let a = client_anomalies(&d);
    assert!(a.contains(&TlsAnomaly::HandshakeInterleaved), "{a:?}");
}

#[test]
fn handshake_message_anomalies() {
    assert_eq!(
        client_anomalies(&record(22, 0x0303, &handshake(99, &[1, 2]))),
        vec![TlsAnomaly::HandshakeTypeUnknown]
    );
    let evs = run(Dir::ToClient, &record(22, 0x0303, &handshake(14, &[0])));
    assert_eq!(
        anomalies(&evs),
        vec![TlsAnomaly::HandshakeBodyInvalid { msg_type: 14 }]
    );
    // A 16 MiB message claim is refused at once, not buffered.
    let d = record(22, 0x0303, &[11, 0xff, 0xff, 0xff, 0, 0, 0]);
    let (evs, st) = run_with(Dir::ToClient, &d, 1024);
    assert_eq!(anomalies(&evs), vec![TlsAnomaly::HandshakeTooLarge]);
    assert!(!st.stopped());
}

#[test]
fn hellos_in_the_wrong_direction() {
    assert_eq!(
        anomalies(&run(Dir::ToClient, &Ch::new().record())),
        vec![TlsAnomaly::ClientHelloFromServer]
    );
    let sh = record(
        22,
        0x0303,
        &handshake(2, &server_hello_body(0x0303, 0xc02f, &[])),
    );
    assert_eq!(
        anomalies(&run(Dir::ToServer, &sh)),
        vec![TlsAnomaly::ServerHelloFromClient]
    );
    assert_eq!(anomalies(&run(Dir::ToClient, &sh)), vec![]);
    let mut v2 = sslv2_hello();
    v2.truncate(v2.len());
    assert!(anomalies(&run(Dir::ToClient, &v2)).contains(&TlsAnomaly::ClientHelloFromServer));
}

fn ch_anomalies(ch: &Ch) -> Vec<TlsAnomaly> {
    client_anomalies(&ch.record())
}

fn ch_body_anomalies(body: &[u8]) -> Vec<TlsAnomaly> {
    client_anomalies(&record(22, 0x0301, &handshake(1, body)))
}

#[test]
fn client_hello_structure_anomalies() {
    // Cut inside the cipher list: the message length matches the record, the body does not.
    let body = Ch::new().body();
    assert_eq!(
        ch_body_anomalies(&body[..40]),
        vec![TlsAnomaly::HelloTruncated]
    );
    assert_eq!(
        ch_body_anomalies(&body[..10]),
        vec![TlsAnomaly::HelloTruncated]
    );
    let mut trailing = body.clone();
    trailing.extend_from_slice(&[0, 0, 0]);
    assert_eq!(
        ch_body_anomalies(&trailing),
        vec![TlsAnomaly::HelloTrailingBytes]
    );

    let mut c = Ch::new();
    c.ciphers.clear();
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::CipherListEmpty]);
    let mut c = Ch::new();
    c.ciphers.push(0x13);
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::CipherListOddLength]);
    let mut c = Ch::new();
    c.comp.clear();
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::CompressionListEmpty]);
    let mut c = Ch::new();
    c.sid = vec![1; 33];
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::SessionIdTooLong]);
    let mut c = Ch::new();
    c.exts = Some(vec![]);
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::ExtensionsEmpty]);
    // No extensions block at all is legal (SSL 3.0-era hellos).
    let mut c = Ch::new();
    c.exts = None;
    assert_eq!(ch_anomalies(&c), vec![]);
}

#[test]
fn client_hello_version_anomalies() {
    for bad in [0x0000, 0x0200, 0xfefd, 0x0400, 0x0305] {
        let mut c = Ch::new();
        c.version = bad;
        assert_eq!(
            ch_anomalies(&c),
            vec![TlsAnomaly::HelloVersionInvalid],
            "{bad:#06x}"
        );
    }
    let mut c = Ch::new();
    c.version = 0x0304;
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::HelloVersionOdd]);
    // Record claims TLS 1.2, the hello only TLS 1.0.
    let mut c = Ch::new();
    c.version = 0x0301;
    let d = record(22, 0x0303, &handshake(1, &c.body()));
    assert_eq!(
        client_anomalies(&d),
        vec![TlsAnomaly::RecordHelloVersionMismatch]
    );
    // The usual record 1.0 / hello 1.2 is fine.
    assert_eq!(ch_anomalies(&Ch::new()), vec![]);
    let mut c = Ch::new();
    c.exts = Some(vec![(43, vec8(&u16s(&[0xfb1a, 0x0304])))]);
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::SupportedVersionUnknown]);
    // GREASE and TLS 1.3 drafts are not unknown.
    let mut c = Ch::new();
    c.exts = Some(vec![(43, vec8(&u16s(&[0x3a3a, 0x7f17, 0x0304])))]);
    assert_eq!(ch_anomalies(&c), vec![]);
}

#[test]
fn extension_anomalies() {
    let mut c = Ch::new();
    c.exts.as_mut().unwrap().push((10, vec16(&u16s(&[29]))));
    assert_eq!(ch_anomalies(&c), vec![TlsAnomaly::ExtensionDuplicate]);
    // Two GREASE extensions are legal.
    let mut c = Ch::new();
    c.exts.as_mut().unwrap().insert(0, (0x0a0a, vec![]));
    c.exts.as_mut().unwrap().push((0x1a1a, vec![0]));
    assert_eq!(ch_anomalies(&c), vec![]);

    // An extension whose length runs past the block.
    let c = Ch::new();
    let mut body = c.body();
    let block_start = body.len() - c.ext_block().len();
    // First extension is SNI: bump its length by 100.
    let len_at = block_start + 2;
    let l = u16::from_be_bytes([body[len_at], body[len_at + 1]]) + 100;
    body[len_at..len_at + 2].copy_from_slice(&l.to_be_bytes());
    assert_eq!(
        ch_body_anomalies(&body),
        vec![TlsAnomaly::ExtensionsLengthMismatch]
    );
    // The block length itself claims more than the message holds.
    let mut body = c.body();
    let at = block_start - 2;
    let l = u16::from_be_bytes([body[at], body[at + 1]]) + 9;
    body[at..at + 2].copy_from_slice(&l.to_be_bytes());
    let a = ch_body_anomalies(&body);
    assert!(a.contains(&TlsAnomaly::ExtensionsLengthMismatch), "{a:?}");
    // Half an extension header at the end of the block.
    let mut c = Ch::new();
    c.exts = Some(vec![]);
    let mut body = c.body();
    let n = body.len();
    body[n - 2..].copy_from_slice(&3u16.to_be_bytes());
    body.extend_from_slice(&[0, 5, 0]);
    assert_eq!(
        ch_body_anomalies(&body),
        vec![TlsAnomaly::ExtensionsLengthMismatch]
    );

    let cases: Vec<(u16, Vec<u8>)> = vec![
        (0, vec![0, 9, 0, 0, 3, b'a']), // SNI list longer than its body
        (0, vec![]),                    // SNI empty in a ClientHello
        (0, sni_body(b"")),             // empty host name
        (10, vec16(&[0, 29, 0])),       // groups odd length
        (11, vec![0]),                  // no point formats
        (13, vec16(&[])),               // no signature algorithms
        (16, vec16(&[0])),              // empty ALPN protocol
        (16, vec16(&[5, b'h'])),        // ALPN entry past the list
        (43, vec![3, 3, 4, 3]),         // versions odd length
        (43, vec![]),                   // versions missing
    ];
    for (ty, body) in cases {
        let mut c = Ch::new();
        c.exts.as_mut().unwrap().retain(|(t, _)| *t != ty);
        c.exts.as_mut().unwrap().push((ty, body.clone()));
        assert_eq!(
            ch_anomalies(&c),
            vec![TlsAnomaly::ExtensionBodyInvalid { ext: ty }],
            "ext {ty} body {body:?}"
        );
    }
}

#[test]
fn extensions_length_cut_short() {
    // One byte where the two-byte extensions length should be.
    let mut c = Ch::new();
    c.exts = None;
    let mut body = c.body();
    body.push(0);
    let evs = run(Dir::ToServer, &record(22, 0x0301, &handshake(1, &body)));
    assert_eq!(anomalies(&evs), vec![TlsAnomaly::ExtensionsLengthMismatch]);
    assert!(client_hello(&evs).extensions_length_cut);
}

#[test]
fn server_hello_anomalies() {
    let sh = |v, c, e: &[(u16, Vec<u8>)]| {
        anomalies(&run(
            Dir::ToClient,
            &record(22, 0x0303, &handshake(2, &server_hello_body(v, c, e))),
        ))
    };
    assert_eq!(sh(0x0303, 0x1301, &[(43, vec![3, 4])]), vec![]);
    assert_eq!(
        sh(0x0303, 0x1301, &[(43, vec![3, 3])]),
        vec![TlsAnomaly::ServerVersionInconsistent]
    );
    // (The record, at 1.2, also claims more than the hello's 1.0.)
    assert_eq!(
        sh(0x0301, 0x1301, &[(43, vec![3, 4])]),
        vec![
            TlsAnomaly::ServerVersionInconsistent,
            TlsAnomaly::RecordHelloVersionMismatch
        ]
    );
    assert_eq!(
        sh(0x0303, 0x1301, &[(43, vec![3, 4, 0])]),
        vec![TlsAnomaly::ExtensionBodyInvalid { ext: 43 }]
    );
    assert_eq!(sh(0x0303, 0x2a2a, &[]), vec![TlsAnomaly::ServerChoseGrease]);
    assert_eq!(
        sh(0x0303, 0xc02f, &[(0x4a4a, vec![])]),
        vec![TlsAnomaly::ServerChoseGrease]
    );
    assert_eq!(sh(0x0303, 0xc02f, &[(16, vec16(&vec8(b"h2")))]), vec![]);
    assert_eq!(
        sh(0x0303, 0xc02f, &[(16, vec16(&[]))]),
        vec![TlsAnomaly::ExtensionBodyInvalid { ext: 16 }]
    );
    assert_eq!(
        sh(0x0303, 0xc02f, &[(0, vec![0, 0])]),
        vec![TlsAnomaly::ExtensionBodyInvalid { ext: 0 }]
    );
    // Record version above the hello's.
    let d = record(
        22,
        0x0303,
        &handshake(2, &server_hello_body(0x0301, 0x002f, &[])),
    );
    assert_eq!(
        anomalies(&run(Dir::ToClient, &d)),
        vec![TlsAnomaly::RecordHelloVersionMismatch]
    );
    let body = server_hello_body(0x0303, 0x002f, &[]);
    let d = record(22, 0x0303, &handshake(2, &body[..36]));
    assert_eq!(
        anomalies(&run(Dir::ToClient, &d)),
        vec![TlsAnomaly::HelloTruncated]
    );
}

#[test]
fn hello_retry_request_is_recognised() {
    let mut body = server_hello_body(0x0303, 0x1301, &[(43, vec![3, 4])]);
    body[2..34].copy_from_slice(&[
        0xcf, 0x21, 0xad, 0x74, 0xe5, 0x9a, 0x61, 0x11, 0xbe, 0x1d, 0x8c, 0x02, 0x1e, 0x65, 0xb8,
        0x91, 0xc2, 0xa2, 0x11, 0x16, 0x7a, 0xbb, 0x8c, 0x5e, 0x07, 0x9e, 0x09, 0xe2, 0xc8, 0xa8,
        0x33, 0x9c,
    ]);
    let evs = run(Dir::ToClient, &record(22, 0x0303, &handshake(2, &body)));
    assert!(server_hello(&evs).is_hello_retry);
}

#[test]
fn certificate_list_anomalies() {
    let cert = |der: &[u8]| {
        let mut c = (der.len() as u32).to_be_bytes()[1..].to_vec();
        c.extend_from_slice(der);
        c
    };
    let list = |items: &[u8], claimed: usize| {
        let mut b = (claimed as u32).to_be_bytes()[1..].to_vec();
        b.extend_from_slice(items);
        record(22, 0x0303, &handshake(11, &b))
    };
    let two = [cert(&[0x30, 1, 2]), cert(&[0x30, 3, 4, 5])].concat();
    let evs = run(Dir::ToClient, &list(&two, two.len()));
    assert_eq!(
        evs,
        vec![
            Ev::Cert(0, vec![0x30, 1, 2]),
            Ev::Cert(1, vec![0x30, 3, 4, 5])
        ]
    );
    assert_eq!(
        anomalies(&run(Dir::ToClient, &list(&two, two.len() + 1))),
        vec![TlsAnomaly::CertificateListInvalid]
    );
    let mut overrun = cert(&[0x30, 1, 2]);
    overrun[2] = 9;
    assert_eq!(
        anomalies(&run(Dir::ToClient, &list(&overrun, overrun.len()))),
        vec![TlsAnomaly::CertificateListInvalid]
    );
    let empty = cert(&[]);
    assert_eq!(
        anomalies(&run(Dir::ToClient, &list(&empty, empty.len()))),
        vec![TlsAnomaly::CertificateListInvalid]
    );
}

#[test]
fn each_anomaly_kind_is_reported_once_per_direction() {
    let mut d = Vec::new();
    for _ in 0..3 {
        d.extend(record(22, 0x0303, &handshake(99, &[])));
    }
    let (evs, st) = run_with(Dir::ToServer, &d, 64);
    assert_eq!(anomalies(&evs), vec![TlsAnomaly::HandshakeTypeUnknown]);
    assert!(st.anomalies().contains(TlsAnomaly::HandshakeTypeUnknown));
    assert_eq!(st.anomalies().len(), 1);
}

#[test]
fn anomaly_names_are_distinct_and_indexed() {
    let mut names: Vec<&str> = TlsAnomaly::NAMES.to_vec();
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), TlsAnomaly::KINDS);
    assert_eq!(TlsAnomaly::NotTls.name(), "not_tls");
    assert_eq!(
        TlsAnomaly::ExtensionBodyInvalid { ext: 5 }.name(),
        "extension_body_invalid"
    );
    assert_eq!(
        TlsAnomaly::StartsWithoutHandshake.name(),
        "starts_without_handshake"
    );
    let mut set = AnomalySet::default();
    assert!(set.insert(TlsAnomaly::RecordTooLong));
    assert!(!set.insert(TlsAnomaly::RecordTooLong));
    assert_eq!(set.names().collect::<Vec<_>>(), ["record_too_long"]);
}

// ---------------------------------------------------------------- probe and summary

#[test]
fn probe_answers() {
    let ch = Ch::new().record();
    assert_eq!(probe(&ch), Probe::Match(AppProto::Tls, 100));
    assert_eq!(probe(&ch[..5]), Probe::NeedMore);
    assert_eq!(probe(&ch[..2]), Probe::NeedMore);
    assert_eq!(
        probe(&record(23, 0x0303, &[1])),
        Probe::Match(AppProto::Tls, 50)
    );
    assert_eq!(probe(b"GET / HTTP/1.1\r\n"), Probe::NoMatch);
    assert_eq!(probe(&[22, 3, 9]), Probe::NoMatch);
    assert_eq!(probe(&[22, 3, 3, 0xff, 0xff]), Probe::NoMatch);
    assert_eq!(probe(&[0x80]), Probe::NeedMore);
    assert_eq!(probe(&[0x80, 0x2e, 2, 3]), Probe::NoMatch);
    assert_eq!(probe(&[]), Probe::NeedMore);
}

#[test]
fn summary_folds_both_directions() {
    let mut sum = TlsSummary::default();
    let mut scratch = TlsScratch::default();
    for (role, vector) in [
        (Dir::ToServer, testdata::S_CLIENT_TLS12_CLIENT),
        (Dir::ToClient, testdata::S_CLIENT_TLS12_SERVER),
    ] {
        let mut st = TlsDir::new(role);
        st.feed(&bytes(vector), &mut scratch, |e| sum.observe(role, &e));
    }
    assert!(sum.client_hello_seen && sum.server_hello_seen);
    assert_eq!(sum.sni, "rsa.unmask.example");
    assert_eq!(sum.negotiated_version, 0x0303);
    assert_eq!(sum.client_max_version, 0x0303);
    assert_eq!(sum.cipher, 0xc030);
    assert_eq!(sum.certificates, 1);
    assert!(sum.leaf_sha1.is_some());
    assert!(sum.ccs_client && sum.ccs_server);
    // s_client quit at once: no data either way, only close_notify.
    assert_eq!((sum.app_data_client, sum.app_data_server), (0, 0));
    // tshark 4.0.17 on the same capture.
    assert_eq!(sum.ja3.unwrap(), "871a754af286dfb70c1b53c6887c62e0");
    assert_eq!(sum.ja3s.unwrap(), "ec74a5c51106f0419184d0dd08fb05bc");
    assert!(sum.anomalies_client.is_empty() && sum.anomalies_server.is_empty());
    assert!(!sum.fatal_alert);
}

#[test]
fn summary_of_a_tls13_flow() {
    let mut sum = TlsSummary::default();
    let mut scratch = TlsScratch::default();
    for (role, vector) in [
        (Dir::ToServer, testdata::CURL_TLS13_CLIENT),
        (Dir::ToClient, testdata::CURL_TLS13_SERVER),
    ] {
        let mut st = TlsDir::new(role);
        st.feed(&bytes(vector), &mut scratch, |e| sum.observe(role, &e));
    }
    assert_eq!(sum.negotiated_version, 0x0304);
    assert_eq!(sum.client_max_version, 0x0304);
    assert_eq!(sum.alpn_offered.unwrap(), "h2");
    // The selected ALPN travels in the protected EncryptedExtensions.
    assert_eq!(sum.alpn_selected, None);
    assert_eq!(sum.certificates, 0);
    assert!(sum.app_data_client > 0 && sum.app_data_server > 0);
    assert_eq!(sum.ja3.unwrap(), "0149f47eabf9a20d0893e2a44e5a6323");
    assert_eq!(sum.ja4.unwrap(), "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6");
}

#[test]
fn summary_ignores_hellos_from_the_wrong_side() {
    let mut sum = TlsSummary::default();
    let mut scratch = TlsScratch::default();
    let mut st = TlsDir::new(Dir::ToClient);
    st.feed(&Ch::new().record(), &mut scratch, |e| {
        sum.observe(Dir::ToClient, &e)
    });
    assert_eq!(sum.client_hellos, 1);
    assert!(!sum.client_hello_seen);
    assert!(sum.sni.is_empty() && sum.ja3.is_none());
    assert!(sum
        .anomalies_server
        .contains(TlsAnomaly::ClientHelloFromServer));
}

// ---------------------------------------------------------------- robustness

/// xorshift64*: a fixed-seed generator so failures reproduce.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}

fn feed_in_random_steps(rng: &mut Rng, role: Dir, data: &[u8], scratch: &mut TlsScratch) {
    let mut st = TlsDir::new(role);
    let mut end = 0;
    let mut events = 0usize;
    let mut sum = TlsSummary::default();
    while end < data.len() {
        end = (end + 1 + rng.below(64)).min(data.len());
        st.feed(&data[..end], scratch, |e| {
            events += 1;
            sum.observe(role, &e);
            if let TlsEvent::ClientHello(ch) = e {
                let _ = crate::proto::fingerprint::ja3(ch);
                let _ = crate::proto::fingerprint::ja4(ch);
                let _ = crate::proto::fingerprint::ja4_raw(ch, true);
            }
        });
        assert!(st.consumed() <= end);
    }
    // A record is at least 5 bytes, and anomalies are reported once per kind; hellos can be
    // several messages per record, but never more than one per 4 bytes.
    assert!(events <= data.len() + TlsAnomaly::KINDS);
}

#[test]
fn random_bytes_and_mutations_never_panic() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    // Small scratches too, so the skip path of oversized messages is exercised.
    let mut scratches = [
        TlsScratch::new(64),
        TlsScratch::new(700),
        TlsScratch::default(),
    ];
    let vectors = all_vectors();
    for case in 0..6000 {
        let scratch = &mut scratches[case % 3];
        let role = if case % 2 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        let data: Vec<u8> = match case % 4 {
            0 => {
                // Pure noise, sometimes behind a plausible record header.
                let n = rng.below(600);
                let mut d: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                if rng.below(2) == 0 && d.len() > 5 {
                    d[0] = 20 + rng.below(5) as u8;
                    d[1] = 3;
                    d[2] = rng.below(6) as u8;
                }
                d
            }
            1 => {
                // A real handshake with a few bytes flipped.
                let (_, base) = &vectors[rng.below(vectors.len())];
                let mut d = base.clone();
                for _ in 0..1 + rng.below(8) {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
                d
            }
            2 => {
                // Re-framed, then truncated or extended with noise.
                let (_, base) = &vectors[rng.below(vectors.len())];
                let mut d = reframe(base, 1 + rng.below(300));
                let cut = rng.below(d.len());
                d.truncate(cut);
                for _ in 0..rng.below(40) {
                    d.push(rng.next() as u8);
                }
                d
            }
            _ => {
                // A crafted hello with random length fields.
                let mut d = Ch::new().record();
                for _ in 0..1 + rng.below(4) {
                    let i = 5 + rng.below(d.len() - 5);
                    d[i] = [0, 0xff, 0x7f, 0x80, 1][rng.below(5)];
                }
                if rng.below(2) == 0 {
                    d.extend(sslv2_hello());
                    d.rotate_right(sslv2_hello().len());
                }
                d
            }
        };
        feed_in_random_steps(&mut rng, role, &data, scratch);
    }
}

fn first_client_hello(vector: &[&str]) -> ClientHello {
    let mut st = TlsDir::new(Dir::ToServer);
    let mut found = None;
    st.feed(&bytes(vector), &mut TlsScratch::default(), |e| {
        if let TlsEvent::ClientHello(c) = e {
            found.get_or_insert(*c);
        }
    });
    found.expect("a ClientHello")
}

#[test]
fn ech_and_esni_extensions_are_read_without_keys() {
    let chrome = first_client_hello(testdata::CHROME_ECH_HELLO);
    assert_eq!(chrome.sni.as_str(), "performance.radar.cloudflare.com");
    let ech = chrome.hidden.ech.expect("ECH extension");
    assert_eq!(ech.ty, EchType::Outer);
    assert!(ech.well_formed);
    // HKDF-SHA256 and an X25519 encapsulated key, as BoringSSL sends (GREASE or not).
    assert_eq!((ech.kdf, ech.enc_len), (0x0001, 32));
    assert!(ech.payload_len > 100, "{ech:?}");
    assert!(chrome.hidden.esni.is_none());

    let firefox = first_client_hello(testdata::FIREFOX_ESNI_HELLO);
    assert!(!firefox.has_sni);
    let esni = firefox.hidden.esni.expect("ESNI extension");
    assert!(esni.well_formed, "{esni:?}");
    assert_eq!((esni.suite, esni.group, esni.key_len), (0x1301, 0x001d, 32));
    assert!(firefox.hidden.ech.is_none());
    assert!(!first_client_hello(testdata::CHROME_HELLO).hidden.any());
}

#[test]
fn ech_bodies_of_every_shape_parse_without_panic() {
    let outer = crate::fixtures::tls::ech_outer(7, 200);
    let e = parse_ech(&outer);
    assert_eq!(
        (e.ty, e.config_id, e.payload_len, e.well_formed),
        (EchType::Outer, 7, 200, true)
    );
    assert_eq!(parse_ech(&[1]).ty, EchType::Inner);
    assert!(parse_ech(&[1]).well_formed);
    assert!(!parse_ech(&[1, 0]).well_formed);
    assert_eq!(parse_ech(&[9, 1, 2]).ty, EchType::Other(9));
    assert!(!parse_ech(&[]).well_formed);
    // Every prefix of a real body: never a panic, never well-formed.
    for n in 0..outer.len() {
        assert!(!parse_ech(&outer[..n]).well_formed, "{n}");
    }
    let esni = crate::fixtures::tls::esni(100);
    assert!(parse_esni(&esni).well_formed);
    for n in 0..esni.len() {
        assert!(!parse_esni(&esni[..n]).well_formed, "{n}");
    }
}
