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
use std::sync::{Arc, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TryRecvError};
use serde_json::Value;

use crate::capture::Timestamp;
use crate::config::{OutputConfig, SinkConfig};
use crate::detect::{
    Evidence, FindingKind, KindInfo, MITRE_ANALYTIC, MITRE_TACTIC, MITRE_TECHNIQUE,
    MITRE_TECHNIQUE_NAME,
};
use crate::engine::record::{
    record_recycling, AlertAction, AlertRecord, AnomalyRecord, DropRecord, EveRecord, FlowMeta,
    FlowRecord, RecordReturn, Recycled, TlsEveRecord,
};
use crate::flow::Dir;
use crate::host::correlate::{HostAlert, Role};
use crate::host::{
    FirstSeen, HostCounts, HostLayer, HostRecord, HostSummary, HOST_ALERT_SEVERITY, HOST_ALERT_SID,
    HOST_ALERT_SIGNATURE,
};
use crate::output::community_id;
use crate::output::delivery::LineMeta;
use crate::output::json::{self, JsonObject};
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
    /// Appends the record as one EVE JSON object (no newline) to `out`.
    pub fn write_json(&self, format: &EveFormat, out: &mut Vec<u8>) {
        match self {
            EveRecord::Alert(a) => alert_json(a, format, out),
            EveRecord::Flow(f) => flow_json(f, format, out),
            EveRecord::Anomaly(a) => anomaly_json(a, format, out),
            EveRecord::Drop(d) => drop_json(d, format, out),
            EveRecord::Tls(t) => tls_json(t, format, out),
        }
    }

    /// The record as one EVE JSON object, for tests and tools that look into it: the bytes
    /// [`EveRecord::write_json`] writes, parsed.
    pub fn to_json(&self, format: &EveFormat) -> Value {
        let mut out = Vec::new();
        self.write_json(format, &mut out);
        parse_written(&out)
    }
}

/// What the writer produced, as a `Value` (key order kept).
fn parse_written(out: &[u8]) -> Value {
    serde_json::from_slice(out).expect("the EVE writer writes valid JSON")
}

fn dir_name(dir: Dir) -> &'static str {
    match dir {
        Dir::ToServer => "to_server",
        Dir::ToClient => "to_client",
    }
}

/// Appends `ts` as a JSON string in [`EveTime`]'s layout, without going through `fmt`.
fn write_eve_time(out: &mut Vec<u8>, ts: Timestamp) {
    let secs = ts.secs();
    let (y, m, d) = civil_from_days((secs / 86_400) as i64);
    let sod = secs % 86_400;
    if !(0..=9999).contains(&y) {
        // Out of the four-digit years a u64 of nanoseconds cannot reach; kept exact anyway.
        json::write_display(out, EveTime(ts));
        return;
    }
    out.push(b'"');
    let y = y as u64;
    json::write_2digits(out, y / 100);
    json::write_2digits(out, y);
    out.push(b'-');
    json::write_2digits(out, m.into());
    out.push(b'-');
    json::write_2digits(out, d.into());
    out.push(b'T');
    json::write_2digits(out, sod / 3600);
    out.push(b':');
    json::write_2digits(out, (sod / 60) % 60);
    out.push(b':');
    json::write_2digits(out, sod % 60);
    out.push(b'.');
    let micros = u64::from(ts.subsec_nanos() / 1000);
    json::write_2digits(out, micros / 10_000);
    json::write_2digits(out, micros / 100);
    json::write_2digits(out, micros);
    out.extend_from_slice(b"+0000\"");
}

/// Appends an address as a JSON string, as [`ip_string`] prints it.
fn write_ip(out: &mut Vec<u8>, family: Family, addr: &[u8; 16]) {
    out.push(b'"');
    match family {
        Family::V4 => write_v4(out, &addr[..4]),
        Family::V6 => write_v6(out, addr),
    }
    out.push(b'"');
}

/// Dotted decimal.
fn write_v4(out: &mut Vec<u8>, octets: &[u8]) {
    for (i, &b) in octets.iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        json::write_u64(out, u64::from(b));
    }
}

