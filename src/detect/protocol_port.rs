//! Protocol versus port (DET0470 AllowedServicePorts, ProtocolMatchConfidence).
//!
//! Content decides the protocol; the port only says what the network expects there. A protocol
//! on a port that the map reserves for *other* protocols is dressed up as them: SSH on 443 wants
//! to pass for HTTPS. A protocol on a port nobody reserved is only unusual.

use std::fmt;

use super::{Check, Event, Finding, FindingKind, Findings, FlowView};
use crate::config::ProtocolPortConfig;
use crate::proto::AppProto;

/// Bit per [`AppProto`] allowed on each port.
pub struct ProtocolPortCheck {
    allowed: Box<[u16; 65536]>,
    min_confidence: u8,
    block: bool,
    alert_nonstandard: bool,
}

const _: () = assert!(
    AppProto::COUNT <= 16,
    "the per-port mask holds 16 protocols"
);

impl ProtocolPortCheck {
    pub fn new(cfg: &ProtocolPortConfig) -> Self {
        let mut allowed = Box::new([0u16; 65536]);
        for (name, ports) in &cfg.allowed_ports {
            // Config validation rejected unknown names already; skip defensively.
            let Some(proto) = AppProto::from_name(name) else {
                continue;
            };
            for &port in ports {
                allowed[port as usize] |= 1 << proto.index();
            }
        }
        ProtocolPortCheck {
            allowed,
            min_confidence: cfg.min_confidence,
            block: cfg.block,
            alert_nonstandard: cfg.alert_nonstandard_port,
        }
    }

    fn mask(&self, port: u16) -> u16 {
        self.allowed[port as usize]
    }
}

/// The protocols a port mask names, for evidence ("tls" or "socks4|socks5").
struct MaskNames(u16);

impl fmt::Display for MaskNames {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in AppProto::ALL {
            if self.0 & (1 << p.index()) != 0 {
                if !first {
                    f.write_str("|")?;
                }
                f.write_str(p.name())?;
                first = false;
            }
        }
        Ok(())
    }
}

impl Check for ProtocolPortCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Event::Identified { dir, .. } = *event else {
            return;
        };
        let ident = view.ident[dir.index()];
        let (proto, confidence) = (ident.proto(), ident.confidence());
        if proto == AppProto::Unknown || confidence < self.min_confidence {
            return;
        }
        let port = view.server_port;
        let mask = self.mask(port);
        if mask & (1 << proto.index()) != 0 {
            return;
        }
        let kind = if mask != 0 {
            FindingKind::ProtocolPortMismatch
        } else if self.alert_nonstandard {
            FindingKind::NonStandardPort
        } else {
            return;
        };
        let mut f = Finding {
            kind,
            confidence,
            block: self.block && kind == FindingKind::ProtocolPortMismatch,
            dir,
            evidence: Default::default(),
        };
        f.evidence.add("protocol", proto.name());
        f.evidence.add("server_port", port);
        if mask != 0 {
            f.evidence.add("port_reserved_for", MaskNames(mask));
        }
        f.evidence.add(
            "direction",
            match dir {
                crate::flow::Dir::ToServer => "to_server",
                crate::flow::Dir::ToClient => "to_client",
            },
        );
        f.evidence.add("identification_confidence", confidence);
        out.push(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flow::Dir;
    use crate::proto::{DirIdent, Probe};
    use crate::source::Timestamp;

    fn view(server_port: u16, dir: Dir, proto: AppProto, confidence: u8) -> FlowView<'static> {
        let mut ident = [DirIdent::default(); 2];
        ident[dir.index()].probe = if proto == AppProto::Unknown {
            Probe::NoMatch
        } else {
            Probe::Match(proto, confidence)
        };
        FlowView {
            client_addr: [10, 0, 0, 1].into(),
            server_addr: [10, 0, 0, 2].into(),
            server_port,
            client_port: 50000,
            ident,
            tls: None,
            http: None,
            pkts: [1, 1],
            bytes: [100, 100],
            first_ts: Timestamp(0),
            now: Timestamp(0),
        }
    }

    fn run(cfg: &ProtocolPortConfig, v: &FlowView, dir: Dir) -> Vec<Finding> {
        let check = ProtocolPortCheck::new(cfg);
        let mut out = Findings::default();
        check.on_event(v, &Event::Identified { dir, data: b"" }, &mut out);
        out.iter().copied().collect()
    }

    #[test]
    fn ssh_on_443_is_a_mismatch_with_evidence() {
        let cfg = ProtocolPortConfig::default();
        let found = run(
            &cfg,
            &view(443, Dir::ToClient, AppProto::Ssh, 95),
            Dir::ToClient,
        );
        assert_eq!(found.len(), 1);
        let f = &found[0];
        assert_eq!(f.kind, FindingKind::ProtocolPortMismatch);
        assert_eq!(f.confidence, 95);
        assert!(f.block);
        assert_eq!(f.evidence.get("protocol"), Some("ssh"));
        assert_eq!(f.evidence.get("server_port"), Some("443"));
        assert_eq!(f.evidence.get("port_reserved_for"), Some("tls"));
    }

    #[test]
    fn protocol_on_its_own_port_is_fine() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer
        )
        .is_empty());
        assert!(run(
            &cfg,
            &view(1080, Dir::ToServer, AppProto::Socks5, 90),
            Dir::ToServer
        )
        .is_empty());
    }

    #[test]
    fn low_confidence_is_below_protocol_match_confidence() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Http, 60),
            Dir::ToServer
        )
        .is_empty());
        let strict = ProtocolPortConfig {
            min_confidence: 50,
            ..ProtocolPortConfig::default()
        };
        assert_eq!(
            run(
                &strict,
                &view(443, Dir::ToServer, AppProto::Http, 60),
                Dir::ToServer
            )
            .len(),
            1
        );
    }

    #[test]
    fn unreserved_port_only_alerts_when_asked_and_never_blocks() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(3001, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer
        )
        .is_empty());
        let noisy = ProtocolPortConfig {
            alert_nonstandard_port: true,
            ..ProtocolPortConfig::default()
        };
        let found = run(
            &noisy,
            &view(3001, Dir::ToServer, AppProto::Tls, 99),
            Dir::ToServer,
        );
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::NonStandardPort);
        assert!(!found[0].block);
    }

    #[test]
    fn unknown_protocol_is_not_this_checks_business() {
        let cfg = ProtocolPortConfig::default();
        assert!(run(
            &cfg,
            &view(443, Dir::ToServer, AppProto::Unknown, 0),
            Dir::ToServer
        )
        .is_empty());
    }

    #[test]
    fn shared_ports_list_every_owner() {
        let cfg = ProtocolPortConfig::default();
        let found = run(
            &cfg,
            &view(1080, Dir::ToServer, AppProto::Http, 95),
            Dir::ToServer,
        );
        assert_eq!(
            found[0].evidence.get("port_reserved_for"),
            Some("socks4|socks5")
        );
    }
}
