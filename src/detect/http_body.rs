//! HTTP response bodies whose first bytes contradict their Content-Type (DET0470
//! ProtocolMatchConfidence: a header field against what the service actually delivers).
//!
//! Malware stages and tunnels ride on responses dressed as harmless media: a PE or ELF served
//! as `image/png`, a zip as `text/css`, a PowerShell stage as `font/woff2`. The inspector shows
//! the checks the first bytes of each response body (after the chunk-size line when chunked,
//! up to 1 KiB, see `proto::magic`); this check compares their signature with the declared
//! type:
//!
//! | body starts as | declared image/video/audio/font | html/css/json/js/xml/svg | text/plain |
//! |---|---|---|---|
//! | executable (PE, ELF, Mach-O) | 95 | 90 | 80 |
//! | archive (zip, gzip, 7z, rar, xz, bzip2) | 80 | 70 | 50 |
//! | script (#!, PowerShell, batch) | 85 | 70 for css/json/xml/svg; not judged for html/js | not judged |
//!
//! and, when `image_without_magic` is on, an `image/*` body of at least 16 bytes with no image
//! signature at all (and no other format's) is reported at 40.
//!
//! Not judged: responses with a Content-Encoding other than identity (the signature is the
//! encoding's, gzip's or brotli's, and decoding is out of reach without allocating), partial
//! content (206: a range starts mid-file), non-2xx statuses (error pages), responses to HEAD and
//! bodiless statuses (the inspector never shows them), and types that promise nothing
//! (application/octet-stream, downloads, archives).

use std::fmt;

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::HttpBody;
use crate::proto::magic::{self, MagicClass, MediaClass};

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpBodyConfig {
    pub enabled: bool,
    /// In block mode, findings at or above `block_min_confidence` drop the flow.
    pub block: bool,
    pub block_min_confidence: u8,
    /// Also report image types whose body carries no image signature (low confidence).
    pub image_without_magic: bool,
}

impl Default for HttpBodyConfig {
    fn default() -> Self {
        HttpBodyConfig {
            enabled: true,
            block: true,
            block_min_confidence: 80,
            image_without_magic: true,
        }
    }
}

impl HttpBodyConfig {
    /// Range checks; `path` names the config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        if !(1..=100).contains(&self.block_min_confidence) {
            return Err(KeyError {
                path: path.into(),
                key: "detect.http_body.block_min_confidence".into(),
                message: format!(
                    "invalid value {}; accepted: 1 to 100",
                    self.block_min_confidence
                ),
            });
        }
        Ok(())
    }
}

pub struct HttpBodyCheck {
    cfg: HttpBodyConfig,
}

const IMAGE_WITHOUT_MAGIC_CONFIDENCE: u8 = 40;
/// Fewer bytes than this say too little about a body to call it signature-less.
const IMAGE_WITHOUT_MAGIC_MIN_BYTES: usize = 16;

/// The confidence that a body starting as `found` contradicts a `declared` type; `None` when it
/// does not (or the pair is not judged).
pub fn contradiction(declared: MediaClass, found: MagicClass) -> Option<u8> {
    use MediaClass as M;
    let binary = declared.is_binary_media();
    let structured = matches!(declared, M::Css | M::Json | M::Xml | M::Svg);
    let textual = structured || matches!(declared, M::Html | M::Javascript);
    match found {
        MagicClass::Executable if binary => Some(95),
        MagicClass::Executable if textual => Some(90),
        MagicClass::Executable if declared == M::Text => Some(80),
        MagicClass::Archive if binary => Some(80),
        MagicClass::Archive if textual => Some(70),
        MagicClass::Archive if declared == M::Text => Some(50),
        MagicClass::Script if binary => Some(85),
        MagicClass::Script if structured => Some(70),
        _ => None,
    }
}

impl HttpBodyCheck {
    pub fn new(cfg: &HttpBodyConfig) -> Self {
        HttpBodyCheck { cfg: cfg.clone() }
    }

    fn finding(&self, kind: FindingKind, confidence: u8, body: &HttpBody<'_>) -> Finding {
        let mut evidence = Evidence::default();
        evidence.add("content_type", body.content_type.unwrap_or("(none)"));
        Finding {
            kind,
            confidence,
            block: self.cfg.block && confidence >= self.cfg.block_min_confidence,
            dir: Dir::ToClient,
            evidence,
        }
    }

    fn on_body(&self, body: &HttpBody<'_>, out: &mut Findings) {
        if !(200..300).contains(&body.status) || body.status == 206 {
            return;
        }
        if body
            .content_encoding
            .is_some_and(|e| !e.trim().eq_ignore_ascii_case("identity"))
        {
            return;
        }
        let Some(ct) = body.content_type else {
            return;
        };
        let declared = MediaClass::of(ct.as_bytes());
        let found = magic::sniff(body.bytes);
        if let Some(m) = found {
            if let Some(confidence) = contradiction(declared, m.class()) {
                let mut f = self.finding(FindingKind::HttpBodyTypeMismatch, confidence, body);
                add_body(&mut f.evidence, m.name(), body);
                out.push(f);
            }
            return;
        }
        if self.cfg.image_without_magic
            && declared == MediaClass::Image
            && body.bytes.len() >= IMAGE_WITHOUT_MAGIC_MIN_BYTES
        {
            let mut f = self.finding(
                FindingKind::HttpImageWithoutMagic,
                IMAGE_WITHOUT_MAGIC_CONFIDENCE,
                body,
            );
            add_body(&mut f.evidence, "none", body);
            out.push(f);
        }
    }
}

