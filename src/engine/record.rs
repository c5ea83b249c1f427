//! What a worker reports: one record type per EVE event, built on the packet path from the
//! flow's state and sent to the writer thread, which turns them into JSON (`output::eve`).
//! They are plain data, so the engine never learns how or where they are written.

use crate::capture::Timestamp;
use crate::detect::Finding;
use crate::flow::table::TUNNELS_KEPT;
use crate::flow::Dir;
use crate::inspect::{version_name, HandshakeShape, TlsFacts};
use crate::proto::AppProto;
use crate::wire::{Family, TcpFlags, TunnelKind};

/// Who the flow's endpoints are and what it carries; shared by every record of a flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FlowMeta {
    pub flow_id: u64,
    pub family: Family,
    pub client_addr: [u8; 16],
    pub client_port: u16,
    pub server_addr: [u8; 16],
    pub server_port: u16,
    pub app_proto: AppProto,
    /// Per-direction protocols, shown as app_proto_ts / app_proto_tc when they disagree.
    pub app_ts: AppProto,
    pub app_tc: AppProto,
    /// What carried the flow: see [`Tunnels`].
    pub tunnels: Tunnels,
}

/// The encapsulations a flow was seen in (its first tunnelled packet's), outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Tunnels {
    /// `TunnelKind as u8`, 0 past the end.
    pub kinds: [u8; TUNNELS_KEPT],
    /// Number of encapsulations (may exceed the kinds kept).
    pub depth: u8,
}

impl Tunnels {
    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }

    /// The kinds kept, outermost first.
    pub fn kinds(&self) -> impl Iterator<Item = TunnelKind> + '_ {
        self.kinds.iter().filter_map(|&k| TunnelKind::from_u8(k))
    }
}

/// What the appliance did about an alert.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AlertAction {
    Allowed,
    Blocked,
}

#[derive(Debug, Clone, Copy)]
pub struct AlertRecord {
    pub ts: Timestamp,
    pub meta: FlowMeta,
    pub dir: Dir,
    pub action: AlertAction,
    pub finding: Finding,
    /// Packet number in the capture (replay only).
    pub pcap_cnt: Option<u64>,
}

#[derive(Debug, Clone, Copy)]
pub struct FlowRecord {
    pub meta: FlowMeta,
    pub start: Timestamp,
    pub end: Timestamp,
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
    pub state: &'static str,
    pub reason: &'static str,
    pub alerted: bool,
    /// Bit per finding kind raised below its alert floor: named in the record, no alert.
    pub recorded: u64,
    pub blocked: bool,
    /// Why inspection ended early, if it did (e.g. "stream_memcap").
    pub uninspected: Option<&'static str>,
    /// In-order bytes identification looked at, per direction: with `app_proto` absent, this
    /// is "unknown after N bytes".
    pub ident_bytes: [u32; 2],
    /// Set when the flow was handed to the kernel's bypass map: what the kernel forwarded
    /// without a worker (already included in `pkts` and `bytes`).
    pub bypassed: Option<KernelShare>,
}

/// Packets and bytes per direction ([`Dir::index`]) that the kernel carried on its own.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct KernelShare {
    pub pkts: [u64; 2],
    pub bytes: [u64; 2],
}

/// A protocol or stream anomaly that is not itself an alert (Suricata's `anomaly` events).
#[derive(Debug, Clone, Copy)]
pub struct AnomalyRecord {
    pub ts: Timestamp,
    pub meta: FlowMeta,
    pub dir: Dir,
    /// Suricata's anomaly layer: "stream", "proto_detect", "applayer".
    pub layer: &'static str,
    pub event: &'static str,
    pub pcap_cnt: Option<u64>,
}

/// The first packet a block verdict dropped in a flow (Suricata's `drop` events, flow start).
#[derive(Debug, Clone, Copy)]
pub struct DropRecord {
    pub ts: Timestamp,
    pub meta: FlowMeta,
    pub dir: Dir,
    pub len: u32,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub pcap_cnt: Option<u64>,
}

