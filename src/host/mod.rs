//! The host layer: what no single flow shows. Per-host correlation of findings over a time
//! window (`correlate`) and a persistent first-seen baseline of what each host has been seen
//! doing (`baseline`, kept on disk by `store`).
//!
//! Where it runs: on the EVE writer thread, over the records the workers already send there
//! (alerts and tls records), so the packet path does no extra work at all: no second channel,
//! no copy, no lock. The writer hands every record it has written to [`HostLayer::observe`]
//! and writes what comes back (host `alert` and `first_seen` records) into the same stream,
//! right after the record that caused it. Records are taken in the order the writer receives
//! them and timed by their packet time, so a replay gives the same host records every time.
//! The price of riding on the writer: a record the workers could not queue (EVE queue full,
//! counted as `eve_dropped`) is not seen here either.

pub mod baseline;
pub mod correlate;
pub mod export;
pub mod pair;
pub mod store;

use std::sync::Arc;
use std::time::Instant;

use crate::capture::Timestamp;
use crate::detect::{Finding, FindingKind};
use crate::engine::record::{AlertAction, AlertRecord, EveRecord, FlowMeta, TlsEveRecord};
use crate::flow::Dir;
use crate::verdict::HostBlocks;
use crate::wire::Family;
use baseline::{sni_suffix, Baseline, BaselineConfig, BaselineStats, Pair, PairKind, Profiled};
use correlate::{
    Cause, Contribution, CorrelationConfig, CorrelationStats, Correlator, HostAlert, HostKey, Role,
};
use store::StoreError;

/// The host alert's signature id: SID_BASE + 38, the id FindingKind discriminant 37 would
/// have, which is reserved for it (host alerts are not per-flow findings, so no kind exists).
pub const HOST_ALERT_SID: u32 = 9_470_038;
pub const HOST_ALERT_SIGNATURE: &str =
    "UNMASK host correlation: findings of several flows of one host within the time window";
/// Suricata severity of a host alert (1, high): several flows of one host agree.
pub const HOST_ALERT_SEVERITY: u8 = 1;

/// A pair a host showed for the first time, after the learning period.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FirstSeen {
    pub ts: Timestamp,
    /// The flow it was seen in.
    pub meta: FlowMeta,
    pub kind: PairKind,
    pub value: String,
}

/// An address as EVE prints it.
pub fn ip_text(family: Family, addr: &[u8; 16]) -> String {
    match family {
        Family::V4 => std::net::Ipv4Addr::new(addr[0], addr[1], addr[2], addr[3]).to_string(),
        Family::V6 => std::net::Ipv6Addr::from(*addr).to_string(),
    }
}

/// What the host layer adds to the EVE stream.
#[derive(Debug, Clone)]
pub enum HostRecord {
    Alert(Box<HostAlert>),
    FirstSeen(Box<FirstSeen>),
    /// A per-flow finding only the host layer can make (a service profile departure),
    /// written like a worker's alert.
    Finding(Box<AlertRecord>),
}

// Findings carry no equality of their own (evidence is fixed-capacity text): two host
// findings are equal when their flow, time, kind, confidence and evidence are.
impl PartialEq for HostRecord {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (HostRecord::Alert(a), HostRecord::Alert(b)) => a == b,
            (HostRecord::FirstSeen(a), HostRecord::FirstSeen(b)) => a == b,
            (HostRecord::Finding(a), HostRecord::Finding(b)) => {
                a.ts == b.ts
                    && a.meta == b.meta
                    && a.finding.kind == b.finding.kind
                    && a.finding.confidence == b.finding.confidence
                    && a.finding.evidence.iter().eq(b.finding.evidence.iter())
            }
            _ => false,
        }
    }
}

impl Eq for HostRecord {}

/// Running counts for the metrics exporter.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct HostCounts {
    pub hosts_refused: u64,
    pub baseline_pairs: u64,
    pub baseline_commits: u64,
    pub baseline_commit_errors: u64,
    pub baseline_refused: u64,
}

