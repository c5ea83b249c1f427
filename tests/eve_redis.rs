//! The redis EVE sink against a real redis-server (started here on a private port and unix
//! socket in a temporary directory, never the system's): every shared capture reaches redis
//! record for record in the file's order, over TCP (LPUSH, Suricata's `list`) and the unix
//! socket (RPUSH); a pub/sub subscriber gets every record; and a redis killed in the middle of
//! a replay loses records (counted) without stopping the engine, which finds redis again when
//! it is back and delivers what comes after.
//!
//! Skipped (and passing) when redis-server is not installed; scripts/deps.sh installs it.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use unmask::app::replay::{replay, ReplayOptions};
use unmask::capture::pcapwrite::PcapWriter;
use unmask::capture::Timestamp;
use unmask::config::{Config, RedisMode, SinkConfig, SinkKind};
use unmask::fixtures::{tcp_frame, Flags, TimedFrame};
use unmask::output::eve::EveTarget;
use unmask::output::metrics::{Hub, HubOptions, RunMode};

/// A redis-server of this test's own, killed when dropped.
struct Redis {
    child: Child,
    port: u16,
    socket: PathBuf,
    dir: PathBuf,
}

fn redis_installed(test: &str) -> bool {
    let found = Command::new("redis-server")
        .arg("--version")
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        // CI runs scripts/deps.sh first: there a missing redis-server is a broken install step,
        // not a reason to pass.
        assert!(
            std::env::var_os("CI").is_none(),
            "{test}: redis-server not installed under CI; scripts/deps.sh should have"
        );
        eprintln!("{test}: skipped: redis-server not installed (scripts/deps.sh installs it)");
    }
    found
}

/// A port nobody listens on now (the kernel's choice, released for redis to take).
fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

impl Redis {
    /// Starts redis on `port` and a unix socket in `dir`, without persistence (a restart
    /// starts empty), and waits until it answers.
    fn start(dir: &Path, port: u16) -> Redis {
        Redis::start_with(dir, port, &[])
    }

