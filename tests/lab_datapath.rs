//! The live datapath in network namespaces (scripts/lab.sh): client <-> appliance <-> server.
//!
//! Needs root and the tools from scripts/deps.sh; prints "skipped" and passes without them.
//! Each test builds its own lab under its own LAB_PREFIX and tears it down on drop, also when
//! the test fails. The tests take a process-wide lock: they share two cores and time-sensitive
//! transfers, and a serialised run is a robust one.

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};

static SERIAL: Mutex<()> = Mutex::new(());

const DIAG: &str = env!("CARGO_BIN_EXE_unmask-diag");
const LAB: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/lab.sh");

fn have(tool: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {tool}")])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Root and every tool the lab needs, or a "skipped" line.
fn can_run(test: &str) -> bool {
    // SAFETY-free check of the effective uid through `id -u`.
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0");
    let missing: Vec<&str> = ["ip", "ethtool", "ping", "curl", "socat", "python3"]
        .into_iter()
        .filter(|t| !have(t))
        .collect();
    if !root || !missing.is_empty() {
        eprintln!("{test}: skipped (root: {root}, missing tools: {missing:?}; run scripts/deps.sh as root)");
        return false;
    }
    true
}

struct Lab {
    prefix: String,
    dir: tempfile::TempDir,
    children: Vec<Child>,
}

impl Lab {
    fn up(tag: &str, queues: u32) -> Lab {
        // Short and unique per process: interface names are limited to 15 characters.
        let prefix = format!("u{tag}{}", std::process::id() % 10000);
        let out = Command::new("bash")
            .arg(LAB)
            .arg("up")
            .env("LAB_PREFIX", &prefix)
            .env("LAB_QUEUES", queues.to_string())
            .output()
            .expect("run lab.sh");
        let lab = Lab {
            prefix,
            dir: tempfile::tempdir().expect("tempdir"),
            children: Vec::new(),
        };
        assert!(
            out.status.success(),
            "lab.sh up: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        lab
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn iface(&self, which: char) -> String {
        format!("{}{which}", self.prefix)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn cmd(&self, role: &str, args: &[&str]) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.ns(role)]).args(args);
        c
    }

    fn run(&self, role: &str, args: &[&str]) -> Output {
        self.cmd(role, args).output().expect("spawn")
    }

    fn spawn(&mut self, role: &str, args: &[&str]) -> usize {
        let child = self
            .cmd(role, args)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn");
        self.children.push(child);
        self.children.len() - 1
    }

    /// Starts the datapath in the appliance namespace and waits for READY.
    fn appliance(&mut self, extra: &[&str]) -> Appliance {
        let a = self.iface('a');
        let b = self.iface('b');
        let mut args = vec![DIAG, "inline", "--a", &a, "--b", &b];
        args.extend_from_slice(extra);
        let mut child = self
            .cmd("appliance", &args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn unmask-diag");
        let stdout = child.stdout.take().expect("stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut prog_id = None;
        for line in lines.by_ref() {
            let line = line.unwrap_or_default();
            if let Some(rest) = line.strip_prefix("READY prog_id=") {
                prog_id = rest.trim().parse().ok();
                break;
            }
        }
        if prog_id.is_none() {
            let mut err = String::new();
            if let Some(mut e) = child.stderr.take() {
                let _ = e.read_to_string(&mut err);
            }
            let _ = child.wait();
            panic!("datapath did not start: {err}");
        }
        Appliance {
            child,
            lines,
            prog_id: prog_id.unwrap_or(0),
        }
    }

    /// A python HTTP server on the server, serving `dir` on `port` (IPv4 and IPv6), ready.
    fn http_server(&mut self, dir: &Path, port: u16) {
        let dir = dir.to_string_lossy().into_owned();
        let port_s = port.to_string();
        self.spawn(
            "server",
            &[
                "python3",
                "-m",
                "http.server",
                &port_s,
                "--bind",
                "::",
                "--directory",
                &dir,
            ],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            let out = self.run("server", &["ss", "-Hltn", &format!("sport = :{port}")]);
            if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("http server on {port} did not start");
    }

    fn curl(&self, url: &str, out: &Path, extra: &[&str]) -> Output {
        let out_s = out.to_string_lossy().into_owned();
        let mut args = vec!["curl", "-sf", "-o", &out_s];
        args.extend_from_slice(extra);
        args.push(url);
        self.run("client", &args)
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = Command::new("bash")
            .arg(LAB)
            .arg("down")
            .env("LAB_PREFIX", &self.prefix)
            .output();
    }
}

struct Appliance {
    child: Child,
    lines: std::io::Lines<BufReader<std::process::ChildStdout>>,
    prog_id: u32,
}

impl Appliance {
    /// SIGTERM, wait, and the JSON report.
    fn stop(mut self) -> serde_json::Value {
        let pid = self.child.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                assert!(status.success(), "datapath exited with {status}");
                break;
            }
            assert!(
                Instant::now() < deadline,
                "datapath did not stop on SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut last = String::new();
        for line in self.lines.by_ref() {
            let line = line.unwrap_or_default();
            if line.starts_with('{') {
                last = line;
            }
        }
        serde_json::from_str(&last).unwrap_or_else(|e| panic!("report {last:?}: {e}"))
    }

    fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sha(path: &Path) -> [u8; 32] {
    let bytes = std::fs::read(path).unwrap_or_default();
    Sha256::digest(&bytes).into()
}

fn random_file(path: &Path, len: usize) {
    // A cheap xorshift stream: incompressible enough that corruption cannot hide.
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15 ^ len as u64;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(len);
    std::fs::write(path, v).expect("write blob");
}

fn u64_at(v: &serde_json::Value, ptr: &str) -> u64 {
    v.pointer(ptr)
        .and_then(|x| x.as_u64())
        .unwrap_or_else(|| panic!("{ptr} missing in {v}"))
}

fn sum_workers(v: &serde_json::Value, field: &str) -> u64 {
    v["workers"]
        .as_array()
        .expect("workers")
        .iter()
        .map(|w| w["stats"][field].as_u64().unwrap_or(0))
        .sum()
}

/// Reason slot of the XDP counters (order of `enum unmask_reason`).
const BLOCKED: usize = 2;
const BYPASSED: usize = 3;
const TO_SOCKET: usize = 4;
const NON_TCP: usize = 1;

fn xdp_reason(v: &serde_json::Value, reason: usize) -> u64 {
    u64_at(v, &format!("/xdp/reasons/{reason}/packets"))
}

fn ping(lab: &Lab, addr: &str) -> bool {
    // The first packets may wait for neighbour resolution: a few tries.
    (0..3).any(|_| {
        lab.run("client", &["ping", "-c", "2", "-i", "0.2", "-W", "2", addr])
            .status
            .success()
    })
}

fn attached(lab: &Lab, which: char) -> String {
    let out = lab.run("appliance", &[DIAG, "show", "--iface", &lab.iface(which)]);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[test]
fn lab_forward_all_passes_ping_udp_and_tcp_byte_identical() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_forward_all") {
        return;
    }
    let mut lab = Lab::up("f", 1);
    let app = lab.appliance(&["--handler", "forward"]);

    assert!(ping(&lab, "10.77.0.2"), "IPv4 ping through the appliance");
    assert!(ping(&lab, "fd77::2"), "IPv6 ping through the appliance");

    // UDP: one datagram, byte-identical.
    let sent = lab.path("udp-sent");
    random_file(&sent, 1200);
    let got = lab.path("udp-got");
    let got_s = got.to_string_lossy().into_owned();
    lab.spawn(
        "server",
        &[
            "socat",
            "-u",
            "UDP-RECV:9000,bind=10.77.0.2",
            &format!("CREATE:{got_s}"),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    let sent_s = sent.to_string_lossy().into_owned();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::fs::metadata(&got).map_or(0, |m| m.len()) == 0 && Instant::now() < deadline {
        lab.run(
            "client",
            &[
                "socat",
                "-u",
                &format!("OPEN:{sent_s}"),
                "UDP-SENDTO:10.77.0.2:9000",
            ],
        );
        std::thread::sleep(Duration::from_millis(300));
    }
    let got_bytes = std::fs::read(&got).unwrap_or_default();
    assert!(!got_bytes.is_empty(), "UDP datagram arrived");
    assert_eq!(
        &got_bytes[..1200.min(got_bytes.len())],
        &std::fs::read(&sent).unwrap()[..]
    );

    // TCP over IPv4 and IPv6: 4 MiB each way of the server's file, byte-identical.
    let www = lab.path("www");
    std::fs::create_dir(&www).unwrap();
    random_file(&www.join("blob"), 4 << 20);
    lab.http_server(&www, 8080);
    for (url, name) in [
        ("http://10.77.0.2:8080/blob", "tcp4"),
        ("http://[fd77::2]:8080/blob", "tcp6"),
    ] {
        let out = lab.path(name);
        let r = lab.curl(
            url,
            &out,
            &["-m", "30", "--retry", "3", "--retry-connrefused"],
        );
        assert!(r.status.success(), "{name}: curl {:?}", r.status);
        assert_eq!(sha(&out), sha(&www.join("blob")), "{name} byte-identical");
    }

    let report = app.stop();
    assert!(
        sum_workers(&report, "rx") > 2 * (4 << 20) / 1500,
        "TCP went through the worker"
    );
    assert_eq!(
        sum_workers(&report, "tx"),
        sum_workers(&report, "rx"),
        "forward-all sends all"
    );
    assert!(xdp_reason(&report, TO_SOCKET) > 0);
}

#[test]
fn lab_block_command_cuts_the_flow_in_the_kernel() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_block") {
        return;
    }
    let mut lab = Lab::up("b", 1);
    let app = lab.appliance(&["--handler", "block-port:8081"]);
    let www = lab.path("www");
    std::fs::create_dir(&www).unwrap();
    random_file(&www.join("blob"), 64 << 10);
    lab.http_server(&www, 8080);
    lab.http_server(&www, 8081);

    let ok = lab.curl("http://10.77.0.2:8080/blob", &lab.path("ok"), &["-m", "20"]);
    assert!(ok.status.success(), "the unblocked port works");
    // The SYN is dropped by the worker, which blocks the flow; its retransmissions (1 s, 3 s)
    // are dropped by the XDP program.
    let cut = lab.curl("http://10.77.0.2:8081/blob", &lab.path("cut"), &["-m", "4"]);
    assert!(!cut.status.success(), "the blocked port is cut");
    assert!(std::fs::metadata(lab.path("cut")).map_or(0, |m| m.len()) == 0);

    let report = app.stop();
    assert!(u64_at(&report, "/workers/0/flow_control/blocks") >= 1);
    assert!(
        xdp_reason(&report, BLOCKED) >= 1,
        "the kernel dropped later packets of the blocked flow: {}",
        report["xdp"]
    );
}

#[test]
fn lab_bypass_command_moves_the_flow_into_the_kernel() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_bypass") {
        return;
    }
    let mut lab = Lab::up("p", 1);
    let app = lab.appliance(&["--handler", "bypass-port:8080"]);
    let www = lab.path("www");
    std::fs::create_dir(&www).unwrap();
    random_file(&www.join("blob"), 4 << 20);
    lab.http_server(&www, 8080);
    let out = lab.path("got");
    let r = lab.curl(
        "http://10.77.0.2:8080/blob",
        &out,
        &["-m", "30", "--retry", "3", "--retry-connrefused"],
    );
    assert!(r.status.success(), "bypassed transfer completes");
    assert_eq!(
        sha(&out),
        sha(&www.join("blob")),
        "byte-identical through the kernel bridge"
    );
    let report = app.stop();
    let bypassed = xdp_reason(&report, BYPASSED);
    let rx = sum_workers(&report, "rx");
    assert!(u64_at(&report, "/workers/0/flow_control/bypasses") >= 1);
    // 4 MiB is about 2900 full-size frames plus ACKs; the worker saw only the first few.
    assert!(
        bypassed > 2000,
        "the kernel forwarded the flow: {}",
        report["xdp"]
    );
    assert!(
        rx < bypassed / 4,
        "the worker saw little of it: rx {rx}, bypassed {bypassed}"
    );
}

#[test]
fn lab_block_survives_a_crash_and_restart() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_block_restart") {
        return;
    }
    let mut lab = Lab::up("r", 1);
    let www = lab.path("www");
    std::fs::create_dir(&www).unwrap();
    random_file(&www.join("blob"), 64 << 10);
    lab.http_server(&www, 8080);
    lab.http_server(&www, 8081);
    let app = lab.appliance(&["--handler", "block-port:8081"]);
    // A fixed client port makes every attempt the same flow, so the block entry matches it.
    let fixed = ["-m", "3", "--local-port", "45678"];
    let cut = lab.curl("http://10.77.0.2:8081/blob", &lab.path("cut"), &fixed);
    assert!(!cut.status.success(), "blocked by the first instance");
    app.kill9();
    // The new instance forwards everything itself, but takes over the crashed instance's
    // block map: the kernel keeps dropping the blocked flow.
    let app = lab.appliance(&["--handler", "forward"]);
    let again = lab.curl("http://10.77.0.2:8081/blob", &lab.path("again"), &fixed);
    assert!(!again.status.success(), "still blocked after the restart");
    let ok = lab.curl("http://10.77.0.2:8080/blob", &lab.path("ok"), &["-m", "10"]);
    assert!(ok.status.success(), "other flows pass");
    let report = app.stop();
    assert!(
        report["attach"].to_string().contains("unmask_block"),
        "{}",
        report["attach"]
    );
    assert!(
        xdp_reason(&report, BLOCKED) >= 1,
        "the kernel dropped it: {}",
        report["xdp"]
    );
}

