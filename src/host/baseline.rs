//! What each host has been seen doing: a persistent first-seen baseline.
//!
//! Pairs are (client host, JA4), (client host, service: the SNI's suffix, or the server's
//! address and port without SNI), (server address and port, JA3S) and (server address and
//! port, leaf certificate SHA-1). JA4S is not computed by unmask (FoxIO licenses it apart from
//! JA4), so JA3S stands for the server's fingerprint. Each pair keeps its first and last packet
//! time and how often it was seen.
//!
//! The whole baseline is held in memory (at most `max_entries` pairs, see
//! [`Baseline::memory_bound`]) and written to the store every `commit_interval_ms` of wall
//! time, only the pairs that changed. A kill -9 loses at most what changed since the last
//! commit; the store itself is never left half-written (see `store.rs`).
//!
//! Learning: the store remembers when it learned its first pair (packet time). Until
//! `learning_secs` after that, or always in `mode = "learn"`, new pairs are only recorded;
//! afterwards each new pair also gives a `first_seen` record.

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

pub use super::pair::{Pair, PairKind, Seen, MAX_VALUE};
use super::store::{Meta, Store, StoreError};
use crate::capture::Timestamp;
use crate::detect::{KeyError, KeyRange};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BaselineMode {
    /// Record new pairs, never report them (building a baseline on a new deployment).
    Learn,
    /// Report new pairs once the learning period is over.
    Alert,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct BaselineConfig {
    /// Directory of the store; empty turns the baseline off. `replay --state DIR` sets it.
    pub state_dir: String,
    pub mode: BaselineMode,
    /// Packet-time seconds after the store's first pair during which new pairs are only learned.
    pub learning_secs: u64,
    /// Pairs not seen for this many days are forgotten.
    pub retention_days: u32,
    /// Pairs kept at most; bounds memory and the file.
    pub max_entries: u32,
    /// Wall-clock milliseconds between commits: what a kill -9 can lose.
    pub commit_interval_ms: u32,
    /// Confidence of a `service_profile_mismatch` finding; 0 turns service profiles off.
    pub service_profile_confidence: u8,
}

impl Default for BaselineConfig {
    fn default() -> Self {
        BaselineConfig {
            state_dir: String::new(),
            mode: BaselineMode::Alert,
            learning_secs: 0,
            retention_days: 90,
            max_entries: 250_000,
            commit_interval_ms: 1000,
            service_profile_confidence: 70,
        }
    }
}

impl BaselineConfig {
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "baseline",
        };
        keys.check("learning_secs", self.learning_secs, 0, 366 * 86_400)?;
        keys.check("retention_days", u64::from(self.retention_days), 1, 3650)?;
        keys.check("max_entries", u64::from(self.max_entries), 16, 100_000_000)?;
        keys.check(
            "commit_interval_ms",
            u64::from(self.commit_interval_ms),
            10,
            3_600_000,
        )?;
        keys.check(
            "service_profile_confidence",
            u64::from(self.service_profile_confidence),
            0,
            100,
        )?;
        Ok(())
    }

    pub fn enabled(&self) -> bool {
        !self.state_dir.is_empty()
    }
}

/// The service a client reached, for the (client, service) pair: the SNI's registrable suffix
/// (`cdn.example.co.uk` → `example.co.uk`, `a.b.example.com` → `example.com`), so a site's many
/// hosts are one service. Heuristic, not the public suffix list: a two-letter top-level label
/// under a label of at most three letters takes three labels.
pub fn sni_suffix(sni: &str) -> String {
    let name = sni.trim_end_matches('.').to_ascii_lowercase();
    if name.parse::<std::net::IpAddr>().is_ok() {
        return name;
    }
    let labels: Vec<&str> = name.split('.').collect();
    let n = labels.len();
    let keep = if n >= 3 && labels[n - 1].len() == 2 && labels[n - 2].len() <= 3 {
        3
    } else {
        2
    };
    labels[n.saturating_sub(keep)..].join(".")
}

/// What a service profile made of one sighting.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Profiled {
    /// The value is in the service's profile.
    Known,
    /// Added: the baseline is learning (`mode = "learn"` or the learning period).
    Learned,
    /// Outside learning, a service with no profile of this kind: nothing to judge by.
    Unprofiled,
    /// Not in the profile of a service that has one: a departure. Not added, so every flow
    /// that departs the same way is reported, not only the first.
    Departed {
        /// Values of this kind the service's profile holds.
        learned: u32,
    },
    /// Not kept: the baseline is at `max_entries`.
    Refused,
}

