//! What a worker reports: one record type per EVE event, built on the packet path from the
//! flow's state and sent to the writer thread, which turns them into JSON (`output::eve`).
//! They are plain data, so the engine never learns how or where they are written.

use crossbeam_channel::{Receiver, Sender};

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
        let mut r = TlsRecord::default();
        r.fill_from(facts, &mut SpareStrings::none());
        r
    }

    /// Makes this record the one [`TlsRecord::from_facts`] would build, reusing its strings'
    /// buffers (and `spare`'s, and giving `spare` the ones it no longer needs), so a worker
    /// refilling records the writer gave back allocates nothing once warm.
    pub fn fill_from(&mut self, facts: &TlsFacts, spare: &mut SpareStrings) {
        let s = &facts.summary;
        let version = if s.server_hello_seen {
            s.negotiated_version
        } else {
            s.client_max_version
        };
        // Destructured so that a field added to the record cannot be left stale here.
        let TlsRecord {
            sni,
            version: version_field,
            subject,
            issuerdn,
            serial,
            fingerprint,
            notbefore,
            notafter,
            subjectaltname,
            ja3,
            ja3s,
            ja4,
            ja4s,
            ja3n,
            client_alpns,
            server_alpns,
            certificates,
            anomalies,
            shape,
        } = self;
        spare.set(Role::Sni, sni, s.has_sni.then(|| s.sni.as_str()));
        *version_field = version_name(version, s.sslv2_hello && !s.server_hello_seen);
        spare.set_pair(
            [Role::Ja3Hash, Role::Ja3Text],
            ja3,
            facts
                .ja3
                .as_ref()
                .map(|j| (j.md5.as_str(), j.text.as_str())),
        );
        spare.set_pair(
            [Role::Ja3sHash, Role::Ja3sText],
            ja3s,
            facts
                .ja3s
                .as_ref()
                .map(|j| (j.md5.as_str(), j.text.as_str())),
        );
        spare.set(Role::Ja4, ja4, s.ja4.as_ref().map(|j| j.as_str()));
        spare.set(Role::Ja4s, ja4s, s.ja4s.as_ref().map(|j| j.as_str()));
        spare.set(Role::Ja3n, ja3n, s.ja3n.as_ref().map(|j| j.as_str()));
        spare.set_list(
            Role::ClientAlpn,
            client_alpns,
            facts.client_alpns.as_slice().iter().map(|a| a.as_str()),
        );
        spare.set_list(
            Role::ServerAlpn,
            server_alpns,
            s.alpn_selected.iter().map(|a| a.as_str()),
        );
        *certificates = s.certificates;
        anomalies.clear();
        anomalies.extend(s.anomalies_client.union(s.anomalies_server).names());
        *shape = (s.negotiated_version == 0x0304 && s.server_hello_seen).then_some(facts.shape);
        let leaf = facts.leaf.as_ref();
        spare.set(Role::Subject, subject, leaf.map(|c| c.subject.as_str()));
        spare.set(Role::Issuer, issuerdn, leaf.map(|c| c.issuer.as_str()));
        spare.set(Role::Serial, serial, leaf.map(|c| c.serial.as_str()));
        match leaf {
            Some(c) => sha1_colon_into(
                &c.sha1,
                fingerprint.get_or_insert_with(|| spare.take(Role::Fingerprint)),
            ),
            None => spare.set(Role::Fingerprint, fingerprint, None),
        }
        *notbefore = leaf.map(|c| c.not_before);
        *notafter = leaf.map(|c| c.not_after);
        spare.set_list(
            Role::San,
            subjectaltname,
            leaf.into_iter()
                .flat_map(|c| c.san_dns.as_slice().iter().map(|n| n.as_str())),
        );
    }
}

