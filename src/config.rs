//! TOML configuration, validated once at start-up.
//!
//! Every error names the file, the key, the offending value and what would be accepted, so an
//! operator can fix a config without reading the source. `configs/unmask.toml` documents every
//! key; a test keeps it identical to [`Config::default`].

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::detect::config::DetectConfig;
use crate::detect::KeyError;
use crate::engine::EngineConfig;
use crate::flow::table::TableConfig;
use crate::proto::{known_protocol_names, AppProto};
use crate::verdict::{Bypass, FailMode, Mode};

/// A configuration problem, phrased for the operator.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("{path}: cannot read the config file: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}:{line}:{column}: {message}")]
    Syntax {
        path: String,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("{path}: key `{key}`: {message}")]
    Key {
        path: String,
        key: String,
        message: String,
    },
}

impl From<KeyError> for ConfigError {
    fn from(e: KeyError) -> Self {
        ConfigError::Key {
            path: e.path,
            key: e.key,
            message: e.message,
        }
    }
}

/// The whole configuration. Missing keys take their defaults; unknown keys are errors.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub verdict: VerdictConfig,
    pub flow: FlowConfig,
    pub stream: StreamConfig,
    pub proto: ProtoConfig,
    pub decode: crate::wire::DecodeConfig,
    pub defrag: crate::flow::defrag::DefragConfig,
    pub detect: DetectConfig,
    pub output: OutputConfig,
    pub live: LiveConfig,
    pub datapath: crate::datapath::XskConfig,
    pub metrics: MetricsConfig,
    pub correlation: crate::host::correlate::CorrelationConfig,
    pub baseline: crate::host::baseline::BaselineConfig,
}

/// Where `unmask run` attaches and how many workers it runs.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct LiveConfig {
    pub topology: crate::datapath::Topology,
    /// Inline: port A then port B. Tap: the one mirror port.
    pub ports: Vec<String>,
    /// One worker per queue; worker i owns queue i of every port.
    pub workers: u32,
    /// Unix socket for `unmask ctl` (reload, status); empty: no socket (SIGHUP still reloads).
    pub control_socket: String,
    /// Drop every capability but CAP_NET_ADMIN once the datapath is up.
    pub drop_privileges: bool,
}

