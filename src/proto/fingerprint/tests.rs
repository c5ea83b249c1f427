use super::*;
use crate::flow::Dir;
use crate::proto::fixed_list::FixedList;
use crate::proto::memo::ServerPrints;
use crate::proto::tls::testdata::{self, bytes};
use crate::proto::tls::{TlsDir, TlsEvent, TlsScratch};

fn hellos(vector: &[&str], role: Dir) -> (Vec<ClientHello>, Vec<ServerHello>) {
    let mut st = TlsDir::new(role);
    let mut scratch = TlsScratch::default();
    let (mut chs, mut shs) = (Vec::new(), Vec::new());
    st.feed(&bytes(vector), &mut scratch, |e| match e {
        TlsEvent::ClientHello(c) => chs.push(*c),
        TlsEvent::ServerHello(s) => shs.push(*s),
        _ => {}
    });
    (chs, shs)
}

fn ch_of(vector: &[&str]) -> ClientHello {
    hellos(vector, Dir::ToServer).0[0]
}

fn sh_of(vector: &[&str]) -> ServerHello {
    hellos(vector, Dir::ToClient).1[0]
}

/// Expected values: tshark 4.0.17 (`tls.handshake.ja3_full`, `ja3`, `ja3s_full`, `ja3s`) and
/// ja4plus 1.4.0, both run over the loopback capture the vectors come from.
#[test]
fn ja3_and_ja4_of_real_clients_match_tshark_and_ja4plus() {
    let cases = [
        (
            testdata::CURL_TLS13_CLIENT,
            "771,4866-4867-4865-49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-16-22-23-49-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2",
            "0149f47eabf9a20d0893e2a44e5a6323",
            "t13d3112h2_e8f1e7e78f70_b26ce05bbdd6",
        ),
        (
            testdata::S_CLIENT_TLS12_CLIENT,
            "771,49196-49200-159-52393-52392-52394-49195-49199-158-49188-49192-107-49187-49191-103-49162-49172-57-49161-49171-51-157-156-61-60-53-47-255,0-11-10-35-22-23-13,29-23-30-25-24,0-1-2",
            "871a754af286dfb70c1b53c6887c62e0",
            "t12d280700_d943125447b4_e7e480e5a997",
        ),
        (
            testdata::PYTHON_TLS13_CLIENT,
            "771,4866-4867-4865-49196-49200-49195-49199-52393-52392-49188-49192-49187-49191-159-158-107-103-255,0-11-10-35-16-22-23-13-43-45-51-21,29-23-30-25-24-256-257-258-259-260,0-1-2",
            "304734bb1c086c3453b387400cf83f11",
            "t13d1812h1_85036bcba153_d41ae481755e",
        ),
    ];
    for (vector, text, md5, ja4_expected) in cases {
        let ch = ch_of(vector);
        let j = ja3(&ch);
        assert_eq!(j.text, text);
        assert_eq!(j.md5, md5);
        assert!(!j.incomplete);
        assert_eq!(ja4(&ch), ja4_expected);
    }
}

#[test]
fn ja4_raw_matches_ja4plus_raw() {
    let ch = ch_of(testdata::S_CLIENT_TLS12_CLIENT);
    assert_eq!(
        ja4_raw(&ch, false),
        "t12d280700_002f,0033,0035,0039,003c,003d,0067,006b,009c,009d,009e,009f,00ff,c009,c00a,c013,c014,c023,c024,c027,c028,c02b,c02c,c02f,c030,cca8,cca9,ccaa_000a,000b,000d,0016,0017,0023_0403,0503,0603,0807,0808,0809,080a,080b,0804,0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"
    );
    assert_eq!(
        ja4_raw(&ch, true),
        "t12d280700_c02c,c030,009f,cca9,cca8,ccaa,c02b,c02f,009e,c024,c028,006b,c023,c027,0067,c00a,c014,0039,c009,c013,0033,009d,009c,003d,003c,0035,002f,00ff_0000,000b,000a,0023,0016,0017,000d_0403,0503,0603,0807,0808,0809,080a,080b,0804,0805,0806,0401,0501,0601,0303,0301,0302,0402,0502,0602"
    );
}

