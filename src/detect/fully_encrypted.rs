//! Fully encrypted proxies (Shadowsocks AEAD, VMess, obfs4, ...) claim no protocol: their first
//! bytes look uniformly random. That is itself the tell, because almost every protocol opens
//! with something recognisable.
//!
//! The figures are those of the Great Firewall's rules (Wu et al., USENIX Security 2023): a
//! payload is "fully encrypted" unless one of five exemptions holds (popcount band, printable
//! prefix, printable share, printable run, TLS/HTTP prefix). Applied alone they matched about
//! 0.6% of a university's connections, so this check adds what a censor's one-packet view
//! lacks: the flow's handshake was seen (the bytes are its opening, not a mid-stream slice), no
//! protocol probe matched, the bytes carry near-maximal entropy for their length, and the
//! server's history on this worker: a server all of whose recent flows open this way is a
//! proxy with far more certainty than one random-looking flow.

use serde::{Deserialize, Serialize};

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use super::check::{KeyError, KeyRange};
use crate::flow::Dir;
use crate::proto::entropy::{Exemption, PayloadFigures};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FullyEncryptedConfig {
    pub enabled: bool,
    pub block: bool,
    /// Shorter first payloads say too little about their distribution.
    pub min_payload_bytes: u32,
    /// Entropy as a share (percent) of the most a sample of its length can show.
    pub min_entropy_percent: u8,
    /// Confidence of one flow on its own.
    pub confidence: u8,
    /// Confidence once the server's recent flows are all fully encrypted, with at least
    /// `server_min_flows` of them.
    pub server_confidence: u8,
    pub server_min_flows: u32,
    /// Servers remembered per worker (a power of two; restart to change).
    pub server_slots: u32,
    /// A server not seen for this long starts a fresh history.
    pub server_window_secs: u32,
}

impl Default for FullyEncryptedConfig {
    fn default() -> Self {
        FullyEncryptedConfig {
            enabled: true,
            block: false,
            min_payload_bytes: 32,
            min_entropy_percent: 80,
            confidence: 70,
            server_confidence: 90,
            server_min_flows: 3,
            server_slots: 4096,
            server_window_secs: 3600,
        }
    }
}

impl FullyEncryptedConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.fully_encrypted",
        };
        keys.check(
            "min_payload_bytes",
            self.min_payload_bytes.into(),
            1,
            65_535,
        )?;
        keys.check(
            "min_entropy_percent",
            self.min_entropy_percent.into(),
            0,
            100,
        )?;
        keys.check("confidence", self.confidence.into(), 1, 100)?;
        keys.check("server_confidence", self.server_confidence.into(), 1, 100)?;
        keys.check(
            "server_min_flows",
            self.server_min_flows.into(),
            1,
            1_000_000,
        )?;
        keys.check("server_slots", self.server_slots.into(), 1, 1 << 24)?;
        keys.check(
            "server_window_secs",
            self.server_window_secs.into(),
            1,
            30 * 86_400,
        )?;
        Ok(())
    }
}

pub struct FullyEncryptedCheck {
    cfg: FullyEncryptedConfig,
}

impl FullyEncryptedCheck {
    pub fn new(cfg: &FullyEncryptedConfig) -> Self {
        FullyEncryptedCheck { cfg: cfg.clone() }
    }

    fn judge(&self, f: &PayloadFigures) -> Option<Exemption> {
        f.exemption()
    }
}