/// A pair seen for the first time, to report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewPair {
    pub pair: Pair,
    pub ts: Timestamp,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct BaselineStats {
    pub loaded: u64,
    /// Rows of the store that did not decode (left in place).
    pub undecoded: u64,
    pub observed: u64,
    pub learned: u64,
    /// New pairs reported (after the learning period).
    pub reported: u64,
    /// New pairs not kept: the baseline was at `max_entries`.
    pub refused_full: u64,
    pub expired: u64,
    pub commits: u64,
    pub commit_errors: u64,
    /// The longest commit, for the cost of keeping the store on the writer thread.
    pub max_commit_us: u64,
}

pub struct Baseline {
    cfg: BaselineConfig,
    store: Store,
    map: HashMap<Vec<u8>, Seen>,
    /// Per (profile kind, service): how many values the profile holds.
    profiles: HashMap<(PairKind, String), u32>,
    dirty: HashSet<Vec<u8>>,
    removed: Vec<Vec<u8>>,
    meta: Meta,
    last_commit: Instant,
    stats: BaselineStats,
}

impl Baseline {
    /// Opens the store in `cfg.state_dir` and loads it.
    pub fn open(cfg: &BaselineConfig) -> Result<Baseline, StoreError> {
        let store = Store::open(&PathBuf::from(&cfg.state_dir))?;
        let super::store::Loaded {
            meta,
            pairs,
            undecoded,
        } = store.load()?;
        let mut map = HashMap::with_capacity(pairs.len());
        let mut profiles = HashMap::new();
        for (p, s) in pairs {
            if p.kind.is_profile() {
                *profiles
                    .entry((p.kind, p.service().to_string()))
                    .or_insert(0) += 1;
            }
            map.insert(p.encode(), s);
        }
        let mut b = Baseline {
            cfg: cfg.clone(),
            store,
            stats: BaselineStats {
                loaded: map.len() as u64,
                undecoded,
                ..BaselineStats::default()
            },
            map,
            profiles,
            dirty: HashSet::new(),
            removed: Vec::new(),
            meta,
            last_commit: Instant::now(),
        };
        b.expire();
        Ok(b)
    }

