//! Application protocol identification by content (never by port), and the per-protocol
//! parsers the checks read.
//!
//! A *probe* answers "is this mine?" over the first bytes of one direction; it is kept apart
//! from the *parse*, which only runs once a protocol has been chosen.

pub mod entropy;
pub mod fingerprint;
pub mod http;
mod probes;
pub mod ssh;
pub mod tls;
pub mod x509;

use crate::flow::Dir;

pub use entropy::{printable_ratio, shannon_entropy, ByteStats};

/// Application protocols unmask can tell apart. `Unknown` until a probe matches.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
#[repr(u8)]
pub enum AppProto {
    #[default]
    Unknown = 0,
    Tls,
    Http,
    Ssh,
    Smtp,
    Pop3,
    Imap,
    Ftp,
    Rdp,
    Dns,
    Socks4,
    Socks5,
    OpenVpn,
}

impl AppProto {
    pub const COUNT: usize = 13;

    pub const ALL: [AppProto; Self::COUNT] = [
        AppProto::Unknown,
        AppProto::Tls,
        AppProto::Http,
        AppProto::Ssh,
        AppProto::Smtp,
        AppProto::Pop3,
        AppProto::Imap,
        AppProto::Ftp,
        AppProto::Rdp,
        AppProto::Dns,
        AppProto::Socks4,
        AppProto::Socks5,
        AppProto::OpenVpn,
    ];

    pub fn from_u8(v: u8) -> AppProto {
        Self::ALL
            .get(v as usize)
            .copied()
            .unwrap_or(AppProto::Unknown)
    }

    pub fn index(self) -> usize {
        self as usize
    }

    /// The name used in EVE `app_proto` (Suricata's names where Suricata has the protocol)
    /// and in config files.
    pub fn name(self) -> &'static str {
        match self {
            AppProto::Unknown => "unknown",
            AppProto::Tls => "tls",
            AppProto::Http => "http",
            AppProto::Ssh => "ssh",
            AppProto::Smtp => "smtp",
            AppProto::Pop3 => "pop3",
            AppProto::Imap => "imap",
            AppProto::Ftp => "ftp",
            AppProto::Rdp => "rdp",
            AppProto::Dns => "dns",
            AppProto::Socks4 => "socks4",
            AppProto::Socks5 => "socks5",
            AppProto::OpenVpn => "openvpn",
        }
    }

    pub fn from_name(name: &str) -> Option<AppProto> {
        Self::ALL.iter().copied().find(|p| p.name() == name)
    }
}

/// What a probe says about the bytes it was shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Probe {
    /// This protocol, with a confidence 1..=100.
    Match(AppProto, u8),
    /// Could be, but not enough bytes yet.
    NeedMore,
    /// Not this protocol (or, from [`identify`], no protocol at all).
    NoMatch,
}

/// One probe's answer, richer than [`Probe`]: a `NeedMore` carries the confidence the bytes
/// seen so far already support, so a direction that stops growing (or hits the byte limit)
/// can still be judged on its best partial evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Step {
    Match(u8),
    NeedMore(u8),
    NoMatch,
}

/// Which endpoint normally sends the form a probe recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Role {
    Client,
    Server,
    /// Both send it (SSH banners, TLS records without a hello), or nothing recognised.
    #[default]
    Either,
}

/// A probe's answer and the role of the form it recognised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Evidence {
    pub step: Step,
    pub role: Role,
}

impl Evidence {
    pub(crate) fn matched(confidence: u8, role: Role) -> Evidence {
        Evidence {
            step: Step::Match(confidence.clamp(1, 100)),
            role,
        }
    }
    pub(crate) fn need(tentative: u8, role: Role) -> Evidence {
        Evidence {
            step: Step::NeedMore(tentative.min(100)),
            role,
        }
    }
    pub(crate) fn no() -> Evidence {
        Evidence {
            step: Step::NoMatch,
            role: Role::Either,
        }
    }
}

