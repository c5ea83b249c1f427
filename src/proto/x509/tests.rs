use super::*;
use crate::flow::Dir;
use crate::proto::tls::testdata::{self, bytes};
use crate::proto::tls::{TlsDir, TlsEvent, TlsScratch};

// Expected values below come from `openssl x509 -noout -subject -issuer -serial -dates
// -fingerprint -sha1 -ext subjectAltName` on the same certificates.

#[test]
fn leaf_issued_by_a_ca() {
    let der = bytes(testdata::CERT_LEAF);
    let c = CertInfo::from_der(&der).unwrap();
    assert_eq!(c.version, 3);
    assert_eq!(c.subject, "C=US, O=Example Org, CN=www.badssl.example");
    assert_eq!(c.issuer, "C=US, O=Unmask Test CA, CN=Unmask Root");
    assert_eq!(c.subject_cn.unwrap(), "www.badssl.example");
    let orgs: Vec<&str> = c
        .issuer_orgs
        .as_slice()
        .iter()
        .map(|o| o.as_str())
        .collect();
    assert_eq!(orgs, ["Unmask Test CA"]);
    // DER keeps the sign byte: 0x00e18f2a55 (openssl prints E18F2A55).
    assert_eq!(c.serial, "00:E1:8F:2A:55");
    assert_eq!(
        c.sha1_text(),
        "f1:13:e8:54:b6:8e:54:16:85:0e:73:70:14:63:61:87:3d:4e:2c:91"
    );
    assert_eq!((c.not_before, c.not_after), (1_795_414_166, 1_803_190_166));
    assert_eq!(c.validity_days(), 90);
    assert!(c.has_san);
    let dns: Vec<&str> = c.san_dns.as_slice().iter().map(|n| n.as_str()).collect();
    assert_eq!(dns, ["*.badssl.example", "badssl.example"]);
    let ips: Vec<IpAddr> = c.san_ips.as_slice().iter().map(|i| i.0).collect();
    assert_eq!(
        ips,
        [
            "192.0.2.7".parse::<IpAddr>().unwrap(),
            "2001:db8::1".parse().unwrap()
        ]
    );
    assert!(!c.issuer_is_subject);
    assert!(!c.self_signed);
    assert!(!c.is_ca);
    assert_eq!((c.key_kind, c.key_bits), (KeyKind::Ec, 256));
    assert!(c.is_valid_at(1_800_000_000));
    assert!(!c.is_valid_at(1_803_190_167));
}

#[test]
fn self_signed_certificates() {
    let ca = CertInfo::from_der(&bytes(testdata::CERT_CA)).unwrap();
    assert_eq!(ca.subject, "C=US, O=Unmask Test CA, CN=Unmask Root");
    assert!(ca.issuer_is_subject && ca.self_signed && ca.is_ca);
    assert_eq!(ca.aki_matches_ski, Some(true));
    assert_eq!((ca.key_kind, ca.key_bits), (KeyKind::Rsa, 2048));
    assert_eq!(
        ca.serial,
        "66:E0:66:8F:12:28:CF:C1:53:11:78:83:5D:98:CD:C6:71:C5:C3:3C"
    );
    assert_eq!(ca.validity_days(), 3650);

    let ec = CertInfo::from_der(&bytes(testdata::CERT_EC_SELF_SIGNED)).unwrap();
    assert_eq!(ec.subject, "C=XX, O=unmask test, CN=test.unmask.example");
    assert!(ec.self_signed);
    assert_eq!(
        ec.sha1_text(),
        "22:c7:2a:9e:07:93:eb:fb:a4:ea:76:cf:4c:cb:0c:3d:68:2a:41:88"
    );
    assert_eq!(ec.matches_host("test.unmask.example"), NameMatch::Match);
    assert_eq!(ec.matches_host("a.wild.unmask.example"), NameMatch::Match);
    assert_eq!(ec.matches_host("wild.unmask.example"), NameMatch::Mismatch);
    assert_eq!(ec.matches_host("127.0.0.1"), NameMatch::Match);
    assert_eq!(ec.matches_host("127.0.0.2"), NameMatch::Mismatch);
}