/// What the host layer did, for the end summaries.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct HostSummary {
    pub correlation: Option<CorrelationStats>,
    pub baseline: Option<BaselineStats>,
    pub baseline_pairs: u64,
    pub store: Option<String>,
}

pub struct HostLayer {
    correlator: Option<Correlator>,
    baseline: Option<Baseline>,
    first_seen_points: u32,
    /// Confidence of a service profile departure (0: profiles are off).
    profile_confidence: u8,
    /// Where a client's host alert lists it, and for how long (live only).
    blocks: Option<(Arc<HostBlocks>, u64)>,
}

impl HostLayer {
    /// The layer the config asks for; `None` when both halves are off. Opens the store.
    pub fn from_config(
        correlation: &CorrelationConfig,
        baseline: &BaselineConfig,
    ) -> Result<Option<HostLayer>, StoreError> {
        let base = if baseline.enabled() {
            Some(Baseline::open(baseline)?)
        } else {
            None
        };
        let corr = correlation.enabled.then(|| Correlator::new(correlation));
        if base.is_none() && corr.is_none() {
            return Ok(None);
        }
        Ok(Some(HostLayer {
            correlator: corr,
            baseline: base,
            first_seen_points: correlation.first_seen_points,
            profile_confidence: baseline.service_profile_confidence,
            blocks: None,
        }))
    }

    /// From now on a host alert on a client lists it in `blocks` for `secs` of packet time.
    pub fn set_blocks(&mut self, blocks: Arc<HostBlocks>, secs: u32) {
        self.blocks = Some((blocks, u64::from(secs) * Timestamp::NANOS_PER_SEC));
    }

    /// Takes one record the writer has written; pushes the host records it causes.
    pub fn observe(&mut self, rec: &EveRecord, out: &mut Vec<HostRecord>) {
        match rec {
            EveRecord::Alert(a) => {
                let c = Contribution {
                    ts: a.ts,
                    flow_id: a.meta.flow_id,
                    cause: Cause::Finding(a.finding.kind),
                    points: u32::from(a.finding.confidence),
                };
                self.score(&a.meta, Role::Client, c, out);
                self.score(&a.meta, Role::Server, c, out);
            }
            EveRecord::Tls(t) => self.tls(t, out),
            _ => {}
        }
    }

    fn score(&mut self, meta: &FlowMeta, role: Role, c: Contribution, out: &mut Vec<HostRecord>) {
        let Some(corr) = self.correlator.as_mut() else {
            return;
        };
        let addr = match role {
            Role::Client => meta.client_addr,
            Role::Server => meta.server_addr,
        };
        let host = HostKey {
            family: meta.family,
            addr,
            role,
        };
        if let Some(alert) = corr.add(host, c) {
            if let (Some((blocks, span)), Role::Client) = (&self.blocks, role) {
                blocks.block(&addr, Timestamp(alert.ts.0.saturating_add(*span)));
            }
            out.push(HostRecord::Alert(Box::new(alert)));
        }
    }