/// Default number of bytes per direction after which an undecided direction is Unknown.
pub const DEFAULT_BYTE_LIMIT: usize = 4096;

/// A probe's confidence is scaled by this (as a fraction of 5) when its form came from the
/// endpoint that does not normally send it: a tap with swapped roles still identifies, but
/// the evidence counts for less.
const WRONG_DIRECTION_FIFTHS: u16 = 4;

/// Partial evidence below this does not become a match when a direction stops undecided.
const FALLBACK_MIN: u8 = 25;

/// Order in which probes run. Ties go to the earlier entry, and FTP sits before SMTP and
/// POP3 on purpose: the forms they share ("220 ..." greetings, "USER name") then name FTP,
/// which [`resolve`] can reconcile with either partner.
const PROBE_ORDER: [AppProto; AppProto::COUNT - 1] = [
    AppProto::Tls,
    AppProto::Http,
    AppProto::Ssh,
    AppProto::Ftp,
    AppProto::Smtp,
    AppProto::Pop3,
    AppProto::Imap,
    AppProto::Rdp,
    AppProto::Dns,
    AppProto::Socks4,
    AppProto::Socks5,
    AppProto::OpenVpn,
];

/// Runs the probe of one protocol alone, without weighing direction. `Unknown` never matches.
pub fn probe_as(proto: AppProto, data: &[u8]) -> Evidence {
    match proto {
        AppProto::Unknown => Evidence::no(),
        AppProto::Tls => probes::tls(data),
        AppProto::Http => http::probe(data),
        AppProto::Ssh => ssh::probe(data),
        AppProto::Smtp => probes::smtp(data),
        AppProto::Pop3 => probes::pop3(data),
        AppProto::Imap => probes::imap(data),
        AppProto::Ftp => probes::ftp(data),
        AppProto::Rdp => probes::rdp(data),
        AppProto::Dns => probes::dns(data),
        AppProto::Socks4 => probes::socks4(data),
        AppProto::Socks5 => probes::socks5(data),
        AppProto::OpenVpn => probes::openvpn(data),
    }
}

/// Scales a probe's confidence down when the form came from the other endpoint.
fn weigh(ev: Evidence, dir: Dir) -> Step {
    let against = matches!(
        (ev.role, dir),
        (Role::Client, Dir::ToClient) | (Role::Server, Dir::ToServer)
    );
    let scale = |c: u8| -> u8 {
        if against {
            // c <= 100, so the product fits a u16 and the quotient a u8.
            u8::try_from(u16::from(c) * WRONG_DIRECTION_FIFTHS / 5).unwrap_or(c)
        } else {
            c
        }
    };
    match ev.step {
        Step::Match(c) => Step::Match(scale(c).max(1)),
        Step::NeedMore(c) => Step::NeedMore(scale(c)),
        Step::NoMatch => Step::NoMatch,
    }
}

/// All probes' verdict over one direction's prefix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Identification {
    /// `Match` when a probe is at least as confident as any still-waiting probe could
    /// already claim; `NeedMore` while one could still win; `NoMatch` when none can.
    pub probe: Probe,
    /// While `NeedMore`: the strongest evidence so far (a weak match or a waiting probe's
    /// partial evidence). Equal to the match when `probe` is `Match`.
    pub leading: Option<(AppProto, u8)>,
    /// Role of the form behind `leading` (who normally sends it).
    pub role: Role,
    /// How many probes matched with a confidence within 10 of the winner (1 = unambiguous).
    pub contenders: u8,
}

