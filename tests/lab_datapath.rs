//! The live datapath in network namespaces (scripts/lab.sh): client <-> appliance <-> server.
//!
//! Needs root and the tools from scripts/deps.sh; prints "skipped" and passes without them.
//! Each test builds its own lab under its own LAB_PREFIX and tears it down on drop, also when
//! the test fails. The tests take a process-wide lock: they share two cores and time-sensitive
//! transfers, and a serialised run is a robust one.

mod common;

use common::lab::*;

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
        prog_map_ids(&prog_id.to_string())
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
        let alive = maps_still_alive(&map_ids);
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