impl Check for FullyEncryptedCheck {
    fn on_event(&self, _view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Event::OpaqueFirstPayload { figures, server } = *event else {
            return;
        };
        if figures.len < self.cfg.min_payload_bytes as usize || self.judge(figures).is_some() {
            return;
        }
        let entropy_percent = figures.entropy_share * 100.0;
        if entropy_percent < f32::from(self.cfg.min_entropy_percent) {
            return;
        }
        let whole_server =
            server.judged >= self.cfg.server_min_flows && server.fully_encrypted == server.judged;
        let confidence = if whole_server {
            self.cfg.server_confidence
        } else {
            self.cfg.confidence
        };
        let mut f = Finding {
            kind: FindingKind::FullyEncryptedFirstPayload,
            confidence,
            block: self.cfg.block,
            dir: Dir::ToServer,
            evidence: Default::default(),
        };
        let e = &mut f.evidence;
        e.add("first_payload_bytes", figures.len);
        e.add(
            "popcount_per_byte",
            format_args!("{:.2}", figures.popcount_avg),
        );
        e.add("printable_prefix", figures.printable_prefix);
        e.add(
            "printable_percent",
            format_args!("{:.1}", figures.printable_share * 100.0),
        );
        e.add("longest_printable_run", figures.printable_run);
        e.add("protocol_prefix", figures.protocol_prefix);
        e.add(
            "entropy",
            format_args!(
                "{:.2} bits/byte ({entropy_percent:.0}% of the maximum)",
                figures.entropy
            ),
        );
        e.add(
            "server_flows",
            format_args!(
                "{} of {} recent flows fully encrypted",
                server.fully_encrypted, server.judged
            ),
        );
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::inspect::ServerTally;
    use crate::proto::DirIdent;
    use std::net::{IpAddr, Ipv4Addr};

    fn view() -> FlowView<'static> {
        FlowView {
            client_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            server_addr: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)),
            client_port: 40000,
            server_port: 8388,
            ident: [DirIdent::default(); 2],
            tls: None,
            trail: None,
            http: None,
            pkts: [1, 1],
            bytes: [0, 0],
            seen_from_start: [true, true],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        }
    }

    fn noise(n: usize, seed: u64) -> Vec<u8> {
        let mut x = seed | 1;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                (x >> 24) as u8
            })
            .collect()
    }

    fn run(cfg: &FullyEncryptedConfig, data: &[u8], server: ServerTally) -> Vec<Finding> {
        let figures = PayloadFigures::of(data);
        let mut out = Findings::default();
        FullyEncryptedCheck::new(cfg).on_event(
            &view(),
            &Event::OpaqueFirstPayload {
                figures: &figures,
                server,
            },
            &mut out,
        );
        out.iter().copied().collect()
    }

    const ONE: ServerTally = ServerTally {
        judged: 1,
        fully_encrypted: 1,
    };

    #[test]
    fn random_first_payload_is_flagged_with_every_figure() {
        let found = run(&FullyEncryptedConfig::default(), &noise(300, 7), ONE);
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.kind, FindingKind::FullyEncryptedFirstPayload);
        assert_eq!(f.confidence, 70);
        assert!(!f.block, "alert-only by default");
        for key in [
            "first_payload_bytes",
            "popcount_per_byte",
            "printable_prefix",
            "printable_percent",
            "longest_printable_run",
            "protocol_prefix",
            "entropy",
            "server_flows",
        ] {
            assert!(f.evidence.get(key).is_some(), "{key} missing");
        }
        assert_eq!(f.evidence.get("first_payload_bytes"), Some("300"));
    }

    #[test]
    fn a_server_whose_flows_are_all_random_raises_confidence() {
        let cfg = FullyEncryptedConfig::default();
        let all = ServerTally {
            judged: 3,
            fully_encrypted: 3,
        };
        assert_eq!(run(&cfg, &noise(300, 9), all)[0].confidence, 90);
        let mixed = ServerTally {
            judged: 5,
            fully_encrypted: 4,
        };
        assert_eq!(run(&cfg, &noise(300, 9), mixed)[0].confidence, 70);
    }

    #[test]
    fn exempt_short_or_low_entropy_payloads_are_not_flagged() {
        let cfg = FullyEncryptedConfig::default();
        assert!(run(&cfg, &noise(20, 3), ONE).is_empty(), "too short");
        let mut text = noise(300, 5);
        text[..8].copy_from_slice(b"MONGODB ");
        assert!(run(&cfg, &text, ONE).is_empty(), "printable prefix");
        // Mid-popcount but only 16 distinct byte values: structured, not ciphertext.
        let structured: Vec<u8> = (0..400).map(|i| [0x0f, 0xf0, 0x33, 0xcc][i % 4]).collect();
        assert!(run(&cfg, &structured, ONE).is_empty(), "low entropy");
    }

    #[test]
    fn other_events_are_ignored_and_bad_keys_are_named() {
        let mut out = Findings::default();
        FullyEncryptedCheck::new(&FullyEncryptedConfig::default()).on_event(
            &view(),
            &Event::FlowEnd,
            &mut out,
        );
        assert!(out.is_empty());
        let bad = FullyEncryptedConfig {
            min_entropy_percent: 101,
            ..FullyEncryptedConfig::default()
        };
        let err = bad.validate("u.toml").unwrap_err();
        assert_eq!(err.key, "detect.fully_encrypted.min_entropy_percent");
        assert!(err.to_string().contains("101"), "{err}");
    }
}