#[test]
fn ja3s_matches_tshark() {
    let tls13 = ja3s(&sh_of(testdata::CURL_TLS13_SERVER));
    assert_eq!(tls13.text, "771,4866,43-51");
    assert_eq!(tls13.md5, "15af977ce25de452b96affa2addb1036");
    let tls12 = ja3s(&sh_of(testdata::S_CLIENT_TLS12_SERVER));
    assert_eq!(tls12.text, "771,49200,65281-11-35-23");
    assert_eq!(tls12.md5, "ec74a5c51106f0419184d0dd08fb05bc");
}

fn hello(ciphers: &[u16], exts: &[u16], sigs: &[u16]) -> ClientHello {
    let mut ch = ClientHello {
        legacy_version: 0x0303,
        ..ClientHello::default()
    };
    ciphers.iter().for_each(|c| ch.ciphers.push(*c));
    exts.iter().for_each(|e| ch.extensions.push(*e));
    sigs.iter().for_each(|s| ch.sig_algs.push(*s));
    ch.has_extensions_block = !exts.is_empty();
    ch
}

fn set_alpn(ch: &mut ClientHello, first: &[u8]) {
    ch.alpn.push(InlineStr::from_bytes_escaped(first));
    ch.alpn_first_len = first.len() as u8;
    if let (Some(f), Some(l)) = (first.first(), first.last()) {
        ch.alpn_first_edges = [*f, *l];
    }
}

/// The worked example of FoxIO's JA4 specification (technical_details/JA4.md).
#[test]
fn ja4_spec_example() {
    let mut ch = hello(
        &[
            0x1301, 0x1302, 0x1303, 0xc02b, 0xc02f, 0xc02c, 0xc030, 0xcca9, 0xcca8, 0xc013, 0xc014,
            0x009c, 0x009d, 0x002f, 0x0035,
        ],
        &[
            0x001b, 0x0000, 0x0033, 0x0010, 0x4469, 0x0017, 0x002d, 0x000d, 0x0005, 0x0023, 0x0012,
            0x002b, 0xff01, 0x000b, 0x000a, 0x0015,
        ],
        &[
            0x0403, 0x0804, 0x0401, 0x0503, 0x0805, 0x0501, 0x0806, 0x0601,
        ],
    );
    ch.has_sni = true;
    ch.has_supported_versions = true;
    ch.supported_versions.push(0x0304);
    ch.supported_versions.push(0x0303);
    set_alpn(&mut ch, b"h2");
    assert_eq!(ja4(&ch), "t13d1516h2_8daaf6152771_e5627efa2ab1");
    assert_eq!(
        ja4_raw(&ch, false),
        "t13d1516h2_002f,0035,009c,009d,1301,1302,1303,c013,c014,c02b,c02c,c02f,c030,cca8,cca9_0005,000a,000b,000d,0012,0015,0017,001b,0023,002b,002d,0033,4469,ff01_0403,0804,0401,0503,0805,0501,0806,0601"
    );
    // Without signature algorithms the extension list is hashed alone.
    ch.sig_algs = Default::default();
    assert!(ja4(&ch).as_str().ends_with("_6d807ffa2a79"), "{}", ja4(&ch));
}

#[test]
fn grease_is_ignored_everywhere() {
    let plain = {
        let mut ch = hello(&[0x1301, 0xc02f], &[0, 10, 43], &[0x0403]);
        ch.groups.push(29);
        ch.has_supported_versions = true;
        ch.supported_versions.push(0x0304);
        ch
    };
    let greased = {
        let mut ch = hello(
            &[0x0a0a, 0x1301, 0xc02f],
            &[0x1a1a, 0, 10, 43, 0xfafa],
            &[0x0403],
        );
        ch.groups.push(0x2a2a);
        ch.groups.push(29);
        ch.has_supported_versions = true;
        ch.supported_versions.push(0x3a3a);
        ch.supported_versions.push(0x0304);
        ch.grease_seen = true;
        ch
    };
    assert_eq!(ja3(&greased).text, "771,4865-49199,0-10-43,29,");
    assert_eq!(ja3(&greased), ja3(&plain));
    assert_eq!(ja3n(&greased), ja3n(&plain));
    assert_eq!(ja4(&greased), ja4(&plain));
    assert!(ja4(&greased).as_str().starts_with("t13i0203"));
    // The 0x0a0a-0xfafa pattern only: 0x0a1a is not GREASE.
    assert!(crate::proto::tls::is_grease(0xdada));
    assert!(!crate::proto::tls::is_grease(0x0a1a));
    assert!(!crate::proto::tls::is_grease(0x0b0b));
}

