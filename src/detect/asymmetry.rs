//! Upload-heavy flows: client-to-server bytes far above server-to-client bytes, judged at flow
//! end and periodically on long flows.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct AsymmetryConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for AsymmetryConfig {
    fn default() -> Self {
        AsymmetryConfig {
            enabled: true,
            block: false,
        }
    }
}

impl AsymmetryConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
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

impl Check for AsymmetryCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
