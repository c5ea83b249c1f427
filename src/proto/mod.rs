//! Application protocol identification by content (never by port), and the per-protocol
//! parsers the checks read.
//!
//! A *probe* answers "is this mine?" over the first bytes of one direction; it is kept apart
//! from the *parse*, which only runs once a protocol has been chosen.

pub mod entropy;
pub mod fingerprint;
pub mod fixed_list;
pub mod http;
pub mod magic;
pub mod memo;
mod probes;
pub mod ssh;
pub mod summary;
pub mod tls;
pub mod websocket;
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
    /// Cleartext HTTP/2 (h2c) with prior knowledge: the client's connection preface, the
    /// server's opening SETTINGS frame. HTTP/2 inside TLS is `Tls` (ALPN says h2).
    Http2,
}

impl AppProto {
    pub const COUNT: usize = 14;

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
        AppProto::Http2,
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
            AppProto::Http2 => "http2",
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
    AppProto::Http2,
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
        AppProto::Http2 => http::probe_h2(data),
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

/// Names of the protocols a config may name (everything but `unknown`).
pub fn known_protocol_names() -> Vec<&'static str> {
    AppProto::ALL
        .iter()
        .filter(|p| **p != AppProto::Unknown)
        .map(|p| p.name())
        .collect()
}

#[cfg(test)]
mod tests;
