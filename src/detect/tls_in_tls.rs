//! A TLS handshake tunnelled inside a TLS session (Trojan, VLESS, VMess over TLS, HTTPS
//! CONNECT proxies, WebSocket-over-TLS transports). The outer session is genuine, so nothing
//! it claims is false; what betrays it is the shape of its first records: an inner ClientHello,
//! the server's certificate flight in answer, then the client's small key-exchange/Finished
//! burst and the server's reply, all as encrypted application data.
//!
//! The check reads the record trail `inspect` keeps (sizes with the outer cipher's overhead
//! removed, grouped into bursts of one direction) and looks for, at the first or second
//! client burst (the second leaves room for a CONNECT request or a WebSocket upgrade):
//! 1. a client burst whose first record is ClientHello-sized (with the proxy's own header);
//! 2. a server burst at least `server_flight_min` bytes and `flight_over_hello_percent` of it;
//!    or, for a browser's large hello (post-quantum key shares), `short_flight_over_hello_percent`
//!    of it but not within `echo_tolerance_percent` of it (an echo answers in kind), and then a
//!    key-exchange record no larger than `short_flight_key_exchange_max`;
//! 3. a client burst that opens with a key-exchange/Finished-sized record (the request may follow
//!    in the same burst, as its own records) and whose records are all larger than HTTP/2
//!    control frames (a browser's SETTINGS ACK or WINDOW_UPDATE is 9-13 bytes);
//! 4. a server burst in answer; or, when the flow ends without one (a browser's idle
//!    pre-connection, closed after its handshake), a key exchange whose first record has the
//!    exact size of an inner Finished or key exchange (`unanswered_key_exchange_sizes`), at
//!    `unanswered_confidence`.
//!
//! Known evasions (docs/behaviour.md): padding the first records (XTLS-Vision, VMess random
//! padding past the bounds), multiplexing many streams on one session, session resumption
//! (no certificate flight).

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use super::check::{KeyError, KeyRange};
use crate::flow::Dir;
use crate::inspect::RecordTrail;
use crate::text::InlineStr;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsInTlsConfig {
    pub enabled: bool,
    pub block: bool,
    /// Inner ClientHello record, proxy header included (bytes).
    pub hello_min: u32,
    pub hello_max: u32,
    /// The server's answer: its certificate flight.
    pub server_flight_min: u32,
    pub flight_over_hello_percent: u32,
    /// A flight smaller than `flight_over_hello_percent` of the hello still counts at this
    /// share, away from an echo, when the key exchange that follows is this short.
    pub short_flight_over_hello_percent: u32,
    pub echo_tolerance_percent: u32,
    pub short_flight_key_exchange_max: u32,
    /// The first record of the client's key exchange / Finished burst (bytes), the burst's
    /// total (the first request may follow in it), and the smallest record in it.
    pub key_exchange_min: u32,
    pub key_exchange_max: u32,
    pub key_exchange_burst_max: u32,
    pub key_exchange_record_min: u32,
    /// A key exchange whose first record is within this share of the hello's first record is
    /// the same request again on a kept-alive connection, not a handshake's second flight.
    pub repeat_tolerance_percent: u32,
    /// Client bursts allowed before the inner ClientHello (a CONNECT, a WebSocket upgrade).
    pub max_prelude_exchanges: u32,
    pub confidence: u8,
    /// Inner key-exchange first records judged at the flow's end when no reply came.
    pub unanswered_key_exchange_sizes: Vec<u16>,
    pub unanswered_confidence: u8,
}

impl Default for TlsInTlsConfig {
    fn default() -> Self {
        TlsInTlsConfig {
            enabled: true,
            block: false,
            hello_min: 150,
            hello_max: 2600,
            server_flight_min: 600,
            flight_over_hello_percent: 200,
            short_flight_over_hello_percent: 50,
            echo_tolerance_percent: 10,
            short_flight_key_exchange_max: 160,
            key_exchange_min: 40,
            key_exchange_max: 330,
            key_exchange_burst_max: 1200,
            key_exchange_record_min: 20,
            repeat_tolerance_percent: 8,
            max_prelude_exchanges: 1,
            confidence: 75,
            // TLS 1.3 Finished without/with ChangeCipherSpec (SHA-256: 58, 64; SHA-384: 74,
            // 80); TLS 1.2 x25519 key exchange, ChangeCipherSpec and Finished (ChaCha20 85,
            // AES-GCM 93) and the same with P-256 (118, 126).
            unanswered_key_exchange_sizes: vec![58, 64, 74, 80, 85, 93, 118, 126],
            unanswered_confidence: 65,
        }
    }
}

