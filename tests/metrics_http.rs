//! The HTTP endpoint over real sockets, and the ways it refuses to start: a taken port, an
//! unparsable address in the config.

mod metrics_util;

use std::net::{SocketAddr, TcpListener};
use std::process::{Command, Stdio};

use std::sync::Arc;

use metrics_util::*;
use unmask::config::Config;
use unmask::output::metrics::{Exporter, ExporterError, Hub, HubOptions, Metered, RunMode};
use unmask::verdict::{FrameHandler, NoFlowControl};

fn loopback0() -> SocketAddr {
    "127.0.0.1:0".parse().unwrap()
}

fn engine(config: &Config) -> unmask::engine::Engine {
    unmask::engine::Engine::new(
        &config.engine(),
        unmask::engine::EngineOptions {
            worker: 0,
            packet_numbers: false,
        },
        None,
    )
}

#[test]
fn endpoints_answer_health_readiness_and_metrics() {
    let config = Config::default();
    let hub = Hub::new(HubOptions::from_config(&config, RunMode::Live));
    let exporter = Exporter::start(loopback0(), Arc::clone(&hub)).unwrap();
    let addr = exporter.local_addr();
    assert_ne!(addr.port(), 0);

    let (status, _, body) = http_get(addr, "/healthz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ok\n"));

    // Not attached, no worker: not ready, and it says why.
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("XDP program not attached"), "{body}");
    hub.set_source_ready(true);
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("no worker"), "{body}");

    let mut worker = Metered::new(engine(&config), hub.register_worker(0));
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!(status, 503);
    assert!(body.contains("worker 0 not polling"), "{body}");
    let mut ctl = NoFlowControl::default();
    worker.after_batch(unmask::capture::Timestamp(0), &mut ctl);
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!((status, body.as_str()), (200, "ready\n"));

    let (status, head, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    assert!(
        head.to_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{head}"
    );
    let s = parse_exposition(&body);
    assert_eq!(sum_of(&s, "unmask_process_ready", &[]), 1.0);
    assert_eq!(sum_of(&s, "unmask_worker_polling", &["worker=\"0\""]), 1.0);
    assert_eq!(sum_of(&s, "unmask_build_info", &["mode=\"live\""]), 1.0);

    worker.finish(unmask::capture::Timestamp(0), &mut ctl);
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");

    let (status, _, body) = http_get(addr, "/metrics?x=1").unwrap();
    assert_eq!(status, 200, "query strings are ignored");
    assert!(body.contains("unmask_worker_polling{worker=\"0\"} 0"));
    assert_eq!(http_get(addr, "/nothing").unwrap().0, 404);
    assert_eq!(http_request(addr, "POST", "/metrics").unwrap().0, 405);

    // Dropping the exporter closes the port.
    drop(exporter);
    assert!(http_get(addr, "/healthz").is_err());
}

#[test]
fn a_taken_port_is_a_clear_start_up_error() {
    let squatter = TcpListener::bind(loopback0()).unwrap();
    let addr = squatter.local_addr().unwrap();
    let hub = Hub::new(HubOptions::from_config(&Config::default(), RunMode::Replay));
    let err = Exporter::start(addr, hub).unwrap_err();
    assert!(
        matches!(err, ExporterError::AddrInUse { addr: a } if a == addr),
        "{err:?}"
    );
    let msg = err.to_string();
    assert!(msg.contains(&addr.to_string()), "{msg}");
    assert!(msg.contains("already in use"), "{msg}");
    assert!(
        msg.contains("--metrics") && msg.contains("metrics.listen"),
        "{msg}"
    );
}

fn unmask() -> Command {
    Command::new(env!("CARGO_BIN_EXE_unmask"))
}

#[test]
fn replay_with_a_taken_metrics_port_fails_before_reading() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let eve = dir.path().join("eve.json");
    let squatter = TcpListener::bind(loopback0()).unwrap();
    let addr = squatter.local_addr().unwrap();
    let out = unmask()
        .args(["replay", "--no-progress", "--eve"])
        .arg(&eve)
        .args(["--metrics", &addr.to_string()])
        .arg(&pcap)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(stderr.contains("already in use"), "{stderr}");
    assert!(stderr.contains(&addr.to_string()), "{stderr}");
    assert!(!stderr.contains("unmask replay:"), "no summary: {stderr}");
    assert!(!eve.exists(), "nothing was replayed");
}

#[test]
fn an_unparsable_listen_address_is_a_config_error_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[metrics]\nenabled = true\nlisten = \"localhost:http\"\n",
    )
    .unwrap();
    let out = unmask().arg("check-config").arg(&cfg).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("key `metrics.listen`"), "{stderr}");
    assert!(stderr.contains("localhost:http"), "{stderr}");
    assert!(stderr.contains(&cfg.display().to_string()), "{stderr}");

    // The same config stops a replay before it starts.
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let out = unmask()
        .args(["replay", "--no-progress", "--eve", "-", "-c"])
        .arg(&cfg)
        .arg(&pcap)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("key `metrics.listen`"), "{stderr}");

    // On the command line, clap rejects it and names the flag.
    let out = unmask()
        .args(["replay", "--metrics", "nowhere", "x.pcap"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--metrics") && stderr.contains("nowhere"),
        "{stderr}"
    );
}

#[test]
fn replay_serves_its_final_numbers_while_it_lingers() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixture.pcap");
    write_capture(&pcap);
    let eve = dir.path().join("eve.json");
    let mut child = Reaped(
        unmask()
            .args(["replay", "--no-progress", "--mode", "block", "--eve"])
            .arg(&eve)
            .args(["--metrics", "127.0.0.1:0", "--metrics-linger", "30"])
            .arg(&pcap)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    );
    let lines = read_until(&mut child.0, "for 30 s more");
    let addr: SocketAddr = lines
        .iter()
        .find_map(|l| l.strip_prefix("unmask: metrics on http://"))
        .and_then(|l| l.strip_suffix("/metrics"))
        .expect("the bound address is printed")
        .parse()
        .unwrap();
    let packets: f64 = lines
        .iter()
        .find_map(|l| l.trim().strip_prefix("packets"))
        .and_then(|l| l.split_whitespace().next())
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        lines
            .iter()
            .any(|l| l.trim().starts_with("latency    per packet p50")),
        "{lines:?}"
    );
    let (status, _, body) = http_get(addr, "/metrics").unwrap();
    assert_eq!(status, 200);
    let s = parse_exposition(&body);
    assert_eq!(
        sum_of(&s, "unmask_engine_received_packets_total", &[]),
        packets
    );
    let alerts = std::fs::read_to_string(&eve)
        .unwrap()
        .lines()
        .filter(|l| l.contains("\"event_type\":\"alert\""))
        .count();
    // Findings below their alert floor are counted as action="recorded", with no alert.
    assert_eq!(
        sum_of(&s, "unmask_detect_findings_total", &[])
            - sum_of(&s, "unmask_detect_findings_total", &["action=\"recorded\""]),
        alerts as f64
    );
    // The replay is over: alive, but no longer ready.
    assert_eq!(http_get(addr, "/healthz").unwrap().0, 200);
    let (status, _, body) = http_get(addr, "/readyz").unwrap();
    assert_eq!(status, 503, "{body}");
}
