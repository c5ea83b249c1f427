//! Helpers shared by the metrics tests: a capture to replay, a plain HTTP GET, the
//! exposition parsed into series, and the Prometheus tools.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use unmask::app::replay::{replay, ReplayOptions, ReplaySummary};
use unmask::capture::pcapwrite::PcapWriter;
use unmask::config::Config;
use unmask::output::eve::EveTarget;
use unmask::output::metrics::live::{
    HandoffCounts, LiveSnapshot, LiveWorker, PacketsBytes, RingCounts, SocketCounts, XdpCounts,
};
use unmask::output::metrics::{Hub, HubOptions, RunMode};
use unmask::verdict::Mode;

/// Frames the fixture capture gets on top of the standard flows: a frame too short for
/// Ethernet and an IPv4 header with IHL 4 (both malformed, forwarded unjudged).
pub const EXTRA_MALFORMED: u64 = 2;

/// Writes the project's fixture capture plus [`EXTRA_MALFORMED`] malformed frames.
pub fn write_capture(path: &Path) {
    let mut w = PcapWriter::create_ethernet(path).unwrap();
    let frames = unmask::fixtures::standard_capture();
    let last_ts = frames.last().map(|f| f.0).unwrap();
    for (ts, f) in &frames {
        w.write(*ts, f).unwrap();
    }
    w.write(last_ts.add_nanos(1_000), &[0u8; 9]).unwrap();
    let mut bad_ip = vec![0u8; 12];
    bad_ip.extend_from_slice(&[0x08, 0x00, 0x44, 0, 0, 40]);
    bad_ip.resize(60, 0);
    w.write(last_ts.add_nanos(2_000), &bad_ip).unwrap();
    w.finish().unwrap();
}

pub fn block_config() -> Config {
    let mut c = Config::default();
    c.verdict.mode = Mode::Block;
    c
}

/// A replay through the library with its metrics in `hub`; returns the summary and EVE lines.
pub fn replay_into(hub: &Arc<Hub>, config: Config, capture: &Path) -> (ReplaySummary, Vec<String>) {
    let eve = tempfile::NamedTempFile::new().unwrap();
    let outcome = replay(ReplayOptions {
        config,
        files: vec![capture.to_path_buf()],
        eve: EveTarget::File(eve.path().to_path_buf()),
        progress: None,
        metrics: Some(Arc::clone(hub)),
    })
    .unwrap();
    assert!(outcome.error.is_none());
    let lines = std::fs::read_to_string(eve.path())
        .unwrap()
        .lines()
        .map(String::from)
        .collect();
    (outcome.summary, lines)
}

pub fn replay_hub(config: &Config) -> Arc<Hub> {
    Hub::new(HubOptions::from_config(config, RunMode::Replay))
}

/// Live counters as the datapath would report them, every field non-zero.
pub fn live_stub() -> Box<Mutex<LiveSnapshot>> {
    let pb = |n| PacketsBytes {
        packets: n,
        bytes: n * 100,
    };
    Box::new(Mutex::new(LiveSnapshot {
        xdp: Some(XdpCounts {
            reasons: [
                "foreign_port",
                "non_tcp",
                "blocked",
                "bypassed",
                "to_socket",
            ]
            .iter()
            .enumerate()
            .map(|(i, r)| (*r, pb(i as u64 + 1)))
            .collect(),
            actions: ["aborted", "drop", "pass", "tx", "redirect"]
                .iter()
                .enumerate()
                .map(|(i, a)| (*a, pb(i as u64 + 10)))
                .collect(),
        }),
        workers: (0..2)
            .map(|worker| LiveWorker {
                worker,
                ring: RingCounts {
                    rx_packets: 1,
                    rx_bytes: 2,
                    tx_packets: 3,
                    dropped_packets: 4,
                    tx_ring_full: 5,
                    fill_empty: 6,
                    tx_kicks: 7,
                },
                handoff: HandoffCounts {
                    sent: 8,
                    received: 9,
                    queue_full: 10,
                    no_frame: 11,
                    too_big: 12,
                },
                socket: SocketCounts {
                    rx_dropped: 13,
                    rx_invalid_descs: 14,
                    tx_invalid_descs: 15,
                    rx_ring_full: 16,
                    rx_fill_ring_empty_descs: 17,
                    tx_ring_empty_descs: 18,
                },
            })
            .collect(),
    }))
}