#[test]
fn ja3n_is_stable_across_extension_order() {
    let a = hello(&[0x1301], &[0, 23, 65281, 10, 11, 35, 16], &[]);
    let b = hello(&[0x1301], &[35, 16, 0, 65281, 11, 23, 10], &[]);
    assert_ne!(ja3(&a).md5, ja3(&b).md5);
    assert_eq!(ja3n(&a), ja3n(&b));
    assert_eq!(ja3n(&a).text, "771,4865,0-10-11-16-23-35-65281,,");
    assert_eq!(ja3n(&a).md5, md5_hex(ja3n(&a).text.as_bytes()));
    // JA4 sorts too.
    assert_eq!(ja4(&a), ja4(&b));
}

#[test]
fn ja4_alpn_characters() {
    let cases: [(&[u8], &str); 7] = [
        (b"h2", "h2"),
        (b"http/1.1", "h1"),
        (b"spdy/3.1", "s1"),
        (b"h", "hh"),
        (&[0xab], "ab"),
        (&[0x30, 0xab], "3b"),
        (&[0x30, 0xab, 0xcd, 0x31], "01"),
    ];
    for (alpn, expected) in cases {
        let mut ch = hello(&[0x002f], &[16], &[]);
        set_alpn(&mut ch, alpn);
        assert_eq!(&ja4(&ch).as_str()[8..10], expected, "{alpn:?}");
    }
    let ch = hello(&[0x002f], &[], &[]);
    assert_eq!(&ja4(&ch).as_str()[8..10], "00");
}

#[test]
fn ja4_version_and_empty_parts() {
    let mut ch = hello(&[], &[], &[]);
    ch.legacy_version = 0x0301;
    assert_eq!(ja4(&ch), "t10i000000_000000000000_000000000000");
    // supported_versions wins over legacy_version; an unknown highest value gives "00"
    // (tls_2_reasms.pcapng offers 0xfb1a).
    let mut ch = hello(&[0x1301], &[43], &[]);
    ch.has_supported_versions = true;
    ch.supported_versions.push(0xfb1a);
    ch.supported_versions.push(0x0304);
    assert!(ja4(&ch).as_str().starts_with("t00i0101"));
    for (v, s) in [
        (0x0300, "s3"),
        (0x0002, "s2"),
        (0x0302, "11"),
        (0xfefd, "d2"),
        (0x7f17, "00"),
    ] {
        let mut ch = hello(&[0x002f], &[], &[]);
        ch.legacy_version = v;
        assert_eq!(&ja4(&ch).as_str()[1..3], s, "{v:#06x}");
    }
    // Only SNI and ALPN: the sorted list is empty, so the hash is zeros.
    let ch = hello(&[0x002f], &[0, 16], &[]);
    assert!(ja4(&ch).as_str().ends_with("_000000000000"));
    assert_eq!(&ja4(&ch).as_str()[6..8], "02");
}

#[test]
fn counts_cap_at_99() {
    let ciphers: Vec<u16> = (1..=120).collect();
    let ch = hello(&ciphers, &[0], &[]);
    assert_eq!(&ja4(&ch).as_str()[4..6], "99");
    let ciphers: Vec<u16> = (1..=200).collect();
    let ch = hello(&ciphers, &[0], &[]);
    assert!(ch.ciphers.overflowed());
    assert_eq!(&ja4(&ch).as_str()[4..6], "99");
    assert!(ja3(&ch).incomplete);
}

#[test]
fn ja3_when_the_extensions_length_is_cut() {
    // tshark ends the string after the cipher field (tls_invalid_reads.pcap).
    let mut ch = hello(&[4, 5, 10], &[], &[]);
    ch.legacy_version = 0x0301;
    ch.has_extensions_block = true;
    ch.extensions_length_cut = true;
    assert_eq!(ja3(&ch).text, "769,4-5-10,");
    ch.extensions_length_cut = false;
    assert_eq!(ja3(&ch).text, "769,4-5-10,,,");
}

