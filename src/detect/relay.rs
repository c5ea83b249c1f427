//! Relays: a server whose answers come one leg later than its transport round trip explains.
//!
//! A proxy server (Shadowsocks, VMess, Trojan, an HTTPS proxy) answers TCP itself, so the
//! transport RTT the appliance times to it is the client's path to the relay. Its answers to
//! requests, though, come from an origin elsewhere: each one carries the relay's extra leg
//! (relay → origin → relay). A server that answers from its own memory only adds think time,
//! which varies from request to request and is close to nothing for protocol handshakes.
//! `flow::rtt` times both layers; this check runs a sequential test over a flow's pairs.
//!
//! Each pair *shows the leg* when its application RTT exceeds the server-side transport RTT by
//! at least `min_excess_ms` and `excess_ratio_pct` of that RTT. Wald's sequential probability
//! ratio test then weighs the pairs: a relayed flow shows the leg on most pairs (taken as
//! [`P_RELAYED`]), a direct one on few ([`P_DIRECT`]: its slow requests). The test starts at
//! the first pair that shows the leg, so the fast answers a relay gives itself before it
//! forwards anything (an outer TLS handshake, a WebSocket upgrade) are not held against it;
//! but it starts at the latest with pair [`MAX_LEADING_FAST`] + 1, so a long run of fast
//! answers does count. It stops at the first boundary it crosses (`false_alarm_pct`,
//! `miss_pct`), or after `max_pairs` pairs or `max_packets` packets undecided.
//!
//! A relay's legs are one network path each, so they must also agree (`agreeing_leg`): an
//! origin that thinks 30 ms on one request and 150 ms on the next is not a relay, however slow
//! both answers are.
//!
//! A weak signal on its own: reverse proxies and CDNs relay too, and an origin that thinks
//! for a similar time on every request looks the same. Its confidence is low and its alert
//! floor above it by default, so it is recorded on the flow (and in the counters) rather than
//! alerted; see docs/detections.md for its thresholds and known evasions.

use serde::{Deserialize, Serialize};

use super::check::{Evidence, Finding, FindingKind, KeyError, KeyRange};
use crate::flow::rtt::RttSample;
use crate::flow::Dir;

/// Share of pairs that show the leg on a relayed flow (the test's alternative hypothesis).
pub const P_RELAYED: f32 = 0.8;
/// Share of pairs that show the leg on a direct flow (its null hypothesis).
pub const P_DIRECT: f32 = 0.2;
/// Fast answers a flow may give before the test starts anyway.
pub const MAX_LEADING_FAST: u8 = 4;
/// Legs kept per flow for the agreement rule (the pairs past them still count in the test).
pub const LEGS_KEPT: usize = 8;
/// How far a leg may lie from the shortest one (or from twice it) and still agree with it:
/// this much, or a quarter of the shortest leg when that is more.
pub const AGREE_MIN_US: u32 = 8_000;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct RelayConfig {
    pub enabled: bool,
    pub block: bool,
    /// Least extra time over the server-side transport RTT for a pair to show a leg.
    pub min_excess_ms: u32,
    /// ... and at least this share of the server-side transport RTT, in percent.
    pub excess_ratio_pct: u32,
    /// Pairs that must show the leg before the flow is called relayed.
    pub min_legs: u8,
    /// The test's false-alarm rate (alpha) and miss rate (beta), in percent.
    pub false_alarm_pct: u8,
    pub miss_pct: u8,
    /// Pairs timed per flow at most; past them an undecided flow stays undecided.
    pub max_pairs: u8,
    /// Packets per flow after which its RTTs are no longer watched (bulk transfers).
    pub max_packets: u32,
    /// Confidence of the finding (below the default alert floor for `relayed`).
    pub confidence: u8,
}

impl Default for RelayConfig {
    fn default() -> Self {
        RelayConfig {
            enabled: true,
            block: false,
            min_excess_ms: 15,
            excess_ratio_pct: 50,
            min_legs: 2,
            false_alarm_pct: 10,
            miss_pct: 10,
            max_pairs: 8,
            max_packets: 64,
            confidence: 30,
        }
    }
}

impl RelayConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.relay",
        };
        keys.check("min_excess_ms", u64::from(self.min_excess_ms), 1, 60_000)?;
        keys.check(
            "excess_ratio_pct",
            u64::from(self.excess_ratio_pct),
            0,
            10_000,
        )?;
        keys.check("min_legs", u64::from(self.min_legs), 1, 32)?;
        keys.check("false_alarm_pct", u64::from(self.false_alarm_pct), 1, 49)?;
        keys.check("miss_pct", u64::from(self.miss_pct), 1, 49)?;
        keys.check("max_pairs", u64::from(self.max_pairs), 1, 64)?;
        keys.check("max_packets", u64::from(self.max_packets), 1, 1 << 30)?;
        keys.check("confidence", u64::from(self.confidence), 0, 100)?;
        if self.min_legs > self.max_pairs {
            return Err(keys.error(
                "min_legs",
                format!(
                    "invalid value {}: more than max_pairs ({}); accepted: 1 to max_pairs",
                    self.min_legs, self.max_pairs
                ),
            ));
        }
        Ok(())
    }
}