/// The text `Ipv6Addr`'s Display gives (RFC 5952: lowercase hex without leading zeros, the
/// first longest run of two or more zero groups as `::`, IPv4-mapped addresses as
/// `::ffff:a.b.c.d`), without going through `fmt`.
fn write_v6(out: &mut Vec<u8>, addr: &[u8; 16]) {
    if addr[..10].iter().all(|&b| b == 0) && addr[10] == 0xff && addr[11] == 0xff {
        out.extend_from_slice(b"::ffff:");
        write_v4(out, &addr[12..]);
        return;
    }
    let groups: [u16; 8] =
        std::array::from_fn(|i| u16::from_be_bytes([addr[2 * i], addr[2 * i + 1]]));
    // The first longest run of zero groups.
    let (mut best_at, mut best_len) = (0, 0);
    let (mut run_at, mut run_len) = (0, 0);
    for (i, &g) in groups.iter().enumerate() {
        if g == 0 {
            if run_len == 0 {
                run_at = i;
            }
            run_len += 1;
            if run_len > best_len {
                (best_at, best_len) = (run_at, run_len);
            }
        } else {
            run_len = 0;
        }
    }
    let hex_groups = |out: &mut Vec<u8>, groups: &[u16]| {
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            write_hex_group(out, g);
        }
    };
    if best_len > 1 {
        hex_groups(out, &groups[..best_at]);
        out.extend_from_slice(b"::");
        hex_groups(out, &groups[best_at + best_len..]);
    } else {
        hex_groups(out, &groups);
    }
}

/// Lowercase hex, no leading zeros.
fn write_hex_group(out: &mut Vec<u8>, g: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut started = false;
    for shift in [12, 8, 4, 0] {
        let nibble = (g >> shift) & 0xf;
        if nibble != 0 || started || shift == 0 {
            out.push(HEX[usize::from(nibble)]);
            started = true;
        }
    }
}

/// The common head of every record: time, flow id, type, the packet's endpoints, the flow's
/// Community ID.
fn head(
    m: &mut JsonObject<'_>,
    ts: Timestamp,
    meta: &FlowMeta,
    dir: Dir,
    event_type: &str,
    format: &EveFormat,
) {
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
    write_eve_time(m.raw("timestamp"), ts);
    m.u64("flow_id", meta.flow_id);
    m.str("event_type", event_type);
    write_ip(m.raw("src_ip"), meta.family, src);
    m.u64("src_port", sport.into());
    write_ip(m.raw("dest_ip"), meta.family, dst);
    m.u64("dest_port", dport.into());
    m.str("proto", "TCP");
    m.u64("ip_v", meta.family as u64);
    // Where Suricata puts it: after the 5-tuple, before the event's own objects. It depends on
    // the flow only, so every record of a flow carries the same value whatever its direction.
    if let Some(seed) = format.community_id {
        let id = community_id::for_flow_cached(seed, meta);
        m.str("community_id", id.as_str());
    }
    if meta.app_proto != AppProto::Unknown {
        m.str("app_proto", meta.app_proto.name());
    }
    if meta.app_ts != meta.app_tc
        && meta.app_ts != AppProto::Unknown
        && meta.app_tc != AppProto::Unknown
    {
        m.str("app_proto_ts", meta.app_ts.name());
        m.str("app_proto_tc", meta.app_tc.name());
    }
    if !meta.tunnels.is_empty() {
        // Suricata's object for a packet decoded out of a tunnel: `depth` is how many
        // encapsulations were opened, `pkt_src` names the innermost one as Suricata names its
        // decoders' packets ("<kind> tunnel"). The whole chain is in `unmask.tunnels`.
        let innermost = meta.tunnels.kinds().last().map_or("tunnel", |k| k.name());
        let mut t = m.object("tunnel");
        t.u64("depth", meta.tunnels.depth.into());
        t.display("pkt_src", format_args!("{innermost} tunnel"));
    }
}

