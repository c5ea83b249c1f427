//! Impersonation checks. Each check looks at a flow's parsed state when something new is known
//! and pushes [`Finding`]s; checks never parse bytes themselves.
//!
//! Every finding carries what was found, how sure the check is, the values that triggered it,
//! MITRE ATT&CK T1001.003, and the DET0470 tunable it belongs to.

pub mod asymmetry;
pub mod certificate;
pub mod check;
pub mod config;
pub mod ech;
pub mod fingerprint;
pub mod fully_encrypted;
pub mod handshake_shape;
pub mod http;
pub mod http_body;
pub mod policy;
pub mod protocol_port;
pub mod relay;
pub mod service;
pub mod sni;
pub mod tls_handshake;
pub mod tls_in_tls;
pub mod websocket;

use config::DetectConfig;

pub use check::*;

pub use protocol_port::ProtocolPortCheck;

/// Every configured check, dispatched statically; a disabled check is absent.
pub struct Detector {
    protocol_port: Option<ProtocolPortCheck>,
    tls_handshake: Option<tls_handshake::TlsHandshakeCheck>,
    fingerprint: Option<fingerprint::FingerprintCheck>,
    certificate: Option<certificate::CertificateCheck>,
    sni: Option<sni::SniCheck>,
    ech: Option<ech::EchCheck>,
    service: Option<service::ServiceCheck>,
    http: Option<http::HttpCheck>,
    http_body: Option<http_body::HttpBodyCheck>,
    asymmetry: Option<asymmetry::AsymmetryCheck>,
    fully_encrypted: Option<fully_encrypted::FullyEncryptedCheck>,
    tls_in_tls: Option<tls_in_tls::TlsInTlsCheck>,
    websocket: Option<websocket::WebSocketCheck>,
    /// Not an event check: the engine hands it each flow's request/response pairs.
    pub relay: Option<relay::RelayCheck>,
    handshake_shape: Option<handshake_shape::HandshakeShapeCheck>,
    /// What each finding kind's confidence buys: an alert, a block.
    pub policy: policy::FindingPolicy,
}

impl Detector {
    /// Builds the checks. A fingerprint list that no longer loads (it was checked with the
    /// config) leaves that check running without lists, said on stderr.
    pub fn new(cfg: &DetectConfig) -> Detector {
        let fingerprint = cfg
            .fingerprint
            .enabled
            .then(|| fingerprint::FingerprintCheck::new(&cfg.fingerprint));
        Self::assemble(cfg, fingerprint)
    }

    /// Builds the checks for a reload: every list must load, or the reload is refused and the
    /// detector in force stays. `path` names the config in messages.
    pub fn try_new(cfg: &DetectConfig, path: &str) -> Result<Detector, KeyError> {
        policy::FindingPolicy::from_tables(
            &cfg.alert_min_confidence.0,
            &cfg.block_min_confidence.0,
            path,
        )?;
        let fingerprint = if cfg.fingerprint.enabled {
            let lists = fingerprint::load_lists(&cfg.fingerprint, path)?;
            Some(fingerprint::FingerprintCheck::with_lists(
                &cfg.fingerprint,
                lists,
            ))
        } else {
            None
        };
        Ok(Self::assemble(cfg, fingerprint))
    }

    fn assemble(
        cfg: &DetectConfig,
        fingerprint: Option<fingerprint::FingerprintCheck>,
    ) -> Detector {
        Detector {
            protocol_port: cfg
                .protocol_port
                .enabled
                .then(|| ProtocolPortCheck::new(&cfg.protocol_port)),
            tls_handshake: cfg
                .tls_handshake
                .enabled
                .then(|| tls_handshake::TlsHandshakeCheck::new(&cfg.tls_handshake)),
            fingerprint,
            certificate: cfg
                .certificate
                .enabled
                .then(|| certificate::CertificateCheck::new(&cfg.certificate)),
            sni: cfg.sni.enabled.then(|| sni::SniCheck::new(&cfg.sni)),
            ech: cfg.ech.enabled.then(|| ech::EchCheck::new(&cfg.ech)),
            service: cfg
                .service
                .enabled
                .then(|| service::ServiceCheck::new(&cfg.service)),
            http: cfg.http.enabled.then(|| http::HttpCheck::new(&cfg.http)),
            http_body: cfg
                .http_body
                .enabled
                .then(|| http_body::HttpBodyCheck::new(&cfg.http_body)),
            asymmetry: cfg
                .asymmetry
                .enabled
                .then(|| asymmetry::AsymmetryCheck::new(&cfg.asymmetry)),
            fully_encrypted: cfg
                .fully_encrypted
                .enabled
                .then(|| fully_encrypted::FullyEncryptedCheck::new(&cfg.fully_encrypted)),
            tls_in_tls: cfg
                .tls_in_tls
                .enabled
                .then(|| tls_in_tls::TlsInTlsCheck::new(&cfg.tls_in_tls)),
            websocket: cfg
                .websocket
                .enabled
                .then(|| websocket::WebSocketCheck::new(&cfg.websocket)),
            relay: cfg
                .relay
                .enabled
                .then(|| relay::RelayCheck::new(&cfg.relay)),
            handshake_shape: cfg
                .handshake_shape
                .enabled
                .then(|| handshake_shape::HandshakeShapeCheck::new(&cfg.handshake_shape)),
            // The tables were validated with the rest of the file (try_new fails on them first).
            policy: policy::FindingPolicy::from_tables(
                &cfg.alert_min_confidence.0,
                &cfg.block_min_confidence.0,
                "",
            )
            .unwrap_or_default(),
        }
    }

    pub fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        fn run<C: Check>(c: &Option<C>, v: &FlowView<'_>, e: &Event<'_>, out: &mut Findings) {
            if let Some(c) = c {
                c.on_event(v, e, out);
            }
        }
        run(&self.protocol_port, view, event, out);
        run(&self.tls_handshake, view, event, out);
        run(&self.fingerprint, view, event, out);
        run(&self.certificate, view, event, out);
        run(&self.sni, view, event, out);
        run(&self.ech, view, event, out);
        run(&self.service, view, event, out);
        run(&self.http, view, event, out);
        run(&self.http_body, view, event, out);
        run(&self.asymmetry, view, event, out);
        run(&self.fully_encrypted, view, event, out);
        run(&self.tls_in_tls, view, event, out);
        run(&self.websocket, view, event, out);
        run(&self.handshake_shape, view, event, out);
    }
}