/// Where a flow's test stands.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Decision {
    #[default]
    Undecided,
    Relayed,
    Direct,
}

/// One flow's test: 28 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct RelayTest {
    /// Log-likelihood ratio, relayed against direct.
    llr: f32,
    /// Least application RTT among the pairs that showed the leg, microseconds.
    app_min_us: u32,
    /// The excess of each pair that showed the leg, in units of 100 us (saturating), the first
    /// [`LEGS_KEPT`].
    legs_100us: [u16; LEGS_KEPT],
    pairs: u8,
    legs: u8,
    started: bool,
    pub decision: Decision,
}

pub struct RelayCheck {
    cfg: RelayConfig,
    /// The log-likelihood steps of a pair that shows the leg and of one that does not, and
    /// the test's two boundaries.
    step_leg: f32,
    step_fast: f32,
    upper: f32,
    lower: f32,
    min_gap_ns: u64,
}

/// Microseconds printed as milliseconds with one decimal.
struct Ms(u32);

impl std::fmt::Display for Ms {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.0 / 1_000, self.0 % 1_000 / 100)
    }
}

impl RelayCheck {
    pub fn new(cfg: &RelayConfig) -> Self {
        let alpha = f32::from(cfg.false_alarm_pct) / 100.0;
        let beta = f32::from(cfg.miss_pct) / 100.0;
        RelayCheck {
            cfg: cfg.clone(),
            step_leg: (P_RELAYED / P_DIRECT).ln(),
            step_fast: ((1.0 - P_RELAYED) / (1.0 - P_DIRECT)).ln(),
            upper: ((1.0 - beta) / alpha).ln(),
            lower: (beta / (1.0 - alpha)).ln(),
            min_gap_ns: u64::from(cfg.min_excess_ms) * 1_000_000,
        }
    }

    /// The quiet time before a continuation counts (see `flow::rtt`), in nanoseconds.
    #[inline]
    pub fn min_gap_ns(&self) -> u64 {
        self.min_gap_ns
    }

    /// Whether a flow that has sent this many packets is past the watch.
    #[inline]
    pub fn packets_done(&self, packets: u64) -> bool {
        packets >= u64::from(self.cfg.max_packets)
    }

    /// Whether the flow's RTTs need no more watching: decided, or out of pairs or packets.
    pub fn finished(&self, test: &RelayTest, packets: u64) -> bool {
        test.decision != Decision::Undecided
            || test.pairs >= self.cfg.max_pairs
            || packets >= u64::from(self.cfg.max_packets)
    }

    /// Whether this pair's application RTT shows an extra leg.
    pub fn shows_leg(&self, s: &RttSample) -> bool {
        let ratio = u64::from(s.server_us) * u64::from(self.cfg.excess_ratio_pct) / 100;
        let need = ratio.max(u64::from(self.cfg.min_excess_ms) * 1_000);
        u64::from(s.excess_us()) >= need
    }

    /// Takes one pair into the flow's test; returns the finding when the test decides the
    /// flow is relayed (once: a decided test takes no more pairs).
    pub fn judge(&self, test: &mut RelayTest, s: &RttSample) -> Option<Finding> {
        if test.decision != Decision::Undecided || test.pairs >= self.cfg.max_pairs {
            return None;
        }
        // An answer sooner than half the transport round trip was on its way before the
        // request reached the server: records crossing on the wire (a relay's client that
        // sends its own data before the server's flight has ended, as shoes' ShadowTLS client
        // does). It answers nothing, so it says nothing about a leg either way.
        if s.app_us.saturating_mul(2) < s.server_us {
            return None;
        }
        test.pairs += 1;
        let leg = self.shows_leg(s);
        if !test.started {
            if !leg && test.pairs <= MAX_LEADING_FAST {
                return None;
            }
            test.started = true;
        }
        if leg {
            test.llr += self.step_leg;
            if let Some(slot) = test.legs_100us.get_mut(usize::from(test.legs)) {
                *slot = u16::try_from(s.excess_us() / 100).unwrap_or(u16::MAX);
            }
            test.legs += 1;
            if test.legs == 1 || s.app_us < test.app_min_us {
                test.app_min_us = s.app_us;
            }
        } else {
            test.llr += self.step_fast;
        }
        if test.llr <= self.lower {
            test.decision = Decision::Direct;
            return None;
        }
        if test.llr < self.upper || test.legs < self.cfg.min_legs {
            return None;
        }
        let Some(leg_us) = agreeing_leg(&test.legs_100us[..usize::from(test.legs).min(LEGS_KEPT)])
        else {
            // Slow answers, but of different lengths: think time, not a fixed extra leg. The
            // test goes on; a later leg may still make them agree (never after max_pairs).
            return None;
        };
        test.decision = Decision::Relayed;
        let mut evidence = Evidence::default();
        evidence.add("extra_leg_ms", Ms(leg_us));
        evidence.add("app_rtt_ms", Ms(test.app_min_us));
        evidence.add("transport_rtt_server_ms", Ms(s.server_us));
        evidence.add("transport_rtt_client_ms", Ms(s.client_us));
        evidence.add("pairs", test.pairs);
        evidence.add("legs", test.legs);
        evidence.add("llr", format_args!("{:.2}", test.llr));
        evidence.add("decision", "relayed");
        Some(Finding {
            kind: FindingKind::Relayed,
            confidence: self.cfg.confidence,
            block: self.cfg.block,
            dir: Dir::ToClient,
            evidence,
        })
    }
}