/// Starts a slow transfer, kills the datapath with SIGKILL in the middle, and returns whether
/// the transfer completed intact.
fn transfer_across_a_crash(lab: &mut Lab, fail: &str) -> bool {
    let www = lab.path("www");
    std::fs::create_dir_all(&www).unwrap();
    random_file(&www.join("blob"), 3 << 20);
    lab.http_server(&www, 8080);
    // The sender paces itself (64 KiB every 100 ms): with a rate-limited reader instead, the
    // whole file sits in the receiver's socket buffer within a second and the crash comes
    // too late to matter.
    let script = lab.path("slow.py");
    std::fs::write(
        &script,
        "import socket, sys, time\n\
         data = open(sys.argv[1], 'rb').read()\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)\n\
         s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)\n\
         s.bind(('10.77.0.2', 8090)); s.listen(1)\n\
         c, _ = s.accept()\n\
         for i in range(0, len(data), 65536):\n\
         \x20   c.sendall(data[i:i + 65536]); time.sleep(0.1)\n\
         c.close()\n",
    )
    .unwrap();
    let script_s = script.to_string_lossy().into_owned();
    let blob_s = www.join("blob").to_string_lossy().into_owned();
    lab.spawn("server", &["python3", &script_s, &blob_s]);
    let deadline = Instant::now() + Duration::from_secs(10);
    while lab
        .run("server", &["ss", "-Hltn", "sport = :8090"])
        .stdout
        .is_empty()
    {
        assert!(Instant::now() < deadline, "slow server did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let app = lab.appliance(&["--handler", "forward", "--fail", fail]);
    let out = lab.path("slow");
    let out_s = out.to_string_lossy().into_owned();
    let mut curl = lab
        .cmd(
            "client",
            &[
                "timeout",
                "15",
                "socat",
                "-u",
                "TCP:10.77.0.2:8090",
                &format!("CREATE:{out_s}"),
            ],
        )
        .spawn()
        .expect("socat");
    std::thread::sleep(Duration::from_millis(1500));
    let partial = std::fs::metadata(&out).map_or(0, |m| m.len());
    assert!(partial > 0, "the transfer started through the datapath");
    app.kill9();
    // The program stays attached after the crash: that is what keeps (or stops) the traffic.
    assert!(
        attached(lab, 'a').contains("name unmask_xdp"),
        "program still attached"
    );
    let status = curl.wait().expect("curl");
    status.success() && sha(&out) == sha(&www.join("blob"))
}

#[test]
fn lab_fail_open_keeps_a_transfer_alive_after_kill_9_and_restart_replaces() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_fail_open") {
        return;
    }
    let mut lab = Lab::up("o", 1);
    assert!(
        transfer_across_a_crash(&mut lab, "open"),
        "fail-open: transfer completes"
    );
    let old = attached(&lab, 'a');
    // A restart finds the crashed instance's program and replaces it atomically.
    let app = lab.appliance(&["--handler", "forward"]);
    assert!(ping(&lab, "10.77.0.2"));
    let report = app.stop();
    let attach = report["attach"].to_string();
    assert!(
        attach.contains("replaced earlier unmask program"),
        "{attach} (before: {old})"
    );
}

