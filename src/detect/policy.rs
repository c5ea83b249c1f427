//! What a finding does: per finding kind, how sure it must be to raise an alert, and how sure
//! to drop the flow in block mode. Alerting and blocking are separate promises: an alert asks
//! an analyst to look, a block says the flow was not what it claimed. The defaults are set on
//! the benign corpus (scripts/corpus.sh, docs/precision.md) so that no benign flow there is
//! blocked; a check's own `block = false` still keeps all its findings from blocking.
//!
//! A finding below its kind's alert floor is only recorded: counted in
//! `unmask_detect_findings_total{action="recorded"}` and named in its flow's record
//! (`unmask.recorded_findings`), for hunting and for host-level correlation.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::check::{Finding, FindingKind, KeyError};

/// A confidence no finding reaches (they are 0..=100): "never".
pub const NEVER: u8 = 101;

/// Built-in floors, by finding name, where they differ from 0 (alert) and 0 (block): the
/// reasons are in configs/unmask.toml beside each key.
const ALERT_DEFAULTS: &[(&str, u8)] = &[
    // Every honest upload of a megabyte or more is upload-heavy: a hunting signal, recorded.
    ("asymmetric_flow", NEVER),
    // Reverse proxies and CDNs relay too: recorded for hunting and correlation, not alerted.
    ("relayed", 50),
];

const BLOCK_DEFAULTS: &[(&str, u8)] = &[
    ("protocol_port_mismatch", 80),
    ("non_tls_on_tls_port", 90),
    ("opaque_on_cleartext_port", 85),
    ("protocol_direction_mismatch", 90),
    ("tls_malformed_handshake", 85),
    ("tls_answered_by_non_tls", 80),
    ("cert_name_mismatch", 80),
    ("http_header_signature", 85),
    ("http_header_anomaly", 90),
    ("fully_encrypted", 90),
];

/// `[detect.alert_min_confidence]`: finding name to floor. Its default lists the built-in
/// floors, so the shipped config documents them; a partial table keeps the others.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct AlertFloors(pub BTreeMap<String, u8>);

/// `[detect.block_min_confidence]`, as [`AlertFloors`].
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(transparent)]
pub struct BlockFloors(pub BTreeMap<String, u8>);

