//! The baseline's unit: a pair (whose, what kind, which value) and when it was seen, with their
//! byte encodings in the store.

use crate::capture::Timestamp;
use crate::wire::Family;

/// What kind of pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PairKind {
    ClientJa4 = 1,
    ClientService = 2,
    ServerJa3s = 3,
    ServerCert = 4,
    /// Service profiles (issue 21): what the genuine servers of a claimed service (its SNI)
    /// showed. The value starts with the SNI; the address is the server's prefix (/24, /48)
    /// for `ServicePrefix`, zero otherwise, and the port the server's.
    ServicePrefix = 5,
    ServiceJa3s = 6,
    /// TLS 1.2 and earlier: the leaf certificate's SHA-1 (TLS 1.3 encrypts it).
    ServiceCert = 7,
    /// The ALPN the server chose (visible in TLS 1.2 only; TLS 1.3 encrypts it).
    ServiceAlpn = 8,
    /// TLS 1.3: the sizes of the server's first records after the client's Finished.
    ServicePostHandshake = 9,
}

impl PairKind {
    pub const ALL: [PairKind; 9] = [
        PairKind::ClientJa4,
        PairKind::ClientService,
        PairKind::ServerJa3s,
        PairKind::ServerCert,
        PairKind::ServicePrefix,
        PairKind::ServiceJa3s,
        PairKind::ServiceCert,
        PairKind::ServiceAlpn,
        PairKind::ServicePostHandshake,
    ];

    pub fn name(self) -> &'static str {
        match self {
            PairKind::ClientJa4 => "client_ja4",
            PairKind::ClientService => "client_service",
            PairKind::ServerJa3s => "server_ja3s",
            PairKind::ServerCert => "server_cert",
            PairKind::ServicePrefix => "service_prefix",
            PairKind::ServiceJa3s => "service_ja3s",
            PairKind::ServiceCert => "service_cert",
            PairKind::ServiceAlpn => "service_alpn",
            PairKind::ServicePostHandshake => "service_post_handshake",
        }
    }

    pub fn from_name(s: &str) -> Option<PairKind> {
        PairKind::ALL.into_iter().find(|k| k.name() == s)
    }

    fn from_code(c: u8) -> Option<PairKind> {
        PairKind::ALL.into_iter().find(|k| *k as u8 == c)
    }

    /// Whose pair it is: the client's, or the server's (address and port).
    pub fn is_client(self) -> bool {
        matches!(self, PairKind::ClientJa4 | PairKind::ClientService)
    }

    /// A service profile's kind: learned per claimed service, judged by `Baseline::profile`.
    pub fn is_profile(self) -> bool {
        (self as u8) >= PairKind::ServicePrefix as u8
    }

    /// What a departure from this profile kind is called in a finding.
    pub fn profile_part(self) -> &'static str {
        match self {
            PairKind::ServicePrefix => "prefix",
            PairKind::ServiceJa3s => "ja3s",
            PairKind::ServiceCert => "certificate",
            PairKind::ServiceAlpn => "alpn",
            PairKind::ServicePostHandshake => "post_handshake",
            _ => self.name(),
        }
    }
}

impl Pair {
    /// The service a profile pair belongs to: its value up to the first space.
    pub fn service(&self) -> &str {
        self.value.split(' ').next().unwrap_or("")
    }
}

/// Longest value kept (a JA4 is 36 bytes, a colon SHA-1 59; names are cut here).
pub const MAX_VALUE: usize = 255;

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Pair {
    pub kind: PairKind,
    pub family: Family,
    pub addr: [u8; 16],
    /// The server's port for server pairs; 0 for client pairs.
    pub port: u16,
    pub value: String,
}

impl Pair {
    pub fn encode(&self) -> Vec<u8> {
        let v = self.value.as_bytes();
        let v = &v[..v.len().min(MAX_VALUE)];
        let mut out = Vec::with_capacity(20 + v.len());
        out.push(self.kind as u8);
        out.push(self.family as u8);
        out.extend_from_slice(&self.addr);
        out.extend_from_slice(&self.port.to_be_bytes());
        out.extend_from_slice(v);
        out
    }

    pub fn decode(b: &[u8]) -> Option<Pair> {
        if b.len() < 20 {
            return None;
        }
        let kind = PairKind::from_code(b[0])?;
        let family = match b[1] {
            4 => Family::V4,
            6 => Family::V6,
            _ => return None,
        };
        let addr: [u8; 16] = b[2..18].try_into().ok()?;
        let port = u16::from_be_bytes([b[18], b[19]]);
        let value = std::str::from_utf8(&b[20..]).ok()?.to_string();
        Some(Pair {
            kind,
            family,
            addr,
            port,
            value,
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Seen {
    pub first: Timestamp,
    pub last: Timestamp,
    pub count: u64,
}

impl Seen {
    pub fn encode(&self) -> [u8; 24] {
        let mut b = [0u8; 24];
        b[..8].copy_from_slice(&self.first.0.to_le_bytes());
        b[8..16].copy_from_slice(&self.last.0.to_le_bytes());
        b[16..].copy_from_slice(&self.count.to_le_bytes());
        b
    }

    pub fn decode(b: &[u8]) -> Option<Seen> {
        let b: &[u8; 24] = b.try_into().ok()?;
        let u = |r: std::ops::Range<usize>| u64::from_le_bytes(b[r].try_into().unwrap_or([0; 8]));
        Some(Seen {
            first: Timestamp(u(0..8)),
            last: Timestamp(u(8..16)),
            count: u(16..24),
        })
    }

    /// Both records of one pair as one: the earliest first, the latest last, the larger count
    /// (an import of an export into the same store must not double it).
    pub fn merge(self, other: Seen) -> Seen {
        Seen {
            first: self.first.min(other.first),
            last: self.last.max(other.last),
            count: self.count.max(other.count),
        }
    }
}
