//! The EVE sinks beside the file, with real sockets: a replay of the fixture capture reaches a
//! unix stream listener and a unix datagram socket record for record, in the file's order.

use std::io::{BufRead, BufReader};
use std::os::unix::net::{UnixDatagram, UnixListener};
use std::path::Path;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use unmask::app::replay::{replay, ReplayOptions};
use unmask::capture::pcapwrite::PcapWriter;
use unmask::config::{Config, SinkConfig, SinkKind};
use unmask::output::eve::EveTarget;
use unmask::output::metrics::{Hub, HubOptions, RunMode};

fn write_fixture_capture(path: &Path) {
    let mut w = PcapWriter::create_ethernet(path).unwrap();
    for (ts, frame) in &unmask::fixtures::standard_capture() {
        w.write(*ts, frame).unwrap();
    }
    w.finish().unwrap();
}

/// Accepts one connection and reads its lines until the writer closes it.
fn stream_reader(listener: UnixListener) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let (conn, _) = listener.accept().unwrap();
        BufReader::new(conn).lines().map(|l| l.unwrap()).collect()
    })
}

/// Receives datagrams until `stop` arrives on the same socket from the test itself.
fn dgram_reader(socket: UnixDatagram) -> JoinHandle<Vec<String>> {
    std::thread::spawn(move || {
        let mut got = Vec::new();
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = socket.recv(&mut buf).unwrap();
            let text = String::from_utf8(buf[..n].to_vec()).unwrap();
            if text == "stop" {
                return got;
            }
            got.push(text);
        }
    })
}

#[test]
fn a_replay_reaches_a_stream_and_a_datagram_peer_exactly_as_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixtures.pcap");
    write_fixture_capture(&pcap);
    let eve = dir.path().join("eve.json");
    let stream_path = dir.path().join("eve.sock");
    let dgram_path = dir.path().join("eve.dgram");
    let stream = stream_reader(UnixListener::bind(&stream_path).unwrap());
    let dgram_socket = UnixDatagram::bind(&dgram_path).unwrap();
    let dgram = dgram_reader(dgram_socket.try_clone().unwrap());

    let mut config = Config::default();
    config.output.sinks = vec![
        SinkConfig {
            path: Some(stream_path.display().to_string()),
            ..SinkConfig::new(SinkKind::UnixStream)
        },
        SinkConfig {
            path: Some(dgram_path.display().to_string()),
            ..SinkConfig::new(SinkKind::UnixDgram)
        },
    ];
    config.validate("test").unwrap();
    let hub = Hub::new(HubOptions::from_config(&config, RunMode::Replay));
    let outcome = replay(ReplayOptions {
        config,
        files: vec![pcap],
        eve: EveTarget::File(eve.clone()),
        progress: None,
        metrics: Some(Arc::clone(&hub)),
    })
    .unwrap();
    assert!(outcome.error.is_none());
    let total = outcome.summary.eve.total();
    let e = outcome.summary.eve;
    assert!(
        total >= 20 && e.alert > 0 && e.flow > 0 && e.tls > 0,
        "the fixture capture gives alerts, flows and tls records: {e:?}"
    );

    // The writer has finished, so its stream connection is closed and the reader ends.
    let file: Vec<String> = std::fs::read_to_string(&eve)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect();
    assert_eq!(file.len() as u64, total);
    let by_stream = stream.join().unwrap();
    assert_eq!(
        by_stream, file,
        "the stream carries the file's lines, in order"
    );

    UnixDatagram::unbound()
        .unwrap()
        .send_to(b"stop", &dgram_path)
        .unwrap();
    let by_dgram = dgram.join().unwrap();
    let dgram_lines: Vec<&str> = by_dgram
        .iter()
        .map(|d| {
            d.strip_suffix('\n')
                .expect("one record per datagram, ending in a newline as Suricata's")
        })
        .collect();
    assert_eq!(
        dgram_lines, file,
        "datagrams carry the file's lines, in order"
    );

    // The scrape says the same, per sink.
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&hub.families())
        .unwrap();
    for kind in ["unix_stream", "unix_dgram"] {
        let path = if kind == "unix_stream" {
            &stream_path
        } else {
            &dgram_path
        };
        let label = format!("{{sink=\"{kind}:{}\"}}", path.display());
        assert!(
            text.contains(&format!("unmask_eve_sink_records_total{label} {total}")),
            "{label}:\n{text}"
        );
        assert!(
            text.contains(&format!("unmask_eve_sink_lost_total{label} 0")),
            "{label}:\n{text}"
        );
    }
    // Keeps the bound socket alive until the end, so no datagram found it absent.
    drop(dgram_socket);
    std::thread::sleep(Duration::from_millis(1));
}
