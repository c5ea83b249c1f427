//! Application protocol identification by content (never by port), and the per-protocol
//! parsers the checks read.
//!
//! A *probe* answers "is this mine?" over the first bytes of one direction; it is kept apart
//! from the *parse*, which only runs once a protocol has been chosen.

pub mod fingerprint;
pub mod http;
pub mod tls;
pub mod x509;

use crate::flow::Dir;

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

/// Runs every probe over the first in-order bytes of one direction and returns the most
/// confident match; `NeedMore` while any probe still could match; `NoMatch` when none can.
pub fn identify(data: &[u8], dir: Dir) -> Probe {
    let _ = (data, dir);
    unimplemented!("probes land with the proto branch")
}