#[test]
fn md5_and_sha256_helpers() {
    // RFC 1321 test suite value.
    assert_eq!(md5_hex(b"abc"), "900150983cd24fb0d6963f7d28e17f72");
    // FIPS 180-2 "abc": ba7816bf8f01...
    assert_eq!(sha256_12(b"abc"), "ba7816bf8f01");
}

#[test]
fn browser_hellos_have_browser_shape() {
    // Chromium with GREASE and ECH, Firefox with record_size_limit and ESNI, and both without.
    for (name, vector) in [
        ("chrome ech", testdata::CHROME_ECH_HELLO),
        ("firefox esni", testdata::FIREFOX_ESNI_HELLO),
        ("firefox", testdata::FIREFOX_HELLO),
        ("chrome", testdata::CHROME_HELLO),
    ] {
        let shape = BrowserShape::of(&ch_of(vector));
        assert!(
            shape.browser_like(),
            "{name}: {:?}",
            shape.names().collect::<Vec<_>>()
        );
    }
}

#[test]
fn library_hellos_are_not_browser_shaped() {
    // curl/OpenSSL: no GREASE, no record_size_limit, 31 suites (with the SCSV).
    let curl = BrowserShape::of(&ch_of(testdata::CURL_TLS13_CLIENT));
    assert_eq!(
        curl.names().collect::<Vec<_>>(),
        ["no_grease_nor_record_size_limit"]
    );
    // Python: ALPN http/1.1 only is still web, but no GREASE and no record_size_limit.
    let py = BrowserShape::of(&ch_of(testdata::PYTHON_TLS13_CLIENT));
    assert!(py.contains(BrowserShape::NO_GREASE_NOR_RECORD_SIZE_LIMIT));
    assert!(!py.contains(BrowserShape::NO_WEB_ALPN));
    // s_client -tls1_2: no TLS 1.3, no ALPN either.
    let s = BrowserShape::of(&ch_of(testdata::S_CLIENT_TLS12_CLIENT));
    for bit in [
        BrowserShape::NO_WEB_ALPN,
        BrowserShape::NO_TLS13,
        BrowserShape::MISSING_TLS13_SUITES,
    ] {
        assert!(s.contains(bit), "{:?}", s.names().collect::<Vec<_>>());
    }
    assert!(s.count() >= 4);
}

#[test]
fn obsolete_suites_and_cipher_counts() {
    let mut ch = ch_of(testdata::CHROME_HELLO);
    assert!(BrowserShape::of(&ch).browser_like());
    ch.ciphers.push(0x0005); // RC4-SHA
    assert_eq!(
        BrowserShape::of(&ch).names().collect::<Vec<_>>(),
        ["null_export_anon_or_rc4_suites"]
    );
    let mut few = ClientHello {
        grease_seen: true,
        ..ch_of(testdata::CHROME_HELLO)
    };
    few.ciphers = Default::default();
    for c in [0x0a0a, 0x1301, 0x1302, 0x1303] {
        few.ciphers.push(c);
    }
    // GREASE is not counted: three real suites.
    assert_eq!(
        BrowserShape::of(&few).names().collect::<Vec<_>>(),
        ["cipher_count_outside_10_to_32"]
    );
}

fn direct_prints(ch: &ClientHello) -> HelloPrints {
    HelloPrints {
        ja3: ja3(ch),
        ja3n_md5: ja3n(ch).md5,
        ja4: ja4(ch),
    }
}

/// Variants of a real hello, each changing one thing a fingerprint reads.
fn hello_variants() -> Vec<ClientHello> {
    let base = ch_of(testdata::CURL_TLS13_CLIENT);
    let mut out = vec![base];
    let mut v = base;
    v.legacy_version = 0x0302;
    out.push(v);
    let mut v = base;
    v.has_sni = !v.has_sni;
    out.push(v);
    let mut v = base;
    v.alpn_first_len = 0;
    out.push(v);
    let mut v = base;
    v.alpn_first_edges = [b'h', b'1'];
    out.push(v);
    let mut v = base;
    v.extensions_length_cut = true;
    out.push(v);
    let mut v = base;
    v.ciphers = FixedList::default();
    for c in base.ciphers.as_slice().iter().rev() {
        v.ciphers.push(*c);
    }
    out.push(v);
    let mut v = base;
    v.point_formats.push(1);
    out.push(v);
    let mut v = base;
    v.sig_algs.push(0x0401);
    out.push(v);
    let mut v = base;
    v.groups = FixedList::default();
    out.push(v);
    let mut v = base;
    v.supported_versions = FixedList::default();
    v.supported_versions.push(0x0303);
    out.push(v);
    // More ciphers than the list keeps: JA4 counts 99 and JA3 is incomplete.
    let mut v = base;
    for c in 0..200u16 {
        v.ciphers.push(c);
    }
    out.push(v);
    out.push(ch_of(testdata::S_CLIENT_TLS12_CLIENT));
    out.push(ch_of(testdata::PYTHON_TLS13_CLIENT));
    out
}