/// The tunnel kinds that carried a flow, outermost first, for the `unmask` object.
fn tunnel_chain(m: &mut JsonObject<'_>, meta: &FlowMeta) {
    m.strs("tunnels", meta.tunnels.kinds().map(|k| k.name()));
}

/// Suricata's `alert.metadata` and our `unmask.mitre`: the technique every alert is about.
fn mitre_metadata(alert: &mut JsonObject<'_>, tunable: &str, finding: &str) {
    let mut md = alert.object("metadata");
    md.strs("mitre_technique_id", [MITRE_TECHNIQUE]);
    md.strs("mitre_technique_name", [MITRE_TECHNIQUE_NAME]);
    md.strs("mitre_tactic_id", [MITRE_TACTIC]);
    md.strs("det0470_tunable", [tunable]);
    md.strs("unmask_finding", [finding]);
}

fn mitre_fields(mitre: &mut JsonObject<'_>, tunable: &str) {
    mitre.str("technique_id", MITRE_TECHNIQUE);
    mitre.str("technique", MITRE_TECHNIQUE_NAME);
    mitre.str("tactic_id", MITRE_TACTIC);
    mitre.str("analytic", MITRE_ANALYTIC);
    mitre.str("tunable", tunable);
}

/// Suricata's `alert` object: what the finding kind and the action decide.
fn alert_fields(alert: &mut JsonObject<'_>, info: &KindInfo, action: AlertAction) {
    alert.str(
        "action",
        match action {
            AlertAction::Allowed => "allowed",
            AlertAction::Blocked => "blocked",
        },
    );
    alert.u64("gid", 1);
    alert.u64("signature_id", info.signature_id.into());
    alert.u64("rev", 1);
    alert.str("signature", info.signature);
    alert.str("category", info.category);
    alert.u64("severity", info.severity.into());
    mitre_metadata(alert, info.tunable.name(), info.name);
}

/// The bytes of an alert that depend on its finding kind alone (most of an alert), written
/// once per kind on first use rather than once per alert.
struct KindParts {
    /// The `alert` object's value, by [`AlertAction`].
    allowed: Vec<u8>,
    blocked: Vec<u8>,
    /// The `unmask.mitre` object's value.
    mitre: Vec<u8>,
}

impl KindParts {
    fn of(kind: FindingKind) -> KindParts {
        let info = kind.info();
        let object = |fill: &dyn Fn(&mut JsonObject<'_>)| {
            let mut out = Vec::new();
            fill(&mut JsonObject::new(&mut out));
            out
        };
        KindParts {
            allowed: object(&|o| alert_fields(o, &info, AlertAction::Allowed)),
            blocked: object(&|o| alert_fields(o, &info, AlertAction::Blocked)),
            mitre: object(&|o| mitre_fields(o, info.tunable.name())),
        }
    }

    /// The parts of `kind`, `None` for a discriminant no kind has.
    fn get(kind: FindingKind) -> Option<&'static KindParts> {
        static PARTS: OnceLock<Vec<Option<KindParts>>> = OnceLock::new();
        PARTS
            .get_or_init(|| {
                let mut parts: Vec<Option<KindParts>> =
                    (0..FindingKind::COUNT).map(|_| None).collect();
                for k in FindingKind::ALL {
                    if let Some(slot) = parts.get_mut(k.index()) {
                        *slot = Some(KindParts::of(k));
                    }
                }
                parts
            })
            .get(kind.index())
            .and_then(Option::as_ref)
    }
}

/// `unmask.evidence`. A name given twice keeps its first place and its last value, as the map
/// insert of the Value-built records did.
fn evidence_object(unmask: &mut JsonObject<'_>, ev: &Evidence) {
    let mut evidence = unmask.object("evidence");
    // Each value is read out once (reading one checks its UTF-8) into a local list; more items
    // than it holds, which no check adds today, take the slower walk over the evidence itself.
    const HELD: usize = 16;
    let mut held = [("", ""); HELD];
    let mut n = 0;
    for item in ev.iter() {
        if let Some(slot) = held.get_mut(n) {
            *slot = item;
        }
        n += 1;
    }
    if let Some(items) = held.get(..n) {
        for (i, &(k, _)) in items.iter().enumerate() {
            if items[..i].iter().any(|&(seen, _)| seen == k) {
                continue;
            }
            let last = items[i..].iter().rev().find(|&&(name, _)| name == k);
            evidence.str_named(k, last.map_or("", |&(_, v)| v));
        }
    } else {
        for (i, (k, _)) in ev.iter().enumerate() {
            if ev.iter().take(i).any(|(seen, _)| seen == k) {
                continue;
            }
            let last = ev.iter().filter(|&(name, _)| name == k).last();
            evidence.str_named(k, last.map_or("", |(_, v)| v));
        }
    }
}