/// Runs every probe over `data` (the first in-order bytes of one direction) and weighs the
/// answers by direction.
pub fn identify_detail(data: &[u8], dir: Dir) -> Identification {
    let mut best_match: Option<(AppProto, u8, Role)> = None;
    let mut best_pending: Option<(AppProto, u8, Role)> = None;
    let mut any_pending = false;
    let mut matches = [0u8; AppProto::COUNT];
    for proto in PROBE_ORDER {
        let ev = probe_as(proto, data);
        match weigh(ev, dir) {
            Step::Match(c) => {
                if let Some(slot) = matches.get_mut(proto.index()) {
                    *slot = c;
                }
                if best_match.is_none_or(|(_, b, _)| c > b) {
                    best_match = Some((proto, c, ev.role));
                }
            }
            Step::NeedMore(c) => {
                any_pending = true;
                if best_pending.is_none_or(|(_, b, _)| c > b) {
                    best_pending = Some((proto, c, ev.role));
                }
            }
            Step::NoMatch => {}
        }
    }
    let pending_conf = best_pending.map_or(0, |(_, c, _)| c);
    match best_match {
        Some((proto, c, role)) if !any_pending || c >= pending_conf => {
            let contenders = matches
                .iter()
                .filter(|&&m| m > 0 && m.saturating_add(10) >= c)
                .count();
            Identification {
                probe: Probe::Match(proto, c),
                leading: Some((proto, c)),
                role,
                contenders: u8::try_from(contenders).unwrap_or(u8::MAX),
            }
        }
        _ if any_pending => {
            let lead = match (best_match, best_pending) {
                (Some(m), Some(p)) if m.1 >= p.1 => Some(m),
                (_, Some(p)) if p.1 > 0 => Some(p),
                (m, _) => m,
            };
            Identification {
                probe: Probe::NeedMore,
                leading: lead.map(|(p, c, _)| (p, c)),
                role: lead.map_or(Role::Either, |(_, _, r)| r),
                contenders: 0,
            }
        }
        _ => Identification {
            probe: Probe::NoMatch,
            leading: None,
            role: Role::Either,
            contenders: 0,
        },
    }
}

/// Runs every probe over the first in-order bytes of one direction and returns the most
/// confident match; `NeedMore` while any probe still could match; `NoMatch` when none can.
pub fn identify(data: &[u8], dir: Dir) -> Probe {
    identify_detail(data, dir).probe
}

/// Identification of one direction with the byte limit applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DirIdent {
    /// `Match` or `NoMatch` are final; `NeedMore` means call again with more bytes.
    pub probe: Probe,
    /// Bytes the probes looked at (at most the limit): "unknown with N bytes seen".
    pub bytes_seen: u32,
    /// Decided on partial evidence because the limit was reached or the stream ended.
    pub forced: bool,
    pub role: Role,
}

impl Default for DirIdent {
    /// Nothing seen yet: still probing.
    fn default() -> Self {
        DirIdent {
            probe: Probe::NeedMore,
            bytes_seen: 0,
            forced: false,
            role: Role::Either,
        }
    }
}

impl DirIdent {
    pub fn proto(&self) -> AppProto {
        match self.probe {
            Probe::Match(p, _) => p,
            _ => AppProto::Unknown,
        }
    }

    pub fn confidence(&self) -> u8 {
        match self.probe {
            Probe::Match(_, c) => c,
            _ => 0,
        }
    }

    pub fn is_final(&self) -> bool {
        self.probe != Probe::NeedMore
    }
}

/// [`identify`] with the per-direction byte limit: the probes see at most `byte_limit`
/// bytes (0 = no limit), and once that many arrived, or the stream ended (`stream_ended`),
/// an undecided direction is settled on its partial evidence, or Unknown (`NoMatch`) when
/// there is too little of it.
pub fn identify_dir(data: &[u8], dir: Dir, byte_limit: usize, stream_ended: bool) -> DirIdent {
    // 0 means no limit: the direction is judged on everything it sends.
    let byte_limit = if byte_limit == 0 {
        usize::MAX
    } else {
        byte_limit
    };
    let view = data.get(..byte_limit.min(data.len())).unwrap_or(data);
    let id = identify_detail(view, dir);
    let bytes_seen = u32::try_from(view.len()).unwrap_or(u32::MAX);
    let exhausted = stream_ended || view.len() >= byte_limit;
    if id.probe != Probe::NeedMore || !exhausted {
        return DirIdent {
            probe: id.probe,
            bytes_seen,
            forced: false,
            role: id.role,
        };
    }
    let probe = match id.leading {
        Some((proto, c)) if c >= FALLBACK_MIN => Probe::Match(proto, c),
        _ => Probe::NoMatch,
    };
    DirIdent {
        probe,
        bytes_seen,
        forced: true,
        role: id.role,
    }
}