#[test]
fn self_signed_rule_table() {
    assert!(self_signed_rule(true, None));
    assert!(self_signed_rule(true, Some(true)));
    // Same DNs, different key identifiers: a re-keyed CA of the same name issued it.
    assert!(!self_signed_rule(true, Some(false)));
    assert!(!self_signed_rule(false, None));
    assert!(!self_signed_rule(false, Some(true)));
}

#[test]
fn certificate_without_san_matches_on_cn() {
    // The RSA certificate s_server sent in the TLS 1.2 capture has only CN=rsa.unmask.example.
    let mut st = TlsDir::new(Dir::ToClient);
    let mut scratch = TlsScratch::default();
    let mut der = Vec::new();
    st.feed(&bytes(testdata::S_CLIENT_TLS12_SERVER), &mut scratch, |e| {
        if let TlsEvent::Certificate { index: 0, der: d } = e {
            der = d.to_vec();
        }
    });
    let c = CertInfo::from_der(&der).unwrap();
    assert!(!c.has_san);
    assert!(c.self_signed);
    assert_eq!(
        c.sha1_text(),
        "f3:41:2d:5a:e1:32:b5:2d:a9:14:a8:a9:36:00:4e:87:d4:86:fe:57"
    );
    assert_eq!(c.matches_host("rsa.unmask.example"), NameMatch::Match);
    assert_eq!(c.matches_host("RSA.Unmask.Example."), NameMatch::Match);
    assert_eq!(c.matches_host("other.unmask.example"), NameMatch::Mismatch);
}

#[test]
fn wildcard_rules_rfc6125() {
    let c = CertInfo::from_der(&bytes(testdata::CERT_LEAF)).unwrap();
    let m = |h| c.matches_host(h);
    assert_eq!(m("www.badssl.example"), NameMatch::Match);
    assert_eq!(m("a.badssl.example"), NameMatch::Match);
    assert_eq!(m("badssl.example"), NameMatch::Match);
    assert_eq!(m("wrong.host.badssl.example"), NameMatch::Mismatch);
    assert_eq!(m("badssl.example.evil"), NameMatch::Mismatch);
    assert_eq!(m("xbadssl.example"), NameMatch::Mismatch);
    assert_eq!(m("192.0.2.7"), NameMatch::Match);
    assert_eq!(m("2001:DB8::1"), NameMatch::Match);
    assert_eq!(m("[2001:db8::1]"), NameMatch::Match);
    assert_eq!(m("192.0.2.8"), NameMatch::Mismatch);
    assert_eq!(m(""), NameMatch::Mismatch);

    assert!(dns_name_matches("*.example.com", "A.EXAMPLE.com"));
    assert!(!dns_name_matches("*.example.com", "example.com"));
    assert!(!dns_name_matches("*.example.com", ".example.com"));
    assert!(
        !dns_name_matches("*.com", "example.com"),
        "wildcard over a TLD"
    );
    assert!(!dns_name_matches("*", "example"));
    assert!(
        !dns_name_matches("f*.example.com", "foo.example.com"),
        "partial label"
    );
    assert!(!dns_name_matches("a.*.example.com", "a.b.example.com"));
    assert!(!dns_name_matches("*.*.example.com", "a.b.example.com"));
    assert!(!dns_name_matches("*..com", "a..com"));
    assert!(dns_name_matches("example.com.", "example.com"));
}

#[test]
fn host_matched_while_parsing() {
    let der = bytes(testdata::CERT_LEAF);
    for (host, expected) in [
        ("a.badssl.example", NameMatch::Match),
        ("wrong.host.badssl.example", NameMatch::Mismatch),
        ("2001:db8::1", NameMatch::Match),
    ] {
        let c = CertInfo::from_der_for_host(&der, Some(host)).unwrap();
        assert_eq!(c.host_match, Some(expected), "{host}");
        assert_eq!(c.matches_host(host), expected);
    }
    assert_eq!(CertInfo::from_der(&der).unwrap().host_match, None);
    // No SAN: the CN decides.
    let ca = bytes(testdata::CERT_CA);
    let c = CertInfo::from_der_for_host(&ca, Some("unmask root")).unwrap();
    assert_eq!(c.host_match, Some(NameMatch::Match));
}