fn table(defaults: &[(&str, u8)]) -> BTreeMap<String, u8> {
    defaults.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

impl Default for AlertFloors {
    fn default() -> Self {
        AlertFloors(table(ALERT_DEFAULTS))
    }
}

impl Default for BlockFloors {
    fn default() -> Self {
        BlockFloors(table(BLOCK_DEFAULTS))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FindingPolicy {
    alert_min: [u8; FindingKind::COUNT],
    block_min: [u8; FindingKind::COUNT],
}

impl Default for FindingPolicy {
    fn default() -> Self {
        let mut p = FindingPolicy {
            alert_min: [0; FindingKind::COUNT],
            block_min: [0; FindingKind::COUNT],
        };
        for (table, defaults) in [
            (&mut p.alert_min, ALERT_DEFAULTS),
            (&mut p.block_min, BLOCK_DEFAULTS),
        ] {
            for (name, min) in defaults {
                if let Some(k) = kind_named(name) {
                    table[k.index()] = *min;
                }
            }
        }
        p
    }
}

fn kind_named(name: &str) -> Option<FindingKind> {
    FindingKind::ALL.iter().copied().find(|k| k.name() == name)
}

impl FindingPolicy {
    /// The built-in floors with the config's tables laid over them. `path` names the config
    /// file in errors; a key must be a finding name and a value 0..=101 (101: never).
    pub fn from_tables(
        alert: &BTreeMap<String, u8>,
        block: &BTreeMap<String, u8>,
        path: &str,
    ) -> Result<FindingPolicy, KeyError> {
        let mut p = FindingPolicy::default();
        for (section, table, dest) in [
            ("detect.alert_min_confidence", alert, &mut p.alert_min),
            ("detect.block_min_confidence", block, &mut p.block_min),
        ] {
            for (name, &min) in table {
                let Some(kind) = kind_named(name) else {
                    let names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.name()).collect();
                    return Err(KeyError {
                        path: path.into(),
                        key: format!("{section}.{name}"),
                        message: format!(
                            "unknown finding {name:?}; accepted: {}",
                            names.join(", ")
                        ),
                    });
                };
                if min > NEVER {
                    return Err(KeyError {
                        path: path.into(),
                        key: format!("{section}.{name}"),
                        message: format!(
                            "invalid value {min}; accepted: 0 to 100 (a confidence), or 101 (never)"
                        ),
                    });
                }
                dest[kind.index()] = min;
            }
        }
        Ok(p)
    }

    /// The finding is sure enough to raise an alert.
    pub fn alerts(&self, f: &Finding) -> bool {
        f.confidence >= self.alert_min[f.kind.index()]
    }

    /// In block mode, the finding drops its flow: its check blocks and it is sure enough.
    pub fn blocks(&self, f: &Finding) -> bool {
        f.block && self.alerts(f) && f.confidence >= self.block_min[f.kind.index()]
    }

    pub fn alert_min(&self, kind: FindingKind) -> u8 {
        self.alert_min[kind.index()]
    }

    pub fn block_min(&self, kind: FindingKind) -> u8 {
        self.block_min[kind.index()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Dir;

    fn finding(kind: FindingKind, confidence: u8, block: bool) -> Finding {
        Finding {
            kind,
            confidence,
            block,
            dir: Dir::ToServer,
            evidence: Default::default(),
        }
    }

    #[test]
    fn every_default_names_a_finding() {
        for (name, _) in ALERT_DEFAULTS.iter().chain(BLOCK_DEFAULTS) {
            assert!(kind_named(name).is_some(), "{name}");
        }
    }

    #[test]
    fn weak_findings_alert_and_strong_ones_block() {
        let p = FindingPolicy::default();
        let weak = finding(FindingKind::HttpHeaderAnomaly, 70, true);
        let strong = finding(FindingKind::HttpHeaderAnomaly, 95, true);
        assert!(p.alerts(&weak) && !p.blocks(&weak));
        assert!(p.alerts(&strong) && p.blocks(&strong));
        // A check with block = false never blocks, however sure.
        assert!(!p.blocks(&finding(FindingKind::HttpHeaderAnomaly, 100, false)));
        // Upload-heavy flows are recorded, not alerted.
        assert!(!p.alerts(&finding(FindingKind::AsymmetricFlow, 100, false)));
    }

    #[test]
    fn tables_override_and_bad_keys_are_named() {
        let mut alert = BTreeMap::new();
        alert.insert("asymmetric_flow".to_string(), 50);
        let mut block = BTreeMap::new();
        block.insert("http_header_anomaly".to_string(), NEVER);
        let p = FindingPolicy::from_tables(&alert, &block, "u.toml").unwrap();
        assert!(p.alerts(&finding(FindingKind::AsymmetricFlow, 60, false)));
        assert!(!p.blocks(&finding(FindingKind::HttpHeaderAnomaly, 100, true)));

        block.insert("http_header_anomally".to_string(), 90);
        let e = FindingPolicy::from_tables(&alert, &block, "u.toml").unwrap_err();
        assert_eq!(e.key, "detect.block_min_confidence.http_header_anomally");
        assert!(e.message.contains("http_header_anomaly"), "{}", e.message);
        let mut alert = BTreeMap::new();
        alert.insert("tls_in_tls".to_string(), 102);
        let e = FindingPolicy::from_tables(&alert, &BTreeMap::new(), "u.toml").unwrap_err();
        assert_eq!(e.key, "detect.alert_min_confidence.tls_in_tls");
        assert!(e.message.contains("101 (never)"), "{}", e.message);
    }
}
