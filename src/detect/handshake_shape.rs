//! TLS 1.3 handshake record shape, read without decryption.
//!
//! After its ServerHello a TLS 1.3 server sends EncryptedExtensions, Certificate,
//! CertificateVerify and Finished as protected records (content type application_data). How it
//! groups them varies by stack (one record per message, or several messages per record), but
//! the last message is always Finished, and its size is fixed by the suite: 4 bytes of header
//! and the hash (32 for SHA-256 suites, 48 for SHA-384), then the inner content type and the
//! AEAD tag: a record of 53 or 69 bytes (45 for AES-128-CCM-8). So the record that ends the
//! flight is either exactly Finished, or Finished with the messages before it, which adds at
//! least a CertificateVerify (72 bytes with the shortest signature, Ed25519), or on a resumed
//! session (no certificate) at least an empty EncryptedExtensions (6 bytes). Any size in
//! between is no genuine stack's: a relay changed the records it forwarded. ShadowTLS v3 does
//! exactly that: it appends a 4-byte HMAC to every application-data record the borrowed
//! server sends during the handshake (protocol-v3, "Handshake"), so a Finished of 53 arrives
//! as 57.
//!
//! Judged once, when the client's first protected record (its Finished) shows the server's
//! flight is complete, and only when that record is no smaller than the suite's Finished (no
//! 0-RTT) and the server sent no lone Finished of the exact size (what follows one is 0.5-RTT
//! data, which has no fixed size).
//!
//! Known evasions (docs/detections.md): a borrowed server that puts its whole flight in one
//! record (the appended bytes then hide in a record of no fixed size); a relay that strips or
//! re-frames records to genuine sizes; TLS 1.3 record padding would look the same (no common
//! stack pads by default: OpenSSL, BoringSSL, Go, rustls, NSS send exact sizes).

use serde::{Deserialize, Serialize};

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use super::check::{KeyError, KeyRange};
use crate::flow::Dir;
use crate::proto::tls::finished_record_len;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HandshakeShapeConfig {
    pub enabled: bool,
    pub block: bool,
    /// When the client's first protected record is exactly the suite's Finished, and when it
    /// is larger (a client certificate, or a relay client that sends data instead).
    pub confidence: u8,
    pub unconfirmed_confidence: u8,
}

impl Default for HandshakeShapeConfig {
    fn default() -> Self {
        HandshakeShapeConfig {
            enabled: true,
            block: false,
            confidence: 85,
            unconfirmed_confidence: 75,
        }
    }
}

impl HandshakeShapeConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.handshake_shape",
        };
        keys.check("confidence", self.confidence.into(), 1, 100)?;
        keys.check(
            "unconfirmed_confidence",
            self.unconfirmed_confidence.into(),
            1,
            100,
        )?;
        Ok(())
    }
}

/// The smallest message that can share Finished's record on a full handshake: a
/// CertificateVerify with an Ed25519 signature (header 4, scheme 2, length 2, signature 64).
const MIN_CERTIFICATE_VERIFY: u16 = 72;
/// ... and on a resumed one: an EncryptedExtensions with no extensions (header 4, length 2).
const MIN_ENCRYPTED_EXTENSIONS: u16 = 6;

fn suite_name(cipher: u16) -> &'static str {
    match cipher {
        0x1301 => "TLS_AES_128_GCM_SHA256",
        0x1302 => "TLS_AES_256_GCM_SHA384",
        0x1303 => "TLS_CHACHA20_POLY1305_SHA256",
        0x1304 => "TLS_AES_128_CCM_SHA256",
        0x1305 => "TLS_AES_128_CCM_8_SHA256",
        _ => "unknown",
    }
}

pub struct HandshakeShapeCheck {
    cfg: HandshakeShapeConfig,
}

impl HandshakeShapeCheck {
    pub fn new(cfg: &HandshakeShapeConfig) -> Self {
        HandshakeShapeCheck { cfg: cfg.clone() }
    }
}

