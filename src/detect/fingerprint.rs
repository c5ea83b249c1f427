//! TLS client fingerprints against allow and deny lists (DET0470 TLSFingerprintMatch): JA3,
//! the extension-order-proof JA3N, and JA4 (and JA3S for servers on deny lists).
//!
//! Lists live in files named in config, one entry per line:
//!
//! ```text
//! # type  value                                  label (the rest of the line)
//! ja3     e7d705a3286e19ea42f587b344ee6865       Tor client, 2019
//! ja4     t13d1516h2_8daaf6152771_e5627efa2ab1   Chrome 120
//! ```
//!
//! Types are `ja3`, `ja3n` and `ja3s` (the 32-digit MD5) and `ja4` (the 36-character
//! fingerprint); values are matched ignoring case. `#` at the start of a line or after
//! whitespace begins a comment. A deny hit raises `tls_fingerprint_denied` with the entry's
//! label. Each allow set names the destinations it guards (server ports and/or address
//! prefixes, both must match when both are given) and the files of the clients allowed
//! there; a client whose JA3, JA3N and JA4 are all absent from every set guarding its
//! destination raises `tls_fingerprint_not_allowed`.
//!
//! [`load_lists`] reads every file; it runs when the config is validated (so a bad line is a
//! config error naming the file, the line and the value) and when the engine is built, and can
//! simply be called again to reload. Lookups hash fixed-size keys built on the stack: nothing
//! is allocated per hello.

use std::collections::HashMap;
use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use super::check::KeyError;
use super::check::{Check, Event, Evidence, Finding, FindingKind, Findings, FlowView};
use crate::flow::Dir;
use crate::inspect::TlsFacts;

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FingerprintConfig {
    pub enabled: bool,
    pub block: bool,
    /// Files of fingerprints to flag wherever they appear.
    pub deny_files: Vec<String>,
    /// Allow-list mode: destinations where only listed clients may connect.
    pub allow: Vec<AllowSetConfig>,
}

/// One allow-list destination set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct AllowSetConfig {
    /// Shown in evidence.
    pub name: String,
    /// Files of the client fingerprints allowed here.
    pub files: Vec<String>,
    /// Server ports this set guards (empty: any port).
    #[serde(default)]
    pub ports: Vec<u16>,
    /// Server address prefixes this set guards, e.g. "10.20.0.0/16" (empty: any address).
    #[serde(default)]
    pub prefixes: Vec<String>,
}

impl Default for FingerprintConfig {
    fn default() -> Self {
        FingerprintConfig {
            enabled: true,
            block: true,
            deny_files: Vec::new(),
            allow: Vec::new(),
        }
    }
}

impl FingerprintConfig {
    /// Range and consistency checks, and a full load of every list file; `path` names the
    /// config file in errors.
    pub fn validate(&self, path: &str) -> Result<(), KeyError> {
        load_lists(self, path).map(|_| ())
    }
}

/// Fingerprint methods a list entry may name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FpType {
    Ja3,
    Ja3n,
    Ja3s,
    Ja4,
}

impl FpType {
    pub const NAMES: [&'static str; 4] = ["ja3", "ja3n", "ja3s", "ja4"];

    pub fn name(self) -> &'static str {
        match self {
            FpType::Ja3 => "ja3",
            FpType::Ja3n => "ja3n",
            FpType::Ja3s => "ja3s",
            FpType::Ja4 => "ja4",
        }
    }

    fn from_name(s: &str) -> Option<FpType> {
        match s.to_ascii_lowercase().as_str() {
            "ja3" => Some(FpType::Ja3),
            "ja3n" => Some(FpType::Ja3n),
            "ja3s" => Some(FpType::Ja3s),
            "ja4" => Some(FpType::Ja4),
            _ => None,
        }
    }
}

/// What a list says about one fingerprint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListEntry {
    pub label: String,
    /// `file:line` of the entry.
    pub source: String,
}

/// One or more list files, indexed for allocation-free lookup.
#[derive(Debug, Clone, Default)]
pub struct FingerprintSet {
    md5: HashMap<(FpType, [u8; 16]), ListEntry>,
    ja4: HashMap<[u8; JA4_LEN], ListEntry>,
}