#[test]
fn ip_sni_never_matches_dns_names_or_cn() {
    let dns = ["192.0.2.1", "*.0.2.1"];
    let r = match_host(
        "192.0.2.1",
        true,
        dns.iter().copied(),
        std::iter::empty(),
        None,
        false,
    );
    assert_eq!(r, NameMatch::Mismatch);
    let r = match_host(
        "192.0.2.1",
        false,
        std::iter::empty(),
        std::iter::empty(),
        Some("192.0.2.1"),
        false,
    );
    assert_eq!(r, NameMatch::Mismatch);
}

#[test]
fn cn_is_ignored_when_san_exists_and_unknown_when_names_were_cut() {
    let r = match_host(
        "cn.example",
        true,
        ["san.example"].into_iter(),
        std::iter::empty(),
        Some("cn.example"),
        false,
    );
    assert_eq!(r, NameMatch::Mismatch);
    let r = match_host(
        "other.example",
        true,
        ["san.example"].into_iter(),
        std::iter::empty(),
        None,
        true,
    );
    assert_eq!(r, NameMatch::Unknown);
}

#[test]
fn malformed_der_is_an_error_not_a_panic() {
    let der = bytes(testdata::CERT_LEAF);
    assert_eq!(CertInfo::from_der(&[]), Err(CertError::Empty));
    assert_eq!(
        CertInfo::from_der(&der[..der.len() / 2]),
        Err(CertError::Truncated)
    );
    // An outer SEQUENCE header claiming 4 GiB.
    assert_eq!(
        CertInfo::from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0x30]),
        Err(CertError::Truncated)
    );
    let mut trailing = der.clone();
    trailing.push(0);
    assert_eq!(CertInfo::from_der(&trailing), Err(CertError::TrailingBytes));
    assert!(CertInfo::from_der(b"not a certificate at all").is_err());
    // A valid outer SEQUENCE holding garbage.
    let e = CertInfo::from_der(&[0x30, 0x03, 0x02, 0x01, 0x01]).unwrap_err();
    assert_ne!(e, CertError::Empty);
    assert!(!e.name().is_empty());
}

#[test]
fn mutated_certificates_never_panic() {
    let mut seed = 0x0dd_c0ffee_u64;
    let mut next = || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    let bases = [
        bytes(testdata::CERT_LEAF),
        bytes(testdata::CERT_CA),
        bytes(testdata::CERT_EC_SELF_SIGNED),
    ];
    let mut parsed = 0;
    for i in 0..3000 {
        let mut d = bases[i % bases.len()].clone();
        for _ in 0..1 + next() % 6 {
            let at = (next() as usize) % d.len();
            d[at] = next() as u8;
        }
        if next() % 4 == 0 {
            let cut = (next() as usize) % d.len();
            d.truncate(cut);
        }
        if let Ok(c) = CertInfo::from_der(&d) {
            parsed += 1;
            let _ = c.matches_host("www.badssl.example");
            let _ = c.validity_days();
        }
    }
    // Some mutations land in signature or key bytes and still parse.
    assert!(parsed > 0);
}

#[test]
fn sha1_of_empty_input() {
    // FIPS 180-1 test vector for the empty message.
    assert_eq!(
        sha1_text(&sha1_of(b"")),
        "da:39:a3:ee:5e:6b:4b:0d:32:55:bf:ef:95:60:18:90:af:d8:07:09"
    );
}

/// Every certificate at hand, for the cache tests.
fn cache_test_certificates() -> Vec<Vec<u8>> {
    let mut st = TlsDir::new(Dir::ToClient);
    let mut no_san = Vec::new();
    st.feed(
        &bytes(testdata::S_CLIENT_TLS12_SERVER),
        &mut TlsScratch::default(),
        |e| {
            if let TlsEvent::Certificate { index: 0, der } = e {
                no_san = der.to_vec();
            }
        },
    );
    vec![
        bytes(testdata::CERT_LEAF),
        bytes(testdata::CERT_CA),
        no_san,
        crate::fixtures::CERT_WWW_EXAMPLE_COM.to_vec(),
        crate::fixtures::CERT_FIXTURE_ROOT_CA.to_vec(),
    ]
}