impl Check for HandshakeShapeCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        if !matches!(event, Event::TlsClientFinished) {
            return;
        }
        let Some(tls) = view.tls else {
            return;
        };
        let s = &tls.summary;
        let shape = &tls.shape;
        if s.negotiated_version != 0x0304 || shape.server_records == 0 {
            return;
        }
        let Some(finished) = finished_record_len(s.cipher) else {
            return;
        };
        let smallest_companion = if shape.psk {
            MIN_ENCRYPTED_EXTENSIONS
        } else {
            MIN_CERTIFICATE_VERIFY
        };
        // 0-RTT: the client's first protected record is its EndOfEarlyData (21 bytes), and
        // the server may have sent 0.5-RTT data after its Finished: the flight's end is
        // unknown. A client's Finished (or Certificate) is never smaller than the suite's
        // Finished. A client Finished of exactly that size confirms the suite's sizes on a
        // record the relay did not touch; shoes' ShadowTLS client sends its first data
        // instead, so a larger first record is judged too, at `unconfirmed_confidence`.
        if shape.client_finished < finished {
            return;
        }
        let confirmed = shape.client_finished == finished;
        // A lone Finished of the exact size was sent: whatever followed it before the client's
        // Finished is 0.5-RTT data (an HTTP/2 SETTINGS), not the end of the flight.
        if shape.server_finished_alone {
            return;
        }
        let last = shape.server_last;
        if last <= finished || last >= finished.saturating_add(smallest_companion) {
            return;
        }
        let mut f = Finding {
            kind: FindingKind::Tls13RecordShape,
            confidence: if confirmed {
                self.cfg.confidence
            } else {
                self.cfg.unconfirmed_confidence
            },
            block: self.cfg.block,
            dir: Dir::ToClient,
            evidence: Default::default(),
        };
        f.evidence.add("server_finished_record", last);
        f.evidence.add("expected_finished_record", finished);
        f.evidence.add("extra_bytes", last - finished);
        f.evidence
            .add("client_finished_record", shape.client_finished);
        f.evidence.add("suite", suite_name(s.cipher));
        if shape.client_spoke_early() {
            f.evidence.add("client_record_before_server_finished", true);
        }
        f.evidence.add(
            "server_handshake_records",
            SizeList(shape.server_sizes(), shape.server_records),
        );
        f.evidence.add(
            "expected_combined_min",
            finished.saturating_add(smallest_companion),
        );
        f.evidence.add("resumed", shape.psk);
        out.push(f);
    }
}

/// Record sizes as `a,b,c` (with `+N` when more were counted than kept).
struct SizeList<'a>(&'a [u16], u16);