#[test]
fn lab_fail_closed_stops_traffic_after_kill_9() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_fail_closed") {
        return;
    }
    let mut lab = Lab::up("c", 1);
    assert!(
        !transfer_across_a_crash(&mut lab, "closed"),
        "fail-closed: transfer stops"
    );
    // Non-TCP still bridges in the kernel; TCP does not.
    assert!(
        ping(&lab, "10.77.0.2"),
        "ICMP is not inspected and still passes"
    );
    let r = lab.curl(
        "http://10.77.0.2:8080/blob",
        &lab.path("after"),
        &["-m", "3"],
    );
    assert!(!r.status.success(), "new TCP connections are dropped");
}

#[test]
fn lab_graceful_stop_leaves_no_program_and_no_maps() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_graceful_stop") {
        return;
    }
    let mut lab = Lab::up("g", 1);
    let app = lab.appliance(&["--handler", "forward"]);
    let prog_id = app.prog_id;
    let map_ids: Vec<String> = if have("bpftool") {
        let out = Command::new("bpftool")
            .args(["prog", "show", "id", &prog_id.to_string()])
            .output()
            .expect("bpftool");
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let ids = text
            .split("map_ids ")
            .nth(1)
            .map(|s| s.split_whitespace().next().unwrap_or("").to_string())
            .unwrap_or_default();
        ids.split(',')
            .filter(|s| !s.is_empty())
            .map(str::to_string)
            .collect()
    } else {
        eprintln!("bpftool missing: map check skipped");
        Vec::new()
    };
    assert!(attached(&lab, 'a').contains("unmask_xdp"));
    // A second instance on the same ports is refused and leaves the first one alone.
    let second = lab.run(
        "appliance",
        &[
            DIAG,
            "inline",
            "--a",
            &lab.iface('a'),
            "--b",
            &lab.iface('b'),
            "--seconds",
            "1",
        ],
    );
    let err = String::from_utf8_lossy(&second.stderr);
    assert!(
        !second.status.success() && err.contains("another unmask"),
        "{err}"
    );
    assert!(ping(&lab, "10.77.0.2"), "the first instance still bridges");
    assert!(
        attached(&lab, 'a').contains(&format!("id {prog_id} ")),
        "first program untouched"
    );
    let _ = app.stop();
    for which in ['a', 'b'] {
        let out = lab.run(
            "appliance",
            &["ip", "link", "show", "dev", &lab.iface(which)],
        );
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success());
        assert!(
            !text.contains("xdp"),
            "no XDP program left on port {which}: {text}"
        );
    }
    if have("bpftool") {
        assert!(
            map_ids.len() >= 5,
            "found our maps while running: {map_ids:?}"
        );
        // Map freeing is deferred in the kernel: allow it a moment.
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut alive: Vec<String> = map_ids.clone();
        while !alive.is_empty() && Instant::now() < deadline {
            alive.retain(|id| {
                Command::new("bpftool")
                    .args(["map", "show", "id", id])
                    .output()
                    .is_ok_and(|o| o.status.success())
            });
            std::thread::sleep(Duration::from_millis(100));
        }
        assert!(
            alive.is_empty(),
            "unmask maps still exist after stop: {alive:?}"
        );
        let prog = Command::new("bpftool")
            .args(["prog", "show", "id", &prog_id.to_string()])
            .output()
            .expect("bpftool");
        assert!(!prog.status.success(), "program {prog_id} still loaded");
    }
}