#[test]
fn cached_certificates_equal_a_fresh_parse_for_every_host() {
    let hosts = [
        None,
        Some("a.badssl.example"),
        Some("wrong.host.badssl.example"),
        Some("2001:db8::1"),
        Some("192.0.2.7"),
        Some("rsa.unmask.example"),
        Some("unmask root"),
        Some("www.example.com"),
        Some("example.org"),
    ];
    let certs = cache_test_certificates();
    let mut cache = CertCache::new(CERT_CACHE_ENTRIES);
    for round in 0..3 {
        for der in &certs {
            for host in hosts {
                let fresh = CertInfo::from_der_for_host(der, host).unwrap();
                let cached = *cache.parse_for_host(der, &sha1_of(der), host).unwrap();
                assert_eq!(cached, fresh, "round {round}, host {host:?}");
            }
        }
    }
    let (hits, lookups) = cache.hits();
    assert_eq!(lookups, 3 * (certs.len() * hosts.len()) as u64);
    assert_eq!(
        hits,
        lookups - certs.len() as u64,
        "one parse per certificate"
    );
}

#[test]
fn cache_compares_the_der_not_only_the_digest() {
    let certs = cache_test_certificates();
    let (a, b) = (&certs[0], &certs[1]);
    let mut cache = CertCache::new(CERT_CACHE_ENTRIES);
    cache.parse_for_host(a, &sha1_of(a), None).unwrap();
    // `b` presented under `a`'s digest (as a SHA-1 collision would): parsed, not `a`'s facts.
    let got = *cache
        .parse_for_host(b, &sha1_of(a), Some("unmask root"))
        .unwrap();
    let mut want = CertInfo::from_der_for_host(b, Some("unmask root")).unwrap();
    want.sha1 = sha1_of(a);
    assert_eq!(got, want);
    assert_eq!(cache.hits().0, 0);
    // Invalid input is an error, and is not remembered as anything.
    let mut cut = a.clone();
    cut.truncate(a.len() / 2);
    for _ in 0..2 {
        assert_eq!(
            cache.parse_for_host(&cut, &sha1_of(&cut), None).err(),
            Some(CertError::Truncated)
        );
        assert_eq!(
            cache.parse_for_host(&[], &sha1_of(&[]), None).err(),
            Some(CertError::Empty)
        );
    }
}

#[test]
fn a_full_cache_evicts_the_least_recently_used() {
    let certs = cache_test_certificates();
    // One set of four: the fifth certificate replaces the one used longest ago.
    let mut cache = CertCache::new(4);
    let mut look = |i: usize| {
        let der = &certs[i];
        let before = cache.hits().0;
        let got = *cache.parse_for_host(der, &sha1_of(der), None).unwrap();
        assert_eq!(got, CertInfo::from_der(der).unwrap());
        cache.hits().0 > before
    };
    for i in 0..4 {
        assert!(!look(i));
    }
    assert!(
        look(0),
        "certificate 0 is remembered and now the most recently used"
    );
    assert!(!look(4), "evicts certificate 1");
    assert!(look(0));
    assert!(look(2));
    assert!(!look(1), "certificate 1 was evicted");
    // A disabled cache parses every time.
    let mut off = CertCache::new(0);
    let der = &certs[0];
    for _ in 0..2 {
        assert_eq!(
            *off.parse_for_host(der, &sha1_of(der), None).unwrap(),
            CertInfo::from_der(der).unwrap()
        );
    }
    assert_eq!(off.hits().0, 0);
}

#[test]
fn remembered_sha1_only_for_the_same_der() {
    let certs = cache_test_certificates();
    let mut cache = CertCache::new(CERT_CACHE_ENTRIES);
    for der in &certs {
        assert_eq!(cache.remembered_sha1(der), None);
    }
    for der in &certs {
        cache.parse_for_host(der, &sha1_of(der), None).unwrap();
    }
    for der in &certs {
        assert_eq!(cache.remembered_sha1(der), Some(sha1_of(der)));
    }
    // Same length and last bytes (the same set), one byte different: not remembered.
    let mut other = certs[0].clone();
    other[20] ^= 1;
    assert_eq!(cache.remembered_sha1(&other), None);
    assert_eq!(CertCache::new(0).remembered_sha1(&certs[0]), None);
}