/// One TLS handshake, in Suricata's `tls` layout (whether or not anything was flagged), so
/// analysts can hunt on it and the fingerprints can be checked against other tools.
#[derive(Debug, Clone, Default)]
pub struct TlsRecord {
    pub sni: Option<String>,
    /// Suricata's spelling: "TLS 1.2", "TLSv1", "SSLv3", ...
    pub version: &'static str,
    pub subject: Option<String>,
    pub issuerdn: Option<String>,
    pub serial: Option<String>,
    pub fingerprint: Option<String>,
    /// Unix seconds.
    pub notbefore: Option<i64>,
    pub notafter: Option<i64>,
    pub subjectaltname: Vec<String>,
    pub ja3: Option<(String, String)>,
    pub ja3s: Option<(String, String)>,
    pub ja4: Option<String>,
    pub ja4s: Option<String>,
    pub ja3n: Option<String>,
    pub client_alpns: Vec<String>,
    pub server_alpns: Vec<String>,
    pub certificates: u16,
    pub anomalies: Vec<&'static str>,
    /// TLS 1.3: the record sizes of the protected handshake and what followed it.
    pub shape: Option<HandshakeShape>,
}

/// A TLS record with the flow it belongs to.
#[derive(Debug, Clone)]
pub struct TlsEveRecord {
    pub ts: Timestamp,
    pub meta: FlowMeta,
    pub tls: TlsRecord,
}

/// Everything a worker can send to the writer. Large, rare records are boxed so the channel's
/// preallocated slots stay small.
#[derive(Debug, Clone)]
pub enum EveRecord {
    Alert(Box<AlertRecord>),
    Flow(FlowRecord),
    Anomaly(AnomalyRecord),
    Drop(DropRecord),
    Tls(Box<TlsEveRecord>),
}

impl TlsRecord {
    /// The EVE `tls` record of this handshake.
    pub fn from_facts(facts: &TlsFacts) -> TlsRecord {
        let s = &facts.summary;
        let version = if s.server_hello_seen {
            s.negotiated_version
        } else {
            s.client_max_version
        };
        let mut r = TlsRecord {
            sni: s.has_sni.then(|| s.sni.as_str().to_string()),
            version: version_name(version, s.sslv2_hello && !s.server_hello_seen),
            ja3: facts
                .ja3
                .map(|j| (j.md5.as_str().to_string(), j.text.as_str().to_string())),
            ja3s: facts
                .ja3s
                .map(|j| (j.md5.as_str().to_string(), j.text.as_str().to_string())),
            ja4: s.ja4.map(|j| j.as_str().to_string()),
            ja4s: s.ja4s.map(|j| j.as_str().to_string()),
            ja3n: s.ja3n.map(|j| j.as_str().to_string()),
            client_alpns: facts
                .client_alpns
                .as_slice()
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            server_alpns: s
                .alpn_selected
                .iter()
                .map(|a| a.as_str().to_string())
                .collect(),
            certificates: s.certificates,
            anomalies: s
                .anomalies_client
                .union(s.anomalies_server)
                .names()
                .collect(),
            shape: (s.negotiated_version == 0x0304 && s.server_hello_seen).then_some(facts.shape),
            ..TlsRecord::default()
        };
        if let Some(c) = &facts.leaf {
            r.subject = Some(c.subject.as_str().to_string());
            r.issuerdn = Some(c.issuer.as_str().to_string());
            r.serial = Some(c.serial.as_str().to_string());
            r.fingerprint = Some(sha1_colon(&c.sha1));
            r.notbefore = Some(c.not_before);
            r.notafter = Some(c.not_after);
            r.subjectaltname = c
                .san_dns
                .as_slice()
                .iter()
                .map(|n| n.as_str().to_string())
                .collect();
        }
        r
    }
}

impl EveRecord {
    pub fn event_type(&self) -> &'static str {
        match self {
            EveRecord::Alert(_) => "alert",
            EveRecord::Flow(_) => "flow",
            EveRecord::Anomaly(_) => "anomaly",
            EveRecord::Drop(_) => "drop",
            EveRecord::Tls(_) => "tls",
        }
    }
}

fn sha1_colon(sha1: &[u8; 20]) -> String {
    // By hand rather than twenty `write!`s: this runs for every TLS record a worker sends.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(59);
    for (i, &b) in sha1.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sha1_colon_is_lowercase_hex_pairs() {
        let mut d = [0u8; 20];
        for (i, b) in d.iter_mut().enumerate() {
            *b = (i as u8).wrapping_mul(37).wrapping_add(9);
        }
        d[0] = 0;
        d[19] = 0xff;
        let want: Vec<String> = d.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(sha1_colon(&d), want.join(":"));
    }
}
