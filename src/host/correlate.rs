//! Per-host scores over a time window: findings of several flows of one host, and what the
//! baseline saw for the first time, add up to one host `alert`.
//!
//! A single finding already raises its own flow alert; what this adds is the view across flows
//! that DET0470 asks for ("correlation" with a `TimeWindow` tunable). Each host keeps its last
//! [`HOST_SLOTS`] contributions (time, flow, what, points) in a fixed array; the score is the
//! sum of those inside the window, and a host alerts when the score reaches the threshold with
//! at least `min_flows` distinct flows and at least one finding behind it (first_seen points
//! only add to findings: a fresh baseline makes every host's first connections new). After an alert the host's evidence is cleared
//! and it stays quiet for one window, so a busy host gives one alert per window, not one per
//! finding.
//!
//! Time is the records' packet time, never the wall clock, so a replay scores exactly as the
//! live run did. Records of different workers may arrive slightly out of order: each host keeps
//! the latest time it saw, and contributions are aged against that.
//!
//! The table holds at most `max_hosts` hosts; a new host arriving at a full table first sweeps
//! out hosts with nothing left in their window (at most once per second of packet time), and is
//! refused (counted) when none can go. The memory bound is [`Correlator::memory_bound`].

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

use super::pair::PairKind;
use crate::capture::Timestamp;
use crate::detect::{FindingKind, KeyError, KeyRange};
use crate::wire::Family;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CorrelationConfig {
    pub enabled: bool,
    /// The window findings are combined over (DET0470's TimeWindow).
    pub time_window_secs: u32,
    /// Points a host must reach inside the window. A finding scores its confidence (0-100), a
    /// first_seen record `first_seen_points`.
    pub threshold: u32,
    /// Distinct flows the points must come from: one flow's findings already have its alerts.
    pub min_flows: u32,
    pub first_seen_points: u32,
    /// Also score servers (findings of the flows they answered), not only clients.
    pub servers: bool,
    /// Hosts tracked at once; bounds the memory (see `Correlator::memory_bound`).
    pub max_hosts: u32,
    /// Live, block mode: for this long after a host alert on a client, that client's new flows
    /// are cut (`host_blocked`). 0: never.
    pub block_secs: u32,
}

impl Default for CorrelationConfig {
    fn default() -> Self {
        CorrelationConfig {
            enabled: false,
            time_window_secs: 300,
            threshold: 150,
            min_flows: 2,
            first_seen_points: 40,
            servers: false,
            max_hosts: 65_536,
            block_secs: 0,
        }
    }
}

impl CorrelationConfig {
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "correlation",
        };
        keys.check(
            "time_window_secs",
            u64::from(self.time_window_secs),
            1,
            7 * 86_400,
        )?;
        keys.check("threshold", u64::from(self.threshold), 1, 1_000_000)?;
        keys.check("min_flows", u64::from(self.min_flows), 1, HOST_SLOTS as u64)?;
        keys.check(
            "first_seen_points",
            u64::from(self.first_seen_points),
            0,
            1000,
        )?;
        keys.check("max_hosts", u64::from(self.max_hosts), 1, 16 * 1024 * 1024)?;
        keys.check("block_secs", u64::from(self.block_secs), 0, 7 * 86_400)?;
        Ok(())
    }
}

/// Contributions one host keeps; older ones make room for newer.
pub const HOST_SLOTS: usize = 16;

/// Which side of its flows a host was on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    Client,
    Server,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Client => "client",
            Role::Server => "server",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct HostKey {
    pub family: Family,
    pub addr: [u8; 16],
    pub role: Role,
}

/// What a contribution was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cause {
    Finding(FindingKind),
    /// A pair the baseline had never seen.
    FirstSeen(PairKind),
}

