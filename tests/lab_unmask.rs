//! `unmask run` in the namespace lab with real peers: what it blocks, what it lets through,
//! what happens when it dies, and that live findings equal replay findings.
//!
//! Needs root and the tools from scripts/deps.sh; prints "skipped" and passes without them.

mod common;

use common::lab::*;

/// 20 MiB, as the datapath issue asks for the byte-identical HTTPS download.
const BLOB: usize = 20 * 1024 * 1024;
const SSH_BANNER: &str = "SSH-2.0-OpenSSH_9.2p1 Debian-2\\r\\n";
/// A TLS record header announcing a ClientHello whose handshake length (0xffff) overruns the
/// 64-byte record: a fake handshake.
const FAKE_TLS_HELLO: &str = "1603010040010000ff0303";

/// Gives the server namespace the impersonators' address, 10.77.0.3, beside 10.77.0.2.
fn second_server_address(lab: &Lab) {
    let s_if = lab.iface('s');
    let out = lab.run(
        "server",
        &["ip", "addr", "add", "10.77.0.3/24", "dev", &s_if],
    );
    assert!(out.status.success(), "second server address");
}

/// Lab with an HTTPS server (openssl s_server, CA-signed certificate) serving a 20 MiB blob
/// at www.lab.example, and a second server address (10.77.0.3) for the impersonators.
struct Scene {
    lab: Lab,
    ca: PathBuf,
    blob: PathBuf,
}

impl Scene {
    fn new(tag: &str, queues: u32) -> Scene {
        let mut lab = Lab::up(tag, queues);
        second_server_address(&lab);
        let www = lab.path("www");
        std::fs::create_dir_all(&www).expect("www dir");
        let blob = www.join("blob");
        random_file(&blob, BLOB);
        let (ca, cert, key) = make_certs(lab.dir.path(), "www.lab.example");
        let cmd = format!(
            "cd {} && exec openssl s_server -quiet -accept 10.77.0.2:443 -cert {} -key {} -WWW",
            www.display(),
            cert.display(),
            key.display()
        );
        lab.spawn("server", &["sh", "-c", &cmd]);
        wait_listening(&lab, 443);
        Scene { lab, ca, blob }
    }

    /// Downloads the blob over HTTPS through the appliance; true when it arrived intact.
    fn https_download(&self) -> bool {
        let out = self.lab.path("blob.out");
        let _ = std::fs::remove_file(&out);
        let ca = self.ca.to_string_lossy().into_owned();
        let r = self.lab.curl(
            "https://www.lab.example/blob",
            &out,
            &[
                "--cacert",
                &ca,
                "--resolve",
                "www.lab.example:443:10.77.0.2",
                "--max-time",
                "60",
            ],
        );
        r.status.success() && sha(&out) == sha(&self.blob)
    }
}

fn wait_listening(lab: &Lab, port: u16) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let out = lab.run("server", &["ss", "-Hltn", &format!("sport = :{port}")]);
        if !String::from_utf8_lossy(&out.stdout).trim().is_empty() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("nothing listens on {port}");
}

/// The impersonations of the issue, through the appliance: SSH on 443 and a fake TLS
/// handshake on 8443. Returns (bytes the SSH sink got, bytes the fake-TLS sink got, bytes sent
/// by each sender).
fn impersonations(lab: &mut Lab) -> (u64, u64, u64) {
    let ssh = lab.sink("10.77.0.3:443", &["--banner", SSH_BANNER]);
    let fake = lab.sink("10.77.0.2:8443", &[]);
    let chunks = ["--chunks", "20", "--chunk-size", "1000", "--pause", "0.05"];
    let mut args = vec!["--hello", SSH_BANNER];
    args.extend_from_slice(&chunks);
    lab.send("10.77.0.3:443", &args);
    let mut args = vec!["--hello-hex", FAKE_TLS_HELLO];
    args.extend_from_slice(&chunks);
    lab.send("10.77.0.2:8443", &args);
    let sent = 20 * 1000;
    (count(&ssh), count(&fake), sent)
}

