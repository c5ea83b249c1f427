//! Service identity profiles: a flow whose SNI or Host claims a well-known service but whose
//! certificate, issuer, address or protocol contradicts it impersonates that service.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServiceConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for ServiceConfig {
    fn default() -> Self {
        ServiceConfig {
            enabled: true,
            block: true,
        }
    }
}

impl ServiceConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct ServiceCheck {
    cfg: ServiceConfig,
}

impl ServiceCheck {
    pub fn new(cfg: &ServiceConfig) -> Self {
        ServiceCheck { cfg: cfg.clone() }
    }
}

impl Check for ServiceCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