impl Default for LiveConfig {
    fn default() -> Self {
        LiveConfig {
            topology: crate::datapath::Topology::Inline,
            ports: Vec::new(),
            workers: 1,
            control_socket: "/run/unmask/control.sock".into(),
            drop_privileges: true,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictConfig {
    pub mode: Mode,
    pub fail_mode: FailMode,
    /// Judged flows the kernel forwards without the workers (live only).
    pub bypass: Bypass,
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct FlowConfig {
    pub capacity: u32,
    pub new_timeout_secs: u32,
    pub established_timeout_secs: u32,
    pub closed_timeout_secs: u32,
    /// How often a bypassed flow's kernel counters are read (and whether it still lives).
    pub bypassed_timeout_secs: u32,
    pub evict_min_idle_secs: u32,
    /// One-directional flows: judged once the talking side is past the stream depth and the
    /// other side has sent nothing for this long (0: never).
    pub one_way_secs: u32,
}

impl Default for FlowConfig {
    fn default() -> Self {
        FlowConfig {
            capacity: 1_000_000,
            new_timeout_secs: 30,
            established_timeout_secs: 600,
            closed_timeout_secs: 10,
            bypassed_timeout_secs: 30,
            evict_min_idle_secs: 5,
            one_way_secs: 5,
        }
    }
}

impl FlowConfig {
    pub fn table(&self) -> TableConfig {
        const NS: u64 = 1_000_000_000;
        TableConfig {
            capacity: self.capacity,
            new_timeout_ns: self.new_timeout_secs as u64 * NS,
            established_timeout_ns: self.established_timeout_secs as u64 * NS,
            closed_timeout_ns: self.closed_timeout_secs as u64 * NS,
            bypassed_timeout_ns: self.bypassed_timeout_secs as u64 * NS,
            evict_min_idle_ns: self.evict_min_idle_secs as u64 * NS,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    pub depth: u32,
    pub memcap: u64,
    /// Which copy of overlapping TCP bytes is inspected.
    pub overlap_policy: crate::flow::OverlapPolicy,
    /// In block mode, a conflicting TCP overlap (tcp_overlap_conflict) blocks the flow.
    pub block_overlap_conflict: bool,
    /// Whether segments whose TCP checksum is wrong are left out of inspection.
    pub checksum_validation: ChecksumValidation,
    /// Hops a segment's TTL may fall below the highest TTL seen from its sender before it is
    /// taken as one that expires before the receiver (not inspected; its RST/FIN ends nothing).
    #[serde(deserialize_with = "ttl_tolerance")]
    pub ttl_tolerance: u8,
}

/// `stream.checksum_validation`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ChecksumValidation {
    /// Live: yes (frames come off the wire with their real checksums). Replay: no (captures
    /// taken on a host with checksum offload, or on loopback, carry unfinished checksums on
    /// every packet the host sent).
    #[default]
    Auto,
    Yes,
    No,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            depth: 16 * 1024,
            memcap: 256 * 1024 * 1024,
            overlap_policy: crate::flow::OverlapPolicy::First,
            block_overlap_conflict: true,
            checksum_validation: ChecksumValidation::Auto,
            ttl_tolerance: 1,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct ProtoConfig {
    pub unknown_after_bytes: u32,
    /// Leaf certificates each worker keeps parsed (0: every certificate is parsed).
    pub tls_cert_cache: u32,
    /// Client and server hellos each worker keeps fingerprinted, per side (0: off).
    pub tls_hello_memo: u32,
}

impl Default for ProtoConfig {
    fn default() -> Self {
        ProtoConfig {
            unknown_after_bytes: 4096,
            tls_cert_cache: crate::proto::x509::CERT_CACHE_ENTRIES as u32,
            tls_hello_memo: crate::proto::memo::HELLO_MEMO_ENTRIES as u32,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutputConfig {
    pub eve: String,
    pub flow_records: bool,
    pub queue_capacity: u32,
    /// Community ID v1 (`community_id`) in every record, as Suricata writes it.
    pub community_id: bool,
    #[serde(deserialize_with = "community_id_seed")]
    pub community_id_seed: u16,
    /// Where each EVE line also goes, beside the file (`[[output.sinks]]`).
    pub sinks: Vec<SinkConfig>,
}

/// What an extra EVE sink is, with Suricata's names for the same outputs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SinkKind {
    UnixStream,
    UnixDgram,
    Syslog,
    Redis,
}

impl SinkKind {
    pub fn name(self) -> &'static str {
        match self {
            SinkKind::UnixStream => "unix_stream",
            SinkKind::UnixDgram => "unix_dgram",
            SinkKind::Syslog => "syslog",
            SinkKind::Redis => "redis",
        }
    }
}

/// How the redis sink hands a record over, with Suricata's names: `list` and `lpush` push at
/// the head of the list (LPUSH), `rpush` at its tail (RPUSH), `channel` and `publish` publish
/// on a pub/sub channel (PUBLISH).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum RedisMode {
    List,
    Lpush,
    Rpush,
    Channel,
    Publish,
}

impl RedisMode {
    /// The redis command the mode sends.
    pub fn command(self) -> &'static str {
        match self {
            RedisMode::List | RedisMode::Lpush => "LPUSH",
            RedisMode::Rpush => "RPUSH",
            RedisMode::Channel | RedisMode::Publish => "PUBLISH",
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            RedisMode::List => "list",
            RedisMode::Lpush => "lpush",
            RedisMode::Rpush => "rpush",
            RedisMode::Channel => "channel",
            RedisMode::Publish => "publish",
        }
    }

    /// Whether records go to a list (one push of many values per batch) rather than a channel.
    pub fn is_list(self) -> bool {
        !matches!(self, RedisMode::Channel | RedisMode::Publish)
    }
}

/// One extra EVE sink. `facility` and `identity` are syslog's, `server` to `batch_size`
/// redis's; `None` takes the default so a sink of another kind that sets them can be told
/// apart and refused.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct SinkConfig {
    pub kind: SinkKind,
    /// The socket's path; syslog defaults to [`SinkConfig::SYSLOG_PATH`]. For redis, its unix
    /// socket instead of `server` and `port`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub facility: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// The redis server's host name or address.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mode: Option<RedisMode>,
    /// The list or channel name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
    /// Records waiting for the redis sender thread; more are lost (counted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub queue_capacity: Option<u32>,
    /// At most this many records per round trip to redis.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub batch_size: Option<u32>,
}

impl SinkConfig {
    pub const SYSLOG_PATH: &'static str = "/dev/log";
    /// Suricata's default facility for its EVE syslog output.
    pub const SYSLOG_FACILITY: &'static str = "local5";
    pub const SYSLOG_IDENTITY: &'static str = "unmask";
    pub const REDIS_SERVER: &'static str = "127.0.0.1";
    pub const REDIS_PORT: u16 = 6379;
    /// Suricata's default mode: LPUSH onto a list.
    pub const REDIS_MODE: RedisMode = RedisMode::List;
    /// Suricata's default key is "suricata"; ours names this program.
    pub const REDIS_KEY: &'static str = "unmask";
    /// About 16 MiB of records at 1 KiB each: a redis restart of a few seconds at a few
    /// thousand records a second is bridged without loss.
    pub const REDIS_QUEUE_CAPACITY: u32 = 16_384;
    /// Enough records per round trip to keep up with the writer, few enough that one failed
    /// round trip loses little.
    pub const REDIS_BATCH_SIZE: u32 = 256;

    /// A sink of `kind` with every other key at its default.
    pub fn new(kind: SinkKind) -> SinkConfig {
        SinkConfig {
            kind,
            path: None,
            facility: None,
            identity: None,
            server: None,
            port: None,
            mode: None,
            key: None,
            queue_capacity: None,
            batch_size: None,
        }
    }

    /// The socket path (syslog's default when unset; for redis, empty when it uses TCP).
    pub fn path(&self) -> &str {
        match self.kind {
            SinkKind::Redis => self.path.as_deref().unwrap_or(""),
            _ => self.path.as_deref().unwrap_or(Self::SYSLOG_PATH),
        }
    }

    pub fn facility(&self) -> &str {
        self.facility.as_deref().unwrap_or(Self::SYSLOG_FACILITY)
    }

    pub fn identity(&self) -> &str {
        self.identity.as_deref().unwrap_or(Self::SYSLOG_IDENTITY)
    }

    pub fn server(&self) -> &str {
        self.server.as_deref().unwrap_or(Self::REDIS_SERVER)
    }

    pub fn port(&self) -> u16 {
        self.port.unwrap_or(Self::REDIS_PORT)
    }

    pub fn mode(&self) -> RedisMode {
        self.mode.unwrap_or(Self::REDIS_MODE)
    }

    pub fn key(&self) -> &str {
        self.key.as_deref().unwrap_or(Self::REDIS_KEY)
    }

    pub fn queue_capacity(&self) -> u32 {
        self.queue_capacity.unwrap_or(Self::REDIS_QUEUE_CAPACITY)
    }

    pub fn batch_size(&self) -> u32 {
        self.batch_size.unwrap_or(Self::REDIS_BATCH_SIZE)
    }

    /// Where a redis sink connects: its unix socket, else `server:port` (IPv6 in brackets).
    pub fn redis_address(&self) -> String {
        match &self.path {
            Some(p) => p.clone(),
            None if self.server().contains(':') => format!("[{}]:{}", self.server(), self.port()),
            None => format!("{}:{}", self.server(), self.port()),
        }
    }

    /// The `sink` label of its metrics, unique because validation refuses duplicates:
    /// `kind:path`, and for redis `redis:<address>/<command>:<key>`.
    pub fn label(&self) -> String {
        match self.kind {
            SinkKind::Redis => format!(
                "redis:{}/{}:{}",
                self.redis_address(),
                self.mode().command().to_ascii_lowercase(),
                self.key()
            ),
            _ => format!("{}:{}", self.kind.name(), self.path()),
        }
    }

    fn validate(&self, key: &str) -> Result<(), (String, String)> {
        let at = |field: &str, message: String| (format!("{key}.{field}"), message);
        let kind = self.kind.name();
        match &self.path {
            None if matches!(self.kind, SinkKind::UnixStream | SinkKind::UnixDgram) => {
                return Err(at(
                    "path",
                    format!("missing for kind = \"{kind}\"; accepted: the socket's file path"),
                ))
            }
            // sun_path holds 108 bytes with the terminating NUL.
            Some(p) if p.is_empty() || p.len() > 107 || p.ends_with('/') => {
                return Err(at(
                    "path",
                    format!(
                        "{p:?} ({} bytes); accepted: a socket file path of 1 to 107 bytes",
                        p.len()
                    ),
                ))
            }
            _ => {}
        }
        // Each kind's own keys; any other kind setting them is told which kind takes them.
        let shown = |v: Option<String>| v.map(|v| format!("{v:?}"));
        let syslog_keys = [
            ("facility", shown(self.facility.clone())),
            ("identity", shown(self.identity.clone())),
        ];
        let redis_keys = [
            ("server", shown(self.server.clone())),
            ("port", self.port.map(|v| v.to_string())),
            ("mode", self.mode.map(|m| format!("{:?}", m.name()))),
            ("key", shown(self.key.clone())),
            ("queue_capacity", self.queue_capacity.map(|v| v.to_string())),
            ("batch_size", self.batch_size.map(|v| v.to_string())),
        ];
        for (owner, keys) in [
            (SinkKind::Syslog, &syslog_keys[..]),
            (SinkKind::Redis, &redis_keys[..]),
        ] {
            if self.kind == owner {
                continue;
            }
            if let Some((field, Some(value))) = keys.iter().find(|(_, v)| v.is_some()) {
                return Err(at(
                    field,
                    format!(
                        "{value} given for kind = \"{kind}\"; accepted only with kind = \"{}\"",
                        owner.name()
                    ),
                ));
            }
        }
        match self.kind {
            SinkKind::Syslog => self.validate_syslog(key),
            SinkKind::Redis => self.validate_redis(key),
            SinkKind::UnixStream | SinkKind::UnixDgram => Ok(()),
        }
    }

    fn validate_syslog(&self, key: &str) -> Result<(), (String, String)> {
        let at = |field: &str, message: String| (format!("{key}.{field}"), message);
        if self.facility().parse::<fasyslog::Facility>().is_err() {
            return Err(at(
                "facility",
                format!(
                    "unknown facility {:?}; accepted: kern, user, mail, daemon, auth, syslog, lpr, news, uucp, cron, authpriv, ftp, ntp, audit, alert, clock, local0 to local7",
                    self.facility()
                ),
            ));
        }
        // RFC 5424 APP-NAME: 1 to 48 printable US-ASCII characters, no space.
        let id = self.identity();
        if id.is_empty() || id.len() > 48 || !id.bytes().all(|b| (33..=126).contains(&b)) {
            return Err(at(
                "identity",
                format!("invalid identity {id:?}; accepted: 1 to 48 printable ASCII characters without spaces (RFC 5424 APP-NAME)"),
            ));
        }
        Ok(())
    }

    fn validate_redis(&self, key: &str) -> Result<(), (String, String)> {
        let at = |field: &str, message: String| (format!("{key}.{field}"), message);
        if self.path.is_some() {
            for (field, set) in [
                ("server", self.server.is_some()),
                ("port", self.port.is_some()),
            ] {
                if set {
                    return Err(at(
                        field,
                        "given with path; accepted: either path (redis's unix socket) or server and port".into(),
                    ));
                }
            }
        }
        let server = self.server();
        if server.is_empty()
            || server.len() > 253
            || !server
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b".-_:".contains(&b))
        {
            return Err(at(
                "server",
                format!("invalid server {server:?}; accepted: a host name, an IPv4 or an IPv6 address (without brackets)"),
            ));
        }
        if self.port == Some(0) {
            return Err(at("port", "invalid port 0; accepted: 1 to 65535".into()));
        }
        // Any binary-safe string is a valid redis key; control characters only hide mistakes.
        let k = self.key();
        if k.is_empty() || k.len() > 512 || k.chars().any(char::is_control) {
            return Err(at(
                "key",
                format!("invalid key {k:?}; accepted: 1 to 512 characters, no control characters"),
            ));
        }
        let q = self.queue_capacity();
        if !(16..=16 * 1024 * 1024).contains(&q) {
            return Err(at(
                "queue_capacity",
                format!("invalid value {q}; accepted: 16 to 16777216"),
            ));
        }
        let b = self.batch_size();
        if !(1..=65_536).contains(&b) {
            return Err(at(
                "batch_size",
                format!("invalid value {b}; accepted: 1 to 65536"),
            ));
        }
        Ok(())
    }
}

impl Default for OutputConfig {
    fn default() -> Self {
        OutputConfig {
            eve: "eve.json".into(),
            flow_records: true,
            queue_capacity: 65_536,
            community_id: true,
            community_id_seed: 0,
            sinks: Vec::new(),
        }
    }
}

/// Reads the seed as any integer, so that a value out of u16's range gets the usual "invalid
/// value N; accepted: LO to HI" message (with the key, from the loader) rather than serde's
/// "expected u16".
fn community_id_seed<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u16, D::Error> {
    struct Seed;
    impl serde::de::Visitor<'_> for Seed {
        type Value = u16;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("an integer from 0 to 65535")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u16, E> {
            u16::try_from(v)
                .map_err(|_| E::custom(format!("invalid value {v}; accepted: 0 to 65535")))
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u16, E> {
            u16::try_from(v)
                .map_err(|_| E::custom(format!("invalid value {v}; accepted: 0 to 65535")))
        }
    }
    d.deserialize_u16(Seed)
}

/// Reads `stream.ttl_tolerance` as any integer, for the usual "invalid value N; accepted: LO to
/// HI" message rather than serde's "expected u8".
fn ttl_tolerance<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u8, D::Error> {
    struct Hops;
    impl serde::de::Visitor<'_> for Hops {
        type Value = u8;
        fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
            f.write_str("a number of hops from 0 to 255")
        }
        fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<u8, E> {
            u8::try_from(v).map_err(|_| {
                E::custom(format!(
                    "invalid value {v}; accepted: 0 to 255 hops (255 turns the check off)"
                ))
            })
        }
        fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<u8, E> {
            self.visit_i64(i64::try_from(v).unwrap_or(i64::MAX))
        }
    }
    d.deserialize_u8(Hops)
}

/// The Prometheus endpoint (`/metrics`, `/healthz`, `/readyz`) and how workers publish.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsConfig {
    pub enabled: bool,
    pub listen: String,
    pub publish_interval_ms: u32,
    pub latency_sample_every: u32,
}