const JA4_LEN: usize = 36;

impl FingerprintSet {
    pub fn len(&self) -> usize {
        self.md5.len() + self.ja4.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The entry for a fingerprint as unmask prints it (lowercase hex MD5, or JA4 text).
    pub fn get(&self, ty: FpType, value: &str) -> Option<&ListEntry> {
        match ty {
            FpType::Ja4 => self.ja4.get(&ja4_key(value)?),
            _ => self.md5.get(&(ty, md5_key(value)?)),
        }
    }

    /// Adds the entries of one list file's text; `file` names it in errors. The first entry
    /// for a fingerprint wins.
    pub fn parse_into(&mut self, text: &str, file: &str) -> Result<(), ListError> {
        for (i, raw) in text.lines().enumerate() {
            let line = i + 1;
            let content = strip_comment(raw).trim();
            if content.is_empty() {
                continue;
            }
            let err = |message: String| ListError {
                file: file.to_string(),
                line,
                message,
            };
            let mut parts = content.splitn(2, char::is_whitespace);
            let ty_text = parts.next().unwrap_or("");
            let rest = parts.next().unwrap_or("").trim_start();
            let mut parts = rest.splitn(2, char::is_whitespace);
            let value = parts.next().unwrap_or("");
            let label = parts.next().unwrap_or("").trim();
            let ty = FpType::from_name(ty_text).ok_or_else(|| {
                err(format!(
                    "unknown fingerprint type {ty_text:?}; accepted: {}",
                    FpType::NAMES.join(", ")
                ))
            })?;
            if value.is_empty() {
                return Err(err(format!(
                    "missing {} value; accepted: `{} <value> <label>`",
                    ty.name(),
                    ty.name()
                )));
            }
            let entry = |label: &str| ListEntry {
                label: label.to_string(),
                source: format!("{file}:{line}"),
            };
            if label.is_empty() {
                return Err(err(format!(
                    "missing label after {} {value}; accepted: any text naming the entry",
                    ty.name()
                )));
            }
            match ty {
                FpType::Ja4 => {
                    let key = ja4_key(value).ok_or_else(|| {
                        err(format!(
                            "invalid ja4 value {value:?}; accepted: 36 characters like \
                             t13d1516h2_8daaf6152771_e5627efa2ab1 (10-character prefix, then two \
                             12-digit hex hashes, joined by '_')"
                        ))
                    })?;
                    self.ja4.entry(key).or_insert_with(|| entry(label));
                }
                _ => {
                    let key = md5_key(value).ok_or_else(|| {
                        err(format!(
                            "invalid {} value {value:?}; accepted: 32 hexadecimal digits (an MD5)",
                            ty.name()
                        ))
                    })?;
                    self.md5.entry((ty, key)).or_insert_with(|| entry(label));
                }
            }
        }
        Ok(())
    }
}

/// A bad line in a list file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListError {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl fmt::Display for ListError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} line {}: {}", self.file, self.line, self.message)
    }
}

/// `#` at the start or after whitespace begins a comment.
fn strip_comment(line: &str) -> &str {
    let b = line.as_bytes();
    for (i, c) in b.iter().enumerate() {
        if *c == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return &line[..i];
        }
    }
    line
}

fn hex_val(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// 32 hex digits to 16 bytes.
fn md5_key(s: &str) -> Option<[u8; 16]> {
    let b = s.as_bytes();
    if b.len() != 32 {
        return None;
    }
    let mut out = [0u8; 16];
    for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
        *o = (hex_val(pair[0])? << 4) | hex_val(pair[1])?;
    }
    Some(out)
}