impl TlsInTlsConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.tls_in_tls",
        };
        keys.check("hello_min", self.hello_min.into(), 1, 65_535)?;
        keys.check("hello_max", self.hello_max.into(), 1, 65_535)?;
        keys.check(
            "server_flight_min",
            self.server_flight_min.into(),
            1,
            1 << 20,
        )?;
        keys.check(
            "flight_over_hello_percent",
            self.flight_over_hello_percent.into(),
            0,
            10_000,
        )?;
        keys.check(
            "short_flight_over_hello_percent",
            self.short_flight_over_hello_percent.into(),
            0,
            10_000,
        )?;
        keys.check(
            "short_flight_key_exchange_max",
            self.short_flight_key_exchange_max.into(),
            0,
            65_535,
        )?;
        keys.check(
            "echo_tolerance_percent",
            self.echo_tolerance_percent.into(),
            0,
            100,
        )?;
        keys.check("key_exchange_min", self.key_exchange_min.into(), 0, 65_535)?;
        keys.check("key_exchange_max", self.key_exchange_max.into(), 1, 65_535)?;
        keys.check(
            "key_exchange_burst_max",
            self.key_exchange_burst_max.into(),
            1,
            1 << 20,
        )?;
        keys.check(
            "key_exchange_record_min",
            self.key_exchange_record_min.into(),
            0,
            65_535,
        )?;
        keys.check(
            "repeat_tolerance_percent",
            self.repeat_tolerance_percent.into(),
            0,
            100,
        )?;
        keys.check(
            "max_prelude_exchanges",
            self.max_prelude_exchanges.into(),
            0,
            8,
        )?;
        keys.check("confidence", self.confidence.into(), 1, 100)?;
        keys.check(
            "unanswered_confidence",
            self.unanswered_confidence.into(),
            1,
            100,
        )?;
        if self.hello_min > self.hello_max {
            return Err(keys.error(
                "hello_min",
                format!(
                    "invalid value {}; accepted: at most hello_max ({})",
                    self.hello_min, self.hello_max
                ),
            ));
        }
        if self.key_exchange_min > self.key_exchange_max {
            return Err(keys.error(
                "key_exchange_min",
                format!(
                    "invalid value {}; accepted: at most key_exchange_max ({})",
                    self.key_exchange_min, self.key_exchange_max
                ),
            ));
        }
        Ok(())
    }
}

/// Bursts looked at: as many as inspection follows.
const MAX_BURSTS: usize = crate::inspect::TRAIL_BURSTS;

/// Consecutive records of one direction.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Burst {
    pub dir: u8,
    pub bytes: u32,
    pub first: u16,
    pub smallest: u16,
    pub records: u8,
}

/// Groups the trail into bursts, at most [`MAX_BURSTS`].
pub fn bursts(trail: &RecordTrail) -> ([Burst; MAX_BURSTS], usize) {
    let mut out = [Burst::default(); MAX_BURSTS];
    let mut n = 0usize;
    for &(dir, len) in trail.as_slice() {
        if n > 0 && out[n - 1].dir == dir {
            let b = &mut out[n - 1];
            b.bytes += u32::from(len);
            b.smallest = b.smallest.min(len);
            b.records = b.records.saturating_add(1);
            continue;
        }
        if n == MAX_BURSTS {
            break;
        }
        out[n] = Burst {
            dir,
            bytes: u32::from(len),
            first: len,
            smallest: len,
            records: 1,
        };
        n += 1;
    }
    (out, n)
}

pub struct TlsInTlsCheck {
    cfg: TlsInTlsConfig,
}

impl TlsInTlsCheck {
    pub fn new(cfg: &TlsInTlsConfig) -> Self {
        TlsInTlsCheck { cfg: cfg.clone() }
    }