#[test]
fn lab_tap_mode_sees_tcp_and_forwards_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_tap") {
        return;
    }
    let lab = Lab::up("t", 1);
    let a = lab.iface('a');
    // Nothing answers ARP through a tap: give the client the server's address by hand.
    let smac_path = format!("/sys/class/net/{}/address", lab.iface('s'));
    let smac = lab.run("server", &["cat", &smac_path]);
    let smac = String::from_utf8_lossy(&smac.stdout).trim().to_string();
    let neigh = lab.run(
        "client",
        &[
            "ip",
            "neigh",
            "replace",
            "10.77.0.2",
            "lladdr",
            &smac,
            "dev",
            &lab.iface('c'),
            "nud",
            "permanent",
        ],
    );
    assert!(neigh.status.success(), "static neighbour");
    let mut child = lab
        .cmd("appliance", &[DIAG, "tap", "--iface", &a])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn tap");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert!(
        lines
            .by_ref()
            .any(|l| l.is_ok_and(|l| l.starts_with("READY"))),
        "tap datapath started"
    );
    let app = Appliance {
        child,
        lines,
        prog_id: 0,
    };
    // A mirror port bridges nothing: the client's SYNs reach the worker and stop there.
    let r = lab.curl("http://10.77.0.2:8080/", &lab.path("x"), &["-m", "3"]);
    assert!(!r.status.success());
    assert!(!ping(&lab, "10.77.0.2"), "non-TCP is not bridged either");
    let report = app.stop();
    assert!(
        sum_workers(&report, "rx") >= 2,
        "SYN and retransmissions seen: {report}"
    );
    assert_eq!(sum_workers(&report, "tx"), 0, "tap never transmits");
    assert!(xdp_reason(&report, TO_SOCKET) >= 2);
    assert!(
        xdp_reason(&report, NON_TCP) >= 1,
        "ARP / ICMP counted and dropped"
    );
    assert_eq!(
        report["attach"].as_array().map(Vec::len),
        Some(1),
        "one port"
    );
}