    fn tls(&mut self, t: &TlsEveRecord, out: &mut Vec<HostRecord>) {
        let Some(base) = self.baseline.as_mut() else {
            return;
        };
        let m = &t.meta;
        let client = |kind, value: String| Pair {
            kind,
            family: m.family,
            addr: m.client_addr,
            port: 0,
            value,
        };
        let server = |kind, value: String| Pair {
            kind,
            family: m.family,
            addr: m.server_addr,
            port: m.server_port,
            value,
        };
        let service = match &t.tls.sni {
            Some(sni) => sni_suffix(sni),
            None => format!("{}:{}", ip_text(m.family, &m.server_addr), m.server_port),
        };
        let mut pairs = Vec::with_capacity(4);
        if let Some(ja4) = &t.tls.ja4 {
            pairs.push(client(PairKind::ClientJa4, ja4.clone()));
        }
        pairs.push(client(PairKind::ClientService, service));
        if let Some((hash, _)) = &t.tls.ja3s {
            pairs.push(server(PairKind::ServerJa3s, hash.clone()));
        }
        if let Some(fp) = &t.tls.fingerprint {
            pairs.push(server(PairKind::ServerCert, fp.clone()));
        }
        let mut new = Vec::new();
        for p in pairs {
            if let Some(n) = base.observe(p, t.ts) {
                new.push(n);
            }
        }
        let departure = if self.profile_confidence > 0 {
            profile(base, t, self.profile_confidence)
        } else {
            None
        };
        // The first_seen records go before any host alert they complete.
        for n in &new {
            out.push(HostRecord::FirstSeen(Box::new(FirstSeen {
                ts: n.ts,
                meta: *m,
                kind: n.pair.kind,
                value: n.pair.value.clone(),
            })));
        }
        for n in new.iter().filter(|n| n.pair.kind.is_client()) {
            let c = Contribution {
                ts: n.ts,
                flow_id: m.flow_id,
                cause: Cause::FirstSeen(n.pair.kind),
                points: self.first_seen_points,
            };
            self.score(m, Role::Client, c, out);
        }
        if let Some(alert) = departure {
            let c = Contribution {
                ts: alert.ts,
                flow_id: m.flow_id,
                cause: Cause::Finding(alert.finding.kind),
                points: u32::from(alert.finding.confidence),
            };
            out.push(HostRecord::Finding(alert));
            self.score(m, Role::Client, c, out);
            self.score(m, Role::Server, c, out);
        }
    }

    /// Commits the baseline when its interval has passed. A failed commit is reported and
    /// retried at the next interval; the EVE output goes on.
    pub fn tick(&mut self, now: Instant) -> Result<(), StoreError> {
        match self.baseline.as_mut() {
            Some(b) if b.commit_due(now) => b.commit(),
            _ => Ok(()),
        }
    }

    /// The last commit and the summary.
    pub fn finish(&mut self) -> Result<HostSummary, StoreError> {
        if let Some(b) = self.baseline.as_mut() {
            b.commit()?;
        }
        Ok(self.summary())
    }

    /// The running counts the metrics show (cheap: no allocation).
    pub fn counts(&self) -> HostCounts {
        let b = self
            .baseline
            .as_ref()
            .map(Baseline::stats)
            .unwrap_or_default();
        HostCounts {
            hosts_refused: self
                .correlator
                .as_ref()
                .map_or(0, |c| c.stats().hosts_refused),
            baseline_pairs: self.baseline.as_ref().map_or(0, |b| b.len() as u64),
            baseline_commits: b.commits,
            baseline_commit_errors: b.commit_errors,
            baseline_refused: b.refused_full,
        }
    }

    pub fn summary(&self) -> HostSummary {
        HostSummary {
            correlation: self.correlator.as_ref().map(Correlator::stats),
            baseline: self.baseline.as_ref().map(Baseline::stats),
            baseline_pairs: self.baseline.as_ref().map_or(0, |b| b.len() as u64),
            store: self.baseline.as_ref().map(Baseline::path),
        }
    }
}

/// The server's prefix a service profile keeps: /24 for IPv4, /48 for IPv6.
fn server_prefix(family: Family, addr: &[u8; 16]) -> [u8; 16] {
    let keep = match family {
        Family::V4 => 3,
        Family::V6 => 6,
    };
    let mut out = [0u8; 16];
    out[..keep].copy_from_slice(&addr[..keep]);
    out
}