/// Exposition text: `name{labels}` → value.
pub fn parse_exposition(text: &str) -> BTreeMap<String, f64> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| {
            let (series, value) = l.rsplit_once(' ').expect("series and value");
            let v = match value {
                "+Inf" => f64::INFINITY,
                "-Inf" => f64::NEG_INFINITY,
                v => v.parse().unwrap_or_else(|_| panic!("bad value in {l:?}")),
            };
            (series.to_string(), v)
        })
        .collect()
}

/// Sum of every series of family `name` whose labels contain all of `having`.
pub fn sum_of(series: &BTreeMap<String, f64>, name: &str, having: &[&str]) -> f64 {
    series
        .iter()
        .filter(|(k, _)| {
            let base = k.split('{').next().unwrap_or("");
            base == name && having.iter().all(|h| k.contains(h))
        })
        .map(|(_, v)| *v)
        .sum()
}

/// Metric family names in an exposition (from `# TYPE` lines).
pub fn family_names(text: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# TYPE "))
        .filter_map(|l| l.split(' ').next())
        .map(String::from)
        .collect()
}

/// `GET path` over HTTP/1.0 (one request per connection, no chunking): (status, headers, body).
pub fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String, String)> {
    http_request(addr, "GET", path)
}

pub fn http_request(
    addr: SocketAddr,
    method: &str,
    path: &str,
) -> std::io::Result<(u16, String, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        s,
        "{method} {path} HTTP/1.0\r\nHost: {addr}\r\nContent-Length: 0\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw)?;
    let raw = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, head.to_string(), body.to_string()))
}

/// Percent-encodes a query parameter.
pub fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn on_path(tool: &str) -> Option<PathBuf> {
    let out = Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .output()
        .ok()?;
    let p = String::from_utf8(out.stdout).ok()?;
    let p = p.trim();
    (out.status.success() && !p.is_empty()).then(|| PathBuf::from(p))
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `tool` from Debian's prometheus package (`prometheus` or `promtool`), installing the package
/// through scripts/deps.sh when it is missing and we are root; `None` (and a loud "skipped")
/// when it cannot be had.
pub fn prometheus_tool(test: &str, tool: &str) -> Option<PathBuf> {
    static INSTALL: Mutex<()> = Mutex::new(());
    if let Some(p) = on_path(tool) {
        return Some(p);
    }
    let _one_at_a_time = INSTALL.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(p) = on_path(tool) {
        return Some(p);
    }
    if !is_root() {
        eprintln!("{test}: SKIPPED: `{tool}` is not installed and installing Debian's prometheus package needs root");
        return None;
    }
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/deps.sh");
    let ok = Command::new("bash")
        .arg(script)
        .status()
        .is_ok_and(|s| s.success());
    match on_path(tool) {
        Some(p) => Some(p),
        None => {
            eprintln!(
                "{test}: SKIPPED: `{tool}` missing and scripts/deps.sh {} to install it",
                if ok { "did not manage" } else { "failed" }
            );
            None
        }
    }
}

/// Runs `promtool args...` with `stdin`; (success, combined output).
pub fn promtool(tool: &Path, args: &[&str], stdin: &str) -> (bool, String) {
    use std::process::Stdio;
    let mut child = Command::new(tool)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("promtool runs");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(stdin.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// The full exposition of a block-mode replay of the fixture capture, with the live stub
/// registered so the datapath families appear as well, and an EVE sink so its families do.
pub fn full_exposition() -> String {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let mut config = block_config();
    // A datagram sink nobody listens on: its families appear, every record counted lost.
    config.output.sinks = vec![unmask::config::SinkConfig {
        path: Some(dir.path().join("absent.dgram").display().to_string()),
        ..unmask::config::SinkConfig::new(unmask::config::SinkKind::UnixDgram)
    }];
    let hub = replay_hub(&config);
    replay_into(&hub, config, &pcap);
    hub.set_live_source(live_stub());
    let registry = unmask::output::metrics::registry::registry(&hub).unwrap();
    unmask::output::metrics::registry::encode(&registry).unwrap()
}

/// Kills the child when the test ends, passing or not.
pub struct Reaped(pub std::process::Child);

impl Drop for Reaped {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Stderr lines of `child` up to the first containing `marker` (60 s at most).
pub fn read_until(child: &mut std::process::Child, marker: &str) -> Vec<String> {
    use std::io::BufRead;
    let stderr = child.stderr.take().unwrap();
    let marker = marker.to_string();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut lines = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    while std::time::Instant::now() < deadline {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(l) => {
                let done = l.contains(&marker);
                lines.push(l);
                if done {
                    return lines;
                }
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
            Err(_) => break,
        }
    }
    panic!("no line with {marker:?} on stderr: {lines:?}");
}