fn udp_passes(lab: &mut Lab) -> bool {
    let got = lab.path("udp.txt");
    let g = got.to_string_lossy().into_owned();
    lab.spawn(
        "server",
        &[
            "socat",
            "-u",
            "UDP-RECV:9999",
            &format!("OPEN:{g},creat,append"),
        ],
    );
    std::thread::sleep(Duration::from_millis(300));
    for _ in 0..5 {
        lab.run(
            "client",
            &[
                "sh",
                "-c",
                "echo unmask-udp | socat -u - UDP:10.77.0.2:9999",
            ],
        );
        std::thread::sleep(Duration::from_millis(200));
        if std::fs::read_to_string(&got).is_ok_and(|s| s.contains("unmask-udp")) {
            return true;
        }
    }
    false
}

fn blocked_in_kernel(report: &serde_json::Value) -> u64 {
    u64_at(report, "/datapath/xdp/reasons/2/packets")
}

#[test]
fn lab_block_mode_cuts_impersonations_and_passes_benign_traffic() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_block_mode") || !have("openssl") {
        return;
    }
    let mut scene = Scene::new("bk", 1);
    let cfg = scene.lab.config("block", "inline", 1, "fail-open");
    let unmask = scene.lab.unmask(&cfg);
    assert!(ping(&scene.lab, "10.77.0.2"), "ping through the appliance");
    assert!(udp_passes(&mut scene.lab), "UDP through the appliance");
    assert!(
        scene.https_download(),
        "20 MiB HTTPS download byte-identical"
    );
    let (ssh_got, fake_got, sent) = impersonations(&mut scene.lab);
    let records = unmask.records();
    let report = unmask.stop();

    assert!(
        ssh_got < sent,
        "SSH on 443 was cut: the sink got {ssh_got} of {sent} bytes"
    );
    assert!(
        fake_got < sent,
        "fake TLS was cut: the sink got {fake_got} of {sent} bytes"
    );
    assert!(
        findings_to_port(&records, 443).contains(&"protocol_port_mismatch".to_string()),
        "{records:?}"
    );
    assert!(
        findings_to_port(&records, 8443).contains(&"tls_malformed_handshake".to_string()),
        "{:?}",
        findings_to_port(&records, 8443)
    );
    for r in records.iter().filter(|r| r["event_type"] == "alert") {
        assert_eq!(r["alert"]["action"], "blocked", "{r}");
        assert_ne!(
            (r["dest_ip"].as_str(), r["dest_port"].as_u64()),
            (Some("10.77.0.2"), Some(443)),
            "benign HTTPS raised {r}"
        );
    }
    assert!(
        blocked_in_kernel(&report) > 0,
        "the XDP block map dropped later packets of the blocked flows: {}",
        report["datapath"]["xdp"]
    );
    assert!(u64_at(&report, "/counters/flows_blocked") >= 2);
}

#[test]
fn lab_monitor_mode_alerts_and_lets_everything_complete() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_monitor_mode") || !have("openssl") {
        return;
    }
    let mut scene = Scene::new("mo", 1);
    let cfg = scene.lab.config("monitor", "inline", 1, "fail-open");
    let unmask = scene.lab.unmask(&cfg);
    assert!(scene.https_download(), "HTTPS download byte-identical");
    let (ssh_got, fake_got, sent) = impersonations(&mut scene.lab);
    let records = unmask.records();
    let report = unmask.stop();
    // The sinks count the sender's chunks plus its opening bytes.
    assert!(ssh_got >= sent, "SSH on 443 completed: {ssh_got} of {sent}");
    assert!(fake_got >= sent, "fake TLS completed: {fake_got} of {sent}");
    assert!(findings_to_port(&records, 443).contains(&"protocol_port_mismatch".to_string()));
    assert!(findings_to_port(&records, 8443).contains(&"tls_malformed_handshake".to_string()));
    assert!(records
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .all(|r| r["alert"]["action"] == "allowed"));
    assert_eq!(blocked_in_kernel(&report), 0);
    assert_eq!(u64_at(&report, "/counters/dropped"), 0);
}