impl Cause {
    pub fn name(self) -> &'static str {
        match self {
            Cause::Finding(k) => k.name(),
            Cause::FirstSeen(k) => k.name(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Contribution {
    pub ts: Timestamp,
    pub flow_id: u64,
    pub cause: Cause,
    pub points: u32,
}

/// One host alert: the host, the window, and every contribution that made it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostAlert {
    pub ts: Timestamp,
    pub host: HostKey,
    pub window_start: Timestamp,
    pub window_secs: u32,
    pub score: u32,
    pub threshold: u32,
    /// Oldest first.
    pub contributions: Vec<Contribution>,
}

impl HostAlert {
    /// Distinct flows, in the order their first contribution came.
    pub fn flow_ids(&self) -> Vec<u64> {
        let mut ids: Vec<u64> = Vec::with_capacity(self.contributions.len());
        for c in &self.contributions {
            if !ids.contains(&c.flow_id) {
                ids.push(c.flow_id);
            }
        }
        ids
    }
}

#[derive(Debug, Clone, Copy)]
struct HostState {
    slots: [Option<Contribution>; HOST_SLOTS],
    /// Next slot to overwrite when all are taken (the oldest, as slots fill in time order).
    next: u8,
    latest: Timestamp,
    quiet_until: Timestamp,
}

impl HostState {
    fn new() -> HostState {
        HostState {
            slots: [None; HOST_SLOTS],
            next: 0,
            latest: Timestamp(0),
            quiet_until: Timestamp(0),
        }
    }

    fn expire(&mut self, window_ns: u64) {
        let floor = self.latest.0.saturating_sub(window_ns);
        for s in &mut self.slots {
            if s.is_some_and(|c| c.ts.0 < floor) {
                *s = None;
            }
        }
    }
}

/// What the correlator counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct CorrelationStats {
    pub contributions: u64,
    pub alerts: u64,
    /// Contributions lost because the host table was full of active hosts.
    pub hosts_refused: u64,
    /// Contributions that pushed out an older one still inside the window.
    pub slots_overwritten: u64,
}

pub struct Correlator {
    cfg: CorrelationConfig,
    hosts: HashMap<HostKey, HostState>,
    last_sweep: Timestamp,
    stats: CorrelationStats,
}

impl Correlator {
    pub fn new(cfg: &CorrelationConfig) -> Correlator {
        Correlator {
            cfg: cfg.clone(),
            hosts: HashMap::new(),
            last_sweep: Timestamp(0),
            stats: CorrelationStats::default(),
        }
    }

    pub fn config(&self) -> &CorrelationConfig {
        &self.cfg
    }

    pub fn stats(&self) -> CorrelationStats {
        self.stats
    }

    pub fn hosts(&self) -> usize {
        self.hosts.len()
    }

    /// Bytes the host table can grow to: `max_hosts` entries of key and state, doubled for a
    /// hash map's spare capacity at its worst (just after it grew).
    pub fn memory_bound(cfg: &CorrelationConfig) -> u64 {
        let entry = std::mem::size_of::<(HostKey, HostState)>() as u64 + 1;
        2 * u64::from(cfg.max_hosts) * entry
    }

    fn window_ns(&self) -> u64 {
        u64::from(self.cfg.time_window_secs) * Timestamp::NANOS_PER_SEC
    }

    /// Adds one contribution to a host; returns the host alert it completes, if any.
    pub fn add(&mut self, host: HostKey, c: Contribution) -> Option<HostAlert> {
        if host.role == Role::Server && !self.cfg.servers {
            return None;
        }
        self.stats.contributions += 1;
        if !self.hosts.contains_key(&host) && !self.make_room(c.ts) {
            self.stats.hosts_refused += 1;
            return None;
        }
        let window_ns = self.window_ns();
        let state = self.hosts.entry(host).or_insert_with(HostState::new);
        if c.ts > state.latest {
            state.latest = c.ts;
        }
        state.expire(window_ns);
        if c.ts < state.quiet_until {
            return None;
        }
        // One contribution per (flow, cause): a flow's alerts are already one per kind.
        if state
            .slots
            .iter()
            .flatten()
            .any(|s| s.flow_id == c.flow_id && s.cause == c.cause)
        {
            return None;
        }
        let slot = match state.slots.iter().position(Option::is_none) {
            Some(i) => i,
            None => {
                self.stats.slots_overwritten += 1;
                let i = state.next as usize;
                state.next = ((i + 1) % HOST_SLOTS) as u8;
                i
            }
        };
        state.slots[slot] = Some(c);
        let mut score = 0u32;
        let mut flows = [0u64; HOST_SLOTS];
        let mut nflows = 0usize;
        let mut findings = 0usize;
        for s in state.slots.iter().flatten() {
            score = score.saturating_add(s.points);
            findings += matches!(s.cause, Cause::Finding(_)) as usize;
            if !flows[..nflows].contains(&s.flow_id) {
                flows[nflows] = s.flow_id;
                nflows += 1;
            }
        }
        // Novelty alone is no alarm: a new host's first connections are all first_seen.
        if score < self.cfg.threshold || (nflows as u32) < self.cfg.min_flows || findings == 0 {
            return None;
        }
        let mut contributions: Vec<Contribution> = state.slots.iter().flatten().copied().collect();
        contributions.sort_by_key(|c| (c.ts, c.flow_id));
        let window_start = contributions.first().map_or(c.ts, |f| f.ts);
        state.slots = [None; HOST_SLOTS];
        state.next = 0;
        state.quiet_until = state.latest.add_nanos(window_ns);
        self.stats.alerts += 1;
        Some(HostAlert {
            ts: state.latest,
            host,
            window_start,
            window_secs: self.cfg.time_window_secs,
            score,
            threshold: self.cfg.threshold,
            contributions,
        })
    }