    fn start_with(dir: &Path, port: u16, extra: &[&str]) -> Redis {
        let socket = dir.join("redis.sock");
        let child = Command::new("redis-server")
            .args(extra)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .arg("--unixsocket")
            .arg(&socket)
            .args([
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .arg("--dir")
            .arg(dir)
            .arg("--logfile")
            .arg(dir.join("redis.log"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts");
        let redis = Redis {
            child,
            port,
            socket,
            dir: dir.to_path_buf(),
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(mut c) = redis.connection() {
                if redis::cmd("PING").query::<String>(&mut c).is_ok() {
                    return redis;
                }
            }
            assert!(
                Instant::now() < deadline,
                "redis-server did not answer on port {port}; see {}",
                redis.dir.join("redis.log").display()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn connection(&self) -> redis::RedisResult<redis::Connection> {
        let addr = SocketAddr::from(([127, 0, 0, 1], self.port));
        redis::Client::open(format!("redis://{addr}/"))?
            .get_connection_with_timeout(Duration::from_secs(2))
    }

    /// The whole list at `key`, first element first.
    fn list(&self, key: &str) -> Vec<String> {
        let mut c = self.connection().unwrap();
        redis::cmd("LRANGE")
            .arg(key)
            .arg(0)
            .arg(-1)
            .query(&mut c)
            .unwrap()
    }

    fn kill(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn redis_sink(mode: RedisMode, key: &str) -> SinkConfig {
    SinkConfig {
        mode: Some(mode),
        key: Some(key.into()),
        ..SinkConfig::new(SinkKind::Redis)
    }
}

fn tcp_sink(redis: &Redis, mode: RedisMode, key: &str) -> SinkConfig {
    SinkConfig {
        server: Some("127.0.0.1".into()),
        port: Some(redis.port),
        ..redis_sink(mode, key)
    }
}

fn file_lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(str::to_string)
        .collect()
}

/// One counter of the hub's exposition, 0 when absent.
fn metric(hub: &Hub, name_and_labels: &str) -> u64 {
    let text = prometheus::TextEncoder::new()
        .encode_to_string(&hub.families())
        .unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.strip_prefix(' '))
        .map_or(0, |v| v.parse().unwrap())
}

#[test]
fn every_shared_capture_reaches_redis_in_the_files_order() {
    if !redis_installed("eve_redis") {
        return;
    }
    let Some(pcaps) = common::shared_pcaps("eve_redis") else {
        return;
    };
    let mut caps = Vec::new();
    common::captures(&pcaps, &mut caps);
    caps.sort();
    let dir = tempfile::tempdir().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let mut config = Config::default();
    config.output.sinks = vec![
        // Suricata's default mode (LPUSH) over TCP, and RPUSH over the unix socket.
        tcp_sink(&redis, RedisMode::List, "unmask"),
        SinkConfig {
            path: Some(redis.socket.display().to_string()),
            batch_size: Some(7),
            ..redis_sink(RedisMode::Rpush, "unmask-rpush")
        },
    ];
    config.validate("test").unwrap();
    let mut written = Vec::new();
    let (mut sent, mut lost) = (0, 0);
    for cap in &caps {
        let eve = dir.path().join("eve.json");
        let _ = std::fs::remove_file(&eve);
        let outcome = replay(ReplayOptions {
            config: config.clone(),
            files: vec![cap.clone()],
            eve: EveTarget::File(eve.clone()),
            progress: None,
            metrics: None,
        })
        .unwrap();
        let lines = file_lines(&eve);
        assert_eq!(lines.len() as u64, outcome.summary.eve.total());
        for s in &outcome.summary.eve_sinks {
            assert_eq!(s.records, lines.len() as u64, "{}: {s:?}", cap.display());
            sent += s.records;
            lost += s.lost;
        }
        written.extend(lines);
    }
    assert!(
        written.len() > 100,
        "the shared captures give records: {}",
        written.len()
    );
    let mut by_lpush = redis.list("unmask");
    by_lpush.reverse();
    let by_rpush = redis.list("unmask-rpush");
    println!(
        "{} captures: {} records written, {} received by LPUSH, {} by RPUSH ({sent} sent, {lost} lost over both sinks)",
        caps.len(),
        written.len(),
        by_lpush.len(),
        by_rpush.len()
    );
    assert_eq!(lost, 0);
    assert!(
        by_lpush == written,
        "LPUSH: redis holds the file's records, newest first"
    );
    assert!(
        by_rpush == written,
        "RPUSH: redis holds the file's records in order"
    );
}

#[test]
fn a_subscriber_gets_every_record_published() {
    if !redis_installed("eve_redis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("fixtures.pcap");
    let mut w = PcapWriter::create_ethernet(&pcap).unwrap();
    for (ts, frame) in &unmask::fixtures::standard_capture() {
        w.write(*ts, frame).unwrap();
    }
    w.finish().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    let mut sub = redis.connection().unwrap();
    let mut pubsub = sub.as_pubsub();
    // SUBSCRIBE returns once redis confirmed it: nothing published after can be missed.
    pubsub.subscribe("unmask").unwrap();
    pubsub
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();

    let mut config = Config::default();
    config.output.sinks = vec![tcp_sink(&redis, RedisMode::Channel, "unmask")];
    config.validate("test").unwrap();
    let hub = Hub::new(HubOptions::from_config(&config, RunMode::Replay));
    let eve = dir.path().join("eve.json");
    let outcome = replay(ReplayOptions {
        config,
        files: vec![pcap],
        eve: EveTarget::File(eve.clone()),
        progress: None,
        metrics: Some(Arc::clone(&hub)),
    })
    .unwrap();
    let file = file_lines(&eve);
    let e = outcome.summary.eve;
    assert!(e.alert > 0 && e.flow > 0, "{e:?}");
    let mut got = Vec::new();
    while got.len() < file.len() {
        let msg = pubsub.get_message().expect("every record is published");
        assert_eq!(msg.get_channel_name(), "unmask");
        got.push(msg.get_payload::<String>().unwrap());
    }
    assert_eq!(
        got, file,
        "the subscriber gets the file's records, in order"
    );
    let label = format!("{{sink=\"redis:127.0.0.1:{}/publish:unmask\"}}", redis.port);
    assert_eq!(
        metric(&hub, &format!("unmask_eve_sink_records_total{label}")),
        file.len() as u64
    );
    assert_eq!(
        metric(&hub, &format!("unmask_eve_sink_lost_total{label}")),
        0
    );
}

/// Client 10.9.x.y:port to 10.9.0.1:443, one flow per second of packet time: handshake,
/// then a reset. Each flow gives one flow record, once the closed timeout has passed.
fn short_flows(n: u32) -> Vec<TimedFrame> {
    let server: SocketAddr = "10.9.0.1:443".parse().unwrap();
    let (cmac, smac) = ([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2]);
    let mut frames = Vec::with_capacity(n as usize * 4);
    for i in 0..n {
        let client = SocketAddr::from((
            [10, 9, 1 + (i / 60_000) as u8, 1],
            1024 + (i % 60_000) as u16,
        ));
        let t = Timestamp::from_secs_nanos(1_700_000_000 + u64::from(i), 0);
        let at = |k: u64| t.add_nanos(k * 1_000_000);
        frames.push((
            at(0),
            tcp_frame(client, server, cmac, smac, 1000, 0, Flags::SYN, &[]),
        ));
        frames.push((
            at(1),
            tcp_frame(
                server,
                client,
                smac,
                cmac,
                5000,
                1001,
                Flags::SYN | Flags::ACK,
                &[],
            ),
        ));
        frames.push((
            at(2),
            tcp_frame(client, server, cmac, smac, 1001, 5001, Flags::ACK, &[]),
        ));
        frames.push((
            at(3),
            tcp_frame(
                client,
                server,
                cmac,
                smac,
                1001,
                5001,
                Flags::RST | Flags::ACK,
                &[],
            ),
        ));
    }
    frames
}

/// Byte offsets in a pcap file where each record starts, and the file's end.
fn record_offsets(pcap: &[u8]) -> Vec<usize> {
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= pcap.len() {
        out.push(at);
        let len = u32::from_le_bytes(pcap[at + 8..at + 12].try_into().unwrap()) as usize;
        at += 16 + len;
    }
    out.push(pcap.len());
    out
}

/// Polls `f` until it is true or `limit` has passed.
fn wait_for(limit: Duration, what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Records the writer has written so far, of every type.
fn written(hub: &Hub) -> u64 {
    ["alert", "flow", "anomaly", "drop", "tls"]
        .iter()
        .map(|t| {
            metric(
                hub,
                &format!("unmask_eve_records_written_total{{type=\"{t}\"}}"),
            )
        })
        .sum()
}

/// Waits until the engine has stopped writing (it waits on the FIFO) for 300 ms.
fn wait_until_idle(hub: &Hub) -> u64 {
    let mut last = written(hub);
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = written(hub);
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(300) {
            return now;
        }
        assert!(Instant::now() < deadline, "the engine never went idle");
    }
}

/// Waits until the writer has written everything the engine produced so far and the sink has
/// settled every record it was handed (sent or lost): nothing changes for 300 ms.
fn wait_until_settled(hub: &Hub, label: &str) -> (u64, u64, u64) {
    let read = || {
        (
            written(hub),
            metric(hub, &format!("unmask_eve_sink_records_total{label}")),
            metric(hub, &format!("unmask_eve_sink_lost_total{label}")),
        )
    };
    let mut last = read();
    let mut since = Instant::now();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        std::thread::sleep(Duration::from_millis(50));
        let now = read();
        if now != last {
            last = now;
            since = Instant::now();
        } else if since.elapsed() > Duration::from_millis(300) && now.1 + now.2 == now.0 {
            return now;
        }
        assert!(Instant::now() < deadline, "never settled: {now:?}");
    }
}

#[test]
fn a_redis_killed_mid_replay_loses_records_counted_and_is_found_again() {
    if !redis_installed("eve_redis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let redis_dir = dir.path().join("redis");
    std::fs::create_dir(&redis_dir).unwrap();
    let redis = Redis::start(&redis_dir, port);

    // The capture goes through a FIFO in three parts, so the test decides what the engine has
    // seen when redis dies and when it comes back. The outage's part is far longer than the
    // sink's queue, so the loss is certain; the queue is long enough for the bursts the writer
    // makes while redis is up, even in a debug build on a loaded machine.
    const QUEUE: u32 = 2048;
    const PARTS: [u32; 3] = [3_000, 8_000, 3_000];
    const FLOWS: u32 = PARTS[0] + PARTS[1] + PARTS[2];
    let built = dir.path().join("flows.pcap");
    let mut w = PcapWriter::create_ethernet(&built).unwrap();
    for (ts, frame) in &short_flows(FLOWS) {
        w.write(*ts, frame).unwrap();
    }
    w.finish().unwrap();
    let bytes = std::fs::read(&built).unwrap();
    let offsets = record_offsets(&bytes);
    assert_eq!(offsets.len(), FLOWS as usize * 4 + 1);
    // Four frames a flow.
    let cut = |flows: u32| offsets[flows as usize * 4];
    let (end1, end2) = (cut(PARTS[0]), cut(PARTS[0] + PARTS[1]));
    let fifo = dir.path().join("flows.fifo");
    assert!(Command::new("mkfifo")
        .arg(&fifo)
        .status()
        .unwrap()
        .success());

    let mut config = Config::default();
    config.output.sinks = vec![SinkConfig {
        queue_capacity: Some(QUEUE),
        ..tcp_sink(&redis, RedisMode::Rpush, "unmask")
    }];
    config.validate("test").unwrap();
    let label = format!("{{sink=\"redis:127.0.0.1:{port}/rpush:unmask\"}}");
    let hub = Hub::new(HubOptions::from_config(&config, RunMode::Replay));
    let eve = dir.path().join("eve.json");
    let run = {
        let (hub, fifo, eve) = (Arc::clone(&hub), fifo.clone(), eve.clone());
        std::thread::spawn(move || {
            replay(ReplayOptions {
                config,
                files: vec![fifo],
                eve: EveTarget::File(eve),
                progress: None,
                metrics: Some(hub),
            })
            .unwrap()
        })
    };
    let mut feed = std::fs::OpenOptions::new().write(true).open(&fifo).unwrap();

    // 1. Redis up: everything so far arrives.
    feed.write_all(&bytes[..end1]).unwrap();
    let (before_kill, sent1, lost1) = wait_until_settled(&hub, &label);
    assert!(before_kill > 2000, "{before_kill} records before the kill");
    assert_eq!((sent1, lost1), (before_kill, 0));
    let first_redis = redis.list("unmask");
    assert_eq!(first_redis.len() as u64, sent1);
    redis.kill();

    // 2. Redis gone: the engine goes on; the records are lost (a queue's worth waits).
    let outage_started = Instant::now();
    feed.write_all(&bytes[end1..end2]).unwrap();
    wait_for(Duration::from_secs(30), "records lost", || {
        metric(&hub, &format!("unmask_eve_sink_lost_total{label}")) > 4000
    });
    let during = wait_until_idle(&hub);
    assert!(during > before_kill + 7000, "the engine went on: {during}");

    // 3. Redis back on the same port, empty: the sink finds it after its backoff.
    let redis = Redis::start(&redis_dir, port);
    wait_for(Duration::from_secs(40), "a reconnect", || {
        metric(&hub, &format!("unmask_eve_sink_reconnects_total{label}")) >= 1
    });
    let back_after = outage_started.elapsed();
    let (at_return, _, _) = wait_until_settled(&hub, &label);
    feed.write_all(&bytes[end2..]).unwrap();
    drop(feed);
    let outcome = run.join().unwrap();
    assert!(outcome.error.is_none());

    let file = file_lines(&eve);
    let total = file.len() as u64;
    assert_eq!(total, outcome.summary.eve.total());
    assert_eq!(
        outcome.summary.eve.flow,
        u64::from(FLOWS),
        "one flow record per flow: the engine saw the whole capture"
    );
    let s = &outcome.summary.eve_sinks[0];
    let second_redis = redis.list("unmask");
    println!(
        "kill and return: {total} records written; {} sent ({} before the kill, {} after the return), {} lost, {} reconnects; redis back after {back_after:?}",
        s.records,
        first_redis.len(),
        second_redis.len(),
        s.lost,
        s.reconnects
    );
    assert_eq!(
        s.records + s.lost,
        total,
        "every record sent or counted lost"
    );
    assert!(s.lost > 0 && s.reconnects >= 1, "{s:?}");
    assert_eq!(
        first_redis.len() as u64 + second_redis.len() as u64,
        s.records,
        "what the sink counts sent is what the two redis runs hold"
    );
    assert!(
        first_redis[..] == file[..first_redis.len()],
        "before the kill: the file's start"
    );
    // After the return: what waited in the queue, then everything written since, in order.
    let after_return = &file[at_return as usize..];
    assert!(
        second_redis.ends_with(after_return),
        "every record after redis returned arrives, in order"
    );
    let mut rest = file[first_redis.len()..at_return as usize].iter();
    let waited = &second_redis[..second_redis.len() - after_return.len()];
    assert!(
        waited.iter().all(|l| rest.any(|f| f == l)),
        "what waited out the outage is in the file's order"
    );
    assert!(
        waited.len() <= QUEUE as usize,
        "at most the sink's queue waits: {}",
        waited.len()
    );
    // The metrics say the same as the summary.
    assert_eq!(
        metric(&hub, &format!("unmask_eve_sink_lost_total{label}")),
        s.lost
    );
}

#[test]
fn a_connection_redis_closed_while_idle_loses_nothing() {
    if !redis_installed("eve_redis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Redis closes clients idle for a second (checked ten times a second).
    let redis = Redis::start_with(dir.path(), free_port(), &["--timeout", "1"]);
    let config = tcp_sink(&redis, RedisMode::Rpush, "unmask");
    let counter = Arc::new(unmask::output::delivery::SinkCounter::new(config.label()));
    let mut sink = unmask::output::redis::RedisSink::spawn(&config, Arc::clone(&counter)).unwrap();
    sink.send(b"{\"n\":1}\n");
    wait_for(Duration::from_secs(10), "the first record", || {
        counter.sent() == 1
    });
    // Long enough for redis to have closed the idle connection.
    let mut c = redis.connection().unwrap();
    wait_for(
        Duration::from_secs(10),
        "redis closing the idle client",
        || {
            let clients: String = redis::cmd("CLIENT").arg("LIST").query(&mut c).unwrap();
            clients.lines().count() == 1
        },
    );
    sink.send(b"{\"n\":2}\n");
    sink.finish();
    assert_eq!((counter.sent(), counter.lost()), (2, 0));
    assert_eq!(counter.reconnects(), 1);
    assert_eq!(redis.list("unmask"), vec!["{\"n\":1}", "{\"n\":2}"]);
}

#[test]
fn a_stuck_redis_holds_neither_the_engine_nor_the_file() {
    if !redis_installed("eve_redis") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flows.pcap");
    let mut w = PcapWriter::create_ethernet(&pcap).unwrap();
    for (ts, frame) in &short_flows(3_000) {
        w.write(*ts, frame).unwrap();
    }
    w.finish().unwrap();
    let redis = Redis::start(dir.path(), free_port());
    // Stopped, not gone: connections are accepted by the kernel and never answered.
    let pid = redis.child.id().to_string();
    assert!(Command::new("kill")
        .args(["-STOP", &pid])
        .status()
        .unwrap()
        .success());
    let mut config = Config::default();
    config.output.sinks = vec![SinkConfig {
        queue_capacity: Some(64),
        ..tcp_sink(&redis, RedisMode::Rpush, "unmask")
    }];
    config.validate("test").unwrap();
    let hub = Hub::new(HubOptions::from_config(&config, RunMode::Replay));
    let eve = dir.path().join("eve.json");
    let started = Instant::now();
    let run = {
        let (hub, eve) = (Arc::clone(&hub), eve.clone());
        std::thread::spawn(move || {
            replay(ReplayOptions {
                config,
                files: vec![pcap],
                eve: EveTarget::File(eve),
                progress: None,
                metrics: Some(hub),
            })
            .unwrap()
        })
    };
    wait_for(Duration::from_secs(10), "every flow record written", || {
        written(&hub) == 3_000
    });
    let file_done = started.elapsed();
    let outcome = run.join().unwrap();
    let finished = started.elapsed();
    assert!(Command::new("kill")
        .args(["-CONT", &pid])
        .status()
        .unwrap()
        .success());
    let s = &outcome.summary.eve_sinks[0];
    println!(
        "stuck redis: file complete after {file_done:?}, replay returned after {finished:?}; {s:?}"
    );
    assert_eq!(file_lines(&eve).len(), 3_000, "the file gets everything");
    assert_eq!(
        outcome.summary.counters.eve_dropped, 0,
        "the workers' queue never filled"
    );
    assert_eq!((s.records, s.lost), (0, 3_000));
    // The file does not wait for redis; the end waits at most one round trip's timeout and
    // one connection attempt for it.
    assert!(file_done < Duration::from_secs(4), "{file_done:?}");
    assert!(finished < Duration::from_secs(15), "{finished:?}");
}