#[test]
fn lab_bypass_hands_judged_flows_to_the_kernel_and_still_accounts_for_them() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_bypass") || !have("openssl") {
        return;
    }
    let mut scene = Scene::new("by", 1);
    let cfg = scene.lab.config("block", "inline", 1, "fail-open");
    let text = std::fs::read_to_string(&cfg).expect("config");
    // Recheck bypassed flows every 2 s, so the run sees rechecks as well as the final read.
    let text = text.replacen("[verdict]\n", "[verdict]\nbypass = \"clean\"\n", 1)
        + "\n[flow]\nbypassed_timeout_secs = 2\n";
    std::fs::write(&cfg, text).expect("write config");
    let unmask = scene.lab.unmask(&cfg);
    assert!(unmask.ready.contains("bypass=clean"), "{}", unmask.ready);
    assert!(
        scene.https_download(),
        "20 MiB HTTPS download byte-identical with the kernel carrying it"
    );
    let (ssh_got, fake_got, sent) = impersonations(&mut scene.lab);
    assert!(ping(&scene.lab, "10.77.0.2"), "ping through the appliance");
    std::thread::sleep(Duration::from_secs(3));
    let eve = unmask.eve.clone();
    let report = unmask.stop();
    let records: Vec<serde_json::Value> = std::fs::read_to_string(&eve)
        .expect("EVE file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("EVE line is JSON"))
        .collect();

    // Bypass never lets a flagged flow through: they are blocked, not judged clean.
    assert!(
        ssh_got < sent && fake_got < sent,
        "{ssh_got} {fake_got} of {sent}"
    );
    assert!(findings_to_port(&records, 443).contains(&"protocol_port_mismatch".to_string()));
    assert!(findings_to_port(&records, 8443).contains(&"tls_malformed_handshake".to_string()));

    let bypassed_in_kernel = u64_at(&report, "/datapath/xdp/reasons/3/packets");
    let rx = sum_workers(&report["datapath"], "rx");
    // 20 MiB is some 14,500 full segments plus their ACKs; the worker saw the handshake and
    // whatever was in flight while the entry was written.
    assert!(
        bypassed_in_kernel > 10_000,
        "bypassed in the kernel: {bypassed_in_kernel}"
    );
    assert!(
        rx < bypassed_in_kernel,
        "the worker received {rx} frames, the kernel bypassed {bypassed_in_kernel}"
    );
    assert!(u64_at(&report, "/counters/flows_bypassed") >= 1);
    assert!(u64_at(&report, "/counters/bypass_rechecks") >= 1);
    // Every packet the program bypassed was read back into a flow (the download's entry was
    // read at its recheck or at the stop), none counted twice.
    assert_eq!(
        u64_at(&report, "/counters/bypass_kernel_packets"),
        bypassed_in_kernel
    );

    let download = records
        .iter()
        .find(|r| {
            r["event_type"] == "flow"
                && r["dest_port"] == 443
                && r["dest_ip"] == "10.77.0.2"
                && r["app_proto"] == "tls"
        })
        .expect("flow record of the download");
    let f = &download["flow"];
    assert_eq!(f["bypass"], "capture", "{download}");
    assert!(
        f["bytes_toclient"].as_u64().unwrap() > BLOB as u64,
        "the record counts the kernel's bytes: {download}"
    );
    assert!(f["bypassed"]["bytes_toclient"].as_u64().unwrap() > (BLOB as u64) * 9 / 10);
    assert_eq!(
        f["state"], "closed",
        "curl's close went by the kernel: {download}"
    );
}

/// A paced transfer across a `kill -9` of unmask; true when it completed.
fn paced_transfer_across_kill(fail: &str) -> bool {
    let mut lab = Lab::up(if fail == "fail-open" { "fo" } else { "fc" }, 1);
    let cfg = lab.config("block", "inline", 1, fail);
    let unmask = lab.unmask(&cfg);
    let sink = lab.sink("10.77.0.2:7000", &[]);
    // 6 s of traffic: 120 chunks of 4 KB, 50 ms apart, to an unreserved port.
    let mut sender = lab
        .cmd(
            "client",
            &[
                "python3",
                PEER,
                "send",
                "--to",
                "10.77.0.2:7000",
                "--chunks",
                "120",
                "--chunk-size",
                "4000",
                "--pause",
                "0.05",
            ],
        )
        .spawn()
        .expect("sender");
    std::thread::sleep(Duration::from_millis(1500));
    unmask.kill9();
    let _ = sender.wait();
    count(&sink) >= 120 * 4000
}

#[test]
fn lab_fail_open_transfer_survives_kill_9_of_unmask() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_fail_open_unmask") {
        return;
    }
    assert!(paced_transfer_across_kill("fail-open"));
}