/// Which field a string serves: spare strings are kept per field, so a buffer goes back to
/// the same kind of text and its capacity already fits (a SAN's buffer handed to a JA3 string
/// grew again, reallocating on every other record).
#[derive(Debug, Clone, Copy)]
enum Role {
    Sni,
    Ja3Hash,
    Ja3Text,
    Ja3sHash,
    Ja3sText,
    Ja4,
    Ja4s,
    Ja3n,
    ClientAlpn,
    ServerAlpn,
    Subject,
    Issuer,
    Serial,
    Fingerprint,
    San,
}

const ROLES: usize = Role::San as usize + 1;

/// Emptied strings kept for the next record that needs one: a field that is absent in one TLS
/// record and present in the next (a TLS 1.3 handshake has no certificate to show, the next
/// TLS 1.2 one has) takes a buffer from here instead of the allocator. Bounded: the capacity
/// per field is fixed when it is made, and strings beyond it are freed.
#[derive(Debug, Default)]
pub struct SpareStrings {
    kept: [Vec<String>; ROLES],
}

impl SpareStrings {
    /// Room for `n` strings per field, allocated now.
    pub fn with_capacity(n: usize) -> SpareStrings {
        SpareStrings {
            kept: std::array::from_fn(|_| Vec::with_capacity(n)),
        }
    }

    /// Keeps nothing (records built once, not refilled).
    pub fn none() -> SpareStrings {
        SpareStrings::default()
    }

    fn take(&mut self, role: Role) -> String {
        self.kept
            .get_mut(role as usize)
            .and_then(Vec::pop)
            .unwrap_or_default()
    }

    fn give(&mut self, role: Role, mut s: String) {
        if let Some(kept) = self.kept.get_mut(role as usize) {
            if kept.len() < kept.capacity() && s.capacity() > 0 {
                s.clear();
                kept.push(s);
            }
        }
    }

    fn set(&mut self, role: Role, slot: &mut Option<String>, value: Option<&str>) {
        match value {
            Some(v) => {
                let s = slot.get_or_insert_with(|| self.take(role));
                s.clear();
                s.push_str(v);
            }
            None => {
                if let Some(old) = slot.take() {
                    self.give(role, old);
                }
            }
        }
    }

    fn set_pair(
        &mut self,
        [role_a, role_b]: [Role; 2],
        slot: &mut Option<(String, String)>,
        value: Option<(&str, &str)>,
    ) {
        match value {
            Some((a, b)) => {
                let (sa, sb) = slot.get_or_insert_with(|| (self.take(role_a), self.take(role_b)));
                sa.clear();
                sa.push_str(a);
                sb.clear();
                sb.push_str(b);
            }
            None => {
                if let Some((a, b)) = slot.take() {
                    self.give(role_a, a);
                    self.give(role_b, b);
                }
            }
        }
    }

    fn set_list<'a>(
        &mut self,
        role: Role,
        list: &mut Vec<String>,
        values: impl Iterator<Item = &'a str>,
    ) {
        let mut n = 0;
        for v in values {
            match list.get_mut(n) {
                Some(s) => s.clear(),
                None => list.push(self.take(role)),
            }
            if let Some(s) = list.get_mut(n) {
                s.push_str(v);
            }
            n += 1;
        }
        while list.len() > n {
            if let Some(s) = list.pop() {
                self.give(role, s);
            }
        }
    }
}

/// Record boxes go back from the EVE writer to the workers once written, so a worker refills a
/// box (and the strings in it) instead of allocating one, and the writer frees nothing. Besides
/// the two mallocs and frees per record, this keeps glibc's malloc from locking the worker's
/// arena from the writer thread, which freed what the worker had allocated.
///
/// The writer's side: gives written records back.
#[derive(Debug, Clone)]
pub struct RecordReturn {
    alerts: Sender<Box<AlertRecord>>,
    tls: Sender<Box<TlsEveRecord>>,
}

/// The workers' side: boxes to refill. Every worker of one writer may hold a clone.
#[derive(Debug, Clone)]
pub struct Recycled {
    alerts: Receiver<Box<AlertRecord>>,
    tls: Receiver<Box<TlsEveRecord>>,
}