/// A JA4 (`t13d1516h2_8daaf6152771_e5627efa2ab1`) as lowercase bytes, shape-checked.
fn ja4_key(s: &str) -> Option<[u8; JA4_LEN]> {
    let b = s.as_bytes();
    if b.len() != JA4_LEN || b[10] != b'_' || b[23] != b'_' {
        return None;
    }
    let mut out = [0u8; JA4_LEN];
    for (o, c) in out.iter_mut().zip(b) {
        *o = c.to_ascii_lowercase();
    }
    let a = &out[..10];
    let proto_ok = matches!(a[0], b't' | b'q' | b'd');
    let sni_ok = matches!(a[3], b'd' | b'i');
    let counts_ok = a[4..8].iter().all(u8::is_ascii_digit);
    let rest_ok = a[1..3]
        .iter()
        .chain(&a[8..10])
        .all(u8::is_ascii_alphanumeric);
    let hashes_ok = out[11..23]
        .iter()
        .chain(&out[24..])
        .all(|c| hex_val(*c).is_some());
    (proto_ok && sni_ok && counts_ok && rest_ok && hashes_ok).then_some(out)
}

/// An address prefix (`10.0.0.0/8`, `2001:db8::/32`, or a bare address).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Prefix {
    net: IpAddr,
    len: u8,
}