fn alert_json(a: &AlertRecord, format: &EveFormat, out: &mut Vec<u8>) {
    let info = a.finding.kind.info();
    let parts = KindParts::get(a.finding.kind);
    let mut m = JsonObject::new(out);
    head(&mut m, a.ts, &a.meta, a.dir, "alert", format);
    if let Some(n) = a.pcap_cnt {
        m.u64("pcap_cnt", n);
    }
    m.str("direction", dir_name(a.dir));
    match parts {
        Some(p) => m.raw("alert").extend_from_slice(match a.action {
            AlertAction::Allowed => &p.allowed,
            AlertAction::Blocked => &p.blocked,
        }),
        None => alert_fields(&mut m.object("alert"), &info, a.action),
    }
    let mut unmask = m.object("unmask");
    unmask.str("finding", info.name);
    unmask.u64("confidence", a.finding.confidence.into());
    evidence_object(&mut unmask, &a.finding.evidence);
    match parts {
        Some(p) => unmask.raw("mitre").extend_from_slice(&p.mitre),
        None => mitre_fields(&mut unmask.object("mitre"), info.tunable.name()),
    }
    if !a.meta.tunnels.is_empty() {
        tunnel_chain(&mut unmask, &a.meta);
    }
}

fn flow_json(f: &FlowRecord, format: &EveFormat, out: &mut Vec<u8>) {
    let mut m = JsonObject::new(out);
    // A flow record is stamped with its end, as Suricata does.
    head(&mut m, f.end, &f.meta, Dir::ToServer, "flow", format);
    {
        let mut flow = m.object("flow");
        flow.u64("pkts_toserver", f.pkts[0]);
        flow.u64("pkts_toclient", f.pkts[1]);
        flow.u64("bytes_toserver", f.bytes[0]);
        flow.u64("bytes_toclient", f.bytes[1]);
        write_eve_time(flow.raw("start"), f.start);
        write_eve_time(flow.raw("end"), f.end);
        flow.u64("age", f.end.since(f.start) / Timestamp::NANOS_PER_SEC);
        flow.str("state", f.state);
        flow.str("reason", f.reason);
        flow.bool("alerted", f.alerted);
        if f.blocked {
            flow.str("action", "drop");
        }
        if let Some(k) = f.bypassed {
            // Suricata's names for a flow its capture layer carried past the engine.
            flow.str("bypass", "capture");
            let mut b = flow.object("bypassed");
            b.u64("pkts_toserver", k.pkts[0]);
            b.u64("pkts_toclient", k.pkts[1]);
            b.u64("bytes_toserver", k.bytes[0]);
            b.u64("bytes_toclient", k.bytes[1]);
        }
    }
    let mut unmask = m.object("unmask");
    unmask.u64("ident_bytes_toserver", f.ident_bytes[0].into());
    unmask.u64("ident_bytes_toclient", f.ident_bytes[1].into());
    if let Some(why) = f.uninspected {
        unmask.str("uninspected", why);
    }
    if f.recorded != 0 {
        unmask.strs(
            "recorded_findings",
            FindingKind::ALL
                .iter()
                .filter(|k| f.recorded & (1u64 << k.index()) != 0)
                .map(|k| k.name()),
        );
    }
    if !f.meta.tunnels.is_empty() {
        tunnel_chain(&mut unmask, &f.meta);
    }
}

