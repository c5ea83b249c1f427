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
use crate::engine::record::{EveRecord, FlowMeta, TlsEveRecord};
use crate::verdict::HostBlocks;
use crate::wire::Family;
use baseline::{sni_suffix, Baseline, BaselineConfig, BaselineStats, Pair, PairKind};
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
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HostRecord {
    Alert(Box<HostAlert>),
    FirstSeen(Box<FirstSeen>),
}

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
}