/// Judges a TLS handshake against the profile of the service its SNI claims, learning what a
/// known service has not shown yet only while the baseline learns; returns the finding when
/// the server departed from it, naming each part that did.
fn profile(base: &mut Baseline, t: &TlsEveRecord, confidence: u8) -> Option<Box<AlertRecord>> {
    let m = &t.meta;
    let sni = t
        .tls
        .sni
        .as_deref()?
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if sni.is_empty() || sni.contains(' ') {
        return None;
    }
    let pair = |kind, addr, value: String| Pair {
        kind,
        family: m.family,
        addr,
        port: m.server_port,
        value,
    };
    let mut parts: Vec<(PairKind, String)> = Vec::with_capacity(5);
    parts.push((PairKind::ServicePrefix, String::new()));
    // A resumed TLS 1.3 handshake answers with pre_shared_key (another JA3S) and sends no
    // tickets: only full handshakes are profiled on those two.
    let resumed = t.tls.shape.is_some_and(|h| h.psk);
    if let Some((hash, _)) = t.tls.ja3s.as_ref().filter(|_| !resumed) {
        parts.push((PairKind::ServiceJa3s, hash.clone()));
    }
    if let Some(fp) = &t.tls.fingerprint {
        parts.push((PairKind::ServiceCert, fp.clone()));
    }
    if let Some(alpn) = t.tls.server_alpns.first() {
        parts.push((PairKind::ServiceAlpn, alpn.clone()));
    }
    if let Some(h) = t.tls.shape.filter(|h| !h.psk) {
        // Only once the client's Finished was seen: before it nothing follows a handshake.
        // The first record only: an OpenSSL site's first NewSessionTicket has one size per
        // server configuration, what follows it (a second ticket or the response) varies.
        if h.client_finished > 0 {
            let shown = h
                .post_sizes()
                .first()
                .map_or_else(|| "none".to_string(), u16::to_string);
            parts.push((PairKind::ServicePostHandshake, shown));
        }
    }
    let mut departed: Vec<(PairKind, String, u32)> = Vec::new();
    for (kind, value) in parts {
        let (addr, full) = if kind == PairKind::ServicePrefix {
            (server_prefix(m.family, &m.server_addr), sni.clone())
        } else {
            ([0u8; 16], format!("{sni} {value}"))
        };
        if let Profiled::Departed { learned } = base.profile(pair(kind, addr, full), t.ts) {
            let shown = if kind == PairKind::ServicePrefix {
                let len = if m.family == Family::V4 { 24 } else { 48 };
                format!("{}/{len}", ip_text(m.family, &addr))
            } else {
                value
            };
            departed.push((kind, shown, learned));
        }
    }
    if departed.is_empty() {
        return None;
    }
    let mut f = Finding {
        kind: FindingKind::ServiceProfileMismatch,
        confidence,
        block: false,
        dir: Dir::ToClient,
        evidence: Default::default(),
    };
    f.evidence.add("service", &sni);
    let names: Vec<&str> = departed.iter().map(|(k, _, _)| k.profile_part()).collect();
    f.evidence.add("departed", names.join(","));
    for (kind, shown, learned) in &departed {
        f.evidence.add(
            kind.profile_part(),
            format_args!("{shown} (profile holds {learned})"),
        );
    }
    Some(Box::new(AlertRecord {
        ts: t.ts,
        meta: *m,
        dir: Dir::ToClient,
        action: AlertAction::Allowed,
        finding: f,
        pcap_cnt: None,
    }))
}

