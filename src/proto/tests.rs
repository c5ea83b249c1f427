use super::samples::{self, Sample};
use super::*;

/// Tiny deterministic generator so random tests are reproducible.
struct XorShift(u64);
impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

fn protos() -> impl Iterator<Item = AppProto> {
    AppProto::ALL
        .into_iter()
        .filter(|p| *p != AppProto::Unknown)
}

#[test]
fn every_sample_is_its_own_protocol_and_no_other() {
    let mut failures = Vec::new();
    let mut table = String::new();
    for Sample {
        name,
        proto,
        dir,
        bytes,
    } in samples::all()
    {
        let got = identify(&bytes, dir);
        table.push_str(&format!("{name:40} {got:?}\n"));
        match got {
            Probe::Match(p, c) if p == proto && c >= 45 => {}
            other => failures.push(format!("{name}: expected {proto:?}, got {other:?}")),
        }
        for other in protos().filter(|p| *p != proto) {
            if let Step::Match(c) = probe_as(other, &bytes).step {
                failures.push(format!("{name}: the {other:?} probe also matched ({c})"));
            }
        }
        // A tap with swapped roles still identifies, with no more confidence.
        match (identify(&bytes, dir.reverse()), got) {
            (Probe::Match(p, c), Probe::Match(_, c0)) if p == proto && c <= c0 => {}
            (swapped, _) => failures.push(format!("{name}: reversed gave {swapped:?}")),
        }
    }
    println!("{table}");
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn the_expected_confidences_hold() {
    use AppProto::*;
    let conf = |name: &str| {
        let s = samples::all().into_iter().find(|s| s.name == name).unwrap();
        match identify(&s.bytes, s.dir) {
            Probe::Match(p, c) => (p, c),
            other => panic!("{name}: {other:?}"),
        }
    };
    assert_eq!(conf("tls client hello (curl)"), (Tls, 98));
    assert_eq!(conf("tls 1.3 server hello (openssl)"), (Tls, 97));
    assert_eq!(conf("sslv2 client hello"), (Tls, 90));
    assert_eq!(conf("http request (curl)"), (Http, 95));
    assert_eq!(conf("http unknown method"), (Http, 65));
    assert_eq!(conf("http missing version"), (Http, 55));
    assert_eq!(conf("smtp greeting"), (Smtp, 90));
    assert_eq!(conf("ftp greeting (vsftpd)"), (Ftp, 90));
    assert_eq!(conf("rdp connection request"), (Rdp, 97));
    assert_eq!(conf("dns query"), (Dns, 92));
    assert_eq!(conf("openvpn client reset tls-auth"), (OpenVpn, 94));
    assert_eq!(conf("socks4 reply"), (Socks4, 50));
}

#[test]
fn truncated_prefixes_never_give_a_wrong_answer() {
    let mut failures = Vec::new();
    for s in samples::all() {
        for n in 0..s.bytes.len() {
            let prefix = &s.bytes[..n];
            match identify(prefix, s.dir) {
                Probe::NeedMore => {}
                Probe::Match(p, _) if p == s.proto => {}
                other => failures.push(format!("{} [..{n}]: {other:?}", s.name)),
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tls_confidence_grows_with_the_structure_seen() {
    let ch = samples::hex(samples::TLS_CLIENT_HELLO_OPENSSL);
    let lead = |n: usize| identify_detail(&ch[..n], Dir::ToServer);
    assert_eq!(lead(2).probe, Probe::NeedMore);
    assert_eq!(lead(2).leading, Some((AppProto::Tls, 40)));
    assert_eq!(lead(5).leading, Some((AppProto::Tls, 50)));
    assert_eq!(lead(6).leading, Some((AppProto::Tls, 70)));
    assert_eq!(lead(44).leading, Some((AppProto::Tls, 85)));
    assert_eq!(lead(ch.len()).probe, Probe::Match(AppProto::Tls, 98));
}

#[test]
fn random_bytes_are_overwhelmingly_no_match() {
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let rounds = 20_000;
    let mut matched = 0usize;
    let mut pending = 0usize;
    for i in 0..rounds {
        let len = 1 + (rng.next() % 1400) as usize;
        let data = rng.bytes(len);
        let dir = if i % 2 == 0 {
            Dir::ToServer
        } else {
            Dir::ToClient
        };
        match identify_dir(&data, dir, DEFAULT_BYTE_LIMIT, true).probe {
            Probe::Match(..) => matched += 1,
            Probe::NeedMore => pending += 1,
            Probe::NoMatch => {}
        }
    }
    println!("random: {matched} of {rounds} matched");
    assert_eq!(pending, 0, "a finished stream is always decided");
    // Short buffers can look like a SOCKS reply or a lone TLS record by chance.
    assert!(
        matched * 1000 < rounds,
        "{matched} of {rounds} random buffers matched"
    );
}

#[test]
fn garbage_after_real_openers_never_panics() {
    let mut rng = XorShift(42);
    for s in samples::all() {
        for _ in 0..200 {
            let keep = (rng.next() as usize) % (s.bytes.len() + 1);
            let mut data = s.bytes[..keep].to_vec();
            let tail = (rng.next() % 300) as usize;
            data.extend(rng.bytes(tail));
            // Flip a few bytes inside the kept part too.
            for _ in 0..(rng.next() % 3) {
                if !data.is_empty() {
                    let at = (rng.next() as usize) % data.len();
                    data[at] = rng.next() as u8;
                }
            }
            for n in [data.len(), data.len() / 2, 1.min(data.len())] {
                let d = &data[..n];
                let _ = identify(d, Dir::ToServer);
                let _ = identify(d, Dir::ToClient);
                let _ = http::parse_head(d);
                let _ = ssh::parse_banner(d, Dir::ToClient);
                let _ = ByteStats::of(d);
            }
        }
    }
}

#[test]
fn ambiguous_openers_get_low_confidence_and_ftp_first() {
    let d = identify_detail(b"220 Service ready\r\n", Dir::ToClient);
    assert_eq!(d.probe, Probe::Match(AppProto::Ftp, 30));
    assert_eq!(d.contenders, 2, "SMTP matched as well");
    let d = identify_detail(b"USER anonymous\r\n", Dir::ToServer);
    assert_eq!(d.probe, Probe::Match(AppProto::Ftp, 45));
    assert_eq!(d.contenders, 2, "POP3 matched as well");
    // IRC's four-argument USER is neither.
    assert_eq!(
        identify(
            b"USER guest 0 * :Real Name\r\nNICK guest\r\n",
            Dir::ToServer
        ),
        Probe::NoMatch
    );
    // A "220" line still arriving is undecided, not a guess.
    assert_eq!(identify(b"220 mail.exa", Dir::ToClient), Probe::NeedMore);
}

#[test]
fn resolve_flags_protocol_mismatches() {
    use AppProto::*;
    // An HTTP client talking to an SSH server (suricata-verify output-eve-anomaly-02).
    let ts = identify(
        b"GET / HTTP/1.1\r\nHost: 10.16.1.1:22\r\n\r\n",
        Dir::ToServer,
    );
    let tc = identify(
        b"SSH-2.0-OpenSSH_6.6.1\r\nProtocol mismatch.\n",
        Dir::ToClient,
    );
    let f = resolve(ts, tc);
    assert_eq!(
        (f.app_proto, f.app_proto_ts, f.app_proto_tc),
        (Http, Http, Ssh)
    );
    assert!(f.mismatch);
    // A ClientHello answered by an SMTP banner (suricata-verify smtp-tls-protodetect).
    let ch = samples::hex(samples::TLS_CLIENT_HELLO_CURL);
    let ts = identify(&ch, Dir::ToServer);
    let tc = identify(b"220 poczta.example.pl ESMTP\r\n", Dir::ToClient);
    let f = resolve(ts, tc);
    assert_eq!((f.app_proto, f.app_proto_tc), (Tls, Smtp));
    assert!(f.mismatch);
}

#[test]
fn resolve_reconciles_consistent_and_shared_forms() {
    use AppProto::*;
    let m = |p, c| Probe::Match(p, c);
    // Unknown method answered by a real response: HTTP, consistent.
    let f = resolve(m(Http, 65), m(Http, 95));
    assert_eq!((f.app_proto, f.confidence, f.mismatch), (Http, 95, false));
    // An ambiguous "220" answered by EHLO is SMTP on both sides.
    let tc = identify(b"220 Service ready\r\n", Dir::ToClient);
    let ts = identify(b"EHLO client.example\r\n", Dir::ToServer);
    let f = resolve(ts, tc);
    assert_eq!(
        (f.app_proto, f.app_proto_ts, f.app_proto_tc),
        (Smtp, Smtp, Smtp)
    );
    assert!(!f.mismatch);
    // "USER" answered by "+OK" is POP3; by an ambiguous "220" it is FTP.
    let user = identify(b"USER bob\r\n", Dir::ToServer);
    let f = resolve(user, identify(b"+OK ready\r\n", Dir::ToClient));
    assert_eq!((f.app_proto, f.app_proto_ts), (Pop3, Pop3));
    let f = resolve(user, identify(b"220 Service ready\r\n", Dir::ToClient));
    assert_eq!(
        (f.app_proto, f.app_proto_ts, f.app_proto_tc),
        (Ftp, Ftp, Ftp)
    );
    assert!(!f.mismatch);
    // A "mail.*" host name leans to SMTP, but an FTP client's USER still wins.
    let tc = identify(b"220 mail.example.com ready\r\n", Dir::ToClient);
    assert_eq!(tc, Probe::Match(Smtp, 45));
    let f = resolve(user, tc);
    assert_eq!((f.app_proto, f.app_proto_tc, f.mismatch), (Ftp, Ftp, false));
    // A weak guess of an unrelated protocol is not relabelled, nor a mismatch.
    let f = resolve(m(Http, 95), m(Socks4, 35));
    assert_eq!(
        (f.app_proto, f.app_proto_tc, f.mismatch),
        (Http, Socks4, false)
    );
}

#[test]
fn resolve_one_sided_and_undecided() {
    use AppProto::*;
    let f = resolve(Probe::Match(Http, 55), Probe::NoMatch);
    assert_eq!((f.app_proto, f.app_proto_tc), (Http, Unknown));
    assert!(f.one_sided);
    let f = resolve(Probe::NeedMore, Probe::Match(Ssh, 97));
    assert_eq!((f.app_proto, f.app_proto_tc), (Ssh, Ssh));
    assert!(!f.one_sided, "the other side is still undecided");
    assert_eq!(
        resolve(Probe::NoMatch, Probe::NoMatch),
        FlowIdent::default()
    );
}

#[test]
fn byte_limit_settles_undecided_directions() {
    let mut long = b"GET /".to_vec();
    long.extend(std::iter::repeat_n(b'a', 6000));
    let d = identify_dir(&long, Dir::ToServer, DEFAULT_BYTE_LIMIT, false);
    assert_eq!(d.probe, Probe::Match(AppProto::Http, 40));
    assert!(d.forced);
    assert_eq!(d.bytes_seen, 4096);
    // Below the limit it keeps waiting.
    let d = identify_dir(&long[..3000], Dir::ToServer, DEFAULT_BYTE_LIMIT, false);
    assert_eq!(d.probe, Probe::NeedMore);
    assert!(!d.is_final());
    // Text no probe recognises is unknown at once, with the bytes counted.
    let d = identify_dir(b"hello world\r\n", Dir::ToServer, DEFAULT_BYTE_LIMIT, false);
    assert_eq!(
        (d.probe, d.bytes_seen, d.forced),
        (Probe::NoMatch, 13, false)
    );
    assert_eq!(d.proto(), AppProto::Unknown);
    // A stream that ends on a weak lead is unknown; on a strong one, that protocol.
    let d = identify_dir(b"\x16", Dir::ToServer, DEFAULT_BYTE_LIMIT, true);
    assert_eq!(d.probe, Probe::NoMatch);
    let d = identify_dir(b"\x16\x03\x01\x02\x00\x01", Dir::ToServer, 4096, true);
    assert_eq!(
        (d.proto(), d.confidence(), d.forced),
        (AppProto::Tls, 70, true)
    );
    // 0 means no limit.
    let d = identify_dir(&long, Dir::ToServer, 0, false);
    assert_eq!((d.probe, d.bytes_seen), (Probe::NeedMore, 6005));
    // A smaller configured limit applies.
    let d = identify_dir(&long, Dir::ToServer, 64, false);
    assert_eq!(
        (d.probe, d.bytes_seen),
        (Probe::Match(AppProto::Http, 40), 64)
    );
}

#[test]
fn direction_weighs_but_does_not_decide() {
    let ch = samples::hex(samples::TLS_CLIENT_HELLO_CURL);
    assert_eq!(
        identify(&ch, Dir::ToServer),
        Probe::Match(AppProto::Tls, 98)
    );
    assert_eq!(
        identify(&ch, Dir::ToClient),
        Probe::Match(AppProto::Tls, 78)
    );
    let banner = b"SSH-2.0-OpenSSH_9.2p1\r\n";
    assert_eq!(
        identify(banner, Dir::ToServer),
        identify(banner, Dir::ToClient)
    );
    let d = identify_detail(&ch, Dir::ToClient);
    assert_eq!(d.role, Role::Client);
}

#[test]
fn app_proto_round_trips() {
    for p in AppProto::ALL {
        assert_eq!(AppProto::from_u8(p as u8), p);
        assert_eq!(AppProto::from_name(p.name()), Some(p));
    }
    assert_eq!(AppProto::from_u8(200), AppProto::Unknown);
}