/// A return path keeping up to `capacity` boxes of each boxed kind; boxes beyond it are freed
/// where they are (the writer's side, when the workers do not take them back fast enough).
pub fn record_recycling(capacity: usize) -> (RecordReturn, Recycled) {
    let (alerts_tx, alerts_rx) = crossbeam_channel::bounded(capacity);
    let (tls_tx, tls_rx) = crossbeam_channel::bounded(capacity);
    (
        RecordReturn {
            alerts: alerts_tx,
            tls: tls_tx,
        },
        Recycled {
            alerts: alerts_rx,
            tls: tls_rx,
        },
    )
}

impl RecordReturn {
    /// Hands a written record's box back; records without one are dropped.
    pub fn give_back(&self, rec: EveRecord) {
        match rec {
            EveRecord::Alert(b) => {
                let _ = self.alerts.try_send(b);
            }
            EveRecord::Tls(b) => {
                let _ = self.tls.try_send(b);
            }
            EveRecord::Flow(_) | EveRecord::Anomaly(_) | EveRecord::Drop(_) => {}
        }
    }
}

impl Recycled {
    /// A written alert's box, if one came back.
    pub fn alert(&self) -> Option<Box<AlertRecord>> {
        self.alerts.try_recv().ok()
    }

    /// A written TLS record's box, if one came back.
    pub fn tls(&self) -> Option<Box<TlsEveRecord>> {
        self.tls.try_recv().ok()
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

#[cfg(test)]
fn sha1_colon(sha1: &[u8; 20]) -> String {
    let mut s = String::new();
    sha1_colon_into(sha1, &mut s);
    s
}

/// `sha1` as colon-separated lowercase hex pairs, into `s` (cleared first).
fn sha1_colon_into(sha1: &[u8; 20], s: &mut String) {
    // By hand rather than twenty `write!`s: this runs for every TLS record a worker sends.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    s.clear();
    s.reserve(59);
    for (i, &b) in sha1.iter().enumerate() {
        if i > 0 {
            s.push(':');
        }
        s.push(char::from(HEX[usize::from(b >> 4)]));
        s.push(char::from(HEX[usize::from(b & 0xf)]));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::inspect::LeafCert;
    use crate::proto::fingerprint::Ja3;
    use crate::proto::tls::TlsAnomaly;
    use crate::proto::x509::KeyKind;
    use crate::text::InlineStr;

    fn leaf(names: &[&str], serial: &str) -> LeafCert {
        let mut san_dns = crate::proto::fixed_list::FixedList::default();
        for n in names {
            san_dns.push(InlineStr::from_str_lossy(n));
        }
        LeafCert {
            subject: InlineStr::from_str_lossy("CN=a.example"),
            issuer: InlineStr::from_str_lossy("CN=Some CA, O=Issuer"),
            subject_cn: None,
            issuer_orgs: Default::default(),
            san_dns,
            san_dns_total: names.len() as u16,
            serial: InlineStr::from_str_lossy(serial),
            sha1: [0xa5; 20],
            not_before: 1_600_000_000,
            not_after: 1_700_000_000,
            self_signed: false,
            is_ca: false,
            key_kind: KeyKind::Rsa,
            key_bits: 2048,
            host_match: None,
        }
    }

    fn ja3(text: &str) -> Ja3 {
        Ja3 {
            text: InlineStr::from_str_lossy(text),
            md5: InlineStr::from_str_lossy("0123456789abcdef0123456789abcdef"),
            incomplete: false,
        }
    }

    /// Handshakes that differ in every field a record shows, each field present in some and
    /// absent in others, and lists of different lengths.
    fn facts_variants() -> Vec<TlsFacts> {
        let mut full = TlsFacts::default();
        let s = &mut full.summary;
        s.server_hello_seen = true;
        s.negotiated_version = 0x0304;
        s.has_sni = true;
        s.sni = InlineStr::from_str_lossy("a.example");
        s.alpn_selected = Some(InlineStr::from_str_lossy("h2"));
        s.ja3n = Some(InlineStr::from_str_lossy(
            "fedcba9876543210fedcba9876543210",
        ));
        s.ja4 = Some(InlineStr::from_str_lossy(
            "t13d1516h2_8daaf6152771_e5627efa2ab1",
        ));
        s.ja4s = Some(InlineStr::from_str_lossy("t1205h2_c02f_8763c20bf469"));
        s.certificates = 3;
        s.anomalies_client.insert(TlsAnomaly::NotTls);
        s.anomalies_server.insert(TlsAnomaly::Sslv2ClientHello);
        full.ja3 = Some(ja3("771,4865-4866,0-23-65281,29-23,0"));
        full.ja3s = Some(ja3("771,4865,43-51"));
        full.client_alpns.push(InlineStr::from_str_lossy("h2"));
        full.client_alpns
            .push(InlineStr::from_str_lossy("http/1.1"));
        full.leaf = Some(leaf(&["a.example", "b.example", "c.example"], "01:02"));

        let mut tls12 = full;
        tls12.summary.negotiated_version = 0x0303;
        tls12.summary.has_sni = false;
        tls12.ja3s = None;
        tls12.client_alpns = Default::default();
        tls12.leaf = Some(leaf(&["only.example"], "7f"));

        let mut tls13 = full;
        tls13.leaf = None;
        tls13.summary.alpn_selected = None;
        tls13.summary.anomalies_client = Default::default();
        tls13.summary.anomalies_server = Default::default();

        let mut client_only = TlsFacts::default();
        client_only.summary.client_max_version = 0x0303;
        client_only.ja3 = Some(ja3("769,47,,,"));

        vec![full, tls12, tls13, TlsFacts::default(), client_only]
    }

    #[test]
    fn a_refilled_record_is_the_one_built_fresh() {
        let variants = facts_variants();
        let mut spare = SpareStrings::with_capacity(4);
        let mut reused = TlsRecord::default();
        // Every variant after every other one, so each field goes from present to absent, from
        // absent to present and from one length to another.
        for before in &variants {
            for after in &variants {
                reused.fill_from(before, &mut spare);
                assert_eq!(
                    format!("{reused:?}"),
                    format!("{:?}", TlsRecord::from_facts(before))
                );
                reused.fill_from(after, &mut spare);
                assert_eq!(
                    format!("{reused:?}"),
                    format!("{:?}", TlsRecord::from_facts(after))
                );
            }
        }
        // Strings no field needed were kept, up to the capacity per field.
        let kept: usize = spare.kept.iter().map(Vec::len).sum();
        assert!(kept > 0 && spare.kept.iter().all(|k| k.len() <= 4));
    }

    #[test]
    fn written_boxes_come_back_to_be_refilled() {
        let (give_back, recycled) = record_recycling(1);
        assert!(recycled.tls().is_none());
        let rec = Box::new(TlsEveRecord {
            ts: Timestamp(5),
            meta: FlowMeta {
                flow_id: 1,
                family: Family::V4,
                client_addr: [0; 16],
                client_port: 1,
                server_addr: [0; 16],
                server_port: 443,
                app_proto: AppProto::Tls,
                app_ts: AppProto::Tls,
                app_tc: AppProto::Tls,
                tunnels: Tunnels::default(),
            },
            tls: TlsRecord::from_facts(&facts_variants()[0]),
        });
        give_back.give_back(EveRecord::Tls(rec.clone()));
        // Beyond the capacity, a box is freed where it is.
        give_back.give_back(EveRecord::Tls(rec));
        let back = recycled.tls().expect("the written box");
        assert_eq!(back.tls.sni.as_deref(), Some("a.example"));
        assert!(recycled.tls().is_none());
        assert!(recycled.alert().is_none());
    }

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
