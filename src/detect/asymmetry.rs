//! Upload-heavy flows: client-to-server bytes far above server-to-client bytes, judged at flow
//! end and periodically on long flows.
//!
//! Exfiltration dressed up as web traffic moves data the "wrong" way: a browser downloads far
//! more than it sends. But so does every legitimate upload (a file POST, a backup, a video
//! call's sending side), so this is a low-severity signal that never blocks by default; it is
//! meant to be read next to the flow's other findings.
//!
//! Bytes are wire bytes (frames), as the flow table counts them. A pure upload still sends the
//! server's ACKs back, one small frame per one or two full segments, so in wire bytes even a
//! one-way transfer shows a ratio of about 20 to 60, never infinity.

use serde::{Deserialize, Serialize};

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use super::check::{KeyError, KeyRange};
use crate::flow::Dir;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsymmetryConfig {
    pub enabled: bool,
    pub block: bool,
    /// Client-to-server bytes must be at least this many times server-to-client bytes.
    pub ratio: u32,
    /// ... and at least this many bytes.
    pub min_bytes: u64,
}

impl Default for AsymmetryConfig {
    fn default() -> Self {
        AsymmetryConfig {
            enabled: true,
            block: false,
            ratio: 10,
            min_bytes: 1024 * 1024,
        }
    }
}

impl AsymmetryConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.asymmetry",
        };
        keys.check("ratio", u64::from(self.ratio), 1, 1_000_000)?;
        keys.check("min_bytes", self.min_bytes, 1, 1 << 50)?;
        Ok(())
    }
}

pub struct AsymmetryCheck {
    cfg: AsymmetryConfig,
}

impl AsymmetryCheck {
    pub fn new(cfg: &AsymmetryConfig) -> Self {
        AsymmetryCheck { cfg: cfg.clone() }
    }
}

/// Confidence at the configured ratio; each doubling beyond it adds [`CONFIDENCE_PER_DOUBLING`].
const BASE_CONFIDENCE: u8 = 50;
const CONFIDENCE_PER_DOUBLING: u8 = 10;
const MAX_CONFIDENCE: u8 = 90;