    /// True when a new host may be added.
    fn make_room(&mut self, now: Timestamp) -> bool {
        if self.hosts.len() < self.cfg.max_hosts as usize {
            return true;
        }
        if now.since(self.last_sweep) < Timestamp::NANOS_PER_SEC && self.last_sweep.0 != 0 {
            return false;
        }
        self.last_sweep = now;
        // A host whose newest contribution is out of the window (against the newest time
        // seen anywhere) has nothing left to score, unless it is keeping quiet after an alert.
        let floor = now.0.saturating_sub(self.window_ns());
        self.hosts
            .retain(|_, s| s.latest.0 >= floor || s.quiet_until > now);
        self.hosts.len() < self.cfg.max_hosts as usize
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(last: u8) -> HostKey {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[10, 0, 0, last]);
        HostKey {
            family: Family::V4,
            addr,
            role: Role::Client,
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs_nanos(1_000_000 + secs, 0)
    }

    fn finding(secs: u64, flow_id: u64, kind: FindingKind, points: u32) -> Contribution {
        Contribution {
            ts: at(secs),
            flow_id,
            cause: Cause::Finding(kind),
            points,
        }
    }

    fn cfg() -> CorrelationConfig {
        CorrelationConfig {
            enabled: true,
            time_window_secs: 60,
            threshold: 150,
            min_flows: 2,
            ..CorrelationConfig::default()
        }
    }

    #[test]
    fn findings_of_two_flows_inside_the_window_make_one_alert() {
        let mut c = Correlator::new(&cfg());
        assert!(c
            .add(
                host(1),
                finding(0, 1, FindingKind::ProtocolPortMismatch, 80)
            )
            .is_none());
        let alert = c
            .add(
                host(1),
                finding(30, 2, FindingKind::FullyEncryptedFirstPayload, 80),
            )
            .expect("160 points from two flows inside 60 s");
        assert_eq!(alert.score, 160);
        assert_eq!(alert.flow_ids(), vec![1, 2]);
        assert_eq!(alert.window_start, at(0));
        assert_eq!(alert.ts, at(30));
        assert_eq!(
            alert
                .contributions
                .iter()
                .map(|c| c.cause.name())
                .collect::<Vec<_>>(),
            vec!["protocol_port_mismatch", "fully_encrypted"]
        );
        // Quiet for one window after the alert, then it may alert again on fresh evidence.
        assert!(c
            .add(host(1), finding(40, 3, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(host(1), finding(50, 4, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(host(1), finding(95, 5, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(host(1), finding(96, 6, FindingKind::TlsInTls, 100))
            .is_some());
        assert_eq!(c.stats().alerts, 2);
    }

    #[test]
    fn findings_further_apart_than_the_window_do_not_add_up() {
        let mut c = Correlator::new(&cfg());
        assert!(c
            .add(host(1), finding(0, 1, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(host(1), finding(61, 2, FindingKind::TlsInTls, 100))
            .is_none());
        // The first has aged out; the third joins the second.
        assert!(c
            .add(host(1), finding(62, 3, FindingKind::TlsInTls, 100))
            .is_some());
    }

    #[test]
    fn one_flow_alone_never_makes_a_host_alert() {
        let mut c = Correlator::new(&cfg());
        for (i, k) in [
            FindingKind::TlsInTls,
            FindingKind::CertSelfSigned,
            FindingKind::SniMissing,
        ]
        .into_iter()
        .enumerate()
        {
            assert!(c.add(host(1), finding(i as u64, 7, k, 100)).is_none());
        }
        // The same finding of the same flow again counts once.
        assert!(c
            .add(host(1), finding(4, 7, FindingKind::TlsInTls, 100))
            .is_none());
        assert_eq!(c.stats().alerts, 0);
    }

    #[test]
    fn first_seen_points_alone_never_make_a_host_alert() {
        let mut c = Correlator::new(&cfg());
        let new = |secs, flow_id, kind| Contribution {
            ts: at(secs),
            flow_id,
            cause: Cause::FirstSeen(kind),
            points: 100,
        };
        assert!(c.add(host(1), new(0, 1, PairKind::ClientJa4)).is_none());
        assert!(c.add(host(1), new(1, 2, PairKind::ClientJa4)).is_none());
        assert!(c.add(host(1), new(2, 3, PairKind::ClientService)).is_none());
        // One finding on top makes it.
        let a = c
            .add(host(1), finding(3, 3, FindingKind::CertSelfSigned, 10))
            .unwrap();
        assert_eq!(a.flow_ids(), vec![1, 2, 3]);
        assert_eq!(a.score, 310);
    }

    #[test]
    fn hosts_are_scored_apart_and_servers_only_when_asked() {
        let mut c = Correlator::new(&cfg());
        assert!(c
            .add(host(1), finding(0, 1, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(host(2), finding(1, 2, FindingKind::TlsInTls, 100))
            .is_none());
        let server = HostKey {
            role: Role::Server,
            ..host(9)
        };
        assert!(c
            .add(server, finding(0, 1, FindingKind::TlsInTls, 100))
            .is_none());
        assert!(c
            .add(server, finding(1, 2, FindingKind::TlsInTls, 100))
            .is_none());
        let mut c = Correlator::new(&CorrelationConfig {
            servers: true,
            ..cfg()
        });
        c.add(server, finding(0, 1, FindingKind::TlsInTls, 100));
        let a = c
            .add(server, finding(1, 2, FindingKind::TlsInTls, 100))
            .unwrap();
        assert_eq!(a.host.role, Role::Server);
    }

    #[test]
    fn a_full_table_sweeps_idle_hosts_and_refuses_when_all_are_active() {
        let mut c = Correlator::new(&CorrelationConfig {
            max_hosts: 4,
            ..cfg()
        });
        for h in 0..4 {
            c.add(host(h), finding(0, u64::from(h), FindingKind::TlsInTls, 10));
        }
        assert_eq!(c.hosts(), 4);
        // All four are active: the fifth is refused.
        c.add(host(4), finding(1, 40, FindingKind::TlsInTls, 10));
        assert_eq!(c.stats().hosts_refused, 1);
        assert_eq!(c.hosts(), 4);
        // Two windows later every one of them is idle: room again.
        c.add(host(5), finding(200, 50, FindingKind::TlsInTls, 10));
        assert_eq!(c.stats().hosts_refused, 1);
        assert_eq!(c.hosts(), 1);
        assert!(c.hosts() <= 4);
    }

    #[test]
    fn more_contributions_than_slots_keep_the_newest() {
        let mut c = Correlator::new(&CorrelationConfig {
            threshold: 1_000_000,
            ..cfg()
        });
        for i in 0..(HOST_SLOTS as u64 + 3) {
            c.add(host(1), finding(i, i, FindingKind::TlsInTls, 1));
        }
        assert_eq!(c.stats().slots_overwritten, 3);
    }

    #[test]
    fn a_host_costs_well_under_a_kibibyte() {
        // 16 contributions of 24 bytes, the key and the times; doubled for the map's slack.
        assert_eq!(std::mem::size_of::<Contribution>(), 24);
        let per_host = Correlator::memory_bound(&CorrelationConfig {
            max_hosts: 1,
            ..cfg()
        });
        assert!(per_host <= 1024, "{per_host}");
    }

    #[test]
    fn the_memory_bound_grows_with_max_hosts() {
        let small = Correlator::memory_bound(&CorrelationConfig {
            max_hosts: 1,
            ..cfg()
        });
        let big = Correlator::memory_bound(&CorrelationConfig {
            max_hosts: 65_536,
            ..cfg()
        });
        assert!(small > 0);
        assert_eq!(big, small * 65_536);
    }
}
