//! EVE JSON output in Suricata's layout, written by one dedicated thread.
//!
//! Workers build fixed-size records and `try_send` them over a bounded channel; a full channel
//! drops the record and the worker counts it, so a slow disk never stalls the packet path. The
//! writer thread turns records into JSON lines. Suricata's schema forbids unknown top-level
//! keys except the one we add, `unmask`, which carries the evidence.
//!
//! What the writer derives rather than the worker (the Community ID) is computed here, so the
//! records stay small and the packet path does none of it.

use std::fmt;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::net::{Ipv4Addr, Ipv6Addr};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender};
use serde_json::{json, Map, Value};

use crate::capture::Timestamp;
use crate::config::{OutputConfig, SinkConfig};
use crate::detect::{
    FindingKind, MITRE_ANALYTIC, MITRE_TACTIC, MITRE_TECHNIQUE, MITRE_TECHNIQUE_NAME,
};
use crate::engine::record::{
    AlertAction, AlertRecord, AnomalyRecord, DropRecord, EveRecord, FlowMeta, FlowRecord,
    TlsEveRecord,
};
use crate::flow::Dir;
use crate::host::correlate::{HostAlert, Role};
use crate::host::{
    FirstSeen, HostCounts, HostLayer, HostRecord, HostSummary, HOST_ALERT_SEVERITY, HOST_ALERT_SID,
    HOST_ALERT_SIGNATURE,
};
use crate::output::community_id;
use crate::output::delivery::LineMeta;
use crate::output::sink::{Sink, SinkCounter, Sinks};
use crate::proto::AppProto;
use crate::text::{civil_from_days, TlsDate};
use crate::wire::{Family, TcpFlags};

/// Suricata's timestamp layout, always UTC: `2024-05-01T12:00:00.123456+0000`.
#[derive(Debug, Clone, Copy)]
pub struct EveTime(pub Timestamp);

impl fmt::Display for EveTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let secs = self.0.secs();
        let days = (secs / 86_400) as i64;
        let sod = secs % 86_400;
        let (y, m, d) = civil_from_days(days);
        write!(
            f,
            "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}.{:06}+0000",
            sod / 3600,
            (sod / 60) % 60,
            sod % 60,
            self.0.subsec_nanos() / 1000
        )
    }
}

/// An address as EVE prints it.
pub fn ip_string(family: Family, addr: &[u8; 16]) -> String {
    match family {
        Family::V4 => Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
        Family::V6 => Ipv6Addr::from(*addr).to_string(),
    }
}

/// What the writer adds to every record from `[output]`, beyond what the worker sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EveFormat {
    /// The Community ID seed, or `None` when `output.community_id` is off.
    pub community_id: Option<u16>,
}

impl Default for EveFormat {
    /// The defaults of `[output]`: Community ID on, seed 0 (Suricata's defaults too).
    fn default() -> Self {
        EveFormat::from_config(&OutputConfig::default())
    }
}

impl EveFormat {
    pub fn from_config(output: &OutputConfig) -> EveFormat {
        EveFormat {
            community_id: output.community_id.then_some(output.community_id_seed),
        }
    }
}

impl EveRecord {
    /// The record as one EVE JSON object.
    pub fn to_json(&self, format: &EveFormat) -> Value {
        match self {
            EveRecord::Alert(a) => alert_json(a, format),
            EveRecord::Flow(f) => flow_json(f, format),
            EveRecord::Anomaly(a) => anomaly_json(a, format),
            EveRecord::Drop(d) => drop_json(d, format),
            EveRecord::Tls(t) => tls_json(t, format),
        }
    }
}

fn dir_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

/// The common head of every record: time, flow id, type, the packet's endpoints, the flow's
/// Community ID.
fn head(
    ts: Timestamp,
    meta: &FlowMeta,
    dir: Dir,
    event_type: &str,
    format: &EveFormat,
) -> Map<String, Value> {
    let (src, sport, dst, dport) = match dir {
        Dir::ToServer => (
            &meta.client_addr,
            meta.client_port,
            &meta.server_addr,
            meta.server_port,
        ),
        Dir::ToClient => (
            &meta.server_addr,
            meta.server_port,
            &meta.client_addr,
            meta.client_port,
        ),
    };
    let mut m = Map::new();
    m.insert("timestamp".into(), EveTime(ts).to_string().into());
    m.insert("flow_id".into(), meta.flow_id.into());
    m.insert("event_type".into(), event_type.into());
    m.insert("src_ip".into(), ip_string(meta.family, src).into());
    m.insert("src_port".into(), sport.into());
    m.insert("dest_ip".into(), ip_string(meta.family, dst).into());
    m.insert("dest_port".into(), dport.into());
    m.insert("proto".into(), "TCP".into());
    m.insert("ip_v".into(), (meta.family as u8).into());
    // Where Suricata puts it: after the 5-tuple, before the event's own objects. It depends on
    // the flow only, so every record of a flow carries the same value whatever its direction.
    if let Some(seed) = format.community_id {
        let id = community_id::for_flow(seed, meta);
        m.insert("community_id".into(), id.as_str().into());
    }
    if meta.app_proto != AppProto::Unknown {
        m.insert("app_proto".into(), meta.app_proto.name().into());
    }
    if meta.app_ts != meta.app_tc
        && meta.app_ts != AppProto::Unknown
        && meta.app_tc != AppProto::Unknown
    {
        m.insert("app_proto_ts".into(), meta.app_ts.name().into());
        m.insert("app_proto_tc".into(), meta.app_tc.name().into());
    }
    if !meta.tunnels.is_empty() {
        // Suricata's object for a packet decoded out of a tunnel: `depth` is how many
        // encapsulations were opened, `pkt_src` names the innermost one as Suricata names its
        // decoders' packets ("<kind> tunnel"). The whole chain is in `unmask.tunnels`.
        let innermost = meta.tunnels.kinds().last().map_or("tunnel", |k| k.name());
        m.insert(
            "tunnel".into(),
            json!({
                "depth": meta.tunnels.depth,
                "pkt_src": format!("{innermost} tunnel"),
            }),
        );
    }
    m
}

/// The tunnel kinds that carried a flow, outermost first, for the `unmask` object.
fn tunnel_chain(meta: &FlowMeta) -> Value {
    meta.tunnels
        .kinds()
        .map(|k| k.name())
        .collect::<Vec<_>>()
        .into()
}