fn anomaly_json(a: &AnomalyRecord, format: &EveFormat, out: &mut Vec<u8>) {
    let mut m = JsonObject::new(out);
    head(&mut m, a.ts, &a.meta, a.dir, "anomaly", format);
    if let Some(n) = a.pcap_cnt {
        m.u64("pcap_cnt", n);
    }
    m.str("direction", dir_name(a.dir));
    let mut anomaly = m.object("anomaly");
    anomaly.str(
        "type",
        if a.layer == "stream" {
            "stream"
        } else {
            "applayer"
        },
    );
    anomaly.str("event", a.event);
    anomaly.str("layer", a.layer);
    if a.meta.app_proto != AppProto::Unknown {
        anomaly.str("app_proto", a.meta.app_proto.name());
    }
}

fn drop_json(d: &DropRecord, format: &EveFormat, out: &mut Vec<u8>) {
    let mut m = JsonObject::new(out);
    head(&mut m, d.ts, &d.meta, d.dir, "drop", format);
    if let Some(n) = d.pcap_cnt {
        m.u64("pcap_cnt", n);
    }
    m.str("direction", dir_name(d.dir));
    let mut drop = m.object("drop");
    drop.u64("len", d.len.into());
    drop.u64("tcpseq", d.seq.into());
    drop.u64("tcpack", d.ack.into());
    drop.bool("syn", d.flags.syn());
    drop.bool("ack", d.flags.ack());
    drop.bool("fin", d.flags.fin());
    drop.bool("rst", d.flags.rst());
    drop.bool("psh", d.flags.has(TcpFlags::PSH));
    drop.str("reason", "rules");
}

fn tls_json(r: &TlsEveRecord, format: &EveFormat, out: &mut Vec<u8>) {
    let t = &r.tls;
    let mut m = JsonObject::new(out);
    head(&mut m, r.ts, &r.meta, Dir::ToServer, "tls", format);
    {
        let mut tls = m.object("tls");
        if let Some(v) = &t.subject {
            tls.str("subject", v);
        }
        if let Some(v) = &t.issuerdn {
            tls.str("issuerdn", v);
        }
        if let Some(v) = &t.serial {
            tls.str("serial", v);
        }
        if let Some(v) = &t.fingerprint {
            tls.str("fingerprint", v);
        }
        if let Some(v) = &t.sni {
            tls.str("sni", v);
        }
        tls.str("version", t.version);
        if let Some(v) = t.notbefore {
            tls.display("notbefore", TlsDate(v));
        }
        if let Some(v) = t.notafter {
            tls.display("notafter", TlsDate(v));
        }
        if !t.subjectaltname.is_empty() {
            tls.strs(
                "subjectaltname",
                t.subjectaltname.iter().map(String::as_str),
            );
        }
        if let Some((hash, string)) = &t.ja3 {
            let mut j = tls.object("ja3");
            j.str("hash", hash);
            j.str("string", string);
        }
        if let Some((hash, string)) = &t.ja3s {
            let mut j = tls.object("ja3s");
            j.str("hash", hash);
            j.str("string", string);
        }
        if let Some(v) = &t.ja4 {
            tls.str("ja4", v);
        }
        if !t.client_alpns.is_empty() {
            tls.strs("client_alpns", t.client_alpns.iter().map(String::as_str));
        }
        if !t.server_alpns.is_empty() {
            tls.strs("server_alpns", t.server_alpns.iter().map(String::as_str));
        }
    }
    let mut unmask = m.object("unmask");
    unmask.u64("certificates", t.certificates.into());
    if let Some(v) = &t.ja3n {
        unmask.str("ja3n", v);
    }
    // JA4S: Suricata's tls object has no field for it.
    if let Some(v) = &t.ja4s {
        unmask.str("ja4s", v);
    }
    if !t.anomalies.is_empty() {
        unmask.strs("tls_anomalies", t.anomalies.iter().copied());
    }
    if let Some(h) = &t.shape {
        let mut hr = unmask.object("handshake_records");
        hr.u64s("server", h.server_sizes().iter().map(|&s| u64::from(s)));
        hr.u64("server_count", h.server_records.into());
        hr.u64("server_bytes", h.server_bytes.into());
        hr.u64("client_finished", h.client_finished.into());
        hr.u64s(
            "post_handshake",
            h.post_sizes().iter().map(|&s| u64::from(s)),
        );
        hr.u64("post_handshake_count", h.post_records.into());
        hr.bool("resumed", h.psk);
    }
}

