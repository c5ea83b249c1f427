//! HTTP request and response heads (DET0470 HeaderSignatureMatch and HeaderAnomalyScore).

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            block: true,
        }
    }
}

impl HttpConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct HttpCheck {
    cfg: HttpConfig,
}

impl HttpCheck {
    pub fn new(cfg: &HttpConfig) -> Self {
        HttpCheck { cfg: cfg.clone() }
    }
}

impl Check for HttpCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