fn alert_json(a: &AlertRecord, format: &EveFormat) -> Value {
    let info = a.finding.kind.info();
    let mut m = head(a.ts, &a.meta, a.dir, "alert", format);
    if let Some(n) = a.pcap_cnt {
        m.insert("pcap_cnt".into(), n.into());
    }
    m.insert("direction".into(), dir_name(a.dir).into());
    m.insert(
        "alert".into(),
        json!({
            "action": match a.action { AlertAction::Allowed => "allowed", AlertAction::Blocked => "blocked" },
            "gid": 1,
            "signature_id": info.signature_id,
            "rev": 1,
            "signature": info.signature,
            "category": info.category,
            "severity": info.severity,
            "metadata": {
                "mitre_technique_id": [MITRE_TECHNIQUE],
                "mitre_technique_name": [MITRE_TECHNIQUE_NAME],
                "mitre_tactic_id": [MITRE_TACTIC],
                "det0470_tunable": [info.tunable.name()],
                "unmask_finding": [info.name],
            },
        }),
    );
    let mut evidence = Map::new();
    for (k, v) in a.finding.evidence.iter() {
        evidence.insert(k.into(), v.into());
    }
    m.insert(
        "unmask".into(),
        json!({
            "finding": info.name,
            "confidence": a.finding.confidence,
            "evidence": evidence,
            "mitre": {
                "technique_id": MITRE_TECHNIQUE,
                "technique": MITRE_TECHNIQUE_NAME,
                "tactic_id": MITRE_TACTIC,
                "analytic": MITRE_ANALYTIC,
                "tunable": info.tunable.name(),
            },
        }),
    );
    if !a.meta.tunnels.is_empty() {
        if let Some(u) = m.get_mut("unmask") {
            u["tunnels"] = tunnel_chain(&a.meta);
        }
    }
    Value::Object(m)
}

fn flow_json(f: &FlowRecord, format: &EveFormat) -> Value {
    let mut m = head(f.start, &f.meta, Dir::ToServer, "flow", format);
    // A flow record is stamped with its end, as Suricata does.
    m.insert("timestamp".into(), EveTime(f.end).to_string().into());
    let mut flow = json!({
        "pkts_toserver": f.pkts[0],
        "pkts_toclient": f.pkts[1],
        "bytes_toserver": f.bytes[0],
        "bytes_toclient": f.bytes[1],
        "start": EveTime(f.start).to_string(),
        "end": EveTime(f.end).to_string(),
        "age": f.end.since(f.start) / Timestamp::NANOS_PER_SEC,
        "state": f.state,
        "reason": f.reason,
        "alerted": f.alerted,
    });
    if f.blocked {
        flow["action"] = "drop".into();
    }
    if let Some(k) = f.bypassed {
        // Suricata's names for a flow its capture layer carried past the engine.
        flow["bypass"] = "capture".into();
        flow["bypassed"] = json!({
            "pkts_toserver": k.pkts[0],
            "pkts_toclient": k.pkts[1],
            "bytes_toserver": k.bytes[0],
            "bytes_toclient": k.bytes[1],
        });
    }
    m.insert("flow".into(), flow);
    let mut unmask = json!({
        "ident_bytes_toserver": f.ident_bytes[0],
        "ident_bytes_toclient": f.ident_bytes[1],
    });
    if let Some(why) = f.uninspected {
        unmask["uninspected"] = why.into();
    }
    if f.recorded != 0 {
        let names: Vec<&str> = FindingKind::ALL
            .iter()
            .filter(|k| f.recorded & (1u64 << k.index()) != 0)
            .map(|k| k.name())
            .collect();
        unmask["recorded_findings"] = names.into();
    }
    if !f.meta.tunnels.is_empty() {
        unmask["tunnels"] = tunnel_chain(&f.meta);
    }
    m.insert("unmask".into(), unmask);
    Value::Object(m)
}

fn anomaly_json(a: &AnomalyRecord, format: &EveFormat) -> Value {
    let mut m = head(a.ts, &a.meta, a.dir, "anomaly", format);
    if let Some(n) = a.pcap_cnt {
        m.insert("pcap_cnt".into(), n.into());
    }
    m.insert("direction".into(), dir_name(a.dir).into());
    let mut anomaly = json!({ "type": "applayer", "event": a.event, "layer": a.layer });
    if a.layer == "stream" {
        anomaly["type"] = "stream".into();
    }
    if a.meta.app_proto != AppProto::Unknown {
        anomaly["app_proto"] = a.meta.app_proto.name().into();
    }
    m.insert("anomaly".into(), anomaly);
    Value::Object(m)
}

fn drop_json(d: &DropRecord, format: &EveFormat) -> Value {
    let mut m = head(d.ts, &d.meta, d.dir, "drop", format);
    if let Some(n) = d.pcap_cnt {
        m.insert("pcap_cnt".into(), n.into());
    }
    m.insert("direction".into(), dir_name(d.dir).into());
    m.insert(
        "drop".into(),
        json!({
            "len": d.len,
            "tcpseq": d.seq,
            "tcpack": d.ack,
            "syn": d.flags.syn(),
            "ack": d.flags.ack(),
            "fin": d.flags.fin(),
            "rst": d.flags.rst(),
            "psh": d.flags.has(TcpFlags::PSH),
            "reason": "rules",
        }),
    );
    Value::Object(m)
}

fn tls_json(r: &TlsEveRecord, format: &EveFormat) -> Value {
    let t = &r.tls;
    let mut m = head(r.ts, &r.meta, Dir::ToServer, "tls", format);
    let mut tls = Map::new();
    let mut put = |k: &str, v: Value| {
        tls.insert(k.into(), v);
    };
    if let Some(v) = &t.subject {
        put("subject", v.as_str().into());
    }
    if let Some(v) = &t.issuerdn {
        put("issuerdn", v.as_str().into());
    }
    if let Some(v) = &t.serial {
        put("serial", v.as_str().into());
    }
    if let Some(v) = &t.fingerprint {
        put("fingerprint", v.as_str().into());
    }
    if let Some(v) = &t.sni {
        put("sni", v.as_str().into());
    }
    put("version", t.version.into());
    if let Some(v) = t.notbefore {
        put("notbefore", TlsDate(v).to_string().into());
    }
    if let Some(v) = t.notafter {
        put("notafter", TlsDate(v).to_string().into());
    }
    if !t.subjectaltname.is_empty() {
        put("subjectaltname", t.subjectaltname.clone().into());
    }
    if let Some((hash, string)) = &t.ja3 {
        put("ja3", json!({ "hash": hash, "string": string }));
    }
    if let Some((hash, string)) = &t.ja3s {
        put("ja3s", json!({ "hash": hash, "string": string }));
    }
    if let Some(v) = &t.ja4 {
        put("ja4", v.as_str().into());
    }
    if !t.client_alpns.is_empty() {
        put("client_alpns", t.client_alpns.clone().into());
    }
    if !t.server_alpns.is_empty() {
        put("server_alpns", t.server_alpns.clone().into());
    }
    m.insert("tls".into(), Value::Object(tls));
    let mut unmask = json!({ "certificates": t.certificates });
    if let Some(v) = &t.ja3n {
        unmask["ja3n"] = v.as_str().into();
    }
    // JA4S: Suricata's tls object has no field for it.
    if let Some(v) = &t.ja4s {
        unmask["ja4s"] = v.as_str().into();
    }
    if !t.anomalies.is_empty() {
        unmask["tls_anomalies"] = t.anomalies.clone().into();
    }
    if let Some(h) = &t.shape {
        unmask["handshake_records"] = json!({
            "server": h.server_sizes(),
            "server_count": h.server_records,
            "server_bytes": h.server_bytes,
            "client_finished": h.client_finished,
            "post_handshake": h.post_sizes(),
            "post_handshake_count": h.post_records,
            "resumed": h.psk,
        });
    }
    m.insert("unmask".into(), unmask);
    Value::Object(m)
}