    /// Where the inner handshake starts (index of its ClientHello burst), if the trail has one.
    /// Where the inner handshake starts (index of its ClientHello burst) and whether the
    /// server answered its key exchange. `ended`: the flow is over, so a key exchange that
    /// got no answer is judged too.
    pub fn inner_handshake(&self, bursts: &[Burst], ended: bool) -> Option<(usize, bool)> {
        let c = &self.cfg;
        let client = Dir::ToServer.index() as u8;
        let mut client_bursts = 0u32;
        for (i, hello) in bursts.iter().enumerate() {
            if hello.dir != client {
                continue;
            }
            if client_bursts > c.max_prelude_exchanges {
                return None;
            }
            client_bursts += 1;
            let (flight, kx, answer) = match bursts.get(i + 1..(i + 4).min(bursts.len())) {
                Some(&[a, b, d]) => (a, b, Some(d)),
                Some(&[a, b]) if ended => (a, b, None),
                _ => return None,
            };
            let hello_ok = u32::from(hello.first) >= c.hello_min && hello.bytes <= c.hello_max;
            let (h, f) = (u64::from(hello.bytes), u64::from(flight.bytes));
            let echo = f.abs_diff(h) * 100 <= h * u64::from(c.echo_tolerance_percent);
            let long_flight = f * 100 >= h * u64::from(c.flight_over_hello_percent);
            let short_flight = !echo && f * 100 >= h * u64::from(c.short_flight_over_hello_percent);
            let flight_ok = flight.bytes >= c.server_flight_min && (long_flight || short_flight);
            let kx_max = if long_flight {
                c.key_exchange_max
            } else {
                c.short_flight_key_exchange_max.min(c.key_exchange_max)
            };
            let (hf, kf) = (u64::from(hello.first), u64::from(kx.first));
            let repeat = kf.abs_diff(hf) * 100 <= hf * u64::from(c.repeat_tolerance_percent);
            let kx_ok = (c.key_exchange_min..=kx_max).contains(&u32::from(kx.first))
                && kx.bytes <= c.key_exchange_burst_max
                && u32::from(kx.smallest) >= c.key_exchange_record_min
                && !repeat;
            if !(hello_ok && flight_ok && kx_ok) {
                continue;
            }
            match answer {
                Some(a) if a.dir != client => return Some((i, true)),
                None if c.unanswered_key_exchange_sizes.contains(&kx.first) => {
                    return Some((i, false))
                }
                _ => {}
            }
        }
        None
    }
}