#[test]
fn lab_fail_closed_transfer_stops_after_kill_9_of_unmask() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_fail_closed_unmask") {
        return;
    }
    assert!(!paced_transfer_across_kill("fail-closed"));
}

#[test]
fn lab_graceful_stop_of_unmask_leaves_no_program_and_no_maps() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_graceful_unmask") {
        return;
    }
    let mut lab = Lab::up("gs", 1);
    let cfg = lab.config("block", "inline", 1, "fail-open");
    let unmask = lab.unmask(&cfg);
    let prog_id = unmask
        .ready
        .split_whitespace()
        .find_map(|w| w.strip_prefix("prog_id="))
        .expect("prog_id in READY")
        .to_string();
    assert!(
        attached(&lab, 'a').contains("xdp id"),
        "attached while running"
    );
    let map_ids = prog_map_ids(&prog_id);
    unmask.stop();
    for port in ['a', 'b'] {
        let shown = attached(&lab, port);
        assert!(shown.contains("no xdp program"), "{port}: {shown}");
    }
    if have("bpftool") {
        let progs = lab.run("appliance", &["bpftool", "prog", "show", "id", &prog_id]);
        assert!(!progs.status.success(), "program {prog_id} still loaded");
        // Only this program's maps: another unmask on the machine may hold maps of the same
        // names.
        assert!(
            map_ids.len() >= 5,
            "found our maps while running: {map_ids:?}"
        );
        let alive = maps_still_alive(&map_ids);
        assert!(alive.is_empty(), "unmask maps remain: {alive:?}");
    }
}

/// Alerts as (client port, finding) pairs, for comparing runs.
fn alert_pairs(records: &[serde_json::Value]) -> Vec<(u64, String)> {
    let mut v: Vec<(u64, String)> = records
        .iter()
        .filter(|r| r["event_type"] == "alert")
        .map(|r| {
            let client = if r["direction"] == "to_server" {
                r["src_port"].as_u64()
            } else {
                r["dest_port"].as_u64()
            };
            (
                client.unwrap_or(0),
                r["unmask"]["finding"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    v.sort();
    v
}

#[test]
fn lab_tcpreplay_in_tap_mode_finds_what_replay_finds() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_tcpreplay_tap") || !have("tcpreplay") {
        return;
    }
    let mut lab = Lab::up("tr", 1);
    let capture = lab.path("fixtures.pcap");
    let cap = capture.to_string_lossy().into_owned();
    let out = Command::new(UNMASK)
        .args(["fixtures", "--out", &cap])
        .output()
        .expect("fixtures");
    assert!(out.status.success());
    let offline = lab.path("offline.json");
    let off = offline.to_string_lossy().into_owned();
    let out = Command::new(UNMASK)
        .args(["replay", "--mode", "monitor", "--eve", &off, &cap])
        .output()
        .expect("replay");
    assert!(out.status.success());
    let offline_records: Vec<serde_json::Value> = std::fs::read_to_string(&offline)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();

    let cfg = lab.config("monitor", "tap", 1, "fail-open");
    let unmask = lab.unmask(&cfg);
    let c_if = lab.iface('c');
    let r = lab.run(
        "client",
        &["tcpreplay", "-q", &format!("--intf1={c_if}"), &cap],
    );
    assert!(
        r.status.success(),
        "tcpreplay: {}",
        String::from_utf8_lossy(&r.stderr)
    );
    std::thread::sleep(Duration::from_millis(500));
    let live_records = {
        let report = unmask.stop();
        assert!(u64_at(&report, "/counters/packets") > 0);
        eve_records(&lab.path("eve.json"))
    };
    let (live, offline) = (alert_pairs(&live_records), alert_pairs(&offline_records));
    assert!(!offline.is_empty(), "the fixture capture has findings");
    assert_eq!(live, offline, "live tap findings equal replay findings");
}

#[test]
fn lab_two_queues_two_workers_spread_flows_with_the_same_findings() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_two_workers") {
        return;
    }
    let mut lab = Lab::up("q2", 2);
    second_server_address(&lab);
    let www = lab.path("www");
    std::fs::create_dir_all(&www).unwrap();
    random_file(&www.join("f"), 256 * 1024);
    lab.http_server(&www, 8080);
    let cfg = lab.config("block", "inline", 2, "fail-open");
    let unmask = lab.unmask(&cfg);
    // Flows from both client CPUs so both queues carry traffic.
    let mut ok = 0;
    for i in 0..16 {
        let out = lab.path(&format!("f{i}"));
        let cpu = (i % 2).to_string();
        let o = out.to_string_lossy().into_owned();
        let r = lab.run(
            "client",
            &[
                "taskset",
                "-c",
                &cpu,
                "curl",
                "-sf",
                "-o",
                &o,
                "http://10.77.0.2:8080/f",
            ],
        );
        ok += (r.status.success() && sha(&out) == sha(&www.join("f"))) as usize;
    }
    let ssh = lab.sink("10.77.0.3:443", &["--banner", SSH_BANNER]);
    lab.send("10.77.0.3:443", &["--hello", SSH_BANNER, "--chunks", "5"]);
    let _ = count(&ssh);
    let records = unmask.records();
    let report = unmask.stop();
    assert_eq!(ok, 16, "every download intact");
    let workers = report["datapath"]["workers"].as_array().expect("workers");
    assert_eq!(workers.len(), 2);
    for w in workers {
        assert!(
            w["stats"]["rx"].as_u64().unwrap_or(0) > 0,
            "idle worker: {w}"
        );
    }
    let handoffs: u64 = workers
        .iter()
        .map(|w| w["stats"]["handoff_out"].as_u64().unwrap_or(0))
        .sum();
    eprintln!("handoffs: {handoffs}");
    assert!(
        handoffs > 0,
        "veth RSS is not symmetric: handoffs must happen and be counted"
    );
    assert_eq!(
        findings_to_port(&records, 443),
        vec!["protocol_port_mismatch".to_string()]
    );
    assert!(findings_to_port(&records, 8080).is_empty());
}