impl Default for MetricsConfig {
    fn default() -> Self {
        MetricsConfig {
            enabled: false,
            listen: "127.0.0.1:9477".into(),
            publish_interval_ms: 100,
            latency_sample_every: 64,
        }
    }
}

impl MetricsConfig {
    /// The validated listen address (validation rejects anything that does not parse).
    pub fn listen_addr(&self) -> Option<std::net::SocketAddr> {
        self.listen.parse().ok()
    }
}

impl Config {
    /// The engine's share of the configuration.
    pub fn engine(&self) -> EngineConfig {
        EngineConfig {
            table: self.flow.table(),
            stream_depth: self.stream.depth as usize,
            stream_memcap: self.stream.memcap as usize,
            overlap_policy: self.stream.overlap_policy,
            block_overlap_conflict: self.stream.block_overlap_conflict,
            // `Auto` is settled by the caller that knows whether frames come from a capture.
            verify_checksums: self.stream.checksum_validation != ChecksumValidation::No,
            ttl_tolerance: self.stream.ttl_tolerance,
            flow_records: self.output.flow_records,
            unknown_after: self.proto.unknown_after_bytes as usize,
            tls_cert_cache: self.proto.tls_cert_cache as usize,
            tls_hello_memo: self.proto.tls_hello_memo as usize,
            mode: self.verdict.mode,
            detect: self.detect.clone(),
            decode: self.decode,
            defrag: self.defrag,
            one_way_ns: u64::from(self.flow.one_way_secs)
                * crate::capture::Timestamp::NANOS_PER_SEC,
        }
    }