impl std::fmt::Display for SizeList<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, n) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{n}")?;
        }
        let more = usize::from(self.1).saturating_sub(self.0.len());
        if more > 0 {
            write!(f, ",+{more}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::inspect::{HandshakeShape, TlsFacts, SHAPE_RECORDS};
    use crate::proto::DirIdent;

    /// A TLS 1.3 handshake with `cipher` whose server flight had `sizes` and whose client's
    /// first protected record was `client`.
    fn facts(cipher: u16, psk: bool, sizes: &[u16], client: u16) -> TlsFacts {
        let mut t = TlsFacts::default();
        t.summary.negotiated_version = 0x0304;
        t.summary.server_hello_seen = true;
        t.summary.cipher = cipher;
        let mut shape = HandshakeShape {
            psk,
            server_records: sizes.len() as u16,
            server_bytes: sizes.iter().map(|&n| u32::from(n)).sum(),
            server_last: *sizes.last().unwrap_or(&0),
            server_finished_alone: sizes
                .iter()
                .any(|&n| Some(n) == finished_record_len(cipher)),
            client_finished: client,
            ..HandshakeShape::default()
        };
        for (slot, &n) in shape
            .server_sizes
            .iter_mut()
            .zip(sizes.iter().take(SHAPE_RECORDS))
        {
            *slot = n;
        }
        t.shape = shape;
        t
    }

    fn judge(t: &TlsFacts, event: Event<'_>) -> Vec<Finding> {
        let view = FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            client_port: 50000,
            server_port: 443,
            ident: [DirIdent::default(); 2],
            tls: Some(t),
            trail: None,
            http: None,
            pkts: [4, 4],
            bytes: [1000, 5000],
            seen_from_start: [true; 2],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        };
        let mut out = Findings::default();
        HandshakeShapeCheck::new(&HandshakeShapeConfig::default())
            .on_event(&view, &event, &mut out);
        out.iter().copied().collect()
    }

    fn evidence<'a>(f: &'a Finding, name: &str) -> Option<&'a str> {
        f.evidence.iter().find(|(n, _)| *n == name).map(|(_, v)| v)
    }

    #[test]
    fn finished_sizes_follow_the_suite() {
        assert_eq!(finished_record_len(0x1301), Some(53));
        assert_eq!(finished_record_len(0x1303), Some(53));
        assert_eq!(finished_record_len(0x1302), Some(69));
        assert_eq!(finished_record_len(0x1305), Some(45));
        assert_eq!(finished_record_len(0xc02f), None);
    }

    #[test]
    fn genuine_flights_pass() {
        // OpenSSL one record per message (chrome.pcap, tumblr.pcap), resumed, coalesced
        // (Cloudflare, Google: one record), and a CertificateVerify coalesced with Finished.
        for t in [
            facts(0x1302, false, &[42, 3041, 281, 69], 69),
            facts(0x1301, false, &[36, 4346, 96, 53], 53),
            facts(0x1302, true, &[42, 69], 69),
            facts(0x1301, false, &[2531], 53),
            facts(0x1301, false, &[36, 4346, 96 + 53 - 17], 53),
            facts(0x1301, true, &[23 + 53 - 17], 53),
        ] {
            assert!(
                judge(&t, Event::TlsClientFinished).is_empty(),
                "{:?}",
                t.shape
            );
        }
    }

    #[test]
    fn shadowtls_hmac_on_every_server_record_is_found() {
        // The same OpenSSL flights with ShadowTLS v3's 4 bytes on each record.
        let t = facts(0x1301, false, &[40, 4350, 285, 57], 53);
        let f = judge(&t, Event::TlsClientFinished);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].kind, FindingKind::Tls13RecordShape);
        assert_eq!(f[0].confidence, 85);
        assert_eq!(evidence(&f[0], "server_finished_record"), Some("57"));
        assert_eq!(evidence(&f[0], "expected_finished_record"), Some("53"));
        assert_eq!(evidence(&f[0], "extra_bytes"), Some("4"));
        assert_eq!(evidence(&f[0], "suite"), Some("TLS_AES_128_GCM_SHA256"));
        assert_eq!(
            evidence(&f[0], "server_handshake_records"),
            Some("40,4350,285,57")
        );
        let t = facts(0x1302, true, &[46, 73], 69);
        assert_eq!(judge(&t, Event::TlsClientFinished).len(), 1);
        // shoes' ShadowTLS client: its first protected record is data, not a Finished
        // (relaylab: [31, 872, 285, 73] then 157..982).
        let t = facts(0x1302, false, &[31, 872, 285, 73], 895);
        let f = judge(&t, Event::TlsClientFinished);
        assert_eq!(f.len(), 1);
        assert_eq!(f[0].confidence, 75);
        // Only judged when the client's Finished arrives.
        assert!(judge(&t, Event::TlsHandshakeDone).is_empty());
    }

    #[test]
    fn uncertain_flight_ends_are_not_judged() {
        // 0-RTT: the client's first protected record is EndOfEarlyData (21), and the server's
        // last record is 0.5-RTT data (no_sni.pcap, Cloudflare DoH).
        assert!(judge(
            &facts(0x1301, true, &[72, 461, 57], 21),
            Event::TlsClientFinished
        )
        .is_empty());
        // A lone Finished of the exact size, then 0.5-RTT data (an HTTP/2 SETTINGS).
        assert!(judge(
            &facts(0x1301, false, &[36, 4346, 96, 53, 56], 53),
            Event::TlsClientFinished
        )
        .is_empty());
        // TLS 1.2, or a suite outside RFC 8446.
        let mut t = facts(0x1301, false, &[40, 4350, 285, 57], 53);
        t.summary.negotiated_version = 0x0303;
        assert!(judge(&t, Event::TlsClientFinished).is_empty());
        assert!(judge(
            &facts(0x00ff, false, &[40, 57], 53),
            Event::TlsClientFinished
        )
        .is_empty());
    }
}