#[test]
fn lab_refuses_a_foreign_xdp_program() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_foreign") || !have("clang") {
        eprintln!("lab_foreign: skipped (needs clang)");
        return;
    }
    let lab = Lab::up("x", 1);
    let src = lab.path("foreign.c");
    std::fs::write(
        &src,
        "#include <linux/bpf.h>\n__attribute__((section(\"xdp\"), used)) int someone_else(struct xdp_md *c) { return XDP_PASS; }\nchar _l[] __attribute__((section(\"license\"), used)) = \"GPL\";\n",
    )
    .unwrap();
    let obj = lab.path("foreign.o");
    let cc = Command::new("clang")
        .args([
            "-O2",
            "-target",
            "bpf",
            "-I/usr/include/x86_64-linux-gnu",
            "-c",
        ])
        .arg(&src)
        .arg("-o")
        .arg(&obj)
        .output()
        .expect("clang");
    assert!(
        cc.status.success(),
        "{}",
        String::from_utf8_lossy(&cc.stderr)
    );
    let obj_s = obj.to_string_lossy().into_owned();
    let a = lab.iface('a');
    let set = lab.run(
        "appliance",
        &[
            "ip", "link", "set", "dev", &a, "xdpdrv", "obj", &obj_s, "sec", "xdp",
        ],
    );
    assert!(
        set.status.success(),
        "attach foreign: {}",
        String::from_utf8_lossy(&set.stderr)
    );

    let b = lab.iface('b');
    let out = lab.run(
        "appliance",
        &[DIAG, "inline", "--a", &a, "--b", &b, "--seconds", "1"],
    );
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "must refuse to start");
    assert!(err.contains("foreign XDP program"), "{err}");
    assert!(
        err.contains(&format!("ip link set dev {a} xdp off")),
        "{err}"
    );
    assert!(
        attached(&lab, 'a').contains("someone_else"),
        "the foreign program is untouched"
    );
    assert!(
        !attached(&lab, 'b').contains("unmask_xdp"),
        "nothing left on port B"
    );
}