    /// Reads, parses and validates a config file.
    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: shown.clone(),
            source,
        })?;
        Self::parse(&text, &shown)
    }

    /// Parses and validates config text; `path` is only used in messages.
    pub fn parse(text: &str, path: &str) -> Result<Config, ConfigError> {
        // A syntax pass first, so a broken file is reported by line and column rather than
        // as a type error on some key.
        if let Err(e) = text.parse::<toml::Table>() {
            let (line, column) = e.span().map(|s| line_col(text, s.start)).unwrap_or((0, 0));
            return Err(ConfigError::Syntax {
                path: path.into(),
                line,
                column,
                message: e.message().to_string(),
            });
        }
        let de = toml::Deserializer::new(text);
        let config: Config = serde_path_to_error::deserialize(de).map_err(|e| {
            let parent = e.path().to_string();
            let inner = e.into_inner();
            let message = inner.message().to_string();
            let key = unknown_field_key(&parent, &message).unwrap_or(parent);
            let located = match inner.span() {
                Some(span) => {
                    let (line, _) = line_col(text, span.start);
                    format!("{message} (line {line})")
                }
                None => message,
            };
            ConfigError::Key {
                path: path.into(),
                key,
                message: located,
            }
        })?;
        config.validate(path)?;
        Ok(config)
    }

    /// Range and consistency checks serde cannot express.
    pub fn validate(&self, path: &str) -> Result<(), ConfigError> {
        let err = |key: &str, message: String| ConfigError::Key {
            path: path.into(),
            key: key.into(),
            message,
        };
        let f = &self.flow;
        in_range(
            path,
            "flow.capacity",
            f.capacity as u64,
            1,
            16 * 1024 * 1024,
        )?;
        in_range(
            path,
            "flow.new_timeout_secs",
            f.new_timeout_secs as u64,
            1,
            86_400,
        )?;
        in_range(
            path,
            "flow.established_timeout_secs",
            f.established_timeout_secs as u64,
            1,
            7 * 86_400,
        )?;
        in_range(
            path,
            "flow.closed_timeout_secs",
            f.closed_timeout_secs as u64,
            0,
            86_400,
        )?;
        in_range(
            path,
            "flow.bypassed_timeout_secs",
            f.bypassed_timeout_secs as u64,
            1,
            86_400,
        )?;
        in_range(
            path,
            "flow.evict_min_idle_secs",
            f.evict_min_idle_secs as u64,
            0,
            86_400,
        )?;
        in_range(
            path,
            "flow.one_way_secs",
            u64::from(f.one_way_secs),
            0,
            86_400,
        )?;

        let s = &self.stream;
        in_range(path, "stream.depth", s.depth as u64, 512, 1024 * 1024)?;
        let min_memcap = 2 * s.depth as u64;
        in_range(
            path,
            "stream.memcap",
            s.memcap,
            min_memcap,
            64 * 1024 * 1024 * 1024,
        )?;

        in_range(
            path,
            "proto.unknown_after_bytes",
            self.proto.unknown_after_bytes as u64,
            16,
            s.depth as u64,
        )?;
        in_range(
            path,
            "proto.tls_cert_cache",
            u64::from(self.proto.tls_cert_cache),
            0,
            65_536,
        )?;
        in_range(
            path,
            "proto.tls_hello_memo",
            u64::from(self.proto.tls_hello_memo),
            0,
            65_536,
        )?;

        in_range(
            path,
            "decode.tunnel_depth",
            self.decode.tunnel_depth as u64,
            0,
            crate::wire::MAX_TUNNEL_DEPTH as u64,
        )?;
        let d = &self.defrag;
        in_range(
            path,
            "defrag.max_datagrams",
            d.max_datagrams as u64,
            1,
            65_536,
        )?;
        in_range(
            path,
            "defrag.max_fragments",
            d.max_fragments as u64,
            2,
            8_192,
        )?;
        in_range(
            path,
            "defrag.max_datagram_bytes",
            d.max_datagram_bytes as u64,
            576,
            65_535,
        )?;
        in_range(path, "defrag.timeout_secs", d.timeout_secs as u64, 1, 600)?;

        let pp = &self.detect.protocol_port;
        in_range(
            path,
            "detect.protocol_port.min_confidence",
            pp.min_confidence as u64,
            1,
            100,
        )?;
        in_range(
            path,
            "detect.protocol_port.high_entropy_percent",
            pp.high_entropy_percent as u64,
            50,
            100,
        )?;
        for (name, ports) in &pp.allowed_ports {
            let key = format!("detect.protocol_port.allowed_ports.{name}");
            match AppProto::from_name(name) {
                Some(AppProto::Unknown) | None => {
                    return Err(err(
                        &key,
                        format!(
                            "unknown protocol {name:?}; accepted: {}",
                            known_protocol_names().join(", ")
                        ),
                    ))
                }
                Some(_) => {}
            }
            if let Some(bad) = ports.iter().find(|p| **p == 0) {
                return Err(err(
                    &key,
                    format!("invalid port {bad}; accepted: 1 to 65535"),
                ));
            }
        }

        let d = &self.detect;
        d.tls_handshake.validate(path)?;
        d.fingerprint.validate(path)?;
        d.certificate.validate(path)?;
        d.sni.validate(path)?;
        d.ech.validate(path)?;
        d.service.validate(path)?;
        d.http.validate(path)?;
        d.http_body.validate(path)?;
        d.asymmetry.validate(path)?;
        d.fully_encrypted.validate(path)?;
        d.tls_in_tls.validate(path)?;
        d.websocket.validate(path)?;
        d.relay.validate(path)?;
        d.handshake_shape.validate(path)?;
        crate::detect::policy::FindingPolicy::from_tables(
            &d.alert_min_confidence.0,
            &d.block_min_confidence.0,
            path,
        )?;
        self.correlation.validate(path)?;
        self.baseline.validate(path)?;

        let l = &self.live;
        in_range(path, "live.workers", l.workers as u64, 1, 64)?;
        if let Some(bad) = l
            .ports
            .iter()
            .find(|p| p.is_empty() || p.len() > 15 || p.contains('/'))
        {
            return Err(err(
                "live.ports",
                format!("invalid interface name {bad:?}; accepted: 1 to 15 characters, no '/'"),
            ));
        }
        let want = match l.topology {
            crate::datapath::Topology::Inline => 2,
            crate::datapath::Topology::Tap => 1,
        };
        if !l.ports.is_empty() && l.ports.len() != want {
            return Err(err(
                "live.ports",
                format!(
                    "{} ports {:?} for topology {:?}; accepted: {want} (inline: port A and port B, tap: one mirror port)",
                    l.ports.len(),
                    l.ports,
                    l.topology
                ),
            ));
        }
        // sun_path holds 108 bytes with the terminating NUL.
        if l.control_socket.len() > 107 || l.control_socket.ends_with('/') {
            return Err(err(
                "live.control_socket",
                format!(
                    "{:?} ({} bytes); accepted: a socket file path of at most 107 bytes, or \"\" for none",
                    l.control_socket,
                    l.control_socket.len()
                ),
            ));
        }
        if let Err(message) = self.datapath.validate() {
            // The datapath's message starts with "datapath.<key>"; name that key.
            let key = message
                .split([' ', '='])
                .next()
                .filter(|k| k.starts_with("datapath."))
                .unwrap_or("datapath")
                .to_string();
            return Err(err(&key, message));
        }

        let o = &self.output;
        if o.eve.is_empty() {
            return Err(err(
                "output.eve",
                "empty path; accepted: a file path, or \"-\" for standard output".into(),
            ));
        }
        in_range(
            path,
            "output.queue_capacity",
            o.queue_capacity as u64,
            16,
            16 * 1024 * 1024,
        )?;
        for (i, sink) in o.sinks.iter().enumerate() {
            let key = format!("output.sinks[{i}]");
            sink.validate(&key).map_err(|(k, m)| err(&k, m))?;
            if let Some(j) = o.sinks[..i].iter().position(|s| s.label() == sink.label()) {
                if sink.kind == SinkKind::Redis {
                    return Err(err(
                        &format!("{key}.key"),
                        format!(
                            "{:?} at {} with {} is already output.sinks[{j}]; accepted: one redis sink per server, mode and key",
                            sink.key(),
                            sink.redis_address(),
                            sink.mode().command()
                        ),
                    ));
                }
                return Err(err(
                    &format!("{key}.path"),
                    format!(
                        "{:?} is already the path of output.sinks[{j}] of the same kind; accepted: one sink per kind and path",
                        sink.path()
                    ),
                ));
            }
        }

        let m = &self.metrics;
        if m.listen_addr().is_none() {
            return Err(err(
                "metrics.listen",
                format!(
                    "invalid address {:?}; accepted: IP:PORT, e.g. \"127.0.0.1:9477\" or \"[::1]:9477\"",
                    m.listen
                ),
            ));
        }
        in_range(
            path,
            "metrics.publish_interval_ms",
            m.publish_interval_ms as u64,
            1,
            10_000,
        )?;
        if !m.latency_sample_every.is_power_of_two() || m.latency_sample_every > 65_536 {
            return Err(err(
                "metrics.latency_sample_every",
                format!(
                    "invalid value {}; accepted: a power of two from 1 to 65536",
                    m.latency_sample_every
                ),
            ));
        }
        Ok(())
    }

    /// The config as TOML (for `check-config --print`).
    pub fn to_toml(&self) -> String {
        // Serializing plain data with string keys cannot fail.
        toml::to_string(self).unwrap_or_default()
    }
}