impl HostRecord {
    /// Appends the record as one EVE JSON object (no newline) to `out`.
    pub fn write_json(&self, format: &EveFormat, out: &mut Vec<u8>) {
        match self {
            HostRecord::Alert(a) => host_alert_json(a, out),
            HostRecord::FirstSeen(f) => first_seen_json(f, format, out),
            HostRecord::Finding(a) => alert_json(a, format, out),
        }
    }

    /// The record as one EVE JSON object: [`HostRecord::write_json`]'s bytes, parsed.
    pub fn to_json(&self, format: &EveFormat) -> Value {
        let mut out = Vec::new();
        self.write_json(format, &mut out);
        parse_written(&out)
    }
}

/// A host alert in Suricata's `alert` layout. It spans flows, so it has no flow_id or port of
/// its own: the host is src_ip (a client) or dest_ip (a server), and `unmask.host` names the
/// window and every flow_id and finding that made it.
fn host_alert_json(a: &HostAlert, out: &mut Vec<u8>) {
    let mut m = JsonObject::new(out);
    write_eve_time(m.raw("timestamp"), a.ts);
    m.str("event_type", "alert");
    let ip_key = match a.host.role {
        Role::Client => "src_ip",
        Role::Server => "dest_ip",
    };
    write_ip(m.raw(ip_key), a.host.family, &a.host.addr);
    m.str("proto", "TCP");
    m.u64("ip_v", a.host.family as u64);
    {
        let mut alert = m.object("alert");
        alert.str("action", "allowed");
        alert.u64("gid", 1);
        alert.u64("signature_id", HOST_ALERT_SID.into());
        alert.u64("rev", 1);
        alert.str("signature", HOST_ALERT_SIGNATURE);
        alert.str("category", "Potentially Bad Traffic");
        alert.u64("severity", HOST_ALERT_SEVERITY.into());
        mitre_metadata(&mut alert, "TimeWindow", "host_correlation");
    }
    let mut unmask = m.object("unmask");
    unmask.str("finding", "host_correlation");
    {
        let mut host = unmask.object("host");
        write_ip(host.raw("ip"), a.host.family, &a.host.addr);
        host.str("role", a.host.role.name());
        write_eve_time(host.raw("window_start"), a.window_start);
        write_eve_time(host.raw("window_end"), a.ts);
        host.u64("window_secs", a.window_secs.into());
        host.u64("score", a.score.into());
        host.u64("threshold", a.threshold.into());
        host.u64s("flow_ids", a.flow_ids());
        let mut findings = host.array("findings");
        for c in &a.contributions {
            let mut f = findings.object();
            write_eve_time(f.raw("timestamp"), c.ts);
            f.u64("flow_id", c.flow_id);
            f.str("finding", c.cause.name());
            f.u64("points", c.points.into());
        }
    }
    mitre_fields(&mut unmask.object("mitre"), "TimeWindow");
}

/// A pair a host showed for the first time: its own event type (as Zeek's known_* logs), with
/// the flow it was seen in, oriented client to server; what is new is under `unmask.first_seen`
/// (Suricata's schema has no place for it at the top level).
fn first_seen_json(f: &FirstSeen, format: &EveFormat, out: &mut Vec<u8>) {
    let mut m = JsonObject::new(out);
    head(&mut m, f.ts, &f.meta, Dir::ToServer, "first_seen", format);
    let mut unmask = m.object("unmask");
    let mut first = unmask.object("first_seen");
    first.str("type", f.kind.name());
    if f.kind.is_client() {
        write_ip(first.raw("host"), f.meta.family, &f.meta.client_addr);
    } else {
        first.display(
            "host",
            format_args!(
                "{}:{}",
                ip_string(f.meta.family, &f.meta.server_addr),
                f.meta.server_port
            ),
        );
    }
    first.str(
        "role",
        if f.kind.is_client() {
            "client"
        } else {
            "server"
        },
    );
    first.str("value", &f.value);
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
    recycled: Recycled,
}