#[test]
fn lab_two_queues_spread_flows_and_hand_off() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_two_queues") {
        return;
    }
    let mut lab = Lab::up("q", 2);
    let app = lab.appliance(&["--handler", "forward", "--workers", "2"]);
    let www = lab.path("www");
    std::fs::create_dir(&www).unwrap();
    random_file(&www.join("blob"), 256 << 10);
    lab.http_server(&www, 8080);
    let want = sha(&www.join("blob"));
    // Many connections: each one is a new flow with its own hash and queue.
    for i in 0..24 {
        let out = lab.path(&format!("got{i}"));
        let r = lab.curl(
            "http://10.77.0.2:8080/blob",
            &out,
            &["-m", "20", "--retry", "2"],
        );
        assert!(r.status.success(), "transfer {i}");
        assert_eq!(sha(&out), want, "transfer {i} byte-identical");
    }
    let report = app.stop();
    let workers = report["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(
            w["stats"]["rx"].as_u64().unwrap_or(0) > 0,
            "every worker received: {w}"
        );
    }
    let out = sum_workers(&report, "handoff_out");
    let inn = sum_workers(&report, "handoff_in");
    assert!(out > 0, "asymmetric queues caused handoffs: {report}");
    assert_eq!(
        out,
        inn + sum_workers(&report, "handoff_full"),
        "every handoff arrived or was counted"
    );
}