impl Prefix {
    pub fn parse(s: &str) -> Option<Prefix> {
        let (addr, len) = match s.split_once('/') {
            Some((a, l)) => (a.parse::<IpAddr>().ok()?, Some(l.parse::<u8>().ok()?)),
            None => (s.parse::<IpAddr>().ok()?, None),
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let len = len.unwrap_or(max);
        (len <= max).then_some(Prefix { net: addr, len })
    }

    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX.checked_shl(32 - self.len as u32).unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX.checked_shl(128 - self.len as u32).unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

/// An allow set, loaded.
#[derive(Debug, Clone)]
pub struct AllowSet {
    pub name: String,
    pub ports: Vec<u16>,
    pub prefixes: Vec<Prefix>,
    pub clients: FingerprintSet,
}

impl AllowSet {
    /// Does this set guard connections to `addr`:`port`?
    pub fn guards(&self, addr: IpAddr, port: u16) -> bool {
        (self.ports.is_empty() || self.ports.contains(&port))
            && (self.prefixes.is_empty() || self.prefixes.iter().any(|p| p.contains(addr)))
    }
}

/// Every list the check consults.
#[derive(Debug, Clone, Default)]
pub struct FingerprintLists {
    pub deny: FingerprintSet,
    pub allow: Vec<AllowSet>,
}

fn read_list(
    set: &mut FingerprintSet,
    file: &str,
    config_path: &str,
    key: String,
) -> Result<(), KeyError> {
    let text = std::fs::read_to_string(file).map_err(|e| KeyError {
        path: config_path.into(),
        key: key.clone(),
        message: format!(
            "cannot read fingerprint list {file:?}: {e}; accepted: a readable file (paths are \
             relative to the working directory)"
        ),
    })?;
    set.parse_into(&text, file).map_err(|e| KeyError {
        path: config_path.into(),
        key,
        message: e.to_string(),
    })
}

/// Reads and checks every list the config names. Call again to reload.
pub fn load_lists(
    cfg: &FingerprintConfig,
    config_path: &str,
) -> Result<FingerprintLists, KeyError> {
    let err = |key: String, message: String| KeyError {
        path: config_path.into(),
        key,
        message,
    };
    let mut lists = FingerprintLists::default();
    for (i, file) in cfg.deny_files.iter().enumerate() {
        read_list(
            &mut lists.deny,
            file,
            config_path,
            format!("detect.fingerprint.deny_files[{i}]"),
        )?;
    }
    for (i, set) in cfg.allow.iter().enumerate() {
        let key = |k: &str| format!("detect.fingerprint.allow[{i}].{k}");
        if set.name.trim().is_empty() {
            return Err(err(
                key("name"),
                "empty name; accepted: any text naming the set".into(),
            ));
        }
        if set.files.is_empty() {
            return Err(err(
                key("files"),
                "no files; accepted: one or more fingerprint list files".into(),
            ));
        }
        if set.ports.is_empty() && set.prefixes.is_empty() {
            return Err(err(
                key("ports"),
                "neither ports nor prefixes given; accepted: server ports and/or address \
                 prefixes the set guards"
                    .into(),
            ));
        }
        if let Some(j) = set.ports.iter().position(|p| *p == 0) {
            return Err(err(
                format!("{}[{j}]", key("ports")),
                "invalid port 0; accepted: 1 to 65535".into(),
            ));
        }
        let mut prefixes = Vec::new();
        for (j, p) in set.prefixes.iter().enumerate() {
            prefixes.push(Prefix::parse(p).ok_or_else(|| {
                err(
                    format!("{}[{j}]", key("prefixes")),
                    format!(
                        "invalid prefix {p:?}; accepted: an address or address/length, e.g. \
                         \"10.20.0.0/16\", \"2001:db8::/32\""
                    ),
                )
            })?);
        }
        let mut clients = FingerprintSet::default();
        for (j, file) in set.files.iter().enumerate() {
            read_list(
                &mut clients,
                file,
                config_path,
                format!("{}[{j}]", key("files")),
            )?;
        }
        if clients.md5.keys().any(|(t, _)| *t == FpType::Ja3s) {
            return Err(err(
                key("files"),
                "ja3s entries in an allow list; accepted: client fingerprints (ja3, ja3n, ja4): \
                 allow sets judge clients"
                    .into(),
            ));
        }
        lists.allow.push(AllowSet {
            name: set.name.clone(),
            ports: set.ports.clone(),
            prefixes,
            clients,
        });
    }
    Ok(lists)
}

pub struct FingerprintCheck {
    block: bool,
    lists: FingerprintLists,
}

impl FingerprintCheck {
    /// Loads the lists. They were checked when the config was validated; should a file have
    /// changed since and no longer load, the check runs without lists and says so on stderr.
    pub fn new(cfg: &FingerprintConfig) -> Self {
        let lists = load_lists(cfg, "config").unwrap_or_else(|e| {
            eprintln!("unmask: fingerprint lists not loaded, running without them: {e}");
            FingerprintLists::default()
        });
        Self::with_lists(cfg, lists)
    }

    /// A check over lists loaded beforehand (for reloads).
    pub fn with_lists(cfg: &FingerprintConfig, lists: FingerprintLists) -> Self {
        FingerprintCheck {
            block: cfg.block,
            lists,
        }
    }

    fn finding(&self, kind: FindingKind, confidence: u8, dir: Dir) -> Finding {
        Finding {
            kind,
            confidence,
            block: self.block,
            dir,
            evidence: Evidence::default(),
        }
    }

    fn on_client_hello(&self, view: &FlowView<'_>, t: &TlsFacts, out: &mut Findings) {
        let s = &t.summary;
        if !s.client_hello_seen || s.client_hellos != 1 {
            return;
        }
        let fps = [
            (FpType::Ja4, s.ja4.as_ref().map(|j| j.as_str())),
            (FpType::Ja3n, s.ja3n.as_ref().map(|j| j.as_str())),
            (FpType::Ja3, s.ja3.as_ref().map(|j| j.as_str())),
        ];
        let hit = fps.iter().find_map(|(ty, v)| {
            let v = (*v)?;
            self.lists.deny.get(*ty, v).map(|e| (*ty, v, e))
        });
        if let Some((ty, value, entry)) = hit {
            let mut f = self.finding(FindingKind::TlsFingerprintDenied, 90, Dir::ToServer);
            f.evidence.add("label", entry.label.as_str());
            f.evidence.add("type", ty.name());
            f.evidence.add("value", value);
            f.evidence.add("list", entry.source.as_str());
            add_sni(&mut f.evidence, t);
            out.push(f);
        }
        let mut guarding = self
            .lists
            .allow
            .iter()
            .filter(|a| a.guards(view.server_addr, view.server_port))
            .peekable();
        let Some(first) = guarding.peek().map(|a| a.name.as_str()) else {
            return;
        };
        let allowed = guarding.any(|set| {
            fps.iter()
                .any(|(ty, v)| v.is_some_and(|v| set.clients.get(*ty, v).is_some()))
        });
        if !allowed {
            let mut f = self.finding(FindingKind::TlsFingerprintNotAllowed, 70, Dir::ToServer);
            f.evidence.add("allow_set", first);
            for (ty, v) in fps {
                if let Some(v) = v {
                    f.evidence.add(ty.name(), v);
                }
            }
            f.evidence.add("server_port", view.server_port);
            add_sni(&mut f.evidence, t);
            out.push(f);
        }
    }

    fn on_server_hello(&self, t: &TlsFacts, out: &mut Findings) {
        let Some(ja3s) = t
            .summary
            .ja3s
            .as_ref()
            .filter(|_| t.summary.server_hello_seen)
        else {
            return;
        };
        if let Some(entry) = self.lists.deny.get(FpType::Ja3s, ja3s.as_str()) {
            let mut f = self.finding(FindingKind::TlsFingerprintDenied, 85, Dir::ToClient);
            f.evidence.add("label", entry.label.as_str());
            f.evidence.add("type", "ja3s");
            f.evidence.add("value", ja3s.as_str());
            f.evidence.add("list", entry.source.as_str());
            add_sni(&mut f.evidence, t);
            out.push(f);
        }
    }
}

fn add_sni(e: &mut Evidence, t: &TlsFacts) {
    if t.summary.has_sni {
        e.add("sni", t.summary.sni.as_str());
    }
}

impl Check for FingerprintCheck {
    fn on_event(&self, view: &FlowView<'_>, event: &Event<'_>, out: &mut Findings) {
        let Some(t) = view.tls else {
            return;
        };
        match event {
            Event::TlsClientHello(_) => self.on_client_hello(view, t, out),
            Event::TlsServerHello(_) => self.on_server_hello(t, out),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::capture::Timestamp;
    use crate::fixtures::tls as build;
    use crate::proto::tls::{TlsEvent, TlsScratch};
    use crate::proto::DirIdent;

    const CHROME_JA4: &str = "t13d1516h2_8daaf6152771_e5627efa2ab1";

    fn set(text: &str) -> FingerprintSet {
        let mut s = FingerprintSet::default();
        s.parse_into(text, "test.list").unwrap();
        s
    }

    fn list_error(text: &str) -> ListError {
        FingerprintSet::default()
            .parse_into(text, "bad.list")
            .unwrap_err()
    }

    #[test]
    fn list_format_types_comments_and_case() {
        let s = set("# a comment\n\n ja3  E7D705A3286E19EA42F587B344EE6865  Tor client # old\nja4 t13d1516h2_8daaf6152771_e5627efa2ab1 Chrome 120\nJA3S 0123456789abcdef0123456789abcdef C2#7 server # comment\n");
        assert_eq!(s.len(), 3);
        let e = s
            .get(FpType::Ja3, "e7d705a3286e19ea42f587b344ee6865")
            .unwrap();
        assert_eq!(e.label, "Tor client");
        assert_eq!(e.source, "test.list:3");
        assert_eq!(s.get(FpType::Ja4, CHROME_JA4).unwrap().label, "Chrome 120");
        assert_eq!(
            s.get(FpType::Ja3s, "0123456789abcdef0123456789abcdef")
                .unwrap()
                .label,
            "C2#7 server"
        );
        // The same hash under another method is a different fingerprint.
        assert!(s
            .get(FpType::Ja3n, "e7d705a3286e19ea42f587b344ee6865")
            .is_none());
        assert!(s.get(FpType::Ja3, "not hex").is_none());
    }

    #[test]
    fn bad_lines_name_file_line_value_and_accepted() {
        let e = list_error("ja3 e7d705a3286e19ea42f587b344ee6865 ok\nja5 abc label\n");
        assert_eq!((e.file.as_str(), e.line), ("bad.list", 2));
        assert!(
            e.message.contains("\"ja5\"") && e.message.contains("ja3, ja3n, ja3s, ja4"),
            "{e}"
        );
        let e = list_error("ja3 e7d705a3286e19ea42f587b344ee686 short\n");
        assert!(
            e.message.contains("e7d705a3286e19ea42f587b344ee686")
                && e.message.contains("32 hexadecimal"),
            "{e}"
        );
        let e = list_error("ja4 t13d1516h2_8daaf6152771_e5627efa2ab1\n");
        assert!(e.message.contains("missing label"), "{e}");
        let e = list_error("ja4 x13d1516h2_8daaf6152771_e5627efa2ab1 bad\n");
        assert!(e.message.contains("invalid ja4"), "{e}");
        let e = list_error("ja3\n");
        assert!(e.message.contains("missing ja3 value"), "{e}");
        assert_eq!(e.to_string(), format!("bad.list line 1: {}", e.message));
    }

    #[test]
    fn prefixes_match_by_length() {
        let p = Prefix::parse("10.20.0.0/16").unwrap();
        assert!(p.contains("10.20.255.1".parse().unwrap()));
        assert!(!p.contains("10.21.0.1".parse().unwrap()));
        assert!(!p.contains("::1".parse().unwrap()));
        assert!(Prefix::parse("0.0.0.0/0")
            .unwrap()
            .contains("8.8.8.8".parse().unwrap()));
        assert!(Prefix::parse("2001:db8::/32")
            .unwrap()
            .contains("2001:db8:1::5".parse().unwrap()));
        assert!(Prefix::parse("192.0.2.7")
            .unwrap()
            .contains("192.0.2.7".parse().unwrap()));
        assert!(!Prefix::parse("192.0.2.7")
            .unwrap()
            .contains("192.0.2.8".parse().unwrap()));
        for bad in ["10.0.0.0/33", "10.0.0/8", "x", "::/129", "10.0.0.0/"] {
            assert!(Prefix::parse(bad).is_none(), "{bad}");
        }
    }

    /// Parses the default fixture hello, runs the check on it, returns findings and the
    /// hello's fingerprints.
    fn run(lists: FingerprintLists, server_port: u16) -> (Vec<Finding>, TlsFacts) {
        let check = FingerprintCheck::with_lists(&FingerprintConfig::default(), lists);
        let mut t = TlsFacts::default();
        let mut d = t.dirs[0];
        let mut out = Findings::default();
        let hello = build::client_hello(&build::Hello::default());
        d.feed(&hello, &mut TlsScratch::new(1 << 16), |ev| {
            t.summary.observe(Dir::ToServer, &ev);
            if let TlsEvent::ClientHello(ch) = ev {
                let v = FlowView {
                    client_addr: [10, 0, 0, 1].into(),
                    server_addr: [10, 20, 0, 5].into(),
                    client_port: 50000,
                    server_port,
                    ident: [DirIdent::default(); 2],
                    tls: Some(&t),
                    trail: None,
                    http: None,
                    seen_from_start: [true, true],
                    pkts: [3, 3],
                    bytes: [500, 500],
                    first_ts: Timestamp(0),
                    now: Timestamp(0),
                };
                check.on_event(&v, &Event::TlsClientHello(ch), &mut out);
            }
        });
        (out.iter().copied().collect(), t)
    }

    fn fixture_fps() -> TlsFacts {
        run(FingerprintLists::default(), 443).1
    }

    #[test]
    fn deny_hit_carries_label_and_list() {
        let t = fixture_fps();
        let ja3n = t.summary.ja3n.unwrap();
        let lists = FingerprintLists {
            deny: set(&format!(
                "ja3n {} fixture client\n",
                ja3n.as_str().to_uppercase()
            )),
            allow: vec![],
        };
        let (found, _) = run(lists, 443);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::TlsFingerprintDenied);
        assert_eq!(found[0].evidence.get("label"), Some("fixture client"));
        assert_eq!(found[0].evidence.get("type"), Some("ja3n"));
        assert_eq!(found[0].evidence.get("value"), Some(ja3n.as_str()));
        assert_eq!(found[0].evidence.get("list"), Some("test.list:1"));
        assert!(run(FingerprintLists::default(), 443).0.is_empty());
    }

    #[test]
    fn allow_sets_judge_only_the_destinations_they_guard() {
        let t = fixture_fps();
        let ja4 = t.summary.ja4.unwrap();
        let guard = |text: &str, ports: Vec<u16>, prefixes: &[&str]| FingerprintLists {
            deny: FingerprintSet::default(),
            allow: vec![AllowSet {
                name: "proxies".into(),
                ports,
                prefixes: prefixes.iter().map(|p| Prefix::parse(p).unwrap()).collect(),
                clients: set(text),
            }],
        };
        let other = "ja4 t13d1516h2_8daaf6152771_e5627efa2ab1 Chrome\n";
        let (found, _) = run(guard(other, vec![443], &[]), 443);
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].kind, FindingKind::TlsFingerprintNotAllowed);
        assert_eq!(found[0].evidence.get("allow_set"), Some("proxies"));
        assert_eq!(found[0].evidence.get("ja4"), Some(ja4.as_str()));
        // Another port, or another network: not guarded.
        assert!(run(guard(other, vec![8443], &[]), 443).0.is_empty());
        assert!(run(guard(other, vec![443], &["10.30.0.0/16"]), 443)
            .0
            .is_empty());
        assert_eq!(
            run(guard(other, vec![443], &["10.20.0.0/16"]), 443).0.len(),
            1
        );
        // Listed client: allowed.
        let listed = format!("ja4 {} fixture\n", ja4.as_str());
        assert!(run(guard(&listed, vec![443], &[]), 443).0.is_empty());
    }

    #[test]
    fn loading_reports_files_and_keys() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("good.list");
        std::fs::write(&good, "ja3 e7d705a3286e19ea42f587b344ee6865 Tor\n").unwrap();
        let bad = dir.path().join("bad.list");
        std::fs::write(&bad, "# header\nja3 zz Tor\n").unwrap();
        let path = |p: &std::path::Path| p.to_string_lossy().to_string();

        let cfg = FingerprintConfig {
            deny_files: vec![path(&good)],
            ..FingerprintConfig::default()
        };
        assert_eq!(load_lists(&cfg, "u.toml").unwrap().deny.len(), 1);

        let cfg = FingerprintConfig {
            deny_files: vec![path(&good), path(&bad)],
            ..FingerprintConfig::default()
        };
        match load_lists(&cfg, "u.toml") {
            Err(KeyError {
                path: p,
                key,
                message,
            }) => {
                assert_eq!(p, "u.toml");
                assert_eq!(key, "detect.fingerprint.deny_files[1]");
                assert!(
                    message.contains("bad.list line 2") && message.contains("\"zz\""),
                    "{message}"
                );
            }
            other => panic!("{other:?}"),
        }
        let missing = dir.path().join("nope.list");
        let cfg = FingerprintConfig {
            deny_files: vec![path(&missing)],
            ..FingerprintConfig::default()
        };
        let e = load_lists(&cfg, "u.toml").unwrap_err().to_string();
        assert!(e.contains("nope.list") && e.contains("cannot read"), "{e}");

        let set = |ports: Vec<u16>, prefixes: Vec<String>| AllowSetConfig {
            name: "corp".into(),
            files: vec![path(&good)],
            ports,
            prefixes,
        };
        let cfg = FingerprintConfig {
            allow: vec![set(vec![], vec![])],
            ..FingerprintConfig::default()
        };
        assert!(load_lists(&cfg, "u.toml")
            .unwrap_err()
            .to_string()
            .contains("allow[0].ports"));
        let cfg = FingerprintConfig {
            allow: vec![set(vec![443], vec!["10.0.0.0/40".into()])],
            ..FingerprintConfig::default()
        };
        let e = load_lists(&cfg, "u.toml").unwrap_err().to_string();
        assert!(
            e.contains("allow[0].prefixes[0]") && e.contains("10.0.0.0/40"),
            "{e}"
        );
        let cfg = FingerprintConfig {
            allow: vec![set(vec![443], vec!["10.0.0.0/8".into()])],
            ..FingerprintConfig::default()
        };
        let lists = load_lists(&cfg, "u.toml").unwrap();
        assert!(lists.allow[0].guards("10.1.2.3".parse().unwrap(), 443));
        assert!(!lists.allow[0].guards("10.1.2.3".parse().unwrap(), 80));
    }

    #[test]
    fn shipped_example_lists_load() {
        let root = env!("CARGO_MANIFEST_DIR");
        for f in ["deny.example.list", "allow.example.list"] {
            let text = std::fs::read_to_string(format!("{root}/configs/fingerprints/{f}")).unwrap();
            let mut s = FingerprintSet::default();
            s.parse_into(&text, f).unwrap();
            assert!(!s.is_empty(), "{f}");
        }
    }
}