/// The relay's leg when the legs agree on one: every leg after the first within a tolerance
/// of the shortest of them, and the first either within that tolerance too or longer, up to
/// twice the shortest (a relay's first answer may also wait for its connection to the origin:
/// up to one more leg). A relay's legs are one network path each; an origin's think time
/// varies from request to request.
fn agreeing_leg(legs_100us: &[u16]) -> Option<u32> {
    let (first, rest) = legs_100us.split_first()?;
    let us = |l: &u16| u32::from(*l) * 100;
    let Some(min) = rest.iter().map(us).min() else {
        return Some(us(first));
    };
    let tol = AGREE_MIN_US.max(min / 4);
    let first = us(first);
    if !rest.iter().all(|l| us(l) <= min + tol) || first + tol < min {
        return None;
    }
    if first <= min + tol {
        return Some(first.min(min));
    }
    (first <= 2 * min + tol).then_some(min)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pair(app_ms: u32, server_ms: u32) -> RttSample {
        RttSample {
            app_us: app_ms * 1_000,
            server_us: server_ms * 1_000,
            client_us: 500,
            continuation: false,
        }
    }

    fn run(check: &RelayCheck, apps: &[u32], server_ms: u32) -> (RelayTest, Option<Finding>) {
        let mut t = RelayTest::default();
        let mut found = None;
        for &a in apps {
            if let Some(f) = check.judge(&mut t, &pair(a, server_ms)) {
                assert!(found.is_none(), "one finding per flow");
                found = Some(f);
            }
        }
        (t, found)
    }

    #[test]
    fn a_relay_behind_an_outer_handshake_is_found_with_its_evidence() {
        let check = RelayCheck::new(&RelayConfig::default());
        // Outer TLS handshake answered by the relay (20 ms), then the origin 80 ms further.
        let (t, f) = run(&check, &[21, 20, 181, 101, 102], 20);
        assert_eq!(t.decision, Decision::Relayed);
        let f = f.expect("relayed");
        assert_eq!(f.kind, FindingKind::Relayed);
        assert_eq!(f.confidence, 30);
        assert_eq!(f.evidence.get("extra_leg_ms"), Some("81.0"));
        assert_eq!(f.evidence.get("app_rtt_ms"), Some("101.0"));
        assert_eq!(f.evidence.get("transport_rtt_server_ms"), Some("20.0"));
        assert_eq!(f.evidence.get("transport_rtt_client_ms"), Some("0.5"));
        assert_eq!(f.evidence.get("pairs"), Some("4"));
        assert_eq!(f.evidence.get("legs"), Some("2"));
        assert_eq!(f.evidence.get("decision"), Some("relayed"));
    }

    #[test]
    fn direct_flows_and_one_slow_request_are_not_relayed() {
        let check = RelayCheck::new(&RelayConfig::default());
        let (t, f) = run(&check, &[21, 20, 22], 20);
        assert!(f.is_none());
        assert_eq!(t.decision, Decision::Undecided);
        // A slow origin: fast handshake, one request that took 150 ms to think about.
        let (_, f) = run(&check, &[21, 20, 170], 20);
        assert!(f.is_none());
        // Variable think time on a kept-alive connection: one slow answer, then three fast
        // ones decide direct, and the slow ones after that are not taken.
        let (t, f) = run(&check, &[21, 20, 170, 22, 25, 24, 190, 200], 20);
        assert!(f.is_none());
        assert_eq!(t.decision, Decision::Direct);
    }

    #[test]
    fn slow_answers_of_different_lengths_are_think_time() {
        let check = RelayCheck::new(&RelayConfig::default());
        // Two slow requests, 150 and 50 ms over the RTT: neither one leg nor two apart.
        let (t, f) = run(&check, &[21, 20, 170, 70], 20);
        assert!(f.is_none());
        assert_eq!(t.decision, Decision::Undecided);
        assert_eq!(t.legs, 2);
        // Two legs, then one: a relay's first answer waiting for its origin connection too.
        let (_, f) = run(&check, &[180, 100], 20);
        assert_eq!(
            f.expect("relayed").evidence.get("extra_leg_ms"),
            Some("80.0")
        );
    }

    #[test]
    fn legs_agree_within_a_quarter_or_8_ms() {
        assert_eq!(agreeing_leg(&[800, 1000]), Some(80_000));
        assert_eq!(agreeing_leg(&[1000, 800]), Some(80_000));
        assert_eq!(agreeing_leg(&[800, 800, 1001]), None);
        // A longer first leg (the relay's connect too): up to twice the others, and a quarter.
        assert_eq!(agreeing_leg(&[1600, 800, 900]), Some(80_000));
        assert_eq!(agreeing_leg(&[1200, 800]), Some(80_000));
        assert_eq!(agreeing_leg(&[1800, 800]), Some(80_000));
        assert_eq!(agreeing_leg(&[1801, 800]), None);
        assert_eq!(agreeing_leg(&[599, 800]), None);
        // Short legs: 8 ms rather than a quarter.
        assert_eq!(agreeing_leg(&[200, 200, 280]), Some(20_000));
        assert_eq!(agreeing_leg(&[200, 200, 281]), None);
        assert_eq!(agreeing_leg(&[700]), Some(70_000));
        assert_eq!(agreeing_leg(&[]), None);
        assert_eq!(agreeing_leg(&[u16::MAX, u16::MAX]), Some(6_553_500));
    }

    #[test]
    fn answers_that_crossed_their_request_are_not_pairs() {
        let check = RelayCheck::new(&RelayConfig::default());
        // relaylab, ShadowTLS with delay lines: the ClientHello answered through the origin,
        // then the client's early records crossing the server's flight (answered in 0.1 ms
        // over a 20 ms round trip), then its request answered one leg late.
        let (t, f) = run(&check, &[202, 0, 0, 187], 20);
        assert_eq!(t.pairs, 2);
        assert_eq!(
            f.expect("relayed").evidence.get("extra_leg_ms"),
            Some("167.0")
        );
        // Half the round trip is still an answer (a direct server's, here).
        let (t, _) = run(&check, &[10, 10, 10], 20);
        assert_eq!(t.pairs, 3);
    }

    #[test]
    fn leading_fast_answers_count_after_the_fourth() {
        let check = RelayCheck::new(&RelayConfig::default());
        // Five fast answers, then two slow ones: the fifth starts the test against a relay.
        let (t, f) = run(&check, &[20, 20, 20, 20, 20, 200, 200], 20);
        assert!(f.is_none());
        assert_eq!(t.legs, 2);
        assert_eq!(t.decision, Decision::Undecided);
    }

    #[test]
    fn the_leg_must_exceed_both_the_minimum_and_the_ratio() {
        let check = RelayCheck::new(&RelayConfig::default());
        // 15 ms over a 20 ms RTT: the minimum (15) and half the RTT (10) are both met.
        assert!(check.shows_leg(&pair(35, 20)));
        assert!(!check.shows_leg(&pair(34, 20)));
        // Over a 100 ms RTT the ratio rules: 50 ms needed.
        assert!(!check.shows_leg(&pair(149, 100)));
        assert!(check.shows_leg(&pair(150, 100)));
    }

    #[test]
    fn bounds_stop_the_watch() {
        let cfg = RelayConfig {
            max_pairs: 3,
            ..RelayConfig::default()
        };
        let check = RelayCheck::new(&cfg);
        let (t, f) = run(&check, &[20, 20, 20, 200, 200], 20);
        assert!(f.is_none(), "pairs past max_pairs are not taken");
        assert!(check.finished(&t, 10));
        assert!(check.finished(&RelayTest::default(), 64));
        assert!(!check.finished(&RelayTest::default(), 63));
    }

    #[test]
    fn config_errors_name_the_key() {
        let bad = RelayConfig {
            min_legs: 9,
            ..RelayConfig::default()
        };
        let e = bad.validate("u.toml").unwrap_err().to_string();
        assert!(
            e.contains("u.toml") && e.contains("detect.relay.min_legs"),
            "{e}"
        );
        let bad = RelayConfig {
            false_alarm_pct: 0,
            ..RelayConfig::default()
        };
        let e = bad.validate("u.toml").unwrap_err().to_string();
        assert!(
            e.contains("detect.relay.false_alarm_pct") && e.contains("1 to 49"),
            "{e}"
        );
        RelayConfig::default().validate("u.toml").unwrap();
    }
}