/// Below this confidence a direction's label is a guess that the other direction may
/// overrule; at or above it, two different labels are a protocol mismatch.
pub const MISMATCH_MIN: u8 = 50;

/// The flow-level outcome of both directions' identification.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FlowIdent {
    /// The flow's protocol: the to-server protocol when known (as Suricata reports it),
    /// else the to-client one.
    pub app_proto: AppProto,
    /// Per-direction protocol after reconciliation (a weak shared-form guess takes the other
    /// direction's label).
    pub app_proto_ts: AppProto,
    pub app_proto_tc: AppProto,
    /// Confidence behind `app_proto`.
    pub confidence: u8,
    /// Both directions identified, confidently, as different protocols.
    pub mismatch: bool,
    /// One direction identified and the other finally unknown.
    pub one_sided: bool,
}

/// Pairs of protocols with an opening form in common: "220 ..." (SMTP, FTP) and
/// "USER name" (POP3, FTP).
fn shares_form(a: AppProto, b: AppProto) -> bool {
    matches!(
        (a, b),
        (AppProto::Smtp, AppProto::Ftp)
            | (AppProto::Ftp, AppProto::Smtp)
            | (AppProto::Pop3, AppProto::Ftp)
            | (AppProto::Ftp, AppProto::Pop3)
    )
}

/// Combines both directions' results into the flow's protocol and a consistency verdict.
/// `NeedMore` on a side means undecided (no verdict on consistency yet).
pub fn resolve(to_server: Probe, to_client: Probe) -> FlowIdent {
    let side = |p: Probe| match p {
        Probe::Match(proto, c) => Some((proto, c)),
        _ => None,
    };
    match (side(to_server), side(to_client)) {
        (None, None) => FlowIdent::default(),
        (Some((ts, c)), None) => FlowIdent {
            app_proto: ts,
            app_proto_ts: ts,
            confidence: c,
            one_sided: to_client == Probe::NoMatch,
            ..FlowIdent::default()
        },
        (None, Some((tc, c))) => FlowIdent {
            app_proto: tc,
            app_proto_tc: tc,
            confidence: c,
            one_sided: to_server == Probe::NoMatch,
            ..FlowIdent::default()
        },
        (Some((ts, cs)), Some((tc, cc))) if ts == tc => FlowIdent {
            app_proto: ts,
            app_proto_ts: ts,
            app_proto_tc: tc,
            confidence: cs.max(cc),
            ..FlowIdent::default()
        },
        (Some((ts, cs)), Some((tc, cc))) => {
            if cs >= MISMATCH_MIN && cc >= MISMATCH_MIN {
                return FlowIdent {
                    app_proto: ts,
                    app_proto_ts: ts,
                    app_proto_tc: tc,
                    confidence: cs,
                    mismatch: true,
                    one_sided: false,
                };
            }
            // At least one side is a guess: the stronger side names the flow, and a weak
            // guess from a shared form takes its label.
            let (winner, conf) = if cs >= cc { (ts, cs) } else { (tc, cc) };
            let relabel = |p: AppProto, c: u8| {
                if p != winner && c < MISMATCH_MIN && shares_form(p, winner) {
                    winner
                } else {
                    p
                }
            };
            FlowIdent {
                app_proto: winner,
                app_proto_ts: relabel(ts, cs),
                app_proto_tc: relabel(tc, cc),
                confidence: conf,
                mismatch: false,
                one_sided: false,
            }
        }
    }
}

#[cfg(test)]
mod samples;

#[cfg(test)]
mod tests {
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
}
