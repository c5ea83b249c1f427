//! Real-capture tier for the capture reader and the wire parser: every capture under
//! ../shared/pcaps is read to its end and every frame parsed. Skipped (and passing) when the
//! folder is absent; `UNMASK_PCAPS` points elsewhere.

use std::collections::BTreeSet;
use std::path::Path;

mod common;

use common::{captures, pcaps_dir, DAMAGED};
use unmask::capture::pcap::CaptureSource;
use unmask::capture::{Action, PacketSource, Polled, SourceError};
use unmask::wire::{self, Malformed, OtherKind, Parsed, WireAnomalies};

#[derive(Default)]
struct Summary {
    links: BTreeSet<String>,
    frames: u64,
    tcp: u64,
    tcp_payload_bytes: u64,
    other: [u64; OtherKind::COUNT],
    malformed: [u64; Malformed::COUNT],
    truncated_payload: u64,
    bad_options: u64,
    trailing: u64,
    error: Option<SourceError>,
}

fn read_capture(path: &Path) -> Summary {
    let mut summary = Summary::default();
    let mut source = match CaptureSource::open(&[path.to_path_buf()], 64) {
        Ok(s) => s,
        Err(e) => {
            summary.error = Some(e);
            return summary;
        }
    };
    loop {
        let polled = source.poll_batch(|frame| {
            summary.links.insert(frame.link.to_string());
            summary.frames += 1;
            match wire::parse_frame(frame) {
                Parsed::Tcp(t) => {
                    summary.tcp += 1;
                    summary.tcp_payload_bytes += t.payload.len() as u64;
                    assert!(t.payload.len() <= t.segment_len as usize);
                    let a = t.anomalies;
                    summary.truncated_payload += a.has(WireAnomalies::TRUNCATED_PAYLOAD) as u64;
                    summary.bad_options += a.has(WireAnomalies::BAD_TCP_OPTIONS) as u64;
                    summary.trailing += a.has(WireAnomalies::TRAILING_BYTES) as u64;
                }
                Parsed::Other(kind) => summary.other[kind.index()] += 1,
                Parsed::Malformed(why) => summary.malformed[why.index()] += 1,
            }
            Action::Forward
        });
        match polled {
            Ok(Polled::Frames(_)) | Ok(Polled::Idle) => {}
            Ok(Polled::End) => break,
            Err(e) => {
                summary.error = Some(e);
                break;
            }
        }
    }
    assert_eq!(source.packets_read(), summary.frames);
    assert_eq!(
        source.bytes_read(),
        source.total_bytes(),
        "{}",
        path.display()
    );
    summary
}

fn counts(names: &[&str], values: &[u64]) -> String {
    let parts: Vec<String> = names
        .iter()
        .zip(values)
        .filter(|(_, &v)| v > 0)
        .map(|(n, v)| format!("{n}={v}"))
        .collect();
    if parts.is_empty() {
        "-".into()
    } else {
        parts.join(",")
    }
}

#[test]
fn every_real_capture_reads_and_parses() {
    let dir = pcaps_dir();
    if !dir.is_dir() {
        println!("skipped: ../shared/pcaps not found");
        return;
    }
    let mut files = Vec::new();
    captures(&dir, &mut files);
    files.sort();
    assert!(!files.is_empty(), "no captures under {}", dir.display());

    let mut failures = Vec::new();
    let mut total_frames = 0;
    println!(
        "{:<58} {:<12} {:>6} {:>6} {:>8} {:<40} {:<24} anomalies",
        "file", "link", "frames", "tcp", "payload", "other", "malformed"
    );
    for path in &files {
        let s = read_capture(path);
        total_frames += s.frames;
        let name = path
            .strip_prefix(&dir)
            .unwrap_or(path)
            .display()
            .to_string();
        let file_name = path.file_name().and_then(|n| n.to_str()).unwrap_or("");
        println!(
            "{:<58} {:<12} {:>6} {:>6} {:>8} {:<40} {:<24} trunc={},badopt={},trail={}{}",
            name,
            s.links.iter().cloned().collect::<Vec<_>>().join("+"),
            s.frames,
            s.tcp,
            s.tcp_payload_bytes,
            counts(&OtherKind::NAMES, &s.other),
            counts(&Malformed::NAMES, &s.malformed),
            s.truncated_payload,
            s.bad_options,
            s.trailing,
            s.error
                .as_ref()
                .map(|e| format!("  ERROR: {e}"))
                .unwrap_or_default(),
        );
        let expected = DAMAGED.iter().find(|d| d.0 == file_name);
        match (&s.error, expected) {
            (None, None) => {
                if s.frames == 0 {
                    failures.push(format!("{name}: no frames"));
                }
            }
            (Some(e), None) => failures.push(format!("{name}: unexpected error: {e}")),
            (None, Some(_)) => failures.push(format!("{name}: expected damage was not found")),
            (Some(e), Some(&(_, frames, offset, reason))) => {
                let ok = matches!(e, SourceError::Format { offset: o, reason: r, .. }
                    if *o == offset && r.contains(reason))
                    && s.frames == frames;
                if !ok {
                    failures.push(format!(
                        "{name}: expected {reason:?} at offset {offset} after {frames} frames, got {e} after {} frames",
                        s.frames
                    ));
                }
            }
        }
    }
    println!("{} captures, {} frames", files.len(), total_frames);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