fn ctl(lab: &Lab, command: &str) -> (bool, serde_json::Value) {
    let socket = lab.path("control.sock").to_string_lossy().into_owned();
    let out = lab.run("appliance", &[UNMASK, "ctl", "--socket", &socket, command]);
    let reply = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "unmask ctl {command}: {e}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    (out.status.success(), reply)
}

#[test]
fn lab_hot_reload_switches_policy_live_keeps_flows_and_rejects_a_bad_config() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_hot_reload") {
        return;
    }
    let mut lab = Lab::up("hr", 1);
    second_server_address(&lab);
    let cfg = lab.config("monitor", "inline", 1, "fail-open");
    let unmask = lab.unmask(&cfg);
    let pid = unmask.child.id();

    // Least privilege: once READY, every thread holds CAP_NET_ADMIN (bit 12) and nothing else.
    let caps = unmask::datapath::privilege::thread_caps(&pid.to_string()).expect("task dir");
    assert!(caps.len() >= 3, "workers and helper threads: {caps:?}");
    for t in &caps {
        assert_eq!(
            t.effective,
            1 << 12,
            "thread {}: CapEff {:#x}",
            t.name,
            t.effective
        );
        assert_eq!(
            t.bounding,
            1 << 12,
            "thread {}: CapBnd {:#x}",
            t.name,
            t.bounding
        );
        assert!(t.no_new_privs, "thread {}: no_new_privs", t.name);
    }
    assert!(unmask.ready.contains("caps=0x1000"), "{}", unmask.ready);

    // A benign paced upload that runs across both reloads.
    let long = lab.sink("10.77.0.2:9000", &[]);
    let chunks = 150u64;
    let long_sender = lab.spawn(
        "client",
        &[
            "python3",
            PEER,
            "send",
            "--to",
            "10.77.0.2:9000",
            "--chunks",
            "150",
            "--chunk-size",
            "4000",
            "--pause",
            "0.04",
        ],
    );
    let _ = long_sender;

    // Monitor: the impersonations complete.
    let (ssh_got, fake_got, sent) = impersonations(&mut lab);
    assert!(
        ssh_got >= sent && fake_got >= sent,
        "monitor lets them through"
    );

    // Block, by SIGHUP.
    let text = std::fs::read_to_string(&cfg).expect("config");
    std::fs::write(&cfg, text.replace("mode = \"monitor\"", "mode = \"block\"")).expect("write");
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    assert!(hup.expect("kill").success());
    let said = unmask.wait_log("SIGHUP: reload 2 applied");
    assert!(said.contains("mode block"), "{said}");
    let (ssh_got, fake_got, sent) = impersonations(&mut lab);
    assert!(
        ssh_got < sent,
        "SSH on 443 cut after the reload: {ssh_got} of {sent}"
    );
    assert!(
        fake_got < sent,
        "fake TLS cut after the reload: {fake_got} of {sent}"
    );

    // A bad config, by SIGHUP and by the control command: rejected, block stays in force.
    std::fs::write(&cfg, text.replace("mode = \"monitor\"", "mode = \"blok\"")).expect("write");
    let hup = Command::new("kill")
        .args(["-HUP", &pid.to_string()])
        .status();
    assert!(hup.expect("kill").success());
    let said = unmask.wait_log("rejected");
    assert!(
        said.contains("verdict.mode") && said.contains("blok"),
        "{said}"
    );
    let (ok, reply) = ctl(&lab, "reload");
    assert!(!ok, "ctl reload of a bad config fails: {reply}");
    let message = reply["message"].as_str().unwrap_or("");
    assert!(
        message.contains("verdict.mode") && message.contains("config in force stays"),
        "{reply}"
    );
    let (ok, status) = ctl(&lab, "status");
    assert!(ok);
    assert_eq!(status["generation"], 2, "{status}");
    assert_eq!(status["mode"], "block", "{status}");
    let (ssh_got, _, sent) = impersonations(&mut lab);
    assert!(ssh_got < sent, "still blocking after the rejected reload");

    // Back to monitor by the control command; a restart-only key is named, not applied.
    std::fs::write(&cfg, format!("{text}\n[flow]\ncapacity = 4096\n")).expect("write");
    let (ok, reply) = ctl(&lab, "reload");
    assert!(ok, "{reply}");
    assert_eq!(reply["outcome"]["generation"], 3, "{reply}");
    assert_eq!(reply["outcome"]["mode"], "monitor", "{reply}");
    assert_eq!(reply["outcome"]["restart_required"][0], "flow.capacity");
    let (ssh_got, _, sent) = impersonations(&mut lab);
    assert!(ssh_got >= sent, "monitor again: {ssh_got} of {sent}");

    // The upload that ran across the reloads lost nothing and stayed one flow.
    let long_got = count(&long);
    assert_eq!(long_got, chunks * 4000, "upload across reloads");
    let records = unmask.records();
    let report = unmask.stop();
    let upload_flows: Vec<_> = records
        .iter()
        .filter(|r| r["event_type"] == "flow" && r["dest_port"] == 9000)
        .collect();
    assert_eq!(upload_flows.len(), 1, "{upload_flows:?}");
    let up = &upload_flows[0]["flow"];
    assert!(
        up["bytes_toserver"].as_u64().unwrap_or(0) > chunks * 4000,
        "{up}"
    );
    // Its bytes are os.urandom: to unmask it is a fully encrypted opening on an unregistered
    // port, which alerts and never blocks; nothing else may be said of it.
    let said = findings_to_port(&records, 9000);
    assert!(
        said.iter().all(|k| k == "fully_encrypted"),
        "the upload raised {said:?}"
    );
    // CAP_NET_ADMIN was enough to detach at stop.
    assert!(u64_at(&report, "/counters/packets") > 0);
    for port in ['a', 'b'] {
        let shown = attached(&lab, port);
        assert!(shown.contains("no xdp program"), "{port}: {shown}");
    }
}