impl HostRecord {
    /// The record as one EVE JSON object.
    pub fn to_json(&self, format: &EveFormat) -> Value {
        match self {
            HostRecord::Alert(a) => host_alert_json(a),
            HostRecord::FirstSeen(f) => first_seen_json(f, format),
            HostRecord::Finding(a) => alert_json(a, format),
        }
    }
}

/// A host alert in Suricata's `alert` layout. It spans flows, so it has no flow_id or port of
/// its own: the host is src_ip (a client) or dest_ip (a server), and `unmask.host` names the
/// window and every flow_id and finding that made it.
fn host_alert_json(a: &HostAlert) -> Value {
    let mut m = Map::new();
    m.insert("timestamp".into(), EveTime(a.ts).to_string().into());
    m.insert("event_type".into(), "alert".into());
    let ip = ip_string(a.host.family, &a.host.addr);
    match a.host.role {
        Role::Client => m.insert("src_ip".into(), ip.clone().into()),
        Role::Server => m.insert("dest_ip".into(), ip.clone().into()),
    };
    m.insert("proto".into(), "TCP".into());
    m.insert("ip_v".into(), (a.host.family as u8).into());
    m.insert(
        "alert".into(),
        json!({
            "action": "allowed",
            "gid": 1,
            "signature_id": HOST_ALERT_SID,
            "rev": 1,
            "signature": HOST_ALERT_SIGNATURE,
            "category": "Potentially Bad Traffic",
            "severity": HOST_ALERT_SEVERITY,
            "metadata": {
                "mitre_technique_id": [MITRE_TECHNIQUE],
                "mitre_technique_name": [MITRE_TECHNIQUE_NAME],
                "mitre_tactic_id": [MITRE_TACTIC],
                "det0470_tunable": ["TimeWindow"],
                "unmask_finding": ["host_correlation"],
            },
        }),
    );
    let contributions: Vec<Value> = a
        .contributions
        .iter()
        .map(|c| {
            json!({
                "timestamp": EveTime(c.ts).to_string(),
                "flow_id": c.flow_id,
                "finding": c.cause.name(),
                "points": c.points,
            })
        })
        .collect();
    m.insert(
        "unmask".into(),
        json!({
            "finding": "host_correlation",
            "host": {
                "ip": ip,
                "role": a.host.role.name(),
                "window_start": EveTime(a.window_start).to_string(),
                "window_end": EveTime(a.ts).to_string(),
                "window_secs": a.window_secs,
                "score": a.score,
                "threshold": a.threshold,
                "flow_ids": a.flow_ids(),
                "findings": contributions,
            },
            "mitre": {
                "technique_id": MITRE_TECHNIQUE,
                "technique": MITRE_TECHNIQUE_NAME,
                "tactic_id": MITRE_TACTIC,
                "analytic": MITRE_ANALYTIC,
                "tunable": "TimeWindow",
            },
        }),
    );
    Value::Object(m)
}

/// A pair a host showed for the first time: its own event type (as Zeek's known_* logs), with
/// the flow it was seen in, oriented client to server; what is new is under `unmask.first_seen`
/// (Suricata's schema has no place for it at the top level).
fn first_seen_json(f: &FirstSeen, format: &EveFormat) -> Value {
    let mut m = head(f.ts, &f.meta, Dir::ToServer, "first_seen", format);
    let host = if f.kind.is_client() {
        ip_string(f.meta.family, &f.meta.client_addr)
    } else {
        format!(
            "{}:{}",
            ip_string(f.meta.family, &f.meta.server_addr),
            f.meta.server_port
        )
    };
    m.insert(
        "unmask".into(),
        json!({
            "first_seen": {
                "type": f.kind.name(),
                "host": host,
                "role": if f.kind.is_client() { "client" } else { "server" },
                "value": f.value,
            },
        }),
    );
    Value::Object(m)
}

/// Where EVE records go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EveTarget {
    Stdout,
    File(PathBuf),
}

impl EveTarget {
    /// `-` means standard output, anything else a file path.
    pub fn parse(s: &str) -> EveTarget {
        if s == "-" {
            EveTarget::Stdout
        } else {
            EveTarget::File(PathBuf::from(s))
        }
    }
}

impl fmt::Display for EveTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EveTarget::Stdout => f.write_str("standard output"),
            EveTarget::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum EveError {
    #[error("{target}: cannot open the EVE output: {source}")]
    Open {
        target: String,
        #[source]
        source: io::Error,
    },
    #[error("{target}: writing EVE records failed after {written} records: {source}")]
    Write {
        target: String,
        written: u64,
        #[source]
        source: io::Error,
    },
    #[error("EVE sink {sink}: cannot create its socket or thread: {source}")]
    Sink {
        sink: String,
        #[source]
        source: io::Error,
    },
    #[error("the EVE writer thread panicked")]
    Panicked,
    #[error("{0}")]
    Store(String),
}

/// What the writer wrote, by event type.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct EveStats {
    /// Flow alerts and host alerts.
    pub alert: u64,
    pub flow: u64,
    pub anomaly: u64,
    pub drop: u64,
    pub tls: u64,
    /// Of `alert`: host alerts (the host layer's).
    pub host_alert: u64,
    pub first_seen: u64,
}

impl EveStats {
    pub fn total(&self) -> u64 {
        self.alert + self.flow + self.anomaly + self.drop + self.tls + self.first_seen
    }
}

/// What one extra sink did with the records, for the end summaries.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SinkStats {
    /// `kind:path` (redis: `redis:<address>/<command>:<key>`), as the metrics label it.
    pub sink: String,
    pub records: u64,
    pub lost: u64,
    /// Connections made after the first.
    pub reconnects: u64,
}

impl fmt::Display for SinkStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "  eve sink   {} records to {} ({} lost: peer absent, full or slow; {} reconnects)",
            self.records, self.sink, self.lost, self.reconnects
        )
    }
}

/// What the writer has written so far, readable from other threads while it runs (the
/// metrics exporter). Only the writer thread stores, once per record, off the packet path.
#[derive(Debug, Default)]
pub struct EveCounters {
    written: [AtomicU64; 7],
    /// Reopens of the file carried out (log rotation), and those whose open failed.
    reopens: AtomicU64,
    reopen_failures: AtomicU64,
    /// The host layer's counts, in `HostCounts` field order.
    host: [AtomicU64; 5],
    /// One per `[[output.sinks]]` entry, in the config's order.
    sinks: Vec<Arc<SinkCounter>>,
}