impl std::fmt::Display for HostSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if let Some(c) = &self.correlation {
            writeln!(
                f,
                "  hosts      {} host alerts from {} contributions ({} refused: host table full)",
                c.alerts, c.contributions, c.hosts_refused
            )?;
        }
        if let (Some(b), Some(path)) = (&self.baseline, &self.store) {
            writeln!(
                f,
                "  baseline   {} pairs in {path}: {} loaded, {} learned, {} first_seen, {} refused (full), {} expired, {} commits (longest {} us), {} commit errors",
                self.baseline_pairs, b.loaded, b.learned, b.reported, b.refused_full, b.expired, b.commits, b.max_commit_us, b.commit_errors
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::detect::FindingKind;

    #[test]
    fn no_finding_kind_takes_the_host_alerts_signature_id() {
        // FindingKind discriminant 37 would have this id: it must stay unused by findings.
        for k in FindingKind::ALL {
            assert_ne!(k.info().signature_id, HOST_ALERT_SID, "{}", k.name());
        }
    }

    use crate::engine::record::TlsRecord;
    use crate::inspect::HandshakeShape;
    use crate::proto::AppProto;

    fn layer(dir: &std::path::Path, mode: baseline::BaselineMode) -> HostLayer {
        let cfg = BaselineConfig {
            state_dir: dir.display().to_string(),
            mode,
            ..BaselineConfig::default()
        };
        let corr = CorrelationConfig {
            enabled: false,
            ..CorrelationConfig::default()
        };
        HostLayer::from_config(&corr, &cfg).unwrap().unwrap()
    }

    /// A TLS 1.3 handshake for www.example-site.test from server 10.77.`net`.`host`.
    fn handshake(flow_id: u64, net: u8, host: u8, ja3s: &str, post: &[u16]) -> EveRecord {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&[10, 77, 1, 1]);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[10, 77, net, host]);
        let mut shape = HandshakeShape {
            server_records: 4,
            client_finished: 53,
            post_records: post.len() as u16,
            ..HandshakeShape::default()
        };
        shape.post_sizes[..post.len()].copy_from_slice(post);
        EveRecord::Tls(Box::new(TlsEveRecord {
            ts: Timestamp::from_secs_nanos(1_700_000_000 + flow_id, 0),
            meta: FlowMeta {
                flow_id,
                family: Family::V4,
                client_addr: c,
                client_port: 40000,
                server_addr: s,
                server_port: 443,
                app_proto: AppProto::Tls,
                app_ts: AppProto::Tls,
                app_tc: AppProto::Tls,
                tunnels: Default::default(),
            },
            tls: TlsRecord {
                sni: Some("www.example-site.test".into()),
                version: "TLS 1.3",
                ja3s: Some((ja3s.into(), String::new())),
                shape: Some(shape),
                ..TlsRecord::default()
            },
        }))
    }

    fn findings(h: &mut HostLayer, rec: &EveRecord) -> Vec<AlertRecord> {
        let mut out = Vec::new();
        h.observe(rec, &mut out);
        out.into_iter()
            .filter_map(|r| match r {
                HostRecord::Finding(a) => Some(*a),
                _ => None,
            })
            .collect()
    }

    fn evidence(a: &AlertRecord, name: &str) -> Option<String> {
        a.finding
            .evidence
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.to_string())
    }

    #[test]
    fn a_relay_departing_from_a_learned_service_profile_is_found_every_time() {
        let dir = tempfile::tempdir().unwrap();
        {
            let mut learn = layer(dir.path(), baseline::BaselineMode::Learn);
            for id in 1..=3 {
                assert!(findings(&mut learn, &handshake(id, 2, 2, "aaa", &[250, 250])).is_empty());
            }
            learn.finish().unwrap();
        }
        // The profile survives the restart: a new layer over the same store judges by it.
        let mut h = layer(dir.path(), baseline::BaselineMode::Alert);
        assert!(findings(&mut h, &handshake(4, 2, 9, "aaa", &[250, 250])).is_empty());
        for id in [5, 6] {
            let f = findings(&mut h, &handshake(id, 1, 3, "bbb", &[]));
            assert_eq!(f.len(), 1, "flow {id}");
            assert_eq!(f[0].finding.kind, FindingKind::ServiceProfileMismatch);
            assert_eq!(f[0].meta.flow_id, id);
            assert_eq!(
                evidence(&f[0], "departed").as_deref(),
                Some("prefix,ja3s,post_handshake")
            );
            assert_eq!(
                evidence(&f[0], "prefix").as_deref(),
                Some("10.77.1.0/24 (profile holds 1)")
            );
            assert_eq!(
                evidence(&f[0], "post_handshake").as_deref(),
                Some("none (profile holds 1)")
            );
        }
        // Only the post-handshake shape departs.
        let f = findings(&mut h, &handshake(7, 2, 2, "aaa", &[1200, 250]));
        assert_eq!(
            evidence(&f[0], "departed").as_deref(),
            Some("post_handshake")
        );
        // Another service has no profile: outside learning it gets none from first use, so
        // neither its first flow nor a different second one is judged.
        for (id, ja3s) in [(8, "bbb"), (9, "ccc")] {
            let mut other = handshake(id, 1, 3, ja3s, &[]);
            if let EveRecord::Tls(t) = &mut other {
                t.tls.sni = Some("other.example.test".into());
            }
            assert!(findings(&mut h, &other).is_empty());
        }
    }
}
