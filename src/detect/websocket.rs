//! A WebSocket upgrade that is not one. Obfuscators dress a tunnel as a WebSocket connection
//! (simple-obfs `obfs=http`, home-made "ws" transports): the request looks like an upgrade and
//! the server answers 101, but the server never computed the handshake's accept value, or the
//! bytes that follow are not WebSocket frames. Browsers abort a connection whose accept value is
//! wrong (RFC 6455 4.1), so a conversation that goes on after one was never between a browser
//! and a WebSocket server.
//!
//! `inspect` follows the upgrade (`proto::websocket` reads the frames) and reports the first
//! rule broken; this check turns it into a finding.

use serde::{Deserialize, Serialize};

use super::check::{Check, Event, Finding, FindingKind, Findings, FlowView};
use super::check::{KeyError, KeyRange};
use crate::proto::websocket::Problem;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct WebSocketConfig {
    pub enabled: bool,
    pub block: bool,
    /// An accept value not derived from the key, or bytes that are not frames after the 101.
    pub confidence: u8,
    /// A request without Sec-WebSocket-Key/-Version, or with a body.
    pub request_confidence: u8,
}

impl Default for WebSocketConfig {
    fn default() -> Self {
        WebSocketConfig {
            enabled: true,
            block: false,
            confidence: 90,
            request_confidence: 80,
        }
    }
}

impl WebSocketConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        let keys = KeyRange {
            path,
            section: "detect.websocket",
        };
        keys.check("confidence", self.confidence.into(), 1, 100)?;
        keys.check("request_confidence", self.request_confidence.into(), 1, 100)
    }
}

pub struct WebSocketCheck {
    cfg: WebSocketConfig,
}

impl WebSocketCheck {
    pub fn new(cfg: &WebSocketConfig) -> Self {
        WebSocketCheck { cfg: cfg.clone() }
    }
}

impl Check for WebSocketCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Event::WebSocketProblem { dir, problem } = *event else {
            return;
        };
        let confidence = match problem {
            Problem::IncompleteRequest | Problem::BodyOnUpgrade => self.cfg.request_confidence,
            _ => self.cfg.confidence,
        };
        let mut f = Finding {
            kind: FindingKind::WebSocketImpersonation,
            confidence,
            block: self.cfg.block,
            dir,
            evidence: Default::default(),
        };
        f.evidence.add("problem", problem.name());
        f.evidence.add(
            "sent_by",
            if dir.index() == 0 { "client" } else { "server" },
        );
        f.evidence.add("server_port", view.server_port);
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_keys_are_named() {
        let bad = WebSocketConfig {
            confidence: 0,
            ..WebSocketConfig::default()
        };
        let e = bad.validate("u.toml").unwrap_err();
        assert_eq!(e.key, "detect.websocket.confidence");
        assert!(e.message.contains("1 to 100"));
    }
}