    /// Bytes the in-memory baseline can grow to: `max_entries` keys of at most
    /// 20 + [`MAX_VALUE`] bytes with their 24-byte record, the hash map's slots at twice the
    /// entries, and one dirty-set copy of each key. A typical pair (a JA4) is about a third of
    /// the worst case.
    pub fn memory_bound(cfg: &BaselineConfig) -> u64 {
        let key = 20 + MAX_VALUE as u64 + 16; // bytes plus the allocator's rounding
        let slot = std::mem::size_of::<(Vec<u8>, Seen)>() as u64 + 1;
        u64::from(cfg.max_entries) * (2 * slot + 2 * key + 2 * 24)
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn stats(&self) -> BaselineStats {
        self.stats
    }

    pub fn get(&self, pair: &Pair) -> Option<Seen> {
        self.map.get(&pair.encode()).copied()
    }

    fn learning(&self, ts: Timestamp) -> bool {
        // Without a learning period, nothing is learning: captures replayed together may go
        // back in time from one file to the next, before the store's first pair.
        self.cfg.mode == BaselineMode::Learn
            || (self.cfg.learning_secs > 0
                && ts.0
                    < self
                        .meta
                        .created_ns
                        .saturating_add(self.cfg.learning_secs * Timestamp::NANOS_PER_SEC))
    }

    /// Records one sighting; returns the pair when it is new and is to be reported.
    pub fn observe(&mut self, pair: Pair, ts: Timestamp) -> Option<NewPair> {
        self.stats.observed += 1;
        if self.meta.created_ns == 0 {
            self.meta.created_ns = ts.0.max(1);
        }
        self.meta.clock_ns = self.meta.clock_ns.max(ts.0);
        let key = pair.encode();
        if let Some(s) = self.map.get_mut(&key) {
            s.count += 1;
            s.first = s.first.min(ts);
            s.last = s.last.max(ts);
            self.dirty.insert(key);
            return None;
        }
        if self.map.len() >= self.cfg.max_entries as usize {
            self.stats.refused_full += 1;
            return None;
        }
        self.map.insert(
            key.clone(),
            Seen {
                first: ts,
                last: ts,
                count: 1,
            },
        );
        self.dirty.insert(key);
        self.stats.learned += 1;
        if pair.kind.is_profile() {
            *self
                .profiles
                .entry((pair.kind, pair.service().to_string()))
                .or_insert(0) += 1;
        }
        if self.learning(ts) {
            return None;
        }
        self.stats.reported += 1;
        Some(NewPair { pair, ts })
    }

    /// Judges one sighting against its service's profile (a pair of a profile kind): known
    /// values are refreshed; while learning, new values are learned; afterwards a value the
    /// profile of a service lacks is a departure, left out of it, and a service without a
    /// profile is not judged (profiles come from learning or an import, never first use).
    pub fn profile(&mut self, pair: Pair, ts: Timestamp) -> Profiled {
        let learned = self
            .profiles
            .get(&(pair.kind, pair.service().to_string()))
            .copied()
            .unwrap_or(0);
        if !self.learning(ts) && self.get(&pair).is_none() {
            self.stats.observed += 1;
            self.meta.clock_ns = self.meta.clock_ns.max(ts.0);
            // Outside learning a service gets no profile on first use: the first server to
            // answer for it could be the relay.
            return if learned > 0 {
                Profiled::Departed { learned }
            } else {
                Profiled::Unprofiled
            };
        }
        let known = self.get(&pair).is_some();
        let before = self.len();
        self.observe(pair, ts);
        if known {
            Profiled::Known
        } else if self.len() > before {
            Profiled::Learned
        } else {
            Profiled::Refused
        }
    }

    /// Imports pairs (an export), merged with what is there; committed at once.
    pub fn import(
        &mut self,
        rows: impl IntoIterator<Item = (Pair, Seen)>,
    ) -> Result<u64, StoreError> {
        let mut n = 0;
        for (p, s) in rows {
            let key = p.encode();
            let merged = match self.map.get(&key) {
                Some(old) => old.merge(s),
                None => s,
            };
            if self.meta.created_ns == 0 || merged.first.0 < self.meta.created_ns {
                self.meta.created_ns = merged.first.0.max(1);
            }
            self.meta.clock_ns = self.meta.clock_ns.max(merged.last.0);
            if p.kind.is_profile() && !self.map.contains_key(&key) {
                *self
                    .profiles
                    .entry((p.kind, p.service().to_string()))
                    .or_insert(0) += 1;
            }
            self.map.insert(key.clone(), merged);
            self.dirty.insert(key);
            n += 1;
        }
        self.commit()?;
        Ok(n)
    }

    /// Every pair, sorted (for export).
    pub fn pairs(&self) -> Vec<(Pair, Seen)> {
        let mut out: Vec<(Pair, Seen)> = self
            .map
            .iter()
            .filter_map(|(k, s)| Some((Pair::decode(k)?, *s)))
            .collect();
        out.sort_by(|a, b| {
            (a.0.kind, a.0.family, a.0.addr, a.0.port, &a.0.value)
                .cmp(&(b.0.kind, b.0.family, b.0.addr, b.0.port, &b.0.value))
        });
        out
    }

    pub fn meta(&self) -> Meta {
        self.meta
    }

    /// Forgets pairs past the retention; at `max_entries`, also the least recently seen
    /// sixteenth, so new pairs find room again.
    fn expire(&mut self) {
        let keep_ns = u64::from(self.cfg.retention_days) * 86_400 * Timestamp::NANOS_PER_SEC;
        let floor = self.meta.clock_ns.saturating_sub(keep_ns);
        let mut gone: Vec<Vec<u8>> = self
            .map
            .iter()
            .filter(|(_, s)| s.last.0 < floor)
            .map(|(k, _)| k.clone())
            .collect();
        let max = self.cfg.max_entries as usize;
        if self.map.len() - gone.len() >= max {
            let mut by_age: Vec<(Timestamp, &Vec<u8>)> = self
                .map
                .iter()
                .filter(|(_, s)| s.last.0 >= floor)
                .map(|(k, s)| (s.last, k))
                .collect();
            by_age.sort();
            let extra = self.map.len() - gone.len() - max + max / 16;
            gone.extend(by_age.into_iter().take(extra).map(|(_, k)| k.clone()));
        }
        for k in gone {
            if let Some(p) = Pair::decode(&k).filter(|p| p.kind.is_profile()) {
                let slot = (p.kind, p.service().to_string());
                if let Some(n) = self.profiles.get_mut(&slot) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        self.profiles.remove(&slot);
                    }
                }
            }
            self.map.remove(&k);
            self.dirty.remove(&k);
            self.removed.push(k);
            self.stats.expired += 1;
        }
    }

    /// True when the commit interval has passed since the last commit.
    pub fn commit_due(&self, now: Instant) -> bool {
        now.duration_since(self.last_commit)
            >= Duration::from_millis(u64::from(self.cfg.commit_interval_ms))
    }

    /// Writes what changed since the last commit, in one transaction.
    pub fn commit(&mut self) -> Result<(), StoreError> {
        self.last_commit = Instant::now();
        self.expire();
        if self.dirty.is_empty() && self.removed.is_empty() {
            return Ok(());
        }
        let started = Instant::now();
        let map = &self.map;
        let result = self.store.commit(
            self.dirty
                .iter()
                .filter_map(|k| Some((k.as_slice(), *map.get(k)?))),
            self.removed.iter().map(Vec::as_slice),
            self.meta,
        );
        match result {
            Ok(()) => {
                self.dirty.clear();
                self.removed.clear();
                self.stats.commits += 1;
                let us = started.elapsed().as_micros() as u64;
                self.stats.max_commit_us = self.stats.max_commit_us.max(us);
                Ok(())
            }
            Err(e) => {
                // Kept dirty: the next commit tries again.
                self.stats.commit_errors += 1;
                Err(e)
            }
        }
    }

    pub fn path(&self) -> String {
        self.store.path().display().to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::Family;

    fn cfg(dir: &std::path::Path) -> BaselineConfig {
        BaselineConfig {
            state_dir: dir.display().to_string(),
            ..BaselineConfig::default()
        }
    }

    fn ja4(host: u8, value: &str) -> Pair {
        let mut addr = [0u8; 16];
        addr[..4].copy_from_slice(&[10, 0, 0, host]);
        Pair {
            kind: PairKind::ClientJa4,
            family: Family::V4,
            addr,
            port: 0,
            value: value.into(),
        }
    }

    fn at(secs: u64) -> Timestamp {
        Timestamp::from_secs_nanos(1_700_000_000 + secs, 0)
    }

    #[test]
    fn memory_bounds_per_entry() {
        let one = Baseline::memory_bound(&BaselineConfig {
            max_entries: 1,
            ..BaselineConfig::default()
        });
        eprintln!("baseline bound per pair: {one} bytes");
        eprintln!(
            "correlation bound per host: {} bytes",
            super::super::correlate::Correlator::memory_bound(
                &super::super::correlate::CorrelationConfig {
                    max_hosts: 1,
                    ..Default::default()
                }
            )
        );
        assert!(one < 1024, "{one}");
    }

    #[test]
    fn pairs_and_records_round_trip_through_their_encoding() {
        let p = Pair {
            kind: PairKind::ServerCert,
            family: Family::V6,
            addr: [7; 16],
            port: 8443,
            value: "aa:bb".into(),
        };
        assert_eq!(Pair::decode(&p.encode()), Some(p));
        let s = Seen {
            first: at(1),
            last: at(9),
            count: 5,
        };
        assert_eq!(Seen::decode(&s.encode()), Some(s));
        assert_eq!(Pair::decode(&[9; 20]), None, "unknown kind");
        assert_eq!(Seen::decode(&[0; 23]), None);
    }

    #[test]
    fn sni_suffixes_group_a_sites_hosts() {
        assert_eq!(sni_suffix("a.b.Example.COM."), "example.com");
        assert_eq!(sni_suffix("cdn.example.co.uk"), "example.co.uk");
        assert_eq!(sni_suffix("example.com"), "example.com");
        assert_eq!(sni_suffix("localhost"), "localhost");
        assert_eq!(sni_suffix("192.0.2.1"), "192.0.2.1");
    }

    #[test]
    fn a_new_pair_is_reported_once_and_survives_a_reopen() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::open(&cfg(dir.path())).unwrap();
        assert!(b.observe(ja4(1, "t13d1516h2_aaa"), at(0)).is_some());
        assert!(b.observe(ja4(1, "t13d1516h2_aaa"), at(5)).is_none());
        assert!(
            b.observe(ja4(2, "t13d1516h2_aaa"), at(6)).is_some(),
            "per host"
        );
        b.commit().unwrap();
        drop(b);
        let mut b = Baseline::open(&cfg(dir.path())).unwrap();
        assert_eq!(b.stats().loaded, 2);
        assert_eq!(
            b.get(&ja4(1, "t13d1516h2_aaa")),
            Some(Seen {
                first: at(0),
                last: at(5),
                count: 2
            })
        );
        assert!(b.observe(ja4(1, "t13d1516h2_aaa"), at(7)).is_none());
        assert!(b.observe(ja4(1, "other"), at(8)).is_some());
    }

    #[test]
    fn nothing_is_reported_while_learning() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::open(&BaselineConfig {
            learning_secs: 60,
            ..cfg(dir.path())
        })
        .unwrap();
        assert!(b.observe(ja4(1, "a"), at(0)).is_none());
        assert!(b.observe(ja4(1, "b"), at(59)).is_none());
        assert!(b.observe(ja4(1, "c"), at(60)).is_some());
        assert_eq!(b.stats().learned, 3);
        let mut b = Baseline::open(&BaselineConfig {
            mode: BaselineMode::Learn,
            ..cfg(tempfile::tempdir().unwrap().path())
        })
        .unwrap();
        assert!(b.observe(ja4(1, "a"), at(1_000_000)).is_none());
    }

    #[test]
    fn uncommitted_pairs_are_lost_and_committed_ones_kept() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::open(&cfg(dir.path())).unwrap();
        b.observe(ja4(1, "kept"), at(0));
        b.commit().unwrap();
        b.observe(ja4(1, "lost"), at(1));
        // Dropped without a commit, as a kill would.
        drop(b);
        let b = Baseline::open(&cfg(dir.path())).unwrap();
        assert!(b.get(&ja4(1, "kept")).is_some());
        assert!(b.get(&ja4(1, "lost")).is_none());
    }

    #[test]
    fn retention_and_the_entry_limit_forget_the_oldest() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::open(&BaselineConfig {
            retention_days: 1,
            max_entries: 16,
            ..cfg(dir.path())
        })
        .unwrap();
        b.observe(ja4(1, "old"), at(0));
        b.observe(ja4(1, "new"), at(2 * 86_400));
        b.commit().unwrap();
        assert!(b.get(&ja4(1, "old")).is_none(), "past retention");
        assert!(b.get(&ja4(1, "new")).is_some());
        for i in 0..20 {
            b.observe(ja4(2, &format!("v{i}")), at(2 * 86_400 + i));
        }
        assert_eq!(b.len(), 16, "full");
        assert_eq!(b.stats().refused_full, 5);
        b.commit().unwrap();
        // The least recently seen sixteenth went: room for one more.
        assert_eq!(b.len(), 15);
        assert!(b.get(&ja4(1, "new")).is_none());
        drop(b);
        let b = Baseline::open(&BaselineConfig {
            retention_days: 1,
            max_entries: 16,
            ..cfg(dir.path())
        })
        .unwrap();
        assert_eq!(b.len(), 15, "the removals were committed too");
    }

    #[test]
    fn import_merges_without_doubling_counts() {
        let dir = tempfile::tempdir().unwrap();
        let mut b = Baseline::open(&cfg(dir.path())).unwrap();
        b.observe(ja4(1, "a"), at(10));
        b.observe(ja4(1, "a"), at(20));
        let export = b.pairs();
        assert_eq!(b.import(export.clone()).unwrap(), 1);
        assert_eq!(b.get(&ja4(1, "a")).unwrap().count, 2);
        let other = tempfile::tempdir().unwrap();
        let mut c = Baseline::open(&cfg(other.path())).unwrap();
        c.import(export).unwrap();
        assert!(
            c.observe(ja4(1, "a"), at(30)).is_none(),
            "known from the import"
        );
        assert_eq!(c.meta().created_ns, at(10).0);
    }

    #[test]
    fn a_second_process_on_the_same_store_is_refused_with_a_clear_message() {
        let dir = tempfile::tempdir().unwrap();
        let _b = Baseline::open(&cfg(dir.path())).unwrap();
        let err = Baseline::open(&cfg(dir.path())).err().unwrap().to_string();
        assert!(
            err.contains("baseline.redb") && err.contains("--state"),
            "{err}"
        );
    }
}