impl Check for AsymmetryCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        // The engine raises a kind once per flow, so judging again at every periodic look and
        // at the end costs two comparisons and alerts once.
        if !matches!(event, Event::Periodic | Event::FlowEnd) {
            return;
        }
        let up = view.bytes[Dir::ToServer.index()];
        let down = view.bytes[Dir::ToClient.index()];
        if up < self.cfg.min_bytes {
            return;
        }
        // TCP cannot move min_bytes without acknowledgements: a flow whose server side was
        // never seen is a capture or routing artefact (a tap on one direction), not an upload.
        if view.pkts[Dir::ToClient.index()] == 0 {
            return;
        }
        let ratio = u64::from(self.cfg.ratio);
        // A product past u64 is more than any counter holds: not asymmetric.
        match down.checked_mul(ratio) {
            Some(needed) if up >= needed => {}
            _ => return,
        }
        // down > 0 here: at least one server packet of at least one byte was counted.
        let times = up / down.max(1) / ratio;
        let doublings = u8::try_from(times.max(1).ilog2()).unwrap_or(u8::MAX);
        let confidence = BASE_CONFIDENCE
            .saturating_add(doublings.saturating_mul(CONFIDENCE_PER_DOUBLING))
            .min(MAX_CONFIDENCE);
        let mut f = Finding {
            kind: FindingKind::AsymmetricFlow,
            confidence,
            block: self.cfg.block,
            dir: Dir::ToServer,
            evidence: Default::default(),
        };
        f.evidence.add("bytes_toserver", up);
        f.evidence.add("bytes_toclient", down);
        f.evidence
            .add("ratio", format_args!("{}", up / down.max(1)));
        f.evidence.add("ratio_threshold", ratio);
        f.evidence.add("min_bytes", self.cfg.min_bytes);
        f.evidence.add(
            "judged_at",
            if matches!(event, Event::FlowEnd) {
                "flow_end"
            } else {
                "periodic"
            },
        );
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::proto::DirIdent;

    fn view(pkts: [u64; 2], bytes: [u64; 2]) -> FlowView<'static> {
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            client_port: 50000,
            server_port: 443,
            ident: [DirIdent::default(); 2],
            tls: None,
            trail: None,
            http: None,
            pkts,
            bytes,
            seen_from_start: [true; 2],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        }
    }

    fn run(cfg: &AsymmetryConfig, v: &FlowView, e: Event) -> Vec<Finding> {
        let mut out = Findings::default();
        AsymmetryCheck::new(cfg).on_event(v, &e, &mut out);
        out.iter().copied().collect()
    }

    /// A one-way transfer of `n` bytes in full 1514-byte frames, each acknowledged by a
    /// 66-byte frame every `ack_every` segments, and a reply of `reply` bytes.
    fn upload(n: u64, ack_every: u64, reply: u64) -> FlowView<'static> {
        let segs = n.div_ceil(1448);
        let acks = segs.div_ceil(ack_every);
        view(
            [segs + 3, acks + 3],
            [segs * 1514 + 200, acks * 66 + reply + 200],
        )
    }

    #[test]
    fn a_pure_upload_is_asymmetric_even_counting_acks() {
        let cfg = AsymmetryConfig::default();
        for ack_every in [1, 2] {
            let v = upload(4 << 20, ack_every, 300);
            let found = run(&cfg, &v, Event::FlowEnd);
            assert_eq!(found.len(), 1, "ack every {ack_every}");
            let f = &found[0];
            assert_eq!(f.kind, FindingKind::AsymmetricFlow);
            assert!(!f.block, "a low-severity signal: never blocks by default");
            assert_eq!(f.dir, Dir::ToServer);
            assert_eq!(f.evidence.get("judged_at"), Some("flow_end"));
            assert_eq!(f.evidence.get("ratio_threshold"), Some("10"));
            // Per-segment ACKs give ~21:1, delayed ACKs ~42:1.
            let ratio: u64 = f.evidence.get("ratio").unwrap().parse().unwrap();
            assert!((15..50).contains(&ratio), "{ratio}");
            assert!(f.confidence >= 50 && f.confidence <= 70, "{}", f.confidence);
        }
    }

    #[test]
    fn periodic_looks_judge_long_flows_too() {
        let cfg = AsymmetryConfig::default();
        let found = run(&cfg, &upload(2 << 20, 2, 0), Event::Periodic);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].evidence.get("judged_at"), Some("periodic"));
        // Other events are not this check's moment.
        assert!(run(
            &cfg,
            &upload(2 << 20, 2, 0),
            Event::Identified {
                dir: Dir::ToServer,
                data: b""
            }
        )
        .is_empty());
    }

    #[test]
    fn downloads_interactive_and_small_flows_are_not_flagged() {
        let cfg = AsymmetryConfig::default();
        // A download: the mirror image of an upload.
        assert!(run(
            &cfg,
            &view([800, 5000], [60_000, 7_500_000]),
            Event::FlowEnd
        )
        .is_empty());
        // Interactive, both ways alike.
        assert!(run(
            &cfg,
            &view([9000, 9000], [3_000_000, 2_800_000]),
            Event::FlowEnd
        )
        .is_empty());
        // Asymmetric but below min_bytes: a form post.
        assert!(run(&cfg, &upload(600_000, 1, 300), Event::FlowEnd).is_empty());
        // Exactly at the threshold counts.
        let v = view([700, 10], [1_048_576, 104_857]);
        assert_eq!(run(&cfg, &v, Event::FlowEnd).len(), 1);
        let v = view([700, 10], [1_048_576, 104_858]);
        assert!(run(&cfg, &v, Event::FlowEnd).is_empty());
    }

    #[test]
    fn a_one_sided_capture_is_not_an_upload() {
        let cfg = AsymmetryConfig::default();
        assert!(run(&cfg, &view([5000, 0], [7_000_000, 0]), Event::FlowEnd).is_empty());
    }

    #[test]
    fn confidence_grows_with_each_doubling_and_is_capped() {
        let cfg = AsymmetryConfig::default();
        let conf =
            |down: u64| run(&cfg, &view([1, 1], [10_240_000, down]), Event::FlowEnd)[0].confidence;
        assert_eq!(conf(1_024_000), 50);
        assert_eq!(conf(512_000), 60);
        assert_eq!(conf(256_000), 70);
        assert_eq!(conf(1), 90);
        // Huge counters do not overflow.
        let v = view([u64::MAX, 1], [u64::MAX, u64::MAX / 2]);
        assert!(run(&cfg, &v, Event::FlowEnd).is_empty());
        let v = view([u64::MAX, 1], [u64::MAX, 1]);
        assert_eq!(run(&cfg, &v, Event::FlowEnd)[0].confidence, 90);
    }

    #[test]
    fn ratio_and_min_bytes_are_tunable() {
        let v = upload(4 << 20, 2, 300);
        let strict = AsymmetryConfig {
            ratio: 100,
            ..AsymmetryConfig::default()
        };
        assert!(run(&strict, &v, Event::FlowEnd).is_empty());
        let big = AsymmetryConfig {
            min_bytes: 64 << 20,
            ..AsymmetryConfig::default()
        };
        assert!(run(&big, &v, Event::FlowEnd).is_empty());
        let blocking = AsymmetryConfig {
            block: true,
            ..AsymmetryConfig::default()
        };
        assert!(run(&blocking, &v, Event::FlowEnd)[0].block);
    }

    #[test]
    fn validation_names_key_value_and_range() {
        let bad = AsymmetryConfig {
            ratio: 0,
            ..AsymmetryConfig::default()
        };
        let e = bad.validate("u.toml").unwrap_err().to_string();
        assert!(e.contains("detect.asymmetry.ratio"), "{e}");
        assert!(e.contains("invalid value 0; accepted: 1 to 1000000"), "{e}");
        let bad = AsymmetryConfig {
            min_bytes: 0,
            ..AsymmetryConfig::default()
        };
        assert!(bad.validate("u.toml").is_err());
        assert!(AsymmetryConfig::default().validate("u.toml").is_ok());
    }
}