/// Written alert and TLS record boxes kept for the workers to refill (per kind). About a
/// second of records on a busy link; more are freed on the writer.
const RECYCLED_RECORDS: usize = 1024;

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
        let (give_back, recycled) = record_recycling(RECYCLED_RECORDS);
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
                    &give_back,
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
                recycled,
            },
        ))
    }

    /// The boxes of written records, for workers to refill (`Engine::recycle_records`).
    pub fn recycled(&self) -> Recycled {
        self.recycled.clone()
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

/// The writer polls its queue instead of blocking on it: a receiver asleep in the channel makes
/// every record a futex wake-up on the worker (5 % of a worker's time on the looped real-capture
/// mix). When the queue is empty it flushes what it wrote (so `tail -f` readers and SIEM
/// shippers see alerts promptly), then pauses, which is also how often it looks for a reopen
/// request when idle. The pause follows the arrivals: it halves (down to POLL_FIRST) after a
/// wake-up that found records and doubles (up to POLL_LONGEST) after one that found none, so it
/// settles near the time between records. Going back to POLL_FIRST after every record instead
/// woke the writer ~20,000 times a second at a live rate of ~1,000 records a second, and on a
/// machine whose other cores are busy those wake-ups ran on a worker's core.
const POLL_FIRST: Duration = Duration::from_micros(50);
const POLL_LONGEST: Duration = Duration::from_millis(20);

#[allow(clippy::too_many_arguments)]
fn write_loop(
    rx: Receiver<EveRecord>,
    give_back: &RecordReturn,
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
    let mut pause = POLL_FIRST;
    let mut woke_to_records = false;
    let mut unflushed = false;
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
        match rx.try_recv() {
            Ok(record) => {
                woke_to_records = true;
                unflushed = true;
                line.clear();
                record.write_json(format, &mut line);
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
                        r.write_json(format, &mut line);
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
                give_back.give_back(record);
                live.store(&stats);
            }
            Err(TryRecvError::Empty) => {
                if unflushed {
                    unflushed = false;
                    out.flush().map_err(|e| fail(&stats, e))?;
                }
                pause = if woke_to_records {
                    (pause / 2).max(POLL_FIRST)
                } else {
                    (pause * 2).min(POLL_LONGEST)
                };
                woke_to_records = false;
                std::thread::sleep(pause);
            }
            Err(TryRecvError::Disconnected) => break,
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
    fn addresses_written_directly_are_their_display() {
        let v6 = |a: [u8; 16]| {
            let mut out = Vec::new();
            write_ip(&mut out, Family::V6, &a);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", Ipv6Addr::from(a)),
                "{a:?}"
            );
        };
        // Every pattern of zero and non-zero groups (runs of each length at each place, ties),
        // with group values of every width.
        for mask in 0u32..256 {
            for fill in [0x0001u16, 0x00ab, 0x0abc, 0xabcd, 0xf000, 0x0100] {
                let mut a = [0u8; 16];
                for i in 0..8 {
                    if mask & (1 << i) != 0 {
                        let g = fill.rotate_left(i as u32 * 3) | 1;
                        a[2 * i..2 * i + 2].copy_from_slice(&g.to_be_bytes());
                    }
                }
                v6(a);
            }
        }
        // IPv4-mapped and its near misses, and a spread of other addresses.
        let mut mapped = [0u8; 16];
        mapped[10] = 0xff;
        mapped[11] = 0xff;
        mapped[12..].copy_from_slice(&[192, 0, 2, 33]);
        v6(mapped);
        mapped[9] = 1;
        v6(mapped);
        mapped[9] = 0;
        mapped[11] = 0xfe;
        v6(mapped);
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..5000 {
            let mut a = [0u8; 16];
            for b in a.iter_mut() {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                *b = if x % 3 == 0 { 0 } else { x as u8 };
            }
            v6(a);
        }
        for a in [
            [0u8, 0, 0, 0],
            [255, 255, 255, 255],
            [10, 0, 100, 9],
            [1, 22, 133, 4],
        ] {
            let mut addr = [0u8; 16];
            addr[..4].copy_from_slice(&a);
            let mut out = Vec::new();
            write_ip(&mut out, Family::V4, &addr);
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", ip_string(Family::V4, &addr))
            );
        }
    }

    #[test]
    fn eve_time_written_directly_is_its_display() {
        let mut ts = 0u64;
        for step in 0..20_000u64 {
            let mut out = Vec::new();
            write_eve_time(&mut out, Timestamp(ts));
            assert_eq!(
                String::from_utf8(out).unwrap(),
                format!("\"{}\"", EveTime(Timestamp(ts)))
            );
            // Steps of odd sizes reach every field's digits over a few centuries.
            ts = ts.wrapping_add(919_191_919_191_917 + step * 7_777_777);
        }
        let mut out = Vec::new();
        write_eve_time(&mut out, Timestamp(u64::MAX));
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("\"{}\"", EveTime(Timestamp(u64::MAX)))
        );
    }

    #[test]
    fn rare_branches_are_written_in_suricata_order() {
        // What the captures never reach: a kernel-bypassed, blocked, cut-short flow inside
        // tunnels, and an alert naming one evidence key twice (first place, last value, as a
        // map insert kept it).
        let mut m = meta();
        m.tunnels.kinds[0] = 1;
        m.tunnels.kinds[1] = 5;
        m.tunnels.depth = 2;
        let mut f = flow_record(m);
        f.blocked = true;
        f.uninspected = Some("stream_memcap");
        f.bypassed = Some(crate::engine::record::KernelShare {
            pkts: [5, 6],
            bytes: [7, 8],
        });
        let mut line = Vec::new();
        EveRecord::Flow(f).write_json(&EveFormat { community_id: None }, &mut line);
        assert_eq!(
            String::from_utf8(line).unwrap(),
            concat!(
                r#"{"timestamp":"1970-01-01T00:00:00.000000+0000","flow_id":42,"event_type":"flow","#,
                r#""src_ip":"10.0.0.1","src_port":50000,"dest_ip":"10.0.0.2","dest_port":443,"#,
                r#""proto":"TCP","ip_v":4,"app_proto":"ssh","tunnel":{"depth":2,"pkt_src":"vxlan tunnel"},"#,
                r#""flow":{"pkts_toserver":1,"pkts_toclient":2,"bytes_toserver":3,"bytes_toclient":4,"#,
                r#""start":"1970-01-01T00:00:00.000000+0000","end":"1970-01-01T00:00:00.000000+0000","#,
                r#""age":0,"state":"closed","reason":"timeout","alerted":false,"action":"drop","#,
                r#""bypass":"capture","bypassed":{"pkts_toserver":5,"pkts_toclient":6,"#,
                r#""bytes_toserver":7,"bytes_toclient":8}},"unmask":{"ident_bytes_toserver":0,"#,
                r#""ident_bytes_toclient":0,"uninspected":"stream_memcap","tunnels":["gre","vxlan"]}}"#
            )
        );
        let mut evidence = Evidence::default();
        evidence.add("port", "a\"b\n");
        evidence.add("protocol", "ssh");
        evidence.add("port", 22);
        let rec = AlertRecord {
            ts: Timestamp::from_secs_nanos(1, 0),
            meta: meta(),
            dir: Dir::ToServer,
            action: AlertAction::Allowed,
            finding: Finding {
                kind: FindingKind::ProtocolPortMismatch,
                confidence: 90,
                block: false,
                dir: Dir::ToServer,
                evidence,
            },
            pcap_cnt: None,
        };
        let v = EveRecord::Alert(Box::new(rec)).to_json(&EveFormat::default());
        assert_eq!(
            serde_json::to_string(&v["unmask"]["evidence"]).unwrap(),
            r#"{"port":"22","protocol":"ssh"}"#
        );
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
