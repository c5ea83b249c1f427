//! The TLS facts of one flow, folded from the parser's events as they arrive: the hellos, the
//! fingerprints computed from them, the certificate count, the change-cipher and alert state.
//! It sits above the parser (`tls`), the fingerprints and `x509`, which never import it.

use crate::flow::Dir;
use crate::proto::fingerprint::{self, Ja4, Ja4s};
use crate::proto::memo::{HelloPrints, ServerPrints};
use crate::proto::tls::{AnomalySet, HiddenName, TlsEvent, ALPN_TEXT_LEN, SNI_TEXT_LEN};
use crate::text::InlineStr;

/// What the caller of [`TlsSummary::observe_with`] already computed of the event, each for
/// that event only: the fingerprints of its ClientHello or ServerHello (callers keep the whole
/// JA3 and JA3S strings), the SHA-1 of its certificate's DER.
#[derive(Debug, Clone, Copy, Default)]
pub struct Known<'a> {
    pub client: Option<&'a HelloPrints>,
    pub server: Option<&'a ServerPrints>,
    pub cert_sha1: Option<[u8; 20]>,
}

/// What the checks and the EVE log need about a TLS flow, folded from both directions'
/// events. Fixed size.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TlsSummary {
    pub client_hello_seen: bool,
    pub server_hello_seen: bool,
    pub client_hellos: u8,
    pub server_hellos: u8,
    pub hello_retry: bool,
    pub sslv2_hello: bool,
    /// Record version of the ClientHello and its legacy_version.
    pub client_record_version: u16,
    pub client_legacy_version: u16,
    /// Highest version offered by the client (supported_versions when present).
    pub client_max_version: u16,
    /// Version chosen by the server (supported_versions when present).
    pub negotiated_version: u16,
    pub cipher: u16,
    pub has_sni: bool,
    pub sni: InlineStr<SNI_TEXT_LEN>,
    /// The first hello's ECH / ESNI extensions: a certificate arriving later is judged
    /// against the public name they went with.
    pub hidden: HiddenName,
    /// First ALPN offered, and the one the server selected.
    pub alpn_offered: Option<InlineStr<ALPN_TEXT_LEN>>,
    pub alpn_selected: Option<InlineStr<ALPN_TEXT_LEN>>,
    pub ja3: Option<fingerprint::Md5Hex>,
    pub ja3n: Option<fingerprint::Md5Hex>,
    pub ja3s: Option<fingerprint::Md5Hex>,
    pub ja4: Option<Ja4>,
    pub ja4s: Option<Ja4s>,
    /// Certificates seen in the server's Certificate message(s).
    pub certificates: u16,
    /// SHA-1 of the leaf certificate's DER (Suricata's `fingerprint`).
    pub leaf_sha1: Option<[u8; 20]>,
    pub ccs_client: bool,
    pub ccs_server: bool,
    pub app_data_client: u32,
    pub app_data_server: u32,
    pub last_alert: Option<(u8, u8)>,
    pub fatal_alert: bool,
    pub anomalies_client: AnomalySet,
    pub anomalies_server: AnomalySet,
}

impl TlsSummary {
    /// Folds one event seen in direction `dir`.
    pub fn observe(&mut self, dir: Dir, event: &TlsEvent<'_>) {
        self.observe_with(dir, event, Known::default());
    }

    /// Like [`TlsSummary::observe`], with what the caller already has of this event (see
    /// [`Known`]), so that nothing is computed twice.
    pub fn observe_with(&mut self, dir: Dir, event: &TlsEvent<'_>, known: Known<'_>) {
        let Known {
            client,
            server,
            cert_sha1,
        } = known;
        match *event {
            TlsEvent::ClientHello(ch) => {
                self.client_hellos = self.client_hellos.saturating_add(1);
                // The first hello from the client names the flow; a second one, or one the
                // server sent (an anomaly of its own), does not overwrite it.
                if self.client_hello_seen || dir != Dir::ToServer {
                    return;
                }
                self.client_hello_seen = true;
                self.sslv2_hello = ch.sslv2_format;
                self.client_record_version = ch.record_version;
                self.client_legacy_version = ch.legacy_version;
                self.client_max_version = ch.max_offered_version();
                self.has_sni = ch.has_sni;
                self.sni = ch.sni;
                self.hidden = ch.hidden;
                self.alpn_offered = ch.alpn.as_slice().first().copied();
                if !ch.sslv2_format {
                    self.ja3 = Some(client.map_or_else(|| fingerprint::ja3(ch).md5, |p| p.ja3.md5));
                    self.ja3n =
                        Some(client.map_or_else(|| fingerprint::ja3n(ch).md5, |p| p.ja3n_md5));
                }
                self.ja4 = Some(client.map_or_else(|| fingerprint::ja4(ch), |p| p.ja4));
            }
            TlsEvent::ServerHello(sh) => {
                self.server_hellos = self.server_hellos.saturating_add(1);
                if dir != Dir::ToClient {
                    return;
                }
                self.hello_retry |= sh.is_hello_retry;
                self.server_hello_seen = true;
                self.negotiated_version = sh.negotiated_version();
                self.cipher = sh.cipher;
                self.alpn_selected = sh.alpn;
                self.ja3s = Some(server.map_or_else(|| fingerprint::ja3s(sh).md5, |p| p.ja3s.md5));
                self.ja4s = Some(server.map_or_else(|| fingerprint::ja4s(sh), |p| p.ja4s));
            }
            TlsEvent::Certificate { index, der } => {
                if index == 0 && self.leaf_sha1.is_none() {
                    self.leaf_sha1 =
                        Some(cert_sha1.unwrap_or_else(|| crate::proto::x509::sha1_of(der)));
                }
                self.certificates = self.certificates.saturating_add(1);
            }
            TlsEvent::ChangeCipherSpec => match dir {
                Dir::ToServer => self.ccs_client = true,
                Dir::ToClient => self.ccs_server = true,
            },
            TlsEvent::ApplicationData { .. } => match dir {
                Dir::ToServer => self.app_data_client = self.app_data_client.saturating_add(1),
                Dir::ToClient => self.app_data_server = self.app_data_server.saturating_add(1),
            },
            TlsEvent::Alert { level, description } => {
                self.last_alert = Some((level, description));
                self.fatal_alert |= level == 2;
            }
            TlsEvent::Anomaly(a) => {
                match dir {
                    Dir::ToServer => self.anomalies_client.insert(a),
                    Dir::ToClient => self.anomalies_server.insert(a),
                };
            }
            TlsEvent::ServerHelloDone
            | TlsEvent::Handshake { .. }
            | TlsEvent::EncryptedAlert { .. }
            | TlsEvent::EncryptedHandshake { .. }
            | TlsEvent::Heartbeat { .. } => {}
        }
    }
}
