//! The `[detect]` section: each check's own config type, composed here, and the error every
//! check's validation returns. `crate::config` embeds [`DetectConfig`] and turns a
//! [`super::check::KeyError`] into its own error; nothing here imports the config file layer back.

use serde::{Deserialize, Serialize};

use super::{
    asymmetry, certificate, ech, fingerprint, fully_encrypted, handshake_shape, http, http_body,
    protocol_port, relay, service, sni, tls_handshake, tls_in_tls, websocket,
};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DetectConfig {
    pub protocol_port: protocol_port::ProtocolPortConfig,
    pub tls_handshake: tls_handshake::TlsHandshakeConfig,
    pub fingerprint: fingerprint::FingerprintConfig,
    pub certificate: certificate::CertificateConfig,
    pub sni: sni::SniConfig,
    pub ech: ech::EchConfig,
    pub service: service::ServiceConfig,
    pub http: http::HttpConfig,
    pub http_body: http_body::HttpBodyConfig,
    pub asymmetry: asymmetry::AsymmetryConfig,
    pub fully_encrypted: fully_encrypted::FullyEncryptedConfig,
    pub tls_in_tls: tls_in_tls::TlsInTlsConfig,
    pub websocket: websocket::WebSocketConfig,
    pub relay: relay::RelayConfig,
    pub handshake_shape: handshake_shape::HandshakeShapeConfig,
    /// Per finding name: the confidence a finding needs to raise an alert (below it, it is
    /// only recorded); kinds not named keep their built-in floor (see `policy`).
    pub alert_min_confidence: super::policy::AlertFloors,
    /// Per finding name: the confidence a finding of a blocking check needs to drop its flow.
    pub block_min_confidence: super::policy::BlockFloors,
}