impl Check for TlsInTlsCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let ended = match event {
            Event::TrailRecord { .. } => false,
            Event::FlowEnd => true,
            _ => return,
        };
        let Some(trail) = view.trail else {
            return;
        };
        let (all, n) = bursts(trail);
        let Some((at, answered)) = self.inner_handshake(&all[..n], ended) else {
            return;
        };
        let mut f = Finding {
            kind: FindingKind::TlsInTls,
            confidence: if answered {
                self.cfg.confidence
            } else {
                self.cfg.unanswered_confidence
            },
            block: self.cfg.block,
            dir: Dir::ToServer,
            evidence: Default::default(),
        };
        let mut seq = InlineStr::<96>::new();
        for b in &all[..n] {
            let side = if b.dir == Dir::ToServer.index() as u8 {
                'C'
            } else {
                'S'
            };
            let _ = write!(seq, "{side}{} ", b.bytes);
        }
        let e = &mut f.evidence;
        e.add("bursts", seq.as_str().trim_end());
        e.add("inner_hello_burst", at);
        e.add("inner_hello_bytes", all[at].bytes);
        e.add("server_flight_bytes", all[at + 1].bytes);
        e.add("key_exchange_bytes", all[at + 2].bytes);
        e.add("key_exchange_first_record", all[at + 2].first);
        e.add("outer_record_overhead", trail.overhead);
        e.add("records_followed", trail.len);
        e.add("answered", answered);
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trail(seq: &[(char, u16)]) -> RecordTrail {
        let mut t = RecordTrail::default();
        for (i, (d, len)) in seq.iter().enumerate() {
            t.records[i] = (if *d == 'C' { 0 } else { 1 }, *len);
            t.len += 1;
        }
        t
    }

    fn found(seq: &[(char, u16)]) -> Option<usize> {
        let (b, n) = bursts(&trail(seq));
        TlsInTlsCheck::new(&TlsInTlsConfig::default())
            .inner_handshake(&b[..n], false)
            .map(|(at, _)| at)
    }

    #[test]
    fn inner_handshakes_measured_in_the_proxy_lab_are_found() {
        // Trojan, inner TLS 1.2 (outer TLS 1.3 tickets in the server's first burst).
        let trojan = [
            ('C', 292),
            ('S', 57),
            ('S', 57),
            ('S', 1307),
            ('C', 93),
            ('S', 120),
        ];
        assert_eq!(found(&trojan), Some(0));
        // VLESS, inner TLS 1.3: Finished and request in three records.
        let vless = [
            ('C', 291),
            ('S', 1186),
            ('S', 284),
            ('C', 80),
            ('C', 86),
            ('C', 63),
            ('S', 359),
        ];
        assert_eq!(found(&vless), Some(0));
        // VMess over TLS, inner TLS 1.3: Finished and request in separate padded chunks.
        let vmess = [
            ('C', 416),
            ('S', 1186),
            ('S', 390),
            ('C', 147),
            ('C', 138),
            ('C', 134),
            ('S', 295),
        ];
        assert_eq!(found(&vmess), Some(0));
        // Chromium through Trojan, inner TLS 1.3: a 2 KB hello (post-quantum key share)
        // answered by a smaller flight, then its Finished alone.
        let chromium = [
            ('C', 2021),
            ('S', 57),
            ('S', 57),
            ('S', 1452),
            ('C', 64),
            ('S', 220),
        ];
        assert_eq!(found(&chromium), Some(0));
        // FortiClient's SSL-VPN login over HTTP/1.1: a request, a 746-byte answer, a 267-byte
        // second request. Neither twice the hello nor followed by a Finished-sized record.
        let forti = [('C', 501), ('S', 746), ('C', 267), ('S', 842)];
        assert_eq!(found(&forti), None);
        // HTTPS CONNECT: the CONNECT exchange first, then the inner handshake.
        let connect = [
            ('C', 108),
            ('S', 265),
            ('S', 265),
            ('S', 70),
            ('C', 219),
            ('S', 1307),
            ('C', 93),
            ('S', 51),
        ];
        assert_eq!(found(&connect), Some(2));
    }

    #[test]
    fn ordinary_https_http2_and_websocket_echo_are_not() {
        assert_eq!(found(&[('C', 77), ('S', 57), ('S', 57), ('S', 187)]), None);
        // HTTP/2: preface and SETTINGS first, SETTINGS ACK (9 bytes) in the second burst.
        let h2 = [
            ('C', 64),
            ('C', 124),
            ('C', 9),
            ('S', 9),
            ('S', 3100),
            ('C', 9),
            ('C', 120),
            ('S', 400),
        ];
        assert_eq!(found(&h2), None);
        // A WebSocket echo: each answer as large as its question.
        let echo = [
            ('C', 203),
            ('S', 181),
            ('C', 1746),
            ('S', 1742),
            ('C', 285),
            ('S', 281),
        ];
        assert_eq!(found(&echo), None);
        // A handshake shape after two earlier exchanges is a later request, not a tunnel.
        let late = [
            ('C', 200),
            ('S', 300),
            ('C', 200),
            ('S', 300),
            ('C', 290),
            ('S', 5400),
            ('C', 300),
            ('S', 50),
        ];
        assert_eq!(found(&late), None);
        // HTTP/1.1 keep-alive from the benign corpus (Node's fetch to nginx, httpx to
        // lighttpd): a request, the page, the same request again. A key exchange the size of
        // the hello is a second request, never a handshake's second flight.
        let keep_alive = [('C', 176), ('S', 5019), ('C', 176), ('S', 7268)];
        assert_eq!(found(&keep_alive), None);
        let keep_alive = [('S', 249), ('C', 150), ('S', 4714), ('C', 149), ('S', 3747)];
        assert_eq!(found(&keep_alive), None);
    }

    #[test]
    fn an_unanswered_inner_finished_counts_when_the_flow_ends() {
        // Chromium's idle pre-connection through Trojan: inner hello, flight, the client's
        // key exchange and Finished (93 bytes), then the connection closes.
        let (b, n) = bursts(&trail(&[('C', 466), ('S', 57), ('S', 1307), ('C', 93)]));
        let check = TlsInTlsCheck::new(&TlsInTlsConfig::default());
        assert_eq!(check.inner_handshake(&b[..n], false), None, "still open");
        assert_eq!(check.inner_handshake(&b[..n], true), Some((0, false)));
        // A second request of another size, unanswered, is not a Finished.
        let (b, n) = bursts(&trail(&[('C', 466), ('S', 1307), ('C', 97)]));
        assert_eq!(check.inner_handshake(&b[..n], true), None);
    }

    #[test]
    fn bad_keys_are_named() {
        let bad = TlsInTlsConfig {
            hello_min: 3000,
            ..TlsInTlsConfig::default()
        };
        let e = bad.validate("u.toml").unwrap_err();
        assert_eq!(e.key, "detect.tls_in_tls.hello_min");
        assert!(e.message.contains("hello_max"), "{e}");
    }
}