#[test]
fn memo_prints_equal_the_computed_ones() {
    let hellos = hello_variants();
    let mut memo = HelloMemo::new(crate::proto::memo::HELLO_MEMO_ENTRIES);
    for round in 0..3 {
        for (i, ch) in hellos.iter().enumerate() {
            let want = direct_prints(ch);
            assert_eq!(
                *client_prints(ch, &mut memo),
                want,
                "round {round}, hello {i}"
            );
        }
    }
    let (hits, lookups) = memo.hits();
    assert_eq!(lookups, 3 * hellos.len() as u64);
    assert_eq!(
        hits,
        2 * hellos.len() as u64,
        "every variant has its own entry"
    );
    // A disabled memo computes every time.
    let mut off = HelloMemo::new(0);
    assert_eq!(
        *client_prints(&hellos[0], &mut off),
        direct_prints(&hellos[0])
    );
    assert_eq!(off.hits().0, 0);
}

#[test]
fn grease_values_do_not_split_memo_entries() {
    let base = ch_of(testdata::CURL_TLS13_CLIENT);
    let mut greased = base;
    greased.ciphers = FixedList::default();
    greased.ciphers.push(0x3a3a);
    for c in base.ciphers.as_slice() {
        greased.ciphers.push(*c);
    }
    let mut memo = HelloMemo::new(crate::proto::memo::HELLO_MEMO_ENTRIES);
    assert_eq!(*client_prints(&base, &mut memo), direct_prints(&base));
    assert_eq!(*client_prints(&greased, &mut memo), direct_prints(&greased));
    assert_eq!(direct_prints(&greased), direct_prints(&base));
    assert_eq!(memo.hits(), (1, 2));
}

fn direct_server_prints(sh: &ServerHello) -> ServerPrints {
    ServerPrints {
        ja3s: ja3s(sh),
        ja4s: ja4s(sh),
    }
}

#[test]
fn server_memo_prints_equal_the_computed_ones() {
    let base = sh_of(testdata::S_CLIENT_TLS12_SERVER);
    let mut variants = vec![base];
    let alpn = |s: &str| Some(crate::text::InlineStr::from_str_lossy(s));
    for a in [
        alpn("h2"),
        alpn("h3"),
        alpn("x"),
        alpn(""),
        alpn("http/1.1"),
        None,
    ] {
        let mut v = base;
        v.alpn = a;
        variants.push(v);
    }
    let mut v = base;
    v.cipher ^= 1;
    variants.push(v);
    let mut v = base;
    v.legacy_version = 0x0301;
    variants.push(v);
    let mut v = base;
    v.selected_version = Some(0x0304);
    variants.push(v);
    let mut v = base;
    v.extensions.push(0x0a0a);
    variants.push(v);
    let mut v = base;
    for e in 0..100u16 {
        v.extensions.push(e);
    }
    variants.push(v);
    let mut memo = HelloMemo::<ServerPrints>::new(256);
    for round in 0..3 {
        for (i, sh) in variants.iter().enumerate() {
            let want = direct_server_prints(sh);
            assert_eq!(
                *server_prints(sh, &mut memo),
                want,
                "round {round}, hello {i}"
            );
        }
    }
    // An empty ALPN and none read the same ("00"), and the base has none: one entry each for
    // the other variants.
    let mut distinct: Vec<ServerPrints> = Vec::new();
    for sh in &variants {
        let p = direct_server_prints(sh);
        if !distinct.contains(&p) {
            distinct.push(p);
        }
    }
    assert_eq!(distinct.len(), variants.len() - 2);
    assert_eq!(memo.hits().0, (3 * variants.len() - distinct.len()) as u64);
}