/// `CapabilityBoundingSet=` of configs/unmask.service, as setpriv's capability list.
fn unit_bounding_set() -> String {
    let unit = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/configs/unmask.service"
    ))
    .expect("configs/unmask.service");
    let line = unit
        .lines()
        .find_map(|l| l.strip_prefix("CapabilityBoundingSet="))
        .expect("CapabilityBoundingSet= in the unit");
    let caps: Vec<String> = line
        .split_whitespace()
        .map(|c| format!("+{}", c.trim_start_matches("CAP_").to_lowercase()))
        .collect();
    assert!(caps.len() >= 2, "{line}");
    format!("-all,{}", caps.join(","))
}

#[test]
fn lab_the_units_bounding_set_is_enough_to_start_block_and_stop() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_unit_caps") || !have("setpriv") {
        return;
    }
    let mut lab = Lab::up("uc", 1);
    second_server_address(&lab);
    let cfg = lab.config("block", "inline", 1, "fail-open");
    let bounding = unit_bounding_set();
    // As systemd starts a root service with that bounding set: nothing else is permitted.
    let unmask = lab.unmask_under(
        &["setpriv", "--bounding-set", &bounding, "--inh-caps", "-all"],
        &cfg,
    );
    let (ssh_got, fake_got, sent) = impersonations(&mut lab);
    assert!(
        ssh_got < sent && fake_got < sent,
        "blocked under the unit's capabilities"
    );
    let report = unmask.stop();
    assert!(blocked_in_kernel(&report) > 0 || u64_at(&report, "/counters/dropped") > 0);
    for port in ['a', 'b'] {
        let shown = attached(&lab, port);
        assert!(shown.contains("no xdp program"), "{port}: {shown}");
    }
}