impl EveCounters {
    fn store(&self, s: &EveStats) {
        for (slot, v) in self.written.iter().zip([
            s.alert,
            s.flow,
            s.anomaly,
            s.drop,
            s.tls,
            s.host_alert,
            s.first_seen,
        ]) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    fn store_host(&self, c: &HostCounts) {
        for (slot, v) in self.host.iter().zip([
            c.hosts_refused,
            c.baseline_pairs,
            c.baseline_commits,
            c.baseline_commit_errors,
            c.baseline_refused,
        ]) {
            slot.store(v, Ordering::Relaxed);
        }
    }

    /// The host layer's counts so far (zeros without one).
    pub fn host_counts(&self) -> HostCounts {
        let [hosts_refused, baseline_pairs, baseline_commits, baseline_commit_errors, baseline_refused] =
            std::array::from_fn(|i| self.host[i].load(Ordering::Relaxed));
        HostCounts {
            hosts_refused,
            baseline_pairs,
            baseline_commits,
            baseline_commit_errors,
            baseline_refused,
        }
    }

    /// Counters for a writer with these extra sinks (labels as `SinkConfig::label`).
    pub fn with_sinks(labels: impl IntoIterator<Item = String>) -> EveCounters {
        EveCounters {
            written: Default::default(),
            reopens: AtomicU64::new(0),
            reopen_failures: AtomicU64::new(0),
            host: Default::default(),
            sinks: labels
                .into_iter()
                .map(|l| Arc::new(SinkCounter::new(l)))
                .collect(),
        }
    }

    /// Each extra sink's records sent and lost so far.
    pub fn sinks(&self) -> &[Arc<SinkCounter>] {
        &self.sinks
    }

    /// The same, as plain numbers for an end summary.
    pub fn sink_stats(&self) -> Vec<SinkStats> {
        self.sinks
            .iter()
            .map(|s| SinkStats {
                sink: s.label.clone(),
                records: s.sent(),
                lost: s.lost(),
                reconnects: s.reconnects(),
            })
            .collect()
    }

    /// Reopens of the EVE file carried out so far (`unmask ctl reopen`, SIGHUP).
    pub fn reopens(&self) -> u64 {
        self.reopens.load(Ordering::Relaxed)
    }

    /// Reopen requests whose open failed (the writer went on with the file it had).
    pub fn reopen_failures(&self) -> u64 {
        self.reopen_failures.load(Ordering::Relaxed)
    }

    pub fn snapshot(&self) -> EveStats {
        let [alert, flow, anomaly, drop, tls, host_alert, first_seen] =
            std::array::from_fn(|i| self.written[i].load(Ordering::Relaxed));
        EveStats {
            alert,
            flow,
            anomaly,
            drop,
            tls,
            host_alert,
            first_seen,
        }
    }
}

/// The writer thread. Dropping every sender ends it after it has written everything queued.
pub struct EveWriter {
    join: JoinHandle<Result<(EveStats, Option<HostSummary>), EveError>>,
    counters: Arc<EveCounters>,
    reopen: Reopen,
}

/// Asks the writer to close its file and open the path again, as logrotate's `postrotate`
/// needs: records written before the request are in the old (renamed) file, records after it
/// in the new one, none lost or written twice. A cheap clone shared with the control thread.
#[derive(Debug, Clone, Default)]
pub struct Reopen {
    inner: Arc<ReopenState>,
}

#[derive(Debug, Default)]
struct ReopenState {
    requested: AtomicU64,
    done: AtomicU64,
    failed: AtomicU64,
}

/// What became of a reopen request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReopenOutcome {
    /// The file was reopened (`n` reopens so far).
    Reopened(u64),
    /// Opening the path failed; the writer goes on with the file it had (said on stderr).
    Failed,
    /// The writer did not answer in time (it may be stuck on a slow disk).
    Pending,
    /// The output is standard output: nothing to reopen.
    NotAFile,
}