fn in_range(path: &str, key: &str, value: u64, lo: u64, hi: u64) -> Result<(), ConfigError> {
    if value < lo || value > hi {
        return Err(ConfigError::Key {
            path: path.into(),
            key: key.into(),
            message: format!("invalid value {value}; accepted: {lo} to {hi}"),
        });
    }
    Ok(())
}

/// serde reports an unknown key at its parent's path; name the key itself.
fn unknown_field_key(parent: &str, message: &str) -> Option<String> {
    let rest = message.strip_prefix("unknown field `")?;
    let name = &rest[..rest.find('`')?];
    // serde_path_to_error already ends the path with the unknown key; older versions did not.
    if parent == name || parent.ends_with(&format!(".{name}")) {
        return Some(parent.to_string());
    }
    Some(if parent.is_empty() || parent == "." {
        name.to_string()
    } else {
        format!("{parent}.{name}")
    })
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let column = before.len() - before.rfind('\n').map(|i| i + 1).unwrap_or(0) + 1;
    (line, column)
}

/// Where a config came from, for messages.
#[derive(Debug, Clone)]
pub enum ConfigSource {
    BuiltIn,
    File(PathBuf),
}

impl fmt::Display for ConfigSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConfigSource::BuiltIn => f.write_str("built-in defaults"),
            ConfigSource::File(p) => write!(f, "{}", p.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Config, ConfigError> {
        Config::parse(text, "test.toml")
    }

    fn key_error(text: &str) -> (String, String) {
        match parse(text) {
            Err(ConfigError::Key { key, message, .. }) => (key, message),
            other => panic!("expected a key error, got {other:?}"),
        }
    }

    #[test]
    fn empty_file_is_the_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn shipped_config_documents_exactly_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/unmask.toml");
        let shipped = Config::load(&path).unwrap();
        assert_eq!(shipped, Config::default());
        // Every key the program knows must be written out in the shipped file, not just
        // defaulted: walk the serialized defaults and look each key up in the file.
        let text = std::fs::read_to_string(&path).unwrap();
        let file: toml::Table = text.parse().unwrap();
        let defaults: toml::Table = Config::default().to_toml().parse().unwrap();
        let mut missing = Vec::new();
        missing_keys("", &defaults, &file, &mut missing);
        assert!(
            missing.is_empty(),
            "keys not documented in configs/unmask.toml: {missing:?}"
        );
    }

    fn missing_keys(prefix: &str, want: &toml::Table, have: &toml::Table, out: &mut Vec<String>) {
        for (k, v) in want {
            let key = format!("{prefix}{k}");
            match (v, have.get(k)) {
                (toml::Value::Table(w), Some(toml::Value::Table(h))) => {
                    missing_keys(&format!("{key}."), w, h, out)
                }
                (_, None) => out.push(key),
                _ => {}
            }
        }
    }

    #[test]
    fn unknown_key_is_named_with_its_section() {
        let (key, message) = key_error("[flow]\ncapacty = 5\n");
        assert_eq!(key, "flow.capacty");
        assert!(message.contains("expected one of"), "{message}");
        assert!(message.contains("capacity"), "{message}");
        let (key, _) = key_error("bogus = 1\n");
        assert_eq!(key, "bogus");
    }

    #[test]
    fn wrong_type_names_key_value_and_expectation() {
        let (key, message) = key_error("[flow]\ncapacity = \"lots\"\n");
        assert_eq!(key, "flow.capacity");
        assert!(message.contains("lots"), "{message}");
        assert!(message.contains("u32"), "{message}");
        assert!(message.contains("line 2"), "{message}");
    }

    #[test]
    fn out_of_range_names_value_and_range() {
        let (key, message) = key_error("[flow]\ncapacity = 0\n");
        assert_eq!(key, "flow.capacity");
        assert_eq!(message, "invalid value 0; accepted: 1 to 16777216");
        let (key, message) = key_error("[detect.protocol_port]\nmin_confidence = 101\n");
        assert_eq!(key, "detect.protocol_port.min_confidence");
        assert!(message.contains("101"));
        let (key, message) = key_error("[stream]\nttl_tolerance = 256\n");
        assert_eq!(key, "stream.ttl_tolerance");
        assert!(
            message.starts_with("invalid value 256; accepted: 0 to 255"),
            "{message}"
        );
    }

    #[test]
    fn bad_enum_value_lists_the_accepted_ones() {
        let (key, message) = key_error("[verdict]\nmode = \"drop\"\n");
        assert_eq!(key, "verdict.mode");
        assert!(message.contains("drop"), "{message}");
        assert!(
            message.contains("monitor") && message.contains("block"),
            "{message}"
        );
    }

    #[test]
    fn unknown_protocol_in_port_map_is_named() {
        let (key, message) = key_error("[detect.protocol_port.allowed_ports]\ngopher = [70]\n");
        assert_eq!(key, "detect.protocol_port.allowed_ports.gopher");
        assert!(message.contains("tls"), "{message}");
        let (_, message) = key_error("[detect.protocol_port.allowed_ports]\nssh = [0]\n");
        assert!(message.contains("invalid port 0"), "{message}");
        let (key, _) = key_error("[detect.protocol_port.allowed_ports]\nssh = [70000]\n");
        assert_eq!(key, "detect.protocol_port.allowed_ports.ssh[0]");
    }

    #[test]
    fn syntax_error_has_line_and_column() {
        match parse("[flow]\ncapacity = = 3\n") {
            Err(ConfigError::Syntax { line, column, .. }) => {
                assert_eq!(line, 2);
                assert!(column > 1);
            }
            other => panic!("expected a syntax error, got {other:?}"),
        }
    }

    #[test]
    fn output_sinks_parse_with_syslog_defaults() {
        let c = parse(
            "[[output.sinks]]\nkind = \"unix_stream\"\npath = \"/run/a.sock\"\n\
             [[output.sinks]]\nkind = \"syslog\"\n",
        )
        .unwrap();
        let s = &c.output.sinks;
        assert_eq!(s[0].kind, SinkKind::UnixStream);
        assert_eq!(s[0].label(), "unix_stream:/run/a.sock");
        assert_eq!(
            (s[1].path(), s[1].facility(), s[1].identity()),
            ("/dev/log", "local5", "unmask")
        );
    }

    #[test]
    fn redis_sinks_parse_with_suricatas_defaults() {
        let c = parse(
            "[[output.sinks]]\nkind = \"redis\"\n\
             [[output.sinks]]\nkind = \"redis\"\nserver = \"::1\"\nport = 6380\nmode = \"channel\"\nkey = \"eve\"\n\
             [[output.sinks]]\nkind = \"redis\"\npath = \"/run/redis/redis.sock\"\nmode = \"rpush\"\nbatch_size = 1\nqueue_capacity = 16\n",
        )
        .unwrap();
        let s = &c.output.sinks;
        assert_eq!(
            (s[0].server(), s[0].port(), s[0].mode(), s[0].key()),
            ("127.0.0.1", 6379, RedisMode::List, "unmask")
        );
        assert_eq!(s[0].mode().command(), "LPUSH");
        assert_eq!(s[0].label(), "redis:127.0.0.1:6379/lpush:unmask");
        assert_eq!(s[1].label(), "redis:[::1]:6380/publish:eve");
        assert!(!s[1].mode().is_list());
        assert_eq!(s[2].label(), "redis:/run/redis/redis.sock/rpush:unmask");
        assert_eq!((s[2].batch_size(), s[2].queue_capacity()), (1, 16));
    }

    #[test]
    fn bad_redis_sinks_name_the_key_and_what_is_accepted() {
        let cases: &[(&str, &str, &str)] = &[
            ("mode = \"stream\"", "mode", "rpush"),
            ("key = \"\"", "key", "1 to 512"),
            ("server = \"a b\"", "server", "host name"),
            ("port = 0", "port", "1 to 65535"),
            ("port = 70000", "port", ""),
            ("batch_size = 0", "batch_size", "1 to 65536"),
            ("queue_capacity = 8", "queue_capacity", "16 to 16777216"),
            ("path = \"/a.sock\"\nport = 6379", "port", "either path"),
            (
                "facility = \"local0\"",
                "facility",
                "only with kind = \"syslog\"",
            ),
        ];
        for (line, field, hint) in cases {
            let (key, message) =
                key_error(&format!("[[output.sinks]]\nkind = \"redis\"\n{line}\n"));
            assert_eq!(key, format!("output.sinks[0].{field}"), "{line}: {message}");
            assert!(message.contains(hint), "{line}: {message}");
        }
        let (key, message) =
            key_error("[[output.sinks]]\nkind = \"unix_dgram\"\npath = \"/a\"\nkey = \"k\"\n");
        assert_eq!(key, "output.sinks[0].key");
        assert!(message.contains("only with kind = \"redis\""), "{message}");
        let (key, message) = key_error(
            "[[output.sinks]]\nkind = \"redis\"\n[[output.sinks]]\nkind = \"redis\"\nmode = \"lpush\"\n",
        );
        assert_eq!(key, "output.sinks[1].key");
        assert!(message.contains("output.sinks[0]"), "{message}");
    }

    #[test]
    fn bad_output_sinks_name_the_key_and_what_is_accepted() {
        let (key, message) = key_error("[[output.sinks]]\nkind = \"kafka\"\n");
        assert_eq!(key, "output.sinks[0].kind");
        assert!(
            message.contains("unix_dgram") && message.contains("redis"),
            "{message}"
        );
        let (key, message) = key_error("[[output.sinks]]\nkind = \"unix_dgram\"\n");
        assert_eq!(key, "output.sinks[0].path");
        assert!(message.contains("missing"), "{message}");
        let (key, message) = key_error(
            "[[output.sinks]]\nkind = \"unix_stream\"\npath = \"/a\"\nfacility = \"local0\"\n",
        );
        assert_eq!(key, "output.sinks[0].facility");
        assert!(message.contains("only with kind = \"syslog\""), "{message}");
        let (key, message) =
            key_error("[[output.sinks]]\nkind = \"syslog\"\nfacility = \"local9\"\n");
        assert_eq!(key, "output.sinks[0].facility");
        assert!(
            message.contains("local9") && message.contains("local7"),
            "{message}"
        );
        let (key, message) =
            key_error("[[output.sinks]]\nkind = \"syslog\"\nidentity = \"un mask\"\n");
        assert_eq!(key, "output.sinks[0].identity");
        assert!(message.contains("RFC 5424"), "{message}");
        let long = "x".repeat(108);
        let (key, message) = key_error(&format!(
            "[[output.sinks]]\nkind = \"unix_dgram\"\npath = \"/{long}\"\n"
        ));
        assert_eq!(key, "output.sinks[0].path");
        assert!(message.contains("107"), "{message}");
        let (key, message) = key_error(
            "[[output.sinks]]\nkind = \"syslog\"\n[[output.sinks]]\nkind = \"syslog\"\npath = \"/dev/log\"\n",
        );
        assert_eq!(key, "output.sinks[1].path");
        assert!(message.contains("output.sinks[0]"), "{message}");
        let (key, _) = key_error("[[output.sinks]]\nkind = \"syslog\"\nlevel = \"info\"\n");
        assert_eq!(key, "output.sinks[0].level");
    }

    #[test]
    fn metrics_listen_must_be_an_address() {
        for bad in [
            "localhost",
            "127.0.0.1",
            "127.0.0.1:99999",
            "",
            ":9477",
            "1.2.3.4.5:80",
        ] {
            let (key, message) = key_error(&format!("[metrics]\nlisten = {bad:?}\n"));
            assert_eq!(key, "metrics.listen", "{bad:?}");
            assert!(message.contains(&format!("{bad:?}")), "{message}");
            assert!(message.contains("IP:PORT"), "{message}");
        }
        for good in ["0.0.0.0:9477", "[::1]:9100", "127.0.0.1:0"] {
            let c = parse(&format!("[metrics]\nlisten = {good:?}\n")).unwrap();
            assert_eq!(c.metrics.listen_addr(), good.parse().ok());
        }
        let (key, _) = key_error("[metrics]\nlisten = 9477\n");
        assert_eq!(key, "metrics.listen");
    }

    #[test]
    fn metrics_publishing_limits() {
        let (key, message) = key_error("[metrics]\nlatency_sample_every = 48\n");
        assert_eq!(key, "metrics.latency_sample_every");
        assert!(message.contains("power of two"), "{message}");
        let (key, _) = key_error("[metrics]\npublish_interval_ms = 0\n");
        assert_eq!(key, "metrics.publish_interval_ms");
        let c = parse("[metrics]\nlatency_sample_every = 1\nenabled = true\n").unwrap();
        assert!(c.metrics.enabled);
    }

    #[test]
    fn community_id_seed_is_a_u16_and_says_so() {
        let c = parse("[output]\ncommunity_id_seed = 65535\ncommunity_id = false\n").unwrap();
        assert_eq!(c.output.community_id_seed, 65535);
        assert!(!c.output.community_id);
        for bad in ["65536", "-1", "4294967296"] {
            let (key, message) = key_error(&format!("[output]\ncommunity_id_seed = {bad}\n"));
            assert_eq!(key, "output.community_id_seed", "{bad}");
            assert!(
                message.starts_with(&format!("invalid value {bad}; accepted: 0 to 65535")),
                "{message}"
            );
            assert!(message.contains("line 2"), "{message}");
        }
        let (key, message) = key_error("[output]\ncommunity_id_seed = \"7\"\n");
        assert_eq!(key, "output.community_id_seed");
        assert!(message.contains("an integer from 0 to 65535"), "{message}");
    }

    #[test]
    fn stream_limits_depend_on_each_other() {
        let (key, message) = key_error("[stream]\ndepth = 4096\nmemcap = 4096\n");
        assert_eq!(key, "stream.memcap");
        assert!(message.contains("8192"), "{message}");
    }
}