#[test]
fn lab_logrotate_rotates_the_eve_file_under_traffic_and_loses_nothing() {
    let _g = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
    if !can_run("lab_logrotate") {
        return;
    }
    if !have("logrotate") {
        eprintln!("lab_logrotate: skipped (no logrotate; run scripts/deps.sh as root)");
        return;
    }
    let mut lab = Lab::up("lr", 1);
    second_server_address(&lab);
    let cfg = lab.config("monitor", "inline", 1, "fail-open");
    let unmask = lab.unmask(&cfg);
    let eve = lab.path("eve.json");
    let socket = lab.path("control.sock");
    // The shipped configs/logrotate.d/unmask, pointed at this lab's files.
    let conf = lab.path("logrotate.conf");
    std::fs::write(
        &conf,
        format!(
            "{} {{\n    rotate 5\n    missingok\n    postrotate\n        {UNMASK} ctl --socket {} reopen\n    endscript\n}}\n",
            eve.display(),
            socket.display()
        ),
    )
    .expect("logrotate config");
    let state = lab.path("logrotate.state");
    let rotate = || {
        let out = Command::new("logrotate")
            .arg("-f")
            .arg("-s")
            .arg(&state)
            .arg(&conf)
            .output()
            .expect("logrotate runs");
        assert!(
            out.status.success(),
            "logrotate: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    };

    // A paced upload runs across both rotations; alerting flows come before, between and
    // after them: every record the writer counted is in exactly one of the three files.
    lab.sink("10.77.0.2:9000", &[]);
    lab.spawn(
        "client",
        &[
            "python3",
            PEER,
            "send",
            "--to",
            "10.77.0.2:9000",
            "--chunks",
            "100",
            "--chunk-size",
            "2000",
            "--pause",
            "0.05",
        ],
    );
    impersonations(&mut lab);
    rotate();
    unmask.wait_log("EVE file reopened (1 so far)");
    impersonations(&mut lab);
    rotate();
    unmask.wait_log("EVE file reopened (2 so far)");
    impersonations(&mut lab);
    let report = unmask.stop();

    let lines = |p: &Path| -> Vec<serde_json::Value> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .map(|l| serde_json::from_str(l).expect("every line is one JSON record"))
            .collect()
    };
    let files = [
        lab.path("eve.json.2"),
        lab.path("eve.json.1"),
        lab.path("eve.json"),
    ];
    let per_file: Vec<Vec<serde_json::Value>> = files.iter().map(|p| lines(p)).collect();
    for (p, recs) in files.iter().zip(&per_file) {
        assert!(
            recs.iter().any(|r| r["event_type"] == "alert"),
            "{}: no alert in it",
            p.display()
        );
    }
    let written: u64 = ["alert", "flow", "anomaly", "drop", "tls"]
        .iter()
        .map(|k| u64_at(&report, &format!("/eve/{k}")))
        .sum();
    let found: usize = per_file.iter().map(Vec::len).sum();
    eprintln!(
        "lab_logrotate: {} + {} + {} records in the rotated and current files, {written} written",
        per_file[0].len(),
        per_file[1].len(),
        per_file[2].len()
    );
    assert_eq!(
        found as u64, written,
        "records across the rotations = records written"
    );
}