impl Reopen {
    /// Requests a reopen and waits up to `wait` for the writer to carry it out.
    pub fn request(&self, wait: Duration) -> ReopenOutcome {
        let s = &self.inner;
        let failed_before = s.failed.load(Ordering::Acquire);
        let want = s.requested.fetch_add(1, Ordering::AcqRel) + 1;
        let deadline = std::time::Instant::now() + wait;
        loop {
            let done = s.done.load(Ordering::Acquire);
            if done == u64::MAX {
                return ReopenOutcome::NotAFile;
            }
            if s.failed.load(Ordering::Acquire) != failed_before {
                return ReopenOutcome::Failed;
            }
            if done >= want {
                return ReopenOutcome::Reopened(done);
            }
            if std::time::Instant::now() >= deadline {
                return ReopenOutcome::Pending;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Reopens carried out so far.
    pub fn count(&self) -> u64 {
        let done = self.inner.done.load(Ordering::Acquire);
        if done == u64::MAX {
            0
        } else {
            done
        }
    }
}

/// How long the writer waits for more records before flushing what it has, so `tail -f`
/// readers and SIEM shippers see alerts promptly.
const FLUSH_IDLE: Duration = Duration::from_millis(200);

impl EveWriter {
    /// Opens the target now (so a bad path fails at start-up) and starts the thread. Every
    /// line also goes to each of `sinks`, after the file.
    pub fn spawn(
        target: EveTarget,
        capacity: usize,
        format: EveFormat,
        sinks: &[SinkConfig],
    ) -> Result<(Sender<EveRecord>, EveWriter), EveError> {
        Self::spawn_with_host(target, capacity, format, sinks, None)
    }

    /// [`EveWriter::spawn`], with the host layer (correlation, first-seen baseline) fed every
    /// record written and its own records written after the one that caused them.
    /// [`EveWriter::spawn_with_host`] as `[output]` says: its queue, format and sinks.
    pub fn spawn_for_output(
        target: EveTarget,
        output: &OutputConfig,
        host: Option<HostLayer>,
    ) -> Result<(Sender<EveRecord>, EveWriter), EveError> {
        Self::spawn_with_host(
            target,
            output.queue_capacity as usize,
            EveFormat::from_config(output),
            &output.sinks,
            host,
        )
    }

    pub fn spawn_with_host(
        target: EveTarget,
        capacity: usize,
        format: EveFormat,
        sinks: &[SinkConfig],
        host: Option<HostLayer>,
    ) -> Result<(Sender<EveRecord>, EveWriter), EveError> {
        let out = open_target(&target)?;
        let counters = Arc::new(EveCounters::with_sinks(sinks.iter().map(|s| s.label())));
        let mut driven = Vec::with_capacity(sinks.len());
        for (config, counter) in sinks.iter().zip(counters.sinks()) {
            let sink =
                Sink::open(config, Arc::clone(counter)).map_err(|source| EveError::Sink {
                    sink: config.label(),
                    source,
                })?;
            driven.push(sink);
        }
        let mut sinks = Sinks::new(driven);
        let (tx, rx) = crossbeam_channel::bounded(capacity);
        let live = Arc::clone(&counters);
        let reopen = Reopen::default();
        if target == EveTarget::Stdout {
            reopen.inner.done.store(u64::MAX, Ordering::Release);
        }
        let asks = reopen.clone();
        let name = target.to_string();
        let join = std::thread::Builder::new()
            .name("unmask-eve".into())
            .spawn(move || {
                let out = BufWriter::with_capacity(256 * 1024, out);
                let mut host = host;
                let result = write_loop(
                    rx,
                    out,
                    &mut sinks,
                    &target,
                    &format,
                    &live,
                    &asks,
                    host.as_mut(),
                );
                // Sinks with a thread of their own deliver what they hold before the writer
                // reports, so the end summary's counts are final.
                sinks.finish();
                let stats = result?;
                let summary = match host.as_mut().map(HostLayer::finish) {
                    Some(Ok(s)) => Some(s),
                    Some(Err(e)) => return Err(EveError::Store(e.to_string())),
                    None => None,
                };
                // The last commit shows in the metrics a lingering exporter serves.
                if let Some(h) = &host {
                    live.store_host(&h.counts());
                }
                Ok((stats, summary))
            })
            .map_err(|source| EveError::Open {
                target: name,
                source,
            })?;
        Ok((
            tx,
            EveWriter {
                join,
                counters,
                reopen,
            },
        ))
    }

    /// The handle that asks this writer to reopen its file (log rotation).
    pub fn reopen_handle(&self) -> Reopen {
        self.reopen.clone()
    }

    /// Records written so far, updated as the writer goes (for metrics).
    pub fn counters(&self) -> Arc<EveCounters> {
        Arc::clone(&self.counters)
    }

    /// Waits until every sender is gone and everything queued is written and flushed.
    pub fn finish(self) -> Result<EveStats, EveError> {
        self.finish_with_host().map(|(s, _)| s)
    }

    /// [`EveWriter::finish`], with the host layer's summary after its last commit.
    pub fn finish_with_host(self) -> Result<(EveStats, Option<HostSummary>), EveError> {
        self.join.join().map_err(|_| EveError::Panicked)?
    }
}

fn open_target(target: &EveTarget) -> Result<Box<dyn Write + Send>, EveError> {
    Ok(match target {
        EveTarget::Stdout => Box::new(io::stdout()),
        EveTarget::File(path) => Box::new(
            File::options()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|source| EveError::Open {
                    target: target.to_string(),
                    source,
                })?,
        ),
    })
}

/// How often the writer looks for a reopen request when no record arrives.
const REOPEN_CHECK: Duration = Duration::from_millis(20);

#[allow(clippy::too_many_arguments)]
fn write_loop(
    rx: Receiver<EveRecord>,
    mut out: BufWriter<Box<dyn Write + Send>>,
    sinks: &mut Sinks,
    target: &EveTarget,
    format: &EveFormat,
    live: &EveCounters,
    reopen: &Reopen,
    mut host: Option<&mut HostLayer>,
) -> Result<EveStats, EveError> {
    let mut host_records: Vec<HostRecord> = Vec::new();
    let mut store_failed = false;
    let mut stats = EveStats::default();
    let fail = |stats: &EveStats, source| EveError::Write {
        target: target.to_string(),
        written: stats.total(),
        source,
    };
    let mut served = 0u64;
    let mut idle = Duration::ZERO;
    // Each record is serialised once, here, and the same bytes go to the file and every sink.
    let mut line = Vec::with_capacity(4096);
    loop {
        let asked = reopen.inner.requested.load(Ordering::Acquire);
        if asked != served {
            served = asked;
            if let EveTarget::File(_) = target {
                // Everything written so far goes to the file being rotated away.
                out.flush().map_err(|e| fail(&stats, e))?;
                match open_target(target) {
                    Ok(fresh) => {
                        out = BufWriter::with_capacity(256 * 1024, fresh);
                        live.reopens.fetch_add(1, Ordering::Relaxed);
                        reopen.inner.done.store(asked, Ordering::Release);
                    }
                    Err(e) => {
                        eprintln!("unmask: {e}; records go on to the file already open");
                        live.reopen_failures.fetch_add(1, Ordering::Relaxed);
                        reopen.inner.failed.fetch_add(1, Ordering::AcqRel);
                    }
                }
            }
        }
        match rx.recv_timeout(REOPEN_CHECK) {
            Ok(record) => {
                line.clear();
                serde_json::to_writer(&mut line, &record.to_json(format))
                    .map_err(|e| fail(&stats, e.into()))?;
                line.push(b'\n');
                out.write_all(&line).map_err(|e| fail(&stats, e))?;
                let meta = LineMeta {
                    alert_severity: match &record {
                        EveRecord::Alert(a) => Some(a.finding.kind.info().severity),
                        _ => None,
                    },
                };
                sinks.send(&line, meta);
                match record {
                    EveRecord::Alert(_) => stats.alert += 1,
                    EveRecord::Flow(_) => stats.flow += 1,
                    EveRecord::Anomaly(_) => stats.anomaly += 1,
                    EveRecord::Drop(_) => stats.drop += 1,
                    EveRecord::Tls(_) => stats.tls += 1,
                }
                if let Some(h) = host.as_deref_mut() {
                    h.observe(&record, &mut host_records);
                    for r in host_records.drain(..) {
                        line.clear();
                        serde_json::to_writer(&mut line, &r.to_json(format))
                            .map_err(|e| fail(&stats, e.into()))?;
                        line.push(b'\n');
                        out.write_all(&line).map_err(|e| fail(&stats, e))?;
                        let meta = LineMeta {
                            alert_severity: match &r {
                                HostRecord::Alert(_) => Some(HOST_ALERT_SEVERITY),
                                HostRecord::Finding(a) => Some(a.finding.kind.info().severity),
                                HostRecord::FirstSeen(_) => None,
                            },
                        };
                        sinks.send(&line, meta);
                        match r {
                            HostRecord::Alert(_) => {
                                stats.alert += 1;
                                stats.host_alert += 1;
                            }
                            HostRecord::FirstSeen(_) => stats.first_seen += 1,
                            HostRecord::Finding(_) => stats.alert += 1,
                        }
                    }
                }
                live.store(&stats);
                if rx.is_empty() {
                    out.flush().map_err(|e| fail(&stats, e))?;
                }
            }
            Err(RecvTimeoutError::Timeout) => {
                // Flush after FLUSH_IDLE without records, as before the reopen checks.
                idle += REOPEN_CHECK;
                if idle >= FLUSH_IDLE {
                    idle = Duration::ZERO;
                    out.flush().map_err(|e| fail(&stats, e))?;
                }
            }
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if let Some(h) = host.as_deref_mut() {
            // The store commits on this thread: its cost is measured (max_commit_us) and the
            // EVE queue absorbs the pause.
            match h.tick(std::time::Instant::now()) {
                Ok(()) => store_failed = false,
                Err(e) if !store_failed => {
                    eprintln!("unmask: {e}; retrying at the next commit interval");
                    store_failed = true;
                }
                Err(_) => {}
            }
            live.store_host(&h.counts());
        }
    }
    out.flush().map_err(|e| fail(&stats, e))?;
    Ok(stats)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::{Evidence, Finding, FindingKind};

    #[test]
    fn eve_time_matches_suricata_layout() {
        // 2020-02-07T22:05:20.522725Z, from the 443-curl capture's first ClientHello.
        let ts = Timestamp::from_secs_nanos(1_581_113_120, 522_725_000);
        assert_eq!(EveTime(ts).to_string(), "2020-02-07T22:05:20.522725+0000");
        assert_eq!(
            EveTime(Timestamp(0)).to_string(),
            "1970-01-01T00:00:00.000000+0000"
        );
        // Leap day and the end of a century year that is a leap year.
        let leap = Timestamp::from_secs_nanos(951_782_400, 0);
        assert_eq!(EveTime(leap).to_string(), "2000-02-29T00:00:00.000000+0000");
    }

    fn days_in_month(y: i64, m: u32) -> u32 {
        let leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
        match m {
            2 if leap => 29,
            2 => 28,
            4 | 6 | 9 | 11 => 30,
            _ => 31,
        }
    }

    #[test]
    fn civil_dates_agree_with_a_naive_calendar_walk() {
        // Walk forward one day at a time from 1970-01-01 for about 550 years and compare.
        let (mut y, mut m, mut d) = (1970i64, 1u32, 1u32);
        for days in 0..200_000i64 {
            assert_eq!(civil_from_days(days), (y, m, d), "day {days}");
            d += 1;
            if d > days_in_month(y, m) {
                d = 1;
                m += 1;
                if m > 12 {
                    m = 1;
                    y += 1;
                }
            }
        }
    }

    fn meta() -> FlowMeta {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&[10, 0, 0, 1]);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[10, 0, 0, 2]);
        FlowMeta {
            flow_id: 42,
            family: Family::V4,
            client_addr: c,
            client_port: 50000,
            server_addr: s,
            server_port: 443,
            app_proto: AppProto::Ssh,
            app_ts: AppProto::Ssh,
            app_tc: AppProto::Ssh,
            tunnels: Default::default(),
        }
    }

    #[test]
    fn alert_json_orients_by_direction_and_carries_evidence() {
        let mut evidence = Evidence::default();
        evidence.add("protocol", "ssh");
        let rec = AlertRecord {
            ts: Timestamp::from_secs_nanos(1, 0),
            meta: meta(),
            dir: Dir::ToClient,
            action: AlertAction::Blocked,
            finding: Finding {
                kind: FindingKind::ProtocolPortMismatch,
                confidence: 90,
                block: true,
                dir: Dir::ToClient,
                evidence,
            },
            pcap_cnt: Some(7),
        };
        let v = EveRecord::Alert(Box::new(rec)).to_json(&EveFormat::default());
        assert_eq!(v["src_ip"], "10.0.0.2");
        assert_eq!(v["src_port"], 443);
        assert_eq!(v["dest_ip"], "10.0.0.1");
        assert_eq!(v["alert"]["action"], "blocked");
        assert_eq!(v["alert"]["metadata"]["mitre_technique_id"][0], "T1001.003");
        assert_eq!(v["unmask"]["evidence"]["protocol"], "ssh");
        assert_eq!(v["unmask"]["mitre"]["tunable"], "AllowedServicePorts");
        assert_eq!(v["pcap_cnt"], 7);
        // The flow's ID, not the packet's: the same as the other direction's records.
        assert_eq!(v["community_id"], "1:B4H0bMN0Rih3qr9C82AA7esBYLM=");
    }

    fn flow_record(meta: FlowMeta) -> FlowRecord {
        FlowRecord {
            meta,
            start: Timestamp(0),
            end: Timestamp(1),
            pkts: [1, 2],
            bytes: [3, 4],
            state: "closed",
            reason: "timeout",
            alerted: false,
            recorded: 0,
            blocked: false,
            uninspected: None,
            ident_bytes: [0, 0],
            bypassed: None,
        }
    }

    #[test]
    fn every_record_of_a_flow_carries_its_community_id() {
        // 10.0.0.1:50000 <-> 10.0.0.2:443 over TCP; the expected values are the reference
        // implementation's (pycommunityid 1.5) for seeds 0, 1 and 65535.
        let m = meta();
        let ts = Timestamp::from_secs_nanos(1, 0);
        let records = [
            EveRecord::Flow(flow_record(m)),
            EveRecord::Anomaly(AnomalyRecord {
                ts,
                meta: m,
                dir: Dir::ToClient,
                layer: "stream",
                event: "bad_window",
                pcap_cnt: None,
            }),
            EveRecord::Drop(DropRecord {
                ts,
                meta: m,
                dir: Dir::ToServer,
                len: 60,
                seq: 1,
                ack: 0,
                flags: TcpFlags::default(),
                pcap_cnt: None,
            }),
            EveRecord::Tls(Box::new(TlsEveRecord {
                ts,
                meta: m,
                tls: Default::default(),
            })),
        ];
        for (seed, want) in [
            (0, "1:B4H0bMN0Rih3qr9C82AA7esBYLM="),
            (1, "1:bYysHWaNq3QleSOyX7gUrmfR2po="),
            (65535, "1:yeXYaQvKqatDpcSHkonhvbDTBqA="),
        ] {
            let format = EveFormat {
                community_id: Some(seed),
            };
            for r in &records {
                let v = r.to_json(&format);
                assert_eq!(v["community_id"], want, "{} seed {seed}", r.event_type());
            }
        }
        assert_eq!(
            EveFormat::default(),
            EveFormat {
                community_id: Some(0)
            }
        );
        let off = EveFormat { community_id: None };
        for r in &records {
            let v = r.to_json(&off);
            assert!(v.get("community_id").is_none(), "{v}");
        }
    }

    #[test]
    fn community_id_follows_the_tuple_after_ip_v() {
        // Suricata writes it after the 5-tuple, before the event's own objects.
        let v = EveRecord::Flow(flow_record(meta())).to_json(&EveFormat::default());
        let keys: Vec<&str> = v.as_object().unwrap().keys().map(|k| k.as_str()).collect();
        let at = |k: &str| keys.iter().position(|x| *x == k).unwrap();
        assert_eq!(at("community_id"), at("ip_v") + 1, "{keys:?}");
        assert!(at("community_id") < at("flow"), "{keys:?}");
    }

    #[test]
    fn writer_writes_every_record_then_stops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let (tx, writer) =
            EveWriter::spawn(EveTarget::File(path.clone()), 4, EveFormat::default(), &[]).unwrap();
        for i in 0..100u64 {
            let rec = flow_record(FlowMeta {
                flow_id: i,
                ..meta()
            });
            tx.send(EveRecord::Flow(rec)).unwrap();
        }
        drop(tx);
        let stats = writer.finish().unwrap();
        assert_eq!(stats.flow, 100);
        let text = std::fs::read_to_string(&path).unwrap();
        let ids: Vec<u64> = text
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["flow_id"]
                    .as_u64()
                    .unwrap()
            })
            .collect();
        assert_eq!(ids, (0..100).collect::<Vec<_>>());
    }

    fn numbered_flow(i: u64) -> EveRecord {
        EveRecord::Flow(flow_record(FlowMeta {
            flow_id: i,
            ..meta()
        }))
    }

    fn flow_ids(path: &std::path::Path) -> Vec<u64> {
        std::fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(|l| {
                serde_json::from_str::<Value>(l).unwrap()["flow_id"]
                    .as_u64()
                    .unwrap()
            })
            .collect()
    }

    #[test]
    fn a_rotated_file_keeps_what_came_before_and_the_new_one_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let rotated = dir.path().join("eve.json.1");
        let (tx, writer) = EveWriter::spawn(
            EveTarget::File(path.clone()),
            1024,
            EveFormat::default(),
            &[],
        )
        .unwrap();
        let reopen = writer.reopen_handle();
        // A sender keeps writing while the file is renamed and reopened, as logrotate does it.
        let sender = std::thread::spawn(move || {
            for i in 0..20_000u64 {
                tx.send(numbered_flow(i)).unwrap();
            }
        });
        while writer.counters().snapshot().flow < 5_000 {
            std::thread::sleep(Duration::from_millis(1));
        }
        std::fs::rename(&path, &rotated).unwrap();
        assert_eq!(
            reopen.request(Duration::from_secs(5)),
            ReopenOutcome::Reopened(1)
        );
        let counters = writer.counters();
        assert_eq!((counters.reopens(), counters.reopen_failures()), (1, 0));
        sender.join().unwrap();
        let stats = writer.finish().unwrap();
        let (old, new) = (flow_ids(&rotated), flow_ids(&path));
        assert!(
            !old.is_empty() && !new.is_empty(),
            "{} / {}",
            old.len(),
            new.len()
        );
        assert_eq!(
            old.len() + new.len(),
            20_000,
            "nothing lost or written twice"
        );
        assert_eq!(stats.flow, 20_000);
        let all: Vec<u64> = old.iter().chain(new.iter()).copied().collect();
        assert_eq!(
            all,
            (0..20_000).collect::<Vec<_>>(),
            "in order across the rotation"
        );
    }

    #[test]
    fn a_reopen_that_cannot_open_is_counted_and_the_old_file_kept() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let (tx, writer) =
            EveWriter::spawn(EveTarget::File(path.clone()), 16, EveFormat::default(), &[]).unwrap();
        let kept = dir.path().join("eve.json.1");
        std::fs::rename(&path, &kept).unwrap();
        // A directory where the file should be: the open fails.
        std::fs::create_dir(&path).unwrap();
        assert_eq!(
            writer.reopen_handle().request(Duration::from_secs(5)),
            ReopenOutcome::Failed
        );
        let counters = writer.counters();
        assert_eq!((counters.reopens(), counters.reopen_failures()), (0, 1));
        tx.send(numbered_flow(7)).unwrap();
        drop(tx);
        writer.finish().unwrap();
        assert_eq!(
            flow_ids(&kept),
            vec![7],
            "records go on to the file already open"
        );
    }

    #[test]
    fn standard_output_has_nothing_to_reopen() {
        let (tx, writer) =
            EveWriter::spawn(EveTarget::Stdout, 4, EveFormat::default(), &[]).unwrap();
        let outcome = writer.reopen_handle().request(Duration::from_millis(100));
        assert_eq!(outcome, ReopenOutcome::NotAFile);
        drop(tx);
        writer.finish().unwrap();
    }

    fn sink(kind: crate::config::SinkKind, path: &std::path::Path) -> SinkConfig {
        SinkConfig {
            path: Some(path.display().to_string()),
            ..SinkConfig::new(kind)
        }
    }

    fn file_lines(path: &std::path::Path) -> Vec<String> {
        std::fs::read_to_string(path)
            .unwrap()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Waits until the writer has handed `n` records to its sinks (sent or lost).
    fn wait_handled(counters: &EveCounters, n: u64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let s = &counters.sinks()[0];
        while s.sent() + s.lost() < n {
            assert!(std::time::Instant::now() < deadline, "the writer stalled");
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    #[test]
    fn a_stream_peer_that_appears_late_gets_the_records_after_it_came() {
        use std::io::BufRead;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let sock = dir.path().join("late.sock");
        let sinks = [sink(crate::config::SinkKind::UnixStream, &sock)];
        let (tx, writer) = EveWriter::spawn(
            EveTarget::File(path.clone()),
            64,
            EveFormat::default(),
            &sinks,
        )
        .unwrap();
        let counters = writer.counters();
        // Nobody listens: the first record's connection fails, the rest wait out the backoff.
        let started = std::time::Instant::now();
        for i in 0..50 {
            tx.send(numbered_flow(i)).unwrap();
        }
        wait_handled(&counters, 50);
        assert!(
            started.elapsed() < Duration::from_millis(500),
            "an absent peer must not slow the writer: {:?}",
            started.elapsed()
        );
        let s = &counters.sinks()[0];
        assert_eq!((s.sent(), s.lost()), (0, 50));

        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let reader = std::thread::spawn(move || {
            let (conn, _) = listener.accept().unwrap();
            std::io::BufReader::new(conn)
                .lines()
                .map(|l| l.unwrap())
                .collect::<Vec<_>>()
        });
        // One failed attempt so far, so the next is allowed a second after it.
        std::thread::sleep(crate::output::sink::STREAM_WRITE_TIMEOUT + Duration::from_millis(1100));
        for i in 50..80 {
            tx.send(numbered_flow(i)).unwrap();
        }
        drop(tx);
        writer.finish().unwrap();
        assert_eq!((s.sent(), s.lost()), (30, 50));
        let file = file_lines(&path);
        assert_eq!(file.len(), 80);
        assert_eq!(reader.join().unwrap(), file[50..].to_vec());
    }

    #[test]
    fn a_stream_peer_that_never_reads_costs_the_writer_little() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let sock = dir.path().join("stuck.sock");
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        let sinks = [sink(crate::config::SinkKind::UnixStream, &sock)];
        let (tx, writer) = EveWriter::spawn(
            EveTarget::File(path.clone()),
            1024,
            EveFormat::default(),
            &sinks,
        )
        .unwrap();
        let counters = writer.counters();
        // Accepted and held, never read: the socket buffers fill and every write must time out.
        let held = std::thread::spawn(move || listener.accept().unwrap());
        let started = std::time::Instant::now();
        for i in 0..20_000 {
            tx.send(numbered_flow(i)).unwrap();
        }
        drop(tx);
        writer.finish().unwrap();
        let took = started.elapsed();
        let s = &counters.sinks()[0];
        assert_eq!(s.sent() + s.lost(), 20_000);
        assert!(s.lost() > 0 && s.sent() > 0, "{} / {}", s.sent(), s.lost());
        assert_eq!(flow_ids(&path).len(), 20_000, "the file gets everything");
        // One 50 ms timeout, then records lost without trying for the backoff's second.
        assert!(
            took < Duration::from_secs(3),
            "the writer was held {took:?}"
        );
        drop(held.join().unwrap());
    }

    #[test]
    fn a_stream_peer_is_tried_at_most_once_a_second() {
        let dir = tempfile::tempdir().unwrap();
        let sock = dir.path().join("never.sock");
        let config = sink(crate::config::SinkKind::UnixStream, &sock);
        let counter = Arc::new(SinkCounter::new(config.label()));
        let mut s = crate::output::sink::Sink::open(&config, Arc::clone(&counter)).unwrap();
        let meta = LineMeta::default();
        s.send(b"{}\n", meta);
        assert_eq!((counter.sent(), counter.lost()), (0, 1));
        // A listener now exists, but the backoff keeps the sink from looking for a second.
        let listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        s.send(b"{}\n", meta);
        assert_eq!((counter.sent(), counter.lost()), (0, 2));
        std::thread::sleep(Duration::from_millis(1050));
        s.send(b"{}\n", meta);
        assert_eq!((counter.sent(), counter.lost()), (1, 2));
        assert_eq!(
            counter.reconnects(),
            0,
            "the first connection is no reconnect"
        );
        // The peer goes away: the next record finds the connection broken, and after the
        // backoff a new listener is found again, which counts as a reconnect.
        let (conn, _) = listener.accept().unwrap();
        drop(conn);
        drop(listener);
        std::fs::remove_file(&sock).unwrap();
        let mut tries = 0;
        while counter.lost() == 2 && tries < 100 {
            s.send(b"{}\n", meta);
            tries += 1;
        }
        assert!(counter.lost() > 2, "a closed peer loses the record");
        let _listener = std::os::unix::net::UnixListener::bind(&sock).unwrap();
        std::thread::sleep(Duration::from_millis(1050));
        let sent = counter.sent();
        s.send(b"{}\n", meta);
        assert_eq!(counter.sent(), sent + 1);
        assert_eq!(counter.reconnects(), 1);
    }

    #[test]
    fn syslog_severity_follows_the_alert_severity() {
        use crate::output::sink::syslog_severity;
        use fasyslog::Severity;
        let at = |s: Option<u8>| syslog_severity(LineMeta { alert_severity: s });
        assert_eq!(at(Some(1)), Severity::ERROR);
        assert_eq!(at(Some(2)), Severity::WARNING);
        assert_eq!(at(Some(3)), Severity::NOTICE);
        assert_eq!(at(Some(4)), Severity::INFORMATIONAL);
        assert_eq!(at(None), Severity::INFORMATIONAL);
    }

    #[test]
    fn syslog_lines_are_rfc5424_with_the_eve_json_as_message() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("eve.json");
        let log = dir.path().join("log");
        let socket = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut config = sink(crate::config::SinkKind::Syslog, &log);
        config.identity = Some("unmask-test".into());
        let (tx, writer) = EveWriter::spawn(
            EveTarget::File(path.clone()),
            64,
            EveFormat::default(),
            &[config],
        )
        .unwrap();
        for i in 0..5 {
            tx.send(numbered_flow(i)).unwrap();
        }
        drop(tx);
        writer.finish().unwrap();
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname").unwrap();
        let mut buf = vec![0u8; 65536];
        for line in file_lines(&path) {
            let n = socket.recv(&mut buf).unwrap();
            let msg = std::str::from_utf8(&buf[..n]).unwrap();
            let fields: Vec<&str> = msg.splitn(8, ' ').collect();
            // local5 (21) * 8 + informational (6).
            assert_eq!(fields[0], "<174>1", "{msg}");
            let ts = fields[1];
            assert!(
                ts.len() == 27 && ts.as_bytes()[10] == b'T' && ts.ends_with('Z'),
                "RFC 3339 UTC with microseconds: {ts}"
            );
            assert_eq!(fields[2], hostname.trim());
            assert_eq!(fields[3], "unmask-test");
            assert_eq!(fields[4], std::process::id().to_string());
            assert_eq!((fields[5], fields[6]), ("-", "-"), "no MSGID, no SD");
            assert!(!fields[7].ends_with('\n'));
            let json: Value = serde_json::from_str(fields[7]).unwrap();
            assert_eq!(json, serde_json::from_str::<Value>(&line).unwrap());
            assert_eq!(fields[7], line);
        }
    }

    #[test]
    fn syslog_alerts_carry_their_severity_and_other_records_info() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("log");
        let socket = std::os::unix::net::UnixDatagram::bind(&log).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let config = sink(crate::config::SinkKind::Syslog, &log);
        let (tx, writer) = EveWriter::spawn(
            EveTarget::File(dir.path().join("eve.json")),
            64,
            EveFormat::default(),
            &[config],
        )
        .unwrap();
        // One kind of each severity the table uses, then a flow record.
        let mut kinds: Vec<FindingKind> = Vec::new();
        for want in 1..=3u8 {
            if let Some(k) = FindingKind::ALL.iter().find(|k| k.info().severity == want) {
                kinds.push(*k);
            }
        }
        assert!(!kinds.is_empty());
        for kind in &kinds {
            tx.send(EveRecord::Alert(Box::new(AlertRecord {
                ts: Timestamp::from_secs_nanos(1, 0),
                meta: meta(),
                dir: Dir::ToServer,
                action: AlertAction::Allowed,
                finding: Finding {
                    kind: *kind,
                    confidence: 90,
                    block: false,
                    dir: Dir::ToServer,
                    evidence: Evidence::default(),
                },
                pcap_cnt: None,
            })))
            .unwrap();
        }
        tx.send(numbered_flow(1)).unwrap();
        drop(tx);
        writer.finish().unwrap();
        let mut buf = vec![0u8; 65536];
        let mut pri = |_: ()| {
            let n = socket.recv(&mut buf).unwrap();
            let msg = std::str::from_utf8(&buf[..n]).unwrap().to_string();
            msg.split('>')
                .next()
                .unwrap()
                .trim_start_matches('<')
                .parse::<u32>()
                .unwrap()
        };
        for kind in &kinds {
            // local5 (21) * 8 + err (3), warning (4), notice (5).
            let want = 21 * 8 + 2 + u32::from(kind.info().severity);
            assert_eq!(pri(()), want, "{kind:?}");
        }
        assert_eq!(pri(()), 21 * 8 + 6, "a flow record is info");
    }

    #[test]
    fn unopenable_target_is_a_clear_error() {
        let err = EveWriter::spawn(
            EveTarget::File("/nonexistent-dir/eve.json".into()),
            4,
            EveFormat::default(),
            &[],
        )
        .err()
        .unwrap();
        let msg = err.to_string();
        assert!(msg.contains("/nonexistent-dir/eve.json"), "{msg}");
    }
}
