//! Helpers shared by the integration tests.
#![allow(dead_code)]

pub mod alloc;
pub mod lab;

use std::path::{Path, PathBuf};

use crossbeam_channel::Receiver;
use serde_json::Value;
use unmask::app::replay::{replay, ReplayOptions};
use unmask::capture::pcap::CaptureSource;
use unmask::capture::{Action, LinkType, PacketSource, Polled, VecSource};
use unmask::config::Config;
use unmask::engine::record::EveRecord;
use unmask::engine::worker::{self, Clock};
use unmask::engine::{Counters, Engine, EngineOptions};
use unmask::fixtures::TimedFrame;
use unmask::output::eve::{EveFormat, EveTarget};
use unmask::verdict::NoFlowControl;

/// What one run of the engine over some frames produced.
pub struct Run {
    pub records: Vec<Value>,
    pub counters: Counters,
    pub actions: Vec<Action>,
}

impl Run {
    pub fn of_type<'a>(&'a self, event_type: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.records
            .iter()
            .filter(move |r| r["event_type"] == event_type)
    }

    /// Finding names alerted on flows whose server port is `port`.
    pub fn findings_on_port(&self, port: u16) -> Vec<String> {
        let mut out: Vec<String> = self
            .of_type("alert")
            .filter(|a| a["dest_port"] == port || a["src_port"] == port)
            .map(|a| a["unmask"]["finding"].as_str().unwrap_or("").to_string())
            .collect();
        out.sort();
        out.dedup();
        out
    }
}

/// Runs one engine over `frames` (Ethernet) to the end, collecting every EVE record.
pub fn run_engine(config: &Config, frames: Vec<TimedFrame>) -> Run {
    run_engine_with(config, frames, |_| {})
}

/// [`run_engine`], with `prepare` applied to the engine before the first frame.
pub fn run_engine_with(
    config: &Config,
    frames: Vec<TimedFrame>,
    prepare: impl FnOnce(&mut Engine),
) -> Run {
    let (tx, rx) = crossbeam_channel::unbounded();
    let mut engine = Engine::new(
        &config.engine(),
        EngineOptions {
            worker: 0,
            packet_numbers: true,
        },
        Some(tx),
    );
    prepare(&mut engine);
    let mut source = VecSource::new(LinkType::Ethernet, frames, 64);
    let stop = std::sync::atomic::AtomicBool::new(false);
    worker::run(
        &mut source,
        &mut engine,
        &mut NoFlowControl::default(),
        Clock::PacketTime,
        &stop,
        |_, _| {},
    )
    .expect("in-memory source never fails");
    let counters = engine.counters().clone();
    drop(engine);
    Run {
        records: drain(rx),
        counters,
        actions: source.actions.clone(),
    }
}

fn drain(rx: Receiver<EveRecord>) -> Vec<Value> {
    rx.try_iter()
        .map(|r| r.to_json(&EveFormat::default()))
        .collect()
}

/// The shared real captures, or None (with a printed "skipped") when they are absent.
pub fn shared_pcaps(test: &str) -> Option<PathBuf> {
    let dir = pcaps_dir();
    if dir.is_dir() {
        Some(dir)
    } else {
        eprintln!("{test}: skipped: {} not found", dir.display());
        None
    }
}

pub fn pcaps_dir() -> PathBuf {
    std::env::var_os("UNMASK_PCAPS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/pcaps")))
}

/// Captures below `dir`, skipping the oracle folders (tool outputs, not inputs).
pub fn captures(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if path.file_name().is_some_and(|n| n != "oracle") {
                captures(&path, out);
            }
        } else if path
            .extension()
            .is_some_and(|e| e == "pcap" || e == "pcapng")
        {
            out.push(path);
        }
    }
}

/// Captures that are damaged on disk. Each is read as far as it goes and must fail exactly
/// here: (file name, frames before the damage, byte offset of the bad record, reason).
pub const DAMAGED: &[(&str, u64, u64, &str)] = &[
    // A fuzzer-made file: one record, then 2 stray bytes where the next record header would be.
    (
        "fuzz-2021-10-13.pcap",
        1,
        237,
        "file ends inside a record header",
    ),
    // Suricata's bug-1450 inputs: the certificate record (caplen 4274) was cut by 2 bytes
    // without fixing its header, so the next header is read 2 bytes late and its length field
    // holds part of a timestamp. libpcap and Wireshark stop at the same record.
    (
        "tls_DER-incomplete-header.pcap",
        6,
        5035,
        "record length 4325376 exceeds",
    ),
    (
        "tls_DER-incomplete-content.pcap",
        6,
        5035,
        "record length 4325376 exceeds",
    ),
];

/// Replays one capture; returns its EVE records and the capture error, if any.
pub fn replay_capture(path: &Path, config: Config) -> (Vec<Value>, Option<String>) {
    let tmp = tempfile::NamedTempFile::new().unwrap();
    let outcome = replay(ReplayOptions {
        config,
        files: vec![path.to_path_buf()],
        eve: EveTarget::File(tmp.path().to_path_buf()),
        progress: None,
        metrics: None,
    })
    .unwrap_or_else(|e| panic!("{}: replay could not run: {e}", path.display()));
    let text = std::fs::read_to_string(tmp.path()).unwrap();
    let records = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("EVE lines are JSON"))
        .collect();
    (records, outcome.error.map(|e| e.to_string()))
}

/// The frames of a capture file, in order, with their packet times.
pub fn capture_frames(path: &Path) -> Vec<TimedFrame> {
    let mut src = CaptureSource::open(&[path.to_path_buf()], 64)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut out = Vec::new();
    loop {
        match src.poll_batch(|f| {
            out.push((f.ts, f.data.to_vec()));
            Action::Forward
        }) {
            Ok(Polled::End) => break,
            Ok(_) => {}
            Err(e) => panic!("{}: {e}", path.display()),
        }
    }
    out
}

/// Runs the fixture writer `script` (under scripts/) into a fresh directory and requires every
/// file it writes to equal the committed one in `fixtures/<dir>`. Returns how many it compared,
/// `None` (after saying "skipped") when there is no python3.
pub fn script_fixtures_current(script: &str, dir: &str) -> Option<usize> {
    if std::process::Command::new("python3")
        .arg("--version")
        .output()
        .is_err()
    {
        eprintln!("{script}: skipped: no python3");
        return None;
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let out = tempfile::tempdir().unwrap();
    let status = std::process::Command::new("python3")
        .arg(root.join("scripts").join(script))
        .arg(out.path())
        .status()
        .unwrap();
    assert!(status.success(), "{script} failed");
    let mut checked = 0;
    for entry in std::fs::read_dir(out.path()).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_str().unwrap().to_string();
        let committed = std::fs::read(root.join("fixtures").join(dir).join(&name))
            .unwrap_or_else(|_| panic!("{name} is not in fixtures/{dir}: rerun {script}"));
        assert!(
            committed == std::fs::read(&path).unwrap(),
            "fixtures/{dir}/{name} differs from what scripts/{script} writes"
        );
        checked += 1;
    }
    Some(checked)
}