fn add_body(e: &mut Evidence, magic: &str, body: &HttpBody<'_>) {
    e.add("body_magic", magic);
    e.add(
        "first_bytes",
        HexBytes(body.bytes.get(..16).unwrap_or(body.bytes)),
    );
    e.add("status", body.status);
    match body.declared_len {
        Some(n) if body.chunked => e.add("first_chunk_len", n),
        Some(n) => e.add("content_length", n),
        None => e.add("content_length", "(until close)"),
    }
    e.add(
        "transfer",
        if body.chunked { "chunked" } else { "identity" },
    );
}

struct HexBytes<'a>(&'a [u8]);

impl fmt::Display for HexBytes<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for b in self.0 {
            write!(f, "{b:02x}")?;
        }
        Ok(())
    }
}

impl Check for HttpBodyCheck {
    fn on_event(&self, _view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        if let Event::HttpResponseBody(body) = event {
            self.on_body(body, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn body<'a>(
        ct: Option<&'a str>,
        ce: Option<&'a str>,
        status: u16,
        bytes: &'a [u8],
    ) -> HttpBody<'a> {
        HttpBody {
            status,
            content_type: ct,
            content_encoding: ce,
            chunked: false,
            declared_len: Some(bytes.len() as u64),
            bytes,
        }
    }

    fn judge(b: &HttpBody<'_>) -> Vec<(FindingKind, u8, bool)> {
        let mut out = Findings::default();
        HttpBodyCheck::new(&HttpBodyConfig::default()).on_body(b, &mut out);
        out.iter()
            .map(|f| (f.kind, f.confidence, f.block))
            .collect()
    }

    const ELF: &[u8] = b"\x7fELF\x02\x01\x01\0\0\0\0\0\0\0\0\0";

    #[test]
    fn matrix_of_declared_types_and_signatures() {
        use MagicClass as F;
        use MediaClass as M;
        assert_eq!(contradiction(M::Image, F::Executable), Some(95));
        assert_eq!(contradiction(M::Svg, F::Executable), Some(90));
        assert_eq!(contradiction(M::Text, F::Archive), Some(50));
        assert_eq!(contradiction(M::Font, F::Script), Some(85));
        assert_eq!(contradiction(M::Html, F::Script), None);
        assert_eq!(contradiction(M::Text, F::Script), None);
        assert_eq!(contradiction(M::Other, F::Executable), None);
        for m in [M::Image, M::Html, M::Text, M::Json] {
            assert_eq!(contradiction(m, F::Image), None);
            assert_eq!(contradiction(m, F::Markup), None);
        }
    }

    #[test]
    fn what_is_judged_and_what_blocks() {
        let hit = (FindingKind::HttpBodyTypeMismatch, 95, true);
        assert_eq!(judge(&body(Some("image/png"), None, 200, ELF)), [hit]);
        assert_eq!(
            judge(&body(Some("image/png"), Some(" Identity "), 200, ELF)),
            [hit]
        );
        assert!(judge(&body(Some("image/png"), Some("gzip"), 200, ELF)).is_empty());
        assert!(judge(&body(Some("image/png"), None, 206, ELF)).is_empty());
        assert!(judge(&body(Some("image/png"), None, 500, ELF)).is_empty());
        assert!(judge(&body(None, None, 200, ELF)).is_empty());
        // Below block_min_confidence: alert only.
        let zip = b"PK\x03\x04\x14\0\0\0";
        assert_eq!(
            judge(&body(Some("text/plain"), None, 200, zip)),
            [(FindingKind::HttpBodyTypeMismatch, 50, false)]
        );
        assert_eq!(
            judge(&body(Some("image/webp"), None, 200, &[0x42; 64])),
            [(FindingKind::HttpImageWithoutMagic, 40, false)]
        );
    }

    #[test]
    fn validation_names_key_value_and_accepted() {
        assert!(HttpBodyConfig::default().validate("x").is_ok());
        let bad = HttpBodyConfig {
            block_min_confidence: 0,
            ..HttpBodyConfig::default()
        };
        match bad.validate("f.toml") {
            Err(KeyError { path, key, message }) => {
                assert_eq!(path, "f.toml");
                assert_eq!(key, "detect.http_body.block_min_confidence");
                assert_eq!(message, "invalid value 0; accepted: 1 to 100");
            }
            other => panic!("{other:?}"),
        }
    }
}
